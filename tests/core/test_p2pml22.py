"""The scheduler with P2P Media Loader 2.2.2's time-window policy (``"p2pml-2.2"``).

Every test drives the clock by hand; none sleeps. Segments are 2 s long (segment n spans
``[2n, 2n + 2]``), so with the playhead at 0 the default 15 s high-demand window holds segments 0-7.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest

from p2ploader.config import LoaderConfig
from p2ploader.core import actions as act
from p2ploader.core import events as ev
from p2ploader.core import notifications as nt
from p2ploader.core.policies import DownloadPolicy, available_policies, create_policy
from p2ploader.core.policies.p2pml22 import FAILED_ATTEMPTS_CLEAR_INTERVAL, P2PML22Policy, P2PML22Settings
from p2ploader.core.retries import FetchRetryPolicy
from p2ploader.errors import ConfigError
from p2ploader.testing.harness import Harness, sid

POLICY = "p2pml-2.2"


def with_settings(**settings: Any) -> Callable[[LoaderConfig], DownloadPolicy]:
    """A Harness ``policy`` factory for a 2.2 policy with non-default settings."""
    return lambda cfg: P2PML22Policy(cfg, settings=P2PML22Settings(**settings))


def policy_of(h: Harness) -> P2PML22Policy:
    policy = h.scheduler.policy
    assert isinstance(policy, P2PML22Policy)
    return policy


def http_segments(h: Harness, actions: list[act.Action] | None = None) -> list[int]:
    return [a.segment.id.sequence for a in h.http_starts(actions)]


def aborted_http(h: Harness) -> set[int]:
    return {a.request_id for a in h.actions if isinstance(a, act.AbortHttpFetch)}


def fail_http(h: Harness, n: int) -> list[act.Action]:
    return h.send(ev.HttpFetchFailed(request_id=h.http_request_for(n), reason="HTTP 503", status=503))


# ---------------------------------------------------------------- registry and settings


def test_registered_by_name_with_default_settings() -> None:
    assert "p2pml-2.2" in available_policies()
    policy = create_policy(POLICY, LoaderConfig())
    assert isinstance(policy, P2PML22Policy)
    assert policy.settings == P2PML22Settings(
        high_demand_time_window=15,
        http_download_time_window=3000,
        p2p_download_time_window=6000,
        http_error_retries=3,
        playback_rate=1,
    )
    with pytest.raises(ConfigError, match=r"did you mean 'p2pml-2\.2'"):
        create_policy("p2pml-2.3", LoaderConfig())


@pytest.mark.parametrize(
    "bad",
    [
        {"high_demand_time_window": -1},
        {"p2p_download_time_window": float("nan")},
        {"http_error_retries": 0},
        {"playback_rate": 0},
    ],
)
def test_settings_are_validated(bad: dict[str, Any]) -> None:
    with pytest.raises((ValueError, TypeError)):
        P2PML22Settings(**bad)


# ---------------------------------------------------------------- high demand


def test_high_demand_goes_to_http_even_when_a_peer_has_it() -> None:
    h = Harness(policy=POLICY)
    h.connect("A", loaded=range(12))
    h.play_at(0)
    h.request(0)
    # Segments 0-7 are high-demand: the two HTTP slots take the nearest, although A has them all.
    assert h.http_loading() == {0, 1}
    # With HTTP full the next high-demand segment falls back to the peer.
    assert h.p2p_loading() == {2: "A"}


def test_high_demand_cuts_a_p2p_download_over_to_http_when_a_slot_frees() -> None:
    h = Harness(policy=POLICY)
    h.connect("A", loaded=range(12))
    h.play_at(0)
    h.request(0)
    p2p_rid = h.p2p_request_for(2)
    h.complete_http(h.http_request_for(0))
    # Segment 2 is high-demand and HTTP is free again: HTTP takes over, the peer request is cancelled.
    assert h.http_loading() == {1, 2}
    cancels = h.of_type(act.CancelPeerDownload)
    assert [c.request_id for c in cancels] == [p2p_rid]
    # A is idle again and has segment 3, also high-demand: it falls back to A.
    assert h.p2p_loading() == {3: "A"}


def test_high_demand_fallback_to_p2p_needs_a_peer_with_the_segment_loaded() -> None:
    h = Harness(policy=POLICY)
    h.connect("A", loading=range(12))  # announced as loading over HTTP only
    h.play_at(0)
    h.request(0)
    assert h.http_loading() == {0, 1}
    assert h.p2p_loading() == {}


def test_window_follows_the_playhead_and_the_playback_rate() -> None:
    h = Harness(policy=with_settings(high_demand_time_window=4), simultaneous_http_downloads=5)
    h.play_at(0)
    h.request(0)
    assert h.http_loading() == {0, 1, 2}  # [0, 4] overlaps segments 0, 1 and 2 (ends inclusive)
    h2 = Harness(
        policy=with_settings(high_demand_time_window=4, playback_rate=2), simultaneous_http_downloads=9
    )
    h2.play_at(0)
    h2.request(0)
    assert h2.http_loading() == {0, 1, 2, 3, 4}  # 4 s at 2x cover 8 s of media


# ---------------------------------------------------------------- P2P


def test_p2p_for_segments_outside_high_demand_that_a_peer_has() -> None:
    h = Harness(policy=POLICY)
    h.play_at(0)
    h.request(10)  # segment 10 starts at 20 s, outside the 15 s window: nothing is urgent
    assert h.http_loading() == set()
    h.connect("A", loaded=[12])
    h.connect("B", loaded=[15])
    assert h.p2p_loading() == {12: "A", 15: "B"}
    assert h.http_loading() == set()


def test_peer_choice_is_uniform_among_idle_peers_with_the_segment() -> None:
    chosen: Counter[str] = Counter()
    for seed in range(300):
        h = Harness(policy=POLICY, seed=seed)
        for peer in ("A", "B", "C"):
            h.connect(peer, loaded=[12])
        h.connect("D", loaded=[13], loading=[12])  # 12 only in `p`: never asked for it
        h.play_at(0)
        h.request(10)  # the first pass: 12 goes to one of A, B, C
        assert h.p2p_loading()[13] == "D"
        chosen[h.p2p_loading()[12]] += 1
    assert set(chosen) == {"A", "B", "C"}
    assert all(70 <= count <= 130 for count in chosen.values()), chosen


def test_http_loading_announcements_make_segments_p2p_downloadable() -> None:
    # HTTP window 30 s covers segments 0-15; segment 16 has no flag unless a peer knows it, and the
    # 2.2 queue ends at the first segment without flags.
    settings = with_settings(http_download_time_window=30, p2p_download_time_window=60)
    h = Harness(policy=settings)
    h.play_at(0)
    h.request(10)
    h.connect("A", loaded=[17])
    assert h.p2p_loading() == {}  # 16 ends the queue before 17
    h.announce("A", loaded=[17], loading=[16])  # `p` for 16: now P2P-downloadable
    assert h.p2p_loading() == {17: "A"}  # nobody has 16 loaded: nothing to ask for it


def test_http_loading_announcements_keep_segments_out_of_random_http() -> None:
    h = Harness(policy=POLICY, forward_segment_count=4)
    h.play_at(0)
    h.request(10)  # queue 10-13, none high-demand
    h.connect("A", loading=[10, 11, 12])
    h.advance(60)
    starts = http_segments(h)
    assert starts and set(starts) == {13}
    assert h.p2p_requests() == []


def test_slot_stealing_for_a_segment_a_peer_has_loaded() -> None:
    h = Harness(policy=POLICY, simultaneous_p2p_downloads=2)
    h.play_at(0)
    h.request(10)
    h.connect("A", loaded=[14])
    h.connect("B", loaded=[15])
    assert h.p2p_loading() == {14: "A", 15: "B"}
    rid_15 = h.p2p_request_for(15)
    # D announces 11 as loading over HTTP only: P2P-downloadable, but no slot is stolen for it.
    h.connect("D", loading=[11])
    assert h.p2p_loading() == {14: "A", 15: "B"}
    # C has 11 loaded: the last P2P download later in the queue (15) gives up its slot.
    h.connect("C", loaded=[11])
    assert h.p2p_loading() == {11: "C", 14: "A"}
    assert [c.request_id for c in h.of_type(act.CancelPeerDownload)] == [rid_15]
    # 15 waits: nothing later than it to steal from.
    h.advance(0.5)
    assert h.p2p_loading() == {11: "C", 14: "A"}


def test_high_demand_fallback_steals_the_last_later_p2p_slot() -> None:
    h = Harness(policy=POLICY, simultaneous_p2p_downloads=1, simultaneous_http_downloads=1)
    h.play_at(0)
    h.request(0)  # HTTP: 0; segments 1-7 are urgent too, but HTTP is full and no peer has them
    h.connect("A", loaded=[9])  # 9 is not urgent: a plain P2P prefetch
    assert h.p2p_loading() == {9: "A"}
    h.connect("B", loaded=[3])
    assert h.p2p_loading() == {3: "B"}
    assert h.http_loading() == {0}


def test_loads_that_leave_the_window_queue_are_cancelled() -> None:
    settings = with_settings(http_download_time_window=30, p2p_download_time_window=60)
    h = Harness(policy=settings)
    h.play_at(0)
    h.request(10)
    h.connect("A", loaded=[17], loading=[16])
    assert h.p2p_loading() == {17: "A"}
    h.announce("A", loaded=[17])  # 16 no longer known: the 2.2 queue ends before 17
    assert h.p2p_loading() == {}
    assert len(h.of_type(act.CancelPeerDownload)) == 1


# ---------------------------------------------------------------- random HTTP prefetch


def test_random_http_timer_delay_is_one_second_plus_up_to_one_per_peer() -> None:
    h = Harness(policy=POLICY)
    policy = policy_of(h)
    assert policy.get_timer() is None
    h.play_at(0)
    h.request(10)
    deltas = []
    for _ in range(5):
        tick = policy.get_timer()
        assert tick is not None
        h.advance(tick - h.now)
        next_tick = policy.get_timer()
        assert next_tick is not None
        deltas.append(next_tick - tick)
    assert deltas == [1.0] * 5  # no peers: exactly 1 s
    for peer in ("A", "B", "C"):
        h.connect(peer)
    deltas = []
    for _ in range(40):
        tick = policy.get_timer()
        assert tick is not None
        h.advance(tick - h.now)
        next_tick = policy.get_timer()
        assert next_tick is not None
        deltas.append(next_tick - tick)
    assert all(1.0 <= d <= 4.0 for d in deltas)
    assert len(set(deltas)) > 30 and max(deltas) > 3.0 and min(deltas) < 2.0


def test_no_random_http_without_peers() -> None:
    h = Harness(policy=POLICY)
    h.play_at(0)
    h.request(10)  # nothing high-demand
    h.advance(60)
    assert h.http_starts() == []
    h.connect("A")
    h.advance(3)
    assert h.http_starts() != []


def test_random_http_first_firing_replays_the_k_over_p_draw() -> None:
    # One peer: P = 2, K = min(20, 2 × 2) = 4, prob = 2 → the first two of the four nearest
    # candidates in random order start at once; no uniform draw is needed.
    for seed in range(20):
        h = Harness(policy=POLICY, seed=seed)
        h.connect("A")
        h.play_at(0)
        h.request(10)  # first pass: arms the timer (1 + u × 1 peer)
        mirror = random.Random(seed)
        tick = 1.0 + mirror.random() * 1
        assert policy_of(h).get_timer() == tick
        order = mirror.sample(range(4), 4)
        assert h.http_starts() == []
        actions = h.advance(tick + 1e-6 - h.now)
        assert http_segments(h, actions) == [10 + order[0], 10 + order[1]]


def test_random_http_fractional_probability_replays_the_seeded_draws() -> None:
    # Three peers and two candidates: P = 4, K = 2, prob = 0.5 → one uniform draw per firing.
    for seed in range(20):
        h = Harness(policy=POLICY, seed=seed, forward_segment_count=2, simultaneous_http_downloads=1)
        for peer in ("A", "B", "C"):
            h.connect(peer)
        h.play_at(0)
        h.request(10)
        mirror = random.Random(seed)
        tick = 1.0 + mirror.random() * 3
        while True:
            order = mirror.sample(range(2), 2)
            hit = mirror.random() <= 0.5
            actions = h.advance(tick + 1e-6 - h.now)
            if hit:
                assert http_segments(h, actions) == [10 + order[0]]
                break
            assert h.http_starts() == []
            tick += 1.0 + mirror.random() * 3


def test_random_http_starts_about_k_over_p_per_firing() -> None:
    # Three peers, one candidate: P = 4, K = 1, prob = 0.25.
    started = 0
    for seed in range(400):
        h = Harness(policy=POLICY, seed=seed, forward_segment_count=1)
        for peer in ("A", "B", "C"):
            h.connect(peer)
        h.play_at(0)
        h.request(10)
        tick = policy_of(h).get_timer()
        assert tick is not None
        started += len(h.http_starts(h.advance(tick + 1e-6 - h.now)))
    assert 70 <= started <= 130  # 400 × 0.25 = 100


def test_random_http_skips_segments_a_peer_has() -> None:
    h = Harness(policy=POLICY, forward_segment_count=4, simultaneous_p2p_downloads=1)
    h.play_at(0)
    h.request(10)
    h.connect("A", loaded=[10, 11, 12])
    assert h.p2p_loading() == {10: "A"}
    h.advance(30)  # A stays connected (no header timeout yet): 11 and 12 remain P2P-downloadable
    assert set(http_segments(h)) == {13}


# ---------------------------------------------------------------- failures and retries


def test_http_error_retries_sets_the_attempts_of_each_fetch_in_the_core() -> None:
    """One place counts 2.x's ``httpErrorRetries``: the core's retry policy within a fetch."""
    config = LoaderConfig(http_retries=7, http_retry_backoff=0.25)  # http_retries does not apply
    for retries in (1, 3, 5):
        h = Harness(config=config, policy=with_settings(http_error_retries=retries))
        assert h.scheduler.fetch_retry_policy == FetchRetryPolicy(
            retries=retries - 1, backoff=0.25, jitter=0.5
        )
    shipped = Harness(policy=POLICY).scheduler.fetch_retry_policy
    assert shipped.attempts == P2PML22Settings().http_error_retries == 3
    assert shipped.backoff == LoaderConfig().http_retry_backoff
    assert shipped.jitter == LoaderConfig().http_retry_jitter
    # Other policies keep the config's http_retries.
    assert Harness(config=config).scheduler.fetch_retry_policy == FetchRetryPolicy(
        retries=7, backoff=0.25, jitter=0.5
    )


def test_a_failed_fetch_rejects_the_request_and_is_left_alone_for_60_s() -> None:
    h = Harness(policy=with_settings(high_demand_time_window=3), http_failed_segment_timeout=10.0)
    h.play_at(0)
    h.request(0)
    assert h.http_loading() == {0, 1}  # [0, 3] holds segments 0 and 1
    h.advance(0.25)  # the failure at t = 0.25 is forgotten at 60.25
    fail_http(h, 0)  # the fetch's http_error_retries attempts are used up (a status error at once)
    assert policy_of(h).http_gave_up(sid(0), now=h.now)
    # 2.x rejects the player's request after httpErrorRetries attempts: one fetch's worth here.
    unavailable = h.of_type(nt.SegmentUnavailable)
    assert [(u.segment_id, u.reason) for u in unavailable] == [(sid(0), "HTTP 503")]
    assert h.http_loading() == {1}  # not fetched again: the attempts were the fetch's
    h.complete_http(h.http_request_for(1))
    assert h.http_loading() == set()
    # The failure is forgotten 60 s later; the scheduler wakes up for it.
    assert FAILED_ATTEMPTS_CLEAR_INTERVAL == 60.0
    h.advance(59.75)
    assert h.now == 60.0 and h.http_loading() == set() and http_segments(h).count(0) == 1
    assert policy_of(h).get_timer() == 60.25  # sooner than the next random-HTTP tick (61)
    h.advance(0.25)
    assert h.http_loading() == {0}
    assert not policy_of(h).http_gave_up(sid(0), now=h.now)


def test_a_failed_fetch_is_left_out_of_random_http() -> None:
    h = Harness(policy=POLICY, forward_segment_count=1)
    h.play_at(0)
    h.request(10)  # the only candidate, not urgent
    h.connect("A")
    while not h.http_loading():
        h.advance(0.5)
    fail_http(h, 10)
    last_failure = h.now
    h.advance(59)  # random HTTP keeps firing, but 10's fetch failed
    assert http_segments(h) == [10]
    while not h.http_loading():
        h.advance(0.5)
    assert http_segments(h) == [10, 10] and h.now >= last_failure + 60


def test_explicit_request_restarts_the_retries_and_takes_the_last_later_http_slot() -> None:
    h = Harness(policy=POLICY)
    h.play_at(0)
    h.request(0)
    fail_http(h, 0)
    assert h.http_loading() == {1, 2}  # 0 given up: its slot went to the next urgent segment
    rid_2 = h.http_request_for(2)
    h.request(0)  # the player asks again: the scheduler's failure count restarts
    assert h.http_loading() == {0, 1}
    assert rid_2 in aborted_http(h)  # the last HTTP download later in the queue made room


# ---------------------------------------------------------------- seeks


def test_a_seek_loads_the_pending_request_over_http() -> None:
    h = Harness(policy=POLICY)
    h.play_at(0)
    h.request(10)
    h.send(ev.PlaybackMoved(position=0.9))  # less than half a segment: not a seek
    assert h.http_loading() == set()
    h.send(ev.PlaybackMoved(position=4.0))  # a jump: the player's request (10, not urgent) goes to HTTP
    assert h.http_loading() == {10}
