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
import datetime
import enum
import json
import types
from collections.abc import Callable
from typing import Any, TypeVar, Union, get_args, get_origin

import attrs
import cattrs

from fleetwire import scalars
from fleetwire.messages import Int32, Int64
from fleetwire.scalars import format_timestamp
from fleetwire.validators import FieldError

T = TypeVar("T")


class DecodeError(ValueError):
    """The body is not a valid message; ``str()`` is safe to show the caller."""


def snake_to_camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.capitalize() for part in rest)


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
        # Each field's type and hook, looked up once per class rather than dispatched per
        # value. ``X | None`` is structured as ``X``, as cattrs does: None never gets here.
        types = {field.name: _present(field.type) for field in fields}
        hooks = {name: converter.get_structure_hook(type_) for name, type_ in types.items()}

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
                    kwargs[field.name] = hooks[field.name](value, types[field.name])
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


def _present(type_: Any) -> Any:
    """``X`` for ``X | None``; any other type as it is."""
    args = get_args(type_)
    if get_origin(type_) in (Union, types.UnionType) and len(args) == 2 and type(None) in args:
        return args[0] if args[1] is type(None) else args[1]
    return type_


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
    return _unstructure_by_value(value, type_)


def _unstructure_by_value(value: Any, type_: Any) -> Any:
    """A value that is not None of a field that is not int64."""
    if type(value) in _AS_THEY_ARE:
        return value
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


# Written as they are (exactly these types: an enum may derive from int or str).
_AS_THEY_ARE = frozenset((str, int, bool, float))


@attrs.frozen
class _Field:
    """What writing one field of a message class needs, worked out once per class."""

    name: str
    wire_name: str
    default: Any
    type: Any
    int64: bool  # written as a decimal string


_PLANS: dict[type, tuple[_Field, ...]] = {}


def _plan(cls: type) -> tuple[_Field, ...]:
    plan = _PLANS.get(cls)
    if plan is None:
        plan = _PLANS[cls] = tuple(
            _Field(
                field.name,
                snake_to_camel(field.name),
                field.default,
                field.type,
                field.type is Int64 or field.type == Int64 | None,
            )
            for field in _fields_of(cls)
        )
    return plan


def to_dict(message: Any) -> dict[str, Any]:
    """The proto3 JSON object of a message, defaults omitted."""
    out: dict[str, Any] = {}
    for field in _plan(type(message)):
        value = getattr(message, field.name)
        if value == field.default and not (field.default is None and value is not None):
            continue
        if value is None:
            out[field.wire_name] = None
        elif field.int64:
            out[field.wire_name] = str(value)
        else:
            out[field.wire_name] = _unstructure_by_value(value, field.type)
    return out


def _is_tuple(type_: Any) -> bool:
    return get_origin(type_) is tuple


def _make_converter() -> cattrs.Converter:
    converter = cattrs.Converter(detailed_validation=False)
    converter.register_structure_hook(Int64, scalars.structure_int64)
    converter.register_structure_hook(Int32, scalars.structure_int32)
    converter.register_structure_hook(str, scalars.structure_str)
    converter.register_structure_hook(bool, scalars.structure_bool)
    converter.register_structure_hook(bytes, scalars.structure_bytes)
    converter.register_structure_hook(datetime.datetime, scalars.structure_timestamp)
    converter.register_structure_hook_func(
        lambda t: isinstance(t, type) and issubclass(t, enum.Enum), scalars.structure_enum
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


# json.loads(..., object_pairs_hook=...) and json.dumps(..., separators=...) build a new
# decoder or encoder on every call: these are the same ones, built once.
_DECODER = json.JSONDecoder(object_pairs_hook=_reject_duplicates)
_ENCODER = json.JSONEncoder(separators=(",", ":"))


def parse_json(body: bytes) -> Any:
    """Parse a JSON document; any failure is a :class:`DecodeError`."""
    try:
        # What json.loads does with bytes: UTF-8, -16 or -32, told apart as it does.
        return _DECODER.decode(body.decode(json.detect_encoding(body), "surrogatepass"))
    except DecodeError:
        raise
    except (ValueError, RecursionError) as exc:  # UnicodeDecodeError is a ValueError
        raise DecodeError("request body is not valid JSON") from exc


_HOOKS: dict[type, Callable[[Any, type], Any]] = {}


def structure(data: Any, cls: type[T]) -> T:
    """Build a message from parsed JSON; any failure is a :class:`DecodeError`."""
    hook = _HOOKS.get(cls)
    if hook is None:
        hook = _HOOKS[cls] = _converter.get_structure_hook(cls)
    try:
        return hook(data, cls)  # type: ignore[no-any-return]
    except FieldError as exc:
        raise DecodeError(str(exc)) from exc
    except (ValueError, TypeError, RecursionError) as exc:
        raise DecodeError(f"request body {_reason(exc)}") from exc


def decode(body: bytes, cls: type[T]) -> T:
    """Parse and build a message; an empty body is the empty message."""
    return structure(parse_json(body) if body.strip() else {}, cls)


def encode(message: Any) -> bytes:
    return _ENCODER.encode(to_dict(message)).encode()
