"""Running promtool, Prometheus's own checker, from the deploy tests.

promtool is required, never skipped: scripts/test installs it. Without it a test fails and says
how to install it.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

INSTALL_HINT = (
    "promtool is not on PATH. Run scripts/test as root (it extracts promtool from Debian's "
    "prometheus package into /usr/local/bin), or by hand: apt-get download prometheus && "
    "dpkg -x prometheus_*.deb DIR && install DIR/usr/bin/promtool /usr/local/bin/ "
    "(installing the package itself would also start a Prometheus server)."
)


def find_promtool(search_path: str | None = None) -> str:
    found = shutil.which("promtool", path=search_path)
    if found is None:
        pytest.fail(INSTALL_HINT, pytrace=False)
    return found


def run_promtool(*args: str | Path, cwd: Path) -> str:
    """promtool's output; the calling test fails with that output when promtool says no."""
    result = subprocess.run(
        [find_promtool(), *map(str, args)],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    output = result.stdout + result.stderr
    if result.returncode != 0:
        pytest.fail(f"promtool {' '.join(map(str, args))} failed:\n{output}", pytrace=False)
    return output
