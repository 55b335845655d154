"""The ``p2ploader-live`` policy's peer choice and seeder rules, and the measurements they use,
driven through the real scheduler with an explicit clock."""

from __future__ import annotations

import math
import random

import pytest

from p2ploader.core import actions as act
from p2ploader.core import events as ev
from p2ploader.core.policies.live import LivePolicy, LivePolicySettings
from p2ploader.core.segments import SegmentId
from p2ploader.errors import PolicyError
from p2ploader.testing.harness import Harness, make_segments, sid


def live_harness(**overrides: object) -> Harness:
    h = Harness(policy="p2ploader-live", segments=30, **overrides)  # 2 s segments
    h.play_at(0)
    h.request(0)  # segments 0 and 1 start within slow_origin_lead_time (3 s): HTTP; the rest is P2P
    return h


def test_peer_throughput_is_measured_from_request_to_last_byte() -> None:
    h = live_harness()
    h.connect("A", loaded=[5])
    rid = h.p2p_request_for(5)
    h.advance(0.5)
    h.complete_p2p(rid, size=1000)
    ctx = h.scheduler._context
    assert ctx.peer_throughput("A") == 1000 / 0.5
    assert ctx.peer_throughput("B") is None  # unknown peer


def test_the_fastest_measured_peer_is_chosen_and_unmeasured_ones_are_tried_first() -> None:
    h = live_harness(simultaneous_p2p_downloads=1)
    # Two peers hold segments 5-7, one download at a time. Whichever is asked first serves slowly
    # (4 s); the other one is then tried, unmeasured, and serves fast; then the fast one is chosen.
    h.connect("A", loaded=[5, 6, 7])
    h.connect("B", loaded=[5, 6, 7])
    first = h.p2p_requests()[-1]
    h.advance(4.0)
    h.complete_p2p(first.request_id)
    second = h.p2p_requests()[-1]
    assert second.peer_id != first.peer_id, "an unmeasured peer counts as the fastest"
    h.advance(0.1)
    h.complete_p2p(second.request_id)
    third = h.p2p_requests()[-1]
    assert third.segment_id not in (first.segment_id, second.segment_id)
    assert third.peer_id == second.peer_id, "the faster of two measured peers is chosen"


def test_upload_speed_counts_media_seconds_per_second() -> None:
    h = live_harness()
    rid = h.http_request_for(0)
    h.complete_http(rid, size=1000)
    h.send(ev.PeerConnected(peer_id="C"))
    h.send(ev.PeerRequestedSegment(peer_id="C", segment_id=sid(0), byte_offset=0, peer_request_id=7))
    h.advance(0.5)
    h.send(ev.UploadFinished(peer_id="C", peer_request_id=7, sent_bytes=1000))
    assert h.scheduler._context.upload_speed == 2.0 / 0.5  # a 2 s segment left in 0.5 s


class _Ctx:
    """Just enough of a scheduling context for the election rule."""

    def __init__(self, upload_speed: float | None) -> None:
        self.upload_speed = upload_speed


def test_a_viewer_with_a_slow_uplink_does_not_volunteer_as_seeder() -> None:
    policy = LivePolicy(Harness().config, LivePolicySettings(seeder_min_upload_speed=2.0))
    assert policy._uplink_fit(_Ctx(None))  # type: ignore[arg-type]
    assert policy._uplink_fit(_Ctx(3.0))  # type: ignore[arg-type]
    assert not policy._uplink_fit(_Ctx(1.0))  # type: ignore[arg-type]
    off = LivePolicy(Harness().config, LivePolicySettings(seeder_min_upload_speed=0.0))
    assert off._uplink_fit(_Ctx(0.1))  # type: ignore[arg-type]


