"""The public testing kit: the bounded wait and the scheduler harness."""

from __future__ import annotations

import asyncio

import pytest

from p2ploader.errors import UsageError
from p2ploader.testing.harness import Harness, sid
from p2ploader.testing.wait import wait_until

pytestmark = pytest.mark.anyio


async def test_wait_until_returns_at_once_when_the_predicate_holds() -> None:
    loop = asyncio.get_running_loop()
    started = loop.time()
    await wait_until(lambda: True, 5.0)
    assert loop.time() - started < 0.5


async def test_wait_until_returns_once_the_predicate_becomes_true() -> None:
    flag: list[bool] = []
    asyncio.get_running_loop().call_later(0.05, flag.append, True)
    await wait_until(lambda: bool(flag), 5.0, interval=0.01)
    assert flag == [True]


async def test_wait_until_fails_after_the_timeout_naming_what_it_waited_for() -> None:
    loop = asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises(AssertionError, match=r"the peer connected not reached within 0\.1 s"):
        await wait_until(lambda: False, 0.1, what="the peer connected")
    assert 0.1 <= loop.time() - started < 2.0


async def test_wait_until_describes_the_state_at_the_deadline() -> None:
    with pytest.raises(AssertionError, match="peers: 0"):
        await wait_until(lambda: False, 0.0, what=lambda: "peers: 0")


async def test_wait_until_refuses_a_negative_timeout_or_a_zero_interval() -> None:
    with pytest.raises(UsageError):
        await wait_until(lambda: True, -1.0)
    with pytest.raises(UsageError):
        await wait_until(lambda: True, 1.0, interval=0.0)


def test_the_harness_drives_the_scheduler_with_an_explicit_clock() -> None:
    # The example of docs/testing.md.
    h = Harness(policy="p2pml-0.6", seed=1)
    h.play_at(0)
    h.request(0)
    h.complete_http(h.http_request_for(0))
    assert [n.segment.id for n in h.ready()] == [sid(0)]
    h.advance(10.0)
    assert h.now == 10.0
