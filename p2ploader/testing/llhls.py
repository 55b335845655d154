"""Low-Latency HLS for the local origin: the pure part (no sockets, no threads, no files).

:class:`~p2ploader.testing.origin.OriginServer` serves, with ``low_latency=LowLatencySettings()``,
every fMP4 VOD media playlist under its root as a live LL-HLS stream under ``/llhls/``
(RFC 8216bis). This module decides everything that does not touch HTTP:

* **Parts from fragments.** :func:`parse_init` reads the tracks of an fMP4 init section and
  :func:`fragments_of` walks the top-level boxes of a segment file: each ``moof`` + ``mdat`` pair
  (with the ``styp``/``sidx``/``prft``/``emsg`` boxes in front of it) is one fragment, and each
  fragment is published as one part (or, with ``part_duration``, a run of them). A fragment's
  duration is its video track fragment's sample durations (``trun``/``tfhd``/``trex``; the longest
  track fragment's in a stream without video); a part is ``INDEPENDENT=YES`` when the first sample of
  every track fragment is a sync sample (the ``sample_is_non_sync_sample`` bit of its sample flags
  is clear), read from the sample flags rather than assumed from the segment's start. Parsing is
  bounded (a box budget per file, every size checked against its parent, sample tables against
  their box, only the known boxes entered: no recursion) and anything malformed raises
  :class:`FragmentedMp4Error`.
* **The clock.** :class:`LowLatencyTimeline` says which segments and parts are published ``t``
  seconds after the stream started, with the live edge rule of ``/live/``: segment ``msn`` (VOD
  segment ``msn % N``) starts when the segment before it is complete, and its part ``k`` is
  published once the part's duration has elapsed after part ``k - 1``. Part durations are scaled
  so that the parts of a segment add up exactly to the segment's ``#EXTINF`` (or the forced
  ``segment_duration``).
* **The playlist.** :func:`render_media_playlist` writes the media playlist at a given edge:
  ``EXT-X-SERVER-CONTROL`` (blocking reload, ``PART-HOLD-BACK``, ``CAN-SKIP-UNTIL``),
  ``EXT-X-PART-INF``, the window's segments with their ``EXT-X-PART`` lines while they are within
  three target durations of the end, the parts of the segment in progress, an
  ``EXT-X-PRELOAD-HINT`` for the next part, program date-times and the rendition reports; with
  ``skip`` a delta update (``EXT-X-SKIP``).
* **Delivery directives.** :func:`parse_directives` reads ``_HLS_msn``, ``_HLS_part`` and
  ``_HLS_skip`` (RFC 8216bis §6.2.5); :func:`blocking_decision` says whether a blocking reload is
  answered now, held, or refused with ``400``.

Parts have URIs of their own (``seg_<msn>.<k><ext>``, next to ``seg_<msn><ext>``) rather than byte
ranges of the growing segment: a part is then a complete, immutable resource from the moment it is
published, so a held request for the hinted part is answered with its whole body at once, a cache
or a peer can key a part by its URL alone, and no response has to stream a file that is still
growing. (Byte ranges of the segment URI, with an open-ended ``BYTERANGE-LENGTH`` preload hint,
are the other form RFC 8216bis allows.)
"""

from __future__ import annotations

import bisect
import math
import re
from collections.abc import Iterator, Sequence
from datetime import datetime, timedelta
from fractions import Fraction
from typing import Final, Literal
from urllib.parse import quote

import attrs

from p2ploader.errors import ConfigError, DirectiveError, FragmentedMp4Error
from p2ploader.hls_low_latency import (
    MAX_DIRECTIVE_FIELDS,
    DeliveryDirectives,
    parse_delivery_directives,
)

__all__ = [
    "BlockingDecision",
    "DeliveryDirectives",
    "DirectiveError",
    "Fragment",
    "FragmentedMp4Error",
    "LowLatencyEdge",
    "LowLatencySegment",
    "LowLatencySettings",
    "LowLatencyTimeline",
    "PlaylistShape",
    "RenditionReportLine",
    "TrackInfo",
    "advance_part_limit",
    "blocking_decision",
    "fragments_of",
    "group_fragments",
    "parse_directives",
    "parse_init",
    "parse_part_name",
    "part_name",
    "part_target_of",
    "render_media_playlist",
    "window_first",
]

#: Boxes read from one file at most (top level and nested together).
MAX_BOXES: Final = 100_000
#: Samples one ``trun`` may declare at most (a 1 s part at 1000 fps is far below).
MAX_SAMPLES: Final = 1_000_000
#: Longest query string a playlist request may carry, in characters.
MAX_QUERY_CHARS: Final = 1024
#: Query fields a playlist request may carry at most.
MAX_QUERY_FIELDS: Final = MAX_DIRECTIVE_FIELDS
#: ``EXT-X-VERSION`` of the LL-HLS playlists: ``EXT-X-SKIP`` needs 9 (RFC 8216bis §4.4.5.2).
PLAYLIST_VERSION: Final = 9

