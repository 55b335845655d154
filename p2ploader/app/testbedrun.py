"""``p2ploader swarm`` on the testbed: its options, a scenario file's part in them, and RESULT lines.

With ``--uplink``, ``--downlink``, ``--origin-bandwidth`` or ``--scenario``, ``p2ploader swarm``
runs every viewer in a network namespace of its own with kernel-shaped links
(:mod:`p2ploader.testbed`), the origin serving a folder (the command's positional argument) in its
namespace and the embedded tracker in another. A scenario file (the simulator's format,
:class:`p2ploader.sim.scenario.Scenario`) gives the viewers, the duration, the join window (viewers
join ``join_window_s / viewers`` seconds apart), the link ranges, the origin's bandwidth, the
latency in segments, the seed, the policy and the loader settings (its ``loader`` table and
``max_peers``), so that ``p2ploader simulate FILE`` and
``p2ploader swarm FOLDER --scenario FILE`` run the same scenario, simulated and real. Both end with
a ``RESULT`` line (:func:`swarm_result_line`, :func:`p2ploader.app.simulate.result_lines`).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs

from p2ploader.errors import ConfigError
from p2ploader.testbed.links import RateRange, parse_rate, parse_rate_range

if TYPE_CHECKING:
    from p2ploader.app.swarmrun import SwarmResult
    from p2ploader.config import LoaderConfig
    from p2ploader.sim.scenario import Scenario
    from p2ploader.testbed.swarm import SwarmNetwork

__all__ = [
    "TestbedPlan",
    "add_testbed_options",
    "plan_from_args",
    "run_swarm_on_testbed",
    "swarm_result_line",
    "wants_testbed",
]

_UNSHAPED_ORIGIN_MBPS = 1000.0
"""The simulator's default origin bandwidth (``Scenario.origin_mbps``): on the testbed, unshaped."""
DEFAULT_LINK_QUEUE_S = 0.1
"""Seconds of queue on every shaped link (at its rate) when neither --link-queue nor a scenario sets one."""


@attrs.frozen(kw_only=True)
class TestbedPlan:
    """What a testbed swarm runs: the links (bits per second, ``None`` unshaped), and the
    scenario's name, policy and loader settings (its ``loader`` table and ``max_peers``, as the
    simulator applies them) when a scenario file gave them."""

    __test__ = False  # not a pytest test class

    root: Path
    uplink: RateRange | None
    downlink: RateRange | None
    origin_bps: float | None
    queue_seconds: float
    scenario: str = "custom"
    policy: str | None = None
    loader: LoaderConfig | None = None
    links: tuple[tuple[float, float], ...] = ()
    """The scenario's given ``(uplink, downlink)`` per viewer in bits per second (its
    ``viewer_links_mbps``), used instead of draws; empty when ``--uplink``/``--downlink`` are given."""


def add_testbed_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group(
        "testbed (needs root; the positional argument is then a folder the testbed's origin serves live)"
    )
    group.add_argument(
        "--uplink",
        type=_rate_range,
        default=None,
        metavar="RANGE",
        help="run on the testbed, each viewer's uplink drawn uniformly from RANGE "
        "(e.g. 1-20mbit, 500kbit-2mbit, 5mbit; a bare number is Mbit/s)",
    )
    group.add_argument(
        "--downlink", type=_rate_range, default=None, metavar="RANGE", help="as --uplink, for downlinks"
    )
    group.add_argument(
        "--origin-bandwidth",
        type=_rate,
        default=None,
        metavar="RATE",
        help="run on the testbed, the origin's uplink shaped to RATE (e.g. 100mbit)",
    )
    group.add_argument(
        "--link-queue",
        type=float,
        default=None,
        metavar="SECONDS",
        help="each shaped link's queue, in seconds at its rate (default: a --scenario's uplink_queue_s "
        f"when it sets one, else {DEFAULT_LINK_QUEUE_S})",
    )
    group.add_argument(
        "--scenario",
        default=None,
        metavar="FILE",
        help="run on the testbed the simulator's scenario FILE (TOML or JSON) or preset: its viewers, "
        "duration, join window, links, origin bandwidth, latency, seed and policy replace -n, "
        "--duration, --stagger, --latency, --seed and the loader's policy; --uplink/--downlink/"
        "--origin-bandwidth still override its links",
    )


def _rate_range(text: str) -> RateRange:
    try:
        return parse_rate_range(text)
    except ConfigError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _rate(text: str) -> float:
    try:
        return parse_rate(text)
    except ConfigError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def wants_testbed(args: argparse.Namespace) -> bool:
    return any(
        getattr(args, name, None) is not None
        for name in ("uplink", "downlink", "origin_bandwidth", "scenario")
    )


