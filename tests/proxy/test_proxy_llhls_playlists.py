"""The proxy's LL-HLS rewriting (pure): every LL-HLS tag of an origin playlist as the proxy re-serves
it, the delivery directives it reads, its part paths, and typed errors for what it cannot serve."""

from __future__ import annotations

import attrs
import pytest

from p2ploader.core.segments import PartId, SegmentId
from p2ploader.errors import DirectiveError, PlaylistError
from p2ploader.hls import MediaPlaylist, parse_media
from p2ploader.proxy import paths
from p2ploader.proxy.low_latency import (
    MAX_QUERY_CHARS,
    DeliveryDirectives,
    HeldRequests,
    ProxyHoldError,
    advance_part_limit,
    parse_directives,
)
from p2ploader.proxy.paths import MalformedPathError, Token
from p2ploader.proxy.playlists import render_media
from p2ploader.proxy.resources import ResourceTable

ORIGIN = "https://origin.example/live/high/index.m3u8"
OTHER = "https://origin.example/live/low/index.m3u8"
TOKEN = Token("v", 0)

# 1 s parts, 4 s segments: segments 10..13 complete, parts listed for 11..13, two parts of 14
# pending (byte ranges of the segment in progress; the second a gap), a hint for the next range and
# one for a new map, reports for the other variant and for a playlist the proxy does not serve.
LL_PLAYLIST = """#EXTM3U
#EXT-X-VERSION:9
#EXT-X-TARGETDURATION:4
#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,CAN-SKIP-UNTIL=24,HOLD-BACK=12,PART-HOLD-BACK=3.1
#EXT-X-PART-INF:PART-TARGET=1.0
#EXT-X-MEDIA-SEQUENCE:10
#EXT-X-MAP:URI="init.mp4"
#EXTINF:4.0,
seg10.m4s
#EXT-X-PART:DURATION=1.0,URI="seg11.0.m4s",INDEPENDENT=YES
#EXT-X-PART:DURATION=1.0,URI="seg11.1.m4s"
#EXT-X-PART:DURATION=1.0,URI="seg11.2.m4s"
#EXT-X-PART:DURATION=1.0,URI="seg11.3.m4s"
#EXTINF:4.0,
seg11.m4s
#EXT-X-PART:DURATION=1.0,URI="seg12.0.m4s",INDEPENDENT=YES
#EXT-X-PART:DURATION=1.0,URI="seg12.1.m4s"
#EXT-X-PART:DURATION=1.0,URI="seg12.2.m4s"
#EXT-X-PART:DURATION=1.0,URI="seg12.3.m4s"
#EXTINF:4.0,
seg12.m4s
#EXT-X-PART:DURATION=1.0,URI="seg13.0.m4s",INDEPENDENT=YES
#EXT-X-PART:DURATION=1.0,URI="seg13.1.m4s"
#EXT-X-PART:DURATION=1.0,URI="seg13.2.m4s"
#EXT-X-PART:DURATION=1.0,URI="seg13.3.m4s"
#EXTINF:4.0,
seg13.m4s
#EXT-X-PART:DURATION=1.0,URI="seg14.mp4",BYTERANGE="20000@0",INDEPENDENT=YES
#EXT-X-PART:DURATION=1.0,URI="seg14.mp4",BYTERANGE="18000@20000",GAP=YES
#EXT-X-PRELOAD-HINT:TYPE=PART,URI="seg14.mp4",BYTERANGE-START=38000
#EXT-X-PRELOAD-HINT:TYPE=MAP,URI="init2.mp4"
#EXT-X-RENDITION-REPORT:URI="../low/index.m3u8",LAST-MSN=14,LAST-PART=1
#EXT-X-RENDITION-REPORT:URI="../other/index.m3u8",LAST-MSN=14,LAST-PART=1
"""


def _tags(text: str, prefix: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith(prefix)]


def _render(playlist: MediaPlaylist, *, low_latency: bool = True) -> str:
    return render_media(
        playlist,
        TOKEN,
        ResourceTable(),
        low_latency=low_latency,
        report_token=lambda url: Token("v", 1) if url == OTHER else None,
    )


