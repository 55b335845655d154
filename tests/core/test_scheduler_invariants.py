"""Hypothesis state machine: random players, peers, transfers and failures against the scheduler.

After every step: never two downloads of one segment, limits never exceeded, one request per peer,
an urgent segment never waits while an HTTP slot is free, and nothing arrives over P2P when no peer
ever connected. The machine runs once per reference policy; "urgent" is each policy's notion: for
0.6 a required segment (priority <= ``required_segments_priority``) while HTTP is allowed and it
has not failed recently, for 2.2 a high-demand segment whose HTTP retries are not exhausted.
"""

from __future__ import annotations

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from p2ploader.config import LoaderConfig
from p2ploader.core import events as ev
from p2ploader.core.policies import QueueEntry
from p2ploader.core.policies.p2pml22 import P2PML22Policy, P2PML22Settings
from p2ploader.testing.harness import SEGMENT_SIZE, Harness, sid

PEERS = ["A", "B", "C", "D"]
SEGMENTS = 24
segment_numbers = st.integers(min_value=0, max_value=SEGMENTS - 1)
segment_sets = st.frozensets(segment_numbers, max_size=8)


def machine_config(
    *, required: int, http_slots: int, p2p_slots: int, probability: float, ranges: bool, forward: int
) -> LoaderConfig:
    return LoaderConfig().evolve(
        required_segments_priority=required,
        simultaneous_http_downloads=http_slots,
        simultaneous_p2p_downloads=p2p_slots,
        http_download_probability=probability,
        http_download_ranges=ranges,
        forward_segment_count=forward,
        p2p_segment_download_timeout=3.0,
        http_failed_segment_timeout=2.0,
    )


