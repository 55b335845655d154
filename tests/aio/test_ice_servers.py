"""ICE server URIs as browsers and P2P Media Loader write them, converted to what aiortc takes.

aiortc refuses ``stun:...?transport=udp`` (the P2P Media Loader default) when a connection
gathers candidates, so an unconverted default config never makes an offer or an answer. Every URI
form below goes through :func:`rtc_configuration`, then into a real ``RTCPeerConnection`` that
gathers candidates: nothing may raise, and every URI left out or converted is logged once.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import pytest
from aiortc import RTCConfiguration, RTCPeerConnection
from aiortc.rtcicetransport import connection_kwargs

from p2ploader import LoaderConfig
from p2ploader.aio import webrtc
from p2ploader.aio.webrtc import create_connection, rtc_configuration, usable_ice_uri
from p2ploader.config import DEFAULT_RTC_CONFIG

TWILIO = "stun:global.stun.twilio.com:3478?transport=udp"
GOOGLE = "stun:stun.l.google.com:19302"


@pytest.fixture(autouse=True)
def fresh_reports() -> Iterator[None]:
    """Each test sees the once-per-process log lines afresh."""
    saved = set(webrtc._reported_uris)
    webrtc._reported_uris.clear()
    yield
    webrtc._reported_uris.clear()
    webrtc._reported_uris.update(saved)


def urls(configuration: RTCConfiguration) -> list[str]:
    out: list[str] = []
    for server in configuration.iceServers or []:
        out.extend([server.urls] if isinstance(server.urls, str) else server.urls)
    return out


@pytest.mark.parametrize(
    ("uri", "credentials", "expected"),
    [
        # P2P Media Loader 0.6's defaults (and its FAQ's rtcConfig example).
        (GOOGLE, False, GOOGLE),
        (TWILIO, False, "stun:global.stun.twilio.com:3478"),
        # Other forms seen in browser configs.
        ("stun:stun.example.com", False, "stun:stun.example.com"),
        ("stun:192.0.2.7:3478", False, "stun:192.0.2.7:3478"),
        ("STUN:stun.example.com:3478", False, "stun:stun.example.com:3478"),
        ("stun:stun.example.com:3478?transport=tcp", False, None),
        ("stuns:stun.example.com:5349", False, None),
        ("stun:[2001:db8::1]:3478", False, None),
        ("stun:stun.example.com:0", False, None),
        ("stun:stun.example.com:70000", False, None),
        ("turn:turn.example.com:3478", True, "turn:turn.example.com:3478"),
        ("turn:turn.example.com:3478?transport=udp", True, "turn:turn.example.com:3478?transport=udp"),
        ("turn:turn.example.com:443?transport=tcp", True, "turn:turn.example.com:443?transport=tcp"),
        ("turns:turn.example.com:443?transport=tcp", True, "turns:turn.example.com:443?transport=tcp"),
        ("turns:turn.example.com", True, "turns:turn.example.com"),
        ("turns:turn.example.com:443?transport=udp", True, None),
        ("turn:turn.example.com:3478?transport=sctp", True, None),
        ("turn:turn.example.com:3478", False, None),
        ("https://stun.example.com", False, None),
        ("", False, None),
    ],
)
def test_each_uri_form(uri: str, credentials: bool, expected: str | None) -> None:
    assert usable_ice_uri(uri, has_credentials=credentials)[0] == expected
    if expected is not None:
        # What aiortc does with it when a connection gathers candidates: no exception.
        server = {"urls": expected, "username": "u", "credential": "c"}
        connection_kwargs(rtc_configuration({"iceServers": [server]}).iceServers or [])


def test_the_default_config_converts_and_names_each_change_once(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="p2ploader.aio.webrtc"):
        for _ in range(3):  # as many connections: still one line per URI
            converted = rtc_configuration(DEFAULT_RTC_CONFIG)
    assert urls(converted) == [GOOGLE]  # aiortc takes one STUN server: the first
    kwargs = connection_kwargs(converted.iceServers or [])
    assert kwargs == {"stun_server": ("stun.l.google.com", 19302)}
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 1 and TWILIO in lines[0] and "first stun server" in lines[0], lines
    assert caplog.records[0].levelno == logging.INFO  # the defaults do not warn


def test_a_lone_stun_uri_with_a_transport_is_converted_not_dropped(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="p2ploader.aio.webrtc"):
        converted = rtc_configuration({"iceServers": [{"urls": [TWILIO]}]})
        rtc_configuration({"iceServers": [{"urls": [TWILIO]}]})
    assert urls(converted) == ["stun:global.stun.twilio.com:3478"]
    assert len(caplog.records) == 1 and "RFC 7064" in caplog.records[0].getMessage()


def test_unusable_uris_are_left_out_with_one_warning_each(caplog: pytest.LogCaptureFixture) -> None:
    config: dict[str, Any] = {
        "iceServers": [
            {"urls": ["stuns:s.example", "stun:[2001:db8::1]"]},
            {"urls": "turn:t.example"},  # no credentials
            {"urls": "turn:t.example", "username": "u", "credential": "c", "credentialType": "oauth"},
            {"urls": "turn:t.example:3478", "username": "u", "credential": "c"},
            {"urls": ["turn:t2.example:3478"], "username": "u", "credential": "c"},  # a second TURN
            {"urls": 7},
        ]
    }
    with caplog.at_level(logging.INFO, logger="p2ploader.aio.webrtc"):
        converted = rtc_configuration(config)
        rtc_configuration(config)
    assert urls(converted) == ["turn:t.example:3478"]
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    infos = [r.getMessage() for r in caplog.records if r.levelno == logging.INFO]
    # stuns, IPv6, turn:t.example (no credentials, then oauth: one line for the one URI), 7
    assert len(warnings) == 4, warnings
    assert len(infos) == 1 and "t2.example" in infos[0]
    server = (converted.iceServers or [])[0]
    assert (server.username, server.credential) == ("u", "c")


@pytest.mark.anyio
async def test_a_connection_with_the_default_config_gathers_candidates() -> None:
    # Failed before the conversion: ValueError("malformed uri: stun must not contain transport").
    pc: RTCPeerConnection = create_connection(LoaderConfig().rtc_config)
    try:
        pc.createDataChannel("p2p")
        await pc.setLocalDescription(await pc.createOffer())
        assert "a=candidate:" in pc.localDescription.sdp
    finally:
        await pc.close()
