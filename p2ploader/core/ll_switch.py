"""Switching a live Low-Latency HLS stream to another rendition (RFC 8216bis §6.2.5.2), sans-IO.

A player following one rendition at low latency switches to another in three steps, each a pure
function of the playlists here (the caller does the I/O, see
:meth:`p2ploader.aio.low_latency.LowLatencyStream.select_rendition`):

* **the first request** for the new rendition's media playlist
  (:func:`switch_playlist_request`): the current playlist's ``EXT-X-RENDITION-REPORT`` for that
  rendition says where its live edge is (``LAST-MSN``, ``LAST-PART``), so the first load is a
  blocking reload asking for exactly that (``_HLS_msn=LAST-MSN&_HLS_part=LAST-PART``): the server
  answers with a playlist at least that fresh, at once when it has it, so the client does not
  load a stale copy first and then block for the next part. Without a report for it (or with one
  :func:`check_rendition_report` refuses, or a server that cannot block) the first load is a plain
  GET;
* **one timeline** (:func:`timeline_shift`): the new rendition's segment start times are moved so
  that segments with the same media sequence number start where they did in the old one (HLS
  renditions are aligned by media sequence number), so positions stay meaningful across the switch;
* **where the new rendition takes over** (:func:`resume_position`): at the first independent part
  (or segment start) that begins at or after the switch point, the end of what the player has.
  The old rendition goes on until there, so the media is continuous: no gap, nothing twice.
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
    "SwitchRequest",
    "check_rendition_report",
    "find_rendition_report",
    "published_until",
    "resume_position",
    "switch_playlist_request",
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

_TIME_TOLERANCE: Final = 1e-3  # seconds: positions closer than this are the same


@attrs.frozen(kw_only=True)
class SwitchRequest:
    """The first load of the rendition switched to: GET ``url``. ``blocking``: it carries the
    report's ``_HLS_msn`` (``msn``) and ``_HLS_part`` (``part``). ``report``: the report used, or
    None. ``ignored``: why a report found for the rendition was not used (None: used, or none)."""

    url: str
    blocking: bool
    msn: int | None = None
    part: int | None = None
    report: RenditionReport | None = None
    ignored: str | None = None


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


def check_rendition_report(report: RenditionReport, playlist: MediaPlaylist) -> None:
    """Refuse a ``report`` that ``playlist`` (the one carrying it) shows is inconsistent: no
    ``LAST-MSN``; no ``LAST-PART`` while the playlist has parts (RFC 8216bis §4.4.5.4 requires it
    then); a ``LAST-PART`` of :data:`MAX_PARTS_PER_SEGMENT` or more; a ``LAST-MSN`` more than
    :data:`MAX_REPORT_LEAD_SEGMENTS` past ``playlist``'s live edge, or before its first segment
    (the other rendition cannot be that far from this one). Raises
    :class:`~p2ploader.errors.RenditionReportError` naming the reason."""
    msn, part = report.last_msn, report.last_part
    if msn is None:
        raise RenditionReportError(playlist.url, f"the report for {report.url} has no LAST-MSN")
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
    try:
        edge_msn, _ = live_edge(playlist)
    except UsageError as exc:  # nothing published: nothing to check the report against
        raise RenditionReportError(playlist.url, f"no live edge to check the report against: {exc}") from exc
    first = playlist.first_sequence
    if msn > edge_msn + MAX_REPORT_LEAD_SEGMENTS or msn < first:
        raise RenditionReportError(
            playlist.url,
            f"the report for {report.url} has LAST-MSN={msn}, outside this playlist's segments "
            f"{first}..{edge_msn} (+{MAX_REPORT_LEAD_SEGMENTS})",
        )


def switch_playlist_request(current: MediaPlaylist, url: str) -> SwitchRequest:
    """The first load of the media playlist at ``url`` when switching to it from ``current`` (the
    playlist followed so far): a blocking reload at the live edge ``current``'s rendition report
    gives for it, when the server can block (``CAN-BLOCK-RELOAD=YES``) and the report is
    consistent (:func:`check_rendition_report`); otherwise a plain GET of ``url`` (``ignored``
    says why when a report was found and not used)."""
    report = find_rendition_report(current, url)
    if report is None:
        return SwitchRequest(url=url, blocking=False)
    control = current.server_control
    if control is None or not control.can_block_reload:
        why = "the server cannot block reloads"
        return SwitchRequest(url=url, blocking=False, report=report, ignored=why)
    try:
        check_rendition_report(report, current)
    except RenditionReportError as exc:
        return SwitchRequest(url=url, blocking=False, report=report, ignored=exc.reason)
    assert report.last_msn is not None
    # Without parts (no LAST-PART) the segment alone is asked for.
    target = blocking_reload_url(url, msn=report.last_msn, part=report.last_part)
    return SwitchRequest(url=target, blocking=True, msn=report.last_msn, part=report.last_part, report=report)


def timeline_shift(playlist: MediaPlaylist, reference: MediaPlaylist) -> float:
    """Seconds to add to ``playlist``'s start times (another rendition's, as parsed) to put it on
    ``reference``'s timeline: a segment with the same media sequence number then starts where it
    does in ``reference``. Without a sequence number in common (the windows do not overlap), the
    segments between are taken to last ``reference``'s target duration each."""
    ref = {segment.id.sequence: segment.start for segment in reference.segments}
    for segment in playlist.segments:
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


def waits_for_switch(position: float, switched_to: MediaPlaylist | None) -> bool:
    """Whether the old rendition's item starting at ``position`` (seconds) waits before it is
    handed over, a switch to the rendition of ``switched_to`` being under way (its latest
    playlist on the same timeline; None: not loaded yet): True while that playlist has not
    published up to ``position``, so cannot say yet whether it takes over right there.

    Why: both renditions publish each part at the same moment and the stream hands each item as
    soon as its bytes are here, so the old rendition's part (whose preload hint was under way)
    would nearly always be handed before the new rendition's playlist listing the same position
    arrives, pushing the switch to the next independent point, a segment later with one key frame
    a segment. The caller bounds the wait (a part target): a slow new playlist delays the old
    rendition by no more than that."""
    if switched_to is None:
        return False
    return published_until(switched_to) <= position + _TIME_TOLERANCE


def resume_position(playlist: MediaPlaylist, position: float) -> tuple[int, int, float] | None:
    """Where the rendition of ``playlist`` (on the timeline of the one switched from, see
    :func:`timeline_shift`) takes over at ``position`` (seconds, the end of what the player has):
    (sequence, part index, start) of the first independent part, or segment start, beginning at
    or after ``position``; None while ``playlist`` has not published one yet (load the next
    update). A piece starting within a millisecond before ``position`` counts as at it (part
    durations are decimals that do not add up exactly)."""
    if not math.isfinite(position):
        return None
    for sequence, index, start, startable in _pieces(playlist):
        if startable and start >= position - _TIME_TOLERANCE:
            return (sequence, index, start)
    return None
