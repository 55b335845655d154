"""Rendition switches of a LowLatencyStream against a scripted server (httpx.MockTransport): a
report the current playlist shows is inconsistent is not used (a plain GET instead, logged and
counted), never a crash; the new rendition's items follow the old one's on one timeline."""

from __future__ import annotations

import asyncio
import itertools

import httpx
import pytest

from p2ploader.aio.low_latency import LowLatencyStream
from p2ploader.core.ll_follower import LowLatencyItem
from p2ploader.hls import Variant

pytestmark = pytest.mark.anyio

BASE = "http://origin.test/live/"


def playlist(name: str, report: str) -> str:
    """Rendition ``name``: segments 10-12 of four 0.5 s parts (the first of each independent),
    ended, with ``report`` as its EXT-X-RENDITION-REPORT line. Its first segment starts at 0 s
    as parsed, wherever the other rendition's does: the switch puts it on the old timeline."""
    lines = [
        "#EXTM3U",
        "#EXT-X-VERSION:9",
        "#EXT-X-TARGETDURATION:2",
        "#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,PART-HOLD-BACK=1.5",
        "#EXT-X-PART-INF:PART-TARGET=0.5",
        "#EXT-X-MEDIA-SEQUENCE:10",
        f'#EXT-X-MAP:URI="{name}-init.mp4"',
    ]
    for msn in (10, 11, 12):
        for index in range(4):
            independent = ",INDEPENDENT=YES" if index == 0 else ""
            lines.append(f'#EXT-X-PART:DURATION=0.5,URI="{name}-{msn}.{index}.mp4"{independent}')
        lines += ["#EXTINF:2.0,", f"{name}-{msn}.mp4"]
    return "\n".join([*lines, "#EXT-X-ENDLIST", report, ""])


@pytest.mark.parametrize(
    "report",
    [
        '#EXT-X-RENDITION-REPORT:URI="low.m3u8",LAST-MSN=999999,LAST-PART=1',  # far past the edge
        '#EXT-X-RENDITION-REPORT:URI="low.m3u8",LAST-MSN=12',  # no LAST-PART, though parts
        '#EXT-X-RENDITION-REPORT:URI="low.m3u8",LAST-MSN=12,LAST-PART=70',  # absurd part
    ],
)
async def test_an_inconsistent_report_is_not_used(report: str, caplog: pytest.LogCaptureFixture) -> None:
    requests: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        requests.append(str(request.url))
        name = request.url.path.rsplit("/", 1)[-1]
        if name == "high.m3u8":
            return httpx.Response(200, text=playlist("high", report))
        if name == "low.m3u8":
            return httpx.Response(200, text=playlist("low", ""))
        return httpx.Response(200, content=name.encode())

    low = Variant(index=1, rendition_id="v1", url=f"{BASE}low.m3u8", bandwidth=1)
    items: list[LowLatencyItem] = []
    async with (
        httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client,
        LowLatencyStream(f"{BASE}high.m3u8", client=client, variants=(low,), hold_back=5.0) as stream,
    ):
        async with asyncio.timeout(10):
            async for item in stream.items():
                items.append(item)
                if len(items) == 2:
                    await stream.select_rendition("v1")
    assert f"{BASE}low.m3u8" in requests and not [r for r in requests if "low.m3u8?" in r]
    assert stream.statistics.ignored_reports == 1 and stream.statistics.reported_switch_loads == 0
    assert "rendition report" in caplog.text and "not used" in caplog.text
    assert stream.statistics.rendition_switches == 1
    # Segments 10 and 11 of the old rendition (whole: 5 s from the end of an ended playlist), then
    # the new one's segment 12, at the same position: no gap, nothing twice.
    for before, after in itertools.pairwise(items):
        assert after.start == pytest.approx(before.end)
    names = [item.data.decode() for item in items]
    cut = next(k for k, name in enumerate(names) if name.startswith("low-"))
    assert names == ["high-10.mp4", "high-11.mp4", "low-12.mp4"] and cut == 2
    assert items[cut].after_switch and items[cut].init_section is not None
    assert items[cut].init_section.url == f"{BASE}low-init.mp4"
