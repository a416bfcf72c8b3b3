"""proto3 JSON scalars: how each wire type is read, and how a timestamp is written.

Each ``structure_*`` takes a decoded JSON value and raises ``ValueError`` with the rule it
broke (``fleetwire.codec`` prefixes the field's wire name); they are the converter's hooks.
"""

from __future__ import annotations

import base64
import binascii
import datetime
import enum
import re

from fleetwire.validators import INT32_MAX, INT32_MIN, INT64_MAX, INT64_MIN

# Sign, leading zeros, then at most 19 significant digits: anything longer is out of
# int64 range, and never reaches int(), whose digit limit error would quote internals.
_DECIMAL = re.compile(r"-?0*([0-9]*)")
_MAX_INT64_DIGITS = 19
_BASE64 = re.compile(r"[A-Za-z0-9+/\-_]*={0,2}")


def _integer(value: object, minimum: int, maximum: int) -> int:
    if isinstance(value, bool):
        raise ValueError("must be an integer")
    if isinstance(value, str):
        decimal = _DECIMAL.fullmatch(value)
        if decimal is None or value in ("", "-"):
            raise ValueError("must be an integer")
        digits = decimal.group(1) or "0"
        if len(digits) > _MAX_INT64_DIGITS:
            raise ValueError("is out of range")
        number = -int(digits) if value.startswith("-") else int(digits)
    elif isinstance(value, int):
        number = value
    elif isinstance(value, float) and value.is_integer():
        number = int(value)
    else:
        raise ValueError("must be an integer")
    if not minimum <= number <= maximum:
        raise ValueError("is out of range")
    return number


def structure_int64(value: object, _: type) -> int:
    return _integer(value, INT64_MIN, INT64_MAX)


def structure_int32(value: object, _: type) -> int:
    return _integer(value, INT32_MIN, INT32_MAX)


def structure_str(value: object, _: type) -> str:
    if not isinstance(value, str):
        raise ValueError("must be a string")
    return value


def structure_bool(value: object, _: type) -> bool:
    # proto3 JSON: true or false (the strings too, as protobuf's own parsers accept them).
    if isinstance(value, bool):
        return value
    if value in ("true", "false"):
        return value == "true"
    raise ValueError("must be true or false")


def structure_bytes(value: object, _: type) -> bytes:
    if not isinstance(value, str) or not _BASE64.fullmatch(value):
        raise ValueError("must be base64")
    text = value.rstrip("=").replace("-", "+").replace("_", "/")
    if len(text) % 4 == 1:
        raise ValueError("must be base64")
    try:
        return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ValueError("must be base64") from exc


def structure_timestamp(value: object, _: type) -> datetime.datetime:
    if not isinstance(value, str) or len(value) < 20 or value[10] not in "Tt":
        raise ValueError("must be an RFC 3339 timestamp")
    try:
        parsed = datetime.datetime.fromisoformat(value.upper())
    except ValueError as exc:
        raise ValueError("must be an RFC 3339 timestamp") from exc
    if parsed.tzinfo is None:
        raise ValueError("must be an RFC 3339 timestamp with a time zone")
    try:
        return parsed.astimezone(datetime.UTC)
    except OverflowError:  # e.g. 0001-01-01T00:00:00+01:00 is before year 1 in UTC
        raise ValueError("is out of range") from None


def structure_enum(value: object, cls: type[enum.Enum]) -> enum.Enum:
    try:
        if isinstance(value, str):
            return cls[value]
        if isinstance(value, int) and not isinstance(value, bool):
            return cls(value)
    except (KeyError, ValueError):
        pass
    raise ValueError(f"must be one of {', '.join(cls.__members__)}")


def format_timestamp(value: datetime.datetime) -> str:
    utc = value.astimezone(datetime.UTC).replace(tzinfo=None)
    return utc.isoformat(timespec="microseconds" if utc.microsecond else "seconds") + "Z"
