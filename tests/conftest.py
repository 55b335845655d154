from __future__ import annotations

import asyncio
import gc
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
