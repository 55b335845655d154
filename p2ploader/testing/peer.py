"""A scripted peer, sans-IO: the far end of one peer link, saying on the wire what a test says.

Theory of operation
-------------------
A p2ploader loader speaks P2P Media Loader 2.x's wire protocol (:mod:`p2ploader.core.wire`) with
each remote peer through a :class:`~p2ploader.core.peer_protocol.PeerProtocol`. Testing what that
side does with an honest, slow, lying or broken peer needs such a peer. :class:`ScriptedPeer` is one
that does no I/O and reads no clock, like the machine it talks to:

* **Bytes in.** Every message from the loader goes to :meth:`ScriptedPeer.receive_message`; it is
  decoded with the public codec (:class:`~p2ploader.core.wire.WireDecoder`) and recorded:
  :attr:`~ScriptedPeer.received` (every command and data chunk, in order),
  :attr:`~ScriptedPeer.requests`, :attr:`~ScriptedPeer.data_bytes`, and
  :attr:`~ScriptedPeer.undecodable` (what did not decode: the loader never sends that).
* **A script answers.** Each request the loader sends runs the peer's *script*,
  ``script(peer, request)``: :func:`honest` sends the bytes held (or "absent"), :func:`silent`
  stalls, :func:`absent` denies, :func:`lying` sends wrong bytes of the right size, and
  :func:`announcing_size`, :func:`stalling_after` and :func:`garbled` break the protocol in one way
  each. A script is any function; it queues messages with the peer's verbs.
* **Messages out.** The verbs (:meth:`~ScriptedPeer.announce`, :meth:`~ScriptedPeer.send_data`,
  :meth:`~ScriptedPeer.send_header`, :meth:`~ScriptedPeer.send_bytes`,
  :meth:`~ScriptedPeer.send_completed`, :meth:`~ScriptedPeer.send_absent`,
  :meth:`~ScriptedPeer.request`, :meth:`~ScriptedPeer.cancel`, and :meth:`~ScriptedPeer.send`
  / :meth:`~ScriptedPeer.send_raw` for anything at all) queue encoded messages;
  :meth:`~ScriptedPeer.messages_to_send` returns them in order. Honest messages are encoded and cut
  exactly as a shipped peer's are (:func:`~p2ploader.core.wire.encode_command`,
  :func:`~p2ploader.core.wire.chunk_segment_data`).

Segment ids here are wire ids (ints), as on the wire.

Two carriers
------------
* **In memory** (:class:`ScriptedLink`): the scripted peer joined to a loader-side
  :class:`~p2ploader.core.peer_protocol.PeerProtocol`. :meth:`ScriptedLink.exchange` moves the
  queued messages both ways at the ``now`` the test passes in and returns the machine's events, so
  a protocol test is deterministic, instant, and never sleeps.
* **Over real WebRTC** (:class:`p2ploader.testing.rtcpeer.RtcScriptedPeer`): the same peer on an
  aiortc data channel to a running loader; its scripts may also be coroutines (to sleep, trickle,
  or leave mid-transfer).
"""

from __future__ import annotations

import collections
import inspect
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Final, Self, TypeAlias

from p2ploader.core import wire
from p2ploader.core.peer_protocol import Event, PeerProtocol, Upload
from p2ploader.errors import PeerProtocolError, UsageError

__all__ = [
    "GARBLED_COMMAND",
    "Received",
    "Script",
    "ScriptedLink",
    "ScriptedPeer",
    "absent",
    "announcing_size",
    "garbled",
    "honest",
    "lying",
    "silent",
    "stalling_after",
]

Received: TypeAlias = wire.Command | wire.DataChunk
"""What the loader sent, decoded: a command, or a chunk of segment data."""

Script: TypeAlias = Callable[["ScriptedPeer", wire.SegmentRequest], Awaitable[None] | None]
"""What a peer does when the loader requests a segment: ``script(peer, request)`` queues its
answer with the peer's verbs. A coroutine function is allowed only on a carrier that runs a loop
(:class:`~p2ploader.testing.rtcpeer.RtcScriptedPeer`)."""

