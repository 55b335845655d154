"""The sans-IO playback model (startup, stalls, seeking, live edge) and the ABR rule."""

from __future__ import annotations

import pytest

from p2ploader.playback import AbrController, PlaybackModel

# ---------------------------------------------------------------------------------------------
# PlaybackModel: what it always did


def test_starts_once_the_startup_buffer_is_filled() -> None:
    model = PlaybackModel(start_position=10.0, now=0.0, startup_buffer=2.0)
    model.add_segment(10.0, 1.0, now=0.5)
    assert model.state == "starting"
    model.add_segment(11.0, 1.0, now=0.8)
    assert model.state == "playing" and model.startup_time == pytest.approx(0.8)
    assert model.buffer_ahead(now=1.8) == pytest.approx(1.0)
    assert model.position == pytest.approx(11.0) and model.played == pytest.approx(1.0)


def test_an_empty_buffer_is_a_stall_and_rebuffering_is_timed() -> None:
    model = PlaybackModel(start_position=0.0, now=0.0, startup_buffer=2.0)
    model.add_segment(0.0, 2.0, now=0.0)
    assert model.update(now=3.0) == "stalled"
    assert model.stalls == 1 and model.rebuffer_time == pytest.approx(1.0)
    model.add_segment(2.0, 2.0, now=4.0)
    assert model.state == "playing" and model.rebuffer_time == pytest.approx(2.0)
    report = model.report(now=5.0)
    assert (report.stalls, report.seeks, report.seek_time) == (1, 0, 0.0)
    assert report.buffer == pytest.approx(1.0)


def test_end_of_stream_plays_out_and_ends() -> None:
    model = PlaybackModel(start_position=0.0, now=0.0)
    model.add_segment(0.0, 1.0, now=0.0)
    model.end_of_stream(now=0.0)
    assert model.state == "playing"
    assert model.update(now=2.0) == "ended" and model.stalls == 0


def test_a_gap_in_a_live_window_jumps_forward() -> None:
    model = PlaybackModel(start_position=0.0, now=0.0, startup_buffer=1.0)
    model.add_segment(10.0, 2.0, now=0.0)
    assert model.position == 10.0 and model.state == "playing"


# ---------------------------------------------------------------------------------------------
# Seeking


def test_seek_empties_the_buffer_and_restarts_with_the_startup_rule() -> None:
    model = PlaybackModel(start_position=0.0, now=0.0, startup_buffer=2.0)
    for i in range(5):
        model.add_segment(2.0 * i, 2.0, now=0.0)
    model.update(now=1.0)
    model.seek(31.0, now=1.0)
    assert model.state == "seeking" and model.position == 31.0 and model.buffer == 0.0
    assert model.update(now=1.5) == "seeking"  # time passes, nothing plays
    model.add_segment(30.0, 2.0, now=1.6)  # the segment holding 31 s: only 1 s of it is ahead
    assert model.state == "seeking"
    model.add_segment(32.0, 2.0, now=2.0)
    assert model.state == "playing" and model.buffer == pytest.approx(3.0)
    report = model.report(now=2.0)
    assert report.seeks == 1 and report.seek_time == pytest.approx(1.0)
    assert report.stalls == 0 and report.rebuffer_time == 0.0
    assert report.startup_time == 0.0  # the first start is not moved by a seek


def test_seek_is_not_a_stall_even_when_waiting_long() -> None:
    model = PlaybackModel(start_position=0.0, now=0.0, startup_buffer=1.0)
    model.add_segment(0.0, 2.0, now=0.0)
    model.seek(100.0, now=0.5)
    assert model.update(now=10.0) == "seeking"
    assert model.stalls == 0 and model.seek_time == pytest.approx(9.5)


def test_seek_after_the_end_plays_again() -> None:
    model = PlaybackModel(start_position=0.0, now=0.0, startup_buffer=1.0)
    model.add_segment(0.0, 1.0, now=0.0)
    model.end_of_stream(now=0.0)
    assert model.update(now=2.0) == "ended"
    model.seek(0.0, now=2.0)
    model.add_segment(0.0, 1.0, now=2.0)
    assert model.state == "playing"
    model.end_of_stream(now=2.0)
    assert model.update(now=4.0) == "ended" and model.played == pytest.approx(2.0)


def test_a_stall_after_a_seek_counts_as_a_stall() -> None:
    model = PlaybackModel(start_position=0.0, now=0.0, startup_buffer=1.0)
    model.seek(50.0, now=0.0)
    model.add_segment(50.0, 1.0, now=0.0)
    assert model.update(now=2.0) == "stalled" and model.stalls == 1 and model.seeks == 1


