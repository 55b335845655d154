"""Peer roles for the host/client topology: attributes, classification rules, the one-level tree.

Pure data and decisions, no I/O: the embedded tracker (:mod:`p2ploader.tracker.server`), the
asyncio peer manager and the simulator all decide with the code below, so the three cannot
disagree about who may serve whom.

* :class:`PeerAttributes` is what a peer declares about itself (device class, operating system,
  client kind). The embedding application declares them (``LoaderConfig.peer_device`` ...); nothing
  is sniffed, because OvenMediaEngine's User-Agent sniffing is both spoofable and wrong in places
  (see ``docs/topologies.md``).
* A :class:`TopologyRules` rule set decides who can be a *host* and which host a *client* may attach
  to. :data:`OME_RULES` are OvenMediaEngine's documented rules; :data:`HEADLESS_LINUX_RULES` let
  desktop Linux viewers host (servers, CI, set-top boxes). More can be registered.
* :class:`HostClientTree` is the tracker-side bookkeeping: hosts with at most ``max_clients``
  clients each, clients attached to at most one host, depth 1.
* :func:`admit_link` is the peer-side rule used with a plain WebTorrent tracker, where nobody sees
  the whole swarm: a host takes at most ``max_clients`` compatible clients, a client takes one host.
* :func:`encode_peer_id_attributes` / :func:`decode_peer_id_attributes` carry the attributes inside
  the 20-byte peer id, which every tracker relays untouched, so no wire-protocol change is needed.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any, Final, Literal, Protocol

import attrs

from p2ploader.core.peer_attributes import CLIENT_KINDS, DEVICES, OPERATING_SYSTEMS
from p2ploader.errors import ConfigError

if TYPE_CHECKING:
    from p2ploader.config import LoaderConfig

__all__ = [
    "HEADLESS_LINUX_RULES",
    "OME_RULES",
    "HostClientTree",
    "PeerAttributes",
    "Role",
    "TopologyRules",
    "admit_link",
    "client_config",
    "decode_peer_id_attributes",
    "encode_peer_id_attributes",
    "host_config",
    "parse_user_agent",
    "register_rules",
    "rule_set_names",
    "rules_named",
]

Role = Literal["host", "client"]

_MOBILE_OSES: Final = frozenset({"android", "ios"})
_UNUSABLE_CLIENTS: Final = frozenset({"edge", "other", "unknown"})


def _one_of(choices: Mapping[str, str]) -> Any:
    return attrs.validators.in_(tuple(choices))


@attrs.frozen
class PeerAttributes:
    """What a peer declares about itself. Unknown values are spelled ``"unknown"``."""

    device: str = attrs.field(default="unknown", validator=_one_of(DEVICES))
    os: str = attrs.field(default="unknown", validator=_one_of(OPERATING_SYSTEMS))
    client: str = attrs.field(default="unknown", validator=_one_of(CLIENT_KINDS))

    @property
    def mobile(self) -> bool:
        return self.device == "mobile" or self.os in _MOBILE_OSES

    def to_json(self) -> dict[str, str]:
        return {"device": self.device, "os": self.os, "client": self.client}

    @classmethod
    def from_json(cls, value: object) -> PeerAttributes | None:
        """Attributes from an announce's JSON object, or ``None`` if absent or malformed."""
        if not isinstance(value, Mapping):
            return None
        try:
            return cls(
                device=str(value.get("device", "unknown")),
                os=str(value.get("os", "unknown")),
                client=str(value.get("client", "unknown")),
            )
        except ValueError:
            return None


UNKNOWN: Final = PeerAttributes()


class TopologyRules(Protocol):
    """A classification rule set (pluggable: see :func:`register_rules`)."""

    @property
    def name(self) -> str: ...

    def can_host(self, peer: PeerAttributes) -> bool:
        """Whether ``peer`` may upload to clients."""
        ...

    def compatible(self, host: PeerAttributes, client: PeerAttributes) -> bool:
        """Whether ``client`` may attach to ``host``."""
        ...


