"""The p2ploader command, run for real."""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import attrs
import pytest

from p2ploader.app.cli import EXIT_ERROR, _load_config, build_parser, error_line, main
from p2ploader.app.swarmrun import ChurnSettings, churn_schedule
from p2ploader.config import LoaderConfig
from p2ploader.errors import BindError, P2PLoaderError
from p2ploader.sample import sample_path
from p2ploader.testing.origin import LiveSettings, OriginServer
from p2ploader.tracker import TrackerServer

SUBCOMMANDS = ("demo", "view", "swarm", "play", "origin", "tracker")


def subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    raise AssertionError("no subcommands")


def test_help_lists_every_subcommand(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    for command in SUBCOMMANDS:
        assert command in out
    for command in SUBCOMMANDS:
        with pytest.raises(SystemExit) as exit_info:
            main([command, "--help"])
        assert exit_info.value.code == 0
        assert "--" in capsys.readouterr().out


def test_every_subcommand_and_option_has_help_text() -> None:
    parser = build_parser()
    for name, sub in subparsers(parser).items():
        assert sub.description, name
        for action in sub._actions:
            assert action.help and action.help.strip(), (name, action.option_strings or action.dest)


@pytest.mark.parametrize(
    "argv",
    [
        ["swarm", "http://127.0.0.1:9/x.m3u8", "-n", "0"],
        ["demo", "--churn-leave", "-1"],
        ["demo", "--duration", "soon"],
        ["view", "http://127.0.0.1:9/x.m3u8", "--latency", "0"],
    ],
)
def test_bad_numbers_are_usage_errors(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    assert "error: argument" in capsys.readouterr().err


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


def test_view_a_live_stream_with_abr_and_write_statistics(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out_file = tmp_path / "view.json"
    with OriginServer(sample_path("ts"), live=LiveSettings(window_segments=10)) as origin:
        code = main(
            [
                "view",
                origin.url_for("live/master.m3u8"),
                "--duration",
                "4",
                "--rendition",
                "v0",
                "--abr",
                "--no-p2p",
                "--interval",
                "1",
                "--json",
                str(out_file),
            ]
        )
    assert code == 0
    stats = json.loads(out_file.read_text())
    assert stats["stalls"] == 0 and stats["http_bytes"] > 0 and stats["p2p_bytes"] == 0
    assert 0 < stats["live_edge_distance_s"] <= 20 and stats["abr"] is True
    # Loopback throughput is far above every rendition: ABR stepped up from v0 at once.
    assert stats["rendition"] in ("v1", "v2")
    out = capsys.readouterr().out
    # Not a terminal: plain progress lines instead of the live view, then the summary.
    assert "live-edge=" in out and "ratio=" in out and "summary" in out


def test_demo_runs_a_small_swarm_end_to_end(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    plot, stats_file = tmp_path / "demo.png", tmp_path / "demo.json"
    code = main(
        [
            "demo",
            "--viewers",
            "3",
            "--duration",
            "12",
            "--quiet",
            "--plot",
            str(plot),
            "--json",
            str(stats_file),
        ]
    )
    out = capsys.readouterr().out
    assert code == 0, out
    stats = json.loads(stats_file.read_text())
    assert len(stats["viewers"]) == 3 and [v["viewer"] for v in stats["viewers"]] == [0, 1, 2]
    total = stats["total"]
    assert total["p2p_bytes"] > 0 and total["p2p_ratio"] > 0, total
    assert total["stalls"] == 0 and total["mismatches"] == 0 and total["failures"] == 0, stats["viewers"]
    assert all(v["segments_played"] > 0 and v["http_bytes"] + v["p2p_bytes"] > 0 for v in stats["viewers"])
    assert stats["origin_segment_bytes"] > 0 and stats["timeline"]
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and plot.stat().st_size > 10_000
    assert "origin sent" in out and f"plot: {plot.resolve()}" in out and "per viewer and in total" in out


@pytest.fixture
def tracker_url() -> Iterator[str]:
    """The embedded tracker on its own event loop in a thread (the CLI runs its own loop)."""
    loop = asyncio.new_event_loop()
    ready = threading.Event()
    urls: list[str] = []
    stop = asyncio.Event()

    async def serve() -> None:
        async with TrackerServer() as tracker:
            urls.append(tracker.url)
            ready.set()
            await stop.wait()

    thread = threading.Thread(target=loop.run_until_complete, args=(serve(),), daemon=True)
    thread.start()
    assert ready.wait(10)
    try:
        yield urls[0]
    finally:
        loop.call_soon_threadsafe(stop.set)
        thread.join(10)
        loop.close()


def test_swarm_with_churn_against_a_local_origin_and_tracker(
    tmp_path: Path, tracker_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    stats_file = tmp_path / "swarm.json"
    args = ["-n", "3", "--duration", "14", "--stagger", "1", "--churn-leave", "8", "--churn-rejoin", "30"]
    with OriginServer(sample_path("ts"), live=LiveSettings(window_segments=10)) as origin:
        code = main(
            [
                "swarm",
                origin.url_for("live/master.m3u8"),
                *args,
                "--seed",
                "2",
                "--rendition",
                "v1",
                "--latency",
                "4",
                "--tracker",
                tracker_url,
                "--quiet",
                "--json",
                str(stats_file),
            ]
        )
    out = capsys.readouterr().out
    assert code == 0, out
    stats = json.loads(stats_file.read_text())
    want = churn_schedule(
        3, duration=14.0, stagger=1.0, churn=ChurnSettings(leave_per_minute=8, rejoin_per_minute=30), seed=2
    )
    assert len(want) > 3  # this seed makes someone leave and come back within the run
    got = [(s["viewer"], s["number"], s["start"], s["end"]) for s in stats["sessions"]]
    assert got == [(s.viewer, s.number, s.start, s.end) for s in want]
    assert all(s["status"] == "done" for s in stats["sessions"]), stats["sessions"]
    assert max(v["sessions"] for v in stats["viewers"]) >= 2
    total = stats["total"]
    assert total["failures"] == 0 and total["stalls"] == 0 and total["http_bytes"] > 0
    assert "per viewer and in total" in out


# --------------------------------------------------------------------------------------------------
# Errors and exit codes


def _run_cli(*argv: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """Run ``p2ploader ARGV`` in a fresh interpreter, as a user types it (no pytest log capture)."""
    code = "import sys; from p2ploader.app.cli import main; sys.exit(main())"
    return subprocess.run(
        [sys.executable, "-c", code, *argv], capture_output=True, text=True, timeout=timeout, check=False
    )


@pytest.mark.parametrize("command", ["origin", "tracker", "proxy"])
def test_every_server_command_reports_a_port_in_use_as_one_line(command: str, busy_port: int) -> None:
    with OriginServer(sample_path("ts")) as origin:
        argv = [command, "--port", str(busy_port)]
        if command == "proxy":
            argv = [command, origin.url_for("master.m3u8"), "--port", str(busy_port)]
        result = _run_cli(*argv)
    assert result.returncode == EXIT_ERROR == 1
    assert result.stderr.splitlines() == [
        f"p2ploader {command}: cannot listen on 127.0.0.1:{busy_port}: address already in use"
    ]


def test_a_missing_config_file_is_one_line_naming_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "nope.js"
    assert main(["play", "http://127.0.0.1:9/master.m3u8", "--config", str(missing)]) == EXIT_ERROR
    assert capsys.readouterr().err.splitlines() == [
        f"p2ploader play: error: config file {missing}: no such file"
    ]


@pytest.mark.parametrize(
    ("name", "content", "reason"),
    [
        ("folder.json", None, "is a directory"),
        ("bad.json", "{not json", "Expecting property name"),
        ("bad.toml", "a = = 1", "Invalid value"),
        ("bad.js", "{ forwardSegmentCount: }", "line 1"),
        ("unknown.js", "{ forwardSegmentCont: 3 }", "did you mean"),
        ("latin1.js", b"{ \xe9 }", "not UTF-8 text"),
    ],
)
def test_an_unreadable_config_file_is_one_line_naming_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str, content: str | bytes | None, reason: str
) -> None:
    path = tmp_path / name
    if content is None:
        path.mkdir()
    elif isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content)
    assert main(["view", "http://127.0.0.1:9/master.m3u8", "--config", str(path)]) == EXIT_ERROR
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1
    assert lines[0].startswith(f"p2ploader view: error: config file {path}: ") and reason in lines[0]


def _config_of(*argv: str) -> LoaderConfig:
    return _load_config(build_parser().parse_args(["play", "http://127.0.0.1:9/m.m3u8", *argv]))


def test_config_refines_the_preset(tmp_path: Path) -> None:
    refinement = tmp_path / "refine.js"
    refinement.write_text(
        "{ segments: { forwardSegmentCount: 60 },\n  loader: { simultaneousP2PDownloads: 5 } }"
    )
    preset = LoaderConfig.preset("faq-vod")
    refined = _config_of("--preset", "faq-vod", "--config", str(refinement))
    assert refined == preset.evolve(forward_segment_count=60, simultaneous_p2p_downloads=5)
    # The preset's other settings stay (the file alone would leave them at the defaults).
    assert refined.cached_segments_count == preset.cached_segments_count == 1000
    assert _config_of("--preset", "faq-vod") == preset
    alone = _config_of("--config", str(refinement))
    assert alone == LoaderConfig().evolve(forward_segment_count=60, simultaneous_p2p_downloads=5)
    assert _config_of() == LoaderConfig()


def test_config_refines_the_preset_from_json_and_toml(tmp_path: Path) -> None:
    as_json = tmp_path / "refine.json"
    as_json.write_text(json.dumps({"loader": {"simultaneousHttpDownloads": 1}}))
    as_toml = tmp_path / "refine.toml"
    as_toml.write_text("[loader]\nsimultaneousHttpDownloads = 1\n")
    expected = LoaderConfig.preset("faq-vod").evolve(simultaneous_http_downloads=1)
    assert _config_of("--preset", "faq-vod", "--config", str(as_json)) == expected
    assert _config_of("--preset", "faq-vod", "--config", str(as_toml)) == expected


def test_view_exits_non_zero_on_a_stream_that_404s(capsys: pytest.CaptureFixture[str]) -> None:
    with OriginServer(sample_path("ts")) as origin:
        code = main(["view", origin.url_for("nope.m3u8"), "--quiet", "--no-p2p"])
    assert code == EXIT_ERROR
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and err[0].startswith("p2ploader view: error: ") and "HTTP 404" in err[0]


@pytest.mark.parametrize("command", ["play", "view"])
def test_play_and_view_exit_non_zero_when_no_segment_can_be_loaded(
    command: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # A VOD playlist whose segments all 404 from the real local origin: nothing can play.
    (tmp_path / "media.m3u8").write_text(
        "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:0\n"
        + "".join(f"#EXTINF:2.0,\nmissing{i}.ts\n" for i in range(3))
        + "#EXT-X-ENDLIST\n"
    )
    extra = ["--no-p2p"] if command == "view" else []
    with OriginServer(tmp_path) as origin:
        code = main([command, origin.url_for("media.m3u8"), "--quiet", "--duration", "3", *extra])
    assert code == EXIT_ERROR
    err = capsys.readouterr().err.splitlines()
    # How many downloads failed in 3 s depends on the retry timing; at least one did.
    expected = rf"p2ploader {command}: nothing played \(\d+ failed HTTP downloads\)"
    assert len(err) == 1 and re.fullmatch(expected, err[0]), err
    assert not err[0].endswith("(0 failed HTTP downloads)")


def test_error_line_for_a_bind_error_names_the_address() -> None:
    assert (
        error_line("origin", BindError("::1", 8080, "address already in use"))
        == "p2ploader origin: cannot listen on [::1]:8080: address already in use"
    )
    assert error_line("play", P2PLoaderError("boom")) == "p2ploader play: error: boom"


@pytest.mark.e2e
@pytest.mark.parametrize("mode", ["pools", "process-per-viewer"])
def test_swarm_runs_in_pools_by_default_and_per_process_on_request(
    mode: str, tmp_path: Path, tracker_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    import os

    from p2ploader.app.swarmrun import ViewerFigures

    stats_file = tmp_path / "swarm.json"
    with OriginServer(sample_path("ts"), live=LiveSettings(window_segments=10)) as origin:
        argv = ["swarm", origin.url_for("live/master.m3u8"), "-n", "2", "--duration", "4", "--stagger", "0.5"]
        argv += ["--tracker", tracker_url, "--quiet", "--json", str(stats_file)]
        code = main([*argv, *(["--process-per-viewer"] if mode == "process-per-viewer" else [])])
    assert code == 0
    stats = json.loads(stats_file.read_text())
    pools = len(os.sched_getaffinity(0)) if mode == "pools" else 0
    assert stats["pools"] == pools and stats["viewer_cpu_time_shared"] is (pools > 0)
    # The same figures either way: the views, the plot and the --json file read them alike.
    figures = {field.name for field in attrs.fields(ViewerFigures)} | {"p2p_ratio"}
    assert all(set(row) == figures for row in [*stats["viewers"], stats["total"]])
    assert [s["status"] for s in stats["sessions"]] == ["done", "done"], stats["sessions"]
    for session in stats["sessions"]:
        result = session["result"]
        assert result["type"] == "result" and result["stalls"] == 0 and result["segments_played"] > 0
        assert ("cpu_time_shared" in result) is (pools > 0) and result["cpu_time"] >= 0
    assert stats["total"]["cpu_time"] > 0 and stats["viewer_process_cpu_time"] > 0
    assert (f"CPU: {pools} viewer pools" if pools else "CPU: viewer processes") in capsys.readouterr().out


@pytest.mark.parametrize(("flag", "expected"), [((), False), (("--p2p-parts",), True)])
def test_proxy_takes_llhls_parts_from_peers_only_with_p2p_parts(
    flag: tuple[str, ...], expected: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    import p2ploader.proxy

    seen: dict[str, object] = {}

    async def fake_run_proxy_forever(url: str, **options: object) -> None:
        seen.update(options, url=url)

    monkeypatch.setattr(p2ploader.proxy, "run_proxy_forever", fake_run_proxy_forever)
    assert main(["proxy", "http://127.0.0.1:9/master.m3u8", *flag]) == 0
    assert seen["url"] == "http://127.0.0.1:9/master.m3u8"
    assert seen["p2p_parts"] is expected