class _MeshCtx:
    """What the election reads: our id, the connected peers' ids, a random source."""

    def __init__(self, peer_id: str, peers: list[str]) -> None:
        self.peer_id = peer_id
        self._peers = sorted(peers)
        self.rng = random.Random(0)
        self.connected_peers = len(peers)

    def connected_peer_ids(self) -> list[str]:
        return self._peers


def _elected(policy: LivePolicy, ctx: _MeshCtx, segment: SegmentId) -> bool:
    rank, quota = policy.seeder_rank(segment, ctx, swarm=policy.swarm_estimate(ctx))  # type: ignore[arg-type]
    return rank < quota


@pytest.mark.parametrize("seeders", [1, 2])
def test_viewers_that_know_the_whole_swarm_agree_on_exactly_the_seeders(seeders: int) -> None:
    # Rendezvous hashing: ten viewers connected to each other rank every segment the same way, so
    # exactly `seeders` of them fetch it, with no message exchanged; the role rotates.
    ids = [f"viewer-{n}" for n in range(10)]
    config = Harness().config
    policies = {}
    for me in ids:
        policy = LivePolicy(config, LivePolicySettings(seeders_per_segment=seeders))
        policy.tracker_updated(incomplete=10, now=0.0)
        policies[me] = (policy, _MeshCtx(me, [p for p in ids if p != me]))
    counts = dict.fromkeys(ids, 0)
    for n in range(300):
        elected = [me for me, (policy, ctx) in policies.items() if _elected(policy, ctx, SegmentId("v0", n))]
        assert len(elected) == seeders, f"segment {n}: {elected}"
        for me in elected:
            counts[me] += 1
    assert all(10 <= c <= 60 * seeders for c in counts.values()), counts


def test_browser_peers_are_left_out_of_the_election() -> None:
    # Two p2ploader viewers and two P2P Media Loader browsers, all connected. The browsers fetch by
    # their own rules, so exactly one of the two p2ploader viewers is elected for each segment;
    # counting a browser first would leave the segment to the fallback timer.
    ours = [("-PY0001-" + f"{n:012d}").encode().hex() for n in range(2)]
    browsers = [("-PM0203-" + f"{n:012d}").encode().hex() for n in range(2)]
    assert all(LivePolicy.takes_part_in_elections(p) for p in ours)
    assert not any(LivePolicy.takes_part_in_elections(p) for p in browsers)
    config = Harness().config
    viewers = []
    for me in ours:
        policy = LivePolicy(config)
        policy.tracker_updated(incomplete=4, now=0.0)
        viewers.append((policy, _MeshCtx(me, [p for p in ours + browsers if p != me])))
    for n in range(200):
        elected = [_elected(policy, ctx, SegmentId("v0", n)) for policy, ctx in viewers]
        assert elected.count(True) == 1, n


def test_a_new_viewer_in_a_big_swarm_is_rarely_elected() -> None:
    # The election counts the neighbourhood a viewer will have (max_peers, bounded by the swarm),
    # not the two peers it happens to know right after joining.
    policy = LivePolicy(Harness().config)  # max_peers 20, neighbourhood share 2
    policy.tracker_updated(incomplete=200, now=0.0)
    ctx = _MeshCtx("newcomer", ["peer-a", "peer-b"])
    segments = [SegmentId("v0", n) for n in range(2000)]
    share = sum(_elected(policy, ctx, s) for s in segments) / len(segments)
    assert 0.07 < share < 0.12  # about 2 / 21, not 2 / 3


def test_an_unknown_swarm_is_not_taken_for_an_empty_one() -> None:
    # Before the tracker's first answer a viewer must not think itself alone: it would fetch every
    # new segment over HTTP while its future peers hold them.
    policy = LivePolicy(Harness().config)
    lonely = _MeshCtx("newcomer", [])
    assert policy.swarm_estimate(lonely) == 21  # type: ignore[arg-type]
    segments = [SegmentId("v0", n) for n in range(1000)]
    assert sum(_elected(policy, lonely, s) for s in segments) < 100  # about 1 / 21
    policy.tracker_updated(incomplete=1, now=0.0)  # the tracker says: alone indeed
    assert all(_elected(policy, lonely, s) for s in segments[:50])


