"""Tracker capacity: the embedded tracker and npm bittorrent-tracker side by side, in one run.

Each tracker runs in its own process on 127.0.0.1, so its resident set size (``VmRSS`` of
``/proc/<pid>/status``) is its own. For each tracker:

* **connections held**: ``--connections`` WebSockets are opened (100 at a time) and each announces
  once, without offers, into one of ten swarms: an idle viewer as a tracker sees it. The count that
  got an answer is reported.
* **memory per connection**: the tracker's RSS with them held, minus its RSS before, divided by
  their count (KiB). The RSS after they all closed shows what was given back.
* **announces/s**: ``--workers`` of those connections announce in a loop (send, wait for the
  answer) for ``--seconds``; answers per second. The client is one Python process on the same
  two cores, so this is a floor for both trackers, not a ceiling.

The embedded tracker's per-address rate limits are lifted for these cases (every client here comes
from 127.0.0.1); the exhaustion cases that follow run it with its defaults:

* **slow readers**: ``--slow-readers`` sockets (40) announce, then never read, while ten sockets
  announce 60 KB offers into their swarm until every slow socket was sent about ``--flood-mib``
  MiB (the announce rate limits lifted: this case is about the outbox bound alone).
  RSS before, at its peak during the flood, and after the sockets closed.
* **swarm table**: 100 sockets announce fresh info hashes as fast as they can for one second (each
  at most 500); how many swarms they created, how many announces were refused.

Every loop is bounded in count and time. The last lines are machine-readable::

    RESULT tracker_capacity tracker=embedded connections=N announces_per_s=A kib_per_connection=K ...
    RESULT tracker_capacity tracker=bittorrent-tracker connections=N announces_per_s=A ...
    RESULT tracker_exhaustion case=slow_readers tracker=embedded sockets=40 ...
    RESULT tracker_exhaustion case=swarm_table tracker=embedded sockets=100 ...

    python benchmarks/tracker_capacity.py                 # 2,000 connections, 5 s of announces
    python benchmarks/tracker_capacity.py --quick         # 200 connections, 1 s: a smoke run
    python benchmarks/tracker_capacity.py --no-node       # the embedded tracker only

``tests/test_tracker_capacity.py`` runs ``--quick`` and checks the RESULT lines.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import queue
import random
import resource
import subprocess
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import attrs
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

ROOT_DIR = Path(__file__).resolve().parent.parent
if str(ROOT_DIR) not in sys.path:  # run as a script from anywhere: the node tracker helper is in tests/
    sys.path.insert(0, str(ROOT_DIR))

from tests.node_tracker import ensure_installed, node_tracker_dir, start_node_tracker  # noqa: E402
from tests.raw_websocket import NonReader  # noqa: E402

START_TIMEOUT = 30.0  # seconds for a tracker process to listen
STEP_TIMEOUT = 10.0  # seconds for one connect or one answer
SWARMS = 10
UNLIMITED = 10**9
LIFTED_RATE_LIMITS = {
    "announces_per_interval": UNLIMITED,
    "address_announces_per_interval": UNLIMITED,
    "swarms_created_per_interval": UNLIMITED,
    "address_swarms_created_per_interval": UNLIMITED,
}

_EMBEDDED_SCRIPT = """
import asyncio, json, sys
from p2ploader.tracker import run_tracker_forever

def ready(server):
    print(f"LISTENING {server.port}", flush=True)

async def main():
    limits = json.loads(sys.argv[1])
    task = asyncio.ensure_future(run_tracker_forever("127.0.0.1", 0, on_ready=ready, **limits))
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)  # until stdin closes
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)

asyncio.run(main())
"""


# ------------------------------------------------------------------------------------------ processes


@attrs.define
class TrackerProcess:
    name: str
    url: str
    process: subprocess.Popen[str]
    stop: Callable[[], None]

    def rss_kib(self) -> int:
        """The process's resident set size in KiB."""
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        raise RuntimeError("no VmRSS")

    def stats_json(self) -> dict[str, Any]:
        """The embedded tracker's ``/stats.json``."""
        import urllib.request

        with urllib.request.urlopen(self.url.replace("ws://", "http://") + "/stats.json", timeout=5) as r:
            result: dict[str, Any] = json.loads(r.read())
            return result


def start_embedded(limits: dict[str, Any]) -> TrackerProcess:
    env = dict(
        os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT_DIR), os.environ.get("PYTHONPATH")]))
    )
    process = subprocess.Popen(
        [sys.executable, "-c", _EMBEDDED_SCRIPT, json.dumps(limits)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=env,
    )
    lines: queue.Queue[str | None] = queue.Queue()

    def pump() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            lines.put(line)
        lines.put(None)

    threading.Thread(target=pump, daemon=True).start()

    def stop() -> None:
        if process.poll() is None:
            assert process.stdin is not None
            process.stdin.close()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=5)

    try:
        while True:
            line = lines.get(timeout=START_TIMEOUT)
            if line is None:
                raise RuntimeError("the embedded tracker exited")
            if line.startswith("LISTENING "):
                url = f"ws://127.0.0.1:{int(line.split()[1])}"
                return TrackerProcess("embedded", url, process, stop)
    except BaseException:
        stop()
        raise


