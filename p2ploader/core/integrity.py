"""Segment integrity, sans-IO: the published-hash playlist format and the spot-check plan.

The origin may publish each segment's SHA-256 in its media playlist, one tag per segment written
right before the segment's URI line::

    #EXTINF:2.000,
    #EXT-X-P2PLOADER-SHA256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08
    seg_0.ts

The tag applies to the next segment URI of the playlist and carries 64 lowercase or uppercase
hexadecimal digits: the SHA-256 of the segment's bytes (of its byte range when the segment has an
``EXT-X-BYTERANGE``). Players ignore it (RFC 8216 §4.1: clients MUST ignore unrecognised tags), so
a stream with the tags plays everywhere. A playlist that carries hashes for some segments only is
valid; segments without a tag are simply unverifiable by hash.

The digests are keyed by media sequence number, the identity peers announce and request, so a
live playlist whose window slides keeps its keys.

This module does no I/O: parsing and rendering are functions of text, the spot-check plan a function
of a size and a ``random.Random``.
"""

from __future__ import annotations

import hashlib
import random
import re
from collections.abc import Callable, Sequence
from typing import Final

import attrs

from p2ploader.errors import PlaylistError

__all__ = [
    "HASH_TAG",
    "SegmentUri",
    "SpotCheckRange",
    "add_hash_tags",
    "digest_matches",
    "parse_hash_tags",
    "plan_spot_checks",
    "segment_uri_lines",
    "sha256",
]

HASH_TAG: Final = "#EXT-X-P2PLOADER-SHA256"
"""The tag publishing a segment's SHA-256 (see the module docstring)."""

_HEX64: Final = re.compile(r"[0-9a-fA-F]{64}", re.ASCII)
_MAX_PLAYLIST_CHARS: Final = 64 * 1024 * 1024  # bounded work on hostile input


def sha256(data: bytes) -> bytes:
    """The 32-byte SHA-256 digest of ``data``."""
    return hashlib.sha256(data).digest()


def digest_matches(data: bytes, digest: bytes) -> bool:
    """Whether ``data`` hashes to ``digest`` (a 32-byte SHA-256)."""
    return hashlib.sha256(data).digest() == digest


def _lines(text: str, url: str) -> list[str]:
    if len(text) > _MAX_PLAYLIST_CHARS:
        raise PlaylistError(url, f"playlist larger than {_MAX_PLAYLIST_CHARS} characters")
    return text.lstrip("\ufeff").splitlines()


def _media_sequence(value: str, url: str) -> int:
    value = value.strip()
    if not value.isascii() or not value.isdigit() or len(value) > 20:
        raise PlaylistError(url, f"EXT-X-MEDIA-SEQUENCE is not a decimal integer: {value!r}")
    return int(value)


def parse_hash_tags(text: str, url: str = "<playlist>") -> dict[int, bytes]:
    """The published digests of a media playlist: ``{media sequence number: 32-byte SHA-256}``.

    Raises :class:`~p2ploader.errors.PlaylistError` for a malformed tag, two tags for one segment,
    or a tag after the last segment; never anything else, whatever the text.
    """
    lines = _lines(text, url)
    sequence = 0
    index = 0  # segment URIs seen
    pending: bytes | None = None
    out: dict[int, bytes] = {}
    for lineno, raw in enumerate(lines, 1):
        line = raw.strip()
        if not line:
            continue
        if line.startswith("#EXT-X-MEDIA-SEQUENCE:"):
            sequence = _media_sequence(line.partition(":")[2], url)
        elif line.startswith(HASH_TAG):
            name, sep, value = line.partition(":")
            if name != HASH_TAG or not sep or not _HEX64.fullmatch(value.strip()):
                raise PlaylistError(url, f"line {lineno}: {HASH_TAG} needs 64 hexadecimal digits")
            if pending is not None:
                raise PlaylistError(url, f"line {lineno}: two {HASH_TAG} tags for one segment")
            pending = bytes.fromhex(value.strip())
        elif not line.startswith("#"):
            if pending is not None:
                out[sequence + index] = pending
                pending = None
            index += 1
    if pending is not None:
        raise PlaylistError(url, f"{HASH_TAG} after the last segment")
    return out


@attrs.frozen(kw_only=True)
class SegmentUri:
    """A segment URI line of a media playlist, with its byte range when it has one."""

    line_index: int  # index in the playlist's list of lines
    uri: str
    offset: int | None = None  # EXT-X-BYTERANGE, resolved (implicit offsets follow the previous range)
    length: int | None = None


