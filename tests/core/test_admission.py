"""Peer admission (sans-IO, the clock is an argument): slots go to peers that deliver, idle peers are
evicted after their grace period, connecting links and answered offers are capped; bans fall on a
certificate, so using an honest peer's id cannot get it banned."""

from __future__ import annotations

from collections.abc import Collection

import pytest

from p2ploader.core import actions as act
from p2ploader.core import events as ev
from p2ploader.core.admission import Admission, AdmissionLimits, keeps_existing_link
from p2ploader.core.bans import STRIKES_BEFORE_BAN, PeerBans, certificate_identity
from p2ploader.core.segments import SegmentId
from p2ploader.errors import UsageError

NEEDED = SegmentId("v0", 7)
HELD = SegmentId("v0", 1)


def wants(segments: Collection[SegmentId]) -> bool:
    return NEEDED in segments


def full_of(limits: AdmissionLimits, *, now: float = 0.0) -> Admission:
    admission = Admission(limits)
    for i in range(limits.max_peers):
        admission.link_created(f"p{i}", now=now, answered=True)
        assert admission.admit_open(f"p{i}", now=now, wants=wants) == (True, None)
    return admission


def newcomer(admission: Admission, *, now: float, name: str = "new") -> tuple[bool, str | None]:
    admission.link_created(name, now=now, answered=True)
    return admission.admit_open(name, now=now, wants=wants)


def test_defaults() -> None:
    limits = AdmissionLimits()
    assert (limits.max_peers, limits.max_connecting, limits.idle_grace, limits.idle_timeout) == (
        20,
        8,
        5.0,
        30.0,
    )
    assert (limits.offer_budget, limits.offer_window, limits.connecting_hold) == (40, 30.0, 3.0)
    # With the defaults, 20 idle peers lose their slots to newcomers once their grace is over.
    admission = full_of(limits)
    assert newcomer(admission, now=4.9) == (False, None)
    assert newcomer(admission, now=5.0) == (True, "p0")


def test_an_idle_peer_is_evicted_only_after_its_grace_period() -> None:
    admission = full_of(AdmissionLimits(max_peers=2, idle_grace=10.0))
    assert newcomer(admission, now=5.0) == (False, None)  # both still in grace: the newcomer goes
    admission.closed("new")
    keep, evict = newcomer(admission, now=10.0)
    assert keep and evict == "p0"
    assert admission.statistics().evicted == 1 and admission.statistics().refused_full == 1


def test_peers_that_deliver_or_take_uploads_keep_their_slots() -> None:
    limits = AdmissionLimits(max_peers=3, idle_grace=10.0, idle_timeout=20.0)
    admission = full_of(limits)
    admission.delivered("p0", now=15.0)  # a seeder sending us bytes
    admission.served("p1", now=15.0)  # a leecher taking ours (it never delivers to a seeder)
    keep, evict = newcomer(admission, now=30.0)
    assert keep and evict == "p2"  # the idle one
    admission.closed("p2")
    # Past idle_timeout since their last bytes, they are idle too: the longest idle goes first.
    admission.served("p1", now=40.0)
    assert newcomer(admission, now=55.0, name="new2") == (True, "p0")


def test_an_announcement_of_needed_segments_holds_until_a_request_fails() -> None:
    admission = full_of(AdmissionLimits(max_peers=2, idle_grace=1.0))
    admission.announced("p0", frozenset({NEEDED}))
    admission.announced("p1", frozenset({HELD}))  # only what we hold already: no use to us
    assert newcomer(admission, now=5.0) == (True, "p1")
    admission.closed("p1")
    admission.closed("new")
    admission.request_failed("p0")  # a liar announcing what it does not have
    admission.announced("p0", frozenset({NEEDED}))  # re-announcing does not restore it
    assert not admission.useful("p0", now=5.0, wants=wants)
    admission.delivered("p0", now=6.0)  # bytes do
    assert admission.useful("p0", now=6.0 + 100.0, wants=wants)


