"""The in-process cache of resolved sessions (SPEC 4.4).

Bounded (least recently used entries go first), an entry never outlives its
session's expiry, and it is invalidated by push: the LISTEN connection drops every
entry of a node whose session rotated or which was revoked. While that connection
is down notifications could be missed, so the cache is disabled (every lookup goes
to the database) and emptied when the connection comes back.

A connection that is up may still be dead without saying so, so the cache answers
(``enabled``) only within ``LIVENESS_WINDOW_SECONDS`` of the listener's last proof that
it is alive and caught up (``proved``, a monotonic time: every notification committed
before it has been applied). A revoke is therefore honoured within a second even by a
replica whose connection died silently. Entries are kept meanwhile: the connection
delivers in order, so they are right again by the next proof (or dropped with the
connection).

A lookup that raced with an invalidation of its node must not cache what it read:
callers take ``generation()`` before the database query and pass it to ``put``,
which checks the recent invalidations (and refuses when that history is too short).
"""

from __future__ import annotations

import collections
import math
import time
from collections.abc import Callable

from gateway.clock import Clock
from gateway.principals import NodePrincipal

_HISTORY = 1024
LIVENESS_WINDOW_SECONDS = 1.0  # SPEC 3.5, 4.4: every replica within 1 s


class SessionCache:
    def __init__(
        self,
        max_entries: int,
        clock: Clock,
        *,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._max_entries = max(0, max_entries)
        self._clock = clock
        self._monotonic = monotonic
        self._proved_at = -math.inf
        self._entries: collections.OrderedDict[bytes, NodePrincipal] = collections.OrderedDict()
        self._by_node: dict[int, set[bytes]] = {}
        self._generation = 0
        # (generation, node id or None for "everything", session id that survived)
        self._invalidations: collections.deque[tuple[int, int | None, int | None]] = (
            collections.deque(maxlen=_HISTORY)
        )
        self._enabled = False

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def enabled(self) -> bool:
        """May the cache answer? Only while the push channel is connected and proved
        itself alive within the last ``LIVENESS_WINDOW_SECONDS``."""
        return self._enabled and self._monotonic() - self._proved_at < LIVENESS_WINDOW_SECONDS

    def enable(self) -> None:
        """The push channel is connected again: start from empty, anything may have
        changed; answer once it has proved itself."""
        self.clear()
        self._enabled = True

    def proved(self, sent_at: float) -> None:
        """Every notification committed before monotonic time ``sent_at`` is applied."""
        self._proved_at = max(self._proved_at, sent_at)

    def disable(self) -> None:
        self._enabled = False
        self._proved_at = -math.inf
        self.clear()

    def generation(self) -> int:
        return self._generation

    def get(self, token_hash: bytes) -> NodePrincipal | None:
        principal = self._entries.get(token_hash)
        if principal is None:
            return None
        if principal.session_expires_at <= self._clock():
            self._remove(token_hash)
            return None
        self._entries.move_to_end(token_hash)
        return principal

    def put(self, token_hash: bytes, principal: NodePrincipal, generation: int) -> None:
        if not self._enabled or self._max_entries == 0 or self._stale(principal, generation):
            return
        self._entries[token_hash] = principal
        self._entries.move_to_end(token_hash)
        self._by_node.setdefault(principal.fleet_node_id, set()).add(token_hash)
        while len(self._entries) > self._max_entries:
            oldest = next(iter(self._entries))
            self._remove(oldest)

    def drop_node(self, fleet_node_id: int, keep_session_id: int | None = None) -> None:
        """Forget the node's sessions, except ``keep_session_id`` (the one that replaced
        them, which this replica may already have cached)."""
        self._invalidated(fleet_node_id, keep_session_id)
        for token_hash in list(self._by_node.get(fleet_node_id, ())):
            if self._entries[token_hash].session_id != keep_session_id:
                self._remove(token_hash)

    def clear(self) -> None:
        self._invalidated(None, None)
        self._entries.clear()
        self._by_node.clear()

    def _invalidated(self, node_id: int | None, keep_session_id: int | None) -> None:
        self._generation += 1
        self._invalidations.append((self._generation, node_id, keep_session_id))

    def _stale(self, principal: NodePrincipal, since: int) -> bool:
        """Was ``principal``'s node invalidated after generation ``since``?"""
        if since == self._generation:
            return False
        if not self._invalidations or self._invalidations[0][0] > since + 1:
            return True  # history too short to tell: play safe
        for generation, node_id, keep in reversed(self._invalidations):
            if generation <= since:
                break
            if node_id is None:
                return True
            if node_id == principal.fleet_node_id and keep != principal.session_id:
                return True
        return False

    def _remove(self, token_hash: bytes) -> None:
        principal = self._entries.pop(token_hash)
        hashes = self._by_node.get(principal.fleet_node_id)
        if hashes is not None:
            hashes.discard(token_hash)
            if not hashes:
                del self._by_node[principal.fleet_node_id]
