"""P2P downloads that resume where an earlier attempt stopped: a download moved to another peer, or
one that stalled, asks the next peer for the rest with the protocol's byte offset.

A policy that does nothing on its own lets each test make the moves itself; the clock is driven
by hand.
"""

from __future__ import annotations

import pytest

from p2ploader.config import LoaderConfig
from p2ploader.core import actions as act
from p2ploader.core import events as ev
from p2ploader.core import notifications as nt
from p2ploader.core.policies import DownloadPolicy, SchedulingContext
from p2ploader.errors import PolicyError
from p2ploader.testing.harness import SEGMENT_SIZE, Harness, sid


class _Idle(DownloadPolicy):
    """Starts nothing: the test drives the downloads through the scheduler's context."""

    name = "test-idle"

    def schedule(self, ctx: SchedulingContext, *, now: float) -> None:
        pass


def _harness(**overrides: object) -> Harness:
    h = Harness(policy=_Idle(LoaderConfig()), **overrides)
    h.play_at(0)
    h.request(0)  # segments 0-... are queued (forward_segment_count), so none is aborted
    for peer in "ABC":
        h.connect(peer, loaded=[3])
    return h


def _start(h: Harness, peer: str) -> int:
    h.scheduler._context.start_p2p(sid(3), peer, now=h.now)
    h.send(ev.PlaybackMoved(position=0.0))  # flush the actions
    return h.p2p_request_for(3)


def _moved_after_300_bytes(h: Harness) -> int:
    """A sends 300 bytes of segment 3, the download moves to B: B's request id."""
    first = _start(h, "A")
    h.send(ev.PeerResponseStarted(request_id=first, total_bytes=SEGMENT_SIZE))
    h.send(ev.PeerChunkReceived(request_id=first, data=b"a" * 300))
    h.scheduler._context.move_p2p(sid(3), "B", now=h.now)
    h.send(ev.PlaybackMoved(position=0.0))
    return h.p2p_requests()[-1].request_id


def test_a_moved_download_keeps_its_bytes_and_asks_the_new_peer_for_the_rest() -> None:
    h = _harness()
    first = _start(h, "A")
    h.send(ev.PeerResponseStarted(request_id=first, total_bytes=SEGMENT_SIZE))
    h.send(ev.PeerChunkReceived(request_id=first, data=b"a" * 300))
    h.advance(1.0)
    ctx = h.scheduler._context
    progress = ctx.p2p_progress(sid(3))
    assert progress is not None
    assert (progress.peer_id, progress.received, progress.resumed_from, progress.total) == ("A", 300, 0, 1000)

    ctx.move_p2p(sid(3), "B", now=h.now)
    h.send(ev.PlaybackMoved(position=0.0))
    assert any(isinstance(a, act.CancelPeerDownload) and a.request_id == first for a in h.actions)
    (request,) = [r for r in h.p2p_requests() if r.peer_id == "B"]
    assert request.byte_offset == 300
    assert ctx.peer_throughput("A") == pytest.approx(300 / 1.0), "measured on what it delivered"
    moved = ctx.p2p_progress(sid(3))
    assert moved is not None and (moved.peer_id, moved.received, moved.resumed_from) == ("B", 300, 300)

    h.advance(0.5)
    h.send(ev.PeerResponseStarted(request_id=request.request_id, total_bytes=SEGMENT_SIZE))
    h.send(ev.PeerChunkReceived(request_id=request.request_id, data=b"b" * 700))
    assert h.scheduler.cache.get(sid(3), now=h.now).data == b"a" * 300 + b"b" * 700  # type: ignore[union-attr]
    assert ctx.peer_throughput("B") == pytest.approx(700 / 0.5), "only the bytes it sent"
    assert not h.of_type(act.DisconnectPeer)