# ---------------------------------------------------------------------------------------------
# Live edge


def test_live_edge_distance() -> None:
    model = PlaybackModel(start_position=20.0, now=0.0, startup_buffer=2.0)
    assert model.live_edge_distance is None  # VOD until an edge is reported
    model.set_live_edge(26.0, now=0.0)
    assert model.live_edge_distance == pytest.approx(6.0)
    model.add_segment(20.0, 2.0, now=0.0)
    model.add_segment(22.0, 2.0, now=0.0)
    model.set_live_edge(28.0, now=2.0)  # the window moved on while we played 2 s
    assert model.live_edge_distance == pytest.approx(6.0)
    assert model.report(now=3.0).live_edge_distance == pytest.approx(5.0)
    model.set_live_edge(None, now=3.0)
    assert model.report(now=3.0).live_edge_distance is None


def test_the_report_stays_compatible() -> None:
    report = PlaybackModel(start_position=0.0, now=0.0).report(now=1.0)
    assert (report.startup_time, report.stalls, report.rebuffer_time, report.played, report.state) == (
        None,
        0,
        0.0,
        0.0,
        "starting",
    )


# ---------------------------------------------------------------------------------------------
# ABR

LADDER = [200_000, 350_000, 600_000]  # bits/s, the bundled sample's renditions


def feed(abr: AbrController, bits_per_second: float, count: int = 10) -> None:
    for _ in range(count):
        abr.add_sample(int(bits_per_second / 8), 1.0)  # one second's worth, in one second


def test_abr_stays_without_samples() -> None:
    abr = AbrController(LADDER, current=1)
    assert abr.estimate is None and abr.target() == 1
    assert abr.choose(buffer=0.0, now=0.0) == 1 and abr.switches == 0


def test_abr_steps_up_one_rendition_at_a_time_with_an_interval() -> None:
    abr = AbrController(LADDER, current=0, min_switch_interval=6.0)
    feed(abr, 10_000_000)
    assert abr.target() == 2
    assert abr.choose(buffer=1.0, now=0.0) == 0  # starving (under up_buffer): no up-switch
    assert abr.choose(buffer=3.0, now=1.0) == 1  # one step, not two
    assert abr.choose(buffer=3.0, now=4.0) == 1  # too soon after the last switch
    assert abr.choose(buffer=3.0, now=7.0) == 2
    assert abr.switches == 2


def test_abr_goes_down_at_once_in_an_emergency() -> None:
    abr = AbrController(LADDER, current=2)
    feed(abr, 10_000_000)
    assert abr.choose(buffer=5.0, now=0.0) == 2
    feed(abr, 150_000, count=12)  # the fast average follows the drop
    assert abr.target() == 0
    abr._last_switch = 0.0  # a switch just happened
    assert abr.choose(buffer=3.0, now=1.0) == 0  # below low_buffer: ignores the interval


def test_abr_holds_while_the_buffer_absorbs_a_dip() -> None:
    abr = AbrController(LADDER, current=2, high_buffer=8.0)
    feed(abr, 300_000)
    assert abr.target() == 0
    assert abr.choose(buffer=9.0, now=0.0) == 2  # a full buffer rides it out
    assert abr.choose(buffer=6.0, now=1.0) == 0  # between low and high: down once the interval allows


def test_abr_safety_margin_and_unsorted_ladders() -> None:
    abr = AbrController([600_000, 200_000, 350_000], current=1, safety=0.8)
    feed(abr, 500_000)  # 0.8 * 500k = 400k: 350k fits, 600k does not
    assert abr.target() == 2
    feed(abr, 100_000, count=30)  # below everything: the lowest
    assert abr.target() == 1


def test_abr_estimate_is_the_smaller_of_fast_and_slow() -> None:
    abr = AbrController(LADDER)
    feed(abr, 1_000_000)
    feed(abr, 8_000_000, count=1)  # one fast sample does not convince the slow average
    assert abr.estimate is not None and abr.estimate < 2_000_000
    abr.add_sample(1000, 0.0)  # a zero-time sample counts as min_sample_seconds, not infinity
    assert abr.estimate is not None and abr.estimate < 2_000_000


