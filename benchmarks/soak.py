"""Soak: does a long-running swarm keep its caches, books and memory bounded?

Two kinds, each ending with a ``RESULT soak kind=...`` line:

* ``sim``: hours of a live stream in the simulator (virtual time, seconds of CPU), with churn.
  Every ``--sample-minutes`` of virtual time it records, over the viewers watching then, the
  largest segment cache (segments and bytes) and the largest scheduler books (downloads, peers and
  their segment maps, stalled bytes, uploads, failure timers). The figures of the last quarter of
  the run must not exceed those of the first three quarters by more than ``--tolerance``: a leak
  grows with time, a bounded structure does not. The same scenario also runs with P2P off, so the
  stalls can be compared with an HTTP-only audience.
* ``real``: ``--viewers`` viewer processes (``python -m p2ploader.app.viewer``) watch the bundled
  live stream from the real local origin through the embedded tracker, over real WebRTC on
  127.0.0.1, for ``--minutes``. Every second it reads each process's resident set size from
  ``/proc/<pid>/status``; it prints the peak RSS per viewer and the RSS growth between the first
  quarter of the run and its end.

    python benchmarks/soak.py sim [--hours 3] [--viewers 30] [--churn 0.2]
    python benchmarks/soak.py real [--minutes 10] [--viewers 5]
    python benchmarks/soak.py           # both, short: 1 simulated hour, 2 real minutes

``tests/test_soak.py`` runs short versions of both.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import attrs

from p2ploader.app.viewer import ViewerSpec, start_viewer_process
from p2ploader.config import LoaderConfig
from p2ploader.sample import sample_path
from p2ploader.sim.run import _World
from p2ploader.sim.scenario import Scenario
from p2ploader.testing.origin import LiveSettings, OriginServer
from p2ploader.tracker import TrackerServer

# --------------------------------------------------------------------------- the simulator


@attrs.frozen(kw_only=True)
class SimSample:
    minute: float
    audience: int
    cache_segments: int
    cache_bytes: int
    books: int  # entries in the scheduler's bookkeeping structures


@attrs.frozen(kw_only=True)
class SimSoak:
    hours: float
    viewers: int
    churn_per_minute: float
    samples: tuple[SimSample, ...]
    stalls: int
    stalls_http_only: int
    joined: int
    p2p_ratio: float

    def _split(self) -> tuple[list[SimSample], list[SimSample]]:
        cut = max(1, len(self.samples) * 3 // 4)
        return list(self.samples[:cut]), list(self.samples[cut:]) or list(self.samples[-1:])

    def growth(self, field: str) -> float:
        """Largest value in the last quarter over the largest before it (1.0 = no growth)."""
        early, late = self._split()
        before = max(getattr(s, field) for s in early)
        after = max(getattr(s, field) for s in late)
        return after / before if before else (1.0 if not after else float("inf"))

    def peak(self, field: str) -> int:
        return max(getattr(s, field) for s in self.samples)

    def result_line(self) -> str:
        return (
            f"RESULT soak kind=sim hours={self.hours:g} viewers={self.viewers} "
            f"churn_per_minute={self.churn_per_minute:g} joined={self.joined} "
            f"peak_cache_segments_per_viewer={self.peak('cache_segments')} "
            f"peak_cache_mb_per_viewer={self.peak('cache_bytes') / 1e6:.1f} "
            f"peak_books_per_viewer={self.peak('books')} "
            f"cache_growth={self.growth('cache_bytes'):.2f} books_growth={self.growth('books'):.2f} "
            f"p2p_ratio={self.p2p_ratio:.2f} stalls={self.stalls} stalls_http_only={self.stalls_http_only}"
        )


def _books(scheduler: Any) -> int:
    """Entries in a scheduler's bookkeeping (its private structures: this is a white-box probe)."""
    peers = scheduler._peers
    return (
        len(scheduler._downloads)
        + len(peers)
        + sum(len(p.loaded) + len(p.loading_by_http) for p in peers.values())
        + len(scheduler._stalled_bytes)
        + scheduler._upload_desk.active
        + len(scheduler._http_failed_until)
        + len(scheduler._http_failure_counts)
        + len(scheduler._wanted)
        + len(scheduler._notifications)
    )


