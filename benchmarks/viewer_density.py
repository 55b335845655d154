"""Viewer density: how many headless viewers of a ~1 Mbit/s live stream one machine holds.

The local origin (:class:`p2ploader.testing.origin.OriginServer`) serves a 120 s ffmpeg-made stream
(640x360 H.264 at ~900 kbit/s with 64 kbit/s AAC, ``--segment-seconds`` segments; made once into
benchmarks/.cache/) as live, the embedded tracker runs in this process, and N viewers run in pools
(``p2ploader swarm``'s default: one pool process per core), P2P on, joining over
``--join-window`` seconds and playing to the end of the step. N steps up (``--viewers``, default
10 25 50 100 150 200) until a step has a stall or a failed viewer, the viewers' CPU saturates the
machine, the next step would pass ``--max-viewers``, or the wall-clock ``--budget`` would be
exceeded. Each step prints::

    RESULT viewer_density viewers=N stalls=N cpu_percent=X rss_mb_per_viewer=Y p2p_ratio=R

* ``cpu_percent``: CPU time of the pools and of this process (origin, tracker, runner) during the
  step, as a percentage of the machine's capacity (all cores: 100 is every core busy);
  ``machine_cpu_percent`` beside it is the whole machine's from /proc/stat, other work included.
* ``rss_mb_per_viewer``: the largest sum of the pools' resident memory (VmRSS, from /proc) seen
  during the step, in MiB, divided by N (with ``--process-per-viewer``: the viewer processes').
* ``p2p_ratio``: P2P bytes / all bytes the viewers downloaded; ``stalls``: over every viewer.
* ``loop_lag_max_s`` beside it: the longest a pool's event loop was late (checked every second);
  seconds of it mean a pool holds more viewers than its share of the CPU serves.

A viewer's CPU time cannot be told apart inside a shared process: the figures are per pool.
Linux only (/proc).

    python benchmarks/viewer_density.py [--viewers 10 25 50] [--step-seconds 60] [--budget 900]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import time
from pathlib import Path
from typing import Any

from swarm_offload import make_stream as make_swarm_stream

from p2ploader.app.swarmrun import SwarmRunner, churn_schedule
from p2ploader.app.viewer import ViewerSpec
from p2ploader.config import LoaderConfig
from p2ploader.testing.origin import LiveSettings, OriginServer
from p2ploader.tracker import TrackerServer

SATURATED_PERCENT = 90.0
"""A step whose CPU (ours) reaches this share of the machine ends the climb."""
CLK_TCK = os.sysconf("SC_CLK_TCK")
CORES = len(os.sched_getaffinity(0))


def make_stream(segment_seconds: int) -> Path:
    """A 120 s, ~1 Mbit/s H.264/AAC stream (one rendition), made once per segment length."""
    return make_swarm_stream(segment_seconds, video_kbps=900)


def _rss_bytes(pid: int) -> int:
    """A process's resident memory (VmRSS), 0 once it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError):
        pass
    return 0


def _cpu_seconds(pid: int) -> float | None:
    """A process's user + system CPU seconds (None once it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def _machine_busy() -> tuple[float, float]:
    """The machine's (busy, total) CPU seconds from /proc/stat, all cores."""
    fields = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    total = sum(fields[:8])
    return (total - idle) / CLK_TCK, total / CLK_TCK


class Sampler:
    """Samples the pools' memory and CPU time while a step runs."""

    def __init__(self, runner: SwarmRunner) -> None:
        self.runner = runner
        self.peak_rss = 0
        self.cpu: dict[int, float] = {}  # the last CPU seconds read per pool

    def __call__(self) -> None:
        pids = self.runner.pids
        self.peak_rss = max(self.peak_rss, sum(_rss_bytes(pid) for pid in pids))
        for pid in pids:
            seconds = _cpu_seconds(pid)
            if seconds is not None:
                self.cpu[pid] = seconds


