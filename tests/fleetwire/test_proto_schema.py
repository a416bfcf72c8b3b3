"""The published .proto files describe exactly the procedures and messages of fleetwire.

protoc compiles the shipped files into a FileDescriptorSet; every procedure of
``fleetwire.procedures.ALL`` and every message and enum reachable from it must have its
counterpart there, field for field: same names and JSON names, same kinds (int64, int32,
string, bytes, bool, Timestamp, enum, message, repeated), presence where fleetwire has it
(a field whose default is None), same enum value names and numbers. So a field added on
one side only fails here, naming it. Then protobuf's own JSON mapping (json_format) and
fleetwire's codec must read each other's output of any message to the same value, with
the same keys present.
"""

from __future__ import annotations

import datetime
import enum
import json
import subprocess
import sys
import types
import typing
from pathlib import Path
from typing import Any

import attrs
import pytest
from google.protobuf import descriptor_pb2, descriptor_pool, json_format, message_factory
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from hypothesis import given, reject, settings
from hypothesis import strategies as st

from fleetwire import codec, proto
from fleetwire import messages as m
from fleetwire.procedures import ADMIN_SERVICE, ALL, GATEWAY_SERVICE, Procedure
from fleetwire.validators import INT32_MAX, INT32_MIN, INT64_MAX, INT64_MIN, FieldError

F = FieldDescriptor
SCALARS: dict[object, int] = {
    m.Int64: F.TYPE_INT64,
    m.Int32: F.TYPE_INT32,
    str: F.TYPE_STRING,
    bytes: F.TYPE_BYTES,
    bool: F.TYPE_BOOL,
}
TYPE_NAMES = {value: name for name, value in vars(F).items() if name.startswith("TYPE_")}
TIMESTAMP = "google.protobuf.Timestamp"


