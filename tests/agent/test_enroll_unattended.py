"""Unattended ``fleetnode enroll``: --code-file, pre-approved codes, signed and retried
Register, --enroll-timeout, and finishing an interrupted enroll (SPEC 3.8, 5.3, 5.4), in
process against the fake gateway, every test on Trio's autojump clock (ten minutes of
retries take none)."""

from __future__ import annotations

import itertools
import logging
import os
from pathlib import Path

import nacl.signing
import pytest
import trio
import trio.testing

from agent.statedir import StateStore
from fleetwire.codes import Code
from fleetwire.identity import register_message
from tests.support.commands import Cli, Outcome
from tests.support.fake_gateway import (
    ENROLLMENT_CODE,
    PRE_APPROVED_CODE,
    SERVER_URL,
    FakeGateway,
    error_response,
)

pytestmark = pytest.mark.trio

NAME = "node-a"


@pytest.fixture
def code_file(tmp_path: Path) -> Path:
    path = tmp_path / "code"
    path.write_text(PRE_APPROVED_CODE + "\n")
    path.chmod(0o600)
    return path


@pytest.fixture
def pre_approved(gateway: FakeGateway) -> FakeGateway:
    gateway.pre_approved_codes[PRE_APPROVED_CODE] = 1
    return gateway


async def unattended(cli: Cli, code_file: Path, *extra: str, name: str = NAME) -> Outcome:
    return await cli(
        "enroll", "--server-url", SERVER_URL, "--name", name, "--code-file", str(code_file), *extra
    )


def signed_by_its_key(gateway: FakeGateway) -> bool:
    """Every Register the gateway got carried its key's signature over its code."""
    for request in gateway.register_requests:
        nacl.signing.VerifyKey(request.identity_pubkey).verify(
            register_message(request.enrollment_token), request.registration_signature
        )
    return bool(gateway.register_requests)


async def test_a_pre_approved_code_file_enrolls_without_any_prompt(
    autojump_clock: trio.testing.MockClock,
    cli: Cli,
    pre_approved: FakeGateway,
    store: StateStore,
    code_file: Path,
) -> None:
    """With a pre-approved code in a private file, enroll reads nothing from stdin, saves
    the api key Register handed out, and leaves the code file in place."""
    outcome = await unattended(cli, code_file)
    assert outcome.code == 0, outcome.stderr
    state = store.load()
    assert state is not None
    assert outcome.stdout == (
        f"enrolled fleet_node_id={state.fleet_node_id} "
        f"fingerprint={state.identity_fingerprint} state={store.state_path}\n"
    )
    assert "Enrollment code:" not in outcome.stderr and "API key:" not in outcome.stderr
    assert "pre-approved code confirmed it" in outcome.stderr
    assert state.api_key == pre_approved.issued_api_keys[-1]
    assert state.session_token == pre_approved.issued_tokens[-1]
    assert signed_by_its_key(pre_approved)
    assert code_file.read_bytes() == f"{PRE_APPROVED_CODE}\n".encode()  # noqa: ASYNC240 (tiny)
    assert [c.method for c in pre_approved.calls] == [
        "Register",
        "BeginAuthHandshake",
        "CompleteAuthHandshake",
    ]


async def test_register_is_signed_with_a_confirmation_code_too(
    autojump_clock: trio.testing.MockClock, cli: Cli, gateway: FakeGateway, store: StateStore
) -> None:
    """The interactive enroll signs Register as well (the gateway verifies when present)."""
    outcome = await cli(
        "enroll", "--server-url", SERVER_URL, "--name", NAME,
        stdin=f"{ENROLLMENT_CODE}\n{gateway.next_api_key}\n",
    )  # fmt: skip
    assert outcome.code == 0, outcome.stderr
    assert signed_by_its_key(gateway)


