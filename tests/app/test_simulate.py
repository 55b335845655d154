"""``p2ploader simulate``: parsing, a small sweep in parallel processes, and the metrics."""

from __future__ import annotations

import argparse
import csv
import json
import math
from pathlib import Path

import pytest

from p2ploader.app.simulate import add_simulate_parser, parse_setting, parse_sweep, plan, run_simulate
from p2ploader.errors import ConfigError
from p2ploader.sim import Scenario, SimResult
from p2ploader.sim.metrics import (
    compare_to_baseline,
    distribution,
    jain_index,
    measure,
    peer_p2p_ratios,
    quantile,
    segment_sources,
)
from p2ploader.sim.viewer import ViewerFigures

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="p2ploader")
    add_simulate_parser(top.add_subparsers(dest="command", required=True))
    return top


# --------------------------------------------------------------------------------------------------
# Parsing


def test_sweep_values_are_json_when_they_parse_and_strings_otherwise() -> None:
    assert parse_sweep("viewers=5,10,50") == ("viewers", [5, 10, 50])
    assert parse_sweep("loader.httpDownloadProbability=0.1, 0.01") == (
        "loader.httpDownloadProbability",
        [0.1, 0.01],
    )
    assert parse_sweep("uplink_mbps=[1,5],[5,20],3") == ("uplink_mbps", [[1, 5], [5, 20], 3])
    assert parse_sweep("live=true,false") == ("live", [True, False])
    assert parse_sweep("name=a,b") == ("name", ["a", "b"])
    assert parse_setting("loader.httpDownloadRanges=true") == ("loader.httpDownloadRanges", True)
    assert parse_setting("name=x=y") == ("name", "x=y")
    for bad in ("viewers", "=1,2", "viewers=", "policy=p2pml-0.6,p2pml-2.2", "loader.policy=x"):
        with pytest.raises(argparse.ArgumentTypeError):
            parse_sweep(bad)


def test_the_parser_defaults_and_repeatable_options() -> None:
    args = parser().parse_args(["simulate", "small-live"])
    assert args.scenario == "small-live" and args.sweep == [] and args.settings == []
    assert args.policy is None and args.compare_p2p_off is True and args.jobs is None
    assert args.handler is run_simulate
    args = parser().parse_args(
        [
            "simulate",
            "x.toml",
            "--sweep",
            "viewers=2,3",
            "--sweep",
            "seed=1,2",
            "--policy",
            "p2pml-0.6",
            "--policy",
            "p2pml-2.2",
            "--no-compare-p2p-off",
            "--seed",
            "9",
            "--jobs",
            "2",
            "--out",
            "d",
        ]
    )
    assert args.sweep == [("viewers", [2, 3]), ("seed", [1, 2])]
    assert args.policy == ["p2pml-0.6", "p2pml-2.2"] and args.compare_p2p_off is False
    assert (args.seed, args.jobs, args.out) == (9, 2, "d")
    with pytest.raises(SystemExit):
        parser().parse_args(["simulate", "small-live", "--jobs", "0"])
    top = argparse.ArgumentParser(prog="p2ploader")
    sub = top.add_subparsers(dest="command")
    add_simulate_parser(sub)
    assert all(action.help for action in sub.choices["simulate"]._actions)


def test_plan_checks_keys_and_policies_before_running() -> None:
    base = Scenario(viewers=2, duration_s=10.0)
    tasks = plan(base, sweeps=[("viewers", [2, 3])], policies=["p2pml-0.6", "p2pml-2.2"])
    assert len(tasks) == 6 and [t.index for t in tasks] == list(range(6))
    assert [(t.scenario.viewers, t.scenario.policy, t.p2p) for t in tasks[:3]] == [
        (2, "p2pml-0.6", True),
        (2, "p2pml-2.2", True),
        (2, "p2pml-0.6", False),
    ]
    with pytest.raises(ConfigError, match="viewerz"):
        plan(base, sweeps=[("viewerz", [1])])
    with pytest.raises(ConfigError, match="nope"):
        plan(base, policies=["nope"])
    with pytest.raises(ConfigError):
        plan(base, sweeps=[("loader.requiredSegmentsPriority", [-1])])
    with pytest.raises(ConfigError, match="many"):
        plan(base, sweeps=[("viewers", ["many"])])
    with pytest.raises(ConfigError, match="once"):
        plan(base, sweeps=[("viewers", [2]), ("viewers", [3])])


