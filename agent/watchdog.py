"""``fleetnode watchdog``: a supervisord event listener that restarts a wedged daemon
(SPEC 5.11).

supervisord only sees a process: a daemon stopped with SIGSTOP, or stuck, stays RUNNING
forever. Subscribed to ``TICK_5`` or ``TICK_60``, the watchdog runs ``check`` at each tick
and, after ``--failures`` failed checks in a row, restarts the program through supervisord's
XML-RPC interface, logging why. A program supervisord does not have RUNNING (EXITED after a
revoke, STOPPED by an operator, STARTING, BACKOFF, FATAL) is left alone: supervisord's own
rules decide about it, and the watchdog never starts what an operator or an exit code of
"do not restart" (77, 78) stopped.

The eventlistener protocol (supervisord's docs, "Event Listeners"): the listener writes
``READY\\n`` on stdout, reads a header line (``ver:3.0 ... eventname:TICK_5 len:N``) and N
bytes of payload on stdin, then answers ``RESULT 2\\nOK`` and is READY again. Nothing else
may go to stdout: the log lines go to stderr.
"""

from __future__ import annotations

import functools
import logging
import os
from collections.abc import Callable
from pathlib import Path

import attrs
import httpx
import trio

from agent.check import Verdict, check_health
from agent.errors import AgentError
from agent.runtime import Runtime
from agent.supervisor import SupervisorClient, SupervisorError, open_supervisor_client

logger = logging.getLogger(__name__)

DEFAULT_FAILURES = 3
MAX_HEADER_BYTES = 1024
READY = b"READY\n"
RESULT_OK = b"RESULT 2\nOK"


class ProtocolViolation(AgentError):
    """supervisord (or whoever writes to stdin) did not speak the eventlistener protocol."""


@attrs.frozen
class Event:
    name: str  # eventname, e.g. TICK_5
    payload: bytes


class EventListener:
    """The listener's side of the protocol over two byte streams (stdin, stdout)."""

    def __init__(self, receive: trio.abc.ReceiveStream, send: trio.abc.SendStream) -> None:
        self._receive = receive
        self._send = send
        self._buffer = bytearray()

    async def next_event(self) -> Event | None:
        """Say READY and wait for the next event; None when stdin ends (supervisord is gone)."""
        await self._send.send_all(READY)
        header = await self._read_line()
        if header is None:
            return None
        fields = dict(token.split(":", 1) for token in header.split() if ":" in token)
        try:
            length = int(fields["len"])
        except (KeyError, ValueError) as exc:
            raise ProtocolViolation(f"an event header without a length: {header!r}") from exc
        payload = await self._read_exactly(length)
        if payload is None:
            return None
        return Event(fields.get("eventname", ""), payload)

    async def done(self) -> None:
        """The event is handled (``RESULT 2\\nOK``)."""
        await self._send.send_all(RESULT_OK)

    async def _fill(self) -> bool:
        chunk = await self._receive.receive_some()
        self._buffer.extend(chunk)
        return bool(chunk)

    async def _read_line(self) -> str | None:
        while b"\n" not in self._buffer:
            if len(self._buffer) > MAX_HEADER_BYTES:
                raise ProtocolViolation("an event header longer than 1 KiB")
            if not await self._fill():
                return None
        line, _, rest = bytes(self._buffer).partition(b"\n")
        self._buffer[:] = rest
        return line.decode("utf-8", errors="replace")

    async def _read_exactly(self, size: int) -> bytes | None:
        while len(self._buffer) < size:
            if not await self._fill():
                return None
        data = bytes(self._buffer[:size])
        del self._buffer[:size]
        return data


@attrs.frozen
class WatchdogOptions:
    program: str
    failures: int = DEFAULT_FAILURES
    max_age_seconds: float | None = None  # None: 3 x the daemon's interval, as for check


@attrs.frozen
class SupervisorSettings:
    """Where supervisord listens (``unix:///...`` or ``http://host:port``) and the
    credentials of its ``[unix_http_server]``/``[inet_http_server]``, if it wants any."""

    url: str
    username: str = ""
    password: str = attrs.field(default="", repr=False)
    transport: httpx.AsyncBaseTransport | None = None  # the test seam


class Watchdog:
    """Counts failed checks of one program, and restarts it after ``failures`` in a row."""

    def __init__(
        self,
        *,
        supervisor: SupervisorClient,
        check: Callable[[], Verdict],
        options: WatchdogOptions,
    ) -> None:
        self._supervisor = supervisor
        self._check = check
        self._options = options
        self._failed = 0
        self._left_alone: str | None = None  # the state last logged as "left alone"

    async def watch(self, listener: EventListener) -> None:
        """Handle events until stdin ends (supervisord stopped us or went away)."""
        logger.info(
            "watching %s: restart after %d failed checks in a row",
            self._options.program,
            self._options.failures,
        )
        while (event := await listener.next_event()) is not None:
            if event.name.startswith("TICK_"):
                await self.tick()
            await listener.done()
        logger.info("stdin closed: the watchdog stops")

    async def tick(self) -> None:
        """One check; a restart when it is the ``failures``-th failure in a row."""
        # A small local read, on the loop: the watchdog has no other task to delay.
        verdict = self._check()
        program = self._options.program
        if verdict.healthy:
            if self._failed:
                logger.info("%s is healthy again: %s", program, verdict.reason)
            self._failed = 0
            self._left_alone = None
            return
        try:
            info = await self._supervisor.process_info(program)
        except SupervisorError as exc:
            logger.error("check of %s failed (%s), and %s", program, verdict.reason, exc)
            return
        if info.state != "RUNNING":
            if self._left_alone != info.state:
                logger.info(
                    "%s is %s in supervisord: left alone (%s)", program, info.state, verdict.reason
                )
            self._left_alone = info.state
            self._failed = 0
            return
        self._left_alone = None
        self._failed += 1
        logger.warning(
            "check of %s failed (%d of %d in a row): %s",
            program,
            self._failed,
            self._options.failures,
            verdict.reason,
        )
        if self._failed < self._options.failures:
            return
        self._failed = 0
        logger.warning("restarting %s (pid %d): %s", program, info.pid, verdict.reason)
        try:
            await self._supervisor.restart(program)
        except SupervisorError as exc:
            logger.error("could not restart %s: %s", program, exc)
            return
        logger.info("restarted %s", program)


async def run_watchdog(
    directory: Path,
    runtime: Runtime,
    options: WatchdogOptions,
    supervisor: SupervisorSettings,
) -> None:
    """The ``watchdog`` command: the protocol on the process's stdin and stdout."""
    check = functools.partial(_check_now, directory, runtime, options.max_age_seconds)
    async with (
        open_supervisor_client(
            supervisor.url,
            username=supervisor.username,
            password=supervisor.password,
            transport=supervisor.transport,
        ) as client,
        # Duplicates: closing the streams leaves the process's own stdin and stdout open.
        trio.lowlevel.FdStream(os.dup(runtime.stdin.fileno())) as stdin,
        trio.lowlevel.FdStream(os.dup(runtime.stdout.fileno())) as stdout,
    ):
        watchdog = Watchdog(supervisor=client, check=check, options=options)
        await watchdog.watch(EventListener(stdin, stdout))


def _check_now(directory: Path, runtime: Runtime, max_age_seconds: float | None) -> Verdict:
    return check_health(directory, runtime.wall_clock(), max_age_seconds)
