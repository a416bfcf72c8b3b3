"""The store of one gateway process: one pool, one object per area."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable

import attrs

from gateway.store.codes import CodeStore
from gateway.store.credentials import CredentialStore
from gateway.store.enrollment import EnrollmentStore
from gateway.store.events import EventStore
from gateway.store.housekeeping import Housekeeping
from gateway.store.last_seen import LastSeenStore
from gateway.store.liveness import LivenessStore
from gateway.store.nodes import NodeStore
from gateway.store.pool import Database, open_database
from gateway.store.registration import RegistrationStore
from gateway.store.summary import SummaryStore


@attrs.frozen
class Store:
    database: Database
    enrollment: EnrollmentStore
    registration: RegistrationStore
    codes: CodeStore
    credentials: CredentialStore
    nodes: NodeStore
    last_seen: LastSeenStore
    housekeeping: Housekeeping
    events: EventStore
    liveness: LivenessStore
    summary: SummaryStore


@contextlib.asynccontextmanager
async def open_store(
    database_url: str,
    *,
    pool_size: int,
    timeout_seconds: float,
    on_pool_change: Callable[[int], None],
) -> AsyncIterator[Store]:
    """The store over a new pool (no connection opened yet), closed on the way out."""
    async with open_database(
        database_url,
        maxsize=pool_size,
        timeout_seconds=timeout_seconds,
        on_pool_change=on_pool_change,
    ) as db:
        yield Store(
            database=db,
            enrollment=EnrollmentStore(db),
            registration=RegistrationStore(db),
            codes=CodeStore(db),
            credentials=CredentialStore(db),
            nodes=NodeStore(db),
            last_seen=LastSeenStore(db),
            housekeeping=Housekeeping(db),
            events=EventStore(db),
            liveness=LivenessStore(db),
            summary=SummaryStore(db),
        )
