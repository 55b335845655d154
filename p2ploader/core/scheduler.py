"""The sans-IO scheduler: decides, segment by segment, whether to load over HTTP or from a peer.

Theory of operation
-------------------
The scheduler is a plain object. It never performs I/O, never reads a clock and never touches
global randomness: the driver passes every observation in as an *event* with the current time
(:meth:`Scheduler.handle_event`), pulls the *actions* it must perform
(:meth:`Scheduler.actions_to_perform`) and the *notifications* for the application
(:meth:`Scheduler.next_notification`), and arms one timer (:meth:`Scheduler.get_timer`, then
:meth:`Scheduler.handle_timer` when it fires). Randomness comes from the ``random.Random`` handed in,
so a run is reproducible from its seed, and ``(now, event)`` logs replay exactly.

The **queue** is the list of segments worth loading now: from the earliest segment the player is
waiting for (or the last one it requested) forward, ``forward_segment_count`` segments of the
current playlist. A segment's **priority** is its distance, in segments, from the one playing now
(0 = needed now), as in P2P Media Loader. The near part of the queue is the HTTP-filled *critical*
window, the far part the P2P *prefetch* window; where the line falls and how the far part is
filled is the :class:`~p2ploader.core.policies.base.DownloadPolicy`'s business.

The scheduler keeps the books the policy reads: HTTP and P2P requests in flight, peers and their
announced segment maps, HTTP failures, and the :class:`~p2ploader.core.cache.SegmentCache`. It
enforces the invariants no policy may break: at most one download of a segment at a time, the
simultaneous-download limits, one outstanding request per peer, no bytes past a segment's
announced size, and nothing from a misbehaving peer reaching the player.

It also owns the two decisions about failures that every host (the asyncio loader, the simulator's
viewers) shares: when a failed HTTP load of a segment the player waits for is tried again and when
it is given up (:class:`~p2ploader.core.retries.HttpRetries`, ending in a
:class:`~p2ploader.core.notifications.SegmentUnavailable`), and the strikes and bans of peers
(:class:`~p2ploader.core.reputation.Reputation`, :attr:`Scheduler.reputation`), fed by integrity
failures and protocol violations and reported as :class:`~p2ploader.core.notifications.PeerBanned`.
"""

from __future__ import annotations

import bisect
import random
from collections import deque
from collections.abc import Sequence
from typing import ClassVar, Literal, TypeAlias

import attrs

from p2ploader.config import LoaderConfig
from p2ploader.core import actions as act
from p2ploader.core import events as ev
from p2ploader.core import notifications as nt
from p2ploader.core.cache import CachedSegment, SegmentCache
from p2ploader.core.policies import DownloadPolicy, P2PProgress, QueueEntry, create_policy
from p2ploader.core.reputation import Reputation
from p2ploader.core.retries import DEFAULT_HTTP_ATTEMPTS, FetchRetryPolicy, HttpRetries
from p2ploader.core.segments import Segment, SegmentId
from p2ploader.core.uploads import RelaySource, UploadDesk
from p2ploader.errors import PolicyError

__all__ = ["MAX_SEGMENT_SIZE", "CoreStatistics", "Scheduler"]

MAX_SEGMENT_SIZE = 256 * 1024 * 1024
"""Bytes. A peer announcing a bigger segment is treated as misbehaving (memory stays bounded)."""


@attrs.frozen(kw_only=True)
class CoreStatistics:
    """A snapshot of the scheduler's counters. Bytes are payload bytes."""

    http_bytes: int
    p2p_bytes: int
    """Every byte received from peers, including bytes later rejected or dropped."""
    uploaded_bytes: int
    http_segments: int
    p2p_segments: int
    http_failures: int
    p2p_failures: int
    aborted: int
    peers: int
    cached_segments: int
    cached_bytes: int
    uploads_over_budget: int = 0
    """Peer requests answered "absent" because the peer had spent its upload budget."""
    p2p_bytes_verified: int = 0
    """Peer bytes of accepted segments that an integrity check proved right."""
    p2p_bytes_unverified: int = 0
    """Peer bytes of accepted segments that no integrity check proved (checks off, no published
    digest and no spot check drawn, or an inconclusive spot check)."""
    p2p_bytes_rejected: int = 0
    """Peer bytes of segments that failed their checks (dropped; their senders disconnected)."""

    @property
    def p2p_ratio(self) -> float:
        """P2P bytes / all downloaded bytes (0 when nothing was downloaded)."""
        total = self.http_bytes + self.p2p_bytes
        return self.p2p_bytes / total if total else 0.0


@attrs.define(kw_only=True)
class _Download:
    """What a download of either source keeps: :class:`_HttpDownload` or :class:`_PeerDownload`."""

    source: ClassVar[Literal["http", "p2p"]]
    request_id: int
    segment: Segment
    # Pieces received, joined into one bytes object when the download ends; an HTTP piece may be
    # a read-only view of a shared buffer (see HttpChunkReceived).
    chunks: list[bytes | memoryview] = attrs.Factory(list)
    received: int = 0
    resume_from: int = 0
    total: int | None = None  # the size the peer's data header or the HTTP response announced
    validating: bool = False
    # When the request went out: P2P, the peer's measured throughput; HTTP, set by the policy's
    # start_http (how slow the origin is).
    started: float | None = None
    # Which peer sent which bytes, this request's and those it resumed from (an HTTP download
    # continuing a peer's bytes with a Range request has some too): the peers blamed if the
    # segment fails its checks.
    peer_ranges: list[act.PeerByteRange] = attrs.Factory(list)
    # It holds bytes of peers since dropped for misbehaving (these): they are discarded when it
    # ends, and the other senders' bytes are compared with the origin's later.
    tainted_by: set[str] = attrs.Factory(set)

    def take_bytes(self) -> bytes:
        data = b"".join(self.chunks)
        self.chunks = [data] if data else []
        return data

    def add_bytes(self, data: bytes | memoryview, *, peer_id: str | None) -> None:
        """Append ``data``; ``peer_id`` sent it (``None``: the origin)."""
        if peer_id is not None:
            last = self.peer_ranges[-1] if self.peer_ranges else None
            if last is not None and last.peer_id == peer_id and last.end == self.received:
                self.peer_ranges[-1] = attrs.evolve(last, length=last.length + len(data))
            else:
                self.peer_ranges.append(
                    act.PeerByteRange(peer_id=peer_id, offset=self.received, length=len(data))
                )
        self.chunks.append(data)
        self.received += len(data)

    def resume(self, partial: _Partial | None) -> None:
        """Start from the bytes an earlier attempt left (``resume_from``)."""
        if partial is None or not partial.data:
            return
        self.chunks.append(partial.data)
        self.received = self.resume_from = len(partial.data)
        self.peer_ranges = list(partial.peer_ranges)

    def partial(self) -> _Partial:
        """What it received so far, with who sent it, for the next attempt to continue."""
        return _Partial(data=self.take_bytes(), peer_ranges=tuple(self.peer_ranges))

    def top_peer(self) -> str | None:
        """The peer that sent the most bytes (``None``: all came from the origin)."""
        sizes: dict[str, int] = {}
        for r in self.peer_ranges:
            sizes[r.peer_id] = sizes.get(r.peer_id, 0) + r.length
        return max(sizes, key=lambda p: sizes[p]) if sizes else None


