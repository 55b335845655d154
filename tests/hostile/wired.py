"""One viewer wired to scripted peers through the shipped peer protocol machine, on a virtual clock.

What runs is what ships, minus the sockets: the :class:`~p2ploader.core.driver.Driver` and its
:class:`~p2ploader.core.scheduler.Scheduler` on the simulator's
:class:`~p2ploader.sim.loop.VirtualLoop` (time jumps from one due callback to the next; nothing
sleeps), the loader's :class:`~p2ploader.aio.integrity.IntegrityChecker` for published SHA-256
digests (that check needs no I/O) followed by the application's ``segment_validator``, or, with
``integrity_spot_checks`` set and no digests, spot checks modelled on the checker's (ranges planned
by :func:`~p2ploader.core.integrity.plan_spot_checks` and compared with the origin's bytes, the
last range also comparing the size, as the origin's ``Content-Range`` total does), and one
:class:`~p2ploader.core.peer_protocol.PeerProtocol` per remote peer. Each remote peer is a testing
kit :class:`~p2ploader.testing.peer.ScriptedPeer` joined to its machine by a
:class:`~p2ploader.testing.peer.ScriptedLink`; messages cross the link ``latency`` seconds after
they are queued.

:class:`WiredPeers` is the peer transport: it drives the shipped
:class:`~p2ploader.core.peer_set.PeerSet`, as the peer manager and the simulator's modelled peers
do, which turns the scheduler's peer actions into machine calls and the machine's events into the
scheduler's, and closes a link on a violation or a ``DisconnectPeer``. A new link is asked of the
peer set as the peer manager asks for an offer (:meth:`~p2ploader.core.peer_set.PeerSet.offer`:
refused when the core says its peer, with that certificate, is banned, or its id is linked), its
certificate is bound to the peer id, and the peer set reports it open (``PeerConnected``), closed
(``PeerDisconnected``) and an upload's end (``UploadFinished``). Only the in-memory link is this module's own.

The origin answers every fetch after ``http_time`` seconds with the segment's true bytes; the
player asks for the segments in order and plays them at 1x, counting stalls.

What is left out is what only a socket can show (SCTP back-pressure, a DTLS certificate, ICE); the
real-socket tests in ``tests/hostile/test_hostile_peers.py`` keep those.
"""

from __future__ import annotations

import functools
import hashlib
import random
from collections.abc import Callable
from typing import Any

import httpx

from p2ploader.aio.integrity import IntegrityChecker, IntegrityStatistics, integrity_enabled
from p2ploader.config import LoaderConfig
from p2ploader.core import actions as act
from p2ploader.core import events as ev
from p2ploader.core import notifications as nt
from p2ploader.core.driver import Driver
from p2ploader.core.integrity import plan_spot_checks
from p2ploader.core.peer_limits import announcement_id_limit, segment_size_limit
from p2ploader.core.peer_protocol import PeerProtocol, Upload
from p2ploader.core.peer_set import Accept, PeerSet
from p2ploader.core.scheduler import MAX_SEGMENT_SIZE, Scheduler
from p2ploader.core.segments import Segment, SegmentId
from p2ploader.sim.loop import VirtualLoop
from p2ploader.testing.harness import make_segments
from p2ploader.testing.peer import ScriptedLink, ScriptedPeer

__all__ = ["BANDWIDTH", "RENDITION", "Viewer", "WiredLink", "WiredPeers"]

RENDITION = "v0"
BANDWIDTH = 343_000
"""Bits/s the variant declares (the sample stream's 360p): it bounds a data header's size."""


