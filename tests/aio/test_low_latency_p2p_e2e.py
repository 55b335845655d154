"""P2P LL-HLS end to end: three p2ploader viewers follow the project's LL-HLS origin (real ffmpeg
fMP4, 2 s segments of 0.5 s parts) at low latency, and take parts from each other through the
parts swarm (the embedded tracker, real aiortc data channels on 127.0.0.1), with no stall and every
part byte for byte the origin's."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

import httpx
import pytest

from p2ploader import LoaderConfig, open_loader
from p2ploader.aio.ll_player import LowLatencyReport, play_low_latency
from p2ploader.core.ll_follower import LowLatencyItem
from p2ploader.testing.llhls import LowLatencySettings
from p2ploader.testing.origin import LiveSettings, OriginServer
from p2ploader.tracker import TrackerServer
from tests.ffmpeg_streams import llhls_stream  # noqa: F401

pytestmark = [pytest.mark.anyio, pytest.mark.e2e]

VIEWERS = 3
PLAY_SECONDS = 11.0  # the parts swarm joins after the first item; links take a second or two


def p2p_config(tracker_url: str) -> LoaderConfig:
    return LoaderConfig(
        tracker_announce=(tracker_url,), rtc_config={"iceServers": []}, http_retry_backoff=0.05
    )


async def test_three_viewers_share_parts_at_low_latency(
    llhls_stream: Path,  # noqa: F811
    loopback: None,
    tracker: TrackerServer,
) -> None:
    live = LiveSettings(window_segments=4, initial_segments=2, loop=True)
    items: list[list[LowLatencyItem]] = [[] for _ in range(VIEWERS)]
    with OriginServer(llhls_stream, live=live, low_latency=LowLatencySettings()) as origin:
        url = origin.url_for("llhls/master.m3u8")
        config = p2p_config(tracker.url)
        async with contextlib.AsyncExitStack() as stack:
            loaders = [
                await stack.enter_async_context(open_loader(url, config=config, seed=k))
                for k in range(VIEWERS)
            ]
            assert len({loader.parts_info_hash() for loader in loaders}) == 1
            assert loaders[0].parts_info_hash() != loaders[0].info_hash()  # browsers never join it
            streams = [
                await stack.enter_async_context(loader.low_latency_stream(p2p=True)) for loader in loaders
            ]
            async with asyncio.timeout(40):
                reports: list[LowLatencyReport] = await asyncio.gather(
                    *(
                        play_low_latency(stream, duration=PLAY_SECONDS, on_item=items[k].append)
                        for k, stream in enumerate(streams)
                    )
                )
            swarm_stats = [s.part_swarm.statistics() for s in streams if s.part_swarm is not None]
            stream_stats = [s.statistics for s in streams]
            async with httpx.AsyncClient(timeout=10.0) as client:
                want: dict[str, bytes] = {}
                for got in items:
                    for item in got:
                        if item.part is not None and item.part.url not in want:
                            want[item.part.url] = (await client.get(item.part.url)).content

    assert [r.playback.stalls for r in reports] == [0] * VIEWERS
    for got in items:
        parts = [i for i in got if i.part is not None]
        assert len(parts) >= 8
        for item in parts:  # every part byte is the origin's, in order
            assert item.part is not None
            assert item.data == want[item.part.url], item.part.id
        starts = [i.start for i in got]
        assert starts == sorted(starts)
    assert len(swarm_stats) == VIEWERS
    assert all(s.peers >= 1 for s in swarm_stats), swarm_stats
    p2p = sum(s.p2p_bytes for s in stream_stats)
    assert p2p > 0, (swarm_stats, stream_stats)
    # Upload counts are taken when an upload's end is reported, a moment after the receiver has it.
    assert sum(s.uploaded_bytes for s in swarm_stats) > 0
    print("part swarm statistics:", swarm_stats)
    for report in reports:  # still low latency: PART-HOLD-BACK rounded back to a segment, and more
        assert report.latency_p95 is not None and report.latency_p95 <= 4.5
