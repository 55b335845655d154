"""Run a swarm of viewers, in pools or each in its own process, and collect what they report.

Theory of operation
-------------------
* **Schedule.** :func:`churn_schedule` turns a number of viewers, a duration, a stagger and optional
  churn rates into :class:`Session` objects (one viewer process each): viewer ``i`` first joins at
  ``i * stagger`` seconds. Without churn it stays to the end. With churn, every viewer online
  leaves at ``leave_per_minute`` (its time online is exponential with mean
  ``60 / leave_per_minute`` seconds, at least ``min_session``), then comes back after an
  exponential delay of mean ``60 / rejoin_per_minute`` seconds (at least ``min_away``; never with a
  rejoin rate of 0). It is bounded (at most ``max_sessions`` sessions per viewer, no session
  starting later than ``min_session`` before the end) and deterministic: each viewer draws from its
  own ``random.Random`` seeded from ``seed`` and its index, so a viewer's schedule does not depend
  on how many others there are.
* **Pools.** By default :class:`SwarmRunner` starts ``pools`` pool processes (``python -m
  p2ploader.app.pool``, one per core; :mod:`p2ploader.app.pool`), each running many viewer sessions
  on one event loop, and starts each session at its time in the pool with the fewest sessions
  running, with ``duration`` set to the session's length: a viewer leaves by ending its own
  playback, announcing ``stopped`` to the tracker on its way out. Per-session CPU time cannot be
  measured in a shared process: a session's ``cpu_time`` is its equal share of its pool's.
* **Processes.** With ``pools=0`` (``--process-per-viewer``), and always with ``viewer_prefix``
  (the testbed, where each viewer has a network namespace, which is per process), each session is
  ``python -m p2ploader.app.viewer SPEC`` instead, in a process of its own.
* **Stopping.** Pools and viewer processes run in new process groups, so a Ctrl-C in the
  terminal reaches only the runner. :meth:`SwarmRunner.stop` ends every running viewer early with
  SIGTERM (to its process, or to its pool, which stops all its sessions; they still report); a
  viewer that overruns its session by ``grace`` seconds is terminated (in a pool: stopped, then its
  task cancelled), then killed.
* **Figures.** Viewers print a ``{"type": "tick"}`` JSON line every ``tick_interval`` seconds and a
  final ``{"type": "result"}`` line; the runner stamps ticks with its own clock, keeps the latest
  figures per viewer (:meth:`SwarmRunner.figures`), and samples the swarm's cumulative HTTP and
  P2P bytes every ``sample_interval`` seconds (:attr:`SwarmRunner.timeline`). :meth:`SwarmRunner.run`
  returns a :class:`SwarmResult` (per-viewer and total figures, sessions, timeline, buffer levels)
  that :mod:`p2ploader.app.views` renders and :mod:`p2ploader.app.plots` draws.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import logging
import math
import os
import random
import signal
import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Literal

import attrs

from p2ploader.app.pool import DEFAULT_MAX_SESSIONS, PoolClient, PoolProcess
from p2ploader.app.viewer import ViewerSpec, start_viewer_process
from p2ploader.errors import P2PLoaderError

__all__ = [
    "ChurnSettings",
    "MediaFigures",
    "Session",
    "SessionRun",
    "SwarmResult",
    "SwarmRunner",
    "TimelinePoint",
    "ViewerFigures",
    "ViewerTick",
    "churn_schedule",
]

logger = logging.getLogger(__name__)


# --------------------------------------------------------------------------------------------------
# The schedule


@attrs.frozen(kw_only=True)
class Session:
    """One viewer process: viewer ``viewer`` (0-based) is online from ``start`` to ``end`` seconds
    after the swarm started; ``number`` counts its sessions from 0."""

    viewer: int
    number: int
    start: float
    end: float

    @property
    def duration(self) -> float:
        return self.end - self.start


@attrs.frozen(kw_only=True)
class ChurnSettings:
    """Leave and rejoin rates (per viewer, per minute) and the bounds of :func:`churn_schedule`."""

    leave_per_minute: float = 0.0
    rejoin_per_minute: float = 0.0
    min_session: float = 5.0
    """Shortest time online, seconds (also: no rejoin later than this before the end)."""
    min_away: float = 1.0
    """Shortest time away between sessions, seconds."""
    max_sessions: int = 10
    """Most sessions per viewer."""

    def __attrs_post_init__(self) -> None:
        if self.leave_per_minute < 0 or self.rejoin_per_minute < 0:
            raise ValueError("churn rates must be >= 0")
        if self.min_session <= 0 or self.min_away < 0 or self.max_sessions < 1:
            raise ValueError("need min_session > 0, min_away >= 0 and max_sessions >= 1")


def churn_schedule(
    viewers: int,
    *,
    duration: float,
    stagger: float = 0.0,
    churn: ChurnSettings | None = None,
    seed: int = 0,
) -> tuple[Session, ...]:
    """The sessions of a swarm run, sorted by start time (see the module docstring for the rule)."""
    if viewers < 0 or duration <= 0 or stagger < 0:
        raise ValueError("need viewers >= 0, duration > 0 and stagger >= 0")
    churn = churn or ChurnSettings()
    sessions: list[Session] = []
    for viewer in range(viewers):
        rng = random.Random(seed * 1_000_003 + viewer)
        start = viewer * stagger
        if start >= duration:
            continue
        for number in range(churn.max_sessions):
            life = math.inf
            if churn.leave_per_minute > 0:
                life = max(churn.min_session, rng.expovariate(churn.leave_per_minute / 60.0))
            end = min(duration, start + life)
            sessions.append(Session(viewer=viewer, number=number, start=start, end=end))
            if end >= duration or churn.rejoin_per_minute <= 0:
                break
            start = end + max(churn.min_away, rng.expovariate(churn.rejoin_per_minute / 60.0))
            if start > duration - churn.min_session:
                break
    return tuple(sorted(sessions, key=lambda s: (s.start, s.viewer)))


# --------------------------------------------------------------------------------------------------
# What viewers report


@attrs.frozen(kw_only=True)
class MediaFigures:
    """Bytes of one media type (``"video"``, ``"audio"``, ``"subtitles"``), from the viewers'
    ``media`` figures (:func:`p2ploader.app.viewer.media_figures`)."""

    http_bytes: int = 0
    p2p_bytes: int = 0
    p2p_uploaded_bytes: int = 0

    @property
    def p2p_ratio(self) -> float:
        total = self.http_bytes + self.p2p_bytes
        return self.p2p_bytes / total if total else 0.0

    @staticmethod
    def from_json(data: Mapping[str, Any]) -> dict[str, MediaFigures]:
        """The ``media`` object of a tick or result line, read defensively (lines come from
        another process)."""
        return {
            str(kind): MediaFigures(
                http_bytes=int(figures.get("http_bytes", 0) or 0),
                p2p_bytes=int(figures.get("p2p_bytes", 0) or 0),
                p2p_uploaded_bytes=int(figures.get("p2p_uploaded_bytes", 0) or 0),
            )
            for kind, figures in data.items()
            if isinstance(figures, Mapping)
        }

    @staticmethod
    def add(parts: Iterable[Mapping[str, MediaFigures]]) -> dict[str, MediaFigures]:
        """The sum of ``parts`` per media type."""
        out: dict[str, MediaFigures] = {}
        for part in parts:
            for kind, figures in part.items():
                have = out.get(kind, MediaFigures())
                out[kind] = MediaFigures(
                    http_bytes=have.http_bytes + figures.http_bytes,
                    p2p_bytes=have.p2p_bytes + figures.p2p_bytes,
                    p2p_uploaded_bytes=have.p2p_uploaded_bytes + figures.p2p_uploaded_bytes,
                )
        return out


@attrs.frozen(kw_only=True)
class ViewerTick:
    """One progress line of a viewer process, stamped ``t`` seconds after the swarm started."""

    t: float
    position: float
    buffer: float
    state: str
    live_edge_distance: float | None
    http_bytes: int
    p2p_bytes: int
    p2p_uploaded_bytes: int
    peers: int
    stalls: int
    rendition: str
    trackers: str = ""
    """The viewer's trackers in short (``"1/1 connected"``, ``"none reachable"``...)."""
    tracker_warning: str | None = None
    """The viewer's "P2P is off: no tracker reachable: ..." line, while it applies."""
    media: Mapping[str, MediaFigures] = attrs.field(factory=dict)

    @classmethod
    def from_line(cls, line: dict[str, Any], *, t: float) -> ViewerTick:
        return cls(
            t=t,
            position=float(line.get("position", 0.0)),
            buffer=float(line.get("buffer", 0.0)),
            state=str(line.get("state", "")),
            live_edge_distance=line.get("live_edge_distance"),
            http_bytes=int(line.get("http_bytes", 0)),
            p2p_bytes=int(line.get("p2p_bytes", 0)),
            p2p_uploaded_bytes=int(line.get("p2p_uploaded_bytes", 0)),
            peers=int(line.get("peers", 0)),
            stalls=int(line.get("stalls", 0)),
            rendition=str(line.get("rendition", "")),
            trackers=str(line.get("trackers", "")),
            tracker_warning=_optional_str(line.get("tracker_warning")),
            media=MediaFigures.from_json(line.get("media") or {}),
        )