class WiredPeers:
    """The peer transport of a :class:`Viewer` (see the module docstring): the shipped peer set
    (:class:`~p2ploader.core.peer_set.PeerSet`) over in-memory links."""

    def __init__(
        self,
        viewer: Viewer,
        *,
        latency: float,
        max_segment_size: int,
        max_announced_ids: int,
    ) -> None:
        self._viewer = viewer
        self.latency = latency
        scheduler = viewer.scheduler
        self.peer_set: PeerSet[WiredLink] = PeerSet(
            swarm=RENDITION,
            live=False,
            first_sequence=0,
            feed=lambda event: viewer.driver.feed(event),
            io=_WiredLinkIO(self),
            max_segment_size=max_segment_size,
            max_announced_ids=max_announced_ids,
            # As the loader wires its peer manager: the core's bans, on the link's certificate.
            is_banned=lambda peer_id, certificate: scheduler.is_banned(
                RENDITION, peer_id, now=viewer.loop.time(), certificate=certificate
            ),
            bind_certificate=functools.partial(scheduler.reputation.bind, RENDITION),
        )
        self.links = self.peer_set.links
        """Open links by peer id."""
        self.closed: dict[str, str] = {}
        """Peer id -> why its (last) link was closed."""

    # ------------------------------------------------------------------ links

    def connect(self, peer_id: str, peer: ScriptedPeer, *, certificate: str | None = None) -> bool:
        """Link ``peer`` as ``peer_id`` (with DTLS ``certificate``, default one of its own); ``False``
        when the core says it is banned (the peer manager refuses its offer then)."""
        certificate = certificate or f"cert-{peer_id}"
        now = self._viewer.loop.time()
        if not isinstance(self.peer_set.offer(peer_id, certificate, now=now), Accept):
            return False
        link = WiredLink(peer_id, peer, self.peer_set.new_protocol())
        self.peer_set.add(peer_id, link, now=now, certificate=certificate)
        self.closed.pop(peer_id, None)
        self.peer_set.opened(link, now=now)  # the core hears PeerConnected
        self.deliver(peer_id)  # what it queued before the link opened (an announcement)
        return True

    def close(self, peer_id: str, reason: str) -> None:
        """Close ``peer_id``'s link (ours to close, or the peer left): the core hears of it."""
        link = self.links.get(peer_id)
        if link is None:
            return
        gone = self.peer_set.closed(link)  # PeerDisconnected, once: the link was admitted
        self.closed[peer_id] = reason
        if gone is not None:
            self._viewer.loop.call_soon(self._viewer.driver.feed, gone)

    def is_linked(self, peer_id: str) -> bool:
        return peer_id in self.links

    def deliver(self, peer_id: str) -> None:
        """Move what both ends queued across the link, ``latency`` seconds from now."""
        self._viewer.loop.call_later(self.latency, self._exchange, peer_id)

    def _exchange(self, peer_id: str) -> None:
        link = self.links.get(peer_id)
        if link is None:
            return
        for event in link.exchange(now=self._viewer.loop.time()):
            self.peer_set.handle(link, event)

    # ------------------------------------------------------------------ core actions

    def perform(self, action: act.Action) -> None:
        self.peer_set.perform(action)

    def upload(self, link: WiredLink, upload: Upload) -> None:
        """An upload crosses the link in one go as soon as the scheduler asks (an uplink as fast as
        loopback); the scheduler's upload slot is freed then (``UploadFinished``, as the peer
        manager's task). A growing upload (a cut-through relay) sends only the bytes it holds at
        that moment: relays are not modelled here (tests/core/test_cut_through.py has them)."""

        def send() -> None:
            sent = 0
            if self.links.get(link.peer_id) is link and link.protocol.upload is upload:
                before = link.peer.data_bytes
                for event in link.upload(upload, now=self._viewer.loop.time()):
                    self.peer_set.handle(link, event)
                sent = link.peer.data_bytes - before
            self.peer_set.upload_finished(link, upload, sent_bytes=sent)

        self._viewer.loop.call_soon(send)


class WiredLink(ScriptedLink):
    """A scripted peer's in-memory link, named by the peer's id (as the peer set names links)."""

    def __init__(self, peer_id: str, peer: ScriptedPeer, protocol: PeerProtocol) -> None:
        super().__init__(peer, protocol)
        self.peer_id = peer_id


class _WiredLinkIO:
    """The in-memory links as the peer set drives them (:class:`~p2ploader.core.peer_set.PeerLinkIO`):
    messages cross at the next exchange, ``latency`` seconds later; uploads cross whole."""

    def __init__(self, peers: WiredPeers) -> None:
        self._peers = peers

    def usable(self, link: WiredLink) -> bool:
        return True

    def transmit(self, link: WiredLink) -> None:
        self._peers.deliver(link.peer_id)

    def pump(self, link: WiredLink) -> None:
        self._peers.deliver(link.peer_id)  # the exchange hands the machine's events to the peer set

    def close(self, link: WiredLink, reason: str) -> None:
        self._peers.close(link.peer_id, reason)

    def release(self, link: WiredLink, reason: str) -> None:
        self._peers.close(link.peer_id, reason)  # no admission here: never asked

    def feed_soon(self, event: ev.Event) -> None:
        viewer = self._peers._viewer
        viewer.loop.call_soon(viewer.driver.feed, event)

    def upload_started(self, link: WiredLink, upload: Upload) -> None:
        self._peers.upload(link, upload)

    def upload_extended(self, link: WiredLink) -> None:
        pass  # an upload crosses with the bytes it holds when it starts (see WiredPeers.upload)

    def upload_stopped(self, link: WiredLink, upload: Upload) -> None:
        pass  # uploads cross the link whole: nothing is left to stop


