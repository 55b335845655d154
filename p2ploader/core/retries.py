"""The one HTTP retry policy, sans-IO (time is an argument, nothing sleeps).

It decides at two levels, with one back-off formula (:func:`backoff_delay`):

**Within one fetch** (:class:`FetchRetryPolicy`): the executor (:mod:`p2ploader.aio.http`, or the
simulator's modelled origin) describes each failed attempt as an :class:`HttpAttemptFailure`
(its :class:`HttpFailureKind`, the HTTP status if one came, the segment bytes held, the attempt's
number) and performs what the policy answers:

* connect errors, timeouts, network errors, truncated bodies and 5xx statuses are transient:
  tried again after ``http_retry_backoff`` seconds, doubled after each further failure (each
  delay shortened at random by up to ``http_retry_jitter`` of itself, so that a crowd does not
  come back at once), up to ``http_retries`` extra attempts (:class:`RetryAttempt`). The bytes
  held are kept: the next GET asks only for the rest with a ``Range`` request
  (:func:`~p2ploader.core.http_fetch.range_header`), from the first byte when none are held;
* a 4xx or another status the fetch cannot use, a wrong ``Content-Range`` and an unforeseen
  exception are permanent: the fetch ends at once (:class:`GiveUpFetch`), as it does once the
  attempts are used up (its reason then says how many).

A given-up fetch is one :class:`~p2ploader.core.events.HttpFetchFailed` carrying the
:class:`GiveUpFetch`'s reason and status. The small resources read whole (master and media
playlists, keys, init sections, I-frames: :func:`p2ploader.aio.http.fetch_bytes`) follow the
same decisions, each attempt from their first byte, and a give-up raises instead.

**Between fetches** of a segment the player explicitly asked for
(:class:`~p2ploader.core.events.SegmentRequested`; :class:`HttpRetries`, owned by the scheduler),
once a whole fetch failed:

* an unusable answer (a 4xx, a 204, an unfollowed 3xx: ``HttpFetchFailed.permanent``) is
  permanent: the segment is given up at once;
* after ``max_attempts`` failed fetches (the request's, :data:`DEFAULT_HTTP_ATTEMPTS` unless it
  says otherwise) it is given up;
* otherwise it is fetched again after ``http_retry_backoff`` seconds, doubled after each further
  failure of the same segment (0 retries at once).

Giving up is the scheduler's :class:`~p2ploader.core.notifications.SegmentUnavailable` with the
failure's reason: the player's wait ends with an error instead of a request fed back from outside.
A new explicit request of a segment (after a give-up, or while waiting) starts its count afresh.
Segments nobody waits for (prefetch) are not counted here: the download policy decides about them
(``http_failed_segment_timeout``).
"""

from __future__ import annotations

import enum
from typing import Final, TypeAlias

import attrs

from p2ploader.config import LoaderConfig
from p2ploader.core import events as ev
from p2ploader.core.events import DEFAULT_HTTP_ATTEMPTS
from p2ploader.core.segments import SegmentId
from p2ploader.errors import UsageError

__all__ = [
    "DEFAULT_HTTP_ATTEMPTS",
    "TRANSIENT_FAILURES",
    "FetchRetryDecision",
    "FetchRetryPolicy",
    "GiveUpFetch",
    "HttpAttemptFailure",
    "HttpFailureKind",
    "HttpRetries",
    "RetryAttempt",
    "backoff_delay",
]


def backoff_delay(backoff: float, failures: int, *, jitter: float = 0.0, draw: float = 0.0) -> float:
    """Seconds to wait after the ``failures``-th consecutive failure (1 = the first):
    ``backoff`` (``http_retry_backoff``) doubled for each failure before it, shortened by up to
    the fraction ``jitter`` (``http_retry_jitter``) of itself as ``draw`` (a uniform draw in
    [0, 1) from the caller's random source) says. The one back-off formula of HTTP: between the
    attempts within one fetch (:class:`FetchRetryPolicy`) and between the fetches of a waited-for
    segment (:class:`HttpRetries`).

    Why jitter: when an origin stumbles, every viewer's fetch fails at the same moment; without it
    they all come back at the same moments too (after ``backoff``, ``2 * backoff``, ...), a wave
    that can knock a recovering origin over again. With ``jitter=0.5`` the retries of a crowd
    spread evenly over the later half of each delay."""
    if not 0.0 <= jitter <= 1.0:
        raise UsageError(f"jitter must be in [0, 1], not {jitter}")
    if not 0.0 <= draw < 1.0:
        raise UsageError(f"draw must be in [0, 1), not {draw}")
    return backoff * 2.0 ** (failures - 1) * (1.0 - jitter * draw)


