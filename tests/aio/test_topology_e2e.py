"""Host/client topology end to end: real loaders, real aiortc on 127.0.0.1, a real local origin, the
embedded tracker deciding (OvenMediaEngine's signalling-server path) and the npm bittorrent-tracker
with the peers deciding. Every segment played is compared with the origin's bytes."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable

import pytest

from p2ploader import LoaderConfig, PlaybackReport, open_loader, play
from p2ploader.aio.loader import HybridLoader, LoadedSegment
from p2ploader.sample import sample_path, vod_segment_bytes
from p2ploader.testing.origin import LiveSettings, OriginServer
from p2ploader.testing.wait import wait_until
from p2ploader.tracker import TrackerServer
from tests.node_tracker import NodeTracker

pytestmark = [pytest.mark.anyio, pytest.mark.e2e]

ROOT = sample_path("ts")
WANT = vod_segment_bytes(ROOT / "240p/index.m3u8")  # rendition v0
HOST = {"peer_device": "desktop", "peer_os": "windows", "peer_client": "p2ploader"}
CLIENT = {"peer_device": "mobile", "peer_os": "android", "peer_client": "p2ploader"}


def tree_config(tracker_url: str, role: dict[str, str]) -> LoaderConfig:
    return LoaderConfig(
        tracker_announce=(tracker_url,),
        rtc_config={"iceServers": []},
        http_retry_backoff=0.05,
        live_refresh_interval=0.5,
        topology="host-client",
        **role,
    )


def view(
    loader: HybridLoader, seconds: float, out: list[LoadedSegment], stop: asyncio.Event | None = None
) -> Awaitable[PlaybackReport]:
    return play(
        loader,
        duration=seconds,
        forward_buffer=8.0,
        tick=0.1,
        live_start_distance=4,
        on_segment=out.append,
        stop=stop,
    )


def check_bytes(segments: list[LoadedSegment]) -> None:
    assert segments
    for loaded in segments:
        assert loaded.data == WANT[loaded.segment.id.sequence % len(WANT)], loaded.segment.id


async def test_nine_loaders_one_level_tree_offloads_two_thirds_and_survives_a_host_leaving(
    loopback: None, tracker: TrackerServer
) -> None:
    with OriginServer(ROOT, live=LiveSettings(window_segments=10)) as origin:
        url = origin.url_for("live/master.m3u8")
        async with contextlib.AsyncExitStack() as stack:
            hosts = [
                await stack.enter_async_context(
                    open_loader(url, config=tree_config(tracker.url, HOST), rendition="v0", seed=100 + i)
                )
                for i in range(3)
            ]
            host_got: list[list[LoadedSegment]] = [[], [], []]
            host_views = [
                asyncio.create_task(view(h, 60.0, got)) for h, got in zip(hosts, host_got, strict=True)
            ]
            clients = [
                await stack.enter_async_context(
                    open_loader(url, config=tree_config(tracker.url, CLIENT), rendition="v0", seed=200 + i)
                )
                for i in range(6)
            ]
            info_hash = hosts[0].info_hash()
            assert {h.statistics().topology_role for h in hosts} == {"host"}
            assert {c.statistics().topology_role for c in clients} == {"client"}

            # The embedded tracker introduces each client to one vacant host: 3 hosts x 2 clients.
            def tree_full() -> bool:
                return all(len(cs) == 2 for cs in tracker.host_client_tree(info_hash).values()) and all(
                    c.statistics().peers_connected == 1 for c in clients
                )

            await wait_until(
                tree_full,
                what=lambda: (tracker.host_client_tree(info_hash), [c.statistics() for c in clients]),
            )
            assert len(tracker.host_client_tree(info_hash)) == 3
            await asyncio.sleep(2.0)  # hosts run ahead by one segment: clients find their segments there

            client_got: list[list[LoadedSegment]] = [[] for _ in clients]
            stop = asyncio.Event()
            client_views = [
                asyncio.create_task(view(c, 120.0, got, stop))
                for c, got in zip(clients, client_got, strict=True)
            ]
            # Warm-up: a client's first two segments are required at once and come over HTTP (the
            # host had them before the client was there to ask); measure the steady state after it.
            await asyncio.sleep(6.0)
            origin_before = origin.statistics().segment_bytes_sent
            loaded_before = sum(x.statistics().total_bytes for x in (*hosts, *clients))
            await asyncio.sleep(14.0)
            origin_share = (origin.statistics().segment_bytes_sent - origin_before) / (
                sum(x.statistics().total_bytes for x in (*hosts, *clients)) - loaded_before
            )
            served = [{p for p, n in h.statistics().uploaded_bytes_by_peer.items() if n > 0} for h in hosts]
            print(f"origin share {origin_share:.3f}; clients per host {[len(x) for x in served]}")

            # A host leaves: its two clients are back on HTTP at once and keep playing.
            leaving = hosts[0]
            orphan_ids = tracker.host_client_tree(info_hash)[leaving.peer_id]
            orphans = [c for c in clients if c.peer_id in orphan_ids]
            assert len(orphans) == 2
            host_views[0].cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await host_views[0]
            await leaving.aclose()
            http_before = [o.statistics().http_segments for o in orphans]
            await wait_until(
                lambda: all(o.statistics().peers_connected == 0 for o in orphans),
                what=lambda: [o.statistics() for o in orphans],
            )
            # Longer than the 8 s forward buffer: the orphans can only keep playing by loading over HTTP.
            await asyncio.sleep(12.0)
            stop.set()
            reports = await asyncio.wait_for(asyncio.gather(*client_views), timeout=10)
            for task in host_views[1:]:
                task.cancel()
            await asyncio.gather(*host_views[1:], return_exceptions=True)
            stats = [x.statistics() for x in (*hosts, *clients)]

    client_ids = {c.peer_id.hex() for c in clients}
    host_ids = {h.peer_id.hex() for h in hosts}
    # The tree: no host serves more than 2 clients, hosts never serve hosts, clients serve no one.
    assert all(len(s) <= 2 and s <= client_ids for s in served), served
    assert sum(len(s) for s in served) == 6, served
    assert all(s.p2p_uploaded_bytes == 0 for s in stats[3:]), [s.p2p_uploaded_bytes for s in stats[3:]]
    assert all(s.p2p_bytes == 0 for s in stats[:3]) and not host_ids & set().union(*served)
    # OvenMediaEngine's "two-thirds offload": the origin serves about one third.
    assert 0.2 <= origin_share <= 0.45, origin_share
    # Zero stalls anywhere, bytes verified, and the orphans kept playing after their host left.
    for got in (*host_got, *client_got):
        check_bytes(got)
    assert [s.stalls for s in stats] == [0] * 9, [s.stalls for s in stats]
    assert [r.stalls for r in reports] == [0] * 6, reports
    played = [r.played for r in reports]
    for orphan, before in zip(orphans, http_before, strict=True):
        index = clients.index(orphan)
        assert stats[3 + index].http_segments >= before + 2  # back on HTTP
        assert played[index] >= max(played) - 1.0, played  # kept playing like the others


async def test_a_client_whose_host_leaves_attaches_to_another_vacant_host(
    loopback: None, tracker: TrackerServer
) -> None:
    with OriginServer(ROOT, live=LiveSettings(window_segments=10)) as origin:
        url = origin.url_for("live/master.m3u8")
        async with (
            open_loader(url, config=tree_config(tracker.url, HOST), rendition="v0", seed=1) as first,
            open_loader(url, config=tree_config(tracker.url, HOST), rendition="v0", seed=2) as second,
        ):
            first_view = asyncio.create_task(view(first, 40.0, []))
            second_view = asyncio.create_task(view(second, 40.0, []))
            async with open_loader(
                url, config=tree_config(tracker.url, CLIENT), rendition="v0", seed=3
            ) as client:
                info_hash = client.info_hash()
                cid = client.peer_id
                await wait_until(
                    lambda: client.statistics().peers_connected == 1,
                    what=lambda: tracker.host_client_tree(info_hash),
                )
                tree = tracker.host_client_tree(info_hash)
                old_host = next(h for h, cs in tree.items() if cid in cs)
                leaving, staying = (first, second) if old_host == first.peer_id else (second, first)
                got: list[LoadedSegment] = []
                watching = asyncio.create_task(view(client, 40.0, got))
                (first_view if leaving is first else second_view).cancel()
                await leaving.aclose()
                # Back on HTTP at once, then the tracker's notice (and the lost link) make it announce
                # again: it is introduced to the vacant host and loads from it.
                await wait_until(
                    lambda: cid in tracker.host_client_tree(info_hash).get(staying.peer_id, ()),
                    what=lambda: tracker.host_client_tree(info_hash),
                )
                await wait_until(
                    lambda: client.statistics().peers_connected == 1 and client.statistics().p2p_bytes > 0,
                    20.0,
                    what=lambda: client.statistics(),
                )
                assert staying.statistics().uploaded_bytes_by_peer.get(cid.hex(), 0) > 0
                assert tracker.statistics().tree_reattach_notices >= 1
                watching.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await watching
                assert client.statistics().stalls == 0
                check_bytes(got)
            for task in (first_view, second_view):
                task.cancel()
            await asyncio.gather(first_view, second_view, return_exceptions=True)


async def test_with_a_plain_tracker_the_peers_enforce_the_tree(
    loopback: None, node_tracker: NodeTracker
) -> None:
    """npm bittorrent-tracker relays offers at random and knows nothing of roles: the host admits two
    clients and refuses the third; clients never upload."""
    with OriginServer(ROOT, live=LiveSettings(window_segments=10)) as origin:
        url = origin.url_for("live/master.m3u8")
        async with contextlib.AsyncExitStack() as stack:
            host = await stack.enter_async_context(
                open_loader(url, config=tree_config(node_tracker.url, HOST), rendition="v0", seed=31)
            )
            host_view = asyncio.create_task(view(host, 40.0, []))
            await asyncio.sleep(1.0)  # the host is in the swarm before the clients' offers go out
            clients = [
                await stack.enter_async_context(
                    open_loader(
                        url, config=tree_config(node_tracker.url, CLIENT), rendition="v0", seed=40 + i
                    )
                )
                for i in range(3)
            ]
            max_host_links = 0

            def two_attached() -> bool:
                nonlocal max_host_links
                max_host_links = max(max_host_links, host.statistics().peers_connected)
                return sum(c.statistics().peers_connected for c in clients) == 2

            await wait_until(
                two_attached, 20.0, what=lambda: [c.statistics().peers_connected for c in clients]
            )
            got: list[list[LoadedSegment]] = [[] for _ in clients]
            views = [asyncio.create_task(view(c, 10.0, g)) for c, g in zip(clients, got, strict=True)]
            for _ in range(100):  # 10 s of play, sampling the host's links
                max_host_links = max(max_host_links, host.statistics().peers_connected)
                await asyncio.sleep(0.1)
            reports = await asyncio.wait_for(asyncio.gather(*views), timeout=20)
            host_view.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await host_view
            stats = [c.statistics() for c in clients]
            host_stats = host.statistics()

    assert max_host_links == 2, max_host_links
    attached = [s for s in stats if s.peers_connected == 1]
    alone = [s for s in stats if s.peers_connected == 0]
    assert len(attached) == 2 and len(alone) == 1, stats
    assert all(s.p2p_bytes > 0 for s in attached), attached
    assert alone[0].p2p_bytes == 0
    assert all(s.p2p_uploaded_bytes == 0 for s in stats)
    assert set(host_stats.uploaded_bytes_by_peer) <= {c.peer_id.hex() for c in clients}
    assert len(host_stats.uploaded_bytes_by_peer) == 2
    assert [r.stalls for r in reports] == [0, 0, 0]
    for g in got:
        check_bytes(g)
