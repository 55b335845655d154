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


def test_a_pause_lasts_max_hold_at_most_and_uploads_get_as_long_again() -> None:
    # Under the 2 s a receiver waits for bytes; and a slow origin, whose every download is urgent,
    # must not stop our uploads: they run at least half the time.
    hold = UploadHold()
    assert hold.max_hold == MAX_HOLD == 1.5
    hold.hold("lost", now=10.0)
    assert hold.held(now=10.0) and hold.held(now=11.49)
    assert not hold.held(now=11.5)  # the pause ends
    hold.hold("next urgent download", now=12.0)
    assert not hold.held(now=12.99)  # uploads' turn, holds or not
    assert hold.held(now=13.0)  # a new pause
    hold.release("lost")
    hold.release("next urgent download")
    assert not hold.held(now=13.2)
    assert hold.paused_time == pytest.approx(1.5 + 0.2)


@pytest.mark.parametrize("value", [0.0, -1.0, math.inf, math.nan])
def test_max_hold_must_be_a_positive_finite_number(value: float) -> None:
    with pytest.raises(UsageError, match="max_hold"):
        UploadHold(max_hold=value)


def test_upload_yield_time_defaults_to_four_seconds_zero_turns_it_off_and_nonsense_is_refused() -> None:
    assert LoaderConfig().upload_yield_time == 4.0
    off = LoaderConfig(upload_yield_time=0)
    assert LoaderConfig.from_faq(off.to_faq()).upload_yield_time == 0  # the config file can say so
    for bad in (-1.0, math.inf, None):
        with pytest.raises(ConfigError, match="upload_yield_time"):
            LoaderConfig(upload_yield_time=bad)  # type: ignore[arg-type]


def test_a_download_of_a_segment_needed_soon_is_urgent_and_a_far_one_is_not() -> None:
    # Defaults as shipped (4 s); 2 s segments.
    h = Harness(LoaderConfig(), segments=30)
    h.play_at(10)
    h.request(11)  # needed in 2 s
    # The same fetch 8 s ahead (the FAQ policy loads it over HTTP once it counts as required).
    far = Harness(LoaderConfig(required_segments_priority=10), segments=30)
    far.play_at(10)
    far.request(14)
    assert [(s.segment.id.sequence, s.urgent) for s in h.http_starts()][:1] == [(11, True)]
    assert [(s.segment.id.sequence, s.urgent) for s in far.http_starts()][:1] == [(14, False)]


def test_before_playback_what_the_player_asked_for_is_urgent_and_a_prefetch_is_not() -> None:
    # An application that never reports a playback position must not pause its uploads for
    # every prefetch.
    h = Harness(LoaderConfig(), segments=30)
    h.request(0)
    starts = h.http_starts()
    assert [(s.segment.id.sequence, s.urgent) for s in starts][:1] == [(0, True)]
    assert all(not s.urgent for s in starts if s.segment.id.sequence != 0)


def test_without_upload_yield_time_no_download_is_urgent() -> None:
    h = Harness(LoaderConfig(upload_yield_time=0), segments=30)
    h.request(0)
    h.play_at(0)
    h.request(1)
    assert h.http_starts() and not any(start.urgent for start in h.http_starts())