def _run_world(scenario: Scenario, *, p2p: bool, sample_every: float) -> tuple[list[SimSample], _World]:
    """:func:`p2ploader.sim.run_scenario`'s loop, with a probe every ``sample_every`` virtual seconds."""
    world = _World(scenario, p2p=p2p, trace=False)
    loop = world.loop
    for _ in range(scenario.viewers):
        loop.call_at(world.rng.uniform(0.0, scenario.join_window_s), world.join)
    world._schedule_churn()
    loop.call_later(60.0, world._forget_old_payloads)
    samples: list[SimSample] = []
    t = 0.0
    next_sample = sample_every
    while t < scenario.duration_s:
        t = min(scenario.duration_s, t + 10.0)  # run_scenario's step
        loop.run_until(t)
        if t < next_sample and t < scenario.duration_s:
            continue
        next_sample += sample_every
        alive = list(world.alive.values())
        samples.append(
            SimSample(
                minute=t / 60,
                audience=len(alive),
                cache_segments=max((len(v.scheduler.cache) for v in alive), default=0),
                cache_bytes=max((v.scheduler.cache.total_bytes for v in alive), default=0),
                books=max((_books(v.scheduler) for v in alive), default=0),
            )
        )
    for viewer in world.viewers:
        if viewer.left is None:  # as run_scenario: a viewer that left stopped playing then
            viewer.model.update(now=loop.time())
    return samples, world


def sim_soak(
    *, hours: float = 1.0, viewers: int = 20, churn_per_minute: float = 0.2, sample_minutes: float = 5.0
) -> SimSoak:
    scenario = Scenario(
        name="soak",
        viewers=viewers,
        duration_s=hours * 3600,
        churn_per_minute=churn_per_minute,
        segment_duration_s=4.0,
        window_segments=10,
        renditions_kbps=(800.0,),
    )
    samples, world = _run_world(scenario, p2p=True, sample_every=sample_minutes * 60)
    _, baseline = _run_world(scenario, p2p=False, sample_every=sample_minutes * 60)
    figures = [v.figures() for v in world.viewers]
    p2p_bytes = sum(f.p2p_bytes for f in figures)
    total = p2p_bytes + sum(f.http_bytes for f in figures)
    return SimSoak(
        hours=hours,
        viewers=viewers,
        churn_per_minute=churn_per_minute,
        samples=tuple(samples),
        stalls=sum(f.stalls for f in figures),
        stalls_http_only=sum(v.figures().stalls for v in baseline.viewers),
        joined=len(world.viewers),
        p2p_ratio=p2p_bytes / total if total else 0.0,
    )


# --------------------------------------------------------------------------- real processes


def _rss_kb(pid: int) -> tuple[int, int] | None:
    """(VmRSS, VmHWM) of a process in kB, or None once it is gone."""
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    values = {}
    for line in text.splitlines():
        key, _, rest = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            values[key] = int(rest.split()[0])
    return (values["VmRSS"], values["VmHWM"]) if len(values) == 2 else None


@attrs.frozen(kw_only=True)
class RealSoak:
    minutes: float
    viewers: int
    peak_rss_mb: tuple[float, ...]  # per viewer
    growth_mb: tuple[float, ...]  # per viewer: RSS at the end minus RSS at a quarter of the run
    results: tuple[dict[str, Any], ...]

    @property
    def stalls(self) -> int:
        return sum(int(r.get("stalls", 0)) for r in self.results)

    @property
    def mismatches(self) -> int:
        return sum(int(r.get("mismatches", 0)) for r in self.results)

    @property
    def p2p_ratio(self) -> float:
        p2p = sum(int(r.get("p2p_bytes", 0)) for r in self.results)
        total = p2p + sum(int(r.get("http_bytes", 0)) for r in self.results)
        return p2p / total if total else 0.0

    def result_line(self) -> str:
        return (
            f"RESULT soak kind=real minutes={self.minutes:g} viewers={self.viewers} "
            f"peak_rss_mb_per_viewer={max(self.peak_rss_mb):.1f} "
            f"median_peak_rss_mb={statistics.median(self.peak_rss_mb):.1f} "
            f"rss_growth_mb_per_viewer={statistics.median(self.growth_mb):.1f} "
            f"p2p_ratio={self.p2p_ratio:.2f} mismatches={self.mismatches} stalls={self.stalls}"
        )