GARBLED_COMMAND: Final = wire.CSTR + b"\xff\x00" + wire.CEND
"""A command chunk with command code 255: framed right, undecodable (:func:`garbled` sends it)."""


class ScriptedPeer:
    """A remote peer that does what its script says (see the module's theory of operation).

    ``segments``: wire id -> the bytes this peer holds (or claims to; :meth:`announce` announces
    them). ``script``: the answer to each request (default :func:`honest`). ``keep``: most commands
    and data chunks kept in :attr:`received` and requests in :attr:`requests` (the newest; ``None``:
    all, which suits a short test). ``keep_data``: keep data chunks in :attr:`received`
    (:attr:`data_bytes` counts them either way). ``max_message_size``: bytes per message sent.
    ``max_announced_ids``: the decoder's bound on an announcement from the loader.
    """

    def __init__(
        self,
        segments: Mapping[int, bytes] | None = None,
        *,
        script: Callable[[Self, wire.SegmentRequest], Awaitable[None] | None] | None = None,
        keep: int | None = None,
        keep_data: bool = True,
        max_message_size: int = wire.DEFAULT_MAX_MESSAGE_SIZE,
        max_announced_ids: int = wire.DEFAULT_MAX_ANNOUNCED_IDS,
    ) -> None:
        if keep is not None and keep < 1:
            raise UsageError(f"keep must be at least 1 (or None: keep all), got {keep}")
        self.segments: dict[int, bytes] = dict(segments or {})
        """Wire id -> the bytes this peer holds (or claims to). Scripts read it; tests may change it."""
        self.script: Callable[[Self, wire.SegmentRequest], Awaitable[None] | None] = script or honest
        self.max_message_size = max_message_size
        """Bytes per message sent (a data channel's limit; 65,535 by default, as upstream)."""
        self.received: collections.deque[Received] = collections.deque(maxlen=keep)
        """What the loader sent, decoded, oldest first (the newest ``keep``)."""
        self.requests: collections.deque[wire.SegmentRequest] = collections.deque(maxlen=keep)
        """The loader's requests, oldest first (the newest ``keep``)."""
        self.request_count = 0
        """Requests received, all of them."""
        self.data_bytes = 0
        """Segment data bytes received (the payload of data chunks), all of them."""
        self.undecodable: list[PeerProtocolError] = []
        """Messages from the loader that did not decode (a conforming loader sends none)."""
        self._keep_data = keep_data
        self._decoder = wire.WireDecoder(max_announced_ids=max_announced_ids)
        self._outbox: list[bytes] = []

    # ------------------------------------------------------------------ input

    def receive_message(self, message: bytes, *, now: float = 0.0) -> None:
        """One data-channel message from the loader, received at ``now`` (seconds; the scripted peer
        keeps no clock of its own, ``now`` is for subclasses and symmetry with the machine)."""
        try:
            items = self._decoder.receive(message)
        except PeerProtocolError as exc:
            self.undecodable.append(exc)  # the decoder has dropped the partial command: go on
            return
        for item in items:
            self._record(item)

    def _record(self, item: Received) -> None:
        """Record one decoded item and run the script for a request (the hook a carrier that
        counts more extends)."""
        if isinstance(item, wire.DataChunk):
            self.data_bytes += len(item.data)
            if not self._keep_data:
                return
        self.received.append(item)
        if isinstance(item, wire.SegmentRequest):
            self.requests.append(item)
            self.request_count += 1
            self._run_script(item)

    def _run_script(self: Self, request: wire.SegmentRequest) -> None:
        result = self.script(self, request)
        if result is not None:
            if inspect.iscoroutine(result):
                result.close()  # never awaited: no "was never awaited" warning on top of the error
            raise UsageError(
                "a coroutine script needs a carrier that runs a loop (RtcScriptedPeer); "
                "a sans-IO ScriptedPeer runs plain functions"
            )

    # ------------------------------------------------------------------ output

    def messages_to_send(self) -> list[bytes]:
        """The messages queued since the last call, in order."""
        messages, self._outbox = self._outbox, []
        return messages

    def _emit(self, message: bytes) -> None:
        """Queue one message (the hook a carrier overrides to send at once)."""
        self._outbox.append(message)

    # ------------------------------------------------------------------ verbs: anything

    def send(self, command: wire.Command) -> None:
        """Queue ``command``, encoded and framed as a shipped peer does."""
        for message in wire.encode_command(command, max_message_size=self.max_message_size):
            self._emit(message)

    def send_raw(self, message: bytes) -> None:
        """Queue ``message`` exactly as given: a data chunk, or bytes that break the framing."""
        self._emit(message)

    # ------------------------------------------------------------------ verbs: what we hold

    def announce(self, loaded: Iterable[int] | None = None, loading_by_http: Iterable[int] = ()) -> None:
        """Announce ``loaded`` (wire ids; default: every segment held, in order) and
        ``loading_by_http``."""
        ids = sorted(self.segments) if loaded is None else list(loaded)
        self.send(wire.SegmentsAnnouncement(loaded=tuple(ids), loading_by_http=tuple(loading_by_http)))

    def data_for(self, request: wire.SegmentRequest) -> bytes | None:
        """The bytes held for ``request`` from its byte offset, or ``None`` when not held."""
        data = self.segments.get(request.segment_id)
        return None if data is None else data[request.byte_offset :]

    # ------------------------------------------------------------------ verbs: answers

    def send_header(self, request: wire.SegmentRequest, size: int) -> None:
        """The data header answering ``request``, announcing ``size`` bytes."""
        self.send(wire.SegmentData(segment_id=request.segment_id, request_id=request.request_id, size=size))

    def send_bytes(self, data: bytes) -> None:
        """Segment bytes, cut into data chunks as a shipped peer cuts them."""
        for chunk in wire.chunk_segment_data(data, max_message_size=self.max_message_size):
            self._emit(chunk)

    def send_completed(self, request: wire.SegmentRequest) -> None:
        """The sending-completed of ``request``."""
        self.send(
            wire.SegmentDataSendingCompleted(segment_id=request.segment_id, request_id=request.request_id)
        )

    def send_absent(self, request: wire.SegmentRequest) -> None:
        """ "Absent": this peer does not have the segment of ``request``."""
        self.send(wire.SegmentAbsent(segment_id=request.segment_id, request_id=request.request_id))

    def send_data(self, request: wire.SegmentRequest, data: bytes, *, size: int | None = None) -> None:
        """A whole answer: the header announcing ``size`` bytes (default ``len(data)``), ``data``,
        the sending-completed."""
        self.send_header(request, len(data) if size is None else size)
        self.send_bytes(data)
        self.send_completed(request)

    # ------------------------------------------------------------------ verbs: as a downloader

    def request(self, segment_id: int, request_id: int, *, byte_offset: int = 0) -> wire.SegmentRequest:
        """Ask the loader for ``segment_id`` from ``byte_offset`` (bytes); returns the request."""
        request = wire.SegmentRequest(segment_id=segment_id, request_id=request_id, byte_offset=byte_offset)
        self.send(request)
        return request

    def cancel(self, request: wire.SegmentRequest) -> None:
        """Cancel our ``request``."""
        self.send(wire.CancelSegmentRequest(segment_id=request.segment_id, request_id=request.request_id))

    # ------------------------------------------------------------------ what was received

    def cancelled(self, request: wire.SegmentRequest) -> bool:
        """Whether the loader cancelled ``request`` (one of its requests to us)."""
        return any(
            isinstance(item, wire.CancelSegmentRequest)
            and (item.segment_id, item.request_id) == (request.segment_id, request.request_id)
            for item in self.received
        )

    def answered(self, request_id: int) -> bool:
        """Whether the loader ended our request ``request_id`` (sending-completed or absent)."""
        return any(
            isinstance(item, wire.SegmentDataSendingCompleted | wire.SegmentAbsent)
            and item.request_id == request_id
            for item in self.received
        )

    def data(self) -> bytes:
        """The segment bytes received, in order (kept data chunks only)."""
        return b"".join(item.data for item in self.received if isinstance(item, wire.DataChunk))


