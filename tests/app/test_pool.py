"""Viewer pools: many viewer sessions on one event loop, commanded by JSON lines, each reporting
tagged lines; a failing session does not stop the others; a swarm in pools shares over P2P."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import attrs
import pytest

from p2ploader.app.pool import MAX_LINE_BYTES, CpuShares, PoolProcess, ViewerPool, _read_commands
from p2ploader.app.swarmrun import SwarmRunner, churn_schedule
from p2ploader.app.viewer import ViewerSpec
from p2ploader.config import LoaderConfig
from p2ploader.sample import sample_path
from p2ploader.testing.origin import LiveSettings, OriginServer
from p2ploader.tracker import TrackerServer

ROOT = sample_path("ts")


def http_only(url: str, **changes: Any) -> ViewerSpec:
    fields: dict[str, Any] = {
        "config": LoaderConfig(use_p2p=False).to_faq(),
        "rendition": "v1",
        "check_bytes_against": str(ROOT),
        **changes,
    }
    return ViewerSpec(url=url, **fields)


class Lines:
    """What a pool emits, kept per key; ``ended`` fires on a session's last line."""

    def __init__(self) -> None:
        self.lines: list[dict[str, Any]] = []
        self.ended: dict[str, asyncio.Event] = {}
        self.heard: dict[str, asyncio.Event] = {}

    def __call__(self, line: dict[str, Any]) -> bool:
        self.lines.append(line)
        if line["key"] is not None:
            self.heard.setdefault(line["key"], asyncio.Event()).set()
        if line["type"] in ("result", "error") and line["key"] is not None:
            self.ended.setdefault(line["key"], asyncio.Event()).set()
        return True

    async def wait(self, *keys: str, within: float = 20.0) -> None:
        for key in keys:
            await asyncio.wait_for(self.ended.setdefault(key, asyncio.Event()).wait(), timeout=within)

    async def first(self, key: str, *, within: float = 20.0) -> None:
        """Until ``key`` printed a line."""
        await asyncio.wait_for(self.heard.setdefault(key, asyncio.Event()).wait(), timeout=within)

    def of(self, key: str | None) -> list[dict[str, Any]]:
        return [line for line in self.lines if line["key"] == key]

    def last(self, key: str) -> dict[str, Any]:
        return self.of(key)[-1]


def start(pool: ViewerPool, key: str, spec: ViewerSpec | dict[str, Any]) -> None:
    fields = attrs.asdict(spec) if isinstance(spec, ViewerSpec) else spec
    pool.handle(json.dumps({"op": "start", "key": key, "spec": fields}))


# --------------------------------------------------------------------------------------------------
# CPU shares: a fake CPU clock


def test_cpu_time_is_shared_equally_among_the_sessions_running() -> None:
    clock = [0.0]
    shares = CpuShares(clock=lambda: clock[0])
    shares.join("a")
    clock[0] = 2.0  # a alone: 2 s
    shares.join("b")
    clock[0] = 6.0  # a and b: 2 s each
    assert shares.leave("a") == pytest.approx(4.0)
    clock[0] = 7.0  # b alone: 1 s
    assert shares.leave("b") == pytest.approx(3.0)
    clock[0] = 9.0  # nobody: charged to no one
    shares.account()
    assert shares.shares == {}


# --------------------------------------------------------------------------------------------------
# The pool in this process, against the real local origin with P2P off


@pytest.mark.anyio
@pytest.mark.e2e
async def test_sessions_report_tagged_lines_and_a_failing_one_does_not_stop_the_others() -> None:
    lines = Lines()
    pool = ViewerPool(lines)
    with OriginServer(ROOT, live=LiveSettings(window_segments=10)) as origin:
        live = origin.url_for("live/master.m3u8")
        start(pool, "good-1", http_only(live, duration=3.0, tick_interval=0.5, seed=1))
        start(pool, "missing", http_only(origin.url_for("nope.m3u8"), duration=3.0))
        # A bug inside one session: comparing bytes against a folder that is not there raises
        # FileNotFoundError in its segment callback, in the middle of its playback.
        start(pool, "crash", http_only(live, duration=3.0, check_bytes_against="/nonexistent/vod"))
        start(pool, "good-2", http_only(live, duration=2.0, seed=2))
        await lines.wait("good-1", "missing", "crash", "good-2")
        await pool.wait()
    assert pool.sessions == {}
    for key in ("good-1", "good-2"):
        result = lines.last(key)
        assert result["type"] == "result", result
        assert result["stalls"] == 0 and result["mismatches"] == 0 and result["segments_played"] > 0
        assert result["cpu_time_shared"] is True and result["cpu_time"] >= 0
        assert 0 <= result["pool_loop_lag_max"] < 5
    ticks = lines.of("good-1")[:-1]
    assert ticks and all(t["type"] == "tick" for t in ticks) and ticks[-1]["http_bytes"] > 0
    assert [t["type"] for t in lines.of("good-2")] == ["result"]  # no tick_interval: no ticks
    assert lines.last("missing")["type"] == "error" and "404" in lines.last("missing")["error"]
    crash = lines.last("crash")
    assert crash["type"] == "error" and crash["error"].startswith("crashed: FileNotFoundError"), crash
    assert all(line["type"] in ("tick", "result", "error") for line in lines.lines)