# --------------------------------------------------------------------------------------------------
# Running


def test_a_small_sweep_runs_in_two_processes_and_writes_csv_json_and_plots(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    args = parser().parse_args(
        [
            "simulate",
            "small-live",
            "--set",
            "duration_s=40",
            "--set",
            "viewers=3",
            "--sweep",
            "latency_segments=2,3",
            "--sweep",
            "uplink_mbps=[2,5],[5,20]",
            "--policy",
            "p2pml-0.6",
            "--policy",
            "p2pml-2.2",
            "--jobs",
            "2",
            "--out",
            str(out),
            "--quiet",
        ]
    )
    assert run_simulate(args) == 0
    printed = capsys.readouterr().out
    assert "latency_segments" in printed and "p2pml-2.2" in printed and "12 runs" in printed

    with (out / "results.csv").open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 4 * 3  # 4 grid points x (2 policies + P2P off)
    assert {r["policy"] for r in rows} == {"p2pml-0.6", "p2pml-2.2"}
    assert {r["uplink_mbps"] for r in rows} == {"[2, 5]", "[5, 20]"}
    on = [r for r in rows if r["p2p"] == "True"]
    assert all(r["origin_saving"] != "" for r in on)
    assert all(0 <= float(r["p2p_ratio"]) <= 1 for r in rows)

    document = json.loads((out / "results.json").read_text())
    assert document["sweep"] == {"latency_segments": [2, 3], "uplink_mbps": [[2, 5], [5, 20]]}
    assert document["policies"] == ["p2pml-0.6", "p2pml-2.2"]
    assert document["scenario"]["viewers"] == 3 and len(document["runs"]) == 12

    with (out / "viewers.csv").open(newline="") as handle:
        viewers = list(csv.DictReader(handle))
    assert len(viewers) == 12 * 3

    for name in ("sweep_latency_segments.png", "sweep_uplink_mbps.png"):
        data = (out / name).read_bytes()
        assert data.startswith(PNG_MAGIC) and len(data) > 10_000


def test_without_a_sweep_policies_are_side_by_side_and_nothing_is_written(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    args = parser().parse_args(
        ["simulate", "small-live", "--set", "duration_s=30", "--policy", "p2pml-0.6", "--policy", "p2pml-2.2"]
    )
    args.jobs = 1
    assert run_simulate(args) == 0
    printed = capsys.readouterr().out
    header = next(line for line in printed.splitlines() if "p2pml-0.6" in line and "P2P off" in line)
    assert header.index("p2pml-0.6") < header.index("p2pml-2.2") < header.index("P2P off")
    for label in ("P2P ratio", "best 1 - 1/N", "origin saving vs P2P off", "upload fairness (Jain)"):
        assert label in printed
    assert list(tmp_path.iterdir()) == []


def test_a_scenario_file_and_a_bad_key(tmp_path: Path) -> None:
    path = tmp_path / "s.json"
    path.write_text(json.dumps({"name": "file", "viewers": 2, "duration_s": 20, "loader": {}}))
    args = parser().parse_args(["simulate", str(path), "--no-compare-p2p-off", "--quiet", "--jobs", "1"])
    assert run_simulate(args) == 0
    args = parser().parse_args(["simulate", str(path), "--set", "viewerz=3"])
    with pytest.raises(ConfigError, match="viewerz"):
        run_simulate(args)


# --------------------------------------------------------------------------------------------------
# Metrics on a hand-made result

SEGMENT = 1000  # bytes: 1.6 kbit/s x 5 s / 8


def figures(
    peer_id: str,
    *,
    http: int,
    p2p: int,
    up: int,
    stalls: int = 0,
    rebuffer: float = 0.0,
    startup: float | None = 1.0,
    download_only: bool = False,
) -> ViewerFigures:
    return ViewerFigures(
        peer_id=peer_id,
        joined=0.0,
        left=None,
        download_only=download_only,
        http_bytes=http,
        p2p_bytes=p2p,
        uploaded_bytes=up,
        http_requests=http // SEGMENT,
        stalls=stalls,
        rebuffer_time=rebuffer,
        startup_time=startup,
        played=100.0,
        segments_played=20,
    )


def hand_made(*, p2p: bool = True) -> SimResult:
    scenario = Scenario(name="hand", viewers=4, renditions_kbps=(1.6,), segment_duration_s=5.0)
    viewers = (
        figures("a", http=10 * SEGMENT, p2p=10 * SEGMENT, up=30 * SEGMENT),
        figures("b", http=0, p2p=20 * SEGMENT, up=10 * SEGMENT, stalls=2, rebuffer=3.0, startup=2.0),
        figures("c", http=20 * SEGMENT, p2p=0, up=0, startup=3.0),
        figures("d", http=0, p2p=10 * SEGMENT, up=0, startup=None, download_only=True),
    )
    return SimResult(
        scenario=scenario,
        p2p=p2p,
        viewers=viewers,
        origin_bytes=30 * SEGMENT,
        origin_requests=30,
        segments_published=20,
        mean_audience=4.0,
        trace_digest=None,
        callbacks_run=0,
        segment_uploaders=30,
    )


def test_statistics_helpers() -> None:
    assert quantile([1.0, 2.0, 3.0, 4.0, 5.0], 0.5) == 3.0
    assert quantile([0.0, 10.0], 0.1) == pytest.approx(1.0)
    assert math.isnan(quantile([], 0.5))
    d = distribution([4.0, 1.0, 3.0, 2.0])
    assert (d.count, d.min, d.median, d.max, d.mean) == (4, 1.0, 2.5, 4.0, 2.5)
    assert distribution([]).count == 0 and math.isnan(distribution([]).median)
    assert jain_index([5, 5, 5, 5]) == 1.0
    assert jain_index([8, 0, 0, 0]) == 0.25
    assert jain_index([]) == 1.0 and jain_index([0, 0]) == 1.0


def test_metrics_of_a_hand_made_result() -> None:
    result = hand_made()
    assert peer_p2p_ratios(result.viewers) == [0.5, 1.0, 0.0, 1.0]
    m = measure(result)
    assert m.p2p_ratio == pytest.approx(40 / 70)
    assert m.best_ratio == 0.75 and m.ratio_to_best == pytest.approx(40 / 70 / 0.75)
    assert (m.peer_p2p_ratio_min, m.peer_p2p_ratio_median, m.peer_p2p_ratio_max) == (0.0, 0.75, 1.0)
    assert m.origin_requests_per_segment == 1.5 and m.origin_bytes_per_segment == 1.5 * SEGMENT
    assert (m.stalls, m.stalled_viewers, m.rebuffer_s) == (2, 1, 3.0)
    assert m.rebuffer_share == pytest.approx(3.0 / 400)
    assert m.startup_median_s == 2.0 and m.startup_max_s == 3.0  # the viewer that never started is left out
    # Upload per upload-capable viewer (d is download-only): 30, 10, 0 segments.
    assert m.upload_mean_bytes == pytest.approx(40 * SEGMENT / 3) and m.upload_max_bytes == 30 * SEGMENT
    assert m.upload_fairness == pytest.approx(40**2 / (3 * (30**2 + 10**2)))
    sources = segment_sources(result)
    assert sources.http_fetches == 1.5
    assert sources.p2p_copies == pytest.approx(40 / 20)  # 40 segments' worth of P2P bytes over 20
    assert sources.uploaders == 2
    # 30 distinct (segment, uploader) pairs over 20 published segments.
    assert sources.uploaders_per_segment == pytest.approx(1.5)
    assert m.origin_vs_nop2p is None and m.origin_saving is None
    off = measure(
        SimResult(
            scenario=result.scenario,
            p2p=False,
            viewers=result.viewers,
            origin_bytes=120 * SEGMENT,
            origin_requests=120,
            segments_published=20,
            mean_audience=4.0,
            trace_digest=None,
            callbacks_run=0,
        )
    )
    compared = compare_to_baseline(m, off)
    assert compared.origin_vs_nop2p == 0.25 and compared.origin_saving == 0.75
    assert set(compared.as_row()) >= {
        "p2p_ratio",
        "origin_saving",
        "upload_fairness",
        "uploaders_per_segment",
    }
