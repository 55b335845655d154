"""Separate audio and subtitles renditions (EXT-X-MEDIA) through the API, against the real origin.

The stream is :func:`tests.ffmpeg_streams.make_av_stream`'s: a video-only variant, an audio group
``aud`` (English default, French) and a subtitles group ``subs``, encoded with ffmpeg.
"""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from p2ploader import LoaderConfig, open_loader
from p2ploader.aio.alternates import sequence_at
from p2ploader.core import notifications as nt
from p2ploader.core import swarm
from p2ploader.errors import LoaderClosedError, RenditionNotFoundError
from p2ploader.sample import vod_segment_bytes
from p2ploader.testing.origin import LiveSettings, OriginServer
from p2ploader.tracker import TrackerServer
from tests.ffmpeg_streams import (
    MASTER,
    av_stream,  # noqa: F401 (the session fixture)
)

pytestmark = [pytest.mark.anyio, pytest.mark.e2e]


@pytest.fixture
def av(av_stream: Path) -> Path:  # noqa: F811
    """The separate-audio stream (read only here: nothing rewrites its playlists)."""
    return av_stream


HTTP_ONLY = LoaderConfig(use_p2p=False, http_retry_backoff=0.01)


def files(root: Path, folder: str) -> list[bytes]:
    return vod_segment_bytes(root / folder / "index.m3u8")


async def test_the_default_audio_loads_with_the_variant_and_every_byte_is_the_origins(
    av: Path,
) -> None:
    with OriginServer(av) as origin:
        async with open_loader(origin.url_for("master.m3u8"), config=HTTP_ONLY) as loader:
            heard: list[nt.Notification] = []
            loader.add_listener(heard.append)
            audio = loader.audio
            assert audio is not None and loader.subtitles is None  # subtitles: none is DEFAULT=YES
            assert (loader.rendition, audio.rendition, audio.media_type) == ("v0", "a:aud:English", "audio")
            video_got = [s.data async for s in loader.segments()]
            audio_got = [s.data async for s in audio.segments()]
            stats = loader.statistics()
        # The loader's listeners hear the audio's notifications too (ids name the rendition).
        loaded = {n.segment_id.rendition for n in heard if isinstance(n, nt.SegmentLoaded)}
        assert loaded == {"v0", "a:aud:English"}
        # Closing drops the companion, not its figures.
        assert loader.statistics().by_media_type == stats.by_media_type
    want_video, want_audio = files(av, "video"), files(av, "audio_en")
    assert video_got == want_video and audio_got == want_audio
    video_bytes, audio_bytes = sum(map(len, want_video)), sum(map(len, want_audio))
    by_type = stats.by_media_type
    assert set(by_type) == {"video", "audio"}
    assert (by_type["audio"].rendition, by_type["audio"].http_bytes) == ("a:aud:English", audio_bytes)
    assert by_type["video"].http_bytes == video_bytes
    assert stats.http_bytes == video_bytes + audio_bytes  # the headline total counts the audio
    assert stats.http_segments == len(want_video) + len(want_audio)


@pytest.mark.parametrize(
    ("kwargs", "audio_id"),
    [
        ({"audio": "a:aud:Francais"}, "a:aud:Francais"),
        ({"audio": "fr"}, "a:aud:Francais"),
        ({"audio": "Francais"}, "a:aud:Francais"),
        ({"audio": "EN"}, "a:aud:English"),
        ({"rendition": "a:aud:Francais"}, "a:aud:Francais"),  # an audio id names a variant with it
    ],
)
async def test_audio_is_chosen_by_id_language_or_name(
    av: Path, kwargs: dict[str, str], audio_id: str
) -> None:
    with OriginServer(av) as origin:
        async with open_loader(origin.url_for("master.m3u8"), config=HTTP_ONLY, **kwargs) as loader:  # type: ignore[arg-type]
            assert loader.rendition == "v0"
            assert loader.audio is not None and loader.audio.rendition == audio_id
            got = [s.data async for s in loader.audio.segments()]
    assert got == files(av, "audio_fr" if audio_id.endswith("Francais") else "audio_en")


