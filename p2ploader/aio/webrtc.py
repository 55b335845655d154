"""WebRTC plumbing with aiortc: peer connections, non-trickle SDP, and one data-channel link per peer.

Theory of operation (pitfalls from the aiortc notes this module works around):

* **Non-trickle SDP.** aiortc gathers every candidate inside ``setLocalDescription``; the SDP handed
  to the tracker is complete. WebTorrent peers (simple-peer with ``trickle: false``) do the same.
* **End of candidates.** Browser SDPs often lack ``a=end-of-candidates``; without it ICE never
  fails. After every ``setRemoteDescription`` we call ``addIceCandidate(None)``, and a connect
  timeout closes connections that never open.
* **Backpressure.** ``RTCDataChannel.send`` never blocks and queues without bound, so uploads wait
  on ``bufferedamountlow`` whenever ``bufferedAmount`` passes a threshold (per link: small when the
  upload rate is steered by delay, so that a cut takes effect before a megabyte already queued
  leaves at SCTP's own pace).
* **Round trips.** aiortc keeps SCTP's smoothed round trip in the private ``_srtt``;
  :attr:`PeerLink.round_trip_time` reads it with a fallback (``None``: no delay-based upload control).
* **Teardown.** ``pc.close()`` aborts SCTP and loses queued data; :meth:`PeerLink.close` closes the
  channel first, waits (bounded) for its ``close`` event, then closes the connection.
* **Receive side.** Message handlers are plain functions (an ``async`` handler would pile up one
  task per message); flow control is the protocol's one-request-per-peer rule.
* **Loopback.** aioice never offers 127.0.0.1. :func:`restrict_ice_to_loopback` makes it offer only
  127.0.0.1, process-wide, for tests and the local demo, so no packet leaves the loopback interface.
* **Browsers on the same host** (docs/browsers.md). Chromium offers 127.0.0.1 only with
  ``--allow-loopback-in-peer-connection`` *and* camera/microphone permission for the page; without
  the permission its host candidates are ``<uuid>.local`` mDNS names of its other addresses, which
  a loopback-only peer cannot reach; nor can it reach the plain non-loopback addresses a page
  without the permission offers with mDNS hiding off (both measured: no connection). In loopback
  mode :func:`set_remote` therefore keeps only candidates on 127.0.0.0/8 (aioice would otherwise
  spend up to 1 s per ``.local`` name on a multicast lookup inside ``setRemoteDescription``) and
  logs a warning naming the cause when the SDP has no UDP candidate on 127.0.0.0/8.
* **Remote candidates are screened** (:func:`screen_remote_candidates`) before aiortc sees them:
  every candidate it keeps costs connectivity checks sent to an address and port the remote chose,
  so at most :data:`MAX_REMOTE_CANDIDATES` per SDP are kept, and none on unusable or privileged
  addresses and ports.
* **ICE servers.** aiortc takes fewer ICE server URIs than browsers and raises on some;
  :func:`rtc_configuration` converts or leaves them out (see its docstring).
  Chromium's complete SDPs carry no ``a=end-of-candidates`` (checked with Chromium 156), so the
  end-of-candidates call below is needed with browsers.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import re
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import aioice.ice
import attrs
from aiortc import RTCConfiguration, RTCDataChannel, RTCIceServer, RTCPeerConnection, RTCSessionDescription

__all__ = [
    "BUFFERED_AMOUNT_LOW_THRESHOLD",
    "MAX_REMOTE_CANDIDATES",
    "MIN_REMOTE_PORT",
    "PeerLink",
    "ScreenedSdp",
    "create_connection",
    "restrict_ice_to_loopback",
    "rtc_configuration",
    "screen_remote_candidates",
    "usable_ice_uri",
]

logger = logging.getLogger(__name__)

BUFFERED_AMOUNT_LOW_THRESHOLD = 1 << 20
"""Bytes. Uploads pause while more than this is queued in the data channel."""

_CLOSE_WAIT = 2.0  # seconds to let a closing channel flush before the connection is closed

_loopback_depth = 0  # > 0 inside restrict_ice_to_loopback() (nested blocks count)
_loopback_original: Callable[[bool, bool], list[str]] | None = None  # aioice's, while replaced
_IPV4_LOOPBACK = ipaddress.ip_network("127.0.0.0/8")
_IPV4_BROADCAST = ipaddress.IPv4Address("255.255.255.255")


def rtc_configuration(rtc_config: Mapping[str, Any]) -> RTCConfiguration:
    """An aiortc configuration from a browser-style ``{"iceServers": [...]}`` mapping.

    Browsers accept ICE server URIs that aiortc refuses or ignores; aiortc raises on some of them
    when a connection gathers candidates, which would stop every offer and answer. Each URI goes
    through :func:`usable_ice_uri`: a URI aiortc cannot take is converted (``stun:...?transport=udp``
    loses its query) or left out, and aiortc uses one STUN and one TURN server, so the first
    usable of each is kept and the rest are left out. Each converted or left-out URI is logged
    once per process, not once per connection.
    """
    servers: list[RTCIceServer] = []
    have: set[str] = set()  # "stun", "turn": aiortc takes one of each
    for server in rtc_config.get("iceServers", ()) or ():
        urls = server.get("urls")
        if urls is None:
            continue
        username, credential = server.get("username"), server.get("credential")
        # aiortc knows the "password" credential type only (the browser default; OAuth is gone).
        has_credentials = (
            username is not None
            and credential is not None
            and server.get("credentialType", "password") == "password"
        )
        kept: list[str] = []
        for uri in list(urls) if isinstance(urls, list | tuple) else [urls]:
            usable, reason = usable_ice_uri(uri, has_credentials=has_credentials)
            if usable is None:
                _report_once(uri, logging.WARNING, "ICE server %r left out: %s", uri, reason)
                continue
            kind = "stun" if usable.startswith("stun:") else "turn"
            if kind in have:
                _report_once(
                    uri,
                    logging.INFO,
                    "ICE server %r not used: aiortc uses the first %s server only",
                    uri,
                    kind,
                )
                continue
            if usable != uri:
                _report_once(uri, logging.INFO, "ICE server %r used as %r: %s", uri, usable, reason)
            have.add(kind)
            kept.append(usable)
        if kept:
            servers.append(RTCIceServer(urls=kept, username=username, credential=credential))
    return RTCConfiguration(iceServers=servers)


_STUN_TURN_URI = re.compile(
    r"(?P<scheme>stuns?|turns?):(?P<host>[^?:\[\]/@]+)(?::(?P<port>[0-9]{1,5}))?(?:\?transport=(?P<transport>[a-z]+))?",
    re.IGNORECASE,
)

_reported_uris: set[str] = set()


def usable_ice_uri(uri: object, *, has_credentials: bool) -> tuple[str | None, str]:
    """The form of ``uri`` aiortc takes (``None``: none), and why it differs from ``uri``.

    aiortc (1.16) takes ``stun:host[:port]`` (UDP), ``turn:host[:port][?transport=udp|tcp]`` and
    ``turns:host[:port][?transport=tcp]`` with a username and credential. It refuses a ``stun:``
    URI with a ``transport`` (RFC 7064 defines none, yet the P2P Media Loader default has
    ``?transport=udp``), so that query is dropped: STUN over UDP is what it asks for. ``stuns:``
    (STUN over TLS), TCP STUN, other transports, IPv6 literals and ports outside 1-65535 cannot be
    used: ``None``.
    """
    if not isinstance(uri, str):
        return None, "not a string"
    match = _STUN_TURN_URI.fullmatch(uri)
    if match is None:
        return None, "not a stun:/turn:/turns: URI aiortc can parse (an IPv6 literal is not supported)"
    scheme, host, port, transport = (
        match["scheme"].lower(),
        match["host"],
        match["port"],
        (match["transport"] or "").lower(),
    )
    if port is not None and not 0 < int(port) < 65536:
        return None, "port out of range"
    address = f"{host}:{port}" if port is not None else host
    if scheme == "stuns":
        return None, "aiortc has no STUN over TLS"
    if scheme == "stun":
        if transport not in ("", "udp"):
            return None, "aiortc has STUN over UDP only"
        canonical = f"stun:{address}"
        return canonical, ("STUN URIs take no transport (RFC 7064); aiortc refuses one" if transport else "")
    if not has_credentials:
        return None, "a TURN server needs a username and a password credential"
    allowed = ("", "udp", "tcp") if scheme == "turn" else ("", "tcp")
    if transport not in allowed:
        return None, f"aiortc has no {scheme}: over {transport}"
    canonical = f"{scheme}:{address}" + (f"?transport={transport}" if transport else "")
    return canonical, ("spelt as aiortc parses it" if canonical != uri else "")


def _report_once(uri: object, level: int, message: str, *args: object) -> None:
    key = repr(uri)
    if key not in _reported_uris:
        _reported_uris.add(key)
        logger.log(level, message, *args)


@contextlib.contextmanager
def restrict_ice_to_loopback() -> Iterator[None]:
    """Within the block, new peer connections offer only 127.0.0.1 host candidates (process-wide).

    For tests and the local demo: peers on one machine then talk over loopback only. Not for
    production, where viewers are on other machines. Blocks may nest and overlap (many viewers on
    one event loop each open one, and end in any order): the first block to open installs the
    loopback-only addresses and the last to close restores aioice's own.
    """
    global _loopback_depth, _loopback_original
    if _loopback_depth == 0:
        _loopback_original = aioice.ice.get_host_addresses
        aioice.ice.get_host_addresses = _loopback_host_addresses
    _loopback_depth += 1
    try:
        yield
    finally:
        _loopback_depth -= 1
        if _loopback_depth == 0 and _loopback_original is not None:
            aioice.ice.get_host_addresses = _loopback_original  # type: ignore[assignment]
            _loopback_original = None


def _loopback_host_addresses(use_ipv4: bool, use_ipv6: bool) -> list[str]:
    return ["127.0.0.1"]


MAX_REMOTE_CANDIDATES = 10
"""Remote ICE candidates used per offer or answer; the rest are dropped.

