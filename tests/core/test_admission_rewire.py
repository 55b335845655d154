"""Rewiring for newcomers (sans-IO, the clock is an argument): when the first viewers of a swarm
have filled each other's slots with useful peers, a later viewer's offer still gets a slot, one per
``rewire_interval``, the peer that delivered to us longest ago giving up its own; and a swarm with
few links keeps looking for peers while it has fewer than ``wanted_links``."""

from __future__ import annotations

from collections.abc import Collection

import pytest

from p2ploader.core.admission import Admission, AdmissionLimits
from p2ploader.core.segments import SegmentId
from p2ploader.errors import UsageError

NEEDED = SegmentId("v0", 7)


def wants(segments: Collection[SegmentId]) -> bool:
    return NEEDED in segments


def full_of_useful(limits: AdmissionLimits, *, now: float = 0.0) -> Admission:
    """``max_peers`` peers, each delivering at ``now`` (so none is idle for ``idle_timeout``)."""
    admission = Admission(limits)
    for i in range(limits.max_peers):
        admission.link_created(f"p{i}", now=now, answered=True)
        assert admission.admit_open(f"p{i}", now=now, wants=wants) == (True, None)
        admission.delivered(f"p{i}", now=now + i * 0.1)  # p0 delivered longest ago
    return admission


def offer_and_open(
    admission: Admission, name: str, *, now: float, answered: bool = True
) -> tuple[bool, str | None]:
    admission.link_created(name, now=now, answered=answered)
    return admission.admit_open(name, now=now, wants=wants)


REWIRING = AdmissionLimits(max_peers=4, rewire_interval=10.0)


def test_by_default_a_full_swarm_of_useful_peers_refuses_newcomers() -> None:
    limits = AdmissionLimits(max_peers=4)
    assert limits.rewire_interval is None and limits.wanted_links == 0
    admission = full_of_useful(limits)
    assert not admission.has_slot(now=1.0, wants=wants, peer_id="new")
    assert offer_and_open(admission, "new", now=1.0) == (False, None)
    assert admission.statistics().rewired == 0 and admission.statistics().refused_full == 1


def test_a_newcomer_takes_the_slot_of_the_peer_that_delivered_longest_ago() -> None:
    admission = full_of_useful(REWIRING)
    assert admission.has_slot(now=1.0, wants=wants, peer_id="new")
    assert offer_and_open(admission, "new", now=1.0) == (True, "p0")
    assert admission.last_eviction == "rewired"
    assert admission.statistics().rewired == 1 and admission.statistics().evicted == 0


def test_peers_still_in_their_grace_period_can_give_way() -> None:
    # The first viewers link to each other within a second or two; the next ones come meanwhile.
    admission = Admission(AdmissionLimits(max_peers=2, idle_grace=5.0, rewire_interval=10.0))
    for i, now in enumerate((0.0, 0.5)):
        assert offer_and_open(admission, f"p{i}", now=now) == (True, None)
    assert offer_and_open(admission, "new", now=1.0) == (True, "p0")


def test_one_newcomer_per_interval() -> None:
    admission = full_of_useful(REWIRING)
    assert offer_and_open(admission, "a", now=1.0) == (True, "p0")
    admission.closed("p0")
    for i, name in enumerate(("p1", "p2", "p3", "a")):
        admission.delivered(name, now=5.0 + i)
    assert not admission.has_slot(now=10.9, wants=wants, peer_id="b")
    assert offer_and_open(admission, "b", now=10.9) == (False, None)
    admission.closed("b")
    assert admission.has_slot(now=11.0, wants=wants, peer_id="b")
    assert offer_and_open(admission, "b", now=11.0) == (True, "p1")


def test_a_peer_closed_for_a_newcomer_cannot_rewire_its_way_back_within_the_interval() -> None:
    admission = full_of_useful(REWIRING)
    assert offer_and_open(admission, "a", now=1.0) == (True, "p0")
    admission.closed("p0")
    for name in ("p1", "p2", "p3", "a"):
        admission.delivered(name, now=11.0)
    assert not admission.has_slot(now=11.5, wants=wants, peer_id="p0")
    assert admission.has_slot(now=11.5, wants=wants, peer_id="other")
    assert offer_and_open(admission, "p0", now=11.5) == (False, None)
    admission.closed("p0")
    for name in ("p1", "p2", "p3", "a"):
        admission.delivered(name, now=30.0)
    assert not admission.has_slot(now=30.9, wants=wants, peer_id="p0")  # three intervals
    assert offer_and_open(admission, "p0", now=31.0)[0]


def test_only_a_remote_offer_rewires_never_one_of_ours() -> None:
    admission = full_of_useful(REWIRING)
    assert offer_and_open(admission, "ours", now=1.0, answered=False) == (False, None)
    assert admission.statistics().rewired == 0


