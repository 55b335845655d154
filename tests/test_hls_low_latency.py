"""The LL-HLS playlist model (RFC 8216bis): parts, server control, preload hints, rendition
reports, delta updates, their validation, the live tracker's handling of them, and the follower's
helpers (live edge, next blocking request, low-latency start).

The playlists are shaped like RFC 8216bis's Appendix examples (4 s segments of twelve 0.33334 s
parts, a preload hint for the next part, a rendition report), written here.
"""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from p2ploader.core.low_latency import PreloadHint, RenditionReport, ServerControl, SkippedSegments
from p2ploader.core.segments import ByteRange, PartId, SegmentId
from p2ploader.errors import DeltaPlaylistError, PlaylistError, UsageError
from p2ploader.hls import (
    LivePlaylistTracker,
    MediaPlaylist,
    blocking_reload_url,
    low_latency_tags,
    parse_master,
    parse_media,
    parse_playlist,
)
from p2ploader.hls_low_latency import LowLatencyStart, live_edge, low_latency_start, next_blocking_request

URL = "https://example.com/2M/waitForMSN.php"
PART = 0.33334
PARTS_PER_SEGMENT = 12
SEGMENT = 4.00008  # twelve parts

SERVER_CONTROL = "#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,PART-HOLD-BACK=1.0,CAN-SKIP-UNTIL=24.0"


def ll_text(
    *,
    first: int = 266,
    segments: int = 8,
    parted: int = 2,
    pending: int = 3,
    server_control: str | None = SERVER_CONTROL,
    part_inf: str | None = f"#EXT-X-PART-INF:PART-TARGET={PART}",
    hints: tuple[str, ...] | None = None,
    reports: tuple[str, ...] = (
        '#EXT-X-RENDITION-REPORT:URI="../1M/waitForMSN.php",LAST-MSN=273,LAST-PART=2',
    ),
    skip: str | None = None,
    skipped: int = 0,
    extra_header: tuple[str, ...] = (),
    independent_every: int = 4,
    end: bool = False,
) -> str:
    """A live LL-HLS media playlist: ``segments`` complete segments from ``first`` (the last
    ``parted`` of them with their parts listed), then ``pending`` parts of the next segment, a
    preload hint for the part after them and rendition reports. With ``skip``, an EXT-X-SKIP line
    and the first ``skipped`` segments left out (a delta update)."""
    lines = ["#EXTM3U", "#EXT-X-TARGETDURATION:4", "#EXT-X-VERSION:9"]
    if server_control is not None:
        lines.append(server_control)
    if part_inf is not None:
        lines.append(part_inf)
    lines += [f"#EXT-X-MEDIA-SEQUENCE:{first}", *extra_header, '#EXT-X-MAP:URI="init.mp4"']
    if skip is not None:
        lines.append(skip)

    def parts_of(sequence: int, count: int) -> list[str]:
        return [
            f'#EXT-X-PART:DURATION={PART},URI="filePart{sequence}.{index}.mp4"'
            + (",INDEPENDENT=YES" if index % independent_every == 0 else "")
            for index in range(count)
        ]

    for sequence in range(first + skipped, first + segments):
        if sequence >= first + segments - parted:
            lines += parts_of(sequence, PARTS_PER_SEGMENT)
        lines += [f"#EXTINF:{SEGMENT},", f"fileSequence{sequence}.mp4"]
    next_sequence = first + segments
    lines += parts_of(next_sequence, pending)
    if hints is None:
        hints = (f'#EXT-X-PRELOAD-HINT:TYPE=PART,URI="filePart{next_sequence}.{pending}.mp4"',)
    lines += hints
    lines += reports
    if end:
        lines.append("#EXT-X-ENDLIST")
    return "\n".join(lines) + "\n"


def parse(text: str) -> MediaPlaylist:
    return parse_media(text, URL, rendition="v0")


def reason(text: str) -> str:
    with pytest.raises(PlaylistError) as raised:
        parse(text)
    assert raised.value.url == URL
    return raised.value.reason


# --------------------------------------------------------------------------------------------------
# Parsing


def test_rfc_shaped_playlist_is_read_in_full() -> None:
    playlist = parse(ll_text())
    assert playlist.server_control == ServerControl(
        can_block_reload=True, can_skip_until=24.0, part_hold_back=1.0
    )
    assert playlist.part_target == PART
    assert [s.id.sequence for s in playlist.segments] == list(range(266, 274))
    # Only the last two segments list their parts; older ones are whole.
    assert [len(s.parts) for s in playlist.segments] == [0] * 6 + [12, 12]
    segment = playlist.segments[-1]
    assert [p.id for p in segment.parts] == [PartId(SegmentId("v0", 273), i) for i in range(12)]
    assert segment.parts[1].url == "https://example.com/2M/filePart273.1.mp4"
    assert segment.parts[1].duration == PART
    assert [p.independent for p in segment.parts[:5]] == [True, False, False, False, True]
    assert not any(p.gap or p.byte_range for p in segment.parts)
    assert [p.id for p in playlist.pending_parts] == [PartId(SegmentId("v0", 274), i) for i in range(3)]
    assert playlist.preload_hints == (
        PreloadHint(type="PART", url="https://example.com/2M/filePart274.3.mp4"),
    )
    assert playlist.rendition_reports == (
        RenditionReport(url="https://example.com/1M/waitForMSN.php", last_msn=273, last_part=2),
    )
    assert playlist.skipped is None


def test_regular_playlist_has_no_low_latency_fields() -> None:
    text = "#EXTM3U\n#EXT-X-TARGETDURATION:4\n#EXTINF:4,\na.ts\n"
    playlist = parse(text)
    assert playlist.server_control is None
    assert playlist.part_target is None
    assert playlist.pending_parts == playlist.preload_hints == playlist.rendition_reports == ()
    assert playlist.skipped is None


def test_server_control_without_parts_and_all_its_attributes() -> None:
    control = (
        "#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,HOLD-BACK=12.0,CAN-SKIP-UNTIL=24,CAN-SKIP-DATERANGES=YES"
    )
    playlist = parse(ll_text(server_control=control, part_inf=None, parted=0, pending=0, hints=()))
    assert playlist.server_control == ServerControl(
        can_block_reload=True, can_skip_until=24.0, can_skip_dateranges=True, hold_back=12.0
    )
    assert playlist.part_target is None


