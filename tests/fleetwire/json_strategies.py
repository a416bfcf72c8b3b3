"""Hypothesis strategies for hostile JSON: any JSON value, biased towards what breaks
decoders, under a message's own keys. Shared by the codec's property tests and the
gateway's hostile-input tests over HTTP."""

from __future__ import annotations

from typing import Any

import attrs
from hypothesis import strategies as st

from fleetwire import codec
from fleetwire.validators import INT64_MAX, INT64_MIN


def wire_keys(cls: type[Any]) -> list[str]:
    names = [field.name for field in attrs.fields(cls)]
    return names + [codec.snake_to_camel(name) for name in names]


def json_values() -> st.SearchStrategy[Any]:
    """Any JSON value, biased towards what breaks decoders: int64 edges, odd text."""
    scalars = st.one_of(
        st.none(),
        st.booleans(),
        st.integers(),
        st.sampled_from([INT64_MAX, INT64_MAX + 1, INT64_MIN, INT64_MIN - 1, 2**64, -(2**64)]),
        st.floats(allow_nan=True, allow_infinity=True),
        st.text(max_size=20),
        st.sampled_from(
            [
                "",
                "\x00",
                "\ud800",
                "\u202etxt.exe",
                "9" * 30,
                "0" * 40 + "1",
                "-0",
                "1e3",
                "0x10",
                "AAAA====",
                "0001-01-01T00:00:00+01:00",
                "9999-12-31T23:59:59-23:59",
                "2026-11-26T12:00:00",
                "2026-11-26T12:00:00Z",
                "x" * 600,
                "\U0001f680" * 256,
                "Robert'); DROP TABLE fleet_nodes;--",
                "%s%(name)s$1{0}",
            ]
        ),
    )
    return st.recursive(
        scalars,
        lambda inner: (
            st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
        ),
        max_leaves=6,
    )


@st.composite
def request_bodies(draw: st.DrawFn, cls: type[Any]) -> dict[str, Any]:
    """A JSON object whose keys are mostly the message's own (either spelling)."""
    names = wire_keys(cls)
    keys = st.sampled_from(names) | st.text(max_size=6) if names else st.text(max_size=6)
    return draw(st.dictionaries(keys, json_values(), max_size=4))
