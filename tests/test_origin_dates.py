"""The live-emulating origin dates a dated VOD playlist's live copy consistently on every loop, moves
its date ranges with the dates, and writes no date for an undated playlist."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from p2ploader.hls import MediaPlaylist, parse_media
from p2ploader.testing.origin import LiveSettings, OriginServer

T0 = datetime(2026, 12, 7, 3, 0, 0, tzinfo=UTC)


def vod(root: Path, body: list[str]) -> None:
    """A VOD playlist of four segments of 2, 2, 3 and 1 s (``body`` gives the tags in front)."""
    root.mkdir(parents=True, exist_ok=True)
    lines = ["#EXTM3U", "#EXT-X-TARGETDURATION:3", "#EXT-X-PLAYLIST-TYPE:VOD", *body, "#EXT-X-ENDLIST"]
    (root / "index.m3u8").write_text("\n".join(lines) + "\n")
    for index in range(4):
        (root / f"s{index}.ts").write_bytes(bytes([index]) * 188)


SEGMENTS = ["#EXTINF:2,", "s0.ts", "#EXTINF:2,", "s1.ts", "#EXTINF:3,", "s2.ts", "#EXTINF:1,", "s3.ts"]


def live_playlist(root: Path, at: float, *, window: int = 6) -> tuple[str, MediaPlaylist]:
    with (
        OriginServer(
            root, live=LiveSettings(window_segments=window, initial_segments=0), clock=lambda: at
        ) as origin,
        httpx.Client() as client,
    ):
        url = origin.url_for("live/index.m3u8")
        text = client.get(url).text
    return text, parse_media(text, url, rendition="v0")


def test_dates_continue_across_loops_from_a_tag_in_the_middle(tmp_path: Path) -> None:
    # The only tag is on segment 2 (at 4 s): segments 0 and 1 are dated backwards from it.
    body = [*SEGMENTS[:4], "#EXT-X-PROGRAM-DATE-TIME:2026-12-07T03:00:04Z", *SEGMENTS[4:]]
    vod(tmp_path, body)
    text, playlist = live_playlist(tmp_path, 17.0)  # 8 published after 17 s: two 8 s loops
    assert text.count("#EXT-X-PROGRAM-DATE-TIME") == len(playlist.segments) == 6
    starts = [0.0, 2.0, 4.0, 7.0]
    expected = [
        T0 + timedelta(seconds=8 * (s.id.sequence // 4) + starts[s.id.sequence % 4])
        for s in playlist.segments
    ]
    assert [s.program_date_time for s in playlist.segments] == expected
    for earlier, later in zip(playlist.segments, playlist.segments[1:], strict=False):
        assert earlier.program_date_time is not None
        assert later.program_date_time == earlier.program_date_time + timedelta(seconds=earlier.duration)


def test_a_vod_jump_in_dates_is_kept_and_each_loop_adds_the_whole_span(tmp_path: Path) -> None:
    body = ["#EXT-X-PROGRAM-DATE-TIME:2026-12-07T03:00:00Z", *SEGMENTS[:4]]
    body += ["#EXT-X-DISCONTINUITY", "#EXT-X-PROGRAM-DATE-TIME:2026-12-07T04:00:00Z", *SEGMENTS[4:]]
    vod(tmp_path, body)
    _, playlist = live_playlist(tmp_path, 17.0)
    span = timedelta(hours=1, seconds=4)  # 03:00:00 to the end of segment 3 at 04:00:04
    vod_dates = [T0, T0 + timedelta(seconds=2), T0 + timedelta(hours=1), T0 + timedelta(hours=1, seconds=3)]
    assert [s.program_date_time for s in playlist.segments] == [
        vod_dates[s.id.sequence % 4] + span * (s.id.sequence // 4) for s in playlist.segments
    ]


def test_date_ranges_move_with_their_loop(tmp_path: Path) -> None:
    ad = '#EXT-X-DATERANGE:ID="ad",START-DATE="2026-12-07T03:00:04Z",END-DATE="2026-12-07T03:00:07Z",X-K="v"'
    body = ["#EXT-X-PROGRAM-DATE-TIME:2026-12-07T03:00:00Z", *SEGMENTS[:4], ad, *SEGMENTS[4:]]
    vod(tmp_path, body)
    _, playlist = live_playlist(tmp_path, 17.0)  # window 2..7: segment 2 of loops 0 and 1
    assert [s.id.sequence for s in playlist.segments] == [2, 3, 4, 5, 6, 7]
    ranges = {r.id: r for r in playlist.date_ranges}
    assert set(ranges) == {"ad", "ad~1"}
    assert ranges["ad"].start_date == T0 + timedelta(seconds=4)  # the first loop keeps the VOD's
    moved = ranges["ad~1"]
    assert moved.start_date == T0 + timedelta(seconds=12)
    assert moved.end_date == T0 + timedelta(seconds=15)
    assert moved.client_attributes == {"X-K": '"v"'}


@pytest.mark.parametrize("at", [0.0, 17.0])
def test_an_undated_vod_gets_no_dates(tmp_path: Path, at: float) -> None:
    vod(tmp_path, SEGMENTS)
    text, playlist = live_playlist(tmp_path, at, window=3)
    assert "PROGRAM-DATE-TIME" not in text
    assert all(s.program_date_time is None for s in playlist.segments)


def test_the_live_master_keeps_only_i_frame_playlists_it_can_serve_live(tmp_path: Path) -> None:
    vod(tmp_path / "v", SEGMENTS)
    (tmp_path / "v" / "files.m3u8").write_text(
        "#EXTM3U\n#EXT-X-TARGETDURATION:3\n#EXT-X-I-FRAMES-ONLY\n#EXTINF:2,\ns0.ts\n#EXTINF:2,\ns1.ts\n#EXT-X-ENDLIST\n"
    )
    (tmp_path / "v" / "ranges.m3u8").write_text(
        "#EXTM3U\n#EXT-X-TARGETDURATION:3\n#EXT-X-I-FRAMES-ONLY\n#EXTINF:2,\n#EXT-X-BYTERANGE:100@0\ns0.ts\n"
        "#EXT-X-ENDLIST\n"
    )
    (tmp_path / "master.m3u8").write_text(
        "#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=1\nv/index.m3u8\n"
        '#EXT-X-I-FRAME-STREAM-INF:BANDWIDTH=1,URI="v/files.m3u8"\n'
        '#EXT-X-I-FRAME-STREAM-INF:BANDWIDTH=2,URI="v/ranges.m3u8"\n'
        '#EXT-X-I-FRAME-STREAM-INF:BANDWIDTH=3,URI="https://elsewhere.example.net/if.m3u8"\n'
    )
    with OriginServer(tmp_path, live=LiveSettings(window_segments=3)) as origin, httpx.Client() as client:
        text = client.get(origin.url_for("live/master.m3u8")).text
    assert 'URI="v/files.m3u8"' in text
    assert "ranges.m3u8" not in text
    assert 'URI="https://elsewhere.example.net/if.m3u8"' in text
