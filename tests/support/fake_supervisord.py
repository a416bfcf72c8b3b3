"""A supervisord double for the watchdog's tests: the XML-RPC calls it makes (getProcessInfo,
signalProcess, stopProcess, startProcess) on one program, with supervisord's fault codes,
served to ``httpx.MockTransport`` in process or by a loopback XML-RPC server for the
watchdog run as a real process; and supervisord's side of the eventlistener protocol."""

from __future__ import annotations

import contextlib
import threading
import xmlrpc.client
import xmlrpc.server
from collections.abc import Iterator
from typing import Any

import httpx
import trio

# supervisor/xmlrpc.py, class Faults
BAD_NAME = 10
ALREADY_STARTED = 60
NOT_RUNNING = 70


class FakeSupervisord:
    def __init__(self, program: str = "fleetnode") -> None:
        self.program = program
        self.state = "RUNNING"
        self.pid = 1000
        self.calls: list[tuple[str, tuple[Any, ...]]] = []
        self.authorization: list[str | None] = []
        self.unreachable = False
        self.start_fault: xmlrpc.client.Fault | None = None
        self.transport = httpx.MockTransport(self.handle)

    def methods(self) -> list[str]:
        return [method for method, _ in self.calls]

    def restarts(self) -> int:
        return self.methods().count("supervisor.startProcess")

    # --- the XML-RPC interface ---------------------------------------------------------

    def dispatch(self, method: str, params: tuple[Any, ...]) -> Any:
        self.calls.append((method, params))
        name = params[0]
        if name != self.program:
            raise xmlrpc.client.Fault(BAD_NAME, f"BAD_NAME: {name}")
        if method == "supervisor.getProcessInfo":
            pid = self.pid if self.state == "RUNNING" else 0
            return {"name": name, "group": name, "statename": self.state, "pid": pid}
        if method == "supervisor.signalProcess":
            if self.state != "RUNNING":
                raise xmlrpc.client.Fault(NOT_RUNNING, "NOT_RUNNING")
            return True
        if method == "supervisor.stopProcess":
            if self.state != "RUNNING":
                raise xmlrpc.client.Fault(NOT_RUNNING, "NOT_RUNNING")
            self.state = "STOPPED"
            return True
        if method == "supervisor.startProcess":
            if self.start_fault is not None:
                raise self.start_fault
            if self.state == "RUNNING":
                raise xmlrpc.client.Fault(ALREADY_STARTED, "ALREADY_STARTED")
            self.state = "RUNNING"
            self.pid += 1
            return True
        raise xmlrpc.client.Fault(1, f"UNKNOWN_METHOD: {method}")

    def respond(self, body: bytes) -> bytes:
        params, method = xmlrpc.client.loads(body)
        assert method is not None
        try:
            result = self.dispatch(method, params)
        except xmlrpc.client.Fault as fault:
            return xmlrpc.client.dumps(fault, methodresponse=True).encode()
        return xmlrpc.client.dumps((result,), methodresponse=True).encode()

    async def handle(self, request: httpx.Request) -> httpx.Response:
        if self.unreachable:
            raise httpx.ConnectError("[Errno 2] No such file or directory", request=request)
        assert request.url.path == "/RPC2"
        self.authorization.append(request.headers.get("authorization"))
        return httpx.Response(
            200, content=self.respond(request.content), headers={"Content-Type": "text/xml"}
        )


@contextlib.contextmanager
def serve_fake_supervisord(fake: FakeSupervisord) -> Iterator[str]:
    """``fake`` behind a loopback XML-RPC server on a thread; yields its URL."""

    class Dispatcher:
        def _dispatch(self, method: str, params: tuple[Any, ...]) -> Any:
            return fake.dispatch(method, params)

    server = xmlrpc.server.SimpleXMLRPCServer(("127.0.0.1", 0), logRequests=False, allow_none=False)
    server.register_instance(Dispatcher())
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def event(name: str, serial: int, payload: bytes = b"when:1764500000") -> bytes:
    """One event as supervisord writes it to a listener: header line, then the payload."""
    header = (
        f"ver:3.0 server:supervisor serial:{serial} pool:fleetnode-watchdog "
        f"poolserial:{serial} eventname:{name} len:{len(payload)}\n"
    )
    return header.encode() + payload


class ListenerPeer:
    """supervisord's end of the eventlistener protocol, over one byte stream."""

    def __init__(self, stream: trio.abc.Stream) -> None:
        self._stream = stream
        self._buffer = b""
        self._serial = 0

    async def expect(self, data: bytes) -> None:
        while len(self._buffer) < len(data):
            chunk = await self._stream.receive_some()
            assert chunk, f"the listener closed its stdout, {data!r} expected"
            self._buffer += chunk
        got, self._buffer = self._buffer[: len(data)], self._buffer[len(data) :]
        assert got == data

    async def send(self, name: str = "TICK_5", payload: bytes = b"when:1764500000") -> None:
        """Send one event to a READY listener and wait for its RESULT and its next READY."""
        await self.expect(b"READY\n")
        self._serial += 1
        await self._stream.send_all(event(name, self._serial, payload))
        await self.expect(b"RESULT 2\nOK")
