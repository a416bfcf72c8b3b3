"""supervisord's XML-RPC interface, as much of it as the watchdog needs.

XML-RPC over the agent's own HTTP client (httpx) rather than the ``supervisor`` package
(a test dependency only): httpx speaks HTTP over a unix socket (``uds=``), which is how a
default supervisord listens (``unix:///var/run/supervisor.sock``), and the stdlib's
``xmlrpc.client`` encodes and decodes the bodies. ``http://host:port`` URLs work too
(supervisord's ``[inet_http_server]``). The only module that sees httpx or xmlrpc
exceptions for this interface; each becomes a :class:`SupervisorError` here, once.
"""

from __future__ import annotations

import contextlib
import urllib.parse
import xmlrpc.client
from collections.abc import AsyncIterator
from typing import Any
from xml.parsers.expat import ExpatError

import attrs
import httpx
import trio

from agent.errors import AgentError, ConfigurationError

CALL_TIMEOUT_SECONDS = 10.0
# stopProcess waits for the program to stop: stopwaitsecs (10 s in our sample), then SIGKILL.
RESTART_TIMEOUT_SECONDS = 120.0
RPC_PATH = "/RPC2"

# supervisord's fault codes (supervisor/xmlrpc.py, class Faults).
FAULT_NOT_RUNNING = 70
FAULT_ALREADY_STARTED = 60


class SupervisorError(AgentError):
    """supervisord could not be asked, or refused what it was asked (``fault_code``)."""

    def __init__(self, message: str, fault_code: int | None = None) -> None:
        super().__init__(message)
        self.fault_code = fault_code


@attrs.frozen
class ProcessInfo:
    name: str
    state: str  # supervisord's statename: RUNNING, STOPPED, EXITED, FATAL, BACKOFF, ...
    pid: int


class SupervisorClient:
    """Calls supervisord's XML-RPC interface over one injected ``httpx.AsyncClient``."""

    def __init__(self, http: httpx.AsyncClient, endpoint: str) -> None:
        self._http = http
        self._endpoint = endpoint

    async def process_info(self, name: str) -> ProcessInfo:
        try:
            with trio.fail_after(CALL_TIMEOUT_SECONDS):
                info = await self._call("supervisor.getProcessInfo", name)
        except trio.TooSlowError as exc:
            raise SupervisorError(
                f"supervisord did not answer getProcessInfo within {CALL_TIMEOUT_SECONDS:.0f} s"
            ) from exc
        if not isinstance(info, dict):
            raise SupervisorError("supervisord answered getProcessInfo with no process")
        return ProcessInfo(str(info.get("name", name)), str(info.get("statename", "")), _pid(info))

    async def restart(self, name: str) -> None:
        """Stop ``name`` (waiting until it has stopped) and start it again.

        SIGCONT first: a process stopped with SIGSTOP only sees the stop signal once it runs
        again, and supervisord would otherwise wait its ``stopwaitsecs`` and SIGKILL it, with
        no chance to say goodbye to the gateway.
        """
        try:
            with trio.fail_after(RESTART_TIMEOUT_SECONDS):
                await self._restart(name)
        except trio.TooSlowError as exc:
            raise SupervisorError(
                f"supervisord did not restart {name} within {RESTART_TIMEOUT_SECONDS:.0f} s"
            ) from exc

    async def _restart(self, name: str) -> None:
        with contextlib.suppress(SupervisorError):  # not running, or a supervisord < 3.2
            await self._call("supervisor.signalProcess", name, "CONT")
        try:
            await self._call("supervisor.stopProcess", name, True)
        except SupervisorError as exc:
            if exc.fault_code != FAULT_NOT_RUNNING:
                raise
        try:
            await self._call("supervisor.startProcess", name, True)
        except SupervisorError as exc:
            if exc.fault_code != FAULT_ALREADY_STARTED:
                raise

    async def _call(self, method: str, *params: Any) -> Any:
        body = xmlrpc.client.dumps(params, method).encode()
        try:
            response = await self._http.post(
                self._endpoint, content=body, headers={"Content-Type": "text/xml"}
            )
        except httpx.HTTPError as exc:
            reason = f"{type(exc).__name__}: {exc}"
            raise SupervisorError(f"cannot reach supervisord ({reason})") from exc
        if response.status_code == 401:
            raise SupervisorError(
                "supervisord refused the credentials (set SUPERVISOR_USERNAME and "
                "SUPERVISOR_PASSWORD in the listener's environment)"
            )
        if response.status_code != 200:
            raise SupervisorError(f"supervisord answered {method} with HTTP {response.status_code}")
        try:
            (result,), _ = xmlrpc.client.loads(response.content)
        except xmlrpc.client.Fault as fault:
            raise SupervisorError(
                f"supervisord refused {method}: {fault.faultString}", fault.faultCode
            ) from fault
        except (ExpatError, ValueError, TypeError) as exc:
            raise SupervisorError(f"unexpected answer from supervisord to {method}") from exc
        return result


def _pid(info: dict[str, Any]) -> int:
    pid = info.get("pid", 0)
    return pid if isinstance(pid, int) and not isinstance(pid, bool) else 0


@contextlib.asynccontextmanager
async def open_supervisor_client(
    url: str,
    *,
    username: str = "",
    password: str = "",
    transport: httpx.AsyncBaseTransport | None = None,
) -> AsyncIterator[SupervisorClient]:
    """A client for the supervisord at ``url``: ``unix:///path/to.sock`` or
    ``http://host:port`` (its XML-RPC path, /RPC2, is added); ``transport`` is the test seam.
    :class:`ConfigurationError` for any other URL."""
    parsed = urllib.parse.urlsplit(url)
    if parsed.scheme == "unix" and parsed.path:
        endpoint = "http://localhost" + RPC_PATH
        if transport is None:
            transport = httpx.AsyncHTTPTransport(uds=parsed.path)
    elif parsed.scheme in ("http", "https") and parsed.hostname and not parsed.username:
        endpoint = urllib.parse.urlunsplit(
            (parsed.scheme, parsed.netloc, parsed.path.rstrip("/") + RPC_PATH, "", "")
        )
    else:
        raise ConfigurationError(
            "invalid supervisord URL: use unix:///path/to/supervisor.sock or "
            "http://127.0.0.1:9001 (credentials go in SUPERVISOR_USERNAME and "
            "SUPERVISOR_PASSWORD, never in the URL)"
        )
    auth = (username, password) if username else None
    # trust_env=False: no proxy from the environment between us and supervisord.
    async with httpx.AsyncClient(
        transport=transport,
        auth=auth,
        follow_redirects=False,
        timeout=None,  # noqa: S113 (the callers' fail_after bounds each call)
        trust_env=False,
    ) as http:
        yield SupervisorClient(http, endpoint)
