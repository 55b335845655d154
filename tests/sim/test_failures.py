"""The simulator's viewers run the shipped core's failure handling: an origin that fails attempts gets
them retried within the fetch, the fetch retried with back-off and given up, as the loader would
(p2ploader.core.retries, one policy for both), and a lying modelled peer is banned and then refused
(p2ploader.core.reputation). Virtual time: nothing sleeps."""

from __future__ import annotations

import itertools
import random
from collections import defaultdict

import pytest

from p2ploader.config import LoaderConfig
from p2ploader.core import actions as act
from p2ploader.core import events as ev
from p2ploader.core import notifications as nt
from p2ploader.core.retries import FetchRetryPolicy
from p2ploader.core.segments import SegmentId
from p2ploader.errors import UsageError
from p2ploader.sim.loop import VirtualLoop
from p2ploader.sim.model import (
    LinkProfile,
    ModelledHttp,
    ModelledPeers,
    Origin,
    PeerNetwork,
    Rendition,
    SimStream,
)
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


# One segment in the queue: only the segment the player waits for is fetched (no prefetch).
HTTP_ONLY = LoaderConfig(use_p2p=False, forward_segment_count=1, http_download_probability=0.0)


def failing_origin(loop: VirtualLoop, asked: dict[int, list[float]]) -> Origin:
    """Segment 2 fails its first two attempts, then is served; 4 is gone for good (404); 6 is down
    for good (503). ``asked`` gets the time of every attempt, per segment."""

    def failure(segment_id: SegmentId) -> int | None:
        n = segment_id.sequence
        asked[n].append(loop.time())
        if n == 2 and len(asked[n]) <= 2:
            return 503
        return {4: 404, 6: 503}.get(n)

    return Origin(bandwidth=50e6, latency=ORIGIN_LATENCY, failure=failure)


def eight_segments() -> SimStream:
    return SimStream(
        renditions=[Rendition(id="v0", bitrate=400_000)], segment_duration=2.0, live=False, vod_segments=8
    )


def gaps_within_backoffs(times: list[float], backoffs: list[float]) -> bool:
    """Each gap between consecutive GETs is one round trip plus its back-off, shortened by at
    most the shipped jitter's half; and the GETs are exactly as many as the back-offs say."""
    jitter = LoaderConfig().http_retry_jitter
    gaps = [b - a for a, b in itertools.pairwise(times)]
    return len(gaps) == len(backoffs) and all(
        RTT + (1 - jitter) * d - 1e-9 <= gap <= RTT + d + 1e-9 for gap, d in zip(gaps, backoffs, strict=True)
    )


def test_an_origin_failing_attempts_is_retried_within_the_fetch_then_between_fetches_with_the_defaults() -> (
    None
):
    loop = VirtualLoop()
    asked: dict[int, list[float]] = defaultdict(list)
    origin = failing_origin(loop, asked)
    assert (HTTP_ONLY.http_retries, HTTP_ONLY.http_retry_backoff) == (2, 0.5)
    v = viewer(loop, eight_segments(), origin, PeerNetwork(loop, random.Random(1)), HTTP_ONLY)
    loop.run_until(120.0)
    # Segment 2: its fetch's third attempt (0.5 s, then 1 s after a failed one) gets it; the fetch
    # never failed, so the scheduler saw no failure.
    assert gaps_within_backoffs(asked[2], [0.5, 1.0])
    failed = [f.segment_id.sequence for f in v.of(nt.SegmentLoadFailed)]  # type: ignore[attr-defined]
    assert 2 not in failed
    # Segment 4: a 404 ends the attempt, the fetch and the wait at once.
    assert len(asked[4]) == 1
    # Segment 6: three fetches of three attempts each; within a fetch 0.5 s and 1 s after a failed
    # attempt, between fetches 0.5 s and 1 s after a failed fetch (each shortened by the jitter).
    assert gaps_within_backoffs(asked[6], [0.5, 1.0, 0.5, 0.5, 1.0, 1.0, 0.5, 1.0])
    assert failed.count(6) == 3
    unavailable = v.of(nt.SegmentUnavailable)
    assert [(u.segment_id.sequence, u.reason) for u in unavailable] == [  # type: ignore[attr-defined]
        (4, "HTTP 404"),
        (6, "HTTP 503 (after 3 attempts)"),
    ]
    assert origin.failed_requests == 2 + 1 + 9
    assert v.segments_played == 6  # the player skipped the two it never got


