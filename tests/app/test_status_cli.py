"""Status in the commands: ``view`` and ``play`` print one warning line when no tracker is
reachable (and the trackers' state in their summary), the proxy's status lines carry it, and the
swarm views (``swarm``, ``demo``) word it from the viewers' reports."""

from __future__ import annotations

import asyncio
import json
import socket
from pathlib import Path

import pytest

from p2ploader.app.cli import main
from p2ploader.app.swarmrun import SwarmRunner, ViewerFigures, ViewerTick
from p2ploader.app.views import swarm_line, swarm_table
from p2ploader.proxy.server import run_proxy_forever
from p2ploader.sample import sample_path
from p2ploader.status import TrackerState, tracker_summary, tracker_warning
from p2ploader.testing.origin import OriginServer


def closed_port_url() -> str:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"ws://127.0.0.1:{port}"


@pytest.mark.e2e
@pytest.mark.parametrize("command", ["view", "play"])
def test_unreachable_tracker_prints_one_warning_line(
    command: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    tracker = closed_port_url()
    config = tmp_path / "join-at-once.json"
    config.write_text(json.dumps({"loader": {"swarmJoinDelay": 1}}))
    out_file = tmp_path / "stats.json"
    extra = ["--quiet"] if command == "view" else []
    with OriginServer(sample_path("ts")) as origin:
        argv = [command, origin.url_for("master.m3u8"), "--duration", "3", "--json", str(out_file)]
        if command == "view":
            argv += ["--tracker", tracker]
        else:
            config.write_text(json.dumps({"loader": {"swarmJoinDelay": 1, "trackerAnnounce": [tracker]}}))
        code = main([*argv, "--config", str(config), *extra])
    assert code == 0
    out = capsys.readouterr().out
    expected = f"warning: P2P is off: no tracker reachable: {tracker} (connection refused)"
    assert [line.strip() for line in out.splitlines() if "P2P is off" in line] == [expected]
    assert json.loads(out_file.read_text())["trackers"] == "none reachable"
    # The loader's own log record of it was held back (else stderr would repeat the line).
    assert not [r for r in caplog.records if "P2P is off" in r.getMessage()]


@pytest.mark.e2e
@pytest.mark.anyio
async def test_proxy_status_lines_carry_the_trackers_and_the_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    from p2ploader import LoaderConfig

    tracker = closed_port_url()
    lines: list[str] = []
    status_lines = asyncio.Semaphore(0)

    def print_line(line: str) -> None:
        lines.append(line)
        if "trackers=" in line:
            status_lines.release()

    config = LoaderConfig(tracker_announce=(tracker,), rtc_config={"iceServers": []}, swarm_join_delay=None)
    with OriginServer(sample_path("ts")) as origin:
        task = asyncio.create_task(
            run_proxy_forever(
                origin.url_for("master.m3u8"), config=config, print_line=print_line, statistics_interval=0.2
            )
        )
        try:
            async with asyncio.timeout(15):
                for _ in range(3):
                    await status_lines.acquire()
        finally:
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
    status = [line for line in lines if "trackers=" in line]
    assert status[-1].rstrip().endswith("trackers=none-reachable")
    warnings = [line for line in lines if "P2P is off" in line]
    assert warnings == [f"warning: P2P is off: no tracker reachable: {tracker} (connection refused)"]
    assert not [r for r in caplog.records if "P2P is off" in r.getMessage()]


# --- the wording, without sockets ------------------------------------------------------------------


def _state(url: str, state: str, error: str | None = None) -> TrackerState:
    return TrackerState(url=url, state=state, last_error=error)  # type: ignore[arg-type]


def test_warning_only_when_every_tracker_failed() -> None:
    a, b = "wss://a.example", "wss://b.example"
    assert tracker_warning({}) is None
    assert tracker_warning({a: _state(a, "connecting")}) is None
    assert tracker_warning({a: _state(a, "idle")}) is None
    assert tracker_warning({a: _state(a, "failed", "DNS failure (x)"), b: _state(b, "connected")}) is None
    assert tracker_warning({a: _state(a, "failed", "DNS failure (x)"), b: _state(b, "connecting")}) is None
    both = {a: _state(a, "failed", "DNS failure (x)"), b: _state(b, "closed", "closed by server (code 1001)")}
    assert tracker_warning(both) == (
        "P2P is off: no tracker reachable: wss://a.example (DNS failure (x)), "
        "wss://b.example (closed by server (code 1001))"
    )


def test_tracker_summary() -> None:
    a, b = "wss://a.example", "wss://b.example"
    assert tracker_summary({}) == "none"
    assert tracker_summary({a: _state(a, "idle")}) == "waiting"
    assert tracker_summary({a: _state(a, "connecting"), b: _state(b, "failed")}) == "connecting"
    assert tracker_summary({a: _state(a, "connected"), b: _state(b, "failed")}) == "1/2 connected"
    assert tracker_summary({a: _state(a, "closed"), b: _state(b, "failed")}) == "none reachable"


def _figures(viewer: int, *, trackers: str, warning: str | None, online: int = 1) -> ViewerFigures:
    return ViewerFigures(
        viewer=viewer,
        sessions=1,
        online=online,
        state="playing",
        http_bytes=1000,
        p2p_bytes=0,
        p2p_uploaded_bytes=0,
        peers=0,
        stalls=0,
        rebuffer_time=0.0,
        buffer=4.0,
        live_edge_distance=None,
        startup_time=0.5,
        segments_played=2,
        mismatches=0,
        cpu_time=0.1,
        failures=0,
        rendition="v0",
        trackers=trackers,
        tracker_warning=warning,
    )


def test_swarm_views_warn_when_every_viewer_says_so() -> None:
    warning = "P2P is off: no tracker reachable: ws://127.0.0.1:9 (connection refused)"
    rows = [_figures(i, trackers="none reachable", warning=warning) for i in range(3)]
    total = SwarmRunner.total(rows)
    assert total.tracker_warning == warning and total.trackers == "0/3 viewers connected"
    assert swarm_line(rows, total, elapsed=3.0).endswith("trackers=0/3-viewers-connected")
    from rich.console import Console

    console = Console(width=200, record=True, no_color=True)
    console.print(swarm_table(rows, total, elapsed=3.0, duration=10.0))
    assert warning in console.export_text()
    # One viewer connected: the swarm as a whole has a tracker; no warning line.
    rows[1] = _figures(1, trackers="1/1 connected", warning=None)
    total = SwarmRunner.total(rows)
    assert total.tracker_warning is None and total.trackers == "1/3 viewers connected"


def test_viewer_ticks_carry_the_tracker_state() -> None:
    tick = ViewerTick.from_line(
        {"type": "tick", "trackers": "none reachable", "tracker_warning": "P2P is off: x"}, t=1.0
    )
    assert tick.trackers == "none reachable" and tick.tracker_warning == "P2P is off: x"
    old = ViewerTick.from_line({"type": "tick"}, t=1.0)  # a viewer of an older version
    assert old.trackers == "" and old.tracker_warning is None


@pytest.mark.e2e
def test_swarm_warns_when_its_viewers_reach_no_tracker(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """One viewer process, a tracker URL nothing listens on: the viewer's reports cross the process
    boundary and the swarm prints the warning once, live, and again under the final table."""
    tracker = closed_port_url()
    stats_file = tmp_path / "swarm.json"
    with OriginServer(sample_path("ts")) as origin:
        code = main(
            [
                "swarm",
                origin.url_for("master.m3u8"),
                "-n",
                "1",
                "--duration",
                "4",
                "--tracker",
                tracker,
                "--quiet",
                "--interval",
                "1",
                "--json",
                str(stats_file),
            ]
        )
    out = capsys.readouterr().out
    assert code == 0, out
    expected = f"P2P is off: no tracker reachable: {tracker} (connection refused)"
    warning_lines = [line.strip() for line in out.splitlines() if "P2P is off" in line]
    assert warning_lines == [f"warning: {expected}", expected], out
    viewer = json.loads(stats_file.read_text())["viewers"][0]
    assert viewer["trackers"] == "none reachable" and viewer["tracker_warning"] == expected


def test_public_services_of_a_config() -> None:
    from p2ploader import LoaderConfig
    from p2ploader.config import DEFAULT_TRACKER_ANNOUNCE
    from p2ploader.status import public_services, public_services_message

    trackers, stun = public_services(LoaderConfig())
    assert trackers == DEFAULT_TRACKER_ANNOUNCE
    assert stun == ("stun:stun.l.google.com:19302", "stun:global.stun.twilio.com:3478?transport=udp")
    own_tracker = LoaderConfig(tracker_announce="ws://127.0.0.1:8000")
    assert public_services(own_tracker) == ((), stun)
    message = public_services_message(own_tracker)
    assert message is not None and message.startswith("using public STUN servers stun:stun.l.google.com")
    mixed = LoaderConfig(tracker_announce=("ws://127.0.0.1:8000", DEFAULT_TRACKER_ANNOUNCE[1]))
    assert public_services(mixed)[0] == (DEFAULT_TRACKER_ANNOUNCE[1],)
    assert public_services(LoaderConfig(use_p2p=False)) == ((), ())
    assert public_services(LoaderConfig(tracker_announce=())) == ((), ())
    assert public_services_message(own_tracker.evolve(rtc_config={"iceServers": []})) is None
