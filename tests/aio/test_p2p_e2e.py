"""End to end over real WebRTC: loaders on one machine share a live stream through the embedded
tracker and aiortc data channels on 127.0.0.1, and every segment still equals the origin's bytes."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from p2ploader import LoaderConfig, PlaybackReport, open_loader, play
from p2ploader.aio.loader import HybridLoader, LoadedSegment
from p2ploader.app.viewer import ViewerSpec, last_line, start_viewer_process
from p2ploader.core import notifications as nt
from p2ploader.sample import sample_path, vod_segment_bytes
from p2ploader.testing.origin import LiveSettings, OriginServer
from p2ploader.tracker import TrackerServer

pytestmark = [pytest.mark.anyio, pytest.mark.e2e]

ROOT = sample_path("ts")


WANT = vod_segment_bytes(ROOT / "360p/index.m3u8")


def p2p_config(tracker_url: str) -> LoaderConfig:
    return LoaderConfig(
        tracker_announce=(tracker_url,),
        rtc_config={"iceServers": []},
        http_retry_backoff=0.05,
        live_refresh_interval=0.5,
    )


async def wait_for_peers(loaders: list[HybridLoader], count: int, *, media_type: str | None = None) -> None:
    """Until every loader has ``count`` peers (in its ``media_type`` swarm, or in all), 10 s at most."""

    def peers(loader: HybridLoader) -> int:
        stats = loader.statistics()
        return (
            stats.peers_connected if media_type is None else stats.by_media_type[media_type].peers_connected
        )

    for _ in range(200):  # bounded: 10 s
        if all(peers(loader) == count for loader in loaders):
            return
        await asyncio.sleep(0.05)
    raise AssertionError([peers(loader) for loader in loaders])


async def run_staggered_viewers(specs: list[ViewerSpec], *, within: float) -> list[dict[str, Any]]:
    """Start a viewer process per spec, 2 s apart, and return their result lines (each must exit 0)."""
    procs = []
    for spec in specs:
        procs.append(await start_viewer_process(spec))
        await asyncio.sleep(2.0)  # staggered joins
    outputs = await asyncio.wait_for(asyncio.gather(*(p.communicate() for p in procs)), timeout=within)
    results = []
    for proc, (out, err) in zip(procs, outputs, strict=True):
        assert proc.returncode == 0, err.decode()
        results.append(last_line(out))
    return results


async def view(
    loader: HybridLoader, seconds: float, out: list[LoadedSegment], *, distance: int = 3
) -> PlaybackReport:
    """A real-time headless viewer ``distance`` segments behind live, buffering up to 8 s ahead.

    Followers sit further behind live than the first viewer, so the segments they prefetch are ones
    that viewer already holds: P2P then happens by construction, not by chance."""
    return await play(
        loader,
        duration=seconds,
        forward_buffer=8.0,
        tick=0.1,
        live_start_distance=distance,
        on_segment=out.append,
    )


async def test_three_loaders_share_a_live_stream(loopback: None, tracker: TrackerServer) -> None:
    with OriginServer(ROOT, live=LiveSettings(window_segments=10)) as origin:
        url = origin.url_for("live/master.m3u8")
        config = p2p_config(tracker.url)
        async with (
            open_loader(url, config=config, rendition="v1", seed=1) as first,
            open_loader(url, config=config, rendition="v1", seed=2) as second,
            open_loader(url, config=config, rendition="v1", seed=3) as third,
        ):
            loaders = [first, second, third]
            assert len({loader.info_hash() for loader in loaders}) == 1
            await wait_for_peers(loaders, 2)
            got: list[list[LoadedSegment]] = [[], [], []]
            # The first viewer starts a little earlier, as viewers do; the others find its segments.
            # They prefetch 8 s at once, so P2P happens in their first second; 8 s of play (4
            # segments) go through that prefetch to the segments loaded as playback needs them.
            first_view = asyncio.create_task(view(first, 10.0, got[0]))
            await asyncio.sleep(2.0)
            reports = await asyncio.wait_for(
                asyncio.gather(
                    first_view, view(second, 8.0, got[1], distance=6), view(third, 8.0, got[2], distance=6)
                ),
                timeout=40,
            )
            stats = [loader.statistics() for loader in loaders]

    for segments in got:
        assert segments
        for loaded in segments:
            assert loaded.data == WANT[loaded.segment.id.sequence % len(WANT)], loaded.segment.id
    assert [r.stalls for r in reports] == [0, 0, 0]
    assert stats[1].p2p_bytes > 0 and stats[2].p2p_bytes > 0, stats
    assert sum(s.p2p_uploaded_bytes for s in stats) >= stats[1].p2p_bytes + stats[2].p2p_bytes


async def test_a_peer_that_leaves_mid_transfer_costs_no_stall(loopback: None, tracker: TrackerServer) -> None:
    with OriginServer(ROOT, live=LiveSettings(window_segments=10)) as origin:
        url = origin.url_for("live/master.m3u8")
        config = p2p_config(tracker.url)
        async with open_loader(url, config=config, rendition="v1", seed=4) as viewer:
            seeder_cm = open_loader(url, config=config, rendition="v1", seed=5)
            seeder = await seeder_cm.__aenter__()
            try:
                await wait_for_peers([viewer, seeder], 1)
                seeded: list[LoadedSegment] = []
                seeding = asyncio.create_task(view(seeder, 30.0, seeded))
                await asyncio.sleep(2.0)
                p2p_started = asyncio.Event()
                viewer.add_listener(
                    lambda n: (
                        p2p_started.set() if isinstance(n, nt.BytesReceived) and n.source == "p2p" else None
                    )
                )
                got: list[LoadedSegment] = []
                watching = asyncio.create_task(view(viewer, 10.0, got, distance=7))
                await asyncio.wait_for(p2p_started.wait(), timeout=10)
            finally:
                # The seeder leaves while it is uploading to the viewer.
                await seeder_cm.__aexit__(None, None, None)
            seeding.cancel()
            report = await asyncio.wait_for(watching, timeout=20)
            stats = viewer.statistics()
    assert report.stalls == 0
    assert got and all(g.data == WANT[g.segment.id.sequence % len(WANT)] for g in got)
    assert stats.p2p_bytes > 0 and stats.peers_connected == 0


async def test_with_the_tracker_down_everything_plays_over_http(loopback: None) -> None:
    with OriginServer(ROOT, live=LiveSettings(window_segments=10, segment_duration=0.5)) as origin:
        # Nothing listens on this port: the tracker client keeps retrying in the background.
        config = p2p_config("ws://127.0.0.1:9")
        async with open_loader(origin.url_for("live/master.m3u8"), config=config, rendition="v1") as loader:
            got: list[LoadedSegment] = []
            report = await asyncio.wait_for(view(loader, 4.0, got), timeout=20)
            stats = loader.statistics()
    assert report.stalls == 0 and got
    assert stats.http_bytes > 0 and stats.p2p_bytes == 0


async def test_loaders_in_separate_processes_share_a_live_stream(tracker: TrackerServer) -> None:

    with OriginServer(ROOT, live=LiveSettings(window_segments=10)) as origin:
        config = p2p_config(tracker.url).to_faq()
        specs = [
            ViewerSpec(
                url=origin.url_for("live/master.m3u8"),
                config=config,
                duration=12.0 - 2 * i,
                forward_buffer=8.0,
                rendition="v1",
                seed=10 + i,
                check_bytes_against=str(ROOT),
            )
            for i in range(3)
        ]
        results = await run_staggered_viewers(specs, within=60)
    assert all(r["mismatches"] == 0 and r["segments_played"] > 0 for r in results), results
    assert all(r["stalls"] == 0 for r in results), results
    assert results[1]["p2p_bytes"] > 0 and results[2]["p2p_bytes"] > 0, results
