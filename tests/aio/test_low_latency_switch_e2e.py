"""Rendition switches of a LowLatencyStream against the project's own LL-HLS origin
(``OriginServer(low_latency=...)``: two variants of real ffmpeg fMP4, ``high`` and ``low``, 2 s
segments of 0.5 s parts, rendition reports in every media playlist), real sockets, real httpx, the
real clock.

What is checked: the first load of the new rendition is the blocking reload the current playlist's
EXT-X-RENDITION-REPORT gives (the requests the client sent are recorded by an httpx hook: the
origin counts paths, not queries); the media goes on without a gap or a repeat, from the new
rendition's URIs after the switch, starting at an independent point ffmpeg decodes from with the
new init section; without a report the first load is a plain GET; a parts swarm is handed over.
"""

from __future__ import annotations

import asyncio
import itertools
import shutil
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from p2ploader import LoaderConfig, open_loader
from p2ploader.aio.ll_player import play_low_latency
from p2ploader.aio.low_latency import LowLatencyStream
from p2ploader.aio.part_swarm import PartSwarm
from p2ploader.core.ll_follower import LowLatencyItem
from p2ploader.errors import HttpStatusError, UsageError
from p2ploader.hls import Variant, parse_master
from p2ploader.testing.llhls import LowLatencySettings
from p2ploader.testing.origin import LiveSettings, OriginServer
from tests.ffmpeg_streams import LLHLS_SEGMENT_SECONDS, ffmpeg_or_skip, llhls_stream  # noqa: F401

pytestmark = [pytest.mark.anyio, pytest.mark.e2e]

LIVE = LiveSettings(window_segments=4, initial_segments=2, end_after=6, loop=False)
SWITCH_AFTER = 4  # items of the first rendition before the switch is asked for


def url_of(item: LowLatencyItem) -> str:
    if item.part is not None:
        return item.part.url
    assert item.segment is not None
    return item.segment.url


def assert_continuous(items: list[LowLatencyItem]) -> None:
    """Each item starts where the one before ended: no gap, nothing twice."""
    for before, after in itertools.pairwise(items):
        assert after.start == pytest.approx(before.end, abs=1e-3), (url_of(before), url_of(after))


class Recorder:
    """The URLs of the playlist requests the client sent, in order."""

    def __init__(self) -> None:
        self.playlists: list[str] = []

    async def __call__(self, request: httpx.Request) -> None:
        if request.url.path.endswith(".m3u8"):
            self.playlists.append(str(request.url))


async def variants_of(client: httpx.AsyncClient, url: str) -> tuple[Variant, ...]:
    response = await client.get(url)
    return parse_master(response.text, url).variants


async def play_and_switch(
    stream: LowLatencyStream, to: Variant | str, *, before_switch: list[object] | None = None
) -> list[LowLatencyItem]:
    """Every item of ``stream`` until it ends, switching to ``to`` after :data:`SWITCH_AFTER`."""
    items: list[LowLatencyItem] = []
    async with asyncio.timeout(60):
        async for item in stream.items():
            items.append(item)
            if len(items) == SWITCH_AFTER:
                if before_switch is not None:
                    assert stream.playlist is not None
                    before_switch.append(stream.playlist.rendition_reports)
                await stream.select_rendition(to)
    return items


