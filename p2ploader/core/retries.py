"""The retry policy of segments the player waits for, sans-IO (time is an argument).

One fetch already retries transient failures itself (``http_retries`` times, see
:mod:`p2ploader.aio.http`); this module decides what happens once a whole fetch of a segment the
player explicitly asked for (:class:`~p2ploader.core.events.SegmentRequested`) failed:

* a 4xx status is permanent: the segment is given up at once;
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

from typing import Final

from p2ploader.core.segments import SegmentId
from p2ploader.errors import UsageError

__all__ = ["DEFAULT_HTTP_ATTEMPTS", "HttpRetries", "backoff_delay"]

DEFAULT_HTTP_ATTEMPTS: Final = 3
"""Failed HTTP fetches of a waited-for segment before it is given up, unless the request says."""


def backoff_delay(backoff: float, failures: int) -> float:
    """Seconds to wait after the ``failures``-th consecutive failure (1 = the first):
    ``backoff`` (``http_retry_backoff``) doubled for each failure before it. The one back-off
    formula of HTTP: between the attempts within one fetch (:mod:`p2ploader.aio.http`) and
    between the fetches of a waited-for segment (:class:`HttpRetries`)."""
    return backoff * 2.0 ** (failures - 1)


class HttpRetries:
    """Failed fetches per waited-for segment, and the verdict on each new failure.

    ``backoff`` is the delay in seconds before the first retry (``http_retry_backoff``)."""

    def __init__(self, *, backoff: float) -> None:
        if backoff < 0:
            raise UsageError(f"backoff must be >= 0 seconds, not {backoff}")
        self.backoff = backoff
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

    def failed(self, segment_id: SegmentId, *, status: int | None, now: float) -> float | None:
        """A fetch of ``segment_id`` failed (``status``: the HTTP status, if one came). The time
        (seconds) to fetch it again, or ``None``: give it up. A segment nobody waits for is never
        retried here (``None``, nothing counted)."""
        max_attempts = self._max_attempts.get(segment_id)
        if max_attempts is None:
            return None
        failures = self._failures[segment_id] = self._failures.get(segment_id, 0) + 1
        if (status is not None and 400 <= status < 500) or failures >= max_attempts:
            self.forget(segment_id)
            return None
        return now + backoff_delay(self.backoff, failures)
