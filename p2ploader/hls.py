"""The HLS playlist model: master and media playlists as frozen value objects, plus a live tracker.

Theory of operation
-------------------
Everything here is pure: callers fetch a playlist themselves and pass its text together with the URL it
came from (after redirects). Parsing runs in three passes, and nothing leaves this module unvalidated:

1. **Line scan** (ours). The text must start with ``#EXTM3U``. Every line is classified as a tag, a
   comment or a URI, exactly as :mod:`m3u8` splits them. The scan decides what kind of playlist this is
   (master tags such as ``EXT-X-STREAM-INF`` versus media tags such as ``EXTINF``), checks the
   structure (every ``EXTINF`` is followed by a segment URI, every ``EXT-X-STREAM-INF`` by a variant
   URI) and validates the header scalars and ``EXTINF`` durations from their *raw* text. We do this
   ourselves because :mod:`m3u8` is lenient in ways that would let bad data through: it accepts
   ``float("nan")`` and ``"1_0"`` as durations, ``"+5"`` as a media sequence, lower-cases the playlist
   type, and silently drops or merges lines it cannot place.
2. **m3u8** (``m3u8.parse``, the tokenizer that returns plain dicts) parses attribute lists: variant
   and rendition attributes, ``EXT-X-KEY``, ``EXT-X-MAP``, ``EXT-X-BYTERANGE``, discontinuities,
   ``EXT-X-GAP``. Any exception it raises becomes :class:`~p2ploader.errors.PlaylistError`. Its
   segment and variant URIs are cross-checked against the scan, so the two passes can never
   disagree silently.
3. **Conversion** turns m3u8's untyped dicts into our frozen attrs types, validating every value on the
   way (key methods, byte ranges and the implicit-offset rule, target-duration rule, group references)
   and resolving every URI against the playlist URL with :func:`urllib.parse.urljoin`.

Identity. A variant's rendition id is ``"v<index>"`` (its position in the master, as in P2P Media
Loader); an ``EXT-X-MEDIA`` rendition's is ``"<t>:<group>:<name>"`` where ``<t>`` is the first letter
of its TYPE in lower case (``a``, ``v``, ``s``, ``c``), with ``%`` and ``:`` percent-escaped inside the
group and name. A segment is :class:`~p2ploader.core.segments.SegmentId` ``(rendition, media sequence
number)``, stable across refreshes of a live playlist.

Dates and start. ``EXT-X-PROGRAM-DATE-TIME``, ``EXT-X-DATERANGE``, ``EXT-X-START`` and
``EXT-X-I-FRAME-STREAM-INF`` are parsed by our own attribute-list parser, before m3u8 sees the text
(m3u8 drops or loosely converts them), so every malformed value is a :class:`PlaylistError` naming
its line. Once any segment is dated, every segment gets a ``program_date_time``: given, or
extrapolated from the nearest tag (RFC 8216 §4.3.2.6). :func:`choose_start` turns an
``EXT-X-START`` into the segment a player starts with.

Low-Latency HLS (RFC 8216bis). ``EXT-X-SERVER-CONTROL``, ``EXT-X-PART-INF``, ``EXT-X-PART``,
``EXT-X-PRELOAD-HINT``, ``EXT-X-RENDITION-REPORT`` and ``EXT-X-SKIP`` are read by our own
attribute-list parser too (m3u8 never sees them) and checked against each other: hold-backs against
the target durations, each part against ``PART-TARGET``, each segment's parts against its
``EXTINF``. Parts before a segment's ``EXTINF`` are on that segment (:attr:`Segment.parts`); those
after the last one are :attr:`MediaPlaylist.pending_parts`, of the next media sequence number. A
delta update (``EXT-X-SKIP``) parses to its listed segments; :class:`LivePlaylistTracker` fills the
skipped ones in. :mod:`p2ploader.hls_low_latency` has the follower's helpers (live edge, next
blocking reload, start at ``PART-HOLD-BACK``).

Live playlists. :class:`LivePlaylistTracker` folds successive refreshes of one media playlist into a
single view whose segments keep the ``start`` time they had when first seen, so the timeline is
continuous while the window slides; it reports what was added, removed and skipped, and rejects a
refresh that went backwards (stale CDN copy, restarted encoder) while keeping the last good playlist.
It has no clock: :meth:`LivePlaylistTracker.next_refresh_at` takes the time the caller started loading.
:class:`StalePlaylistWatch` (also clockless) counts the reloads that found a live playlist
unchanged, at RFC 8216's reload pace whatever the caller's, so that a playlist that stops changing
without ``EXT-X-ENDLIST`` (an encoder that died, a VOD playlist cut before its end) is reported
after ``LoaderConfig.live_playlist_stuck_reloads`` of them.
"""

from __future__ import annotations

import math
import re
import types
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta, timezone
from typing import Any, Literal, NamedTuple
from urllib.parse import parse_qsl, urlencode, urljoin, urlsplit, urlunsplit

import attrs
import m3u8

from p2ploader.core.low_latency import (
    PreloadHint,
    PreloadHintType,
    RenditionReport,
    ServerControl,
    SkippedSegments,
)
from p2ploader.core.segments import (
    IV_BYTES,
    ByteRange,
    InitSection,
    KeyInfo,
    Part,
    PartId,
    Segment,
    SegmentId,
)
from p2ploader.errors import DeltaPlaylistError, PlaylistError, UsageError

__all__ = [
    "KEY_METHODS",
    "AlternateRendition",
    "DateRange",
    "IFrameVariant",
    "LivePlaylistTracker",
    "MasterPlaylist",
    "MediaPlaylist",
    "PlaylistUpdate",
    "StalePlaylistWatch",
    "StaleVerdict",
    "StartOffset",
    "StartPoint",
    "Variant",
    "blocking_reload_url",
    "choose_start",
    "low_latency_tags",
    "parse_master",
    "parse_media",
    "parse_playlist",
]

#: EXT-X-KEY methods we accept. ``NONE`` means "not encrypted" and yields ``key=None``.
KEY_METHODS = frozenset({"NONE", "AES-128", "SAMPLE-AES", "SAMPLE-AES-CTR"})

#: Tags that only belong in a master playlist (RFC 8216 §4.3.4 plus later additions).
_MASTER_TAGS = frozenset(
    {
        "#EXT-X-STREAM-INF",
        "#EXT-X-MEDIA",
        "#EXT-X-I-FRAME-STREAM-INF",
        "#EXT-X-SESSION-DATA",
        "#EXT-X-SESSION-KEY",
        "#EXT-X-CONTENT-STEERING",
        "#EXT-X-IMAGE-STREAM-INF",
    }
)
#: Tags that only belong in a media playlist (RFC 8216 §4.3.2, §4.3.3, LL-HLS).
_MEDIA_TAGS = frozenset(
    {
        "#EXTINF",
        "#EXT-X-TARGETDURATION",
        "#EXT-X-MEDIA-SEQUENCE",
        "#EXT-X-DISCONTINUITY-SEQUENCE",
        "#EXT-X-ENDLIST",
        "#EXT-X-PLAYLIST-TYPE",
        "#EXT-X-I-FRAMES-ONLY",
        "#EXT-X-BYTERANGE",
        "#EXT-X-DISCONTINUITY",
        "#EXT-X-KEY",
        "#EXT-X-MAP",
        "#EXT-X-PROGRAM-DATE-TIME",
        "#EXT-X-DATERANGE",
        "#EXT-X-GAP",
        "#EXT-X-BITRATE",
        "#EXT-X-PART",
        "#EXT-X-PART-INF",
        "#EXT-X-SERVER-CONTROL",
        "#EXT-X-SKIP",
        "#EXT-X-PRELOAD-HINT",
        "#EXT-X-RENDITION-REPORT",
        "#EXT-X-IMAGES-ONLY",
        "#EXT-X-TILES",
    }
)
#: Tags whose semantics we cannot honour; a playlist using them is rejected rather than misread.
_UNSUPPORTED_TAGS: Mapping[str, str] = {
    "#EXT-X-DEFINE": "EXT-X-DEFINE variable substitution is not supported",
}
#: The LL-HLS tags (RFC 8216bis) that our own attribute-list parser reads; m3u8 never sees them.
_LOW_LATENCY_TAG_LINES = frozenset(
    {
        "#EXT-X-SERVER-CONTROL",
        "#EXT-X-PART-INF",
        "#EXT-X-PART",
        "#EXT-X-PRELOAD-HINT",
        "#EXT-X-RENDITION-REPORT",
        "#EXT-X-SKIP",
    }
)

_MEDIA_TYPES = frozenset({"AUDIO", "VIDEO", "SUBTITLES", "CLOSED-CAPTIONS"})
_UINT64_LIMIT = 2**64  # RFC 8216 §4.2: decimal-integer is 0 .. 2^64-1
_DECIMAL_INTEGER = re.compile(r"[0-9]{1,20}")
_DURATION = re.compile(r"-?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)")
_BYTE_RANGE = re.compile(r"([0-9]{1,20})(?:@([0-9]{1,20}))?")
_RESOLUTION = re.compile(r"([0-9]{1,9})[xX]([0-9]{1,9})")
_IV = re.compile(r"0[xX][0-9a-fA-F]{1,32}")
_HEX_SEQUENCE = re.compile(r"0[xX][0-9a-fA-F]+")
_UNSIGNED_DECIMAL = re.compile(r"[0-9]+(?:\.[0-9]*)?|\.[0-9]+")
#: One AttributeName=AttributeValue pair of an attribute list (RFC 8216 §4.2).
_ATTRIBUTE_PAIR = re.compile(r'([A-Z0-9-]+)=("[^"\r\n]*"|[^",\s]+)')
#: An ISO 8601 date-time as HLS writes it (RFC 8216 §4.3.2.6): date, time, optional fraction and zone.
_DATE_TIME = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})[Tt ]([0-9]{2}):([0-9]{2}):([0-9]{2})(?:\.([0-9]{1,12}))?"
    r"([Zz]|[+-][0-9]{2}(?::?[0-9]{2})?)?"
)
#: END-DATE and START-DATE + DURATION may differ by this much (seconds) and still count as equal.
_DATE_SLACK = 0.001
#: A segment may exceed the target duration by at most this much (RFC 8216 §4.3.3.1 rounding rule).
_TARGET_SLACK = 0.5
#: A segment's parts must add up to its EXTINF within half PART-TARGET: a missing or extra part
#: (at least 85 % of PART-TARGET, RFC 8216bis §4.4.4.9) always fails, while the drift real servers
#: write passes (one CDN lists parts of 1, 1, 1 and 1.04 s under an EXTINF of 3.96 s).
_PART_SUM_SLACK = 0.5


# --------------------------------------------------------------------------------------------------
# Public value objects


@attrs.frozen(kw_only=True)
class Variant:
    """One ``EXT-X-STREAM-INF`` entry of a master playlist.

    ``audio``, ``video``, ``subtitles`` and ``closed_captions`` are the GROUP-IDs the variant refers to
    (validated to exist in :attr:`MasterPlaylist.renditions`); ``closed_captions`` is None for ``NONE``.
    """

    index: int
    rendition_id: str
    url: str
    bandwidth: int
    average_bandwidth: int | None = None
    resolution: tuple[int, int] | None = None
    codecs: str | None = None
    frame_rate: float | None = None
    audio: str | None = None
    video: str | None = None
    subtitles: str | None = None
    closed_captions: str | None = None