class SchedulerMachine(RuleBasedStateMachine):
    """Runs the default policy, P2P Media Loader 0.6."""

    policy_name = "p2pml-0.6"

    def __init__(self) -> None:
        super().__init__()
        self.h: Harness | None = None
        self.ever_had_peers = False

    @rule(
        seed=st.integers(0, 2**16),
        required=st.integers(0, 4),
        http_slots=st.integers(1, 3),
        p2p_slots=st.integers(1, 3),
        probability=st.sampled_from([0.0, 0.1, 1.0]),
        ranges=st.booleans(),
        forward=st.integers(1, 12),
    )
    @precondition(lambda self: self.h is None)
    def start(
        self,
        seed: int,
        required: int,
        http_slots: int,
        p2p_slots: int,
        probability: float,
        ranges: bool,
        forward: int,
    ) -> None:
        cfg = machine_config(
            required=required,
            http_slots=http_slots,
            p2p_slots=p2p_slots,
            probability=probability,
            ranges=ranges,
            forward=forward,
        )
        self.h = Harness(cfg, seed=seed, segments=SEGMENTS)

    def _h(self) -> Harness:
        assert self.h is not None
        return self.h

    @precondition(lambda self: self.h is not None)
    @rule(n=segment_numbers)
    def player_requests(self, n: int) -> None:
        self._h().request(n)

    @precondition(lambda self: self.h is not None)
    @rule(n=segment_numbers, fraction=st.floats(0, 0.99))
    def playhead_moves(self, n: int, fraction: float) -> None:
        h = self._h()
        h.send(ev.PlaybackMoved(position=h.segments[n].start + fraction * h.segments[n].duration))

    @precondition(lambda self: self.h is not None)
    @rule(seconds=st.floats(0, 4))
    def time_passes(self, seconds: float) -> None:
        self._h().advance(seconds)

    @precondition(lambda self: self.h is not None)
    @rule(peer=st.sampled_from(PEERS), loaded=segment_sets, loading=segment_sets)
    def peer_connects_or_announces(self, peer: str, loaded: frozenset[int], loading: frozenset[int]) -> None:
        h = self._h()
        h.send(ev.PeerConnected(peer_id=peer))
        h.announce(peer, loaded, loading)
        self.ever_had_peers = True

    @precondition(lambda self: self.h is not None)
    @rule(peer=st.sampled_from(PEERS))
    def peer_leaves(self, peer: str) -> None:
        self._h().send(ev.PeerDisconnected(peer_id=peer))

    @precondition(lambda self: self.h is not None and bool(self.h.http_loading()))
    @rule(data=st.data(), outcome=st.sampled_from(["complete", "fail", "partial", "whole-on-resume"]))
    def http_transfer(self, data: st.DataObject, outcome: str) -> None:
        h = self._h()
        n = data.draw(st.sampled_from(sorted(h.http_loading())))
        start = next(a for a in reversed(h.http_starts()) if a.segment.id == sid(n))
        rid = start.request_id
        if outcome == "fail":
            h.send(ev.HttpFetchFailed(request_id=rid, reason="HTTP 503", status=503))
        elif outcome == "partial":
            h.send(ev.HttpResponseStarted(request_id=rid, offset=start.resume_from))
            h.send(ev.HttpChunkReceived(request_id=rid, data=b"h" * 10))
        else:
            offset = start.resume_from if outcome == "complete" else 0
            h.complete_http(rid, offset=offset)

    @precondition(lambda self: self.h is not None and bool(self.h.p2p_loading()))
    @rule(data=st.data(), outcome=st.sampled_from(["complete", "absent", "too-many", "header-only"]))
    def p2p_transfer(self, data: st.DataObject, outcome: str) -> None:
        h = self._h()
        n = data.draw(st.sampled_from(sorted(h.p2p_loading())))
        rid = h.p2p_request_for(n)
        if outcome == "complete":
            h.complete_p2p(rid)
        elif outcome == "absent":
            h.send(ev.PeerDownloadFailed(request_id=rid, reason="absent", absent=True))
        elif outcome == "too-many":
            h.send(ev.PeerResponseStarted(request_id=rid, total_bytes=10))
            h.send(ev.PeerChunkReceived(request_id=rid, data=b"x" * 11))
        else:
            h.send(ev.PeerResponseStarted(request_id=rid, total_bytes=SEGMENT_SIZE))

    @invariant()
    def never_two_downloads_of_one_segment(self) -> None:
        if self.h is None:
            return
        http, p2p = self.h.http_loading(), set(self.h.p2p_loading())
        assert not http & p2p
        cached = {s.sequence for s in self.h.scheduler.cache}
        assert not (http | p2p) & cached

    @invariant()
    def limits_hold(self) -> None:
        if self.h is None:
            return
        cfg = self.h.config
        assert len(self.h.http_loading()) <= cfg.simultaneous_http_downloads
        assert len(self.h.p2p_loading()) <= cfg.simultaneous_p2p_downloads
        peers = list(self.h.p2p_loading().values())
        assert len(peers) == len(set(peers)), "one outstanding request per peer"

    @invariant()
    def required_segments_never_wait_on_peers_while_http_is_free(self) -> None:
        if self.h is None or self.policy_name != "p2pml-0.6":
            return
        h = self.h
        sched = h.scheduler
        failed = sched._http_failed_until  # read-only peek at the books
        for entry in sched.queue:
            assert isinstance(entry, QueueEntry)
            if entry.priority > h.config.required_segments_priority:
                continue
            if entry.id in sched.cache or entry.id in sched.http_loading():
                continue
            if failed.get(entry.id, -1.0) > h.now:
                continue
            assert len(sched.http_loading()) == h.config.simultaneous_http_downloads, (
                f"required {entry.id} waits while an HTTP slot is free"
            )

    @invariant()
    def no_peers_means_all_http(self) -> None:
        if self.h is not None and not self.ever_had_peers:
            assert self.h.scheduler.statistics().p2p_bytes == 0
            assert self.h.p2p_loading() == {}

    @invariant()
    def high_demand_segments_never_wait_while_http_is_free(self) -> None:
        if self.h is None or self.policy_name != "p2pml-2.2":
            return
        h = self.h
        sched = h.scheduler
        policy = sched.policy
        assert isinstance(policy, P2PML22Policy)
        for entry in high_demand_2_2(h):
            if entry.id in sched.cache or entry.id in sched.http_loading():
                continue
            if policy.http_gave_up(entry.id, now=h.now):
                continue
            assert len(sched.http_loading()) == h.config.simultaneous_http_downloads, (
                f"high-demand {entry.id} waits while an HTTP slot is free"
            )


