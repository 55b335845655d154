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
* :class:`ModelledPeers` runs the shipped peer wire protocol,
  :class:`~p2ploader.core.peer_protocol.PeerProtocol`, one machine per end of each link that
  :class:`PeerNetwork` opens, and maps its events to the core's exactly as the real peer manager
  (:mod:`p2ploader.aio.peers`) does, through the same
  :class:`~p2ploader.core.peer_set.PeerSet`: a link is made only if each side would answer the
  other's offer (:meth:`~p2ploader.core.peer_set.PeerSet.offer`: not itself, not linked, not
  banned; the simulator has no admission, a cap of ``max_peers`` neighbours stands for it), each
  side's peer set reports it open (``PeerConnected``) and closed (``PeerDisconnected``, at once to
  the side that closed it, one-way latency later to the other), and an upload's end
  (``UploadFinished``); requests, headers, chunked data, cancels (with the discard of
  bytes in flight), absences, growing uploads, the size checks, the flood guard and violations are
  the machine's decisions, not the model's. Only the wire is modelled: the messages a machine emits
  travel in order (an ordered data channel) and arrive after both viewers' one-way latency plus
  jitter. Uploads take turns on the uploader's uplink, first come first served, at
  ``min(uplink, upload cap, receiver downlink) * (1 - loss)``; an upload's data messages leave in
  bursts of :data:`PIECE_SECONDS` of transfer time (the receiver sees a slow upload's progress, in
  few events: one burst is fed to its scheduler as one chunk), and commands sent on the same link
  wait behind the burst in flight. A cancel stops the upload when it reaches the uploader's
  machine; the turn passes on once the burst already handed to the uplink has left, and the
  receiver's machine drops that burst. A growing upload (cut-through) sends bytes as they reach
  the uploader and keeps its turn while it waits (at most :data:`GROWING_UPLOAD_PATIENCE`).
* With ``LinkProfile.queue`` > 0 a viewer's uplink is one shared queue
  (:class:`~p2ploader.sim.uplink.Uplink`): its uploads fill it (loss-based, or paced by the
  shipped upload controller), its peer messages and HTTP requests wait in it, and its HTTP
  downloads grow their window over the longer round trip. Without it (the default) uploads never
  delay anything else the viewer sends.
* Payloads are real ``bytes`` objects shared by every viewer (one per segment), so the scheduler
  counts real sizes while memory stays bounded by the stream, not by the audience. A segment put
  together from pieces is swapped for the shared payload once whole (``on_reassembled``).
"""

from __future__ import annotations

import math
import random
from collections import deque
from collections.abc import Callable
from typing import Protocol

import attrs

from p2ploader.core import actions as act
from p2ploader.core import events as ev
from p2ploader.core import peer_protocol as proto
from p2ploader.core import swarm, wire
from p2ploader.core.http_fetch import status_failure
from p2ploader.core.peer_protocol import PeerProtocol, Upload
from p2ploader.core.peer_set import GROWING_UPLOAD_PATIENCE, Accept, PeerSet
from p2ploader.core.retries import FetchRetryPolicy, GiveUpFetch, HttpAttemptFailure, RetryAttempt
from p2ploader.core.scheduler import MAX_SEGMENT_SIZE
from p2ploader.core.segments import Segment, SegmentId
from p2ploader.errors import UsageError
from p2ploader.sim.loop import VirtualHandle, VirtualLoop
from p2ploader.sim.uplink import (
    ACK_BYTES_PER_BYTE,
    CONTROLLED_PIECE_SECONDS,
    HTTP_WIRE_SHARE,
    P2P_WIRE_SHARE,
    Uplink,
    tcp_transfer_seconds,
)

__all__ = [
    "LinkProfile",
    "ModelledHttp",
    "ModelledPeers",
    "Origin",
    "PayloadSource",
    "PeerNetwork",
    "SimStream",
]

PIECE_SECONDS = 0.5
"""An upload hands the uplink its data chunks in bursts of this much transfer time (seconds): the
receiver sees a slow upload's progress at least this often, in few events. A command sent on the
same link (a request, an announcement) waits behind the burst, as on an ordered data channel; a
real sender keeps up to 1 MiB queued (``BUFFERED_AMOUNT_LOW_THRESHOLD``), this keeps the wait short
enough that 1 s bursts no longer cost a stall the model did not have before (slow-origin stress,
seed 2)."""
HTTP_PIECE_SECONDS = 0.1
"""A simulated HTTP body arrives in pieces at least this often (seconds of transfer time): finely
enough that a segment relayed while it arrives (cut-through) follows the origin's pace."""
_MAX_PIECES = 64
_ID_SETS_KEPT = 4096  # announcements' id sets kept for reuse (a bound on memory)


