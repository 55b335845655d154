"""The embedded WebTorrent tracker, driven over real WebSockets on 127.0.0.1 with raw JSON frames.

Every receive is bounded; "nothing arrives" is checked by sending a scrape and seeing its response
come first (the tracker answers one connection's requests in order)."""

from __future__ import annotations

import asyncio
import json
import random
import urllib.request
from collections.abc import AsyncIterator
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from p2ploader.errors import UsageError
from p2ploader.testing.wait import wait_until
from p2ploader.tracker import (
    TrackerLimits,
    TrackerServer,
    TrackerStatistics,
    run_tracker_forever,
    serve_tracker,
)
from tests.raw_websocket import NonReader

pytestmark = pytest.mark.anyio

HASH_A = "L2uYwMcHhsstZuLv8ZqU"
HASH_B = bytes.fromhex("ae9cd6bf657a583a6f33711f1cae11fa25c19b43").decode("latin-1")
RECV_TIMEOUT = 5.0


def pid(n: int) -> str:
    return f"-PY0001-{n:012d}"


def oid(n: int) -> str:
    return f"offer-{n:014d}"


class Peer:
    """A raw WebSocket client speaking the tracker's JSON."""

    def __init__(self, ws: ClientConnection, peer_id: str) -> None:
        self.ws = ws
        self.peer_id = peer_id

    async def send(self, message: dict[str, Any] | str | bytes) -> None:
        await self.ws.send(message if isinstance(message, str | bytes) else json.dumps(message))

    async def recv(self) -> dict[str, Any]:
        message = json.loads(await asyncio.wait_for(self.ws.recv(), RECV_TIMEOUT))
        assert isinstance(message, dict)
        return message

    async def announce(
        self, info_hash: str = HASH_A, *, offers: int = 0, first: int = 0, **extra: Any
    ) -> dict[str, Any]:
        """Announce (``offers`` offers with ids ``first``...) and return the tracker's response."""
        message: dict[str, Any] = {
            "action": "announce",
            "info_hash": info_hash,
            "peer_id": self.peer_id,
            "numwant": offers,
            "uploaded": 0,
            "downloaded": 0,
            "event": "started",
            "offers": [
                {"offer": {"type": "offer", "sdp": f"sdp {self.peer_id} {i}"}, "offer_id": oid(i)}
                for i in range(first, first + offers)
            ],
        }
        message.update(extra)
        message = {k: v for k, v in message.items() if v is not None}
        await self.send(message)
        return await self.recv()

    async def answer(self, to: Peer, offer_id: str, info_hash: str = HASH_A) -> None:
        await self.send(
            {
                "action": "announce",
                "info_hash": info_hash,
                "peer_id": self.peer_id,
                "to_peer_id": to.peer_id,
                "answer": {"type": "answer", "sdp": f"answer from {self.peer_id}"},
                "offer_id": offer_id,
            }
        )

    async def nothing_pending(self) -> None:
        """Assert no message is queued for us: a scrape's response is the next thing we get."""
        await self.send({"action": "scrape", "info_hash": HASH_A})
        assert (await self.recv())["action"] == "scrape"


@pytest.fixture
async def tracker() -> AsyncIterator[TrackerServer]:
    async with TrackerServer(rng=random.Random(5)) as server:
        yield server


async def join(tracker: TrackerServer, n: int) -> Peer:
    return Peer(await connect(tracker.url), pid(n))


async def test_binds_loopback_on_a_free_port(tracker: TrackerServer) -> None:
    assert tracker.url == f"ws://127.0.0.1:{tracker.port}"
    assert tracker.port > 0
    peer = await join(tracker, 1)
    response = await peer.announce()
    assert response == {
        "action": "announce",
        "interval": 120,
        "info_hash": HASH_A,
        "complete": 0,
        "incomplete": 1,
    }
    await peer.ws.close()