@pytest.mark.parametrize(
    ("problem", "words"),
    [
        ("group-readable", ["0640", "chmod 600"]),
        ("world-readable", ["0604"]),
        ("group-writable", ["0620"]),
        ("symlink", ["symbolic link"]),
        ("empty", ["is empty"]),
        ("missing", ["cannot read code file"]),
        ("directory", ["not a regular file"]),
        ("fifo", ["not a regular file"]),
        ("foreign owner", ["owned by uid 65534", "0600"]),
        ("two words", ["more than one word"]),
    ],
)
async def test_an_untrustworthy_code_file_exits_78_naming_it(
    autojump_clock: trio.testing.MockClock,
    cli: Cli,
    pre_approved: FakeGateway,
    store: StateStore,
    code_file: Path,
    tmp_path: Path,
    problem: str,
    words: list[str],
) -> None:
    """A code file others may read or write, a link, a non-file, an empty one or another
    user's is refused (78) naming the file; no request is sent, no state written, and the
    code is never quoted."""
    path = code_file
    if problem == "group-readable":
        path.chmod(0o640)
    elif problem == "world-readable":
        path.chmod(0o604)
    elif problem == "group-writable":
        path.chmod(0o620)
    elif problem == "symlink":
        path = tmp_path / "link"
        path.symlink_to(code_file)
    elif problem == "empty":
        path.write_text(" \n")
    elif problem == "missing":
        path = tmp_path / "nowhere"
    elif problem == "directory":
        path = tmp_path / "dir"
        path.mkdir(mode=0o700)
    elif problem == "fifo":
        path = tmp_path / "fifo"
        os.mkfifo(path, 0o600)
    elif problem == "foreign owner":
        if os.geteuid() != 0:
            pytest.skip("only root can give a file to another user")
        os.chown(path, 65534, 65534)
    else:
        path.write_text(f"{PRE_APPROVED_CODE} {PRE_APPROVED_CODE}\n")
    outcome = await unattended(cli, path)
    assert outcome.code == 78, outcome.stderr
    assert str(path) in outcome.stderr
    for word in words:
        assert word in outcome.stderr
    assert PRE_APPROVED_CODE not in outcome.stderr + outcome.stdout
    assert pre_approved.calls == []
    assert not store.state_path.exists()


async def test_register_is_retried_through_rate_limits_and_outages(
    autojump_clock: trio.testing.MockClock,
    cli: Cli,
    pre_approved: FakeGateway,
    store: StateStore,
    code_file: Path,
) -> None:
    """429 with Retry-After, 503 and 500 answers are retried with backoff (never sooner
    than Retry-After asks) until Register succeeds."""
    pre_approved.script(
        "Register",
        error_response(Code.RESOURCE_EXHAUSTED, "rate limit exceeded", retry_after="40"),
        error_response(Code.UNAVAILABLE, "database unavailable", retry_after="1"),
        error_response(Code.INTERNAL, "internal error"),
    )
    outcome = await unattended(cli, code_file)
    assert outcome.code == 0, outcome.stderr
    attempts = [c.at for c in pre_approved.calls_to("Register")]
    assert len(attempts) == 4
    assert attempts[1] - attempts[0] >= 40
    assert all(later - earlier >= 5 for earlier, later in itertools.pairwise(attempts))
    assert outcome.stderr.count("retrying in") == 3
    assert signed_by_its_key(pre_approved)
    assert len({r.identity_pubkey for r in pre_approved.register_requests}) == 1


async def test_the_handshake_is_retried_too(
    autojump_clock: trio.testing.MockClock,
    cli: Cli,
    pre_approved: FakeGateway,
    store: StateStore,
    code_file: Path,
) -> None:
    """A rate-limited handshake after a pre-approved Register is retried, not abandoned
    (its api key would be lost)."""
    for _ in range(3):
        pre_approved.script(
            "BeginAuthHandshake",
            error_response(Code.RESOURCE_EXHAUSTED, "rate limit exceeded", retry_after="1"),
        )
    outcome = await unattended(cli, code_file)
    assert outcome.code == 0, outcome.stderr
    assert len(pre_approved.calls_to("BeginAuthHandshake")) == 4


