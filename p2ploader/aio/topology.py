"""A loader's place in a host/client swarm (``LoaderConfig.topology="host-client"``).

:class:`TreeMembership` turns the config's declared attributes and rule set into the hooks the
peer manager and the tracker client take: which links to admit, whether to make offers, what to add
to announces, and what to do with the embedded tracker's answers. The decisions themselves are
:mod:`p2ploader.core.topology`'s, so the embedded tracker, the peers and the simulator agree.

How attributes travel (docs/topologies.md): in the peer id (characters 8-12, so every tracker and
every peer sees them without a protocol change) and, for the embedded tracker, also as an extra
``p2ploader`` object in the announce, which plain WebTorrent trackers ignore.
"""

from __future__ import annotations

import logging
import platform
from collections.abc import Callable, Collection, Mapping
from typing import Any

from p2ploader.config import LoaderConfig
from p2ploader.core.topology import (
    PeerAttributes,
    Role,
    TopologyRules,
    admit_link,
    decode_peer_id_attributes,
    rules_named,
)

__all__ = ["TreeMembership", "local_os"]

logger = logging.getLogger(__name__)


def local_os() -> str:
    """This machine's operating system in :data:`~p2ploader.core.peer_attributes.OPERATING_SYSTEMS` terms."""
    return {"Linux": "linux", "Windows": "windows", "Darwin": "macos"}.get(platform.system(), "other")


class TreeMembership:
    """Role and link admission of one loader in a host/client swarm."""

    def __init__(self, config: LoaderConfig) -> None:
        # An unknown name raises ConfigError (key "topology_rules").
        self.rules: TopologyRules = rules_named(config.topology_rules)
        self.attributes = PeerAttributes(
            device=config.peer_device, os=config.peer_os or local_os(), client=config.peer_client
        )
        self.max_clients = config.max_client_peers_per_host_peer
        self.role: Role = "host" if self.rules.can_host(self.attributes) else "client"
        """Decided locally with the same rules the embedded tracker applies (so no role change can
        arrive later); :attr:`tracker_role` records what the embedded tracker said."""
        self.tracker_role: str | None = None
        self.tracker_host: str | None = None
        """Hex peer id of the host the embedded tracker introduced us to (clients)."""
        self.reattach_requests = 0

    @staticmethod
    def _attributes_of(peer_id_hex: str) -> PeerAttributes | None:
        return decode_peer_id_attributes(bytes.fromhex(peer_id_hex))

    def admit(self, peer_id: str, linked: Collection[str]) -> bool:
        """The peer-side rule (:func:`~p2ploader.core.topology.admit_link`): what makes the tree
        hold with a plain tracker, and a safety net with the embedded one."""
        return admit_link(
            self.attributes,
            self._attributes_of(peer_id),
            [self._attributes_of(p) for p in linked],
            rules=self.rules,
            max_clients=self.max_clients,
        )

    def wants_offers(self, linked: Collection[str]) -> bool:
        """Clients look for a host while they have none; hosts wait to be found (OME: the client
        asks for the stream, the host answers)."""
        if self.role == "host":
            return False
        return not any((a := self._attributes_of(p)) is not None and self.rules.can_host(a) for p in linked)

    def announce_extra(self, linked: Collection[str]) -> dict[str, Any]:
        """The ``p2ploader`` object for the embedded tracker."""
        host = next(
            (p for p in linked if (a := self._attributes_of(p)) is not None and self.rules.can_host(a)),
            None,
        )
        return {
            "p2ploader": {
                "topology": "host-client",
                "rules": self.rules.name,
                "max_clients": self.max_clients,
                **self.attributes.to_json(),
                "host": bytes.fromhex(host).decode("latin-1") if host is not None else None,
            }
        }

    def on_tracker(self, extra: Mapping[str, Any], reattach: Callable[[], None]) -> None:
        """The embedded tracker's ``p2ploader`` object: our role, our host, and ``reattach`` (our
        host left, or a host has room for us now): announce at once with a fresh offer."""
        role = extra.get("role")
        if isinstance(role, str):
            if role != self.role:
                logger.warning("the tracker classifies us %s, our rules say %s", role, self.role)
            self.tracker_role = role
        host = extra.get("host")
        if isinstance(host, str) and len(host) == 20:
            self.tracker_host = host.encode("latin-1").hex()
        elif "host" in extra:
            self.tracker_host = None
        if extra.get("reattach") is True and self.role == "client":
            self.reattach_requests += 1
            reattach()
