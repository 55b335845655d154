"""One bounded wait for tests that run real sockets: poll a condition until it holds or a deadline
passes.

Real-socket tests (WebRTC, websockets, the local origin) have no event to await for "the peer is
connected" or "the tracker has heard of us"; they poll. This is the one polling loop, bounded by a
deadline on the running loop's clock, so no test waits forever and a timeout says what it waited
for. Core (sans-IO) tests never need it: they drive the clock (:mod:`p2ploader.testing.harness`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from p2ploader.errors import UsageError

__all__ = ["wait_until"]


async def wait_until(
    predicate: Callable[[], object],
    timeout: float = 15.0,  # noqa: ASYNC109 - a poll with a deadline, not an operation to cancel
    *,
    interval: float = 0.02,
    what: str | Callable[[], object] = "condition",
) -> None:
    """Return as soon as ``predicate()`` is true, checking every ``interval`` seconds; raise
    :class:`AssertionError` naming ``what`` (a text, or a callable whose result describes the state
    at the deadline) when ``timeout`` seconds pass first. The predicate is checked once more at the
    deadline, so a condition met during the last sleep still counts."""
    if timeout < 0 or interval <= 0:
        raise UsageError(f"timeout must be >= 0 and interval > 0 seconds, got {timeout} and {interval}")
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        if loop.time() >= deadline:
            described = what() if callable(what) else what
            raise AssertionError(f"{described} not reached within {timeout} s")
        await asyncio.sleep(min(interval, max(0.0, deadline - loop.time())))