def _optional_str(value: object) -> str | None:
    return None if value is None else str(value)


def _control_figure(result: Mapping[str, Any] | None, name: str) -> int:
    """A count from a session's ``upload_control`` figures (0: no result yet, or the control off)."""
    control = (result or {}).get("upload_control")
    value = control.get(name) if isinstance(control, Mapping) else None
    return int(value) if isinstance(value, int) and not isinstance(value, bool) else 0


SessionStatus = Literal["waiting", "starting", "playing", "done", "failed", "cancelled"]


@attrs.define(kw_only=True)
class SessionRun:
    """A session's process and everything it reported so far."""

    session: Session
    status: SessionStatus = "waiting"
    ticks: list[ViewerTick] = attrs.field(factory=list)
    result: dict[str, Any] | None = None
    error: str | None = None
    pid: int | None = None
    """The process it ran in: its own, or its pool's."""
    pool: int | None = None
    """The index of the pool it ran in; None: a process of its own."""
    started_at: float | None = None
    ended_at: float | None = None

    @property
    def last(self) -> ViewerTick | None:
        return self.ticks[-1] if self.ticks else None

    @property
    def online(self) -> bool:
        return self.status in ("starting", "playing")

    def figure(self, key: str) -> int:
        """A byte or count figure: from the result once there is one, else from the last tick."""
        if self.result is not None:
            return int(self.result.get(key, 0) or 0)
        last = self.last
        if last is None:
            return 0
        return int(getattr(last, {"peers_connected": "peers"}.get(key, key), 0))

    def media(self) -> dict[str, MediaFigures]:
        """Bytes per media type: from the result once there is one, else from the last tick."""
        if self.result is not None:
            return MediaFigures.from_json(self.result.get("media") or {})
        last = self.last
        return dict(last.media) if last is not None else {}


