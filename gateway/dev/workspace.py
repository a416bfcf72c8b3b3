"""The embedded PostgreSQL of ``fleet-gateway dev`` and ``demo``, kept under ``./.fleet-dev/``.

As a normal user the cluster lives in ``./.fleet-dev/pg``. As root, PostgreSQL runs
as the ``postgres`` user, which usually cannot enter the checkout (``/root`` is
0700), so the cluster lives in a temporary directory and its path is recorded in
``./.fleet-dev/cluster-path`` so the next ``dev`` finds it again.
"""

from __future__ import annotations

from pathlib import Path

from gateway.dev.pgcluster import Cluster, find_bindir, make_cluster_root, running_as_root

DEV_DIR_NAME = ".fleet-dev"


def dev_dir(cwd: Path) -> Path:
    path = cwd / DEV_DIR_NAME
    path.mkdir(mode=0o700, exist_ok=True)
    return path


def dev_cluster(cwd: Path, pg_bindir: str | None = None) -> Cluster:
    """The persistent cluster of ``dev`` (found again through the recorded path)."""
    bindir = find_bindir(pg_bindir)
    record = dev_dir(cwd) / "cluster-path"
    if not running_as_root():
        return Cluster(root=dev_dir(cwd) / "pg", bindir=bindir)
    if record.exists():
        recorded = Path(record.read_text().strip())
        if (recorded / "data" / "PG_VERSION").exists():
            return Cluster(root=recorded, bindir=bindir)
    cluster = Cluster(root=make_cluster_root(), bindir=bindir)
    record.write_text(f"{cluster.root}\n")
    return cluster


def demo_cluster(cwd: Path, pg_bindir: str | None = None) -> Cluster:
    """A fresh cluster for one ``demo`` run (removed at its end unless --keep)."""
    preferred = dev_dir(cwd) / "demo-pg"
    root = make_cluster_root(None if running_as_root() else preferred)
    if running_as_root():
        (dev_dir(cwd) / "demo-cluster-path").write_text(f"{root}\n")
    return Cluster(root=root, bindir=find_bindir(pg_bindir))


def start(cluster: Cluster) -> str:
    """Initialise and start the cluster if needed; the URL of its database.

    The cluster is private to this checkout, so its default ``postgres`` database
    holds the schema: no database to create, no SQL outside ``gateway.store``.
    """
    cluster.init()
    if not cluster.running():
        cluster.start()
    return cluster.url("postgres")
