"""P2P Media Loader 2.3.1 viewers in Chromium on the testbed's shaped links (for
``benchmarks/testbed_offload.py`` and its test).

Each browser viewer is one headless Chromium (hls.js 1.7.4 + p2p-media-loader-hlsjs 2.3.1, the
page of tests/browser/web) started inside a namespace of its own, with the very links the Python
viewer of the same number gets in the same case (the testbed draws viewer ``i``'s links from the
seed and ``i`` alone). The origin and the tracker run in their namespaces as for the Python viewers;
the page and its npm modules are served from the tracker's namespace, so the origin's byte counter
counts the stream alone.

hls.js is held ``latency`` segments behind live by setting ``liveSyncDurationCount`` in its config
(P2P Media Loader's engine only picks its own value when the page sets none). Chromium treats the
page's testbed origin as a secure context (``--unsafely-treat-insecure-origin-as-secure``), as it
treats 127.0.0.1 in the loopback tests: the page may then be granted camera and microphone (nothing
is captured), without which Chromium offers no host address to its peers.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import statistics
import sys
from pathlib import Path
from typing import Any
from urllib.parse import quote

from p2ploader.testbed.links import RateRange
from p2ploader.testbed.netns import Host, Testbed
from p2ploader.testbed.swarm import build_swarm_network, start_server
from tests.browser.harness import Browsers, BrowserSetup, PageState, browser_setup, page_config

ROOT_DIR = Path(__file__).resolve().parents[2]
"""The project's root: the page server runs ``python -m tests.browser.harness`` from it."""

PAGE_PORT = 8090
_SERVER_READY_S = 30.0
_PLAYING_POLL_S = 0.1


def require_browsers() -> BrowserSetup:
    """Chromium, node and the pinned npm packages, or exit with what is missing."""
    setup = browser_setup()
    if isinstance(setup, str):
        raise SystemExit(f"browser viewers need: {setup} (or run with --browsers 0)")
    return setup


def _start_page_server(testbed: Testbed, network_host: Host) -> str:
    """Serve the page from ``network_host``'s namespace; return its origin once bound."""
    argv = [sys.executable, "-m", "tests.browser.harness", network_host.address, str(PAGE_PORT)]
    # From the project's root, so that ``tests`` imports; start_server drains its output.
    line = start_server(testbed, network_host, argv, ready="serving: ", cwd=str(ROOT_DIR))
    return line.removeprefix("serving: ").strip()


async def run_browser_case(
    *,
    setup: BrowserSetup,
    root: Path,
    viewers: int,
    duration: float,
    stagger: float,
    latency_segments: int,
    uplink: RateRange,
    downlink: RateRange,
    queue_seconds: float,
    seed: int,
) -> dict[str, Any]:
    """``viewers`` browsers joining ``stagger`` s apart and playing to ``duration`` s; their totals:
    ``p2p_ratio``, ``http_bytes``, ``stalls``, ``startup`` (median seconds from opening the page to
    playing), ``origin_sent`` (the origin's link counter at the end of the run), ``loaded_bytes``
    (segment bytes the pages loaded from either source), ``unstarted`` (pages that never played)."""
    loop = asyncio.get_running_loop()
    with Testbed(queue_seconds=queue_seconds) as testbed:
        network = build_swarm_network(
            testbed, root=root, viewers=viewers, uplink=uplink, downlink=downlink, seed=seed
        )
        page_origin = _start_page_server(testbed, network.tracker)
        config = page_config(
            network.origin_url + "live/master.m3u8",
            [network.tracker_url],
            level=0,
            hls={"liveSyncDurationCount": latency_segments},
        )
        url = f"{page_origin}/web/index.html?cfg={quote(json.dumps(config, separators=(',', ':')))}"
        secure = f"--unsafely-treat-insecure-origin-as-secure={page_origin}"
        async with contextlib.AsyncExitStack() as stack:
            # Every browser is launched before the first joins (a launch takes seconds of CPU that
            # would otherwise fall inside the measured run).
            browsers = [
                await stack.enter_async_context(
                    Browsers(setup, command_prefix=network.viewer_prefix(i), chromium_args=[secure])
                )
                for i in range(viewers)
            ]
            started = loop.time()
            opened: list[float] = []
            pages: list[PageState] = []
            playing_at: dict[int, float] = {}

            async def watch_playing() -> None:
                while True:
                    now = loop.time()
                    for index, page in enumerate(pages):
                        if index not in playing_at and page.stats.get("playing"):
                            playing_at[index] = now - opened[index]
                    await asyncio.sleep(_PLAYING_POLL_S)

            watcher = asyncio.create_task(watch_playing())
            try:
                for index, browser in enumerate(browsers):
                    await asyncio.sleep(max(0.0, started + index * stagger - loop.time()))
                    opened.append(loop.time())
                    pages.append(await browser.open(f"b{index}", url))
                await asyncio.sleep(max(0.0, started + duration - loop.time()))
            finally:
                watcher.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await watcher
            snapshots = [dict(page.stats) for page in pages]
            errors = [page.fatal for page in pages if page.fatal]
            # Read now: the browsers close one after another and go on loading until they do.
            origin_sent = testbed.sent_bytes(network.origin)
    http = sum(int(s.get("httpBytes", 0)) for s in snapshots)
    p2p = sum(int(s.get("p2pBytes", 0)) for s in snapshots)
    for index, stats in enumerate(snapshots):
        loaded = int(stats.get("httpBytes", 0)) + int(stats.get("p2pBytes", 0))
        share = int(stats.get("p2pBytes", 0)) / loaded if loaded else 0.0
        print(
            f"    browser {index}: P2P {share:.2f}, uploaded {int(stats.get('uploadedBytes', 0)):,} B, "
            f"peers {len(stats.get('peers', []))}, stalls {int(stats.get('stalls', 0))}, "
            f"latency {float(stats.get('latency') or 0):.1f} s",
            flush=True,
        )
    if errors:
        print(f"    fatal player errors: {errors}", flush=True)
    startups = list(playing_at.values())
    return {
        "p2p_ratio": p2p / (p2p + http) if p2p + http else 0.0,
        "http_bytes": http,
        "stalls": sum(int(s.get("stalls", 0)) for s in snapshots),
        "startup": statistics.median(startups) if startups else math.nan,
        "unstarted": viewers - len(startups),
        "origin_sent": origin_sent,
        "loaded_bytes": http + p2p,
        "failures": len(errors),
        "mismatches": 0,
    }
