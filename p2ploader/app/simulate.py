"""The ``p2ploader simulate`` command: run a scenario, or a grid of them, and report.

``p2ploader simulate SCENARIO`` loads a preset or a ``.toml``/``.json`` scenario file, runs it for
each ``--policy`` (default: the scenario's) and, unless ``--no-compare-p2p-off``, once with P2P off
for the origin saving, then prints a table: one column per policy. Each ``--sweep KEY=V1,V2,...``
adds a dimension to a grid; every point of the grid runs for every policy (and with P2P off), in
parallel processes (``--jobs``) or as Ray tasks on a cluster (``--cluster ADDRESS``,
:mod:`p2ploader.app.sim_cluster`), and the command writes ``results.csv``, ``results.json``,
``viewers.csv`` and one PNG per swept key (P2P ratio, stalls and startup time against the key's
values, a line per policy) into ``--out``.

The figures are defined in :mod:`p2ploader.sim.metrics`; the plots are drawn by
:mod:`p2ploader.app.sim_plots`. :func:`plan` and :func:`run_tasks` are the reusable parts (the policy
table benchmark uses them).
"""

from __future__ import annotations

import argparse
import csv
import itertools
import json
import math
import os
import re
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from pathlib import Path
from typing import Any

import attrs

from p2ploader.core.policies import available_policies
from p2ploader.errors import ConfigError, UsageError
from p2ploader.sim.metrics import RunMetrics, compare_to_baseline, measure, peer_p2p_ratios
from p2ploader.sim.run import SimResult, run_scenario
from p2ploader.sim.scenario import PRESETS, Scenario, load_scenario

__all__ = [
    "SimTask",
    "TaskResult",
    "add_simulate_parser",
    "check_policies",
    "format_table",
    "parse_setting",
    "parse_sweep",
    "parse_value",
    "plan",
    "result_lines",
    "run_simulate",
    "run_tasks",
    "simulate_task",
    "summary_table",
    "write_outputs",
]

_MB = 1_000_000


# --------------------------------------------------------------------------------------------------
# Parsing KEY=VALUE and KEY=V1,V2,...


def parse_value(text: str) -> Any:
    """``text`` as JSON when it parses (numbers, ``true``, ``[1, 5]``, ``"x"``), else the string."""
    try:
        return json.loads(text)
    except ValueError:
        return text


def _split_top_level(text: str) -> list[str]:
    """Split on commas outside brackets and quotes: ``[1,5],[5,20]`` gives two items."""
    parts: list[str] = []
    current: list[str] = []
    depth, quoted = 0, False
    for char in text:
        if char == '"':
            quoted = not quoted
        elif not quoted and char in "[{":
            depth += 1
        elif not quoted and char in "]}":
            depth -= 1
        if char == "," and depth == 0 and not quoted:
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    parts.append("".join(current))
    return parts


def _key_and_text(text: str, what: str) -> tuple[str, str]:
    key, sep, rest = text.partition("=")
    key = key.strip()
    if not sep or not key or not rest.strip():
        raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}")
    if key == "loader.policy":
        raise argparse.ArgumentTypeError("pick policies with --policy (or the scenario's 'policy' field)")
    return key, rest.strip()


def parse_sweep(text: str) -> tuple[str, list[Any]]:
    """``KEY=V1,V2,...`` as ``(KEY, [values])``; each value parsed by :func:`parse_value`."""
    key, rest = _key_and_text(text, "KEY=V1,V2,...")
    if key == "policy":
        raise argparse.ArgumentTypeError("compare policies with --policy, not --sweep policy=...")
    try:
        values = json.loads(f"[{rest}]")
    except ValueError:
        values = [parse_value(part.strip()) for part in _split_top_level(rest)]
    if not values:
        raise argparse.ArgumentTypeError(f"no values to sweep in {text!r}")
    return key, values


def parse_setting(text: str) -> tuple[str, Any]:
    """``KEY=VALUE`` as ``(KEY, value)``; the value parsed by :func:`parse_value`."""
    key, rest = _key_and_text(text, "KEY=VALUE")
    return key, parse_value(rest)


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {text}")
    return value


# --------------------------------------------------------------------------------------------------
# Planning and running


