"""The HTTP executor: carries out the scheduler's fetch actions with httpx.

Each :class:`~p2ploader.core.actions.StartHttpFetch` becomes one asyncio task that streams the
segment and reports what happened as core events. This module only performs; the core decides.
Each GET asks for the ``Range`` of :func:`~p2ploader.core.http_fetch.range_header` and reads its
body as :func:`~p2ploader.core.http_fetch.plan_body` says (where it starts in the segment, where
it stops, or that its ``Content-Range`` is wrong); a body that restarts after partial data says
where it starts (:class:`~p2ploader.core.events.HttpResponseStarted`), so no byte is reported
twice. Each failed attempt is typed here, from the status, the plan or the third-party exception,
as a :class:`~p2ploader.core.retries.HttpAttemptFailure` (kind, status, bytes held, attempt
number), and :class:`~p2ploader.core.retries.FetchRetryPolicy` answers: retry (sleep so many
seconds, then GET again from the byte it names) or give up (one
:class:`~p2ploader.core.events.HttpFetchFailed` with the policy's reason). What happens after a
failed fetch is the core's too (:class:`~p2ploader.core.retries.HttpRetries`). Third-party
exceptions never leak past this module.
Every fetch ends with an event: an exception nobody foresaw (httpx's stream errors are not
``httpx.HTTPError``s) is logged and reported as a failure too, because a fetch task that died
silently would leave the scheduler, and whoever awaits the segment, waiting for it for good.

The small resources a loader reads whole (playlists, keys, init sections, I-frames:
:func:`fetch_bytes`) are typed the same way and retried by the same policy, from their first
byte; giving up raises a p2ploader error instead of reporting an event.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import random
from collections.abc import Awaitable, Callable, Mapping

import attrs
import httpx

from p2ploader.config import LoaderConfig
from p2ploader.core import events as ev
from p2ploader.core.actions import StartHttpFetch
from p2ploader.core.hostscope import HostScope
from p2ploader.core.http_fetch import UnusableResponse, plan_body, range_header, status_failure
from p2ploader.core.retries import (
    TRANSIENT_FAILURES,
    FetchRetryPolicy,
    GiveUpFetch,
    HttpAttemptFailure,
    HttpFailureKind,
)
from p2ploader.core.segments import ByteRange
from p2ploader.core.upload_control import UploadHold
from p2ploader.errors import HttpStatusError, P2PLoaderError, ResponseTooLargeError, TransportError

__all__ = [
    "HttpExecutor",
    "fetch_bytes",
    "http_timeout",
    "open_http_client",
    "read_body_capped",
]

logger = logging.getLogger(__name__)


def http_timeout(config: LoaderConfig) -> httpx.Timeout:
    """httpx timeouts from the config (seconds)."""
    return httpx.Timeout(
        connect=config.http_connect_timeout,
        read=config.http_read_timeout,
        write=config.http_read_timeout,
        pool=config.http_connect_timeout,
    )


def open_http_client(config: LoaderConfig, *, stream_url: str) -> httpx.AsyncClient:
    """The loader's HTTP client: the config's timeouts and ``user_agent`` on every request it makes
    (playlists, segments, keys, init sections, integrity spot checks); ``http_headers`` and
    ``http_cookies`` only on requests to ``stream_url``'s origin (scheme, host and port) and to the
    origins ``http_headers_hosts`` adds, at every hop of a redirect (a redirect to another host
    drops them). Peers and trackers never see any of them: those speak WebRTC and WebSocket
    elsewhere."""
    headers = {"User-Agent": config.user_agent} if config.user_agent is not None else {}
    client = httpx.AsyncClient(timeout=http_timeout(config), follow_redirects=True, headers=headers)
    if config.http_headers or config.http_cookies:
        scope = HostScope.for_stream(stream_url, config.http_headers_hosts)
        credentials = _ScopedCredentials(
            scope, config.http_headers, config.http_cookies, defaults=httpx.Headers(client.headers)
        )
        client.event_hooks["request"].append(credentials.apply)
    return client


class _ScopedCredentials:
    """Adds ``http_headers`` and ``http_cookies`` to a request whose origin is in scope, and takes
    them off one that is not.

    A request hook, because httpx runs request hooks at every hop of a redirect: the header and
    cookie decision is made for each URL actually contacted. Taking them off matters as much as
    adding them: httpx builds a redirect's request by copying the previous hop's headers (it
    re-derives ``Cookie`` from its jar, which never holds ours)."""

    def __init__(
        self,
        scope: HostScope,
        headers: Mapping[str, str],
        cookies: Mapping[str, str],
        *,
        defaults: httpx.Headers,
    ) -> None:
        self._scope = scope
        self._headers = dict(headers)
        self._cookie_pairs = [f"{name}={value}" for name, value in cookies.items()]
        self._defaults = defaults  # the client's own headers, put back where ours replaced them

    async def apply(self, request: httpx.Request) -> None:
        if self._scope.allows(str(request.url)):
            self._add(request.headers)
        else:
            self._remove(request.headers)

    def _add(self, headers: httpx.Headers) -> None:
        headers.update(self._headers)
        if self._cookie_pairs:
            # Next to the cookies the origin set (httpx's jar, already in the header).
            jar = [pair for pair in _cookie_pairs(headers) if pair not in self._cookie_pairs]
            headers["Cookie"] = "; ".join([*jar, *self._cookie_pairs])

    def _remove(self, headers: httpx.Headers) -> None:
        for name, value in self._headers.items():
            if headers.get(name) == value:
                del headers[name]
                if name in self._defaults:
                    headers[name] = self._defaults[name]
        if self._cookie_pairs and "Cookie" in headers:
            kept = [pair for pair in _cookie_pairs(headers) if pair not in self._cookie_pairs]
            if kept:
                headers["Cookie"] = "; ".join(kept)
            else:
                del headers["Cookie"]


def _cookie_pairs(headers: httpx.Headers) -> list[str]:
    return [pair.strip() for pair in headers.get("Cookie", "").split(";") if pair.strip()]


@attrs.define
class _Progress:
    delivered: int


class _AttemptFailed(Exception):
    """One attempt of a fetch failed: its kind, reason and status, for the core's retry policy."""

    def __init__(
        self, kind: HttpFailureKind, reason: str, status: int | None = None, *, detail: str = ""
    ) -> None:
        super().__init__(reason)
        self.kind = kind
        self.reason = reason
        self.status = status
        self.detail = detail  # what an HttpStatusError adds to its status, if anything

    def described(self, *, held: int, attempt: int) -> HttpAttemptFailure:
        """The core's description of this failure, ``held`` bytes held, in attempt ``attempt``."""
        return HttpAttemptFailure(
            kind=self.kind, reason=self.reason, status=self.status, held=held, attempt=attempt
        )