class Unavailable(Exception):
    """A tracker that cannot run here (no node, no package)."""


def start_node() -> TrackerProcess:
    try:
        script = ensure_installed(node_tracker_dir())
    except BaseException as exc:  # the helper calls pytest.skip(), a BaseException, with the reason
        if isinstance(exc, KeyboardInterrupt | SystemExit):
            raise
        raise Unavailable(str(exc)) from exc
    node = start_node_tracker(script)
    return TrackerProcess("bittorrent-tracker", node.url, node.process, node.stop)


@contextlib.contextmanager
def running(start: Callable[[], TrackerProcess]) -> Iterator[TrackerProcess]:
    tracker = start()
    try:
        yield tracker
    finally:
        tracker.stop()


def raise_fd_limit(wanted: int) -> int:
    """Raise the soft RLIMIT_NOFILE towards ``wanted`` within the hard limit (children inherit it);
    return the soft limit now in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if target > soft:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        soft = target
    return soft


# ------------------------------------------------------------------------------------------ clients


def _id(prefix: str, n: int) -> str:
    return f"{prefix}{n:0{20 - len(prefix)}d}"


def announce(info_hash: str, peer_id: str, **extra: Any) -> str:
    message = {"action": "announce", "info_hash": info_hash, "peer_id": peer_id, "numwant": 0}
    message.update(extra)
    return json.dumps(message)


async def _answer(ws: ClientConnection) -> dict[str, Any]:
    """The next announce answer (skipping relayed offers)."""
    while True:
        message = json.loads(await asyncio.wait_for(ws.recv(), STEP_TIMEOUT))
        if "offer" not in message and "answer" not in message:
            result: dict[str, Any] = message
            return result


async def _bounded_gather(jobs: list[Callable[[], Awaitable[Any]]], parallel: int) -> list[Any]:
    gate = asyncio.Semaphore(parallel)

    async def run(job: Callable[[], Awaitable[Any]]) -> Any:
        async with gate:
            try:
                return await job()
            except Exception as exc:  # a refused or timed-out connection counts as not held
                return exc

    return await asyncio.gather(*(run(job) for job in jobs))


async def open_peers(url: str, count: int, *, prefix: str = "-IDLE-") -> list[ClientConnection]:
    """``count`` connections, each announced once into one of ten swarms (failures dropped)."""

    async def one(n: int) -> ClientConnection:
        ws = await connect(url, open_timeout=STEP_TIMEOUT, compression=None, max_queue=64)
        try:
            await ws.send(announce(_id("swarm-", n % SWARMS), _id(prefix, n), event="started"))
            answer = await _answer(ws)
            if "failure reason" in answer:
                raise RuntimeError(answer["failure reason"])
        except BaseException:
            await ws.close()
            raise
        return ws

    results = await _bounded_gather([lambda n=n: one(n) for n in range(count)], parallel=100)
    return [r for r in results if isinstance(r, ClientConnection)]


async def close_all(sockets: list[ClientConnection]) -> None:
    async def close(ws: ClientConnection) -> None:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(ws.close(), STEP_TIMEOUT)

    await _bounded_gather([lambda ws=ws: close(ws) for ws in sockets], parallel=200)


async def announce_rate(sockets: list[ClientConnection], seconds: float, *, cap: int = 1_000_000) -> float:
    """Answers per second from ``sockets`` announcing in a loop (each keeps its idle peer id)."""
    deadline = time.monotonic() + seconds
    done = 0

    async def worker(index: int, ws: ClientConnection) -> None:
        nonlocal done
        message = announce(_id("swarm-", index % SWARMS), _id("-IDLE-", index))
        while time.monotonic() < deadline and done < cap:
            await ws.send(message)
            await _answer(ws)
            done += 1

    started = time.monotonic()
    await asyncio.gather(*(worker(i, ws) for i, ws in enumerate(sockets)))
    return done / (time.monotonic() - started)


async def settle_rss(tracker: TrackerProcess, seconds: float = 1.0) -> int:
    await asyncio.sleep(seconds)
    return tracker.rss_kib()


# ------------------------------------------------------------------------------------------ cases


@attrs.define
class Capacity:
    tracker: str
    connections: int
    announces_per_s: float
    kib_per_connection: float
    rss_before_mib: float
    rss_held_mib: float
    rss_after_close_mib: float

    def result_line(self) -> str:
        return (
            f"RESULT tracker_capacity tracker={self.tracker} connections={self.connections} "
            f"announces_per_s={self.announces_per_s:.0f} kib_per_connection={self.kib_per_connection:.1f} "
            f"rss_before_mib={self.rss_before_mib:.1f} rss_held_mib={self.rss_held_mib:.1f} "
            f"rss_after_close_mib={self.rss_after_close_mib:.1f}"
        )


async def capacity(tracker: TrackerProcess, *, connections: int, workers: int, seconds: float) -> Capacity:
    before = await settle_rss(tracker, 0.5)
    sockets = await open_peers(tracker.url, connections)
    held = await settle_rss(tracker)
    rate = await announce_rate(sockets[:workers], seconds)
    await close_all(sockets)
    after = await settle_rss(tracker, 2.0)
    return Capacity(
        tracker=tracker.name,
        connections=len(sockets),
        announces_per_s=rate,
        kib_per_connection=(held - before) / max(1, len(sockets)),
        rss_before_mib=before / 1024,
        rss_held_mib=held / 1024,
        rss_after_close_mib=after / 1024,
    )


@attrs.define
class SlowReaders:
    tracker: str
    sockets: int
    sent_mib: float
    rss_before_mib: float
    rss_peak_mib: float
    rss_after_close_mib: float
    dropped: int

    def result_line(self) -> str:
        return (
            f"RESULT tracker_exhaustion case=slow_readers tracker={self.tracker} sockets={self.sockets} "
            f"sent_mib={self.sent_mib:.0f} rss_before_mib={self.rss_before_mib:.1f} "
            f"rss_peak_mib={self.rss_peak_mib:.1f} rss_after_close_mib={self.rss_after_close_mib:.1f} "
            f"dropped={self.dropped}"
        )


async def slow_readers(
    tracker: TrackerProcess, *, sockets: int, flood_mib: float, seconds: float
) -> SlowReaders:
    """``sockets`` non-reading peers in one swarm; ten flooders announce one 60 KB offer at a time
    (each goes to a random other peer) until each slow peer was sent about ``flood_mib`` MiB or
    ``seconds`` pass."""
    info_hash = _id("flood-", 0)
    before = await settle_rss(tracker, 0.5)
    stuck = [await NonReader.open(tracker.url, step_seconds=STEP_TIMEOUT) for _ in range(sockets)]
    for n, peer in enumerate(stuck):
        peer.send(announce(info_hash, _id("-SLOW-", n), event="started"))
    flooders = [await connect(tracker.url, compression=None, max_queue=None) for _ in range(10)]
    sdp = "v=0 " + "a" * 60_000  # as big as a 64 KiB frame allows
    per_message = len(sdp)
    # Offers go to random other peers: the slow ones get sockets / (sockets + 9) of them.
    messages = int(flood_mib * 2**20 * (sockets + len(flooders) - 1) / per_message) + 1
    peak = before
    sent = 0
    deadline = time.monotonic() + seconds

    reconnects = 0

    async def flood(index: int, ws: ClientConnection) -> None:
        nonlocal sent, peak, reconnects
        n = 0
        while sent < messages and time.monotonic() < deadline:
            offers = [{"offer": {"type": "offer", "sdp": sdp}, "offer_id": _id("o", n)}]
            try:
                await ws.send(
                    announce(info_hash, _id(f"-FLOOD{index}-{reconnects}-", 0), offers=offers, numwant=1)
                )
                await _answer(ws)
            except ConnectionClosed:
                # The flooders get each other's offers too; when this process falls behind reading
                # them, the tracker drops a flooder as a slow reader as well. Come back and go on.
                reconnects += 1
                ws = flooders[index] = await connect(tracker.url, compression=None, max_queue=None)
                continue
            sent += 1
            n += 1
            if n % 20 == 0:
                peak = max(peak, tracker.rss_kib())

    await asyncio.gather(*(flood(i, ws) for i, ws in enumerate(flooders)))
    peak = max(peak, tracker.rss_kib())
    # Only the slow peers count: a flooder dropped for lagging is reconnected above.
    dropped = tracker.stats_json()["slow_readers_dropped"] - reconnects if tracker.name == "embedded" else -1
    for peer in stuck:
        peer.close()
    await close_all(flooders)
    after = await settle_rss(tracker, 2.0)
    return SlowReaders(
        tracker=tracker.name,
        sockets=sockets,
        sent_mib=sent * per_message / 2**20,
        rss_before_mib=before / 1024,
        rss_peak_mib=peak / 1024,
        rss_after_close_mib=after / 1024,
        dropped=dropped,
    )


@attrs.define
class SwarmTable:
    tracker: str
    sockets: int
    seconds: float
    swarms_created: int
    refused: int

    def result_line(self) -> str:
        return (
            f"RESULT tracker_exhaustion case=swarm_table tracker={self.tracker} sockets={self.sockets} "
            f"seconds={self.seconds:g} swarms_created={self.swarms_created} refused={self.refused}"
        )


async def swarm_table(tracker: TrackerProcess, *, sockets: int, seconds: float, cap: int = 500) -> SwarmTable:
    """``sockets`` connections announce fresh info hashes for ``seconds`` (each at most ``cap``)."""
    connections = [await connect(tracker.url, compression=None) for _ in range(sockets)]
    created = refused = 0
    rng = random.Random(7)
    deadline = time.monotonic() + seconds

    async def fill(index: int, ws: ClientConnection) -> None:
        nonlocal created, refused
        peer_id = _id("-FILL-", index)
        for _ in range(cap):
            if time.monotonic() >= deadline:
                return
            await ws.send(announce(_id("h", rng.randrange(10**18)), peer_id, event="started"))
            if "failure reason" in await _answer(ws):
                refused += 1
            else:
                created += 1

    await asyncio.gather(*(fill(i, ws) for i, ws in enumerate(connections)))
    await close_all(connections)
    return SwarmTable(tracker.name, sockets, seconds, created, refused)


# ------------------------------------------------------------------------------------------ main


async def run(args: argparse.Namespace) -> list[str]:
    results: list[str] = []
    cases = set(args.cases.split(","))
    starters: list[Callable[[], TrackerProcess]] = []
    if "capacity" in cases:
        starters.append(lambda: start_embedded(LIFTED_RATE_LIMITS))
    if "capacity" in cases and not args.no_node:
        starters.append(start_node)
    for start in starters:
        try:
            with running(start) as tracker:
                figures = await capacity(
                    tracker, connections=args.connections, workers=args.workers, seconds=args.seconds
                )
        except Unavailable as exc:
            print(f"bittorrent-tracker skipped: {exc}", flush=True)
            continue
        f = figures
        print(
            f"{f.tracker}: {f.connections} connections held, {f.kib_per_connection:.1f} KiB each "
            f"(RSS {f.rss_before_mib:.1f} -> {f.rss_held_mib:.1f} MiB, {f.rss_after_close_mib:.1f} MiB "
            f"after they closed), {f.announces_per_s:.0f} announces/s",
            flush=True,
        )
        results.append(figures.result_line())
    if "slow_readers" in cases:
        flood_limits = {"announces_per_interval": UNLIMITED, "address_announces_per_interval": UNLIMITED}
        with running(lambda: start_embedded(flood_limits)) as tracker:
            slow = await slow_readers(
                tracker, sockets=args.slow_readers, flood_mib=args.flood_mib, seconds=args.flood_seconds
            )
        print(
            f"{slow.tracker}: {slow.sockets} non-reading sockets sent {slow.sent_mib:.0f} MiB: RSS "
            f"{slow.rss_before_mib:.1f} -> peak {slow.rss_peak_mib:.1f} -> {slow.rss_after_close_mib:.1f} "
            f"MiB after they closed; {slow.dropped} dropped as slow readers",
            flush=True,
        )
        results.append(slow.result_line())
    if "swarm_table" in cases:
        with running(lambda: start_embedded({})) as tracker:  # the defaults
            table = await swarm_table(tracker, sockets=100, seconds=1.0)
        print(
            f"{table.tracker}: 100 sockets for 1 s created {table.swarms_created} swarms; "
            f"{table.refused} announces refused",
            flush=True,
        )
        results.append(table.result_line())
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--connections", type=int, default=2000, help="idle connections to hold per tracker")
    parser.add_argument("--workers", type=int, default=50, help="connections that announce in a loop")
    parser.add_argument("--seconds", type=float, default=5.0, help="seconds of announcing")
    parser.add_argument("--slow-readers", type=int, default=40, help="non-reading sockets to flood")
    parser.add_argument("--flood-mib", type=float, default=20.0, help="MiB sent to each non-reading socket")
    parser.add_argument("--flood-seconds", type=float, default=60.0, help="at most this long flooding")
    parser.add_argument("--no-node", action="store_true", help="skip npm bittorrent-tracker")
    parser.add_argument(
        "--cases",
        default="capacity,slow_readers,swarm_table",
        help="comma-separated cases to run (default: all three)",
    )
    parser.add_argument("--quick", action="store_true", help="a short smoke run (for the tests)")
    args = parser.parse_args(argv)
    if args.quick:
        args.connections, args.workers, args.seconds = min(args.connections, 200), 10, 1.0
        args.slow_readers, args.flood_mib, args.flood_seconds = 10, 12.0, 15.0
    limit = raise_fd_limit(2 * args.connections + 256)
    if limit < 2 * args.connections + 64:
        args.connections = max(10, (limit - 64) // 2)
        print(f"file descriptor limit {limit}: holding {args.connections} connections", flush=True)
    for line in asyncio.run(run(args)):
        print(line, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
