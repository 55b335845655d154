"""What the proxy serves, independent of HTTP: playlists, segments, keys and init sections, all
through loaders, plus the playback position it infers and reports to them.

* **Variants** (``v<i>``) go through the one :class:`~p2ploader.aio.loader.HybridLoader` the proxy
  was opened with. A request for a variant the loader is not on switches it
  (:meth:`~p2ploader.aio.loader.HybridLoader.select_rendition`) through a
  :class:`~p2ploader.proxy.gate.RenditionGate`, so no request in flight is dropped by the switch.
* **EXT-X-MEDIA renditions with a URI** (``m<i>``: separate audio, subtitles, video angles): the
  audio (and subtitles) rendition the loader chose for its variant is served by the loader's own
  companion (:attr:`~p2ploader.aio.loader.HybridLoader.audio`), which shares it in P2P Media
  Loader's swarm for that audio track. The first request for any other audio or subtitles rendition
  opens another companion of the loader for it (:func:`~p2ploader.aio.alternates.open_companion`:
  same settings, that track's P2P Media Loader swarm); any other EXT-X-MEDIA rendition (a video
  angle) gets a loader on its media playlist. Both are kept until the proxy closes.
* **Segments** come from ``loader.get_segment`` (cache, peers or HTTP). Before and after each request,
  and a few times a second, the proxy reports the playhead estimated by a
  :class:`~p2ploader.proxy.playhead.PlayheadEstimator` per loader.
* **Keys and init sections** come from ``loader.fetch_key`` / ``loader.fetch_init_section``: HTTP
  only, never the segment cache, never peers. Segments are served as published (encrypted ones
  stay encrypted, ``LoaderConfig.decrypt`` notwithstanding): the player decrypts them.
* **Low-Latency HLS** (a live variant whose playlist has ``EXT-X-PART-INF``): a
  :class:`~p2ploader.proxy.low_latency.LowLatencyRelay` per variant follows the origin's playlist
  part by part with the loader's :meth:`~p2ploader.aio.loader.HybridLoader.low_latency_stream`;
  the variant's playlist is rendered from the relay's copy with the LL-HLS tags, blocking reloads
  (``_HLS_msn``/``_HLS_part``) are held by the proxy, parts and preload hints are served from what
  the relay received (see :mod:`p2ploader.proxy.low_latency`). Whole segments still come from the
  loader; one the relay lists before the loader's own refresh does is fetched over HTTP.
* **I-frame playlists** (``i<i>``, trick play) are fetched with ``loader.i_frame_playlist`` (once for
  a VOD playlist, on every request for a live one) and each I-frame with ``loader.fetch_i_frame``:
  exactly its byte range, over HTTP only, never through a swarm. They count as playlist and
  segment requests, not as segments served (those are the loaders' segments).

Every outcome that is not a body is a :class:`ProxyError` with the HTTP status to answer: 404 for a
rendition, segment, key or init section the origin's playlists do not (or no longer) list and for
an ``EXT-X-GAP`` segment (no media: neither the origin nor a peer is asked), 502 when
the origin failed, 503 once the proxy is closing, 504 when a segment took longer than
``segment_timeout``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Literal

import attrs
import httpx

from p2ploader.aio.alternates import open_companion
from p2ploader.aio.http import open_http_client
from p2ploader.aio.loader import HybridLoader, LoadedSegment, LoaderStatistics, open_loader
from p2ploader.config import LoaderConfig
from p2ploader.core.segments import Segment, SegmentId
from p2ploader.errors import (
    DirectiveError,
    LoaderClosedError,
    P2PLoaderError,
    PlaylistError,
    SegmentUnavailableError,
    UsageError,
)
from p2ploader.hls import AlternateRendition, MediaPlaylist
from p2ploader.proxy import paths
from p2ploader.proxy.gate import RenditionGate
from p2ploader.proxy.low_latency import HeldRequests, LowLatencyRelay, ProxyHoldError, parse_directives
from p2ploader.proxy.paths import Token
from p2ploader.proxy.playhead import PlayheadEstimator
from p2ploader.proxy.playlists import render_master, render_media
from p2ploader.proxy.resources import ResourceTable

__all__ = ["Body", "ProxyBackend", "ProxyError", "ProxyStatistics", "ServedSegment"]

logger = logging.getLogger(__name__)


class ProxyError(Exception):
    """A request the proxy answers with an error ``status`` and a short plain-text ``message``."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"{status}: {message}")
        self.status = status
        self.message = message


