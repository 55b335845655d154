"""A public testing kit for code built on p2ploader, as ``trio.testing`` is for trio.

- :mod:`~p2ploader.testing.origin`: :class:`~p2ploader.testing.origin.OriginServer`, a local HLS
  origin on 127.0.0.1 (VOD, emulated live, injected faults, byte counts), also the ``p2ploader
  origin`` command; its Low-Latency HLS mode's pure part (MP4 fragments, the part timeline, the
  playlist text, delivery directives) is :mod:`~p2ploader.testing.llhls`.
- :mod:`~p2ploader.testing.harness`: :class:`~p2ploader.testing.harness.Harness`, which drives the
  sans-IO scheduler by hand with an explicit clock, for policy and scheduler tests that never sleep.
- :mod:`~p2ploader.testing.peer`: :class:`~p2ploader.testing.peer.ScriptedPeer`, a remote peer that
  says on the wire what a test scripts (honest, silent, lying, broken), sans-IO, joined in memory to
  a loader-side peer protocol machine by :class:`~p2ploader.testing.peer.ScriptedLink`.
- :mod:`~p2ploader.testing.rtcpeer`: :class:`~p2ploader.testing.rtcpeer.RtcScriptedPeer`, the same
  peer over a real aiortc data channel to a running loader.
- :mod:`~p2ploader.testing.wait`: :func:`~p2ploader.testing.wait.wait_until`, the one bounded
  polling wait for real-socket tests.

The scripted peer and its in-memory link are exported here; ``RtcScriptedPeer`` too, imported on
first use (it pulls in aiortc). The other submodules are imported explicitly (the origin and the
wait helper are I/O). Nothing in the library imports this package. See ``docs/testing.md``.
"""

from __future__ import annotations

import importlib as _importlib
import typing as _typing

from p2ploader.testing.peer import ScriptedLink, ScriptedPeer

if _typing.TYPE_CHECKING:
    from p2ploader.testing.rtcpeer import RtcScriptedPeer

__all__ = ["RtcScriptedPeer", "ScriptedLink", "ScriptedPeer"]


def __getattr__(name: str) -> _typing.Any:
    if name == "RtcScriptedPeer":
        return _importlib.import_module("p2ploader.testing.rtcpeer").RtcScriptedPeer
    raise AttributeError(f"module 'p2ploader.testing' has no attribute {name!r}")