async def test_a_choice_that_matches_nothing_is_a_typed_error_listing_the_choices(av: Path) -> None:
    with OriginServer(av) as origin:
        with pytest.raises(RenditionNotFoundError) as caught:
            async with open_loader(origin.url_for("master.m3u8"), config=HTTP_ONLY, audio="de"):
                pass
        assert caught.value.choices == ("a:aud:English", "a:aud:Francais")
        assert "a:aud:Francais (language fr, name Francais)" in str(caught.value)
        with pytest.raises(RenditionNotFoundError, match="subtitles rendition 'fr'"):
            async with open_loader(origin.url_for("master.m3u8"), config=HTTP_ONLY, subtitles="fr"):
                pass


async def test_audio_false_loads_the_variant_alone(av: Path) -> None:
    with OriginServer(av) as origin:
        async with open_loader(origin.url_for("master.m3u8"), config=HTTP_ONLY, audio=False) as loader:
            assert loader.audio is None
            got = [s.data async for s in loader.segments()]
            stats = loader.statistics()
        requested = set(origin.statistics().path_requests)
    assert got == files(av, "video")
    assert set(stats.by_media_type) == {"video"} and stats.http_bytes == sum(map(len, got))
    assert "/video/index.m3u8" in requested
    assert not any("audio_" in path for path in requested)  # not even the audio playlist


async def test_subtitles_load_over_http_only(av: Path) -> None:
    async with TrackerServer() as tracker:
        config = LoaderConfig(tracker_announce=(tracker.url,), swarm_join_delay=None)
        with OriginServer(av) as origin:
            async with open_loader(origin.url_for("master.m3u8"), config=config, subtitles="en") as loader:
                subtitles = loader.subtitles
                assert subtitles is not None and subtitles.rendition == "s:subs:English"
                assert subtitles.config.use_p2p is False  # cue files are tiny; P2PML never shares them
                got = [s.data async for s in subtitles.segments()]
                stats = loader.statistics()
    assert got == [p.read_bytes() for p in sorted((av / "subs_en").glob("*.vtt"))]
    assert stats.by_media_type["subtitles"].http_bytes == sum(map(len, got))


async def test_audio_segments_are_aligned_with_the_video_on_a_live_stream(av: Path) -> None:
    clock = [30.0]  # mid-stream: the live window starts well after the first segment
    with OriginServer(av, live=LiveSettings(window_segments=4), clock=lambda: clock[0]) as origin:
        async with open_loader(origin.url_for("live/master.m3u8"), config=HTTP_ONLY) as loader:
            audio = loader.audio
            assert audio is not None and loader.is_live and audio.is_live
            video_segments = loader.playlist.segments
            assert video_segments[0].id.sequence > 0
            # Each playlist slides on its own clock (the audio's loop is 20 ms shorter), so compare
            # the segments both windows hold: same sequence, same place on the shared timeline.
            common = [s for s in video_segments if audio.playlist.segment_by_sequence(s.id.sequence)]
            assert len(common) >= 2
            for segment in common:
                audio_segment = audio.playlist.segment_by_sequence(segment.id.sequence)
                assert audio_segment is not None
                assert abs(audio_segment.start - segment.start) < 0.05  # AAC frames: a few ms apart
                assert (
                    sequence_at(audio.playlist, segment.start + segment.duration / 2) == segment.id.sequence
                )
            # The playhead reported to the loader reaches the audio companion too.
            loader.report_playback(video_segments[1].start)
            assert audio._scheduler._position == pytest.approx(video_segments[1].start)


def expected_audio_hash(swarm_id: str, *, name: str, language: str) -> bytes:
    """P2P Media Loader 2.3.1's info hash of an hls.js audio track (a ``secondary`` stream)."""
    index = swarm.hlsjs_audio_track_short_id(name=name, language=language, codecs="mp4a.40.2")
    return swarm.info_hash(swarm.stream_swarm_id(swarm_id, swarm.StreamType.SECONDARY, index))


async def _wait_for(condition: Callable[[], bool], *, within: float) -> bool:
    for _ in range(int(within / 0.02)):
        if condition():
            return True
        await asyncio.sleep(0.02)
    return condition()


