"""The proxy re-serving the local origin's live LL-HLS stream (``OriginServer(low_latency=...)``:
real ffmpeg fMP4, 2 s segments of four 0.5 s parts, blocking reload, preload hints): blocking
reloads, parts and hints through the proxy, their bytes against the origin's, the bounds on held
requests, and ffmpeg and mpv playing through it. Real sockets, the real clock; every wait bounded."""

from __future__ import annotations

import asyncio
import re
import shutil
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from p2ploader import LoaderConfig, open_loader
from p2ploader.hls import MediaPlaylist, parse_media
from p2ploader.proxy import HlsProxy, open_proxy
from p2ploader.proxy.backend import ProxyBackend
from p2ploader.proxy.paths import Token
from p2ploader.testing.llhls import LowLatencySettings
from p2ploader.testing.origin import LiveSettings, OriginServer
from tests.ffmpeg_streams import LLHLS_PART_SECONDS, ffmpeg_or_skip, llhls_stream  # noqa: F401

pytestmark = [pytest.mark.anyio, pytest.mark.e2e]

# No trackers: HTTP delivery is the point here.
CONFIG = LoaderConfig(tracker_announce=())
PLAYLIST = "/r/v0/index.m3u8"
_HINT = re.compile(r'#EXT-X-PRELOAD-HINT:TYPE=PART,URI="/r/v\d/part/(\d+)\.(\d+)\.m4s"')


@pytest.fixture
def origin(llhls_stream: Path) -> OriginServer:  # noqa: F811
    return OriginServer(llhls_stream, live=LiveSettings(window_segments=6), low_latency=LowLatencySettings())


@pytest.fixture
async def proxy(origin: OriginServer) -> AsyncIterator[HlsProxy]:
    with origin:
        async with open_proxy(
            origin.url_for("llhls/master.m3u8"), config=CONFIG, pin_rendition=True
        ) as running:
            yield running


def hint_of(text: str) -> tuple[int, int]:
    match = _HINT.search(text)
    assert match is not None, text
    return int(match[1]), int(match[2])


def parsed(proxy: HlsProxy, text: str) -> MediaPlaylist:
    return parse_media(text, proxy.base_url + PLAYLIST, rendition="v0")


def origin_part_url(origin: OriginServer, msn: int, index: int) -> str:
    return origin.url_for(f"llhls/high/seg_{msn}.{index}.m4s")


async def test_a_blocking_reload_through_the_proxy_returns_as_the_part_is_published(
    origin: OriginServer, proxy: HlsProxy
) -> None:
    async with httpx.AsyncClient(timeout=20) as client:
        first = await client.get(proxy.base_url + PLAYLIST)
        assert first.status_code == 200
        assert "#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,PART-HOLD-BACK=1.5" in first.text
        delays: list[float] = []
        for _ in range(3):  # three parts in a row
            msn, part = hint_of((await client.get(proxy.base_url + PLAYLIST)).text)
            directive = f"?_HLS_msn={msn}&_HLS_part={part}"

            async def returned(url: str) -> tuple[float, httpx.Response]:
                response = await client.get(url)
                return time.monotonic(), response

            (at_origin, direct), (at_proxy, proxied) = await asyncio.gather(
                returned(origin.url_for("llhls/high/index.m3u8") + directive),
                returned(proxy.base_url + PLAYLIST + directive),
            )
            assert direct.status_code == 200 and proxied.status_code == 200, proxied.text
            # The proxy answers as the origin publishes: within 0.3 s of the origin's own answer
            # (the relay's blocking reload to the origin, then the proxy's 20 ms look).
            assert at_proxy - at_origin < 0.3, at_proxy - at_origin
            delays.append(at_proxy - at_origin)
            listed = parsed(proxy, proxied.text)
            assert [p.id.index for p in listed.pending_parts][-1:] == [part] or listed.last_sequence >= msn
            assert f'URI="/r/v0/part/{msn}.{part}.m4s"' in proxied.text
        print(f"proxy answered after the origin by {', '.join(f'{d * 1000:.0f} ms' for d in delays)}")
        statistics = proxy.statistics()
        assert statistics.blocking_playlist_requests == 3 and statistics.held_refused == 0


