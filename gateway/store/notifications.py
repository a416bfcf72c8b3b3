"""The push channel's messages: what a write NOTIFYs and what the LISTEN side reads back.

A revoke NOTIFYs ``revoke:<node id>``; a new session ``session:<node id>:<session id>``.
Both are sent inside the transaction that makes the change, so they reach listeners
exactly when it commits (SPEC 3.4, 3.5).
"""

from __future__ import annotations

import enum

import aiopg
import attrs

CHANNEL = "fleet_node_events"


class InvalidationKind(enum.Enum):
    REVOKE = "revoke"  # the node is gone: forget everything about it
    SESSION = "session"  # the node has a new session: forget the others


@attrs.frozen
class Invalidation:
    kind: InvalidationKind
    fleet_node_id: int
    session_id: int | None = None  # the session that survives (SESSION only)

    def payload(self) -> str:
        parts = [self.kind.value, str(self.fleet_node_id)]
        if self.session_id is not None:
            parts.append(str(self.session_id))
        return ":".join(parts)

    @classmethod
    def parse(cls, payload: str) -> Invalidation | None:
        """The invalidation a payload names, or None when it is malformed."""
        kind, _, rest = payload.partition(":")
        node, _, session = rest.partition(":")
        try:
            parsed_kind = InvalidationKind(kind)
        except ValueError:
            return None
        if not node.isdigit() or not (session == "" or session.isdigit()):
            return None
        return cls(parsed_kind, int(node), int(session) if session else None)


async def notify(cur: aiopg.Cursor, invalidation: Invalidation) -> None:
    """Queue the notification in the cursor's transaction (sent on commit)."""
    await cur.execute("SELECT pg_notify(%s, %s)", (CHANNEL, invalidation.payload()))
