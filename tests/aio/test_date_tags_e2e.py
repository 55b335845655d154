"""A stream made here with ffmpeg and decorated as live services do: EXT-X-PROGRAM-DATE-TIME,
an ad break in EXT-X-DATERANGE (SCTE35-OUT, X-COM-EXAMPLE- attributes), EXT-X-START in the media
and master playlists, and an I-frame playlist built from the real keyframe byte offsets (ffprobe).

Checked through the API (exact model values, the start segment, I-frame bytes), the proxy (tags
kept, URIs rewritten, I-frame ranges exact, ffmpeg decoding), the live-emulating origin (dates
consistent across loops), headless viewers (first segment where EXT-X-START says) and a swarm of
three viewer processes over real WebRTC on the live copy (no stall, P2P used)."""

from __future__ import annotations

import asyncio
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from p2ploader import LoaderConfig, PlaybackModel, UsageError, open_loader, play
from p2ploader.aio.player import PlaybackSnapshot
from p2ploader.app.viewer import ViewerSpec, run_viewer
from p2ploader.hls import DateRange, IFrameVariant, StartOffset, parse_master, parse_media
from p2ploader.proxy import open_proxy
from p2ploader.testing.origin import LiveSettings, OriginServer
from p2ploader.tracker import TrackerServer
from tests.aio.test_p2p_e2e import p2p_config, run_staggered_viewers
from tests.ffmpeg_streams import av_stream, rewrite_media, write_i_frame_playlist  # noqa: F401

pytestmark = [pytest.mark.anyio, pytest.mark.e2e]

HTTP_ONLY = LoaderConfig(use_p2p=False, tracker_announce=(), http_retry_backoff=0.01)
T0 = datetime(2026, 12, 7, 3, 0, 0, tzinfo=UTC)
AD_ATTRIBUTES = (
    'ID="ad-1",CLASS="com.example.ad",START-DATE="2026-12-07T03:00:04.000Z",DURATION=4,'
    'PLANNED-DURATION=4.5,X-COM-EXAMPLE-AD-ID="ad-42",'
    'X-COM-EXAMPLE-ASSET-URI="https://ads.example.com/42.m3u8",SCTE35-OUT=0xFC302000'
)
AD = DateRange(
    id="ad-1",
    class_name="com.example.ad",
    start_date=T0 + timedelta(seconds=4),
    duration=4.0,
    planned_duration=4.5,
    scte35_out="0xFC302000",
    client_attributes={
        "X-COM-EXAMPLE-AD-ID": '"ad-42"',
        "X-COM-EXAMPLE-ASSET-URI": '"https://ads.example.com/42.m3u8"',
    },
)
I_FRAME_INF = (
    '#EXT-X-I-FRAME-STREAM-INF:BANDWIDTH=48000,CODECS="avc1.4d400d",RESOLUTION=320x180,'
    'URI="video/iframes.m3u8"'
)


def _decorate(lines: list[str]) -> list[str]:
    """Dates on segments 0 and 3 (3's agrees with 2 s segments), the ad break before segment 2,
    a start 4 s in."""
    out: list[str] = []
    segment = 0
    for line in lines:
        if line.startswith("#EXTINF"):
            if segment == 0:
                out.append("#EXT-X-PROGRAM-DATE-TIME:2026-12-07T03:00:00.000Z")
            elif segment == 2:
                out.append("#EXT-X-DATERANGE:" + AD_ATTRIBUTES)
            elif segment == 3:
                out.append("#EXT-X-PROGRAM-DATE-TIME:2026-12-07T03:00:06.000Z")
            segment += 1
        out.append(line)
        if line.startswith("#EXT-X-TARGETDURATION"):
            out.append("#EXT-X-START:TIME-OFFSET=4")
    return out