async def test_video_and_audio_each_join_their_own_swarm(av: Path) -> None:
    async with TrackerServer() as tracker:
        config = LoaderConfig(tracker_announce=(tracker.url,), swarm_join_delay=None)
        with OriginServer(av) as origin:
            async with open_loader(origin.url_for("master.m3u8"), config=config, audio="fr") as loader:
                audio = loader.audio
                assert audio is not None
                video_hash, audio_hash = loader.info_hash(), audio.info_hash()
                assert audio_hash == expected_audio_hash(loader.swarm_id, name="Francais", language="fr")
                assert audio_hash != expected_audio_hash(loader.swarm_id, name="English", language="en")
                assert video_hash != audio_hash
                assert audio.peer_id != loader.peer_id  # 2.3.1 gives each stream its own peer id
                assert await _wait_for(
                    lambda: (
                        tracker.peer_ids(video_hash) == {loader.peer_id}
                        and tracker.peer_ids(audio_hash) == {audio.peer_id}
                    ),
                    within=10,
                )
                await loader.select_audio("en")
                assert loader.audio is audio and audio.rendition == "a:aud:English"
                english = expected_audio_hash(loader.swarm_id, name="English", language="en")
                assert await _wait_for(lambda: tracker.peer_ids(english) == {audio.peer_id}, within=10)


def _two_variant_copy(av: Path, tmp_path: Path) -> Path:
    """The stream with a second variant whose audio group ``aud2`` has the same two languages."""
    root = tmp_path / "av2"
    shutil.copytree(av, root)
    group2 = [
        line.replace('GROUP-ID="aud"', 'GROUP-ID="aud2"')
        for line in MASTER.splitlines()
        if 'GROUP-ID="aud"' in line
    ]
    master = MASTER.rstrip("\n").splitlines()
    master[4:4] = group2
    master += [
        '#EXT-X-STREAM-INF:BANDWIDTH=800000,RESOLUTION=320x180,CODECS="avc1.4d400d,mp4a.40.2",AUDIO="aud2"',
        "video/index.m3u8",
    ]
    (root / "master.m3u8").write_text("\n".join(master) + "\n")
    return root


async def test_a_variant_switch_keeps_the_audio_language_in_the_new_group(av: Path, tmp_path: Path) -> None:
    root = _two_variant_copy(av, tmp_path)
    with OriginServer(root) as origin:
        async with open_loader(origin.url_for("master.m3u8"), config=HTTP_ONLY, audio="fr") as loader:
            audio = loader.audio
            assert audio is not None and audio.rendition == "a:aud:Francais"
            segments = audio.segments()
            first = await anext(segments)
            await loader.select_rendition("v1")
            assert loader.audio is audio and audio.rendition == "a:aud2:Francais"
            rest = [s async for s in segments]
    assert [s.segment.id.rendition for s in rest] == ["a:aud2:Francais"] * len(rest)
    assert [first.data, *(s.data for s in rest)] == files(root, "audio_fr")


async def test_a_stream_with_muxed_audio_is_loaded_as_before() -> None:
    from p2ploader.sample import sample_path

    with OriginServer(sample_path("ts")) as origin:
        async with open_loader(origin.url_for("master.m3u8"), config=HTTP_ONLY, rendition="v1") as loader:
            assert loader.audio is None and loader.subtitles is None
            assert loader.alternate_renditions("AUDIO") == ()
            first = await loader.get_segment(loader.playlist.segments[0])
            stats = loader.statistics()
    assert set(stats.by_media_type) == {"video"}
    assert stats.by_media_type["video"].http_bytes == stats.http_bytes >= len(first.data)


