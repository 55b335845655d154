"""Real peer managers connected over aiortc on 127.0.0.1 (no tracker): uploads, the rate cap,
uploads taking turns, and a peer that breaks the protocol."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator
from typing import Any

import pytest

from p2ploader.aio.driver import Driver
from p2ploader.aio.peers import PeerManager
from p2ploader.config import LoaderConfig
from p2ploader.core import events as ev
from p2ploader.core import notifications as nt
from p2ploader.core import wire
from p2ploader.core.scheduler import Scheduler
from p2ploader.core.segments import Segment, SegmentId

pytestmark = pytest.mark.anyio

SEGMENTS = tuple(
    Segment(id=SegmentId("v0", i), url=f"http://unused.invalid/{i}.ts", duration=2.0, start=2.0 * i)
    for i in range(6)
)
PAYLOAD = bytes(range(256)) * 400  # 102,400 bytes


class Side:
    def __init__(self, name: str, config: LoaderConfig) -> None:
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
        )
        self.driver.peers = self.peers
        self.driver.feed(ev.PlaylistUpdated(segments=SEGMENTS))

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
    downloader.scheduler._stalled_bytes[SEGMENTS[3].id] = PAYLOAD[:held]  # the interrupted attempt
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
        feed, send_command = manager._feed, manager._send_command

        def record_feed(event: ev.Event) -> None:
            if isinstance(event, ev.PeerRequestedSegment):
                log.append(("request", event.peer_id))
            feed(event)

        def record_command(state: Any, command: wire.Command) -> None:
            if isinstance(command, wire.SegmentData | wire.SegmentDataSendingCompleted):
                log.append((type(command).__name__, state.link.peer_id))
            send_command(state, command)

        manager._feed = record_feed  # type: ignore[method-assign]
        manager._send_command = record_command  # type: ignore[method-assign]
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
