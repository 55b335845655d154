"""Many headless viewers in one process: a pool of loaders sharing one event loop.

A viewer in a process of its own (:mod:`p2ploader.app.viewer`) costs a Python interpreter, its
imports and an event loop: about 88 MB and 1.3 % of a core. A pool runs many viewer sessions as
asyncio tasks of one process, each a :func:`~p2ploader.app.viewer.run_viewer` with its own loader,
peer id and seed, so the interpreter and the imports are paid once per pool. ``p2ploader swarm``
runs one pool per core (:class:`~p2ploader.app.swarmrun.SwarmRunner`).

Protocol
--------
``python -m p2ploader.app.pool [--max-sessions N]`` reads commands on stdin, one JSON object a line
(at most :data:`MAX_LINE_BYTES`):

* ``{"op": "start", "key": K, "spec": {...}}`` starts session ``K`` (a string of at most
  :data:`MAX_KEY_LENGTH` characters, unique among the running sessions) playing the
  :class:`~p2ploader.app.viewer.ViewerSpec` ``spec`` (its fields, as JSON);
* ``{"op": "stop", "key": K}`` ends ``K``'s playback early (it still reports its result);
* ``{"op": "cancel", "key": K}`` cancels ``K``'s task, for a session that did not end when
  stopped (it reports an error).

End of stdin, SIGTERM or SIGINT stops every session; the pool exits (status 0) once each reported.
On stdout, first ``{"key": null, "type": "ready", "max_sessions": N}`` once the pool has imported
the loader (seconds on a busy machine) and reads commands; then each line is one JSON object
tagged with its session's ``key``:

* ``{"key": K, "type": "tick", ...}`` every ``spec.tick_interval`` seconds, as the viewer's
  (:func:`~p2ploader.app.viewer.tick_line`);
* exactly one last line per session: ``{"key": K, "type": "result", ...}`` as the viewer's, or
  ``{"key": K, "type": "error", "error": "..."}`` when the session could not start (a bad spec, a
  full pool), could not open its stream, or crashed: a crash is that session's error, the others
  play on.

A command the pool cannot read (not JSON, an unknown ``op``, no ``key``, a ``stop`` for a session
not running) is answered with ``{"key": K or null, "type": "refused", "error": "..."}``.

CPU time
--------
A process's CPU time cannot be split by task. The result's ``cpu_time`` is the session's share of
the pool's: every second, and whenever a session starts or ends, the CPU seconds the pool used
since the last count are divided equally among the sessions running (``cpu_time_shared`` is True in
the result). ``pool_loop_lag_max`` in the result is the longest the pool's event loop was late
(seconds, checked every second) while the session ran: a pool with more sessions than its core
can serve shows it here first. The pool's own CPU time, start-up included, is in its process's accounting
(:attr:`~p2ploader.app.swarmrun.SwarmResult.process_cpu_time`).

Loopback-only ICE (``spec.loopback_only``) is process-wide: a pool refuses a session whose
``loopback_only`` differs from the sessions running. :class:`PoolProcess` is the other side: it
starts a pool, sends commands and hands each session its lines.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import json
import signal
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

import attrs

from p2ploader.aio.player import PlaybackSnapshot
from p2ploader.app.viewer import ViewerSpec, run_viewer, tick_line
from p2ploader.errors import P2PLoaderError

__all__ = [
    "DEFAULT_MAX_SESSIONS",
    "MAX_KEY_LENGTH",
    "MAX_LINE_BYTES",
    "CpuShares",
    "PoolClient",
    "PoolProcess",
    "ViewerPool",
]

DEFAULT_MAX_SESSIONS = 256
"""Sessions one pool runs at once, by default; a start beyond it is that session's error."""

MAX_KEY_LENGTH = 64
"""Characters in a session key."""

MAX_LINE_BYTES = 1 << 20
"""Bytes in one command line (a spec with its loader settings is a few KB) and in one output line."""


