"""Hostile and broken peers, one test per behaviour, over real aiortc on 127.0.0.1.

Each test runs a real loader against the real local origin, connects one scripted peer
(the testing kit's :class:`~p2ploader.testing.rtcpeer.RtcScriptedPeer`, attached to the loader by
:mod:`tests.hostile.scripted`) that misbehaves in one way, plays a few seconds in real time, and
checks four things: the player got the origin's bytes, it never stalled (an HTTP-only player does
not stall on loopback either), the peer was disconnected or scored down with a notification saying
why, and the loader's books stayed bounded.

The wire protocol's own rules (header matching, sizes, garbage frames, oversized commands, bytes
after a cancel, the flood guard) are tested without a socket in ``tests/core/test_peer_protocol.py``
and their wiring in ``tests/aio/test_peer_wiring.py``; here one case per way a violation takes
through the loader is kept (during a download, without one, at the header, as a flood).
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import attrs
import pytest

from p2ploader import LoaderConfig, open_loader, play
from p2ploader.aio.loader import HybridLoader, LoadedSegment
from p2ploader.aio.webrtc import set_remote
from p2ploader.app.hashplaylist import hash_playlists
from p2ploader.core import notifications as nt
from p2ploader.core import wire
from p2ploader.core.bans import STRIKES_BEFORE_BAN
from p2ploader.errors import OfferRefusedError
from p2ploader.playback import PlaybackReport
from p2ploader.sample import sample_path, vod_segment_bytes
from p2ploader.testing.origin import OriginServer
from p2ploader.testing.peer import honest, silent
from p2ploader.testing.wait import wait_until
from p2ploader.tracker import TrackerServer
from tests.hostile.scripted import CHUNK as CHUNK_SIZE
from tests.hostile.scripted import ScriptedPeer, same_certificate

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
    segments: dict[int, bytes] | None = None,
    announce: bool = True,
    **changes: Any,
) -> AsyncIterator[Session]:
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
            peer = ScriptedPeer(loader, ALL if segments is None else segments, respond)
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


def assert_played_well(s: Session, report: PlaybackReport, got: list[LoadedSegment]) -> None:
    assert got, "nothing played"
    for loaded in got:
        assert loaded.data == WANT[loaded.segment.id.sequence], loaded.segment.id
    assert report.stalls == 0
    # Nothing wrong was stored either (it would be served to other peers).
    for sid in list(s.loader._scheduler.cache):
        entry = s.loader._scheduler.cache.get(sid, now=0.0)
        assert entry is not None and entry.data == WANT[sid.sequence], sid
    assert_bounded(s)


def assert_bounded(s: Session) -> None:
    """The books a hostile peer could try to grow stay within their limits."""
    loader, cfg = s.loader, s.loader.config
    scheduler = loader._scheduler
    assert len(scheduler._downloads) <= cfg.simultaneous_http_downloads + cfg.simultaneous_p2p_downloads
    assert scheduler._upload_desk.active <= cfg.max_concurrent_uploads
    assert len(scheduler._stalled_bytes) <= len(WANT)
    for peer in scheduler._peers.values():
        assert len(peer.loaded) <= wire.DEFAULT_MAX_ANNOUNCED_IDS
    manager = loader._peers
    assert manager is not None and len(manager._peers) <= cfg.max_peers
    for state in manager._peers.values():
        pending = state.protocol.pending_command_bytes
        assert pending is None or pending <= wire.DEFAULT_MAX_COMMAND_SIZE
        assert len(state.protocol._cancelled) <= 16
    assert all(len(b) <= 1024 for b in scheduler.reputation.swarms.values())


async def first_request(s: Session) -> wire.SegmentRequest:
    await wait_until(lambda: s.peer.requests, what="a request to the scripted peer")
    return s.peer.requests[0]


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


# --------------------------------------------------------------------------- wrong bytes


def liar(peer: ScriptedPeer, request: wire.SegmentRequest) -> None:
    data = peer.data_for(request)
    assert data is not None
    peer.send_data(request, xor(data))


async def test_wrong_bytes_are_caught_by_the_published_sha256(
    tracker: TrackerServer, hashed_root: Path
) -> None:
    async with session(tracker, liar, root=hashed_root, integrity_sha256=True) as s:
        report, got = await play_and_wait(s, lambda: s.of(nt.PeerBanned), "the liar banned")
        assert_played_well(s, report, got)
        (failed, *_) = s.of(nt.IntegrityCheckFailed)
        assert failed.peer_id == s.peer.hex_id and failed.check == "sha256"
        (banned,) = s.of(nt.PeerBanned)
        assert banned.peer_id == s.peer.hex_id and banned.seconds == 600.0
        assert "segment validator rejected the bytes" in s.misbehaved()
        await wait_until(lambda: not s.connected(), what="liar disconnected")
        assert s.loader.is_banned(s.peer.hex_id)
        assert s.loader.integrity_statistics().sha256_checks >= 1
        assert s.loader.statistics().p2p_segments == 0  # its bytes were never stored
        # A tracker introducing it again changes nothing: the offer is refused. The ban is on its
        # certificate: a fresh certificate is a fresh identity (bans cost an attacker, the slot
        # policy is what holds), so only the framing-proof part is asserted here.
        again = ScriptedPeer(s.loader, ALL, liar)
        again.peer_id = s.peer.peer_id
        with pytest.raises(OfferRefusedError):
            await again.connect(certificate_of=s.peer)


async def test_an_honest_peer_passes_the_sha256_check(tracker: TrackerServer, hashed_root: Path) -> None:
    async with session(tracker, honest, root=hashed_root, integrity_sha256=True) as s:
        report, got = await play_and_wait(s, lambda: s.loader.statistics().p2p_segments >= 2, "P2P segments")
        assert_played_well(s, report, got)
        assert not s.of(nt.IntegrityCheckFailed) and not s.misbehaved() and s.connected()
        assert s.loader.integrity_statistics().sha256_checks >= 2


@pytest.mark.parametrize("lie", ["xor", "consistently-short"])
async def test_wrong_bytes_are_caught_by_spot_checks(tracker: TrackerServer, lie: str) -> None:
    def respond(peer: ScriptedPeer, request: wire.SegmentRequest) -> None:
        data = peer.data_for(request)
        assert data is not None
        # "consistently-short": a shorter segment whose header announces that shorter size.
        peer.send_data(request, xor(data) if lie == "xor" else data[:-1000])

    async with session(tracker, respond, integrity_spot_checks=3, integrity_spot_check_bytes=32) as s:
        report, got = await play_and_wait(s, lambda: s.of(nt.PeerBanned), "the liar banned")
        assert_played_well(s, report, got)
        (failed, *_) = s.of(nt.IntegrityCheckFailed)
        assert failed.check == "spot-check" and failed.peer_id == s.peer.hex_id
        if lie == "consistently-short":
            assert "the origin has" in failed.reason
        stats = s.loader.integrity_statistics()
        assert (
            stats.spot_checked_segments >= 1
            and 1 <= stats.spot_check_requests <= 3 * stats.spot_checked_segments
        )
        await wait_until(lambda: not s.connected(), what="liar disconnected")


# --------------------------------------------------------------------------- sizes


async def test_more_bytes_than_announced(tracker: TrackerServer) -> None:
    def respond(peer: ScriptedPeer, request: wire.SegmentRequest) -> None:
        data = peer.data_for(request)
        assert data is not None
        peer.send_data(request, data + b"\x00" * 5000, size=len(data))

    async with session(tracker, respond) as s:
        report, got = await play_and_wait(s, lambda: s.misbehaved(), "misbehaviour reported")
        assert_played_well(s, report, got)
        assert any("more bytes" in r for r in s.misbehaved()), s.misbehaved()
        assert not s.connected()


# ------------------------------------------------------------- lies about holdings, silence, slowness


async def test_announces_segments_it_does_not_have(tracker: TrackerServer) -> None:
    async with session(tracker, honest, segments={}) as s:  # claims all, holds none: answers "absent"
        report, got = await play_and_wait(
            s,
            lambda: any(
                isinstance(n, nt.SegmentLoadFailed) and n.peer_id == s.peer.hex_id and n.reason == "absent"
                for n in s.events
            ),
            "an absent answer",
        )
        assert_played_well(s, report, got)
        # Scored down: every segment it said "absent" for left its map, so it is not asked again.
        asked = {s.peer.sequence_of(r.segment_id) for r in s.peer.requests}
        peer = s.loader._scheduler._peers[s.peer.hex_id]
        assert asked and not {sid.sequence for sid in peer.loaded} & asked
        assert len(s.peer.requests) == len(asked)
        assert s.loader.statistics().p2p_segments == 0


async def test_never_answers(tracker: TrackerServer) -> None:
    async with session(tracker, silent) as s:
        report, got = await play_and_wait(s, lambda: s.misbehaved(), "timeout reported", seconds=5.0)
        assert_played_well(s, report, got)
        assert any("no answer" in r for r in s.misbehaved()), s.misbehaved()
        assert not s.connected()


async def test_trickles_bytes(tracker: TrackerServer) -> None:
    async def trickle(peer: ScriptedPeer, request: wire.SegmentRequest) -> None:
        data = peer.data_for(request)
        assert data is not None
        peer.send_header(request, len(data))
        for offset in range(0, len(data), 1000):
            if peer.cancelled(request):
                return  # slow but honest: a cancelled request's bytes stop (else they would land
                # in the next request's bytes, which no wire frame tells apart, and be wrong there)
            peer.send_raw(data[offset : offset + 1000])
            await asyncio.sleep(2.5)  # longer than p2p_stall_timeout (2 s) between bytes

    async with session(tracker, trickle) as s:

        def stalled() -> bool:
            return any(
                isinstance(n, nt.SegmentLoadFailed)
                and n.peer_id == s.peer.hex_id
                and n.reason == "peer stopped sending"
                for n in s.events
            )

        report, got = await play_and_wait(s, stalled, "the stall noticed", seconds=5.0)
        assert_played_well(s, report, got)
        # Scored down: the stalled segment left its map; it stays connected (it may just be slow).
        stalled_seq = s.peer.sequence_of(s.peer.requests[0].segment_id)
        assert stalled_seq not in {sid.sequence for sid in s.loader._scheduler._peers[s.peer.hex_id].loaded}


# --------------------------------------------------------------------------- malformed traffic


@pytest.mark.parametrize(
    "garbage",
    [
        pytest.param(b"\x47" * 1000, id="data-without-header"),
    ],
)
async def test_garbage_frames(tracker: TrackerServer, garbage: bytes) -> None:
    async with session(tracker) as s:
        s.peer.send_raw(garbage)
        await wait_until(lambda: s.misbehaved(), what="misbehaviour reported")
        await wait_until(lambda: not s.connected(), what="disconnected")
        report, got = await watch(s, 3.0)
        assert_played_well(s, report, got)


@pytest.mark.parametrize("kind", ["announcements"])
async def test_floods(tracker: TrackerServer, kind: str) -> None:
    async with session(tracker) as s:
        for index in range(2000):
            if kind == "announcements":
                s.peer.announce_sequences([index % 10, (index + 1) % 10])
            else:
                # Each for another segment: asking again for one answered "absent" is a flood of
                # its own (the upload desk's), caught sooner; this is the command-rate guard.
                s.peer.send(wire.SegmentRequest(segment_id=s.peer.wire_id(index), request_id=index))
            if index % 100 == 0:
                await asyncio.sleep(0)
        await wait_until(lambda: s.misbehaved(), what="flood reported")
        assert "flooded us with commands" in s.misbehaved()
        await wait_until(lambda: not s.connected(), what="disconnected")
        report, got = await watch(s, 3.0)
        assert_played_well(s, report, got)


# --------------------------------------------------------------------------- other swarms, departures


async def test_requests_for_segments_of_another_swarm_are_absent(tracker: TrackerServer) -> None:
    async with session(tracker, announce=False) as s:
        report, got = await watch(s, 3.0)  # rendition v1's segments get cached
        assert_played_well(s, report, got)
        cached_v1 = {sid.sequence for sid in s.loader._scheduler.cache if sid.rendition == "v1"}
        assert cached_v1
        await s.loader.select_rendition("v0")  # another swarm; the v1 segments stay cached
        asker = ScriptedPeer(s.loader, {})
        await asker.connect()
        try:
            for request_id, sequence in enumerate(sorted(cached_v1)):
                asker.send(wire.SegmentRequest(segment_id=asker.wire_id(sequence), request_id=request_id))
            await wait_until(
                lambda: sum(isinstance(i, wire.SegmentAbsent) for i in asker.received) == len(cached_v1),
                what="absent answers",
            )
            assert not any(isinstance(i, wire.DataChunk | wire.SegmentData) for i in asker.received)
        finally:
            await asker.close()


async def test_disconnects_mid_transfer(tracker: TrackerServer) -> None:
    async def leave(peer: ScriptedPeer, request: wire.SegmentRequest) -> None:
        data = peer.data_for(request)
        assert data is not None
        peer.send_header(request, len(data))
        peer.send_raw(data[: len(data) // 2])
        await asyncio.sleep(0.2)
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
        assert_played_well(s, report, got)
        assert not s.connected()


async def test_repeated_protocol_violations_get_a_peer_banned(tracker: TrackerServer) -> None:
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
        # Nor does its answer to one of our offers (the other way a tracker brings peers together).
        manager = s.loader._peers
        assert manager is not None
        (offer,) = await manager.make_offers(1)
        pc = same_certificate(s.peer)
        try:
            await set_remote(pc, offer.sdp, "offer")
            await pc.setLocalDescription(await pc.createAnswer())
            await manager.on_answer(peer_id, offer.offer_id, pc.localDescription.sdp)
            assert peer_id.hex() not in manager._peers and manager.statistics().pending_offers == 0
        finally:
            await pc.close()


# --------------------------------------------------------------------------- controls and the validator hook


async def test_without_integrity_checks_a_liar_gets_through(tracker: TrackerServer) -> None:
    """The control: this is the attack the checks stop (P2P Media Loader has no defence by default)."""
    async with session(tracker, liar) as s:
        await watch(s, 3.0)
        assert s.loader.statistics().p2p_segments >= 1
        cached = [s.loader._scheduler.cache.get(sid, now=0.0) for sid in list(s.loader._scheduler.cache)]
        assert any(e is not None and e.data != WANT[e.segment.id.sequence] for e in cached)


async def test_the_segment_validator_runs_before_a_p2p_segment_is_accepted(
    tracker: TrackerServer, hashed_root: Path
) -> None:
    calls: list[tuple[int, str, str | None, int]] = []
    events: list[nt.Notification] = []

    def validator(segment: Any, data: bytes, method: str, peer_id: str | None) -> bool:
        # Record how many notifications the application had seen: none may announce this segment yet.
        calls.append((segment.id.sequence, method, peer_id, len(events)))
        return data == WANT[segment.id.sequence]

    async with session(
        tracker, honest, root=hashed_root, integrity_sha256=True, segment_validator=validator
    ) as s:
        s.loader.add_listener(events.append)
        report, got = await play_and_wait(s, lambda: s.loader.statistics().p2p_segments >= 2, "P2P segments")
        assert_played_well(s, report, got)
    p2p_calls = [c for c in calls if c[1] == "p2p"]
    assert p2p_calls and all(peer == s.peer.hex_id for _, _, peer, _ in p2p_calls)
    for sequence, _, _, seen in p2p_calls:
        loaded_at = next(
            i
            for i, n in enumerate(events)
            if isinstance(n, nt.SegmentLoaded) and n.source == "p2p" and n.segment_id.sequence == sequence
        )
        assert loaded_at >= seen  # stored only after the validator was asked
    assert s.loader.integrity_statistics().sha256_checks >= 2  # both ran: integrity, then the application's


async def test_a_rejecting_segment_validator_drops_the_peer(tracker: TrackerServer) -> None:
    def validator(segment: Any, data: bytes, method: str, peer_id: str | None) -> bool:
        return method == "http"

    async with session(tracker, honest, segment_validator=validator) as s:
        report, got = await play_and_wait(s, lambda: s.misbehaved(), "rejection reported")
        assert_played_well(s, report, got)
        assert s.misbehaved() == ["segment validator rejected the bytes"]
        assert s.loader.statistics().p2p_segments == 0


# --------------------------------------------------------------------------- what a peer may cost us


def stop_acknowledging(peer: ScriptedPeer) -> None:
    """From now on the peer's SCTP stack drops every DATA chunk it receives: nothing is delivered and
    nothing acknowledged (no SACK), as a receiver that stops reading does. Its own sending, and the
    association's heartbeats, go on, so the connection stays up."""
    assert peer.pc is not None and peer.pc.sctp is not None

    async def drop(chunk: object) -> None:
        return None

    peer.pc.sctp._receive_data_chunk = drop  # type: ignore[method-assign]