def test_connecting_links_have_their_own_cap_and_old_ones_make_way() -> None:
    limits = AdmissionLimits(max_peers=20, max_connecting=3, connecting_hold=2.0, offer_budget=1000)
    admission = Admission(limits)
    for i in range(3):
        assert admission.may_answer(now=0.0) == (True, None)
        admission.link_created(f"fake{i}", now=0.0, answered=True)
    assert admission.connecting_count == 3 and admission.open_count == 0
    assert admission.may_answer(now=1.0) == (False, None)  # all recent: declined
    assert admission.may_answer(now=2.0) == (True, "fake0")  # the oldest made way
    assert admission.statistics().offers_busy == 1 and admission.statistics().connecting_replaced == 1
    # Fake offers in the connecting places do not stop our own offers and their answers.
    assert admission.room(now=2.0, wants=wants) == 20
    admission.link_created("ours", now=2.0, answered=False)
    assert admission.room(now=2.0, wants=wants) == 19


def test_offers_answered_are_capped_per_window() -> None:
    admission = Admission(AdmissionLimits(offer_budget=10, offer_window=30.0, max_connecting=1000))
    answered = sum(admission.may_answer(now=0.0)[0] for _ in range(100))
    assert answered == 10 and admission.statistics().offers_over_budget == 90
    assert sum(admission.may_answer(now=3.0)[0] for _ in range(100)) == 1  # 10 per 30 s come back
    assert sum(admission.may_answer(now=1000.0)[0] for _ in range(100)) == 10  # never more than the budget


def test_room_counts_idle_peers_a_newcomer_would_replace() -> None:
    limits = AdmissionLimits(max_peers=2, max_connecting=4, idle_grace=10.0)
    admission = full_of(limits)
    assert admission.room(now=1.0, wants=wants) == 0 and not admission.has_slot(now=1.0, wants=wants)
    assert admission.room(now=11.0, wants=wants) == 2 and admission.has_slot(now=11.0, wants=wants)


def test_a_returning_peer_is_answered_when_fresh_ids_drained_the_budget() -> None:
    limits = AdmissionLimits(offer_budget=5, offer_window=30.0, max_connecting=3, returning_after=5.0)
    admission = Admission(limits)
    for i in range(50):  # a spammer: a fresh id per offer, filling the connecting places too
        answer, replace = admission.may_answer(now=0.1, peer_id=f"fresh{i}")
        if answer:
            admission.link_created(f"fresh{i}", now=0.1, answered=True)
    assert admission.may_answer(now=1.0, peer_id="honest") == (False, None)  # first sighting: no budget
    answer, replace = admission.may_answer(now=6.0, peer_id="honest")  # its next announce
    assert answer and replace is not None and replace.startswith("fresh")
    assert admission.statistics().returning_answered == 1
    for i in range(10):  # the spam goes on, taking what the main bucket refilled
        admission.may_answer(now=6.2, peer_id=f"more{i}")
    assert admission.may_answer(now=6.5, peer_id="honest") == (False, None)  # once per 5 s per id
    # A spammer re-using ids gets the second bucket only as fast as it holds ids for 5 s.
    assert admission.may_answer(now=6.0, peer_id="fresh49")[0]


def test_limits_are_checked() -> None:
    with pytest.raises(UsageError, match="max_connecting"):
        AdmissionLimits(max_connecting=0)
    with pytest.raises(UsageError, match="admission times"):
        AdmissionLimits(idle_grace=-1.0)


# --------------------------------------------------------------------------- certificates and bans

SDP = "v=0\r\na=fingerprint:sha-256 ab:cd\r\nm=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\n"


def test_certificate_identity_reads_only_the_fingerprints_the_handshake_checks() -> None:
    assert certificate_identity(SDP) == "sha-256 AB:CD"
    assert certificate_identity(SDP + "a=fingerprint:sha-256 AB:CD\r\n") == "sha-256 AB:CD"
    # A made-up algorithm is ignored by the DTLS handshake, so it cannot name someone else.
    assert certificate_identity(SDP + "a=fingerprint:md5 11:22\r\n") == "sha-256 AB:CD"
    assert certificate_identity("v=0\r\n") is None


def test_a_ban_falls_on_the_certificate_not_on_the_id() -> None:
    bans = PeerBans(duration=60.0)
    bans.bind("honest", "cert-attacker")  # the attacker connects under the honest peer's id
    assert bans.ban("honest", now=0.0, reason="lied")
    assert bans.is_banned("honest", now=1.0, certificate="cert-attacker")
    assert not bans.is_banned("honest", now=1.0, certificate="cert-honest")  # not framed
    bans.bind("honest", "cert-honest")
    assert not bans.is_banned("honest", now=1.0)
    # The attacker's certificate stays banned under any id.
    assert bans.is_banned("other", now=1.0, certificate="cert-attacker")


