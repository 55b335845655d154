"""Swarm ids, stream ids, tracker info hashes, wire segment ids and peer ids, as P2P Media Loader 2.3.1.

Which upstream this matches
---------------------------
Everything here reproduces the **published npm package** ``p2p-media-loader-core@2.3.1`` together with
``p2p-media-loader-hlsjs@2.3.1`` running on hls.js 1.6.16 (the hls.js version that package builds
against). Both packages were installed from npm and their ``dist/*.es.js`` bundles were read and executed
in node to produce the test vectors in ``tests/core/test_swarm.py``. That release uses what we call the
**``v2-sha1-metadata`` scheme** (the ``main`` / 2.3 line of the reference, §4.2-4.3), which does *not*
interoperate with 2.2.x browser peers (``v2-md5-positional``: md5 info hash, positional level index).

The chain, with the upstream function names (``dist/p2p-media-loader-core.es.js`` unless noted):

1. **Swarm id** (:func:`swarm_id`, :class:`SwarmSettings`). ``StreamConfig.swarmId`` when set (a common
   ``swarmId`` that ``mainStream.swarmId`` / ``secondaryStream.swarmId`` may override per stream type),
   used verbatim. Otherwise ``Core.setManifestResponseUrl(url)``: ``url.split("?")[0]`` of the master
   playlist's *response* URL (``XMLHttpRequest.responseURL`` / ``Response.url`` in the hls.js glue's
   ``handleManifestLoaded``), so a redirect changes the swarm. Browsers never put a fragment in a response
   URL, so we drop ``#...`` as well.
2. **Stream index** (:func:`stream_short_id`, a port of the exported ``generateStreamShortId``):
   base64 of the SHA-1 of ``bitrate-codecs-width-height-language-channels-name-frameRate-videoRange``
   after normalisation (28 characters with one ``=``). The hls.js glue (``SegmentManager.processMainManifest``
   in ``dist/p2p-media-loader-hlsjs.es.js``) fills it from hls.js's parsed levels and audio tracks; see
   :func:`hlsjs_level_short_id` and :func:`hlsjs_audio_track_short_id` for the exact mapping.
3. **Stream swarm id** (:func:`stream_swarm_id`, ``getStreamSwarmId``): ``v2-<swarm id>-<type>-<index>``,
   type ``main`` for hls.js levels (variants, including audio-only variants) and ``secondary`` for
   hls.js audio tracks (``EXT-X-MEDIA TYPE=AUDIO``). One swarm per rendition.
4. **Info hash** (:func:`info_hash`, ``getStreamHash``): ``btoa(sha1(streamSwarmId).slice(0, 15))``, the
   first 15 bytes of the SHA-1 of the UTF-8 stream swarm id, base64-encoded into 20 ASCII characters.
   Those 20 characters are the 20 ``info_hash`` bytes (``P2PTrackerClient`` passes
   ``utf8ToUintArray(streamHash)`` to bittorrent-tracker), and the tracker JSON carries them as the same
   20-character latin-1 string (:func:`info_hash_latin1`).
5. **Segment ids on the wire** (:func:`segment_wire_id`): ``externalId = live ? frag.sn : index`` in the
   glue's ``SegmentManager.updatePlaylist``: the media sequence number while the playlist has no
   ``EXT-X-ENDLIST``, otherwise the segment's position in its media playlist.
6. **Peer id** (:func:`generate_peer_id`, ``generatePeerId``): a prefix plus characters drawn uniformly
   from ``[A-Za-z0-9]`` up to 20 characters. 2.3.1's own prefix is ``-PM0203-``
   (``TRACKER_CLIENT_VERSION_PREFIX`` = ``-PM`` + ``formatVersion("2.3.1")`` + ``-``). Browser peers do not
   look at the prefix at all: a remote peer id only goes through ``hexToUtf8`` (a UTF-8 ``TextDecoder``)
   and serves as the key of the per-swarm peer table that de-duplicates connections arriving through
   several trackers. So any 20-byte **ASCII** id works; non-UTF-8 bytes would be decoded to U+FFFD and could
   make two different peers collide. We announce as ``-PY0001-`` (:data:`P2PLOADER_PEER_ID_PREFIX`).

The JavaScript semantics that matter for byte-exact ids are reproduced: ``String.prototype.trim``'s
whitespace set, UTF-16 code-unit slicing and sorting, ``Number(...)`` and ``Number.prototype.toString``,
``parseInt``, and ``TextEncoder``'s replacement of lone surrogates.

URL normalisation (our addition, Peer5-style)
---------------------------------------------
Peer5 identifies content by its URL without the query, and lets its staff install a regex for URLs that
carry per-viewer randomness inside the path. :class:`UrlNormalizer` offers the same for the *swarm id*
(segment identity on the 2.x wire is an integer, so the manifest URL is the only URL that matters): the
query is stripped first (unless ``strip_query=False``), then the user's regex rewrites the URL. Without a
``replacement`` the canonical form is the concatenation of the regex's capture groups (the whole match
when it has none); with one, it is ``re.sub(pattern, replacement, url)``. A URL that does not match is
kept as it is. P2P Media Loader has no such option: browser peers join the same swarm only if the page
passes them the same canonical string as their ``swarmId`` (for example, computed by the page with the
same regex).

This module is sans-IO and depends on the standard library and attrs only.
"""

