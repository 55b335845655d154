"""The scheduler with the default policy (P2P Media Loader 0.6): one or more tests per FAQ setting.

Every test drives the clock by hand; none sleeps.
"""

from __future__ import annotations

from p2ploader.config import LoaderConfig
from p2ploader.core import actions as act
from p2ploader.core import events as ev
from p2ploader.core import notifications as nt
from p2ploader.testing.harness import SEGMENT_SIZE, Harness, sid

# A config with the random-HTTP timer silenced, to observe the other paths alone.
QUIET = LoaderConfig().evolve(http_download_probability=0.0)


def test_requested_segment_is_fetched_over_http_and_delivered() -> None:
    h = Harness(QUIET)
    h.play_at(0)
    actions = h.request(0)
    start, second = h.http_starts(actions)  # priorities 0 and 1 are required by default
    assert start.segment.id == sid(0) and start.resume_from == 0 and second.segment.id == sid(1)
    h.complete_http(start.request_id)
    (ready,) = h.ready()
    assert ready.segment.id == sid(0) and ready.source == "http" and len(ready.data) == SEGMENT_SIZE


def test_forward_segment_count_bounds_the_queue() -> None:
    h = Harness(QUIET, forward_segment_count=5)
    h.play_at(0)
    h.request(2)
    assert [e.id.sequence for e in h.scheduler.queue] == [2, 3, 4, 5, 6]
    assert [e.priority for e in h.scheduler.queue] == [2, 3, 4, 5, 6]


def test_required_segments_priority_decides_what_goes_to_http() -> None:
    # Priorities 0..required go to HTTP at once; the rest waits for peers or the random timer.
    h = Harness(QUIET, required_segments_priority=1, simultaneous_http_downloads=5)
    h.play_at(0)
    h.request(0)
    assert h.http_loading() == {0, 1}
    h2 = Harness(QUIET, required_segments_priority=3, simultaneous_http_downloads=5)
    h2.play_at(0)
    h2.request(0)
    assert h2.http_loading() == {0, 1, 2, 3}


def test_priority_is_distance_from_the_playhead() -> None:
    h = Harness(QUIET, required_segments_priority=1, simultaneous_http_downloads=5)
    h.play_at(0)
    h.request(4)  # four segments buffered ahead: nothing required yet
    assert h.http_loading() == set()
    h.play_at(3)  # the playhead moved on: segment 4 is now priority 1
    assert h.http_loading() == {4}


def test_simultaneous_http_downloads_is_a_hard_limit() -> None:
    h = Harness(QUIET, required_segments_priority=10, simultaneous_http_downloads=2)
    h.play_at(0)
    h.request(0)
    assert h.http_loading() == {0, 1}
    h.complete_http(h.http_request_for(0))
    assert h.http_loading() == {1, 2}


def test_required_segment_preempts_a_later_http_download() -> None:
    h = Harness(
        LoaderConfig(),
        required_segments_priority=0,
        simultaneous_http_downloads=1,
        http_download_probability=1.0,
    )
    h.connect("A", loading=[3])  # keeps segment 3 out of the random pick
    h.play_at(0)
    h.request(3)  # priority 3: not required, so only the random timer fetches
    h.advance(1.0)
    (random_pick,) = h.http_starts()
    assert random_pick.segment.id.sequence > 3
    h.play_at(3)  # segment 3 is needed now; the only HTTP slot holds a later segment
    assert h.of_type(act.AbortHttpFetch)[0].request_id == random_pick.request_id
    assert h.http_loading() == {3}
    assert any(isinstance(n, nt.SegmentAborted) and n.source == "http" for n in h.notifications)


def test_non_required_segments_go_to_an_idle_peer_that_has_them() -> None:
    h = Harness(QUIET)
    h.connect("A", loaded=[2, 3, 4])
    h.play_at(0)
    h.request(0)
    assert h.http_loading() == {0, 1}
    assert h.p2p_loading() == {2: "A"}  # one outstanding request per peer
    h.complete_p2p(h.p2p_request_for(2))
    assert h.p2p_loading() == {3: "A"}


