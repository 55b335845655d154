"""The local HLS proxy against the real local origin and real players.

Every segment, key and init section a player gets through the proxy must equal the origin's bytes;
playlists are checked through p2ploader's own parser; ffmpeg plays VOD, demuxed audio and a live
stream shared with two other loaders over real WebRTC. Every wait is bounded.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import shutil
import socket
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from p2ploader import BindError, LoaderConfig, P2PLoaderError, UsageError, open_loader, play
from p2ploader.aio.loader import HybridLoader
from p2ploader.aio.webrtc import restrict_ice_to_loopback
from p2ploader.hls import MediaPlaylist, parse_master, parse_media
from p2ploader.proxy import HlsProxy, ServedSegment, open_proxy
from p2ploader.proxy.playhead import PlayheadEstimator
from p2ploader.proxy.security import HostPolicy, check_bind_host
from p2ploader.sample import sample_path, vod_segment_bytes
from p2ploader.testing.origin import LiveSettings, OriginServer
from p2ploader.tracker import TrackerServer

pytestmark = [pytest.mark.anyio, pytest.mark.e2e]

# No trackers: these tests are about HTTP delivery (and must not look up public trackers).
FAST = LoaderConfig(tracker_announce=(), http_retry_backoff=0.01, live_refresh_interval=0.1)
FFMPEG = shutil.which("ffmpeg")
needs_ffmpeg = pytest.mark.skipif(FFMPEG is None, reason="ffmpeg is not installed")


# --------------------------------------------------------------------------------------------------
# helpers


def vod_segments(root: Path, playlist_rel: str) -> list[bytes]:
    """The bytes of each segment of a VOD media playlist, read from disk."""
    return vod_segment_bytes(root / playlist_rel)


async def get(client: httpx.AsyncClient, url: str) -> httpx.Response:
    return await client.get(url, timeout=20)


async def media(client: httpx.AsyncClient, proxy: HlsProxy, token: str) -> tuple[str, MediaPlaylist]:
    url = f"{proxy.base_url}/r/{token}/index.m3u8"
    response = await get(client, url)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/vnd.apple.mpegurl"
    return response.text, parse_media(response.text, url, rendition=token)


def local_path(proxy: HlsProxy, url: str) -> str:
    assert url.startswith(proxy.base_url + "/"), url
    return url.removeprefix(proxy.base_url)


async def raw_request(port: int, head: bytes) -> tuple[int, bytes]:
    """Send bytes as they are (httpx would normalise the path) and return (status, body)."""
    reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), 5)
    try:
        writer.write(head)
        await writer.drain()
        data = await asyncio.wait_for(reader.read(), 10)  # the request says Connection: close
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()
    status_line, _, rest = data.partition(b"\r\n")
    return int(status_line.split()[1]), rest.partition(b"\r\n\r\n")[2]


async def run_ffmpeg(*args: str, limit: float = 90) -> tuple[int, bytes, bytes]:
    assert FFMPEG is not None
    proc = await asyncio.create_subprocess_exec(
        FFMPEG, *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), limit)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise
    assert proc.returncode is not None
    return proc.returncode, out, err


@contextlib.asynccontextmanager
async def vod_proxy(sample: str, **kwargs: Any) -> AsyncIterator[tuple[OriginServer, HlsProxy]]:
    with OriginServer(sample_path(sample)) as origin:
        async with open_proxy(origin.url_for("master.m3u8"), config=FAST, **kwargs) as proxy:
            yield origin, proxy


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient() as c:
        yield c


# --------------------------------------------------------------------------------------------------
# VOD: rewriting and bytes


async def test_master_playlist_points_every_variant_at_the_proxy(client: httpx.AsyncClient) -> None:
    async with vod_proxy("ts") as (origin, proxy):
        response = await get(client, proxy.url)
        assert response.status_code == 200
        assert response.headers["content-type"] == "application/vnd.apple.mpegurl"
        assert response.headers["x-content-type-options"] == "nosniff"
        assert "access-control-allow-origin" not in response.headers
        master = parse_master(response.text, proxy.url)
        origin_master = proxy.loader.master
    assert [local_path(proxy, v.url) for v in master.variants] == [
        "/r/v0/index.m3u8",
        "/r/v1/index.m3u8",
        "/r/v2/index.m3u8",
    ]
    for got, want in zip(master.variants, origin_master.variants, strict=True):
        assert (got.bandwidth, got.average_bandwidth, got.resolution, got.codecs, got.frame_rate) == (
            want.bandwidth,
            want.average_bandwidth,
            want.resolution,
            want.codecs,
            want.frame_rate,
        )
    assert str(origin.port) not in response.text


async def test_vod_media_playlist_is_rewritten(client: httpx.AsyncClient) -> None:
    async with vod_proxy("ts") as (_, proxy):
        text, playlist = await media(client, proxy, "v0")
    assert playlist.end_list and playlist.playlist_type == "VOD"
    assert (playlist.media_sequence, playlist.target_duration, playlist.discontinuity_sequence) == (0, 2, 0)
    assert [local_path(proxy, s.url) for s in playlist.segments] == [f"/r/v0/seg/{n}.ts" for n in range(10)]
    assert [s.duration for s in playlist.segments] == [2.0] * 10
    assert "BYTERANGE" not in text and "http" not in text


@pytest.mark.parametrize(
    ("sample", "token", "playlist_rel"),
    [
        ("ts", "v0", "240p/index.m3u8"),
        ("ts", "v1", "360p/index.m3u8"),
        ("ts", "v2", "480p/index.m3u8"),
        ("byterange", "v0", "index.m3u8"),
        ("fmp4", "v0", "index.m3u8"),
        ("aes", "v0", "index.m3u8"),
    ],
)
async def test_every_segment_through_the_proxy_equals_the_origin_file(
    client: httpx.AsyncClient, sample: str, token: str, playlist_rel: str
) -> None:
    root = sample_path(sample)
    want = vod_segments(root, playlist_rel)
    async with vod_proxy(sample) as (origin, proxy):
        text, playlist = await media(client, proxy, token)
        assert "BYTERANGE" not in text  # the proxy serves exactly each segment's (and init's) bytes
        got = []
        for segment in playlist.segments:
            response = await get(client, segment.url)
            assert response.status_code == 200, response.text
            expected_type = "video/mp4" if sample == "fmp4" else "video/mp2t"
            assert response.headers["content-type"] == expected_type
            got.append(response.content)
        assert got == want
        first = playlist.segments[0]
        if sample == "fmp4":
            assert first.init_section is not None and first.init_section.byte_range is None
            assert local_path(proxy, first.init_section.url) == "/r/v0/init/0.mp4"
            init = await get(client, first.init_section.url)
            assert init.status_code == 200 and init.headers["content-type"] == "video/mp4"
            assert init.content == (root / "init.mp4").read_bytes()
        if sample == "aes":
            assert first.key is not None and first.key.method == "AES-128"
            assert first.key.iv == bytes(range(15, -1, -1))  # 0x0f0e…00, re-served as written
            assert local_path(proxy, first.key.url or "") == "/r/v0/key/0"
            key = await get(client, first.key.url or "")
            assert key.status_code == 200 and key.content == (root / "key.bin").read_bytes()
            assert key.headers["content-type"] == "application/octet-stream"
            assert key.headers["cache-control"] == "no-store"
            # Fetched once from the origin over HTTP by the loader; never a cached (shareable) segment.
            assert origin.statistics().requests_for("/key.bin") == 1
        stats = proxy.statistics()
        assert stats.segments_served == len(want) and stats.segment_bytes_served == sum(map(len, want))
        assert stats.loader.cached_segments == len(want) and stats.loader.p2p_bytes == 0
        assert stats.errors == 0


async def test_range_and_head_requests_on_a_segment(client: httpx.AsyncClient) -> None:
    want = vod_segments(sample_path("ts"), "240p/index.m3u8")[3]
    async with vod_proxy("ts") as (_, proxy):
        url = f"{proxy.base_url}/r/v0/seg/3.ts"
        part = await client.get(url, headers={"Range": "bytes=100-199"})
        assert part.status_code == 206 and part.content == want[100:200]
        assert part.headers["content-range"] == f"bytes 100-199/{len(want)}"
        tail = await client.get(url, headers={"Range": "bytes=-10"})
        assert tail.status_code == 206 and tail.content == want[-10:]
        beyond = await client.get(url, headers={"Range": f"bytes={len(want)}-"})
        assert beyond.status_code == 416 and beyond.headers["content-range"] == f"bytes */{len(want)}"
        head = await client.head(url)
        assert head.status_code == 200 and head.content == b""
        assert int(head.headers["content-length"]) == len(want)


async def test_origin_failures_become_gateway_errors(client: httpx.AsyncClient) -> None:
    want = vod_segments(sample_path("aes"), "index.m3u8")
    with OriginServer(sample_path("aes")) as origin:
        # Armed before anything is loaded: the loader's own prefetches meet the same faults.
        origin.inject("seg_00002.ts", status=503, times=1)  # transient: the loader retries
        origin.inject("seg_00003.ts", status=404)  # listed, but the origin refuses it
        origin.inject("seg_00004.ts", delay=3.0)  # slower than segment_timeout
        origin.inject("key.bin", status=500)
        config = FAST.evolve(http_retries=1)
        async with open_proxy(origin.url_for("master.m3u8"), config=config, segment_timeout=1.0) as proxy:
            _, playlist = await media(client, proxy, "v0")
            assert (await get(client, playlist.segments[2].url)).content == want[2]
            failed = await get(client, playlist.segments[3].url)
            assert failed.status_code == 502 and "segment 3" in failed.text
            slow = await get(client, playlist.segments[4].url)
            assert slow.status_code == 504
            key = playlist.segments[0].key
            assert key is not None and key.url is not None
            assert (await get(client, key.url)).status_code == 502
            origin.clear_faults()
            assert (await get(client, playlist.segments[5].url)).content == want[5]
            stats = proxy.statistics()
    assert stats.errors == 3 and stats.segments_served == 2
    assert stats.position is not None


# --------------------------------------------------------------------------------------------------
# renditions


async def test_requesting_another_variant_switches_the_loader(client: httpx.AsyncClient) -> None:
    root = sample_path("ts")
    want = {
        f"v{i}": vod_segments(root, f"{name}/index.m3u8") for i, name in enumerate(["240p", "360p", "480p"])
    }
    async with vod_proxy("ts") as (_, proxy):
        assert proxy.loader.rendition == "v0"
        await media(client, proxy, "v1")
        assert proxy.loader.rendition == "v1"
        one = await get(client, f"{proxy.base_url}/r/v1/seg/4.ts")
        assert one.content == want["v1"][4]
        two = await get(client, f"{proxy.base_url}/r/v2/seg/5.ts")  # a segment request switches too
        assert two.content == want["v2"][5] and proxy.loader.rendition == "v2"
        # Interleaved concurrent requests for two variants (ffmpeg -map 0 does this): none is dropped.
        urls = [(t, n) for n in range(10) for t in ("v0", "v2")]
        responses = await asyncio.wait_for(
            asyncio.gather(*(get(client, f"{proxy.base_url}/r/{t}/seg/{n}.ts") for t, n in urls)), 30
        )
        assert [r.status_code for r in responses] == [200] * len(urls)
        assert [r.content for r in responses] == [want[t][n] for t, n in urls]
        assert proxy.statistics().rendition_switches >= 3


async def test_a_pinned_rendition_is_the_only_one(client: httpx.AsyncClient) -> None:
    async with vod_proxy("ts", rendition="v1", pin_rendition=True) as (_, proxy):
        master = parse_master((await get(client, proxy.url)).text, proxy.url)
        assert [local_path(proxy, v.url) for v in master.variants] == ["/r/v1/index.m3u8"]
        assert (await get(client, f"{proxy.base_url}/r/v0/index.m3u8")).status_code == 404
        assert (await get(client, f"{proxy.base_url}/r/v2/seg/0.ts")).status_code == 404
        assert proxy.loader.rendition == "v1" and proxy.statistics().rendition_switches == 0


def _copy_ts_sample(root: Path) -> None:
    for name in ("240p", "360p"):
        shutil.copytree(sample_path("ts") / name, root / name)


async def test_an_audio_rendition_is_served_through_its_own_loader(
    tmp_path: Path, client: httpx.AsyncClient
) -> None:
    _copy_ts_sample(tmp_path)
    (tmp_path / "master.m3u8").write_text(
        "#EXTM3U\n"
        '#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID="aud",NAME="English",LANGUAGE="en",DEFAULT=YES,'
        'AUTOSELECT=YES,URI="240p/index.m3u8"\n'
        '#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID="aud",NAME="Muxed",AUTOSELECT=NO\n'
        '#EXT-X-STREAM-INF:BANDWIDTH=400000,CODECS="avc1.4d401e,mp4a.40.2",AUDIO="aud"\n'
        "360p/index.m3u8\n"
    )
    want = vod_segments(tmp_path, "240p/index.m3u8")
    with OriginServer(tmp_path) as origin:
        async with open_proxy(origin.url_for("master.m3u8"), config=FAST) as proxy:
            master = parse_master((await get(client, proxy.url)).text, proxy.url)
            audio, muxed = master.renditions
            assert audio.url is not None and local_path(proxy, audio.url) == "/r/m0/index.m3u8"
            assert (audio.language, audio.default, audio.autoselect) == ("en", True, True)
            assert muxed.url is None
            assert master.variants[0].audio == "aud"
            _, playlist = await media(client, proxy, "m0")
            got = [(await get(client, s.url)).content for s in playlist.segments]
            assert got == want
            assert (await get(client, f"{proxy.base_url}/r/m1/index.m3u8")).status_code == 404
            assert proxy.loader.rendition == "v0"  # the variant loader did not move
            assert proxy.statistics().alternate_loaders == 1


# --------------------------------------------------------------------------------------------------
# live


async def test_live_playlists_follow_the_window_until_the_stream_ends(client: httpx.AsyncClient) -> None:
    root = sample_path("ts")
    want = vod_segments(root, "240p/index.m3u8")
    settings = LiveSettings(window_segments=4, segment_duration=0.4, end_after=16)
    with OriginServer(root, live=settings) as origin:
        async with open_proxy(origin.url_for("live/master.m3u8"), config=FAST) as proxy:
            text, playlist = await media(client, proxy, "v0")
            assert not playlist.end_list and playlist.playlist_type is None
            first_sequence = playlist.media_sequence
            seen: dict[int, str] = {}
            loop = asyncio.get_running_loop()
            deadline = loop.time() + 20
            while not playlist.end_list:
                assert loop.time() < deadline, "the live window did not reach the end"
                text, playlist = await media(client, proxy, "v0")
                origin_playlist = parse_media(
                    (await get(client, origin.url_for("live/240p/index.m3u8"))).text,
                    "http://o/",
                    rendition="o",
                )
                # The proxy re-serves the loader's view: a refresh (0.1 s) or so behind the origin.
                assert 0 <= origin_playlist.media_sequence - playlist.media_sequence <= 3
                sequences = [s.id.sequence for s in playlist.segments]
                assert sequences == list(range(playlist.media_sequence, playlist.media_sequence + 4))
                assert playlist.target_duration == 2
                # Discontinuities where the origin loops back to VOD segment 0 (msn 10).
                assert [s.discontinuity_sequence for s in playlist.segments] == [n // 10 for n in sequences]
                if 10 in sequences[1:]:
                    lines = text.splitlines()
                    assert lines[lines.index("/r/v0/seg/10.ts") - 2] == "#EXT-X-DISCONTINUITY"
                for segment in playlist.segments:
                    seen.setdefault(segment.id.sequence, segment.url)
                newest = playlist.segments[-1]
                response = await get(client, newest.url)
                assert response.status_code == 200
                assert response.content == want[newest.id.sequence % len(want)]
                await asyncio.sleep(0.1)
            assert playlist.segments[-1].id.sequence == 15 and text.rstrip().endswith("#EXT-X-ENDLIST")
            assert playlist.media_sequence > first_sequence + 5
            assert set(seen) >= set(range(first_sequence, 16))
            gone = await get(client, f"{proxy.base_url}/r/v0/seg/{first_sequence}.ts")
            assert gone.status_code == 404 and "left the live window" in gone.text
            future = await get(client, f"{proxy.base_url}/r/v0/seg/99.ts")
            assert future.status_code == 404


# --------------------------------------------------------------------------------------------------
# refusals


async def test_traversal_foreign_hosts_and_bad_paths_are_refused() -> None:
    async with vod_proxy("aes") as (origin, proxy):
        port = proxy.port
        requests_before = origin.statistics().requests

        def req(target: str, host: str | None = "127.0.0.1", method: str = "GET") -> bytes:
            # HTTP/1.1 requires a Host (uvicorn answers 400 without one); 1.0 lets the guard decide.
            version = "1.0" if host is None else "1.1"
            host_line = "" if host is None else f"Host: {host}\r\n"
            return f"{method} {target} HTTP/{version}\r\n{host_line}Connection: close\r\n\r\n".encode()

        async def status(target: str, host: str | None = "127.0.0.1", method: str = "GET") -> int:
            return (await raw_request(port, req(target, host, method)))[0]

        # Loopback Host names and addresses, with or without the port, are fine.
        for good in ("127.0.0.1", f"127.0.0.1:{port}", "localhost", f"LOCALHOST:{port}", "[::1]:80"):
            assert await status("/master.m3u8", good) == 200, good
        # DNS rebinding: any other name is refused, and so is no Host at all.
        for bad in ("evil.example", f"evil.example:{port}", "127.0.0.1.nip.io", "localhost.evil", None):
            assert await status("/master.m3u8", bad) == 403, bad
        # Traversal, raw or percent-encoded, and targets that are not a path: 400 before routing.
        for target in (
            "/r/../../etc/passwd",
            "/r/v0/seg/..%2F..%2Fetc%2Fpasswd",
            "/r/v0/%2e%2e/key/0",
            "/r/v0/seg/%2E%2E",
            "/./master.m3u8",
            "/r/v0/seg/0.ts%00",
            "/r/v0\\seg\\0.ts",
            "http://example.com/master.m3u8",
            "http://127.0.0.1/master.m3u8",
            "*",
        ):
            assert await status(target) == 400, target
        assert await status("//example.com/r/v0/key/0") == 404  # a path, of no route
        # Malformed parts of the proxy's own routes: 400; well formed but unknown: 404.
        malformed = ["/r/v0/seg/abc.ts", "/r/v0/seg/-1.ts", "/r/v0/seg/01.ts", "/r/v0/seg/1.exe"]
        for target in [*malformed, "/r/x0/index.m3u8", "/r/v0/key/k", "/r/v0/init/0.exe"]:
            assert await status(target) == 400, target
        unknown = ["/r/v1/index.m3u8", "/r/m0/index.m3u8", "/r/v0/seg/10.ts", "/r/v0/key/7"]
        for target in [*unknown, "/r/v0/init/0.mp4", "/etc/passwd", "/", "/r/v0", "/master.m3u8/x"]:
            assert await status(target) == 404, target
        assert await status("/r/v0/seg/3.mp4") == 404  # a segment that is not a .mp4
        assert await status("/master.m3u8", method="POST") == 405
        # None of that reached the origin.
        assert origin.statistics().requests == requests_before
        assert proxy.statistics().refused >= 10


def test_only_loopback_binds_without_allow_remote() -> None:
    for host in ("0.0.0.0", "::", "192.0.2.10", "example.com"):
        with pytest.raises(UsageError, match="allow_remote"):
            HlsProxy("http://127.0.0.1:9/master.m3u8", host=host)
    for host in ("127.0.0.1", "127.0.0.2", "::1", "localhost"):
        check_bind_host(host, allow_remote=False)
    check_bind_host("0.0.0.0", allow_remote=True)
    # With allow_remote on a wildcard address, IP literals are accepted, names still are not.
    policy = HostPolicy("0.0.0.0", allow_remote=True, extra_hosts=("tv.lan",))
    assert policy.allows("192.168.1.20:8080") and policy.allows("tv.lan") and policy.allows("localhost")
    assert not policy.allows("evil.example") and not policy.allows(None) and not policy.allows("a b")
    bound = HostPolicy("192.168.1.20", allow_remote=True)
    assert bound.allows("192.168.1.20:1") and not bound.allows("192.168.1.21")


# --------------------------------------------------------------------------------------------------
# the inferred playback position


def test_playhead_estimate_from_requests() -> None:
    est = PlayheadEstimator()
    assert est.position(0.0) is None
    # First request: segment [10, 12) with a floor one segment back.
    ticket = est.requested(10.0, 12.0, floor=8.0, now=0.0)
    assert est.position(0.0) == 10.0  # never past a segment the player waits for
    est.finished(ticket, delivered=True, now=0.5)
    assert est.position(0.5) == 10.0
    assert est.position(1.0) == 10.5  # plays in real time once the first segment arrived
    assert est.position(5.0) == 12.0 and not est.stalled(5.0)  # then waits at the end of its media
    ticket = est.requested(12.0, 14.0, floor=10.0, now=5.0)
    assert est.stalled(5.0) and est.position(5.0) == 12.0  # waiting for the segment it reached
    est.finished(ticket, delivered=True, now=6.0)
    assert est.position(6.5) == 12.5
    # A player far ahead of the modelled playhead: the estimate trails its requests by the floor.
    for n in range(7, 12):
        est.finished(est.requested(2.0 * n, 2.0 * n + 2, floor=2.0 * n - 2, now=6.5), delivered=True, now=6.5)
    assert est.position(6.5) == 20.0
    # A seek back starts a new run at the requested segment.
    ticket = est.requested(4.0, 6.0, floor=2.0, now=7.0)
    assert est.position(7.0) == 4.0
    est.finished(ticket, delivered=False, now=7.5)
    assert est.position(8.0) == 4.0  # nothing delivered yet: not playing


# --------------------------------------------------------------------------------------------------
# real players


@needs_ffmpeg
@pytest.mark.parametrize("sample", ["ts", "fmp4", "aes", "byterange"])
async def test_ffmpeg_decodes_every_frame_through_the_proxy(sample: str) -> None:
    async with vod_proxy(sample) as (origin, proxy):
        # ffmpeg decodes every frame (video and audio, every variant) through the proxy without an
        # error, and each equals a direct decode from the origin.
        decode = ("-map", "0", "-f", "framemd5", "-")
        code, through_proxy, err = await run_ffmpeg("-v", "error", "-i", proxy.url, *decode)
        assert (code, err) == (0, b"")
        code, direct, err = await run_ffmpeg("-v", "error", "-i", origin.url_for("master.m3u8"), *decode)
        assert code == 0
        stats = proxy.statistics()
    frames = [line for line in through_proxy.splitlines() if line and not line.startswith(b"#")]
    assert len(frames) > 400 * len(proxy.loader.variants)  # 20 s at 24 fps, plus audio
    assert through_proxy == direct
    assert stats.errors == 0


@needs_ffmpeg
async def test_ffmpeg_plays_a_separate_audio_rendition(tmp_path: Path) -> None:
    source = sample_path("ts") / "240p" / "index.m3u8"
    for kind, select in (("video", "0:v"), ("audio", "0:a")):
        (tmp_path / kind).mkdir()
        code, _, err = await run_ffmpeg(
            "-v", "error", "-i", str(source), "-map", select, "-c", "copy", "-f", "hls", "-hls_time", "2",
            "-hls_playlist_type", "vod", "-hls_segment_filename", str(tmp_path / kind / "seg_%05d.ts"),
            str(tmp_path / kind / "index.m3u8"),
        )  # fmt: skip
        assert code == 0, err.decode()
    (tmp_path / "master.m3u8").write_text(
        "#EXTM3U\n"
        '#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID="aud",NAME="English",DEFAULT=YES,AUTOSELECT=YES,'
        'URI="audio/index.m3u8"\n'
        '#EXT-X-STREAM-INF:BANDWIDTH=200000,CODECS="avc1.4d401e,mp4a.40.2",AUDIO="aud"\n'
        "video/index.m3u8\n"
    )
    want = {
        "v0": vod_segments(tmp_path, "video/index.m3u8"),
        "m0": vod_segments(tmp_path, "audio/index.m3u8"),
    }
    served: list[ServedSegment] = []
    with OriginServer(tmp_path) as origin:
        async with open_proxy(origin.url_for("master.m3u8"), config=FAST) as proxy:
            proxy.add_listener(served.append)
            code, out, err = await run_ffmpeg(
                "-v", "error", "-i", proxy.url, "-map", "0", "-f", "framemd5", "-"
            )
            assert (code, err) == (0, b"")
    assert {s.rendition for s in served} == {"v0", "m0"}
    assert all(s.data == want[s.rendition][s.sequence] for s in served)
    assert b"audio" in out and b"video" in out  # framemd5's stream headers: both were decoded


@pytest.fixture
def loopback() -> Iterator[None]:
    with restrict_ice_to_loopback():
        yield


async def wait_for_peers(loaders: list[HybridLoader], count: int) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 10
    while not all(loader.statistics().peers_connected == count for loader in loaders):
        assert loop.time() < deadline, [loader.statistics().peers_connected for loader in loaders]
        await asyncio.sleep(0.05)


@needs_ffmpeg
async def test_ffmpeg_plays_live_through_the_proxy_in_a_swarm(loopback: None) -> None:
    want = vod_segments(sample_path("ts"), "360p/index.m3u8")
    # No loop: the stream never wraps to VOD segment 0 (a timestamp jump ffmpeg reports as an error).
    settings = LiveSettings(window_segments=6, initial_segments=4, loop=False)
    async with TrackerServer() as tracker:
        with OriginServer(sample_path("ts"), live=settings) as origin:
            url = origin.url_for("live/master.m3u8")
            config = LoaderConfig(
                tracker_announce=(tracker.url,),
                rtc_config={"iceServers": []},
                http_retry_backoff=0.05,
                live_refresh_interval=0.5,
            )
            async with (
                open_loader(url, config=config, rendition="v1", seed=1) as first,
                open_loader(url, config=config, rendition="v1", seed=2) as second,
            ):
                await wait_for_peers([first, second], 1)
                viewers = [
                    asyncio.create_task(play(loader, duration=40, forward_buffer=8.0, tick=0.1))
                    for loader in (first, second)
                ]
                try:
                    await asyncio.sleep(2.0)  # the viewers start a little earlier, as viewers do
                    # Pinned: ffmpeg probes every variant of a master; the loader must stay on v1.
                    async with open_proxy(
                        url, config=config, rendition="v1", seed=3, pin_rendition=True
                    ) as proxy:
                        served: list[ServedSegment] = []
                        proxy.add_listener(served.append)
                        await wait_for_peers([proxy.loader], 2)
                        # -re: read in real time, as a player does.
                        code, _, err = await run_ffmpeg(
                            "-v", "error", "-re", "-i", proxy.url, "-t", "10", "-map", "0", "-f", "null", "-",
                            limit=60,
                        )  # fmt: skip
                        stats = proxy.statistics()
                        others = [first.statistics(), second.statistics()]
                finally:
                    for viewer in viewers:
                        viewer.cancel()
                    await asyncio.gather(*viewers, return_exceptions=True)
    assert (code, err) == (0, b"")
    assert len(served) >= 5  # 10 s of 2 s segments
    assert all(s.rendition == "v1" for s in served)
    assert all(s.data == want[s.sequence % len(want)] for s in served)
    assert stats.errors == 0 and stats.rendition_switches == 0
    # The proxy's loader took part in the swarm: segments came from the other viewers.
    assert stats.loader.p2p_bytes > 0, stats
    assert sum(o.p2p_uploaded_bytes for o in others) > 0


async def test_open_proxy_on_a_port_in_use_raises_bind_error() -> None:
    with (
        socket.socket(socket.AF_INET, socket.SOCK_STREAM) as blocker,
        OriginServer(sample_path("ts")) as origin,
    ):
        blocker.bind(("127.0.0.1", 0))
        blocker.listen()
        port = int(blocker.getsockname()[1])
        with pytest.raises(BindError) as info:
            async with open_proxy(origin.url_for("master.m3u8"), config=FAST, port=port):
                pytest.fail("the proxy started on a port in use")
    assert isinstance(info.value, P2PLoaderError)
    assert (info.value.host, info.value.port, info.value.errno) == ("127.0.0.1", port, errno.EADDRINUSE)
    assert str(info.value) == f"127.0.0.1:{port}: address already in use"
