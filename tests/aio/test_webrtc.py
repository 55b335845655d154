"""Remote SDPs from browsers on the same host, in loopback mode: only loopback candidates reach
aiortc (mDNS names are dropped), the connection still opens over 127.0.0.1, and an SDP with
nothing reachable over loopback is named in a warning (see docs/browsers.md)."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import aioice.ice
import pytest
from aiortc import RTCPeerConnection

from p2ploader.aio import webrtc
from p2ploader.aio.webrtc import (
    create_connection,
    restrict_ice_to_loopback,
    screen_remote_candidates,
    set_remote,
)

pytestmark = pytest.mark.anyio

# Candidate lines as Chromium 156 writes them: without camera/microphone permission (mDNS names) and
# with it (raw addresses, loopback included, plus TCP candidates aioice never pairs).
MDNS_UDP = (
    "a=candidate:1117110722 1 udp 2113937151 cc2d5ebb-e79c-45b5-a5fb-6ad07428623b.local 51478 typ host"
    " generation 0"
)
LOOPBACK_UDP = "a=candidate:2340137663 1 udp 2122194687 127.0.0.1 53207 typ host generation 0 network-id 3"
ETH0_UDP = "a=candidate:3323495656 1 udp 2113937151 192.0.2.2 55818 typ host generation 0 network-cost 999"
LOOPBACK_TCP = "a=candidate:4122232871 1 tcp 1518214911 127.0.0.1 9 typ host tcptype active generation 0"


def sdp_with(*candidates: str) -> str:
    head = [
        "v=0",
        "o=- 1 2 IN IP4 127.0.0.1",
        "s=-",
        "t=0 0",
        "m=application 9 UDP/DTLS/SCTP webrtc-datachannel",
    ]
    return "\r\n".join([*head, *candidates, "a=sctp-port:5000", ""])


def test_in_loopback_mode_only_udp_loopback_candidates_are_kept_verbatim() -> None:
    sdp = sdp_with(MDNS_UDP, ETH0_UDP, LOOPBACK_UDP, LOOPBACK_TCP)
    screened = screen_remote_candidates(sdp, loopback_only=True)
    assert screened.kept == 1
    assert screened.sdp == sdp_with(LOOPBACK_UDP)
    assert screened.dropped == {
        "an mDNS name, in loopback mode": 1,
        "not on 127.0.0.0/8, in loopback mode": 1,
        "not UDP": 1,
    }


@pytest.mark.parametrize(
    "candidates",
    [(MDNS_UDP,), (MDNS_UDP, LOOPBACK_TCP), (ETH0_UDP,), ()],
    ids=["mdns-only", "mdns-and-tcp", "other-address-only", "none"],
)
def test_nothing_usable_without_a_udp_loopback_address(candidates: tuple[str, ...]) -> None:
    screened = screen_remote_candidates(sdp_with(*candidates), loopback_only=True)
    assert screened.kept == 0
    assert screened.sdp == sdp_with()


def test_the_loopback_mode_nests() -> None:
    with restrict_ice_to_loopback():
        with restrict_ice_to_loopback():
            assert webrtc._loopback_depth == 2
        assert webrtc._loopback_depth == 1
    assert webrtc._loopback_depth == 0


def test_overlapping_loopback_blocks_keep_loopback_until_the_last_one_ends() -> None:
    # Viewers sharing one event loop (p2ploader.app.pool) open and close their blocks in any
    # order: the first one to end must not restore aioice's addresses under the others.
    import aioice.ice

    original = aioice.ice.get_host_addresses
    first, second = restrict_ice_to_loopback(), restrict_ice_to_loopback()
    first.__enter__()
    second.__enter__()
    first.__exit__(None, None, None)
    assert aioice.ice.get_host_addresses(True, True) == ["127.0.0.1"]
    second.__exit__(None, None, None)
    assert aioice.ice.get_host_addresses is original and webrtc._loopback_depth == 0


def remote_candidates(pc: RTCPeerConnection) -> list[Any]:
    assert pc.sctp is not None
    return list(pc.sctp.transport.transport.getRemoteCandidates())


async def _offer(pc: RTCPeerConnection) -> str:
    pc.createDataChannel("p2p")
    await pc.setLocalDescription(await pc.createOffer())
    return pc.localDescription.sdp


async def test_a_browser_like_offer_with_mdns_names_still_connects_over_loopback(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    lookups: list[object] = []

    async def no_multicast(subscriber: object) -> None:
        lookups.append(subscriber)
        raise OSError("no mDNS lookup expected in loopback mode")

    monkeypatch.setattr(aioice.ice, "get_or_create_mdns_protocol", no_multicast)
    with restrict_ice_to_loopback():
        offerer, answerer = create_connection({"iceServers": []}), create_connection({"iceServers": []})
        try:
            offer = await _offer(offerer)
            # What a browser adds when it hides an address behind mDNS: unreachable from 127.0.0.1.
            marker = "a=candidate:"
            at = offer.index(marker)
            offer = offer[:at] + MDNS_UDP + "\r\n" + offer[at:]
            opened = asyncio.Event()
            answerer.on("datachannel", lambda channel: opened.set())
            await set_remote(answerer, offer, "offer")
            remote = remote_candidates(answerer)
            assert remote and all(c.ip == "127.0.0.1" for c in remote), remote
            await answerer.setLocalDescription(await answerer.createAnswer())
            await set_remote(offerer, answerer.localDescription.sdp, "answer")
            await asyncio.wait_for(opened.wait(), timeout=15)
            assert lookups == []
        finally:
            await offerer.close()
            await answerer.close()


async def test_an_offer_with_only_mdns_names_is_named_in_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    with restrict_ice_to_loopback():
        source, target = create_connection({"iceServers": []}), create_connection({"iceServers": []})
        try:
            offer = await _offer(source)
            lines = [line for line in offer.split("\r\n") if not line.startswith("a=candidate:")]
            at = next(i for i, line in enumerate(lines) if line.startswith("m=application"))
            lines.insert(at + 1, MDNS_UDP)
            with caplog.at_level(logging.WARNING, logger="p2ploader.aio.webrtc"):
                await set_remote(target, "\r\n".join(lines), "offer")
            assert "camera/microphone" in caplog.text and "127.0.0.1" in caplog.text
            assert remote_candidates(target) == []
        finally:
            await source.close()
            await target.close()
