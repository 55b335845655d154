"""Delay-based upload control: keep our uplink's queue short (sans-IO).

A viewer's uplink carries its uploads *and* its own traffic: the requests and TCP acknowledgements
of its HTTP downloads. When uploads fill the uplink's queue (a home router's buffer, the kernel's
shaper), those small packets wait behind them and the viewer's own downloads slow down until
playback stalls. A loss-based sender (SCTP's congestion control, like TCP's) fills that queue
before it slows down; this controller slows down as soon as the queue grows, as LEDBAT (RFC 6817,
BitTorrent's uTP) does, but on a rate instead of a congestion window:

* **Inputs.** Round-trip-time samples (seconds) of the links we upload on, each with the link's key
  and the time ``now`` (seconds, any monotonic clock), and the bytes handed to those links.
* **Base delay.** Per link, the minimum round trip over the last ``base_window`` seconds (kept as
  :data:`BASE_BUCKETS` per-interval minimums, RFC 6817's base history): the round trip with an
  empty queue. Each link has its own (a neighbour's round trip is not a distant peer's).
* **Queuing delay.** The minimum of the link's last :data:`CURRENT_FILTER` samples (one late
  sample is noise, several in a row are a queue) minus its base delay.
* **Rate.** None (no limit) until the queuing delay first exceeds ``target``; then the rate we were
  sending at (bytes over the time spent sending, idle gaps left out), times ``decrease_factor``.
  While the queuing delay stays above the target the rate is cut again, at most once per round
  trip (a cut shows in the samples one round trip later); below it the rate grows additively, by
  up to ``increase`` bytes/s per second, in proportion to how far below the target the delay is
  (RFC 6817's off-target gain). It never falls below ``floor`` (uploads never stop) and becomes
  unlimited again past ``ceiling``.

Samples that cannot be round trips (not a finite number, not positive, longer than
:data:`MAX_ROUND_TRIP`) are counted and ignored. No sample at all means no limit. Memory is bounded:
at most :data:`MAX_LINKS` links are tracked (the one heard from longest ago is forgotten first),
each with :data:`BASE_BUCKETS` + 1 minimums and :data:`CURRENT_FILTER` recent samples; every call
costs O(:data:`BASE_BUCKETS` + :data:`CURRENT_FILTER`).

**Holds** (:class:`UploadHold`, ``upload_yield_time``): the control keeps the queue short, not
empty, and a loss on a full queue costs a TCP download a retransmission timeout. While a download
the player needs within seconds is in flight, uploads stop handing new bytes to their links, so
what is queued drains within a round trip or two and the download's packets go out at once. A
pause lasts 1.5 s at most and uploads keep at least half the time, so a slow origin (every
download urgent) cannot stop a swarm's uploads.

What it cannot see: a round trip is both directions, so a queue on the *remote's* uplink (where
its acknowledgements wait) counts as ours too, and cuts our rate although our uplink is clear.
LEDBAT measures one-way delays for that reason; SCTP gives us round trips only.
"""

from __future__ import annotations

import math
from collections import deque

import attrs

from p2ploader.errors import UsageError

__all__ = [
    "BASE_BUCKETS",
    "CURRENT_FILTER",
    "DEFAULT_TARGET",
    "MAX_HOLD",
    "MAX_LINKS",
    "MAX_ROUND_TRIP",
    "MIN_PACED_CHUNK",
    "UploadControlStatistics",
    "UploadController",
    "UploadHold",
]

DEFAULT_TARGET = 0.05
"""Seconds of queuing delay aimed at. RFC 6817 caps LEDBAT's target at 0.1 s; half of it keeps
what waits behind our uploads (our own HTTP requests and acknowledgements) to 50 ms per round trip,
while staying above the tens of milliseconds by which a busy Python event loop (ours or the
remote's, which acknowledges our data) delays a round trip without any queue."""

BASE_BUCKETS = 10
"""Per-interval minimums kept per link for its base delay (RFC 6817's base history)."""

CURRENT_FILTER = 4
"""Recent samples per link whose minimum is the current delay (RFC 6817's current filter)."""

MAX_LINKS = 64
"""Links tracked at most; the one heard from longest ago is forgotten to make room."""

MAX_ROUND_TRIP = 30.0
"""Seconds. A longer sample is no round trip (SCTP's own estimate never exceeds its 60 s maximum
retransmission timeout, and a queue that long is no queue any more): it is ignored."""

_MIN_CUT_INTERVAL = 0.1
"""Seconds between two cuts at least, whatever the round trip (samples of a tiny round trip
would otherwise cut the rate many times before the first cut shows)."""

_RATE_WINDOW = 0.5
"""Seconds of sending per measurement of the sending rate (the first cut's starting point)."""

_MAX_SEND_GAP = 0.2
"""Seconds. A longer gap between two sends is idle time (no upload to send), not sending time: the
sending rate is what the uplink carried while we had something to send, not an average over idle
minutes (which would make a first cut throttle a fast uplink to a trickle)."""

_MAX_GROWTH_STEP = 1.0
"""Seconds of additive increase one sample may grant at most (a sample after a long silence
does not lift the rate by what the silence would have allowed)."""


