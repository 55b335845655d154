"""A small local HLS origin for the tests, the benchmarks and ``p2ploader demo``.

Theory of operation
-------------------
:class:`OriginServer` is a standard-library :class:`http.server.ThreadingHTTPServer` running
``serve_forever`` in a daemon thread, one daemon thread per connection. Nothing in it touches an
event loop, so asyncio (or anyio) tests can use it from their own loop: the loop only ever sees a
normal TCP server on ``127.0.0.1``. It binds ``127.0.0.1`` unless another ``host`` is asked for;
it never binds every interface (``0.0.0.0`` / ``""``) on its own.

* **VOD.** Every regular file under ``root`` is served as it is, at its path relative to ``root``
  (``root/v0/index.m3u8`` is ``/v0/index.m3u8``), with a content type chosen by suffix, HTTP/1.1
  keep-alive, ``HEAD`` and
  single ``Range`` requests (RFC 9110: ``206`` with ``Content-Range``,
  ``416`` with ``Content-Range: bytes */size``, a malformed or multi-range ``Range`` is ignored and
  the whole file is sent with ``200``). Request paths are percent-decoded and split on ``/``
  first; a ``..`` segment is refused with ``403``, and a path whose real location (symlinks
  resolved) is outside ``root`` is refused with ``403``. Nothing outside ``root`` is ever read.
* **Live.** With ``live=LiveSettings(...)``, ``/live/<path>`` mirrors every playlist
  ``/<path>`` as a live stream. A master playlist is copied with its variant and rendition URIs
  pointing at the live media playlists. A media playlist becomes a sliding window computed from
  the clock at each request; nothing is stored. With ``t = clock()`` seconds since the stream
  started, a segment is *published* once its duration has fully elapsed after the
  ``initial_segments`` that exist at ``t = 0``; segment ``msn`` (the live media sequence number,
  counted from 0) is VOD segment ``msn % N``; each wrap to VOD segment 0 is a discontinuity. The
  playlist lists the last ``window_segments`` published segments as ``seg_<msn>.<ext>``, and a
  request for ``seg_<msn>.<ext>`` is served from the VOD file while ``msn`` is published and not
  more than ``window_segments`` older than the window. Durations are exact fractions, and a
  boundary counts as reached 1 µs early so decimal clock values hit it despite float rounding.
  When the VOD playlist dates its segments (``EXT-X-PROGRAM-DATE-TIME``), every live segment is
  dated: VOD segment ``i`` keeps its date (given or extrapolated, RFC 8216 §4.3.2.6) in the first
  loop, and each loop adds the VOD's span (first date to the end of the last segment), so dates
  only ever grow. An ``EXT-X-DATERANGE`` is listed in front of the segment it preceded in the VOD
  while that segment is in the window, its dates moved by the same span and its ID suffixed with
  ``~<loop>`` from the second loop on (one ID, one range). A live master leaves out the I-frame
  playlists that cannot be served live (byte-range ones).
* **Low-Latency HLS.** With ``low_latency=LowLatencySettings(...)``, ``/llhls/<path>`` mirrors
  every fragmented-MP4 playlist ``/<path>`` as a live LL-HLS stream on the same clock: each
  ``moof``+``mdat`` fragment of a segment is a part (``seg_<msn>.<k><ext>``), the media playlist
  carries ``EXT-X-SERVER-CONTROL``, ``EXT-X-PART-INF``, the parts of the last three target
  durations, a preload hint and rendition reports, and ``_HLS_msn``/``_HLS_part`` reloads and the
  hinted part are held (in their own server threads, woken by the clock's next part,
  :meth:`OriginServer.clock_changed` or :meth:`OriginServer.stop`) until published.
  :mod:`p2ploader.testing.llhls` holds the pure part; this module the HTTP side.
* **Faults.** :meth:`OriginServer.inject` arms a rule for request paths ending with a suffix:
  a status code, a delay, a body cut after some bytes (the full ``Content-Length`` is still
  announced, then the connection is closed) or a wrong ``Content-Range``. :meth:`freeze_live`
  and :meth:`rollback_live` make the live playlists stale or go backwards.
* **Statistics.** Every body byte written to a socket is counted under a lock as segment, playlist or
  other bytes (by what was served, see :func:`resource_kind`), so truncated and ranged responses
  count what actually left the server; :meth:`OriginServer.statistics` returns a frozen snapshot.
* **CORS.** Off unless ``cors=True``: then every response carries
  ``Access-Control-Allow-Origin: *``, which lets a page from *any* website read every file under
  ``root`` through the user's browser. Browser players on another local port (the browser interop
  tests) need it; a folder of the user's own files should not get it by default.

Example::

    with OriginServer(root, live=LiveSettings(window_segments=4)) as origin:
        vod_url = origin.url_for("v0/index.m3u8")
        live_url = origin.url_for("live/v0/index.m3u8")
        origin.inject("seg_3.ts", status=503, times=1)
        ...
        origin_bytes = origin.statistics().segment_bytes_sent
"""

from __future__ import annotations

import bisect
import contextlib
import http.server
import logging
import math
import os
import posixpath
import re
import socket
import socketserver
import threading
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from fractions import Fraction
from pathlib import Path
from types import MappingProxyType, TracebackType
from typing import Any, BinaryIO, Final, Literal, Self, cast
from urllib.parse import quote, unquote, urljoin, urlsplit, urlunsplit

import attrs

from p2ploader.errors import BindError, ConfigError, UsageError
from p2ploader.testing.llhls import (
    DirectiveError,
    FragmentedMp4Error,
    LowLatencyEdge,
    LowLatencySegment,
    LowLatencySettings,
    LowLatencyTimeline,
    PlaylistShape,
    RenditionReportLine,
    TrackInfo,
    blocking_decision,
    fragments_of,
    group_fragments,
    parse_directives,
    parse_init,
    parse_part_name,
    part_target_of,
    render_media_playlist,
)

__all__ = [
    "LiveSettings",
    "LowLatencySettings",
    "OriginServer",
    "OriginStatistics",
    "ResourceKind",
    "content_type_for",
    "resource_kind",
]

_log = logging.getLogger(__name__)

ResourceKind = Literal["segment", "playlist", "other"]

_LIVE_PREFIX: Final = "live"  # first path segment of the live namespace
_LLHLS_PREFIX: Final = "llhls"  # first path segment of the LL-HLS namespace
_MAX_LLHLS_FILE: Final = 64 * 1024 * 1024  # bytes: larger segment or init files are not parsed
_MAX_LLHLS_SEGMENTS: Final = 10_000  # VOD segments an LL-HLS stream may have (each file is parsed)
_MAX_MASTER_SCAN: Final = 64  # .m3u8 files looked at per folder when finding a rendition's master
_HELD_RECHECK: Final = 0.5  # seconds: a held request re-reads a clock nobody reported changed
_MIN_HELD_WAIT: Final = 0.001  # seconds: the shortest wait of a held request

_CONTENT_TYPES: Final[Mapping[str, str]] = MappingProxyType(
    {
        ".m3u8": "application/vnd.apple.mpegurl",
        ".m3u": "audio/mpegurl",
        ".ts": "video/mp2t",
        ".mts": "video/mp2t",
        ".mp4": "video/mp4",
        ".m4s": "video/mp4",
        ".m4v": "video/mp4",
        ".cmfv": "video/mp4",
        ".m4a": "audio/mp4",
        ".cmfa": "audio/mp4",
        ".aac": "audio/aac",
        ".mp3": "audio/mpeg",
        ".ac3": "audio/ac3",
        ".ec3": "audio/eac3",
        ".vtt": "text/vtt",
        ".webvtt": "text/vtt",
        ".json": "application/json",
        ".key": "application/octet-stream",
        ".bin": "application/octet-stream",
    }
)
_DEFAULT_CONTENT_TYPE: Final = "application/octet-stream"
_TEXT_CONTENT_TYPE: Final = "text/plain; charset=utf-8"
_PLAYLIST_SUFFIXES: Final = frozenset({".m3u8", ".m3u"})
_SEGMENT_SUFFIXES: Final = frozenset(
    {".ts", ".mts", ".mp4", ".m4s", ".m4v", ".cmfv", ".m4a", ".cmfa", ".aac", ".mp3", ".ac3", ".ec3"}
    | {".vtt", ".webvtt"}
)

_CHUNK: Final = 64 * 1024
_EDGE_TOLERANCE: Final = Fraction(1, 1_000_000)
_POLL_INTERVAL: Final = 0.05
_STOP_GRACE: Final = 2.0
_IDLE_TIMEOUT: Final = 30.0

_SEGMENT_NAME: Final = re.compile(r"seg_(0|[1-9][0-9]{0,17})(.*)", re.ASCII | re.DOTALL)
_UTC_SUFFIX: Final = "+00:00"
_RANGE_SPEC: Final = re.compile(r"([0-9]*)-([0-9]*)", re.ASCII)
_ATTRIBUTE: Final = re.compile(r'([A-Za-z0-9-]+)=("[^"]*"|[^",]*)')

# Media-playlist tags: the ones the live window re-creates or cannot keep are dropped; the header
# tags are copied once; every other tag is copied verbatim in front of the segment it precedes.
_DROPPED_TAGS: Final = frozenset(
    {
        "EXT-X-TARGETDURATION",
        "EXT-X-MEDIA-SEQUENCE",
        "EXT-X-DISCONTINUITY-SEQUENCE",
        "EXT-X-ENDLIST",
        "EXT-X-PLAYLIST-TYPE",
        "EXT-X-PROGRAM-DATE-TIME",
        "EXT-X-DATERANGE",
        "EXT-X-PART-INF",
        "EXT-X-SERVER-CONTROL",
        "EXT-X-PART",
        "EXT-X-PRELOAD-HINT",
        "EXT-X-RENDITION-REPORT",
        "EXT-X-SKIP",
    }
)
_HEADER_TAGS: Final = frozenset(
    {"EXT-X-VERSION", "EXT-X-INDEPENDENT-SEGMENTS", "EXT-X-START", "EXT-X-DEFINE", "EXT-X-I-FRAMES-ONLY"}
)
_MASTER_TAGS: Final = frozenset(
    {"EXT-X-STREAM-INF", "EXT-X-I-FRAME-STREAM-INF", "EXT-X-MEDIA", "EXT-X-SESSION-DATA", "EXT-X-SESSION-KEY"}
)
_KEY_NONE: Final = "#EXT-X-KEY:METHOD=NONE"


