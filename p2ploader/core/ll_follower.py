"""Following a live Low-Latency HLS media playlist (RFC 8216bis), sans-IO.

:class:`LowLatencyFollower` is fed parsed media playlists (``p2ploader.hls`` builds them; for delta
updates, the ones :class:`~p2ploader.hls.LivePlaylistTracker` has filled in) and the bytes of the
fetches it asked for, each with the caller's clock (``now``, seconds). It decides:

* **where to start**: :func:`start_position`, loading from an independent part (or a whole
  segment) at least ``PART-HOLD-BACK`` seconds behind the live edge, playing from exactly
  ``PART-HOLD-BACK`` behind it (:attr:`StartPosition.play_from`);
* **the next playlist request** (:meth:`LowLatencyFollower.next_playlist_request`): with
  ``CAN-BLOCK-RELOAD=YES`` a blocking reload (``_HLS_msn``/``_HLS_part`` of the part after the
  last one known, RFC 8216bis §6.2.5.2; ``_HLS_skip=YES`` when ``CAN-SKIP-UNTIL`` allows it and
  the copy held is fresh enough), issued as soon as the previous one returned; otherwise a timed
  reload, paced by the part target (or the target duration without parts), RFC 8216bis §6.3.4;
* **what to fetch** (:meth:`LowLatencyFollower.take_fetches`): each new part in order (URL and
  byte range), the preload hint ahead of its publication (so the part is there the moment it is
  published), whole segments behind the live edge, never a ``GAP=YES`` part or ``EXT-X-GAP``
  segment; a resource is never asked for twice (a hinted part is the hint's fetch);
* **what the player gets next** (:meth:`LowLatencyFollower.next_ready`), strictly in order:
  :class:`LowLatencyItem` s, each a part, a whole segment, or the rest of a segment whose first
  parts were handed already (``skipped_bytes``), so no byte reaches the player twice.

Bad input. A playlist that went backwards (a lower media sequence or live edge than one seen
before) raises :class:`PlaylistWentBackwardsError`, and one that lost or changed a part already
seen raises :class:`PartVanishedError`; both leave the follower as it was (a stale CDN copy is
ignored), and the next request is a timed one. After ``resync_after`` such rejections in a row the
follower takes the playlist as the new truth and re-syncs. A re-sync (also when the stream jumped
past what the player was to get next, or it fell out of the window) starts again at
:func:`start_position` of the new playlist; the first item after it has ``after_resync`` set,
so a player knows the media is not continuous there.

Assumption (documented in docs/api.md): a segment's bytes are its parts' bytes in order, as
CMAF packagers publish them; that is what lets the rest of a segment replace its missing parts.
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta
from typing import Literal

import attrs

from p2ploader.core.ll_switch import PlayPoint, resume_position
from p2ploader.core.low_latency import PreloadHint, ServerControl
from p2ploader.core.segments import ByteRange, InitSection, Part, Segment, SegmentId
from p2ploader.errors import (
    HoldBackError,
    LowLatencyPlaylistError,
    PartVanishedError,
    PlaylistWentBackwardsError,
    UsageError,
)
from p2ploader.hls import MediaPlaylist, blocking_reload_url
from p2ploader.hls_low_latency import low_latency_start, minimum_hold_back, next_blocking_request

__all__ = [
    "FetchRequest",
    "LowLatencyFollower",
    "LowLatencyItem",
    "PlaylistRequest",
    "StartPosition",
    "check_hold_back",
    "item_span",
    "live_edge_time",
    "play_position",
    "resync_seek",
    "start_position",
]

FetchKey = tuple[str, int, int | None]
"""A resource as the follower fetches it: its URL, the offset of its first byte and its length
(bytes; None: to the end of the resource)."""


@attrs.frozen(kw_only=True)
class StartPosition:
    """Where following starts: the first item to hand the player is part ``part_index`` of segment
    ``sequence`` (0: the segment's start, fetched whole once the segment is complete).
    ``start`` is its media time in seconds (on the playlist's timeline). ``play_from`` (seconds
    on the timeline, ``start`` or later) is where the player should begin showing it: the
    hold-back from the live edge when the playlist was read; a decoder starts at ``start`` (a key
    frame) and skips what comes before ``play_from``, as after a seek. ``edge`` (seconds on the
    timeline) is the live edge of the playlist the start was chosen on."""

    sequence: int
    part_index: int
    start: float
    play_from: float
    edge: float


@attrs.frozen(kw_only=True)
class PlaylistRequest:
    """The next playlist load: GET ``url`` no earlier than ``not_before`` (seconds, the caller's
    clock). ``blocking``: the server holds the response until what it asks for exists."""

    url: str
    not_before: float
    blocking: bool
    msn: int | None = None
    part: int | None = None
    skip: bool = False


@attrs.frozen(kw_only=True)
class FetchRequest:
    """One GET to make: ``url`` from byte ``offset``, ``length`` bytes (None: to the end of the
    resource). A ``"hint"`` fetch is a preload hint's, which the server holds until the part is
    published. Report its outcome with :meth:`LowLatencyFollower.fetch_completed` or
    :meth:`LowLatencyFollower.fetch_failed`, by :attr:`key`."""

    url: str
    offset: int
    length: int | None
    kind: Literal["part", "segment", "hint"] = "part"
    """What the bytes are: a part, a whole segment (or its rest), a preload hint's part."""
    ranged: bool = False
    """True when the resource is a byte range of ``url`` (send ``Range`` even from byte 0)."""

    @classmethod
    def of_resource(
        cls,
        url: str,
        byte_range: ByteRange | None,
        *,
        kind: Literal["part", "segment", "hint"] = "part",
        skip: int = 0,
    ) -> FetchRequest:
        """The GET of a resource: all of ``url``, or its ``byte_range``, from its ``skip``-th
        byte (bytes already held)."""
        if byte_range is None:
            return cls(url=url, offset=skip, length=None, kind=kind)
        return cls(
            url=url,
            offset=byte_range.offset + skip,
            length=byte_range.length - skip,
            kind=kind,
            ranged=True,
        )

    @property
    def hint(self) -> bool:
        """True for a preload-hint fetch."""
        return self.kind == "hint"

    @property
    def key(self) -> FetchKey:
        return (self.url, self.offset, self.length)

    @property
    def start_key(self) -> tuple[str, int]:
        """URL and first byte: what a preload hint and the part it announces have in common."""
        return (self.url, self.offset)

    def range_header(self) -> str | None:
        """The ``Range`` header value, or None for a whole resource."""
        if self.length is not None:
            return f"bytes={self.offset}-{self.offset + self.length - 1}"
        if self.offset or self.ranged:
            return f"bytes={self.offset}-"
        return None


@attrs.frozen(kw_only=True)
class LowLatencyItem:
    """What the player gets next: a part, a whole segment, or the rest of a segment.

    ``kind`` is ``"part"`` (``part`` set), ``"segment"`` (a whole segment, ``segment`` set) or
    ``"segment-rest"`` (``segment`` set; ``data`` is the segment's bytes after the first
    ``skipped_bytes``, which were handed over as its first parts). ``start`` and ``duration`` are
    media seconds (``start`` on the playlist's timeline); ``program_date_time`` is the wall-clock
    date of the first sample when the playlist dates its segments. ``gap``: the media is absent
    (``GAP=YES`` part, ``EXT-X-GAP`` segment); ``data`` is empty, nothing was fetched and a player
    skips ``duration``. ``after_resync``: the media before this item is not continuous with it.
    ``after_switch``: the first item of a rendition switched to
    (:meth:`~p2ploader.aio.low_latency.LowLatencyStream.select_rendition`): the media continues
    (by media sequence number and part index this item begins where the previous one ended;
    its ``start`` may differ from the previous item's end by the few milliseconds two renditions'
    written durations drift apart), but from another rendition, whose ``init_section`` a decoder
    needs first.
    """

    kind: Literal["part", "segment", "segment-rest"]
    segment_id: SegmentId
    data: bytes
    start: float
    duration: float
    part: Part | None = None
    segment: Segment | None = None
    skipped_bytes: int = 0
    program_date_time: datetime | None = None
    init_section: InitSection | None = None
    gap: bool = False
    after_resync: bool = False
    after_switch: bool = False

    @property
    def end(self) -> float:
        """Media time (seconds) at which this item ends."""
        return self.start + self.duration


# --------------------------------------------------------------------------------------------------
# The live edge and the start point


def _segments_by_sequence(playlist: MediaPlaylist) -> dict[int, Segment]:
    # By id, not by position: a delta update may list fewer segments than its media sequence says.
    return {segment.id.sequence: segment for segment in playlist.segments}


def _last_sequence(playlist: MediaPlaylist) -> int:
    if playlist.segments:
        return playlist.segments[-1].id.sequence
    return playlist.media_sequence - 1


def _pending_start(playlist: MediaPlaylist) -> float:
    """Media time (seconds) where the segment in progress starts: the end of the last segment."""
    return playlist.segments[-1].end if playlist.segments else 0.0


def live_edge_time(playlist: MediaPlaylist) -> float:
    """Media time (seconds, on the playlist's timeline) of the end of the last part or segment
    published: the live edge."""
    return _pending_start(playlist) + math.fsum(p.duration for p in playlist.pending_parts)


_TIME_TOLERANCE = 1e-3  # seconds: timeline positions closer than this are the same


def check_hold_back(hold_back: float, playlist: MediaPlaylist | None = None) -> None:
    """Refuse an application's hold-back (seconds) that is not a finite number > 0, or, given the
    ``playlist`` it is for, is below :func:`~p2ploader.hls_low_latency.minimum_hold_back` (twice
    PART-TARGET with parts, three target durations without): raises
    :class:`~p2ploader.errors.HoldBackError` naming the value. At 0 the player would load the last
    piece and show none of it, and the parts swarm would have no time to bring a part."""
    if not (math.isfinite(hold_back) and hold_back > 0):
        raise HoldBackError(hold_back, 0.0, "it must be a finite number of seconds > 0")
    if playlist is None:
        return
    minimum = minimum_hold_back(playlist)
    # The server's own hold-back is played by default: asking for it explicitly is allowed too,
    # even where it is under the RFC's minimum for servers (p2ploader's rule, not the RFC's).
    control = playlist.server_control
    published = None
    if control is not None:
        published = control.part_hold_back if playlist.part_target is not None else control.hold_back
    rfc = (
        f"twice PART-TARGET {playlist.part_target:g} s"
        if playlist.part_target is not None
        else f"three target durations of {playlist.target_duration:g} s"
    )
    why = f"RFC 8216bis lets servers publish no less than {minimum:g} s for this playlist ({rfc})"
    if published is not None and 0 < published < minimum:
        minimum = published
        why = f"the playlist's own hold-back is {published:g} s, and less is not followed"
    # A microsecond of slack: parts written as decimals add up to the minimum with float rounding.
    if hold_back < minimum - 1e-6:
        raise HoldBackError(hold_back, minimum, why)


def start_position(playlist: MediaPlaylist, *, hold_back: float | None = None) -> StartPosition:
    """Where to start following ``playlist``: :func:`p2ploader.hls_low_latency.low_latency_start`
    (loading from the last independent part, or segment, at least PART-HOLD-BACK from the live
    edge; playing from PART-HOLD-BACK from it), with ``hold_back`` (seconds) in place of the
    playlist's PART-HOLD-BACK (HOLD-BACK without parts) when given. Raises
    :class:`~p2ploader.errors.HoldBackError` for a ``hold_back`` :func:`check_hold_back` refuses,
    :class:`~p2ploader.errors.UsageError` for a playlist with nothing to play."""
    if hold_back is not None:
        check_hold_back(hold_back, playlist)
        control = playlist.server_control or ServerControl()
        if playlist.part_target is not None:
            control = attrs.evolve(control, part_hold_back=hold_back)
        else:
            control = attrs.evolve(control, hold_back=hold_back)
        playlist = attrs.evolve(playlist, server_control=control)
    start = low_latency_start(playlist)
    return StartPosition(
        sequence=start.sequence,
        part_index=start.part or 0,
        start=start.position,
        play_from=start.play_from,
        edge=start.position + start.distance,
    )


def play_position(
    first: LowLatencyItem, start: StartPosition | None, *, live_edge: float | None = None
) -> float:
    """Where a player begins showing media (seconds on the timeline), given the ``first`` item
    it was handed and the follower's :attr:`~LowLatencyFollower.start`: the start's
    ``play_from`` when ``first`` is the start's (loaded from its key frame), else ``first``'s
    start. ``live_edge`` (seconds on the timeline, :func:`live_edge_time` of the latest playlist):
    when the edge moved on since the start was chosen (the first item took a while: a busy event
    loop, a slow origin), ``play_from`` moves on as much, so that playback begins as far behind
    live as the start rule says, not that far plus the wait. (hls.js 1.7.4 takes its live sync
    position when it picks its first fragment, the playlist's edge plus its age, and seeks there
    once that fragment is buffered: the fragment's load time is not added. Counting the edge at
    the first item is one step further, p2ploader's own.) For a re-synced item (``after_resync``),
    :func:`resync_seek` says whether a player seeks there."""
    if start is None or first.segment_id.sequence != start.sequence:
        return first.start
    position = start.play_from
    if live_edge is not None and live_edge > start.edge:
        position += live_edge - start.edge
    return max(first.start, position)


def resync_seek(
    item: LowLatencyItem,
    start: StartPosition | None,
    *,
    live_edge: float | None,
    buffered: tuple[float, float],
) -> float | None:
    """Where a player seeks on a re-synced ``item`` (``after_resync``), or ``None`` to play on.
    ``buffered``: ``(start, end)`` seconds of its contiguous buffered run. It seeks to
    :func:`play_position` when that lies past what it has (it fell behind: a long stall), or when
    ``item`` ends before its run (the timeline restarted: a restarted packager). A re-sync onto
    the same timeline within the run (a stale copy of the playlist served a few times) changes
    nothing for the player: what the follower hands again is already buffered."""
    target = play_position(item, start, live_edge=live_edge)
    run_start, run_end = buffered
    if target > run_end + _TIME_TOLERANCE or item.start + item.duration < run_start - _TIME_TOLERANCE:
        return target
    return None


# --------------------------------------------------------------------------------------------------
# The follower


@attrs.define
class _Planned:
    """One item to hand over, in order, and the fetch it waits for (None: a gap, nothing to fetch)."""

    kind: Literal["part", "segment", "segment-rest"]
    segment_id: SegmentId
    start: float
    duration: float
    fetch: FetchRequest | None
    part: Part | None = None
    segment: Segment | None = None
    skipped_bytes: int = 0
    program_date_time: datetime | None = None
    init_section: InitSection | None = None

    @property
    def part_count(self) -> int:
        return 1 if self.kind == "part" else 0


@attrs.define
class _Cursor:
    """What the player gets next: part ``part_index`` of segment ``sequence``; ``handed_bytes`` of
    that segment (``handed_seconds`` of its media) were handed over already, as its first parts."""

    sequence: int
    part_index: int = 0
    handed_bytes: int = 0
    handed_seconds: float = 0.0


_MAX_UNCLAIMED_HINTS = 4
"""Preload-hint responses kept for parts not listed yet (a server hints one part at a time)."""


def _part_fetch(part: Part) -> FetchRequest:
    return FetchRequest.of_resource(part.url, part.byte_range)


def _hint_fetch(hint: PreloadHint) -> FetchRequest:
    return FetchRequest(
        url=hint.url,
        offset=hint.byte_range_start,
        length=hint.byte_range_length,
        kind="hint",
        # Always a Range, even from byte 0: a hint for a part that is a byte range of a segment
        # still being written may name its first byte only by default (BYTERANGE-START omitted),
        # and a GET without Range would ask for the whole, unfinished segment.
        ranged=True,
    )


def _segment_fetch(segment: Segment, skip: int) -> FetchRequest:
    return FetchRequest.of_resource(segment.url, segment.byte_range, kind="segment", skip=skip)


def _date_after(date: datetime | None, seconds: float) -> datetime | None:
    return None if date is None else date + timedelta(seconds=seconds)


class LowLatencyFollower:
    """Follows one live (LL-)HLS media playlist: start, reloads, fetches and hand-over (sans-IO).

    ``url`` is the media playlist's URL (blocking reloads add their directives to it).
    ``hold_back`` overrides the playlist's PART-HOLD-BACK (seconds). ``delta_updates``: ask for
    delta playlists (``_HLS_skip=YES``) when the server allows them; only when the caller merges
    them (:class:`~p2ploader.hls.LivePlaylistTracker` does). ``resync_after``: consecutive rejected
    refreshes after which the follower takes the latest one as the truth and re-syncs (>= 1).

    A rendition switch (:mod:`p2ploader.core.ll_switch`): ``first_url`` is the URL of the first
    playlist load (a blocking reload targeted with a rendition report; default ``url``; see
    :meth:`first_load_refused`), and ``resume_from`` (a :class:`~p2ploader.core.ll_switch.PlayPoint`
    of the rendition switched from: the end of what the player has, by media sequence number and
    part index) makes following start at :func:`~p2ploader.core.ll_switch.resume_position`, the
    first independent part or segment start at or after it, instead of the hold-back from the live
    edge: nothing is planned until a playlist publishes one (:attr:`start` stays None until then).
    :meth:`resume_after` moves the point on while the old rendition plays.
    """

    def __init__(
        self,
        url: str,
        *,
        hold_back: float | None = None,
        delta_updates: bool = True,
        resync_after: int = 3,
        first_url: str | None = None,
        resume_from: PlayPoint | None = None,
    ) -> None:
        if hold_back is not None:
            check_hold_back(hold_back)  # against the playlist's part target once it is read
        if resync_after < 1:
            raise UsageError(f"resync_after must be >= 1, got {resync_after}")
        self.url = url
        self._first_url = first_url if first_url is not None else url
        self.resume_from = resume_from
        """The end of what the player has from the rendition switched from (a switch), or None:
        start at the hold-back. Moved on with :meth:`resume_after`."""
        self._handed_any = False
        self._hold_back = hold_back
        self._delta_updates = delta_updates
        self._resync_after = resync_after
        self._playlist: MediaPlaylist | None = None
        self._received_at = 0.0
        self._next_request_at = 0.0
        self._cursor: _Cursor | None = None
        self._plan: list[_Planned] = []
        self._requested: dict[FetchKey, FetchRequest] = {}  # handed out, not yet reported
        self._to_issue: list[FetchRequest] = []
        self._done: dict[FetchKey, bytes] = {}  # bytes of planned items not yet handed over
        self._hints: dict[tuple[str, int], FetchRequest] = {}  # preload-hint fetches under way
        self._awaiting_hint: dict[tuple[str, int], FetchRequest] = {}  # parts a hint fetch brings
        self._hint_results: dict[tuple[str, int], bytes] = {}  # hinted bytes of parts not listed yet
        self._rejections = 0
        self._full_reload_needed = False
        self._resync_pending = False
        self.resyncs = 0
        """How many times following re-synced (a jump, a fall out of the window, rejections)."""
        self.start: StartPosition | None = None
        """Where following started (after the first playlist); the latest re-sync's after one."""

    # ------------------------------------------------------------------ state

    @property
    def playlist(self) -> MediaPlaylist | None:
        """The last playlist accepted (None before the first)."""
        return self._playlist

    @property
    def position(self) -> tuple[int, int] | None:
        """Where the next item handed over begins: (media sequence number, part index; 0: the
        segment's start or the whole segment). Everything before it was handed over. After a
        segment's last part it is that segment and the part after its last one. None before the
        start is known."""
        cursor = self._cursor
        return None if cursor is None else (cursor.sequence, cursor.part_index)

    @property
    def finished(self) -> bool:
        """True once the playlist ended (EXT-X-ENDLIST) and every item was handed over."""
        return self._playlist is not None and self._playlist.end_list and not self._plan

    # ------------------------------------------------------------------ playlists

    def next_playlist_request(self) -> PlaylistRequest | None:
        """The next playlist load, or None once the playlist ended. Before the first playlist: a
        plain GET of :attr:`url`, at once."""
        playlist = self._playlist
        if playlist is None:
            return PlaylistRequest(url=self._first_url, not_before=0.0, blocking=self._first_url != self.url)
        if playlist.end_list:
            return None
        control = playlist.server_control or ServerControl()
        if not control.can_block_reload or self._rejections:
            return PlaylistRequest(url=self.url, not_before=self._next_request_at, blocking=False)
        msn, part = next_blocking_request(playlist)
        skip = (
            self._delta_updates
            and not self._full_reload_needed
            and control.can_skip_until is not None
            # RFC 8216bis §6.2.5.1: only with a copy no older than half the skip boundary.
            and self._next_request_at - self._received_at < control.can_skip_until / 2
        )
        url = blocking_reload_url(self.url, msn=msn, part=part, skip="YES" if skip else None)
        return PlaylistRequest(
            url=url, not_before=self._next_request_at, blocking=True, msn=msn, part=part, skip=skip
        )

    def first_load_refused(self) -> bool:
        """The targeted first load (``first_url``) was refused (an HTTP error status: a server
        answers 400 to an ``_HLS_msn`` more than two segments past its edge, RFC 8216bis §6.2.5.2,
        which a rendition packaged or cached apart may be): the next request is a plain GET of
        :attr:`url`. False, nothing changed, when the first load was plain already or a playlist
        was received: the failure stands."""
        if self._playlist is not None or self._first_url == self.url:
            return False
        self._first_url = self.url
        return True

    def resume_after(self, point: PlayPoint) -> None:
        """A switch under way: the player now has the old rendition up to ``point``. When the
        start chosen lies before it (the old item just handed straddled the new rendition's first
        independent point, a whole segment say), following starts again at the first independent
        part or segment start at or after ``point`` (the latest playlist's, or the next one's);
        fetches already made for parts still planned are kept. Raises
        :class:`~p2ploader.errors.UsageError` once an item of this follower was handed over."""
        if self._handed_any:
            raise UsageError("the switch took over already: its start cannot move")
        self.resume_from = point
        playlist, start = self._playlist, self.start
        if playlist is None or start is None:
            return  # chosen on the next playlist, from this point
        found = resume_position(playlist, point)
        if found is not None and found[:2] == (start.sequence, start.part_index):
            return  # still at or after the point
        self.start = _resume_start(playlist, point)
        if self.start is None:
            self._cursor = None  # not published yet: the next playlist says
            self._plan = []
            return
        self._cursor = _Cursor(sequence=self.start.sequence, part_index=self.start.part_index)
        self._replan()

    def playlist_failed(self, *, now: float, delta_refused: bool = False) -> None:
        """The playlist load failed (network, HTTP status, unparseable): retry it later, timed.
        ``delta_refused``: it was a delta update that could not be merged
        (:class:`~p2ploader.errors.DeltaPlaylistError`), so the next load asks for the full
        playlist (no ``_HLS_skip``), at once."""
        if delta_refused:
            self._full_reload_needed = True
            self._next_request_at = now
            return
        self._next_request_at = now + self._pace(changed=False)

    def playlist_received(
        self, playlist: MediaPlaylist, *, now: float, requested_at: float | None = None
    ) -> None:
        """Take a freshly loaded playlist. ``requested_at`` (seconds, default ``now``) is when its
        load began: timed reloads are paced from there (RFC 8216 §6.3.4), so a slow answer does not
        slow the reloads down. A delta update may come as parsed or merged
        (:class:`~p2ploader.hls.LivePlaylistTracker`): the segments it skips are older than
        anything still to hand over, and segments are found by their media sequence number.

        Raises :class:`PlaylistWentBackwardsError` or :class:`PartVanishedError` for an
        inconsistent refresh (the follower is left as it was, the next request is timed), until
        ``resync_after`` of them in a row: that one is taken and following re-syncs. Raises
        :class:`~p2ploader.errors.HoldBackError` when the first playlist shows the ``hold_back``
        given is below what RFC 8216bis allows for it (:func:`check_hold_back`); nothing is taken.
        """
        previous = self._playlist
        if self._cursor is None and self._hold_back is not None:
            if self.resume_from is None:
                check_hold_back(self._hold_back, playlist)  # before taking anything from it
            else:
                # A switch does not start at the hold-back (it resumes where the player is); the
                # application's value, checked on the first rendition, is raised to this one's
                # minimum (longer parts) for later re-syncs, as a re-sync does.
                self._hold_back = max(self._hold_back, minimum_hold_back(playlist))
        if previous is not None:
            try:
                self._check_consistent(previous, playlist)
            except LowLatencyPlaylistError:
                self._rejections += 1
                self._next_request_at = now + self._pace(changed=False)
                if self._rejections < self._resync_after:
                    raise
                self.resync(playlist, now=now)
                return
        self._rejections = 0
        changed = previous is None or not _same_edge(previous, playlist)
        self._accept(playlist, now=now, changed=changed, requested_at=requested_at)
        if self._cursor is None:
            if self.resume_from is not None:
                self.start = _resume_start(playlist, self.resume_from)
                if self.start is None:
                    return  # not published yet: wait for the next update
            else:
                self.start = start_position(playlist, hold_back=self._hold_back)
            self._cursor = _Cursor(sequence=self.start.sequence, part_index=self.start.part_index)
        self._replan()

    def _accept(
        self, playlist: MediaPlaylist, *, now: float, changed: bool, requested_at: float | None = None
    ) -> None:
        self._playlist = playlist
        self._full_reload_needed = False
        self._received_at = now
        control = playlist.server_control or ServerControl()
        # A blocking reload goes out as soon as the previous one returned (RFC 8216bis §6.2.5.2).
        if control.can_block_reload:
            self._next_request_at = now
        else:
            began = now if requested_at is None else min(requested_at, now)
            self._next_request_at = began + self._pace(changed=changed)

    def _pace(self, *, changed: bool) -> float:
        """Seconds between timed reloads (RFC 8216bis §6.3.4): the part target with parts, else the
        target duration; half of it after a reload that found nothing new."""
        playlist = self._playlist
        if playlist is None:
            return 1.0
        step = playlist.part_target if playlist.part_target is not None else float(playlist.target_duration)
        return step if changed else step / 2

    def _check_consistent(self, old: MediaPlaylist, new: MediaPlaylist) -> None:
        if new.media_sequence < old.media_sequence:
            raise PlaylistWentBackwardsError(
                new.url, f"media sequence {new.media_sequence} < {old.media_sequence} seen before"
            )
        old_last, new_last = _last_sequence(old), _last_sequence(new)
        if new_last < old_last:
            raise PlaylistWentBackwardsError(
                new.url, f"the playlist ends at segment {new_last}, segment {old_last} was seen before"
            )
        if new_last == old_last and len(new.pending_parts) < len(old.pending_parts):
            raise PlaylistWentBackwardsError(
                new.url,
                f"segment {new_last + 1} has {len(new.pending_parts)} parts, "
                f"{len(old.pending_parts)} were seen before",
            )
        new_segments = _segments_by_sequence(new)
        old_segments = _segments_by_sequence(old)
        for sequence, known in old_segments.items():
            fresh = new_segments.get(sequence)
            if fresh is not None and fresh.parts and known.parts:
                _check_parts(new.url, known.parts, fresh.parts)
        if old.pending_parts:
            sequence = old.pending_parts[0].id.segment.sequence
            completed = new_segments.get(sequence)
            if completed is not None and completed.parts:
                _check_parts(new.url, old.pending_parts, completed.parts)
            elif new.pending_parts and new.pending_parts[0].id.segment.sequence == sequence:
                _check_parts(new.url, old.pending_parts, new.pending_parts)

    def resync(self, playlist: MediaPlaylist, *, now: float) -> None:
        """Take ``playlist`` as the new truth whatever came before (the caller's own checks
        rejected refreshes in a row: a restarted packager) and start again from its
        :func:`start_position`; the next item has ``after_resync`` set."""
        start = self._resync_start(playlist)  # before anything changes: it may raise
        self._rejections = 0
        self._accept(playlist, now=now, changed=True)
        self._resync(playlist, start=start)

    # ------------------------------------------------------------------ planning

    def _resync_start(self, playlist: MediaPlaylist) -> StartPosition:
        """Where a re-sync onto ``playlist`` starts. The application's hold-back was checked
        against the first playlist; a restarted packager may publish longer parts, under which it
        would now be refused: mid-stream it is raised to the new playlist's minimum instead of
        ending the stream."""
        hold_back = self._hold_back
        if hold_back is not None:
            hold_back = max(hold_back, minimum_hold_back(playlist))
        return start_position(playlist, hold_back=hold_back)

    def _resync(self, playlist: MediaPlaylist, *, start: StartPosition | None = None) -> None:
        """Start again from ``start`` (default :meth:`_resync_start` of ``playlist``): drop what
        was planned."""
        start = start if start is not None else self._resync_start(playlist)
        self.resyncs += 1
        self._resync_pending = True
        self.start = start
        self._cursor = _Cursor(sequence=self.start.sequence, part_index=self.start.part_index)
        self._plan = []
        self._requested.clear()
        self._done.clear()
        self._awaiting_hint.clear()
        self._replan()

    def _replan(self) -> None:
        """Rebuild what to hand over from the cursor on, reusing every fetch already made."""
        playlist, cursor = self._playlist, self._cursor
        assert playlist is not None and cursor is not None
        segments = _segments_by_sequence(playlist)
        first_listed = min(segments, default=_last_sequence(playlist) + 1)
        pending_sequence = _last_sequence(playlist) + 1
        if cursor.sequence < first_listed or cursor.sequence > pending_sequence:
            # Fell out of the window, or the stream jumped ahead of us: start again.
            self._resync(playlist)
            return
        plan: list[_Planned] = []
        sequence, index = cursor.sequence, cursor.part_index
        handed, handed_seconds = cursor.handed_bytes, cursor.handed_seconds
        while sequence <= pending_sequence:
            segment = segments.get(sequence)
            if segment is not None:
                plan.extend(self._plan_segment(segment, index, handed, handed_seconds))
            else:
                plan.extend(self._plan_pending(playlist, index))
            sequence, index, handed, handed_seconds = sequence + 1, 0, 0, 0.0
        self._plan = plan
        planned_keys = {planned.fetch.key for planned in plan if planned.fetch is not None}
        # Bytes of items no longer planned (a segment now taken as parts, say) are not kept.
        self._done = {key: data for key, data in self._done.items() if key in planned_keys}
        for planned in plan:
            if planned.fetch is not None:
                self._want(planned.fetch)
        self._want_hints(playlist)

    def _plan_segment(
        self, segment: Segment, index: int, handed: int, handed_seconds: float
    ) -> list[_Planned]:
        """A complete segment from part ``index`` on (``handed`` bytes, ``handed_seconds`` of it
        handed over already): its listed parts when following is inside it or some of them are
        fetched already, else the segment whole, or its rest when its parts are listed no more."""
        if index and index >= len(segment.parts) and segment.parts:
            return []  # every part was handed over: the segment is done
        parts = segment.parts[index:]
        if parts and (index or any(self._known(_part_fetch(p)) for p in parts if not p.gap)):
            return self._plan_parts(parts, segment.start, segment, segment.init_section)
        date = _date_after(segment.program_date_time, 0.0)
        if index:
            skipped_time = handed_seconds  # its parts may be listed no more
            return [
                _Planned(
                    kind="segment-rest",
                    segment_id=segment.id,
                    start=segment.start + skipped_time,
                    duration=segment.duration - skipped_time,
                    fetch=None if segment.gap else _segment_fetch(segment, handed),
                    segment=segment,
                    skipped_bytes=handed,
                    program_date_time=_date_after(segment.program_date_time, skipped_time),
                    init_section=segment.init_section,
                )
            ]
        return [
            _Planned(
                kind="segment",
                segment_id=segment.id,
                start=segment.start,
                duration=segment.duration,
                fetch=None if segment.gap else _segment_fetch(segment, 0),
                segment=segment,
                program_date_time=date,
                init_section=segment.init_section,
            )
        ]

    def _plan_pending(self, playlist: MediaPlaylist, index: int) -> list[_Planned]:
        """The parts of the segment in progress from part ``index`` on. Its EXT-X-MAP is the last
        complete segment's (a map applies until the next one)."""
        last = playlist.segments[-1] if playlist.segments else None
        init = None if last is None else last.init_section
        parts = playlist.pending_parts
        start = _pending_start(playlist)
        date = None if last is None else _date_after(last.program_date_time, last.duration)
        return self._plan_parts(parts[index:], start, None, init, whole=parts, date=date)

    def _plan_parts(
        self,
        parts: tuple[Part, ...],
        segment_start: float,
        segment: Segment | None,
        init: InitSection | None,
        *,
        whole: tuple[Part, ...] | None = None,
        date: datetime | None = None,
    ) -> list[_Planned]:
        """``parts`` (the tail of ``whole``, the segment's parts) as planned items."""
        all_parts = whole if whole is not None else (segment.parts if segment is not None else parts)
        if date is None and segment is not None:
            date = segment.program_date_time
        planned = []
        for part in parts:
            offset = math.fsum(p.duration for p in all_parts[: part.id.index])
            planned.append(
                _Planned(
                    kind="part",
                    segment_id=part.id.segment,
                    start=segment_start + offset,
                    duration=part.duration,
                    fetch=None if part.gap else _part_fetch(part),
                    part=part,
                    segment=segment,
                    program_date_time=_date_after(date, offset),
                    init_section=init,
                )
            )
        return planned

    def _known(self, fetch: FetchRequest) -> bool:
        """True when ``fetch``'s bytes are here or on their way (as it, or as a preload hint)."""
        return (
            fetch.key in self._requested
            or fetch.key in self._done
            or fetch.start_key in self._hints
            or fetch.start_key in self._hint_results
        )

    def _want(self, fetch: FetchRequest) -> None:
        """Make sure ``fetch``'s bytes come: they are here, on their way, or asked for now."""
        key = fetch.key
        if key in self._requested or key in self._done:
            return
        hinted = self._hint_results.pop(fetch.start_key, None)
        if hinted is not None and self._store(fetch, hinted):
            return
        if fetch.start_key in self._hints:
            self._awaiting_hint[fetch.start_key] = fetch  # the hint's response is this part
            return
        self._requested[key] = fetch
        self._to_issue.append(fetch)

    def _store(self, fetch: FetchRequest, data: bytes) -> bool:
        """Keep ``data`` as ``fetch``'s bytes; False when it is shorter than the range asked."""
        if fetch.length is not None:
            if len(data) < fetch.length:
                return False
            data = data[: fetch.length]
        self._done[fetch.key] = data
        return True

    def _want_hints(self, playlist: MediaPlaylist) -> None:
        for hint in playlist.preload_hints:
            if hint.type != "PART":
                continue  # EXT-X-MAP hints: init sections are loaded by whoever plays the item
            fetch = _hint_fetch(hint)
            if self._known(fetch) or any(
                p.fetch is not None and p.fetch.start_key == fetch.start_key for p in self._plan
            ):
                continue
            self._hints[fetch.start_key] = fetch
            self._to_issue.append(fetch)

    # ------------------------------------------------------------------ fetches

    def take_fetches(self) -> list[FetchRequest]:
        """The fetches to start now, in play order, then the preload hints (each handed out once)."""
        fetches, self._to_issue = self._to_issue, []
        return fetches

    def fetch_completed(self, fetch: FetchRequest, data: bytes) -> None:
        """``fetch`` (one :meth:`take_fetches` handed out) returned ``data``, its whole body."""
        if fetch.hint:
            if self._hints.get(fetch.start_key) is not fetch:
                return  # dropped by a re-sync
            del self._hints[fetch.start_key]
            part = self._awaiting_hint.pop(fetch.start_key, None)
            if part is None:
                # The hinted part is not listed yet: keep its bytes for it (a few at most).
                self._hint_results[fetch.start_key] = data
                while len(self._hint_results) > _MAX_UNCLAIMED_HINTS:
                    del self._hint_results[next(iter(self._hint_results))]
            elif not self._store(part, data):
                self._want(part)  # shorter than the part: fetch the part itself
            return
        if self._requested.pop(fetch.key, None) is None:
            return  # dropped by a re-sync, or reported twice
        if not self._store(fetch, data):
            self._want(fetch)  # a short body: ask again

    def fetch_failed(self, fetch: FetchRequest) -> None:
        """``fetch`` failed. A preload hint is forgotten (its part is fetched once listed); a
        planned part or segment is handed out again by the next :meth:`take_fetches`."""
        if fetch.hint:
            if self._hints.get(fetch.start_key) is fetch:
                del self._hints[fetch.start_key]
                part = self._awaiting_hint.pop(fetch.start_key, None)
                if part is not None:
                    self._want(part)
            return
        if self._requested.pop(fetch.key, None) is not None:
            self._want(fetch)

    # ------------------------------------------------------------------ hand-over

    def next_ready(self) -> LowLatencyItem | None:
        """The next item for the player, in order, once its bytes are here; None until then."""
        if not self._plan:
            return None
        head = self._plan[0]
        if head.fetch is not None:
            data = self._done.pop(head.fetch.key, None)
            if data is None:
                return None
        else:
            data = b""
        self._plan.pop(0)
        self._handed_any = True
        cursor = self._cursor
        assert cursor is not None
        if head.kind == "part":
            assert head.part is not None
            if cursor.sequence != head.segment_id.sequence:
                cursor.handed_bytes, cursor.handed_seconds = 0, 0.0
            cursor.sequence = head.segment_id.sequence
            cursor.part_index = head.part.id.index + 1
            cursor.handed_bytes += len(data) if head.part.byte_range is None else head.part.byte_range.length
            cursor.handed_seconds += head.duration
        else:
            cursor.sequence, cursor.part_index = head.segment_id.sequence + 1, 0
            cursor.handed_bytes, cursor.handed_seconds = 0, 0.0
        after_resync, self._resync_pending = self._resync_pending, False
        return LowLatencyItem(
            kind=head.kind,
            segment_id=head.segment_id,
            data=data,
            start=head.start,
            duration=head.duration,
            part=head.part,
            segment=head.segment,
            skipped_bytes=head.skipped_bytes,
            program_date_time=head.program_date_time,
            init_section=head.init_section,
            gap=head.fetch is None,
            after_resync=after_resync,
        )

    def outstanding(self) -> tuple[FetchRequest, ...]:
        """Fetches handed out and not yet reported (parts and segments, then preload hints)."""
        return (*self._requested.values(), *self._hints.values())


def item_span(
    item: LowLatencyItem, before: tuple[int, int] | None
) -> tuple[tuple[int, int], tuple[int, int]]:
    """Where ``item`` begins and ends, as (sequence, part index) points of its rendition (see
    :class:`~p2ploader.core.ll_switch.PlayPoint`): a part from its own index to the next; a
    segment from its start to the next segment's; the rest of a segment from ``before`` (the
    follower's :attr:`LowLatencyFollower.position` before the item was taken: the first part not
    handed) to the next segment's start."""
    sequence = item.segment_id.sequence
    if item.kind == "part":
        assert item.part is not None
        return ((sequence, item.part.id.index), (sequence, item.part.id.index + 1))
    first = 0
    if item.kind == "segment-rest":
        # Its first parts were handed as parts; without the follower's word, somewhere after part 0.
        first = before[1] if before is not None and before[0] == sequence else 1
    return ((sequence, first), (sequence + 1, 0))


def _resume_start(playlist: MediaPlaylist, point: PlayPoint) -> StartPosition | None:
    """The start of a rendition switched to where the player has the old one up to ``point``: its
    first independent piece at or after it (:func:`~p2ploader.core.ll_switch.resume_position`),
    played from its start (it continues what the player has, so nothing before it is to skip)."""
    found = resume_position(playlist, point)
    if found is None:
        return None
    sequence, index, start = found
    return StartPosition(
        sequence=sequence, part_index=index, start=start, play_from=start, edge=live_edge_time(playlist)
    )


def _same_edge(a: MediaPlaylist, b: MediaPlaylist) -> bool:
    return _last_sequence(a) == _last_sequence(b) and len(a.pending_parts) == len(b.pending_parts)


def _check_parts(url: str, known: tuple[Part, ...], fresh: tuple[Part, ...]) -> None:
    """``fresh`` must start with ``known`` (same URIs and byte ranges)."""
    if len(fresh) < len(known):
        raise PartVanishedError(
            url, f"segment {known[0].id.segment.sequence} lists {len(fresh)} parts, {len(known)} were seen"
        )
    for was, now in zip(known, fresh, strict=False):
        if (was.url, was.byte_range) != (now.url, now.byte_range):
            raise PartVanishedError(url, f"part {was.id} was {was.url}, now {now.url}")
