"""fleetnode run in virtual time: schedule, refreshes, failures and backoff (SPEC 5.7, 5.10)."""

from __future__ import annotations

import datetime
import itertools
import json
import logging
from collections.abc import Callable

import httpx
import pytest
import trio
import trio.testing

from agent.statedir import StateStore
from fleetwire.codes import Code
from tests.support.commands import Cli, Outcome
from tests.support.enrolled_node import make_enrolled_state
from tests.support.fake_gateway import ENROLLMENT_CODE, T0, FakeGateway, error_response

pytestmark = pytest.mark.trio

HOUR = 3600.0
DAY = 24 * HOUR


async def run_for(
    cli: Cli, seconds: float, *argv: str, actions: dict[float, Callable[[], None]] | None = None
) -> Outcome | None:
    """Run the daemon for ``seconds`` of virtual time; None if it was still running."""
    result: Outcome | None = None
    async with trio.open_nursery() as nursery:
        for at, action in (actions or {}).items():
            nursery.start_soon(_at, at, action)
        with trio.move_on_after(seconds):
            result = await cli("run", *argv)
        nursery.cancel_scope.cancel()
    return result


async def _at(when: float, action: Callable[[], None]) -> None:
    await trio.sleep_until(when)
    action()


def heartbeat_times(gateway: FakeGateway) -> list[float]:
    return [at for at, _ in gateway.heartbeats]


def gaps(times: list[float]) -> list[float]:
    return [b - a for a, b in itertools.pairwise(times)]


async def test_heartbeats_follow_a_jittered_deadline_schedule_without_drift_for_a_day(
    cli: Cli, gateway: FakeGateway, store: StateStore, autojump_clock: trio.testing.MockClock
) -> None:
    """First heartbeat at time 0, then the k-th at k x interval +-10 %, for 24 hours."""
    make_enrolled_state(store, gateway)
    assert await run_for(cli, DAY + 10) is None
    times = heartbeat_times(gateway)
    assert times[0] == 0.0
    assert len(times) == 2881
    offsets = [at - 30.0 * k for k, at in enumerate(times)]
    assert all(abs(offset) <= 3.0 + 1e-6 for offset in offsets)
    # The jitter is real and independent: it spans the whole band, on both sides.
    assert min(offsets) < -2.5 and max(offsets) > 2.5
    assert 1.0 < sum(abs(o) for o in offsets) / len(offsets) < 2.0


async def test_session_is_refreshed_before_the_last_hour_and_saved(
    cli: Cli, gateway: FakeGateway, store: StateStore, autojump_clock: trio.testing.MockClock
) -> None:
    """With 24 h left, the keeper refreshes between 1 h 10 min and 1 h before expiry, saves
    the new session, and the next heartbeat carries it."""
    old = make_enrolled_state(store, gateway)
    assert await run_for(cli, DAY - 60, "--heartbeat-interval", "10m") is None
    completes = gateway.calls_to("CompleteAuthHandshake")
    assert len(completes) == 1
    assert DAY - HOUR - 600 <= completes[0].at <= DAY - HOUR
    saved = store.load()
    assert saved is not None and saved.session is not None
    assert saved.session_token == gateway.issued_tokens[-1] != old.session_token
    assert saved.session_expires_at == T0 + datetime.timedelta(seconds=completes[0].at + DAY)
    later = [c for c in gateway.calls_to("UploadHeartbeat") if c.at > completes[0].at]
    assert later and all(c.authorization == f"Bearer {saved.session_token}" for c in later)


async def test_expired_stored_session_is_replaced_before_the_first_heartbeat(
    cli: Cli, gateway: FakeGateway, store: StateStore, autojump_clock: trio.testing.MockClock
) -> None:
    """A state without a live session gets a handshake, then the first heartbeat at once."""
    make_enrolled_state(store, gateway, session_expires_at=T0 - datetime.timedelta(hours=1))
    assert await run_for(cli, 1) is None
    assert [c.method for c in gateway.calls] == [
        "BeginAuthHandshake",
        "CompleteAuthHandshake",
        "UploadHeartbeat",
    ]
    assert heartbeat_times(gateway) == [0.0]


