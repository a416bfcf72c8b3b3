"""`fleetctl create-code`, `codes` and `revoke-code` against a scripted admin API."""

from __future__ import annotations

import json

import pytest

from fleetwire import codec
from fleetwire import messages as m
from fleetwire.codes import Code
from tests.fleetctl.scripted import CODE, ScriptedAdmin, at, error, fleetctl


def code(
    code_id: int, state: str = "OPEN", *, uses: int = 0, max_uses: int = 1, expires_in: float = 3600
) -> m.EnrollmentCodeSummary:
    return m.EnrollmentCodeSummary(
        pending_enrollment_id=m.Int64(code_id),
        created_at=at(-7200),
        expires_at=at(expires_in),
        pre_approved=max_uses > 1,
        max_uses=m.Int32(max_uses),
        uses=m.Int32(uses),
        state=m.EnrollmentCodeState[f"ENROLLMENT_CODE_STATE_{state}"],
    )


def test_create_code_prints_the_code_alone_and_details_on_stderr(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """By default a one-use confirmation code valid 1h: the code alone on stdout, its id,
    kind, uses and expiry on stderr."""
    admin = ScriptedAdmin()
    assert fleetctl(["create-code"], admin) == 0
    captured = capsys.readouterr()
    assert captured.out == f"{CODE}\n"
    assert captured.err == (
        "confirmation code (1 use; confirm the node with `fleetctl confirm`) for pending "
        "enrollment 31, expires 2026-11-27T11:00:00Z (in 1h); shown once:\n"
    )
    (request,) = admin.requests("CreateEnrollmentCode")
    assert request == m.CreateEnrollmentCodeRequest(ttl_seconds=m.Int32(3600))
    assert codec.to_dict(request) == {"ttlSeconds": 3600}


def test_create_pre_approved_code_with_uses_and_a_week_ttl(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """--pre-approve --uses 20 --ttl 7d asks for exactly that and says how many uses remain."""
    admin = ScriptedAdmin()
    assert fleetctl(["create-code", "--pre-approve", "--uses", "20", "--ttl", "7d"], admin) == 0
    captured = capsys.readouterr()
    assert captured.out == f"{CODE}\n"
    assert "pre-approved code" in captured.err and "20 uses allowed" in captured.err
    assert "expires 2026-12-04T10:00:00Z (in 7d)" in captured.err
    (request,) = admin.requests("CreateEnrollmentCode")
    assert codec.to_dict(request) == {"ttlSeconds": 604800, "preApproved": True, "maxUses": 20}


def test_pre_approve_without_uses_asks_for_one_use() -> None:
    """--pre-approve alone leaves maxUses absent (the API's default, 1)."""
    admin = ScriptedAdmin()
    assert fleetctl(["create-code", "--pre-approve", "--ttl", "30d"], admin) == 0
    (request,) = admin.requests("CreateEnrollmentCode")
    assert codec.to_dict(request) == {"ttlSeconds": 2592000, "preApproved": True}


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--uses", "5"], "--uses needs --pre-approve"),
        (["--ttl", "25h"], "--ttl must be between 1m and 1d (up to 30d with --pre-approve)"),
        (["--ttl", "59s"], "--ttl must be between 1m and 1d"),
        (["--ttl", "31d", "--pre-approve"], "--ttl must be between 1m and 30d"),
        (["--ttl", "soon"], "invalid duration 'soon'"),
        (["--pre-approve", "--uses", "0"], "--uses: must be between 1 and 100000"),
        (["--pre-approve", "--uses", "100001"], "--uses: must be between 1 and 100000"),
        (["--pre-approve", "--uses", "many"], "--uses: not an integer"),
    ],
)
def test_create_code_usage_errors_exit_2_before_any_request(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """Flags the gateway would refuse exit 2 with a message in flag terms, nothing sent."""
    admin = ScriptedAdmin()
    assert fleetctl(["create-code", *argv], admin) == 2
    assert message in capsys.readouterr().err
    assert admin.calls == []


def test_gateway_refusal_of_a_code_is_reported_with_its_code(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A viewer creating a code gets permission_denied: exit 77, no code on stdout."""
    admin = ScriptedAdmin()
    admin.fail("CreateEnrollmentCode", error(Code.PERMISSION_DENIED, "admin role required"))
    assert fleetctl(["create-code"], admin) == 77
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err == "fleetctl: permission_denied: admin role required\n"


CODES = [
    code(9, uses=3, max_uses=20, expires_in=3 * 3600),
    code(8, expires_in=600),
    code(7, "USED_UP", uses=1),
    code(6, "EXPIRED", expires_in=-2 * 3600),
    code(5, "REVOKED", uses=2, max_uses=5),
]


def test_codes_lists_open_codes_across_pages(capsys: pytest.CaptureFixture[str]) -> None:
    """`codes` asks for open codes only and prints id, age, expiry, kind, uses and state."""
    admin = ScriptedAdmin(codes=CODES, page_size=1)
    assert fleetctl(["codes"], admin) == 0
    assert capsys.readouterr().out.splitlines() == [
        "ID  CREATED  EXPIRES  PRE-APPROVED  USES  STATE",
        "9   2h ago   in 3h    yes           3/20  OPEN",
        "8   2h ago   in 10m   no            0/1   OPEN",
    ]
    requests = admin.requests("ListEnrollmentCodes")
    assert [r.page_token for r in requests] == ["", "1"]
    assert not any(r.include_closed for r in requests)


def test_codes_all_includes_closed_codes(capsys: pytest.CaptureFixture[str]) -> None:
    """`codes --all` asks for closed codes too and shows USED UP, EXPIRED and REVOKED."""
    admin = ScriptedAdmin(codes=CODES)
    assert fleetctl(["codes", "--all"], admin) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in lines[1:]] == ["9", "8", "7", "6", "5"]
    assert lines[3].endswith("1/1   USED UP")
    assert lines[4].split()[3:5] == ["2h", "ago"] and lines[4].endswith("EXPIRED")
    assert lines[5].endswith("2/5   REVOKED")
    assert all(r.include_closed for r in admin.requests("ListEnrollmentCodes"))


def test_codes_json_is_the_api_form_with_every_code(capsys: pytest.CaptureFixture[str]) -> None:
    """`codes --all --json` prints {"enrollmentCodes": [...]} as the API writes it."""
    assert fleetctl(["codes", "--all", "--json"], ScriptedAdmin(codes=CODES)) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed == codec.to_dict(m.ListEnrollmentCodesResponse(tuple(CODES)))
    first = printed["enrollmentCodes"][0]
    assert first["pendingEnrollmentId"] == "9" and first["uses"] == 3
    assert first["state"] == "ENROLLMENT_CODE_STATE_OPEN"
    assert "code" not in first


def test_codes_json_without_codes_has_an_empty_list(capsys: pytest.CaptureFixture[str]) -> None:
    """With no open code, `codes --json` prints an empty list under enrollmentCodes."""
    assert fleetctl(["codes", "--json"], ScriptedAdmin()) == 0
    assert json.loads(capsys.readouterr().out) == {"enrollmentCodes": []}


def test_revoke_code_revokes_and_confirms_in_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    """`revoke-code ID` sends that id and prints one line."""
    admin = ScriptedAdmin(codes=[code(8)])
    assert fleetctl(["revoke-code", "8"], admin) == 0
    assert capsys.readouterr().out == "revoked enrollment code pending_enrollment_id=8\n"
    assert admin.requests("RevokeEnrollmentCode") == [m.RevokeEnrollmentCodeRequest(m.Int64(8))]
    assert admin.codes[0].state is m.EnrollmentCodeState.ENROLLMENT_CODE_STATE_REVOKED


def test_revoke_code_of_an_unknown_id_is_not_found(capsys: pytest.CaptureFixture[str]) -> None:
    """An unknown (or another organization's) code id exits 1 with not_found."""
    assert fleetctl(["revoke-code", "99"], ScriptedAdmin()) == 1
    assert capsys.readouterr().err == "fleetctl: not_found: enrollment code not found\n"
