"""Gateway log lines: one per event, text or JSON, context keys included."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator

import pytest

from gateway.logging_setup import JsonFormatter, TextFormatter


@pytest.fixture
def record() -> Iterator[logging.LogRecord]:
    """A record as a call with lazy args and extra= context produces it."""
    logger = logging.getLogger("gateway.test")
    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    handler = Keep()
    logger.addHandler(handler)
    try:
        logger.warning(
            "rpc %s", "done", extra={"procedure": "a/B", "client": "10.0.0.1", "code": "ok"}
        )
    finally:
        logger.removeHandler(handler)
    yield records[0]


def test_json_line_has_ts_level_event_and_context(record: logging.LogRecord) -> None:
    """A JSON log line carries ts (RFC 3339 UTC), level, event and the context keys."""
    line = JsonFormatter().format(record)
    assert "\n" not in line
    data = json.loads(line)
    assert data["event"] == "rpc done"
    assert data["level"] == "warning"
    assert data["ts"].endswith("Z")
    assert (data["procedure"], data["client"], data["code"]) == ("a/B", "10.0.0.1", "ok")


def test_text_line_is_one_line_with_key_values(record: logging.LogRecord) -> None:
    """A text log line is one line with the event then key=value context."""
    line = TextFormatter().format(record)
    assert "\n" not in line
    assert " warning gateway.test rpc done " in line
    assert "client=10.0.0.1" in line
    assert "procedure=a/B" in line


def test_values_with_spaces_are_quoted() -> None:
    """Context values that would break key=value parsing are quoted."""
    record = logging.LogRecord("x", logging.INFO, "", 0, "event", (), None)
    record.detail = 'two words "and" more'
    assert 'detail="two words \\"and\\" more"' in TextFormatter().format(record)