@pytest.mark.parametrize(
    "kwargs",
    [
        {"bandwidths": []},
        {"bandwidths": [0, 100]},
        {"bandwidths": [100], "current": 1},
        {"bandwidths": [100], "safety": 0.0},
        {"bandwidths": [100], "low_buffer": 9.0, "high_buffer": 8.0},
    ],
)
def test_abr_rejects_bad_settings(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError):  # noqa: PT011
        AbrController(**kwargs)  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------------------
# PlaybackModel with a separate audio track


def test_two_tracks_play_only_what_both_have() -> None:
    model = PlaybackModel(start_position=0.0, now=0.0, startup_buffer=2.0, tracks=("main", "audio"))
    model.add_segment(0.0, 2.0, now=0.0, track="main")
    model.add_segment(2.0, 2.0, now=0.0, track="main")
    assert model.state == "starting" and model.buffer == 0.0  # no audio yet
    model.add_segment(0.0, 2.005, now=0.5, track="audio")
    assert model.state == "playing" and model.buffer == pytest.approx(2.005 - 0.0)
    assert model.track_buffer_ahead("main", now=0.5) == pytest.approx(4.0)
    assert model.track_buffer_ahead("audio", now=1.5) == pytest.approx(1.005)


def test_two_tracks_stall_when_the_audio_runs_out() -> None:
    model = PlaybackModel(start_position=0.0, now=0.0, startup_buffer=2.0, tracks=("main", "audio"))
    for start in (0.0, 2.0, 4.0):
        model.add_segment(start, 2.0, now=0.0, track="main")
    model.add_segment(0.0, 2.0, now=0.0, track="audio")
    assert model.update(now=3.0) == "stalled" and model.stalls == 1  # video up to 6 s, audio to 2 s
    assert model.position == pytest.approx(2.0)
    model.add_segment(2.0, 2.0, now=3.5, track="audio")
    assert model.state == "playing" and model.rebuffer_time == pytest.approx(1.5)


def test_two_tracks_jump_together_over_a_hole_in_the_live_window() -> None:
    model = PlaybackModel(start_position=0.0, now=0.0, startup_buffer=2.0, tracks=("main", "audio"))
    model.add_segment(10.0, 2.0, now=0.0, track="main")
    assert model.position == 0.0  # the audio has not moved on yet
    model.add_segment(10.0, 2.0, now=0.0, track="audio")
    assert model.position == pytest.approx(10.0) and model.state == "playing"


def test_a_seek_empties_every_track() -> None:
    model = PlaybackModel(start_position=0.0, now=0.0, startup_buffer=1.0, tracks=("main", "audio"))
    model.seek(20.0, now=0.0)
    model.add_segment(20.0, 2.0, now=0.1, track="main")
    assert model.state == "seeking"
    model.add_segment(20.0, 2.0, now=0.2, track="audio")
    assert model.state == "playing" and model.position == pytest.approx(20.0)


def test_the_default_is_one_track() -> None:
    model = PlaybackModel(start_position=0.0, now=0.0)
    assert model.tracks == ("main",)
    with pytest.raises(ValueError, match="at least one track"):
        PlaybackModel(start_position=0.0, now=0.0, tracks=())


def test_a_track_that_leaves_no_longer_holds_playback_back() -> None:
    model = PlaybackModel(start_position=0.0, now=0.0, startup_buffer=2.0, tracks=("main", "audio"))
    for start in (0.0, 2.0, 4.0):
        model.add_segment(start, 2.0, now=0.0, track="main")
    model.add_segment(0.0, 2.0, now=0.0, track="audio")
    assert model.buffer == pytest.approx(2.0)
    model.remove_track("audio", now=0.5)  # a switch to a variant that muxes its audio
    assert model.tracks == ("main",) and model.buffer == pytest.approx(5.5)
    assert model.update(now=5.0) == "playing" and model.stalls == 0


def test_a_track_that_joins_needs_data_from_the_position_on() -> None:
    model = PlaybackModel(start_position=0.0, now=0.0, startup_buffer=1.0)
    for start in (0.0, 2.0):
        model.add_segment(start, 2.0, now=0.0)
    model.add_track("audio", now=1.0)  # at position 1.0; what is buffered carried its own audio
    assert model.tracks == ("main", "audio") and model.buffer == pytest.approx(3.0)
    model.add_segment(4.0, 2.0, now=1.0, track="main")
    assert model.update(now=4.0) == "stalled"  # 4 s reached with no audio past 1 s
    model.add_segment(1.0, 5.0, now=4.5, track="audio")
    assert model.state == "playing" and model.buffer == pytest.approx(2.0)
