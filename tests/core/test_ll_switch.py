"""Switching a live LL-HLS stream to another rendition, sans-IO: the first request from the
rendition report, one timeline, where the new rendition takes over, and the follower resuming there.

Playlists are built by hand (one test parses a real playlist text, for the report URI's
resolution) and the clock is driven: each call gets ``now`` in seconds.
"""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import attrs
import pytest

from p2ploader.core.ll_follower import FetchRequest, LowLatencyFollower, LowLatencyItem
from p2ploader.core.ll_switch import (
    MAX_PARTS_PER_SEGMENT,
    MAX_RENDITION_REPORTS,
    MAX_REPORT_LEAD_SEGMENTS,
    check_rendition_report,
    find_rendition_report,
    published_until,
    resume_position,
    switch_playlist_request,
    timeline_shift,
    waits_for_switch,
)
from p2ploader.core.low_latency import PreloadHint, RenditionReport, ServerControl
from p2ploader.core.segments import InitSection, Part, PartId, Segment, SegmentId
from p2ploader.errors import LowLatencyPlaylistError, RenditionReportError, UsageError
from p2ploader.hls import MediaPlaylist, parse_media

BASE = "http://origin.test/live/"
PART_S = 0.5
PARTS = 4
SEGMENT_S = PART_S * PARTS
V1_URL = f"{BASE}v1/index.m3u8"


def media(
    rendition: str,
    first: int,
    last: int,
    pending: int,
    *,
    origin: float = 0.0,
    independent: tuple[int, ...] = (0, 2),
    reports: tuple[RenditionReport, ...] = (),
    control: ServerControl | None = None,
    gap_parts: tuple[tuple[int, int], ...] = (),
) -> MediaPlaylist:
    """Rendition ``rendition``'s playlist: segments ``first``..``last`` complete (four 0.5 s parts
    each, those at ``independent`` indexes INDEPENDENT), ``pending`` parts of the next, a preload
    hint; the first segment starts at ``origin`` seconds (a parser starts each playlist at 0)."""
    base = f"{BASE}{rendition}/"
    init = InitSection(url=f"{base}init.mp4")

    def part(msn: int, index: int) -> Part:
        return Part(
            id=PartId(SegmentId(rendition, msn), index),
            url=f"{base}s{msn}.{index}.mp4",
            duration=PART_S,
            independent=index in independent,
            gap=(msn, index) in gap_parts,
        )

    segments = tuple(
        Segment(
            id=SegmentId(rendition, msn),
            url=f"{base}s{msn}.mp4",
            duration=SEGMENT_S,
            start=origin + (msn - first) * SEGMENT_S,
            init_section=init,
            parts=tuple(part(msn, i) for i in range(PARTS)),
        )
        for msn in range(first, last + 1)
    )
    return MediaPlaylist(
        url=f"{base}index.m3u8",
        rendition=rendition,
        target_duration=2,
        media_sequence=first,
        discontinuity_sequence=0,
        segments=segments,
        end_list=False,
        server_control=control or ServerControl(can_block_reload=True, part_hold_back=3 * PART_S),
        part_target=PART_S,
        pending_parts=tuple(part(last + 1, i) for i in range(pending)),
        preload_hints=(PreloadHint(type="PART", url=f"{base}s{last + 1}.{pending}.mp4"),),
        rendition_reports=reports,
    )


def report(msn: int | None, part: int | None, url: str = V1_URL) -> RenditionReport:
    return RenditionReport(url=url, last_msn=msn, last_part=part)


def body(fetch: FetchRequest) -> bytes:
    return fetch.url.encode()


def drain(follower: LowLatencyFollower) -> list[LowLatencyItem]:
    """Complete every fetch asked for (a preload hint's bytes are its part's), take what is ready."""
    for fetch in follower.take_fetches():
        follower.fetch_completed(fetch, body(fetch))
    items = []
    while (item := follower.next_ready()) is not None:
        items.append(item)
    return items


