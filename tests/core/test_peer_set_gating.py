"""Who gets a link and who keeps it (:mod:`p2ploader.core.peer_set`): remote offers, answers to our
offers (glare), links opening (slots, eviction, rewiring) and closing, uploads ending, with no
socket and no sleep.

Every transport asks its :class:`~p2ploader.core.peer_set.PeerSet` the same questions; here the
transport is a recording :class:`~p2ploader.core.peer_set.PeerLinkIO` and the clock is the number
each test passes in. Hostile cases: an offer or answer claiming our own id, an answer for an id
whose link is open, floods of offers at full slots with and without rewiring.
"""

from __future__ import annotations

from collections.abc import Collection

import attrs

from p2ploader.core import events as ev
from p2ploader.core.admission import Admission, AdmissionLimits
from p2ploader.core.peer_protocol import PeerProtocol, Upload
from p2ploader.core.peer_set import Accept, Eviction, Opened, PeerSet, Refusal, Refuse

SWARM = "v0"
US = "55" * 20
A, B, C = "aa" * 20, "bb" * 20, "cc" * 20
LOW, HIGH = "11" * 20, "ee" * 20  # ids below and above ours (the glare rule compares them)
TWO_SLOTS = AdmissionLimits(max_peers=2)


@attrs.define(eq=False)
class Link:
    peer_id: str
    protocol: PeerProtocol
    open: bool = False
    released: str | None = None
    closed: str | None = None


@attrs.define
class Io:
    """Records what the peer set asks of the transport (links are usable once open)."""

    released: list[tuple[str, str]] = attrs.Factory(list)

    def usable(self, link: Link) -> bool:
        return link.open

    def transmit(self, link: Link) -> None:
        link.protocol.messages_to_send()

    def pump(self, link: Link) -> None:
        link.protocol.messages_to_send()

    def close(self, link: Link, reason: str) -> None:
        link.closed = link.closed or reason

    def release(self, link: Link, reason: str) -> None:
        self.released.append((link.peer_id, reason))
        link.released = link.released or reason

    def feed_soon(self, event: ev.Event) -> None:
        raise AssertionError("nothing is fed later here")

    def upload_started(self, link: Link, upload: Upload) -> None:
        pass

    def upload_extended(self, link: Link) -> None:
        pass

    def upload_stopped(self, link: Link, upload: Upload) -> None:
        pass


@attrs.define
class World:
    peers: PeerSet[Link]
    io: Io
    events: list[ev.Event]
    bans: set[str]
    topology_asked: list[tuple[str, tuple[str, ...]]]

    @property
    def admission(self) -> Admission:
        assert self.peers.admission is not None
        return self.peers.admission

    def link(self, peer_id: str, *, now: float, initiator: bool = False) -> Link:
        link = Link(peer_id, self.peers.new_protocol())
        self.peers.add(peer_id, link, now=now, certificate=f"cert-{peer_id}", initiator=initiator)
        return link

    def open(self, link: Link, *, now: float) -> Opened:
        link.open = True
        return self.peers.opened(link, now=now)

    def answered(self, peer_id: str, *, now: float) -> Link:
        """A remote offer from ``peer_id`` answered, its link made and opened."""
        assert self.peers.offer(peer_id, f"cert-{peer_id}", now=now) == Accept()
        link = self.link(peer_id, now=now)
        assert self.open(link, now=now).keep
        return link

    def connected(self) -> list[str]:
        return [e.peer_id for e in self.events if isinstance(e, ev.PeerConnected)]

    def disconnected(self) -> list[str]:
        return [e.peer_id for e in self.events if isinstance(e, ev.PeerDisconnected)]


