"""The shared uplink queue (p2ploader.sim.uplink): our uploads fill it, our own traffic (HTTP
requests and acknowledgements, peer messages) waits in it, and the upload control keeps it short."""

from __future__ import annotations

import random

import pytest

from p2ploader.config import LoaderConfig
from p2ploader.core import actions as act
from p2ploader.core import events as ev
from p2ploader.core.retries import FetchRetryPolicy
from p2ploader.core.segments import SegmentId
from p2ploader.core.upload_control import UploadController
from p2ploader.errors import ConfigError
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
from p2ploader.sim.run import run_scenario
from p2ploader.sim.scenario import Scenario
from p2ploader.sim.uplink import (
    INITIAL_WINDOW,
    LOSS_BASED_FILL,
    P2P_WIRE_SHARE,
    Uplink,
    tcp_transfer_seconds,
)

MBIT = 125_000.0  # bytes/s
SEGMENT = SegmentId("v0", 7)


# ---------------------------------------------------------------- TCP transfers


def test_without_a_round_trip_a_transfer_takes_its_size_over_the_rate() -> None:
    assert tcp_transfer_seconds(400_000, 3.75e6, 0.0) == pytest.approx(400_000 / 3.75e6)


def test_a_transfer_grows_its_window_once_per_round_trip() -> None:
    # 406 kB at 30 Mbit/s behind 75 ms of queue: windows of 10, 20, 40 and 80 segments take one
    # round trip each (the window stays under rate x rtt), the rest goes at the rate.
    sent = INITIAL_WINDOW * (1 + 2 + 4 + 8)
    expected = 4 * 0.075 + (406_000 - sent) / 3.75e6
    assert tcp_transfer_seconds(406_000, 3.75e6, 0.075) == pytest.approx(expected)
    assert tcp_transfer_seconds(406_000, 3.75e6, 0.75) > 3.0  # a 1 s queue: seconds, not 0.1 s


def test_a_window_as_large_as_the_rate_times_the_round_trip_sends_at_the_rate() -> None:
    assert tcp_transfer_seconds(10e6, 1e6, 0.001) == pytest.approx(10.0, rel=1e-3)


# ---------------------------------------------------------------- the queue


def test_a_loss_based_upload_fills_the_queue_to_its_sawtooth_and_it_drains_after() -> None:
    uplink = Uplink(rate=MBIT, queue_seconds=1.0)
    handed = uplink.send(500_000, now=0.0, rate=None)
    assert handed == pytest.approx(500_000 / P2P_WIRE_SHARE / MBIT)  # the link's rate, headers counted
    assert uplink.delay(0.0) == 0.0
    assert uplink.delay(0.3) == pytest.approx(0.3)  # slow start: the queue grows at the link's rate
    assert uplink.delay(2.0) == pytest.approx(LOSS_BASED_FILL)
    assert uplink.delay(handed + 0.25) == pytest.approx(LOSS_BASED_FILL - 0.25)  # drains after
    assert uplink.delay(handed + LOSS_BASED_FILL) == 0.0


def test_an_upload_paced_below_the_link_queues_nothing() -> None:
    uplink = Uplink(rate=MBIT, queue_seconds=1.0)
    handed = uplink.send(100_000, now=0.0, rate=uplink.payload_rate / 2)
    assert [uplink.delay(t) for t in (0.0, handed / 2, handed)] == [0.0, 0.0, 0.0]


def test_a_sender_faster_than_the_link_is_held_to_the_queues_length() -> None:
    uplink = Uplink(rate=MBIT, queue_seconds=0.1)
    handed = uplink.send(1_000_000, now=0.0, rate=uplink.payload_rate * 2)
    assert handed == pytest.approx(1_000_000 / uplink.payload_rate)  # what gets through: the link's rate
    assert uplink.delay(5.0) == pytest.approx(0.1)  # what arrives at a full queue is dropped


# ---------------------------------------------------------------- peers behind the queue