from __future__ import annotations

import base64
import decimal
import enum
import hashlib
import math
import random
import re
from collections.abc import Mapping, Sequence
from typing import Protocol

import attrs

from p2ploader.core.segments import SegmentId
from p2ploader.core.tracker_wire import ID_LENGTH, binary_string, from_binary_string

__all__ = [
    "P2PLOADER_PEER_ID_PREFIX",
    "P2PML_PEER_ID_PREFIX",
    "PEER_ID_ALPHABET",
    "PEER_ID_LENGTH",
    "PEER_PROTOCOL_VERSION",
    "SCHEME",
    "UPSTREAM_VERSION",
    "AudioRenditionLike",
    "P2PStream",
    "StreamType",
    "SwarmSettings",
    "UrlNormalizer",
    "VariantLike",
    "from_latin1",
    "generate_peer_id",
    "hlsjs_audio_codec",
    "hlsjs_audio_track_codec",
    "hlsjs_audio_track_short_id",
    "hlsjs_level_short_id",
    "hlsjs_streams",
    "hlsjs_video_codec",
    "info_hash",
    "info_hash_latin1",
    "latin1",
    "segment_id_from_wire",
    "segment_wire_id",
    "stream_metadata_string",
    "stream_short_id",
    "stream_swarm_id",
    "swarm_id",
    "url_without_query",
    "version_prefix",
]

#: The npm release whose behaviour this module reproduces.
UPSTREAM_VERSION = "2.3.1"
#: Our name for the id scheme of that release (sha1 info hash, metadata-derived stream index).
SCHEME = "v2-sha1-metadata"
#: ``PEER_PROTOCOL_VERSION`` in 2.3.1's ``utils/stream.ts``: the stream swarm id prefix.
PEER_PROTOCOL_VERSION = "v2"
#: BitTorrent peer ids are 20 bytes.
PEER_ID_LENGTH = ID_LENGTH
#: ``HASH_SYMBOLS`` in 2.3.1's ``utils/peer.ts``: the random part of a peer id.
PEER_ID_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
#: The prefix p2p-media-loader-core 2.3.1 itself uses (``TRACKER_CLIENT_VERSION_PREFIX``).
P2PML_PEER_ID_PREFIX = "-PM0203-"
#: Our client prefix: ``-PY`` plus p2ploader's major/minor version (0.1), formatted the way 2.3.1 formats
#: its own (``version_prefix("PY", "0.1.0")``).
P2PLOADER_PEER_ID_PREFIX = "-PY0001-"

_INFO_HASH_SHA1_BYTES = 15  # 15 bytes -> 20 base64 characters, no padding


class StreamType(enum.StrEnum):
    """P2P Media Loader's stream type: ``main`` for hls.js levels, ``secondary`` for audio tracks."""

    MAIN = "main"
    SECONDARY = "secondary"


# --------------------------------------------------------------------------------------------------
# Swarm id


def url_without_query(url: str) -> str:
    """``url`` without its fragment and query: what 2.3.1 keeps of a manifest response URL.

    2.3.1 cuts at the first ``?`` (``url.split("?")[0]``). A response URL never has a fragment in a
    browser, so the fragment is removed first.
    """
    return url.split("#", 1)[0].split("?", 1)[0]


def _compile(pattern: str | re.Pattern[str]) -> re.Pattern[str]:
    return pattern if isinstance(pattern, re.Pattern) else re.compile(pattern)


