"""HTTP body pieces as read-only views of a larger buffer (``HttpChunkReceived.data`` as a
``memoryview``): the scheduler keeps the views, not copies, while the download runs, and delivers
``bytes`` at the end; a peer served while the segment arrives gets ``bytes``. The simulator hands
its viewers such views of one shared payload (memory bounded by the stream, not the audience)."""

from __future__ import annotations

from p2ploader.config import LoaderConfig
from p2ploader.core import actions as act
from p2ploader.core import events as ev
from p2ploader.testing.harness import SEGMENT_SIZE, Harness, sid

QUIET = LoaderConfig().evolve(http_download_probability=0.0, upload_min_buffer=None)
PAYLOAD = bytes(range(250)) * (SEGMENT_SIZE // 250)


def test_views_are_kept_as_they_are_and_joined_into_bytes_at_the_end() -> None:
    h = Harness(QUIET)
    h.play_at(0)
    h.request(0)
    rid = h.http_request_for(0)
    h.send(ev.HttpResponseStarted(request_id=rid, offset=0, total_bytes=SEGMENT_SIZE))
    view = memoryview(PAYLOAD)
    first, second = view[:300], view[300:]
    h.send(ev.HttpChunkReceived(request_id=rid, data=first))
    h.send(ev.HttpChunkReceived(request_id=rid, data=second))
    held = h.scheduler._downloads[rid].chunks
    assert held[0] is first and held[1] is second  # no copy while it runs
    h.send(ev.HttpFetchCompleted(request_id=rid))
    (ready,) = h.ready()
    assert type(ready.data) is bytes and ready.data == PAYLOAD
    assert h.scheduler.statistics().http_bytes == SEGMENT_SIZE


def test_a_peer_served_while_the_segment_arrives_gets_bytes_of_the_views() -> None:
    h = Harness(QUIET)
    h.play_at(0)
    h.request(0)
    h.send(ev.PeerConnected(peer_id="A"))
    rid = h.http_request_for(0)
    h.send(ev.PeerRequestedSegment(peer_id="A", segment_id=sid(0), peer_request_id=7))
    h.send(ev.HttpResponseStarted(request_id=rid, offset=0, total_bytes=SEGMENT_SIZE))
    view = memoryview(PAYLOAD)
    h.send(ev.HttpChunkReceived(request_id=rid, data=view[:400]))
    h.send(ev.HttpChunkReceived(request_id=rid, data=view[400:]))
    extends = h.of_type(act.ExtendUpload)
    assert [type(a.data) for a in extends] == [bytes, bytes]
    assert b"".join(a.data for a in extends) == PAYLOAD
