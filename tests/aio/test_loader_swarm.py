"""Which swarm a loader joins: swarm id rules and one swarm per rendition."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from p2ploader import LoaderConfig
from p2ploader.aio.loader import HybridLoader, open_loader
from p2ploader.sample import sample_path
from p2ploader.testing.origin import OriginServer
from p2ploader.tracker import TrackerServer


@pytest.mark.parametrize(
    ("url", "config", "expected"),
    [
        (
            "https://cdn.example.com/live/master.m3u8?token=1",
            LoaderConfig(),
            "https://cdn.example.com/live/master.m3u8",
        ),
        ("https://cdn.example.com/live/master.m3u8", LoaderConfig(swarm_id="my-channel"), "my-channel"),
        (
            "https://edge7.example.com/tok123/live/master.m3u8?x=1",
            LoaderConfig(swarm_url_pattern=r"^https://[^/]+/[^/]+/(.*)$"),
            "live/master.m3u8",
        ),
    ],
)
def test_swarm_id(url: str, config: LoaderConfig, expected: str) -> None:
    assert HybridLoader(url, config=config).swarm_id == expected


@pytest.mark.anyio
async def test_one_swarm_per_rendition() -> None:
    with OriginServer(sample_path("ts")) as origin:
        async with open_loader(origin.url_for("master.m3u8"), config=LoaderConfig(use_p2p=False)) as loader:
            hashes = {loader.info_hash(v.rendition_id) for v in loader.variants}
            assert len(hashes) == 3 and all(len(h) == 20 for h in hashes)
            assert loader.peer_id.startswith(b"-PY0001-") and len(loader.peer_id) == 20


async def _wait_for(condition: Callable[[], bool], *, within: float) -> bool:
    """Poll ``condition`` every 20 ms until it holds or ``within`` seconds pass (bounded)."""
    for _ in range(int(within / 0.02)):
        if condition():
            return True
        await asyncio.sleep(0.02)
    return condition()


@pytest.mark.anyio
async def test_the_swarm_is_joined_after_the_first_segment_not_before() -> None:
    # swarm_join_delay: WebRTC set-up must not compete with startup, so the tracker hears of the
    # loader only once its first segment is in (here the fallback delay is far away).
    async with TrackerServer() as tracker:
        with OriginServer(sample_path("ts")) as origin:
            config = LoaderConfig(tracker_announce=(tracker.url,), swarm_join_delay=60.0)
            async with open_loader(origin.url_for("master.m3u8"), config=config) as loader:
                info_hash = loader.info_hash()
                await asyncio.sleep(0.3)  # would be plenty for an announce on loopback
                assert tracker.peer_ids(info_hash) == frozenset()
                first = loader.playlist.segments[0]
                await loader.get_segment(first)
                assert await _wait_for(lambda: loader.peer_id in tracker.peer_ids(info_hash), within=10)


@pytest.mark.anyio
async def test_the_swarm_is_joined_after_the_delay_without_any_segment() -> None:
    async with TrackerServer() as tracker:
        with OriginServer(sample_path("ts")) as origin:
            config = LoaderConfig(tracker_announce=(tracker.url,), swarm_join_delay=0.2)
            async with open_loader(origin.url_for("master.m3u8"), config=config) as loader:
                info_hash = loader.info_hash()
                assert await _wait_for(lambda: loader.peer_id in tracker.peer_ids(info_hash), within=10)
                assert loader.statistics().http_segments == 0
