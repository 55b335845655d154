"""LL-HLS parts over P2P through the proxy: two proxies (two viewers' machines, each with a player
asking for parts) on one LL-HLS origin, with ``p2p_parts``, share parts through the parts swarm
(the embedded tracker, real aiortc on 127.0.0.1); every part a player gets is the origin's. Without
``p2p_parts`` (the default) every part comes over HTTP. Real sockets; every wait bounded."""

from __future__ import annotations

import asyncio
import contextlib
import re
from pathlib import Path
from typing import Any

import httpx
import pytest

from p2ploader import LoaderConfig
from p2ploader.proxy import HlsProxy, open_proxy
from p2ploader.testing.llhls import LowLatencySettings
from p2ploader.testing.origin import LiveSettings, OriginServer
from p2ploader.tracker import TrackerServer
from tests.ffmpeg_streams import llhls_stream  # noqa: F401

pytestmark = [pytest.mark.anyio, pytest.mark.e2e]

PLAYLIST = "/r/v0/index.m3u8"
_HINT = re.compile(r'#EXT-X-PRELOAD-HINT:TYPE=PART,URI="(/r/v\d/part/(\d+)\.(\d+)\.m4s)"')
PLAY_SECONDS = 12.0


async def follow_parts(proxy: HlsProxy, seconds: float) -> dict[str, bytes]:
    """A player at the live edge: block on each next part's preload hint and take it, for
    ``seconds``; returns each part's proxy path and bytes."""
    got: dict[str, bytes] = {}
    loop = asyncio.get_running_loop()
    end = loop.time() + seconds
    async with httpx.AsyncClient(timeout=20) as client:
        while loop.time() < end:
            text = (await client.get(proxy.base_url + PLAYLIST)).text
            hint = _HINT.search(text)
            assert hint is not None, text
            response = await client.get(proxy.base_url + hint[1])  # held until published
            assert response.status_code == 200
            got[hint[1]] = response.content
            msn, index = int(hint[2]), int(hint[3])
            # The next playlist once this part is listed (a blocking reload).
            await client.get(proxy.base_url + PLAYLIST + f"?_HLS_msn={msn}&_HLS_part={index}")
    return got


async def run_two_proxies(
    stream: Path, tracker: TrackerServer, *, p2p_parts: bool | None
) -> tuple[list[int], list[int], list[dict[str, bytes]], dict[str, bytes]]:
    """Both proxies' (relayed bytes, of them from peers), what their players got, and the
    origin's bytes of the same parts. ``p2p_parts=None`` leaves the argument out (its default)."""
    live = LiveSettings(window_segments=4, initial_segments=2, loop=True)
    config = LoaderConfig(tracker_announce=(tracker.url,), rtc_config={"iceServers": []})
    options: dict[str, Any] = {} if p2p_parts is None else {"p2p_parts": p2p_parts}
    with OriginServer(stream, live=live, low_latency=LowLatencySettings()) as origin:
        url = origin.url_for("llhls/master.m3u8")
        async with contextlib.AsyncExitStack() as stack:
            proxies = [
                await stack.enter_async_context(
                    open_proxy(url, config=config, pin_rendition=True, seed=k, **options)
                )
                for k in range(2)
            ]
            async with asyncio.timeout(60):
                got = await asyncio.gather(*(follow_parts(p, PLAY_SECONDS) for p in proxies))
            stats = [p.statistics() for p in proxies]
        async with httpx.AsyncClient(timeout=10) as client:
            origin_parts: dict[str, bytes] = {}
            for path in {path for parts in got for path in parts}:
                msn, index = path.rsplit("/", 1)[1].removesuffix(".m4s").split(".")
                origin_parts[path] = (
                    await client.get(origin.url_for(f"llhls/high/seg_{msn}.{index}.m4s"))
                ).content
    return [s.relayed_bytes for s in stats], [s.relayed_p2p_bytes for s in stats], got, origin_parts


async def test_two_proxies_share_llhls_parts_over_p2p(
    llhls_stream: Path,  # noqa: F811
    loopback: None,
    tracker: TrackerServer,
) -> None:
    relayed, from_peers, got, origin_parts = await run_two_proxies(llhls_stream, tracker, p2p_parts=True)
    assert all(relayed), relayed
    assert sum(from_peers) > 0, (relayed, from_peers)  # some part came from the other proxy
    for parts in got:
        assert len(parts) >= 8
        for path, data in parts.items():  # every part byte the players got is the origin's
            assert data == origin_parts[path], path


async def test_by_default_the_proxy_takes_parts_over_http_only(
    llhls_stream: Path,  # noqa: F811
    loopback: None,
    tracker: TrackerServer,
) -> None:
    relayed, from_peers, _, _ = await run_two_proxies(llhls_stream, tracker, p2p_parts=None)
    assert all(relayed), relayed
    assert from_peers == [0, 0]
