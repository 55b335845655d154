"""The swarm runner's pieces that need no process: the churn schedule, figures, the plot."""

from __future__ import annotations

import itertools
import math
from pathlib import Path

import pytest

from p2ploader.app.swarmrun import ChurnSettings, Session, SwarmRunner, ViewerTick, churn_schedule
from p2ploader.app.viewer import ViewerSpec

CHURN = ChurnSettings(leave_per_minute=4.0, rejoin_per_minute=12.0)


def by_viewer(sessions: tuple[Session, ...]) -> dict[int, list[Session]]:
    out: dict[int, list[Session]] = {}
    for session in sessions:
        out.setdefault(session.viewer, []).append(session)
    return out


def test_without_churn_every_viewer_joins_once_and_stays() -> None:
    sessions = churn_schedule(4, duration=60.0, stagger=2.5)
    assert [(s.viewer, s.number, s.start, s.end) for s in sessions] == [
        (0, 0, 0.0, 60.0),
        (1, 0, 2.5, 60.0),
        (2, 0, 5.0, 60.0),
        (3, 0, 7.5, 60.0),
    ]


def test_viewers_that_would_join_after_the_end_never_join() -> None:
    assert len(churn_schedule(10, duration=10.0, stagger=2.0)) == 5


def test_the_schedule_is_seeded_and_deterministic() -> None:
    first = churn_schedule(8, duration=300.0, stagger=1.0, churn=CHURN, seed=7)
    assert first == churn_schedule(8, duration=300.0, stagger=1.0, churn=CHURN, seed=7)
    assert first != churn_schedule(8, duration=300.0, stagger=1.0, churn=CHURN, seed=8)
    # A viewer's sessions do not depend on how many other viewers there are.
    fewer = churn_schedule(3, duration=300.0, stagger=1.0, churn=CHURN, seed=7)
    assert by_viewer(fewer)[2] == by_viewer(first)[2]


@pytest.mark.parametrize("seed", range(20))
def test_the_schedule_is_bounded(seed: int) -> None:
    churn = ChurnSettings(
        leave_per_minute=6.0, rejoin_per_minute=30.0, min_session=5.0, min_away=1.0, max_sessions=4
    )
    duration = 120.0
    sessions = churn_schedule(6, duration=duration, stagger=1.0, churn=churn, seed=seed)
    assert list(sessions) == sorted(sessions, key=lambda s: (s.start, s.viewer))
    for viewer, mine in by_viewer(sessions).items():
        assert len(mine) <= churn.max_sessions
        assert mine[0].start == viewer * 1.0
        assert [s.number for s in mine] == list(range(len(mine)))
        for session in mine:
            assert 0 <= session.start < session.end <= duration
            # At least min_session online, unless the run's end cut it short.
            assert session.duration >= churn.min_session - 1e-9 or session.end == duration
        for before, after in itertools.pairwise(mine):
            assert after.start - before.end >= churn.min_away - 1e-9
            assert after.start <= duration - churn.min_session


def test_churn_happens_at_roughly_the_rate_asked() -> None:
    # 50 viewers for 10 minutes, leaving twice a minute and rejoining after 5 s on average: with
    # min_session 5 s, a session lasts about 5 + 30 * exp(-5/30) s, so about 14 sessions each.
    churn = ChurnSettings(leave_per_minute=2.0, rejoin_per_minute=12.0, max_sessions=100)
    sessions = churn_schedule(50, duration=600.0, churn=churn, seed=1)
    per_viewer = len(sessions) / 50
    assert 9 < per_viewer < 20, per_viewer


def test_leaving_without_rejoining() -> None:
    churn = ChurnSettings(leave_per_minute=30.0, rejoin_per_minute=0.0)
    sessions = churn_schedule(5, duration=600.0, churn=churn, seed=3)
    assert len(sessions) == 5 and all(s.number == 0 and s.end < 600.0 for s in sessions)


def test_bad_settings_are_refused() -> None:
    with pytest.raises(ValueError):  # noqa: PT011
        ChurnSettings(leave_per_minute=-1.0)
    with pytest.raises(ValueError):  # noqa: PT011
        ChurnSettings(max_sessions=0)
    with pytest.raises(ValueError):  # noqa: PT011
        churn_schedule(3, duration=0.0)


