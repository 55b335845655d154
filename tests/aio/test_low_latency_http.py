"""LowLatencyStream over real sockets and real httpx, against a minimal LL-HLS origin.

The origin here (an asyncio HTTP/1.1 server) publishes a part every ``PART_S`` seconds of real
time, holds blocking playlist reloads (``_HLS_msn``/``_HLS_part``) and preload-hint GETs until what
they ask for is published, lists the parts of the last three segments, and ends the stream
(EXT-X-ENDLIST) after a few live segments. It records every request, so the tests can tell what the
client asked for and when.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import attrs
import httpx
import pytest

from p2ploader import LoaderConfig, open_loader
from p2ploader.aio.ll_player import play_low_latency
from p2ploader.aio.low_latency import LowLatencyStream, open_low_latency_stream
from p2ploader.core.ll_follower import LowLatencyItem
from p2ploader.errors import HoldBackError, SegmentUnavailableError

PART_S = 0.25
PARTS = 4  # per segment
SEGMENT_S = PART_S * PARTS
PART_HOLD_BACK = 3 * PART_S
HISTORY = 3  # complete segments when the test starts
LISTED_PART_SEGMENTS = 3  # complete segments whose parts the playlist still lists
WINDOW = 6
EPOCH = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)

pytestmark = pytest.mark.anyio


def part_bytes(msn: int, index: int) -> bytes:
    return f"<part {msn}.{index}>".encode() * 40


def playlist_text(
    published: int,
    *,
    epoch: datetime = EPOCH,
    ended: bool = False,
    blocking: bool = True,
    ranged: bool = False,
) -> str:
    """The media playlist once ``published`` parts (from part 0 of segment 0) are out: the last
    ``WINDOW`` complete segments (the parts of the last three listed), the parts of the segment in
    progress, and a preload hint for the next part (EXT-X-ENDLIST instead once ``ended``).
    ``ranged``: each part is a byte range of its segment's URI (the hint a BYTERANGE-START)."""
    complete = published // PARTS
    first = max(0, complete - WINDOW)
    control = (
        f"CAN-BLOCK-RELOAD=YES,PART-HOLD-BACK={PART_HOLD_BACK}"
        if blocking
        else f"PART-HOLD-BACK={PART_HOLD_BACK}"
    )
    lines = [
        "#EXTM3U",
        "#EXT-X-VERSION:9",
        "#EXT-X-TARGETDURATION:1",
        f"#EXT-X-SERVER-CONTROL:{control}",
        f"#EXT-X-PART-INF:PART-TARGET={PART_S}",
        f"#EXT-X-MEDIA-SEQUENCE:{first}",
        "#EXT-X-PROGRAM-DATE-TIME:"
        + (epoch + timedelta(seconds=first * SEGMENT_S)).isoformat(timespec="milliseconds"),
    ]
    for msn in range(first, complete):
        if msn >= complete - LISTED_PART_SEGMENTS:
            lines += [_part_line(msn, i, ranged=ranged) for i in range(PARTS)]
        lines += [f"#EXTINF:{SEGMENT_S},", f"s{msn}.m4s"]
    pending = published % PARTS
    lines += [_part_line(complete, i, ranged=ranged) for i in range(pending)]
    if ended:
        lines.append("#EXT-X-ENDLIST")
    elif ranged:
        start = pending * len(part_bytes(complete, 0))
        lines.append(f'#EXT-X-PRELOAD-HINT:TYPE=PART,URI="s{complete}.m4s",BYTERANGE-START={start}')
    else:
        lines.append(f'#EXT-X-PRELOAD-HINT:TYPE=PART,URI="p{complete}.{pending}.m4s"')
    return "\n".join(lines) + "\n"


def _part_line(msn: int, index: int, *, ranged: bool = False) -> str:
    if ranged:
        length = len(part_bytes(msn, 0))  # every part of a segment is as long
        where = f'URI="s{msn}.m4s",BYTERANGE="{length}@{index * length}"'
        return f"#EXT-X-PART:DURATION={PART_S},{where},INDEPENDENT=YES"
    return f'#EXT-X-PART:DURATION={PART_S},URI="p{msn}.{index}.m4s",INDEPENDENT=YES'


