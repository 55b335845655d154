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
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import aioice.ice
from aiortc import RTCConfiguration, RTCDataChannel, RTCIceServer, RTCPeerConnection, RTCSessionDescription

__all__ = [
    "BUFFERED_AMOUNT_LOW_THRESHOLD",
    "PeerLink",
    "create_connection",
    "restrict_ice_to_loopback",
    "rtc_configuration",
]

logger = logging.getLogger(__name__)

BUFFERED_AMOUNT_LOW_THRESHOLD = 1 << 20
"""Bytes. Uploads pause while more than this is queued in the data channel."""

_CLOSE_WAIT = 2.0  # seconds to let a closing channel flush before the connection is closed


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
    original = aioice.ice.get_host_addresses
    aioice.ice.get_host_addresses = lambda use_ipv4, use_ipv6: ["127.0.0.1"]
    try:
        yield
    finally:
        aioice.ice.get_host_addresses = original


def create_connection(rtc_config: Mapping[str, Any]) -> RTCPeerConnection:
    return RTCPeerConnection(rtc_configuration(rtc_config))


async def set_remote(pc: RTCPeerConnection, sdp: str, kind: str) -> None:
    """Apply a complete remote SDP and signal end-of-candidates (harmless when it has the line)."""
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

    async def wait_drained(self) -> None:
        """Wait while more than the low threshold is queued (upload backpressure)."""
        channel = self.channel
        while (
            channel is not None and not self.closed and channel.bufferedAmount > BUFFERED_AMOUNT_LOW_THRESHOLD
        ):
            self._drained.clear()
            await self._drained.wait()

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
