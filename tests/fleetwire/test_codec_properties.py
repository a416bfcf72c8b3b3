"""Property-based tests of the wire decoder: whatever arrives, decoding yields a message or
a DecodeError whose message names a field and quotes nothing the caller sent.

Hypothesis runs derandomized (the same examples on every CI run, no example database on
disk), so a failure here is reproducible from the test name alone.
"""

from __future__ import annotations

import base64
import datetime
import json
import re
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from fleetwire import codec
from fleetwire import messages as m
from fleetwire import procedures as p
from fleetwire.validators import INT64_MAX, INT64_MIN
from tests.fleetwire.json_strategies import request_bodies

PROPERTIES = settings(max_examples=100, deadline=None, derandomize=True, database=None)

REQUEST_TYPES: tuple[type[Any], ...] = tuple(
    dict.fromkeys(procedure.request_type for procedure in p.ALL)
)

# Every reason the codec and the validators give; a message outside this set (a Python
# exception text, an echoed value) would leak internals or the caller's secret back.
REASONS = (
    r"must be an integer",
    r"is out of range",
    r"must be a string",
    r"must be base64",
    r"must be an RFC 3339 timestamp( with a time zone)?",
    r"must be one of [A-Z_, ]+",
    r"must be a JSON object",
    r"must be a list",
    r"is given twice",
    r"has the wrong type",
    r"is required",
    r"must be (exactly )?[0-9.]+ (characters|bytes)",
    r"must be between -?[0-9]+ and [0-9]+( \(up to [0-9]+ for a pre-approved code\))?",
    r"must be true or false",
    r"must be at most [0-9]+ characters",
    r"must be printable UTF-8 text",
    r"must be exactly [0-9]+ bytes when given",
    r"more than 1 needs preApproved",
)
FIELD = r"[A-Za-z][A-Za-z0-9]*(\.[A-Za-z][A-Za-z0-9]*)*"
DECODE_MESSAGE = re.compile(
    rf"request body is not valid JSON|request body (must be a JSON object|has the wrong type)"
    rf"|{FIELD}: ({'|'.join(REASONS)})"
)


def assert_decodes_or_names_the_field(body: bytes, cls: type[Any]) -> None:
    try:
        message = codec.decode(body, cls)
    except codec.DecodeError as exc:
        assert DECODE_MESSAGE.fullmatch(str(exc)), str(exc)
    else:
        assert isinstance(message, cls)


@pytest.mark.parametrize("cls", REQUEST_TYPES, ids=lambda cls: cls.__name__)
@PROPERTIES
@given(body=st.binary(max_size=300))
@example(body=b"\xef\xbb\xbf{}")  # a UTF-8 byte order mark
@example(body=b'{"name": "\xff"}')  # not UTF-8
@example(body=b"[" * 5000 + b"]" * 5000)
@example(body=b'{"a": {"a": 1, "a": 2}}')  # a duplicate deep inside an unknown key
@example(body=b"NaN")
def test_arbitrary_bytes_decode_or_raise_decode_error(cls: type[Any], body: bytes) -> None:
    """Any bytes at all decode to the message or raise DecodeError with a safe message."""
    assert_decodes_or_names_the_field(body, cls)


@PROPERTIES
@given(cls=st.sampled_from(REQUEST_TYPES), data=st.data())
def test_wrong_json_types_are_decode_errors_naming_the_field(
    cls: type[Any], data: st.DataObject
) -> None:
    """A JSON object with any values under the message's keys decodes or names the field."""
    body = data.draw(request_bodies(cls))
    assert_decodes_or_names_the_field(json.dumps(body).encode(), cls)


@PROPERTIES
@given(value=st.integers(min_value=INT64_MIN, max_value=INT64_MAX), as_string=st.booleans())
def test_every_int64_is_accepted_as_string_or_number(value: int, as_string: bool) -> None:
    """Every int64 decodes to itself whether sent as a decimal string or a JSON number."""
    sent = str(value) if as_string else value
    decoded = codec.structure({"clockSkewMs": sent}, m.FleetNodeSummary)
    assert decoded.clock_skew_ms == value


@PROPERTIES
@given(
    value=st.integers(min_value=INT64_MAX + 1) | st.integers(max_value=INT64_MIN - 1),
    as_string=st.booleans(),
)
def test_outside_int64_is_out_of_range(value: int, as_string: bool) -> None:
    """An integer outside int64, however long, is refused as "is out of range"."""
    sent = str(value) if as_string else value
    with pytest.raises(codec.DecodeError) as caught:
        codec.structure({"clockSkewMs": sent}, m.FleetNodeSummary)
    assert str(caught.value) == "clockSkewMs: is out of range"


@pytest.mark.parametrize("digits", ["1" * 5000, "-" + "9" * 5000, "1" + "0" * 19])
def test_long_decimal_strings_are_out_of_range_not_a_python_error(digits: str) -> None:
    """A decimal string past int64, even past Python's 4300-digit int() limit, is "is out of
    range" (the limit's own message, naming sys.set_int_max_str_digits, never reaches a
    caller)."""
    with pytest.raises(codec.DecodeError) as caught:
        codec.structure({"clockSkewMs": digits}, m.FleetNodeSummary)
    assert str(caught.value) == "clockSkewMs: is out of range"


def test_leading_zeros_do_not_count_towards_the_digit_limit() -> None:
    """A decimal string padded with thousands of zeros is still its small value."""
    decoded = codec.structure({"clockSkewMs": "-" + "0" * 5000 + "42"}, m.FleetNodeSummary)
    assert decoded.clock_skew_ms == -42


