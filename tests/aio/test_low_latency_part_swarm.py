"""A LowLatencyStream with a parts swarm, alone (no tracker, no peer), against the minimal LL-HLS
origin of test_low_latency_http: parts go through the swarm's scheduler (over HTTP, nobody else
has them) once the player has its first item, a part the swarm gives up comes over HTTP anyway,
and P2P stays off unless asked for."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from p2ploader import LoaderConfig, open_loader
from p2ploader.aio.low_latency import LowLatencyStream
from p2ploader.aio.part_swarm import PartSwarm
from p2ploader.core.ll_follower import LowLatencyItem
from p2ploader.core.segments import Segment
from p2ploader.errors import SegmentUnavailableError
from tests.aio.test_low_latency_http import LowLatencyOrigin, part_bytes

pytestmark = pytest.mark.anyio


def swarm_for(client: httpx.AsyncClient, cls: type[PartSwarm] = PartSwarm) -> PartSwarm:
    return cls(client=client, config=LoaderConfig(), info_hash=b"x" * 20, rendition="v0", seed=1)


async def follow(stream: LowLatencyStream, joined_then: list[bool]) -> list[LowLatencyItem]:
    items = []
    async with asyncio.timeout(20):
        async for item in stream.items():
            assert stream.part_swarm is not None
            joined_then.append(stream.part_swarm.joined)
            items.append(item)
    return items


async def test_parts_go_through_the_swarm_once_the_player_has_its_first_item() -> None:
    async with LowLatencyOrigin(live_segments=2) as origin, httpx.AsyncClient(timeout=10.0) as client:
        swarm = swarm_for(client)
        joined: list[bool] = []
        async with LowLatencyStream(origin.url, client=client, part_swarm=swarm) as stream:
            items = await follow(stream, joined)
            stats = swarm.statistics()
    # Not joined while the player waits for its first item (WebRTC set-up would compete with it).
    assert joined[0] is False and all(joined[2:])
    for item in items:  # every byte the origin's, in order
        assert item.part is not None
        assert item.data == part_bytes(item.segment_id.sequence, item.part.id.index)
    assert [i.start for i in items] == sorted(i.start for i in items)
    # Alone: the swarm took the parts over HTTP (held preload hints included), none from peers.
    assert stats.http_parts >= 4 and stats.p2p_parts == 0 and stats.p2p_bytes == 0
    assert stream.statistics.p2p_bytes == 0 and stream.statistics.swarm_fallbacks == 0


class GivingUp(PartSwarm):
    """A parts swarm whose scheduler gives every part up (as it does for one out of the window)."""

    async def fetch(self, segment: Segment, *, max_attempts: int = 3) -> tuple[bytes, str]:  # type: ignore[override]
        raise SegmentUnavailableError(str(segment.id), "given up")


async def test_a_part_the_swarm_gives_up_comes_over_http() -> None:
    async with LowLatencyOrigin(live_segments=2) as origin, httpx.AsyncClient(timeout=10.0) as client:
        joined: list[bool] = []
        async with LowLatencyStream(
            origin.url, client=client, part_swarm=swarm_for(client, GivingUp)
        ) as stream:
            items = await follow(stream, joined)
    assert stream.statistics.swarm_fallbacks >= 4
    for item in items:
        assert item.part is not None
        assert item.data == part_bytes(item.segment_id.sequence, item.part.id.index)


async def test_p2p_is_off_by_default_and_needs_a_tracker() -> None:
    async with LowLatencyOrigin(live_segments=1) as origin:
        async with open_loader(origin.url, config=LoaderConfig()) as loader:
            assert loader.low_latency_stream().part_swarm is None  # the default: HTTP only
        for off in (LoaderConfig(tracker_announce=()), LoaderConfig(use_p2p=False)):
            async with open_loader(origin.url, config=off) as loader:
                # Asked for, but no tracker to meet peers through, or P2P off: ignored.
                assert loader.low_latency_stream(p2p=True).part_swarm is None
        config = LoaderConfig(tracker_announce=("ws://127.0.0.1:9",))
        async with open_loader(origin.url, config=config) as loader:
            stream = loader.low_latency_stream(p2p=True)
            assert stream.part_swarm is not None and not stream.part_swarm.started
            assert loader.parts_info_hash() != loader.info_hash()
            await stream.aclose()


class BrokenStart(PartSwarm):
    """A parts swarm that cannot be built (a bug, a setting the parts policy refuses)."""

    async def start(self, *args: object, **kwargs: object) -> None:  # type: ignore[override]
        raise RuntimeError("cannot build the parts swarm")


async def test_a_parts_swarm_that_fails_leaves_the_stream_on_http(caplog: pytest.LogCaptureFixture) -> None:
    async with LowLatencyOrigin(live_segments=2) as origin, httpx.AsyncClient(timeout=10.0) as client:
        items = []
        async with LowLatencyStream(
            origin.url, client=client, part_swarm=swarm_for(client, BrokenStart)
        ) as stream:
            async with asyncio.timeout(20):
                async for item in stream.items():
                    items.append(item)
    assert stream.part_swarm is None  # dropped, not retried
    assert "parts swarm of v0 failed" in caplog.text
    assert len(items) >= 4
    for item in items:  # the player got every part, over HTTP
        assert item.part is not None
        assert item.data == part_bytes(item.segment_id.sequence, item.part.id.index)


class BrokenReport(PartSwarm):
    """A parts swarm that fails when told where the player is."""

    closed = False

    def report_playback(self, position: float) -> None:
        raise RuntimeError("cannot take the playhead")

    async def aclose(self) -> None:
        type(self).closed = True
        await super().aclose()


async def test_a_parts_swarm_failing_on_a_playhead_report_is_dropped_and_closed(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async with LowLatencyOrigin(live_segments=2) as origin, httpx.AsyncClient(timeout=10.0) as client:
        items = []
        async with LowLatencyStream(
            origin.url, client=client, part_swarm=swarm_for(client, BrokenReport)
        ) as stream:
            async with asyncio.timeout(20):
                async for item in stream.items():
                    stream.report_playback(item.start)  # raises nothing: the stream goes on
                    items.append(item)
            assert stream.part_swarm is None
    assert BrokenReport.closed  # closed by the time the stream is
    assert "parts swarm of v0 failed" in caplog.text
    assert len(items) >= 4
    for item in items:
        assert item.part is not None
        assert item.data == part_bytes(item.segment_id.sequence, item.part.id.index)
