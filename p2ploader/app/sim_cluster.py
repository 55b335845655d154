"""Simulator runs on a Ray cluster: ``p2ploader simulate SCENARIO --sweep ... --cluster ADDRESS``.

A sweep's grid is a list of independent runs (:class:`~p2ploader.app.simulate.SimTask`), each a
pure function of its scenario and seed. Locally they run in a pool of processes; with a cluster
each run is a Ray task (one CPU) placed on whichever node has a CPU free, and its
:class:`~p2ploader.app.simulate.TaskResult` comes back to the machine that asked. Nothing of a run
depends on where it ran, so a sweep on a cluster gives the rows a local sweep gives.

What the cluster must offer: p2ploader installed on every node (the same version; a run only needs
the library, no extra). Ray is an optional extra: ``pip install 'p2ploader[cluster]'``; without it
``--cluster`` says so (:class:`~p2ploader.errors.MissingExtraError`). An address where nothing
listens fails at once with :class:`ClusterUnreachableError` (Ray itself would retry for minutes).
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

from p2ploader.app.cluster import CONNECT_TIMEOUT, ClusterUnreachableError, check_reachable
from p2ploader.extras import require_extras

if TYPE_CHECKING:
    from p2ploader.app.simulate import SimTask, TaskResult

__all__ = ["CONNECT_TIMEOUT", "ClusterUnreachableError", "check_reachable", "join", "run_on_cluster"]
# (CONNECT_TIMEOUT, ClusterUnreachableError and check_reachable live in p2ploader.app.cluster,
# shared with ``swarm --cluster``; they are re-exported here.)

_FEATURE = "simulate --cluster (simulator runs on a Ray cluster)"


def _ray() -> Any:
    """The ``ray`` module (an optional extra; typed loosely, as in :mod:`p2ploader.app.cluster`)."""
    return importlib.import_module("ray")


def join(address: str) -> dict[str, float]:
    """Join the Ray cluster at ``address`` from this process (once) and return its resources.
    Raises :class:`~p2ploader.errors.MissingExtraError` without Ray and
    :class:`ClusterUnreachableError` when nothing answers there."""
    require_extras(_FEATURE, "cluster")
    check_reachable(address)  # also when this process is connected already: a clear error
    from p2ploader.app.cluster import connect

    try:
        return connect(address)
    except ClusterUnreachableError:
        raise  # connect's own check: already says so
    except ConnectionError as exc:  # 'auto' with no cluster on this machine, or a refused handshake
        raise ClusterUnreachableError(address, str(exc).splitlines()[0] if str(exc) else "refused") from exc


def _simulate(task: SimTask) -> TaskResult:
    from p2ploader.app.simulate import simulate_task

    return simulate_task(task)


def run_on_cluster(tasks: Sequence[SimTask], address: str) -> Iterator[TaskResult]:
    """Run every task as a Ray task of one CPU on the cluster at ``address`` (joined first, see
    :func:`join`); yield the results as they finish (not in task order). A run that raises
    raises here, as a local run does."""
    join(address)
    ray = _ray()
    remote = ray.remote(num_cpus=1)(_simulate)
    pending = [remote.remote(task) for task in tasks]
    try:
        while pending:
            done, pending = ray.wait(pending, num_returns=1)
            for ref in done:
                yield ray.get(ref)
    finally:  # a run failed (or the caller stopped): the others need not hold the cluster's CPUs
        for ref in pending:
            ray.cancel(ref)
