"""Live offload on real, shaped links: Python viewers on the testbed, against the simulator.

Every viewer runs ``p2ploader.app.viewer`` in a network namespace of its own (p2ploader.testbed),
with its uplink and downlink shaped by ``tbf`` in the kernel; the origin (serving the benchmark
stream live) and the embedded tracker run in namespaces of their own. No delay is added (this
kernel has no ``netem``), so the simulator runs the same scenario at zero latency.

Cases: for each segment length (``--segment-seconds``, default 5 and 2) and each link case
(``wide``: uplinks 1-20 Mbit/s; ``scarce``: uplinks 1.2-1.8 x the stream's bitrate; downlinks
20-50 Mbit/s in both), the viewers play ``--latency`` segments behind live (default 3) with
P2P off, then with each policy (``p2ploader-live``, ``p2pml-0.6``). One line per case and policy:

    RESULT testbed_offload policy=NAME viewers=N segment_s=S latency_segments=L links=NAME
        p2p_ratio=R ratio_to_best=R origin_vs_nop2p=R stalls=N startup_ratio=R sim_p2p_ratio=R

* ratio_to_best: p2p_ratio / (1 - 1/N);
* origin_vs_nop2p: bytes the origin sent on its link (the kernel's transmit counter of its
  interface: segments, playlists, headers, retransmissions), against the same swarm with P2P off
  (``off`` itself: 1.000); the viewers' own count of HTTP bytes is printed beside it;
* startup_ratio: median startup time against P2P off;
* sim_p2p_ratio: the simulator's P2P ratio on the same scenario: each viewer with the very links
  the testbed gave it, joining within the same window (drawn times, not the testbed's exact
  stagger); zero latency; each uplink one shared queue of ``--link-queue`` seconds
  (``uplink_queue_s``) steered by the same ``--upload-delay-target``.

Browser viewers: ``--browsers`` (default 10) P2P Media Loader 2.3.1 viewers in Chromium, each in
a namespace of its own with the links of the Python viewer of the same number, hls.js held at the
same ``--latency`` (see tests/browser/testbed.py), as their own swarm after the Python cases. Their
line says ``policy=p2pml-2.3.1-browser`` and ``sim_p2p_ratio=-``. As the browser swarm may have
fewer viewers than the Python one (and watches and buffers differently), its ``origin_vs_nop2p``
compares the origin's bytes per byte the viewers loaded with the same for the Python viewers with
P2P off. Its ``startup_ratio`` is ``-``: a page's start (opened to playing, the player's modules
loaded first) and a Python viewer's are not the same measure; the median page start is printed
above the line instead. Under ``sudo``, keep the environment (``sudo -E``) or set
``P2PLOADER_BROWSER_DIR``, so the npm packages installed for your user are found.

Needs root (CAP_NET_ADMIN), ``ip`` and ``tc``, and ffmpeg for the stream:

    sudo python benchmarks/testbed_offload.py [--viewers 20] [--browsers 10] [--duration 120]
        [--segment-seconds 5 2] [--links wide scarce] [--latency 3 19] [--policy NAME ...] [--seed 1]
        [--link-queue 0.1] [--upload-delay-target 0.05] [--per-viewer]

``--upload-delay-target 0`` turns the delay-based upload control off (the P2P runs' setting).
"""

from __future__ import annotations

import argparse
import asyncio
import math
import statistics
import sys
from pathlib import Path
from typing import Any

from swarm_offload import make_stream

from p2ploader.app.swarmrun import SwarmResult
from p2ploader.app.testbedrun import run_swarm_on_testbed
from p2ploader.config import LoaderConfig
from p2ploader.sim.metrics import measure
from p2ploader.sim.run import run_scenario
from p2ploader.sim.scenario import Scenario
from p2ploader.testbed.links import RateRange
from p2ploader.testbed.swarm import SwarmNetwork, draw_links

ROOT_DIR = Path(__file__).resolve().parent.parent
if str(ROOT_DIR) not in sys.path:  # run as a script from anywhere: the browser harness lives in tests/
    sys.path.insert(0, str(ROOT_DIR))

from tests.browser.testbed import require_browsers, run_browser_case  # noqa: E402

OFF = "off"
BROWSER = "p2pml-2.3.1-browser"
DOWNLINK = RateRange(20e6, 50e6)


def stream_kbps(root: Path, segment_seconds: int) -> float:
    """The stream's mean bitrate in kbit/s, from its segment files."""
    segments = sorted((root / "v0").glob("*.ts"))
    return sum(p.stat().st_size for p in segments) * 8 / (len(segments) * segment_seconds) / 1000


def link_cases(kbps: float) -> dict[str, RateRange]:
    return {"wide": RateRange(1e6, 20e6), "scarce": RateRange(1.2 * kbps * 1000, 1.8 * kbps * 1000)}