def test_gap_parts_and_a_preload_hint_for_a_map() -> None:
    text = ll_text(
        pending=2,
        hints=(
            '#EXT-X-PRELOAD-HINT:TYPE=PART,URI="filePart274.2.mp4"',
            '#EXT-X-PRELOAD-HINT:TYPE=MAP,URI="init2.mp4"',
        ),
    ).replace('URI="filePart274.1.mp4"', 'URI="filePart274.1.mp4",GAP=YES')
    playlist = parse(text)
    assert [p.gap for p in playlist.pending_parts] == [False, True]
    assert [h.type for h in playlist.preload_hints] == ["PART", "MAP"]
    assert playlist.preload_hints[1].url == "https://example.com/2M/init2.mp4"


def test_parts_between_extinf_and_uri_belong_to_that_segment() -> None:
    text = (
        "#EXTM3U\n#EXT-X-TARGETDURATION:1\n#EXT-X-PART-INF:PART-TARGET=0.5\n"
        '#EXT-X-PART:DURATION=0.5,URI="a.0.mp4"\n#EXTINF:1.0,\n'
        '#EXT-X-PART:DURATION=0.5,URI="a.1.mp4"\na.mp4\n'
    )
    playlist = parse(text)
    assert [str(p.id) for p in playlist.segments[0].parts] == ["v0#0.0", "v0#0.1"]


def test_only_pending_parts_at_the_start_of_a_stream() -> None:
    text = "#EXTM3U\n#EXT-X-TARGETDURATION:4\n#EXT-X-MEDIA-SEQUENCE:9\n#EXT-X-PART-INF:PART-TARGET=1\n"
    text += '#EXT-X-PART:DURATION=1,URI="p9.0.mp4",INDEPENDENT=YES\n'
    playlist = parse(text)
    assert playlist.segments == ()
    assert [str(p.id) for p in playlist.pending_parts] == ["v0#9.0"]
    assert live_edge(playlist) == (9, 0)
    assert next_blocking_request(playlist) == (9, 1)


def test_byte_range_parts_continue_after_the_previous_part_of_their_uri() -> None:
    text = "\n".join(
        [
            "#EXTM3U",
            "#EXT-X-TARGETDURATION:4",
            "#EXT-X-PART-INF:PART-TARGET=1.0",
            '#EXT-X-PART:DURATION=1.0,URI="s1.mp4",BYTERANGE="1000@0",INDEPENDENT=YES',
            '#EXT-X-PART:DURATION=1.0,URI="s1.mp4",BYTERANGE="2000"',
            '#EXT-X-PART:DURATION=1.0,URI="s1.mp4",BYTERANGE="500"',
            '#EXT-X-PART:DURATION=1.0,URI="s1.mp4",BYTERANGE="700"',
            "#EXTINF:4.0,",
            "s1.mp4",
            '#EXT-X-PART:DURATION=1.0,URI="s2.mp4",BYTERANGE="800@0"',
            # Another resource in between does not reset s2's position.
            '#EXT-X-PART:DURATION=1.0,URI="other.mp4",BYTERANGE="10@5"',
            '#EXT-X-PART:DURATION=1.0,URI="s2.mp4",BYTERANGE="900"',
            '#EXT-X-PRELOAD-HINT:TYPE=PART,URI="s2.mp4",BYTERANGE-START=1700,BYTERANGE-LENGTH=600',
        ]
    )
    playlist = parse(text)
    assert [p.byte_range for p in playlist.segments[0].parts] == [
        ByteRange(offset=0, length=1000),
        ByteRange(offset=1000, length=2000),
        ByteRange(offset=3000, length=500),
        ByteRange(offset=3500, length=700),
    ]
    assert [p.byte_range for p in playlist.pending_parts] == [
        ByteRange(offset=0, length=800),
        ByteRange(offset=5, length=10),
        ByteRange(offset=800, length=900),
    ]
    assert playlist.preload_hints[0] == PreloadHint(
        type="PART", url="https://example.com/2M/s2.mp4", byte_range_start=1700, byte_range_length=600
    )


def test_byte_range_without_offset_needs_a_previous_sub_range_of_its_uri() -> None:
    text = "\n".join(
        [
            "#EXTM3U",
            "#EXT-X-TARGETDURATION:4",
            "#EXT-X-PART-INF:PART-TARGET=1.0",
            '#EXT-X-PART:DURATION=1.0,URI="a.mp4",BYTERANGE="10@0"',
            '#EXT-X-PART:DURATION=1.0,URI="b.mp4",BYTERANGE="10"',
        ]
    )
    assert reason(text) == "line 5: EXT-X-PART: byte range '10' has no offset and no previous sub-range"
    # A whole-resource part of that URI in between ends the run, as for segments.
    text = text.replace(
        '"b.mp4",BYTERANGE="10"', '"a.mp4"\n#EXT-X-PART:DURATION=1.0,URI="a.mp4",BYTERANGE="10"'
    )
    assert "line 6: EXT-X-PART: byte range '10' has no offset" in reason(text)


def test_first_listed_segment_with_only_its_last_parts_is_kept_whole() -> None:
    # The server has started removing the parts of the oldest parted segment (4 of 12 left).
    lines = ll_text().splitlines()
    first_part = next(i for i, line in enumerate(lines) if "filePart272.0.mp4" in line)
    del lines[first_part : first_part + 8]
    playlist = parse("\n".join(lines))
    assert [len(s.parts) for s in playlist.segments[-2:]] == [0, 12]


def test_delta_playlist_lists_the_segments_after_the_skipped_ones() -> None:
    text = ll_text(skip='#EXT-X-SKIP:SKIPPED-SEGMENTS=3,RECENTLY-REMOVED-DATERANGES="ad1\tad2"', skipped=3)
    playlist = parse(text)
    assert playlist.skipped == SkippedSegments(count=3, recently_removed_dateranges=("ad1", "ad2"))
    assert playlist.media_sequence == 269  # EXT-X-MEDIA-SEQUENCE 266 + 3 skipped
    assert [s.id.sequence for s in playlist.segments] == list(range(269, 274))
    assert playlist.segments[0].url == "https://example.com/2M/fileSequence269.mp4"
    assert [str(p.id) for p in playlist.pending_parts] == ["v0#274.0", "v0#274.1", "v0#274.2"]


def test_skip_in_a_master_playlist_is_refused() -> None:
    master = "#EXTM3U\n#EXT-X-SKIP:SKIPPED-SEGMENTS=1\n#EXT-X-STREAM-INF:BANDWIDTH=1\nv.m3u8\n"
    for call in (parse_master, parse_playlist):
        with pytest.raises(PlaylistError, match=r"EXT-X-SKIP.*\(line 2\)"):
            call(master, URL)


# --------------------------------------------------------------------------------------------------
# Validation: every error path is a PlaylistError naming its line


