"""The tracker's sans-IO state: rate limits at their edges, id binding, malformed floods, bounded
outboxes and expiry, driven with an explicit ``now`` (no sockets, no sleeps)."""

from __future__ import annotations

import json
import random
from typing import Any

import pytest

from p2ploader.tracker.state import Abort, Close, Output, Send, TrackerConnection, TrackerLimits, TrackerState

HASH = "L2uYwMcHhsstZuLv8ZqU"


def pid(n: int) -> str:
    return f"-PY0001-{n:012d}"


def oid(n: int) -> str:
    return f"offer-{n:014d}"


def swarm_hash(n: int) -> str:
    return f"swarm-{n:014d}"


class Tracker:
    """A :class:`TrackerState` with a clock and the frames each connection got."""

    def __init__(self, **limits: Any) -> None:
        self.state = TrackerState(TrackerLimits(**limits))
        self.now = 1000.0
        self.rng = random.Random(1)
        self.inbox: dict[int, list[dict[str, Any]]] = {}
        self.aborted: list[TrackerConnection] = []
        self.closed: list[Close] = []
        self.not_reading: set[int] = set()  # connections that read nothing (slow readers)

    def connect(self, address: str = "198.51.100.1") -> TrackerConnection:
        conn = self.state.open_connection((address, 4000), now=self.now)
        self.inbox[id(conn)] = []
        return conn

    def perform(self, outputs: list[Output], *, read: bool = True) -> None:
        for output in outputs:
            if isinstance(output, Send):
                if read and id(output.connection) not in self.not_reading:
                    self.state.message_taken(output.connection, output.text)
                self.inbox[id(output.connection)].append(json.loads(output.text))
            elif isinstance(output, Abort):
                self.aborted.append(output.connection)
            else:
                self.closed.append(output)

    def send(
        self, conn: TrackerConnection, message: dict[str, Any] | str, *, read: bool = True
    ) -> dict[str, Any]:
        """Handle one request; the last frame ``conn`` got back (``{}`` if none)."""
        text = message if isinstance(message, str) else json.dumps(message)
        before = len(self.inbox[id(conn)])
        self.perform(self.state.handle(conn, text, now=self.now, rng=self.rng), read=read)
        got = self.inbox[id(conn)][before:]
        return got[-1] if got else {}

    def announce(
        self, conn: TrackerConnection, peer: int, info_hash: str = HASH, **extra: Any
    ) -> dict[str, Any]:
        return self.send(conn, {"action": "announce", "info_hash": info_hash, "peer_id": pid(peer), **extra})

    def answer(self, conn: TrackerConnection, peer: int, to: int, offer: int) -> dict[str, Any]:
        message = {
            "action": "announce",
            "info_hash": HASH,
            "peer_id": pid(peer),
            "to_peer_id": pid(to),
            "offer_id": oid(offer),
            "answer": {"type": "answer", "sdp": "a"},
        }
        return self.send(conn, message)


def test_announces_just_under_and_over_the_per_connection_limit() -> None:
    tracker = Tracker()
    assert tracker.state.limits.announces_per_interval == 20
    conn = tracker.connect()
    for _ in range(20):
        assert "failure reason" not in tracker.announce(conn, 1)
    assert tracker.announce(conn, 1) == {
        "action": "announce",
        "failure reason": "announce rate limit exceeded, retry in 6 s",  # 20 per 120 s
        "info_hash": HASH,
    }
    tracker.now += 5.999
    assert "failure reason" in tracker.announce(conn, 1)
    tracker.now += 0.001
    assert tracker.announce(conn, 1)["incomplete"] == 1
    assert tracker.announce(conn, 1, event="stopped")["incomplete"] == 0  # leaving is free
    stats = tracker.state.statistics()
    assert (stats.requests_rate_limited, stats.bad_requests) == (2, 0)


def test_answers_just_under_and_over_the_per_connection_limit() -> None:
    tracker = Tracker(answers_per_interval=3)
    victim, spammer = tracker.connect(), tracker.connect()
    tracker.announce(victim, 1)
    tracker.announce(spammer, 2)
    for n in range(3):
        assert tracker.answer(spammer, 2, 1, n) == {}  # relayed; nothing back
    assert tracker.answer(spammer, 2, 1, 3)["failure reason"] == "answer rate limit exceeded"
    assert [m["offer_id"] for m in tracker.inbox[id(victim)][1:]] == [oid(n) for n in range(3)]
    tracker.now += 40.0  # one answer per 40 s
    assert tracker.answer(spammer, 2, 1, 4) == {}
    assert tracker.state.statistics().answers_relayed == 4


def test_swarm_creation_just_under_and_over_the_limit() -> None:
    tracker = Tracker(swarms_created_per_interval=3)
    conn = tracker.connect()
    for n in range(3):
        assert tracker.announce(conn, 1, swarm_hash(n))["incomplete"] == 1
    refused = tracker.announce(conn, 1, swarm_hash(3))
    assert refused["failure reason"] == "swarm creation rate limit exceeded, retry in 40 s"
    other = tracker.connect()
    assert tracker.announce(other, 2, swarm_hash(0))["incomplete"] == 2  # joining creates nothing
    tracker.now += 40
    assert tracker.announce(conn, 1, swarm_hash(3))["incomplete"] == 1