class PayloadSource(Protocol):
    """What the modelled HTTP serves: a resource's bytes by the id its scheduler gives it."""

    def payload(self, segment_id: SegmentId) -> bytes: ...


@attrs.define(kw_only=True, eq=False)
class _Fetch:
    """An HTTP fetch in flight: its response header after a round trip, then its body in pieces."""

    request_id: int
    offset: int
    body: bytes | memoryview
    total: int
    piece_size: int
    rate: float
    start: float
    sent: int = 0


@attrs.frozen(kw_only=True)
class LinkProfile:
    """A viewer's access link. Bandwidths in bytes/s, latency and jitter in seconds (one way)."""

    down: float
    up: float
    latency: float = 0.02
    jitter: float = 0.005
    loss: float = 0.0
    queue: float = 0.0
    """Seconds at ``up`` the uplink's queue holds, shared by the viewer's uploads and its own
    traffic (:class:`~p2ploader.sim.uplink.Uplink`); 0: not modelled."""


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
    """The origin/CDN: a total bandwidth (bytes/s) shared by the transfers in flight.

    ``failure`` is a fault model: asked once per attempt (GET) with the segment's id, it returns
    the HTTP error status (>= 300) the attempt fails with after a round trip, or ``None`` to serve
    it. What happens next is the shipped core's decision, as in the loader
    (:mod:`p2ploader.core.retries`): another attempt within the fetch after its back-off (5xx,
    ``http_retries`` times), the fetch's failure (a 4xx, or the attempts used up), then the fetches
    of a segment the player waits for, with their own back-off and give-up.
    ``requests`` and ``failed_requests`` count attempts."""

    def __init__(
        self,
        *,
        bandwidth: float,
        latency: float = 0.02,
        failure: Callable[[SegmentId], int | None] | None = None,
    ) -> None:
        self.bandwidth = bandwidth
        self.latency = latency
        self.failure = failure
        self.active = 0
        self.requests = 0
        self.failed_requests = 0
        self.bytes_sent = 0


