"""AES-128 streams through the proxy: ciphertext and keys are passed on as published, keys over HTTP
only (never from the swarm), and ffmpeg decrypts and decodes every frame. Every wait is bounded."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from p2ploader import LoaderConfig, open_loader, play
from p2ploader.aio.webrtc import restrict_ice_to_loopback
from p2ploader.core import notifications as nt
from p2ploader.core.segments import SegmentId
from p2ploader.hls import parse_media
from p2ploader.proxy import ServedSegment, open_proxy
from p2ploader.sample import sample_path, vod_segment_bytes
from p2ploader.testing.origin import LiveSettings, OriginServer
from p2ploader.tracker import TrackerServer
from tests.ffmpeg_streams import ROTATING_AES_KEYS, rotating_aes_stream  # noqa: F401
from tests.proxy.test_proxy import FAST, needs_ffmpeg, run_ffmpeg, wait_for_peers

pytestmark = [pytest.mark.anyio, pytest.mark.e2e]

AES = sample_path("aes")


@pytest.fixture
def loopback() -> Iterator[None]:
    with restrict_ice_to_loopback():
        yield


async def test_with_decrypt_set_the_proxy_still_serves_ciphertext_and_the_key() -> None:
    # The re-served playlist keeps EXT-X-KEY: the player decrypts, so it must get the bytes as
    # published, whatever the loader's config says.
    ciphertext = vod_segment_bytes(AES / "index.m3u8")
    served: list[ServedSegment] = []
    with OriginServer(AES) as origin:
        async with open_proxy(origin.url_for("master.m3u8"), config=FAST.evolve(decrypt=True)) as proxy:
            proxy.add_listener(served.append)
            async with httpx.AsyncClient(timeout=20) as client:
                url = f"{proxy.base_url}/r/v0/index.m3u8"
                playlist = parse_media((await client.get(url)).text, url, rendition="v0")
                bodies = [(await client.get(s.url)).content for s in playlist.segments]
                key_info = playlist.segments[0].key
                assert key_info is not None and key_info.url is not None
                key = (await client.get(key_info.url)).content
    assert bodies == ciphertext
    assert [s.data for s in sorted(served, key=lambda s: s.sequence)] == ciphertext
    assert key == (AES / "key.bin").read_bytes()


@needs_ffmpeg
async def test_ffmpeg_decodes_a_key_rotating_stream_without_iv_through_the_proxy(
    rotating_aes_stream: Path,  # noqa: F811 (the session fixture imported above)
) -> None:
    with OriginServer(rotating_aes_stream) as origin:
        async with open_proxy(origin.url_for("master.m3u8"), config=FAST) as proxy:
            async with httpx.AsyncClient(timeout=20) as client:
                text = (await client.get(f"{proxy.base_url}/r/v0/index.m3u8")).text
            decode = ("-map", "0", "-f", "framemd5", "-")
            code, through_proxy, err = await run_ffmpeg("-v", "error", "-i", proxy.url, *decode)
            assert (code, err) == (0, b"")
            key_requests = [origin.statistics().requests_for(f"/video/key{n}.bin") for n in (0, 1)]
        code, direct, err = await run_ffmpeg("-v", "error", "-i", origin.url_for("master.m3u8"), *decode)
        assert code == 0, err
    # Both keys re-served, still without IV (the player derives it), at the proxy's key paths.
    key_tags = [line for line in text.splitlines() if line.startswith("#EXT-X-KEY")]
    assert key_tags == [
        '#EXT-X-KEY:METHOD=AES-128,URI="/r/v0/key/0"',
        '#EXT-X-KEY:METHOD=AES-128,URI="/r/v0/key/1"',
    ]
    frames = [line for line in through_proxy.splitlines() if line and not line.startswith(b"#")]
    # 12 s at 24 fps, two encodes joined: ffmpeg drops the frame whose timestamp the seam repeats.
    assert len(frames) >= 12 * 24 - 1
    assert through_proxy == direct  # and every frame is the one ffmpeg decrypts from the origin
    assert key_requests == [1, 1]  # each key over HTTP once, however often ffmpeg asked


@needs_ffmpeg
async def test_in_a_swarm_the_proxy_gets_segments_from_peers_and_keys_from_the_origin(
    loopback: None,
) -> None:
    ciphertext = vod_segment_bytes(AES / "index.m3u8")
    settings = LiveSettings(window_segments=6, initial_segments=4, loop=False)
    async with TrackerServer() as tracker:
        with OriginServer(AES, live=settings) as origin:
            url = origin.url_for("live/master.m3u8")
            config = LoaderConfig(
                tracker_announce=(tracker.url,),
                rtc_config={"iceServers": []},
                http_retry_backoff=0.05,
                live_refresh_interval=0.5,
            )
            async with open_loader(url, config=config.evolve(decrypt=True), seed=1) as seeder:
                viewer = asyncio.create_task(play(seeder, duration=40, forward_buffer=8.0, tick=0.1))
                try:
                    await asyncio.sleep(2.0)
                    async with open_proxy(url, config=config, seed=2, pin_rendition=True) as proxy:
                        from_peers: list[SegmentId] = []
                        proxy.loader.add_listener(
                            lambda n: (
                                from_peers.append(n.segment_id)
                                if isinstance(n, nt.SegmentLoaded) and n.source == "p2p"
                                else None
                            )
                        )
                        await wait_for_peers([proxy.loader], 1)
                        code, _, err = await run_ffmpeg(
                            "-v", "error", "-re", "-i", proxy.url, "-t", "6", "-map", "0", "-f", "null", "-",
                            limit=60,
                        )  # fmt: skip
                        stats = proxy.statistics()
                        cache = proxy.loader._scheduler.cache
                        received = {sid: cache.get(sid, now=0.0) for sid in from_peers if sid in cache}
                finally:
                    viewer.cancel()
                    await asyncio.gather(viewer, return_exceptions=True)
            key_requests = origin.statistics().requests_for("/key.bin")
    assert (code, err) == (0, b"")
    assert stats.errors == 0 and stats.loader.p2p_bytes > 0, stats
    # What came from peers is the ciphertext as published.
    assert received and all(
        entry is not None and entry.data == ciphertext[sid.sequence % len(ciphertext)]
        for sid, entry in received.items()
    )
    # One key fetch per loader, both over HTTP: the seeder's (to decrypt) and the proxy's (for
    # ffmpeg). Peers never carry keys.
    assert key_requests == 2
