"""Simulator speed: 1,000 viewers watching a 10-minute live stream.

Prints wall time and simulated viewer-seconds per wall second (target: under 60 s on this
2-core machine), then one RESULT line.

    python benchmarks/sim_speed.py [--viewers 1000] [--minutes 10]
"""

from __future__ import annotations

import argparse
import time

from p2ploader.sim import Scenario, run_scenario


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
    started = time.perf_counter()
    cpu = time.process_time()

    def progress(t: float) -> None:
        if t % 60 == 0:
            print(f"  simulated {t:6.0f} s", flush=True)

    result = run_scenario(scenario, progress=progress)
    wall = time.perf_counter() - started
    cpu = time.process_time() - cpu
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
        f"RESULT sim_speed viewers={args.viewers} minutes={args.minutes:g} max_peers={args.max_peers} "
        f"wall_s={wall:.1f} "
        f"viewer_seconds_per_s={viewer_seconds / wall:.0f} events={result.callbacks_run} "
        f"p2p_ratio={result.p2p_ratio:.3f} stalls={result.stalls}"
    )


if __name__ == "__main__":
    main()
