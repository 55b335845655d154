"""Hostile peers over real aiortc on 127.0.0.1, where the socket is the point.

Every protocol behaviour (wrong bytes and the checks that catch them, sizes, silence, trickling,
garbage, floods, other swarms' segments, repeated violations, the validator hook, the upload
budget) is tested on a virtual clock against the shipped machines in
``tests/hostile/test_hostile_protocol.py``. What stays here needs the real thing: a liar and a
flood that join through a real WebTorrent tracker and a real aiortc link (the player must never
see a bad byte), bans that fall on a real DTLS certificate, a link that closes under a transfer,
and a peer whose SCTP stack stops acknowledging. Everything is observed through the public API:
notifications, ``statistics()``, ``is_banned``, ``get_segment``, ``swarm_endpoint``.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import attrs
import pytest

from p2ploader import LoaderConfig, open_loader, play
from p2ploader.aio.loader import HybridLoader, LoadedSegment
from p2ploader.app.hashplaylist import hash_playlists
from p2ploader.core import notifications as nt
from p2ploader.core import wire
from p2ploader.core.bans import STRIKES_BEFORE_BAN
from p2ploader.errors import OfferRefusedError
from p2ploader.playback import PlaybackReport
from p2ploader.sample import sample_path, vod_segment_bytes
from p2ploader.testing import TrackerSignal
from p2ploader.testing.origin import OriginServer
from p2ploader.testing.peer import honest
from p2ploader.testing.wait import wait_until
from p2ploader.tracker import TrackerServer
from tests.hostile.scripted import ScriptedPeer

pytestmark = [pytest.mark.anyio, pytest.mark.e2e]

ROOT = sample_path("ts")
WANT = vod_segment_bytes(ROOT / "360p/index.m3u8")  # rendition v1
ALL = dict(enumerate(WANT))


@pytest.fixture
async def tracker(loopback: None) -> AsyncIterator[TrackerServer]:
    async with TrackerServer() as server:
        yield server


@pytest.fixture(scope="module")
def hashed_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("hashed") / "ts"
    shutil.copytree(ROOT, root)
    hash_playlists(root / "master.m3u8")
    return root


@attrs.define
class Session:
    loader: HybridLoader
    peer: ScriptedPeer
    events: list[nt.Notification]
    origin: OriginServer

    def of(self, kind: type[Any]) -> list[Any]:
        return [n for n in self.events if isinstance(n, kind)]

    def misbehaved(self) -> list[str]:
        return [n.reason for n in self.of(nt.PeerMisbehaved) if n.peer_id == self.peer.hex_id]

    def connected(self) -> bool:
        endpoint = self.loader.swarm_endpoint
        return endpoint is not None and self.peer.hex_id in endpoint.linked


@contextlib.asynccontextmanager
async def session(
    tracker: TrackerServer,
    respond: Any = honest,
    *,
    root: Path = ROOT,
    announce: bool = True,
    through_tracker: bool = False,
    **changes: Any,
) -> AsyncIterator[Session]:
    """A loader with one scripted peer, joined through ``tracker`` (``through_tracker``) or the
    loader's public swarm endpoint."""
    config = LoaderConfig(
        tracker_announce=(tracker.url,),
        rtc_config={"iceServers": []},
        http_retry_backoff=0.05,
        p2p_segment_download_timeout=2.0,
        **changes,
    )
    with OriginServer(root) as origin:
        async with open_loader(
            origin.url_for("master.m3u8"), config=config, rendition="v1", seed=1
        ) as loader:
            events: list[nt.Notification] = []
            loader.add_listener(events.append)
            peer = ScriptedPeer(loader, ALL, respond)
            if through_tracker:
                async with TrackerSignal(tracker.url, loader.info_hash()) as signal:
                    await peer.connect(signal)
            else:
                await peer.connect()
            await wait_until(lambda: loader.statistics().peers_connected == 1, what="peer connected")
            if announce:
                peer.announce_sequences(sorted(ALL))
            try:
                yield Session(loader, peer, events, origin)
            finally:
                await peer.close()


async def watch(s: Session, seconds: float = 4.0) -> tuple[PlaybackReport, list[LoadedSegment]]:
    got: list[LoadedSegment] = []
    report = await asyncio.wait_for(
        play(s.loader, duration=seconds, forward_buffer=8.0, tick=0.1, on_segment=got.append),
        timeout=seconds + 20,
    )
    return report, got


