"""The simulator's peer links run the shipped protocol machine (PeerProtocol) over modelled links:
requests, chunked uploads at the link's rate, cancels, absences, growing uploads and violations
reach the other viewer's scheduler as they would over a data channel."""

from __future__ import annotations

import math
import random

import pytest

from p2ploader.core import actions as act
from p2ploader.core import events as ev
from p2ploader.core import wire
from p2ploader.core.cache import SegmentCache
from p2ploader.core.peer_set import GROWING_UPLOAD_PATIENCE
from p2ploader.core.segments import Segment, SegmentId
from p2ploader.sim.loop import VirtualLoop
from p2ploader.sim.model import (
    PIECE_SECONDS,
    LinkProfile,
    ModelledPeers,
    PeerNetwork,
)

SEGMENT = SegmentId("v0", 7)
NO_JITTER = {"latency": 0.01, "jitter": 0.0}
ONE_WAY = 0.02  # seconds: both ends' latency
CHUNK = wire.DEFAULT_MAX_MESSAGE_SIZE


class Swarm:
    """An uploader linked to receivers on one network, with what each was fed (and when)."""

    def __init__(self, *, up: float, down: float = 10e6, receivers: tuple[str, ...] = ("down",)) -> None:
        self.loop = VirtualLoop()
        self.network = PeerNetwork(self.loop, random.Random(1))
        self.fed: dict[str, list[tuple[float, ev.Event]]] = {"up": []}
        self.reassembled: list[SegmentId] = []
        self.uploader = self._peer("up", LinkProfile(down=10e6, up=up, **NO_JITTER))
        self.receivers = {
            name: self._peer(name, LinkProfile(down=down, up=1e6, **NO_JITTER)) for name in receivers
        }
        for receiver in self.receivers.values():
            self.network.connect(self.uploader, receiver)

    def _peer(self, name: str, link: LinkProfile) -> ModelledPeers:
        self.fed[name] = []
        peers = ModelledPeers(
            peer_id=name,
            swarm="v0",
            network=self.network,
            link=link,
            feed=lambda event: self.fed[name].append((self.loop.time(), event)),
            on_reassembled=self.reassembled.append,
        )
        self.network.register(peers)
        return peers

    @property
    def receiver(self) -> ModelledPeers:
        return self.receivers["down"]

    def request(self, *, request_id: int = 1, to: str = "down") -> float:
        """``to`` asks the uploader for SEGMENT; returns when the request reached the uploader (the
        loop then stands there)."""
        self.receivers[to].perform(
            act.RequestFromPeer(request_id=request_id, peer_id="up", segment_id=SEGMENT)
        )
        self.loop.run_until(self.loop.time() + ONE_WAY)
        [arrived] = [
            t
            for t, e in self.fed["up"]
            if isinstance(e, ev.PeerRequestedSegment) and e.peer_request_id == request_id and e.peer_id == to
        ]
        return arrived

    def upload(
        self, data: bytes, *, request_id: int = 1, to: str = "down", growing_to: int | None = None
    ) -> None:
        self.uploader.perform(
            act.SendSegmentToPeer(
                peer_id=to,
                segment_id=SEGMENT,
                data=data,
                byte_offset=0,
                total_bytes=len(data) if growing_to is None else growing_to,
                peer_request_id=request_id,
                growing=growing_to is not None,
            )
        )

    def events(self, name: str, kind: type) -> list[tuple[float, ev.Event]]:
        return [(t, e) for t, e in self.fed[name] if isinstance(e, kind)]

    def chunks(self, name: str = "down") -> list[tuple[float, bytes]]:
        return [(t, e.data) for t, e in self.events(name, ev.PeerChunkReceived)]  # type: ignore[attr-defined]

    def finished(self) -> list[ev.UploadFinished]:
        return [e for _, e in self.events("up", ev.UploadFinished)]  # type: ignore[misc]


