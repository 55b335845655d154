"""Real peer managers connected over aiortc on 127.0.0.1 (no tracker): uploads, the rate cap,
uploads taking turns, and a peer that breaks the protocol."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from p2ploader.aio import webrtc
from p2ploader.aio.http import HttpExecutor
from p2ploader.aio.peers import PeerManager
from p2ploader.config import LoaderConfig
from p2ploader.core import actions as act
from p2ploader.core import events as ev
from p2ploader.core import notifications as nt
from p2ploader.core import wire
from p2ploader.core.admission import AdmissionLimits
from p2ploader.core.driver import Driver
from p2ploader.core.scheduler import Scheduler, _Partial
from p2ploader.core.segments import Segment, SegmentId
from p2ploader.core.upload_control import UploadController, UploadHold
from p2ploader.testing.origin import OriginServer

pytestmark = pytest.mark.anyio

SEGMENTS = tuple(
    Segment(id=SegmentId("v0", i), url=f"http://unused.invalid/{i}.ts", duration=2.0, start=2.0 * i)
    for i in range(6)
)
PAYLOAD = bytes(range(256)) * 400  # 102,400 bytes


class Side:
    def __init__(
        self,
        name: str,
        config: LoaderConfig,
        segments: tuple[Segment, ...] = SEGMENTS,
        *,
        admission: AdmissionLimits | None = None,
        upload_hold: UploadHold | None = None,
    ) -> None:
        loop = asyncio.get_running_loop()
        self.notifications: list[nt.Notification] = []
        self.scheduler = Scheduler(config, rng=random.Random(1))
        self.driver = Driver(self.scheduler, loop=loop, on_notification=self.notifications.append)
        self.peers = PeerManager(
            feed=self.driver.feed,
            rendition="v0",
            live=True,
            first_sequence=0,
            local_peer_id=name * 20,
            rtc_config={"iceServers": []},
            upload_rate_limit=config.upload_rate_limit,
            upload_stall_timeout=config.upload_stall_timeout,
            upload_control=(
                UploadController(target=config.upload_delay_target)
                if config.upload_delay_target > 0
                else None
            ),
            admission=admission,
            upload_hold=upload_hold,
        )
        self.driver.peers = self.peers
        self.driver.feed(ev.PlaylistUpdated(segments=segments))

    def loaded(self) -> list[nt.SegmentLoaded]:
        return [n for n in self.notifications if isinstance(n, nt.SegmentLoaded)]


async def connect(seeder: Side, downloader: Side) -> None:
    expected = (seeder.scheduler.statistics().peers + 1, downloader.scheduler.statistics().peers + 1)
    (offer,) = await seeder.peers.make_offers(1)
    seeder_id = bytes.fromhex(seeder.peers.local_peer_id)
    answer = await downloader.peers.on_offer(seeder_id, offer.offer_id, offer.sdp)
    assert answer is not None
    await seeder.peers.on_answer(bytes.fromhex(downloader.peers.local_peer_id), offer.offer_id, answer)
    for _ in range(200):
        if (seeder.scheduler.statistics().peers, downloader.scheduler.statistics().peers) == expected:
            return
        await asyncio.sleep(0.02)
    raise AssertionError("peers did not connect")


@pytest.fixture
async def pair(loopback: None, request: pytest.FixtureRequest) -> AsyncIterator[tuple[Side, Side]]:
    config = LoaderConfig(http_download_probability=0.0, **getattr(request, "param", {}))
    seeder, downloader = Side("a", config), Side("b", config)
    seeder.scheduler.cache.put(SEGMENTS[3], PAYLOAD, now=asyncio.get_running_loop().time())
    await connect(seeder, downloader)
    yield seeder, downloader
    await asyncio.gather(seeder.peers.aclose(), downloader.peers.aclose())
    seeder.driver.close()
    downloader.driver.close()


async def wait_until(condition: object, *, steps: int = 500) -> None:
    """Poll ``condition`` every 20 ms, at most ``steps`` times."""
    assert callable(condition)
    for _ in range(steps):
        if condition():
            return
        await asyncio.sleep(0.02)
    raise AssertionError("condition not reached")


async def test_a_segment_travels_exactly(pair: tuple[Side, Side]) -> None:
    seeder, downloader = pair
    downloader.driver.feed(ev.PlaybackMoved(position=0.0))
    downloader.driver.feed(ev.SegmentRequested(segment_id=SEGMENTS[2].id))  # 3 is prefetched from the peer
    await wait_until(lambda: any(n.segment_id == SEGMENTS[3].id for n in downloader.loaded()))
    entry = downloader.scheduler.cache.get(SEGMENTS[3].id, now=0.0)
    assert entry is not None and entry.data == PAYLOAD
    assert downloader.scheduler.statistics().p2p_bytes == len(PAYLOAD)
    assert seeder.peers.statistics().uploaded_bytes == len(PAYLOAD)


async def test_a_download_resumes_at_a_byte_offset_over_the_wire(loopback: None) -> None:
    # The bytes an earlier, interrupted attempt left (a stalled or moved download) are kept: the
    # request carries the protocol's byte offset, and the peer sends only the rest.
    config = LoaderConfig(http_download_probability=0.0)
    seeder, downloader = Side("a", config), Side("b", config)
    seeder.scheduler.cache.put(SEGMENTS[3], PAYLOAD, now=asyncio.get_running_loop().time())
    downloader.driver.feed(ev.PlaybackMoved(position=0.0))
    downloader.driver.feed(ev.SegmentRequested(segment_id=SEGMENTS[2].id))  # 3 is queued, no peer yet
    held = 40_000
    # The interrupted attempt (its bytes, with no peer to blame for them).
    downloader.scheduler._stalled_bytes[SEGMENTS[3].id] = _Partial(data=PAYLOAD[:held])
    try:
        await connect(seeder, downloader)
        await wait_until(lambda: any(n.segment_id == SEGMENTS[3].id for n in downloader.loaded()))
        entry = downloader.scheduler.cache.get(SEGMENTS[3].id, now=0.0)
        assert entry is not None and entry.data == PAYLOAD
        assert downloader.scheduler.statistics().p2p_bytes == len(PAYLOAD) - held
        assert seeder.peers.statistics().uploaded_bytes == len(PAYLOAD) - held
    finally:
        await asyncio.gather(seeder.peers.aclose(), downloader.peers.aclose())
        seeder.driver.close()
        downloader.driver.close()


@pytest.mark.parametrize("pair", [{"upload_rate_limit": 200_000.0}], indirect=True)
async def test_upload_rate_limit_paces_uploads(pair: tuple[Side, Side]) -> None:
    _, downloader = pair
    loop = asyncio.get_running_loop()
    started = loop.time()
    downloader.driver.feed(ev.PlaybackMoved(position=0.0))
    downloader.driver.feed(ev.SegmentRequested(segment_id=SEGMENTS[2].id))
    await wait_until(lambda: any(n.segment_id == SEGMENTS[3].id for n in downloader.loaded()))
    # 102,400 bytes at 200,000 B/s cannot arrive in less than about half a second.
    assert loop.time() - started >= 0.9 * len(PAYLOAD) / 200_000


async def test_uploads_to_different_peers_take_turns_first_come_first_served(loopback: None) -> None:
    # Two viewers ask one seeder for the same segment at once. The seeder sends one upload whole
    # before it starts the other (first come, first served, as the simulator models it), so the
    # first finishes in half the time sharing would take.
    config = LoaderConfig(http_download_probability=0.0, upload_rate_limit=200_000.0)
    seeder, first, second = Side("a", config), Side("b", config), Side("c", config)
    seeder.scheduler.cache.put(SEGMENTS[3], PAYLOAD, now=asyncio.get_running_loop().time())
    log: list[tuple[str, str]] = []
    try:
        await connect(seeder, first)
        await connect(seeder, second)
        manager = seeder.peers
        feed = manager._feed

        def record_feed(event: ev.Event) -> None:
            if isinstance(event, ev.PeerRequestedSegment):
                log.append(("request", event.peer_id))
            feed(event)

        def record_sends(link: Any) -> None:
            send, decoder = link.send, wire.WireDecoder()

            def record_send(message: bytes) -> bool:
                for item in decoder.receive(message):
                    if isinstance(item, wire.SegmentData | wire.SegmentDataSendingCompleted):
                        log.append((type(item).__name__, link.peer_id))
                return bool(send(message))

            link.send = record_send

        manager._feed = record_feed  # type: ignore[method-assign]
        for state in manager._peers.values():
            record_sends(state.link)
        for viewer in (first, second):
            viewer.driver.feed(ev.PlaybackMoved(position=0.0))
            viewer.driver.feed(ev.SegmentRequested(segment_id=SEGMENTS[2].id))  # 3 from the seeder
        for viewer in (first, second):
            await wait_until(lambda v=viewer: any(n.segment_id == SEGMENTS[3].id for n in v.loaded()))  # type: ignore[misc]
            entry = viewer.scheduler.cache.get(SEGMENTS[3].id, now=0.0)
            assert entry is not None and entry.data == PAYLOAD

        served = [peer for kind, peer in log if kind == "SegmentData"]
        assert len(served) == 2 and set(served) == {first.peers.local_peer_id, second.peers.local_peer_id}
        done_first = log.index(("SegmentDataSendingCompleted", served[0]))
        # Both requests were waiting before the first upload ended: the turn-taking was exercised.
        assert sum(kind == "request" for kind, _ in log[:done_first]) == 2
        assert log.index(("SegmentData", served[1])) > done_first, "the second waited for its turn"
    finally:
        await asyncio.gather(seeder.peers.aclose(), first.peers.aclose(), second.peers.aclose())
        for side in (seeder, first, second):
            side.driver.close()


async def test_a_peer_sending_data_without_a_header_is_disconnected(pair: tuple[Side, Side]) -> None:
    seeder, downloader = pair
    # The seeder misbehaves by hand: raw segment bytes that no request asked for.
    state = next(iter(seeder.peers._peers.values()))
    assert not wire.is_command_chunk(b"\x47" * 1000)
    assert state.link.send(b"\x47" * 1000)
    await wait_until(lambda: downloader.scheduler.statistics().peers == 0)
    assert downloader.peers.statistics().protocol_errors == 1
    await wait_until(lambda: seeder.scheduler.statistics().peers == 0)  # the link is closed on both ends


async def test_a_receiver_that_stops_acknowledging_loses_its_upload_and_the_link(loopback: None) -> None:
    # The downloader's SCTP stack drops every DATA chunk from now on (no delivery, no SACK): the
    # seeder's queue fills past the backpressure threshold and stops draining. After
    # upload_stall_timeout the upload ends (its uplink turn and upload slot are free again) and the
    # peer is disconnected as a violation.
    config = LoaderConfig(http_download_probability=0.0, upload_stall_timeout=1.0)
    seeder, downloader = Side("a", config), Side("b", config)
    big = PAYLOAD * 30  # 3 MB: more than the 1 MiB threshold
    seeder.scheduler.cache.put(SEGMENTS[3], big, now=asyncio.get_running_loop().time())
    try:
        await connect(seeder, downloader)
        state = downloader.peers._peers[seeder.peers.local_peer_id]
        sctp = state.link.pc.sctp
        assert sctp is not None

        async def drop(chunk: object) -> None:
            return None

        sctp._receive_data_chunk = drop
        loop = asyncio.get_running_loop()
        asked = loop.time()
        for message in wire.encode_command(wire.SegmentRequest(segment_id=3, request_id=1)):
            assert state.link.send(message)
        await wait_until(lambda: seeder.peers.statistics().protocol_errors == 1)
        assert loop.time() - asked >= 1.0
        assert seeder.scheduler._upload_desk.active == 0  # the slot is free
        assert not seeder.peers._uplink_turn.locked()  # and the turn
        await wait_until(lambda: seeder.scheduler.statistics().peers == 0)
    finally:
        await asyncio.gather(seeder.peers.aclose(), downloader.peers.aclose())
        seeder.driver.close()
        downloader.driver.close()


async def test_a_slow_receiver_keeps_its_upload(loopback: None, monkeypatch: pytest.MonkeyPatch) -> None:
    # The other side of the stall rule: a receiver that takes bytes slowly (its SCTP stack spends
    # 5 ms on every DATA chunk, about 200 KB/s) keeps shrinking the queue, so its upload goes on
    # to the end however long it waits for the queue to drain. A smaller backpressure threshold
    # (128 KiB) keeps the transfer short.
    monkeypatch.setattr(webrtc, "BUFFERED_AMOUNT_LOW_THRESHOLD", 128 * 1024)
    config = LoaderConfig(http_download_probability=0.0, upload_stall_timeout=1.5)
    seeder, downloader = Side("a", config), Side("b", config)
    payload = PAYLOAD * 6  # 614,400 bytes: several times the threshold
    seeder.scheduler.cache.put(SEGMENTS[3], payload, now=asyncio.get_running_loop().time())
    try:
        await connect(seeder, downloader)
        state = downloader.peers._peers[seeder.peers.local_peer_id]
        sctp = state.link.pc.sctp
        assert sctp is not None
        receive = sctp._receive_data_chunk

        async def slowly(chunk: Any) -> None:
            await asyncio.sleep(0.005)
            await receive(chunk)

        sctp._receive_data_chunk = slowly
        downloader.driver.feed(ev.PlaybackMoved(position=0.0))
        downloader.driver.feed(ev.SegmentRequested(segment_id=SEGMENTS[2].id))  # 3 from the seeder
        await wait_until(lambda: any(n.segment_id == SEGMENTS[3].id for n in downloader.loaded()), steps=1500)
        entry = downloader.scheduler.cache.get(SEGMENTS[3].id, now=0.0)
        assert entry is not None and entry.data == payload
        assert seeder.peers.statistics().protocol_errors == 0
    finally:
        await asyncio.gather(seeder.peers.aclose(), downloader.peers.aclose())
        seeder.driver.close()
        downloader.driver.close()


async def test_announcements_are_bounded_by_the_playlist_window(pair: tuple[Side, Side]) -> None:
    seeder, downloader = pair
    many = tuple(SegmentId("v0", i) for i in range(400))
    # Ours are trimmed to what a peer accepts (the newest kept): 2 x 6 + 256 = 268 ids.
    seeder.peers.set_playlist_window(len(SEGMENTS))
    downloader.peers.set_playlist_window(len(SEGMENTS))
    seeder.peers.perform(act.AnnounceSegments(loaded=many, loading_by_http=()))
    peer = downloader.scheduler._peers
    await wait_until(lambda: len(peer[seeder.peers.local_peer_id].loaded) == 268)
    assert max(s.sequence for s in peer[seeder.peers.local_peer_id].loaded) == 399
    # A longer one is refused while it is decoded: a violation, the link goes.
    seeder.peers.set_playlist_window(1000)
    seeder.peers.perform(act.AnnounceSegments(loaded=many, loading_by_http=()))
    await wait_until(lambda: downloader.peers.statistics().protocol_errors == 1)
    await wait_until(lambda: downloader.scheduler.statistics().peers == 0)


class _HandFedHttp:
    """An HTTP executor the test drives: it records the fetches; the test feeds their bytes."""

    def __init__(self) -> None:
        self.started: list[act.StartHttpFetch] = []

    def start(self, action: act.StartHttpFetch) -> None:
        self.started.append(action)

    def abort(self, request_id: int) -> None:
        pass


async def _relay_setup(loopback: None) -> tuple[Side, Side, int]:
    """The seeder fetches segment 3 over HTTP (hand-fed, response started, 40,000 bytes in); the
    downloader asks it for segment 3 (as the live policy does of a peer loading it over HTTP)."""
    config = LoaderConfig(http_download_probability=0.0)
    seeder, downloader = Side("a", config), Side("b", config)
    http = _HandFedHttp()
    seeder.driver.http = http
    seeder.driver.feed(ev.PlaybackMoved(position=SEGMENTS[3].start))
    seeder.driver.feed(ev.SegmentRequested(segment_id=SEGMENTS[3].id))
    rid = next(a.request_id for a in http.started if a.segment.id == SEGMENTS[3].id)
    seeder.driver.feed(ev.HttpResponseStarted(request_id=rid, offset=0, total_bytes=len(PAYLOAD)))
    seeder.driver.feed(ev.HttpChunkReceived(request_id=rid, data=PAYLOAD[:40_000]))
    await connect(seeder, downloader)
    downloader.driver.http = _HandFedHttp()
    downloader.driver.feed(ev.PlaybackMoved(position=0.0))
    downloader.driver.feed(ev.SegmentRequested(segment_id=SEGMENTS[2].id))  # 3 is queued too
    now = asyncio.get_running_loop().time()
    downloader.scheduler._context.start_p2p(SEGMENTS[3].id, seeder.peers.local_peer_id, now=now)
    downloader.driver.feed(ev.PlaybackMoved(position=0.0))  # performs the request
    await wait_until(lambda: downloader.scheduler.statistics().p2p_bytes == 40_000)
    return seeder, downloader, rid


async def test_a_segment_still_arriving_over_http_is_relayed_as_it_comes(loopback: None) -> None:
    seeder, downloader, rid = await _relay_setup(loopback)
    try:
        assert not downloader.loaded()  # 40,000 bytes of 102,400: the upload waits for the rest
        seeder.driver.feed(ev.HttpChunkReceived(request_id=rid, data=PAYLOAD[40_000:90_000]))
        await wait_until(lambda: downloader.scheduler.statistics().p2p_bytes == 90_000)
        seeder.driver.feed(ev.HttpChunkReceived(request_id=rid, data=PAYLOAD[90_000:]))
        seeder.driver.feed(ev.HttpFetchCompleted(request_id=rid))
        await wait_until(lambda: any(n.segment_id == SEGMENTS[3].id for n in downloader.loaded()))
        entry = downloader.scheduler.cache.get(SEGMENTS[3].id, now=0.0)
        assert entry is not None and entry.data == PAYLOAD
        assert seeder.peers.statistics().uploaded_bytes == len(PAYLOAD)
        assert seeder.peers.statistics().uploads == 1 and downloader.peers.statistics().protocol_errors == 0
    finally:
        await asyncio.gather(seeder.peers.aclose(), downloader.peers.aclose())
        seeder.driver.close()
        downloader.driver.close()


async def test_a_relay_whose_http_download_fails_ends_with_absent_and_keeps_the_peer(loopback: None) -> None:
    seeder, downloader, rid = await _relay_setup(loopback)
    try:
        seeder.driver.feed(ev.HttpFetchFailed(request_id=rid, reason="HTTP 503", status=503))
        await wait_until(lambda: not downloader.scheduler.p2p_loading())
        failed = [n for n in downloader.notifications if isinstance(n, nt.SegmentLoadFailed)]
        assert [n.reason for n in failed] == ["absent"]
        assert downloader.peers.statistics().protocol_errors == 0
        assert downloader.scheduler.statistics().peers == 1  # still connected
        # The 40,000 bytes stay for the next source (here: asked of the same peer once it has it).
        assert downloader.scheduler._stalled_bytes[SEGMENTS[3].id].data == PAYLOAD[:40_000]
    finally:
        await asyncio.gather(seeder.peers.aclose(), downloader.peers.aclose())
        seeder.driver.close()
        downloader.driver.close()


async def test_a_relay_follows_a_real_origin_that_answers_late_and_breaks_off(
    loopback: None, tmp_path: Path
) -> None:
    # The seeder's fetch of segment 3 from the real origin waits 1 s for its answer, then the
    # connection breaks after 30,000 bytes and the HTTP executor asks for the rest with Range. The
    # downloader's request arrives during the wait: it is held until the response tells the size,
    # then served as the bytes come, across the retry, and the segment arrives exactly.
    for i in range(6):
        (tmp_path / f"s{i}.ts").write_bytes(PAYLOAD)
    config = LoaderConfig(http_download_probability=0.0, http_retry_backoff=0.2)
    with OriginServer(tmp_path) as origin:
        segments = tuple(
            Segment(id=SegmentId("v0", i), url=origin.url_for(f"s{i}.ts"), duration=2.0, start=2.0 * i)
            for i in range(6)
        )
        seeder, downloader = Side("a", config, segments), Side("b", config, segments)
        downloader_http = _HandFedHttp()
        downloader.driver.http = downloader_http
        async with httpx.AsyncClient() as client:
            seeder.driver.http = HttpExecutor(
                client, seeder.driver.feed, retry_policy=seeder.scheduler.fetch_retry_policy
            )
            try:
                await connect(seeder, downloader)
                origin.inject("s3.ts", delay=1.0, truncate_to=30_000, times=1)
                seeder.driver.feed(ev.PlaybackMoved(position=segments[3].start))
                seeder.driver.feed(ev.SegmentRequested(segment_id=segments[3].id))
                downloader.driver.feed(ev.PlaybackMoved(position=0.0))
                downloader.driver.feed(ev.SegmentRequested(segment_id=segments[2].id))
                now = asyncio.get_running_loop().time()
                downloader.scheduler._context.start_p2p(segments[3].id, seeder.peers.local_peer_id, now=now)
                downloader.driver.feed(ev.PlaybackMoved(position=0.0))  # performs the request
                await wait_until(lambda: any(n.segment_id == segments[3].id for n in downloader.loaded()))
                entry = downloader.scheduler.cache.get(segments[3].id, now=0.0)
                assert entry is not None and entry.data == PAYLOAD
                assert [n.source for n in downloader.loaded() if n.segment_id == segments[3].id] == ["p2p"]
                assert all(f.segment.id != segments[3].id for f in downloader_http.started)
                # Our one request was answered (not "absent", then asked again once the seeder had it).
                assert downloader.scheduler.statistics().p2p_failures == 0
                stats = origin.statistics()
                assert stats.requests_for("/s3.ts") == 2  # the cut-off answer and the rest
            finally:
                await asyncio.gather(seeder.peers.aclose(), downloader.peers.aclose())
                seeder.driver.close()
                downloader.driver.close()


class _SlowGatheringConnection:
    """A stand-in for RTCPeerConnection whose ICE gathering (``setLocalDescription``) waits until
    released, as aioice's does for a STUN server that never answers (up to 5 s)."""

    in_flight = 0
    most_in_flight = 0

    def __init__(self, release: asyncio.Event) -> None:
        self._release = release
        self.localDescription: Any = None
        self.closed = False

    def createDataChannel(self, label: str) -> object:
        return object()

    async def createOffer(self) -> str:
        return "v=0"

    async def setLocalDescription(self, sdp: str) -> None:
        cls = type(self)
        cls.in_flight += 1
        cls.most_in_flight = max(cls.most_in_flight, cls.in_flight)
        await self._release.wait()
        cls.in_flight -= 1
        self.localDescription = type("Description", (), {"sdp": sdp})()

    async def close(self) -> None:
        self.closed = True


