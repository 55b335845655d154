"""P2P Media Loader 2.2.2's download policy: time windows around the playhead instead of priorities.

A second reference policy (``"p2pml-2.2"``), after ``HybridLoader.processQueue`` and
``loadRandomThroughHttp`` in p2p-media-loader-core 2.2.2 and ``utils/queue.ts`` / ``utils/stream.ts``,
so the simulator can compare it with 0.6 (``"p2pml-0.6"``, the default) on the same scenarios.

Theory of operation
-------------------
* **Flags.** A segment is *in window W* when its span ``[start, end]`` overlaps
  ``[position, position + W × playback_rate]`` (both ends inclusive, as upstream). It is
  *high-demand* in ``high_demand_time_window``, *HTTP-downloadable* in ``http_download_time_window``
  and *P2P-downloadable* in ``p2p_download_time_window`` when some connected peer also announces it
  as loaded (``l``) or as loading over HTTP (``p``). ``position`` is the last reported playhead;
  before the first report, the start of the queue's first segment.
* **The 2.2 queue** runs from the scheduler's queue start (the segment the player waits for or
  last requested) forward while segments have at least one flag. When the first has none but the
  second has some (the player asked for a segment just behind the playhead), the first counts as
  high-demand. Cached segments stay in this walk but are not loaded. The walk also ends at the end
  of the scheduler's queue, which is ``forward_segment_count`` segments long: segments past it are
  never prefetched, whatever the windows say (see "Queue length" below).
* **Each pass** (after every scheduler event and timer, with ``now``):

  1. bookkeeping: a failed HTTP fetch is forgotten 60 s after it failed;
     loads of queued segments that left the 2.2 queue are cancelled (the queue's first segment,
     standing in for the player's pending request, excepted);
  2. after a seek (the playhead moved more than half an average segment duration between two
     reports) the player's pending request goes to HTTP if a slot is free and no fetch of it
     failed in the last 60 s;
  3. every **high-demand** segment not loading over HTTP and without a failed HTTP fetch in the
     last 60 s goes to HTTP: into a free slot, else into the slot of the *last* HTTP
     download later in the queue (which is aborted). A P2P download of it is cut over (its bytes
     kept when ``http_download_ranges`` is on). With no HTTP slot to be had and no P2P download of
     it running, it is asked from a random idle peer that has it loaded, if a P2P slot is free or
     after aborting the last P2P download later in the queue. This happens even when peers have
     the segment: near the playhead HTTP comes first;
  4. every other **P2P-downloadable** segment not loading is asked from a random idle peer that has
     it loaded when a P2P slot is free; with all P2P slots busy, 2.2.2 steals the slot of the last
     P2P download later in the queue (only for segments a peer has fully loaded).

  The player's pending request gets no other special treatment: more than
  ``high_demand_time_window`` ahead and with no peer connected it waits until the playhead comes
  within the window, as in 2.2.2 (its hls.js glue on ``main`` caps the player's buffer at
  ``max(2 × target duration, high_demand_time_window)``, #515).

* **Random HTTP prefetch** runs on its own timer, re-armed after each firing with a delay uniform
  in ``[1, 1 + connected peers]`` seconds (the first one is armed at the first pass). A firing does
  nothing without connected peers (then only high-demand segments are fetched) or with every HTTP
  slot busy. Otherwise the candidates, nearest first, are the segments of the 2.2 queue that are
  HTTP-downloadable, not P2P-downloadable, not cached, not loading and without a failed HTTP fetch
  in the last 60 s. With ``P = peers + 1`` and
  ``K = min(len(candidates), simultaneous_http_downloads × P)``, it walks the first K in random order
  with ``prob = K / P``: start HTTP when ``prob >= 1`` or a uniform draw is ``<= prob``, then
  ``prob -= 1``; it stops once HTTP is full or ``prob <= 0``. About K / P fetches start per firing,
  so a swarm's first fetches from the origin spread over its members; the scheduler's next
  announcement lists each in ``p``, which makes it P2P-downloadable for the others.

Settings: :class:`P2PML22Settings` for the 2.x-only ones; ``simultaneous_http_downloads`` and
``simultaneous_p2p_downloads`` come from the :class:`~p2ploader.config.LoaderConfig` (same names
and meaning in 2.x). Of the 0.6 settings the scheduler still applies ``forward_segment_count``,
``http_download_ranges``, the P2P timeouts, the cache and the validator; this policy ignores
``required_segments_priority``, ``p2p_download_max_priority``, ``http_download_probability*``,
``http_download_max_priority``, ``http_failed_segment_timeout`` (see "HTTP attempts" below) and
the initial P2P-first mode. ``consume_only`` keeps its
scheduler meaning (no announcements, no uploads) but, as 2.2.2's ``isP2PUploadDisabled``, does not
stop the random HTTP prefetch.

HTTP attempts
-------------
``http_error_retries`` is 2.x's ``httpErrorRetries``: the HTTP attempts (GETs) per segment, after
which the player's request is rejected. It is counted in one place, the core's retry policy: this
policy sets it as the attempts of each fetch (:meth:`P2PML22Policy.fetch_retry_policy`:
``http_error_retries - 1`` retries after the first GET, ``http_retry_backoff`` apart, doubled), and
one failed fetch ends the player's wait (:meth:`P2PML22Policy.fetches_per_request`,
``SegmentUnavailable``). The policy itself counts nothing more: a segment whose fetch failed is
left to peers until the failure is 60 s old (``FAILED_ATTEMPTS_CLEAR_INTERVAL``), or until the
player asks for it anew. The config's ``http_retries`` does not apply to this policy's segment
fetches (it still does to playlists, keys and init sections).

Queue length
------------
The scheduler hands policies at most ``forward_segment_count`` segments (0.6 default: 20). 2.2.2
has no such bound: its windows (3000 s of HTTP, 6000 s of P2P prefetch by default) decide. To
compare like with like, raise ``forward_segment_count`` to cover the windows you mean: the
player's buffer ahead of the playhead plus ``ceil(window / segment duration) + 1`` segments (for
live streams, the whole playlist usually fits). With a short queue this policy simply stops at the
queue's end: no P2P prefetch, random HTTP or slot stealing beyond it, and downloads of segments
that drop off it are cancelled by the scheduler. A pass costs O(queue length × peers), so with the
default 6000 s window prefer a window-sized queue to an unbounded one in large simulations.

Where it differs from 2.2.2
---------------------------
* The HTTP error handling defect of 2.2.2 (status errors surfacing only as a 3 s
  ``bytes-receiving-timeout``) is not copied: a failed attempt counts at once.
* The attempts of a segment are the core's (see "HTTP attempts"): they back off
  (``http_retry_backoff``, doubled) where 2.2.2 tries again at the next pass, a 4xx or another
  unusable answer ends them at once (2.2.2 spends every attempt on it), and a body the validator
  rejects ends them too (one attempt of 2.2.2's).
* Slot stealing (high-demand fallback and regular segments) aborts the later P2P download only when
  an idle peer has the segment loaded, so the freed slot is used at once. 2.2.2 aborts first and may
  then find no idle peer; since it resumes aborted P2P downloads while this scheduler discards their
  bytes, copying that would make the policy churn and lose data on every pass.
* Memory pressure (windows shrinking at 10 % / 5 % free storage, random HTTP off at 10 %) is not
  modelled: the cache has count and age limits, not a capacity in MiB.
* A failed fetch is forgotten at once when the player requests the segment anew (the scheduler's
  failure count restarts then, as on 2.2.2's ``main`` #527) and when the segment leaves the
  scheduler's queue (2.2.2 keeps it while the segment is in the playlist). The 60 s clock runs
  from the *HTTP* failure (2.2.2 also restarts it on P2P failures) and wakes the scheduler when it
  expires.
* Passes run on every playback report rather than at most once a second, and the playback rate is
  a setting (2.2.2 reads the media element's). The seek check compares reports the policy has seen;
  a report made before the first request counts as the starting position (2.2.2 drops it and starts
  from the requested segment's start), and the average segment duration is the queue's, not the
  whole playlist's.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import attrs

from p2ploader.core.policies.base import DownloadPolicy, QueueEntry, SchedulingContext, settings_from_mapping
from p2ploader.core.policies.registry import register_policy
from p2ploader.core.retries import FetchRetryPolicy
from p2ploader.core.segments import Segment, SegmentId

if TYPE_CHECKING:
    from p2ploader.config import LoaderConfig

__all__ = ["FAILED_ATTEMPTS_CLEAR_INTERVAL", "P2PML22Policy", "P2PML22Settings", "SegmentFlags"]

FAILED_ATTEMPTS_CLEAR_INTERVAL = 60.0
"""Seconds after a segment's failed HTTP fetch when it is forgotten and HTTP may try the segment
again (2.2.2: ``FAILED_ATTEMPTS_CLEAR_INTERVAL``, 60000 ms)."""

_PEER_UPDATE_LATENCY = 1.0  # seconds; the random-HTTP delay is this × (1 + random × peers)
_SEEK_FRACTION = 0.5  # a playhead jump above this many average segment durations marks a seek


@attrs.frozen(kw_only=True)
class P2PML22Settings:
    """The 2.2.2 stream settings that have no 0.6 counterpart (windows in seconds of media time)."""

    high_demand_time_window: float = attrs.field(
        default=15.0, converter=float, validator=attrs.validators.ge(0.0)
    )
    """Urgent zone ahead of the playhead: loaded over HTTP first. Upstream: ``highDemandTimeWindow``."""

    http_download_time_window: float = attrs.field(
        default=3000.0, converter=float, validator=attrs.validators.ge(0.0)
    )
    """Zone where random HTTP prefetch may fetch segments no peer has. Upstream:
    ``httpDownloadTimeWindow``."""

    p2p_download_time_window: float = attrs.field(
        default=6000.0, converter=float, validator=attrs.validators.ge(0.0)
    )
    """Zone where segments a peer has (or is loading over HTTP) are prefetched from peers. Upstream:
    ``p2pDownloadTimeWindow``."""

    http_error_retries: int = attrs.field(
        default=3, validator=[attrs.validators.instance_of(int), attrs.validators.ge(1)]
    )
    """HTTP attempts (GETs) per segment before HTTP gives up on it and the player's request is
    rejected; HTTP tries it again once the failure is forgotten (60 s). Counted by the core's
    retry policy, which this setting configures (see "HTTP attempts" in the module docstring).
    Upstream: ``httpErrorRetries``."""

    playback_rate: float = attrs.field(default=1.0, converter=float, validator=attrs.validators.gt(0.0))
    """Playback speed the windows are scaled by (``W × rate`` seconds of media). Upstream: the media
    element's ``playbackRate``, reported with the position (``Playback.rate``)."""


