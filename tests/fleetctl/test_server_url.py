"""The server URL rule of fleetctl (SPEC 7 and 5.8): checked before anything connects."""

from __future__ import annotations

import httpx
import pytest

from fleetctl.__main__ import run
from fleetwire import codec
from fleetwire import messages as m

TOKEN = "fleetadm_0123abcd_" + "A" * 43


class Recorder:
    """The transport seam: records every request, answers an empty node listing."""

    def __init__(self) -> None:
        self.urls: list[str] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.urls.append(str(request.url))
        return httpx.Response(200, content=codec.encode(m.ListFleetNodesResponse()))


def fleetctl(argv: list[str], server_url: str) -> tuple[int, Recorder]:
    recorder = Recorder()
    env = {"FLEET_ADMIN_TOKEN": TOKEN, "FLEET_SERVER_URL": server_url}
    return run(argv, env, httpx.MockTransport(recorder)), recorder


@pytest.mark.parametrize(
    "url", ["http://gw.example.com", "http://10.0.0.7:8080", "http://[2001:db8::1]:8080"]
)
def test_plain_http_to_a_remote_host_is_refused_before_any_request(
    url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """http:// to a host that is not loopback exits 78 naming the rule, and sends nothing."""
    code, recorder = fleetctl(["nodes"], url)
    assert code == 78
    assert recorder.urls == []
    err = capsys.readouterr().err
    assert "rule 'https'" in err and "loopback" in err and "--allow-insecure-transport" in err


@pytest.mark.parametrize(
    "url",
    [
        "http://localhost:8080",
        "http://LOCALHOST",
        "http://127.0.0.1:8080",
        "http://127.3.4.5",
        "http://[::1]:8080",
        "https://gw.example.com/prefix/",
    ],
)
def test_loopback_http_and_https_are_allowed(url: str) -> None:
    """Plain http to localhost, 127.0.0.0/8 or ::1, and https anywhere, are called."""
    code, recorder = fleetctl(["nodes"], url)
    assert code == 0
    assert len(recorder.urls) == 1
    assert recorder.urls[0].startswith(url.rstrip("/").replace("LOCALHOST", "localhost") + "/")


def test_allow_insecure_transport_before_the_command_allows_remote_http() -> None:
    """The global --allow-insecure-transport lets plain http reach a remote host."""
    code, recorder = fleetctl(["--allow-insecure-transport", "nodes"], "http://gw.example.com")
    assert code == 0
    assert recorder.urls == [
        "http://gw.example.com/fleetnodeadmin.v1.FleetNodeAdminService/ListFleetNodes"
    ]


def test_allow_insecure_transport_after_the_command_is_a_usage_error(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The option is global: given after the command it is a usage error (2), nothing sent."""
    code, recorder = fleetctl(["nodes", "--allow-insecure-transport"], "http://gw.example.com")
    assert code == 2
    assert recorder.urls == []
    assert "--allow-insecure-transport" in capsys.readouterr().err


def test_server_url_flag_is_checked_like_the_environment(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """--server-url wins over FLEET_SERVER_URL and is held to the same rule."""
    code, recorder = fleetctl(["--server-url", "http://gw.example.com", "nodes"], "http://[::1]")
    assert code == 78
    assert recorder.urls == []
    code, recorder = fleetctl(["--server-url", "http://[::1]:9", "nodes"], "http://gw.example.com")
    assert code == 0
    assert recorder.urls[0].startswith("http://[::1]:9/")


@pytest.mark.parametrize(
    ("url", "rule"),
    [
        ("ftp://gw.example.com", "scheme"),
        ("gw.example.com:8080", "scheme"),
        ("https://", "host"),
        ("https://gw.example.com:99999", "host"),
        ("https://admin:hunter2secret@gw.example.com", "userinfo"),
        ("https://gw.example.com/?token=x", "query"),
        ("https://gw.example.com/?", "query"),
        ("https://gw.example.com/#frag", "fragment"),
    ],
)
def test_malformed_server_url_exits_78_naming_the_rule(
    url: str, rule: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """A URL with another scheme, no host, userinfo, a query or a fragment exits 78."""
    code, recorder = fleetctl(["nodes"], url)
    assert code == 78
    assert recorder.urls == []
    err = capsys.readouterr().err
    assert f"rule {rule!r}" in err
    assert "hunter2secret" not in err and "admin:" not in err