@attrs.frozen(kw_only=True)
class Body:
    """A successful answer: bytes and their Content-Type."""

    data: bytes
    content_type: str
    cache_control: str | None = None


@attrs.frozen(kw_only=True)
class ServedSegment:
    """A segment the proxy delivered to the player."""

    rendition: str
    """The proxy's rendition token (``"v1"``, ``"m0"``)."""
    sequence: int
    data: bytes
    source: Literal["http", "p2p", "cache"]
    segment: Segment


@attrs.frozen(kw_only=True)
class ProxyStatistics:
    """A snapshot of a proxy's figures. ``loader`` is the main (variant) loader's statistics."""

    loader: LoaderStatistics
    playlist_requests: int
    segment_requests: int
    key_requests: int
    init_requests: int
    segments_served: int
    segment_bytes_served: int
    errors: int
    """Requests answered with an error status (refusals by the request guard included)."""
    refused: int
    """Requests refused by the request guard (foreign Host 403, bad request target 400)."""
    rendition_switches: int
    alternate_loaders: int
    """Loaders serving EXT-X-MEDIA renditions: those opened for them, and the main loader's audio
    and subtitles companions once a player asked for their rendition."""
    position: float | None
    """The last playhead reported to the main loader (seconds on its timeline)."""
    part_requests: int = 0
    """LL-HLS part (and preload hint) requests."""
    blocking_playlist_requests: int = 0
    """LL-HLS playlist requests with ``_HLS_msn`` (blocking reloads)."""
    held_peak: int = 0
    """The most LL-HLS requests held at once."""
    held_refused: int = 0
    """LL-HLS requests refused (503) because ``max_held_requests`` were held already."""
    low_latency_relays: int = 0
    """LL-HLS variants the proxy follows now (one relay each; closed after ``relay_idle_timeout``
    seconds without a request)."""
    parts_fetched: int = 0
    """Parts the proxy fetched itself because the LL-HLS stream had not handed them over (the
    player asked for a part before the stream's start point, or one evicted)."""
    relayed_bytes: int = 0
    """Bytes of LL-HLS media (parts, hints, whole segments) the relays' streams received."""
    relayed_p2p_bytes: int = 0
    """Of :attr:`relayed_bytes`, those taken from peers through a parts swarm (``p2p_parts``)."""


@attrs.define
class _Counters:
    playlist_requests: int = 0
    segment_requests: int = 0
    key_requests: int = 0
    init_requests: int = 0
    part_requests: int = 0
    blocking_playlist_requests: int = 0
    segments_served: int = 0
    segment_bytes_served: int = 0
    errors: int = 0
    refused: int = 0


class _Source:
    """One loader and what the player did with it."""

    def __init__(self, loader: HybridLoader, gate: RenditionGate | None) -> None:
        self.loader = loader
        self.gate = gate
        self.estimator = PlayheadEstimator()
        self.last_position: float | None = None


