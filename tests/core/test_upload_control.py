"""The delay-based upload controller, on a driven clock."""

from __future__ import annotations

import math

import pytest

from p2ploader.core.upload_control import (
    BASE_BUCKETS,
    DEFAULT_TARGET,
    MAX_LINKS,
    MAX_ROUND_TRIP,
    MIN_PACED_CHUNK,
    UploadController,
)
from p2ploader.errors import UsageError

BASE = 0.010  # seconds: the round trip with an empty queue


def sending(
    control: UploadController, rate: float, *, start: float, seconds: float, step: float = 0.05
) -> float:
    """Report ``rate`` bytes/s sent from ``start`` for ``seconds``; returns the end time."""
    now = start
    while now < start + seconds:
        control.sent(int(rate * step), now=now)
        now += step
    return now


def feed(
    control: UploadController,
    rtts: list[float],
    *,
    start: float,
    step: float = 0.05,
    link: object = "a",
    rate: float = 200_000.0,
) -> float:
    """Samples ``rtts`` one per ``step`` seconds while sending ``rate`` bytes/s; returns the end time."""
    now = start
    for rtt in rtts:
        control.sent(int(rate * step), now=now)
        control.observe(link, rtt, now=now)
        now += step
    return now


def test_no_samples_means_no_limit() -> None:
    control = UploadController()
    sending(control, 1_000_000, start=0.0, seconds=5.0)
    assert control.rate is None
    assert control.statistics().queuing_delay is None


def test_a_clear_queue_sets_no_limit() -> None:
    control = UploadController()
    feed(control, [BASE] * 100, start=0.0)
    assert control.rate is None
    assert control.statistics().queuing_delay == pytest.approx(0.0)


def test_growing_delay_cuts_the_rate_from_the_sending_rate() -> None:
    control = UploadController()
    now = sending(control, 200_000, start=0.0, seconds=3.0)
    now = feed(control, [BASE] * 4, start=now)
    assert control.rate is None
    # The queue grows: 10 ms more per sample; the filter needs CURRENT_FILTER samples above target.
    feed(control, [BASE + 0.01 * i for i in range(1, 10)], start=now)
    assert control.rate is not None
    assert control.rate == pytest.approx(0.75 * 200_000, rel=0.1)
    assert control.statistics().cuts == 1


def test_a_limited_rate_cuts_messages_to_half_the_targets_worth_and_no_less_than_a_packet() -> None:
    control = UploadController()
    assert control.chunk_limit() is None  # not limited: whole messages
    now = sending(control, 200_000, start=0.0, seconds=3.0)
    now = feed(control, [BASE] * 4, start=now)
    feed(control, [BASE + 0.01 * i for i in range(1, 10)], start=now)
    assert control.rate is not None
    assert control.chunk_limit() == int(control.rate * DEFAULT_TARGET / 2)
    slow = UploadController(floor=1_000.0, target=0.01)
    now = sending(slow, 10_000, start=0.0, seconds=2.0)
    now = feed(slow, [BASE] * 4, start=now, rate=10_000)
    feed(slow, [1.0] * 200, start=now, rate=10_000)
    assert slow.rate is not None and slow.rate * slow.target / 2 < MIN_PACED_CHUNK
    assert slow.chunk_limit() == MIN_PACED_CHUNK


def test_one_late_sample_is_noise() -> None:
    control = UploadController()
    now = sending(control, 200_000, start=0.0, seconds=2.0)
    feed(control, [BASE, BASE, BASE, 0.5, BASE, BASE, 0.4, BASE], start=now)
    assert control.rate is None
    assert control.statistics().cuts == 0


def test_cuts_at_most_once_per_round_trip_while_the_delay_stays() -> None:
    control = UploadController()
    now = sending(control, 200_000, start=0.0, seconds=2.0)
    now = feed(control, [BASE] * 4, start=now)
    # 0.5 s round trips (490 ms of queue) sampled every 50 ms for 2 s: 4 cuts, not 40.
    feed(control, [0.5] * 40, start=now)
    assert control.statistics().cuts == 4
    assert control.rate == pytest.approx(200_000 * 0.75**4, rel=0.1)


def test_the_rate_never_falls_below_the_floor() -> None:
    control = UploadController(floor=20_000.0)
    now = sending(control, 100_000, start=0.0, seconds=2.0)
    now = feed(control, [BASE] * 4, start=now)
    feed(control, [1.0] * 1000, start=now)  # 50 s: within the base's window
    assert control.rate == 20_000.0


def test_a_clear_queue_raises_the_rate_additively_then_lifts_the_limit() -> None:
    control = UploadController(increase=50_000.0, ceiling=1_000_000.0)
    now = sending(control, 200_000, start=0.0, seconds=2.0)
    now = feed(control, [BASE] * 4, start=now)
    now = feed(control, [0.3] * 4, start=now)
    cut = control.rate
    assert cut is not None
    # 1 s of samples at the base delay: + 50 kB/s.
    now = feed(control, [BASE] * 20, start=now)
    assert control.rate == pytest.approx(cut + 50_000, rel=0.01)
    # Half the target of queuing delay: half the increase.
    rate = control.rate
    now = feed(control, [BASE + DEFAULT_TARGET / 2] * 20, start=now)
    assert control.rate == pytest.approx(rate + 25_000, rel=0.05)
    # Long enough without a queue: past the ceiling, no limit at all.
    feed(control, [BASE] * 400, start=now)
    assert control.rate is None


