"""The gateway under test: a real ``fleet-gateway serve --port 0`` subprocess (its CPU is not
the simulated fleet's), its log in a file, stopped with SIGTERM (killed only past a bound).

Synchronous on purpose: started before the fleet's Trio loop and stopped after it.
"""

from __future__ import annotations

import contextlib
import re
import signal
import subprocess
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import attrs
import httpx
from prometheus_client.parser import text_string_to_metric_families

from bench.heartbeats.gateway_proc import gateway_command

START_TIMEOUT_SECONDS = 60.0
STOP_TIMEOUT_SECONDS = 40.0
POLL_SECONDS = 0.1
_LISTENING = re.compile(r"listening on (http://127\.0\.0\.1:\d+)")


@attrs.frozen
class Gateway:
    url: str
    pid: int
    log_path: Path

    def metrics(self) -> dict[str, float]:
        """Every sample of /metrics, keyed ``name{label="value",...}`` (labels sorted)."""
        text = httpx.get(f"{self.url}/metrics", timeout=10).text
        samples: dict[str, float] = {}
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                labels = ",".join(f'{k}="{v}"' for k, v in sorted(sample.labels.items()))
                samples[f"{sample.name}{{{labels}}}" if labels else sample.name] = sample.value
        return samples


@contextlib.contextmanager
def open_gateway(database_url: str, flags: Sequence[str], log_path: Path) -> Iterator[Gateway]:
    """``fleet-gateway serve`` on 127.0.0.1, a free port, until the block ends."""
    argv = [
        *gateway_command(), "serve", "--host", "127.0.0.1", "--port", "0",
        "--database-url", database_url, *flags,
    ]  # fmt: skip
    with log_path.open("ab") as log:
        proc = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True
        )
    try:
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while (found := _LISTENING.search(log_path.read_text(errors="replace"))) is None:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the gateway did not start; see {log_path}")
            time.sleep(POLL_SECONDS)
        yield Gateway(found.group(1), proc.pid, log_path)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=STOP_TIMEOUT_SECONDS)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
