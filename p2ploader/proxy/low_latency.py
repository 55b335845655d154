"""Low-Latency HLS through the proxy: blocking playlist reloads, parts and preload hints.

For a live variant whose playlist has parts (``EXT-X-PART-INF``) the proxy runs one
:class:`LowLatencyRelay`: it follows the origin's playlist with the library's
:class:`~p2ploader.aio.low_latency.LowLatencyStream` (blocking reloads, preload hints, delta
updates towards the origin; the loader's HTTP client and settings, and whatever sources the loader's
stream uses) and keeps the parts it hands over. The player then talks LL-HLS to the proxy:

* **Blocking reload.** A playlist request with ``_HLS_msn=M`` (and ``_HLS_part=P``) is held until
  the relay's copy lists segment ``M`` complete (part ``P`` of segment ``M``, or anything later), at
  most ``hold_limit`` seconds (three target durations by default, RFC 8216bis §6.2.5.2), then
  ``503``. A request more than two segments past the last one, or more parts past the last part than
  the advance part limit (three, or three divided by a part target under a second), is ``400`` at
  once, as is a malformed directive (:func:`parse_directives`). ``_HLS_skip`` is ignored: the
  proxy does not advertise ``CAN-SKIP-UNTIL`` and always serves the full playlist.
* **Parts and preload hints.** ``/r/<token>/part/<sequence>.<k>.<ext>`` is answered with the part's
  bytes as the relay received them. A part that is not listed yet but is within the advance part
  limit of the last one (the preload hint names the next one) is held until the origin publishes
  it and its bytes are here, within the same ``hold_limit``. A listed part the relay has not handed
  over (the player started before the relay's start point, or the relay's copy was evicted) is
  fetched over HTTP once, however many requests ask for it. A ``GAP=YES`` part is ``404``.
* **Bounds.** At most ``max_held`` requests are held at once across every rendition (one more is
  ``503`` at once); the relay keeps the bytes of at most ``max_kept_parts`` parts and
  ``max_kept_bytes`` bytes, oldest first out; parts and segments fetched here are capped at the
  scheduler's segment size limit, playlists at ``LoaderConfig.max_playlist_bytes`` (the stream's).
  The backend closes a relay no request used for ``relay_idle_timeout`` seconds.

The relay answers a hint request once the whole part is here rather than byte by byte: a part is
a fraction of a second of media and an LL-HLS origin publishes it complete, so streaming it would
save little and complicate the player's view of a failed part.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterator
from typing import Final, TypeVar

import httpx

from p2ploader.aio.low_latency import LowLatencyStream, fetch_range
from p2ploader.core.ll_follower import (
    FetchRequest,
    LowLatencyItem,
    StartPosition,
    live_edge_time,
    play_position,
)
from p2ploader.core.scheduler import MAX_SEGMENT_SIZE
from p2ploader.core.segments import Part, PartId, Segment, SegmentId
from p2ploader.errors import P2PLoaderError, TransportError
from p2ploader.hls import MediaPlaylist
from p2ploader.hls_low_latency import DeliveryDirectives, parse_delivery_directives

__all__ = [
    "MAX_QUERY_CHARS",
    "DeliveryDirectives",
    "HeldRequests",
    "LowLatencyRelay",
    "ProxyHoldError",
    "advance_part_limit",
    "parse_directives",
]

logger = logging.getLogger(__name__)

_T = TypeVar("_T")

#: Longest query string read for delivery directives, in characters.
MAX_QUERY_CHARS: Final = 512
_POLL_SECONDS: Final = 0.02
"""How often a held request looks at the relay's playlist. The stream has no change notification;
20 ms is small next to a part (0.2-1 s) and costs nothing while nobody is held."""


class ProxyHoldError(Exception):
    """A held LL-HLS request could not be answered (internal to the proxy, like
    :class:`~p2ploader.proxy.backend.ProxyError`, which it becomes): ``status`` is the HTTP status
    for it (``503``:
    not published in time, too many held requests, closing; ``400``: asked too far ahead; ``404``:
    not listed, or a gap; ``502``: the origin failed)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def parse_directives(query: str) -> DeliveryDirectives:
    """The delivery directives of a raw query string, at most :data:`MAX_QUERY_CHARS` characters
    (:func:`~p2ploader.hls_low_latency.parse_delivery_directives`, which raises
    :class:`~p2ploader.errors.DirectiveError`)."""
    return parse_delivery_directives(query, max_chars=MAX_QUERY_CHARS)


