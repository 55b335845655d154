"""Switching a live Low-Latency HLS stream to another rendition (RFC 8216bis §6.2.5.2), sans-IO.

A player following one rendition at low latency switches to another in three steps, each a pure
function of the playlists here (the caller does the I/O, see
:meth:`p2ploader.aio.low_latency.LowLatencyStream.select_rendition`):

* **the first request** for the new rendition's media playlist
  (:func:`switch_playlist_request`): the current playlist's ``EXT-X-RENDITION-REPORT`` for that
  rendition says where its live edge is (``LAST-MSN``, ``LAST-PART``; an attribute the report
  omits is the carrying playlist's own, as RFC 8216bis §4.4.5.4 allows), so the first load is a
  blocking reload asking for that edge (``_HLS_msn=LAST-MSN&_HLS_part=LAST-PART``): the server
  answers at once with a playlist at least as fresh as the report, so the client does not load a
  stale copy first and then block for the next part (hls.js asks for the part after LAST-PART
  when the report is old; asking for LAST-PART itself returns at once, and the next blocking
  reload asks for the part after it). Without a report for it (or with one
  :func:`check_rendition_report` refuses, or a server that cannot block) the first load is a plain
  GET;
* **one timeline** (:func:`timeline_shift`): the new rendition's segment start times are moved so
  that the newest segment both playlists list starts where it does in the old one (HLS renditions
  are aligned by media sequence number), so positions stay meaningful across the switch. Positions
  are only for the timeline: renditions may write slightly different durations (2.004 s here,
  2.0 s there), so they drift apart by a few milliseconds a segment; where to switch is decided
  by media sequence number and part index, never by time;
* **where the new rendition takes over** (:func:`resume_position`): at its first independent part
  (or segment start) at or after the end of what the player has from the old one
  (a :class:`PlayPoint`: segment and part index). The old rendition goes on until there; an old
  item that would straddle that point (a whole segment while the new rendition's key frame is
  mid-segment) is handed whole and the new rendition takes over at its next independent point
  after it instead (the caller moves the point on with each item handed). So the media is
  continuous: no gap, nothing twice. When the two renditions have different part targets their
  part indexes do not name the same media time, and only segment starts are taken.
"""

from __future__ import annotations

import math
from typing import Final
from urllib.parse import urlsplit

import attrs

from p2ploader.core.low_latency import RenditionReport
from p2ploader.core.segments import Part
from p2ploader.errors import RenditionReportError, UsageError
from p2ploader.hls import MediaPlaylist, blocking_reload_url
from p2ploader.hls_low_latency import live_edge

__all__ = [
    "MAX_PARTS_PER_SEGMENT",
    "MAX_RENDITION_REPORTS",
    "MAX_REPORT_LEAD_SEGMENTS",
    "PlayPoint",
    "SwitchRequest",
    "check_rendition_report",
    "continues_at",
    "find_rendition_report",
    "published_until",
    "resume_position",
    "switch_playlist_request",
    "takes_over",
    "timeline_shift",
    "waits_for_switch",
]

MAX_RENDITION_REPORTS: Final = 32
"""Reports of one playlist looked at, at most (the first ones): a master playlist with more
renditions than that is unusual, and each report is a URL to compare."""

MAX_REPORT_LEAD_SEGMENTS: Final = 2
"""How far (segments) a report's ``LAST-MSN`` may be past the live edge of the playlist carrying
it. Renditions are packaged together, so their edges are within a segment or so of each other; a
server refuses a blocking reload more than two segments past its edge (RFC 8216bis §6.2.5.2)."""

MAX_PARTS_PER_SEGMENT: Final = 64
"""``LAST-PART`` must be below this (the part ids of the parts swarm allow 64 a segment)."""

_PART_TARGET_TOLERANCE: Final = 1e-6  # seconds: part targets closer than this are the same


@attrs.frozen(kw_only=True)
class SwitchRequest:
    """The first load of the rendition switched to: GET ``url``. ``blocking``: it carries
    ``_HLS_msn`` (``msn``) and ``_HLS_part`` (``part``), the report's edge with the attributes it
    omits filled in from the playlist carrying it. ``report``: the report as that playlist carries
    it, or None. ``ignored``: why a report found for the rendition was not used (None: used, or
    none)."""

    url: str
    blocking: bool
    msn: int | None = None
    part: int | None = None
    report: RenditionReport | None = None
    ignored: str | None = None


