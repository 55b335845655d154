"""The testing kit's scripted peer (:class:`p2ploader.testing.rtcpeer.RtcScriptedPeer`) attached to
a loader in this process, for the hostile-peer suite.

The kit's peer speaks wire ids and signals through any relay. The loader's public
:attr:`~p2ploader.aio.loader.HybridLoader.swarm_endpoint` is that relay here (it answers offers as
the tracker client would), and it maps media sequence numbers to the swarm's wire ids. The
benchmark ``benchmarks/attack_matrix.py`` passes an object with a ``swarm_endpoint`` of the same
shape for a loader in another process.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from aiortc import RTCConfiguration, RTCPeerConnection

from p2ploader.core import wire
from p2ploader.errors import OfferRefusedError
from p2ploader.testing.peer import honest
from p2ploader.testing.rtcpeer import RtcScriptedPeer, Signal

__all__ = ["CHUNK", "Refused", "ScriptedPeer", "honest"]

Respond = Callable[["ScriptedPeer", wire.SegmentRequest], Awaitable[None] | None]

CHUNK = 16 * 1024
"""Bytes per raw data message in the scripts that send junk or trickle by hand."""

Refused = OfferRefusedError
"""The loader declined the offer (it bans this peer, or its swarm is full)."""


class SegmentsBySequence(Protocol):
    """Segment bytes by media sequence number: a dict, or a lazy stand-in for a live stream."""

    def get(self, sequence: int, default: None = None, /) -> bytes | None: ...


class Endpoint(Protocol):
    """What a scripted peer uses of a swarm: :class:`~p2ploader.aio.endpoint.SwarmEndpoint`'s
    shape (a loader's, or a stand-in relaying to a loader in another process)."""

    @property
    def rendition(self) -> str: ...

    def wire_id(self, sequence: int) -> int: ...

    def sequence_of(self, wire_id: int) -> int: ...

    async def answer_offer(self, peer_id: bytes, offer_id: bytes, sdp: str) -> str | None: ...


class ScriptedPeer(RtcScriptedPeer):
    """A scripted peer for ``loader``'s current swarm (its ``swarm_endpoint``), holding
    ``segments`` (by media sequence number, :attr:`by_sequence`) and answering requests with
    ``respond`` (default: the kit's ``honest``)."""

    def __init__(
        self,
        loader: Any,
        segments: SegmentsBySequence,
        respond: Respond | None = None,
        *,
        peer_id: bytes | None = None,
        keep: int | None = None,
        keep_data: bool = True,
    ) -> None:
        endpoint: Endpoint | None = loader.swarm_endpoint
        assert endpoint is not None, "the loader has not joined a swarm"
        self.endpoint = endpoint
        self.rendition: str = endpoint.rendition
        self.by_sequence = segments
        super().__init__(
            script=respond,
            peer_id=peer_id,
            keep=keep,
            keep_data=keep_data,
        )

    def wire_id(self, sequence: int) -> int:
        """The wire id of media sequence ``sequence`` in the loader's swarm."""
        return self.endpoint.wire_id(sequence)

    def sequence_of(self, wire_id: int) -> int:
        """The media sequence number of ``wire_id`` in the loader's swarm."""
        return self.endpoint.sequence_of(wire_id)

    def data_for(self, request: wire.SegmentRequest) -> bytes | None:
        """The bytes held for ``request`` (looked up by media sequence) from its byte offset."""
        try:
            data = self.by_sequence.get(self.sequence_of(request.segment_id))
        except ValueError:  # not a wire id of this swarm
            return None
        return None if data is None else data[request.byte_offset :]

    def announce_sequences(self, sequences: list[int]) -> None:
        """Announce ``sequences`` (media sequence numbers), held or not."""
        self.announce([self.wire_id(sequence) for sequence in sequences])

    async def connect(
        self,
        signal: Signal | None = None,
        *,
        within: float = 10.0,
        peer_connection: RTCPeerConnection | None = None,
        certificate_of: ScriptedPeer | None = None,
    ) -> None:
        """Connect to the loader (``signal``: its swarm endpoint's ``answer_offer`` unless given).
        ``certificate_of``: with that peer's DTLS certificate, the same identity (aiortc makes a
        fresh one per connection and has no public way to pass one)."""
        if certificate_of is not None:
            peer_connection = same_certificate(certificate_of)
        await super().connect(
            signal or self.endpoint.answer_offer, within=within, peer_connection=peer_connection
        )


def same_certificate(peer: RtcScriptedPeer) -> RTCPeerConnection:
    """A fresh peer connection with ``peer``'s DTLS certificate."""
    assert peer.pc is not None, "not connected"
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    pc._RTCPeerConnection__certificates = peer.pc._RTCPeerConnection__certificates  # type: ignore[attr-defined]
    return pc
