"""EXT-X-GAP end to end, on a stream made here with ffmpeg (every 5th video segment marked a gap),
served by the real local origin as VOD and as emulated live: the API hands gap markers in order
and exact bytes for the rest, no request for a gap reaches the origin, the proxy re-serves the tag
(and answers 404 for a gap's URI), ffmpeg decodes through the proxy, and a swarm of real WebRTC
peers plays the live stream through its gaps without a stall."""

from __future__ import annotations

import asyncio
import re
import shutil
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from p2ploader import LoaderConfig, open_loader, play
from p2ploader.aio.loader import HybridLoader, LoadedSegment
from p2ploader.hls import LivePlaylistTracker, parse_media
from p2ploader.playback import PlaybackModel
from p2ploader.proxy import open_proxy
from p2ploader.sample import vod_segment_bytes
from p2ploader.testing.origin import LiveSettings, OriginServer
from p2ploader.tracker import TrackerServer
from tests.aio.test_p2p_e2e import p2p_config, wait_for_peers
from tests.ffmpeg_streams import av_stream, ffmpeg_or_skip, rewrite_media  # noqa: F401

pytestmark = [pytest.mark.anyio, pytest.mark.e2e]

GAP_EVERY = 5  # the 5th, 10th, ... video segment is a gap
HTTP_ONLY = LoaderConfig(use_p2p=False, http_retry_backoff=0.01, live_refresh_interval=0.2)


def _add_gaps(lines: list[str]) -> list[str]:
    out: list[str] = []
    index = 0
    for line in lines:
        if line.startswith("#EXTINF"):
            if index % GAP_EVERY == GAP_EVERY - 1:
                out.append("#EXT-X-GAP")
            index += 1
        out.append(line)
    return out


@pytest.fixture
def gap_stream(av_stream: Path, tmp_path: Path) -> Path:  # noqa: F811
    root = tmp_path / "gaps"
    shutil.copytree(av_stream, root)
    rewrite_media(root / "video" / "index.m3u8", _add_gaps)
    rewrite_media(root / "audio_en" / "index.m3u8", _add_gaps)  # a separate audio rendition too
    return root


def _vod_gaps(root: Path) -> set[int]:
    text = (root / "video" / "index.m3u8").read_text()
    media = parse_media(text, (root / "video" / "index.m3u8").as_uri(), rendition="v0")
    return {s.id.sequence for s in media.segments if s.gap}


def _live_gap_paths(stats_paths: dict[str, int], vod_count: int, gaps: set[int]) -> dict[str, int]:
    """Requests the origin got for live video segments that are gaps (msn % N is a VOD gap)."""
    found = {}
    for path, count in stats_paths.items():
        match = re.fullmatch(r"/live/video/seg_(\d+)\.ts", path)
        if match and int(match[1]) % vod_count in gaps:
            found[path] = count
    return found


# --------------------------------------------------------------------------------------------------
# The model and the origin


GAP_PLAYLIST = """#EXTM3U
#EXT-X-TARGETDURATION:2
#EXT-X-MEDIA-SEQUENCE:10
#EXTINF:2,
a.ts
#EXT-X-GAP
#EXTINF:2,
b.ts
#EXTINF:2,
c.ts
"""


def test_ext_x_gap_marks_only_the_next_segment() -> None:
    media = parse_media(GAP_PLAYLIST, "http://o.test/v.m3u8", rendition="v0")
    assert [(s.id.sequence, s.gap) for s in media.segments] == [(10, False), (11, True), (12, False)]
    assert media.segments[1].url == "http://o.test/b.ts" and media.segments[1].start == 2.0


def test_a_refresh_that_only_marks_a_gap_is_a_change() -> None:
    plain = parse_media(GAP_PLAYLIST.replace("#EXT-X-GAP\n", ""), "http://o.test/v.m3u8", rendition="v0")
    tracker = LivePlaylistTracker(plain)
    update = tracker.update(parse_media(GAP_PLAYLIST, "http://o.test/v.m3u8", rendition="v0"))
    assert not update.unchanged
    assert [s.gap for s in tracker.current.segments] == [False, True, False]


def test_the_stream_has_gaps_and_the_model_marks_them(gap_stream: Path) -> None:
    assert _vod_gaps(gap_stream) == {4}  # 6 segments of 2 s: the 5th is a gap


