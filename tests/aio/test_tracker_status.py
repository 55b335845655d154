"""Tracker status in the client: ``on_connected`` / ``on_failed`` with a reason in words, and the
per-URL state, against scripted trackers on real sockets (127.0.0.1) that refuse the handshake with
HTTP 429, close with code 1008, or send a fatal ``failure reason``; and the wording of errors that a
local test cannot produce (DNS, TLS)."""

from __future__ import annotations

import contextlib
import json
import socket
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from http import HTTPStatus
from typing import Any

import pytest
from websockets.asyncio.server import ServerConnection, serve
from websockets.datastructures import Headers
from websockets.http11 import Request, Response

from p2ploader.aio.tracker_client import Offer, TrackerClient
from p2ploader.aio.tracker_reasons import describe_close, describe_connect_error
from tests.aio.test_tracker_client import FAST, wait_until

pytestmark = pytest.mark.anyio

INFO_HASH = b"L2uYwMcHhsstZuLv8ZqU"
PEER_ID = b"-PY0001-statusstatus"


class Status:
    def __init__(self) -> None:
        self.events: list[tuple[str, str, str | None]] = []  # (kind, url, reason)

    def connected(self, url: str) -> None:
        self.events.append(("connected", url, None))

    def failed(self, url: str, reason: str, retry_in: float) -> None:
        assert retry_in > 0
        self.events.append(("failed", url, reason))


async def _no_offers(count: int) -> list[Offer]:
    return []


async def _decline(remote: bytes, offer_id: bytes, sdp: str) -> str | None:
    return None


async def _ignore(remote: bytes, offer_id: bytes, sdp: str) -> None:
    return None


def client_for(url: str, status: Status) -> TrackerClient:
    return TrackerClient(
        [url],
        info_hash=INFO_HASH,
        peer_id=PEER_ID,
        make_offers=_no_offers,
        on_offer=_decline,
        on_answer=_ignore,
        on_connected=status.connected,
        on_failed=status.failed,
        **FAST,
    )


Handler = Callable[[ServerConnection], Awaitable[None]]


@contextlib.asynccontextmanager
async def _scripted(handler: Handler, **options: Any) -> AsyncIterator[str]:
    async with serve(handler, "127.0.0.1", 0, **options) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        yield f"ws://127.0.0.1:{port}"


async def test_a_handshake_refused_with_429_is_rate_limited() -> None:
    def too_many(connection: ServerConnection, request: Request) -> Response:
        return Response(HTTPStatus.TOO_MANY_REQUESTS, "Too Many Requests", Headers(), b"slow down\n")

    async def never(ws: ServerConnection) -> None:
        raise AssertionError("the handshake was refused")

    status = Status()
    async with _scripted(never, process_request=too_many) as url, client_for(url, status) as client:
        await wait_until(lambda: len(status.events) >= 2)
        state = client.statistics().trackers[0]
    assert status.events[:2] == [("failed", url, "rate limited (HTTP 429)")] * 2
    assert state.state == "failed" and state.last_error == "rate limited (HTTP 429)"
    assert state.reconnects >= 1


async def test_a_server_that_closes_with_1008_is_reported_after_connected() -> None:
    async def close_at_once(ws: ServerConnection) -> None:
        await ws.recv()  # the first announce
        await ws.close(1008, "announce rate limit exceeded")

    status = Status()
    async with _scripted(close_at_once) as url, client_for(url, status) as client:
        await wait_until(lambda: len(status.events) >= 2)
        state = client.statistics().trackers[0]
    assert status.events[:2] == [
        ("connected", url, None),
        ("failed", url, "rate limited: closed by server (code 1008: announce rate limit exceeded)"),
    ]
    assert state.state in ("closed", "connected")  # it may already be back


async def test_a_clean_close_says_closed_by_server() -> None:
    async def going_away(ws: ServerConnection) -> None:
        await ws.recv()
        await ws.close(1001, "restarting")

    status = Status()
    async with _scripted(going_away) as url, client_for(url, status):
        await wait_until(lambda: len(status.events) >= 2)
    assert status.events[1] == ("failed", url, "closed by server (code 1001: restarting)")


async def test_a_fatal_failure_reason_is_a_refusal() -> None:
    async def refuse(ws: ServerConnection) -> None:
        await ws.recv()
        await ws.send(json.dumps({"failure reason": "invalid request"}))
        await ws.wait_closed()

    status = Status()
    async with _scripted(refuse) as url, client_for(url, status) as client:
        await wait_until(lambda: len(status.events) >= 2)
        state = client.statistics().trackers[0]
    assert status.events[1] == ("failed", url, "refused by the tracker: invalid request")
    assert state.state in ("failed", "connected")


async def test_before_start_the_state_is_idle() -> None:
    client = client_for("ws://127.0.0.1:9", Status())
    assert [t.state for t in client.statistics().trackers] == ["idle"]


# --- wording of errors a local test cannot cause ------------------------------------------------------


def test_dns_tls_timeout_and_refused_wording() -> None:
    dns = socket.gaierror(socket.EAI_NONAME, "Name or service not known")
    assert describe_connect_error(dns, timeout=10) == "DNS failure (Name or service not known)"
    assert describe_connect_error(ConnectionRefusedError(111, "refused"), timeout=10) == "connection refused"
    assert describe_connect_error(TimeoutError(), timeout=10) == "timed out after 10 s"
    cert = ssl.SSLCertVerificationError(1, "certificate verify failed")
    cert.verify_message = "self-signed certificate"
    assert describe_connect_error(cert, timeout=10) == "TLS: self-signed certificate"
    assert (
        describe_connect_error(OSError(113, "No route to host"), timeout=10) == "network or host unreachable"
    )


def test_close_wording() -> None:
    assert describe_close(None, "", received=False) == "connection lost (no close frame from the server)"
    assert describe_close(1000, "", received=True) == "closed by server (code 1000)"
    assert describe_close(1008, "too many invalid requests", received=True) == (
        "closed by server (code 1008: too many invalid requests)"
    )