# ---------------------------------------------------------------- within one fetch


class HttpFailureKind(enum.StrEnum):
    """What went wrong in one attempt of an HTTP fetch, as the executor saw it."""

    CONNECT_ERROR = "connect-error"
    """No connection to the origin (refused, unreachable, TLS or DNS failure)."""
    TIMEOUT = "timeout"
    """A connect, read, write or pool timeout (``http_connect_timeout``, ``http_read_timeout``)."""
    NETWORK_ERROR = "network-error"
    """The connection broke or spoke broken HTTP after it was made (a reset, a protocol error)."""
    TRUNCATED_BODY = "truncated-body"
    """The body ended before the size the response announced."""
    SERVER_ERROR = "server-error"
    """A 5xx status."""
    UNUSABLE_STATUS = "unusable-status"
    """A 4xx, or any other status below 500 that is neither 200 nor 206 (204, an unfollowed 3xx)."""
    WRONG_CONTENT_RANGE = "wrong-content-range"
    """The response does not hold the bytes asked for: a ``Content-Range`` starting or ending
    elsewhere, or a whole resource shorter than the segment's byte range."""
    UNEXPECTED = "unexpected"
    """An exception nobody foresaw (a bug, or a library error of an unknown kind)."""


TRANSIENT_FAILURES: Final = frozenset(
    {
        HttpFailureKind.CONNECT_ERROR,
        HttpFailureKind.TIMEOUT,
        HttpFailureKind.NETWORK_ERROR,
        HttpFailureKind.TRUNCATED_BODY,
        HttpFailureKind.SERVER_ERROR,
    }
)
"""The failures worth another attempt within the same fetch; every other kind ends it at once
(asking again would get the same answer, or nothing says it would not)."""


@attrs.frozen(kw_only=True)
class HttpAttemptFailure:
    """One failed attempt of an HTTP fetch, typed by the executor from what it saw.

    ``reason`` is for humans (``"HTTP 503"``, ``"timeout (ReadTimeout)"``); ``status`` the HTTP
    status when a response came; ``held`` the segment bytes held when it failed (counted from the
    segment's first byte, peer bytes the fetch continues included); ``attempt`` the failed
    attempt's number within the fetch (1 = the first GET)."""

    kind: HttpFailureKind
    reason: str
    status: int | None = None
    held: int = 0
    attempt: int = 1

    def __attrs_post_init__(self) -> None:
        if self.held < 0:
            raise UsageError(f"held must be >= 0 bytes, not {self.held}")
        if self.attempt < 1:
            raise UsageError(f"attempt must be >= 1, not {self.attempt}")


@attrs.frozen(kw_only=True)
class RetryAttempt:
    """Try the fetch again: wait ``delay`` seconds, then GET attempt number ``attempt`` from byte
    ``resume_from`` of the segment (:func:`~p2ploader.core.http_fetch.range_header`; 0: from its
    first byte)."""

    delay: float
    resume_from: int
    attempt: int


@attrs.frozen(kw_only=True)
class GiveUpFetch:
    """End the fetch: report one :class:`~p2ploader.core.events.HttpFetchFailed` with this
    ``reason``, ``status`` and ``permanent``."""

    reason: str
    status: int | None
    permanent: bool = False
    """The answer itself says the resource is not there as asked (an unusable status: 4xx, 204,
    an unfollowed 3xx): fetching it again would get the same answer."""

    def event(self, request_id: int) -> ev.HttpFetchFailed:
        """The event that reports this give-up for the fetch ``request_id``."""
        return ev.HttpFetchFailed(
            request_id=request_id, reason=self.reason, status=self.status, permanent=self.permanent
        )


FetchRetryDecision: TypeAlias = RetryAttempt | GiveUpFetch


