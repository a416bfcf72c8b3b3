"""A third-party Connect client, generated from the published .proto files, against a real
gateway: what a connect-go, connect-es or ``buf curl`` user gets without writing a schema.

The client is the ``connectrpc`` package's, generated at test time by protoc (grpcio-tools)
with its ``protoc-gen-connectrpc`` plugin over google.protobuf messages, and it speaks JSON
(the gateway's only codec) with its default gzip request compression.
"""

from __future__ import annotations

import datetime
import importlib
import subprocess
import sys
from collections.abc import Iterator
from types import ModuleType

import attrs
import nacl.signing
import pytest
from connectrpc.code import Code
from connectrpc.compat import google_protobuf_json_codec
from connectrpc.errors import ConnectError
from google.protobuf.timestamp_pb2 import Timestamp

from fleetwire import proto
from fleetwire.durations import parse_duration
from fleetwire.identity import auth_message, fingerprint, register_message
from tests.e2e.actors import GATEWAY_TIMINGS
from tests.e2e.conftest import Fleet
from tests.e2e.harness import program

UTC = datetime.UTC
HEARTBEAT_INTERVAL = parse_duration(
    GATEWAY_TIMINGS[GATEWAY_TIMINGS.index("--heartbeat-interval") + 1]
)
GENERATED_PACKAGES = ("fleetnodegateway", "fleetnodeadmin")  # the proto packages' top level