def test_a_request_reaches_the_uploader_as_the_wire_carries_it() -> None:
    swarm = Swarm(up=1e6)
    arrived = swarm.request(request_id=5)
    assert arrived == pytest.approx(ONE_WAY)
    [(_, event)] = swarm.events("up", ev.PeerRequestedSegment)
    assert event == ev.PeerRequestedSegment(
        peer_id="down", segment_id=SEGMENT, byte_offset=0, peer_request_id=5
    )


def test_a_slow_upload_arrives_in_pieces_at_the_link_rate() -> None:
    data = bytes(range(256)) * 4000  # 1 024 000 bytes
    swarm = Swarm(up=250_000.0)  # 4.1 s of transfer
    start = swarm.request()
    swarm.upload(data)
    swarm.loop.run_until(60.0)

    [(header_at, header)] = swarm.events("down", ev.PeerResponseStarted)
    assert header_at == pytest.approx(start + ONE_WAY)
    assert header == ev.PeerResponseStarted(request_id=1, total_bytes=len(data))
    chunks = swarm.chunks()
    assert b"".join(piece for _, piece in chunks) == data
    # Bursts of whole data messages, each at least PIECE_SECONDS of the link's time.
    burst = math.ceil(250_000.0 * PIECE_SECONDS / CHUNK) * CHUNK
    full, rest = divmod(len(data), burst)
    assert [len(piece) for _, piece in chunks] == [burst] * full + [rest]
    # The last byte lands when the link could have carried them all, plus one-way latency.
    assert chunks[-1][0] == pytest.approx(start + len(data) / 250_000.0 + ONE_WAY)
    assert swarm.uploader.uploaded_bytes == len(data)
    assert [f.sent_bytes for f in swarm.finished()] == [len(data)]
    assert swarm.reassembled == [SEGMENT]
    assert "up" in swarm.receiver.neighbours  # no violation: the link stays


def test_a_fast_upload_arrives_in_one_piece() -> None:
    data = b"x" * 100_000  # two data messages, one burst
    swarm = Swarm(up=10e6)
    swarm.request()
    swarm.upload(data)
    swarm.loop.run_until(10.0)
    assert [piece for _, piece in swarm.chunks()] == [data]
    assert swarm.reassembled == []  # nothing was put together: the receiver holds the payload itself


def test_a_cancelled_upload_stops_and_counts_only_what_was_taken() -> None:
    data = b"y" * 1_000_000
    swarm = Swarm(up=200_000.0)  # bursts of 4 messages, 1.3 s each
    swarm.request()
    swarm.upload(data)
    swarm.loop.run_until(2.5)
    swarm.receiver.perform(act.CancelPeerDownload(request_id=1, peer_id="up", segment_id=SEGMENT))
    swarm.loop.run_until(60.0)

    chunks = swarm.chunks()
    assert all(t <= 2.5 for t, _ in chunks), "nothing reaches the scheduler after its cancel"
    delivered = sum(len(piece) for _, piece in chunks)
    assert 0 < delivered < len(data)
    # The burst already on the wire is dropped by the receiver's machine (discard after cancel),
    # and not counted as uploaded; the link survives it.
    assert swarm.uploader.uploaded_bytes == delivered
    assert len(swarm.finished()) == 1  # the upload's slot is freed exactly once
    assert [e.segment_id for _, e in swarm.events("up", ev.PeerCancelledUpload)] == [SEGMENT]  # type: ignore[attr-defined]
    assert "up" in swarm.receiver.neighbours
    assert swarm.reassembled == []