async def test_unauthenticated_heartbeat_gets_one_refresh_and_one_retry(
    cli: Cli, gateway: FakeGateway, store: StateStore, autojump_clock: trio.testing.MockClock
) -> None:
    """A heartbeat refused as unauthenticated triggers one handshake and one retry with the
    new token, at once."""
    make_enrolled_state(store, gateway)
    assert await run_for(cli, 200, actions={100.0: gateway.end_sessions}) is None
    refused = next(c for c in gateway.calls if c.status == 401)
    after = [c for c in gateway.calls if c.at >= refused.at]
    assert [(c.method, c.status) for c in after[:4]] == [
        ("UploadHeartbeat", 401),
        ("BeginAuthHandshake", 200),
        ("CompleteAuthHandshake", 200),
        ("UploadHeartbeat", 200),
    ]
    assert after[3].at == refused.at
    assert after[3].authorization == f"Bearer {gateway.issued_tokens[-1]}"
    assert len(gateway.calls_to("CompleteAuthHandshake")) == 1
    saved = store.load()
    assert saved is not None and saved.session_token == gateway.issued_tokens[-1]


async def test_second_unauthenticated_after_refresh_is_transient(
    cli: Cli, gateway: FakeGateway, store: StateStore, autojump_clock: trio.testing.MockClock
) -> None:
    """If the retried heartbeat is refused again, the daemon backs off and carries on."""
    make_enrolled_state(store, gateway)
    gateway.script(
        "UploadHeartbeat",
        error_response(Code.UNAUTHENTICATED, "invalid session"),
        error_response(Code.UNAUTHENTICATED, "invalid session"),
    )
    assert await run_for(cli, 400) is None
    heartbeats = gateway.calls_to("UploadHeartbeat")
    assert [c.status for c in heartbeats[:3]] == [401, 401, 200]
    assert 30.0 <= heartbeats[2].at <= 60.0  # backoff after failure 1: U[30, 60]
    assert len(gateway.calls_to("CompleteAuthHandshake")) == 1


async def test_begin_unauthenticated_exits_77(
    cli: Cli, gateway: FakeGateway, store: StateStore, autojump_clock: trio.testing.MockClock
) -> None:
    """A refused api key at a refresh is permanent: exit 77 telling to re-enroll."""
    make_enrolled_state(store, gateway)

    def revoke() -> None:
        gateway.nodes[1].gone = True
        gateway.end_sessions()

    outcome = await run_for(cli, HOUR, actions={95.0: revoke})
    assert outcome is not None
    assert outcome.code == 77
    assert "re-enroll" in outcome.stderr
    assert gateway.calls[-1].method == "BeginAuthHandshake"
    assert 95.0 < trio.current_time() <= 125.0


async def test_heartbeat_not_found_exits_77(
    cli: Cli, gateway: FakeGateway, store: StateStore, autojump_clock: trio.testing.MockClock
) -> None:
    """A heartbeat answered not_found (node deleted) exits 77 telling to re-enroll."""
    make_enrolled_state(store, gateway)
    gateway.nodes[1].gone = True
    outcome = await run_for(cli, HOUR)
    assert outcome is not None and outcome.code == 77
    assert "re-enroll" in outcome.stderr
    assert trio.current_time() == 0.0


async def test_gateway_down_at_start_for_an_hour_is_waited_for(
    cli: Cli, gateway: FakeGateway, store: StateStore, autojump_clock: trio.testing.MockClock
) -> None:
    """run waits for a gateway that is down at start, backing off (capped, jittered) and
    heartbeating once it returns."""
    make_enrolled_state(store, gateway, session_expires_at=None)
    gateway.down = True

    def come_back() -> None:
        gateway.down = False

    assert await run_for(cli, HOUR + 900, actions={HOUR: come_back}) is None
    attempts = [c.at for c in gateway.calls_to("BeginAuthHandshake") if c.at < HOUR]
    waits = gaps(attempts)
    for k, wait in enumerate(waits, start=1):
        assert 5.0 <= wait <= min(300.0, 5.0 * 2**k) + 1e-6
    assert max(waits) > 150.0  # it grew towards the cap
    assert len(set(round(w, 3) for w in waits[6:])) > 3  # jittered, not in step
    first = heartbeat_times(gateway)[0]
    assert HOUR <= first <= HOUR + 300.0
    assert len(heartbeat_times(gateway)) >= 10  # and keeps going


async def test_unanswered_request_times_out_after_30_seconds(
    cli: Cli, gateway: FakeGateway, store: StateStore, autojump_clock: trio.testing.MockClock
) -> None:
    """A heartbeat the gateway never answers fails after 30 s and is retried after backoff."""
    make_enrolled_state(store, gateway)
    gateway.hang = True

    def answer_again() -> None:
        gateway.hang = False

    assert await run_for(cli, 200, actions={1.0: answer_again}) is None
    beats = gateway.calls_to("UploadHeartbeat")
    assert beats[0].at == 0.0 and beats[0].status == 0
    assert 30.0 + 30.0 <= beats[1].at <= 30.0 + 60.0
    assert beats[1].status == 200


