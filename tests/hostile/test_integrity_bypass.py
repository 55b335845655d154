"""The integrity bypass and the silent peer at start-up, as reported, over real aiortc on 127.0.0.1
against the real loader and the real local origin, with the ``faq-vod`` preset.

The bypass: a peer sends a correct data header, then all but the last byte wrong, then stalls.
With ``http_download_ranges`` (on in the FAQ's VOD example) HTTP used to fetch only the missing
last byte and the assembled segment skipped the integrity checks as an HTTP download. The
protocol logic is covered on a driven clock for every preset in tests/core/test_integrity_bypass.py
and tests/core/test_startup_silent_peer.py, and against the shipped machines (digests, spot
checks, no ranges, the defaults, checks turned off) in tests/hostile/test_hostile_protocol.py;
the case as reported and the silent peer's start-up keep the sockets honest here.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.client import connect

from p2ploader import open_loader
from p2ploader.aio.loader import LoadedSegment
from p2ploader.aio.tracker_client import encode_id
from p2ploader.config import PRESETS
from p2ploader.core import notifications as nt
from p2ploader.core import wire
from p2ploader.testing.origin import OriginServer
from p2ploader.testing.peer import silent
from p2ploader.testing.wait import wait_until
from p2ploader.tracker import TrackerServer
from tests.hostile.scripted import ScriptedPeer
from tests.hostile.test_hostile_peers import (
    ALL,
    ROOT,
    WANT,
    Session,
    assert_serves_the_origins_bytes,
    hashed_root,
    tracker,
    watch,
    xor,
)

__all__ = ["hashed_root", "tracker"]  # fixtures, shared with the hostile-peer suite

pytestmark = [pytest.mark.anyio, pytest.mark.e2e]


def lie_then_stall(peer: ScriptedPeer, request: wire.SegmentRequest) -> None:
    """A correct data header, then size-1 wrong bytes, then nothing."""
    data = peer.data_for(request)
    assert data is not None
    peer.send_header(request, len(data))
    peer.send_raw(xor(data[:-1]))


@contextlib.asynccontextmanager
async def preset_session(
    tracker: TrackerServer,
    respond: Any,
    *,
    preset: str = "faq-vod",
    root: Path = ROOT,
    peer: bool = True,
    segment_delay: float | None = None,
    **changes: Any,
) -> AsyncIterator[Session | None]:
    """A loader on ``preset`` (changed only in what a loopback test needs) with one scripted peer
    that announces every segment (``peer=False``: none; the session is then ``None``)."""
    config = PRESETS[preset].evolve(
        tracker_announce=(tracker.url,), rtc_config={"iceServers": []}, http_retry_backoff=0.05, **changes
    )
    with OriginServer(root) as origin:
        if segment_delay is not None:
            origin.inject(".ts", delay=segment_delay)
        async with open_loader(
            origin.url_for("master.m3u8"), config=config, rendition="v1", seed=1
        ) as loader:
            if not peer:
                yield None
                return
            events: list[nt.Notification] = []
            loader.add_listener(events.append)
            scripted = ScriptedPeer(loader, ALL, respond)
            await scripted.connect()
            await wait_until(lambda: loader.statistics().peers_connected == 1, what="peer connected")
            scripted.announce_sequences(sorted(ALL))
            try:
                yield Session(loader, scripted, events, origin)
            finally:
                await scripted.close()


async def assert_nothing_wrong(s: Session, got: list[LoadedSegment]) -> None:
    assert got, "nothing played"
    wrong = [g.segment.id.sequence for g in got if g.data != WANT[g.segment.id.sequence]]
    assert wrong == [], f"segments {wrong} reached the player wrong"
    await assert_serves_the_origins_bytes(s.loader)  # nothing wrong cached (it would be uploaded)


@pytest.mark.parametrize(
    ("preset", "checks", "ranges"),
    [("faq-vod", "digests", True)],
    ids=["faq-vod-digests-ranges"],  # as reported; the other cells: test_hostile_protocol.py
)
async def test_the_reported_bypass(
    tracker: TrackerServer, hashed_root: Path, preset: str, checks: str, ranges: bool
) -> None:
    # Digests: the preset as shipped on a hashed stream (integrity_sha256 automatic).
    changes: dict[str, Any] = {"http_download_ranges": ranges}
    if checks == "spot-checks":
        changes.update(integrity_spot_checks=3, integrity_spot_check_bytes=32)
    root = hashed_root if checks == "digests" else ROOT
    async with preset_session(tracker, lie_then_stall, preset=preset, root=root, **changes) as s:
        assert s is not None
        liar = s.peer.hex_id
        # 6 s of play load segments 0 to 6 or so (8 s ahead): the liar is banned about 2 s in.
        playing = asyncio.create_task(watch(s, 6.0))
        await wait_until(lambda: s.loader.is_banned(liar), timeout=30.0, what="the liar banned")
        _report, got = await playing
        await assert_nothing_wrong(s, got)
        failed = [n for n in s.of(nt.IntegrityCheckFailed) if n.peer_id == liar]
        expected = {"digests": "sha256", "spot-checks": "spot-check"}[checks] if ranges else "origin-bytes"
        assert failed and failed[0].check == expected
        # The lied-about segment reached the player within the watch, with the origin's bytes.
        assert failed[0].segment_id in {g.segment.id for g in got}
        assert any(n.peer_id == liar for n in s.of(nt.PeerBanned))
        await wait_until(lambda: not s.connected(), what="the liar disconnected")
        stats = s.loader.statistics()
        assert stats.p2p_bytes_unverified == 0, "no unchecked peer byte was accepted"
        assert s.loader.integrity_statistics().p2p_bytes_rejected > 0


async def test_a_silent_peer_does_not_hold_startup_with_faq_vod(tracker: TrackerServer) -> None:
    delay = 1.0  # seconds the origin takes per segment: start-up over HTTP alone is about this
    config = PRESETS["faq-vod"].evolve(tracker_announce=(tracker.url,), rtc_config={"iceServers": []})
    with OriginServer(ROOT) as origin:
        origin.inject(".ts", delay=delay)
        async with open_loader(origin.url_for("master.m3u8"), config=config, rendition="v1", seed=1) as alone:
            began = time.monotonic()
            await asyncio.wait_for(alone.get_segment(alone.playlist.segments[0].id), 60.0)
            without_peer = time.monotonic() - began
    async with preset_session(tracker, silent, segment_delay=delay) as s:
        assert s is not None
        # The silent peer is in the tracker's swarm too, as in the reported run: the tracker tells
        # the loader it is not alone, so the P2P-first start-up mode does not end on its own.
        async with connect(tracker.url) as ws:
            await ws.send(
                json.dumps(
                    {
                        "action": "announce",
                        "event": "started",
                        "info_hash": encode_id(s.loader.info_hash()),
                        "peer_id": encode_id(s.peer.peer_id),
                        "numwant": 0,
                        "uploaded": 0,
                        "downloaded": 0,
                    }
                )
            )
            await ws.recv()  # the tracker's reply: it is in the swarm
            began = time.monotonic()
            got = await asyncio.wait_for(s.loader.get_segment(s.loader.playlist.segments[0].id), 60.0)
            with_peer = time.monotonic() - began
        assert got.data == WANT[0]
    assert with_peer <= 1.2 * without_peer, (
        f"{with_peer:.2f} s with a silent peer, {without_peer:.2f} s without"
    )
