"""WebRTC plumbing with aiortc: peer connections, non-trickle SDP, and one data-channel link per peer.

Theory of operation (pitfalls from the aiortc notes this module works around):

* **Non-trickle SDP.** aiortc gathers every candidate inside ``setLocalDescription``; the SDP handed
  to the tracker is complete. WebTorrent peers (simple-peer with ``trickle: false``) do the same.
* **End of candidates.** Browser SDPs often lack ``a=end-of-candidates``; without it ICE never
  fails. After every ``setRemoteDescription`` we call ``addIceCandidate(None)``, and a connect
  timeout closes connections that never open.
* **Backpressure.** ``RTCDataChannel.send`` never blocks and queues without bound, so uploads wait
  on ``bufferedamountlow`` whenever ``bufferedAmount`` passes a threshold.
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
  mode :func:`set_remote` therefore drops ``.local`` candidates before aiortc sees them (aioice
  would otherwise spend up to 1 s per name on a multicast lookup inside ``setRemoteDescription``)
  and logs a warning naming the cause when the SDP has no UDP candidate on 127.0.0.0/8.
  Chromium's complete SDPs carry no ``a=end-of-candidates`` (checked with Chromium 156), so the
  end-of-candidates call below is needed with browsers.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import aioice.ice
from aiortc import RTCConfiguration, RTCDataChannel, RTCIceServer, RTCPeerConnection, RTCSessionDescription

__all__ = [
    "BUFFERED_AMOUNT_LOW_THRESHOLD",
    "PeerLink",
    "create_connection",
    "loopback_usable_sdp",
    "restrict_ice_to_loopback",
    "rtc_configuration",
]

logger = logging.getLogger(__name__)

BUFFERED_AMOUNT_LOW_THRESHOLD = 1 << 20
"""Bytes. Uploads pause while more than this is queued in the data channel."""

_CLOSE_WAIT = 2.0  # seconds to let a closing channel flush before the connection is closed

_loopback_depth = 0  # > 0 inside restrict_ice_to_loopback() (nested blocks count)
_IPV4_LOOPBACK = ipaddress.ip_network("127.0.0.0/8")


def rtc_configuration(rtc_config: Mapping[str, Any]) -> RTCConfiguration:
    """An aiortc configuration from a browser-style ``{"iceServers": [...]}`` mapping."""
    servers = []
    for server in rtc_config.get("iceServers", ()) or ():
        urls = server.get("urls")
        if urls is None:
            continue
        servers.append(
            RTCIceServer(
                urls=list(urls) if isinstance(urls, list | tuple) else urls,
                username=server.get("username"),
                credential=server.get("credential"),
            )
        )
    return RTCConfiguration(iceServers=servers)


@contextlib.contextmanager
def restrict_ice_to_loopback() -> Iterator[None]:
    """Within the block, new peer connections offer only 127.0.0.1 host candidates (process-wide).

    For tests and the local demo: peers on one machine then talk over loopback only. Not for
    production, where viewers are on other machines.
    """
    global _loopback_depth
    original = aioice.ice.get_host_addresses
    aioice.ice.get_host_addresses = lambda use_ipv4, use_ipv6: ["127.0.0.1"]
    _loopback_depth += 1
    try:
        yield
    finally:
        _loopback_depth -= 1
        aioice.ice.get_host_addresses = original


def loopback_usable_sdp(sdp: str) -> tuple[str, bool]:
    """``sdp`` without its mDNS (``.local``) candidates, and whether it has a UDP candidate on
    127.0.0.0/8, the only kind a peer restricted to 127.0.0.1 can reach.

    A ``.local`` name stands for one of the remote's other addresses, and resolving it costs a
    multicast lookup of up to 1 s each; other candidates are kept (harmless: their checks just
    fail). Line endings are kept as they are.
    """
    kept: list[str] = []
    usable = False
    for line in sdp.splitlines(keepends=True):
        fields = line.rstrip("\r\n").split(" ")
        if line.startswith("a=candidate:") and len(fields) >= 8:
            address = fields[4].lower()
            if address.endswith(".local"):
                continue
            usable = usable or (fields[2].lower() == "udp" and _is_ipv4_loopback(address))
        kept.append(line)
    return "".join(kept), usable


def _is_ipv4_loopback(address: str) -> bool:
    try:
        return ipaddress.ip_address(address) in _IPV4_LOOPBACK
    except ValueError:
        return False


def create_connection(rtc_config: Mapping[str, Any]) -> RTCPeerConnection:
    return RTCPeerConnection(rtc_configuration(rtc_config))


async def set_remote(pc: RTCPeerConnection, sdp: str, kind: str) -> None:
    """Apply a complete remote SDP and signal end-of-candidates (harmless when it has the line).

    Inside :func:`restrict_ice_to_loopback`, mDNS candidates are dropped first (see the module notes).
    """
    if _loopback_depth:
        sdp, usable = loopback_usable_sdp(sdp)
        if not usable:
            logger.warning(
                "the remote %s has no UDP candidate on 127.0.0.1, the only address a loopback-only peer "
                "reaches: a Chromium page offers it only with --allow-loopback-in-peer-connection and "
                "camera/microphone permission",
                kind,
            )
    await pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type=kind))
    await pc.addIceCandidate(None)


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
    ) -> None:
        self.pc = pc
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

    def attach_channel(self, channel: RTCDataChannel) -> None:
        if self.channel is not None:
            # One data channel per peer: a second one is a protocol oddity; ignore it.
            channel.close()
            return
        self.channel = channel
        channel.bufferedAmountLowThreshold = BUFFERED_AMOUNT_LOW_THRESHOLD
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
            channel is not None and not self.closed and channel.bufferedAmount > BUFFERED_AMOUNT_LOW_THRESHOLD
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
