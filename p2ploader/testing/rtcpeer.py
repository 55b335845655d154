"""The scripted peer over real WebRTC: a :class:`~p2ploader.testing.peer.ScriptedPeer` on an aiortc
data channel to a running loader.

Where the socket is the point (SCTP back-pressure, a link that closes mid-transfer, the loader's
admission and bans of real connections), :class:`RtcScriptedPeer` carries the same scripted peer
over a real data channel on 127.0.0.1. It makes the offer; ``signal``, the relay a WebTorrent
tracker would be, hands it to the loader and returns the loader's answer (``None``: refused, raised
as :class:`~p2ploader.errors.OfferRefusedError`). Messages go out as soon as a verb queues them,
and messages received are handled at the loop's time. Scripts may be coroutine functions here: each
request's script runs as a task of its own, so it may sleep, trickle bytes, or close the link.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable, Mapping
from typing import Self, TypeAlias

from aiortc import RTCConfiguration, RTCDataChannel, RTCPeerConnection, RTCSessionDescription

from p2ploader.core import wire
from p2ploader.errors import OfferRefusedError
from p2ploader.testing.peer import ScriptedPeer

__all__ = ["RtcScriptedPeer", "Signal"]

Signal: TypeAlias = Callable[[bytes, bytes, str], Awaitable[str | None]]
"""``signal(our peer id, offer id, offer SDP) -> answer SDP or None``: what a tracker relays
between a new peer and a loader (both ids are 20 raw bytes)."""


class RtcScriptedPeer(ScriptedPeer):
    """A :class:`~p2ploader.testing.peer.ScriptedPeer` on a real aiortc data channel.

    ``peer_id``: the 20 raw bytes it signals with (default: random). The other arguments are
    :class:`~p2ploader.testing.peer.ScriptedPeer`'s; ``script`` may also be a coroutine function.
    """

    def __init__(
        self,
        segments: Mapping[int, bytes] | None = None,
        *,
        script: Callable[[Self, wire.SegmentRequest], Awaitable[None] | None] | None = None,
        peer_id: bytes | None = None,
        keep: int | None = None,
        keep_data: bool = True,
        max_message_size: int = wire.DEFAULT_MAX_MESSAGE_SIZE,
        max_announced_ids: int = wire.DEFAULT_MAX_ANNOUNCED_IDS,
    ) -> None:
        super().__init__(
            segments,
            script=script,
            keep=keep,
            keep_data=keep_data,
            max_message_size=max_message_size,
            max_announced_ids=max_announced_ids,
        )
        self.peer_id = os.urandom(20) if peer_id is None else peer_id
        """The 20 raw bytes this peer signals with."""
        self.pc: RTCPeerConnection | None = None
        """The peer connection, once :meth:`connect` made it."""
        self.channel: RTCDataChannel | None = None
        """The data channel, once :meth:`connect` made it."""
        self.closed = asyncio.Event()
        """Set once the link closed or failed (or never opened)."""
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def hex_id(self) -> str:
        """The peer id in hex, as the loader's notifications name peers."""
        return self.peer_id.hex()

    @property
    def is_open(self) -> bool:
        """The data channel is open and the link not closed."""
        return self.channel is not None and self.channel.readyState == "open" and not self.closed.is_set()

    async def connect(
        self,
        signal: Signal,
        *,
        within: float = 10.0,
        peer_connection: RTCPeerConnection | None = None,
    ) -> None:
        """Offer a data channel through ``signal`` and wait (at most ``within`` seconds) until it
        opens. ``peer_connection``: offer over this one (e.g. set up with a given DTLS certificate,
        the same identity as an earlier link) instead of a fresh one without ICE servers.

        Raises :class:`~p2ploader.errors.OfferRefusedError` when the loader declines the offer
        (a full swarm, a ban), :class:`TimeoutError` when the channel does not open in time; either
        way nothing of the attempt stays open."""
        pc = peer_connection or RTCPeerConnection(RTCConfiguration(iceServers=[]))
        self.pc = pc
        try:
            channel = pc.createDataChannel("scripted")
            self.channel = channel
            opened = asyncio.Event()
            channel.on("open", opened.set)
            channel.on("message", self._on_channel_message)
            channel.on("close", self.closed.set)

            @pc.on("connectionstatechange")
            def _state() -> None:
                if pc.connectionState in ("failed", "closed"):
                    self.closed.set()

            await pc.setLocalDescription(await pc.createOffer())
            answer = await asyncio.wait_for(
                signal(self.peer_id, os.urandom(20), pc.localDescription.sdp), within
            )
            if answer is None:
                raise OfferRefusedError(self.hex_id)
            await pc.setRemoteDescription(RTCSessionDescription(sdp=answer, type="answer"))
            await asyncio.wait_for(opened.wait(), within)
            self._flush()  # what the script queued before the channel opened
        except BaseException:
            await pc.close()
            self.closed.set()
            raise

    async def close(self) -> None:
        """Stop the scripts' tasks and close the link."""
        for task in list(self._tasks):
            task.cancel()
        if self.pc is not None:
            await self.pc.close()
        self.closed.set()

    # ------------------------------------------------------------------ carrier hooks

    def _emit(self, message: bytes) -> None:
        super()._emit(message)
        self._flush()

    def _flush(self) -> None:
        """Send what is queued, once the channel is open (messages queued after it closed are
        dropped, as a real peer's are)."""
        if self.is_open and self.channel is not None:
            for message in self.messages_to_send():
                self.channel.send(message)
        elif self.closed.is_set():
            self.messages_to_send()

    def _on_channel_message(self, message: bytes | str) -> None:
        data = message.encode() if isinstance(message, str) else message
        self.receive_message(data, now=asyncio.get_running_loop().time())

    def _run_script(self: Self, request: wire.SegmentRequest) -> None:
        result = self.script(self, request)
        if result is not None:
            task = asyncio.get_running_loop().create_task(_awaited(result))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)


async def _awaited(awaitable: Awaitable[None]) -> None:
    await awaitable
