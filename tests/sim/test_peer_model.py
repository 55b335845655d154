"""The simulator's peer links: uploads arrive in pieces, cancels stop them, and a segment put
together from pieces is swapped for the stream's shared payload."""

from __future__ import annotations

import itertools
import random

import pytest

from p2ploader.core import actions as act
from p2ploader.core import events as ev
from p2ploader.core.cache import SegmentCache
from p2ploader.core.segments import Segment, SegmentId
from p2ploader.sim.loop import VirtualLoop
from p2ploader.sim.model import PIECE_SECONDS, LinkProfile, ModelledPeers, PeerNetwork

SEGMENT = SegmentId("v0", 7)
NO_JITTER = {"latency": 0.01, "jitter": 0.0}


class Pair:
    """An uploader and a receiver linked on one network, with what each was fed (and when)."""

    def __init__(self, *, up: float, down: float = 10e6) -> None:
        self.loop = VirtualLoop()
        network = PeerNetwork(self.loop, random.Random(1))
        self.fed: dict[str, list[tuple[float, ev.Event]]] = {"up": [], "down": []}
        self.reassembled: list[SegmentId] = []

        def feeder(name: str):  # type: ignore[no-untyped-def]
            return lambda event: self.fed[name].append((self.loop.time(), event))

        self.uploader = ModelledPeers(
            peer_id="up",
            swarm="v0",
            network=network,
            link=LinkProfile(down=10e6, up=up, **NO_JITTER),
            feed=feeder("up"),
        )
        self.receiver = ModelledPeers(
            peer_id="down",
            swarm="v0",
            network=network,
            link=LinkProfile(down=down, up=1e6, **NO_JITTER),
            feed=feeder("down"),
            on_reassembled=self.reassembled.append,
        )
        for peers in (self.uploader, self.receiver):
            network.register(peers)
        network.connect(self.uploader, self.receiver)

    def upload(self, data: bytes, *, request_id: int = 1) -> None:
        self.uploader.perform(
            act.SendSegmentToPeer(
                peer_id="down",
                segment_id=SEGMENT,
                data=data,
                byte_offset=0,
                total_bytes=len(data),
                peer_request_id=request_id,
            )
        )

    def chunks(self) -> list[tuple[float, bytes]]:
        return [(t, e.data) for t, e in self.fed["down"] if isinstance(e, ev.PeerChunkReceived)]

    def finished(self) -> list[ev.UploadFinished]:
        return [e for _, e in self.fed["up"] if isinstance(e, ev.UploadFinished)]


def test_a_slow_upload_arrives_in_pieces_at_the_link_rate() -> None:
    data = bytes(range(256)) * 4000  # 1 024 000 bytes
    pair = Pair(up=250_000.0)  # 4.1 s of transfer
    pair.upload(data)
    pair.loop.run_until(60.0)

    chunks = pair.chunks()
    assert b"".join(piece for _, piece in chunks) == data
    assert len(chunks) == 5  # ceil(4.096 s / PIECE_SECONDS)
    gaps = [later - earlier for (earlier, _), (later, _) in itertools.pairwise(chunks)]
    assert max(gaps) <= PIECE_SECONDS
    # The last byte lands when the link could have carried them all, plus one-way latency.
    assert chunks[-1][0] == pytest.approx(len(data) / 250_000.0 + 0.02)
    assert pair.uploader.uploaded_bytes == len(data)
    assert [f.sent_bytes for f in pair.finished()] == [len(data)]
    assert pair.reassembled == [SEGMENT]


def test_a_fast_upload_arrives_in_one_piece() -> None:
    data = b"x" * 100_000
    pair = Pair(up=10e6)
    pair.upload(data)
    pair.loop.run_until(10.0)
    assert [piece for _, piece in pair.chunks()] == [data]
    assert pair.reassembled == []  # nothing was put together: the receiver holds the payload itself


def test_a_cancelled_upload_stops_and_counts_only_what_was_delivered() -> None:
    data = b"y" * 1_000_000
    pair = Pair(up=200_000.0)  # 5 s, five pieces of 200 kB
    pair.upload(data)
    pair.loop.run_until(2.5)
    pair.receiver.perform(act.CancelPeerDownload(request_id=1, peer_id="up", segment_id=SEGMENT))
    pair.loop.run_until(60.0)

    delivered = sum(len(piece) for _, piece in pair.chunks())
    assert delivered == 400_000  # the pieces due by 2.5 s, nothing after the cancel
    assert pair.uploader.uploaded_bytes == delivered
    assert len(pair.finished()) == 1  # the upload's slot is freed exactly once
    assert pair.reassembled == []


def test_a_cancelled_upload_frees_the_uplink_for_the_uploads_queued_behind_it() -> None:
    pair = Pair(up=200_000.0)
    pair.upload(b"1" * 1_000_000, request_id=1)  # 5 s of the uplink
    pair.upload(b"2" * 200_000, request_id=2)  # queued behind it: 5-6 s
    pair.loop.run_until(2.5)
    pair.receiver.perform(act.CancelPeerDownload(request_id=1, peer_id="up", segment_id=SEGMENT))
    pair.loop.run_until(60.0)

    headers = [(t, e.request_id) for t, e in pair.fed["down"] if isinstance(e, ev.PeerResponseStarted)]
    assert headers[-1] == (pytest.approx(2.5 + 0.02), 2), "it starts the moment the first stops"
    last_piece = max(
        t for t, e in pair.fed["down"] if isinstance(e, ev.PeerChunkReceived) and e.request_id == 2
    )
    assert last_piece == pytest.approx(2.5 + 1.0 + 0.02)
    assert pair.uploader.uploaded_bytes == 400_000 + 200_000


def test_an_upload_cancelled_on_a_piece_sends_nothing_more() -> None:
    # The receiver's scheduler may cancel a request on the very piece it receives (it moved the
    # download to another peer): no later piece may follow.
    pair = Pair(up=200_000.0)
    receiver = pair.receiver
    cancel = act.CancelPeerDownload(request_id=1, peer_id="up", segment_id=SEGMENT)

    def feed(event: ev.Event) -> None:
        pair.fed["down"].append((pair.loop.time(), event))
        if isinstance(event, ev.PeerChunkReceived):
            receiver.perform(cancel)

    receiver.feed = feed
    pair.upload(b"y" * 1_000_000)
    pair.loop.run_until(60.0)
    assert [len(piece) for _, piece in pair.chunks()] == [200_000]
    assert len(pair.finished()) == 1


def test_a_departing_receiver_stops_the_upload() -> None:
    data = b"z" * 1_000_000
    pair = Pair(up=200_000.0)
    pair.upload(data)
    pair.loop.run_until(1.5)
    pair.receiver.leave()
    pair.loop.run_until(60.0)
    assert sum(len(piece) for _, piece in pair.chunks()) == 200_000
    assert pair.uploader.uploaded_bytes == 200_000


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