def test_a_delay_just_under_the_target_holds_the_rate() -> None:
    control = UploadController()
    now = sending(control, 200_000, start=0.0, seconds=2.0)
    now = feed(control, [BASE] * 4, start=now)
    now = feed(control, [0.3] * 4, start=now)
    cut = control.rate
    feed(control, [BASE + DEFAULT_TARGET * 0.999] * 100, start=now)
    assert control.rate == pytest.approx(cut, rel=0.01)
    assert control.statistics().cuts == 1


def test_a_long_silence_grants_at_most_one_second_of_growth() -> None:
    control = UploadController(increase=50_000.0)
    now = sending(control, 200_000, start=0.0, seconds=2.0)
    now = feed(control, [BASE] * 4, start=now)
    now = feed(control, [0.3] * 4, start=now)
    cut = control.rate
    assert cut is not None
    control.observe("a", BASE, now=now + 600.0)
    assert control.rate == pytest.approx(cut + 50_000)


def test_the_base_delay_expires_with_its_window() -> None:
    """A base measured long ago (a route that changed) stops counting after ``base_window``: a
    longer round trip becomes the new base instead of a queue for ever."""
    control = UploadController(base_window=60.0)
    now = sending(control, 200_000, start=0.0, seconds=2.0)
    now = feed(control, [BASE] * 4, start=now)
    # From now on the path is 200 ms long; sampled once a second (few samples: few cuts).
    later = feed(control, [0.2] * 50, start=now, step=1.0)
    assert control.statistics().queuing_delay == pytest.approx(0.19)
    assert control.statistics().cuts > 0
    later = feed(control, [0.2] * 30, start=later, step=1.0)  # past 60 s + one bucket: 10 ms is gone
    assert control.statistics().queuing_delay == pytest.approx(0.0)
    cuts, rate = control.statistics().cuts, control.rate
    assert rate is not None
    feed(control, [0.2] * 10, start=later, step=1.0)
    assert control.statistics().cuts == cuts
    assert control.rate is None or control.rate > rate


def test_the_base_delay_is_per_link() -> None:
    """A distant peer's long round trip is its base, not a queue."""
    control = UploadController()
    now = sending(control, 200_000, start=0.0, seconds=2.0)
    now = feed(control, [BASE] * 10, start=now, link="near")
    feed(control, [0.2] * 10, start=now, link="far")
    assert control.rate is None
    assert control.statistics().cuts == 0


def test_a_forgotten_link_starts_a_new_base() -> None:
    control = UploadController()
    now = sending(control, 200_000, start=0.0, seconds=2.0)
    now = feed(control, [BASE] * 4, start=now)
    control.forget("a")
    feed(control, [0.2] * 10, start=now)
    assert control.statistics().cuts == 0


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf, -0.01, 0.0, MAX_ROUND_TRIP * 2, 1e300])
def test_impossible_samples_are_ignored(bad: float) -> None:
    control = UploadController()
    now = sending(control, 200_000, start=0.0, seconds=2.0)
    now = feed(control, [BASE] * 4, start=now)
    feed(control, [bad] * 20, start=now)
    statistics = control.statistics()
    assert control.rate is None
    assert statistics.rejected_samples == 20
    assert statistics.samples == 4
    assert statistics.queuing_delay == pytest.approx(0.0)


def test_memory_is_bounded() -> None:
    control = UploadController(base_window=10.0)
    now = 0.0
    for i in range(MAX_LINKS * 3):
        control.observe(i, BASE, now=now)
        now += 0.01
    assert len(control._links) == MAX_LINKS
    assert set(control._links) == set(range(MAX_LINKS * 2, MAX_LINKS * 3))  # the stalest went
    for _ in range(10_000):
        control.observe("a", BASE, now=now)
        now += 0.1
    assert len(control._links["a"].buckets) <= BASE_BUCKETS + 1


def test_time_going_backwards_grants_nothing() -> None:
    control = UploadController()
    now = sending(control, 200_000, start=0.0, seconds=2.0)
    now = feed(control, [BASE] * 4, start=now)
    now = feed(control, [0.3] * 4, start=now)
    cut = control.rate
    control.observe("a", BASE, now=now - 100.0)
    assert control.rate == cut


def test_a_cut_without_bytes_sent_goes_to_the_floor() -> None:
    control = UploadController(floor=16_000.0)
    now = feed(control, [BASE] * 4, start=0.0, rate=0.0)
    feed(control, [0.3] * 4, start=now, rate=0.0)
    assert control.rate == 16_000.0


@pytest.mark.parametrize(
    "kwargs",
    [
        {"target": 0.0},
        {"target": math.nan},
        {"floor": 0.0},
        {"floor": 10.0, "ceiling": 5.0},
        {"ceiling": math.inf},
        {"increase": -1.0},
        {"decrease_factor": 1.0},
        {"decrease_factor": 0.0},
        {"base_window": 0.0},
    ],
)
def test_bad_settings_are_refused(kwargs: dict[str, float]) -> None:
    with pytest.raises(UsageError, match=r"must be|need"):
        UploadController(**kwargs)


def test_idle_time_between_uploads_does_not_lower_the_rate_a_first_cut_starts_from() -> None:
    """Two 0.6 s uploads at 2 MB/s, a minute apart (an average of 40 kB/s): the first cut starts
    from the 2 MB/s the uplink carried while sending."""
    control = UploadController()
    now = sending(control, 2_000_000, start=0.0, seconds=0.6)
    now = sending(control, 2_000_000, start=now + 60.0, seconds=0.6)
    now = feed(control, [BASE] * 4, start=now, rate=2_000_000)
    feed(control, [0.3] * 4, start=now, rate=2_000_000)
    assert control.rate == pytest.approx(0.75 * 2_000_000, rel=0.1)
