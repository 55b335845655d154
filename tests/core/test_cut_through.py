"""Cut-through: a peer asking for a segment we are still loading over HTTP is sent its bytes as
they arrive (``SendSegmentToPeer(growing=True)``, then ``ExtendUpload``), or "absent" if the
download fails after all (``AbortUpload``)."""

from __future__ import annotations

from p2ploader.config import LoaderConfig
from p2ploader.core import actions as act
from p2ploader.core import events as ev
from p2ploader.core.policies.live import LivePolicy, LivePolicySettings
from p2ploader.testing.harness import SEGMENT_SIZE, Harness, sid

QUIET = LoaderConfig().evolve(http_download_probability=0.0, upload_min_buffer=None)


def loading_segment_0(**overrides: object) -> tuple[Harness, int]:
    """We play segment 0 and fetch it over HTTP (no response yet); peer A is connected."""
    h = Harness(QUIET, **overrides)
    h.play_at(0)
    h.request(0)
    h.send(ev.PeerConnected(peer_id="A"))
    return h, h.http_request_for(0)


def uploads(h: Harness) -> list[act.Action]:
    kinds = (act.SendSegmentToPeer, act.ExtendUpload, act.AbortUpload, act.SendSegmentAbsent)
    return [a for a in h.actions if isinstance(a, kinds)]


def test_a_request_waits_for_the_response_size_then_grows_with_each_chunk() -> None:
    h, rid = loading_segment_0()
    h.send(ev.PeerRequestedSegment(peer_id="A", segment_id=sid(0), peer_request_id=7))
    assert uploads(h) == []  # nothing to announce yet: the size comes with the response
    h.send(ev.HttpResponseStarted(request_id=rid, offset=0, total_bytes=SEGMENT_SIZE))
    h.send(ev.HttpChunkReceived(request_id=rid, data=b"a" * 300))
    h.send(ev.HttpChunkReceived(request_id=rid, data=b"b" * 700))
    h.send(ev.HttpFetchCompleted(request_id=rid))
    assert uploads(h) == [
        act.SendSegmentToPeer(
            peer_id="A",
            segment_id=sid(0),
            data=b"",
            byte_offset=0,
            total_bytes=SEGMENT_SIZE,
            peer_request_id=7,
            growing=True,
        ),
        act.ExtendUpload(peer_id="A", segment_id=sid(0), data=b"a" * 300, peer_request_id=7),
        act.ExtendUpload(peer_id="A", segment_id=sid(0), data=b"b" * 700, peer_request_id=7),
    ]
    h.send(ev.UploadFinished(peer_id="A", peer_request_id=7, sent_bytes=SEGMENT_SIZE))
    assert h.scheduler.statistics().uploaded_bytes == SEGMENT_SIZE
    # Its time included waiting for the origin: not a measure of our upload speed.
    assert h.scheduler._context.upload_speed is None


def test_a_late_request_gets_the_bytes_so_far_from_its_offset() -> None:
    h, rid = loading_segment_0()
    h.send(ev.HttpResponseStarted(request_id=rid, offset=0, total_bytes=SEGMENT_SIZE))
    h.send(ev.HttpChunkReceived(request_id=rid, data=bytes(range(200)) * 2))
    h.send(ev.PeerRequestedSegment(peer_id="A", segment_id=sid(0), byte_offset=100, peer_request_id=1))
    h.send(ev.HttpChunkReceived(request_id=rid, data=b"z" * 600))
    first, more = uploads(h)
    assert isinstance(first, act.SendSegmentToPeer) and first.growing
    assert first.byte_offset == 100 and first.data == (bytes(range(200)) * 2)[100:]
    assert more == act.ExtendUpload(peer_id="A", segment_id=sid(0), data=b"z" * 600, peer_request_id=1)


def test_an_offset_beyond_the_bytes_so_far_skips_to_it() -> None:
    h, rid = loading_segment_0()
    h.send(ev.HttpResponseStarted(request_id=rid, offset=0, total_bytes=SEGMENT_SIZE))
    h.send(ev.PeerRequestedSegment(peer_id="A", segment_id=sid(0), byte_offset=500, peer_request_id=1))
    h.send(ev.HttpChunkReceived(request_id=rid, data=b"x" * 400))
    h.send(ev.HttpChunkReceived(request_id=rid, data=b"y" * 600))
    first, more = uploads(h)
    assert isinstance(first, act.SendSegmentToPeer) and first.data == b"" and first.byte_offset == 500
    assert more == act.ExtendUpload(peer_id="A", segment_id=sid(0), data=b"y" * 500, peer_request_id=1)


