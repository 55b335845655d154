"""One swarm with browsers: headless Chromium running hls.js + P2P Media Loader 2.3.1 and p2ploader
loaders swap live segments both ways over WebRTC, on 127.0.0.1, through the embedded tracker and
through npm bittorrent-tracker.

The scenario forces each direction instead of hoping for it:

1. A p2ploader *seeder* loads the whole live window over HTTP and keeps up with the live edge.
   The browser opens with ``httpDownloadInitialTimeoutMs`` set, so for its first 8 s P2P Media
   Loader may not use HTTP at all: every segment it plays then comes from the seeder.
2. The seeder leaves. A p2ploader *viewer* joins in a short initial P2P mode, six segments behind
   live: the only peer holding those segments is the browser (it prefetched up to the live edge).

A second scenario plays a stream with separate audio (an EXT-X-MEDIA audio group, the ffmpeg-made
stream of :mod:`tests.ffmpeg_streams`): the seeder's audio companion and the browser meet in P2P
Media Loader's swarm for that audio track, and the browser's first audio segments come from it;
after the seeder left, a p2ploader viewer's audio companion loads audio from the browser.

Checked: the browser's engine events (onPeerConnect, onChunkDownloaded by source and peer,
onChunkUploaded), every segment on both sides equal to the origin's file (the page hashes each
one in P2P Media Loader's validation hooks), and no stall on either side.
"""

from __future__ import annotations

import asyncio
import collections
import hashlib
import os
import re
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from p2ploader import LoaderConfig, open_loader, play
from p2ploader.aio.loader import HybridLoader, LoadedSegment
from p2ploader.aio.webrtc import restrict_ice_to_loopback
from p2ploader.core import notifications as nt
from p2ploader.sample import sample_path, vod_segment_bytes
from p2ploader.testing.origin import LiveSettings, OriginServer
from p2ploader.tracker import TrackerServer
from tests.browser.harness import Browsers, BrowserSetup, PageState, StaticServer, browser_setup, page_config
from tests.ffmpeg_streams import av_stream  # noqa: F401 (the session fixture)

pytestmark = [pytest.mark.anyio, pytest.mark.e2e]

ROOT = sample_path("ts")
LEVEL = 0  # hls.js sorts levels by height: level 0 is 240p, the master's first variant "v0"
RENDITION = "v0"
WANT = vod_segment_bytes(ROOT / "240p/index.m3u8")
WANT_SHA256 = [hashlib.sha256(data).hexdigest() for data in WANT]
SMALLEST = min(len(data) for data in WANT)
SEGMENT_URL = re.compile(r"/seg_(\d+)\.ts$")

BROWSER_CORE = {
    # No HTTP for the first 8 s: what the page plays then can only come from peers (the seeder is
    # found and the window loaded within about 3 s). Later it loads new segments over HTTP, as any
    # viewer does once the seeder is gone, long before its buffer (BROWSER_HLS) runs out.
    "httpDownloadInitialTimeoutMs": 8_000,
    # Every announced segment in the live window may be fetched from peers.
    "p2pDownloadTimeWindow": 120,
}
# 16 s behind live, pinned: the engine would set 9 segments itself, but on a playlist update that
# can come after hls.js chose its start (then 3 segments, 6 s): too little buffer to bridge the
# seconds between the seeder leaving and the end of the HTTP ban.
BROWSER_HLS = {"liveSyncDurationCount": 8}


@pytest.fixture(scope="module")
def setup() -> BrowserSetup:
    found = browser_setup()
    if isinstance(found, str):
        if os.environ.get("CI"):
            pytest.fail(f"CI installs chromium and the npm packages (.ci/run), but: {found}")
        pytest.skip(f"browser interop needs chromium and npm packages: {found}")
    return found


@pytest.fixture
def loopback() -> Iterator[None]:
    with restrict_ice_to_loopback():
        yield


@pytest.fixture(params=["embedded", "bittorrent-tracker"])
async def tracker_url(request: pytest.FixtureRequest) -> AsyncIterator[str]:
    if request.param == "embedded":
        async with TrackerServer() as server:
            yield server.url
    else:
        yield request.getfixturevalue("node_tracker").url


def loader_config(tracker_url: str, **overrides: Any) -> LoaderConfig:
    return LoaderConfig(
        tracker_announce=(tracker_url,),
        rtc_config={"iceServers": []},
        live_refresh_interval=0.5,
        http_retry_backoff=0.05,
        **overrides,
    )


