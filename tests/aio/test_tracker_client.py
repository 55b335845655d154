"""The WebTorrent tracker client against the embedded tracker, a scripted tracker and npm's
bittorrent-tracker. Real sockets on 127.0.0.1; fake SDP strings (no WebRTC); every wait bounded."""

from __future__ import annotations

import asyncio
import itertools
import json
import random
from collections.abc import Callable
from typing import Any

import pytest
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed

from p2ploader.aio.tracker_client import (
    Offer,
    TrackerClient,
    backoff_delay,
    decode_id,
    encode_id,
    new_offer_id,
)
from p2ploader.errors import UsageError
from p2ploader.testing.wait import wait_until
from p2ploader.tracker import TrackerServer
from tests.node_tracker import NodeTracker  # the node_tracker fixture comes from conftest

pytestmark = pytest.mark.anyio

INFO_HASH = b"L2uYwMcHhsstZuLv8ZqU"  # a P2P Media Loader 2.x info hash
OTHER_HASH = b"ceUCM5mHdwt3tS5zdgVA"
BINARY_HASH = bytes.fromhex("ae9cd6bf657a583a6f33711f1cae11fa25c19b43")  # a 0.6 info hash

FAST: dict[str, Any] = {
    "default_interval": 0.3,
    "min_announce_interval": 0.05,
    "max_announce_interval": 5.0,
    "backoff_min": 0.05,
    "backoff_max": 0.2,
    "connect_timeout": 2.0,
    "offer_timeout": 3.0,
}


_names = itertools.count()


class FakePeer:
    """The caller side of a TrackerClient with fake SDPs: records everything it is told."""

    def __init__(self, name: str, peer_id: bytes | None = None, *, accept: bool = True) -> None:
        self.name = name
        self.peer_id = peer_id or f"-PY0001-{name}".ljust(20, "x").encode()[:20]
        self.accept = accept
        self.made: dict[bytes, str] = {}  # offer id -> sdp
        self.received: list[tuple[bytes, bytes, str]] = []  # offers (remote, offer id, sdp)
        self.answered: list[tuple[bytes, bytes]] = []  # offers we answered (remote, offer id)
        self.answers: list[tuple[bytes, bytes, str]] = []  # answers to our offers
        self.expired: list[bytes] = []
        self.updates: list[tuple[int, int]] = []
        self._rng = random.Random(next(_names))

    async def make_offers(self, count: int) -> list[Offer]:
        offers = []
        for _ in range(count):
            offer = Offer(new_offer_id(self._rng), f"offer-sdp from {self.name} #{len(self.made)}")
            self.made[offer.offer_id] = offer.sdp
            offers.append(offer)
        return offers

    async def on_offer(self, remote: bytes, offer_id: bytes, sdp: str) -> str | None:
        self.received.append((remote, offer_id, sdp))
        if not self.accept:
            return None
        self.answered.append((remote, offer_id))
        return f"answer-sdp from {self.name} to [{sdp}]"

    async def on_answer(self, remote: bytes, offer_id: bytes, sdp: str) -> None:
        assert sdp.endswith(f"[{self.made[offer_id]}]")  # the answer to exactly that offer
        self.answers.append((remote, offer_id, sdp))

    async def on_offer_expired(self, offer_id: bytes) -> None:
        self.expired.append(offer_id)

    def on_swarm_update(self, complete: int, incomplete: int) -> None:
        self.updates.append((complete, incomplete))

    def client(self, urls: list[str], info_hash: bytes = INFO_HASH, **options: Any) -> TrackerClient:
        settings = {**FAST, **options}
        settings.setdefault("rng", random.Random(7))
        return TrackerClient(
            urls,
            info_hash=info_hash,
            peer_id=self.peer_id,
            make_offers=self.make_offers,
            on_offer=self.on_offer,
            on_answer=self.on_answer,
            on_offer_expired=self.on_offer_expired,
            on_swarm_update=self.on_swarm_update,
            **settings,
        )


def exchanges(x: FakePeer, y: FakePeer) -> int:
    """Completed signalling exchanges between two peers, in either direction."""
    return sum(1 for remote, _, _ in x.answers if remote == y.peer_id) + sum(
        1 for remote, _, _ in y.answers if remote == x.peer_id
    )


def check_consistent(offerer: FakePeer, answerer: FakePeer) -> None:
    """Every answer the offerer got from the answerer was produced by the answerer for that offer."""
    for remote, offer_id, _ in offerer.answers:
        if remote == answerer.peer_id:
            assert (offerer.peer_id, offer_id) in answerer.answered