def cache_everything(loader: HybridLoader) -> None:
    """The seeder holds every segment of the rendition (as after watching it)."""
    now = asyncio.get_running_loop().time()
    for segment in loader.playlist.segments:
        loader._scheduler.cache.put(segment, WANT[segment.id.sequence], now=now)


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
        cache_everything(s.loader)
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


async def test_a_small_request_flood_is_bounded_by_the_upload_budget(tracker: TrackerServer) -> None:
    """17-byte requests at 90/s (under the command-rate guard) for cached segments, reading all it
    gets: a budget of 20 media seconds plus 1 per second bounds what it takes, requests beyond it
    are answered "absent", and asking again for those is a strike."""
    async with session(
        tracker, announce=False, upload_budget_rate=1.0, upload_budget_burst=20.0, max_concurrent_uploads=0
    ) as s:
        cache_everything(s.loader)
        loop = asyncio.get_running_loop()
        start = loop.time()
        request_id = 0
        while loop.time() - start < 6.0 and s.connected():
            s.peer.send(
                wire.SegmentRequest(segment_id=s.peer.wire_id(request_id % len(WANT)), request_id=request_id)
            )
            request_id += 1
            await asyncio.sleep(1 / 90)
        window = loop.time() - start
        await asyncio.sleep(0.5)
        received = s.peer.data_bytes
        biggest = max(map(len, WANT))
        bound = (20.0 + 1.0 * window) / 2.0 * biggest + biggest  # 2 s segments, plus one in debt
        print(
            f"\nFIGURE request-flood requests={request_id} window={window:.1f}s received_bytes={received} "
            f"bound={bound:.0f} asked_for={request_id * sum(map(len, WANT)) // len(WANT)}"
        )
        assert 0 < received <= bound
        assert s.loader._scheduler.statistics().uploads_over_budget > 0
        assert "asked again and again for segments we answered absent" in s.misbehaved()
        await wait_until(lambda: not s.connected(), what="the flooder disconnected")


