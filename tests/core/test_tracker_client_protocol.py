"""The tracker client protocol machine, alone (frames fed by hand) and against the tracker's state in
memory (:mod:`tests.core.tracker_network`). A driven clock, no sockets, no sleeps."""

from __future__ import annotations

import json
import random
from typing import Any

import pytest

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
    backoff_delay,
)
from p2ploader.core.tracker_wire import encode_id
from p2ploader.errors import UsageError
from p2ploader.tracker.state import TrackerLimits
from tests.core.tracker_network import INFO_HASH, URL, TrackerNetwork, announces

ME = b"-PY0001-me----------"
OTHER = b"-PY0001-other-------"
SMALL = b"-PY0001-aaaaaaaaaaaa"  # sorts before ME
LARGE = b"-PY0001-zzzzzzzzzzzz"  # sorts after ME


def of(effects: list[Effect], kind: type[Any]) -> list[Any]:
    return [effect for effect in effects if isinstance(effect, kind)]


def sent(effects: list[Effect]) -> list[dict[str, Any]]:
    return [json.loads(effect.text) for effect in of(effects, SendMessage)]


def frame(**fields: Any) -> str:
    return json.dumps({"action": "announce", "info_hash": INFO_HASH.decode(), **fields})


def offer_frame(peer: bytes, offer_id: bytes, sdp: str = "remote offer") -> str:
    return frame(peer_id=encode_id(peer), offer_id=encode_id(offer_id), offer={"type": "offer", "sdp": sdp})


def answer_frame(peer: bytes, offer_id: bytes, sdp: str = "remote answer") -> str:
    return frame(peer_id=encode_id(peer), offer_id=encode_id(offer_id), answer={"type": "answer", "sdp": sdp})


def oid(n: int) -> bytes:
    return f"offer-{n:014d}".encode()


class Alone:
    """One machine on one URL, connected at ``now``; frames are fed by hand."""

    def __init__(self, peer_id: bytes = ME, *, rng: random.Random | None = None, **settings: Any) -> None:
        self.now = 0.0
        self.machine = TrackerClientProtocol(
            [URL],
            info_hash=INFO_HASH,
            peer_id=peer_id,
            settings=TrackerClientSettings(**settings),
            rng=rng or random.Random(3),
        )
        self.machine.start(now=self.now)
        assert self.machine.effects() == [Connect(URL)]
        self.machine.connected(URL, now=self.now)
        assert self.machine.effects() == [ReportConnected(URL)]

    def announce(self, offers: int = 0) -> list[Effect]:
        """Run the announce due now, with ``offers`` offers; the effects after it."""
        self.machine.handle_timer(now=self.now)
        effects = self.machine.effects()
        requests = of(effects, MakeOffers)
        if requests:
            made = [Offer(oid(100 + n), f"my offer {n}") for n in range(offers)]
            self.machine.offers_made(requests[0], made, now=self.now)
            effects += self.machine.effects()
        return effects

    def receive(self, text: str) -> list[Effect]:
        self.machine.message_received(URL, text, now=self.now)
        return self.machine.effects()


# ------------------------------------------------------------------------------ two viewers meet


def test_two_viewers_meet_through_the_tracker() -> None:
    net = TrackerNetwork()
    a = net.viewer("a")
    net.advance(0)
    (_, first), *_ = announces(a)
    assert first["event"] == "started" and first["numwant"] == 5 and len(first["offers"]) == 5
    assert first["uploaded"] == 0 and first["downloaded"] == 0 and "left" not in first
    assert a.updates == [(0, 1)]
    b = net.viewer("b")
    net.advance(0)
    # One peer in the swarm for b's five offers: one is relayed to a, which answers it through the
    # tracker; the answer reaches b for exactly that offer.
    (offer,) = a.offers_received
    assert offer.peer_id == b.peer_id and b.made[offer.offer_id] == offer.sdp
    (answer,) = b.answers
    assert (answer.peer_id, answer.offer_id) == (a.peer_id, offer.offer_id)
    assert answer.sdp == f"answer-sdp from a to [{offer.sdp}]"
    stats = net.state.statistics()
    assert (stats.offers_relayed, stats.answers_relayed, stats.peers) == (1, 1, 2)
    assert b.machine.statistics().offers_answered == 1 and a.machine.statistics().answers_sent == 1
    # b's four other offers found nobody; they expire after offer_timeout (50 s), and a's five too.
    net.advance(49.999)
    assert not b.expired and not a.expired
    net.advance(0.001)
    assert len(b.expired) == 4 and offer.offer_id not in b.expired and len(a.expired) == 5
    assert b.machine.statistics().pending_offers == 0


