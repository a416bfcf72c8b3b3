"""Log lines on stderr, one per event, as text or JSON (called only from ``__main__``).

A record's message is its ``event``; keys passed with ``extra=`` are its context
and are written as ``key=value`` (text) or as JSON members. Callers never pass a
secret, a request body or an Authorization header.
"""

from __future__ import annotations

import datetime
import json
import logging
import sys
from typing import Any, TextIO

from gateway.config import LogFormat

# Attributes every LogRecord has; anything else on a record came from ``extra=``.
_STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {
    "message",
    "asctime",
    "taskName",
}


def _timestamp(record: logging.LogRecord) -> str:
    moment = datetime.datetime.fromtimestamp(record.created, datetime.UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def context_of(record: logging.LogRecord) -> dict[str, Any]:
    return {key: value for key, value in vars(record).items() if key not in _STANDARD}


class TextFormatter(logging.Formatter):
    """``2026-11-26T20:20:00.000Z info gateway.connect rpc procedure=... code=ok``"""

    def format(self, record: logging.LogRecord) -> str:
        parts = [_timestamp(record), record.levelname.lower(), record.name, record.getMessage()]
        parts += [f"{key}={_text_value(value)}" for key, value in context_of(record).items()]
        line = " ".join(parts)
        if record.exc_info:
            # Tracebacks stay on the operator's side; indent keeps them one event.
            line += "\n" + self.formatException(record.exc_info).replace("\n", "\n  ")
        return line


def _text_value(value: object) -> str:
    text = str(value)
    return json.dumps(text) if (not text or any(c in text for c in ' "=\n')) else text


class JsonFormatter(logging.Formatter):
    """``{"ts": ..., "level": ..., "event": ..., "logger": ..., <context>}``"""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "ts": _timestamp(record),
            "level": record.levelname.lower(),
            "event": record.getMessage(),
            "logger": record.name,
        }
        for key, value in context_of(record).items():
            line.setdefault(key, value)
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str)


def configure_logging(
    log_format: LogFormat, level: str, *, stream: TextIO | None = None
) -> logging.Handler:
    """Send every log record of the process to ``stream`` (stderr) in ``log_format``."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter() if log_format is LogFormat.JSON else TextFormatter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    # "listening on http://HOST:PORT" is how scripts learn a --port 0 address.
    logging.getLogger("gateway.announce").setLevel(logging.INFO)
    return handler
