"""Stress tests of the ``p2ploader-live`` policy in the simulator: it must never stall.

Each case is a small live swarm (30-60 viewers, 45 s to 3 simulated minutes, 5 s segments at
1.5 Mbit/s, 3 segments behind live unless said otherwise) under one kind of pressure: churn, slow
peers, a slow origin, a flash crowd. Each asserts zero stalls and zero rebuffering, and a P2P ratio
floor where one holds, set with margin below the measured figures (so that a policy that quietly fell
back to HTTP only would fail). Each runs here on the seeds that once found a bug (else on one seed);
``python benchmarks/live_stress.py --seeds 1 2 3 ...`` runs every case, with these same functions, on
as many seeds as wanted. The last test checks that a seed reproduces a run event for event.

A case the policy fails is to be marked ``xfail(strict=True)`` with the measured figures in its
reason, so that it fails as XPASS once fixed and the mark goes (none is marked now: the slow-origin
case was, until ``http_lead_factor`` became 2).

Every run goes through :class:`GuardedLoop`, which turns a livelock in virtual time (a timer
re-armed at the same instant forever, so the virtual clock never advances) into an exception within
about a second instead of a test that never ends.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from p2ploader.sim import PRESETS, Scenario, run_scenario
from p2ploader.sim import run as sim_run
from p2ploader.sim.loop import VirtualHandle, VirtualLoop
from p2ploader.sim.run import SimResult

LIVE = "p2ploader-live"
BITRATE_MBPS = 1.5


class Livelock(RuntimeError):
    """The virtual clock stopped advancing: callbacks keep being scheduled at one instant."""


class GuardedLoop(VirtualLoop):
    """A :class:`VirtualLoop` that raises :class:`Livelock` when more than ``BUDGET`` callbacks are
    scheduled within ``WINDOW`` seconds of virtual time (the runs here schedule at most about 60 in
    any millisecond)."""

    WINDOW = 1e-3
    BUDGET = 2_000

    def __init__(self, start: float = 0.0) -> None:
        super().__init__(start)
        self._window_start = start
        self._in_window = 0

    def call_at(self, when: float, callback: Callable[..., object], *args: Any) -> VirtualHandle:
        now = self.time()
        if now - self._window_start >= self.WINDOW:
            self._window_start, self._in_window = now, 0
        self._in_window += 1
        if self._in_window > self.BUDGET:
            raise Livelock(f"{self._in_window} callbacks scheduled within {self.WINDOW} s at t={now!r}")
        return super().call_at(when, callback, *args)


@pytest.fixture(autouse=True)
def _guarded_loop(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sim_run, "VirtualLoop", GuardedLoop)


BASE = Scenario(
    name="live-stress",
    policy=LIVE,
    viewers=40,
    duration_s=180.0,
    join_window_s=20.0,
    renditions_kbps=(BITRATE_MBPS * 1000,),
    uplink_mbps=(1.0, 20.0),
    latency_segments=3,
)

CHURN = BASE.evolve(name="live-stress-churn", churn_per_minute=0.2, duration_s=120.0)
"""20 % of the audience leaves (and is replaced) per minute, for 2 minutes. (It ran 4 minutes: a
critical window cut to 0.2 s, with ``http_lead_factor`` 1, stalls both runs, 18 and 16 times on seed
1; a 0.5 s one, or a disconnected peer's downloads never given up, neither.)"""

SLOW_PEERS = BASE.evolve(name="live-stress-slow-peers", uplink_mbps=(0.5, 2.0), duration_s=60.0)
"""Every uplink 0.5-2 Mbit/s for a 1.5 Mbit/s stream: 1.25 Mbit/s on average, less than a viewer
plays, for 1 minute. (It ran 2 minutes: the critical window cut as above stalls both runs, 331 and
137 times on seed 1.) The far-behind-live case below keeps its own 45 s."""

SLOW_PEERS_19 = SLOW_PEERS.evolve(name="live-stress-slow-peers-19", latency_segments=19, duration_s=45.0)
"""The same swarm 19 segments behind live (the hls.js engine's latency), for 45 s (short: it is the
slowest case to simulate, as every viewer fills a 30 s buffer from slow peers)."""

SLOW_ORIGIN_VIEWERS = 30
SLOW_ORIGIN = BASE.evolve(
    name="live-stress-slow-origin",
    viewers=SLOW_ORIGIN_VIEWERS,
    origin_mbps=1.1 * SLOW_ORIGIN_VIEWERS * BITRATE_MBPS,
    origin_latency_ms=300.0,
)
"""The origin's bandwidth 1.1 x what the audience plays (49.5 Mbit/s for 30 viewers), 300 ms away.
With P2P off this audience stalls (7, 14 and 1 times on seeds 1-3); with ``p2pml-0.6`` it does not."""

FLASH_VIEWERS = 60
FLASH_CROWD = PRESETS["flash-crowd"].evolve(viewers=FLASH_VIEWERS, policy=LIVE)
"""The ``flash-crowd`` preset with 60 viewers: all join within 10 s, 2 minutes."""


def run(scenario: Scenario, seed: int) -> SimResult:
    return run_scenario(scenario.evolve(seed=seed))


def assert_no_stall(result: SimResult) -> None:
    stalled = [v for v in result.viewers if v.stalls]
    assert (result.stalls, result.rebuffer_time) == (0, 0.0), (
        f"{result.stalls} stalls, {result.rebuffer_time:.2f} s rebuffering over {len(stalled)} viewers "
        f"(P2P ratio {result.p2p_ratio:.3f})"
    )


def assert_everybody_played(result: SimResult) -> None:
    """Every viewer still watching that joined at least 20 s before the end started playing."""
    end = result.scenario.duration_s
    watching = [v for v in result.viewers if v.left is None and v.joined <= end - 20.0]
    assert watching and all(v.startup_time is not None for v in watching)


# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", [1])
def test_churn_does_not_stall(seed: int) -> None:
    result = run(CHURN, seed)
    assert len(result.viewers) > CHURN.viewers + 10  # the churn happened: about 16 replacements
    assert_no_stall(result)
    assert_everybody_played(result)
    # Measured 0.875-0.891 over seeds 1-3 (0.873-0.900 over seeds 1-8 in 4 minutes; best 1 - 1/N =
    # 0.974).
    assert result.p2p_ratio >= 0.75


@pytest.mark.parametrize("seed", [1])
def test_slow_peers_do_not_stall(seed: int) -> None:
    result = run(SLOW_PEERS, seed)
    assert_no_stall(result)
    assert_everybody_played(result)
    # No P2P floor: 3 segments behind live, uplinks this slow share almost nothing (7.8-8.9 % P2P
    # over seeds 1-3): no viewer is fast enough to seed, and the critical window takes every
    # segment to HTTP first (reported on issue 6).


# Seeds 3 and 6 once hit a wake-up livelock at one instant. With a wake-up armed without the 1 ms
# tolerance (p2ploader/core/policies/live.py), seed 3 trips the GuardedLoop at 3.3 s of virtual
# time and seed 6 at 15.9 s: no break that seed 6 caught went past seed 3, so seed 3 runs here
# (benchmarks/live_stress.py runs the others).
@pytest.mark.parametrize("seed", [3])
def test_slow_peers_far_behind_live_do_not_stall(seed: int) -> None:
    result = run(SLOW_PEERS_19, seed)
    assert_no_stall(result)
    # Measured 0.129-0.233 over seeds 1, 2, 3 and 6 (best 0.97) with the 30 s P2P horizon, with the
    # origin sending 0.9-3.8 % less than when every viewer asked for its whole queue at once
    # (0.271-0.328 P2P then: the prefetched media counted as P2P bytes). In this 45 s run the whole
    # swarm is new and nobody holds the segments it starts with.
    assert result.p2p_ratio >= 0.10


@pytest.mark.parametrize("seed", [2])  # it stalled once with http_lead_factor 3
def test_slow_origin_does_not_stall(seed: int) -> None:
    result = run(SLOW_ORIGIN, seed)
    assert_no_stall(result)
    assert_everybody_played(result)
    # Measured 0.671-0.824 over seeds 1-8 (best 0.965). With http_lead_factor 3 (until it became
    # 2) seed 2 stalled once, and once links were capped at max_peers in the simulator seeds 4 and
    # 7 talked themselves into loading nearly everything over HTTP, and stalled.
    assert result.p2p_ratio >= 0.6


@pytest.mark.parametrize("seed", [1])
def test_flash_crowd_does_not_stall(seed: int) -> None:
    result = run(FLASH_CROWD, seed)
    assert FLASH_CROWD.join_window_s <= 10.0 and len(result.viewers) == FLASH_VIEWERS
    assert_no_stall(result)
    assert_everybody_played(result)
    # Measured 0.901-0.915 over seeds 1-8 (best 0.983).
    assert result.p2p_ratio >= 0.8


def test_same_seed_same_result() -> None:
    # Tracing hashes the repr of every event fed to every scheduler, payloads included (about 30 x
    # slower than a plain run): a small swarm with churn keeps it quick.
    scenario = CHURN.evolve(viewers=10, duration_s=45.0)
    first = run_scenario(scenario, trace=True)
    second = run_scenario(scenario, trace=True)
    assert len(first.viewers) > scenario.viewers  # viewers left and joined
    assert first.trace_digest is not None
    assert first.trace_digest == second.trace_digest
    assert first.summary() == second.summary()
    assert first.viewers == second.viewers
    other = run_scenario(scenario.evolve(seed=scenario.seed + 1), trace=True)
    assert other.trace_digest is not None and other.trace_digest != first.trace_digest
    assert other.viewers != first.viewers