def test_three_viewers_pair_up_exactly_once() -> None:
    net = TrackerNetwork()
    viewers = [net.viewer(name) for name in "abc"]
    net.advance(0)
    for _ in range(3):  # more rounds of offers within the de-duplication window
        for viewer in viewers:
            viewer.machine.announce_now(now=net.now)
        net.advance(1.0)
    pairs = {frozenset((v.peer_id, d.peer_id)) for v in viewers for d in v.answers}
    assert len(pairs) == 3 and sum(len(v.answers) for v in viewers) == 3
    for viewer in viewers:
        for delivered in viewer.answers:  # each answer is the answer to exactly that offer
            assert delivered.sdp.endswith(f"[{viewer.made[delivered.offer_id]}]")
        assert viewer.peer_id not in {o.peer_id for o in viewer.offers_received}
    assert sum(v.machine.statistics().duplicates_suppressed for v in viewers) > 0
    for viewer in viewers:
        viewer.machine.close(now=net.now)
    net.deliver()
    assert net.state.statistics().peers == 0


def test_closing_sends_stopped_where_joined_and_expires_pending_offers() -> None:
    net = TrackerNetwork()
    a, b = net.viewer("a"), net.viewer("b")
    net.advance(0)
    assert net.state.statistics().peers == 2
    a.machine.close(now=net.now)
    net.deliver()
    (_, stopped) = announces(a)[-1]
    assert stopped["event"] == "stopped" and stopped["numwant"] == 0 and "offers" not in stopped
    assert net.state.peer_ids(INFO_HASH) == {b.peer_id}
    assert a.machine.statistics().pending_offers == 0 and len(a.expired) == 5
    assert not [r for r in a.reports if isinstance(r, ReportFailed)]  # closing is no failure
    net.advance(600)
    assert len(announces(a)) == 2  # nothing after the close


def test_a_restarted_tracker_is_rejoined_after_a_backoff_with_started() -> None:
    net = TrackerNetwork()
    a = net.viewer("a")
    net.advance(0)
    net.tracker_restarts()
    (failed,) = [r for r in a.reports if isinstance(r, ReportFailed)]
    assert failed.reason == "connection lost" and 2.5 <= failed.retry_in <= 5.0
    assert len(a.expired) == 5  # the offers of a lost connection expire at once
    net.advance(failed.retry_in)
    assert a.connects[-1] == pytest.approx(1000.0 + failed.retry_in)
    (_, again) = announces(a)[-1]
    assert again["event"] == "started" and net.state.peer_ids(INFO_HASH) == {a.peer_id}
    assert a.machine.statistics().trackers[0].reconnects == 1


# ------------------------------------------------------------------------------ intervals, back-off


def test_intervals_default_until_the_tracker_answers_then_clamped_and_min_interval_respected() -> None:
    me = Alone()
    announced = me.announce()
    assert sent(announced)[0]["event"] == "started"
    assert me.machine.get_timer() == 30.0  # default_interval before the tracker says
    me.receive(frame(interval=2))
    assert me.machine.get_timer() == 10.0  # clamped up to min_announce_interval
    me.receive(frame(interval=1000))
    assert me.machine.get_timer() == 300.0  # clamped down to max_announce_interval
    me.receive(frame(interval=20, **{"min interval": 500}))
    assert me.machine.get_timer() == 500.0  # the tracker's min interval wins (up to an hour)
    me.receive(frame(**{"min interval": 7200}))
    assert me.machine.get_timer() == 3600.0
    me.now = 3600.0
    assert "event" not in sent(me.announce())[0]  # periodic announces carry no event