# --------------------------------------------------------------------------------------------------
# The first request


def test_the_first_load_is_a_blocking_reload_at_the_reported_edge() -> None:
    current = media("v0", 10, 12, 2, reports=(report(13, 1),))
    request = switch_playlist_request(current, V1_URL)
    assert request.blocking and (request.msn, request.part) == (13, 1)
    split = urlsplit(request.url)
    assert split.path == "/live/v1/index.m3u8"
    assert parse_qs(split.query) == {"_HLS_msn": ["13"], "_HLS_part": ["1"]}
    assert request.report == report(13, 1) and request.ignored is None


def test_the_report_uri_is_relative_to_the_current_media_playlist() -> None:
    # RFC 8216bis §4.4.5.4: the report's URI is relative to the playlist carrying it, not the
    # master. The variant's URL (from the master) has a query the report does not: still a match.
    text = "\n".join(
        [
            "#EXTM3U",
            "#EXT-X-VERSION:9",
            "#EXT-X-TARGETDURATION:2",
            "#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,PART-HOLD-BACK=1.5",
            "#EXT-X-PART-INF:PART-TARGET=0.5",
            "#EXT-X-MEDIA-SEQUENCE:7",
            '#EXT-X-MAP:URI="init.mp4"',
            "#EXTINF:2.0,",
            "s7.mp4",
            '#EXT-X-PART:DURATION=0.5,URI="s8.0.mp4",INDEPENDENT=YES',
            '#EXT-X-PRELOAD-HINT:TYPE=PART,URI="s8.1.mp4"',
            '#EXT-X-RENDITION-REPORT:URI="../low/index.m3u8",LAST-MSN=8,LAST-PART=0',
            "",
        ]
    )
    current = parse_media(text, "http://origin.test/llhls/high/index.m3u8", rendition="v0")
    request = switch_playlist_request(current, "http://origin.test/llhls/low/index.m3u8?token=a")
    split = urlsplit(request.url)
    assert request.blocking and split.path == "/llhls/low/index.m3u8"
    assert parse_qs(split.query) == {"token": ["a"], "_HLS_msn": ["8"], "_HLS_part": ["0"]}
    # The master's folder is not where the report points.
    assert not switch_playlist_request(current, "http://origin.test/low/index.m3u8").blocking


def test_without_a_report_for_the_rendition_the_first_load_is_plain() -> None:
    current = media("v0", 10, 12, 2, reports=(report(13, 1, url=f"{BASE}v2/index.m3u8"),))
    request = switch_playlist_request(current, V1_URL)
    assert request == attrs.evolve(request, url=V1_URL, blocking=False, report=None, ignored=None)
    assert find_rendition_report(current, V1_URL) is None


def test_a_server_that_cannot_block_gets_a_plain_load() -> None:
    control = ServerControl(can_block_reload=False, part_hold_back=1.5)
    current = media("v0", 10, 12, 2, reports=(report(13, 1),), control=control)
    request = switch_playlist_request(current, V1_URL)
    assert request.url == V1_URL and not request.blocking
    assert request.ignored is not None and "block" in request.ignored


def test_only_a_bounded_number_of_reports_is_looked_at() -> None:
    others = tuple(report(13, 1, url=f"{BASE}x{i}/index.m3u8") for i in range(MAX_RENDITION_REPORTS))
    late = media("v0", 10, 12, 2, reports=(*others, report(13, 1)))
    assert find_rendition_report(late, V1_URL) is None
    assert not switch_playlist_request(late, V1_URL).blocking
    early = media("v0", 10, 12, 2, reports=(*others[:-1], report(13, 1)))
    assert find_rendition_report(early, V1_URL) == report(13, 1)


