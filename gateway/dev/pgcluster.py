"""A private PostgreSQL cluster from the host's binaries (for `dev`, `demo` and the tests).

It listens only on a Unix socket in its own directory, so it never competes for a
TCP port. PostgreSQL refuses to run as root: as root, its binaries run as the
``postgres`` system user (``runuser``), and the cluster lives in a directory that
user can reach. Synchronous on purpose: it is used before any event loop starts.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
from pathlib import Path
from urllib.parse import quote

import attrs

PG_PORT = 5432  # names the socket file only; no TCP listener
RUN_AS = "postgres"


class ClusterError(RuntimeError):
    """PostgreSQL could not be found, initialised or started; the message says why."""


def find_bindir(explicit: str | None = None) -> Path:
    """The directory holding initdb/pg_ctl: explicit, else the newest /usr/lib/postgresql/*/bin,
    else wherever ``pg_ctl`` is on PATH."""
    candidates = [explicit] if explicit else []
    candidates += sorted(
        glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(p.split("/")[-2]), reverse=True
    )
    on_path = shutil.which("pg_ctl")
    if on_path:
        candidates.append(str(Path(on_path).parent))
    for candidate in candidates:
        if candidate and (Path(candidate) / "initdb").exists():
            return Path(candidate)
    raise ClusterError(
        "PostgreSQL server binaries not found: install them (Debian: apt-get install "
        "postgresql) or pass --pg-bindir"
    )


def running_as_root() -> bool:
    return os.geteuid() == 0


@attrs.frozen
class Cluster:
    """A cluster directory: ``data/`` and ``socket/`` under ``root``."""

    root: Path
    bindir: Path

    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    @property
    def socket_dir(self) -> Path:
        return self.root / "socket"

    @property
    def log_file(self) -> Path:
        return self.root / "postgres.log"

    def url(self, dbname: str = "postgres") -> str:
        return (
            f"postgresql:///{quote(dbname)}?host={quote(str(self.socket_dir), safe='')}"
            f"&port={PG_PORT}&user=postgres"
        )

    def _run(self, *args: str) -> subprocess.CompletedProcess[str]:
        prefix = ["runuser", "-u", RUN_AS, "--"] if running_as_root() else []
        try:
            return subprocess.run(
                [*prefix, *args], capture_output=True, text=True, check=True, timeout=120
            )
        except subprocess.CalledProcessError as exc:
            detail = (exc.stderr or exc.stdout or "").strip().splitlines()[-3:]
            raise ClusterError(f"{Path(args[0]).name} failed: {' '.join(detail)}") from exc

    def _prepare_dirs(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        self.socket_dir.mkdir(exist_ok=True)
        if running_as_root():
            user = pwd.getpwnam(RUN_AS)
            for path in (self.root, self.socket_dir):
                os.chown(path, user.pw_uid, user.pw_gid)
        os.chmod(self.root, 0o700)

    def initialised(self) -> bool:
        return (self.data_dir / "PG_VERSION").exists()

    def init(self) -> None:
        self._prepare_dirs()
        if self.initialised():
            return
        self._run(
            str(self.bindir / "initdb"),
            "-D", str(self.data_dir),
            "-U", "postgres",
            "-A", "trust",  # only reachable through our own 0700 socket directory
            "-E", "UTF8",
            "--no-sync",
        )  # fmt: skip

    def start(self, *, fsync: bool = True) -> None:
        options = f"-k {self.socket_dir} -p {PG_PORT} -c listen_addresses=''"
        if not fsync:
            options += " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        self._run(
            str(self.bindir / "pg_ctl"),
            "-D", str(self.data_dir),
            "-l", str(self.log_file),
            "-o", options,
            "-w", "-t", "60",
            "start",
        )  # fmt: skip

    def running(self) -> bool:
        return (self.data_dir / "postmaster.pid").exists()

    def stop(self, mode: str = "fast") -> None:
        if self.running():
            self._run(
                str(self.bindir / "pg_ctl"), "-D", str(self.data_dir), "-m", mode, "-w", "stop"
            )

    def destroy(self) -> None:
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)


def make_cluster_root(preferred: Path | None = None) -> Path:
    """Where a new cluster may live. As root, ``postgres`` cannot enter ``/root`` or any
    0700 directory, so a fresh directory under the system temp dir is used instead."""
    if preferred is not None and not running_as_root():
        return preferred
    return Path(tempfile.mkdtemp(prefix="fleet-pg-"))