def world(
    limits: AdmissionLimits | None = TWO_SLOTS,
    *,
    require_certificates: bool = True,
    topology: set[str] | None = None,
    offers_wanted: bool | None = None,
) -> World:
    events: list[ev.Event] = []
    bans: set[str] = set()
    asked: list[tuple[str, tuple[str, ...]]] = []
    io = Io()

    def admit(peer_id: str, linked: Collection[str]) -> bool:
        asked.append((peer_id, tuple(linked)))
        return topology is not None and peer_id in topology

    peers: PeerSet[Link] = PeerSet(
        swarm=SWARM,
        live=True,
        first_sequence=0,
        feed=events.append,
        io=io,
        max_segment_size=100_000,
        is_banned=lambda peer_id, certificate: peer_id in bans,
        local_peer_id=US,
        require_certificates=require_certificates,
        admit=admit if topology is not None else None,
        admission=Admission(limits) if limits is not None else None,
        offers_wanted=None if offers_wanted is None else (lambda linked: offers_wanted),
    )
    return World(peers=peers, io=io, events=events, bans=bans, topology_asked=asked)


# ------------------------------------------------------------------ remote offers


def test_an_offer_claiming_our_own_id_is_refused_before_it_costs_anything() -> None:
    w = world()
    for second in range(50):
        assert w.peers.offer(US, "cert-forged", now=float(second)) == Refuse(Refusal.OWN_ID)
    assert w.peers.links == {}
    stats = w.admission.statistics()
    # Refused before admission: no token of the offer budget spent, nothing counted.
    assert (stats.offers_over_budget, stats.offers_busy) == (0, 0)
    assert w.peers.offer(A, "cert-a", now=50.0) == Accept()


def test_an_offer_from_a_linked_id_without_certificate_or_banned_is_refused() -> None:
    w = world()
    w.link(A, now=0.0)
    assert w.peers.offer(A, "cert-other", now=1.0) == Refuse(Refusal.LINKED)
    assert w.peers.offer(B, None, now=1.0) == Refuse(Refusal.NO_CERTIFICATE)
    w.bans.add(C)
    assert w.peers.offer(C, "cert-c", now=1.0) == Refuse(Refusal.BANNED)
    # A transport with no certificates (the simulator) does not require one.
    assert world(require_certificates=False).peers.offer(B, None, now=1.0) == Accept()


def test_the_topology_gate_sees_the_linked_ids_and_a_left_swarm_refuses_everyone() -> None:
    w = world(topology={B})
    w.link(A, now=0.0)  # linked before the gate (e.g. our host)
    assert w.peers.offer(C, "cert-c", now=1.0) == Refuse(Refusal.TOPOLOGY)
    assert w.peers.offer(B, "cert-b", now=1.0) == Accept()
    assert w.topology_asked == [(C, (A,)), (B, (A,))]
    w.peers.leave()
    assert w.peers.offer(B, "cert-b", now=2.0) == Refuse(Refusal.LEFT)
    assert w.peers.answer(B, "cert-b", now=2.0) == Refuse(Refusal.LEFT)


def test_a_flood_of_offers_at_full_useful_slots_gets_no_link_without_rewiring() -> None:
    w = world(AdmissionLimits(max_peers=2, idle_grace=5.0))
    w.answered(A, now=0.0)
    w.answered(B, now=0.0)
    verdicts = {w.peers.offer(f"{n:040x}", f"cert-{n}", now=1.0 + n / 100) for n in range(200)}
    assert verdicts == {Refuse(Refusal.FULL)}
    assert set(w.peers.links) == {A, B} and w.io.released == []
    # Declined before the offer budget: the budget is intact for the next honest newcomer.
    assert w.admission.statistics().offers_over_budget == 0


