"""Simulator fingerprints: prove that a change to the simulator (or to the core it runs) leaves every
simulated figure as it was.

For each scenario it runs the simulator with ``trace=True`` (a SHA-256 of every event fed to every
viewer's scheduler, with its virtual time) and prints one RESULT line with that digest, a digest of
every viewer's figures, the events run and the run's summary. Run it before and after a change, with
``PYTHONHASHSEED=0``, and compare the RESULT lines: they must be byte-identical. Timings go to
stderr, not into the lines (tracing makes a run several times slower; time runs with
``benchmarks/sim_speed.py``).

    PYTHONHASHSEED=0 python benchmarks/sim_digests.py [SCENARIO ...]   # about 6 minutes for all
"""

from __future__ import annotations

import argparse
import hashlib
import sys
import time
from collections.abc import Iterator

import attrs

from p2ploader.sim import Scenario, run_scenario
from p2ploader.sim.scenario import PRESETS

_PRESETS = (
    "small-live",
    "live-10",
    "vod-20",
    "flash-crowd",
    "abr-3-renditions",
    "host-client-300",
    "live-200-churn",
)


def scenarios() -> Iterator[tuple[str, Scenario, bool]]:
    """``(label, scenario, p2p)``: the presets, one with P2P off, and sim_speed at 150 viewers."""
    for name in _PRESETS:
        yield name, PRESETS[name], True
    yield "live-10-p2poff", PRESETS["live-10"], False
    yield (
        "sim_speed-150x2",
        Scenario(
            name="sim-speed",
            viewers=150,
            duration_s=120.0,
            join_window_s=60.0,
            uplink_mbps=(1.0, 20.0),
            max_peers=20,
        ),
        True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("only", nargs="*", metavar="SCENARIO", help="labels to run (default: all)")
    args = parser.parse_args()
    for label, scenario, p2p in scenarios():
        if args.only and label not in args.only:
            continue
        cpu = time.process_time()
        result = run_scenario(scenario, p2p=p2p, trace=True)
        viewers = repr([attrs.asdict(v) for v in result.viewers]).encode()
        print(
            f"RESULT sim_digests scenario={label} trace={result.trace_digest} "
            f"viewers_sha={hashlib.sha256(viewers).hexdigest()[:16]} events={result.callbacks_run} "
            f"origin_bytes={result.origin_bytes} origin_requests={result.origin_requests} "
            f"segment_uploaders={result.segment_uploaders} summary={result.summary()}",
            flush=True,
        )
        print(f"  {label}: CPU {time.process_time() - cpu:.1f} s (traced)", file=sys.stderr, flush=True)


if __name__ == "__main__":
    main()