@attrs.frozen(kw_only=True)
class ViewerFigures:
    """One viewer's figures over all its sessions (or the swarm's total, ``viewer`` None)."""

    viewer: int | None
    sessions: int
    online: int
    """Sessions running now (0 or 1 for a viewer)."""
    state: str
    http_bytes: int
    p2p_bytes: int
    p2p_uploaded_bytes: int
    peers: int
    """Peers connected now (the total: the mean over online viewers, rounded)."""
    stalls: int
    rebuffer_time: float
    buffer: float | None
    """Seconds buffered now (None: offline; the total: the mean over online viewers)."""
    live_edge_distance: float | None
    startup_time: float | None
    """The first session's startup (the total: the median over viewers)."""
    segments_played: int
    mismatches: int
    cpu_time: float
    failures: int
    rendition: str
    trackers: str = ""
    """The viewer's trackers in short, from its latest tick (the total: how many online viewers
    have a tracker connected, ``"2/3 viewers connected"``)."""
    tracker_warning: str | None = None
    """While the viewer reports that no tracker is reachable, its one-line warning (the total:
    set when every online viewer that reported says so)."""
    media: Mapping[str, MediaFigures] = attrs.field(factory=dict)
    """Bytes per media type (``"video"``, and ``"audio"`` with a separate audio rendition); the
    totals above add them up."""
    upload_control_samples: int = 0
    """Round-trip samples the delay-based upload control took, over all sessions (and viewers)."""
    upload_control_cuts: int = 0
    """Times it cut the upload rate for a growing queue on the uplink, over all sessions."""

    @property
    def total_bytes(self) -> int:
        return self.http_bytes + self.p2p_bytes

    @property
    def p2p_ratio(self) -> float:
        return self.p2p_bytes / self.total_bytes if self.total_bytes else 0.0

    def to_json(self) -> dict[str, Any]:
        data = attrs.asdict(self)
        data["p2p_ratio"] = round(self.p2p_ratio, 4)
        data["media"] = {
            kind: {**attrs.asdict(figures), "p2p_ratio": round(figures.p2p_ratio, 4)}
            for kind, figures in self.media.items()
        }
        for key in ("rebuffer_time", "buffer", "live_edge_distance", "startup_time", "cpu_time"):
            if data[key] is not None:
                data[key] = round(data[key], 3)
        return data


@attrs.frozen(kw_only=True)
class TimelinePoint:
    """The swarm's cumulative downloads at ``t`` seconds (sessions that left keep their bytes)."""

    t: float
    http_bytes: int
    p2p_bytes: int
    online: int
    origin_bytes: int | None = None


