"""The peer wire protocol with one remote peer, sans-IO: messages and calls in, messages and events out.

Theory of operation
-------------------
One :class:`PeerProtocol` per remote peer holds everything P2P Media Loader 2.x's wire protocol
(:mod:`p2ploader.core.wire`) decides about that peer; it does no I/O, reads no clock (``now`` is
an argument, seconds) and draws no randomness, as h11's ``Connection`` and aioquic's
``QuicConnection``. Its user (the peer manager in :mod:`p2ploader.aio.peers`, or a test wiring two
machines together) does three things:

* **Feed it.** Every data-channel message goes to :meth:`PeerProtocol.receive_message`; our own
  decisions are method calls: :meth:`~PeerProtocol.send_request`, :meth:`~PeerProtocol.send_cancel`,
  :meth:`~PeerProtocol.send_announcement`, :meth:`~PeerProtocol.send_absent` and the upload calls.
* **Send what it queued.** :meth:`~PeerProtocol.messages_to_send` returns the encoded messages, in
  order, for the data channel. Upload chunks are pulled one at a time with :meth:`Upload.next_chunk`,
  so the I/O layer can wait for the channel's send buffer to drain (and pace) between chunks.
* **Act on its events.** :meth:`~PeerProtocol.next_event` returns typed events (:data:`Event`):
  an announcement, a request or cancel from the peer, the header, bytes, or absence answering our
  request, an upload it stopped, a protocol violation.

**Downloads.** We keep at most one outstanding request per peer. Its data header must name the
request (segment id and request id), may come once, and must announce a size of at most
``max_segment_size`` bytes (the stream's bitrate allows no more: refused before a byte comes).
Data chunks without a header, more bytes than announced, or a sending-completed before all
announced bytes are violations. When the last announced byte arrives the request is retired at once
(the scheduler may ask this peer again before the sending-completed comes), and that completion is
then accepted once.

**Discard after cancel.** Bytes of a request we cancelled may be in flight. Its headers,
completions and absences are accepted and dropped; its data is dropped too, but counted against
what the cancelled requests' headers announced and had not yet delivered (the *discard
allowance*). Data beyond that allowance is a flood, not bytes in flight: a violation. The header of
our next request ends the discarding.

**Flood guard.** Commands (not data chunks) spend a token of a per-peer bucket
(:class:`~p2ploader.core.bans.CommandRate`, about 100 per second, bursts of 400); an empty bucket
is a violation.

**Announcements** we send carry at most ``max_announced_ids`` ids (the playlist's window allows no
more; peers refuse longer ones, and so does our decoder while it reads them): the oldest loaded ids
go first.

**Uploads.** One upload at a time per peer: a new one (ours), a new request from the peer, the
peer's cancel of it, or our absent for it stops the current one (event :class:`UploadStopped`).
An upload is a header, data chunks of at most ``max_message_size`` bytes (cut per piece as
:func:`~p2ploader.core.wire.chunk_segment_data` does), and a sending-completed. A *growing*
upload (a cut-through relay of a segment still arriving over HTTP) announces its full size first
and gets its bytes with :meth:`PeerProtocol.extend_upload`; :meth:`Upload.next_chunk` returns
``None`` while no new bytes are buffered.

**Violations.** Every broken rule (undecodable message, flood, mismatched header or completion,
wrong sizes, data after cancel beyond the allowance) emits one :class:`ProtocolViolated` with its
reason and the request it failed, if any; the machine then ignores the peer's further messages, so
one incident is reported once. The I/O layer closes the link; the scheduler loads the segment
elsewhere. A violation only the I/O layer can see (a receiver that stops reading) is reported
through :meth:`PeerProtocol.report_violation`, so it takes the same path.

Segment ids here are wire ids (ints); mapping them to :class:`~p2ploader.core.segments.SegmentId`
is the swarm's business (:mod:`p2ploader.core.swarm`).
"""

from __future__ import annotations

from collections import OrderedDict, deque
from collections.abc import Callable, Sequence
from typing import Final, TypeAlias

import attrs

from p2ploader.core import events as ev
from p2ploader.core import wire
from p2ploader.core.bans import CommandRate
from p2ploader.core.segments import SegmentId
from p2ploader.errors import PeerProtocolError

__all__ = [
    "MAX_REMEMBERED_CANCELS",
    "AnnouncementReceived",
    "DataReceived",
    "Event",
    "PeerProtocol",
    "ProtocolViolated",
    "RequestAbsent",
    "RequestCancelled",
    "ResponseStarted",
    "SegmentRequested",
    "Upload",
    "UploadStopped",
    "scheduler_event",
]