def test_a_flood_of_offers_with_rewiring_replaces_one_useful_peer_per_interval() -> None:
    w = world(AdmissionLimits(max_peers=2, rewire_interval=10.0, idle_grace=100.0))  # all useful
    w.answered(A, now=0.0)
    w.answered(B, now=1.0)
    accepted: list[str] = []
    for n in range(40):  # one offer from a fresh id every half second, for 20 s
        now = 2.0 + n * 0.5
        newcomer = f"{n + 1:040x}"
        if isinstance(w.peers.offer(newcomer, f"cert-{n}", now=now), Accept):
            accepted.append(newcomer)
            link = w.link(newcomer, now=now)
            opened = w.open(link, now=now + 0.1)
            assert opened.keep and opened.eviction is Eviction.REWIRED
            # The peer useful (here: opened) longest ago gave its slot, released at once.
            assert (
                opened.evicted is not None
                and w.peers.links[opened.evicted].released == Eviction.REWIRED.value
            )
            w.peers.closed(w.peers.links[opened.evicted])
    # At 2.0 and again once the interval passed: two in 20 s, never more.
    assert len(accepted) == 2
    assert w.admission.statistics().rewired == 2
    assert len(w.peers.links) == 2


def test_an_offer_over_the_cap_on_connecting_links_replaces_only_an_old_one() -> None:
    w = world(AdmissionLimits(max_peers=5, max_connecting=1, connecting_hold=3.0))
    assert w.peers.offer(A, "cert-a", now=0.0) == Accept()
    a = w.link(A, now=0.0)
    assert w.peers.offer(B, "cert-b", now=1.0) == Refuse(Refusal.BUSY)
    assert a.released is None
    verdict = w.peers.offer(C, "cert-c", now=4.0)
    assert verdict == Accept(replaced=A)
    assert a.released == "still connecting when a newer offer came"
    assert w.admission.connecting_count == 0  # its place is free before its close completes


# ------------------------------------------------------------------ answers to our offers (glare)


def test_an_answer_claiming_our_own_id_or_banned_is_dropped() -> None:
    w = world()
    assert w.peers.answer(US, "cert-forged", now=0.0) == Refuse(Refusal.OWN_ID)
    assert w.peers.answer(A, None, now=0.0) == Refuse(Refusal.NO_CERTIFICATE)
    w.bans.add(A)
    assert w.peers.answer(A, "cert-a", now=0.0) == Refuse(Refusal.BANNED)
    assert w.peers.links == {}


def test_an_answer_for_an_id_whose_link_is_open_never_replaces_it() -> None:
    w = world()
    for peer_id in (LOW, HIGH):  # whatever the ids' order
        link = w.answered(peer_id, now=0.0)
        assert w.peers.answer(peer_id, "cert-impostor", now=1.0) == Refuse(Refusal.GLARE)
        assert w.peers.links[peer_id] is link and link.released is None
        assert w.peers.admitted(peer_id) and w.admission.is_open(peer_id)
    assert w.disconnected() == []


def test_glare_between_connecting_links_keeps_the_smaller_offerers_link_on_both_sides() -> None:
    w = world()
    # Our offer to HIGH is connecting when HIGH's answer to another offer of ours arrives: our
    # offers on both (we offer, smaller id): the existing one stays.
    w.link(HIGH, now=0.0, initiator=True)
    assert w.peers.answer(HIGH, "cert-high", now=0.5) == Refuse(Refusal.GLARE)
    # We answered LOW's offer (LOW offers, and its id is smaller than ours): that link stays too.
    w.link(LOW, now=0.0)
    assert w.peers.answer(LOW, "cert-low", now=0.5) == Refuse(Refusal.GLARE)
    # We answered HIGH2's offer (it offers, its id larger than ours): our offer's link wins.
    high2 = "ff" * 20
    old = w.link(high2, now=0.0)
    assert w.peers.answer(high2, "cert-high2", now=0.5) == Accept(replaced=high2)
    assert old.released is not None and high2 not in w.peers.links
    assert w.peers.closed(old) is None  # never admitted: the core hears nothing of its end
    new = w.link(high2, now=0.5, initiator=True)
    assert w.open(new, now=1.0).keep and w.connected() == [high2]


# ------------------------------------------------------------------ links opening and closing


