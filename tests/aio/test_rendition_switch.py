"""Renditions and swarms over real WebRTC on 127.0.0.1: one swarm per rendition, and a switch that
keeps seeding the old swarm for ``rendition_linger`` seconds before leaving it."""

from __future__ import annotations

import asyncio
import contextlib

import pytest

from p2ploader import LoaderConfig, open_loader, play
from p2ploader.aio.loader import LoadedSegment
from p2ploader.sample import sample_path, vod_segment_bytes
from p2ploader.testing.origin import LiveSettings, OriginServer
from p2ploader.testing.wait import wait_until
from p2ploader.tracker import TrackerServer

pytestmark = [pytest.mark.anyio, pytest.mark.e2e]

ROOT = sample_path("ts")
WANT = {"v0": vod_segment_bytes(ROOT / "240p/index.m3u8"), "v1": vod_segment_bytes(ROOT / "360p/index.m3u8")}
LINGER = 4.0


def config(tracker_url: str) -> LoaderConfig:
    return LoaderConfig(
        tracker_announce=(tracker_url,),
        rtc_config={"iceServers": []},
        http_retry_backoff=0.05,
        live_refresh_interval=0.5,
        rendition_linger=LINGER,
    )


def check_bytes(segments: list[LoadedSegment]) -> None:
    assert segments
    for loaded in segments:
        want = WANT[loaded.segment.id.rendition]
        assert loaded.data == want[loaded.segment.id.sequence % len(want)], loaded.segment.id


