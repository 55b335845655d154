"""The proxy's URL layout: building and parsing its opaque paths (pure functions, no I/O).

Every URL the proxy hands a player is one of::

    /master.m3u8                          the rewritten master playlist
    /r/<token>/index.m3u8                 a rewritten media playlist
    /r/<token>/seg/<sequence>.<ext>       one media segment (exactly its bytes, never a byte range)
    /r/<token>/key/<n>                    an EXT-X-KEY key, over HTTP only
    /r/<token>/init/<n>.<ext>             an EXT-X-MAP init section, whole
    /r/<token>/part/<sequence>.<k>.<ext>  LL-HLS part ``k`` of a segment (exactly its bytes)

``<token>`` names a rendition: ``v<i>`` is variant ``i`` of the master playlist (the loader's
rendition id), ``m<i>`` is its ``i``-th EXT-X-MEDIA entry, ``i<i>`` its ``i``-th
EXT-X-I-FRAME-STREAM-INF (trick play; each I-frame is served as exactly its byte range).
``<sequence>`` is the segment's media sequence number, ``<k>`` a part's index in its segment (from
0), ``<n>`` an index the proxy assigned to a key
or init section when it rendered a playlist. Nothing in a path is ever a URL or a file name: the
proxy looks every part up in what the origin's playlists listed, so a request can only name
something the origin offered.

The parsers are strict (no signs, no leading zeros, bounded lengths, known extensions) and raise
:class:`MalformedPathError` for a part that does not have the shape of one the proxy builds. Players
check segment extensions (ffmpeg's ``extension_picky``), so segments keep the one their origin URL
has (``.ts``, ``.m4s``, ``.aac``, ...).
"""

from __future__ import annotations

import posixpath
import re
from typing import Final, Literal
from urllib.parse import urlsplit

import attrs

from p2ploader.core.segments import InitSection, Part, Segment

__all__ = [
    "INIT_EXTENSIONS",
    "KEY_CONTENT_TYPE",
    "MASTER_PATH",
    "PLAYLIST_CONTENT_TYPE",
    "SEGMENT_EXTENSIONS",
    "MalformedPathError",
    "Token",
    "content_type",
    "init_extension",
    "init_path",
    "key_path",
    "parse_init_name",
    "parse_key_name",
    "parse_part_name",
    "parse_segment_name",
    "parse_token",
    "part_extension",
    "part_path",
    "playlist_path",
    "segment_extension",
    "segment_path",
    "url_extension",
]

MASTER_PATH: Final = "/master.m3u8"

#: Segment extensions the proxy uses (and accepts), with their Content-Type.
SEGMENT_EXTENSIONS: Final = {
    "ts": "video/mp2t",
    "mts": "video/mp2t",
    "m4s": "video/mp4",
    "mp4": "video/mp4",
    "m4v": "video/mp4",
    "cmfv": "video/mp4",
    "m4a": "audio/mp4",
    "cmfa": "audio/mp4",
    "aac": "audio/aac",
    "mp3": "audio/mpeg",
    "ac3": "audio/ac3",
    "ec3": "audio/eac3",
    "vtt": "text/vtt",
    "webvtt": "text/vtt",
}
#: Init section extensions, with their Content-Type.
INIT_EXTENSIONS: Final = {
    "mp4": "video/mp4",
    "m4s": "video/mp4",
    "m4v": "video/mp4",
    "cmfv": "video/mp4",
    "m4a": "audio/mp4",
    "cmfa": "audio/mp4",
    "ts": "video/mp2t",
}
PLAYLIST_CONTENT_TYPE: Final = "application/vnd.apple.mpegurl"
KEY_CONTENT_TYPE: Final = "application/octet-stream"

_UINT64_LIMIT: Final = 2**64
_TOKEN: Final = re.compile(r"([vmi])(0|[1-9][0-9]{0,5})", re.ASCII)
_SEQUENCE: Final = r"(0|[1-9][0-9]{0,19})"
_INDEX: Final = r"(0|[1-9][0-9]{0,8})"
_SEGMENT_NAME: Final = re.compile(_SEQUENCE + r"\.([a-z0-9]{1,8})", re.ASCII)
_KEY_NAME: Final = re.compile(_INDEX, re.ASCII)
_INIT_NAME: Final = re.compile(_INDEX + r"\.([a-z0-9]{1,8})", re.ASCII)
_PART_NAME: Final = re.compile(_SEQUENCE + r"\." + _INDEX + r"\.([a-z0-9]{1,8})", re.ASCII)