@pytest.mark.anyio
@pytest.mark.e2e
async def test_stop_ends_one_session_early_and_it_still_reports() -> None:
    lines = Lines()
    pool = ViewerPool(lines)
    with OriginServer(ROOT, live=LiveSettings(window_segments=10)) as origin:
        live = origin.url_for("live/master.m3u8")
        start(pool, "stays", http_only(live, duration=4.0, tick_interval=0.5))
        start(pool, "leaves", http_only(live, duration=60.0, tick_interval=0.5))
        await lines.first("leaves")
        pool.handle(json.dumps({"op": "stop", "key": "leaves"}))
        await lines.wait("leaves", within=10)
        assert "stays" in pool.sessions  # the other one plays on
        await lines.wait("stays")
    leaves = lines.last("leaves")
    assert leaves["type"] == "result" and leaves["wall_time"] < 15, leaves
    assert lines.last("stays")["type"] == "result"


@pytest.mark.anyio
@pytest.mark.e2e
async def test_cancel_ends_a_session_with_an_error_line() -> None:
    lines = Lines()
    pool = ViewerPool(lines)
    with OriginServer(ROOT, live=LiveSettings(window_segments=10)) as origin:
        start(pool, "k", http_only(origin.url_for("live/master.m3u8"), duration=60.0, tick_interval=0.5))
        await lines.first("k")
        pool.handle(json.dumps({"op": "cancel", "key": "k"}))
        await lines.wait("k", within=10)
    assert lines.last("k") == {"key": "k", "type": "error", "error": "cancelled"}
    assert pool.sessions == {} and pool.cpu.shares == {}


@pytest.mark.anyio
async def test_bad_commands_are_refused_and_bounds_hold() -> None:
    lines = Lines()
    pool = ViewerPool(lines, max_sessions=1)
    spec = http_only("http://127.0.0.1:9/x.m3u8", duration=30.0)
    pool.handle(b"not json")
    pool.handle(b"[1, 2]")
    pool.handle(json.dumps({"op": "start", "spec": {}}))  # no key
    pool.handle(json.dumps({"op": "start", "key": "x" * 65, "spec": {}}))
    pool.handle(json.dumps({"op": "dance", "key": "a"}))
    pool.handle(json.dumps({"op": "stop", "key": "nobody"}))
    start(pool, "bad-field", {"url": "http://127.0.0.1:9/x.m3u8", "colour": "red"})
    start(pool, "not-an-object", [1])  # type: ignore[arg-type]
    start(pool, "first", spec)
    start(pool, "first", spec)  # already running
    start(pool, "second", spec)  # max_sessions=1
    refused = [line for line in lines.lines if line["type"] == "refused"]
    assert [line["key"] for line in refused] == [None, None, None, None, "a", "nobody", "first"]
    assert "unknown op 'dance'" in refused[4]["error"] and "already running" in refused[6]["error"]
    assert lines.last("bad-field")["type"] == "error" and "colour" in lines.last("bad-field")["error"]
    assert lines.last("not-an-object")["error"] == "bad spec: spec must be a JSON object"
    assert lines.last("second")["error"] == "the pool is full (1 sessions)"
    assert list(pool.sessions) == ["first"]
    # Process-wide loopback-only ICE: a session asking otherwise is refused while others run.
    roomy = ViewerPool(lines, max_sessions=5)
    start(roomy, "loop", spec)
    start(roomy, "lan", attrs.evolve(spec, loopback_only=False))
    assert "loopback_only differs" in lines.last("lan")["error"]
    for each in (pool, roomy):
        each.stop_all()
        await asyncio.wait_for(each.wait(), timeout=10)
    start(pool, "late", spec)
    assert lines.last("late")["error"] == "the pool is stopping"


@pytest.mark.anyio
async def test_loop_lag_is_noted_against_the_sessions_running() -> None:
    lines = Lines()
    pool = ViewerPool(lines)
    start(pool, "a", http_only("http://127.0.0.1:9/x.m3u8", duration=30.0))
    pool.note_lag(0.25)
    pool.note_lag(0.1)
    start(pool, "b", http_only("http://127.0.0.1:9/x.m3u8", duration=30.0))
    pool.note_lag(0.05)
    assert (pool.sessions["a"].lag_max, pool.sessions["b"].lag_max) == (0.25, 0.05)
    pool.stop_all()
    await asyncio.wait_for(pool.wait(), timeout=10)


