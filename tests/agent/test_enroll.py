"""fleetnode enroll and refresh, in process, against the fake gateway (SPEC 5.3-5.5, 5.8)."""

from __future__ import annotations

import logging
import re
import stat
from pathlib import Path

import pytest
import trio.testing
import trustme

from agent.statedir import StateStore
from fleetwire.codes import Code
from tests.support.commands import Cli, Outcome
from tests.support.enrolled_node import make_enrolled_state
from tests.support.fake_gateway import (
    API_KEY,
    ENROLLMENT_CODE,
    SERVER_URL,
    FakeGateway,
    error_response,
)

pytestmark = pytest.mark.trio

PIPED = f"{ENROLLMENT_CODE}\n{API_KEY}\n"


async def enroll(cli: Cli, *extra: str, stdin: str = PIPED, url: str = SERVER_URL) -> Outcome:
    return await cli("enroll", "--server-url", url, "--name", "node-a", *extra, stdin=stdin)


def assert_no_secret(text: str, secrets: list[str]) -> None:
    for secret in secrets:
        assert secret not in text


async def test_enroll_with_piped_stdin_prints_result_and_saves_private_state(
    cli: Cli, gateway: FakeGateway, store: StateStore
) -> None:
    """Piped code and api key enroll the node; only the result line goes to stdout."""
    outcome = await enroll(cli)
    assert outcome.code == 0, outcome.stderr
    state = store.load()
    assert state is not None
    assert outcome.stdout == (
        f"enrolled fleet_node_id={state.fleet_node_id} "
        f"fingerprint={state.identity_fingerprint} state={store.state_path}\n"
    )
    assert state.api_key == API_KEY
    assert state.session_token == gateway.issued_tokens[-1]
    assert state.server_url == SERVER_URL and state.name == "node-a"
    # The fingerprint line and both prompts went to stderr, for the operator to compare.
    assert state.identity_fingerprint in outcome.stderr
    assert "Enrollment code:" in outcome.stderr and "API key:" in outcome.stderr
    assert stat.S_IMODE(store.directory.stat().st_mode) == 0o700
    assert stat.S_IMODE(store.state_path.stat().st_mode) == 0o600
    assert [c.method for c in gateway.calls] == [
        "Register",
        "BeginAuthHandshake",
        "CompleteAuthHandshake",
    ]


async def test_enroll_interrupted_at_api_key_prompt_leaves_state_refresh_completes(
    cli: Cli, gateway: FakeGateway, store: StateStore
) -> None:
    """End of input at the api-key prompt exits 78 after saving the partial state, which
    `refresh` then completes."""
    outcome = await enroll(cli, stdin=f"{ENROLLMENT_CODE}\n")
    assert outcome.code == 78
    partial = store.load()
    assert partial is not None
    assert partial.fleet_node_id == 1 and partial.identity_private_key
    assert partial.api_key == "" and partial.session is None

    refreshed = await cli("refresh", stdin=f"{API_KEY}\n")
    assert refreshed.code == 0, refreshed.stderr
    state = store.load()
    assert state is not None
    assert state.api_key == API_KEY
    assert state.session_token == gateway.issued_tokens[-1]
    assert state.identity_private_key == partial.identity_private_key
    assert re.fullmatch(
        r"refreshed session_expires_at=\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z\n", refreshed.stdout
    )


async def test_rejected_api_key_is_never_persisted(
    cli: Cli, gateway: FakeGateway, store: StateStore
) -> None:
    """A refused api key exits 77 and is written neither by enroll nor by refresh."""
    wrong = "fleet_deadbeef_" + "W" * 43
    outcome = await enroll(cli, stdin=f"{ENROLLMENT_CODE}\n{wrong}\n")
    assert outcome.code == 77
    before = store.state_path.read_bytes()
    state = store.load()
    assert state is not None and state.api_key == "" and state.session is None

    again = await cli("refresh", stdin=f"{wrong}\n")
    assert again.code == 77
    assert store.state_path.read_bytes() == before
    assert wrong.encode() not in before


async def test_refresh_keeps_stored_credentials_when_the_key_is_rejected(
    cli: Cli, gateway: FakeGateway, store: StateStore
) -> None:
    """A revoked node's refresh exits 77 and leaves the stored credentials as they were."""
    make_enrolled_state(store, gateway)
    before = store.state_path.read_bytes()
    gateway.nodes[1].gone = True
    outcome = await cli("refresh")
    assert outcome.code == 77
    assert "re-enroll" in outcome.stderr or "enroll" in outcome.stderr
    assert store.state_path.read_bytes() == before