@attrs.frozen(kw_only=True)
class SwarmResult:
    """What :meth:`SwarmRunner.run` returns."""

    url: str
    viewers: tuple[ViewerFigures, ...]
    total: ViewerFigures
    sessions: tuple[SessionRun, ...]
    timeline: tuple[TimelinePoint, ...]
    buffers: dict[int, list[tuple[float, float]]]
    """Per viewer, (t, seconds buffered) from every tick; NaN between sessions."""
    wall_time: float
    runner_cpu_time: float
    """CPU seconds of the runner's process (with the origin and tracker when they run in it)."""
    stopped_early: bool
    process_cpu_time: float | None = None
    """CPU seconds of the viewer processes (or pools), start-up and shutdown included (None where
    the OS cannot tell); ``total.cpu_time`` counts only their playback."""
    pools: int = 0
    """Pool processes the viewers ran in; 0: each session in a process of its own. In pools, each
    session's ``cpu_time`` is its equal share of its pool's CPU time."""
    pool_hosts: tuple[str, ...] = ()
    """With ``cluster``: the Ray node id each pool ran on, in pool order (empty: pools of this
    machine)."""
    cluster_cpus: float | None = None
    """With ``cluster``: the cluster's CPUs (Ray's count), which the pools' CPU time is spent on."""

    @property
    def cpu_cores(self) -> float:
        """The cores the CPU time was spent on: the cluster's with ``cluster``, else this machine's."""
        return self.cluster_cpus if self.cluster_cpus else _cpu_count()

    @property
    def cpu_time(self) -> float:
        """CPU seconds of all viewer processes and the runner."""
        viewers = self.process_cpu_time if self.process_cpu_time is not None else self.total.cpu_time
        return viewers + self.runner_cpu_time

    def to_json(self) -> dict[str, Any]:
        return {
            "url": self.url,
            "viewers": [v.to_json() for v in self.viewers],
            "total": self.total.to_json(),
            "sessions": [
                {
                    **attrs.asdict(run.session),
                    "status": run.status,
                    "error": run.error,
                    "result": run.result,
                }
                for run in self.sessions
            ],
            "timeline": [attrs.asdict(p) for p in self.timeline],
            "wall_time": round(self.wall_time, 3),
            "runner_cpu_time": round(self.runner_cpu_time, 3),
            "viewer_cpu_time": round(self.total.cpu_time, 3),
            "viewer_process_cpu_time": None
            if self.process_cpu_time is None
            else round(self.process_cpu_time, 3),
            "cpu_utilisation": round(self.cpu_time / self.wall_time / self.cpu_cores, 4)
            if self.wall_time
            else None,
            "cpu_cores": self.cpu_cores,
            "pools": self.pools,
            "pool_hosts": list(self.pool_hosts),
            "viewer_cpu_time_shared": self.pools > 0,
            "stopped_early": self.stopped_early,
        }