def _map_httpx_error(exc: httpx.HTTPError) -> _AttemptFailed:
    if isinstance(exc, httpx.TimeoutException):  # connect timeouts too: checked first
        return _AttemptFailed(HttpFailureKind.TIMEOUT, f"timeout ({type(exc).__name__})")
    reason = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    if isinstance(exc, httpx.ConnectError):
        return _AttemptFailed(HttpFailureKind.CONNECT_ERROR, reason)
    return _AttemptFailed(HttpFailureKind.NETWORK_ERROR, reason)


async def fetch_bytes(
    client: httpx.AsyncClient,
    url: str,
    *,
    max_bytes: int,
    what: str,
    retry: FetchRetryPolicy,
    byte_range: ByteRange | None = None,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    rng: random.Random | None = None,
) -> bytes:
    """GET a small resource (playlist, key, init section, I-frame) whole, with the core's retry
    policy; map failures to p2ploader errors.

    Each failed attempt is typed as for segments and ``retry`` (the config's ``http_retries`` and
    ``http_retry_backoff``, :meth:`FetchRetryPolicy.from_config`) decides: a connect error, a
    timeout, a broken connection, a body cut short or a 5xx is tried again after the policy's
    delay (``sleep``, seconds; its jitter drawn from ``rng``, a process-wide source by default),
    from the resource's first byte (it is small: nothing is kept); a
    4xx (or another error status) or a body of the wrong length ends at once. Giving up raises
    :class:`~p2ploader.errors.HttpStatusError` when a status came, else
    :class:`~p2ploader.errors.TransportError`, with how many attempts were made.

    The body is streamed and reading stops as soon as it passes ``max_bytes`` (bytes; within one
    network read of the cap), whatever ``Content-Length`` says, or when it announces more: an
    endless or huge body raises :class:`~p2ploader.errors.ResponseTooLargeError` naming ``what``,
    the URL and the cap, without being read, and is not tried again (a cap is not a network
    failure). With ``byte_range``, nothing past the range is read either (an origin that ignores
    ``Range`` is read up to the range's end).
    """
    attempt = 1
    while True:
        try:
            return await _fetch_bytes_once(client, url, max_bytes=max_bytes, what=what, byte_range=byte_range)
        except _AttemptFailed as exc:
            failure = exc.described(held=0, attempt=attempt)
            decision = retry.after(failure, draw=_jitter_draw(retry, rng))
            if isinstance(decision, GiveUpFetch):
                raise _give_up_error(url, exc, failure) from exc
        await sleep(decision.delay)
        attempt = decision.attempt