def test_reconnects_back_off_with_jitter_and_reset_after_an_accepted_announce() -> None:
    machine = TrackerClientProtocol([URL], info_hash=INFO_HASH, peer_id=ME, rng=random.Random(5))
    expected_rng = random.Random(5)
    now = 0.0
    machine.start(now=now)
    assert machine.statistics().trackers[0].state == "connecting"
    delays = []
    for attempt in range(8):
        assert of(machine.effects(), Connect) == [Connect(URL)]
        machine.connect_failed(URL, "connection refused", now=now)
        (report,) = of(machine.effects(), ReportFailed)
        expected = backoff_delay(attempt, minimum=5.0, maximum=300.0, jitter=0.5, rng=expected_rng)
        assert report == ReportFailed(URL, "connection refused", expected)
        assert min(5.0 * 2**attempt, 300.0) / 2 <= expected <= min(5.0 * 2**attempt, 300.0)
        assert machine.get_timer() == now + expected
        delays.append(expected)
        machine.handle_timer(now=now + expected - 0.001)
        assert not machine.effects()  # not a millisecond early
        now += expected
        machine.handle_timer(now=now)
    status = machine.statistics().trackers[0]
    assert (status.state, status.connect_failures, status.reconnects) == ("failed", 8, 8)
    assert delays[-1] > 150  # doubled up to the cap (300 s minus jitter)
    machine.effects()
    machine.connected(URL, now=now)
    machine.handle_timer(now=now)
    machine.offers_made(of(machine.effects(), MakeOffers)[0], [], now=now)
    machine.message_received(URL, frame(interval=120, complete=0, incomplete=1), now=now)
    machine.effects()
    machine.closed(URL, "closed by server (code 1001: going away)", now=now)
    (report,) = of(machine.effects(), ReportFailed)
    assert report.reason == "closed by server (code 1001: going away)"
    assert report.retry_in == backoff_delay(0, minimum=5.0, maximum=300.0, jitter=0.5, rng=expected_rng)
    assert machine.statistics().trackers[0].state == "closed"


def test_a_failure_without_action_disconnects_and_a_refusal_retries_on_the_same_socket() -> None:
    me = Alone()
    me.announce(offers=2)
    effects = me.receive(frame(**{"failure reason": "swarm is full"}))  # a refusal: action + our hash
    assert of(effects, OfferExpired) == [OfferExpired(oid(100)), OfferExpired(oid(101))]
    assert not of(effects, Disconnect)
    retry = me.machine.get_timer()
    assert retry is not None and 2.5 <= retry <= 5.0  # backoff_min minus jitter
    assert me.receive(json.dumps({"action": "announce", "failure reason": "x", "info_hash": "y" * 20})) == []
    assert me.machine.statistics().ignored_messages == 1  # a refusal for another swarm
    me.now = retry
    me.announce(offers=1)
    effects = me.receive(json.dumps({"failure reason": "invalid request"}))  # no action: fatal
    assert of(effects, Disconnect) == [Disconnect(URL)]
    assert of(effects, OfferExpired) == [OfferExpired(oid(100))]
    (report,) = of(effects, ReportFailed)
    assert report.reason == "refused by the tracker: invalid request"
    status = me.machine.statistics().trackers[0]
    assert (status.state, status.failures, status.connected) == ("failed", 3, False)  # every failure counts
    me.machine.closed(URL, "closed", now=me.now)  # the socket's end, after the machine's own
    assert me.machine.effects() == []


