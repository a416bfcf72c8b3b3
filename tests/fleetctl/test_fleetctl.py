"""fleetctl's errors and exit codes, whatever the command (a scripted admin API behind its
HTTP seam; the real gateway is exercised in e2e)."""

from __future__ import annotations

import httpx
import pytest

from fleetctl.__main__ import run
from fleetwire import codec
from fleetwire import messages as m
from fleetwire.codes import Code
from tests.fleetctl.scripted import ENV, ScriptedAdmin, error, fleetctl, node

# One command per family, each answered by the same Connect error.
COMMANDS = {
    "GetFleetSummary": ["summary"],
    "ListFleetNodes": ["nodes"],
    "ListEnrollmentCodes": ["codes"],
    "CreateEnrollmentCode": ["create-code"],
    "RevokeEnrollmentCode": ["revoke-code", "3"],
    "ListFleetNodeEvents": ["events"],
    "ConfirmFleetNode": ["confirm", "4"],
    "RevokeFleetNode": ["revoke", "4"],
}


@pytest.mark.parametrize(
    ("code", "exit_code"),
    [
        (Code.UNAUTHENTICATED, 77),
        (Code.PERMISSION_DENIED, 77),
        (Code.INVALID_ARGUMENT, 2),
        (Code.NOT_FOUND, 1),
        (Code.FAILED_PRECONDITION, 1),
        (Code.UNIMPLEMENTED, 1),
        (Code.INTERNAL, 1),
        (Code.UNAVAILABLE, 69),
        (Code.RESOURCE_EXHAUSTED, 69),
        (Code.DEADLINE_EXCEEDED, 69),
    ],
)
@pytest.mark.parametrize("method", list(COMMANDS))
def test_connect_error_prints_code_and_message_and_maps_to_an_exit_code(
    method: str, code: Code, exit_code: int, capsys: pytest.CaptureFixture[str]
) -> None:
    """Every command prints `fleetctl: <code>: <message>` for a Connect error and exits with
    the code's exit status (77 rejected, 2 invalid, 69 unavailable, 1 otherwise)."""
    admin = ScriptedAdmin()
    admin.fail(method, error(code, "the gateway says no"))
    assert fleetctl(COMMANDS[method], admin) == exit_code
    captured = capsys.readouterr()
    assert captured.err == f"fleetctl: {code.value}: the gateway says no\n"
    assert captured.out == ""
    assert [name for name, _ in admin.calls] == [method]


def test_rejected_token_exits_77(capsys: pytest.CaptureFixture[str]) -> None:
    """An admin token the gateway rejects exits 77 and says unauthenticated."""
    env = {**ENV, "FLEET_ADMIN_TOKEN": "fleetadm_bad"}
    assert fleetctl(["nodes"], ScriptedAdmin(), env) == 77
    assert capsys.readouterr().err == "fleetctl: unauthenticated: invalid admin token\n"


def test_missing_token_is_a_configuration_error(capsys: pytest.CaptureFixture[str]) -> None:
    """Without FLEET_ADMIN_TOKEN nothing is sent and the message says what to export."""
    admin = ScriptedAdmin()
    assert fleetctl(["nodes"], admin, {}) == 78
    assert "FLEET_ADMIN_TOKEN" in capsys.readouterr().err
    assert admin.calls == []


def test_unreadable_ca_file_is_a_configuration_error(capsys: pytest.CaptureFixture[str]) -> None:
    """A --ca-file that cannot be loaded exits 78 naming it, before any request."""
    admin = ScriptedAdmin()
    assert fleetctl(["--ca-file", "/nonexistent/ca.pem", "nodes"], admin) == 78
    assert "--ca-file /nonexistent/ca.pem: cannot load it" in capsys.readouterr().err
    assert admin.calls == []


def test_unreachable_gateway_exits_69(capsys: pytest.CaptureFixture[str]) -> None:
    """A connection failure exits 69 and names the server, without a traceback."""

    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    assert run(["nodes"], ENV, httpx.MockTransport(refuse)) == 69
    err = capsys.readouterr().err
    assert err == "fleetctl: unavailable: cannot reach https://gw.test: ConnectError\n"


def test_an_answer_that_is_not_the_message_exits_69(capsys: pytest.CaptureFixture[str]) -> None:
    """A 200 whose body is not the expected message is reported, not a traceback."""
    admin = ScriptedAdmin()
    admin.fail("GetFleetSummary", httpx.Response(200, content=b'{"online": "many"}'))
    assert fleetctl(["summary"], admin) == 69
    assert "answered an invalid message: online: must be an integer" in capsys.readouterr().err


def test_a_page_token_that_does_not_advance_ends_the_listing(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A gateway that answers the page token it was given cannot keep fleetctl paging."""
    admin = ScriptedAdmin()
    stuck = m.ListFleetNodesResponse((node(1),), next_page_token="same")
    admin.fail(
        "ListFleetNodes",
        httpx.Response(200, content=codec.encode(stuck)),
        httpx.Response(200, content=codec.encode(stuck)),
    )
    assert fleetctl(["nodes"], admin) == 69
    assert "answered a page that does not advance" in capsys.readouterr().err
    assert len(admin.calls) == 2


@pytest.mark.parametrize(
    "argv",
    [
        ["confirm", "0"],
        ["revoke", "-3"],
        ["revoke", "9223372036854775808"],
        ["revoke-code", "x"],
        ["events", "--node", "0"],
        ["events", "--after", "-1"],
        ["nodes", "--connectivity", "asleep"],
        [],
        ["frobnicate"],
    ],
)
def test_bad_arguments_are_usage_errors_before_any_request(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    """An id out of int64's positive range, an unknown choice or command exits 2, no call."""
    admin = ScriptedAdmin()
    assert fleetctl(argv, admin) == 2
    assert admin.calls == []
    assert "usage: fleetctl" in capsys.readouterr().err