def segment_uri_lines(text: str, url: str = "<playlist>") -> list[SegmentUri]:
    """Every segment URI line of a media playlist, in order, with its resolved byte range.

    Raises :class:`~p2ploader.errors.PlaylistError` for an unusable ``EXT-X-BYTERANGE``.
    """
    lines = _lines(text, url)
    out: list[SegmentUri] = []
    byte_range: tuple[int | None, int] | None = None
    next_offset: dict[str, int] = {}  # an implicit offset continues the previous range of the same URI
    for index, raw in enumerate(lines):
        line = raw.strip()
        if line.startswith("#EXT-X-BYTERANGE:"):
            spec = line.partition(":")[2].strip()
            length_text, _, offset_text = spec.partition("@")
            if not length_text.isdigit() or (offset_text and not offset_text.isdigit()):
                raise PlaylistError(url, f"line {index + 1}: bad EXT-X-BYTERANGE {spec!r}")
            byte_range = (int(offset_text) if offset_text else None, int(length_text))
        elif line and not line.startswith("#"):
            if byte_range is None:
                out.append(SegmentUri(line_index=index, uri=line))
                continue
            offset, length = byte_range
            if offset is None:
                if line not in next_offset:
                    raise PlaylistError(url, f"line {index + 1}: EXT-X-BYTERANGE without an offset")
                offset = next_offset[line]
            next_offset[line] = offset + length
            out.append(SegmentUri(line_index=index, uri=line, offset=offset, length=length))
            byte_range = None
    return out


def add_hash_tags(text: str, digest_of: Callable[[SegmentUri], bytes], url: str = "<playlist>") -> str:
    """``text`` with one :data:`HASH_TAG` right before every segment URI line, replacing any tags
    already there (running it twice gives the same text). ``digest_of`` returns the SHA-256 of a
    segment's bytes. Line endings become ``\\n``; every other line is kept verbatim."""
    lines = _lines(text, url)
    uris = {s.line_index: s for s in segment_uri_lines(text, url)}
    out: list[str] = []
    for index, line in enumerate(lines):
        if line.strip().startswith(HASH_TAG + ":"):
            continue  # replaced below
        segment = uris.get(index)
        if segment is not None:
            digest = digest_of(segment)
            if len(digest) != 32:
                raise ValueError(f"digest_of returned {len(digest)} bytes, a SHA-256 has 32")
            out.append(f"{HASH_TAG}:{digest.hex()}")
        out.append(line)
    return "\n".join(out) + "\n"


@attrs.frozen(kw_only=True)
class SpotCheckRange:
    """Bytes ``[offset, offset + length)`` of a segment, to compare with the origin."""

    offset: int
    length: int

    @property
    def end(self) -> int:
        return self.offset + self.length


def plan_spot_checks(
    size: int,
    *,
    count: int,
    length: int,
    rng: random.Random,
    focus: Sequence[tuple[int, int]] = (),
) -> tuple[SpotCheckRange, ...]:
    """``count`` ranges of up to ``length`` bytes in a segment of ``size`` bytes, sorted by offset.

    The first range always ends at the segment's last byte, so the origin's ``Content-Range`` total
    also checks the segment's size; the others are drawn uniformly. A segment smaller than the
    budget is checked whole in one range.

    ``focus``: ``(offset, length)`` spans of the segment that came from peers (the rest came from
    the origin and needs no check); the drawn ranges then each cover a byte drawn uniformly from
    those spans. A flip of one byte among ``P`` peer bytes is caught with a probability of about
    ``(count - 1) * length / P``, plus the last range's share, instead of ``count * length / size``.
    """
    if size <= 0 or count <= 0 or length <= 0:
        return ()
    if size <= count * length:
        return (SpotCheckRange(offset=0, length=size),)
    ranges = {SpotCheckRange(offset=size - length, length=length)}
    spans = [(max(0, o), min(size, o + n)) for o, n in focus if n > 0 and o < size]
    peer_bytes = sum(end - start for start, end in spans)
    for _ in range(count - 1):
        if peer_bytes <= 0:
            offset = rng.randrange(0, size - length + 1)
        else:
            target = rng.randrange(peer_bytes)  # the peer byte this range must cover
            for start, end in spans:
                if target < end - start:
                    target += start
                    break
                target -= end - start
            offset = min(max(0, target - rng.randrange(length)), size - length)
        ranges.add(SpotCheckRange(offset=offset, length=length))
    return tuple(sorted(ranges, key=lambda r: r.offset))