@attrs.frozen(kw_only=True)
class UrlNormalizer:
    """Peer5-style canonicalisation of a manifest URL with a user regex (see the module docstring).

    * ``strip_query``: drop the fragment and query (:func:`url_without_query`) before matching.
    * ``pattern`` is searched (:meth:`re.Pattern.search`) in the URL.
    * ``replacement is None``: the canonical form is the concatenation of the capture groups that took
      part in the match, or the whole match when the pattern has no group. Example:
      ``UrlNormalizer(pattern=r"^(https://cdn\\.example\\.com/)[^/]+/(.*)$")`` maps
      ``https://cdn.example.com/tok123/live/master.m3u8`` to ``https://cdn.example.com/live/master.m3u8``.
    * ``replacement`` given: ``pattern.sub(replacement, url)`` (all matches, :mod:`re` template syntax
      such as ``\\1`` and ``\\g<name>``). Checked against the pattern when the normaliser is built.
    * A URL the pattern does not match is returned unchanged (after query stripping).
    """

    pattern: re.Pattern[str] = attrs.field(converter=_compile)
    replacement: str | None = None
    strip_query: bool = True

    def __attrs_post_init__(self) -> None:
        if self.replacement is not None:
            try:
                self.pattern.sub(self.replacement, "")  # parses the template: bad group references fail
            except (re.error, IndexError) as exc:
                raise ValueError(f"invalid replacement {self.replacement!r}: {exc}") from exc

    def normalize(self, url: str) -> str:
        """The canonical form of ``url``."""
        if self.strip_query:
            url = url_without_query(url)
        if self.replacement is not None:
            return self.pattern.sub(self.replacement, url)
        match = self.pattern.search(url)
        if match is None:
            return url
        if self.pattern.groups == 0:
            return match.group(0)
        return "".join(group for group in match.groups() if group is not None)


def swarm_id(manifest_url: str, *, custom: str | None = None, normalizer: UrlNormalizer | None = None) -> str:
    """The swarm id of a stream whose master (or only) playlist came from ``manifest_url``.

    ``manifest_url`` must be the URL the playlist was finally served from, after redirects, as a browser
    reports it. ``custom`` (P2P Media Loader's ``swarmId`` setting) wins and is used verbatim, even when
    empty. Otherwise ``normalizer`` canonicalises the URL, and without one the URL loses its query
    (2.3.1's default).
    """
    if custom is not None:
        return custom
    if normalizer is not None:
        return normalizer.normalize(manifest_url)
    return url_without_query(manifest_url)


@attrs.frozen(kw_only=True)
class SwarmSettings:
    """The swarm-id settings of P2P Media Loader 2.3.1, plus our optional normaliser.

    ``swarm_id`` is the common ``swarmId``; ``main_swarm_id`` and ``secondary_swarm_id`` are
    ``mainStream.swarmId`` and ``secondaryStream.swarmId``, which override it for one stream type.
    """

    swarm_id: str | None = None
    main_swarm_id: str | None = None
    secondary_swarm_id: str | None = None
    normalizer: UrlNormalizer | None = None

    def resolve(self, manifest_url: str, stream_type: StreamType = StreamType.MAIN) -> str:
        """The swarm id for streams of ``stream_type`` of the manifest served from ``manifest_url``."""
        specific = self.main_swarm_id if stream_type is StreamType.MAIN else self.secondary_swarm_id
        custom = specific if specific is not None else self.swarm_id
        return swarm_id(manifest_url, custom=custom, normalizer=self.normalizer)


# --------------------------------------------------------------------------------------------------
# JavaScript semantics needed for byte-exact ids

# StrWhiteSpaceChar: WhiteSpace (TAB VT FF SP NBSP ZWNBSP and Unicode Zs) plus LineTerminator.
_JS_WHITESPACE = (
    "\t\n\v\f\r \u00a0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a"
    "\u2028\u2029\u202f\u205f\u3000\ufeff"
)
_JS_DECIMAL_LITERAL = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_JS_RADIX_LITERAL = re.compile(r"0(?:[xX](?P<x>[0-9a-fA-F]+)|[oO](?P<o>[0-7]+)|[bB](?P<b>[01]+))")
_JS_MAX_SAFE_INTEGER = 2**53 - 1


def _js_trim(text: str) -> str:
    return text.strip(_JS_WHITESPACE)


def _int_to_float(value: int) -> float:
    try:
        return float(value)
    except OverflowError:
        return math.inf if value > 0 else -math.inf