@attrs.frozen(kw_only=True)
class FetchRetryPolicy:
    """The decision after each failed attempt within one HTTP fetch.

    ``retries`` is the number of extra attempts after the first (``http_retries``), ``backoff``
    the seconds before the first of them (``http_retry_backoff``), doubled before each further
    one; ``jitter`` the fraction of each delay left to chance (``http_retry_jitter``, see
    :func:`backoff_delay`; 0: exact delays)."""

    retries: int
    backoff: float
    jitter: float = 0.0

    def __attrs_post_init__(self) -> None:
        if self.retries < 0:
            raise UsageError(f"retries must be >= 0, not {self.retries}")
        if self.backoff < 0:
            raise UsageError(f"backoff must be >= 0 seconds, not {self.backoff}")
        if not 0.0 <= self.jitter <= 1.0:
            raise UsageError(f"jitter must be in [0, 1], not {self.jitter}")

    @classmethod
    def from_config(cls, config: LoaderConfig) -> FetchRetryPolicy:
        """The policy of ``config``'s ``http_retries``, ``http_retry_backoff`` and
        ``http_retry_jitter``."""
        return cls(
            retries=config.http_retries,
            backoff=config.http_retry_backoff,
            jitter=config.http_retry_jitter,
        )

    @property
    def attempts(self) -> int:
        """GETs a fetch makes at most."""
        return self.retries + 1

    def after(self, failure: HttpAttemptFailure, *, draw: float = 0.0) -> FetchRetryDecision:
        """Retry or give up after ``failure``.

        A permanent kind gives up with the failure's own reason; a transient one is retried
        ``backoff_delay(backoff, attempt, jitter=jitter, draw=draw)`` seconds later from the bytes
        held (``draw``: the executor's uniform draw in [0, 1); the default 0 is the full delay),
        until the fetch's last attempt failed: then it gives up with
        ``"<reason> (after <n> attempts)"``."""
        if failure.kind not in TRANSIENT_FAILURES:
            return GiveUpFetch(
                reason=failure.reason,
                status=failure.status,
                permanent=failure.kind is HttpFailureKind.UNUSABLE_STATUS,
            )
        if failure.attempt >= self.attempts:
            return GiveUpFetch(
                reason=f"{failure.reason} (after {failure.attempt} attempts)", status=failure.status
            )
        return RetryAttempt(
            delay=backoff_delay(self.backoff, failure.attempt, jitter=self.jitter, draw=draw),
            resume_from=failure.held,
            attempt=failure.attempt + 1,
        )


# ---------------------------------------------------------------- between fetches


class HttpRetries:
    """Failed fetches per waited-for segment, and the verdict on each new failure.

    ``backoff`` is the delay in seconds before the first retry (``http_retry_backoff``),
    ``jitter`` the fraction of each delay left to chance (``http_retry_jitter``,
    :func:`backoff_delay`)."""

    def __init__(self, *, backoff: float, jitter: float = 0.0) -> None:
        if backoff < 0:
            raise UsageError(f"backoff must be >= 0 seconds, not {backoff}")
        if not 0.0 <= jitter <= 1.0:
            raise UsageError(f"jitter must be in [0, 1], not {jitter}")
        self.backoff = backoff
        self.jitter = jitter
        self._max_attempts: dict[SegmentId, int] = {}
        self._failures: dict[SegmentId, int] = {}

    def __len__(self) -> int:
        return len(self._max_attempts)

    def requested(self, segment_id: SegmentId, *, max_attempts: int = DEFAULT_HTTP_ATTEMPTS) -> None:
        """The player asked for ``segment_id``: count its failed fetches from zero."""
        if max_attempts < 1:
            raise UsageError(f"max_attempts must be >= 1, not {max_attempts}")
        self._max_attempts[segment_id] = max_attempts
        self._failures.pop(segment_id, None)

    def forget(self, segment_id: SegmentId) -> None:
        """Nobody waits for ``segment_id`` any more (delivered, cancelled, or unavailable)."""
        self._max_attempts.pop(segment_id, None)
        self._failures.pop(segment_id, None)

    def failures(self, segment_id: SegmentId) -> int:
        """Failed fetches of ``segment_id`` since it was last requested."""
        return self._failures.get(segment_id, 0)

    def failed(
        self,
        segment_id: SegmentId,
        *,
        status: int | None,
        now: float,
        permanent: bool = False,
        draw: float = 0.0,
    ) -> float | None:
        """A fetch of ``segment_id`` failed (``status``: the HTTP status, if one came;
        ``permanent``: the fetch's answer was unusable as such, see :class:`GiveUpFetch`). The time
        (seconds) to fetch it again, or ``None``: give it up. ``draw`` is the caller's uniform
        draw in [0, 1) for the jitter. A segment nobody waits for is never retried here
        (``None``, nothing counted)."""
        max_attempts = self._max_attempts.get(segment_id)
        if max_attempts is None:
            return None
        failures = self._failures[segment_id] = self._failures.get(segment_id, 0) + 1
        if permanent or (status is not None and 400 <= status < 500) or failures >= max_attempts:
            self.forget(segment_id)
            return None
        return now + backoff_delay(self.backoff, failures, jitter=self.jitter, draw=draw)
