"""The proto3 JSON codec of the wire messages (one cattrs converter).

On the way out: lowerCamelCase keys, int64 as decimal strings, bytes as standard
base64, timestamps as RFC 3339 UTC with ``Z``, enums by name, fields at their
default omitted. On the way in: lowerCamelCase or snake_case keys, int64/int32 as
strings or numbers, standard or URL-safe base64 (padding optional), RFC 3339
timestamps with any offset, enums by name or number, ``null`` as the default,
unknown keys ignored; duplicate keys are refused, as proto3 parsers do.

Every decoding failure is a :class:`DecodeError` whose message names the field
in its wire spelling, e.g. ``identityPubkey: must be exactly 32 bytes``.
"""

from __future__ import annotations

import base64
import binascii
import datetime
import enum
import json
import re
from collections.abc import Callable
from typing import Any, TypeVar, get_args, get_origin

import attrs
import cattrs

from fleetwire.messages import Int32, Int64
from fleetwire.validators import INT32_MAX, INT32_MIN, INT64_MAX, INT64_MIN, FieldError

T = TypeVar("T")

# Sign, leading zeros, then at most 19 significant digits: anything longer is out of
# int64 range, and never reaches int(), whose digit limit error would quote internals.
_DECIMAL = re.compile(r"-?0*([0-9]*)")
_MAX_INT64_DIGITS = 19
_BASE64 = re.compile(r"[A-Za-z0-9+/\-_]*={0,2}")


class DecodeError(ValueError):
    """The body is not a valid message; ``str()`` is safe to show the caller."""


def snake_to_camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.capitalize() for part in rest)


# --- scalars -----------------------------------------------------------------------


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


def _structure_int64(value: object, _: type) -> int:
    return _integer(value, INT64_MIN, INT64_MAX)


def _structure_int32(value: object, _: type) -> int:
    return _integer(value, INT32_MIN, INT32_MAX)


def _structure_str(value: object, _: type) -> str:
    if not isinstance(value, str):
        raise ValueError("must be a string")
    return value


def _structure_bool(value: object, _: type) -> bool:
    # proto3 JSON: true or false (the strings too, as protobuf's own parsers accept them).
    if isinstance(value, bool):
        return value
    if value in ("true", "false"):
        return value == "true"
    raise ValueError("must be true or false")


def _structure_bytes(value: object, _: type) -> bytes:
    if not isinstance(value, str) or not _BASE64.fullmatch(value):
        raise ValueError("must be base64")
    text = value.rstrip("=").replace("-", "+").replace("_", "/")
    if len(text) % 4 == 1:
        raise ValueError("must be base64")
    try:
        return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ValueError("must be base64") from exc


def _structure_timestamp(value: object, _: type) -> datetime.datetime:
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


def _structure_enum(value: object, cls: type[enum.Enum]) -> enum.Enum:
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


# --- messages ------------------------------------------------------------------


def _fields_of(cls: type) -> tuple[attrs.Attribute[Any], ...]:
    fields: tuple[attrs.Attribute[Any], ...] = attrs.fields(attrs.resolve_types(cls))
    return fields


def _make_structure(converter: cattrs.Converter) -> Callable[[type], Callable[..., Any]]:
    def factory(cls: type) -> Callable[[Any, type], Any]:
        fields = _fields_of(cls)
        by_key: dict[str, attrs.Attribute[Any]] = {}
        for field in fields:
            by_key[field.name] = field
            by_key[snake_to_camel(field.name)] = field
        wire_name = {field.name: snake_to_camel(field.name) for field in fields}

        def renamed(exc: FieldError) -> FieldError:
            head, dot, tail = exc.path.partition(".")
            return FieldError(wire_name.get(head, head) + dot + tail, exc.reason)

        def structure(data: Any, _: type) -> Any:
            if not isinstance(data, dict):
                raise ValueError("must be a JSON object")
            kwargs: dict[str, Any] = {}
            for key, value in data.items():
                field = by_key.get(key)
                if field is None or value is None:
                    continue  # unknown keys are ignored; null means "default"
                if field.name in kwargs:
                    raise FieldError(wire_name[field.name], "is given twice")
                try:
                    kwargs[field.name] = converter.structure(value, field.type)  # type: ignore[arg-type]
                except FieldError as exc:  # a nested message or list
                    raise FieldError(f"{wire_name[field.name]}.{exc.path}", exc.reason) from exc
                except (ValueError, TypeError) as exc:
                    raise FieldError(wire_name[field.name], _reason(exc)) from exc
            try:
                return cls(**kwargs)
            except FieldError as exc:
                raise renamed(exc) from exc

        return structure

    return factory


