from __future__ import annotations

import pytest

# One bittorrent-tracker node process per session, shared by every module that uses it.
pytest_plugins = ("tests.node_tracker",)


@pytest.fixture
def anyio_backend() -> str:
    # aiortc is asyncio-only, so the whole library runs on anyio's asyncio backend.
    return "asyncio"
