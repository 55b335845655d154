"""Following a Low-Latency HLS media playlist (RFC 8216bis): its live edge, the next blocking
reload to ask for, and where to start playing.

Pure functions of a :class:`~p2ploader.hls.MediaPlaylist` as :func:`~p2ploader.hls.parse_media`
reads it (parts on their segments, the in-progress segment's parts in ``pending_parts``) or as
:class:`~p2ploader.hls.LivePlaylistTracker` keeps it. A position is a media sequence number and a
part index (None: the whole segment). Durations and positions are in seconds on the playlist's
timeline (:attr:`~p2ploader.core.segments.Segment.start`).
"""

from __future__ import annotations

import re
from typing import Final, Literal
from urllib.parse import parse_qsl

import attrs

from p2ploader.core.segments import Part
from p2ploader.errors import DirectiveError, UsageError
from p2ploader.hls import MediaPlaylist

__all__ = [
    "MAX_DIRECTIVE_FIELDS",
    "DeliveryDirectives",
    "LowLatencyStart",
    "live_edge",
    "low_latency_start",
    "minimum_hold_back",
    "next_blocking_request",
    "parse_delivery_directives",
]

MAX_DIRECTIVE_FIELDS: Final = 16
"""Query fields a playlist request may carry at most (:func:`parse_delivery_directives`)."""

_DECIMAL: Final = re.compile(r"0|[1-9][0-9]{0,17}", re.ASCII)


@attrs.frozen(kw_only=True)
class LowLatencyStart:
    """Where low-latency playback starts. Loading starts at segment ``sequence``, at its part
    ``part`` (None: at the start of the whole segment), which begins at ``position`` (seconds on
    the playlist's timeline), ``distance`` seconds before the end of the playlist (its last part or
    segment). Playback begins at ``play_from`` (seconds on the timeline, ``position`` or later):
    the hold-back from the end; the media from ``position`` to there is decoded, not shown, as a
    player does after a seek."""

    sequence: int
    part: int | None
    position: float
    distance: float
    play_from: float


def live_edge(playlist: MediaPlaylist) -> tuple[int, int | None]:
    """The last thing ``playlist`` published: (media sequence number, part index), as an
    ``EXT-X-RENDITION-REPORT`` states it (LAST-MSN, LAST-PART). With parts that is the last part,
    pending or of the last segment; without, the last segment and None. Raises
    :class:`~p2ploader.errors.UsageError` for a playlist with neither segments nor parts."""
    if playlist.pending_parts:
        last_part = playlist.pending_parts[-1]
        return (last_part.segment.sequence, last_part.id.index)
    if not playlist.segments:
        raise UsageError("the playlist has published no segment and no part yet")
    last = playlist.segments[-1]
    return (last.id.sequence, last.parts[-1].id.index if last.parts else None)


def next_blocking_request(playlist: MediaPlaylist) -> tuple[int, int | None]:
    """What a blocking reload asks for next (RFC 8216bis §6.2.5.2): the ``_HLS_msn`` and
    ``_HLS_part`` of what follows ``playlist``'s last publication. With parts (``part_target``
    set): the next part of the segment in progress, or part 0 of the next segment when the last
    one is complete. Without: the next segment and None (no ``_HLS_part``). Pass the result to
    :func:`~p2ploader.hls.blocking_reload_url`. Raises :class:`~p2ploader.errors.UsageError` for
    an ended playlist (``EXT-X-ENDLIST``: nothing follows)."""
    if playlist.end_list:
        raise UsageError("the playlist has ended (EXT-X-ENDLIST): there is no next update to block for")
    following = playlist.last_sequence + 1
    if playlist.pending_parts:
        return (following, playlist.pending_parts[-1].id.index + 1)
    return (following, None if playlist.part_target is None else 0)


