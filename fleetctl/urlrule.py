"""The server URL rule of fleetctl: the agent's rule (SPEC 5.8, ``fleetwire.serverurl``),
applied to the admin token.

fleetctl sends ``Authorization: Bearer fleetadm_...`` on every call, so plain http is allowed
only to a loopback host unless ``--allow-insecure-transport`` is given (SPEC 7).
"""

from __future__ import annotations

from fleetctl.errors import ConfigurationError
from fleetwire import serverurl

_HINT = (
    ", so the admin token never crosses a network in clear; use https, or give "
    "--allow-insecure-transport before the command"
)


def check_server_url(url: str, *, allow_insecure_transport: bool) -> str:
    """The URL without a trailing slash, or :class:`ConfigurationError` naming the rule."""
    try:
        return serverurl.check_server_url(
            url, allow_insecure_transport=allow_insecure_transport, insecure_hint=_HINT
        )
    except serverurl.ServerUrlError as exc:
        raise ConfigurationError(str(exc)) from exc
