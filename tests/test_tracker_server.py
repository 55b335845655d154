"""The embedded WebTorrent tracker, driven over real WebSockets on 127.0.0.1 with raw JSON frames.

Every receive is bounded; "nothing arrives" is checked by sending a scrape and seeing its response
come first (the tracker answers one connection's requests in order)."""

from __future__ import annotations

import asyncio
import json
import random
import urllib.request
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from p2ploader.errors import UsageError
from p2ploader.tracker import TrackerLimits, TrackerServer, TrackerStats, run_tracker_forever, serve_tracker

pytestmark = pytest.mark.anyio

HASH_A = "L2uYwMcHhsstZuLv8ZqU"
HASH_B = bytes.fromhex("ae9cd6bf657a583a6f33711f1cae11fa25c19b43").decode("latin-1")
RECV_TIMEOUT = 5.0


def pid(n: int) -> str:
    return f"-PY0001-{n:012d}"


def oid(n: int) -> str:
    return f"offer-{n:014d}"


async def wait_until(predicate: Callable[[], bool], within: float = 5.0) -> None:
    async def poll() -> None:
        while not predicate():  # noqa: ASYNC110 - the tracker's state has no event to wait on
            await asyncio.sleep(0.01)

    await asyncio.wait_for(poll(), within)


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


def _sizes(stats: TrackerStats) -> tuple[int, int, int]:
    return stats.connections, stats.swarms, stats.peers


async def test_completed_and_left_zero_count_as_seeds(tracker: TrackerServer) -> None:
    a, b, c = await join(tracker, 1), await join(tracker, 2), await join(tracker, 3)
    await a.announce(left=0)
    await b.announce(left="0")
    assert (await c.announce(left=1000))["complete"] == 2
    response = await c.announce(event="completed", offers=0)
    assert (response["complete"], response["incomplete"]) == (3, 0)
    await c.announce(event="stopped")
    await a.send({"action": "scrape"})  # no info_hash: every swarm
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


async def test_same_peer_id_on_a_new_connection_replaces_the_old_one(tracker: TrackerServer) -> None:
    old, other = await join(tracker, 1), await join(tracker, 2)
    await old.announce()
    await other.announce()
    new = Peer(await connect(tracker.url), old.peer_id)
    assert (await new.announce())["incomplete"] == 2
    await other.announce(offers=1, event=None)
    assert (await new.recv())["offer_id"] == oid(0)
    await old.nothing_pending()
    await old.ws.close()  # the old socket's close no longer removes the peer
    await wait_until(lambda: tracker.statistics().connections == 2)
    assert tracker.peer_ids(HASH_A.encode()) == {old.peer_id.encode(), other.peer_id.encode()}


async def test_silent_peers_expire() -> None:
    async with TrackerServer(interval=0.1, peer_timeout=0.2) as tracker:
        quiet, chatty = await join(tracker, 1), await join(tracker, 2)
        await quiet.announce()
        await chatty.announce()

        async def keep_announcing() -> None:
            while tracker.peer_ids(HASH_A.encode()) != {chatty.peer_id.encode()}:
                await chatty.announce(event=None)
                await asyncio.sleep(0.05)

        await asyncio.wait_for(keep_announcing(), 5)
        assert tracker.peer_ids(HASH_A.encode()) == {chatty.peer_id.encode()}
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