def _js_number_to_string(value: float) -> str:
    """``Number.prototype.toString()`` (radix 10) of a double."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    if value == 0:
        return "0"
    if value < 0:
        return "-" + _js_number_to_string(-value)
    # repr() gives the shortest round-tripping digits, as ECMAScript requires.
    _sign, digit_tuple, exponent = decimal.Decimal(repr(value)).as_tuple()
    assert isinstance(exponent, int)
    digits = "".join(map(str, digit_tuple))
    stripped = digits.rstrip("0")
    exponent += len(digits) - len(stripped)
    digits = stripped
    k = len(digits)
    n = exponent + k  # value = 0.<digits> * 10**n
    if k <= n <= 21:
        return digits + "0" * (n - k)
    if 0 < n <= 21:
        return f"{digits[:n]}.{digits[n:]}"
    if -6 < n <= 0:
        return "0." + "0" * -n + digits
    e = n - 1
    mantissa = digits if k == 1 else f"{digits[0]}.{digits[1:]}"
    return f"{mantissa}e{'+' if e >= 0 else '-'}{abs(e)}"


def _js_string_to_number(text: str) -> float:
    """``Number(text)`` for a string."""
    s = _js_trim(text)
    if not s:
        return 0.0
    radix = _JS_RADIX_LITERAL.fullmatch(s)
    if radix is not None:
        for name, base in (("x", 16), ("o", 8), ("b", 2)):
            if radix[name] is not None:
                return _int_to_float(int(radix[name], base))
    if s in ("Infinity", "+Infinity"):
        return math.inf
    if s == "-Infinity":
        return -math.inf
    if _JS_DECIMAL_LITERAL.fullmatch(s):
        return float(s)
    return math.nan


def _js_parse_int(text: str, radix: int | None = None) -> float:
    """``parseInt(text)`` / ``parseInt(text, radix)`` for radix None, 10 or 16."""
    s = text.lstrip(_JS_WHITESPACE)
    sign = 1.0
    if s[:1] in ("+", "-"):
        sign = -1.0 if s[0] == "-" else 1.0
        s = s[1:]
    base = radix or 10
    if radix in (None, 16) and s[:2] in ("0x", "0X"):
        base = 16
        s = s[2:]
    digits = re.match(r"[0-9a-fA-F]*" if base == 16 else r"[0-9]*", s)
    assert digits is not None
    if not digits.group(0):
        return math.nan
    return sign * _int_to_float(int(digits.group(0), base))


def _js_to_hex(value: float) -> str:
    """``Number.prototype.toString(16)`` of an integral double (or NaN/Infinity)."""
    if math.isnan(value) or math.isinf(value):
        return _js_number_to_string(value)
    magnitude = format(int(abs(value)), "x")
    return "-" + magnitude if value < 0 else magnitude


def _js_prefix(text: str, length: int) -> str:
    """``text.slice(0, length)``: JavaScript counts UTF-16 code units."""
    units = text.encode("utf-16-le", "surrogatepass")[: 2 * length]
    return units.decode("utf-16-le", "surrogatepass")


def _js_sort_key(text: str) -> bytes:
    """``Array.prototype.sort()``'s default order: by UTF-16 code units."""
    return text.encode("utf-16-be", "surrogatepass")


def _js_utf8(text: str) -> bytes:
    """``new TextEncoder().encode(text)``: lone surrogates become U+FFFD."""
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        fixed = text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")
        return fixed.encode("utf-8")


def _js_number_text(value: float | int) -> str:
    return _js_number_to_string(_int_to_float(value) if isinstance(value, int) else value)


# --------------------------------------------------------------------------------------------------
# Stream index (generateStreamShortId)


def _normalize_codec(codec: str) -> str:
    codec = _js_trim(codec).lower()
    parts = codec.split(".")
    if len(parts) == 3 and parts[0] in ("avc1", "avc"):
        profile = _js_parse_int(parts[1], 10)
        level = _js_parse_int(parts[2], 10)
        if (
            not math.isnan(profile)
            and not math.isnan(level)
            and parts[1] == _js_number_to_string(profile)
            and parts[2] == _js_number_to_string(level)
        ):
            codec = f"{parts[0]}.{_js_to_hex(profile).rjust(2, '0')}00{_js_to_hex(level).rjust(2, '0')}"
    return codec


def _truthy_number(value: float | int) -> bool:
    return not (value == 0 or (isinstance(value, float) and math.isnan(value)))