def _segment_where_a_ranks_first(policy: LivePolicy) -> int:
    for n in range(8, 20):
        rank, quota = policy.seeder_rank(sid(n), _MeshCtx("me", ["A"]), swarm=2)  # type: ignore[arg-type]
        if rank >= quota:
            return n
    raise AssertionError("no such segment")


def _a_silent_elected_peer() -> tuple[Harness, int]:
    """Us and peer A, a swarm of two, playing from segment 0 (loaded). A loads every segment but
    one, n, for which A ranks first: A is elected to fetch it, and stays silent. No critical
    window, so that only the election decides what goes to HTTP."""
    settings = LivePolicySettings(http_lead_time=0.0)
    h = Harness(policy=lambda cfg: LivePolicy(cfg, settings), segments=30, peer_id="me")
    policy = h.scheduler.policy
    assert isinstance(policy, LivePolicy)
    n = _segment_where_a_ranks_first(policy)
    h.send(ev.TrackerUpdated(incomplete=2))
    h.connect("A", loading=[m for m in range(1, 30) if m != n])
    h.play_at(0)
    h.request(0)
    h.complete_http(h.http_request_for(0))
    return h, n


def _play_until(h: Harness, until: float, *, keep: int) -> None:
    """Advance in small steps, completing every HTTP download but segment ``keep``'s (the
    segments A only pretends to load turn critical as the playhead passes)."""
    while h.now < until - 1e-9:
        h.advance(min(0.1, until - h.now))
        for m in h.http_loading() - {keep}:
            h.complete_http(h.http_request_for(m))


def test_the_next_in_rank_fetches_a_segment_the_elected_seeder_does_not() -> None:
    h, n = _a_silent_elected_peer()
    assert n not in h.http_loading(), "A is elected for it: we wait"
    # Segment n (2 s segments) turns critical at 2n s (a little earlier: the window widens with
    # the measured HTTP time); the fallback gives a copy two segment durations to spread before
    # that, plus one fallback step (1 s) for our place in the ranking.
    due = 2 * n - 2 * 2 + 1
    _play_until(h, due - 0.5, keep=n)
    assert n not in h.http_loading()
    _play_until(h, due + 0.1, keep=n)
    assert n in h.http_loading(), "the fallback timer elects us"


def test_no_fallback_when_the_elected_seeder_starts() -> None:
    h, n = _a_silent_elected_peer()
    h.advance(1.0)
    h.announce("A", loading=range(1, 30))  # A reloaded its playlist and fetches it
    _play_until(h, 2 * n - 1, keep=n)
    assert n not in h.http_loading()


def _serve(h: Harness, peer: str, request_id: int, segment: int) -> act.Action:
    actions = h.send(
        ev.PeerRequestedSegment(
            peer_id=peer, segment_id=sid(segment), byte_offset=0, peer_request_id=request_id
        )
    )
    (answer,) = [a for a in actions if isinstance(a, act.SendSegmentToPeer | act.SendSegmentAbsent)]
    return answer


