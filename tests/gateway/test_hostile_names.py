"""Odd and SQL-looking names and codes over HTTP and real PostgreSQL: a name is stored and
listed back verbatim, or refused with invalid_argument (NUL and other control characters,
lone surrogates, more than 255 characters); SQL-looking codes are just wrong codes."""

from __future__ import annotations

import json
import logging
import unicodedata
from typing import Any

import nacl.signing
import pytest
import pytest_asyncio
from hypothesis import example, given
from hypothesis import strategies as st

from fleetwire import procedures as p
from gateway.app import create_app
from tests.support.gateway_hostile import (
    HOSTILE,
    Client,
    World,
    assert_clean,
    assert_world_intact,
    hostile_config,
    listed_names,
    make_world,
    new_code,
    post,
)
from tests.support.gateway_http import b64

pytestmark = pytest.mark.asyncio

SQL_LOOKING = [
    "Robert'); DROP TABLE fleet_nodes;--",
    "'; DELETE FROM sessions WHERE ''='",
    "%s",
    "%(name)s",
    "$1",
    "\\x00",
    "\\",
    "' OR '1'='1",
    '"; SELECT pg_sleep(10); --',
    "{0}{name}%d%%",
]
UNICODE = [
    "\u202eexe.txt",  # right-to-left override
    "שלום-node",  # right-to-left script
    "\U0001f680" * 255,  # 255 characters, 1020 bytes of UTF-8
    "e\u0301",  # combining accent (not normalized)
    "\u00e9",
    "a\u200db",  # zero-width joiner
    "\ufeffbom",
    "\U0010fffd",
    "\uffff\ufffe\U0010ffff",  # noncharacters: valid UTF-8, stored as sent
    "\u2028\u2029",  # line and paragraph separators (Zl, Zp: not control characters)
    " leading and trailing ",
]
REFUSED = [
    "",
    "nul\x00byte",
    "\x00",
    "tab\there",
    "new\nline",
    "\x7f",
    "\x85next-line",  # C1 control
    "x" * 256,
    "\U0001f680" * 256,
    "\ud800",
    "\udfff\ud800",  # reversed pair: two lone surrogates
]


@pytest_asyncio.fixture
async def world(aiohttp_client: Any, database_url: str) -> World:
    client: Client = await aiohttp_client(create_app(hostile_config(database_url)))
    return await make_world(client, database_url)


@pytest.fixture
def registered() -> dict[str, int]:
    """Names registered so far in this test (shared by its hypothesis examples)."""
    return {"node-a": 0}


def acceptable(name: str) -> bool:
    """SPEC 2.1 (1..255 characters) plus the gateway's rule: no control characters, no
    lone surrogates (PostgreSQL text cannot hold NUL; neither fits in UTF-8)."""
    return 1 <= len(name) <= 255 and not any(unicodedata.category(c) in ("Cc", "Cs") for c in name)


async def register(world: World, code: str, name: str, *, ascii_json: bool = True) -> Any:
    key = nacl.signing.SigningKey.generate()
    body = {"enrollmentToken": code, "name": name, "identityPubkey": b64(bytes(key.verify_key))}
    raw = json.dumps(body, ensure_ascii=ascii_json).encode("utf-8", "surrogatepass")
    return await post(world.client, p.REGISTER.path, raw)


names = st.one_of(
    st.text(max_size=40),
    st.text(st.characters(codec=None), max_size=40),  # includes lone surrogates
    st.text(st.sampled_from("\x00\x1b\u202e\u200d\ufeff\U0001f680a'%$\\;-"), max_size=20),
    st.text(st.sampled_from("\U0001f680\u00e9x"), min_size=250, max_size=260),
)


@HOSTILE
@given(name=names, ascii_json=st.booleans())
@example(name="Robert'); DROP TABLE fleet_nodes;--", ascii_json=True)
@example(name="nul\x00byte", ascii_json=True)
@example(name="\ud83d", ascii_json=False)
async def test_any_name_is_listed_verbatim_or_refused(
    world: World,
    registered: dict[str, int],
    caplog: pytest.LogCaptureFixture,
    name: str,
    ascii_json: bool,
) -> None:
    """Register with any name: an acceptable new name is listed back exactly as sent, a
    taken one is failed_precondition, anything else is invalid_argument; never a 500."""
    caplog.set_level(logging.DEBUG)
    code = await new_code(world.client, world.admin, world.ledger)
    answer = await register(world, code, name, ascii_json=ascii_json)
    outcome = assert_clean(answer, {"ok", "invalid_argument", "failed_precondition"})
    if not acceptable(name):
        assert outcome == "invalid_argument"
        assert answer.body["message"].startswith(("name: ", "request body is not valid JSON"))
    elif name in registered:
        assert answer.body == {
            "code": "failed_precondition",
            "message": "fleet node identity or name already in use",
        }
    else:
        assert outcome == "ok"
        node_id = int(answer.body["fleetNodeId"])
        registered[name] = node_id
        assert (await listed_names(world.client, world.admin))[node_id] == name
    world.ledger.assert_not_logged(caplog.records)
    caplog.clear()


async def test_sql_looking_and_unicode_names_round_trip(world: World) -> None:
    """SQL-looking, format-string and odd Unicode names are stored and listed verbatim, and
    the tables they name are still there."""
    sent: dict[int, str] = {}
    for name in SQL_LOOKING + UNICODE:
        answer = await register(
            world, await new_code(world.client, world.admin, world.ledger), name
        )
        assert assert_clean(answer, {"ok"}) == "ok", name
        sent[int(answer.body["fleetNodeId"])] = name
    listed = await listed_names(world.client, world.admin)
    assert {node_id: listed[node_id] for node_id in sent} == sent
    await assert_world_intact(world)


async def test_refused_names_leave_the_code_usable(world: World) -> None:
    """NUL, control characters, a lone surrogate, empty or 256 characters: invalid_argument
    naming the field, and the same code then registers a good name."""
    code = await new_code(world.client, world.admin, world.ledger)
    for name in REFUSED:
        answer = await register(world, code, name)
        assert assert_clean(answer, {"invalid_argument"}) == "invalid_argument", repr(name)
        assert answer.body["message"].startswith("name: "), answer.body
    assert assert_clean(await register(world, code, "good-name"), {"ok"}) == "ok"


async def test_sql_looking_codes_and_keys_are_just_wrong(world: World) -> None:
    """SQL-looking enrollment codes, api keys and page tokens are refused like any wrong
    value, and every table is intact afterwards."""
    key = b64(bytes(32))
    for value in SQL_LOOKING:
        padded = (value * 20)[:43]
        body = {"enrollmentToken": padded, "name": "sql", "identityPubkey": key}
        answer = await post(world.client, p.REGISTER.path, json.dumps(body).encode())
        assert answer.body == {"code": "unauthenticated", "message": "invalid enrollment code"}
        body = {"apiKey": padded, "identityPubkey": key}
        answer = await post(world.client, p.BEGIN_AUTH_HANDSHAKE.path, json.dumps(body).encode())
        assert answer.body == {"code": "unauthenticated", "message": "invalid api key"}
        answer = await post(
            world.client,
            p.LIST_FLEET_NODES.path,
            json.dumps({"pageToken": value}).encode(),
            {"Authorization": f"Bearer {world.admin}"},
        )
        assert answer.body == {
            "code": "invalid_argument",
            "message": "pageToken: malformed page token",
        }
    await assert_world_intact(world)