MAX_REMEMBERED_CANCELS: Final = 16
"""Cancelled requests whose late headers and completions are still accepted; older ones are
long settled."""

_ANNOUNCEMENTS_KEPT: Final = 64
# One announcement goes to every neighbour, each through its own machine: the messages of the last
# few, keyed by the identity of the (immutable) id tuples they were made of and the two limits that
# shape them. An entry holds its tuples, so no other live object can have their ids, and a tuple of
# ints that was validated once stays valid. Lists are not remembered (they may change in between).
_announcements: dict[tuple[int, int, int, int], tuple[tuple[int, ...], tuple[int, ...], list[bytes]]] = {}


# ---------------------------------------------------------------------------------------- events


@attrs.frozen(kw_only=True)
class AnnouncementReceived:
    """The peer announced what it holds (``loaded``) and loads over HTTP (wire ids)."""

    loaded: tuple[int, ...]
    loading_by_http: tuple[int, ...]


@attrs.frozen(kw_only=True)
class SegmentRequested:
    """The peer asks us for ``segment_id`` from ``byte_offset`` (bytes), tagged ``request_id``."""

    segment_id: int
    request_id: int
    byte_offset: int


@attrs.frozen(kw_only=True)
class RequestCancelled:
    """The peer cancelled its request ``request_id`` for ``segment_id``."""

    segment_id: int
    request_id: int


@attrs.frozen(kw_only=True)
class ResponseStarted:
    """The data header of our request: ``size`` bytes follow, starting at ``byte_offset``."""

    request_id: int
    byte_offset: int
    size: int


@attrs.frozen(kw_only=True)
class DataReceived:
    """Bytes of our request; ``complete``: the last ones the header announced."""

    request_id: int
    data: bytes = attrs.field(repr=lambda data: f"<{len(data)} bytes>")
    complete: bool


@attrs.frozen(kw_only=True)
class RequestAbsent:
    """The peer does not have the segment of our request (or does not upload), or ended its
    transfer early."""

    request_id: int


@attrs.frozen(kw_only=True)
class UploadStopped:
    """The machine dropped ``upload`` (replaced, requested over, cancelled, or answered absent):
    send none of its chunks any more."""

    upload: Upload


@attrs.frozen(kw_only=True)
class ProtocolViolated:
    """The peer broke the protocol (``reason``); ``request_id``: our request it failed, if one was
    outstanding. The peer's further messages are ignored."""

    reason: str
    request_id: int | None


Event: TypeAlias = (
    AnnouncementReceived
    | SegmentRequested
    | RequestCancelled
    | ResponseStarted
    | DataReceived
    | RequestAbsent
    | UploadStopped
    | ProtocolViolated
)


def scheduler_event(
    event: Event,
    *,
    peer_id: str,
    segment_id: Callable[[int], SegmentId],
    announced: Callable[[tuple[int, ...]], frozenset[SegmentId]],
) -> ev.Event | None:
    """The scheduler's event for a protocol event from ``peer_id``, or None for the two the
    transport handles itself (``UploadStopped``: its upload task; ``ProtocolViolated``: the link).
    ``segment_id`` maps one wire id, ``announced`` an announcement's list of them. The peer manager
    and the simulator's modelled peers both feed the scheduler through this one mapping."""
    match event:
        case AnnouncementReceived():  # the most frequent, first
            return ev.PeerAnnounced(
                peer_id=peer_id,
                loaded=announced(event.loaded),
                loading_by_http=announced(event.loading_by_http),
            )
        case DataReceived():
            return ev.PeerChunkReceived(request_id=event.request_id, data=event.data)
        case SegmentRequested():
            return ev.PeerRequestedSegment(
                peer_id=peer_id,
                segment_id=segment_id(event.segment_id),
                byte_offset=event.byte_offset,
                peer_request_id=event.request_id,
            )
        case RequestCancelled():
            return ev.PeerCancelledUpload(peer_id=peer_id, segment_id=segment_id(event.segment_id))
        case ResponseStarted():
            return ev.PeerResponseStarted(
                request_id=event.request_id, total_bytes=event.byte_offset + event.size
            )
        case RequestAbsent():
            return ev.PeerDownloadFailed(request_id=event.request_id, reason="absent", absent=True)
        case _:
            return None