class CpuShares:
    """Divides a process's CPU seconds among the sessions running, equally, as time goes.

    :meth:`account` charges the CPU time used since the previous call to the sessions running then;
    call it before a session joins or leaves and every second or so. ``clock`` returns CPU seconds
    (by default the process's)."""

    def __init__(self, clock: Callable[[], float] = time.process_time) -> None:
        self._clock = clock
        self._last: float = clock()
        self.shares: dict[str, float] = {}
        """CPU seconds charged to each running session so far."""

    def account(self) -> None:
        now = self._clock()
        spent, self._last = now - self._last, now
        if self.shares:
            each = spent / len(self.shares)
            for key in self.shares:
                self.shares[key] += each

    def join(self, key: str) -> None:
        self.account()
        self.shares[key] = 0.0

    def leave(self, key: str) -> float:
        """``key``'s CPU seconds, as it leaves."""
        self.account()
        return self.shares.pop(key, 0.0)


@attrs.define
class _Session:
    key: str
    spec: ViewerSpec
    stop: asyncio.Event
    task: asyncio.Task[None] | None = None
    lag_max: float = 0.0
    """The longest the pool's event loop was late while this session ran, seconds."""


class ViewerPool:
    """The pool's side: runs sessions on the running event loop and writes their lines with
    ``emit`` (which returns False once nobody reads them: then every session stops)."""

    def __init__(
        self, emit: Callable[[dict[str, Any]], bool], *, max_sessions: int = DEFAULT_MAX_SESSIONS
    ) -> None:
        if max_sessions < 1:
            raise ValueError("max_sessions must be >= 1")
        self._emit = emit
        self.max_sessions = max_sessions
        self.sessions: dict[str, _Session] = {}
        self.cpu = CpuShares()
        self.stopping = asyncio.Event()
        """Set once :meth:`stop_all` was called: no session starts any more."""

    # -- commands --------------------------------------------------------------------------------

    def handle(self, raw: bytes | str) -> None:
        """Act on one command line (see the module docstring); never raises for bad input."""
        try:
            command = json.loads(raw)
        except ValueError:
            self.refuse(None, "not a JSON line")
            return
        if not isinstance(command, dict):
            self.refuse(None, "a command is a JSON object")
            return
        key = command.get("key")
        if not isinstance(key, str) or not key or len(key) > MAX_KEY_LENGTH:
            self.refuse(None, f"a command needs a key: a string of 1 to {MAX_KEY_LENGTH} characters")
            return
        op = command.get("op")
        if op == "start":
            self.start(key, command.get("spec"))
        elif op in ("stop", "cancel"):
            session = self.sessions.get(key)
            if session is None:
                self.refuse(key, f"no session {key!r} is running")
            elif op == "stop":
                session.stop.set()
            elif session.task is not None:
                session.task.cancel()
        else:
            self.refuse(key, f"unknown op {op!r} (start, stop or cancel)")

    def start(self, key: str, spec_fields: object) -> None:
        """Start session ``key`` playing ``spec_fields`` (a :class:`ViewerSpec`'s fields), or
        report why not as its error line."""
        if key in self.sessions:
            self.refuse(key, f"session {key!r} is already running")
            return
        if self.stopping.is_set():
            self._emit({"key": key, "type": "error", "error": "the pool is stopping"})
            return
        if len(self.sessions) >= self.max_sessions:
            self._emit(
                {"key": key, "type": "error", "error": f"the pool is full ({self.max_sessions} sessions)"}
            )
            return
        try:
            if not isinstance(spec_fields, dict):
                raise TypeError("spec must be a JSON object")
            spec = ViewerSpec(**spec_fields)
        except (TypeError, ValueError) as exc:
            self._emit({"key": key, "type": "error", "error": f"bad spec: {exc}"})
            return
        running = {s.spec.loopback_only for s in self.sessions.values()}
        if running and spec.loopback_only not in running:
            self._emit(
                {
                    "key": key,
                    "type": "error",
                    "error": "loopback_only differs from the sessions running (it is process-wide)",
                }
            )
            return
        session = _Session(key=key, spec=spec, stop=asyncio.Event())
        self.sessions[key] = session
        self.cpu.join(key)
        session.task = asyncio.get_running_loop().create_task(self._play(session), name=f"session {key}")

    def stop_all(self) -> None:
        """Stop every session (each still reports) and refuse new ones."""
        self.stopping.set()
        for session in self.sessions.values():
            session.stop.set()

    async def wait(self) -> None:
        """Until no session runs."""
        while self.sessions:
            tasks = [s.task for s in self.sessions.values() if s.task is not None]
            await asyncio.wait(tasks)

    # -- sessions --------------------------------------------------------------------------------

    async def _play(self, session: _Session) -> None:
        key = session.key

        def on_snapshot(snapshot: PlaybackSnapshot) -> None:
            if not self._emit({"key": key, **tick_line(snapshot)}):
                self.stop_all()  # the reader went away

        line: dict[str, Any]
        try:
            result = await run_viewer(
                session.spec,
                on_snapshot=on_snapshot if session.spec.tick_interval else None,
                stop=session.stop,
            )
        except asyncio.CancelledError:
            line = {"key": key, "type": "error", "error": "cancelled"}
        except P2PLoaderError as exc:
            line = {"key": key, "type": "error", "error": str(exc)}
        except Exception as exc:  # one session's bug must not end the others
            line = {"key": key, "type": "error", "error": f"crashed: {type(exc).__name__}: {exc}"}
        else:
            line = {"key": key, "type": "result", **result}
        cpu = self.cpu.leave(key)
        del self.sessions[key]
        if line["type"] == "result":
            line["cpu_time"] = cpu
            line["cpu_time_shared"] = True
            line["pool_loop_lag_max"] = round(session.lag_max, 3)
        self._emit(line)

    def refuse(self, key: str | None, error: str) -> None:
        """Answer a command the pool cannot act on."""
        self._emit({"key": key, "type": "refused", "error": error})

    async def account_every(self, seconds: float) -> None:
        """Charge CPU time to the running sessions every ``seconds``, and note how late the event
        loop woke this task: the lag every session of the pool suffers (runs until cancelled)."""
        loop = asyncio.get_running_loop()
        while True:
            due = loop.time() + seconds
            await asyncio.sleep(seconds)
            self.note_lag(loop.time() - due)
            self.cpu.account()

    def note_lag(self, seconds: float) -> None:
        """Record an event-loop lag of ``seconds`` against every session running."""
        for session in self.sessions.values():
            session.lag_max = max(session.lag_max, seconds)