def per_viewer(result: SwarmResult, network: SwarmNetwork, duration: float) -> list[str]:
    """One line per viewer: its uplink, its mean upload rate over the run and the share of the
    uplink that is, its P2P ratio and stalls (to see whether slow uplinks are the ones stalling)."""
    lines = []
    for row, host in zip(result.viewers, network.viewers, strict=True):
        uplink = host.uplink_bps or math.inf
        upload = row.p2p_uploaded_bytes * 8 / duration
        loaded = row.http_bytes + row.p2p_bytes
        ratio = row.p2p_bytes / loaded if loaded else 0.0
        lines.append(
            f"    viewer {row.viewer}: uplink {uplink / 1e6:5.2f} Mbit/s, uploads {upload / 1e6:5.2f} Mbit/s "
            f"({upload / uplink:4.0%}), P2P {ratio:.2f}, stalls {row.stalls}, "
            f"lowest buffer {lowest_buffer(result, row.viewer):.1f} s, upload control "
            f"{row.upload_control_cuts} cuts in {row.upload_control_samples} round-trip samples"
        )
    return lines


def lowest_buffer(result: SwarmResult, viewer: int | None, *, settle: float = 15.0) -> float:
    """Seconds buffered at the viewer's lowest, once it played ``settle`` seconds (how close it came
    to a stall, less noisy than the stall count)."""
    series = result.buffers.get(viewer if viewer is not None else -1, [])
    ticks = [(t, b) for t, b in series if not math.isnan(b)]
    if not ticks:
        return math.nan
    start = ticks[0][0] + settle
    return min((b for t, b in ticks if t >= start), default=math.nan)


def summarise(result: SwarmResult) -> dict[str, Any]:
    total = result.total
    loaded = total.http_bytes + total.p2p_bytes
    startups = [v.startup_time for v in result.viewers if v.startup_time is not None]
    return {
        "p2p_ratio": total.p2p_bytes / loaded if loaded else 0.0,
        "http_bytes": total.http_bytes,
        "stalls": total.stalls,
        "startup": statistics.median(startups) if startups else math.nan,
        "loaded_bytes": loaded,
        "failures": total.failures,
        "mismatches": total.mismatches,
    }


def simulate(
    args: argparse.Namespace, *, policy: str, segment_s: int, kbps: float, uplink: RateRange, latency: int
) -> float:
    # The testbed's own link draws, so the simulator's viewers have the same links. Join times stay
    # drawn within the window: viewers joining on exact seconds start in phase with the segment
    # boundaries, which the testbed's processes (starting with jitter) never are, and that alone
    # took p2pml-0.6 from 0.69 to 0.50 in the simulator (8 viewers, 2 s segments, seeds 1-6).
    links = draw_links(args.viewers, uplink=uplink, downlink=DOWNLINK, seed=args.seed)
    scenario = Scenario(
        name="testbed",
        seed=args.seed,
        duration_s=args.duration,
        segment_duration_s=float(segment_s),
        window_segments=20,
        renditions_kbps=(kbps,),
        viewers=args.viewers,
        join_window_s=args.stagger * args.viewers,
        uplink_mbps=uplink.mbps,
        downlink_mbps=DOWNLINK.mbps,
        viewer_links_mbps=[(up / 1e6, down / 1e6) for up, down in links],
        latency_ms=0.0,
        jitter_ms=0.0,
        origin_latency_ms=0.0,
        latency_segments=latency,
        forward_buffer_s=30.0,
        policy=policy,
        max_peers=LoaderConfig().max_peers,
        uplink_queue_s=args.link_queue,
        loader={"uploadDelayTarget": args.upload_delay_target * 1000},
    )
    return measure(run_scenario(scenario, p2p=True)).p2p_ratio


async def run_case(
    args: argparse.Namespace, *, root: Path, policy: str, uplink: RateRange, latency: int
) -> dict[str, Any]:
    config = LoaderConfig(
        use_p2p=policy != OFF,
        policy=args.policy[0] if policy == OFF else policy,
        upload_delay_target=args.upload_delay_target,
    )
    networks: list[SwarmNetwork] = []
    origin_sent: list[int] = []

    def read_origin_counter(network: SwarmNetwork) -> None:
        origin_sent.append(network.testbed.sent_bytes(network.origin))

    result = await run_swarm_on_testbed(
        root=root,
        viewers=args.viewers,
        duration=args.duration,
        stagger=args.stagger,
        latency_segments=latency,
        config=config.to_faq(),
        uplink=uplink,
        downlink=DOWNLINK,
        queue_seconds=args.link_queue,
        seed=args.seed,
        on_network=networks.append,
        on_done=read_origin_counter,
    )
    if args.per_viewer and policy != OFF:
        print("\n".join(per_viewer(result, networks[0], args.duration)), flush=True)
    return {**summarise(result), "origin_sent": origin_sent[0]}


def ratio(numerator: float, denominator: float) -> float:
    return numerator / denominator if denominator else math.nan


