"""Simulator speed: 1,000 viewers watching a 10-minute live stream.

Prints wall and CPU time, simulated viewer-seconds per wall second, events per CPU second, the
peak memory of the process, and the time of a fixed pure-Python calibration loop run before and
after the simulation in the same process: the machine is shared, and ``wall_per_calibration``
(wall time over the calibration loop's median) shows the simulator's own speed with the machine's
noise divided out. Then one RESULT line. Targets (issue 27): 1,000 viewers x 10 min <= 30 s,
10,000 x 10 min <= 5 min and <= 2 GB.

    python benchmarks/sim_speed.py [--viewers 1000] [--minutes 10]
"""

from __future__ import annotations

import argparse
import resource
import statistics
import time

from p2ploader.sim import Scenario, run_scenario


def calibration_loop() -> float:
    """Seconds of a fixed pure-Python workload (dict, heap and float arithmetic, as the simulator
    does); about 0.2 s on an idle core of the machine the targets are set on."""
    import heapq

    started = time.perf_counter()
    heap: list[tuple[float, int]] = []
    table: dict[int, float] = {}
    value = 0.0
    for step in range(150_000):
        heapq.heappush(heap, ((step * 7919) % 1000 / 7.0, step))
        table[step % 4096] = table.get(step % 4096, 0.0) + step * 0.5
        if len(heap) > 64:
            value += heapq.heappop(heap)[0]
    return time.perf_counter() - started + 0.0 * value


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--viewers", type=int, default=1000)
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument(
        "--max-peers", type=int, default=20, help="peers per viewer (the loader's default: 20)"
    )
    args = parser.parse_args()
    scenario = Scenario(
        name="sim-speed",
        viewers=args.viewers,
        duration_s=args.minutes * 60,
        join_window_s=60.0,
        uplink_mbps=(1.0, 20.0),
        max_peers=args.max_peers,
    )
    calibrations = [calibration_loop() for _ in range(3)]
    started = time.perf_counter()
    cpu = time.process_time()

    def progress(t: float) -> None:
        if t % 60 == 0:
            print(f"  simulated {t:6.0f} s", flush=True)

    result = run_scenario(scenario, progress=progress)
    wall = time.perf_counter() - started
    cpu = time.process_time() - cpu
    calibrations += [calibration_loop() for _ in range(3)]
    calibration = statistics.median(calibrations)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kB on Linux
    viewer_seconds = sum(
        ((v.left if v.left is not None else scenario.duration_s) - v.joined) for v in result.viewers
    )
    print(
        f"{args.viewers} viewers, {args.minutes:g} min live: wall {wall:.1f} s (CPU {cpu:.1f} s), "
        f"{viewer_seconds / wall:,.0f} simulated viewer-seconds per wall second, "
        f"{result.callbacks_run / wall:,.0f} events/s"
    )
    print(f"  p2p_ratio={result.p2p_ratio:.3f} best={result.best_ratio:.3f} stalls={result.stalls}")
    print(
        f"  calibration loop: median {calibration:.3f} s of {len(calibrations)} "
        f"(min {min(calibrations):.3f}, max {max(calibrations):.3f}); wall / calibration "
        f"{wall / calibration:.1f}; peak memory {peak_mb:.0f} MB"
    )
    print(
        f"RESULT sim_speed viewers={args.viewers} minutes={args.minutes:g} max_peers={args.max_peers} "
        f"wall_s={wall:.1f} calibration_s={calibration:.3f} wall_per_calibration={wall / calibration:.1f} "
        f"peak_rss_mb={peak_mb:.0f} "
        f"viewer_seconds_per_s={viewer_seconds / wall:.0f} events={result.callbacks_run} "
        f"p2p_ratio={result.p2p_ratio:.3f} stalls={result.stalls} "
        # CPU seconds: on a shared machine the figure to compare between runs (wall time is not).
        f"cpu_s={cpu:.1f} events_per_cpu_s={result.callbacks_run / cpu:.0f}"
    )


if __name__ == "__main__":
    main()