def test_a_full_swarm_refusal_through_the_tracker_is_retried_until_there_is_room() -> None:
    net = TrackerNetwork(limits=TrackerLimits(max_peers_per_swarm=1))
    a = net.viewer("a")
    net.advance(0)
    b = net.viewer("b")
    net.advance(0)
    assert len(b.expired) == 5
    status = b.machine.statistics().trackers[0]
    assert (status.failures, status.last_error, status.connected) == (
        1,
        "failure reason: swarm is full",
        True,
    )
    net.advance(5.0)  # retried within backoff_min, refused again: the back-off grows
    assert b.machine.statistics().trackers[0].failures == 2
    a.machine.close(now=net.now)
    net.advance(10.0)
    assert net.state.peer_ids(INFO_HASH) == {b.peer_id}
    status = b.machine.statistics().trackers[0]
    assert status.responses == 1 and status.connects == len(b.connects) == 1  # a refusal keeps the socket


def test_peers_wanted_bring_announces_sooner_doubling_up_to_the_interval() -> None:
    net = TrackerNetwork()
    sizes: list[int] = []

    def wants_peers(size: int) -> bool:
        sizes.append(size)
        return True

    a = net.viewer("a", wants_peers=wants_peers)
    lazy = net.viewer("lazy", wants_peers=lambda size: False)
    plain = net.viewer("plain")  # no wants_peers: the interval only
    net.advance(400)
    times = [at - 1000.0 for at, _ in announces(a)]
    assert times == [0, 10, 30, 70, 150, 270, 390]  # +10, +20, +40, +80, then the interval (120)
    assert all(len(message["offers"]) == 5 for _, message in announces(a))  # fresh offers each time
    assert sizes[:2] == [1, 3]  # the swarm's size (complete + incomplete) in its latest response
    assert [at - 1000.0 for at, _ in announces(lazy)] == [0, 120, 240, 360]
    assert [at - 1000.0 for at, _ in announces(plain)] == [0, 120, 240, 360]


def test_a_check_answered_false_restarts_the_early_announce_back_off() -> None:
    net = TrackerNetwork()
    wanted = [True]
    a = net.viewer("a", wants_peers=lambda size: wanted[0])
    net.advance(35)
    wanted[0] = False
    net.advance(40)  # the check at 70 says no: no announce, the next check 10 s later
    wanted[0] = True
    net.advance(30)
    assert [at - 1000.0 for at, _ in announces(a)] == [0, 10, 30, 80, 100]


# ------------------------------------------------------------------------------ offers and answers


def test_an_answer_later_than_the_offer_timeout_is_not_sent() -> None:
    me = Alone()
    (request,) = of(me.receive(offer_frame(OTHER, oid(1))), AnswerOffer)
    assert (request.peer_id, request.offer_id, request.received_at) == (OTHER, oid(1), 0.0)
    me.machine.answer_ready(request, "my answer", now=50.001)
    assert me.machine.effects() == [] and me.machine.statistics().offers_declined == 1
    (again,) = of(me.receive(offer_frame(OTHER, oid(2))), AnswerOffer)  # the peer is free again
    me.machine.answer_ready(again, "my answer", now=50.0)  # exactly the timeout is in time
    (answer,) = sent(me.machine.effects())
    assert answer == {
        "action": "announce",
        "info_hash": INFO_HASH.decode(),
        "peer_id": ME.decode(),
        "to_peer_id": OTHER.decode(),
        "answer": {"type": "answer", "sdp": "my answer"},
        "offer_id": oid(2).decode(),
    }


def test_offers_made_after_the_connection_was_lost_expire_at_once() -> None:
    me = Alone()
    me.machine.handle_timer(now=0.0)
    (request,) = of(me.machine.effects(), MakeOffers)
    assert request.count == 5
    me.machine.closed(URL, "connection lost", now=1.0)
    me.machine.effects()
    me.machine.offers_made(request, [Offer(oid(1), "late"), Offer(oid(2), "late")], now=2.0)
    assert me.machine.effects() == [OfferExpired(oid(1)), OfferExpired(oid(2))]
    assert me.machine.statistics().pending_offers == 0


