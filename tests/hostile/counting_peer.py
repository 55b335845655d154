"""A scripted peer for long runs, against a loader in this process or in another one.

:class:`~tests.hostile.scripted.ScriptedPeer` keeps every message it receives, which suits a short
test. ``benchmarks/attack_matrix.py`` runs its peers for tens of seconds against a victim loader in a
process of its own (so that the CPU time and memory measured are the victim's), some of them
receiving hundreds of megabytes. :class:`CountingPeer` therefore

* takes anything shaped like the loader (its public ``swarm_endpoint``: ``rendition``,
  ``wire_id``, ``sequence_of`` and an awaitable ``answer_offer``), so signalling may cross a
  process boundary;
* counts data bytes instead of keeping them, and keeps a bounded tail of the commands;
* remembers what the loader announced to it, which requests it cancelled and which ended, so that a
  script can request the loader's cached segments and wait for the answers;
* can stop reading (:meth:`CountingPeer.stop_reading`): its SCTP stack then drops every data chunk
  without acknowledging it, as a receiver that never reads would, so the sender's window fills.
"""

from __future__ import annotations

import asyncio
import collections
from collections.abc import Awaitable, Callable
from typing import Any

from aiortc.rtcsctptransport import DataChunk as SctpDataChunk

from p2ploader.aio.loader import HybridLoader
from p2ploader.core import wire
from p2ploader.testing.peer import Received
from tests.hostile.scripted import Respond, ScriptedPeer

KEPT_COMMANDS = 1000
"""Commands kept in :attr:`CountingPeer.received` (the newest ones)."""


class CountingPeer(ScriptedPeer):
    def __init__(
        self,
        loader: HybridLoader | Any,
        segments: Any,
        respond: Respond | None = None,
        *,
        peer_id: bytes | None = None,
    ) -> None:
        super().__init__(loader, segments, respond, peer_id=peer_id, keep=KEPT_COMMANDS, keep_data=False)
        self.announced: set[int] = set()
        """Media sequences the loader announced to this peer as loaded."""
        self.cancelled_requests: collections.deque[tuple[int, int]] = collections.deque(maxlen=64)
        """(wire segment id, request id) of the loader's cancellations, newest last."""
        self.ended: dict[int, str] = {}
        """Our request id -> "completed" or "absent", once the loader ended it (bounded)."""

    async def send_paced(
        self,
        message: bytes,
        *,
        high_water: int = 4 << 20,
        within: float = 30.0,
        unless: Callable[[], bool] = lambda: False,
    ) -> bool:
        """Send ``message`` once fewer than ``high_water`` bytes wait in the channel's buffer (checked
        every 5 ms, for at most ``within`` seconds), unless ``unless()`` became true meanwhile.
        ``False``: not sent (the channel closed, stayed full, or ``unless``)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        while self.is_open and self.channel is not None and self.channel.bufferedAmount > high_water:
            if loop.time() > deadline:
                return False
            await asyncio.sleep(0.005)
        if not self.is_open or unless():
            return False
        self.send_raw(message)
        return True

    def stop_reading(self) -> None:
        """From now on drop every SCTP data chunk unacknowledged: the loader's uploads to us stall
        with a full send window, as towards a receiver that never reads."""
        assert self.pc is not None and self.pc.sctp is not None, "not connected"
        sctp = self.pc.sctp
        receive: Callable[[Any], Awaitable[None]] = sctp._receive_chunk

        async def drop_data(chunk: Any) -> None:
            if isinstance(chunk, SctpDataChunk):
                return
            await receive(chunk)

        sctp._receive_chunk = drop_data  # type: ignore[method-assign]

    def _record(self, item: Received) -> None:
        super()._record(item)
        match item:
            case wire.SegmentsAnnouncement():
                self.announced.update(self._sequences(item.loaded))
            case wire.CancelSegmentRequest():
                self.cancelled_requests.append((item.segment_id, item.request_id))
            case wire.SegmentDataSendingCompleted():
                self._ended(item.request_id, "completed")
            case wire.SegmentAbsent():
                self._ended(item.request_id, "absent")

    def _sequences(self, wire_ids: tuple[int, ...]) -> list[int]:
        out = []
        for wire_id in wire_ids:
            try:
                out.append(self.sequence_of(wire_id))
            except ValueError:
                continue
        return out

    def _ended(self, request_id: int, how: str) -> None:
        self.ended[request_id] = how
        if len(self.ended) > 1024:
            del self.ended[next(iter(self.ended))]
