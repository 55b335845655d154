"""A small closed world around the sans-IO scheduler, on a driven clock: an origin that answers
every HTTP fetch after a fixed time, scripted peers, the integrity checks, and a player that asks
for the segments in order and plays them at 1x. Nothing sleeps: time jumps from one due event to
the next (or to the scheduler's timer).

It exists to measure protocol logic end to end (start-up time with a silent peer, what reaches
the player when a peer lies) for every preset, without sockets.
"""

from __future__ import annotations

import hashlib
import heapq
import itertools
import random
from collections.abc import Callable
from typing import Literal

from p2ploader.config import LoaderConfig
from p2ploader.core import actions as act
from p2ploader.core import events as ev
from p2ploader.core import notifications as nt
from p2ploader.core.integrity import plan_spot_checks
from p2ploader.core.scheduler import Scheduler

from .harness import make_segments

Integrity = Literal["off", "digests", "spot-checks"]
# How a scripted peer answers a request: the bytes it sends from the offset asked for, or None to
# send nothing at all (not even a data header).
Answer = Callable[[int, int, bytes], bytes | None]  # (sequence, byte_offset, truth) -> bytes


def silent(sequence: int, offset: int, truth: bytes) -> bytes | None:
    """Announces everything, answers nothing."""
    return None


def liar_then_stall(sequence: int, offset: int, truth: bytes) -> bytes:
    """A correct data header, then size-1 wrong bytes, then nothing (the reported bypass)."""
    return bytes(b ^ 0xFF for b in truth[offset:-1])


