"""Peer reputation of every swarm we are in, sans-IO: the one place strikes and bans happen.

The scheduler owns a :class:`Reputation` and feeds it whatever proves a peer wrong: an integrity
failure (bytes that differ from the origin's: an immediate ban) and a protocol violation (a strike;
:data:`~p2ploader.core.bans.STRIKES_BEFORE_BAN` strikes within one ban period make a ban). Each
ban becomes a :class:`~p2ploader.core.notifications.PeerBanned`. The transports (the peer manager,
the simulator's modelled peers) only ask it whether a peer, or a link's certificate, is banned.

A swarm is one rendition's (``SegmentId.rendition``): a peer banned for lying about one rendition
can still serve another, as the swarms are separate. Each swarm's book is a
:class:`~p2ploader.core.bans.PeerBans` (bans fall on certificates; memory bounded), kept across
rendition switches.
"""

from __future__ import annotations

from p2ploader.core import notifications as nt
from p2ploader.core.bans import PeerBans

__all__ = ["Reputation"]


class Reputation:
    """Strikes and bans per swarm. ``ban_time``: seconds a ban lasts (``peer_ban_time``)."""

    def __init__(self, *, ban_time: float, max_entries: int = 1024) -> None:
        self.ban_time = ban_time
        self.max_entries = max_entries
        self._swarms: dict[str, PeerBans] = {}

    def swarm(self, swarm: str) -> PeerBans:
        """The book of ``swarm`` (created on first use)."""
        bans = self._swarms.get(swarm)
        if bans is None:
            bans = self._swarms[swarm] = PeerBans(duration=self.ban_time, max_entries=self.max_entries)
        return bans

    @property
    def swarms(self) -> dict[str, PeerBans]:
        """Every swarm's book so far (a copy)."""
        return dict(self._swarms)

    @property
    def bans(self) -> int:
        """Bans imposed so far, over all swarms."""
        return sum(bans.bans for bans in self._swarms.values())

    def bind(self, swarm: str, peer_id: str, certificate: str | None) -> None:
        """``peer_id``'s link in ``swarm`` uses ``certificate``: its strikes and bans fall on it."""
        self.swarm(swarm).bind(peer_id, certificate)

    def is_banned(self, swarm: str, peer_id: str, *, now: float, certificate: str | None = None) -> bool:
        """Whether ``peer_id`` (its link with ``certificate``, else its last bound one) is banned
        from ``swarm`` at ``now`` (seconds)."""
        bans = self._swarms.get(swarm)
        return bans is not None and bans.is_banned(peer_id, now=now, certificate=certificate)

    def lied(self, swarm: str, peer_id: str, *, now: float, reason: str) -> nt.PeerBanned | None:
        """``peer_id`` sent bytes that differ from the origin's: banned at once. The notification
        when this is a new ban."""
        bans = self.swarm(swarm)
        if bans.ban(peer_id, now=now, reason=reason):
            return nt.PeerBanned(peer_id=peer_id, reason=reason, seconds=bans.duration)
        return None

    def misbehaved(self, swarm: str, peer_id: str, *, now: float, reason: str) -> nt.PeerBanned | None:
        """``peer_id`` broke the protocol: one strike. The notification when that got it banned."""
        bans = self.swarm(swarm)
        if bans.strike(peer_id, now=now, reason=reason):
            return nt.PeerBanned(peer_id=peer_id, reason=reason, seconds=bans.duration)
        return None
