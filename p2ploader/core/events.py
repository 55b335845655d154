"""Inputs to the scheduler: things that happened, named in the past tense.

The I/O driver (or the simulator) turns whatever it observed into one of these and passes it to
:meth:`p2ploader.core.scheduler.Scheduler.handle_event` together with the current time. Events are
frozen value objects so that a session can be logged as ``(now, event)`` pairs and replayed.
"""

from __future__ import annotations

from typing import Final, Literal

import attrs

from p2ploader.core.segments import Segment, SegmentId

DEFAULT_HTTP_ATTEMPTS: Final = 3
"""Failed HTTP fetches of a waited-for segment before it is given up, unless the request says
(:class:`SegmentRequested`; the policy is :mod:`p2ploader.core.retries`)."""

__all__ = [
    "Event",
    "HttpChunkReceived",
    "HttpFetchCompleted",
    "HttpFetchFailed",
    "HttpResponseStarted",
    "IntegrityCheckFailed",
    "PeerAnnounced",
    "PeerCancelledUpload",
    "PeerChunkReceived",
    "PeerConnected",
    "PeerDisconnected",
    "PeerDownloadFailed",
    "PeerRequestedSegment",
    "PeerResponseStarted",
    "PeerViolatedProtocol",
    "PlaybackMoved",
    "PlaylistUpdated",
    "SegmentRequestCancelled",
    "SegmentRequested",
    "SegmentValidated",
    "TrackerUpdated",
    "UploadFinished",
]


@attrs.frozen(kw_only=True)
class PlaylistUpdated:
    """The media playlist of the rendition being played now lists these segments, in order.

    Replaces the previous list (a rendition switch sends the new rendition's segments). Segments
    that are no longer listed and not cached cannot be loaded any more.
    """

    segments: tuple[Segment, ...]


@attrs.frozen(kw_only=True)
class PlaybackMoved:
    """The playhead is at ``position`` seconds on the media timeline (see :attr:`Segment.start`)."""

    position: float


@attrs.frozen(kw_only=True)
class SegmentRequested:
    """The player wants this segment. It becomes the head of the download queue, and a
    :class:`~p2ploader.core.notifications.SegmentReady` follows once its bytes are available.

    An explicit request also forgets earlier HTTP failures of the segment, so it is tried at once.
    Failed HTTP fetches of it are retried, with back-off, until ``max_attempts`` of them failed
    (or one answered 4xx): then :class:`~p2ploader.core.notifications.SegmentUnavailable`
    follows (see :mod:`p2ploader.core.retries`).
    """

    segment_id: SegmentId
    max_attempts: int = attrs.field(default=DEFAULT_HTTP_ATTEMPTS, validator=attrs.validators.ge(1))


@attrs.frozen(kw_only=True)
class SegmentRequestCancelled:
    """The player no longer waits for this segment (it gave up, or seeks elsewhere)."""

    segment_id: SegmentId


@attrs.frozen(kw_only=True)
class HttpResponseStarted:
    """The origin answered a fetch; its body starts at byte ``offset`` of the segment.

    ``offset`` is the resume position the fetch asked for when the origin honoured the ``Range``
    header (206), or 0 when it sent the whole segment (200), in which case bytes kept from an
    earlier attempt are dropped.
    """

    request_id: int
    offset: int
    total_bytes: int | None = None
    """The segment's full size when the response tells it (``Content-Length``, ``Content-Range``
    or the byte range asked for), else ``None``. Known, it lets peers be served the segment while
    it arrives (cut-through)."""


@attrs.frozen(kw_only=True)
class HttpChunkReceived:
    """Body bytes of an HTTP fetch arrived.

    ``data`` may be a read-only ``memoryview`` of a larger, immutable buffer (the simulator hands
    every viewer views of one shared payload instead of copies); the scheduler keeps it as it is
    until the download ends and joins the pieces into ``bytes`` then. The buffer must not change
    while the download holds the view."""

    request_id: int
    data: bytes | memoryview


@attrs.frozen(kw_only=True)
class HttpFetchCompleted:
    """The HTTP fetch delivered its whole body (the executor checked its length)."""

    request_id: int


@attrs.frozen(kw_only=True)
class HttpFetchFailed:
    """The HTTP fetch failed for good (after the executor's own retries). ``reason`` is for humans;
    ``status`` is the HTTP status when there was one; ``permanent`` says the answer itself was
    unusable (4xx, 204, an unfollowed 3xx), so a waited-for segment is not fetched again."""

    request_id: int
    reason: str
    status: int | None = None
    permanent: bool = False