class Viewer:
    """A viewer of ``segments`` segments of ``duration`` seconds and ``segment_size`` bytes (random
    bytes, the origin's truth), with ``config``. ``digests``: the playlist publishes every segment's
    SHA-256 (the integrity check then compares a peer's bytes with it). ``changes``: settings of
    ``config`` to override. Times in seconds."""

    def __init__(
        self,
        config: LoaderConfig | None = None,
        *,
        segments: int = 10,
        duration: float = 2.0,
        segment_size: int = 20_000,
        digests: bool = False,
        http_time: float = 0.3,
        latency: float = 0.02,
        seed: int = 1,
        **changes: Any,
    ) -> None:
        config = config or LoaderConfig()
        if changes:
            config = config.evolve(**changes)
        self.config = config
        self.loop = VirtualLoop()
        self.segments: tuple[Segment, ...] = make_segments(segments, rendition=RENDITION, duration=duration)
        rng = random.Random(seed)
        self.truth = {s.id.sequence: rng.randbytes(segment_size) for s in self.segments}
        # As the loader: P2P segments are validated whenever the config may check them.
        self.scheduler = Scheduler(config, rng=random.Random(seed), validate_p2p=integrity_enabled(config))
        self.notifications: list[nt.Notification] = []
        self.actions: list[act.Action] = []
        self.driver = Driver(self.scheduler, loop=self.loop, on_notification=self._notified, config=config)
        self.integrity = IntegrityChecker(
            httpx.AsyncClient(transport=httpx.MockTransport(lambda request: httpx.Response(500))),
            config,
            rng=random.Random(seed + 1),
            on_failure=self._integrity_failed,
        )
        if digests:
            self.integrity.publish(
                RENDITION, {n: hashlib.sha256(data).digest() for n, data in self.truth.items()}
            )
        self.driver.validate = self.integrity.validation(config.segment_validator)
        self.spot_checked_segments = 0
        self.spot_check_requests = 0
        if not digests and config.integrity_spot_checks > 0:
            self._spot_rng = random.Random(seed + 2)
            self.driver.validate = self._spot_checked
        self.peers = WiredPeers(
            self,
            latency=latency,
            max_segment_size=segment_size_limit(
                bandwidth=BANDWIDTH, target_duration=duration, fallback=MAX_SEGMENT_SIZE
            ),
            max_announced_ids=announcement_id_limit(segments),
        )
        self.driver.peers = _Recording(self.peers, self.actions)
        self.driver.http = _Origin(self, http_time)
        # The player.
        self.ready: dict[int, bytes] = {}
        self.position = 0.0
        self.stalled = 0.0
        self._started = False
        self._next_wanted = 0
        self.driver.feed(ev.PlaylistUpdated(segments=self.segments))

    # ------------------------------------------------------------------ peers

    def wire_id(self, sequence: int) -> int:
        """The wire id of segment ``sequence`` in this swarm."""
        return self.peers.peer_set.wire_id(self.segments[sequence].id)

    def holding(self, sequences: range | list[int] | None = None) -> dict[int, bytes]:
        """The true bytes of ``sequences`` (default: all) by wire id, for a scripted peer to hold."""
        chosen = range(len(self.segments)) if sequences is None else sequences
        return {self.wire_id(n): self.truth[n] for n in chosen}

    def connect(self, peer_id: str, peer: ScriptedPeer, *, certificate: str | None = None) -> bool:
        """Link ``peer`` (see :meth:`WiredPeers.connect`)."""
        return self.peers.connect(peer_id, peer, certificate=certificate)

    def at(self, when: float, run: Callable[[], object], *, peer_id: str | None = None) -> None:
        """Run ``run`` at virtual time ``when`` (a scripted peer's move), then carry what it queued
        across ``peer_id``'s link (every link when ``None``)."""

        def step() -> None:
            run()
            for linked in [peer_id] if peer_id is not None else list(self.peers.links):
                self.peers.deliver(linked)

        self.loop.call_at(when, step)

    # ------------------------------------------------------------------ running

    def play(self, until: float, *, tick: float = 0.25) -> None:
        """Run to ``until``; from the first call on, the player asks for segments in order (the
        next once the last is ready) and plays at 1x, counting seconds stalled."""
        if not self._started:
            self._started = True
            self._request_next()
            self.loop.call_later(tick, self._tick, tick)
        self.loop.run_until(until)

    def run(self, until: float) -> None:
        """Run to ``until`` without the player."""
        self.loop.run_until(until)

    def of(self, kind: type[Any]) -> list[Any]:
        return [n for n in self.notifications if isinstance(n, kind)]

    def misbehaved(self, peer_id: str) -> list[str]:
        return [n.reason for n in self.of(nt.PeerMisbehaved) if n.peer_id == peer_id]

    def wrong_segments(self) -> list[int]:
        """Segments the player got with bytes other than the origin's."""
        return [n for n, data in self.ready.items() if data != self.truth[n]]

    def wrong_cached(self) -> list[SegmentId]:
        """Segments held in the cache (and so served to peers) with bytes other than the origin's."""
        cache = self.scheduler.cache
        return [
            sid
            for sid in list(cache)
            if (entry := cache.get(sid, now=self.loop.time())) is not None
            and entry.data != self.truth[sid.sequence]
        ]

    def integrity_statistics(self) -> IntegrityStatistics:
        return self.integrity.statistics()

    # ------------------------------------------------------------------ internals

    def _notified(self, notification: nt.Notification) -> None:
        self.notifications.append(notification)
        if isinstance(notification, nt.SegmentReady):
            n = notification.segment.id.sequence
            self.ready[n] = notification.data
            if n == self._next_wanted:
                self._next_wanted += 1
                self.loop.call_soon(self._request_next)

    async def _spot_checked(self, action: act.ValidateSegment) -> tuple[bool, bool]:
        """The checker's spot checks, modelled: the origin answers every range from its truth."""
        verified = False
        if action.method == "p2p":
            truth = self.truth[action.segment.id.sequence]
            plan = plan_spot_checks(
                len(action.data),
                count=self.config.integrity_spot_checks,
                length=self.config.integrity_spot_check_bytes,
                rng=self._spot_rng,
                focus=[(r.offset, r.length) for r in action.peer_ranges],
            )
            self.spot_checked_segments += 1
            self.spot_check_requests += len(plan)
            lie = None
            if len(action.data) != len(truth):
                lie = f"the origin has {len(truth)} bytes, the peer sent {len(action.data)}"
            elif any(action.data[r.offset : r.end] != truth[r.offset : r.end] for r in plan):
                lie = "bytes differ from the origin's"
            if lie is not None:
                if len(action.peer_ids) == 1:
                    self._integrity_failed(action.segment, action.peer_ids[0], "spot-check", lie)
                return False, False
            verified = True
        validator = self.config.segment_validator
        if validator is not None and not validator(
            action.segment, action.data, action.method, action.peer_id
        ):
            return False, False
        return True, verified

    def _integrity_failed(self, segment: Segment, peer_id: str, check: Any, reason: str) -> None:
        # As the loader: the core reports the failure and bans the peer.
        self.driver.feed(
            ev.IntegrityCheckFailed(segment_id=segment.id, peer_id=peer_id, check=check, reason=reason)
        )

    def _request_next(self) -> None:
        if self._next_wanted < len(self.segments):
            self.driver.feed(ev.SegmentRequested(segment_id=self.segments[self._next_wanted].id))

    def _tick(self, tick: float) -> None:
        playing = int(self.position // self.segments[0].duration)
        if playing < len(self.segments):
            if playing in self.ready:
                self.position += tick
            elif self.ready:
                self.stalled += tick
            self.driver.feed(ev.PlaybackMoved(position=self.position))
        self.loop.call_later(tick, self._tick, tick)


class _Recording:
    """Records every peer action, then hands it to the transport."""

    def __init__(self, peers: WiredPeers, actions: list[act.Action]) -> None:
        self._peers = peers
        self._actions = actions

    def perform(self, action: act.Action) -> None:
        self._actions.append(action)
        self._peers.perform(action)


class _Origin:
    """The HTTP fetcher: every fetch answers after ``http_time`` seconds with the true bytes."""

    def __init__(self, viewer: Viewer, http_time: float) -> None:
        self._viewer = viewer
        self._http_time = http_time
        self._aborted: set[int] = set()
        self.fetches = 0

    def start(self, action: act.StartHttpFetch) -> None:
        self.fetches += 1
        self._viewer.loop.call_later(self._http_time, self._answer, action)

    def abort(self, request_id: int) -> None:
        self._aborted.add(request_id)

    def _answer(self, action: act.StartHttpFetch) -> None:
        if action.request_id in self._aborted:
            return
        feed = self._viewer.driver.feed
        truth = self._viewer.truth[action.segment.id.sequence]
        rid = action.request_id
        feed(ev.HttpResponseStarted(request_id=rid, offset=action.resume_from, total_bytes=len(truth)))
        feed(ev.HttpChunkReceived(request_id=rid, data=truth[action.resume_from :]))
        feed(ev.HttpFetchCompleted(request_id=rid))