def _give_up_error(url: str, failed: _AttemptFailed, failure: HttpAttemptFailure) -> P2PLoaderError:
    """The error a given-up small fetch raises: its status and detail, and the attempts made when
    they were used up (a transient failure is only given up then)."""
    used_up = f"after {failure.attempt} attempts" if failure.kind in TRANSIENT_FAILURES else ""
    if failed.status is None:
        return TransportError(url, f"{failed.reason} ({used_up})" if used_up else failed.reason)
    detail = ", ".join(part for part in (failed.detail, used_up) if part)
    return HttpStatusError(url, failed.status, detail)


async def _fetch_bytes_once(
    client: httpx.AsyncClient,
    url: str,
    *,
    max_bytes: int,
    what: str,
    byte_range: ByteRange | None,
) -> bytes:
    """One attempt of :func:`fetch_bytes`; raises :class:`_AttemptFailed` typed for the policy."""
    headers = {"Range": byte_range.http_range()} if byte_range else {}
    try:
        async with client.stream("GET", url, headers=headers) as response:
            status = response.status_code
            if status >= 400:
                kind = status_failure(status)
                assert kind is not None  # >= 400 is never usable
                raise _AttemptFailed(kind, f"HTTP {status}", status)
            data = await _read_capped(
                response, url, status, max_bytes=max_bytes, what=what, byte_range=byte_range
            )
    except httpx.HTTPError as exc:
        raise _map_httpx_error(exc) from exc
    if byte_range is not None:
        if status == 200:
            data = data[byte_range.offset : byte_range.end]
        if len(data) != byte_range.length:
            detail = f"expected {byte_range.length} bytes, got {len(data)}"
            raise _AttemptFailed(HttpFailureKind.WRONG_CONTENT_RANGE, detail, status, detail=detail)
    return data


_JITTER_SOURCE = random.Random()
"""Where retry jitter comes from when the caller gives no source: any process-wide draw spreads
a crowd of viewers, each in its own process or loader."""


def _jitter_draw(policy: FetchRetryPolicy, rng: random.Random | None) -> float:
    """A uniform draw in [0, 1) for ``policy``'s jitter, or 0 (nothing drawn) without jitter."""
    if not policy.jitter:
        return 0.0
    return (rng if rng is not None else _JITTER_SOURCE).random()


async def _read_capped(
    response: httpx.Response,
    url: str,
    status: int,
    *,
    max_bytes: int,
    what: str,
    byte_range: ByteRange | None,
) -> bytes:
    """The body, or as much of it as a byte range needs; never more than ``max_bytes``."""
    if byte_range is None:
        need = None
    else:  # the origin may ignore Range (200) and send the resource from its first byte
        need = byte_range.end if status == 200 else byte_range.length
        if need > max_bytes:
            raise ResponseTooLargeError(url, status, what=what, limit=max_bytes)
    length_header = response.headers.get("Content-Length", "")
    if (
        need is None
        and length_header.isdigit()
        and response.headers.get("Content-Encoding", "identity") == "identity"
        and int(length_header) > max_bytes
    ):
        raise ResponseTooLargeError(url, status, what=what, limit=max_bytes)
    return await read_body_capped(
        response, url, status, stop_at=need, cap=max_bytes, what=what, limit=max_bytes
    )


async def read_body_capped(
    response: httpx.Response,
    url: str,
    status: int,
    *,
    stop_at: int | None,
    cap: int,
    what: str,
    limit: int,
) -> bytes:
    """The bytes of a streamed ``response`` body: all of it, or its first ``stop_at`` bytes and
    perhaps a little more (reading stops at the network read that reaches them). Past ``cap``
    bytes read, :class:`~p2ploader.errors.ResponseTooLargeError` naming ``what`` and ``limit``
    (the cap the caller states: ``cap`` may include bytes read only to be skipped)."""
    chunks: list[bytes] = []
    received = 0
    async for chunk in response.aiter_bytes():
        chunks.append(chunk)
        received += len(chunk)
        if stop_at is not None and received >= stop_at:
            break
        if received > cap:
            raise ResponseTooLargeError(url, status, what=what, limit=limit)
    return b"".join(chunks)