@pytest.fixture
def origin_playlist() -> MediaPlaylist:
    return parse_media(LL_PLAYLIST, ORIGIN, rendition="v0")


def test_server_control_keeps_blocking_reload_and_hold_backs_but_not_skips(
    origin_playlist: MediaPlaylist,
) -> None:
    text = _render(origin_playlist)
    # CAN-SKIP-UNTIL is dropped: the proxy serves no delta updates, so no client may ask for one.
    assert _tags(text, "#EXT-X-SERVER-CONTROL") == [
        "#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,HOLD-BACK=12,PART-HOLD-BACK=3.1"
    ]
    assert _tags(text, "#EXT-X-PART-INF") == ["#EXT-X-PART-INF:PART-TARGET=1"]
    assert "SKIP" not in text


def test_server_control_defaults_part_hold_back_to_three_part_targets(origin_playlist: MediaPlaylist) -> None:
    # An origin that blocks nothing and gives no PART-HOLD-BACK: the proxy blocks itself, and says
    # where to start (RFC 8216bis's three part targets).
    bare = attrs.evolve(origin_playlist, server_control=None)
    assert _tags(_render(bare), "#EXT-X-SERVER-CONTROL") == [
        "#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,PART-HOLD-BACK=3"
    ]


def test_parts_get_proxy_paths_with_independent_and_gap(origin_playlist: MediaPlaylist) -> None:
    text = _render(origin_playlist)
    parts = _tags(text, "#EXT-X-PART:")
    # Segment 10 ends more than three target durations (12 s) before the end: its parts (none
    # here) would be left out; 11, 12, 13 and the pending ones of 14 are listed.
    assert parts[0] == '#EXT-X-PART:DURATION=1,URI="/r/v0/part/11.0.m4s",INDEPENDENT=YES'
    assert parts[1] == '#EXT-X-PART:DURATION=1,URI="/r/v0/part/11.1.m4s"'
    # A byte-range part becomes a resource of its own: no BYTERANGE, its URL's extension.
    assert parts[-2] == '#EXT-X-PART:DURATION=1,URI="/r/v0/part/14.0.mp4",INDEPENDENT=YES'
    assert parts[-1] == '#EXT-X-PART:DURATION=1,URI="/r/v0/part/14.1.mp4",GAP=YES'
    assert len(parts) == 3 * 4 + 2
    assert "BYTERANGE" not in text and "origin.example" not in text
    # Each part's tags sit before its segment's EXTINF, the pending ones after the last segment.
    lines = text.splitlines()
    assert lines.index(parts[0]) < lines.index("/r/v0/seg/11.m4s") < lines.index(parts[4])
    assert lines.index("/r/v0/seg/13.m4s") < lines.index(parts[-2])


def test_old_segments_parts_are_left_out() -> None:
    # 4 s segments of 1 s parts, all of them listed by the origin: the proxy lists the parts of the
    # segments ending within three target durations (12 s) of the end only: 13, 14 and 15 here.
    lines = [
        "#EXTM3U",
        "#EXT-X-TARGETDURATION:4",
        "#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,PART-HOLD-BACK=3",
        "#EXT-X-PART-INF:PART-TARGET=1",
        "#EXT-X-MEDIA-SEQUENCE:10",
    ]
    for msn in range(10, 16):
        lines += [f'#EXT-X-PART:DURATION=1,URI="s{msn}.{k}.ts"' for k in range(4)]
        lines += ["#EXTINF:4,", f"s{msn}.ts"]
    text = _render(parse_media("\n".join(lines) + "\n", ORIGIN, rendition="v0"))
    listed = sorted({int(line.split("/part/")[1].split(".")[0]) for line in _tags(text, "#EXT-X-PART:")})
    assert listed == [13, 14, 15]


def test_preload_hint_names_the_next_part_and_map_hints_are_dropped(origin_playlist: MediaPlaylist) -> None:
    hints = _tags(_render(origin_playlist), "#EXT-X-PRELOAD-HINT")
    assert hints == ['#EXT-X-PRELOAD-HINT:TYPE=PART,URI="/r/v0/part/14.2.mp4"']


