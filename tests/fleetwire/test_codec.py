"""The proto3 JSON mapping of the wire messages, both directions."""

from __future__ import annotations

import base64
import datetime

import pytest

from fleetwire import codec
from fleetwire import messages as m

KEY = bytes(range(32))
TOKEN = "t" * 43
HEARTBEAT = m.UploadHeartbeatRequest


def register_body(**fields: object) -> dict[str, object]:
    body: dict[str, object] = {
        "enrollmentToken": TOKEN,
        "name": "node-1",
        "identityPubkey": base64.b64encode(KEY).decode(),
    }
    body.update(fields)
    return body


def test_camel_and_snake_keys_are_both_accepted() -> None:
    """A request may spell its keys in lowerCamelCase or in the proto snake_case."""
    camel = codec.structure(register_body(), m.RegisterRequest)
    snake = codec.structure(
        {
            "enrollment_token": TOKEN,
            "name": "node-1",
            "identity_pubkey": base64.b64encode(KEY).decode(),
        },
        m.RegisterRequest,
    )
    assert camel == snake == m.RegisterRequest(TOKEN, "node-1", KEY)


def test_url_safe_base64_without_padding_is_accepted() -> None:
    """bytes fields accept URL-safe base64 with or without padding."""
    key = bytes([0xFB, 0xFF] * 16)
    urlsafe = base64.urlsafe_b64encode(key).decode().rstrip("=")
    assert (
        codec.structure(register_body(identityPubkey=urlsafe), m.RegisterRequest).identity_pubkey
        == key
    )


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        (
            {"identityPubkey": base64.b64encode(b"short").decode()},
            "identityPubkey: must be exactly 32 bytes",
        ),
        ({"identityPubkey": "not base64!"}, "identityPubkey: must be base64"),
        ({"name": ""}, "name: must be 1..255 characters"),
        ({"name": 7}, "name: must be a string"),
        ({"enrollmentToken": "short"}, "enrollmentToken: must be 20..512 characters"),
    ],
)
def test_invalid_fields_are_named(fields: dict[str, object], message: str) -> None:
    """A bad field gives a DecodeError whose message names the field in its wire spelling."""
    with pytest.raises(codec.DecodeError) as caught:
        codec.structure(register_body(**fields), m.RegisterRequest)
    assert str(caught.value) == message


@pytest.mark.parametrize("value", ["42", 42, 42.0])
def test_int64_accepts_strings_and_numbers(value: object) -> None:
    """int64 fields accept a decimal string or a JSON number and are written as strings."""
    request = codec.structure({"fleetNodeId": value}, m.ConfirmFleetNodeRequest)
    assert request.fleet_node_id == 42
    assert codec.encode(request) == b'{"fleetNodeId":"42"}'


@pytest.mark.parametrize("value", ["0", "-3", "9223372036854775808", True, "4.5", "0x10", 1.5])
def test_bad_or_out_of_range_ids_are_refused(value: object) -> None:
    """Non-positive, overflowing or non-integer ids are invalid arguments naming fleetNodeId."""
    with pytest.raises(codec.DecodeError, match="^fleetNodeId: "):
        codec.structure({"fleetNodeId": value}, m.ConfirmFleetNodeRequest)


def test_unknown_keys_and_nulls_are_ignored() -> None:
    """Unknown keys are ignored and null means the field's default."""
    request = codec.structure({"pageSize": None, "extra": {"x": 1}}, m.ListFleetNodesRequest)
    assert request == m.ListFleetNodesRequest()


def test_enums_by_name_or_number_and_unknown_refused() -> None:
    """Enums travel by name; numbers are accepted; unknown names are refused."""
    assert (
        codec.structure(
            {"connectivity": "CONNECTIVITY_OFFLINE"}, m.ListFleetNodesRequest
        ).connectivity
        is m.Connectivity.CONNECTIVITY_OFFLINE
    )
    assert (
        codec.structure({"connectivity": 1}, m.ListFleetNodesRequest).connectivity
        is m.Connectivity.CONNECTIVITY_ONLINE
    )
    with pytest.raises(codec.DecodeError, match="^connectivity: must be one of"):
        codec.structure({"connectivity": "CONNECTIVITY_SOMETIMES"}, m.ListFleetNodesRequest)


@pytest.mark.parametrize("size", [-1, 1001])
def test_page_size_out_of_range(size: int) -> None:
    """pageSize is limited to 1000 (0 means the default)."""
    with pytest.raises(codec.DecodeError, match="^pageSize: "):
        codec.structure({"pageSize": size}, m.ListFleetNodesRequest)


def test_timestamps_are_normalised_to_utc_with_z() -> None:
    """RFC 3339 timestamps with any offset are read and written back in UTC with Z."""
    request = codec.structure({"sentAt": "2026-11-26T21:00:00.5+01:00"}, m.UploadHeartbeatRequest)
    assert request.sent_at == datetime.datetime(2026, 11, 26, 20, 0, 0, 500000, tzinfo=datetime.UTC)
    assert codec.encode(request) == b'{"sentAt":"2026-11-26T20:00:00.500000Z"}'


@pytest.mark.parametrize("value", ["2026-11-26", "2026-11-26T20:00:00", "yesterday", 1700000000])
def test_bad_timestamps_are_refused(value: object) -> None:
    """A timestamp without a time or a zone, or not a string, is refused naming sentAt."""
    with pytest.raises(codec.DecodeError, match="^sentAt: "):
        codec.structure({"sentAt": value}, m.UploadHeartbeatRequest)


