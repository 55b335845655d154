"""Uploads yield to our own urgent downloads (sans-IO): the scheduler marks an HTTP download of a
segment the player needs within ``upload_yield_time`` as urgent, and :class:`UploadHold` pauses
uploads while one is in flight, each hold for at most ``max_hold`` seconds."""

from __future__ import annotations

import math

import pytest

from p2ploader.config import LoaderConfig
from p2ploader.core.upload_control import MAX_HOLD, UploadHold
from p2ploader.errors import ConfigError, UsageError
from p2ploader.testing.harness import Harness


def test_a_hold_pauses_uploads_until_released() -> None:
    hold = UploadHold()
    assert not hold.held(now=0.0)
    hold.hold("a", now=0.0)
    hold.hold("b", now=0.5)
    assert hold.held(now=1.0)
    hold.release("a")
    assert hold.held(now=1.0)  # b is still in flight
    hold.release("b")
    hold.release("never taken")  # ignored
    assert not hold.held(now=1.0)
    assert hold.holds == 2


def test_a_lost_hold_stops_pausing_after_max_hold() -> None:
    hold = UploadHold()
    assert hold.max_hold == MAX_HOLD == 3.0
    hold.hold("lost", now=10.0)
    assert hold.held(now=12.99)
    assert not hold.held(now=13.0)
    assert not hold.held(now=100.0)  # and it was forgotten, not only ignored


@pytest.mark.parametrize("value", [0.0, -1.0, math.inf, math.nan])
def test_max_hold_must_be_a_positive_finite_number(value: float) -> None:
    with pytest.raises(UsageError, match="max_hold"):
        UploadHold(max_hold=value)


def test_upload_yield_time_defaults_to_four_seconds_and_rejects_nonsense() -> None:
    assert LoaderConfig().upload_yield_time == 4.0
    assert LoaderConfig(upload_yield_time=None).upload_yield_time is None
    with pytest.raises(ConfigError, match="upload_yield_time"):
        LoaderConfig(upload_yield_time=0.0)


def test_a_download_of_a_segment_needed_soon_is_urgent_and_a_far_one_is_not() -> None:
    # Defaults as shipped (4 s); 2 s segments: playhead at segment 10 (20 s).
    h = Harness(LoaderConfig(), segments=30)
    h.play_at(10)
    h.request(11)  # needed in 2 s
    h.request(14)  # needed in 8 s
    urgent = {start.segment.id.sequence: start.urgent for start in h.http_starts()}
    assert urgent[11] is True
    assert urgent.get(14, False) is False


def test_before_playback_every_download_is_urgent() -> None:
    h = Harness(LoaderConfig(), segments=30)
    h.request(0)
    starts = h.http_starts()
    assert starts and all(start.urgent for start in starts)


def test_without_upload_yield_time_no_download_is_urgent() -> None:
    h = Harness(LoaderConfig(upload_yield_time=None), segments=30)
    h.request(0)
    h.play_at(0)
    h.request(1)
    assert h.http_starts() and not any(start.urgent for start in h.http_starts())