def stream_metadata_string(
    *,
    bitrate: float | None = None,
    codecs: str | None = None,
    width: int | None = None,
    height: int | None = None,
    language: str | None = None,
    channels: str | int | None = None,
    name: str | None = None,
    frame_rate: str | float | None = None,
    video_range: str | None = None,
) -> str:
    """The string 2.3.1's ``generateStreamShortId`` hashes, for the same (JavaScript-typed) arguments.

    ``bitrate-codecs-width-height-language-channels-name-frameRate-videoRange`` where: ``bitrate`` is
    ``0`` when None; ``codecs`` are split on ``,``, trimmed, lower-cased, decimal ``avc1.P.L`` (and
    ``avc.P.L``) rewritten to hex ``avc1.PP00LL``, sorted and re-joined with ``,``; ``language`` keeps
    its first 2 characters (UTF-16 units), lower-cased, and exactly ``"und"`` becomes empty;
    ``channels`` keeps what precedes the first ``/``; ``name`` is lower-cased and trimmed;
    ``frame_rate`` goes through ``Number(...)`` and ``toString()`` (``"30.000"`` -> ``30``, ``"0x1E"``
    -> ``30``, non-numeric -> empty); ``video_range`` is upper-cased and trimmed. For codecs, language,
    channels, name, frame rate and video range, None, ``""``, 0 and NaN all give an empty field; a
    missing width or height gives an empty field but 0 gives ``0``; a missing bitrate gives ``0``.
    """
    if codecs:
        normalized = sorted((_normalize_codec(c) for c in codecs.split(",")), key=_js_sort_key)
        codecs_text = ",".join(normalized)
    else:
        codecs_text = ""
    language_text = _js_prefix(language, 2).lower() if language and language != "und" else ""
    if isinstance(channels, str):
        channels_text = channels.split("/")[0] if channels else ""
    elif channels is not None and _truthy_number(channels):
        channels_text = _js_number_text(channels).split("/")[0]
    else:
        channels_text = ""
    name_text = _js_trim(name.lower()) if name else ""
    frame_rate_text = ""
    if isinstance(frame_rate, str):
        if frame_rate:
            number = _js_string_to_number(frame_rate)
            frame_rate_text = "" if math.isnan(number) else _js_number_to_string(number)
    elif frame_rate is not None and _truthy_number(frame_rate):
        frame_rate_text = _js_number_text(frame_rate)
    video_range_text = _js_trim(video_range.upper()) if video_range else ""
    fields = (
        "0" if bitrate is None else _js_number_text(bitrate),
        codecs_text,
        "" if width is None else _js_number_text(width),
        "" if height is None else _js_number_text(height),
        language_text,
        channels_text,
        name_text,
        frame_rate_text,
        video_range_text,
    )
    return "-".join(fields)


def stream_short_id(
    *,
    bitrate: float | None = None,
    codecs: str | None = None,
    width: int | None = None,
    height: int | None = None,
    language: str | None = None,
    channels: str | int | None = None,
    name: str | None = None,
    frame_rate: str | float | None = None,
    video_range: str | None = None,
) -> str:
    """2.3.1's ``generateStreamShortId``: base64 of the SHA-1 of :func:`stream_metadata_string`.

    This is the ``index`` part of a stream swarm id (28 characters, may contain ``+``, ``/`` and ``=``).
    The arguments are what the player glue passes; for hls.js use :func:`hlsjs_level_short_id` and
    :func:`hlsjs_audio_track_short_id`, which do the glue's part.
    """
    text = stream_metadata_string(
        bitrate=bitrate,
        codecs=codecs,
        width=width,
        height=height,
        language=language,
        channels=channels,
        name=name,
        frame_rate=frame_rate,
        video_range=video_range,
    )
    return base64.b64encode(hashlib.sha1(_js_utf8(text)).digest()).decode("ascii")


# --------------------------------------------------------------------------------------------------
# What the hls.js glue passes (p2p-media-loader-hlsjs 2.3.1 on hls.js 1.6.16)

# hls.js sampleEntryCodesISO (utils/codecs.ts): a CODECS entry's type is decided by its first 4 chars.
_HLSJS_VIDEO_ENTRIES = frozenset(
    {
        "avc1", "avc2", "avc3", "avc4", "avcp", "av01", "dav1", "drac", "dva1", "dvav", "dvh1", "dvhe",
        "encv", "hev1", "hvc1", "mjp2", "mp4v", "mvc1", "mvc2", "mvc3", "mvc4", "resv", "rv60", "s263",
        "svc1", "svc2", "vc-1", "vp08", "vp09",
    }
)  # fmt: skip
_HLSJS_AUDIO_ENTRIES = frozenset(
    {
        "a3ds", "ac-3", "ac-4", "alac", "alaw", "dra1", "dts+", "dts-", "dtsc", "dtse", "dtsh", "ec-3",
        "enca", "fLaC", "flac", "FLAC", "g719", "g726", "m4ae", "mha1", "mha2", "mhm1", "mhm2", "mlpa",
        "mp4a", "raw ", "Opus", "opus", "samr", "sawb", "sawp", "sevc", "sqcp", "ssmv", "twos", "ulaw",
    }
)  # fmt: skip


def _hlsjs_codecs_of_type(codecs: str | None, entries: frozenset[str]) -> str | None:
    # setCodecs in hls.js loader/m3u8-parser.ts
    items = [c for c in re.split(r"[ ,]+", codecs or "") if c]
    chosen = [c.split("/")[0] for c in items if c[:4] in entries]
    return ",".join(chosen) if chosen else None


