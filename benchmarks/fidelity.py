"""Fidelity: one small live swarm, simulated and for real on loopback, gives the same P2P ratio.

The real swarm is the bundled sample's rendition v1 (2 s segments) served live by the local origin
(10 segments in the playlist), the embedded tracker and viewer processes (``python -m
p2ploader.app.viewer``, ICE on 127.0.0.1), as in ``benchmarks/swarm_offload.py``. The simulated one
is a :class:`Scenario` with the same stream (segment duration and bitrate read from the files),
audience, latency behind live, buffers and loader settings, and loopback links (1 Gbit/s, 1 ms).
The simulator runs first; its viewers' join times become the real viewers' start times, and every
real viewer plays until the simulated run's end, so both swarms have the same schedule.

    python benchmarks/fidelity.py [--viewers 5] [--duration 120] [--runs 1]

Prints, per run, one line::

    RESULT fidelity viewers=5 duration_s=120 sim_p2p_ratio=0.770 real_p2p_ratio=0.773 difference=0.003 ...

``tests/sim/test_fidelity.py`` runs a shorter swarm (:data:`TEST_DURATION`) and holds the
difference to :data:`TOLERANCE`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import time
from pathlib import Path
from typing import Any

import attrs

from p2ploader.app.viewer import ViewerSpec, last_line, start_viewer_process
from p2ploader.config import LoaderConfig
from p2ploader.hls import parse_master, parse_media
from p2ploader.sample import sample_path
from p2ploader.sim import Scenario, SimResult, run_scenario
from p2ploader.testing.origin import LiveSettings, OriginServer
from p2ploader.tracker import TrackerServer

VIEWERS = 5
DURATION = 120.0  # seconds from the origin's start to the end of every viewer's session
TEST_DURATION = 60.0  # the test's shorter swarm (seconds); the ratios still agree, see docs/simulator.md
JOIN_WINDOW = 8.0
LATENCY_SEGMENTS = 4  # behind the live edge, in segments
FORWARD_BUFFER = 6.0  # seconds the player buffers ahead
WINDOW = 10  # segments in the live playlist
RENDITION = "v1"
TOLERANCE = 0.10  # P2P ratios must agree within 10 percentage points
LOADER: dict[str, Any] = {}  # FAQ settings on top of the defaults, for both runs


def rendition_figures(root: Path, rendition: str) -> tuple[float, float]:
    """Mean segment duration (s) and bitrate (kbit/s) of ``rendition`` of the VOD at ``root``."""
    master_path = root / "master.m3u8"
    master = parse_master(master_path.read_text(), master_path.as_uri())
    variant = next(v for v in master.variants if v.rendition_id == rendition)
    media_path = Path(variant.url.removeprefix("file://"))
    playlist = parse_media(media_path.read_text(), variant.url, rendition=rendition)
    durations = [s.duration for s in playlist.segments]
    sizes = [Path(s.url.removeprefix("file://")).stat().st_size for s in playlist.segments]
    return sum(durations) / len(durations), sum(sizes) * 8 / sum(durations) / 1000


def scenario_for(root: Path, *, viewers: int = VIEWERS, duration: float = DURATION) -> Scenario:
    """The simulated swarm matching the real one: ``viewers`` for ``duration`` seconds."""
    segment_s, kbps = rendition_figures(root, RENDITION)
    return Scenario(
        name="fidelity",
        seed=7,
        duration_s=duration,
        live=True,
        segment_duration_s=segment_s,
        window_segments=WINDOW,
        renditions_kbps=(kbps,),
        viewers=viewers,
        join_window_s=JOIN_WINDOW,
        uplink_mbps=1000.0,
        downlink_mbps=1000.0,
        latency_ms=0.5,  # one way to the "core": 1 ms between two viewers
        jitter_ms=0.2,
        origin_mbps=1000.0,
        origin_latency_ms=0.5,
        latency_segments=LATENCY_SEGMENTS,
        forward_buffer_s=FORWARD_BUFFER,
        startup_buffer_s=2.0,
        max_peers=LoaderConfig().max_peers,
        connect_delay_s=(0.5, 2.0),  # tracker offer/answer and ICE on loopback
        loader=LOADER,
    )


async def run_real(
    root: Path, join_times: list[float], *, duration: float = DURATION
) -> list[dict[str, Any]]:
    """The real swarm: viewer ``i`` starts ``join_times[i]`` s after the origin and plays until
    ``duration`` s after it; returns each viewer's result line."""
    procs: list[asyncio.subprocess.Process] = []
    try:
        async with TrackerServer() as tracker:
            with OriginServer(root, live=LiveSettings(window_segments=WINDOW)) as origin:
                started = time.monotonic()
                config = LoaderConfig.from_faq(LOADER).evolve(
                    tracker_announce=(tracker.url,), rtc_config={"iceServers": []}
                )
                for i, join in enumerate(join_times):
                    # Each viewer starts at its simulated join time: the schedule is what is compared.
                    await asyncio.sleep(max(0.0, started + join - time.monotonic()))
                    spec = ViewerSpec(
                        url=origin.url_for("live/master.m3u8"),
                        config=config.to_faq(),
                        duration=max(10.0, duration - (time.monotonic() - started)),
                        live_start_distance=LATENCY_SEGMENTS,
                        forward_buffer=FORWARD_BUFFER,
                        startup_buffer=2.0,
                        rendition=RENDITION,
                        seed=i,
                        check_bytes_against=str(root),
                    )
                    procs.append(await start_viewer_process(spec))
                outputs = await asyncio.wait_for(
                    asyncio.gather(*(p.communicate() for p in procs)), timeout=duration + 40
                )
    finally:
        for proc in procs:
            if proc.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                await proc.wait()
    results = []
    for proc, (out, err) in zip(procs, outputs, strict=True):
        assert proc.returncode == 0, err.decode()[-2000:]
        line = last_line(out)
        assert line["type"] == "result", line
        results.append(line)
    return results


