"""A loader's current swarm as a signalling channel sees it: the public way in besides a tracker.

A WebTorrent tracker relays offers to the loader's peer manager; the tracker client hands them on
(:meth:`~p2ploader.aio.peers.PeerManager.on_offer`). :class:`SwarmEndpoint` is that same door for
whatever else carries offers: an application's own signalling, or a test's scripted peer
(:class:`p2ploader.testing.rtcpeer.RtcScriptedPeer`, whose ``connect`` takes
:meth:`SwarmEndpoint.answer_offer` as its signal). An offer taken here meets exactly what a
tracker's does: bans, admission, the slot budget. It also names segments as the swarm's peers do
on the wire (P2P Media Loader 2.x's ``externalId``, :func:`p2ploader.core.swarm.segment_wire_id`),
which a peer speaking the protocol by hand needs.
"""

from __future__ import annotations

import attrs

from p2ploader.aio.peers import PeerManager
from p2ploader.core import swarm
from p2ploader.core.segments import SegmentId

__all__ = ["SwarmEndpoint"]


@attrs.frozen(kw_only=True)
class SwarmEndpoint:
    """One swarm of a loader (:attr:`p2ploader.aio.loader.HybridLoader.swarm_endpoint`)."""

    rendition: str
    """The rendition whose swarm this is (``"v1"``, ``"a:aud:English"``)."""
    info_hash: bytes
    """The swarm's 20-byte tracker info hash (as P2P Media Loader 2.3.1 computes it)."""
    live: bool
    """Whether segments are named by media sequence number on the wire (a live playlist when the
    swarm was joined) rather than by position in the playlist."""
    first_sequence: int
    """The playlist's EXT-X-MEDIA-SEQUENCE when the swarm was joined (positions count from it)."""
    _manager: PeerManager = attrs.field(alias="manager", repr=False)

    def wire_id(self, sequence: int) -> int:
        """The wire id of the segment with media sequence ``sequence`` in this swarm."""
        return swarm.segment_wire_id(
            SegmentId(self.rendition, sequence), live=self.live, first_sequence=self.first_sequence
        )

    def sequence_of(self, wire_id: int) -> int:
        """The media sequence number of ``wire_id`` (``ValueError`` for a negative one)."""
        segment = swarm.segment_id_from_wire(
            self.rendition, wire_id, live=self.live, first_sequence=self.first_sequence
        )
        return segment.sequence

    async def answer_offer(self, peer_id: bytes, offer_id: bytes, sdp: str) -> str | None:
        """Answer a remote peer's WebRTC offer (``peer_id`` its 20 raw bytes, ``offer_id`` any 20
        bytes, ``sdp`` a complete, non-trickle offer) as if a tracker had relayed it: the answer's
        SDP, or ``None`` when the loader declines (a ban, a full swarm, the peer's own id)."""
        return await self._manager.on_offer(peer_id, offer_id, sdp)

    @property
    def linked(self) -> tuple[str, ...]:
        """Peer ids (hex) with a link in this swarm, open or still connecting."""
        return self._manager.linked

    @property
    def room(self) -> int:
        """Links the swarm would still take now (a newcomer's chance of a slot)."""
        return self._manager.room
