"""A simulated viewer's uplink as one shared queue, and what its delay does to the viewer's own HTTP.

On a real access link (a home router's buffer, the testbed's ``tbf``) a viewer's uplink is one
first-in first-out queue of bounded length: its uploads to peers, the requests and TCP
acknowledgements of its own HTTP downloads and its WebRTC messages all wait in it. A loss-based
sender (SCTP, as TCP) keeps that queue full, so everything else the viewer sends waits behind it,
and a TCP download whose acknowledgements wait grows its window per (longer) round trip: the
viewer's own downloads slow down. This module models that in a few numbers, as a fluid:

* :class:`Uplink` holds the queue's backlog (bytes) as a piecewise-linear function of time. While
  one of our uploads sends, data enters at the sender's rate and leaves at the link's ``rate``;
  between uploads the queue drains. A sender without a rate (no upload control, or the control
  not limiting yet) is loss-based: it fills the queue at twice the link's rate (slow start sends
  twice what was acknowledged per round trip) up to :data:`LOSS_BASED_FILL` of the queue's
  length, and holds it there. A paced sender (the delay-based upload control's rate) adds
  ``rate - link rate`` per second: below the link's rate the queue drains. ``delay(now)`` is what
  a packet joining the queue at ``now`` waits (backlog / rate, seconds).
* The upload control is the shipped :class:`~p2ploader.core.upload_control.UploadController`,
  fed as the real peer manager feeds it (:mod:`p2ploader.aio.peers`): the bytes handed to the
  uplink (``sent``) and a round-trip sample of the upload's link every
  :data:`SAMPLE_INTERVAL` seconds, which here is the modelled one: both viewers' latencies, the
  stacks' own :data:`STACK_ROUND_TRIP`, our queue's delay (our data waits in it) and the
  receiver's (its acknowledgements wait in its uplink).
* :func:`tcp_transfer_seconds` is the time a TCP download of ``size`` bytes takes at ``rate`` with
  round trip ``rtt``: slow start from :data:`INITIAL_WINDOW` (the window doubles per round trip,
  Linux restarts it after an idle connection, as between two segments), then the rate. The
  simulated HTTP fetch of a viewer with a modelled uplink waits the queue's delay before its
  request leaves, takes ``rtt`` = the path's round trip + that delay per window, and is capped at
  :data:`ACK_BYTES_PER_BYTE` of the uplink's rate (the acknowledgements must get out).

Approximations, stated: the queue's delay is sampled when a fetch starts (as its rate is); the
acknowledgements' bytes are not added to the queue (1/44 of a 650 kbit/s stream is 15 kbit/s on
average); a P2P download is not slowed by its receiver's queue delaying its SCTP acknowledgements,
except through the upload control's samples; tail drops are not modelled beyond the cap of the
queue's length.
"""

from __future__ import annotations

import attrs

from p2ploader.core.upload_control import UploadController

__all__ = [
    "ACK_BYTES_PER_BYTE",
    "CONTROLLED_PIECE_SECONDS",
    "HTTP_WIRE_SHARE",
    "INITIAL_WINDOW",
    "LOSS_BASED_FILL",
    "P2P_WIRE_SHARE",
    "SAMPLE_INTERVAL",
    "STACK_ROUND_TRIP",
    "Uplink",
    "tcp_transfer_seconds",
]

LOSS_BASED_FILL = 0.75
"""Share of the queue's length a loss-based sender keeps queued: with no delay on the path its
window is the queue, and it halves the window at each drop of a full queue, so the queue swings
between full and half full; 3/4 is the middle of that saw-tooth."""

SLOW_START_GAIN = 2.0
"""A loss-based sender starting on an empty queue hands the uplink twice what the link sends
(slow start doubles the window each round trip): the queue grows at the link's rate."""

INITIAL_WINDOW = 10 * 1448
"""Bytes a TCP sender sends in its first round trip: ten full segments (RFC 6928, Linux's
default), also after an idle connection (``tcp_slow_start_after_idle``)."""

ACK_BYTES_PER_BYTE = 66 / (2 * 1448)
"""Uplink bytes per downloaded byte of TCP acknowledgements: one 66-byte frame (Ethernet, IP, TCP
with timestamps) per two full 1448-byte segments (delayed acknowledgements)."""

P2P_WIRE_SHARE = 1160 / 1268
"""Share of an uplink's bytes that carry upload payload: aiortc puts 1160 bytes of a data-channel
message in a 1189-byte SCTP packet, sent in DTLS (37 bytes with AES-GCM), UDP, IPv4 and an
Ethernet header (42 bytes), all of which the link's shaper counts."""

HTTP_WIRE_SHARE = 1448 / 1514
"""Share of a downlink's bytes that carry HTTP payload: 1448 bytes per full TCP segment (with
timestamps) in a 1514-byte Ethernet frame."""

