"""The server URL rule of fleetctl: the agent's rule (SPEC 5.8), applied to the admin token.

fleetctl sends ``Authorization: Bearer fleetadm_...`` on every call, so plain http is allowed
only to a loopback host unless ``--allow-insecure-transport`` is given (SPEC 7). Messages name
the rule broken (``scheme``, ``host``, ``userinfo``, ``query``, ``fragment``, ``https``) and
never echo the URL: it might carry a password in its userinfo.
"""

from __future__ import annotations

import ipaddress
import urllib.parse

from fleetctl.errors import ConfigurationError

_LOOPBACK_NAMES = frozenset({"localhost", "localhost."})


class InvalidServerUrl(ConfigurationError):
    """The server URL breaks one rule (exit 78); ``rule`` names it."""

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
    # urlsplit drops an empty "?" or "#": look at the text too.
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
            "plain http is only allowed to a loopback host (localhost, 127.0.0.0/8, ::1), "
            "so the admin token never crosses a network in clear; use https, or give "
            "--allow-insecure-transport before the command",
        )
    return urllib.parse.urlunsplit(parts).rstrip("/")
