"""The server URL rule (SPEC 5.8), checked at enroll and re-checked from the state on every use.

Messages name the rule broken (``scheme``, ``host``, ``userinfo``, ``query``, ``fragment``,
``https``) and never echo the URL: it might carry a password in its userinfo.
"""

from __future__ import annotations

import ipaddress
import urllib.parse

from agent.errors import ConfigurationError
from agent.state import State

_LOOPBACK_NAMES = frozenset({"localhost", "localhost."})


class InvalidServerUrl(ConfigurationError):
    """The server URL breaks one rule of SPEC 5.8 (exit 78)."""

    def __init__(self, rule: str, detail: str) -> None:
        super().__init__(f"invalid server URL (rule {rule!r}): {detail}")
        self.rule = rule


def is_loopback_host(host: str) -> bool:
    if host.lower() in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def state_server_url(state: State) -> str:
    """The state's server URL, re-checked on every use (it may have been edited)."""
    return check_server_url(
        state.server_url, allow_insecure_transport=state.allow_insecure_transport
    )


def check_server_url(url: str, *, allow_insecure_transport: bool) -> str:
    """The URL without a trailing slash, or :class:`InvalidServerUrl`."""
    try:
        parts = urllib.parse.urlsplit(url.strip())
        _ = parts.port  # raises on a malformed port
    except ValueError as exc:
        raise InvalidServerUrl("host", "the host or port cannot be parsed") from exc
    if parts.scheme not in ("http", "https"):
        raise InvalidServerUrl("scheme", "the scheme must be http or https")
    if "@" in parts.netloc:
        raise InvalidServerUrl("userinfo", "credentials in the URL are not allowed")
    if not parts.hostname:
        raise InvalidServerUrl("host", "the URL must name a host")
    if parts.query or "?" in url:
        raise InvalidServerUrl("query", "the URL must not have a query")
    if parts.fragment or "#" in url:
        raise InvalidServerUrl("fragment", "the URL must not have a fragment")
    if (
        parts.scheme == "http"
        and not allow_insecure_transport
        and not is_loopback_host(parts.hostname)
    ):
        raise InvalidServerUrl(
            "https",
            "plain http is only allowed to a loopback host (localhost, 127.0.0.0/8, ::1); "
            "use https, or pass --allow-insecure-transport to enroll",
        )
    return urllib.parse.urlunsplit(parts).rstrip("/")