@attrs.frozen(kw_only=True)
class PlayPoint:
    """A point of the rendition switched from, in play order: the start of part ``part`` of
    segment ``sequence`` (part 0: the segment's start). The end of a segment's last part may be
    written as the part after it (``part`` = the number of parts): it is the next segment's start.

    ``part_target`` is that rendition's PART-TARGET (seconds; None: no parts). Renditions are
    aligned by media sequence number, so segment starts are the same media time in both; part
    indexes are the same media time only when both renditions have the same part target, as
    packagers make them. Otherwise only segment starts are compared."""

    sequence: int
    part: int = 0
    part_target: float | None = None

    @property
    def key(self) -> tuple[int, int]:
        return (self.sequence, self.part)


def _by_part(point: PlayPoint, playlist: MediaPlaylist | None) -> bool:
    """Whether part indexes of ``playlist`` and of ``point``'s rendition name the same media time."""
    a, b = point.part_target, None if playlist is None else playlist.part_target
    return a is not None and b is not None and abs(a - b) <= _PART_TARGET_TOLERANCE


def _compare(piece: tuple[int, int], point: PlayPoint, by_part: bool) -> int | None:
    """Whether the new rendition's ``piece`` (sequence, part index) begins before (-1), at (0) or
    after (1) ``point``; None when that cannot be known (parts of other lengths in the same
    segment)."""
    if by_part:
        return (piece > point.key) - (piece < point.key)
    sequence, index = piece
    if sequence != point.sequence:
        return -1 if sequence < point.sequence else 1
    if index == 0:
        return 0 if point.part == 0 else -1  # a segment starts before any of its parts
    return 1 if point.part == 0 else None


def _same_playlist(a: str, b: str) -> bool:
    """Whether two resolved URLs name the same media playlist: scheme, host and path (a query such
    as a token may be on one and not on the other)."""
    x, y = urlsplit(a), urlsplit(b)
    return (x.scheme.lower(), x.netloc.lower(), x.path) == (y.scheme.lower(), y.netloc.lower(), y.path)


def find_rendition_report(playlist: MediaPlaylist, url: str) -> RenditionReport | None:
    """``playlist``'s ``EXT-X-RENDITION-REPORT`` for the media playlist at ``url`` (resolved), or
    None. Only the first :data:`MAX_RENDITION_REPORTS` reports are looked at. The report's URI
    was resolved against ``playlist``'s own URL by the parser, as the RFC has it (§4.4.5.4)."""
    exact = None
    for report in playlist.rendition_reports[:MAX_RENDITION_REPORTS]:
        if report.url == url:
            return report
        if exact is None and _same_playlist(report.url, url):
            exact = report
    return exact


def check_rendition_report(report: RenditionReport, playlist: MediaPlaylist) -> RenditionReport:
    """``report`` with the attributes it omits filled in from ``playlist`` (the one carrying it),
    checked against it. RFC 8216bis §4.4.5.4 lets a server omit ``LAST-MSN`` or ``LAST-PART`` when
    it is the same as in ``playlist``'s own rendition report: its live edge (the media sequence
    number and index of its last part, or its last segment without parts).

    Refused, with :class:`~p2ploader.errors.RenditionReportError` naming the reason: a report that
    ``playlist`` shows is inconsistent: a ``LAST-PART`` of :data:`MAX_PARTS_PER_SEGMENT` or more;
    a ``LAST-MSN`` more than :data:`MAX_REPORT_LEAD_SEGMENTS` past ``playlist``'s live edge, or
    before its first segment (the other rendition cannot be that far from this one); no
    ``LAST-PART`` while ``playlist`` has parts and its edge names none to fill in; nothing
    published in ``playlist`` to check against."""
    try:
        edge_msn, edge_part = live_edge(playlist)
    except UsageError as exc:  # nothing published: nothing to check the report against
        raise RenditionReportError(playlist.url, f"no live edge to check the report against: {exc}") from exc
    if playlist.part_target is None:
        edge_part = None  # no parts: its own report has no LAST-PART
    msn = edge_msn if report.last_msn is None else report.last_msn
    part = edge_part if report.last_part is None else report.last_part
    if part is None and playlist.part_target is not None:
        raise RenditionReportError(
            playlist.url, f"the report for {report.url} has no LAST-PART though the playlist has parts"
        )
    if part is not None and not 0 <= part < MAX_PARTS_PER_SEGMENT:
        raise RenditionReportError(
            playlist.url,
            f"the report for {report.url} has LAST-PART={part} (at most {MAX_PARTS_PER_SEGMENT - 1})",
        )
    if msn < 0:  # the parser refuses it; a report built by hand may not
        raise RenditionReportError(playlist.url, f"the report for {report.url} has LAST-MSN={msn}")
    first = playlist.first_sequence
    if msn > edge_msn + MAX_REPORT_LEAD_SEGMENTS or msn < first:
        raise RenditionReportError(
            playlist.url,
            f"the report for {report.url} has LAST-MSN={msn}, outside this playlist's segments "
            f"{first}..{edge_msn} (+{MAX_REPORT_LEAD_SEGMENTS})",
        )
    return attrs.evolve(report, last_msn=msn, last_part=part)