async def test_offer_and_answer_are_relayed(tracker: TrackerServer) -> None:
    a, b = await join(tracker, 1), await join(tracker, 2)
    assert (await a.announce())["incomplete"] == 1
    assert (await b.announce(offers=2))["incomplete"] == 2
    offer = await a.recv()  # one other peer: one of b's two offers
    assert offer == {
        "action": "announce",
        "offer": {"type": "offer", "sdp": f"sdp {b.peer_id} 0"},
        "offer_id": oid(0),
        "peer_id": b.peer_id,
        "info_hash": HASH_A,
    }
    await a.answer(b, oid(0))
    assert await b.recv() == {
        "action": "announce",
        "answer": {"type": "answer", "sdp": f"answer from {a.peer_id}"},
        "offer_id": oid(0),
        "peer_id": a.peer_id,
        "info_hash": HASH_A,
    }
    await a.nothing_pending()  # no announce response for an answer
    await b.nothing_pending()  # b never gets its own offer
    stats = tracker.statistics()
    assert (stats.offers_relayed, stats.answers_relayed, stats.messages_relayed) == (1, 1, 2)
    assert (stats.swarms, stats.peers, stats.connections) == (1, 2, 2)


async def test_offers_go_to_distinct_peers_up_to_numwant_and_the_cap() -> None:
    async with TrackerServer(max_offers_per_announce=4) as tracker:
        others = [await join(tracker, n) for n in range(1, 7)]
        for peer in others:
            await peer.announce()
        offerer = await join(tracker, 99)
        await offerer.announce(offers=3)
        got = [offer for peer in others if (offer := await _take_offer(peer)) is not None]
        assert {m["offer_id"] for m in got} == {oid(0), oid(1), oid(2)}  # three offers, three peers
        assert all(m["peer_id"] == offerer.peer_id for m in got)

        await offerer.announce(offers=6, first=10, numwant=2, event=None)  # numwant limits
        got = [offer for peer in others if (offer := await _take_offer(peer)) is not None]
        assert {m["offer_id"] for m in got} == {oid(10), oid(11)}
        await offerer.announce(offers=6, first=20, numwant=None, event=None)  # absent: the cap of 4
        got = [offer for peer in others if (offer := await _take_offer(peer)) is not None]
        assert {m["offer_id"] for m in got} == {oid(20), oid(21), oid(22), oid(23)}
        assert tracker.statistics().offers_relayed == 9


async def _take_offer(peer: Peer) -> dict[str, Any] | None:
    """The offer queued for ``peer``, if any (at most one is expected)."""
    await peer.send({"action": "scrape", "info_hash": HASH_B})
    first = await peer.recv()
    if first["action"] == "scrape":
        return None
    assert "offer" in first
    assert (await peer.recv())["action"] == "scrape"
    return first


async def test_swarms_are_isolated(tracker: TrackerServer) -> None:
    a, b, c = await join(tracker, 1), await join(tracker, 2), await join(tracker, 3)
    await a.announce(HASH_A)
    await b.announce(HASH_B)
    response = await c.announce(HASH_B, offers=5)
    assert (response["info_hash"], response["incomplete"]) == (HASH_B, 2)
    assert (await b.recv())["peer_id"] == c.peer_id
    await a.nothing_pending()
    await b.nothing_pending()
    assert tracker.peer_ids(HASH_A.encode("latin-1")) == {a.peer_id.encode()}
    assert tracker.peer_ids(HASH_B.encode("latin-1")) == {b.peer_id.encode(), c.peer_id.encode()}
    await a.send({"action": "scrape", "info_hash": [HASH_A, HASH_B, "x" * 20]})
    assert (await a.recv())["files"] == {
        HASH_A: {"complete": 0, "incomplete": 1, "downloaded": 0},
        HASH_B: {"complete": 0, "incomplete": 2, "downloaded": 0},
        "x" * 20: {"complete": 0, "incomplete": 0, "downloaded": 0},
    }


async def test_stopped_removes_the_peer_and_disconnect_cleans_up(tracker: TrackerServer) -> None:
    a, b = await join(tracker, 1), await join(tracker, 2)
    await a.announce(HASH_A)
    await a.announce(HASH_B)
    await b.announce(HASH_A)
    response = await a.announce(HASH_A, event="stopped", offers=0, numwant=0)
    assert response == {
        "action": "announce",
        "interval": 120,
        "info_hash": HASH_A,
        "complete": 0,
        "incomplete": 1,
    }
    assert tracker.peer_ids(HASH_A.encode()) == {b.peer_id.encode()}
    await b.announce(HASH_A, offers=3, event=None)
    await a.nothing_pending()  # a left the swarm: no offers for it
    assert tracker.statistics().swarms == 2
    await a.ws.close()  # a is still in swarm B until its socket closes
    await wait_until(lambda: tracker.statistics().swarms == 1)
    await b.ws.close()
    await wait_until(lambda: _sizes(tracker.statistics()) == (0, 0, 0))