async def test_offers_are_gathered_side_by_side(monkeypatch: pytest.MonkeyPatch) -> None:
    # With defaults on a network that drops STUN, each gathering waits up to 5 s: one after another,
    # an announce's 10 offers took about 50 s.
    release = asyncio.Event()
    made: list[_SlowGatheringConnection] = []

    def create(rtc_config: Any) -> _SlowGatheringConnection:
        made.append(_SlowGatheringConnection(release))
        return made[-1]

    monkeypatch.setattr("p2ploader.aio.peers.create_connection", create)
    config = LoaderConfig()
    scheduler = Scheduler(config, rng=random.Random(1))
    driver = Driver(scheduler, loop=asyncio.get_running_loop(), on_notification=lambda n: None)
    manager = PeerManager(
        feed=driver.feed,
        rendition="v0",
        live=True,
        first_sequence=0,
        local_peer_id="c" * 20,
        rtc_config=config.rtc_config,
    )
    task = asyncio.ensure_future(manager.make_offers(config.peer_requests_per_announce))
    for _ in range(100):
        if _SlowGatheringConnection.in_flight == config.peer_requests_per_announce:
            break
        await asyncio.sleep(0)
    assert _SlowGatheringConnection.most_in_flight == config.peer_requests_per_announce
    release.set()
    offers = await task
    assert len(offers) == config.peer_requests_per_announce
    assert len({o.offer_id for o in offers}) == len(offers)