def _hlsjs_avc1_to_avcoti(video_codecs: str) -> str:
    # convertAVC1ToAVCOTI in hls.js utils/codecs.ts (applied by the level controller before the glue runs)
    out = []
    for codec in video_codecs.split(","):
        parts = codec.split(".")
        if len(parts) > 2 and parts[0] == "avc1":
            level_hex = ("000" + _js_to_hex(_js_parse_int(parts[2])))[-4:]
            codec = f"avc1.{_js_to_hex(_js_parse_int(parts[1]))}{level_hex}"
        out.append(codec)
    return ",".join(out)


def hlsjs_video_codec(codecs: str | None) -> str | None:
    """hls.js's ``level.videoCodec`` for a variant's CODECS attribute, as the glue sees it.

    The video entries of CODECS (by their first 4 characters, case-sensitive), each cut at ``/``, joined
    with ``,`` and with decimal ``avc1.P.L`` converted by hls.js's ``convertAVC1ToAVCOTI``. None when
    there is none. Entries hls.js does not know are added by the browser only when MediaSource supports
    them; that browser-dependent case is not reproduced.
    """
    video = _hlsjs_codecs_of_type(codecs, _HLSJS_VIDEO_ENTRIES)
    return None if video is None else _hlsjs_avc1_to_avcoti(video)


def hlsjs_audio_codec(codecs: str | None) -> str | None:
    """The audio entries of a CODECS attribute as hls.js's parser extracts them (``level.audioCodec``
    before the level controller's browser-dependent renaming), or None."""
    return _hlsjs_codecs_of_type(codecs, _HLSJS_AUDIO_ENTRIES)


def _hlsjs_decimal_integer(value: int | None) -> float:
    # AttrList.decimalInteger: NaN when absent, Infinity above Number.MAX_SAFE_INTEGER.
    if value is None:
        return math.nan
    return math.inf if value > _JS_MAX_SAFE_INTEGER else float(value)


def hlsjs_level_short_id(
    *,
    bandwidth: int,
    average_bandwidth: int | None = None,
    resolution: tuple[int, int] | None = None,
    codecs: str | None = None,
    frame_rate: str | float | None = None,
    video_range: str | None = None,
) -> str:
    """The stream index of a variant (hls.js level, stream type ``main``), as 2.3.1's hls.js glue computes it.

    Mapping from :class:`p2ploader.hls.Variant`: ``bandwidth`` <- ``bandwidth``, ``average_bandwidth`` <-
    ``average_bandwidth``, ``resolution`` <- ``resolution``, ``codecs`` <- ``codecs`` (the whole CODECS
    attribute), ``frame_rate`` <- ``frame_rate`` (or the raw FRAME-RATE text), ``video_range`` <- the
    VIDEO-RANGE attribute (not kept by ``Variant`` today; pass it when the master has one). The variant's
    ``index`` plays no part in 2.3.1.

    The glue passes ``bitrate = maxBitrate ?? bitrate``; hls.js's parsed levels have no ``maxBitrate`` and
    ``bitrate = BANDWIDTH || AVERAGE-BANDWIDTH``. With a bitrate of 0 ("missing metadata", e.g. a media
    playlist loaded without a master, which :mod:`p2ploader.hls` models as a variant of bandwidth 0)
    everything else is left out. Otherwise ``codecs`` is hls.js's video codec (:func:`hlsjs_video_codec`:
    the audio codecs are *not* part of a level's id), ``width``/``height`` come from RESOLUTION, and
    ``frameRate``/``videoRange`` are the raw attributes.

    Divergence: a master declaring ``BANDWIDTH=0`` without AVERAGE-BANDWIDTH gives ``NaN`` as bitrate in
    hls.js; we give 0. hls.js also ignores a RESOLUTION written with a capital ``X``.
    """
    peak = _hlsjs_decimal_integer(bandwidth)
    bitrate = peak if _truthy_number(peak) else _hlsjs_decimal_integer(average_bandwidth)
    if math.isnan(bitrate) and bandwidth == 0:
        bitrate = 0.0  # hls.js's single level for a media playlist without a master has bitrate 0
    if bitrate == 0:
        return stream_short_id(bitrate=0)
    width, height = resolution if resolution is not None else (None, None)
    return stream_short_id(
        bitrate=bitrate,
        codecs=hlsjs_video_codec(codecs),
        width=width,
        height=height,
        frame_rate=frame_rate,
        video_range=video_range,
    )


