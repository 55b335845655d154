"""Where is the player? An estimate made only from the segments it asks the proxy for (sans-IO).

A player behind the proxy never tells us its position; it only fetches segments, usually some way
ahead of what it shows. The loader, though, ranks every download by its distance from the playhead
(HTTP for the segments needed soon, peers for the ones further ahead), so the proxy has to report
something. :class:`PlayheadEstimator` combines two rules and one safety clamp:

1. **A real-time player.** A *run* starts at the first segment requested (at start-up, after a seek);
   from the moment that segment was delivered the playhead advances in real time, but never past the
   end of the contiguous media delivered since the run started (a player cannot show what it has
   not received; standing there while it waits for a segment is a stall).
2. **A bounded look-ahead.** The estimate is never earlier than the ``floor`` the caller gave with the
   newest request of the run: the proxy passes the start of the segment ``lookahead`` segments before
   the requested one. With the default look-ahead (the loader's ``required_segments_priority``) every
   segment a player asks for is *required*, so it is fetched at once (over HTTP unless a peer already
   delivered it) and the player is never held back; the segments after it are the loader's P2P
   prefetch window. A larger look-ahead lets requested segments wait for peers too, at the cost of
   slower responses (and, for players that measure download speed, lower renditions).
3. **Never past a waiting request.** The estimate never passes the start of a segment a request is
   still waiting for: the loader gives up on segments the playhead has passed.

``EXT-X-GAP`` segments count as delivered (:meth:`PlayheadEstimator.gap`): a player skips them
without a request, so the playhead moves through them.

A request that starts before the estimate (the player went back) or well after everything requested
so far (the player jumped ahead) starts a new run. Times are seconds on the caller's clock (``now``),
positions seconds on the loader's playlist timeline.
"""

from __future__ import annotations

import attrs

__all__ = ["PlayheadEstimator"]

_EPSILON = 1e-3  # seconds: segment boundaries computed by different sums may differ by rounding
_MAX_ISLANDS = 256


@attrs.define(kw_only=True)
class _Run:
    anchor: float
    position: float
    last: float  # when ``position`` was last advanced
    playing: bool = False
    contiguous_end: float  # end of the media delivered contiguously from ``anchor``
    islands: dict[float, float] = attrs.Factory(dict)  # delivered beyond a gap: start -> end
    front_start: float  # start of the furthest segment requested in this run
    front_end: float
    floor: float  # the caller's floor for that request


class PlayheadEstimator:
    """The estimated playhead of the player behind the proxy; see the module docstring."""

    def __init__(self) -> None:
        self._run: _Run | None = None
        self._pending: dict[int, tuple[float, float]] = {}
        self._next_ticket = 0

    @property
    def started(self) -> bool:
        """Whether any segment was requested yet (before that there is no estimate)."""
        return self._run is not None

    def requested(self, start: float, end: float, *, floor: float, now: float) -> int:
        """The player asked for the segment ``[start, end)``. ``floor`` (<= ``start``) is the earliest
        the estimate may be while this is the newest request. Returns a ticket for :meth:`finished`."""
        floor = min(floor, start)
        run = self._run
        if run is None or self._jumped(run, start, end, now=now):
            run = self._run = _Run(
                anchor=start,
                position=start,
                last=now,
                contiguous_end=start,
                front_start=start,
                front_end=end,
                floor=floor,
            )
        elif start >= run.front_start:
            run.front_start, run.front_end = start, max(end, run.front_end)
            run.floor = max(run.floor, floor)
        ticket = self._next_ticket
        self._next_ticket += 1
        self._pending[ticket] = (start, end)
        return ticket

    def finished(self, ticket: int, *, delivered: bool, now: float) -> None:
        """The request ``ticket`` ended: the segment was delivered, or the request failed."""
        span = self._pending.pop(ticket, None)
        run = self._run
        if span is None or run is None or not delivered:
            return
        self._advance(run, now)
        self._delivered(run, *span, now=now)

    def gap(self, start: float, end: float, *, now: float) -> None:
        """The segment ``[start, end)`` is an ``EXT-X-GAP``: a player skips it without asking, so
        the playhead moves through it as through delivered media (and does not stop at its start)."""
        run = self._run
        if run is None:
            return
        self._advance(run, now)
        self._delivered(run, start, end, now=now)

    def _delivered(self, run: _Run, start: float, end: float, *, now: float) -> None:
        if end <= run.anchor + _EPSILON or start < run.anchor - _EPSILON:
            return
        if start <= run.contiguous_end + _EPSILON:
            run.contiguous_end = max(run.contiguous_end, end)
            self._absorb_islands(run)
        else:
            run.islands[start] = max(end, run.islands.get(start, end))
            while len(run.islands) > _MAX_ISLANDS:
                del run.islands[max(run.islands)]
        if not run.playing and run.contiguous_end > run.anchor:
            run.playing = True
            run.last = now

    def position(self, now: float) -> float | None:
        """The estimated playhead, or None before the first request."""
        run = self._run
        if run is None:
            return None
        self._advance(run, now)
        estimate = max(run.position, run.floor)
        if self._pending:
            estimate = min(estimate, min(start for start, _ in self._pending.values()))
        return estimate

    def stalled(self, now: float) -> bool:
        """Whether the modelled player is waiting for a segment it has reached (a stall)."""
        run = self._run
        if run is None or not run.playing:
            return False
        self._advance(run, now)
        if run.position < run.contiguous_end - _EPSILON:
            return False
        return any(start <= run.contiguous_end + _EPSILON for start, _ in self._pending.values())

    # ------------------------------------------------------------------ internals

    def _jumped(self, run: _Run, start: float, end: float, *, now: float) -> bool:
        current = self.position(now)
        if current is not None and start < current - _EPSILON:
            return True  # went back before the playhead (a seek back, or a restart)
        reach = max(run.front_end, run.contiguous_end)
        return start > reach + 2 * max(end - start, 1.0)  # jumped well ahead of everything asked

    @staticmethod
    def _advance(run: _Run, now: float) -> None:
        if run.playing and now > run.last:
            run.position = min(run.position + (now - run.last), run.contiguous_end)
        run.last = max(run.last, now)

    @staticmethod
    def _absorb_islands(run: _Run) -> None:
        while True:
            joined = [s for s in run.islands if s <= run.contiguous_end + _EPSILON]
            if not joined:
                return
            for start in joined:
                run.contiguous_end = max(run.contiguous_end, run.islands.pop(start))