@attrs.frozen(kw_only=True)
class AlternateRendition:
    """One ``EXT-X-MEDIA`` entry: an alternative audio, video, subtitle or closed-caption rendition.

    ``url`` is None when the rendition's media is carried inside the variant streams (always for
    CLOSED-CAPTIONS, whose channel is named by ``instream_id``).
    """

    type: str
    group_id: str
    name: str
    rendition_id: str
    url: str | None = None
    language: str | None = None
    default: bool = False
    autoselect: bool = False
    forced: bool = False
    instream_id: str | None = None
    channels: str | None = None


@attrs.frozen(kw_only=True)
class StartOffset:
    """An ``EXT-X-START`` tag (RFC 8216 §4.3.5.2): where a player should start playing.

    ``time_offset`` is in seconds: positive from the start of the playlist, negative from the end
    of its last segment. ``precise`` (PRECISE=YES): start exactly there; otherwise start at the
    beginning of the segment that contains that point.
    """

    time_offset: float
    precise: bool = False


def _frozen_mapping(value: Mapping[str, str]) -> Mapping[str, str]:
    return types.MappingProxyType(dict(value))


@attrs.frozen(kw_only=True)
class DateRange:
    """An ``EXT-X-DATERANGE`` tag (RFC 8216 §4.3.2.7): a range of wall-clock time with attributes,
    such as an ad break.

    Dates are timezone-aware; ``duration`` and ``planned_duration`` are in seconds. The SCTE-35
    attributes are the raw hexadecimal sequences (``0x...``) as the playlist wrote them;
    ``client_attributes`` maps each ``X-`` attribute name to its raw value text as written
    (a quoted string keeps its quotes, so it can be re-served exactly). Several tags with the
    same ID in one playlist are merged into one (RFC: their common attributes must agree).
    """

    id: str
    start_date: datetime
    class_name: str | None = None
    end_date: datetime | None = None
    duration: float | None = None
    planned_duration: float | None = None
    end_on_next: bool = False
    scte35_cmd: str | None = None
    scte35_out: str | None = None
    scte35_in: str | None = None
    client_attributes: Mapping[str, str] = attrs.field(factory=dict, converter=_frozen_mapping, hash=False)

    @property
    def known_end(self) -> datetime | None:
        """END-DATE, else START-DATE + DURATION, else None (open, or ended by the next range)."""
        if self.end_date is not None:
            return self.end_date
        if self.duration is not None:
            return self.start_date + timedelta(seconds=self.duration)
        return None


@attrs.frozen(kw_only=True)
class IFrameVariant:
    """One ``EXT-X-I-FRAME-STREAM-INF`` entry: an I-frame (trick play) media playlist.

    ``rendition_id`` is ``"i<index>"`` (its position among the master's I-frame entries). Trick-play
    playlists are for players (fast forward, thumbnails): the loader never loads them into a swarm.
    """

    index: int
    rendition_id: str
    url: str
    bandwidth: int
    average_bandwidth: int | None = None
    codecs: str | None = None
    resolution: tuple[int, int] | None = None
    video: str | None = None


@attrs.frozen(kw_only=True)
class MasterPlaylist:
    """A master (multivariant) playlist. ``variants`` keep playlist order; ``is_synthetic`` is True when
    :func:`parse_playlist` was given a media playlist and made up a one-variant master for it."""

    url: str
    variants: tuple[Variant, ...]
    renditions: tuple[AlternateRendition, ...] = ()
    is_synthetic: bool = False
    i_frame_variants: tuple[IFrameVariant, ...] = ()
    start: StartOffset | None = None

    def variant_by_id(self, rendition_id: str) -> Variant | None:
        """The variant whose rendition id is ``rendition_id``, or None."""
        return next((v for v in self.variants if v.rendition_id == rendition_id), None)

    def rendition_by_id(self, rendition_id: str) -> AlternateRendition | None:
        """The EXT-X-MEDIA rendition whose rendition id is ``rendition_id``, or None."""
        return next((r for r in self.renditions if r.rendition_id == rendition_id), None)

    def renditions_in_group(self, media_type: str, group_id: str) -> tuple[AlternateRendition, ...]:
        """The EXT-X-MEDIA renditions of TYPE ``media_type`` in GROUP-ID ``group_id``, in playlist order."""
        return tuple(r for r in self.renditions if r.type == media_type and r.group_id == group_id)


@attrs.frozen(kw_only=True)
class MediaPlaylist:
    """A media playlist of one rendition.

    Invariant: ``segments[i].id == SegmentId(rendition, media_sequence + i)``. ``start`` times count
    from the first segment of this playlist, unless the playlist came from
    :attr:`LivePlaylistTracker.current`, which keeps one continuous timeline across refreshes.
    """

    url: str
    rendition: str
    target_duration: int
    media_sequence: int
    discontinuity_sequence: int
    segments: tuple[Segment, ...]
    end_list: bool
    playlist_type: str | None = None
    date_ranges: tuple[DateRange, ...] = ()
    """EXT-X-DATERANGE tags, one per ID, in the order their IDs first appear."""
    start: StartOffset | None = None
    i_frames_only: bool = False
    """EXT-X-I-FRAMES-ONLY: each segment is one I-frame (usually an EXT-X-BYTERANGE of a media
    segment), lasting until the next one."""
    server_control: ServerControl | None = None
    """EXT-X-SERVER-CONTROL (LL-HLS): blocking reload, delta updates, hold-back distances."""
    part_target: float | None = None
    """EXT-X-PART-INF ``PART-TARGET`` in seconds: present exactly when the playlist has parts."""
    pending_parts: tuple[Part, ...] = ()
    """Parts listed after the last complete segment: the first parts of segment
    ``last_sequence + 1``, still being published."""
    preload_hints: tuple[PreloadHint, ...] = ()
    """EXT-X-PRELOAD-HINT tags: the next part (and map) the server will publish."""
    pending_discontinuity: bool = False
    """An EXT-X-DISCONTINUITY after the last segment's URI: the segment in progress (whose first
    parts are ``pending_parts``) starts a discontinuity (LL-HLS; a looping or restarted source)."""
    rendition_reports: tuple[RenditionReport, ...] = ()
    """EXT-X-RENDITION-REPORT tags: the live edges of the other renditions."""
    skipped: SkippedSegments | None = None
    """EXT-X-SKIP of a delta playlist (``_HLS_skip``); None in a full playlist and in what
    :class:`LivePlaylistTracker` returns (it fills the skipped segments in). In a delta playlist
    ``segments`` are the listed ones and ``media_sequence`` is the first listed segment's, so the
    invariant above holds: the playlist's ``EXT-X-MEDIA-SEQUENCE`` is ``media_sequence -
    skipped.count``."""

    @property
    def is_live(self) -> bool:
        """True while the playlist may still grow (no ``EXT-X-ENDLIST`` yet)."""
        return not self.end_list

    @property
    def first_sequence(self) -> int:
        """Media sequence number of the first segment (``media_sequence``, even when empty)."""
        return self.media_sequence

    @property
    def last_sequence(self) -> int:
        """Media sequence number of the last segment; ``first_sequence - 1`` when there is none."""
        return self.media_sequence + len(self.segments) - 1

    @property
    def total_duration(self) -> float:
        """Sum of the segment durations, in seconds."""
        return math.fsum(s.duration for s in self.segments)

    def segment_by_sequence(self, sequence: int) -> Segment | None:
        """The segment with media sequence number ``sequence``, or None if it is not in this window."""
        index = sequence - self.media_sequence
        if 0 <= index < len(self.segments):
            return self.segments[index]
        return None


@attrs.frozen(kw_only=True)
class PlaylistUpdate:
    """What one refresh changed, as seen by :meth:`LivePlaylistTracker.update`.

    ``added`` are new segments (with their continuous ``start``), ``removed`` the ids that slid out of
    the window, ``skipped`` the number of segments that were never seen because the playlist jumped
    ahead past our last known segment, ``ended`` is True on the refresh where ``EXT-X-ENDLIST`` appeared.
    ``added_parts`` are the LL-HLS parts seen for the first time, in play order: those of complete
    segments (new ones, or ones whose last parts were never seen pending) and the new pending parts.
    A refresh that only adds parts has ``added=()`` and is not ``unchanged``.
    """

    added: tuple[Segment, ...] = ()
    removed: tuple[SegmentId, ...] = ()
    unchanged: bool = False
    skipped: int = 0
    ended: bool = False
    added_parts: tuple[Part, ...] = ()


# --------------------------------------------------------------------------------------------------
# Pass 1: the line scan


class _Line(NamedTuple):
    lineno: int
    tag: str | None  # "#EXTINF", "#EXT-X-KEY", ...; None for a URI line
    value: str | None  # text after the first ":" of a tag (None without ":"), or the URI itself


class _Scan(NamedTuple):
    lines: tuple[_Line, ...]
    tags: Mapping[str, tuple[_Line, ...]]

    def first(self, tags: Iterable[str]) -> _Line | None:
        found = [line for tag in tags for line in self.tags.get(tag, ())]
        return min(found, default=None)


def _scan(text: str, url: str) -> tuple[str, _Scan]:
    """Split ``text`` into classified lines; returns the text to hand to m3u8 and the scan."""
    if text.startswith("\ufeff"):
        text = text[1:]
    if not text.strip():
        raise PlaylistError(url, "empty playlist")
    lines: list[_Line] = []
    tags: dict[str, list[_Line]] = {}
    seen_header = False
    for lineno, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line:
            continue
        if not seen_header:
            if line != "#EXTM3U":
                raise PlaylistError(url, f"does not start with #EXTM3U (line {lineno}: {line[:40]!r})")
            seen_header = True
            continue
        if line.startswith("#EXT"):
            name, colon, value = line.partition(":")
            entry = _Line(lineno, name, value if colon else None)
            tags.setdefault(name, []).append(entry)
        elif line.startswith("#"):
            continue  # a comment
        else:
            entry = _Line(lineno, None, line)
        lines.append(entry)
    for tag, reason in _UNSUPPORTED_TAGS.items():
        if tag in tags:
            raise PlaylistError(url, f"{reason} (line {tags[tag][0].lineno})")
    return text, _Scan(tuple(lines), {k: tuple(v) for k, v in tags.items()})


def _header_value(scan: _Scan, tag: str, url: str) -> str | None:
    """The value of a tag that may appear at most once; repeating it with another value is an error."""
    entries = scan.tags.get(tag, ())
    if not entries:
        return None
    values = {(e.value or "").strip() for e in entries}
    if len(values) > 1:
        raise PlaylistError(url, f"{tag[1:]} appears {len(entries)} times with different values")
    return values.pop()


def _decimal_integer(raw: str | None, what: str, url: str) -> int:
    if raw is None or not _DECIMAL_INTEGER.fullmatch(raw) or int(raw) >= _UINT64_LIMIT:
        raise PlaylistError(url, f"{what} is not a decimal integer: {raw!r}")
    return int(raw)


