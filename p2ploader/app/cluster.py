"""Viewer pools on a Ray cluster: ``p2ploader swarm URL -n 1000 --cluster ADDRESS``.

One machine holds a few hundred headless viewers (:mod:`p2ploader.app.pool`). Beyond that, the
swarm runner places its pools on the nodes of an existing Ray cluster instead of starting them
here: each pool is a Ray actor (:class:`PoolHost`, one CPU) that starts the same pool process,
``python -m p2ploader.app.pool``, on its node and relays its lines. The runner sees a
:class:`RayPool`, a :class:`~p2ploader.app.pool.PoolClient` like the local
:class:`~p2ploader.app.pool.PoolProcess`, so sessions, the live view, the final report and the plot
are the same whichever machine a viewer plays on. Pools are spread over the nodes (Ray's
``SPREAD`` strategy).

What the cluster must offer: p2ploader installed on every node (the same version), the stream's
URL and the tracker reachable from every node (a viewer's peers are other nodes' viewers, so ICE
must not be kept to loopback: ``--loopback-only`` is for one machine). Ray is an optional extra:
``pip install 'p2ploader[cluster]'``; without it ``--cluster`` says so.

Each actor reads its pool's output on a thread and hands it over in batches
(:meth:`PoolHost.lines`, at most :data:`LINES_PER_CALL` lines a call, a call waiting up to
:data:`POLL_SECONDS` for the first one); its buffer is bounded (:data:`BUFFERED_LINES`), so a
runner that stops reading stalls the pool's output instead of the node's memory.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import importlib
import json
import logging
import queue
import resource
import signal
import socket
import subprocess
import sys
import threading
from typing import Any

from p2ploader.app.pool import (
    DEFAULT_MAX_SESSIONS,
    MAX_LINE_BYTES,
    PoolClient,
    gone_reason,
    pool_command,
)
from p2ploader.errors import UsageError
from p2ploader.extras import require_extras

__all__ = [
    "BUFFERED_LINES",
    "CONNECT_TIMEOUT",
    "LINES_PER_CALL",
    "PLACE_TIMEOUT",
    "POLL_SECONDS",
    "ClusterUnreachableError",
    "PoolHost",
    "RayPool",
    "check_reachable",
    "connect",
]

POLL_SECONDS = 0.5
"""Longest a :meth:`PoolHost.lines` call waits for the first line (seconds)."""

LINES_PER_CALL = 2000
"""Most lines one :meth:`PoolHost.lines` call returns."""

BUFFERED_LINES = 20_000
"""Lines an actor holds before its reader thread waits (and the pool's output with it). Each is at
most :data:`~p2ploader.app.pool.MAX_LINE_BYTES`: a longer one kills the pool, as a local pool's
reader does."""

PLACE_TIMEOUT = 120.0
"""Seconds a new pool may wait for the cluster to place it (a CPU to free up, a node to import
the loader) before its placement counts as failed."""


class PoolHost:
    """The Ray actor: one pool process on the actor's node. Plain Python; :func:`_actor_class`
    makes it a Ray actor (threaded, so that :meth:`lines` waiting does not hold up :meth:`send`)."""

    def __init__(self, max_sessions: int = DEFAULT_MAX_SESSIONS) -> None:
        self._cpu0 = _children_cpu()
        self.proc = subprocess.Popen(
            pool_command(sys.executable, max_sessions),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
        self._lines: queue.Queue[bytes | None] = queue.Queue(maxsize=BUFFERED_LINES)
        self._stderr_tail: collections.deque[str] = collections.deque(maxlen=40)
        self._send_lock = threading.Lock()
        self._ended = False
        threading.Thread(target=self._read_stdout, daemon=True).start()
        threading.Thread(target=self._read_stderr, daemon=True).start()

    def where(self) -> dict[str, Any]:
        """The node this pool runs on: Ray's node id, the host name and the pool's pid."""
        ray = _ray()
        return {
            "node_id": ray.get_runtime_context().get_node_id(),
            "host": socket.gethostname(),
            "pid": self.proc.pid,
        }

    def send(self, line: str) -> bool:
        """Write one command line to the pool; False when its input is closed."""
        stdin = self.proc.stdin
        if stdin is None or self.proc.poll() is not None:
            return False
        with self._send_lock:
            try:
                stdin.write(line.encode() + b"\n")
                stdin.flush()
            except (OSError, ValueError):
                return False
        return True

    def lines(self) -> tuple[list[bytes], bool]:
        """The pool's next output lines (waiting up to :data:`POLL_SECONDS` for the first), and
        whether its output has ended (then no line will follow)."""
        out: list[bytes] = []
        with contextlib.suppress(queue.Empty):
            first = self._lines.get(timeout=POLL_SECONDS)
            if first is None:
                self._ended = True
            else:
                out.append(first)
                while len(out) < LINES_PER_CALL:
                    line = self._lines.get_nowait()
                    if line is None:
                        self._ended = True
                        break
                    out.append(line)
        return out, self._ended

    def status(self) -> tuple[int | None, str]:
        """The pool's exit status (None while it runs) and the end of its stderr."""
        return self.proc.poll(), "".join(self._stderr_tail)

    def signal(self, number: int) -> None:
        with contextlib.suppress(ProcessLookupError):
            self.proc.send_signal(number)

    def close(self, kill_after: float = 10.0) -> tuple[int, float]:
        """End the pool's input, wait for it (SIGKILL after ``kill_after`` seconds); its exit
        status and the CPU seconds it used."""
        if self.proc.stdin is not None:
            with contextlib.suppress(OSError):
                self.proc.stdin.close()
        try:
            code = self.proc.wait(timeout=kill_after)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            code = self.proc.wait()
        return code, max(0.0, _children_cpu() - self._cpu0)

    def _read_stdout(self) -> None:
        assert self.proc.stdout is not None
        try:
            while raw := self.proc.stdout.readline(MAX_LINE_BYTES + 1):
                if len(raw) > MAX_LINE_BYTES:  # a line over the limit: the pool is broken
                    self.proc.kill()
                    break
                self._lines.put(raw)
        finally:
            self._lines.put(None)

    def _read_stderr(self) -> None:
        assert self.proc.stderr is not None
        while raw := self.proc.stderr.readline(MAX_LINE_BYTES):
            self._stderr_tail.append(raw[:2000].decode("utf-8", "replace"))


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _ray() -> Any:
    """The ``ray`` module, imported when first needed (an optional extra; typed loosely, so that
    this module's types do not follow Ray's from release to release)."""
    return importlib.import_module("ray")


_ACTOR_CLASS: Any = None
CONNECT_TIMEOUT = 5.0
"""Seconds the reachability check waits for the cluster's head to accept a connection."""


class ClusterUnreachableError(UsageError, ConnectionError):
    """No Ray cluster answers at ``address``; ``reason`` says what happened."""

    def __init__(self, address: str, reason: str) -> None:
        super().__init__(f"no Ray cluster answers at {address}: {reason}")
        self.address = address
        self.reason = reason

    def __reduce__(self) -> tuple[type[ClusterUnreachableError], tuple[str, str]]:
        return type(self), (self.address, self.reason)  # picklable, as a worker's error must be


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


_CONNECTED_TO: str | None = None


def _actor_class() -> Any:
    global _ACTOR_CLASS
    if _ACTOR_CLASS is None:
        # Threaded (several calls at once), so that lines() waiting does not hold up send(); the
        # order of the commands is kept on the runner's side (RayPool sends one at a time).
        _ACTOR_CLASS = _ray().remote(num_cpus=1, max_concurrency=4)(PoolHost)
    return _ACTOR_CLASS


async def _await_ref(ref: Any) -> Any:
    return await ref


def connect(address: str) -> dict[str, float]:
    """Join the Ray cluster at ``address`` (``HOST:PORT`` or ``auto``) from this process, once;
    the cluster's resources (``{"CPU": ..., ...}``). Raises
    :class:`~p2ploader.errors.MissingExtraError` without Ray and :class:`ClusterUnreachableError`
    when nothing accepts a connection at ``address``."""
    global _CONNECTED_TO
    require_extras("--cluster (viewer pools on a Ray cluster)", "cluster")
    ray = _ray()
    if not ray.is_initialized():
        check_reachable(address)  # Ray alone retries an address where nothing listens for minutes
        ray.init(address=address, log_to_driver=False, logging_level=logging.WARNING)
        _CONNECTED_TO = address
    elif address != _CONNECTED_TO:
        raise UsageError(
            f"this process is already connected to a Ray cluster ({_CONNECTED_TO or 'its own'}); "
            f"it cannot also join {address}"
        )
    return {str(k): float(v) for k, v in ray.cluster_resources().items()}


class RayPool(PoolClient):
    """A pool on a node of the Ray cluster, seen from the runner (:class:`PoolClient`)."""

    local = False

    def __init__(self, actor: Any, where: dict[str, Any]) -> None:
        super().__init__()
        self._actor = actor
        self.node_id: str = str(where["node_id"])
        self.host: str = str(where["host"])
        self._pid = int(where["pid"])
        self._ended = False
        self._status: tuple[int | None, str] = (None, "")
        # Commands go out one at a time, each once the previous one reached the pool: a threaded
        # actor does not keep the order of calls, and a stop must not overtake its start.
        self._outbox: asyncio.Queue[str] = asyncio.Queue()
        self._sender = asyncio.get_running_loop().create_task(self._send_in_order())
        self._reader = asyncio.get_running_loop().create_task(self._read())

    @classmethod
    async def start(
        cls, *, max_sessions: int = DEFAULT_MAX_SESSIONS, place_timeout: float = PLACE_TIMEOUT
    ) -> RayPool:
        """A new pool on the node Ray chooses (spread over the nodes). :func:`connect` first.
        Raises :class:`TimeoutError` when the cluster did not place it within ``place_timeout``
        seconds (the actor is then removed)."""
        actor = _actor_class().options(scheduling_strategy="SPREAD").remote(max_sessions)
        try:
            where = await asyncio.wait_for(_await_ref(actor.where.remote()), timeout=place_timeout)
        except BaseException:
            with contextlib.suppress(Exception):
                _ray().kill(actor)
            raise
        return cls(actor, where)

    @property
    def pid(self) -> int:
        """The pool's process id on its node (not a process of this machine)."""
        return self._pid

    @property
    def alive(self) -> bool:
        return not self._ended and not self._reader.done()

    async def ready(self) -> bool:
        waiter = asyncio.ensure_future(asyncio.shield(self._ready))
        await asyncio.wait({waiter, self._reader}, return_when=asyncio.FIRST_COMPLETED)
        waiter.cancel()
        return self._ready.done()

    def terminate(self) -> None:
        self._actor.signal.remote(int(signal.SIGTERM))

    def kill(self) -> None:
        self._actor.signal.remote(int(signal.SIGKILL))

    async def close(self, *, kill_after: float = 10.0) -> int:
        ray = _ray()
        # The commands already queued (a last stop) reach the pool before its input ends.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._outbox.join(), timeout=kill_after)
        try:
            code, cpu = await self._actor.close.remote(kill_after)
        except ray.exceptions.RayError as exc:  # the actor or its node died
            self._status = (None, f"the pool's Ray actor failed: {exc}")
            code, cpu = -1, None
        self.cpu_time = cpu
        self._sender.cancel()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self._reader, timeout=kill_after)
        with contextlib.suppress(Exception):
            ray.kill(self._actor)
        return int(code)

    def _send(self, command: dict[str, Any]) -> bool:
        if not self.alive:
            return False
        # Queued, as a pipe write is buffered: a refused command comes back as a pool line, and a
        # pool that died ends the reader, which ends every session.
        self._outbox.put_nowait(json.dumps(command))
        return True

    async def _send_in_order(self) -> None:
        ray = _ray()
        while True:
            line = await self._outbox.get()
            try:
                await self._actor.send.remote(line)
            except ray.exceptions.RayError:
                pass  # the actor is gone: the reader ends the sessions with the reason
            finally:
                self._outbox.task_done()

    def _gone_reason(self) -> str:
        code, tail = self._status
        return gone_reason(code, tail)

    async def _read(self) -> None:
        ray = _ray()
        try:
            while True:
                lines, ended = await self._actor.lines.remote()
                for raw in lines:
                    self._dispatch(raw)
                if ended:
                    break
            with contextlib.suppress(ray.exceptions.RayError):
                self._status = await self._actor.status.remote()
        except ray.exceptions.RayError as exc:
            self._status = (None, f"the pool's Ray actor failed: {exc}")
        finally:
            self._ended = True
            self._end_all()
