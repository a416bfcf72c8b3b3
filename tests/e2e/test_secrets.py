"""No secret in any log, with everything at debug level and every secret put to use.

The ``harness`` fixture checks every e2e test's logs (gateway, agent, supervisord,
nginx) against every secret that test handled. This test makes that check as hard as
it can be: debug logging on both ends, and each kind of secret (admin token, enrollment
code, api key, two session tokens, the identity key) used, rotated or rejected.
"""

from __future__ import annotations

import signal

from tests.e2e.actors import (
    Gateway,
    Operator,
    bootstrap,
    enroll,
    now,
    session_token,
    start_agent,
    wait_online_since,
)
from tests.e2e.harness import Harness, clean_env, program, state_secrets

DEBUG = ("--log-level", "debug")


def test_no_secret_appears_in_any_log_even_at_debug_level(
    harness: Harness, database_url: str
) -> None:
    """Through enroll, run, session refresh, restart and revoke at debug level, no log line
    of the gateway or the agent holds an admin token, code, api key, session token or key."""
    gateway = Gateway(harness, database_url, "gateway-debug", DEBUG)
    token = bootstrap(harness, database_url, gateway)
    operator = Operator(harness, gateway.url, token)
    state = harness.path("node-d")
    node_id = enroll(harness, operator, state, "node-d")
    first_session = harness.secret(session_token(state), "first session token")

    started = now()
    agent = start_agent(harness, state, "node-d", log_level="debug")
    wait_online_since(operator, node_id, started)
    agent.signal(signal.SIGTERM)
    assert agent.wait_exit(timeout=5) == 0

    refresh = harness.start(
        "refresh",
        [program("fleetnode"), "--state-dir", str(state), *DEBUG, "refresh"],
        clean_env(),
    )
    assert refresh.wait_exit(timeout=20) == 0, refresh.tail()
    second_session = session_token(state)
    assert second_session != first_session

    restarted = now()
    agent = start_agent(harness, state, "node-d-again", log_level="debug")
    wait_online_since(operator, node_id, restarted)
    operator.revoke(node_id)
    assert agent.wait_exit(timeout=10) == 77, agent.tail()

    handled = [*harness.secrets.values(), *state_secrets(state).values()]
    kinds = {what.split(" of ")[0] for what in handled}
    assert {
        "admin token",
        "enroll code",
        "api key",
        "first session token",
        "session_token",
        "identity private key",
    } <= kinds
    assert any("debug" in log.read_text() for log in harness.logs)  # debug was really on
    leaked = harness.leaked_secrets()
    assert not leaked, "secrets in logs:\n" + "\n".join(leaked)


def test_the_leak_check_finds_known_secrets_and_key_shapes(harness: Harness) -> None:
    """The check above can fail: a known secret, a state file's key, or anything shaped like
    an api key or admin token in a log is reported."""
    state = harness.path("fake-node")
    state.mkdir()
    (state / "state.json").write_text('{"identity_private_key": "' + "ab" * 32 + '"}')
    harness.watch_state(state)
    harness.secret("s3cr3t-enrollment-code-value", "enroll code")
    log = harness.log_path("fake")
    log.write_text(
        "code=s3cr3t-enrollment-code-value\n"
        f"key={'ab' * 32}\n"
        f"token=fleetadm_0123abcd_{'A' * 43}\n"
        f"fleet_89abcdef_{'b' * 43}\n"
    )
    leaked = harness.leaked_secrets()
    harness.logs.remove(log)  # keep the fixture's own check green
    assert len(leaked) == 4, leaked
