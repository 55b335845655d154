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
import socket
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

from p2ploader.errors import UsageError
from p2ploader.extras import require_extras

if TYPE_CHECKING:
    from p2ploader.app.simulate import SimTask, TaskResult

__all__ = ["CONNECT_TIMEOUT", "ClusterUnreachableError", "check_reachable", "join", "run_on_cluster"]

CONNECT_TIMEOUT = 5.0
"""Seconds the reachability check waits for the cluster's head to accept a connection."""

_FEATURE = "simulate --cluster (simulator runs on a Ray cluster)"


class ClusterUnreachableError(UsageError, ConnectionError):
    """No Ray cluster answers at ``address``; ``reason`` says what happened."""

    def __init__(self, address: str, reason: str) -> None:
        super().__init__(f"no Ray cluster answers at {address}: {reason}")
        self.address = address
        self.reason = reason


def _host_and_port(address: str) -> tuple[str, int] | None:
    """``(host, port)`` of ``HOST:PORT`` or ``ray://HOST:PORT``; ``None`` for ``auto`` (Ray finds
    the cluster of this machine itself)."""
    if address == "auto":
        return None
    text = address.removeprefix("ray://")
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise UsageError(f"--cluster wants HOST:PORT (or 'auto'), got {address!r}")
    return host.strip("[]"), int(port)


def check_reachable(address: str, *, timeout: float = CONNECT_TIMEOUT) -> None:
    """Raise :class:`ClusterUnreachableError` unless something accepts a TCP connection at
    ``address`` within ``timeout`` seconds (``auto`` is not checked here)."""
    where = _host_and_port(address)
    if where is None:
        return
    try:
        with socket.create_connection(where, timeout=timeout):
            pass
    except OSError as exc:
        reason = "timed out" if isinstance(exc, TimeoutError) else (exc.strerror or str(exc))
        raise ClusterUnreachableError(address, reason) from None


def _ray() -> Any:
    """The ``ray`` module (an optional extra; typed loosely, as in :mod:`p2ploader.app.cluster`)."""
    return importlib.import_module("ray")


def join(address: str) -> dict[str, float]:
    """Join the Ray cluster at ``address`` from this process (once) and return its resources.
    Raises :class:`~p2ploader.errors.MissingExtraError` without Ray and
    :class:`ClusterUnreachableError` when nothing answers there."""
    require_extras(_FEATURE, "cluster")
    check_reachable(address)
    from p2ploader.app.cluster import connect

    try:
        return connect(address)
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
