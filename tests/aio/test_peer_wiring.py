"""The peer manager's wiring of the protocol machine, with a fake link (no aiortc, no sleep).

The protocol's rules are tested in ``tests/core/test_peer_protocol.py``; the whole path over real
WebRTC in ``tests/aio/test_peers.py`` and ``tests/hostile/``. Here: that the manager feeds each
message to its peer's machine with the loop's time, sends what the machine queues, maps its
events (wire ids) to the core's (segment ids), and turns a violation into a report and a close.
"""

from __future__ import annotations

import asyncio

import attrs
import pytest

from p2ploader.aio.peers import PeerManager, _PeerState
from p2ploader.core import actions as act
from p2ploader.core import events as ev
from p2ploader.core import wire
from p2ploader.core.peer_protocol import PeerProtocol
from p2ploader.core.segments import SegmentId

pytestmark = pytest.mark.anyio

PEER = "ee" * 20


@attrs.define
class FakeLink:
    peer_id: str = PEER
    is_open: bool = True
    closed: bool = False
    closing: bool = False
    max_message_size: int = 65536
    sent: list[bytes] = attrs.Factory(list)

    def send(self, message: bytes) -> bool:
        self.sent.append(message)
        return not self.closing

    def close(self) -> None:
        self.closing = True

    async def wait_drained(self, *, stall_timeout: float | None = None) -> bool:
        return True  # the send buffer always drains at once

    def commands(self) -> list[wire.Command | wire.DataChunk]:
        decoder = wire.WireDecoder()
        return [item for message in self.sent for item in decoder.receive(message)]


@attrs.define
class Wired:
    manager: PeerManager
    link: FakeLink
    events: list[ev.Event]

    @property
    def misbehaved(self) -> list[str]:
        """Violations outside our requests, as the core hears them (a strike each)."""
        return [e.reason for e in self.events if isinstance(e, ev.PeerViolatedProtocol) and e.swarm == "v0"]

    def receive(self, *commands: wire.Command) -> None:
        for command in commands:
            for message in wire.encode_command(command):
                self.manager._link_message(self.link, message)  # type: ignore[arg-type]

    def receive_raw(self, data: bytes) -> None:
        self.manager._link_message(self.link, data)  # type: ignore[arg-type]


def wired() -> Wired:
    events: list[ev.Event] = []
    manager = PeerManager(
        feed=events.append,
        rendition="v0",
        live=False,
        first_sequence=0,
        local_peer_id="aa" * 20,
        rtc_config={},
    )
    link = FakeLink()
    manager._peers[PEER] = _PeerState(link=link, protocol=PeerProtocol(max_segment_size=10_000))  # type: ignore[arg-type]
    return Wired(manager=manager, link=link, events=events)


async def test_a_request_goes_out_and_its_answer_comes_back_as_core_events() -> None:
    w = wired()
    segment = SegmentId("v0", 4)
    w.manager.perform(act.RequestFromPeer(request_id=9, peer_id=PEER, segment_id=segment, byte_offset=2))
    assert w.link.commands() == [wire.SegmentRequest(segment_id=4, request_id=9, byte_offset=2)]
    w.receive(wire.SegmentData(segment_id=4, request_id=9, size=3))
    w.receive_raw(b"abc")
    w.receive(wire.SegmentDataSendingCompleted(segment_id=4, request_id=9))
    assert w.events == [
        ev.PeerResponseStarted(request_id=9, total_bytes=5),
        ev.PeerChunkReceived(request_id=9, data=b"abc"),
    ]
    w.receive(wire.SegmentsAnnouncement(loaded=(1, 2), loading_by_http=(3,)))
    assert w.events[-1] == ev.PeerAnnounced(
        peer_id=PEER,
        loaded=frozenset({SegmentId("v0", 1), SegmentId("v0", 2)}),
        loading_by_http=frozenset({SegmentId("v0", 3)}),
    )
    assert not w.link.closing and w.manager.statistics().protocol_errors == 0


async def test_a_violation_fails_the_outstanding_request_and_closes_the_link() -> None:
    w = wired()
    w.manager.perform(act.RequestFromPeer(request_id=9, peer_id=PEER, segment_id=SegmentId("v0", 4)))
    w.receive(wire.SegmentData(segment_id=4, request_id=8, size=3))
    assert w.events == [
        ev.PeerDownloadFailed(request_id=9, reason="data header does not match our request", misbehaved=True)
    ]
    assert w.link.closing and w.manager.statistics().protocol_errors == 1
    assert w.manager._peers[PEER].close_reason == "protocol violation: data header does not match our request"
    w.receive_raw(b"more")  # a closing link's messages are ignored: one incident, one report
    assert len(w.events) == 1 and w.misbehaved == []


async def test_bytes_after_our_cancel_beyond_what_was_announced_are_reported() -> None:
    w = wired()
    segment = SegmentId("v0", 4)
    w.manager.perform(act.RequestFromPeer(request_id=9, peer_id=PEER, segment_id=segment))
    w.receive(wire.SegmentData(segment_id=4, request_id=9, size=100))
    w.receive_raw(b"x" * 40)
    w.manager.perform(act.CancelPeerDownload(request_id=9, peer_id=PEER, segment_id=segment))
    assert w.link.commands()[-1] == wire.CancelSegmentRequest(segment_id=4, request_id=9)
    w.receive_raw(b"x" * 60)  # in flight: dropped quietly
    assert w.misbehaved == [] and not w.link.closing
    w.receive_raw(b"x")
    assert w.misbehaved == ["kept sending data after we cancelled the request"] and w.link.closing