def test_the_default_pool_size_is_bounded() -> None:
    from p2ploader.app.pool import DEFAULT_MAX_SESSIONS

    assert ViewerPool(lambda line: True).max_sessions == DEFAULT_MAX_SESSIONS == 256
    with pytest.raises(ValueError, match="max_sessions"):
        ViewerPool(lambda line: True, max_sessions=0)


@pytest.mark.anyio
async def test_a_command_line_over_the_limit_is_refused_and_the_next_one_read() -> None:
    lines = Lines()
    pool = ViewerPool(lines)
    reader = asyncio.StreamReader(limit=MAX_LINE_BYTES)
    reader.feed_data(b'{"op": "stop", "key": "' + b"x" * (MAX_LINE_BYTES + 10) + b'"}\n')
    reader.feed_data(json.dumps({"op": "stop", "key": "after"}).encode() + b"\n")
    reader.feed_data(json.dumps({"op": "stop", "key": "unterminated"}).encode())
    reader.feed_eof()
    await asyncio.wait_for(_read_commands(reader, pool), timeout=5)
    assert [(line["key"], line["error"][:30]) for line in lines.lines] == [
        (None, "a command line is longer than "),
        ("after", "no session 'after' is running"),
        ("unterminated", "no session 'unterminated' is r"),
    ]


# --------------------------------------------------------------------------------------------------
# The pool process


@pytest.mark.anyio
@pytest.mark.e2e
async def test_a_pool_process_runs_sessions_and_exits_at_the_end_of_stdin() -> None:
    with OriginServer(ROOT, live=LiveSettings(window_segments=10)) as origin:
        live = origin.url_for("live/master.m3u8")
        pool = await PoolProcess.start()
        try:
            assert await asyncio.wait_for(pool.ready(), timeout=30)
            one = pool.open("1", http_only(live, duration=2.0, tick_interval=0.5))
            two = pool.open("2", http_only(live, duration=60.0, tick_interval=0.5))
            assert pool.running == 2
            first = await asyncio.wait_for(two.get(), timeout=20)
            assert first["type"] == "tick" and "key" not in first
            got_one = [await asyncio.wait_for(one.get(), timeout=20)]
            while got_one[-1]["type"] == "tick":
                got_one.append(await asyncio.wait_for(one.get(), timeout=20))
            assert got_one[-1]["type"] == "result" and got_one[-1]["cpu_time_shared"] is True
            # End of stdin: the pool stops the session left, which still reports, and exits 0.
            assert await asyncio.wait_for(pool.close(), timeout=20) == 0
        finally:
            pool.kill()
    rest = [two.get_nowait() for _ in range(two.qsize())]
    assert rest[-1]["type"] == "result" and rest[-1]["wall_time"] < 20
    assert pool.running == 0


@pytest.mark.anyio
@pytest.mark.e2e
async def test_sessions_of_a_pool_that_dies_are_told_so() -> None:
    with OriginServer(ROOT, live=LiveSettings(window_segments=10)) as origin:
        pool = await PoolProcess.start()
        spec = http_only(origin.url_for("live/master.m3u8"), duration=60.0, tick_interval=0.5)
        lines = pool.open("k", spec)
        assert (await asyncio.wait_for(lines.get(), timeout=20))["type"] == "tick"
        pool.kill()
        while (line := await asyncio.wait_for(lines.get(), timeout=10))["type"] == "tick":
            pass
        await pool.close()
    assert line["type"] == "gone" and "status -9" in line["error"], line
    # A session opened on a dead pool is told at once.
    late = pool.open("late", http_only("http://127.0.0.1:9/x.m3u8"))
    assert late.get_nowait()["type"] == "gone"


# --------------------------------------------------------------------------------------------------
# Swarms in pools


