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

**Shared bans.** Reputations that :meth:`Reputation.share_with` each other form a family: the
books of a loader and of its audio and subtitles companions (one viewer, one player: a peer that
lied about the video is not trusted with the audio). A peer is banned in a swarm when its own book
bans it, or when any book of another member of the family bans the same identity: the link's
certificate, or the bare peer id of a link bound to none. Only the identity is compared, never
another book's binding of the peer id, so a peer id claimed by someone else in one swarm cannot
get its owner refused in another. Strikes stay in their swarm; a ban counts in the family.
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
        self._family: list[Reputation] = [self]  # one list object, shared by every member

    def share_with(self, other: Reputation) -> None:
        """Join ``other``'s family (see the module docstring): from now on a ban in any swarm of
        either family counts in every swarm of both."""
        if other in self._family:
            return
        family = [*self._family, *other._family]
        for member in family:
            member._family = family

    def leave_family(self) -> None:
        """Stop sharing bans (a companion closed): its bans no longer count for the others, nor
        theirs for it."""
        if len(self._family) == 1:
            return
        self._family.remove(self)  # the list the others keep
        self._family = [self]

    @property
    def family(self) -> tuple[Reputation, ...]:
        """The reputations sharing bans with this one, itself included."""
        return tuple(self._family)

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
        """Whether ``peer_id`` (its link with ``certificate``, else its last bound one in
        ``swarm``) is banned from ``swarm`` at ``now`` (seconds): by ``swarm``'s book, or by any
        book of the family's other members (see the module docstring)."""
        bans = self._swarms.get(swarm)
        if bans is not None:
            if certificate is None:
                certificate = bans.bound_certificate(peer_id)
            if bans.is_banned(peer_id, now=now, certificate=certificate):
                return True
        return any(
            book.is_identity_banned(peer_id, now=now, certificate=certificate)
            for member in self._family
            if member is not self
            for book in member._swarms.values()
        )

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
