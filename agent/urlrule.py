"""The server URL rule (SPEC 5.8, ``fleetwire.serverurl``), checked at enroll and re-checked
from the state on every use."""

from __future__ import annotations

from agent.errors import ConfigurationError
from agent.state import State
from fleetwire import serverurl

_HINT = "; use https, or pass --allow-insecure-transport to enroll"


class InvalidServerUrl(ConfigurationError):
    """The server URL breaks one rule of SPEC 5.8 (exit 78)."""

    def __init__(self, rule: str, message: str) -> None:
        super().__init__(message)
        self.rule = rule


def check_server_url(url: str, *, allow_insecure_transport: bool) -> str:
    """The URL without a trailing slash, or :class:`InvalidServerUrl`."""
    try:
        return serverurl.check_server_url(
            url, allow_insecure_transport=allow_insecure_transport, insecure_hint=_HINT
        )
    except serverurl.ServerUrlError as exc:
        raise InvalidServerUrl(exc.rule, str(exc)) from exc


def state_server_url(state: State) -> str:
    """The state's server URL, re-checked on every use (it may have been edited)."""
    return check_server_url(
        state.server_url, allow_insecure_transport=state.allow_insecure_transport
    )