def test_p2p_download_max_priority() -> None:
    h = Harness(QUIET, p2p_download_max_priority=4)
    for peer in "ABCDEFG":
        h.connect(peer, loaded=range(30))
    h.play_at(0)
    h.request(0)
    # simultaneous_p2p_downloads (3) limits first; raise it to see the priority bound alone.
    h2 = Harness(QUIET, p2p_download_max_priority=4, simultaneous_p2p_downloads=20)
    for peer in "ABCDEFG":
        h2.connect(peer, loaded=range(30))
    h2.play_at(0)
    h2.request(0)
    assert set(h2.p2p_loading()) == {2, 3, 4}
    assert len(h.p2p_loading()) == 3


def test_simultaneous_p2p_downloads_is_a_hard_limit() -> None:
    h = Harness(QUIET, simultaneous_p2p_downloads=2)
    for peer in "ABCD":
        h.connect(peer, loaded=range(30))
    h.play_at(0)
    h.request(0)
    assert len(h.p2p_loading()) == 2


def test_required_segment_moves_from_peer_to_http_and_discards_bytes_without_ranges() -> None:
    h = Harness(QUIET, http_download_ranges=False)
    h.connect("A", loaded=[3])
    h.play_at(0)
    h.request(0)
    rid = h.p2p_request_for(3)
    h.send(ev.PeerResponseStarted(request_id=rid, total_bytes=SEGMENT_SIZE))
    h.send(ev.PeerChunkReceived(request_id=rid, data=b"p" * 400))
    h.complete_http(h.http_request_for(0))
    h.complete_http(h.http_request_for(1))
    h.play_at(2)  # segment 3 becomes required (priority 1) while still coming from the peer
    start = h.http_starts()[-1]
    assert start.segment.id == sid(3) and start.resume_from == 0
    assert any(isinstance(a, act.CancelPeerDownload) and a.request_id == rid for a in h.actions)


def test_http_download_ranges_continues_an_aborted_p2p_download() -> None:
    h = Harness(QUIET, http_download_ranges=True, simultaneous_http_downloads=1)
    h.connect("A", loaded=[3])
    h.play_at(0)
    h.request(0)
    rid = h.p2p_request_for(3)
    h.send(ev.PeerResponseStarted(request_id=rid, total_bytes=SEGMENT_SIZE))
    h.send(ev.PeerChunkReceived(request_id=rid, data=b"p" * 400))
    h.complete_http(h.http_request_for(0))
    h.complete_http(h.http_request_for(1))
    h.request(3)
    h.play_at(3)
    start = h.http_starts()[-1]
    assert start.segment.id == sid(3) and start.resume_from == 400
    h.send(ev.HttpResponseStarted(request_id=start.request_id, offset=400))
    h.send(ev.HttpChunkReceived(request_id=start.request_id, data=b"h" * 600))
    h.send(ev.HttpFetchCompleted(request_id=start.request_id))
    ready = next(r for r in h.ready() if r.segment.id == sid(3))
    assert ready.data == b"p" * 400 + b"h" * 600


def test_range_continuation_falls_back_to_the_whole_body_on_200() -> None:
    h = Harness(QUIET, http_download_ranges=True, simultaneous_http_downloads=1)
    h.connect("A", loaded=[1])
    h.play_at(0)
    h.request(0)
    rid = h.p2p_request_for(1)
    h.send(ev.PeerResponseStarted(request_id=rid, total_bytes=SEGMENT_SIZE))
    h.send(ev.PeerChunkReceived(request_id=rid, data=b"p" * 400))
    h.complete_http(h.http_request_for(0))  # slot frees: 1 is required → HTTP, resuming at 400
    start = h.http_starts()[-1]
    assert start.resume_from == 400
    h.complete_http(start.request_id, offset=0)  # the origin ignored Range: whole body
    ready = [r for r in h.ready() if r.segment.id == sid(1)]
    assert ready == [] or ready[0].data == b"h" * SEGMENT_SIZE
    assert h.scheduler.cache.get(sid(1), now=h.now).data == b"h" * SEGMENT_SIZE  # type: ignore[union-attr]


