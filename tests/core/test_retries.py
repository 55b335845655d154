"""The core's one HTTP retry policy (p2ploader.core.retries): within one fetch, which failed attempt
is tried again, after how many seconds and from which byte, or given up with which reason
(FetchRetryPolicy, the executor only performs it); between fetches of a segment the player waits for,
when a failed fetch is tried again and when the wait ends with SegmentUnavailable (HttpRetries). Time
is an argument or driven by the harness: nothing sleeps."""

from __future__ import annotations

import pytest

from p2ploader.config import LoaderConfig
from p2ploader.core import actions as act
from p2ploader.core import events as ev
from p2ploader.core import notifications as nt
from p2ploader.core.http_fetch import range_header, status_failure
from p2ploader.core.policies import DownloadPolicy, SchedulingContext
from p2ploader.core.retries import (
    DEFAULT_HTTP_ATTEMPTS,
    TRANSIENT_FAILURES,
    FetchRetryPolicy,
    GiveUpFetch,
    HttpAttemptFailure,
    HttpFailureKind,
    HttpRetries,
    RetryAttempt,
    backoff_delay,
)
from p2ploader.core.segments import ByteRange, Segment, SegmentId
from p2ploader.errors import UsageError
from p2ploader.testing.harness import SEGMENT_SIZE, Harness, sid

QUIET = LoaderConfig().evolve(http_download_probability=0.0)


def fail(h: Harness, n: int, status: int | None = 503) -> None:
    reason = f"HTTP {status}" if status is not None else "connection reset"
    h.send(ev.HttpFetchFailed(request_id=h.http_request_for(n), reason=reason, status=status))


def fetches_of(h: Harness, n: int) -> int:
    return sum(1 for start in h.http_starts() if start.segment.id == sid(n))


def unavailable(h: Harness) -> list[nt.SegmentUnavailable]:
    return h.of_type(nt.SegmentUnavailable)


# ---------------------------------------------------------------- within one fetch

Kind = HttpFailureKind
TRANSIENT = [Kind.CONNECT_ERROR, Kind.TIMEOUT, Kind.NETWORK_ERROR, Kind.TRUNCATED_BODY, Kind.SERVER_ERROR]
PERMANENT = [Kind.UNUSABLE_STATUS, Kind.WRONG_CONTENT_RANGE, Kind.UNEXPECTED]


def failure(
    kind: HttpFailureKind, *, attempt: int = 1, held: int = 0, status: int | None = None
) -> HttpAttemptFailure:
    return HttpAttemptFailure(kind=kind, reason=f"{kind} reason", status=status, held=held, attempt=attempt)


def test_the_shipped_defaults_three_attempts_half_a_second_then_one_second() -> None:
    policy = FetchRetryPolicy.from_config(LoaderConfig())
    assert (policy.retries, policy.backoff, policy.attempts) == (2, 0.5, 3)
    first = policy.after(HttpAttemptFailure(kind=Kind.SERVER_ERROR, reason="HTTP 503", status=503))
    assert first == RetryAttempt(delay=0.5, resume_from=0, attempt=2)
    second = policy.after(
        HttpAttemptFailure(kind=Kind.SERVER_ERROR, reason="HTTP 502", status=502, attempt=2)
    )
    assert second == RetryAttempt(delay=1.0, resume_from=0, attempt=3)
    third = policy.after(HttpAttemptFailure(kind=Kind.SERVER_ERROR, reason="HTTP 500", status=500, attempt=3))
    assert third == GiveUpFetch(reason="HTTP 500 (after 3 attempts)", status=500)


def test_the_failure_kinds_split_into_transient_and_permanent() -> None:
    assert set(TRANSIENT) | set(PERMANENT) == set(HttpFailureKind)  # every kind is decided below
    assert frozenset(TRANSIENT) == TRANSIENT_FAILURES


@pytest.mark.parametrize("kind", TRANSIENT)
def test_every_transient_kind_is_retried_with_backoff_until_the_attempts_are_used_up(
    kind: HttpFailureKind,
) -> None:
    policy = FetchRetryPolicy(retries=3, backoff=0.25)
    delays = []
    for attempt in (1, 2, 3):
        decision = policy.after(failure(kind, attempt=attempt))
        assert isinstance(decision, RetryAttempt) and decision.attempt == attempt + 1
        delays.append(decision.delay)
    assert delays == [0.25, 0.5, 1.0]
    status = 503 if kind is Kind.SERVER_ERROR else None
    assert policy.after(failure(kind, attempt=4, status=status)) == GiveUpFetch(
        reason=f"{kind} reason (after 4 attempts)", status=status
    )