class MalformedPathError(ValueError):
    """A path part does not have the shape of one the proxy builds (HTTP 400)."""


@attrs.frozen
class Token:
    """A rendition of the proxied stream: ``kind`` ``"v"`` (a variant), ``"m"`` (an EXT-X-MEDIA
    rendition) or ``"i"`` (an I-frame playlist) and its index in the master playlist."""

    kind: Literal["v", "m", "i"]
    index: int

    def __str__(self) -> str:
        return f"{self.kind}{self.index}"


def parse_token(text: str) -> Token:
    match = _TOKEN.fullmatch(text)
    if match is None:
        raise MalformedPathError(f"not a rendition token: {text[:40]!r}")
    kinds: dict[str, Literal["v", "m", "i"]] = {"v": "v", "m": "m", "i": "i"}
    return Token(kinds[match[1]], int(match[2]))


def parse_segment_name(text: str) -> tuple[int, str]:
    """``"<sequence>.<ext>"`` -> (sequence, ext)."""
    match = _SEGMENT_NAME.fullmatch(text)
    if match is None or int(match[1]) >= _UINT64_LIMIT or match[2] not in SEGMENT_EXTENSIONS:
        raise MalformedPathError(f"not a segment name: {text[:40]!r}")
    return int(match[1]), match[2]


def parse_part_name(text: str) -> tuple[int, int, str]:
    """``"<sequence>.<k>.<ext>"`` -> (sequence, k, ext)."""
    match = _PART_NAME.fullmatch(text)
    if match is None or int(match[1]) >= _UINT64_LIMIT or match[3] not in SEGMENT_EXTENSIONS:
        raise MalformedPathError(f"not a part name: {text[:40]!r}")
    return int(match[1]), int(match[2]), match[3]


def parse_key_name(text: str) -> int:
    match = _KEY_NAME.fullmatch(text)
    if match is None:
        raise MalformedPathError(f"not a key name: {text[:40]!r}")
    return int(match[1])


def parse_init_name(text: str) -> tuple[int, str]:
    """``"<n>.<ext>"`` -> (n, ext)."""
    match = _INIT_NAME.fullmatch(text)
    if match is None or match[2] not in INIT_EXTENSIONS:
        raise MalformedPathError(f"not an init section name: {text[:40]!r}")
    return int(match[1]), match[2]


def playlist_path(token: Token) -> str:
    return f"/r/{token}/index.m3u8"


def segment_path(token: Token, segment: Segment) -> str:
    return f"/r/{token}/seg/{segment.id.sequence}.{segment_extension(segment)}"


def part_path(token: Token, sequence: int, index: int, extension: str) -> str:
    """The path of part ``index`` of segment ``sequence`` (a listed part or a preload hint's)."""
    return f"/r/{token}/part/{sequence}.{index}.{extension}"


def key_path(token: Token, number: int) -> str:
    return f"/r/{token}/key/{number}"


def init_path(token: Token, number: int, init: InitSection) -> str:
    return f"/r/{token}/init/{number}.{init_extension(init)}"


def _suffix(url: str) -> str:
    return posixpath.splitext(urlsplit(url).path)[1].lower().removeprefix(".")


def segment_extension(segment: Segment) -> str:
    """The extension of the segment's proxy URL: its origin URL's when the proxy knows it, else
    ``m4s`` for fMP4 (a segment with an init section) and ``ts`` otherwise."""
    suffix = _suffix(segment.url)
    if suffix in SEGMENT_EXTENSIONS:
        return suffix
    return "m4s" if segment.init_section is not None else "ts"


def part_extension(part: Part, default: str) -> str:
    """The extension of a part's proxy URL: its origin URL's when the proxy knows it, else
    ``default`` (its segment's)."""
    return url_extension(part.url, default)


def url_extension(url: str, default: str) -> str:
    """The media extension of ``url`` when the proxy knows it, else ``default``."""
    suffix = _suffix(url)
    return suffix if suffix in SEGMENT_EXTENSIONS else default


def init_extension(init: InitSection) -> str:
    suffix = _suffix(init.url)
    return suffix if suffix in INIT_EXTENSIONS else "mp4"


def content_type(kind: Literal["segment", "init"], extension: str) -> str:
    table = SEGMENT_EXTENSIONS if kind == "segment" else INIT_EXTENSIONS
    return table[extension]