def test_http_failed_segment_timeout_blocks_http_retries_until_it_expires() -> None:
    # A segment nobody waits for (prefetch); one the player waits for follows the retry policy
    # (tests/core/test_retries.py).
    h = Harness(QUIET, http_failed_segment_timeout=10.0, simultaneous_http_downloads=1)
    h.play_at(0)
    h.request(0)
    h.complete_http(h.http_request_for(0))
    rid = h.http_request_for(1)
    h.send(ev.HttpFetchFailed(request_id=rid, reason="HTTP 503", status=503))
    assert h.http_loading() == set()
    h.advance(9.9)
    assert 1 not in h.http_loading()
    h.advance(0.2)  # the failure expired: the timer woke the scheduler up
    assert 1 in h.http_loading()


def test_a_failed_segment_can_still_come_from_a_peer() -> None:
    h = Harness(QUIET)
    h.play_at(0)
    h.request(0)
    h.send(ev.HttpFetchFailed(request_id=h.http_request_for(0), reason="HTTP 500", status=500))
    h.connect("A", loaded=[0])
    assert h.p2p_loading().get(0) == "A"


def test_explicit_request_forgets_a_failure() -> None:
    h = Harness(QUIET, simultaneous_http_downloads=1)
    h.play_at(0)
    h.request(0)
    h.send(ev.HttpFetchFailed(request_id=h.http_request_for(0), reason="x", status=500))
    h.complete_http(h.http_request_for(1))
    h.request(0)
    assert 0 in h.http_loading()


def test_random_http_timer_fetches_one_pending_segment_per_tick() -> None:
    h = Harness(
        LoaderConfig(),
        http_download_probability=1.0,
        http_download_probability_interval=1.0,
        simultaneous_http_downloads=5,
    )
    h.play_at(0)
    h.request(5)  # nothing required (priority >= 5)
    assert h.http_starts() == []
    h.advance(0.99)
    assert h.http_starts() == []
    h.advance(0.02)
    assert len(h.http_starts()) == 1
    h.advance(1.0)
    assert len(h.http_starts()) == 2


def test_random_http_probability_zero_never_fetches() -> None:
    h = Harness(LoaderConfig(), http_download_probability=0.0)
    h.play_at(0)
    h.request(5)
    h.advance(60.0)
    assert h.http_starts() == []


def test_random_http_probability_scales_with_pending_count() -> None:
    # One draw per tick fires with probability min(1, p × N), N = segments pending.
    def ticks_that_fired(probability: float, pending: int, seed: int) -> int:
        h = Harness(
            LoaderConfig(),
            seed=seed,
            segments=200,
            forward_segment_count=200,
            http_download_probability=probability,
            http_download_max_priority=5 + pending - 1,
            simultaneous_http_downloads=1,
        )
        h.play_at(0)
        h.request(5)  # priorities 5.. : nothing is required
        fired = 0
        for _ in range(50):
            before = len(h.http_starts())
            h.advance(1.0)
            if len(h.http_starts()) > before:
                fired += 1
                h.complete_http(h.http_starts()[-1].request_id)  # frees the slot; N drops by one
        return fired

    # p × N stays >= 1 while N >= 20: 100 pending segments make every one of 50 ticks fire.
    assert ticks_that_fired(0.05, 100, seed=1) == 50
    # p × N = 0.1 with N = 50: about 5 of 50 ticks fire; over 4 seeds about 20 of 200.
    few = sum(ticks_that_fired(0.002, 50, seed=s) for s in range(4))
    assert 8 <= few <= 35
    # Same p, ten times fewer pending segments: about ten times fewer fetches.
    fewer = sum(ticks_that_fired(0.002, 5, seed=s) for s in range(4))
    assert fewer < few


def test_random_http_respects_http_download_max_priority() -> None:
    h = Harness(
        LoaderConfig(),
        http_download_probability=1.0,
        http_download_max_priority=6,
        simultaneous_http_downloads=10,
    )
    h.play_at(0)
    h.request(5)
    h.advance(10.0)
    assert {s.segment.id.sequence for s in h.http_starts()} == {5, 6}