def _cpu_count() -> int:
    """CPU cores this process may use."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1  # pragma: no cover


def _children_cpu() -> float | None:
    """CPU seconds of the reaped child processes so far (None without the resource module)."""
    try:
        import resource
    except ImportError:  # pragma: no cover - Windows
        return None
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _median(values: Sequence[float]) -> float | None:
    ordered = sorted(values)
    if not ordered:
        return None
    middle = len(ordered) // 2
    return ordered[middle] if len(ordered) % 2 else (ordered[middle - 1] + ordered[middle]) / 2


# --------------------------------------------------------------------------------------------------
# The runner


class SwarmRunner:
    """Runs ``sessions`` of viewers built from ``template`` (a :class:`ViewerSpec`; each session gets
    its own ``duration``, ``seed`` and ``tick_interval``). ``viewer_prefix(viewer)`` is put before
    each viewer's command (``ip netns exec NAMESPACE`` on the testbed, :mod:`p2ploader.testbed`).

    ``pools``: pool processes the sessions run in (None: one per core; 0: each session in a process
    of its own, which ``viewer_prefix`` needs, as a network namespace is per process);
    ``pool_size``: sessions one pool runs at once (a session finding every pool full fails).
    ``cluster``: the address of a Ray cluster to place the pools on, spread over its nodes
    (:mod:`p2ploader.app.cluster`; ``pools`` None then means one per CPU of the cluster); None:
    pools of this machine."""

    def __init__(
        self,
        template: ViewerSpec,
        sessions: Sequence[Session],
        *,
        tick_interval: float = 1.0,
        sample_interval: float = 1.0,
        grace: float = 30.0,
        seed: int = 0,
        python: str = sys.executable,
        origin_bytes: Callable[[], int] | None = None,
        viewer_prefix: Callable[[int], Sequence[str]] | None = None,
        pools: int | None = None,
        pool_size: int = DEFAULT_MAX_SESSIONS,
        cluster: str | None = None,
    ) -> None:
        if pools is not None and pools < 0:
            raise ValueError("pools must be >= 0 (0: a process per viewer)")
        if pools and viewer_prefix is not None:
            raise ValueError("viewer_prefix needs a process per viewer (pools=0)")
        if pool_size < 1:
            raise ValueError("pool_size must be >= 1")
        if cluster is not None and (pools == 0 or viewer_prefix is not None):
            raise ValueError("cluster places pools: it needs pools (not a process per viewer)")
        self.cluster = cluster
        self.cluster_cpus: float | None = None
        """With ``cluster``: the cluster's CPUs, as Ray counted them when the run joined it."""
        self.template = template
        self.viewer_prefix = viewer_prefix
        self.pools = (0 if viewer_prefix is not None else _cpu_count()) if pools is None else pools
        self._pools_given = pools is not None
        self.pool_size = pool_size
        self.runs = [SessionRun(session=s) for s in sessions]
        self.viewer_count = max((s.viewer for s in sessions), default=-1) + 1
        self.duration = max((s.end for s in sessions), default=0.0)
        self.tick_interval = tick_interval
        self.sample_interval = sample_interval
        self.grace = grace
        self.seed = seed
        self.python = python
        self.origin_bytes = origin_bytes
        self.timeline: list[TimelinePoint] = []
        self._t0: float | None = None
        self._stopping = asyncio.Event()
        self._procs: dict[int, asyncio.subprocess.Process] = {}
        self._pools: list[PoolClient] = []
        self._pool_error: str | None = None

    # -- state for the views -----------------------------------------------------------------

    @property
    def elapsed(self) -> float:
        """Seconds since :meth:`run` started (0 before)."""
        return 0.0 if self._t0 is None else time.monotonic() - self._t0

    @property
    def stopping(self) -> bool:
        return self._stopping.is_set()

    @property
    def pids(self) -> list[int]:
        """The process ids of the pools, or of the viewer processes, running now (to read their
        memory or CPU time from the OS)."""
        pools = [pool.pid for pool in self._pools if pool.alive and pool.local]
        return pools + [proc.pid for proc in self._procs.values() if proc.returncode is None]

    def figures(self, viewer: int) -> ViewerFigures:
        """Viewer ``viewer``'s figures now (summed over its sessions)."""
        runs = [r for r in self.runs if r.session.viewer == viewer]
        started = [r for r in runs if r.started_at is not None]
        current = next((r for r in reversed(started) if r.online), None)
        latest = current or (started[-1] if started else None)
        last = current.last if current is not None else None
        if current is not None:
            state = last.state if last is not None else "joining"
        elif latest is None:
            state = "waiting"
        elif any(r.status == "waiting" for r in runs) and not self.stopping:
            state = "away"
        elif latest.status == "failed":
            state = "failed"
        elif self.stopping:
            state = "stopped"
        else:
            state = "done" if latest.session.end >= self.duration else "left"
        first_result = next((r.result for r in started if r.result is not None), None)
        latest_result = (latest.result if latest is not None else None) or {}
        return ViewerFigures(
            viewer=viewer,
            sessions=len(started),
            online=1 if current is not None else 0,
            state=state,
            http_bytes=sum(r.figure("http_bytes") for r in started),
            p2p_bytes=sum(r.figure("p2p_bytes") for r in started),
            p2p_uploaded_bytes=sum(r.figure("p2p_uploaded_bytes") for r in started),
            peers=last.peers if last is not None else 0,
            stalls=sum(r.figure("stalls") for r in started),
            rebuffer_time=sum(float((r.result or {}).get("rebuffer_time", 0.0)) for r in started),
            buffer=last.buffer if last is not None else None,
            live_edge_distance=last.live_edge_distance if last is not None else None,
            startup_time=None if first_result is None else first_result.get("startup_time"),
            segments_played=sum(r.figure("segments_played") for r in started),
            mismatches=sum(r.figure("mismatches") for r in started),
            cpu_time=sum(float((r.result or {}).get("cpu_time", 0.0)) for r in started),
            failures=sum(1 for r in started if r.status == "failed"),
            rendition=(last.rendition if last is not None else "")
            or str((latest.result or {}).get("rendition", "") if latest is not None else ""),
            # Online: the latest tick; offline: what its latest session reported at the end.
            trackers=last.trackers if last is not None else str(latest_result.get("trackers") or ""),
            tracker_warning=(
                last.tracker_warning
                if last is not None
                else _optional_str(latest_result.get("tracker_warning"))
            ),
            media=MediaFigures.add(r.media() for r in started),
            upload_control_samples=sum(_control_figure(r.result, "samples") for r in started),
            upload_control_cuts=sum(_control_figure(r.result, "cuts") for r in started),
        )

    def all_figures(self) -> list[ViewerFigures]:
        return [self.figures(v) for v in range(self.viewer_count)]

    @staticmethod
    def total(rows: Sequence[ViewerFigures]) -> ViewerFigures:
        """The swarm's total of ``rows``."""
        buffers = [r.buffer for r in rows if r.online and r.buffer is not None]
        edges = [r.live_edge_distance for r in rows if r.online and r.live_edge_distance is not None]
        startups = [r.startup_time for r in rows if r.startup_time is not None]
        online = sum(r.online for r in rows)
        return ViewerFigures(
            viewer=None,
            sessions=sum(r.sessions for r in rows),
            online=online,
            state=f"{online}/{len(rows)} online",
            http_bytes=sum(r.http_bytes for r in rows),
            p2p_bytes=sum(r.p2p_bytes for r in rows),
            p2p_uploaded_bytes=sum(r.p2p_uploaded_bytes for r in rows),
            peers=round(sum(r.peers for r in rows if r.online) / online) if online else 0,
            stalls=sum(r.stalls for r in rows),
            rebuffer_time=sum(r.rebuffer_time for r in rows),
            buffer=sum(buffers) / len(buffers) if buffers else None,
            live_edge_distance=sum(edges) / len(edges) if edges else None,
            startup_time=_median(startups),
            segments_played=sum(r.segments_played for r in rows),
            mismatches=sum(r.mismatches for r in rows),
            cpu_time=sum(r.cpu_time for r in rows),
            failures=sum(r.failures for r in rows),
            rendition="",
            trackers=_trackers_total(rows),
            tracker_warning=_warning_total(rows),
            media=MediaFigures.add(r.media for r in rows),
            upload_control_samples=sum(r.upload_control_samples for r in rows),
            upload_control_cuts=sum(r.upload_control_cuts for r in rows),
        )

    def buffers(self) -> dict[int, list[tuple[float, float]]]:
        """Per viewer, (t, buffer) points from every tick, with a NaN gap between sessions."""
        out: dict[int, list[tuple[float, float]]] = {v: [] for v in range(self.viewer_count)}
        for run in sorted(self.runs, key=lambda r: (r.session.viewer, r.session.start)):
            points = out[run.session.viewer]
            if points and run.ticks:
                points.append((run.ticks[0].t, math.nan))
            points.extend((tick.t, tick.buffer) for tick in run.ticks)
        return out

    # -- running -------------------------------------------------------------------------------

    def stop(self) -> None:
        """End the run early: no more joins, every running viewer gets SIGTERM (its pool does) and
        still reports."""
        if self._stopping.is_set():
            return
        self._stopping.set()
        for proc in list(self._procs.values()):
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
        for pool in self._pools:
            pool.terminate()

    def _kill(self) -> None:
        """SIGKILL every viewer process and pool."""
        for proc in list(self._procs.values()):
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
        for pool in self._pools:
            pool.kill()

    async def run(
        self,
        *,
        on_update: Callable[[], None] | None = None,
        update_interval: float = 0.5,
        handle_sigint: bool = False,
    ) -> SwarmResult:
        """Run every session; call ``on_update`` every ``update_interval`` seconds. With
        ``handle_sigint``, a first Ctrl-C calls :meth:`stop`, a second one kills the viewers."""
        loop = asyncio.get_running_loop()
        self._t0 = time.monotonic()
        cpu0 = time.process_time()
        children0 = _children_cpu()
        interrupts = 0

        def on_sigint() -> None:
            nonlocal interrupts
            interrupts += 1
            if interrupts == 1:
                self.stop()
            else:
                self._kill()

        if handle_sigint:
            try:
                loop.add_signal_handler(signal.SIGINT, on_sigint)
            except (NotImplementedError, RuntimeError, ValueError):
                handle_sigint = False
        everything: asyncio.Future[list[None]] | None = None
        try:
            if self.cluster is not None and self.runs:
                await self._start_cluster_pools()
                self._t0 = time.monotonic()  # as below: the schedule starts once pools are ready
            elif self.pools and self.runs:
                await self._start_pools(min(self.pools, len(self.runs)))
                self._t0 = time.monotonic()  # the schedule starts once the pools can take sessions
            sessions = [loop.create_task(self._run_session(index)) for index in range(len(self.runs))]
            everything = asyncio.gather(*sessions)
            next_sample = 0.0
            while True:
                done = everything.done()
                if self.elapsed >= next_sample or done:
                    self._sample()
                    next_sample += self.sample_interval
                if on_update is not None:
                    on_update()
                if done:
                    break
                await asyncio.wait({everything}, timeout=update_interval)
            everything.result()  # re-raise a bug in a session task
        finally:
            if everything is not None and not everything.done():
                self.stop()
                self._kill()
                everything.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await everything
            # Every pool reaped before the children's CPU time is read.
            await asyncio.gather(*(pool.close() for pool in self._pools))
            if handle_sigint:
                loop.remove_signal_handler(signal.SIGINT)
        rows = self.all_figures()
        children1 = _children_cpu()
        process_cpu = None if children0 is None or children1 is None else children1 - children0
        if self.cluster is not None:  # the pools ran elsewhere: each actor counted its own
            remote = [pool.cpu_time for pool in self._pools]
            process_cpu = None if None in remote or not remote else sum(c for c in remote if c is not None)
        return SwarmResult(
            url=self.template.url,
            viewers=tuple(rows),
            total=self.total(rows),
            sessions=tuple(self.runs),
            timeline=tuple(self.timeline),
            buffers=self.buffers(),
            wall_time=self.elapsed,
            runner_cpu_time=time.process_time() - cpu0,
            stopped_early=self.stopping,
            process_cpu_time=process_cpu,
            pools=len(self._pools),
            pool_hosts=tuple(getattr(pool, "node_id", "") for pool in self._pools if not pool.local),
            cluster_cpus=self.cluster_cpus,
        )

    async def _start_pools(self, count: int) -> None:
        for _ in range(count):
            try:
                pool = await PoolProcess.start(
                    python=self.python, max_sessions=self.pool_size, start_new_session=os.name == "posix"
                )
            except OSError as exc:  # every session then fails with this reason
                self._pool_error = f"cannot start a viewer pool: {exc}"
                break
            self._pools.append(pool)
        # Each pool imports the loader first (seconds on a busy machine); a pool that ends before
        # it is ready fails the sessions sent to it, with its status and stderr.
        await asyncio.gather(*(pool.ready() for pool in self._pools))

    async def _start_cluster_pools(self) -> None:
        """Place the pools on the Ray cluster (``self.cluster``), spread over its nodes. A pool that
        cannot be placed (an error, or no free CPU within :data:`~p2ploader.app.cluster.PLACE_TIMEOUT`)
        is the reason every session fails when none could be; those placed are kept (and closed)."""
        from p2ploader.app.cluster import RayPool, connect

        assert self.cluster is not None
        try:
            resources = await asyncio.to_thread(connect, self.cluster)
        except P2PLoaderError:
            raise
        except Exception as exc:  # Ray's errors: every session then fails with this reason
            self._pool_error = f"cannot join the cluster {self.cluster}: {exc}"
            return
        self.cluster_cpus = resources.get("CPU")
        count = self.pools if self._pools_given else max(1, int(resources.get("CPU", 1)))
        count = min(count, len(self.runs))
        started = await asyncio.gather(
            *(RayPool.start(max_sessions=self.pool_size) for _ in range(count)), return_exceptions=True
        )
        for outcome in started:
            if isinstance(outcome, BaseException):
                self._pool_error = f"cannot place a viewer pool on the cluster {self.cluster}: {outcome}"
                logger.warning("%s", self._pool_error)
            else:
                self._pools.append(outcome)
        await asyncio.gather(*(pool.ready() for pool in self._pools))

    def _sample(self) -> None:
        started = [r for r in self.runs if r.started_at is not None]
        self.timeline.append(
            TimelinePoint(
                t=round(self.elapsed, 3),
                http_bytes=sum(r.figure("http_bytes") for r in started),
                p2p_bytes=sum(r.figure("p2p_bytes") for r in started),
                online=sum(1 for r in started if r.online),
                origin_bytes=self.origin_bytes() if self.origin_bytes is not None else None,
            )
        )

    def _spec(self, session: Session) -> ViewerSpec:
        return attrs.evolve(
            self.template,
            duration=session.duration,
            seed=self.seed * 1000 + session.viewer * 50 + session.number,
            tick_interval=self.tick_interval,
        )

    async def _run_session(self, index: int) -> None:
        run = self.runs[index]
        session = run.session
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), timeout=max(0.0, session.start - self.elapsed))
        if self._stopping.is_set():
            run.status = "cancelled"
            return
        spec = self._spec(session)
        run.status = "starting"
        run.started_at = self.elapsed
        if self._pool_error is not None and not self._pools:
            run.status = "failed"
            run.error = self._pool_error
        elif self._pools:
            await self._run_in_pool(index, run, spec)
        else:
            await self._run_in_process(index, run, spec)
        run.ended_at = self.elapsed
        if run.status not in ("starting", "playing"):
            return
        if run.result is not None and run.error is None:
            run.status = "done"
        elif self._stopping.is_set() and run.error is None:
            run.status = "cancelled"  # stopped before it could report
        else:
            run.status = "failed"
            if run.error is None:
                run.error = "ended without a result"

    async def _run_in_process(self, index: int, run: SessionRun, spec: ViewerSpec) -> None:
        session = run.session
        try:
            proc = await start_viewer_process(
                spec,
                python=self.python,
                prefix=self.viewer_prefix(session.viewer) if self.viewer_prefix is not None else (),
                stdin=asyncio.subprocess.DEVNULL,
                start_new_session=os.name == "posix",
            )
        except OSError as exc:
            run.status = "failed"
            run.error = f"cannot start a viewer: {exc}"
            return
        run.pid = proc.pid
        self._procs[index] = proc
        if self._stopping.is_set():  # stop() came while the process was being created
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
        stderr_tail: collections.deque[str] = collections.deque(maxlen=40)
        try:
            assert proc.stdout is not None and proc.stderr is not None
            readers = asyncio.gather(self._read_stdout(run, proc.stdout), _drain(proc.stderr, stderr_tail))
            try:
                await asyncio.wait_for(asyncio.shield(readers), timeout=session.duration + self.grace)
            except TimeoutError:
                logger.warning("viewer %d overran its session; terminating it", session.viewer)
                await _terminate(proc)
                await readers
            code = await proc.wait()
        finally:
            self._procs.pop(index, None)
            if proc.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                await proc.wait()
        if code != 0 and run.error is None and not self._stopping.is_set():
            tail = "".join(stderr_tail).strip()
            run.error = f"exit status {code}" + (f": {tail[-600:]}" if tail else "")

    async def _run_in_pool(self, index: int, run: SessionRun, spec: ViewerSpec) -> None:
        session = run.session
        live = [(n, pool) for n, pool in enumerate(self._pools) if pool.alive]
        number, pool = min(live, key=lambda item: item[1].running) if live else (0, self._pools[0])
        if pool.running >= self.pool_size:
            run.status = "failed"
            run.error = f"every pool is full ({self.pool_size} sessions each)"
            return
        key = str(index)
        run.pid, run.pool = pool.pid, number
        lines = pool.open(key, spec)
        if self._stopping.is_set():  # stop() came while the session was being started
            pool.stop(key)
        reader = asyncio.ensure_future(self._read_lines(run, lines))
        try:
            try:
                await asyncio.wait_for(asyncio.shield(reader), timeout=session.duration + self.grace)
            except TimeoutError:
                logger.warning("viewer %d overran its session; stopping it", session.viewer)
                # Stop, then cancel its task, then give up on it (the pool's loop may be stuck).
                for action in (pool.stop, pool.cancel):
                    action(key)
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(asyncio.shield(reader), timeout=5.0)
                    if reader.done():
                        break
                if not reader.done():
                    run.error = "its pool did not end it"
        finally:
            pool.forget(key)
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reader

    async def _read_lines(self, run: SessionRun, lines: asyncio.Queue[dict[str, Any]]) -> None:
        """Take a pool session's lines until its last one."""
        while True:
            line = await lines.get()
            self._take_line(run, line)
            if line.get("type") in ("result", "error", "gone"):
                if line.get("type") == "gone" and not (self._stopping.is_set() and run.error is None):
                    run.error = str(line.get("error"))
                return

    async def _read_stdout(self, run: SessionRun, stream: asyncio.StreamReader) -> None:
        async for raw in stream:
            try:
                line = json.loads(raw)
            except ValueError:
                continue
            if isinstance(line, dict):
                self._take_line(run, line)

    def _take_line(self, run: SessionRun, line: dict[str, Any]) -> None:
        """Record one tick, result or error line of ``run``."""
        kind = line.get("type")
        if kind == "tick":
            run.ticks.append(ViewerTick.from_line(line, t=round(self.elapsed, 3)))
            run.status = "playing"
        elif kind == "result":
            run.result = line
        elif kind == "error":
            run.error = str(line.get("error"))


