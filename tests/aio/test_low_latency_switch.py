"""Rendition switches of a LowLatencyStream against a scripted server (httpx.MockTransport): a
report the current playlist shows is inconsistent is not used (a plain GET instead, logged and
counted), never a crash, and one that omits attributes is completed from the carrying playlist; a
refused targeted load is made once more plainly; the new rendition's items follow the old one's on
one timeline with nothing twice, whatever durations the renditions write and wherever their key
frames are; a switch cancelled, replaced or closed leaves nothing behind."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable

import httpx
import pytest

from p2ploader.aio.low_latency import LowLatencyStream
from p2ploader.core.ll_follower import LowLatencyItem
from p2ploader.errors import HttpStatusError, RenditionNotFoundError
from p2ploader.hls import Variant
from p2ploader.renditions import find_variant

pytestmark = pytest.mark.anyio

BASE = "http://origin.test/live/"


def playlist(
    name: str,
    report: str,
    *,
    last: int = 12,
    durations: dict[int, str] | None = None,
    independent: dict[int, int] | None = None,
    ended: bool = True,
) -> str:
    """Rendition ``name``: segments 10-``last`` of four 0.5 s parts (the first of each independent,
    or part ``independent[msn]``), ended unless ``ended`` is False, with ``report`` as its
    EXT-X-RENDITION-REPORT line; ``durations`` (msn: EXTINF text) overrides segment durations. Its
    first segment starts at 0 s as parsed, wherever the other rendition's does: the switch puts it
    on the old timeline."""
    lines = [
        "#EXTM3U",
        "#EXT-X-VERSION:9",
        "#EXT-X-TARGETDURATION:2",
        "#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,PART-HOLD-BACK=1.5",
        "#EXT-X-PART-INF:PART-TARGET=0.5",
        "#EXT-X-MEDIA-SEQUENCE:10",
        f'#EXT-X-MAP:URI="{name}-init.mp4"',
    ]
    for msn in range(10, last + 1):
        key = (independent or {}).get(msn, 0)
        for index in range(4):
            mark = ",INDEPENDENT=YES" if index == key else ""
            lines.append(f'#EXT-X-PART:DURATION=0.5,URI="{name}-{msn}.{index}.mp4"{mark}')
        lines += [f"#EXTINF:{(durations or {}).get(msn, '2.0')},", f"{name}-{msn}.mp4"]
    return "\n".join([*lines, *(["#EXT-X-ENDLIST"] if ended else []), report, ""])


def reporting_server(report: str, requests: list[str]) -> Callable[[httpx.Request], httpx.Response]:
    """A scripted origin: ``high.m3u8`` carries ``report``, ``low.m3u8`` none, any other path
    answers its own name as bytes; every URL asked for goes into ``requests``."""

    def handler(request: httpx.Request) -> httpx.Response:
        requests.append(str(request.url))
        name = request.url.path.rsplit("/", 1)[-1]
        if name == "high.m3u8":
            return httpx.Response(200, text=playlist("high", report))
        if name == "low.m3u8":
            return httpx.Response(200, text=playlist("low", ""))
        return httpx.Response(200, content=name.encode())

    return handler


@pytest.mark.parametrize(
    "report",
    [
        '#EXT-X-RENDITION-REPORT:URI="low.m3u8",LAST-MSN=999999,LAST-PART=1',  # far past the edge
        '#EXT-X-RENDITION-REPORT:URI="low.m3u8",LAST-MSN=12,LAST-PART=70',  # absurd part
    ],
)
async def test_an_inconsistent_report_is_not_used(report: str, caplog: pytest.LogCaptureFixture) -> None:
    requests: list[str] = []
    handler = reporting_server(report, requests)

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


LOW = Variant(index=1, rendition_id="v1", url=f"{BASE}low.m3u8", bandwidth=1)
MID = Variant(index=2, rendition_id="v2", url=f"{BASE}mid.m3u8", bandwidth=1)


def names_of(items: list[LowLatencyItem]) -> list[str]:
    return [item.data.decode() for item in items]


def assert_continuous(items: list[LowLatencyItem]) -> None:
    for before, after in itertools.pairwise(items):
        assert after.start == pytest.approx(before.end, abs=1e-3), (before.data, after.data)


async def play(stream: LowLatencyStream, *, switch_after: int = 2, to: str = "v1") -> list[LowLatencyItem]:
    items: list[LowLatencyItem] = []
    async with asyncio.timeout(10):
        async for item in stream.items():
            items.append(item)
            if len(items) == switch_after:
                await stream.select_rendition(to)
    return items


@pytest.mark.parametrize(
    "report",
    [
        '#EXT-X-RENDITION-REPORT:URI="low.m3u8",LAST-MSN=12',  # LAST-PART: the playlist's own, 3
        '#EXT-X-RENDITION-REPORT:URI="low.m3u8"',  # both: 12.3, the playlist's last part
    ],
)
async def test_a_report_that_omits_attributes_targets_the_carrying_playlists_edge(report: str) -> None:
    # RFC 8216bis §4.4.5.4: omitted LAST-MSN / LAST-PART equal the carrying playlist's own.
    requests: list[str] = []
    handler = reporting_server(report, requests)

    async with (
        httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client,
        LowLatencyStream(f"{BASE}high.m3u8", client=client, variants=(LOW,), hold_back=5.0) as stream,
    ):
        items = await play(stream)
    (first_low,) = [r for r in requests if "/low.m3u8" in r][:1]
    assert first_low == f"{BASE}low.m3u8?_HLS_msn=12&_HLS_part=3"
    assert stream.statistics.reported_switch_loads == 1 and stream.statistics.ignored_reports == 0
    assert names_of(items) == ["high-10.mp4", "high-11.mp4", "low-12.mp4"]


@pytest.mark.parametrize("drift", ["2.004", "1.996"])
async def test_drifting_durations_neither_repeat_nor_delay_the_switch(drift: str) -> None:
    # The new rendition writes another EXTINF for segments 10 and 11 (measured durations): by
    # segment 12 its timeline is 8 ms off. The switch is decided by media sequence number, so
    # segment 12 comes once, from the new rendition, right after the old segment 11.
    def handler(request: httpx.Request) -> httpx.Response:
        name = request.url.path.rsplit("/", 1)[-1]
        if name == "high.m3u8":
            return httpx.Response(200, text=playlist("high", ""))
        if name == "low.m3u8":
            return httpx.Response(200, text=playlist("low", "", durations={10: drift, 11: drift}))
        return httpx.Response(200, content=name.encode())

    async with (
        httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client,
        LowLatencyStream(f"{BASE}high.m3u8", client=client, variants=(LOW,), hold_back=5.0) as stream,
    ):
        items = await play(stream)
    assert names_of(items) == ["high-10.mp4", "high-11.mp4", "low-12.mp4"]
    assert [item.after_switch for item in items] == [False, False, True]
    assert_continuous(items)  # the timeline is aligned on the newest shared segment


async def test_an_old_item_straddling_the_new_key_frame_is_not_played_twice() -> None:
    # The new rendition's segment 12 has its key frame at part 2. The old rendition hands whole
    # segments (behind the edge): its segment 12 covers 12.2, so the switch moves to 13.0.
    def handler(request: httpx.Request) -> httpx.Response:
        name = request.url.path.rsplit("/", 1)[-1]
        if name == "high.m3u8":
            return httpx.Response(200, text=playlist("high", "", last=13))
        if name == "low.m3u8":
            return httpx.Response(200, text=playlist("low", "", last=13, independent={12: 2}))
        return httpx.Response(200, content=name.encode())

    async with (
        httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client,
        LowLatencyStream(f"{BASE}high.m3u8", client=client, variants=(LOW,), hold_back=7.0) as stream,
    ):
        items = await play(stream)
    assert names_of(items) == ["high-10.mp4", "high-11.mp4", "high-12.mp4", "low-13.mp4"]
    assert items[-1].after_switch and stream.statistics.rendition_switches == 1
    assert_continuous(items)


@pytest.mark.parametrize("plain_works", [True, False])
async def test_a_refused_targeted_load_is_made_once_more_plainly(
    plain_works: bool, caplog: pytest.LogCaptureFixture
) -> None:
    # The report says 12.3, but the new rendition's server (packaged or cached apart) refuses the
    # blocking reload with 400, as RFC 8216bis §6.2.5.2 has it for an _HLS_msn too far ahead.
    report = '#EXT-X-RENDITION-REPORT:URI="low.m3u8",LAST-MSN=12,LAST-PART=3'
    low_requests: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        name = request.url.path.rsplit("/", 1)[-1]
        if name == "high.m3u8":
            return httpx.Response(200, text=playlist("high", report))
        if name == "low.m3u8":
            low_requests.append(str(request.url))
            if "_HLS_msn" in request.url.params or not plain_works:
                return httpx.Response(400)
            return httpx.Response(200, text=playlist("low", ""))
        return httpx.Response(200, content=name.encode())

    async with (
        httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client,
        LowLatencyStream(f"{BASE}high.m3u8", client=client, variants=(LOW,), hold_back=5.0) as stream,
    ):
        if plain_works:
            items = await play(stream)
        else:
            with pytest.raises(HttpStatusError):
                await play(stream)
            items = [item async for item in stream.items()]
    assert low_requests == [f"{BASE}low.m3u8?_HLS_msn=12&_HLS_part=3", f"{BASE}low.m3u8"]
    assert "refused" in caplog.text
    stats = stream.statistics
    assert stats.ignored_reports == 1 and stats.reported_switch_loads == 0
    if plain_works:
        assert stats.rendition_switches == 1 and stats.switch_failures == 0
        assert names_of(items) == ["high-10.mp4", "high-11.mp4", "low-12.mp4"]
    else:
        assert stats.rendition_switches == 0 and stats.switch_failures == 1
        assert stream.pending_rendition is None and names_of(items) == ["high-12.mp4"]


class HeldServer:
    """``high`` answers at once; ``low`` (the first ``hold`` requests) is held until cancelled,
    which is recorded; ``mid`` answers at once."""

    def __init__(self, *, hold: int = 1, ended: bool = True) -> None:
        self.hold = hold
        self.ended = ended
        self.arrived = asyncio.Event()
        self.cancelled = 0
        self.never = asyncio.Event()

    async def __call__(self, request: httpx.Request) -> httpx.Response:
        name = request.url.path.rsplit("/", 1)[-1]
        if name in ("high.m3u8", "mid.m3u8"):
            if not self.ended and "_HLS_msn" in request.url.params:
                await self.never.wait()  # a live stream that publishes nothing more
            return httpx.Response(200, text=playlist(name.split(".")[0], "", ended=self.ended))
        if name == "low.m3u8":
            if self.hold:
                self.hold -= 1
                self.arrived.set()
                try:
                    await self.never.wait()
                except asyncio.CancelledError:
                    self.cancelled += 1
                    raise
            return httpx.Response(200, text=playlist("low", "", ended=self.ended))
        return httpx.Response(200, content=name.encode())


async def test_a_cancelled_switch_is_given_up_and_its_load_stopped() -> None:
    server = HeldServer()
    async with (
        httpx.AsyncClient(transport=httpx.MockTransport(server)) as client,
        LowLatencyStream(f"{BASE}high.m3u8", client=client, variants=(LOW,), hold_back=5.0) as stream,
    ):
        items: list[LowLatencyItem] = []
        async with asyncio.timeout(10):
            async for item in stream.items():
                items.append(item)
                if len(items) == 1:
                    switch = asyncio.create_task(stream.select_rendition("v1"))
                    await server.arrived.wait()
                    assert stream.pending_rendition == "v1"
                    switch.cancel()
                    with pytest.raises(asyncio.CancelledError):
                        await switch
                    assert stream.pending_rendition is None
    assert server.cancelled == 1
    assert names_of(items) == ["high-10.mp4", "high-11.mp4", "high-12.mp4"]
    assert stream.statistics.rendition_switches == 0 and stream.statistics.switch_failures == 0


async def test_a_switch_cancelled_before_items_does_not_take_over() -> None:
    server = HeldServer()
    async with (
        httpx.AsyncClient(transport=httpx.MockTransport(server)) as client,
        LowLatencyStream(f"{BASE}high.m3u8", client=client, variants=(LOW,), hold_back=5.0) as stream,
    ):
        switch = asyncio.create_task(stream.select_rendition("v1"))
        await server.arrived.wait()
        switch.cancel()
        with pytest.raises(asyncio.CancelledError):
            await switch
        async with asyncio.timeout(10):
            items = [item async for item in stream.items()]
    assert server.cancelled == 1 and stream.statistics.rendition_switches == 0
    assert {item.segment_id.rendition for item in items} == {"v0"}


async def test_aclose_stops_a_switchs_first_load_and_the_switch_returns() -> None:
    server = HeldServer()
    async with httpx.AsyncClient(transport=httpx.MockTransport(server)) as client:
        stream = LowLatencyStream(f"{BASE}high.m3u8", client=client, variants=(LOW,), hold_back=5.0)
        switch = asyncio.create_task(stream.select_rendition("v1"))
        await server.arrived.wait()
        async with asyncio.timeout(5):
            await stream.aclose()
            assert server.cancelled == 1  # stopped and awaited by aclose, not left to run on
            assert await switch is None  # given up by the close: no error for the caller
    assert stream.pending_rendition is None and stream.statistics.switch_failures == 0


async def test_a_switch_replaced_by_a_newer_one_returns_quietly() -> None:
    server = HeldServer()
    async with (
        httpx.AsyncClient(transport=httpx.MockTransport(server)) as client,
        LowLatencyStream(f"{BASE}high.m3u8", client=client, variants=(LOW, MID), hold_back=5.0) as stream,
    ):
        items: list[LowLatencyItem] = []
        older: asyncio.Task[None] | None = None
        async with asyncio.timeout(10):
            async for item in stream.items():
                items.append(item)
                if len(items) == 2:
                    older = asyncio.create_task(stream.select_rendition("v1"))
                    await server.arrived.wait()
                    await stream.select_rendition("v2")
                    assert await older is None  # not a failure: replaced
    assert server.cancelled == 1
    assert names_of(items) == ["high-10.mp4", "high-11.mp4", "mid-12.mp4"]
    stats = stream.statistics
    assert stats.rendition_switches == 1 and stats.switch_failures == 0 and stream.rendition == "v2"


async def test_after_aclose_items_hands_nothing_and_no_switch_takes_over() -> None:
    # A live stream: the reloads are held. The switch waits for the new rendition's key frame
    # (at part 2 of each segment there, past the old whole segment 12: 13.2, not published).
    server = HeldServer(hold=0, ended=False)

    async def low_playlist(request: httpx.Request) -> httpx.Response:
        name = request.url.path.rsplit("/", 1)[-1]
        if name == "low.m3u8":
            if "_HLS_msn" in request.url.params:
                await server.never.wait()
            text = playlist("low", "", ended=False, independent={10: 2, 11: 2, 12: 2})
            return httpx.Response(200, text=text)
        return await server(request)

    async with httpx.AsyncClient(transport=httpx.MockTransport(low_playlist)) as client:
        stream = LowLatencyStream(f"{BASE}high.m3u8", client=client, variants=(LOW,), hold_back=5.0)
        items: list[LowLatencyItem] = []
        third = asyncio.Event()

        async def consume() -> None:
            async for item in stream.items():
                items.append(item)
                if len(items) == 2:
                    await stream.select_rendition("v1")
                if len(items) == 3:
                    third.set()

        consumer = asyncio.create_task(consume())
        async with asyncio.timeout(10):
            await third.wait()
            assert stream.pending_rendition == "v1"
            await stream.aclose()
            await consumer  # items() ended
        assert stream.pending_rendition is None
        assert not [t for t in asyncio.all_tasks() if t.get_name().startswith("ll-")]
        assert [item async for item in stream.items()] == []
    assert names_of(items) == ["high-10.mp4", "high-11.mp4", "high-12.mp4"]
    assert stream.statistics.rendition_switches == 0


async def test_an_unknown_rendition_is_refused_by_the_shared_lookup() -> None:
    # The stream and the loader share one lookup (p2ploader.renditions.find_variant).
    async with httpx.AsyncClient(transport=httpx.MockTransport(lambda r: httpx.Response(404))) as client:
        stream = LowLatencyStream(f"{BASE}high.m3u8", client=client, variants=(LOW, MID))
        for wanted in ("v9", 5):
            with pytest.raises(RenditionNotFoundError) as raised:
                await stream.select_rendition(wanted)
            assert raised.value.wanted == str(wanted) and raised.value.choices == ("v1", "v2")
        bare = LowLatencyStream(f"{BASE}high.m3u8", client=client)
        with pytest.raises(RenditionNotFoundError, match="knows no variants"):
            await bare.select_rendition("v1")
    assert find_variant((LOW, MID), 1) is MID and find_variant((LOW, MID), "v1") is LOW
    assert stream.pending_rendition is None and stream.statistics.switch_failures == 0
