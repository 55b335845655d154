"""Three real-time viewers with decryption on share an AES-128 live stream over real WebRTC (aiortc,
the embedded tracker, 127.0.0.1): each plays plaintext, the swarm carries only ciphertext, and each
viewer fetches the key once, over HTTP."""

from __future__ import annotations

import asyncio

import attrs
import pytest

from p2ploader import open_loader
from p2ploader.aio.loader import LoadedSegment
from p2ploader.core import notifications as nt
from p2ploader.core.segments import SegmentId
from p2ploader.sample import sample_path, vod_segment_bytes
from p2ploader.testing.origin import LiveSettings, OriginServer
from p2ploader.tracker import TrackerServer
from tests.aio.test_p2p_e2e import p2p_config, view, wait_for_peers

pytestmark = [pytest.mark.anyio, pytest.mark.e2e]

AES = sample_path("aes")
CIPHERTEXT = vod_segment_bytes(AES / "index.m3u8")
PLAINTEXT = vod_segment_bytes(sample_path("ts") / "240p" / "index.m3u8")  # the clear twin


async def test_three_decrypting_viewers_share_the_ciphertext(loopback: None, tracker: TrackerServer) -> None:
    with OriginServer(AES, live=LiveSettings(window_segments=10)) as origin:
        url = origin.url_for("live/master.m3u8")
        config = attrs.evolve(p2p_config(tracker.url), decrypt=True)
        async with (
            open_loader(url, config=config, seed=1) as first,
            open_loader(url, config=config, seed=2) as second,
            open_loader(url, config=config, seed=3) as third,
        ):
            loaders = [first, second, third]
            from_peers: list[list[SegmentId]] = [[], [], []]
            for loader, ids in zip(loaders, from_peers, strict=True):
                loader.add_listener(
                    lambda n, ids=ids: (
                        ids.append(n.segment_id)
                        if isinstance(n, nt.SegmentLoaded) and n.source == "p2p"
                        else None
                    )
                )
            await wait_for_peers(loaders, 2)
            got: list[list[LoadedSegment]] = [[], [], []]
            # The followers' 8 s prefetch finds the first viewer's segments at once (as in
            # tests/aio/test_p2p_e2e.py); 8 s of play go through it.
            first_view = asyncio.create_task(view(first, 10.0, got[0]))
            await asyncio.sleep(2.0)
            reports = await asyncio.wait_for(
                asyncio.gather(
                    first_view, view(second, 8.0, got[1], distance=6), view(third, 8.0, got[2], distance=6)
                ),
                timeout=40,
            )
            stats = [loader.statistics() for loader in loaders]
            received = [
                {
                    sid: loader._scheduler.cache.get(sid, now=0.0)
                    for sid in ids
                    if sid in loader._scheduler.cache
                }
                for loader, ids in zip(loaders, from_peers, strict=True)
            ]
        key_requests = origin.statistics().requests_for("/key.bin")

    # Every viewer played plaintext, each segment the clear twin's bytes.
    for segments in got:
        assert segments and all(s.decrypted for s in segments)
        for loaded in segments:
            assert loaded.data == PLAINTEXT[loaded.segment.id.sequence % len(PLAINTEXT)], loaded.segment.id
    assert [r.stalls for r in reports] == [0, 0, 0]
    assert stats[1].p2p_bytes > 0 and stats[2].p2p_bytes > 0, stats
    # What peers sent is the ciphertext as published (and so is what the caches offer).
    assert any(received)
    for entries in received:
        for sid, entry in entries.items():
            assert entry is not None and entry.data == CIPHERTEXT[sid.sequence % len(CIPHERTEXT)], sid
    # Each viewer fetched the key exactly once, from the origin: no key ever came from a peer.
    assert key_requests == 3