class ModelledHttp:
    """The HTTP executor of one simulated viewer. Like the loader's
    (:class:`p2ploader.aio.http.HttpExecutor`), it performs the core's ``retry_policy`` after each
    failed attempt: waits its delay and asks again from the byte it names, or reports the fetch's
    failure with its reason."""

    def __init__(
        self,
        *,
        loop: VirtualLoop,
        origin: Origin,
        stream: PayloadSource,
        link: LinkProfile,
        feed: Callable[[ev.Event], None],
        rng: random.Random,
        retry_policy: FetchRetryPolicy,
        on_reassembled: Callable[[SegmentId], object] | None = None,
        uplink: Uplink | None = None,
        ready_at: Callable[[SegmentId], float] | None = None,
    ) -> None:
        self._loop, self._origin, self._stream, self._link = loop, origin, stream, link
        self._uplink = uplink  # its queue delays our requests and acknowledgements
        # When a resource exists at the origin (seconds; None: always): a GET that reaches it
        # earlier is held until then, as an LL-HLS origin holds the preload hint's part.
        self._ready_at = ready_at
        self._feed, self._rng = feed, rng
        self._retry_policy = retry_policy
        self._on_reassembled = on_reassembled  # as ModelledPeers': after a resumed fetch
        self._segments: dict[int, SegmentId] = {}
        self._active: dict[int, VirtualHandle] = {}
        self._backing_off: set[int] = set()  # fetches between attempts: no transfer at the origin

    def start(self, action: act.StartHttpFetch) -> None:
        self._attempt(action, attempt=1, resume_from=action.resume_from)

    def _attempt(self, action: act.StartHttpFetch, *, attempt: int, resume_from: int) -> None:
        """One GET of ``action``'s segment from byte ``resume_from``."""
        origin = self._origin
        rid = action.request_id
        self._backing_off.discard(rid)
        data = self._stream.payload(action.segment.id)
        share_down = self._link.down / (len(self._active) + 1)
        share_origin = origin.bandwidth / (origin.active + 1)
        rate = min(share_down, share_origin) * (1.0 - self._link.loss)
        rtt = 2 * (self._link.latency + origin.latency) + self._rng.random() * self._link.jitter
        uplink = self._uplink
        if uplink is not None:
            # Our request waits in our uplink's queue, and so does every acknowledgement.
            rtt += uplink.delay(self._loop.time())
        status = origin.failure(action.segment.id) if origin.failure is not None else None
        kind = status_failure(status) if status is not None else None
        if status is not None and kind is None:
            raise UsageError(f"Origin.failure returned {status}: an error status (>= 300) or None")
        origin.active += 1
        origin.requests += 1
        if kind is not None:
            origin.failed_requests += 1
            failure = HttpAttemptFailure(
                kind=kind, reason=f"HTTP {status}", status=status, held=resume_from, attempt=attempt
            )
            self._active[rid] = self._loop.call_at(self._loop.time() + rtt, self._failed, action, failure)
            return
        size = max(0, len(data) - resume_from)  # the body's bytes
        if uplink is not None:
            # Each window takes that round trip, from a restarted window (slow start after idle),
            # and the acknowledgements must fit in the uplink.
            rate = min(rate * HTTP_WIRE_SHARE, uplink.rate / ACK_BYTES_PER_BYTE)
            rate = size / tcp_transfer_seconds(size, rate, rtt) if size else rate
        pieces = max(1, min(_MAX_PIECES, math.ceil(size / rate / HTTP_PIECE_SECONDS)))
        if resume_from or pieces > 1:
            self._segments[rid] = action.segment.id
            # Memory: the pieces are views of the stream's shared payload, not copies. The
            # scheduler holds the pieces of a download in flight; with copies, 10,000 viewers
            # crawling through the origin held gigabytes (each about a segment's worth).
            body: bytes | memoryview = memoryview(data)[resume_from:]
        else:
            body = data  # one piece: the shared payload itself (its whole slice is itself)
        start = self._loop.time() + rtt
        if self._ready_at is not None:
            # Held at the origin until published: the response leaves then, one way back to us.
            start = max(start, self._ready_at(action.segment.id) + self._link.latency + origin.latency)
        fetch = _Fetch(
            request_id=rid,
            offset=resume_from,
            body=body,
            total=len(data),
            piece_size=math.ceil(len(body) / pieces),
            rate=rate,
            start=start,
        )
        self._active[rid] = self._loop.call_at(fetch.start, self._started, fetch)

    def _started(self, fetch: _Fetch) -> None:
        self._next_piece(fetch)  # armed first: the response's handler may abort the fetch
        self._feed(
            ev.HttpResponseStarted(request_id=fetch.request_id, offset=fetch.offset, total_bytes=fetch.total)
        )

    def _failed(self, action: act.StartHttpFetch, failure: HttpAttemptFailure) -> None:
        rid = action.request_id
        if self._active.pop(rid, None) is None:
            return
        self._origin.active -= 1
        draw = self._rng.random() if self._retry_policy.jitter else 0.0
        decision = self._retry_policy.after(failure, draw=draw)
        if isinstance(decision, GiveUpFetch):
            self._feed(decision.event(rid))
            return
        self._backing_off.add(rid)
        self._active[rid] = self._loop.call_at(
            self._loop.time() + decision.delay, self._retry, action, decision
        )

    def _retry(self, action: act.StartHttpFetch, decision: RetryAttempt) -> None:
        self._attempt(action, attempt=decision.attempt, resume_from=decision.resume_from)

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
            if request_id in self._backing_off:
                self._backing_off.discard(request_id)
            else:
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
        self._id_sets: dict[tuple[str, tuple[int, ...]], frozenset[SegmentId]] = {}

    def segment_ids(self, swarm_id: str, wire_ids: tuple[int, ...]) -> frozenset[SegmentId]:
        """The segment ids of an announcement's wire ids (every simulated playlist starts at media
        sequence 0, so live and VOD ids agree). One announcement reaches every neighbour: its set
        is built once, not once per receiver."""
        key = (swarm_id, wire_ids)
        ids = self._id_sets.get(key)
        if ids is None:
            if len(self._id_sets) >= _ID_SETS_KEPT:
                self._id_sets.clear()
            ids = self._id_sets[key] = frozenset(
                swarm.segment_id_from_wire(swarm_id, i, live=True, first_sequence=0) for i in wire_ids
            )
        return ids

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
        if not (a.alive and b.alive):
            return
        # Each side judges the other as the peer manager judges an offer (PeerSet.offer): our own
        # id, a link already there, a ban (the peer manager refuses a banned peer's offers and
        # answers). The simulator has no admission: the room check below stands for it.
        now = self.loop.time()
        if not isinstance(a.peer_set.offer(b.peer_id, None, now=now), Accept):
            return
        if not isinstance(b.peer_set.offer(a.peer_id, None, now=now), Accept):
            return
        if len(a.neighbours) >= a.max_peers or len(b.neighbours) >= b.max_peers:
            return
        a.neighbours[b.peer_id] = b
        b.neighbours[a.peer_id] = a
        a_end, b_end = a.new_link_end(b), b.new_link_end(a)
        a_end.peer_end, b_end.peer_end = b_end, a_end
        self._update_room(a)
        self._update_room(b)
        # Open at once: each side's peer set admits the link and tells its core (PeerConnected).
        a.peer_set.opened(a_end, now=now)
        b.peer_set.opened(b_end, now=now)

    def disconnect(self, a: ModelledPeers, b_id: str) -> None:
        b = a.neighbours.pop(b_id, None)
        if b is None:
            return
        b.neighbours.pop(a.peer_id, None)
        self._update_room(a)
        self._update_room(b)
        a_gone = a.close_link_end(b_id)
        b_gone = b.close_link_end(a.peer_id)
        # Each peer set says what its core hears (PeerDisconnected, once, for an admitted link): a
        # closed the link and hears it at once, b once the close reaches it.
        if a_gone is not None:
            a.feed(a_gone)
        if b.alive and b_gone is not None:
            self.loop.call_later(self.latency(a, b), b.feed_if_alive, b_gone)


