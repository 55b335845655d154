"""A sans-IO model of a player: buffer, startup, real-time consumption, stalls, seeking, live edge, ABR.

Times are seconds on the caller's clock (``now``), positions seconds on the playlist's timeline.

:class:`PlaybackModel`
    The model starts playing once ``startup_buffer`` seconds are buffered ahead of the position (or
    the stream ended), consumes media in real time, and stalls when the position reaches the end of
    the buffer; it resumes once ``startup_buffer`` seconds are buffered again. Segments are appended
    in play order; a segment that starts after the buffer's end (a live window that moved on) makes
    playback jump to it, as players do. An ``EXT-X-GAP`` segment is fed with
    :meth:`PlaybackModel.add_gap`: it needs no bytes, and the playhead moves through it.
    :meth:`PlaybackModel.seek` empties the buffer, moves the
    position and waits for ``startup_buffer`` seconds again, in the ``"seeking"`` state: that wait
    is counted as a seek (``seeks``, ``seek_time``), never as a stall. For live streams the caller
    reports the live edge (:meth:`PlaybackModel.set_live_edge`) and the model reports how far
    behind it playback is (:attr:`PlaybackModel.live_edge_distance`). With several ``tracks``
    (video and a separate audio rendition) each track is buffered on its own and playback has
    what every track has: the buffer ends where the shortest track's does, so it stalls when
    either lacks data at the playhead.

:class:`AbrController`
    Chooses a rendition from the measured delivery throughput and the buffer level; see its
    docstring for the rule. It only decides: the player applies the choice (the headless player
    calls ``loader.select_rendition``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal

import attrs

__all__ = ["AbrController", "PlaybackModel", "PlaybackReport", "State"]

State = Literal["starting", "playing", "stalled", "seeking", "ended"]


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
    seeks: int = 0
    """Calls of :meth:`PlaybackModel.seek`."""
    seek_time: float = 0.0
    """Time spent waiting for the startup buffer after seeks (not counted in ``rebuffer_time``)."""
    buffer: float = 0.0
    """Seconds buffered ahead of the position."""
    live_edge_distance: float | None = None
    """Seconds between the position and the live edge (None: VOD, or no edge reported)."""
    gaps: int = 0
    """EXT-X-GAP segments skipped (:meth:`PlaybackModel.add_gap`)."""
    gap_time: float = 0.0
    """Seconds of EXT-X-GAP segments skipped (included in ``played``: the playhead moved through)."""


_CONTIGUOUS = 0.001  # seconds: a segment starting later than this after the buffer's end leaves a hole


class PlaybackModel:
    """See the module docstring. ``start_position`` (seconds on the playlist's timeline) may lie
    inside the first segment fed (an EXT-X-START with PRECISE=YES): playback starts there, and only
    the rest of that segment counts as buffered. ``tracks`` names the media fed separately (the
    variant's ``"main"``, and ``"audio"`` for a separate audio rendition): media plays only where
    every track has data."""

    def __init__(
        self,
        *,
        start_position: float,
        now: float,
        startup_buffer: float = 2.0,
        tracks: Sequence[str] = ("main",),
    ) -> None:
        if startup_buffer < 0:
            raise ValueError("startup_buffer must be >= 0")
        if not tracks:
            raise ValueError("a player has at least one track")
        self.startup_buffer = startup_buffer
        self.position = start_position
        self.buffered_end = start_position
        self.tracks = tuple(tracks)
        # Per track: where its contiguous buffered run starts and ends (seconds on the timeline).
        self._track_from = dict.fromkeys(self.tracks, start_position)
        self._track_end = dict.fromkeys(self.tracks, start_position)
        self.state: State = "starting"
        self.stalls = 0
        self.rebuffer_time = 0.0
        self.played = 0.0
        self.startup_time: float | None = None
        self.seeks = 0
        self.seek_time = 0.0
        self.gaps = 0
        """EXT-X-GAP segments skipped (:meth:`add_gap`)."""
        self.gap_time = 0.0
        """Seconds of EXT-X-GAP segments skipped."""
        self.live_edge: float | None = None
        """End of the newest segment of the live playlist (None: VOD or not reported)."""
        self._session_start = now
        self._last = now
        self._input_ended = False

    @property
    def buffer(self) -> float:
        """Seconds buffered ahead of the position, as of the last call (see :meth:`buffer_ahead`)."""
        return max(0.0, self.buffered_end - self.position)

    @property
    def live_edge_distance(self) -> float | None:
        """Seconds from the position to the live edge, as of the last call; None without an edge."""
        return None if self.live_edge is None else max(0.0, self.live_edge - self.position)

    def buffer_ahead(self, *, now: float) -> float:
        self.update(now=now)
        return self.buffer

    def track_buffer_ahead(self, track: str, *, now: float) -> float:
        """Seconds of ``track`` buffered ahead of the position (a player paces each track's
        downloads by its own buffer)."""
        self.update(now=now)
        return max(0.0, self._track_end[track] - self.position)

    def set_live_edge(self, edge: float | None, *, now: float) -> None:
        """The live playlist's newest segment ends at ``edge`` (None: the stream is VOD)."""
        self.update(now=now)
        self.live_edge = edge

    def add_track(self, track: str, *, now: float) -> None:
        """A track joins from the position on, with nothing buffered yet (the player switched to a
        variant with separate audio). What was buffered stays playable (it carried that media)."""
        self.update(now=now)
        if track not in self.tracks:
            self.tracks = (*self.tracks, track)
            self._track_from[track] = self._track_end[track] = self.position

    def remove_track(self, track: str, *, now: float) -> None:
        """A track leaves (the player switched to a variant that carries that media itself): the
        others alone decide what can play."""
        self.update(now=now)
        if track not in self.tracks or len(self.tracks) == 1:
            return
        self.tracks = tuple(t for t in self.tracks if t != track)
        del self._track_from[track], self._track_end[track]
        playable_from = max(self._track_from.values())
        playable_end = min(self._track_end.values())
        if playable_end > playable_from and playable_from <= self.buffered_end + _CONTIGUOUS:
            self.buffered_end = max(self.buffered_end, playable_end)
        self._maybe_start(now)

    def buffered_run(self, track: str = "main") -> tuple[float, float]:
        """``(start, end)`` seconds of ``track``'s contiguous buffered run: what was handed to the
        player since its last hole, seek or start."""
        return self._track_from[track], self._track_end[track]

    def add_segment(self, start: float, duration: float, *, now: float, track: str = "main") -> None:
        """A segment of ``track`` starting at ``start`` seconds was handed to the player."""
        self.update(now=now)
        if start > self._track_end[track] + _CONTIGUOUS:
            self._track_from[track] = start  # this track's data resumes after a hole
        self._track_end[track] = max(self._track_end[track], start + duration)
        playable_from = max(self._track_from.values())
        playable_end = min(self._track_end.values())
        if playable_end <= playable_from:
            return  # some track has nothing there yet
        if playable_from > self.buffered_end + _CONTIGUOUS:
            # A gap: the player skips to the new segment (a live window that moved on).
            if self.buffered_end <= self.position or self.state != "playing":
                self.position = playable_from
            self.buffered_end = playable_from
        self.buffered_end = max(self.buffered_end, playable_end)
        self._maybe_start(now)

    def add_gap(self, start: float, duration: float, *, now: float, track: str = "main") -> None:
        """An ``EXT-X-GAP`` segment (no media) of ``track`` from ``start`` for ``duration`` seconds
        reached the player. As hls.js does, the player skips it: the playhead moves through the gap
        as through buffered media, with no stall and no bytes to wait for. Counted in ``gaps`` and
        ``gap_time`` for the main track (a separate audio rendition's gaps fill its track alone)."""
        if track == "main":
            self.gaps += 1
            self.gap_time += duration
        self.add_segment(start, duration, now=now, track=track)

    def end_of_stream(self, *, now: float) -> None:
        """No more segments will come."""
        self.update(now=now)
        self._input_ended = True
        self._maybe_start(now)

    def seek(self, position: float, *, now: float) -> None:
        """Jump to ``position``: the buffer is emptied and playback restarts once ``startup_buffer``
        seconds are buffered from there (state ``"seeking"`` until then). The caller then feeds the
        segments from the one holding ``position`` on; segments of the old position must not be fed.
        A seek is not a stall: its wait counts in ``seek_time``, not ``rebuffer_time``."""
        self.update(now=now)
        self.seeks += 1
        self.position = position
        self.buffered_end = position
        self._track_from = dict.fromkeys(self.tracks, position)
        self._track_end = dict.fromkeys(self.tracks, position)
        self._input_ended = False
        self.state = "seeking"

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
        elif self.state == "seeking":
            self.seek_time += dt
        return self.state

    def _maybe_start(self, now: float) -> None:
        if self.state not in ("starting", "stalled", "seeking"):
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
            seeks=self.seeks,
            seek_time=self.seek_time,
            buffer=self.buffer,
            live_edge_distance=self.live_edge_distance,
            gaps=self.gaps,
            gap_time=self.gap_time,
        )


class AbrController:
    """Sans-IO adaptive bitrate choice between renditions.

    ``bandwidths`` are the renditions' declared bandwidths in bits/s, in the stream's own order (the
    master playlist's); choices are indices into it. The player calls :meth:`add_sample` for every
    segment it received over the network (bytes and seconds from asking for it to having it;
    cache hits carry no information and are left out) and :meth:`choose` after each segment.

    The rule:

    1. **Estimate.** Two exponentially weighted moving averages of the samples' throughput, a fast
       one (half-life ``fast_half_life`` samples) and a slow one (``slow_half_life``); the estimate
       is the smaller of the two, so it follows a drop at the fast average's pace and a rise at
       the slow one's (a short peak is not trusted). Samples shorter than ``min_sample_seconds``
       are taken as that long (tiny segments from a local cache would otherwise look infinitely
       fast). No sample yet: no switch.
    2. **Target.** The highest rendition whose bandwidth is at most ``safety`` times the estimate
       (the lowest rendition when none is).
    3. **Down** to the target (several steps at once if need be) when the target is lower than the
       current rendition, the buffer holds less than ``high_buffer`` seconds (with more, the buffer
       absorbs a dip), and either ``min_switch_interval`` seconds passed since the last switch or
       the buffer is below ``low_buffer`` seconds (an emergency ignores the interval).
    4. **Up** one step (never more) when the target is higher, the buffer holds at least
       ``up_buffer`` seconds (the player is not starving), and ``min_switch_interval`` seconds
       passed since the last switch. ``up_buffer`` is small on purpose: a live player a few
       segments behind the edge never holds much more than that.
    5. Otherwise stay.
    """

    def __init__(
        self,
        bandwidths: Sequence[int],
        *,
        current: int = 0,
        safety: float = 0.8,
        low_buffer: float = 4.0,
        high_buffer: float = 8.0,
        up_buffer: float = 2.0,
        min_switch_interval: float = 6.0,
        fast_half_life: float = 2.0,
        slow_half_life: float = 6.0,
        min_sample_seconds: float = 0.05,
    ) -> None:
        if not bandwidths:
            raise ValueError("AbrController needs at least one rendition")
        if any(b <= 0 for b in bandwidths):
            raise ValueError("bandwidths must be > 0")
        if not 0 <= current < len(bandwidths):
            raise ValueError(f"current must be an index into bandwidths (0..{len(bandwidths) - 1})")
        if not 0 < safety <= 1:
            raise ValueError("safety must be in (0, 1]")
        if not 0 <= low_buffer <= high_buffer or up_buffer < 0:
            raise ValueError("need 0 <= low_buffer <= high_buffer and up_buffer >= 0")
        self.bandwidths = tuple(bandwidths)
        self.current = current
        self.safety = safety
        self.low_buffer = low_buffer
        self.high_buffer = high_buffer
        self.up_buffer = up_buffer
        self.min_switch_interval = min_switch_interval
        self.min_sample_seconds = min_sample_seconds
        self._fast_alpha = 1 - 0.5 ** (1 / fast_half_life)
        self._slow_alpha = 1 - 0.5 ** (1 / slow_half_life)
        self._fast: float | None = None
        self._slow: float | None = None
        self._last_switch: float | None = None
        self.switches = 0
        # Indices by increasing bandwidth (ties keep the stream's order).
        self._ladder = sorted(range(len(bandwidths)), key=lambda i: bandwidths[i])

    @property
    def estimate(self) -> float | None:
        """Estimated throughput in bits/s (None before the first sample)."""
        if self._fast is None or self._slow is None:
            return None
        return min(self._fast, self._slow)

    def add_sample(self, size: int, seconds: float) -> None:
        """``size`` bytes arrived in ``seconds`` seconds."""
        if size <= 0 or not math.isfinite(seconds):
            return
        rate = size * 8 / max(seconds, self.min_sample_seconds)
        self._fast = rate if self._fast is None else self._fast + self._fast_alpha * (rate - self._fast)
        self._slow = rate if self._slow is None else self._slow + self._slow_alpha * (rate - self._slow)

    def target(self) -> int:
        """The rendition the throughput alone would pick (step 2), or the current one without samples."""
        estimate = self.estimate
        if estimate is None:
            return self.current
        best = self._ladder[0]
        for index in self._ladder:
            if self.bandwidths[index] <= self.safety * estimate:
                best = index
        return best

    def choose(self, *, buffer: float, now: float) -> int:
        """The rendition to load next (steps 3-5); remembers it as the current one."""
        target = self.target()
        rank = self._ladder.index(self.current)
        target_rank = self._ladder.index(target)
        since = math.inf if self._last_switch is None else now - self._last_switch
        choice = self.current
        if target_rank < rank and buffer < self.high_buffer:
            if buffer < self.low_buffer or since >= self.min_switch_interval:
                choice = target
        elif target_rank > rank and buffer >= self.up_buffer and since >= self.min_switch_interval:
            choice = self._ladder[rank + 1]
        if choice != self.current:
            self.current = choice
            self._last_switch = now
            self.switches += 1
        return self.current