def replaced(old: str, new: str, **kwargs: object) -> str:
    text = ll_text(**kwargs)  # type: ignore[arg-type]
    assert old in text
    return text.replace(old, new, 1)


ERRORS = [
    pytest.param(
        ll_text(part_inf=None, server_control=None),
        "line 18: EXT-X-PART without EXT-X-PART-INF",
        id="part-without-part-inf",
    ),
    pytest.param(
        replaced('DURATION=0.33334,URI="filePart273.5.mp4"', 'DURATION=0.33335,URI="filePart273.5.mp4"'),
        "DURATION 0.33335s exceeds PART-TARGET 0.33334s",
        id="part-longer-than-part-target",
    ),
    pytest.param(
        ll_text(server_control="#EXT-X-SERVER-CONTROL:CAN-SKIP-DATERANGES=YES,PART-HOLD-BACK=1"),
        "CAN-SKIP-DATERANGES=YES without CAN-SKIP-UNTIL",
        id="skip-dateranges-without-skip",
    ),
    pytest.param(
        ll_text(server_control="#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=MAYBE,PART-HOLD-BACK=1"),
        "line 4: EXT-X-SERVER-CONTROL: CAN-BLOCK-RELOAD must be YES or NO, got 'MAYBE'",
        id="block-reload-not-yes-no",
    ),
    pytest.param(
        ll_text(server_control="#EXT-X-SERVER-CONTROL:PART-HOLD-BACK=-1"),
        "PART-HOLD-BACK is not a non-negative decimal number: '-1'",
        id="negative-part-hold-back",
    ),
    pytest.param(
        ll_text(extra_header=(SERVER_CONTROL,)),
        "EXT-X-SERVER-CONTROL appears more than once",
        id="server-control-twice",
    ),
    pytest.param(
        ll_text(extra_header=("#EXT-X-PART-INF:PART-TARGET=0.5",)),
        "EXT-X-PART-INF appears more than once",
        id="part-inf-twice",
    ),
    pytest.param(
        ll_text(part_inf="#EXT-X-PART-INF:X=1"),
        "line 5: EXT-X-PART-INF has no PART-TARGET",
        id="no-part-target",
    ),
    pytest.param(
        ll_text(part_inf="#EXT-X-PART-INF:PART-TARGET=0"),
        "PART-TARGET must be > 0 seconds",
        id="zero-part-target",
    ),
    pytest.param(
        ll_text(part_inf="#EXT-X-PART-INF:PART-TARGET=nan"),
        "PART-TARGET is not a non-negative decimal number: 'nan'",
        id="nan-part-target",
    ),
    pytest.param(
        replaced('URI="filePart273.1.mp4"', 'URI="filePart273.1.mp4",INDEPENDENT=MAYBE'),
        "INDEPENDENT must be YES or NO",
        id="independent-not-yes-no",
    ),
    pytest.param(
        replaced('URI="filePart274.0.mp4"', 'URI="filePart274.0.mp4",GAP=1'),
        "GAP must be YES or NO",
        id="gap-not-yes-no",
    ),
    pytest.param(replaced(',URI="filePart274.1.mp4"', ""), "EXT-X-PART has no URI", id="part-without-uri"),
    pytest.param(
        replaced('DURATION=0.33334,URI="filePart274.1.mp4"', 'URI="filePart274.1.mp4"'),
        "EXT-X-PART has no DURATION",
        id="part-without-duration",
    ),
    pytest.param(
        replaced('DURATION=0.33334,URI="filePart274.1.mp4"', 'DURATION=abc,URI="filePart274.1.mp4"'),
        "DURATION is not a non-negative decimal number: 'abc'",
        id="part-duration-not-a-number",
    ),
    pytest.param(
        replaced('URI="filePart274.1.mp4"', "URI=filePart274.1.mp4"),
        "URI must be a quoted string",
        id="part-uri-unquoted",
    ),
    pytest.param(
        replaced('URI="filePart274.1.mp4"', 'URI="filePart274.1.mp4",BYTERANGE="0@0"'),
        "bad byte range '0@0' (length must be 1 .. 2^64-1)",
        id="part-empty-byte-range",
    ),
    pytest.param(
        replaced('URI="filePart274.1.mp4"', 'URI="filePart274.1.mp4",,'),
        "EXT-X-PART: malformed attribute list",
        id="part-malformed-attributes",
    ),
    pytest.param(
        ll_text(hints=('#EXT-X-PRELOAD-HINT:TYPE=SEGMENT,URI="x.mp4"',)),
        "EXT-X-PRELOAD-HINT: TYPE must be PART or MAP, got 'SEGMENT'",
        id="hint-unknown-type",
    ),
    pytest.param(
        ll_text(hints=('#EXT-X-PRELOAD-HINT:URI="x.mp4"',)),
        "TYPE must be PART or MAP, got None",
        id="hint-without-type",
    ),
    pytest.param(
        ll_text(
            hints=('#EXT-X-PRELOAD-HINT:TYPE=PART,URI="a.mp4"', '#EXT-X-PRELOAD-HINT:TYPE=PART,URI="b.mp4"')
        ),
        "a second preload hint of TYPE=PART",
        id="hint-twice",
    ),
    pytest.param(
        ll_text(hints=("#EXT-X-PRELOAD-HINT:TYPE=PART",)), "EXT-X-PRELOAD-HINT has no URI", id="hint-no-uri"
    ),
    pytest.param(
        ll_text(hints=('#EXT-X-PRELOAD-HINT:TYPE=PART,URI="a",BYTERANGE-LENGTH=0',)),
        "BYTERANGE-LENGTH must be > 0 bytes",
        id="hint-empty-length",
    ),
    pytest.param(
        ll_text(hints=('#EXT-X-PRELOAD-HINT:TYPE=PART,URI="a",BYTERANGE-START=-5',)),
        "BYTERANGE-START is not a decimal integer: '-5'",
        id="hint-negative-start",
    ),
    pytest.param(
        replaced(
            '#EXT-X-PART:DURATION=0.33334,URI="filePart273.11.mp4"',
            '#EXT-X-PART:DURATION=0.33334,URI="filePart273.11.mp4"\n#EXT-X-PART:DURATION=0.2,URI="extra.mp4"',
        ),
        "segment 273 (line 47): its 13 parts last 4.20008s but its EXTINF says 4.00008s",
        id="parts-longer-than-extinf",
    ),
    pytest.param(
        replaced('#EXT-X-PART:DURATION=0.33334,URI="filePart273.11.mp4"\n', ""),
        "segment 273 (line 45): its 11 parts last 3.66674s but its EXTINF says 4.00008s",
        id="parts-shorter-than-extinf",
    ),
    pytest.param(
        ll_text(pending=16),
        "the parts after the last segment last 5.33344s, more than EXT-X-TARGETDURATION 4s",
        id="pending-longer-than-target",
    ),
    pytest.param(
        ll_text(
            server_control="#EXT-X-SERVER-CONTROL:PART-HOLD-BACK=1",
            skip="#EXT-X-SKIP:SKIPPED-SEGMENTS=1",
            skipped=1,
        ),
        "line 8: EXT-X-SKIP in a playlist whose EXT-X-SERVER-CONTROL has no CAN-SKIP-UNTIL",
        id="skip-without-can-skip-until",
    ),
    pytest.param(
        ll_text(
            server_control=None,
            part_inf=None,
            parted=0,
            pending=0,
            hints=(),
            skip="#EXT-X-SKIP:SKIPPED-SEGMENTS=1",
        ),
        "line 6: EXT-X-SKIP in a playlist whose EXT-X-SERVER-CONTROL has no CAN-SKIP-UNTIL",
        id="skip-without-server-control",
    ),
    pytest.param(
        ll_text(skip="#EXT-X-SKIP:SKIPPED-SEGMENTS=1", extra_header=("#EXT-X-SKIP:SKIPPED-SEGMENTS=1",)),
        "line 9: EXT-X-SKIP appears more than once",
        id="skip-twice",
    ),
    pytest.param(
        ll_text(skip="#EXT-X-SKIP:X=1"),
        "EXT-X-SKIP SKIPPED-SEGMENTS is not a decimal integer: None",
        id="skip-no-count",
    ),
    pytest.param(
        ll_text(skip="#EXT-X-SKIP:SKIPPED-SEGMENTS=1.5"),
        "SKIPPED-SEGMENTS is not a decimal integer: '1.5'",
        id="skip-count-not-integer",
    ),
    pytest.param(
        ll_text(skip="#EXT-X-SKIP:SKIPPED-SEGMENTS=2,RECENTLY-REMOVED-DATERANGES=ad"),
        "RECENTLY-REMOVED-DATERANGES must be a quoted string",
        id="skip-removed-unquoted",
    ),
    pytest.param(
        ll_text(skip=f"#EXT-X-SKIP:SKIPPED-SEGMENTS={2**64 - 1}"),
        "SKIPPED-SEGMENTS takes the media sequence past 2^64-1",
        id="skip-overflows-sequence",
    ),
    pytest.param(
        ll_text() + "#EXT-X-SKIP:SKIPPED-SEGMENTS=1\n",
        "line 53: EXT-X-SKIP after a segment (line 9): it must come first",
        id="skip-after-segments",
    ),
    pytest.param(
        ll_text(reports=("#EXT-X-RENDITION-REPORT:LAST-MSN=273,LAST-PART=2",)),
        "EXT-X-RENDITION-REPORT has no URI",
        id="report-without-uri",
    ),
    pytest.param(
        ll_text(reports=('#EXT-X-RENDITION-REPORT:URI="a.m3u8",LAST-MSN=x',)),
        "LAST-MSN is not a decimal integer: 'x'",
        id="report-bad-msn",
    ),
    pytest.param(
        ll_text(reports=('#EXT-X-RENDITION-REPORT:URI="a.m3u8",LAST-PART=99999999999999999999999',)),
        "LAST-PART is not a decimal integer",
        id="report-part-too-large",
    ),
    pytest.param(
        ll_text(reports=('#EXT-X-RENDITION-REPORT:URI="http://[::1/a.m3u8"',)),
        "EXT-X-RENDITION-REPORT has an invalid URI",
        id="report-invalid-uri",
    ),
]


