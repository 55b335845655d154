"""The ``p2ploader-live`` policy's peer choice and seeder rules, and the measurements they use,
driven through the real scheduler with an explicit clock."""

from __future__ import annotations

import random

from p2ploader.core import events as ev
from p2ploader.core.livepolicy import LivePolicy, LivePolicySettings
from p2ploader.core.segments import SegmentId
from tests.core.harness import Harness, sid


def live_harness(**overrides: object) -> Harness:
    h = Harness(policy="p2ploader-live", segments=30, **overrides)  # 2 s segments
    h.play_at(0)
    h.request(0)  # segments 0 and 1 start within http_lead_time (3 s): HTTP; the rest is P2P
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


def test_a_new_viewer_in_a_big_swarm_is_rarely_elected() -> None:
    # The election counts the neighbourhood a viewer will have (max_peers, bounded by the swarm),
    # not the two peers it happens to know right after joining.
    policy = LivePolicy(Harness().config)  # max_peers 20, seeders 2, neighbourhood share 2
    policy._salt = random.Random(3).getrandbits(64)
    ids = [SegmentId("v0", n) for n in range(2000)]
    elected = sum(policy.is_seeder(s, swarm=200, peers=2) for s in ids) / len(ids)
    assert 0.07 < elected < 0.12  # 2 / 21, not 2 / 3
    small = sum(policy.is_seeder(s, swarm=3, peers=2) for s in ids) / len(ids)
    assert small > 0.5  # a tiny swarm: every viewer is a likely seeder


def test_the_critical_window_widens_when_the_origin_proves_slow() -> None:
    h = live_harness()
    h.connect("A", loading=range(2, 30))  # a peer loads them: nobody needs to volunteer as seeder
    first, second = h.http_request_for(0), h.http_request_for(1)
    h.advance(2.0)  # a slow origin: a 2 s segment takes 2 s
    h.complete_http(first)
    h.complete_http(second)
    assert h.scheduler._context.http_fetch_time == 1.0
    # The playhead is at 2 s. Segment 3 starts 4 s ahead: outside the default 3 s window, inside
    # 3 x 1.0 x 2 s = 6 s, so it goes to HTTP now rather than wait for a peer.
    assert h.http_loading() == {2, 3}


def test_a_fast_origin_keeps_the_default_critical_window() -> None:
    h = live_harness()
    h.connect("A", loading=range(2, 30))
    first, second = h.http_request_for(0), h.http_request_for(1)
    h.advance(0.1)
    h.complete_http(first)
    h.complete_http(second)
    # Segment 2 starts 3.9 s ahead of the playhead: not critical yet. At 1.1 s it is (2.9 s ahead);
    # segment 3 (4.9 s ahead) is not.
    assert h.http_loading() == set()
    h.advance(1.0)
    assert h.http_loading() == {2}