def _sizes(stats: TrackerStatistics) -> tuple[int, int, int]:
    return stats.connections, stats.swarms, stats.peers


async def test_completed_and_left_zero_count_as_seeds(tracker: TrackerServer) -> None:
    a, b, c = await join(tracker, 1), await join(tracker, 2), await join(tracker, 3)
    await a.announce(left=0)
    await b.announce(left="0")
    assert (await c.announce(left=1000))["complete"] == 2
    response = await c.announce(event="completed", offers=0)
    assert (response["complete"], response["incomplete"]) == (3, 0)
    await c.announce(event="stopped")
    await a.send({"action": "scrape", "info_hash": HASH_A})
    assert (await a.recv())["files"][HASH_A] == {"complete": 2, "incomplete": 0, "downloaded": 2}


async def test_peers_per_swarm_limit_answers_with_failure_reason() -> None:
    async with TrackerServer(max_peers_per_swarm=2) as tracker:
        a, b, c = await join(tracker, 1), await join(tracker, 2), await join(tracker, 3)
        await a.announce()
        await b.announce()
        refused = await c.announce(offers=2)
        assert refused == {"action": "announce", "failure reason": "swarm is full", "info_hash": HASH_A}
        await a.nothing_pending()  # a refused announce relays nothing
        assert (await c.announce(HASH_B))["incomplete"] == 1  # other swarms still work
        await b.ws.close()
        await wait_until(lambda: len(tracker.peer_ids(HASH_A.encode())) == 1)
        assert (await c.announce())["incomplete"] == 2
        assert tracker.statistics().bad_requests == 0  # refusals are not protocol errors


async def test_swarm_and_connection_limits() -> None:
    async with TrackerServer(max_swarms=2, max_swarms_per_connection=1, max_connections=2) as tracker:
        a, b = await join(tracker, 1), await join(tracker, 2)
        await a.announce(HASH_A)
        refused = await a.announce(HASH_B)
        assert refused["failure reason"] == "too many swarms on this connection"
        await b.announce(HASH_B)
        third = "t" * 20
        c_refused = await b.announce(third)
        assert c_refused["failure reason"] == "too many swarms on this connection"
        with pytest.raises(InvalidStatus) as excinfo:
            await connect(tracker.url)
        assert excinfo.value.response.status_code == 503
        await b.ws.close()
        await wait_until(lambda: tracker.statistics().connections == 1)
        d = await join(tracker, 4)
        assert (await d.announce(HASH_B))["incomplete"] == 1
        assert tracker.statistics().connections_refused == 1
    async with TrackerServer(max_swarms=1) as tracker:
        a = await join(tracker, 1)
        await a.announce(HASH_A)
        b = await join(tracker, 2)
        assert (await b.announce(HASH_B))["failure reason"] == "tracker is full: too many swarms"


async def test_oversized_frames_close_only_that_connection() -> None:
    async with TrackerServer(max_message_size=2048) as tracker:
        big, small = await join(tracker, 1), await join(tracker, 2)
        await big.announce()
        await big.send({"action": "announce", "info_hash": HASH_A, "peer_id": big.peer_id, "pad": "x" * 4096})
        with pytest.raises(ConnectionClosed) as excinfo:
            await asyncio.wait_for(big.ws.recv(), RECV_TIMEOUT)
        assert excinfo.value.rcvd is not None and excinfo.value.rcvd.code == 1009
        await wait_until(lambda: tracker.peer_ids(HASH_A.encode()) == frozenset())
        assert (await small.announce())["incomplete"] == 1


