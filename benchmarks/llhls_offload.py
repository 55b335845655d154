"""LL-HLS offload: HTTP-only LL-HLS and P2P LL-HLS side by side, N viewers on loopback.

The project's LL-HLS origin (:class:`p2ploader.testing.origin.OriginServer` with
``low_latency=LowLatencySettings()``) serves an ffmpeg-made fMP4 stream (320x180 H.264 at
200 kbit/s with 64 kbit/s AAC, ``--segment-seconds`` segments of ``--part-seconds`` parts; made once
into benchmarks/.cache/) live, with blocking reloads and preload hints; PART-HOLD-BACK is three
part targets. The embedded tracker runs in this process. For each case (``http``, then ``p2p``), a
fresh origin and ``--viewers`` viewers split over ``--workers`` worker processes (in-process
loaders sharing each worker's event loop, as a viewer pool does), joining over ``--join-window``
seconds, each playing ``--seconds`` seconds with :func:`p2ploader.aio.ll_player.play_low_latency`
(from PART-HOLD-BACK behind live). ``p2p`` takes parts through the parts swarm
(``HybridLoader.low_latency_stream(p2p=True)``); its viewers do not join the ordinary segment swarm
during the run (``swarm_join_delay`` past it: nobody loads whole segments there). One line per case::

    RESULT llhls_offload policy=NAME viewers=N part_s=P latency_s=L p2p_ratio=R stalls=N
        latency_p50_s=X latency_p95_s=Y

(on one line). Viewers join at the same moment of the stream in both cases (``--start-after``
seconds after the origin started, wall clock), so that both start as far behind live.

* ``latency_s``: the distance behind live asked for (PART-HOLD-BACK, or ``--hold-back``, seconds);
  the player loads from an independent part at least that far back (here a segment start: one
  key frame per segment) and plays from exactly that far back (the media before is decoded, not
  shown).
* ``p2p_ratio``: bytes from peers / all media bytes the viewers received (parts, and the whole
  segment each starts with), over the whole run, joining included.
* ``latency_p50_s``/``latency_p95_s``: wall clock minus the program date-time at the playhead,
  sampled every 0.1 s while playing, over every viewer.

Loopback is a best case (no link limits, 127.0.0.1 round trips); the machine's cores are shared
by the origin, the tracker and every viewer.

On shaped links (``--uplink``, needs root): the testbed (p2ploader.testbed) puts the origin
(``p2ploader origin --llhls``), the tracker (``p2ploader tracker``) and each viewer (one worker
process each) in network namespaces of their own, each viewer's uplink drawn from ``--uplink``
and downlink from ``--downlink`` (from ``--seed``, as ``p2ploader swarm`` draws them), shaped by
``tbf`` with ``--link-queue`` seconds of queue; ICE on the testbed's addresses. The line then
says ``links=UPLINK``; no delay is added (the kernel has no ``netem``). There the viewers join
``--start-after`` plus one second per viewer after the origin started (each process imports
aiortc first); a worker that was not ready in time says so (``late_s``).

    python benchmarks/llhls_offload.py [--viewers 10] [--seconds 25] [--part-seconds 0.5] [--hold-back S]
    sudo python benchmarks/llhls_offload.py --uplink 1-20mbit [--downlink 20-50mbit]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

SCRIPT = str(Path(__file__).resolve())
PROJECT_ROOT = Path(__file__).resolve().parents[1]
if str(PROJECT_ROOT) not in sys.path:
    sys.path.insert(0, str(PROJECT_ROOT))

from p2ploader import LoaderConfig, open_loader  # noqa: E402
from p2ploader.aio.ll_player import play_low_latency  # noqa: E402
from p2ploader.aio.webrtc import restrict_ice_to_loopback  # noqa: E402
from p2ploader.testbed.links import RateRange, parse_rate_range  # noqa: E402
from p2ploader.testing.llhls import LowLatencySettings  # noqa: E402
from p2ploader.testing.origin import LiveSettings, OriginServer  # noqa: E402
from p2ploader.tracker import TrackerServer  # noqa: E402
from tests.ffmpeg_streams import make_llhls_stream  # noqa: E402

CACHE = Path(__file__).resolve().parent / ".cache"


def percentile(samples: list[float], fraction: float) -> float:
    ordered = sorted(samples)
    if not ordered:
        return float("nan")
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


# --------------------------------------------------------------------------------------------------
# A worker: some viewers in one process


async def run_viewer(
    url: str, tracker: str | None, *, seed: int, delay: float, seconds: float, hold_back: float | None
) -> dict[str, Any]:
    await asyncio.sleep(delay)
    p2p = tracker is not None
    config = LoaderConfig(
        use_p2p=p2p,
        tracker_announce=(tracker,) if tracker else (),
        rtc_config={"iceServers": []},
        # The segment swarm would only cost links here: nobody loads whole segments through it.
        swarm_join_delay=3600.0,
    )
    peer_samples: list[int] = []
    async with (
        open_loader(url, config=config, seed=seed) as loader,
        loader.low_latency_stream(hold_back=hold_back, p2p=p2p) as stream,
    ):

        def sample_peers(model: object, latency: float | None) -> None:
            # Sampled while playing: read at the end, the count falls as the other viewers stop.
            if stream.part_swarm is not None:
                peer_samples.append(stream.part_swarm.statistics().peers)

        opened = time.monotonic()
        first_item: list[float] = []

        def note_first(item: object) -> None:
            if not first_item:
                first_item.append(time.monotonic() - opened)

        report = await play_low_latency(stream, duration=seconds, on_tick=sample_peers, on_item=note_first)
        stats = stream.statistics
        swarm = stream.part_swarm.statistics() if stream.part_swarm is not None else None
    return {
        "stalls": report.playback.stalls,
        "latencies": list(report.latency_samples),
        "first_item_s": first_item[0] if first_item else None,
        "startup_s": report.playback.startup_time,
        "bytes": stats.bytes,
        "p2p_bytes": stats.p2p_bytes,
        "fallbacks": stats.swarm_fallbacks,
        "parts": report.parts,
        "peers_peak": max(peer_samples, default=0),
        "peers_mean": statistics.fmean(peer_samples) if peer_samples else 0.0,
        "uploaded": swarm.uploaded_bytes if swarm is not None else 0,
        "p2p_failures": swarm.p2p_failures if swarm is not None else 0,
    }


async def watch_loop_lag(lags: list[float]) -> None:
    """The largest lateness of this worker's event loop (seconds), checked every 0.1 s."""
    loop = asyncio.get_running_loop()
    while True:
        before = loop.time()
        await asyncio.sleep(0.1)
        lags.append(loop.time() - before - 0.1)