@pytest.mark.parametrize("kind", PERMANENT)
def test_every_permanent_kind_gives_up_at_once_with_its_own_reason(kind: HttpFailureKind) -> None:
    status = {Kind.UNUSABLE_STATUS: 404, Kind.WRONG_CONTENT_RANGE: 206}.get(kind)
    decision = FetchRetryPolicy(retries=5, backoff=0.5).after(failure(kind, held=700, status=status))
    # Only an unusable answer is final for the segment too: a wrong Content-Range or an
    # unforeseen error may not come again on the next fetch, which starts afresh.
    permanent = kind is Kind.UNUSABLE_STATUS
    assert decision == GiveUpFetch(reason=f"{kind} reason", status=status, permanent=permanent)


def test_an_exhausted_transient_failure_is_not_permanent() -> None:
    decision = FetchRetryPolicy(retries=0, backoff=0.5).after(failure(Kind.SERVER_ERROR, status=503))
    assert isinstance(decision, GiveUpFetch) and not decision.permanent


@pytest.mark.parametrize(
    ("status", "kind"),
    [
        (200, None),
        (206, None),
        (500, Kind.SERVER_ERROR),
        (503, Kind.SERVER_ERROR),
        (599, Kind.SERVER_ERROR),
        (400, Kind.UNUSABLE_STATUS),
        (404, Kind.UNUSABLE_STATUS),
        (416, Kind.UNUSABLE_STATUS),
        (204, Kind.UNUSABLE_STATUS),  # no body
        (304, Kind.UNUSABLE_STATUS),  # a redirect not followed
    ],
)
def test_statuses_are_classified_5xx_transient_4xx_and_other_unusable_permanent(
    status: int, kind: HttpFailureKind | None
) -> None:
    assert status_failure(status) == kind
    if kind is not None:
        decision = FetchRetryPolicy(retries=2, backoff=0.5).after(failure(kind, status=status))
        assert isinstance(decision, RetryAttempt) == (status >= 500)


def test_zero_retries_gives_up_after_the_first_attempt_and_zero_backoff_retries_at_once() -> None:
    assert FetchRetryPolicy(retries=0, backoff=0.5).after(failure(Kind.TIMEOUT)) == GiveUpFetch(
        reason="timeout reason (after 1 attempts)", status=None
    )
    assert FetchRetryPolicy(retries=1, backoff=0.0).after(failure(Kind.TIMEOUT)) == RetryAttempt(
        delay=0.0, resume_from=0, attempt=2
    )


def test_a_retry_resumes_from_the_bytes_held_and_the_range_asks_for_the_rest() -> None:
    policy = FetchRetryPolicy.from_config(LoaderConfig())
    whole = Segment(id=SegmentId("v0", 1), url="http://origin.test/1.ts", duration=2.0)
    ranged = Segment(
        id=SegmentId("v0", 1),
        url="http://origin.test/all.ts",
        duration=2.0,
        byte_range=ByteRange(offset=500, length=1000),
    )
    # Nothing held: the whole resource again, no Range (a whole-resource segment).
    decision = policy.after(failure(Kind.CONNECT_ERROR, held=0))
    assert isinstance(decision, RetryAttempt) and decision.resume_from == 0
    assert range_header(whole, decision.resume_from) is None
    assert range_header(ranged, decision.resume_from) == "bytes=500-1499"
    # 700 bytes held (a truncated body, or peer bytes the fetch continued): from byte 700 on.
    decision = policy.after(failure(Kind.TRUNCATED_BODY, held=700, attempt=2))
    assert decision == RetryAttempt(delay=1.0, resume_from=700, attempt=3)
    assert range_header(whole, 700) == "bytes=700-"
    assert range_header(ranged, 700) == "bytes=1200-1499"
    with pytest.raises(UsageError, match="held must be >= 0 bytes"):
        range_header(whole, -1)


def test_bad_descriptions_and_policies_are_usage_errors() -> None:
    with pytest.raises(UsageError, match="held must be >= 0 bytes, not -1"):
        HttpAttemptFailure(kind=Kind.TIMEOUT, reason="t", held=-1)
    with pytest.raises(UsageError, match="attempt must be >= 1, not 0"):
        HttpAttemptFailure(kind=Kind.TIMEOUT, reason="t", attempt=0)
    with pytest.raises(UsageError, match="retries must be >= 0, not -1"):
        FetchRetryPolicy(retries=-1, backoff=0.5)
    with pytest.raises(UsageError, match="backoff must be >= 0 seconds"):
        FetchRetryPolicy(retries=1, backoff=-0.5)