def test_the_live_origin_keeps_gap_tags_in_its_window(gap_stream: Path) -> None:
    vod = vod_segment_bytes(gap_stream / "video" / "index.m3u8")
    with OriginServer(gap_stream, live=LiveSettings(window_segments=12, initial_segments=12)) as origin:
        url = origin.url_for("live/video/index.m3u8")
        text = httpx.get(url, timeout=10).text
    media = parse_media(text, url, rendition="v0")
    assert media.is_live and len(media.segments) == 12
    assert {s.id.sequence for s in media.segments if s.gap} == {
        s.id.sequence for s in media.segments if s.id.sequence % len(vod) == 4
    }
    assert len([s for s in media.segments if s.gap]) == 2


# --------------------------------------------------------------------------------------------------
# The API


async def test_vod_segments_hand_gap_markers_in_order_and_exact_bytes(gap_stream: Path) -> None:
    want = vod_segment_bytes(gap_stream / "video" / "index.m3u8")
    with OriginServer(gap_stream) as origin:
        async with open_loader(origin.url_for("master.m3u8"), config=HTTP_ONLY) as loader:
            got = [loaded async for loaded in loader.segments()]
            gap = loader.playlist.segments[4]
            origin.reset_statistics()
            marker = await asyncio.wait_for(loader.get_segment(gap), 0.5)
            by_id = await asyncio.wait_for(loader.get_segment(gap.id), 0.5)
            stats_after_gets = origin.statistics()
        stats = origin.statistics()
    assert [loaded.id.sequence for loaded in got] == list(range(6))
    assert [loaded.gap for loaded in got] == [False, False, False, False, True, False]
    assert all(loaded.data == want[loaded.id.sequence] for loaded in got if not loaded.gap)
    assert got[4].data == b"" and got[4].source == "gap"
    assert marker.gap and marker.data == b"" and by_id.gap
    assert stats_after_gets.requests == 0  # the gap markers came without a request
    assert stats.requests_for("/video/seg_004.ts") == 0


async def test_a_live_player_plays_through_gaps_and_never_requests_them(gap_stream: Path) -> None:
    with OriginServer(gap_stream, live=LiveSettings(window_segments=6)) as origin:
        async with open_loader(origin.url_for("live/master.m3u8"), config=HTTP_ONLY) as loader:
            seen: list[LoadedSegment] = []
            report = await play(loader, duration=14.0, forward_buffer=6.0, on_segment=seen.append)
        stats = origin.statistics()
    assert report.stalls == 0 and report.rebuffer_time == 0.0
    assert report.gaps >= 1 and report.gap_time == pytest.approx(2.0 * report.gaps)
    # on_segment sees both tracks: the video variant's and the separate audio's (gaps in both).
    video = [s for s in seen if s.id.rendition == "v0"]
    audio = [s for s in seen if s.id.rendition != "v0"]
    assert [s.id.sequence for s in video] == list(range(video[0].id.sequence, video[-1].id.sequence + 1))
    assert {s.id.sequence % 6 for s in video if s.gap} == {4}
    assert audio and {s.id.sequence % 6 for s in audio if s.gap} <= {4}
    assert _live_gap_paths(dict(stats.path_requests), 6, {4}) == {}


async def test_a_headless_viewer_counts_gaps_apart_from_played_segments(gap_stream: Path) -> None:
    from p2ploader.app.viewer import ViewerSpec, run_viewer

    with OriginServer(gap_stream) as origin:
        spec = ViewerSpec(
            url=origin.url_for("master.m3u8"),
            config=HTTP_ONLY.to_faq(),
            duration=30.0,
            check_bytes_against=str(gap_stream),
        )
        result = await run_viewer(spec)
    assert (result["gaps"], result["segments_played"], result["mismatches"]) == (1, 5, 0)
    assert result["stalls"] == 0 and result["played"] == pytest.approx(12.0, abs=0.5)


def test_the_playback_model_moves_through_a_gap_without_a_stall() -> None:
    model = PlaybackModel(start_position=0.0, now=0.0, startup_buffer=2.0)
    model.add_segment(0.0, 2.0, now=0.0)
    model.add_gap(2.0, 2.0, now=1.0)  # no bytes to wait for: buffered at once
    assert model.buffer_ahead(now=1.0) == pytest.approx(3.0)
    model.add_segment(4.0, 2.0, now=3.9)
    report = model.report(now=5.0)
    assert (report.stalls, report.state, report.gaps, report.gap_time) == (0, "playing", 1, 2.0)
    assert report.position == pytest.approx(5.0)