def _emit(line: dict[str, Any]) -> bool:
    """Write one JSON line to stdout; False when nobody reads it any more."""
    try:
        sys.stdout.write(json.dumps(line) + "\n")
        sys.stdout.flush()
    except (BrokenPipeError, ValueError):
        return False
    return True


async def _serve(max_sessions: int) -> int:
    loop = asyncio.get_running_loop()
    pool = ViewerPool(_emit, max_sessions=max_sessions)
    for signum in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):  # not on Windows
            loop.add_signal_handler(signum, pool.stop_all)
    reader = asyncio.StreamReader(limit=MAX_LINE_BYTES)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    _emit({"key": None, "type": "ready", "max_sessions": max_sessions})
    accounting = loop.create_task(pool.account_every(1.0))
    commands = loop.create_task(_read_commands(reader, pool))
    stopped = loop.create_task(pool.stopping.wait())
    await asyncio.wait({commands, stopped}, return_when=asyncio.FIRST_COMPLETED)
    pool.stop_all()
    await pool.wait()
    for task in (commands, stopped, accounting):
        task.cancel()
    return 0


async def _read_commands(reader: asyncio.StreamReader, pool: ViewerPool) -> None:
    """Act on each command line until the end of stdin. A line over the limit is refused and
    skipped up to its end."""
    while True:
        try:
            raw = await reader.readuntil(b"\n")
        except asyncio.IncompleteReadError as exc:
            if exc.partial.strip():
                pool.handle(exc.partial)
            return
        except asyncio.LimitOverrunError as exc:
            pool.refuse(None, f"a command line is longer than {MAX_LINE_BYTES} bytes")
            await _skip_line(reader, exc.consumed)
            continue
        if raw.strip():
            pool.handle(raw)


