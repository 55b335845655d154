"""Models of the world a simulated viewer lives in: the stream, the origin, links and peer links.

Theory of operation
-------------------
Each simulated viewer runs the real :class:`~p2ploader.core.scheduler.Scheduler` inside the real
:class:`~p2ploader.core.driver.Driver`; only its executors are models:

* :class:`ModelledHttp` turns a fetch into ``HttpResponseStarted`` (with the segment's size) after a
  round trip and the body in pieces over ``size / rate`` (one at least every
  :data:`HTTP_PIECE_SECONDS`). The rate is fixed when the fetch starts: the viewer's downlink
  shared with its other downloads, and the origin's bandwidth shared with every transfer in flight
  (processor sharing sampled at the start; documented approximation).
* :class:`ModelledPeers` carries the peer actions to other viewers through :class:`PeerNetwork`
  with one-way latency and jitter. An upload queues on the uploader's uplink (first come, first
  served at ``min(uplink, upload cap, receiver downlink)``), so a popular peer serves one request
  after another, as the real transport (:mod:`p2ploader.aio.peers`) does; a cancelled upload
  frees the uplink time it had left, and the uploads queued behind it move up. Loss costs
  throughput: ``rate * (1 - loss)``. A growing upload (cut-through) sends a piece no earlier than
  its bytes reach the uploader; it keeps the uplink time reserved at its start (approximation).
  The body arrives in pieces, one at least every :data:`PIECE_SECONDS` of transfer time (at most
  64), so a slow upload shows progress to the receiver's stall timeout and a cut-over to HTTP can
  keep the bytes already received, as with a real data channel's chunks.
* Payloads are real ``bytes`` objects shared by every viewer (one per segment), so the scheduler
  counts real sizes while memory stays bounded by the stream, not by the audience. A segment put
  together from pieces is swapped for the shared payload once whole (``on_reassembled``).
"""

from __future__ import annotations

import math
import operator
import random
from collections.abc import Callable

import attrs

from p2ploader.core import actions as act
from p2ploader.core import events as ev
from p2ploader.core.segments import Segment, SegmentId
from p2ploader.sim.loop import VirtualHandle, VirtualLoop

__all__ = ["LinkProfile", "ModelledHttp", "ModelledPeers", "Origin", "PeerNetwork", "SimStream"]

_rendition_of = operator.attrgetter("rendition")
_EMPTY: frozenset[SegmentId] = frozenset()

PIECE_SECONDS = 1.0
"""A simulated upload arrives in pieces at least this often (seconds of transfer time)."""
HTTP_PIECE_SECONDS = 0.1
"""A simulated HTTP body arrives in pieces at least this often (seconds of transfer time): finely
enough that a segment relayed while it arrives (cut-through) follows the origin's pace."""
_MAX_PIECES = 64


@attrs.define
class _Request:
    """A request on its way to the peer asked."""

    handle: VirtualHandle

    def cancel(self) -> None:
        self.handle.cancel()


@attrs.define(kw_only=True, eq=False)
class _Fetch:
    """An HTTP fetch in flight: its response header after a round trip, then its body in pieces."""

    request_id: int
    offset: int
    body: bytes
    total: int
    piece_size: int
    rate: float
    start: float
    sent: int = 0


@attrs.define(kw_only=True, eq=False)
class _Upload:
    """An upload in flight: its header, then its pieces one after another at the link's rate."""

    target: ModelledPeers
    peer_id: str
    request_id: int
    segment_id: SegmentId
    data: bytes
    """The bytes to send, from the requested offset; of a growing upload (cut-through), those
    the uploader has so far."""
    length: int
    """How many bytes it sends in all: ``total_bytes`` minus the requested offset."""
    total_bytes: int
    """The segment's size, announced in the header (``data`` starts at the requested offset)."""
    piece_size: int
    rate: float
    latency: float
    start: float
    """When the header reaches the receiver; piece k arrives ``k * piece_size / rate`` later."""
    sent: int = 0
    handle: VirtualHandle | None = None
    next_piece: VirtualHandle | None = None
    cancelled: bool = False
    starved: bool = False
    """A growing upload whose next piece had not arrived at the uploader when it was due."""

    def due(self) -> float:
        """When the next piece reaches the receiver."""
        return self.start + min(self.sent + self.piece_size, self.length) / self.rate

    def uplink_span(self) -> tuple[float, float]:
        """When the uploader's link starts and stops sending it."""
        begin = self.start - self.latency
        return begin, begin + self.length / self.rate

    def disarm(self) -> None:
        """Stop its pending header and piece (to arm them anew, or for good)."""
        for handle in (self.handle, self.next_piece):
            if handle is not None:
                handle.cancel()

    def cancel(self) -> None:
        self.cancelled = True
        self.disarm()


