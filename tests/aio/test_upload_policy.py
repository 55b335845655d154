"""Upload policy over real WebRTC on 127.0.0.1: upload only while the own buffer is healthy, a
numeric cap, download-only peers, and uploaded bytes per peer in the statistics."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import pytest

from p2ploader import LoaderConfig, open_loader, play
from p2ploader.aio.loader import HybridLoader, LoadedSegment
from p2ploader.sample import sample_path, vod_segment_bytes
from p2ploader.testing.origin import LiveSettings, OriginServer
from p2ploader.testing.wait import wait_until
from p2ploader.tracker import TrackerServer

pytestmark = [pytest.mark.anyio, pytest.mark.e2e]

ROOT = sample_path("ts")
WANT = vod_segment_bytes(ROOT / "240p/index.m3u8")


def config(tracker_url: str, **changes: Any) -> LoaderConfig:
    return LoaderConfig(
        tracker_announce=(tracker_url,),
        rtc_config={"iceServers": []},
        http_retry_backoff=0.05,
        live_refresh_interval=0.5,
        **changes,
    )


async def seeded_session(
    tracker: TrackerServer, seeder_config: LoaderConfig, viewer_configs: list[LoaderConfig]
) -> tuple[HybridLoader, list[HybridLoader], list[list[LoadedSegment]]]:
    """A seeder watches from live; viewers join 2 s later, further behind, where the seeder's
    segments are: they come over P2P unless the seeder's policy says no. Returns the closed loaders."""
    with OriginServer(ROOT, live=LiveSettings(window_segments=10)) as origin:
        url = origin.url_for("live/master.m3u8")
        async with contextlib.AsyncExitStack() as stack:
            seeder = await stack.enter_async_context(
                open_loader(url, config=seeder_config, rendition="v0", seed=1)
            )
            viewers = [
                await stack.enter_async_context(open_loader(url, config=c, rendition="v0", seed=10 + i))
                for i, c in enumerate(viewer_configs)
            ]
            await wait_until(
                lambda: seeder.statistics().peers_connected == len(viewers),
                what=lambda: [v.statistics().peers_connected for v in (seeder, *viewers)],
            )
            # The viewers load 8 s ahead at once, from the seeder where it allows: 6 s of play is
            # enough. They start once the seeder holds the 3 segments from its start to the live
            # edge (3 behind live), and the seeder plays until they are done.
            seeded: list[LoadedSegment] = []
            done = asyncio.Event()
            seeding = asyncio.create_task(
                play(seeder, duration=30.0, forward_buffer=8.0, tick=0.1, on_segment=seeded.append, stop=done)
            )
            await wait_until(lambda: len(seeded) >= 3, 10.0, what=lambda: seeder.statistics())
            got: list[list[LoadedSegment]] = [[] for _ in viewers]
            reports = await asyncio.wait_for(
                asyncio.gather(
                    *(
                        play(
                            v,
                            duration=6.0,
                            forward_buffer=8.0,
                            tick=0.1,
                            live_start_distance=5,
                            on_segment=g.append,
                        )
                        for v, g in zip(viewers, got, strict=True)
                    )
                ),
                timeout=30,
            )
            done.set()
            assert (await seeding).stalls == 0
    assert all(r.stalls == 0 for r in reports), reports
    for segments in got:
        assert segments
        for loaded in segments:
            assert loaded.data == WANT[loaded.segment.id.sequence % len(WANT)]
    return seeder, viewers, got


async def test_uploaded_bytes_per_peer_and_a_numeric_cap(loopback: None, tracker: TrackerServer) -> None:
    cap = 150_000.0  # bytes/s: about 3 segments of 45 KB per second
    # Download-only viewers: every P2P byte they get comes from the seeder.
    viewer = config(tracker.url, consume_only=True)
    seeder, viewers, _ = await seeded_session(
        tracker, config(tracker.url, upload_rate_limit=cap), [viewer, viewer]
    )
    by_peer = seeder.statistics().uploaded_bytes_by_peer
    assert set(by_peer) == {v.peer_id.hex() for v in viewers}
    assert sum(by_peer.values()) == seeder.statistics().p2p_uploaded_bytes
    for viewer in viewers:
        assert 0 < viewer.statistics().p2p_bytes <= by_peer[viewer.peer_id.hex()]
    # A sanity bound (tests/aio/test_peers.py measures the pacing itself): linked for under 20 s.
    assert seeder.statistics().p2p_uploaded_bytes <= cap * 20.0


async def test_upload_only_while_the_own_buffer_is_healthy(loopback: None, tracker: TrackerServer) -> None:
    # The seeder buffers at most 8 s, so a 30 s minimum keeps it from ever uploading: requests are
    # answered "absent" and the viewer loads over HTTP without a stall.
    seeder, viewers, _ = await seeded_session(
        tracker, config(tracker.url, upload_min_buffer=30.0), [config(tracker.url)]
    )
    assert seeder.statistics().p2p_uploaded_bytes == 0 and not seeder.statistics().uploaded_bytes_by_peer
    assert viewers[0].statistics().p2p_bytes == 0 and viewers[0].statistics().p2p_failures > 0
    # With a minimum the seeder's buffer does reach, it uploads.
    seeder, viewers, _ = await seeded_session(
        tracker, config(tracker.url, upload_min_buffer=2.0), [config(tracker.url)]
    )
    assert viewers[0].statistics().p2p_bytes > 0


async def test_a_download_only_peer_uploads_nothing(loopback: None, tracker: TrackerServer) -> None:
    _, viewers, _ = await seeded_session(
        tracker, config(tracker.url), [config(tracker.url, consume_only=True), config(tracker.url)]
    )
    quiet, other = viewers
    assert quiet.statistics().p2p_bytes > 0  # it still downloads
    assert quiet.statistics().p2p_uploaded_bytes == 0 and not quiet.statistics().uploaded_bytes_by_peer
    assert other.statistics().p2p_bytes > 0