@attrs.frozen(kw_only=True)
class SimTask:
    """One simulator run of a grid: ``point`` holds the swept ``(key, value)`` pairs."""

    index: int
    point: tuple[tuple[str, Any], ...]
    scenario: Scenario
    p2p: bool


@attrs.frozen(kw_only=True)
class TaskResult:
    task: SimTask
    metrics: RunMetrics
    viewers: tuple[dict[str, Any], ...]
    """One row per viewer: its figures and P2P ratio."""
    wall_s: float


def _evolve(scenario: Scenario, changes: Mapping[str, Any]) -> Scenario:
    fixed = dict(changes)
    if isinstance(fixed.get("renditions_kbps"), list):  # JSON gives lists; the field is a tuple
        fixed["renditions_kbps"] = tuple(float(v) for v in fixed["renditions_kbps"])
    if "loader" in fixed:  # a whole loader table replaces the scenario's (Scenario.evolve takes dotted keys)
        loader = fixed.pop("loader")
        if not isinstance(loader, Mapping):
            raise ConfigError(f"loader must be a table of FAQ settings, got {loader!r}", key="loader")
        scenario = attrs.evolve(scenario, loader=dict(loader))
    try:
        return scenario.evolve(**fixed)
    except ConfigError:
        raise
    except (TypeError, ValueError) as exc:  # e.g. viewers="many": a comparison with a number fails
        raise ConfigError(f"bad scenario value in {changes!r}: {exc}") from exc


def check_policies(policies: Sequence[str]) -> None:
    """Raise :class:`ConfigError` for a policy name that is not registered."""
    known = available_policies()
    for name in policies:
        if name not in known:
            raise ConfigError(f"unknown policy {name!r} (known: {', '.join(known)})", key="policy")


def plan(
    base: Scenario,
    *,
    sweeps: Sequence[tuple[str, Sequence[Any]]] = (),
    policies: Sequence[str] = (),
    compare_p2p_off: bool = True,
) -> list[SimTask]:
    """The runs of a grid: for every combination of the swept values, one run per policy (default:
    the scenario's) and, with ``compare_p2p_off``, one with P2P off (with the first policy). Bad
    keys or values raise :class:`ConfigError` here, before anything runs."""
    policies = list(dict.fromkeys(policies or [base.policy]))
    check_policies(policies)
    keys = [key for key, _ in sweeps]
    if len(set(keys)) != len(keys):
        raise ConfigError("each key may be swept once")
    tasks: list[SimTask] = []
    for values in itertools.product(*(list(v) for _, v in sweeps)):
        point = tuple(zip(keys, values, strict=True))
        scenario = _evolve(base, dict(point))
        for policy in policies:
            tasks.append(
                SimTask(index=len(tasks), point=point, scenario=scenario.evolve(policy=policy), p2p=True)
            )
        if compare_p2p_off:
            tasks.append(
                SimTask(
                    index=len(tasks), point=point, scenario=scenario.evolve(policy=policies[0]), p2p=False
                )
            )
    return tasks


def _viewer_rows(result: SimResult) -> tuple[dict[str, Any], ...]:
    rows = []
    ratios = iter(peer_p2p_ratios(result.viewers))
    for viewer in result.viewers:
        row = attrs.asdict(viewer)
        row["p2p_ratio"] = next(ratios) if viewer.http_bytes + viewer.p2p_bytes else None
        rows.append(row)
    return tuple(rows)


def simulate_task(task: SimTask) -> TaskResult:
    """Run one task (in a worker process or in this one)."""
    started = time.perf_counter()
    result = run_scenario(task.scenario, p2p=task.p2p)
    return TaskResult(
        task=task,
        metrics=measure(result),
        viewers=_viewer_rows(result),
        wall_s=time.perf_counter() - started,
    )