@pytest.mark.parametrize(("text", "fragment"), ERRORS)
def test_bad_low_latency_input_is_a_playlist_error_naming_its_line(text: str, fragment: str) -> None:
    assert fragment in reason(text)


def fine_parts_text(extinf: float) -> str:
    """Two 10 s segments of 50 parts of 0.2 s (PART-TARGET 0.2), the second's EXTINF ``extinf``
    (the first is not the oldest parted segment, whose parts a server may be trimming)."""
    lines = ["#EXTM3U", "#EXT-X-TARGETDURATION:10", "#EXT-X-PART-INF:PART-TARGET=0.2"]
    for sequence, duration in ((0, 10.0), (1, extinf)):
        lines += [f'#EXT-X-PART:DURATION=0.2,URI="p{sequence}.{i}.mp4"' for i in range(50)]
        lines += [f"#EXTINF:{duration},", f"s{sequence}.mp4"]
    return "\n".join(lines)


def test_part_sum_slack_never_hides_a_missing_part() -> None:
    parse(fine_parts_text(10.09))  # within half PART-TARGET (0.1 s)
    # 0.2 s off: one part too few or too many, whatever the number of parts.
    assert "segment 1 (line 106): its 50 parts last 10s but its EXTINF says 10.2s" in reason(
        fine_parts_text(10.2)
    )
    assert "its 50 parts last 10s but its EXTINF says 9.8s" in reason(fine_parts_text(9.8))


@pytest.mark.parametrize(
    "text",
    [
        pytest.param(
            replaced('DURATION=0.33334,URI="filePart273.5.mp4"', 'DURATION=0.333340,URI="filePart273.5.mp4"'),
            id="part-equal-to-part-target",
        ),
        pytest.param(
            ll_text(server_control="#EXT-X-SERVER-CONTROL:PART-HOLD-BACK=0.66668"),
            id="part-hold-back-twice-part-target",
        ),
        pytest.param(
            ll_text(server_control="#EXT-X-SERVER-CONTROL:HOLD-BACK=12,PART-HOLD-BACK=1"), id="hold-back-3x"
        ),
        pytest.param(
            ll_text(server_control="#EXT-X-SERVER-CONTROL:CAN-SKIP-UNTIL=24,PART-HOLD-BACK=1"),
            id="skip-until-6x",
        ),
        pytest.param(ll_text(server_control=None), id="parts-without-server-control"),
        pytest.param(ll_text(reports=('#EXT-X-RENDITION-REPORT:URI="a.m3u8"',)), id="report-without-msn"),
        pytest.param(
            replaced(f"#EXTINF:{SEGMENT},\nfileSequence273.mp4", "#EXTINF:4.04,\nfileSequence273.mp4"),
            id="parts-within-rounding-of-extinf",
        ),
    ],
)
def test_limits_are_inclusive(text: str) -> None:
    parse(text)