async def run_step(
    root: Path,
    *,
    viewers: int,
    seconds: float,
    join_window: float,
    pools: int | None = None,
    loader: dict[str, Any] | None = None,
) -> dict[str, Any]:
    async with TrackerServer() as tracker:
        with OriginServer(root, live=LiveSettings(window_segments=20)) as origin:
            config = LoaderConfig(
                tracker_announce=(tracker.url,), rtc_config={"iceServers": []}, **(loader or {})
            )
            template = ViewerSpec(
                url=origin.url_for("live/master.m3u8"), config=config.to_faq(), forward_buffer=20.0
            )
            sessions = churn_schedule(viewers, duration=seconds, stagger=join_window / viewers)
            runner = SwarmRunner(template, sessions, grace=30.0, pools=pools)
            sampler = Sampler(runner)
            machine0, own0 = _machine_busy(), time.process_time()
            started = time.monotonic()
            result = await runner.run(on_update=sampler, update_interval=1.0)
            wall = time.monotonic() - started
            machine1, own1 = _machine_busy(), time.process_time()
    # The pools are reaped: their whole CPU time is the children's (the runner's own figure).
    pools_cpu = result.process_cpu_time if result.process_cpu_time is not None else sum(sampler.cpu.values())
    ours = pools_cpu + (own1 - own0)
    total = result.total
    return {
        "viewers": viewers,
        "stalls": total.stalls,
        "failures": total.failures,
        "cpu_percent": 100.0 * ours / wall / CORES,
        "machine_cpu_percent": 100.0 * (machine1[0] - machine0[0]) / max(1e-9, machine1[1] - machine0[1]),
        "rss_mb_per_viewer": sampler.peak_rss / (1 << 20) / viewers,
        "p2p_ratio": total.p2p_ratio,
        "pools": result.pools,
        "wall": wall,
        # Peers each viewer had at its end (the total's own figure counts viewers online: none).
        "peers": round(
            sum(int((run.result or {}).get("peers_connected") or 0) for run in result.sessions)
            / max(1, len(result.sessions)),
            1,
        ),
        "loop_lag_max": max(
            (float((run.result or {}).get("pool_loop_lag_max") or 0.0) for run in result.sessions),
            default=0.0,
        ),
        "sessions": [
            {"viewer": run.session.viewer, "status": run.status, "error": run.error, "result": run.result}
            for run in result.sessions
        ],
        "errors": sorted({run.error for run in result.sessions if run.error})[:3],
    }


def result_line(step: dict[str, Any]) -> str:
    return (
        f"RESULT viewer_density viewers={step['viewers']} stalls={step['stalls']} "
        f"cpu_percent={step['cpu_percent']:.1f} rss_mb_per_viewer={step['rss_mb_per_viewer']:.1f} "
        f"p2p_ratio={step['p2p_ratio']:.3f}"
    )


async def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--viewers", type=int, nargs="+", default=[10, 25, 50, 100, 150, 200])
    parser.add_argument("--max-viewers", type=int, default=500, help="never run a step above this")
    parser.add_argument("--step-seconds", type=float, default=60.0, help="length of each step")
    parser.add_argument("--join-window", type=float, default=15.0, help="seconds over which viewers join")
    parser.add_argument("--budget", type=float, default=900.0, help="wall-clock seconds for every step")
    parser.add_argument("--segment-seconds", type=int, default=4, help="segment duration of the stream")
    parser.add_argument(
        "--process-per-viewer",
        action="store_true",
        help="each viewer in a process of its own, to compare (RSS is then the viewer processes')",
    )
    parser.add_argument("--json", type=Path, default=None, help="write every step's figures here")
    parser.add_argument("--no-p2p", action="store_true", help="HTTP only, the baseline")
    parser.add_argument("--max-peers", type=int, default=None, help="the loader's max_peers (default: 20)")
    parser.add_argument(
        "--upload-delay-target",
        type=float,
        default=None,
        help="the loader's upload_delay_target in seconds (default: 0.05; 0: the upload control off)",
    )
    args = parser.parse_args()
    loader: dict[str, Any] = {}
    if args.upload_delay_target is not None:
        loader["upload_delay_target"] = args.upload_delay_target
    if args.no_p2p:
        loader["use_p2p"] = False
    if args.max_peers is not None:
        loader["max_peers"] = args.max_peers
    root = make_stream(args.segment_seconds)
    began = time.monotonic()
    steps: list[dict[str, Any]] = []
    print(
        f"viewer_density: {CORES} cores, steps {args.viewers}, {args.step_seconds:g} s each, "
        f"loader settings {loader or 'default'}",
        flush=True,
    )
    for viewers in sorted(args.viewers):
        if viewers > args.max_viewers:
            print(f"stop: {viewers} viewers is over --max-viewers {args.max_viewers}", flush=True)
            break
        # A step takes about its length plus start-up and leaving; stop before the budget runs out.
        if time.monotonic() - began + args.step_seconds * 1.5 > args.budget:
            print(f"stop: the budget of {args.budget:g} s would be exceeded", flush=True)
            break
        step = await run_step(
            root,
            viewers=viewers,
            seconds=args.step_seconds,
            join_window=args.join_window,
            pools=0 if args.process_per_viewer else None,
            loader=loader,
        )
        print(
            f"{result_line(step)} failures={step['failures']} pools={step['pools']} "
            f"machine_cpu_percent={step['machine_cpu_percent']:.1f} wall_s={step['wall']:.1f} "
            f"loop_lag_max_s={step['loop_lag_max']:.2f} peers_mean={step['peers']}"
            + (f" errors={step['errors']}" if step["errors"] else ""),
            flush=True,
        )
        steps.append(step)
        if args.json is not None:
            args.json.write_text(json.dumps(steps, indent=1))
        if step["stalls"] or step["failures"]:
            print("stop: stalls or failed viewers", flush=True)
            break
        # Our own CPU: on a shared machine others' load shows as stalls, not here.
        if step["cpu_percent"] >= SATURATED_PERCENT:
            print("stop: the viewers saturate the CPU", flush=True)
            break


if __name__ == "__main__":
    asyncio.run(main())
