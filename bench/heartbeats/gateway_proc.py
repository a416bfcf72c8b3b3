"""The gateway under test: a real ``fleet-gateway serve --port 0`` subprocess, and what
/proc says about it, PostgreSQL and the whole machine (Linux only).

The subprocess's stderr is drained continuously into a log file (a full pipe would
stall the gateway) and watched for ``listening on http://HOST:PORT``. Stopping sends
SIGTERM (the gateway drains and flushes) and kills it only past a bound.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import sys
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import aiohttp
import attrs
from prometheus_client.parser import text_string_to_metric_families

START_TIMEOUT_SECONDS = 60.0
STOP_TIMEOUT_SECONDS = 40.0
_LISTENING = re.compile(r"listening on http://(\S+):(\d+)")
_TICKS = os.sysconf("SC_CLK_TCK")


@attrs.frozen
class Gateway:
    """The server(s) under test: one process, or several sharing one port (SO_REUSEPORT)."""

    pids: tuple[int, ...]
    host: str
    port: int
    log_path: Path

    @property
    def pid(self) -> int:
        return self.pids[0]

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"


def gateway_command() -> list[str]:
    """The installed console script next to this interpreter, else ``-m gateway``."""
    script = Path(sys.executable).with_name("fleet-gateway")
    return [str(script)] if script.exists() else [sys.executable, "-m", "gateway"]


def reference_command(tokens_file: Path, loop: str) -> list[str]:
    """The reference ceiling (``bench.reference``) serving the same bearer tokens."""
    return [sys.executable, "-m", "bench.reference", "--tokens", str(tokens_file), "--loop", loop]


async def _drain(stream: asyncio.StreamReader, log_path: Path, found: asyncio.Future[str]) -> None:
    with log_path.open("ab") as log:
        while line := await stream.readline():
            log.write(line)
            if not found.done() and _LISTENING.search(line.decode(errors="replace")):
                found.set_result(line.decode(errors="replace"))
    if not found.done():
        found.set_exception(RuntimeError(f"the server exited before listening; see {log_path}"))


@contextlib.asynccontextmanager
async def _open_process(argv: Sequence[str], log_path: Path) -> AsyncIterator[tuple[int, str, int]]:
    """Start ``argv``, yield (pid, host, port) once it logs that it listens, stop it."""
    proc = await asyncio.create_subprocess_exec(
        *argv,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
        start_new_session=True,  # its own scheduling group (see renice), and our ^C is ours
    )
    assert proc.stderr is not None
    found: asyncio.Future[str] = asyncio.get_running_loop().create_future()
    drain = asyncio.create_task(_drain(proc.stderr, log_path, found))
    try:
        async with asyncio.timeout(START_TIMEOUT_SECONDS):
            line = await found
        match = _LISTENING.search(line)
        assert match is not None
        yield proc.pid, match.group(1), int(match.group(2))
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
            try:
                async with asyncio.timeout(STOP_TIMEOUT_SECONDS):
                    await proc.wait()
            except TimeoutError:
                proc.kill()
                await proc.wait()
        async with asyncio.timeout(STOP_TIMEOUT_SECONDS):
            await drain
        if not found.done():
            found.cancel()
        elif not found.cancelled():
            found.exception()  # retrieved: an early exit was already reported


@contextlib.asynccontextmanager
async def open_servers(
    command: Sequence[str], log_path: Path, processes: int = 1
) -> AsyncIterator[Gateway]:
    """``processes`` copies of ``command`` on one port: the first binds port 0 (with
    ``--reuse-port`` when there are several), the others the port it got."""
    reuse = ["--reuse-port"] if processes > 1 else []
    async with contextlib.AsyncExitStack() as stack:
        pid, host, port = await stack.enter_async_context(
            _open_process([*command, "--host", "127.0.0.1", "--port", "0", *reuse], log_path)
        )
        pids = [pid]
        for _ in range(processes - 1):
            argv = [*command, "--host", "127.0.0.1", "--port", str(port), *reuse]
            pids.append((await stack.enter_async_context(_open_process(argv, log_path)))[0])
        yield Gateway(tuple(pids), host, port, log_path)


def open_gateway(
    database_url: str, flags: Sequence[str], log_path: Path, processes: int = 1
) -> contextlib.AbstractAsyncContextManager[Gateway]:
    """``fleet-gateway serve`` (``processes`` replicas sharing one port)."""
    command = [*gateway_command(), "serve", "--database-url", database_url, *flags]
    return open_servers(command, log_path, processes)


# --- /metrics ---------------------------------------------------------------------------------


async def scrape(http: aiohttp.ClientSession, gateway: Gateway) -> dict[str, float]:
    """Every sample of /metrics, keyed ``name{label="value",...}`` (labels sorted)."""
    async with http.get(f"{gateway.base_url}/metrics") as resp:
        resp.raise_for_status()
        text = await resp.text()
    samples: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = ",".join(f'{k}="{v}"' for k, v in sorted(sample.labels.items()))
            samples[f"{sample.name}{{{labels}}}" if labels else sample.name] = sample.value
    return samples


def delta(after: dict[str, float], before: dict[str, float], name: str) -> float:
    """The increase of a metric, summed over its label sets."""
    prefix = name + "{"
    total = 0.0
    for key, value in after.items():
        if key == name or key.startswith(prefix):
            total += value - before.get(key, 0.0)
    return total


# --- /proc ------------------------------------------------------------------------------------


def rss_mb(pid: int) -> tuple[float, float]:
    """(VmRSS, VmHWM) of ``pid`` in MB: now, and the peak over its life."""
    values = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, rest = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            values[key] = int(rest.split()[0]) / 1024
    return values["VmRSS"], values["VmHWM"]


def _stat_fields(pid: int | str) -> list[str]:
    text = Path(f"/proc/{pid}/stat").read_text()
    return text[text.rindex(")") + 2 :].split()  # fields from the 3rd (state) on


def process_cpu_seconds(pid: int, *, reaped_children: bool = False) -> float:
    """utime + stime (+ cutime + cstime of children it waited for) in seconds."""
    fields = _stat_fields(pid)
    ticks = int(fields[11]) + int(fields[12])
    if reaped_children:
        ticks += int(fields[13]) + int(fields[14])
    return ticks / _TICKS


def _children(parent_pid: int) -> dict[int, list[str]]:
    """The live children of ``parent_pid`` and their /proc stat fields."""
    children = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError, IndexError, ValueError):
            fields = _stat_fields(entry.name)
            if int(fields[1]) == parent_pid:
                children[int(entry.name)] = fields
    return children


def postgres_cpu_seconds(postmaster_pid: int) -> float:
    """CPU of the postmaster, its live backends and the ones it already reaped."""
    total = process_cpu_seconds(postmaster_pid, reaped_children=True)
    for fields in _children(postmaster_pid).values():
        total += (int(fields[11]) + int(fields[12])) / _TICKS
    return total


def renice(nice: int, gateway_pid: int, postmaster_pid: int, *others: int) -> None:
    """Give the gateway, PostgreSQL (the postmaster, so backends forked later inherit it,
    and its present children) and this generator the niceness ``nice``, so that other
    work on a shared machine disturbs the measurement less (negative values need root).

    With autogroup scheduling (Linux's default for desktops and these machines) the
    scheduler first shares the CPU between sessions, so a process's own niceness only
    ranks it within its session: the niceness of each one's session group is set too
    (the gateway runs in a session of its own; the generator's is the invoking shell's)."""
    for pid in (gateway_pid, *others, postmaster_pid, os.getpid(), *_children(postmaster_pid)):
        with contextlib.suppress(ProcessLookupError):
            os.setpriority(os.PRIO_PROCESS, pid, nice)
    for pid in (gateway_pid, *others, postmaster_pid, os.getpid()):
        with contextlib.suppress(OSError):
            Path(f"/proc/{pid}/autogroup").write_text(str(nice))


def machine_busy_seconds() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine, all cores, from /proc/stat."""
    first = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    values = [int(v) for v in first[:8]]  # user nice system idle iowait irq softirq steal
    idle = values[3] + values[4]
    return (sum(values) - idle) / _TICKS, sum(values) / _TICKS


@attrs.frozen
class CpuSnapshot:
    """Cumulative CPU seconds at one moment."""

    gateway: float
    postgres: float
    generator: float
    machine_busy: float
    machine_total: float


def cpu_snapshot(server_pids: int | Sequence[int], postmaster_pid: int) -> CpuSnapshot:
    """``gateway`` is the server under test (the reference's processes in its phase);
    ``generator`` is this process and the children it reaped (wrk, once it exited)."""
    pids = (server_pids,) if isinstance(server_pids, int) else server_pids
    busy, total = machine_busy_seconds()
    return CpuSnapshot(
        gateway=sum(process_cpu_seconds(pid) for pid in pids),
        postgres=postgres_cpu_seconds(postmaster_pid),
        generator=process_cpu_seconds(os.getpid(), reaped_children=True),
        machine_busy=busy,
        machine_total=total,
    )


def cpu_percent(before: CpuSnapshot, after: CpuSnapshot, wall_seconds: float) -> dict[str, float]:
    """Percent of ONE core used by each party over the interval (200 = both cores)."""
    if wall_seconds <= 0:
        return {}
    cores = os.cpu_count() or 1
    parts = {
        "gateway": after.gateway - before.gateway,
        "postgres": after.postgres - before.postgres,
        "generator": after.generator - before.generator,
    }
    busy = after.machine_busy - before.machine_busy
    total = after.machine_total - before.machine_total
    out = {name: round(100 * seconds / wall_seconds, 1) for name, seconds in parts.items()}
    machine = 100 * cores * busy / total if total > 0 else 0.0
    out["machine"] = round(machine, 1)
    out["others"] = round(max(0.0, machine - sum(out[name] for name in parts)), 1)
    return out
