"""The proxy's playlist rendering of dates, date ranges, start offsets and I-frame playlists (pure
functions: the model in, text out, and the text parsed back to the same model)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from p2ploader.hls import parse_master, parse_media
from p2ploader.proxy.paths import Token, parse_token
from p2ploader.proxy.playlists import render_master, render_media
from p2ploader.proxy.resources import ResourceTable

ORIGIN = "https://cdn.example.com/show/"
PROXY = "http://127.0.0.1:8080"

DATED = """#EXTM3U
#EXT-X-VERSION:4
#EXT-X-TARGETDURATION:4
#EXT-X-MEDIA-SEQUENCE:7
#EXT-X-START:TIME-OFFSET=-6.5,PRECISE=YES
#EXT-X-DATERANGE:ID="chapter",CLASS="com.example.chapter",START-DATE="2026-12-07T05:30:00.250+02:30",END-ON-NEXT=YES
#EXT-X-DATERANGE:ID="ad",START-DATE="2026-12-07T03:00:04.000001Z",END-DATE="2026-12-07T03:00:08.000001Z",X-ASSET-URI="https://ads.example.com/a.m3u8",SCTE35-CMD=0xAB,SCTE35-IN=0xCD
#EXTINF:4,
seg7.ts
#EXT-X-PROGRAM-DATE-TIME:2026-12-07T05:30:04.250+02:30
#EXTINF:3.5,
seg8.ts
#EXT-X-DISCONTINUITY
#EXT-X-PROGRAM-DATE-TIME:2026-12-07T04:00:00Z
#EXTINF:4,
seg9.ts
"""


def test_dates_ranges_and_start_survive_a_round_trip() -> None:
    origin = parse_media(DATED, ORIGIN + "index.m3u8", rendition="v0")
    text = render_media(origin, Token("v", 0), ResourceTable())
    assert "#EXT-X-START:TIME-OFFSET=-6.5,PRECISE=YES\n" in text
    # Segment 7 was dated backwards from segment 8's tag; every segment carries its date.
    assert "#EXT-X-PROGRAM-DATE-TIME:2026-12-07T05:30:00.250+02:30\n#EXTINF:4.000000,\n" in text
    assert "#EXT-X-PROGRAM-DATE-TIME:2026-12-07T04:00:00.000Z\n" in text
    assert 'X-ASSET-URI="https://ads.example.com/a.m3u8"' in text  # passed through, not rewritten
    assert 'START-DATE="2026-12-07T03:00:04.000001Z"' in text
    served = parse_media(text, PROXY + "/r/v0/index.m3u8", rendition="v0")
    assert served.start == origin.start
    assert served.date_ranges == origin.date_ranges
    assert [s.program_date_time for s in served.segments] == [s.program_date_time for s in origin.segments]
    assert served.segments[0].program_date_time == datetime(
        2026, 12, 7, 5, 30, 0, 250000, tzinfo=timezone(timedelta(hours=2, minutes=30))
    )
    assert served.segments[2].program_date_time == datetime(2026, 12, 7, 4, 0, tzinfo=UTC)


def test_no_dates_no_date_tags() -> None:
    origin = parse_media(
        "#EXTM3U\n#EXT-X-TARGETDURATION:4\n#EXTINF:4,\na.ts\n#EXT-X-ENDLIST\n",
        ORIGIN + "i.m3u8",
        rendition="v0",
    )
    text = render_media(origin, Token("v", 0), ResourceTable())
    assert "PROGRAM-DATE-TIME" not in text and "DATERANGE" not in text and "EXT-X-START" not in text


MASTER = """#EXTM3U
#EXT-X-START:TIME-OFFSET=10
#EXT-X-MEDIA:TYPE=VIDEO,GROUP-ID="cam",NAME="Main",DEFAULT=YES
#EXT-X-STREAM-INF:BANDWIDTH=400000,VIDEO="cam"
v/index.m3u8
#EXT-X-STREAM-INF:BANDWIDTH=800000,VIDEO="cam"
v2/index.m3u8
#EXT-X-I-FRAME-STREAM-INF:BANDWIDTH=86000,AVERAGE-BANDWIDTH=80000,CODECS="avc1.4d400d",RESOLUTION=320x180,VIDEO="cam",URI="v/iframes.m3u8"
#EXT-X-I-FRAME-STREAM-INF:BANDWIDTH=40000,URI="https://elsewhere.example.net/if.m3u8"
"""


def test_the_master_lists_i_frame_playlists_through_the_proxy() -> None:
    origin = parse_master(MASTER, ORIGIN + "master.m3u8")
    for only in (None, origin.variants[1]):  # pinned or not, trick play stays listed
        text = render_master(origin, only=only)
        assert "https://" not in text and "iframes" not in text
        served = parse_master(text, PROXY + "/master.m3u8")
        assert served.start == origin.start
        assert [v.url for v in served.i_frame_variants] == [
            PROXY + "/r/i0/index.m3u8",
            PROXY + "/r/i1/index.m3u8",
        ]
        for mine, theirs in zip(served.i_frame_variants, origin.i_frame_variants, strict=True):
            assert (mine.bandwidth, mine.average_bandwidth, mine.codecs, mine.resolution, mine.video) == (
                theirs.bandwidth,
                theirs.average_bandwidth,
                theirs.codecs,
                theirs.resolution,
                theirs.video,
            )


def test_an_i_frame_playlist_becomes_whole_proxy_segments() -> None:
    text = """#EXTM3U
#EXT-X-VERSION:4
#EXT-X-TARGETDURATION:2
#EXT-X-I-FRAMES-ONLY
#EXT-X-MAP:URI="seg0.ts",BYTERANGE="564@0"
#EXTINF:2,
#EXT-X-BYTERANGE:3384@564
seg0.ts
#EXTINF:2,
#EXT-X-BYTERANGE:4000@564
seg1.ts
#EXT-X-ENDLIST
"""
    origin = parse_media(text, ORIGIN + "v/iframes.m3u8", rendition="i0")
    rendered = render_media(origin, parse_token("i0"), ResourceTable())
    assert "#EXT-X-VERSION:6\n" in rendered  # EXT-X-MAP needs 6 (>= 4 for I-FRAMES-ONLY)
    assert "#EXT-X-I-FRAMES-ONLY\n" in rendered and "BYTERANGE" not in rendered
    served = parse_media(rendered, PROXY + "/r/i0/index.m3u8", rendition="i0")
    assert served.i_frames_only
    assert [s.url for s in served.segments] == [PROXY + "/r/i0/seg/0.ts", PROXY + "/r/i0/seg/1.ts"]
    assert {s.init_section.url for s in served.segments if s.init_section} == {PROXY + "/r/i0/init/0.ts"}
