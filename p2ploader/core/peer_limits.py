"""What one peer may make us do, sans-IO: bounds derived from the stream, and upload budgets.

A peer's demands cost us uplink, memory and CPU. Each bound below follows from what an honest
viewer of this stream can need, with a generous factor, so it never binds an honest peer:

* **Segment size.** A data header announcing more bytes than the variant's ``BANDWIDTH`` allows
  for a segment (``BANDWIDTH / 8 * target duration``, times :data:`SEGMENT_SIZE_FACTOR`, never
  below :data:`SEGMENT_SIZE_FLOOR`) is refused before any of its bytes is taken.
* **Announcement size.** A peer cannot hold more segments than the playlist lists: an announcement
  carrying more ids than twice the playlist's window plus :data:`ANNOUNCEMENT_MARGIN` is refused
  while it is decoded, before any set of ids is built.
* **Upload budget.** A viewer plays one second of media per second. :class:`UploadBudget` is a
  token bucket in *media seconds*: each upload costs the media time it carries, the bucket refills
  at ``rate`` media seconds per second up to ``burst``. It needs no bitrate (each segment's
  duration and size calibrate it), so it is, in bytes, a multiple of the stream's bitrate.
"""

from __future__ import annotations

from typing import Final

__all__ = [
    "ANNOUNCEMENT_MARGIN",
    "SEGMENT_SIZE_FACTOR",
    "SEGMENT_SIZE_FLOOR",
    "UploadBudget",
    "announcement_id_limit",
    "segment_size_limit",
]

SEGMENT_SIZE_FACTOR: Final = 4.0
"""How many times the size ``BANDWIDTH`` allows for one target duration a segment may have."""
SEGMENT_SIZE_FLOOR: Final = 8 * 1024 * 1024
"""Bytes. The segment size limit is never lower (a low or wrong ``BANDWIDTH`` must not refuse
honest segments)."""
ANNOUNCEMENT_MARGIN: Final = 256
"""Ids an announcement may carry beyond twice the playlist's window (a live peer still holds
segments that left the window)."""


def segment_size_limit(*, bandwidth: int | None, target_duration: float | None, fallback: int) -> int:
    """Bytes a peer's data header may announce for one segment of this stream.

    ``bandwidth`` is the variant's ``BANDWIDTH`` (bits/s), ``target_duration`` the playlist's
    ``EXT-X-TARGETDURATION`` (seconds). Unknown (missing or 0): ``fallback``. Never above
    ``fallback`` (the scheduler's absolute bound) nor below :data:`SEGMENT_SIZE_FLOOR`.
    """
    if not bandwidth or not target_duration or bandwidth <= 0 or target_duration <= 0:
        return fallback
    allowed = int(bandwidth / 8 * target_duration * SEGMENT_SIZE_FACTOR)
    return min(fallback, max(SEGMENT_SIZE_FLOOR, allowed))


def announcement_id_limit(window: int) -> int:
    """Most ids (``l`` and ``p`` together) one announcement may carry for a playlist listing
    ``window`` segments."""
    return 2 * max(0, window) + ANNOUNCEMENT_MARGIN


class UploadBudget:
    """One peer's upload budget: a token bucket in media seconds (time is an argument).

    ``rate``: media seconds per second the bucket refills (a viewer plays 1); ``burst``: media
    seconds it holds (what a joining viewer may fetch at once, its forward buffer or a browser's
    prefetch window). An upload is allowed while the bucket is not empty and then costs its whole
    media time, so the bucket may go into debt by one segment: a segment longer than ``burst``
    is still served, and the bytes a peer gets over any span ``T`` stay below
    ``burst + rate * T`` media seconds plus one segment.
    """

    def __init__(self, *, rate: float, burst: float) -> None:
        if rate <= 0 or burst <= 0:
            raise ValueError("rate and burst must be > 0")
        self.rate = rate
        self.burst = burst
        self._tokens = burst
        self._at: float | None = None

    def tokens(self, *, now: float) -> float:
        """Media seconds left at ``now`` (negative: in debt)."""
        if self._at is not None:
            self._tokens = min(self.burst, self._tokens + max(0.0, now - self._at) * self.rate)
        self._at = now
        return self._tokens

    def take(self, media_seconds: float, *, now: float) -> bool:
        """Charge an upload of ``media_seconds``; ``False`` (nothing charged) when the bucket is
        empty: the request is over budget."""
        if self.tokens(now=now) <= 0:
            return False
        self._tokens -= max(0.0, media_seconds)
        return True