def test_without_admission_every_opened_link_is_admitted_and_reported_once() -> None:
    w = world(None)
    link = w.link(A, now=0.0)
    assert w.peers.closed(link) is None  # closed before it opened: nothing to report
    link = w.link(A, now=1.0)
    assert w.open(link, now=1.0) == Opened(keep=True)
    assert w.events == [ev.PeerConnected(peer_id=A)]
    assert w.peers.closed(link) == ev.PeerDisconnected(peer_id=A)
    assert w.peers.closed(link) is None  # once only
    assert w.peers.links == {}


def test_a_newcomer_takes_an_idle_peers_slot_and_the_idle_peer_is_released() -> None:
    w = world(AdmissionLimits(max_peers=2, idle_grace=5.0, idle_timeout=30.0))
    a = w.answered(A, now=0.0)
    b = w.answered(B, now=0.0)
    w.admission.delivered(B, now=20.0)  # B delivers; A stays silent
    c = w.link(C, now=20.0)
    opened = w.open(c, now=20.0)
    assert opened == Opened(keep=True, evicted=A, eviction=Eviction.IDLE)
    assert a.released == Eviction.IDLE.value and b.released is None
    assert w.connected() == [A, B, C]
    # The evicted link's close is reported when the transport sees it end.
    assert w.peers.closed(a) == ev.PeerDisconnected(peer_id=A)


def test_a_newcomer_meeting_full_useful_slots_is_closed_and_never_reported() -> None:
    w = world(AdmissionLimits(max_peers=1, idle_grace=5.0))
    w.answered(A, now=0.0)
    b = w.link(B, now=1.0, initiator=True)
    assert w.open(b, now=1.0) == Opened(keep=False)
    assert b.released == Refusal.FULL.value
    assert w.connected() == [A]
    assert w.peers.closed(b) is None
    assert w.admission.statistics().refused_full == 1


def test_a_stale_link_object_closing_does_not_forget_the_peers_new_link() -> None:
    w = world(None)
    old = w.link(A, now=0.0)
    w.open(old, now=0.0)
    new = w.link(A, now=1.0)  # the transport replaced it (a reconnect under the same id)
    assert not w.peers.admitted(A)
    assert w.peers.closed(old) is None
    assert w.peers.links[A] is new


def test_an_upload_ending_frees_the_schedulers_slot_with_the_bytes_sent() -> None:
    w = world(None)
    link = w.link(A, now=0.0)
    upload = link.protocol.start_upload(segment_id=3, request_id=9, data=b"x" * 10)
    w.peers.upload_finished(link, upload, sent_bytes=4)
    assert w.events == [ev.UploadFinished(peer_id=A, peer_request_id=9, sent_bytes=4)]


# ------------------------------------------------------------------ our own offers


def test_offers_are_bounded_by_room_minus_pending_and_by_the_topology() -> None:
    w = world(AdmissionLimits(max_peers=3))
    assert w.peers.offers_to_make(10, now=0.0) == 3
    assert w.peers.offers_to_make(10, now=0.0, pending=2) == 1
    w.link(A, now=0.0, initiator=True)  # one of ours still connecting
    assert w.peers.room(now=0.0) == 2
    assert world(AdmissionLimits(max_peers=3), offers_wanted=False).peers.offers_to_make(10, now=0.0) == 0
    assert world(None).peers.offers_to_make(10, now=0.0) == 0


def test_we_look_for_peers_sooner_only_when_not_alone_and_nobody_earns_a_slot() -> None:
    w = world(AdmissionLimits(max_peers=2, idle_grace=5.0))
    assert not w.peers.wants_peers(1, now=0.0)  # alone in the swarm
    assert w.peers.wants_peers(3, now=0.0)
    w.answered(A, now=0.0)
    w.admission.delivered(A, now=10.0)
    assert not w.peers.wants_peers(3, now=10.0)  # A delivers
    assert w.peers.wants_peers(3, now=50.0)  # it stopped
    w.peers.leave()
    assert not w.peers.wants_peers(3, now=50.0)
