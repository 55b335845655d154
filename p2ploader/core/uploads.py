"""The scheduler's upload desk, sans-IO: which peer requests we serve, what we send, how fast.

Theory of operation
-------------------
Peers ask us for segments (:class:`~p2ploader.core.events.PeerRequestedSegment`). The
:class:`UploadDesk` answers each request with the segment's bytes
(:class:`~p2ploader.core.actions.SendSegmentToPeer`) or "absent"
(:class:`~p2ploader.core.actions.SendSegmentAbsent`, a standard reply after which the peer turns to
another holder or to HTTP). A request is answered "absent" when we do not hold the segment, when
our own forward buffer is too thin (``upload_min_buffer``), when the peer has spent its upload
budget (``upload_budget_rate``/``upload_budget_burst``, counted in ``over_budget``), when
``max_concurrent_uploads`` uploads are running, or when the download policy declines.

A segment we are still downloading over HTTP can be served as its bytes arrive (*cut-through*):
the request waits as a relay until the response tells the segment's size, then its upload starts
with the bytes already here and grows with every chunk (:class:`~p2ploader.core.actions.ExtendUpload`).
When the HTTP download ends, a complete relay is left to finish and an incomplete one is aborted
(:class:`~p2ploader.core.actions.AbortUpload`). A download that continues a peer's unchecked bytes
is never relayed: nothing unchecked is passed on.

A peer that asks again and again for segments we answered "absent" before we announced anything
new floods us: after :data:`REPEATS_BEFORE_STRIKE` such requests it is dropped as misbehaving.

Finished uploads (:class:`~p2ploader.core.events.UploadFinished`) measure our upload speed in
media seconds per second (:attr:`UploadDesk.upload_speed`), which policies read.

The desk owns the upload books only; what it reads of the rest of the scheduler (the cache, the
HTTP downloads, our buffer, the policy's verdict) and what it asks of it (emit an action, notify the
application, drop a misbehaving peer) goes through :class:`UploadHost`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Protocol, TypeAlias

import attrs

from p2ploader.core import actions as act
from p2ploader.core import events as ev
from p2ploader.core import notifications as nt
from p2ploader.core.cache import CachedSegment
from p2ploader.core.peer_limits import UploadBudget
from p2ploader.core.segments import Segment, SegmentId

if TYPE_CHECKING:
    from p2ploader.config import LoaderConfig

__all__ = ["REPEATS_BEFORE_STRIKE", "RelaySource", "UploadDesk", "UploadHost"]

REPEATS_BEFORE_STRIKE = 16
"""Requests for a segment we answered "absent", asked again before we announced anything new, that
make a peer's flood a strike. Honest peers (P2P Media Loader 2.x, p2ploader) drop a segment from
their view of us on "absent" and ask again only after our next announcement."""

_UPLOAD_STALE_AFTER = 120.0  # seconds after which an upload never reported finished is forgotten

# Weight of the newest sample in the upload speed's moving average (as the scheduler's others).
_SPEED_WEIGHT = 0.5

_UploadKey: TypeAlias = tuple[str, int | None]  # (peer id, the peer's request id)


class RelaySource(Protocol):
    """An HTTP download as the desk sees it when it relays its bytes (sizes in bytes)."""

    @property
    def segment(self) -> Segment: ...

    @property
    def total(self) -> int | None:
        """The size the response announced; ``None`` until it did."""

    @property
    def received(self) -> int: ...

    @property
    def peer_ranges(self) -> Sequence[act.PeerByteRange]:
        """Peers' bytes it continues (then it is not relayed: they are unchecked)."""

    def take_bytes(self) -> bytes:
        """Every byte received so far."""


class UploadHost(Protocol):
    """What the upload desk reads of, and asks of, the scheduler it serves."""

    def emit(self, action: act.Action) -> None:
        """Queue an action for the driver."""

    def notify(self, notification: nt.Notification) -> None:
        """Queue a notification for the application."""

    def cached(self, segment_id: SegmentId, *, now: float) -> CachedSegment | None:
        """The cached segment (its access counts), or ``None``."""

    def segment(self, segment_id: SegmentId) -> Segment:
        """The playlist's segment of that id."""

    def http_download(self, segment_id: SegmentId) -> RelaySource | None:
        """The segment's HTTP download in progress, or ``None``."""

    def buffer_too_thin(self) -> bool:
        """Whether our own forward buffer is below ``upload_min_buffer`` (our playback first)."""

    def accepts_upload(self, segment: Segment, *, now: float) -> bool:
        """The download policy's verdict on serving ``segment`` now."""

    def drop_misbehaving_peer(self, peer_id: str, swarm: str, reason: str) -> None:
        """Tell the application why, and count a strike against the peer in ``swarm`` (a rendition
        id, see :mod:`p2ploader.core.reputation`)."""