class World:
    """One viewer (the scheduler) with an origin and scripted peers. See the module docstring."""

    def __init__(
        self,
        config: LoaderConfig,
        *,
        integrity: Integrity = "off",
        segments: int = 12,
        segment_size: int = 4000,
        duration: float = 4.0,
        http_time: float = 1.0,
        p2p_latency: float = 0.05,
        seed: int = 1,
    ) -> None:
        self.config = config.evolve(integrity_spot_checks=3 if integrity == "spot-checks" else 0)
        self.integrity = integrity
        self.segments = make_segments(segments, duration=duration)
        rng = random.Random(seed)
        self.truth = {s.id.sequence: rng.randbytes(segment_size) for s in self.segments}
        self.digests = {n: hashlib.sha256(b).digest() for n, b in self.truth.items()}
        self.http_time = http_time
        self.p2p_latency = p2p_latency
        self.now = 0.0
        self.scheduler = Scheduler(self.config, rng=random.Random(seed), validate_p2p=integrity != "off")
        self._spot_rng = random.Random(seed + 1)
        self._queue: list[tuple[float, int, Callable[[], None]]] = []
        self._order = itertools.count()
        self.peers: dict[str, Answer] = {}
        self.notifications: list[nt.Notification] = []
        self.actions: list[act.Action] = []
        self._aborted_http: set[int] = set()
        self._cancelled_p2p: set[int] = set()
        # The player.
        self.ready: dict[int, bytes] = {}
        self.first_ready_at: float | None = None
        self.started_at: float | None = None
        self.position = 0.0
        self.stalled_seconds = 0.0
        self._next_wanted = 0
        self._feed(ev.PlaylistUpdated(segments=self.segments))

    # ------------------------------------------------------------------ setup

    def connect(self, peer_id: str, answer: Answer, *, loaded: range | None = None) -> None:
        self.peers[peer_id] = answer
        self._feed(ev.PeerConnected(peer_id=peer_id))
        have = range(len(self.segments)) if loaded is None else loaded
        ids = frozenset(self.segments[n].id for n in have)
        self._feed(ev.PeerAnnounced(peer_id=peer_id, loaded=ids, loading_by_http=frozenset()))

    def tracker_reports(self, incomplete: int) -> None:
        self._feed(ev.TrackerUpdated(incomplete=incomplete))

    # ------------------------------------------------------------------ running

    def play(self, *, until: float, tick: float = 0.25) -> None:
        """Request segment 0 and play: the player keeps asking for the next segment as soon as the
        previous one is ready, and moves its playhead at 1x while the segment under it is there."""
        self._request_next()
        self._at(self.now + tick, lambda: self._tick(tick))
        while True:
            due = self._queue[0][0] if self._queue else None
            timer = self.scheduler.get_timer()
            when = min(t for t in (due, timer) if t is not None) if (due or timer) is not None else None
            if when is None or when > until:
                break
            self.now = max(self.now, when)
            if timer is not None and timer <= self.now:
                self.scheduler.handle_timer(now=self.now)
                self._drain()
            while self._queue and self._queue[0][0] <= self.now:
                _, _, run = heapq.heappop(self._queue)
                run()
        self.now = until

    def of_type(self, kind: type) -> list[object]:
        return [x for x in self.actions + self.notifications if isinstance(x, kind)]

    def wrong_segments(self) -> list[int]:
        return [n for n, data in self.ready.items() if data != self.truth[n]]

    # ------------------------------------------------------------------ internals

    def _at(self, when: float, run: Callable[[], None]) -> None:
        heapq.heappush(self._queue, (when, next(self._order), run))

    def _feed(self, event: ev.Event) -> None:
        self.scheduler.handle_event(event, now=self.now)
        self._drain()

    def _drain(self) -> None:
        for action in self.scheduler.actions_to_perform(now=self.now):
            self.actions.append(action)
            self._perform(action)
        while (n := self.scheduler.next_notification()) is not None:
            self.notifications.append(n)
            if isinstance(n, nt.SegmentReady):
                self._segment_ready(n)

    def _request_next(self) -> None:
        if self._next_wanted < len(self.segments):
            self._feed(ev.SegmentRequested(segment_id=self.segments[self._next_wanted].id))

    def _segment_ready(self, ready: nt.SegmentReady) -> None:
        n = ready.segment.id.sequence
        self.ready[n] = ready.data
        if self.first_ready_at is None:
            self.first_ready_at = self.now
        if n == self._next_wanted:
            self._next_wanted += 1
            self._at(self.now, self._request_next)

    def _tick(self, tick: float) -> None:
        playing = int(self.position // self.segments[0].duration)
        if playing < len(self.segments):
            if playing in self.ready:
                self.position += tick
            elif self.first_ready_at is not None:
                self.stalled_seconds += tick
            self._feed(ev.PlaybackMoved(position=self.position))
        self._at(self.now + tick, lambda: self._tick(tick))

    def _perform(self, action: act.Action) -> None:
        match action:
            case act.StartHttpFetch():
                self._at(self.now + self.http_time, lambda: self._http_answer(action))
            case act.AbortHttpFetch():
                self._aborted_http.add(action.request_id)
            case act.RequestFromPeer():
                self._at(self.now + self.p2p_latency, lambda: self._peer_answer(action))
            case act.CancelPeerRequest():
                self._cancelled_p2p.add(action.request_id)
            case act.DisconnectPeer():
                self.peers.pop(action.peer_id, None)
            case act.ValidateSegment():
                valid, verified = self._check(action)
                self._at(
                    self.now,
                    lambda: self._feed(
                        ev.SegmentValidated(request_id=action.request_id, valid=valid, verified=verified)
                    ),
                )
            case _:
                pass

    def _http_answer(self, action: act.StartHttpFetch) -> None:
        rid = action.request_id
        if rid in self._aborted_http:
            return
        truth = self.truth[action.segment.id.sequence]
        self._feed(ev.HttpResponseStarted(request_id=rid, offset=action.resume_from, total_bytes=len(truth)))
        self._feed(ev.HttpChunkReceived(request_id=rid, data=truth[action.resume_from :]))
        self._feed(ev.HttpFetchCompleted(request_id=rid))

    def _peer_answer(self, action: act.RequestFromPeer) -> None:
        answer = self.peers.get(action.peer_id)
        if answer is None or action.request_id in self._cancelled_p2p:
            return
        n = action.segment_id.sequence
        truth = self.truth[n]
        data = answer(n, action.byte_offset, truth)
        if data is None:
            return
        self._feed(ev.PeerResponseStarted(request_id=action.request_id, total_bytes=len(truth)))
        if data:
            self._feed(ev.PeerChunkReceived(request_id=action.request_id, data=data))

    def _check(self, action: act.ValidateSegment) -> tuple[bool, bool]:
        """What the loader's IntegrityChecker answers, with the origin's bytes at hand."""
        if action.method != "p2p" or self.integrity == "off":
            return True, False
        n = action.segment.id.sequence
        if self.integrity == "digests":
            ok = hashlib.sha256(action.data).digest() == self.digests[n]
            return ok, ok
        truth = self.truth[n]
        plan = plan_spot_checks(
            len(action.data),
            count=self.config.integrity_spot_checks,
            length=self.config.integrity_spot_check_bytes,
            rng=self._spot_rng,
            focus=[(r.offset, r.length) for r in action.peer_ranges],
        )
        ok = len(action.data) == len(truth) and all(
            action.data[r.offset : r.end] == truth[r.offset : r.end] for r in plan
        )
        return ok, ok