def run_tasks(
    tasks: Sequence[SimTask],
    *,
    jobs: int | None = None,
    on_done: Callable[[TaskResult, int, int], None] | None = None,
    cluster: str | None = None,
) -> list[TaskResult]:
    """Run ``tasks`` in up to ``jobs`` processes (default: the CPU count; in this process when 1 or
    a single task) and return the results in task order, each run's origin figures compared with
    the P2P-off run of its grid point. ``on_done(result, done, total)`` is called as runs finish.

    ``cluster``: the address of a Ray cluster (``HOST:PORT`` or ``auto``) to run the tasks on
    instead, one Ray task of one CPU each (:mod:`p2ploader.app.sim_cluster`; ``jobs`` must then be
    left unset: the cluster's CPUs decide). The results are the ones a local run gives."""
    if cluster is not None and jobs is not None:
        raise UsageError("--jobs sets local processes; with --cluster the cluster's CPUs run the grid")
    jobs = jobs or os.cpu_count() or 1
    results: dict[int, TaskResult] = {}

    def finished(result: TaskResult) -> None:
        results[result.task.index] = result
        if on_done is not None:
            on_done(result, len(results), len(tasks))

    if cluster is not None:
        from p2ploader.app.sim_cluster import run_on_cluster

        for result in run_on_cluster(tasks, cluster):
            finished(result)
    elif jobs == 1 or len(tasks) <= 1:
        for task in tasks:
            finished(simulate_task(task))
    else:
        executor = ProcessPoolExecutor(max_workers=min(jobs, len(tasks)))
        try:
            pending: set[Future[TaskResult]] = {executor.submit(simulate_task, t) for t in tasks}
            while pending:
                done, pending = wait(pending, return_when=FIRST_COMPLETED)
                for future in done:
                    finished(future.result())
        finally:
            executor.shutdown(wait=True, cancel_futures=True)
    ordered = [results[t.index] for t in tasks]
    baselines = {_point_key(r.task): r.metrics for r in ordered if not r.task.p2p}
    return [
        attrs.evolve(r, metrics=compare_to_baseline(r.metrics, baselines[_point_key(r.task)]))
        if r.task.p2p and _point_key(r.task) in baselines
        else r
        for r in ordered
    ]


def _point_key(task: SimTask) -> str:
    return json.dumps(task.point)  # values may be lists (ranges): not hashable as they are


# --------------------------------------------------------------------------------------------------
# Output


def _row(result: TaskResult) -> dict[str, Any]:
    return {"run": result.task.index, **dict(result.task.point), **result.metrics.as_row()}


def _cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, list | tuple | dict):
        return json.dumps(value)
    return value


def _write_csv(path: Path, rows: Sequence[Mapping[str, Any]]) -> None:
    columns = list(dict.fromkeys(key for row in rows for key in row))
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns)
        writer.writeheader()
        for row in rows:
            writer.writerow({k: _cell(row.get(k)) for k in columns})


def _json_safe(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Mapping):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    return value


def _scenario_dict(scenario: Scenario) -> dict[str, Any]:
    data = attrs.asdict(scenario, recurse=False)
    data["loader"] = dict(scenario.loader)
    return _json_safe(data)  # type: ignore[no-any-return]


def _safe_name(key: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", key)


def write_outputs(
    out: Path,
    base: Scenario,
    sweeps: Sequence[tuple[str, Sequence[Any]]],
    results: Sequence[TaskResult],
) -> list[Path]:
    """Write ``results.csv``, ``results.json``, ``viewers.csv`` and, per swept key, ``sweep_KEY.png``
    into ``out`` (created); returns the paths written."""
    out.mkdir(parents=True, exist_ok=True)
    rows = [_row(r) for r in results]
    written = [out / "results.csv", out / "results.json", out / "viewers.csv"]
    _write_csv(written[0], rows)
    document = {
        "scenario": _scenario_dict(base),
        "sweep": {key: list(values) for key, values in sweeps},
        "policies": list(dict.fromkeys(r.task.scenario.policy for r in results if r.task.p2p)),
        "runs": rows,
    }
    written[1].write_text(json.dumps(_json_safe(document), indent=2) + "\n", encoding="utf-8")
    _write_csv(
        written[2],
        [
            {"run": r.task.index, "policy": r.metrics.policy, "p2p": r.task.p2p, **v}
            for r in results
            for v in r.viewers
        ],
    )
    if sweeps:
        from p2ploader.app.sim_plots import plot_sweep

        on = [row for row in rows if row["p2p"]]
        for key, _ in sweeps:
            path = out / f"sweep_{_safe_name(key)}.png"
            others = [k for k, _ in sweeps if k != key]
            title = f"{base.name}: {key}" + (f" (mean over {', '.join(others)})" if others else "")
            written.append(plot_sweep(on, key, path, title=title))
    return written


def _fmt(value: Any, kind: str = "") -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if kind == "pct":
        return f"{value:.1%}"
    if kind == "mb":
        return f"{value / _MB:.2f}"
    if kind == "s":
        return f"{value:.2f}"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.3f}" if abs(value) < 100 else f"{value:,.0f}"
    if isinstance(value, int):
        return f"{value:,}"
    return _label(value)


