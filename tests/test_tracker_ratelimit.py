"""The tracker's token bucket, on times the test gives (seconds)."""

from __future__ import annotations

from p2ploader.tracker.ratelimit import TokenBucket


def test_a_bucket_allows_its_burst_then_its_rate() -> None:
    bucket = TokenBucket.full(capacity=3, rate=0.5, now=100.0)  # 3 at once, then one per 2 s
    assert [bucket.take(100.0) for _ in range(4)] == [True, True, True, False]
    assert bucket.wait_for(100.0) == 2.0
    assert not bucket.take(101.9)
    assert bucket.take(102.0)
    assert bucket.wait_for(102.0) == 2.0


def test_a_bucket_never_holds_more_than_its_capacity() -> None:
    bucket = TokenBucket.full(capacity=2, rate=1.0, now=0.0)
    assert bucket.take(0.0)
    assert bucket.is_full(1.0)
    assert bucket.available(1000.0) == 2.0  # a long pause buys no bigger burst
    assert [bucket.take(1000.0) for _ in range(3)] == [True, True, False]


def test_a_clock_going_back_adds_nothing() -> None:
    bucket = TokenBucket.full(capacity=1, rate=1.0, now=50.0)
    assert bucket.take(50.0)
    assert not bucket.take(10.0)  # earlier than the last update: no refill, no negative time
    assert bucket.wait_for(10.0) == 1.0
    assert bucket.take(51.0)