@attrs.frozen(kw_only=True)
class UploadControlStatistics:
    rate: float | None
    """Bytes/s allowed now; ``None``: no limit."""
    queuing_delay: float | None
    """Seconds, of the link sampled last; ``None`` before any sample."""
    samples: int
    rejected_samples: int
    """Samples ignored as impossible round trips (NaN, infinite, not positive, too long)."""
    cuts: int
    """Multiplicative decreases so far."""


@attrs.define
class _LinkDelay:
    """One link's delay history."""

    bucket_length: float
    buckets: deque[tuple[float, float]] = attrs.Factory(lambda: deque(maxlen=BASE_BUCKETS + 1))
    """``(interval start, minimum round trip in it)``, oldest first."""
    recent: deque[float] = attrs.Factory(lambda: deque(maxlen=CURRENT_FILTER))
    heard_at: float = 0.0

    def add(self, rtt: float, now: float, window: float) -> None:
        self.heard_at = now
        if self.buckets and now < self.buckets[-1][0] + self.bucket_length:
            start, low = self.buckets[-1]
            self.buckets[-1] = (start, min(low, rtt))
        else:
            self.buckets.append((now, rtt))
        while self.buckets and self.buckets[0][0] + self.bucket_length <= now - window:
            self.buckets.popleft()  # its whole interval is older than the window
        self.recent.append(rtt)

    @property
    def base(self) -> float:
        return min(low for _, low in self.buckets)

    @property
    def current(self) -> float:
        return min(self.recent)


MIN_PACED_CHUNK = 1024
"""Bytes: the smallest data message a paced upload sends (about one SCTP packet's payload)."""


class UploadController:
    """Steers an upload rate (bytes/s) from round-trip samples so the queuing delay stays near
    ``target`` seconds. See the module's docstring.

    ``floor``, ``ceiling`` (bytes/s): the rate's bounds (above ``ceiling`` it is no limit).
    ``increase`` (bytes/s per second): the additive increase at zero queuing delay.
    ``decrease_factor`` (0 < f < 1): the multiplicative decrease. ``base_window`` (seconds): how long
    a base delay is remembered.
    """

    def __init__(
        self,
        *,
        target: float = DEFAULT_TARGET,
        floor: float = 16_000.0,
        ceiling: float = 125_000_000.0,
        increase: float = 50_000.0,
        decrease_factor: float = 0.75,
        base_window: float = 60.0,
    ) -> None:
        if not (math.isfinite(target) and target > 0):
            raise UsageError(f"target must be a positive number of seconds, got {target!r}")
        if not (0 < floor < ceiling and math.isfinite(ceiling)):
            raise UsageError(f"need 0 < floor < ceiling (bytes/s), got {floor!r}, {ceiling!r}")
        if not (math.isfinite(increase) and increase > 0):
            raise UsageError(f"increase must be positive (bytes/s per second), got {increase!r}")
        if not 0 < decrease_factor < 1:
            raise UsageError(f"decrease_factor must be between 0 and 1, got {decrease_factor!r}")
        if not (math.isfinite(base_window) and base_window > 0):
            raise UsageError(f"base_window must be a positive number of seconds, got {base_window!r}")
        self.target = target
        self.floor = floor
        self.ceiling = ceiling
        self.increase = increase
        self.decrease_factor = decrease_factor
        self.base_window = base_window
        self._links: dict[object, _LinkDelay] = {}
        self._rate: float | None = None
        self._queuing_delay: float | None = None
        self._last_sample_at: float | None = None
        self._last_cut_at = -math.inf
        self._sending_rate = 0.0  # bytes/s while sending; 0: not measured yet
        self._sent_at: float | None = None
        self._window_bytes = 0  # bytes, and seconds of sending, of the measurement under way
        self._window_time = 0.0
        self._samples = 0
        self._rejected = 0
        self._cuts = 0

    @property
    def rate(self) -> float | None:
        """Bytes/s uploads may use now; ``None``: no limit."""
        return self._rate

    def chunk_limit(self) -> int | None:
        """Bytes per data message while the rate is limited (``None``: not limited, the message
        size): half the delay target's worth at that rate, so one message never queues longer (a
        64 kB message at once would queue 0.4 s on a 1.3 Mbit/s uplink), and at least
        :data:`MIN_PACED_CHUNK`. The peer manager and the simulator's uploads both cut so."""
        rate = self._rate
        if rate is None:
            return None
        return max(MIN_PACED_CHUNK, int(rate * self.target / 2))

    def sent(self, nbytes: int, *, now: float) -> None:
        """``nbytes`` were handed to an upload link at ``now`` (the sending rate a first cut
        starts from)."""
        if nbytes <= 0:
            return
        if self._sent_at is None:
            self._sent_at = now
            self._window_bytes = nbytes  # sent at once: its time is the next gap's
            return
        self._window_time += min(max(now - self._sent_at, 0.0), _MAX_SEND_GAP)
        self._sent_at = max(self._sent_at, now)
        if self._window_time >= _RATE_WINDOW:
            measured = self._window_bytes / self._window_time
            # Averaged with the previous measurement: one short burst does not set it alone.
            self._sending_rate = measured if self._sending_rate == 0 else (self._sending_rate + measured) / 2
            self._window_bytes, self._window_time = 0, 0.0
        self._window_bytes += nbytes

    def observe(self, link: object, rtt: float, *, now: float) -> None:
        """A round-trip sample (seconds) of ``link`` (any hashable key) at ``now`` (seconds)."""
        if not (isinstance(rtt, int | float) and math.isfinite(rtt) and 0 < rtt <= MAX_ROUND_TRIP):
            self._rejected += 1
            return
        self._samples += 1
        delay = self._links.get(link)
        if delay is None:
            if len(self._links) >= MAX_LINKS:
                stalest = min(self._links, key=lambda key: self._links[key].heard_at)
                del self._links[stalest]
            delay = self._links[link] = _LinkDelay(bucket_length=self.base_window / BASE_BUCKETS)
        delay.add(rtt, now, self.base_window)
        current = delay.current
        queuing = current - delay.base
        self._queuing_delay = queuing
        elapsed = 0.0 if self._last_sample_at is None else now - self._last_sample_at
        self._last_sample_at = now if self._last_sample_at is None else max(self._last_sample_at, now)
        if queuing > self.target:
            if now - self._last_cut_at >= max(_MIN_CUT_INTERVAL, current):
                self._cut(now)
        elif self._rate is not None:
            off_target = (self.target - queuing) / self.target  # 1 at no queue, 0 at the target
            step = min(max(elapsed, 0.0), _MAX_GROWTH_STEP)
            grown = self._rate + self.increase * off_target * step
            self._rate = None if grown > self.ceiling else grown

    def _cut(self, now: float) -> None:
        if self._rate is not None:
            start = self._rate
        else:
            sending = self._sending_rate
            if sending == 0 and self._window_time > 0:
                sending = self._window_bytes / self._window_time  # less than a window so far
            start = min(sending, self.ceiling)
        self._rate = max(self.floor, start * self.decrease_factor)
        self._last_cut_at = now
        self._cuts += 1

    def forget(self, link: object) -> None:
        """``link`` closed: its delay history goes."""
        self._links.pop(link, None)

    def statistics(self) -> UploadControlStatistics:
        return UploadControlStatistics(
            rate=self._rate,
            queuing_delay=self._queuing_delay,
            samples=self._samples,
            rejected_samples=self._rejected,
            cuts=self._cuts,
        )