def _label(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def format_table(
    headers: Sequence[str], rows: Sequence[Sequence[str]], *, align_first_left: bool = True
) -> str:
    """A plain text table: columns padded to their widest cell, numbers right-aligned."""
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)]

    def line(cells: Sequence[str]) -> str:
        out = []
        for i, cell in enumerate(cells):
            out.append(cell.ljust(widths[i]) if i == 0 and align_first_left else cell.rjust(widths[i]))
        return "  ".join(out).rstrip()

    rule = "  ".join("-" * w for w in widths)
    return "\n".join([line(headers), rule, *(line(r) for r in rows)])


_SIDE_BY_SIDE: tuple[tuple[str, str, str], ...] = (
    ("viewers (sessions)", "viewers_total", ""),
    ("mean audience N", "mean_audience", ""),
    ("P2P ratio", "p2p_ratio", "pct"),
    ("best 1 - 1/N", "best_ratio", "pct"),
    ("ratio to best", "ratio_to_best", ""),
    ("P2P ratio per peer, p10", "peer_p2p_ratio_p10", "pct"),
    ("P2P ratio per peer, median", "peer_p2p_ratio_median", "pct"),
    ("P2P ratio per peer, p90", "peer_p2p_ratio_p90", "pct"),
    ("origin saving vs P2P off", "origin_saving", "pct"),
    ("origin requests / segment", "origin_requests_per_segment", ""),
    ("origin MB / segment", "origin_bytes_per_segment", "mb"),
    ("origin MB, total", "origin_bytes", "mb"),
    ("stalls", "stalls", ""),
    ("viewers that stalled", "stalled_viewers", ""),
    ("rebuffer time (s)", "rebuffer_s", "s"),
    ("startup median (s)", "startup_median_s", "s"),
    ("startup p90 (s)", "startup_p90_s", "s"),
    ("LL-HLS latency p50 (s)", "latency_p50_s", "s"),
    ("LL-HLS latency p95 (s)", "latency_p95_s", "s"),
    ("upload per peer, mean MB", "upload_mean_bytes", "mb"),
    ("upload per peer, max MB", "upload_max_bytes", "mb"),
    ("upload fairness (Jain)", "upload_fairness", ""),
    ("P2P copies / segment", "p2p_copies_per_segment", ""),
    ("uploaders / segment", "uploaders_per_segment", ""),
)

_SWEEP_COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("p2p", "p2p_ratio", "pct"),
    ("best", "best_ratio", "pct"),
    ("/best", "ratio_to_best", ""),
    ("peer p10-p90", "", ""),
    ("saving", "origin_saving", "pct"),
    ("req/seg", "origin_requests_per_segment", ""),
    ("stalls", "stalls", ""),
    ("rebuf s", "rebuffer_s", "s"),
    ("startup s", "startup_median_s", "s"),
    ("fair", "upload_fairness", ""),
)