@pytest.mark.parametrize(
    ("msn", "part", "why"),
    [
        (None, 1, "no LAST-MSN"),
        (13, None, "no LAST-PART"),
        (13, MAX_PARTS_PER_SEGMENT, "LAST-PART=64"),
        (13 + MAX_REPORT_LEAD_SEGMENTS + 1, 0, "outside"),  # far past the live edge (13.1)
        (9, 0, "outside"),  # before the first segment listed (10)
        (10**15, 0, "outside"),
        (-1, 0, "LAST-MSN=-1"),  # the parser refuses it; one built by hand is refused here
    ],
)
def test_inconsistent_reports_are_refused_and_not_used(msn: int | None, part: int | None, why: str) -> None:
    current = media("v0", 10, 12, 2, reports=(report(msn, part),))
    with pytest.raises(RenditionReportError, match=why) as raised:
        check_rendition_report(report(msn, part), current)
    assert isinstance(raised.value, LowLatencyPlaylistError)
    request = switch_playlist_request(current, V1_URL)
    assert request.url == V1_URL and not request.blocking  # a plain load instead, never a crash
    assert request.ignored is not None and why in request.ignored


def test_reports_within_bounds_are_used() -> None:
    # Another rendition may be a little ahead of (or behind) this one.
    for msn, part in ((13 + MAX_REPORT_LEAD_SEGMENTS, 3), (10, 0), (12, 3)):
        current = media("v0", 10, 12, 2, reports=(report(msn, part),))
        check_rendition_report(report(msn, part), current)
        assert switch_playlist_request(current, V1_URL).blocking


def test_without_parts_the_report_asks_for_the_segment_alone() -> None:
    current = attrs.evolve(
        media("v0", 10, 12, 0, reports=(report(12, None),)), part_target=None, pending_parts=()
    )
    request = switch_playlist_request(current, V1_URL)
    assert request.blocking and parse_qs(urlsplit(request.url).query) == {"_HLS_msn": ["12"]}


# --------------------------------------------------------------------------------------------------
# One timeline, where the new rendition takes over


def test_the_new_rendition_is_put_on_the_old_timeline_by_sequence_number() -> None:
    old = media("v0", 10, 12, 2, origin=100.0)  # segment 10 at 100 s on the old timeline
    new = media("v1", 11, 13, 1)  # parsed alone: segment 11 at 0 s
    assert timeline_shift(new, old) == pytest.approx(102.0)
    # Windows without a segment in common: the segments between last a target duration each.
    later = media("v1", 15, 16, 0)
    assert timeline_shift(later, old) == pytest.approx(106.0 + 2 * 2.0 - 0.0)


def test_resume_at_the_first_independent_part_at_or_after_the_point() -> None:
    playlist = media("v1", 10, 12, 3)  # parts 0 and 2 independent; pending segment 13
    assert resume_position(playlist, 0.0) == (10, 0, 0.0)
    assert resume_position(playlist, 0.5) == (10, 2, 1.0)  # part 1 is not independent
    assert resume_position(playlist, 1.0) == (10, 2, 1.0)
    assert resume_position(playlist, 1.0 + 5e-4) == (10, 2, 1.0)  # rounding of decimal durations
    assert resume_position(playlist, 1.01) == (11, 0, 2.0)
    assert resume_position(playlist, 6.5) == (13, 2, 7.0)  # a pending part
    assert resume_position(playlist, 7.5) is None  # not published yet: wait for the next update
    assert resume_position(playlist, float("nan")) is None


def test_resume_skips_gaps_and_takes_segment_starts_when_nothing_is_marked() -> None:
    gapped = media("v1", 10, 12, 0, gap_parts=((11, 0),))
    assert resume_position(gapped, 1.5) == (11, 2, 3.0)
    unmarked = media("v1", 10, 12, 0, independent=())
    assert resume_position(unmarked, 0.5) == (11, 0, 2.0)