def switch_playlist_request(current: MediaPlaylist, url: str) -> SwitchRequest:
    """The first load of the media playlist at ``url`` when switching to it from ``current`` (the
    playlist followed so far): a blocking reload at the live edge ``current``'s rendition report
    gives for it, when the server can block (``CAN-BLOCK-RELOAD=YES``) and the report is
    consistent (:func:`check_rendition_report`, which fills omitted attributes in); otherwise a
    plain GET of ``url`` (``ignored`` says why when a report was found and not used)."""
    report = find_rendition_report(current, url)
    if report is None:
        return SwitchRequest(url=url, blocking=False)
    control = current.server_control
    if control is None or not control.can_block_reload:
        why = "the server cannot block reloads"
        return SwitchRequest(url=url, blocking=False, report=report, ignored=why)
    try:
        edge = check_rendition_report(report, current)
    except RenditionReportError as exc:
        return SwitchRequest(url=url, blocking=False, report=report, ignored=exc.reason)
    assert edge.last_msn is not None
    # Without parts (no LAST-PART) the segment alone is asked for.
    target = blocking_reload_url(url, msn=edge.last_msn, part=edge.last_part)
    return SwitchRequest(url=target, blocking=True, msn=edge.last_msn, part=edge.last_part, report=report)


def timeline_shift(playlist: MediaPlaylist, reference: MediaPlaylist) -> float:
    """Seconds to add to ``playlist``'s start times (another rendition's, as parsed) to put it on
    ``reference``'s timeline: the newest segment both list (same media sequence number) then
    starts where it does in ``reference``. The newest, not the oldest: renditions that write
    slightly different durations drift apart segment by segment, and the switch happens at the
    live edge, where the newest shared segment keeps that drift smallest. Without a sequence
    number in common (the windows do not overlap), the segments between are taken to last
    ``reference``'s target duration each."""
    ref = {segment.id.sequence: segment.start for segment in reference.segments}
    for segment in reversed(playlist.segments):
        if segment.id.sequence in ref:
            return ref[segment.id.sequence] - segment.start
    if not playlist.segments or not reference.segments:
        return 0.0
    first, last = playlist.segments[0], reference.segments[-1]
    expected = last.end + (first.id.sequence - last.id.sequence - 1) * float(reference.target_duration)
    return expected - first.start


def _pieces(playlist: MediaPlaylist) -> list[tuple[int, int, float, bool]]:
    """Where a player may begin in ``playlist``: (sequence, part index, start, may start here) of
    each part (or segment without parts), in play order (as
    :func:`~p2ploader.hls_low_latency.low_latency_start` sees them)."""
    with_parts = playlist.part_target is not None
    parts: list[Part] = [part for segment in playlist.segments for part in segment.parts]
    if with_parts:
        parts += playlist.pending_parts
    unmarked = not any(part.independent for part in parts)

    def startable(part: Part) -> bool:
        return not part.gap and (part.id.index == 0 if unmarked else part.independent)

    pieces: list[tuple[int, int, float, bool]] = []
    for segment in playlist.segments:
        if segment.parts and with_parts:
            position = segment.start
            for part in segment.parts:
                pieces.append((segment.id.sequence, part.id.index, position, startable(part)))
                position += part.duration
        else:
            pieces.append((segment.id.sequence, 0, segment.start, not segment.gap))
    if with_parts:
        position = playlist.segments[-1].end if playlist.segments else 0.0
        for part in playlist.pending_parts:
            pieces.append((part.segment.sequence, part.id.index, position, startable(part)))
            position += part.duration
    return pieces


