"""The server URL rule (SPEC 5.8, 7) shared by the agent and fleetctl: both send a secret
(an api key, an admin token) to this URL, so plain http is allowed only to a loopback host
unless the operator said otherwise.

Problems name the rule broken (``scheme``, ``host``, ``userinfo``, ``query``, ``fragment``,
``https``) and never echo the URL: it might carry a password in its userinfo. Each program
turns :class:`ServerUrlError` into its own configuration error (exit 78).
"""

from __future__ import annotations

import ipaddress
import urllib.parse

_LOOPBACK_NAMES = frozenset({"localhost", "localhost."})
LOOPBACK_ONLY = "plain http is only allowed to a loopback host (localhost, 127.0.0.0/8, ::1)"


class ServerUrlError(ValueError):
    """The URL breaks ``rule``; ``detail`` says how, without quoting the URL."""

    def __init__(self, rule: str, detail: str) -> None:
        super().__init__(f"invalid server URL (rule {rule!r}): {detail}")
        self.rule = rule
        self.detail = detail


def is_loopback_host(host: str) -> bool:
    if host.lower() in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_server_url(url: str, *, allow_insecure_transport: bool, insecure_hint: str) -> str:
    """The URL without a trailing slash, or :class:`ServerUrlError`; ``insecure_hint`` ends
    the ``https`` rule's message (how this program allows plain http)."""
    try:
        parts = urllib.parse.urlsplit(url.strip())
        _ = parts.port  # raises on a malformed port
    except ValueError as exc:
        raise ServerUrlError("host", "the host or port cannot be parsed") from exc
    if parts.scheme not in ("http", "https"):
        raise ServerUrlError("scheme", "the scheme must be http or https")
    if "@" in parts.netloc:
        raise ServerUrlError("userinfo", "credentials in the URL are not allowed")
    if not parts.hostname:
        raise ServerUrlError("host", "the URL must name a host")
    # urlsplit drops an empty "?" or "#": look at the text too.
    if parts.query or "?" in url:
        raise ServerUrlError("query", "the URL must not have a query")
    if parts.fragment or "#" in url:
        raise ServerUrlError("fragment", "the URL must not have a fragment")
    if (
        parts.scheme == "http"
        and not allow_insecure_transport
        and not is_loopback_host(parts.hostname)
    ):
        raise ServerUrlError("https", f"{LOOPBACK_ONLY}{insecure_hint}")
    return urllib.parse.urlunsplit(parts).rstrip("/")