def _duration(line: _Line, url: str) -> float:
    raw = (line.value or "").split(",", 1)[0].strip()
    if not _DURATION.fullmatch(raw):
        raise PlaylistError(url, f"line {line.lineno}: EXTINF duration is not a number: {raw!r}")
    value = float(raw)
    if not math.isfinite(value):
        raise PlaylistError(url, f"line {line.lineno}: EXTINF duration is not finite: {raw!r}")
    if value < 0:
        raise PlaylistError(url, f"line {line.lineno}: negative EXTINF duration {raw}")
    return value


def _media_structure(scan: _Scan, url: str) -> tuple[list[_Line], list[str]]:
    """Pair each segment URI with its EXTINF. Returns (EXTINF lines, URIs) in segment order."""
    infs: list[_Line] = []
    uris: list[str] = []
    pending_inf: _Line | None = None
    pending_range: _Line | None = None
    for line in scan.lines:
        if line.tag is None:
            if pending_inf is None:
                raise PlaylistError(url, f"line {line.lineno}: segment URI without a preceding #EXTINF")
            infs.append(pending_inf)
            uris.append(line.value or "")
            pending_inf = pending_range = None
        elif line.tag == "#EXTINF":
            if pending_inf is not None:
                raise PlaylistError(url, f"line {pending_inf.lineno}: #EXTINF is not followed by a URI")
            pending_inf = line
        elif line.tag == "#EXT-X-BYTERANGE":
            pending_range = line
    if pending_inf is not None:
        raise PlaylistError(url, f"line {pending_inf.lineno}: #EXTINF is not followed by a URI")
    if pending_range is not None:
        raise PlaylistError(url, f"line {pending_range.lineno}: #EXT-X-BYTERANGE without a segment")
    return infs, uris


def _master_structure(scan: _Scan, url: str) -> list[str]:
    """Pair each variant URI with its EXT-X-STREAM-INF. Returns the URIs in order."""
    uris: list[str] = []
    pending: _Line | None = None
    for line in scan.lines:
        if line.tag is None:
            if pending is None:
                raise PlaylistError(url, f"line {line.lineno}: URI without a preceding #EXT-X-STREAM-INF")
            uris.append(line.value or "")
            pending = None
        elif line.tag == "#EXT-X-STREAM-INF":
            if pending is not None:
                raise PlaylistError(url, f"line {pending.lineno}: #EXT-X-STREAM-INF is not followed by a URI")
            pending = line
    if pending is not None:
        raise PlaylistError(url, f"line {pending.lineno}: #EXT-X-STREAM-INF is not followed by a URI")
    return uris


# --------------------------------------------------------------------------------------------------
# Pass 2: m3u8, at the boundary where everything is Any


def _m3u8_parse(text: str, url: str) -> dict[str, Any]:
    try:
        data: object = m3u8.parse(text)
    except Exception as exc:  # m3u8 raises ValueError, KeyError, OverflowError, ... on bad input
        raise PlaylistError(url, f"malformed playlist ({type(exc).__name__}: {exc})") from exc
    if not isinstance(data, dict):  # pragma: no cover - m3u8 always returns a dict
        raise PlaylistError(url, "malformed playlist (m3u8 returned no data)")
    return data


def _dicts(value: object, what: str, url: str) -> list[dict[str, Any]]:
    if not isinstance(value, list) or not all(isinstance(item, dict) for item in value):
        raise PlaylistError(url, f"malformed {what}")
    return value


def _opt_str(attrs_: Mapping[str, Any], key: str, what: str, url: str) -> str | None:
    value = attrs_.get(key)
    if value is None or isinstance(value, str):
        return value
    raise PlaylistError(url, f"{what}: {key.upper().replace('_', '-')} is not a string")


def _req_str(attrs_: Mapping[str, Any], key: str, what: str, url: str) -> str:
    value = _opt_str(attrs_, key, what, url)
    if not value:
        raise PlaylistError(url, f"{what} has no {key.upper().replace('_', '-')}")
    return value


def _yes_no(attrs_: Mapping[str, Any], key: str, what: str, url: str) -> bool:
    value = _opt_str(attrs_, key, what, url)
    if value is None or value == "NO":
        return False
    if value == "YES":
        return True
    raise PlaylistError(url, f"{what}: {key.upper()} must be YES or NO, got {value!r}")


def _resolve(base: str, ref: str, what: str) -> str:
    if not ref:
        raise PlaylistError(base, f"{what} has an empty URI")
    try:
        return urljoin(base, ref)
    except ValueError as exc:  # e.g. "http://[::1" (invalid IPv6 literal)
        raise PlaylistError(base, f"{what} has an invalid URI {ref!r}: {exc}") from exc


# --------------------------------------------------------------------------------------------------
# Pass 3: conversion


def _byte_range(raw: str, what: str, url: str, *, default_offset: int | None) -> ByteRange:
    """``<n>[@<o>]``; without ``@<o>`` the offset is ``default_offset`` (None: not allowed)."""
    match = _BYTE_RANGE.fullmatch(raw.strip())
    if match is None:
        raise PlaylistError(url, f"{what}: bad byte range {raw!r}")
    length = int(match[1])
    if length == 0 or length >= _UINT64_LIMIT:
        raise PlaylistError(url, f"{what}: bad byte range {raw!r} (length must be 1 .. 2^64-1)")
    if match[2] is not None:
        offset = int(match[2])
        if offset >= _UINT64_LIMIT:
            raise PlaylistError(url, f"{what}: bad byte range {raw!r} (offset too large)")
    elif default_offset is None:
        raise PlaylistError(url, f"{what}: byte range {raw!r} has no offset and no previous sub-range")
    else:
        offset = default_offset
    return ByteRange(offset=offset, length=length)


def _key(raw: Mapping[str, Any], url: str) -> KeyInfo | None:
    method = _opt_str(raw, "method", "EXT-X-KEY", url)
    if method is None:
        raise PlaylistError(url, "EXT-X-KEY has no METHOD")
    if method not in KEY_METHODS:
        raise PlaylistError(url, f"unsupported EXT-X-KEY METHOD {method!r}")
    if method == "NONE":
        return None
    uri = _req_str(raw, "uri", f"EXT-X-KEY METHOD={method}", url)
    iv = _opt_str(raw, "iv", "EXT-X-KEY", url)
    if iv is not None and not _IV.fullmatch(iv):
        raise PlaylistError(url, f"EXT-X-KEY IV is not a 128-bit hexadecimal sequence: {iv!r}")
    return KeyInfo(
        method=method,
        url=_resolve(url, uri, "EXT-X-KEY"),
        # A shorter hexadecimal sequence is the same 128-bit integer: zero-padded on the left.
        iv=None if iv is None else int(iv[2:], 16).to_bytes(IV_BYTES, "big"),
        key_format=_opt_str(raw, "keyformat", "EXT-X-KEY", url),
    )


def _init_section(raw: Mapping[str, Any], url: str) -> InitSection:
    uri = _req_str(raw, "uri", "EXT-X-MAP", url)
    byte_range = _opt_str(raw, "byterange", "EXT-X-MAP", url)
    return InitSection(
        url=_resolve(url, uri, "EXT-X-MAP"),
        # An EXT-X-MAP range has no previous sub-range to continue from: a missing offset means 0.
        byte_range=None
        if byte_range is None
        else _byte_range(byte_range, "EXT-X-MAP", url, default_offset=0),
    )


def _parse_media(text: str, url: str, scan: _Scan, rendition: str) -> MediaPlaylist:
    master_tag = scan.first(_MASTER_TAGS)
    if master_tag is not None:
        raise PlaylistError(
            url, f"master playlist tag {master_tag.tag} in a media playlist (line {master_tag.lineno})"
        )
    infs, uris = _media_structure(scan, url)

    raw_target = _header_value(scan, "#EXT-X-TARGETDURATION", url)
    if raw_target is None:
        raise PlaylistError(url, "missing EXT-X-TARGETDURATION")
    if not _DECIMAL_INTEGER.fullmatch(raw_target) or not 0 < int(raw_target) < _UINT64_LIMIT:
        raise PlaylistError(url, f"invalid EXT-X-TARGETDURATION {raw_target!r} (need a positive integer)")
    target = int(raw_target)
    raw_sequence = _header_value(scan, "#EXT-X-MEDIA-SEQUENCE", url)
    media_sequence = (
        0 if raw_sequence is None else _decimal_integer(raw_sequence, "EXT-X-MEDIA-SEQUENCE", url)
    )
    raw_disc = _header_value(scan, "#EXT-X-DISCONTINUITY-SEQUENCE", url)
    disc_sequence = 0 if raw_disc is None else _decimal_integer(raw_disc, "EXT-X-DISCONTINUITY-SEQUENCE", url)
    playlist_type = _header_value(scan, "#EXT-X-PLAYLIST-TYPE", url)
    if playlist_type not in (None, "VOD", "EVENT"):
        raise PlaylistError(url, f"invalid EXT-X-PLAYLIST-TYPE {playlist_type!r}")
    end_list = "#EXT-X-ENDLIST" in scan.tags
    durations = [_duration(line, url) for line in infs]
    # Validated here, before m3u8 sees them, so that errors name their line.
    program_dates = _extrapolate_dates(_segment_dates(scan, url), durations, url)
    date_ranges = _date_ranges(scan, url)
    start_offset = _start_offset(scan, url)
    header = _low_latency_header(scan, url, target)
    if header.skipped is not None:
        # A delta playlist lists the segments after the skipped ones (RFC 8216bis §4.4.5.2).
        media_sequence += header.skipped.count
        if media_sequence + len(infs) > _UINT64_LIMIT:
            raise PlaylistError(url, "EXT-X-SKIP: SKIPPED-SEGMENTS takes the media sequence past 2^64-1")

    data = _m3u8_parse(_without_low_latency_tags(text), url)
    raw_segments = _dicts(data.get("segments"), "segment list", url)
    # m3u8 may append a URI-less "segment" for tags after the last segment (it did for trailing
    # LL-HLS parts, which it no longer sees); one with a duration means m3u8 and the scan disagree
    # about the structure.
    segment_dicts = [s for s in raw_segments if "uri" in s]
    leftovers = [s for s in raw_segments if "uri" not in s]
    if any("duration" in s for s in leftovers) or [s["uri"] for s in segment_dicts] != uris:
        raise PlaylistError(url, "malformed playlist (segment lines could not be matched to their tags)")
    # Validate every EXT-X-KEY / EXT-X-MAP, including ones that apply to no segment.
    for raw_key in _dicts([k for k in data.get("keys") or () if k is not None], "EXT-X-KEY", url):
        _key(raw_key, url)
    for raw_map in _dicts(list(data.get("segment_map") or ()), "EXT-X-MAP", url):
        _init_section(raw_map, url)

    segments: list[Segment] = []
    start = 0.0
    discontinuity = disc_sequence
    range_ends: dict[str, int] = {}  # absolute URL -> end of its last segment sub-range
    for index, (raw, duration) in enumerate(zip(segment_dicts, durations, strict=True)):
        sequence = media_sequence + index
        what = f"segment {sequence} (line {infs[index].lineno})"
        if duration > target + _TARGET_SLACK:
            raise PlaylistError(url, f"{what}: duration {duration:g}s exceeds EXT-X-TARGETDURATION {target}s")
        seg_url = _resolve(url, uris[index], what)
        if raw.get("discontinuity"):
            discontinuity += 1
        byte_range: ByteRange | None = None
        raw_range = _opt_str(raw, "byterange", what, url)
        if raw_range is not None:
            byte_range = _byte_range(raw_range, what, url, default_offset=range_ends.get(seg_url))
            range_ends[seg_url] = byte_range.end
        else:
            range_ends.pop(seg_url, None)
        seg_key = raw.get("key")
        seg_map = raw.get("init_section")
        segments.append(
            Segment(
                id=SegmentId(rendition, sequence),
                url=seg_url,
                duration=duration,
                start=start,
                byte_range=byte_range,
                init_section=_init_section(seg_map, url) if isinstance(seg_map, dict) and seg_map else None,
                key=_key(seg_key, url) if isinstance(seg_key, dict) and seg_key else None,
                discontinuity_sequence=discontinuity,
                # EXT-X-GAP (RFC 8216bis §4.4.4.7) applies to the next segment; m3u8 marks it.
                gap=raw.get("gap_tag") is True,
            )
        )
        start += duration

    if not segments and end_list:
        raise PlaylistError(url, "media playlist has no segments and is not live (EXT-X-ENDLIST)")
    if any(date is not None for date in program_dates):
        segments = [
            attrs.evolve(segment, program_date_time=date)
            for segment, date in zip(segments, program_dates, strict=True)
        ]
    segment_parts, pending_parts = _parts(
        scan,
        url,
        header.part_target,
        segments,
        infs,
        target=target,
        first=SegmentId(rendition, media_sequence),
    )
    if any(segment_parts):
        segments = [
            attrs.evolve(segment, parts=parts) if parts else segment
            for segment, parts in zip(segments, segment_parts, strict=True)
        ]
    return MediaPlaylist(
        url=url,
        rendition=rendition,
        target_duration=target,
        media_sequence=media_sequence,
        discontinuity_sequence=disc_sequence,
        segments=tuple(segments),
        end_list=end_list,
        playlist_type=playlist_type,
        date_ranges=date_ranges,
        start=start_offset,
        i_frames_only="#EXT-X-I-FRAMES-ONLY" in scan.tags,
        server_control=header.server_control,
        part_target=header.part_target,
        pending_parts=pending_parts,
        pending_discontinuity=_discontinuity_after_last_segment(scan),
        preload_hints=_preload_hints(scan, url),
        rendition_reports=_rendition_reports(scan, url),
        skipped=header.skipped,
    )