async def keep_seeding(seeder: HybridLoader, out: list[LoadedSegment]) -> None:
    """Load every segment of the live window, then each new one as it is published."""
    first = seeder.playlist.segments[0].id.sequence
    async for loaded in seeder.segments(start_sequence=first, skip_unavailable=True):
        out.append(loaded)


def browser_sequences(page: PageState) -> list[int]:
    """Media sequence numbers of the segments the page has loaded."""
    found = (SEGMENT_URL.search(segment["url"]) for segment in page.segments)
    return [int(match.group(1)) for match in found if match is not None]


def check_browser_segments(page: PageState) -> None:
    assert page.segments, page.summary()
    for segment in page.segments:
        match = SEGMENT_URL.search(segment["url"])
        assert match is not None, segment
        msn = int(match.group(1))
        assert segment["sha256"] == WANT_SHA256[msn % len(WANT)], (segment, page.summary())
        assert segment["size"] == len(WANT[msn % len(WANT)])


def peer_text(hex_id: str | None) -> str:
    """A peer id as P2P Media Loader prints it (our notifications carry it in hex)."""
    return bytes.fromhex(hex_id).decode("latin-1") if hex_id else ""


async def test_browser_and_p2ploader_swap_segments_both_ways(
    setup: BrowserSetup, loopback: None, tracker_url: str
) -> None:
    with (
        OriginServer(ROOT, live=LiveSettings(window_segments=10), cors=True) as origin,
        StaticServer(setup.node_modules) as static,
    ):
        url = origin.url_for("live/master.m3u8")
        async with Browsers(setup) as browsers:
            # --- 1. the browser loads from a p2ploader seeder -------------------------------------
            seeded: list[LoadedSegment] = []
            seeder = HybridLoader(url, config=loader_config(tracker_url), seed=21)
            try:
                await seeder.start(rendition=RENDITION)
                seeding = asyncio.create_task(keep_seeding(seeder, seeded))
                seeder_id = seeder.peer_id.decode()
                config = page_config(url, [tracker_url], level=LEVEL, core=BROWSER_CORE, hls=BROWSER_HLS)
                page = await browsers.open("viewer", static.page_url(config))

                def holds_the_window() -> bool:
                    # Playing, and holding every segment up to the live edge (give or take the one
                    # published since its last playlist refresh): when the seeder leaves, the
                    # browser can play on until its HTTP ban ends and can serve the viewer.
                    edge = seeder.playlist.segments[-1].id.sequence
                    return (
                        page.stat("playing", False)
                        and page.p2p_bytes_from(seeder_id) >= 4 * SMALLEST
                        and max(browser_sequences(page), default=-1) >= edge - 1
                    )

                await browsers.wait_for(
                    holds_the_window, within=30, what="the browser to load the live window from the seeder"
                )
                seeding.cancel()
                await asyncio.gather(seeding, return_exceptions=True)
            finally:
                await seeder.aclose()  # announces "stopped": the browser is now the only holder
            # Read after the seeder is gone: nothing more is in flight, and the page's figures (a
            # snapshot every 0.5 s) can only lag behind what the seeder handed to the channel.
            uploaded_by_seeder = seeder.statistics().p2p_uploaded_bytes
            assert seeder_id in [e["peerId"] for e in page.peer_events if e["event"] == "connect"]
            assert uploaded_by_seeder >= page.p2p_bytes_from(seeder_id) > 0

            # --- 2. a p2ploader viewer loads from the browser -------------------------------------
            got: list[LoadedSegment] = []
            p2p_by_peer: collections.Counter[str] = collections.Counter()

            def count(notification: nt.Notification) -> None:
                if isinstance(notification, nt.SegmentLoaded) and notification.source == "p2p":
                    p2p_by_peer[peer_text(notification.peer_id)] += notification.size

            # Six segments behind live, buffering 8 s ahead: its first segments are ones the browser
            # holds. A short initial P2P mode keeps even the first, required ones off HTTP; segments
            # published after the seeder left (nobody holds them yet) then come over HTTP in time.
            viewer_config = loader_config(
                tracker_url, http_download_initial_timeout=4.0, http_download_initial_timeout_per_segment=4.0
            )
            async with open_loader(url, config=viewer_config, rendition=RENDITION, seed=22) as viewer:
                viewer.add_listener(count)
                viewer_id = viewer.peer_id.decode()
                report = await asyncio.wait_for(
                    play(
                        viewer,
                        duration=12.0,
                        forward_buffer=8.0,
                        live_start_distance=6,
                        tick=0.1,
                        on_segment=got.append,
                    ),
                    timeout=40,
                )
                viewer_stats = viewer.statistics()
            browser_ids = [peer for peer in p2p_by_peer if peer.startswith("-PM0203-")]
            assert browser_ids, (p2p_by_peer, viewer_stats)
            from_browser = sum(p2p_by_peer[peer] for peer in browser_ids)
            assert from_browser >= 2 * SMALLEST, (p2p_by_peer, viewer_stats)
            # The page's figures are a snapshot every 0.5 s: wait for one that covers the upload.
            await browsers.wait_for(
                lambda: page.uploaded_bytes_to(viewer_id) >= from_browser,
                within=5,
                what=f"the browser's onChunkUploaded figures to show the {from_browser} B the viewer got",
            )
            final = page.stats

    print(  # shown with -s, and by pytest on a failure
        f"browser: p2p from seeder {page.p2p_bytes_from(seeder_id)} B, http {final.get('httpBytes')} B, "
        f"uploaded to viewer {page.uploaded_bytes_to(viewer_id)} B, latency {final.get('latency')}; "
        f"viewer: p2p from browser {from_browser} B of {viewer_stats.total_bytes} B, stalls {report.stalls}"
    )
    # Every segment on both sides is the origin's, and nobody stalled.
    check_browser_segments(page)
    assert {s["source"] for s in page.segments[:4]} == {"p2p"}, page.summary()
    # Its only peers were p2ploader's: the seeder, then the viewer (which announces what it loads).
    assert {load["peerId"] for load in page.loads if load["source"] == "p2p"} <= {seeder_id, viewer_id}
    for loaded in seeded + got:
        assert loaded.data == WANT[loaded.segment.id.sequence % len(WANT)], loaded.segment.id
    assert got
    assert report.stalls == 0, report
    assert final["stalls"] == 0 and final["waiting"] == 0, page.summary()
    assert not page.fatal, page.summary()