@attrs.frozen(kw_only=True)
class SegmentFlags:
    """2.2.2's per-segment playback statuses (``SegmentPlaybackStatuses``)."""

    high_demand: bool
    http_downloadable: bool
    p2p_downloadable: bool

    @property
    def any(self) -> bool:
        return self.high_demand or self.http_downloadable or self.p2p_downloadable


@attrs.define(kw_only=True)
class _FailedFetch:
    """When a segment's last HTTP fetch failed, as the scheduler's failure count shows it."""

    seen: int  # the scheduler's failure count when last looked at
    last_failure: float
    forgotten: bool = False  # older than the clear interval: HTTP may try the segment again

    @property
    def expires(self) -> float:
        return self.last_failure + FAILED_ATTEMPTS_CLEAR_INTERVAL


@register_policy
class P2PML22Policy(DownloadPolicy):
    """P2P Media Loader 2.2.2's time-window algorithm. See the module docstring."""

    name = "p2pml-2.2"

    def __init__(self, config: LoaderConfig, settings: P2PML22Settings | None = None) -> None:
        super().__init__(config)
        self.settings = settings if settings is not None else P2PML22Settings()
        self._arm_random_timer_at_next_pass = False
        self._random_tick: float | None = None
        self._failed: dict[SegmentId, _FailedFetch] = {}
        self._last_position: float | None = None
        self._start_immediately: SegmentId | None = None

    @classmethod
    def from_config(cls, config: LoaderConfig) -> P2PML22Policy:
        """The policy with its entry in ``config.policy_settings`` as its :class:`P2PML22Settings`."""
        own = config.policy_settings.get(cls.name, {})
        return cls(config, settings_from_mapping(P2PML22Settings, own, policy=cls.name))

    def fetch_retry_policy(self) -> FetchRetryPolicy:
        """``http_error_retries`` attempts per fetch, ``http_retry_backoff`` apart (doubled): the
        core counts 2.x's attempts, see "HTTP attempts" in the module docstring."""
        return FetchRetryPolicy(
            retries=self.settings.http_error_retries - 1,
            backoff=self.config.http_retry_backoff,
            jitter=self.config.http_retry_jitter,
        )

    def fetches_per_request(self, max_attempts: int) -> int:
        """One: a failed fetch used up ``http_error_retries`` attempts, and 2.x then rejects the
        player's request (``get_segment``'s ``max_attempts`` adds no fetches)."""
        return 1

    # ------------------------------------------------------------------ read-only views

    def playhead(self, ctx: SchedulingContext) -> float | None:
        """The position the windows start at: the last report, else the queue's first segment's start."""
        if ctx.position is not None:
            return ctx.position
        return ctx.queue[0].segment.start if ctx.queue else None

    def flags(self, ctx: SchedulingContext, segment: Segment, position: float) -> SegmentFlags:
        """The three flags of ``segment`` for a playhead at ``position``."""
        s = self.settings
        return SegmentFlags(
            high_demand=self._in_window(segment, position, s.high_demand_time_window),
            http_downloadable=self._in_window(segment, position, s.http_download_time_window),
            p2p_downloadable=self._in_window(segment, position, s.p2p_download_time_window)
            and ctx.any_peer_knows(segment.id),
        )

    def flagged_queue(self, ctx: SchedulingContext) -> list[tuple[QueueEntry, SegmentFlags]]:
        """2.2.2's queue (``generateQueue``) cut from the scheduler's queue, cached segments included."""
        entries = ctx.queue
        position = self.playhead(ctx)
        if not entries or position is None:
            return []
        first = self.flags(ctx, entries[0].segment, position)
        if first.any:
            out = [(entries[0], first)]
        else:
            # The player asked for a segment just behind the playhead: it is urgent if the next counts.
            if len(entries) < 2:
                return []
            second = self.flags(ctx, entries[1].segment, position)
            if not second.any:
                return []
            out = [(entries[0], attrs.evolve(first, high_demand=True)), (entries[1], second)]
        for entry in entries[len(out) :]:
            flags = self.flags(ctx, entry.segment, position)
            if not flags.any:
                break
            out.append((entry, flags))
        return out

    def http_gave_up(self, segment_id: SegmentId, *, now: float) -> bool:
        """Whether a fetch of the segment failed (its ``http_error_retries`` attempts used up, or an
        unusable answer) less than 60 s ago: HTTP leaves it alone until then."""
        record = self._failed.get(segment_id)
        return record is not None and not record.forgotten and now < record.expires

    # ------------------------------------------------------------------ DownloadPolicy

    def start(self, *, now: float) -> None:
        # The first delay depends on the peer count, which only a pass can read.
        self._arm_random_timer_at_next_pass = True

    def get_timer(self) -> float | None:
        deadlines = [r.expires for r in self._failed.values() if not r.forgotten]
        if self._random_tick is not None:
            deadlines.append(self._random_tick)
        return min(deadlines) if deadlines else None

    def handle_timer(self, ctx: SchedulingContext, *, now: float) -> None:
        self._refresh_failed_fetches(ctx, now=now)
        if self._random_tick is not None and now >= self._random_tick:
            self._random_http(ctx, now=now)
            self._arm_random_timer(ctx, now=now)

    def schedule(self, ctx: SchedulingContext, *, now: float) -> None:
        if self._arm_random_timer_at_next_pass:
            self._arm_random_timer_at_next_pass = False
            self._arm_random_timer(ctx, now=now)
        self._refresh_failed_fetches(ctx, now=now)
        self._track_playhead(ctx)
        flagged = self.flagged_queue(ctx)
        self._cancel_dropped_loads(ctx, {entry.id for entry, _ in flagged})
        self._load_after_seek(ctx, now=now)

        cfg = self.config
        work = [(entry, flags) for entry, flags in flagged if not ctx.is_cached(entry.id)]
        for k, (entry, flags) in enumerate(work):
            sid = entry.id
            if flags.high_demand:
                if ctx.is_http_loading(sid) or self.http_gave_up(sid, now=now):
                    continue
                if ctx.http_active < cfg.simultaneous_http_downloads or (
                    self._abort_last_later(ctx, work, k, http=True)
                    and ctx.http_active < cfg.simultaneous_http_downloads
                ):
                    ctx.start_http(sid, now=now, continue_p2p=True)
                    continue
                if not ctx.is_p2p_loading(sid):
                    self._load_through_p2p(ctx, work, k, now=now)
            elif flags.p2p_downloadable and not ctx.is_http_loading(sid) and not ctx.is_p2p_loading(sid):
                self._load_through_p2p(ctx, work, k, now=now)

    # ------------------------------------------------------------------ helpers

    def _in_window(self, segment: Segment, position: float, window: float) -> bool:
        right = position + window * self.settings.playback_rate
        return not (right < segment.start or position > segment.end)

    def _arm_random_timer(self, ctx: SchedulingContext, *, now: float) -> None:
        self._random_tick = now + _PEER_UPDATE_LATENCY * (1.0 + ctx.rng.random() * ctx.connected_peers)

    def _refresh_failed_fetches(self, ctx: SchedulingContext, *, now: float) -> None:
        fresh: dict[SegmentId, _FailedFetch] = {}
        for entry in ctx.queue:
            count = ctx.http_failures(entry.id)
            if count == 0:
                continue  # never failed, or the scheduler forgot (explicit request, left the queue)
            record = self._failed.get(entry.id)
            if record is None or count != record.seen:  # a fetch failed since the last look
                record = _FailedFetch(seen=count, last_failure=now)
            elif now >= record.expires:
                record.forgotten = True
            fresh[entry.id] = record
        self._failed = fresh

    def _track_playhead(self, ctx: SchedulingContext) -> None:
        position, queue = ctx.position, ctx.queue
        if not queue:
            return
        if self._last_position is None:  # the first pass: where the loader starts
            self._last_position = position if position is not None else queue[0].segment.start
            return
        if position is None or position == self._last_position:
            return
        previous, self._last_position = self._last_position, position
        average = sum(e.segment.duration for e in queue) / len(queue)
        if average > 0 and abs(position - previous) / average > _SEEK_FRACTION:
            # 2.2.2 marks the pending engine request; ours is the queue's first segment if not cached.
            self._start_immediately = None if ctx.is_cached(queue[0].id) else queue[0].id

    def _load_after_seek(self, ctx: SchedulingContext, *, now: float) -> None:
        sid = self._start_immediately
        if sid is None:
            return
        if not ctx.queue or ctx.queue[0].id != sid or ctx.is_cached(sid):
            self._start_immediately = None  # served, or the player moved on to another request
            return
        if (
            ctx.http_active < self.config.simultaneous_http_downloads
            and not ctx.is_http_loading(sid)
            and not ctx.is_p2p_loading(sid)
            and not self.http_gave_up(sid, now=now)
        ):
            ctx.start_http(sid, now=now, continue_p2p=True)

    @staticmethod
    def _cancel_dropped_loads(ctx: SchedulingContext, kept: set[SegmentId]) -> None:
        for entry in ctx.queue[1:]:
            if entry.id in kept:
                continue
            if ctx.is_http_loading(entry.id):
                ctx.abort_http(entry.id)
            elif ctx.is_p2p_loading(entry.id):
                ctx.abort_p2p(entry.id)

    @staticmethod
    def _abort_last_later(
        ctx: SchedulingContext, work: Sequence[tuple[QueueEntry, SegmentFlags]], k: int, *, http: bool
    ) -> bool:
        # From the end of the queue back to item k; abort the first download of that kind found.
        for entry, _ in reversed(work[k + 1 :]):
            if http and ctx.is_http_loading(entry.id):
                ctx.abort_http(entry.id)
                return True
            if not http and ctx.is_p2p_loading(entry.id):
                ctx.abort_p2p(entry.id)
                return True
        return False

    def _load_through_p2p(
        self, ctx: SchedulingContext, work: Sequence[tuple[QueueEntry, SegmentFlags]], k: int, *, now: float
    ) -> None:
        sid = work[k][0].id
        limit = self.config.simultaneous_p2p_downloads
        if ctx.p2p_active >= limit:
            # Slot stealing, only when the freed slot can be used at once (see the module docstring).
            if not ctx.idle_peers_with(sid) or not self._abort_last_later(ctx, work, k, http=False):
                return
            if ctx.p2p_active >= limit:
                return
        peers = ctx.idle_peers_with(sid)
        if peers:
            ctx.start_p2p(sid, ctx.rng.choice(peers), now=now)

    def _random_http(self, ctx: SchedulingContext, *, now: float) -> None:
        limit = self.config.simultaneous_http_downloads
        if ctx.http_active >= limit or ctx.connected_peers == 0:
            return
        candidates = [
            entry.id
            for entry, flags in self.flagged_queue(ctx)
            if flags.http_downloadable
            and not flags.p2p_downloadable
            and not ctx.is_cached(entry.id)
            and not ctx.is_http_loading(entry.id)
            and not ctx.is_p2p_loading(entry.id)
            and not self.http_gave_up(entry.id, now=now)
        ]
        if not candidates:
            return
        peers = ctx.connected_peers + 1
        count = min(len(candidates), limit * peers)
        probability = count / peers
        for index in ctx.rng.sample(range(count), count):
            if ctx.http_active >= limit:
                break
            if probability >= 1 or ctx.rng.random() <= probability:
                ctx.start_http(candidates[index], now=now, continue_p2p=True)
            probability -= 1
            if probability <= 0:
                break