def _discontinuity_after_last_segment(scan: _Scan) -> bool:
    for line in reversed(scan.lines):
        if line.tag is None:  # the last segment's URI
            return False
        if line.tag == "#EXT-X-DISCONTINUITY":
            return True
    return False


def _escape_id_part(text: str) -> str:
    return text.replace("%", "%25").replace(":", "%3A")


def _rendition(raw: Mapping[str, Any], url: str, lineno: int) -> AlternateRendition:
    what = f"EXT-X-MEDIA (line {lineno})"
    media_type = _req_str(raw, "type", what, url)
    if media_type not in _MEDIA_TYPES:
        raise PlaylistError(url, f"{what}: unknown TYPE {media_type!r}")
    group_id = _req_str(raw, "group_id", what, url)
    name = _req_str(raw, "name", what, url)
    uri = _opt_str(raw, "uri", what, url)
    if media_type == "SUBTITLES" and uri is None:
        raise PlaylistError(url, f"{what}: a SUBTITLES rendition needs a URI")
    if media_type == "CLOSED-CAPTIONS" and uri is not None:
        raise PlaylistError(url, f"{what}: a CLOSED-CAPTIONS rendition must not have a URI")
    return AlternateRendition(
        type=media_type,
        group_id=group_id,
        name=name,
        rendition_id=f"{media_type[0].lower()}:{_escape_id_part(group_id)}:{_escape_id_part(name)}",
        url=None if uri is None else _resolve(url, uri, what),
        language=_opt_str(raw, "language", what, url),
        default=_yes_no(raw, "default", what, url),
        autoselect=_yes_no(raw, "autoselect", what, url),
        forced=_yes_no(raw, "forced", what, url),
        instream_id=_opt_str(raw, "instream_id", what, url),
        channels=_opt_str(raw, "channels", what, url),
    )


def _opt_int(info: Mapping[str, Any], key: str, what: str, url: str) -> int | None:
    value = info.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < _UINT64_LIMIT:
        raise PlaylistError(url, f"{what}: invalid {key.upper().replace('_', '-')} {value!r}")
    return value


def _variant(
    index: int, uri: str, raw: Mapping[str, Any], url: str, lineno: int, groups: set[tuple[str, str]]
) -> Variant:
    what = f"EXT-X-STREAM-INF (line {lineno})"
    info = raw.get("stream_info")
    if not isinstance(info, dict):
        raise PlaylistError(url, f"{what}: malformed attributes")
    bandwidth = _opt_int(info, "bandwidth", what, url)
    if bandwidth is None:
        raise PlaylistError(url, f"{what} has no BANDWIDTH")
    resolution: tuple[int, int] | None = None
    raw_resolution = _opt_str(info, "resolution", what, url)
    if raw_resolution is not None:
        match = _RESOLUTION.fullmatch(raw_resolution.strip().strip('"'))
        if match is None:
            raise PlaylistError(url, f"{what}: invalid RESOLUTION {raw_resolution!r}")
        resolution = (int(match[1]), int(match[2]))
    frame_rate = info.get("frame_rate")
    if frame_rate is not None and (
        not isinstance(frame_rate, float) or not math.isfinite(frame_rate) or frame_rate <= 0
    ):
        raise PlaylistError(url, f"{what}: invalid FRAME-RATE {frame_rate!r}")
    refs: dict[str, str | None] = {}
    for key, media_type in (
        ("audio", "AUDIO"),
        ("video", "VIDEO"),
        ("subtitles", "SUBTITLES"),
        ("closed_captions", "CLOSED-CAPTIONS"),
    ):
        group = _opt_str(info, key, what, url)
        if group is not None and key == "closed_captions":
            # m3u8 does not unquote CLOSED-CAPTIONS; the unquoted enumerated value NONE means "none".
            group = None if group == "NONE" else group.strip('"')
        if group is not None and (media_type, group) not in groups:
            raise PlaylistError(url, f"{what}: {media_type} group {group!r} has no EXT-X-MEDIA")
        refs[key] = group
    return Variant(
        index=index,
        rendition_id=f"v{index}",
        url=_resolve(url, uri, what),
        bandwidth=bandwidth,
        average_bandwidth=_opt_int(info, "average_bandwidth", what, url),
        resolution=resolution,
        codecs=_opt_str(info, "codecs", what, url),
        frame_rate=frame_rate,
        audio=refs["audio"],
        video=refs["video"],
        subtitles=refs["subtitles"],
        closed_captions=refs["closed_captions"],
    )


def _parse_master(text: str, url: str, scan: _Scan) -> MasterPlaylist:
    media_tag = scan.first(_MEDIA_TAGS)
    if media_tag is not None:
        raise PlaylistError(
            url, f"media playlist tag {media_tag.tag} in a master playlist (line {media_tag.lineno})"
        )
    uris = _master_structure(scan, url)
    if not uris:
        raise PlaylistError(url, "master playlist has no variants (no EXT-X-STREAM-INF)")
    # Before m3u8, so that errors name their line.
    start_offset = _start_offset(scan, url)
    i_frame_variants = _i_frame_variants(scan, url)

    data = _m3u8_parse(text, url)
    raw_variants = _dicts(data.get("playlists"), "variant list", url)
    if [v.get("uri") for v in raw_variants] != uris:
        raise PlaylistError(url, "malformed playlist (variant lines could not be matched to their tags)")
    raw_media = _dicts(data.get("media"), "EXT-X-MEDIA list", url)
    media_lines = scan.tags.get("#EXT-X-MEDIA", ())
    if len(raw_media) != len(media_lines):
        raise PlaylistError(url, "malformed playlist (EXT-X-MEDIA lines could not be parsed)")

    renditions = tuple(
        _rendition(raw, url, line.lineno) for raw, line in zip(raw_media, media_lines, strict=True)
    )
    seen: set[str] = set()
    for rendition in renditions:
        if rendition.rendition_id in seen:
            raise PlaylistError(
                url,
                f"duplicate EXT-X-MEDIA {rendition.type} {rendition.name!r} in group {rendition.group_id!r}",
            )
        seen.add(rendition.rendition_id)
    groups = {(r.type, r.group_id) for r in renditions}
    for i_frame in i_frame_variants:
        if i_frame.video is not None and ("VIDEO", i_frame.video) not in groups:
            lineno = scan.tags["#EXT-X-I-FRAME-STREAM-INF"][i_frame.index].lineno
            raise PlaylistError(
                url,
                f"line {lineno}: EXT-X-I-FRAME-STREAM-INF: VIDEO group {i_frame.video!r} has no EXT-X-MEDIA",
            )
    stream_lines = scan.tags["#EXT-X-STREAM-INF"]
    variants = tuple(
        _variant(index, uri, raw, url, line.lineno, groups)
        for index, (uri, raw, line) in enumerate(zip(uris, raw_variants, stream_lines, strict=True))
    )
    return MasterPlaylist(
        url=url,
        variants=variants,
        renditions=renditions,
        i_frame_variants=i_frame_variants,
        start=start_offset,
    )


# --------------------------------------------------------------------------------------------------
# Dates, date ranges, start offsets and I-frame variants (our own attribute-list parser: m3u8 drops
# or loosely converts these values)


def _attribute_list(line: _Line, what: str, url: str) -> dict[str, str]:
    """The attribute list of ``line`` as ``{name: raw value}``, values as written (quoted strings
    keep their quotes). Malformed lists and repeated names are errors."""
    text = (line.value or "").strip()
    attributes: dict[str, str] = {}
    position = 0
    while position < len(text):
        match = _ATTRIBUTE_PAIR.match(text, position)
        if match is None:
            raise PlaylistError(
                url, f"{what}: malformed attribute list at {text[position : position + 40]!r}"
            )
        name, value = match[1], match[2]
        if name in attributes:
            raise PlaylistError(url, f"{what}: attribute {name} appears twice")
        attributes[name] = value
        position = match.end()
        if position < len(text):
            if text[position] != "," or position + 1 == len(text):
                raise PlaylistError(
                    url, f"{what}: malformed attribute list at {text[position : position + 40]!r}"
                )
            position += 1
    return attributes


def _quoted_string(attributes: Mapping[str, str], name: str, what: str, url: str) -> str | None:
    value = attributes.get(name)
    if value is None:
        return None
    if len(value) < 2 or not value.startswith('"') or not value.endswith('"'):
        raise PlaylistError(url, f"{what}: {name} must be a quoted string, got {value!r}")
    return value[1:-1]


def _required_quoted(attributes: Mapping[str, str], name: str, what: str, url: str) -> str:
    value = _quoted_string(attributes, name, what, url)
    if not value:
        raise PlaylistError(url, f"{what} has no {name}")
    return value