# ------------------------------------------------------------------ delay-based upload control


@pytest.mark.parametrize("pair", [{"upload_rate_limit": 200_000.0}], indirect=True)
async def test_the_upload_controller_samples_the_uploading_links_round_trip(pair: tuple[Side, Side]) -> None:
    """With the default ``upload_delay_target`` the SCTP round trip of the link we upload on is
    read while the upload runs (the rate cap makes it last about half a second); loopback has no
    queue, so no limit comes of it."""
    seeder, downloader = pair
    assert LoaderConfig().upload_delay_target > 0
    downloader.driver.feed(ev.PlaybackMoved(position=0.0))
    downloader.driver.feed(ev.SegmentRequested(segment_id=SEGMENTS[2].id))
    await wait_until(lambda: any(n.segment_id == SEGMENTS[3].id for n in downloader.loaded()))
    control = seeder.peers.statistics().upload_control
    assert control is not None
    assert control.samples >= 2 and control.rejected_samples == 0
    assert control.queuing_delay is not None and control.queuing_delay < 0.05
    (state,) = seeder.peers._peers.values()
    assert state.link.round_trip_time is not None and 0 < state.link.round_trip_time < 1.0
    assert state.link.buffered_low_threshold == 65536  # a cut acts within one message


@pytest.mark.parametrize("pair", [{"upload_delay_target": 0.0}], indirect=True)
async def test_the_upload_controller_is_off_at_zero(pair: tuple[Side, Side]) -> None:
    seeder, downloader = pair
    downloader.driver.feed(ev.PlaybackMoved(position=0.0))
    downloader.driver.feed(ev.SegmentRequested(segment_id=SEGMENTS[2].id))
    await wait_until(lambda: any(n.segment_id == SEGMENTS[3].id for n in downloader.loaded()))
    assert seeder.peers.statistics().upload_control is None
    (state,) = seeder.peers._peers.values()
    assert state.link.buffered_low_threshold == webrtc.BUFFERED_AMOUNT_LOW_THRESHOLD


