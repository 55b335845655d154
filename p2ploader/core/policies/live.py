"""``p2ploader-live``: offload at low live latency by electing a few seeders per segment.

Theory of operation
-------------------
At the latency viewers expect (3 segments behind live), P2P Media Loader 0.6 and 2.2 load nearly
every new segment over HTTP: it becomes "required" (0.6) or "high demand" (2.2) before any peer has
it. This policy splits the work so that about ``seeders_per_segment`` viewers fetch each new segment
from the origin the moment it appears, and everybody else takes it from peers:

* **Critical window, strictly HTTP.** A missing segment needed within ``http_lead_time`` seconds
  (measured from the playhead, 1 s; ``slow_origin_lead_time``, 3 s, until the origin proves fast,
  and at least ``http_lead_factor`` times the measured download time) goes to HTTP at once,
  cutting over a P2P download of it (keeping its bytes with ``http_download_ranges``) and
  preempting a later HTTP download when the slots are full. Playback never waits on a peer; with
  no peers at all this is a plain HTTP player. With a fast origin, an election (below) waits
  while a missing earlier segment is so close that, sharing the downlink with the seeding fetch,
  its own HTTP fetch would take too long (the window computed for one more download in flight).
* **Seeder election by rendezvous hashing.** Every viewer scores each (segment, peer id) pair with
  the same hash, so viewers that know the same peers agree on the segment's ranking without
  talking. A viewer fetches a new segment that no peer holds or loads when its rank among its
  neighbourhood is below the neighbourhood's quota: ``seeders_per_segment`` when the viewer knows
  the whole swarm, at least ``neighbourhood_share`` in a big swarm's partial overlay. Peers not
  connected yet count by expectation (a joiner is not elected for everything), and only segments
  new to the swarm are elected at once: one already in the playlist a viewer starts with (the
  live edge's segment included) most likely had its seeders before it came, and waits 2 s for the
  peers being connected to announce it. The seeder announces the segment as loading over HTTP at
  once, which keeps the others from fetching it.
  **Fallback timer:** when the elected viewers are slow or gone, the next in rank fetches it a
  segment duration plus ``seeder_fallback_delay`` after the segment appeared, the one after that a
  delay later. A viewer whose uploads proved slow (``seeder_min_upload_speed``) does not volunteer.
* **Cut-through.** With ``cut_through`` (on by default) a peer that announced a segment as loading
  over HTTP counts as a holder and is asked like one: a p2ploader peer sends the segment while it
  arrives from the origin, so a seeder's copy spreads from its first bytes. A P2P Media Loader peer
  answers "absent", and is not asked for that segment again until its next announcement.
* **Everything else from peers**, from an idle peer that announced it loaded, up to
  ``simultaneous_p2p_downloads`` at a time, preferring the peer that served us fastest lately (a
  peer not measured yet counts as fastest, so every peer is tried), once the segment is needed
  within ``p2p_horizon`` seconds or the player asked for it. Far behind live every segment of the
  queue is long published; prefetching all of it at once (a viewer joining 19 segments behind
  asks for 95 s of media) makes the swarm's uplinks carry everybody's far segments while the near
  ones wait behind them, and loads media a viewer who leaves never plays.
* **Keeping pace.** A P2P download whose pace so far (judged after ``pace_patience``) would finish
  it after the segment enters the critical window moves, with the bytes it has, to an idle holder
  expected to be faster: the new peer is asked for the rest with the protocol's byte offset. A
  download that has received nothing yet is left alone: its peer is still sending to others, and
  a move would only join another queue.
* **Slow uploaders step aside near the live edge.** A viewer whose uploads proved slower than
  ``uploader_min_speed`` answers most requests for the newest ``slow_uploader_horizon`` segments
  "absent" (a standard reply), so that its neighbours turn to faster holders instead of waiting
  past the segment's deadline; it still serves ``slow_uploader_probe`` of them, which measures it
  again, and every request for older segments.

Wire compatibility: it sends nothing P2P Media Loader 2.x peers do not understand (announcements with
``l`` and ``p``, ordinary requests).
"""

from __future__ import annotations

import string
import zlib
from typing import TYPE_CHECKING

import attrs

