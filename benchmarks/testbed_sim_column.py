"""The simulator's column of the testbed's tables, recomputed without the testbed.

``benchmarks/testbed_offload.py`` runs a real swarm on kernel-shaped links and the simulator on the
same scenario; its real figures are recorded in docs/performance.md. This script holds those
recorded real figures and each case's scenario (viewers, duration, segment length, links drawn
as the testbed drew them from the seed, the ``tbf`` queue, the upload control on or off as it
was in the real run) and runs only the simulator, so that a change to the simulator's link model
can be checked against every recorded real case in a minute, as root or not:

    python benchmarks/testbed_sim_column.py [--no-uplink-queue] [--seeds N] [--case LABEL ...]

One line per case: ``RESULT testbed_sim_column case=LABEL policy=NAME real=R sim=R diff=D
real_stalls=N sim_stalls=N`` (``sim``: the case's own seed, as the benchmark's column; with
``--seeds N``, also ``sim_mean`` and ``sim_range`` over N seeds on the same links: a real run is
one draw of the timing a seed decides), and the mean and largest distance at the end. ``--no-uplink-queue``
runs the link model without the shared uplink queue (``uplink_queue_s = 0``), the model the
simulator column was first computed with.
"""

from __future__ import annotations

import argparse
import statistics
from typing import Any

import attrs

from p2ploader.config import LoaderConfig
from p2ploader.sim.metrics import measure
from p2ploader.sim.run import run_scenario
from p2ploader.sim.scenario import Scenario
from p2ploader.testbed.links import RateRange
from p2ploader.testbed.swarm import draw_links

STREAM_KBPS = {5: 647.835, 2: 650.229}
"""kbit/s of ``benchmarks/swarm_offload.py``'s stream per segment length (its files' mean bitrate,
as ``testbed_offload.stream_kbps`` measures it)."""
DOWNLINK = RateRange(20e6, 50e6)
CONTROL_ON = LoaderConfig().upload_delay_target


@attrs.frozen(kw_only=True)
class Case:
    label: str
    policy: str
    real: float
    """The real P2P ratio recorded in docs/performance.md."""
    real_stalls: int
    viewers: int
    duration: float
    segment_s: int
    links: str  # "wide" or "scarce"
    seed: int = 1
    queue_s: float = 0.1
    """The ``tbf`` queue of every shaped link, seconds at its rate (``--link-queue``)."""
    delay_target: float = CONTROL_ON
    """``upload_delay_target`` of the real run (0: it predates the upload control)."""

    def uplink(self) -> RateRange:
        if self.links == "wide":
            return RateRange(1e6, 20e6)
        kbps = STREAM_KBPS[self.segment_s]
        return RateRange(1.2 * kbps * 1000, 1.8 * kbps * 1000)


def _case(label: str, policy: str, real: float, size: tuple[int, float, int, str], **more: Any) -> Case:
    viewers, duration, segment_s, links = size
    return Case(
        label=label,
        policy=policy,
        real=real,
        real_stalls=more.pop("real_stalls", 0),
        viewers=viewers,
        duration=duration,
        segment_s=segment_s,
        links=links,
        **more,
    )


def _pair(
    label: str, real_live: float, real_06: float, size: tuple[int, float, int, str], **more: Any
) -> list[Case]:
    return [
        _case(label, "p2ploader-live", real_live, size, **more),
        _case(label, "p2pml-0.6", real_06, size, **more),
    ]


