"""The simulator's viewers run the shipped core's failure handling: an origin that fails fetches gets
them retried with back-off and given up as the loader would (p2ploader.core.retries), and a lying
modelled peer is banned and then refused (p2ploader.core.reputation). Virtual time: nothing sleeps."""

from __future__ import annotations

import random
from collections import defaultdict

import pytest

from p2ploader.config import LoaderConfig
from p2ploader.core import actions as act
from p2ploader.core import events as ev
from p2ploader.core import notifications as nt
from p2ploader.core.segments import SegmentId
from p2ploader.sim.loop import VirtualLoop
from p2ploader.sim.model import LinkProfile, ModelledPeers, Origin, PeerNetwork, Rendition, SimStream
from p2ploader.sim.viewer import SimViewer

LINK = LinkProfile(down=20e6, up=20e6, latency=0.01, jitter=0.0)
ORIGIN_LATENCY = 0.02
RTT = 2 * (LINK.latency + ORIGIN_LATENCY)  # seconds from a fetch's start to its failure


class RecordingViewer(SimViewer):
    """A simulated viewer that keeps every notification of its core, with the time."""

    notes: list[tuple[float, nt.Notification]]

    def _on_notification(self, notification: nt.Notification) -> None:
        if not hasattr(self, "notes"):
            self.notes = []
        self.notes.append((self._loop.time(), notification))
        super()._on_notification(notification)

    def of(self, kind: type[nt.Notification]) -> list[nt.Notification]:
        return [n for _, n in getattr(self, "notes", []) if isinstance(n, kind)]


def viewer(
    loop: VirtualLoop,
    stream: SimStream,
    origin: Origin,
    network: PeerNetwork,
    config: LoaderConfig,
    **options: bool,
) -> RecordingViewer:
    return RecordingViewer(
        peer_id="honest",
        loop=loop,
        stream=stream,
        origin=origin,
        network=network,
        config=config,
        policy=config.policy,
        link=LINK,
        rendition="v0",
        seed=1,
        live_distance=3,
        forward_buffer=4.0,
        startup_buffer=2.0,
        **options,
    )


def test_an_origin_failing_fetches_is_retried_with_backoff_and_given_up_as_shipped() -> None:
    loop = VirtualLoop()
    stream = SimStream(
        renditions=[Rendition(id="v0", bitrate=400_000)], segment_duration=2.0, live=False, vod_segments=8
    )
    asked: dict[int, list[float]] = defaultdict(list)

    def failure(segment_id: SegmentId) -> int | None:
        n = segment_id.sequence
        asked[n].append(loop.time())
        if n == 2 and len(asked[n]) <= 2:
            return 503  # twice, then served
        return {4: 404, 6: 503}.get(n)  # 4: gone for good; 6: down for good

    origin = Origin(bandwidth=50e6, latency=ORIGIN_LATENCY, failure=failure)
    # One segment in the queue: only the segment the player waits for is fetched (no prefetch).
    config = LoaderConfig(use_p2p=False, forward_segment_count=1, http_download_probability=0.0)
    assert config.http_retry_backoff == 0.5
    v = viewer(loop, stream, origin, PeerNetwork(loop, random.Random(1)), config)
    loop.run_until(120.0)
    # Segment 2: fetched again 0.5 s after its first failure, then 1 s after its second.
    first, second, third = asked[2]
    assert second - first == pytest.approx(RTT + 0.5) and third - second == pytest.approx(RTT + 1.0)
    # Segment 4: a 404 ends the wait at once; segment 6: given up after three fetches.
    assert len(asked[4]) == 1 and len(asked[6]) == 3
    assert asked[6][2] - asked[6][0] == pytest.approx(2 * RTT + 1.5)
    unavailable = v.of(nt.SegmentUnavailable)
    assert [(u.segment_id.sequence, u.reason) for u in unavailable] == [(4, "HTTP 404"), (6, "HTTP 503")]  # type: ignore[attr-defined]
    assert origin.failed_requests == 2 + 1 + 3
    assert v.segments_played == 6  # the player skipped the two it never got


class LyingPeer:
    """A modelled peer that announces every segment and answers each request with wrong bytes."""

    def __init__(self, network: PeerNetwork, stream: SimStream) -> None:
        self.stream = stream
        self.requests = 0
        self.peers = ModelledPeers(peer_id="liar", swarm="v0", network=network, link=LINK, feed=self.feed)
        self.peers.sends_stream_payloads = False
        network.register(self.peers)

    def feed(self, event: ev.Event) -> None:
        match event:
            case ev.PeerConnected():
                every = tuple(SegmentId("v0", n) for n in range(self.stream.vod_segments))
                self.peers.perform(
                    act.AnnounceSegments(loaded=every, loading_by_http=(), peer_id=event.peer_id)
                )
            case ev.PeerRequestedSegment():
                self.requests += 1
                size = len(self.stream.payload(event.segment_id))
                self.peers.perform(
                    act.SendSegmentToPeer(
                        peer_id=event.peer_id,
                        segment_id=event.segment_id,
                        data=b"\xff" * size,  # the stream's payloads are zeros
                        byte_offset=0,
                        total_bytes=size,
                        peer_request_id=event.peer_request_id,
                    )
                )
            case _:
                pass


def test_a_lying_modelled_peer_is_banned_by_the_core_and_refused_afterwards() -> None:
    loop = VirtualLoop()
    stream = SimStream(
        renditions=[Rendition(id="v0", bitrate=400_000)], segment_duration=2.0, live=False, vod_segments=10
    )
    network = PeerNetwork(loop, random.Random(1))
    origin = Origin(bandwidth=50e6, latency=ORIGIN_LATENCY)
    config = LoaderConfig(http_download_probability=0.0)
    v = viewer(loop, stream, origin, network, config, published_hashes=True)
    network.register(v.peers)
    liar = LyingPeer(network, stream)
    network.connect(v.peers, liar.peers)
    loop.run_until(60.0)
    (failed,) = v.of(nt.IntegrityCheckFailed)
    (banned,) = v.of(nt.PeerBanned)
    assert failed.peer_id == banned.peer_id == "liar" and failed.check == "sha256"  # type: ignore[attr-defined]
    assert banned.seconds == config.peer_ban_time  # type: ignore[attr-defined]
    assert "liar" not in v.peers.neighbours and liar.requests == 1  # dropped after its first lie
    network.connect(v.peers, liar.peers)  # a tracker introduces it again: refused
    assert "liar" not in v.peers.neighbours
    assert v.scheduler.is_banned("v0", "liar", now=loop.time())
    assert v.segments_played == 10  # the segment it lied about came over HTTP
    stats = v.scheduler.statistics()
    assert stats.p2p_bytes_rejected > 0 and stats.p2p_segments == 0
