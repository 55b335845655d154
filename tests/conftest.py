from __future__ import annotations

import pytest


@pytest.fixture
def anyio_backend() -> str:
    # aiortc is asyncio-only, so the whole library runs on anyio's asyncio backend.
    return "asyncio"
