"""Tracker clients and the tracker's state wired together in memory, on a clock the test drives.

The sans-IO :class:`TrackerClientProtocol` machines and one :class:`TrackerState` exchange frames
through plain lists, as h11's tests wire two connections together without a socket: no asyncio, no
sleeps. ``advance(seconds)`` fires every timer due on the way, in order; a frame is delivered as soon
as it is sent (``deliver()`` after each step), so a test reads like a trace.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from typing import Any

import attrs

from p2ploader.core.tracker_client_protocol import (
    AnswerOffer,
    Connect,
    DeliverAnswer,
    Disconnect,
    Effect,
    MakeOffers,
    Offer,
    OfferExpired,
    ReportConnected,
    ReportFailed,
    SendMessage,
    SwarmUpdated,
    TrackerClientProtocol,
    TrackerClientSettings,
    TrackerExtension,
)
from p2ploader.tracker.state import Abort, Close, Send, TrackerConnection, TrackerLimits, TrackerState

INFO_HASH = b"L2uYwMcHhsstZuLv8ZqU"
URL = "ws://tracker.test"


@attrs.define(eq=False)
class Viewer:
    """One client machine and what its caller was told (the caller's side, scripted)."""

    name: str
    machine: TrackerClientProtocol
    accept: bool = True  # answer relayed offers
    hold_offers: bool = False  # keep MakeOffers requests (to answer them later)
    hold_answers: bool = False  # keep AnswerOffer requests (to answer them later)
    reachable: bool = True  # whether the tracker accepts its connection attempts
    conn: TrackerConnection | None = None
    made: dict[bytes, str] = attrs.Factory(dict)
    offers_received: list[AnswerOffer] = attrs.Factory(list)
    answers: list[DeliverAnswer] = attrs.Factory(list)
    expired: list[bytes] = attrs.Factory(list)
    updates: list[tuple[int, int]] = attrs.Factory(list)
    extensions: list[Any] = attrs.Factory(list)
    reports: list[ReportConnected | ReportFailed] = attrs.Factory(list)
    sent: list[str] = attrs.Factory(list)  # frames it sent, in order
    sent_at: list[float] = attrs.Factory(list)  # ... and when
    connects: list[float] = attrs.Factory(list)  # when it asked to connect
    held_offers: list[MakeOffers] = attrs.Factory(list)
    held_answers: list[AnswerOffer] = attrs.Factory(list)
    counter: int = 0

    @property
    def peer_id(self) -> bytes:
        return self.machine.peer_id

    def new_offer(self) -> Offer:
        self.counter += 1
        offer_id = f"{self.name}-offer-{self.counter}".ljust(20, ".").encode()[:20]
        sdp = f"offer-sdp from {self.name} #{self.counter}"
        self.made[offer_id] = sdp
        return Offer(offer_id, sdp)


class TrackerNetwork:
    """A tracker state and any number of viewers on one URL, in memory, with a driven clock."""

    def __init__(
        self,
        *,
        limits: TrackerLimits | None = None,
        seed: int = 1,
        now: float = 1000.0,
    ) -> None:
        self.now = now
        self.state = TrackerState(limits or TrackerLimits())
        self.rng = random.Random(seed)
        self.viewers: list[Viewer] = []
        self._by_conn: dict[int, Viewer] = {}
        self.tracker_up = True

    def viewer(
        self,
        name: str,
        *,
        peer_id: bytes | None = None,
        info_hash: bytes = INFO_HASH,
        wants_peers: Callable[[int], bool] | None = None,
        start: bool = True,
        **settings: Any,
    ) -> Viewer:
        machine = TrackerClientProtocol(
            [URL],
            info_hash=info_hash,
            peer_id=peer_id or f"-PY0001-{name}".ljust(20, "x").encode()[:20],
            settings=TrackerClientSettings(**settings),
            rng=random.Random(len(self.viewers) + 7),
            wants_peers=wants_peers,
        )
        viewer = Viewer(name=name, machine=machine)
        self.viewers.append(viewer)
        if start:
            machine.start(now=self.now)
            self.deliver()
        return viewer

    # ------------------------------------------------------------------ the wiring

    def deliver(self) -> None:
        """Perform every pending effect and relay every frame, until nothing moves."""
        moved = True
        while moved:
            moved = False
            for viewer in self.viewers:
                for effect in viewer.machine.effects():
                    moved = True
                    self._perform(viewer, effect)

    def _perform(self, viewer: Viewer, effect: Effect) -> None:
        machine = viewer.machine
        if isinstance(effect, Connect):
            viewer.connects.append(self.now)
            if self.tracker_up and viewer.reachable and self.state.has_room():
                viewer.conn = self.state.open_connection(
                    ("192.0.2.1", 1000 + len(self._by_conn)), now=self.now
                )
                self._by_conn[id(viewer.conn)] = viewer
                machine.connected(URL, now=self.now)
            else:
                machine.connect_failed(URL, "connection refused", now=self.now)
        elif isinstance(effect, SendMessage):
            viewer.sent.append(effect.text)
            viewer.sent_at.append(self.now)
            if viewer.conn is not None:
                self._perform_server(self.state.handle(viewer.conn, effect.text, now=self.now, rng=self.rng))
        elif isinstance(effect, Disconnect):
            self._drop(viewer, notify=False)
        elif isinstance(effect, MakeOffers):
            if viewer.hold_offers:
                viewer.held_offers.append(effect)
            else:
                machine.offers_made(effect, [viewer.new_offer() for _ in range(effect.count)], now=self.now)
        elif isinstance(effect, AnswerOffer):
            viewer.offers_received.append(effect)
            if viewer.hold_answers:
                viewer.held_answers.append(effect)
            else:
                answer = f"answer-sdp from {viewer.name} to [{effect.sdp}]" if viewer.accept else None
                machine.answer_ready(effect, answer, now=self.now)
        elif isinstance(effect, DeliverAnswer):
            viewer.answers.append(effect)
            machine.signalling_finished()
        elif isinstance(effect, OfferExpired):
            viewer.expired.append(effect.offer_id)
        elif isinstance(effect, SwarmUpdated):
            viewer.updates.append((effect.complete, effect.incomplete))
        elif isinstance(effect, TrackerExtension):
            viewer.extensions.append(effect.data)
        elif isinstance(effect, ReportConnected | ReportFailed):
            viewer.reports.append(effect)

    def _perform_server(self, outputs: list[Any]) -> None:
        for output in outputs:
            target = self._by_conn.get(id(output.connection))
            if isinstance(output, Send):
                self.state.message_taken(output.connection, output.text)  # read at once
                if target is not None and target.conn is output.connection:
                    target.machine.message_received(URL, output.text, now=self.now)
            elif isinstance(output, Abort | Close) and target is not None:
                self._drop(target, notify=True, reason="closed by the tracker")

    def _drop(self, viewer: Viewer, *, notify: bool, reason: str = "closed") -> None:
        conn = viewer.conn
        if conn is None:
            return
        viewer.conn = None
        self._by_conn.pop(id(conn), None)
        self._perform_server(self.state.connection_closed(conn, now=self.now))
        if notify:
            viewer.machine.closed(URL, reason, now=self.now)

    def tracker_restarts(self) -> None:
        """Every connection drops (the clients see their sockets close), the swarms are gone."""
        for viewer in self.viewers:
            self._drop(viewer, notify=True, reason="connection lost")
        self.state = TrackerState(self.state.limits)
        self.deliver()

    # ------------------------------------------------------------------ the clock

    def next_deadline(self) -> float | None:
        deadlines = [d for v in self.viewers if (d := v.machine.get_timer()) is not None]
        return min(deadlines, default=None)

    def advance(self, seconds: float) -> None:
        """Move the clock ``seconds`` forward, firing every timer due on the way at its deadline."""
        end = self.now + seconds
        self.deliver()
        while (deadline := self.next_deadline()) is not None and deadline <= end:
            self.now = max(self.now, deadline)
            for viewer in self.viewers:
                timer = viewer.machine.get_timer()
                if timer is not None and timer <= self.now:
                    viewer.machine.handle_timer(now=self.now)
            self.deliver()
        self.now = end
        self._perform_server(self.state.sweep(now=self.now))
        self.deliver()


def announces(viewer: Viewer) -> list[tuple[float, dict[str, Any]]]:
    """The announces (not answers) a viewer sent, with when, as JSON objects."""
    frames = [(at, json.loads(text)) for at, text in zip(viewer.sent_at, viewer.sent, strict=True)]
    return [(at, f) for at, f in frames if f.get("action") == "announce" and "answer" not in f]