async def test_garbage_is_answered_with_failure_then_the_connection_is_closed() -> None:
    async with TrackerServer(max_protocol_errors=9) as tracker:
        peer = await join(tracker, 1)
        garbage: list[tuple[Any, str]] = [
            ("not json", "invalid JSON"),
            (b"\xff\xfe binary", "invalid JSON"),
            ("[1, 2, 3]", "invalid request: not a JSON object"),
            ('"announce"', "invalid request: not a JSON object"),
            ({"action": "connect"}, "invalid action in WS request: 'connect'"),
            ({"action": "announce", "info_hash": "short", "peer_id": pid(1)}, "invalid info_hash"),
            ({"action": "announce", "info_hash": HASH_A, "peer_id": "€" * 20}, "invalid peer_id"),
        ]
        for frame, reason in garbage:
            await peer.send(frame)
            assert await peer.recv() == {"failure reason": reason}
        assert (await peer.announce())["incomplete"] == 1  # still served
        invalid_event = await peer.announce(event="update-now")
        assert invalid_event == {"action": "announce", "failure reason": "invalid event", "info_hash": HASH_A}
        await peer.send({"action": "announce", "info_hash": HASH_A, "peer_id": peer.peer_id, "offers": "x"})
        assert (await peer.recv())["failure reason"] == "invalid offers"  # the 9th protocol error
        with pytest.raises(ConnectionClosed) as excinfo:
            await asyncio.wait_for(peer.ws.recv(), RECV_TIMEOUT)
        assert excinfo.value.rcvd is not None and excinfo.value.rcvd.code == 1008
        assert tracker.statistics().bad_requests == 9
        other = await join(tracker, 2)
        assert (await other.announce())["incomplete"] == 1  # the tracker itself is fine


async def test_answers_to_unknown_peers_are_dropped(tracker: TrackerServer) -> None:
    a, b = await join(tracker, 1), await join(tracker, 2)
    await a.announce()
    await b.answer(a, oid(1))  # b is not in the swarm
    await a.send(
        {
            "action": "announce",
            "info_hash": HASH_A,
            "peer_id": a.peer_id,
            "to_peer_id": pid(77),
            "answer": {"type": "answer", "sdp": "x"},
            "offer_id": oid(1),
        }
    )  # nobody has that id
    await b.send(
        {
            "action": "announce",
            "info_hash": HASH_A,
            "peer_id": b.peer_id,
            "answer": {"sdp": "x"},
            "offer_id": oid(1),
        }
    )
    assert (await b.recv())["failure reason"] == "invalid `to_peer_id` (required with `answer`)"
    await a.nothing_pending()
    assert tracker.statistics().answers_undeliverable == 2


async def test_ids_in_ensure_ascii_and_raw_form_are_the_same(tracker: TrackerServer) -> None:
    a, b = await join(tracker, 1), await join(tracker, 2)
    a.peer_id = bytes(range(0xE0, 0xF4)).decode("latin-1")
    await a.send(
        json.dumps({"action": "announce", "info_hash": HASH_B, "peer_id": a.peer_id}, ensure_ascii=True)
    )
    assert (await a.recv())["info_hash"] == HASH_B
    await b.send(
        json.dumps({"action": "announce", "info_hash": HASH_B, "peer_id": b.peer_id}, ensure_ascii=False)
    )
    assert (await b.recv())["incomplete"] == 2
    assert tracker.peer_ids(HASH_B.encode("latin-1")) == {a.peer_id.encode("latin-1"), b.peer_id.encode()}


async def test_a_peer_id_belongs_to_the_connection_that_announced_it(tracker: TrackerServer) -> None:
    owner, other = await join(tracker, 1), await join(tracker, 2)
    await owner.announce()
    await other.announce()
    thief = Peer(await connect(tracker.url), owner.peer_id)
    assert await thief.announce() == {
        "action": "announce",
        "failure reason": "peer_id is in use by another connection",
        "info_hash": HASH_A,
    }
    # Nor can it remove the owner with "stopped", or answer in its name.
    await thief.announce(event="stopped")
    await thief.answer(other, oid(3))
    assert tracker.peer_ids(HASH_A.encode()) == {owner.peer_id.encode(), other.peer_id.encode()}
    await other.announce(offers=1, event=None)
    assert (await owner.recv())["offer_id"] == oid(0)  # offers still go to the owner
    await other.nothing_pending()  # the thief's answer was not relayed
    await thief.nothing_pending()
    assert tracker.statistics().peer_id_refusals == 1
    # Once the owner's connection is gone, the id is free (a client that reconnected gets it back).
    await owner.ws.close()
    await wait_until(lambda: tracker.peer_ids(HASH_A.encode()) == {other.peer_id.encode()})
    assert (await thief.announce(event=None))["incomplete"] == 2
    assert tracker.peer_ids(HASH_A.encode()) == {owner.peer_id.encode(), other.peer_id.encode()}