# ---------------------------------------------------------------------------------------- scripts


def honest(peer: ScriptedPeer, request: wire.SegmentRequest) -> None:
    """Send the bytes held, or "absent" when none are."""
    data = peer.data_for(request)
    if data is None:
        peer.send_absent(request)
    else:
        peer.send_data(request, data)


def silent(peer: ScriptedPeer, request: wire.SegmentRequest) -> None:
    """Answer nothing: the request stalls until the loader gives up on it."""


def absent(peer: ScriptedPeer, request: wire.SegmentRequest) -> None:
    """Say "absent", whatever is held (a peer that announces what it does not have)."""
    peer.send_absent(request)


def lying(peer: ScriptedPeer, request: wire.SegmentRequest) -> None:
    """Wrong bytes of the right size: each byte held, flipped (``^ 0x5A``); "absent" when none."""
    data = peer.data_for(request)
    if data is None:
        peer.send_absent(request)
    else:
        peer.send_data(request, bytes(byte ^ 0x5A for byte in data))


def announcing_size(size: int) -> Script:
    """A script whose data header announces ``size`` bytes, then sends the bytes held and the
    sending-completed (more or fewer than announced, or a size the stream cannot have)."""

    def script(peer: ScriptedPeer, request: wire.SegmentRequest) -> None:
        peer.send_data(request, peer.data_for(request) or b"", size=size)

    return script