def plan_from_args(args: argparse.Namespace) -> TestbedPlan:
    """The testbed plan of ``swarm``'s ``args``; a scenario's fields are written into ``args``
    (viewers, duration, stagger, latency, seed). Raises :class:`ConfigError` when the positional
    argument is not a folder."""
    root = Path(args.url)
    if not root.is_dir():
        raise ConfigError(
            f"on the testbed the origin runs inside it: give the folder of HLS playlists and segments "
            f"it serves as live, not {args.url!r}"
        )
    if getattr(args, "tracker", None):
        raise ConfigError(
            "on the testbed the tracker runs inside it (no route leads out of its namespaces): "
            "leave out --tracker",
            key="tracker",
        )
    uplink, downlink, origin_bps = args.uplink, args.downlink, args.origin_bandwidth
    name, policy, loader = "custom", None, None
    links: tuple[tuple[float, float], ...] = ()
    scenario_queue = 0.0
    if args.scenario is not None:
        from p2ploader.sim.scenario import load_scenario  # the simulator only when a scenario is given

        scenario = load_scenario(args.scenario)
        apply_scenario(args, scenario)
        uplink = uplink or RateRange.from_mbps(scenario.uplink_mbps)
        downlink = downlink or RateRange.from_mbps(scenario.downlink_mbps)
        if origin_bps is None and scenario.origin_mbps < _UNSHAPED_ORIGIN_MBPS:
            origin_bps = scenario.origin_mbps * 1e6
        name, policy = scenario.name, scenario.policy
        loader = scenario.loader_config()
        scenario_queue = scenario.uplink_queue_s
        if args.uplink is None and args.downlink is None:  # the command line's links win
            links = tuple((up * 1e6, down * 1e6) for up, down in scenario.viewer_links_mbps)
    queue_seconds = args.link_queue
    if queue_seconds is None:  # the command line wins, then the scenario's modelled queue
        queue_seconds = scenario_queue if scenario_queue > 0 else DEFAULT_LINK_QUEUE_S
    if queue_seconds <= 0:
        raise ConfigError("--link-queue must be positive", key="link_queue")
    return TestbedPlan(
        root=root,
        uplink=uplink,
        downlink=downlink,
        origin_bps=origin_bps,
        queue_seconds=queue_seconds,
        scenario=name,
        policy=policy,
        loader=loader,
        links=links,
    )


def apply_scenario(args: argparse.Namespace, scenario: Scenario) -> None:
    """Write the scenario's audience and player fields into ``swarm``'s ``args``."""
    args.viewers = scenario.viewers
    args.duration = scenario.duration_s
    args.stagger = scenario.join_window_s / scenario.viewers
    args.latency = scenario.latency_segments
    args.seed = scenario.seed


def swarm_result_line(
    *, scenario: str, policy: str, viewers: int, p2p_ratio: float, stalls: int, startup_s: float | None
) -> str:
    """``RESULT swarm ...``: the P2P ratio, its ratio to the best case 1 - 1/N, stalls, median
    startup (seconds, ``-`` when no viewer started)."""
    best = 1 - 1 / viewers if viewers > 1 else 0.0
    to_best = p2p_ratio / best if best else 0.0
    startup = "-" if startup_s is None else f"{startup_s:.2f}"
    return (
        f"RESULT swarm scenario={scenario} policy={policy} viewers={viewers} p2p_ratio={p2p_ratio:.3f} "
        f"ratio_to_best={to_best:.3f} stalls={stalls} startup_s={startup}"
    )


async def run_swarm_on_testbed(
    *,
    root: Path,
    viewers: int,
    duration: float,
    stagger: float,
    latency_segments: int,
    config: Mapping[str, Any],
    uplink: RateRange | None,
    downlink: RateRange | None,
    origin_bps: float | None = None,
    queue_seconds: float = 0.1,
    seed: int = 0,
    forward_buffer: float = 30.0,
    on_network: Callable[[SwarmNetwork], None] | None = None,
    on_done: Callable[[SwarmNetwork], None] | None = None,
) -> SwarmResult:
    """Run ``viewers`` viewers (each joining ``stagger`` seconds after the previous, staying to
    ``duration`` seconds) of ``root`` served live on a fresh testbed, and return their figures.
    ``config`` is the loader's configuration in the FAQ spelling; its trackers and ICE servers are
    replaced by the testbed's tracker and none. Every namespace is gone when this returns or raises.
    ``on_network`` sees the network once it is up (e.g. to list the namespaces), ``on_done`` once
    the viewers are done and before it goes (e.g. to read the origin's byte counter)."""
    from p2ploader.app.swarmrun import SwarmRunner, churn_schedule
    from p2ploader.app.viewer import ViewerSpec
    from p2ploader.config import LoaderConfig
    from p2ploader.testbed.netns import Testbed
    from p2ploader.testbed.swarm import build_swarm_network

    with Testbed(queue_seconds=queue_seconds) as testbed:
        network = build_swarm_network(
            testbed,
            root=root,
            viewers=viewers,
            uplink=uplink,
            downlink=downlink,
            origin_bps=origin_bps,
            seed=seed,
        )
        if on_network is not None:
            on_network(network)
        loader = LoaderConfig.from_faq(config).evolve(
            tracker_announce=(network.tracker_url,), rtc_config={"iceServers": []}
        )
        template = ViewerSpec(
            url=network.origin_url + "live/master.m3u8",
            config=loader.to_faq(),
            live_start_distance=latency_segments,
            forward_buffer=forward_buffer,
            loopback_only=False,
        )
        sessions = churn_schedule(viewers, duration=duration, stagger=stagger, seed=seed)
        runner = SwarmRunner(template, sessions, seed=seed, viewer_prefix=network.viewer_prefix)
        result = await runner.run()
        if on_done is not None:
            on_done(network)
        return result
