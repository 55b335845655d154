"""LL-HLS playlists in ``segments()``: the parts are ignored, segments are loaded whole, and the
loader says so (and that ``parts()`` follows the parts) once per media playlist URL (a log warning),
not once per refresh, and only when ``segments()`` plays it: a caller following the parts hears
nothing."""

from __future__ import annotations

import asyncio
import logging

import httpx
import pytest

from p2ploader import LoaderConfig, open_loader
from p2ploader.errors import SegmentUnavailableError
from p2ploader.hls import low_latency_tags, parse_media

pytestmark = pytest.mark.anyio

URL = "http://origin.test/live/ll.m3u8"

# A low-latency live playlist shaped like RFC 8216bis's example: parts of the last segments, a
# preload hint for the next part and the server-control part hold-back.
LL_HLS = """\
#EXTM3U
#EXT-X-VERSION:9
#EXT-X-TARGETDURATION:4
#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,PART-HOLD-BACK=1.0
#EXT-X-PART-INF:PART-TARGET=0.33334
#EXT-X-MEDIA-SEQUENCE:266
#EXTINF:4.00008,
fileSequence266.mp4
#EXTINF:4.00008,
fileSequence267.mp4
#EXT-X-PART:DURATION=0.33334,URI="filePart268.0.mp4",INDEPENDENT=YES
#EXT-X-PART:DURATION=0.33334,URI="filePart268.1.mp4"
#EXTINF:4.00008,
fileSequence268.mp4
#EXT-X-PART:DURATION=0.33334,URI="filePart269.0.mp4",INDEPENDENT=YES
#EXT-X-PRELOAD-HINT:TYPE=PART,URI="filePart269.1.mp4"
"""

REGULAR = """\
#EXTM3U
#EXT-X-VERSION:3
#EXT-X-TARGETDURATION:4
#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,HOLD-BACK=12.0
#EXT-X-MEDIA-SEQUENCE:266
#EXTINF:4.0,
fileSequence266.ts
"""


def test_low_latency_tags_names_the_part_tags() -> None:
    assert low_latency_tags(LL_HLS) == (
        "EXT-X-PART-INF",
        "EXT-X-PART",
        "EXT-X-PRELOAD-HINT",
        "EXT-X-SERVER-CONTROL",
    )
    # SERVER-CONTROL without PART-HOLD-BACK is not about parts.
    assert low_latency_tags(REGULAR) == ()
    assert low_latency_tags(REGULAR + '#EXT-X-PRELOAD-HINT:TYPE=PART,URI="p.ts"\n') == ("EXT-X-PRELOAD-HINT",)


def test_parts_are_ignored_and_segments_kept_whole() -> None:
    playlist = parse_media(LL_HLS, URL, rendition="v0")
    assert [s.url.rsplit("/", 1)[1] for s in playlist.segments] == [
        "fileSequence266.mp4",
        "fileSequence267.mp4",
        "fileSequence268.mp4",
    ]


def _ll_origin(refreshes: int) -> tuple[httpx.MockTransport, asyncio.Event]:
    """An origin serving LL_HLS (no media: 404); the event is set after ``refreshes`` reloads."""
    served = 0
    refreshed = asyncio.Event()

    def handler(request: httpx.Request) -> httpx.Response:
        nonlocal served
        if request.url.path.endswith(".m3u8"):
            served += 1
            if served >= refreshes + 1:
                refreshed.set()
            return httpx.Response(200, text=LL_HLS)
        return httpx.Response(404)

    return httpx.MockTransport(handler), refreshed


def _warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if "low-latency HLS playlist" in r.getMessage()]


async def test_loader_warns_once_when_segments_plays_it_across_refreshes(
    caplog: pytest.LogCaptureFixture,
) -> None:
    transport, refreshed = _ll_origin(3)
    config = LoaderConfig(use_p2p=False, live_refresh_interval=0.01)
    caplog.set_level(logging.WARNING, logger="p2ploader.aio.loader")
    async with (
        httpx.AsyncClient(transport=transport) as client,
        open_loader(URL, config=config, http_client=client) as loader,
    ):
        await asyncio.wait_for(refreshed.wait(), timeout=10)
        assert len(loader.playlist.segments) == 3
        assert _warnings(caplog) == []  # opened and refreshed: segments() not used yet
        for _ in range(2):  # two plays of the same URL: one warning
            with pytest.raises(SegmentUnavailableError):  # the origin has no media
                async for _segment in loader.segments():
                    pass
    warnings = _warnings(caplog)
    assert len(warnings) == 1, warnings
    assert URL in warnings[0]
    assert "parts are ignored and segments are loaded whole" in warnings[0]
    assert "parts() follows it part by part" in warnings[0]
    assert "EXT-X-PART-INF, EXT-X-PART, EXT-X-PRELOAD-HINT, EXT-X-SERVER-CONTROL" in warnings[0]


async def test_loader_says_nothing_when_the_caller_follows_the_parts(
    caplog: pytest.LogCaptureFixture,
) -> None:
    transport, refreshed = _ll_origin(2)
    config = LoaderConfig(use_p2p=False, live_refresh_interval=0.01)
    caplog.set_level(logging.WARNING, logger="p2ploader.aio.loader")
    async with (
        httpx.AsyncClient(transport=transport) as client,
        open_loader(URL, config=config, http_client=client) as loader,
        loader.low_latency_stream() as stream,
    ):
        await asyncio.wait_for(refreshed.wait(), timeout=10)
        assert stream.part_swarm is None
    assert _warnings(caplog) == []


async def test_loader_says_nothing_for_a_regular_playlist(caplog: pytest.LogCaptureFixture) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, text=REGULAR + "#EXT-X-ENDLIST\n")

    caplog.set_level(logging.WARNING, logger="p2ploader.aio.loader")
    async with (
        httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client,
        open_loader(URL, config=LoaderConfig(use_p2p=False), http_client=client),
    ):
        pass
    assert "low-latency" not in caplog.text