def stalling_after(count: int) -> Script:
    """A script that sends a right header and the first ``count`` bytes held, then nothing."""

    def script(peer: ScriptedPeer, request: wire.SegmentRequest) -> None:
        data = peer.data_for(request) or b""
        peer.send_header(request, len(data))
        peer.send_bytes(data[:count])

    return script


def garbled(peer: ScriptedPeer, request: wire.SegmentRequest) -> None:
    """Answer with a command chunk that does not decode (:data:`GARBLED_COMMAND`)."""
    peer.send_raw(GARBLED_COMMAND)


# ---------------------------------------------------------------------------------------- in memory


class ScriptedLink:
    """A scripted peer joined in memory to ``protocol``, the loader's side of the link.

    Nothing moves until :meth:`exchange`; the clock is the ``now`` a test passes in (seconds), so
    the flood guard and every other rule see exactly the times the test chooses.
    """

    def __init__(self, peer: ScriptedPeer, protocol: PeerProtocol) -> None:
        self.peer = peer
        self.protocol = protocol
        self.events: list[Event] = []
        """Every event the machine emitted during exchanges, oldest first."""

    def exchange(self, *, now: float) -> list[Event]:
        """Deliver the queued messages both ways, at ``now``, until neither side has any (a
        script's answer to a request goes back in the same call); returns the machine's new events,
        in order. The messages of a broken machine's peer are dropped by the machine, as over a
        real link before it closes."""
        start = len(self.events)
        while True:
            moved = False
            for message in self.peer.messages_to_send():
                moved = True
                self.protocol.receive_message(message, now=now)
            for message in self.protocol.messages_to_send():
                moved = True
                self.peer.receive_message(message, now=now)
            self._collect()
            if not moved:
                return self.events[start:]

    def upload(self, upload: Upload, *, now: float) -> list[Event]:
        """The loader's I/O part of ``upload`` (from :meth:`PeerProtocol.start_upload`): its header,
        every chunk buffered now, and the sending-completed once all announced bytes went; returns
        the machine's new events."""
        self.protocol.begin_upload(upload)
        events = self.exchange(now=now)
        while self.protocol.upload is upload and (chunk := upload.next_chunk()) is not None:
            self.peer.receive_message(chunk, now=now)
        if self.protocol.upload is upload and upload.finished:
            self.protocol.complete_upload(upload)
        return events + self.exchange(now=now)

    def _collect(self) -> None:
        while (event := self.protocol.next_event()) is not None:
            self.events.append(event)