class Trio:
    """``up`` uploads to ``down`` over a 1 Mbit/s uplink with a 1 s queue, and asks ``other`` for a
    segment; what each was fed, and when."""

    def __init__(
        self, *, queue: float, control: bool = False, upload_cap: float | None = None, loss: float = 0.0
    ) -> None:
        self.upload_cap = upload_cap
        self.loop = VirtualLoop()
        self.network = PeerNetwork(self.loop, random.Random(1))
        self.fed: dict[str, list[tuple[float, ev.Event]]] = {}
        self.uplink = (
            Uplink(rate=MBIT, queue_seconds=queue, controller=UploadController() if control else None)
            if queue
            else None
        )
        self.up = self._peer(
            "up", LinkProfile(down=10e6, up=MBIT, latency=0.0, jitter=0.0, loss=loss), self.uplink
        )
        self.down = self._peer("down", LinkProfile(down=10e6, up=MBIT, latency=0.0, jitter=0.0), None)
        self.other = self._peer("other", LinkProfile(down=10e6, up=MBIT, latency=0.0, jitter=0.0), None)
        self.network.connect(self.up, self.down)
        self.network.connect(self.up, self.other)

    def _peer(self, name: str, link: LinkProfile, uplink: Uplink | None) -> ModelledPeers:
        self.fed[name] = []
        peers = ModelledPeers(
            upload_cap=self.upload_cap if name == "up" else None,
            peer_id=name,
            swarm="v0",
            network=self.network,
            link=link,
            feed=lambda event: self.fed[name].append((self.loop.time(), event)),
            uplink=uplink,
        )
        self.network.register(peers)
        return peers

    def upload(self, size: int) -> None:
        """``down`` asks ``up`` for SEGMENT, and ``up`` sends it ``size`` bytes."""
        self.down.perform(act.RequestFromPeer(request_id=1, peer_id="up", segment_id=SEGMENT))
        self.loop.run_until(self.loop.time() + 0.01)
        self.up.perform(
            act.SendSegmentToPeer(
                peer_id="down",
                segment_id=SEGMENT,
                data=bytes(size),
                byte_offset=0,
                total_bytes=size,
                peer_request_id=1,
            )
        )

    def ask_other(self) -> float:
        """``up`` asks ``other`` for a segment now; returns when the request reached it."""
        self.up.perform(act.RequestFromPeer(request_id=9, peer_id="other", segment_id=SegmentId("v0", 8)))
        self.loop.run_until(self.loop.time() + 5.0)
        [arrived] = [t for t, e in self.fed["other"] if isinstance(e, ev.PeerRequestedSegment)]
        return arrived

    def received(self) -> int:
        return sum(len(e.data) for _, e in self.fed["down"] if isinstance(e, ev.PeerChunkReceived))


@pytest.mark.parametrize("loss", [0.0, 0.01])
@pytest.mark.parametrize("queue", [0.0, 1.0])
def test_our_requests_wait_behind_our_uploads_in_the_uplinks_queue(queue: float, loss: float) -> None:
    # Loss lowers the goodput, not what a loss-based sender pushes: the queue fills as without it.
    trio = Trio(queue=queue, loss=loss)
    trio.upload(1_000_000)  # 8.7 s of the uplink
    trio.loop.run_until(3.0)
    asked_at = trio.loop.time()
    waited = trio.ask_other() - asked_at
    assert waited == pytest.approx(queue * LOSS_BASED_FILL)  # no queue modelled: no wait


def test_an_upload_held_below_the_link_by_the_upload_cap_queues_nothing() -> None:
    trio = Trio(queue=1.0, upload_cap=MBIT / 2)
    trio.upload(500_000)
    trio.loop.run_until(3.0)
    assert trio.uplink is not None and trio.uplink.delay(3.0) == 0.0
    assert trio.ask_other() == pytest.approx(3.0)  # nothing ahead of our request