def test_a_stalled_download_resumes_from_the_next_peer() -> None:
    h = _harness(p2p_stall_timeout=2.0)
    first = _start(h, "A")
    h.send(ev.PeerResponseStarted(request_id=first, total_bytes=SEGMENT_SIZE))
    h.send(ev.PeerChunkReceived(request_id=first, data=b"a" * 400))
    h.advance(2.1)
    assert h.p2p_loading() == {}
    second = _start(h, "B")
    assert h.p2p_requests()[-1].byte_offset == 400
    h.send(ev.PeerResponseStarted(request_id=second, total_bytes=SEGMENT_SIZE))
    h.send(ev.PeerChunkReceived(request_id=second, data=b"b" * 600))
    assert h.scheduler.cache.get(sid(3), now=h.now).data == b"a" * 400 + b"b" * 600  # type: ignore[union-attr]


def test_a_size_below_the_bytes_held_fails_the_segment_without_blaming_a_peer() -> None:
    h = _harness()
    second = _moved_after_300_bytes(h)
    h.send(ev.PeerResponseStarted(request_id=second, total_bytes=200))  # A or B is wrong
    assert h.p2p_loading() == {}
    assert not h.of_type(act.DisconnectPeer) and not h.of_type(nt.PeerMisbehaved)
    (failed,) = [n for n in h.of_type(nt.SegmentLoadFailed) if n.peer_id == "B"]
    assert failed.reason == "size disagrees with the bytes resumed from"
    _start(h, "C")
    assert h.p2p_requests()[-1].byte_offset == 0, "the kept bytes went with the failure"


def _rejected_after_a_move(h: Harness, b_sends: bytes) -> int:
    """A sends 300 bytes ("a"), B the other 700, the validator rejects the segment: the refetch."""
    second = _moved_after_300_bytes(h)
    h.send(ev.PeerResponseStarted(request_id=second, total_bytes=SEGMENT_SIZE))
    h.send(ev.PeerChunkReceived(request_id=second, data=b_sends))
    (check,) = h.of_type(act.ValidateSegment)
    assert check.method == "p2p" and check.peer_id == "B", "B sent the most"
    assert [(r.peer_id, r.offset, r.length) for r in check.peer_ranges] == [("A", 0, 300), ("B", 300, 700)]
    h.send(ev.SegmentValidated(request_id=second, valid=False))
    assert sid(3) not in h.scheduler.cache
    assert h.p2p_loading() == {}
    (refetch,) = [a for a in h.http_starts() if a.segment.id == sid(3)]
    assert refetch.resume_from == 0, "whole, not from byte 300"
    return refetch.request_id


def test_a_segment_rejected_with_two_senders_blames_only_the_one_whose_bytes_differ() -> None:
    # Which of A and B lied a digest cannot tell; blaming both would let a liar get an honest peer
    # banned by stalling just before it. Nobody is blamed until the origin's bytes (the harness's
    # origin sends "h") show whose differ: A's.
    h = _harness(segment_validator=lambda segment, data, method, peer: False)
    refetch = _rejected_after_a_move(h, b_sends=b"h" * 700)
    assert not h.of_type(act.DisconnectPeer) and not h.of_type(nt.PeerMisbehaved)
    h.complete_http(refetch)
    h.send(ev.SegmentValidated(request_id=refetch, valid=True))  # the origin's bytes
    assert [(n.peer_id, n.check) for n in h.of_type(nt.IntegrityCheckFailed)] == [("A", "origin-bytes")]
    assert [d.peer_id for d in h.of_type(act.DisconnectPeer)] == ["A"]
    assert [n.peer_id for n in h.of_type(nt.PeerMisbehaved)] == ["A"]
    assert h.scheduler.statistics().p2p_bytes_rejected == SEGMENT_SIZE, "counted once"


def test_a_segment_rejected_with_two_lying_senders_blames_both() -> None:
    h = _harness(segment_validator=lambda segment, data, method, peer: False)
    refetch = _rejected_after_a_move(h, b_sends=b"b" * 700)
    h.complete_http(refetch)
    h.send(ev.SegmentValidated(request_id=refetch, valid=True))
    assert {n.peer_id for n in h.of_type(nt.IntegrityCheckFailed)} == {"A", "B"}
    assert {d.peer_id for d in h.of_type(act.DisconnectPeer)} == {"A", "B"}
    assert h.scheduler.statistics().p2p_bytes_rejected == SEGMENT_SIZE


