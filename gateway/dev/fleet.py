"""The fleet of ``fleet-gateway demo``: real ``fleetnode`` processes, driven through ``fleetctl``.

Everything here is what an operator does by hand: mint a code with
``fleetctl create-code``, pipe it into ``fleetnode enroll``, confirm the node with
``fleetctl confirm``, paste the api key, start ``fleetnode run``, watch
``fleetctl nodes``. Only processes and pipes, no shortcut through the database.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import signal
import sys
from collections.abc import AsyncIterator, Mapping, Sequence
from pathlib import Path
from typing import TextIO

logger = logging.getLogger(__name__)

_REGISTERED = re.compile(rb"Registered as fleet node (\d+)")
STEP_TIMEOUT_SECONDS = 30.0
STOP_TIMEOUT_SECONDS = 5.0


class DemoError(Exception):
    """A step of the demo failed; the message says which and why."""


def program(name: str, module: str) -> list[str]:
    """The console script installed beside this Python, else ``python -m module``."""
    script = Path(sys.executable).parent / name
    return [str(script)] if script.exists() else [sys.executable, "-m", module]


async def _run(argv: Sequence[str], env: Mapping[str, str], stdin: bytes = b"") -> str:
    proc = await asyncio.create_subprocess_exec(
        *argv,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=dict(env),
    )
    async with asyncio.timeout(STEP_TIMEOUT_SECONDS):
        out, err = await proc.communicate(stdin)
    if proc.returncode != 0:
        raise DemoError(
            f"{Path(argv[0]).name} {argv[-1]} exited {proc.returncode}: {err.decode().strip()}"
        )
    return out.decode()


class Fleet:
    """The demo's nodes: enrolled one by one, then running side by side."""

    def __init__(
        self, server_url: str, admin_token: str, state_root: Path, env: Mapping[str, str]
    ) -> None:
        self.server_url = server_url
        self.state_root = state_root
        self.env = {**env, "FLEET_SERVER_URL": server_url, "FLEET_ADMIN_TOKEN": admin_token}
        self.fleetctl = program("fleetctl", "fleetctl")
        self.fleetnode = program("fleetnode", "agent")
        self.running: list[asyncio.subprocess.Process] = []

    async def ctl(self, *args: str) -> str:
        return await _run([*self.fleetctl, *args], self.env)

    def state_dir(self, index: int) -> Path:
        return self.state_root / f"node-{index}"

    async def enroll(self, index: int) -> int:
        """Enroll node ``index`` exactly as an operator would; its fleet node id."""
        code = (await self.ctl("create-code", "--ttl", "10m")).strip()
        proc = await asyncio.create_subprocess_exec(
            *self.fleetnode,
            "--state-dir", str(self.state_dir(index)),
            "enroll", "--server-url", self.server_url, "--name", f"demo-node-{index}",
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=self.env,
        )  # fmt: skip
        assert proc.stdin is not None and proc.stderr is not None
        try:
            async with asyncio.timeout(STEP_TIMEOUT_SECONDS):
                proc.stdin.write(code.encode() + b"\n")
                await proc.stdin.drain()
                node_id = await self._registered_id(proc.stderr)
                api_key = (await self.ctl("confirm", str(node_id))).strip()
                proc.stdin.write(api_key.encode() + b"\n")
                await proc.stdin.drain()
                proc.stdin.close()
                _out, err = await proc.communicate()
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
        if proc.returncode != 0:
            raise DemoError(f"fleetnode enroll exited {proc.returncode}: {err.decode().strip()}")
        return node_id

    @staticmethod
    async def _registered_id(stderr: asyncio.StreamReader) -> int:
        async for line in stderr:
            match = _REGISTERED.search(line)
            if match:
                return int(match.group(1))
        raise DemoError("fleetnode enroll ended before it registered")

    async def start(self, index: int) -> None:
        log = (self.state_root / f"node-{index}.log").open("ab")
        with log:  # the child keeps its own descriptor
            proc = await asyncio.create_subprocess_exec(
                *self.fleetnode, "--state-dir", str(self.state_dir(index)), "run",
                stdin=asyncio.subprocess.DEVNULL, stdout=log, stderr=log, env=self.env,
            )  # fmt: skip
        self.running.append(proc)

    async def stop(self) -> list[int]:
        """SIGTERM every node and wait for each; their exit codes (-9 if it had to be killed)."""

        async def stop_one(proc: asyncio.subprocess.Process) -> int:
            if proc.returncode is None:
                proc.send_signal(signal.SIGTERM)
            try:
                async with asyncio.timeout(STOP_TIMEOUT_SECONDS):
                    return await proc.wait()
            except TimeoutError:
                proc.kill()
                await proc.wait()
                return -9

        codes = await asyncio.gather(*(stop_one(proc) for proc in self.running))
        self.running.clear()
        return list(codes)

    async def listing(self) -> list[dict[str, object]]:
        nodes = json.loads(await self.ctl("nodes", "--json")).get("fleetNodes", [])
        return list(nodes)


@contextlib.asynccontextmanager
async def open_fleet(
    server_url: str, admin_token: str, state_root: Path, env: Mapping[str, str]
) -> AsyncIterator[Fleet]:
    """A fleet whose running nodes are always stopped on the way out."""
    fleet = Fleet(server_url, admin_token, state_root, env)
    try:
        yield fleet
    finally:
        await asyncio.shield(fleet.stop())


async def run_demo(
    fleet: Fleet, nodes: int, duration_seconds: float, table_every_seconds: float, out: TextIO
) -> bool:
    """Enroll and run ``nodes`` nodes, print the table while they heartbeat; True when every
    node is ONLINE at the end and every node stopped cleanly."""
    for index in range(1, nodes + 1):
        node_id = await fleet.enroll(index)
        print(f"enrolled demo-node-{index} as fleet node {node_id}", file=out, flush=True)
    for index in range(1, nodes + 1):
        await fleet.start(index)
    print(
        f"{nodes} fleetnode processes running; watching for {duration_seconds:g}s",
        file=out,
        flush=True,
    )
    loop = asyncio.get_running_loop()
    deadline = loop.time() + duration_seconds
    while (remaining := deadline - loop.time()) > 0:
        await asyncio.sleep(min(table_every_seconds, remaining))
        print(f"\n{await fleet.ctl('nodes')}", file=out, end="", flush=True)
    listing = await fleet.listing()
    exit_codes = await fleet.stop()
    online = [n for n in listing if n.get("connectivity") == "CONNECTIVITY_ONLINE"]
    print(
        f"\n{len(online)}/{nodes} nodes ONLINE; nodes stopped with exit codes {exit_codes}",
        file=out,
        flush=True,
    )
    return len(online) == nodes and all(code == 0 for code in exit_codes)