@attrs.frozen
class OmeRules:
    """OvenMediaEngine's documented rules (``docs/p2p-delivery.md``): a host is not mobile, its OS
    is not Linux, its client is not MS Edge and not unknown; a client attaches to a host of the same
    client kind. Unlike OME's code, Edge really is excluded (OME tests ``Chrome`` first, so every
    Edge becomes a Chrome host) and a device declared mobile is mobile whatever its OS."""

    name: str = "ome"

    def can_host(self, peer: PeerAttributes) -> bool:
        return (
            not peer.mobile
            and peer.device != "unknown"
            and peer.os != "linux"
            and peer.client not in _UNUSABLE_CLIENTS
        )

    def compatible(self, host: PeerAttributes, client: PeerAttributes) -> bool:
        return host.client == client.client and host.client not in _UNUSABLE_CLIENTS


@attrs.frozen
class HeadlessLinuxRules:
    """For headless and server viewers: as :class:`OmeRules`, but a desktop Linux peer may host
    (OME excludes Linux because in 2020 Linux meant Android tablets and weak desktops; a Python
    loader on a Linux server is usually the best uploader in the swarm)."""

    name: str = "headless-linux"

    def can_host(self, peer: PeerAttributes) -> bool:
        return not peer.mobile and peer.device == "desktop" and peer.client not in _UNUSABLE_CLIENTS

    def compatible(self, host: PeerAttributes, client: PeerAttributes) -> bool:
        return host.client == client.client and host.client not in _UNUSABLE_CLIENTS


OME_RULES: Final[TopologyRules] = OmeRules()
HEADLESS_LINUX_RULES: Final[TopologyRules] = HeadlessLinuxRules()

_REGISTRY: dict[str, TopologyRules] = {
    OME_RULES.name: OME_RULES,
    HEADLESS_LINUX_RULES.name: HEADLESS_LINUX_RULES,
}


def register_rules(rules: TopologyRules) -> None:
    """Make ``rules`` available by its name (``LoaderConfig.topology_rules``, the tracker)."""
    _REGISTRY[rules.name] = rules


def rules_named(name: str) -> TopologyRules:
    """The rule set registered as ``name``; an unknown name is a :class:`ConfigError` naming the
    ``topology_rules`` setting and listing the known ones."""
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ConfigError(
            f"no topology rule set {name!r} (known: {', '.join(sorted(_REGISTRY))})", key="topology_rules"
        ) from None


def rule_set_names() -> tuple[str, ...]:
    return tuple(sorted(_REGISTRY))


def host_config(config: LoaderConfig) -> LoaderConfig:
    """The scheduler settings of a host: it has no peer to load from (hosts never link to each
    other), so, like an OvenMediaEngine host served by the edge, it loads its whole queue over HTTP
    at once instead of waiting for segments to become required; its clients then find each new
    segment at their host well before they need it."""
    return config.evolve(
        required_segments_priority=max(config.required_segments_priority, config.forward_segment_count),
        http_download_probability=1.0,
    )


def client_config(config: LoaderConfig) -> LoaderConfig:
    """The scheduler settings of a client: it never serves anyone (depth 1), so it announces no
    map and answers every request "absent" (``consume_only``, which also stops random HTTP: what it
    does not get from its host in time it loads when required)."""
    return config.evolve(consume_only=True)


# --------------------------------------------------------------------------------------------------
# Attributes in the peer id
# --------------------------------------------------------------------------------------------------

_MARKER: Final = "tz"  # two characters, so a random mesh id decodes by accident once in ~10^7
_OFFSET: Final = 8  # after the 8-character client prefix ("-PY0001-", "-PM0100-"...)


def encode_peer_id_attributes(peer_id: bytes, peer: PeerAttributes) -> bytes:
    """``peer_id`` with characters 8-12 replaced by the marker and one code per attribute.

    The id stays 20 printable characters of P2P Media Loader's alphabet, so browsers and trackers
    treat it as any other id; only our peers read the codes."""
    if len(peer_id) != 20:
        raise ValueError("peer ids are 20 bytes")
    codes = _MARKER + DEVICES[peer.device] + OPERATING_SYSTEMS[peer.os] + CLIENT_KINDS[peer.client]
    return peer_id[:_OFFSET] + codes.encode("ascii") + peer_id[_OFFSET + len(codes) :]


