"""attrs validators for message fields.

They raise :class:`FieldError`, which names the field, so the codec can turn a
bad request into an ``invalid_argument`` message such as
``name: must be 1..255 characters``.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Callable, Sized
from typing import Any

import attrs

INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1
INT32_MIN = -(2**31)
INT32_MAX = 2**31 - 1


class FieldError(ValueError):
    """A field that does not hold a valid value; ``path`` is the field's python name(s)."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason


Validator = Callable[[Any, "attrs.Attribute[Any]", Any], None]


def length(minimum: int, maximum: int, unit: str = "characters") -> Validator:
    """Length of a str (characters) or bytes (bytes) within [minimum, maximum]."""

    def check(_instance: Any, attribute: attrs.Attribute[Any], value: Sized) -> None:
        if not minimum <= len(value) <= maximum:
            span = f"exactly {minimum}" if minimum == maximum else f"{minimum}..{maximum}"
            raise FieldError(attribute.name, f"must be {span} {unit}")

    return check


def exact_bytes(size: int) -> Validator:
    return length(size, size, "bytes")


def int_range(minimum: int, maximum: int, *, optional: bool = False) -> Validator:
    def check(_instance: Any, attribute: attrs.Attribute[Any], value: int | None) -> None:
        if value is None and optional:
            return
        if value is None or not minimum <= value <= maximum:
            raise FieldError(attribute.name, f"must be between {minimum} and {maximum}")

    return check


def required(_instance: Any, attribute: attrs.Attribute[Any], value: object) -> None:
    if value is None:
        raise FieldError(attribute.name, "is required")


def printable_text(maximum: int) -> Validator:
    """At most ``maximum`` characters, none of them a control character (C0/C1: they break
    an operator's table, and PostgreSQL text cannot hold NUL) or a lone surrogate (not
    UTF-8: JSON can spell one as ``\\ud800``)."""

    def check(_instance: Any, attribute: attrs.Attribute[Any], value: str) -> None:
        if len(value) > maximum:
            raise FieldError(attribute.name, f"must be at most {maximum} characters")
        if any(unicodedata.category(char) in ("Cc", "Cs") for char in value):
            raise FieldError(attribute.name, "must be printable UTF-8 text")

    return check


def optional_exact_bytes(size: int) -> Validator:
    """Empty (absent) or exactly ``size`` bytes."""

    def check(_instance: Any, attribute: attrs.Attribute[Any], value: bytes) -> None:
        if value and len(value) != size:
            raise FieldError(attribute.name, f"must be exactly {size} bytes when given")

    return check
