"""A scripted peer for the hostile-peer suite: a raw aiortc data channel that speaks P2P Media
Loader 2.x's wire protocol exactly as a test script says, honest or not.

It connects straight to a loader's real :class:`~p2ploader.aio.peers.PeerManager` (the signalling a
tracker would relay: our offer, its answer) over real WebRTC on 127.0.0.1, announces segments, and
answers every request with ``respond(peer, request)``, which may lie, stall, flood or disconnect.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable

from aiortc import RTCDataChannel, RTCPeerConnection

from p2ploader.aio.loader import HybridLoader
from p2ploader.aio.peers import PeerManager
from p2ploader.aio.webrtc import rtc_configuration, set_remote
from p2ploader.core import wire
from p2ploader.core.segments import SegmentId

Respond = Callable[["ScriptedPeer", wire.SegmentRequest], Awaitable[None]]

CHUNK = 16 * 1024


class Refused(Exception):
    """The loader would not connect to this peer (it is banned, or the swarm is full)."""


class ScriptedPeer:
    def __init__(
        self, loader: HybridLoader, segments: dict[int, bytes], respond: Respond | None = None
    ) -> None:
        manager = loader._peers
        assert manager is not None, "the loader has not joined a swarm"
        self.manager: PeerManager = manager
        self.rendition = manager.rendition
        self.segments = segments  # media sequence -> bytes this peer holds (or claims to)
        self.respond = respond or honest
        self.peer_id = os.urandom(20)
        self.requests: list[wire.SegmentRequest] = []
        self.received: list[wire.Command | wire.DataChunk] = []
        self.pc: RTCPeerConnection | None = None
        self.channel: RTCDataChannel | None = None
        self.closed = asyncio.Event()
        self._decoder = wire.WireDecoder()
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def hex_id(self) -> str:
        return self.peer_id.hex()

    def wire_id(self, sequence: int) -> int:
        return self.manager._wire_id(SegmentId(self.rendition, sequence))

    def sequence_of(self, wire_id: int) -> int:
        return self.manager._segment_id(wire_id).sequence

    async def connect(self, within: float = 10.0, *, certificate_of: ScriptedPeer | None = None) -> None:
        """Offer to the loader and wait for the channel to open. ``certificate_of``: connect with that
        peer's DTLS certificate (the same identity), not a fresh one (aiortc makes one per
        connection)."""
        pc = RTCPeerConnection(rtc_configuration({"iceServers": []}))
        if certificate_of is not None:
            assert certificate_of.pc is not None
            pc._RTCPeerConnection__certificates = certificate_of.pc._RTCPeerConnection__certificates  # type: ignore[attr-defined]
        self.pc = pc
        try:
            channel = pc.createDataChannel("scripted")
            self.channel = channel
            opened = asyncio.Event()
            channel.on("open", opened.set)
            channel.on("message", self._on_message)
            channel.on("close", self.closed.set)

            @pc.on("connectionstatechange")
            def _state() -> None:
                if pc.connectionState in ("failed", "closed"):
                    self.closed.set()

            await pc.setLocalDescription(await pc.createOffer())
            answer = await asyncio.wait_for(
                self.manager.on_offer(self.peer_id, os.urandom(20), pc.localDescription.sdp), within
            )
            if answer is None:
                raise Refused(self.hex_id)
            await set_remote(pc, answer, "answer")
            await asyncio.wait_for(opened.wait(), within)
        except BaseException:
            # Refused, timed out or cancelled: nothing of this attempt stays open.
            await pc.close()
            self.closed.set()
            raise

    def send(self, command: wire.Command) -> None:
        for message in wire.encode_command(command):
            self.send_raw(message)

    def send_raw(self, message: bytes) -> None:
        if self.channel is not None and self.channel.readyState == "open":
            self.channel.send(message)

    def announce(self, sequences: list[int] | None = None) -> None:
        seqs = sorted(self.segments) if sequences is None else sequences
        self.send(wire.SegmentsAnnouncement(loaded=tuple(self.wire_id(s) for s in seqs)))

    async def send_data(self, request: wire.SegmentRequest, data: bytes, *, size: int | None = None) -> None:
        """A data header announcing ``size`` (default ``len(data)``), the chunks, the completion."""
        self.send(
            wire.SegmentData(
                segment_id=request.segment_id, request_id=request.request_id, size=size or len(data)
            )
        )
        for offset in range(0, len(data), CHUNK):
            self.send_raw(data[offset : offset + CHUNK])
            await asyncio.sleep(0)
        self.send(
            wire.SegmentDataSendingCompleted(segment_id=request.segment_id, request_id=request.request_id)
        )

    def data_for(self, request: wire.SegmentRequest) -> bytes | None:
        data = self.segments.get(self.sequence_of(request.segment_id))
        return None if data is None else data[request.byte_offset :]

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        if self.pc is not None:
            await self.pc.close()
        self.closed.set()

    def _on_message(self, message: bytes | str) -> None:
        if isinstance(message, str):
            message = message.encode()
        for item in self._decoder.receive(message):
            self.received.append(item)
            if isinstance(item, wire.SegmentRequest):
                self.requests.append(item)
                task = asyncio.get_running_loop().create_task(self.respond(self, item))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)


async def honest(peer: ScriptedPeer, request: wire.SegmentRequest) -> None:
    data = peer.data_for(request)
    if data is None:
        peer.send(wire.SegmentAbsent(segment_id=request.segment_id, request_id=request.request_id))
        return
    await peer.send_data(request, data)
