"""hls.js in ``lowLatencyMode`` (headless Chromium) plays the local origin's LL-HLS stream in real
time: the strictest LL-HLS client at hand reads the parts, the blocking reloads and the preload
hints of :mod:`p2ploader.testing.llhls` and stays close to the live edge."""

from __future__ import annotations

import json
import os
import statistics
import subprocess
from pathlib import Path

import pytest

from p2ploader.testing.origin import LiveSettings, LowLatencySettings, OriginServer
from tests.browser.harness import WEB_DIR, browser_setup
from tests.ffmpeg_streams import LLHLS_PART_SECONDS, llhls_stream  # noqa: F401

pytestmark = [pytest.mark.e2e, pytest.mark.alone]

PLAY_SECONDS = 12


def test_hlsjs_plays_the_llhls_stream_near_the_live_edge(llhls_stream: Path) -> None:  # noqa: F811
    setup = browser_setup()
    if isinstance(setup, str):
        pytest.skip(setup)
    live = LiveSettings(window_segments=6)
    with OriginServer(llhls_stream, live=live, low_latency=LowLatencySettings(), cors=True) as origin:
        env = dict(
            os.environ,
            P2PLOADER_BROWSER_NODE_MODULES=str(setup.node_modules),
            P2PLOADER_CHROMIUM=setup.chromium,
        )
        url = origin.url_for("llhls/master.m3u8")
        result = subprocess.run(
            [setup.node, str(WEB_DIR / "llhls_origin.mjs"), url, str(PLAY_SECONDS)],
            capture_output=True,
            text=True,
            timeout=120,
            env=env,
            check=False,
        )
        requested = origin.statistics().path_requests
    assert result.returncode == 0, result.stderr
    events = [json.loads(line) for line in result.stdout.splitlines()]
    done = events[-1]
    assert done["event"] == "done", events
    assert not [event for event in events if event["event"] == "pageerror"]
    assert done["errors"] == []
    level = done["level"]
    assert level["canBlockReload"] and level["preloadHint"] and level["parts"] > 0
    assert level["partTarget"] == LLHLS_PART_SECONDS
    assert level["partHoldBack"] == 3 * LLHLS_PART_SECONDS
    assert level["renditionReports"] == 1
    samples = [event for event in events if event["event"] == "sample"]
    played = samples[-1]["currentTime"] - samples[2]["currentTime"]
    assert played >= PLAY_SECONDS - 4  # it plays in real time from the third second on
    latencies = [sample["latency"] for sample in samples[4:]]
    # PART-HOLD-BACK is 1.5 s; without parts hls.js would start three target durations (6 s) back.
    assert statistics.median(latencies) < 4.0, latencies
    assert done["stalls"] == 0
    # hls.js loads the parts at the edge (seg_<msn>.<k>) and asks for reloads that block.
    assert any(".0.m4s" in path for path in requested)
    print(f"hls.js latency: median {statistics.median(latencies):.2f} s, max {max(latencies):.2f} s")