@attrs.define
class Seen:
    """One request the origin answered: path, query, Range header and when (loop time)."""

    path: str
    query: dict[str, list[str]]
    range: str | None
    at: float


class LowLatencyOrigin:
    """A minimal LL-HLS origin on 127.0.0.1 (see the module docstring)."""

    def __init__(
        self,
        *,
        live_segments: int = 3,
        missing: frozenset[str] = frozenset(),
        wall_dated: bool = False,
        blocking: bool = True,
        ranged: bool = False,
    ) -> None:
        self.blocking = blocking  # CAN-BLOCK-RELOAD=YES (else the directives are ignored)
        self.ranged = ranged  # parts as byte ranges of the segment's URI
        self.live_segments = live_segments
        self.wall_dated = wall_dated  # date the media with the wall clock (publication), not EPOCH
        self.epoch = EPOCH
        self.missing = missing  # paths answered 404 (a lost part)
        self.published = HISTORY * PARTS  # parts published so far, from 0.0
        self.published_at: dict[tuple[int, int], float] = {}
        self.seen: list[Seen] = []
        self.ended = False
        self._changed = asyncio.Condition()
        self._server: asyncio.Server | None = None
        self._clock: asyncio.Task[None] | None = None
        self.port = 0

    # -------------------------------------------------------------- publication

    @property
    def edge_time(self) -> float:
        """Media time (seconds) of the end of the last published part."""
        return self.published * PART_S

    def is_published(self, msn: int, index: int) -> bool:
        return msn * PARTS + index < self.published

    async def _publish(self) -> None:
        loop = asyncio.get_running_loop()
        start = loop.time()
        if self.wall_dated:
            # The live edge (the end of the history) is dated now, on the publication clock: each
            # part is published as it ends, as an encoder does.
            self.epoch = datetime.now(UTC) - timedelta(seconds=HISTORY * SEGMENT_S)
        total = (HISTORY + self.live_segments) * PARTS
        tick = 0
        while self.published < total:
            tick += 1
            await asyncio.sleep(max(0.0, start + tick * PART_S - loop.time()))
            async with self._changed:
                self.published_at[divmod(self.published, PARTS)] = loop.time()
                self.published += 1
                self.ended = self.published == total
                self._changed.notify_all()

    async def _wait_for(self, msn: int, index: int, *, limit: float) -> bool:
        """Wait until part ``index`` of ``msn`` is published (or the stream ended); False on timeout."""
        async with self._changed:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(
                    self._changed.wait_for(lambda: self.is_published(msn, index) or self.ended), limit
                )
            return self.is_published(msn, index) or self.ended

    # -------------------------------------------------------------- playlist

    def playlist(self) -> str:
        return playlist_text(
            self.published, epoch=self.epoch, ended=self.ended, blocking=self.blocking, ranged=self.ranged
        )

    # -------------------------------------------------------------- HTTP

    async def __aenter__(self) -> LowLatencyOrigin:
        self._server = await asyncio.start_server(self._connection, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        self._clock = asyncio.get_running_loop().create_task(self._publish())
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        assert self._server is not None and self._clock is not None
        self._clock.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._clock
        self._server.close()
        await self._server.wait_closed()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/live/v0.m3u8"

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                request = await reader.readline()
                if not request:
                    return
                headers: dict[str, str] = {}
                while (line := await reader.readline()) not in (b"\r\n", b"\n", b""):
                    name, _, value = line.decode("latin-1").partition(":")
                    headers[name.strip().lower()] = value.strip()
                _method, target, _version = request.decode("latin-1").split(" ", 2)
                status, body, extra = await self._answer(target, headers.get("range"))
                reason = {200: "OK", 206: "Partial Content", 404: "Not Found", 503: "Service Unavailable"}[
                    status
                ]
                head = f"HTTP/1.1 {status} {reason}\r\nContent-Length: {len(body)}\r\n{extra}\r\n"
                writer.write(head.encode() + body)
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.CancelledError):
            return  # the client went, or the origin is closing
        finally:
            writer.close()

    async def _answer(self, target: str, range_header: str | None) -> tuple[int, bytes, str]:
        status, body = await self._resource(target, range_header)
        if isinstance(body, tuple):  # a byte range: (first byte, bytes)
            first, data = body
            return status, data, f"Content-Range: bytes {first}-{first + len(data) - 1}/*\r\n"
        return status, body, ""

    async def _resource(self, target: str, range_header: str | None) -> tuple[int, bytes | tuple[int, bytes]]:
        split = urlsplit(target)
        name = split.path.rsplit("/", 1)[-1]
        query = parse_qs(split.query)
        self.seen.append(Seen(split.path, query, range_header, asyncio.get_running_loop().time()))
        if name == "v0.m3u8":
            if "_HLS_msn" in query and self.blocking:
                msn = int(query["_HLS_msn"][0])
                part = int(query.get("_HLS_part", ["0"])[0])
                if part >= PARTS:  # RFC 8216bis §6.2.5.2: that is part 0 of the next segment
                    msn, part = msn + 1, 0
                if not await self._wait_for(msn, part, limit=3 * SEGMENT_S):
                    return 503, b""
            return 200, self.playlist().encode()
        if name in self.missing:
            return 404, b""
        if name.startswith("p"):
            msn, index = (int(x) for x in name[1:].removesuffix(".m4s").split("."))
            if not self.is_published(msn, index):
                next_one = msn * PARTS + index == self.published
                if not next_one or not await self._wait_for(msn, index, limit=3 * PART_S):
                    return 404, b""  # only the next part (the preload hint) is held
            return 200, part_bytes(msn, index)
        if name.startswith("s"):
            msn = int(name[1:].removesuffix(".m4s"))
            if range_header is not None and self.ranged:
                return await self._part_range(msn, range_header)
            if (msn + 1) * PARTS > self.published:
                return 404, b""
            return 200, b"".join(part_bytes(msn, i) for i in range(PARTS))
        return 404, b""

    async def _part_range(self, msn: int, range_header: str) -> tuple[int, bytes | tuple[int, bytes]]:
        """A byte range of segment ``msn``, complete or not: held when it starts the next part; an
        open range (``bytes=N-``, a preload hint's) ends with the part it starts."""
        first_text, _, last_text = range_header.removeprefix("bytes=").partition("-")
        first, length = int(first_text), len(part_bytes(msn, 0))
        index = first // length
        if not self.is_published(msn, index):
            next_one = msn * PARTS + index == self.published
            if not next_one or not await self._wait_for(msn, index, limit=3 * PART_S):
                return 404, b""
        end = int(last_text) + 1 if last_text else (index + 1) * length
        published = b"".join(part_bytes(msn, i) for i in range(PARTS) if self.is_published(msn, i))
        return 206, (first, published[first:end])

    def media_requests(self) -> list[tuple[str, str | None]]:
        return [(s.path, s.range) for s in self.seen if not s.path.endswith(".m3u8")]

    def playlist_requests(self) -> list[Seen]:
        return [s for s in self.seen if s.path.endswith(".m3u8")]