@attrs.define(kw_only=True)
class _HttpDownload(_Download):
    """A download from the origin."""

    source: ClassVar[Literal["http"]] = "http"
    # Peers' bytes of an earlier attempt that this download does not continue (it fetches the
    # whole segment): compared with the origin's bytes when it ends, so a peer that sent wrong
    # bytes and then stalled is caught even though its bytes were never used.
    compare_with: _Partial | None = None


@attrs.define(kw_only=True)
class _PeerDownload(_Download):
    """A download from one peer (``peer_id``), one request of the peer protocol."""

    source: ClassVar[Literal["p2p"]] = "p2p"
    peer_id: str
    header_deadline: float | None = None  # p2p_segment_download_timeout
    last_progress: float | None = None  # when the header or the last bytes arrived (stall timeout)


_AnyDownload: TypeAlias = _HttpDownload | _PeerDownload


@attrs.frozen(kw_only=True)
class _Partial:
    """Bytes of a segment an attempt left behind (a stalled or moved P2P download), with the peers
    that sent them: they travel with the bytes into the next attempt and its checks."""

    data: bytes
    peer_ranges: tuple[act.PeerByteRange, ...] = ()


@attrs.define(kw_only=True)
class _Peer:
    peer_id: str
    loaded: frozenset[SegmentId] = frozenset()
    loading_by_http: frozenset[SegmentId] = frozenset()
    busy_request: int | None = None
    # Segments it announced as loaded and then answered "absent" for (busy, or evicted since) after
    # its last announcement: not asked for again until announced anew, but a sign that the segment
    # is in the swarm (SchedulingContext.any_peer_refused).
    refused: frozenset[SegmentId] = frozenset()
    throughput: float | None = None  # bytes/s of its recent uploads to us (moving average)


# Weight of the newest sample in the measurements' moving averages (peer throughput, our upload
# speed, HTTP fetch time): recent enough to follow a changing load, smooth enough that one lucky
# transfer does not make a peer a favourite.
_THROUGHPUT_WEIGHT = 0.5


def _moving_average(average: float | None, sample: float) -> float:
    return sample if average is None else average + _THROUGHPUT_WEIGHT * (sample - average)