def content_type_for(path: str) -> str:
    """The ``Content-Type`` the origin sends for a file called ``path`` (chosen by suffix)."""
    return _CONTENT_TYPES.get(posixpath.splitext(path)[1].lower(), _DEFAULT_CONTENT_TYPE)


def resource_kind(path: str) -> ResourceKind:
    """How :class:`OriginStatistics` counts the bytes of the VOD file ``path``.

    ``.m3u8``/``.m3u`` are playlists; media suffixes (``.ts``, ``.m4s``, ``.mp4`` — init sections
    included —, ``.aac``, ``.m4a``, ``.mp3``, ``.vtt``, …) are segments; anything else (``.key``,
    ``.bin`` key files, ``.json``) is other. Live ``seg_<msn>.<ext>`` responses always count as
    segments, live playlists as playlists, and error bodies as other.
    """
    suffix = posixpath.splitext(path)[1].lower()
    if suffix in _PLAYLIST_SUFFIXES:
        return "playlist"
    if suffix in _SEGMENT_SUFFIXES:
        return "segment"
    return "other"


# --------------------------------------------------------------------------------------------------
# Settings and stats


def _check_int(name: str, value: object, minimum: int, *, optional: bool) -> None:
    if value is None and optional:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigError(f"LiveSettings.{name} must be an integer >= {minimum}, got {value!r}", key=name)


def _validate_window(_i: object, _a: attrs.Attribute[int], value: int) -> None:
    _check_int("window_segments", value, 1, optional=False)


def _validate_initial(_i: object, _a: attrs.Attribute[int | None], value: int | None) -> None:
    _check_int("initial_segments", value, 0, optional=True)


def _validate_end_after(_i: object, _a: attrs.Attribute[int | None], value: int | None) -> None:
    _check_int("end_after", value, 1, optional=True)


def _validate_duration(_i: object, _a: attrs.Attribute[float | None], value: float | None) -> None:
    if value is None:
        return
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or value <= 0
    ):
        raise ConfigError(
            f"LiveSettings.segment_duration must be a finite number > 0, got {value!r}",
            key="segment_duration",
        )


@attrs.frozen(kw_only=True)
class LiveSettings:
    """How :class:`OriginServer` turns the VOD media playlists under its root into live streams.

    Attributes:
        window_segments: Segments listed in each live media playlist (>= 1).
        initial_segments: Segments already published at clock 0 (>= 0); ``None`` means
            ``window_segments``.
        loop: After the last VOD segment, continue with the first one again, preceded by
            ``#EXT-X-DISCONTINUITY``. When false the stream ends (``#EXT-X-ENDLIST``) after the
            last VOD segment.
        segment_duration: Advance the live edge as if every segment lasted this many seconds
            (> 0); ``None`` uses the VOD ``#EXTINF`` durations. The playlist keeps the VOD
            ``#EXTINF`` lines either way.
        end_after: Publish at most this many segments (>= 1), then add ``#EXT-X-ENDLIST``.
    """

    window_segments: int = attrs.field(default=6, validator=_validate_window)
    initial_segments: int | None = attrs.field(default=None, validator=_validate_initial)
    loop: bool = True
    segment_duration: float | None = attrs.field(default=None, validator=_validate_duration)
    end_after: int | None = attrs.field(default=None, validator=_validate_end_after)

    @property
    def initial(self) -> int:
        """The segments published at clock 0 (``initial_segments`` or ``window_segments``)."""
        return self.window_segments if self.initial_segments is None else self.initial_segments


def _frozen_counts(value: Mapping[str, int]) -> Mapping[str, int]:
    return MappingProxyType(dict(value))


@attrs.frozen(kw_only=True)
class OriginStatistics:
    """A snapshot of what an :class:`OriginServer` has served since it started (or since
    :meth:`OriginServer.reset_statistics`).

    Byte counts are body bytes written to sockets (headers excluded), so a truncated or ranged
    response counts only what was sent. A chunk is counted just before it is handed to the
    socket: once a client has received bytes they are counted, and a chunk whose write fails
    because the client went away is counted too. ``segment_bytes_sent`` is what a benchmark calls
    "origin bytes".

    Attributes:
        requests: Requests received (any status, faults included; ``HEAD`` included).
        bytes_sent: All body bytes sent; the sum of the three counts below.
        segment_bytes_sent: Body bytes of segments (VOD media files, init sections, live
            ``seg_<msn>`` responses).
        playlist_bytes_sent: Body bytes of playlists (VOD files and generated live playlists).
        other_bytes_sent: Everything else: key files, other files, error and fault bodies.
        segment_requests: ``200``/``206`` responses (``GET`` or ``HEAD``) for segments.
        playlist_requests: ``200``/``206`` responses (``GET`` or ``HEAD``) for playlists.
        path_requests: Requests per percent-decoded request path (query string removed).
    """

    requests: int = 0
    bytes_sent: int = 0
    segment_bytes_sent: int = 0
    playlist_bytes_sent: int = 0
    other_bytes_sent: int = 0
    segment_requests: int = 0
    playlist_requests: int = 0
    path_requests: Mapping[str, int] = attrs.field(factory=dict, converter=_frozen_counts, hash=False)

    def requests_for(self, path: str) -> int:
        """Requests received for ``path`` (a decoded URL path such as ``"/v0/seg0.ts"``)."""
        return self.path_requests.get(path, 0)


