"""The core's retry policy of segments the player waits for (p2ploader.core.retries): when a failed
HTTP fetch is tried again, after which delay, and when the wait ends with SegmentUnavailable. Time is
driven by the harness: nothing sleeps."""

from __future__ import annotations

import pytest

from p2ploader.config import LoaderConfig
from p2ploader.core import events as ev
from p2ploader.core import notifications as nt
from p2ploader.core.retries import DEFAULT_HTTP_ATTEMPTS, HttpRetries, backoff_delay
from p2ploader.errors import UsageError
from p2ploader.testing.harness import Harness, sid

QUIET = LoaderConfig().evolve(http_download_probability=0.0)


def fail(h: Harness, n: int, status: int | None = 503) -> None:
    reason = f"HTTP {status}" if status is not None else "connection reset"
    h.send(ev.HttpFetchFailed(request_id=h.http_request_for(n), reason=reason, status=status))


def fetches_of(h: Harness, n: int) -> int:
    return sum(1 for start in h.http_starts() if start.segment.id == sid(n))


def unavailable(h: Harness) -> list[nt.SegmentUnavailable]:
    return h.of_type(nt.SegmentUnavailable)


# ---------------------------------------------------------------- the policy alone


def test_one_backoff_formula_for_attempts_within_a_fetch_and_between_fetches() -> None:
    # The executor waits backoff_delay(b, k) before its attempt k + 1 (b, 2b, 4b: as it always did).
    assert [backoff_delay(0.5, k) for k in (1, 2, 3)] == [0.5, 1.0, 2.0]
    assert backoff_delay(0.0, 5) == 0.0


def test_retries_back_off_doubling_and_give_up_after_the_attempt_limit() -> None:
    retries = HttpRetries(backoff=0.5)
    retries.requested(sid(0), max_attempts=4)
    assert retries.failed(sid(0), status=503, now=10.0) == 10.5
    assert retries.failed(sid(0), status=None, now=20.0) == 21.0
    assert retries.failed(sid(0), status=500, now=30.0) == 32.0
    assert retries.failures(sid(0)) == 3
    assert retries.failed(sid(0), status=503, now=40.0) is None  # the fourth attempt failed
    assert len(retries) == 0 and retries.failures(sid(0)) == 0  # forgotten once given up


def test_a_4xx_is_given_up_at_once_and_unwaited_segments_are_not_counted() -> None:
    retries = HttpRetries(backoff=0.5)
    retries.requested(sid(0))
    assert retries.failed(sid(0), status=404, now=1.0) is None
    assert retries.failed(sid(1), status=503, now=1.0) is None  # nobody waits for it
    assert retries.failures(sid(1)) == 0 and len(retries) == 0


def test_a_new_request_counts_from_zero_and_bad_limits_are_refused() -> None:
    retries = HttpRetries(backoff=1.0)
    retries.requested(sid(0), max_attempts=2)
    assert retries.failed(sid(0), status=503, now=0.0) == 1.0
    retries.requested(sid(0), max_attempts=2)
    assert retries.failed(sid(0), status=503, now=5.0) == 6.0  # the first failure again
    with pytest.raises(UsageError, match="max_attempts must be >= 1, not 0"):
        retries.requested(sid(0), max_attempts=0)
    with pytest.raises(UsageError, match="backoff must be >= 0 seconds"):
        HttpRetries(backoff=-1.0)
    with pytest.raises(ValueError, match="max_attempts"):
        ev.SegmentRequested(segment_id=sid(0), max_attempts=0)
    assert ev.SegmentRequested(segment_id=sid(0)).max_attempts == DEFAULT_HTTP_ATTEMPTS == 3


# ---------------------------------------------------------------- in the scheduler