from p2ploader.core.policies.base import DownloadPolicy, QueueEntry, SchedulingContext, settings_from_mapping
from p2ploader.core.policies.registry import register_policy
from p2ploader.core.segments import Segment, SegmentId
from p2ploader.errors import PolicyError

if TYPE_CHECKING:
    from p2ploader.config import LoaderConfig

__all__ = ["LivePolicy", "LivePolicySettings"]

_MASK = (1 << 64) - 1
# p2ploader's peer ids as peers see them (20 bytes in hex) begin with "-PY" in hex.
_OUR_IDS_HEX = b"-PY".hex()
_HEX_DIGITS = frozenset(string.hexdigits)
_TOLERANCE = 1e-3  # seconds
# Segment durations a fallback copy is given to spread before the critical window.
_FALLBACK_SPREAD_SEGMENTS = 2.0
# Seconds a joiner gives the peers it connects to to announce the segments it starts with.
_JOIN_GRACE = 2.0
# Times a P2P download of one segment moves to another peer before HTTP takes it over.
_MAX_MOVES = 2


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

    seeders_per_segment: float = attrs.field(default=1.0)
    """Viewers of the whole swarm that fetch a new segment from the origin at once (> 0). More is
    safer against slow or departing seeders, fewer saves origin traffic; the fallback timer covers
    a seeder that does not start."""

    neighbourhood_share: float = attrs.field(default=2.0)
    """Seeders per neighbourhood (a viewer and the peers it will be connected to) when the viewer
    knows only part of the swarm, so that every part of a big swarm's overlay has a nearby first
    copy. A viewer connected to the whole swarm uses ``seeders_per_segment`` alone."""

    seeder_fallback_delay: float = attrs.field(default=1.0)
    """The fallback timer's step (seconds): when nobody we know holds or loads a new segment one
    segment duration after it appeared in our playlist (the elected may reload its playlist that
    much later), the viewer next in rank fetches it after one more step, the one after it after
    two, and so on (the elected seeder is slow, gone, or not connected to us)."""

    http_lead_time: float = attrs.field(default=1.0)
    """Seconds: a missing segment needed within this time from the playhead goes to HTTP, once the
    origin has proved fast (see ``fast_origin_fetch_time``). Every second taken from the critical
    window is a second more for a new segment to spread peer to peer: at 3 segments behind live a
    segment has about 9 s between its publication and its deadline."""

    slow_origin_lead_time: float = attrs.field(default=3.0)
    """Seconds: the critical window's floor before the first HTTP download is measured, and while
    the origin is slow. A congested origin needs the wider window: segments that go to HTTP late
    arrive late, and a burst of them slows the origin further."""

    fast_origin_fetch_time: float = attrs.field(default=0.1)
    """Seconds of HTTP download per second of media (``SchedulingContext.http_fetch_time``) up to
    which the origin counts as fast, and the critical window narrows to ``http_lead_time`` (0.1: a
    5 s segment in half a second)."""

    http_lead_factor: float = attrs.field(default=2.0)
    """The critical window widens for a slow origin: it is at least this many times the measured
    HTTP download time of the segment (``SchedulingContext.http_fetch_time`` x its duration), so that
    a segment still arrives over HTTP in time when the origin is loaded or far away. Not much more
    than 2: a wide window sends more viewers to a congested origin at once, which slows it further
    (at 3, a swarm starting against an origin at 1.1 x demand could end up loading nearly
    everything over HTTP, and stall)."""

    seeder_min_upload_speed: float = attrs.field(default=4.0)
    """A viewer whose measured upload speed (media seconds uploaded per second) is below this does
    not volunteer as a seeder: everything downstream of a seeder waits for its uplink. A viewer
    that has not uploaded yet may volunteer. 0 turns the rule off."""

    uploader_min_speed: float = attrs.field(default=3.0)
    """A viewer whose measured upload speed (media seconds per second) is below this answers most
    requests "absent", so that requesters turn to faster holders: a slow upload holds its
    requester past the segment's deadline, which then comes over HTTP anyway. 0 turns it off."""

    slow_uploader_horizon: float = attrs.field(default=6.0)
    """Segments from the playlist's end (the live edge) within which a slow uploader steps aside:
    requests for older segments come from viewers further behind live, who can wait for it."""

    slow_uploader_probe: float = attrs.field(default=0.1)
    """Share of requests a slow uploader still serves, so that its speed is measured again (links
    get faster)."""

    pace_patience: float = attrs.field(default=0.5)
    """Seconds a P2P download runs before its pace is judged. One whose pace would finish it after
    the segment enters the critical window moves, with the bytes it has, to an idle holder expected
    to be faster (a peer not measured yet counting as fast), at most twice per segment. 0 turns it
    off."""

    p2p_horizon: float = attrs.field(default=30.0)
    """Seconds ahead of the playhead within which a prefetched segment held by peers is asked for
    (more than the critical window's ``http_lead_time`` and ``slow_origin_lead_time``, or a
    segment would reach the critical window before the horizon and never come from a peer; a
    large value such as 1e9: the whole queue). A segment the player asked for is asked for at
    once, wherever it is. Close to live the queue is shorter than this and nothing changes; far
    behind live it keeps the P2P downloads on the segments needed soonest (docs/performance.md,
    the testbed 19 segments behind live). Elections are not held back: a seeder still fetches a
    new segment when it appears."""

    cut_through: bool = attrs.field(default=True)
    """Ask peers that announced a segment as loading over HTTP for it, as well as those holding it:
    a p2ploader peer sends a segment while it arrives from the origin (cut-through), so the first
    copies spread without waiting for whole downloads. A peer that cannot (P2P Media Loader) answers
    "absent" and is not asked for that segment again until its next announcement."""

    def __attrs_post_init__(self) -> None:
        if self.seeders_per_segment <= 0 or self.seeder_fallback_delay <= 0:
            raise PolicyError(
                "seeders_per_segment and seeder_fallback_delay must be > 0", policy=LivePolicy.name
            )
        if min(self.http_lead_time, self.slow_origin_lead_time, self.fast_origin_fetch_time) < 0:
            raise PolicyError(
                "http_lead_time, slow_origin_lead_time and fast_origin_fetch_time must be >= 0",
                policy=LivePolicy.name,
            )
        if self.pace_patience < 0:
            raise PolicyError("pace_patience must be >= 0", policy=LivePolicy.name)
        # Also refuses NaN. At or within the critical window, a segment would turn critical before
        # it entered the horizon: P2P off without a word.
        if not self.p2p_horizon > max(self.http_lead_time, self.slow_origin_lead_time):
            raise PolicyError(
                f"p2p_horizon must be more than http_lead_time and slow_origin_lead_time "
                f"(got {self.p2p_horizon}; a large value such as 1e9 means no horizon)",
                policy=LivePolicy.name,
            )
        if not 0.0 <= self.slow_uploader_probe <= 1.0:
            raise PolicyError("slow_uploader_probe must be between 0 and 1", policy=LivePolicy.name)