def _decimal_float(
    attributes: Mapping[str, str], name: str, what: str, url: str, *, signed: bool
) -> float | None:
    raw = attributes.get(name)
    if raw is None:
        return None
    text = raw[1:] if signed and raw.startswith("-") else raw
    if not _UNSIGNED_DECIMAL.fullmatch(text) or not math.isfinite(float(raw)):
        kind = "a decimal number" if signed else "a non-negative decimal number"
        raise PlaylistError(url, f"{what}: {name} is not {kind}: {raw!r}")
    return float(raw)


def _attribute_yes_no(attributes: Mapping[str, str], name: str, what: str, url: str) -> bool:
    raw = attributes.get(name)
    if raw is None or raw == "NO":
        return False
    if raw == "YES":
        return True
    raise PlaylistError(url, f"{what}: {name} must be YES or NO, got {raw!r}")


def _date_time(raw: str, what: str, url: str) -> datetime:
    """An ISO 8601 date-time, timezone-aware. Without a zone the date is taken as UTC (RFC 8216
    only says it SHOULD have one); digits beyond microseconds are dropped."""
    match = _DATE_TIME.fullmatch(raw.strip())
    if match is None:
        raise PlaylistError(url, f"{what}: not an ISO 8601 date-time: {raw[:40]!r}")
    year, month, day, hour, minute, second = (int(match[i]) for i in range(1, 7))
    microsecond = int((match[7] or "").ljust(6, "0")[:6])
    zone = match[8]
    tz = UTC
    if zone and zone not in "Zz":
        digits = zone[1:].replace(":", "")
        hours, minutes = int(digits[:2]), int(digits[2:] or "0")
        if hours > 23 or minutes > 59:
            raise PlaylistError(url, f"{what}: bad time zone offset in {raw[:40]!r}")
        sign = -1 if zone[0] == "-" else 1
        tz = timezone(sign * timedelta(hours=hours, minutes=minutes))
    try:
        value = datetime(year, month, day, hour, minute, second, microsecond, tzinfo=tz)
    except ValueError as exc:  # month 13, February 30, hour 24, ...
        raise PlaylistError(url, f"{what}: invalid date-time {raw[:40]!r} ({exc})") from exc
    try:
        value.astimezone(UTC)  # comparing dates converts them to UTC: 0001-01-01T00:00+01:00 cannot be
    except OverflowError as exc:
        raise PlaylistError(url, f"{what}: date-time {raw[:40]!r} is out of range in UTC") from exc
    return value


def _segment_dates(scan: _Scan, url: str) -> list[datetime | None]:
    """The EXT-X-PROGRAM-DATE-TIME given for each segment, in segment order (None: no tag)."""
    dates: list[datetime | None] = []
    pending: datetime | None = None
    for line in scan.lines:
        if line.tag is None:
            dates.append(pending)
            pending = None
        elif line.tag == "#EXT-X-PROGRAM-DATE-TIME":
            pending = _date_time(line.value or "", f"line {line.lineno}: EXT-X-PROGRAM-DATE-TIME", url)
    return dates


def _extrapolate_dates(
    given: list[datetime | None], durations: list[float], url: str
) -> list[datetime | None]:
    """Every segment's program date-time (RFC 8216 §4.3.2.6): a segment without a tag follows the
    previous one (its date plus its duration), segments before the first tag count back from it,
    and each tag (after a discontinuity, say) takes over from there. All None without any tag."""
    first = next((index for index, date in enumerate(given) if date is not None), None)
    if first is None:
        return list(given)
    try:
        return _extrapolated(given, durations, first)
    except OverflowError as exc:  # 9999-12-31T23:59:59Z followed by another segment
        raise PlaylistError(url, "EXT-X-PROGRAM-DATE-TIME: extrapolated dates leave years 1 to 9999") from exc


def _extrapolated(given: list[datetime | None], durations: list[float], first: int) -> list[datetime | None]:
    dates = list(given)
    for index in range(first + 1, len(dates)):
        previous = dates[index - 1]
        if dates[index] is None and previous is not None:
            dates[index] = previous + timedelta(seconds=durations[index - 1])
    for index in range(first - 1, -1, -1):
        following = dates[index + 1]
        assert following is not None
        dates[index] = following - timedelta(seconds=durations[index])
    return dates


_DATERANGE_KNOWN = frozenset(
    {"ID", "CLASS", "START-DATE", "END-DATE", "DURATION", "PLANNED-DURATION", "END-ON-NEXT"}
)


def _date_ranges(scan: _Scan, url: str) -> tuple[DateRange, ...]:
    """The playlist's EXT-X-DATERANGE tags (RFC 8216 §4.3.2.7), tags with the same ID merged."""
    lines = scan.tags.get("#EXT-X-DATERANGE", ())
    if not lines:
        return ()
    merged: dict[str, tuple[int, dict[str, str]]] = {}  # ID -> (first line, attributes)
    for line in lines:
        what = f"line {line.lineno}: EXT-X-DATERANGE"
        attributes = _attribute_list(line, what, url)
        range_id = _required_quoted(attributes, "ID", what, url)
        first_line, known = merged.setdefault(range_id, (line.lineno, {}))
        for name, value in attributes.items():
            if known.get(name, value) != value:
                raise PlaylistError(
                    url,
                    f"{what}: ID {range_id!r} has {name}={value} here but {known[name]} on line {first_line}",
                )
            known[name] = value
    if "#EXT-X-PROGRAM-DATE-TIME" not in scan.tags:
        raise PlaylistError(
            url, f"line {lines[0].lineno}: EXT-X-DATERANGE in a playlist without EXT-X-PROGRAM-DATE-TIME"
        )
    return tuple(
        _date_range(range_id, first, attributes, url) for range_id, (first, attributes) in merged.items()
    )


def _date_range(range_id: str, lineno: int, attributes: Mapping[str, str], url: str) -> DateRange:
    what = f"line {lineno}: EXT-X-DATERANGE {range_id!r}"
    raw_start = _quoted_string(attributes, "START-DATE", what, url)
    if raw_start is None:
        raise PlaylistError(url, f"{what} has no START-DATE")
    start = _date_time(raw_start, f"{what} START-DATE", url)
    raw_end = _quoted_string(attributes, "END-DATE", what, url)
    end = None if raw_end is None else _date_time(raw_end, f"{what} END-DATE", url)
    if end is not None and end < start:
        raise PlaylistError(url, f"{what}: END-DATE {raw_end} is before START-DATE {raw_start}")
    duration = _decimal_float(attributes, "DURATION", what, url, signed=False)
    try:
        if duration is not None:
            start + timedelta(seconds=duration)  # known_end must be computable
    except OverflowError as exc:
        raise PlaylistError(url, f"{what}: START-DATE + DURATION is past year 9999") from exc
    if (
        end is not None
        and duration is not None
        and abs((end - start).total_seconds() - duration) > _DATE_SLACK
    ):
        raise PlaylistError(url, f"{what}: END-DATE is not START-DATE + DURATION ({duration:g} s)")
    class_name = _quoted_string(attributes, "CLASS", what, url)
    end_on_next = attributes.get("END-ON-NEXT")
    if end_on_next is not None:
        if end_on_next != "YES":
            raise PlaylistError(url, f"{what}: END-ON-NEXT must be YES, got {end_on_next!r}")
        if class_name is None:
            raise PlaylistError(url, f"{what}: END-ON-NEXT needs a CLASS")
        if end is not None or duration is not None:
            raise PlaylistError(url, f"{what}: END-ON-NEXT with END-DATE or DURATION")
    scte35: dict[str, str | None] = {}
    for name in ("SCTE35-CMD", "SCTE35-OUT", "SCTE35-IN"):
        raw = attributes.get(name)
        if raw is not None and not _HEX_SEQUENCE.fullmatch(raw):
            raise PlaylistError(url, f"{what}: {name} is not a hexadecimal sequence: {raw[:40]!r}")
        scte35[name] = raw
    # Other attributes (CUE and later additions) are ignored, as RFC 8216 §6.3.1 tells clients to.
    return DateRange(
        id=range_id,
        start_date=start,
        class_name=class_name,
        end_date=end,
        duration=duration,
        planned_duration=_decimal_float(attributes, "PLANNED-DURATION", what, url, signed=False),
        end_on_next=end_on_next is not None,
        scte35_cmd=scte35["SCTE35-CMD"],
        scte35_out=scte35["SCTE35-OUT"],
        scte35_in=scte35["SCTE35-IN"],
        client_attributes={name: value for name, value in attributes.items() if name.startswith("X-")},
    )


def _start_offset(scan: _Scan, url: str) -> StartOffset | None:
    lines = scan.tags.get("#EXT-X-START", ())
    if not lines:
        return None
    if len(lines) > 1:
        raise PlaylistError(url, f"line {lines[1].lineno}: EXT-X-START appears more than once")
    what = f"line {lines[0].lineno}: EXT-X-START"
    attributes = _attribute_list(lines[0], what, url)
    offset = _decimal_float(attributes, "TIME-OFFSET", what, url, signed=True)
    if offset is None:
        raise PlaylistError(url, f"{what} has no TIME-OFFSET")
    return StartOffset(time_offset=offset, precise=_attribute_yes_no(attributes, "PRECISE", what, url))


def _i_frame_variants(scan: _Scan, url: str) -> tuple[IFrameVariant, ...]:
    """The master's EXT-X-I-FRAME-STREAM-INF entries (their VIDEO groups are checked by the caller)."""
    variants: list[IFrameVariant] = []
    for index, line in enumerate(scan.tags.get("#EXT-X-I-FRAME-STREAM-INF", ())):
        what = f"line {line.lineno}: EXT-X-I-FRAME-STREAM-INF"
        attributes = _attribute_list(line, what, url)
        raw_bandwidth = attributes.get("BANDWIDTH")
        if raw_bandwidth is None:
            raise PlaylistError(url, f"{what} has no BANDWIDTH")
        raw_average = attributes.get("AVERAGE-BANDWIDTH")
        resolution: tuple[int, int] | None = None
        raw_resolution = attributes.get("RESOLUTION")
        if raw_resolution is not None:
            match = _RESOLUTION.fullmatch(raw_resolution)
            if match is None:
                raise PlaylistError(url, f"{what}: invalid RESOLUTION {raw_resolution!r}")
            resolution = (int(match[1]), int(match[2]))
        video = _quoted_string(attributes, "VIDEO", what, url)
        variants.append(
            IFrameVariant(
                index=index,
                rendition_id=f"i{index}",
                url=_resolve(url, _required_quoted(attributes, "URI", what, url), what),
                bandwidth=_decimal_integer(raw_bandwidth, f"{what} BANDWIDTH", url),
                average_bandwidth=None
                if raw_average is None
                else _decimal_integer(raw_average, f"{what} AVERAGE-BANDWIDTH", url),
                codecs=_quoted_string(attributes, "CODECS", what, url),
                resolution=resolution,
                video=video,
            )
        )
    return tuple(variants)


# --------------------------------------------------------------------------------------------------
# LL-HLS (RFC 8216bis): server control, parts, preload hints, rendition reports, delta updates.
# Read by our own attribute-list parser, so every malformed value names its line; m3u8 never sees
# these tags (:func:`_without_low_latency_tags`).


class _LowLatencyHeader(NamedTuple):
    server_control: ServerControl | None
    part_target: float | None
    skipped: SkippedSegments | None