async def test_a_limited_rate_paces_uploads_in_small_messages(pair: tuple[Side, Side]) -> None:
    """Once the controller limits the rate (here: a queue seen on another link cut it to its
    floor, 16 kB/s), an upload is paced at that rate, which then grows back additively while the
    link's own round trips show no queue, and its data messages are cut small (half the delay
    target's worth of bytes at the rate), not 64 kB at once."""
    seeder, downloader = pair
    control = seeder.peers._upload_control
    assert control is not None
    loop = asyncio.get_running_loop()
    for rtt in [0.01, 0.5, 0.5, 0.5, 0.5]:
        control.observe("elsewhere", rtt, now=loop.time())
    assert control.rate == control.floor
    sizes: list[int] = []
    (state,) = seeder.peers._peers.values()
    send, decoder = state.link.send, wire.WireDecoder()

    def record_send(message: bytes) -> bool:
        if not any(isinstance(item, wire.Command) for item in decoder.receive(message)):
            sizes.append(len(message))
        return bool(send(message))

    state.link.send = record_send  # type: ignore[method-assign]
    started = loop.time()
    downloader.driver.feed(ev.PlaybackMoved(position=0.0))
    downloader.driver.feed(ev.SegmentRequested(segment_id=SEGMENTS[2].id))
    await wait_until(lambda: any(n.segment_id == SEGMENTS[3].id for n in downloader.loaded()))
    entry = downloader.scheduler.cache.get(SEGMENTS[3].id, now=0.0)
    assert entry is not None and entry.data == PAYLOAD
    # 102,400 bytes from 16 kB/s growing by at most 50 kB/s per second: at least about 1.7 s
    # (unpaced, loopback takes a few tens of milliseconds).
    assert loop.time() - started >= 1.5
    assert sum(sizes) == len(PAYLOAD)
    assert sizes[0] == 1024 and max(sizes) <= 8192
    statistics = control.statistics()
    assert statistics.samples > 5 and statistics.rate is not None and statistics.rate > control.floor


class _FakeSctp:
    pass


class _FakePc:
    def __init__(self, sctp: object) -> None:
        self.sctp = sctp

    def on(self, *_: object) -> None:
        pass


@pytest.mark.parametrize(
    ("srtt", "read"), [(0.25, 0.25), (1, 1.0), (None, None), ("0.2", None), (True, None)]
)
def test_the_round_trip_is_read_from_aiortc_with_a_fallback(srtt: object, read: float | None) -> None:
    sctp = _FakeSctp()
    if srtt is not None:
        sctp._srtt = srtt  # type: ignore[attr-defined]
    link = webrtc.PeerLink(
        _FakePc(sctp),  # type: ignore[arg-type]
        peer_id="p",
        initiator=True,
        on_open=lambda _: None,
        on_message=lambda *_: None,
        on_closed=lambda _: None,
    )
    assert link.round_trip_time == read
    no_sctp = webrtc.PeerLink(
        _FakePc(None),  # type: ignore[arg-type]
        peer_id="p",
        initiator=True,
        on_open=lambda _: None,
        on_message=lambda *_: None,
        on_closed=lambda _: None,
    )
    assert no_sctp.round_trip_time is None
