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

import attrs

from p2ploader.config import LoaderConfig
from p2ploader.core import actions as act
from p2ploader.core import events as ev
from p2ploader.core import notifications as nt
from p2ploader.core.integrity import plan_spot_checks
from p2ploader.core.scheduler import Scheduler
from p2ploader.testing.harness import make_segments

Integrity = Literal["off", "digests", "spot-checks"]


@attrs.frozen(kw_only=True)
class Reply:
    """A scripted answer spread over time (the plain ``bytes`` answer is ``Reply(chunks=(data,))``).

    ``total_bytes``: the size its data header announces (``None``: the segment's true size).
    ``absent``: it answers "absent" and nothing else. ``chunks`` are sent one every ``interval``
    seconds after the header; then the peer ``departs`` (its link closes: ``PeerDisconnected``)
    or, by default, just stops sending."""

    total_bytes: int | None = None
    absent: bool = False
    chunks: tuple[bytes, ...] = ()
    interval: float = 0.0
    departs: bool = False


# How a scripted peer answers a request: the bytes it sends from the offset asked for, None to
# send nothing at all (not even a data header), or a Reply.
Answer = Callable[[int, int, bytes], "bytes | Reply | None"]  # (sequence, byte_offset, truth)


def silent(sequence: int, offset: int, truth: bytes) -> bytes | None:
    """Announces everything, answers nothing."""
    return None


def liar_then_stall(sequence: int, offset: int, truth: bytes) -> bytes:
    """A correct data header, then size-1 wrong bytes, then nothing (the reported bypass)."""
    return bytes(b ^ 0xFF for b in truth[offset:-1])


def honest(sequence: int, offset: int, truth: bytes) -> bytes:
    """Sends the origin's bytes from the offset asked for."""
    return truth[offset:]


def liar(sequence: int, offset: int, truth: bytes) -> bytes:
    """Sends every byte wrong (each one flipped), with the right size."""
    return bytes(b ^ 0xFF for b in truth[offset:])


def trickler(bytes_per_second: int, *, step: float = 0.25) -> Answer:
    """Sends the right bytes, ``bytes_per_second`` of them, one small chunk every ``step`` seconds
    (never long enough apart to look stalled)."""
    per_step = max(1, int(bytes_per_second * step))

    def answer(sequence: int, offset: int, truth: bytes) -> Reply:
        rest = truth[offset:]
        chunks = tuple(rest[i : i + per_step] for i in range(0, len(rest), per_step))
        return Reply(chunks=chunks, interval=step)

    return answer


def short(sequence: int, offset: int, truth: bytes) -> Reply:
    """Announces the true size, sends the first half of what was asked (right bytes), then stops."""
    rest = truth[offset:]
    return Reply(chunks=(rest[: len(rest) // 2],))


def wrong_size(delta: int) -> Answer:
    """Announces the true size plus ``delta`` bytes and sends that many: the origin's bytes cut
    short (``delta`` < 0) or followed by junk (``delta`` > 0)."""

    def answer(sequence: int, offset: int, truth: bytes) -> Reply:
        total = len(truth) + delta
        data = (truth + b"\x00" * max(0, delta))[offset:total]
        return Reply(total_bytes=total, chunks=(data,))

    return answer


def absent_liar(sequence: int, offset: int, truth: bytes) -> Reply:
    """Announces every segment and answers "absent" to every request."""
    return Reply(absent=True)


def departs(sequence: int, offset: int, truth: bytes) -> Reply:
    """Sends the first half of what was asked (right bytes), then its link closes."""
    rest = truth[offset:]
    return Reply(chunks=(rest[: len(rest) // 2],), departs=True)


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
        self.bytes_sent: dict[str, int] = {}  # peer id -> bytes it delivered to the viewer
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
            case act.CancelPeerDownload():
                self._cancelled_p2p.add(action.request_id)
            case act.DisconnectPeer():
                self.peers.pop(action.peer_id, None)
            case act.ValidateSegment():
                valid, verified = self._check(action)
                if not valid:
                    self._integrity_failed(action)
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
        reply = answer(n, action.byte_offset, truth)
        if reply is None:
            return
        if not isinstance(reply, Reply):
            reply = Reply(chunks=(reply,))
        rid = action.request_id
        if reply.absent:
            self._feed(ev.PeerDownloadFailed(request_id=rid, reason="absent", absent=True))
            return
        total = len(truth) if reply.total_bytes is None else reply.total_bytes
        self._feed(ev.PeerResponseStarted(request_id=rid, total_bytes=total))
        for i, chunk in enumerate(reply.chunks):
            if i == 0:  # with the header, as one message would bring them
                self._peer_chunk(action, chunk)
            else:
                self._at(self.now + i * reply.interval, lambda chunk=chunk: self._peer_chunk(action, chunk))
        if reply.departs:
            self._at(
                self.now + len(reply.chunks) * reply.interval, lambda: self._peer_departs(action.peer_id)
            )

    def _peer_chunk(self, action: act.RequestFromPeer, data: bytes) -> None:
        # Nothing arrives after a cancel or from a peer no longer connected.
        if data and action.peer_id in self.peers and action.request_id not in self._cancelled_p2p:
            self.bytes_sent[action.peer_id] = self.bytes_sent.get(action.peer_id, 0) + len(data)
            self._feed(ev.PeerChunkReceived(request_id=action.request_id, data=data))

    def _peer_departs(self, peer_id: str) -> None:
        if self.peers.pop(peer_id, None) is not None:
            self._feed(ev.PeerDisconnected(peer_id=peer_id))

    def _integrity_failed(self, action: act.ValidateSegment) -> None:
        """As the loader's IntegrityChecker: a failure names the peer that sent the bytes (the
        loader bans it), and nobody when several did (the scheduler then asks the origin's bytes)."""
        check: Literal["sha256", "spot-check"] = "sha256" if self.integrity == "digests" else "spot-check"
        if len(action.peer_ids) == 1:
            (peer_id,) = action.peer_ids
            self.notifications.append(
                nt.IntegrityCheckFailed(
                    segment_id=action.segment.id, peer_id=peer_id, check=check, reason="bytes differ"
                )
            )

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
