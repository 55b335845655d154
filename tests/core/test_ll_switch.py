"""Switching a live LL-HLS stream to another rendition, sans-IO: the first request from the
rendition report (omitted attributes filled in from the carrying playlist), one timeline (anchored
on the newest shared segment), where the new rendition takes over (by media sequence number and
part index, whatever the durations say), and the follower resuming there and moving on.

Playlists are built by hand (one test parses a real playlist text, for the report URI's
resolution) and the clock is driven: each call gets ``now`` in seconds.
"""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import attrs
import pytest

from p2ploader.core.ll_follower import FetchRequest, LowLatencyFollower, LowLatencyItem, item_span
from p2ploader.core.ll_switch import (
    MAX_PARTS_PER_SEGMENT,
    MAX_RENDITION_REPORTS,
    MAX_REPORT_LEAD_SEGMENTS,
    PlayPoint,
    check_rendition_report,
    continues_at,
    find_rendition_report,
    published_until,
    resume_position,
    switch_playlist_request,
    takes_over,
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


def at(sequence: int, part: int = 0, part_target: float | None = PART_S) -> PlayPoint:
    """A point of the old rendition (0.5 s parts by default, as the new one's)."""
    return PlayPoint(sequence=sequence, part=part, part_target=part_target)


def with_durations(playlist: MediaPlaylist, durations: dict[int, float]) -> MediaPlaylist:
    """``playlist`` with the segments of ``durations`` (sequence: seconds) lasting that long, the
    later ones moved on as much (a packager that writes each rendition's measured durations)."""
    segments, start = [], playlist.segments[0].start
    for segment in playlist.segments:
        duration = durations.get(segment.id.sequence, segment.duration)
        segments.append(attrs.evolve(segment, start=start, duration=duration))
        start += duration
    return attrs.evolve(playlist, segments=tuple(segments))


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


@pytest.mark.parametrize(
    ("msn", "part", "edge"),
    [
        (None, 1, (13, 1)),
        (13, None, (13, 1)),
        (None, None, (13, 1)),
        (12, None, (12, 1)),  # LAST-PART omitted is the carrying playlist's, whatever LAST-MSN says
        (None, 0, (13, 0)),
    ],
)
def test_omitted_attributes_are_the_carrying_playlists_own(
    msn: int | None, part: int | None, edge: tuple[int, int]
) -> None:
    # RFC 8216bis §4.4.5.4: a server may omit LAST-MSN or LAST-PART when it equals the carrying
    # playlist's own report: its last part is 13.1 here.
    current = media("v0", 10, 12, 2, reports=(report(msn, part),))
    assert check_rendition_report(report(msn, part), current) == report(*edge)
    request = switch_playlist_request(current, V1_URL)
    assert request.blocking and request.ignored is None and (request.msn, request.part) == edge
    assert parse_qs(urlsplit(request.url).query) == {"_HLS_msn": [str(edge[0])], "_HLS_part": [str(edge[1])]}
    assert request.report == report(msn, part)  # as the playlist carries it


def test_omitted_attributes_without_parts_or_without_an_edge_part() -> None:
    # Without parts the edge is the last segment: the segment alone is asked for.
    plain = attrs.evolve(media("v0", 10, 12, 0, reports=(report(None, None),)), part_target=None)
    request = switch_playlist_request(plain, V1_URL)
    assert request.blocking and (request.msn, request.part) == (12, None)
    # A playlist with parts whose last segment lists none (and nothing pending): no LAST-PART to
    # fill in, so an omitted one is still refused.
    bare = media("v0", 10, 12, 0, reports=(report(12, None),))
    bare = attrs.evolve(bare, segments=(*bare.segments[:-1], attrs.evolve(bare.segments[-1], parts=())))
    with pytest.raises(RenditionReportError, match="no LAST-PART"):
        check_rendition_report(report(12, None), bare)
    assert not switch_playlist_request(bare, V1_URL).blocking


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


def test_drifting_durations_are_aligned_on_the_newest_shared_segment() -> None:
    # The new rendition writes 2.004 s for segments 10 and 11 where the old one writes 2.0 s: by
    # segment 12 it is 8 ms late. Aligned on segment 10 (the oldest shared) segment 12 would start
    # at 4.008 s, and a switch decided by time would hand the old segment 12 and then the new one.
    old = media("v0", 10, 12, 2)
    new = with_durations(media("v1", 10, 12, 2), {10: 2.004, 11: 2.004})
    shift = timeline_shift(new, old)
    assert new.segments[2].start + shift == pytest.approx(old.segments[2].start, abs=1e-9)
    # Where it takes over does not depend on the times: after the old segment 11, at segment 12.
    shifted = attrs.evolve(new, segments=tuple(attrs.evolve(s, start=s.start + shift) for s in new.segments))
    assert resume_position(shifted, at(12))[:2] == (12, 0)  # type: ignore[index]
    early = with_durations(media("v1", 10, 12, 2), {10: 1.996, 11: 1.996})  # 8 ms early instead
    assert resume_position(early, at(12))[:2] == (12, 0)  # type: ignore[index]
    assert continues_at(early, at(12), (12, 0)) and takes_over(early, (12, 0), at(12))


def test_resume_at_the_first_independent_part_at_or_after_the_point() -> None:
    playlist = media("v1", 10, 12, 3)  # parts 0 and 2 independent; pending segment 13
    assert resume_position(playlist, at(10, 0)) == (10, 0, 0.0)
    assert resume_position(playlist, at(10, 1)) == (10, 2, 1.0)  # part 1 is not independent
    assert resume_position(playlist, at(10, 2)) == (10, 2, 1.0)
    assert resume_position(playlist, at(10, 3)) == (11, 0, 2.0)
    assert resume_position(playlist, at(10, 4)) == (11, 0, 2.0)  # the end of segment 10's last part
    assert resume_position(playlist, at(13, 1)) == (13, 2, 7.0)  # a pending part
    assert resume_position(playlist, at(13, 3)) is None  # not published yet: wait for the next update


def test_with_other_part_targets_only_segment_starts_are_taken() -> None:
    # The old rendition has 1 s parts: its part 1 is not the new rendition's part 1.
    playlist = media("v1", 10, 12, 3)
    assert resume_position(playlist, at(10, 1, part_target=1.0)) == (11, 0, 2.0)
    assert resume_position(playlist, at(11, 0, part_target=1.0)) == (11, 0, 2.0)
    assert resume_position(playlist, at(11, 0, part_target=None)) == (11, 0, 2.0)  # no parts there
    assert resume_position(playlist, at(12, 2, part_target=1.0)) == (13, 0, 6.0)
    # A key frame mid-segment only: no point both renditions name the same way.
    mid = media("v1", 10, 12, 0, independent=(2,))
    assert resume_position(mid, at(10, 0, part_target=1.0)) is None
    assert resume_position(mid, at(10, 0)) == (10, 2, 1.0)


def test_resume_skips_gaps_and_takes_segment_starts_when_nothing_is_marked() -> None:
    gapped = media("v1", 10, 12, 0, gap_parts=((11, 0),))
    assert resume_position(gapped, at(10, 4)) == (11, 2, 3.0)
    unmarked = media("v1", 10, 12, 0, independent=())
    assert resume_position(unmarked, at(10, 1)) == (11, 0, 2.0)


def test_when_the_new_rendition_continues_right_where_the_player_is() -> None:
    playlist = media("v1", 10, 12, 2)  # up to 13.1
    assert continues_at(playlist, at(13, 0), (13, 0))
    assert continues_at(playlist, at(12, 4), (13, 0))  # the end of 12's last part is 13's start
    assert not continues_at(playlist, at(12, 2), (13, 0))  # 12.2 and 12.3 lie between
    assert continues_at(playlist, at(12, 2), (12, 2))
    # The new window starts after the point: what lies between is not known.
    assert not continues_at(media("v1", 12, 13, 1), at(10, 4), (12, 0))
    # Other part targets: only at the same segment start.
    assert continues_at(playlist, at(13, 0, part_target=1.0), (13, 0))
    assert not continues_at(playlist, at(12, 2, part_target=1.0), (13, 0))


def test_the_new_rendition_takes_over_from_an_old_item_at_or_after_its_start() -> None:
    playlist = media("v1", 10, 12, 2)
    assert takes_over(playlist, (12, 2), at(12, 2))
    assert takes_over(playlist, (12, 2), at(12, 3))
    assert not takes_over(playlist, (12, 2), at(12, 1))
    assert takes_over(playlist, (13, 0), at(13, 0, part_target=1.0))
    assert not takes_over(playlist, (12, 2), at(12, 3, part_target=1.0))  # not comparable


def test_the_span_of_an_item_by_sequence_and_part() -> None:
    sid = SegmentId("v0", 12)
    part = Part(id=PartId(sid, 2), url="p", duration=PART_S)
    item = LowLatencyItem(kind="part", segment_id=sid, data=b"", start=0.0, duration=PART_S, part=part)
    assert item_span(item, (12, 2)) == ((12, 2), (12, 3))
    whole = attrs.evolve(item, kind="segment", part=None)
    assert item_span(whole, (12, 0)) == ((12, 0), (13, 0))
    rest = attrs.evolve(item, kind="segment-rest", part=None)
    assert item_span(rest, (12, 3)) == ((12, 3), (13, 0))


def test_an_old_item_waits_until_the_new_playlist_has_published_its_position() -> None:
    # Both renditions publish part 13.2 at the same moment; the old one's bytes come first: it
    # waits while the new playlist has published only 13.0 and 13.1.
    new = media("v1", 10, 12, 2)
    assert published_until(new) == pytest.approx(7.0)
    assert waits_for_switch(at(13, 2), new)
    assert not waits_for_switch(at(13, 1), new)  # listed: the new playlist says whether it starts there
    assert not waits_for_switch(at(13, 2), media("v1", 10, 12, 3))
    assert not waits_for_switch(at(13, 2), None)  # the first load is not in yet: nothing to wait for
    # Other part targets: only a segment start waits (nothing else can be a switch point).
    assert not waits_for_switch(at(13, 2, part_target=1.0), new)
    assert waits_for_switch(at(13, 0, part_target=1.0), media("v1", 10, 12, 0))
    assert not waits_for_switch(at(13, 0, part_target=1.0), new)


# --------------------------------------------------------------------------------------------------
# The follower of the rendition switched to


def test_the_follower_resumes_where_the_old_rendition_stops_and_no_earlier() -> None:
    # The player has the old rendition up to segment 14 part 2; the report says v1 is at 14.1.
    # The follower's first load is the report's blocking reload.
    old = media("v0", 11, 13, 2, origin=2.0 * 11)
    target = switch_playlist_request(attrs.evolve(old, rendition_reports=(report(14, 1),)), V1_URL)
    follower = LowLatencyFollower(V1_URL, first_url=target.url, resume_from=at(14, 2), hold_back=1.5)
    first = follower.next_playlist_request()
    assert first is not None and first.blocking and first.url == target.url
    new = media("v1", 11, 13, 2)  # as parsed: from 0 s
    shift = timeline_shift(new, old)
    assert shift == pytest.approx(22.0)
    follower.playlist_received(media("v1", 11, 13, 2, origin=shift), now=0.0)
    # 14.2 is not published yet: nothing to fetch or hand over yet.
    assert follower.start is None and drain(follower) == []
    follower.resume_after(at(14, 3))  # the player got one more part of the old rendition meanwhile
    request = follower.next_playlist_request()
    assert request is not None and request.blocking and (request.msn, request.part) == (14, 2)
    # (refreshes on the timeline the caller's LivePlaylistTracker keeps)
    follower.playlist_received(media("v1", 11, 13, 4, origin=shift), now=0.5)
    # Part 2 is before the point, part 3 not independent: segment 15's start, when it comes.
    assert follower.start is None and drain(follower) == []
    follower.playlist_received(media("v1", 12, 14, 1, origin=shift + SEGMENT_S), now=1.0)
    assert follower.start is not None and (follower.start.sequence, follower.start.part_index) == (15, 0)
    assert follower.start.start == pytest.approx(30.0) == follower.start.play_from
    items = drain(follower)
    assert [(i.segment_id, i.part.id.index if i.part else None) for i in items] == [(SegmentId("v1", 15), 0)]
    assert items[0].start == pytest.approx(30.0) and items[0].data == b"http://origin.test/live/v1/s15.0.mp4"
    assert items[0].init_section == InitSection(url=f"{BASE}v1/init.mp4")  # the new rendition's map
    with pytest.raises(UsageError):
        follower.resume_after(at(15, 1))  # it took over: its start cannot move any more


def test_an_old_item_straddling_the_start_moves_it_to_the_next_independent_point() -> None:
    # The new rendition's key frames are at part 2 only. The player has the old one up to 12.0:
    # the start is 12.2. Then the old rendition hands its whole segment 12 (it was behind the
    # edge): 12.2 would be played twice, so the start moves on to 13.2, and nothing of segment 12
    # is handed over by the new rendition.
    follower = LowLatencyFollower(V1_URL, resume_from=at(12), hold_back=1.5)
    follower.playlist_received(media("v1", 10, 12, 3, independent=(2,)), now=0.0)
    assert follower.start is not None and (follower.start.sequence, follower.start.part_index) == (12, 2)
    asked = follower.take_fetches()
    assert {f"{BASE}v1/s12.2.mp4", f"{BASE}v1/s13.2.mp4"} <= {fetch.url for fetch in asked}
    follower.resume_after(at(13))
    assert follower.start is not None and (follower.start.sequence, follower.start.part_index) == (13, 2)
    assert follower.position == (13, 2)
    for fetch in asked:  # the fetches made for the first start come back now
        follower.fetch_completed(fetch, body(fetch))
    items = drain(follower)
    assert [(i.segment_id.sequence, i.part.id.index if i.part else None) for i in items] == [(13, 2)]
    # Asked before, kept: not asked again.
    assert f"{BASE}v1/s13.2.mp4" not in {fetch.url for fetch in follower.take_fetches()}


def test_a_start_moved_past_the_playlist_waits_for_the_next_one() -> None:
    follower = LowLatencyFollower(V1_URL, resume_from=at(12), hold_back=1.5)
    follower.playlist_received(media("v1", 10, 12, 1, independent=(2,)), now=0.0)
    assert follower.start is not None and follower.start.sequence == 12
    follower.resume_after(at(13))  # 13.2 is not published yet
    assert follower.start is None and follower.position is None and drain(follower) == []
    follower.resume_after(at(13, 1))  # moving on while nothing is chosen: no harm
    follower.playlist_received(media("v1", 10, 12, 3, independent=(2,)), now=0.5)
    assert follower.start is not None and (follower.start.sequence, follower.start.part_index) == (13, 2)
    assert [i.part.id.index for i in drain(follower) if i.part] == [2]


def test_a_refused_targeted_first_load_is_made_once_more_plainly() -> None:
    follower = LowLatencyFollower(V1_URL, first_url=f"{V1_URL}?_HLS_msn=13&_HLS_part=1", resume_from=at(12))
    first = follower.next_playlist_request()
    assert first is not None and first.blocking
    assert follower.first_load_refused()
    plain = follower.next_playlist_request()
    assert plain is not None and plain.url == V1_URL and not plain.blocking
    assert not follower.first_load_refused()  # plain already: the failure stands
    assert not LowLatencyFollower(V1_URL).first_load_refused()
    follower.playlist_received(media("v1", 10, 12, 2), now=0.0)
    assert not follower.first_load_refused()  # not the first load any more


def test_a_switch_resumes_even_under_a_hold_back_the_new_rendition_refuses() -> None:
    # The application's hold-back (1.5 s) is under the new rendition's minimum (two 1 s parts):
    # a start would refuse it; a switch does not start at the hold-back, so it goes on.
    longer = attrs.evolve(
        media("v1", 10, 12, 0),
        part_target=1.0,
        server_control=ServerControl(can_block_reload=True, part_hold_back=3.0),
    )
    follower = LowLatencyFollower(V1_URL, hold_back=1.5, resume_from=at(11))
    follower.playlist_received(longer, now=0.0)
    assert follower.start is not None and follower.start.sequence == 11
    plain = LowLatencyFollower(V1_URL, hold_back=1.5)
    with pytest.raises(UsageError):
        plain.playlist_received(longer, now=0.0)