def test_a_cancelled_upload_frees_the_uplink_for_the_uploads_queued_behind_it() -> None:
    swarm = Swarm(up=200_000.0, receivers=("down", "other"))
    swarm.request(request_id=1, to="down")
    swarm.request(request_id=2, to="other")
    swarm.upload(b"1" * 1_000_000, request_id=1, to="down")  # 5 s of the uplink
    swarm.upload(b"2" * 200_000, request_id=2, to="other")  # queued behind it
    swarm.loop.run_until(2.5)
    swarm.receiver.perform(act.CancelPeerDownload(request_id=1, peer_id="up", segment_id=SEGMENT))
    swarm.loop.run_until(60.0)

    [(header_at, _)] = swarm.events("other", ev.PeerResponseStarted)
    assert header_at == pytest.approx(2.5 + 2 * ONE_WAY), "it starts the moment the first stops"
    other = swarm.chunks("other")
    assert b"".join(piece for _, piece in other) == b"2" * 200_000
    # After the burst already handed to the uplink (it ends at about 2.7 s), 1 s of transfer.
    assert other[-1][0] < 4.0  # instead of 6 s behind the whole first upload


def test_an_upload_cancelled_on_a_piece_delivers_nothing_more() -> None:
    # The receiver's scheduler may cancel a request on the very piece it receives (it moved the
    # download to another peer): no later piece may reach it.
    swarm = Swarm(up=200_000.0)
    receiver = swarm.receiver
    cancel = act.CancelPeerDownload(request_id=1, peer_id="up", segment_id=SEGMENT)

    def feed(event: ev.Event) -> None:
        swarm.fed["down"].append((swarm.loop.time(), event))
        if isinstance(event, ev.PeerChunkReceived):
            receiver.perform(cancel)

    receiver.feed = feed
    swarm.request()
    swarm.upload(b"y" * 1_000_000)
    swarm.loop.run_until(60.0)
    assert len(swarm.chunks()) == 1
    assert len(swarm.finished()) == 1
    assert "up" in swarm.receiver.neighbours


def test_a_departing_receiver_stops_the_upload() -> None:
    data = b"z" * 1_000_000
    swarm = Swarm(up=200_000.0)
    swarm.request()
    swarm.upload(data)
    swarm.loop.run_until(1.5)
    swarm.receiver.leave()
    swarm.loop.run_until(60.0)
    delivered = sum(len(piece) for _, piece in swarm.chunks())
    assert delivered == 4 * CHUNK  # the first burst, nothing after the departure
    assert swarm.uploader.uploaded_bytes == delivered
    assert len(swarm.finished()) == 1
    assert swarm.events("up", ev.PeerDisconnected)


def test_an_absent_answer_fails_the_request() -> None:
    swarm = Swarm(up=1e6)
    swarm.request(request_id=3)
    swarm.uploader.perform(act.SendSegmentAbsent(peer_id="down", segment_id=SEGMENT, peer_request_id=3))
    swarm.loop.run_until(10.0)
    [(_, failed)] = swarm.events("down", ev.PeerDownloadFailed)
    assert failed == ev.PeerDownloadFailed(request_id=3, reason="absent", absent=True)


def test_an_aborted_upload_stops_and_answers_absent() -> None:
    swarm = Swarm(up=100_000.0)
    swarm.request(request_id=3)
    swarm.upload(b"a" * 500_000, request_id=3)
    swarm.loop.run_until(2.0)
    swarm.uploader.perform(act.AbortUpload(peer_id="down", segment_id=SEGMENT, peer_request_id=3))
    swarm.loop.run_until(30.0)
    assert len(swarm.finished()) == 1
    assert [e.request_id for _, e in swarm.events("down", ev.PeerDownloadFailed)] == [3]  # type: ignore[attr-defined]
    assert sum(len(piece) for _, piece in swarm.chunks()) < 500_000


def test_a_growing_upload_sends_its_bytes_as_they_reach_the_uploader() -> None:
    swarm = Swarm(up=10e6)
    swarm.request()
    swarm.upload(b"g" * 100_000, growing_to=300_000)  # cut-through: the rest is still on its way
    swarm.loop.run_until(5.0)
    assert sum(len(piece) for _, piece in swarm.chunks()) == 100_000
    assert swarm.finished() == []  # it waits for the rest, holding its turn
    swarm.uploader.perform(
        act.ExtendUpload(peer_id="down", segment_id=SEGMENT, data=b"h" * 200_000, peer_request_id=1)
    )
    swarm.loop.run_until(10.0)
    chunks = swarm.chunks()
    assert b"".join(piece for _, piece in chunks) == b"g" * 100_000 + b"h" * 200_000
    assert chunks[-1][0] > 5.0
    assert [f.sent_bytes for f in swarm.finished()] == [300_000]
    assert "up" in swarm.receiver.neighbours


