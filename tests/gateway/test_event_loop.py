"""The gateway's event loop: uvloop's when installed (the speed extra), else asyncio's."""

from __future__ import annotations

import sys

import pytest

from gateway.__main__ import event_loop_factory


def test_without_uvloop_the_gateway_runs_on_asyncios_own_loop(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """With uvloop missing the runner gets no loop factory: asyncio's default loop."""
    monkeypatch.setitem(sys.modules, "uvloop", None)  # import uvloop now raises ImportError
    assert event_loop_factory() is None


def test_with_uvloop_installed_the_gateway_runs_on_it() -> None:
    """With uvloop installed the runner builds uvloop's loop."""
    uvloop = pytest.importorskip("uvloop")
    factory = event_loop_factory()
    assert factory is not None
    loop = factory()
    try:
        assert isinstance(loop, uvloop.Loop)
    finally:
        loop.close()
