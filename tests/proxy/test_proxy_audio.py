"""The proxy on a stream with separate audio and subtitles (the ffmpeg-made stream of
:mod:`tests.ffmpeg_streams`): EXT-X-MEDIA URIs are rewritten, the default audio is served by the
loader's audio companion (so it is shared in P2P Media Loader's swarm for that track), and ffmpeg
decodes video and audio through the proxy."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest

from p2ploader.hls import parse_master, parse_media
from p2ploader.proxy import ServedSegment, open_proxy
from p2ploader.sample import vod_segment_bytes
from p2ploader.testing.origin import OriginServer
from p2ploader.tracker import TrackerServer
from tests.aio.test_alternate_audio import expected_audio_hash
from tests.ffmpeg_streams import av_stream  # noqa: F401 (the session fixture)
from tests.proxy.test_proxy import FAST, local_path, needs_ffmpeg, run_ffmpeg

pytestmark = [pytest.mark.anyio, pytest.mark.e2e]


@pytest.fixture
def av(av_stream: Path) -> Path:  # noqa: F811
    return av_stream


async def test_ext_x_media_uris_are_rewritten_and_the_default_audio_is_the_companions(av: Path) -> None:
    with OriginServer(av) as origin:
        async with (
            open_proxy(origin.url_for("master.m3u8"), config=FAST) as proxy,
            httpx.AsyncClient() as client,
        ):
            master = parse_master((await client.get(proxy.url)).text, proxy.url)
            english, french, subtitles = master.renditions
            paths = [local_path(proxy, r.url or "") for r in master.renditions]
            assert paths == ["/r/m0/index.m3u8", "/r/m1/index.m3u8", "/r/m2/index.m3u8"]
            assert (english.name, english.language, english.default) == ("English", "en", True)
            assert (french.name, subtitles.type) == ("Francais", "SUBTITLES")
            assert (master.variants[0].audio, master.variants[0].subtitles) == ("aud", "subs")
            companion = proxy.loader.audio
            assert companion is not None and companion.rendition == "a:aud:English"
            got: dict[str, list[bytes]] = {}
            for token in ("m0", "m1", "m2"):
                url = f"{proxy.base_url}/r/{token}/index.m3u8"
                playlist = parse_media((await client.get(url)).text, url, rendition=token)
                got[token] = [(await client.get(s.url)).content for s in playlist.segments]
            stats = proxy.statistics()
    assert got["m0"] == vod_segment_bytes(av / "audio_en" / "index.m3u8")
    assert got["m1"] == vod_segment_bytes(av / "audio_fr" / "index.m3u8")
    assert got["m2"] == [p.read_bytes() for p in sorted((av / "subs_en").glob("*.vtt"))]
    # English came through the companion: the main loader's figures count it as audio.
    assert stats.loader.by_media_type["audio"].http_bytes == sum(map(len, got["m0"]))
    assert stats.alternate_loaders == 3  # the companion, and one loader each for French and subtitles


@needs_ffmpeg
async def test_ffmpeg_decodes_video_and_audio_through_the_proxy(av: Path) -> None:
    served: list[ServedSegment] = []
    with OriginServer(av) as origin:
        async with open_proxy(origin.url_for("master.m3u8"), config=FAST) as proxy:
            proxy.add_listener(served.append)
            code, out, err = await run_ffmpeg(
                "-v", "error", "-i", proxy.url, "-map", "0", "-f", "framemd5", "-"
            )
    assert (code, err) == (0, b"")
    assert b"video" in out and b"audio" in out  # framemd5's stream headers: both were decoded
    assert {"v0", "m0"} <= {s.rendition for s in served}


async def test_every_audio_rendition_a_player_asks_for_is_shared_in_its_tracks_swarm(av: Path) -> None:
    # A player that picks French (not the default) still shares it with browser peers playing
    # French: the proxy's loader for it announces P2P Media Loader's info hash for that track.
    async with TrackerServer() as tracker:
        config = FAST.evolve(tracker_announce=(tracker.url,), rtc_config={"iceServers": []})
        with OriginServer(av) as origin:
            url = origin.url_for("master.m3u8")
            async with open_proxy(url, config=config) as proxy, httpx.AsyncClient() as client:
                playlist_url = f"{proxy.base_url}/r/m1/index.m3u8"
                playlist = parse_media((await client.get(playlist_url)).text, playlist_url, rendition="m1")
                first = (await client.get(playlist.segments[0].url)).content
                swarm_id = proxy.loader.swarm_id
                french = expected_audio_hash(swarm_id, name="Francais", language="fr")
                english = expected_audio_hash(swarm_id, name="English", language="en")
                for _ in range(500):  # up to 10 s: both companions announce once their first segment is in
                    if tracker.peer_ids(french) and tracker.peer_ids(english):
                        break
                    await asyncio.sleep(0.02)
                assert len(tracker.peer_ids(french)) == 1 and len(tracker.peer_ids(english)) == 1
                assert proxy.statistics().alternate_loaders == 1  # French; English is not asked for
    assert first == vod_segment_bytes(av / "audio_fr" / "index.m3u8")[0]
