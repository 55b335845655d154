"""The driver's peer transport across renditions: the current swarm and lingering ones.

One swarm per rendition (peers of different renditions never share segments). After a rendition
switch the loader keeps seeding the old rendition's swarm for ``LoaderConfig.rendition_linger``
seconds, as P2P Media Loader 2.x keeps its inactive loader 30 s, so viewers who stay on the old
rendition do not lose a source at the moment we leave. All swarms feed one scheduler (one cache),
so :class:`SwarmSet` sits between them:

* **Actions** about a segment go to the swarm of that segment's rendition (a peer we know in two
  swarms gets each request on the right link); announcements go to every swarm, each of which
  announces only its own rendition's segments; disconnects go to every swarm holding the peer.
* **Events** from a lingering swarm are the ones seeding needs: connections, requests, cancels and
  upload ends. Its peers' announcements are dropped (we no longer download that rendition), and a
  remote peer linked in two swarms is one peer for the scheduler: connected with its first link,
  disconnected with its last.
"""

from __future__ import annotations

from collections.abc import Callable

from p2ploader.aio.peers import PeerManager
from p2ploader.core import actions as act
from p2ploader.core import events as ev

__all__ = ["SwarmSet"]


class SwarmSet:
    """Routes peer actions to the swarm (peer manager) of their rendition. See the module doc."""

    def __init__(self, feed: Callable[[ev.Event], None]) -> None:
        self._feed = feed
        self._swarms: dict[str, PeerManager] = {}  # rendition -> its swarm
        self.current: str | None = None
        self._open: dict[str, set[str]] = {}  # remote peer id -> renditions with an open link

    def feed_for(self, rendition: str) -> Callable[[ev.Event], None]:
        """The event sink to give the peer manager of ``rendition``'s swarm."""

        def feed(event: ev.Event) -> None:
            if isinstance(event, ev.PeerConnected):
                linked_in = self._open.setdefault(event.peer_id, set())
                first = not linked_in
                linked_in.add(rendition)
                if first:
                    self._feed(event)
            elif isinstance(event, ev.PeerDisconnected):
                known = self._open.get(event.peer_id)
                if known is None:
                    return
                known.discard(rendition)
                if not known:
                    del self._open[event.peer_id]
                    self._feed(event)
            elif isinstance(event, ev.PeerAnnounced) and rendition != self.current:
                return  # a lingering swarm only seeds
            else:
                self._feed(event)

        return feed

    def add(self, peers: PeerManager) -> None:
        """``peers`` becomes the current swarm."""
        self._swarms[peers.rendition] = peers
        self.current = peers.rendition

    def remove(self, rendition: str) -> PeerManager | None:
        if self.current == rendition:
            self.current = None
        return self._swarms.pop(rendition, None)

    def retire(self, rendition: str) -> None:
        """``rendition``'s swarm keeps seeding but is no longer the current one."""
        if self.current == rendition:
            self.current = None

    @property
    def renditions(self) -> tuple[str, ...]:
        return tuple(self._swarms)

    def get(self, rendition: str) -> PeerManager | None:
        return self._swarms.get(rendition)

    def perform(self, action: act.Action) -> None:
        match action:
            case act.AnnounceSegments():
                for peers in list(self._swarms.values()):
                    peers.perform(action)
            case act.DisconnectPeer():
                for peers in list(self._swarms.values()):
                    if action.peer_id in peers.linked:
                        peers.perform(action)
            case (
                act.RequestFromPeer()
                | act.CancelPeerDownload()
                | act.SendSegmentToPeer()
                | act.SendSegmentAbsent()
            ):
                target = self._swarms.get(action.segment_id.rendition)
                if target is None and self.current is not None:
                    target = self._swarms.get(self.current)  # reports "peer gone" for a request
                if target is not None:
                    target.perform(action)
            case _:
                current = self._swarms.get(self.current) if self.current is not None else None
                if current is not None:
                    current.perform(action)
