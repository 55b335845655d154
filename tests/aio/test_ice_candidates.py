"""Remote ICE candidates are screened before aiortc sees them: each one it keeps makes us send
connectivity checks to an address and port the remote chose, so an offer listing 200 candidates
turned a victim into a UDP packet sprayer. At most ``MAX_REMOTE_CANDIDATES`` are kept per SDP,
none on unusable addresses or privileged ports, and in loopback mode only loopback ones."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from aiortc import RTCPeerConnection

from p2ploader.aio.webrtc import (
    MAX_REMOTE_CANDIDATES,
    create_connection,
    restrict_ice_to_loopback,
    screen_remote_candidates,
    set_remote,
)
from tests.aio.test_webrtc import sdp_with

pytestmark = pytest.mark.anyio


def candidate(address: str, port: int, *, transport: str = "udp", kind: str = "host", n: int = 1) -> str:
    return f"a=candidate:{n} 1 {transport} 2122194687 {address} {port} typ {kind} generation 0"


@pytest.mark.parametrize(
    "line",
    [
        candidate("0.0.0.0", 40000),
        candidate("::", 40000),
        candidate("224.0.0.251", 40000),
        candidate("ff02::1", 40000),
        candidate("255.255.255.255", 40000),
        candidate("240.0.0.1", 40000),
        candidate("127.0.0.1", 40000),  # another machine's peer naming our own loopback
        candidate("::1", 40000),
        candidate("::ffff:127.0.0.1", 40000),
        candidate("192.0.2.9", 0),
        candidate("192.0.2.9", 53),
        candidate("192.0.2.9", 443),
        candidate("192.0.2.9", 1023),
        candidate("192.0.2.9", 70000),
        candidate("192.0.2.9", 40000, transport="tcp"),
        candidate("192.0.2.9", 40000, kind="prflx"),
        candidate("victim.example", 40000),
        "a=candidate:1 1 udp 2122194687 192.0.2.9",
    ],
)
def test_unusable_candidates_are_dropped(line: str) -> None:
    screened = screen_remote_candidates(sdp_with(line))
    assert screened.kept == 0 and screened.dropped_total == 1
    assert screened.sdp == sdp_with()


@pytest.mark.parametrize(
    "line",
    [
        candidate("192.0.2.9", 1024),
        candidate("203.0.113.7", 65535, kind="srflx"),
        candidate("198.51.100.3", 49152, kind="relay"),
        candidate("10.1.2.3", 55000),
        candidate("fd00::2", 34960),
        candidate("2001:db8::7", 34960),
        candidate("cc2d5ebb-e79c-45b5-a5fb-6ad07428623b.local", 51478),
    ],
)
def test_usable_candidates_are_kept_verbatim(line: str) -> None:
    screened = screen_remote_candidates(sdp_with(line))
    assert (screened.kept, screened.dropped) == (1, {})
    assert screened.sdp == sdp_with(line)


def test_at_most_the_cap_is_kept_in_sdp_order() -> None:
    lines = [candidate(f"10.0.{i // 250}.{i % 250 + 1}", 40000 + i, n=i) for i in range(200)]
    screened = screen_remote_candidates(sdp_with(*lines))
    assert screened.kept == MAX_REMOTE_CANDIDATES
    assert screened.sdp == sdp_with(*lines[:MAX_REMOTE_CANDIDATES])
    assert screened.dropped == {f"over the cap of {MAX_REMOTE_CANDIDATES}": 200 - MAX_REMOTE_CANDIDATES}


def test_unusable_candidates_do_not_take_places_under_the_cap() -> None:
    junk = [candidate("192.0.2.9", 53, n=i) for i in range(50)]
    good = candidate("192.0.2.9", 40000)
    screened = screen_remote_candidates(sdp_with(*junk, good))
    assert screened.kept == 1 and good in screened.sdp


def remote_candidates(pc: RTCPeerConnection) -> list[Any]:
    assert pc.sctp is not None
    return list(pc.sctp.transport.transport.getRemoteCandidates())


async def _crafted_offer(addresses: list[tuple[str, int]]) -> str:
    """A real aiortc offer (valid ICE credentials and fingerprint) whose candidates are replaced."""
    source = create_connection({"iceServers": []})
    try:
        source.createDataChannel("p2p")
        await source.setLocalDescription(await source.createOffer())
        lines = [
            line for line in source.localDescription.sdp.split("\r\n") if not line.startswith("a=candidate:")
        ]
    finally:
        await source.close()
    at = next(i for i, line in enumerate(lines) if line.startswith("m=application")) + 1
    crafted = [candidate(host, port, n=i) for i, (host, port) in enumerate(addresses)]
    return "\r\n".join(lines[:at] + crafted + lines[at:])


async def test_an_offer_with_200_candidates_reaches_aiortc_with_at_most_the_cap(
    caplog: pytest.LogCaptureFixture,
) -> None:
    offer = await _crafted_offer([(f"10.0.{i // 250}.{i % 250 + 1}", 40000 + i) for i in range(200)])
    target = create_connection({"iceServers": []})
    try:
        with caplog.at_level(logging.INFO, logger="p2ploader.aio.webrtc"):
            screened = await set_remote(target, offer, "offer")
        got = remote_candidates(target)
        assert len(got) == MAX_REMOTE_CANDIDATES, len(got)
        assert screened.dropped_total == 200 - MAX_REMOTE_CANDIDATES
        lines = [r.getMessage() for r in caplog.records if "ICE candidates dropped" in r.getMessage()]
        assert len(lines) == 1 and "190" in lines[0], lines
    finally:
        await target.close()


async def test_in_loopback_mode_200_loopback_candidates_are_capped_too() -> None:
    with restrict_ice_to_loopback():
        offer = await _crafted_offer([("127.0.0.1", 20000 + i) for i in range(200)] + [("192.0.2.9", 40000)])
        target = create_connection({"iceServers": []})
        try:
            await set_remote(target, offer, "offer")
            got = remote_candidates(target)
            assert len(got) == MAX_REMOTE_CANDIDATES
            assert all(c.ip == "127.0.0.1" for c in got)
        finally:
            await target.close()
