"""``p2ploader-live``: offload at low live latency by electing a few seeders per segment.

Theory of operation
-------------------
At the latency viewers expect (3 segments behind live), P2P Media Loader 0.6 and 2.2 load nearly
every new segment over HTTP: it becomes "required" (0.6) or "high demand" (2.2) before any peer has
it. This policy splits the work so that about ``seeders_per_segment`` viewers fetch each new segment
from the origin the moment it appears, and everybody else takes it from peers:

* **Critical window, strictly HTTP.** A missing segment needed within ``http_lead_time`` seconds
  (measured from the playhead; more when the origin proves slow, ``http_lead_factor``) goes to HTTP
  at once, cutting over a P2P download of it (keeping its
  bytes with ``http_download_ranges``) and preempting a later HTTP download when the slots are full.
  Playback never waits on a peer; with no peers at all this is a plain HTTP player.
* **Seeder election.** A segment that no peer holds or loads is fetched over HTTP right away by a
  viewer whose hash of the segment falls under ``seeders_per_segment / swarm size`` (the swarm size
  from the tracker, or the peers we know). The hash is salted per viewer from the scheduler's seeded
  random source, so the choice needs no coordination and is reproducible; the seeder announces the
  segment as loading over HTTP at once, which keeps its neighbours from electing themselves. A
  viewer whose uploads proved slow (``seeder_min_upload_speed``) does not volunteer.
* **Everything else from peers**, from an idle peer that announced it loaded, up to
  ``simultaneous_p2p_downloads`` at a time, preferring the peer that served us fastest lately (a
  peer not measured yet counts as fastest, so every peer is tried).

Wire compatibility: it sends nothing P2P Media Loader 2.x peers do not understand (announcements with
``l`` and ``p``, ordinary requests).
"""

from __future__ import annotations

import zlib
from typing import TYPE_CHECKING

import attrs

from p2ploader.core.policy import DownloadPolicy, QueueEntry, SchedulingContext, register_policy
from p2ploader.core.segments import SegmentId

if TYPE_CHECKING:
    from p2ploader.config import LoaderConfig

__all__ = ["LivePolicy", "LivePolicySettings"]

_MASK = (1 << 64) - 1
_TOLERANCE = 1e-3  # seconds


def _mix(value: int) -> int:
    """splitmix64: a fast, well-spread, deterministic 64-bit hash (Python's ``hash`` of strings is
    salted per process, which would make runs irreproducible)."""
    value = (value + 0x9E3779B97F4A7C15) & _MASK
    value = ((value ^ (value >> 30)) * 0xBF58476D1CE4E5B9) & _MASK
    value = ((value ^ (value >> 27)) * 0x94D049BB133111EB) & _MASK
    return value ^ (value >> 31)


@attrs.frozen(kw_only=True)
class LivePolicySettings:
    """Settings of the ``p2ploader-live`` policy (seconds where times)."""

    seeders_per_segment: float = attrs.field(default=2.0)
    """Expected number of viewers that fetch a new segment from the origin at once (> 0). More is
    safer against slow or departing seeders, fewer saves origin traffic."""

    neighbourhood_share: float = attrs.field(default=2.0)
    """Expected seeders per neighbourhood (a viewer and its connected peers), so that in a big swarm
    every part of the overlay has a nearby first copy; the election probability is the larger of
    ``seeders_per_segment / swarm`` and ``neighbourhood_share / (peers + 1)``."""

    http_lead_time: float = attrs.field(default=3.0)
    """Seconds: a missing segment needed within this time from the playhead goes to HTTP."""

    http_lead_factor: float = attrs.field(default=3.0)
    """The critical window widens for a slow origin: it is at least this many times the measured
    HTTP download time of the segment (``SchedulingContext.http_fetch_time`` x its duration), so that
    a segment still arrives over HTTP in time when the origin is loaded or far away."""

    seeder_min_upload_speed: float = attrs.field(default=2.0)
    """A viewer whose measured upload speed (media seconds uploaded per second) is below this does
    not volunteer as a seeder: everything downstream of a seeder waits for its uplink. A viewer
    that has not uploaded yet may volunteer. 0 turns the rule off."""

    def __attrs_post_init__(self) -> None:
        if self.seeders_per_segment <= 0 or self.http_lead_time < 0:
            raise ValueError("seeders_per_segment must be > 0 and http_lead_time >= 0")