async def _skip_line(reader: asyncio.StreamReader, pending: int) -> None:
    """Drop bytes up to and including the next newline."""
    await reader.readexactly(pending)
    while True:
        try:
            await reader.readuntil(b"\n")
            return
        except asyncio.LimitOverrunError as exc:
            await reader.readexactly(exc.consumed)
        except asyncio.IncompleteReadError:
            return


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m p2ploader.app.pool", description="Run viewer sessions commanded on stdin."
    )
    parser.add_argument(
        "--max-sessions",
        type=int,
        default=DEFAULT_MAX_SESSIONS,
        help=f"sessions running at once (default: {DEFAULT_MAX_SESSIONS})",
    )
    args = parser.parse_args(argv)
    if args.max_sessions < 1:
        parser.error("--max-sessions must be >= 1")
    return asyncio.run(_serve(args.max_sessions))


# --------------------------------------------------------------------------------------------------
# The runner's side


_GONE = "gone"
"""The type of the line :class:`PoolProcess` hands a session whose pool ended before it reported."""


class PoolClient:
    """A pool seen from the swarm runner, wherever it runs: start sessions, stop them, read their
    lines. :class:`PoolProcess` is a pool process of this machine; a Ray actor's pool
    (:class:`p2ploader.app.cluster.RayPool`) another machine's.

    :meth:`open` returns a queue of the session's lines (dicts, ``key`` removed); the last one is
    its ``result`` or ``error``, or ``{"type": "gone", "error": ...}`` when the pool ended first
    (it crashed or was killed). A subclass sends commands (:meth:`_send`), feeds every output line
    to :meth:`_dispatch` and calls :meth:`_end_all` once the pool's output ended."""

    local = True
    """Whether the pool is a process of this machine (its pid can be read from the OS here)."""

    def __init__(self) -> None:
        self._ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._queues: dict[str, asyncio.Queue[dict[str, Any]]] = {}
        self.cpu_time: float | None = None
        """CPU seconds the pool used, when its host reported them (a remote pool, once closed)."""

    @property
    def pid(self) -> int:
        raise NotImplementedError

    @property
    def alive(self) -> bool:
        raise NotImplementedError

    @property
    def running(self) -> int:
        """Sessions opened and not yet ended."""
        return len(self._queues)

    async def ready(self) -> bool:
        """Until the pool reads commands (its ``ready`` line); False when it ended first. Sessions
        opened before are started all the same, once it is ready."""
        raise NotImplementedError

    def open(self, key: str, spec: ViewerSpec) -> asyncio.Queue[dict[str, Any]]:
        """Start session ``key`` playing ``spec``; its lines arrive on the queue returned."""
        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._queues[key] = queue
        if not self.alive or not self._send({"op": "start", "key": key, "spec": attrs.asdict(spec)}):
            self._end(key, {"type": _GONE, "error": self._gone_reason()})
        return queue

    def stop(self, key: str) -> None:
        self._send({"op": "stop", "key": key})

    def cancel(self, key: str) -> None:
        self._send({"op": "cancel", "key": key})

    def forget(self, key: str) -> None:
        """Stop handing ``key`` its lines (its session ended, or the runner gave up on it)."""
        self._queues.pop(key, None)

    def terminate(self) -> None:
        """SIGTERM: the pool stops every session; they still report."""
        raise NotImplementedError

    def kill(self) -> None:
        raise NotImplementedError

    async def close(self, *, kill_after: float = 10.0) -> int:
        """End of the pool's input (every session stops), then wait for it to exit: killed after
        ``kill_after`` seconds. Returns its exit status."""
        raise NotImplementedError

    def _send(self, command: dict[str, Any]) -> bool:
        raise NotImplementedError

    def _gone_reason(self) -> str:
        raise NotImplementedError

    def _dispatch(self, raw: bytes | str) -> None:
        """One line of the pool's output: to its session's queue (its last line ends the session)."""
        try:
            line = json.loads(raw)
        except ValueError:
            return
        if not isinstance(line, dict):
            return
        key = line.pop("key", None)
        if key is None and line.get("type") == "ready" and not self._ready.done():
            self._ready.set_result(None)
        queue = self._queues.get(key) if isinstance(key, str) else None
        if queue is None:
            return  # a refusal, or a session the runner forgot
        if line.get("type") in ("result", "error"):
            self._end(str(key), line)
        else:
            queue.put_nowait(line)

    def _end(self, key: str, line: dict[str, Any]) -> None:
        queue = self._queues.pop(key, None)
        if queue is not None:
            queue.put_nowait(line)

    def _end_all(self) -> None:
        """The pool's output ended: every session still open gets a ``gone`` line."""
        for key in list(self._queues):
            self._end(key, {"type": _GONE, "error": self._gone_reason()})


