"""Error paths of the HTTP executor, with respx standing in for the origin.

The executor types each failed attempt and performs what the core's retry policy
(p2ploader.core.retries.FetchRetryPolicy, tested alone in tests/core/test_retries.py) decides: the
delays it sleeps (recorded here, not slept), the Range of the next GET, the reason it reports.
The happy paths and real truncation run against the real local origin in test_loader_e2e.py.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator

import httpx
import pytest
import respx

from p2ploader.aio.http import HttpExecutor, fetch_bytes
from p2ploader.config import LoaderConfig
from p2ploader.core import events as ev
from p2ploader.core.actions import StartHttpFetch
from p2ploader.core.retries import FetchRetryPolicy
from p2ploader.core.segments import ByteRange, Segment, SegmentId
from p2ploader.errors import HttpStatusError, TransportError

pytestmark = pytest.mark.anyio

URL = "http://origin.test/seg.ts"
BODY = bytes(range(256)) * 8  # 2048 bytes
CONFIG = LoaderConfig(http_retries=2, http_retry_backoff=0.0, http_read_timeout=0.2, http_connect_timeout=0.2)
POLICY = FetchRetryPolicy.from_config(LoaderConfig())  # the shipped http_retries=2, backoff 0.5 s
ONCE = FetchRetryPolicy(retries=0, backoff=0.0)


def segment(byte_range: ByteRange | None = None) -> Segment:
    return Segment(id=SegmentId("v0", 1), url=URL, duration=2.0, byte_range=byte_range)


async def run(
    action: StartHttpFetch, config: LoaderConfig = CONFIG, *, slept: list[float] | None = None
) -> list[ev.Event]:
    """Run one fetch to its end; the retry delays it waits are appended to ``slept`` (seconds)
    instead of being slept."""
    events: list[ev.Event] = []
    delays = slept if slept is not None else []

    async def record(seconds: float) -> None:
        delays.append(seconds)
        await asyncio.sleep(0)

    async with httpx.AsyncClient() as client:
        executor = HttpExecutor(
            client, events.append, retry_policy=FetchRetryPolicy.from_config(config), sleep=record
        )
        executor.start(action)
        for _ in range(200):
            if events and isinstance(events[-1], ev.HttpFetchCompleted | ev.HttpFetchFailed):
                break
            await asyncio.sleep(0.01)
        await executor.aclose()
    return events


def body_of(events: list[ev.Event]) -> bytes:
    data = b""
    for e in events:
        if isinstance(e, ev.HttpResponseStarted):
            data = data[: e.offset]
        elif isinstance(e, ev.HttpChunkReceived):
            data += e.data
    return data


@respx.mock
async def test_404_fails_at_once_without_retries() -> None:
    route = respx.get(URL).mock(return_value=httpx.Response(404))
    events = await run(StartHttpFetch(request_id=1, segment=segment()))
    assert events[-1] == ev.HttpFetchFailed(request_id=1, reason="HTTP 404", status=404, permanent=True)
    assert route.call_count == 1


@respx.mock
async def test_a_204_is_reported_permanent_and_a_spent_503_is_not() -> None:
    respx.get(URL).mock(return_value=httpx.Response(204))
    events = await run(StartHttpFetch(request_id=1, segment=segment()))
    assert events[-1] == ev.HttpFetchFailed(request_id=1, reason="HTTP 204", status=204, permanent=True)
    respx.get(URL).mock(return_value=httpx.Response(503))
    events = await run(StartHttpFetch(request_id=2, segment=segment()))
    failed = events[-1]
    assert isinstance(failed, ev.HttpFetchFailed) and failed.status == 503 and not failed.permanent


@respx.mock
async def test_an_unforeseen_exception_ends_the_fetch_with_a_failure_not_silence(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # httpx's stream errors (e.g. StreamClosed) are RuntimeErrors, not httpx.HTTPErrors; a task that
    # died of one without an event would leave its segment waiting for good.
    route = respx.get(URL).mock(side_effect=httpx.StreamClosed())
    events = await run(StartHttpFetch(request_id=1, segment=segment()))
    failed = events[-1]
    assert isinstance(failed, ev.HttpFetchFailed) and failed.status is None
    assert "StreamClosed" in failed.reason
    assert route.call_count == 1, "not retried: nothing says it is transient"
    assert "failed unexpectedly" in caplog.text


@respx.mock
async def test_5xx_is_retried_then_succeeds() -> None:
    route = respx.get(URL).mock(
        side_effect=[httpx.Response(503), httpx.Response(502), httpx.Response(200, content=BODY)]
    )
    events = await run(StartHttpFetch(request_id=1, segment=segment()))
    assert isinstance(events[-1], ev.HttpFetchCompleted)
    assert body_of(events) == BODY
    assert route.call_count == 3


@respx.mock
async def test_persistent_5xx_fails_after_the_retries() -> None:
    route = respx.get(URL).mock(return_value=httpx.Response(500))
    events = await run(StartHttpFetch(request_id=1, segment=segment()))
    failed = events[-1]
    assert isinstance(failed, ev.HttpFetchFailed) and failed.status == 500 and "3 attempts" in failed.reason
    assert route.call_count == 3


@respx.mock
async def test_timeouts_are_retried_and_reported() -> None:
    respx.get(URL).mock(side_effect=httpx.ReadTimeout("slow"))
    events = await run(StartHttpFetch(request_id=1, segment=segment()))
    failed = events[-1]
    assert isinstance(failed, ev.HttpFetchFailed) and "timeout" in failed.reason and failed.status is None


@respx.mock
async def test_connect_errors_are_transport_failures() -> None:
    route = respx.get(URL).mock(side_effect=httpx.ConnectError("refused"))
    events = await run(StartHttpFetch(request_id=1, segment=segment()))
    assert events[-1] == ev.HttpFetchFailed(
        request_id=1, reason="ConnectError: refused (after 3 attempts)", status=None
    )
    assert route.call_count == 3


@respx.mock
async def test_the_shipped_defaults_wait_half_a_second_then_one_second_between_attempts() -> None:
    config = LoaderConfig()
    assert (config.http_retries, config.http_retry_backoff) == (2, 0.5)
    route = respx.get(URL).mock(return_value=httpx.Response(503))
    slept: list[float] = []
    events = await run(StartHttpFetch(request_id=1, segment=segment()), config, slept=slept)
    assert events[-1] == ev.HttpFetchFailed(request_id=1, reason="HTTP 503 (after 3 attempts)", status=503)
    # 0.5 s then 1 s, each shortened at random by up to half (the shipped http_retry_jitter)
    assert config.http_retry_jitter == 0.5
    assert route.call_count == 3 and len(slept) == 2
    assert 0.25 <= slept[0] <= 0.5 and 0.5 <= slept[1] <= 1.0


@respx.mock
async def test_the_executor_draws_each_delays_jitter_from_its_random_source() -> None:
    respx.get(URL).mock(return_value=httpx.Response(503))
    slept: list[float] = []

    async def record(seconds: float) -> None:
        slept.append(seconds)

    draws = random.Random(7)
    expected = [0.5 * (1 - 0.5 * draws.random()), 1.0 * (1 - 0.5 * draws.random())]
    events: list[ev.Event] = []
    async with httpx.AsyncClient() as client:
        policy = FetchRetryPolicy.from_config(LoaderConfig())
        executor = HttpExecutor(
            client, events.append, retry_policy=policy, sleep=record, rng=random.Random(7)
        )
        executor.start(StartHttpFetch(request_id=1, segment=segment()))
        for _ in range(200):
            if events and isinstance(events[-1], ev.HttpFetchFailed):
                break
            await asyncio.sleep(0.01)
        await executor.aclose()
    assert slept == pytest.approx(expected)
    # Without jitter the delays are exact and nothing is drawn.
    slept.clear()
    await fetch_small(retry=FetchRetryPolicy(retries=2, backoff=0.5), slept=slept, failures=2)
    assert slept == [0.5, 1.0]


@respx.mock
async def test_a_retry_that_succeeds_slept_only_before_it() -> None:
    route = respx.get(URL).mock(side_effect=[httpx.ReadTimeout("slow"), httpx.Response(200, content=BODY)])
    slept: list[float] = []
    events = await run(
        StartHttpFetch(request_id=1, segment=segment()), CONFIG.evolve(http_retry_backoff=0.3), slept=slept
    )
    assert isinstance(events[-1], ev.HttpFetchCompleted) and body_of(events) == BODY
    assert route.call_count == 2 and len(slept) == 1 and 0.15 <= slept[0] <= 0.3


class _BreaksAfter(httpx.AsyncByteStream):
    """A body that sends ``data`` and then loses the connection."""

    def __init__(self, data: bytes) -> None:
        self._data = data

    async def __aiter__(self) -> AsyncIterator[bytes]:
        yield self._data
        raise httpx.RemoteProtocolError("peer closed connection without sending complete message body")


@respx.mock
async def test_a_connection_lost_mid_body_resumes_from_the_bytes_held() -> None:
    broken = httpx.Response(200, headers={"Content-Length": str(len(BODY))}, stream=_BreaksAfter(BODY[:700]))
    rest = httpx.Response(
        206, headers={"Content-Range": f"bytes 700-{len(BODY) - 1}/{len(BODY)}"}, content=BODY[700:]
    )
    route = respx.get(URL).mock(side_effect=[broken, rest])
    events = await run(StartHttpFetch(request_id=1, segment=segment()))
    assert isinstance(events[-1], ev.HttpFetchCompleted)
    assert "Range" not in route.calls[0].request.headers
    assert route.calls[1].request.headers["Range"] == "bytes=700-"
    assert body_of(events) == BODY


@respx.mock
async def test_no_retry_when_http_retries_is_zero() -> None:
    route = respx.get(URL).mock(return_value=httpx.Response(502))
    slept: list[float] = []
    events = await run(
        StartHttpFetch(request_id=1, segment=segment()), CONFIG.evolve(http_retries=0), slept=slept
    )
    assert events[-1] == ev.HttpFetchFailed(request_id=1, reason="HTTP 502 (after 1 attempts)", status=502)
    assert route.call_count == 1 and slept == []


@respx.mock
async def test_truncated_body_resumes_with_a_range_request() -> None:
    truncated = httpx.Response(200, headers={"Content-Length": str(len(BODY))}, content=BODY[:700])
    rest = httpx.Response(
        206, headers={"Content-Range": f"bytes 700-{len(BODY) - 1}/{len(BODY)}"}, content=BODY[700:]
    )
    route = respx.get(URL).mock(side_effect=[truncated, rest])
    events = await run(StartHttpFetch(request_id=1, segment=segment()))
    assert isinstance(events[-1], ev.HttpFetchCompleted)
    assert route.calls[1].request.headers["Range"] == "bytes=700-"
    assert [e.offset for e in events if isinstance(e, ev.HttpResponseStarted)] == [0, 700]
    assert body_of(events) == BODY


@respx.mock
async def test_wrong_content_range_is_a_permanent_failure() -> None:
    bad = httpx.Response(206, headers={"Content-Range": "bytes 0-99/2048"}, content=BODY[:100])
    route = respx.get(URL).mock(return_value=bad)
    events = await run(StartHttpFetch(request_id=1, segment=segment(ByteRange(offset=500, length=100))))
    failed = events[-1]
    assert isinstance(failed, ev.HttpFetchFailed) and "Content-Range" in failed.reason
    assert not failed.permanent  # final for this fetch, not for the segment: a new fetch may do
    assert route.call_count == 1
    assert not any(isinstance(e, ev.HttpChunkReceived) for e in events)


@respx.mock
async def test_byte_range_segment_asks_for_its_range() -> None:
    ok = httpx.Response(206, headers={"Content-Range": "bytes 500-599/2048"}, content=BODY[500:600])
    route = respx.get(URL).mock(return_value=ok)
    events = await run(StartHttpFetch(request_id=1, segment=segment(ByteRange(offset=500, length=100))))
    assert route.calls[0].request.headers["Range"] == "bytes=500-599"
    assert body_of(events) == BODY[500:600]


@respx.mock
async def test_byte_range_segment_from_an_origin_that_ignores_range() -> None:
    respx.get(URL).mock(return_value=httpx.Response(200, content=BODY))
    events = await run(StartHttpFetch(request_id=1, segment=segment(ByteRange(offset=500, length=100))))
    assert isinstance(events[-1], ev.HttpFetchCompleted)
    assert body_of(events) == BODY[500:600]


@respx.mock
async def test_resume_from_p2p_bytes_asks_only_for_the_rest() -> None:
    rest = httpx.Response(206, headers={"Content-Range": f"bytes 1000-2047/{len(BODY)}"}, content=BODY[1000:])
    route = respx.get(URL).mock(return_value=rest)
    events = await run(StartHttpFetch(request_id=1, segment=segment(), resume_from=1000))
    assert route.calls[0].request.headers["Range"] == "bytes=1000-"
    # The segment's full size comes from Content-Range: peers may be served it while it arrives.
    assert events[0] == ev.HttpResponseStarted(request_id=1, offset=1000, total_bytes=len(BODY))
    assert sum(len(e.data) for e in events if isinstance(e, ev.HttpChunkReceived)) == 1048


@respx.mock
async def test_a_resume_after_p2p_bytes_truncated_again_continues_from_the_new_offset() -> None:
    # Peer bytes 0-999, then HTTP continues: 500 more bytes arrive before the body is cut; the retry
    # asks from byte 1500, not 1000 and not 0, and says so (no byte is reported twice).
    cut = httpx.Response(
        206, headers={"Content-Range": f"bytes 1000-2047/{len(BODY)}"}, content=BODY[1000:1500]
    )
    rest = httpx.Response(206, headers={"Content-Range": f"bytes 1500-2047/{len(BODY)}"}, content=BODY[1500:])
    route = respx.get(URL).mock(side_effect=[cut, rest])
    events = await run(StartHttpFetch(request_id=1, segment=segment(), resume_from=1000))
    assert isinstance(events[-1], ev.HttpFetchCompleted)
    assert [call.request.headers["Range"] for call in route.calls] == ["bytes=1000-", "bytes=1500-"]
    assert [e.offset for e in events if isinstance(e, ev.HttpResponseStarted)] == [1000, 1500]
    assert b"".join(e.data for e in events if isinstance(e, ev.HttpChunkReceived)) == BODY[1000:]


@respx.mock
async def test_a_byte_range_segment_truncated_asks_for_the_rest_of_its_range() -> None:
    cut = httpx.Response(206, headers={"Content-Range": "bytes 500-1499/2048"}, content=BODY[500:1200])
    rest = httpx.Response(206, headers={"Content-Range": "bytes 1200-1499/2048"}, content=BODY[1200:1500])
    route = respx.get(URL).mock(side_effect=[cut, rest])
    events = await run(StartHttpFetch(request_id=1, segment=segment(ByteRange(offset=500, length=1000))))
    assert isinstance(events[-1], ev.HttpFetchCompleted)
    assert [call.request.headers["Range"] for call in route.calls] == ["bytes=500-1499", "bytes=1200-1499"]
    assert body_of(events) == BODY[500:1500]


@respx.mock
async def test_a_truncated_body_that_never_completes_reports_where_it_stopped() -> None:
    short = httpx.Response(200, headers={"Content-Length": str(len(BODY))}, content=BODY[:700])
    nothing_more = httpx.Response(206, headers={"Content-Range": f"bytes 700-2047/{len(BODY)}"}, content=b"")
    route = respx.get(URL).mock(side_effect=[short, nothing_more, nothing_more])
    events = await run(StartHttpFetch(request_id=1, segment=segment()))
    assert events[-1] == ev.HttpFetchFailed(
        request_id=1, reason="body truncated at 700 of 2048 bytes (after 3 attempts)", status=None
    )
    assert [call.request.headers.get("Range") for call in route.calls] == [None, "bytes=700-", "bytes=700-"]


@respx.mock
async def test_resume_answered_with_200_restarts_at_zero() -> None:
    respx.get(URL).mock(return_value=httpx.Response(200, content=BODY))
    events = await run(StartHttpFetch(request_id=1, segment=segment(), resume_from=1000))
    assert events[0] == ev.HttpResponseStarted(request_id=1, offset=0, total_bytes=len(BODY))
    assert body_of(events) == BODY


@respx.mock
async def test_fetch_bytes_maps_errors_to_typed_exceptions() -> None:
    respx.get("http://origin.test/missing.m3u8").mock(return_value=httpx.Response(404))
    respx.get("http://origin.test/down.m3u8").mock(side_effect=httpx.ConnectError("refused"))
    async with httpx.AsyncClient() as client:
        with pytest.raises(HttpStatusError) as status:
            await fetch_bytes(
                client, "http://origin.test/missing.m3u8", max_bytes=1024, what="playlist", retry=ONCE
            )
        assert status.value.status == 404 and status.value.url.endswith("missing.m3u8")
        with pytest.raises(TransportError):
            await fetch_bytes(
                client, "http://origin.test/down.m3u8", max_bytes=1024, what="playlist", retry=ONCE
            )


# -- fetch_bytes (playlists, keys, init sections) under the core's retry policy ---------------------

SMALL = "http://origin.test/index.m3u8"


async def fetch_small(
    *,
    retry: FetchRetryPolicy = POLICY,
    byte_range: ByteRange | None = None,
    slept: list[float],
    failures: int = 0,
) -> bytes:
    """``fetch_bytes`` of :data:`SMALL`, its retry delays appended to ``slept``; with ``failures``,
    the first that many GETs answer 503 (a route of its own)."""

    async def record(seconds: float) -> None:
        slept.append(seconds)

    if failures:
        answers = [httpx.Response(503)] * failures + [httpx.Response(200, content=b"#EXTM3U\n")]
        respx.get(SMALL).mock(side_effect=answers)

    async with httpx.AsyncClient() as client:
        return await fetch_bytes(
            client, SMALL, max_bytes=1024, what="playlist", retry=retry, byte_range=byte_range, sleep=record
        )


@respx.mock
@pytest.mark.parametrize(
    "failure",
    [
        httpx.Response(503),
        httpx.Response(500),
        httpx.ConnectError("refused"),
        httpx.ReadTimeout("slow"),
        httpx.RemoteProtocolError("peer closed connection without sending complete message body"),
    ],
    ids=["503", "500", "connect-error", "timeout", "cut-body"],
)
async def test_fetch_bytes_tries_a_transient_failure_again_after_the_policys_delay(
    failure: httpx.Response | Exception,
) -> None:
    route = respx.get(SMALL).mock(side_effect=[failure, failure, httpx.Response(200, content=b"#EXTM3U\n")])
    slept: list[float] = []
    assert await fetch_small(slept=slept) == b"#EXTM3U\n"
    assert route.call_count == 3
    # http_retry_backoff, doubled, each shortened by up to the shipped jitter's half
    assert len(slept) == 2 and 0.25 <= slept[0] <= 0.5 and 0.5 <= slept[1] <= 1.0


@respx.mock
async def test_fetch_bytes_gives_up_when_the_attempts_are_used_up() -> None:
    route = respx.get(SMALL).mock(return_value=httpx.Response(503))
    slept: list[float] = []
    with pytest.raises(HttpStatusError) as info:
        await fetch_small(slept=slept)
    assert route.call_count == POLICY.attempts == 3
    assert info.value.status == 503 and info.value.reason == "after 3 attempts"
    assert len(slept) == 2 and 0.25 <= slept[0] <= 0.5 and 0.5 <= slept[1] <= 1.0
    route.mock(side_effect=httpx.ConnectError("refused"))
    with pytest.raises(TransportError) as network:
        await fetch_small(slept=slept)
    assert network.value.reason == "ConnectError: refused (after 3 attempts)"


@respx.mock
@pytest.mark.parametrize("status", [400, 403, 404, 410])
async def test_fetch_bytes_ends_at_once_on_a_4xx(status: int) -> None:
    route = respx.get(SMALL).mock(return_value=httpx.Response(status))
    slept: list[float] = []
    with pytest.raises(HttpStatusError) as info:
        await fetch_small(slept=slept)
    assert route.call_count == 1 and slept == []
    assert info.value.status == status and info.value.reason == ""


@respx.mock
async def test_fetch_bytes_ends_at_once_when_a_byte_range_comes_short() -> None:
    route = respx.get(SMALL).mock(return_value=httpx.Response(200, content=b"x" * 100))
    slept: list[float] = []
    with pytest.raises(HttpStatusError, match="expected 50 bytes, got 40"):
        await fetch_small(slept=slept, byte_range=ByteRange(offset=60, length=50))
    assert route.call_count == 1 and slept == []


@respx.mock
async def test_fetch_bytes_with_no_retries_asks_once() -> None:
    route = respx.get(SMALL).mock(return_value=httpx.Response(503))
    slept: list[float] = []
    with pytest.raises(HttpStatusError, match="after 1 attempts"):
        await fetch_small(retry=ONCE, slept=slept)
    assert route.call_count == 1 and slept == []