async def test_a_connection_holds_a_bounded_number_of_peer_ids(tracker: TrackerServer) -> None:
    assert tracker.limits.max_peer_ids_per_connection == 8
    peer, other = await join(tracker, 1), await join(tracker, 2)
    await other.announce(HASH_A)
    hashes = [f"swarm-{n:014d}" for n in range(9)]
    for n, info_hash in enumerate(hashes[:8]):  # one id per swarm, as P2P Media Loader 2.x does
        peer.peer_id = pid(100 + n)
        assert (await peer.announce(info_hash))["incomplete"] == 1
    peer.peer_id = pid(108)
    refused = await peer.announce(hashes[8])
    assert refused["failure reason"] == "too many peer ids on this connection"
    peer.peer_id = pid(100)  # an id it holds already is fine in another swarm
    assert (await peer.announce(hashes[8]))["incomplete"] == 1
    assert tracker.statistics().peer_id_refusals == 1


async def test_one_socket_cannot_churn_through_fresh_peer_ids() -> None:
    """The eclipse attack: one WebSocket announcing a fresh self-chosen peer id every 100 ms."""
    clock = Clock()
    async with TrackerServer(clock=clock) as tracker:
        assert tracker.limits.peer_ids_per_interval == 8
        other, churner = await join(tracker, 1), await join(tracker, 2)
        await other.announce()
        for n in range(8):  # a fresh id in a swarm replaces the old one there: no pile-up
            churner.peer_id = pid(200 + n)
            assert (await churner.announce(offers=1, event=None))["incomplete"] == 2
            assert (await other.recv())["peer_id"] == churner.peer_id
        assert tracker.peer_ids(HASH_A.encode()) == {other.peer_id.encode(), pid(207).encode()}
        churner.peer_id = pid(208)
        refused = await churner.announce(offers=1, event=None)
        assert refused["failure reason"] == "new peer id rate limit exceeded, retry in 15 s"
        churner.peer_id = pid(203)  # an id it used lately costs nothing new
        assert (await churner.announce(event=None))["incomplete"] == 2
        clock.now += 15  # eight per 120 s
        churner.peer_id = pid(208)
        assert (await churner.announce(event=None))["incomplete"] == 2
        await other.nothing_pending()  # the refused announce relayed nothing


async def test_silent_peers_expire() -> None:
    # The tracker's clock is driven; its sweep task runs every half peer_timeout of real time.
    clock = Clock()
    async with TrackerServer(interval=0.1, peer_timeout=0.2, clock=clock) as tracker:
        quiet, chatty = await join(tracker, 1), await join(tracker, 2)
        await quiet.announce()
        await chatty.announce()
        clock.now += 0.3  # past peer_timeout for both; only the chatty peer announces again
        await chatty.announce(event=None)
        await wait_until(lambda: tracker.peer_ids(HASH_A.encode()) == {chatty.peer_id.encode()})
        assert tracker.statistics().peers_expired == 1
        assert (await quiet.announce(event=None))["incomplete"] == 2  # an update re-joins it


async def test_stats_json_over_http(tracker: TrackerServer) -> None:
    peer = await join(tracker, 1)
    await peer.announce()
    url = tracker.url.replace("ws://", "http://") + "/stats.json"

    def fetch() -> dict[str, Any]:
        with urllib.request.urlopen(url, timeout=5) as response:
            assert response.headers["Content-Type"] == "application/json"
            result: dict[str, Any] = json.loads(response.read())
            return result

    stats = await asyncio.wait_for(asyncio.to_thread(fetch), 10)
    assert (stats["swarms"], stats["peers"], stats["connections"]) == (1, 1, 1)


async def test_serve_tracker_and_run_tracker_forever() -> None:
    server = await serve_tracker(max_peers_per_swarm=5, interval=30)
    try:
        assert server.limits == TrackerLimits(max_peers_per_swarm=5, interval=30)
        peer = await join(server, 1)
        assert (await peer.announce())["interval"] == 30
    finally:
        await server.aclose()
        await server.aclose()  # idempotent

    ready: asyncio.Queue[TrackerServer] = asyncio.Queue()
    task = asyncio.get_running_loop().create_task(
        run_tracker_forever("127.0.0.1", 0, on_ready=ready.put_nowait)
    )
    running = await asyncio.wait_for(ready.get(), RECV_TIMEOUT)
    peer = await join(running, 1)
    assert (await peer.announce())["incomplete"] == 1
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(task, RECV_TIMEOUT)
    with pytest.raises(ConnectionClosed):
        await asyncio.wait_for(peer.ws.recv(), RECV_TIMEOUT)


