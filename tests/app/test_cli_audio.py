"""``p2ploader swarm``, ``view`` and ``play`` on a stream with separate audio: audio is loaded,
shared and counted (the ffmpeg-made stream of :mod:`tests.ffmpeg_streams`)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from p2ploader.app.cli import build_parser, main
from p2ploader.sample import vod_segment_bytes
from p2ploader.testing.origin import LiveSettings, OriginServer
from tests.ffmpeg_streams import av_stream  # noqa: F401 (the session fixture)

pytestmark = pytest.mark.e2e


@pytest.fixture
def av(av_stream: Path) -> Path:  # noqa: F811
    return av_stream


def audio_bytes(root: Path, folder: str) -> int:
    return sum(map(len, vod_segment_bytes(root / folder / "index.m3u8")))


def test_a_three_viewer_swarm_shares_the_audio_with_no_stall(
    av: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    stats_file = tmp_path / "swarm.json"
    with OriginServer(av, live=LiveSettings(window_segments=6)) as origin:
        code = main(
            [
                "swarm",
                origin.url_for("live/master.m3u8"),
                *("-n", "3", "--duration", "12", "--stagger", "2", "--latency", "3", "--seed", "1"),
                *("--quiet", "--json", str(stats_file)),
            ]
        )
    out = capsys.readouterr().out
    assert code == 0, out
    stats = json.loads(stats_file.read_text())
    assert stats["settings"]["audio"] is None  # the default: the group's DEFAULT=YES rendition
    total = stats["total"]
    assert total["failures"] == 0 and total["stalls"] == 0 and total["mismatches"] == 0
    audio, video = total["media"]["audio"], total["media"]["video"]
    assert audio["http_bytes"] > 0 and audio["p2p_bytes"] > 0  # audio went peer to peer
    assert total["http_bytes"] == audio["http_bytes"] + video["http_bytes"]
    assert total["p2p_bytes"] == audio["p2p_bytes"] + video["p2p_bytes"]
    for session in stats["sessions"]:
        assert session["result"]["media"]["audio"]["rendition"] == "a:aud:English"
    assert "audio P2P" in out and "by media type: video HTTP" in out


def test_view_and_play_load_the_chosen_audio_and_count_it(
    av: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with OriginServer(av) as origin:
        url = origin.url_for("master.m3u8")
        view_json, play_json = tmp_path / "view.json", tmp_path / "play.json"
        assert main(["view", url, "--audio", "fr", "--no-p2p", "--quiet", "--json", str(view_json)]) == 0
        view_out = capsys.readouterr().out
        assert (
            main(["play", url, "--audio", "none", "--duration", "3", "--quiet", "--json", str(play_json)])
            == 0
        )
    view, play = json.loads(view_json.read_text()), json.loads(play_json.read_text())
    assert "with audio a:aud:Francais" in view_out
    assert view["audio_rendition"] == "a:aud:Francais"
    assert view["audio_http_bytes"] == audio_bytes(av, "audio_fr")
    assert view["http_bytes"] == view["audio_http_bytes"] + view["video_http_bytes"]
    assert view["stalls"] == 0 and view["played_s"] > 11
    assert "audio_http_bytes" not in play  # --audio none: the variant alone, as before


def test_an_unknown_audio_choice_is_one_error_line_listing_the_choices(
    av: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with OriginServer(av) as origin:
        code = main(["play", origin.url_for("master.m3u8"), "--audio", "de", "--quiet"])
    err = capsys.readouterr().err
    assert code != 0
    assert err.startswith("p2ploader play: error: no audio rendition 'de'")
    assert "a:aud:English (language en, name English)" in err


@pytest.mark.parametrize("command", ["play", "view", "swarm", "demo"])
def test_every_viewer_command_takes_audio_and_subtitles(command: str) -> None:
    argv = [command] if command == "demo" else [command, "http://127.0.0.1:9/master.m3u8"]
    args = build_parser().parse_args([*argv, "--audio", "fr", "--subtitles", "auto"])
    assert (args.audio, args.subtitles) == ("fr", True)
    args = build_parser().parse_args([*argv, "--audio", "none"])
    assert (args.audio, args.subtitles) == (False, None)


def test_the_terminal_views_show_the_audio_figures() -> None:
    from rich.console import Console

    from p2ploader.aio.loader import MediaStatistics
    from p2ploader.aio.player import PlaybackSnapshot
    from p2ploader.app.swarmrun import MediaFigures, SwarmRunner, ViewerFigures
    from p2ploader.app.views import swarm_line, swarm_table, viewer_line, viewer_panel

    by_type = {
        "video": MediaStatistics(rendition="v0", http_bytes=3000, p2p_bytes=1000),
        "audio": MediaStatistics(rendition="a:aud:English", http_bytes=100, p2p_bytes=300),
    }
    snapshot = PlaybackSnapshot(
        time=5.0, position=4.0, buffer=6.0, state="playing", live_edge_distance=None,
        http_bytes=3100, p2p_bytes=1300, p2p_uploaded_bytes=0, peers=2, stalls=0, seeks=0,
        rendition="v0", by_media_type=by_type,
    )  # fmt: skip
    line = viewer_line(snapshot)
    assert "audio=a:aud:English" in line and line.endswith("audio-ratio=75%")
    console = Console(width=160, record=True)
    console.print(viewer_panel(snapshot, url="http://x/master.m3u8", forward_buffer=10.0))
    assert "a:aud:English: HTTP 100 B   P2P 300 B   ratio 75%" in console.export_text()

    media = {
        "video": MediaFigures(http_bytes=3000, p2p_bytes=1000),
        "audio": MediaFigures(http_bytes=100, p2p_bytes=300),
    }
    row = ViewerFigures(
        viewer=0, sessions=1, online=1, state="playing", http_bytes=3100, p2p_bytes=1300,
        p2p_uploaded_bytes=0, peers=2, stalls=0, rebuffer_time=0.0, buffer=6.0,
        live_edge_distance=None, startup_time=0.1, segments_played=3, mismatches=0, cpu_time=0.5,
        failures=0, rendition="v0", media=media,
    )  # fmt: skip
    total = SwarmRunner.total([row])
    assert total.media["audio"].p2p_ratio == 0.75
    assert swarm_line([row], total, elapsed=5.0).endswith("video 25% audio 75%")
    console = Console(width=200, record=True)
    console.print(swarm_table([row], total, elapsed=5.0, duration=60.0))
    table = console.export_text()
    assert "audio P2P" in table and "300 B (75%)" in table
