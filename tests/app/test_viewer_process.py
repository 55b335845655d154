"""A viewer process streams progress lines, ends with its result line, and leaves on SIGTERM."""

from __future__ import annotations

import asyncio
import json
import signal
import time

import pytest

from p2ploader.app.viewer import ViewerSpec, last_line, start_viewer_process
from p2ploader.config import LoaderConfig
from p2ploader.sample import sample_path
from p2ploader.testing.origin import LiveSettings, OriginServer

pytestmark = [pytest.mark.anyio, pytest.mark.e2e]

RESULT_KEYS = {
    "p2p_bytes",
    "http_bytes",
    "stalls",
    "startup_time",
    "mismatches",
    "segments_played",
    "cpu_time",
    "rendition",
}


def http_only_spec(url: str, **changes: object) -> ViewerSpec:
    return ViewerSpec(
        url=url,
        config=LoaderConfig(use_p2p=False).to_faq(),
        rendition="v1",
        check_bytes_against=str(sample_path("ts")),
        **changes,  # type: ignore[arg-type]
    )


async def test_ticks_every_interval_then_the_result_line_last() -> None:
    with OriginServer(sample_path("ts"), live=LiveSettings(window_segments=10)) as origin:
        spec = http_only_spec(origin.url_for("live/master.m3u8"), duration=3.0, tick_interval=0.5)
        proc = await start_viewer_process(spec)
        out, err = await asyncio.wait_for(proc.communicate(), timeout=30)
    assert proc.returncode == 0, err.decode()
    lines = [json.loads(line) for line in out.decode().strip().splitlines()]
    ticks, result = lines[:-1], lines[-1]
    assert result["type"] == "result" and result.keys() >= RESULT_KEYS
    assert result["stalls"] == 0 and result["mismatches"] == 0 and result["segments_played"] > 0
    # The upload control is on by default; with P2P off it never sampled a link nor cut a rate.
    assert result["upload_control"] == {"samples": 0, "cuts": 0, "rate": None, "queuing_delay": None}
    assert all(t["type"] == "tick" for t in ticks) and 5 <= len(ticks) <= 9
    assert [t["t"] for t in ticks] == sorted(t["t"] for t in ticks)
    assert ticks[-1]["http_bytes"] > 0 and ticks[-1]["live_edge_distance"] > 0
    assert {"position", "buffer", "state", "peers", "p2p_bytes", "rendition"} <= ticks[-1].keys()


async def test_without_ticks_only_the_result_is_printed() -> None:
    with OriginServer(sample_path("ts")) as origin:
        proc = await start_viewer_process(http_only_spec(origin.url_for("master.m3u8"), duration=1.0))
        out, err = await asyncio.wait_for(proc.communicate(), timeout=30)
    assert proc.returncode == 0, err.decode()
    lines = out.decode().strip().splitlines()
    assert len(lines) == 1 and json.loads(lines[0])["type"] == "result"


async def test_sigterm_ends_playback_early_and_still_reports() -> None:
    with OriginServer(sample_path("ts"), live=LiveSettings(window_segments=10)) as origin:
        spec = http_only_spec(origin.url_for("live/master.m3u8"), duration=60.0, tick_interval=0.5)
        proc = await start_viewer_process(spec)
        assert proc.stdout is not None
        first = json.loads(await asyncio.wait_for(proc.stdout.readline(), timeout=20))
        assert first["type"] == "tick"
        sent = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        out, err = await asyncio.wait_for(proc.communicate(), timeout=15)
        took = time.monotonic() - sent
    assert proc.returncode == 0, err.decode()
    result = last_line(out)
    assert result["type"] == "result" and result["wall_time"] < 30 and took < 5


async def test_a_stream_that_cannot_be_opened_is_an_error_line() -> None:
    with OriginServer(sample_path("ts")) as origin:
        proc = await start_viewer_process(http_only_spec(origin.url_for("nope.m3u8"), duration=1.0))
        out, _ = await asyncio.wait_for(proc.communicate(), timeout=30)
    assert proc.returncode == 1
    line = last_line(out)
    assert line["type"] == "error" and "404" in line["error"]
