from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest

from p2ploader.aio.webrtc import restrict_ice_to_loopback
from p2ploader.tracker import TrackerServer

# One bittorrent-tracker node process per session, shared by every module that uses it.
pytest_plugins = ("tests.node_tracker",)


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
