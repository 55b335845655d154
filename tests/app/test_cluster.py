"""Everything on a Ray cluster, on one real two-node Ray cluster on this machine (two raylets, one
CPU each), started once for this file (starting one takes longer than most of its tests):

- viewer pools (``swarm --cluster``): the real origin and tracker, real aiortc viewers in pools
  placed as Ray actors; the totals come back as from local pools;
- simulator sweeps (``simulate --sweep ... --cluster ADDRESS``): the runs as Ray tasks give the rows
  a local sweep gives.

Without Ray, or with nothing at the address, both commands say so in one line."""

from __future__ import annotations

import asyncio
import csv
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import attrs
import pytest

from p2ploader.app import sim_cluster
from p2ploader.app.cli import main
from p2ploader.app.simulate import SimTask, TaskResult, plan, run_tasks
from p2ploader.app.swarmrun import SwarmRunner, churn_schedule
from p2ploader.app.viewer import ViewerSpec
from p2ploader.config import LoaderConfig
from p2ploader.errors import MissingExtraError, UsageError
from p2ploader.sample import sample_path
from p2ploader.sim.scenario import PRESETS
from p2ploader.testing.origin import LiveSettings, OriginServer
from p2ploader.tracker import TrackerServer

ROOT = sample_path("ts")
CLI = "import sys; from p2ploader.app.cli import main; sys.exit(main())"
"""``p2ploader`` as a user types it, in a fresh interpreter."""

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def ray_cluster() -> Iterator[str]:
    """The address of a two-node Ray cluster on this machine, shut down at the end. (Ray's
    nodes listen on the machine's own address, as a real cluster's do; the test's origin and
    tracker stay on 127.0.0.1, which every node of a one-machine cluster reaches.)"""
    pytest.importorskip("ray", reason="the 'cluster' extra is not installed")
    from ray.cluster_utils import Cluster

    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False})
    try:
        cluster.add_node(num_cpus=1)
        cluster.wait_for_nodes()
        yield cluster.address
    finally:
        import ray

        ray.shutdown()  # this process joined as a driver (the pools, the sweeps): leave first
        cluster.shutdown()


def _template(origin: OriginServer, tracker: TrackerServer) -> ViewerSpec:
    config = LoaderConfig(
        tracker_announce=(tracker.url,),
        rtc_config={"iceServers": []},
        http_retry_backoff=0.05,
        live_refresh_interval=0.5,
    )
    return ViewerSpec(
        url=origin.url_for("live/master.m3u8"),
        config=config.to_faq(),
        forward_buffer=8.0,
        rendition="v1",
        check_bytes_against=str(ROOT),
    )


@pytest.mark.anyio
async def test_a_swarm_on_a_two_node_cluster_shares_over_p2p_and_adds_up(
    ray_cluster: str, tracker: TrackerServer
) -> None:
    with OriginServer(ROOT, live=LiveSettings(window_segments=10)) as origin:
        sessions = churn_schedule(4, duration=8.0, stagger=1.0)
        runner = SwarmRunner(_template(origin, tracker), sessions, cluster=ray_cluster, grace=30.0)
        result = await asyncio.wait_for(runner.run(), timeout=120)
        served = origin.statistics()
    # One pool per cluster CPU (the default), one on each node.
    assert result.pools == 2 and len(set(result.pool_hosts)) == 2, result.pool_hosts
    assert {run.pool for run in result.sessions} == {0, 1}
    assert all(run.status == "done" for run in result.sessions), [r.error for r in result.sessions]
    total = result.total
    assert total.stalls == 0 and total.mismatches == 0 and total.failures == 0
    assert total.p2p_bytes > 0 and total.http_bytes > 0, total
    # The totals are the viewers' sums, and the HTTP bytes they report came from this origin.
    assert total.http_bytes == sum(v.http_bytes for v in result.viewers)
    assert total.http_bytes <= served.bytes_sent
    # Each actor reported its pool's CPU time; no remote pid is read as a local process.
    assert result.process_cpu_time is not None and result.process_cpu_time > 0
    assert runner.pids == []
    data = result.to_json()
    assert data["pools"] == 2 and len(data["pool_hosts"]) == 2


