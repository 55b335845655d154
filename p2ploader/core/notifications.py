"""What the scheduler tells the application: segments ready for the player, and a record of every
load, failure, abort and byte by source (for statistics, logs and events)."""

from __future__ import annotations

from typing import Literal

import attrs

from p2ploader.core.segments import Segment, SegmentId

__all__ = [
    "BytesReceived",
    "BytesUploaded",
    "IntegrityCheckFailed",
    "LivePlaylistStale",
    "Notification",
    "PeerBanned",
    "PeerConnected",
    "PeerGone",
    "PeerMisbehaved",
    "SegmentAborted",
    "SegmentLoadFailed",
    "SegmentLoaded",
    "SegmentReady",
    "SegmentUnavailable",
    "Source",
    "TrackerConnected",
    "TrackerFailed",
]

Source = Literal["http", "p2p"]


@attrs.frozen(kw_only=True)
class SegmentReady:
    """A segment the player requested is available. ``source`` says how it was loaded
    (``"cache"`` when it was already held when requested). For an ``EXT-X-GAP`` segment
    (``segment.gap``) it comes at once with ``source="gap"`` and empty ``data``: nothing was loaded,
    and the player skips the segment's duration."""

    segment: Segment
    data: bytes
    source: Literal["http", "p2p", "cache", "gap"]


@attrs.frozen(kw_only=True)
class SegmentUnavailable:
    """A requested segment can no longer be loaded (it left the live window, or the playlist
    no longer lists it)."""

    segment_id: SegmentId
    reason: str


@attrs.frozen(kw_only=True)
class SegmentLoaded:
    """A segment finished loading and was stored (whether or not the player asked for it yet)."""

    segment_id: SegmentId
    source: Source
    size: int
    peer_id: str | None = None
    peer_bytes: int = 0
    """Bytes of it that came from peers (all of a P2P segment's; some of an HTTP one that
    continued a peer's bytes with a Range request)."""
    verified: bool = False
    """An integrity check proved its peer bytes right (the published SHA-256, or spot checks that
    all answered)."""


@attrs.frozen(kw_only=True)
class SegmentLoadFailed:
    """One attempt to load a segment failed; the scheduler will try again as its policy allows."""

    segment_id: SegmentId
    source: Source
    reason: str
    peer_id: str | None = None
    status: int | None = None


@attrs.frozen(kw_only=True)
class SegmentAborted:
    """A download was dropped because its segment left the queue or was preempted."""

    segment_id: SegmentId
    source: Source


@attrs.frozen(kw_only=True)
class BytesReceived:
    """Bytes arrived from ``source`` (bytes by source, as P2P Media Loader's piece events)."""

    source: Source
    size: int
    peer_id: str | None = None


@attrs.frozen(kw_only=True)
class BytesUploaded:
    """Bytes were handed to the driver for upload to ``peer_id``."""

    size: int
    peer_id: str


@attrs.frozen(kw_only=True)
class PeerMisbehaved:
    """A peer broke the protocol (a wrong size, an undecodable or oversized message, no answer in
    time, bytes a validator rejected...) and was disconnected. ``reason`` is for humans."""

    peer_id: str
    reason: str


@attrs.frozen(kw_only=True)
class IntegrityCheckFailed:
    """Bytes of ``segment_id`` from ``peer_id`` failed an integrity check and were dropped: ``check``
    is ``"sha256"`` (the hash the origin publishes), ``"spot-check"`` (byte ranges compared with
    the origin) or ``"origin-bytes"`` (bytes a peer sent before it stalled, compared with the same
    bytes when the segment then came whole over HTTP). The segment is loaded again; the peer is
    banned (:class:`PeerBanned`)."""

    segment_id: SegmentId
    peer_id: str
    check: Literal["sha256", "spot-check", "origin-bytes"]
    reason: str


@attrs.frozen(kw_only=True)
class PeerBanned:
    """``peer_id`` is banned from this swarm for ``seconds``: its connections are refused, even when
    a tracker introduces it again. Swarms sharing bans with this one (a loader's companions, see
    :mod:`p2ploader.core.reputation`) refuse the same identity too."""

    peer_id: str
    reason: str
    seconds: float


@attrs.frozen(kw_only=True)
class TrackerConnected:
    """The WebSocket to tracker ``url`` is open (the first one, or again after a failure): the loader
    announces there and can meet peers through it."""

    url: str


@attrs.frozen(kw_only=True)
class TrackerFailed:
    """Tracker ``url`` could not be reached, or its connection ended. ``reason`` is for humans:
    ``"DNS failure (...)"``, ``"connection refused"``, ``"timed out after 10 s"``, ``"TLS: ..."``,
    ``"rate limited (HTTP 429)"``, ``"closed by server (code 1008: ...)"``, ``"refused by the
    tracker: ..."``... The client tries again after ``retry_in`` seconds."""

    url: str
    reason: str
    retry_in: float


@attrs.frozen(kw_only=True)
class PeerConnected:
    """A peer's data channel opened and it got a slot: segments can flow both ways."""

    peer_id: str


@attrs.frozen(kw_only=True)
class PeerGone:
    """A connected peer's link closed. ``reason`` says why when we closed it (evicted, a protocol
    violation, a timeout, we left the swarm...); ``"closed by the peer"`` or ``"connection failed"``
    otherwise."""

    peer_id: str
    reason: str


@attrs.frozen(kw_only=True)
class LivePlaylistStale:
    """A live media playlist at ``url`` (no ``EXT-X-ENDLIST``) was reloaded ``unchanged_reloads``
    times in a row and found unchanged; at ``limit`` such reloads (``live_playlist_stuck_reloads``)
    the loader gives up with :class:`~p2ploader.errors.LivePlaylistStuckError`. Sent by the loader
    (not the scheduler) once, when half the limit is reached."""

    url: str
    unchanged_reloads: int
    limit: int


Notification = (
    SegmentReady
    | SegmentUnavailable
    | SegmentLoaded
    | SegmentLoadFailed
    | SegmentAborted
    | BytesReceived
    | BytesUploaded
    | PeerMisbehaved
    | IntegrityCheckFailed
    | PeerBanned
    | TrackerConnected
    | TrackerFailed
    | PeerConnected
    | PeerGone
    | LivePlaylistStale
)
