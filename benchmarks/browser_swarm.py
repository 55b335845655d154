"""A mixed swarm on loopback: N headless Chromium viewers (hls.js + P2P Media Loader 2.3.1) and M
p2ploader viewers watch one live stream together for a fixed time.

Each case starts a fresh origin (the ffmpeg-made sample, 240p, 2 s segments, a 20-segment live
window), the embedded tracker, the static server for the page, and one Chromium with N pages. The
viewers join one after another (a second apart), browsers first. The browsers run P2P Media Loader's
defaults (only the tracker and an empty ``rtcConfig`` are set) with hls.js's
``liveSyncDurationCount`` pinned to 19, the value the engine itself sets for this playlist: the
engine sets it on a playlist update, which sometimes comes after hls.js has chosen its start
position, leaving a page at hls.js's 3 segments, where P2P Media Loader loads everything over HTTP
(its 15 s high-demand window covers every new segment). The p2ploader viewers play
``--py-distance`` (16) segments behind live with a 12 s forward buffer.

Printed per case: each viewer's HTTP and P2P bytes (browsers from onChunkDownloaded, p2ploader from
its statistics), uploads and stalls, then one machine-readable line::

    RESULT browser_swarm browsers=3 pyloaders=3 browser_p2p_ratio=0.61 py_p2p_ratio=0.58 stalls=0 ...

``*_p2p_ratio`` is P2P bytes / all segment bytes that side downloaded. ``origin_ratio`` is the
segment bytes the origin sent against what all viewers downloaded (1.0 = no offload).

    python benchmarks/browser_swarm.py [--cases 3x3 2x0 0x3] [--duration 60] [--py-distance 16]

Needs chromium and the npm packages that .ci/run installs (see docs/browsers.md).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

ROOT_DIR = Path(__file__).resolve().parent.parent
if str(ROOT_DIR) not in sys.path:  # run as a script from anywhere: the harness lives in tests/
    sys.path.insert(0, str(ROOT_DIR))

from p2ploader import LoaderConfig, PlaybackReport, open_loader, play  # noqa: E402
from p2ploader.aio.loader import HybridLoader  # noqa: E402
from p2ploader.aio.webrtc import restrict_ice_to_loopback  # noqa: E402
from p2ploader.sample import sample_path  # noqa: E402
from p2ploader.testing.origin import LiveSettings, OriginServer  # noqa: E402
from p2ploader.tracker import TrackerServer  # noqa: E402
from tests.browser.harness import Browsers, BrowserSetup, PageState, StaticServer, browser_setup, page_config  # noqa: E402

STREAM = sample_path("ts")
RENDITION, LEVEL = "v0", 0
WINDOW_SEGMENTS = 20
JOIN_GAP = 1.0  # seconds between two viewers joining
BROWSER_LIVE_SYNC_COUNT = 19  # what P2P Media Loader's hls.js engine picks for a 20-segment window


def ratio(p2p: int, http: int) -> float:
    return p2p / (p2p + http) if p2p + http else 0.0


async def py_viewer(
    url: str, tracker_url: str, seed: int, delay: float, duration: float, distance: int
) -> tuple[HybridLoader, PlaybackReport]:
    await asyncio.sleep(delay)  # staggered joins, as real viewers arrive
    config = LoaderConfig(
        tracker_announce=(tracker_url,), rtc_config={"iceServers": []}, live_refresh_interval=1.0
    )
    async with open_loader(url, config=config, rendition=RENDITION, seed=seed) as loader:
        report = await play(
            loader, duration=duration, forward_buffer=12.0, live_start_distance=distance, tick=0.25
        )
        return loader, report


async def run_case(setup: BrowserSetup, browsers_n: int, py_n: int, duration: float, py_distance: int) -> str:
    with (
        OriginServer(STREAM, live=LiveSettings(window_segments=WINDOW_SEGMENTS), cors=True) as origin,
        StaticServer(setup.node_modules) as static,
    ):
        url = origin.url_for("live/master.m3u8")
        async with TrackerServer() as tracker, Browsers(setup) as browsers:
            loop = asyncio.get_running_loop()
            started = loop.time()
            pages: list[PageState] = []
            config = page_config(
                url, [tracker.url], level=LEVEL, hls={"liveSyncDurationCount": BROWSER_LIVE_SYNC_COUNT}
            )
            py_tasks = [
                asyncio.create_task(
                    py_viewer(
                        url,
                        tracker.url,
                        100 + i,
                        (browsers_n + i) * JOIN_GAP,
                        duration - (browsers_n + i),
                        py_distance,
                    )
                )
                for i in range(py_n)
            ]
            for i in range(browsers_n):
                pages.append(await browsers.open(f"browser{i}", static.page_url(config)))
                await asyncio.sleep(max(0.0, started + (i + 1) * JOIN_GAP - loop.time()))
            py_results = await asyncio.wait_for(asyncio.gather(*py_tasks), timeout=duration + 60)
            remaining = started + duration - loop.time()
            if remaining > 0:
                await asyncio.sleep(remaining)  # the fixed measuring time, when no p2ploader viewer set it
            snapshots = [dict(page.stats) for page in pages]
        origin_bytes = origin.statistics().segment_bytes_sent

    b_http = b_p2p = b_stalls = 0
    for page, stats in zip(pages, snapshots, strict=True):
        http, p2p = int(stats.get("httpBytes", 0)), int(stats.get("p2pBytes", 0))
        stalls = int(stats.get("stalls", 0))
        b_http, b_p2p, b_stalls = b_http + http, b_p2p + p2p, b_stalls + stalls
        print(
            f"  {page.name}: http={http} p2p={p2p} p2p_ratio={ratio(p2p, http):.2f} "
            f"uploaded={int(stats.get('uploadedBytes', 0))} peers={len(stats.get('peers', []))} "
            f"stalls={stalls} latency={float(stats.get('latency') or 0):.1f}s errors={page.fatal}",
            flush=True,
        )
    p_http = p_p2p = p_stalls = 0
    for i, (loader, report) in enumerate(py_results):
        s = loader.statistics()
        p_http, p_p2p, p_stalls = p_http + s.http_bytes, p_p2p + s.p2p_bytes, p_stalls + report.stalls
        print(
            f"  pyloader{i}: http={s.http_bytes} p2p={s.p2p_bytes} p2p_ratio={s.peer_efficiency:.2f} "
            f"uploaded={s.p2p_uploaded_bytes} stalls={report.stalls}",
            flush=True,
        )
    downloaded = b_http + b_p2p + p_http + p_p2p
    return (
        f"RESULT browser_swarm browsers={browsers_n} pyloaders={py_n} "
        f"browser_p2p_ratio={ratio(b_p2p, b_http):.2f} py_p2p_ratio={ratio(p_p2p, p_http):.2f} "
        f"stalls={b_stalls + p_stalls} origin_ratio={origin_bytes / downloaded if downloaded else 0.0:.2f} "
        f"duration={duration:.0f} py_distance={py_distance}"
    )


def parse_case(text: str) -> tuple[int, int]:
    browsers_n, _, py_n = text.partition("x")
    try:
        pair = int(browsers_n), int(py_n)
    except ValueError:
        raise argparse.ArgumentTypeError(f"a case is BROWSERSxPYLOADERS, e.g. 3x3, not {text!r}") from None
    if min(pair) < 0 or sum(pair) < 2 or pair[0] > 10 or pair[1] > 10:
        raise argparse.ArgumentTypeError("0..10 of each kind and at least 2 viewers in all")
    return pair


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", nargs="+", type=parse_case, default=[(3, 3)], help="BROWSERSxPYLOADERS")
    parser.add_argument("--duration", type=float, default=60.0, help="seconds per case (20..600)")
    parser.add_argument(
        "--py-distance",
        type=int,
        default=16,
        choices=range(1, WINDOW_SEGMENTS),
        metavar="1..19",
        help="segments behind live for the p2ploader viewers",
    )
    args = parser.parse_args()
    if not 20 <= args.duration <= 600:
        parser.error("--duration must be within 20..600 s")
    setup = browser_setup()
    if isinstance(setup, str):
        print(f"cannot run: {setup}", file=sys.stderr)
        return 2

    async def run_all() -> None:
        with restrict_ice_to_loopback():
            for browsers_n, py_n in args.cases:
                print(
                    f"case: {browsers_n} browsers, {py_n} p2ploader viewers, {args.duration:.0f} s",
                    flush=True,
                )
                print(await run_case(setup, browsers_n, py_n, args.duration, args.py_distance), flush=True)

    asyncio.run(run_all())
    return 0


if __name__ == "__main__":
    sys.exit(main())
