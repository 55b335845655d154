"""Outputs of the scheduler: things the driver must do now, named in the imperative.

The driver pulls them with :meth:`p2ploader.core.scheduler.Scheduler.actions_to_perform` and
carries them out with real I/O (httpx, aiortc) or, in the simulator, with modelled transfers.
Each fetch carries a ``request_id`` that the driver echoes in the events it reports back.
"""

from __future__ import annotations

from typing import Literal

import attrs

from p2ploader.core.segments import Segment, SegmentId

__all__ = [
    "AbortHttpFetch",
    "AbortUpload",
    "Action",
    "AnnounceSegments",
    "CancelPeerDownload",
    "DisconnectPeer",
    "ExtendUpload",
    "PeerByteRange",
    "RequestFromPeer",
    "SendSegmentAbsent",
    "SendSegmentToPeer",
    "StartHttpFetch",
    "ValidateSegment",
]


@attrs.frozen(kw_only=True)
class StartHttpFetch:
    """Fetch ``segment`` from the origin, starting at byte ``resume_from`` of the segment.

    ``resume_from`` > 0 means bytes before it are already held (a P2P download cut over to HTTP):
    the driver asks for the rest with a ``Range`` request and reports where the body really starts
    with :class:`~p2ploader.core.events.HttpResponseStarted`.
    """

    request_id: int
    segment: Segment
    resume_from: int = 0
    urgent: bool = False
    """The player needs the segment within ``upload_yield_time`` (or, before a playback position is
    known, asked for it): our uploads pause while this download is in flight (see
    :class:`~p2ploader.config.LoaderConfig`)."""


@attrs.frozen(kw_only=True)
class AbortHttpFetch:
    """Stop an HTTP fetch; report nothing more for it."""

    request_id: int


@attrs.frozen(kw_only=True)
class RequestFromPeer:
    """Ask ``peer_id`` for a segment, from ``byte_offset`` on."""

    request_id: int
    peer_id: str
    segment_id: SegmentId
    byte_offset: int = 0


@attrs.frozen(kw_only=True)
class CancelPeerDownload:
    """Cancel our download from ``peer_id``: tell it we no longer want the segment, and report
    nothing more for the request."""

    request_id: int
    peer_id: str
    segment_id: SegmentId


@attrs.frozen(kw_only=True)
class DisconnectPeer:
    """Close the connection to a peer (it timed out or misbehaved)."""

    peer_id: str
    reason: str


@attrs.frozen(kw_only=True)
class AnnounceSegments:
    """Send our segment map (what we hold, and what we load over HTTP) to ``peer_id``, or to every
    connected peer when ``peer_id`` is ``None``."""

    loaded: tuple[SegmentId, ...]
    loading_by_http: tuple[SegmentId, ...]
    peer_id: str | None = None


@attrs.frozen(kw_only=True)
class SendSegmentToPeer:
    """Upload segment bytes to a peer. ``data`` already starts at the requested ``byte_offset``;
    ``total_bytes`` is the segment's full size.

    ``growing`` (cut-through): the segment is still arriving over HTTP and ``data`` is what has come
    so far; the rest follows in :class:`ExtendUpload` actions until ``byte_offset`` plus all the
    bytes given reaches ``total_bytes``, unless an :class:`AbortUpload` ends it first. The data
    header announces the whole size at once, so the peer sees one ordinary transfer."""

    peer_id: str
    segment_id: SegmentId
    data: bytes
    byte_offset: int
    total_bytes: int
    peer_request_id: int | None = None
    growing: bool = False


@attrs.frozen(kw_only=True)
class ExtendUpload:
    """More bytes of a ``growing`` :class:`SendSegmentToPeer` upload, next in order. Ignored when
    that upload has already ended (the peer cancelled it or the link closed)."""

    peer_id: str
    segment_id: SegmentId
    data: bytes
    peer_request_id: int | None = None


@attrs.frozen(kw_only=True)
class AbortUpload:
    """A ``growing`` upload cannot be completed (its HTTP download failed or was given up): stop
    it, if it started, and tell the peer the segment is absent. The scheduler frees the upload
    slot itself; a later ``UploadFinished`` for it is ignored."""

    peer_id: str
    segment_id: SegmentId
    peer_request_id: int | None = None


@attrs.frozen(kw_only=True)
class SendSegmentAbsent:
    """Tell a peer we do not have the segment it asked for."""

    peer_id: str
    segment_id: SegmentId
    peer_request_id: int | None = None


@attrs.frozen(kw_only=True)
class PeerByteRange:
    """Bytes ``[offset, offset + length)`` of a download that ``peer_id`` sent (not the origin)."""

    peer_id: str
    offset: int
    length: int

    @property
    def end(self) -> int:
        return self.offset + self.length


@attrs.frozen(kw_only=True)
class ValidateSegment:
    """Check finished bytes (integrity checks, the application's segment validator), then report
    :class:`~p2ploader.core.events.SegmentValidated`.

    ``method`` is ``"p2p"`` whenever any byte came from a peer, even when HTTP fetched the rest
    (a Range request continuing a peer's bytes); ``peer_ranges`` says which peer sent which bytes
    and ``peer_id`` names the peer that sent the most of them (``None``: all from the origin)."""

    request_id: int
    segment: Segment
    data: bytes
    method: Literal["http", "p2p"]
    peer_id: str | None = None
    peer_ranges: tuple[PeerByteRange, ...] = ()

    @property
    def peer_ids(self) -> tuple[str, ...]:
        """Every peer that sent bytes of the segment, in the order their bytes come."""
        return tuple(dict.fromkeys(r.peer_id for r in self.peer_ranges))

    @property
    def peer_bytes(self) -> int:
        """Bytes of the segment that came from peers."""
        return sum(r.length for r in self.peer_ranges)


Action = (
    StartHttpFetch
    | AbortHttpFetch
    | RequestFromPeer
    | CancelPeerDownload
    | DisconnectPeer
    | AnnounceSegments
    | SendSegmentToPeer
    | ExtendUpload
    | AbortUpload
    | SendSegmentAbsent
    | ValidateSegment
)
