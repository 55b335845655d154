"""Rewiring over real aiortc links on 127.0.0.1: a viewer whose one slot is taken gives it to a
newcomer's offer when its swarm rewires (the LL-HLS parts swarm does), and refuses the offer when it
does not (every other swarm, by default)."""

from __future__ import annotations

import asyncio

import pytest

from p2ploader.config import LoaderConfig
from p2ploader.core.admission import AdmissionLimits
from tests.aio.test_peers import Side, connect, wait_until

pytestmark = pytest.mark.anyio

CONFIG = LoaderConfig(http_download_probability=0.0)


async def close_all(*sides: Side) -> None:
    await asyncio.gather(*(side.peers.aclose() for side in sides))
    for side in sides:
        side.driver.close()


async def test_a_full_viewer_that_rewires_gives_its_slot_to_a_newcomer(loopback: None) -> None:
    limits = AdmissionLimits(max_peers=1, rewire_interval=10.0)
    a, b, c = (Side(name, CONFIG, admission=limits) for name in "abc")
    try:
        await connect(b, a)  # a's one slot holds b, still in its grace period
        assert set(a.peers.linked) == {b.peers.local_peer_id}
        # c's offer is answered although a's one slot is taken, and c's link takes b's place.
        (offer,) = await c.peers.make_offers(1)
        answer = await a.peers.on_offer(bytes.fromhex(c.peers.local_peer_id), offer.offer_id, offer.sdp)
        assert answer is not None
        await c.peers.on_answer(bytes.fromhex(a.peers.local_peer_id), offer.offer_id, answer)
        await wait_until(lambda: set(a.peers.linked) == {c.peers.local_peer_id})
        await wait_until(lambda: b.scheduler.statistics().peers == 0)  # b was told: its slot is free
        assert c.scheduler.statistics().peers == 1
    finally:
        await close_all(a, b, c)


async def test_by_default_a_full_viewer_refuses_the_newcomers_offer(loopback: None) -> None:
    a, b, c = (Side(name, CONFIG, admission=AdmissionLimits(max_peers=1)) for name in "abc")
    try:
        await connect(b, a)
        (offer,) = await c.peers.make_offers(1)
        answer = await a.peers.on_offer(bytes.fromhex(c.peers.local_peer_id), offer.offer_id, offer.sdp)
        assert answer is None
        assert set(a.peers.linked) == {b.peers.local_peer_id}
    finally:
        await close_all(a, b, c)