def test_strikes_pile_up_on_one_certificate_only() -> None:
    bans = PeerBans(duration=60.0)
    for i in range(STRIKES_BEFORE_BAN):
        bans.bind("p", f"cert{i % 2}")
        assert not bans.strike("p", now=float(i), reason="x")  # two identities share the strikes
    bans.bind("p", "cert0")
    assert bans.strike("p", now=5.0, reason="x")  # cert0's third
    assert bans.is_banned("p", now=6.0, certificate="cert0")
    assert not bans.is_banned("p", now=6.0, certificate="cert1")


def test_bindings_are_bounded() -> None:
    bans = PeerBans(duration=10.0, max_entries=8)
    for i in range(1000):
        bans.bind(f"p{i}", f"c{i}")
    assert len(bans._identities) <= 8


def test_earning_counts_what_peers_do_not_their_grace() -> None:
    admission = full_of(AdmissionLimits(max_peers=3, idle_grace=10.0, idle_timeout=20.0))
    assert admission.earning(now=1.0, wants=wants) == 0  # in grace, but nothing done yet
    admission.served("p0", now=2.0)
    admission.announced("p1", frozenset({NEEDED}))
    assert admission.earning(now=3.0, wants=wants) == 2
    assert admission.earning(now=30.0, wants=wants) == 1  # p0's upload is long ago


LOW, HIGH = "11" * 20, "ee" * 20  # peer ids (hex) that sort below and above ours


@pytest.mark.parametrize("initiator", [True, False])
@pytest.mark.parametrize("remote", [LOW, HIGH])
def test_an_open_link_is_never_replaced_by_a_second_connection_claiming_its_id(
    initiator: bool, remote: str
) -> None:
    assert keeps_existing_link(
        existing_open=True, existing_initiator=initiator, local_peer_id="77" * 20, remote_peer_id=remote
    )


@pytest.mark.parametrize(
    ("initiator", "remote", "kept"),
    [
        (True, HIGH, True),  # the existing link is our offer: its offerer (us) is never larger
        (True, LOW, True),
        (False, LOW, True),  # it answered the peer's offer, whose id sorts before ours: it stays
        (False, HIGH, False),  # the peer's id sorts after ours: the connection of our offer wins
    ],
)
def test_glare_between_connecting_links_keeps_the_smaller_offerers_on_both_sides(
    initiator: bool, remote: str, kept: bool
) -> None:
    local = "77" * 20
    assert (
        keeps_existing_link(
            existing_open=False, existing_initiator=initiator, local_peer_id=local, remote_peer_id=remote
        )
        is kept
    )


# ------------------------------------------------------------------ what the core's actions and events say


def test_chunks_count_as_the_delivery_of_the_peer_our_request_went_to() -> None:
    admission = full_of(AdmissionLimits(max_peers=2, idle_grace=1.0, idle_timeout=10.0))
    request = act.RequestFromPeer(request_id=5, peer_id="p0", segment_id=NEEDED)
    admission.performing(request, now=0.5, linked={"p0", "p1"})
    admission.feeding(ev.PeerChunkReceived(request_id=5, data=b"x"), now=8.0)
    admission.feeding(ev.PeerChunkReceived(request_id=6, data=b"x"), now=8.0)  # not ours: nobody's
    # At 12 s p1 is idle (grace over, nothing done); p0 delivered 4 s ago.
    assert newcomer(admission, now=12.0) == (True, "p1")


def test_an_empty_chunk_or_a_request_to_an_unlinked_peer_delivers_nothing() -> None:
    admission = full_of(AdmissionLimits(max_peers=1, idle_grace=1.0))
    admission.performing(
        act.RequestFromPeer(request_id=5, peer_id="p0", segment_id=NEEDED), now=0.0, linked=()
    )
    admission.feeding(ev.PeerChunkReceived(request_id=5, data=b"x"), now=2.0)
    admission.performing(
        act.RequestFromPeer(request_id=6, peer_id="p0", segment_id=NEEDED), now=0.0, linked={"p0"}
    )
    admission.feeding(ev.PeerChunkReceived(request_id=6, data=b""), now=2.0)
    assert newcomer(admission, now=3.0) == (True, "p0")


