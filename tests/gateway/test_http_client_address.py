"""Client address resolution behind trusted proxies (SPEC 6.3)."""

from __future__ import annotations

import ipaddress

from gateway.client_address import ClientAddress, parse_address, resolve

PROXIES = (ipaddress.ip_network("10.0.0.0/8"), ipaddress.ip_network("::1/128"))


def test_untrusted_peer_headers_are_ignored() -> None:
    """A direct client cannot choose its address with X-Forwarded-For."""
    assert resolve("203.0.113.9", "http", ["1.2.3.4"], "https", PROXIES) == ClientAddress(
        "203.0.113.9", "http"
    )
    assert resolve("203.0.113.9", "http", ["1.2.3.4"], None, ()) == ClientAddress(
        "203.0.113.9", "http"
    )


def test_trusted_peer_rightmost_untrusted_hop_is_the_client() -> None:
    """Behind trusted proxies the rightmost untrusted hop wins; forged left entries do not."""
    hops = ["6.6.6.6", "198.51.100.7", "10.1.1.1"]  # forged, real client, inner proxy
    assert resolve("10.0.0.2", "http", hops, "https", PROXIES) == ClientAddress(
        "198.51.100.7", "https"
    )


def test_all_hops_trusted_gives_the_leftmost() -> None:
    """When every hop is a proxy of ours, the leftmost one is the client."""
    assert resolve("10.0.0.2", "http", ["10.9.9.9", "10.1.1.1"], None, PROXIES).address == (
        "10.9.9.9"
    )


def test_garbage_hop_stops_the_walk_at_the_last_readable_one() -> None:
    """An unreadable hop (``unknown``, obfuscated) is never used as a rate-limit key."""
    assert resolve("10.0.0.2", "http", ["unknown"], None, PROXIES).address == "10.0.0.2"
    assert resolve("10.0.0.2", "http", ["_hidden", "10.3.3.3"], None, PROXIES).address == (
        "10.3.3.3"
    )


def test_ipv6_and_ports_in_forwarded_values() -> None:
    """Forwarded-style values with ports and brackets are read as addresses."""
    assert str(parse_address('"[2001:db8:cafe::17]:4711"')) == "2001:db8:cafe::17"
    assert str(parse_address("192.0.2.60:8080")) == "192.0.2.60"
    assert str(parse_address("2001:db8::1")) == "2001:db8::1"
    assert parse_address("unknown") is None
    assert resolve("::1", "http", ["2001:db8::5"], None, PROXIES).address == "2001:db8::5"


def test_ignores_a_bogus_proto() -> None:
    """Only http and https are believed as the forwarded scheme."""
    assert resolve("10.0.0.2", "http", ["1.2.3.4"], "gopher", PROXIES).scheme == "http"
