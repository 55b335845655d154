"""Eclipse attempts against a real loader over real WebRTC on 127.0.0.1: idle Sybils holding every
slot, fake offers that never connect, an impersonator using an honest peer's id to get it banned or
to replace its connection. The honest peer must still get in and be kept."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest
from aiortc import RTCPeerConnection

from p2ploader.aio.peers import PeerManager
from p2ploader.aio.webrtc import rtc_configuration, set_remote
from p2ploader.core import notifications as nt
from p2ploader.errors import OfferRefusedError
from p2ploader.testing.peer import honest
from p2ploader.testing.wait import wait_until
from p2ploader.tracker import TrackerServer
from tests.hostile.scripted import ScriptedPeer
from tests.hostile.test_hostile_peers import (
    ALL,
    Session,
    hashed_root,  # noqa: F401 (a fixture)
    liar,
    play_and_wait,
    session,
    tracker,  # noqa: F401 (a fixture)
)

pytestmark = [pytest.mark.anyio, pytest.mark.e2e]


def manager_of(s: Session) -> PeerManager:
    manager = s.loader._peers
    assert manager is not None
    return manager


def is_linked_open(s: Session, peer: ScriptedPeer) -> bool:
    state = manager_of(s)._peers.get(peer.hex_id)
    return state is not None and state.link.is_open and not state.link.closing


async def offer_sdp() -> str:
    """A real offer SDP whose connection is closed at once: answering it costs the victim a peer
    connection that never opens (a fake offer)."""
    pc = RTCPeerConnection(rtc_configuration({"iceServers": []}))
    pc.createDataChannel("fake")
    await pc.setLocalDescription(await pc.createOffer())
    sdp = str(pc.localDescription.sdp)
    await pc.close()
    return sdp


async def test_an_impersonator_banned_under_an_honest_peers_id_does_not_get_it_refused(
    tracker: TrackerServer,  # noqa: F811
    hashed_root: Path,  # noqa: F811
) -> None:
    async with session(tracker, liar, root=hashed_root, integrity_sha256=True) as s:
        await play_and_wait(s, lambda: s.of(nt.PeerBanned), "the impersonator banned")
        await wait_until(lambda: not s.connected(), what="impersonator disconnected")
        # The honest owner of that id connects on its own, with its own certificate: not refused.
        owner = ScriptedPeer(s.loader, ALL, honest)
        owner.peer_id = s.peer.peer_id
        s.peer = owner
        await owner.connect()
        await wait_until(lambda: is_linked_open(s, owner), what="the honest owner linked")
        assert not s.loader.is_banned(owner.hex_id)
        owner.announce_sequences(sorted(ALL))
        # Its announce reaches the scheduler over the same channel: once it is there, the owner
        # was neither refused nor cut off for announcing.
        peers = s.loader._scheduler._peers
        await wait_until(
            lambda: owner.hex_id in peers and len(peers[owner.hex_id].loaded) == len(ALL),
            what="the owner's announce processed",
        )
        assert is_linked_open(s, owner)


async def test_a_second_connection_claiming_a_connected_peers_id_does_not_replace_it(
    tracker: TrackerServer,  # noqa: F811
) -> None:
    async with session(tracker) as s:
        manager = manager_of(s)
        # The honest peer's id sorts after ours, so the glare rule alone would keep the newcomer.
        owner = ScriptedPeer(s.loader, ALL, honest)
        owner.peer_id = b"\xff" * 20
        await owner.connect()
        await wait_until(lambda: is_linked_open(s, owner), what="the owner linked")
        link = manager._peers[owner.hex_id].link
        # An impersonator answers one of our offers under the owner's id.
        (offer,) = await manager.make_offers(1)
        pc = RTCPeerConnection(rtc_configuration({"iceServers": []}))
        try:
            await set_remote(pc, offer.sdp, "offer")
            await pc.setLocalDescription(await pc.createAnswer())
            await manager.on_answer(owner.peer_id, offer.offer_id, pc.localDescription.sdp)
            await asyncio.sleep(0.5)
            assert manager._peers[owner.hex_id].link is link and is_linked_open(s, owner)
            assert not owner.closed.is_set()
        finally:
            await pc.close()
            await owner.close()


async def test_idle_sybils_give_their_slots_to_a_peer_that_delivers(
    tracker: TrackerServer,  # noqa: F811
) -> None:
    async with session(tracker, announce=False, max_peers=3, peer_idle_grace=1.0) as s:
        sybils = [s.peer]
        for _ in range(2):
            sybil = ScriptedPeer(s.loader, {})
            await sybil.connect()
            sybils.append(sybil)
        await wait_until(lambda: s.loader.statistics().peers_connected == 3, what="slots full")
        await asyncio.sleep(1.2)  # past their grace: idle (nothing announced, asked or sent)
        seeder = ScriptedPeer(s.loader, ALL, honest)
        await seeder.connect()
        s.peer = seeder
        await wait_until(lambda: sum(is_linked_open(s, p) for p in sybils) == 2, what="one Sybil evicted")
        seeder.announce_sequences(sorted(ALL))
        await play_and_wait(s, lambda: s.loader.statistics().p2p_segments >= 1, "a segment from the seeder")
        # A further newcomer takes another idle Sybil's slot, never the seeder's: it delivers.
        late = ScriptedPeer(s.loader, {})
        await late.connect()
        await wait_until(lambda: sum(is_linked_open(s, p) for p in sybils) == 1, what="another eviction")
        assert is_linked_open(s, seeder)
        stats = manager_of(s).statistics().admission
        assert stats is not None and stats.evicted == 2
        for peer in [*sybils, late]:
            await peer.close()


async def test_fake_offers_cannot_fill_the_slots(tracker: TrackerServer) -> None:  # noqa: F811
    async with session(tracker) as s:
        manager = manager_of(s)
        sdp = await offer_sdp()
        answered = 0
        for _ in range(60):  # 60 fresh ids in a burst, none will ever connect
            answered += await manager.on_offer(os.urandom(20), os.urandom(20), sdp) is not None
            assert len(manager._peers) <= 1 + 8  # the honest peer and at most 8 connecting links
        stats = manager.statistics().admission
        assert stats is not None and answered <= 40 and stats.offers_over_budget + stats.offers_busy >= 20
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
        await wait_until(lambda: is_linked_open(s, newcomer), what="the honest newcomer linked")


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