def test_the_address_limit_is_shared_by_every_connection_from_it() -> None:
    tracker = Tracker(address_announces_per_interval=4)
    first, second = tracker.connect(), tracker.connect()
    other_address = tracker.connect("203.0.113.9")
    for _ in range(2):
        assert "failure reason" not in tracker.announce(first, 1)
        assert "failure reason" not in tracker.announce(second, 2)
    assert tracker.announce(second, 2)["failure reason"].startswith("announce rate limit exceeded")
    assert "failure reason" not in tracker.announce(other_address, 3)


def test_a_peer_id_belongs_to_the_connection_that_announced_it() -> None:
    tracker = Tracker()
    owner, thief = tracker.connect(), tracker.connect()
    tracker.announce(owner, 1)
    refused = tracker.announce(thief, 1)
    assert refused["failure reason"] == "peer_id is in use by another connection"
    tracker.announce(thief, 1, event="stopped")  # cannot remove someone else's peer
    assert tracker.state.peer_ids(HASH.encode()) == {pid(1).encode()}
    assert tracker.state.statistics().peer_id_refusals == 1
    tracker.perform(tracker.state.connection_closed(owner, now=tracker.now))
    assert tracker.state.peer_ids(HASH.encode()) == frozenset()
    assert tracker.announce(thief, 1)["incomplete"] == 1  # the id is free again


def test_a_connection_holds_a_bounded_number_of_peer_ids() -> None:
    tracker = Tracker(max_peer_ids_per_connection=2)
    conn = tracker.connect()
    tracker.announce(conn, 1, swarm_hash(1))
    tracker.announce(conn, 2, swarm_hash(2))
    refused = tracker.announce(conn, 3, swarm_hash(3))
    assert refused["failure reason"] == "too many peer ids on this connection"
    assert tracker.announce(conn, 3, swarm_hash(2))["incomplete"] == 1  # replaces its id there


@pytest.mark.parametrize("errors", [19, 20])
def test_a_connection_is_closed_after_max_protocol_errors_malformed_requests(errors: int) -> None:
    tracker = Tracker()
    assert tracker.state.limits.max_protocol_errors == 20
    conn = tracker.connect()
    for _ in range(errors):
        assert tracker.send(conn, "{not json") == {"failure reason": "invalid JSON"}
    assert tracker.closed == ([Close(conn, 1008, "too many invalid requests")] if errors == 20 else [])
    assert tracker.state.statistics().bad_requests == errors


def test_refusals_of_well_formed_requests_are_not_protocol_errors() -> None:
    tracker = Tracker(max_swarms=1, max_protocol_errors=2)
    conn = tracker.connect()
    tracker.announce(conn, 1, swarm_hash(1))
    for _ in range(5):
        refused = tracker.announce(conn, 1, swarm_hash(2))
        assert refused["failure reason"] == "tracker is full: too many swarms"
    assert tracker.closed == [] and tracker.state.statistics().bad_requests == 0


def test_an_outbox_over_its_byte_budget_drops_the_slow_reader() -> None:
    tracker = Tracker(max_outbox_bytes=1000)
    stuck, flooder = tracker.connect(), tracker.connect()
    tracker.announce(stuck, 1)
    tracker.announce(flooder, 2)
    offer = [{"offer": {"type": "offer", "sdp": "x" * 300}, "offer_id": oid(0)}]
    tracker.not_reading.add(id(stuck))
    relayed = 0
    while not tracker.aborted:
        assert tracker.announce(flooder, 2, offers=offer)["incomplete"] == 2
        relayed = len(tracker.inbox[id(stuck)]) - 1
        assert relayed < 10
    assert tracker.aborted == [stuck] and stuck.closed
    stats = tracker.state.statistics()
    assert stats.slow_readers_dropped == 1 and stats.messages_dropped == relayed + 1
    frame_size = len(json.dumps(tracker.inbox[id(stuck)][-1], separators=(",", ":")))
    assert relayed == 1000 // frame_size  # what fits in the budget, then the drop
    tracker.announce(flooder, 2, offers=offer)  # the dropped one gets nothing any more
    assert len(tracker.inbox[id(stuck)]) == relayed + 1 and tracker.state.queued_bytes() == 0


def test_an_outbox_over_its_message_count_drops_the_slow_reader() -> None:
    tracker = Tracker(send_queue_size=3)
    stuck = tracker.connect()
    tracker.not_reading.add(id(stuck))
    for _ in range(3):
        tracker.send(stuck, {"action": "scrape", "info_hash": HASH})
    assert not tracker.aborted and stuck.queued_messages == 3
    tracker.send(stuck, {"action": "scrape", "info_hash": "x"})  # its failure does not fit
    assert tracker.aborted == [stuck] and tracker.state.statistics().messages_dropped == 4