@pytest.fixture(scope="module")
def tagged(av_stream: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:  # noqa: F811
    root = tmp_path_factory.mktemp("tagged") / "stream"
    shutil.copytree(av_stream, root)
    rewrite_media(root / "video" / "index.m3u8", _decorate)
    write_i_frame_playlist(root / "video")
    master = (root / "master.m3u8").read_text()
    master = master.replace(
        "#EXT-X-INDEPENDENT-SEGMENTS\n", "#EXT-X-INDEPENDENT-SEGMENTS\n#EXT-X-START:TIME-OFFSET=-2\n"
    )
    (root / "master.m3u8").write_text(master + I_FRAME_INF + "\n")
    return root


def i_frames(root: Path) -> list[tuple[str, int, int]]:
    """(file, offset, length) of each I-frame, as the I-frame playlist lists them."""
    playlist = parse_media(
        (root / "video/iframes.m3u8").read_text(), "http://x/video/iframes.m3u8", rendition="i0"
    )
    out = []
    for segment in playlist.segments:
        assert segment.byte_range is not None
        out.append((segment.url.rsplit("/", 1)[1], segment.byte_range.offset, segment.byte_range.length))
    return out


def file_bytes(root: Path, name: str, offset: int, length: int) -> bytes:
    return (root / "video" / name).read_bytes()[offset : offset + length]


# --------------------------------------------------------------------------------------------------
# The API


async def test_the_loader_exposes_dates_ranges_start_and_i_frames(tagged: Path) -> None:
    with OriginServer(tagged) as origin:
        async with open_loader(origin.url_for("master.m3u8"), config=HTTP_ONLY) as loader:
            playlist = loader.playlist
            durations = [s.duration for s in playlist.segments]
            assert durations == [2.0] * 6
            dates = [s.program_date_time for s in playlist.segments]
            # Extrapolated from the tag on segment 0, and agreeing with the one on segment 3.
            assert dates == [T0 + timedelta(seconds=2 * i) for i in range(6)]
            assert dates[3] == datetime(2026, 12, 7, 3, 0, 6, tzinfo=UTC)
            assert playlist.date_ranges == (AD,)
            assert loader.master.start == StartOffset(time_offset=-2.0)
            assert loader.start_offset == StartOffset(time_offset=4.0)  # the media playlist's wins
            assert loader.start_point().segment.id.sequence == 2
            first = await anext(loader.segments())
            assert first.segment.id.sequence == 2
            assert first.data == (tagged / "video/seg_002.ts").read_bytes()

            assert loader.i_frame_variants == (
                IFrameVariant(
                    index=0,
                    rendition_id="i0",
                    url=origin.url_for("video/iframes.m3u8"),
                    bandwidth=48000,
                    codecs="avc1.4d400d",
                    resolution=(320, 180),
                ),
            )
            trick = await loader.i_frame_playlist("i0")
            assert trick.i_frames_only and len(trick.segments) == 6
            for segment, (name, offset, length) in zip(trick.segments, i_frames(tagged), strict=True):
                assert await loader.fetch_i_frame(segment) == file_bytes(tagged, name, offset, length)
            with pytest.raises(UsageError):  # trick play has no swarm
                loader.info_hash("i0")


async def test_the_masters_start_applies_when_the_media_playlist_has_none(
    tagged: Path, tmp_path: Path
) -> None:
    root = tmp_path / "stream"
    shutil.copytree(tagged, root)
    rewrite_media(
        root / "video/index.m3u8", lambda lines: [x for x in lines if not x.startswith("#EXT-X-START")]
    )
    with OriginServer(root) as origin:
        async with open_loader(origin.url_for("master.m3u8"), config=HTTP_ONLY) as loader:
            assert loader.start_offset == StartOffset(time_offset=-2.0)
            assert loader.start_point().segment.id.sequence == 5  # 2 s before the end of 12 s
            assert (await anext(loader.segments())).segment.id.sequence == 5


async def test_a_viewer_starts_where_ext_x_start_says(tagged: Path) -> None:
    with OriginServer(tagged) as origin:
        spec = ViewerSpec(url=origin.url_for("master.m3u8"), config=HTTP_ONLY.to_faq(), duration=2.0)
        result = await run_viewer(spec)
    assert result["first_sequence"] == 2
    assert result["segments_played"] >= 1 and result["stalls"] == 0


# --------------------------------------------------------------------------------------------------
# The proxy


async def test_the_proxy_keeps_the_tags_and_rewrites_i_frame_uris(tagged: Path) -> None:
    with OriginServer(tagged) as origin:
        async with (
            open_proxy(origin.url_for("master.m3u8"), config=HTTP_ONLY) as proxy,
            httpx.AsyncClient(timeout=20) as client,
        ):
            master_text = (await client.get(proxy.url)).text
            assert "#EXT-X-START:TIME-OFFSET=-2\n" in master_text
            assert (
                '#EXT-X-I-FRAME-STREAM-INF:BANDWIDTH=48000,CODECS="avc1.4d400d",RESOLUTION=320x180,'
                'URI="/r/i0/index.m3u8"\n'
            ) in master_text
            master = parse_master(master_text, proxy.url)
            assert master.start == StartOffset(time_offset=-2.0)
            (trick_variant,) = master.i_frame_variants
            assert trick_variant.url == f"{proxy.base_url}/r/i0/index.m3u8"

            video_url = f"{proxy.base_url}/r/v0/index.m3u8"
            video_text = (await client.get(video_url)).text
            assert "#EXT-X-START:TIME-OFFSET=4\n" in video_text
            assert "#EXT-X-PROGRAM-DATE-TIME:2026-12-07T03:00:00.000Z\n" in video_text
            assert "#EXT-X-PROGRAM-DATE-TIME:2026-12-07T03:00:10.000Z\n" in video_text
            # The X- attributes as the origin wrote them: the URI in one is not rewritten.
            assert (
                'X-COM-EXAMPLE-AD-ID="ad-42",X-COM-EXAMPLE-ASSET-URI="https://ads.example.com/42.m3u8"'
                in video_text
            )
            video = parse_media(video_text, video_url, rendition="v0")
            assert video.date_ranges == (AD,)
            assert video.start == StartOffset(time_offset=4.0)
            assert [s.program_date_time for s in video.segments] == [
                T0 + timedelta(seconds=2 * i) for i in range(6)
            ]

            trick_text = (await client.get(trick_variant.url)).text
            assert "#EXT-X-I-FRAMES-ONLY\n" in trick_text and "BYTERANGE:" not in trick_text.replace(
                "MAP", ""
            )
            trick = parse_media(trick_text, trick_variant.url, rendition="i0")
            assert trick.i_frames_only
            for segment, (name, offset, length) in zip(trick.segments, i_frames(tagged), strict=True):
                assert segment.url.startswith(f"{proxy.base_url}/r/i0/seg/") and segment.byte_range is None
                response = await client.get(segment.url)
                assert response.status_code == 200
                assert response.content == file_bytes(tagged, name, offset, length)
            init = trick.segments[0].init_section
            assert init is not None and init.url.startswith(f"{proxy.base_url}/r/i0/init/")
            header_bytes = i_frames(tagged)[0][1]
            assert (await client.get(init.url)).content == file_bytes(tagged, "seg_000.ts", 0, header_bytes)
            assert (await client.get(f"{proxy.base_url}/r/i1/index.m3u8")).status_code == 404
            assert (await client.get(f"{proxy.base_url}/r/i0/seg/6.ts")).status_code == 404


async def _ffmpeg(*args: str) -> tuple[int, bytes, bytes]:
    ffmpeg = shutil.which("ffmpeg")
    if ffmpeg is None:
        pytest.skip("ffmpeg is not installed")
    proc = await asyncio.create_subprocess_exec(
        ffmpeg, "-v", "error", *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), 90)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise
    assert proc.returncode is not None
    return proc.returncode, out, err