# --------------------------------------------------------------------------------------------------
# The proxy and ffmpeg


async def test_the_proxy_reserves_gap_tags_and_answers_404_for_a_gap(gap_stream: Path) -> None:
    with OriginServer(gap_stream) as origin:
        async with (
            open_proxy(origin.url_for("master.m3u8"), config=HTTP_ONLY) as proxy,
            httpx.AsyncClient() as client,
        ):
            url = f"{proxy.base_url}/r/v0/index.m3u8"
            text = (await client.get(url, timeout=20)).text
            media = parse_media(text, url, rendition="v0")
            lines = text.splitlines()
            gap_line = lines.index("#EXT-X-GAP")
            gap_uri = lines[gap_line + 2]
            response = await client.get(f"{proxy.base_url}{gap_uri}", timeout=20)
            other = await client.get(media.segments[3].url, timeout=20)
            # The English audio rendition (EXT-X-MEDIA, its own loader in the proxy) likewise.
            audio_url = f"{proxy.base_url}/r/m0/index.m3u8"
            audio = parse_media((await client.get(audio_url, timeout=20)).text, audio_url, rendition="m0")
            audio_gap = await client.get(audio.segments[4].url, timeout=20)
        stats = origin.statistics()
    assert {s.id.sequence for s in media.segments if s.gap} == {4}
    assert lines[gap_line + 1].startswith("#EXTINF:") and gap_uri.startswith("/r/v0/seg/")
    assert media.segments[4].url == f"{proxy.base_url}{gap_uri}"
    assert response.status_code == 404 and "EXT-X-GAP" in response.text
    assert other.status_code == 200
    assert stats.requests_for("/video/seg_004.ts") == 0
    assert [s.gap for s in audio.segments] == [False, False, False, False, True, False]
    assert audio_gap.status_code == 404 and stats.requests_for("/audio_en/seg_004.ts") == 0


async def test_the_proxy_reserves_gap_tags_in_a_live_window(gap_stream: Path) -> None:
    with OriginServer(gap_stream, live=LiveSettings(window_segments=12, initial_segments=12)) as origin:
        async with (
            open_proxy(origin.url_for("live/master.m3u8"), config=HTTP_ONLY) as proxy,
            httpx.AsyncClient() as client,
        ):
            url = f"{proxy.base_url}/r/v0/index.m3u8"
            media = parse_media((await client.get(url, timeout=20)).text, url, rendition="v0")
        stats = origin.statistics()
    gaps = {s.id.sequence for s in media.segments if s.gap}
    assert len(gaps) == 2 and all(sequence % 6 == 4 for sequence in gaps)
    assert all(s.url.startswith(f"{proxy.base_url}/r/v0/seg/") for s in media.segments)
    assert _live_gap_paths(dict(stats.path_requests), 6, {4}) == {}


def test_the_proxy_playhead_moves_through_a_gap_the_player_skips() -> None:
    from p2ploader.proxy.playhead import PlayheadEstimator

    def estimate(*, with_gap: bool) -> float | None:
        est = PlayheadEstimator()
        est.finished(est.requested(0.0, 2.0, floor=0.0, now=0.0), delivered=True, now=0.0)
        if with_gap:
            est.gap(2.0, 4.0, now=0.0)  # [2, 4) is EXT-X-GAP: the player never asks for it
        est.finished(est.requested(4.0, 6.0, floor=2.0, now=0.5), delivered=True, now=0.5)
        return est.position(5.0)

    assert estimate(with_gap=True) == pytest.approx(5.0)  # played through the gap in real time
    assert estimate(with_gap=False) == pytest.approx(2.0)  # without it: held at the hole's start