def test_offers_made_are_checked_and_pending_offers_bounded() -> None:
    me = Alone(max_pending_offers=6, offers_per_announce=5)
    me.machine.handle_timer(now=0.0)
    (request,) = of(me.machine.effects(), MakeOffers)
    made: list[object] = [Offer(oid(n), "s") for n in range(4)] + [Offer(oid(0), "duplicate"), "junk"]
    made += [Offer(oid(9), "one too many"), Offer(oid(10), "two too many")]
    me.machine.offers_made(request, made, now=0.0)
    effects = me.machine.effects()
    assert of(effects, OfferExpired) == [OfferExpired(oid(10))]  # the sixth valid offer
    (announce,) = sent(effects)
    assert announce["numwant"] == 5 and [o["offer_id"] for o in announce["offers"]] == [
        oid(n).decode() for n in (0, 1, 2, 3, 9)
    ]
    me.now = 30.0
    me.machine.handle_timer(now=me.now)
    (request,) = of(me.machine.effects(), MakeOffers)
    assert request.count == 1  # six pending at most


def test_one_remote_peer_on_several_trackers_is_answered_once_until_forgotten() -> None:
    urls = [URL, "ws://second.test"]
    machine = TrackerClientProtocol(urls, info_hash=INFO_HASH, peer_id=ME, rng=random.Random(1))
    machine.start(now=0.0)
    for url in urls:
        machine.connected(url, now=0.0)
    machine.effects()
    machine.message_received(URL, offer_frame(OTHER, oid(1)), now=0.0)
    machine.message_received(urls[1], offer_frame(OTHER, oid(2)), now=0.0)
    (request,) = of(machine.effects(), AnswerOffer)
    assert request.url == URL and machine.statistics().duplicates_suppressed == 1
    machine.message_received(URL, offer_frame(ME, oid(3)), now=0.0)  # our own offer
    machine.message_received(URL, offer_frame(OTHER, oid(4)).replace(INFO_HASH.decode(), "x" * 20), now=0.0)
    assert machine.effects() == [] and machine.statistics().ignored_messages == 2
    machine.forget_peer(OTHER)
    machine.message_received(urls[1], offer_frame(OTHER, oid(5)), now=1.0)
    assert of(machine.effects(), AnswerOffer)[0].url == urls[1]
    machine.message_received(URL, offer_frame(OTHER, oid(6)), now=61.0)  # after dedup_window
    assert len(of(machine.effects(), AnswerOffer)) == 1


def test_too_many_offers_with_the_caller_at_once_are_declined() -> None:
    me = Alone(max_concurrent_signalling=1)
    (held,) = of(me.receive(offer_frame(OTHER, oid(1))), AnswerOffer)
    assert me.receive(offer_frame(SMALL, oid(2))) == []
    assert me.machine.statistics().offers_declined == 1
    me.machine.answer_ready(held, None, now=0.0)  # declined by the caller
    assert len(of(me.receive(offer_frame(SMALL, oid(3))), AnswerOffer)) == 1
    assert me.machine.statistics().offers_declined == 2


@pytest.mark.parametrize("first", ["a", "b"])
def test_glare_keeps_the_connection_offered_by_the_smaller_peer_id(first: str) -> None:
    """a and b each answer the other's offer before either answer arrives: both sides keep the
    connection a (the smaller id) offered, whichever answer the tracker relays first."""
    net = TrackerNetwork()
    a = net.viewer("a")
    net.advance(0)
    a.hold_answers = True
    b = net.viewer("b")
    b.hold_answers = True
    net.advance(0)
    a.machine.announce_now(now=net.now)
    net.advance(1.0)  # a's forced announce (at least a second after the previous one)
    (offer_to_a,), (offer_to_b,) = a.held_answers, b.held_answers
    assert a.peer_id < b.peer_id
    order = [(a, offer_to_a), (b, offer_to_b)] if first == "a" else [(b, offer_to_b), (a, offer_to_a)]
    for viewer, request in order:
        viewer.machine.answer_ready(request, f"answer from {viewer.name}", now=net.now)
        net.deliver()
    assert [(d.peer_id, d.offer_id) for d in a.answers] == [(b.peer_id, offer_to_b.offer_id)]
    assert b.answers == []
    assert offer_to_a.offer_id in b.expired  # b's offer, answered by a, is given up on b's side
    assert b.machine.statistics().duplicates_suppressed == 1


