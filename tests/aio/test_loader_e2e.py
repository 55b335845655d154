"""End to end: the loader against a real local origin serving real ffmpeg-made video.

Every returned segment must equal the origin's bytes. The live test drives the origin's clock
itself (the live window advances when the test says so), and bounds every wait.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from p2ploader import LoaderConfig, SegmentUnavailableError, UsageError, open_loader, play
from p2ploader.sample import sample_path, vod_segment_bytes
from p2ploader.testing.origin import LiveSettings, OriginServer

pytestmark = [pytest.mark.anyio, pytest.mark.e2e]

FAST = LoaderConfig(http_retry_backoff=0.01, live_refresh_interval=0.05)


def expected_bytes(root: Path, playlist_rel: str) -> list[bytes]:
    """The origin's bytes of each segment of a VOD media playlist, read from disk."""
    return vod_segment_bytes(root / playlist_rel)


@pytest.mark.parametrize(
    ("sample", "rendition", "playlist"),
    [
        ("ts", "v0", "240p/index.m3u8"),
        ("ts", "v1", "360p/index.m3u8"),
        ("ts", "v2", "480p/index.m3u8"),
        ("byterange", "v0", "index.m3u8"),
        ("fmp4", "v0", "index.m3u8"),
        ("aes", "v0", "index.m3u8"),
    ],
)
async def test_vod_segments_equal_the_origin_bytes(sample: str, rendition: str, playlist: str) -> None:
    root = sample_path(sample)
    want = expected_bytes(root, playlist)
    with OriginServer(root) as origin:
        async with open_loader(origin.url_for("master.m3u8"), config=FAST, rendition=rendition) as loader:
            assert not loader.is_live
            got = [s async for s in loader.segments()]
            assert [s.data for s in got] == want
            assert all(s.source in ("http", "cache") for s in got)
            stats = loader.statistics()
            assert stats.p2p_bytes == 0 and stats.http_bytes >= sum(map(len, want))
            first = got[0].segment
            if sample == "fmp4":
                assert await loader.fetch_init_section(first) == (root / "init.mp4").read_bytes()
            if sample == "aes":
                assert first.key is not None and first.key.method == "AES-128"
                assert await loader.fetch_key(first) == (root / "key.bin").read_bytes()
            # Keys and init sections never enter the segment cache (so they are never offered to
            # peers): the cache holds exactly the segments' bytes.
            stats = loader.statistics()
            assert stats.cached_bytes == sum(map(len, want)) and stats.cached_segments == len(want)
        assert origin.statistics().requests >= 1


async def test_live_stream_follows_the_window_across_a_loop() -> None:
    root = sample_path("ts")
    want = expected_bytes(root, "360p/index.m3u8")
    clock = [0.0]
    live = LiveSettings(window_segments=4)
    with OriginServer(root, live=live, clock=lambda: clock[0]) as origin:
        async with open_loader(origin.url_for("live/master.m3u8"), config=FAST, rendition="v1") as loader:
            assert loader.is_live
            collected = []

            async def consume() -> None:
                async for s in loader.segments(live_start_distance=3):
                    collected.append(s)
                    if len(collected) == 14:
                        return

            consumer = asyncio.create_task(consume())
            for _ in range(400):  # bounded: about 20 s at most
                if consumer.done():
                    break
                clock[0] += 0.5  # the origin publishes one 2 s segment every four steps
                await asyncio.sleep(0.05)
            await asyncio.wait_for(consumer, timeout=5)
    sequences = [s.segment.id.sequence for s in collected]
    assert sequences == list(range(sequences[0], sequences[0] + 14))
    for s in collected:
        assert s.data == want[s.segment.id.sequence % len(want)], s.segment.id
    # The loop back to the first VOD segment is a discontinuity in the live playlist.
    wrapped = [
        s.segment for s in collected if s.segment.id.sequence % len(want) == 0 and s.segment.id.sequence
    ]
    assert wrapped and wrapped[0].discontinuity_sequence == 1


async def test_live_playback_in_real_time_has_no_stall() -> None:
    root = sample_path("ts")
    with OriginServer(root, live=LiveSettings(window_segments=6, segment_duration=0.5)) as origin:
        # Segments are listed as 2 s long but published every 0.5 s: the player buffers quickly,
        # so a few seconds of wall time cover many segments.
        async with open_loader(origin.url_for("live/master.m3u8"), config=FAST) as loader:
            report = await play(loader, duration=3.0, forward_buffer=6.0, startup_buffer=2.0, tick=0.05)
            stats = loader.statistics()
    assert report.startup_time is not None and report.startup_time < 2.0
    assert report.stalls == 0
    assert stats.http_segments >= 3 and stats.p2p_bytes == 0


