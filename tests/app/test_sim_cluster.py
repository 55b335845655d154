"""``simulate --sweep ... --cluster ADDRESS``: a sweep's runs as Ray tasks on a real two-node Ray
cluster on this machine give the rows a local sweep gives; without Ray, or with nothing at the
address, the command says so in one line."""

from __future__ import annotations

import csv
import socket
import subprocess
import sys
import time
from pathlib import Path

import attrs
import pytest

from p2ploader.app import sim_cluster
from p2ploader.app.cli import main
from p2ploader.app.simulate import SimTask, TaskResult, plan, run_tasks
from p2ploader.errors import MissingExtraError, UsageError
from p2ploader.sim.scenario import PRESETS
from tests.app.test_cluster import CLI, ray_cluster  # noqa: F401  (the two-node cluster fixture)

pytestmark = pytest.mark.e2e


def _grid() -> list[SimTask]:
    base = PRESETS["small-live"].evolve(duration_s=30.0)
    return plan(base, sweeps=[("viewers", [3, 4])], policies=["p2pml-0.6", "p2pml-2.2"])


def _rows(results: list[TaskResult]) -> list[tuple[dict[str, object], tuple[dict[str, object], ...]]]:
    """Everything a run reports but its wall time."""
    return [(attrs.asdict(r.metrics), r.viewers) for r in results]


def test_a_sweep_on_a_two_node_cluster_gives_the_rows_of_a_local_sweep(ray_cluster: str) -> None:  # noqa: F811
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
    ray_cluster: str,  # noqa: F811
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


def test_cluster_without_ray_names_the_extra(
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