@attrs.frozen(kw_only=True)
class PeerConnected:
    """A data channel to ``peer_id`` is open."""

    peer_id: str


@attrs.frozen(kw_only=True)
class PeerDisconnected:
    """The connection to ``peer_id`` closed; its outstanding requests are dropped."""

    peer_id: str


@attrs.frozen(kw_only=True)
class PeerAnnounced:
    """``peer_id`` sent its full segment map: segments it holds and segments it is loading over HTTP.

    Each announcement replaces the previous one from that peer.
    """

    peer_id: str
    loaded: frozenset[SegmentId]
    loading_by_http: frozenset[SegmentId] = frozenset()


@attrs.frozen(kw_only=True)
class PeerResponseStarted:
    """A peer answered our request with a data header announcing ``total_bytes`` for the segment."""

    request_id: int
    total_bytes: int


@attrs.frozen(kw_only=True)
class PeerChunkReceived:
    """Segment bytes from a peer arrived for one of our requests."""

    request_id: int
    data: bytes


@attrs.frozen(kw_only=True)
class PeerDownloadFailed:
    """Our request to a peer (a download) ended without the segment.

    ``absent`` means the peer said it does not have the segment (it is removed from that peer's map);
    ``misbehaved`` means the peer broke the protocol and must be disconnected.
    """

    request_id: int
    reason: str
    absent: bool = False
    misbehaved: bool = False


@attrs.frozen(kw_only=True)
class PeerRequestedSegment:
    """A peer asks us for a segment, starting at ``byte_offset``. ``peer_request_id`` is echoed back."""

    peer_id: str
    segment_id: SegmentId
    byte_offset: int = 0
    peer_request_id: int | None = None


@attrs.frozen(kw_only=True)
class PeerCancelledUpload:
    """A peer no longer wants a segment it asked us for: our upload to it stops."""

    peer_id: str
    segment_id: SegmentId


@attrs.frozen(kw_only=True)
class UploadFinished:
    """An upload to ``peer_id`` ended (all sent, cancelled, or the link closed); its slot is free.
    ``sent_bytes`` is what actually left for the peer."""

    peer_id: str
    peer_request_id: int | None
    sent_bytes: int = 0


@attrs.frozen(kw_only=True)
class SegmentValidated:
    """The checks of a finished request's bytes are done (:class:`~p2ploader.core.actions.ValidateSegment`).

    ``valid``: accept them. ``verified``: an integrity check (the published SHA-256, or spot checks
    that all answered) proved the peers' bytes right; ``False`` when none ran or one was
    inconclusive (the P2P bytes then count as unverified in the statistics)."""

    request_id: int
    valid: bool
    verified: bool = False


@attrs.frozen(kw_only=True)
class IntegrityCheckFailed:
    """An integrity check proved the bytes of ``segment_id`` that ``peer_id`` sent wrong (``check``:
    ``"sha256"`` or ``"spot-check"``; ``reason`` for humans). The scheduler reports it
    (:class:`~p2ploader.core.notifications.IntegrityCheckFailed`) and bans the peer from the
    segment's swarm (:mod:`p2ploader.core.reputation`). The segment itself is settled by the
    :class:`SegmentValidated` that follows."""

    segment_id: SegmentId
    peer_id: str
    check: Literal["sha256", "spot-check"]
    reason: str


@attrs.frozen(kw_only=True)
class PeerViolatedProtocol:
    """``peer_id`` of ``swarm`` (a rendition id) broke the peer protocol outside any download of
    ours (a flood, an undecodable or oversized message); its link is closed by whoever saw it. The
    scheduler reports it (:class:`~p2ploader.core.notifications.PeerMisbehaved`) and counts a
    strike (:mod:`p2ploader.core.reputation`). Violations within a download of ours come as
    :class:`PeerDownloadFailed` with ``misbehaved``."""

    peer_id: str
    swarm: str
    reason: str


@attrs.frozen(kw_only=True)
class TrackerUpdated:
    """A tracker reported the swarm's size (``incomplete`` peers, including us when known)."""

    incomplete: int


Event = (
    PlaylistUpdated
    | PlaybackMoved
    | SegmentRequested
    | SegmentRequestCancelled
    | HttpResponseStarted
    | HttpChunkReceived
    | HttpFetchCompleted
    | HttpFetchFailed
    | PeerConnected
    | PeerDisconnected
    | PeerAnnounced
    | PeerResponseStarted
    | PeerChunkReceived
    | PeerDownloadFailed
    | PeerRequestedSegment
    | PeerCancelledUpload
    | SegmentValidated
    | IntegrityCheckFailed
    | PeerViolatedProtocol
    | TrackerUpdated
    | UploadFinished
)