async def test_populated_state_is_refused_without_force(
    cli: Cli, gateway: FakeGateway, store: StateStore
) -> None:
    """A second enroll exits 78 mentioning --force before any request; --force replaces it."""
    assert (await enroll(cli)).code == 0
    before = store.state_path.read_bytes()
    calls = len(gateway.calls)
    gateway.codes.add(ENROLLMENT_CODE)
    gateway.next_api_key = "fleet_0000ffff_" + "F" * 43

    refused = await enroll(cli, stdin=f"{ENROLLMENT_CODE}\n{gateway.next_api_key}\n")
    assert refused.code == 78
    assert "--force" in refused.stderr
    assert store.state_path.read_bytes() == before
    assert len(gateway.calls) == calls

    forced = await cli(
        "enroll",
        "--server-url",
        SERVER_URL,
        "--name",
        "node-b",
        "--force",
        stdin=f"{ENROLLMENT_CODE}\n{gateway.next_api_key}\n",
    )
    assert forced.code == 0, forced.stderr
    state = store.load()
    assert state is not None and state.fleet_node_id == 2 and state.name == "node-b"


@pytest.mark.parametrize("stdin", ["", "\n", "   \n"])
async def test_empty_code_leaves_no_state(
    cli: Cli, gateway: FakeGateway, store: StateStore, stdin: str
) -> None:
    """An empty code or end of input exits 78 with no state written and no request sent."""
    outcome = await enroll(cli, stdin=stdin)
    assert outcome.code == 78
    assert not store.state_path.exists()
    assert gateway.calls == []


async def test_rejected_code_exits_77_without_state(
    cli: Cli, gateway: FakeGateway, store: StateStore
) -> None:
    """An enrollment code the gateway refuses exits 77 and writes nothing."""
    outcome = await enroll(cli, stdin="not-the-code-but-long-enough-x\n" + API_KEY + "\n")
    assert outcome.code == 77
    assert not store.state_path.exists()


async def test_server_fingerprint_differing_from_local_is_refused(
    cli: Cli, gateway: FakeGateway, store: StateStore
) -> None:
    """A Register answer whose fingerprint is not our key's exits 1 and saves nothing."""
    gateway.fingerprint_override = "0011223344556677"
    outcome = await enroll(cli)
    assert outcome.code == 1
    assert "fingerprint" in outcome.stderr
    assert not store.state_path.exists()
    assert [c.method for c in gateway.calls] == ["Register"]


@pytest.mark.parametrize(
    ("answer", "code"),
    [
        (error_response(Code.UNAVAILABLE, "down", retry_after="5"), 69),
        (error_response(Code.RESOURCE_EXHAUSTED, "slow down", retry_after="1"), 69),
        (error_response(Code.INTERNAL, "oops"), 69),
        (error_response(Code.UNIMPLEMENTED, "no"), 69),
        (error_response(Code.FAILED_PRECONDITION, "name already in use"), 1),
    ],
)
async def test_register_failures_map_to_exit_codes(
    cli: Cli, gateway: FakeGateway, store: StateStore, answer: object, code: int
) -> None:
    """5xx and 429 exit 69 (unavailable) once the enroll timeout is over (0: after the
    first attempt); another refusal exits 1; nothing is saved."""
    gateway.script("Register", answer)  # type: ignore[arg-type]
    outcome = await enroll(cli, "--enroll-timeout", "0")
    assert outcome.code == code
    assert not store.state_path.exists()


async def test_unreachable_gateway_exits_69(
    cli: Cli, gateway: FakeGateway, store: StateStore, autojump_clock: trio.testing.MockClock
) -> None:
    """A refused connection exits 69 for enroll (once its enroll timeout is over) and for
    refresh."""
    gateway.down = True
    assert (await enroll(cli, "--enroll-timeout", "30s")).code == 69
    make_enrolled_state(StateStore(store.directory), gateway)
    assert (await cli("refresh")).code == 69


@pytest.mark.parametrize(
    ("url", "rule"),
    [
        ("ftp://gw.test", "scheme"),
        ("gw.test:443", "scheme"),
        ("https://", "host"),
        ("https://user:secretpw@gw.test", "userinfo"),
        ("https://gw.test/?x=1", "query"),
        ("https://gw.test/?", "query"),
        ("https://gw.test/#top", "fragment"),
        ("http://gw.test", "https"),
        ("http://10.0.0.1:8080", "https"),
        ("http://128.0.0.1", "https"),
    ],
)
async def test_every_url_rule_is_enforced_before_any_request(
    cli: Cli, gateway: FakeGateway, store: StateStore, url: str, rule: str
) -> None:
    """A URL breaking a rule of 5.8 exits 78 naming the rule, before a prompt or request."""
    outcome = await enroll(cli, url=url)
    assert outcome.code == 78
    assert f"rule '{rule}'" in outcome.stderr
    assert "secretpw" not in outcome.stderr
    assert "Enrollment code" not in outcome.stderr
    assert gateway.calls == []
    assert not store.directory.exists()


@pytest.mark.parametrize(
    ("url", "extra"),
    [
        ("http://localhost:8080", ()),
        ("http://127.0.0.2:8080", ()),
        ("http://[::1]:8080", ()),
        ("http://gw.test", ("--allow-insecure-transport",)),
        ("https://gw.test:8443/prefix", ()),
    ],
)
async def test_loopback_http_or_explicit_insecure_is_accepted(
    cli: Cli, gateway: FakeGateway, store: StateStore, url: str, extra: tuple[str, ...]
) -> None:
    """Plain http is fine to loopback hosts, or anywhere with --allow-insecure-transport."""
    outcome = await enroll(cli, *extra, url=url)
    assert outcome.code == 0, outcome.stderr
    state = store.load()
    assert state is not None and state.allow_insecure_transport == bool(extra)


