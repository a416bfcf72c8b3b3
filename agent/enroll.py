"""``fleetnode enroll``: register the node, then finish the handshake (SPEC 5.3, 5.4, 3.8).

The order matters: the URL is checked before anything else, the state is saved right after
Register (so an interrupted enroll can be finished), and the api key is saved only once a
handshake with it succeeded.

Register is always signed by the identity key, which makes it retry-safe: Register and the
handshake are retried through transient failures until ``--enroll-timeout`` with the same
key, and the gateway answers a repeated Register with the node it already made. With a
pre-approved code the Register answer holds the api key, so nothing is prompted for.

An interrupted enroll is finished in one of two ways. With a confirmation code: ``fleetnode
refresh`` (it asks for the api key). With a pre-approved code (the api key it handed out was
not saved yet): run the same ``enroll`` again with ``--force``: a state that registered but
holds no api key, for the same server and name, is *resumed* (its identity key reused), so
the new Register is a retry: the same node, a fresh api key, no use of the code consumed.
"""

from __future__ import annotations

import functools
import logging
from pathlib import Path

import attrs
import trio

from agent import logs
from agent.client import GatewayClient, open_gateway_client, ssl_verify
from agent.codefile import read_code_file
from agent.errors import (
    ConfigurationError,
    CredentialsRejected,
    FingerprintMismatch,
    GatewayUnavailable,
    HandshakeFailed,
    Rejected,
)
from agent.identity import Identity
from agent.locked import save_state
from agent.prompts import ask_secret
from agent.retry import retry_transient
from agent.runtime import Runtime
from agent.session import begin_handshake, complete_handshake
from agent.state import Session, State
from agent.statedir import StateStore
from agent.urlrule import check_server_url
from fleetwire import messages as m
from fleetwire.codes import Code
from fleetwire.procedures import REGISTER
from fleetwire.validators import FieldError

logger = logging.getLogger(__name__)

DEFAULT_ENROLL_TIMEOUT_SECONDS = 600.0
# A challenge lives 30 s at the gateway: a refused Complete is retried with the same one
# for at most this long, then the handshake begins again.
CHALLENGE_RETRY_SECONDS = 20.0
# Begin again after a Complete the gateway refused outright (an expired challenge) at most
# this often: that refusal repeating means something else is wrong.
MAX_REFUSED_COMPLETES = 3


@attrs.frozen
class EnrollOptions:
    server_url: str
    name: str
    force: bool = False
    allow_insecure_transport: bool = False
    ca_file: str | None = None
    code_file: Path | None = None  # else the code is read from stdin
    enroll_timeout_seconds: float = DEFAULT_ENROLL_TIMEOUT_SECONDS


def resumable(state: State | None, server_url: str, name: str) -> State | None:
    """``state`` if it is an enrollment to resume: registered with this server under this
    name, no api key saved yet."""
    if state is None or not state.fleet_node_id or state.api_key:
        return None
    if state.server_url != server_url or state.name != name or not state.identity_private_key:
        return None
    return state


def _populated(store: StateStore, partial: State | None) -> ConfigurationError:
    if partial is not None:
        return ConfigurationError(
            f"{store.state_path} holds fleet node {partial.fleet_node_id}, registered but "
            "without an api key yet: finish it with `fleetnode refresh` (it asks for the key), "
            "or run this enroll again with --force, which reuses its identity key (with the "
            "same pre-approved code within 24 h: the same node, a fresh api key)"
        )
    return ConfigurationError(
        f"{store.state_path} already holds an enrolled node; "
        "pass --force to replace it (the old identity is lost)"
    )