async def test_a_switch_targets_the_report_and_the_media_goes_on(
    llhls_stream: Path,  # noqa: F811
    tmp_path: Path,
) -> None:
    recorder = Recorder()
    reports: list[object] = []
    with OriginServer(llhls_stream, live=LIVE, low_latency=LowLatencySettings()) as origin:
        async with httpx.AsyncClient(timeout=10.0, event_hooks={"request": [recorder]}) as client:
            variants = await variants_of(client, origin.url_for("llhls/master.m3u8"))
            high, low = variants
            assert "/high/" in high.url and "/low/" in low.url
            async with LowLatencyStream(
                high.url, client=client, rendition=high.rendition_id, variants=variants
            ) as stream:
                items = await play_and_switch(stream, low.rendition_id, before_switch=reports)
                switched = [i for i in items if i.segment_id.rendition == low.rendition_id]
                init = await stream.init_section(switched[0])
                assert stream.rendition == low.rendition_id and stream.url == low.url

    # (a) The first request for the new rendition carried the current playlist's report for it.
    (shown,) = reports
    assert isinstance(shown, tuple)
    (report,) = [r for r in shown if urlsplit(r.url).path == urlsplit(low.url).path]
    first_low = next(url for url in recorder.playlists if urlsplit(url).path == urlsplit(low.url).path)
    query = parse_qs(urlsplit(first_low).query)
    assert query == {"_HLS_msn": [str(report.last_msn)], "_HLS_part": [str(report.last_part)]}
    assert stream.statistics.reported_switch_loads == 1 and stream.statistics.ignored_reports == 0
    assert stream.statistics.rendition_switches == 1 and stream.statistics.switch_failures == 0

    # (b) The old rendition up to the switch point, the new one from there, on one timeline.
    assert_continuous(items)
    cut = items.index(switched[0])
    assert cut >= SWITCH_AFTER and items[cut:] == switched  # never back to the old one
    assert all("/llhls/high/" in url_of(i) for i in items[:cut])
    assert all("/llhls/low/" in url_of(i) for i in switched)
    assert [i.after_switch for i in items] == [i is switched[0] for i in items]
    assert len(switched) >= 4  # the new rendition played on to the end of the stream
    # It took over at the first key frame (one a segment here) after the switch was asked for,
    # not a segment later: the old rendition's parts waited for the new playlist at each boundary.
    asked_at = items[SWITCH_AFTER - 1].end
    assert 0 <= switched[0].start - asked_at <= LLHLS_SEGMENT_SECONDS + 1e-3
    first = switched[0]
    assert first.kind == "segment" or (
        first.part is not None and (first.part.independent or first.part.id.index == 0)
    )
    assert first.init_section is not None and first.init_section.url.endswith("/low/init.mp4")
    assert items[0].init_section is not None and items[0].init_section != first.init_section
    # The new rendition's media decodes from its first item on, with its own init section.
    assert init is not None
    media = tmp_path / "switched.mp4"
    media.write_bytes(init + b"".join(i.data for i in switched))
    ffmpeg = await asyncio.create_subprocess_exec(
        ffmpeg_or_skip(), "-v", "error", "-i", str(media), "-f", "null", "-", stderr=asyncio.subprocess.PIPE
    )
    async with asyncio.timeout(60):
        _, errors = await ffmpeg.communicate()
    assert ffmpeg.returncode == 0 and errors == b"", errors.decode()


async def test_without_a_report_the_first_load_is_plain(
    llhls_stream: Path,  # noqa: F811
    tmp_path: Path,
) -> None:
    # The same stream without its master playlist: the origin reports the renditions a master
    # lists together, so these playlists carry no EXT-X-RENDITION-REPORT.
    root = tmp_path / "stream"
    shutil.copytree(llhls_stream, root, ignore=shutil.ignore_patterns("master.m3u8"))
    recorder = Recorder()
    with OriginServer(root, live=LIVE, low_latency=LowLatencySettings()) as origin:
        high_url, low_url = origin.url_for("llhls/high/index.m3u8"), origin.url_for("llhls/low/index.m3u8")
        low = Variant(index=1, rendition_id="v1", url=low_url, bandwidth=160_000)
        async with (
            httpx.AsyncClient(timeout=10.0, event_hooks={"request": [recorder]}) as client,
            LowLatencyStream(high_url, client=client) as stream,
        ):
            items = await play_and_switch(stream, low)
            assert stream.playlist is not None and stream.playlist.rendition_reports == ()
    first_low = next(url for url in recorder.playlists if urlsplit(url).path == urlsplit(low_url).path)
    assert urlsplit(first_low).query == ""  # a plain GET
    assert stream.statistics.reported_switch_loads == 0 and stream.statistics.rendition_switches == 1
    assert_continuous(items)
    cut = next(k for k, i in enumerate(items) if i.segment_id.rendition == "v1")
    assert all("/llhls/high/" in url_of(i) for i in items[:cut])
    assert cut < len(items) - 1 and all("/llhls/low/" in url_of(i) for i in items[cut:])


class Recorded(PartSwarm):
    """A parts swarm alone (no peer) that says when it was closed."""

    closed = False

    async def aclose(self) -> None:
        self.closed = True
        await super().aclose()