def test_random_http_skips_segments_peers_have_or_load() -> None:
    h = Harness(
        LoaderConfig(),
        http_download_probability=1.0,
        http_download_max_priority=7,
        simultaneous_http_downloads=10,
        simultaneous_p2p_downloads=1,
    )
    h.connect("A", loaded=[5], loading=[6])
    h.play_at(0)
    h.request(5)
    h.advance(5.0)
    assert {s.segment.id.sequence for s in h.http_starts()} == {7}


def test_random_http_skip_if_no_peers() -> None:
    h = Harness(
        LoaderConfig(), http_download_probability=1.0, http_download_probability_skip_if_no_peers=True
    )
    h.play_at(0)
    h.request(5)
    h.advance(5.0)
    assert h.http_starts() == []
    h.connect("A")
    h.advance(1.0)
    assert len(h.http_starts()) == 1


def test_random_http_is_reproducible_from_the_seed() -> None:
    def picks(seed: int) -> list[int]:
        h = Harness(LoaderConfig(), seed=seed, http_download_probability=0.05, simultaneous_http_downloads=20)
        h.play_at(0)
        h.request(2)
        h.advance(30.0)
        return [s.segment.id.sequence for s in h.http_starts()]

    assert picks(7) == picks(7)
    assert picks(7) != picks(8)


def test_consume_only_announces_nothing_uploads_nothing_and_stops_random_http() -> None:
    h = Harness(LoaderConfig(), consume_only=True, http_download_probability=1.0)
    h.connect("A")
    h.play_at(0)
    h.request(0)
    h.complete_http(h.http_request_for(0))
    h.advance(10.0)
    assert h.of_type(act.AnnounceSegments) == []
    assert {s.segment.id.sequence for s in h.http_starts()} <= {0, 1, 2}  # required only
    h.send(ev.PeerRequestedSegment(peer_id="A", segment_id=sid(0)))
    assert isinstance(h.actions[-1], act.SendSegmentAbsent)


def test_announcements_list_cached_and_http_loading_segments() -> None:
    h = Harness(QUIET)
    h.connect("A")
    h.play_at(0)
    actions = h.request(0)
    (announce,) = [a for a in actions if isinstance(a, act.AnnounceSegments)]
    assert announce.peer_id is None and set(announce.loading_by_http) == {sid(0), sid(1)}
    actions = h.complete_http(h.http_request_for(0))
    announce = [a for a in actions if isinstance(a, act.AnnounceSegments)][-1]
    assert announce.loaded == (sid(0),)


def test_a_new_peer_gets_our_map_at_once() -> None:
    h = Harness(QUIET)
    h.play_at(0)
    h.request(0)
    h.complete_http(h.http_request_for(0))
    actions = h.send(ev.PeerConnected(peer_id="B"))
    assert act.AnnounceSegments(loaded=(sid(0),), loading_by_http=(sid(1),), peer_id="B") in actions


def test_use_p2p_false_never_announces() -> None:
    h = Harness(QUIET, use_p2p=False)
    h.play_at(0)
    h.request(0)
    assert h.of_type(act.AnnounceSegments) == []


def test_serving_a_peer_from_the_cache_at_a_byte_offset() -> None:
    h = Harness(QUIET)
    h.play_at(0)
    h.request(0)
    h.complete_http(h.http_request_for(0))
    h.send(ev.PeerConnected(peer_id="A"))
    h.send(ev.PeerRequestedSegment(peer_id="A", segment_id=sid(0), byte_offset=250, peer_request_id=9))
    send = h.actions[-1]
    assert isinstance(send, act.SendSegmentToPeer)
    assert (send.byte_offset, len(send.data), send.total_bytes, send.peer_request_id) == (250, 750, 1000, 9)
    assert h.scheduler.statistics().uploaded_bytes == 750
    h.send(ev.PeerRequestedSegment(peer_id="A", segment_id=sid(7)))
    assert isinstance(h.actions[-1], act.SendSegmentAbsent)


