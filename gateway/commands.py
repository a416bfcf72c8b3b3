"""The production commands of ``fleet-gateway`` (SPEC 6.2, 3.6, 8): serve, init-db,
create-org, create-admin-token, list-admin-tokens, revoke-admin-token. Each returns its exit
code; ``__main__`` runs them."""

from __future__ import annotations

import argparse
import datetime
import json
import logging
import sys

from fleetwire.scalars import format_timestamp
from fleetwire.validators import INT64_MAX
from gateway import secrets, server
from gateway.cli_config import Command, Invocation
from gateway.config import ConfigError
from gateway.errors import NotFound, Unavailable
from gateway.principals import Role
from gateway.store import oneshot, schema
from gateway.store.records import AdminTokenSummary

logger = logging.getLogger(__name__)

EXIT_OK = 0
EXIT_CONFIG = 78


def say(text: str) -> None:
    """A line for the operator on stderr (stdout holds only a command's result)."""
    print(text, file=sys.stderr, flush=True)


async def create_admin_token(database_url: str, org_name: str, role: Role, label: str) -> str:
    """A new admin token (shown once, stored hashed); NotFound when the org does not exist."""
    token = secrets.new_admin_token()
    token_id = await oneshot.insert_admin_token(
        database_url, org_name, secrets.digest(token), role.value, label
    )
    if token_id is None:
        raise NotFound(f"organization {org_name!r} not found")
    return token


async def refuse_an_older_schema(database_url: str) -> None:
    """``serve`` refuses (78) a database older than itself (SPEC 8). A database that
    cannot be reached now is not refused: the gateway starts and answers 503 until it
    can (checked again by init-db on the next deploy)."""
    try:
        missing = await schema.missing_migrations(database_url)
    except Unavailable:
        logger.warning("database unreachable at start: its schema version is not checked")
        return
    if missing:
        raise ConfigError(_missing_text(missing) + "; run `fleet-gateway init-db` first")


def _missing_text(missing: tuple[schema.Migration, ...]) -> str:
    names = ", ".join(migration.label for migration in missing)
    return f"the database schema is older than this gateway (missing migrations: {names})"


async def _serve(invocation: Invocation) -> int:
    await refuse_an_older_schema(invocation.config.database_url)
    await server.serve_until_signalled(invocation.config)  # logs "listening on http://..."
    return EXIT_OK


def _init_db_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--check",
        action="store_true",
        help="change nothing: exit 0 when the schema is current, 78 naming what is missing",
    )


async def _init_db(invocation: Invocation) -> int:
    url = invocation.config.database_url
    if invocation.args.check:
        missing = await schema.missing_migrations(url)
        if missing:
            say(f"fleet-gateway: {_missing_text(missing)}")
            return EXIT_CONFIG
        say("schema is current")
        return EXIT_OK
    applied = await schema.migrate(url)
    if applied:
        say("applied migrations: " + ", ".join(migration.label for migration in applied))
    say("schema is current")
    return EXIT_OK


def _org_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("name", metavar="NAME", help="organization name")


async def _create_org(invocation: Invocation) -> int:
    print(
        await oneshot.ensure_org(invocation.config.database_url, invocation.args.name), flush=True
    )
    return EXIT_OK


def _token_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--org", required=True, metavar="NAME", help="organization name")
    parser.add_argument(
        "--role",
        choices=[role.value for role in Role],
        default=Role.ADMIN.value,
        help="admin (everything) or viewer (list only); default admin",
    )
    parser.add_argument("--label", default="", metavar="TEXT", help="what the token is for")


async def _create_admin_token(invocation: Invocation) -> int:
    args = invocation.args
    token = await create_admin_token(
        invocation.config.database_url, args.org, Role(args.role), args.label
    )
    print(token, flush=True)  # shown once; stored only as its hash
    return EXIT_OK


def _list_tokens_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--org", required=True, metavar="NAME", help="organization name")
    parser.add_argument(
        "--json", action="store_true", help='print {"adminTokens": [...]} (ids as strings)'
    )


def token_json(token: AdminTokenSummary) -> dict[str, str]:
    """One token in the API's JSON style: int64 id as a string, RFC 3339 times, an absent
    revocation omitted."""
    entry = {
        "id": str(token.token_id),
        "role": token.role.value,
        "label": token.label,
        "createdAt": format_timestamp(token.created_at),
    }
    if token.revoked_at is not None:
        entry["revokedAt"] = format_timestamp(token.revoked_at)
    return entry


def token_table(tokens: list[AdminTokenSummary]) -> str:
    rows = [("ID", "ROLE", "LABEL", "CREATED", "REVOKED")]
    for token in tokens:
        entry = token_json(token)
        # A label is free text: control characters are shown escaped, never interpreted
        # by the operator's terminal.
        label = "".join(c if c.isprintable() else repr(c)[1:-1] for c in entry["label"]) or "-"
        rows.append(
            (entry["id"], entry["role"], label, entry["createdAt"], entry.get("revokedAt", "-"))
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in rows
    )


async def _list_admin_tokens(invocation: Invocation) -> int:
    args = invocation.args
    tokens = await oneshot.list_admin_tokens(invocation.config.database_url, args.org)
    if tokens is None:
        raise NotFound(f"organization {args.org!r} not found")
    if args.json:
        print(json.dumps({"adminTokens": [token_json(t) for t in tokens]}), flush=True)
    else:
        print(token_table(tokens), flush=True)
    return EXIT_OK


def _token_id(text: str) -> int:
    if not (text.isascii() and text.isdigit()) or not 1 <= int(text) <= INT64_MAX:
        raise argparse.ArgumentTypeError(f"not an admin token id: {text!r}")
    return int(text)


def _revoke_token_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "token_id", type=_token_id, metavar="ID", help="the id list-admin-tokens shows"
    )


async def _revoke_admin_token(invocation: Invocation) -> int:
    token_id = invocation.args.token_id
    now = datetime.datetime.now(datetime.UTC)
    if not await oneshot.revoke_admin_token(invocation.config.database_url, token_id, now):
        raise NotFound(f"admin token {token_id} not found")
    # Admin tokens are checked against the database on every call: every replica refuses
    # this one from its next call on.
    print(f"revoked admin token {token_id}", flush=True)
    return EXIT_OK


COMMANDS: tuple[Command, ...] = (
    Command("serve", "serve the node and admin APIs", _serve),
    Command(
        "init-db",
        "apply the schema migrations this release ships (idempotent)",
        _init_db,
        _init_db_arguments,
    ),
    Command(
        "create-org",
        "create an organization (idempotent) and print its id",
        _create_org,
        _org_argument,
    ),
    Command(
        "create-admin-token",
        "create an admin token and print it once",
        _create_admin_token,
        _token_arguments,
    ),
    Command(
        "list-admin-tokens",
        "list an organization's admin tokens (never the tokens themselves)",
        _list_admin_tokens,
        _list_tokens_arguments,
    ),
    Command(
        "revoke-admin-token",
        "revoke an admin token (idempotent); every replica refuses it at its next call",
        _revoke_admin_token,
        _revoke_token_arguments,
    ),
)