async def test_insecure_url_in_state_is_refused_by_refresh_and_run(
    cli: Cli, gateway: FakeGateway, store: StateStore
) -> None:
    """The rule is re-checked from the state: refresh and run exit 78 with no request."""
    make_enrolled_state(store, gateway, server_url="http://gw.test")
    for command in ("refresh", "run"):
        outcome = await cli(command)
        assert outcome.code == 78
        assert "rule 'https'" in outcome.stderr
    assert gateway.calls == []


async def test_refresh_and_run_never_create_the_state_directory(
    cli: Cli, gateway: FakeGateway, store: StateStore
) -> None:
    """Without state, refresh and run exit 78 naming `fleetnode enroll` and create nothing."""
    for command in ("refresh", "run", "status"):
        outcome = await cli(command)
        assert outcome.code == 78
        assert "fleetnode enroll" in outcome.stderr
    assert not store.directory.exists()
    assert gateway.calls == []


async def test_run_without_api_key_exits_78_before_locking(
    cli: Cli, gateway: FakeGateway, store: StateStore
) -> None:
    """A partial state (no api key) makes run exit 78 even while another process locks it."""
    await enroll(cli, stdin=f"{ENROLLMENT_CODE}\n")
    with store.lock():
        outcome = await cli("run")
    assert outcome.code == 78
    assert "api key" in outcome.stderr


async def test_locked_state_exits_75_naming_the_holder(
    cli: Cli, gateway: FakeGateway, store: StateStore
) -> None:
    """enroll, refresh and run on a locked directory exit 75 at once, naming the pid."""
    import os

    make_enrolled_state(store, gateway)
    with store.lock():
        for argv in (("refresh",), ("run",), ("enroll", "--server-url", SERVER_URL, "--force")):
            outcome = await cli(*argv, stdin=PIPED)
            assert outcome.code == 75
            assert str(os.getpid()) in outcome.stderr
    assert gateway.calls == []


async def test_symlinked_state_directory_is_refused(
    cli: Cli, gateway: FakeGateway, store: StateStore
) -> None:
    """A state directory that is a symbolic link exits 78 for every command."""
    real = store.directory.parent / "real"
    make_enrolled_state(StateStore(real), gateway)
    store.directory.symlink_to(real)
    for argv in (("status",), ("refresh",), ("run",), ("enroll", "--server-url", SERVER_URL)):
        outcome = await cli(*argv, stdin=PIPED)
        assert outcome.code == 78, argv
        assert "symbolic link" in outcome.stderr
    assert gateway.calls == []


async def test_one_shot_commands_never_log_a_secret(
    cli: Cli, gateway: FakeGateway, store: StateStore, caplog: pytest.LogCaptureFixture
) -> None:
    """No enrollment code, api key, session token or private key in any log or output line."""
    caplog.set_level(logging.DEBUG)
    outputs = [await enroll(cli, stdin=f"{ENROLLMENT_CODE}\n")]
    outputs.append(await cli("refresh", stdin="fleet_deadbeef_" + "W" * 43 + "\n"))
    outputs.append(await cli("refresh", stdin=f"{API_KEY}\n"))
    outputs.append(await cli("refresh"))
    outputs.append(await cli("status"))
    outputs.append(await cli("status", "--json"))
    state = store.load()
    assert state is not None and state.session is not None
    secrets = [
        ENROLLMENT_CODE,
        API_KEY,
        "W" * 43,
        state.identity_private_key,
        *gateway.issued_tokens,
    ]
    assert len(gateway.issued_tokens) == 2
    assert_no_secret(caplog.text, secrets)
    for outcome in outputs:
        assert_no_secret(outcome.stdout + outcome.stderr, secrets)


async def test_unusable_ca_file_exits_78_before_any_request(
    cli: Cli, gateway: FakeGateway, store: StateStore, tmp_path: Path
) -> None:
    """A --ca-file that cannot be read exits 78 before prompting or calling the gateway."""
    outcome = await enroll(cli, "--ca-file", str(tmp_path / "missing.pem"))
    assert outcome.code == 78
    assert "CA file" in outcome.stderr
    assert gateway.calls == []
    assert not store.directory.exists()


async def test_ca_file_is_kept_in_the_state(
    cli: Cli, gateway: FakeGateway, store: StateStore, tmp_path: Path
) -> None:
    """A usable --ca-file is recorded, so refresh and run verify the gateway with it."""
    ca = trustme.CA()
    pem = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(pem))
    outcome = await enroll(cli, "--ca-file", str(pem))
    assert outcome.code == 0, outcome.stderr
    state = store.load()
    assert state is not None and state.ca_file == str(pem)
    assert (await cli("refresh")).code == 0