async def test_retry_after_is_honoured_and_capped(
    cli: Cli, gateway: FakeGateway, store: StateStore, autojump_clock: trio.testing.MockClock
) -> None:
    """Retry-After longer than the backoff is obeyed, up to 5 minutes."""
    make_enrolled_state(store, gateway, session_expires_at=None)
    gateway.script(
        "BeginAuthHandshake",
        error_response(Code.UNAVAILABLE, "draining", retry_after="120"),
        error_response(Code.RESOURCE_EXHAUSTED, "slow down", retry_after="7200"),
    )
    gateway.script(
        "UploadHeartbeat", error_response(Code.RESOURCE_EXHAUSTED, "slow down", retry_after="200")
    )
    assert await run_for(cli, 1200) is None
    begins = [c.at for c in gateway.calls_to("BeginAuthHandshake")]
    assert 120.0 <= begins[1] - begins[0] <= 121.0
    assert begins[2] - begins[1] == pytest.approx(300.0)
    beats = gateway.calls_to("UploadHeartbeat")
    assert beats[0].status == 429
    assert beats[1].at - beats[0].at == pytest.approx(200.0)


@pytest.mark.parametrize(
    "answer",
    [
        error_response(Code.UNAVAILABLE, "down"),
        error_response(Code.INTERNAL, "oops"),
        error_response(Code.UNIMPLEMENTED, "no", status=501),
        httpx.Response(302, headers={"Location": "https://elsewhere.test/steal"}),
        httpx.Response(200, content=b"<html>proxy page</html>"),
    ],
)
async def test_heartbeat_failures_back_off_without_drifting_below_the_interval(
    cli: Cli,
    gateway: FakeGateway,
    store: StateStore,
    autojump_clock: trio.testing.MockClock,
    answer: httpx.Response,
) -> None:
    """5xx, 501, a redirect (never followed) or garbage: the k-th consecutive failure waits
    U[interval, min(5 min, interval x 2^k)], then the schedule resumes."""
    make_enrolled_state(store, gateway)
    gateway.script("UploadHeartbeat", *([answer] * 5))
    assert await run_for(cli, 2 * HOUR) is None
    heartbeats = gateway.calls_to("UploadHeartbeat")
    assert len(heartbeats) > 10
    for k, wait in enumerate(gaps([c.at for c in heartbeats[:6]]), start=1):
        assert 30.0 <= wait <= min(300.0, 30.0 * 2**k) + 1e-6
    assert heartbeats[5].status == 200
    steady = gaps([c.at for c in heartbeats[6:]])
    assert all(24.0 <= wait <= 36.0 for wait in steady)
    assert {c.method for c in gateway.calls} == {"UploadHeartbeat"}


@pytest.mark.parametrize(
    ("method", "answer"),
    [
        ("BeginAuthHandshake", error_response(Code.FAILED_PRECONDITION, "not confirmed")),
        ("CompleteAuthHandshake", error_response(Code.UNAUTHENTICATED, "challenge expired")),
        ("CompleteAuthHandshake", error_response(Code.INTERNAL, "oops")),
    ],
)
async def test_transient_handshake_failures_are_retried_after_backoff(
    cli: Cli,
    gateway: FakeGateway,
    store: StateStore,
    autojump_clock: trio.testing.MockClock,
    method: str,
    answer: httpx.Response,
) -> None:
    """Begin failed_precondition and Complete unauthenticated begin again after 5-10 s."""
    make_enrolled_state(store, gateway, session_expires_at=None)
    gateway.script(method, answer)
    assert await run_for(cli, 60) is None
    first = heartbeat_times(gateway)[0]
    assert 5.0 <= first <= 10.0
    assert len(gateway.calls_to("CompleteAuthHandshake")) in (1, 2)


@pytest.mark.parametrize(
    ("server_interval", "argv", "expected"),
    [(60, (), 60.0), (2, (), 5.0), (60, ("--heartbeat-interval", "10s"), 10.0)],
)
async def test_server_dictated_interval_is_adopted_unless_the_flag_fixes_one(
    cli: Cli,
    gateway: FakeGateway,
    store: StateStore,
    autojump_clock: trio.testing.MockClock,
    server_interval: int,
    argv: tuple[str, ...],
    expected: float,
) -> None:
    """The gateway's interval is followed (never below 5 s) unless --heartbeat-interval."""
    make_enrolled_state(store, gateway)
    gateway.interval_seconds = server_interval
    assert await run_for(cli, 30 * expected + 1, *argv) is None
    times = heartbeat_times(gateway)
    assert times[0] == 0.0
    assert len(times) in (30, 31)
    for k, at in enumerate(times):
        assert abs(at - k * expected) <= 0.1 * expected + 1e-6