def low_latency_start(playlist: MediaPlaylist) -> LowLatencyStart:
    """Where to start playing ``playlist`` at low latency (RFC 8216bis §4.4.3.8, §6.3.3).

    Playback begins ``PART-HOLD-BACK`` seconds before the end of the playlist (three
    ``PART-TARGET``\\ s when the server gives no PART-HOLD-BACK, as the RFC recommends): that is
    ``play_from``. Loading begins where a decoder can begin at or before it: the last INDEPENDENT
    part (not a GAP) that starts at least PART-HOLD-BACK before the end; a segment whose parts are
    no longer listed counts as one independent piece. When the playlist marks no part INDEPENDENT
    at all, the segment starts (part 0) are taken as the independent points (players begin a
    segment from its start, and packagers cut segments at key frames). Without parts: the last
    segment (not a gap) that starts at least ``HOLD-BACK`` seconds (default three target
    durations) before the end, and playback from HOLD-BACK before the end. When the playlist is
    too short for that, its first possible start, played from there. A GAP after the load point
    does not move ``play_from`` (see the comment in the code). A ``PART-HOLD-BACK`` (or
    ``HOLD-BACK``) of 0 counts as absent, as in hls.js: at 0 nothing loaded would be shown. Raises
    :class:`~p2ploader.errors.UsageError` for a playlist with nothing published, or only gaps.

    Why not start on an independent part at or after the hold-back point: PART-HOLD-BACK is the
    *minimum* distance from the end at which to begin playing (§4.4.3.8), and with one key frame a
    segment the next independent part may be a whole segment closer to the edge (or not published
    yet). Why not play from the independent part itself: with one key frame a segment, that
    puts the viewer up to a segment further behind than PART-HOLD-BACK. Loading from the key
    frame and showing from the hold-back point is what a player does when it seeks (hls.js 1.7.4
    loads the fragment holding its live sync position, the hold-back from the end, and sets the
    media element's time there once it is buffered: ``seekToStartPos``): the latency is
    PART-HOLD-BACK, at the cost of loading the bytes between the key frame and that point.
    """
    # (sequence, part index or None, start, duration, may start here, is a gap), in play order
    pieces: list[tuple[int, int | None, float, float, bool, bool]] = []
    with_parts = playlist.part_target is not None
    all_parts = [part for segment in playlist.segments for part in segment.parts]
    if with_parts:
        all_parts += playlist.pending_parts
    # No INDEPENDENT=YES anywhere: the packager does not say; every segment start is one.
    unmarked = not any(part.independent for part in all_parts)
    for segment in playlist.segments:
        if segment.parts and with_parts:
            position = segment.start
            for part in segment.parts:
                startable = _startable(part, unmarked=unmarked)
                pieces.append(
                    (segment.id.sequence, part.id.index, position, part.duration, startable, part.gap)
                )
                position += part.duration
        else:
            pieces.append(
                (segment.id.sequence, None, segment.start, segment.duration, not segment.gap, segment.gap)
            )
    if with_parts:
        position = playlist.segments[-1].end if playlist.segments else 0.0
        for part in playlist.pending_parts:
            startable = _startable(part, unmarked=unmarked)
            pieces.append(
                (part.segment.sequence, part.id.index, position, part.duration, startable, part.gap)
            )
            position += part.duration
    startable_pieces = [piece for piece in pieces if piece[4]]
    if not startable_pieces:
        raise UsageError("the playlist has no part or segment to start at yet")
    end = pieces[-1][2] + pieces[-1][3]
    hold_back = _hold_back(playlist)
    # The RFC's "at least": compared with a microsecond of slack so that parts written as
    # decimals that add up to the hold-back exactly are not refused by float rounding.
    chosen = next(
        (piece for piece in reversed(startable_pieces) if end - piece[2] >= hold_back - 1e-6),
        startable_pieces[0],
    )
    sequence, part_index, start, _duration, _ok, _gap = chosen
    # A GAP between the load point and the hold-back point does not move play_from: a player
    # moves through a gap segment as through media, and after a gapped independent part nothing
    # can be shown before the next independent one, which lies past the hold-back point (else it
    # would have been the load point): starting at the gap would only add latency.
    play_from = max(start, end - hold_back)
    return LowLatencyStart(
        sequence=sequence, part=part_index, position=start, distance=end - start, play_from=play_from
    )