async def test_a_segment_bigger_than_the_bitrate_allows_is_refused_before_its_bytes(
    tracker: TrackerServer,
) -> None:
    """A data header announcing 100 MB for a 2 s segment of a 343 kbit/s stream: a strike and a
    disconnect at the header; none of the junk that follows is taken."""

    async def huge(peer: ScriptedPeer, request: wire.SegmentRequest) -> None:
        peer.send_header(request, 100_000_000)
        junk = b"\x00" * CHUNK_SIZE
        for _ in range(200):  # 3.2 MB of it
            peer.send_raw(junk)
            await asyncio.sleep(0)

    async with session(tracker, huge) as s:
        report, got = await play_and_wait(s, lambda: s.misbehaved(), "misbehaviour reported")
        assert_played_well(s, report, got)
        assert any("impossible size" in r and "the stream allows" in r for r in s.misbehaved()), (
            s.misbehaved()
        )
        assert s.loader.statistics().p2p_bytes == 0  # not one junk byte absorbed
        assert not s.connected()


async def test_an_announcement_bigger_than_the_playlist_is_refused_cheaply(tracker: TrackerServer) -> None:
    """20,000 ids for a playlist of a few dozen segments, 95 times a second: refused at the first,
    while it is decoded (no id set is built), with a strike and a disconnect."""
    async with session(tracker) as s:
        manager = s.loader._peers
        assert manager is not None
        state = manager._peers[s.peer.hex_id]
        spent = [0.0]
        handler = state.link._on_message

        def timed(link: Any, message: bytes) -> None:
            begin = time.process_time()
            try:
                handler(link, message)
            finally:
                spent[0] += time.process_time() - begin

        state.link._on_message = timed
        (message,) = wire.encode_command(wire.SegmentsAnnouncement(loaded=tuple(range(20_000))))
        for _ in range(190):  # two seconds of it
            if s.peer.closed.is_set():
                break
            s.peer.send_raw(message)
            await asyncio.sleep(1 / 95)
        await wait_until(lambda: s.misbehaved(), what="misbehaviour reported")
        print(
            f"\nFIGURE announcement-flood victim_cpu_s={spent[0]:.4f} for up to 190 x 20,000-id announcements"
        )
        assert any("announcement limit" in r for r in s.misbehaved()), s.misbehaved()
        assert spent[0] < 0.5
        await wait_until(lambda: not s.connected(), what="disconnected")
        report, got = await watch(s, 3.0)
        assert_played_well(s, report, got)