def _without_low_latency_tags(text: str) -> str:
    """``text`` without its LL-HLS tag lines, for m3u8 (it would misplace or loosely convert them)."""
    if not any(tag in text for tag in _LOW_LATENCY_TAG_LINES):
        return text  # the common case, without splitting the text
    return "\n".join(
        line for line in text.splitlines() if line.strip().partition(":")[0] not in _LOW_LATENCY_TAG_LINES
    )


def _single_line(scan: _Scan, tag: str, url: str) -> _Line | None:
    """The one line of a tag that may appear at most once."""
    lines = scan.tags.get(tag, ())
    if len(lines) > 1:
        raise PlaylistError(url, f"line {lines[1].lineno}: {tag[1:]} appears more than once")
    return lines[0] if lines else None


def _low_latency_header(scan: _Scan, url: str, target: int) -> _LowLatencyHeader:
    """EXT-X-SERVER-CONTROL, EXT-X-PART-INF and EXT-X-SKIP, checked against each other and against
    the target duration (``target``, seconds) as RFC 8216bis §4.4.3.7, §4.4.3.8 and §4.4.5.2 say."""
    server_control: ServerControl | None = None
    control_line = _single_line(scan, "#EXT-X-SERVER-CONTROL", url)
    if control_line is not None:
        what = f"line {control_line.lineno}: EXT-X-SERVER-CONTROL"
        attributes = _attribute_list(control_line, what, url)
        can_skip_until = _decimal_float(attributes, "CAN-SKIP-UNTIL", what, url, signed=False)
        hold_back = _decimal_float(attributes, "HOLD-BACK", what, url, signed=False)
        # RFC 8216bis wants CAN-SKIP-UNTIL >= 6 and HOLD-BACK >= 3 target durations, PART-HOLD-BACK
        # >= 2 PART-TARGET, yet its own example skips at 3: a smaller value still plays, so it is
        # taken as written, not refused (refusing a stream other players play helps nobody).
        can_skip_dateranges = _attribute_yes_no(attributes, "CAN-SKIP-DATERANGES", what, url)
        if can_skip_dateranges and can_skip_until is None:
            raise PlaylistError(url, f"{what}: CAN-SKIP-DATERANGES=YES without CAN-SKIP-UNTIL")
        server_control = ServerControl(
            can_block_reload=_attribute_yes_no(attributes, "CAN-BLOCK-RELOAD", what, url),
            can_skip_until=can_skip_until,
            can_skip_dateranges=can_skip_dateranges,
            hold_back=hold_back,
            part_hold_back=_decimal_float(attributes, "PART-HOLD-BACK", what, url, signed=False),
        )

    part_target: float | None = None
    part_inf = _single_line(scan, "#EXT-X-PART-INF", url)
    if part_inf is not None:
        what = f"line {part_inf.lineno}: EXT-X-PART-INF"
        part_target = _decimal_float(
            _attribute_list(part_inf, what, url), "PART-TARGET", what, url, signed=False
        )
        if part_target is None:
            raise PlaylistError(url, f"{what} has no PART-TARGET")
        if part_target <= 0:
            raise PlaylistError(url, f"{what}: PART-TARGET must be > 0 seconds, got {part_target:g}")
        # RFC 8216bis §4.4.3.8 requires PART-HOLD-BACK with parts; without it the client starts
        # three part targets from the end (hls_low_latency.low_latency_start), as hls.js does.

    skipped: SkippedSegments | None = None
    skip_line = _single_line(scan, "#EXT-X-SKIP", url)
    if skip_line is not None:
        what = f"line {skip_line.lineno}: EXT-X-SKIP"
        if server_control is None or server_control.can_skip_until is None:
            raise PlaylistError(url, f"{what} in a playlist whose EXT-X-SERVER-CONTROL has no CAN-SKIP-UNTIL")
        first_uri = next((line for line in scan.lines if line.tag is None), None)
        if first_uri is not None and first_uri.lineno < skip_line.lineno:
            raise PlaylistError(url, f"{what} after a segment (line {first_uri.lineno}): it must come first")
        attributes = _attribute_list(skip_line, what, url)
        removed = _quoted_string(attributes, "RECENTLY-REMOVED-DATERANGES", what, url)
        skipped = SkippedSegments(
            count=_decimal_integer(attributes.get("SKIPPED-SEGMENTS"), f"{what} SKIPPED-SEGMENTS", url),
            # A tab-separated list of EXT-X-DATERANGE IDs (RFC 8216bis §4.4.5.2).
            recently_removed_dateranges=tuple(i for i in (removed or "").split("\t") if i),
        )
    return _LowLatencyHeader(server_control, part_target, skipped)


def _part(line: _Line, url: str, part_id: PartId, part_target: float, range_ends: dict[str, int]) -> Part:
    """One EXT-X-PART. ``range_ends`` maps each URL to the end of its last part sub-range, for a
    BYTERANGE without offset (updated here)."""
    what = f"line {line.lineno}: EXT-X-PART"
    attributes = _attribute_list(line, what, url)
    part_url = _resolve(url, _required_quoted(attributes, "URI", what, url), what)
    duration = _decimal_float(attributes, "DURATION", what, url, signed=False)
    if duration is None:
        raise PlaylistError(url, f"{what} has no DURATION")
    # RFC 8216bis §4.4.4.9: no part is longer than the Part Target Duration. Unlike EXTINF against
    # an integer target, both are written as decimals, so they are compared as written, no slack.
    if duration > part_target:
        raise PlaylistError(url, f"{what}: DURATION {duration:g}s exceeds PART-TARGET {part_target:g}s")
    byte_range: ByteRange | None = None
    raw_range = _quoted_string(attributes, "BYTERANGE", what, url)
    if raw_range is not None:
        # Without an offset the range follows the previous part's sub-range of the same URI.
        byte_range = _byte_range(raw_range, what, url, default_offset=range_ends.get(part_url))
        range_ends[part_url] = byte_range.end
    else:
        range_ends.pop(part_url, None)
    return Part(
        id=part_id,
        url=part_url,
        duration=duration,
        byte_range=byte_range,
        independent=_attribute_yes_no(attributes, "INDEPENDENT", what, url),
        gap=_attribute_yes_no(attributes, "GAP", what, url),
    )


def _parts(
    scan: _Scan,
    url: str,
    part_target: float | None,
    segments: list[Segment],
    infs: list[_Line],
    *,
    target: int,
    first: SegmentId,
) -> tuple[list[tuple[Part, ...]], tuple[Part, ...]]:
    """Each segment's parts (the EXT-X-PART tags between the previous segment's URI and its own)
    and the pending parts after the last segment, which belong to the next media sequence number.
    ``first`` is the id of the playlist's first (listed) segment."""
    part_lines = scan.tags.get("#EXT-X-PART", ())
    if not part_lines:
        return [() for _ in segments], ()
    if part_target is None:
        raise PlaylistError(url, f"line {part_lines[0].lineno}: EXT-X-PART without EXT-X-PART-INF")
    grouped: list[list[Part]] = [[]]
    range_ends: dict[str, int] = {}
    for line in scan.lines:
        if line.tag is None:
            grouped.append([])
        elif line.tag == "#EXT-X-PART":
            parent = SegmentId(first.rendition, first.sequence + len(grouped) - 1)
            grouped[-1].append(_part(line, url, PartId(parent, len(grouped[-1])), part_target, range_ends))
    pending_parts = tuple(grouped.pop())
    segment_parts = [tuple(parts) for parts in grouped]
    first_with_parts = next((i for i, parts in enumerate(segment_parts) if parts), None)
    for position, parts in enumerate(segment_parts):
        if not parts:
            continue
        segment = segments[position]
        total = math.fsum(part.duration for part in parts)
        if abs(total - segment.duration) <= _PART_SUM_SLACK * part_target:
            continue
        if position == first_with_parts and total < segment.duration:
            # The server is removing this old segment's parts from the front (RFC 8216bis lets it
            # drop parts more than three target durations from the end): the indices of the ones
            # left are unknown, so the segment is kept whole, without parts.
            segment_parts[position] = ()
            continue
        raise PlaylistError(
            url,
            f"segment {segment.id.sequence} (line {infs[position].lineno}): its {len(parts)} parts last "
            f"{total:g}s but its EXTINF says {segment.duration:g}s",
        )
    pending_total = math.fsum(part.duration for part in pending_parts)
    if pending_total > target + _TARGET_SLACK:
        raise PlaylistError(
            url,
            f"the parts after the last segment last {pending_total:g}s, more than "
            f"EXT-X-TARGETDURATION {target}s",
        )
    return segment_parts, pending_parts


_PRELOAD_HINT_TYPES: tuple[PreloadHintType, ...] = ("PART", "MAP")


def _preload_hints(scan: _Scan, url: str) -> tuple[PreloadHint, ...]:
    """The EXT-X-PRELOAD-HINT tags (RFC 8216bis §4.4.5.3): at most one of each TYPE."""
    hints: list[PreloadHint] = []
    for line in scan.tags.get("#EXT-X-PRELOAD-HINT", ()):
        what = f"line {line.lineno}: EXT-X-PRELOAD-HINT"
        attributes = _attribute_list(line, what, url)
        hint_type = next((t for t in _PRELOAD_HINT_TYPES if t == attributes.get("TYPE")), None)
        if hint_type is None:
            raise PlaylistError(url, f"{what}: TYPE must be PART or MAP, got {attributes.get('TYPE')!r}")
        if any(hint.type == hint_type for hint in hints):
            raise PlaylistError(url, f"{what}: a second preload hint of TYPE={hint_type}")
        raw_start = attributes.get("BYTERANGE-START")
        raw_length = attributes.get("BYTERANGE-LENGTH")
        length = None if raw_length is None else _decimal_integer(raw_length, f"{what} BYTERANGE-LENGTH", url)
        if length == 0:
            raise PlaylistError(url, f"{what}: BYTERANGE-LENGTH must be > 0 bytes")
        hints.append(
            PreloadHint(
                type=hint_type,
                url=_resolve(url, _required_quoted(attributes, "URI", what, url), what),
                byte_range_start=0
                if raw_start is None
                else _decimal_integer(raw_start, f"{what} BYTERANGE-START", url),
                byte_range_length=length,
            )
        )
    return tuple(hints)


def _rendition_reports(scan: _Scan, url: str) -> tuple[RenditionReport, ...]:
    """The EXT-X-RENDITION-REPORT tags (RFC 8216bis §4.4.5.4), their URIs resolved."""
    reports: list[RenditionReport] = []
    for line in scan.tags.get("#EXT-X-RENDITION-REPORT", ()):
        what = f"line {line.lineno}: EXT-X-RENDITION-REPORT"
        attributes = _attribute_list(line, what, url)
        raw_msn = attributes.get("LAST-MSN")
        raw_part = attributes.get("LAST-PART")
        reports.append(
            RenditionReport(
                url=_resolve(url, _required_quoted(attributes, "URI", what, url), what),
                last_msn=None if raw_msn is None else _decimal_integer(raw_msn, f"{what} LAST-MSN", url),
                last_part=None if raw_part is None else _decimal_integer(raw_part, f"{what} LAST-PART", url),
            )
        )
    return tuple(reports)