@pytest.mark.anyio
async def test_a_pool_whose_process_dies_on_a_node_fails_its_sessions_with_the_reason(
    ray_cluster: str, tracker: TrackerServer
) -> None:
    with OriginServer(ROOT, live=LiveSettings(window_segments=10)) as origin:
        sessions = churn_schedule(2, duration=30.0, stagger=0.0)
        runner = SwarmRunner(_template(origin, tracker), sessions, cluster=ray_cluster, pools=1, grace=10.0)
        task = asyncio.ensure_future(runner.run())
        for _ in range(300):
            if all(r.status == "playing" and r.pid is not None for r in runner.runs):
                break
            await asyncio.sleep(0.1)
        # The pool's process, on its node (this machine): killed as a crash would end it.
        pids = {r.pid for r in runner.runs}
        assert len(pids) == 1
        os.kill(pids.pop() or 0, signal.SIGKILL)
        result = await asyncio.wait_for(task, timeout=60)
    assert all(run.status == "failed" for run in result.sessions)
    assert all("pool process ended" in (run.error or "") for run in result.sessions), [
        r.error for r in result.sessions
    ]


def test_the_cli_runs_a_swarm_on_the_cluster(ray_cluster: str, tmp_path: Path) -> None:
    out = tmp_path / "swarm.json"
    with OriginServer(ROOT, live=LiveSettings(window_segments=10)) as origin:
        proc = subprocess.run(
            [
                sys.executable,
                "-c",
                CLI,
                "swarm",
                origin.url_for("live/master.m3u8"),
                "-n",
                "3",
                "--duration",
                "8",
                "--stagger",
                "0.5",
                "--cluster",
                ray_cluster,
                "--quiet",
                "--json",
                str(out),
            ],
            capture_output=True,
            text=True,
            timeout=180,
            check=False,
        )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "on 2 cluster nodes" in proc.stdout, proc.stdout[-2000:]
    data: dict[str, Any] = json.loads(out.read_text())
    assert data["pools"] == 2 and len(set(data["pool_hosts"])) == 2
    assert all(s["status"] == "done" for s in data["sessions"])


def test_cluster_without_ray_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.util

    from p2ploader.app import cluster

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "ray" else real(name, *a)
    )
    with pytest.raises(MissingExtraError, match=r"p2ploader\[cluster\]"):
        cluster.connect("auto")


def test_cluster_does_not_combine_with_a_process_per_viewer() -> None:
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            CLI,
            "swarm",
            "http://127.0.0.1:9/master.m3u8",
            "--cluster",
            "auto",
            "--process-per-viewer",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 1 and "--cluster" in proc.stderr, proc.stderr


# Simulator sweeps on the cluster --------------------------------------------------------------------


def _grid() -> list[SimTask]:
    base = PRESETS["small-live"].evolve(duration_s=30.0)
    return plan(base, sweeps=[("viewers", [3, 4])], policies=["p2pml-0.6", "p2pml-2.2"])


def _rows(results: list[TaskResult]) -> list[tuple[dict[str, object], tuple[dict[str, object], ...]]]:
    """Everything a run reports but its wall time."""
    return [(attrs.asdict(r.metrics), r.viewers) for r in results]


def test_a_sweep_on_a_two_node_cluster_gives_the_rows_of_a_local_sweep(ray_cluster: str) -> None:
    tasks = _grid()
    local = run_tasks(tasks, jobs=1)
    seen: list[int] = []
    remote = run_tasks(tasks, cluster=ray_cluster, on_done=lambda r, done, total: seen.append(done))
    assert [r.task for r in remote] == [r.task for r in local]  # in task order
    assert _rows(remote) == _rows(local)
    assert seen == list(range(1, len(tasks) + 1))
    # The runs really went to the cluster, over both nodes' CPUs.
    import ray

    assert ray.is_initialized() and ray.cluster_resources().get("CPU") == 2.0
    assert any(r.metrics.origin_saving is not None for r in remote)  # compared with P2P off


def _simulate(*extra: str, out: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            "-c",
            CLI,
            "simulate",
            "small-live",
            "--set",
            "duration_s=30",
            "--sweep",
            "viewers=3,4",
            "--quiet",
            "--out",
            str(out),
            *extra,
        ],
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )


def test_the_cli_sweeps_on_the_cluster_and_writes_the_local_results(
    ray_cluster: str,
    tmp_path: Path,
) -> None:
    local = _simulate("--jobs", "1", out=tmp_path / "local")
    assert local.returncode == 0, local.stderr[-2000:]
    remote = _simulate("--cluster", ray_cluster, out=tmp_path / "cluster")
    assert remote.returncode == 0, remote.stdout[-2000:] + remote.stderr[-2000:]
    assert f"as Ray tasks on the cluster at {ray_cluster} (2 CPUs)" in remote.stdout
    for name in ("results.csv", "viewers.csv"):
        with (tmp_path / "local" / name).open() as a, (tmp_path / "cluster" / name).open() as b:
            assert list(csv.DictReader(b)) == list(csv.DictReader(a)), name
    results = [line for line in remote.stdout.splitlines() if line.startswith("RESULT simulate")]
    assert len(results) == 4
    assert results == [line for line in local.stdout.splitlines() if line.startswith("RESULT simulate")]


def test_jobs_and_cluster_do_not_combine() -> None:
    with pytest.raises(UsageError, match="--jobs"):
        run_tasks(_grid(), jobs=2, cluster="127.0.0.1:9")


def test_simulate_cluster_without_ray_names_the_extra(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "ray" else real(name, *a)
    )
    with pytest.raises(MissingExtraError, match=r"p2ploader\[cluster\]"):
        run_tasks(_grid(), cluster="auto")
    # The command: one line naming the extra, before any run.
    status = main(["simulate", "small-live", "--sweep", "viewers=3,4", "--cluster", "auto", "--quiet"])
    err = capsys.readouterr().err
    assert status == 1 and "pip install 'p2ploader[cluster]'" in err and "simulate --cluster" in err, err


def _closed_port() -> int:
    with socket.socket() as probe:  # a port nothing listens on (bound, then closed)
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_an_address_where_no_cluster_answers_fails_at_once_with_a_typed_error(
    capsys: pytest.CaptureFixture[str],
) -> None:
    pytest.importorskip("ray", reason="the 'cluster' extra is not installed")
    address = f"127.0.0.1:{_closed_port()}"
    started = time.monotonic()
    with pytest.raises(
        sim_cluster.ClusterUnreachableError, match=f"no Ray cluster answers at {address}"
    ) as info:
        sim_cluster.join(address)
    assert info.value.address == address and isinstance(info.value, ConnectionError)
    status = main(["simulate", "small-live", "--sweep", "viewers=3,4", "--cluster", address, "--quiet"])
    err = capsys.readouterr().err
    assert status == 1 and f"no Ray cluster answers at {address}" in err, err
    assert time.monotonic() - started < 30  # Ray alone retries for minutes


@pytest.mark.parametrize("address", ["nowhere", "host:", ":6379", "host:port", "host:70000"])
def test_an_address_that_is_not_host_and_port_is_refused(address: str) -> None:
    with pytest.raises(UsageError, match="HOST:PORT"):
        sim_cluster.check_reachable(address)


def test_swarm_cluster_fails_at_once_too_when_no_cluster_answers(capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("ray", reason="the 'cluster' extra is not installed")
    address = f"127.0.0.1:{_closed_port()}"
    started = time.monotonic()
    # In a process of its own: this one may be connected to the test cluster already.
    code = "import sys; from p2ploader.app.cli import main; sys.exit(main(sys.argv[1:]))"
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            code,
            "swarm",
            "http://127.0.0.1:9/master.m3u8",
            "-n",
            "2",
            "--cluster",
            address,
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 1 and f"no Ray cluster answers at {address}" in result.stderr, result.stderr
    assert time.monotonic() - started < 60  # Ray alone retries for minutes


def test_cluster_unreachable_error_survives_pickling() -> None:
    import pickle

    error = sim_cluster.ClusterUnreachableError("10.0.0.1:6379", "timed out")
    copy = pickle.loads(pickle.dumps(error))
    assert (copy.address, copy.reason, str(copy)) == (error.address, error.reason, str(error))
