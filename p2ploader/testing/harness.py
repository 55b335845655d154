"""A harness that drives the sans-IO scheduler by hand: explicit time, explicit events.

Nothing sleeps: :meth:`Harness.advance` moves the clock (seconds) and fires every timer that falls
due on the way, so a test of a policy or of the scheduler is deterministic and instant::

    h = Harness(policy="p2pml-0.6", seed=1)
    h.play_at(0)
    h.request(0)
    h.complete_http(h.http_request_for(0))
    assert [n.segment.id for n in h.ready()] == [sid(0)]
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable
from typing import Any

from p2ploader.config import LoaderConfig
from p2ploader.core import actions as act
from p2ploader.core import events as ev
from p2ploader.core import notifications as nt
from p2ploader.core.policies import DownloadPolicy
from p2ploader.core.scheduler import Scheduler
from p2ploader.core.segments import Segment, SegmentId

__all__ = ["SEGMENT_SIZE", "Harness", "make_segments", "sid"]

SEGMENT_SIZE = 1000
"""Bytes of a segment delivered by :meth:`Harness.complete_http` and :meth:`Harness.complete_p2p`."""


def make_segments(
    count: int, *, rendition: str = "v0", first: int = 0, duration: float = 2.0
) -> tuple[Segment, ...]:
    """``count`` segments of ``duration`` seconds in rendition ``rendition``, numbered from ``first``."""
    return tuple(
        Segment(
            id=SegmentId(rendition, first + i),
            url=f"http://origin.test/{rendition}/seg_{first + i}.ts",
            duration=duration,
            start=(first + i) * duration,
        )
        for i in range(count)
    )


def sid(n: int, rendition: str = "v0") -> SegmentId:
    """The id of segment ``n`` of ``rendition``."""
    return SegmentId(rendition, n)


class Harness:
    """Holds a scheduler, the current time and everything it emitted."""

    def __init__(
        self,
        config: LoaderConfig | None = None,
        *,
        seed: int = 1,
        segments: int = 30,
        policy: str | DownloadPolicy | Callable[[LoaderConfig], DownloadPolicy] | None = None,
        peer_id: str | None = None,
        validate_p2p: bool = False,
        **overrides: Any,
    ) -> None:
        """``policy``: a registered name, an instance, or a factory called with the final config
        (``None``: the scheduler's default). ``validate_p2p``: the scheduler asks for checks of
        every segment holding peer bytes (as the loader's integrity checks make it)."""
        cfg = config if config is not None else LoaderConfig()
        if overrides:
            cfg = cfg.evolve(**overrides)
        self.config = cfg
        self.now = 0.0
        if callable(policy) and not isinstance(policy, DownloadPolicy):
            policy = policy(cfg)
        self.scheduler = Scheduler(
            cfg, rng=random.Random(seed), policy=policy, peer_id=peer_id, validate_p2p=validate_p2p
        )
        self.actions: list[act.Action] = []
        self.notifications: list[nt.Notification] = []
        self.segments = make_segments(segments)
        self.send(ev.PlaylistUpdated(segments=self.segments))

    # -- driving
    def send(self, event: ev.Event) -> list[act.Action]:
        """Hand ``event`` to the scheduler at the current time; the actions it then asks for."""
        self.scheduler.handle_event(event, now=self.now)
        return self._collect()

    def advance(self, seconds: float) -> list[act.Action]:
        """Move time forward, firing every timer that falls due on the way."""
        target = self.now + seconds
        out: list[act.Action] = []
        while True:
            deadline = self.scheduler.get_timer()
            if deadline is None or deadline > target:
                break
            self.now = max(self.now, deadline)
            self.scheduler.handle_timer(now=self.now)
            out += self._collect()
        self.now = target
        return out

    def _collect(self) -> list[act.Action]:
        new = self.scheduler.actions_to_perform(now=self.now)
        self.actions += new
        while (n := self.scheduler.next_notification()) is not None:
            self.notifications.append(n)
        return new

    # -- shortcuts
    def request(self, n: int) -> list[act.Action]:
        """The player asks for segment ``n``."""
        return self.send(ev.SegmentRequested(segment_id=sid(n)))

    def play_at(self, n: int) -> list[act.Action]:
        """Put the playhead at the start of segment n."""
        return self.send(ev.PlaybackMoved(position=self.segments[n].start))

    def connect(self, peer: str, loaded: Iterable[int] = (), loading: Iterable[int] = ()) -> None:
        """``peer`` connects and announces the segments (by number) it holds and loads over HTTP."""
        self.send(ev.PeerConnected(peer_id=peer))
        self.announce(peer, loaded, loading)

    def announce(
        self, peer: str, loaded: Iterable[int] = (), loading: Iterable[int] = ()
    ) -> list[act.Action]:
        """``peer`` announces the segments (by number) it holds and loads over HTTP."""
        return self.send(
            ev.PeerAnnounced(
                peer_id=peer,
                loaded=frozenset(sid(n) for n in loaded),
                loading_by_http=frozenset(sid(n) for n in loading),
            )
        )

    def complete_http(
        self, request_id: int, size: int = SEGMENT_SIZE, *, offset: int = 0
    ) -> list[act.Action]:
        """The HTTP fetch ``request_id`` answers from byte ``offset`` and delivers ``size`` bytes in all."""
        self.send(ev.HttpResponseStarted(request_id=request_id, offset=offset))
        self.send(ev.HttpChunkReceived(request_id=request_id, data=b"h" * (size - offset)))
        return self.send(ev.HttpFetchCompleted(request_id=request_id))

    def complete_p2p(self, request_id: int, size: int = SEGMENT_SIZE) -> list[act.Action]:
        """The peer request ``request_id`` delivers ``size`` bytes in one chunk."""
        self.send(ev.PeerResponseStarted(request_id=request_id, total_bytes=size))
        return self.send(ev.PeerChunkReceived(request_id=request_id, data=b"p" * size))

    # -- inspection
    def http_starts(self, actions: Iterable[act.Action] | None = None) -> list[act.StartHttpFetch]:
        return [
            a for a in (self.actions if actions is None else actions) if isinstance(a, act.StartHttpFetch)
        ]

    def p2p_requests(self, actions: Iterable[act.Action] | None = None) -> list[act.RequestFromPeer]:
        return [
            a for a in (self.actions if actions is None else actions) if isinstance(a, act.RequestFromPeer)
        ]

    def http_request_for(self, n: int) -> int:
        return next(a.request_id for a in reversed(self.http_starts()) if a.segment.id == sid(n))

    def p2p_request_for(self, n: int) -> int:
        return next(a.request_id for a in reversed(self.p2p_requests()) if a.segment_id == sid(n))

    def http_loading(self) -> set[int]:
        return {s.sequence for s in self.scheduler.http_loading()}

    def p2p_loading(self) -> dict[int, str]:
        return {s.sequence: p for s, p in self.scheduler.p2p_loading().items()}

    def ready(self) -> list[nt.SegmentReady]:
        return [n for n in self.notifications if isinstance(n, nt.SegmentReady)]

    def of_type(self, kind: type[Any]) -> list[Any]:
        return [x for x in self.actions + self.notifications if isinstance(x, kind)]
