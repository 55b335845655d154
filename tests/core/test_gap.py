"""EXT-X-GAP in the sans-IO core: a gap segment is never fetched, never asked of a peer, never
announced, never waited for (RFC 8216bis 4.4.4.7: the segment is absent)."""

from __future__ import annotations

import attrs
import pytest

from p2ploader.config import PRESETS, LoaderConfig
from p2ploader.core import actions as act
from p2ploader.core import events as ev
from p2ploader.core import notifications as nt
from p2ploader.core.segments import Segment, SegmentId
from p2ploader.testing.harness import Harness, sid

from .world import World, honest

GAPS = frozenset({4, 9, 14, 19, 24, 29})  # every 5th segment, as in the stream


def with_gaps(segments: tuple[Segment, ...], gaps: frozenset[int] = GAPS) -> tuple[Segment, ...]:
    return tuple(attrs.evolve(s, gap=s.id.sequence in gaps) for s in segments)


def test_segment_gap_defaults_to_false_and_must_be_a_bool() -> None:
    segment = Segment(id=SegmentId("v0", 0), url="http://o.test/0.ts", duration=2.0)
    assert segment.gap is False
    with pytest.raises(TypeError):
        Segment(id=SegmentId("v0", 0), url="http://o.test/0.ts", duration=2.0, gap=1)  # type: ignore[arg-type]


def test_requesting_a_gap_answers_at_once_with_no_bytes_and_no_download() -> None:
    h = Harness(LoaderConfig(), segments=10)
    h.send(ev.PlaylistUpdated(segments=with_gaps(h.segments)))
    h.request(4)
    ready = h.ready()
    assert [(r.segment.id, r.data, r.source) for r in ready] == [(sid(4), b"", "gap")]
    assert ready[0].segment.gap
    assert all(s.segment.id != sid(4) for s in h.http_starts())
    assert sid(4) not in {e.id for e in h.scheduler.queue}


def test_gap_segments_are_never_queued_fetched_or_asked_of_peers() -> None:
    # Peers announce every segment, gaps included (a buggy or hostile peer): none is asked for one.
    h = Harness(LoaderConfig(), segments=30, forward_segment_count=30)
    h.send(ev.PlaylistUpdated(segments=with_gaps(h.segments)))
    for peer in ("a", "b", "c"):
        h.connect(peer, loaded=range(30))
    h.play_at(0)
    for n in range(30):
        h.request(n)
        for start in h.http_starts():
            if start.request_id not in {a.request_id for a in h.of_type(act.AbortHttpFetch)}:
                h.complete_http(start.request_id)
        for request in h.p2p_requests():
            h.complete_p2p(request.request_id)
        h.advance(2.0)
        h.play_at(n)
    fetched = {s.segment.id.sequence for s in h.http_starts()}
    asked = {r.segment_id.sequence for r in h.p2p_requests()}
    assert fetched or asked
    assert not (fetched | asked) & GAPS
    assert all(not e.segment.gap for e in h.scheduler.queue)
    announced = {s.sequence for a in h.of_type(act.AnnounceSegments) for s in (*a.loaded, *a.loading_by_http)}
    assert announced and not announced & GAPS
    gap_ready = {r.segment.id.sequence for r in h.ready() if r.source == "gap"}
    assert gap_ready == GAPS
    assert not [n for n in h.notifications if isinstance(n, nt.SegmentUnavailable)]


def test_a_peer_asking_us_for_a_gap_is_told_absent() -> None:
    h = Harness(LoaderConfig(), segments=10)
    h.send(ev.PlaylistUpdated(segments=with_gaps(h.segments)))
    h.connect("a")
    h.send(ev.PeerRequestedSegment(peer_id="a", segment_id=sid(4), byte_offset=0, peer_request_id=1))
    assert h.of_type(act.SendSegmentAbsent)
    assert not h.of_type(act.SendSegmentToPeer)


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_a_player_plays_through_gaps_without_a_stall_and_no_gap_is_loaded(preset: str) -> None:
    world = World(PRESETS[preset], segments=30, duration=2.0)
    world.segments = with_gaps(world.segments)
    world._feed(ev.PlaylistUpdated(segments=world.segments))
    world.connect("honest", honest, loaded=range(30))
    world.play(until=80.0)
    assert world.stalled_seconds <= 1.5  # start-up only: the first segment's HTTP time
    assert world.position >= 58.0  # the whole stream played, gaps included
    loads = {a.segment.id.sequence for a in world.of_type(act.StartHttpFetch)}  # type: ignore[attr-defined]
    loads |= {a.segment_id.sequence for a in world.of_type(act.RequestFromPeer)}  # type: ignore[attr-defined]
    assert not loads & GAPS
    assert {n for n in GAPS if world.ready.get(n) == b""} == GAPS
    assert not world.wrong_segments() or set(world.wrong_segments()) == GAPS  # gaps carry no bytes


def test_a_cached_segment_later_marked_as_a_gap_is_no_longer_announced_or_uploaded() -> None:
    h = Harness(LoaderConfig(), segments=10)
    h.connect("a")
    h.request(2)
    h.complete_http(h.http_request_for(2))
    assert sid(2) in h.scheduler.cache
    h.send(ev.PlaylistUpdated(segments=with_gaps(h.segments, frozenset({2}))))
    assert sid(2) not in h.scheduler.cache
    last = h.of_type(act.AnnounceSegments)[-1]
    assert sid(2) not in last.loaded
    h.send(ev.PeerRequestedSegment(peer_id="a", segment_id=sid(2), byte_offset=0, peer_request_id=7))
    assert not h.of_type(act.SendSegmentToPeer)
    h.request(2)
    assert h.ready()[-1].source == "gap"