def _decode_code(table: Mapping[str, str], code: str) -> str | None:
    return next((name for name, c in table.items() if c == code), None)


def decode_peer_id_attributes(peer_id: bytes) -> PeerAttributes | None:
    """The attributes a peer id carries, or ``None`` (a browser or mesh peer: nothing declared)."""
    if len(peer_id) != 20:
        return None
    text = peer_id.decode("latin-1")
    codes = text[_OFFSET : _OFFSET + len(_MARKER) + 3]
    if not codes.startswith(_MARKER):
        return None
    device = _decode_code(DEVICES, codes[2])
    os = _decode_code(OPERATING_SYSTEMS, codes[3])
    client = _decode_code(CLIENT_KINDS, codes[4])
    if device is None or os is None or client is None:
        return None
    return PeerAttributes(device=device, os=os, client=client)


# --------------------------------------------------------------------------------------------------
# Peer-side decision (plain WebTorrent tracker)
# --------------------------------------------------------------------------------------------------


def admit_link(
    local: PeerAttributes,
    remote: PeerAttributes | None,
    linked: Iterable[PeerAttributes | None],
    *,
    rules: TopologyRules,
    max_clients: int,
) -> bool:
    """Whether a peer with ``local`` attributes accepts a new link to ``remote``, given the peers
    it is already linked to (connected or connecting).

    A host links only to compatible clients, at most ``max_clients``; a client links only to one
    compatible host; peers that declared nothing (browsers) are never admitted to the tree. Hosts
    never link to each other: depth 1, every host is served by the origin."""
    if remote is None:
        return False
    current = list(linked)
    if rules.can_host(local):
        return (
            not rules.can_host(remote)
            and rules.compatible(local, remote)
            and sum(1 for p in current if p is not None and not rules.can_host(p)) < max_clients
        )
    return (
        rules.can_host(remote)
        and rules.compatible(remote, local)
        and not any(p is not None and rules.can_host(p) for p in current)
    )


# --------------------------------------------------------------------------------------------------
# Tracker-side decision
# --------------------------------------------------------------------------------------------------


@attrs.define
class _Host:
    attributes: PeerAttributes
    max_clients: int
    clients: list[str] = attrs.Factory(list)

    @property
    def vacant(self) -> bool:
        return len(self.clients) < self.max_clients