def high_demand_2_2(h: Harness) -> list[QueueEntry]:
    """The high-demand segments of 2.2.2's queue, computed independently of the policy's code."""
    sched = h.scheduler
    policy = sched.policy
    assert isinstance(policy, P2PML22Policy)
    s = policy.settings
    queue = list(sched.queue)
    if not queue:
        return []
    position = sched._position if sched._position is not None else queue[0].segment.start
    peers = sched._peers.values()  # read-only peek at the books

    def overlaps(entry: QueueEntry, window: float) -> bool:
        return entry.segment.start <= position + window * s.playback_rate and entry.segment.end >= position

    def flags(entry: QueueEntry) -> tuple[bool, bool]:
        known = any(entry.id in p.loaded or entry.id in p.loading_by_http for p in peers)
        high = overlaps(entry, s.high_demand_time_window)
        others = overlaps(entry, s.http_download_time_window) or (
            known and overlaps(entry, s.p2p_download_time_window)
        )
        return high, high or others

    out: list[QueueEntry] = []
    high0, any0 = flags(queue[0])
    if any0:
        if high0:
            out.append(queue[0])
        rest = queue[1:]
    else:  # just behind the playhead: urgent if the next segment has a flag
        if len(queue) < 2 or not flags(queue[1])[1]:
            return []
        out.append(queue[0])
        rest = queue[1:]
    for entry in rest:
        high, anything = flags(entry)
        if not anything:
            break
        if high:
            out.append(entry)
    return out


class SchedulerMachine22(SchedulerMachine):
    """The same machine with P2P Media Loader 2.2.2's time-window policy and varied windows."""

    policy_name = "p2pml-2.2"

    @rule(
        seed=st.integers(0, 2**16),
        http_slots=st.integers(1, 3),
        p2p_slots=st.integers(1, 3),
        ranges=st.booleans(),
        forward=st.integers(1, 12),
        high_demand=st.sampled_from([0.0, 3.0, 15.0]),
        http_window=st.sampled_from([0.0, 10.0, 3000.0]),
        p2p_window=st.sampled_from([0.0, 20.0, 6000.0]),
        retries=st.integers(1, 3),
        rate=st.sampled_from([1.0, 2.0]),
    )
    @precondition(lambda self: self.h is None)
    def start(
        self,
        seed: int,
        http_slots: int,
        p2p_slots: int,
        ranges: bool,
        forward: int,
        high_demand: float,
        http_window: float,
        p2p_window: float,
        retries: int,
        rate: float,
    ) -> None:
        cfg = machine_config(
            required=0,
            http_slots=http_slots,
            p2p_slots=p2p_slots,
            probability=0.0,
            ranges=ranges,
            forward=forward,
        )
        windows = P2PML22Settings(
            high_demand_time_window=high_demand,
            http_download_time_window=http_window,
            p2p_download_time_window=p2p_window,
            http_error_retries=retries,
            playback_rate=rate,
        )
        self.h = Harness(
            cfg, seed=seed, segments=SEGMENTS, policy=lambda c: P2PML22Policy(c, settings=windows)
        )


SchedulerMachine.TestCase.settings = settings(max_examples=150, stateful_step_count=40, deadline=None)
TestSchedulerInvariants = SchedulerMachine.TestCase
SchedulerMachine22.TestCase.settings = settings(max_examples=150, stateful_step_count=40, deadline=None)
TestSchedulerInvariantsP2PML22 = SchedulerMachine22.TestCase
