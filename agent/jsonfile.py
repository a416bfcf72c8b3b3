"""The encoding of the agent's own JSON files (``state.json``, ``health.json``).

Each file is a boundary of its own with its own converter, made here so both read the
same way: exact JSON types (``true`` is not a number, ``1`` is not a string), timestamps
in RFC 3339 with a zone, moved to UTC; written sorted and indented, one file a screen.
"""

from __future__ import annotations

import datetime
import json
from typing import Any, TypeVar

import cattrs

from fleetwire.scalars import format_timestamp

T = TypeVar("T")

# What decoding a damaged file raises; OverflowError: a timestamp that leaves years
# 1..9999 once moved to UTC.
DAMAGED = (
    ValueError,
    TypeError,
    KeyError,
    RecursionError,
    OverflowError,
    cattrs.BaseValidationError,
)


def strict_converter() -> cattrs.Converter:
    converter = cattrs.Converter(detailed_validation=False)

    def structure_timestamp(value: Any, _: type) -> datetime.datetime:
        if not isinstance(value, str):
            raise ValueError("must be an RFC 3339 timestamp")
        parsed = datetime.datetime.fromisoformat(value)
        if parsed.tzinfo is None:
            raise ValueError("must carry a time zone")
        return parsed.astimezone(datetime.UTC)

    def structure_str(value: Any, _: type) -> str:
        if not isinstance(value, str):
            raise ValueError("must be a string")
        return value

    def structure_int(value: Any, _: type) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError("must be an integer")
        return value

    def structure_float(value: Any, _: type) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError("must be a number")
        return float(value)

    def structure_bool(value: Any, _: type) -> bool:
        if not isinstance(value, bool):
            raise ValueError("must be true or false")
        return value

    converter.register_structure_hook(datetime.datetime, structure_timestamp)
    converter.register_structure_hook(str, structure_str)
    converter.register_structure_hook(int, structure_int)
    converter.register_structure_hook(float, structure_float)
    converter.register_structure_hook(bool, structure_bool)
    converter.register_unstructure_hook(datetime.datetime, format_timestamp)
    return converter


def encode(converter: cattrs.Converter, value: Any) -> bytes:
    return (json.dumps(converter.unstructure(value), indent=2, sort_keys=True) + "\n").encode()


def decode(converter: cattrs.Converter, raw: bytes, cls: type[T]) -> T:
    """The ``cls`` in ``raw``; one of :data:`DAMAGED` when it does not hold one."""
    data = json.loads(raw)
    if not isinstance(data, dict):
        raise ValueError("not a JSON object")
    return converter.structure(data, cls)
