"""What benchmarks/policy_table.py and benchmarks/latency_curve.py share: the live scenario, their
common options, and the ``p2pml-0.6+rec`` runs (0.6 with the settings docs/simulator.md
recommends 19 segments behind live). Imported by those scripts (they run from this folder)."""

from __future__ import annotations

import argparse
import json
from typing import Any

import attrs

from p2ploader.app.simulate import SimTask, TaskResult, plan
from p2ploader.config import LoaderConfig
from p2ploader.sim import Scenario

RECOMMENDED_LIVE = {"httpDownloadProbability": 0.02}
"""0.6's defaults except the random-HTTP probability (0.1 by default): see docs/simulator.md."""
RECOMMENDED = "p2pml-0.6+rec"


def add_common_arguments(parser: argparse.ArgumentParser, *, recommended_help: str) -> None:
    parser.add_argument("--duration", type=float, default=600.0, help="simulated seconds")
    parser.add_argument("--join-window", type=float, default=60.0, help="seconds over which viewers join")
    parser.add_argument("--no-recommended", action="store_true", help=recommended_help)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--kbps", type=float, default=1500.0, help="the stream's bitrate (default 1500)")
    parser.add_argument("--jobs", type=int, default=None, help="processes (default: the CPU count)")
    parser.add_argument(
        "--live-setting",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a p2ploader-live setting for every run (repeatable; VALUE in JSON, e.g. cut_through=false)",
    )


def live_settings(args: argparse.Namespace) -> dict[str, Any]:
    """The ``--live-setting NAME=VALUE`` options as ``policy_settings["p2ploader-live"]``."""
    settings: dict[str, Any] = {}
    for item in args.live_setting:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise SystemExit(f"--live-setting wants NAME=VALUE, got {item!r}")
        try:
            settings[name] = json.loads(value)
        except json.JSONDecodeError:
            raise SystemExit(f"--live-setting {name}: {value!r} is not a JSON value") from None
    return settings


def live_scenario(name: str, args: argparse.Namespace, **fields: Any) -> Scenario:
    """Live, 5 s segments (20 in the playlist) at 1.5 Mbit/s (``--kbps``), uplinks 1-20 Mbit/s,
    downlinks 20-50 Mbit/s, the loader's peers per viewer, HTTP Range continuation on, the ``--live-setting``
    options as ``p2ploader-live``'s settings; ``fields`` add to or override it.

    ``httpDownloadRanges`` is on for every policy: the origin answers Range requests, as CDNs do,
    so a P2P download cut over to HTTP keeps its bytes. P2P Media Loader 2.x always does this, and
    the FAQ's example config turns it on for 0.6."""
    loader: dict[str, Any] = {"httpDownloadRanges": True}
    if settings := live_settings(args):
        loader["policySettings"] = {"p2ploader-live": settings}
    return Scenario(
        name=name,
        seed=args.seed,
        duration_s=args.duration,
        live=True,
        segment_duration_s=5.0,
        window_segments=20,
        renditions_kbps=(args.kbps,),
        join_window_s=args.join_window,
        uplink_mbps=(1.0, 20.0),
        downlink_mbps=(20.0, 50.0),
        max_peers=LoaderConfig().max_peers,
        loader=loader,
        **fields,
    )


def plan_with_recommended(
    base: Scenario, *, sweeps: list[tuple[str, list[Any]]], policies: list[str], recommended: bool
) -> list[SimTask]:
    """Every policy and P2P off on ``base`` over ``sweeps``; with ``recommended``, the
    ``p2pml-0.6+rec`` runs too (their scenario name ends in ``recommended``)."""
    tasks = plan(base, sweeps=sweeps, policies=policies, compare_p2p_off=True)
    if recommended:
        tuned = attrs.evolve(
            base, name=f"{base.name}-recommended", loader={**base.loader, **RECOMMENDED_LIVE}
        )
        extra = plan(tuned, sweeps=sweeps, policies=["p2pml-0.6"], compare_p2p_off=False)
        tasks += [attrs.evolve(t, index=len(tasks) + i) for i, t in enumerate(extra)]
    return tasks


def label(result: TaskResult, *, off: str = "P2P off") -> str:
    """The row or curve a result belongs to: its policy, ``p2pml-0.6+rec``, or ``off``."""
    if not result.task.p2p:
        return off
    return RECOMMENDED if result.task.scenario.name.endswith("recommended") else result.metrics.policy