async def test_a_rate_limited_complete_keeps_its_challenge(
    autojump_clock: trio.testing.MockClock,
    cli: Cli,
    pre_approved: FakeGateway,
    store: StateStore,
    code_file: Path,
) -> None:
    """A CompleteAuthHandshake answered 429 is retried with the same challenge (no new
    Begin: behind one NAT address every call counts against the auth limit)."""
    for _ in range(2):
        pre_approved.script(
            "CompleteAuthHandshake",
            error_response(Code.RESOURCE_EXHAUSTED, "rate limit exceeded", retry_after="1"),
        )
    outcome = await unattended(cli, code_file)
    assert outcome.code == 0, outcome.stderr
    assert len(pre_approved.calls_to("BeginAuthHandshake")) == 1
    assert len(pre_approved.calls_to("CompleteAuthHandshake")) == 3


async def test_a_complete_refused_past_its_challenge_begins_again(
    autojump_clock: trio.testing.MockClock,
    cli: Cli,
    pre_approved: FakeGateway,
    store: StateStore,
    code_file: Path,
) -> None:
    """When Complete stays rate-limited for as long as a challenge lives, the handshake
    begins again; every Complete is sent within 30 s of its Begin."""
    for _ in range(6):
        pre_approved.script(
            "CompleteAuthHandshake",
            error_response(Code.RESOURCE_EXHAUSTED, "rate limit exceeded", retry_after="1"),
        )
    outcome = await unattended(cli, code_file)
    assert outcome.code == 0, outcome.stderr
    begins = [c.at for c in pre_approved.calls_to("BeginAuthHandshake")]
    completes = [c.at for c in pre_approved.calls_to("CompleteAuthHandshake")]
    assert len(begins) >= 2 and len(completes) == 7
    for moment in completes:
        latest_begin = max(b for b in begins if b <= moment)
        assert moment - latest_begin <= 30
    assert "beginning the handshake again" in outcome.stderr


@pytest.mark.parametrize(("flag", "limit"), [((), 600.0), (("--enroll-timeout", "2m"), 120.0)])
async def test_enroll_gives_up_with_69_when_the_enroll_timeout_is_over(
    autojump_clock: trio.testing.MockClock,
    cli: Cli,
    pre_approved: FakeGateway,
    store: StateStore,
    code_file: Path,
    flag: tuple[str, ...],
    limit: float,
) -> None:
    """A gateway that keeps answering 503 is retried until --enroll-timeout (10m by
    default), then enroll exits 69 saying so; nothing is saved."""
    pre_approved.fail("Register", lambda: error_response(Code.UNAVAILABLE, "down", "5"))
    start = trio.current_time()
    outcome = await unattended(cli, code_file, *flag)
    assert outcome.code == 69, outcome.stderr
    attempts = [c.at - start for c in pre_approved.calls_to("Register")]
    assert attempts[-1] == pytest.approx(limit, abs=0.5)
    assert len(attempts) >= 4
    assert trio.current_time() - start == pytest.approx(limit, abs=0.5)
    assert "gave up Register" in outcome.stderr and "--enroll-timeout" in outcome.stderr
    assert not store.state_path.exists()


async def test_a_lost_register_answer_is_retried_into_the_same_node(
    autojump_clock: trio.testing.MockClock,
    cli: Cli,
    pre_approved: FakeGateway,
    store: StateStore,
    code_file: Path,
) -> None:
    """Register applied by the gateway but its answer lost: the retry, same key, gets the
    same node and a fresh api key, and the one-use code is not spent twice."""
    pre_approved.lose_answers["Register"] = 1
    outcome = await unattended(cli, code_file)
    assert outcome.code == 0, outcome.stderr
    assert len(pre_approved.nodes) == 1
    assert pre_approved.pre_approved_codes[PRE_APPROVED_CODE] == 0
    state = store.load()
    assert state is not None and state.fleet_node_id == 1
    assert state.api_key == pre_approved.nodes[1].api_key == pre_approved.issued_api_keys[-1]
    assert len(pre_approved.issued_api_keys) == 2