async def announces_grow(client: TrackerClient, by: int) -> None:
    """Wait until every tracker of ``client`` got ``by`` more announces."""
    start = [t.announces for t in client.statistics().trackers]
    await wait_until(
        lambda: all(t.announces >= s + by for t, s in zip(client.statistics().trackers, start, strict=True))
    )


# ------------------------------------------------------------------------------ a scripted tracker


class ScriptedTracker:
    """A WebSocket server that records the client's frames and answers as a test tells it."""

    def __init__(self, respond: Callable[[dict[str, Any]], list[Any]] | None = None) -> None:
        self.frames: list[Any] = []
        self.connections: list[ServerConnection] = []
        self.respond = respond if respond is not None else self.default_response
        self._server: Server | None = None
        self.interval: float = 0.2

    def default_response(self, message: dict[str, Any]) -> list[Any]:
        if message.get("action") != "announce" or "answer" in message or message.get("event") == "stopped":
            return []
        return [
            {
                "action": "announce",
                "interval": self.interval,
                "info_hash": message["info_hash"],
                "complete": 0,
                "incomplete": 1,
            }
        ]

    async def _handle(self, ws: ServerConnection) -> None:
        self.connections.append(ws)
        try:
            async for raw in ws:
                message = json.loads(raw)
                self.frames.append(message)
                for reply in self.respond(message):
                    await ws.send(reply if isinstance(reply, str) else json.dumps(reply))
        except ConnectionClosed:
            pass

    async def __aenter__(self) -> ScriptedTracker:
        self._server = await serve(self._handle, "127.0.0.1", 0)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()

    @property
    def url(self) -> str:
        assert self._server is not None
        port = next(iter(self._server.sockets)).getsockname()[1]
        return f"ws://127.0.0.1:{port}"

    def announces(self) -> list[dict[str, Any]]:
        return [f for f in self.frames if f.get("action") == "announce" and "answer" not in f]

    async def push(self, message: Any, connection: int = -1) -> None:
        await self.connections[connection].send(message if isinstance(message, str) else json.dumps(message))


# ------------------------------------------------------------------------------ unit-level


def test_ids_are_latin1_strings() -> None:
    assert encode_id(BINARY_HASH) == BINARY_HASH.decode("latin-1")
    assert len(encode_id(BINARY_HASH)) == 20
    assert decode_id(encode_id(BINARY_HASH)) == BINARY_HASH
    assert decode_id("short") is None
    assert decode_id("€" * 20) is None  # not latin-1
    assert decode_id(12) is None
    with pytest.raises(ValueError, match="20 bytes"):
        encode_id(b"x" * 19)
    with pytest.raises(ValueError, match="offer_id"):
        Offer(b"x" * 19, "sdp")


def test_backoff_is_exponential_bounded_and_jittered() -> None:
    rng = random.Random(3)
    no_jitter = [backoff_delay(n, minimum=1.0, maximum=20.0, jitter=0.0, rng=rng) for n in range(8)]
    assert no_jitter == [1.0, 2.0, 4.0, 8.0, 16.0, 20.0, 20.0, 20.0]
    for attempt in range(100):
        delay = backoff_delay(attempt, minimum=1.0, maximum=20.0, jitter=0.5, rng=rng)
        assert 0.5 <= delay <= 20.0
    same = [backoff_delay(3, minimum=1.0, maximum=60.0, jitter=0.5, rng=random.Random(9)) for _ in range(2)]
    assert same[0] == same[1]  # the injected rng makes it reproducible


def test_constructor_validates() -> None:
    peer = FakePeer("v")
    with pytest.raises(UsageError):
        peer.client([])
    with pytest.raises(UsageError):
        peer.client(["http://127.0.0.1:1/announce"])
    with pytest.raises(UsageError):
        peer.client(["ws://127.0.0.1:1"], info_hash=b"short")
    with pytest.raises(UsageError):
        peer.client(["ws://127.0.0.1:1"], offers_per_announce=11)
    with pytest.raises(UsageError):
        peer.client(["ws://127.0.0.1:1"], min_announce_interval=10, max_announce_interval=1)
    client = peer.client(["ws://127.0.0.1:1", "ws://127.0.0.1:1", "wss://t.example/announce"])
    assert client.announce_urls == ("ws://127.0.0.1:1", "wss://t.example/announce")


# ------------------------------------------------------------------------------ the embedded tracker


