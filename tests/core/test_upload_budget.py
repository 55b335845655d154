"""Per-peer upload budgets and the bounds on what one peer may make us do, with a driven clock."""

from __future__ import annotations

import pytest

from p2ploader.config import LoaderConfig
from p2ploader.core import actions as act
from p2ploader.core import events as ev
from p2ploader.core import notifications as nt
from p2ploader.core.peer_limits import (
    ANNOUNCEMENT_MARGIN,
    SEGMENT_SIZE_FLOOR,
    UploadBudget,
    announcement_id_limit,
    segment_size_limit,
)
from p2ploader.core.scheduler import MAX_SEGMENT_SIZE
from p2ploader.core.uploads import REPEATS_BEFORE_STRIKE
from p2ploader.testing.harness import SEGMENT_SIZE, Harness, sid

QUIET = LoaderConfig().evolve(http_download_probability=0.0)
DURATION = 2.0  # the harness's segments


def seeder(segments: int = 20, **overrides: object) -> Harness:
    """A scheduler holding ``segments`` cached segments of SEGMENT_SIZE bytes, with no upload cap
    other than the budget (max_concurrent_uploads=0), and peer "A" connected."""
    h = Harness(QUIET, max_concurrent_uploads=0, **overrides)
    for segment in h.segments[:segments]:
        h.scheduler.cache.put(segment, b"s" * SEGMENT_SIZE, now=h.now)
    h.send(ev.PeerConnected(peer_id="A"))
    return h


def ask(h: Harness, peer: str, n: int, request_id: int, offset: int = 0) -> act.Action:
    h.send(
        ev.PeerRequestedSegment(
            peer_id=peer, segment_id=sid(n), byte_offset=offset, peer_request_id=request_id
        )
    )
    action = h.actions[-1]
    if isinstance(action, act.SendSegmentToPeer):  # the transport reports its end
        h.send(ev.UploadFinished(peer_id=peer, peer_request_id=request_id, sent_bytes=len(action.data)))
    return action


def uploaded(h: Harness, peer: str) -> int:
    return sum(len(a.data) for a in h.actions if isinstance(a, act.SendSegmentToPeer) and a.peer_id == peer)


# --------------------------------------------------------------------------- the bucket


def test_the_bucket_holds_burst_and_refills_at_rate() -> None:
    budget = UploadBudget(rate=2.0, burst=10.0)
    assert budget.take(4.0, now=0.0) and budget.take(4.0, now=0.0) and budget.take(4.0, now=0.0)
    assert budget.tokens(now=0.0) == pytest.approx(-2.0)  # in debt by part of one upload
    assert not budget.take(1.0, now=0.5)  # refilled to -1: still spent, nothing charged
    assert budget.tokens(now=0.5) == pytest.approx(-1.0)
    assert budget.take(4.0, now=1.5)  # +2 over the second: 1 left, then charged
    assert budget.tokens(now=100.0) == pytest.approx(10.0)  # never above the burst


def test_a_segment_longer_than_the_burst_is_still_served() -> None:
    budget = UploadBudget(rate=1.0, burst=2.0)
    assert budget.take(10.0, now=0.0)
    assert not budget.take(10.0, now=5.0)
    assert budget.take(10.0, now=8.5)


@pytest.mark.parametrize(("rate", "burst"), [(0.0, 1.0), (1.0, 0.0), (-1.0, 5.0)])
def test_the_bucket_refuses_nonsense(rate: float, burst: float) -> None:
    with pytest.raises(ValueError, match="must be > 0"):
        UploadBudget(rate=rate, burst=burst)


# --------------------------------------------------------------------------- the scheduler's upload desk


def test_a_flooder_gets_at_most_burst_plus_rate_times_the_window() -> None:
    """The 17-byte-request flood: one request every 10 ms for 65 s, each for a cached segment."""
    h = seeder(upload_budget_rate=1.0, upload_budget_burst=20.0)
    served = refused = 0
    for request_id in range(6500):
        action = ask(h, "A", request_id % 20, request_id)
        if isinstance(action, act.SendSegmentToPeer):
            served += 1
        else:
            refused += 1
        h.now += 0.01
        # Repeats are another test.
        h.scheduler._upload_desk._requesters["A"].absent_since_announcement.clear()
    media_seconds = served * DURATION
    assert media_seconds <= 20.0 + 1.0 * 65.0 + DURATION  # burst + rate * window + one segment
    assert uploaded(h, "A") <= (20.0 + 65.0 + DURATION) / DURATION * SEGMENT_SIZE
    assert h.scheduler.statistics().uploads_over_budget == refused > 6000
    print(f"\nFIGURE flooder window=65s uploaded_bytes={uploaded(h, 'A')} (unbounded: {6500 * SEGMENT_SIZE})")


def test_an_honest_viewer_is_never_refused_with_the_default_budget() -> None:
    """A joining viewer fills a 20-segment forward buffer at once, then takes one segment per
    segment duration for ten minutes; a P2P Media Loader browser prefetching its window of 15
    segments ahead every 15 s is no different. LoaderConfig() defaults."""
    h = seeder(segments=30)
    assert h.config.upload_budget_rate == 4.0 and h.config.upload_budget_burst == 600.0
    request_id = 0
    for n in range(20):
        request_id += 1
        assert isinstance(ask(h, "A", n, request_id), act.SendSegmentToPeer)
    for step in range(300):  # 600 s of playback
        h.now += DURATION
        request_id += 1
        assert isinstance(ask(h, "A", step % 30, request_id), act.SendSegmentToPeer)
    h.send(ev.PeerConnected(peer_id="B"))
    for window in range(40):  # the browser: 15 segments every 15 s (twice its playback rate)
        for n in range(15):
            request_id += 1
            assert isinstance(ask(h, "B", (window * 15 + n) % 30, request_id), act.SendSegmentToPeer)
        h.now += 15.0
    assert h.scheduler.statistics().uploads_over_budget == 0