async def _ffmpeg(*args: str) -> tuple[int, bytes, bytes]:
    proc = await asyncio.create_subprocess_exec(
        ffmpeg_or_skip(), *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await asyncio.wait_for(proc.communicate(), 90)
    assert proc.returncode is not None
    return proc.returncode, out, err


async def test_ffmpeg_decodes_through_the_proxy_around_the_gap(gap_stream: Path) -> None:
    with OriginServer(gap_stream) as origin:
        async with open_proxy(origin.url_for("master.m3u8"), config=HTTP_ONLY) as proxy:
            url = f"{proxy.base_url}/r/v0/index.m3u8"
            code, out, err = await _ffmpeg("-v", "warning", "-i", url, "-map", "0:v", "-f", "framemd5", "-")
            proxy_stats = proxy.statistics()
        stats = origin.statistics()
    frames = [line for line in out.splitlines() if line and not line.startswith(b"#")]
    # ffmpeg 5.1 does not know EXT-X-GAP: it asks for the gap's URI (a few times: its keep-alive
    # retry and its segment retries), gets the proxy's 404 each time, gives up on that segment and
    # decodes the five others (2 s at 24 fps each), exiting 0.
    assert code == 0, err.decode()
    assert len(frames) == 5 * 48
    assert b"Failed to open segment 4 of playlist 0" in err
    assert err.count(b"Failed to open segment") == err.count(b"Failed to open segment 4 ")
    assert proxy_stats.segments_served == 5 and proxy_stats.errors >= 1  # the errors: the gap's 404s
    assert stats.requests_for("/video/seg_004.ts") == 0


# --------------------------------------------------------------------------------------------------
# A swarm of real WebRTC peers on the live stream with gaps


async def test_three_viewers_share_a_live_stream_with_gaps_without_a_stall(
    gap_stream: Path,
    loopback: None,
    tracker: TrackerServer,
) -> None:
    want = vod_segment_bytes(gap_stream / "video" / "index.m3u8")
    with OriginServer(gap_stream, live=LiveSettings(window_segments=10)) as origin:
        url = origin.url_for("live/master.m3u8")
        config = p2p_config(tracker.url)
        async with (
            open_loader(url, config=config, seed=1) as first,
            open_loader(url, config=config, seed=2) as second,
            open_loader(url, config=config, seed=3) as third,
        ):
            loaders = [first, second, third]
            await wait_for_peers(loaders, 2, media_type="video")
            got: list[list[LoadedSegment]] = [[], [], []]

            async def view(loader: HybridLoader, seconds: float, index: int, distance: int) -> object:
                return await play(
                    loader,
                    duration=seconds,
                    forward_buffer=8.0,
                    tick=0.1,
                    live_start_distance=distance,
                    on_segment=got[index].append,
                )

            first_view = asyncio.create_task(view(first, 16.0, 0, 3))
            await asyncio.sleep(2.0)
            reports = await asyncio.wait_for(
                asyncio.gather(first_view, view(second, 14.0, 1, 6), view(third, 14.0, 2, 6)), timeout=60
            )
            stats = [loader.statistics() for loader in loaders]
        origin_stats = origin.statistics()
    assert [r.stalls for r in reports] == [0, 0, 0]  # type: ignore[attr-defined]
    assert all(r.gaps >= 1 for r in reports)  # type: ignore[attr-defined]
    want_audio = vod_segment_bytes(gap_stream / "audio_en" / "index.m3u8")
    for segments in got:
        video = [s for s in segments if s.id.rendition == "v0"]
        audio = [s for s in segments if s.id.rendition != "v0"]  # the separate English audio
        assert all(s.data == want[s.id.sequence % len(want)] for s in video if not s.gap)
        assert {s.id.sequence % len(want) for s in video if s.gap} == {4}
        assert audio and all(
            s.data == want_audio[s.id.sequence % len(want_audio)] for s in audio if not s.gap
        )
    assert stats[1].p2p_bytes + stats[2].p2p_bytes > 0
    assert stats[1].by_media_type["audio"].p2p_bytes + stats[2].by_media_type["audio"].p2p_bytes > 0
    assert _live_gap_paths(dict(origin_stats.path_requests), len(want), {4}) == {}


def test_the_pyav_example_skips_gap_markers(gap_stream: Path) -> None:
    """examples/pyav_decode.py, as a user runs it, decodes the stream around its gap (6 segments,
    the 5th a gap) instead of handing the decoder a gap marker's empty bytes."""
    example = Path(__file__).resolve().parent.parent / "examples" / "pyav_decode.py"
    with OriginServer(gap_stream) as origin:
        out = subprocess.run(
            [sys.executable, str(example), origin.url_for("video/index.m3u8")],
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert out.returncode == 0, out.stderr
    assert out.stdout.count(": gap of 2.000 s") == 1
    assert "decoded 240 video frames" in out.stdout  # 5 segments of 2 s at 24 fps