class ProxyBackend:
    """Serves a stream's playlists, segments, keys and init sections through loaders.

    ``loader`` is started and owned by the caller; alternate-rendition loaders opened here are
    closed by :meth:`aclose`. ``lookahead`` is the number of segments the player is assumed to
    fetch ahead of its playhead (``None``: ``config.required_segments_priority``, so no request waits
    for peers); see :mod:`p2ploader.proxy.playhead`. With ``pin_rendition`` the master playlist
    lists only the variant the loader is on when the backend is created, and the others are 404:
    the loader never switches (for players that read every variant, such as ffmpeg, or a fixed
    quality). LL-HLS: ``block_timeout`` is how long a blocking reload or a part request is held at
    most (seconds; None: three target durations, as RFC 8216bis says), ``max_held_requests`` how
    many are held at once (one more is 503), ``relay_idle_timeout`` how many seconds a variant's
    relay keeps following the origin after its last request (a player switched away or left).
    ``p2p_parts`` (default False: parts over HTTP only) lets each relay take LL-HLS parts from other
    p2ploader viewers too, through the rendition's parts swarm (see
    :meth:`~p2ploader.aio.loader.HybridLoader.low_latency_stream`; needs ``use_p2p`` and a tracker).
    """

    def __init__(
        self,
        loader: HybridLoader,
        *,
        lookahead: int | None = None,
        segment_timeout: float = 30.0,
        report_interval: float = 0.25,
        pin_rendition: bool = False,
        block_timeout: float | None = None,
        max_held_requests: int = 64,
        relay_idle_timeout: float = 30.0,
        p2p_parts: bool = False,
    ) -> None:
        if not relay_idle_timeout > 0:
            raise UsageError(f"relay_idle_timeout must be > 0 seconds, got {relay_idle_timeout}")
        if block_timeout is not None and not block_timeout > 0:
            raise UsageError(f"block_timeout must be None or > 0 seconds, got {block_timeout}")
        if max_held_requests < 1:
            raise UsageError(f"max_held_requests must be >= 1, got {max_held_requests}")
        if lookahead is not None and lookahead < 0:
            raise UsageError(f"lookahead must be >= 0 segments, got {lookahead}")
        if segment_timeout <= 0:
            raise UsageError(f"segment_timeout must be > 0 seconds, got {segment_timeout}")
        self.loader = loader
        self.config: LoaderConfig = loader.config
        self._lookahead = lookahead if lookahead is not None else self.config.required_segments_priority
        self._segment_timeout = segment_timeout
        self._report_interval = report_interval
        self._pinned = loader.master.variant_by_id(loader.rendition) if pin_rendition else None
        self._gate = RenditionGate(lambda: loader.rendition, loader.select_rendition)
        self._main = _Source(loader, self._gate)
        self._alternates: dict[int, _Source] = {}
        self._companions: dict[int, _Source] = {}  # rendition index -> the main loader's companion
        self._alternate_locks: dict[int, asyncio.Lock] = {}
        self._i_frame_playlists: dict[int, MediaPlaylist] = {}
        self._stack = contextlib.AsyncExitStack()
        self._tables: dict[Token, ResourceTable] = {}
        self._counters = _Counters()
        self._listeners: list[Callable[[ServedSegment], None]] = []
        self._reporter: asyncio.Task[None] | None = None
        self._block_timeout = block_timeout
        self._held = HeldRequests(max_held_requests)
        self._relays: dict[Token, LowLatencyRelay] = {}
        self._relay_idle_timeout = relay_idle_timeout
        self._p2p_parts = p2p_parts
        self._closed_relay_bytes = (0, 0)  # (all part bytes, from peers) of closed relays
        self._closing: set[asyncio.Task[None]] = set()
        self._closed_relay_parts = 0
        self._relay_client: httpx.AsyncClient | None = None
        self._closed = False

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> None:
        """Start reporting the estimated playhead to the loaders."""
        if self._reporter is None:
            self._reporter = asyncio.get_running_loop().create_task(
                self._report_forever(), name="p2ploader-proxy-playhead"
            )

    async def aclose(self) -> None:
        """Stop reporting and close the alternate-rendition loaders (not the main loader). Idempotent."""
        if self._closed:
            return
        self._closed = True
        if self._reporter is not None:
            self._reporter.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reporter
        await self._gate.aclose()
        relays = [relay.aclose() for relay in self._relays.values()]
        await asyncio.gather(*relays, *self._closing, return_exceptions=True)
        await self._stack.aclose()

    # ------------------------------------------------------------------ figures and listeners

    def add_listener(self, listener: Callable[[ServedSegment], None]) -> Callable[[], None]:
        """Call ``listener`` with every segment delivered to the player; returns a remover."""
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener) if listener in self._listeners else None

    def count_refused(self, status: int) -> None:
        self._counters.refused += 1
        self._counters.errors += 1

    def count_error(self) -> None:
        self._counters.errors += 1

    def statistics(self) -> ProxyStatistics:
        c = self._counters
        relays = [relay.stream.statistics for relay in self._relays.values()]
        closed_bytes, closed_p2p_bytes = self._closed_relay_bytes
        return ProxyStatistics(
            loader=self.loader.statistics(),
            playlist_requests=c.playlist_requests,
            segment_requests=c.segment_requests,
            key_requests=c.key_requests,
            init_requests=c.init_requests,
            segments_served=c.segments_served,
            segment_bytes_served=c.segment_bytes_served,
            errors=c.errors,
            refused=c.refused,
            rendition_switches=self._gate.switches,
            alternate_loaders=len(self._alternates) + len(self._companions),
            position=self._main.last_position,
            part_requests=c.part_requests,
            blocking_playlist_requests=c.blocking_playlist_requests,
            held_peak=self._held.peak,
            held_refused=self._held.refused,
            low_latency_relays=len(self._relays),
            parts_fetched=self._closed_relay_parts + sum(r.parts_fetched for r in self._relays.values()),
            relayed_bytes=closed_bytes + sum(stats.bytes for stats in relays),
            relayed_p2p_bytes=closed_p2p_bytes + sum(stats.p2p_bytes for stats in relays),
        )

    # ------------------------------------------------------------------ requests

    def master(self) -> Body:
        self._counters.playlist_requests += 1
        self._check_open()
        try:
            master = self.loader.master
        except UsageError as exc:
            raise ProxyError(503, "the loader is not started") from exc
        return Body(
            data=render_master(master, only=self._pinned).encode(),
            content_type=paths.PLAYLIST_CONTENT_TYPE,
            cache_control="no-cache",
        )

    async def media_playlist(self, token: Token, query: str = "") -> Body:
        """A media playlist; ``query`` is the request's raw query string (LL-HLS delivery
        directives, read for a low-latency variant only)."""
        self._counters.playlist_requests += 1
        relay: LowLatencyRelay | None = None
        if token.kind == "i":
            text = render_media(await self._i_frame_playlist(token, refresh=True), token, self._table(token))
        else:
            async with self._using(token) as source:
                relay = self._relay(token, source)
                if relay is None:
                    text = render_media(source.loader.playlist, token, self._table(token))
        if relay is not None:
            # Held outside the rendition gate: a blocking reload must not hold up a switch.
            text = await self._low_latency_playlist(relay, token, query)
        return Body(data=text.encode(), content_type=paths.PLAYLIST_CONTENT_TYPE, cache_control="no-cache")

    async def part(self, token: Token, sequence: int, index: int, extension: str) -> Body:
        """Part ``index`` of segment ``sequence`` of a low-latency variant (listed, or the one a
        preload hint names: held until it is published)."""
        self._counters.part_requests += 1
        relay = None
        if token.kind == "v":
            async with self._using(token) as source:
                relay = self._relay(token, source)
        if relay is None:
            raise ProxyError(404, f"rendition {token} is not a live low-latency stream: it has no parts")
        try:
            part, data = await relay.part(sequence, index)
        except ProxyHoldError as exc:
            raise ProxyError(exc.status, exc.message) from exc
        playlist = relay.playlist
        default = paths.segment_extension(playlist.segments[-1]) if playlist and playlist.segments else "m4s"
        if part is not None and paths.part_extension(part, default) != extension:
            raise ProxyError(404, f"part {sequence}.{index} is not a .{extension} file")
        return Body(data=data, content_type=paths.content_type("segment", extension))

    async def segment(self, token: Token, sequence: int, extension: str) -> Body:
        self._counters.segment_requests += 1
        if token.kind == "i":
            return await self._i_frame(token, sequence, extension)
        async with self._using(token) as source:
            loader = source.loader
            playlist = loader.playlist
            segment = playlist.segment_by_sequence(sequence)
            relay = self._relays.get(token)
            if segment is None and relay is not None and relay.playlist is not None:
                # Listed by the LL-HLS relay, not yet by the loader's own refresh.
                early = relay.playlist.segment_by_sequence(sequence)
                if early is not None and not early.gap and paths.segment_extension(early) == extension:
                    return await self._early_segment(relay, token, early, extension)
            if segment is None:
                raise ProxyError(404, _not_listed(playlist, sequence))
            if paths.segment_extension(segment) != extension:
                raise ProxyError(404, f"segment {sequence} is not a .{extension} file")
            if segment.gap:
                # EXT-X-GAP: the media is absent; neither the origin nor the swarm is asked.
                raise ProxyError(404, _gap(sequence))
            loaded = await self._load(source, playlist, segment)
        if loaded.source == "gap":  # a refresh marked it as a gap while we waited
            raise ProxyError(404, _gap(sequence))
        self._counters.segments_served += 1
        self._counters.segment_bytes_served += len(loaded.data)
        served = ServedSegment(
            rendition=str(token), sequence=sequence, data=loaded.data, source=loaded.source, segment=segment
        )
        for listener in list(self._listeners):
            try:
                listener(served)
            except Exception:  # an observer's bug must not cost the player its segment
                logger.exception("proxy segment listener failed")
        return Body(data=loaded.data, content_type=paths.content_type("segment", extension))

    async def key(self, token: Token, number: int) -> Body:
        self._counters.key_requests += 1
        source = await self._source(token)
        key = self._table(token).key(number)
        if key is None:
            raise ProxyError(404, f"no key {number} in rendition {token}")
        probe = Segment(id=SegmentId(str(token), 0), url=key.url or "", duration=0.0, key=key)
        data = await self._fetch(lambda: source.loader.fetch_key(probe), what=f"key {number}")
        return Body(data=data, content_type=paths.KEY_CONTENT_TYPE, cache_control="no-store")

    async def init_section(self, token: Token, number: int, extension: str) -> Body:
        self._counters.init_requests += 1
        source = await self._source(token)
        init = self._table(token).init(number)
        if init is None or paths.init_extension(init) != extension:
            raise ProxyError(404, f"no init section {number}.{extension} in rendition {token}")
        probe = Segment(id=SegmentId(str(token), 0), url=init.url, duration=0.0, init_section=init)
        data = await self._fetch(
            lambda: source.loader.fetch_init_section(probe), what=f"init section {number}"
        )
        return Body(data=data, content_type=paths.content_type("init", extension))

    # ------------------------------------------------------------------ LL-HLS

    def _relay(self, token: Token, source: _Source) -> LowLatencyRelay | None:
        """The relay of variant ``token`` (the loader is on it: call inside :meth:`_using`),
        started on the first request; None when the variant is not live LL-HLS."""
        relay = self._relays.get(token)
        if relay is not None and relay.failed:
            # The stream gave up (the origin failed for too long): follow afresh on this request.
            del self._relays[token]
            self._count_closed(relay)
            closing = asyncio.get_running_loop().create_task(relay.aclose())
            self._closing.add(closing)
            closing.add_done_callback(self._closing.discard)
            relay = None
        if relay is not None:
            relay.touch()  # not idle: a request is about to use it
            return relay
        if token.kind != "v" or source.gate is None:
            return None
        playlist = source.loader.playlist
        if playlist.part_target is None or playlist.end_list:
            return None
        self._check_open()
        if self._relay_client is None:
            # For what the relay fetches itself: the loader's settings and credentials scope.
            self._relay_client = open_http_client(self.config, stream_url=self.loader.credentials_url)
            self._stack.push_async_callback(self._relay_client.aclose)
        relay = LowLatencyRelay(
            source.loader.low_latency_stream(p2p=self._p2p_parts),
            self._relay_client,
            held=self._held,
            hold_limit=self._block_timeout,
        )
        relay.start()
        # Counted as used from its start: a first request refused before it used the relay (a bad
        # directive) must not leave it following the origin forever.
        relay.touch()
        self._relays[token] = relay  # closed by _close_idle_relays, a failure, or aclose
        return relay

    async def _low_latency_playlist(self, relay: LowLatencyRelay, token: Token, query: str) -> str:
        try:
            directives = parse_directives(query)
        except DirectiveError as exc:
            raise ProxyError(400, f"bad delivery directive: {exc}") from exc
        if directives.msn is not None:
            self._counters.blocking_playlist_requests += 1
        try:
            playlist = await relay.blocking_playlist(directives)
        except ProxyHoldError as exc:
            raise ProxyError(exc.status, exc.message) from exc
        try:
            return render_media(
                playlist, token, self._table(token), low_latency=True, report_token=self._report_token
            )
        except PlaylistError as exc:
            raise ProxyError(502, f"cannot re-serve the origin's playlist: {exc}") from exc

    def _report_token(self, url: str) -> Token | None:
        """The proxy's token for a rendition report's playlist: a variant the proxy serves."""
        for variant in self.loader.master.variants:
            if variant.url == url and (self._pinned is None or variant.index == self._pinned.index):
                return Token("v", variant.index)
        return None

    async def _early_segment(
        self, relay: LowLatencyRelay, token: Token, segment: Segment, extension: str
    ) -> Body:
        try:
            data = await relay.segment(segment)
        except ProxyHoldError as exc:
            raise ProxyError(exc.status, exc.message) from exc
        self._counters.segments_served += 1
        self._counters.segment_bytes_served += len(data)
        served = ServedSegment(
            rendition=str(token), sequence=segment.id.sequence, data=data, source="http", segment=segment
        )
        for listener in list(self._listeners):
            try:
                listener(served)
            except Exception:
                logger.exception("proxy segment listener failed")
        return Body(data=data, content_type=paths.content_type("segment", extension))

    # ------------------------------------------------------------------ internals

    def _check_open(self) -> None:
        if self._closed:
            raise ProxyError(503, "the proxy is closing")

    def _table(self, token: Token) -> ResourceTable:
        table = self._tables.get(token)
        if table is None:
            table = self._tables[token] = ResourceTable()
        return table

    async def _i_frame_playlist(self, token: Token, *, refresh: bool = False) -> MediaPlaylist:
        """The I-frame playlist of ``token``: fetched on the first request, and again on a playlist
        request (``refresh``) while it is live."""
        self._check_open()
        if token.index >= len(self.loader.master.i_frame_variants):
            raise ProxyError(404, f"no rendition {token}")
        known = self._i_frame_playlists.get(token.index)
        if known is not None and (known.end_list or not refresh):
            return known
        try:
            playlist = await self.loader.i_frame_playlist(token.index)
        except LoaderClosedError as exc:
            raise ProxyError(503, "the proxy is closing") from exc
        except P2PLoaderError as exc:
            raise ProxyError(502, f"cannot load rendition {token}: {exc}") from exc
        self._i_frame_playlists[token.index] = playlist
        return playlist

    async def _i_frame(self, token: Token, sequence: int, extension: str) -> Body:
        playlist = await self._i_frame_playlist(token)
        segment = playlist.segment_by_sequence(sequence)
        if segment is None:
            raise ProxyError(404, _not_listed(playlist, sequence))
        if paths.segment_extension(segment) != extension:
            raise ProxyError(404, f"segment {sequence} is not a .{extension} file")
        data = await self._fetch(lambda: self.loader.fetch_i_frame(segment), what=f"I-frame {sequence}")
        return Body(data=data, content_type=paths.content_type("segment", extension))

    async def _source(self, token: Token) -> _Source:
        self._check_open()
        master = self.loader.master
        if token.kind == "i":
            # Keys and init sections of an I-frame playlist: over HTTP by the main loader, which
            # fetches them for nobody else (no swarm involved).
            if token.index >= len(master.i_frame_variants):
                raise ProxyError(404, f"no rendition {token}")
            return self._main
        if token.kind == "v":
            if token.index >= len(master.variants) or (
                self._pinned is not None and token.index != self._pinned.index
            ):
                raise ProxyError(404, f"no rendition {token}")
            return self._main
        if token.index >= len(master.renditions) or master.renditions[token.index].url is None:
            raise ProxyError(404, f"no rendition {token}")
        companion = self._companion_for(token.index)
        if companion is not None:
            return companion
        source = self._alternates.get(token.index)
        if source is not None:
            return source
        lock = self._alternate_locks.setdefault(token.index, asyncio.Lock())
        async with lock:
            source = self._alternates.get(token.index)
            if source is None:
                rendition = master.renditions[token.index]
                if rendition.type in ("AUDIO", "SUBTITLES"):
                    loader = await self._open_companion(token, rendition)
                else:
                    loader = await self._open_rendition_loader(token, rendition.url)
                source = self._alternates[token.index] = _Source(loader, None)
        return source

    async def _open_companion(self, token: Token, rendition: AlternateRendition) -> HybridLoader:
        variant = self.loader.master.variant_by_id(self.loader.rendition)
        assert variant is not None
        try:
            loader = await open_companion(self.loader, rendition, variant)
        except P2PLoaderError as exc:
            raise ProxyError(502, f"cannot load rendition {token}: {exc}") from exc
        if self._closed:  # closed while we were opening it
            await loader.aclose()
            raise ProxyError(503, "the proxy is closing")
        self._stack.push_async_callback(loader.aclose)
        return loader

    async def _open_rendition_loader(self, token: Token, url: str | None) -> HybridLoader:
        assert url is not None
        # The rendition is part of the stream the user named: its credentials go where the main
        # loader's go (the stream's host), not to whatever host the master names here.
        opening = open_loader(url, config=self.config, credentials_url=self.loader.credentials_url)
        try:
            loader = await opening.__aenter__()
        except P2PLoaderError as exc:
            raise ProxyError(502, f"cannot load rendition {token}: {exc}") from exc
        if self._closed:  # closed while we were opening it
            await opening.__aexit__(None, None, None)
            raise ProxyError(503, "the proxy is closing")
        self._stack.push_async_exit(opening)
        return loader

    def _companion_for(self, index: int) -> _Source | None:
        """The main loader's audio or subtitles companion when it loads rendition ``index`` now (a
        variant switch may move it to another group's rendition: then it no longer serves it)."""
        rendition_id = self.loader.master.renditions[index].rendition_id
        for companion in (self.loader.audio, self.loader.subtitles):
            if companion is not None and companion.rendition == rendition_id:
                source = self._companions.get(index)
                if source is None or source.loader is not companion:
                    source = self._companions[index] = _Source(companion, None)
                return source
        return None

    @contextlib.asynccontextmanager
    async def _using(self, token: Token) -> AsyncIterator[_Source]:
        """The source of ``token``, with the main loader held on that variant for the body."""
        source = await self._source(token)
        if source.gate is None:
            yield source
            return
        rendition = self.loader.variants[token.index].rendition_id
        try:
            await source.gate.acquire(rendition)
        except LoaderClosedError as exc:
            raise ProxyError(503, "the proxy is closing") from exc
        except P2PLoaderError as exc:  # the switch could not load the variant's playlist
            raise ProxyError(502, f"cannot switch to rendition {token}: {exc}") from exc
        try:
            yield source
        finally:
            await source.gate.release()

    async def _load(self, source: _Source, playlist: MediaPlaylist, segment: Segment) -> LoadedSegment:
        loop = asyncio.get_running_loop()
        index = segment.id.sequence - playlist.media_sequence
        floor = playlist.segments[max(0, index - self._lookahead)].start
        ticket = source.estimator.requested(segment.start, segment.end, floor=floor, now=loop.time())
        # The EXT-X-GAP segments around it are never requested (a player skips them): they must not
        # hold the estimated playhead at their start.
        for neighbours in (playlist.segments[index + 1 :], reversed(playlist.segments[:index])):
            for near in neighbours:
                if not near.gap:
                    break
                source.estimator.gap(near.start, near.end, now=loop.time())
        self._report(source)
        delivered = False
        try:
            async with asyncio.timeout(self._segment_timeout):
                # The bytes as published, whatever config.decrypt says: the re-served playlist
                # keeps EXT-X-KEY and the player decrypts with the key it gets from us.
                loaded = await source.loader.get_segment(segment, decrypt=False)
            delivered = True
            return loaded
        except TimeoutError as exc:
            raise ProxyError(
                504, f"segment {segment.id.sequence} took longer than {self._segment_timeout} s"
            ) from exc
        except LoaderClosedError as exc:
            raise ProxyError(503, "the proxy is closing") from exc
        except SegmentUnavailableError as exc:
            now_listed = source.loader.playlist.segment_by_sequence(segment.id.sequence)
            if now_listed is None:
                raise ProxyError(404, _not_listed(source.loader.playlist, segment.id.sequence)) from exc
            raise ProxyError(502, f"segment {segment.id.sequence}: {exc.reason}") from exc
        finally:
            source.estimator.finished(ticket, delivered=delivered, now=loop.time())
            self._report(source)

    async def _fetch(self, fetch: Callable[[], Awaitable[bytes | None]], *, what: str) -> bytes:
        try:
            data = await fetch()
        except LoaderClosedError as exc:
            raise ProxyError(503, "the proxy is closing") from exc
        except P2PLoaderError as exc:
            raise ProxyError(502, f"{what}: {exc}") from exc
        if data is None:
            raise ProxyError(404, f"{what} has nothing to fetch")
        return data

    def _report(self, source: _Source) -> None:
        now = asyncio.get_running_loop().time()
        position = source.estimator.position(now)
        if position is None:
            return
        try:
            source.loader.report_playback(position, stalled=source.estimator.stalled(now))
        except UsageError:  # closed
            return
        source.last_position = position

    async def _report_forever(self) -> None:
        while True:
            for source in [self._main, *self._alternates.values()]:
                self._report(source)
            await self._close_idle_relays()
            await asyncio.sleep(self._report_interval)

    async def _close_idle_relays(self) -> None:
        """Stop following the variants no player asked for lately: a relay fetches every part of
        its variant, so one left running after an ABR switch would double the origin traffic."""
        now = asyncio.get_running_loop().time()
        for token, relay in list(self._relays.items()):
            if relay.idle_for(now) > self._relay_idle_timeout:
                del self._relays[token]
                self._count_closed(relay)
                await relay.aclose()

    def _count_closed(self, relay: LowLatencyRelay) -> None:
        """Keep a closed relay's figures in the proxy's totals."""
        self._closed_relay_parts += relay.parts_fetched
        total, p2p = self._closed_relay_bytes
        stats = relay.stream.statistics
        self._closed_relay_bytes = (total + stats.bytes, p2p + stats.p2p_bytes)


def _gap(sequence: int) -> str:
    return f"segment {sequence} is a gap (EXT-X-GAP): it has no media"


def _not_listed(playlist: MediaPlaylist, sequence: int) -> str:
    if sequence < playlist.media_sequence:
        return f"segment {sequence} left the live window (it starts at {playlist.media_sequence})"
    return f"segment {sequence} is not in the playlist ({playlist.first_sequence}..{playlist.last_sequence})"