@attrs.frozen
class Handed:
    item: LowLatencyItem
    edge_time: float  # the origin's live edge (media seconds) when the item was handed over


async def follow(stream: LowLatencyStream, origin: LowLatencyOrigin) -> list[Handed]:
    handed = []
    async with asyncio.timeout(20):
        async for item in stream.items():
            handed.append(Handed(item, origin.edge_time))
    return handed


async def collect(stream: LowLatencyStream, into: list[LowLatencyItem]) -> None:
    async with asyncio.timeout(20):
        async for item in stream.items():
            into.append(item)


def media_time(item: LowLatencyItem) -> float:
    """The origin's media time of the item's first sample."""
    index = item.part.id.index if item.part is not None else 0
    return item.segment_id.sequence * SEGMENT_S + index * PART_S


@contextlib.asynccontextmanager
async def streaming(origin: LowLatencyOrigin, **kwargs: float) -> AsyncIterator[LowLatencyStream]:
    async with httpx.AsyncClient(timeout=10.0) as client:
        stream = LowLatencyStream(origin.url, client=client, **kwargs)  # type: ignore[arg-type]
        async with stream:
            yield stream


async def test_parts_come_in_order_at_part_hold_back_over_blocking_reloads() -> None:
    async with LowLatencyOrigin(live_segments=3) as origin, streaming(origin) as stream:
        handed = await follow(stream, origin)

    labels = [str(h.item.part.id) if h.item.part else str(h.item.segment_id) for h in handed]
    # Edge 3.0 s at the start, PART-HOLD-BACK 0.75 s: part 2.1, then every part to the end.
    expected = [f"v0#{m}.{i}" for m in range(2, HISTORY + 3) for i in range(PARTS)][1:]
    assert labels == expected
    assert all(h.item.kind == "part" for h in handed)
    for h in handed:
        assert h.item.data == part_bytes(h.item.segment_id.sequence, h.item.part.id.index)  # type: ignore[union-attr]
        assert h.item.start == pytest.approx(media_time(h.item))
        assert h.item.program_date_time == EPOCH + timedelta(seconds=media_time(h.item))
        # Never further behind the live edge than PART-HOLD-BACK plus one part.
        assert h.edge_time - media_time(h.item) <= PART_HOLD_BACK + PART_S + 1e-9, h

    # Blocking reloads: every reload after the first asked for the next part.
    reloads = origin.playlist_requests()[1:]
    assert reloads and all("_HLS_msn" in s.query and "_HLS_part" in s.query for s in reloads)
    assert stream.statistics.blocking_playlist_loads == len(reloads)
    # Nothing fetched twice, and no whole segment (every segment was followed part by part).
    media = origin.media_requests()
    assert len(media) == len(set(media))
    assert not [path for path, _ in media if path.rsplit("/", 1)[-1].startswith("s")]
    # The preload hints: parts were asked for before they were published, and came with no delay.
    early = [
        s
        for s in origin.seen
        if s.path.endswith(".m4s")
        and (key := tuple(int(x) for x in s.path.rsplit("/p", 1)[-1].removesuffix(".m4s").split(".")))
        in origin.published_at
        and s.at < origin.published_at[key]  # type: ignore[index]
    ]
    assert len(early) >= 2 * PARTS  # most live parts
    assert stream.statistics.hint_fetches >= len(early)