def test_required_timestamp() -> None:
    """UploadHeartbeat without sentAt is refused."""
    with pytest.raises(codec.DecodeError, match="^sentAt: is required$"):
        codec.decode(b"{}", m.UploadHeartbeatRequest)


def test_defaults_omitted_but_presence_fields_kept_at_zero() -> None:
    """Fields at their default are omitted, but a measured clock skew of 0 is written."""
    summary = m.FleetNodeSummary(fleet_node_id=m.Int64(7), name="n", clock_skew_ms=m.Int64(0))
    assert codec.to_dict(summary) == {"fleetNodeId": "7", "name": "n", "clockSkewMs": "0"}
    assert codec.to_dict(m.FleetNodeSummary(fleet_node_id=m.Int64(7))) == {"fleetNodeId": "7"}


def test_nested_list_round_trip() -> None:
    """A listing survives encode then decode unchanged."""
    now = datetime.datetime(2026, 11, 26, 20, 0, tzinfo=datetime.UTC)
    listing = m.ListFleetNodesResponse(
        fleet_nodes=(
            m.FleetNodeSummary(
                fleet_node_id=m.Int64(2**40),
                name="ünïcode ✓",
                enrollment_status=m.FleetNodeEnrollmentStatus.FLEET_NODE_ENROLLMENT_STATUS_CONFIRMED,
                identity_fingerprint="0011223344556677",
                created_at=now,
                last_seen_at=now,
                connectivity=m.Connectivity.CONNECTIVITY_ONLINE,
                clock_skew_ms=m.Int64(-1500),
            ),
        ),
        next_page_token="abc",
    )
    assert codec.decode(codec.encode(listing), m.ListFleetNodesResponse) == listing


@pytest.mark.parametrize(
    "body",
    [b"{", b"[1]", b'"x"', b"\xff\xfe", b"[" * 100_000, b'{"name":"a","name":"b"}'],
)
def test_malformed_bodies_are_decode_errors(body: bytes) -> None:
    """Invalid JSON, non-objects, bad UTF-8, deep nesting, duplicate keys: all DecodeErrors."""
    with pytest.raises(codec.DecodeError):
        codec.decode(body, m.RegisterRequest)


def test_empty_body_is_the_empty_message() -> None:
    """An empty body decodes as a message with every field at its default."""
    assert codec.decode(b"", m.Empty) == m.Empty()


@pytest.mark.parametrize(("value", "expected"), [(True, True), (False, False), ("true", True)])
def test_bools_are_json_booleans(value: object, expected: bool) -> None:
    """A bool field takes true or false (or their strings, as protobuf's parsers do)."""
    request = codec.structure({"sentAt": "2026-11-30T12:00:00Z", "stopping": value}, HEARTBEAT)
    assert request.stopping is expected


@pytest.mark.parametrize("value", ["false ", "yes", 1, [1], {}])
def test_anything_else_is_not_a_bool(value: object) -> None:
    """Before: cattrs' bool() turned the string "false" and a list into True."""
    with pytest.raises(codec.DecodeError, match="^stopping: must be true or false$"):
        codec.structure({"sentAt": "2026-11-30T12:00:00Z", "stopping": value}, HEARTBEAT)


def test_false_string_is_false() -> None:
    """The string "false" is False, never True."""
    body = {"sentAt": "2026-11-30T12:00:00Z", "stopping": "false"}
    assert codec.structure(body, HEARTBEAT).stopping is False


def test_create_code_rules_depend_on_pre_approval() -> None:
    """More than one use, or a TTL past a day, needs a pre-approved code (SPEC 2.2)."""
    create = m.CreateEnrollmentCodeRequest
    assert codec.structure({"preApproved": True, "maxUses": 20, "ttlSeconds": 2592000}, create)
    with pytest.raises(codec.DecodeError, match="^maxUses: more than 1 needs preApproved$"):
        codec.structure({"maxUses": 2}, create)
    with pytest.raises(codec.DecodeError, match="^ttlSeconds: must be between 60 and 86400"):
        codec.structure({"ttlSeconds": 86401}, create)
    with pytest.raises(codec.DecodeError, match="^ttlSeconds: must be between 60 and 2592000"):
        codec.structure({"preApproved": True, "ttlSeconds": 2592001}, create)
    with pytest.raises(codec.DecodeError, match="^maxUses: must be between 1 and 100000$"):
        codec.structure({"preApproved": True, "maxUses": 100001}, create)


@pytest.mark.parametrize(
    ("facts", "message"),
    [
        ({"os": "x" * 256}, "facts.os: must be at most 255 characters"),
        ({"bootId": "\ud800"}, "facts.bootId: must be printable UTF-8 text"),
        ({"hostname": "a\x00b"}, "facts.hostname: must be printable UTF-8 text"),
    ],
)
def test_bad_facts_are_named(facts: dict[str, str], message: str) -> None:
    """Over-long or non-UTF-8 facts are refused, naming the nested field (SPEC 4.11)."""
    body = {"sentAt": "2026-11-30T12:00:00Z", "facts": facts}
    with pytest.raises(codec.DecodeError, match=f"^{message}$"):
        codec.structure(body, HEARTBEAT)