def test_silent_peers_expire_and_idle_addresses_are_forgotten() -> None:
    tracker = Tracker(interval=10)
    conn, quiet = tracker.connect(), tracker.connect("203.0.113.5")
    tracker.announce(conn, 1)
    tracker.announce(quiet, 2)
    tracker.now += 19.9
    tracker.announce(conn, 1)
    tracker.perform(tracker.state.sweep(now=tracker.now))
    assert len(tracker.state.peer_ids(HASH.encode())) == 2
    tracker.now += 0.2  # peer 2 has been silent for peer_timeout (2 * interval)
    tracker.perform(tracker.state.sweep(now=tracker.now))
    assert tracker.state.peer_ids(HASH.encode()) == {pid(1).encode()}
    assert tracker.state.statistics().peers_expired == 1


def test_offers_go_to_different_random_peers_and_never_back() -> None:
    tracker = Tracker()
    conns = [tracker.connect() for _ in range(4)]
    for n, conn in enumerate(conns):
        tracker.announce(conn, n)
    offers = [{"offer": {"type": "offer", "sdp": f"s{n}"}, "offer_id": oid(n)} for n in range(5)]
    tracker.announce(conns[0], 0, offers=offers, numwant=2)
    got = [m for conn in conns for m in tracker.inbox[id(conn)] if "offer" in m]
    assert len(got) == 2 and all(m["peer_id"] == pid(0) for m in got)
    assert not [m for m in tracker.inbox[id(conns[0])] if "offer" in m]
    receivers = [i for i, conn in enumerate(conns) if any("offer" in m for m in tracker.inbox[id(conn)])]
    assert len(receivers) == 2


def test_an_honest_audience_behind_one_address_is_never_refused() -> None:
    """Five hundred P2P Media Loader 2.x viewers behind one NAT, 20 minutes of tracker time, default
    limits, driven directly on the sans-IO state (no sockets): each has one connection and one peer
    id per swarm (video and audio), announces each swarm once per interval with five offers, answers
    every offer it gets, and switches level once (stops the old swarm, starts a new one)."""
    now = 1000.0
    rng = random.Random(1)
    tracker = TrackerState()
    viewers = [tracker.open_connection(("203.0.113.7", 50000), now=now) for _ in range(500)]
    index_of = {id(viewer): index for index, viewer in enumerate(viewers)}
    received: list[tuple[int, dict[str, Any]]] = []
    video, audio, higher = swarm_hash(1), swarm_hash(2), swarm_hash(3)

    def deliver(outputs: list[Any]) -> None:
        for output in outputs:
            assert isinstance(output, Send)
            tracker.message_taken(output.connection, output.text)  # written at once
            received.append((index_of[id(output.connection)], json.loads(output.text)))

    def announce(index: int, info_hash: str, kind: int, **extra: Any) -> None:
        offers = [{"offer": {"type": "offer", "sdp": "sdp"}, "offer_id": oid(n)} for n in range(5)]
        message = {"action": "announce", "info_hash": info_hash, "peer_id": pid(1000 * kind + index)}
        frame = json.dumps({"numwant": 5, "offers": offers, **message, **extra})
        deliver(tracker.handle(viewers[index], frame, now=now, rng=rng))

    def answer_offers() -> None:
        pending = list(received)
        received.clear()
        for index, got in pending:
            if "offer" in got:
                kind = {video: 1, audio: 2, higher: 3}[got["info_hash"]]
                answer = {
                    "action": "announce",
                    "info_hash": got["info_hash"],
                    "peer_id": pid(1000 * kind + index),
                    "to_peer_id": got["peer_id"],
                    "offer_id": got["offer_id"],
                    "answer": {"type": "answer", "sdp": "answer"},
                }
                deliver(tracker.handle(viewers[index], json.dumps(answer), now=now, rng=rng))
        received.clear()

    for index in range(500):
        announce(index, video, 1, event="started")
        announce(index, audio, 2, event="started")
    answer_offers()
    for minute in range(2, 22, 2):  # every interval (120 s)
        now += 120
        for index in range(500):
            if minute == 10:
                announce(index, video, 1, event="stopped", offers=[])
                announce(index, higher, 3, event="started")
            else:
                announce(index, higher if minute > 10 else video, 3 if minute > 10 else 1)
            announce(index, audio, 2)
        answer_offers()
    stats = tracker.statistics()
    assert (stats.requests_rate_limited, stats.failures_sent, stats.peer_id_refusals) == (0, 0, 0)
    assert stats.answers_relayed > 5_000 and stats.peers == 1000 and stats.swarms == 2


def test_the_default_outbox_holds_256_messages() -> None:
    tracker = Tracker()
    assert tracker.state.limits.send_queue_size == 256
    stuck = tracker.connect()
    tracker.not_reading.add(id(stuck))
    for _ in range(256):
        tracker.send(stuck, {"action": "scrape", "info_hash": HASH})
    assert not tracker.aborted and stuck.queued_messages == 256
    tracker.send(stuck, {"action": "scrape", "info_hash": HASH})
    assert tracker.aborted == [stuck]
