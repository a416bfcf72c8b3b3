"""Seeding N enrolled nodes with real credentials and live sessions (set-up, timed apart).

Two ways, both split over forked worker processes:

* ``services``: each node goes the way a real one does, minus HTTP: the admin service
  mints an enrollment code, the enrollment service registers a fresh ed25519 identity
  key, the admin service confirms it (minting the api key), and the auth service runs
  the handshake (Begin, an ed25519 signature over the challenge, Complete). About 20
  database round trips per node: some 150-300 nodes/s on a 2-core machine, so minutes
  for 10,000 nodes and too slow for 100,000.
* ``bulk`` (the default): the same rows, written set-wise (one statement per 5,000
  nodes): fresh ed25519 keys, fingerprints, api keys and session tokens made by the
  product's own ``gateway.secrets``, stored hashed as the services store them. A sample
  of the nodes then does the real ed25519 handshake over HTTP against the gateway
  under test (``handshake_sample``), and the warm-up resolves every session through the
  gateway, so a row the gateway would not accept fails the run.
"""

from __future__ import annotations

import asyncio
import datetime
import multiprocessing
import time
from collections.abc import Callable, Sequence

import attrs
import nacl.signing
import psycopg2

from bench.heartbeats.database import BenchDatabase
from fleetwire import messages as m
from fleetwire.identity import auth_message, fingerprint
from gateway import secrets as s
from gateway.config import Config
from gateway.metrics import new_metrics
from gateway.principals import AdminPrincipal
from gateway.services import Services, open_services

ORG = "bench"
CALLS_IN_FLIGHT = 16
POOL_SIZE = 12
BULK_BATCH = 5000
SESSION_TTL = datetime.timedelta(hours=24)  # the gateway's default --session-ttl


@attrs.frozen
class SeedJob:
    database_url: str
    admin_token: str = attrs.field(repr=False)
    first: int  # node names are bench-<index>
    count: int

    bulk: bool = True
    keep_credentials: frozenset[int] = frozenset()  # slice indices whose key to return


@attrs.frozen
class SeededNode:
    fleet_node_id: int
    session_token: str = attrs.field(repr=False)
    # Only for the handshake sample: what a node needs to start a new session.
    api_key: str | None = attrs.field(default=None, repr=False)
    identity_seed: bytes | None = attrs.field(default=None, repr=False)


@attrs.frozen
class Seeded:
    nodes: tuple[SeededNode, ...]
    seconds: float
    processes: int


def create_admin_token(db: BenchDatabase) -> str:
    """An admin token of org ``bench``, through ``fleet-gateway create-org`` and
    ``create-admin-token`` as an operator would make one."""
    db.gateway_cli("create-org", ORG)
    return db.gateway_cli("create-admin-token", "--org", ORG, "--label", "bench").strip()


async def _enroll_one(rt: Services, admin: AdminPrincipal, name: str, keep: bool) -> SeededNode:
    code = await rt.codes.create_code(admin, m.CreateEnrollmentCodeRequest())
    key = nacl.signing.SigningKey.generate()
    pubkey = bytes(key.verify_key)
    registered = await rt.enrollment.register(
        m.RegisterRequest(enrollment_token=code.code, name=name, identity_pubkey=pubkey)
    )
    confirmed = await rt.admin.confirm(
        admin, m.ConfirmFleetNodeRequest(fleet_node_id=registered.fleet_node_id)
    )
    begin = await rt.auth.begin(
        m.BeginAuthHandshakeRequest(api_key=confirmed.api_key, identity_pubkey=pubkey)
    )
    signature = key.sign(auth_message(begin.challenge)).signature
    done = await rt.auth.complete(
        m.CompleteAuthHandshakeRequest(challenge=begin.challenge, signature=signature)
    )
    return SeededNode(
        int(registered.fleet_node_id),
        done.session_token,
        api_key=confirmed.api_key if keep else None,
        identity_seed=key.encode() if keep else None,
    )


async def seed_slice(job: SeedJob) -> list[SeededNode]:
    """Enroll nodes ``first .. first + count - 1`` with up to CALLS_IN_FLIGHT at once."""
    config = Config(database_url=job.database_url, db_pool_size=POOL_SIZE)
    out: list[SeededNode | None] = [None] * job.count
    next_index = iter(range(job.count))
    async with open_services(config, new_metrics()) as rt:
        admin = await rt.auth.resolve_admin_token(job.admin_token)

        async def work() -> None:
            for i in next_index:
                name = f"bench-{job.first + i:07d}"
                out[i] = await _enroll_one(rt, admin, name, i in job.keep_credentials)

        async with asyncio.TaskGroup() as tasks:
            for _ in range(min(CALLS_IN_FLIGHT, job.count)):
                tasks.create_task(work())
    return [node for node in out if node is not None]