def test_only_the_latest_request_to_a_peer_is_its_own() -> None:
    admission = full_of(AdmissionLimits(max_peers=1, idle_grace=1.0))
    for request_id in (1, 2):
        admission.performing(
            act.RequestFromPeer(request_id=request_id, peer_id="p0", segment_id=NEEDED),
            now=0.0,
            linked={"p0"},
        )
    admission.feeding(ev.PeerChunkReceived(request_id=1, data=b"late"), now=2.0)
    assert newcomer(admission, now=3.0) == (True, "p0")


def test_a_failed_or_cancelled_request_ends_what_the_announcement_earned_a_gone_peer_does_not() -> None:
    def announced_and_asked() -> Admission:
        admission = full_of(AdmissionLimits(max_peers=1, idle_grace=1.0))
        admission.feeding(
            ev.PeerAnnounced(peer_id="p0", loaded=frozenset({NEEDED}), loading_by_http=frozenset()), now=0.0
        )
        admission.performing(
            act.RequestFromPeer(request_id=5, peer_id="p0", segment_id=NEEDED), now=0.0, linked={"p0"}
        )
        return admission

    admission = announced_and_asked()
    assert newcomer(admission, now=3.0) == (False, None)  # it holds what we need: it stays
    admission = announced_and_asked()
    admission.feeding(ev.PeerDownloadFailed(request_id=5, reason="peer gone"), now=2.0)
    assert newcomer(admission, now=3.0) == (False, None)  # the link's end is not the peer's failure
    admission = announced_and_asked()
    admission.feeding(ev.PeerDownloadFailed(request_id=5, reason="absent", absent=True), now=2.0)
    assert newcomer(admission, now=3.0) == (True, "p0")
    admission = announced_and_asked()
    admission.performing(
        act.CancelPeerDownload(request_id=5, peer_id="p0", segment_id=NEEDED), now=2.0, linked={"p0"}
    )
    assert newcomer(admission, now=3.0) == (True, "p0")


def test_a_peer_taking_our_uploads_keeps_its_slot() -> None:
    admission = full_of(AdmissionLimits(max_peers=2, idle_grace=1.0, idle_timeout=10.0))
    admission.feeding(ev.UploadFinished(peer_id="p0", peer_request_id=1, sent_bytes=0), now=8.0)
    admission.feeding(ev.UploadFinished(peer_id="p1", peer_request_id=1, sent_bytes=100), now=8.0)
    assert newcomer(admission, now=12.0) == (True, "p0")  # it took nothing from us
    admission.closed("p0")
    upload = act.SendSegmentToPeer(peer_id="p1", segment_id=HELD, data=b"x", byte_offset=0, total_bytes=1)
    admission.performing(upload, now=11.0, linked={"p1"})
    assert newcomer(admission, now=20.0, name="other") == (True, "new")  # p1 served at 11 s: stays


def test_our_own_announcement_to_all_is_what_we_hold() -> None:
    admission = Admission()
    assert admission.own_loaded == frozenset()
    admission.performing(
        act.AnnounceSegments(loaded=(HELD,), loading_by_http=(), peer_id="p0"), now=0.0, linked=()
    )
    assert admission.own_loaded == frozenset()  # to one peer: not our latest to all
    admission.performing(act.AnnounceSegments(loaded=(HELD, NEEDED), loading_by_http=()), now=0.0, linked=())
    assert admission.own_loaded == frozenset({HELD, NEEDED})


def test_a_gone_links_request_is_forgotten() -> None:
    admission = full_of(AdmissionLimits(max_peers=1, idle_grace=1.0))
    admission.performing(
        act.RequestFromPeer(request_id=5, peer_id="p0", segment_id=NEEDED), now=0.0, linked={"p0"}
    )
    admission.link_gone("p0")
    assert admission.open_count == 0
    admission.link_created("p0", now=1.0, answered=True)
    admission.admit_open("p0", now=1.0, wants=wants)
    admission.feeding(ev.PeerChunkReceived(request_id=5, data=b"x"), now=3.0)  # the old link's request
    assert newcomer(admission, now=4.0) == (True, "p0")