class Scheduler:
    """Events in with ``now``, actions and notifications out, one timer. See the module docstring."""

    def __init__(
        self,
        config: LoaderConfig,
        *,
        rng: random.Random,
        policy: DownloadPolicy | str | None = None,
        peer_id: str | None = None,
        validate_p2p: bool = False,
    ) -> None:
        """``validate_p2p``: have every segment holding a peer's bytes checked
        (:class:`~p2ploader.core.actions.ValidateSegment`) even without a ``segment_validator``
        (the loader's integrity checks)."""
        self._config = config
        self._rng = rng
        self._peer_id = peer_id
        if policy is None:
            policy = config.policy
        self._policy = create_policy(policy, config) if isinstance(policy, str) else policy
        self._fetch_retry_policy = self._policy.fetch_retry_policy()
        # ValidateSegment for segments holding peer bytes (integrity checks, run by the driver) and,
        # with an application validator, for every segment.
        self._validate_p2p = validate_p2p or config.segment_validator is not None
        self._context = _Context(self)

        self._segments: list[Segment] = []
        self._index: dict[SegmentId, int] = {}
        self._starts: list[float] = []
        self._position: float | None = None
        self._head: SegmentId | None = None
        self._wanted: set[SegmentId] = set()
        self._queue: list[QueueEntry] = []
        self._queued_ids: frozenset[SegmentId] = frozenset()
        self._started = False

        self._downloads: dict[int, _AnyDownload] = {}
        self._http_by_segment: dict[SegmentId, int] = {}
        self._p2p_by_segment: dict[SegmentId, int] = {}
        self._peers: dict[str, _Peer] = {}
        self._http_failed_until: dict[SegmentId, float] = {}
        # HTTP failures per segment since it was last requested by the player (while it stays queued).
        self._http_failure_counts: dict[SegmentId, int] = {}
        # Failed fetches of the segments the player waits for: retried with back-off, or given up.
        self._retries = HttpRetries(backoff=config.http_retry_backoff, jitter=config.http_retry_jitter)
        # Strikes and bans of peers, per swarm (rendition).
        self._reputation = Reputation(ban_time=config.peer_ban_time)
        self._now = 0.0  # the time of the event or timer being handled (seconds)
        # Bytes of P2P downloads that stalled, kept so HTTP can continue them with a Range request.
        self._stalled_bytes: dict[SegmentId, _Partial] = {}
        # Rejected bytes that several peers sent (which of them lied, a digest cannot tell): kept
        # to be compared with the origin's bytes when the segment next comes whole over HTTP, so
        # only the peers whose bytes differ are blamed. Never resumed from.
        self._suspect_bytes: dict[SegmentId, list[tuple[_Partial, bool]]] = {}
        # Peer requests, uploads, cut-through relays and our upload speed (core/uploads.py).
        self._upload_desk = UploadDesk(config, _DeskHost(self))
        # Seconds an HTTP download took per second of media (moving average): how slow the origin is.
        self._http_fetch_time: float | None = None
        self._cache = SegmentCache()

        self._actions: list[act.Action] = []
        self._notifications: deque[nt.Notification] = deque()
        self._announce_due = False
        self._pass_due = False  # a download ended: its slot (and maybe its peer) is free again
        self.timer_epoch = 0
        """Changes whenever :meth:`get_timer` may answer differently (drivers re-arm only then)."""
        self._next_request_id = 1

        self._http_bytes = 0
        self._p2p_bytes = 0
        self._http_segments = 0
        self._p2p_segments = 0
        self._http_failures = 0
        self._p2p_failures = 0
        self._aborted = 0
        self._p2p_bytes_verified = 0
        self._p2p_bytes_unverified = 0
        self._rejected_peer_bytes = 0

    # ------------------------------------------------------------------ public surface

    @property
    def config(self) -> LoaderConfig:
        return self._config

    @property
    def policy(self) -> DownloadPolicy:
        return self._policy

    @property
    def fetch_retry_policy(self) -> FetchRetryPolicy:
        """The retry policy within each HTTP fetch this scheduler starts, as its download policy
        sets it (:meth:`DownloadPolicy.fetch_retry_policy`): the executor that performs the
        :class:`~p2ploader.core.actions.StartHttpFetch` actions (the loader's, the simulator's)
        follows it."""
        return self._fetch_retry_policy

    @property
    def queue(self) -> Sequence[QueueEntry]:
        """The current download queue, nearest segment first."""
        return tuple(self._queue)

    @property
    def cache(self) -> SegmentCache:
        return self._cache

    @property
    def reputation(self) -> Reputation:
        """Strikes and bans of peers, per swarm: transports ask it whether a peer is banned."""
        return self._reputation

    def is_banned(self, swarm: str, peer_id: str, *, now: float, certificate: str | None = None) -> bool:
        """Whether ``peer_id`` (its link with ``certificate``, if given) is banned from ``swarm``."""
        return self._reputation.is_banned(swarm, peer_id, now=now, certificate=certificate)

    def handle_event(self, event: ev.Event, *, now: float) -> None:
        """Feed one observation. Chunk events only update books; every other event also runs a
        scheduling pass."""
        self._now = now
        if type(event) is ev.PeerAnnounced:
            # The most frequent event in a swarm, handled first: when the announcement changes
            # nothing a policy reacts to, no pass runs and no deadline moves.
            if self._peer_announced(event) or self._pass_due:
                self._run_pass(now=now)
                self.timer_epoch += 1
            return
        run_pass = True
        match event:
            case ev.PlaylistUpdated():
                self._set_playlist(event.segments, now=now)
            case ev.PlaybackMoved():
                self._playback_moved(event.position, now=now)
            case ev.SegmentRequested():
                self._segment_requested(event.segment_id, max_attempts=event.max_attempts, now=now)
            case ev.SegmentRequestCancelled():
                self._unwant(event.segment_id)
                self._rebuild_queue(now=now)
            case ev.HttpResponseStarted():
                self._http_response_started(event, now=now)
                run_pass = False
            case ev.HttpChunkReceived():
                self._http_chunk(event, now=now)
                run_pass = False
            case ev.HttpFetchCompleted():
                self._http_completed(event, now=now)
            case ev.HttpFetchFailed():
                self._http_failed(
                    event.request_id,
                    event.reason,
                    status=event.status,
                    permanent=event.permanent,
                    now=now,
                )
            case ev.PeerConnected():
                self._peer_connected(event.peer_id)
            case ev.PeerDisconnected():
                self._drop_peer(event.peer_id, reason="peer disconnected", disconnect=False)
            case ev.PeerResponseStarted():
                self._peer_response_started(event, now=now)
                run_pass = False
            case ev.PeerChunkReceived():
                self._peer_chunk(event, now=now)
                run_pass = False
            case ev.PeerDownloadFailed():
                self._peer_download_failed(event)
            case ev.PeerRequestedSegment():
                self._upload_desk.serve(event, now=now)
                run_pass = False
            case ev.PeerCancelledUpload():
                self._upload_desk.peer_cancelled(event.peer_id, event.segment_id)
                run_pass = False
            case ev.UploadFinished():
                self._upload_desk.upload_finished(event, now=now)
                run_pass = False
            case ev.SegmentValidated():
                self._segment_validated(event, now=now)
            case ev.IntegrityCheckFailed():
                self._peer_lied(event.peer_id, event.segment_id, event.check, event.reason)
                run_pass = False
            case ev.PeerViolatedProtocol():
                self._report_misbehaviour(event.peer_id, event.swarm, event.reason)
                run_pass = False
            case ev.TrackerUpdated():
                self._policy.tracker_updated(incomplete=event.incomplete, now=now)
        if run_pass or self._pass_due:
            self._run_pass(now=now)
        self.timer_epoch += 1

    def handle_timer(self, *, now: float) -> None:
        """Run whatever was due at or before ``now`` (call it when :meth:`get_timer` passes)."""
        self._now = now
        self.timer_epoch += 1
        for download in list(self._downloads.values()):
            if not isinstance(download, _PeerDownload):
                continue
            if download.header_deadline is not None and download.header_deadline <= now:
                self._p2p_header_timeout(download)
            elif (stall := self._stall_deadline(download)) is not None and stall <= now:
                self._p2p_stalled(download)
        for sid in [s for s, until in self._http_failed_until.items() if until <= now]:
            del self._http_failed_until[sid]
        self._policy.handle_timer(self._context, now=now)
        self._run_pass(now=now)

    def get_timer(self) -> float | None:
        """The next time (seconds) :meth:`handle_timer` must run, or ``None``."""
        best = self._policy.get_timer()
        stall = self._config.p2p_stall_timeout
        for d in self._downloads.values():
            if not isinstance(d, _PeerDownload):
                continue
            deadline = d.header_deadline
            if deadline is None and d.last_progress is not None and not d.validating:
                deadline = d.last_progress + stall
            if deadline is not None and (best is None or deadline < best):
                best = deadline
        # A failure that expires may let a queued segment go back to HTTP: wake up then.
        if self._http_failed_until:
            queued = self._queued_ids
            for sid, until in self._http_failed_until.items():
                if sid in queued and (best is None or until < best):
                    best = until
        return best

    def actions_to_perform(self, *, now: float) -> list[act.Action]:
        """Actions to carry out now, in order. Clears the list."""
        self._now = now
        self._upload_desk.settle(now=now)
        if self._announce_due:
            self._announce_due = False
            if self._config.use_p2p and not self._config.consume_only:
                self._actions.append(self._announcement(peer_id=None))
        out, self._actions = self._actions, []
        return out

    def has_output(self) -> bool:
        """Whether :meth:`actions_to_perform` or :meth:`next_notification` has anything."""
        return bool(self._actions or self._notifications or self._announce_due)

    def next_notification(self) -> nt.Notification | None:
        """The oldest pending notification for the application, or ``None``."""
        return self._notifications.popleft() if self._notifications else None

    def share_payload(self, segment_id: SegmentId, data: bytes) -> bool:
        """Keep ``data``, an object equal to the cached bytes of ``segment_id``, in their place:
        a process hosting many schedulers (the simulator) then holds one copy of each payload
        rather than one per reassembled download. ``False`` when it is not cached or differs."""
        return self._cache.share(segment_id, data)

    def statistics(self) -> CoreStatistics:
        return CoreStatistics(
            http_bytes=self._http_bytes,
            p2p_bytes=self._p2p_bytes,
            uploaded_bytes=self._upload_desk.uploaded_bytes,
            http_segments=self._http_segments,
            p2p_segments=self._p2p_segments,
            http_failures=self._http_failures,
            p2p_failures=self._p2p_failures,
            aborted=self._aborted,
            peers=len(self._peers),
            cached_segments=len(self._cache),
            cached_bytes=self._cache.total_bytes,
            uploads_over_budget=self._upload_desk.over_budget,
            p2p_bytes_verified=self._p2p_bytes_verified,
            p2p_bytes_unverified=self._p2p_bytes_unverified,
            p2p_bytes_rejected=self._rejected_peer_bytes,
        )

    def http_loading(self) -> frozenset[SegmentId]:
        """Segments being loaded over HTTP now."""
        return frozenset(self._http_by_segment)

    def p2p_loading(self) -> dict[SegmentId, str]:
        """Segments being loaded from peers now, with the peer asked."""
        return {sid: self._peer_download(sid).peer_id for sid in self._p2p_by_segment}

    # ------------------------------------------------------------------ playlist and queue

    def _set_playlist(self, segments: tuple[Segment, ...], *, now: float) -> None:
        self._segments = list(segments)
        self._index = {s.id: i for i, s in enumerate(self._segments)}
        self._starts = [s.start for s in self._segments]
        for segment in self._segments:
            # A segment the server has since marked EXT-X-GAP (its media withdrawn) is neither
            # announced nor uploaded any more, even if we hold bytes of it.
            if segment.gap and self._cache.discard(segment.id):
                self._announce_due = True
        for sid in sorted(self._wanted):
            if sid not in self._index and sid not in self._cache:
                self._unwant(sid)
                self._notify(nt.SegmentUnavailable(segment_id=sid, reason="no longer in the playlist"))
        self._rebuild_queue(now=now)
        self._clean_cache(now=now)

    def _playback_moved(self, position: float, *, now: float) -> None:
        self._position = position
        # Segments the player waited for but that now lie wholly behind the playhead are useless.
        for sid in sorted(self._wanted):
            index = self._index.get(sid)
            if index is not None and self._segments[index].end <= position:
                self._unwant(sid)
                self._notify(nt.SegmentUnavailable(segment_id=sid, reason="playback moved past it"))
        self._rebuild_queue(now=now)

    def _segment_requested(
        self, segment_id: SegmentId, *, max_attempts: int = DEFAULT_HTTP_ATTEMPTS, now: float
    ) -> None:
        self._http_failed_until.pop(segment_id, None)
        self._http_failure_counts.pop(segment_id, None)
        self._retries.forget(segment_id)
        index = self._index.get(segment_id)
        if index is not None and self._segments[index].gap:
            # EXT-X-GAP: there is nothing to load; the player gets the marker at once and the queue
            # moves on past it (the segment itself is never queued, see _rebuild_queue).
            self._notify(nt.SegmentReady(segment=self._segments[index], data=b"", source="gap"))
            self._head = segment_id
            self._rebuild_queue(now=now)
            return
        entry = self._cache.get(segment_id, now=now)
        if entry is not None:
            self._notify(nt.SegmentReady(segment=entry.segment, data=entry.data, source="cache"))
        elif segment_id not in self._index:
            self._notify(nt.SegmentUnavailable(segment_id=segment_id, reason="not in the playlist"))
            return
        else:
            self._wanted.add(segment_id)
            # The download policy may count a request's HTTP attempts its own way (p2pml-2.2).
            self._retries.requested(segment_id, max_attempts=self._policy.fetches_per_request(max_attempts))
        self._head = segment_id
        self._rebuild_queue(now=now)
        self._clean_cache(now=now)

    def _unwant(self, segment_id: SegmentId) -> None:
        """The player no longer waits for ``segment_id``."""
        self._wanted.discard(segment_id)
        self._retries.forget(segment_id)

    def _queue_start(self) -> int | None:
        candidates = [self._index[s] for s in self._wanted if s in self._index]
        if self._head is not None and self._head in self._index:
            candidates.append(self._index[self._head])
        return min(candidates) if candidates else None

    def _playing_index(self, start: int) -> int:
        if self._position is None:
            return start
        # The segment whose [start, end) holds the position; before the first: 0; after the last: len.
        i = bisect.bisect_right(self._starts, self._position) - 1
        if i < 0:
            return 0
        if self._position >= self._segments[i].end and i == len(self._segments) - 1:
            return len(self._segments)
        return i

    def _rebuild_queue(self, *, now: float) -> None:
        start = self._queue_start()
        if start is None:
            self._queue = []
        else:
            playing = self._playing_index(start)
            window = self._segments[start : start + self._config.forward_segment_count]
            # EXT-X-GAP segments are absent (RFC 8216bis 4.4.4.7): never queued, so no policy
            # fetches them over HTTP or asks a peer for them (even one that announces them).
            self._queue = [
                QueueEntry(segment=seg, priority=max(0, start + k - playing))
                for k, seg in enumerate(window)
                if not seg.gap
            ]
        if self._queue and not self._started:
            self._started = True
            self._policy.start(now=now)
        # Downloads of segments that left the queue are dropped (P2P Media Loader's load() does so).
        queued = self._queued_ids = frozenset(e.id for e in self._queue)
        for sid in [s for s in self._http_by_segment if s not in queued and s not in self._wanted]:
            self._abort_http(sid)
        for sid in [s for s in self._p2p_by_segment if s not in queued and s not in self._wanted]:
            self._abort_p2p(sid, keep_bytes=False)
        for sid in [s for s in self._stalled_bytes if s not in queued]:
            del self._stalled_bytes[sid]
        for sid in [s for s in self._suspect_bytes if s not in queued and s not in self._wanted]:
            del self._suspect_bytes[sid]
        for sid in [s for s in self._http_failure_counts if s not in queued]:
            del self._http_failure_counts[sid]

    def _clean_cache(self, *, now: float) -> None:
        keep = {e.id for e in self._queue} | self._wanted
        removed = self._cache.evict(
            now=now,
            expiration=self._config.cached_segment_expiration,
            max_count=self._config.cached_segments_count,
            keep=keep,
        )
        if removed:
            self._announce_due = True

    def _run_pass(self, *, now: float) -> None:
        self._pass_due = False
        if self._queue:
            self._policy.schedule(self._context, now=now)

    # ------------------------------------------------------------------ starting and stopping downloads

    def _new_request_id(self) -> int:
        rid = self._next_request_id
        self._next_request_id += 1
        return rid

    def _segment(self, segment_id: SegmentId) -> Segment:
        return self._segments[self._index[segment_id]]

    def _start_http(self, segment_id: SegmentId, *, continue_p2p: bool) -> None:
        if segment_id in self._http_by_segment or segment_id in self._cache:
            raise PolicyError(f"policy started a second download of {segment_id}", policy=self._policy.name)
        if self._segment(segment_id).gap:
            raise PolicyError(
                f"policy started a download of {segment_id}, an EXT-X-GAP segment", policy=self._policy.name
            )
        if len(self._http_by_segment) >= self._config.simultaneous_http_downloads:
            raise PolicyError("policy exceeded simultaneous_http_downloads", policy=self._policy.name)
        keep = continue_p2p and self._config.http_download_ranges
        prefix = self._stalled_bytes.pop(segment_id, None)
        if segment_id in self._p2p_by_segment:
            prefix = self._abort_p2p(segment_id, keep_bytes=True)
        segment = self._segment(segment_id)
        rid = self._new_request_id()
        download = _HttpDownload(request_id=rid, segment=segment)
        if keep:
            download.resume(prefix)
        elif prefix is not None and prefix.peer_ranges:
            download.compare_with = prefix
        self._downloads[rid] = download
        self._http_by_segment[segment_id] = rid
        self._actions.append(
            act.StartHttpFetch(
                request_id=rid,
                segment=segment,
                resume_from=download.resume_from,
                urgent=self._needed_soon(segment),
            )
        )
        self._announce_due = True

    def _start_p2p(self, segment_id: SegmentId, peer_id: str, *, now: float) -> None:
        peer = self._peers[peer_id]
        if segment_id in self._p2p_by_segment or segment_id in self._http_by_segment:
            raise PolicyError(f"policy started a second download of {segment_id}", policy=self._policy.name)
        if peer.busy_request is not None:
            raise PolicyError(f"policy asked busy peer {peer_id}", policy=self._policy.name)
        if self._segment(segment_id).gap:
            raise PolicyError(
                f"policy asked {peer_id} for {segment_id}, an EXT-X-GAP segment", policy=self._policy.name
            )
        if len(self._p2p_by_segment) >= self._config.simultaneous_p2p_downloads:
            raise PolicyError("policy exceeded simultaneous_p2p_downloads", policy=self._policy.name)
        # Bytes of an earlier attempt (a stalled or moved download) are not fetched again: the
        # protocol's byte offset asks for the rest.
        prefix = self._stalled_bytes.pop(segment_id, None)
        rid = self._new_request_id()
        download = _PeerDownload(
            request_id=rid,
            segment=self._segment(segment_id),
            peer_id=peer_id,
            header_deadline=now + self._config.p2p_segment_download_timeout,
            started=now,
        )
        download.resume(prefix)
        self._downloads[rid] = download
        self._p2p_by_segment[segment_id] = rid
        peer.busy_request = rid
        self._actions.append(
            act.RequestFromPeer(
                request_id=rid, peer_id=peer_id, segment_id=segment_id, byte_offset=download.resume_from
            )
        )

    def _move_p2p(self, segment_id: SegmentId, peer_id: str, *, now: float) -> None:
        rid = self._p2p_by_segment.get(segment_id)
        if rid is None:
            raise PolicyError(
                f"policy moved {segment_id}, which no peer is sending", policy=self._policy.name
            )
        target = self._peers.get(peer_id)
        if target is None or target.busy_request is not None:
            raise PolicyError(
                f"policy moved {segment_id} to a busy or unknown peer {peer_id}", policy=self._policy.name
            )
        download = self._peer_download(segment_id)
        # What the first peer delivered is its throughput to us (nothing at all in a while: zero).
        self._measure_peer(download, download.received - download.resume_from, now=now)
        prefix = self._abort_p2p(segment_id, keep_bytes=True)
        if prefix is not None:
            self._stalled_bytes[segment_id] = prefix
        self._start_p2p(segment_id, peer_id, now=now)

    def _forget(self, download: _AnyDownload) -> None:
        del self._downloads[download.request_id]
        self._pass_due = True
        sid = download.segment.id
        if isinstance(download, _HttpDownload):
            del self._http_by_segment[sid]
            self._announce_due = True  # it leaves our "loading over HTTP" list
            self._upload_desk.http_download_ended(sid)
        else:
            del self._p2p_by_segment[sid]
            peer = self._peers.get(download.peer_id)
            if peer is not None and peer.busy_request == download.request_id:
                peer.busy_request = None

    def _abort_http(self, segment_id: SegmentId) -> None:
        download = self._downloads[self._http_by_segment[segment_id]]
        self._forget(download)
        self._aborted += 1
        self._actions.append(act.AbortHttpFetch(request_id=download.request_id))
        self._notify(nt.SegmentAborted(segment_id=segment_id, source="http"))

    def _abort_p2p(self, segment_id: SegmentId, *, keep_bytes: bool) -> _Partial | None:
        """Cancel a P2P download; return the bytes received so far when asked to keep them."""
        download = self._peer_download(segment_id)
        self._forget(download)
        self._aborted += 1
        self._actions.append(
            act.CancelPeerDownload(
                request_id=download.request_id, peer_id=download.peer_id, segment_id=segment_id
            )
        )
        self._notify(nt.SegmentAborted(segment_id=segment_id, source="p2p"))
        if keep_bytes and not download.validating and download.total is not None and download.received:
            return download.partial()
        return None

    # ------------------------------------------------------------------ HTTP events

    def _http_download(self, request_id: int) -> _HttpDownload | None:
        download = self._downloads.get(request_id)
        # Events for a request we aborted may still arrive; they are ignored.
        return download if isinstance(download, _HttpDownload) else None

    def _http_response_started(self, event: ev.HttpResponseStarted, *, now: float) -> None:
        download = self._http_download(event.request_id)
        if download is None:
            return
        if event.offset == 0 and download.received:
            # The origin sent the whole segment: the kept prefix goes (compared at the end).
            if download.peer_ranges:
                download.compare_with = download.partial()
            download.chunks.clear()
            download.received = download.resume_from = 0
            download.peer_ranges.clear()
        elif event.offset != download.received:
            self._http_failed(
                event.request_id,
                f"response starts at byte {event.offset}, expected {download.received}",
                status=None,
                now=now,
            )
            return
        download.total = event.total_bytes
        self._upload_desk.http_response_started(download)

    def _http_chunk(self, event: ev.HttpChunkReceived, *, now: float) -> None:
        download = self._http_download(event.request_id)
        if download is None or not event.data:
            return
        download.add_bytes(event.data, peer_id=None)
        self._http_bytes += len(event.data)
        self._notify(nt.BytesReceived(source="http", size=len(event.data)))
        self._upload_desk.http_chunk(download, event.data)
        expected = download.segment.byte_range.length if download.segment.byte_range else None
        if (expected is not None and download.received > expected) or download.received > MAX_SEGMENT_SIZE:
            self._http_failed(event.request_id, "more bytes than the segment's size", status=None, now=now)

    def _http_completed(self, event: ev.HttpFetchCompleted, *, now: float) -> None:
        download = self._http_download(event.request_id)
        if download is None or download.validating:
            return
        data = download.take_bytes()
        expected = download.segment.byte_range.length if download.segment.byte_range else None
        if expected is not None and len(data) != expected:
            self._http_failed(
                event.request_id,
                f"got {len(data)} bytes, the byte range has {expected}",
                status=None,
                now=now,
            )
            return
        self._finish(download, data, now=now)

    def _http_failed(
        self,
        request_id: int,
        reason: str,
        *,
        status: int | None,
        now: float,
        permanent: bool = False,
    ) -> None:
        download = self._http_download(request_id)
        if download is None:
            return
        sid = download.segment.id
        self._forget(download)
        self._actions.append(act.AbortHttpFetch(request_id=request_id))
        self._http_failures += 1
        self._http_failed_until[sid] = now + self._config.http_failed_segment_timeout
        self._http_failure_counts[sid] = self._http_failure_counts.get(sid, 0) + 1
        self._notify(nt.SegmentLoadFailed(segment_id=sid, source="http", reason=reason, status=status))
        if sid not in self._wanted:
            return  # prefetch: the download policy decides (http_failed_segment_timeout)
        # The jitter's draw comes from the scheduler's own random source (the simulator seeds it),
        # and only when the delay is randomised at all: a run with jitter 0 draws nothing.
        draw = self._rng.random() if self._retries.jitter else 0.0
        retry_at = self._retries.failed(sid, status=status, now=now, permanent=permanent, draw=draw)
        if retry_at is None:
            # An unusable answer, or the request's attempts are spent: the player's wait ends
            # with the reason.
            self._unwant(sid)
            self._notify(nt.SegmentUnavailable(segment_id=sid, reason=reason))
            self._rebuild_queue(now=now)
        else:
            # HTTP may have it again from retry_at on (the timer wakes up then, see get_timer). The
            # policy's failure count goes on: a retry is not a new request from the player.
            self._http_failed_until[sid] = retry_at

    # ------------------------------------------------------------------ peers

    def _peer_connected(self, peer_id: str) -> None:
        if peer_id in self._peers:
            return
        self._peers[peer_id] = _Peer(peer_id=peer_id)
        self._upload_desk.peer_connected(peer_id)
        if self._config.use_p2p and not self._config.consume_only:
            self._actions.append(self._announcement(peer_id=peer_id))

    def _drop_peer(self, peer_id: str, *, reason: str, disconnect: bool) -> None:
        self._upload_desk.peer_dropped(peer_id)
        peer = self._peers.pop(peer_id, None)
        if peer is None:
            return
        if disconnect:
            self._actions.append(act.DisconnectPeer(peer_id=peer_id, reason=reason))
            # Dropped for misbehaving: no later attempt continues from bytes it sent, and those
            # that already do are discarded when they end (see _finish).
            for sid in [
                s for s, p in self._stalled_bytes.items() if any(r.peer_id == peer_id for r in p.peer_ranges)
            ]:
                self._suspect(sid, self._stalled_bytes.pop(sid), counted=False, dropped={peer_id})
            for download in self._downloads.values():
                if any(r.peer_id == peer_id for r in download.peer_ranges):
                    download.tainted_by.add(peer_id)
        for download in [
            d for d in self._downloads.values() if isinstance(d, _PeerDownload) and d.peer_id == peer_id
        ]:
            self._p2p_given_up(download, reason)

    def _p2p_given_up(self, download: _PeerDownload, reason: str) -> None:
        """A P2P download ends without its segment; a policy may try again from another source."""
        if download.peer_ranges:
            # The bytes it resumed from (another peer's) go; they are still compared with the
            # origin's once the segment is stored, so the peer that sent them answers for them.
            self._suspect(download.segment.id, download.partial(), counted=False, dropped=download.tainted_by)
        self._forget(download)
        self._p2p_failures += 1
        self._notify(
            nt.SegmentLoadFailed(
                segment_id=download.segment.id, source="p2p", reason=reason, peer_id=download.peer_id
            )
        )

    def _peer_announced(self, event: ev.PeerAnnounced) -> bool:
        """Record a peer's map; ``True`` when its availability of a queued segment changed (added or
        removed, as loaded or as loading over HTTP): only then can a policy decide differently."""
        peer = self._peers.get(event.peer_id)
        if peer is None:
            return False  # announcements only count from connected peers
        old_loaded, old_loading = peer.loaded, peer.loading_by_http
        new_loaded, new_loading = event.loaded, event.loading_by_http
        peer.loaded = new_loaded
        peer.loading_by_http = new_loading
        if peer.refused:
            peer.refused = frozenset()
        policy = self._policy
        lost_counts = policy.passes_on_lost_availability
        # This runs once per announcement per neighbour, the simulator's hottest path. The set
        # operations run in C on the hashes the sets already store (no SegmentId.__hash__ calls):
        # the queued segments the peer gained (or, when losses count too, gained or lost).
        queued = self._queued_ids
        if lost_counts:
            changed = queued.intersection(new_loaded.symmetric_difference(old_loaded))
        else:
            changed = queued.intersection(new_loaded).difference(old_loaded)
        if policy.passes_on_http_loading and new_loading != old_loading:
            changed |= queued.intersection(new_loading.symmetric_difference(old_loading))
        if not changed:
            return False
        if lost_counts:
            return True
        cache, http, p2p = self._cache, self._http_by_segment, self._p2p_by_segment
        for sid in changed:  # noqa: SIM110 (usually one segment: a plain loop, no generator frame)
            if sid not in cache and sid not in http and sid not in p2p:
                return True
        return False

    def _p2p_download(self, request_id: int) -> _PeerDownload | None:
        download = self._downloads.get(request_id)
        return download if isinstance(download, _PeerDownload) else None

    def _peer_download(self, segment_id: SegmentId) -> _PeerDownload:
        """The P2P download of ``segment_id`` (one is in progress)."""
        download = self._downloads[self._p2p_by_segment[segment_id]]
        assert isinstance(download, _PeerDownload)
        return download

    def _report_misbehaviour(self, peer_id: str, swarm: str, reason: str) -> None:
        """Tell the application why ``peer_id`` is dropped, and count the strike."""
        self._notify(nt.PeerMisbehaved(peer_id=peer_id, reason=reason))
        banned = self._reputation.misbehaved(swarm, peer_id, now=self._now, reason=reason)
        if banned is not None:
            self._notify(banned)

    def _peer_lied(
        self,
        peer_id: str,
        segment_id: SegmentId,
        check: Literal["sha256", "spot-check", "origin-bytes"],
        reason: str,
    ) -> None:
        """``peer_id``'s bytes of ``segment_id`` are proven wrong: report it, ban the peer."""
        self._notify(
            nt.IntegrityCheckFailed(segment_id=segment_id, peer_id=peer_id, check=check, reason=reason)
        )
        banned = self._reputation.lied(segment_id.rendition, peer_id, now=self._now, reason=reason)
        if banned is not None:
            self._notify(banned)

    def _peer_misbehaved(self, download: _PeerDownload, reason: str) -> None:
        peer_id = download.peer_id
        if peer_id in self._peers:  # the application hears why the peer is dropped (once)
            self._report_misbehaviour(peer_id, download.segment.id.rendition, reason)
        self._actions.append(
            act.CancelPeerDownload(
                request_id=download.request_id, peer_id=peer_id, segment_id=download.segment.id
            )
        )
        self._drop_peer(peer_id, reason=reason, disconnect=True)

    def _peer_response_started(self, event: ev.PeerResponseStarted, *, now: float) -> None:
        download = self._p2p_download(event.request_id)
        if download is None:
            return
        expected = download.segment.byte_range.length if download.segment.byte_range else None
        if download.total is not None:
            self._peer_misbehaved(download, "second data header for one request")
        elif event.total_bytes <= 0 or event.total_bytes > MAX_SEGMENT_SIZE:
            self._peer_misbehaved(download, f"announced an impossible size ({event.total_bytes} bytes)")
        elif expected is not None and event.total_bytes != expected:
            self._peer_misbehaved(
                download, f"announced {event.total_bytes} bytes, the byte range has {expected}"
            )
        elif event.total_bytes <= download.received:
            # Smaller than the bytes we resumed from: one of the two sources is wrong, and we
            # cannot tell which. Neither is blamed; the kept bytes go and the segment starts over.
            self._actions.append(
                act.CancelPeerDownload(
                    request_id=download.request_id,
                    peer_id=download.peer_id,
                    segment_id=download.segment.id,
                )
            )
            self._p2p_given_up(download, "size disagrees with the bytes resumed from")
        else:
            download.total = event.total_bytes
            download.header_deadline = None
            download.last_progress = now

    def _peer_chunk(self, event: ev.PeerChunkReceived, *, now: float) -> None:
        download = self._p2p_download(event.request_id)
        if download is None or not event.data:
            return
        if download.total is None:
            self._peer_misbehaved(download, "sent data before its data header")
            return
        download.add_bytes(event.data, peer_id=download.peer_id)
        download.last_progress = now
        self._p2p_bytes += len(event.data)
        self._notify(nt.BytesReceived(source="p2p", size=len(event.data), peer_id=download.peer_id))
        if download.received > download.total:
            self._peer_misbehaved(download, "sent more bytes than it announced")
        elif download.received == download.total:
            self._finish(download, download.take_bytes(), now=now)

    def _peer_download_failed(self, event: ev.PeerDownloadFailed) -> None:
        download = self._p2p_download(event.request_id)
        if download is None:
            return
        peer_id = download.peer_id
        sid = download.segment.id
        if event.misbehaved:
            self._peer_misbehaved(download, event.reason)
            return
        if download.total is not None and download.received > download.resume_from:
            # It stopped part-way (a relayed HTTP download of the peer's failed): the next source
            # continues from here, as after a stall.
            self._stalled_bytes[sid] = download.partial()
        self._forget(download)
        self._p2p_failures += 1
        peer = self._peers.get(peer_id)
        # Absent or failed ("peer gone" while its link closes): not asked for this segment again
        # until it announces it anew. Otherwise a transport that fails at once makes a
        # request/failure loop at one instant (found by the simulator soak, benchmarks/soak.py).
        if peer is not None and (sid in peer.loaded or sid in peer.loading_by_http):
            peer.loaded = peer.loaded - {sid}
            peer.loading_by_http = peer.loading_by_http - {sid}
            peer.refused = peer.refused | {sid}
        self._notify(nt.SegmentLoadFailed(segment_id=sid, source="p2p", reason=event.reason, peer_id=peer_id))

    def _p2p_header_timeout(self, download: _PeerDownload) -> None:
        # As in 0.6: no data header within p2p_segment_download_timeout cancels and drops the peer.
        self._peer_misbehaved(download, "no answer within p2p_segment_download_timeout")

    def _stall_deadline(self, download: _PeerDownload) -> float | None:
        if download.validating or download.last_progress is None:
            return None
        return download.last_progress + self._config.p2p_stall_timeout

    def _p2p_stalled(self, download: _PeerDownload) -> None:
        # The peer stays connected (it may just be slow); the request goes, its bytes are kept.
        sid = download.segment.id
        self._actions.append(
            act.CancelPeerDownload(request_id=download.request_id, peer_id=download.peer_id, segment_id=sid)
        )
        partial = download.partial()
        self._forget(download)
        self._p2p_failures += 1
        if partial.data:
            self._stalled_bytes[sid] = partial
        peer = self._peers.get(download.peer_id)
        if peer is not None:  # do not ask it for this segment again until it announces it anew
            peer.loaded = peer.loaded - {sid}
        self._notify(
            nt.SegmentLoadFailed(
                segment_id=sid, source="p2p", reason="peer stopped sending", peer_id=download.peer_id
            )
        )

    def _needed_soon(self, segment: Segment) -> bool:
        """``upload_yield_time``: whether the player needs ``segment`` so soon that our uploads
        should pause while it comes over HTTP. Without a playback position (not playing yet, or
        an application that never reports one) only a segment the player asked for is; a
        prefetch never is."""
        within = self._config.upload_yield_time
        if not within:
            return False
        position = self._position
        if position is None:
            return segment.id in self._wanted
        return segment.start - position < within

    def _buffer_too_thin(self) -> bool:
        """``upload_min_buffer``: our own playback comes first. While less than that many seconds
        of contiguous media ahead of the playhead are cached, requests are answered "absent" and the
        requester turns to another holder or to HTTP."""
        minimum = self._config.upload_min_buffer
        if minimum is None:
            return False
        position = self._position
        if position is None or not self._segments:
            return True  # not playing yet: nothing buffered
        buffered = 0.0
        for segment in self._segments[self._playing_index(0) :]:
            # A gap needs no bytes: the playhead moves through it as through buffered media.
            if segment.id not in self._cache and not segment.gap:
                break
            buffered += segment.end - max(segment.start, position)
            if buffered >= minimum:
                return False
        return True

    # ------------------------------------------------------------------ finishing

    def _finish(self, download: _AnyDownload, data: bytes, *, now: float) -> None:
        # A segment holding even one peer byte is checked as a P2P one, whichever source finished
        # it: an HTTP Range request continuing a liar's bytes must not launder them.
        if download.tainted_by:
            self._reject_peer_bytes(download, now=now, blame=False)
            return
        from_peers = bool(download.peer_ranges)
        if (from_peers and self._validate_p2p) or self._config.segment_validator is not None:
            download.validating = True
            if isinstance(download, _PeerDownload):
                download.header_deadline = None
            self._actions.append(
                act.ValidateSegment(
                    request_id=download.request_id,
                    segment=download.segment,
                    data=data,
                    method="p2p" if from_peers else "http",
                    peer_id=download.top_peer(),
                    peer_ranges=tuple(download.peer_ranges),
                )
            )
            return
        self._store(download, data, now=now, verified=False)

    def _segment_validated(self, event: ev.SegmentValidated, *, now: float) -> None:
        download = self._downloads.get(event.request_id)
        if download is None or not download.validating:
            return
        if event.valid:
            self._store(download, download.take_bytes(), now=now, verified=event.verified)
        elif download.peer_ranges:
            self._reject_peer_bytes(download, now=now, blame=True)
        else:
            self._http_failed(event.request_id, "segment validator rejected the bytes", status=None, now=now)

    def _reject_peer_bytes(self, download: _AnyDownload, *, now: float, blame: bool) -> None:
        """The checks rejected a segment holding peers' bytes (``blame``), or it holds bytes of a
        peer dropped for misbehaving since. With ``blame`` the origin's bytes are taken to be right:
        the one peer that sent any is reported as misbehaving and disconnected; when several did,
        their bytes are compared with the origin's once the segment is stored again, and those
        whose bytes differ are blamed. The bytes go, and the segment is loaded again whole over
        HTTP (never continued from the rejected bytes) when a slot is free."""
        sid = download.segment.id
        blamed = list(dict.fromkeys(r.peer_id for r in download.peer_ranges)) if blame else []
        if len(blamed) > 1 or not blame:
            # Several peers sent bytes (one stalled, another continued): blaming all of them would
            # let a liar get an honest peer banned by stalling just before it. The origin's bytes,
            # when the segment comes again over HTTP, name the liars (_compare_with_origin); so
            # they do for the other senders of bytes held with a dropped liar's.
            self._suspect(sid, download.partial(), counted=True, dropped=download.tainted_by)
            blamed = []
        self._forget(download)
        self._stalled_bytes.pop(sid, None)
        self._p2p_failures += 1
        self._rejected_peer_bytes += sum(r.length for r in download.peer_ranges)
        reason = (
            "segment validator rejected the bytes"
            if blame
            else "it holds bytes of a peer dropped for misbehaving"
        )
        if download.source == "http":
            reason += " (continued over HTTP)"
        self._notify(
            nt.SegmentLoadFailed(segment_id=sid, source="p2p", reason=reason, peer_id=download.top_peer())
        )
        for peer_id in blamed:
            if peer_id in self._peers:  # the application hears why the peer is dropped (once)
                self._report_misbehaviour(peer_id, sid.rendition, reason)
            self._drop_peer(peer_id, reason=reason, disconnect=True)
        if (
            (sid in self._queued_ids or sid in self._wanted)
            and sid not in self._http_by_segment
            and sid not in self._p2p_by_segment
            and len(self._http_by_segment) < self._config.simultaneous_http_downloads
        ):
            self._context.start_http(sid, now=now, continue_p2p=False)

    def _store(self, download: _AnyDownload, data: bytes, *, now: float, verified: bool) -> None:
        self._forget(download)
        peer_bytes = sum(r.length for r in download.peer_ranges)
        if verified:
            self._p2p_bytes_verified += peer_bytes
        else:
            self._p2p_bytes_unverified += peer_bytes
        segment = download.segment
        self._cache.put(segment, data, now=now)
        self._announce_due = True
        if isinstance(download, _HttpDownload):
            self._http_segments += 1
            if download.started is not None and segment.duration > 0:
                sample = (now - download.started) / segment.duration
                self._http_fetch_time = _moving_average(self._http_fetch_time, sample)
        else:
            self._p2p_segments += 1
            self._measure_peer(download, len(data) - download.resume_from, now=now)
        self._notify(
            nt.SegmentLoaded(
                segment_id=segment.id,
                source=download.source,
                size=len(data),
                peer_id=download.peer_id if isinstance(download, _PeerDownload) else None,
                peer_bytes=peer_bytes,
                verified=verified and peer_bytes > 0,
            )
        )
        if isinstance(download, _HttpDownload) and download.compare_with is not None:
            self._compare_with_origin(segment, download.compare_with, data)
        suspects = self._suspect_bytes.pop(segment.id, ())
        if verified or not download.peer_ranges:
            # Bytes known to be the origin's (all from it, or verified): they tell which of the
            # senders of a rejected attempt lied (see _reject_peer_bytes).
            for suspect, counted in suspects:
                self._compare_with_origin(segment, suspect, data, counted=counted)
        if segment.id in self._wanted:
            self._unwant(segment.id)
            self._notify(nt.SegmentReady(segment=segment, data=data, source=download.source))
            self._rebuild_queue(now=now)

    def _suspect(self, segment_id: SegmentId, partial: _Partial, *, counted: bool, dropped: set[str]) -> None:
        """Keep the bytes of ``partial`` that peers other than ``dropped`` (already blamed) sent, to
        compare with the origin's when the segment is next stored from known-good bytes.
        ``counted``: they are already among the rejected bytes."""
        ranges = tuple(r for r in partial.peer_ranges if r.peer_id not in dropped)
        if ranges:
            kept = _Partial(data=partial.data, peer_ranges=ranges)
            self._suspect_bytes.setdefault(segment_id, []).append((kept, counted))

    def _compare_with_origin(
        self, segment: Segment, partial: _Partial, origin: bytes, *, counted: bool = False
    ) -> None:
        """Blame the peers whose unused bytes of ``segment`` (an earlier attempt's) differ from the
        origin's: proof they lied, though their bytes never reached the player. ``counted``: the
        bytes are already among the rejected ones (the checks rejected them)."""
        liars: dict[str, act.PeerByteRange] = {}
        for span in partial.peer_ranges:
            sent = partial.data[span.offset : span.end]
            if sent != origin[span.offset : span.end] and span.peer_id not in liars:
                liars[span.peer_id] = span
        for peer_id, span in liars.items():
            reason = f"bytes {span.offset}-{span.end - 1} differ from the origin's"
            self._peer_lied(peer_id, segment.id, "origin-bytes", reason)
            if not counted:
                self._rejected_peer_bytes += span.length
            if peer_id in self._peers:
                self._report_misbehaviour(peer_id, segment.id.rendition, reason)
                self._drop_peer(peer_id, reason=reason, disconnect=True)

    def _measure_peer(self, download: _PeerDownload, size: int, *, now: float) -> None:
        """Fold a finished P2P download into its peer's throughput (request to last byte)."""
        peer = self._peers.get(download.peer_id)
        if peer is None or download.started is None:
            return
        peer.throughput = _moving_average(peer.throughput, size / max(now - download.started, 1e-3))

    # ------------------------------------------------------------------ helpers

    def _notify(self, notification: nt.Notification) -> None:
        self._notifications.append(notification)

    def _announcement(self, *, peer_id: str | None) -> act.AnnounceSegments:
        # Whatever it was told "absent" for, the peer may ask again after this announcement.
        self._upload_desk.announced(peer_id)
        return act.AnnounceSegments(
            loaded=tuple(sorted(self._cache, key=SegmentId.sort_key)),
            loading_by_http=tuple(sorted(self._http_by_segment, key=SegmentId.sort_key)),
            peer_id=peer_id,
        )