class HttpExecutor:
    """Runs HTTP fetches as tasks; reports core events through ``report``. An urgent fetch (the
    player needs its segment soon) holds ``upload_hold`` while it runs: our uploads pause.

    ``retry_policy`` is the scheduler's (:attr:`~p2ploader.core.scheduler.Scheduler.fetch_retry_policy`:
    the config's ``http_retries`` and ``http_retry_backoff`` unless the download policy maps a
    setting of its own onto it). ``sleep`` waits its delays (seconds); a test may hand in one that
    records them. ``rng`` draws the delays' jitter (``http_retry_jitter``; a process-wide source
    by default)."""

    def __init__(
        self,
        client: httpx.AsyncClient,
        report: Callable[[ev.Event], None],
        *,
        retry_policy: FetchRetryPolicy,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        rng: random.Random | None = None,
        upload_hold: UploadHold | None = None,
    ) -> None:
        self._client = client
        self._upload_hold = upload_hold
        self._report = report
        self._sleep = sleep
        self._rng = rng
        self._retry_policy = retry_policy
        self._tasks: dict[int, asyncio.Task[None]] = {}

    @property
    def active(self) -> int:
        return len(self._tasks)

    def start(self, action: StartHttpFetch) -> None:
        loop = asyncio.get_running_loop()
        task = loop.create_task(self._run(action), name=f"http-fetch-{action.request_id}")
        self._tasks[action.request_id] = task
        hold = self._upload_hold if action.urgent else None
        if hold is not None:
            hold.hold(self._hold_key(action.request_id), now=loop.time())
        task.add_done_callback(functools.partial(self._forget_task, action.request_id, hold))

    def _hold_key(self, request_id: int) -> tuple[str, int, int]:
        """The upload hold's key of one of our fetches (the hold is shared by the viewer's swarms,
        whose executors number their requests each from 1)."""
        return ("http", id(self), request_id)

    def _forget_task(self, request_id: int, hold: UploadHold | None, task: asyncio.Task[None]) -> None:
        if hold is not None:  # done, failed or cancelled: our uploads go on
            hold.release(self._hold_key(request_id))
        if self._tasks.get(request_id) is task:
            del self._tasks[request_id]

    def abort(self, request_id: int) -> None:
        task = self._tasks.pop(request_id, None)
        if task is not None:
            task.cancel()
        if self._upload_hold is not None:  # at once, not when the cancelled task gets to end
            self._upload_hold.release(self._hold_key(request_id))

    async def aclose(self) -> None:
        tasks = list(self._tasks.values())
        self._tasks.clear()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _run(self, action: StartHttpFetch) -> None:
        rid = action.request_id
        progress = _Progress(delivered=action.resume_from)  # segment bytes the scheduler holds
        attempt = 1
        while True:
            try:
                await self._attempt(action, progress)
            except _AttemptFailed as exc:
                failure = exc.described(held=progress.delivered, attempt=attempt)
            except Exception as exc:  # typed as unexpected: the policy does not retry it
                logger.exception("HTTP fetch of %s failed unexpectedly", action.segment.url)
                failure = HttpAttemptFailure(
                    kind=HttpFailureKind.UNEXPECTED,
                    reason=f"unexpected {type(exc).__name__}: {exc}",
                    held=progress.delivered,
                    attempt=attempt,
                )
            else:
                self._report(ev.HttpFetchCompleted(request_id=rid))
                return
            decision = self._retry_policy.after(failure, draw=_jitter_draw(self._retry_policy, self._rng))
            if isinstance(decision, GiveUpFetch):
                self._report(decision.event(rid))
                return
            await self._sleep(decision.delay)
            progress.delivered, attempt = decision.resume_from, decision.attempt

    async def _attempt(self, action: StartHttpFetch, progress: _Progress) -> None:
        """One GET from byte ``progress.delivered``. ``progress`` counts the segment bytes held,
        across attempts. Raises :class:`_AttemptFailed` typed for the core's retry policy."""
        delivered = progress.delivered
        segment = action.segment
        rid = action.request_id
        headers = {"Accept-Encoding": "identity"}
        range_value = range_header(segment, delivered)
        if range_value is not None:
            headers["Range"] = range_value
        try:
            async with self._client.stream("GET", segment.url, headers=headers) as response:
                status = response.status_code
                kind = status_failure(status)
                if kind is not None:
                    raise _AttemptFailed(kind, f"HTTP {status}", status)
                plan = plan_body(
                    segment,
                    held=delivered,
                    status=status,
                    content_range=response.headers.get("Content-Range"),
                    content_length=response.headers.get("Content-Length"),
                    content_encoding=response.headers.get("Content-Encoding"),
                )
                if isinstance(plan, UnusableResponse):
                    raise _AttemptFailed(plan.kind, plan.reason, status)
                skip, body_start, expected = plan.skip, plan.offset, plan.size
                delivered = progress.delivered = body_start
                self._report(ev.HttpResponseStarted(request_id=rid, offset=body_start, total_bytes=expected))
                async for chunk in response.aiter_bytes():
                    if skip:
                        cut = min(skip, len(chunk))
                        chunk, skip = chunk[cut:], skip - cut
                    if expected is not None:
                        chunk = chunk[: max(0, expected - delivered)]
                    if chunk:
                        delivered += len(chunk)
                        progress.delivered = delivered
                        self._report(ev.HttpChunkReceived(request_id=rid, data=chunk))
                    if expected is not None and delivered >= expected:
                        break
                if expected is not None and delivered < expected:
                    raise _AttemptFailed(
                        HttpFailureKind.TRUNCATED_BODY, f"body truncated at {delivered} of {expected} bytes"
                    )
        except httpx.HTTPError as exc:
            raise _map_httpx_error(exc) from exc