@attrs.define(eq=False)
class _LinkEnd:
    """Our end of the link to one neighbour: the shipped protocol machine, and the direction of the
    link towards the neighbour (an ordered channel: a message never overtakes an earlier one)."""

    remote: ModelledPeers
    protocol: PeerProtocol
    latency: float
    """Seconds one way: both viewers' latencies (:meth:`PeerNetwork.latency` without jitter)."""
    jitter: float
    """Seconds: the most jitter a message gets on top (both viewers' jitter)."""
    peer_end: _LinkEnd | None = None
    """The neighbour's end of the same link (it receives what we send)."""
    arrival_floor: float = 0.0
    """When the last message we sent reaches the neighbour (seconds, virtual time)."""
    sending: _Sending | None = None
    """Our upload to the neighbour (queued or on the uplink), or ``None``."""
    open: bool = True

    @property
    def peer_id(self) -> str:
        return self.remote.peer_id


@attrs.define(eq=False)
class _Sending:
    """One of our uploads: the machine's :class:`~p2ploader.core.peer_protocol.Upload` and how far
    the uplink got with it."""

    end: _LinkEnd
    upload: Upload
    rate: float
    """Bytes/s: ``min(uplink or upload cap, receiver's downlink) * (1 - loss)``."""
    lossless_rate: float = 0.0
    """The same without the loss: what the sender pushes at (whether it fills our uplink's queue
    depends on this, not on the goodput loss leaves)."""
    sent: int = 0
    handle: VirtualHandle | None = None
    """The end of its burst on the uplink, or the patience of a starved growing upload."""
    starved: bool = False
    """A growing upload waiting for its next bytes (``handle`` is then its patience)."""
    done: bool = False