async def test_ffmpeg_decodes_the_stream_and_its_i_frames_through_the_proxy(tagged: Path) -> None:
    with OriginServer(tagged) as origin:
        async with open_proxy(origin.url_for("master.m3u8"), config=HTTP_ONLY) as proxy:
            code, _, err = await _ffmpeg("-i", proxy.url, "-f", "null", "-")
            assert code == 0, err.decode()
            code, out, err = await _ffmpeg("-i", f"{proxy.base_url}/r/i0/index.m3u8", "-f", "framecrc", "-")
            assert code == 0, err.decode()
    frames = [line for line in out.decode().splitlines() if line and not line.startswith("#")]
    assert len(frames) == 6  # one picture per I-frame


# --------------------------------------------------------------------------------------------------
# The live-emulating origin, and a swarm on it


async def test_the_live_origin_dates_every_loop_consistently(tagged: Path) -> None:
    clock = [0.0]
    settings = LiveSettings(window_segments=8)
    with OriginServer(tagged, live=settings, clock=lambda: clock[0]) as origin:
        url = origin.url_for("live/video/index.m3u8")
        async with httpx.AsyncClient(timeout=20) as client:
            clock[0] = 14.0  # 8 + 7 published: the window spans the wrap to the second loop
            text = (await client.get(url)).text
            # The byte-range I-frame playlist has no live copy, so the live master leaves it out.
            assert (await client.get(origin.url_for("live/video/iframes.m3u8"))).status_code == 404
            live_master = parse_master((await client.get(origin.url_for("live/master.m3u8"))).text, url)
            assert live_master.i_frame_variants == () and len(live_master.variants) == 1
            assert live_master.start == StartOffset(time_offset=-2.0)
    playlist = parse_media(text, url, rendition="v0")
    assert "#EXT-X-DISCONTINUITY" in text
    segments = playlist.segments
    # Live segment n is VOD segment n % 6; every loop adds the VOD's 12 s.
    assert [s.program_date_time for s in segments] == [
        T0 + timedelta(seconds=2 * s.id.sequence) for s in segments
    ]
    ids = {r.id: r for r in playlist.date_ranges}
    # Window 7..14: VOD segment 2 (where the ad break is) of the second and third loops.
    assert set(ids) == {"ad-1~1", "ad-1~2"}
    assert ids["ad-1~1"].start_date == AD.start_date + timedelta(seconds=12)
    assert ids["ad-1~2"].start_date == AD.start_date + timedelta(seconds=24)
    assert ids["ad-1~1"].client_attributes == AD.client_attributes