def summary_table(results: Sequence[TaskResult], sweeps: Sequence[tuple[str, Sequence[Any]]]) -> str:
    """Without a sweep: the figures as rows, one column per policy (and P2P off). With a sweep: one
    row per P2P-on run."""

    def title(r: TaskResult) -> str:
        return r.metrics.policy if r.task.p2p else "P2P off"

    if not sweeps:
        headers = ["", *(title(r) for r in results)]
        rows = []
        for label, field, kind in _SIDE_BY_SIDE:
            if field.startswith("latency_") and all(getattr(r.metrics, field) is None for r in results):
                continue  # LL-HLS figures: whole-segment scenarios have none
            rows.append([label, *(_fmt(getattr(r.metrics, field), kind) for r in results)])
        return format_table(headers, rows)
    keys = [key for key, _ in sweeps]
    headers = [*keys, "policy", *(h for h, _, _ in _SWEEP_COLUMNS)]
    rows = []
    for r in results:
        if not r.task.p2p:
            continue
        point = dict(r.task.point)
        cells = [_label(point[k]) for k in keys] + [r.metrics.policy]
        for _, field, kind in _SWEEP_COLUMNS:
            if not field:
                m = r.metrics
                cells.append(f"{_fmt(m.peer_p2p_ratio_p10, 'pct')}-{_fmt(m.peer_p2p_ratio_p90, 'pct')}")
            else:
                cells.append(_fmt(getattr(r.metrics, field), kind))
        rows.append(cells)
    return format_table(headers, rows, align_first_left=False)


def _describe(s: Scenario) -> str:
    kind = "live" if s.live else "VOD"
    latency = f", {s.latency_segments} segments behind live" if s.live else ""
    if s.part_seconds is not None:
        hold_back = s.hold_back_s or s.part_hold_back_s or 3 * s.part_seconds
        latency = f" of {s.part_seconds:g} s parts, LL-HLS {hold_back:g} s behind live"
    return (
        f"scenario {s.name!r}: {s.viewers} viewers ({kind}, {s.duration_s:g} s, {s.segment_duration_s:g} s "
        f"segments{latency}, {len(s.renditions_kbps)} rendition(s)), uplinks {s.uplink_mbps[0]:g}-"
        f"{s.uplink_mbps[1]:g} Mbit/s, seed {s.seed}"
    )


# --------------------------------------------------------------------------------------------------
# The command