def test_p2p_segment_download_timeout_cancels_and_drops_a_silent_peer() -> None:
    h = Harness(QUIET, p2p_segment_download_timeout=5.0)
    h.connect("A", loaded=[3])
    h.play_at(0)
    h.request(0)
    rid = h.p2p_request_for(3)
    h.advance(4.9)
    assert h.p2p_loading() == {3: "A"}
    h.advance(0.2)
    assert h.p2p_loading() == {}
    assert (
        act.DisconnectPeer(peer_id="A", reason="no answer within p2p_segment_download_timeout") in h.actions
    )
    assert any(isinstance(a, act.CancelPeerDownload) and a.request_id == rid for a in h.actions)
    assert h.scheduler.statistics().peers == 0


def test_p2p_timeout_only_limits_the_wait_for_the_header() -> None:
    h = Harness(QUIET, p2p_segment_download_timeout=5.0, p2p_stall_timeout=1000.0)
    h.connect("A", loaded=[3])
    h.play_at(0)
    h.request(0)
    rid = h.p2p_request_for(3)
    h.send(ev.PeerResponseStarted(request_id=rid, total_bytes=SEGMENT_SIZE))
    h.advance(30.0)
    assert h.p2p_loading() == {3: "A"}


def test_peer_absent_removes_the_segment_from_its_map() -> None:
    h = Harness(QUIET)
    h.connect("A", loaded=[3])
    h.play_at(0)
    h.request(0)
    h.send(ev.PeerDownloadFailed(request_id=h.p2p_request_for(3), reason="absent", absent=True))
    assert h.p2p_loading() == {}
    assert h.scheduler.statistics().peers == 1
    ctx = h.scheduler._context
    # Not asked again, and not "known" in P2P Media Loader's sense (its map lost the segment), but
    # remembered as refused until the peer announces anew: the segment is in the swarm.
    assert not ctx.any_peer_has(sid(3)) and not ctx.any_peer_knows(sid(3))
    assert ctx.any_peer_refused(sid(3))
    h.announce("A", loaded=[3, 4])
    assert not ctx.any_peer_refused(sid(3)) and ctx.any_peer_has(sid(3))


def test_a_peer_sending_too_many_bytes_is_disconnected_and_nothing_reaches_the_player() -> None:
    h = Harness(QUIET)
    h.connect("A", loaded=[0])
    h.request(0)  # no playhead: the requested segment has priority 0 → HTTP
    h.play_at(0)
    h2 = Harness(QUIET, required_segments_priority=0)
    h2.connect("A", loaded=[1])
    h2.play_at(0)
    h2.request(0)
    rid = h2.p2p_request_for(1)
    h2.send(ev.PeerResponseStarted(request_id=rid, total_bytes=100))
    h2.send(ev.PeerChunkReceived(request_id=rid, data=b"x" * 101))
    assert any(isinstance(a, act.DisconnectPeer) and a.peer_id == "A" for a in h2.actions)
    assert sid(1) not in h2.scheduler.cache
    assert not any(r.segment.id == sid(1) for r in h2.ready())


def test_data_before_header_or_impossible_size_is_misbehaviour() -> None:
    def first_message(kind: str, rid: int) -> ev.Event:
        if kind == "data-first":
            return ev.PeerChunkReceived(request_id=rid, data=b"x")
        return ev.PeerResponseStarted(request_id=rid, total_bytes=0 if kind == "zero" else 2**40)

    for kind in ("data-first", "zero", "huge"):
        h = Harness(QUIET, required_segments_priority=0)
        h.connect("A", loaded=[1])
        h.play_at(0)
        h.request(0)
        h.send(first_message(kind, h.p2p_request_for(1)))
        assert any(isinstance(a, act.DisconnectPeer) for a in h.actions), kind
        assert h.p2p_loading() == {}, kind


def test_peer_disconnect_drops_its_requests() -> None:
    h = Harness(QUIET)
    h.connect("A", loaded=[3])
    h.play_at(0)
    h.request(0)
    h.send(ev.PeerDisconnected(peer_id="A"))
    assert h.p2p_loading() == {}
    assert any(isinstance(n, nt.SegmentLoadFailed) and n.source == "p2p" for n in h.notifications)