def tick(t: float, *, http: int, p2p: int, buffer: float, peers: int = 1) -> ViewerTick:
    return ViewerTick(
        t=t,
        position=t,
        buffer=buffer,
        state="playing",
        live_edge_distance=6.0,
        http_bytes=http,
        p2p_bytes=p2p,
        p2p_uploaded_bytes=0,
        peers=peers,
        stalls=0,
        rendition="v1",
    )


def runner_with_reports() -> SwarmRunner:
    """Viewer 0 played two sessions (the first one finished), viewer 1 is playing."""
    sessions = [
        Session(viewer=0, number=0, start=0.0, end=10.0),
        Session(viewer=1, number=0, start=1.0, end=30.0),
        Session(viewer=0, number=1, start=15.0, end=30.0),
    ]
    runner = SwarmRunner(ViewerSpec(url="http://127.0.0.1:9/x.m3u8"), sessions)
    first, other, second = runner.runs
    first.status, first.started_at = "done", 0.0
    first.ticks = [tick(1.0, http=100, p2p=0, buffer=2.0), tick(2.0, http=200, p2p=0, buffer=3.0)]
    first.result = {"http_bytes": 300, "p2p_bytes": 100, "stalls": 1, "cpu_time": 0.5, "startup_time": 0.2}
    other.status, other.started_at = "playing", 1.0
    other.ticks = [tick(3.0, http=50, p2p=150, buffer=4.0, peers=2)]
    second.status, second.started_at = "playing", 15.0
    second.ticks = [tick(16.0, http=0, p2p=400, buffer=1.5, peers=1)]
    return runner


def test_figures_sum_sessions_and_take_the_latest_tick() -> None:
    runner = runner_with_reports()
    zero, one = runner.all_figures()
    assert (zero.sessions, zero.online, zero.http_bytes, zero.p2p_bytes, zero.stalls) == (2, 1, 300, 500, 1)
    assert zero.buffer == 1.5 and zero.peers == 1 and zero.startup_time == 0.2
    assert one.p2p_ratio == pytest.approx(0.75)
    total = runner.total([zero, one])
    assert (total.http_bytes, total.p2p_bytes, total.online, total.peers) == (350, 650, 2, 2)
    assert total.buffer == pytest.approx((1.5 + 4.0) / 2)
    points = runner.buffers()[0]
    assert points[:2] == [(1.0, 2.0), (2.0, 3.0)] and math.isnan(points[2][1]) and points[3] == (16.0, 1.5)


def test_upload_control_counts_add_up_over_sessions_and_viewers() -> None:
    runner = runner_with_reports()
    first, other, second = runner.runs
    first.result = {**(first.result or {}), "upload_control": {"samples": 40, "cuts": 3, "rate": None}}
    other.result = {"upload_control": None}  # the control off
    second.result = {"upload_control": {"samples": 2, "cuts": "x"}}  # a count that is no count
    zero, one = runner.all_figures()
    assert (zero.upload_control_samples, zero.upload_control_cuts) == (42, 3)
    assert (one.upload_control_samples, one.upload_control_cuts) == (0, 0)
    total = runner.total([zero, one])
    assert (total.upload_control_samples, total.upload_control_cuts) == (42, 3)


def test_the_plot_is_a_png(tmp_path: Path) -> None:
    from p2ploader.app.plots import plot_swarm
    from p2ploader.app.swarmrun import SwarmResult, TimelinePoint

    runner = runner_with_reports()
    rows = runner.all_figures()
    result = SwarmResult(
        url="http://127.0.0.1:9/x.m3u8",
        viewers=tuple(rows),
        total=runner.total(rows),
        sessions=tuple(runner.runs),
        timeline=tuple(
            TimelinePoint(t=float(t), http_bytes=100 * t, p2p_bytes=50 * t, online=2, origin_bytes=110 * t)
            for t in range(10)
        ),
        buffers=runner.buffers(),
        wall_time=10.0,
        runner_cpu_time=0.1,
        stopped_early=False,
    )
    path = plot_swarm(result, tmp_path / "swarm.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 10_000
    assert result.to_json()["total"]["p2p_bytes"] == 650