@register_policy
class LivePolicy(DownloadPolicy):
    """Elected seeders over HTTP, everybody else over P2P, the critical window over HTTP."""

    name = "p2ploader-live"

    def __init__(self, config: LoaderConfig, settings: LivePolicySettings | None = None) -> None:
        super().__init__(config)
        self.settings = settings if settings is not None else LivePolicySettings()
        self._salt: int | None = None
        self._swarm_size = 1
        # The playhead moves in real time between reports: (position, time of the report).
        self._anchor: tuple[float, float] | None = None
        self._wake: float | None = None

    def get_timer(self) -> float | None:
        return self._wake

    def _playhead(self, ctx: SchedulingContext, now: float) -> float:
        """The playhead now, extrapolated from the last report (a playing player moves at 1x)."""
        reported = ctx.position
        if reported is None:
            return ctx.queue[0].segment.start
        if self._anchor is None or self._anchor[0] != reported:
            self._anchor = (reported, now)
        return reported + (now - self._anchor[1])

    def tracker_updated(self, *, incomplete: int, now: float) -> None:
        self._swarm_size = max(1, incomplete)

    def is_seeder(self, segment_id: SegmentId, *, swarm: int, peers: int) -> bool:
        """Whether this viewer is elected to fetch ``segment_id`` from the origin first."""
        assert self._salt is not None
        key = _mix(self._salt ^ _mix(segment_id.sequence ^ (zlib.crc32(segment_id.rendition.encode()) << 32)))
        settings = self.settings
        # The neighbourhood a viewer will have, not the one it has: a viewer that just joined knows
        # few peers yet, and would otherwise elect itself for nearly every segment while its future
        # neighbours already hold them.
        neighbourhood = max(peers, min(self.config.max_peers, swarm - 1))
        chance = max(settings.seeders_per_segment / swarm, settings.neighbourhood_share / (neighbourhood + 1))
        return key / float(1 << 64) < chance

    def schedule(self, ctx: SchedulingContext, *, now: float) -> None:
        cfg = self.config
        if self._salt is None:
            self._salt = ctx.rng.getrandbits(64)
        queue = ctx.queue
        if not queue:
            return
        position = self._playhead(ctx, now)
        swarm = max(self._swarm_size, ctx.connected_peers + 1)
        settings = self.settings
        fetch_time = ctx.http_fetch_time
        self._wake = None
        for k, entry in enumerate(queue):
            sid = entry.id
            if ctx.is_cached(sid) or ctx.is_http_loading(sid):
                continue
            lead = settings.http_lead_time
            if fetch_time is not None:
                lead = max(lead, settings.http_lead_factor * fetch_time * entry.segment.duration)
            # The tolerance keeps a rounding error of the extrapolated playhead from arming a
            # wake-up a femtosecond away, again and again at one instant.
            critical = entry.segment.start - position <= lead + _TOLERANCE or entry.priority == 0
            if not critical:
                # Wake up when it enters the critical window, in case nothing else happens first.
                enters = now + (entry.segment.start - position - lead)
                self._wake = enters if self._wake is None else min(self._wake, enters)
            http_ok = not ctx.http_failed_recently(sid, now=now)
            if critical and http_ok:
                if ctx.http_active >= cfg.simultaneous_http_downloads:
                    self._abort_last_http_after(ctx, k)
                if ctx.http_active < cfg.simultaneous_http_downloads:
                    ctx.start_http(sid, now=now, continue_p2p=True)
                    continue
            if ctx.is_p2p_loading(sid):
                continue
            if ctx.any_peer_has(sid):
                if ctx.p2p_active < cfg.simultaneous_p2p_downloads:
                    self._start_p2p(ctx, entry, now=now)
                continue
            if (
                http_ok
                and not ctx.any_peer_knows(sid)
                and ctx.http_active < cfg.simultaneous_http_downloads
                and self._uplink_fit(ctx)
                and self.is_seeder(sid, swarm=swarm, peers=ctx.connected_peers)
            ):
                ctx.start_http(sid, now=now, continue_p2p=False)

    def _uplink_fit(self, ctx: SchedulingContext) -> bool:
        speed = ctx.upload_speed
        return speed is None or speed >= self.settings.seeder_min_upload_speed

    @staticmethod
    def _abort_last_http_after(ctx: SchedulingContext, k: int) -> None:
        for entry in reversed(ctx.queue[k + 1 :]):
            if ctx.is_http_loading(entry.id):
                ctx.abort_http(entry.id)
                return

    @staticmethod
    def _start_p2p(ctx: SchedulingContext, entry: QueueEntry, *, now: float) -> None:
        peers = ctx.idle_peers_with(entry.id)
        if peers:
            ctx.start_p2p(entry.id, LivePolicy.fastest_peer(ctx, peers), now=now)

    @staticmethod
    def fastest_peer(ctx: SchedulingContext, peers: list[str]) -> str:
        """The peer expected to deliver soonest: the best measured throughput, a peer never measured
        counting as the best (so that every peer gets tried, and a new one is not starved); ties
        are broken at random."""
        rates = [ctx.peer_throughput(p) for p in peers]
        best = max((r if r is not None else float("inf")) for r in rates)
        top = [p for p, r in zip(peers, rates, strict=True) if (r if r is not None else float("inf")) == best]
        return top[0] if len(top) == 1 else ctx.rng.choice(top)