def published_until(playlist: MediaPlaylist) -> float:
    """Media time (seconds, on ``playlist``'s timeline) up to which ``playlist`` has published:
    the end of its last part, or of its last segment without parts pending (its live edge)."""
    end = playlist.segments[-1].end if playlist.segments else 0.0
    return end + math.fsum(part.duration for part in playlist.pending_parts)


def waits_for_switch(point: PlayPoint, switched_to: MediaPlaylist | None) -> bool:
    """Whether the old rendition's item starting at ``point`` waits before it is handed over, a
    switch to the rendition of ``switched_to`` being under way (its latest playlist; None: not
    loaded yet): True while that playlist has not published the piece at ``point``, so cannot say
    yet whether it takes over right there. (A point inside a segment, with part targets that
    differ, never waits: only segment starts are switch points then.)

    Why: both renditions publish each part at the same moment and the stream hands each item as
    soon as its bytes are here, so the old rendition's part (whose preload hint was under way)
    would nearly always be handed before the new rendition's playlist listing the same point
    arrives, pushing the switch to the next independent point, a segment later with one key frame
    a segment. The caller bounds the wait (a part target): a slow new playlist delays the old
    rendition by no more than that."""
    if switched_to is None:
        return False
    if not _by_part(point, switched_to) and point.part != 0:
        return False
    # What it publishes next: part len(pending) of the segment after its last complete one.
    published = (switched_to.last_sequence + 1, len(switched_to.pending_parts))
    return published <= point.key


def resume_position(playlist: MediaPlaylist, after: PlayPoint) -> tuple[int, int, float] | None:
    """Where the rendition of ``playlist`` takes over when the player has the old rendition up to
    ``after`` (the end of what it was handed): (sequence, part index, start) of ``playlist``'s
    first independent part, or segment start, at or after ``after`` by media sequence number and
    part index (by segment only when the part targets differ, see :class:`PlayPoint`); None while
    ``playlist`` has not published one yet (load the next update). ``start`` is in seconds on
    ``playlist``'s timeline."""
    by_part = _by_part(after, playlist)
    for sequence, index, start, startable in _pieces(playlist):
        if not startable or not (by_part or index == 0):
            continue
        order = _compare((sequence, index), after, by_part)
        if order is not None and order >= 0:
            return (sequence, index, start)
    return None


def continues_at(playlist: MediaPlaylist, after: PlayPoint, start: tuple[int, int]) -> bool:
    """Whether the rendition of ``playlist``, starting at ``start`` (sequence, part index: its
    :func:`resume_position`), continues right where the player's media from the old rendition ends
    (``after``): ``playlist`` lists a piece before ``after`` (its window reaches back there) and
    none from ``after`` up to ``start``. Then it may take over at once, without waiting for the
    old rendition's next item."""
    by_part = _by_part(after, playlist)
    if _compare(start, after, by_part) == 0:
        return True
    if not by_part:
        return False  # the old rendition's own items say when it reaches a segment start
    keys = [(sequence, index) for sequence, index, _, _ in _pieces(playlist)]
    if not keys or keys[0] >= after.key:
        return False  # the window starts after the point: what lies between is not known
    return not any(after.key <= key < start for key in keys)


def takes_over(playlist: MediaPlaylist | None, start: tuple[int, int], point: PlayPoint) -> bool:
    """Whether the rendition of ``playlist``, starting at ``start`` (sequence, part index), has the
    media from ``point`` on (the start of the old rendition's next item): its start is known to be
    at or before it. The caller keeps ``start`` at or after what the player has
    (:meth:`~p2ploader.core.ll_follower.LowLatencyFollower.resume_after`), so at the old item that
    begins there, which it then drops."""
    return _compare(start, point, _by_part(point, playlist)) in (-1, 0)