async def test_the_flood_guard_runs_on_the_loops_clock() -> None:
    w = wired()
    (message,) = wire.encode_command(wire.SegmentsAnnouncement(loaded=(1,)))
    # 400 at once pass (the burst); 1,000 within a few milliseconds of loop time do not.
    for _ in range(1000):
        w.receive_raw(message)
        if w.link.closing:
            break
    assert w.misbehaved == ["flooded us with commands"]
    assert sum(isinstance(e, ev.PeerAnnounced) for e in w.events) >= 400


async def test_an_upload_is_a_header_chunks_and_a_completion() -> None:
    w = wired()
    w.manager._peers[PEER].protocol.max_message_size = 1000
    data = bytes(range(256)) * 10
    w.manager.perform(
        act.SendSegmentToPeer(
            peer_id=PEER,
            segment_id=SegmentId("v0", 4),
            data=data,
            byte_offset=0,
            total_bytes=len(data),
            peer_request_id=5,
        )
    )
    upload = w.manager._peers[PEER].upload
    assert upload is not None
    await upload
    items = w.link.commands()
    assert items[0] == wire.SegmentData(segment_id=4, request_id=5, size=len(data))
    assert items[-1] == wire.SegmentDataSendingCompleted(segment_id=4, request_id=5)
    chunks = [item.data for item in items[1:-1] if isinstance(item, wire.DataChunk)]
    assert b"".join(chunks) == data and max(map(len, chunks)) == 1000
    assert w.events[-1] == ev.UploadFinished(peer_id=PEER, peer_request_id=5, sent_bytes=len(data))


async def test_a_request_from_the_peer_stops_our_upload_to_it() -> None:
    w = wired()
    data = b"x" * 100
    w.manager._uplink_turn = asyncio.Lock()
    await w.manager._uplink_turn.acquire()  # the uplink is busy: the upload waits for its turn
    w.manager.perform(
        act.SendSegmentToPeer(
            peer_id=PEER,
            segment_id=SegmentId("v0", 4),
            data=data,
            byte_offset=0,
            total_bytes=100,
            peer_request_id=5,
        )
    )
    task = w.manager._peers[PEER].upload
    assert task is not None
    await asyncio.sleep(0)  # one loop turn: the task starts and waits for the uplink
    w.receive(wire.SegmentRequest(segment_id=6, request_id=6))
    assert w.manager._peers[PEER].upload is None
    with pytest.raises(asyncio.CancelledError):
        await task
    assert w.events[0] == ev.PeerRequestedSegment(
        peer_id=PEER, segment_id=SegmentId("v0", 6), byte_offset=0, peer_request_id=6
    )
    assert ev.UploadFinished(peer_id=PEER, peer_request_id=5, sent_bytes=0) in w.events
    assert w.link.sent == []  # not even its header went out


async def turns(count: int = 5) -> None:
    """Let the upload task run until it waits for something (no time passes)."""
    for _ in range(count):
        await asyncio.sleep(0)


def growing_upload(w: Wired, first: bytes, total: int) -> None:
    w.manager.perform(
        act.SendSegmentToPeer(
            peer_id=PEER,
            segment_id=SegmentId("v0", 4),
            data=first,
            byte_offset=0,
            total_bytes=total,
            peer_request_id=5,
            growing=True,
        )
    )


async def test_a_growing_upload_sends_bytes_as_they_come() -> None:
    w = wired()
    growing_upload(w, b"a" * 10, 30)
    await turns()
    assert w.link.commands() == [
        wire.SegmentData(segment_id=4, request_id=5, size=30),
        wire.DataChunk(data=b"a" * 10),
    ]
    w.manager.perform(
        act.ExtendUpload(peer_id=PEER, segment_id=SegmentId("v0", 4), data=b"b" * 25, peer_request_id=5)
    )
    await turns()
    assert w.link.commands()[2:] == [
        wire.DataChunk(data=b"b" * 20),  # never past the announced size
        wire.SegmentDataSendingCompleted(segment_id=4, request_id=5),
    ]
    assert w.events[-1] == ev.UploadFinished(peer_id=PEER, peer_request_id=5, sent_bytes=30)


async def test_an_aborted_growing_upload_ends_with_absent() -> None:
    w = wired()
    growing_upload(w, b"a" * 10, 30)
    await turns()
    task = w.manager._peers[PEER].upload
    assert task is not None
    w.manager.perform(act.AbortUpload(peer_id=PEER, segment_id=SegmentId("v0", 4), peer_request_id=5))
    assert w.link.commands()[-1] == wire.SegmentAbsent(segment_id=4, request_id=5)
    await turns()
    assert task.cancelled() and w.manager._peers[PEER].upload is None
    assert w.events[-1] == ev.UploadFinished(peer_id=PEER, peer_request_id=5, sent_bytes=0)
