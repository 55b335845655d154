"""A loader's figures: :class:`LoaderStatistics` and, per media type, :class:`MediaStatistics`.

Plain records, apart from the loader (:mod:`p2ploader.aio.loader`, which also exports them) so that
its companions (:mod:`p2ploader.aio.alternates`) can add their figures up without importing it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

import attrs

from p2ploader.core.upload_control import UploadControlStatistics
from p2ploader.status import TrackerState

__all__ = ["LoaderStatistics", "MediaKind", "MediaStatistics"]

MediaKind = Literal["video", "audio", "subtitles"]
"""What a loader loads: ``"video"`` is the variant (with the audio muxed into it, if any);
``"audio"`` and ``"subtitles"`` are EXT-X-MEDIA renditions (:attr:`HybridLoader.audio`,
:attr:`HybridLoader.subtitles`)."""


@attrs.frozen(kw_only=True)
class MediaStatistics:
    """One media type's figures (:attr:`LoaderStatistics.by_media_type`). Bytes are segment payload
    bytes."""

    rendition: str
    http_bytes: int = 0
    p2p_bytes: int = 0
    p2p_uploaded_bytes: int = 0
    http_segments: int = 0
    p2p_segments: int = 0
    peers_connected: int = 0

    @property
    def total_bytes(self) -> int:
        return self.http_bytes + self.p2p_bytes

    @property
    def peer_efficiency(self) -> float:
        """P2P bytes / all downloaded bytes of this media type (0.0 before any)."""
        return self.p2p_bytes / self.total_bytes if self.total_bytes else 0.0


@attrs.frozen(kw_only=True)
class LoaderStatistics:
    """A snapshot of a loader's figures. Bytes are segment payload bytes."""

    http_bytes: int
    p2p_bytes: int
    p2p_uploaded_bytes: int
    peers_connected: int
    stalls: int
    http_segments: int
    p2p_segments: int
    http_failures: int
    p2p_failures: int
    aborted_downloads: int
    cached_segments: int
    cached_bytes: int
    playlist_refresh_errors: int
    rendition: str
    p2p_bytes_verified: int = 0
    """Bytes from peers, in segments accepted after an integrity check proved them right (the
    published SHA-256, or spot checks that all answered)."""
    p2p_bytes_unverified: int = 0
    """Bytes from peers, in segments accepted with no check proving them: integrity checks off, no
    digest published for the segment and no spot check drawn, or a spot check inconclusive."""
    uploaded_bytes_by_peer: Mapping[str, int] = attrs.field(factory=dict)
    """Bytes handed to each peer (hex peer id) for upload, over the loader's life."""
    upload_control: UploadControlStatistics | None = None
    """The delay-based upload control's state, shared by every swarm of this loader and its
    companions (``None``: ``upload_delay_target`` is 0, off)."""
    topology_role: str = "mesh"
    """``"mesh"``, or this peer's role in a host/client swarm: ``"host"`` or ``"client"``."""
    trackers: Mapping[str, TrackerState] = attrs.field(factory=dict)
    """The current swarm's trackers by URL: connection state, last error, swarm counts,
    reconnects. Empty when P2P is off. :func:`p2ploader.status.tracker_warning` words the case
    where none is reachable."""
    by_media_type: Mapping[MediaKind, MediaStatistics] = attrs.field(factory=dict)
    """The figures of each media type loaded (``"video"``, and ``"audio"``/``"subtitles"`` when an
    EXT-X-MEDIA rendition is loaded). The totals above add them all up; ``peers_connected`` counts
    connections, so a peer in both the video and the audio swarm counts twice."""

    @property
    def total_bytes(self) -> int:
        return self.http_bytes + self.p2p_bytes

    @property
    def peer_efficiency(self) -> float:
        """P2P bytes / all downloaded bytes (0.0 before anything was downloaded)."""
        return self.p2p_bytes / self.total_bytes if self.total_bytes else 0.0