async def test_a_switch_keeps_seeding_the_old_swarm_then_leaves_it(
    loopback: None, tracker: TrackerServer
) -> None:
    with OriginServer(ROOT, live=LiveSettings(window_segments=10)) as origin:
        url = origin.url_for("live/master.m3u8")
        cfg = config(tracker.url)
        async with (
            open_loader(url, config=cfg, rendition="v0", seed=1) as switcher,
            open_loader(url, config=cfg, rendition="v0", seed=2) as stayer,
            open_loader(url, config=cfg, rendition="v1", seed=3) as other,
        ):
            old_hash, new_hash = switcher.info_hash("v0"), switcher.info_hash("v1")
            sid, bid, oid = switcher.peer_id, stayer.peer_id, other.peer_id
            # One swarm per rendition: the v1 viewer is never introduced to the v0 viewers. The v1
            # viewer's first announce may reach the tracker after the v0 pair has connected, so
            # the wait covers it too.
            await wait_until(
                lambda: (
                    switcher.statistics().peers_connected == 1
                    and stayer.statistics().peers_connected == 1
                    and tracker.peer_ids(new_hash) == {oid}
                ),
                what=lambda: [switcher.statistics(), stayer.statistics(), tracker.peer_ids(new_hash)],
            )
            assert tracker.peer_ids(old_hash) == {sid, bid}
            assert other.statistics().peers_connected == 0

            switcher_got: list[LoadedSegment] = []
            other_got: list[LoadedSegment] = []
            switcher_view = asyncio.create_task(
                play(switcher, duration=40.0, forward_buffer=8.0, tick=0.1, on_segment=switcher_got.append)
            )
            other_view = asyncio.create_task(
                play(other, duration=40.0, forward_buffer=8.0, tick=0.1, on_segment=other_got.append)
            )
            await asyncio.sleep(5.0)  # the switcher buffers the v0 live edge

            await switcher.select_rendition("v1")
            switched_at = asyncio.get_running_loop().time()
            assert switcher.rendition == "v1" and switcher.lingering_renditions == ("v0",)
            uploaded_to_stayer = switcher.statistics().uploaded_bytes_by_peer.get(bid.hex(), 0)
            # The stayer starts watching v0 now, a little behind live: it wants segments that the
            # switcher still holds and seeds from the swarm it switched away from.
            stayer_got: list[LoadedSegment] = []
            stayer_view = asyncio.create_task(
                play(
                    stayer,
                    duration=LINGER + 6.0,
                    forward_buffer=8.0,
                    tick=0.1,
                    live_start_distance=6,
                    on_segment=stayer_got.append,
                )
            )
            # The new swarm: the switcher meets the v1 viewer there.
            await wait_until(
                lambda: (
                    (
                        sid in tracker.peer_ids(new_hash)
                        and oid.hex() in switcher.statistics().uploaded_bytes_by_peer
                    )
                    or other.statistics().peers_connected == 1
                ),
                what=lambda: other.statistics(),
            )
            await wait_until(
                lambda: switcher.statistics().uploaded_bytes_by_peer.get(bid.hex(), 0) > uploaded_to_stayer,
                LINGER,
                what=lambda: [switcher.statistics(), stayer.statistics()],
            )
            seeded_at = asyncio.get_running_loop().time()
            assert seeded_at - switched_at < LINGER
            assert sid in tracker.peer_ids(old_hash)  # still announcing in the old swarm

            # After the linger time the old swarm is left: tracker, link and task all gone.
            await wait_until(
                lambda: (
                    not switcher.lingering_renditions
                    and sid not in tracker.peer_ids(old_hash)
                    and stayer.statistics().peers_connected == 0
                ),
                LINGER + 5.0,
                what=lambda: (switcher.lingering_renditions, tracker.peer_ids(old_hash), stayer.statistics()),
            )
            left_at = asyncio.get_running_loop().time()
            assert left_at - switched_at >= LINGER - 0.1
            assert sid in tracker.peer_ids(new_hash)
            stayer_report = await asyncio.wait_for(stayer_view, timeout=30)
            for task in (switcher_view, other_view):
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            switcher_stats, stayer_stats, other_stats = (x.statistics() for x in (switcher, stayer, other))

    assert stayer_stats.p2p_bytes > 0 and stayer_report.stalls == 0
    assert switcher_stats.stalls == 0 and other_stats.stalls == 0
    # Different renditions never shared: the stayer (v0) and the v1 viewer exchanged nothing.
    assert oid.hex() not in stayer_stats.uploaded_bytes_by_peer
    assert bid.hex() not in other_stats.uploaded_bytes_by_peer
    assert {s.segment.id.rendition for s in stayer_got} == {"v0"}
    assert {s.segment.id.rendition for s in other_got} == {"v1"}
    assert {s.segment.id.rendition for s in switcher_got} == {"v0", "v1"}
    for got in (switcher_got, stayer_got, other_got):
        check_bytes(got)


async def test_switching_back_rejoins_one_swarm_and_linger_zero_leaves_at_once(
    loopback: None, tracker: TrackerServer
) -> None:
    with OriginServer(ROOT, live=LiveSettings(window_segments=10)) as origin:
        url = origin.url_for("live/master.m3u8")
        async with open_loader(url, config=config(tracker.url), rendition="v0", seed=5) as loader:
            pid = loader.peer_id
            await wait_until(
                lambda: pid in tracker.peer_ids(loader.info_hash("v0")), what=lambda: "no announce"
            )
            await loader.select_rendition("v1")
            assert loader.lingering_renditions == ("v0",)
            await loader.select_rendition("v0")  # back: the lingering v0 swarm is replaced, v1 lingers
            assert loader.lingering_renditions == ("v1",)
            await wait_until(
                lambda: pid in tracker.peer_ids(loader.info_hash("v0")), what=lambda: "no re-announce"
            )
        async with open_loader(
            url, config=config(tracker.url).evolve(rendition_linger=0), rendition="v0", seed=6
        ) as loader:
            pid = loader.peer_id
            await wait_until(
                lambda: pid in tracker.peer_ids(loader.info_hash("v0")), what=lambda: "no announce"
            )
            await loader.select_rendition("v1")
            assert loader.lingering_renditions == ()
            await wait_until(
                lambda: pid not in tracker.peer_ids(loader.info_hash("v0")), what=lambda: "still in v0"
            )