class VariantLike(Protocol):
    """What the hls.js mapping reads from a variant (satisfied by :class:`p2ploader.hls.Variant`)."""

    @property
    def rendition_id(self) -> str: ...
    @property
    def bandwidth(self) -> int: ...
    @property
    def average_bandwidth(self) -> int | None: ...
    @property
    def resolution(self) -> tuple[int, int] | None: ...
    @property
    def codecs(self) -> str | None: ...
    @property
    def frame_rate(self) -> float | None: ...
    @property
    def audio(self) -> str | None: ...


class AudioRenditionLike(Protocol):
    """What the hls.js mapping reads from an EXT-X-MEDIA rendition.

    Satisfied by :class:`p2ploader.hls.AlternateRendition`.
    """

    @property
    def type(self) -> str: ...
    @property
    def group_id(self) -> str: ...
    @property
    def name(self) -> str: ...
    @property
    def rendition_id(self) -> str: ...
    @property
    def url(self) -> str | None: ...
    @property
    def language(self) -> str | None: ...
    @property
    def channels(self) -> str | None: ...


def hlsjs_audio_track_codec(group_id: str, variants: Sequence[VariantLike]) -> str | None:
    """hls.js's ``audioCodec`` for an audio track of GROUP-ID ``group_id``.

    hls.js takes the audio codecs (:func:`hlsjs_audio_codec`) of the first variant whose AUDIO attribute
    is ``group_id`` and, when no variant refers to the group, those of the first variant.
    """
    if not variants:
        return None
    source = next((v for v in variants if v.audio == group_id), variants[0])
    return hlsjs_audio_codec(source.codecs)


def hlsjs_audio_track_short_id(
    *,
    name: str | None,
    language: str | None = None,
    channels: str | None = None,
    codecs: str | None = None,
) -> str:
    """The stream index of an audio track (``EXT-X-MEDIA TYPE=AUDIO``, stream type ``secondary``).

    Mapping from :class:`p2ploader.hls.AlternateRendition`: ``name`` <- ``name``, ``language`` <-
    ``language``, ``channels`` <- ``channels`` (raw CHANNELS text), ``codecs`` <-
    :func:`hlsjs_audio_track_codec` of its ``group_id``. The glue passes bitrate 0 and hls.js's track
    name, which is ``NAME || LANGUAGE || ""``. The GROUP-ID is not part of the id: two groups with a
    track of the same name, language, channels and codec share one swarm.
    """
    return stream_short_id(
        bitrate=0,
        codecs=codecs,
        language=language,
        channels=channels,
        name=name or language or "",
    )


@attrs.frozen(kw_only=True)
class P2PStream:
    """One P2P stream (one swarm per swarm id): a rendition, its stream type and its 2.3.1 index."""

    rendition_id: str
    type: StreamType
    index: str

    def swarm_id(self, swarm: str) -> str:
        """This stream's swarm id under the swarm id ``swarm`` (see :func:`stream_swarm_id`)."""
        return stream_swarm_id(swarm, self.type, self.index)

    def info_hash(self, swarm: str) -> bytes:
        """This stream's 20-byte tracker info hash under the swarm id ``swarm``."""
        return info_hash(self.swarm_id(swarm))


def hlsjs_streams(
    variants: Sequence[VariantLike],
    renditions: Sequence[AudioRenditionLike] = (),
    *,
    video_ranges: Mapping[str, str] | None = None,
) -> tuple[P2PStream, ...]:
    """The P2P streams 2.3.1's hls.js glue registers for a master playlist, in its order.

    Every variant becomes a ``main`` stream and every AUDIO rendition with a URI a ``secondary`` one
    (subtitles, closed captions and EXT-X-MEDIA video renditions are never P2P). ``video_ranges`` maps
    a variant's rendition id to its VIDEO-RANGE. Renditions with equal metadata get equal indexes, hence
    the same swarm.
    """
    ranges = video_ranges or {}
    streams = [
        P2PStream(
            rendition_id=v.rendition_id,
            type=StreamType.MAIN,
            index=hlsjs_level_short_id(
                bandwidth=v.bandwidth,
                average_bandwidth=v.average_bandwidth,
                resolution=v.resolution,
                codecs=v.codecs,
                frame_rate=v.frame_rate,
                video_range=ranges.get(v.rendition_id),
            ),
        )
        for v in variants
    ]
    streams.extend(
        P2PStream(
            rendition_id=r.rendition_id,
            type=StreamType.SECONDARY,
            index=hlsjs_audio_track_short_id(
                name=r.name,
                language=r.language,
                channels=r.channels,
                codecs=hlsjs_audio_track_codec(r.group_id, variants),
            ),
        )
        for r in renditions
        if r.type == "AUDIO" and r.url is not None
    )
    return tuple(streams)


# --------------------------------------------------------------------------------------------------
# Stream swarm id and info hash