@attrs.frozen
class Fidelity:
    """One run both ways: the scenario, the simulated result and the real viewers' result lines."""

    scenario: Scenario
    simulated: SimResult
    real: tuple[dict[str, Any], ...]

    @property
    def join_times(self) -> list[float]:
        """Seconds after the origin's start at which the viewers joined, in order."""
        return sorted(v.joined for v in self.simulated.viewers)

    @property
    def real_ratio(self) -> float:
        """P2P bytes over all bytes the real viewers downloaded."""
        http = sum(r["http_bytes"] for r in self.real)
        p2p = sum(r["p2p_bytes"] for r in self.real)
        return p2p / (http + p2p)

    def report(self) -> str:
        real = self.real
        per_viewer = [round(r["p2p_bytes"] / max(1, r["p2p_bytes"] + r["http_bytes"]), 2) for r in real]
        return (
            f"fidelity: {self.scenario.viewers} viewers, {self.scenario.duration_s:g} s live, "
            f"{self.scenario.segment_duration_s:g} s segments "
            f"at {self.scenario.renditions_kbps[0]:.0f} kbit/s, {LATENCY_SEGMENTS} segments behind live, "
            f"joins at {', '.join(f'{t:.1f}' for t in self.join_times)} s\n"
            f"  simulated: P2P ratio {self.simulated.p2p_ratio:.3f}, stalls {self.simulated.stalls}, "
            f"startup median {self.simulated.startup_median or 0:.2f} s\n"
            f"  real:      P2P ratio {self.real_ratio:.3f}, stalls {sum(r['stalls'] for r in real)}, "
            f"peers {[r['peers_connected'] for r in real]}, "
            f"per viewer {per_viewer}"
        )

    def result_line(self) -> str:
        return (
            f"RESULT fidelity viewers={self.scenario.viewers} duration_s={self.scenario.duration_s:g} "
            f"sim_p2p_ratio={self.simulated.p2p_ratio:.3f} real_p2p_ratio={self.real_ratio:.3f} "
            f"difference={abs(self.simulated.p2p_ratio - self.real_ratio):.3f} "
            f"real_stalls={sum(r['stalls'] for r in self.real)} "
            f"mismatches={sum(r['mismatches'] for r in self.real)}"
        )


async def fidelity(*, viewers: int = VIEWERS, duration: float = DURATION) -> Fidelity:
    """Simulate the swarm, then run it for real on the simulated schedule."""
    root = sample_path("ts")
    scenario = scenario_for(root, viewers=viewers, duration=duration)
    simulated = run_scenario(scenario)
    real = await run_real(root, sorted(v.joined for v in simulated.viewers), duration=duration)
    return Fidelity(scenario=scenario, simulated=simulated, real=tuple(real))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--viewers", type=int, default=VIEWERS)
    parser.add_argument("--duration", type=float, default=DURATION, help="seconds of live stream")
    parser.add_argument("--runs", type=int, default=1, help="runs, one after another")
    args = parser.parse_args(argv)
    failed = False
    for _ in range(args.runs):
        run = asyncio.run(fidelity(viewers=args.viewers, duration=args.duration))
        print(run.report())
        print(run.result_line(), flush=True)
        failed |= abs(run.simulated.p2p_ratio - run.real_ratio) > TOLERANCE
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