@pytest.mark.parametrize(
    "control",
    [
        pytest.param("PART-HOLD-BACK=0.66667", id="part-hold-back-below-two-part-targets"),
        pytest.param("CAN-BLOCK-RELOAD=YES", id="part-hold-back-missing"),
        pytest.param("HOLD-BACK=11.9,PART-HOLD-BACK=1", id="hold-back-below-three-targets"),
        # RFC 8216bis's own example skips at 12 s with a 4 s target.
        pytest.param("CAN-SKIP-UNTIL=12.0,PART-HOLD-BACK=1", id="can-skip-until-below-six-targets"),
    ],
)
def test_server_control_below_the_rfcs_minimums_is_taken_as_written(control: str) -> None:
    """A smaller hold-back or skip boundary still plays (players take it as written), so it is not
    refused; without PART-HOLD-BACK the start is three part targets from the end."""
    playlist = parse(ll_text(server_control=f"#EXT-X-SERVER-CONTROL:{control}"))
    assert playlist.server_control is not None and playlist.part_target is not None


def test_a_cdns_parts_that_drift_from_their_extinf_are_accepted() -> None:
    """Parts of 1, 1, 1 and 1.04 s under an EXTINF of 3.96 s (PART-TARGET 1.04), as one CDN's live
    playlists have them: 80 ms of drift, well under half a part; a missing part still fails."""
    lines = [
        "#EXTM3U",
        "#EXT-X-VERSION:3",
        "#EXT-X-TARGETDURATION:4",
        "#EXT-X-MEDIA-SEQUENCE:109791",
        "#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,PART-HOLD-BACK=3.12",
        "#EXT-X-PART-INF:PART-TARGET=1.04",
        "#EXTINF:3.96,",
        "l_109791.ts",
    ]
    for sequence in (109792, 109793):
        durations = (1, 1, 1, 1.04)
        lines += [f'#EXT-X-PART:DURATION={d},URI="l_{sequence}_{i}.ts"' for i, d in enumerate(durations)]
        lines += ["#EXTINF:3.96,", f"l_{sequence}.ts"]
    playlist = parse("\n".join(lines) + "\n")
    assert [len(s.parts) for s in playlist.segments] == [0, 4, 4]
    missing = "\n".join(line for line in lines if 'URI="l_109793_2.ts"' not in line) + "\n"
    assert "its 3 parts last 3.04s but its EXTINF says 3.96s" in reason(missing)


# --------------------------------------------------------------------------------------------------
# The live tracker: parts, and delta updates


def test_new_parts_of_the_same_segments_are_an_update_not_a_stale_playlist() -> None:
    tracker = LivePlaylistTracker(parse(ll_text(pending=3)))
    update = tracker.update(parse(ll_text(pending=5)))
    assert not update.unchanged
    assert update.added == ()
    assert [str(p.id) for p in update.added_parts] == ["v0#274.3", "v0#274.4"]
    assert len(tracker.current.pending_parts) == 5
    assert tracker.update(parse(ll_text(pending=5))).unchanged


def test_a_refresh_with_fewer_parts_went_backwards_and_keeps_the_last_good_playlist() -> None:
    tracker = LivePlaylistTracker(parse(ll_text(pending=5)))
    before = tracker.current
    with pytest.raises(PlaylistError, match="it has 3 parts of segment 274 but 5 were seen before"):
        tracker.update(parse(ll_text(pending=3)))
    assert tracker.current is before


def test_a_known_part_with_another_uri_was_replaced_and_keeps_the_last_good_playlist() -> None:
    tracker = LivePlaylistTracker(parse(ll_text(pending=3)))
    before = tracker.current
    restarted = ll_text(pending=4).replace('URI="filePart274.1.mp4"', 'URI="restart/filePart274.1.mp4"')
    with pytest.raises(PlaylistError, match=r"replaced: part v0#274\.1 was .*/filePart274\.1\.mp4, now"):
        tracker.update(parse(restarted))
    assert tracker.current is before
    # The same once the segment is complete.
    completed = ll_text(first=267, pending=0, parted=2).replace(
        'URI="filePart273.4.mp4"', 'URI="restart/filePart273.4.mp4"'
    )
    with pytest.raises(PlaylistError, match=r"part v0#273\.4 was"):
        tracker.update(parse(completed))


def test_completed_segment_takes_its_parts_and_only_unseen_ones_are_added() -> None:
    tracker = LivePlaylistTracker(parse(ll_text(pending=11)))
    update = tracker.update(parse(ll_text(first=267, pending=1)))  # 274 complete, 275.0 pending
    assert [s.id.sequence for s in update.added] == [274]
    assert [str(p.id) for p in update.added_parts] == ["v0#274.11", "v0#275.0"]
    assert len(tracker.current.segments[-1].parts) == 12
    assert update.removed == (SegmentId("v0", 266),)


def test_segments_keep_their_parts_when_the_server_stops_listing_them() -> None:
    tracker = LivePlaylistTracker(parse(ll_text(parted=2)))
    tracker.update(parse(ll_text(parted=1, pending=4)))
    assert [len(s.parts) for s in tracker.current.segments[-2:]] == [12, 12]


def full_and_delta(first: int, segments: int, skipped: int, pending: int = 3) -> tuple[str, str]:
    return (
        ll_text(first=first, segments=segments, pending=pending),
        ll_text(
            first=first,
            segments=segments,
            pending=pending,
            skip=f"#EXT-X-SKIP:SKIPPED-SEGMENTS={skipped}",
            skipped=skipped,
        ),
    )


def test_delta_update_merges_into_what_the_full_playlist_gives() -> None:
    first_load = parse(ll_text(first=266, segments=8, pending=3))
    full, delta = full_and_delta(first=267, segments=8, skipped=5, pending=1)

    by_full = LivePlaylistTracker(first_load)
    full_update = by_full.update(parse(full))
    by_delta = LivePlaylistTracker(first_load)
    delta_update = by_delta.update(parse(delta))

    assert delta_update == full_update
    assert by_delta.current == by_full.current
    assert by_delta.current.skipped is None
    assert by_delta.current.media_sequence == 267
    assert [s.id.sequence for s in by_delta.current.segments] == list(range(267, 275))
    # An identical delta again is unchanged, as an identical full playlist is.
    assert by_delta.update(parse(delta)).unchanged
    assert by_delta.update(parse(full)).unchanged


def test_delta_merge_keeps_discontinuity_numbering() -> None:
    # A discontinuity among the skipped segments: the delta's listed segments do not count it.
    full = ll_text(first=266, segments=8).replace(
        "#EXTINF:4.00008,\nfileSequence268.mp4", "#EXT-X-DISCONTINUITY\n#EXTINF:4.00008,\nfileSequence268.mp4"
    )
    delta = ll_text(first=266, segments=8, pending=4, skip="#EXT-X-SKIP:SKIPPED-SEGMENTS=4", skipped=4)
    tracker = LivePlaylistTracker(parse(full))
    tracker.update(parse(delta))
    assert [s.discontinuity_sequence for s in tracker.current.segments] == [0, 0] + [1] * 6