async def test_audio_and_subtitles_requests_carry_the_http_options(
    av: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from p2ploader.testing import origin as origin_module

    seen: list[tuple[str, dict[str, str]]] = []
    serve = origin_module._Handler._serve

    def recording(self: origin_module._Handler, *, head: bool) -> None:
        seen.append((self.path, {k.lower(): v for k, v in self.headers.items()}))
        serve(self, head=head)

    monkeypatch.setattr(origin_module._Handler, "_serve", recording)
    config = HTTP_ONLY.evolve(http_headers={"X-Token": "t0k3n"}, http_cookies={"s": "1"}, user_agent="VLC/3")
    with OriginServer(av) as origin:
        async with open_loader(origin.url_for("master.m3u8"), config=config, subtitles=True) as loader:
            assert loader.audio is not None and loader.subtitles is not None
            assert [s async for s in loader.audio.segments()]
            assert [s async for s in loader.subtitles.segments()]
    companion_paths = [path for path, _ in seen if "/audio_en/" in path or "/subs_en/" in path]
    assert len(companion_paths) == 2 + 6 + 6  # two playlists, six segments each
    for path, headers in seen:
        assert (headers.get("x-token"), headers.get("cookie"), headers.get("user-agent")) == (
            "t0k3n",
            "s=1",
            "VLC/3",
        ), path


async def test_switching_to_a_variant_without_separate_audio_closes_the_companion_keeping_its_figures(
    av: Path, tmp_path: Path
) -> None:
    root = tmp_path / "av3"
    shutil.copytree(av, root)
    master = MASTER + '#EXT-X-STREAM-INF:BANDWIDTH=300000,CODECS="avc1.4d400d"\nvideo/index.m3u8\n'
    (root / "master.m3u8").write_text(master)
    with OriginServer(root) as origin:
        async with open_loader(origin.url_for("master.m3u8"), config=HTTP_ONLY) as loader:
            audio = loader.audio
            assert audio is not None
            first = await audio.get_segment(audio.playlist.segments[0])
            await loader.select_rendition("v1")
            assert loader.audio is None
            with pytest.raises(LoaderClosedError):  # the companion was closed
                await audio.get_segment(audio.playlist.segments[0])
            closed_figures = audio.statistics().by_media_type["audio"]  # a closed loader's: final
            assert closed_figures.http_bytes >= len(first.data)
            assert loader.statistics().by_media_type["audio"] == closed_figures
            await loader.select_rendition("v0")  # back to the variant with an audio group
            assert loader.audio is not None and loader.audio.rendition == "a:aud:English"
            with pytest.raises(RenditionNotFoundError, match="no audio rendition 'de'"):
                await loader.select_audio("de")
            await loader.select_audio(False)
            assert loader.audio is None


async def test_the_player_follows_switches_to_and_from_a_variant_without_separate_audio(
    av: Path, tmp_path: Path
) -> None:
    from p2ploader import play

    root = tmp_path / "av3"
    shutil.copytree(av, root)
    master = MASTER + '#EXT-X-STREAM-INF:BANDWIDTH=300000,CODECS="avc1.4d400d"\nvideo/index.m3u8\n'
    (root / "master.m3u8").write_text(master)
    handed: list[tuple[float, str]] = []
    with OriginServer(root) as origin:
        async with open_loader(origin.url_for("master.m3u8"), config=HTTP_ONLY) as loader:
            loop = asyncio.get_running_loop()
            started = loop.time()

            async def switch() -> None:
                await asyncio.sleep(2.0)
                await loader.select_rendition("v1")  # audio muxed: the audio track leaves
                await asyncio.sleep(2.0)
                await loader.select_rendition("v0")  # separate audio again: a new companion

            switching = asyncio.create_task(switch())
            report = await asyncio.wait_for(
                play(
                    loader,
                    forward_buffer=3.0,
                    tick=0.05,
                    on_segment=lambda s: handed.append((loop.time() - started, s.segment.id.rendition)),
                ),
                timeout=30,
            )
            await switching
    assert report.state == "ended" and report.played == pytest.approx(11.98, abs=0.1)
    audio_times = [t for t, rendition in handed if rendition == "a:aud:English"]
    assert audio_times and max(audio_times) > 4.0  # audio was loaded again after the switch back


@pytest.mark.parametrize("delay_target", [None, 0.0])
async def test_the_variant_and_its_audio_share_one_upload_control(
    av: Path, delay_target: float | None
) -> None:
    """Both swarms upload on the viewer's one uplink, so one controller paces them (the default
    delay target as shipped; 0 turns it off for both)."""
    config = HTTP_ONLY if delay_target is None else HTTP_ONLY.evolve(upload_delay_target=delay_target)
    with OriginServer(av) as origin:
        async with open_loader(origin.url_for("master.m3u8"), config=config) as loader:
            audio = loader.audio
            assert audio is not None
            if delay_target == 0.0:
                assert loader._upload_control is None and audio._upload_control is None
                assert loader.statistics().upload_control is None
                return
            assert loader._upload_control is not None
            assert audio._upload_control is loader._upload_control
            figures = loader.statistics().upload_control
            assert figures is not None and figures.samples == 0 and figures.rate is None
