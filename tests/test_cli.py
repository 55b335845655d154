"""The p2ploader command, run for real."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from p2ploader.cli import build_parser, main
from p2ploader.origin import OriginServer
from p2ploader.sample import sample_path


def test_help_lists_every_subcommand(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    for command in ("demo", "play", "origin"):
        assert command in out
    for command in ("demo", "play", "origin"):
        sub = build_parser()
        with pytest.raises(SystemExit):
            sub.parse_args([command, "--help"])
        assert "--" in capsys.readouterr().out


def test_play_a_vod_stream_and_write_statistics(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out_file = tmp_path / "stats.json"
    with OriginServer(sample_path("ts")) as origin:
        code = main(
            [
                "play",
                origin.url_for("master.m3u8"),
                "--rendition",
                "0",
                "--duration",
                "3",
                "--forward-buffer",
                "60",
                "--quiet",
                "--json",
                str(out_file),
            ]
        )
    assert code == 0
    stats = json.loads(out_file.read_text())
    # With 0.6 semantics and no peers, segments come over HTTP as they become required or by the
    # random-HTTP timer (about one a second), so three seconds load a few of them.
    assert stats["http_segments"] >= 3 and stats["p2p_bytes"] == 0 and stats["rendition"] == "v0"
    assert stats["stalls"] == 0
    assert "summary:" in capsys.readouterr().out


def test_play_reports_a_bad_url_as_an_error(capsys: pytest.CaptureFixture[str]) -> None:
    with OriginServer(sample_path("ts")) as origin:
        code = main(["play", origin.url_for("nope.m3u8"), "--quiet"])
    assert code == 1
    assert "HTTP 404" in capsys.readouterr().err


def test_demo_runs_briefly(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", "--duration", "2", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "origin_segment_bytes" in out and "stalls               0" in out
