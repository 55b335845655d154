"""Latency curve: P2P ratio and stalls against live latency, for each policy, in the simulator.

One live scenario (200 viewers joining over the first minute, 5 s segments, 20 in the playlist,
1.5 Mbit/s, uplinks 1-20 Mbit/s, downlinks 20-50 Mbit/s, 20 % of the audience leaving and replaced
per minute, 10 simulated minutes, up to 20 peers each as ``LoaderConfig.max_peers``) is played at
several distances behind the live edge (2, 3, 4, 6, 10 and 19 segments: 10 s to 95 s), by every
policy on the same seed, and once more with P2P off for reference. ``p2pml-0.6+rec`` is P2P Media
Loader 0.6's algorithm with the settings docs/simulator.md recommends at 19 segments of latency
(``httpDownloadProbability: 0.02``).

Printed per latency: the best case 1 - 1/N for the mean audience N, and per policy the P2P ratio,
its ratio to the best and the stalls (all viewers); P2P off shows its stalls only. The PNG at
``--plot`` draws the P2P ratio (the best case dashed), the stalls and the median startup time
against the latency, one line per policy (p2p_ratio is 0 for P2P off by definition).

    python benchmarks/latency_curve.py [--viewers 200] [--duration 600] [--latencies 2 3 4 6 10 19]
        [--policy NAME ...] [--no-recommended] [--churn 0.2] [--seed 1] [--jobs N]
        [--kbps 1500] [--live-setting NAME=VALUE ...] [--plot latency_curve.png]

Ends with one ``RESULT latency_curve policy=... latency_segments=... p2p_ratio=... ratio_to_best=...
stalls=...`` line per case (``policy=p2p-off`` for the reference runs).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

from live_policies import RECOMMENDED, add_common_arguments, live_scenario, plan_with_recommended
from live_policies import label as policy_label

from p2ploader.app.sim_plots import plot_sweep
from p2ploader.app.simulate import TaskResult, format_table, run_tasks

POLICIES = ("p2pml-0.6", "p2pml-2.2", "p2ploader-live")
OFF = "p2p-off"


def label(result: TaskResult) -> str:
    return policy_label(result, off=OFF)


def latency_of(result: TaskResult) -> int:
    return int(dict(result.task.point)["latency_segments"])


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--viewers", type=int, default=200)
    parser.add_argument(
        "--latencies", type=int, nargs="+", default=[2, 3, 4, 6, 10, 19], help="segments behind live"
    )
    parser.add_argument("--churn", type=float, default=0.2, help="share of the audience leaving per minute")
    parser.add_argument(
        "--policy", action="append", default=None, help=f"policy (repeatable; default: {', '.join(POLICIES)})"
    )
    add_common_arguments(parser, recommended_help=f"leave out the {RECOMMENDED} curve")
    parser.add_argument("--plot", type=Path, default=Path("latency_curve.png"), help="PNG to write")
    args = parser.parse_args()

    policies: list[str] = args.policy or list(POLICIES)
    latencies: list[int] = sorted(set(args.latencies))
    base = live_scenario("latency-curve", args, viewers=args.viewers, churn_per_minute=args.churn)
    sweeps: list[tuple[str, list[Any]]] = [("latency_segments", latencies)]
    tasks = plan_with_recommended(base, sweeps=sweeps, policies=policies, recommended=not args.no_recommended)
    labels = [*policies, *([] if args.no_recommended else [RECOMMENDED]), OFF]
    print(
        f"{len(tasks)} simulator runs: {args.viewers} viewers, {args.duration:g} s live, 5 s segments, "
        f"{args.kbps / 1000:g} Mbit/s, uplinks 1-20 Mbit/s, churn {args.churn:g}/min, seed {args.seed}, "
        f"loader {dict(base.loader)} for every run",
        flush=True,
    )
    started = time.perf_counter()

    def progress(result: TaskResult, done: int, total: int) -> None:
        print(
            f"  [{done}/{total}] latency={latency_of(result)} {label(result)}: "
            f"P2P {result.metrics.p2p_ratio:.3f}, stalls {result.metrics.stalls} ({result.wall_s:.1f} s)",
            file=sys.stderr,
            flush=True,
        )

    results = run_tasks(tasks, jobs=args.jobs, on_done=progress)
    by_case = {(label(r), latency_of(r)): r for r in results}

    rows = []
    for latency in latencies:
        first = by_case[(policies[0], latency)].metrics
        row = [str(latency), f"{latency * base.segment_duration_s:g}", f"{first.best_ratio:.3f}"]
        for name in labels:
            m = by_case[(name, latency)].metrics
            row.append(
                str(m.stalls) if name == OFF else f"{m.p2p_ratio:.3f} ({m.ratio_to_best:.3f}) {m.stalls}"
            )
        rows.append(row)
    headers = ["latency (segments)", "latency (s)", "best", *labels]
    print(
        f"\n{args.viewers} viewers, churn {args.churn:g}/min. Each cell: P2P ratio (its ratio to the best) "
        f"stalls; {OFF}: stalls"
    )
    print(format_table(headers, rows))

    plot_rows: list[dict[str, Any]] = [
        {"latency_segments": latency_of(r), **r.metrics.as_row(), "policy": label(r)}
        for r in sorted(results, key=lambda r: labels.index(label(r)))
    ]
    path = plot_sweep(
        plot_rows,
        "latency_segments",
        args.plot,
        title=(
            f"P2P ratio against live latency: {args.viewers} viewers, 5 s segments, "
            f"{args.kbps / 1000:g} Mbit/s, uplinks 1-20 Mbit/s,\n{args.churn:.0%}/min churn, "
            f"{args.duration / 60:g} simulated minutes, seed {args.seed}"
        ),
    )
    print(f"\nplot: {path} ({time.perf_counter() - started:.0f} s)\n")
    for name in labels:
        for latency in latencies:
            m = by_case[(name, latency)].metrics
            print(
                f"RESULT latency_curve policy={name} latency_segments={latency} p2p_ratio={m.p2p_ratio:.3f} "
                f"ratio_to_best={m.ratio_to_best:.3f} stalls={m.stalls}"
            )


if __name__ == "__main__":
    main()