class _Context:
    """The scheduler as a policy sees it (implements :class:`SchedulingContext`)."""

    def __init__(self, scheduler: Scheduler) -> None:
        self._s = scheduler

    @property
    def config(self) -> LoaderConfig:
        return self._s._config

    @property
    def rng(self) -> random.Random:
        return self._s._rng

    @property
    def queue(self) -> Sequence[QueueEntry]:
        return self._s._queue

    @property
    def http_active(self) -> int:
        return len(self._s._http_by_segment)

    @property
    def p2p_active(self) -> int:
        return len(self._s._p2p_by_segment)

    @property
    def connected_peers(self) -> int:
        return len(self._s._peers)

    @property
    def peer_id(self) -> str | None:
        return self._s._peer_id

    def connected_peer_ids(self) -> list[str]:
        return sorted(self._s._peers)

    @property
    def playlist_end(self) -> float | None:
        segments = self._s._segments
        return segments[-1].end if segments else None

    @property
    def position(self) -> float | None:
        return self._s._position

    def http_failures(self, segment_id: SegmentId) -> int:
        return self._s._http_failure_counts.get(segment_id, 0)

    def is_cached(self, segment_id: SegmentId) -> bool:
        return segment_id in self._s._cache

    def is_requested(self, segment_id: SegmentId) -> bool:
        return segment_id in self._s._wanted

    def is_http_loading(self, segment_id: SegmentId) -> bool:
        return segment_id in self._s._http_by_segment

    def is_p2p_loading(self, segment_id: SegmentId) -> bool:
        return segment_id in self._s._p2p_by_segment

    def http_failed_recently(self, segment_id: SegmentId, *, now: float) -> bool:
        until = self._s._http_failed_until.get(segment_id)
        return until is not None and now < until

    def any_peer_has(self, segment_id: SegmentId, *, loading: bool = False) -> bool:
        if loading:
            return self.any_peer_knows(segment_id)
        return any(segment_id in p.loaded for p in self._s._peers.values())

    def any_peer_knows(self, segment_id: SegmentId) -> bool:
        return any(segment_id in p.loaded or segment_id in p.loading_by_http for p in self._s._peers.values())

    def any_peer_refused(self, segment_id: SegmentId) -> bool:
        return any(segment_id in p.refused for p in self._s._peers.values())

    def idle_peers_with(self, segment_id: SegmentId, *, loading: bool = False) -> list[str]:
        found = [
            p.peer_id
            for p in self._s._peers.values()
            if p.busy_request is None
            and (segment_id in p.loaded or (loading and segment_id in p.loading_by_http))
        ]
        if len(found) > 1:
            found.sort()  # a stable order, so that a seeded choice does not depend on connection order
        return found

    @property
    def upload_speed(self) -> float | None:
        return self._s._upload_desk.upload_speed

    def peer_throughput(self, peer_id: str) -> float | None:
        peer = self._s._peers.get(peer_id)
        return peer.throughput if peer is not None else None

    @property
    def http_fetch_time(self) -> float | None:
        return self._s._http_fetch_time

    def start_http(self, segment_id: SegmentId, *, now: float, continue_p2p: bool) -> None:
        s = self._s
        s._start_http(segment_id, continue_p2p=continue_p2p)
        s._downloads[s._http_by_segment[segment_id]].started = now  # times the origin

    def start_p2p(self, segment_id: SegmentId, peer_id: str, *, now: float) -> None:
        self._s._start_p2p(segment_id, peer_id, now=now)

    def p2p_progress(self, segment_id: SegmentId) -> P2PProgress | None:
        s = self._s
        if segment_id not in s._p2p_by_segment:
            return None
        download = s._peer_download(segment_id)
        return P2PProgress(
            peer_id=download.peer_id,
            started=download.started if download.started is not None else 0.0,
            received=download.received,
            resumed_from=download.resume_from,
            total=download.total,
        )

    def move_p2p(self, segment_id: SegmentId, peer_id: str, *, now: float) -> None:
        self._s._move_p2p(segment_id, peer_id, now=now)

    def abort_http(self, segment_id: SegmentId) -> None:
        self._s._abort_http(segment_id)

    def abort_p2p(self, segment_id: SegmentId) -> None:
        self._s._abort_p2p(segment_id, keep_bytes=False)