def test_the_default_budget_bounds_a_flooder() -> None:
    h = seeder(segments=30)
    for request_id in range(5000):  # 50 s at 100 requests/s
        ask(h, "A", request_id % 30, request_id)
        h.now += 0.01
        h.scheduler._upload_desk._requesters["A"].absent_since_announcement.clear()
    assert uploaded(h, "A") <= (600.0 + 4.0 * 50.0 + DURATION) / DURATION * SEGMENT_SIZE
    assert h.scheduler.statistics().uploads_over_budget > 4000


def test_a_resumed_request_costs_its_share_of_the_segment() -> None:
    h = seeder(upload_budget_rate=1.0, upload_budget_burst=1.0)
    assert isinstance(ask(h, "A", 0, 1, offset=SEGMENT_SIZE * 3 // 4), act.SendSegmentToPeer)  # costs 0.5
    assert isinstance(ask(h, "A", 1, 2, offset=SEGMENT_SIZE * 3 // 4), act.SendSegmentToPeer)  # 0.5 left
    assert isinstance(ask(h, "A", 2, 3), act.SendSegmentAbsent)  # spent


def test_budgets_are_per_peer_and_none_turns_them_off() -> None:
    h = seeder(upload_budget_rate=1.0, upload_budget_burst=2.0)
    h.send(ev.PeerConnected(peer_id="B"))
    assert isinstance(ask(h, "A", 0, 1), act.SendSegmentToPeer)
    assert isinstance(ask(h, "A", 1, 2), act.SendSegmentAbsent)
    assert isinstance(ask(h, "B", 1, 3), act.SendSegmentToPeer)  # A's spending is not B's
    off = seeder(upload_budget_rate=None)
    for request_id in range(200):
        assert isinstance(ask(off, "A", request_id % 20, request_id), act.SendSegmentToPeer)


def test_asking_again_for_what_we_answered_absent_is_a_strike() -> None:
    h = seeder(upload_budget_rate=1.0, upload_budget_burst=2.0)
    assert isinstance(ask(h, "A", 0, 0), act.SendSegmentToPeer)
    for request_id in range(1, REPEATS_BEFORE_STRIKE + 1):  # the first absent, then repeats
        assert isinstance(ask(h, "A", 1, request_id), act.SendSegmentAbsent)
    assert not [n for n in h.notifications if isinstance(n, nt.PeerMisbehaved)]
    assert isinstance(ask(h, "A", 1, 99), act.DisconnectPeer)
    (misbehaved,) = [n for n in h.notifications if isinstance(n, nt.PeerMisbehaved)]
    assert misbehaved.peer_id == "A" and "absent" in misbehaved.reason
    assert [a.peer_id for a in h.actions if isinstance(a, act.DisconnectPeer)] == ["A"]


def test_asking_again_after_our_announcement_is_honest() -> None:
    """P2P Media Loader and p2ploader ask again for a segment answered "absent" only after the
    uploader's next announcement; that never counts."""
    h = seeder(upload_budget_rate=1.0, upload_budget_burst=2.0)
    assert isinstance(ask(h, "A", 0, 0), act.SendSegmentToPeer)
    for request_id in range(1, 4 * REPEATS_BEFORE_STRIKE):
        assert isinstance(ask(h, "A", 1, request_id), act.SendSegmentAbsent)
        h.scheduler._announcement(peer_id=None)  # what a cache change sends every peer
    assert not [n for n in h.notifications if isinstance(n, nt.PeerMisbehaved)]


# --------------------------------------------------------------------------- bounds from the stream


def test_segment_size_limit_follows_the_bitrate_with_a_floor() -> None:
    # 10 Mbit/s, 6 s segments: 7.5 MB per segment, 30 MB allowed.
    assert (
        segment_size_limit(bandwidth=10_000_000, target_duration=6, fallback=MAX_SEGMENT_SIZE) == 30_000_000
    )
    # The sample stream (343 kbit/s, 2 s): the floor.
    assert segment_size_limit(bandwidth=342_912, target_duration=2, fallback=MAX_SEGMENT_SIZE) == (
        SEGMENT_SIZE_FLOOR
    )
    # Unknown bitrate (a media playlist without a master): the absolute bound.
    assert segment_size_limit(bandwidth=0, target_duration=6, fallback=MAX_SEGMENT_SIZE) == MAX_SEGMENT_SIZE
    assert segment_size_limit(bandwidth=10**12, target_duration=10, fallback=MAX_SEGMENT_SIZE) == (
        MAX_SEGMENT_SIZE
    )


def test_announcement_id_limit_follows_the_window() -> None:
    assert announcement_id_limit(30) == 60 + ANNOUNCEMENT_MARGIN
    assert announcement_id_limit(0) == ANNOUNCEMENT_MARGIN