@attrs.frozen(kw_only=True)
class StartPoint:
    """Where playback starts: the first segment to load and the position (seconds on the
    playlist's timeline) to start playing from, inside that segment."""

    segment: Segment
    position: float


def choose_start(
    playlist: MediaPlaylist, *, start: StartOffset | None = None, live_start_distance: int = 3
) -> StartPoint:
    """Where a player starts ``playlist``.

    With ``start`` (an EXT-X-START tag; pass the media playlist's, else the master's), the segment
    containing its TIME-OFFSET, counted from the start of the playlist (positive) or from the end of
    its last segment (negative); an offset beyond the playlist means its end or its beginning
    (RFC 8216 §4.3.5.2). With PRECISE=YES the position is the offset itself, otherwise the start of
    that segment. Without ``start``: the first segment of a VOD playlist, and the segment
    ``live_start_distance`` segments from the live edge of a live one. Raises
    :class:`~p2ploader.errors.UsageError` for a playlist without segments.
    """
    segments = playlist.segments
    if not segments:
        raise UsageError("the playlist has no segments yet")
    if start is None:
        live_edge = segments[max(0, len(segments) - live_start_distance)]
        segment = live_edge if playlist.is_live else segments[0]
        return StartPoint(segment=segment, position=segment.start)
    total = playlist.total_duration
    offset = start.time_offset
    point = min(max(offset if offset >= 0 else total + offset, 0.0), total)
    elapsed = 0.0
    for segment in segments:
        if elapsed + segment.duration > point or segment is segments[-1]:
            into = min(max(point - elapsed, 0.0), segment.duration) if start.precise else 0.0
            return StartPoint(segment=segment, position=segment.start + into)
        elapsed += segment.duration
    raise AssertionError("unreachable: the loop returns at the last segment")  # pragma: no cover


# --------------------------------------------------------------------------------------------------
# Public parsing API


def parse_master(text: str, url: str) -> MasterPlaylist:
    """Parse a master playlist fetched from ``url``. Raises :class:`PlaylistError` if it is malformed,
    is a media playlist, or has no variants."""
    text, scan = _scan(text, url)
    return _parse_master(text, url, scan)


def parse_media(text: str, url: str, *, rendition: str) -> MediaPlaylist:
    """Parse the media playlist of ``rendition`` fetched from ``url``. Raises :class:`PlaylistError`
    if it is malformed or is a master playlist."""
    if not rendition:
        raise UsageError("rendition must be a non-empty string")
    text, scan = _scan(text, url)
    return _parse_media(text, url, scan, rendition)


def parse_playlist(text: str, url: str) -> MasterPlaylist:
    """Parse either kind of playlist. A media playlist is fully validated and wrapped in a synthetic
    master (``is_synthetic=True``) with one variant ``"v0"`` whose URL is ``url`` itself."""
    text, scan = _scan(text, url)
    master_tag = scan.first(_MASTER_TAGS)
    media_tag = scan.first(_MEDIA_TAGS)
    if master_tag is not None and media_tag is not None:
        raise PlaylistError(
            url,
            f"mixes master tag {master_tag.tag} (line {master_tag.lineno}) "
            f"and media tag {media_tag.tag} (line {media_tag.lineno})",
        )
    if master_tag is not None:
        return _parse_master(text, url, scan)
    if media_tag is None:
        raise PlaylistError(url, "neither a master playlist (no EXT-X-STREAM-INF) nor a media playlist")
    media = _parse_media(text, url, scan, "v0")
    variant = Variant(index=0, rendition_id="v0", url=media.url, bandwidth=0)
    return MasterPlaylist(url=url, variants=(variant,), is_synthetic=True)


# --------------------------------------------------------------------------------------------------
# Live tracking


def _same_content(a: MediaPlaylist, b: MediaPlaylist) -> bool:
    return (
        a.media_sequence == b.media_sequence
        and a.discontinuity_sequence == b.discontinuity_sequence
        and a.target_duration == b.target_duration
        and a.end_list == b.end_list
        and a.playlist_type == b.playlist_type
        and a.segments == b.segments
        and a.date_ranges == b.date_ranges
        and a.start == b.start
        # LL-HLS: a refresh that only publishes another part (or moves its hints) is news.
        and a.pending_parts == b.pending_parts
        and a.preload_hints == b.preload_hints
        and a.rendition_reports == b.rendition_reports
        and a.server_control == b.server_control
        and a.part_target == b.part_target
    )


def _published(playlist: MediaPlaylist) -> tuple[int, int]:
    """How far a playlist has published, comparable across refreshes: (the next media sequence
    number after the last complete segment, the number of its parts published so far)."""
    return (playlist.last_sequence + 1, len(playlist.pending_parts))


def _with_parts_from(known: Segment, fresh: Segment) -> Segment:
    """A segment already seen keeps its parts when a refresh stops listing them (the server drops
    the parts of older segments), and takes the refresh's when it lists them."""
    if not fresh.parts or fresh.parts == known.parts:
        return known
    return attrs.evolve(known, parts=fresh.parts)


def _all_parts(playlist: MediaPlaylist) -> Iterable[Part]:
    """Every part of ``playlist`` in play order: its segments' parts, then the pending ones."""
    for segment in playlist.segments:
        yield from segment.parts
    yield from playlist.pending_parts


def _check_parts_unchanged(old: MediaPlaylist, new: MediaPlaylist) -> None:
    """A part already seen keeps its URL and byte range (peers and caches know it by its id), as a
    segment does; otherwise the playlist went backwards or was replaced."""
    known = {part.id: part for part in _all_parts(old)}
    if not known:
        return
    for fresh in _all_parts(new):
        part = known.get(fresh.id)
        if part is not None and (part.url, part.byte_range) != (fresh.url, fresh.byte_range):
            raise PlaylistError(
                new.url,
                f"playlist went backwards or was replaced: part {fresh.id} was {part.url}, now {fresh.url}",
            )


def _merge_delta(delta: MediaPlaylist, previous: MediaPlaylist) -> MediaPlaylist:
    """The full playlist a delta update (EXT-X-SKIP) stands for: its skipped segments, the oldest
    ``skipped.count`` ones, taken from ``previous`` (the last full playlist, as parsed), then the
    listed ones, on ``previous``'s timeline and discontinuity numbering; the date ranges the server
    left out are ``previous``'s, less the RECENTLY-REMOVED-DATERANGES. Raises
    :class:`DeltaPlaylistError` when ``previous`` does not hold every skipped segment."""
    skip = delta.skipped
    assert skip is not None
    first = delta.media_sequence - skip.count
    if skip.count and (first < previous.first_sequence or delta.media_sequence - 1 > previous.last_sequence):
        raise DeltaPlaylistError(
            delta.url,
            f"delta update skips segments {first} to {delta.media_sequence - 1} but only "
            f"{previous.first_sequence} to {previous.last_sequence} are known: reload without _HLS_skip",
        )
    skipped = previous.segments[
        first - previous.media_sequence : delta.media_sequence - previous.media_sequence
    ]
    listed: tuple[Segment, ...] = delta.segments
    if skipped:
        # The delta numbers its discontinuities from its EXT-X-DISCONTINUITY-SEQUENCE, which is the
        # first skipped segment's, so the listed segments miss those among the skipped ones.
        shift = skipped[-1].discontinuity_sequence - delta.discontinuity_sequence
        listed = tuple(
            attrs.evolve(segment, discontinuity_sequence=segment.discontinuity_sequence + shift)
            for segment in listed
        )
    # As the full playlist parses: start times summed from 0 at its first segment, in order, and
    # no parts on the skipped segments (a server skips only segments older than CAN-SKIP-UNTIL, at
    # least six target durations, and lists parts only within about three of the end).
    merged: list[Segment] = []
    start = 0.0
    for segment in (*(attrs.evolve(s, parts=()) if s.parts else s for s in skipped), *listed):
        merged.append(segment if segment.start == start else attrs.evolve(segment, start=start))
        start += segment.duration
    removed = set(skip.recently_removed_dateranges)
    listed_ids = {date_range.id for date_range in delta.date_ranges}
    date_ranges = (
        *(r for r in previous.date_ranges if r.id not in removed and r.id not in listed_ids),
        *delta.date_ranges,
    )
    return attrs.evolve(
        delta,
        media_sequence=first,
        segments=tuple(merged),
        date_ranges=tuple(r for r in date_ranges if r.id not in removed),
        skipped=None,
    )


def _with_date_from(known: Segment, fresh: Segment) -> Segment:
    """A segment already seen keeps its program date-time; it gets one if it had none."""
    if known.program_date_time is not None or fresh.program_date_time is None:
        return known
    return attrs.evolve(known, program_date_time=fresh.program_date_time)


def _with_gap_from(known: Segment, fresh: Segment) -> Segment:
    """A segment already seen becomes a gap when a refresh marks it so (and stops being one when
    the server takes the mark back)."""
    return known if known.gap == fresh.gap else attrs.evolve(known, gap=fresh.gap)


def _following_date(segment: Segment, previous: Segment | None) -> datetime | None:
    """A new segment's program date-time: what its refresh says (given or extrapolated), else, when
    the refresh has no tag left, the previous segment's date plus its duration."""
    if segment.program_date_time is not None:
        return segment.program_date_time
    if previous is None or previous.program_date_time is None:
        return None
    try:
        return previous.program_date_time + timedelta(seconds=previous.duration)
    except OverflowError:  # dated up to year 9999: the new segment cannot be dated
        return None


def _live_date_ranges(
    old: tuple[DateRange, ...], new: tuple[DateRange, ...], segments: tuple[Segment, ...]
) -> tuple[DateRange, ...]:
    """The date ranges of a live playlist after a refresh: every range the refresh lists (its
    version wins over an earlier one with the same ID), plus the earlier ones that still overlap the
    window, i.e. whose end (END-DATE, or START-DATE + DURATION, or START-DATE when the end is not
    known) is not before the window's first program date-time."""
    listed = {date_range.id: date_range for date_range in new}
    window_start = segments[0].program_date_time if segments else None
    kept: list[DateRange] = []
    for date_range in old:
        if date_range.id in listed:
            kept.append(listed.pop(date_range.id))
        elif window_start is not None and (date_range.known_end or date_range.start_date) >= window_start:
            kept.append(date_range)
    return (*kept, *listed.values())


