"""LL-HLS latency curve: P2P ratio and stalls against the distance behind live, in the simulator.

The live LL-HLS stream of ``benchmarks/llhls_offload.py`` in virtual time (the ``llhls-10`` preset:
0.5 s parts of 2 s segments, 264 kbit/s, PART-HOLD-BACK 1.5 s, viewers joining within 2 s,
loopback-like links: 200 Mbit/s both ways, 0.5-1 ms one way), each viewer running the parts swarm
that ships (:mod:`p2ploader.sim.llhls`), played at several hold-backs (the player's
``low_latency_stream(hold_back=...)``: 1, 1.5, 2, 3, 4 and 6 s by default) for 10 and 50 viewers,
with P2P and with HTTP alone. Each viewer loads from an independent part at least the hold-back
behind live (here a segment start: one key frame per 2 s segment) and plays from the hold-back
itself, as the real player does: the measured latency is printed next to the one asked for.

    python benchmarks/llhls_curve.py [--viewers 10 50] [--hold-backs 1 1.5 2 3 4 6] [--duration 60]
        [--seed 1] [--set KEY=VALUE ...]

``--set`` changes a scenario field for every run (``parts_max_peers=6``, ``parts_join=at-once``,
``loader.policySettings.p2ploader-live.neighbourhood_share=0.5``; values are JSON when they parse).
Ends with one line per case::

    RESULT llhls_curve viewers=N part_s=P hold_back_s=H p2p_ratio=R stalls=S latency_p50_s=X
        latency_p95_s=Y http_latency_p95_s=Z origin_saving=O

(on one line): ``p2p_ratio`` as the real benchmark counts it (bytes the players got from peers /
all they got), ``origin_saving`` the origin's bytes saved against HTTP alone (seeders' fetches for
others included), the latencies over every viewer's samples every 0.1 s while playing.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from typing import Any

from p2ploader.sim import PRESETS, run_scenario


def _value(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def seconds(value: float | None) -> float:
    return math.nan if value is None else value


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--viewers", type=int, nargs="+", default=[10, 50])
    parser.add_argument("--hold-backs", type=float, nargs="+", default=[1.0, 1.5, 2.0, 3.0, 4.0, 6.0])
    parser.add_argument("--duration", type=float, default=60.0, help="simulated seconds")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    args = parser.parse_args()
    changes = {key: _value(value) for key, _, value in (item.partition("=") for item in args.set)}
    base = PRESETS["llhls-10"].evolve(duration_s=args.duration, seed=args.seed, **changes)
    print(
        f"# simulator, {base.part_seconds:g} s parts of {base.segment_duration_s:g} s segments, "
        f"{base.renditions_kbps[0]:g} kbit/s, {args.duration:g} s, seed {args.seed}, changes {changes}",
        flush=True,
    )
    lines = []
    rows = []
    for viewers in args.viewers:
        for hold_back in args.hold_backs:
            scenario = base.evolve(viewers=viewers, hold_back_s=hold_back, name=f"llhls-curve-{viewers}")
            started = time.process_time()
            http = run_scenario(scenario, p2p=False)
            p2p = run_scenario(scenario)
            # No latency sample (a run too short to play): NaN, printed as "nan", not a crash.
            p50, p95 = seconds(p2p.latency_percentile(0.5)), seconds(p2p.latency_percentile(0.95))
            http_p95 = seconds(http.latency_percentile(0.95))
            saving = 1.0 - p2p.origin_bytes / http.origin_bytes if http.origin_bytes else 0.0
            rows.append((viewers, hold_back, p2p.p2p_ratio, p2p.stalls, p50, p95, http_p95, saving))
            lines.append(
                f"RESULT llhls_curve viewers={viewers} part_s={base.part_seconds:g} "
                f"hold_back_s={hold_back:g} p2p_ratio={p2p.p2p_ratio:.3f} stalls={p2p.stalls} "
                f"latency_p50_s={p50:.2f} latency_p95_s={p95:.2f} http_latency_p95_s={http_p95:.2f} "
                f"origin_saving={saving:.3f}"
            )
            cpu = time.process_time() - started
            print(f"  {viewers} viewers, {hold_back:g} s: {cpu:.1f} s CPU", flush=True)
    print(
        "\n| viewers | hold-back (s) | P2P ratio | stalls | latency p50 / p95 (s) | HTTP-only p95 (s) "
        "| origin saving |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|")
    for viewers, hold_back, ratio, stalls, p50, p95, http_p95, saving in rows:
        print(
            f"| {viewers} | {hold_back:g} | {ratio:.3f} | {stalls} | {p50:.2f} / {p95:.2f} | {http_p95:.2f} "
            f"| {saving:.3f} |"
        )
    print()
    for line in lines:
        print(line, flush=True)


if __name__ == "__main__":
    main()
