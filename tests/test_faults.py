"""Faults from outside, end to end with real parts, the cases other suites do not cover yet:
origin timeouts and wrong ``Content-Range`` against the real origin, a live playlist that stops
updating, a tracker that vanishes and comes back (and one that talks garbage) under real loaders,
and half of a real WebRTC swarm leaving at once.

(Covered elsewhere: 404/5xx/truncated bodies and a live playlist going backwards in
tests/aio/test_loader_e2e.py; tracker refusals, garbage and reconnects of the tracker client in
tests/aio/test_tracker_client.py.)
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
from collections.abc import AsyncIterator

import pytest
from websockets.asyncio.server import ServerConnection, serve

from p2ploader import LoaderConfig, open_loader, play
from p2ploader.aio.loader import HybridLoader, LoadedSegment
from p2ploader.sample import sample_path, vod_segment_bytes
from p2ploader.testing.origin import LiveSettings, OriginServer
from p2ploader.testing.wait import wait_until
from p2ploader.tracker import TrackerServer

pytestmark = [pytest.mark.anyio, pytest.mark.e2e]

ROOT = sample_path("ts")
WANT_240 = vod_segment_bytes(ROOT / "240p/index.m3u8")
WANT_360 = vod_segment_bytes(ROOT / "360p/index.m3u8")
FAST = LoaderConfig(http_retry_backoff=0.01, live_refresh_interval=0.05, use_p2p=False)


# --------------------------------------------------------------------------- origin


async def test_an_origin_that_times_out_is_retried_and_gives_exact_bytes() -> None:
    with OriginServer(ROOT) as origin:
        origin.inject("240p/seg_00002.ts", delay=1.0, times=1)  # longer than the read timeout
        config = FAST.evolve(http_read_timeout=0.3)
        async with open_loader(origin.url_for("master.m3u8"), config=config) as loader:
            got = [s.data async for s in loader.segments()]
            failures = loader.statistics().http_failures
        assert got == WANT_240
        assert failures == 0  # the executor's own retry absorbed it
        assert origin.statistics().requests_for("/240p/seg_00002.ts") == 2


async def test_a_wrong_content_range_is_refetched_and_gives_exact_bytes() -> None:
    with OriginServer(ROOT) as origin:
        # The first answer for this segment claims the wrong bytes: it must not be trusted.
        origin.inject("240p/seg_00004.ts", wrong_content_range=True, times=1)
        async with open_loader(origin.url_for("master.m3u8"), config=FAST) as loader:
            got = [s.data async for s in loader.segments()]
            stats = loader.statistics()
        assert got == WANT_240
        assert stats.http_failures == 1
        assert origin.statistics().requests_for("/240p/seg_00004.ts") == 2


async def test_a_live_playlist_that_stops_updating_keeps_playing_what_it_has() -> None:
    clock = [20.0]
    with OriginServer(ROOT, live=LiveSettings(window_segments=4), clock=lambda: clock[0]) as origin:
        async with open_loader(origin.url_for("live/master.m3u8"), config=FAST) as loader:
            before = loader.playlist.segments[-1].id.sequence
            origin.freeze_live()
            clock[0] += 8.0  # four segments published, but the playlist no longer says so
            refreshes = origin.statistics().requests_for("/live/240p/index.m3u8")
            await wait_until(
                lambda: origin.statistics().requests_for("/live/240p/index.m3u8") >= refreshes + 5,
                what="refreshes",
            )
            assert loader.playlist.segments[-1].id.sequence == before
            last = await loader.get_segment(loader.playlist.segments[-1])  # what it lists still loads
            assert last.data == WANT_240[before % len(WANT_240)]
            origin.freeze_live(False)
            await wait_until(lambda: loader.playlist.segments[-1].id.sequence == before + 4, what="thaw")
            newest = await loader.get_segment(loader.playlist.segments[-1])
            assert newest.data == WANT_240[(before + 4) % len(WANT_240)]
            assert loader.statistics().playlist_refresh_errors == 0  # stale is not an error


# --------------------------------------------------------------------------- tracker


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _p2p(tracker_url: str) -> LoaderConfig:
    return LoaderConfig(
        tracker_announce=(tracker_url,),
        rtc_config={"iceServers": []},
        http_retry_backoff=0.05,
        live_refresh_interval=0.5,
    )


async def test_a_tracker_that_vanishes_and_comes_back_reunites_the_swarm(loopback: None) -> None:
    port = _free_port()
    with OriginServer(ROOT, live=LiveSettings(window_segments=10, segment_duration=0.5)) as origin:
        url = origin.url_for("live/master.m3u8")
        config = _p2p(f"ws://127.0.0.1:{port}")
        # The tracker is not there when the loaders start: they play over HTTP meanwhile.
        async with (
            open_loader(url, config=config, rendition="v1", seed=1) as first,
            open_loader(url, config=config, rendition="v1", seed=2) as second,
        ):
            got: list[LoadedSegment] = []
            report = await asyncio.wait_for(play(first, duration=2.0, on_segment=got.append, tick=0.1), 20)
            assert report.stalls == 0 and got
            assert first.statistics().peers_connected == 0
            async with TrackerServer(port=port):
                # The tracker clients' back-off brings them back; they meet and connect.
                await wait_until(
                    lambda: (
                        first.statistics().peers_connected == 1 and second.statistics().peers_connected == 1
                    ),
                    timeout=30.0,
                    what="peers after the tracker came back",
                )
            # Gone again: established peer links do not depend on it.
            await asyncio.sleep(0.5)
            assert first.statistics().peers_connected == 1
    assert all(g.data == WANT_360[g.segment.id.sequence % len(WANT_360)] for g in got)


@contextlib.asynccontextmanager
async def garbage_tracker() -> AsyncIterator[str]:
    """A WebSocket server that answers every frame with nonsense, then a refusal, then hangs up."""

    async def handler(ws: ServerConnection) -> None:
        async for _frame in ws:
            await ws.send("{not json")
            await ws.send(json.dumps([1, 2, 3]))
            await ws.send(json.dumps({"action": "announce", "interval": "soon", "info_hash": 5}))
            await ws.send(json.dumps({"failure reason": "go away"}))
            await ws.close()

    async with serve(handler, "127.0.0.1", 0) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        yield f"ws://127.0.0.1:{port}"


async def test_a_tracker_talking_garbage_costs_nothing_but_p2p(loopback: None) -> None:
    with OriginServer(ROOT, live=LiveSettings(window_segments=10, segment_duration=0.5)) as origin:
        async with (
            garbage_tracker() as tracker_url,
            open_loader(
                origin.url_for("live/master.m3u8"), config=_p2p(tracker_url), rendition="v1"
            ) as loader,
        ):
            got: list[LoadedSegment] = []
            report = await asyncio.wait_for(play(loader, duration=3.0, on_segment=got.append, tick=0.1), 20)
            tracker = loader._tracker_client
            assert tracker is not None
            stats = tracker.statistics()
    assert report.stalls == 0 and got
    assert all(g.data == WANT_360[g.segment.id.sequence % len(WANT_360)] for g in got)
    assert stats.trackers[0].failures >= 1  # the refusal was seen (and survived)


# --------------------------------------------------------------------------- the swarm


async def test_half_the_swarm_leaving_at_once_costs_no_stall(loopback: None) -> None:
    async with TrackerServer() as tracker:
        with OriginServer(ROOT, live=LiveSettings(window_segments=10)) as origin:
            url = origin.url_for("live/master.m3u8")
            config = _p2p(tracker.url)
            stack = contextlib.AsyncExitStack()
            loaders: list[HybridLoader] = []
            async with stack:
                for seed in range(4):
                    loaders.append(
                        await stack.enter_async_context(
                            open_loader(url, config=config, rendition="v1", seed=seed)
                        )
                    )
                await wait_until(
                    lambda: all(loader.statistics().peers_connected == 3 for loader in loaders),
                    what="full mesh",
                )
                leaving, staying = loaders[:2], loaders[2:]
                got: list[list[LoadedSegment]] = [[], []]
                # The leavers start first (they hold what the others prefetch), as in a real swarm.
                lead = [
                    asyncio.create_task(play(loader, duration=30.0, forward_buffer=8.0, tick=0.1))
                    for loader in leaving
                ]
                await asyncio.sleep(2.0)
                watching = [
                    asyncio.create_task(
                        play(
                            loader,
                            duration=10.0,
                            forward_buffer=8.0,
                            tick=0.1,
                            live_start_distance=6,
                            on_segment=got[i].append,
                        )
                    )
                    for i, loader in enumerate(staying)
                ]
                await wait_until(
                    lambda: sum(s.statistics().p2p_bytes for s in staying) > 0, what="P2P traffic"
                )
                for task in lead:
                    task.cancel()
                await asyncio.gather(*(loader.aclose() for loader in leaving))  # together
                reports = await asyncio.wait_for(asyncio.gather(*watching), timeout=30)
                await wait_until(
                    lambda: all(s.statistics().peers_connected == 1 for s in staying), what="leavers dropped"
                )
    assert [r.stalls for r in reports] == [0, 0]
    for segments in got:
        assert segments
        assert all(g.data == WANT_360[g.segment.id.sequence % len(WANT_360)] for g in segments)
