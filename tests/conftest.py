from __future__ import annotations

import asyncio
import gc
import socket
import sys
import threading
from collections.abc import AsyncIterator, Generator, Iterator

import pytest

from p2ploader.aio.webrtc import restrict_ice_to_loopback
from p2ploader.tracker import TrackerServer

# One bittorrent-tracker node process per session, shared by every module that uses it.
pytest_plugins = ("tests.node_tracker",)


# A test still running after this many seconds gets the stacks of its event loops' tasks printed
# to stderr (shown with its failure when pytest-timeout then fails it): pytest-timeout's own dump
# shows threads only, and a hung asyncio test's thread just waits in select().
_TASK_DUMP_AFTER = 600.0


def _running_loops() -> list[asyncio.AbstractEventLoop]:
    loops = []
    for o in gc.get_objects():
        try:
            if isinstance(o, asyncio.AbstractEventLoop) and o.is_running():
                loops.append(o)
        except ReferenceError:  # a weak proxy whose object is gone
            continue
    return loops


def _dump_asyncio_tasks() -> None:
    for loop in _running_loops():
        print(f"==== tasks of {loop!r} ====", file=sys.stderr)
        for task in list(asyncio.all_tasks(loop)):
            print(f"--- {task!r}", file=sys.stderr)
            task.print_stack(file=sys.stderr)
    sys.stderr.flush()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Generator[None, object, object]:
    watchdog = threading.Timer(_TASK_DUMP_AFTER, _dump_asyncio_tasks)
    watchdog.daemon = True
    watchdog.start()
    try:
        return (yield)
    finally:
        watchdog.cancel()


@pytest.fixture
def anyio_backend() -> str:
    # aiortc is asyncio-only, so the whole library runs on anyio's asyncio backend.
    return "asyncio"


@pytest.fixture
def loopback() -> Iterator[None]:
    """WebRTC links of the test gather 127.0.0.1 candidates only (no network needed)."""
    with restrict_ice_to_loopback():
        yield


@pytest.fixture
async def tracker() -> AsyncIterator[TrackerServer]:
    """The embedded WebTorrent tracker on 127.0.0.1, for one test."""
    async with TrackerServer() as server:
        yield server


# The test files that take longest (worker-seconds of simulation, real-time playback and swarms,
# measured over the suite on four workers of the two-core machine; the simulator's stress cases
# first, being CPU-bound, then the Ray cluster's file), started first: under
# pytest-xdist each file runs whole on one worker (--dist loadfile) in collection order, and a long
# file started last keeps one worker busy while the others idle. `dev.py test` passes
# --no-loadscope-reorder: pytest-xdist 3.8 otherwise reorders the files by their number of tests,
# which ran these few-test files last. Order only: a file missing here runs where it is collected.
SLOWEST_FIRST = (
    "tests/sim/test_live_policy_stress.py",
    "tests/app/test_cluster.py",
    "tests/proxy/test_proxy.py",
    "tests/app/test_cli.py",
    "tests/aio/test_p2p_e2e.py",
    "tests/test_soak.py",
    "tests/aio/test_peers.py",
    "tests/sim/test_fidelity.py",
    "tests/browser/test_browser_swarm.py",
    "tests/aio/test_topology_e2e.py",
    "tests/aio/test_upload_policy.py",
    "tests/test_gap_stream.py",
    "tests/app/test_pool.py",
    "tests/app/test_viewer_process.py",
    "tests/browser/test_browser_testbed.py",
    "tests/test_install.py",
    "tests/test_examples.py",
    "tests/app/test_cli_audio.py",
    "tests/hostile/test_attack_matrix.py",
    "tests/aio/test_date_tags_e2e.py",
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    rank = {path: i for i, path in enumerate(SLOWEST_FIRST)}
    # sort() is stable: the tests of a file, and the files not listed, keep their order.
    items.sort(key=lambda item: rank.get(item.nodeid.split("::", 1)[0], len(rank)))


@pytest.fixture
def busy_port() -> Iterator[int]:
    """A port on 127.0.0.1 that another socket is listening on."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as blocker:
        blocker.bind(("127.0.0.1", 0))
        blocker.listen()
        yield int(blocker.getsockname()[1])