@attrs.frozen
class Generated:
    """The modules protoc generated: messages (``*_pb2``) and Connect clients."""

    gateway: ModuleType
    gateway_connect: ModuleType
    facts: ModuleType
    admin: ModuleType
    admin_connect: ModuleType


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Generated]:
    """Generate the Python code of the shipped .proto files and import it (once: protobuf
    keeps every imported file in one process-wide pool)."""
    out = tmp_path_factory.mktemp("generated")
    done = subprocess.run(
        [
            sys.executable, "-m", "grpc_tools.protoc", "-I", str(proto.ROOT),
            f"--plugin=protoc-gen-connectrpc={program('protoc-gen-connectrpc')}",
            f"--python_out={out}", f"--connectrpc_out={out}",
            "--connectrpc_opt=protobuf=google,io=sync",
            *proto.FILES,
        ],
        capture_output=True,
        text=True,
        check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    with pytest.MonkeyPatch.context() as patch:
        patch.syspath_prepend(str(out))
        yield Generated(
            gateway=importlib.import_module("fleetnodegateway.v1.gateway_pb2"),
            gateway_connect=importlib.import_module("fleetnodegateway.v1.gateway_connect"),
            facts=importlib.import_module("fleetnodegateway.v1.node_facts_pb2"),
            admin=importlib.import_module("fleetnodeadmin.v1.admin_pb2"),
            admin_connect=importlib.import_module("fleetnodeadmin.v1.admin_connect"),
        )
    for name in [name for name in sys.modules if name.startswith(GENERATED_PACKAGES)]:
        del sys.modules[name]


def bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


def timestamp(value: datetime.datetime) -> Timestamp:
    stamp = Timestamp()
    stamp.FromDatetime(value)
    return stamp


def test_a_generated_client_enrolls_a_node_heartbeats_and_lists_it(
    shared_fleet: Fleet, generated: Generated
) -> None:
    """A connectrpc client generated from the shipped schema mints a code, registers,
    gets confirmed, completes the handshake, heartbeats and sees the node ONLINE."""
    gw, admin = generated.gateway, generated.admin
    url, harness = shared_fleet.gateway.url, shared_fleet.harness
    operator = bearer(shared_fleet.admin_token)
    json = google_protobuf_json_codec()
    with (
        generated.gateway_connect.FleetNodeGatewayServiceClientSync(url, codec=json) as node,
        generated.admin_connect.FleetNodeAdminServiceClientSync(url, codec=json) as ctl,
    ):
        minted = ctl.create_enrollment_code(
            admin.CreateEnrollmentCodeRequest(ttl_seconds=600), headers=operator, timeout_ms=10_000
        )
        code = harness.secret(minted.code, "enroll code")
        assert minted.pending_enrollment_id > 0
        assert not minted.pre_approved
        lifetime = minted.expires_at.ToDatetime(UTC) - datetime.datetime.now(UTC)
        assert datetime.timedelta(minutes=9) < lifetime <= datetime.timedelta(minutes=10)

        key = nacl.signing.SigningKey.generate()
        pubkey = bytes(key.verify_key)
        name = harness.unique("connect-client")
        registered = node.register(
            gw.RegisterRequest(
                enrollment_token=code,
                name=name,
                identity_pubkey=pubkey,
                registration_signature=key.sign(register_message(code)).signature,
            )
        )
        assert registered.fleet_node_id > 0
        assert registered.enrollment_status == gw.ENROLLMENT_STATUS_PENDING
        assert registered.identity_fingerprint == fingerprint(pubkey)
        assert registered.api_key == ""

        confirmed = ctl.confirm_fleet_node(
            admin.ConfirmFleetNodeRequest(fleet_node_id=registered.fleet_node_id),
            headers=operator,
        )
        api_key = harness.secret(confirmed.api_key, "api key")

        begun = node.begin_auth_handshake(
            gw.BeginAuthHandshakeRequest(api_key=api_key, identity_pubkey=pubkey)
        )
        assert len(begun.challenge) == 32
        assert begun.expires_at.ToDatetime(UTC) > datetime.datetime.now(UTC)
        completed = node.complete_auth_handshake(
            gw.CompleteAuthHandshakeRequest(
                challenge=begun.challenge,
                signature=key.sign(auth_message(begun.challenge)).signature,
            )
        )
        session = bearer(harness.secret(completed.session_token, "session token"))

        before = datetime.datetime.now(UTC)
        beat = node.upload_heartbeat(
            gw.UploadHeartbeatRequest(
                sent_at=timestamp(before),
                # The gateway decodes NodeFacts as this schema encodes them.
                facts=generated.facts.NodeFacts(hostname=name, os="Linux 6.1.0 x86_64"),
            ),
            headers=session,
        )
        assert beat.heartbeat_interval_seconds == HEARTBEAT_INTERVAL
        received = beat.received_at.ToDatetime(UTC)
        assert received >= before - datetime.timedelta(seconds=1)

        listed = ctl.list_fleet_nodes(
            admin.ListFleetNodesRequest(page_size=1000, connectivity=admin.CONNECTIVITY_ONLINE),
            headers=operator,
        )
        (summary,) = [n for n in listed.fleet_nodes if n.fleet_node_id == registered.fleet_node_id]
        assert summary.name == name
        assert summary.identity_fingerprint == fingerprint(pubkey)
        assert summary.enrollment_status == admin.FLEET_NODE_ENROLLMENT_STATUS_CONFIRMED
        assert summary.connectivity == admin.CONNECTIVITY_ONLINE
        assert summary.HasField("last_seen_at")
        assert summary.created_at.ToDatetime(UTC) <= summary.last_seen_at.ToDatetime(UTC)
        assert summary.HasField("clock_skew_ms")  # measured by that heartbeat
        assert abs(summary.clock_skew_ms) < 60_000  # one machine, one clock


def test_a_generated_client_reads_the_gateways_errors_as_connect_codes(
    shared_fleet: Fleet, generated: Generated
) -> None:
    """The generated client turns the gateway's error bodies into typed Connect codes."""
    url = shared_fleet.gateway.url
    json = google_protobuf_json_codec()
    with (
        generated.gateway_connect.FleetNodeGatewayServiceClientSync(url, codec=json) as node,
        generated.admin_connect.FleetNodeAdminServiceClientSync(url, codec=json) as ctl,
    ):
        with pytest.raises(ConnectError) as unauthenticated:
            ctl.list_fleet_nodes(generated.admin.ListFleetNodesRequest())
        assert unauthenticated.value.code is Code.UNAUTHENTICATED

        with pytest.raises(ConnectError) as invalid:
            ctl.list_fleet_nodes(
                generated.admin.ListFleetNodesRequest(page_size=1001),
                headers=bearer(shared_fleet.admin_token),
            )
        assert invalid.value.code is Code.INVALID_ARGUMENT
        assert "pageSize" in invalid.value.message

        with pytest.raises(ConnectError) as bad_code:
            node.register(
                generated.gateway.RegisterRequest(
                    enrollment_token="x" * 43, name="never", identity_pubkey=bytes(32)
                )
            )
        assert bad_code.value.code is Code.UNAUTHENTICATED
        assert bad_code.value.message == "invalid enrollment code"
