"""Fidelity: one small live swarm, simulated and for real on loopback, gives the same P2P ratio.

The swarm, the scenario and the comparison are ``benchmarks/fidelity.py`` (see its docstring):
5 viewers joining on the simulated schedule, the bundled sample's rendition v1 served live by the
local origin, the embedded tracker and viewer processes. The benchmark runs 2 minutes of live
stream; the test runs 1 (``TEST_DURATION``), where the ratios agree as closely (docs/simulator.md).

Run it with ``pytest tests/sim/test_fidelity.py -s`` to see the figures.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

pytestmark = [pytest.mark.anyio, pytest.mark.e2e]


def _benchmark() -> ModuleType:
    path = Path(__file__).resolve().parents[2] / "benchmarks" / "fidelity.py"
    spec = importlib.util.spec_from_file_location("fidelity_benchmark", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # attrs classes need their module registered
    spec.loader.exec_module(module)
    return module


async def test_simulated_and_real_p2p_ratios_agree(record_property: Any) -> None:
    bench = _benchmark()
    run = await bench.fidelity(duration=bench.TEST_DURATION)
    print(f"\n{run.report()}")
    record_property("sim_p2p_ratio", round(run.simulated.p2p_ratio, 4))
    record_property("real_p2p_ratio", round(run.real_ratio, 4))
    assert all(r["mismatches"] == 0 and r["segments_played"] > 0 for r in run.real)
    assert run.simulated.p2p_ratio > 0.2  # a swarm that shares, so the comparison means something
    assert abs(run.simulated.p2p_ratio - run.real_ratio) <= bench.TOLERANCE