SAMPLE_INTERVAL = 0.05
"""Seconds between two round-trip samples of an upload's link, as the peer manager's
``ROUND_TRIP_SAMPLE_INTERVAL``."""

CONTROLLED_PIECE_SECONDS = 0.1
"""Seconds of hand-over per burst while the upload control steers the uplink: the pace is read
again this often (the controller cuts at most every 0.1 s), instead of the model's usual 0.5 s."""

STACK_ROUND_TRIP = 0.001
"""Seconds of round trip without any delay on the path or queue (two hosts' stacks and a bridge):
the controller takes no zero-length round trip."""


def tcp_transfer_seconds(size: float, rate: float, rtt: float, *, window: float = INITIAL_WINDOW) -> float:
    """Seconds from the first byte's arrival to the last of a TCP transfer of ``size`` bytes limited
    to ``rate`` bytes/s, round trip ``rtt`` seconds, the window starting at ``window`` bytes and
    doubling each round trip until it covers the rate (``window / rtt >= rate``). ``rtt <= 0``:
    ``size / rate``."""
    if rtt <= 0:
        return size / rate
    seconds = 0.0
    left = size
    while left > window and window < rate * rtt:
        seconds += rtt  # a window's worth per round trip
        left -= window
        window *= 2
    return seconds + left / rate


@attrs.define(eq=False)
class Uplink:
    """One viewer's uplink queue (see the module's docstring). ``rate`` in bytes/s on the wire
    (headers included), ``queue_seconds``
    the queue's length in seconds at that rate; ``controller``: the viewer's upload control, or
    ``None`` when it is off."""

    rate: float
    queue_seconds: float
    controller: UploadController | None = None
    _at: float = 0.0
    """Start of the current piece of the backlog's function (seconds, virtual time)."""
    _backlog: float = 0.0
    """Bytes queued at ``_at``."""
    _input: float = 0.0
    """Bytes/s our uploads hand the queue from ``_at`` until ``_until`` (then nothing)."""
    _until: float = 0.0
    _ceiling: float = 0.0
    """Bytes the backlog does not exceed while ``_input`` lasts."""

    @property
    def limit(self) -> float:
        """Bytes the queue holds at most."""
        return self.queue_seconds * self.rate

    def backlog(self, now: float) -> float:
        """Bytes queued at ``now`` (seconds, virtual time, not before the last :meth:`send`)."""
        backlog = self._backlog
        end = min(now, self._until)
        if end > self._at:
            backlog = min(self._ceiling, max(0.0, backlog + (self._input - self.rate) * (end - self._at)))
        idle = now - max(self._until, self._at)
        if idle > 0:
            backlog = max(0.0, backlog - self.rate * idle)
        return backlog

    def delay(self, now: float) -> float:
        """Seconds a packet joining the queue at ``now`` waits before it leaves."""
        return self.backlog(now) / self.rate

    @property
    def payload_rate(self) -> float:
        """Bytes/s of upload payload the link carries at most (:data:`P2P_WIRE_SHARE`)."""
        return self.rate * P2P_WIRE_SHARE

    def send(self, size: int, *, now: float, rate: float | None) -> float:
        """Our uploads hand the uplink ``size`` bytes of payload from ``now``, paced at ``rate``
        bytes/s of payload (``None``: loss-based, as fast as the link takes them). Returns when the
        last of them is handed over (seconds); it reaches the receiver :meth:`delay` later (plus
        the path)."""
        backlog = self.backlog(now)
        wire = size / P2P_WIRE_SHARE  # the shaper counts every header
        if rate is None:
            handed = wire / self.rate
            self._input = self.rate * SLOW_START_GAIN
            self._ceiling = max(backlog, LOSS_BASED_FILL * self.limit)
        else:
            # Faster than the link, the queue fills and drops what arrives: what gets through
            # (retransmitted) goes at the link's rate.
            handed = size / min(rate, self.payload_rate)
            self._input = rate / P2P_WIRE_SHARE
            self._ceiling = self.limit
        self._at, self._backlog, self._until = now, min(backlog, self._ceiling), now + handed
        return now + handed

    def observe(
        self, link: object, *, start: float, end: float, rate: float, path: float, remote: Uplink | None
    ) -> None:
        """Feed the controller what the peer manager would have seen while our upload on ``link``
        handed bytes at ``rate`` bytes/s from ``start`` to ``end``: the bytes sent and a round
        trip every :data:`SAMPLE_INTERVAL` (``path``: the path's round trip without queues, in
        seconds; ``remote``: the receiver's uplink, where its acknowledgements wait)."""
        controller = self.controller
        if controller is None:
            return
        at = start
        while at < end:
            step = min(SAMPLE_INTERVAL, end - at)
            controller.sent(max(1, int(rate * step)), now=at)
            waits = self.delay(at) + (remote.delay(at) if remote is not None else 0.0)
            controller.observe(link, path + STACK_ROUND_TRIP + waits, now=at)
            at += SAMPLE_INTERVAL
