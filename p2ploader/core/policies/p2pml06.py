"""P2P Media Loader 0.6's download policy: the semantics of the FAQ settings.

Theory of operation (after ``HybridLoader`` in p2p-media-loader-core 0.6.2):

* **Required segments** (``priority <= required_segments_priority``) go to HTTP at once when HTTP is
  allowed, the segment has not failed over HTTP recently and a slot is free. With every HTTP slot
  busy, one HTTP download later in the queue is aborted to make room. A P2P download of the same
  segment is cut over, keeping its bytes when ``http_download_ranges`` is on.
* **Required but HTTP impossible**: if a connected peer has it, it is asked (aborting the last P2P
  download later in the queue if the P2P slots are full).
* **Other segments** up to ``p2p_download_max_priority`` go to a random idle peer that has them.
* **The random-HTTP timer** ticks every ``http_download_probability_interval``. Among the queued
  segments up to ``http_download_max_priority`` that nobody loads, no peer announces, have not
  failed recently and are not cached (N of them), it starts one HTTP download with probability
  ``min(1, http_download_probability * N)``, chosen uniformly. This seeds the swarm with segments
  nobody has. Skipped with no peers when ``http_download_probability_skip_if_no_peers``, always
  skipped when ``consume_only``.
* **Initial P2P-first mode** (``http_download_initial_timeout`` and ``..._per_segment`` both > 0):
  HTTP is held back until the whole timeout passed, or until the per-segment allowance passed and
  the first missing segment is needed now (priority 0). It ends for good the first time HTTP is
  allowed, or when the tracker reports at most one peer in the swarm. A timer re-runs the pass
  ``per_segment + 0.1`` s after start and then every ``per_segment`` s.

  Ours, unlike 0.6: the mode never holds back a required segment that is *due*: the one needed
  now (priority 0, the one at the playhead, or the first one before playback starts), or one
  whose start the playhead reaches within twice its expected HTTP download time plus
  ``_DUE_MARGIN`` (the expected time from ``http_fetch_time``, once the first HTTP download has
  measured it). A due segment has no slack left to wait for a peer, so it goes to
  HTTP at once (cutting over a P2P download of it), while the mode goes on holding the segments
  after it; a timer wakes the pass when the next held required segment falls due. In 0.6 a peer
  that announces everything and never answers held start-up for the whole per-segment allowance
  (17 s with the FAQ's VOD example against 2 s over HTTP), and then each later segment until it
  was needed now, so every one of them stalled; here playback with such a peer is never slower
  than without.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from p2ploader.core.policies.base import DownloadPolicy, QueueEntry, SchedulingContext
from p2ploader.core.policies.registry import register_policy

if TYPE_CHECKING:
    from p2ploader.config import LoaderConfig

__all__ = ["P2PML06Policy"]

# 0.6 arms the first initial-mode check 100 ms after the per-segment allowance.
_INITIAL_FIRST_TICK_DELAY = 0.1
# Seconds added to twice the expected HTTP download time when deciding whether a held segment is
# due: room for the request's round trip and for a playhead report that is a little stale.
_DUE_MARGIN = 0.5


@register_policy
class P2PML06Policy(DownloadPolicy):
    """The default policy: P2P Media Loader 0.6.2's ``HybridLoader`` algorithm."""

    name = "p2pml-0.6"
    # A pass starts downloads from peers that list a segment as loaded, and aborts only to make
    # room for such starts; "loading over HTTP" matters only to the random-HTTP timer's own tick.
    passes_on_lost_availability = False
    passes_on_http_loading = False

    def __init__(self, config: LoaderConfig) -> None:
        super().__init__(config)
        self._started_at: float | None = None
        self._initial_mode = (
            config.http_download_initial_timeout > 0 and config.http_download_initial_timeout_per_segment > 0
        )
        self._initial_tick: float | None = None
        self._due_tick: float | None = None  # when the next held required segment falls due
        self._random_tick: float | None = None

    @property
    def initial_mode(self) -> bool:
        """Whether the P2P-first start-up mode is still holding HTTP back."""
        return self._initial_mode

    def start(self, *, now: float) -> None:
        self._started_at = now
        if self._initial_mode:
            self._initial_tick = (
                now + self.config.http_download_initial_timeout_per_segment + (_INITIAL_FIRST_TICK_DELAY)
            )
        if not self.config.consume_only:
            self._random_tick = now + self.config.http_download_probability_interval

    def get_timer(self) -> float | None:
        held = (self._initial_tick, self._due_tick) if self._initial_mode else ()
        deadlines = [t for t in (*held, self._random_tick) if t is not None]
        return min(deadlines) if deadlines else None

    def handle_timer(self, ctx: SchedulingContext, *, now: float) -> None:
        cfg = self.config
        if self._initial_tick is not None and now >= self._initial_tick:
            # The tick itself only re-runs the pass (which the scheduler does after this call).
            while self._initial_tick <= now:
                self._initial_tick += cfg.http_download_initial_timeout_per_segment
        if self._due_tick is not None and now >= self._due_tick:
            self._due_tick = None  # the pass after this call sends the due segment to HTTP
        if self._random_tick is not None and now >= self._random_tick:
            while self._random_tick <= now:
                self._random_tick += cfg.http_download_probability_interval
            self._random_http_tick(ctx, now=now)

    def tracker_updated(self, *, incomplete: int, now: float) -> None:
        # Nobody else in the swarm: waiting for peers is pointless.
        if incomplete <= 1:
            self._end_initial_mode()

    def _end_initial_mode(self) -> None:
        self._initial_mode = False
        self._initial_tick = None
        self._due_tick = None

    def _due_in(self, ctx: SchedulingContext, entry: QueueEntry) -> float:
        """Seconds until ``entry`` falls due (0 or less: due now; see the module docstring)."""
        if entry.priority <= 0:
            return 0.0
        position, fetch_time = ctx.position, ctx.http_fetch_time
        if position is None or fetch_time is None:
            # Before playback starts only the first segment is needed now; before the first HTTP
            # download is measured (it is under way: the first segment is due) the pass that
            # follows its arrival judges the rest.
            return float("inf")
        expected_http = fetch_time * entry.segment.duration
        return entry.segment.start - position - (2 * expected_http + _DUE_MARGIN)

    def _http_allowed(self, ctx: SchedulingContext, *, now: float) -> bool:
        if not self._initial_mode:
            return True
        cfg = self.config
        elapsed = now - (self._started_at if self._started_at is not None else now)
        first_missing = next((e for e in ctx.queue if not ctx.is_cached(e.id)), None)
        allowed = elapsed >= cfg.http_download_initial_timeout or (
            first_missing is not None
            and elapsed > cfg.http_download_initial_timeout_per_segment
            and first_missing.priority <= 0
        )
        if allowed:
            self._end_initial_mode()
        return allowed

    def schedule(self, ctx: SchedulingContext, *, now: float) -> None:
        cfg = self.config
        http_allowed = self._http_allowed(ctx, now=now)
        queue = ctx.queue
        self._due_tick = None
        for k, entry in enumerate(queue):
            sid = entry.id
            if ctx.is_cached(sid) or ctx.is_http_loading(sid):
                continue
            required = entry.priority <= cfg.required_segments_priority
            # Due: too little buffer left to wait for a peer (see the module docstring).
            due = False
            if required and not http_allowed:
                due_in = self._due_in(ctx, entry)
                due = due_in <= 0
                if not due and due_in != float("inf"):
                    wake = now + due_in
                    self._due_tick = wake if self._due_tick is None else min(self._due_tick, wake)
            if required and (http_allowed or due) and not ctx.http_failed_recently(sid, now=now):
                if ctx.http_active >= cfg.simultaneous_http_downloads:
                    self._abort_last_later(ctx, k, http=True)
                if ctx.http_active < cfg.simultaneous_http_downloads:
                    ctx.start_http(sid, now=now, continue_p2p=True)
                    continue
            if ctx.is_p2p_loading(sid):
                continue
            if required:
                if ctx.any_peer_has(sid):
                    if ctx.p2p_active >= cfg.simultaneous_p2p_downloads:
                        self._abort_last_later(ctx, k, http=False)
                    self._start_p2p_from_random_peer(ctx, entry, now=now)
            elif (
                ctx.p2p_active < cfg.simultaneous_p2p_downloads
                and entry.priority <= cfg.p2p_download_max_priority
            ):
                self._start_p2p_from_random_peer(ctx, entry, now=now)

    @staticmethod
    def _abort_last_later(ctx: SchedulingContext, k: int, *, http: bool) -> None:
        # Scan from the end of the queue back towards k; abort the first download found (at most one).
        for entry in reversed(ctx.queue[k + 1 :]):
            if http and ctx.is_http_loading(entry.id):
                ctx.abort_http(entry.id)
                return
            if not http and ctx.is_p2p_loading(entry.id):
                ctx.abort_p2p(entry.id)
                return

    @staticmethod
    def _start_p2p_from_random_peer(ctx: SchedulingContext, entry: QueueEntry, *, now: float) -> None:
        if ctx.p2p_active >= ctx.config.simultaneous_p2p_downloads:
            return
        peers = ctx.idle_peers_with(entry.id)
        if peers:
            ctx.start_p2p(entry.id, ctx.rng.choice(peers), now=now)

    def _random_http_tick(self, ctx: SchedulingContext, *, now: float) -> None:
        cfg = self.config
        if self._initial_mode or cfg.consume_only:
            return
        if ctx.http_active >= cfg.simultaneous_http_downloads:
            return
        if cfg.http_download_probability_skip_if_no_peers and ctx.connected_peers == 0:
            return
        pending = [
            e
            for e in ctx.queue
            if e.priority <= cfg.http_download_max_priority
            and not ctx.is_cached(e.id)
            and not ctx.is_http_loading(e.id)
            and not ctx.is_p2p_loading(e.id)
            and not ctx.any_peer_knows(e.id)
            and not ctx.http_failed_recently(e.id, now=now)
        ]
        if not pending:
            return
        if ctx.rng.random() > cfg.http_download_probability * len(pending):
            return
        choice = pending[ctx.rng.randrange(len(pending))]
        ctx.start_http(choice.id, now=now, continue_p2p=False)