async def test_every_part_and_hint_through_the_proxy_is_the_origins(
    origin: OriginServer, proxy: HlsProxy
) -> None:
    compared: list[tuple[int, int]] = []
    async with httpx.AsyncClient(timeout=20) as client:
        text = (await client.get(proxy.base_url + PLAYLIST)).text
        # Before publication: the hinted part is asked for at once and held until it exists.
        msn, part = hint_of(text)
        hinted = asyncio.ensure_future(client.get(proxy.base_url + f"/r/v0/part/{msn}.{part}.m4s"))
        deadline = time.monotonic() + 6
        while time.monotonic() < deadline:
            playlist = parsed(proxy, text)
            listed = [p for s in playlist.segments for p in s.parts] + list(playlist.pending_parts)
            for listed_part in listed:
                key = (listed_part.segment.sequence, listed_part.id.index)
                if key in compared:
                    continue
                mine = await client.get(proxy.base_url + f"/r/v0/part/{key[0]}.{key[1]}.m4s")
                theirs = await client.get(origin_part_url(origin, *key))
                assert mine.status_code == 200 and mine.headers["content-type"] == "video/mp4"
                assert mine.content == theirs.content, key
                compared.append(key)
            next_msn, next_part = hint_of(text)
            text = (
                await client.get(proxy.base_url + PLAYLIST + f"?_HLS_msn={next_msn}&_HLS_part={next_part}")
            ).text
        held = await hinted
        assert held.status_code == 200
        assert held.content == (await client.get(origin_part_url(origin, msn, part))).content
        # A whole segment through the proxy is the origin's too.
        last = parsed(proxy, text).last_sequence
        segment = await client.get(proxy.base_url + f"/r/v0/seg/{last}.m4s")
        assert segment.status_code == 200
        assert segment.content == (await client.get(origin.url_for(f"llhls/high/seg_{last}.m4s"))).content
    assert len(compared) >= 20  # the listed parts (3 segments' worth) and ~12 published meanwhile
    # The relay took the parts at the edge from the loader's LL-HLS stream; it fetched itself only
    # those before the stream's start point.
    fetched = proxy.statistics().parts_fetched
    print(f"{len(compared)} parts compared, {fetched} fetched by the relay itself")
    assert fetched < len(compared)


async def test_requests_too_far_ahead_or_malformed_are_refused_at_once(proxy: HlsProxy) -> None:
    async with httpx.AsyncClient(timeout=20) as client:
        text = (await client.get(proxy.base_url + PLAYLIST)).text
        msn, part = hint_of(text)
        cases = {
            f"?_HLS_msn={msn + 3}": 400,  # more than two segments past the last one
            f"?_HLS_msn={msn}&_HLS_part={part + 7}": 400,  # beyond the advance part limit (6)
            "?_HLS_part=1": 400,
            "?_HLS_msn=x": 400,
            "?_HLS_msn=1&_HLS_msn=2": 400,
        }
        for query, status in cases.items():
            started = time.monotonic()
            response = await client.get(proxy.base_url + PLAYLIST + query)
            assert response.status_code == status, (query, response.text)
            assert time.monotonic() - started < 0.5
        # Parts: one far ahead, one of a complete segment that does not exist, one left behind.
        for name in (f"{msn + 4}.0.m4s", f"{msn - 1}.9.m4s", "0.0.m4s"):
            response = await client.get(proxy.base_url + f"/r/v0/part/{name}")
            assert response.status_code == 404, (name, response.text)
        assert (await client.get(proxy.base_url + "/r/v0/part/1.x.m4s")).status_code == 400
        # _HLS_skip is ignored: the full playlist (the proxy does not advertise CAN-SKIP-UNTIL).
        full = await client.get(proxy.base_url + PLAYLIST + "?_HLS_skip=YES")
        assert full.status_code == 200 and "#EXT-X-SKIP" not in full.text and "#EXTINF" in full.text


async def test_held_requests_are_bounded_in_time_and_number(origin: OriginServer) -> None:
    with origin:
        async with open_proxy(
            origin.url_for("llhls/master.m3u8"),
            config=CONFIG,
            pin_rendition=True,
            block_timeout=0.3,
            max_held_requests=1,
        ) as proxy:
            async with httpx.AsyncClient(timeout=20) as client:
                msn, part = hint_of((await client.get(proxy.base_url + PLAYLIST)).text)
                # Four parts ahead (2 s): allowed, but not published within 0.3 s.
                ahead = f"?_HLS_msn={msn + 1}&_HLS_part={part}"
                started = time.monotonic()
                first, second = await asyncio.gather(
                    client.get(proxy.base_url + PLAYLIST + ahead),
                    client.get(proxy.base_url + PLAYLIST + ahead),
                )
                elapsed = time.monotonic() - started
            statuses = sorted([first.status_code, second.status_code])
            assert statuses == [503, 503], (first.text, second.text)
            assert any("too many held requests" in r.text for r in (first, second))
            assert any("not published within 0.3 s" in r.text for r in (first, second))
            assert 0.25 < elapsed < 2.0
            assert proxy.statistics().held_refused == 1


