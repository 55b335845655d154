"""SwarmSet: routing between the current swarm and lingering ones (no network: fake swarms)."""

from __future__ import annotations

from typing import Any

from p2ploader.aio.swarms import SwarmSet
from p2ploader.core import actions as act
from p2ploader.core import events as ev
from p2ploader.core.segments import SegmentId


class FakeSwarm:
    def __init__(self, rendition: str, linked: tuple[str, ...] = ()) -> None:
        self.rendition = rendition
        self.linked = linked
        self.performed: list[act.Action] = []

    def perform(self, action: act.Action) -> None:
        self.performed.append(action)


def make() -> tuple[SwarmSet, list[ev.Event], FakeSwarm, FakeSwarm]:
    fed: list[ev.Event] = []
    swarms = SwarmSet(fed.append)
    old, new = FakeSwarm("v0", ("a", "both")), FakeSwarm("v1", ("b", "both"))
    swarms.add(old)  # type: ignore[arg-type]
    swarms.retire("v0")
    swarms.add(new)  # type: ignore[arg-type]
    return swarms, fed, old, new


def test_actions_go_to_the_swarm_of_their_segment() -> None:
    swarms, _, old, new = make()
    upload: Any = act.SendSegmentToPeer(
        peer_id="both",
        segment_id=SegmentId("v0", 3),
        data=b"x",
        byte_offset=0,
        total_bytes=1,
        peer_request_id=1,
    )
    request = act.RequestFromPeer(request_id=7, peer_id="both", segment_id=SegmentId("v1", 4), byte_offset=0)
    absent = act.SendSegmentAbsent(peer_id="a", segment_id=SegmentId("v0", 9), peer_request_id=2)
    for action in (upload, request, absent):
        swarms.perform(action)
    assert old.performed == [upload, absent] and new.performed == [request]


def test_announcements_go_everywhere_and_disconnects_where_the_peer_is() -> None:
    swarms, _, old, new = make()
    announce = act.AnnounceSegments(loaded=(SegmentId("v0", 1), SegmentId("v1", 1)), loading_by_http=())
    swarms.perform(announce)
    swarms.perform(act.DisconnectPeer(peer_id="a", reason="test"))
    assert old.performed[0] is announce and new.performed == [announce]
    assert [type(a) for a in old.performed] == [act.AnnounceSegments, act.DisconnectPeer]


def test_a_peer_in_two_swarms_is_one_peer_and_lingering_maps_are_dropped() -> None:
    swarms, fed, _, _ = make()
    old_feed, new_feed = swarms.feed_for("v0"), swarms.feed_for("v1")
    new_feed(ev.PeerConnected(peer_id="both"))
    old_feed(ev.PeerConnected(peer_id="both"))
    assert fed == [ev.PeerConnected(peer_id="both")]
    old_feed(ev.PeerAnnounced(peer_id="both", loaded=frozenset(), loading_by_http=frozenset()))
    assert len(fed) == 1  # a lingering swarm only seeds
    new_feed(ev.PeerAnnounced(peer_id="both", loaded=frozenset(), loading_by_http=frozenset()))
    old_feed(ev.PeerRequestedSegment(peer_id="both", segment_id=SegmentId("v0", 2)))
    assert len(fed) == 3
    old_feed(ev.PeerDisconnected(peer_id="both"))
    assert len(fed) == 3  # still linked in v1
    new_feed(ev.PeerDisconnected(peer_id="both"))
    assert fed[-1] == ev.PeerDisconnected(peer_id="both")
    new_feed(ev.PeerDisconnected(peer_id="never-connected"))
    assert len(fed) == 4


def test_removing_a_swarm() -> None:
    swarms, _, old, _ = make()
    assert swarms.renditions == ("v0", "v1") and swarms.current == "v1"
    assert swarms.remove("v0") is old and swarms.get("v0") is None
    swarms.perform(act.SendSegmentAbsent(peer_id="a", segment_id=SegmentId("v0", 9), peer_request_id=2))
    assert old.performed == []
