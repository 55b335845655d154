"""Swarm offload on loopback: N viewers in separate processes watch a live stream.

The stream has 5 s segments (``--segment-seconds`` for others), 20 in the live playlist (made
once per segment length with ffmpeg into benchmarks/.cache/). Every viewer is held a fixed
distance behind the live edge: 3 segments (the usual player default) and 19 (what P2P Media
Loader's hls.js engine picks). For each N and latency the same swarm runs twice, with P2P and
with P2P off, and the script prints side by side:

* p2p_ratio: P2P bytes / all bytes the viewers downloaded;
* origin_vs_nop2p: segment bytes the origin sent, against the same swarm with P2P off;
* best: the best case 1 - 1/N; stalls; startup_ratio: median startup time against P2P off.

    python benchmarks/swarm_offload.py [--viewers 5 10] [--latencies 3 19] [--duration 90]
        [--segment-seconds 5] [--policy NAME ...]
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

from p2ploader.app.viewer import ViewerSpec, last_line, start_viewer_process
from p2ploader.config import LoaderConfig
from p2ploader.testing.origin import LiveSettings, OriginServer
from p2ploader.tracker import TrackerServer

CACHE = Path(__file__).resolve().parent / ".cache"
STREAM_SECONDS = 120


def make_stream(segment_seconds: int = 5, *, video_kbps: int = 540) -> Path:
    """A 120 s H.264/AAC stream (one 640x360 rendition, ``video_kbps`` of video, capped 10 % above,
    and 64 kbit/s of audio; about 600 kbit/s by default) cut into ``segment_seconds`` segments (a
    key frame at each), made once per segment length and bitrate."""
    suffix = "" if video_kbps == 540 else f"_{video_kbps}k"  # the default keeps its old cache folder
    root = CACHE / f"live{segment_seconds}s{suffix}"
    master = root / "master.m3u8"
    if master.exists():
        return root
    ffmpeg = shutil.which("ffmpeg")
    if ffmpeg is None:
        sys.exit("this benchmark needs ffmpeg (apt-get install ffmpeg)")
    out = root / "v0"
    out.mkdir(parents=True, exist_ok=True)
    seconds = STREAM_SECONDS
    gop = str(24 * segment_seconds)  # 24 fps: one key frame per segment
    max_kbps = round(video_kbps * 10 / 9)
    video = ["-c:v", "libx264", "-preset", "veryfast", "-b:v", f"{video_kbps}k", "-maxrate", f"{max_kbps}k"]
    video += ["-bufsize", f"{2 * max_kbps}k", "-g", gop, "-keyint_min", gop, "-sc_threshold", "0"]
    hls = ["-f", "hls", "-hls_time", str(segment_seconds), "-hls_playlist_type", "vod"]
    hls += ["-hls_segment_filename", str(out / "seg_%05d.ts"), str(out / "index.m3u8")]
    subprocess.run(
        [
            ffmpeg,
            *("-hide_banner", "-loglevel", "error", "-y"),
            *("-f", "lavfi", "-i", f"testsrc2=size=640x360:rate=24:duration={seconds}"),
            *("-f", "lavfi", "-i", f"sine=frequency=440:sample_rate=48000:duration={seconds}"),
            *video,
            *("-c:a", "aac", "-b:a", "64k"),
            *hls,
        ],
        check=True,
    )
    bandwidth = (max_kbps + 100) * 1000  # the peak video rate, the audio and some container overhead
    master.write_text(f"#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH={bandwidth},RESOLUTION=640x360\nv0/index.m3u8\n")
    return root
    ffmpeg = shutil.which("ffmpeg")
    if ffmpeg is None:
        sys.exit("swarm_offload needs ffmpeg (apt-get install ffmpeg)")
    out = root / "v0"
    out.mkdir(parents=True, exist_ok=True)
    seconds = STREAM_SECONDS
    gop = str(24 * segment_seconds)  # 24 fps: one key frame per segment
    subprocess.run(
        [
            ffmpeg,
            "-hide_banner",
            "-loglevel",
            "error",
            "-y",
            "-f",
            "lavfi",
            "-i",
            f"testsrc2=size=640x360:rate=24:duration={seconds}",
            "-f",
            "lavfi",
            "-i",
            f"sine=frequency=440:sample_rate=48000:duration={seconds}",
            "-c:v",
            "libx264",
            "-preset",
            "veryfast",
            "-b:v",
            "540k",
            "-maxrate",
            "600k",
            "-bufsize",
            "1200k",
            "-g",
            gop,
            "-keyint_min",
            gop,
            "-sc_threshold",
            "0",
            "-c:a",
            "aac",
            "-b:a",
            "64k",
            "-f",
            "hls",
            "-hls_time",
            str(segment_seconds),
            "-hls_playlist_type",
            "vod",
            "-hls_segment_filename",
            str(out / "seg_%05d.ts"),
            str(out / "index.m3u8"),
        ],
        check=True,
    )
    master.write_text("#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=700000,RESOLUTION=640x360\nv0/index.m3u8\n")
    return root


async def run_swarm(
    root: Path,
    *,
    viewers: int,
    latency: int,
    duration: float,
    p2p: bool,
    stagger: float,
    policy: str = "p2pml-0.6",
) -> dict[str, Any]:
    async with TrackerServer() as tracker:
        with OriginServer(root, live=LiveSettings(window_segments=20)) as origin:
            config = LoaderConfig(
                tracker_announce=(tracker.url,), rtc_config={"iceServers": []}, use_p2p=p2p, policy=policy
            )
            procs = []
            for i in range(viewers):
                spec = ViewerSpec(
                    url=origin.url_for("live/master.m3u8"),
                    config=config.to_faq(),
                    duration=duration,
                    live_start_distance=latency,
                    forward_buffer=30.0,
                    seed=i,
                    check_bytes_against=str(root),
                )
                procs.append(await start_viewer_process(spec))
                await asyncio.sleep(stagger)
            outputs = await asyncio.wait_for(
                asyncio.gather(*(p.communicate() for p in procs)), timeout=duration + stagger * viewers + 120
            )
            origin_bytes = origin.statistics().segment_bytes_sent
    results = []
    for proc, (out, err) in zip(procs, outputs, strict=True):
        if proc.returncode != 0:
            raise RuntimeError(f"viewer failed: {err.decode()[-2000:]}")
        results.append(last_line(out))
    http = sum(r["http_bytes"] for r in results)
    p2p_bytes = sum(r["p2p_bytes"] for r in results)
    return {
        "origin_bytes": origin_bytes,
        "p2p_ratio": p2p_bytes / (http + p2p_bytes) if http + p2p_bytes else 0.0,
        "stalls": sum(r["stalls"] for r in results),
        "mismatches": sum(r["mismatches"] for r in results),
        "startup": statistics.median(r["startup_time"] or float("inf") for r in results),
        "cpu": sum(r["cpu_time"] for r in results),
    }


async def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--viewers", type=int, nargs="+", default=[5, 10])
    parser.add_argument("--latencies", type=int, nargs="+", default=[3, 19])
    parser.add_argument("--duration", type=float, default=90.0, help="seconds each viewer plays")
    parser.add_argument("--stagger", type=float, default=1.0, help="seconds between joins")
    parser.add_argument(
        "--policy", action="append", default=None, help="download policy (repeatable; default: p2pml-0.6)"
    )
    parser.add_argument("--segment-seconds", type=int, default=5, help="segment duration of the stream")
    args = parser.parse_args()
    root = make_stream(args.segment_seconds)
    lines = []
    for n in args.viewers:
        for latency in args.latencies:
            off = await run_swarm(
                root, viewers=n, latency=latency, duration=args.duration, p2p=False, stagger=args.stagger
            )
            for policy in args.policy or ["p2pml-0.6"]:
                on = await run_swarm(
                    root,
                    viewers=n,
                    latency=latency,
                    duration=args.duration,
                    p2p=True,
                    stagger=args.stagger,
                    policy=policy,
                )
                best = 1 - 1 / n
                origin_ratio = (
                    on["origin_bytes"] / off["origin_bytes"] if off["origin_bytes"] else float("nan")
                )
                startup_ratio = on["startup"] / off["startup"] if off["startup"] else float("nan")
                print(
                    f"{policy} N={n:3d} latency={latency:2d} seg: p2p_ratio={on['p2p_ratio']:.3f} "
                    f"(best {best:.2f}) origin_vs_nop2p={origin_ratio:.3f} stalls={on['stalls']} "
                    f"(off: {off['stalls']}) startup {on['startup']:.2f}s vs {off['startup']:.2f}s "
                    f"mismatches={on['mismatches']}",
                    flush=True,
                )
                lines.append(
                    f"RESULT swarm_offload policy={policy} n={n} segment_s={args.segment_seconds} "
                    f"latency_segments={latency} "
                    f"p2p_ratio={on['p2p_ratio']:.3f} origin_vs_nop2p={origin_ratio:.3f} best={best:.2f} "
                    f"stalls={on['stalls']} startup_ratio={startup_ratio:.2f}"
                )
    for line in lines:
        print(line)


if __name__ == "__main__":
    asyncio.run(main())
