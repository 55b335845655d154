"""The ``p2ploader-live`` stress cases of ``tests/sim/test_live_policy_stress.py`` over many seeds.

The test runs each kind of pressure (churn, slow peers, slow peers far behind live, a slow origin,
a flash crowd) on the seeds that matter to it (the ones that once found a bug, or one seed); this
runs every case on every seed given, with the test's own scenarios and assertions (zero stalls,
zero rebuffering, the P2P floors), and prints one line per run::

    RESULT live_stress case=churn seed=1 ok=1 stalls=0 rebuffer_s=0.00 p2p_ratio=0.887 seconds=9.1

    python benchmarks/live_stress.py [--seeds 1 2 3] [--case churn ...]

Exits 1 when a run fails an assertion. The test module is loaded from its file, so the test and
this benchmark cannot drift apart.
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

from p2ploader.sim import run as sim_run
from p2ploader.sim.run import SimResult

TESTS = Path(__file__).resolve().parents[1] / "tests" / "sim" / "test_live_policy_stress.py"


def stress_tests() -> ModuleType:
    spec = importlib.util.spec_from_file_location("live_policy_stress_tests", TESTS)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def cases(tests: ModuleType) -> dict[str, Callable[[int], None]]:
    """Case name -> the test function, which takes a seed."""
    return {
        "churn": tests.test_churn_does_not_stall,
        "slow_peers": tests.test_slow_peers_do_not_stall,
        "slow_peers_19": tests.test_slow_peers_far_behind_live_do_not_stall,
        "slow_origin": tests.test_slow_origin_does_not_stall,
        "flash_crowd": tests.test_flash_crowd_does_not_stall,
    }


def main(argv: list[str] | None = None) -> int:
    tests = stress_tests()
    known = cases(tests)
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--case", choices=sorted(known), nargs="+", default=list(known))
    args = parser.parse_args(argv)
    # The livelock guard the tests install with a fixture.
    sim_run.VirtualLoop = tests.GuardedLoop  # type: ignore[misc]
    results: list[SimResult] = []
    run = tests.run

    def recording_run(scenario: Any, seed: int) -> SimResult:
        result: SimResult = run(scenario, seed)
        results.append(result)
        return result

    tests.run = recording_run
    failed = False
    for name in args.case:
        for seed in args.seeds:
            results.clear()
            started = time.monotonic()
            try:
                known[name](seed)
                ok = True
            except AssertionError as exc:
                ok, failed = False, True
                print(f"{name} seed={seed}: {exc}", file=sys.stderr)
            result = results[-1]
            print(
                f"RESULT live_stress case={name} seed={seed} ok={int(ok)} stalls={result.stalls} "
                f"rebuffer_s={result.rebuffer_time:.2f} p2p_ratio={result.p2p_ratio:.3f} "
                f"seconds={time.monotonic() - started:.1f}",
                flush=True,
            )
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