async def _drain(stream: asyncio.StreamReader, tail: collections.deque[str]) -> None:
    """Read a viewer's stderr (so it never blocks on a full pipe), keeping the last lines."""
    async for raw in stream:
        tail.append(raw.decode("utf-8", "replace"))


async def _terminate(proc: asyncio.subprocess.Process) -> None:
    """SIGTERM, and SIGKILL when that did not end it within 5 seconds."""
    with contextlib.suppress(ProcessLookupError):
        proc.send_signal(signal.SIGTERM)
    try:
        await asyncio.wait_for(proc.wait(), timeout=5.0)
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        await proc.wait()


def _trackers_total(rows: Sequence[ViewerFigures]) -> str:
    """How many online viewers that reported have a tracker connected."""
    reporting = [r for r in rows if r.online and r.trackers]
    if not reporting:
        return ""
    connected = sum(1 for r in reporting if "connected" in r.trackers)
    return f"{connected}/{len(reporting)} viewers connected"


def _warning_total(rows: Sequence[ViewerFigures]) -> str | None:
    """The first viewer's warning when every online viewer that reported has one: the swarm as a
    whole cannot reach a tracker (one viewer alone failing is in its row)."""
    reporting = [r for r in rows if r.online and r.trackers]
    warnings = [r.tracker_warning for r in reporting]
    if not reporting or any(w is None for w in warnings):
        return None
    return warnings[0]