# ---------------------------------------------------------------- between fetches: the policy alone


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
    # The shipped settings: 0.5 s doubled, each delay shortened at random by up to half of it.
    h = Harness(QUIET)
    assert h.config.http_retry_backoff == 0.5 and h.config.http_failed_segment_timeout == 10.0
    assert h.config.http_retry_jitter == 0.5
    h.play_at(0)
    h.request(0)
    fail(h, 0)
    assert 0 not in h.http_loading() and unavailable(h) == []
    h.advance(0.24)
    assert 0 not in h.http_loading()
    h.advance(0.27)  # within 0.25-0.5 s of the failure (not http_failed_segment_timeout's 10 s)
    assert 0 in h.http_loading() and fetches_of(h, 0) == 2
    fail(h, 0)
    h.advance(0.49)
    assert 0 not in h.http_loading()
    h.advance(0.52)  # doubled: within 0.5-1 s
    assert 0 in h.http_loading() and fetches_of(h, 0) == 3
    fail(h, 0)  # the third failed fetch: DEFAULT_HTTP_ATTEMPTS
    assert unavailable(h) == [nt.SegmentUnavailable(segment_id=sid(0), reason="HTTP 503")]
    failures = h.of_type(nt.SegmentLoadFailed)
    assert len(failures) == 3 and all(f.source == "http" for f in failures)
    h.advance(5.0)  # given up: nothing fetches it for the player (the prefetch timeout holds it)
    assert fetches_of(h, 0) == 3 and h.ready() == []


def test_without_jitter_a_waited_segment_is_fetched_again_exactly_after_the_backoff() -> None:
    h = Harness(QUIET.evolve(http_retry_jitter=0.0))
    h.play_at(0)
    h.request(0)
    fail(h, 0)
    h.advance(0.49)
    assert 0 not in h.http_loading()
    h.advance(0.02)
    assert 0 in h.http_loading() and fetches_of(h, 0) == 2
    fail(h, 0)
    h.advance(0.99)
    assert 0 not in h.http_loading()
    h.advance(0.02)
    assert 0 in h.http_loading() and fetches_of(h, 0) == 3


def test_jitter_spreads_the_retries_of_viewers_that_failed_together() -> None:
    # Twenty schedulers (viewers) whose fetch of one segment failed at the same instant come back
    # at twenty different moments, all within the later half of the back-off.
    retry_times = []
    for seed in range(20):
        h = Harness(QUIET, seed=seed)
        h.play_at(0)
        h.request(0)
        fail(h, 0)
        for step in range(1, 51):
            h.advance(0.01)
            if 0 in h.http_loading():
                retry_times.append(step * 0.01)
                break
    assert len(retry_times) == 20
    assert all(0.25 - 1e-9 <= t <= 0.5 + 1e-9 for t in retry_times)
    assert len({round(t, 2) for t in retry_times}) >= 8


def test_backoff_jitter_shortens_each_delay_by_at_most_its_fraction() -> None:
    assert backoff_delay(0.5, 1) == 0.5
    assert backoff_delay(0.5, 2, jitter=0.5, draw=0.0) == 1.0
    assert backoff_delay(0.5, 2, jitter=0.5, draw=0.5) == 0.75
    assert backoff_delay(0.5, 1, jitter=1.0, draw=0.999) == pytest.approx(0.0005)
    policy = FetchRetryPolicy(retries=2, backoff=0.5, jitter=0.5)
    decision = policy.after(failure(HttpFailureKind.SERVER_ERROR, attempt=2), draw=0.5)
    assert isinstance(decision, RetryAttempt) and decision.delay == 0.75
    assert FetchRetryPolicy.from_config(LoaderConfig()).jitter == 0.5
    for bad in (-0.1, 1.1):
        with pytest.raises(UsageError, match="jitter"):
            FetchRetryPolicy(retries=1, backoff=0.5, jitter=bad)
        with pytest.raises(UsageError, match="jitter"):
            HttpRetries(backoff=0.5, jitter=bad)
    with pytest.raises(UsageError, match="draw"):
        backoff_delay(0.5, 1, jitter=0.5, draw=1.0)


def test_a_4xx_ends_the_wait_at_once_with_the_reason() -> None:
    h = Harness(QUIET)
    h.play_at(0)
    h.request(0)
    fail(h, 0, status=404)
    assert unavailable(h) == [nt.SegmentUnavailable(segment_id=sid(0), reason="HTTP 404")]
    h.advance(5.0)
    assert fetches_of(h, 0) == 1