_BULK_INSERT = """
WITH input AS (
    SELECT * FROM unnest(%(names)s::text[], %(pubkeys)s::bytea[], %(fingerprints)s::text[],
                         %(codes)s::bytea[], %(keys)s::bytea[], %(tokens)s::bytea[])
        AS t(name, pubkey, fingerprint, code_hash, key_hash, token_hash)
), nodes AS (
    INSERT INTO fleet_nodes
        (org_id, name, identity_pubkey, identity_fingerprint, status, created_at, confirmed_at)
    SELECT %(org)s, name, pubkey, fingerprint, 'CONFIRMED', %(now)s, %(now)s FROM input
    RETURNING id, name
), joined AS (
    SELECT nodes.id, input.* FROM nodes JOIN input USING (name)
), enrollments AS (
    INSERT INTO pending_enrollments
        (org_id, code_hash, status, created_by_token_id, created_at, expires_at, fleet_node_id)
    SELECT %(org)s, code_hash, 'CONFIRMED', %(token_id)s, %(now)s, %(code_expires)s, id
    FROM joined
), keys AS (
    INSERT INTO api_keys (org_id, fleet_node_id, key_hash, created_at)
    SELECT %(org)s, id, key_hash, %(now)s FROM joined
), sessions_ AS (
    INSERT INTO sessions (fleet_node_id, org_id, token_hash, created_at, expires_at)
    SELECT id, %(org)s, token_hash, %(now)s, %(session_expires)s FROM joined
)
SELECT id, name FROM joined
"""


def seed_bulk_slice(job: SeedJob) -> list[SeededNode]:
    """The rows Register + Confirm + a handshake leave behind, ``BULK_BATCH`` at a time."""
    conn = psycopg2.connect(job.database_url)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT id FROM organizations WHERE name = %s", (ORG,))
            (org_id,) = cur.fetchone()
            cur.execute(
                "SELECT id FROM admin_tokens WHERE token_hash = %s", (s.digest(job.admin_token),)
            )
            (token_id,) = cur.fetchone()
        conn.commit()
        out: list[SeededNode] = []
        for first in range(0, job.count, BULK_BATCH):
            indices = range(first, min(job.count, first + BULK_BATCH))
            out += _bulk_batch(conn, job, org_id, token_id, indices)
        return out
    finally:
        conn.close()


def _bulk_batch(
    conn: psycopg2.extensions.connection,
    job: SeedJob,
    org_id: int,
    token_id: int,
    indices: range,
) -> list[SeededNode]:
    names, seeds, pubkeys, api_keys, tokens = [], [], [], [], []
    for i in indices:
        key = nacl.signing.SigningKey.generate()
        names.append(f"bench-{job.first + i:07d}")
        seeds.append(key.encode())
        pubkeys.append(bytes(key.verify_key))
        api_keys.append(s.new_api_key())
        tokens.append(s.new_session_token())
    now = datetime.datetime.now(datetime.UTC)
    with conn, conn.cursor() as cur:
        cur.execute(
            _BULK_INSERT,
            {
                "names": names,
                "pubkeys": pubkeys,
                "fingerprints": [fingerprint(pk) for pk in pubkeys],
                "codes": [s.digest(s.new_enrollment_code()) for _ in indices],
                "keys": [s.digest(key) for key in api_keys],
                "tokens": [s.digest(token) for token in tokens],
                "org": org_id,
                "token_id": token_id,
                "now": now,
                "code_expires": now + datetime.timedelta(seconds=m.DEFAULT_CODE_TTL_SECONDS),
                "session_expires": now + SESSION_TTL,
            },
        )
        ids = {str(name): int(node_id) for node_id, name in cur.fetchall()}
    nodes = []
    for offset, i in enumerate(indices):
        keep = i in job.keep_credentials
        nodes.append(
            SeededNode(
                ids[names[offset]],
                tokens[offset],
                api_key=api_keys[offset] if keep else None,
                identity_seed=seeds[offset] if keep else None,
            )
        )
    return nodes


def split(count: int, parts: int) -> list[tuple[int, int]]:
    """(first, count) of ``parts`` nearly equal slices of ``range(count)``."""
    parts = max(1, min(parts, count))
    base, extra = divmod(count, parts)
    slices, first = [], 0
    for part in range(parts):
        size = base + (1 if part < extra else 0)
        slices.append((first, size))
        first += size
    return slices


def sample_indices(count: int, sample: int) -> list[int]:
    """``sample`` node indices spread evenly over ``range(count)``."""
    sample = max(0, min(sample, count))
    return sorted({i * count // sample for i in range(sample)}) if sample else []


def seed_parallel(
    database_url: str,
    admin_token: str,
    count: int,
    processes: int,
    worker: Callable[[SeedJob], Sequence[SeededNode]],
    *,
    bulk: bool = True,
    sample: int = 0,
) -> Seeded:
    """Seed ``count`` nodes over ``processes`` forked workers; ``worker`` runs one job
    (``__main__`` supplies it: only it starts event loops). With ``bulk``, the nodes of
    ``sample_indices(count, sample)`` come back with their api key and identity key."""
    keep = sample_indices(count, sample)
    jobs = [
        SeedJob(
            database_url,
            admin_token,
            first,
            size,
            bulk=bulk,
            keep_credentials=frozenset(i - first for i in keep if first <= i < first + size),
        )
        for first, size in split(count, processes)
    ]
    started = time.monotonic()
    if len(jobs) == 1:
        results = [worker(jobs[0])]
    else:
        # fork: the workers start before any event loop or thread exists in this process.
        with multiprocessing.get_context("fork").Pool(len(jobs)) as pool:
            results = pool.map(worker, jobs)
    nodes = tuple(node for part in results for node in part)
    if len(nodes) != count:
        raise RuntimeError(f"seeding produced {len(nodes)} nodes instead of {count}")
    return Seeded(nodes, time.monotonic() - started, len(jobs))