class PoolProcess(PoolClient):
    """A pool process of this machine (``python -m p2ploader.app.pool``), see :class:`PoolClient`."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        super().__init__()
        self.proc = proc
        self._stderr_tail: collections.deque[str] = collections.deque(maxlen=40)
        self._reader = asyncio.get_running_loop().create_task(self._read())

    @classmethod
    async def start(
        cls,
        *,
        python: str | None = None,
        max_sessions: int = DEFAULT_MAX_SESSIONS,
        **options: Any,
    ) -> PoolProcess:
        """Start ``python -m p2ploader.app.pool``; ``options`` go to
        :func:`asyncio.create_subprocess_exec` (e.g. ``start_new_session``)."""
        proc = await asyncio.create_subprocess_exec(
            *pool_command(python or sys.executable, max_sessions),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            limit=MAX_LINE_BYTES,
            **options,
        )
        return cls(proc)

    async def ready(self) -> bool:
        waiter = asyncio.ensure_future(asyncio.shield(self._ready))
        await asyncio.wait({waiter, self._reader}, return_when=asyncio.FIRST_COMPLETED)
        waiter.cancel()
        return self._ready.done()

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def alive(self) -> bool:
        return self.proc.returncode is None and not self._reader.done()

    def terminate(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            self.proc.send_signal(signal.SIGTERM)

    def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            self.proc.kill()

    async def close(self, *, kill_after: float = 10.0) -> int:
        if self.proc.stdin is not None:
            with contextlib.suppress(OSError, RuntimeError):
                self.proc.stdin.close()
        try:
            await asyncio.wait_for(self.proc.wait(), timeout=kill_after)
        except TimeoutError:
            self.kill()
        code = await self.proc.wait()
        with contextlib.suppress(Exception):
            await self._reader
        return code

    def _send(self, command: dict[str, Any]) -> bool:
        stdin = self.proc.stdin
        if stdin is None or stdin.is_closing():
            return False
        try:
            stdin.write(json.dumps(command).encode() + b"\n")
        except (OSError, RuntimeError):
            return False
        return True

    def _gone_reason(self) -> str:
        return gone_reason(self.proc.returncode, "".join(self._stderr_tail))

    async def _read(self) -> None:
        assert self.proc.stdout is not None and self.proc.stderr is not None
        stderr = asyncio.get_running_loop().create_task(self._drain(self.proc.stderr))
        try:
            async for raw in self.proc.stdout:
                self._dispatch(raw)
        except (ValueError, OSError):  # a line over the limit: the pool is broken
            self.kill()
        finally:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(stderr, timeout=5.0)
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.proc.wait(), timeout=5.0)
            self._end_all()

    async def _drain(self, stream: asyncio.StreamReader) -> None:
        async for raw in stream:
            self._stderr_tail.append(raw.decode("utf-8", "replace"))


def pool_command(python: str, max_sessions: int) -> list[str]:
    """The command line of a pool process."""
    return [python, "-m", "p2ploader.app.pool", "--max-sessions", str(max_sessions)]


def gone_reason(code: int | None, stderr_tail: str) -> str:
    """Why a pool's sessions ended without a result: its exit status and the end of its stderr."""
    tail = stderr_tail.strip()
    status = "the pool process ended" if code is None else f"the pool process ended with status {code}"
    return status + (f": {tail[-600:]}" if tail else "")


if __name__ == "__main__":
    sys.exit(main())