def test_limits_are_validated() -> None:
    with pytest.raises(UsageError):
        TrackerServer(max_peers_per_swarm=0)
    with pytest.raises(UsageError):
        TrackerServer(interval=-1)
    with pytest.raises(UsageError):
        TrackerServer(no_such_limit=3)
    assert TrackerLimits().effective_peer_timeout == 240
    assert TrackerLimits().max_message_size == 64 * 1024
    with pytest.raises(UsageError):
        _ = TrackerServer().url  # not started


# ------------------------------------------------------------------------------- abuse resistance


class Clock:
    """A tracker clock the test moves by hand (seconds)."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def swarm_hash(n: int) -> str:
    return f"swarm-{n:014d}"


async def test_announces_are_rate_limited_per_connection_with_default_limits() -> None:
    clock = Clock()
    async with TrackerServer(clock=clock) as tracker:
        assert (tracker.limits.interval, tracker.limits.announces_per_interval) == (120, 20)
        peer = await join(tracker, 1)
        for _ in range(20):  # the burst: 20 announces at once
            assert "failure reason" not in await peer.announce(event=None)
        refused = await peer.announce(offers=2, event=None)
        assert refused == {
            "action": "announce",
            "failure reason": "announce rate limit exceeded, retry in 6 s",  # 20 per 120 s
            "info_hash": HASH_A,
        }
        clock.now += 5.9
        assert "failure reason" in await peer.announce(event=None)
        clock.now += 0.1
        assert "failure reason" not in await peer.announce(event=None)
        stats = tracker.statistics()
        assert (stats.requests_rate_limited, stats.bad_requests) == (2, 0)  # a refusal, not garbage
        # "stopped" is free: a client can always leave.
        assert (await peer.announce(event="stopped"))["incomplete"] == 0


async def test_announces_are_rate_limited_per_source_address() -> None:
    clock = Clock()
    async with TrackerServer(clock=clock) as tracker:
        assert tracker.limits.address_announces_per_interval == 1000
        peers = [await join(tracker, n) for n in range(51)]
        for peer in peers[:50]:  # 50 sockets x 20 announces: all that 127.0.0.1 gets
            for _ in range(20):
                assert "failure reason" not in await peer.announce(event=None)
        refused = await peers[50].announce()  # a fresh socket buys nothing
        assert refused["failure reason"] == "announce rate limit exceeded, retry in 1 s"
        clock.now += 0.12  # 1000 per 120 s: one every 0.12 s for the address
        assert (await peers[50].announce())["incomplete"] == 51


async def test_swarm_creation_is_rate_limited_per_connection_and_address() -> None:
    clock = Clock()
    async with TrackerServer(clock=clock) as tracker:
        limits = tracker.limits
        assert (limits.swarms_created_per_interval, limits.address_swarms_created_per_interval) == (10, 100)
        creators = [await join(tracker, n) for n in range(11)]
        for i, peer in enumerate(creators[:10]):
            for n in range(10):
                assert (await peer.announce(swarm_hash(10 * i + n)))["incomplete"] == 1
        refused = await creators[0].announce(swarm_hash(500))
        assert refused["failure reason"] == "swarm creation rate limit exceeded, retry in 12 s"
        assert (await creators[0].announce(HASH_A))["failure reason"].startswith("swarm creation")
        # The eleventh socket from the same address may not create any, but it may join.
        assert (await creators[10].announce(HASH_B))["failure reason"].startswith("swarm creation")
        assert (await creators[10].announce(swarm_hash(0)))["incomplete"] == 2
        assert tracker.statistics().swarms == 100  # 100 sockets could fill 10,000 in a second before
        clock.now += 1.2  # the address earns one creation per 1.2 s; that socket has its own burst
        assert (await creators[10].announce(HASH_B))["incomplete"] == 1
        assert "failure reason" in await creators[10].announce(HASH_A)


async def test_answers_are_rate_limited_per_connection() -> None:
    clock = Clock()
    async with TrackerServer(clock=clock) as tracker:
        assert tracker.limits.answers_per_interval == 100
        victim, spammer = await join(tracker, 1), await join(tracker, 2)
        await victim.announce()
        await spammer.announce()
        for n in range(100):
            await spammer.answer(victim, oid(n))
        await spammer.answer(victim, oid(100))
        assert (await spammer.recv())["failure reason"] == "answer rate limit exceeded"
        for n in range(100):
            assert (await victim.recv())["offer_id"] == oid(n)
        await victim.nothing_pending()


@pytest.mark.parametrize(
    "numwant",
    [-1, 1.5, True, "9" * 5000, "12x", "", "１２", [], {}],
    ids=lambda v: _short_id(v),
)
async def test_malformed_numwant_gets_a_typed_reply_and_no_traceback(
    numwant: Any, caplog: pytest.LogCaptureFixture
) -> None:
    async with TrackerServer(max_protocol_errors=100) as tracker:
        peer, other = await join(tracker, 1), await join(tracker, 2)
        await other.announce()
        with caplog.at_level("DEBUG", logger="p2ploader.tracker"):
            for _ in range(20):
                assert await peer.announce(offers=1, numwant=numwant) == {
                    "action": "announce",
                    "failure reason": "invalid numwant",
                    "info_hash": HASH_A,
                }
        assert not [r for r in caplog.records if r.exc_info]
        assert len(caplog.records) <= 1  # one short line for twenty malformed messages
        assert all(len(r.getMessage()) < 300 for r in caplog.records)
        await other.nothing_pending()  # nothing was relayed
        assert tracker.statistics().bad_requests == 20
        assert tracker.peer_ids(HASH_A.encode()) == {other.peer_id.encode()}
        assert (await peer.announce(offers=1, numwant="1"))["incomplete"] == 2  # digits are fine


def _short_id(value: object) -> str:
    return repr(value)[:12]


async def test_a_scrape_must_name_its_info_hashes(tracker: TrackerServer) -> None:
    a, b = await join(tracker, 1), await join(tracker, 2)
    await a.announce(HASH_A)
    await b.announce(HASH_B)
    await b.send({"action": "scrape"})  # bittorrent-tracker would list every swarm
    assert await b.recv() == {"failure reason": "scrape needs info_hash: listing every swarm is not offered"}
    await b.send({"action": "scrape", "info_hash": [HASH_A]})
    assert (await b.recv())["files"] == {HASH_A: {"complete": 0, "incomplete": 1, "downloaded": 0}}


async def test_a_slow_reader_is_dropped_and_its_queue_freed() -> None:
    async with TrackerServer() as tracker:
        assert tracker.limits.max_outbox_bytes == 256 * 1024
        hashes = [swarm_hash(n) for n in range(8)]
        stuck = await NonReader.open(tracker.url)
        for info_hash in hashes:  # one peer in eight swarms, that reads nothing from now on
            stuck.send({"action": "announce", "info_hash": info_hash, "peer_id": pid(1), "event": "started"})
        await wait_until(lambda: tracker.statistics().peers == len(hashes))
        # Eight sockets, one per swarm, announce twenty times each with one 40 KB offer: 6.4 MB of
        # offers for the peer that does not read (defaults: no limit is raised).
        flooders = [await join(tracker, 10 + n) for n in range(len(hashes))]
        sdp = "v=0 " + "a" * 40_000
        peak = used = 0
        flooding = list(zip(flooders, hashes, strict=True))
        for flooder, info_hash in flooding:
            used += 1
            for n in range(20):
                offer = {"offer": {"type": "offer", "sdp": sdp}, "offer_id": oid(n)}
                await flooder.send(
                    {
                        "action": "announce",
                        "info_hash": info_hash,
                        "peer_id": flooder.peer_id,
                        "offers": [offer],
                    }
                )
                assert "failure reason" not in await flooder.recv()
                peak = max(peak, tracker.state.queued_bytes())
            if tracker.statistics().slow_readers_dropped:
                break
        assert tracker.statistics().slow_readers_dropped == 1
        assert peak <= 256 * 1024  # one outbox's worth at most, never megabytes
        # Its peers leave every swarm, its connection is gone, and the others are served as before.
        await wait_until(lambda: tracker.statistics().connections == len(flooders))
        assert tracker.statistics().peers == used
        assert all(tracker.peer_ids(h.encode()) == {f.peer_id.encode()} for f, h in flooding[:used])
        assert (await (await join(tracker, 99)).announce(hashes[0]))["incomplete"] == 2
        stuck.close()