def test_swarm_counts_and_the_extension_object_are_reported() -> None:
    me = Alone()
    me.announce()
    effects = me.receive(frame(complete=2, incomplete=3, p2ploader={"role": "host", "host": None}))
    assert of(effects, SwarmUpdated) == [SwarmUpdated(2, 3)]
    assert [e.data for e in effects if not isinstance(e, SwarmUpdated)] == [{"role": "host", "host": None}]
    assert me.receive(frame(complete=2, incomplete=-1)) == []  # counts that make no sense: none


def test_settings_are_checked_and_defaults_are_the_browser_clients() -> None:
    defaults = TrackerClientSettings()
    assert (defaults.offers_per_announce, defaults.offer_timeout, defaults.default_interval) == (
        5,
        50.0,
        30.0,
    )
    assert (defaults.backoff_min, defaults.backoff_max, defaults.backoff_jitter) == (5.0, 300.0, 0.5)
    for bad in (
        {"offers_per_announce": 11},
        {"backoff_jitter": 1.0},
        {"min_announce_interval": 400.0},
        {"offer_timeout": 0},
        {"max_message_size": 100},
    ):
        with pytest.raises(UsageError):
            TrackerClientSettings(**bad)
    with pytest.raises(UsageError):
        TrackerClientProtocol([URL], info_hash=b"short", peer_id=ME, rng=random.Random())


def test_a_delivered_answer_holds_a_signalling_slot_until_it_is_handled() -> None:
    me = Alone(max_concurrent_signalling=1)
    me.announce(offers=1)
    (delivered,) = of(me.receive(answer_frame(OTHER, oid(100))), DeliverAnswer)
    assert delivered.sdp == "remote answer"
    assert me.receive(offer_frame(SMALL, oid(2))) == []  # busy: declined
    me.machine.signalling_finished()
    assert len(of(me.receive(offer_frame(SMALL, oid(3))), AnswerOffer)) == 1
    assert me.receive(answer_frame(OTHER, oid(100))) == []  # no longer pending: ignored
    assert me.machine.statistics().ignored_messages == 1


def test_default_bounds_on_signalling_and_pending_offers() -> None:
    me = Alone()
    assert (me.machine.settings.max_concurrent_signalling, me.machine.settings.max_pending_offers) == (20, 50)
    held = [
        of(me.receive(offer_frame(f"-PY0001-peer{n:08d}".encode(), oid(n))), AnswerOffer) for n in range(21)
    ]
    assert [len(requests) for requests in held] == [1] * 20 + [0]  # the 21st is declined
    me.machine.handle_timer(now=0.0)
    for round_ in range(10):  # five offers per announce, none answered, none expired yet
        (request,) = of(me.machine.effects(), MakeOffers)
        assert request.count == 5
        made = [Offer(f"o{round_:04d}-{n:014d}".encode(), "s") for n in range(5)]
        me.machine.offers_made(request, made, now=me.now)
        me.machine.effects()
        me.machine.announce_now(now=me.now)
        me.now += 1.0
        me.machine.handle_timer(now=me.now)
    effects = me.machine.effects()
    assert not of(effects, MakeOffers)  # 50 pending: this announce carries none
    (announce,) = sent(effects)
    assert announce["numwant"] == 0 and announce["offers"] == []
    assert me.machine.statistics().pending_offers == 50