@pytest.mark.parametrize(
    "stamp", ["0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-00:01", "0001-01-01T00:00:00+23:59"]
)
def test_timestamp_outside_utc_years_is_invalid_not_a_crash(stamp: str) -> None:
    """A timestamp that leaves years 1..9999 once moved to UTC is a DecodeError, not an
    OverflowError (which the gateway would have answered with internal)."""
    with pytest.raises(codec.DecodeError, match="^sentAt: is out of range$"):
        codec.decode(json.dumps({"sentAt": stamp}).encode(), m.UploadHeartbeatRequest)


@PROPERTIES
@given(
    stamp=st.datetimes(
        min_value=datetime.datetime(1, 1, 2),
        max_value=datetime.datetime(9999, 12, 30),
        # RFC 3339 offsets are whole minutes within a day.
        timezones=st.integers(-1439, 1439).map(
            lambda minutes: datetime.timezone(datetime.timedelta(minutes=minutes))
        ),
    )
)
def test_any_zoned_timestamp_decodes_to_the_same_instant(stamp: datetime.datetime) -> None:
    """Any RFC 3339 timestamp with an offset decodes to the same instant, in UTC."""
    body = json.dumps({"sentAt": stamp.isoformat()}).encode()
    decoded = codec.decode(body, m.UploadHeartbeatRequest).sent_at
    assert decoded == stamp
    assert decoded is not None and decoded.utcoffset() == datetime.timedelta(0)


@PROPERTIES
@given(key=st.binary(min_size=32, max_size=32), urlsafe=st.booleans(), padded=st.booleans())
def test_any_32_bytes_decode_from_either_base64_alphabet(
    key: bytes, urlsafe: bool, padded: bool
) -> None:
    """bytes fields accept standard or URL-safe base64, padded or not."""
    text = (base64.urlsafe_b64encode if urlsafe else base64.b64encode)(key).decode()
    text = text if padded else text.rstrip("=")
    body = {"apiKey": "k" * 20, "identityPubkey": text}
    assert codec.structure(body, m.BeginAuthHandshakeRequest).identity_pubkey == key


@PROPERTIES
@given(text=st.text(max_size=60).filter(lambda t: not re.fullmatch(r"[A-Za-z0-9+/_-]*=*", t)))
def test_text_outside_the_base64_alphabets_is_refused(text: str) -> None:
    """A bytes field holding characters outside both base64 alphabets is refused."""
    with pytest.raises(codec.DecodeError, match="^identityPubkey: must be base64$"):
        codec.structure({"identityPubkey": text}, m.BeginAuthHandshakeRequest)


def printable_text(max_size: int) -> st.SearchStrategy[str]:
    return st.text(st.characters(codec="utf-8"), max_size=max_size)


def valid_requests() -> st.SearchStrategy[Any]:
    keys = st.binary(min_size=32, max_size=32)
    return st.one_of(
        st.builds(
            m.RegisterRequest,
            enrollment_token=printable_text(512).filter(lambda t: 20 <= len(t)),
            name=printable_text(255).filter(bool),
            identity_pubkey=keys,
        ),
        st.builds(
            m.BeginAuthHandshakeRequest,
            api_key=printable_text(512).filter(lambda t: 20 <= len(t)),
            identity_pubkey=keys,
        ),
        st.builds(
            m.CompleteAuthHandshakeRequest,
            challenge=st.binary(min_size=16, max_size=64),
            signature=st.binary(min_size=64, max_size=64),
        ),
        st.builds(
            m.UploadHeartbeatRequest,
            sent_at=st.datetimes(
                min_value=datetime.datetime(1, 1, 1),
                max_value=datetime.datetime(9999, 12, 31),
                timezones=st.just(datetime.UTC),
            ),
        ),
        st.builds(m.CreateEnrollmentCodeRequest, ttl_seconds=st.none() | st.integers(60, 86400)),
        st.builds(
            m.ListFleetNodesRequest,
            page_size=st.integers(0, m.MAX_PAGE_SIZE),
            page_token=printable_text(512),
            connectivity=st.sampled_from(m.Connectivity),
        ),
        st.builds(m.ConfirmFleetNodeRequest, fleet_node_id=st.integers(1, INT64_MAX)),
        st.builds(m.RevokeFleetNodeRequest, fleet_node_id=st.integers(1, INT64_MAX)),
    )


@PROPERTIES
@given(message=valid_requests())
def test_every_valid_request_round_trips(message: Any) -> None:
    """Encoding a valid request and decoding it gives the same request back."""
    assert codec.decode(codec.encode(message), type(message)) == message


@pytest.mark.parametrize(
    "body",
    [
        b'{"name": "a", "name": "b"}',
        b'{"wrapper": {"name": "a", "name": "b"}}',
        b'{"name": "a", "x": [{"k": 1, "k": 1}]}',
    ],
)
def test_duplicate_keys_are_refused_at_any_depth(body: bytes) -> None:
    """A key given twice in one JSON object is refused, however deep the object sits."""
    with pytest.raises(codec.DecodeError, match="is given twice$"):
        codec.decode(body, m.RegisterRequest)


def test_one_field_in_both_spellings_is_given_twice() -> None:
    """The snake_case and lowerCamelCase spellings of one field count as the same key."""
    body = {"enrollment_token": "x" * 20, "enrollmentToken": "y" * 20}
    with pytest.raises(codec.DecodeError, match="^enrollmentToken: is given twice$"):
        codec.structure(body, m.RegisterRequest)