async def test_by_default_many_players_are_held_at_once_for_up_to_three_target_durations(
    proxy: HlsProxy,
) -> None:
    async with httpx.AsyncClient(timeout=20) as client:
        msn, part = hint_of((await client.get(proxy.base_url + PLAYLIST)).text)
        # Eight players block on the part a segment (four parts, 2 s) after the hint: they are all
        # held (a busy machine may take more than the 0.5 s of the next part to send eight
        # requests) and all answered once it is published.
        responses = await asyncio.gather(
            *(
                client.get(proxy.base_url + PLAYLIST + f"?_HLS_msn={msn + 1}&_HLS_part={part}")
                for _ in range(8)
            )
        )
        assert [r.status_code for r in responses] == [200] * 8
        # Two segments ahead: published within 4 s, under the default limit of 6 s (3 x 2 s).
        far = await client.get(proxy.base_url + PLAYLIST + f"?_HLS_msn={msn + 2}&_HLS_part={part}")
        assert far.status_code == 200
    assert proxy.statistics().held_peak >= 8


async def test_each_variant_is_followed_while_asked_for(origin: OriginServer) -> None:
    v0, v1 = Token("v", 0), Token("v", 1)
    with origin:
        async with open_loader(origin.url_for("llhls/master.m3u8"), config=CONFIG) as loader:
            backend = ProxyBackend(loader, relay_idle_timeout=1.0, report_interval=0.1)
            backend.start()
            try:
                first = (await backend.media_playlist(v0)).data.decode()
                # Each variant's report names the other's proxy playlist.
                assert '#EXT-X-RENDITION-REPORT:URI="/r/v1/index.m3u8"' in first
                other = (await backend.media_playlist(v1)).data.decode()
                assert '#EXT-X-RENDITION-REPORT:URI="/r/v0/index.m3u8"' in other
                assert '#EXT-X-PART:DURATION=0.5,URI="/r/v1/part/' in other
                assert backend.statistics().low_latency_relays == 2
                # A player that switched to v1 for good: v0's relay stops after 1 s without requests.
                started = asyncio.get_running_loop().time()
                while asyncio.get_running_loop().time() - started < 2.5:
                    msn, part = hint_of(other)
                    body = await backend.media_playlist(v1, f"_HLS_msn={msn}&_HLS_part={part}")
                    other = body.data.decode()
                assert backend.statistics().low_latency_relays == 1
                assert backend.statistics().rendition_switches == 1
                # Asked again, v0 is followed again.
                assert "#EXT-X-PART:" in (await backend.media_playlist(v0)).data.decode()
                assert backend.statistics().low_latency_relays == 2
            finally:
                await backend.aclose()


async def test_a_relay_that_failed_is_replaced_on_the_next_request(
    origin: OriginServer, proxy: HlsProxy
) -> None:
    async with httpx.AsyncClient(timeout=20) as client:
        origin.inject("/llhls/high/index.m3u8", status=500)
        failed = await client.get(proxy.base_url + PLAYLIST)
        assert failed.status_code == 502 and "following the origin failed" in failed.text
        origin.clear_faults()
        again = await client.get(proxy.base_url + PLAYLIST)
        assert again.status_code == 200 and "#EXT-X-PART:" in again.text
    assert proxy.statistics().low_latency_relays == 1


async def test_by_default_a_relay_outlives_a_pause_of_the_player(proxy: HlsProxy) -> None:
    async with httpx.AsyncClient(timeout=20) as client:
        assert (await client.get(proxy.base_url + PLAYLIST)).status_code == 200
        await asyncio.sleep(1.5)  # well under the default relay_idle_timeout (30 s)
        assert proxy.statistics().low_latency_relays == 1
        assert (await client.get(proxy.base_url + PLAYLIST)).status_code == 200
    assert proxy.statistics().low_latency_relays == 1


async def _play(command: list[str], within: float) -> tuple[int | None, str]:
    process = await asyncio.create_subprocess_exec(
        *command, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    try:
        async with asyncio.timeout(within):
            out, err = await process.communicate()
    except TimeoutError:
        process.kill()
        await process.wait()
        raise
    return process.returncode, (out + err).decode(errors="replace")


async def test_ffmpeg_decodes_the_proxied_ll_hls_stream(proxy: HlsProxy) -> None:
    ffmpeg = ffmpeg_or_skip()
    code, output = await _play([ffmpeg, "-v", "error", "-i", proxy.url, "-t", "4", "-f", "null", "-"], 60)
    assert code == 0 and output == "", output
    assert proxy.statistics().segments_served >= 2 and proxy.statistics().errors == 0


async def test_mpv_plays_the_proxied_ll_hls_stream(proxy: HlsProxy) -> None:
    mpv = shutil.which("mpv")
    if mpv is None:
        pytest.skip("mpv is not installed (.ci/run installs it)")
    code, output = await _play(
        [mpv, "--no-config", "--vo=null", "--ao=null", "--length=3", "--msg-level=all=error", proxy.url], 60
    )
    assert code == 0, output
    assert proxy.statistics().segments_served >= 1 and proxy.statistics().errors == 0