async def test_an_interrupted_pre_approved_enroll_is_finished_by_enroll_force(
    autojump_clock: trio.testing.MockClock,
    cli: Cli,
    pre_approved: FakeGateway,
    store: StateStore,
    code_file: Path,
) -> None:
    """A pre-approved enroll stopped after Register (no api key saved) is refused without
    --force (naming --force and refresh); with --force it reuses the saved key, so the
    same code gives the same node and a working api key without spending a use."""
    pre_approved.fail("BeginAuthHandshake", lambda: error_response(Code.UNAVAILABLE, "down"))
    first = await unattended(cli, code_file, "--enroll-timeout", "1m")
    assert first.code == 69
    partial = store.load()
    assert partial is not None and partial.fleet_node_id == 1 and partial.api_key == ""
    pre_approved.recover("BeginAuthHandshake")

    refused = await unattended(cli, code_file)
    assert refused.code == 78
    assert "--force" in refused.stderr and "fleetnode refresh" in refused.stderr

    finished = await unattended(cli, code_file, "--force")
    assert finished.code == 0, finished.stderr
    state = store.load()
    assert state is not None
    assert state.fleet_node_id == partial.fleet_node_id
    assert state.identity_private_key == partial.identity_private_key
    assert state.api_key == pre_approved.nodes[1].api_key and state.session is not None
    assert pre_approved.pre_approved_codes[PRE_APPROVED_CODE] == 0
    assert len(pre_approved.nodes) == 1


async def test_force_starts_afresh_for_another_name_or_an_enrolled_state(
    autojump_clock: trio.testing.MockClock,
    cli: Cli,
    pre_approved: FakeGateway,
    store: StateStore,
    code_file: Path,
) -> None:
    """Only a partial state of the same server and name is resumed: --force with another
    name, or over a finished enrollment, makes a new identity key."""
    pre_approved.pre_approved_codes[PRE_APPROVED_CODE] = 3
    assert (await unattended(cli, code_file)).code == 0
    done = store.load()
    assert done is not None
    again = await unattended(cli, code_file, "--force", name="node-b")
    assert again.code == 0, again.stderr
    renamed = store.load()
    assert renamed is not None
    assert renamed.identity_private_key != done.identity_private_key
    assert renamed.fleet_node_id == 2


async def test_a_used_up_code_exits_77_with_a_clear_message(
    autojump_clock: trio.testing.MockClock,
    cli: Cli,
    pre_approved: FakeGateway,
    store: StateStore,
    code_file: Path,
) -> None:
    """Once the code's uses are spent, the next node is refused (77) with a message that
    says the code is unknown, used up, expired or revoked."""
    assert (await unattended(cli, code_file)).code == 0
    other = StateStore(store.directory.parent / "other")
    from tests.support.commands import run_command

    outcome = await run_command(
        other, pre_approved.transport,
        "enroll", "--server-url", SERVER_URL, "--name", "node-b", "--code-file", str(code_file),
    )  # fmt: skip
    assert outcome.code == 77
    assert "rejected the enrollment code" in outcome.stderr
    assert "used up" in outcome.stderr
    assert not other.state_path.exists()


async def test_unattended_enroll_never_logs_a_secret(
    autojump_clock: trio.testing.MockClock,
    cli: Cli,
    pre_approved: FakeGateway,
    store: StateStore,
    code_file: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Neither the code, the api keys, the session token nor the private key appears in
    any output or log line, retries and a resumed enroll included."""
    caplog.set_level(logging.DEBUG)
    pre_approved.script("Register", error_response(Code.UNAVAILABLE, "down", retry_after="1"))
    pre_approved.lose_answers["CompleteAuthHandshake"] = 1
    outputs = [await unattended(cli, code_file, "--enroll-timeout", "0")]
    outputs.append(await unattended(cli, code_file, "--force"))
    state = store.load()
    assert state is not None and state.api_key
    secrets = [
        PRE_APPROVED_CODE,
        state.identity_private_key,
        *pre_approved.issued_api_keys,
        *pre_approved.issued_tokens,
    ]
    for text in [caplog.text, *(o.stdout + o.stderr for o in outputs)]:
        for secret in secrets:
            assert secret not in text