@pytest.mark.anyio
@pytest.mark.e2e
async def test_a_swarm_in_two_pools_shares_over_p2p_with_no_stall(tracker: TrackerServer) -> None:
    config = LoaderConfig(
        tracker_announce=(tracker.url,),
        rtc_config={"iceServers": []},
        http_retry_backoff=0.05,
        live_refresh_interval=0.5,
    )
    with OriginServer(ROOT, live=LiveSettings(window_segments=10)) as origin:
        template = ViewerSpec(
            url=origin.url_for("live/master.m3u8"),
            config=config.to_faq(),
            forward_buffer=8.0,
            rendition="v1",
            check_bytes_against=str(ROOT),
        )
        sessions = churn_schedule(4, duration=6.0, stagger=1.0)
        runner = SwarmRunner(template, sessions, pools=2, grace=20.0)
        result = await asyncio.wait_for(runner.run(), timeout=60)
    assert result.pools == 2 and {run.pool for run in result.sessions} == {0, 1}
    assert len({run.pid for run in result.sessions}) == 2  # four viewers, two processes
    assert all(run.status == "done" for run in result.sessions), [r.error for r in result.sessions]
    total = result.total
    assert total.stalls == 0 and total.mismatches == 0 and total.failures == 0
    assert total.p2p_bytes > 0 and total.http_bytes > 0, total
    assert result.process_cpu_time is not None and result.process_cpu_time > 0
    data = result.to_json()
    assert data["pools"] == 2 and data["viewer_cpu_time_shared"] is True


def test_pools_default_to_one_per_core_and_the_testbed_keeps_a_process_per_viewer() -> None:
    import os

    spec = ViewerSpec(url="http://127.0.0.1:9/x.m3u8")
    sessions = churn_schedule(2, duration=10.0)
    assert SwarmRunner(spec, sessions).pools == len(os.sched_getaffinity(0))
    assert SwarmRunner(spec, sessions, pools=0).pools == 0

    def prefix(viewer: int) -> list[str]:
        return ["ip", "netns", "exec", f"v{viewer}"]

    assert SwarmRunner(spec, sessions, viewer_prefix=prefix).pools == 0
    with pytest.raises(ValueError, match="process per viewer"):
        SwarmRunner(spec, sessions, viewer_prefix=prefix, pools=2)
    with pytest.raises(ValueError, match="pools"):
        SwarmRunner(spec, sessions, pools=-1)


@pytest.mark.anyio
@pytest.mark.e2e
async def test_stopping_a_swarm_in_pools_still_collects_every_result() -> None:
    # What Ctrl-C does: SIGTERM to each pool, whose sessions stop and report; no more joins.
    from p2ploader.app.swarmrun import Session

    with OriginServer(ROOT, live=LiveSettings(window_segments=10)) as origin:
        template = http_only(origin.url_for("live/master.m3u8"))
        sessions = [
            Session(viewer=0, number=0, start=0.0, end=60.0),
            Session(viewer=1, number=0, start=0.0, end=60.0),
            Session(viewer=2, number=0, start=40.0, end=60.0),
        ]
        runner = SwarmRunner(template, sessions, pools=1, tick_interval=0.5)

        def stop_once_both_play() -> None:
            if all(run.ticks for run in runner.runs[:2]):
                runner.stop()

        result = await asyncio.wait_for(runner.run(on_update=stop_once_both_play, update_interval=0.2), 30)
    assert result.stopped_early and result.pools == 1
    assert [run.status for run in result.sessions] == ["done", "done", "cancelled"]
    assert all(run.result is not None and run.result["wall_time"] < 20 for run in result.sessions[:2])
    assert result.wall_time < 25


@pytest.mark.anyio
@pytest.mark.e2e
async def test_a_session_overrunning_its_time_in_a_pool_is_stopped(caplog: pytest.LogCaptureFixture) -> None:
    from p2ploader.app.swarmrun import Session

    with OriginServer(ROOT, live=LiveSettings(window_segments=10)) as origin:
        template = http_only(origin.url_for("live/master.m3u8"))
        # The viewer plays 3 s from its first frame; the runner allows 3 s from its start, with no
        # grace: its start-up makes it overrun, and the runner stops it.
        sessions = [Session(viewer=0, number=0, start=0.0, end=3.0)]
        runner = SwarmRunner(template, sessions, pools=1, grace=0.0, tick_interval=0.5)
        result = await asyncio.wait_for(runner.run(), 30)
    (run,) = result.sessions
    assert "overran its session" in caplog.text
    # Stopped (or ending as the stop came), it still reported, within the 5 s a stop is given.
    assert run.status == "done" and run.result is not None and run.result["played"] <= 3.5, run.result
    assert run.ended_at is not None and run.ended_at < 3.0 + 5.0


@pytest.mark.anyio
async def test_pools_that_cannot_start_fail_every_session_with_the_reason(tmp_path: Any) -> None:
    spec = ViewerSpec(url="http://127.0.0.1:9/x.m3u8")
    runner = SwarmRunner(spec, churn_schedule(2, duration=5.0), pools=2, python=str(tmp_path / "no-python"))
    result = await asyncio.wait_for(runner.run(), timeout=10)
    assert [run.status for run in result.sessions] == ["failed", "failed"]
    assert all(run.error and run.error.startswith("cannot start a viewer pool: ") for run in result.sessions)
    assert result.total.failures == 2 and result.pools == 0
