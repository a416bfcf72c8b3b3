"""``python -m bench.heartbeats``: heartbeat throughput, latency, write amplification and
RSS of a real ``fleet-gateway serve`` subprocess, next to a /healthz ceiling measured by
the same generator in the same run (see bench/README.md)."""