class HostClientTree:
    """One swarm's hosts and clients, as OvenMediaEngine's ``RtcP2PManager`` keeps them, minus its
    bugs: a host that was full becomes vacant again when a client leaves, and ``max_clients`` is a
    real limit (OME admits one client even at 0). Hosts are chosen least-loaded first (ties: the
    longest-registered), not in random-id order, so clients spread evenly."""

    def __init__(self, rules: TopologyRules) -> None:
        self.rules = rules
        self._hosts: dict[str, _Host] = {}
        self._clients: dict[str, tuple[PeerAttributes, str | None]] = {}  # id -> (attributes, host)

    def __contains__(self, peer_id: object) -> bool:
        return peer_id in self._hosts or peer_id in self._clients

    def role(self, peer_id: str) -> Role | None:
        if peer_id in self._hosts:
            return "host"
        return "client" if peer_id in self._clients else None

    def add(self, peer_id: str, attributes: PeerAttributes, *, max_clients: int = 2) -> Role:
        """Register a peer (again: no change) and return its role."""
        role = self.role(peer_id)
        if role is not None:
            return role
        if self.rules.can_host(attributes):
            self._hosts[peer_id] = _Host(attributes=attributes, max_clients=max(0, max_clients))
            return "host"
        self._clients[peer_id] = (attributes, None)
        return "client"

    def host_of(self, client_id: str) -> str | None:
        entry = self._clients.get(client_id)
        return entry[1] if entry is not None else None

    def clients_of(self, host_id: str) -> tuple[str, ...]:
        host = self._hosts.get(host_id)
        return tuple(host.clients) if host is not None else ()

    @property
    def hosts(self) -> tuple[str, ...]:
        return tuple(self._hosts)

    @property
    def clients(self) -> tuple[str, ...]:
        return tuple(self._clients)

    def attach(self, client_id: str) -> str | None:
        """Attach an unattached client to a vacant compatible host; the host's id, or ``None``."""
        entry = self._clients.get(client_id)
        if entry is None:
            return None
        attributes, current = entry
        if current is not None:
            return current
        candidates = [
            (len(host.clients), order, host_id)
            for order, (host_id, host) in enumerate(self._hosts.items())
            if host.vacant and self.rules.compatible(host.attributes, attributes)
        ]
        if not candidates:
            return None
        _, _, chosen = min(candidates)
        self._hosts[chosen].clients.append(client_id)
        self._clients[client_id] = (attributes, chosen)
        return chosen

    def detach(self, client_id: str) -> str | None:
        """Detach a client from its host (it reports no link); the host it had, if any."""
        entry = self._clients.get(client_id)
        if entry is None or entry[1] is None:
            return None
        host_id = entry[1]
        self._clients[client_id] = (entry[0], None)
        host = self._hosts.get(host_id)
        if host is not None and client_id in host.clients:
            host.clients.remove(client_id)
        return host_id

    def remove(self, peer_id: str) -> tuple[str, ...]:
        """Forget a peer. For a host: its clients, now unattached (they must go back to HTTP and
        find another host). For a client: its host, if it now has a vacancy, else nothing."""
        host = self._hosts.pop(peer_id, None)
        if host is not None:
            for client_id in host.clients:
                attributes, _ = self._clients[client_id]
                self._clients[client_id] = (attributes, None)
            return tuple(host.clients)
        host_id = self.detach(peer_id)
        self._clients.pop(peer_id, None)
        return (host_id,) if host_id is not None and host_id in self._hosts else ()

    def waiting_for(self, host_id: str, *, exclude: str | None = None) -> tuple[str, ...]:
        """Unattached clients compatible with ``host_id`` (but ``exclude``), as many as it has
        vacancies."""
        host = self._hosts.get(host_id)
        if host is None:
            return ()
        room = host.max_clients - len(host.clients)
        waiting = [
            cid
            for cid, (attributes, attached) in self._clients.items()
            if attached is None and cid != exclude and self.rules.compatible(host.attributes, attributes)
        ]
        return tuple(waiting[: max(0, room)])


# --------------------------------------------------------------------------------------------------
# User-Agent parsing, for applications that only have a UA string
# --------------------------------------------------------------------------------------------------


def parse_user_agent(user_agent: str, *, like_ome_code: bool = False) -> PeerAttributes:
    """Attributes from a browser User-Agent, by plain substring tests as OvenMediaEngine does.

    By default Edge (``Edg/``, ``Edge/``) is recognised before Chrome, as OME's documentation
    intends. ``like_ome_code=True`` reproduces ``RtcPeerInfo::ParseBrowserInfo`` exactly, where
    ``Chrome`` is tested first and so every Edge is classified Chrome (and may host)."""
    ua = user_agent
    if "Mobile" in ua:
        os = "android" if "Android" in ua else "ios" if "iPhone" in ua else "other"
        device = "mobile" if os in _MOBILE_OSES else "desktop"
    else:
        device = "desktop"
        os = (
            "windows"
            if "Windows" in ua
            else "macos"
            if "Macintosh" in ua
            else "linux"
            if "Linux" in ua
            else "other"
        )
    client = "other"
    if not like_ome_code and ("Edg/" in ua or "Edge/" in ua):
        client = "edge"
    elif "Chrome" in ua:
        client = "chrome"
    elif "Safari" in ua:
        client = "safari"
    elif "Firefox" in ua and "SeaMonkey" not in ua:
        client = "firefox"
    elif "Edge" in ua:
        client = "edge"
    return PeerAttributes(device=device, os=os, client=client)