async def test_two_clients_exchange_offer_and_answer() -> None:
    async with TrackerServer(interval=0.2) as tracker:
        a, b = FakePeer("a"), FakePeer("b")
        async with a.client([tracker.url]) as ca, b.client([tracker.url]) as cb:
            await wait_until(lambda: exchanges(a, b) == 1)
            await wait_until(lambda: (0, 2) in a.updates and (0, 2) in b.updates)
            # Several more announces (with fresh offers reaching the other peer) change nothing.
            await announces_grow(ca, 3)
            await announces_grow(cb, 3)
            assert exchanges(a, b) == 1
            check_consistent(a, b)
            check_consistent(b, a)
            assert ca.statistics().duplicates_suppressed + cb.statistics().duplicates_suppressed > 0
            assert tracker.peer_ids(INFO_HASH) == {a.peer_id, b.peer_id}
            status = ca.statistics().trackers[0]
            assert status.connected and status.interval == 0.2 and status.incomplete == 2


async def test_swarms_are_isolated() -> None:
    async with TrackerServer(interval=0.2) as tracker:
        a, b, c = FakePeer("a"), FakePeer("b"), FakePeer("c")
        async with (
            a.client([tracker.url]) as ca,
            b.client([tracker.url], info_hash=BINARY_HASH),
            c.client([tracker.url], info_hash=BINARY_HASH),
        ):
            await wait_until(lambda: exchanges(b, c) == 1)
            await announces_grow(ca, 3)
            assert a.received == [] and a.answers == []
            assert tracker.peer_ids(INFO_HASH) == {a.peer_id}
            assert tracker.peer_ids(BINARY_HASH) == {b.peer_id, c.peer_id}
            assert all(remote != a.peer_id for remote, _, _ in b.received + c.received)


async def test_declined_offers_are_not_answered() -> None:
    async with TrackerServer(interval=0.1) as tracker:
        a, shy = FakePeer("a"), FakePeer("shy", accept=False)
        async with (
            a.client([tracker.url], offer_timeout=0.3) as ca,
            shy.client([tracker.url], offers_per_announce=0) as cs,
        ):
            await wait_until(lambda: len(shy.received) >= 3 and len(a.expired) >= 2)
            assert exchanges(a, shy) == 0 and shy.made == {}
            assert cs.statistics().offers_declined >= 3 and cs.statistics().answers_sent == 0
            assert all(remote == a.peer_id for remote, _, _ in shy.received)
            assert ca.statistics().offers_answered == 0


async def test_stopped_is_sent_on_close_and_removes_the_peer() -> None:
    async with TrackerServer(interval=0.2) as tracker:
        a, b = FakePeer("a"), FakePeer("b")
        async with a.client([tracker.url]) as ca:
            async with b.client([tracker.url]):
                await wait_until(lambda: tracker.peer_ids(INFO_HASH) == {a.peer_id, b.peer_id})
                await wait_until(lambda: (0, 2) in a.updates)
            await wait_until(lambda: tracker.peer_ids(INFO_HASH) == {a.peer_id})
            await wait_until(lambda: a.updates[-1] == (0, 1))
            assert ca.statistics().connected_trackers == 1


async def test_tracker_that_vanishes_and_comes_back() -> None:
    tracker = TrackerServer(interval=0.2)
    await tracker.start()
    port = tracker.port
    peer = FakePeer("p")
    client = peer.client([tracker.url], offer_timeout=30.0)
    await client.start()
    try:
        await wait_until(lambda: tracker.peer_ids(INFO_HASH) == {peer.peer_id})
        await wait_until(lambda: client.statistics().pending_offers > 0)
        await tracker.aclose()
        await wait_until(lambda: client.statistics().trackers[0].connect_failures >= 2)
        status = client.statistics().trackers[0]
        assert not status.connected and status.connects == 1
        # Offers sent through the lost connection can never be answered: reported at once.
        assert client.statistics().pending_offers == 0
        await wait_until(lambda: set(peer.expired) == set(peer.made))

        tracker = TrackerServer(port=port, interval=0.2)
        await tracker.start()
        await wait_until(lambda: tracker.peer_ids(INFO_HASH) == {peer.peer_id})
        assert client.statistics().trackers[0].connects == 2
    finally:
        await client.aclose()
        await tracker.aclose()


async def test_unreachable_tracker_backs_off_without_raising() -> None:
    async with TrackerServer() as tracker:
        dead_url = tracker.url
    peer = FakePeer("p")
    async with peer.client([dead_url], backoff_min=0.02, backoff_max=0.05) as client:
        await wait_until(lambda: client.statistics().trackers[0].connect_failures >= 3)
        status = client.statistics().trackers[0]
        assert not status.connected and status.last_error is not None and status.announces == 0
    assert peer.made == {}