def test_a_failed_download_aborts_the_relay_and_frees_its_slot() -> None:
    h, rid = loading_segment_0(max_concurrent_uploads=1)
    h.request(1)
    h.complete_http(h.http_request_for(1))  # segment 1 is cached
    h.send(ev.PeerConnected(peer_id="B"))
    h.send(ev.HttpResponseStarted(request_id=rid, offset=0, total_bytes=SEGMENT_SIZE))
    h.send(ev.HttpChunkReceived(request_id=rid, data=b"a" * 300))
    h.send(ev.PeerRequestedSegment(peer_id="A", segment_id=sid(0), peer_request_id=1))
    h.send(ev.PeerRequestedSegment(peer_id="B", segment_id=sid(1), peer_request_id=2))
    assert isinstance(h.actions[-1], act.SendSegmentAbsent)  # the one slot is A's
    h.send(ev.HttpFetchFailed(request_id=rid, reason="HTTP 500", status=500))
    assert uploads(h)[-1] == act.AbortUpload(peer_id="A", segment_id=sid(0), peer_request_id=1)
    h.send(ev.PeerRequestedSegment(peer_id="B", segment_id=sid(1), peer_request_id=3))
    assert isinstance(h.actions[-1], act.SendSegmentToPeer)  # A's slot is free again


def test_a_response_without_size_serves_the_waiting_request_from_the_cache() -> None:
    h, rid = loading_segment_0()
    h.send(ev.PeerRequestedSegment(peer_id="A", segment_id=sid(0), peer_request_id=1))
    h.complete_http(rid)  # no total_bytes: chunked transfer encoding, say
    (sent,) = uploads(h)
    assert sent == act.SendSegmentToPeer(
        peer_id="A",
        segment_id=sid(0),
        data=b"h" * SEGMENT_SIZE,
        byte_offset=0,
        total_bytes=SEGMENT_SIZE,
        peer_request_id=1,
    )


def test_a_cancelled_waiting_request_frees_its_slot_and_sends_nothing() -> None:
    h, rid = loading_segment_0(max_concurrent_uploads=1)
    h.send(ev.PeerRequestedSegment(peer_id="A", segment_id=sid(0), peer_request_id=1))
    h.send(ev.PeerCancelledUpload(peer_id="A", segment_id=sid(0)))
    h.complete_http(rid, size=SEGMENT_SIZE)
    assert uploads(h) == []
    h.send(ev.PeerRequestedSegment(peer_id="A", segment_id=sid(0), peer_request_id=2))
    assert isinstance(h.actions[-1], act.SendSegmentToPeer) and not h.actions[-1].growing


def test_a_response_restarting_at_zero_does_not_send_bytes_twice() -> None:
    h, rid = loading_segment_0()
    h.send(ev.HttpResponseStarted(request_id=rid, offset=0, total_bytes=SEGMENT_SIZE))
    h.send(ev.HttpChunkReceived(request_id=rid, data=b"a" * 400))
    h.send(ev.PeerRequestedSegment(peer_id="A", segment_id=sid(0), peer_request_id=1))
    # The executor retried after a broken connection; the origin ignored Range: from byte 0 again.
    h.send(ev.HttpResponseStarted(request_id=rid, offset=0, total_bytes=SEGMENT_SIZE))
    h.send(ev.HttpChunkReceived(request_id=rid, data=b"a" * 300))
    h.send(ev.HttpChunkReceived(request_id=rid, data=b"a" * 200 + b"c" * 500))
    first, more = uploads(h)
    assert isinstance(first, act.SendSegmentToPeer) and first.data == b"a" * 400
    assert more == act.ExtendUpload(
        peer_id="A", segment_id=sid(0), data=b"a" * 100 + b"c" * 500, peer_request_id=1
    )


def test_a_response_of_another_size_aborts_the_relay() -> None:
    h, rid = loading_segment_0()
    h.send(ev.HttpResponseStarted(request_id=rid, offset=0, total_bytes=SEGMENT_SIZE))
    h.send(ev.PeerRequestedSegment(peer_id="A", segment_id=sid(0), peer_request_id=1))
    h.send(ev.HttpResponseStarted(request_id=rid, offset=0, total_bytes=SEGMENT_SIZE + 1))
    assert uploads(h)[-1] == act.AbortUpload(peer_id="A", segment_id=sid(0), peer_request_id=1)


def test_consume_only_and_a_thin_buffer_answer_absent() -> None:
    for overrides in ({"consume_only": True}, {"upload_min_buffer": 4.0}):
        h, rid = loading_segment_0(**overrides)
        h.send(ev.HttpResponseStarted(request_id=rid, offset=0, total_bytes=SEGMENT_SIZE))
        h.send(ev.PeerRequestedSegment(peer_id="A", segment_id=sid(0), peer_request_id=1))
        assert uploads(h) == [act.SendSegmentAbsent(peer_id="A", segment_id=sid(0), peer_request_id=1)]


def test_the_live_policy_asks_a_peer_loading_the_segment_only_with_cut_through() -> None:
    for cut_through in (True, False):
        settings = LivePolicySettings(cut_through=cut_through)
        h = Harness(QUIET, policy=lambda cfg, s=settings: LivePolicy(cfg, s), peer_id="me")  # type: ignore[misc]
        h.play_at(0)
        h.request(0)
        h.complete_http(h.http_request_for(0))
        h.connect("A", loading=[5])
        assert (5 in h.p2p_loading()) is cut_through


def test_the_faq_policies_never_ask_a_peer_loading_the_segment() -> None:
    for policy in ("p2pml-0.6", "p2pml-2.2"):
        h = Harness(QUIET, policy=policy)
        h.play_at(0)
        h.request(0)
        h.complete_http(h.http_request_for(0))
        h.connect("A", loading=range(1, 30))
        assert h.p2p_requests() == []
