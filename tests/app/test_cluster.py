"""Viewer pools on a Ray cluster: a real two-node Ray cluster on this machine (two raylets, one CPU
each), the real origin and tracker, real aiortc viewers in pools placed as Ray actors; the totals
come back as from local pools. Without Ray, ``--cluster`` names the extra to install."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from p2ploader.app.swarmrun import SwarmRunner, churn_schedule
from p2ploader.app.viewer import ViewerSpec
from p2ploader.config import LoaderConfig
from p2ploader.errors import MissingExtraError
from p2ploader.sample import sample_path
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

        ray.shutdown()  # this process joined as a driver (SwarmRunner's connect): leave first
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
