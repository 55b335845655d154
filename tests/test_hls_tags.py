"""The playlist model's date and start tags: EXT-X-PROGRAM-DATE-TIME (given and extrapolated),
EXT-X-DATERANGE, EXT-X-START, I-frame playlists, and how the live tracker keeps them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import attrs
import pytest

from p2ploader.errors import PlaylistError, UsageError
from p2ploader.hls import (
    DateRange,
    IFrameVariant,
    LivePlaylistTracker,
    MediaPlaylist,
    StartOffset,
    choose_start,
    parse_master,
    parse_media,
)

URL = "https://cdn.example.com/show/video/index.m3u8"
MASTER_URL = "https://cdn.example.com/show/master.m3u8"
T0 = datetime(2026, 12, 7, 3, 0, 0, tzinfo=UTC)


def media(body: list[str], *, sequence: int = 0, end: bool = True, header: list[str] | None = None) -> str:
    lines = ["#EXTM3U", "#EXT-X-VERSION:4", "#EXT-X-TARGETDURATION:4", f"#EXT-X-MEDIA-SEQUENCE:{sequence}"]
    lines += header or []
    lines += body
    if end:
        lines.append("#EXT-X-ENDLIST")
    return "\n".join(lines) + "\n"


def segs(*durations: float, first: int = 0, pdt: dict[int, str] | None = None) -> list[str]:
    """Segment lines seg<n>.ts with the given durations; ``pdt`` puts a date tag before segment n."""
    lines: list[str] = []
    for offset, duration in enumerate(durations):
        number = first + offset
        if pdt and number in pdt:
            lines.append(f"#EXT-X-PROGRAM-DATE-TIME:{pdt[number]}")
        lines += [f"#EXTINF:{duration},", f"seg{number}.ts"]
    return lines


def parse(text: str) -> MediaPlaylist:
    return parse_media(text, URL, rendition="v0")


def error_of(text: str) -> str:
    with pytest.raises(PlaylistError) as excinfo:
        parse(text)
    assert excinfo.value.url == URL
    return excinfo.value.reason


# --------------------------------------------------------------------------------------------------
# EXT-X-PROGRAM-DATE-TIME


def test_no_tag_no_dates() -> None:
    playlist = parse(media(segs(4, 4)))
    assert [s.program_date_time for s in playlist.segments] == [None, None]


def test_dates_extrapolated_forward_and_backward_from_one_tag() -> None:
    playlist = parse(media(segs(4, 3.5, 4, 2.25, pdt={2: "2026-12-07T03:00:07.500Z"})))
    dates = [s.program_date_time for s in playlist.segments]
    assert dates == [
        T0,  # 7.5 s before the tag: 4 + 3.5
        T0 + timedelta(seconds=4),
        T0 + timedelta(seconds=7.5),  # the tag itself
        T0 + timedelta(seconds=11.5),
    ]
    assert all(d is not None and d.tzinfo is not None for d in dates)


def test_a_new_tag_after_a_discontinuity_resets_the_dates() -> None:
    body = segs(4, 4, pdt={0: "2026-12-07T03:00:00Z"})
    body += ["#EXT-X-DISCONTINUITY", "#EXT-X-PROGRAM-DATE-TIME:2026-12-07T05:00:00Z"]
    body += segs(4, 4, first=2)
    playlist = parse(media(body))
    two_hours = T0 + timedelta(hours=2)
    assert [s.program_date_time for s in playlist.segments] == [
        T0,
        T0 + timedelta(seconds=4),
        two_hours,
        two_hours + timedelta(seconds=4),
    ]


def test_time_zones_and_fractions() -> None:
    playlist = parse(media(segs(4, pdt={0: "2026-12-07T05:30:00.123456789+02:30"})))
    date = playlist.segments[0].program_date_time
    assert date == datetime(2026, 12, 7, 5, 30, 0, 123456, tzinfo=timezone(timedelta(hours=2, minutes=30)))
    assert date == T0 + timedelta(microseconds=123456)


def test_a_date_without_zone_is_utc() -> None:
    playlist = parse(media(segs(4, pdt={0: "2026-12-07T03:00:00"})))
    assert playlist.segments[0].program_date_time == T0


@pytest.mark.parametrize(
    ("raw", "fragment"),
    [
        ("yesterday", "not an ISO 8601 date-time"),
        ("2026-13-07T03:00:00Z", "invalid date-time"),
        ("2026-02-30T03:00:00Z", "invalid date-time"),
        ("2026-12-07T24:00:00Z", "invalid date-time"),
        ("2026-12-07T03:00:00+25:00", "bad time zone offset"),
        ("2026-12-07", "not an ISO 8601 date-time"),
        ("", "not an ISO 8601 date-time"),
    ],
)
def test_malformed_dates_are_errors_with_their_line(raw: str, fragment: str) -> None:
    reason = error_of(media(segs(4, 4, pdt={1: raw})))
    assert reason.startswith("line 7: EXT-X-PROGRAM-DATE-TIME")
    assert fragment in reason


def test_dates_that_would_leave_the_calendar_are_errors() -> None:
    reason = error_of(media(segs(4, 4, pdt={0: "9999-12-31T23:59:59Z"})))
    assert reason == "EXT-X-PROGRAM-DATE-TIME: extrapolated dates leave years 1 to 9999"
    reason = error_of(media(segs(4, pdt={0: "0001-01-01T00:00:00+01:00"})))
    assert "out of range in UTC" in reason
    ad = '#EXT-X-DATERANGE:ID="x",START-DATE="9999-12-31T23:59:59Z",DURATION=99999999999'
    assert "START-DATE + DURATION is past year 9999" in error_of(
        media([ad, *segs(4, pdt={0: "2026-12-07T03:00:00Z"})])
    )


def test_the_tracker_leaves_a_segment_past_year_9999_undated() -> None:
    # m3u8 refuses such a playlist text, so the model is built by hand.
    first = parse(media(segs(4, pdt={0: "2026-12-07T03:00:00Z"}), end=False))
    last_date = datetime(9999, 12, 31, 23, 59, 58, tzinfo=UTC)
    first = attrs.evolve(first, segments=(attrs.evolve(first.segments[0], program_date_time=last_date),))
    tracker = LivePlaylistTracker(first)
    tracker.update(parse(media(segs(4, first=1), sequence=1, end=False)))
    assert tracker.current.segments[0].program_date_time is None


# --------------------------------------------------------------------------------------------------
# EXT-X-DATERANGE

AD_BREAK = (
    '#EXT-X-DATERANGE:ID="ad-1",CLASS="com.example.ad",START-DATE="2026-12-07T03:00:04Z",'
    'DURATION=4.0,PLANNED-DURATION=6,SCTE35-OUT=0xFC002F0000,X-COM-EXAMPLE-AD-ID="a b",X-COM-EXAMPLE-N=7'
)


def test_date_range_attributes() -> None:
    playlist = parse(media([AD_BREAK, *segs(4, 4, 4, pdt={0: "2026-12-07T03:00:00Z"})]))
    assert playlist.date_ranges == (
        DateRange(
            id="ad-1",
            class_name="com.example.ad",
            start_date=T0 + timedelta(seconds=4),
            duration=4.0,
            planned_duration=6.0,
            scte35_out="0xFC002F0000",
            client_attributes={"X-COM-EXAMPLE-AD-ID": '"a b"', "X-COM-EXAMPLE-N": "7"},
        ),
    )
    assert playlist.date_ranges[0].known_end == T0 + timedelta(seconds=8)
    with pytest.raises(TypeError):
        playlist.date_ranges[0].client_attributes["X-NEW"] = "1"  # type: ignore[index]


def test_tags_with_the_same_id_merge() -> None:
    ending = (
        '#EXT-X-DATERANGE:ID="ad-1",START-DATE="2026-12-07T03:00:04Z",'
        'END-DATE="2026-12-07T03:00:08Z",SCTE35-IN=0xFC01'
    )
    playlist = parse(
        media([AD_BREAK, *segs(4, 4, pdt={0: "2026-12-07T03:00:00Z"}), ending, *segs(4, first=2)])
    )
    (merged,) = playlist.date_ranges
    assert merged.end_date == T0 + timedelta(seconds=8)
    assert merged.scte35_out == "0xFC002F0000"
    assert merged.scte35_in == "0xFC01"


def test_end_on_next() -> None:
    tag = '#EXT-X-DATERANGE:ID="c",CLASS="chapter",START-DATE="2026-12-07T03:00:00Z",END-ON-NEXT=YES'
    (chapter,) = parse(media([tag, *segs(4, pdt={0: "2026-12-07T03:00:00Z"})])).date_ranges
    assert chapter.end_on_next
    assert chapter.known_end is None


START = 'START-DATE="2026-12-07T03:00:00Z"'


@pytest.mark.parametrize(
    ("attributes", "fragment"),
    [
        (START, "has no ID"),
        ('ID="x"', "has no START-DATE"),
        (f"ID=x,{START}", "ID must be a quoted string"),
        ('ID="x",START-DATE="soon"', "not an ISO 8601 date-time"),
        (
            f'ID="x",{START},END-DATE="2026-12-07T02:59:59Z"',
            "END-DATE 2026-12-07T02:59:59Z is before START-DATE",
        ),
        (
            f'ID="x",{START},END-DATE="2026-12-07T03:00:05Z",DURATION=4',
            "END-DATE is not START-DATE + DURATION",
        ),
        (f'ID="x",{START},DURATION=-4', "DURATION is not a non-negative decimal number"),
        (f'ID="x",{START},PLANNED-DURATION=nan', "PLANNED-DURATION is not a non-negative"),
        (f'ID="x",{START},END-ON-NEXT=YES', "END-ON-NEXT needs a CLASS"),
        (f'ID="x",CLASS="c",{START},END-ON-NEXT=NO', "END-ON-NEXT must be YES"),
        (f'ID="x",CLASS="c",{START},END-ON-NEXT=YES,DURATION=1', "END-ON-NEXT with END-DATE or DURATION"),
        (f'ID="x",{START},SCTE35-OUT="0x12"', "SCTE35-OUT is not a hexadecimal sequence"),
        (f'ID="x",{START},ID="y"', "attribute ID appears twice"),
        (f'ID="x",{START},', "malformed attribute list"),
        (f'ID="x" {START}', "malformed attribute list"),
    ],
)
def test_malformed_date_ranges(attributes: str, fragment: str) -> None:
    text = media([f"#EXT-X-DATERANGE:{attributes}", *segs(4, pdt={0: "2026-12-07T03:00:00Z"})])
    reason = error_of(text)
    assert reason.startswith("line 5: EXT-X-DATERANGE")
    assert fragment in reason


def test_conflicting_tags_with_one_id_are_an_error() -> None:
    other = '#EXT-X-DATERANGE:ID="ad-1",START-DATE="2026-12-07T03:00:05Z"'
    reason = error_of(media([AD_BREAK, other, *segs(4, pdt={0: "2026-12-07T03:00:00Z"})]))
    assert "line 6: EXT-X-DATERANGE: ID 'ad-1' has START-DATE=" in reason
    assert "on line 5" in reason


def test_a_date_range_needs_a_program_date_time() -> None:
    reason = error_of(media([AD_BREAK, *segs(4)]))
    assert reason == "line 5: EXT-X-DATERANGE in a playlist without EXT-X-PROGRAM-DATE-TIME"


# --------------------------------------------------------------------------------------------------
# EXT-X-START and choosing where to start


def test_start_offset_parsed() -> None:
    playlist = parse(media(segs(4, 4), header=["#EXT-X-START:TIME-OFFSET=-4.5,PRECISE=YES"]))
    assert playlist.start == StartOffset(time_offset=-4.5, precise=True)
    assert parse(media(segs(4))).start is None


@pytest.mark.parametrize(
    ("tag", "fragment"),
    [
        ("#EXT-X-START:PRECISE=YES", "has no TIME-OFFSET"),
        ("#EXT-X-START:TIME-OFFSET=abc", "TIME-OFFSET is not a decimal number"),
        ("#EXT-X-START:TIME-OFFSET=--1", "TIME-OFFSET is not a decimal number"),
        ("#EXT-X-START:TIME-OFFSET=4,PRECISE=yes", "PRECISE must be YES or NO"),
    ],
)
def test_malformed_start(tag: str, fragment: str) -> None:
    reason = error_of(media(segs(4), header=[tag]))
    assert reason.startswith("line 5: EXT-X-START")
    assert fragment in reason


def test_start_twice_is_an_error() -> None:
    reason = error_of(media(segs(4), header=["#EXT-X-START:TIME-OFFSET=1", "#EXT-X-START:TIME-OFFSET=2"]))
    assert reason == "line 6: EXT-X-START appears more than once"


FIVE = media(segs(2, 2, 2, 2, 2, first=10), sequence=10)


@pytest.mark.parametrize(
    ("offset", "precise", "sequence", "position"),
    [
        (4.0, False, 12, 4.0),  # on a boundary: the segment that starts there
        (4.0, True, 12, 4.0),
        (5.5, False, 12, 4.0),  # inside segment 12: its start
        (5.5, True, 12, 5.5),
        (-3.0, False, 13, 6.0),  # from the end (10 s): 7 s
        (-3.0, True, 13, 7.0),
        (0.0, False, 10, 0.0),
        (99.0, False, 14, 8.0),  # beyond the end: the end, the last segment
        (99.0, True, 14, 10.0),
        (-99.0, True, 10, 0.0),  # beyond the beginning: the beginning
    ],
)
def test_choose_start(offset: float, precise: bool, sequence: int, position: float) -> None:
    point = choose_start(parse(FIVE), start=StartOffset(time_offset=offset, precise=precise))
    assert point.segment.id.sequence == sequence
    assert point.position == pytest.approx(position)


def test_choose_start_without_tag() -> None:
    assert choose_start(parse(FIVE)).segment.id.sequence == 10
    live = parse(media(segs(2, 2, 2, 2, 2, first=10), sequence=10, end=False))
    assert choose_start(live).segment.id.sequence == 12  # three from the live edge
    assert choose_start(live, live_start_distance=1).segment.id.sequence == 14
    assert choose_start(live, start=StartOffset(time_offset=-4)).segment.id.sequence == 13
    with pytest.raises(UsageError):
        choose_start(parse(media([], end=False)))


# --------------------------------------------------------------------------------------------------
# I-frame playlists

MASTER = """#EXTM3U
#EXT-X-START:TIME-OFFSET=4
#EXT-X-MEDIA:TYPE=VIDEO,GROUP-ID="cam",NAME="Main",DEFAULT=YES
#EXT-X-STREAM-INF:BANDWIDTH=400000,VIDEO="cam"
video/index.m3u8
#EXT-X-I-FRAME-STREAM-INF:BANDWIDTH=86000,AVERAGE-BANDWIDTH=80000,CODECS="avc1.4d400d",RESOLUTION=320x180,VIDEO="cam",URI="video/iframes.m3u8"
#EXT-X-I-FRAME-STREAM-INF:BANDWIDTH=40000,URI="https://other.example.net/if.m3u8"
"""


def test_master_i_frame_variants_and_start() -> None:
    master = parse_master(MASTER, MASTER_URL)
    assert master.start == StartOffset(time_offset=4.0)
    assert master.i_frame_variants == (
        IFrameVariant(
            index=0,
            rendition_id="i0",
            url="https://cdn.example.com/show/video/iframes.m3u8",
            bandwidth=86000,
            average_bandwidth=80000,
            codecs="avc1.4d400d",
            resolution=(320, 180),
            video="cam",
        ),
        IFrameVariant(index=1, rendition_id="i1", url="https://other.example.net/if.m3u8", bandwidth=40000),
    )
    assert [v.rendition_id for v in master.variants] == ["v0"]


@pytest.mark.parametrize(
    ("attributes", "fragment"),
    [
        ('URI="i.m3u8"', "has no BANDWIDTH"),
        ("BANDWIDTH=1", "has no URI"),
        ('BANDWIDTH=x,URI="i.m3u8"', "BANDWIDTH is not a decimal integer"),
        ('BANDWIDTH=1,RESOLUTION=big,URI="i.m3u8"', "invalid RESOLUTION"),
        ('BANDWIDTH=1,VIDEO="nope",URI="i.m3u8"', "VIDEO group 'nope' has no EXT-X-MEDIA"),
        ("BANDWIDTH=1,URI=i.m3u8", "URI must be a quoted string"),
    ],
)
def test_malformed_i_frame_variants(attributes: str, fragment: str) -> None:
    text = "#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=1\nv.m3u8\n#EXT-X-I-FRAME-STREAM-INF:" + attributes + "\n"
    with pytest.raises(PlaylistError) as excinfo:
        parse_master(text, MASTER_URL)
    assert excinfo.value.reason.startswith("line 4: EXT-X-I-FRAME-STREAM-INF")
    assert fragment in excinfo.value.reason


def test_i_frame_media_playlist() -> None:
    text = media(
        [
            '#EXT-X-MAP:URI="seg0.ts",BYTERANGE="376@0"',
            "#EXTINF:2,",
            "#EXT-X-BYTERANGE:9000@376",
            "seg0.ts",
            "#EXTINF:2,",
            "#EXT-X-BYTERANGE:8000@376",
            "seg1.ts",
        ],
        header=["#EXT-X-I-FRAMES-ONLY"],
    )
    playlist = parse(text)
    assert playlist.i_frames_only
    assert [(s.url.rsplit("/", 1)[1], s.byte_range) for s in playlist.segments] == [
        ("seg0.ts", playlist.segments[0].byte_range),
        ("seg1.ts", playlist.segments[1].byte_range),
    ]
    assert [(r.offset, r.length) for r in (s.byte_range for s in playlist.segments) if r] == [
        (376, 9000),
        (376, 8000),
    ]
    assert not parse(media(segs(4))).i_frames_only


# --------------------------------------------------------------------------------------------------
# The live tracker


def live(
    first: int, count: int, *, pdt: dict[int, str] | None = None, ranges: list[str] | None = None
) -> MediaPlaylist:
    return parse(
        media([*(ranges or []), *segs(*([4.0] * count), first=first, pdt=pdt)], sequence=first, end=False)
    )


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def test_tracker_extrapolates_when_a_refresh_lost_its_date_tag() -> None:
    tracker = LivePlaylistTracker(live(0, 3, pdt={0: "2026-12-07T03:00:00Z"}))
    tracker.update(live(3, 3))  # the tag slid out with segment 0; segments 3..5 have none
    assert [s.program_date_time for s in tracker.current.segments] == [at(12), at(16), at(20)]


def test_tracker_keeps_known_dates_and_takes_new_tags() -> None:
    tracker = LivePlaylistTracker(live(0, 3, pdt={0: "2026-12-07T03:00:00Z"}))
    # The refresh says segment 1 is 1 s later than we extrapolated (a sloppy server): the date we
    # handed out stays, the new segments follow the refresh's own dates.
    update = tracker.update(live(1, 3, pdt={1: "2026-12-07T03:00:05Z"}))
    assert [s.program_date_time for s in tracker.current.segments] == [at(4), at(8), at(13)]
    assert [s.program_date_time for s in update.added] == [at(13)]


def test_tracker_gives_dates_to_known_segments_once_the_tag_appears() -> None:
    tracker = LivePlaylistTracker(live(0, 2))
    tracker.update(live(0, 3, pdt={2: "2026-12-07T03:00:08Z"}))
    assert [s.program_date_time for s in tracker.current.segments] == [at(0), at(4), at(8)]


def test_tracker_keeps_date_ranges_while_they_overlap_the_window() -> None:
    ad = '#EXT-X-DATERANGE:ID="ad",START-DATE="2026-12-07T03:00:04Z",DURATION=4'
    chapter = '#EXT-X-DATERANGE:ID="ch",CLASS="c",START-DATE="2026-12-07T03:00:00Z",END-ON-NEXT=YES'
    tracker = LivePlaylistTracker(live(0, 3, pdt={0: "2026-12-07T03:00:00Z"}, ranges=[ad, chapter]))
    # Window 2..4 (from 8 s): the ad ends at 8 s, still touching it; the chapter (start 0 s, no
    # known end) is gone once the refresh stops listing it.
    tracker.update(live(2, 3, pdt={2: "2026-12-07T03:00:08Z"}))
    assert [r.id for r in tracker.current.date_ranges] == ["ad"]
    # The refresh adds the ad's end: the newer version replaces the old one.
    ending = '#EXT-X-DATERANGE:ID="ad",START-DATE="2026-12-07T03:00:04Z",DURATION=4,SCTE35-IN=0x01'
    tracker.update(live(3, 3, pdt={3: "2026-12-07T03:00:12Z"}, ranges=[ending]))
    assert [(r.id, r.scte35_in) for r in tracker.current.date_ranges] == [("ad", "0x01")]
    tracker.update(live(4, 3, pdt={4: "2026-12-07T03:00:16Z"}))
    assert tracker.current.date_ranges == ()


def test_a_refresh_that_only_adds_a_date_range_is_a_change() -> None:
    tracker = LivePlaylistTracker(live(0, 2, pdt={0: "2026-12-07T03:00:00Z"}))
    ad = '#EXT-X-DATERANGE:ID="ad",START-DATE="2026-12-07T03:00:04Z"'
    update = tracker.update(live(0, 2, pdt={0: "2026-12-07T03:00:00Z"}, ranges=[ad]))
    assert not update.unchanged
    assert [r.id for r in tracker.current.date_ranges] == ["ad"]
