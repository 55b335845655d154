"""The virtual-time simulator: the very scheduler and driver that ship, with modelled links.

Importable without aiortc, httpx or websockets. Start with :func:`run_scenario` and a
:class:`Scenario` (or a preset from :data:`PRESETS`).
"""

from __future__ import annotations

from p2ploader.sim.run import SimResult, run_scenario
from p2ploader.sim.scenario import PRESETS, Scenario, load_scenario

__all__ = ["PRESETS", "Scenario", "SimResult", "load_scenario", "run_scenario"]
