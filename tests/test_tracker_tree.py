"""The embedded tracker's host/client decisions, over real WebSockets with raw JSON frames: roles in
the announce response, a client's offer relayed only to a vacant host, re-attach notices, and mesh
peers untouched."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator
from typing import Any

import pytest

from p2ploader.tracker import TrackerServer
from tests.test_tracker_server import HASH_A, Peer, join, oid, wait_until

pytestmark = pytest.mark.anyio


def tree(role: str, *, host: str | None = None, max_clients: int = 2, rules: str = "ome") -> dict[str, Any]:
    attributes = (
        {"device": "desktop", "os": "windows", "client": "p2ploader"}
        if role == "host"
        else {"device": "mobile", "os": "android", "client": "p2ploader"}
    )
    return {
        "p2ploader": {
            "topology": "host-client",
            "rules": rules,
            "max_clients": max_clients,
            **attributes,
            "host": host,
        }
    }


@pytest.fixture
async def tracker() -> AsyncIterator[TrackerServer]:
    async with TrackerServer(rng=random.Random(5)) as server:
        yield server


async def test_roles_and_introductions_follow_the_tree(tracker: TrackerServer) -> None:
    h1, h2 = await join(tracker, 1), await join(tracker, 2)
    for host in (h1, h2):
        response = await host.announce(offers=2, **tree("host"))
        assert response["p2ploader"] == {"role": "host", "host": None}
    await h1.nothing_pending()  # hosts' offers go to nobody: clients come to hosts
    clients = [await join(tracker, 10 + i) for i in range(5)]
    introduced: list[str] = []
    for i, client in enumerate(clients):
        response = await client.announce(offers=3, first=10 * i, **tree("client"))
        assert response["p2ploader"]["role"] == "client"
        introduced.append(response["p2ploader"]["host"])
    # Least loaded first, two clients per host, the fifth waits (and stays on HTTP).
    assert introduced == [h1.peer_id, h2.peer_id, h1.peer_id, h2.peer_id, None]
    for host, expected in ((h1, [clients[0], clients[2]]), (h2, [clients[1], clients[3]])):
        got = [await host.recv() for _ in expected]
        assert [m["peer_id"] for m in got] == [c.peer_id for c in expected]
        assert {m["offer_id"] for m in got} == {oid(10 * clients.index(c)) for c in expected}  # one each
        await host.nothing_pending()
    assert tracker.statistics().tree_introductions == 4
    raw = tracker.host_client_tree(HASH_A.encode("latin-1"))
    assert {k.decode("latin-1"): [c.decode("latin-1") for c in v] for k, v in raw.items()} == {
        h1.peer_id: [clients[0].peer_id, clients[2].peer_id],
        h2.peer_id: [clients[1].peer_id, clients[3].peer_id],
    }

    # A client leaves: its host is vacant again (OME's code never re-lists a full host) and the
    # waiting client is told to announce again.
    await clients[2].send(
        {"action": "announce", "event": "stopped", "info_hash": HASH_A, "peer_id": clients[2].peer_id}
    )
    notice = await clients[4].recv()
    assert notice["p2ploader"] == {"role": "client", "host": None, "reattach": True}
    response = await clients[4].announce(offers=1, first=90, **tree("client"))
    assert response["p2ploader"]["host"] == h1.peer_id
    assert (await h1.recv())["offer_id"] == oid(90)

    # A host leaves: its clients are told at once; with no vacancy left they wait.
    await h2.ws.close()
    for orphan in (clients[1], clients[3]):
        assert (await orphan.recv())["p2ploader"]["reattach"] is True
    await wait_until(lambda: tracker.statistics().tree_reattach_notices == 3)
    response = await clients[1].announce(offers=1, first=50, **tree("client"))
    assert response["p2ploader"] == {"role": "client", "host": None}


async def test_a_client_reporting_no_link_frees_its_slot(tracker: TrackerServer) -> None:
    host = await join(tracker, 1)
    await host.announce(**tree("host", max_clients=1))
    a, b = await join(tracker, 2), await join(tracker, 3)
    assert (await a.announce(offers=1, **tree("client")))["p2ploader"]["host"] == host.peer_id
    assert (await host.recv())["offer_id"] == oid(0)
    assert (await b.announce(offers=1, first=5, **tree("client")))["p2ploader"]["host"] is None
    # a's connection failed: it announces without a host, with a new offer, and is introduced again
    # to the same host (the only one); the slot is not free, so b is not disturbed.
    response = await a.announce(offers=1, first=7, **tree("client"))
    assert response["p2ploader"]["host"] == host.peer_id
    assert (await host.recv())["offer_id"] == oid(7)
    await b.nothing_pending()
    # A client that says it is linked keeps its slot without offering.
    response = await a.announce(**tree("client", host=host.peer_id))
    assert response["p2ploader"] == {"role": "client", "host": host.peer_id}
    # Without a link and without an offer it gives the slot up: the waiting b is told.
    response = await a.announce(**tree("client"))
    assert response["p2ploader"] == {"role": "client", "host": None}
    assert (await b.recv())["p2ploader"]["reattach"] is True


async def test_rule_sets_and_mesh_peers(tracker: TrackerServer) -> None:
    linux = await join(tracker, 1)
    extra = tree("host")
    extra["p2ploader"]["os"] = "linux"
    extra["p2ploader"]["rules"] = "headless-linux"
    assert (await linux.announce(**extra))["p2ploader"]["role"] == "host"
    # A browser (no p2ploader object) in the same swarm is relayed as usual and gets no role.
    browser = await join(tracker, 2)
    response = await browser.announce(offers=1)
    assert "p2ploader" not in response
    assert (await linux.recv())["peer_id"] == browser.peer_id
    # The swarm's rule set is the first declarer's: here Linux desktops host.
    other = await join(tracker, 3)
    extra = tree("host")
    extra["p2ploader"]["os"] = "linux"
    assert (await other.announce(**extra))["p2ploader"]["role"] == "host"


async def test_a_separate_swarm_on_plain_rules(tracker: TrackerServer) -> None:
    peer: Peer = await join(tracker, 1)
    extra = tree("host")
    extra["p2ploader"]["os"] = "linux"  # OME rules: Linux never hosts
    assert (await peer.announce(**extra))["p2ploader"]["role"] == "client"
