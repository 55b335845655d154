"""Fidelity: one small live swarm, simulated and for real on loopback, gives the same P2P ratio.

The real swarm is the bundled sample's rendition v1 (2 s segments) served live by the local origin
(10 segments in the playlist), the embedded tracker and viewer processes (``python -m
p2ploader.app.viewer``, ICE on 127.0.0.1), as in ``benchmarks/swarm_offload.py``. The simulated one
is a :class:`Scenario` with the same stream (segment duration and bitrate read from the files),
audience, latency behind live, buffers and loader settings, and loopback links (1 Gbit/s, 1 ms).
The simulator runs first; its viewers' join times become the real viewers' start times, and every
real viewer plays until the simulated run's end, so both swarms have the same schedule.

Run it with ``pytest tests/sim/test_fidelity.py -s`` to see the figures.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from pathlib import Path
from typing import Any

import pytest

from p2ploader.app.viewer import ViewerSpec, last_line, start_viewer_process
from p2ploader.config import LoaderConfig
from p2ploader.hls import parse_master, parse_media
from p2ploader.sample import sample_path
from p2ploader.sim import Scenario, run_scenario
from p2ploader.testing.origin import LiveSettings, OriginServer
from p2ploader.tracker import TrackerServer

pytestmark = [pytest.mark.anyio, pytest.mark.e2e]

VIEWERS = 5
DURATION = 120.0  # seconds from the origin's start to the end of every viewer's session
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


def scenario_for(root: Path) -> Scenario:
    segment_s, kbps = rendition_figures(root, RENDITION)
    return Scenario(
        name="fidelity",
        seed=7,
        duration_s=DURATION,
        live=True,
        segment_duration_s=segment_s,
        window_segments=WINDOW,
        renditions_kbps=(kbps,),
        viewers=VIEWERS,
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


async def run_real(root: Path, join_times: list[float]) -> list[dict[str, Any]]:
    """The real swarm: viewer ``i`` starts ``join_times[i]`` s after the origin and plays until
    ``DURATION``; returns each viewer's result line."""
    procs: list[asyncio.subprocess.Process] = []
    try:
        async with TrackerServer() as tracker:
            with OriginServer(root, live=LiveSettings(window_segments=WINDOW)) as origin:
                started = time.monotonic()
                config = LoaderConfig.from_faq(LOADER).evolve(
                    tracker_announce=(tracker.url,), rtc_config={"iceServers": []}
                )
                for i, join in enumerate(join_times):
                    await asyncio.sleep(max(0.0, started + join - time.monotonic()))
                    spec = ViewerSpec(
                        url=origin.url_for("live/master.m3u8"),
                        config=config.to_faq(),
                        duration=max(10.0, DURATION - (time.monotonic() - started)),
                        live_start_distance=LATENCY_SEGMENTS,
                        forward_buffer=FORWARD_BUFFER,
                        startup_buffer=2.0,
                        rendition=RENDITION,
                        seed=i,
                        check_bytes_against=str(root),
                    )
                    procs.append(await start_viewer_process(spec))
                outputs = await asyncio.wait_for(
                    asyncio.gather(*(p.communicate() for p in procs)), timeout=DURATION + 40
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


async def test_simulated_and_real_p2p_ratios_agree(record_property: Any) -> None:
    root = sample_path("ts")
    scenario = scenario_for(root)
    simulated = run_scenario(scenario)
    join_times = sorted(v.joined for v in simulated.viewers)

    real = await run_real(root, join_times)

    http = sum(r["http_bytes"] for r in real)
    p2p = sum(r["p2p_bytes"] for r in real)
    real_ratio = p2p / (http + p2p)
    print(
        f"\nfidelity: {VIEWERS} viewers, {DURATION:g} s live, {scenario.segment_duration_s:g} s segments "
        f"at {scenario.renditions_kbps[0]:.0f} kbit/s, {LATENCY_SEGMENTS} segments behind live, "
        f"joins at {', '.join(f'{t:.1f}' for t in join_times)} s\n"
        f"  simulated: P2P ratio {simulated.p2p_ratio:.3f}, stalls {simulated.stalls}, "
        f"startup median {simulated.startup_median or 0:.2f} s\n"
        f"  real:      P2P ratio {real_ratio:.3f}, stalls {sum(r['stalls'] for r in real)}, "
        f"peers {[r['peers_connected'] for r in real]}, "
        f"per viewer {[round(r['p2p_bytes'] / max(1, r['p2p_bytes'] + r['http_bytes']), 2) for r in real]}"
    )
    record_property("sim_p2p_ratio", round(simulated.p2p_ratio, 4))
    record_property("real_p2p_ratio", round(real_ratio, 4))
    assert all(r["mismatches"] == 0 and r["segments_played"] > 0 for r in real)
    assert simulated.p2p_ratio > 0.2  # a swarm that shares, so the comparison means something
    assert abs(simulated.p2p_ratio - real_ratio) <= TOLERANCE