# ---------------------------------------------------------------------------------------- uploads

_CHUNKED_BYTES_KEPT: Final = 4 << 20
# A segment is usually uploaded to several peers at about the same time (and in the simulator every
# viewer uploads the stream's one shared payload): the chunks of the last payloads cut, up to this
# many bytes of chunks, are reused instead of copied again. Keyed by the payload's identity: an
# entry holds its (immutable) payload, so no other live object can have its id. Every step is one
# call into C (no running total kept), so loaders on several threads cannot corrupt it.
_chunked: OrderedDict[tuple[int, int], tuple[bytes, tuple[bytes, ...]]] = OrderedDict()


def _chunks_of(piece: bytes, max_message_size: int) -> tuple[bytes, ...]:
    """``piece`` cut as :func:`~p2ploader.core.wire.chunk_segment_data` cuts it, remembered."""
    if type(piece) is not bytes or len(piece) > _CHUNKED_BYTES_KEPT:
        return tuple(wire.chunk_segment_data(piece, max_message_size=max_message_size))
    key = (id(piece), max_message_size)
    kept = _chunked.get(key)
    if kept is not None and kept[0] is piece:
        return kept[1]
    chunks = tuple(wire.chunk_segment_data(piece, max_message_size=max_message_size))
    _chunked[key] = (piece, chunks)
    held = sum([len(payload) for payload, _ in list(_chunked.values())])
    while held > _CHUNKED_BYTES_KEPT and len(_chunked) > 1:  # the oldest go first, never this one
        try:
            _, (payload, _) = _chunked.popitem(last=False)
        except KeyError:  # emptied meanwhile by another thread
            break
        held -= len(payload)
    return chunks


class Upload:
    """The bytes of one upload and how far they were handed out.

    ``length`` bytes are announced; ``data`` is what is here now. A growing upload gets more with
    :meth:`PeerProtocol.extend_upload` until it holds ``length`` bytes.
    """

    def __init__(
        self, *, segment_id: int, request_id: int, data: bytes, length: int, max_message_size: int
    ) -> None:
        self.segment_id = segment_id
        self.request_id = request_id
        self.length = length
        """Bytes announced in the data header."""
        self.received = len(data)
        """Bytes handed to the upload so far."""
        self.taken = 0
        """Bytes returned by :meth:`next_chunk` so far."""
        self._max_message_size = max_message_size
        self._pieces: deque[bytes] = deque([data] if data else [])
        self._chunks: deque[bytes] = deque()  # the current piece's messages, cut at full size
        self._piece = memoryview(b"")  # or the current piece, cut at a paced size on demand
        self._cut = 0  # bytes of it handed out

    @property
    def key(self) -> tuple[int, int]:
        """``(segment id, request id)`` on the wire."""
        return (self.segment_id, self.request_id)

    @property
    def finished(self) -> bool:
        """Every announced byte was handed out."""
        return self.taken >= self.length

    def _extend(self, data: bytes) -> bool:
        data = data[: max(0, self.length - self.received)]  # never past the announced size
        if not data:
            return False
        self._pieces.append(data)
        self.received += len(data)
        return True

    def next_chunk(self, max_bytes: int | None = None) -> bytes | None:
        """The next data message to send, or ``None``: finished, or (growing) no new bytes yet.

        Pieces are cut as :func:`~p2ploader.core.wire.chunk_segment_data` cuts them: at most
        ``max_message_size`` bytes, or ``max_bytes`` if smaller (a paced upload sends small
        messages so that none fills the uplink's queue at once), never a lookalike command chunk
        (such a chunk is one byte shorter, its last byte starts the next). Unpaced, a piece's
        messages come from the shared memo (:func:`_chunks_of`)."""
        if max_bytes is not None and max_bytes < self._max_message_size:
            return self._next_paced(max(1, max_bytes))
        if self._cut < len(self._piece):  # a piece begun at a paced size ends at full size
            return self._cut_from_piece(self._max_message_size)
        if not self._chunks:
            if not self._pieces:
                return None
            self._chunks.extend(_chunks_of(self._pieces.popleft(), self._max_message_size))
        chunk = self._chunks.popleft()
        self.taken += len(chunk)
        return chunk

    def _next_paced(self, size: int) -> bytes | None:
        if self._cut >= len(self._piece):
            if self._chunks:  # what is left of a piece cut at full size, cut smaller from here on
                self._piece = memoryview(b"".join(self._chunks))
                self._chunks.clear()
            elif self._pieces:
                self._piece = memoryview(self._pieces.popleft())
            else:
                return None
            self._cut = 0
        return self._cut_from_piece(size)

    def _cut_from_piece(self, size: int) -> bytes:
        chunk = bytes(self._piece[self._cut : self._cut + size])
        if wire.is_command_chunk(chunk):
            chunk = chunk[:-1]
        self._cut += len(chunk)
        self.taken += len(chunk)
        return chunk