@register_policy
class LivePolicy(DownloadPolicy):
    """Elected seeders over HTTP, everybody else over P2P, the critical window over HTTP."""

    name = "p2ploader-live"

    def __init__(self, config: LoaderConfig, settings: LivePolicySettings | None = None) -> None:
        super().__init__(config)
        self.settings = settings if settings is not None else LivePolicySettings()
        self._own_key: int | None = None
        self._peer_keys: dict[str, int] = {}
        # When each queued segment was first seen (the fallback timer counts from there).
        self._first_seen: dict[SegmentId, float] = {}
        # When we first had something to schedule, and the segments queued then: published before
        # we came, so the swarm had its seeders for them; never elected at once.
        self._arrived: float | None = None
        self._seen_late: set[SegmentId] = set()
        # From the tracker; None until its first answer (we have not joined the swarm yet).
        self._swarm_size: int | None = None
        # The playhead moves in real time between reports: (position, time of the report).
        self._anchor: tuple[float, float] | None = None
        self._wake: float | None = None
        # P2P downloads moved to another peer, by segment (bounded).
        self._moves: dict[SegmentId, int] = {}

    @classmethod
    def from_config(cls, config: LoaderConfig) -> LivePolicy:
        """The policy with its entry in ``config.policy_settings`` as its :class:`LivePolicySettings`."""
        own = config.policy_settings.get(cls.name, {})
        return cls(config, settings_from_mapping(LivePolicySettings, own, policy=cls.name))

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

    def swarm_estimate(self, ctx: SchedulingContext) -> int:
        """Viewers in the swarm, us included: the tracker's count, or the peers we know if more.
        Before the tracker answers the swarm is unknown, not empty: we count on a full
        neighbourhood, or a viewer starting up would elect itself for every segment its future
        peers hold."""
        known = self._swarm_size if self._swarm_size is not None else self.config.max_peers + 1
        return max(known, ctx.connected_peers + 1)

    def _peer_key(self, peer_id: str) -> int:
        key = self._peer_keys.get(peer_id)
        if key is None:
            if len(self._peer_keys) > 4096:  # bounded: peers come and go in a long session
                self._peer_keys.clear()
            key = self._peer_keys[peer_id] = _mix(zlib.crc32(peer_id.encode()))
        return key

    @staticmethod
    def takes_part_in_elections(peer_id: str) -> bool:
        """Whether a peer runs this election too: another p2ploader (its 20-byte id in hex begins
        with ``-PY``), or a peer named otherwise (the simulator's viewers). Browsers running P2P
        Media Loader fetch by their own rules: ranking one first would leave the segment to the
        fallback timer."""
        if len(peer_id) == 40 and _HEX_DIGITS.issuperset(peer_id):
            return peer_id.startswith(_OUR_IDS_HEX)
        return True

    def seeder_rank(
        self, segment_id: SegmentId, ctx: SchedulingContext, *, swarm: int
    ) -> tuple[float, float]:
        """``(rank, quota)`` of this viewer for fetching ``segment_id`` first: how many viewers of
        its neighbourhood rank before it (peers not connected yet counted by expectation), and how
        many the neighbourhood should have. Elected at once when ``rank < quota``."""
        if self._own_key is None:
            own = ctx.peer_id if ctx.peer_id is not None else f"anonymous-{ctx.rng.getrandbits(64)}"
            self._own_key = self._peer_key(own)
        segment_key = _mix(segment_id.sequence ^ (zlib.crc32(segment_id.rendition.encode()) << 32))
        mine = _mix(segment_key ^ self._own_key)
        connected = ctx.connected_peer_ids()
        peers = [p for p in connected if self.takes_part_in_elections(p)]
        above = sum(1 for p in peers if _mix(segment_key ^ self._peer_key(p)) > mine)
        # The neighbourhood a viewer will have, not the one it has: a viewer that just joined knows
        # few peers yet, and would otherwise rank first for nearly every segment while its future
        # neighbours already hold them. Each unknown peer ranks before us with probability
        # 1 - (our score's quantile).
        # Connected peers that do not take part (browsers) count neither way.
        others = len(connected) - len(peers)
        electors = max(swarm - others, len(peers) + 1)  # us included
        expected = max(len(peers), min(self.config.max_peers - others, electors - 1))
        rank = above + (expected - len(peers)) * (1.0 - mine / float(1 << 64))
        settings = self.settings
        if expected + 1 >= electors:
            quota = settings.seeders_per_segment
        else:
            quota = max(
                settings.seeders_per_segment * (expected + 1) / electors, settings.neighbourhood_share
            )
        return rank, quota

    def schedule(self, ctx: SchedulingContext, *, now: float) -> None:
        cfg = self.config
        cut_through = self.settings.cut_through
        horizon = self.settings.p2p_horizon
        queue = ctx.queue
        if not queue:
            return
        first_seen = self._first_seen
        if len(first_seen) > 2 * len(queue) + 16:
            queued = {entry.id for entry in queue}
            self._first_seen = first_seen = {k: v for k, v in first_seen.items() if k in queued}
            self._seen_late &= queued
        if self._arrived is None:
            self._arrived = now
        arrived = self._arrived
        position = self._playhead(ctx, now)
        swarm = self.swarm_estimate(ctx)
        fetch_time = ctx.http_fetch_time
        self._wake = None
        defer_elections = False
        downlink_bound = fetch_time is not None and fetch_time <= self.settings.fast_origin_fetch_time
        for k, entry in enumerate(queue):
            sid = entry.id
            seen = first_seen.get(sid)
            if seen is None:
                seen = first_seen[sid] = now
                # A segment entering our queue later is new to the swarm: it enters the queues of
                # the viewers at our latency at about the same time.
                if now - arrived <= _TOLERANCE:
                    self._seen_late.add(sid)
            if ctx.is_cached(sid) or ctx.is_http_loading(sid):
                continue
            lead = self.critical_window(fetch_time, entry.segment.duration)
            # The tolerance keeps a rounding error of the extrapolated playhead from arming a
            # wake-up a femtosecond away, again and again at one instant.
            critical = entry.segment.start - position <= lead + _TOLERANCE or entry.priority == 0
            enters = now + (entry.segment.start - position - lead)  # the critical window
            if not critical:
                # Wake up when it enters the critical window, in case nothing else happens first.
                self._wake = enters if self._wake is None else min(self._wake, enters)
            http_ok = not ctx.http_failed_recently(sid, now=now)
            if critical and http_ok:
                if ctx.http_active >= cfg.simultaneous_http_downloads:
                    self._abort_last_http_after(ctx, k)
                if ctx.http_active < cfg.simultaneous_http_downloads:
                    ctx.start_http(sid, now=now, continue_p2p=True)
                    continue
            # A seeding fetch started now would share the downlink with this segment's fetch should
            # it go to HTTP: while it would then be late, seeding waits (a later segment's
            # election must not stall an earlier one). Only with a fast origin: the downlink bounds
            # a fetch then, and the critical window is narrow. A slow origin gives each fetch its
            # own share, and waiting would only delay the swarm's first copies, sending more
            # viewers to the congested origin (a spiral: nearly everything over HTTP, and stalls).
            if downlink_bound:
                shared = self.critical_window(fetch_time, entry.segment.duration, sharing=ctx.http_active + 1)
                if entry.segment.start - position <= shared + _TOLERANCE:
                    defer_elections = True
            if ctx.is_p2p_loading(sid):
                self._keep_pace(ctx, entry, deadline=enters, now=now)
                continue
            if ctx.any_peer_has(sid, loading=cut_through):
                beyond = entry.segment.start - position - horizon
                if beyond > _TOLERANCE and not ctx.is_requested(sid):
                    # A prefetch not needed soon: asked for once it comes within the horizon.
                    due = now + beyond
                    self._wake = due if self._wake is None else min(self._wake, due)
                    continue
                if ctx.p2p_active < cfg.simultaneous_p2p_downloads:
                    self._start_p2p(ctx, entry, loading=cut_through, now=now)
                continue
            if (
                http_ok
                and ctx.http_active < cfg.simultaneous_http_downloads
                and not ctx.any_peer_knows(sid)
                # A holder that was busy when we asked still spreads it: no reason to seed it.
                and not ctx.any_peer_refused(sid)
                and not defer_elections
            ):
                self._elect(ctx, entry, seen=seen, critical_at=enters, swarm=swarm, now=now)

    def critical_window(self, fetch_time: float | None, duration: float, *, sharing: int = 0) -> float:
        """Seconds before its start within which a missing segment of ``duration`` seconds goes to
        HTTP, given the origin's measured ``fetch_time`` (seconds per media second, ``None`` before
        the first download): ``http_lead_time`` with a fast origin, ``slow_origin_lead_time``
        before it is measured or when it is slow, and never less than ``http_lead_factor`` times
        the segment's expected download time, that time multiplied by ``1 + sharing`` when
        ``sharing`` other HTTP downloads would share the downlink with it."""
        settings = self.settings
        if fetch_time is None:
            return settings.slow_origin_lead_time
        floor = (
            settings.http_lead_time
            if fetch_time <= settings.fast_origin_fetch_time
            else settings.slow_origin_lead_time
        )
        return max(floor, settings.http_lead_factor * fetch_time * duration * (1 + sharing))

    def _elect(
        self,
        ctx: SchedulingContext,
        entry: QueueEntry,
        *,
        seen: float,
        critical_at: float,
        swarm: int,
        now: float,
    ) -> None:
        """Fetch a segment nobody we know holds or loads if we are elected now, or arm the wake-up
        at which the fallback timer elects us."""
        sid = entry.id
        rank, quota = self.seeder_rank(sid, ctx, swarm=swarm)
        if rank < quota and self._uplink_fit(ctx):
            # A segment already in the playlist when we came most likely had its seeders before
            # us: the peers we are connecting to will announce it. Elected only if none
            # has after a grace period (a swarm that is itself new may not have it).
            grace_end = seen + _JOIN_GRACE
            if sid not in self._seen_late or now >= grace_end - _TOLERANCE:
                ctx.start_http(sid, now=now, continue_p2p=False)
            else:
                self._wake = grace_end if self._wake is None else min(self._wake, grace_end)
            return
        # Viewers reload the playlist at different moments, up to a segment duration apart: the
        # elected may see the segment that much later than we did. A segment needed much later
        # waits longer: a first copy elsewhere in the swarm has time to reach us (far behind live
        # an early fallback only duplicates it). Then the next in rank, one fallback delay per
        # place behind the quota.
        duration = entry.segment.duration
        places = int(max(rank - quota, 0.0)) + 1
        start = max(seen + duration, critical_at - _FALLBACK_SPREAD_SEGMENTS * duration)
        due = start + places * self.settings.seeder_fallback_delay
        if due <= now + _TOLERANCE:
            ctx.start_http(sid, now=now, continue_p2p=False)
        else:
            self._wake = due if self._wake is None else min(self._wake, due)

    def _keep_pace(self, ctx: SchedulingContext, entry: QueueEntry, *, deadline: float, now: float) -> None:
        """Move a P2P download that, at its pace so far, would still be running at ``deadline``
        (when the segment enters the critical window and HTTP takes it over) to an idle holder
        expected to be faster; or arm the wake-up at which its pace would show that, if no more
        bytes came meanwhile."""
        sid = entry.id
        progress = ctx.p2p_progress(sid)
        patience = self.settings.pace_patience
        if progress is None or patience <= 0:
            return
        moves = self._moves.get(sid, 0)
        if moves >= _MAX_MOVES:
            return
        judged_from = progress.started + patience
        fresh = progress.received - progress.resumed_from
        if progress.total is None or fresh <= 0:
            # Not a byte yet (the header is on its way, or the peer is sending to others first): no
            # pace to judge, and moving such a request only sends it to the back of another queue.
            # Look again once it has had its patience.
            if now < judged_from - _TOLERANCE:
                self._wake = judged_from if self._wake is None else min(self._wake, judged_from)
            return
        remaining = progress.total - progress.received
        elapsed = now - progress.started
        projected = now + remaining * elapsed / fresh
        if projected <= deadline + _TOLERANCE or now < judged_from - _TOLERANCE:
            # With no more bytes, the pace shows a miss at t: t + remaining * (t - started) / fresh
            # = deadline.
            t = (deadline * fresh + remaining * progress.started) / (fresh + remaining)
            t = max(t, judged_from, now + _TOLERANCE)
            self._wake = t if self._wake is None else min(self._wake, t)
            return
        if deadline - now < patience:
            return  # too close to the critical window for another peer to help: HTTP takes it over
        candidates = ctx.idle_peers_with(sid, loading=self.settings.cut_through)
        if not candidates:
            return
        peer = self.fastest_peer(ctx, candidates)
        rate = ctx.peer_throughput(peer)  # None: not measured yet, worth a try
        if rate is not None and (rate <= 0 or now + remaining / rate >= projected):
            return
        if len(self._moves) > 256:  # bounded: only segments near the playhead move
            self._moves.clear()
        self._moves[sid] = moves + 1
        ctx.move_p2p(sid, peer, now=now)

    def accepts_upload(self, ctx: SchedulingContext, segment: Segment, *, now: float) -> bool:
        settings = self.settings
        speed = ctx.upload_speed
        if speed is None or speed >= settings.uploader_min_speed:
            return True
        end = ctx.playlist_end
        if end is not None and end - segment.start > settings.slow_uploader_horizon * segment.duration:
            return True  # far behind the live edge: whoever asks has the time to wait for us
        return ctx.rng.random() < settings.slow_uploader_probe

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
    def _start_p2p(ctx: SchedulingContext, entry: QueueEntry, *, loading: bool, now: float) -> None:
        peers = ctx.idle_peers_with(entry.id, loading=loading)
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