def advance_part_limit(part_target: float) -> int:
    """Parts past the last published one a request may ask for (RFC 8216bis §6.2.5.2: three divided
    by the part target in seconds when it is under a second, three otherwise)."""
    return math.floor(3 / part_target) if part_target < 1 else 3


class HeldRequests:
    """Counts the requests held at once; :meth:`hold` refuses one more than ``limit`` with ``503``."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.now = 0
        self.peak = 0
        self.total = 0
        self.refused = 0

    @contextlib.contextmanager
    def hold(self) -> Iterator[None]:
        if self.now >= self.limit:
            self.refused += 1
            raise ProxyHoldError(503, f"too many held requests ({self.limit}): try again later")
        self.now += 1
        self.total += 1
        self.peak = max(self.peak, self.now)
        try:
            yield
        finally:
            self.now -= 1


# A position in play order: (media sequence number, part index); a whole segment sorts after its parts.
_Position = tuple[int, float]


def _position(item: LowLatencyItem) -> _Position:
    if item.part is not None:
        return (item.part.segment.sequence, item.part.id.index)
    return (item.segment_id.sequence, math.inf)


def _listed_parts(playlist: MediaPlaylist) -> dict[tuple[int, int], Part]:
    listed = {(p.segment.sequence, p.id.index): p for s in playlist.segments for p in s.parts}
    listed.update({(p.segment.sequence, p.id.index): p for p in playlist.pending_parts})
    return listed


def _last_part(playlist: MediaPlaylist) -> tuple[int, int] | None:
    """The last part the playlist lists (None without parts)."""
    if playlist.pending_parts:
        last = playlist.pending_parts[-1]
        return (last.segment.sequence, last.id.index)
    for segment in reversed(playlist.segments):
        if segment.parts:
            return (segment.id.sequence, segment.parts[-1].id.index)
    return None


def _parts_of(playlist: MediaPlaylist, sequence: int) -> int | None:
    segment = playlist.segment_by_sequence(sequence)
    return None if segment is None or not segment.parts else len(segment.parts)


class PlayersPlayhead:
    """Where the players behind the proxy play, for a parts swarm's deadlines (media seconds).

    The relay's stream runs on to the live edge, while the players start where the stream starts
    playing (PART-HOLD-BACK behind live: hls.js seeks to its live sync position once the first
    fragment is buffered, as :func:`~p2ploader.core.ll_follower.play_position` does, not to the
    key frame the first item begins with) and stay that far behind. So the estimate is the live
    edge minus the distance the stream started at, never past the item just handed. Counting from
    the live edge, not from a clock, keeps it right when the origin pauses or drifts; the distance
    is taken again after a re-sync (a new timeline), where the players seek to the new start's
    ``play_from`` as well.
    """

    def __init__(self) -> None:
        self._distance: float | None = None

    def observe(self, item: LowLatencyItem, *, live_edge: float, start: StartPosition | None = None) -> float:
        """The playhead once ``item`` was handed, with ``live_edge`` the latest playlist's end and
        ``start`` the stream's start (its follower's; None: the players start at the first item)."""
        if self._distance is None or item.after_resync:
            self._distance = max(0.0, live_edge - play_position(item, start, live_edge=live_edge))
        return min(item.start, live_edge - self._distance)


class LowLatencyRelay:
    """One live LL-HLS rendition re-served: see the module docstring.

    ``stream`` is started and closed here. ``client`` fetches what the stream did not hand over
    (the caller owns it). ``held`` is shared by every relay of the proxy. ``hold_limit`` (seconds;
    None: three target durations) bounds every held request.
    """

    def __init__(
        self,
        stream: LowLatencyStream,
        client: httpx.AsyncClient,
        *,
        held: HeldRequests,
        hold_limit: float | None = None,
        max_kept_parts: int = 256,
        max_kept_bytes: int = 64 * 1024 * 1024,
    ) -> None:
        self.stream = stream
        self._client = client
        self._held = held
        self._hold_limit = hold_limit
        self._max_kept_parts = max_kept_parts
        self._max_kept_bytes = max_kept_bytes
        self._parts: OrderedDict[PartId, bytes] = OrderedDict()
        self._kept_bytes = 0
        self._handed: _Position | None = None
        self._playhead = PlayersPlayhead()
        self._fetches: dict[PartId, asyncio.Task[bytes]] = {}
        self._changed = asyncio.Event()
        self._error: P2PLoaderError | None = None
        self._task: asyncio.Task[None] | None = None
        self._closed = False
        self._active = 0
        self._last_used: float | None = None
        self.parts_from_stream = 0
        """Parts answered with the bytes the stream handed over."""
        self.parts_fetched = 0
        """Parts the relay fetched itself (not handed over by the stream)."""

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._follow(), name="p2ploader-proxy-llhls")

    async def aclose(self) -> None:
        """Stop following and fail every held request with 503. Idempotent."""
        self._closed = True
        tasks = [t for t in [self._task, *self._fetches.values()] if t is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self.stream.aclose()
        self._wake()

    async def _follow(self) -> None:
        try:
            async for item in self.stream.items():
                self._keep(item)
        except P2PLoaderError as exc:
            logger.warning("LL-HLS relay of %s stopped: %s", self.stream.url, exc)
            self._error = exc
        except Exception as exc:  # a relay that dies silently would leave every request held
            logger.exception("LL-HLS relay of %s failed unexpectedly", self.stream.url)
            self._error = TransportError(self.stream.url, f"unexpected {type(exc).__name__}: {exc}")
        self._wake()

    def _keep(self, item: LowLatencyItem) -> None:
        self._handed = _position(item)
        playlist = self.stream.playlist
        if playlist is not None:
            # A parts swarm counts its deadlines from the players' playhead (see PlayersPlayhead).
            playhead = self._playhead.observe(
                item, live_edge=live_edge_time(playlist), start=self.stream.follower.start
            )
            self.stream.report_playback(playhead)
        if item.part is not None and not item.gap:
            self._store(item.part.id, item.data)
        self._wake()

    def _store(self, part_id: PartId, data: bytes) -> None:
        if part_id in self._parts:
            return
        self._parts[part_id] = data
        self._kept_bytes += len(data)
        while len(self._parts) > self._max_kept_parts or self._kept_bytes > self._max_kept_bytes:
            _, old = self._parts.popitem(last=False)
            self._kept_bytes -= len(old)

    @property
    def failed(self) -> bool:
        """True once following the origin stopped on an error (every request then gets 502)."""
        return self._error is not None

    def idle_for(self, now: float) -> float:
        """Seconds (on the event loop's clock, ``now``) since the last request for this rendition
        ended; 0 while one is under way or before the first."""
        if self._active or self._last_used is None:
            return 0.0
        return now - self._last_used

    def touch(self) -> None:
        """Count now as a use (the idle time starts again)."""
        self._last_used = asyncio.get_running_loop().time()

    @contextlib.contextmanager
    def _in_use(self) -> Iterator[None]:
        self._active += 1
        try:
            yield
        finally:
            self._active -= 1
            self._last_used = asyncio.get_running_loop().time()

    def _wake(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    # ------------------------------------------------------------------ what the player asks

    @property
    def playlist(self) -> MediaPlaylist | None:
        """The relay's copy of the origin's playlist (None before the first load)."""
        return self.stream.playlist

    async def blocking_playlist(self, directives: DeliveryDirectives) -> MediaPlaylist:
        """The playlist once it satisfies ``directives`` (at once without ``_HLS_msn``); raises
        :class:`ProxyHoldError` as the module docstring says."""
        with self._in_use():
            return await self._blocking_playlist(directives)

    async def _blocking_playlist(self, directives: DeliveryDirectives) -> MediaPlaylist:
        playlist = await self._first_playlist()
        msn, part = directives.msn, directives.part
        if msn is None or self._published(playlist, msn, part):
            return playlist
        self._check_not_too_far(playlist, msn, part)
        what = f"_HLS_msn={msn}" + ("" if part is None else f"&_HLS_part={part}")
        return await self._held_until(
            lambda p: p if self._published(p, msn, part) else None, playlist, what=what
        )

    async def part(self, sequence: int, index: int) -> tuple[Part | None, bytes]:
        """Part ``index`` of segment ``sequence``: its bytes (held while it is not published yet,
        as a preload hint's request is). Raises :class:`ProxyHoldError`."""
        with self._in_use():
            return await self._part(sequence, index)

    async def _part(self, sequence: int, index: int) -> tuple[Part | None, bytes]:
        part_id = PartId(SegmentId(self.stream.rendition, sequence), index)
        playlist = await self._first_playlist()
        data = self._parts.get(part_id)
        if data is not None:
            self.parts_from_stream += 1
            return _listed_parts(playlist).get((sequence, index)), data
        listed = _listed_parts(playlist).get((sequence, index))
        if listed is None:
            self._check_part_upcoming(playlist, sequence, index)
            listed = await self._held_until(
                lambda p: _listed_parts(p).get((sequence, index)), playlist, what=f"part {sequence}.{index}"
            )
        if listed.gap:
            raise ProxyHoldError(404, f"part {sequence}.{index} is a gap (GAP=YES): it has no media")
        # The stream fetches every part after the last one it handed over, in order: wait for it a
        # little (two part targets), else fetch the part here.
        if self._handed is not None and (sequence, index) > self._handed and self._error is None:
            wait = 2 * (playlist.part_target or 1.0)
            with contextlib.suppress(ProxyHoldError):
                data = await self._held_until(
                    lambda _p: self._parts.get(part_id), playlist, what="", limit=wait
                )
                self.parts_from_stream += 1
                return listed, data
        data = self._parts.get(part_id)
        if data is None:
            data = await self._fetch_part(listed)
        else:
            self.parts_from_stream += 1
        return listed, data

    async def segment(self, segment: Segment) -> bytes:
        """A whole segment the relay's playlist lists (and the loader's does not yet), over HTTP."""
        with self._in_use():
            return await self._segment(segment)

    async def _segment(self, segment: Segment) -> bytes:
        request = FetchRequest.of_resource(segment.url, segment.byte_range, kind="segment")
        return await self._guarded(
            fetch_range(self._client, request, max_bytes=MAX_SEGMENT_SIZE, what="segment"),
            what=f"segment {segment.id.sequence}",
        )

    # ------------------------------------------------------------------ internals

    async def _first_playlist(self) -> MediaPlaylist:
        self.start()
        playlist = self.playlist
        if playlist is not None:
            return playlist
        return await self._held_until(lambda p: p, None, what="the first playlist", limit=30.0)

    def _limit(self, playlist: MediaPlaylist | None) -> float:
        if self._hold_limit is not None:
            return self._hold_limit
        return 3.0 * (playlist.target_duration if playlist is not None else 10)

    async def _held_until(
        self,
        ready: Callable[[MediaPlaylist], _T | None],
        playlist: MediaPlaylist | None,
        *,
        what: str,
        limit: float | None = None,
    ) -> _T:
        """Hold until ``ready(playlist)`` is not None (checked on every change of the relay's
        playlist or parts), at most ``limit`` seconds (default: the hold limit), then 503."""
        loop = asyncio.get_running_loop()
        seconds = self._limit(playlist) if limit is None else limit
        deadline = loop.time() + seconds
        with self._held.hold():
            while True:
                current = self.playlist
                if current is not None:
                    found = ready(current)
                    if found is not None:
                        return found
                    if current.end_list and what:
                        raise ProxyHoldError(404, f"{what}: the stream has ended")
                if self._closed:
                    raise ProxyHoldError(503, "the proxy is closing")
                if self._error is not None:
                    raise ProxyHoldError(502, f"following the origin failed: {self._error}")
                remaining = deadline - loop.time()
                if remaining <= 0:
                    raise ProxyHoldError(503, f"{what or 'the part'} not published within {seconds:g} s")
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._changed.wait(), min(remaining, _POLL_SECONDS))

    @staticmethod
    def _published(playlist: MediaPlaylist, msn: int, part: int | None) -> bool:
        if playlist.end_list or playlist.last_sequence >= msn:
            return True
        if part is None:
            return False
        last = _last_part(playlist)
        return last is not None and last >= (msn, part)

    def _check_not_too_far(self, playlist: MediaPlaylist, msn: int, part: int | None) -> None:
        last_msn = playlist.last_sequence + (1 if playlist.pending_parts else 0)
        if msn > last_msn + 2:
            raise ProxyHoldError(400, f"_HLS_msn={msn} is more than two segments past {last_msn}")
        if part is not None and playlist.part_target is not None:
            ahead = self._parts_ahead(playlist, msn, part)
            limit = advance_part_limit(playlist.part_target)
            if ahead > limit:
                raise ProxyHoldError(
                    400, f"_HLS_part={part} of {msn} is {ahead} parts past the last one (limit {limit})"
                )

    def _check_part_upcoming(self, playlist: MediaPlaylist, sequence: int, index: int) -> None:
        """404 unless part ``index`` of ``sequence`` may still be published soon (a preload hint's)."""
        if playlist.end_list or sequence < playlist.first_sequence:
            raise ProxyHoldError(404, f"part {sequence}.{index} is not in the playlist")
        if sequence <= playlist.last_sequence:
            count = _parts_of(playlist, sequence)
            raise ProxyHoldError(
                404, f"segment {sequence} is complete with {count or 'no listed'} parts: no part {index}"
            )
        ahead = self._parts_ahead(playlist, sequence, index)
        if playlist.part_target is None or ahead > advance_part_limit(playlist.part_target):
            raise ProxyHoldError(404, f"part {sequence}.{index} is not listed and not about to be")

    @staticmethod
    def _parts_ahead(playlist: MediaPlaylist, msn: int, part: int) -> int:
        """How many parts past the last listed one ``(msn, part)`` is (an estimate across segments:
        a segment is counted as its target duration over the part target)."""
        last = _last_part(playlist) or (playlist.last_sequence + 1, -1)
        if msn == last[0]:
            return part - last[1]
        per_segment = math.ceil(playlist.target_duration / (playlist.part_target or playlist.target_duration))
        return (msn - last[0]) * per_segment + part - last[1]

    async def _fetch_part(self, part: Part) -> bytes:
        """Part bytes over HTTP, one fetch shared by every request for it."""
        task = self._fetches.get(part.id)
        if task is None:
            request = FetchRequest.of_resource(part.url, part.byte_range)
            task = asyncio.get_running_loop().create_task(
                fetch_range(self._client, request, max_bytes=MAX_SEGMENT_SIZE)
            )
            self._fetches[part.id] = task
            self.parts_fetched += 1

            def done(_task: asyncio.Task[bytes], part_id: PartId = part.id) -> None:
                self._fetches.pop(part_id, None)
                if not _task.cancelled() and _task.exception() is None:
                    self._store(part_id, _task.result())

            task.add_done_callback(done)
        return await self._guarded(asyncio.shield(task), what=f"part {part.id}")

    async def _guarded(self, fetch: Awaitable[bytes], *, what: str) -> bytes:
        try:
            return await fetch
        except P2PLoaderError as exc:
            raise ProxyHoldError(502, f"{what}: {exc}") from exc
