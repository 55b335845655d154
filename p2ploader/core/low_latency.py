"""Value objects for the Low-Latency HLS tags around parts (RFC 8216bis).

A live LL-HLS media playlist publishes each segment first as *parts* (``EXT-X-PART``, 0.2 to 1 s
each, :class:`~p2ploader.core.segments.Part`) while the segment is still being encoded, then as the
whole segment (``EXTINF``) once it is complete. The tags here say how to follow such a playlist:
what the server supports (:class:`ServerControl`), what it publishes next (:class:`PreloadHint`),
where the other renditions stand (:class:`RenditionReport`) and what a delta update left out
(:class:`SkippedSegments`). :mod:`p2ploader.hls` builds them from a playlist.
"""

from __future__ import annotations

from typing import Literal

import attrs

__all__ = [
    "PreloadHint",
    "PreloadHintType",
    "RenditionReport",
    "ServerControl",
    "SkippedSegments",
]


def _non_negative_int(_instance: object, attribute: attrs.Attribute[int], value: int) -> None:
    if value < 0:
        raise ValueError(f"{attribute.name} must be >= 0, got {value}")


def _optional_non_negative_number(
    _instance: object, attribute: attrs.Attribute[float | None], value: float | None
) -> None:
    if value is not None and not value >= 0:  # `not >=` also refuses NaN
        raise ValueError(f"{attribute.name} must be None or >= 0, got {value}")


PreloadHintType = Literal["PART", "MAP"]


@attrs.frozen(kw_only=True)
class PreloadHint:
    """An ``EXT-X-PRELOAD-HINT``: a resource the server will publish next, requestable already.

    A client may request it at once; the server holds the response until the resource exists.
    ``byte_range_start`` (bytes, default 0) and ``byte_range_length`` (bytes, None: to the end of
    the resource) are the tag's ``BYTERANGE-START`` and ``BYTERANGE-LENGTH``.
    """

    type: PreloadHintType
    url: str
    byte_range_start: int = attrs.field(default=0, validator=_non_negative_int)
    byte_range_length: int | None = None


@attrs.frozen(kw_only=True)
class ServerControl:
    """``EXT-X-SERVER-CONTROL``: what the server supports and how far behind live to play.

    All durations are in seconds. ``can_skip_until`` enables delta playlists (``_HLS_skip=YES``) for
    segments older than that; ``can_skip_dateranges`` adds ``_HLS_skip=v2``. ``hold_back`` and
    ``part_hold_back`` are the minimum distance from the live edge at which to start playing,
    without and with parts.
    """

    can_block_reload: bool = False
    can_skip_until: float | None = attrs.field(default=None, validator=_optional_non_negative_number)
    can_skip_dateranges: bool = False
    hold_back: float | None = attrs.field(default=None, validator=_optional_non_negative_number)
    part_hold_back: float | None = attrs.field(default=None, validator=_optional_non_negative_number)


@attrs.frozen(kw_only=True)
class RenditionReport:
    """``EXT-X-RENDITION-REPORT``: another rendition's live edge, so a switch can go straight to it.

    ``url`` is that rendition's media playlist, resolved; ``last_msn`` and ``last_part`` its last
    media sequence number and last part index (None when the tag leaves them out).
    """

    url: str
    last_msn: int | None = None
    last_part: int | None = None


@attrs.frozen(kw_only=True)
class SkippedSegments:
    """``EXT-X-SKIP`` of a delta playlist: the ``count`` oldest segments are left out (the client
    keeps them from its previous copy), and the date ranges with these IDs were removed."""

    count: int = attrs.field(validator=_non_negative_int)
    recently_removed_dateranges: tuple[str, ...] = ()