async def test_clock_skew_is_warned_about_once_per_hour(
    cli: Cli,
    gateway: FakeGateway,
    store: StateStore,
    autojump_clock: trio.testing.MockClock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A node clock 2 min behind the gateway's is warned about, at most once an hour."""
    caplog.set_level(logging.INFO)
    make_enrolled_state(store, gateway)
    gateway.clock_offset = datetime.timedelta(seconds=120)
    warnings: list[float] = []

    class Spy(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if "clock skew" in record.getMessage():
                warnings.append(trio.current_time())

    spy = Spy()
    logging.getLogger().addHandler(spy)
    try:
        assert await run_for(cli, 9000) is None
    finally:
        logging.getLogger().removeHandler(spy)
    assert len(warnings) == 3
    assert warnings[0] == 0.0
    assert all(HOUR <= gap <= HOUR + 40 for gap in gaps(warnings))
    assert "behind" in next(r.getMessage() for r in caplog.records if "clock skew" in r.message)


@pytest.mark.parametrize("offset", [55.0, -55.0])
async def test_small_clock_differences_are_not_warned_about(
    cli: Cli,
    gateway: FakeGateway,
    store: StateStore,
    autojump_clock: trio.testing.MockClock,
    caplog: pytest.LogCaptureFixture,
    offset: float,
) -> None:
    """Within 60 s of the gateway's clock, no clock-skew warning."""
    caplog.set_level(logging.INFO)
    make_enrolled_state(store, gateway)
    gateway.clock_offset = datetime.timedelta(seconds=offset)
    assert await run_for(cli, 600) is None
    assert len(gateway.heartbeats) > 5
    assert "clock skew" not in caplog.text


async def test_daemon_json_logs_carry_context_and_no_secret(
    cli: Cli,
    gateway: FakeGateway,
    store: StateStore,
    autojump_clock: trio.testing.MockClock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Every JSON log line has ts, level, event and fleet_node_id, and no secret at all."""
    caplog.set_level(logging.DEBUG)
    state = make_enrolled_state(store, gateway)
    gateway.script("UploadHeartbeat", error_response(Code.UNAUTHENTICATED, "invalid session"))

    def revoke() -> None:
        gateway.nodes[1].gone = True

    outcome = await run_for(
        cli,
        DAY,
        "--log-format",
        "json",
        "--log-level",
        "debug",
        actions={HOUR: gateway.end_sessions, 2 * HOUR: revoke},
    )
    assert outcome is not None and outcome.code == 77
    lines = [json.loads(line) for line in outcome.stderr.splitlines()]
    assert len(lines) > 10
    for line in lines:
        assert {"ts", "level", "event"} <= line.keys()
        assert line["ts"].endswith("Z")
        assert line["fleet_node_id"] == 1
    assert any(line["level"] == "error" and "re-enroll" in line["event"] for line in lines)
    secrets = [ENROLLMENT_CODE, state.api_key, state.identity_private_key, *gateway.issued_tokens]
    assert len(gateway.issued_tokens) == 3
    for secret in secrets:
        assert secret not in outcome.stderr
        assert secret not in caplog.text


@pytest.mark.parametrize("refusal", ["heartbeat-not-found", "api-key-refused"])
async def test_a_revoked_node_exits_77_with_exactly_one_error_line(
    cli: Cli,
    gateway: FakeGateway,
    store: StateStore,
    autojump_clock: trio.testing.MockClock,
    refusal: str,
) -> None:
    """A node the gateway no longer knows (a heartbeat answered not_found) or whose api key
    it refuses (a handshake answered unauthenticated) exits 77 with one error line, which
    says why and to re-enroll."""
    make_enrolled_state(store, gateway)
    gateway.nodes[1].gone = True
    if refusal == "api-key-refused":
        gateway.end_sessions()  # the heartbeat's 401 leads to a handshake, refused
    outcome = await run_for(cli, HOUR, "--log-format", "json")
    assert outcome is not None and outcome.code == 77
    lines = [json.loads(line) for line in outcome.stderr.splitlines()]
    errors = [line["event"] for line in lines if line["level"] == "error"]
    assert len(errors) == 1, errors
    assert "re-enroll" in errors[0]
    assert ("no longer knows" if refusal == "heartbeat-not-found" else "rejected") in errors[0]