def test_a_waited_segment_is_fetched_again_after_the_default_backoff_then_given_up() -> None:
    h = Harness(QUIET)
    assert h.config.http_retry_backoff == 0.5 and h.config.http_failed_segment_timeout == 10.0
    h.play_at(0)
    h.request(0)
    fail(h, 0)
    assert 0 not in h.http_loading() and unavailable(h) == []
    h.advance(0.49)
    assert 0 not in h.http_loading()
    h.advance(0.02)  # 0.5 s after the failure (not http_failed_segment_timeout's 10 s)
    assert 0 in h.http_loading() and fetches_of(h, 0) == 2
    fail(h, 0)
    h.advance(0.99)
    assert 0 not in h.http_loading()
    h.advance(0.02)  # doubled: 1 s
    assert 0 in h.http_loading() and fetches_of(h, 0) == 3
    fail(h, 0)  # the third failed fetch: DEFAULT_HTTP_ATTEMPTS
    assert unavailable(h) == [nt.SegmentUnavailable(segment_id=sid(0), reason="HTTP 503")]
    failures = h.of_type(nt.SegmentLoadFailed)
    assert len(failures) == 3 and all(f.source == "http" for f in failures)
    h.advance(5.0)  # given up: nothing fetches it for the player (the prefetch timeout holds it)
    assert fetches_of(h, 0) == 3 and h.ready() == []


def test_a_4xx_ends_the_wait_at_once_with_the_reason() -> None:
    h = Harness(QUIET)
    h.play_at(0)
    h.request(0)
    fail(h, 0, status=404)
    assert unavailable(h) == [nt.SegmentUnavailable(segment_id=sid(0), reason="HTTP 404")]
    h.advance(5.0)
    assert fetches_of(h, 0) == 1


def test_the_requests_attempt_limit_and_a_zero_backoff_retrying_at_once() -> None:
    h = Harness(QUIET, http_retry_backoff=0.0)
    h.play_at(0)
    h.send(ev.SegmentRequested(segment_id=sid(0), max_attempts=2))
    fail(h, 0, status=None)
    assert 0 in h.http_loading() and fetches_of(h, 0) == 2  # no back-off: in the same pass
    fail(h, 0, status=None)
    assert [u.reason for u in unavailable(h)] == ["connection reset"]


def test_an_explicit_request_after_a_give_up_fetches_at_once_and_counts_afresh() -> None:
    h = Harness(QUIET)
    h.play_at(0)
    h.send(ev.SegmentRequested(segment_id=sid(0), max_attempts=1))
    fail(h, 0)
    assert len(unavailable(h)) == 1
    h.advance(1.0)
    assert 0 not in h.http_loading()  # still within http_failed_segment_timeout
    h.request(0)  # the player asks again: at once, three attempts this time
    assert 0 in h.http_loading()
    fail(h, 0)
    h.advance(0.5)
    fail(h, 0)
    h.advance(1.0)
    assert len(unavailable(h)) == 1 and 0 in h.http_loading()
    h.complete_http(h.http_request_for(0))
    assert [r.segment.id for r in h.ready()] == [sid(0)]
    assert h.scheduler._retries.failures(sid(0)) == 0 and len(h.scheduler._retries) == 0


def test_a_retry_that_succeeds_delivers_and_forgets_the_count() -> None:
    h = Harness(QUIET)
    h.play_at(0)
    h.request(0)
    fail(h, 0)
    h.advance(0.5)
    h.complete_http(h.http_request_for(0))
    assert [r.segment.id for r in h.ready()] == [sid(0)] and unavailable(h) == []
    assert len(h.scheduler._retries) == 0


def test_prefetched_and_cancelled_segments_are_not_given_up_by_the_retry_policy() -> None:
    h = Harness(QUIET)
    h.play_at(0)
    h.request(0)
    fail(h, 1)  # required (priority 1) but nobody waits for it
    h.send(ev.SegmentRequestCancelled(segment_id=sid(0)))
    assert len(h.scheduler._retries) == 0
    fail(h, 0)
    h.advance(5.0)
    assert unavailable(h) == [] and 0 not in h.http_loading() and 1 not in h.http_loading()