def test_delta_skipping_segments_the_tracker_does_not_have_keeps_the_last_good_playlist() -> None:
    tracker = LivePlaylistTracker(parse(ll_text(first=266, segments=8)))
    before = tracker.current
    # Segments 270-274 skipped, but 274 was never seen (only its parts).
    _, delta = full_and_delta(first=270, segments=8, skipped=5)
    with pytest.raises(DeltaPlaylistError, match="skips segments 270 to 274 but only 266 to 273 are known"):
        tracker.update(parse(delta))
    assert tracker.current is before
    # The window slid past what was skipped: 262-265 were never known.
    _, delta = full_and_delta(first=262, segments=12, skipped=5)
    with pytest.raises(DeltaPlaylistError, match="skips segments 262 to 266"):
        tracker.update(parse(delta))
    assert tracker.current is before
    assert isinstance(DeltaPlaylistError("u", "r"), PlaylistError)


def test_a_delta_cannot_start_tracking() -> None:
    _, delta = full_and_delta(first=266, segments=8, skipped=2)
    with pytest.raises(DeltaPlaylistError, match="cannot start tracking"):
        LivePlaylistTracker(parse(delta))


DATED = ("#EXT-X-PROGRAM-DATE-TIME:2026-12-07T02:13:36.106Z",)


def daterange(range_id: str, start: str) -> str:
    return f'#EXT-X-DATERANGE:ID="{range_id}",START-DATE="2026-12-07T02:{start}Z",DURATION=10'


def test_delta_drops_recently_removed_date_ranges_and_keeps_the_skipped_ones() -> None:
    control = f"{SERVER_CONTROL},CAN-SKIP-DATERANGES=YES"
    first = ll_text(
        server_control=control,
        extra_header=(
            *DATED,
            daterange("ad1", "13:40"),
            daterange("ad2", "14:00"),
            daterange("ad3", "14:10"),
        ),
    )
    tracker = LivePlaylistTracker(parse(first))
    assert [r.id for r in tracker.current.date_ranges] == ["ad1", "ad2", "ad3"]
    # A v2 delta: the ranges already delivered are left out, ad2 was removed, ad4 is new.
    delta = ll_text(
        server_control=control,
        pending=4,
        extra_header=(*DATED, daterange("ad4", "14:20")),
        skip='#EXT-X-SKIP:SKIPPED-SEGMENTS=3,RECENTLY-REMOVED-DATERANGES="ad2"',
        skipped=3,
    )
    update = tracker.update(parse(delta))
    assert not update.unchanged
    assert [r.id for r in tracker.current.date_ranges] == ["ad1", "ad3", "ad4"]


# --------------------------------------------------------------------------------------------------
# The follower's helpers


def test_live_edge_is_the_last_published_part_or_segment() -> None:
    assert live_edge(parse(ll_text(pending=3))) == (274, 2)
    assert live_edge(parse(ll_text(pending=0))) == (273, 11)
    regular = parse("#EXTM3U\n#EXT-X-TARGETDURATION:4\n#EXT-X-MEDIA-SEQUENCE:7\n#EXTINF:4,\na.ts\n")
    assert live_edge(regular) == (7, None)
    with pytest.raises(UsageError):
        live_edge(parse("#EXTM3U\n#EXT-X-TARGETDURATION:4\n"))


def test_next_blocking_request_asks_for_the_next_part_or_segment() -> None:
    playlist = parse(ll_text(pending=3))
    assert next_blocking_request(playlist) == (274, 3)
    assert blocking_reload_url(URL, msn=274, part=3) == f"{URL}?_HLS_msn=274&_HLS_part=3"
    # The last segment is complete: part 0 of the next one.
    assert next_blocking_request(parse(ll_text(pending=0))) == (274, 0)
    # Blocking reload without parts: the next segment only.
    regular = parse("#EXTM3U\n#EXT-X-TARGETDURATION:4\n#EXT-X-MEDIA-SEQUENCE:7\n#EXTINF:4,\na.ts\n")
    assert next_blocking_request(regular) == (8, None)
    with pytest.raises(UsageError, match="ended"):
        next_blocking_request(parse(ll_text(end=True)))


def test_low_latency_start_is_the_last_independent_part_past_part_hold_back() -> None:
    # Pending parts 274.0-274.5 (274.0 and 274.4 independent); PART-HOLD-BACK 1.0 s: 274.4 starts
    # 0.667 s before the end (too close), 274.0 2.0 s before it.
    playlist = parse(ll_text(pending=6))
    start = low_latency_start(playlist)
    assert (start.sequence, start.part) == (274, 0)
    assert start.distance == pytest.approx(6 * PART)
    assert start.position == pytest.approx(playlist.segments[-1].end)
    # Independent every part: the latest one at least 1.0 s from the end, 274.3 (1.00002 s).
    start = low_latency_start(parse(ll_text(pending=6, independent_every=1)))
    assert (start.sequence, start.part) == (274, 3)
    assert start.distance == pytest.approx(3 * PART)


def test_low_latency_start_at_exactly_part_hold_back_and_without_it() -> None:
    control = "#EXT-X-SERVER-CONTROL:PART-HOLD-BACK=1.00002"
    start = low_latency_start(parse(ll_text(pending=6, independent_every=1, server_control=control)))
    assert (start.sequence, start.part) == (274, 3)  # 3 x 0.33334 = 1.00002: at least, not more
    # Without PART-HOLD-BACK (no EXT-X-SERVER-CONTROL): three PART-TARGETs, as the RFC recommends.
    start = low_latency_start(parse(ll_text(pending=6, independent_every=1, server_control=None)))
    assert (start.sequence, start.part) == (274, 3)


def test_low_latency_start_skips_gap_parts_and_goes_back_into_complete_segments() -> None:
    text = ll_text(pending=2, independent_every=100).replace(
        'URI="filePart273.0.mp4",INDEPENDENT=YES', 'URI="filePart273.0.mp4",INDEPENDENT=YES,GAP=YES'
    )
    # Only 272.0 and 273.0 are independent, and 273.0 is a gap.
    start = low_latency_start(parse(text))
    assert (start.sequence, start.part) == (272, 0)