@pytest.mark.parametrize(
    ("seconds", "horizon", "served"),
    [
        (0.5, 6.0, True),  # fast: 4 media seconds per second
        (2.0, 6.0, False),  # slow (1 per second), and the segment is 4 segments from the live edge
        (2.0, 3.0, True),  # slow, but the segment is older than the horizon: the requester can wait
    ],
)
def test_a_slow_uploader_steps_aside_near_the_live_edge(seconds: float, horizon: float, served: bool) -> None:
    # One measured upload of a 2 s segment taking `seconds`, against uploader_min_speed 3; the
    # playlist ends at 60 s, segment 26 starts at 52 s. No probes in this test.
    settings = LivePolicySettings(slow_uploader_probe=0.0, slow_uploader_horizon=horizon)
    h = Harness(policy=lambda cfg: LivePolicy(cfg, settings), segments=30)
    h.play_at(26)
    h.request(26)
    h.complete_http(h.http_request_for(26))
    h.send(ev.PeerConnected(peer_id="C"))
    assert isinstance(_serve(h, "C", 1, 26), act.SendSegmentToPeer)  # not measured yet: served
    h.advance(seconds)
    h.send(ev.UploadFinished(peer_id="C", peer_request_id=1, sent_bytes=1000))
    answers = []
    for rid in range(2, 12):
        answers.append(_serve(h, "C", rid, 26))
        h.send(ev.UploadFinished(peer_id="C", peer_request_id=rid, sent_bytes=0))  # no measurement
    kinds = {type(a) for a in answers}
    assert kinds == ({act.SendSegmentToPeer} if served else {act.SendSegmentAbsent})


def test_the_critical_window_widens_when_the_origin_proves_slow() -> None:
    h = live_harness()
    h.connect("A", loading=range(2, 30))  # a peer loads them: nobody needs to volunteer as seeder
    first, second = h.http_request_for(0), h.http_request_for(1)
    h.advance(2.0)  # a slow origin: a 2 s segment takes 2 s
    h.complete_http(first)
    h.complete_http(second)
    assert h.scheduler._context.http_fetch_time == 1.0
    # The playhead is at 2 s. Segment 3 starts 4 s ahead: outside the slow origin's 3 s window, inside
    # 2 x 1.0 x 2 s = 4 s, so it goes to HTTP now rather than wait for a peer.
    assert h.http_loading() == {2, 3}


def test_a_fast_origin_narrows_the_critical_window_to_http_lead_time() -> None:
    h = live_harness()
    h.connect("A", loading=range(2, 30))
    first, second = h.http_request_for(0), h.http_request_for(1)
    h.advance(0.1)
    h.complete_http(first)
    h.complete_http(second)
    assert h.scheduler._context.http_fetch_time == pytest.approx(0.05)  # fast: the 1 s window
    # Segment 2 starts 3.9 s ahead of the playhead: not critical, nor at 2.9 s (inside the 3 s an
    # unmeasured origin gets). At 1.1 s ahead it is; segment 3 (3.1 s ahead) is not.
    assert h.http_loading() == set()
    h.advance(1.0)
    assert h.http_loading() == set()
    h.advance(1.9)
    assert h.http_loading() == {2}


def test_the_critical_window_is_narrow_only_with_an_origin_measured_fast() -> None:
    policy = LivePolicy(Harness().config)  # 1 s fast, 3 s slow or unmeasured, factor 2, fast <= 0.1
    assert policy.critical_window(None, 2.0) == 3.0
    assert policy.critical_window(0.05, 2.0) == 1.0
    assert policy.critical_window(0.2, 2.0) == 3.0  # slow: the wide floor
    assert policy.critical_window(1.0, 2.0) == 4.0  # slower still: twice the expected download time
    with pytest.raises(PolicyError, match="slow_origin_lead_time"):
        LivePolicySettings(slow_origin_lead_time=-1.0)


@pytest.mark.parametrize(("http_seconds", "segment_2_source"), [(0.05, "p2p"), (1.0, "http")])
def test_a_fast_origin_leaves_more_of_the_buffer_to_peers(http_seconds: float, segment_2_source: str) -> None:
    h = live_harness()
    assert h.http_loading() == {0, 1}, "unmeasured origin: 3 s of critical window"
    h.advance(http_seconds)
    h.complete_http(h.http_request_for(0))
    h.complete_http(h.http_request_for(1))
    h.advance(1.5 - http_seconds)  # the playhead moves on: segment 2 starts 2.5 s away
    h.connect("A", loaded=range(2, 30))
    source = "http" if 2 in h.http_loading() else "p2p" if 2 in h.p2p_loading() else None
    assert source == segment_2_source