def test_an_idle_peer_goes_first_and_rewiring_is_not_spent_on_it() -> None:
    admission = full_of_useful(REWIRING)
    # p2 stops delivering: idle once idle_timeout (30 s) has passed without bytes from it.
    for name in ("p0", "p1", "p3"):
        admission.delivered(name, now=40.0)
    assert offer_and_open(admission, "new", now=40.5) == (True, "p2")
    assert admission.last_eviction == "idle"
    assert admission.statistics().evicted == 1 and admission.statistics().rewired == 0
    admission.closed("p2")
    # The rewiring is still there: p0 delivered at 40.0, longer ago than "new" opened (40.5).
    assert offer_and_open(admission, "next", now=40.6) == (True, "p0")
    assert admission.last_eviction == "rewired"
    admission.closed("p0")
    assert offer_and_open(admission, "third", now=40.7) == (False, None)  # one per interval
    assert admission.last_eviction is None


def test_a_flood_of_newcomers_replaces_at_most_one_useful_peer_per_interval() -> None:
    admission = full_of_useful(REWIRING)
    linked = {f"p{i}" for i in range(4)}
    honest = set(linked)
    seconds = 100.0
    for k in range(1000):  # a Sybil offer every 0.1 s for 100 s, each from a fresh id
        now = 1.0 + k * seconds / 1000
        for name in linked:
            admission.delivered(name, now=now)  # everybody keeps delivering: no peer is ever idle
        name = f"sybil{k}"
        if not admission.has_slot(now=now, wants=wants, peer_id=name):
            continue
        keep, evict = offer_and_open(admission, name, now=now)
        if not keep:
            admission.closed(name)
            continue
        linked.add(name)
        if evict is not None:
            admission.closed(evict)
            linked.discard(evict)
    assert admission.statistics().rewired <= seconds / REWIRING.rewire_interval + 1  # type: ignore[operator]
    assert admission.open_count == 4
    assert linked - honest  # the newcomers did get in: it is a real rewiring, bounded by time


@pytest.mark.parametrize("interval", [0.0, -1.0, float("nan")])
def test_a_rewire_interval_must_be_positive(interval: float) -> None:
    with pytest.raises(UsageError, match="rewire_interval"):
        AdmissionLimits(rewire_interval=interval)


@pytest.mark.parametrize("wanted", [-1, 5])
def test_wanted_links_lie_within_the_slots(wanted: int) -> None:
    with pytest.raises(UsageError, match="wanted_links"):
        AdmissionLimits(max_peers=4, wanted_links=wanted)


def test_a_swarm_keeps_looking_while_fewer_links_than_wanted_are_open() -> None:
    limits = AdmissionLimits(max_peers=4, wanted_links=3)
    admission = Admission(limits)
    assert admission.wants_more_links(now=0.0, wants=wants)  # nobody linked
    for i in range(2):
        offer_and_open(admission, f"p{i}", now=0.0)
        admission.delivered(f"p{i}", now=0.0)
    assert admission.earning(now=1.0, wants=wants) == 2
    assert admission.wants_more_links(now=1.0, wants=wants)  # two deliver, but three are wanted
    offer_and_open(admission, "p2", now=1.0)
    assert not admission.wants_more_links(now=1.0, wants=wants)
    # By default only a swarm where nobody earns its slot looks sooner than the tracker's interval.
    default = Admission(AdmissionLimits(max_peers=4))
    offer_and_open(default, "p0", now=0.0)
    default.delivered("p0", now=0.0)
    assert not default.wants_more_links(now=1.0, wants=wants)
    assert default.wants_more_links(now=40.0, wants=wants)  # p0 went quiet: idle, not earning


def test_peers_that_only_take_uploads_never_push_out_peers_that_deliver() -> None:
    # Six honest peers deliver to us every 0.5 s; a Sybil offers every second with a fresh id and,
    # once linked, takes uploads from us all the time (which keeps it "useful"). Rewiring closes
    # the peer that delivered to us longest ago: after the first, always a Sybil.
    limits = AdmissionLimits(max_peers=6, rewire_interval=10.0)
    admission = Admission(limits)
    honest = [f"h{i}" for i in range(6)]
    for name in honest:
        assert offer_and_open(admission, name, now=0.0) == (True, None)
    linked = set(honest)
    sybils: set[str] = set()
    lowest = len(honest)
    for step in range(1, 241):  # 120 s
        now = step * 0.5
        for name in linked & set(honest):
            admission.delivered(name, now=now)
        for name in linked & sybils:
            admission.served(name, now=now)
        if step % 2:
            continue
        name = f"sybil{step}"
        if not admission.has_slot(now=now, wants=wants, peer_id=name):
            continue
        keep, evict = offer_and_open(admission, name, now=now)
        if keep:
            linked.add(name)
            sybils.add(name)
        else:
            admission.closed(name)
        if evict is not None:
            admission.closed(evict)
            linked.discard(evict)
        lowest = min(lowest, len(linked & set(honest)))
    assert lowest == 5  # one honest peer lost to the first rewiring, and no more
    assert admission.statistics().rewired >= 10  # the Sybils did keep rewiring each other out


def test_wanted_links_count_only_peers_the_tracker_says_exist() -> None:
    admission = Admission(AdmissionLimits(max_peers=6, wanted_links=3))
    for name in ("p0", "p1"):
        offer_and_open(admission, name, now=0.0)
        admission.delivered(name, now=0.0)
    assert admission.wants_more_links(now=1.0, wants=wants)
    assert admission.wants_more_links(now=1.0, wants=wants, reachable=5)
    assert not admission.wants_more_links(now=1.0, wants=wants, reachable=2)  # a swarm of three