# ------------------------------------------------------------------------------ the scripted tracker


async def test_wire_messages_follow_the_webtorrent_format() -> None:
    async with ScriptedTracker() as fake:
        peer = FakePeer("wire", peer_id=bytes(range(0x80, 0x94)))
        async with peer.client([fake.url], info_hash=BINARY_HASH, offers_per_announce=3) as client:
            await wait_until(lambda: len(fake.announces()) >= 3)
            await fake.push(
                {
                    "action": "announce",
                    "offer": {"type": "offer", "sdp": "remote-offer"},
                    "offer_id": encode_id(b"O" * 20),
                    "peer_id": encode_id(b"R" * 20),
                    "info_hash": encode_id(BINARY_HASH),
                }
            )
            await wait_until(lambda: any("answer" in f for f in fake.frames))
        await wait_until(lambda: fake.frames[-1].get("event") == "stopped")
        assert client.statistics().answers_sent == 1
    started, periodic = fake.announces()[0], fake.announces()[1]
    assert started["event"] == "started"
    assert started["info_hash"] == BINARY_HASH.decode("latin-1")
    assert started["peer_id"] == peer.peer_id.decode("latin-1")
    assert started["numwant"] == 3 and isinstance(started["numwant"], int)
    assert started["uploaded"] == 0 and started["downloaded"] == 0 and "left" not in started
    for entry in started["offers"]:
        offer_id = decode_id(entry["offer_id"])
        assert offer_id is not None and entry["offer"] == {"type": "offer", "sdp": peer.made[offer_id]}
    assert "event" not in periodic and len(periodic["offers"]) == 3
    assert not set(o["offer_id"] for o in started["offers"]) & set(o["offer_id"] for o in periodic["offers"])
    answer = next(f for f in fake.frames if "answer" in f)
    assert answer == {
        "action": "announce",
        "info_hash": encode_id(BINARY_HASH),
        "peer_id": encode_id(peer.peer_id),
        "to_peer_id": encode_id(b"R" * 20),
        "answer": {"type": "answer", "sdp": "answer-sdp from wire to [remote-offer]"},
        "offer_id": encode_id(b"O" * 20),
    }
    stopped = fake.frames[-1]
    assert stopped["event"] == "stopped" and "offers" not in stopped
    assert stopped["info_hash"] == encode_id(BINARY_HASH) and stopped["peer_id"] == encode_id(peer.peer_id)


async def test_failure_without_action_reconnects_and_garbage_is_ignored() -> None:
    failures_left = [2]

    def respond(message: dict[str, Any]) -> list[Any]:
        if message.get("event") == "started" and failures_left[0]:
            failures_left[0] -= 1
            return ["not json {", "[1, 2]", {"action": "nonsense"}, {"failure reason": "invalid peer_id"}]
        return ScriptedTracker.default_response(fake, message)

    fake = ScriptedTracker(respond)
    async with fake:
        peer = FakePeer("f")
        async with peer.client([fake.url]) as client:
            await wait_until(lambda: len(fake.connections) == 3 and len(peer.updates) >= 1)
            stats = client.statistics()
            assert stats.trackers[0].failures == 2 and stats.trackers[0].connects == 3
            assert stats.ignored_messages >= 6
            assert peer.updates[0] == (0, 1)
            await announces_grow(client, 2)  # the healthy connection keeps announcing


