"""The duration spellings every program accepts."""

from __future__ import annotations

import pytest

from fleetwire.durations import format_duration, parse_duration


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("0", 0.0),
        ("500ms", 0.5),
        ("30s", 30.0),
        ("5m", 300.0),
        ("24h", 86400.0),
        ("1h30m", 5400.0),
        ("1.5s", 1.5),
        ("7d", 7 * 86400.0),
        ("1d12h", 1.5 * 86400.0),
    ],
)
def test_accepted_spellings(text: str, seconds: float) -> None:
    """Units ms, s, m, h, d combine; a bare 0 is allowed."""
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "30", "5x", "-5s", "1h 30m", "s", "1h30", "abc"])
def test_refused_spellings(text: str) -> None:
    """Anything else is refused with a message that shows the accepted forms."""
    with pytest.raises(ValueError, match="e.g. 500ms, 30s"):
        parse_duration(text)


@pytest.mark.parametrize(
    ("seconds", "text"), [(12.7, "12s"), (600, "10m"), (7200, "2h"), (3 * 86400, "3d")]
)
def test_format(seconds: float, text: str) -> None:
    """Ages are shown in the largest whole unit."""
    assert format_duration(seconds) == text