def test_initial_timeout_holds_http_back_until_the_per_segment_allowance() -> None:
    h = Harness(
        LoaderConfig(),
        http_download_initial_timeout=20.0,
        http_download_initial_timeout_per_segment=4.0,
        http_download_probability=1.0,
    )
    h.connect("A")  # a peer that has nothing
    h.play_at(0)
    h.request(0)
    # The segment needed now goes to HTTP at once (no buffer to wait with); the ones after it wait.
    assert h.http_loading() == {0}
    h.complete_http(h.http_request_for(0))
    h.request(1)
    h.play_at(0)
    assert h.http_loading() == set(), "priority 1: held while the mode lasts"
    h.advance(4.0)
    assert h.http_loading() == set()
    h.play_at(1)  # the playhead reaches segment 1: needed now, nothing buffered
    assert 1 in h.http_loading()


def test_initial_timeout_lets_peers_serve_first() -> None:
    h = Harness(
        LoaderConfig(), http_download_initial_timeout=20.0, http_download_initial_timeout_per_segment=4.0
    )
    h.connect("A", loaded=[0, 1, 2])
    h.play_at(0)
    h.request(0)
    # Segment 0 is needed now (HTTP); the segments after it come from the peer first.
    assert h.http_loading() == {0} and h.p2p_loading() == {1: "A"}


def test_initial_mode_never_holds_the_segment_needed_now_behind_a_silent_peer() -> None:
    # 0.6 held it for the per-segment allowance (17 s in the FAQ's VOD example) when a peer
    # announced it and never answered; HTTP now takes it at once, cutting over the P2P request.
    h = Harness(LoaderConfig.preset("faq-vod"), segments=10)
    h.connect("A", loaded=range(10))
    h.play_at(0)
    h.request(0)
    assert 0 in h.http_loading()
    assert 0 not in h.p2p_loading()


def test_initial_timeout_ends_for_good_after_the_total_timeout() -> None:
    h = Harness(
        LoaderConfig(),
        http_download_initial_timeout=10.0,
        http_download_initial_timeout_per_segment=30.0,
        http_download_probability=0.0,
    )
    h.connect("A")
    h.play_at(0)
    h.request(3)  # priority 3: the per-segment rule never allows it
    h.advance(9.0)
    h.play_at(2)
    assert h.http_starts() == []
    h.advance(1.0)
    h.play_at(2)  # a pass after the total timeout: HTTP allowed from now on
    assert 3 in h.http_loading()


def test_initial_timeout_ends_when_the_tracker_reports_no_other_peers() -> None:
    h = Harness(
        LoaderConfig(),
        http_download_initial_timeout=60.0,
        http_download_initial_timeout_per_segment=30.0,
        http_download_probability=0.0,
    )
    h.play_at(0)
    h.request(0)
    assert h.http_loading() == {0}, "needed now"
    h.complete_http(h.http_request_for(0))
    h.request(1)
    h.play_at(0)
    assert h.http_loading() == set(), "priority 1 waits for peers"
    h.send(ev.TrackerUpdated(incomplete=1))
    assert 1 in h.http_loading()


def test_cached_segment_expiration() -> None:
    h = Harness(QUIET, cached_segment_expiration=30.0)
    h.play_at(0)
    h.request(0)
    h.complete_http(h.http_request_for(0))
    h.advance(31.0)
    h.request(1)  # cleaning runs when the queue changes
    assert sid(0) not in h.scheduler.cache


def test_cached_segments_count_evicts_least_recently_used_outside_the_queue() -> None:
    h = Harness(
        QUIET,
        cached_segments_count=3,
        forward_segment_count=2,
        simultaneous_http_downloads=1,
        required_segments_priority=0,
    )
    for n in range(6):
        h.play_at(n)
        h.request(n)
        h.complete_http(h.http_request_for(n))
        h.advance(1.0)
    h.request(6)
    assert sorted(s.sequence for s in h.scheduler.cache) == [3, 4, 5]


