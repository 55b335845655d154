"""The LL-HLS client against the project's own LL-HLS origin (``OriginServer(low_latency=...)``,
real ffmpeg fMP4: 2 s segments of four 0.5 s parts, a key frame at each segment start), real
sockets, real httpx, the real clock."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest

from p2ploader import LoaderConfig, open_loader
from p2ploader.aio.ll_player import play_low_latency
from p2ploader.aio.low_latency import LowLatencyStream
from p2ploader.core.ll_follower import LowLatencyItem
from p2ploader.testing.llhls import LowLatencySettings
from p2ploader.testing.origin import LiveSettings, OriginServer
from tests.ffmpeg_streams import (  # noqa: F401
    LLHLS_PART_SECONDS,
    LLHLS_SEGMENT_SECONDS,
    ffmpeg_or_skip,
    llhls_stream,
)

pytestmark = [pytest.mark.anyio, pytest.mark.e2e]

PART_HOLD_BACK = 3 * LLHLS_PART_SECONDS  # the origin's default: three part targets
PARTS = round(LLHLS_SEGMENT_SECONDS / LLHLS_PART_SECONDS)


def label(item: LowLatencyItem) -> str:
    return str(item.part.id) if item.part is not None else f"{item.segment_id}"


async def test_parts_of_the_origin_in_order_at_low_latency(llhls_stream: Path, tmp_path: Path) -> None:  # noqa: F811
    live = LiveSettings(window_segments=4, initial_segments=2, end_after=5, loop=False)
    items: list[LowLatencyItem] = []
    with OriginServer(llhls_stream, live=live, low_latency=LowLatencySettings()) as origin:
        url = origin.url_for("llhls/high/index.m3u8")
        async with httpx.AsyncClient(timeout=10.0) as client:
            async with LowLatencyStream(url, client=client) as stream:
                async with asyncio.timeout(60):
                    report = await play_low_latency(stream, on_item=items.append)
                init = await stream.init_section(items[-1])
            segment_bytes = {
                msn: (await client.get(origin.url_for(f"llhls/high/seg_{msn}.m4s"))).content
                for msn in (2, 3, 4)
            }
        served = origin.statistics().path_requests

    labels = [label(i) for i in items]
    # The edge is segment 2's start (4 s) at first; 1.5 s back is inside segment 1, whose only
    # independent part is its first: segment 1 whole, then every part as it is published.
    assert labels == ["v0#1", *(f"v0#{m}.{k}" for m in (2, 3, 4) for k in range(PARTS))]
    assert items[0].kind == "segment"
    for msn in (2, 3, 4):  # the parts of a segment are its bytes, handed once each
        assert b"".join(i.data for i in items if i.segment_id.sequence == msn) == segment_bytes[msn]
    # Each part was fetched once (by its preload hint, mostly), no whole segment but the first.
    parts_served = {path: n for path, n in served.items() if path.count(".") == 2 and path.endswith(".m4s")}
    assert len(parts_served) == 3 * PARTS and set(parts_served.values()) == {1}
    assert served.get("/llhls/high/seg_1.m4s") == 1
    assert stream.statistics.hint_fetches >= 2 * PARTS
    assert stream.statistics.blocking_playlist_loads >= 3 * PARTS - 1
    assert stream.statistics.playlist_failures == 0 and stream.statistics.fetch_failures == 0
    # Playing: loaded from segment 1's key frame, shown from PART-HOLD-BACK behind the first
    # playlist's edge, inside that segment (not from its start).
    start = stream.follower.start
    assert start is not None and start.start == pytest.approx(items[0].start)
    assert start.play_from - items[0].start >= LLHLS_PART_SECONDS - 1e-6
    # What the player got is a stream ffmpeg decodes: the init section, then the items' bytes.
    assert init is not None and all(i.init_section == items[0].init_section for i in items)
    media = tmp_path / "played.mp4"
    media.write_bytes(init + b"".join(i.data for i in items))
    ffmpeg = await asyncio.create_subprocess_exec(
        ffmpeg_or_skip(), "-v", "error", "-i", str(media), "-f", "null", "-", stderr=asyncio.subprocess.PIPE
    )
    async with asyncio.timeout(60):
        _, errors = await ffmpeg.communicate()
    assert ffmpeg.returncode == 0 and errors == b"", errors.decode()
    # No stall; behind live by PART-HOLD-BACK, plus the age of the live edge at the first load
    # (under a part) and the time to start (0.5 s); not a segment more.
    assert report.playback.stalls == 0
    assert report.latency_p50 is not None and report.latency_p95 is not None
    bound = PART_HOLD_BACK + LLHLS_PART_SECONDS + 0.5
    assert PART_HOLD_BACK <= report.latency_p50 <= report.latency_p95 <= bound


async def test_the_loader_follows_the_masters_first_variant(llhls_stream: Path) -> None:  # noqa: F811
    live = LiveSettings(window_segments=4, initial_segments=2, end_after=3, loop=False)
    with OriginServer(llhls_stream, live=live, low_latency=LowLatencySettings()) as origin:
        async with open_loader(
            origin.url_for("llhls/master.m3u8"), config=LoaderConfig(use_p2p=False)
        ) as loader:
            labels = []
            async with asyncio.timeout(60):
                async for item in loader.parts():
                    labels.append(label(item))
    assert labels == ["v0#1", *(f"v0#2.{k}" for k in range(PARTS))]