class ModelledPeers:
    """The peer transport of one simulated viewer: one :class:`PeerProtocol` per neighbour, its
    messages carried over the modelled links (see the module's theory of operation)."""

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
        payload: Callable[[SegmentId], bytes] | None = None,
        max_segment_size: int = MAX_SEGMENT_SIZE,
        max_announced_ids: int = wire.DEFAULT_MAX_ANNOUNCED_IDS,
        max_message_size: int = wire.DEFAULT_MAX_MESSAGE_SIZE,
        is_banned: Callable[[str], bool] | None = None,
        uplink: Uplink | None = None,
    ) -> None:
        self.peer_id = peer_id
        self.uplink = uplink
        """The uplink's shared queue (``None``: not modelled): our uploads fill it, and our
        messages wait in it."""
        self.on_reassembled = on_reassembled
        """Called after a segment that arrived in several pieces was delivered whole, so that the
        receiving viewer can drop its reassembled copy for the stream's shared payload."""
        self.payload = payload
        """The stream's shared payload of a segment (:meth:`SimStream.payload`), or ``None``."""
        self.swarm = swarm
        self.network = network
        self.link = link
        self.max_peers = max_peers
        self.sends_stream_payloads = True
        """Whether our uploads carry the stream's bytes, so that a receiver may take the shared
        payload for a segment that came in one burst; a modelled liar sets it ``False`` (its bytes
        then reach the receiver's checks as sent)."""
        self.alive = True
        self.neighbours: dict[str, ModelledPeers] = {}
        self.uploaded_bytes = 0
        """Bytes of our uploads that neighbours took (bytes dropped after a cancel do not count)."""
        self.peer_set: PeerSet[_LinkEnd] = PeerSet(
            swarm=swarm,
            # Every simulated playlist starts at media sequence 0, so live and VOD ids agree.
            live=True,
            first_sequence=0,
            feed=feed,
            io=_ModelledLinkIO(self),
            max_segment_size=max_segment_size,
            max_announced_ids=max_announced_ids,
            max_message_size=max_message_size,
            # is_banned(peer_id): the core's verdict (the viewer's scheduler's reputation); a
            # banned peer is refused a link, as the peer manager refuses its offers and answers.
            is_banned=None if is_banned is None else lambda peer_id, _certificate: is_banned(peer_id),
            announced=self._announced_ids,
            local_peer_id=peer_id,
        )
        """The links and the decisions about them, as the peer manager's
        (:mod:`p2ploader.core.peer_set`)."""
        self._links = self.peer_set.links
        self._up_rate = min(link.up, upload_cap) if upload_cap else link.up
        # Our uploads take turns on the uplink, first come first served, as the peer manager's.
        self._uplink_queue: deque[_Sending] = deque()
        self._on_uplink: _Sending | None = None
        self._uplink_busy_until = 0.0  # the burst handed to the uplink last leaves it then
        # Our requests: request id -> the segment asked, and how many pieces of it came so far.
        self._requests: dict[int, SegmentId] = {}
        self._pieces: dict[int, int] = {}

    @property
    def feed(self) -> Callable[[ev.Event], None]:
        """Where the core's events go (the viewer's driver); a traced run wraps it."""
        return self.peer_set.feed

    @feed.setter
    def feed(self, feed: Callable[[ev.Event], None]) -> None:
        self.peer_set.feed = feed

    # ------------------------------------------------------------------ links

    def refuses(self, peer_id: str) -> bool:
        """Whether we refuse a link to ``peer_id`` (the core says it is banned)."""
        return self.peer_set.refuses(peer_id)

    def new_link_end(self, remote: ModelledPeers) -> _LinkEnd:
        """Our end of a new link to ``remote`` (:meth:`PeerNetwork.connect` pairs the ends)."""
        end = _LinkEnd(
            remote,
            self.peer_set.new_protocol(),
            latency=self.link.latency + remote.link.latency,
            jitter=self.link.jitter + remote.link.jitter,
        )
        self.peer_set.add(remote.peer_id, end, now=self.network.loop.time())
        return end

    def close_link_end(self, peer_id: str) -> ev.PeerDisconnected | None:
        """The link to ``peer_id`` is gone: its messages in flight are dropped, its upload ends.
        Returns what the core is to hear of it (:meth:`~p2ploader.core.peer_set.PeerSet.closed`)."""
        end = self._links.get(peer_id)
        if end is None:
            return None
        gone = self.peer_set.closed(end)
        end.open = False
        if end.sending is not None:
            self._end_upload(end.sending)
        if self.uplink is not None and self.uplink.controller is not None:
            self.uplink.controller.forget(end)
        return gone

    def set_playlist_window(self, segments: int) -> None:
        """The playlist lists ``segments`` segments: bound every link's announcements by it."""
        self.peer_set.set_playlist_window(segments)

    def feed_if_alive(self, event: ev.Event) -> None:
        if self.alive:
            self.peer_set.feed(event)

    def _announced_ids(self, wire_ids: tuple[int, ...]) -> frozenset[SegmentId]:
        return self.network.segment_ids(self.swarm, wire_ids)

    # ------------------------------------------------------------------ the modelled wire

    def _transmit(self, end: _LinkEnd) -> None:
        """Send what the machine queued (commands: a few dozen bytes, charged latency only, and
        the wait in our uplink's queue when it is modelled)."""
        messages = end.protocol.messages_to_send()
        if messages:
            now = self.network.loop.time()
            uplink = self.uplink
            self._carry(
                end, messages, leaves_at=now if uplink is None else now + uplink.delay(now), data=False
            )

    def _carry(self, end: _LinkEnd, messages: list[bytes], *, leaves_at: float, data: bool) -> None:
        """Deliver ``messages`` one-way latency after they leave our uplink, in order."""
        network = self.network
        # As PeerNetwork.latency(self, end.remote), with the link's sums made once.
        arrival = leaves_at + (end.latency + network.rng.random() * end.jitter)
        if arrival < end.arrival_floor:
            arrival = end.arrival_floor
        end.arrival_floor = arrival
        peer_end = end.peer_end
        assert peer_end is not None
        network.loop.call_at_fixed(arrival, end.remote._receive, peer_end, messages, data)

    def _receive(self, end: _LinkEnd, messages: list[bytes], data: bool) -> None:
        """Messages from ``end``'s neighbour reach us."""
        if not end.open or not self.alive:
            return
        protocol = end.protocol
        loop_time = self.network.loop.time()
        if data:
            # A burst of data chunks of one upload: the scheduler sees it as one piece (as the
            # modelled piece of a slow upload always was), so the events per segment stay few.
            for message in messages:
                protocol.receive_message(message, now=loop_time)
            self._pump(end)
            return
        peer_set = self.peer_set
        for message in messages:
            peer_set.receive(end, message, now=loop_time)
            if not end.open:
                return

    def _pump(self, end: _LinkEnd) -> None:
        """Send the machine's messages and act on its events; consecutive data events of one
        request are fed as one chunk."""
        self._transmit(end)
        protocol = end.protocol
        merged: list[proto.DataReceived] = []
        while (event := protocol.next_event()) is not None:
            if isinstance(event, proto.DataReceived):
                if merged and merged[0].request_id != event.request_id:
                    self._data_received(end, merged)
                    merged = []
                merged.append(event)
                continue
            if merged:
                self._data_received(end, merged)
                merged = []
            if type(event) is proto.RequestAbsent:
                self._requests.pop(event.request_id, None)
            self.peer_set.handle(end, event)
        if merged:
            self._data_received(end, merged)
        self._transmit(end)

    def _data_received(self, end: _LinkEnd, events: list[proto.DataReceived]) -> None:
        request_id = events[0].request_id
        complete = events[-1].complete
        pieces = self._pieces.get(request_id, 0) + 1
        self._pieces[request_id] = pieces
        segment_id = self._requests.get(request_id)
        if len(events) == 1:
            data = events[0].data
        else:
            size = sum([len(e.data) for e in events])
            shared = None
            if (
                complete
                and pieces == 1
                and segment_id is not None
                and self.payload is not None
                and end.remote.sends_stream_payloads
            ):
                shared = self.payload(segment_id)
            # A whole segment in one burst is the stream's shared payload (the bytes every viewer
            # holds): joining its chunks anew for every copy cost most of a run's time.
            if shared is not None and len(shared) == size:
                data = shared
            else:
                data = b"".join([e.data for e in events])
        sender = end.remote
        sender.uploaded_bytes += len(data)
        if complete:
            self._requests.pop(request_id, None)
            self._pieces.pop(request_id, None)
            if segment_id is not None:
                self.network.record_delivery(segment_id, sender.peer_id)
        self.peer_set.feed(ev.PeerChunkReceived(request_id=request_id, data=data))
        if complete and pieces > 1 and segment_id is not None and self.on_reassembled is not None:
            self.on_reassembled(segment_id)

    # ------------------------------------------------------------------ core actions

    def perform(self, action: act.Action) -> None:
        """The core's action, through the peer set; the model keeps which segment each of our
        requests asks for (the receiver's pieces, its shared payload, who delivered it)."""
        match action:
            case act.RequestFromPeer():
                if action.peer_id in self._links:
                    self._requests[action.request_id] = action.segment_id
                    self._pieces.pop(action.request_id, None)
            case act.CancelPeerDownload():
                self._requests.pop(action.request_id, None)
            case _:
                pass
        self.peer_set.perform(action)

    def _upload_extended(self, end: _LinkEnd) -> None:
        sending = end.sending
        if sending is not None and sending.starved:
            self._burst(sending)  # it waited for these bytes: it sends on

    def _upload_stopped(self, end: _LinkEnd, upload: Upload) -> None:
        sending = end.sending
        if sending is not None and sending.upload is upload:
            self._end_upload(sending)

    # ------------------------------------------------------------------ uploads

    def _start_upload(self, end: _LinkEnd, upload: Upload) -> None:
        """Queue ``upload`` (the machine started it) for the uplink."""
        self._pump(end)  # the upload it replaces stops
        remote = end.remote
        lossless = min(self._up_rate, remote.link.down)
        if self.uplink is not None:
            lossless *= P2P_WIRE_SHARE  # the link's shaper counts the packets' headers too
        rate = lossless * (1.0 - max(self.link.loss, remote.link.loss))
        sending = _Sending(end, upload, rate, lossless_rate=lossless)
        end.sending = sending
        self._uplink_queue.append(sending)
        if self._on_uplink is None:
            self._next_upload()

    def _next_upload(self) -> None:
        """The uplink's turn goes to the oldest upload still wanted: its header, then its bursts."""
        while self._uplink_queue:
            sending = self._uplink_queue.popleft()
            if sending.done:
                continue
            self._on_uplink = sending
            sending.end.protocol.begin_upload(sending.upload)
            self._transmit(sending.end)
            self._burst(sending)
            return

    def _burst(self, sending: _Sending) -> None:
        """Hand the uplink the next chunks: as many as it sends in :data:`PIECE_SECONDS` (one at
        least). A growing upload with no new bytes waits for them (``ExtendUpload``)."""
        upload = sending.upload
        loop = self.network.loop
        if sending.starved:
            sending.starved = False
            if sending.handle is not None:
                sending.handle.cancel()
                sending.handle = None
        uplink = self.uplink
        rate = sending.rate
        paced: float | None = None  # bytes/s the upload control allows (None: no limit)
        chunk_limit: int | None = None
        piece_seconds = PIECE_SECONDS
        if uplink is not None and uplink.controller is not None:
            control = uplink.controller
            piece_seconds = CONTROLLED_PIECE_SECONDS
            if control.rate is not None:
                # Paced above what the link carries, the queue grows by the difference.
                paced = control.rate
                chunk_limit = control.chunk_limit()
        budget = min(paced or rate, rate) * piece_seconds
        chunks: list[bytes] = []
        size = 0
        while size < budget and (chunk := upload.next_chunk(chunk_limit)) is not None:
            chunks.append(chunk)
            size += len(chunk)
        if not chunks:
            if upload.finished:
                self._complete_upload(sending)
                return
            # The scheduler stops a relay whose HTTP download ends without the segment; this bound
            # only keeps a lost one from holding the uplink for ever (as the peer manager's).
            sending.starved = True
            sending.handle = loop.call_later(GROWING_UPLOAD_PATIENCE, self._give_up, sending)
            return
        start = max(loop.time(), self._uplink_busy_until)
        if uplink is None:
            leaves_at = handed = start + size / rate
        else:
            # A sender slower than our link (held by the upload cap or the receiver's downlink)
            # queues nothing here, nor does one paced below the link by the control; a faster
            # one fills the queue (loss-based without a pace). Our bytes reach the peer after
            # what is queued ahead of the last of them.
            if sending.lossless_rate < uplink.payload_rate:
                paced = rate if paced is None else min(paced, rate)
            handed = uplink.send(size, now=start, rate=paced)
            leaves_at = handed + uplink.delay(handed)
            end = sending.end
            uplink.observe(
                end,
                start=start,
                end=handed,
                rate=size / (handed - start),
                path=2 * end.latency,
                remote=end.remote.uplink,
            )
        self._uplink_busy_until = handed
        sending.sent += size
        self._carry(sending.end, chunks, leaves_at=leaves_at, data=True)
        sending.handle = loop.call_at(handed, self._burst_sent, sending)

    def _burst_sent(self, sending: _Sending) -> None:
        sending.handle = None
        if sending.upload.finished:
            self._complete_upload(sending)
        else:
            self._burst(sending)

    def _give_up(self, sending: _Sending) -> None:
        sending.handle = None
        self._end_upload(sending)

    def _complete_upload(self, sending: _Sending) -> None:
        end = sending.end
        end.protocol.complete_upload(sending.upload)
        self._transmit(end)
        self._end_upload(sending)

    def _end_upload(self, sending: _Sending) -> None:
        """The upload ended (sent, stopped, given up, link gone): its uplink turn passes on and the
        scheduler's upload slot is free."""
        if sending.done:
            return
        sending.done = True
        if sending.handle is not None:
            sending.handle.cancel()
            sending.handle = None
        end = sending.end
        end.protocol.end_upload(sending.upload)
        if end.sending is sending:
            end.sending = None
        if self.alive:
            self.peer_set.upload_finished(end, sending.upload, sent_bytes=sending.sent)
        if self._on_uplink is sending:
            self._on_uplink = None
            self._next_upload()

    def leave(self) -> None:
        """The viewer goes away: every neighbour sees it disconnect."""
        for other in list(self.neighbours):
            self.network.disconnect(self, other)
        self.alive = False
        for sending in self._uplink_queue:
            sending.done = True
        self._uplink_queue.clear()
        self._on_uplink = None


class _ModelledLinkIO:
    """A viewer's modelled links as its peer set drives them
    (:class:`~p2ploader.core.peer_set.PeerLinkIO`): every link is open from the start. The hooks
    are the viewer's own methods, bound once (the simulator calls them for every message)."""

    def __init__(self, peers: ModelledPeers) -> None:
        self._peers = peers
        self.transmit = peers._transmit
        self.pump = peers._pump
        self.upload_started = peers._start_upload
        self.upload_extended = peers._upload_extended
        self.upload_stopped = peers._upload_stopped

    def usable(self, link: _LinkEnd) -> bool:
        return True

    def close(self, link: _LinkEnd, reason: str) -> None:
        self._peers.network.disconnect(self._peers, link.remote.peer_id)

    def release(self, link: _LinkEnd, reason: str) -> None:
        self.close(link, reason)  # no admission in the simulator: never asked

    def feed_soon(self, event: ev.Event) -> None:
        self._peers.network.loop.call_soon(self._peers.feed_if_alive, event)