def test_a_holder_that_was_busy_keeps_us_from_seeding_the_segment() -> None:
    # A swarm of two, us and A. We rank first for segment n, so we would fetch it over HTTP the
    # moment nobody held or loaded it. A holds it, and answers "absent" (busy) when we ask: it is
    # in the swarm and spreading, so we wait for A's next announcement or the critical window.
    # (Without cut-through, so that we do not ask A for the segments it is loading.)
    settings = LivePolicySettings(http_lead_time=0.0, slow_origin_lead_time=0.0, cut_through=False)
    h = Harness(policy=lambda cfg: LivePolicy(cfg, settings), segments=30, peer_id="me")
    policy = h.scheduler.policy
    assert isinstance(policy, LivePolicy)
    n = next(
        m
        for m in range(8, 20)
        if (lambda rq: rq[0] < rq[1])(policy.seeder_rank(sid(m), _MeshCtx("me", ["A"]), swarm=2))  # type: ignore[arg-type]
    )
    h.send(ev.TrackerUpdated(incomplete=2))
    others = [m for m in range(1, 30) if m != n]  # A loads the rest: nothing else to seed
    h.connect("A", loaded=[n], loading=others)
    h.play_at(0)
    h.request(0)
    h.complete_http(h.http_request_for(0))
    assert h.http_loading() == set()
    rid = h.p2p_request_for(n)
    h.send(ev.PeerDownloadFailed(request_id=rid, reason="absent", absent=True))
    assert n not in h.http_loading() and n not in h.p2p_loading()
    h.announce("A", loaded=[n], loading=others)  # a new announcement: asked again
    assert h.p2p_loading() == {n: "A"}


def _joiner_alone_in_its_swarm() -> Harness:
    """A viewer that joins a live stream (2 s segments, 0-9 published, the edge at 20 s) 5
    segments behind live; the tracker says it is alone, so it is elected for every new segment.
    Its critical segments (4, 5) came over HTTP."""
    h = Harness(policy="p2ploader-live", segments=10, peer_id="me")
    h.send(ev.TrackerUpdated(incomplete=1))
    h.play_at(4)
    h.request(4)
    assert h.http_loading() == {4, 5}, "within the critical window (3 s before the origin is measured)"
    h.complete_http(h.http_request_for(4))
    h.complete_http(h.http_request_for(5))
    assert h.http_loading() == set(), "6-9, the live edge's segment included, were published before"
    return h


def test_a_joiner_waits_for_its_peers_to_announce_the_segments_published_before_it_came() -> None:
    # The segments of a joiner's first playlist, the live edge's included, had their seeders before
    # it came: it gives the peers it is connecting to 2 s to announce them. A segment that appears
    # later is new, and fetched at once.
    h = _joiner_alone_in_its_swarm()
    h.advance(1.0)
    h.connect("A", loaded=[6, 7, 8, 9])
    h.advance(1.5)
    assert h.http_loading() == set() and set(h.p2p_loading()) <= {6, 7, 8, 9}
    live = make_segments(11)  # segment 10 is published
    h.segments = live
    h.send(ev.PlaylistUpdated(segments=live))
    assert h.http_loading() == {10}


def test_a_joiner_seeds_what_nobody_announced_within_the_grace_period() -> None:
    # A swarm that is itself new may not hold them: after 2 s with nobody announcing them, the
    # election applies as for any segment.
    h = _joiner_alone_in_its_swarm()
    h.advance(1.9)
    assert h.http_loading() == set()
    h.advance(0.2)
    assert h.http_loading() == {6, 7}, "two HTTP slots"