_EDGE_TOLERANCE: Final = Fraction(1, 1_000_000)  # as for /live/: decimal clock values hit boundaries
_NON_SYNC_SAMPLE: Final = 0x0001_0000  # ISO/IEC 14496-12 sample flags: sample_is_non_sync_sample
_PART_NAME: Final = re.compile(r"seg_(0|[1-9][0-9]{0,17})\.(0|[1-9][0-9]{0,5})(\..*)?", re.ASCII | re.DOTALL)


# --------------------------------------------------------------------------------------------------
# Settings


def _validate_hold_back(_i: object, _a: attrs.Attribute[float], value: float) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not value >= 2:
        raise ConfigError(
            f"LowLatencySettings.part_hold_back_parts must be a number >= 2 (RFC 8216bis), got {value!r}",
            key="part_hold_back_parts",
        )


def _validate_block_timeout(_i: object, _a: attrs.Attribute[float | None], value: float | None) -> None:
    if value is None:
        return
    number = not isinstance(value, bool) and isinstance(value, int | float)
    if not number or not (math.isfinite(value) and value > 0):
        raise ConfigError(
            f"LowLatencySettings.block_timeout must be None or a finite number > 0, got {value!r}",
            key="block_timeout",
        )


def _validate_part_duration(_i: object, _a: attrs.Attribute[float | None], value: float | None) -> None:
    if value is None:
        return
    number = not isinstance(value, bool) and isinstance(value, int | float)
    if not number or not (math.isfinite(value) and value > 0):
        raise ConfigError(
            f"LowLatencySettings.part_duration must be None or a finite number > 0, got {value!r}",
            key="part_duration",
        )