async def real_soak(*, minutes: float = 2.0, viewers: int = 5, stagger: float = 2.0) -> RealSoak:
    root = sample_path("ts")
    seconds = minutes * 60
    async with TrackerServer() as tracker:
        with OriginServer(root, live=LiveSettings(window_segments=10)) as origin:
            config = LoaderConfig(
                tracker_announce=(tracker.url,),
                rtc_config={"iceServers": []},
                http_retry_backoff=0.05,
                live_refresh_interval=1.0,
            ).to_faq()
            procs: list[asyncio.subprocess.Process] = []
            for index in range(viewers):
                spec = ViewerSpec(
                    url=origin.url_for("live/master.m3u8"),
                    config=config,
                    duration=seconds,
                    forward_buffer=8.0,
                    rendition="v1",
                    seed=100 + index,
                    # Followers sit further behind live, so what they prefetch the first holds.
                    live_start_distance=3 if index == 0 else 6,
                    check_bytes_against=str(root),
                )
                procs.append(await start_viewer_process(spec, stderr=asyncio.subprocess.DEVNULL))
                await asyncio.sleep(stagger)
            reading = [asyncio.create_task(p.communicate()) for p in procs]
            peak = [0] * viewers
            quarter: list[int | None] = [None] * viewers
            last = [0] * viewers
            started = time.monotonic()
            deadline = started + seconds + 60 + stagger * viewers  # bounded: a hung viewer fails the run
            while not all(task.done() for task in reading):
                if time.monotonic() > deadline:
                    for proc in procs:
                        proc.kill()
                    raise RuntimeError("viewers did not finish in time")
                for index, proc in enumerate(procs):
                    rss = _rss_kb(proc.pid)
                    if rss is None:
                        continue
                    last[index] = rss[0]
                    peak[index] = max(peak[index], rss[1])
                    if quarter[index] is None and time.monotonic() - started >= seconds / 4:
                        quarter[index] = rss[0]
                await asyncio.sleep(1.0)
            outputs = [task.result() for task in reading]
    results = []
    for proc, (out, _err) in zip(procs, outputs, strict=True):
        lines = out.decode().strip().splitlines()
        result = json.loads(lines[-1]) if lines else {"type": "error", "error": "no output"}
        if proc.returncode != 0 or result.get("type") != "result":
            raise RuntimeError(f"a viewer failed: {result}")
        results.append(result)
    return RealSoak(
        minutes=minutes,
        viewers=viewers,
        peak_rss_mb=tuple(kb / 1024 for kb in peak),
        growth_mb=tuple(
            (end - (q if q is not None else end)) / 1024 for end, q in zip(last, quarter, strict=True)
        ),
        results=tuple(results),
    )


# --------------------------------------------------------------------------- command line


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("kind", nargs="?", choices=["sim", "real", "both"], default="both")
    parser.add_argument("--hours", type=float, default=1.0, help="simulated hours (sim; default 1)")
    parser.add_argument("--churn", type=float, default=0.2, help="audience share leaving per minute (sim)")
    parser.add_argument(
        "--sample-minutes", type=float, default=5.0, help="virtual minutes between probes (sim)"
    )
    parser.add_argument(
        "--minutes", type=float, default=2.0, help="real minutes (real; 10 for the full soak)"
    )
    parser.add_argument("--viewers", type=int, default=None, help="viewers (default: sim 20, real 5)")
    parser.add_argument(
        "--tolerance", type=float, default=1.25, help="allowed late/early growth factor (sim)"
    )
    args = parser.parse_args(argv)
    failed = False
    if args.kind in ("sim", "both"):
        started = time.process_time()
        soak = sim_soak(
            hours=args.hours,
            viewers=args.viewers or 20,
            churn_per_minute=args.churn,
            sample_minutes=args.sample_minutes,
        )
        for sample in soak.samples:
            print(
                f"sim t={sample.minute:6.0f} min audience={sample.audience:3d} "
                f"max_cache={sample.cache_segments:3d} segments / {sample.cache_bytes / 1e6:5.1f} MB "
                f"max_books={sample.books}"
            )
        print(f"sim: {time.process_time() - started:.1f} CPU s")
        print(soak.result_line())
        failed |= soak.growth("cache_bytes") > args.tolerance or soak.growth("books") > args.tolerance
    if args.kind in ("real", "both"):
        real = asyncio.run(real_soak(minutes=args.minutes, viewers=args.viewers or 5))
        print(real.result_line())
        failed |= real.mismatches > 0
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