# ---------------------------------------------------------------------------------------- machine


@attrs.define
class _Download:
    """Our one outstanding request to the peer."""

    request_id: int
    segment_id: int
    byte_offset: int
    expected: int | None = None  # bytes announced by the data header
    received: int = 0


class PeerProtocol:
    """The wire protocol with one remote peer (see the module's theory of operation).

    ``max_segment_size``: bytes a data header may announce. ``max_announced_ids``: ids one
    announcement may carry, both ways. ``max_message_size``: bytes per message we send (settable:
    the remote's SCTP limit is known once the link opens). ``command_rate``: the flood guard.
    """

    def __init__(
        self,
        *,
        max_segment_size: int,
        max_announced_ids: int = wire.DEFAULT_MAX_ANNOUNCED_IDS,
        max_message_size: int = wire.DEFAULT_MAX_MESSAGE_SIZE,
        command_rate: CommandRate | None = None,
    ) -> None:
        self.max_segment_size = max_segment_size
        self.max_message_size = max_message_size
        self._decoder = wire.WireDecoder(max_announced_ids=max_announced_ids)
        self._commands = command_rate or CommandRate()
        self._outgoing: list[bytes] = []
        self._events: deque[Event] = deque()
        self._download: _Download | None = None
        # Cancelled requests (wire segment id, request id) in the order cancelled: their late
        # headers, completions and absences are dropped.
        self._cancelled: dict[tuple[int, int], None] = {}
        # Data of cancelled requests is dropped until the header of our next request arrives.
        self._discarding = False
        # Bytes the cancelled requests' headers announced that had not arrived yet: data beyond it
        # while discarding is a flood, not bytes in flight.
        self._discard_allowance = 0
        # All bytes of this request arrived; its sending-completed is still to come.
        self._finished: tuple[int, int] | None = None
        self._upload: Upload | None = None
        self.broken = False
        """A violation happened: the peer's messages are ignored from now on."""

    # ------------------------------------------------------------------ settings and state

    @property
    def max_announced_ids(self) -> int:
        """Most ids one announcement may carry, received or sent (settable: the playlist's window
        changes)."""
        return self._decoder.max_announced_ids

    @max_announced_ids.setter
    def max_announced_ids(self, value: int) -> None:
        self._decoder.max_announced_ids = value

    @property
    def pending_command_bytes(self) -> int | None:
        """Bytes buffered for an incomplete multi-message command, or ``None``."""
        return self._decoder.pending_command_bytes

    @property
    def outstanding_request(self) -> int | None:
        """The request id of our outstanding request, or ``None``."""
        return None if self._download is None else self._download.request_id

    @property
    def upload(self) -> Upload | None:
        """The upload in progress, or ``None``."""
        return self._upload

    # ------------------------------------------------------------------ outputs

    def messages_to_send(self) -> list[bytes]:
        """The messages queued since the last call, in order (upload chunks excepted)."""
        messages, self._outgoing = self._outgoing, []
        return messages

    def next_event(self) -> Event | None:
        """The oldest event not yet returned, or ``None``."""
        return self._events.popleft() if self._events else None

    def _send(self, command: wire.Command) -> None:
        self._outgoing.extend(wire.encode_command(command, max_message_size=self.max_message_size))

    # ------------------------------------------------------------------ input: the peer's messages

    def receive_message(self, message: bytes, *, now: float) -> None:
        """One data-channel message from the peer, received at ``now`` (seconds)."""
        if self.broken:
            return
        try:
            items = self._decoder.receive(message)
        except PeerProtocolError as exc:
            self._violate(f"undecodable message: {exc}")
            return
        for item in items:
            if not isinstance(item, wire.DataChunk) and not self._commands.allow(now=now):
                self._violate("flooded us with commands")
                return
            try:
                self._handle(item)
            except PeerProtocolError as exc:
                self._violate(str(exc))
                return

    def _handle(self, item: wire.Command | wire.DataChunk) -> None:
        match item:
            case wire.DataChunk():
                self._data(item.data)
            case wire.SegmentsAnnouncement():
                self._events.append(
                    AnnouncementReceived(loaded=item.loaded, loading_by_http=item.loading_by_http)
                )
            case wire.SegmentRequest():
                self._stop_upload()  # a new request replaces the upload in progress
                self._events.append(
                    SegmentRequested(
                        segment_id=item.segment_id, request_id=item.request_id, byte_offset=item.byte_offset
                    )
                )
            case wire.CancelSegmentRequest():
                if self._upload is not None and self._upload.key == (item.segment_id, item.request_id):
                    self._stop_upload()
                self._events.append(RequestCancelled(segment_id=item.segment_id, request_id=item.request_id))
            case wire.SegmentData():
                self._header(item)
            case wire.SegmentDataSendingCompleted():
                key = (item.segment_id, item.request_id)
                download = self._download
                if key == self._finished:
                    self._finished = None
                elif key in self._cancelled:
                    del self._cancelled[key]
                elif download is not None and key == (download.segment_id, download.request_id):
                    raise PeerProtocolError(f"sent {download.received} bytes, announced {download.expected}")
                else:
                    raise PeerProtocolError("sending-completed does not match a request")
            case wire.SegmentAbsent():
                key = (item.segment_id, item.request_id)
                self._cancelled.pop(key, None)
                download = self._download
                if download is not None and key == (download.segment_id, download.request_id):
                    self._download = None
                    self._events.append(RequestAbsent(request_id=download.request_id))

    def _header(self, item: wire.SegmentData) -> None:
        if item.size > self.max_segment_size:
            # Refused before a byte of it comes: the stream's bitrate allows no such segment.
            raise PeerProtocolError(
                f"announced an impossible size ({item.size} bytes, "
                f"more than {self.max_segment_size} the stream allows)"
            )
        key = (item.segment_id, item.request_id)
        if key in self._cancelled:
            self._discarding = True  # its data follows: drop it
            self._discard_allowance += item.size
            return
        download = self._download
        if download is None or key != (download.segment_id, download.request_id):
            raise PeerProtocolError("data header does not match our request")
        if download.expected is not None:
            raise PeerProtocolError("second data header for one request")
        self._discarding = False
        self._discard_allowance = 0  # what cancelled requests still had to send is stale now
        download.expected = item.size
        self._events.append(
            ResponseStarted(request_id=download.request_id, byte_offset=download.byte_offset, size=item.size)
        )

    def _data(self, data: bytes) -> None:
        if self._discarding:
            # In flight after our cancel: dropped, and counted against what those headers announced.
            self._discard_allowance -= len(data)
            if self._discard_allowance < 0:
                raise PeerProtocolError("kept sending data after we cancelled the request")
            return
        download = self._download
        if download is None or download.expected is None:
            raise PeerProtocolError("segment data without a data header")
        download.received += len(data)
        if download.received > download.expected:
            raise PeerProtocolError("more bytes than the data header announced")
        complete = download.received == download.expected
        if complete:
            # The scheduler may ask this peer for the next segment before the sending-completed of
            # this one arrives, so the request is retired now.
            self._finished = (download.segment_id, download.request_id)
            self._download = None
        self._events.append(DataReceived(request_id=download.request_id, data=data, complete=complete))

    def _violate(self, reason: str) -> None:
        download, self._download = self._download, None
        self.broken = True
        self._events.append(
            ProtocolViolated(reason=reason, request_id=None if download is None else download.request_id)
        )

    def report_violation(self, reason: str) -> None:
        """A violation only the I/O layer sees (e.g. a receiver that stopped reading): reported as
        the machine's own, once."""
        if not self.broken:
            self._violate(reason)

    # ------------------------------------------------------------------ input: our downloads

    def send_request(self, *, segment_id: int, request_id: int, byte_offset: int = 0) -> None:
        """Ask for ``segment_id`` from ``byte_offset`` (bytes); it replaces any outstanding request."""
        self._download = _Download(request_id=request_id, segment_id=segment_id, byte_offset=byte_offset)
        self._send(wire.SegmentRequest(segment_id=segment_id, request_id=request_id, byte_offset=byte_offset))

    def send_cancel(self, request_id: int) -> bool:
        """Cancel our outstanding request ``request_id``; ``False`` when it is not outstanding."""
        download = self._download
        if download is None or download.request_id != request_id:
            return False
        self._download = None
        if download.expected is not None:
            self._discarding = True  # its header came: data may be in flight
            self._discard_allowance += download.expected - download.received
        self._cancelled[(download.segment_id, download.request_id)] = None
        if len(self._cancelled) > MAX_REMEMBERED_CANCELS:
            del self._cancelled[next(iter(self._cancelled))]  # the oldest
        self._send(wire.CancelSegmentRequest(segment_id=download.segment_id, request_id=download.request_id))
        return True

    def send_announcement(self, *, loaded: Sequence[int], loading_by_http: Sequence[int]) -> None:
        """Announce what we hold (``loaded``, oldest first) and load over HTTP (wire ids).

        Tuples are encoded once for every machine they are sent through (an announcement to all
        neighbours costs one encoding): pass the same tuples to each peer's machine."""
        limit, message_size = self.max_announced_ids, self.max_message_size
        if type(loaded) is not tuple or type(loading_by_http) is not tuple:
            self._outgoing.extend(self._announcement(list(loaded), list(loading_by_http), limit))
            return
        key = (id(loaded), id(loading_by_http), limit, message_size)
        kept = _announcements.get(key)
        if kept is None or kept[0] is not loaded or kept[1] is not loading_by_http:
            messages = self._announcement(list(loaded), list(loading_by_http), limit)
            if len(_announcements) >= _ANNOUNCEMENTS_KEPT:
                _announcements.clear()
            kept = _announcements[key] = (loaded, loading_by_http, messages)
        self._outgoing.extend(kept[2])

    def _announcement(self, loaded: list[int], loading: list[int], limit: int) -> list[bytes]:
        excess = len(loaded) + len(loading) - limit
        if excess > 0:
            # Peers refuse announcements longer than the playlist's window allows (so do we): the
            # oldest loaded segments go unannounced.
            loaded = loaded[excess:]
            loading = loading[:limit]
        command = wire.SegmentsAnnouncement(loaded=tuple(loaded), loading_by_http=tuple(loading))
        return wire.encode_command(command, max_message_size=self.max_message_size)

    # ------------------------------------------------------------------ input: our uploads

    def _stop_upload(self) -> None:
        upload, self._upload = self._upload, None
        if upload is not None:
            self._events.append(UploadStopped(upload=upload))

    def send_absent(self, *, segment_id: int, request_id: int) -> None:
        """We do not have (or no longer send) ``segment_id`` for the peer's ``request_id``; an upload
        of it stops first. After a data header, "absent" ends the transfer for a p2ploader receiver,
        which keeps the bytes it has (P2P Media Loader drops the segment)."""
        if self._upload is not None and self._upload.key == (segment_id, request_id):
            self._stop_upload()
        self._send(wire.SegmentAbsent(segment_id=segment_id, request_id=request_id))

    def start_upload(
        self, *, segment_id: int, request_id: int, data: bytes, length: int | None = None
    ) -> Upload:
        """Upload ``data`` for the peer's ``request_id``; it replaces the upload in progress.

        ``length``: bytes to announce when more than ``data`` will come (a growing upload, fed with
        :meth:`extend_upload`); ``None``: ``data`` is all of it. Nothing is sent until
        :meth:`begin_upload` (an upload may wait for its turn on the uplink)."""
        self._stop_upload()
        upload = Upload(
            segment_id=segment_id,
            request_id=request_id,
            data=data,
            length=len(data) if length is None else length,
            max_message_size=self.max_message_size,
        )
        self._upload = upload
        return upload

    def extend_upload(self, *, segment_id: int, request_id: int, data: bytes) -> bool:
        """More bytes of a growing upload; ``True`` when the upload in progress took some."""
        upload = self._upload
        if upload is None or upload.key != (segment_id, request_id):
            return False
        return upload._extend(data)

    def begin_upload(self, upload: Upload) -> None:
        """Queue ``upload``'s data header; then send its chunks (:meth:`Upload.next_chunk`)."""
        self._send(
            wire.SegmentData(segment_id=upload.segment_id, request_id=upload.request_id, size=upload.length)
        )

    def complete_upload(self, upload: Upload) -> None:
        """Every chunk of ``upload`` was sent: queue its sending-completed; the upload ends."""
        self._send(
            wire.SegmentDataSendingCompleted(segment_id=upload.segment_id, request_id=upload.request_id)
        )
        self.end_upload(upload)

    def end_upload(self, upload: Upload) -> None:
        """``upload`` ended without the machine's doing (sent, given up, link gone): forget it."""
        if self._upload is upload:
            self._upload = None