def _pace_harness(**settings: float) -> Harness:
    """10 s segments, playing from 0; peer A holds everything. Segment 0 comes over HTTP and
    segment 1 from A (one P2P download at a time); segment 1 enters the critical window at 9 s."""
    policy_settings = LivePolicySettings(slow_origin_lead_time=1.0, **settings)
    h = Harness(
        policy=lambda cfg: LivePolicy(cfg, policy_settings),
        peer_id="me",
        simultaneous_p2p_downloads=1,
        p2p_stall_timeout=100.0,  # slow, not stalled
    )
    h.segments = make_segments(30, duration=10.0)
    h.send(ev.PlaylistUpdated(segments=h.segments))
    h.connect("A", loaded=range(30))
    h.play_at(0)
    h.request(0)
    assert h.http_loading() == {0} and h.p2p_loading() == {1: "A"}
    h.connect("B", loaded=[1])  # idle, not measured yet
    h.send(ev.PeerResponseStarted(request_id=h.p2p_request_for(1), total_bytes=1000))
    return h


def test_a_download_behind_pace_moves_with_its_bytes_to_an_idle_holder() -> None:
    h = _pace_harness()
    first = h.p2p_request_for(1)
    h.advance(0.2)
    h.send(ev.PeerChunkReceived(request_id=first, data=b"a" * 10))  # 990 bytes to go at 50 B/s
    assert h.p2p_loading() == {1: "A"}, "judged after pace_patience (0.5 s)"
    h.advance(0.31)
    assert h.p2p_loading() == {1: "B"}
    assert any(isinstance(a, act.CancelPeerDownload) and a.request_id == first for a in h.actions)
    assert h.p2p_requests()[-1].byte_offset == 10
    assert not h.http_starts()[1:], "still P2P: the critical window is 8.5 s away"


def test_a_download_on_pace_stays_until_its_pace_shows_a_miss() -> None:
    h = _pace_harness()
    h.advance(0.2)
    h.send(ev.PeerChunkReceived(request_id=h.p2p_request_for(1), data=b"a" * 600))
    # On pace: 400 bytes to go. With no more bytes the pace shows a miss of the 9 s mark at
    # t = 9 * 600 / 1000 = 5.4 s (t + 400 * t / 600 = 9).
    h.advance(5.19)
    assert h.p2p_loading() == {1: "A"}
    h.advance(0.02)
    assert h.p2p_loading() == {1: "B"} and h.p2p_requests()[-1].byte_offset == 600


def test_a_download_without_a_byte_yet_is_not_moved() -> None:
    # Its peer is still sending to others first: a move would only join another queue.
    h = _pace_harness()
    h.advance(8.4)
    assert h.p2p_loading() == {1: "A"}


def test_pace_patience_zero_keeps_every_download_where_it_started() -> None:
    h = _pace_harness(pace_patience=0.0)
    h.advance(0.2)
    h.send(ev.PeerChunkReceived(request_id=h.p2p_request_for(1), data=b"a" * 10))
    h.advance(8.0)
    assert h.p2p_loading() == {1: "A"}


