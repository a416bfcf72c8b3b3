"""The agent's errors: every failure the commands can meet, mapped once at each boundary.

Hierarchy (``__main__`` turns each into an exit code of SPEC 5.9)::

    AgentError                      base; ``str()`` is safe to show (never a secret)
    ├── ConfigurationError          78: bad flag value, bad state, invalid server URL
    │   ├── NoState                 78: nothing enrolled in this state directory
    │   ├── StateNotSaved           78: a save failed (disk full, ...); the old file is intact
    │   └── EmptyInput              78: empty line or end of input at a prompt
    ├── StateLocked                 75: another process holds state.lock (``pid``)
    ├── CredentialsRejected         77: enrollment code or api key refused: re-enroll
    ├── NodeGone                    77: the gateway no longer knows this node: re-enroll
    ├── FingerprintMismatch         1:  the gateway's fingerprint is not ours
    ├── GatewayUnavailable          69: a one-shot command met a Transient failure
    └── GatewayError                anything the gateway call produced
        ├── Transient               69 for one-shot commands; ``run`` backs off and retries.
        │   │                       network, timeouts, 3xx (never followed), 5xx, 429.
        │   │                       ``retry_after_seconds`` mirrors Retry-After.
        │   └── TlsFailure          the TLS handshake failed (e.g. an untrusted certificate):
        │                           ``enroll`` exits 69 at once instead of retrying
        ├── Rejected                a Connect error that is not transient (``code``,
        │   │                       ``message``); callers decide what it means for them.
        │   └── HandshakeFailed     a handshake step refused in a way that beginning
        │                           again may fix (``run``: transient; one-shot: 1)
        └── ProtocolError           1: a 200 whose body is not the expected message

The ``client`` module is the only place httpx exceptions and HTTP statuses become these;
``session`` turns a ``Rejected`` handshake into ``CredentialsRejected`` or ``HandshakeFailed``.
"""

from __future__ import annotations

from fleetwire.codes import Code


class AgentError(Exception):
    """Base of every error the agent reports to its user."""


class ConfigurationError(AgentError):
    """A configuration or state problem the operator must fix (exit 78)."""


class NoState(ConfigurationError):
    """No enrolled state in the state directory (exit 78)."""


class StateNotSaved(ConfigurationError):
    """A save of state.json failed, e.g. on a full disk (78); the old file is intact."""


class EmptyInput(ConfigurationError):
    """A prompt got an empty line or end of input (exit 78)."""


class StateLocked(AgentError):
    """Another process holds the state directory's lock (exit 75)."""

    def __init__(self, lock_path: str, pid: int | None) -> None:
        holder = f"process {pid}" if pid is not None else "another process"
        super().__init__(f"state directory is locked by {holder} ({lock_path})")
        self.pid = pid


class CredentialsRejected(AgentError):
    """The gateway refused the enrollment code or the api key (exit 77)."""


class NodeGone(AgentError):
    """The gateway no longer knows this node, e.g. it was revoked (exit 77)."""


class FingerprintMismatch(AgentError):
    """The fingerprint the gateway computed is not the one of our key (exit 1)."""


class GatewayUnavailable(AgentError):
    """A one-shot command could not reach the gateway, or it answered 5xx/429 (exit 69)."""

    @classmethod
    def from_transient(cls, exc: Transient) -> GatewayUnavailable:
        return cls(f"the gateway is unreachable or unavailable: {exc}; try again later")


class GatewayError(AgentError):
    """A call to the gateway failed."""


class Transient(GatewayError):
    """A failure worth retrying later: network, timeout, 3xx, 5xx, 429."""

    def __init__(self, reason: str, retry_after_seconds: float | None = None) -> None:
        super().__init__(reason)
        self.retry_after_seconds = retry_after_seconds


class TlsFailure(Transient):
    """The TLS handshake with the gateway failed: a configuration problem more often than
    an outage, so a one-shot command does not spend its retry time on it."""


class Rejected(GatewayError):
    """The gateway answered with a Connect error that retrying will not fix by itself."""

    def __init__(self, procedure: str, code: Code, message: str) -> None:
        super().__init__(f"{procedure}: {code.value}: {message}" if message else code.value)
        self.procedure = procedure
        self.code = code
        self.message = message


class HandshakeFailed(Rejected):
    """A handshake step failed in a way that beginning again may fix (``run``: transient)."""


class ProtocolError(GatewayError):
    """The gateway answered 200 with a body that is not the expected message."""
