"""Security properties of docs/security.md, checked with real parts: decryption keys never cross
P2P (encrypted segments are shared as they are), the servers bind loopback by default, and a peer
can read nothing but cached segments of its own swarm."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from p2ploader import LoaderConfig, open_loader, play
from p2ploader.aio.loader import LoadedSegment
from p2ploader.app.cli import build_parser
from p2ploader.core import wire
from p2ploader.errors import UsageError
from p2ploader.proxy import HlsProxy
from p2ploader.sample import sample_path, vod_segment_bytes
from p2ploader.testing.origin import LiveSettings, OriginServer
from p2ploader.testing.wait import wait_until
from p2ploader.tracker import TrackerServer
from tests.hostile.scripted import ScriptedPeer

pytestmark = pytest.mark.anyio

AES = sample_path("aes")
KEY = (AES / "key.bin").read_bytes()
AES_SEGMENTS = vod_segment_bytes(AES / "index.m3u8")  # encrypted, as the origin serves them


@pytest.fixture
async def tracker(loopback: None) -> AsyncIterator[TrackerServer]:
    async with TrackerServer() as server:
        yield server


def _config(tracker: TrackerServer) -> LoaderConfig:
    return LoaderConfig(
        tracker_announce=(tracker.url,), rtc_config={"iceServers": []}, http_retry_backoff=0.05
    )


@pytest.mark.e2e
async def test_keys_never_cross_p2p_and_encrypted_segments_are_shared_as_they_are(
    tracker: TrackerServer,
) -> None:
    assert len(KEY) == 16
    with OriginServer(AES, live=LiveSettings(window_segments=10)) as origin:
        url = origin.url_for("live/master.m3u8")
        async with (
            open_loader(url, config=_config(tracker), seed=1) as first,
            open_loader(url, config=_config(tracker), seed=2) as second,
        ):
            await wait_until(lambda: second.statistics().peers_connected == 1, what="peers")
            first_got: list[LoadedSegment] = []
            leading = asyncio.create_task(
                play(first, duration=12.0, forward_buffer=8.0, on_segment=first_got.append)
            )
            await asyncio.sleep(2.0)
            got: list[LoadedSegment] = []
            await asyncio.wait_for(
                play(second, duration=8.0, forward_buffer=8.0, live_start_distance=6, on_segment=got.append),
                30,
            )
            # The first loader holds the key in memory now ...
            assert first_got and await first.fetch_key(first_got[0].segment) == KEY
            # ... and a scripted peer asks it for everything it could: every wire id around.
            spy = ScriptedPeer(first, {})
            await spy.connect()
            try:
                # One request at a time, as the protocol's peers ask: a new request replaces an
                # upload in progress, so firing them all at once would cut uploads short on a busy
                # machine and leave requests unanswered.
                def answers() -> int:
                    return sum(
                        isinstance(i, wire.SegmentAbsent | wire.SegmentDataSendingCompleted)
                        for i in spy.received
                    )

                for request_id, wire_id in enumerate(range(0, 64)):
                    spy.send(wire.SegmentRequest(segment_id=wire_id, request_id=request_id))
                    await wait_until(
                        lambda n=request_id + 1: answers() >= n,
                        what=f"an answer to the request for wire id {wire_id}",
                    )
            finally:
                await spy.close()
                leading.cancel()
            stats = second.statistics()
            key_for_second = await second.fetch_key(got[0].segment)
    raw = b"".join(i.data for i in spy.received if isinstance(i, wire.DataChunk))
    assert raw and KEY not in raw  # the segments' bytes travelled, the key never did
    assert stats.p2p_bytes > 0  # the second loader did get segments from the first ...
    for loaded in got:  # ... and they are the encrypted bytes the origin serves, unchanged
        assert loaded.data == AES_SEGMENTS[loaded.segment.id.sequence % len(AES_SEGMENTS)]
    assert key_for_second == KEY
    # Each loader fetched the key from the origin itself, over HTTP.
    assert origin.statistics().requests_for("/key.bin") == 2


@pytest.mark.e2e
async def test_a_peer_reads_only_cached_segments_of_its_own_swarm(tracker: TrackerServer) -> None:
    root = sample_path("ts")
    want = vod_segment_bytes(root / "360p/index.m3u8")
    with OriginServer(root) as origin:
        async with open_loader(
            origin.url_for("master.m3u8"), config=_config(tracker), rendition="v1"
        ) as loader:
            for segment in loader.playlist.segments[:3]:
                await loader.get_segment(segment)
            spy = ScriptedPeer(loader, {})
            await spy.connect()
            try:
                asks = [*range(0, 12), 10**6, 2**53]
                # One request at a time, as a peer of the protocol asks: a new request replaces
                # the upload in progress, so requests sent at once would cut each other short.
                # The last one asks past the end of a cached segment: nothing to read there either.
                requests = [(rid, seq, 0) for rid, seq in enumerate(asks)] + [(99, 0, len(want[0]))]
                for request_id, sequence, offset in requests:
                    spy.send(
                        wire.SegmentRequest(
                            segment_id=spy.wire_id(sequence), request_id=request_id, byte_offset=offset
                        )
                    )
                    await wait_until(
                        lambda rid=request_id: any(
                            isinstance(i, wire.SegmentAbsent | wire.SegmentDataSendingCompleted)
                            and i.request_id == rid
                            for i in spy.received
                        ),
                        what=f"the answer to request {request_id}",
                    )
            finally:
                await spy.close()
            # The loader keeps prefetching meanwhile: its cache only grows on a 10-segment VOD.
            cached = {sid.sequence for sid in loader._scheduler.cache if sid.rendition == "v1"}
    served = {spy.sequence_of(i.segment_id) for i in spy.received if isinstance(i, wire.SegmentData)}
    absent = {
        (spy.sequence_of(i.segment_id), i.request_id)
        for i in spy.received
        if isinstance(i, wire.SegmentAbsent)
    }
    assert {0, 1, 2} <= served <= cached  # what it had cached, nothing else
    assert (0, 99) in absent
    raw = b"".join(i.data for i in spy.received if isinstance(i, wire.DataChunk))
    assert len(raw) == sum(len(want[s]) for s in served)


async def test_servers_bind_loopback_by_default() -> None:
    async with TrackerServer() as tracker:
        assert tracker._bound is not None and tracker._bound[0] == "127.0.0.1"
        assert tracker.url.startswith("ws://127.0.0.1:")
    with OriginServer(sample_path("ts")) as origin:
        assert origin.host == "127.0.0.1"
        async with HlsProxy(origin.url_for("master.m3u8"), config=LoaderConfig(use_p2p=False)) as proxy:
            assert proxy.url.startswith("http://127.0.0.1:")
    with pytest.raises(UsageError):
        HlsProxy("http://127.0.0.1:1/master.m3u8", host="0.0.0.0")  # not without allow_remote
    parser = build_parser()
    for argv in (["tracker"], ["origin"], ["proxy", "http://127.0.0.1:1/m.m3u8"]):
        assert parser.parse_args(argv).host == "127.0.0.1", argv
