"""Register (SPEC 3.2, 3.8): a new node bound to its code, or the retry of an earlier one.

Everything happens in one transaction that starts by locking the code's row, so
concurrent Registers of one code are serialised: they can never exceed ``max_uses``, and
a retry racing with the Register it repeats finds that Register's node instead of
tripping over its key. A Register that fails rolls back and consumes no use.
"""

from __future__ import annotations

import datetime

import aiopg
import attrs
import psycopg2.errors

from gateway.errors import NameOrKeyInUse
from gateway.store.notifications import Invalidation, InvalidationKind, notify
from gateway.store.pool import Database
from gateway.store.records import NodeStatus, RegisterOutcome, Registration

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
    open: bool  # may register one more node now


class RegistrationStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def register(self, attempt: RegisterAttempt) -> Registration:
        """Register, or repeat a Register; a live node with this key or name (that is not
        this code's retry) raises ``NameOrKeyInUse`` and changes nothing."""
        async with self._db.cursor() as cur:
            try:
                async with cur.begin():
                    code = await _lock_code(cur, attempt)
                    if code is None:
                        return Registration(RegisterOutcome.INVALID_CODE)
                    if attempt.signed:
                        node_id = await _earlier_node(cur, code, attempt)
                        if node_id is not None:
                            if code.pre_approved:
                                await _rekey(cur, code, node_id, attempt)
                            return Registration(RegisterOutcome.RETRIED, node_id, code.pre_approved)
                    if not code.open:
                        return Registration(RegisterOutcome.INVALID_CODE)
                    if code.pre_approved and not attempt.signed:
                        return Registration(RegisterOutcome.SIGNATURE_REQUIRED)
                    node_id = await _new_node(cur, code, attempt)
                    return Registration(RegisterOutcome.REGISTERED, node_id, code.pre_approved)
            except psycopg2.errors.UniqueViolation as exc:
                raise NameOrKeyInUse() from exc


async def _lock_code(cur: aiopg.Cursor, attempt: RegisterAttempt) -> _Code | None:
    """The code's row, locked until commit; None when unknown or revoked. Expired and
    used-up codes are returned (closed): their retries still work."""
    await cur.execute(
        """
        SELECT id, org_id, pre_approved,
               status = 'OPEN' AND expires_at > %s AND uses < max_uses
        FROM pending_enrollments
        WHERE code_hash = %s AND revoked_at IS NULL
        FOR UPDATE
        """,
        (attempt.now, attempt.code_hash),
    )
    row = await cur.fetchone()
    if row is None:
        return None
    enrollment_id, org_id, pre_approved, is_open = row
    return _Code(int(enrollment_id), int(org_id), bool(pre_approved), bool(is_open))


async def _earlier_node(cur: aiopg.Cursor, code: _Code, attempt: RegisterAttempt) -> int | None:
    """The live node this code registered with this key within the retry window."""
    await cur.execute(
        """
        SELECT n.id FROM fleet_nodes n
        JOIN enrollment_code_nodes b ON b.fleet_node_id = n.id AND b.org_id = n.org_id
        WHERE n.identity_pubkey = %s AND n.deleted_at IS NULL
          AND b.pending_enrollment_id = %s AND b.registered_at > %s
        """,
        (attempt.identity_pubkey, code.enrollment_id, attempt.now - RETRY_WINDOW),
    )
    row = await cur.fetchone()
    return None if row is None else int(row[0])


async def _rekey(cur: aiopg.Cursor, code: _Code, node_id: int, attempt: RegisterAttempt) -> None:
    """Replace the node's api key with the one this retry hands out; end its session and
    challenge. The NOTIFY names no surviving session, so every replica drops them all."""
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


async def _new_node(cur: aiopg.Cursor, code: _Code, attempt: RegisterAttempt) -> int:
    """Create the node (confirmed, with its api key, for a pre-approved code), bind it to
    the code and count the use."""
    status = NodeStatus.CONFIRMED if code.pre_approved else NodeStatus.AWAITING_CONFIRMATION
    await cur.execute(
        """
        INSERT INTO fleet_nodes
            (org_id, name, identity_pubkey, identity_fingerprint, status, created_at,
             confirmed_at)
        VALUES (%s, %s, %s, %s, %s, %s, %s)
        RETURNING id
        """,
        (
            code.org_id,
            attempt.name,
            attempt.identity_pubkey,
            attempt.fingerprint,
            status.value,
            attempt.now,
            attempt.now if code.pre_approved else None,
        ),
    )
    (node_id,) = await cur.fetchone()
    await cur.execute(
        """
        INSERT INTO enrollment_code_nodes
            (fleet_node_id, org_id, pending_enrollment_id, registered_at)
        VALUES (%s, %s, %s, %s)
        """,
        (node_id, code.org_id, code.enrollment_id, attempt.now),
    )
    if code.pre_approved:
        await cur.execute(
            "UPDATE pending_enrollments SET uses = uses + 1 WHERE id = %s",
            (code.enrollment_id,),
        )
        await cur.execute(
            """
            INSERT INTO api_keys (org_id, fleet_node_id, key_hash, created_at)
            VALUES (%s, %s, %s, %s)
            """,
            (code.org_id, node_id, attempt.api_key_hash, attempt.now),
        )
    else:
        # The confirmation code's own status machine: Confirm finds the node through it.
        await cur.execute(
            """
            UPDATE pending_enrollments SET status = 'BOUND', fleet_node_id = %s, uses = 1
            WHERE id = %s
            """,
            (node_id, code.enrollment_id),
        )
    return int(node_id)