def test_the_upload_control_keeps_the_queue_short_and_the_upload_going() -> None:
    delays = {}
    for control in (False, True):
        trio = Trio(queue=1.0, control=control)
        trio.upload(1_000_000)
        samples = []
        while trio.loop.time() < 8.0:
            trio.loop.run_until(trio.loop.time() + 0.1)
            if trio.loop.time() > 2.0:
                samples.append(trio.uplink.delay(trio.loop.time()))  # type: ignore[union-attr]
        delays[control] = sum(samples) / len(samples)
        trio.loop.run_until(60.0)
        assert trio.received() == 1_000_000  # the whole segment, controlled or not
    assert delays[False] == pytest.approx(LOSS_BASED_FILL)
    assert delays[True] < 0.1  # around the 50 ms target, not the 0.75 s a loss-based sender keeps
    assert trio.uplink is not None and trio.uplink.controller is not None
    assert trio.uplink.controller.statistics().cuts >= 1


# ---------------------------------------------------------------- HTTP behind the queue


def _fetch_times(uplink: Uplink | None) -> tuple[float, float]:
    """When the response of a 406 kB segment started and ended, fetched at t = 2 s over a
    30 Mbit/s downlink with no delay on the path, with ``uplink`` carrying an upload since 0."""
    loop = VirtualLoop()
    stream = SimStream(renditions=[Rendition(id="v0", bitrate=650_000)], segment_duration=5.0, live=False)
    fed: list[tuple[float, ev.Event]] = []
    http = ModelledHttp(
        loop=loop,
        origin=Origin(bandwidth=1e9, latency=0.0),
        stream=stream,
        link=LinkProfile(down=30 * MBIT, up=MBIT, latency=0.0, jitter=0.0),
        feed=lambda event: fed.append((loop.time(), event)),
        rng=random.Random(1),
        retry_policy=FetchRetryPolicy.from_config(LoaderConfig()),
        uplink=uplink,
    )
    if uplink is not None:
        uplink.send(2_000_000, now=0.0, rate=None)
    loop.call_at(2.0, http.start, act.StartHttpFetch(request_id=1, segment=stream.segment("v0", 0)))
    loop.run_until(30.0)
    [started] = [t for t, e in fed if isinstance(e, ev.HttpResponseStarted)]
    [completed] = [t for t, e in fed if isinstance(e, ev.HttpFetchCompleted)]
    return started, completed


def test_a_full_uplink_slows_our_own_http_download() -> None:
    idle_start, idle_end = _fetch_times(None)
    assert idle_start == 2.0 and idle_end == pytest.approx(2.0 + 406_250 / (30 * MBIT))
    start, end = _fetch_times(Uplink(rate=MBIT, queue_seconds=0.1))
    wait = 0.1 * LOSS_BASED_FILL
    assert start == pytest.approx(2.0 + wait)  # the request waited in the queue
    assert end - start > 3 * (idle_end - idle_start)  # every window waited for its acknowledgements
    long_start, long_end = _fetch_times(Uplink(rate=MBIT, queue_seconds=1.0))
    assert long_end - long_start > 3.0  # 1 s queues: seconds for a segment a 0.1 s fetch brings


# ---------------------------------------------------------------- scenarios


def test_by_default_no_uplink_queue_is_modelled() -> None:
    assert Scenario().uplink_queue_s == 0.0
    tiny = Scenario(viewers=3, duration_s=20.0, join_window_s=2.0, renditions_kbps=(650.0,))
    queued = tiny.evolve(uplink_queue_s=1.0, uplink_mbps=(0.8, 1.2))
    default = run_scenario(tiny.evolve(uplink_mbps=(0.8, 1.2)), trace=True)
    assert run_scenario(tiny.evolve(uplink_queue_s=0.0, uplink_mbps=(0.8, 1.2)), trace=True).trace_digest == (
        default.trace_digest
    )
    assert run_scenario(queued, trace=True).trace_digest != default.trace_digest


@pytest.mark.parametrize("bad", [-0.1, 61.0])
def test_an_uplink_queue_out_of_range_is_a_config_error(bad: float) -> None:
    with pytest.raises(ConfigError, match="uplink_queue_s"):
        Scenario(uplink_queue_s=bad)
