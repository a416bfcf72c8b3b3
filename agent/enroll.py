"""``fleetnode enroll``: register the node, then finish the handshake (SPEC 5.4).

The order matters: the URL is checked before anything else, the state is saved right after
Register (so ``fleetnode refresh`` can finish an interrupted enroll), and the api key is saved
only once a handshake with it succeeded.
"""

from __future__ import annotations

import logging

import attrs

from agent import logs
from agent.client import open_gateway_client, ssl_verify
from agent.errors import (
    ConfigurationError,
    CredentialsRejected,
    FingerprintMismatch,
    GatewayUnavailable,
    Rejected,
    Transient,
)
from agent.identity import Identity
from agent.locked import save_state
from agent.prompts import ask_secret
from agent.refresh import handshake_and_save
from agent.runtime import Runtime
from agent.state import State
from agent.statedir import StateStore
from agent.urlrule import check_server_url
from fleetwire import messages as m
from fleetwire.codes import Code
from fleetwire.procedures import REGISTER
from fleetwire.validators import FieldError

logger = logging.getLogger(__name__)


@attrs.frozen
class EnrollOptions:
    server_url: str
    name: str
    force: bool = False
    allow_insecure_transport: bool = False
    ca_file: str | None = None


async def enroll(store: StateStore, options: EnrollOptions, runtime: Runtime) -> None:
    server_url = check_server_url(
        options.server_url, allow_insecure_transport=options.allow_insecure_transport
    )
    verify = ssl_verify(options.ca_file)  # an unusable CA file is a configuration error
    with store.lock(create=True) as directory:
        if directory.load() is not None and not options.force:
            raise ConfigurationError(
                f"{store.state_path} already holds an enrolled node; "
                "pass --force to replace it (the old identity is lost)"
            )
        code = await ask_secret("Enrollment code: ", runtime.stdin, runtime.stderr)
        identity = Identity.generate()
        try:
            request = m.RegisterRequest(
                enrollment_token=code, name=options.name, identity_pubkey=identity.public_key
            )
        except FieldError as exc:
            if exc.path == "name":
                raise ConfigurationError(f"--name: {exc.reason}") from exc
            raise CredentialsRejected("the enrollment code is malformed") from exc
        async with open_gateway_client(
            server_url, verify=verify, transport=runtime.transport
        ) as client:
            try:
                registered = await client.call(REGISTER, request)
            except Transient as exc:
                raise GatewayUnavailable.from_transient(exc) from exc
            except Rejected as exc:
                if exc.code is Code.UNAUTHENTICATED:
                    raise CredentialsRejected(
                        f"the gateway rejected the enrollment code ({exc.message}); "
                        "ask an operator for a new one"
                    ) from exc
                raise
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
            runtime.stderr.write(
                f"Registered as fleet node {registered.fleet_node_id} with fingerprint "
                f"{identity.fingerprint}.\n"
                "Ask an operator to compare this fingerprint with the one `fleetctl nodes` "
                "shows and to confirm the node, then paste the api key it prints.\n"
                "(If you stop here, finish later with `fleetnode refresh`.)\n"
            )
            runtime.stderr.flush()
            api_key = await ask_secret("API key: ", runtime.stdin, runtime.stderr)
            state = await handshake_and_save(
                client, directory, state, identity, api_key, runtime.in_thread
            )
    runtime.stdout.write(
        f"enrolled fleet_node_id={state.fleet_node_id} fingerprint={state.identity_fingerprint} "
        f"state={store.state_path}\n"
    )
    runtime.stdout.flush()