async def worker(args: argparse.Namespace) -> None:
    late = time.time() - args.start_at  # > 0: this process was not ready when the run began
    await asyncio.sleep(max(0.0, -late))
    lags: list[float] = []
    watcher = asyncio.get_running_loop().create_task(watch_loop_lag(lags))
    # On the testbed the viewers reach each other on its addresses, not on loopback.
    with contextlib.nullcontext() if args.any_interface else restrict_ice_to_loopback():
        results = await asyncio.gather(
            *(
                run_viewer(
                    args.url,
                    args.tracker,
                    seed=args.first_seed + k,
                    delay=args.join_window * (args.first_seed + k) / max(args.total, 1),
                    seconds=args.seconds,
                    hold_back=args.hold_back,
                )
                for k in range(args.count)
            ),
            return_exceptions=True,
        )
    watcher.cancel()
    print(
        json.dumps(
            {
                "loop_lag_max": max(lags, default=0.0),
                "loop_lag_p95": percentile(lags, 0.95),
                "late_s": max(0.0, late),
            }
        ),
        flush=True,
    )
    for result in results:
        if isinstance(result, BaseException):
            print(json.dumps({"error": f"{type(result).__name__}: {result}"}), flush=True)
        else:
            print(json.dumps(result), flush=True)


# --------------------------------------------------------------------------------------------------
# The runner


