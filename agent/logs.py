"""Log lines on stderr, one per event, as text or JSON, with context such as fleet_node_id.

Only ``__main__`` calls :func:`configure`; every other module just logs.
"""

from __future__ import annotations

import contextvars
import datetime
import json
import logging
from collections.abc import Mapping
from types import MappingProxyType
from typing import TextIO

_EMPTY: Mapping[str, object] = MappingProxyType({})
_context: contextvars.ContextVar[Mapping[str, object]] = contextvars.ContextVar(
    "fleetnode_log_context", default=_EMPTY
)

LEVELS = ("debug", "info", "warning", "error")


def bind(**fields: object) -> None:
    """Add context keys (e.g. ``fleet_node_id``) to every later line of this task and its
    children (Trio tasks inherit the context of the task that starts them)."""
    _context.set({**_context.get(), **fields})


def _timestamp(record: logging.LogRecord) -> str:
    moment = datetime.datetime.fromtimestamp(record.created, datetime.UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


class _ContextFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.fleetnode_context = dict(_context.get())
        return True


class TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        context: Mapping[str, object] = getattr(record, "fleetnode_context", {})
        parts = [_timestamp(record), record.levelname.lower(), record.getMessage()]
        parts.extend(f"{key}={value}" for key, value in context.items())
        return " ".join(parts)


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        context: Mapping[str, object] = getattr(record, "fleetnode_context", {})
        line: dict[str, object] = {
            "ts": _timestamp(record),
            "level": record.levelname.lower(),
            "event": record.getMessage(),
            "logger": record.name,
        }
        line.update(context)
        return json.dumps(line, default=str)


def make_handler(stream: TextIO, log_format: str) -> logging.Handler:
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter() if log_format == "json" else TextFormatter())
    handler.addFilter(_ContextFilter())
    return handler


def configure(stream: TextIO, log_format: str, level: str) -> None:
    """Root logging for the fleetnode program (called once, from ``__main__``)."""
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(make_handler(stream, log_format))
    root.setLevel(level.upper())
    # httpx/httpcore debug lines are about connections, not our events; keep them quiet.
    for noisy in ("httpx", "httpcore", "hpack"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