def test_a_growing_upload_that_starves_gives_up_its_turn() -> None:
    swarm = Swarm(up=10e6)
    swarm.request()
    swarm.upload(b"g" * 100_000, growing_to=300_000)
    swarm.loop.run_until(GROWING_UPLOAD_PATIENCE + 5.0)
    assert [f.sent_bytes for f in swarm.finished()] == [100_000]


def test_announcements_travel_as_wire_messages_of_our_swarm_only() -> None:
    swarm = Swarm(up=1e6)
    other_rendition = SegmentId("v1", 8)
    swarm.uploader.perform(
        act.AnnounceSegments(loaded=(SEGMENT, other_rendition), loading_by_http=(SegmentId("v0", 9),))
    )
    swarm.loop.run_until(1.0)
    [(at, announced)] = swarm.events("down", ev.PeerAnnounced)
    assert at == pytest.approx(ONE_WAY)
    assert announced == ev.PeerAnnounced(
        peer_id="up", loaded=frozenset({SEGMENT}), loading_by_http=frozenset({SegmentId("v0", 9)})
    )


def test_data_the_receiver_never_asked_for_is_a_violation_that_closes_the_link() -> None:
    # A header matching no request of the receiver: its machine reports a violation, and the link
    # closes on both sides (the scheduler loads the segment elsewhere).
    swarm = Swarm(up=1e6)
    swarm.upload(b"x" * 1000, request_id=9)
    swarm.loop.run_until(5.0)
    assert swarm.chunks() == []
    assert "up" not in swarm.receiver.neighbours
    assert swarm.events("down", ev.PeerDisconnected)
    assert swarm.events("up", ev.PeerDisconnected)


def test_a_violation_fails_the_outstanding_request_as_misbehaviour() -> None:
    swarm = Swarm(up=1e6)
    swarm.request(request_id=4)
    swarm.upload(b"x" * 1000, request_id=5)  # answers with the wrong request id
    swarm.loop.run_until(5.0)
    [(_, failed)] = swarm.events("down", ev.PeerDownloadFailed)
    assert failed.request_id == 4 and failed.misbehaved  # type: ignore[attr-defined]


def test_a_request_to_a_gone_peer_fails_at_once() -> None:
    swarm = Swarm(up=1e6)
    swarm.receiver.perform(act.RequestFromPeer(request_id=1, peer_id="nobody", segment_id=SEGMENT))
    swarm.loop.run_until(0.1)
    [(_, failed)] = swarm.events("down", ev.PeerDownloadFailed)
    assert failed == ev.PeerDownloadFailed(request_id=1, reason="peer gone")


def test_the_cache_swaps_equal_bytes_for_a_shared_payload() -> None:
    cache = SegmentCache()
    segment = Segment(id=SEGMENT, url="http://origin/7.ts", duration=5.0)
    shared = bytes(1000)
    cache.put(segment, bytes(bytearray(1000)), now=0.0)
    assert cache.get(SEGMENT, now=0.0).data is not shared  # type: ignore[union-attr]
    assert cache.share(SEGMENT, shared)
    assert cache.get(SEGMENT, now=1.0).data is shared  # type: ignore[union-attr]
    assert cache.share(SEGMENT, shared)  # already shared
    assert not cache.share(SEGMENT, b"\x01" * 1000)  # different bytes are never swapped in
    assert cache.get(SEGMENT, now=2.0).data is shared  # type: ignore[union-attr]
    assert not cache.share(SegmentId("v0", 8), shared)  # not cached