def _validate_max_held(_i: object, _a: attrs.Attribute[int], value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(
            f"LowLatencySettings.max_held_requests must be an integer >= 1, got {value!r}",
            key="max_held_requests",
        )


@attrs.frozen(kw_only=True)
class LowLatencySettings:
    """How :class:`~p2ploader.testing.origin.OriginServer` serves LL-HLS under ``/llhls/``.

    The window, the initial segments, looping and ``end_after`` come from the server's
    :class:`~p2ploader.testing.origin.LiveSettings` (its defaults when it has none).

    Attributes:
        part_duration: Join consecutive fragments of a segment into parts of at most this many
            seconds (> 0; :func:`group_fragments`), for sources cut finer than the parts wanted
            (a fragment per frame, as low-latency CMAF encoders write); ``None``: one part per
            fragment.
        part_hold_back_parts: ``PART-HOLD-BACK`` in part target durations (>= 2: RFC 8216bis
            requires at least twice the part target; 3 is what it recommends).
        block_timeout: Seconds (real time) a blocking reload or a request for the hinted part is
            held before ``503``; ``None`` means three target durations (RFC 8216bis §6.2.5.2).
        max_held_requests: Requests held at once, across every stream (>= 1); one more gets
            ``503`` at once, so held requests cannot take every server thread.
    """

    part_duration: float | None = attrs.field(default=None, validator=_validate_part_duration)
    part_hold_back_parts: float = attrs.field(default=3.0, validator=_validate_hold_back)
    block_timeout: float | None = attrs.field(default=None, validator=_validate_block_timeout)
    max_held_requests: int = attrs.field(default=64, validator=_validate_max_held)

    def hold_limit(self, target_duration: int) -> float:
        """Seconds a request of a stream with this target duration (seconds) is held at most."""
        return 3.0 * target_duration if self.block_timeout is None else float(self.block_timeout)


# --------------------------------------------------------------------------------------------------
# MP4 boxes


def _boxes(data: bytes, start: int, end: int, budget: list[int]) -> Iterator[tuple[str, int, int, int]]:
    """``(type, box_start, payload_start, box_end)`` of the boxes filling ``data[start:end]``."""
    offset = start
    while offset < end:
        budget[0] -= 1
        if budget[0] < 0:
            raise FragmentedMp4Error(f"more than {MAX_BOXES} boxes")
        if end - offset < 8:
            raise FragmentedMp4Error(f"truncated box header at byte {offset}")
        size = int.from_bytes(data[offset : offset + 4], "big")
        kind = data[offset + 4 : offset + 8].decode("latin-1")
        header = 8
        if size == 1:
            if end - offset < 16:
                raise FragmentedMp4Error(f"truncated 64-bit box size at byte {offset}")
            size = int.from_bytes(data[offset + 8 : offset + 16], "big")
            header = 16
        elif size == 0:
            size = end - offset  # "to the end of the enclosing box or file"
        if size < header or size > end - offset:
            raise FragmentedMp4Error(
                f"box {kind!r} at byte {offset} declares {size} bytes; {end - offset} remain"
            )
        yield kind, offset, offset + header, offset + size
        offset += size


def _child(data: bytes, start: int, end: int, kind: str, budget: list[int]) -> tuple[int, int] | None:
    for name, _, payload, box_end in _boxes(data, start, end, budget):
        if name == kind:
            return payload, box_end
    return None


def _uint(data: bytes, offset: int, size: int, end: int, what: str) -> int:
    if offset + size > end:
        raise FragmentedMp4Error(f"{what}: the box ends before its fields")
    return int.from_bytes(data[offset : offset + size], "big")


@attrs.frozen(kw_only=True)
class TrackInfo:
    """One track of an fMP4 init section: its ``timescale`` (ticks per second), its ``handler``
    (``hdlr`` type: ``"vide"``, ``"soun"``, ...) and the ``trex`` defaults a track fragment falls
    back on (None: the ``moov`` gives none)."""

    track_id: int
    timescale: int
    handler: str = ""
    default_duration: int | None = None
    default_flags: int | None = None


def parse_init(data: bytes) -> dict[int, TrackInfo]:
    """The tracks of the fMP4 init section ``data`` (``ftyp`` + ``moov``), by track ID.

    Raises:
        FragmentedMp4Error: No ``moov``, a malformed box, or a track without a timescale.
    """
    budget = [MAX_BOXES]
    moov = _child(data, 0, len(data), "moov", budget)
    if moov is None:
        raise FragmentedMp4Error("the init section has no moov box")
    tracks: dict[int, TrackInfo] = {}
    defaults: dict[int, tuple[int, int]] = {}
    for name, _, payload, end in _boxes(data, moov[0], moov[1], budget):
        if name == "trak":
            track_id, timescale, handler = _track_header(data, payload, end, budget)
            tracks[track_id] = TrackInfo(track_id=track_id, timescale=timescale, handler=handler)
        elif name == "mvex":
            for child, _, child_payload, child_end in _boxes(data, payload, end, budget):
                if child == "trex":
                    # version/flags, track_ID, description index, duration, size, flags
                    track_id = _uint(data, child_payload + 4, 4, child_end, "trex")
                    duration = _uint(data, child_payload + 12, 4, child_end, "trex")
                    flags = _uint(data, child_payload + 20, 4, child_end, "trex")
                    defaults[track_id] = (duration, flags)
    if not tracks:
        raise FragmentedMp4Error("the init section's moov has no track")
    for track_id, (duration, flags) in defaults.items():
        if track_id in tracks:
            tracks[track_id] = attrs.evolve(tracks[track_id], default_duration=duration, default_flags=flags)
    return tracks


def _track_header(data: bytes, start: int, end: int, budget: list[int]) -> tuple[int, int, str]:
    """(track ID, timescale, handler type) of a ``trak`` box."""
    tkhd = _child(data, start, end, "tkhd", budget)
    mdia = _child(data, start, end, "mdia", budget)
    mdhd = None if mdia is None else _child(data, mdia[0], mdia[1], "mdhd", budget)
    hdlr = None if mdia is None else _child(data, mdia[0], mdia[1], "hdlr", budget)
    if tkhd is None or mdhd is None:
        raise FragmentedMp4Error("a trak box has no tkhd or no mdia/mdhd")
    handler = "" if hdlr is None else data[hdlr[0] + 8 : min(hdlr[0] + 12, hdlr[1])].decode("latin-1")
    wide = _uint(data, tkhd[0], 1, tkhd[1], "tkhd") == 1
    track_id = _uint(data, tkhd[0] + (20 if wide else 12), 4, tkhd[1], "tkhd")
    wide = _uint(data, mdhd[0], 1, mdhd[1], "mdhd") == 1
    timescale = _uint(data, mdhd[0] + (20 if wide else 12), 4, mdhd[1], "mdhd")
    if timescale == 0:
        raise FragmentedMp4Error(f"track {track_id} has timescale 0")
    return track_id, timescale, handler


@attrs.frozen(kw_only=True)
class Fragment:
    """One ``moof`` + ``mdat`` fragment of a segment file: bytes ``offset`` to ``offset + length``
    (the boxes in front of the ``moof`` included), its ``duration`` in seconds (the longest track
    fragment), and whether it starts with a sync sample in every track (``independent``)."""

    offset: int
    length: int
    duration: Fraction
    independent: bool


def fragments_of(data: bytes, tracks: dict[int, TrackInfo]) -> tuple[Fragment, ...]:
    """The fragments of the fMP4 media segment ``data``, in order; together they cover every byte.

    Boxes after the last ``mdat`` (``mfra``, ``free``) belong to the last fragment.

    Raises:
        FragmentedMp4Error: A malformed box, an ``mdat`` without a ``moof`` in front (or a
            ``moof`` without its ``mdat``), a track the init section does not declare, sample
            durations or flags it cannot tell, or no fragment at all.
    """
    budget = [MAX_BOXES]
    has_video = any(track.handler == "vide" for track in tracks.values())
    fragments: list[Fragment] = []
    start: int | None = None
    moof: tuple[Fraction, bool] | None = None
    for name, box_start, payload, end in _boxes(data, 0, len(data), budget):
        if start is None:
            start = box_start
        if name == "moof":
            if moof is not None:
                raise FragmentedMp4Error(f"moof at byte {box_start} follows a moof without its mdat")
            moof = _read_moof(data, payload, end, tracks, has_video, budget)
        elif name == "mdat":
            if moof is None:
                raise FragmentedMp4Error(f"mdat at byte {box_start} has no moof in front of it")
            fragments.append(
                Fragment(offset=start, length=end - start, duration=moof[0], independent=moof[1])
            )
            start, moof = None, None
    if moof is not None:
        raise FragmentedMp4Error("the last moof has no mdat")
    if not fragments:
        raise FragmentedMp4Error("no moof + mdat fragment (not a fragmented MP4 media segment)")
    last = fragments[-1]
    if last.offset + last.length != len(data):
        fragments[-1] = attrs.evolve(last, length=len(data) - last.offset)
    return tuple(fragments)


def _read_moof(
    data: bytes, start: int, end: int, tracks: dict[int, TrackInfo], has_video: bool, budget: list[int]
) -> tuple[Fraction, bool]:
    """(duration in seconds, independent) of one ``moof``. With a video track in the stream the
    duration is the video's (audio frames rarely end where video frames do, and the video is what
    the parts are cut on; a fragment of audio only then lasts 0 s and joins a neighbour's part
    time), else the longest track fragment's. It is independent when the first sample of every
    track fragment is a sync sample and, in a stream with video, it has video: audio frames are
    all sync samples, but a part starting with audio alone still needs the key frame before it."""
    durations: dict[bool, Fraction] = {True: Fraction(0), False: Fraction(0)}
    independent = True
    video_seen = False
    trafs = 0
    for name, _, payload, traf_end in _boxes(data, start, end, budget):
        if name != "traf":
            continue
        trafs += 1
        seconds, sync, video = _read_traf(data, payload, traf_end, tracks, budget)
        durations[video] = max(durations[video], seconds)
        video_seen = video_seen or video
        independent = independent and sync
    if trafs == 0:
        raise FragmentedMp4Error("a moof has no traf")
    if has_video:
        return durations[True], independent and video_seen
    return durations[False], independent


def _read_traf(
    data: bytes, start: int, end: int, tracks: dict[int, TrackInfo], budget: list[int]
) -> tuple[Fraction, bool, bool]:
    """(duration in seconds, first sample is a sync sample, is video) of one track fragment."""
    tfhd = _child(data, start, end, "tfhd", budget)
    if tfhd is None:
        raise FragmentedMp4Error("a traf has no tfhd")
    flags = _uint(data, tfhd[0], 4, tfhd[1], "tfhd") & 0xFF_FFFF
    track_id = _uint(data, tfhd[0] + 4, 4, tfhd[1], "tfhd")
    track = tracks.get(track_id)
    if track is None:
        raise FragmentedMp4Error(f"a traf names track {track_id}, which the init section does not declare")
    field = tfhd[0] + 8
    field += 8 if flags & 0x01 else 0  # base-data-offset
    field += 4 if flags & 0x02 else 0  # sample-description-index
    default_duration = track.default_duration
    if flags & 0x08:
        default_duration = _uint(data, field, 4, tfhd[1], "tfhd")
        field += 4
    field += 4 if flags & 0x10 else 0  # default-sample-size
    default_flags = track.default_flags
    if flags & 0x20:
        default_flags = _uint(data, field, 4, tfhd[1], "tfhd")
    ticks = 0
    first_flags: int | None = None
    samples = 0
    for name, _, payload, trun_end in _boxes(data, start, end, budget):
        if name != "trun":
            continue
        run_ticks, run_first, count = _read_trun(data, payload, trun_end, default_duration, default_flags)
        ticks += run_ticks
        if samples == 0 and count:
            first_flags = run_first
        samples += count
    if samples == 0:
        return Fraction(0), True, False  # an empty track fragment does not decide anything
    if first_flags is None:
        raise FragmentedMp4Error(f"track {track_id}: no sample flags for its first sample")
    video = track.handler == "vide"
    return Fraction(ticks, track.timescale), not first_flags & _NON_SYNC_SAMPLE, video


def _read_trun(
    data: bytes, start: int, end: int, default_duration: int | None, default_flags: int | None
) -> tuple[int, int | None, int]:
    """(ticks, first sample's flags or None, sample count) of one ``trun``."""
    flags = _uint(data, start, 4, end, "trun") & 0xFF_FFFF
    count = _uint(data, start + 4, 4, end, "trun")
    if count > MAX_SAMPLES:
        raise FragmentedMp4Error(f"a trun declares {count} samples (at most {MAX_SAMPLES})")
    field = start + 8
    field += 4 if flags & 0x001 else 0  # data-offset
    first_flags: int | None = None
    if flags & 0x004:
        first_flags = _uint(data, field, 4, end, "trun")
        field += 4
    per_sample = [bit for bit in (0x100, 0x200, 0x400, 0x800) if flags & bit]
    stride = 4 * len(per_sample)
    if field + stride * count > end:
        raise FragmentedMp4Error(f"a trun of {count} samples ends before its sample table")
    if flags & 0x100:
        where = per_sample.index(0x100) * 4
        ticks = sum(
            int.from_bytes(data[field + i * stride + where : field + i * stride + where + 4], "big")
            for i in range(count)
        )
    elif default_duration is not None:
        ticks = default_duration * count
    else:
        raise FragmentedMp4Error("sample durations are neither in the trun, the tfhd nor the trex")
    if first_flags is None and count:
        if flags & 0x400:
            where = per_sample.index(0x400) * 4
            first_flags = int.from_bytes(data[field + where : field + where + 4], "big")
        else:
            first_flags = default_flags
    return ticks, first_flags, count


def group_fragments(fragments: Sequence[Fragment], part_duration: float | None) -> tuple[Fragment, ...]:
    """The parts of a segment made of ``fragments``: with ``part_duration`` (seconds) None, one
    part per fragment; else consecutive fragments joined while the part stays within
    ``part_duration``. A fragment that starts with sync samples (``independent``) always starts a
    part, so every key frame an encoder put at a fragment start keeps its ``INDEPENDENT=YES``; a
    fragment longer than ``part_duration`` is a part by itself."""
    if part_duration is None:
        return tuple(fragments)
    limit = Fraction(repr(part_duration)) + _EDGE_TOLERANCE
    parts: list[Fragment] = []
    for fragment in fragments:
        if parts and not fragment.independent and parts[-1].duration + fragment.duration <= limit:
            last = parts[-1]
            parts[-1] = attrs.evolve(
                last, length=last.length + fragment.length, duration=last.duration + fragment.duration
            )
        else:
            parts.append(fragment)
    return tuple(parts)


# --------------------------------------------------------------------------------------------------
# The live timeline


@attrs.frozen(kw_only=True)
class LowLatencySegment:
    """One VOD segment as LL-HLS serves it.

    Attributes:
        duration: The live duration in seconds (the ``#EXTINF``, or ``segment_duration``).
        extinf: The ``#EXTINF`` line, verbatim.
        ext: The file suffix of the live names (``seg_<msn><ext>``, ``seg_<msn>.<k><ext>``).
        discontinuity: ``#EXT-X-DISCONTINUITY`` in front of it in the VOD playlist.
        init: The ``#EXT-X-MAP`` line in effect, URI already rewritten for the live playlist.
        extra: Other tags in front of it in the VOD playlist, verbatim.
        parts: Its parts, in order, covering the whole file: each one or more whole fragments
            (:func:`group_fragments`), as a :class:`Fragment` spanning them.
    """

    duration: Fraction
    extinf: str
    ext: str
    discontinuity: bool
    init: str | None
    extra: tuple[str, ...]
    parts: tuple[Fragment, ...]
    part_ends: tuple[Fraction, ...] = attrs.field(init=False)
    """Where each part ends in the segment, in seconds from its start (the last is ``duration``):
    the parts' own durations scaled so that they add up to ``duration`` exactly."""

    def __attrs_post_init__(self) -> None:
        total = sum((part.duration for part in self.parts), Fraction(0))
        ends: list[Fraction] = []
        elapsed = Fraction(0)
        for index, part in enumerate(self.parts):
            elapsed += part.duration
            share = elapsed / total if total else Fraction(index + 1, len(self.parts))
            ends.append(self.duration * share)
        object.__setattr__(self, "part_ends", tuple(ends))

    def part_duration(self, index: int) -> Fraction:
        """Seconds of part ``index``."""
        return self.part_ends[index] - (self.part_ends[index - 1] if index else Fraction(0))


def part_target_of(segments: Sequence[LowLatencySegment]) -> Fraction:
    """``PART-TARGET``: the longest part, rounded up to the millisecond (every part must be at most
    the part target, RFC 8216bis §4.4.3.7), in seconds."""
    longest = max(segment.part_duration(i) for segment in segments for i in range(len(segment.parts)))
    return Fraction(math.ceil(longest * 1000), 1000)


def advance_part_limit(part_target: Fraction) -> int:
    """How many parts beyond the last published one a blocking reload may ask for (RFC 8216bis
    §6.2.5.2: three divided by the part target when it is under a second, three otherwise)."""
    return math.floor(3 / part_target) if part_target < 1 else 3


@attrs.frozen(kw_only=True)
class LowLatencyEdge:
    """What is published at one clock value: ``complete`` whole segments (sequence numbers
    ``0..complete-1``) and the first ``parts`` parts of segment ``complete``; ``ended`` when the
    stream is over (then ``parts`` is 0)."""

    complete: int
    parts: int
    ended: bool


@attrs.frozen(kw_only=True)
class LowLatencyTimeline:
    """When each live segment and part is published, ``t`` seconds (clock) after the stream started.

    Segment ``msn`` is VOD segment ``msn % N``. The first ``initial`` segments exist at clock 0;
    each later one starts when the one before is complete. ``limit`` caps the segments ever
    published (``end_after``; ``N`` without looping); None means forever.
    """

    segments: tuple[LowLatencySegment, ...]
    initial: int
    limit: int | None
    prefix: tuple[Fraction, ...] = attrs.field(init=False)  # prefix[i] = sum of the first i durations

    def __attrs_post_init__(self) -> None:
        prefix = [Fraction(0)]
        for segment in self.segments:
            prefix.append(prefix[-1] + segment.duration)
        if prefix[-1] <= 0:
            raise ValueError("the segments last 0 s in total")
        object.__setattr__(self, "prefix", tuple(prefix))

    def segment(self, msn: int) -> LowLatencySegment:
        """The VOD segment behind live segment ``msn``."""
        return self.segments[msn % len(self.segments)]

    def _position(self, msn: int) -> Fraction:
        cycles, index = divmod(msn, len(self.segments))
        return cycles * self.prefix[-1] + self.prefix[index]

    def start(self, msn: int) -> Fraction:
        """The clock value (seconds) at which segment ``msn``'s first part starts to be produced:
        negative for the segments that exist at clock 0."""
        return self._position(msn) - self._position(self.initial)

    def part_published_at(self, msn: int, index: int) -> Fraction:
        """The clock value (seconds) at which part ``index`` of segment ``msn`` is published."""
        return self.start(msn) + self.segment(msn).part_ends[index]

    def edge(self, clock_value: float) -> LowLatencyEdge:
        """What is published at ``clock_value`` (seconds since the stream started)."""
        if not math.isfinite(clock_value):
            raise ValueError(f"the live clock returned {clock_value!r}")
        count = len(self.segments)
        position = self._position(self.initial) + Fraction(max(clock_value, 0.0)) + _EDGE_TOLERANCE
        cycles = math.floor(position / self.prefix[-1])
        within = position - cycles * self.prefix[-1]
        complete = max(cycles * count + bisect.bisect_right(self.prefix, within) - 1, self.initial)
        if self.limit is not None and complete >= self.limit:
            return LowLatencyEdge(complete=self.limit, parts=0, ended=True)
        elapsed = position - self._position(complete)
        parts = bisect.bisect_right(self.segment(complete).part_ends, elapsed)
        return LowLatencyEdge(complete=complete, parts=parts, ended=False)

    def next_publication(self, edge: LowLatencyEdge) -> Fraction | None:
        """The clock value (seconds) at which the part after ``edge`` is published; None once ended."""
        if edge.ended:
            return None
        return self.part_published_at(edge.complete, edge.parts)

    def is_published(self, edge: LowLatencyEdge, msn: int, part: int | None) -> bool:
        """Whether segment ``msn`` (complete), or with ``part`` that part of it, is published at
        ``edge``. A part index past the segment's last part means the next segment's first part."""
        if part is not None and part >= len(self.segment(msn).parts):
            msn, part = msn + 1, 0
        if msn < edge.complete:
            return True
        if edge.ended or part is None:
            return False
        return msn == edge.complete and part < edge.parts

    def last_part(self, edge: LowLatencyEdge) -> tuple[int, int] | None:
        """``(msn, part)`` of the newest published part, or None when nothing is published."""
        if edge.parts:
            return edge.complete, edge.parts - 1
        if edge.complete == 0:
            return None
        return edge.complete - 1, len(self.segment(edge.complete - 1).parts) - 1

    def parts_between(self, older: tuple[int, int], newer: tuple[int, int]) -> int:
        """How many parts ``newer`` is after ``older`` (both ``(msn, part)``; negative if before)."""
        if newer < older:
            return -self.parts_between(newer, older)
        (msn, part), (last_msn, last_part) = older, newer
        count = -part
        while msn < last_msn:
            count += len(self.segment(msn).parts)
            msn += 1
        return count + last_part


def part_name(msn: int, index: int, ext: str) -> str:
    """The live file name of part ``index`` of segment ``msn`` (``seg_12.3.m4s``), percent-encoded."""
    return f"seg_{msn}.{index}{quote(ext)}"


def parse_part_name(name: str) -> tuple[int, int, str] | None:
    """``(msn, part, ext)`` of a live part file name, or None when ``name`` is not one."""
    match = _PART_NAME.fullmatch(name)
    if match is None:
        return None
    return int(match.group(1)), int(match.group(2)), match.group(3) or ""


# --------------------------------------------------------------------------------------------------
# Delivery directives and blocking reload


def parse_directives(query: str) -> DeliveryDirectives:
    """The delivery directives in a request's raw query string, at most :data:`MAX_QUERY_CHARS`
    characters (:func:`~p2ploader.hls_low_latency.parse_delivery_directives`, which raises
    :class:`~p2ploader.errors.DirectiveError`)."""
    return parse_delivery_directives(query, max_chars=MAX_QUERY_CHARS)


BlockingDecision = Literal["answer", "hold", "too far"]


def blocking_decision(
    timeline: LowLatencyTimeline, edge: LowLatencyEdge, directives: DeliveryDirectives, part_target: Fraction
) -> BlockingDecision:
    """What to do with a playlist request at ``edge`` (RFC 8216bis §6.2.5.2): ``"answer"`` now (no
    blocking directive, the segment or part is published, or the stream has ended), ``"hold"``
    until it is published, or ``"too far"`` (answer ``400``): ``_HLS_msn`` more than two segments
    past the last one (the segment in progress counts once it has a part), or ``_HLS_part`` more
    than the advance part limit past the last part."""
    msn, part = directives.msn, directives.part
    if msn is None or edge.ended or timeline.is_published(edge, msn, part):
        return "answer"
    last_msn = edge.complete if edge.parts else edge.complete - 1
    if msn > last_msn + 2:
        return "too far"
    if part is not None:
        last = timeline.last_part(edge) or (0, -1)
        if timeline.parts_between(last, (msn, part)) > advance_part_limit(part_target):
            return "too far"
    return "hold"


# --------------------------------------------------------------------------------------------------
# The media playlist


@attrs.frozen(kw_only=True)
class RenditionReportLine:
    """An ``EXT-X-RENDITION-REPORT`` to write: ``uri`` relative to the playlist, the rendition's
    newest part ``(last_msn, last_part)``."""

    uri: str
    last_msn: int
    last_part: int


def _decimal_seconds(value: Fraction) -> str:
    """Seconds as a decimal-floating-point with up to 5 decimals (``0.5``, ``2``, ``0.41667``)."""
    text = f"{float(value):.5f}".rstrip("0").rstrip(".")
    return text or "0"


def _format_date(value: datetime) -> str:
    text = value.isoformat(timespec="milliseconds")
    return text.removesuffix("+00:00") + "Z" if text.endswith("+00:00") else text


@attrs.frozen(kw_only=True)
class PlaylistShape:
    """The fixed parts of one LL-HLS media playlist (from its VOD playlist and the settings).

    Attributes:
        header: VOD header tags kept (``EXT-X-INDEPENDENT-SEGMENTS``, ``EXT-X-START``, ...; not
            ``EXT-X-VERSION``: the LL playlist writes its own).
        target_duration: ``EXT-X-TARGETDURATION`` (seconds).
        window_segments: Whole segments listed at most (the segment in progress comes on top).
        part_hold_back_parts: ``PART-HOLD-BACK`` in part targets.
        loop: Whether the VOD repeats (each wrap to VOD segment 0 is a discontinuity).
        discontinuities: ``[i]`` = the VOD discontinuity tags in front of VOD segments ``1..i``.
        name_prefix: Prefix of the segment and part URIs (``""`` or ``"<stem>/"``).
        epoch: The wall-clock date of clock 0 (program date-times are ``epoch`` + the segment's
            :meth:`LowLatencyTimeline.start`).
    """

    header: tuple[str, ...]
    target_duration: int
    window_segments: int
    part_hold_back_parts: float
    loop: bool
    discontinuities: tuple[int, ...]
    name_prefix: str
    epoch: datetime

    def discontinuity_sequence(self, timeline: LowLatencyTimeline, msn: int) -> int:
        """Discontinuities in front of segments ``1..msn`` (each wrap, plus the VOD's own)."""
        count = len(timeline.segments)
        cycles, index = divmod(msn, count)
        if not self.loop:
            cycles = 0
        return cycles * (1 + self.discontinuities[-1]) + self.discontinuities[index]

    def has_discontinuity(self, timeline: LowLatencyTimeline, msn: int) -> bool:
        index = msn % len(timeline.segments)
        return msn > 0 and ((self.loop and index == 0) or timeline.segments[index].discontinuity)


def window_first(shape: PlaylistShape, edge: LowLatencyEdge) -> int:
    """Media sequence number of the first segment listed at ``edge``."""
    return max(edge.complete - shape.window_segments, 0)


def render_media_playlist(
    shape: PlaylistShape,
    timeline: LowLatencyTimeline,
    edge: LowLatencyEdge,
    *,
    skip: bool = False,
    reports: Sequence[RenditionReportLine] = (),
) -> str:
    """The LL-HLS media playlist at ``edge``; with ``skip`` a delta update (RFC 8216bis §4.4.5.2)
    whose ``EXT-X-SKIP`` replaces the segments more than ``CAN-SKIP-UNTIL`` (six target durations)
    before the end of the playlist."""
    part_target = part_target_of(timeline.segments)
    skip_until = 6 * shape.target_duration
    first = window_first(shape, edge)
    lines = ["#EXTM3U", f"#EXT-X-VERSION:{PLAYLIST_VERSION}", *shape.header]
    lines.append(f"#EXT-X-TARGETDURATION:{shape.target_duration}")
    hold_back = part_target * Fraction(repr(shape.part_hold_back_parts))
    lines.append(
        "#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,"
        f"CAN-SKIP-UNTIL={skip_until},PART-HOLD-BACK={_decimal_seconds(hold_back)}"
    )
    lines.append(f"#EXT-X-PART-INF:PART-TARGET={_decimal_seconds(part_target)}")
    lines.append(f"#EXT-X-MEDIA-SEQUENCE:{first}")
    lines.append(f"#EXT-X-DISCONTINUITY-SEQUENCE:{shape.discontinuity_sequence(timeline, first)}")
    in_progress = not edge.ended and edge.parts > 0
    # The end of the playlist on the clock: the end of its last part.
    end = (
        timeline.part_published_at(edge.complete, edge.parts - 1)
        if in_progress
        else timeline.start(edge.complete)
    )
    skipped = 0
    if skip:
        # Skip the segments that start more than CAN-SKIP-UNTIL before the end of the playlist.
        while first + skipped < edge.complete and end - timeline.start(first + skipped) > skip_until:
            skipped += 1
        lines.append(f"#EXT-X-SKIP:SKIPPED-SEGMENTS={skipped}")
    parts_from = end - 3 * shape.target_duration  # parts are listed for segments ending after this
    init: str | None = None
    last = edge.complete + (1 if in_progress else 0)
    for msn in range(first + skipped, last):
        segment = timeline.segment(msn)
        start = timeline.start(msn)
        discontinuity = msn > first and shape.has_discontinuity(timeline, msn)
        if discontinuity:
            lines.append("#EXT-X-DISCONTINUITY")
        if segment.init is not None and (segment.init != init or discontinuity):
            lines.append(segment.init)
        init = segment.init
        lines.extend(segment.extra)
        date = shape.epoch + timedelta(seconds=float(start))
        lines.append(f"#EXT-X-PROGRAM-DATE-TIME:{_format_date(date)}")
        complete = msn < edge.complete
        if not complete or start + segment.duration > parts_from:
            for index in range(len(segment.parts) if complete else edge.parts):
                independent = ",INDEPENDENT=YES" if segment.parts[index].independent else ""
                lines.append(
                    f"#EXT-X-PART:DURATION={_decimal_seconds(segment.part_duration(index))},"
                    f'URI="{shape.name_prefix}{part_name(msn, index, segment.ext)}"{independent}'
                )
        if complete:
            lines.append(segment.extinf)
            lines.append(f"{shape.name_prefix}seg_{msn}{quote(segment.ext)}")
    if not edge.ended:
        hinted = timeline.segment(edge.complete)
        name = part_name(edge.complete, edge.parts, hinted.ext)
        lines.append(f'#EXT-X-PRELOAD-HINT:TYPE=PART,URI="{shape.name_prefix}{name}"')
    for report in reports:
        lines.append(
            f'#EXT-X-RENDITION-REPORT:URI="{report.uri}",'
            f"LAST-MSN={report.last_msn},LAST-PART={report.last_part}"
        )
    if edge.ended:
        lines.append("#EXT-X-ENDLIST")
    return "\n".join(lines) + "\n"
