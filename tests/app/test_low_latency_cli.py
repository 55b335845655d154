"""``p2ploader play --low-latency`` and ``view --low-latency`` against the project's LL-HLS origin
(real ffmpeg fMP4, real sockets, the real clock)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import queue
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from p2ploader.app.cli import build_parser, main
from p2ploader.testing.llhls import LowLatencySettings
from p2ploader.testing.origin import LiveSettings, OriginServer
from p2ploader.tracker import TrackerServer
from tests.ffmpeg_streams import LLHLS_PART_SECONDS, LLHLS_SEGMENT_SECONDS, llhls_stream  # noqa: F401

PART_HOLD_BACK = 3 * LLHLS_PART_SECONDS


@pytest.mark.parametrize("command", ["play", "view"])
def test_low_latency_playing_reports_the_latency_behind_live(
    command: str,
    llhls_stream: Path,  # noqa: F811
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    summary_file = tmp_path / "summary.json"
    live = LiveSettings(window_segments=4, initial_segments=2)
    with OriginServer(llhls_stream, live=live, low_latency=LowLatencySettings()) as origin:
        argv = [command, origin.url_for("llhls/master.m3u8"), "--low-latency", "--duration", "3"]
        assert main([*argv, "--json", str(summary_file)]) == 0
    out = capsys.readouterr().out
    assert "at low latency over HTTP" in out and "latency " in out
    summary = json.loads(summary_file.read_text())
    assert summary["mode"] == "low-latency" and summary["rendition"] == "v0"
    assert summary["stalls"] == 0 and summary["segments"] == 1 and summary["parts"] >= 2
    assert summary["blocking_reloads"] >= summary["parts"] - 1
    # PART-HOLD-BACK rounded back to a segment start (the only independent parts), plus the age of
    # the live edge when the playlist was loaded (under a part) and the time to start (0.5 s).
    bound = PART_HOLD_BACK + LLHLS_SEGMENT_SECONDS + LLHLS_PART_SECONDS + 0.5
    assert PART_HOLD_BACK <= summary["latency_p95_s"] <= bound


def test_hold_back_is_off_by_default() -> None:
    args = build_parser().parse_args(["play", "http://127.0.0.1:9/master.m3u8"])
    assert (args.low_latency, args.hold_back) == (False, None)
    args = build_parser().parse_args(
        ["view", "http://127.0.0.1:9/m.m3u8", "--low-latency", "--hold-back", "2"]
    )
    assert (args.low_latency, args.hold_back) == (True, 2.0)


@pytest.mark.parametrize("bad", ["0", "-1"])
def test_a_hold_back_of_zero_or_less_is_refused_by_the_command_line(
    bad: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as raised:
        build_parser().parse_args(["view", "http://127.0.0.1:9/m.m3u8", "--low-latency", "--hold-back", bad])
    assert raised.value.code == 2
    assert f"must be > 0, got {bad}" in capsys.readouterr().err


@contextlib.contextmanager
def tracker_in_a_thread() -> Iterator[str]:
    """The embedded tracker on its own event loop in a thread (the CLI runs its own loop)."""
    started: queue.Queue[tuple[str, asyncio.AbstractEventLoop, asyncio.Event]] = queue.Queue()

    async def serve() -> None:
        stop = asyncio.Event()
        async with TrackerServer() as tracker:
            started.put((tracker.url, asyncio.get_running_loop(), stop))
            await stop.wait()

    thread = threading.Thread(target=lambda: asyncio.run(serve()), daemon=True)
    thread.start()
    url, loop, stop = started.get(timeout=10)
    try:
        yield url
    finally:
        loop.call_soon_threadsafe(stop.set)
        thread.join(timeout=10)


def test_p2p_parts_is_off_by_default() -> None:
    args = build_parser().parse_args(["play", "http://127.0.0.1:9/m.m3u8", "--low-latency"])
    assert args.p2p_parts is False
    args = build_parser().parse_args(["view", "http://127.0.0.1:9/m.m3u8", "--low-latency", "--p2p-parts"])
    assert args.p2p_parts is True


def test_view_low_latency_with_p2p_parts_joins_the_parts_swarm(
    llhls_stream: Path,  # noqa: F811
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    summary_file = tmp_path / "summary.json"
    live = LiveSettings(window_segments=4, initial_segments=2)
    with (
        tracker_in_a_thread() as tracker_url,
        OriginServer(llhls_stream, live=live, low_latency=LowLatencySettings()) as origin,
    ):
        argv = ["view", origin.url_for("llhls/master.m3u8"), "--low-latency", "--p2p-parts"]
        argv += ["--tracker", tracker_url, "--duration", "3", "--json", str(summary_file)]
        assert main(argv) == 0
    out = capsys.readouterr().out
    assert "from p2ploader peers (parts swarm)" in out
    summary = json.loads(summary_file.read_text())
    # Alone in its swarm: every byte over HTTP, played as without peers.
    assert summary["stalls"] == 0 and summary["parts"] >= 2
    assert summary["p2p_bytes"] == 0 and summary["bytes"] > 0