async def test_truncated_and_failing_origin_responses_still_give_exact_bytes() -> None:
    root = sample_path("ts")
    want = expected_bytes(root, "240p/index.m3u8")
    with OriginServer(root) as origin:
        origin.inject("240p/seg_00001.ts", truncate_to=1000, times=1)
        origin.inject("240p/seg_00002.ts", status=503, times=1)
        async with open_loader(origin.url_for("master.m3u8"), config=FAST) as loader:
            got = [s.data async for s in loader.segments()]
        assert got == want
        # The truncated segment was resumed with a Range request, not fetched twice whole:
        # the origin sent each segment byte exactly once.
        assert origin.statistics().requests_for("/240p/seg_00001.ts") == 2
        assert origin.statistics().segment_bytes_sent == sum(map(len, want))


async def test_a_missing_segment_raises_a_typed_error() -> None:
    root = sample_path("ts")
    with OriginServer(root) as origin:
        origin.inject("240p/seg_00003.ts", status=404)
        async with open_loader(origin.url_for("master.m3u8"), config=FAST) as loader:
            segs = loader.playlist.segments
            assert len((await loader.get_segment(segs[2])).data) > 0
            with pytest.raises(SegmentUnavailableError, match="404"):
                await loader.get_segment(segs[3])
            assert (await loader.get_segment(segs[4])).data == (root / "240p/seg_00004.ts").read_bytes()


async def test_the_core_fetches_a_waited_segment_again_with_backoff_then_gives_up() -> None:
    # The loader only waits: the core's retry policy fetches again (http_retry_backoff, doubled)
    # and ends the wait after max_attempts failed fetches.
    root = sample_path("ts")
    config = FAST.evolve(http_retries=0, http_retry_backoff=0.2)
    with OriginServer(root) as origin:
        origin.inject("240p/seg_00000.ts", status=503, times=2)
        origin.inject("240p/seg_00005.ts", status=503)
        async with open_loader(origin.url_for("master.m3u8"), config=config) as loader:
            segs = loader.playlist.segments
            started = time.monotonic()
            loaded = await loader.get_segment(segs[0])
            # two back-offs (each shortened by up to the shipped jitter), then the third fetch
            assert time.monotonic() - started >= (0.2 + 0.4) * (1 - config.http_retry_jitter)
            assert loaded.data == (root / "240p/seg_00000.ts").read_bytes()
            assert origin.statistics().requests_for("/240p/seg_00000.ts") == 3
            with pytest.raises(UsageError, match="max_attempts must be >= 1"):
                await loader.get_segment(segs[1], max_attempts=0)
            with pytest.raises(SegmentUnavailableError, match="503"):
                await loader.get_segment(segs[5], max_attempts=2)


async def test_a_live_playlist_that_goes_backwards_keeps_the_last_good_one() -> None:
    root = sample_path("ts")
    clock = [10.0]
    with OriginServer(root, live=LiveSettings(window_segments=4), clock=lambda: clock[0]) as origin:
        async with open_loader(origin.url_for("live/master.m3u8"), config=FAST) as loader:
            before = loader.playlist.segments[-1].id.sequence
            origin.rollback_live(3)
            for _ in range(100):
                if loader.statistics().playlist_refresh_errors >= 2:
                    break
                await asyncio.sleep(0.02)
            assert loader.statistics().playlist_refresh_errors >= 2
            assert loader.playlist.segments[-1].id.sequence == before
            origin.rollback_live(0)
            clock[0] += 4.0
            for _ in range(100):
                if loader.playlist.segments[-1].id.sequence > before:
                    break
                await asyncio.sleep(0.02)
            assert loader.playlist.segments[-1].id.sequence > before


async def test_rendition_switch_mid_stream() -> None:
    root = sample_path("ts")
    with OriginServer(root) as origin:
        async with open_loader(origin.url_for("master.m3u8"), config=FAST, rendition="v0") as loader:
            got = []
            async for s in loader.segments():
                got.append(s)
                if len(got) == 3:
                    await loader.select_rendition("v2")
        assert [s.segment.id.rendition for s in got] == ["v0"] * 3 + ["v2"] * 7
        assert [s.segment.id.sequence for s in got] == list(range(10))
        assert got[5].data == (root / "480p/seg_00005.ts").read_bytes()


async def test_a_malformed_master_playlist_is_a_typed_error(tmp_path: Path) -> None:
    (tmp_path / "master.m3u8").write_text("this is not a playlist\n")
    from p2ploader import PlaylistError

    with OriginServer(tmp_path) as origin:
        url = origin.url_for("master.m3u8")
        with pytest.raises(PlaylistError) as info:
            async with open_loader(url):
                pass
        assert info.value.url == url


async def test_a_cancelled_wait_releases_the_queue_head() -> None:
    root = sample_path("ts")
    with OriginServer(root) as origin:
        origin.inject("240p/seg_00005.ts", delay=2.0)
        async with open_loader(origin.url_for("master.m3u8"), config=FAST) as loader:
            segs = loader.playlist.segments
            with pytest.raises(asyncio.TimeoutError):
                await asyncio.wait_for(loader.get_segment(segs[5]), timeout=0.2)
            # The player moved on: a later segment is loaded without waiting for segment 5.
            loader.report_playback(segs[7].start)
            got = await asyncio.wait_for(loader.get_segment(segs[7]), timeout=1.5)
            assert got.data == (root / "240p/seg_00007.ts").read_bytes()
