"""Following a live Low-Latency HLS stream over HTTP: parts in order, as they are published.

:class:`LowLatencyStream` performs what :class:`~p2ploader.core.ll_follower.LowLatencyFollower`
decides: it loads the media playlist (blocking reloads, ``_HLS_msn``/``_HLS_part``, as soon as the
previous one returned), parses it (:func:`~p2ploader.hls.parse_media`) and folds it into a
:class:`~p2ploader.hls.LivePlaylistTracker` (continuous timeline, delta updates filled in), runs the
follower's fetches (parts, preload hints, whole segments) as concurrent GETs with the loader's HTTP
client, and hands the player :class:`~p2ploader.core.ll_follower.LowLatencyItem` s in order
(:meth:`LowLatencyStream.items`).

Peers. Without a ``part_swarm`` everything goes over HTTP. With one
(:class:`~p2ploader.aio.part_swarm.PartSwarm`, started on the first playlist and joined once the
player has its first item), every part and preload-hint fetch the follower asks for from then on
goes to that swarm's scheduler, which takes the part from
a p2ploader peer or from the origin (see :mod:`p2ploader.core.part_exchange`); a part the swarm
gives up on is fetched over HTTP here. Whole segments (behind the live edge, at the start) always
come over HTTP. :attr:`LowLatencyStatistics.p2p_bytes` counts the part bytes peers delivered.

Failures. A playlist load that fails (network, status, unparseable, inconsistent) is retried,
timed, by the follower's pace; after ``resync_after`` refreshes in a row that the tracker rejects
(a restarted packager), following re-syncs on the latest one. A part or segment GET that fails is
asked for again, up to ``max_attempts`` times, then :meth:`LowLatencyStream.items` raises
:class:`~p2ploader.errors.SegmentUnavailableError`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections import Counter
from collections.abc import AsyncIterator, Callable

import attrs
import httpx

from p2ploader.aio.http import read_body_capped
from p2ploader.aio.part_swarm import PartSwarm
from p2ploader.config import LoaderConfig
from p2ploader.core.ll_follower import (
    FetchRequest,
    LowLatencyFollower,
    LowLatencyItem,
    PlaylistRequest,
)
from p2ploader.core.part_exchange import parts_hold_back
from p2ploader.core.scheduler import MAX_SEGMENT_SIZE
from p2ploader.core.segments import ByteRange
from p2ploader.errors import (
    DeltaPlaylistError,
    HttpStatusError,
    P2PLoaderError,
    PlaylistError,
    SegmentUnavailableError,
    TransportError,
    UsageError,
)
from p2ploader.hls import LivePlaylistTracker, MediaPlaylist, parse_media

__all__ = ["LowLatencyStatistics", "LowLatencyStream"]

logger = logging.getLogger(__name__)

_CONTENT_RANGE_START = re.compile(r"bytes (\d+)-\d+/(?:\d+|\*)")


@attrs.define
class LowLatencyStatistics:
    """What a :class:`LowLatencyStream` did, counted. Sizes in bytes."""

    playlist_loads: int = 0
    blocking_playlist_loads: int = 0
    delta_playlist_loads: int = 0
    playlist_failures: int = 0
    part_fetches: int = 0
    hint_fetches: int = 0
    segment_fetches: int = 0
    fetch_failures: int = 0
    bytes: int = 0
    """Bytes handed to the follower (parts, hints and segments), from either source."""
    p2p_bytes: int = 0
    """Of :attr:`bytes`, those of parts the parts swarm took from peers."""
    swarm_fallbacks: int = 0
    """Parts the parts swarm gave up on, fetched over HTTP here instead."""
    resyncs: int = 0


class LowLatencyStream:
    """Follows one live (LL-)HLS media playlist over HTTP; see the module docstring.

    ``url`` is the media playlist, ``rendition`` its rendition id (segment ids carry it).
    ``client`` is used as it is (the caller owns it). ``hold_back`` overrides PART-HOLD-BACK
    (seconds; :func:`~p2ploader.core.ll_follower.check_hold_back` refuses 0 here, and a value under
    two part targets on the first playlist, with :class:`~p2ploader.errors.HoldBackError`);
    ``delta_updates`` asks for ``_HLS_skip=YES`` when the server allows it;
    ``resync_after`` and ``max_attempts`` as the module docstring says. ``clock`` (seconds) is
    the event loop's by default.
    """

    def __init__(
        self,
        url: str,
        *,
        client: httpx.AsyncClient,
        config: LoaderConfig | None = None,
        rendition: str = "v0",
        hold_back: float | None = None,
        delta_updates: bool = True,
        resync_after: int = 3,
        max_attempts: int = 3,
        clock: Callable[[], float] | None = None,
        part_swarm: PartSwarm | None = None,
    ) -> None:
        if max_attempts < 1:
            raise UsageError(f"max_attempts must be >= 1, got {max_attempts}")
        self.url = url
        self.rendition = rendition
        self.config = config if config is not None else LoaderConfig()
        self.statistics = LowLatencyStatistics()
        self._client = client
        self._follower = LowLatencyFollower(
            url, hold_back=hold_back, delta_updates=delta_updates, resync_after=resync_after
        )
        self._resync_after = resync_after
        self._max_attempts = max_attempts
        self._clock = clock
        self._tracker: LivePlaylistTracker | None = None
        self._rejected_in_a_row = 0
        self._attempts: Counter[tuple[str, int, int | None]] = Counter()
        self._tasks: set[asyncio.Task[None]] = set()
        self._closing: set[asyncio.Task[None]] = set()
        self._playlist_task: asyncio.Task[None] | None = None
        self._progress = asyncio.Event()
        self._error: P2PLoaderError | None = None
        self._init_sections: dict[tuple[str, ByteRange | None], bytes] = {}
        self._hold_back = hold_back
        self._part_swarm = part_swarm
        self._closed = False

    # ------------------------------------------------------------------ public

    @property
    def part_swarm(self) -> PartSwarm | None:
        """The parts swarm parts are taken from (None: HTTP only)."""
        return self._part_swarm

    def report_playback(self, position: float) -> None:
        """Where the player is (seconds on the playlist's timeline). With a parts swarm, its
        deadlines (the HTTP critical window) count from there; without one it does nothing."""
        swarm = self._part_swarm
        if swarm is None:
            return
        try:
            swarm.report_playback(position)
        except Exception:
            # The swarm is an extra (as in _update_part_swarm): whatever breaks it, the stream and
            # the caller reporting go on over HTTP alone.
            logger.exception("the LL-HLS parts swarm of %s failed; parts come over HTTP", self.rendition)
            self._drop_part_swarm(swarm)

    @property
    def follower(self) -> LowLatencyFollower:
        """The sans-IO follower this stream drives (its start point, its re-syncs)."""
        return self._follower

    @property
    def playlist(self) -> MediaPlaylist | None:
        """The latest playlist, on the tracker's continuous timeline (None before the first)."""
        return self._tracker.current if self._tracker is not None else None

    async def items(self) -> AsyncIterator[LowLatencyItem]:
        """Parts (and whole segments behind the live edge) in play order, each as soon as its bytes
        are here; ends when the stream ends (EXT-X-ENDLIST). Raises the first error that stops
        following (:class:`~p2ploader.errors.SegmentUnavailableError`, or a first playlist that
        cannot be loaded)."""
        self._start()
        while True:
            item = self._follower.next_ready()
            if item is not None:
                self._pump()
                yield item
                self._join_part_swarm()
                continue
            if self._error is not None:
                raise self._error
            if self._follower.finished:
                return
            if self._closed:
                return
            self._progress.clear()
            await self._progress.wait()

    async def init_section(self, item: LowLatencyItem) -> bytes | None:
        """The bytes of ``item``'s initialisation section (EXT-X-MAP: the fMP4 ``moov`` a decoder
        needs before the item's bytes), over HTTP, once per URI and byte range; None without one."""
        section = item.init_section
        if section is None:
            return None
        key = (section.url, section.byte_range)
        cached = self._init_sections.get(key)
        if cached is None:
            fetch = FetchRequest.of_resource(section.url, section.byte_range, kind="segment")
            cached = await fetch_range(self._client, fetch, max_bytes=MAX_SEGMENT_SIZE, what="init section")
            self._init_sections[key] = cached
        return cached

    async def aclose(self) -> None:
        """Stop every load. Idempotent."""
        self._closed = True
        tasks = [*self._tasks, *([self._playlist_task] if self._playlist_task is not None else [])]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._tasks.clear()
        await asyncio.gather(*self._closing, return_exceptions=True)
        if self._part_swarm is not None:
            await self._part_swarm.aclose()
        self._progress.set()

    async def __aenter__(self) -> LowLatencyStream:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    # ------------------------------------------------------------------ playlists

    def _now(self) -> float:
        return self._clock() if self._clock is not None else asyncio.get_running_loop().time()

    def _start(self) -> None:
        if self._playlist_task is None and not self._closed:
            self._playlist_task = asyncio.get_running_loop().create_task(
                self._follow_playlist(), name=f"ll-playlist-{self.rendition}"
            )

    async def _follow_playlist(self) -> None:
        try:
            while not self._closed:
                request = self._follower.next_playlist_request()
                if request is None:
                    return
                delay = request.not_before - self._now()
                if delay > 0:
                    await asyncio.sleep(delay)
                await self._load_playlist(request)
        except P2PLoaderError as exc:
            self._fail(exc)
        except Exception as exc:  # a task that dies silently would leave items() waiting for good
            logger.exception("following %s failed unexpectedly", self.url)
            self._fail(TransportError(self.url, f"unexpected {type(exc).__name__}: {exc}"))

    async def _load_playlist(self, request: PlaylistRequest) -> None:
        stats = self.statistics
        stats.playlist_loads += 1
        stats.blocking_playlist_loads += request.blocking
        stats.delta_playlist_loads += request.skip
        first = self._tracker is None
        requested_at = self._now()
        try:
            text = await self._fetch_playlist(request.url, held=request.blocking)
            # Relative URIs resolve against the playlist's own URL (the directives only add a query).
            parsed = parse_media(text, self.url, rendition=self.rendition)
        except P2PLoaderError as exc:
            if first:
                raise  # nothing to follow: the caller hears why
            stats.playlist_failures += 1
            logger.warning("LL-HLS playlist load failed: %s", exc)
            self._follower.playlist_failed(now=self._now())
            return
        now = self._now()
        if self._tracker is None:
            self._tracker = LivePlaylistTracker(parsed)
            self._follower.playlist_received(self._tracker.current, now=now, requested_at=requested_at)
        else:
            try:
                self._tracker.update(parsed)
                self._follower.playlist_received(self._tracker.current, now=now, requested_at=requested_at)
                self._rejected_in_a_row = 0
            except DeltaPlaylistError as exc:
                self.statistics.playlist_failures += 1
                logger.warning("LL-HLS delta update could not be merged, reloading in full: %s", exc)
                self._follower.playlist_failed(now=now, delta_refused=True)
            except PlaylistError as exc:
                self._rejected(parsed, exc, now=now)
        stats.resyncs = self._follower.resyncs
        await self._update_part_swarm()
        self._pump()

    def _join_part_swarm(self) -> None:
        """The player has an item: the parts swarm may join now (see :meth:`PartSwarm.join`)."""
        swarm = self._part_swarm
        if swarm is None or swarm.joined or not swarm.started or self._closed:
            return
        task = asyncio.get_running_loop().create_task(swarm.join(), name=f"ll-parts-join-{self.rendition}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _update_part_swarm(self) -> None:
        swarm, playlist = self._part_swarm, self.playlist
        if swarm is None or playlist is None or self._closed:
            return
        hold_back = 0.0
        if not swarm.started:
            hold_back = parts_hold_back(playlist, given=self._hold_back, start=self._follower.start)
        try:
            if not swarm.started:
                await swarm.start(playlist, hold_back=hold_back)
            else:
                swarm.update(playlist)
        except Exception:
            # The swarm is an extra: whatever breaks it, the stream goes on over HTTP alone.
            logger.exception("the LL-HLS parts swarm of %s failed; parts come over HTTP", self.rendition)
            self._part_swarm = None
            await swarm.aclose()

    def _drop_part_swarm(self, swarm: PartSwarm) -> None:
        """Go on over HTTP alone; the swarm is closed in the background (from a plain call)."""
        self._part_swarm = None
        task = asyncio.get_running_loop().create_task(swarm.aclose(), name=f"ll-parts-close-{self.rendition}")
        self._closing.add(task)  # awaited, not cancelled, by aclose: a swarm half closed leaks links
        task.add_done_callback(self._closing.discard)

    def _rejected(self, parsed: MediaPlaylist, exc: PlaylistError, *, now: float) -> None:
        """A refresh the tracker or the follower refused: retry timed; re-sync after too many."""
        self.statistics.playlist_failures += 1
        self._rejected_in_a_row += 1
        if self._rejected_in_a_row < self._resync_after:
            logger.warning("LL-HLS playlist refresh ignored: %s", exc)
            self._follower.playlist_failed(now=now)
            return
        logger.warning(
            "LL-HLS playlist refused %d times in a row, re-syncing: %s", self._rejected_in_a_row, exc
        )
        self._rejected_in_a_row = 0
        self._tracker = LivePlaylistTracker(parsed)
        self._follower.resync(self._tracker.current, now=now)

    def _held_timeout(self) -> httpx.Timeout:
        """The client's timeouts, with a read timeout long enough for a request the server holds:
        a blocking reload or a preload hint waits up to three target durations (RFC 8216bis
        §6.2.5.2), one second more for the answer to arrive."""
        base = self._client.timeout
        playlist = self.playlist
        held = 3.0 * (playlist.target_duration if playlist is not None else 10) + 1.0
        read = None if base.read is None else max(base.read, held)
        return httpx.Timeout(connect=base.connect, read=read, write=base.write, pool=base.pool)

    async def _fetch_playlist(self, url: str, *, held: bool) -> str:
        request = FetchRequest(url=url, offset=0, length=None, kind="segment")
        timeout = self._held_timeout() if held else None
        data = await fetch_range(
            self._client,
            request,
            max_bytes=self.config.max_playlist_bytes,
            held_timeout=timeout,
            what="playlist",
        )
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise PlaylistError(url, f"not UTF-8 text ({exc.reason} at byte {exc.start})") from exc

    # ------------------------------------------------------------------ fetches

    def _pump(self) -> None:
        """Start the fetches the follower asks for; wake :meth:`items`."""
        self._progress.set()
        if self._closed:
            return
        loop = asyncio.get_running_loop()
        for fetch in self._follower.take_fetches():
            task = loop.create_task(self._fetch(fetch), name=f"ll-fetch-{fetch.url}")
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _fetch(self, fetch: FetchRequest) -> None:
        stats = self.statistics
        if fetch.kind == "hint":
            stats.hint_fetches += 1
        elif fetch.kind == "part":
            stats.part_fetches += 1
        else:
            stats.segment_fetches += 1
        try:
            data = await self._fetch_from_swarm(fetch)
            if data is None:
                timeout = self._held_timeout() if fetch.hint else None
                data = await fetch_range(
                    self._client, fetch, max_bytes=MAX_SEGMENT_SIZE, held_timeout=timeout
                )
        except P2PLoaderError as exc:
            self._fetch_failed(fetch, exc)
        except Exception as exc:
            logger.exception("LL-HLS fetch of %s failed unexpectedly", fetch.url)
            self._fetch_failed(fetch, TransportError(fetch.url, f"unexpected {type(exc).__name__}"))
        else:
            stats.bytes += len(data)
            self._attempts.pop(fetch.key, None)
            self._follower.fetch_completed(fetch, data)
        self._pump()

    async def _fetch_from_swarm(self, fetch: FetchRequest) -> bytes | None:
        """``fetch``'s bytes from the parts swarm, or None: not a part of it (a whole segment, no
        swarm) or the swarm gave it up (then it comes over HTTP, counted in ``swarm_fallbacks``)."""
        swarm = self._part_swarm
        if swarm is None or not swarm.joined:
            return None  # before the player's first item: HTTP, as without peers
        entry = swarm.index.segment_for(fetch)
        if entry is None:
            return None
        try:
            data, source = await swarm.fetch(entry)
        except P2PLoaderError as exc:
            if self._closed:
                raise
            self.statistics.swarm_fallbacks += 1
            logger.debug("parts swarm gave %s up, over HTTP: %s", fetch.url, exc)
            return None
        if source == "p2p":
            self.statistics.p2p_bytes += len(data)
        return data

    def _fetch_failed(self, fetch: FetchRequest, exc: P2PLoaderError) -> None:
        self.statistics.fetch_failures += 1
        if fetch.hint:
            logger.debug("preload hint %s failed: %s", fetch.url, exc)
            self._follower.fetch_failed(fetch)
            return
        self._attempts[fetch.key] += 1
        if self._attempts[fetch.key] >= self._max_attempts:
            self._fail(SegmentUnavailableError(fetch.url, str(exc)))
            return
        logger.warning("LL-HLS fetch failed, asking again: %s", exc)
        self._follower.fetch_failed(fetch)

    def _fail(self, exc: P2PLoaderError) -> None:
        if self._error is None:
            self._error = exc
        self._progress.set()


async def fetch_range(
    client: httpx.AsyncClient,
    fetch: FetchRequest,
    *,
    max_bytes: int,
    held_timeout: httpx.Timeout | None = None,
    what: str = "part",
) -> bytes:
    """GET ``fetch``'s bytes (its ``Range``, if any), at most ``max_bytes`` (else
    :class:`~p2ploader.errors.ResponseTooLargeError` naming ``what``); map failures to p2ploader
    errors. An origin that ignores ``Range`` (200) is read through to the range. ``held_timeout``
    replaces the client's timeouts for this request (a request the server holds)."""
    range_value = fetch.range_header()
    headers = {"Accept-Encoding": "identity"}
    if range_value is not None:
        headers["Range"] = range_value
    need = None if fetch.length is None else fetch.offset + fetch.length
    try:
        timeout = httpx.USE_CLIENT_DEFAULT if held_timeout is None else held_timeout
        async with client.stream("GET", fetch.url, headers=headers, timeout=timeout) as response:
            status = response.status_code
            if status >= 400 or status not in (200, 206):
                raise HttpStatusError(fetch.url, status)
            skip = 0
            if status == 206:
                match = _CONTENT_RANGE_START.fullmatch(response.headers.get("Content-Range", ""))
                if match is None or int(match.group(1)) != fetch.offset:
                    raise HttpStatusError(
                        fetch.url, status, f"Content-Range {response.headers.get('Content-Range')!r}"
                    )
                need = fetch.length
            elif range_value is not None:
                skip = fetch.offset  # the whole resource: read through to the range
            body = await read_body_capped(
                response,
                fetch.url,
                status,
                stop_at=need,
                cap=max_bytes + skip,
                what=what,
                limit=max_bytes,
            )
    except httpx.HTTPError as exc:
        raise TransportError(fetch.url, f"{type(exc).__name__}: {exc}") from exc
    data = body[skip:]
    if fetch.length is not None:
        if len(data) < fetch.length:
            raise HttpStatusError(fetch.url, status, f"expected {fetch.length} bytes, got {len(data)}")
        data = data[: fetch.length]
    return data


@contextlib.asynccontextmanager
async def open_low_latency_stream(
    url: str,
    *,
    client: httpx.AsyncClient | None = None,
    config: LoaderConfig | None = None,
    rendition: str = "v0",
    hold_back: float | None = None,
) -> AsyncIterator[LowLatencyStream]:
    """A :class:`LowLatencyStream` on ``url`` (with an HTTP client of its own unless ``client``
    is given), closed on exit."""
    from p2ploader.aio.http import open_http_client

    config = config if config is not None else LoaderConfig()
    owned = client is None
    http = client if client is not None else open_http_client(config, stream_url=url)
    stream = LowLatencyStream(url, client=http, config=config, rendition=rendition, hold_back=hold_back)
    try:
        yield stream
    finally:
        await stream.aclose()
        if owned:
            await http.aclose()