class _StatisticsCounter:
    """The mutable counters behind :class:`OriginStatistics`; every method takes the lock."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._bytes: dict[ResourceKind, int] = {"segment": 0, "playlist": 0, "other": 0}
        self._served: dict[ResourceKind, int] = {"segment": 0, "playlist": 0, "other": 0}
        self._paths: dict[str, int] = {}
        self._requests = 0

    def request(self, path: str) -> None:
        with self._lock:
            self._requests += 1
            self._paths[path] = self._paths.get(path, 0) + 1

    def served(self, kind: ResourceKind) -> None:
        with self._lock:
            self._served[kind] += 1

    def sent(self, kind: ResourceKind, count: int) -> None:
        with self._lock:
            self._bytes[kind] += count

    def reset(self) -> None:
        with self._lock:
            self._bytes = dict.fromkeys(self._bytes, 0)
            self._served = dict.fromkeys(self._served, 0)
            self._paths = {}
            self._requests = 0

    def snapshot(self) -> OriginStatistics:
        with self._lock:
            return OriginStatistics(
                requests=self._requests,
                bytes_sent=sum(self._bytes.values()),
                segment_bytes_sent=self._bytes["segment"],
                playlist_bytes_sent=self._bytes["playlist"],
                other_bytes_sent=self._bytes["other"],
                segment_requests=self._served["segment"],
                playlist_requests=self._served["playlist"],
                path_requests=self._paths,
            )


@attrs.frozen(kw_only=True)
class _Fault:
    """One armed fault rule (``remaining`` None = forever)."""

    suffix: str
    status: int | None
    truncate_to: int | None
    delay: float | None
    wrong_content_range: bool
    remaining: int | None


# --------------------------------------------------------------------------------------------------
# Playlist model (our own small line parser: the origin must not share parser bugs with the
# loader it tests, and it has to copy tags verbatim, which a full parser would re-serialise).


def _attributes(text: str) -> list[tuple[str, str]]:
    return [(m.group(1), m.group(2)) for m in _ATTRIBUTE.finditer(text)]


def _attribute(attributes: list[tuple[str, str]], name: str) -> str | None:
    for key, value in attributes:
        if key == name:
            return value[1:-1] if value.startswith('"') and value.endswith('"') and len(value) >= 2 else value
    return None


def _with_attribute(attributes: list[tuple[str, str]], name: str, value: str) -> list[tuple[str, str]]:
    out = [(k, value if k == name else v) for k, v in attributes]
    if all(k != name for k, _ in attributes):
        out.append((name, value))
    return out


def _render_tag(name: str, attributes: list[tuple[str, str]]) -> str:
    return f"#{name}:" + ",".join(f"{k}={v}" for k, v in attributes)


def _is_external(uri: str) -> bool:
    parts = urlsplit(uri)
    return bool(parts.scheme or parts.netloc)


def _local_target(vod_url_path: str, uri: str) -> list[str] | None:
    """The path parts (decoded) of ``uri`` of the playlist at ``vod_url_path``, or None when it is
    empty or on another host (a master's URI that is not this origin's to judge)."""
    target = urljoin(vod_url_path, uri)
    if not uri or _is_external(target):
        return None
    return [unquote(part) for part in urlsplit(target).path.split("/") if part]


def _relative_path(target_path: str, from_dir: str) -> str:
    rel = posixpath.relpath(target_path, from_dir)
    return rel if rel != "." else posixpath.basename(target_path)


def _live_path(vod_url_path: str, prefix: str = _LIVE_PREFIX) -> str:
    return f"/{prefix}{vod_url_path}"


def _uri_to_vod(uri: str, vod_url_path: str) -> str:
    """Rewrite a URI of the VOD playlist at ``vod_url_path`` so that, written in the live copy of
    that playlist, it still names the same VOD resource. Absolute URLs and root-relative paths
    already do and are returned unchanged."""
    if _is_external(uri) or uri.startswith("/"):
        return uri
    target = urlsplit(urljoin(vod_url_path, uri))
    rel = _relative_path(target.path, posixpath.dirname(_live_path(vod_url_path)))
    return urlunsplit(("", "", rel, target.query, target.fragment))


def _uri_to_live(uri: str, vod_url_path: str, prefix: str = _LIVE_PREFIX) -> str:
    """Rewrite a playlist URI of the master playlist at ``vod_url_path`` to name the live copy of
    the playlist it references. Relative URIs usually need no change (the live master sits at
    the mirrored path); root-relative ones get the ``/live`` prefix; absolute URLs stay."""
    if _is_external(uri):
        return uri
    target = urlsplit(urljoin(vod_url_path, uri))
    live_target = _live_path(target.path, prefix)
    if uri.startswith("/"):
        return urlunsplit(("", "", live_target, target.query, target.fragment))
    if urlsplit(urljoin(_live_path(vod_url_path, prefix), uri)).path == live_target:
        return uri
    rel = _relative_path(live_target, posixpath.dirname(_live_path(vod_url_path, prefix)))
    return urlunsplit(("", "", rel, target.query, target.fragment))


@attrs.frozen(kw_only=True)
class _VodSegment:
    duration: Fraction
    extinf: str  # the #EXTINF line, verbatim
    path: str  # decoded URL path of the segment file on this origin
    ext: str  # file suffix used in the live name seg_<msn><ext>
    discontinuity: bool
    keys: tuple[str, ...]  # EXT-X-KEY lines in effect, rewritten for the live path (IV made explicit)
    init: str | None  # EXT-X-MAP line in effect, rewritten for the live path
    extra: tuple[str, ...]  # other tags in front of this segment, verbatim
    date: datetime | None = None  # EXT-X-PROGRAM-DATE-TIME, given or extrapolated (None: undated)
    date_ranges: tuple[tuple[tuple[str, str], ...], ...] = ()  # EXT-X-DATERANGE attributes in front


@attrs.frozen(kw_only=True)
class _MediaPlaylist:
    header: tuple[str, ...]
    target_duration: int
    segments: tuple[_VodSegment, ...]
    problem: str | None  # why it cannot be served live, or None
    prefix: tuple[Fraction, ...]  # prefix[i] = sum of the first i durations
    discontinuities: tuple[int, ...]  # [i] = VOD discontinuity tags in front of segments 1..i
    date_span: timedelta | None = None  # first date to the end of the last segment (dated VODs)


@attrs.frozen
class _MasterPlaylist:
    text: str


@attrs.frozen
class _NotAPlaylist:
    reason: str


_Playlist = _MediaPlaylist | _MasterPlaylist | _NotAPlaylist


def _unusable(problem: str) -> _MediaPlaylist:
    return _MediaPlaylist(
        header=(), target_duration=0, segments=(), problem=problem, prefix=(), discontinuities=()
    )


def _key_lines(key_tags: list[list[tuple[str, str]]], vod_url_path: str, vod_msn: int) -> tuple[str, ...]:
    lines = []
    for attributes in key_tags:
        method = _attribute(attributes, "METHOD") or "NONE"
        if method == "NONE":
            lines.append(_KEY_NONE)
            continue
        out = attributes
        uri = _attribute(attributes, "URI")
        if uri is not None:
            out = _with_attribute(out, "URI", '"' + _uri_to_vod(uri, vod_url_path) + '"')
        if (
            _attribute(attributes, "IV") is None
            and (_attribute(attributes, "KEYFORMAT") or "identity") == "identity"
        ):
            # RFC 8216 §5.2: without IV the media sequence number is the IV. The live sequence
            # numbers differ from the VOD ones the segments were encrypted with, so spell it out.
            out = _with_attribute(out, "IV", f"0x{vod_msn:032x}")
        lines.append(_render_tag("EXT-X-KEY", out))
    return tuple(lines)


def _parse_playlist(text: str, vod_url_path: str) -> _Playlist:
    """Parse the playlist served at ``vod_url_path`` (percent-encoded URL path)."""
    lines = [line.strip() for line in text.lstrip("\ufeff").splitlines()]
    lines = [line for line in lines if line]
    if not lines or lines[0] != "#EXTM3U":
        return _NotAPlaylist("it does not start with #EXTM3U")
    names = {line[1:].partition(":")[0] for line in lines if line.startswith("#EXT")}
    if names & _MASTER_TAGS:
        return _MasterPlaylist(text)
    return _parse_media(lines[1:], vod_url_path)


def _parse_media(lines: list[str], vod_url_path: str) -> _MediaPlaylist:
    header: list[str] = []
    segments: list[_VodSegment] = []
    target: int | None = None
    media_sequence = 0
    extinf: str | None = None
    duration = Fraction(0)
    discontinuity = False
    extra: list[str] = []
    key_tags: list[list[tuple[str, str]]] = []
    new_key_tags: list[list[tuple[str, str]]] | None = None
    init: str | None = None
    date: datetime | None = None
    date_ranges: list[tuple[tuple[str, str], ...]] = []
    for line in lines:
        if not line.startswith("#"):
            if extinf is None:
                return _unusable(f"segment URI {line!r} has no #EXTINF")
            joined = urljoin(vod_url_path, line)
            if _is_external(joined):
                return _unusable(f"segment URI {line!r} is on another server")
            if new_key_tags is not None:
                key_tags, new_key_tags = new_key_tags, None
            path = unquote(urlsplit(joined).path)
            msn = media_sequence + len(segments)
            segments.append(
                _VodSegment(
                    duration=duration,
                    extinf=extinf,
                    path=path,
                    ext=posixpath.splitext(path)[1],
                    discontinuity=discontinuity,
                    keys=_key_lines(key_tags, vod_url_path, msn),
                    init=init,
                    extra=tuple(extra),
                    date=date,
                    date_ranges=tuple(date_ranges),
                )
            )
            extinf, discontinuity, extra, date, date_ranges = None, False, [], None, []
            continue
        if not line.startswith("#EXT"):
            continue  # a comment
        name, _, value = line[1:].partition(":")
        try:
            if name == "EXTINF":
                duration = Fraction(value.partition(",")[0].strip())
                if duration < 0:
                    raise ValueError(value)
                extinf = line
            elif name == "EXT-X-BYTERANGE":
                return _unusable(
                    "it uses EXT-X-BYTERANGE (a single-file playlist), which live emulation does not support"
                )
            elif name == "EXT-X-DISCONTINUITY":
                discontinuity = True
            elif name == "EXT-X-KEY":
                new_key_tags = [] if new_key_tags is None else new_key_tags
                new_key_tags.append(_attributes(value))
            elif name == "EXT-X-MAP":
                attributes = _attributes(value)
                uri = _attribute(attributes, "URI")
                if uri is not None:
                    attributes = _with_attribute(
                        attributes, "URI", '"' + _uri_to_vod(uri, vod_url_path) + '"'
                    )
                init = _render_tag("EXT-X-MAP", attributes)
            elif name == "EXT-X-TARGETDURATION":
                target = int(value)
            elif name == "EXT-X-MEDIA-SEQUENCE":
                media_sequence = int(value)
            elif name == "EXT-X-PROGRAM-DATE-TIME":
                date = _parse_date(value)
            elif name == "EXT-X-DATERANGE":
                date_ranges.append(tuple(_attributes(value)))
            elif name in _DROPPED_TAGS:
                pass
            elif name in _HEADER_TAGS:
                if not segments:
                    header.append(line)
            else:
                extra.append(line)
        except ValueError:
            return _unusable(f"bad tag {line!r}")
    if not segments:
        return _unusable("it has no segments")
    prefix = [Fraction(0)]
    discontinuities = [0]
    for index, segment in enumerate(segments):
        prefix.append(prefix[-1] + segment.duration)
        if index:
            discontinuities.append(discontinuities[-1] + int(segment.discontinuity))
    if target is None:
        target = math.ceil(max(s.duration for s in segments))
    try:
        dated = _dated(segments)
    except OverflowError:
        return _unusable("its EXT-X-PROGRAM-DATE-TIME dates leave years 1 to 9999")
    span: timedelta | None = None
    first_date, last = dated[0].date, dated[-1]
    if first_date is not None and last.date is not None:
        span = last.date + _seconds(last.duration) - first_date
    return _MediaPlaylist(
        header=tuple(header),
        target_duration=target,
        segments=tuple(dated),
        problem=None,
        prefix=tuple(prefix),
        discontinuities=tuple(discontinuities),
        date_span=span,
    )


def _parse_date(text: str) -> datetime:
    """An EXT-X-PROGRAM-DATE-TIME value, timezone-aware (UTC without a zone); ValueError if bad."""
    value = datetime.fromisoformat(text.strip())
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def _seconds(duration: Fraction) -> timedelta:
    return timedelta(seconds=float(duration))


def _dated(segments: list[_VodSegment]) -> list[_VodSegment]:
    """Every segment dated from the nearest EXT-X-PROGRAM-DATE-TIME (forward by adding durations,
    backward before the first tag), as RFC 8216 §4.3.2.6 says; unchanged without any tag."""
    first = next((i for i, segment in enumerate(segments) if segment.date is not None), None)
    if first is None:
        return segments
    out = list(segments)
    for i in range(first + 1, len(out)):
        previous = out[i - 1]
        if out[i].date is None and previous.date is not None:
            out[i] = attrs.evolve(out[i], date=previous.date + _seconds(previous.duration))
    for i in range(first - 1, -1, -1):
        following = out[i + 1].date
        assert following is not None
        out[i] = attrs.evolve(out[i], date=following - _seconds(out[i].duration))
    return out


def _format_date(value: datetime) -> str:
    text = value.isoformat(timespec="milliseconds" if value.microsecond % 1000 == 0 else "microseconds")
    return text.removesuffix(_UTC_SUFFIX) + "Z" if text.endswith(_UTC_SUFFIX) else text


def _live_date_range(attributes: tuple[tuple[str, str], ...], loop: int, shift: timedelta) -> str:
    """A VOD EXT-X-DATERANGE in loop ``loop`` (counted from 0): dates moved by ``shift``, the ID
    suffixed from the second loop on. A date that does not parse is left as it is."""
    out = list(attributes)
    for name in ("START-DATE", "END-DATE"):
        value = _attribute(out, name)
        if value is not None and loop:
            with contextlib.suppress(ValueError):
                out = _with_attribute(out, name, '"' + _format_date(_parse_date(value) + shift) + '"')
    range_id = _attribute(out, "ID")
    if range_id is not None and loop:
        out = _with_attribute(out, "ID", f'"{range_id}~{loop}"')
    return _render_tag("EXT-X-DATERANGE", out)


def _rewrite_master(
    text: str,
    vod_url_path: str,
    live_capable: Callable[[str], bool] = lambda _: True,
    prefix: str = _LIVE_PREFIX,
) -> str:
    """The live copy (under ``/<prefix>/``) of the master playlist served at ``vod_url_path``. An
    I-frame playlist whose URI ``live_capable`` rejects (its live copy would be a 404) is left out."""
    out: list[str] = []
    variant_uri_next = False
    for raw in text.lstrip("\ufeff").splitlines():
        line = raw.strip()
        if not line:
            continue
        if not line.startswith("#"):
            out.append(_uri_to_live(line, vod_url_path, prefix) if variant_uri_next else line)
            variant_uri_next = False
            continue
        name, sep, value = line[1:].partition(":")
        if name == "EXT-X-STREAM-INF":
            variant_uri_next = True
        elif (
            sep
            and name == "EXT-X-I-FRAME-STREAM-INF"
            and not live_capable(_attribute(_attributes(value), "URI") or "")
        ):
            continue
        elif sep and name in {"EXT-X-MEDIA", "EXT-X-I-FRAME-STREAM-INF"}:
            line = _rewrite_uri_attribute(name, value, "URI", lambda u: _uri_to_live(u, vod_url_path, prefix))
        elif sep and name in {"EXT-X-SESSION-KEY", "EXT-X-SESSION-DATA"}:
            line = _rewrite_uri_attribute(name, value, "URI", lambda u: _uri_to_vod(u, vod_url_path))
        elif sep and name == "EXT-X-CONTENT-STEERING":
            line = _rewrite_uri_attribute(name, value, "SERVER-URI", lambda u: _uri_to_vod(u, vod_url_path))
        out.append(line)
    return "\n".join(out) + "\n"


def _rewrite_uri_attribute(name: str, value: str, attribute: str, rewrite: Callable[[str], str]) -> str:
    attributes = _attributes(value)
    uri = _attribute(attributes, attribute)
    if uri is None:
        return f"#{name}:{value}"
    return _render_tag(name, _with_attribute(attributes, attribute, '"' + rewrite(uri) + '"'))


# --------------------------------------------------------------------------------------------------
# Live edge arithmetic (pure functions of the playlist, the settings and a clock value).


@attrs.frozen(kw_only=True)
class _Window:
    first: int  # media sequence number of the first listed segment
    end: int  # one past the last listed segment (= published segments in the served view)
    ended: bool  # #EXT-X-ENDLIST
    available_from: int  # oldest sequence number still served
    available_to: int  # one past the newest sequence number served


@attrs.frozen(kw_only=True)
class _LowLatencyStream:
    """A VOD media playlist cut into parts for ``/llhls/`` (see :mod:`p2ploader.testing.llhls`)."""

    media: _MediaPlaylist
    timeline: LowLatencyTimeline
    part_target: Fraction  # seconds
    paths: tuple[str, ...]  # decoded URL path of each VOD segment's file


def _master_media_paths(text: str, master_url_path: str) -> list[str]:
    """Decoded URL paths of the media playlists a master playlist names (variants and renditions;
    URIs on other servers left out)."""
    paths: list[str] = []
    variant_next = False
    for raw in text.splitlines():
        line = raw.strip()
        uri: str | None = None
        if line.startswith("#EXT-X-STREAM-INF"):
            variant_next = True
        elif line.startswith("#EXT-X-MEDIA:"):
            uri = _attribute(_attributes(line.partition(":")[2]), "URI")
        elif line and not line.startswith("#") and variant_next:
            uri, variant_next = line, False
        if uri:
            target = urljoin(master_url_path, uri)
            if not _is_external(target):
                paths.append(unquote(urlsplit(target).path))
    return paths


def _published(media: _MediaPlaylist, settings: LiveSettings, clock_value: float) -> int:
    """Segments published ``clock_value`` seconds after the stream started."""
    if not math.isfinite(clock_value):
        raise ValueError(f"the live clock returned {clock_value!r}")
    count = len(media.segments)
    initial = settings.initial
    elapsed = Fraction(max(clock_value, 0.0)) + _EDGE_TOLERANCE
    if settings.segment_duration is not None:
        published = initial + math.floor(elapsed / Fraction(repr(settings.segment_duration)))
    else:
        cycle = media.prefix[-1]
        cycles, index = divmod(initial, count)
        position = cycles * cycle + media.prefix[index] + elapsed  # timeline position of the edge
        cycles = math.floor(position / cycle)
        within = position - cycles * cycle
        published = max(cycles * count + bisect.bisect_right(media.prefix, within) - 1, initial)
    limit = settings.end_after
    if not settings.loop:
        limit = count if limit is None else min(limit, count)
    return published if limit is None else min(published, limit)


def _discontinuity_sequence(media: _MediaPlaylist, settings: LiveSettings, msn: int) -> int:
    """Discontinuity sequence number of live segment ``msn``: the discontinuities in front of
    segments 1..msn (each wrap to VOD segment 0, plus the VOD playlist's own)."""
    count = len(media.segments)
    cycles, index = divmod(msn, count)
    if not settings.loop:
        cycles = 0
    return cycles * (1 + media.discontinuities[-1]) + media.discontinuities[index]


def _live_problem(media: _MediaPlaylist, settings: LiveSettings) -> str | None:
    """Why ``media`` cannot be served live with ``settings``, or None."""
    if media.problem is not None:
        return media.problem
    if settings.segment_duration is None and media.prefix[-1] == 0:
        return "every #EXTINF duration is 0 (set LiveSettings.segment_duration)"
    return None


def _has_discontinuity(media: _MediaPlaylist, settings: LiveSettings, msn: int) -> bool:
    index = msn % len(media.segments)
    return msn > 0 and ((settings.loop and index == 0) or media.segments[index].discontinuity)


def _render_live(media: _MediaPlaylist, settings: LiveSettings, window: _Window, name_prefix: str) -> str:
    count = len(media.segments)
    lines = ["#EXTM3U", *media.header]
    lines.append(f"#EXT-X-TARGETDURATION:{media.target_duration}")
    lines.append(f"#EXT-X-MEDIA-SEQUENCE:{window.first}")
    lines.append(f"#EXT-X-DISCONTINUITY-SEQUENCE:{_discontinuity_sequence(media, settings, window.first)}")
    keys: tuple[str, ...] = ()
    init: str | None = None
    for msn in range(window.first, window.end):
        segment = media.segments[msn % count]
        # The first listed segment never carries the tag: EXT-X-DISCONTINUITY-SEQUENCE counts it.
        discontinuity = msn > window.first and _has_discontinuity(media, settings, msn)
        if discontinuity:
            lines.append("#EXT-X-DISCONTINUITY")
        if segment.init is not None and (segment.init != init or discontinuity):
            lines.append(segment.init)
        init = segment.init
        wanted = () if all(k == _KEY_NONE for k in segment.keys) else segment.keys
        if wanted != keys:
            lines.extend(wanted or (_KEY_NONE,))
        keys = wanted
        lines.extend(segment.extra)
        if segment.date is not None and media.date_span is not None:
            loop = msn // count if settings.loop else 0
            shift = media.date_span * loop
            lines.extend(_live_date_range(attributes, loop, shift) for attributes in segment.date_ranges)
            lines.append(f"#EXT-X-PROGRAM-DATE-TIME:{_format_date(segment.date + shift)}")
        lines.append(segment.extinf)
        lines.append(f"{name_prefix}seg_{msn}{quote(segment.ext)}")
    if window.ended:
        lines.append("#EXT-X-ENDLIST")
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------------------------------
# HTTP plumbing


@attrs.frozen(kw_only=True)
class _Resource:
    """What a route produced: a body in memory or a file, or an error."""

    status: int = 200
    content_type: str
    kind: ResourceKind
    data: bytes = b""
    file: Path | None = None
    headers: tuple[tuple[str, str], ...] = ()


def _error(status: int, message: str) -> _Resource:
    return _Resource(
        status=status, content_type=_TEXT_CONTENT_TYPE, kind="other", data=f"{message}\n".encode()
    )


def _parse_range(values: list[str]) -> tuple[int | None, int | None] | None:
    """The single byte range asked for, or None to ignore the header (absent, several headers,
    several ranges, another unit, or malformed — RFC 9110 §14.2 lets a server ignore it)."""
    if len(values) != 1:
        return None
    unit, sep, ranges = values[0].strip().partition("=")
    if not sep or unit.lower() != "bytes":
        return None
    specs = [spec.strip() for spec in ranges.split(",") if spec.strip()]
    if len(specs) != 1:
        return None
    match = _RANGE_SPEC.fullmatch(specs[0])
    if match is None or not (match.group(1) or match.group(2)):
        return None
    first = int(match.group(1)) if match.group(1) else None
    last = int(match.group(2)) if match.group(2) else None
    if first is not None and last is not None and last < first:
        return None
    return first, last


def _satisfy(spec: tuple[int | None, int | None], size: int) -> tuple[int, int] | None:
    """(start, length) of the range within a ``size``-byte body, or None if unsatisfiable."""
    first, last = spec
    if first is None:
        assert last is not None
        if last == 0 or size == 0:
            return None
        length = min(last, size)
        return size - length, length
    if first >= size:
        return None
    end = size - 1 if last is None else min(last, size - 1)
    return first, end - first + 1


def _wrong_content_range(start: int, length: int, size: int) -> str:
    """A self-consistent Content-Range whose first byte is off by one from what is sent."""
    last = start + length  # the real last byte is start + length - 1
    return f"bytes {start + 1}-{last}/{max(size, last + 1)}"


class _HTTPServer(http.server.ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False  # stop() closes the connections and waits for them itself, with a limit

    def __init__(self, address: tuple[str, int], origin: OriginServer) -> None:
        self.origin = origin
        self.connections: set[socket.socket] = set()
        self.connections_changed = threading.Condition()
        super().__init__(address, _Handler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind calls socket.getfqdn(), a reverse DNS lookup that can stall.
        socketserver.TCPServer.server_bind(self)
        host, port = self.socket.getsockname()[:2]
        self.server_name = str(host)
        self.server_port = int(port)

    def process_request(
        self, request: socket.socket | tuple[bytes, socket.socket], client_address: Any
    ) -> None:
        if isinstance(request, socket.socket):
            with self.connections_changed:
                self.connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: socket.socket | tuple[bytes, socket.socket]) -> None:
        try:
            super().shutdown_request(request)
        finally:
            if isinstance(request, socket.socket):
                with self.connections_changed:
                    self.connections.discard(request)
                    self.connections_changed.notify_all()

    def handle_error(self, request: socket.socket | tuple[bytes, socket.socket], client_address: Any) -> None:
        _log.debug("origin: error while serving %s", client_address, exc_info=True)


class _HTTPServer6(_HTTPServer):
    address_family = socket.AF_INET6


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "p2ploader-origin"
    sys_version = ""
    timeout = _IDLE_TIMEOUT
    disable_nagle_algorithm = True  # headers and body are separate writes: avoid the 40 ms stall

    def do_GET(self) -> None:
        self._serve(head=False)

    def do_HEAD(self) -> None:
        self._serve(head=True)

    def version_string(self) -> str:
        return self.server_version

    def log_message(self, format: str, *args: Any) -> None:
        _log.debug("origin: %s %s", self.address_string(), format % args)

    @property
    def _origin(self) -> OriginServer:
        return cast(_HTTPServer, self.server).origin

    def _serve(self, *, head: bool) -> None:
        origin = self._origin
        query = ""
        try:
            split = urlsplit(self.path)
            raw_path, query = split.path, split.query
        except ValueError:
            raw_path = self.path
        path = unquote(raw_path)
        origin._stats.request(path)
        if not raw_path.startswith("/"):
            self._send(_error(400, f"bad request target {self.path!r}"), head=head, fault=None)
            return
        fault = origin._take_fault(path)
        if fault is not None and fault.delay and origin._stopping.wait(fault.delay):
            self.close_connection = True  # stop() interrupted the delay
            return
        if fault is not None and fault.status is not None:
            self._send(_error(fault.status, f"injected fault: HTTP {fault.status}"), head=head, fault=fault)
            return
        try:
            resource = origin._route(path, query)
        except Exception:
            _log.exception("origin: cannot serve %s", path)
            resource = _error(500, f"internal error while serving {path}")
        self._send(resource, head=head, fault=fault)

    def _send(self, resource: _Resource, *, head: bool, fault: _Fault | None) -> None:
        stream: BinaryIO | None = None
        if resource.file is not None:
            try:
                stream = resource.file.open("rb")
            except OSError as exc:
                self._send(_error(404, f"cannot open {self.path}: {exc.strerror}"), head=head, fault=fault)
                return
        try:
            self._send_opened(resource, stream, head=head, fault=fault)
        finally:
            if stream is not None:
                stream.close()

    def _send_opened(
        self, resource: _Resource, stream: BinaryIO | None, *, head: bool, fault: _Fault | None
    ) -> None:
        size = os.fstat(stream.fileno()).st_size if stream is not None else len(resource.data)
        status, start, length = resource.status, 0, size
        headers: list[tuple[str, str]] = [("Content-Type", resource.content_type)]
        kind = resource.kind
        if status == 200:
            headers.append(("Accept-Ranges", "bytes"))
            spec = _parse_range(self.headers.get_all("Range") or [])
            if spec is not None:
                satisfied = _satisfy(spec, size)
                if satisfied is None:
                    status, length, stream, kind = 416, 0, None, "other"
                    headers = [("Content-Type", _TEXT_CONTENT_TYPE), ("Content-Range", f"bytes */{size}")]
                else:
                    start, length = satisfied
                    status = 206
                    headers.append(("Content-Range", f"bytes {start}-{start + length - 1}/{size}"))
            if fault is not None and fault.wrong_content_range and status in (200, 206):
                status = 206
                headers = [h for h in headers if h[0] != "Content-Range"]
                headers.append(("Content-Range", _wrong_content_range(start, length, size)))
        body = resource.data
        if status == 416:
            body = f"range not satisfiable: {size} bytes\n".encode()
            start, length = 0, len(body)
        if status in (204, 304):
            length = 0
        else:
            headers.append(("Content-Length", str(length)))
        headers.extend(resource.headers)
        if self._origin.cors:
            # Browser players on another local port (the browser interop tests) read the stream with
            # fetch/XHR, as from a CDN: without this header the browser hides every response from them.
            headers.append(("Access-Control-Allow-Origin", "*"))
        if status in (200, 206):
            self._origin._stats.served(kind)
        self.send_response(status)
        for name, value in headers:
            self.send_header(name, value)
        self.end_headers()
        limit = length
        if fault is not None and fault.truncate_to is not None:
            limit = min(length, fault.truncate_to)
            self.close_connection = True
        if head or limit == 0:
            return
        try:
            self._write_body(stream, body, start, limit, kind)
        except OSError:
            self.close_connection = True
            _log.debug("origin: client went away while sending %s", self.path, exc_info=True)

    def _write_body(
        self, stream: BinaryIO | None, body: bytes, start: int, length: int, kind: ResourceKind
    ) -> None:
        stats = self._origin._stats
        # Bytes are counted just before they are handed to the socket, so once a client has
        # received them the counters include them (a test can read stats() right away).
        if stream is None:
            view = memoryview(body)[start : start + length]
            for offset in range(0, len(view), _CHUNK):
                chunk = view[offset : offset + _CHUNK]
                stats.sent(kind, len(chunk))
                self.wfile.write(chunk)
            return
        stream.seek(start)
        remaining = length
        while remaining > 0:
            data = stream.read(min(_CHUNK, remaining))
            if not data:  # the file shrank under us: the body cannot be completed
                self.close_connection = True
                return
            stats.sent(kind, len(data))
            self.wfile.write(data)
            remaining -= len(data)


# --------------------------------------------------------------------------------------------------
# The server


class OriginServer:
    """A local HTTP origin serving the HLS files under ``root`` (VOD) and, with ``live``, live
    sliding-window copies of them under ``/live/``; see the module docstring.

    Args:
        root: Folder to serve. Must exist. Nothing outside it is ever served.
        host: Address to bind. Defaults to ``127.0.0.1`` (loopback only); pass ``"::1"`` for IPv6
            loopback. It never binds all interfaces unless ``host`` asks for it.
        port: Port to bind; ``0`` picks a free one (read it back from :attr:`port`/:attr:`url`).
        live: Enables live emulation under ``/live/``; ``None`` serves VOD only.
        clock: Seconds since the live stream started, for the live edge. Defaults to
            ``time.monotonic()`` minus the time :meth:`start` was called. Tests pass a callable
            they control. It is called from the server's threads.
        cors: Send ``Access-Control-Allow-Origin: *`` with every response, so that pages from
            other origins (any website, not only local players) can read the files. Off by default.
        low_latency: Enables Low-Latency HLS under ``/llhls/`` (window, looping and end from
            ``live``, or :class:`LiveSettings` defaults); ``None`` serves no LL-HLS.

    Use it as a context manager (``with OriginServer(root) as origin: ...``) or call
    :meth:`start` and :meth:`stop`. It cannot be restarted once stopped.
    """

    def __init__(
        self,
        root: Path,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        live: LiveSettings | None = None,
        clock: Callable[[], float] | None = None,
        cors: bool = False,
        low_latency: LowLatencySettings | None = None,
    ) -> None:
        root = Path(root)
        if not root.is_dir():
            raise ConfigError(f"origin root {str(root)!r} is not a directory", key="root")
        if not 0 <= port <= 65535:
            raise ConfigError(f"port must be in 0..65535, got {port}", key="port")
        self._root = root
        self._root_real = root.resolve(strict=True)
        self._host = host
        self._port = port
        self._live = live
        self._low_latency = low_latency
        self._clock = clock if clock is not None else self._default_clock
        self.cors = cors
        """Whether responses carry ``Access-Control-Allow-Origin: *`` (see the class docstring)."""
        self._started_at: float | None = None
        self._httpd: _HTTPServer | None = None
        self._address: tuple[str, int] | None = None  # bound (host, port), kept after stop()
        self._thread: threading.Thread | None = None
        self._stopped = False
        self._stopping = threading.Event()
        self._stats = _StatisticsCounter()
        self._lock = threading.Lock()  # faults, live state and the playlist cache
        self._faults: list[_Fault] = []
        self._frozen_at: float | None = None
        self._rollback = 0
        self._cache: dict[tuple[Path, str], tuple[tuple[int, int, int], _Playlist]] = {}
        self._ll_cache: dict[tuple[Path, str], tuple[tuple[int, int, int], _LowLatencyStream | str]] = {}
        # Held LL-HLS requests wait on this; clock_changed() and stop() wake them.
        self._clock_changed = threading.Condition()
        self._held = 0  # LL-HLS requests held right now (under _clock_changed)
        self._epoch = datetime.now(UTC)  # wall-clock date of clock 0, set again by start()

    # -- lifecycle -------------------------------------------------------------------------------

    def start(self) -> None:
        """Bind the socket and start serving in a daemon thread.

        Raises:
            UsageError: If the server was already started (or stopped).
            BindError: If the address cannot be bound (``reason`` says why, e.g. address already in use).
        """
        if self._httpd is not None or self._stopped:
            raise UsageError("OriginServer.start() can be called only once")
        server_class = _HTTPServer6 if ":" in self._host else _HTTPServer
        try:
            self._httpd = server_class((self._host, self._port), self)
        except OSError as exc:
            raise BindError.from_os_error(self._host, self._port, exc) from exc
        bound = self._httpd.socket.getsockname()
        self._address = (str(bound[0]), int(bound[1]))
        self._started_at = time.monotonic()
        self._epoch = datetime.now(UTC) - timedelta(seconds=self._clock())
        self._thread = threading.Thread(
            target=self._httpd.serve_forever,
            kwargs={"poll_interval": _POLL_INTERVAL},
            name=f"p2ploader-origin:{self.port}",
            daemon=True,
        )
        self._thread.start()
        _log.debug("origin: serving %s at %s", self._root, self.url)

    def stop(self) -> None:
        """Stop serving, close the listening socket and every open connection. Idempotent."""
        self._stopped = True
        httpd, thread = self._httpd, self._thread
        if httpd is None or self._stopping.is_set():
            return
        self._stopping.set()
        with self._clock_changed:
            self._clock_changed.notify_all()  # held LL-HLS requests give up now
        httpd.shutdown()
        with httpd.connections_changed:
            for connection in list(httpd.connections):
                with contextlib.suppress(OSError):
                    connection.shutdown(socket.SHUT_RDWR)
            httpd.connections_changed.wait_for(lambda: not httpd.connections, timeout=_STOP_GRACE)
        httpd.server_close()
        if thread is not None:
            thread.join(timeout=_STOP_GRACE)

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    # -- addresses -------------------------------------------------------------------------------

    @property
    def root(self) -> Path:
        """The served folder, as given."""
        return self._root

    @property
    def live(self) -> LiveSettings | None:
        """The live emulation settings, or None when only VOD is served."""
        return self._live

    @property
    def low_latency(self) -> LowLatencySettings | None:
        """The LL-HLS settings (``/llhls/``), or None when LL-HLS is not served."""
        return self._low_latency

    def clock_changed(self) -> None:
        """Wake the held LL-HLS requests so that they read the clock now. Call it after moving a
        clock you drive: without it they notice within half a second. (With the default clock
        each one wakes when the next part is due.)"""
        with self._clock_changed:
            self._clock_changed.notify_all()

    @property
    def host(self) -> str:
        """The address the socket is bound to (the ``host`` argument before :meth:`start`)."""
        return self._host if self._address is None else self._address[0]

    @property
    def port(self) -> int:
        """The bound port (after :meth:`start`; raises :class:`UsageError` before)."""
        if self._address is None:
            raise UsageError("the origin is not started yet")
        return self._address[1]

    @property
    def url(self) -> str:
        """Base URL without a trailing slash, e.g. ``http://127.0.0.1:8123`` (after :meth:`start`)."""
        host = self.host
        return f"http://[{host}]:{self.port}" if ":" in host else f"http://{host}:{self.port}"

    def url_for(self, path: str) -> str:
        """Absolute URL of ``path``, a URL path relative to the root (used as given, so
        percent-encode it yourself): ``url_for("v0/index.m3u8")``, ``url_for("live/v0/index.m3u8")``."""
        return f"{self.url}/{path.lstrip('/')}"

    # -- stats -----------------------------------------------------------------------------------

    def statistics(self) -> OriginStatistics:
        """A consistent snapshot of the counters."""
        return self._stats.snapshot()

    def reset_statistics(self) -> None:
        """Set every counter back to zero."""
        self._stats.reset()

    # -- faults ----------------------------------------------------------------------------------

    def inject(
        self,
        path_suffix: str,
        *,
        status: int | None = None,
        truncate_to: int | None = None,
        delay: float | None = None,
        wrong_content_range: bool = False,
        times: int | None = None,
    ) -> None:
        """Arm a fault for requests whose decoded path (query removed) ends with ``path_suffix``.

        Rules are tried in the order they were armed; the first one that matches and has uses
        left applies, alone, and uses one of its ``times``. All its effects apply together:

        Args:
            path_suffix: E.g. ``"seg1.ts"``, ``"/live/v0/index.m3u8"``; ``"/"`` matches nothing
                but the root, ``""`` matches everything.
            status: Answer with this status (200..599) and a short text body instead of the
                resource.
            truncate_to: Send the real headers (full ``Content-Length``) but only the first
                ``truncate_to`` body bytes, then close the connection.
            delay: Wait this many seconds before answering.
            wrong_content_range: Answer ``206`` with a ``Content-Range`` whose first byte is off
                by one (the body holds the right bytes); a request without ``Range`` also gets
                this ``206``.
            times: How many requests the rule affects; ``None`` means until :meth:`clear_faults`.

        Raises:
            ConfigError: For an invalid value or a rule without any effect.
        """
        if status is not None and not (200 <= status <= 599):
            raise ConfigError(f"status must be in 200..599, got {status}", key="status")
        if truncate_to is not None and truncate_to < 0:
            raise ConfigError(f"truncate_to must be >= 0, got {truncate_to}", key="truncate_to")
        if delay is not None and not (math.isfinite(delay) and delay >= 0):
            raise ConfigError(f"delay must be a finite number >= 0, got {delay}", key="delay")
        if times is not None and times < 1:
            raise ConfigError(f"times must be >= 1 or None, got {times}", key="times")
        if status is None and truncate_to is None and not delay and not wrong_content_range:
            raise ConfigError("inject() needs status, truncate_to, delay or wrong_content_range")
        fault = _Fault(
            suffix=path_suffix,
            status=status,
            truncate_to=truncate_to,
            delay=delay,
            wrong_content_range=wrong_content_range,
            remaining=times,
        )
        with self._lock:
            self._faults.append(fault)

    def clear_faults(self) -> None:
        """Disarm every fault rule (freeze and rollback are not faults: see :meth:`freeze_live`)."""
        with self._lock:
            self._faults.clear()

    def _take_fault(self, path: str) -> _Fault | None:
        with self._lock:
            for index, fault in enumerate(self._faults):
                if path.endswith(fault.suffix):
                    if fault.remaining is None:
                        return fault
                    if fault.remaining <= 1:
                        del self._faults[index]
                    else:
                        self._faults[index] = attrs.evolve(fault, remaining=fault.remaining - 1)
                    return fault
        return None

    def freeze_live(self, frozen: bool = True) -> None:
        """Freeze (or unfreeze) every live media playlist at the current clock value: the
        playlists stop advancing, as a stale cache would serve them. Segments stay available as
        the real clock publishes them. Unfreezing jumps back to the real live edge.

        Raises:
            UsageError: If live emulation is off.
        """
        self._require_live()
        now = self._clock()
        with self._lock:
            if not frozen:
                self._frozen_at = None
            elif self._frozen_at is None:
                self._frozen_at = now

    def rollback_live(self, segments: int) -> None:
        """Serve every live media playlist ``segments`` segments behind its edge (the window
        moves back, media sequence numbers go down); ``rollback_live(0)`` undoes it. Not
        cumulative. Segments of the older window stay available.

        Raises:
            UsageError: If live emulation is off. ConfigError: If ``segments`` < 0.
        """
        self._require_live()
        if segments < 0:
            raise ConfigError(f"rollback_live() needs segments >= 0, got {segments}", key="segments")
        with self._lock:
            self._rollback = segments

    def _require_live(self) -> LiveSettings:
        if self._live is None:
            raise UsageError("live emulation is off: pass live=LiveSettings(...) to OriginServer")
        return self._live

    def _default_clock(self) -> float:
        return 0.0 if self._started_at is None else time.monotonic() - self._started_at

    # -- routing ---------------------------------------------------------------------------------

    def _route(self, path: str, query: str = "") -> _Resource:
        parts = [part for part in path.split("/") if part not in ("", ".")]
        if any(part == ".." or "\\" in part or "\x00" in part for part in parts):
            return _error(403, f"path traversal refused: {path!r}")
        if self._live is not None and parts and parts[0] == _LIVE_PREFIX:
            return self._route_live(self._live, parts[1:])
        if self._low_latency is not None and parts and parts[0] == _LLHLS_PREFIX:
            return self._route_llhls(self._low_latency, parts[1:], query)
        found = self._find_file(parts)
        if isinstance(found, _Resource):
            return found
        return _Resource(
            content_type=content_type_for(found.name), kind=resource_kind(found.name), file=found
        )

    def _find_file(self, parts: list[str]) -> Path | _Resource:
        """The real path of the regular file at ``parts`` under the root, or an error."""
        shown = "/" + "/".join(parts)
        if not parts:
            return _error(404, "not found: / (no directory listings)")
        try:
            real = self._root.joinpath(*parts).resolve(strict=True)
        except (OSError, RuntimeError):
            return _error(404, f"not found: {shown}")
        if not real.is_relative_to(self._root_real):
            return _error(403, f"refused: {shown} resolves outside the origin root")
        if not real.is_file():
            return _error(404, f"not found: {shown} (not a file)")
        return real

    def _load(self, parts: list[str]) -> tuple[_Playlist, Path] | _Resource:
        found = self._find_file(parts)
        if isinstance(found, _Resource):
            return found
        vod_url_path = "/" + "/".join(quote(part) for part in parts)
        try:
            stat = found.stat()
            key = (found, vod_url_path)
            signature = (stat.st_mtime_ns, stat.st_size, stat.st_ino)
            with self._lock:
                cached = self._cache.get(key)
            if cached is not None and cached[0] == signature:
                return cached[1], found
            try:
                text = found.read_bytes().decode("utf-8")
            except UnicodeDecodeError:
                playlist: _Playlist = _NotAPlaylist("it is not UTF-8 text")
            else:
                playlist = _parse_playlist(text, vod_url_path)
        except OSError as exc:
            return _error(404, f"cannot read {vod_url_path}: {exc.strerror}")
        with self._lock:
            self._cache[key] = (signature, playlist)
        return playlist, found

    def _media_playlists_in(self, dir_parts: list[str]) -> list[str]:
        """Stems of the ``.m3u8`` media playlists in the folder ``dir_parts``."""
        folder = self._root.joinpath(*dir_parts)
        try:
            names = sorted(entry.name for entry in os.scandir(folder) if entry.name.endswith(".m3u8"))
        except OSError:
            return []
        stems = []
        for name in names:
            loaded = self._load([*dir_parts, name])
            if not isinstance(loaded, _Resource) and isinstance(loaded[0], _MediaPlaylist):
                stems.append(name.removesuffix(".m3u8"))
        return stems

    def _route_live(self, settings: LiveSettings, parts: list[str]) -> _Resource:
        shown = f"/{_LIVE_PREFIX}/" + "/".join(parts)
        if parts and parts[-1].endswith(".m3u8"):
            return self._live_playlist(settings, parts, shown)
        match = _SEGMENT_NAME.fullmatch(parts[-1]) if parts else None
        if match is None:
            return _error(
                404, f"not found: {shown} (the live namespace holds only playlists and seg_<msn> files)"
            )
        return self._live_segment(settings, parts, int(match.group(1)), match.group(2), shown)

    def _mirrored(
        self, parts: list[str], shown: str
    ) -> tuple[_MediaPlaylist | _MasterPlaylist, str] | _Resource:
        """The VOD playlist at ``parts`` that a live or LL-HLS URL mirrors, with its URL path; or
        the ``404`` (or other error) saying why there is none."""
        loaded = self._load(parts)
        if isinstance(loaded, _Resource):
            return (
                loaded
                if loaded.status != 404
                else _error(404, f"not found: {shown} (no VOD playlist to mirror)")
            )
        playlist, _ = loaded
        if isinstance(playlist, _NotAPlaylist):
            return _error(404, f"{shown}: the VOD file is not an HLS playlist: {playlist.reason}")
        return playlist, "/" + "/".join(quote(part) for part in parts)

    def _live_playlist(self, settings: LiveSettings, parts: list[str], shown: str) -> _Resource:
        mirrored = self._mirrored(parts, shown)
        if isinstance(mirrored, _Resource):
            return mirrored
        playlist, vod_url_path = mirrored
        no_cache = (("Cache-Control", "no-cache"),)
        if isinstance(playlist, _MasterPlaylist):

            def live_capable(uri: str) -> bool:
                target_parts = _local_target(vod_url_path, uri)
                if target_parts is None:
                    return True  # not ours to judge
                found = self._load(target_parts)
                return (
                    isinstance(found, tuple)
                    and isinstance(found[0], _MediaPlaylist)
                    and _live_problem(found[0], settings) is None
                )

            body = _rewrite_master(playlist.text, vod_url_path, live_capable).encode()
            return _Resource(
                content_type=_CONTENT_TYPES[".m3u8"], kind="playlist", data=body, headers=no_cache
            )
        problem = _live_problem(playlist, settings)
        if problem is not None:
            return _error(404, f"live emulation is not available for {vod_url_path}: {problem}")
        stems = self._media_playlists_in(parts[:-1])
        name_prefix = "" if len(stems) <= 1 else quote(parts[-1].removesuffix(".m3u8")) + "/"
        window = self._window(settings, playlist)
        body = _render_live(playlist, settings, window, name_prefix).encode()
        return _Resource(content_type=_CONTENT_TYPES[".m3u8"], kind="playlist", data=body, headers=no_cache)

    def _live_segment(
        self, settings: LiveSettings, parts: list[str], msn: int, ext: str, shown: str
    ) -> _Resource:
        owner = self._segment_owner(parts[:-1])
        loaded = self._load(owner) if owner is not None else None
        media = loaded[0] if isinstance(loaded, tuple) else None
        if not isinstance(media, _MediaPlaylist) or _live_problem(media, settings) is not None:
            return _error(404, f"not found: {shown} (no live-capable media playlist owns it)")
        window = self._window(settings, media)
        if not window.available_from <= msn < window.available_to:
            return _error(
                404,
                f"not found: {shown}: segment {msn} is not available "
                f"(available: {window.available_from}..{window.available_to - 1})",
            )
        segment = media.segments[msn % len(media.segments)]
        if ext != segment.ext:
            return _error(404, f"not found: {shown} (segment {msn} is seg_{msn}{segment.ext})")
        found = self._find_file([part for part in segment.path.split("/") if part not in ("", ".")])
        if isinstance(found, _Resource):
            return found
        return _Resource(content_type=content_type_for(found.name), kind="segment", file=found)

    def _segment_owner(self, folder: list[str]) -> list[str] | None:
        """The path of the media playlist whose live segments are in ``folder``, or None.

        ``seg_<msn>`` sits next to its playlist when that is the folder's only media playlist,
        else in a subfolder named after the playlist: ``<stem>/seg_<msn>`` (see _live_playlist).
        """
        stems = self._media_playlists_in(folder)
        if len(stems) == 1:
            return [*folder, stems[0] + ".m3u8"]
        if folder and len(self._media_playlists_in(folder[:-1])) > 1:
            return [*folder[:-1], folder[-1] + ".m3u8"]
        return None

    def _window(self, settings: LiveSettings, media: _MediaPlaylist) -> _Window:
        now = self._clock()
        with self._lock:
            frozen_at, rollback = self._frozen_at, self._rollback
        real_end = _published(media, settings, now)
        end = max(_published(media, settings, now if frozen_at is None else frozen_at) - rollback, 0)
        size = settings.window_segments
        first = max(end - size, 0)
        count = len(media.segments)
        ended = (settings.end_after is not None and end >= settings.end_after) or (
            not settings.loop and end >= count
        )
        return _Window(
            first=first,
            end=end,
            ended=ended,
            available_from=max(min(first, real_end - size) - size, 0),
            available_to=max(real_end, end),
        )

    # -- LL-HLS (/llhls/): the HTTP side of p2ploader.testing.llhls ------------------------------

    def _route_llhls(self, settings: LowLatencySettings, parts: list[str], query: str) -> _Resource:
        shown = f"/{_LLHLS_PREFIX}/" + "/".join(parts)
        if parts and parts[-1].endswith(".m3u8"):
            return self._llhls_playlist(settings, parts, query, shown)
        part = parse_part_name(parts[-1]) if parts else None
        match = _SEGMENT_NAME.fullmatch(parts[-1]) if parts and part is None else None
        if part is None and match is None:
            return _error(
                404,
                f"not found: {shown} (the LL-HLS namespace holds only playlists, seg_<msn> and "
                "seg_<msn>.<part> files)",
            )
        owner = self._segment_owner(parts[:-1])
        stream = self._llhls_stream(owner) if owner is not None else None
        if not isinstance(stream, _LowLatencyStream):
            return _error(404, f"not found: {shown} (no LL-HLS media playlist owns it)")
        if part is not None:
            return self._llhls_part(settings, stream, *part, shown)
        assert match is not None
        return self._llhls_segment(stream, int(match.group(1)), match.group(2), shown)

    def _llhls_stream(self, parts: list[str]) -> _LowLatencyStream | str:
        """The LL-HLS stream of the VOD media playlist at ``parts``, or why there is none."""
        loaded = self._load(parts)
        if isinstance(loaded, _Resource):
            return "no such VOD playlist"
        media, found = loaded
        if not isinstance(media, _MediaPlaylist):
            return "not a media playlist"
        vod_url_path = "/" + "/".join(quote(part) for part in parts)
        key = (found, vod_url_path)
        try:
            stat = found.stat()
        except OSError as exc:
            return f"cannot read it: {exc.strerror}"
        signature = (stat.st_mtime_ns, stat.st_size, stat.st_ino)
        with self._lock:
            cached = self._ll_cache.get(key)
        if cached is not None and cached[0] == signature:
            return cached[1]
        built = self._build_llhls_stream(media, vod_url_path)
        with self._lock:
            self._ll_cache[key] = (signature, built)
        return built

    def _build_llhls_stream(self, media: _MediaPlaylist, vod_url_path: str) -> _LowLatencyStream | str:
        settings = self._live if self._live is not None else LiveSettings()
        low_latency = self._low_latency
        assert low_latency is not None
        problem = _live_problem(media, settings)
        if problem is not None:
            return problem
        if len(media.segments) > _MAX_LLHLS_SEGMENTS:
            return f"it has more than {_MAX_LLHLS_SEGMENTS} segments"
        inits: dict[str, dict[int, TrackInfo]] = {}
        segments: list[LowLatencySegment] = []
        for segment in media.segments:
            if segment.init is None:
                return "its segments are not fragmented MP4 (no EXT-X-MAP)"
            if any(key != _KEY_NONE for key in segment.keys):
                return "it is encrypted (EXT-X-KEY), which LL-HLS emulation does not support"
            try:
                if segment.init not in inits:
                    inits[segment.init] = parse_init(self._llhls_init_bytes(segment.init, vod_url_path))
                data = self._llhls_file_bytes(segment.path)
                fragments = fragments_of(data, inits[segment.init])
            except FragmentedMp4Error as exc:
                return f"{segment.path}: {exc}"
            duration, extinf = segment.duration, segment.extinf
            if settings.segment_duration is not None:
                # The parts are scaled to the forced duration, so #EXTINF says it too (their sum).
                duration = Fraction(repr(settings.segment_duration))
                title = segment.extinf.partition(",")[2]
                extinf = f"#EXTINF:{settings.segment_duration!r},{title}"
            segments.append(
                LowLatencySegment(
                    duration=duration,
                    extinf=extinf,
                    ext=segment.ext,
                    discontinuity=segment.discontinuity,
                    init=segment.init,
                    extra=segment.extra,
                    parts=group_fragments(fragments, low_latency.part_duration),
                )
            )
        limit = settings.end_after
        if not settings.loop:
            limit = len(segments) if limit is None else min(limit, len(segments))
        timeline = LowLatencyTimeline(segments=tuple(segments), initial=settings.initial, limit=limit)
        return _LowLatencyStream(
            media=media,
            timeline=timeline,
            part_target=part_target_of(timeline.segments),
            paths=tuple(segment.path for segment in media.segments),
        )

    def _llhls_init_bytes(self, map_line: str, vod_url_path: str) -> bytes:
        attributes = _attributes(map_line.partition(":")[2])
        uri = _attribute(attributes, "URI")
        if uri is None or _attribute(attributes, "BYTERANGE") is not None:
            raise FragmentedMp4Error("the EXT-X-MAP has no URI or a BYTERANGE (not supported here)")
        # The map URI was rewritten to name the VOD file from the live copy of the playlist.
        target = urlsplit(urljoin(_live_path(vod_url_path), uri))
        if _is_external(uri) or target.netloc:
            raise FragmentedMp4Error("the EXT-X-MAP is on another server")
        return self._llhls_file_bytes(unquote(target.path))

    def _llhls_file_bytes(self, url_path: str) -> bytes:
        found = self._find_file([part for part in url_path.split("/") if part not in ("", ".")])
        if isinstance(found, _Resource):
            raise FragmentedMp4Error(f"cannot read {url_path}: {found.data.decode().strip()}")
        try:
            with found.open("rb") as stream:
                data = stream.read(_MAX_LLHLS_FILE + 1)
        except OSError as exc:
            raise FragmentedMp4Error(f"cannot read {url_path}: {exc.strerror}") from exc
        if len(data) > _MAX_LLHLS_FILE:
            raise FragmentedMp4Error(f"{url_path} is larger than {_MAX_LLHLS_FILE} bytes")
        return data

    def _llhls_shape(self, stream: _LowLatencyStream, name_prefix: str) -> PlaylistShape:
        settings = self._live if self._live is not None else LiveSettings()
        low_latency = self._low_latency
        assert low_latency is not None
        return PlaylistShape(
            header=tuple(line for line in stream.media.header if not line.startswith("#EXT-X-VERSION")),
            target_duration=stream.media.target_duration,
            window_segments=settings.window_segments,
            part_hold_back_parts=low_latency.part_hold_back_parts,
            loop=settings.loop,
            discontinuities=stream.media.discontinuities,
            name_prefix=name_prefix,
            epoch=self._epoch,
        )

    def _llhls_playlist(
        self, settings: LowLatencySettings, parts: list[str], query: str, shown: str
    ) -> _Resource:
        mirrored = self._mirrored(parts, shown)
        if isinstance(mirrored, _Resource):
            return mirrored
        playlist, vod_url_path = mirrored
        no_cache = (("Cache-Control", "no-cache"),)
        if isinstance(playlist, _MasterPlaylist):

            def low_latency_capable(uri: str) -> bool:
                target_parts = _local_target(vod_url_path, uri)
                if target_parts is None:
                    return True  # not ours to judge
                return isinstance(self._llhls_stream(target_parts), _LowLatencyStream)

            body = _rewrite_master(playlist.text, vod_url_path, low_latency_capable, _LLHLS_PREFIX)
            return _Resource(
                content_type=_CONTENT_TYPES[".m3u8"], kind="playlist", data=body.encode(), headers=no_cache
            )
        stream = self._llhls_stream(parts)
        if isinstance(stream, str):
            return _error(404, f"LL-HLS is not available for {vod_url_path}: {stream}")
        try:
            directives = parse_directives(query)
        except DirectiveError as exc:
            return _error(400, f"bad delivery directive: {exc}")
        timeline = stream.timeline
        decision = blocking_decision(timeline, timeline.edge(self._clock()), directives, stream.part_target)
        if decision == "too far":
            return _error(
                400,
                f"{shown}: _HLS_msn={directives.msn}"
                + ("" if directives.part is None else f" _HLS_part={directives.part}")
                + " is too far beyond the live edge (RFC 8216bis §6.2.5.2)",
            )
        if decision == "hold":
            msn = directives.msn
            assert msn is not None
            held = self._hold(
                stream,
                lambda edge: timeline.is_published(edge, msn, directives.part),
                settings.hold_limit(stream.media.target_duration),
            )
            if held is not None:
                return held
        now = self._clock()
        edge = timeline.edge(now)
        stems = self._media_playlists_in(parts[:-1])
        name_prefix = "" if len(stems) <= 1 else quote(parts[-1].removesuffix(".m3u8")) + "/"
        body = render_media_playlist(
            self._llhls_shape(stream, name_prefix),
            timeline,
            edge,
            skip=directives.skip is not None,
            reports=self._llhls_reports(parts, now),
        )
        return _Resource(
            content_type=_CONTENT_TYPES[".m3u8"], kind="playlist", data=body.encode(), headers=no_cache
        )

    def _hold(
        self, stream: _LowLatencyStream, ready: Callable[[LowLatencyEdge], bool], limit: float
    ) -> _Resource | None:
        """Hold the calling request until ``ready(edge)`` (None), or return the ``503`` to answer:
        too many requests held already, ``limit`` seconds passed, or the server is stopping.

        The wait ends when the next part is due by the clock, when :meth:`clock_changed` or
        :meth:`stop` wakes it, or after ``_HELD_RECHECK`` seconds, whichever comes first: a
        driven clock nobody reports is read again twice a second, never in a busy loop.
        """
        low_latency = self._low_latency
        assert low_latency is not None
        timeline = stream.timeline
        with self._clock_changed:
            if ready(timeline.edge(self._clock())):
                return None  # published meanwhile: nothing to hold, nothing to count
            if self._held >= low_latency.max_held_requests:
                return _error(
                    503, f"too many held requests ({low_latency.max_held_requests}): try again later"
                )
            self._held += 1
            try:
                deadline = time.monotonic() + limit
                while True:
                    now = self._clock()
                    edge = timeline.edge(now)
                    if ready(edge):
                        return None
                    remaining = deadline - time.monotonic()
                    if self._stopping.is_set() or remaining <= 0:
                        return _error(503, f"not published within {limit:g} s: try again later")
                    due = timeline.next_publication(edge)
                    until = remaining if due is None else float(due) - now
                    self._clock_changed.wait(min(remaining, max(until, _MIN_HELD_WAIT), _HELD_RECHECK))
            finally:
                self._held -= 1

    def _llhls_reports(self, parts: list[str], now: float) -> list[RenditionReportLine]:
        """Rendition reports of the other LL-HLS media playlists of the master playlists (in this
        folder or the one above) that list the playlist at ``parts``."""
        here = "/" + "/".join(parts)
        others: list[str] = []
        for folder in (parts[:-1], parts[:-2]) if len(parts) >= 2 else (parts[:-1],):
            for master in self._masters_in(folder):
                if here in master:
                    others += [path for path in master if path != here and path not in others]
        reports = []
        for other in others:
            stream = self._llhls_stream([part for part in other.split("/") if part])
            if not isinstance(stream, _LowLatencyStream):
                continue
            last = stream.timeline.last_part(stream.timeline.edge(now))
            if last is None:
                continue
            uri = quote(posixpath.relpath(other, posixpath.dirname(here)))
            reports.append(RenditionReportLine(uri=uri, last_msn=last[0], last_part=last[1]))
        return reports

    def _masters_in(self, folder: list[str]) -> list[list[str]]:
        """For each master playlist in ``folder``: the decoded paths of its media playlists."""
        try:
            with os.scandir(self._root.joinpath(*folder)) as entries:
                names = sorted(entry.name for entry in entries if entry.name.endswith(".m3u8"))
        except OSError:
            return []
        masters = []
        for name in names[:_MAX_MASTER_SCAN]:
            loaded = self._load([*folder, name])
            if isinstance(loaded, _Resource) or not isinstance(loaded[0], _MasterPlaylist):
                continue
            master_path = "/" + "/".join(quote(part) for part in [*folder, name])
            masters.append(_master_media_paths(loaded[0].text, master_path))
        return masters

    def _llhls_available(self, stream: _LowLatencyStream, msn: int) -> tuple[LowLatencyEdge, bool]:
        """The edge now, and whether segment ``msn`` is still (or already) in the served range."""
        settings = self._live if self._live is not None else LiveSettings()
        edge = stream.timeline.edge(self._clock())
        first = max(edge.complete - settings.window_segments, 0)
        return edge, max(first - settings.window_segments, 0) <= msn <= edge.complete

    def _llhls_segment(self, stream: _LowLatencyStream, msn: int, ext: str, shown: str) -> _Resource:
        edge, available = self._llhls_available(stream, msn)
        segment = stream.timeline.segment(msn)
        if not available or msn >= edge.complete:
            return _error(404, f"not found: {shown}: segment {msn} is not available")
        if ext != segment.ext:
            return _error(404, f"not found: {shown} (segment {msn} is seg_{msn}{segment.ext})")
        found = self._find_file(
            [part for part in stream.paths[msn % len(stream.paths)].split("/") if part not in ("", ".")]
        )
        if isinstance(found, _Resource):
            return found
        return _Resource(content_type=content_type_for(found.name), kind="segment", file=found)

    def _llhls_part(
        self,
        settings: LowLatencySettings,
        stream: _LowLatencyStream,
        msn: int,
        index: int,
        ext: str,
        shown: str,
    ) -> _Resource:
        timeline = stream.timeline
        segment = timeline.segment(msn)
        edge, available = self._llhls_available(stream, msn)
        if not available or index >= len(segment.parts) or ext != segment.ext:
            return _error(404, f"not found: {shown}: no such part")
        if not timeline.is_published(edge, msn, index):
            # Only the part the playlists hint at (the next one) is held until it is published.
            if edge.ended or (msn, index) != (edge.complete, edge.parts):
                return _error(404, f"not found: {shown}: part {msn}.{index} is not published")
            held = self._hold(
                stream,
                lambda now_edge: timeline.is_published(now_edge, msn, index),
                settings.hold_limit(stream.media.target_duration),
            )
            if held is not None:
                return held
        fragment = segment.parts[index]
        path = stream.paths[msn % len(stream.paths)]
        found = self._find_file([part for part in path.split("/") if part not in ("", ".")])
        if isinstance(found, _Resource):
            return found
        try:
            with found.open("rb") as file:
                file.seek(fragment.offset)
                body = file.read(fragment.length)
        except OSError as exc:
            return _error(404, f"not found: {shown}: cannot read {path}: {exc.strerror}")
        if len(body) != fragment.length:
            return _error(404, f"not found: {shown}: {path} changed since it was cut into parts")
        return _Resource(content_type=content_type_for(shown), kind="segment", data=body)