@pytest.mark.parametrize("origin", ["fast", "slow"])
def test_an_election_waits_while_an_earlier_segment_would_become_critical_sharing_the_downlink(
    origin: str,
) -> None:
    # We are elected to seed a new segment (10). Segment 1 is still coming from a peer, without a
    # byte yet. Alone, segment 1 goes to HTTP 1 s before it plays (twice the 0.5 s its fetch takes,
    # the origin measured at 0.25 s per media second); sharing the downlink with the seeding fetch
    # it would take twice as long, so the election waits until segment 1 is safe. Not so with an
    # origin counted slow (it, not the downlink, bounds each fetch): the seeding fetch goes at once.
    fast = {"fast": 0.3, "slow": 0.2}[origin]
    settings = LivePolicySettings(http_lead_time=0.0, slow_origin_lead_time=0.0, fast_origin_fetch_time=fast)
    probe = LivePolicy(Harness().config, settings)
    peer = next(
        name for name in (f"peer-{i}" for i in range(100)) if _elected(probe, _MeshCtx("me", [name]), sid(10))
    )
    h = Harness(policy=lambda cfg: LivePolicy(cfg, settings), segments=10, peer_id="me")
    h.send(ev.TrackerUpdated(incomplete=2))
    h.connect(peer, loaded=[1], loading=range(2, 10))
    h.play_at(0)
    h.request(0)
    assert h.http_loading() == {0} and h.p2p_loading() == {1: peer}
    h.advance(0.5)
    h.complete_http(h.http_request_for(0))
    assert h.scheduler._context.http_fetch_time == pytest.approx(0.25)
    h.segments = make_segments(11)  # segment 10 is published; the peer does not know of it yet
    h.send(ev.PlaylistUpdated(segments=h.segments))
    if origin == "slow":
        assert h.http_loading() == {10}
        return
    # Segment 1 starts 1.5 s ahead: outside its 1 s window, inside the 2 s one of a shared downlink.
    assert h.http_loading() == set(), "the seeding fetch waits"
    h.advance(0.5)
    assert h.http_loading() == {1}, "segment 1 enters its critical window"
    h.complete_http(h.http_request_for(1))
    assert h.http_loading() == {10}, "segment 1 is safe: the election goes ahead"


def _horizon_harness(**settings: float) -> Harness:
    """2 s segments, playing from 0 (the queue holds segments 0-19, 0-38 s); peer A holds segment 5,
    peer B segment 17 (each peer serves one of our requests at a time)."""
    policy_settings = LivePolicySettings(**settings)
    h = Harness(policy=lambda cfg: LivePolicy(cfg, policy_settings), peer_id="me")
    h.connect("A", loaded=[5])
    h.connect("B", loaded=[17])
    h.play_at(0)
    h.request(0)
    return h


def test_a_segment_beyond_the_p2p_horizon_is_asked_for_once_it_comes_within() -> None:
    h = _horizon_harness()  # the default horizon, 30 s
    assert LivePolicySettings().p2p_horizon == 30.0
    assert 5 in h.p2p_loading() and 17 not in h.p2p_loading(), "segment 17 starts at 34 s"
    h.advance(3.9)  # the playhead at 3.9 s: 17 is 30.1 s ahead
    assert 17 not in h.p2p_loading()
    h.advance(0.2)  # a wake-up at 4 s, with no other event
    assert h.p2p_loading().get(17) == "B"


def test_an_infinite_p2p_horizon_asks_for_the_whole_queue_at_once() -> None:
    h = _horizon_harness(p2p_horizon=math.inf)
    assert h.p2p_loading() == {5: "A", 17: "B"}


def test_a_segment_the_player_asked_for_is_asked_of_peers_at_once_beyond_the_horizon() -> None:
    # A player with a forward buffer over 30 s (ExoPlayer's is 50 s) asks for segment 17 (34 s
    # ahead): it waits for no horizon.
    h = _horizon_harness()
    h.request(17)
    assert h.p2p_loading().get(17) == "B"


def test_a_p2p_horizon_from_a_config_mapping_is_taken_and_a_large_one_means_none() -> None:
    config = Harness().config.evolve(policy_settings={"p2ploader-live": {"p2p_horizon": 1e9}})
    policy = LivePolicy.from_config(config)
    assert policy.settings.p2p_horizon == 1e9


@pytest.mark.parametrize("horizon", [0.0, -1.0, math.nan, 1.0, 3.0])
def test_a_p2p_horizon_within_the_critical_window_is_refused(horizon: float) -> None:
    # At or within slow_origin_lead_time (3 s) a segment would turn critical before entering the
    # horizon, and never come from a peer.
    with pytest.raises(PolicyError, match="p2p_horizon must be more than"):
        LivePolicySettings(p2p_horizon=horizon)
    assert LivePolicySettings(p2p_horizon=3.5).p2p_horizon == 3.5
