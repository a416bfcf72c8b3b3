"""Register (SPEC 3.2, 3.8): a new node bound to its code, or the retry of an earlier one.

A new node is written first (node, binding, api key: one statement), and the code's use is
counted last, by a guarded UPDATE of the code's row (``uses < max_uses``, still open). That
UPDATE is the only place concurrent Registers of one code wait for each other, so they can
never exceed ``max_uses``, and the row stays locked only for that statement and the commit:
a thousand nodes of one code are serialised on two round trips each, not on the whole
transaction (the node's events are written after it, as every writer of an event does
last). A Register that fails (code closed meanwhile, key or name in use) rolls back
and consumes no use.

A retry (signed, same code, a live node of this key bound to it within 24 h) takes the
code's row FOR SHARE, so it cannot succeed after a revocation of the code committed, and
the node's row FOR UPDATE, so concurrent retries re-key one after the other.
"""

from __future__ import annotations

import datetime

import aiopg
import attrs
import psycopg2.errors

from gateway.errors import NameOrKeyInUse
from gateway.store.events import record_event
from gateway.store.notifications import Invalidation, InvalidationKind, notify
from gateway.store.pool import Database
from gateway.store.records import EventKind, NodeStatus, RegisterOutcome, Registration

# A Register repeated later than this after the first one is a new Register (SPEC 3.8).
RETRY_WINDOW = datetime.timedelta(hours=24)


@attrs.frozen
class RegisterAttempt:
    """One Register as the store sees it: hashes and facts, no secret."""

    code_hash: bytes
    now: datetime.datetime
    name: str
    identity_pubkey: bytes
    fingerprint: str
    signed: bool  # carried a registration signature the service verified
    api_key_hash: bytes  # the key a pre-approved code hands out (unused otherwise)


@attrs.frozen
class _Code:
    enrollment_id: int
    org_id: int
    pre_approved: bool
    open: bool  # could register one more node when read (the UPDATE decides)
    earlier_node_id: int | None  # the live node this key registered with it, in the window


class _CodeClosed(Exception):
    """The guarded use count found the code closed: roll the new node back."""


class RegistrationStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def register(self, attempt: RegisterAttempt) -> Registration:
        """Register, or repeat a Register; a live node with this key or name (that is not
        this code's retry) raises ``NameOrKeyInUse`` and changes nothing."""
        # A signed Register gets a second pass: its key may be in use by this very code's
        # node, made by the Register it repeats, which committed while this one ran.
        passes = 2 if attempt.signed else 1
        async with self._db.cursor() as cur:
            while True:
                passes -= 1
                try:
                    async with cur.begin():
                        return await _register(cur, attempt)
                except _CodeClosed:
                    return Registration(RegisterOutcome.INVALID_CODE)
                except psycopg2.errors.UniqueViolation as exc:
                    if passes == 0:
                        raise NameOrKeyInUse() from exc


async def _register(cur: aiopg.Cursor, attempt: RegisterAttempt) -> Registration:
    code = await _find_code(cur, attempt)
    if code is None:
        return Registration(RegisterOutcome.INVALID_CODE)
    if attempt.signed and code.earlier_node_id is not None:
        node_id = code.earlier_node_id
        if not await _hold_code(cur, code):
            return Registration(RegisterOutcome.INVALID_CODE)  # revoked meanwhile
        if code.pre_approved:
            await _rekey(cur, code, node_id, attempt)
        return Registration(RegisterOutcome.RETRIED, node_id, code.pre_approved)
    if not code.open:
        return Registration(RegisterOutcome.INVALID_CODE)
    if code.pre_approved and not attempt.signed:
        return Registration(RegisterOutcome.SIGNATURE_REQUIRED)
    node_id = await _insert_node(cur, code, attempt)
    await _count_use(cur, code, node_id, attempt.now)
    # Last: the events' id counter is one row every writer of an event waits for.
    await record_event(cur, code.org_id, node_id, EventKind.REGISTERED, attempt.now)
    if code.pre_approved:
        await record_event(cur, code.org_id, node_id, EventKind.CONFIRMED, attempt.now)
    return Registration(RegisterOutcome.REGISTERED, node_id, code.pre_approved)


async def _find_code(cur: aiopg.Cursor, attempt: RegisterAttempt) -> _Code | None:
    """The code (unknown or revoked: None), read without a lock, and the node this key
    registered with it. Expired and used-up codes are returned: their retries still work."""
    await cur.execute(
        """
        SELECT e.id, e.org_id, e.pre_approved,
               e.status = 'OPEN' AND e.expires_at > %(now)s AND e.uses < e.max_uses,
               (SELECT n.id FROM enrollment_code_nodes b
                JOIN fleet_nodes n ON n.id = b.fleet_node_id AND n.org_id = b.org_id
                WHERE b.pending_enrollment_id = e.id AND b.registered_at > %(since)s
                  AND n.identity_pubkey = %(pubkey)s AND n.deleted_at IS NULL)
        FROM pending_enrollments e
        WHERE e.code_hash = %(code_hash)s AND e.revoked_at IS NULL
        """,
        {
            "now": attempt.now,
            "since": attempt.now - RETRY_WINDOW,
            "pubkey": attempt.identity_pubkey,
            "code_hash": attempt.code_hash,
        },
    )
    row = await cur.fetchone()
    if row is None:
        return None
    enrollment_id, org_id, pre_approved, is_open, earlier = row
    return _Code(
        int(enrollment_id),
        int(org_id),
        bool(pre_approved),
        bool(is_open),
        None if earlier is None else int(earlier),
    )