async def test_behind_the_live_edge_whole_segments_come_first() -> None:
    async with LowLatencyOrigin(live_segments=1) as origin, streaming(origin, hold_back=2.0) as stream:
        handed = await follow(stream, origin)
    labels = [str(h.item.part.id) if h.item.part else str(h.item.segment_id) for h in handed]
    # 3.0 - 2.0: segment 1 starts at 1.0 s; segments 1 and 2 are complete: fetched whole.
    assert labels[:2] == ["v0#1", "v0#2"]
    assert labels[2:] == [f"v0#3.{i}" for i in range(PARTS)]
    assert handed[0].item.data == b"".join(part_bytes(1, i) for i in range(PARTS))
    media = origin.media_requests()
    assert len(media) == len(set(media))
    assert stream.statistics.segment_fetches == 2


async def test_a_hold_back_under_two_part_targets_stops_the_stream_with_a_typed_error() -> None:
    # 0.25 s parts: RFC 8216bis allows no PART-HOLD-BACK under 0.5 s. The stream reads its first
    # playlist, loads no media and says why through items().
    async with LowLatencyOrigin(live_segments=1) as origin, streaming(origin, hold_back=0.4) as stream:
        handed: list[LowLatencyItem] = []
        with pytest.raises(HoldBackError) as raised:
            await collect(stream, handed)
    assert (raised.value.hold_back, raised.value.minimum) == (0.4, 2 * PART_S)
    assert handed == [] and origin.media_requests() == []


