"""The simulator's tracker for host/client swarms (``Scenario.topology = "host-client"``).

It makes the embedded tracker's decisions with the same :class:`~p2ploader.core.topology.HostClientTree`
(one per rendition's swarm): a joining client is introduced to the least-loaded vacant host of its
swarm, a host leaving orphans its clients, which are introduced to another vacant host at once (the
tracker's re-attach notice) and meanwhile load over HTTP; a host that gains room takes waiting
clients. Hosts are never introduced to each other (depth 1), so they load from the origin. Clients
run with ``consume_only`` (they never upload), set by the caller.
"""

from __future__ import annotations

import random
from collections.abc import Callable

from p2ploader.core import events as ev
from p2ploader.core.topology import HostClientTree, PeerAttributes, Role, TopologyRules
from p2ploader.sim.loop import VirtualLoop
from p2ploader.sim.model import PeerNetwork
from p2ploader.sim.viewer import SimViewer

__all__ = ["CLIENT_ATTRIBUTES", "HOST_ATTRIBUTES", "TreeTracker"]

HOST_ATTRIBUTES = PeerAttributes(device="desktop", os="windows", client="p2ploader")
CLIENT_ATTRIBUTES = PeerAttributes(device="mobile", os="android", client="p2ploader")


class TreeTracker:
    """Introductions in host/client swarms. See the module docstring."""

    def __init__(
        self,
        *,
        rules: TopologyRules,
        max_clients: int,
        loop: VirtualLoop,
        network: PeerNetwork,
        rng: random.Random,
        connect_delay: Callable[[], float],
    ) -> None:
        self._rules = rules
        self._max_clients = max_clients
        self._loop = loop
        self._network = network
        self._rng = rng
        self._connect_delay = connect_delay
        self._trees: dict[str, HostClientTree] = {}  # swarm (rendition) -> its tree
        self._viewers: dict[str, SimViewer] = {}
        self.max_clients_seen = 0
        """The most clients any host was linked to at once (the limit is checked, not assumed)."""
        self.reattachments = 0

    def _tree(self, swarm: str) -> HostClientTree:
        tree = self._trees.get(swarm)
        if tree is None:
            tree = self._trees[swarm] = HostClientTree(self._rules)
        return tree

    def role(self, attributes: PeerAttributes) -> Role:
        return "host" if self._rules.can_host(attributes) else "client"

    def join(self, viewer: SimViewer, attributes: PeerAttributes) -> None:
        swarm = viewer.peers.swarm
        tree = self._tree(swarm)
        self._viewers[viewer.peer_id] = viewer
        viewer.driver.feed(ev.TrackerUpdated(incomplete=len(tree.hosts) + len(tree.clients) + 1))
        if tree.add(viewer.peer_id, attributes, max_clients=self._max_clients) == "host":
            for client_id in tree.waiting_for(viewer.peer_id):
                self._attach(tree, client_id)
        else:
            self._attach(tree, viewer.peer_id)

    def leave(self, viewer: SimViewer) -> None:
        tree = self._trees.get(viewer.peers.swarm)
        self._viewers.pop(viewer.peer_id, None)
        if tree is None or viewer.peer_id not in tree:
            return
        was_host = tree.role(viewer.peer_id) == "host"
        affected = tree.remove(viewer.peer_id)
        if was_host:
            for client_id in affected:
                self.reattachments += 1
                self._attach(tree, client_id)
        else:
            for host_id in affected:
                for client_id in tree.waiting_for(host_id):
                    self._attach(tree, client_id)

    def _attach(self, tree: HostClientTree, client_id: str) -> None:
        host_id = tree.attach(client_id)
        if host_id is None:
            return  # no vacant host: the client stays on HTTP until one has room
        self._loop.call_later(self._connect_delay(), self._connect, tree, client_id, host_id)

    def _connect(self, tree: HostClientTree, client_id: str, host_id: str) -> None:
        client, host = self._viewers.get(client_id), self._viewers.get(host_id)
        if client is None or host is None or tree.host_of(client_id) != host_id:
            return  # one of them left meanwhile; the tree has already re-attached the client
        self._network.connect(client.peers, host.peers)
        self.max_clients_seen = max(self.max_clients_seen, len(host.peers.neighbours))