async def _hold_code(cur: aiopg.Cursor, code: _Code) -> bool:
    """Share-lock the code until commit, if it is still not revoked."""
    await cur.execute(
        "SELECT 1 FROM pending_enrollments WHERE id = %s AND revoked_at IS NULL FOR SHARE",
        (code.enrollment_id,),
    )
    return await cur.fetchone() is not None


async def _rekey(cur: aiopg.Cursor, code: _Code, node_id: int, attempt: RegisterAttempt) -> None:
    """Replace the node's api key with the one this retry hands out; end its session and
    challenge. The NOTIFY names no surviving session, so every replica drops them all."""
    # The node's row first: concurrent retries (and a revoke of the node) take turns.
    await cur.execute("SELECT 1 FROM fleet_nodes WHERE id = %s FOR UPDATE", (node_id,))
    await cur.execute(
        "UPDATE api_keys SET revoked_at = %s WHERE fleet_node_id = %s AND revoked_at IS NULL",
        (attempt.now, node_id),
    )
    await cur.execute(
        """
        INSERT INTO api_keys (org_id, fleet_node_id, key_hash, created_at)
        VALUES (%s, %s, %s, %s)
        """,
        (code.org_id, node_id, attempt.api_key_hash, attempt.now),
    )
    await cur.execute("DELETE FROM sessions WHERE fleet_node_id = %s", (node_id,))
    await cur.execute("DELETE FROM auth_challenges WHERE fleet_node_id = %s", (node_id,))
    await notify(cur, Invalidation(InvalidationKind.SESSION, node_id))


async def _insert_node(cur: aiopg.Cursor, code: _Code, attempt: RegisterAttempt) -> int:
    """The node (confirmed, with its api key, for a pre-approved code) and its binding to
    the code, in one statement; no lock on the code yet."""
    status = NodeStatus.CONFIRMED if code.pre_approved else NodeStatus.AWAITING_CONFIRMATION
    await cur.execute(
        """
        WITH node AS (
            INSERT INTO fleet_nodes
                (org_id, name, identity_pubkey, identity_fingerprint, status, created_at,
                 confirmed_at)
            VALUES (%(org_id)s, %(name)s, %(pubkey)s, %(fingerprint)s, %(status)s, %(now)s,
                    CASE WHEN %(pre_approved)s THEN %(now)s::timestamptz END)
            RETURNING id, org_id
        ), binding AS (
            INSERT INTO enrollment_code_nodes
                (fleet_node_id, org_id, pending_enrollment_id, registered_at)
            SELECT id, org_id, %(code_id)s, %(now)s FROM node
        ), api_key AS (
            INSERT INTO api_keys (org_id, fleet_node_id, key_hash, created_at)
            SELECT org_id, id, %(key_hash)s, %(now)s FROM node WHERE %(pre_approved)s
        )
        SELECT id FROM node
        """,
        {
            "org_id": code.org_id,
            "name": attempt.name,
            "pubkey": attempt.identity_pubkey,
            "fingerprint": attempt.fingerprint,
            "status": status.value,
            "now": attempt.now,
            "pre_approved": code.pre_approved,
            "code_id": code.enrollment_id,
            "key_hash": attempt.api_key_hash,
        },
    )
    (node_id,) = await cur.fetchone()
    return int(node_id)


async def _count_use(cur: aiopg.Cursor, code: _Code, node_id: int, now: datetime.datetime) -> None:
    """Count the use if the code is still open (the row lock, held until commit, is what
    serialises concurrent Registers of the code); else :class:`_CodeClosed`. A
    confirmation code also moves to BOUND with its node, which Confirm looks it up by."""
    await cur.execute(
        """
        UPDATE pending_enrollments
        SET uses = uses + 1,
            status = CASE WHEN pre_approved THEN status ELSE 'BOUND' END,
            fleet_node_id = CASE WHEN pre_approved THEN fleet_node_id ELSE %(node_id)s END
        WHERE id = %(code_id)s AND revoked_at IS NULL AND status = 'OPEN'
          AND expires_at > %(now)s AND uses < max_uses
        RETURNING id
        """,
        {"node_id": node_id, "code_id": code.enrollment_id, "now": now},
    )
    if await cur.fetchone() is None:
        raise _CodeClosed()