@pytest.mark.parametrize("status", [204, 304])
def test_an_unusable_answer_that_is_not_a_4xx_ends_the_wait_at_once(status: int) -> None:
    # A 204 or an unfollowed redirect would come again: the executor reports it permanent
    # (FetchRetryPolicy's verdict), and the player is not kept waiting for more fetches.
    h = Harness(QUIET)
    h.play_at(0)
    h.request(0)
    rid = h.http_request_for(0)
    h.send(ev.HttpFetchFailed(request_id=rid, reason=f"HTTP {status}", status=status, permanent=True))
    assert unavailable(h) == [nt.SegmentUnavailable(segment_id=sid(0), reason=f"HTTP {status}")]
    h.advance(5.0)
    assert fetches_of(h, 0) == 1


def test_a_failure_not_marked_permanent_is_fetched_again() -> None:
    # The same status without the verdict (the default of HttpFetchFailed): retried as before.
    h = Harness(QUIET)
    h.play_at(0)
    h.request(0)
    h.send(ev.HttpFetchFailed(request_id=h.http_request_for(0), reason="HTTP 204", status=204))
    assert unavailable(h) == []
    h.advance(0.51)
    assert fetches_of(h, 0) == 2


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


# ---------------------------------------------------------------- a Range continuation after peer bytes


class _Idle(DownloadPolicy):
    """Starts nothing by itself: the test starts the downloads."""

    name = "test-idle-retries"

    def schedule(self, ctx: SchedulingContext, *, now: float) -> None:
        pass


def _continuing_peer_bytes() -> tuple[Harness, act.StartHttpFetch]:
    """Peer A sent the first 600 bytes of segment 3, then stalled; HTTP continues from byte 600."""
    h = Harness(policy=_Idle(LoaderConfig()), validate_p2p=True, http_download_ranges=True)
    h.play_at(0)
    h.request(0)
    h.connect("A", loaded=[3])
    ctx = h.scheduler._context
    ctx.start_p2p(sid(3), "A", now=h.now)
    h.send(ev.PlaybackMoved(position=0.0))
    rid = h.p2p_request_for(3)
    h.send(ev.PeerResponseStarted(request_id=rid, total_bytes=SEGMENT_SIZE))
    h.send(ev.PeerChunkReceived(request_id=rid, data=b"x" * 600))
    h.advance(h.config.p2p_stall_timeout + 0.1)  # stalls: its bytes are kept
    ctx.start_http(sid(3), now=h.now, continue_p2p=True)
    h.send(ev.PlaybackMoved(position=0.0))
    (start,) = [a for a in h.http_starts() if a.segment.id == sid(3)]
    assert start.resume_from == 600
    return h, start


def _truncated_then_retried(h: Harness, start: act.StartHttpFetch) -> RetryAttempt:
    """The continuation's first attempt (from byte 600) is cut after 200 bytes; what the executor
    reports, and the core's decision."""
    assert range_header(start.segment, start.resume_from) == "bytes=600-"
    rid = start.request_id
    h.send(ev.HttpResponseStarted(request_id=rid, offset=600, total_bytes=SEGMENT_SIZE))
    h.send(ev.HttpChunkReceived(request_id=rid, data=b"h" * 200))
    cut = HttpAttemptFailure(
        kind=Kind.TRUNCATED_BODY, reason="body truncated at 800 of 1000 bytes", held=800, attempt=1
    )
    decision = FetchRetryPolicy.from_config(h.config).after(cut)
    assert decision == RetryAttempt(delay=0.5, resume_from=800, attempt=2)
    h.advance(decision.delay)
    return decision


def test_a_continuation_of_peer_bytes_retried_within_the_fetch_is_still_checked_as_p2p() -> None:
    h, start = _continuing_peer_bytes()
    decision = _truncated_then_retried(h, start)
    assert range_header(start.segment, decision.resume_from) == "bytes=800-"
    h.complete_http(start.request_id, offset=decision.resume_from)
    (check,) = h.of_type(act.ValidateSegment)
    assert check.method == "p2p" and check.data == b"x" * 600 + b"h" * 400
    assert [(r.peer_id, r.offset, r.length) for r in check.peer_ranges] == [("A", 0, 600)]


def test_a_continuation_retried_and_answered_whole_compares_the_peer_bytes_with_the_origins() -> None:
    # The retry's Range is ignored (200): the body starts at byte 0, the peer's prefix goes and is
    # compared with the origin's bytes; A's "x" bytes are not the origin's "h".
    h, start = _continuing_peer_bytes()
    _truncated_then_retried(h, start)
    h.complete_http(start.request_id, offset=0)
    assert not h.of_type(act.ValidateSegment), "no peer byte left in it"
    (failed,) = h.of_type(nt.IntegrityCheckFailed)
    assert (failed.peer_id, failed.check) == ("A", "origin-bytes")