MAX_HOLD = 1.5
"""Seconds uploads stay paused at most in one go, under the 2 s a receiver waits for bytes before
it gives up on us (P2P Media Loader 2.x's ``p2pNotReceivingBytesTimeoutMs``, our
``p2p_stall_timeout``); an urgent download normally takes a fraction of a second. After a pause
that long, holds are ignored for as long again: uploads are paused half the time at most, however
many urgent downloads follow each other (a slow or failing origin must not stop a swarm's uploads)."""


class UploadHold:
    """Uploads pause while any hold is on (sans-IO: ``now`` in seconds, any monotonic clock).

    A hold is taken (:meth:`hold`) when a download the player needs soon starts, and released
    (:meth:`release`) when it ends, whatever the outcome. Uploaders ask :meth:`held` before each
    chunk. A pause (holds on without a break) lasts ``max_hold`` seconds at most; then holds are
    ignored for ``max_hold`` seconds, so uploads run at least half the time. One per viewer,
    shared by its swarms and its HTTP fetches, as the uplink is. Memory: one entry per download in
    flight.
    """

    def __init__(self, *, max_hold: float = MAX_HOLD) -> None:
        if not (math.isfinite(max_hold) and max_hold > 0):
            raise UsageError(f"max_hold must be a positive number of seconds, got {max_hold!r}")
        self.max_hold = max_hold
        self._holds: dict[object, float] = {}  # key -> when it was taken
        self._paused_since: float | None = None  # start of the pause under way
        self._ignore_until = -math.inf  # holds do not pause before this (after a long pause)
        self.holds = 0
        """Holds taken so far."""
        self.paused_time = 0.0
        """Seconds uploads were paused so far (counted when a pause ends)."""

    def hold(self, key: object, *, now: float) -> None:
        """A download the player needs soon (``key``, e.g. its request id) started."""
        if key not in self._holds:
            self.holds += 1
        self._holds[key] = now

    def release(self, key: object) -> None:
        """That download ended (done, failed or cancelled). Unknown keys are ignored."""
        self._holds.pop(key, None)

    def held(self, *, now: float) -> bool:
        """Whether uploads should wait now."""
        if not self._holds or now < self._ignore_until:
            self._end_pause(now)
            return False
        if self._paused_since is None:
            self._paused_since = now
        elif now - self._paused_since >= self.max_hold:
            self._end_pause(now)
            self._ignore_until = now + self.max_hold  # uploads' turn, however many holds are on
            return False
        return True

    def _end_pause(self, now: float) -> None:
        if self._paused_since is not None:
            self.paused_time += max(0.0, now - self._paused_since)
            self._paused_since = None