async def assert_played_well(s: Session, report: PlaybackReport, got: list[LoadedSegment]) -> None:
    assert got, "nothing played"
    for loaded in got:
        assert loaded.data == WANT[loaded.segment.id.sequence], loaded.segment.id
    assert report.stalls == 0
    await assert_serves_the_origins_bytes(s.loader)


async def assert_serves_the_origins_bytes(loader: HybridLoader) -> None:
    """Every segment the loader gives now (from its cache, what it would also upload to peers, or
    loaded again) is the origin's. The playhead is moved to each segment in turn: a policy loads
    segments far ahead of it from peers only."""
    for segment in loader.playlist.segments:
        loader.report_playback(segment.start)
        loaded = await asyncio.wait_for(loader.get_segment(segment.id), 20.0)
        assert loaded.data == WANT[segment.id.sequence], segment.id


async def play_and_wait(
    s: Session, condition: Any, what: str, seconds: float = 4.0
) -> tuple[PlaybackReport, list[LoadedSegment]]:
    """Play while waiting for ``condition`` (which must come true within the playback)."""
    playing = asyncio.create_task(watch(s, seconds))
    try:
        await wait_until(condition, timeout=seconds + 10, what=what)
    except BaseException:
        playing.cancel()
        raise
    return await playing


def xor(data: bytes) -> bytes:
    return bytes(b ^ 0x5A for b in data)


# --------------------------------------------------------------------------- through a tracker


def liar(peer: ScriptedPeer, request: wire.SegmentRequest) -> None:
    data = peer.data_for(request)
    assert data is not None
    peer.send_data(request, xor(data))


async def test_a_liar_joining_through_the_tracker_is_banned_and_no_bad_byte_is_played(
    tracker: TrackerServer, hashed_root: Path
) -> None:
    # The loader's integrity settings as shipped: the playlist publishes digests, so they are checked.
    async with session(tracker, liar, root=hashed_root, through_tracker=True) as s:
        assert s.loader.config.integrity_sha256 is None  # automatic
        report, got = await play_and_wait(s, lambda: s.of(nt.PeerBanned), "the liar banned")
        await assert_played_well(s, report, got)
        (failed, *_) = s.of(nt.IntegrityCheckFailed)
        assert failed.peer_id == s.peer.hex_id and failed.check == "sha256"
        await wait_until(lambda: not s.connected(), what="liar disconnected")
        assert s.loader.is_banned(s.peer.hex_id)
        assert s.loader.statistics().p2p_segments == 0  # its bytes were never stored
        assert s.loader.integrity_statistics().sha256_checks >= 1
        # Introduced again (the same id and DTLS certificate), its offer is refused. The ban is on
        # its certificate: a fresh certificate is a fresh identity (bans cost an attacker, the slot
        # policy is what holds), so only the framing-proof part is asserted here.
        again = ScriptedPeer(s.loader, ALL, liar)
        again.peer_id = s.peer.peer_id
        with pytest.raises(OfferRefusedError):
            await again.connect(certificate_of=s.peer)


async def test_a_command_flood_through_the_tracker_is_cut_off(tracker: TrackerServer) -> None:
    async with session(tracker, through_tracker=True) as s:
        for index in range(2000):
            s.peer.announce_sequences([index % 10, (index + 1) % 10])
            if index % 100 == 0:
                await asyncio.sleep(0)  # let the data channel send
        await wait_until(lambda: s.misbehaved(), what="flood reported")
        assert "flooded us with commands" in s.misbehaved()
        await wait_until(lambda: not s.connected(), what="disconnected")
        report, got = await watch(s, 3.0)
        await assert_played_well(s, report, got)


# --------------------------------------------------------------------------- links and certificates