async def enroll(store: StateStore, options: EnrollOptions, runtime: Runtime) -> None:
    server_url = check_server_url(
        options.server_url, allow_insecure_transport=options.allow_insecure_transport
    )
    verify = ssl_verify(options.ca_file)  # an unusable CA file is a configuration error
    with store.lock(create=True) as directory:
        existing = directory.load()
        partial = resumable(existing, server_url, options.name)
        if existing is not None and not options.force:
            raise _populated(store, partial)
        if options.code_file is not None:
            code = read_code_file(options.code_file)
        else:
            code = await ask_secret("Enrollment code: ", runtime.stdin, runtime.stderr)
        if partial is not None:
            identity = Identity.from_hex(partial.identity_private_key)
            logger.info("resuming fleet node %s with its saved identity key", partial.fleet_node_id)
        else:
            identity = Identity.generate()
        request = _register_request(code, options.name, identity)
        async with open_gateway_client(
            server_url, verify=verify, transport=runtime.transport
        ) as client:
            deadline = trio.current_time() + options.enroll_timeout_seconds
            registered = await _register(client, request, deadline, runtime)
            if registered.identity_fingerprint != identity.fingerprint:
                raise FingerprintMismatch(
                    f"the gateway reports fingerprint {registered.identity_fingerprint!r} but "
                    f"this node's key has {identity.fingerprint!r}; refusing to continue"
                )
            logs.bind(fleet_node_id=registered.fleet_node_id)
            state = State(
                server_url=server_url,
                allow_insecure_transport=options.allow_insecure_transport,
                ca_file=options.ca_file,
                fleet_node_id=registered.fleet_node_id,
                name=options.name,
                identity_fingerprint=identity.fingerprint,
                identity_public_key=identity.public_key.hex(),
                identity_private_key=identity.private_key_hex,
            )
            await save_state(directory, state, runtime.in_thread)
            logger.info("registered; partial state saved")
            if registered.api_key:
                runtime.stderr.write(
                    f"Registered as fleet node {registered.fleet_node_id} with fingerprint "
                    f"{identity.fingerprint}; the pre-approved code confirmed it.\n"
                )
                runtime.stderr.flush()
                api_key = registered.api_key
            else:
                runtime.stderr.write(
                    f"Registered as fleet node {registered.fleet_node_id} with fingerprint "
                    f"{identity.fingerprint}.\n"
                    "Ask an operator to compare this fingerprint with the one `fleetctl nodes` "
                    "shows and to confirm the node, then paste the api key it prints.\n"
                    "(If you stop here, finish later with `fleetnode refresh`.)\n"
                )
                runtime.stderr.flush()
                api_key = await ask_secret("API key: ", runtime.stdin, runtime.stderr)
                deadline = trio.current_time() + options.enroll_timeout_seconds
            session = await _handshake(client, identity, api_key, deadline, runtime)
            # Only a key the gateway accepted is ever written.
            state = attrs.evolve(state, api_key=api_key).with_session(session)
            await save_state(directory, state, runtime.in_thread)
    runtime.stdout.write(
        f"enrolled fleet_node_id={state.fleet_node_id} fingerprint={state.identity_fingerprint} "
        f"state={store.state_path}\n"
    )
    runtime.stdout.flush()


def _register_request(code: str, name: str, identity: Identity) -> m.RegisterRequest:
    try:
        return m.RegisterRequest(
            enrollment_token=code,
            name=name,
            identity_pubkey=identity.public_key,
            registration_signature=identity.sign_registration(code),
        )
    except FieldError as exc:
        if exc.path == "name":
            raise ConfigurationError(f"--name: {exc.reason}") from exc
        raise CredentialsRejected("the enrollment code is malformed") from exc


async def _handshake(
    client: GatewayClient, identity: Identity, api_key: str, deadline: float, runtime: Runtime
) -> Session:
    """Begin and Complete, each retried through transient failures until ``deadline``.

    A Complete refused as rate-limited is retried with the same challenge while it is still
    valid: beginning again would spend one more call of the per-address auth limit, which
    is what paces nodes behind one NAT address (bench.enroll: 2,052 of 3,052 Begins were
    such waste before). When the challenge's time is up, the handshake begins again."""
    refused = 0
    while True:
        challenge = await retry_transient(
            lambda: begin_handshake(client, identity, api_key),
            what="BeginAuthHandshake",
            deadline=deadline,
            rng=runtime.rng,
        )
        window = min(deadline, trio.current_time() + CHALLENGE_RETRY_SECONDS)
        try:
            return await retry_transient(
                functools.partial(complete_handshake, client, identity, challenge),
                what="CompleteAuthHandshake",
                deadline=window,
                rng=runtime.rng,
            )
        except HandshakeFailed:
            refused += 1
            if refused >= MAX_REFUSED_COMPLETES or trio.current_time() >= deadline:
                raise
        except GatewayUnavailable:
            if trio.current_time() >= deadline:
                raise
        logger.warning("the challenge's time is up; beginning the handshake again")


async def _register(
    client: GatewayClient, request: m.RegisterRequest, deadline: float, runtime: Runtime
) -> m.RegisterResponse:
    """Register, retried through transient failures until ``deadline`` with the same
    signed request: a retry of a Register the gateway already applied is answered with
    the same node."""
    try:
        return await retry_transient(
            lambda: client.call(REGISTER, request),
            what="Register",
            deadline=deadline,
            rng=runtime.rng,
        )
    except Rejected as exc:
        if exc.code is Code.UNAUTHENTICATED:
            raise CredentialsRejected(
                f"the gateway rejected the enrollment code ({exc.message}): it is unknown, "
                "used up, expired or revoked; ask an operator for a new one"
            ) from exc
        if exc.code is Code.FAILED_PRECONDITION:
            raise Rejected(
                exc.procedure,
                exc.code,
                f"{exc.message} (give this node another --name, or have an operator revoke "
                "the node that holds it)",
            ) from exc
        raise