class LivePlaylistTracker:
    """Follows one live media playlist across refreshes (sans-IO: the caller fetches and parses).

    :attr:`current` is the last good playlist, with segment ``start`` times on one continuous timeline:
    a segment keeps the start it had when first seen, new segments continue from the end of the last
    known one, and after a jump ahead each skipped segment is assumed to last ``target_duration``.
    New segments' ``discontinuity_sequence`` is rebased onto the numbering already handed out (as
    hls.js does), so a server that forgets EXT-X-DISCONTINUITY-SEQUENCE still yields a monotonic count.
    A segment keeps the ``program_date_time`` it had when first seen; a new one takes its refresh's,
    or follows the previous segment when the refresh has no date tag left. ``date_ranges`` keeps the
    ranges the refresh lists plus the earlier ones that still overlap the window (see
    :func:`_live_date_ranges`). LL-HLS: a delta update is merged with the previous playlist first
    (:func:`_merge_delta`), so :attr:`current` always lists every segment and has ``skipped=None``;
    a segment keeps its parts when the server stops listing them; a refresh that only publishes
    more parts is a change, and one with fewer parts of the same segment went backwards.
    """

    def __init__(self, first: MediaPlaylist) -> None:
        if first.skipped is not None:
            raise DeltaPlaylistError(
                first.url, "a delta update (EXT-X-SKIP) cannot start tracking: load it in full"
            )
        self._current = first
        self._last_raw = first
        self._timeline_end = first.segments[-1].end if first.segments else 0.0

    @property
    def current(self) -> MediaPlaylist:
        """The last good playlist, on the tracker's continuous timeline."""
        return self._current

    def update(self, new: MediaPlaylist) -> PlaylistUpdate:
        """Fold a freshly parsed refresh into :attr:`current` and report what changed.

        Raises :class:`PlaylistError` (leaving :attr:`current` untouched) if ``new`` is for another
        rendition, went backwards (lower media sequence, lost segments or parts at the live edge,
        or a known sequence number or part now names another URI) or changed after EXT-X-ENDLIST. A delta
        update (``new.skipped``) is first merged with the previous playlist; one that skips
        segments the tracker does not have raises :class:`DeltaPlaylistError` (reload the full
        playlist).
        """
        old = self._current
        if new.rendition != old.rendition:
            raise PlaylistError(
                new.url, f"rendition mismatch: tracking {old.rendition!r}, got {new.rendition!r}"
            )
        removed_ranges: frozenset[str] = frozenset()
        if new.skipped is not None:
            removed_ranges = frozenset(new.skipped.recently_removed_dateranges)
            new = _merge_delta(new, self._last_raw)
        if _same_content(new, self._last_raw):
            return PlaylistUpdate(unchanged=True)
        if old.end_list:
            raise PlaylistError(new.url, "playlist changed after EXT-X-ENDLIST")
        if new.first_sequence < old.first_sequence:
            raise PlaylistError(
                new.url,
                f"playlist went backwards: EXT-X-MEDIA-SEQUENCE {new.first_sequence} "
                f"< {old.first_sequence} seen before",
            )
        if new.last_sequence < old.last_sequence:
            raise PlaylistError(
                new.url,
                f"playlist went backwards: it ends at segment {new.last_sequence} "
                f"but segment {old.last_sequence} was seen before",
            )
        if _published(new) < _published(old):
            raise PlaylistError(
                new.url,
                f"playlist went backwards: it has {len(new.pending_parts)} parts of segment "
                f"{new.last_sequence + 1} but {len(old.pending_parts)} were seen before",
            )
        overlap_end = min(old.last_sequence, new.last_sequence)
        for sequence in range(new.first_sequence, overlap_end + 1):
            known = old.segments[sequence - old.media_sequence]  # both windows cover the overlap
            fresh = new.segments[sequence - new.media_sequence]
            if (known.url, known.byte_range) != (fresh.url, fresh.byte_range):
                raise PlaylistError(
                    new.url,
                    f"playlist went backwards or was replaced: segment {sequence} was {known.url}, "
                    f"now {fresh.url}",
                )
        _check_parts_unchanged(old, new)

        # Known segments keep their start and date, except that a segment the server has since
        # marked EXT-X-GAP (its media lost, e.g. after an encoder failover) must not be fetched any more.
        kept = tuple(
            _with_parts_from(_with_gap_from(_with_date_from(s, fresh), fresh), fresh)
            for s in old.segments
            if s.id.sequence >= new.first_sequence
            for fresh in (new.segments[s.id.sequence - new.media_sequence],)
        )
        removed = tuple(s.id for s in old.segments if s.id.sequence < new.first_sequence)
        skipped = max(0, new.first_sequence - (old.last_sequence + 1))
        fresh_segments = [s for s in new.segments if s.id.sequence > old.last_sequence]

        if kept:
            last_known = kept[-1]
            twin = new.segments[last_known.id.sequence - new.media_sequence]
            offset = last_known.discontinuity_sequence - twin.discontinuity_sequence
        elif old.segments and fresh_segments:
            offset = max(
                0, old.segments[-1].discontinuity_sequence - fresh_segments[0].discontinuity_sequence
            )
        else:
            offset = 0

        start = self._timeline_end + skipped * new.target_duration
        added: list[Segment] = []
        # The segment just before the first new one, when we know it (no jump ahead).
        previous: Segment | None = old.segments[-1] if old.segments and not skipped else None
        for segment in fresh_segments:
            added.append(
                attrs.evolve(
                    segment,
                    start=start,
                    discontinuity_sequence=segment.discontinuity_sequence + offset,
                    program_date_time=_following_date(segment, previous),
                )
            )
            previous = added[-1]
            start += segment.duration

        segments = kept + tuple(added)
        self._current = attrs.evolve(
            new,
            segments=segments,
            discontinuity_sequence=new.discontinuity_sequence + offset,
            date_ranges=tuple(
                date_range
                for date_range in _live_date_ranges(old.date_ranges, new.date_ranges, segments)
                if date_range.id not in removed_ranges
            ),
        )
        self._last_raw = new
        self._timeline_end = start
        seen_parts = {part.id for part in _all_parts(old)}
        return PlaylistUpdate(
            added=tuple(added),
            removed=removed,
            unchanged=False,
            skipped=skipped,
            ended=new.end_list,
            added_parts=tuple(part for part in _all_parts(self._current) if part.id not in seen_parts),
        )

    def refresh_interval(self, changed: bool) -> float:
        """Seconds to wait before the next reload (RFC 8216 §6.3.4): the target duration after a
        change (or the first load), half of it when the playlist was unchanged. Stop reloading once
        ``current.end_list`` is True."""
        target = float(self._current.target_duration)
        return target if changed else target / 2

    def next_refresh_at(self, load_started_at: float, *, changed: bool) -> float:
        """When to reload, on the caller's clock: RFC 8216 measures the wait from the moment the
        previous load *began*, so pass that time (seconds), not the time it finished."""
        return load_started_at + self.refresh_interval(changed)


StaleVerdict = Literal["stale", "stuck"]


class StalePlaylistWatch:
    """Tells when a live media playlist that stopped changing must be reported (sans-IO: the
    caller passes its clock's time, in seconds, and the playlist's target duration, in seconds).

    Unchanged reloads are counted at RFC 8216's pace (§6.3.4), whatever the caller's reload
    interval: the first one counts once a target duration has passed since the last change (or
    the first load), each further one once half a target duration has passed since the previous
    counted one. So a loader reloading every 0.1 s and one following the RFC report a stuck
    playlist after the same time: ``target × (1 + (limit - 1) / 2)`` seconds. At half of
    ``limit`` counted reloads (rounded down, at least 1) :meth:`unchanged` says ``"stale"`` (once;
    never with a limit of 1), at ``limit`` ``"stuck"``. ``limit`` 0 never reports.
    """

    _TOLERANCE = 0.001  # seconds: a reload due "at" a pace boundary counts despite float rounding

    def __init__(self, limit: int, *, now: float, target_duration: float) -> None:
        if limit < 0:
            raise UsageError(f"limit must be >= 0 reloads, got {limit}")
        self.limit = limit
        self.counted = 0
        """Unchanged reloads counted since the last change."""
        self._next_count_at = now + target_duration
        self.since = now
        """When the playlist last changed (or was first loaded), on the caller's clock."""

    def changed(self, *, now: float, target_duration: float) -> None:
        """A reload brought a new playlist: the count starts again."""
        self.counted = 0
        self.since = now
        self._next_count_at = now + target_duration

    def unchanged(self, *, now: float, target_duration: float) -> StaleVerdict | None:
        """A reload found the playlist unchanged at ``now``: ``"stale"`` when the count reaches
        half the limit, ``"stuck"`` when it reaches the limit, else None."""
        if not self.limit or now + self._TOLERANCE < self._next_count_at:
            return None
        self.counted += 1
        self._next_count_at = now + target_duration / 2
        if self.counted >= self.limit:
            return "stuck"
        if self.counted == max(1, self.limit // 2):
            return "stale"
        return None


# --------------------------------------------------------------------------------------------------
# LL-HLS: the loader does not load parts yet
# --------------------------------------------------------------------------------------------------

#: The LL-HLS tags that announce parts (RFC 8216bis §4.4.4.9, §4.4.3.7, §4.4.5.3, §4.4.3.8), in the
#: order :func:`low_latency_tags` reports them. ``EXT-X-SERVER-CONTROL`` only counts with
#: ``PART-HOLD-BACK``: without it the tag is about blocking reloads or skips, not parts.
LOW_LATENCY_TAGS: tuple[str, ...] = (
    "EXT-X-PART-INF",
    "EXT-X-PART",
    "EXT-X-PRELOAD-HINT",
    "EXT-X-SERVER-CONTROL",
)


def low_latency_tags(text: str) -> tuple[str, ...]:
    """The LL-HLS part tags a media playlist's ``text`` carries (names without ``#``, in
    :data:`LOW_LATENCY_TAGS` order); empty for a regular playlist. :func:`parse_media` reads the
    parts (:attr:`Segment.parts`, :attr:`MediaPlaylist.pending_parts`); the loader's
    ``segments()`` plays whole segments and says so with these names (once per playlist URL, the
    first time it plays one), while ``parts()`` follows them."""
    if "#EXT-X-P" not in text and "PART-HOLD-BACK" not in text:
        return ()  # the common case, without splitting the text
    found: set[str] = set()
    for line in text.splitlines():
        if not line.startswith("#EXT-X-"):
            continue
        name, _, attributes = line.strip().partition(":")
        tag = name[1:]
        if tag == "EXT-X-SERVER-CONTROL":
            if "PART-HOLD-BACK=" in attributes:
                found.add(tag)
        elif tag in LOW_LATENCY_TAGS:
            found.add(tag)
    return tuple(tag for tag in LOW_LATENCY_TAGS if tag in found)


#: The query parameters RFC 8216bis §6.2.5 reserves for playlist delivery directives.
_DELIVERY_DIRECTIVES = ("_HLS_msn", "_HLS_part", "_HLS_skip")


def blocking_reload_url(
    url: str, *, msn: int, part: int | None = None, skip: Literal["YES", "v2"] | None = None
) -> str:
    """The URL of a blocking playlist reload (RFC 8216bis §6.2.5.2): ``url`` asking for media
    sequence number ``msn`` (and part ``part`` of it), optionally as a delta update (``skip``).

    Delivery directives already in ``url`` are replaced; its other query parameters are kept, in
    order, and the directives follow them in the order the RFC lists them (a server may require it
    for caching).
    """
    if msn < 0:
        raise UsageError(f"msn must be >= 0, got {msn}")
    if part is not None and part < 0:
        raise UsageError(f"part must be None or >= 0, got {part}")
    if skip not in (None, "YES", "v2"):
        raise UsageError(f"skip must be None, 'YES' or 'v2', got {skip!r}")
    split = urlsplit(url)
    kept = parse_qsl(split.query, keep_blank_values=True)
    query = [(k, v) for k, v in kept if k not in _DELIVERY_DIRECTIVES]
    query.append(("_HLS_msn", str(msn)))
    if part is not None:
        query.append(("_HLS_part", str(part)))
    if skip is not None:
        query.append(("_HLS_skip", skip))
    return urlunsplit(split._replace(query=urlencode(query)))