async def test_disconnects_mid_transfer(tracker: TrackerServer) -> None:
    """The peer's link closes under a transfer: aiortc reports the close, the segment comes over
    HTTP."""

    async def leave(peer: ScriptedPeer, request: wire.SegmentRequest) -> None:
        data = peer.data_for(request)
        assert data is not None
        peer.send_header(request, len(data))
        peer.send_raw(data[: len(data) // 2])
        await asyncio.sleep(0.2)  # the half reaches the loader first
        assert peer.pc is not None
        await peer.pc.close()

    async with session(tracker, leave) as s:

        def dropped() -> bool:
            return any(
                isinstance(n, nt.SegmentLoadFailed)
                and n.peer_id == s.peer.hex_id
                and n.reason == "peer disconnected"
                for n in s.events
            )

        report, got = await play_and_wait(s, dropped, "the departure noticed")
        await assert_played_well(s, report, got)
        assert not s.connected()


async def test_repeated_protocol_violations_ban_the_peers_certificate(tracker: TrackerServer) -> None:
    async with session(tracker) as s:
        peer_id = s.peer.peer_id
        for attempt in range(STRIKES_BEFORE_BAN):
            if attempt:
                await s.peer.close()
                again = ScriptedPeer(s.loader, ALL)
                again.peer_id = peer_id
                await again.connect(certificate_of=s.peer)  # the same peer: same id, same certificate
                s.peer = again
            s.peer.send_raw(b"\x47" * 100)  # data without a header: one strike
            await wait_until(lambda: not s.connected(), what="disconnected")
        await wait_until(lambda: s.of(nt.PeerBanned), what="banned")
        assert len(s.misbehaved()) == STRIKES_BEFORE_BAN
        retry = ScriptedPeer(s.loader, ALL)
        retry.peer_id = peer_id
        with pytest.raises(OfferRefusedError):
            await retry.connect(certificate_of=s.peer)


# --------------------------------------------------------------------------- what a peer may cost us


def stop_acknowledging(peer: ScriptedPeer) -> None:
    """From now on the peer's SCTP stack drops every DATA chunk it receives: nothing is delivered and
    nothing acknowledged (no SACK), as a receiver that stops reading does. Its own sending, and the
    association's heartbeats, go on, so the connection stays up. (aiortc has no public hook for
    this; the patch is on the scripted peer's own connection, not on the loader.)"""
    assert peer.pc is not None and peer.pc.sctp is not None

    async def drop(chunk: object) -> None:
        return None

    peer.pc.sctp._receive_data_chunk = drop  # type: ignore[method-assign]


async def download_each_once(peer: ScriptedPeer, sequences: list[int], *, within: float) -> int:
    """An honest viewer: asks for each segment in turn, the next once the last one is whole (or
    absent); returns the data bytes it got within ``within`` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    for request_id, sequence in enumerate(sequences):
        peer.send(wire.SegmentRequest(segment_id=peer.wire_id(sequence), request_id=request_id))

        try:
            await wait_until(
                lambda rid=request_id: peer.answered(rid),
                timeout=max(0.0, deadline - loop.time()),
                what="an answer",
            )
        except AssertionError:
            break  # out of time
    return peer.data_bytes


async def test_a_peer_that_stops_reading_loses_the_upload_turn(tracker: TrackerServer) -> None:
    """It asks for cached segments and acknowledges nothing: once its data channel's queue stops
    draining for upload_stall_timeout (the default, 5 s) its upload gives the uplink turn up, and it
    is disconnected with a strike. A second viewer then gets its segments."""
    async with session(tracker, announce=False) as s:
        assert s.loader.config.upload_stall_timeout == 5.0
        await assert_serves_the_origins_bytes(s.loader)  # the seeder holds every segment now
        stop_acknowledging(s.peer)
        # Enough requests to queue more than the 1 MiB backpressure threshold, then silence: the
        # last upload waits for the queue to drain, holding the swarm's upload turn.
        for request_id in range(25):
            s.peer.send(
                wire.SegmentRequest(segment_id=s.peer.wire_id(request_id % len(WANT)), request_id=request_id)
            )
            await asyncio.sleep(0.03)
        await asyncio.sleep(0.5)
        viewer = ScriptedPeer(s.loader, {})
        await viewer.connect()
        try:
            got = await download_each_once(viewer, sorted(ALL), within=15.0)
        finally:
            await viewer.close()
        print(f"\nFIGURE stalled-receiver second_viewer_bytes={got} in 15 s (wanted {sum(map(len, WANT))})")
        assert got == sum(map(len, WANT))
        assert any("stopped reading" in r for r in s.misbehaved()), s.misbehaved()
        await wait_until(lambda: not s.connected(), what="the non-reader disconnected")
