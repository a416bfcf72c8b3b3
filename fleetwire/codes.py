"""Connect error codes, their HTTP statuses, and the error body.

Both ends use this module: the gateway to answer, the agent and ``fleetctl`` to
read an answer. A Connect error body is ``{"code": "<code>", "message": "<text>"}``.
"""

from __future__ import annotations

import enum
import json

import attrs


class Code(enum.Enum):
    """A Connect error code; the value is its wire name."""

    CANCELED = "canceled"
    UNKNOWN = "unknown"
    INVALID_ARGUMENT = "invalid_argument"
    DEADLINE_EXCEEDED = "deadline_exceeded"
    NOT_FOUND = "not_found"
    ALREADY_EXISTS = "already_exists"
    PERMISSION_DENIED = "permission_denied"
    RESOURCE_EXHAUSTED = "resource_exhausted"
    FAILED_PRECONDITION = "failed_precondition"
    ABORTED = "aborted"
    OUT_OF_RANGE = "out_of_range"
    UNIMPLEMENTED = "unimplemented"
    INTERNAL = "internal"
    UNAVAILABLE = "unavailable"
    DATA_LOSS = "data_loss"
    UNAUTHENTICATED = "unauthenticated"

    @property
    def http_status(self) -> int:
        return _HTTP_STATUS[self]


_HTTP_STATUS = {
    Code.CANCELED: 499,
    Code.UNKNOWN: 500,
    Code.INVALID_ARGUMENT: 400,
    Code.DEADLINE_EXCEEDED: 504,
    Code.NOT_FOUND: 404,
    Code.ALREADY_EXISTS: 409,
    Code.PERMISSION_DENIED: 403,
    Code.RESOURCE_EXHAUSTED: 429,
    Code.FAILED_PRECONDITION: 400,
    Code.ABORTED: 409,
    Code.OUT_OF_RANGE: 400,
    Code.UNIMPLEMENTED: 501,
    Code.INTERNAL: 500,
    Code.UNAVAILABLE: 503,
    Code.DATA_LOSS: 500,
    Code.UNAUTHENTICATED: 401,
}

# What a Connect client assumes when an error body carries no code
# (connectrpc.com/docs/protocol, "HTTP to Error Code").
_CODE_FOR_HTTP_STATUS = {
    400: Code.INTERNAL,
    401: Code.UNAUTHENTICATED,
    403: Code.PERMISSION_DENIED,
    404: Code.UNIMPLEMENTED,
    429: Code.UNAVAILABLE,
    502: Code.UNAVAILABLE,
    503: Code.UNAVAILABLE,
    504: Code.UNAVAILABLE,
}


# Exceptions are not frozen: Python sets __traceback__/__notes__ on them.
@attrs.define(eq=False)
class ConnectError(Exception):
    """A Connect error as it travels on the wire.

    ``retry_after_seconds`` mirrors the ``Retry-After`` header (rate limits, 503).
    """

    code: Code
    message: str = ""
    retry_after_seconds: float | None = None

    def __str__(self) -> str:
        return f"{self.code.value}: {self.message}" if self.message else self.code.value

    def to_json(self) -> bytes:
        body: dict[str, str] = {"code": self.code.value}
        if self.message:
            body["message"] = self.message
        return json.dumps(body).encode()

    @classmethod
    def from_response(
        cls, http_status: int, body: bytes, retry_after_seconds: float | None = None
    ) -> ConnectError:
        """Read an error response; fall back to the status's code if the body is not Connect's."""
        fallback = _CODE_FOR_HTTP_STATUS.get(http_status, Code.UNKNOWN)
        try:
            data = json.loads(body)
        except (ValueError, RecursionError):
            return cls(fallback, f"HTTP {http_status}", retry_after_seconds)
        if not isinstance(data, dict):
            return cls(fallback, f"HTTP {http_status}", retry_after_seconds)
        try:
            code = Code(data.get("code"))
        except ValueError:
            code = fallback
        message = data.get("message")
        return cls(code, message if isinstance(message, str) else "", retry_after_seconds)
