"""The benchmark's own Connect calls over aiohttp (set-up and the cold paths)."""

from __future__ import annotations

import base64
from typing import Any

import aiohttp
import nacl.signing

from bench.heartbeats.seed import SeededNode
from fleetwire import procedures as p
from fleetwire.identity import auth_message


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


async def post(
    http: aiohttp.ClientSession, url: str, body: dict[str, Any], **kwargs: Any
) -> dict[str, Any]:
    async with http.post(url, json=body, **kwargs) as resp:
        answer: dict[str, Any] = await resp.json(content_type=None)
        if resp.status != 200:
            raise RuntimeError(f"{url.rsplit('/', 1)[-1]} answered {resp.status}: {answer}")
        return answer


async def handshake(http: aiohttp.ClientSession, base_url: str, node: SeededNode) -> str:
    """A real node handshake over HTTP: Begin, sign the challenge, Complete."""
    assert node.api_key is not None and node.identity_seed is not None
    key = nacl.signing.SigningKey(node.identity_seed)
    begin = await post(
        http,
        base_url + p.BEGIN_AUTH_HANDSHAKE.path,
        {"apiKey": node.api_key, "identityPubkey": b64(bytes(key.verify_key))},
    )
    challenge = base64.b64decode(begin["challenge"])
    signature = key.sign(auth_message(challenge)).signature
    done = await post(
        http,
        base_url + p.COMPLETE_AUTH_HANDSHAKE.path,
        {"challenge": b64(challenge), "signature": b64(signature)},
    )
    token: str = done["sessionToken"]
    return token