def test_moving_to_a_busy_peer_or_a_segment_not_loading_is_a_policy_bug() -> None:
    h = _harness()
    ctx = h.scheduler._context
    with pytest.raises(PolicyError, match="no peer is sending"):
        ctx.move_p2p(sid(3), "B", now=h.now)
    _start(h, "A")
    with pytest.raises(PolicyError, match="busy or unknown"):
        ctx.move_p2p(sid(3), "A", now=h.now)
    with pytest.raises(PolicyError, match="busy or unknown"):
        ctx.move_p2p(sid(3), "Z", now=h.now)


def test_a_peer_that_says_absent_part_way_leaves_its_bytes_for_the_next_source() -> None:
    # A was relaying segment 3 while fetching it over HTTP (cut-through), and its fetch failed
    # after 300 bytes: it says "absent". The bytes stay; B is asked for the rest.
    h = _harness()
    first = _start(h, "A")
    h.send(ev.PeerResponseStarted(request_id=first, total_bytes=SEGMENT_SIZE))
    h.send(ev.PeerChunkReceived(request_id=first, data=b"a" * 300))
    h.send(ev.PeerDownloadFailed(request_id=first, reason="absent", absent=True))
    second = _start(h, "B")
    assert h.p2p_requests()[-1].byte_offset == 300
    h.send(ev.PeerResponseStarted(request_id=second, total_bytes=SEGMENT_SIZE))
    h.send(ev.PeerChunkReceived(request_id=second, data=b"b" * (SEGMENT_SIZE - 300)))
    entry = h.scheduler.cache.get(sid(3), now=h.now)
    assert entry is not None and entry.data == b"a" * 300 + b"b" * (SEGMENT_SIZE - 300)


def test_bytes_resumed_by_a_peer_that_is_dropped_still_answer_to_the_origins() -> None:
    # A sends 300 wrong bytes, B continues them and is dropped (a protocol violation): the
    # download is given up, A's bytes with it, yet once the origin's bytes arrive A is blamed.
    h = _harness()
    second = _moved_after_300_bytes(h)
    h.send(ev.PeerChunkReceived(request_id=second, data=b"b"))  # data before its data header
    assert [d.peer_id for d in h.of_type(act.DisconnectPeer)] == ["B"]
    h.scheduler._context.start_http(sid(3), now=h.now, continue_p2p=False)
    h.send(ev.PlaybackMoved(position=0.0))
    h.complete_http(h.http_request_for(3))
    assert [(n.peer_id, n.check) for n in h.of_type(nt.IntegrityCheckFailed)] == [("A", "origin-bytes")]
    assert [d.peer_id for d in h.of_type(act.DisconnectPeer)] == ["B", "A"]


def test_bytes_kept_from_a_stalled_download_go_when_the_segment_leaves_the_queue() -> None:
    """What a stalled peer sent is kept only while its segment is queued: a peer stalling every
    segment cannot make the viewer hold partial segments without bound."""
    h = _harness(p2p_stall_timeout=2.0)
    first = _start(h, "A")
    h.send(ev.PeerResponseStarted(request_id=first, total_bytes=SEGMENT_SIZE))
    h.send(ev.PeerChunkReceived(request_id=first, data=b"a" * 400))
    h.advance(2.1)
    h.play_at(10)  # the player seeks ahead: segment 3 leaves the queue
    h.request(10)
    assert 3 not in {entry.id.sequence for entry in h.scheduler.queue}
    h.play_at(0)  # and back: it is queued again
    h.request(0)
    _start(h, "B")
    assert h.p2p_requests()[-1].byte_offset == 0, "the stalled bytes went with the segment"