# --------------------------------------------------------------------------------------------------
# Separate audio: one more swarm, shared with the browser too

AUDIO_SEGMENT_URL = re.compile(r"/audio_en/seg_(\d+)\.ts$")


async def keep_seeding_audio(seeder: HybridLoader, out: list[LoadedSegment]) -> None:
    audio = seeder.audio
    assert audio is not None
    first = audio.playlist.segments[0].id.sequence
    async for loaded in audio.segments(start_sequence=first, skip_unavailable=True):
        out.append(loaded)


async def test_browser_and_p2ploader_share_the_audio_swarm(
    setup: BrowserSetup,
    loopback: None,
    av_stream: Path,  # noqa: F811
) -> None:
    want_audio = vod_segment_bytes(av_stream / "audio_en" / "index.m3u8")
    want_audio_sha256 = [hashlib.sha256(data).hexdigest() for data in want_audio]
    async with TrackerServer() as tracker:
        with (
            OriginServer(av_stream, live=LiveSettings(window_segments=10), cors=True) as origin,
            StaticServer(setup.node_modules) as static,
        ):
            url = origin.url_for("live/master.m3u8")
            async with Browsers(setup) as browsers:
                seeded: list[LoadedSegment] = []
                seeder = HybridLoader(url, config=loader_config(tracker.url), seed=31)
                try:
                    await seeder.start()  # the variant and its default audio, English
                    audio = seeder.audio
                    assert audio is not None and audio.rendition == "a:aud:English"
                    tasks = [
                        asyncio.create_task(keep_seeding(seeder, seeded)),
                        asyncio.create_task(keep_seeding_audio(seeder, seeded)),
                    ]
                    audio_id = audio.peer_id.decode()
                    config = page_config(url, [tracker.url], level=0, core=BROWSER_CORE, hls=BROWSER_HLS)
                    page = await browsers.open("viewer", static.page_url(config))

                    def audio_from_the_seeder() -> bool:
                        # Playing, with audio from the seeder, and holding the audio up to the live
                        # edge: once the seeder leaves, the browser is the only holder.
                        audio_loads = [
                            load
                            for load in page.loads
                            if AUDIO_SEGMENT_URL.search(load["url"]) and load["source"] == "p2p"
                        ]
                        edge = audio.playlist.segments[-1].id.sequence
                        held = [AUDIO_SEGMENT_URL.search(load["url"]) for load in page.loads]
                        newest = max((int(m.group(1)) for m in held if m is not None), default=-1)
                        return page.stat("playing", False) and len(audio_loads) >= 2 and newest >= edge - 1

                    await browsers.wait_for(
                        audio_from_the_seeder, within=30, what="the browser to load audio from the seeder"
                    )
                    for task in tasks:
                        task.cancel()
                    await asyncio.gather(*tasks, return_exceptions=True)
                    # The audio swarm is P2P Media Loader's for that track: the browser found our
                    # companion through the tracker under the info hash we compute.
                    assert audio.peer_id in tracker.peer_ids(audio.info_hash())
                    assert len(tracker.peer_ids(audio.info_hash())) == 2, page.summary()
                finally:
                    await seeder.aclose()
                by_type = seeder.statistics().by_media_type

                # --- a p2ploader viewer then loads audio from the browser -------------------------
                from_browser: collections.Counter[str] = collections.Counter()

                def count(notification: nt.Notification) -> None:
                    if (
                        isinstance(notification, nt.SegmentLoaded)
                        and notification.source == "p2p"
                        and notification.segment_id.rendition == "a:aud:English"
                    ):
                        from_browser[peer_text(notification.peer_id)] += notification.size

                viewer_config = loader_config(
                    tracker.url,
                    http_download_initial_timeout=4.0,
                    http_download_initial_timeout_per_segment=4.0,
                )
                got: list[LoadedSegment] = []
                async with open_loader(url, config=viewer_config, seed=32) as viewer:
                    viewer.add_listener(count)
                    assert viewer.audio is not None
                    viewer_audio_id = viewer.audio.peer_id.decode()
                    report = await asyncio.wait_for(
                        play(
                            viewer,
                            duration=10.0,
                            forward_buffer=8.0,
                            live_start_distance=6,
                            tick=0.1,
                            on_segment=got.append,
                        ),
                        timeout=40,
                    )
                    viewer_audio = viewer.statistics().by_media_type["audio"]
    audio_loads = [load for load in page.loads if AUDIO_SEGMENT_URL.search(load["url"])]
    print(  # shown with -s, and by pytest on a failure
        f"browser audio loads: {[(load['source'], load['size']) for load in audio_loads]}; "
        f"seeder uploaded audio {by_type['audio'].p2p_uploaded_bytes} B, "
        f"video {by_type['video'].p2p_uploaded_bytes} B"
    )
    print(f"viewer: audio from peers {dict(from_browser)}, {viewer_audio}, stalls {report.stalls}")
    # The browser's audio peers were p2ploader's audio companions: the seeder's first (all of the
    # browser's first audio segments), then maybe the viewer's.
    audio_peers = [load["peerId"] for load in audio_loads if load["source"] == "p2p"]
    assert audio_peers[:2] == [audio_id, audio_id] and set(audio_peers) <= {audio_id, viewer_audio_id}
    # The other direction: the viewer's audio companion took audio from the browser.
    assert sum(size for peer, size in from_browser.items() if peer.startswith("-PM0203-")) > 0
    assert viewer_audio.p2p_bytes > 0 and report.stalls == 0
    for loaded in got:
        if loaded.segment.id.rendition == "a:aud:English":
            assert loaded.data == want_audio[loaded.segment.id.sequence % len(want_audio)]
    assert (
        by_type["audio"].p2p_uploaded_bytes
        >= sum(load["size"] for load in audio_loads if load["peerId"] == audio_id)
        > 0
    )
    # Every audio segment the browser validated is the origin's, whoever sent it.
    audio_segments = [seg for seg in page.segments if AUDIO_SEGMENT_URL.search(seg["url"])]
    assert audio_segments, page.summary()
    for segment in audio_segments:
        match = AUDIO_SEGMENT_URL.search(segment["url"])
        assert match is not None
        assert segment["sha256"] == want_audio_sha256[int(match.group(1)) % len(want_audio)], segment
    assert not page.fatal, page.summary()