async def test_three_viewers_share_the_dated_live_stream_without_stalls(
    tagged: Path, tracker: TrackerServer
) -> None:
    config = p2p_config(tracker.url).to_faq()
    with OriginServer(tagged, live=LiveSettings(window_segments=10)) as origin:
        specs = [
            ViewerSpec(
                url=origin.url_for("live/master.m3u8"),
                config=config,
                duration=12.0 - 2 * i,  # all three leave together, as in test_p2p_e2e
                forward_buffer=8.0,
                seed=30 + i,
                check_bytes_against=str(tagged),
            )
            for i in range(3)
        ]
        results = await run_staggered_viewers(specs, within=90)
    assert all(r["mismatches"] == 0 and r["segments_played"] > 0 for r in results), results
    assert all(r["stalls"] == 0 for r in results), results
    assert sum(r["p2p_bytes"] for r in results[1:]) > 0, results


async def test_a_precise_start_plays_from_inside_the_segment(tagged: Path, tmp_path: Path) -> None:
    root = tmp_path / "stream"
    shutil.copytree(tagged, root)
    rewrite_media(
        root / "video/index.m3u8",
        lambda lines: [x.replace("TIME-OFFSET=4", "TIME-OFFSET=5,PRECISE=YES") for x in lines],
    )
    snapshots: list[PlaybackSnapshot] = []
    played: list[int] = []
    with OriginServer(root) as origin:
        async with open_loader(origin.url_for("master.m3u8"), config=HTTP_ONLY) as loader:
            report = await play(
                loader,
                duration=1.5,
                on_snapshot=snapshots.append,
                on_segment=lambda loaded: played.append(loaded.segment.id.sequence),
            )
    assert played[0] == 2  # 4 s .. 6 s holds 5 s
    assert snapshots[0].position == 5.0
    assert report.stalls == 0 and 5.0 < report.position < 7.0


def test_the_playback_model_starts_inside_the_first_segment() -> None:
    model = PlaybackModel(start_position=5.0, now=0.0, startup_buffer=0.5)
    model.add_segment(4.0, 2.0, now=0.0)  # the segment holding 5 s
    assert model.buffer == 1.0 and model.update(now=0.0) == "playing"
    assert model.update(now=0.9) == "playing" and model.position == 5.9


async def test_the_proxy_re_serves_the_live_dates_and_ffmpeg_plays_them(tagged: Path) -> None:
    config = LoaderConfig(
        use_p2p=False, tracker_announce=(), http_retry_backoff=0.01, live_refresh_interval=0.2
    )
    with OriginServer(tagged, live=LiveSettings(window_segments=8)) as origin:
        async with (
            open_proxy(origin.url_for("live/master.m3u8"), config=config) as proxy,
            httpx.AsyncClient(timeout=20) as client,
        ):
            url = f"{proxy.base_url}/r/v0/index.m3u8"
            seen: dict[int, datetime | None] = {}
            for _ in range(2):  # two refreshes: a segment keeps its date
                video = parse_media((await client.get(url)).text, url, rendition="v0")
                for segment in video.segments:
                    assert seen.setdefault(segment.id.sequence, segment.program_date_time) == (
                        segment.program_date_time
                    )
                await asyncio.sleep(2.1)
            # Live segment n is VOD segment n % 6, and every loop adds 12 s: n is 2n seconds in.
            assert seen == {n: T0 + timedelta(seconds=2 * n) for n in seen}
            assert video.date_ranges and all(r.id.startswith("ad-1") for r in video.date_ranges)
            code, _, err = await _ffmpeg("-i", proxy.url, "-t", "3", "-f", "null", "-")
            assert code == 0, err.decode()
