"""Who is really calling: the client address and scheme behind trusted proxies (SPEC 6.3).

``X-Forwarded-For`` / ``X-Forwarded-Proto`` (or ``Forwarded``) are believed only
when the socket peer is one of ``--trusted-proxies``. The forwarded chain is then
walked right to left, skipping trusted hops: the first untrusted address was
written by a proxy we trust, while anything to its left may be forged by the
client. Rate limits and logs use the result.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping, Sequence

import attrs
from aiohttp import web

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@attrs.frozen
class ClientAddress:
    address: str
    scheme: str


def parse_address(text: str) -> Address | None:
    """An IP from a forwarded hop: ``1.2.3.4``, ``1.2.3.4:80``, ``[::1]:80``, ``::1``;
    ``None`` for ``unknown``, obfuscated identifiers and garbage."""
    spelled = text.strip().strip('"')
    if spelled.startswith("["):
        spelled = spelled[1:].partition("]")[0]
    elif spelled.count(":") == 1:
        spelled = spelled.partition(":")[0]
    try:
        return ipaddress.ip_address(spelled)
    except ValueError:
        return None


def _trusted(address: Address, trusted: Iterable[Network]) -> bool:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return any(address in network for network in trusted)


def resolve(
    peer: str | None,
    scheme: str,
    forwarded_for: Sequence[str],
    forwarded_proto: str | None,
    trusted: Sequence[Network],
) -> ClientAddress:
    """The client behind ``peer``: ``forwarded_for`` lists hops left (client) to right."""
    peer_address = parse_address(peer) if peer else None
    if peer_address is None or not _trusted(peer_address, trusted) or not forwarded_for:
        return ClientAddress(peer or "unknown", scheme)
    client = peer_address
    for hop in reversed(forwarded_for):
        address = parse_address(hop)
        if address is None:
            break  # a hop nobody can rate-limit on: stay with the last one we could read
        client = address
        if not _trusted(address, trusted):
            break
    if forwarded_proto in ("http", "https"):
        scheme = forwarded_proto
    return ClientAddress(str(client), scheme)


def _split(values: Iterable[str]) -> list[str]:
    return [part.strip() for value in values for part in value.split(",") if part.strip()]


def _from_forwarded(elements: Sequence[Mapping[str, str]]) -> tuple[list[str], str | None]:
    hops = [element["for"] for element in elements if "for" in element]
    protos = [element["proto"].lower() for element in elements if "proto" in element]
    return hops, (protos[0] if protos else None)


def client_address(request: web.BaseRequest, trusted: Sequence[Network]) -> ClientAddress:
    """The resolved client of ``request`` (X-Forwarded-For first, then Forwarded)."""
    if not trusted:
        return ClientAddress(request.remote or "unknown", request.scheme)
    hops = _split(request.headers.getall("X-Forwarded-For", ()))
    protos = _split(request.headers.getall("X-Forwarded-Proto", ()))
    proto = protos[0].lower() if protos else None
    if not hops:
        hops, proto = _from_forwarded(request.forwarded)
    return resolve(request.remote, request.scheme, hops, proto, trusted)