async def test_a_part_that_cannot_be_fetched_is_a_typed_error() -> None:
    async with (
        LowLatencyOrigin(live_segments=1, missing=frozenset({"p2.2.m4s"})) as origin,
        streaming(origin) as stream,
    ):
        handed: list[LowLatencyItem] = []
        with pytest.raises(SegmentUnavailableError):
            await collect(stream, handed)
    assert [str(i.part.id) for i in handed if i.part] == ["v0#2.1"]  # nothing after the hole
    assert sum(1 for path, _ in origin.media_requests() if path.endswith("p2.2.m4s")) == 3  # max_attempts


async def test_the_helper_opens_and_closes_its_own_client() -> None:
    async with LowLatencyOrigin(live_segments=1) as origin, open_low_latency_stream(origin.url) as stream:
        handed = await follow(stream, origin)
    assert handed and handed[-1].item.segment_id.sequence == HISTORY


async def test_the_loader_hands_parts_of_its_rendition() -> None:
    async with (
        LowLatencyOrigin(live_segments=1) as origin,
        open_loader(origin.url, config=LoaderConfig(use_p2p=False)) as loader,
    ):
        labels = []
        async with asyncio.timeout(20):
            async for item in loader.parts():
                labels.append(str(item.part.id) if item.part else str(item.segment_id))
    assert labels == ["v0#2.1", "v0#2.2", "v0#2.3", *(f"v0#3.{i}" for i in range(PARTS))]


async def test_the_headless_player_plays_at_part_hold_back_behind_live() -> None:
    async with (
        LowLatencyOrigin(live_segments=4, wall_dated=True) as origin,
        streaming(origin) as stream,
    ):
        async with asyncio.timeout(30):
            report = await play_low_latency(stream)
    assert report.playback.stalls == 0
    assert report.parts == 3 + 4 * PARTS and report.segments == 0
    assert report.playback.played == pytest.approx(report.parts * PART_S, abs=0.2)
    assert report.latency_p50 is not None and report.latency_p95 is not None
    # Wall clock minus the date of the media played: PART-HOLD-BACK, plus the age of the live edge
    # when the first playlist was loaded (under a part), plus the time to start playing (0.25 s).
    bound = PART_HOLD_BACK + PART_S + 0.25
    assert PART_HOLD_BACK - 0.05 <= report.latency_p50 <= report.latency_p95 <= bound
    assert report.edge_distance_p95 is not None and report.edge_distance_p95 <= PART_HOLD_BACK + PART_S
    assert report.blocking_reloads >= 4 * PARTS - 1


async def test_play_low_latency_command_reports_the_latency(tmp_path: Path) -> None:
    summary_file = tmp_path / "summary.json"
    # Live for longer than the command's start and its 3 s of playing.
    async with LowLatencyOrigin(live_segments=40, wall_dated=True) as origin:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "p2ploader.app.cli",
            "play",
            origin.url,
            "--low-latency",
            "--duration",
            "3",
            "--json",
            str(summary_file),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        async with asyncio.timeout(60):
            out, err = await process.communicate()
    assert process.returncode == 0, err.decode()
    assert "at low latency over HTTP" in out.decode()
    summary = json.loads(summary_file.read_text())
    assert summary["mode"] == "low-latency"
    assert summary["stalls"] == 0 and summary["segments"] == 0 and summary["parts"] >= 2 * PARTS
    assert summary["blocking_reloads"] >= 2 * PARTS
    assert 0 < summary["latency_p95_s"] <= PART_HOLD_BACK + PART_S + 0.25  # a process start's slack


async def test_held_requests_outlast_a_short_read_timeout() -> None:
    # The origin holds blocking reloads and hinted parts up to a part (0.25 s): longer than the
    # client's 0.1 s read timeout, which a held request must not be cut by.
    async with (
        LowLatencyOrigin(live_segments=1) as origin,
        httpx.AsyncClient(timeout=httpx.Timeout(10.0, read=0.1)) as client,
        LowLatencyStream(origin.url, client=client) as stream,
    ):
        handed = await follow(stream, origin)
    assert len(handed) == 3 + PARTS
    assert stream.statistics.playlist_failures == 0
    assert stream.statistics.fetch_failures == 0