class _DeskHost:
    """The scheduler as its upload desk sees it (implements :class:`~p2ploader.core.uploads.UploadHost`)."""

    def __init__(self, scheduler: Scheduler) -> None:
        self._s = scheduler

    def emit(self, action: act.Action) -> None:
        self._s._actions.append(action)

    def notify(self, notification: nt.Notification) -> None:
        self._s._notifications.append(notification)

    def cached(self, segment_id: SegmentId, *, now: float) -> CachedSegment | None:
        return self._s._cache.get(segment_id, now=now)

    def segment(self, segment_id: SegmentId) -> Segment:
        return self._s._segment(segment_id)

    def http_download(self, segment_id: SegmentId) -> RelaySource | None:
        s = self._s
        rid = s._http_by_segment.get(segment_id)
        return s._downloads[rid] if rid is not None else None

    def buffer_too_thin(self) -> bool:
        return self._s._buffer_too_thin()

    def accepts_upload(self, segment: Segment, *, now: float) -> bool:
        s = self._s
        return s._policy.accepts_upload(s._context, segment, now=now)

    def drop_misbehaving_peer(self, peer_id: str, swarm: str, reason: str) -> None:
        self._s._report_misbehaviour(peer_id, swarm, reason)
        self._s._drop_peer(peer_id, reason=reason, disconnect=True)