def add_simulate_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``simulate`` subcommand (its handler is :func:`run_simulate`)."""
    presets = ", ".join(sorted(PRESETS))
    parser = subparsers.add_parser(
        "simulate",
        help="simulate a swarm in virtual time and print its figures (P2P ratio, stalls, startup)",
        description="Run a scenario in the virtual-time simulator: the real scheduler and driver with "
        "modelled links, origin and tracker. Prints the P2P ratio (overall and per peer), the ratio "
        "to the best case 1 - 1/N, the origin's requests and bytes per segment and its saving "
        "against P2P off, stalls, rebuffer and startup times, upload per peer (Jain's fairness) and "
        "where segments came from, one column per policy. With --sweep, runs the grid in parallel "
        "processes and writes results.csv, results.json, viewers.csv and PNG plots.",
        epilog="Example: p2ploader simulate live-10 --policy p2pml-0.6 --policy p2pml-2.2 "
        "--sweep latency_segments=3,8,19 --sweep loader.httpDownloadProbability=0.1,0.02 --out sweep/",
    )
    parser.add_argument(
        "scenario",
        metavar="SCENARIO",
        help=f"a preset ({presets}) or a .toml/.json file of scenario fields",
    )
    parser.add_argument(
        "--sweep",
        action="append",
        type=parse_sweep,
        default=[],
        metavar="KEY=V1,V2,...",
        help="vary a scenario field (viewers, latency_segments, uplink_mbps, ...) or a loader "
        "setting in the FAQ spelling (loader.httpDownloadProbability); values are JSON when they "
        "parse (3, 0.5, true, [1,20]) and strings otherwise; repeat for a grid of all combinations",
    )
    parser.add_argument(
        "--set",
        action="append",
        type=parse_setting,
        default=[],
        dest="settings",
        metavar="KEY=VALUE",
        help="change one scenario field or loader setting for every run (same keys and values as "
        "--sweep); repeatable",
    )
    parser.add_argument(
        "--policy",
        action="append",
        default=None,
        metavar="NAME",
        help=f"download policy to run, side by side with the others ({', '.join(available_policies())}); "
        "repeatable (default: the scenario's policy)",
    )
    parser.add_argument(
        "--compare-p2p-off",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="also run every grid point with P2P off, to report the origin saving (default: on)",
    )
    parser.add_argument(
        "--seed", type=int, default=None, help="random seed of the runs (default: the scenario's)"
    )
    parser.add_argument(
        "--jobs",
        type=_positive_int,
        default=None,
        metavar="N",
        help="runs in parallel, each in its own process (default: the number of CPUs)",
    )
    parser.add_argument(
        "--cluster",
        default=None,
        metavar="ADDRESS",
        help="run the grid's runs as Ray tasks on the Ray cluster at ADDRESS (HOST:PORT, or "
        "'auto'), one CPU each, instead of local processes; the results are those of a local run "
        "(needs the 'cluster' extra: pip install 'p2ploader[cluster]', and p2ploader on every node)",
    )
    parser.add_argument(
        "--out",
        default=None,
        metavar="DIR",
        help="write results.csv, results.json, viewers.csv and, for sweeps, a PNG per swept key "
        "(sweep_KEY.png) into DIR (default: sim-SCENARIO_NAME for sweeps; nothing without a sweep)",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    parser.set_defaults(handler=run_simulate)


def result_lines(results: Sequence[TaskResult]) -> list[str]:
    """One ``RESULT simulate`` line per run: its scenario, swept values, policy (``off`` for P2P
    off), P2P ratio, ratio to the best case, stalls and median startup (seconds)."""
    lines = []
    for result in results:
        m = result.metrics
        point = "".join(
            f" {key}={json.dumps(value, separators=(',', ':'))}" for key, value in result.task.point
        )
        startup = "-" if m.startup_median_s is None else f"{m.startup_median_s:.2f}"
        lines.append(
            f"RESULT simulate scenario={m.scenario}{point} policy={m.policy if result.task.p2p else 'off'} "
            f"viewers={m.viewers_total} p2p_ratio={m.p2p_ratio:.3f} ratio_to_best={m.ratio_to_best:.3f} "
            f"stalls={m.stalls} startup_s={startup}"
        )
    return lines


def run_simulate(args: argparse.Namespace) -> int:
    """Run the ``simulate`` command with parsed ``args``; returns the exit status."""
    base = load_scenario(args.scenario)
    changes = dict(args.settings)
    if args.seed is not None:
        changes["seed"] = args.seed
    if changes:
        base = _evolve(base, changes)
    sweeps: list[tuple[str, list[Any]]] = list(args.sweep)
    tasks = plan(base, sweeps=sweeps, policies=args.policy or (), compare_p2p_off=args.compare_p2p_off)
    cluster: str | None = getattr(args, "cluster", None)
    if cluster is not None:
        if args.jobs is not None:
            raise UsageError("--jobs sets local processes; with --cluster the cluster's CPUs run the grid")
        from p2ploader.app.sim_cluster import join

        cpus = join(cluster).get("CPU", 0.0)  # fails here, before anything runs, without Ray or a cluster
    jobs = args.jobs or os.cpu_count() or 1
    print(_describe(base), flush=True)
    if sweeps:
        grid = " x ".join(f"{key} ({len(values)})" for key, values in sweeps)
        where = (
            f"as Ray tasks on the cluster at {cluster} ({cpus:g} CPUs)"
            if cluster is not None
            else f"in {min(jobs, len(tasks))} process(es)"
        )
        print(f"sweeping {grid}: {len(tasks)} runs {where}", flush=True)
    started = time.perf_counter()

    def progress(result: TaskResult, done: int, total: int) -> None:
        if args.quiet:
            return
        point = " ".join(f"{k}={_label(v)}" for k, v in result.task.point)
        who = result.metrics.policy if result.task.p2p else "P2P off"
        print(
            f"  [{done}/{total}] {who} {point}".rstrip()
            + f": P2P {result.metrics.p2p_ratio:.1%}, {result.metrics.stalls} stalls ({result.wall_s:.1f} s)",
            file=sys.stderr,
            flush=True,
        )

    if cluster is not None:
        results = run_tasks(tasks, on_done=progress, cluster=cluster)
    else:
        results = run_tasks(tasks, jobs=jobs, on_done=progress)
    print()
    print(summary_table(results, sweeps))
    print(f"\n{len(results)} runs in {time.perf_counter() - started:.1f} s")
    for line in result_lines(results):
        print(line)
    out = args.out if args.out is not None else (f"sim-{_safe_name(base.name)}" if sweeps else None)
    if out is not None:
        written = write_outputs(Path(out), base, sweeps, results)
        print("wrote " + ", ".join(str(p) for p in written))
    return 0
