"""Signalling through a WebTorrent tracker, for the kit's scripted peer: join a swarm as a browser does.

:meth:`RtcScriptedPeer.connect <p2ploader.testing.rtcpeer.RtcScriptedPeer.connect>` hands its
offer to a *signal*. :class:`TrackerSignal` is one that goes through a real tracker (the embedded
:class:`~p2ploader.tracker.TrackerServer`, npm ``bittorrent-tracker``, any WebTorrent tracker):
it announces to the swarm's info hash with the offer and waits for the answer the tracker relays
back. So a scripted peer reaches a loader in any process, by the same path as every other peer,
and meets what they meet (the loader's bans, admission and slots, the tracker's own rules).

A tracker sends each offer to a peer drawn at random from the rest of the swarm, which may be
another scripted peer that never answers. The offer is therefore announced again, under a fresh
offer id, every ``retry_every`` seconds until an answer comes or ``answer_within`` seconds pass;
then the signal gives ``None``, which ``connect`` raises as
:class:`~p2ploader.errors.OfferRefusedError` (through a tracker, a declined offer is silence).
Offers the tracker relays to us are ignored. Leaving the ``async with`` block closes the socket,
which takes the peer out of the tracker's swarm; links made through it stay up.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from types import TracebackType
from typing import Self

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from p2ploader.core import tracker_wire as tw
from p2ploader.errors import TrackerMessageError, UsageError

__all__ = ["TrackerSignal"]


class TrackerSignal:
    """A signal (``signal(peer_id, offer_id, sdp) -> answer SDP | None``) through the tracker at
    ``url``, in the swarm ``info_hash`` (20 bytes; a loader's is ``loader.info_hash()``). Use it as
    an async context manager. Times in seconds."""

    def __init__(
        self,
        url: str,
        info_hash: bytes,
        *,
        answer_within: float = 5.0,
        retry_every: float = 0.5,
    ) -> None:
        if len(info_hash) != tw.ID_LENGTH:
            raise UsageError(f"info_hash must be {tw.ID_LENGTH} bytes, not {len(info_hash)}")
        if answer_within <= 0 or retry_every <= 0:
            raise UsageError(
                f"answer_within and retry_every must be > 0 seconds, not {answer_within} and {retry_every}"
            )
        self.url = url
        self.info_hash = info_hash
        self.answer_within = answer_within
        self.retry_every = retry_every
        self._ws: ClientConnection | None = None
        self._reader: asyncio.Task[None] | None = None
        self._waiting: dict[bytes, asyncio.Future[str]] = {}  # offer id -> the answer's SDP

    async def __aenter__(self) -> Self:
        self._ws = await connect(self.url, open_timeout=self.answer_within)
        self._reader = asyncio.get_running_loop().create_task(self._read(self._ws))
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the socket (the tracker drops us from its swarm)."""
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
        if self._ws is not None:
            await self._ws.close()

    async def __call__(self, peer_id: bytes, offer_id: bytes, sdp: str) -> str | None:
        """Announce ``sdp`` as ``peer_id``'s offer until the tracker relays an answer (its SDP),
        or ``None`` after ``answer_within`` seconds. ``offer_id`` is the first announce's."""
        ws = self._ws
        if ws is None:
            raise UsageError("use TrackerSignal as an async context manager")
        answer: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.answer_within
        sent: list[bytes] = []
        try:
            while True:
                self._waiting[offer_id] = answer
                sent.append(offer_id)
                announce = tw.Announce(
                    info_hash=self.info_hash,
                    peer_id=peer_id,
                    event="started" if len(sent) == 1 else None,
                    numwant=1,
                    offers=(tw.OfferEntry(offer_id=offer_id, sdp=sdp),),
                    left=0,
                )
                await ws.send(tw.encode(announce))
                remaining = deadline - loop.time()
                if remaining <= 0:
                    return None
                with contextlib.suppress(TimeoutError):
                    return await asyncio.wait_for(asyncio.shield(answer), min(self.retry_every, remaining))
                if loop.time() >= deadline:
                    return None
                offer_id = os.urandom(tw.ID_LENGTH)  # a fresh id: the tracker may pick another peer
        finally:
            for sent_id in sent:
                self._waiting.pop(sent_id, None)
            answer.cancel()

    async def _read(self, ws: ClientConnection) -> None:
        with contextlib.suppress(ConnectionClosed):
            async for frame in ws:
                try:
                    message = tw.decode_response(frame)
                except TrackerMessageError:
                    continue  # not for us, or not understood: a tracker's noise
                if isinstance(message, tw.RelayedAnswer):
                    waiting = self._waiting.get(message.offer_id)
                    if waiting is not None and not waiting.done():
                        waiting.set_result(message.sdp)