def test_segment_validator_rejecting_http_bytes_fails_the_fetch() -> None:
    cfg = QUIET.evolve(segment_validator=lambda seg, data, method, peer: data.startswith(b"ok"))
    h = Harness(cfg)
    h.play_at(0)
    h.request(0)
    rid = h.http_request_for(0)
    h.complete_http(rid)
    (validate,) = h.of_type(act.ValidateSegment)
    assert validate.method == "http" and validate.request_id == rid
    h.send(ev.SegmentValidated(request_id=rid, valid=False))
    assert h.ready() == [] and sid(0) not in h.scheduler.cache
    assert any(isinstance(n, nt.SegmentLoadFailed) for n in h.notifications)


def test_segment_validator_rejecting_p2p_bytes_drops_the_peer() -> None:
    cfg = QUIET.evolve(segment_validator=lambda seg, data, method, peer: False)
    h = Harness(cfg)
    h.connect("A", loaded=[3])
    h.play_at(0)
    h.request(0)
    rid = h.p2p_request_for(3)
    h.complete_p2p(rid)
    h.send(ev.SegmentValidated(request_id=rid, valid=False))
    assert sid(3) not in h.scheduler.cache
    assert any(isinstance(a, act.DisconnectPeer) and a.peer_id == "A" for a in h.actions)


def test_segments_that_leave_the_queue_are_aborted() -> None:
    h = Harness(QUIET, forward_segment_count=3)
    h.connect("A", loaded=[2])
    h.play_at(0)
    h.request(0)
    assert h.p2p_loading() == {2: "A"}
    h.play_at(10)
    h.request(10)  # a seek: 0..2 leave the queue
    assert h.p2p_loading() == {}
    assert 0 not in h.http_loading() and 10 in h.http_loading()
    assert sum(isinstance(n, nt.SegmentAborted) for n in h.notifications) >= 2


def test_a_requested_segment_that_left_the_playlist_is_unavailable() -> None:
    h = Harness(QUIET)
    h.request(0)
    h.send(ev.PlaylistUpdated(segments=h.segments[5:]))
    assert any(isinstance(n, nt.SegmentUnavailable) and n.segment_id == sid(0) for n in h.notifications)


def test_a_cached_segment_is_ready_at_once() -> None:
    h = Harness(QUIET)
    h.connect("A", loaded=[2])
    h.play_at(0)
    h.request(0)
    h.complete_p2p(h.p2p_request_for(2))
    h.request(2)
    assert [r.source for r in h.ready() if r.segment.id == sid(2)] == ["cache"]


def test_byte_range_length_is_enforced_for_http() -> None:
    import attrs

    from p2ploader.core.segments import ByteRange

    h = Harness(QUIET)
    seg = attrs.evolve(h.segments[0], byte_range=ByteRange(offset=0, length=500))
    h.send(ev.PlaylistUpdated(segments=(seg, *h.segments[1:])))
    h.play_at(0)
    h.request(0)
    rid = h.http_request_for(0)
    h.send(ev.HttpResponseStarted(request_id=rid, offset=0))
    h.send(ev.HttpChunkReceived(request_id=rid, data=b"x" * 499))
    h.send(ev.HttpFetchCompleted(request_id=rid))
    assert sid(0) not in h.scheduler.cache
    assert any(isinstance(n, nt.SegmentLoadFailed) for n in h.notifications)


def test_with_no_peers_everything_arrives_over_http() -> None:
    h = Harness(LoaderConfig())
    delivered = []
    for n in range(20):
        h.play_at(n)
        h.request(n)
        for start in [a for a in h.http_starts() if a.segment.id.sequence in h.http_loading()]:
            h.complete_http(start.request_id)
        h.advance(2.0)
        delivered += [r for r in h.ready() if r.segment.id == sid(n)]
    assert [r.segment.id.sequence for r in delivered] == list(range(20))
    stats = h.scheduler.statistics()
    assert stats.p2p_bytes == 0 and stats.http_bytes > 0


