"""Uploads yield to our own urgent downloads, over real aiortc links and a real HTTP fetch: a
held :class:`~p2ploader.core.upload_control.UploadHold` keeps an upload from sending, and the HTTP
executor holds it exactly while an urgent fetch runs."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from p2ploader.aio.http import HttpExecutor
from p2ploader.config import LoaderConfig
from p2ploader.core import actions as act
from p2ploader.core import events as ev
from p2ploader.core.retries import FetchRetryPolicy
from p2ploader.core.segments import Segment, SegmentId
from p2ploader.core.upload_control import UploadHold
from tests.aio.test_peers import PAYLOAD, SEGMENTS, Side, connect, wait_until

pytestmark = pytest.mark.anyio


async def test_a_held_upload_waits_and_goes_on_when_released(loopback: None) -> None:
    config = LoaderConfig(http_download_probability=0.0)
    hold = UploadHold(max_hold=60.0)  # no pause limit within the test: only the release ends it
    seeder, downloader = Side("a", config, upload_hold=hold), Side("b", config)
    loop = asyncio.get_running_loop()
    seeder.scheduler.cache.put(SEGMENTS[3], PAYLOAD, now=loop.time())
    try:
        await connect(seeder, downloader)
        hold.hold("our urgent download", now=loop.time())
        downloader.driver.feed(ev.PlaybackMoved(position=0.0))
        downloader.driver.feed(
            ev.SegmentRequested(segment_id=SEGMENTS[2].id)
        )  # 3 is prefetched from the peer
        # The seeder's core handed the upload to its peer manager, which holds it.
        await wait_until(lambda: seeder.scheduler.statistics().uploaded_bytes > 0)
        await asyncio.sleep(0.5)  # unheld, 100 kB cross loopback in milliseconds
        assert downloader.scheduler.statistics().p2p_bytes == 0
        assert seeder.peers.statistics().uploaded_bytes == 0
        hold.release("our urgent download")
        await wait_until(lambda: any(n.segment_id == SEGMENTS[3].id for n in downloader.loaded()))
        assert downloader.scheduler.statistics().p2p_bytes == len(PAYLOAD)
    finally:
        await asyncio.gather(seeder.peers.aclose(), downloader.peers.aclose())
        seeder.driver.close()
        downloader.driver.close()


@pytest.mark.parametrize("urgent", [True, False])
async def test_an_urgent_fetch_holds_uploads_while_it_runs(urgent: bool) -> None:
    hold = UploadHold()
    held_during: list[bool] = []
    body_may_come = asyncio.Event()

    async def respond(request: httpx.Request) -> httpx.Response:
        held_during.append(hold.held(now=asyncio.get_running_loop().time()))
        await body_may_come.wait()
        return httpx.Response(200, content=b"x" * 1000)

    events: list[ev.Event] = []
    async with httpx.AsyncClient(transport=httpx.MockTransport(respond)) as client:
        executor = HttpExecutor(
            client, events.append, retry_policy=FetchRetryPolicy(retries=0, backoff=0.0), upload_hold=hold
        )
        segment = Segment(id=SegmentId("v0", 1), url="http://origin.test/1.ts", duration=2.0)
        executor.start(act.StartHttpFetch(request_id=7, segment=segment, urgent=urgent))
        await wait_until(lambda: bool(held_during))
        assert held_during == [urgent]
        body_may_come.set()
        await wait_until(lambda: any(isinstance(e, ev.HttpFetchCompleted) for e in events))
        await wait_until(lambda: executor.active == 0)
        assert not hold.held(now=asyncio.get_running_loop().time())
        assert hold.holds == (1 if urgent else 0)
        await executor.aclose()


async def test_a_cancelled_urgent_fetch_releases_its_hold() -> None:
    hold = UploadHold(max_hold=60.0)  # a release, not the pause limit, must end it
    started = asyncio.Event()

    async def respond(request: httpx.Request) -> httpx.Response:
        started.set()
        await asyncio.Event().wait()  # never answers
        raise AssertionError("unreachable")

    async with httpx.AsyncClient(transport=httpx.MockTransport(respond)) as client:
        executor = HttpExecutor(
            client,
            lambda event: None,
            retry_policy=FetchRetryPolicy(retries=0, backoff=0.0),
            upload_hold=hold,
        )
        segment = Segment(id=SegmentId("v0", 1), url="http://origin.test/1.ts", duration=2.0)
        executor.start(act.StartHttpFetch(request_id=7, segment=segment, urgent=True))
        await started.wait()
        assert hold.held(now=asyncio.get_running_loop().time())
        executor.abort(7)
        await wait_until(lambda: executor.active == 0, steps=50)
        await asyncio.sleep(0)  # the task's done callback
        assert not hold.held(now=asyncio.get_running_loop().time())
        await executor.aclose()