@pytest.fixture(scope="module")
def pool(tmp_path_factory: pytest.TempPathFactory) -> descriptor_pool.DescriptorPool:
    """The shipped files as protoc compiles them (with google/protobuf imports)."""
    out = tmp_path_factory.mktemp("proto") / "schema.binpb"
    done = subprocess.run(
        [
            sys.executable, "-m", "grpc_tools.protoc", "-I", str(proto.ROOT),
            "--include_imports", f"--descriptor_set_out={out}", *proto.FILES,
        ],
        capture_output=True,
        text=True,
        check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    pool = descriptor_pool.DescriptorPool()
    for file in descriptor_pb2.FileDescriptorSet.FromString(out.read_bytes()).file:
        pool.AddSerializedFile(file.SerializeToString())
    return pool


def test_the_files_ship_inside_the_fleetwire_package() -> None:
    """Every file fleetwire.proto names exists under its ROOT, and no other .proto does."""
    shipped = {path.relative_to(proto.ROOT).as_posix() for path in proto.ROOT.rglob("*.proto")}
    assert shipped == set(proto.FILES)
    assert proto.ROOT == Path(proto.__file__).resolve().parent


@pytest.mark.parametrize("service", [GATEWAY_SERVICE, ADMIN_SERVICE])
def test_each_service_has_exactly_the_procedures_of_fleetwire(
    pool: descriptor_pool.DescriptorPool, service: str
) -> None:
    """A service's methods in the proto are the procedures fleetwire lists for it."""
    in_proto = {method.name for method in pool.FindServiceByName(service).methods}
    assert in_proto == {p.method for p in ALL if p.service == service}


@pytest.mark.parametrize("procedure", ALL, ids=lambda p: p.path)
def test_each_procedure_has_the_messages_of_fleetwire(
    pool: descriptor_pool.DescriptorPool, procedure: Procedure[Any, Any]
) -> None:
    """A procedure's request and response in the proto match fleetwire's, recursively."""
    method = pool.FindServiceByName(procedure.service).methods_by_name[procedure.method]
    problems = [
        *message_differences(procedure.request_type, method.input_type),
        *message_differences(procedure.response_type, method.output_type),
    ]
    assert not problems, "\n".join(problems)


def message_differences(cls: type, message: Descriptor) -> list[str]:
    """What differs between a fleetwire message class and a proto message, one line each."""
    where = message.full_name
    problems = []
    if message.name != cls.__name__:
        problems.append(f"{where}: fleetwire calls it {cls.__name__}")
    ours = {field.name: field.type for field in attrs.fields(attrs.resolve_types(cls))}
    theirs = {field.name: field for field in message.fields}
    problems += [f"{where}.{name}: in fleetwire only" for name in sorted(ours.keys() - theirs)]
    problems += [f"{where}.{name}: in the proto only" for name in sorted(theirs.keys() - ours)]
    for name in sorted(ours.keys() & theirs.keys()):
        if theirs[name].json_name != codec.snake_to_camel(name):
            problems.append(f"{where}.{name}: JSON name {theirs[name].json_name} in the proto")
        problems += field_differences(f"{where}.{name}", ours[name], theirs[name])
    return problems


def field_differences(where: str, type_: Any, field: FieldDescriptor) -> list[str]:
    has_presence = typing.get_origin(type_) in (typing.Union, types.UnionType)
    if has_presence:
        (type_,) = (arg for arg in typing.get_args(type_) if arg is not type(None))
    repeated = typing.get_origin(type_) is tuple
    if repeated:
        type_ = typing.get_args(type_)[0]
    if repeated != field.is_repeated:
        return [f"{where}: repeated in {'fleetwire' if repeated else 'the proto'} only"]
    if has_presence != field.has_presence:
        side = "fleetwire (default None)" if has_presence else "the proto"
        return [f"{where}: has presence in {side} only"]
    if type_ in SCALARS:
        if field.type != SCALARS[type_]:
            return [
                f"{where}: {type_.__name__} in fleetwire, {TYPE_NAMES[field.type]} in the proto"
            ]
        return []
    if type_ is datetime.datetime:
        if field.message_type is None or field.message_type.full_name != TIMESTAMP:
            return [f"{where}: a timestamp in fleetwire, not a {TIMESTAMP} in the proto"]
        return []
    if isinstance(type_, type) and issubclass(type_, enum.Enum):
        if field.enum_type is None:
            return [f"{where}: enum {type_.__name__} in fleetwire, not an enum in the proto"]
        ours = {value.name: value.value for value in type_}
        theirs = {value.name: value.number for value in field.enum_type.values}
        if (type_.__name__, ours) != (field.enum_type.name, theirs):
            return [f"{where}: enum {type_.__name__} {ours} != {field.enum_type.name} {theirs}"]
        return []
    if attrs.has(type_):
        if field.message_type is None:
            return [f"{where}: message {type_.__name__} in fleetwire, not in the proto"]
        return message_differences(type_, field.message_type)
    return [f"{where}: no proto counterpart known for {type_!r}"]


# --- the two JSON mappings agree ---------------------------------------------------

PROPERTIES = settings(max_examples=50, deadline=None, derandomize=True, database=None)
INT_RANGES = {m.Int64: (INT64_MIN, INT64_MAX), m.Int32: (INT32_MIN, INT32_MAX)}


@pytest.mark.parametrize("direction", ["request", "response"])
@pytest.mark.parametrize("procedure", ALL, ids=lambda p: p.path)
@PROPERTIES
@given(data=st.data())
def test_protobuf_and_fleetwire_read_each_others_json_of_any_message(
    pool: descriptor_pool.DescriptorPool,
    procedure: Procedure[Any, Any],
    direction: str,
    data: st.DataObject,
) -> None:
    """Whatever fleetwire writes, protobuf parses strictly, and what protobuf writes back
    decodes in fleetwire to the same message, with the same keys present (the request
    rules of SPEC 2 are off here: they are the gateway's, not the mapping's)."""
    method = pool.FindServiceByName(procedure.service).methods_by_name[procedure.method]
    cls, descriptor = (
        (procedure.request_type, method.input_type)
        if direction == "request"
        else (procedure.response_type, method.output_type)
    )
    message = data.draw(unvalidated(cls))
    ours = codec.encode(message)
    parsed = json_format.Parse(ours, message_factory.GetMessageClass(descriptor)())
    theirs = json_format.MessageToJson(parsed)
    with attrs.validators.disabled():
        assert codec.decode(theirs.encode(), cls) == message
    assert keys(json.loads(ours)) == keys(json.loads(theirs))


def keys(value: Any) -> Any:
    """The shape of a JSON value: which keys are present, at every depth."""
    if isinstance(value, dict):
        return {key: keys(item) for key, item in value.items()}
    if isinstance(value, list):
        return [keys(item) for item in value]
    return None


def unvalidated(cls: type) -> st.SearchStrategy[Any]:
    """Any message of ``cls`` its field types allow, validators off."""

    def build(**fields: Any) -> Any:
        with attrs.validators.disabled():
            try:
                return cls(**fields)
            except FieldError:  # a rule across fields (__attrs_post_init__)
                reject()

    fields = attrs.fields(attrs.resolve_types(cls))
    return st.builds(build, **{field.name: values_of(field.type) for field in fields})


def values_of(type_: Any) -> st.SearchStrategy[Any]:
    if typing.get_origin(type_) in (typing.Union, types.UnionType):
        (inner,) = (arg for arg in typing.get_args(type_) if arg is not type(None))
        return st.none() | values_of(inner)
    if typing.get_origin(type_) is tuple:
        return st.lists(values_of(typing.get_args(type_)[0]), max_size=2).map(tuple)
    if type_ in INT_RANGES:
        low, high = INT_RANGES[type_]
        # 0 first: where presence matters, it is the value a mapping can lose.
        return st.sampled_from([0, -1, low, high]) | st.integers(low, high)
    strategies: dict[object, st.SearchStrategy[Any]] = {
        str: st.text(max_size=10),
        bytes: st.binary(max_size=40),
        bool: st.booleans(),
        datetime.datetime: st.datetimes(timezones=st.just(datetime.UTC)),
    }
    if type_ in strategies:
        return strategies[type_]
    if isinstance(type_, type) and issubclass(type_, enum.Enum):
        return st.sampled_from(type_)
    assert attrs.has(type_), f"no strategy for {type_!r}"
    return unvalidated(type_)
