"""What fleetctl prints with ``--json``: the API's JSON form of a response message."""

from __future__ import annotations

import json
from typing import Any

import attrs

from fleetwire import codec


def api_json(message: Any, *, indent: int | None = 2) -> str:
    """``codec.to_dict(message)``, except that its lists are written even when empty:
    ``{"enrollmentCodes": []}`` rather than ``{}``, so ``jq '.enrollmentCodes[]'`` works on
    an empty fleet. proto3 JSON parsers read both spellings the same."""
    data = codec.to_dict(message)
    for field in attrs.fields(type(message)):
        if isinstance(getattr(message, field.name), tuple):
            data.setdefault(codec.snake_to_camel(field.name), [])
    return json.dumps(data, indent=indent)