async def run_case(args: argparse.Namespace, root: Path, policy: str) -> str:
    live = LiveSettings(window_segments=6, initial_segments=2, loop=True)
    async with TrackerServer() as tracker:
        with OriginServer(root, live=live, low_latency=LowLatencySettings()) as origin:
            url = origin.url_for("llhls/high/index.m3u8")
            start_at = time.time() + args.start_after
            counts = [
                args.viewers // args.workers + (1 if w < args.viewers % args.workers else 0)
                for w in range(args.workers)
            ]
            procs = []
            first = 0
            for count in counts:
                if count == 0:
                    continue
                command = worker_command(args, url, count=count, first=first, start_at=start_at)
                if policy == "p2p":
                    command += ["--tracker", tracker.url]
                procs.append(await asyncio.create_subprocess_exec(*command, stdout=asyncio.subprocess.PIPE))
                first += count
            outputs = await asyncio.wait_for(
                asyncio.gather(*(p.communicate() for p in procs)),
                timeout=args.seconds + args.join_window + 120,
            )
    return summarise(args, policy, [out for out, _ in outputs])


def worker_command(
    args: argparse.Namespace, url: str, *, count: int, first: int, start_at: float
) -> list[str]:
    hold_back = [] if args.hold_back is None else ["--hold-back", str(args.hold_back)]
    return [
        sys.executable,
        SCRIPT,
        "--worker",
        *hold_back,
        *("--url", url, "--count", str(count), "--first-seed", str(first), "--total", str(args.viewers)),
        *(
            "--seconds",
            str(args.seconds),
            "--join-window",
            str(args.join_window),
            "--start-at",
            str(start_at),
        ),
    ]


async def run_case_on_testbed(args: argparse.Namespace, root: Path, policy: str) -> str:
    """The case on the testbed: each viewer a worker process in its own shaped namespace."""
    from p2ploader.testbed.netns import Testbed
    from p2ploader.testbed.swarm import build_swarm_network

    with Testbed(queue_seconds=args.link_queue) as testbed:
        network = build_swarm_network(
            testbed,
            root=root,
            viewers=args.viewers,
            uplink=args.uplink,
            downlink=args.downlink,
            seed=args.seed,
            window_segments=6,
            origin_options=("--llhls",),
        )
        url = network.origin_url + "llhls/high/index.m3u8"
        # One process a viewer, all importing aiortc at once: a second each to get ready first.
        start_at = time.time() + args.start_after + args.viewers
        procs = []
        for viewer in range(args.viewers):
            command = worker_command(args, url, count=1, first=viewer, start_at=start_at)
            command.append("--any-interface")
            if policy == "p2p":
                command += ["--tracker", network.tracker_url]
            procs.append(
                await asyncio.create_subprocess_exec(
                    *network.viewer_prefix(viewer), *command, stdout=asyncio.subprocess.PIPE
                )
            )
        outputs = await asyncio.wait_for(
            asyncio.gather(*(p.communicate() for p in procs)),
            timeout=args.start_after + args.seconds + args.join_window + 120,
        )
    return summarise(args, policy, [out for out, _ in outputs])


