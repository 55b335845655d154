"""A sans-IO model of a player's buffer: startup, real-time consumption, stalls and rebuffering.

Times are seconds on the caller's clock (``now``), positions seconds on the playlist's timeline.
The model starts playing once ``startup_buffer`` seconds are buffered ahead of the position (or the
stream ended), consumes media in real time, and stalls when the position reaches the end of the
buffer; it resumes once ``startup_buffer`` seconds are buffered again. Segments are appended in play
order; a segment that starts after the buffer's end (a live window that moved on) makes playback
jump to it, as players do.
"""

from __future__ import annotations

from typing import Literal

import attrs

__all__ = ["PlaybackModel", "PlaybackReport"]

State = Literal["starting", "playing", "stalled", "ended"]


@attrs.frozen(kw_only=True)
class PlaybackReport:
    """What a viewer experienced. Times in seconds."""

    startup_time: float | None
    """From the start of the session to the first frame (None: never started)."""
    stalls: int
    rebuffer_time: float
    played: float
    position: float
    state: State


class PlaybackModel:
    def __init__(self, *, start_position: float, now: float, startup_buffer: float = 2.0) -> None:
        if startup_buffer < 0:
            raise ValueError("startup_buffer must be >= 0")
        self.startup_buffer = startup_buffer
        self.position = start_position
        self.buffered_end = start_position
        self.state: State = "starting"
        self.stalls = 0
        self.rebuffer_time = 0.0
        self.played = 0.0
        self.startup_time: float | None = None
        self._session_start = now
        self._last = now
        self._input_ended = False

    def buffer_ahead(self, *, now: float) -> float:
        self.update(now=now)
        return max(0.0, self.buffered_end - self.position)

    def add_segment(self, start: float, duration: float, *, now: float) -> None:
        """A segment starting at ``start`` seconds was handed to the player."""
        self.update(now=now)
        if start > self.buffered_end + 0.001:
            # A gap: the player skips to the new segment (a live window that moved on).
            if self.buffered_end <= self.position or self.state != "playing":
                self.position = start
            self.buffered_end = start
        self.buffered_end = max(self.buffered_end, start + duration)
        self._maybe_start(now)

    def end_of_stream(self, *, now: float) -> None:
        """No more segments will come."""
        self.update(now=now)
        self._input_ended = True
        self._maybe_start(now)

    def update(self, *, now: float) -> State:
        """Advance to ``now``."""
        dt = max(0.0, now - self._last)
        self._last = now
        if self.state == "playing":
            room = self.buffered_end - self.position
            if dt < room:
                self.position += dt
                self.played += dt
            else:
                self.position = self.buffered_end
                self.played += room
                if self._input_ended:
                    self.state = "ended"
                else:
                    self.state = "stalled"
                    self.stalls += 1
                    self.rebuffer_time += dt - room
        elif self.state == "stalled":
            self.rebuffer_time += dt
        return self.state

    def _maybe_start(self, now: float) -> None:
        if self.state not in ("starting", "stalled"):
            return
        ahead = self.buffered_end - self.position
        if ahead >= self.startup_buffer or (self._input_ended and ahead > 0):
            if self.startup_time is None:
                self.startup_time = now - self._session_start
            self.state = "playing"
        elif self._input_ended and ahead <= 0:
            self.state = "ended"

    def report(self, *, now: float) -> PlaybackReport:
        self.update(now=now)
        return PlaybackReport(
            startup_time=self.startup_time,
            stalls=self.stalls,
            rebuffer_time=self.rebuffer_time,
            played=self.played,
            position=self.position,
            state=self.state,
        )
