"""Eclipse attempts against a real loader over real WebRTC on 127.0.0.1: idle Sybils holding every
slot, fake offers that never connect, an impersonator answering one of our offers under a connected
peer's id. The honest peer must still get in and be kept.

The decisions are the core's and tested there without a socket: slots, eviction, the caps on
connecting links and on offers (``tests/core/test_admission.py``), one link per peer id
(:func:`~p2ploader.core.admission.keeps_existing_link`, same file), bans on a certificate rather
than an id (``tests/core/test_reputation.py``; a liar banned under an honest peer's id, on a
virtual clock, in ``tests/hostile/test_hostile_protocol.py``). Here the peer manager's wiring of
them to real connections is checked through public API only: the loader's ``swarm_endpoint``,
its notifications, and a peer manager's public methods.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator

import pytest
from aiortc import RTCPeerConnection

from p2ploader.aio.peers import PeerManager
from p2ploader.aio.webrtc import rtc_configuration, set_remote
from p2ploader.core import events as ev
from p2ploader.core import notifications as nt
from p2ploader.core.bans import certificate_identity
from p2ploader.errors import OfferRefusedError
from p2ploader.testing import RtcScriptedPeer
from p2ploader.testing.peer import honest
from p2ploader.testing.wait import wait_until
from p2ploader.tracker import TrackerServer
from tests.hostile.scripted import ScriptedPeer
from tests.hostile.test_hostile_peers import (
    ALL,
    Session,
    play_and_wait,
    session,
    tracker,  # noqa: F401 (a fixture)
)

pytestmark = [pytest.mark.anyio, pytest.mark.e2e]


def linked(s: Session, peer: ScriptedPeer) -> bool:
    endpoint = s.loader.swarm_endpoint
    return endpoint is not None and peer.hex_id in endpoint.linked and not peer.closed.is_set()


def evicted(s: Session) -> list[str]:
    return [n.peer_id for n in s.events if isinstance(n, nt.PeerGone) and n.reason.startswith("evicted")]


async def offer_sdp() -> str:
    """A real offer SDP whose connection is closed at once: answering it costs the victim a peer
    connection that never opens (a fake offer)."""
    pc = RTCPeerConnection(rtc_configuration({"iceServers": []}))
    pc.createDataChannel("fake")
    await pc.setLocalDescription(await pc.createOffer())
    sdp = str(pc.localDescription.sdp)
    await pc.close()
    return sdp


async def test_idle_sybils_give_their_slots_to_a_peer_that_delivers(
    tracker: TrackerServer,  # noqa: F811
) -> None:
    # No grace: the Sybils are idle (nothing announced, asked or sent) as soon as they are open, so
    # the test waits for no clock (the grace itself is the core's, tests/core/test_admission.py).
    async with session(tracker, announce=False, max_peers=3, peer_idle_grace=0.0) as s:
        sybils = [s.peer]
        for _ in range(2):
            sybil = ScriptedPeer(s.loader, {})
            await sybil.connect()
            sybils.append(sybil)
        await wait_until(lambda: s.loader.statistics().peers_connected == 3, what="slots full")
        seeder = ScriptedPeer(s.loader, ALL, honest)
        await seeder.connect()
        s.peer = seeder
        await wait_until(lambda: sum(linked(s, p) for p in sybils) == 2, what="one Sybil evicted")
        seeder.announce_sequences(sorted(ALL))
        await play_and_wait(s, lambda: s.loader.statistics().p2p_segments >= 1, "a segment from the seeder")
        # A further newcomer takes another idle Sybil's slot, never the seeder's: it delivers.
        late = ScriptedPeer(s.loader, {})
        await late.connect()
        await wait_until(lambda: sum(linked(s, p) for p in sybils) == 1, what="another eviction")
        assert linked(s, seeder)
        assert len(evicted(s)) == 2 and set(evicted(s)) <= {p.hex_id for p in sybils}
        for peer in [*sybils, late]:
            await peer.close()


async def test_fake_offers_cannot_fill_the_slots(tracker: TrackerServer) -> None:  # noqa: F811
    async with session(tracker) as s:
        endpoint = s.loader.swarm_endpoint
        assert endpoint is not None
        sdp = await offer_sdp()
        answered = 0
        for _ in range(60):  # 60 fresh ids in a burst, none will ever connect
            answered += await endpoint.answer_offer(os.urandom(20), os.urandom(20), sdp) is not None
            assert len(endpoint.linked) <= 1 + 8  # the honest peer and at most 8 connecting links
        assert answered <= 40  # the offer budget and the cap on connecting links declined the rest
        # An honest peer offering now and then still gets in, well before the fakes time out.
        newcomer = ScriptedPeer(s.loader, ALL, honest)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 8.0
        while True:
            try:
                await newcomer.connect()
                break
            except OfferRefusedError:
                assert loop.time() < deadline, "the honest peer never got in"
                await asyncio.sleep(0.5)
                newcomer = ScriptedPeer(s.loader, ALL, honest)
        s.peer = newcomer
        await wait_until(lambda: linked(s, newcomer), what="the honest newcomer linked")


@pytest.fixture
async def manager(loopback: None) -> AsyncIterator[tuple[PeerManager, list[ev.Event]]]:
    """A peer manager on its own, fed to a list; its peer id sorts first (``00...``)."""
    fed: list[ev.Event] = []
    peers = PeerManager(
        feed=fed.append,
        rendition="v0",
        live=False,
        first_sequence=0,
        local_peer_id="00" * 20,
        rtc_config={"iceServers": []},
    )
    yield peers, fed
    await peers.aclose()


async def answer_to(offer_sdp: str) -> RTCPeerConnection:
    """A fresh peer connection that answered ``offer_sdp`` (its local description is the answer)."""
    pc = RTCPeerConnection(rtc_configuration({"iceServers": []}))
    await set_remote(pc, offer_sdp, "offer")
    await pc.setLocalDescription(await pc.createAnswer())
    return pc


async def test_a_second_connection_claiming_a_connected_peers_id_does_not_replace_it(
    manager: tuple[PeerManager, list[ev.Event]],
) -> None:
    peers, fed = manager
    owner = RtcScriptedPeer(peer_id=b"\xff" * 20)  # its id sorts after ours: glare alone would drop it
    await owner.connect(peers.on_offer)
    await wait_until(lambda: ev.PeerConnected(peer_id=owner.hex_id) in fed, what="the owner linked")
    # An impersonator answers one of our offers under the owner's id.
    (offer,) = await peers.make_offers(1)
    pc = await answer_to(offer.sdp)
    try:
        # on_answer decides before it returns: a replacement would already have put a new,
        # unopened link in the owner's place (and closed the owner's), so no wait is needed.
        await peers.on_answer(owner.peer_id, offer.offer_id, pc.localDescription.sdp)
        assert peers.linked == (owner.hex_id,) and owner.is_open
        assert ev.PeerDisconnected(peer_id=owner.hex_id) not in fed
        assert peers.statistics().connections_opened == 1
    finally:
        await pc.close()
        await owner.close()


async def test_an_answer_from_a_banned_certificate_is_refused(loopback: None) -> None:
    """The other way a tracker brings peers together: a banned peer answering one of our offers."""
    fed: list[ev.Event] = []
    banned: set[str] = set()
    peers = PeerManager(
        feed=fed.append,
        rendition="v0",
        live=False,
        first_sequence=0,
        local_peer_id="00" * 20,
        rtc_config={"iceServers": []},
        is_banned=lambda peer_id, certificate: certificate in banned,
    )
    try:
        (offer,) = await peers.make_offers(1)
        pc = await answer_to(offer.sdp)
        try:
            certificate = certificate_identity(pc.localDescription.sdp)
            assert certificate is not None
            banned.add(certificate)
            await peers.on_answer(b"\x11" * 20, offer.offer_id, pc.localDescription.sdp)
            assert peers.linked == () and peers.statistics().pending_offers == 0
        finally:
            await pc.close()
        # The same answer from a certificate not banned is taken.
        (offer,) = await peers.make_offers(1)
        pc = await answer_to(offer.sdp)
        try:
            await peers.on_answer(b"\x11" * 20, offer.offer_id, pc.localDescription.sdp)
            assert peers.linked == ("11" * 20,)
        finally:
            await pc.close()
    finally:
        await peers.aclose()


async def test_a_loader_without_earning_peers_wants_more_unless_alone() -> None:
    manager = PeerManager(
        feed=lambda event: None,
        rendition="v0",
        live=False,
        first_sequence=0,
        local_peer_id="aa" * 20,
        rtc_config={"iceServers": []},
    )
    assert not manager.wants_peers(1)  # alone in the swarm: nobody to find
    assert manager.wants_peers(5)  # others exist and none delivers to us
    await manager.aclose()
    assert not manager.wants_peers(5)