def test_an_old_item_waits_until_the_new_playlist_has_published_its_position() -> None:
    # Both renditions publish part 13.2 (at 7.0 s) at the same moment; the old one's bytes come
    # first: it waits while the new playlist has published only up to 7.0 s (13.0, 13.1).
    new = media("v1", 10, 12, 2)
    assert published_until(new) == pytest.approx(7.0)
    assert waits_for_switch(7.0, new)
    assert not waits_for_switch(6.5, new)  # listed: the new playlist says whether it starts there
    assert not waits_for_switch(7.0, media("v1", 10, 12, 3))
    assert not waits_for_switch(7.0, None)  # the first load is not in yet: nothing to wait for


# --------------------------------------------------------------------------------------------------
# The follower of the rendition switched to


def test_the_follower_resumes_where_the_old_rendition_stops_and_no_earlier() -> None:
    # Switching at 9.0 s on the old timeline (segment 14 part 2 there); the report says v1 is at
    # 14.1. The follower's first load is the report's blocking reload.
    old = media("v0", 11, 13, 2, origin=2.0 * 11)
    target = switch_playlist_request(attrs.evolve(old, rendition_reports=(report(14, 1),)), V1_URL)
    follower = LowLatencyFollower(V1_URL, first_url=target.url, resume_from=29.0, hold_back=1.5)
    first = follower.next_playlist_request()
    assert first is not None and first.blocking and first.url == target.url
    new = media("v1", 11, 13, 2)  # as parsed: from 0 s
    shift = timeline_shift(new, old)
    assert shift == pytest.approx(22.0)
    follower.playlist_received(media("v1", 11, 13, 2, origin=shift), now=0.0)
    # 29.0 s is segment 14's part 2, not published yet: nothing to fetch or hand over yet.
    assert follower.start is None and drain(follower) == []
    follower.resume_from = 29.5  # the player got one more part of the old rendition meanwhile
    request = follower.next_playlist_request()
    assert request is not None and request.blocking and (request.msn, request.part) == (14, 2)
    # (refreshes on the timeline the caller's LivePlaylistTracker keeps)
    follower.playlist_received(media("v1", 11, 13, 4, origin=shift), now=0.5)
    # Part 2 (29.0 s) is before the point, part 3 not independent: segment 15's start, when it comes.
    assert follower.start is None and drain(follower) == []
    follower.playlist_received(media("v1", 12, 14, 1, origin=shift + SEGMENT_S), now=1.0)
    assert follower.start is not None and (follower.start.sequence, follower.start.part_index) == (15, 0)
    assert follower.start.start == pytest.approx(30.0) == follower.start.play_from
    items = drain(follower)
    assert [(i.segment_id, i.part.id.index if i.part else None) for i in items] == [(SegmentId("v1", 15), 0)]
    assert items[0].start == pytest.approx(30.0) and items[0].data == b"http://origin.test/live/v1/s15.0.mp4"
    assert items[0].init_section == InitSection(url=f"{BASE}v1/init.mp4")  # the new rendition's map


def test_a_switch_resumes_even_under_a_hold_back_the_new_rendition_refuses() -> None:
    # The application's hold-back (1.5 s) is under the new rendition's minimum (two 1 s parts):
    # a start would refuse it; a switch does not start at the hold-back, so it goes on.
    longer = attrs.evolve(
        media("v1", 10, 12, 0),
        part_target=1.0,
        server_control=ServerControl(can_block_reload=True, part_hold_back=3.0),
    )
    follower = LowLatencyFollower(V1_URL, hold_back=1.5, resume_from=2.0)
    follower.playlist_received(longer, now=0.0)
    assert follower.start is not None and follower.start.sequence == 11
    plain = LowLatencyFollower(V1_URL, hold_back=1.5)
    with pytest.raises(UsageError):
        plain.playlist_received(longer, now=0.0)


def test_a_resume_point_that_is_not_a_number_is_refused() -> None:
    with pytest.raises(UsageError):
        LowLatencyFollower(V1_URL, resume_from=float("inf"))