def stream_swarm_id(swarm: str, stream_type: StreamType, index: str) -> str:
    """2.3.1's ``getStreamSwarmId``: ``v2-<swarm>-<type>-<index>``."""
    return f"{PEER_PROTOCOL_VERSION}-{swarm}-{StreamType(stream_type).value}-{index}"


def info_hash(stream_swarm_id: str) -> bytes:
    """2.3.1's ``getStreamHash``: the 20-byte tracker info hash of a stream swarm id.

    The base64 text (20 ASCII characters, no padding) of the first 15 bytes of the SHA-1 of the UTF-8
    stream swarm id. It is *not* a binary SHA-1.
    """
    digest = hashlib.sha1(_js_utf8(stream_swarm_id)).digest()
    return base64.b64encode(digest[:_INFO_HASH_SHA1_BYTES])


def info_hash_latin1(stream_swarm_id: str) -> str:
    """:func:`info_hash` as the latin-1 string the WebTorrent tracker JSON carries."""
    return latin1(info_hash(stream_swarm_id))


def latin1(data: bytes) -> str:
    """A 20-byte id (info hash, peer id) as the tracker JSON carries it: one character per byte
    (the tracker wire codec's :func:`~p2ploader.core.tracker_wire.binary_string`)."""
    return binary_string(data)


def from_latin1(text: str) -> bytes:
    """The bytes of an id received as a latin-1 string in tracker JSON.

    Raises :class:`ValueError` (:class:`UnicodeEncodeError`) for a character above U+00FF.
    """
    return from_binary_string(text)


# --------------------------------------------------------------------------------------------------
# Segment ids on the wire


def segment_wire_id(segment_id: SegmentId, *, live: bool, first_sequence: int) -> int:
    """The integer that identifies ``segment_id`` in the 2.x wire protocol (``externalId``).

    ``live`` is whether the media playlist had no ``EXT-X-ENDLIST`` when the segment was first seen;
    ``first_sequence`` is that playlist's EXT-X-MEDIA-SEQUENCE. Live: the media sequence number. VOD:
    the position in the playlist, ``sequence - first_sequence``. hls.js glue caveat: a segment keeps the
    id it got when first seen, so a browser that watched an EVENT stream live keeps sequence numbers for
    it after ENDLIST appears, while a browser that arrives later numbers the same segments by position.
    """
    if live:
        return segment_id.sequence
    position = segment_id.sequence - first_sequence
    if position < 0:
        raise ValueError(f"{segment_id} precedes the playlist's first sequence {first_sequence}")
    return position


def segment_id_from_wire(rendition: str, wire_id: int, *, live: bool, first_sequence: int) -> SegmentId:
    """The inverse of :func:`segment_wire_id` for a rendition of ours."""
    if wire_id < 0:
        raise ValueError(f"negative wire segment id {wire_id}")
    return SegmentId(rendition, wire_id if live else first_sequence + wire_id)


# --------------------------------------------------------------------------------------------------
# Peer id


def version_prefix(client: str, version: str) -> str:
    """A peer id prefix formatted as 2.3.1 formats its own: ``-<client><MM><mm>-``.

    ``MM`` and ``mm`` are the major and minor parts of ``version``, left-padded with ``0`` to 2
    characters (``formatVersion``). ``version_prefix("PM", "2.3.1") == "-PM0203-"``.
    """
    parts = version.split(".")
    if len(parts) < 2:
        raise ValueError(f"version {version!r} has no minor part")
    return f"-{client}{parts[0].rjust(2, '0')}{parts[1].rjust(2, '0')}-"


def generate_peer_id(rng: random.Random, *, prefix: str = P2PLOADER_PEER_ID_PREFIX) -> bytes:
    """A 20-byte peer id: ``prefix`` then characters drawn uniformly from :data:`PEER_ID_ALPHABET`.

    As 2.3.1's ``generatePeerId``, with randomness from ``rng`` (seed it for reproducible ids). The
    prefix must be printable ASCII of at most 20 characters; use :data:`P2PML_PEER_ID_PREFIX` to look
    like a 2.3.1 browser peer. P2P Media Loader keeps one peer id per info hash until it is destroyed.
    """
    if len(prefix) > PEER_ID_LENGTH or not all(" " <= ch <= "~" for ch in prefix):
        raise ValueError(f"peer id prefix must be at most {PEER_ID_LENGTH} printable ASCII characters")
    # Math.floor(Math.random() * 62), as upstream, with rng.random() in place of Math.random().
    size = len(PEER_ID_ALPHABET)
    tail = "".join(PEER_ID_ALPHABET[int(rng.random() * size)] for _ in range(PEER_ID_LENGTH - len(prefix)))
    return (prefix + tail).encode("ascii")
