"""What the Connect adapter reads from an HTTP request (SPEC 2): its content type, its body
(64 KiB at most, after one gzip layer at most, bounded in time), its bearer token and its
Connect headers. ``gateway.connect`` decides the order in which they are checked."""

from __future__ import annotations

import asyncio
import zlib

import attrs
from aiohttp import StreamReader, web

from fleetwire.codes import Code, ConnectError
from gateway import errors

MAX_BODY_BYTES = 64 * 1024
# A body (64 KiB at most) that takes longer than this is a slow client holding a handler
# and a connection, not a network: aiohttp has no body read timeout of its own.
BODY_READ_TIMEOUT_SECONDS = 30.0
JSON = "application/json"


def is_json(request: web.BaseRequest) -> bool:
    if request.content_type != JSON:
        return False
    charset = request.charset
    return charset is None or charset.lower() in ("utf-8", "utf8")


@attrs.frozen
class Body:
    """A request body within the size limit; ``problem`` is reported at validation."""

    data: bytes
    problem: str | None = None


def _too_big() -> ConnectError:
    return ConnectError(
        Code.RESOURCE_EXHAUSTED, f"request body is larger than {MAX_BODY_BYTES // 1024} KiB"
    )


async def read_body(request: web.BaseRequest) -> Body:
    """The body, read within ``BODY_READ_TIMEOUT_SECONDS``."""
    encodings = _content_encodings(request)
    if request.content_length is not None and request.content_length > MAX_BODY_BYTES:
        raise _too_big()
    content = request.content
    try:
        if content.is_eof():
            # All of it arrived with the headers (a heartbeat's 40 bytes always do): it
            # is taken as it is, with no timer to arm for a read that cannot wait.
            data = content.read_nowait()
            if len(data) > MAX_BODY_BYTES:
                raise _too_big()
        else:
            try:
                async with asyncio.timeout(BODY_READ_TIMEOUT_SECONDS):
                    data = await _read_chunks(content)
            except TimeoutError:
                raise ConnectError(
                    Code.DEADLINE_EXCEEDED, "request body not received in time"
                ) from None
    except web.RequestPayloadError:  # e.g. broken chunked encoding
        return Body(b"", "request body could not be read")
    if "gzip" in encodings:
        data_or_problem = _gunzip(data)
        if isinstance(data_or_problem, str):
            return Body(b"", data_or_problem)
        data = data_or_problem
    return Body(data)


def _content_encodings(request: web.BaseRequest) -> list[str]:
    encodings = [
        part.strip().lower()
        for value in request.headers.getall("Content-Encoding", ())
        for part in value.split(",")
        if part.strip()
    ]
    if any(encoding not in ("identity", "gzip") for encoding in encodings):
        raise ConnectError(Code.UNIMPLEMENTED, "unsupported Content-Encoding: use gzip or none")
    # Each layer would be inflated in turn, before authentication: 2,500 nested layers in
    # a 64 KiB body cost 80 times a normal call. No client sends more than one.
    if encodings.count("gzip") > 1:
        raise ConnectError(Code.UNIMPLEMENTED, "at most one gzip Content-Encoding is accepted")
    return encodings


async def _read_chunks(content: StreamReader) -> bytes:
    """Chunks as they come, refused as soon as they are too many bytes."""
    chunks: list[bytes] = []
    total = 0
    while chunk := await content.readany():
        total += len(chunk)
        if total > MAX_BODY_BYTES:
            raise _too_big()
        chunks.append(chunk)
    return b"".join(chunks)


def _gunzip(data: bytes) -> bytes | str:
    """Decompress at most MAX_BODY_BYTES (no zip bombs); a str says what is wrong."""
    decompressor = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
    try:
        out = decompressor.decompress(data, MAX_BODY_BYTES + 1)
    except zlib.error:
        return "request body is not valid gzip"
    if len(out) > MAX_BODY_BYTES or decompressor.unconsumed_tail:
        raise _too_big()
    if not decompressor.eof or decompressor.unused_data:
        return "request body is not valid gzip"
    return out


def bearer_token(request: web.BaseRequest) -> str:
    values = request.headers.getall("Authorization", ())
    if len(values) > 1:
        raise errors.Unauthenticated("more than one Authorization header")
    if not values:
        raise errors.Unauthenticated("missing Authorization: Bearer token")
    scheme, _, token = values[0].strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise errors.Unauthenticated("Authorization must be: Bearer <token>")
    return token


def timeout_seconds(request: web.BaseRequest) -> tuple[float | None, str | None]:
    """The Connect-Timeout-Ms deadline, or a problem to report at validation."""
    version = request.headers.get("Connect-Protocol-Version")
    if version is not None and version.strip() != "1":
        return None, "Connect-Protocol-Version must be 1"
    text = request.headers.get("Connect-Timeout-Ms")
    if text is None:
        return None, None
    text = text.strip()
    if not (text.isascii() and text.isdigit() and 0 < len(text) <= 10 and int(text) > 0):
        return None, "Connect-Timeout-Ms must be a positive integer of at most 10 digits"
    return int(text) / 1000, None


def accepts_gzip(header: str | None) -> bool:
    for item in (header or "").split(","):
        coding, _, params = item.strip().partition(";")
        if coding.strip().lower() not in ("gzip", "*"):
            continue
        name, _, value = params.strip().partition("=")
        if name.strip().lower() != "q":
            return True
        try:
            return float(value) > 0
        except ValueError:
            return False
    return False