_OFF = {"delay_target": 0.0}  # the 8-viewer runs and the queue runs predate the upload control
CASES: tuple[Case, ...] = (
    *_pair("20v-120s-5s-wide", 0.886, 0.792, (20, 120.0, 5, "wide")),
    *_pair("10v-120s-5s-wide", 0.857, 0.749, (10, 120.0, 5, "wide")),
    *_pair("8v-60s-5s-wide", 0.797, 0.693, (8, 60.0, 5, "wide"), **_OFF),
    *_pair("8v-60s-2s-wide", 0.789, 0.669, (8, 60.0, 2, "wide"), **_OFF),
    *_pair("8v-60s-5s-scarce", 0.110, 0.086, (8, 60.0, 5, "scarce"), **_OFF),
    *_pair("8v-60s-2s-scarce", 0.092, 0.039, (8, 60.0, 2, "scarce"), **_OFF),
    _case("10v-seed1-queue1s", "p2ploader-live", 0.856, (10, 120.0, 5, "wide"), queue_s=1.0, **_OFF),
    _case("10v-seed6-queue0.1s", "p2ploader-live", 0.808, (10, 120.0, 5, "wide"), seed=6, **_OFF),
    _case(
        "10v-seed6-queue1s",
        "p2ploader-live",
        0.825,
        (10, 120.0, 5, "wide"),
        seed=6,
        queue_s=1.0,
        real_stalls=2,
        **_OFF,
    ),
)


def scenario(case: Case, *, uplink_queue: bool = True, seed: int | None = None) -> Scenario:
    """``testbed_offload.simulate``'s scenario for ``case``: the testbed's own link draws, drawn join
    times within the same window, zero latency."""
    uplink = case.uplink()
    links = draw_links(case.viewers, uplink=uplink, downlink=DOWNLINK, seed=case.seed)
    return Scenario(
        name="testbed",
        seed=case.seed if seed is None else seed,
        duration_s=case.duration,
        segment_duration_s=float(case.segment_s),
        window_segments=20,
        renditions_kbps=(STREAM_KBPS[case.segment_s],),
        viewers=case.viewers,
        join_window_s=1.0 * case.viewers,
        uplink_mbps=uplink.mbps,
        downlink_mbps=DOWNLINK.mbps,
        viewer_links_mbps=[(up / 1e6, down / 1e6) for up, down in links],
        latency_ms=0.0,
        jitter_ms=0.0,
        origin_latency_ms=0.0,
        latency_segments=3,
        forward_buffer_s=30.0,
        policy=case.policy,
        max_peers=LoaderConfig().max_peers,
        uplink_queue_s=case.queue_s if uplink_queue else 0.0,
        loader={"uploadDelayTarget": case.delay_target * 1000},
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--no-uplink-queue", action="store_true", help="the link model without the shared queue"
    )
    parser.add_argument("--case", nargs="*", default=[], help="labels to run (default: all)")
    parser.add_argument(
        "--seeds",
        type=int,
        default=1,
        help="runs per case: its own seed, then others (100, 101, ...) on the same links",
    )
    args = parser.parse_args()
    distances, mean_distances = [], []
    for case in CASES:
        if args.case and case.label not in args.case:
            continue
        queue = not args.no_uplink_queue
        seeds = [case.seed, *range(100, 100 + args.seeds - 1)]
        runs = [
            measure(run_scenario(scenario(case, uplink_queue=queue, seed=seed), p2p=True)) for seed in seeds
        ]
        ratios = [run.p2p_ratio for run in runs]
        distances.append(abs(ratios[0] - case.real))
        mean_distances.append(abs(statistics.mean(ratios) - case.real))
        spread = ""
        if len(ratios) > 1:
            spread = f" sim_mean={statistics.mean(ratios):.3f} sim_range={min(ratios):.3f}-{max(ratios):.3f}"
        print(
            f"RESULT testbed_sim_column case={case.label} policy={case.policy} real={case.real:.3f} "
            f"sim={ratios[0]:.3f} diff={ratios[0] - case.real:+.3f}{spread} real_stalls={case.real_stalls} "
            f"sim_stalls={runs[0].stalls}",
            flush=True,
        )
    for name, values in (("sim", distances), ("sim_mean", mean_distances)):
        if values and (name == "sim" or args.seeds > 1):
            print(
                f"{name}: mean distance {statistics.mean(values):.3f}, largest {max(values):.3f}, "
                f"over 0.05 in {sum(d > 0.05 for d in values)} of {len(values)} cases"
            )


if __name__ == "__main__":
    main()
