"""How the agent's flags spell a length of time (SPEC 5.1)."""

from __future__ import annotations

import argparse
import math

from fleetwire.durations import parse_duration


def duration_seconds(text: str) -> float:
    """A DURATION (``30s``, ``1m30s``) or a bare number of seconds, finite; else the
    usage error argparse shows."""
    try:
        seconds = float(text)
    except ValueError:
        try:
            seconds = parse_duration(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from exc
    if not math.isfinite(seconds):
        raise argparse.ArgumentTypeError(f"must be a finite duration, got {text!r}")
    return seconds