aioice checks every remote candidate against every local one, each check retransmitted for
seconds: a peer listing 200 candidates made its victim send tens of thousands of UDP packets to
addresses and ports the peer chose. A browser offers one host candidate per interface and address
family, plus one server-reflexive and one relay candidate per STUN/TURN server: well under 10."""

MIN_REMOTE_PORT = 1024
"""Lowest port a remote candidate may name. No WebRTC stack gathers candidates on privileged
ports; below this are the services (DNS 53, NTP 123, HTTPS/QUIC 443...) that candidate spraying
would aim connectivity checks at."""


@attrs.frozen
class ScreenedSdp:
    """A remote SDP with the candidates aiortc is allowed to see, and counts of the others."""

    sdp: str
    """The SDP to apply: unusable and surplus ``a=candidate`` lines removed, the rest verbatim."""
    kept: int
    """Candidates left in :attr:`sdp`."""
    dropped: Mapping[str, int]
    """Candidates removed, by reason."""

    @property
    def dropped_total(self) -> int:
        return sum(self.dropped.values())


def screen_remote_candidates(sdp: str, *, loopback_only: bool = False) -> ScreenedSdp:
    """Keep the remote candidates worth a connectivity check, at most :data:`MAX_REMOTE_CANDIDATES`.

    Dropped: non-UDP candidates and types aioice never pairs (it would not use them); addresses
    that are not IP addresses or ``.local`` mDNS names; unspecified, multicast, broadcast and
    reserved addresses; ports below :data:`MIN_REMOTE_PORT`; loopback addresses (on another
    machine's peer they name *our* loopback), except with ``loopback_only`` (inside
    :func:`restrict_ice_to_loopback`), where *only* UDP candidates on 127.0.0.0/8 are kept (an mDNS
    name costs a multicast lookup of up to 1 s and names an address a loopback-only peer cannot
    reach). The first candidates in SDP order that pass are kept (browsers list host candidates
    first). Line endings are kept as they are.
    """
    kept_lines: list[str] = []
    kept = 0
    dropped: dict[str, int] = {}
    for line in sdp.splitlines(keepends=True):
        if line.startswith("a=candidate:"):
            reason = _unusable_candidate(line.rstrip("\r\n"), loopback_only=loopback_only)
            if reason is None and kept >= MAX_REMOTE_CANDIDATES:
                reason = f"over the cap of {MAX_REMOTE_CANDIDATES}"
            if reason is not None:
                dropped[reason] = dropped.get(reason, 0) + 1
                continue
            kept += 1
        kept_lines.append(line)
    return ScreenedSdp(sdp="".join(kept_lines), kept=kept, dropped=dropped)


def _unusable_candidate(line: str, *, loopback_only: bool) -> str | None:
    """Why the candidate ``line`` (``a=candidate:F C transport priority address port typ type ...``)
    is not used, or ``None``."""
    fields = line.split(" ")
    if len(fields) < 8 or fields[6] != "typ":
        return "malformed"
    transport, address, port_text, kind = fields[2].lower(), fields[4].lower(), fields[5], fields[7]
    if transport != "udp":
        return "not UDP"
    if kind not in ("host", "srflx", "relay"):
        return "not a host, srflx or relay candidate"
    if not port_text.isdigit() or not MIN_REMOTE_PORT <= int(port_text) <= 65535:
        return f"port outside {MIN_REMOTE_PORT}-65535"
    if address.endswith(".local"):
        return "an mDNS name, in loopback mode" if loopback_only else None
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return "not an IP address"
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if loopback_only:
        return None if ip in _IPV4_LOOPBACK else "not on 127.0.0.0/8, in loopback mode"
    if ip.is_loopback:
        return "a loopback address"
    if ip.is_unspecified or ip.is_multicast or ip.is_reserved or ip == _IPV4_BROADCAST:
        return "an unspecified, multicast, broadcast or reserved address"
    return None


def create_connection(rtc_config: Mapping[str, Any]) -> RTCPeerConnection:
    return RTCPeerConnection(rtc_configuration(rtc_config))


async def set_remote(pc: RTCPeerConnection, sdp: str, kind: str) -> ScreenedSdp:
    """Apply a complete remote SDP and signal end-of-candidates (harmless when it has the line).

    Its candidates are screened first (:func:`screen_remote_candidates`; loopback ones only inside
    :func:`restrict_ice_to_loopback`); one log line names what was dropped. Returns the screening,
    so a caller can count the drops.
    """
    screened = screen_remote_candidates(sdp, loopback_only=_loopback_depth > 0)
    if screened.dropped:
        reasons = ", ".join(f"{count} {reason}" for reason, count in sorted(screened.dropped.items()))
        logger.info(
            "remote %s: %d ICE candidates dropped (%s), %d kept",
            kind,
            screened.dropped_total,
            reasons,
            screened.kept,
        )
    if _loopback_depth and screened.kept == 0:
        logger.warning(
            "the remote %s has no UDP candidate on 127.0.0.1, the only address a loopback-only peer "
            "reaches: a Chromium page offers it only with --allow-loopback-in-peer-connection and "
            "camera/microphone permission",
            kind,
        )
    await pc.setRemoteDescription(RTCSessionDescription(sdp=screened.sdp, type=kind))
    await pc.addIceCandidate(None)
    return screened


class PeerLink:
    """One peer connection and its single data channel.

    ``on_open``, ``on_message`` and ``on_closed`` are called on the event loop; ``on_closed`` exactly
    once, whatever closed the link (us, the remote, a failed connection, the connect timeout).
    """

    def __init__(
        self,
        pc: RTCPeerConnection,
        *,
        peer_id: str,
        initiator: bool,
        on_open: Callable[[PeerLink], None],
        on_message: Callable[[PeerLink, bytes], None],
        on_closed: Callable[[PeerLink], None],
        buffered_low_threshold: int | None = None,
    ) -> None:
        self.pc = pc
        self.buffered_low_threshold = (
            BUFFERED_AMOUNT_LOW_THRESHOLD if buffered_low_threshold is None else buffered_low_threshold
        )
        """Bytes. :meth:`wait_drained` waits while more than this is queued in the channel
        (:data:`BUFFERED_AMOUNT_LOW_THRESHOLD` unless given)."""
        self.peer_id = peer_id
        self.initiator = initiator
        self.channel: RTCDataChannel | None = None
        self.is_open = False
        self.closed = False
        self._on_open = on_open
        self._on_message = on_message
        self._on_closed = on_closed
        self._drained = asyncio.Event()
        self._drained.set()
        self._closing: asyncio.Task[None] | None = None
        pc.on("connectionstatechange", self._connection_state_changed)

    @property
    def closing(self) -> bool:
        """Closed, or closing: nothing more is processed for this link."""
        return self.closed or self._closing is not None

    @property
    def max_message_size(self) -> int:
        """Largest message the remote accepts (its SDP ``a=max-message-size``; 65536 if absent)."""
        sctp = self.pc.sctp
        remote = getattr(sctp, "_remote_max_message_size", None) if sctp is not None else None
        return int(remote) if remote else 65536

    @property
    def round_trip_time(self) -> float | None:
        """Seconds: the SCTP association's smoothed round trip (RFC 4960's SRTT, measured on the
        data we send: queues on the way out and on the way back included); ``None`` before a first
        measurement, or if this aiortc keeps it elsewhere (it is aiortc's private ``_srtt``)."""
        sctp = self.pc.sctp
        srtt = getattr(sctp, "_srtt", None) if sctp is not None else None
        if isinstance(srtt, bool) or not isinstance(srtt, int | float):
            return None
        return float(srtt)

    def attach_channel(self, channel: RTCDataChannel) -> None:
        if self.channel is not None:
            # One data channel per peer: a second one is a protocol oddity; ignore it.
            channel.close()
            return
        self.channel = channel
        channel.bufferedAmountLowThreshold = self.buffered_low_threshold
        channel.on("open", self._opened)
        channel.on("message", self._message)
        channel.on("close", self._channel_closed)
        channel.on("bufferedamountlow", self._drained.set)
        if channel.readyState == "open":
            self._opened()

    def send(self, message: bytes) -> bool:
        """Queue one message; ``False`` when the link cannot send any more."""
        if self.closed or self.channel is None or self.channel.readyState != "open":
            return False
        try:
            self.channel.send(message)
        except (ValueError, ConnectionError, RuntimeError) as exc:  # aiortc raises these when closed/too big
            logger.info("peer %s: send failed: %s", self.peer_id, exc)
            return False
        return True

    async def wait_drained(self, *, stall_timeout: float | None = None) -> bool:
        """Wait while more than the low threshold is queued (upload backpressure).

        ``False`` when the queue did not shrink at all for ``stall_timeout`` seconds: the remote
        stopped acknowledging data (it stopped reading). ``None`` waits as long as it takes.
        """
        channel = self.channel
        while (
            channel is not None and not self.closed and channel.bufferedAmount > self.buffered_low_threshold
        ):
            queued = channel.bufferedAmount
            self._drained.clear()
            try:
                await asyncio.wait_for(self._drained.wait(), stall_timeout)
            except TimeoutError:
                # The low-threshold event comes only when the queue crosses it; a slow reader
                # still takes bytes in between (the queue shrank), a stalled one takes none.
                if not self.closed and channel.bufferedAmount >= queued:
                    return False
        return True

    def close(self) -> None:
        """Close gracefully in the background (channel first, so queued data is flushed)."""
        if self._closing is None and not self.closed:
            self._closing = asyncio.get_running_loop().create_task(self.aclose())

    async def aclose(self) -> None:
        if self.closed:
            return
        channel = self.channel
        if channel is not None and channel.readyState == "open":
            closed = asyncio.Event()
            channel.on("close", closed.set)
            channel.close()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(closed.wait(), _CLOSE_WAIT)
        await self.pc.close()
        self._finish()

    def _opened(self) -> None:
        if not self.is_open and not self.closed:
            self.is_open = True
            self._on_open(self)

    def _message(self, message: bytes | str) -> None:
        if self.closed:
            return
        if isinstance(message, str):
            message = message.encode("utf-8")  # the protocol is binary; text is garbage to the decoder
        self._on_message(self, message)

    def _channel_closed(self) -> None:
        self._drained.set()
        self.close()

    def _connection_state_changed(self) -> None:
        if self.pc.connectionState in ("failed", "closed"):
            self.close()

    def _finish(self) -> None:
        if not self.closed:
            self.closed = True
            self._drained.set()
            self._on_closed(self)
