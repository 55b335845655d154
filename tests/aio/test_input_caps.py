"""Size caps on what the loader reads whole: playlists, decryption keys and init sections.

An endless body was read to 191 MB and a 1M-segment playlist cost 537 MB and a minute before these
caps. Reading now stops at the cap, whatever ``Content-Length`` says, with a typed error naming the
URL and the cap. The unit tests use respx; the real-socket ones a tiny raw HTTP server (an endless
body, a ``Content-Length`` that lies) and the real local origin, with the default caps.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
import respx

from p2ploader import LoaderConfig, open_loader
from p2ploader.aio.http import fetch_bytes
from p2ploader.aio.loader import MAX_KEY_BYTES, HybridLoader
from p2ploader.core.retries import FetchRetryPolicy
from p2ploader.core.segments import ByteRange, InitSection, KeyInfo, Segment, SegmentId
from p2ploader.errors import HttpStatusError, PlaylistError, PlaylistTooLargeError, ResponseTooLargeError
from p2ploader.testing.origin import OriginServer

pytestmark = pytest.mark.anyio

URL = "http://origin.test/res"
# Retries allowed, none taken: a body over its cap is not a network failure.
RETRY = FetchRetryPolicy(retries=2, backoff=0.0)
MIB = 1024 * 1024


class Counting:
    """A streamed body of ``chunk``-byte pieces (``total`` bytes, or endless), counting what was
    taken from it."""

    def __init__(self, chunk: int = 4096, total: int | None = None) -> None:
        self.chunk, self.total, self.taken = chunk, total, 0

    async def __aiter__(self) -> AsyncIterator[bytes]:
        while self.total is None or self.taken < self.total:
            piece = self.chunk if self.total is None else min(self.chunk, self.total - self.taken)
            self.taken += piece
            yield b"x" * piece


# -- fetch_bytes, against respx ---------------------------------------------------------------------


@respx.mock
async def test_an_endless_body_is_read_to_the_cap_and_no_further() -> None:
    body = Counting()
    route = respx.get(URL).mock(return_value=httpx.Response(200, content=body))
    async with httpx.AsyncClient() as client:
        with pytest.raises(ResponseTooLargeError) as info:
            await fetch_bytes(client, URL, max_bytes=64 * 1024, what="key", retry=RETRY)
    assert route.call_count == 1  # a cap is final: not asked again, though retries are allowed
    assert info.value.url == URL and info.value.limit == 64 * 1024 and info.value.what == "key"
    assert "65536 bytes" in str(info.value) and URL in str(info.value)
    assert body.taken <= 64 * 1024 + body.chunk


@respx.mock
async def test_a_content_length_over_the_cap_is_refused_before_reading() -> None:
    body = Counting(total=10 * MIB)
    respx.get(URL).mock(
        return_value=httpx.Response(200, headers={"Content-Length": str(10 * MIB)}, content=body)
    )
    async with httpx.AsyncClient() as client:
        with pytest.raises(ResponseTooLargeError):
            await fetch_bytes(client, URL, max_bytes=MIB, what="init section", retry=RETRY)
    assert body.taken <= body.chunk  # at most what httpx pre-reads with the headers


@respx.mock
async def test_a_body_at_the_cap_is_returned_whole() -> None:
    respx.get(URL).mock(return_value=httpx.Response(200, content=Counting(total=4096 * 3)))
    async with httpx.AsyncClient() as client:
        assert await fetch_bytes(client, URL, max_bytes=4096 * 3, what="key", retry=RETRY) == b"x" * (
            4096 * 3
        )


@respx.mock
async def test_an_origin_ignoring_range_is_read_to_the_range_end_only() -> None:
    body = Counting()  # endless: an origin that ignores Range and streams a huge file
    respx.get(URL).mock(return_value=httpx.Response(200, content=body))
    async with httpx.AsyncClient() as client:
        data = await fetch_bytes(
            client,
            URL,
            max_bytes=MIB,
            what="init section",
            retry=RETRY,
            byte_range=ByteRange(offset=10_000, length=2000),
        )
    assert data == b"x" * 2000
    assert body.taken <= 12_000 + body.chunk


@respx.mock
async def test_a_byte_range_beyond_the_cap_is_refused() -> None:
    body = Counting()
    respx.get(URL).mock(return_value=httpx.Response(200, content=body))
    async with httpx.AsyncClient() as client:
        with pytest.raises(ResponseTooLargeError):
            await fetch_bytes(
                client,
                URL,
                max_bytes=MIB,
                what="init section",
                retry=RETRY,
                byte_range=ByteRange(offset=MIB, length=10),
            )
    assert body.taken <= body.chunk


@respx.mock
@pytest.mark.parametrize(("method", "size"), [("AES-128", 15), ("AES-128", 17), ("SAMPLE-AES", 32)])
async def test_an_aes_key_must_be_16_bytes(method: str, size: int) -> None:
    respx.get(URL).mock(return_value=httpx.Response(200, content=b"k" * size))
    segment = Segment(
        id=SegmentId("v", 0), url="http://origin.test/s.ts", duration=2.0, key=KeyInfo(method=method, url=URL)
    )
    loader = HybridLoader("http://origin.test/master.m3u8", config=LoaderConfig(use_p2p=False))
    try:
        with pytest.raises(HttpStatusError) as info:
            await loader.fetch_key(segment)
        assert "16 bytes" in str(info.value) and info.value.url == URL
    finally:
        await loader.aclose()


@respx.mock
async def test_a_key_is_capped_at_one_kib() -> None:
    body = Counting(chunk=256)
    respx.get(URL).mock(return_value=httpx.Response(200, content=body))
    segment = Segment(
        id=SegmentId("v", 0),
        url="http://origin.test/s.ts",
        duration=2.0,
        key=KeyInfo(method="SAMPLE-AES-CTR", url=URL),
    )
    loader = HybridLoader("http://origin.test/master.m3u8", config=LoaderConfig(use_p2p=False))
    try:
        with pytest.raises(ResponseTooLargeError) as info:
            await loader.fetch_key(segment)
        assert info.value.limit == MAX_KEY_BYTES == 1024
        assert body.taken <= MAX_KEY_BYTES + body.chunk
    finally:
        await loader.aclose()


# -- real sockets -----------------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def raw_server(*, content_length: int | None) -> AsyncIterator[tuple[str, list[int]]]:
    """An HTTP/1.1 server on 127.0.0.1 answering every GET with an endless body of ``x``s: chunked, or
    announced as ``content_length`` bytes (a lie). Yields its URL and a list that gets the bytes
    written per connection once the client hung up."""
    written: list[int] = []

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        sent = 0
        try:
            await reader.readuntil(b"\r\n\r\n")
            framing = (
                f"Content-Length: {content_length}"
                if content_length is not None
                else "Transfer-Encoding: chunked"
            )
            writer.write(f"HTTP/1.1 200 OK\r\n{framing}\r\n\r\n".encode())
            piece = b"x" * 65536
            frame = b"%x\r\n%s\r\n" % (len(piece), piece) if content_length is None else piece
            while True:
                writer.write(frame)
                sent += len(piece)
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            written.append(sent)
            writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}/master.m3u8", written
    finally:
        server.close()
        await server.wait_closed()


async def test_a_content_length_that_lies_small_is_not_read_past() -> None:
    # The server announces 100 bytes and streams forever: httpx reads the 100 and stops.
    async with raw_server(content_length=100) as (url, _):
        with pytest.raises(PlaylistError) as info:
            async with open_loader(url, config=LoaderConfig(use_p2p=False)):
                pass
    assert not isinstance(info.value, PlaylistTooLargeError)  # 100 x's: not a playlist


async def test_a_content_length_over_the_cap_is_refused_at_the_headers() -> None:
    async with raw_server(content_length=10**12) as (url, _):
        with pytest.raises(PlaylistTooLargeError) as info:
            async with open_loader(url, config=LoaderConfig(use_p2p=False, max_playlist_bytes=MIB)):
                pass
    assert (info.value.limit, info.value.unit) == (MIB, "bytes")


async def test_an_endless_playlist_stops_at_its_cap() -> None:
    async with raw_server(content_length=None) as (url, written):
        with pytest.raises(PlaylistTooLargeError) as info:
            async with open_loader(url, config=LoaderConfig(use_p2p=False)):
                pass
        for _ in range(200):
            if written:
                break
            await asyncio.sleep(0.02)
    assert (info.value.limit, info.value.unit, info.value.url) == (16 * MIB, "bytes", url)
    assert "16777216 bytes" in str(info.value)
    assert written and written[0] < 16 * MIB + 16 * MIB  # the cap plus at most the socket buffers


def playlist_with(segments: int) -> str:
    lines = ["#EXTM3U", "#EXT-X-TARGETDURATION:2", "#EXT-X-MEDIA-SEQUENCE:0"]
    for i in range(segments):
        lines += ["#EXTINF:2.0,", f"s{i}.ts"]
    return "\n".join([*lines, "#EXT-X-ENDLIST", ""])


async def test_a_playlist_over_the_default_segment_cap_is_refused_before_parsing(tmp_path: Path) -> None:
    (tmp_path / "huge.m3u8").write_text(playlist_with(50_001))
    with OriginServer(tmp_path) as origin:
        loop = asyncio.get_running_loop()
        started = loop.time()
        with pytest.raises(PlaylistTooLargeError) as info:
            async with open_loader(origin.url_for("huge.m3u8"), config=LoaderConfig(use_p2p=False)):
                pass
        elapsed = loop.time() - started
    assert (info.value.limit, info.value.unit) == (50_000, "segments")
    assert elapsed < 3.0  # parsing 50,001 segments takes ~6 s here; counting them, milliseconds


async def test_the_segment_cap_counts_segments(tmp_path: Path) -> None:
    (tmp_path / "ten.m3u8").write_text(playlist_with(10))
    (tmp_path / "eleven.m3u8").write_text(playlist_with(11))
    config = LoaderConfig(use_p2p=False, max_playlist_segments=10)
    with OriginServer(tmp_path) as origin:
        async with open_loader(origin.url_for("ten.m3u8"), config=config) as loader:
            assert len(loader.playlist.segments) == 10
        with pytest.raises(PlaylistTooLargeError):
            async with open_loader(origin.url_for("eleven.m3u8"), config=config):
                pass


async def test_an_endless_init_section_stops_at_the_default_cap() -> None:
    async with raw_server(content_length=None) as (url, _):
        init = InitSection(url=url)
        segment = Segment(
            id=SegmentId("v", 0), url="http://127.0.0.1:9/s.m4s", duration=2.0, init_section=init
        )
        loader = HybridLoader("http://127.0.0.1:9/master.m3u8", config=LoaderConfig(use_p2p=False))
        try:
            with pytest.raises(ResponseTooLargeError) as info:
                await loader.fetch_init_section(segment)
        finally:
            await loader.aclose()
    assert (info.value.limit, info.value.what, info.value.url) == (16 * MIB, "init section", url)
