"""The proxy's estimate of where its players play, which a parts swarm counts its deadlines from
(``p2ploader.proxy.low_latency.PlayersPlayhead``): pure arithmetic on items and live edges."""

from __future__ import annotations

from p2ploader.core.ll_follower import LowLatencyItem, StartPosition
from p2ploader.core.segments import SegmentId
from p2ploader.proxy.low_latency import PlayersPlayhead

PART = 0.5


def part(start: float, *, after_resync: bool = False) -> LowLatencyItem:
    return LowLatencyItem(
        kind="part",
        segment_id=SegmentId("v0", int(start // 2)),
        data=b"x",
        start=start,
        duration=PART,
        after_resync=after_resync,
    )


def test_the_players_stay_as_far_behind_live_as_the_stream_started() -> None:
    playhead = PlayersPlayhead()
    # The stream starts 3 s behind a live edge at 103 and hands the backlog at once.
    assert playhead.observe(part(100.0), live_edge=103.0) == 100.0
    assert playhead.observe(part(100.5), live_edge=103.0) == 100.0
    assert playhead.observe(part(102.5), live_edge=103.0) == 100.0
    # Then one part as each is published: the players are still 3 s behind the edge.
    assert playhead.observe(part(103.0), live_edge=103.5) == 100.5
    assert playhead.observe(part(103.5), live_edge=104.0) == 101.0


def test_an_origin_pause_does_not_run_the_players_ahead() -> None:
    playhead = PlayersPlayhead()
    playhead.observe(part(100.0), live_edge=103.0)
    # Nothing published for 10 s of wall time, then the edge moves on by one part: counted from
    # the edge, the players are where the edge says, not 10 s further.
    assert playhead.observe(part(103.0), live_edge=103.5) == 100.5


def test_a_resync_takes_the_distance_again_on_the_new_timeline() -> None:
    playhead = PlayersPlayhead()
    playhead.observe(part(100.0), live_edge=103.0)
    assert playhead.observe(part(0.0, after_resync=True), live_edge=2.0) == 0.0
    assert playhead.observe(part(2.0), live_edge=2.5) == 0.5  # 2 s behind, as the new start was
    assert playhead.observe(part(2.5), live_edge=3.0) == 1.0


def test_never_past_the_item_just_handed() -> None:
    playhead = PlayersPlayhead()
    playhead.observe(part(100.0), live_edge=100.5)  # started 0.5 s behind
    assert playhead.observe(part(100.5), live_edge=102.0) == 100.5  # the edge ran ahead of the items


def test_the_players_start_at_the_hold_back_not_at_the_key_frame() -> None:
    # The stream loads from a key frame at 100 (a segment start) and plays from 101.5, PART-HOLD-BACK
    # (1.5 s) behind an edge at 103: the players are 1.5 s behind live, not 3 s.
    start = StartPosition(sequence=50, part_index=0, start=100.0, play_from=101.5, edge=103.0)
    playhead = PlayersPlayhead()
    assert playhead.observe(part(100.0), live_edge=103.0, start=start) == 100.0  # not past the item
    assert playhead.observe(part(103.0), live_edge=103.5, start=start) == 102.0
    assert playhead.observe(part(103.5), live_edge=104.0, start=start) == 102.5
