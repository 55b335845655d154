"""hls.js in ``lowLatencyMode`` (headless Chromium) plays the local origin's LL-HLS stream through
the local proxy (``p2ploader.proxy``): the parts, blocking reloads and preload hints the proxy
re-serves keep it as close to the live edge as playing the origin directly
(tests/browser/test_llhls_origin_hlsjs.py)."""

from __future__ import annotations

import asyncio
import json
import os
import statistics
from pathlib import Path

import pytest

from p2ploader import LoaderConfig
from p2ploader.proxy import open_proxy
from p2ploader.testing.origin import LiveSettings, LowLatencySettings, OriginServer
from tests.browser.harness import WEB_DIR, browser_setup
from tests.ffmpeg_streams import LLHLS_PART_SECONDS, llhls_stream  # noqa: F401

pytestmark = [pytest.mark.anyio, pytest.mark.e2e, pytest.mark.alone]

PLAY_SECONDS = 12
LATENCY_BOUND = 4.0  # seconds behind live, as hls.js measures it (program date-time to playhead)


async def test_hlsjs_plays_the_llhls_stream_through_the_proxy_near_the_live_edge(
    llhls_stream: Path,  # noqa: F811
) -> None:
    setup = browser_setup()
    if isinstance(setup, str):
        pytest.skip(setup)
    live = LiveSettings(window_segments=6)
    with OriginServer(llhls_stream, live=live, low_latency=LowLatencySettings()) as origin:
        config = LoaderConfig(tracker_announce=())
        async with open_proxy(origin.url_for("llhls/master.m3u8"), config=config) as proxy:
            env = dict(
                os.environ,
                P2PLOADER_BROWSER_NODE_MODULES=str(setup.node_modules),
                P2PLOADER_CHROMIUM=setup.chromium,
            )
            # The page opens on the proxy's own origin first: the proxy sends no CORS headers.
            node = await asyncio.create_subprocess_exec(
                setup.node,
                str(WEB_DIR / "llhls_origin.mjs"),
                proxy.url,
                str(PLAY_SECONDS),
                proxy.base_url + "/",
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                env=env,
            )
            async with asyncio.timeout(120):
                out, err = await node.communicate()
            served = proxy.statistics()
    assert node.returncode == 0, err.decode(errors="replace")
    events = [json.loads(line) for line in out.decode().splitlines()]
    done = events[-1]
    assert done["event"] == "done", events
    assert not [event for event in events if event["event"] == "pageerror"]
    assert done["errors"] == []
    level = done["level"]
    # hls.js read the proxy's playlists as LL-HLS: blocking reload, parts, a hint, the report.
    assert level["canBlockReload"] and level["preloadHint"] and level["parts"] > 0
    assert level["partTarget"] == LLHLS_PART_SECONDS
    assert level["partHoldBack"] == 3 * LLHLS_PART_SECONDS
    assert level["renditionReports"] == 1
    samples = [event for event in events if event["event"] == "sample"]
    played = samples[-1]["currentTime"] - samples[2]["currentTime"]
    assert played >= PLAY_SECONDS - 4  # it plays in real time from the third second on
    latencies = [sample["latency"] for sample in samples[4:]]
    assert max(latencies) <= LATENCY_BOUND, latencies
    assert done["stalls"] == 0
    # It loaded parts and blocked on reloads through the proxy, and nothing failed.
    assert served.part_requests > 0 and served.blocking_playlist_requests > 0
    # The only 404s: the page's own navigation to / (and /favicon.ico), which the proxy does not serve.
    assert served.errors <= 2
    print(
        f"hls.js latency through the proxy: median {statistics.median(latencies):.2f} s, "
        f"max {max(latencies):.2f} s; {served.part_requests} part requests, "
        f"{served.blocking_playlist_requests} blocking reloads, {served.rendition_switches} switches"
    )