def test_low_latency_start_without_parts_uses_hold_back_on_whole_segments() -> None:
    lines = ["#EXTM3U", "#EXT-X-TARGETDURATION:4", "#EXT-X-SERVER-CONTROL:HOLD-BACK=12.0"]
    lines += [f"#EXTINF:4.0,\ns{n}.ts" for n in range(6)]
    start = low_latency_start(parse("\n".join(lines)))
    assert start == LowLatencyStart(sequence=3, part=None, position=12.0, distance=12.0, play_from=12.0)
    # Default: three target durations.
    without = parse(
        "\n".join(lines).replace("#EXT-X-SERVER-CONTROL:HOLD-BACK=12.0", "#EXT-X-SERVER-CONTROL:HOLD-BACK=16")
    )
    assert low_latency_start(without).sequence == 2
    # HOLD-BACK 14 s: segment 2 (8-12 s) is loaded, playback begins 14 s before the end (10 s).
    fourteen = parse("\n".join(lines).replace("HOLD-BACK=12.0", "HOLD-BACK=14"))
    assert low_latency_start(fourteen) == LowLatencyStart(
        sequence=2, part=None, position=8.0, distance=16.0, play_from=10.0
    )
    default = parse("\n".join(line for line in lines if "SERVER-CONTROL" not in line))
    assert low_latency_start(default).sequence == 3


def test_low_latency_start_plays_from_part_hold_back_not_from_the_key_frame() -> None:
    # One key frame a segment (only part 0 independent), PART-HOLD-BACK 1.0 s, the edge two parts
    # into segment 274: 1.0 s back is inside segment 273, whose only start is 4 s further back.
    playlist = parse(ll_text(pending=2, independent_every=PARTS_PER_SEGMENT))
    end = playlist.segments[-1].end + 2 * PART
    start = low_latency_start(playlist)
    assert (start.sequence, start.part) == (273, 0)
    assert start.position == pytest.approx(playlist.segments[-1].start)
    assert start.distance == pytest.approx(SEGMENT + 2 * PART)
    # Loaded from the key frame, played from exactly PART-HOLD-BACK behind the end.
    assert start.play_from == pytest.approx(end - 1.0)
    # Every part independent: loading starts at the part that holds the hold-back point.
    start = low_latency_start(parse(ll_text(pending=2, independent_every=1)))
    assert start.play_from == pytest.approx(end - 1.0)
    assert 0 <= start.play_from - start.position < PART
    assert (start.sequence, start.part) == (273, 11)  # 11 x 0.33334 s: 1.00002 s from the end


def test_low_latency_start_on_segment_starts_when_no_part_is_marked_independent() -> None:
    # A packager that marks no part INDEPENDENT: segment starts (part 0) are the starts, not the
    # older segments whose parts are no longer listed.
    text = ll_text(pending=2).replace(",INDEPENDENT=YES", "")
    playlist = parse(text)
    assert not any(p.independent for s in playlist.segments for p in s.parts)
    start = low_latency_start(playlist)
    assert (start.sequence, start.part) == (273, 0)
    assert start.play_from == pytest.approx(playlist.segments[-1].end + 2 * PART - 1.0)
    # Far enough from the end, the pending segment's first part is a start too.
    start = low_latency_start(parse(ll_text(pending=6).replace(",INDEPENDENT=YES", "")))
    assert (start.sequence, start.part) == (274, 0)
    # A gap at a segment's start is no start: the segment before.
    gapped = text.replace('URI="filePart273.0.mp4"', 'URI="filePart273.0.mp4",GAP=YES')
    assert (low_latency_start(parse(gapped)).sequence, low_latency_start(parse(gapped)).part) == (272, 0)
    # Marked parts elsewhere in the window: only those are starts (274.0 is not marked here).
    marked = ll_text(pending=6).replace('URI="filePart274.0.mp4",INDEPENDENT=YES', 'URI="filePart274.0.mp4"')
    start = low_latency_start(parse(marked))
    assert (start.sequence, start.part) == (273, 8)


def test_low_latency_start_with_a_hold_back_longer_than_the_window_plays_from_its_first_start() -> None:
    control = "#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,PART-HOLD-BACK=100.0"
    playlist = parse(ll_text(pending=2, server_control=control))
    start = low_latency_start(playlist)
    # The first segment (its parts no longer listed), played from its start: nothing earlier.
    assert (start.sequence, start.part) == (266, None)
    assert start.play_from == start.position == playlist.segments[0].start


def test_low_latency_start_plays_from_the_hold_back_point_past_a_gap_part() -> None:
    # 273.0 (independent) is a gap: loading starts at 272.0. The hold-back point (1.0 s before the
    # end) lies in 273.11; 273.1 on depend on the gapped 273.0 and cannot be shown, wherever in
    # them playback starts: starting at 273.0 instead would only add latency.
    text = ll_text(pending=2, independent_every=100).replace(
        'URI="filePart273.0.mp4",INDEPENDENT=YES', 'URI="filePart273.0.mp4",INDEPENDENT=YES,GAP=YES'
    )
    playlist = parse(text)
    start = low_latency_start(playlist)
    assert (start.sequence, start.part) == (272, 0)
    assert start.play_from == pytest.approx(start.position + start.distance - 1.0)  # the edge - 1 s


def test_low_latency_start_of_whole_segments_plays_from_the_hold_back_point_in_a_gap_segment() -> None:
    # S10 (0-2 s), S11 a gap (2-4 s), S12 (4-6 s), HOLD-BACK 3: loaded from S10; the hold-back
    # point 3.0 s is inside the gap, which a player moves through as through media, to S12's key
    # frame: starting at the gap's start would only add a second of latency.
    text = "#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:10\n"
    text += "#EXT-X-SERVER-CONTROL:HOLD-BACK=3\n"
    text += "#EXTINF:2,\ns10.ts\n#EXT-X-GAP\n#EXTINF:2,\ns11.ts\n#EXTINF:2,\ns12.ts\n"
    start = low_latency_start(parse(text))
    assert (start.sequence, start.part, start.position) == (10, None, 0.0)
    assert start.play_from == pytest.approx(3.0)
    # No gap: loaded from S11, played from the hold-back point itself.
    start = low_latency_start(parse(text.replace("#EXT-X-GAP\n", "")))
    assert (start.sequence, start.play_from) == (11, pytest.approx(3.0))
    # A gap after the hold-back point changes nothing.
    later = text.replace("#EXT-X-GAP\n", "").replace("s12.ts\n", "s12.ts\n#EXT-X-GAP\n#EXTINF:2,\ns13.ts\n")
    start = low_latency_start(parse(later))
    assert (start.sequence, start.play_from) == (12, pytest.approx(5.0))