def test_an_origin_failing_fetches_is_retried_with_backoff_and_given_up_as_shipped() -> None:
    # http_retries=0: each fetch is one attempt, so the origin's failures are whole fetches' and
    # the retry policy between fetches shows alone.
    loop = VirtualLoop()
    asked: dict[int, list[float]] = defaultdict(list)
    origin = failing_origin(loop, asked)
    config = HTTP_ONLY.evolve(http_retries=0)
    assert config.http_retry_backoff == 0.5
    v = viewer(loop, eight_segments(), origin, PeerNetwork(loop, random.Random(1)), config)
    loop.run_until(120.0)
    # Segment 2: fetched again 0.5 s after its first failure, then 1 s after its second (each
    # shortened by up to half by the shipped jitter).
    assert gaps_within_backoffs(asked[2], [0.5, 1.0])
    # Segment 4: a 404 ends the wait at once; segment 6: given up after three fetches.
    assert len(asked[4]) == 1 and len(asked[6]) == 3
    assert gaps_within_backoffs(asked[6], [0.5, 1.0])
    unavailable = v.of(nt.SegmentUnavailable)
    assert [(u.segment_id.sequence, u.reason) for u in unavailable] == [  # type: ignore[attr-defined]
        (4, "HTTP 404"),
        (6, "HTTP 503 (after 1 attempts)"),
    ]
    assert origin.failed_requests == 2 + 1 + 3
    assert v.segments_played == 6  # the player skipped the two it never got


def test_a_fault_model_answering_a_usable_status_is_a_usage_error() -> None:
    loop = VirtualLoop()
    origin = Origin(bandwidth=50e6, latency=ORIGIN_LATENCY, failure=lambda _segment: 200)
    with pytest.raises(UsageError, match=r"Origin\.failure returned 200: an error status"):
        viewer(loop, eight_segments(), origin, PeerNetwork(loop, random.Random(1)), HTTP_ONLY)  # asks at once
    assert origin.requests == 0 and origin.active == 0


def test_a_fetch_aborted_while_it_backs_off_asks_nothing_more_and_frees_the_origin() -> None:
    loop = VirtualLoop()
    origin = Origin(bandwidth=50e6, latency=ORIGIN_LATENCY, failure=lambda _segment: 503)
    fed: list[ev.Event] = []
    http = ModelledHttp(
        loop=loop,
        origin=origin,
        stream=eight_segments(),
        link=LINK,
        feed=fed.append,
        rng=random.Random(1),
        retry_policy=FetchRetryPolicy.from_config(HTTP_ONLY),
    )
    segment = eight_segments().segment("v0", 0)
    http.start(act.StartHttpFetch(request_id=7, segment=segment))
    assert origin.active == 1
    loop.run_until(RTT + 0.1)  # the first attempt failed; the second is due 0.5 s later
    assert (origin.requests, origin.active, fed) == (1, 0, [])
    http.abort(7)
    loop.run_until(10.0)
    assert (origin.requests, origin.active, fed) == (1, 0, [])


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


@pytest.mark.parametrize("http_error_retries", [None, 1, 2, 5], ids=["shipped-3", "1", "2", "5"])
def test_p2pml22_asks_a_failing_origin_as_often_as_http_error_retries_says(
    http_error_retries: int | None,
) -> None:
    """2.x's ``httpErrorRetries``: HTTP attempts per segment before the player's request is
    rejected. Counted once (the core's retry policy), not on top of ``http_retries``."""
    loop = VirtualLoop()
    asked: dict[int, list[float]] = defaultdict(list)
    origin = failing_origin(loop, asked)
    own = {} if http_error_retries is None else {"http_error_retries": http_error_retries}
    # Without jitter, so that the delays are exact (the shipped jitter is tested above).
    config = HTTP_ONLY.evolve(policy="p2pml-2.2", policy_settings={"p2pml-2.2": own}, http_retry_jitter=0.0)
    attempts = http_error_retries if http_error_retries is not None else 3
    v = viewer(loop, eight_segments(), origin, PeerNetwork(loop, random.Random(1)), config)
    loop.run_until(120.0)
    # Segment 6 is down for good: exactly that many GETs, http_retry_backoff (0.5 s) apart, doubled.
    start = asked[6][0]
    gaps = [sum(RTT + 0.5 * 2.0**k for k in range(n)) for n in range(attempts)]
    assert [t - start for t in asked[6]] == pytest.approx(gaps)
    # Segment 4 answers 404: one GET, whatever the setting (an unusable answer ends at once).
    assert len(asked[4]) == 1
    unavailable = v.of(nt.SegmentUnavailable)
    assert (6, f"HTTP 503 (after {attempts} attempts)") in [
        (u.segment_id.sequence, u.reason)  # type: ignore[attr-defined]
        for u in unavailable
    ]
