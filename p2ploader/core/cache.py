"""The in-memory segment cache that feeds the player and serves other peers.

Eviction follows P2P Media Loader 0.6 (``cleanSegmentsStorage``): first every segment not accessed
for longer than the expiration goes, whether or not it is queued; then, while more than the count
limit remain, the least recently accessed go first, skipping the segments in the current queue.
Reading a segment (for the player or to serve a peer) counts as an access.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator

import attrs

from p2ploader.core.segments import Segment, SegmentId

__all__ = ["CachedSegment", "SegmentCache"]


@attrs.define(kw_only=True)
class CachedSegment:
    segment: Segment
    data: bytes
    last_accessed: float
    """Seconds, on the scheduler's clock."""


class SegmentCache:
    """Segments held in memory, keyed by :class:`SegmentId`. Sizes in bytes, times in seconds."""

    def __init__(self) -> None:
        self._entries: dict[SegmentId, CachedSegment] = {}
        self._total_bytes = 0

    def __contains__(self, segment_id: object) -> bool:
        return segment_id in self._entries

    def __len__(self) -> int:
        return len(self._entries)

    def __iter__(self) -> Iterator[SegmentId]:
        return iter(self._entries)

    @property
    def total_bytes(self) -> int:
        """Bytes held by all cached segments."""
        return self._total_bytes

    def put(self, segment: Segment, data: bytes, *, now: float) -> None:
        old = self._entries.get(segment.id)
        if old is not None:
            self._total_bytes -= len(old.data)
        self._entries[segment.id] = CachedSegment(segment=segment, data=data, last_accessed=now)
        self._total_bytes += len(data)

    def share(self, segment_id: SegmentId, data: bytes) -> bool:
        """Hold ``data`` instead of the equal bytes cached for ``segment_id`` (not an access), so
        that caches in one process can share one copy of a payload. ``False`` when the segment is
        not cached or its bytes differ."""
        entry = self._entries.get(segment_id)
        if entry is None or entry.data is data or entry.data != data:
            return entry is not None and entry.data is data
        entry.data = data
        return True

    def get(self, segment_id: SegmentId, *, now: float) -> CachedSegment | None:
        """Return the entry and mark it accessed, or ``None``."""
        entry = self._entries.get(segment_id)
        if entry is not None:
            entry.last_accessed = now
        return entry

    def evict(
        self, *, now: float, expiration: float, max_count: int, keep: Collection[SegmentId]
    ) -> list[SegmentId]:
        """Drop expired segments, then the least recently accessed beyond ``max_count`` that are not
        in ``keep``. Returns the ids removed."""
        removed = [sid for sid, e in self._entries.items() if now - e.last_accessed > expiration]
        for sid in removed:
            self._drop(sid)
        excess = len(self._entries) - max_count
        if excess > 0:
            candidates = sorted((e.last_accessed, sid) for sid, e in self._entries.items() if sid not in keep)
            for _, sid in candidates[:excess]:
                self._drop(sid)
                removed.append(sid)
        return removed

    def discard(self, segment_id: SegmentId) -> bool:
        """Drop ``segment_id`` if held; returns whether it was."""
        if segment_id not in self._entries:
            return False
        self._drop(segment_id)
        return True

    def _drop(self, segment_id: SegmentId) -> None:
        entry = self._entries.pop(segment_id)
        self._total_bytes -= len(entry.data)