def minimum_hold_back(playlist: MediaPlaylist) -> float:
    """The least hold-back (seconds from the end of ``playlist``) RFC 8216bis lets a server
    publish, and so the least an application may ask for instead: ``PART-HOLD-BACK`` is at least
    twice ``PART-TARGET`` with parts (§4.4.3.8), ``HOLD-BACK`` at least three target durations
    without (§4.4.3.8). Closer to the end, a player has too little buffered to ride out the
    publication of the next part or segment."""
    if playlist.part_target is not None:
        return 2 * playlist.part_target
    return 3.0 * playlist.target_duration


def _startable(part: Part, *, unmarked: bool) -> bool:
    """A player may start at a part that begins with a sync sample and has media. ``unmarked``:
    the playlist marks no part INDEPENDENT, so each segment's first part is taken as one."""
    if part.gap:
        return False
    return part.id.index == 0 if unmarked else part.independent


def _hold_back(playlist: MediaPlaylist) -> float:
    """Seconds from the end of the playlist at which playback may start at the earliest."""
    control = playlist.server_control
    # 0 counts as absent (as in hls.js, and parts_hold_back): playing at the very end shows nothing.
    if playlist.part_target is not None:
        if control is not None and control.part_hold_back:
            return control.part_hold_back
        return 3 * playlist.part_target
    if control is not None and control.hold_back:
        return control.hold_back
    return 3.0 * playlist.target_duration


# --------------------------------------------------------------------------------------------------
# Delivery directives: what a server reads from a playlist request


@attrs.frozen(kw_only=True)
class DeliveryDirectives:
    """The delivery directives of a playlist request (RFC 8216bis §6.2.5): ``msn`` and ``part``
    for a blocking reload, ``skip`` for a delta update (``"YES"`` or ``"v2"``)."""

    msn: int | None = None
    part: int | None = None
    skip: Literal["YES", "v2"] | None = None


def parse_delivery_directives(query: str, *, max_chars: int) -> DeliveryDirectives:
    """The delivery directives in a request's raw query string, for a server (the local origin,
    the proxy). Other parameters are ignored (cache busters); so are unknown ``_HLS_`` ones.

    Raises :class:`~p2ploader.errors.DirectiveError` for a query longer than ``max_chars``
    characters or with more than :data:`MAX_DIRECTIVE_FIELDS` fields, a directive given twice or
    with a bad value (a decimal integer of at most 18 digits; ``_HLS_skip``: ``YES`` or ``v2``),
    or ``_HLS_part`` without ``_HLS_msn``."""
    if len(query) > max_chars:
        raise DirectiveError(f"the query string is longer than {max_chars} characters")
    try:
        fields = parse_qsl(query, keep_blank_values=True, max_num_fields=MAX_DIRECTIVE_FIELDS)
    except ValueError as exc:
        raise DirectiveError(f"the query string has more than {MAX_DIRECTIVE_FIELDS} fields") from exc
    found: dict[str, str] = {}
    for name, value in fields:
        if name in ("_HLS_msn", "_HLS_part", "_HLS_skip"):
            if name in found:
                raise DirectiveError(f"{name} is given twice")
            found[name] = value
    msn = _decimal(found, "_HLS_msn")
    part = _decimal(found, "_HLS_part")
    skip = found.get("_HLS_skip")
    if skip is not None and skip not in ("YES", "v2"):
        raise DirectiveError(f"_HLS_skip must be YES or v2, got {skip[:20]!r}")
    if part is not None and msn is None:
        raise DirectiveError("_HLS_part needs _HLS_msn (RFC 8216bis §6.2.5.2)")
    return DeliveryDirectives(msn=msn, part=part, skip="YES" if skip == "YES" else "v2" if skip else None)


def _decimal(found: dict[str, str], name: str) -> int | None:
    value = found.get(name)
    if value is None:
        return None
    if _DECIMAL.fullmatch(value) is None:
        raise DirectiveError(f"{name} must be a decimal integer (at most 18 digits), got {value[:20]!r}")
    return int(value)