async def test_the_loader_switches_and_hands_the_parts_swarm_over(llhls_stream: Path) -> None:  # noqa: F811
    made: list[Recorded] = []

    def swarm_for(client: httpx.AsyncClient, variant: Variant) -> Recorded:
        swarm = Recorded(
            client=client, config=LoaderConfig(), info_hash=bytes(20), rendition=variant.rendition_id, seed=1
        )
        made.append(swarm)
        return swarm

    with OriginServer(llhls_stream, live=LIVE, low_latency=LowLatencySettings()) as origin:
        # Through the loader: switching by rendition id, as HybridLoader.select_rendition does.
        async with open_loader(
            origin.url_for("llhls/master.m3u8"), config=LoaderConfig(use_p2p=False)
        ) as loader:
            async with loader.low_latency_stream() as stream:
                with pytest.raises(UsageError, match="no rendition 'v9'"):
                    await stream.select_rendition("v9")
                items = await play_and_switch(stream, "v1")
            assert loader.rendition == "v0"  # the loader's own (segment) rendition is not moved
        assert stream.statistics.reported_switch_loads == 1 and stream.statistics.rendition_switches == 1
        assert_continuous(items)
        assert {i.segment_id.rendition for i in items} == {"v0", "v1"}

    # With a parts swarm: the old rendition's is closed when the new one takes over, and the new
    # one's parts go through its own. (A new origin: the first one's stream has ended by now.)
    with OriginServer(llhls_stream, live=LIVE, low_latency=LowLatencySettings()) as origin:
        async with httpx.AsyncClient(timeout=10.0) as client:
            variants = await variants_of(client, origin.url_for("llhls/master.m3u8"))
            async with LowLatencyStream(
                variants[0].url,
                client=client,
                part_swarm=swarm_for(client, variants[0]),
                variants=variants,
                part_swarm_for=lambda variant: swarm_for(client, variant),
            ) as stream:
                items = await play_and_switch(stream, 1)
                assert stream.statistics.rendition_switches == 1
                old, new = made
                assert old.closed and not new.closed and stream.part_swarm is new
                assert new.started and new.joined and new.statistics().http_parts >= 1
    assert_continuous(items)


async def test_a_switch_that_cannot_load_leaves_the_stream_on_its_rendition(llhls_stream: Path) -> None:  # noqa: F811
    with OriginServer(llhls_stream, live=LIVE, low_latency=LowLatencySettings()) as origin:
        missing = Variant(
            index=2, rendition_id="v2", url=origin.url_for("llhls/none/index.m3u8"), bandwidth=1
        )
        async with httpx.AsyncClient(timeout=10.0) as client:
            variants = await variants_of(client, origin.url_for("llhls/master.m3u8"))
            async with LowLatencyStream(variants[0].url, client=client, variants=variants) as stream:
                items: list[LowLatencyItem] = []
                async with asyncio.timeout(60):
                    async for item in stream.items():
                        items.append(item)
                        if len(items) == 2:
                            with pytest.raises(HttpStatusError):
                                await stream.select_rendition(missing)
                            assert stream.pending_rendition is None
                        if len(items) == 6:
                            break
            assert stream.statistics.switch_failures == 1 and stream.statistics.rendition_switches == 0
            assert {i.segment_id.rendition for i in items} == {"v0"}
            assert_continuous(items)

            # Asked for before the first item: the new rendition starts as a stream does (its
            # hold-back), with no item marked as a switch.
            async with LowLatencyStream(variants[0].url, client=client, variants=variants) as stream:
                await stream.select_rendition("v1")
                assert stream.rendition == "v1"
                items = []
                async with asyncio.timeout(60):
                    async for item in stream.items():
                        items.append(item)
                        if len(items) == 3:
                            break
            assert {i.segment_id.rendition for i in items} == {"v1"} and not any(
                i.after_switch for i in items
            )
            assert (
                stream.follower.start is not None and stream.follower.start.play_from > items[0].start - 1e-6
            )


async def test_the_player_switches_on_schedule_without_a_stall(llhls_stream: Path) -> None:  # noqa: F811
    with OriginServer(llhls_stream, live=LIVE, low_latency=LowLatencySettings()) as origin:
        async with httpx.AsyncClient(timeout=10.0) as client:
            variants = await variants_of(client, origin.url_for("llhls/master.m3u8"))
            async with LowLatencyStream(variants[0].url, client=client, variants=variants) as stream:
                items: list[LowLatencyItem] = []
                async with asyncio.timeout(60):
                    report = await play_low_latency(stream, on_item=items.append, switches=[(2.0, "v1")])
                with pytest.raises(UsageError):  # a rendition the stream does not have is raised
                    async with asyncio.timeout(30):
                        await play_low_latency(stream, duration=5.0, switches=[(0.0, "v7")])
    assert report.rendition_switches == 1 and report.playback.stalls == 0
    assert_continuous(items)
    assert items[0].segment_id.rendition == "v0" and items[-1].segment_id.rendition == "v1"
