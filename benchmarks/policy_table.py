"""Policy table: each download policy side by side in the simulator, live, at 3 and 19 segments of latency.

For N = 5, 10, 50 and 200 live viewers (5 s segments, 20 in the playlist, 1.5 Mbit/s, uplinks
1-20 Mbit/s, downlinks 20-50 Mbit/s, joins spread over the first minute, 10 minutes, up to 20
peers each as ``LoaderConfig.max_peers``), each held 3 segments (the usual player default) or 19
(P2P Media Loader's hls.js engine) behind the live edge, every policy runs on the same scenario and
seed, and once more with P2P off. Printed side by side per case:

* p2p_ratio: P2P bytes / all bytes the viewers downloaded;
* best: the best case 1 - 1/N for the mean audience N, and p2p_ratio / best;
* origin_vs_nop2p: bytes the origin sent, against the same swarm with P2P off;
* req/seg: origin requests per published segment; stalls (all viewers), rebuffer seconds, median
  startup.

Besides the registered policies, the row ``p2pml-0.6+rec`` is P2P Media Loader 0.6's algorithm with
the settings docs/simulator.md recommends for live streams played 19 segments behind the live edge
(``httpDownloadProbability: 0.02``, everything else default). For reference, Peer5 reported a 50 %
P2P ratio at 5 viewers and 70 % at 20; the best case is 1 - 1/N.

    python benchmarks/policy_table.py [--viewers 5 10 50 200] [--latencies 3 19] [--duration 600]
        [--policy NAME ...] [--seed 1] [--jobs N] [--kbps 1500] [--live-setting NAME=VALUE ...]

Ends with one ``RESULT policy_table policy=... n=... latency_segments=... p2p_ratio=...
origin_vs_nop2p=... best=... stalls=...`` line per case and policy.
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

from live_policies import (
    RECOMMENDED,
    RECOMMENDED_LIVE,
    add_common_arguments,
    label,
    live_scenario,
    plan_with_recommended,
)

from p2ploader.app.simulate import TaskResult, format_table, run_tasks
from p2ploader.core.policies import available_policies


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--viewers", type=int, nargs="+", default=[5, 10, 50, 200])
    parser.add_argument("--latencies", type=int, nargs="+", default=[3, 19], help="segments behind live")
    parser.add_argument(
        "--policy", action="append", default=None, help="policy to compare (repeatable; default: all)"
    )
    add_common_arguments(parser, recommended_help=f"leave out the {RECOMMENDED} row")
    args = parser.parse_args()

    policies = args.policy or sorted(available_policies(), key=lambda p: (p != "p2pml-0.6", p))
    base = live_scenario("policy-table", args)
    sweeps: list[tuple[str, list[Any]]] = [("viewers", args.viewers), ("latency_segments", args.latencies)]
    tasks = plan_with_recommended(base, sweeps=sweeps, policies=policies, recommended=not args.no_recommended)
    started = time.perf_counter()
    print(
        f"{len(tasks)} simulator runs: {args.duration:g} s live, 5 s segments, uplinks 1-20 Mbit/s, "
        f"seed {args.seed}, loader {dict(base.loader)} for every run",
        flush=True,
    )

    def progress(result: TaskResult, done: int, total: int) -> None:
        point = dict(result.task.point)
        print(
            f"  [{done}/{total}] N={point['viewers']} latency={point['latency_segments']} {label(result)}: "
            f"P2P {result.metrics.p2p_ratio:.3f} ({result.wall_s:.1f} s)",
            file=sys.stderr,
            flush=True,
        )

    results = run_tasks(tasks, jobs=args.jobs, on_done=progress)
    lines = []
    for n in args.viewers:
        for latency in args.latencies:
            case = [r for r in results if dict(r.task.point) == {"viewers": n, "latency_segments": latency}]
            on = sorted(
                (r for r in case if r.task.p2p), key=lambda r: [*policies, RECOMMENDED].index(label(r))
            )
            off = next(r for r in case if not r.task.p2p)
            best = on[0].metrics.best_ratio
            rows = []
            for r in [*on, off]:
                m = r.metrics
                rows.append(
                    [
                        label(r),
                        f"{m.p2p_ratio:.3f}",
                        f"{m.ratio_to_best:.3f}" if r.task.p2p else "-",
                        f"{m.origin_vs_nop2p:.3f}" if m.origin_vs_nop2p is not None else "1.000",
                        f"{m.origin_requests_per_segment:.1f}",
                        str(m.stalls),
                        f"{m.rebuffer_s:.1f}",
                        f"{m.startup_median_s or 0:.2f}",
                    ]
                )
                if r.task.p2p:
                    lines.append(
                        f"RESULT policy_table policy={label(r)} n={n} latency_segments={latency} "
                        f"p2p_ratio={m.p2p_ratio:.3f} origin_vs_nop2p={m.origin_vs_nop2p or 0:.3f} "
                        f"best={best:.3f} stalls={m.stalls}"
                    )
            print(
                f"\nN={n}, {latency} segments behind live: best 1 - 1/N = {best:.3f} "
                f"(mean audience {on[0].metrics.mean_audience:.1f}), 0.9 x best = {0.9 * best:.3f}"
            )
            headers = [
                "policy",
                "p2p_ratio",
                "/best",
                "origin_vs_nop2p",
                "req/seg",
                "stalls",
                "rebuf_s",
                "startup_s",
            ]
            print(format_table(headers, rows))
    print("\nPeer5 reported 50 % at 5 viewers and 70 % at 20 (best case 1 - 1/N: 80 %, 95 %).")
    if not args.no_recommended:
        rec = [r for r in results if label(r) == RECOMMENDED and dict(r.task.point)["latency_segments"] == 19]
        ok = all(r.metrics.stalls == 0 and r.metrics.ratio_to_best >= 0.9 for r in rec)
        if rec:
            settings = ", ".join(f"{k}={v}" for k, v in RECOMMENDED_LIVE.items())
            verdict = "reaches" if ok else "does NOT reach"
            print(
                f"{RECOMMENDED} ({settings}) at 19 segments {verdict} >= 0.9 x best "
                "with zero stalls for every N"
            )
    print(f"({time.perf_counter() - started:.0f} s)\n")
    for line in lines:
        print(line)


if __name__ == "__main__":
    main()