def summarise(args: argparse.Namespace, policy: str, outputs: list[bytes]) -> str:
    """The case's RESULT line from its workers' outputs (one JSON object a line); prints the
    details on a ``#`` line."""
    viewers: list[dict[str, Any]] = []
    errors: list[str] = []
    lags: list[dict[str, float]] = []
    for out in outputs:
        for line in out.decode().splitlines():
            if line.startswith("{"):
                entry = json.loads(line)
                if "error" in entry:
                    errors.append(entry["error"])
                elif "loop_lag_max" in entry:
                    lags.append(entry)
                else:
                    viewers.append(entry)
    latencies = [x for v in viewers for x in v["latencies"]]
    total = sum(v["bytes"] for v in viewers)
    p2p = sum(v["p2p_bytes"] for v in viewers)
    stalls = sum(v["stalls"] for v in viewers) + len(errors)
    hold_back = 3 * args.part_seconds if args.hold_back is None else args.hold_back
    links = f" links={args.uplink}" if args.uplink else ""
    line = (
        f"RESULT llhls_offload policy={policy} viewers={len(viewers)} part_s={args.part_seconds:g} "
        f"latency_s={hold_back:g}{links} p2p_ratio={p2p / total if total else 0.0:.3f} stalls={stalls} "
        f"latency_p50_s={percentile(latencies, 0.5):.2f} latency_p95_s={percentile(latencies, 0.95):.2f}"
    )
    detail = {
        "failed_viewers": errors,
        "swarm_fallbacks": sum(v["fallbacks"] for v in viewers),
        "parts_per_viewer": statistics.mean(v["parts"] for v in viewers) if viewers else 0,
        "bytes": total,
        # Links in the parts swarm while playing (sampled every 0.1 s): the peak, and the mean.
        "peers_peak": [v["peers_peak"] for v in viewers],
        "peers_mean": [round(v["peers_mean"], 2) for v in viewers],
        "stalls": [v["stalls"] for v in viewers],
        # Where each viewer began: seconds from opening the stream to its first item, from there to
        # playing, and its first latency sample (the start rule's distance, plus the age of the
        # first playlist's edge, plus those times; stalls add to it later).
        "first_item_s": [None if v["first_item_s"] is None else round(v["first_item_s"], 2) for v in viewers],
        "startup_s": [None if v["startup_s"] is None else round(v["startup_s"], 2) for v in viewers],
        "first_latency_s": [round(v["latencies"][0], 2) if v["latencies"] else None for v in viewers],
        "p2p_bytes": [v["p2p_bytes"] for v in viewers],
        "p2p_failures": [v["p2p_failures"] for v in viewers],
        "worker_loop_lag": [{k: round(x, 3) for k, x in lag.items()} for lag in lags],
    }
    print(f"# {policy}: {json.dumps(detail)}", flush=True)
    return line


async def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--viewers", type=int, default=10)
    parser.add_argument("--workers", type=int, default=2, help="worker processes the viewers are split over")
    parser.add_argument("--seconds", type=float, default=25.0, help="seconds each viewer plays")
    parser.add_argument("--join-window", type=float, default=2.0, help="seconds over which viewers join")
    parser.add_argument(
        "--start-after",
        type=float,
        default=8.0,
        help="seconds after the origin's start the first viewer joins",
    )
    parser.add_argument("--part-seconds", type=float, default=0.5)
    parser.add_argument(
        "--hold-back",
        type=float,
        help="seconds behind live the players play (default: the playlist's PART-HOLD-BACK, 3 parts)",
    )
    parser.add_argument("--segment-seconds", type=int, default=2)
    parser.add_argument("--policies", nargs="+", default=["http", "p2p"], choices=["http", "p2p"])
    parser.add_argument(
        "--uplink", type=parse_rate_range, help="run on the testbed, uplinks drawn from RANGE (e.g. 1-20mbit)"
    )
    parser.add_argument("--downlink", type=parse_rate_range, default=RateRange(20e6, 50e6))
    parser.add_argument("--link-queue", type=float, default=0.1, help="tbf queue, seconds at the link's rate")
    parser.add_argument("--seed", type=int, default=1, help="the testbed's link draws")
    # Worker mode (internal).
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--tracker", help=argparse.SUPPRESS)
    parser.add_argument("--count", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--first-seed", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--total", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--start-at", type=float, default=0.0, help=argparse.SUPPRESS)
    parser.add_argument("--any-interface", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        await worker(args)
        return
    name = f"llhls_{args.segment_seconds}s_{args.part_seconds:g}p_60"
    root = make_llhls_stream(
        CACHE / name, seconds=60, segment_seconds=args.segment_seconds, part_seconds=args.part_seconds
    )
    where = (
        f"testbed: uplinks {args.uplink}, downlinks {args.downlink}, one process a viewer"
        if args.uplink
        else f"loopback (a best case: no link limits); {args.workers} processes"
    )
    print(
        f"# {where}; {args.viewers} viewers, {args.seconds:g} s each; {time.strftime('%Y-%m-%d %H:%M:%S')}",
        flush=True,
    )
    run = run_case_on_testbed if args.uplink else run_case
    lines = [await run(args, root, policy) for policy in args.policies]
    for line in lines:
        print(line, flush=True)


if __name__ == "__main__":
    asyncio.run(main())