def test_preload_hint_after_a_complete_segment_is_part_zero_of_the_next() -> None:
    text = LL_PLAYLIST.split('#EXT-X-PART:DURATION=1.0,URI="seg14.mp4"')[0]
    playlist = parse_media(text, ORIGIN, rendition="v0")
    assert _tags(_render(playlist), "#EXT-X-PRELOAD-HINT") == [
        '#EXT-X-PRELOAD-HINT:TYPE=PART,URI="/r/v0/part/14.0.m4s"'
    ]


def test_a_discontinuity_before_the_segment_in_progress_is_kept() -> None:
    # A looping source: segment 14 restarts the timestamps, and its first parts are listed before
    # it is complete. Without the tag, a player appends them to 13's timeline (hls.js: "discontinuity
    # sequence mismatch" once 14 is complete).
    text = LL_PLAYLIST.replace(
        '#EXT-X-PART:DURATION=1.0,URI="seg14.mp4",BYTERANGE="20000@0"',
        '#EXT-X-DISCONTINUITY\n#EXT-X-PART:DURATION=1.0,URI="seg14.mp4",BYTERANGE="20000@0"',
    )
    playlist = parse_media(text, ORIGIN, rendition="v0")
    assert playlist.pending_discontinuity
    lines = _render(playlist).splitlines()
    assert lines[lines.index("/r/v0/seg/13.m4s") + 1] == "#EXT-X-DISCONTINUITY"
    assert lines[lines.index("/r/v0/seg/13.m4s") + 2].startswith(
        '#EXT-X-PART:DURATION=1,URI="/r/v0/part/14.0.mp4"'
    )
    assert (
        "#EXT-X-DISCONTINUITY" not in _render(parse_media(LL_PLAYLIST, ORIGIN, rendition="v0")).splitlines()
    )


def test_rendition_reports_are_rewritten_for_served_renditions_and_dropped_otherwise(
    origin_playlist: MediaPlaylist,
) -> None:
    assert _tags(_render(origin_playlist), "#EXT-X-RENDITION-REPORT") == [
        '#EXT-X-RENDITION-REPORT:URI="/r/v1/index.m3u8",LAST-MSN=14,LAST-PART=1'
    ]
    no_mapping = render_media(origin_playlist, TOKEN, ResourceTable(), low_latency=True)
    assert _tags(no_mapping, "#EXT-X-RENDITION-REPORT") == []


def test_an_ended_playlist_has_no_preload_hint(origin_playlist: MediaPlaylist) -> None:
    ended = attrs.evolve(origin_playlist, end_list=True)
    text = _render(ended)
    assert _tags(text, "#EXT-X-PRELOAD-HINT") == [] and text.endswith("#EXT-X-ENDLIST\n")


def test_without_low_latency_no_tag_is_written(origin_playlist: MediaPlaylist) -> None:
    text = _render(origin_playlist, low_latency=False)
    for tag in ("SERVER-CONTROL", "PART", "PRELOAD-HINT", "RENDITION-REPORT"):
        assert f"#EXT-X-{tag}" not in text


def test_the_rendered_playlist_reads_back_as_the_same_ll_hls_playlist(origin_playlist: MediaPlaylist) -> None:
    local = "http://127.0.0.1:8080/r/v0/index.m3u8"
    again = parse_media(_render(origin_playlist), local, rendition="v0")
    assert again.media_sequence == origin_playlist.media_sequence
    assert again.part_target == origin_playlist.part_target
    assert again.server_control is not None and again.server_control.can_block_reload
    assert again.server_control.part_hold_back == 3.1 and again.server_control.can_skip_until is None
    assert [(p.id, p.duration, p.independent, p.gap) for p in again.pending_parts] == [
        (p.id, p.duration, p.independent, p.gap) for p in origin_playlist.pending_parts
    ]
    for mine, theirs in zip(again.segments, origin_playlist.segments, strict=True):
        if mine.parts:
            assert [p.id for p in mine.parts] == [p.id for p in theirs.parts]
    assert [h.url for h in again.preload_hints] == ["http://127.0.0.1:8080/r/v0/part/14.2.mp4"]
    assert [(r.url, r.last_msn, r.last_part) for r in again.rendition_reports] == [
        ("http://127.0.0.1:8080/r/v1/index.m3u8", 14, 1)
    ]