def _reason(exc: Exception) -> str:
    return str(exc) if isinstance(exc, ValueError) and str(exc) else "has the wrong type"


def _structure_sequence(converter: cattrs.Converter) -> Callable[[Any, Any], tuple[Any, ...]]:
    def structure(data: Any, type_: Any) -> tuple[Any, ...]:
        if not isinstance(data, list):
            raise ValueError("must be a list")
        (item_type, _ellipsis) = get_args(type_)
        items = []
        for index, item in enumerate(data):
            try:
                items.append(converter.structure(item, item_type))
            except FieldError as exc:
                raise FieldError(f"{index}.{exc.path}", exc.reason) from exc
            except (ValueError, TypeError) as exc:
                raise FieldError(str(index), _reason(exc)) from exc
        return tuple(items)

    return structure


def _unstructure_value(value: Any, type_: Any) -> Any:
    if value is None:
        return None
    if type_ is Int64 or type_ == Int64 | None:
        return str(value)
    if isinstance(value, bytes):
        return base64.b64encode(value).decode()
    if isinstance(value, datetime.datetime):
        return format_timestamp(value)
    if isinstance(value, enum.Enum):
        return value.name
    if isinstance(value, tuple):
        (item_type, _ellipsis) = get_args(type_)
        return [_unstructure_value(item, item_type) for item in value]
    if attrs.has(type(value)):
        return to_dict(value)
    return value


def to_dict(message: Any) -> dict[str, Any]:
    """The proto3 JSON object of a message, defaults omitted."""
    out: dict[str, Any] = {}
    for field in _fields_of(type(message)):
        value = getattr(message, field.name)
        if value == field.default and not (field.default is None and value is not None):
            continue
        out[snake_to_camel(field.name)] = _unstructure_value(value, field.type)
    return out


def _is_tuple(type_: Any) -> bool:
    return get_origin(type_) is tuple


def _make_converter() -> cattrs.Converter:
    converter = cattrs.Converter(detailed_validation=False)
    converter.register_structure_hook(Int64, _structure_int64)
    converter.register_structure_hook(Int32, _structure_int32)
    converter.register_structure_hook(str, _structure_str)
    converter.register_structure_hook(bool, _structure_bool)
    converter.register_structure_hook(bytes, _structure_bytes)
    converter.register_structure_hook(datetime.datetime, _structure_timestamp)
    converter.register_structure_hook_func(
        lambda t: isinstance(t, type) and issubclass(t, enum.Enum), _structure_enum
    )
    converter.register_structure_hook_func(_is_tuple, _structure_sequence(converter))
    converter.register_structure_hook_factory(attrs.has, _make_structure(converter))
    return converter


_converter = _make_converter()


def _reject_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise DecodeError(f"{key}: is given twice")
        result[key] = value
    return result


def parse_json(body: bytes) -> Any:
    """Parse a JSON document; any failure is a :class:`DecodeError`."""
    try:
        return json.loads(body, object_pairs_hook=_reject_duplicates)
    except DecodeError:
        raise
    except (ValueError, RecursionError) as exc:  # UnicodeDecodeError is a ValueError
        raise DecodeError("request body is not valid JSON") from exc


def structure(data: Any, cls: type[T]) -> T:
    """Build a message from parsed JSON; any failure is a :class:`DecodeError`."""
    try:
        return _converter.structure(data, cls)
    except FieldError as exc:
        raise DecodeError(str(exc)) from exc
    except (ValueError, TypeError, RecursionError) as exc:
        raise DecodeError(f"request body {_reason(exc)}") from exc


def decode(body: bytes, cls: type[T]) -> T:
    """Parse and build a message; an empty body is the empty message."""
    return structure(parse_json(body) if body.strip() else {}, cls)


def encode(message: Any) -> bytes:
    return json.dumps(to_dict(message), separators=(",", ":")).encode()