async def test_without_blocking_reload_the_playlist_is_reloaded_every_part_target() -> None:
    async with LowLatencyOrigin(live_segments=2, blocking=False) as origin, streaming(origin) as stream:
        handed = await follow(stream, origin)
    labels = [str(h.item.part.id) for h in handed if h.item.part]
    assert labels == [f"v0#{m}.{i}" for m in range(2, HISTORY + 2) for i in range(PARTS)][1:]
    reloads = origin.playlist_requests()[1:]
    assert reloads and not [s for s in reloads if s.query]  # no delivery directive
    assert stream.statistics.blocking_playlist_loads == 0
    # About one reload per part target over the 2 s of the live part (half of it when unchanged);
    # the lower bound leaves room for a loaded machine.
    assert 2 / PART_S / 2 <= len(reloads) <= 2 * 2 / PART_S + 2
    for h in handed:  # the preload hints still bring each part as it is published
        assert h.edge_time - media_time(h.item) <= PART_HOLD_BACK + PART_S + 1e-9, h


async def test_a_restarted_packager_is_followed_after_a_resync() -> None:
    # Scripted over httpx's mock transport: the playlist's media sequence goes back to 0 (a
    # packager restarted). The tracker refuses it twice; the third time the stream re-syncs.
    playlists = [
        playlist_text(14),  # segments 0-2 complete, 3.0 and 3.1 out
        *(playlist_text(7) for _ in range(3)),  # restarted: segment 0 complete, 1.0-1.2 out
        playlist_text(8, ended=True),
    ]
    served: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        name = request.url.path.rsplit("/", 1)[-1]
        served.append(name)
        if name == "v0.m3u8":
            return httpx.Response(200, text=playlists.pop(0) if len(playlists) > 1 else playlists[0])
        if name.startswith("p"):
            msn, index = (int(x) for x in name[1:].removesuffix(".m4s").split("."))
            return httpx.Response(200, content=part_bytes(msn, index))
        return httpx.Response(404)

    async with (
        httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client,
        LowLatencyStream("http://origin.test/live/v0.m3u8", client=client) as stream,
    ):
        items: list[LowLatencyItem] = []
        await collect(stream, items)
    labels = [(str(i.part.id), i.after_resync) for i in items if i.part]
    # Before: 3.5 s edge - 0.75: part 2.3; after the re-sync: 1.75 s edge - 0.75 = 1.0: part 1.0.
    assert labels == [
        ("v0#2.3", False),
        ("v0#3.0", False),
        ("v0#3.1", False),
        ("v0#1.0", True),
        ("v0#1.1", False),
        ("v0#1.2", False),
        ("v0#1.3", False),
    ]
    assert stream.statistics.resyncs == 1 and stream.statistics.playlist_failures == 3


async def test_parts_as_byte_ranges_of_the_segment_with_open_ended_hints() -> None:
    async with LowLatencyOrigin(live_segments=1, ranged=True) as origin, streaming(origin) as stream:
        handed = await follow(stream, origin)
    labels = [str(h.item.part.id) for h in handed if h.item.part]
    assert labels == ["v0#2.1", "v0#2.2", "v0#2.3", *(f"v0#3.{i}" for i in range(PARTS))]
    for h in handed:
        assert h.item.part is not None and h.item.part.byte_range is not None
        assert h.item.data == part_bytes(h.item.segment_id.sequence, h.item.part.id.index)
    media = origin.media_requests()
    assert len(media) == len(set(media))  # nothing twice
    assert all(byte_range for _, byte_range in media)  # parts only, never a whole segment
    # The hints asked from the next part's first byte to whatever the server sends (the part).
    hints = [byte_range for _, byte_range in media if byte_range and byte_range.endswith("-")]
    assert len(hints) >= PARTS - 1 and stream.statistics.hint_fetches == len(hints)