@attrs.frozen(kw_only=True)
class LinkProfile:
    """A viewer's access link. Bandwidths in bytes/s, latency and jitter in seconds (one way)."""

    down: float
    up: float
    latency: float = 0.02
    jitter: float = 0.005
    loss: float = 0.0


@attrs.frozen(kw_only=True)
class Rendition:
    id: str
    bitrate: float
    """Bits per second of media; a segment has ``bitrate * duration / 8`` bytes."""


class SimStream:
    """A live or VOD stream: renditions of equal-duration segments, with shared payloads.

    Live: segment ``k`` (media sequence ``k``) is published at ``k * duration`` seconds after the
    stream started ``window`` segments before time 0; playlists list the last ``window``.
    ``gap_every``: segments ``k`` with ``k % gap_every == gap_every - 1`` are marked ``EXT-X-GAP``
    (None: no gaps); set it before the first segment is built.
    """

    def __init__(
        self,
        *,
        renditions: list[Rendition],
        segment_duration: float,
        live: bool,
        window: int = 20,
        vod_segments: int = 300,
    ) -> None:
        self.renditions = {r.id: r for r in renditions}
        self.segment_duration = segment_duration
        self.live = live
        self.window = window
        self.vod_segments = vod_segments
        self.gap_every: int | None = None
        self._payloads: dict[tuple[str, int], bytes] = {}
        self._segments: dict[tuple[str, int], Segment] = {}
        self._playlists: dict[tuple[str, int], tuple[Segment, ...]] = {}

    def payload(self, segment_id: SegmentId) -> bytes:
        key = (segment_id.rendition, segment_id.sequence)
        data = self._payloads.get(key)
        if data is None:
            size = max(1, int(self.renditions[segment_id.rendition].bitrate * self.segment_duration / 8))
            data = self._payloads[key] = bytes(size)
        return data

    def segment(self, rendition: str, sequence: int) -> Segment:
        key = (rendition, sequence)
        seg = self._segments.get(key)
        if seg is None:
            seg = self._segments[key] = Segment(
                id=SegmentId(rendition, sequence),
                url=f"sim://origin/{rendition}/{sequence}.ts",
                duration=self.segment_duration,
                start=sequence * self.segment_duration,
                gap=self.gap_every is not None and sequence % self.gap_every == self.gap_every - 1,
            )
        return seg

    def last_published(self, now: float) -> int:
        """Media sequence of the newest segment at ``now`` (live)."""
        return self.window - 1 + int(now // self.segment_duration)

    def playlist(self, rendition: str, now: float) -> tuple[Segment, ...]:
        if not self.live:
            return tuple(self.segment(rendition, i) for i in range(self.vod_segments))
        last = self.last_published(now)
        key = (rendition, last)
        playlist = self._playlists.get(key)
        if playlist is None:  # every viewer reloads it once per segment: build it once
            first = max(0, last - self.window + 1)
            playlist = self._playlists[key] = tuple(
                self.segment(rendition, i) for i in range(first, last + 1)
            )
        return playlist

    def next_publication(self, now: float) -> float:
        return (int(now // self.segment_duration) + 1) * self.segment_duration

    def forget_before(self, sequence: int) -> None:
        """Drop payloads of segments that no viewer can still need (bounded memory in long runs)."""
        for key in [k for k in self._payloads if k[1] < sequence]:
            del self._payloads[key]
        for key in [k for k in self._segments if k[1] < sequence]:
            del self._segments[key]
        for key in [k for k in self._playlists if k[1] < sequence]:
            del self._playlists[key]


class Origin:
    """The origin/CDN: a total bandwidth (bytes/s) shared by the transfers in flight."""

    def __init__(self, *, bandwidth: float, latency: float = 0.02) -> None:
        self.bandwidth = bandwidth
        self.latency = latency
        self.active = 0
        self.requests = 0
        self.bytes_sent = 0


class ModelledHttp:
    """The HTTP executor of one simulated viewer."""

    def __init__(
        self,
        *,
        loop: VirtualLoop,
        origin: Origin,
        stream: SimStream,
        link: LinkProfile,
        feed: Callable[[ev.Event], None],
        rng: random.Random,
        on_reassembled: Callable[[SegmentId], object] | None = None,
    ) -> None:
        self._loop, self._origin, self._stream, self._link = loop, origin, stream, link
        self._feed, self._rng = feed, rng
        self._on_reassembled = on_reassembled  # as ModelledPeers': after a resumed fetch
        self._segments: dict[int, SegmentId] = {}
        self._active: dict[int, VirtualHandle] = {}

    def start(self, action: act.StartHttpFetch) -> None:
        origin = self._origin
        data = self._stream.payload(action.segment.id)
        body = data[action.resume_from :] if action.resume_from else data
        share_down = self._link.down / (len(self._active) + 1)
        share_origin = origin.bandwidth / (origin.active + 1)
        rate = min(share_down, share_origin) * (1.0 - self._link.loss)
        rtt = 2 * (self._link.latency + origin.latency) + self._rng.random() * self._link.jitter
        origin.active += 1
        origin.requests += 1
        rid = action.request_id
        pieces = max(1, min(_MAX_PIECES, math.ceil(len(body) / rate / HTTP_PIECE_SECONDS)))
        if action.resume_from or pieces > 1:
            self._segments[rid] = action.segment.id
        fetch = _Fetch(
            request_id=rid,
            offset=action.resume_from,
            body=body,
            total=len(data),
            piece_size=math.ceil(len(body) / pieces),
            rate=rate,
            start=self._loop.time() + rtt,
        )
        self._active[rid] = self._loop.call_at(fetch.start, self._started, fetch)

    def _started(self, fetch: _Fetch) -> None:
        self._next_piece(fetch)  # armed first: the response's handler may abort the fetch
        self._feed(
            ev.HttpResponseStarted(request_id=fetch.request_id, offset=fetch.offset, total_bytes=fetch.total)
        )

    def _next_piece(self, fetch: _Fetch) -> None:
        due = fetch.start + min(fetch.sent + fetch.piece_size, len(fetch.body)) / fetch.rate
        self._active[fetch.request_id] = self._loop.call_at(due, self._piece, fetch)

    def _piece(self, fetch: _Fetch) -> None:
        rid = fetch.request_id
        piece = fetch.body[fetch.sent : fetch.sent + fetch.piece_size]
        fetch.sent += len(piece)
        self._origin.bytes_sent += len(piece)
        if fetch.sent < len(fetch.body):
            self._next_piece(fetch)  # armed first: the chunk's handler may abort the fetch
            self._feed(ev.HttpChunkReceived(request_id=rid, data=piece))
            return
        if self._active.pop(rid, None) is None:
            return
        self._origin.active -= 1
        self._feed(ev.HttpChunkReceived(request_id=rid, data=piece))
        self._feed(ev.HttpFetchCompleted(request_id=rid))
        reassembled = self._segments.pop(rid, None)
        if reassembled is not None and self._on_reassembled is not None:
            self._on_reassembled(reassembled)

    def abort(self, request_id: int) -> None:
        handle = self._active.pop(request_id, None)
        self._segments.pop(request_id, None)
        if handle is not None:
            handle.cancel()
            self._origin.active -= 1

    def close(self) -> None:
        for rid in list(self._active):
            self.abort(rid)


class PeerNetwork:
    """Who is connected to whom, and message delivery between simulated viewers."""

    def __init__(self, loop: VirtualLoop, rng: random.Random) -> None:
        self.loop = loop
        self.rng = rng
        self.peers: dict[str, ModelledPeers] = {}
        # Per swarm, the alive peers with room for another neighbour, in a stable order: what
        # the tracker introduces. Kept up to date on every (dis)connection so that introducing a
        # viewer costs the size of this set, not the size of the audience.
        self.with_room: dict[str, dict[str, ModelledPeers]] = {}
        self.swarm_sizes: dict[str, int] = {}
        # Who delivered each segment, for the exact "uploaders per segment" figure: per segment the
        # viewers that delivered at least one copy of it. Segments too old to be asked for again
        # are folded into ``segment_uploaders`` and forgotten (memory stays bounded).
        self._uploaders: dict[SegmentId, set[str]] = {}
        self._forgotten_uploaders = 0

    def record_delivery(self, segment_id: SegmentId, uploader: str) -> None:
        self._uploaders.setdefault(segment_id, set()).add(uploader)

    def forget_uploads_before(self, sequence: int) -> None:
        for segment_id in [s for s in self._uploaders if s.sequence < sequence]:
            self._forgotten_uploaders += len(self._uploaders.pop(segment_id))

    @property
    def segment_uploaders(self) -> int:
        """Distinct (segment, uploader) pairs over the run: summed over segments, the viewers that
        delivered at least one copy of each."""
        return self._forgotten_uploaders + sum(len(u) for u in self._uploaders.values())

    def register(self, peers: ModelledPeers) -> None:
        self.peers[peers.peer_id] = peers
        self.swarm_sizes[peers.swarm] = self.swarm_sizes.get(peers.swarm, 0) + 1
        self._update_room(peers)

    def unregister(self, peers: ModelledPeers) -> None:
        self.peers.pop(peers.peer_id, None)
        self.swarm_sizes[peers.swarm] -= 1
        self.with_room.get(peers.swarm, {}).pop(peers.peer_id, None)

    def _update_room(self, peers: ModelledPeers) -> None:
        room = self.with_room.setdefault(peers.swarm, {})
        if peers.alive and len(peers.neighbours) < peers.max_peers:
            room[peers.peer_id] = peers
        else:
            room.pop(peers.peer_id, None)

    def latency(self, a: ModelledPeers, b: ModelledPeers) -> float:
        return a.link.latency + b.link.latency + self.rng.random() * (a.link.jitter + b.link.jitter)

    def connect(self, a: ModelledPeers, b: ModelledPeers) -> None:
        """Link ``a`` and ``b`` unless either already has ``max_peers`` links.

        The tracker's introductions only promise room at the moment they are made; by the time a
        link opens (``connect_delay_s`` later) either side may have filled up, and the real
        transport then refuses it (``PeerManager.on_offer`` answers no offer when it has no room left,
        and an offer holds a slot while pending). Without this check viewers ended up with about
        37 links on average (48 at most) under ``max_peers = 20``.
        """
        if b.peer_id in a.neighbours or a is b or not (a.alive and b.alive):
            return
        if len(a.neighbours) >= a.max_peers or len(b.neighbours) >= b.max_peers:
            return
        a.neighbours[b.peer_id] = b
        b.neighbours[a.peer_id] = a
        a.broadcast = b.broadcast = None
        self._update_room(a)
        self._update_room(b)
        a.feed(ev.PeerConnected(peer_id=b.peer_id))
        b.feed(ev.PeerConnected(peer_id=a.peer_id))

    def disconnect(self, a: ModelledPeers, b_id: str) -> None:
        b = a.neighbours.pop(b_id, None)
        if b is None:
            return
        b.neighbours.pop(a.peer_id, None)
        a.broadcast = b.broadcast = None
        self._update_room(a)
        self._update_room(b)
        a.drop_transfers_with(b_id)
        b.drop_transfers_with(a.peer_id)
        a.feed(ev.PeerDisconnected(peer_id=b_id))
        if b.alive:
            self.loop.call_later(self.latency(a, b), b.feed_if_alive, ev.PeerDisconnected(peer_id=a.peer_id))


class ModelledPeers:
    """The peer transport of one simulated viewer."""

    def __init__(
        self,
        *,
        peer_id: str,
        swarm: str,
        network: PeerNetwork,
        link: LinkProfile,
        feed: Callable[[ev.Event], None],
        upload_cap: float | None = None,
        max_peers: int = 10,
        on_reassembled: Callable[[SegmentId], object] | None = None,
    ) -> None:
        self.peer_id = peer_id
        self.on_reassembled = on_reassembled
        """Called after a segment that arrived in several pieces was delivered whole, so that the
        receiving viewer can drop its reassembled copy for the stream's shared payload."""
        self.swarm = swarm
        self.network = network
        self.link = link
        self.feed = feed
        self.max_peers = max_peers
        self.alive = True
        self.neighbours: dict[str, ModelledPeers] = {}
        self.broadcast: tuple[list[ModelledPeers], float] | None = None
        """Every neighbour and the sum of their latencies, for announcements (``None``: stale).
        :class:`PeerNetwork` resets it whenever it changes ``neighbours``; never mutated."""
        self.uploaded_bytes = 0
        self._up_rate = min(link.up, upload_cap) if upload_cap else link.up
        self._uplink_free_at = 0.0
        # Our uploads not fully sent, in the order the uplink sends them.
        self._uplink_queue: list[_Upload] = []
        # Deliveries in flight that a cancel or a departure must stop, by (peer, request id): a
        # request on its way to us, or one of our uploads.
        self._transfers: dict[tuple[str, int], _Request | _Upload] = {}

    def feed_if_alive(self, event: ev.Event) -> None:
        if self.alive:
            self.feed(event)

    def perform(self, action: act.Action) -> None:
        loop = self.network.loop
        match action:
            case act.RequestFromPeer():
                target = self.neighbours.get(action.peer_id)
                if target is None:
                    loop.call_soon(
                        self.feed_if_alive,
                        ev.PeerDownloadFailed(request_id=action.request_id, reason="peer gone"),
                    )
                    return
                request = ev.PeerRequestedSegment(
                    peer_id=self.peer_id,
                    segment_id=action.segment_id,
                    byte_offset=action.byte_offset,
                    peer_request_id=action.request_id,
                )
                handle = loop.call_later(self.network.latency(self, target), target.feed_if_alive, request)
                target._transfers[(self.peer_id, action.request_id)] = _Request(handle)
            case act.CancelPeerDownload():
                target = self.neighbours.get(action.peer_id)
                if target is not None:
                    target._end_transfer((self.peer_id, action.request_id))
            case act.AnnounceSegments():
                self._announce(action)
            case act.SendSegmentToPeer():
                self._upload(action)
            case act.ExtendUpload():
                self._extend(action)
            case act.SendSegmentAbsent() | act.AbortUpload():
                target = self.neighbours.get(action.peer_id)
                if target is not None and action.peer_request_id is not None:
                    # The request's record goes; an aborted upload stops and frees the uplink.
                    self._end_transfer((action.peer_id, action.peer_request_id))
                    failed = ev.PeerDownloadFailed(
                        request_id=action.peer_request_id, reason="absent", absent=True
                    )
                    loop.call_later(self.network.latency(self, target), target.feed_if_alive, failed)
            case act.DisconnectPeer():
                self.network.disconnect(self, action.peer_id)
            case _:
                pass

    def _swarm_only(self, ids: tuple[SegmentId, ...]) -> frozenset[SegmentId]:
        """The ids of our swarm's segments (a swarm's links carry only that rendition's map)."""
        swarm = self.swarm
        # Usually every id is of our swarm: check that in C, and build the set without a filter.
        if not ids or set(map(_rendition_of, ids)) == {swarm}:
            return frozenset(ids)
        return frozenset(s for s in ids if s.rendition == swarm)

    def _announce(self, action: act.AnnounceSegments) -> None:
        loaded = self._swarm_only(action.loaded)
        loading = self._swarm_only(action.loading_by_http) if action.loading_by_http else _EMPTY
        if action.peer_id is not None:
            target = self.neighbours.get(action.peer_id)
            if target is None:
                return
            targets, latencies = [target], target.link.latency
        else:
            if self.broadcast is None:  # neighbours change far less often than we announce
                everyone = list(self.neighbours.values())
                self.broadcast = (everyone, sum(t.link.latency for t in everyone))
            targets, latencies = self.broadcast
            if not targets:
                return
        # One delivery for all neighbours after the mean one-way latency (announcements are the
        # bulk of a swarm's messages; per-neighbour timing would differ by a few milliseconds).
        network = self.network
        latency = self.link.latency + latencies / len(targets)
        latency += network.rng.random() * self.link.jitter
        announced = ev.PeerAnnounced(peer_id=self.peer_id, loaded=loaded, loading_by_http=loading)
        network.loop.call_later(latency, self._deliver_announcement, targets, announced)

    @staticmethod
    def _deliver_announcement(targets: list[ModelledPeers], announced: ev.PeerAnnounced) -> None:
        sender = announced.peer_id
        for target in targets:
            if target.alive and sender in target.neighbours:
                target.feed(announced)

    def _upload(self, action: act.SendSegmentToPeer) -> None:
        target = self.neighbours.get(action.peer_id)
        rid = action.peer_request_id
        if target is None or rid is None:
            return
        loop = self.network.loop
        rate = min(self._up_rate, target.link.down) * (1.0 - max(self.link.loss, target.link.loss))
        latency = self.network.latency(self, target)
        start = max(loop.time(), self._uplink_free_at)
        data = action.data
        length = action.total_bytes - action.byte_offset if action.growing else len(data)
        self._uplink_free_at = start + length / rate
        # Pieces at least every PIECE_SECONDS of transfer: a slow upload shows its progress (the
        # stall timeout, a cut-over keeping the bytes received) as a data channel's chunks would.
        pieces = max(1, min(_MAX_PIECES, math.ceil(length / rate / PIECE_SECONDS)))
        upload = _Upload(
            target=target,
            peer_id=action.peer_id,
            request_id=rid,
            segment_id=action.segment_id,
            data=data,
            length=length,
            total_bytes=action.total_bytes,
            piece_size=math.ceil(length / pieces),
            rate=rate,
            latency=latency,
            start=start + latency,
        )
        self._schedule(upload)
        self._transfers[(action.peer_id, rid)] = upload
        self._uplink_queue.append(upload)

    def _extend(self, action: act.ExtendUpload) -> None:
        """More bytes of a growing upload reached us: a starved upload sends on as they come."""
        upload = self._transfers.get((action.peer_id, action.peer_request_id or 0))
        if not isinstance(upload, _Upload) or upload.cancelled:
            return
        upload.data = upload.data + action.data
        if upload.starved:
            upload.starved = False
            at = max(upload.due(), self.network.loop.time() + upload.latency)
            upload.next_piece = self.network.loop.call_at(at, self._send_piece, upload)

    def _schedule(self, upload: _Upload) -> None:
        """Arm the upload's header and first piece."""
        loop = self.network.loop
        header = ev.PeerResponseStarted(request_id=upload.request_id, total_bytes=upload.total_bytes)
        upload.handle = loop.call_at(upload.start, upload.target.feed_if_alive, header)
        upload.next_piece = loop.call_at(upload.due(), self._send_piece, upload)

    def _release_uplink(self, cancelled: _Upload) -> None:
        """A cancelled upload frees the uplink time it had left: the uploads queued behind it move
        up (a real uploader stops sending it at once)."""
        queue = self._uplink_queue
        try:
            index = queue.index(cancelled)
        except ValueError:
            return
        del queue[index]
        now = self.network.loop.time()
        begin, end = cancelled.uplink_span()
        freed = end - max(now, begin)
        if freed <= 0:
            return
        self._uplink_free_at = max(now, self._uplink_free_at - freed)
        for upload in queue[index:]:
            upload.disarm()
            upload.start -= freed
            self._schedule(upload)

    def _send_piece(self, upload: _Upload) -> None:
        """Deliver the next piece of an upload; the last one completes it. A growing upload whose
        next bytes have not reached us yet waits for them (``extend``)."""
        piece = upload.data[upload.sent : upload.sent + upload.piece_size]
        if not piece and upload.sent < upload.length:
            upload.starved = True
            upload.next_piece = None
            return
        upload.sent += len(piece)
        target = upload.target
        if target.alive:
            self.uploaded_bytes += len(piece)  # counted when delivered: cancelled bytes do not count
            whole = upload.sent >= upload.length
            if whole:
                self.network.record_delivery(upload.segment_id, self.peer_id)
            target.feed(ev.PeerChunkReceived(request_id=upload.request_id, data=piece))
            if whole and len(piece) < upload.length and target.on_reassembled is not None:
                target.on_reassembled(upload.segment_id)
            if upload.cancelled:  # the receiver cancelled it on this very piece
                return
        if upload.sent < upload.length:
            upload.next_piece = self.network.loop.call_at(upload.due(), self._send_piece, upload)
            return
        self._transfers.pop((upload.peer_id, upload.request_id), None)
        if self._uplink_queue and self._uplink_queue[0] is upload:
            self._uplink_queue.pop(0)
        else:
            self._uplink_queue.remove(upload)
        delivered = upload.sent if target.alive else 0
        self.feed_if_alive(
            ev.UploadFinished(peer_id=upload.peer_id, peer_request_id=upload.request_id, sent_bytes=delivered)
        )

    def _end_transfer(self, key: tuple[str, int]) -> None:
        """Stop a delivery in flight; an upload's end is reported to our scheduler."""
        transfer = self._transfers.pop(key, None)
        if transfer is None:
            return
        transfer.cancel()
        if isinstance(transfer, _Upload):  # not a request still on its way to us
            self._release_uplink(transfer)
            self.feed_if_alive(ev.UploadFinished(peer_id=key[0], peer_request_id=key[1]))

    def drop_transfers_with(self, peer_id: str) -> None:
        for key in [k for k in self._transfers if k[0] == peer_id]:
            self._end_transfer(key)

    def leave(self) -> None:
        """The viewer goes away: every neighbour sees it disconnect."""
        for other in list(self.neighbours):
            self.network.disconnect(self, other)
        self.alive = False
        for transfer in self._transfers.values():
            transfer.cancel()
        self._transfers.clear()
        self._uplink_queue.clear()