def test_low_latency_start_on_a_short_playlist_and_an_empty_one() -> None:
    text = "#EXTM3U\n#EXT-X-TARGETDURATION:4\n#EXT-X-PART-INF:PART-TARGET=1\n"
    text += '#EXT-X-PART:DURATION=1,URI="p.0.mp4",INDEPENDENT=YES\n'
    start = low_latency_start(parse(text))
    assert (start.sequence, start.part, start.distance) == (0, 0, 1.0)
    with pytest.raises(UsageError):
        low_latency_start(parse("#EXTM3U\n#EXT-X-TARGETDURATION:4\n"))
    with pytest.raises(UsageError):
        low_latency_start(parse(text.replace("INDEPENDENT=YES", "GAP=YES")))


def test_low_latency_tags_still_names_the_part_tags() -> None:
    assert low_latency_tags(ll_text()) == (
        "EXT-X-PART-INF",
        "EXT-X-PART",
        "EXT-X-PRELOAD-HINT",
        "EXT-X-SERVER-CONTROL",
    )


# --------------------------------------------------------------------------------------------------
# Fuzz: any corruption of an LL-HLS playlist is a PlaylistError, never anything else

FUZZ = settings(
    max_examples=300,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)

BASE_LINES = (
    ll_text(
        pending=4,
        hints=('#EXT-X-PRELOAD-HINT:TYPE=PART,URI="s.mp4",BYTERANGE-START=10,BYTERANGE-LENGTH=5',),
        extra_header=(
            "#EXT-X-PROGRAM-DATE-TIME:2026-12-07T02:13:36.106Z",
            '#EXT-X-DATERANGE:ID="ad",START-DATE="2026-12-07T02:14:00Z",DURATION=10',
        ),
    )
    .replace('URI="filePart274.1.mp4"', 'URI="s.mp4",BYTERANGE="100@0"')
    .replace('URI="filePart274.2.mp4"', 'URI="s.mp4",BYTERANGE="100"')
    .splitlines()
)
DELTA_LINES = ll_text(
    skip='#EXT-X-SKIP:SKIPPED-SEGMENTS=3,RECENTLY-REMOVED-DATERANGES="ad"', skipped=3
).splitlines()

_noise = st.one_of(
    st.text(max_size=12),
    st.sampled_from(
        [
            "",
            "-1",
            "0",
            "YES",
            "NO",
            '"',
            ",",
            "=",
            "@",
            "1e400",
            "nan",
            "18446744073709551616",
            "\t",
            '""',
            "0.0",
        ]
    ),
)
_edit = st.tuples(
    st.sampled_from(["replace", "insert", "delete", "duplicate", "cut", "splice"]),
    st.integers(0, 10**6),
    _noise,
)


def corrupt(lines: list[str], edits: list[tuple[str, int, str]]) -> str:
    lines = list(lines)
    for kind, where, noise in edits:
        index = where % len(lines) if lines else 0
        if kind == "delete" and lines:
            del lines[index]
        elif kind == "duplicate" and lines:
            lines.insert(index, lines[index])
        elif kind == "insert":
            lines.insert(index, noise)
        elif kind == "replace" and lines:
            lines[index] = noise
        elif kind == "cut" and lines:
            line = lines[index]
            lines[index] = line[: where % (len(line) + 1)]
        elif kind == "splice" and lines:
            # Noise inside an attribute list, where the value parsers are.
            line = lines[index]
            at = where % (len(line) + 1)
            lines[index] = line[:at] + noise + line[at:]
    return "\n".join(lines)


@FUZZ
@given(st.sampled_from([BASE_LINES, DELTA_LINES]), st.lists(_edit, min_size=1, max_size=4))
def test_corrupt_low_latency_playlists_only_raise_playlist_errors(
    lines: list[str], edits: list[tuple[str, int, str]]
) -> None:
    text = corrupt(lines, edits)
    errors: list[PlaylistError] = []
    try:
        playlist = parse(text)
    except PlaylistError as error:  # anything else propagates and fails the test
        errors.append(error)
    assert all(e.url == URL and e.reason for e in errors)
    if errors:
        return
    # What parsed is consistent, and the tracker and the helpers take it.
    assert all(p.duration <= (playlist.part_target or 0) for s in playlist.segments for p in s.parts)
    with contextlib.suppress(PlaylistError):
        LivePlaylistTracker(parse(ll_text(first=260, segments=14))).update(playlist)
    for helper in (live_edge, next_blocking_request, low_latency_start):
        with contextlib.suppress(UsageError):
            helper(playlist)


# --------------------------------------------------------------------------------------------------
# Property: following a stream with delta updates gives what following it with full playlists does

WINDOW = 12  # segments in the server's window
SKIP_BOUNDARY = 6  # segments: CAN-SKIP-UNTIL=24 with 4 s segments; newer ones are never skipped


def published(parts: int, *, skip: int = 0, previous_last: int | None = None) -> tuple[str, str]:
    """The playlist after ``parts`` parts since segment 100 began, full and as a delta update that
    skips up to ``skip`` segments the client has (its last known segment is ``previous_last``)."""
    complete, pending = divmod(parts, PARTS_PER_SEGMENT)
    first = 100 + max(0, complete - WINDOW)
    count = complete - (first - 100)
    kwargs = {"first": first, "segments": count, "parted": min(2, count), "pending": pending}
    full = ll_text(**kwargs)  # type: ignore[arg-type]
    known = 0 if previous_last is None else max(0, previous_last - first + 1)
    skipped = min(skip, known, max(0, count - SKIP_BOUNDARY))
    delta = ll_text(**kwargs, skip=f"#EXT-X-SKIP:SKIPPED-SEGMENTS={skipped}", skipped=skipped)  # type: ignore[arg-type]
    return full, delta


@settings(FUZZ, max_examples=60)
@given(
    st.lists(st.tuples(st.integers(0, 14), st.booleans(), st.integers(0, WINDOW)), min_size=1, max_size=12)
)
def test_delta_updates_follow_the_stream_as_full_reloads_do(steps: list[tuple[int, bool, int]]) -> None:
    parts = PARTS_PER_SEGMENT + 5
    first_text, _ = published(parts)
    by_full = LivePlaylistTracker(parse(first_text))
    by_delta = LivePlaylistTracker(parse(first_text))
    for advance, use_delta, skip in steps:
        parts += advance
        full, delta = published(parts, skip=skip, previous_last=by_delta.current.last_sequence)
        full_update = by_full.update(parse(full))
        delta_update = by_delta.update(parse(delta if use_delta else full))
        assert delta_update == full_update
        assert by_delta.current == by_full.current
        assert by_delta.current.skipped is None
        assert live_edge(by_delta.current) == live_edge(by_full.current)