def test_same_seed_and_events_give_the_same_trace() -> None:
    def session(seed: int) -> list[object]:
        h = Harness(LoaderConfig(), seed=seed, http_download_probability=0.3, simultaneous_http_downloads=3)
        for peer in "ABC":
            h.connect(peer, loaded=range(4, 20, 2))
        for n in range(12):
            h.play_at(n)
            h.request(n)
            for rid in [h.http_request_for(m) for m in sorted(h.http_loading())]:
                h.complete_http(rid)
            for m in sorted(h.p2p_loading()):
                h.complete_p2p(h.p2p_request_for(m))
            h.advance(2.0)
        return [*h.actions, *h.notifications]

    assert session(42) == session(42)
    assert session(42) != session(43)


def test_p2p_stall_timeout_drops_the_request_and_http_continues_from_the_bytes_held() -> None:
    h = Harness(QUIET, p2p_stall_timeout=2.0, http_download_ranges=True)
    h.connect("A", loaded=[3])
    h.play_at(0)
    h.request(0)
    rid = h.p2p_request_for(3)
    h.send(ev.PeerResponseStarted(request_id=rid, total_bytes=SEGMENT_SIZE))
    h.advance(1.5)
    h.send(ev.PeerChunkReceived(request_id=rid, data=b"p" * 300))  # progress resets the stall clock
    h.advance(1.9)
    assert h.p2p_loading() == {3: "A"}
    h.advance(0.2)  # two seconds without a byte
    assert h.p2p_loading() == {}
    assert any(isinstance(a, act.CancelPeerDownload) and a.request_id == rid for a in h.actions)
    assert not any(isinstance(a, act.DisconnectPeer) for a in h.actions)  # slow is not misbehaving
    h.complete_http(h.http_request_for(0))
    h.complete_http(h.http_request_for(1))
    h.play_at(2)  # segment 3 becomes required: HTTP continues at byte 300
    start = h.http_starts()[-1]
    assert start.segment.id == sid(3) and start.resume_from == 300
    h.complete_http(start.request_id, offset=300)
    assert h.scheduler.cache.get(sid(3), now=h.now).data == b"p" * 300 + b"h" * 700  # type: ignore[union-attr]


def test_p2p_stall_without_ranges_refetches_the_whole_segment() -> None:
    h = Harness(QUIET, p2p_stall_timeout=2.0, http_download_ranges=False)
    h.connect("A", loaded=[3])
    h.play_at(0)
    h.request(0)
    rid = h.p2p_request_for(3)
    h.send(ev.PeerResponseStarted(request_id=rid, total_bytes=SEGMENT_SIZE))
    h.send(ev.PeerChunkReceived(request_id=rid, data=b"p" * 300))
    h.advance(2.1)
    h.complete_http(h.http_request_for(0))
    h.complete_http(h.http_request_for(1))
    h.play_at(2)
    assert h.http_starts()[-1].resume_from == 0


def test_max_concurrent_uploads_answers_absent_when_busy() -> None:
    h = Harness(QUIET, max_concurrent_uploads=1)
    h.play_at(0)
    h.request(0)
    h.complete_http(h.http_request_for(0))
    for peer in "ABC":
        h.send(ev.PeerConnected(peer_id=peer))
    h.send(ev.PeerRequestedSegment(peer_id="A", segment_id=sid(0), peer_request_id=1))
    assert isinstance(h.actions[-1], act.SendSegmentToPeer)
    h.send(ev.PeerRequestedSegment(peer_id="B", segment_id=sid(0), peer_request_id=2))
    assert isinstance(h.actions[-1], act.SendSegmentAbsent)  # busy: B turns to another holder
    h.send(ev.UploadFinished(peer_id="A", peer_request_id=1, sent_bytes=SEGMENT_SIZE))
    h.send(ev.PeerRequestedSegment(peer_id="C", segment_id=sid(0), peer_request_id=3))
    assert isinstance(h.actions[-1], act.SendSegmentToPeer)
    h.send(ev.PeerDisconnected(peer_id="C"))  # a peer that leaves frees its upload slot too
    h.send(ev.PeerRequestedSegment(peer_id="B", segment_id=sid(0), peer_request_id=4))
    assert isinstance(h.actions[-1], act.SendSegmentToPeer)