# -------------------------------------------------------------------------------------------------
# What the proxy refuses to re-serve


def test_a_part_listed_under_another_segment_is_a_typed_error(origin_playlist: MediaPlaylist) -> None:
    segment = origin_playlist.segments[2]
    moved = attrs.evolve(segment.parts[1], id=PartId(SegmentId("v0", 99), 1))
    broken = attrs.evolve(
        origin_playlist,
        segments=(
            *origin_playlist.segments[:2],
            attrs.evolve(segment, parts=(segment.parts[0], moved, *segment.parts[2:])),
            *origin_playlist.segments[3:],
        ),
    )
    with pytest.raises(PlaylistError, match="listed under segment 12"):
        _render(broken)


def test_parts_out_of_order_are_a_typed_error(origin_playlist: MediaPlaylist) -> None:
    pending = origin_playlist.pending_parts
    with pytest.raises(PlaylistError, match="does not follow"):
        _render(attrs.evolve(origin_playlist, pending_parts=(pending[1], pending[0])))
    with pytest.raises(PlaylistError, match="start at 1"):
        _render(attrs.evolve(origin_playlist, pending_parts=pending[1:]))


def test_malformed_ll_hls_from_the_origin_is_a_typed_error_before_rewriting() -> None:
    # The proxy renders from the parser's model only: malformed LL-HLS never reaches a player.
    bad = LL_PLAYLIST.replace("PART-TARGET=1.0", "PART-TARGET=-1")
    with pytest.raises(PlaylistError):
        parse_media(bad, ORIGIN, rendition="v0")
    too_long = LL_PLAYLIST.replace('DURATION=1.0,URI="seg12.1.m4s"', 'DURATION=3.0,URI="seg12.1.m4s"')
    with pytest.raises(PlaylistError):
        parse_media(too_long, ORIGIN, rendition="v0")


# -------------------------------------------------------------------------------------------------
# Delivery directives, part paths, bounds


def test_directives_are_read_from_the_query() -> None:
    assert parse_directives("") == DeliveryDirectives()
    assert parse_directives("_HLS_msn=14&_HLS_part=2") == DeliveryDirectives(msn=14, part=2)
    assert parse_directives("cb=7&_HLS_msn=3&_HLS_skip=YES") == DeliveryDirectives(msn=3, skip="YES")


@pytest.mark.parametrize(
    "query",
    [
        "_HLS_part=1",  # without _HLS_msn
        "_HLS_msn=1&_HLS_msn=2",
        "_HLS_msn=-1",
        "_HLS_msn=01",
        "_HLS_msn=1e3",
        "_HLS_msn=" + "9" * 19,
        "_HLS_msn=1&_HLS_skip=NO",
        "x=" + "a" * MAX_QUERY_CHARS,
        "&".join(f"f{i}=1" for i in range(17)),
    ],
)
def test_malformed_directives_are_a_typed_error(query: str) -> None:
    with pytest.raises(DirectiveError):
        parse_directives(query)


def test_part_paths_round_trip_and_malformed_names_are_refused() -> None:
    assert paths.part_path(TOKEN, 14, 2, "m4s") == "/r/v0/part/14.2.m4s"
    assert paths.parse_part_name("14.2.m4s") == (14, 2, "m4s")
    for name in ("14.m4s", "14.02.m4s", "-1.0.m4s", "14.2.exe", "14.2", "1.2.3.m4s", "9" * 21 + ".0.m4s"):
        with pytest.raises(MalformedPathError):
            paths.parse_part_name(name)


def test_advance_part_limit_follows_the_rfc() -> None:
    assert advance_part_limit(0.5) == 6
    assert advance_part_limit(0.33334) == 8
    assert advance_part_limit(1.0) == 3
    assert advance_part_limit(2.0) == 3


def test_held_requests_are_capped() -> None:
    held = HeldRequests(2)
    with held.hold(), held.hold():
        with pytest.raises(ProxyHoldError) as refused, held.hold():
            pass
        assert refused.value.status == 503
    assert (held.now, held.peak, held.total, held.refused) == (0, 2, 2, 1)