def result_line(
    policy: str,
    viewers: int,
    case: str,
    on: dict[str, Any],
    off: dict[str, Any],
    *,
    sim: str,
    startup: bool = True,
) -> str:
    """The case's RESULT line; ``on`` and ``off`` as :func:`summarise` gives them plus
    ``origin_sent`` (the origin's bytes, or its bytes per viewer when the swarms differ in size).
    ``startup``: False prints ``startup_ratio=-`` (starts not measured alike)."""
    best = 1 - 1 / viewers if viewers > 1 else math.nan  # one viewer has nobody to share with
    startup_ratio = f"{ratio(on['startup'], off['startup']):.2f}" if startup else "-"
    return (
        f"RESULT testbed_offload policy={policy} viewers={viewers} {case} p2p_ratio={on['p2p_ratio']:.3f} "
        f"ratio_to_best={ratio(on['p2p_ratio'], best):.3f} "
        f"origin_vs_nop2p={ratio(on['origin_sent'], off['origin_sent']):.3f} stalls={on['stalls']} "
        f"startup_ratio={startup_ratio} "
        f"sim_p2p_ratio={sim}"
    )


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--viewers", type=int, default=20)
    parser.add_argument("--duration", type=float, default=120.0, help="seconds per run")
    parser.add_argument("--stagger", type=float, default=1.0, help="seconds between two viewers' joins")
    parser.add_argument("--segment-seconds", type=int, nargs="+", default=[5, 2])
    parser.add_argument("--latency", type=int, nargs="+", default=[3, 19], help="segments behind live")
    parser.add_argument(
        "--browsers", type=int, default=10, help="P2P Media Loader 2.3.1 viewers in Chromium (0: none)"
    )
    parser.add_argument("--links", nargs="+", default=["wide", "scarce"], choices=["wide", "scarce"])
    parser.add_argument("--policy", nargs="+", default=["p2ploader-live", "p2pml-0.6"])
    parser.add_argument("--link-queue", type=float, default=0.1, help="tbf queue, seconds at the link's rate")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--upload-delay-target",
        type=float,
        default=LoaderConfig().upload_delay_target,
        help="seconds of queuing delay uploads may add on the uplink (0: no delay-based upload control)",
    )
    parser.add_argument("--per-viewer", action="store_true", help="print each viewer's uplink use and stalls")
    args = parser.parse_args()
    browser_setup = require_browsers() if args.browsers > 0 else None
    lines = []
    for segment_s in args.segment_seconds:
        root = make_stream(segment_s)
        kbps = stream_kbps(root, segment_s)
        for links in args.links:
            uplink = link_cases(kbps)[links]
            for latency in args.latency:
                print(
                    f"\n{segment_s} s segments ({kbps:.0f} kbit/s), links {links}: uplinks {uplink}, "
                    f"downlinks {DOWNLINK}, {args.viewers} viewers, {latency} segments behind live, "
                    f"{args.duration:g} s",
                    flush=True,
                )
                off = await run_case(args, root=root, policy=OFF, uplink=uplink, latency=latency)
                print(f"  P2P off: {off}", flush=True)
                case = f"segment_s={segment_s} latency_segments={latency} links={links}"
                for policy in [OFF, *args.policy]:
                    on = (
                        off
                        if policy == OFF
                        else await run_case(args, root=root, policy=policy, uplink=uplink, latency=latency)
                    )
                    if policy != OFF:
                        print(f"  {policy}: {on}", flush=True)
                    sim = "-"
                    if policy != OFF:
                        sim_ratio = simulate(
                            args,
                            policy=policy,
                            segment_s=segment_s,
                            kbps=kbps,
                            uplink=uplink,
                            latency=latency,
                        )
                        sim = f"{sim_ratio:.3f}"
                    lines.append(result_line(policy, args.viewers, case, on, off, sim=sim))
                    print(lines[-1], flush=True)
                    print(
                        f"  origin's link sent {on['origin_sent']:,} bytes; the viewers' HTTP bytes against "
                        f"P2P off: {ratio(on['http_bytes'], off['http_bytes']):.3f}",
                        flush=True,
                    )
                    if on["failures"] or on["mismatches"]:
                        print(
                            f"  warning: {on['failures']} failed sessions, {on['mismatches']} byte mismatches"
                        )
                if browser_setup is not None:
                    browsers = await run_browser_case(
                        setup=browser_setup,
                        root=root,
                        viewers=args.browsers,
                        duration=args.duration,
                        stagger=args.stagger,
                        latency_segments=latency,
                        uplink=uplink,
                        downlink=DOWNLINK,
                        queue_seconds=args.link_queue,
                        seed=args.seed,
                    )
                    print(f"  {BROWSER}: {browsers}", flush=True)
                    # The swarms differ in size, watch time and buffering: compare the origin's
                    # bytes per byte the viewers loaded.
                    off_per_byte = {**off, "origin_sent": ratio(off["origin_sent"], off["loaded_bytes"])}
                    on_per_byte = {
                        **browsers,
                        "origin_sent": ratio(browsers["origin_sent"], browsers["loaded_bytes"]),
                    }
                    if browsers["unstarted"]:
                        print(f"  warning: {browsers['unstarted']} pages never played", flush=True)
                    lines.append(
                        result_line(
                            BROWSER,
                            args.browsers,
                            case,
                            on_per_byte,
                            off_per_byte,
                            sim="-",
                            startup=False,
                        )
                    )
                    print(lines[-1], flush=True)
    print("\n" + "\n".join(lines))


if __name__ == "__main__":
    asyncio.run(main())
