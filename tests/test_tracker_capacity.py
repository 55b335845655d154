"""``benchmarks/tracker_capacity.py --quick``: runs within its bounds, prints parseable RESULT lines,
and the embedded tracker's figures stay within their budgets (memory per idle connection, memory
under a flood of non-reading sockets, swarms one address can create in a second)."""

from __future__ import annotations

import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
KIB_PER_CONNECTION_BUDGET = 32.0  # measured 13-14 KiB (20.5 before idle connections were slimmed)
FLOOD_GROWTH_BUDGET_MIB = 40.0  # outboxes are bounded (256 KiB each); --quick grew it by 96 MiB before


def parse_results(output: str) -> list[dict[str, str]]:
    results = []
    for line in output.splitlines():
        if line.startswith("RESULT "):
            _, kind, *pairs = line.split()
            fields = dict(pair.split("=", 1) for pair in pairs)
            fields["kind"] = kind
            results.append(fields)
    return results


@pytest.mark.e2e
def test_quick_capacity_run_prints_results_within_budgets() -> None:
    env = dict(
        os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    )
    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "tracker_capacity.py"), "--quick"],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        cwd=ROOT,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    results = parse_results(done.stdout)
    capacity = {r["tracker"]: r for r in results if r["kind"] == "tracker_capacity"}
    embedded = capacity["embedded"]
    assert int(embedded["connections"]) == 200
    assert float(embedded["announces_per_s"]) > 100
    assert 0 < float(embedded["kib_per_connection"]) < KIB_PER_CONNECTION_BUDGET
    if shutil.which("node") and shutil.which("npm"):
        node = capacity["bittorrent-tracker"]
        assert int(node["connections"]) == 200
        assert float(node["announces_per_s"]) > 0 and float(node["rss_held_mib"]) > 0
        # The reference tracker's figure is shown, not budgeted: 200 idle connections cost node less
        # than its garbage collector frees between two samples, so the difference can be negative
        # (-0.9 KiB per connection in one run of the suite on two workers).
        assert math.isfinite(float(node["kib_per_connection"]))
    (slow,) = (r for r in results if r.get("case") == "slow_readers")
    assert float(slow["sent_mib"]) >= 100
    assert float(slow["rss_peak_mib"]) - float(slow["rss_before_mib"]) < FLOOD_GROWTH_BUDGET_MIB
    (table,) = (r for r in results if r.get("case") == "swarm_table")
    assert int(table["sockets"]) == 100
    assert 0 < int(table["swarms_created"]) <= 110  # one address: 100 per interval (+ refill in 1 s)
    assert int(table["refused"]) > 0
