"""Value objects that describe HLS segments to the sans-IO core.

:mod:`p2ploader.hls` builds these from playlists; the scheduler only reads them. A segment's identity
(:class:`SegmentId`) is stable across playlist refreshes: the rendition it belongs to plus its media
sequence number, which is what peers announce and request.
"""

from __future__ import annotations

from datetime import datetime

import attrs

__all__ = ["IV_BYTES", "ByteRange", "InitSection", "KeyInfo", "Part", "PartId", "Segment", "SegmentId"]

IV_BYTES = 16
"""Length in bytes of an AES-128 initialisation vector (EXT-X-KEY ``IV``, RFC 8216 §4.3.2.4)."""


def _non_negative(_instance: object, attribute: attrs.Attribute[int], value: int) -> None:
    if value < 0:
        raise ValueError(f"{attribute.name} must be >= 0, got {value}")


def _iv_bytes(_instance: object, attribute: attrs.Attribute[bytes | None], value: bytes | None) -> None:
    if value is not None and (not isinstance(value, bytes) or len(value) != IV_BYTES):
        raise ValueError(f"{attribute.name} must be None or {IV_BYTES} bytes, got {value!r}")


def _positive(_instance: object, attribute: attrs.Attribute[int], value: int) -> None:
    if value <= 0:
        raise ValueError(f"{attribute.name} must be > 0, got {value}")


@attrs.frozen(kw_only=True)
class ByteRange:
    """A byte range of a resource: ``length`` bytes starting at ``offset`` (both in bytes)."""

    offset: int = attrs.field(validator=_non_negative)
    length: int = attrs.field(validator=_positive)

    @property
    def end(self) -> int:
        """Offset one past the last byte (exclusive)."""
        return self.offset + self.length

    def http_range(self, skip: int = 0) -> str:
        """The ``Range`` header value for this range, skipping its first ``skip`` bytes."""
        return f"bytes={self.offset + skip}-{self.end - 1}"


@attrs.frozen(order=True, cache_hash=True)
class SegmentId:
    """Stable identity of a segment: its rendition and its media sequence number.

    Hashed often (every cache, queue and announcement lookup), so the hash is cached; sort with
    :meth:`sort_key` where speed matters (attrs' generated comparisons are slow).
    """

    rendition: str
    sequence: int

    def sort_key(self) -> tuple[str, int]:
        return (self.rendition, self.sequence)

    def __str__(self) -> str:
        return f"{self.rendition}#{self.sequence}"


@attrs.frozen(order=True, cache_hash=True)
class PartId:
    """Stable identity of a part: its parent segment and its index in that segment (from 0)."""

    segment: SegmentId
    index: int = attrs.field(validator=_non_negative)

    def __str__(self) -> str:
        return f"{self.segment}.{self.index}"


@attrs.frozen(kw_only=True)
class Part:
    """One ``EXT-X-PART``: a slice of a segment that is published before the segment is complete.

    ``duration`` is in seconds. ``byte_range`` is the part's ``BYTERANGE`` (parts of one segment
    often share one URI, the segment's, each a range of it). ``independent`` is the tag's
    ``INDEPENDENT=YES`` (the part starts with a sync sample, so a player may start or switch there);
    ``gap`` is ``GAP=YES`` (the part's media is absent: never fetched, skipped by the player).
    """

    id: PartId
    url: str
    duration: float
    byte_range: ByteRange | None = None
    independent: bool = False
    gap: bool = False

    @property
    def segment(self) -> SegmentId:
        """The parent segment's identity."""
        return self.id.segment


@attrs.frozen(kw_only=True)
class InitSection:
    """An EXT-X-MAP initialisation section (fMP4 ``moov``, or a TS header)."""

    url: str
    byte_range: ByteRange | None = None


@attrs.frozen(kw_only=True)
class KeyInfo:
    """An EXT-X-KEY entry. Only the description travels here; key bytes are fetched over HTTP only
    and never offered to peers.

    ``iv`` is the tag's ``IV`` attribute as its 16 bytes (the 128-bit hexadecimal integer, most
    significant byte first), or ``None`` when the tag has none: the segment's media sequence number
    is then the IV (RFC 8216 §5.2; see :func:`p2ploader.decryption.segment_iv`).
    """

    method: str
    url: str | None = None
    iv: bytes | None = attrs.field(default=None, validator=_iv_bytes)
    key_format: str | None = None

    @property
    def iv_hex(self) -> str | None:
        """``iv`` as a playlist writes it (``0x`` and 32 hexadecimal digits), or ``None``."""
        return None if self.iv is None else "0x" + self.iv.hex()


@attrs.frozen(kw_only=True)
class Segment:
    """One media segment, as the core sees it.

    ``start`` is the segment's position on the media timeline in seconds (the sum of the durations
    of the segments before it since the stream's first known segment); ``duration`` is in seconds.
    ``gap`` is True for a segment marked ``EXT-X-GAP`` (RFC 8216bis §4.4.4.7): its media is absent,
    so it is never fetched, over HTTP or from peers, and never announced; a player skips its
    ``duration`` without waiting for bytes.
    """

    id: SegmentId
    url: str
    duration: float
    start: float = 0.0
    byte_range: ByteRange | None = None
    init_section: InitSection | None = None
    key: KeyInfo | None = None
    discontinuity_sequence: int = 0
    program_date_time: datetime | None = None
    """Wall-clock date and time (timezone-aware) of the segment's first sample: the playlist's
    ``EXT-X-PROGRAM-DATE-TIME`` for this segment, or extrapolated from the nearest one (RFC 8216
    §4.3.2.6). None on every segment of a playlist without the tag."""
    gap: bool = attrs.field(default=False, validator=attrs.validators.instance_of(bool))
    parts: tuple[Part, ...] = ()
    """The segment's LL-HLS parts (``EXT-X-PART`` before its ``EXTINF``), in order; empty outside
    LL-HLS and once a server stops listing a segment's parts (older segments)."""

    @property
    def end(self) -> float:
        """Media time (seconds) at which this segment ends."""
        return self.start + self.duration
