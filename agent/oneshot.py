"""What a gateway failure means to a one-shot command (enroll, refresh): SPEC 5.10."""

from __future__ import annotations

from agent.errors import AgentError, Transient


class GatewayUnavailable(AgentError):
    """A one-shot command could not reach the gateway, or it answered 5xx/429 (exit 69)."""


def unavailable(exc: Transient) -> GatewayUnavailable:
    return GatewayUnavailable(f"the gateway is unreachable or unavailable: {exc}; try again later")