async def test_other_swarms_own_id_and_bad_callbacks_are_survived() -> None:
    calls = {"make": 0}

    async with ScriptedTracker() as fake:
        peer = FakePeer("s")

        async def broken_make_offers(count: int) -> list[Offer]:
            calls["make"] += 1
            if calls["make"] == 1:
                raise RuntimeError("boom")
            return await peer.make_offers(count)

        async def broken_on_offer(remote: bytes, offer_id: bytes, sdp: str) -> str | None:
            raise RuntimeError("bad SDP")

        client = TrackerClient(
            [fake.url],
            info_hash=INFO_HASH,
            peer_id=peer.peer_id,
            make_offers=broken_make_offers,
            on_offer=broken_on_offer,
            on_answer=peer.on_answer,
            on_swarm_update=lambda complete, incomplete: [][complete],
            **FAST,
        )
        async with client:
            await wait_until(lambda: len(fake.announces()) >= 2)
            assert fake.announces()[0]["offers"] == [] and fake.announces()[0]["numwant"] == 0
            assert len(fake.announces()[1]["offers"]) == 5
            ours, other = encode_id(INFO_HASH), encode_id(OTHER_HASH)
            offer = {"action": "announce", "offer": {"type": "offer", "sdp": "x"}, "offer_id": "o" * 20}
            await fake.push({**offer, "peer_id": encode_id(peer.peer_id), "info_hash": ours})
            await fake.push({**offer, "peer_id": "r" * 20, "info_hash": other})
            await fake.push({**offer, "peer_id": "r" * 20, "info_hash": ours})
            answer = {"action": "announce", "answer": {"type": "answer", "sdp": "a"}, "offer_id": "u" * 20}
            await fake.push({**answer, "peer_id": "r" * 20, "info_hash": ours})
            await wait_until(lambda: client.statistics().offers_declined == 1)
            stats = client.statistics()
            assert stats.offers_received == 1 and stats.answers_sent == 0
            assert stats.ignored_messages >= 3  # own id, other swarm, unknown offer id
            await announces_grow(client, 1)
            assert not any("answer" in f for f in fake.frames)


async def test_offers_made_while_closing_are_reported_expired() -> None:
    release, making = asyncio.Event(), asyncio.Event()
    peer = FakePeer("slow")

    async def slow_make_offers(count: int) -> list[Offer]:
        making.set()
        await release.wait()  # e.g. ICE gathering still running when the client closes
        return await peer.make_offers(count)

    async with ScriptedTracker() as fake:
        client = TrackerClient(
            [fake.url],
            info_hash=INFO_HASH,
            peer_id=peer.peer_id,
            make_offers=slow_make_offers,
            on_offer=peer.on_offer,
            on_answer=peer.on_answer,
            on_offer_expired=peer.on_offer_expired,
            **{**FAST, "close_timeout": 0.05},
        )
        await client.start()
        await asyncio.wait_for(making.wait(), 5)
        await asyncio.wait_for(client.aclose(), 5)
        release.set()
        await wait_until(lambda: len(peer.made) == 5 and set(peer.expired) == set(peer.made))
        assert fake.announces() == []  # nothing was announced after (or instead of) closing


# ------------------------------------------------------------------------------ npm bittorrent-tracker


async def test_interop_with_bittorrent_tracker(node_tracker: NodeTracker) -> None:
    info_hash = BINARY_HASH  # control characters and bytes above 0x7F in the latin-1 string
    a, b = FakePeer("a"), FakePeer("b", peer_id=bytes(range(0xE0, 0xF4)))
    async with a.client([node_tracker.url], info_hash=info_hash, max_announce_interval=0.5) as ca:
        await wait_until(lambda: ca.statistics().trackers[0].responses >= 1)
        assert a.updates[0] == (0, 1)
        assert ca.statistics().trackers[0].interval == 0.5  # 120 s from the tracker, capped
        async with b.client([node_tracker.url], info_hash=info_hash, max_announce_interval=0.5) as cb:
            await wait_until(lambda: exchanges(a, b) == 1)
            check_consistent(a, b)
            check_consistent(b, a)
            await wait_until(lambda: (0, 2) in b.updates and (0, 2) in a.updates)
            assert cb.statistics().trackers[0].failures == 0
        # b's "stopped" (or its closed socket) removed it: a's next announce sees one peer again.
        await wait_until(lambda: a.updates[-1] == (0, 1), timeout=15)
        assert ca.statistics().trackers[0].failures == 0


async def test_interop_several_trackers_including_bittorrent_tracker(
    node_tracker: NodeTracker,
) -> None:
    info_hash = b"p2ploader-interop-02"
    async with TrackerServer(interval=0.2) as embedded:
        peers = [FakePeer(name) for name in "xyz"]
        clients = [
            peer.client([node_tracker.url, embedded.url], info_hash=info_hash, max_announce_interval=0.5)
            for peer in peers
        ]
        for client in clients:
            await client.start()
        try:
            pairs = list(itertools.combinations(peers, 2))
            await wait_until(lambda: all(exchanges(x, y) >= 1 for x, y in pairs))
            for client in clients:
                await announces_grow(client, 2)
            assert [exchanges(x, y) for x, y in pairs] == [1, 1, 1]
            for client in clients:
                assert client.statistics().connected_trackers == 2
                assert all(t.failures == 0 for t in client.statistics().trackers)
        finally:
            await asyncio.gather(*(client.aclose() for client in clients))