@attrs.define(kw_only=True)
class _Requester:
    """A connected peer as an uploader sees it: what it may still take (``upload_budget_rate``),
    and the segments we answered "absent" since our last announcement to it (asking again is a
    flood)."""

    budget: UploadBudget | None
    absent_since_announcement: set[SegmentId] = attrs.Factory(set)
    repeated_requests: int = 0


@attrs.define(kw_only=True)
class _Relay:
    """A peer's request for a segment we are still downloading over HTTP, served as its bytes
    arrive (cut-through). Until the response tells the segment's size it waits (``sent_upto`` is
    ``None``); then its upload starts with the bytes already here and grows with every chunk."""

    segment_id: SegmentId
    byte_offset: int
    total: int | None = None
    sent_upto: int | None = None  # segment position handed to the transport so far


class UploadDesk:
    """Peer requests in, uploads out; see the module docstring. Times in seconds, sizes in bytes."""

    def __init__(self, config: LoaderConfig, host: UploadHost) -> None:
        self._config = config
        self._host = host
        self._requesters: dict[str, _Requester] = {}
        # Uploads being served: (peer, its request id) -> (when it started, the media seconds and
        # the bytes of its segment). Their count is the admission control; their ends measure how
        # fast we upload (upload_speed, in media seconds per second).
        self._uploads: dict[_UploadKey, tuple[float, float, int]] = {}
        # Uploads of segments still arriving over HTTP (cut-through), by the same key; each also
        # holds a slot in _uploads. Their HTTP downloads' ends are settled by settle().
        self._relays: dict[_UploadKey, _Relay] = {}
        self._relays_to_settle: set[SegmentId] = set()
        self._upload_speed: float | None = None
        self.uploaded_bytes = 0
        """Payload bytes handed to the transport for peers."""
        self.over_budget = 0
        """Requests answered "absent" because the peer had spent its upload budget."""
        self.refused = 0
        """Requests answered "absent" for ``max_concurrent_uploads`` or by the policy."""

    # ------------------------------------------------------------------ what the scheduler reads

    @property
    def upload_speed(self) -> float | None:
        """Media seconds we upload per second (moving average of finished uploads); ``None``
        before the first one."""
        return self._upload_speed

    @property
    def active(self) -> int:
        """Uploads in progress, cut-through relays included (what ``max_concurrent_uploads`` caps)."""
        return len(self._uploads)

    # ------------------------------------------------------------------ peers

    def peer_connected(self, peer_id: str) -> None:
        if peer_id in self._requesters:
            return
        rate = self._config.upload_budget_rate
        budget = UploadBudget(rate=rate, burst=self._config.upload_budget_burst) if rate else None
        self._requesters[peer_id] = _Requester(budget=budget)

    def peer_dropped(self, peer_id: str) -> None:
        """Forget the peer's uploads (the transport closes them with the link) and its books."""
        for key in [k for k in self._uploads if k[0] == peer_id]:
            del self._uploads[key]
            self._relays.pop(key, None)
        self._requesters.pop(peer_id, None)

    def announced(self, peer_id: str | None) -> None:
        """We announce our segments to ``peer_id`` (``None``: to all): whatever it was told
        "absent" for, it may ask again."""
        if peer_id is None:
            requesters: Sequence[_Requester] = list(self._requesters.values())
        else:
            one = self._requesters.get(peer_id)
            requesters = [one] if one is not None else []
        for requester in requesters:
            requester.absent_since_announcement.clear()
            requester.repeated_requests = 0

    # ------------------------------------------------------------------ requests

    def serve(self, event: ev.PeerRequestedSegment, *, now: float) -> None:
        """Answer a peer's request: the bytes (now, or as they arrive over HTTP) or "absent"."""
        host = self._host
        # A new request from a peer replaces its upload in progress (the transport stops it).
        self._drop_relays(event.peer_id, segment_id=None, waiting_only=True)
        sid = event.segment_id
        requester = self._requesters.get(event.peer_id)
        if requester is None:  # dropped (its link is closing) or never connected: nothing to serve
            self._send_absent(event.peer_id, sid, event.peer_request_id)
            return
        if self._asked_again(event.peer_id, requester, sid):
            return
        consume_only = self._config.consume_only
        entry = None if consume_only else host.cached(sid, now=now)
        # Cut-through relays pass on HTTP bytes before the download is checked, so a download that
        # continues a peer's bytes (unchecked until it ends) is not relayed.
        source = host.http_download(sid) if entry is None and not consume_only else None
        relay = source is not None and not source.peer_ranges
        size = len(entry.data) if entry is not None else None
        if (
            (entry is None and not relay)
            or (size is not None and not 0 <= event.byte_offset < size)
            or host.buffer_too_thin()
        ):
            self._send_absent(event.peer_id, sid, event.peer_request_id)
            return
        uploads = self._uploads
        # A transport that never reported an upload's end must not block uploading for good.
        for key in [k for k, (started, _, _) in uploads.items() if now - started > _UPLOAD_STALE_AFTER]:
            if key in self._relays:
                self._abort_relay(key)  # a growing upload must not wait for bytes for ever
            else:
                del uploads[key]
        segment = entry.segment if entry is not None else host.segment(sid)
        # Its budget pays for the media time the upload carries (a resumed one: its share).
        cost = segment.duration * ((size - event.byte_offset) / size if size else 1.0)
        budget = requester.budget
        if budget is not None and not budget.take(cost, now=now):
            self.over_budget += 1
            self._send_absent(event.peer_id, sid, event.peer_request_id)
            return
        limit = self._config.max_concurrent_uploads
        if (limit and len(uploads) >= limit) or not host.accepts_upload(segment, now=now):
            self.refused += 1
            self._send_absent(event.peer_id, sid, event.peer_request_id)
            return
        key = (event.peer_id, event.peer_request_id)
        if entry is None:
            # Cut-through: the segment is still arriving over HTTP. A relayed upload's time
            # includes waiting for the origin, so it is not a measure of our upload speed (0 bytes).
            assert source is not None
            uploads[key] = (now, segment.duration, 0)
            self._relays[key] = _Relay(segment_id=sid, byte_offset=event.byte_offset)
            self.http_response_started(source)
            return
        uploads[key] = (now, segment.duration, len(entry.data))
        data = entry.data[event.byte_offset :]
        self._upload(key, sid, data, byte_offset=event.byte_offset, total=len(entry.data))

    def peer_cancelled(self, peer_id: str, segment_id: SegmentId) -> None:
        """The peer cancelled its request: the transport stops sending and reports UploadFinished;
        a relay still waiting for its response's size has nothing sending, so its slot is freed."""
        self._drop_relays(peer_id, segment_id=segment_id, waiting_only=False)

    def upload_finished(self, event: ev.UploadFinished, *, now: float) -> None:
        """Free the upload's slot and fold it into our upload speed: media seconds sent per second."""
        key = (event.peer_id, event.peer_request_id)
        upload = self._uploads.pop(key, None)
        self._relays.pop(key, None)
        if upload is None or event.sent_bytes <= 0:
            return
        started, duration, total = upload
        if total <= 0:
            return  # a relay: its time includes waiting for the origin
        speed = (event.sent_bytes / max(total, 1)) * duration / max(now - started, 1e-3)
        average = self._upload_speed
        self._upload_speed = speed if average is None else average + _SPEED_WEIGHT * (speed - average)

    def _upload(
        self,
        key: _UploadKey,
        segment_id: SegmentId,
        data: bytes,
        *,
        byte_offset: int,
        total: int,
        growing: bool = False,
    ) -> None:
        peer_id, peer_request_id = key
        self._host.emit(
            act.SendSegmentToPeer(
                peer_id=peer_id,
                segment_id=segment_id,
                data=data,
                byte_offset=byte_offset,
                total_bytes=total,
                peer_request_id=peer_request_id,
                growing=growing,
            )
        )
        self._count_upload(peer_id, len(data))

    def _count_upload(self, peer_id: str, size: int) -> None:
        if size:
            self.uploaded_bytes += size
            self._host.notify(nt.BytesUploaded(size=size, peer_id=peer_id))

    def _asked_again(self, peer_id: str, requester: _Requester, segment_id: SegmentId) -> bool:
        """Count a request for a segment we answered "absent" since our last announcement to the
        peer; ``True`` when there were :data:`REPEATS_BEFORE_STRIKE` of them since that
        announcement: a flood (a strike, and the peer is dropped)."""
        if segment_id not in requester.absent_since_announcement:
            return False
        requester.repeated_requests += 1
        if requester.repeated_requests < REPEATS_BEFORE_STRIKE:
            return False
        self._host.drop_misbehaving_peer(
            peer_id, segment_id.rendition, "asked again and again for segments we answered absent"
        )
        return True

    def _send_absent(self, peer_id: str, segment_id: SegmentId, peer_request_id: int | None) -> None:
        requester = self._requesters.get(peer_id)
        if requester is not None:
            requester.absent_since_announcement.add(segment_id)
        self._host.emit(
            act.SendSegmentAbsent(peer_id=peer_id, segment_id=segment_id, peer_request_id=peer_request_id)
        )

    # ------------------------------------------------------------------ cut-through relays

    def http_response_started(self, download: RelaySource) -> None:
        """Start the waiting relays of ``download``'s segment once its size is known; stop those
        whose announced size the response contradicts (the origin changed the segment)."""
        if not self._relays:
            return
        total = download.total
        if total is None:
            return  # no size yet: they wait (and are served from the cache if it never comes)
        sid = download.segment.id
        if download.peer_ranges:
            # It continues a peer's unchecked bytes: nothing of it is passed on before its checks.
            for key, relay in list(self._relays.items()):
                if relay.segment_id == sid:
                    self._abort_relay(key)
            return
        for key, relay in list(self._relays.items()):
            if relay.segment_id != sid:
                continue
            if relay.sent_upto is not None:
                if relay.total != total:
                    self._abort_relay(key)
                continue
            if relay.byte_offset >= total:
                self._refuse_relay(key)
                continue
            have = download.take_bytes() if download.received > relay.byte_offset else b""
            relay.total = total
            relay.sent_upto = max(relay.byte_offset, download.received)
            self._upload(
                key, sid, have[relay.byte_offset :], byte_offset=relay.byte_offset, total=total, growing=True
            )

    def http_chunk(self, download: RelaySource, chunk: bytes | memoryview) -> None:
        """Pass an HTTP chunk on to the started relays of its segment (each from where it is).
        A view is copied into ``bytes`` for the upload (``bytes`` is passed on as it is)."""
        if not self._relays:
            return
        sid = download.segment.id
        end = download.received
        begin = end - len(chunk)
        for key, relay in self._relays.items():
            if relay.segment_id != sid or relay.sent_upto is None or relay.sent_upto >= end:
                continue
            # The chunks run contiguously from where the relay started, so sent_upto >= begin
            # (after a response restarted from byte 0 it is further on: the repeat is skipped).
            data = bytes(chunk[relay.sent_upto - begin :] if relay.sent_upto > begin else chunk)
            relay.sent_upto = end
            self._host.emit(
                act.ExtendUpload(peer_id=key[0], segment_id=sid, data=data, peer_request_id=key[1])
            )
            self._count_upload(key[0], len(data))

    def http_download_ended(self, segment_id: SegmentId) -> None:
        """The segment's HTTP download ended (stored, failed or aborted): its relays are settled
        by the next :meth:`settle`, once the scheduler's books are up to date."""
        if self._relays:
            self._relays_to_settle.add(segment_id)

    def settle(self, *, now: float) -> None:
        """The HTTP downloads of these segments ended: complete their relays from the cache (a
        waiting relay becomes an ordinary upload), or abort them when the segment did not come.
        A segment whose HTTP download started again keeps its relays: they continue with it."""
        if not self._relays_to_settle:
            return
        host = self._host
        for sid in self._relays_to_settle:
            if host.http_download(sid) is not None:
                continue
            entry = host.cached(sid, now=now)
            size = len(entry.data) if entry is not None else None
            for key, relay in list(self._relays.items()):
                if relay.segment_id != sid:
                    continue
                if relay.sent_upto is not None:
                    # Started: every chunk was passed on, so it is complete if the segment came
                    # whole at the size it announced; otherwise it must stop.
                    if relay.sent_upto == relay.total == size:
                        del self._relays[key]  # its slot goes with the transport's UploadFinished
                    else:
                        self._abort_relay(key)
                elif size is None:
                    self._abort_relay(key)
                elif relay.byte_offset >= size:
                    self._refuse_relay(key)
                else:  # it waited for a size that never came: the whole thing, from the cache
                    assert entry is not None
                    del self._relays[key]  # it keeps its slot (relay-like: not measured)
                    data = entry.data[relay.byte_offset :]
                    self._upload(key, sid, data, byte_offset=relay.byte_offset, total=size)
        self._relays_to_settle.clear()

    def _refuse_relay(self, key: _UploadKey) -> None:
        """A waiting relay asked for bytes past the segment's end: "absent", as for a cached one."""
        relay = self._relays.pop(key)
        self._uploads.pop(key, None)
        self._send_absent(key[0], relay.segment_id, key[1])

    def _abort_relay(self, key: _UploadKey) -> None:
        relay = self._relays.pop(key)
        self._uploads.pop(key, None)
        self._host.emit(act.AbortUpload(peer_id=key[0], segment_id=relay.segment_id, peer_request_id=key[1]))

    def _drop_relays(self, peer_id: str, *, segment_id: SegmentId | None, waiting_only: bool) -> None:
        """Forget ``peer_id``'s relays (of ``segment_id`` only, if given) that the peer replaced or
        cancelled. A started one's slot is freed by the transport's UploadFinished; a waiting one
        has nothing sending, so its slot is freed here."""
        if not self._relays:
            return
        for key, relay in list(self._relays.items()):
            if key[0] != peer_id or (segment_id is not None and relay.segment_id != segment_id):
                continue
            if relay.sent_upto is None:
                del self._relays[key]
                self._uploads.pop(key, None)
            elif not waiting_only:
                del self._relays[key]
