"""``fleet-gateway list-admin-tokens`` and ``revoke-admin-token`` (SPEC 3.6): the listing
never shows a token, ``--json`` has the SPEC's shape, and a revoked token is refused at its
next call by every replica."""

from __future__ import annotations

import asyncio
import datetime
import json
import os
import subprocess
import sys

import pytest

from gateway.commands import create_admin_token
from gateway.errors import Unauthenticated
from gateway.principals import Role
from gateway.store import oneshot
from tests.support.gateway_services import make_config, open_harness

RFC3339 = "%Y-%m-%dT%H:%M:%S"


def gateway(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLEET_")}
    return subprocess.run(
        [sys.executable, "-m", "gateway", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )


def make_tokens(database_url: str) -> list[str]:
    async def make() -> list[str]:
        await oneshot.ensure_org(database_url, "acme")
        await oneshot.ensure_org(database_url, "globex")
        return [
            await create_admin_token(database_url, "acme", Role.ADMIN, "ops"),
            await create_admin_token(database_url, "acme", Role.VIEWER, "dash\x1b[2J"),
            await create_admin_token(database_url, "globex", Role.ADMIN, "theirs"),
        ]

    return asyncio.run(make())


def listing(database_url: str, org: str = "acme") -> list[dict[str, str]]:
    done = gateway("list-admin-tokens", "--org", org, "--json", "--database-url", database_url)
    assert done.returncode == 0, done.stderr
    body = json.loads(done.stdout)
    assert list(body) == ["adminTokens"]
    tokens: list[dict[str, str]] = body["adminTokens"]
    return tokens


def test_tokens_are_listed_without_the_token(database_url: str) -> None:
    """--json lists the organization's tokens oldest first with string ids, role, label
    and creation time; no token appears in any output; the table escapes control text."""
    secrets = make_tokens(database_url)
    tokens = listing(database_url)
    assert [(t["role"], t["label"]) for t in tokens] == [
        ("admin", "ops"),
        ("viewer", "dash\x1b[2J"),
    ]
    assert all(set(t) == {"id", "role", "label", "createdAt"} for t in tokens)
    assert all(t["id"].isdigit() for t in tokens) and tokens[0]["id"] < tokens[1]["id"]
    created = datetime.datetime.strptime(tokens[0]["createdAt"][:19], RFC3339)
    assert tokens[0]["createdAt"].endswith("Z") and created.year >= 2026
    table = gateway("list-admin-tokens", "--org", "acme", "--database-url", database_url)
    assert table.returncode == 0, table.stderr
    assert table.stdout.splitlines()[0].split() == ["ID", "ROLE", "LABEL", "CREATED", "REVOKED"]
    assert "dash\\x1b[2J" in table.stdout and "\x1b" not in table.stdout
    for secret in secrets:
        assert secret not in table.stdout + table.stderr


def test_revoke_is_idempotent_and_shows_in_the_listing(database_url: str) -> None:
    """revoke-admin-token exits 0, again too; the listing shows revokedAt; an unknown id
    exits 1 and a malformed one is a usage error (2); an unknown org exits 1."""
    make_tokens(database_url)
    first = listing(database_url)[0]
    for _ in range(2):
        done = gateway("revoke-admin-token", first["id"], "--database-url", database_url)
        assert done.returncode == 0, done.stderr
        assert done.stdout == f"revoked admin token {first['id']}\n"
    revoked = listing(database_url)[0]
    assert revoked["revokedAt"].endswith("Z") and revoked["revokedAt"] >= revoked["createdAt"]
    first_time = revoked["revokedAt"]
    gateway("revoke-admin-token", first["id"], "--database-url", database_url)
    assert listing(database_url)[0]["revokedAt"] == first_time
    assert "revokedAt" not in listing(database_url)[1]

    missing = gateway("revoke-admin-token", "999999", "--database-url", database_url)
    assert missing.returncode == 1 and "not found" in missing.stderr
    assert gateway("revoke-admin-token", "-1", "--database-url", database_url).returncode == 2
    nowhere = gateway("list-admin-tokens", "--org", "nope", "--database-url", database_url)
    assert nowhere.returncode == 1 and "nope" in nowhere.stderr
    assert "Traceback" not in missing.stderr + nowhere.stderr


@pytest.mark.asyncio
async def test_a_revoked_token_is_refused_by_every_replica_at_its_next_call(
    database_url: str,
) -> None:
    """Two gateways accept the token; after revoke-admin-token both refuse its next call."""
    await oneshot.ensure_org(database_url, "acme")
    token = await create_admin_token(database_url, "acme", Role.ADMIN, "ops")
    other = await create_admin_token(database_url, "acme", Role.ADMIN, "other")
    config = make_config(database_url)
    async with open_harness(config) as a, open_harness(config) as b:
        principal = await a.services.auth.resolve_admin_token(token)
        assert principal == await b.services.auth.resolve_admin_token(token)
        done = await asyncio.to_thread(
            gateway, "revoke-admin-token", str(principal.token_id), "--database-url", database_url
        )
        assert done.returncode == 0, done.stderr
        for replica in (a, b):
            with pytest.raises(Unauthenticated, match="^invalid admin token$"):
                await replica.services.auth.resolve_admin_token(token)
            await replica.services.auth.resolve_admin_token(other)  # the others still work
