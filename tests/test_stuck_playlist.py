"""A live playlist that never changes and never ends (a VOD playlist cut before #EXT-X-ENDLIST, an
encoder that died) is reported: a notification at half of ``live_playlist_stuck_reloads``, then
:class:`LivePlaylistStuckError` from ``segments()``, ``play()`` and the ``play`` command."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from p2ploader import LoaderConfig, open_loader, play
from p2ploader.app.cli import EXIT_ERROR, main
from p2ploader.core import notifications as nt
from p2ploader.errors import LivePlaylistStuckError, PlaylistError, UsageError
from p2ploader.hls import StalePlaylistWatch
from p2ploader.testing.origin import LiveSettings, OriginServer
from tests.ffmpeg_streams import av_stream, rewrite_media  # noqa: F401

TARGET = 2.0  # the stream's EXT-X-TARGETDURATION, seconds


# --------------------------------------------------------------------------------------------------
# The watch, on a driven clock


def test_the_default_limit_reports_stale_after_2_and_stuck_after_3_5_target_durations() -> None:
    limit = LoaderConfig().live_playlist_stuck_reloads
    assert limit == 6
    watch = StalePlaylistWatch(limit, now=0.0, target_duration=TARGET)
    verdicts = {}
    now = 0.0
    while now < 20.0:  # reload at RFC pace: a target duration, then half of it while unchanged
        now += TARGET if now == 0.0 else TARGET / 2
        verdict = watch.unchanged(now=now, target_duration=TARGET)
        if verdict is not None:
            verdicts[verdict] = now
        if verdict == "stuck":
            break
    assert verdicts == {"stale": 2 * TARGET, "stuck": 3.5 * TARGET}
    assert watch.counted == 6


def test_fast_reloads_are_counted_at_the_rfc_pace() -> None:
    watch = StalePlaylistWatch(6, now=0.0, target_duration=TARGET)
    verdicts = {}
    for tick in range(1, 200):  # a reload every 0.05 s
        verdict = watch.unchanged(now=tick * 0.05, target_duration=TARGET)
        if verdict is not None:
            verdicts.setdefault(verdict, round(tick * 0.05, 3))
    assert verdicts == {"stale": 2 * TARGET, "stuck": 3.5 * TARGET}


def test_a_change_starts_the_count_again_and_zero_never_reports() -> None:
    watch = StalePlaylistWatch(2, now=0.0, target_duration=TARGET)
    assert watch.unchanged(now=2.0, target_duration=TARGET) == "stale"
    watch.changed(now=2.5, target_duration=TARGET)
    assert watch.counted == 0 and watch.since == 2.5
    assert watch.unchanged(now=4.0, target_duration=TARGET) is None  # not a target duration yet
    assert watch.unchanged(now=4.5, target_duration=TARGET) == "stale"
    assert watch.unchanged(now=5.5, target_duration=TARGET) == "stuck"
    never = StalePlaylistWatch(0, now=0.0, target_duration=TARGET)
    assert all(never.unchanged(now=t, target_duration=TARGET) is None for t in range(1, 100))
    with pytest.raises(UsageError):
        StalePlaylistWatch(-1, now=0.0, target_duration=TARGET)


def test_the_error_is_a_playlist_error_naming_the_url_and_count() -> None:
    error = LivePlaylistStuckError("http://o.test/v.m3u8", unchanged_reloads=6, seconds=7.0)
    assert isinstance(error, PlaylistError)
    assert str(error) == (
        "http://o.test/v.m3u8: live playlist stuck: unchanged after 6 reloads (7.0 s) and no EXT-X-ENDLIST"
    )


# --------------------------------------------------------------------------------------------------
# A real origin serving a VOD playlist cut before #EXT-X-ENDLIST


@pytest.fixture
def cut_stream(av_stream: Path, tmp_path: Path) -> Path:  # noqa: F811
    root = tmp_path / "cut"
    shutil.copytree(av_stream, root)
    rewrite_media(root / "video" / "index.m3u8", lambda lines: [x for x in lines if x != "#EXT-X-ENDLIST"])
    return root


@pytest.mark.anyio
@pytest.mark.e2e
async def test_segments_notify_then_raise_with_the_default_limit(cut_stream: Path) -> None:
    # Fast reloads (the watch counts them at RFC pace): the report comes 3.5 target durations
    # (7 s) after the first load, the notification at 2 (4 s).
    config = LoaderConfig(use_p2p=False, live_refresh_interval=0.1)
    notes: list[nt.LivePlaylistStale] = []
    got = []
    with OriginServer(cut_stream) as origin:
        url = origin.url_for("video/index.m3u8")
        async with open_loader(url, config=config) as loader:
            assert loader.is_live
            loader.add_listener(lambda n: notes.append(n) if isinstance(n, nt.LivePlaylistStale) else None)

            async def consume() -> None:
                async for loaded in loader.segments():
                    got.append(loaded.id.sequence)

            with pytest.raises(LivePlaylistStuckError) as caught:
                await consume()
    assert got == [3, 4, 5]  # live: from 3 segments before the edge, then nothing more
    assert notes == [nt.LivePlaylistStale(url=url, unchanged_reloads=3, limit=6)]
    assert caught.value.url == url and caught.value.unchanged_reloads == 6
    assert 3.5 * TARGET - 0.5 <= caught.value.seconds <= 3.5 * TARGET + 2.0


@pytest.mark.anyio
@pytest.mark.e2e
async def test_play_raises_instead_of_reporting_a_normal_end(cut_stream: Path) -> None:
    config = LoaderConfig(use_p2p=False, live_refresh_interval=0.1, live_playlist_stuck_reloads=2)
    with OriginServer(cut_stream) as origin:
        async with open_loader(origin.url_for("video/index.m3u8"), config=config) as loader:
            with pytest.raises(LivePlaylistStuckError):
                await play(loader, duration=30.0)


@pytest.mark.anyio
@pytest.mark.e2e
async def test_a_frozen_live_origin_is_reported_and_an_advancing_one_is_not(cut_stream: Path) -> None:
    config = LoaderConfig(use_p2p=False, live_refresh_interval=0.1, live_playlist_stuck_reloads=2)
    with OriginServer(cut_stream, live=LiveSettings(window_segments=4)) as origin:
        url = origin.url_for("live/video/index.m3u8")
        async with open_loader(url, config=config) as loader:
            report = await play(loader, duration=5.0)  # 2 target durations + a margin: not stuck
            assert report.played > 0
            origin.freeze_live()
            with pytest.raises(LivePlaylistStuckError):
                await play(loader, duration=30.0)


@pytest.mark.parametrize("command", ["play", "view"])
def test_the_play_and_view_commands_exit_non_zero_with_one_line(
    command: str, cut_stream: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "config.json"
    config.write_text('{"useP2P": false, "liveRefreshInterval": 100, "livePlaylistStuckReloads": 2}')
    with OriginServer(cut_stream) as origin:
        url = origin.url_for("video/index.m3u8")
        code = main([command, url, "--config", str(config), "--quiet", "--duration", "30"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == EXIT_ERROR
    assert err[-1].startswith(
        f"p2ploader {command}: error: {url}: live playlist stuck: unchanged after 2 reloads"
    )
    assert not any("Traceback" in line for line in err)
    assert len([line for line in err if "stuck" in line]) == 1  # the error, not also a log line
