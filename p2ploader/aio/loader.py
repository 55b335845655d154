"""The public asyncio API a player embeds: :func:`open_loader` and :class:`HybridLoader`.

A :class:`HybridLoader` follows one rendition's media playlist (refreshing a live one about every
target duration), runs the scheduler through the :class:`~p2ploader.core.driver.Driver`, and hands the
player segments in play order. The player tells it where playback is (:meth:`report_playback`);
priorities, and so the split between the HTTP critical window and the P2P prefetch window, follow
from that.

Keys (EXT-X-KEY) and init sections (EXT-X-MAP) are fetched over HTTP only; they never enter the
segment cache, so they are never offered to peers. With decryption asked (``LoaderConfig.decrypt``
or ``decrypt=True``), only the player's copy of an AES-128 segment is decrypted; the cache and the
swarm keep the bytes as published.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import random
from collections.abc import AsyncIterator, Callable, Collection
from typing import Any, Literal

import attrs
import httpx

from p2ploader.aio.alternates import AlternateTracks
from p2ploader.aio.endpoint import SwarmEndpoint
from p2ploader.aio.http import HttpExecutor, fetch_bytes, open_http_client
from p2ploader.aio.integrity import IntegrityChecker, IntegrityStatistics, integrity_enabled
from p2ploader.aio.low_latency import LowLatencyStream
from p2ploader.aio.part_swarm import PartSwarm
from p2ploader.aio.peers import PeerManager
from p2ploader.aio.statistics import LoaderStatistics, MediaKind, MediaStatistics
from p2ploader.aio.swarms import SwarmSet
from p2ploader.aio.topology import TreeMembership
from p2ploader.aio.tracker_client import TrackerClient
from p2ploader.config import LoaderConfig
from p2ploader.core import events as ev
from p2ploader.core import notifications as nt
from p2ploader.core import swarm
from p2ploader.core.admission import AdmissionLimits
from p2ploader.core.driver import Driver
from p2ploader.core.integrity import parse_hash_tags
from p2ploader.core.ll_follower import LowLatencyItem
from p2ploader.core.part_exchange import parts_info_hash
from p2ploader.core.peer_limits import announcement_id_limit, segment_size_limit
from p2ploader.core.retries import FetchRetryPolicy
from p2ploader.core.scheduler import MAX_SEGMENT_SIZE, Scheduler
from p2ploader.core.segments import Segment, SegmentId
from p2ploader.core.topology import client_config, encode_peer_id_attributes, host_config
from p2ploader.core.upload_control import UploadController, UploadHold
from p2ploader.decryption import AES_KEY_BYTES, decrypt_in_steps, decryptable_key
from p2ploader.errors import (
    ConfigError,
    HttpStatusError,
    LivePlaylistStuckError,
    LoaderClosedError,
    P2PLoaderError,
    PlaylistError,
    PlaylistTooLargeError,
    ResponseTooLargeError,
    SegmentUnavailableError,
    UsageError,
)
from p2ploader.hls import (
    AlternateRendition,
    IFrameVariant,
    LivePlaylistTracker,
    MasterPlaylist,
    MediaPlaylist,
    StalePlaylistWatch,
    StaleVerdict,
    StartOffset,
    StartPoint,
    Variant,
    choose_start,
    low_latency_tags,
    parse_media,
    parse_playlist,
)
from p2ploader.renditions import MediaChoice, MediaType, audio_variant, find_variant, loadable
from p2ploader.status import P2P_OFF_LOG_MARK, TrackerState, public_services_message, tracker_warning

__all__ = ["HybridLoader", "LoadedSegment", "LoaderStatistics", "MediaKind", "MediaStatistics", "open_loader"]

logger = logging.getLogger(__name__)

Listener = Callable[[nt.Notification], None]


@attrs.frozen(kw_only=True)
class LoadedSegment:
    """Segment bytes for the player, with where they came from.

    A **gap marker** stands for a segment marked ``EXT-X-GAP`` (RFC 8216bis §4.4.4.7: its media is
    absent): :attr:`gap` is True, ``data`` is empty and ``source`` is ``"gap"``. Nothing was
    loaded for it, over HTTP or from peers; a player skips ``segment.duration`` seconds there (as
    hls.js does) instead of waiting for bytes, and must not hand the empty data to a decoder.
    """

    segment: Segment
    data: bytes
    """The segment's bytes: as published, or their plaintext when ``decrypted``; empty for a gap."""
    source: Literal["http", "p2p", "cache", "gap"]
    decrypted: bool = False
    """True when ``data`` is the plaintext of an AES-128 segment (decryption asked); False for
    bytes as published (a clear segment, or decryption not asked)."""

    @property
    def id(self) -> SegmentId:
        return self.segment.id

    @property
    def gap(self) -> bool:
        """True for a gap marker (``segment.gap``): no media, skip ``segment.duration`` seconds."""
        return self.segment.gap


@contextlib.asynccontextmanager
async def open_loader(
    url: str,
    *,
    config: LoaderConfig | None = None,
    rendition: str | int | None = None,
    audio: MediaChoice = None,
    subtitles: MediaChoice = None,
    seed: int | None = None,
    http_client: httpx.AsyncClient | None = None,
    credentials_url: str | None = None,
) -> AsyncIterator[HybridLoader]:
    """Open a loader on a master (or media) playlist URL; close it on exit.

    ``rendition`` picks a variant by rendition id (``"v1"``) or index; by default the first variant
    of the master playlist. An AUDIO rendition id (``"a:aud:English"``) picks the first variant of
    its group, with that audio. ``audio`` and ``subtitles`` choose the variant's EXT-X-MEDIA
    renditions, loaded alongside it (:attr:`HybridLoader.audio`, :attr:`HybridLoader.subtitles`):
    ``None`` automatic (audio: DEFAULT=YES, else the first AUTOSELECT, else the first; subtitles:
    DEFAULT=YES only), ``False`` none, ``True`` automatic even for subtitles, or a rendition id,
    LANGUAGE or NAME (see :mod:`p2ploader.renditions`); a choice that matches nothing raises
    :class:`~p2ploader.errors.RenditionNotFoundError`. ``seed`` makes the scheduler's random choices
    reproducible.
    ``http_client`` replaces the loader's own client and is used as it is: the config's timeouts do
    not apply to it, and a config that sets ``http_headers``, ``http_cookies`` or ``user_agent``
    with it raises :class:`~p2ploader.errors.ConfigError` (set them on the client instead).
    ``credentials_url`` names the stream whose host gets ``http_headers`` and ``http_cookies``
    (default ``url``): a loader on a part of a stream (an alternate rendition's playlist, which may
    be on any host the master names) passes the stream's own URL.
    """
    loader = HybridLoader(
        url, config=config, seed=seed, http_client=http_client, credentials_url=credentials_url
    )
    try:
        await loader.start(rendition=rendition, audio=audio, subtitles=subtitles)
        yield loader
    finally:
        await loader.aclose()


class HybridLoader:
    """Loads one stream's segments over HTTP and (with peers) P2P. Create with :func:`open_loader`."""

    def __init__(
        self,
        url: str,
        *,
        config: LoaderConfig | None = None,
        seed: int | None = None,
        http_client: httpx.AsyncClient | None = None,
        credentials_url: str | None = None,
    ) -> None:
        self.url = url
        self.credentials_url = credentials_url if credentials_url is not None else url
        """The URL whose origin (and ``http_headers_hosts``) gets ``http_headers`` and ``http_cookies``."""
        self.config = config if config is not None else LoaderConfig()
        self.media_type: MediaKind = "video"
        """What this loader loads; ``"audio"``/``"subtitles"`` for the companions that
        :attr:`audio` and :attr:`subtitles` return."""
        self._owns_client = http_client is None
        if http_client is not None and (
            self.config.http_headers or self.config.http_cookies or self.config.user_agent is not None
        ):
            # Silently dropping them would send requests the origin refuses, with no hint why.
            raise ConfigError(
                "http_headers, http_cookies and user_agent apply to the loader's own HTTP client; "
                "with http_client=..., set them on that client",
                key="http_headers",
            )
        self._client = http_client or open_http_client(self.config, stream_url=self.credentials_url)
        # Playlists, keys, init sections and I-frames are retried by the core's one policy, with
        # the config's settings (segments: the scheduler's, which a download policy may set).
        self._fetch_retry = FetchRetryPolicy.from_config(self.config)
        self._rng = random.Random(seed)
        # Integrity checks run as the scheduler's segment validator, wrapping the application's;
        # they draw from their own generator so the scheduler's choices stay those of its seed.
        self._integrity = IntegrityChecker(
            self._client,
            self.config,
            rng=random.Random(None if seed is None else seed + 1),
            on_failure=self._integrity_failed,
        )
        scheduler_config = self.config
        self._membership = TreeMembership(self.config) if self.config.topology == "host-client" else None
        self.peer_id = swarm.generate_peer_id(self._rng)
        """Our 20-byte peer id (``-PY0001-`` and 12 random characters; in a host/client swarm
        characters 8-12 carry our declared attributes)."""
        if self._membership is not None:
            self.peer_id = encode_peer_id_attributes(self.peer_id, self._membership.attributes)
            # Hosts load from the origin at once, clients never upload (depth 1).
            role_config = host_config if self._membership.role == "host" else client_config
            scheduler_config = role_config(scheduler_config)
        # The policy ranks us among our peers by this id (p2ploader-live's seeder election).
        # Segments holding peer bytes are checked (ValidateSegment) whenever a check may apply; the
        # driver runs them (IntegrityChecker.validation) with the application's validator.
        self._scheduler = Scheduler(
            scheduler_config,
            rng=self._rng,
            peer_id=self.peer_id.hex(),
            validate_p2p=integrity_enabled(self.config),
        )
        self._driver: Driver | None = None
        self._http: HttpExecutor | None = None
        self._master: MasterPlaylist | None = None
        self._variant: Variant | None = None
        self._tracker: LivePlaylistTracker | None = None
        self._playlist: MediaPlaylist | None = None
        self._playlist_changed = asyncio.Event()
        self._refresh_task: asyncio.Task[None] | None = None
        # Set when the first segment has been loaded: the swarm is joined then (swarm_join_delay).
        self._first_segment_loaded = asyncio.Event()
        self._join_task: asyncio.Task[None] | None = None
        self._waiters: dict[SegmentId, list[asyncio.Future[LoadedSegment]]] = {}
        self._listeners: list[Listener] = []
        self._keys: dict[str, bytes] = {}
        # A key's first fetch, shared by every caller that wants the key before it arrives.
        self._key_fetches: dict[str, asyncio.Task[bytes]] = {}
        self._init_sections: dict[tuple[str, int | None, int | None], bytes] = {}
        self._stalls = 0
        self._stalled = False
        self._refresh_errors = 0
        self._peers: PeerManager | None = None
        # The delay-based upload control, one per viewer: every swarm it joins (each rendition's,
        # and the audio companion's, which takes this one) uploads on the same uplink.
        delay_target = self.config.upload_delay_target
        self._upload_control = UploadController(target=delay_target) if delay_target > 0 else None
        # Uploads pause while a segment the player needs soon comes over HTTP (upload_yield_time):
        # one hold per viewer too, shared by its swarms and its HTTP fetches.
        self._upload_hold = UploadHold() if self.config.upload_yield_time > 0 else None
        self._swarms: SwarmSet | None = None
        self._lingering: dict[str, asyncio.Task[None]] = {}  # rendition -> its swarm's linger task
        self._uploaded_by_peer: dict[str, int] = {}
        self._tracker_client: TrackerClient | None = None
        self._timeline_shift = 0.0
        # LL-HLS part tags of each media playlist URL loaded (only those that have some), and the
        # URLs segments() already warned about: the warning waits for segments() to be used, since
        # a caller that follows the parts (parts(), low_latency_stream()) loses nothing.
        self._low_latency_tags: dict[str, tuple[str, ...]] = {}
        self._low_latency_warned: set[str] = set()
        self._p2p_off_warned = False  # "no tracker reachable" logged, not yet followed by a connection
        # Set when the live playlist stopped changing for live_playlist_stuck_reloads reloads.
        self._stuck: LivePlaylistStuckError | None = None
        self._alternates: AlternateTracks[HybridLoader] | None = None  # the audio/subtitles companions
        # Loaders whose swarms share bans with ours (we, and a parent with its companions): one
        # list object, shared by every member. See _share_bans_with.
        self._ban_family: list[HybridLoader] = [self]
        self._closed = False

    # ------------------------------------------------------------------ lifecycle

    async def start(
        self,
        *,
        rendition: str | int | None = None,
        audio: MediaChoice = None,
        subtitles: MediaChoice = None,
    ) -> None:
        """Fetch the playlists and start following the chosen rendition, with the chosen audio and
        subtitles renditions (see :func:`open_loader`)."""
        public = public_services_message(self.config)  # once per stream, not per companion
        if public is not None:
            logger.info("%s", public)
        self._start_driver()
        text = await self._fetch_text(self.url)
        self._master = parse_playlist(text, self.url)
        if isinstance(rendition, str) and self._master.variant_by_id(rendition) is None:
            # An audio rendition id: a variant of its group, with that audio (unless told otherwise).
            with_audio = audio_variant(self._master, rendition)
            if with_audio is not None:
                rendition, audio = with_audio.rendition_id, rendition if audio is None else audio
        await self.select_rendition(rendition if rendition is not None else 0)
        self._alternates = AlternateTracks(self)
        assert self._variant is not None
        await self._alternates.open(self._variant, audio=audio, subtitles=subtitles)

    async def _start_following(
        self, master: MasterPlaylist, track: Variant, *, align_with: MediaPlaylist | None
    ) -> None:
        """Start as a companion: follow ``track`` (an EXT-X-MEDIA rendition as a variant-like
        record) of an already parsed ``master``, its timeline aligned on ``align_with``'s by media
        sequence number."""
        self._start_driver()
        self._master = master
        await self._follow(track, align_with=align_with)

    def _start_driver(self) -> None:
        loop = asyncio.get_running_loop()
        self._driver = Driver(self._scheduler, loop=loop, on_notification=self._on_notification)
        self._driver.validate = self._integrity.validation(self.config.segment_validator)
        self._swarms = SwarmSet(self._driver.feed)
        self._driver.peers = self._swarms
        self._http = HttpExecutor(
            self._client,
            self._driver.feed,
            retry_policy=self._scheduler.fetch_retry_policy,
            upload_hold=self._upload_hold,
        )
        self._driver.http = self._http

    async def aclose(self) -> None:
        """Stop every download and refresh; pending :meth:`get_segment` calls raise
        :class:`~p2ploader.errors.LoaderClosedError`. Idempotent."""
        if self._closed:
            return
        self._closed = True
        if self._alternates is not None:
            await self._alternates.aclose()
        self._leave_ban_family()
        for task in (self._refresh_task, self._join_task, *self._key_fetches.values()):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, P2PLoaderError):
                    await task
        await self._leave_swarm()
        for rendition in list(self._lingering):
            await self._end_lingering(rendition)
        if self._driver is not None:
            self._driver.close()
        if self._http is not None:
            await self._http.aclose()
        for futures in self._waiters.values():
            for future in futures:
                if not future.done():
                    future.set_exception(LoaderClosedError("the loader was closed"))
        self._waiters.clear()
        if self._owns_client:
            await self._client.aclose()

    # ------------------------------------------------------------------ playlists

    @property
    def master(self) -> MasterPlaylist:
        if self._master is None:
            raise UsageError("the loader is not started")
        return self._master

    @property
    def variants(self) -> tuple[Variant, ...]:
        """The renditions the stream offers, in master-playlist order."""
        return self.master.variants

    @property
    def rendition(self) -> str:
        """Rendition id of the variant being loaded."""
        if self._variant is None:
            raise UsageError("the loader is not started")
        return self._variant.rendition_id

    @property
    def playlist(self) -> MediaPlaylist:
        """The current media playlist (for live: the latest good refresh)."""
        if self._playlist is None:
            raise UsageError("the loader is not started")
        return self._playlist

    @property
    def is_live(self) -> bool:
        return self.playlist.is_live

    @property
    def start_offset(self) -> StartOffset | None:
        """The stream's EXT-X-START: the media playlist's, else the master's (None: neither has one)."""
        return self.playlist.start or self.master.start

    def start_point(self, *, live_start_distance: int = 3) -> StartPoint:
        """Where playback of the current rendition starts: the segment holding the EXT-X-START
        offset (:attr:`start_offset`), else the first segment of a VOD playlist or the one
        ``live_start_distance`` segments from a live edge. See :func:`p2ploader.hls.choose_start`."""
        return choose_start(self.playlist, start=self.start_offset, live_start_distance=live_start_distance)

    # ------------------------------------------------------------------ trick play

    @property
    def i_frame_variants(self) -> tuple[IFrameVariant, ...]:
        """The master's I-frame (trick play) playlists, EXT-X-I-FRAME-STREAM-INF, in master order.

        They are for players (fast forward, scrubbing thumbnails) and never join a swarm: fetch one
        with :meth:`i_frame_playlist` and its I-frames with :meth:`fetch_i_frame`, over HTTP only."""
        return self.master.i_frame_variants

    async def i_frame_playlist(self, variant: IFrameVariant | str | int) -> MediaPlaylist:
        """The media playlist of an I-frame variant (by object, rendition id ``"i<k>"`` or index),
        fetched now (a live one changes: fetch it again when needed). Its segments' ids use the
        variant's rendition id."""
        self._check_open()
        found = self._find_i_frame_variant(variant)
        text = await self._fetch_text(found.url)
        return parse_media(text, found.url, rendition=found.rendition_id)

    async def fetch_i_frame(self, segment: Segment) -> bytes:
        """The bytes of one segment of an I-frame playlist (its EXT-X-BYTERANGE, or the whole
        resource), over HTTP only: not cached, never from or to peers."""
        self._check_open()
        return await fetch_bytes(
            self._client,
            segment.url,
            max_bytes=MAX_SEGMENT_SIZE,
            what="I-frame",
            retry=self._fetch_retry,
            byte_range=segment.byte_range,
        )

    def _find_i_frame_variant(self, variant: IFrameVariant | str | int) -> IFrameVariant:
        variants = self.master.i_frame_variants
        for candidate in variants:
            if variant in (candidate, candidate.rendition_id, candidate.index):
                return candidate
        names = ", ".join(v.rendition_id for v in variants) or "none"
        raise UsageError(f"no I-frame playlist {variant!r}; the stream has {names}")

    @property
    def audio(self) -> HybridLoader | None:
        """The loader of the EXT-X-MEDIA audio rendition played with the variant (its own swarm,
        its own :meth:`segments`), or None: no separate audio (muxed, or ``audio=False``)."""
        return self._alternates.audio if self._alternates is not None else None

    @property
    def subtitles(self) -> HybridLoader | None:
        """The loader of the chosen subtitles rendition (HTTP only), or None."""
        return self._alternates.subtitles if self._alternates is not None else None

    def alternate_renditions(self, media_type: MediaType) -> tuple[AlternateRendition, ...]:
        """The current variant's renditions of ``media_type`` that can be chosen (they have a URI)."""
        if self._variant is None or self._master is None:
            raise UsageError("the loader is not started")
        return loadable(self._master, self._variant, media_type)

    async def select_audio(self, audio: MediaChoice) -> None:
        """Load another audio rendition of the variant's group (same choices as ``open_loader``'s
        ``audio``); its swarm replaces the old one's."""
        self._check_open()
        if self._alternates is None:
            raise UsageError("the loader is not started")
        await self._alternates.select("AUDIO", audio)

    async def select_rendition(self, rendition: str | int) -> None:
        """Switch to another variant (by rendition id or index). Cached segments of the old one stay
        cached; the queue moves to the new one at once. The audio goes on: when the new variant
        names another audio group, its matching rendition (same language and name) takes over."""
        self._check_open()
        variant = self._find_variant(rendition)
        await self._follow(variant)
        if self._alternates is not None:
            await self._alternates.variant_changed(variant)

    async def _follow(self, variant: Variant, *, align_with: MediaPlaylist | None = None) -> None:
        text = await self._fetch_text(variant.url)
        playlist = parse_media(text, variant.url, rendition=variant.rendition_id)
        self._note_low_latency(text, variant.url)
        self._publish_hashes(text, variant)
        old = align_with if align_with is not None else self._playlist
        switching = self._variant is not None and self._variant.rendition_id != variant.rendition_id
        if switching:
            await self._retire_swarm()
        self._variant = variant
        self._stuck = None
        self._tracker = LivePlaylistTracker(playlist) if playlist.is_live else None
        self._timeline_shift = _timeline_shift(playlist, old) if old is not None else 0.0
        self._set_playlist(playlist)
        if self._peers is None:
            await self._join_swarm(variant, playlist)
        if self._refresh_task is not None:
            self._refresh_task.cancel()
            self._refresh_task = None
        if playlist.is_live:
            self._refresh_task = asyncio.get_running_loop().create_task(
                self._follow_live(), name=f"p2ploader-live-{variant.rendition_id}"
            )

    # ------------------------------------------------------------------ the swarm

    @property
    def swarm_id(self) -> str:
        """The swarm id peers must share: the master URL without its query, or ``config.swarm_id``."""
        pattern = self.config.swarm_url_pattern
        normalizer = swarm.UrlNormalizer(pattern=pattern) if pattern else None
        return swarm.swarm_id(self.url, custom=self.config.swarm_id, normalizer=normalizer)

    def info_hash(self, rendition: str | None = None) -> bytes:
        """The tracker info hash of a rendition's swarm (one swarm per rendition), as P2P Media Loader
        2.3.1 computes it."""
        rendition_id = rendition if rendition is not None else self.rendition
        for stream in swarm.hlsjs_streams(self.master.variants, self.master.renditions):
            if stream.rendition_id == rendition_id:
                return stream.info_hash(self.swarm_id)
        raise UsageError(f"no rendition {rendition_id!r}")

    async def _join_swarm(self, variant: Variant, playlist: MediaPlaylist) -> None:
        cfg = self.config
        if not cfg.use_p2p or not cfg.tracker_announce or self._driver is None or self._swarms is None:
            return
        await self._end_lingering(variant.rendition_id)  # switching back: one swarm per rendition
        membership = self._membership
        peers = PeerManager(
            feed=self._swarms.feed_for(variant.rendition_id),
            rendition=variant.rendition_id,
            live=playlist.is_live,
            first_sequence=playlist.media_sequence,
            local_peer_id=self.peer_id.hex(),
            rtc_config=cfg.rtc_config,
            max_peers=cfg.max_peers,
            max_message_size=cfg.web_rtc_max_message_size,
            upload_rate_limit=cfg.upload_rate_limit,
            upload_stall_timeout=cfg.upload_stall_timeout,
            upload_control=self._upload_control,
            upload_hold=self._upload_hold,
            max_segment_size=segment_size_limit(
                bandwidth=variant.bandwidth,
                target_duration=playlist.target_duration,
                fallback=MAX_SEGMENT_SIZE,
            ),
            max_announced_ids=announcement_id_limit(len(playlist.segments)),
            rng=self._rng,
            on_peer_gone=self._peer_gone,
            on_peer_status=self._peer_status,
            is_banned=lambda peer_id, certificate: self._scheduler.is_banned(
                variant.rendition_id, peer_id, now=self._loop_time(), certificate=certificate
            ),
            bind_certificate=functools.partial(self._scheduler.reputation.bind, variant.rendition_id),
            admit=membership.admit if membership is not None else None,
            wants_offers=membership.wants_offers if membership is not None else None,
            admission=AdmissionLimits(max_peers=cfg.max_peers, idle_grace=cfg.peer_idle_grace),
            wants=self._wants_any,
        )
        driver = self._driver

        def swarm_update(complete: int, incomplete: int) -> None:
            driver.feed(ev.TrackerUpdated(incomplete=incomplete))

        client = TrackerClient(
            cfg.tracker_announce,
            info_hash=self.info_hash(variant.rendition_id),
            peer_id=self.peer_id,
            make_offers=peers.make_offers,
            on_offer=peers.on_offer,
            on_answer=peers.on_answer,
            on_offer_expired=peers.offer_expired,
            on_swarm_update=swarm_update,
            wants_peers=peers.wants_peers,
            on_connected=lambda url: self._tracker_connected(client, url),
            on_failed=lambda url, reason, retry_in: self._tracker_failed(client, url, reason, retry_in),
            announce_extra=(lambda: membership.announce_extra(peers.linked)) if membership else None,
            on_tracker_extra=(
                (lambda extra: membership.on_tracker(extra, client.announce_now)) if membership else None
            ),
            offers_per_announce=min(5, cfg.peer_requests_per_announce),
            rng=self._rng,
        )
        self._peers = peers
        self._tracker_client = client
        self._swarms.add(peers)
        delay = cfg.swarm_join_delay
        if delay is None or self._first_segment_loaded.is_set():
            await client.start()
        else:
            self._join_task = asyncio.get_running_loop().create_task(
                self._join_after_first_segment(client, delay), name="p2ploader-join-swarm"
            )

    async def _join_after_first_segment(self, client: TrackerClient, delay: float) -> None:
        """Announce to the tracker once the first segment is in, or after ``delay`` seconds: the
        WebRTC set-up of a joining peer (offers, answers, DTLS handshakes) costs CPU that would
        otherwise compete with the first segment's download, i.e. with startup."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._first_segment_loaded.wait(), delay)
        if not self._closed and self._tracker_client is client:
            await client.start()

    @property
    def lingering_renditions(self) -> tuple[str, ...]:
        """Renditions switched away from whose swarms we still seed (``rendition_linger``)."""
        return tuple(self._lingering)

    async def _retire_swarm(self) -> None:
        """A rendition switch: the old swarm keeps seeding for ``rendition_linger`` seconds (viewers
        who stay on it keep a source), then it is left; 0 leaves at once."""
        client, peers = self._tracker_client, self._peers
        if client is None or peers is None or self._swarms is None or self.config.rendition_linger <= 0:
            await self._leave_swarm()
            return
        self._tracker_client = None
        self._peers = None
        self._swarms.retire(peers.rendition)
        self._lingering[peers.rendition] = asyncio.get_running_loop().create_task(
            self._linger(client, peers), name=f"p2ploader-linger-{peers.rendition}"
        )

    async def _linger(self, client: TrackerClient, peers: PeerManager) -> None:
        try:
            await asyncio.sleep(self.config.rendition_linger)
        finally:
            # Expired or cancelled (loader closed, or switched back): leave the swarm either way.
            if self._lingering.get(peers.rendition) is asyncio.current_task():
                del self._lingering[peers.rendition]
            if self._swarms is not None:
                self._swarms.remove(peers.rendition)
            await client.aclose()  # sends "stopped"
            await peers.aclose()

    async def _end_lingering(self, rendition: str) -> None:
        task = self._lingering.pop(rendition, None)
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def _wants_any(self, segment_ids: Collection[SegmentId]) -> bool:
        """Whether any of ``segment_ids`` is queued and not cached: a peer announcing it is worth
        its slot (until its requests fail)."""
        cache = self._scheduler.cache
        return any(entry.id in segment_ids and entry.id not in cache for entry in self._scheduler.queue)

    def _publish_hashes(self, text: str, variant: Variant) -> None:
        """Hand the SHA-256 digests the media playlist publishes to the integrity checker (unless
        ``integrity_sha256`` is turned off: then nothing is parsed). A malformed tag is a
        :class:`~p2ploader.errors.PlaylistError`, like any malformed playlist."""
        if self.config.integrity_sha256 is not False:
            self._integrity.publish(variant.rendition_id, parse_hash_tags(text, variant.url))

    def _integrity_failed(
        self, segment: Segment, peer_id: str, check: Literal["sha256", "spot-check"], reason: str
    ) -> None:
        """A peer's bytes failed an integrity check: the core reports it and bans the peer (the
        scheduler disconnects it and loads the segment again when the validator then says no)."""
        if self._driver is not None:
            self._driver.feed(
                ev.IntegrityCheckFailed(segment_id=segment.id, peer_id=peer_id, check=check, reason=reason)
            )

    @staticmethod
    def _loop_time() -> float:
        return asyncio.get_running_loop().time()

    @property
    def swarm_endpoint(self) -> SwarmEndpoint | None:
        """The current rendition's swarm as a signalling channel sees it (``None`` before the swarm
        is joined, or without P2P): answer a WebRTC offer relayed some other way than by a
        tracker, and name segments by their wire ids. See :mod:`p2ploader.aio.endpoint`."""
        peers = self._peers
        if peers is None:
            return None
        return SwarmEndpoint(
            rendition=peers.rendition,
            info_hash=self.info_hash(peers.rendition),
            live=peers.live,
            first_sequence=peers.first_sequence,
            manager=peers,
        )

    def _share_bans_with(self, other: HybridLoader) -> None:
        """From now on a ban in any swarm of ours or of ``other`` (and of the loaders already
        sharing with either) counts in all of them, and links already open with a peer banned
        elsewhere are closed when the ban comes (:meth:`_sweep_family_bans`). A parent and its
        audio and subtitles companions share so: one player, one set of peers to distrust."""
        self._scheduler.reputation.share_with(other._scheduler.reputation)
        family = [
            *self._ban_family,
            *(loader for loader in other._ban_family if loader not in self._ban_family),
        ]
        for loader in family:
            loader._ban_family = family

    def _leave_ban_family(self) -> None:
        if len(self._ban_family) > 1:
            self._ban_family.remove(self)
            self._ban_family = [self]
        self._scheduler.reputation.leave_family()

    def _sweep_family_bans(self) -> None:
        """Our scheduler banned a peer: close the links the other loaders of the family hold with
        the same identity (their own bans are checked on every new link already)."""
        for loader in self._ban_family:
            if loader is self or loader._swarms is None:
                continue
            for rendition in loader._swarms.renditions:
                peers = loader._swarms.get(rendition)
                if peers is not None:
                    for peer_id in peers.drop_banned():
                        logger.info("peer %s: banned in another swarm of this stream: link closed", peer_id)

    def is_banned(self, peer_id: str) -> bool:
        """Whether ``peer_id`` (hex) is banned from the current rendition's swarm now (or, by the
        same identity, from a swarm sharing bans with it: a companion's)."""
        if self._variant is None:
            return False
        return self._scheduler.is_banned(self._variant.rendition_id, peer_id, now=self._loop_time())

    def integrity_statistics(self) -> IntegrityStatistics:
        """What the integrity checks did and cost (all zero when they are off), with the peer bytes
        of accepted segments split into verified and unverified."""
        core = self._scheduler.statistics()
        return attrs.evolve(
            self._integrity.statistics(),
            p2p_bytes_verified=core.p2p_bytes_verified,
            p2p_bytes_unverified=core.p2p_bytes_unverified,
            p2p_bytes_rejected=core.p2p_bytes_rejected,
        )

    def _peer_gone(self, peer_id: str) -> None:
        if self._tracker_client is not None:
            self._tracker_client.forget_peer(bytes.fromhex(peer_id))
            if self._membership is not None and self._membership.role == "client":
                # Our host left (or an attempt failed): HTTP covers us meanwhile; look for a vacant
                # host now rather than an announce interval later.
                self._tracker_client.announce_now()

    async def _leave_swarm(self) -> None:
        client, peers = self._tracker_client, self._peers
        self._tracker_client = None
        self._peers = None
        if self._swarms is not None and peers is not None:
            self._swarms.remove(peers.rendition)
        if client is not None:
            await client.aclose()  # sends "stopped"
        if peers is not None:
            await peers.aclose()

    def _find_variant(self, rendition: str | int) -> Variant:
        return find_variant(self.master.variants, rendition)

    def _set_playlist(self, playlist: MediaPlaylist) -> None:
        if self._timeline_shift:
            shifted = tuple(attrs.evolve(s, start=s.start + self._timeline_shift) for s in playlist.segments)
            playlist = attrs.evolve(playlist, segments=shifted)
        self._playlist = playlist
        if self._peers is not None:
            self._peers.set_playlist_window(len(playlist.segments))
        self._feed(ev.PlaylistUpdated(segments=playlist.segments))
        self._playlist_changed.set()
        self._playlist_changed = asyncio.Event()

    async def _follow_live(self) -> None:
        changed = True
        loop = asyncio.get_running_loop()
        assert self._tracker is not None
        watch = StalePlaylistWatch(
            self.config.live_playlist_stuck_reloads,
            now=loop.time(),
            target_duration=self._tracker.current.target_duration,
        )
        while not self._closed:
            tracker = self._tracker
            if tracker is None:
                return
            interval = self.config.live_refresh_interval
            await asyncio.sleep(interval if interval is not None else tracker.refresh_interval(changed))
            variant = self._variant
            assert variant is not None
            try:
                text = await self._fetch_text(variant.url)
                update = tracker.update(parse_media(text, variant.url, rendition=variant.rendition_id))
                self._note_low_latency(text, variant.url)
                self._publish_hashes(text, variant)
            except P2PLoaderError as exc:  # keep the last good playlist and try again
                self._refresh_errors += 1
                logger.warning("live playlist refresh failed: %s", exc)
                changed = False
                continue
            changed = not update.unchanged
            target = tracker.current.target_duration
            if changed:
                watch.changed(now=loop.time(), target_duration=target)
                self._set_playlist(tracker.current)
            elif self._live_playlist_stuck(
                variant.url, watch, watch.unchanged(now=loop.time(), target_duration=target)
            ):
                return
            if update.ended:
                return

    def _live_playlist_stuck(self, url: str, watch: StalePlaylistWatch, verdict: StaleVerdict | None) -> bool:
        """After an unchanged reload: warn at half of ``live_playlist_stuck_reloads``, give up at
        all of them (True: stop reloading). Giving up wakes ``segments()``, which raises
        :class:`~p2ploader.errors.LivePlaylistStuckError` once past the last listed segment."""
        if verdict == "stale":
            logger.warning(
                "live playlist %s unchanged after %d reloads (no EXT-X-ENDLIST); giving up after %d",
                url,
                watch.counted,
                watch.limit,
            )
            self._on_notification(
                nt.LivePlaylistStale(url=url, unchanged_reloads=watch.counted, limit=watch.limit)
            )
        if verdict != "stuck":
            return False
        seconds = asyncio.get_running_loop().time() - watch.since
        self._stuck = LivePlaylistStuckError(url, unchanged_reloads=watch.counted, seconds=seconds)
        logger.info("%s", self._stuck)  # raised to the caller: not a warning too
        self._playlist_changed.set()  # wake segments() waiting for a segment that will not come
        self._playlist_changed = asyncio.Event()
        return True

    def _note_low_latency(self, text: str, url: str) -> None:
        """Remember whether the media playlist at ``url`` carries LL-HLS part tags (once per URL;
        :meth:`_warn_if_segments_ignore_parts` says so when :meth:`segments` plays it)."""
        if url in self._low_latency_tags:
            return
        tags = low_latency_tags(text)
        if tags:
            self._low_latency_tags[url] = tags

    def _warn_if_segments_ignore_parts(self) -> None:
        """Say once per media playlist URL that :meth:`segments` ignores its LL-HLS parts: the
        stream plays from whole segments, with regular HLS latency, unless the player follows it
        with :meth:`parts` instead. Said from :meth:`segments` only, the first time it plays that
        URL: a caller of :meth:`parts` alone hears nothing."""
        variant = self._variant
        if variant is None or variant.url in self._low_latency_warned:
            return
        tags = self._low_latency_tags.get(variant.url)
        if tags:
            self._low_latency_warned.add(variant.url)
            logger.warning(
                "%s is a low-latency HLS playlist (%s): in segments() its parts are ignored and segments"
                " are loaded whole (regular HLS latency); parts() follows it part by part",
                variant.url,
                ", ".join(tags),
            )

    async def _fetch_text(self, url: str) -> str:
        """A playlist's text, within ``max_playlist_bytes`` and ``max_playlist_segments``."""
        cfg = self.config
        try:
            data = await fetch_bytes(
                self._client, url, max_bytes=cfg.max_playlist_bytes, what="playlist", retry=self._fetch_retry
            )
        except ResponseTooLargeError as exc:
            raise PlaylistTooLargeError(url, limit=exc.limit, unit="bytes") from exc
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise PlaylistError(url, f"not UTF-8 text ({exc.reason} at byte {exc.start})") from exc
        # Counted before parsing, which costs ~0.1 ms per segment (a million took a minute).
        if text.count("#EXTINF") > cfg.max_playlist_segments:
            raise PlaylistTooLargeError(url, limit=cfg.max_playlist_segments, unit="segments")
        return text

    # ------------------------------------------------------------------ segments

    def report_playback(self, position: float, *, stalled: bool = False) -> None:
        """Tell the loader where playback is (seconds on the playlist's timeline) and whether the
        player is stalled (buffer empty). Priorities are distances from this position."""
        self._check_open()
        if stalled and not self._stalled:
            self._stalls += 1
        self._stalled = stalled
        self._feed(ev.PlaybackMoved(position=position))
        if self._alternates is not None:
            self._alternates.report_playback(position)

    async def get_segment(
        self, segment: SegmentId | Segment, *, max_attempts: int = 3, decrypt: bool | None = None
    ) -> LoadedSegment:
        """The bytes of one segment, from the cache, a peer or HTTP.

        For an ``EXT-X-GAP`` segment it returns a gap marker (:attr:`LoadedSegment.gap`, empty
        ``data``, ``source="gap"``) at once, without any request to the origin or to peers.

        Raises :class:`~p2ploader.errors.SegmentUnavailableError` when the playlist no longer lists
        it, when the origin answers 4xx, or after ``max_attempts`` (>= 1) failed HTTP fetches (each
        one already retried transient errors ``http_retries`` times); the core fetches it again
        ``http_retry_backoff`` seconds after a failed fetch, doubled after each further one (see
        :mod:`p2ploader.core.retries`).

        ``decrypt`` (default: ``config.decrypt``) hands over an AES-128 segment's plaintext (see
        :mod:`p2ploader.decryption`); the key is fetched over HTTP once per key URI. It raises
        :class:`~p2ploader.errors.UnsupportedEncryptionError` for SAMPLE-AES and other methods,
        :class:`~p2ploader.errors.DecryptionError` when the bytes do not decrypt, and the key's
        HTTP errors; a clear segment is handed over unchanged.
        """
        self._check_open()
        if max_attempts < 1:
            raise UsageError(f"max_attempts must be >= 1, not {max_attempts}")
        segment_id = segment.id if isinstance(segment, Segment) else segment
        listed = self._playlist.segment_by_sequence(segment_id.sequence) if self._playlist else None
        if listed is not None and listed.id == segment_id and listed.gap:
            return LoadedSegment(segment=listed, data=b"", source="gap")
        future: asyncio.Future[LoadedSegment] = asyncio.get_running_loop().create_future()
        self._waiters.setdefault(segment_id, []).append(future)
        self._feed(ev.SegmentRequested(segment_id=segment_id, max_attempts=max_attempts))
        try:
            loaded = await future
        finally:
            waiting = self._waiters.get(segment_id)
            if waiting is not None and future in waiting:
                waiting.remove(future)
                if not waiting:
                    del self._waiters[segment_id]
                    if future.cancelled() and not self._closed:
                        # Nobody waits any more: the segment stops holding the head of the queue.
                        self._feed(ev.SegmentRequestCancelled(segment_id=segment_id))
        if self.config.decrypt if decrypt is None else decrypt:
            return await self._decrypted(loaded)
        return loaded

    async def _decrypted(self, loaded: LoadedSegment) -> LoadedSegment:
        """The player's copy of ``loaded``: an AES-128 segment's plaintext; anything else as it is
        (``loaded`` itself, the cache's bytes, is never changed)."""
        key_info = decryptable_key(loaded.segment)
        if key_info is None:
            return loaded
        key = await self.fetch_key(loaded.segment)
        assert key is not None  # decryptable_key() guarantees a key URI
        # In steps of DECRYPT_STEP_BYTES, letting other tasks (peers, playback) run in between:
        # each pause stays ~0.1 ms however large the segment (see decrypt_in_steps).
        steps = decrypt_in_steps(loaded.segment, loaded.data, key)
        while True:
            try:
                next(steps)
            except StopIteration as done:
                plain: bytes = done.value
                return attrs.evolve(loaded, data=plain, decrypted=True)
            await asyncio.sleep(0)

    async def segments(
        self,
        *,
        start_sequence: int | None = None,
        live_start_distance: int = 3,
        skip_unavailable: bool = False,
        decrypt: bool | None = None,
    ) -> AsyncIterator[LoadedSegment]:
        """Segments of the current rendition in play order.

        Without ``start_sequence``, the first segment is :meth:`start_point`'s: the one holding the
        stream's EXT-X-START offset if it has one, else the first segment of a VOD playlist and the
        one ``live_start_distance`` segments from the live edge of a live one (the usual player
        default is 3). A live stream is followed until it ends; segments that slid out of the window
        before they were asked for are skipped. After :meth:`select_rendition` the next segment
        comes from the new rendition. A segment that cannot be loaded raises
        :class:`~p2ploader.errors.SegmentUnavailableError`, or is skipped with ``skip_unavailable``
        (what a live player does). ``decrypt`` is :meth:`get_segment`'s: a segment that cannot be
        decrypted raises, skipped or not. An ``EXT-X-GAP`` segment comes as a gap marker
        (:attr:`LoadedSegment.gap`: empty ``data``, nothing loaded) in its place, so the player can
        skip its duration. A live playlist that stopped changing (``live_playlist_stuck_reloads``
        unchanged reloads, no ``EXT-X-ENDLIST``) raises
        :class:`~p2ploader.errors.LivePlaylistStuckError` once its last segment was handed over.
        """
        if start_sequence is None:
            start_sequence = self.start_point(live_start_distance=live_start_distance).segment.id.sequence
        sequence = start_sequence
        while True:
            self._warn_if_segments_ignore_parts()  # each turn: a rendition switch may bring one
            playlist = self.playlist
            segment = _segment_at(playlist, sequence)
            if segment is None:
                if sequence < playlist.segments[0].id.sequence:
                    sequence = playlist.segments[0].id.sequence  # fell behind the live window
                    continue
                if not playlist.is_live or (self._tracker is not None and self._tracker.current.end_list):
                    return
                if self._stuck is not None:
                    raise self._stuck
                await self._playlist_changed.wait()
                continue
            try:
                loaded = await self.get_segment(segment, decrypt=decrypt)
            except SegmentUnavailableError as exc:
                if self._variant is not None and segment.id.rendition != self._variant.rendition_id:
                    # A rendition switch replaced the playlist while we waited: the same sequence
                    # number from the new rendition, not a hole in playback.
                    continue
                if not skip_unavailable:
                    raise
                logger.warning("skipping %s: %s", segment.id, exc.reason)
                sequence += 1
                continue
            yield loaded
            sequence += 1

    def low_latency_stream(self, *, hold_back: float | None = None, p2p: bool = False) -> LowLatencyStream:
        """A :class:`~p2ploader.aio.low_latency.LowLatencyStream` on the current rendition's media
        playlist, with this loader's HTTP client and config: it follows a live LL-HLS stream part by
        part, with blocking reloads. ``hold_back`` overrides PART-HOLD-BACK (seconds): not a number
        > 0 raises :class:`~p2ploader.errors.HoldBackError` here, under what RFC 8216bis allows the
        playlist (twice its PART-TARGET) when the stream reads its first playlist.

        ``p2p`` (default False: everything over HTTP) takes parts from other p2ploader peers too,
        through the rendition's parts swarm (:class:`~p2ploader.aio.part_swarm.PartSwarm`, see
        :mod:`p2ploader.core.part_exchange`); it needs ``use_p2p`` and a tracker in the config,
        and is otherwise ignored. The caller closes the stream (``async with``); :meth:`parts`
        does that itself.

        The stream switches renditions on its own (:meth:`LowLatencyStream.select_rendition
        <p2ploader.aio.low_latency.LowLatencyStream.select_rendition>`, by id or index of
        :attr:`variants`, with the rendition reports); with ``p2p``, each rendition switched to
        gets its own parts swarm. The loader's :meth:`select_rendition` (segments) is not moved
        by it."""
        self._check_open()
        if self._variant is None:
            raise UsageError("the loader is not started")
        variant = self._variant
        make_swarm = p2p and self.config.use_p2p and bool(self.config.tracker_announce)
        return LowLatencyStream(
            variant.url,
            client=self._client,
            config=self.config,
            rendition=variant.rendition_id,
            hold_back=hold_back,
            part_swarm=self._part_swarm_for(variant) if make_swarm else None,
            variants=self.master.variants,
            part_swarm_for=self._part_swarm_for if make_swarm else None,
        )

    def _part_swarm_for(self, variant: Variant) -> PartSwarm:
        """A new parts swarm for ``variant``'s parts (not started)."""
        return PartSwarm(
            client=self._client,
            config=self.config,
            info_hash=self.parts_info_hash(variant.rendition_id),
            rendition=variant.rendition_id,
            seed=self._rng.randrange(1 << 62),
            bandwidth=variant.bandwidth,
        )

    def parts_info_hash(self, rendition: str | None = None) -> bytes:
        """The tracker info hash of a rendition's parts swarm (p2ploader peers only; see
        :func:`~p2ploader.core.part_exchange.parts_info_hash`)."""
        rendition_id = rendition if rendition is not None else self.rendition
        for stream in swarm.hlsjs_streams(self.master.variants, self.master.renditions):
            if stream.rendition_id == rendition_id:
                return parts_info_hash(stream.swarm_id(self.swarm_id))
        raise UsageError(f"no rendition {rendition_id!r}")

    async def parts(
        self, *, hold_back: float | None = None, p2p: bool = False
    ) -> AsyncIterator[LowLatencyItem]:
        """The current rendition's live LL-HLS media in play order, as it is published: parts,
        and whole segments behind the live edge (see
        :class:`~p2ploader.core.ll_follower.LowLatencyItem`), starting ``PART-HOLD-BACK`` (or
        ``hold_back``) seconds behind the live edge. Over HTTP only unless ``p2p`` (see
        :meth:`low_latency_stream`). Ends with the stream (EXT-X-ENDLIST)."""
        async with self.low_latency_stream(hold_back=hold_back, p2p=p2p) as stream:
            async for item in stream.items():
                yield item

    async def fetch_key(self, segment: Segment) -> bytes | None:
        """The decryption key of an encrypted segment, over HTTP only (cached in memory, never
        shared with peers). ``None`` for clear segments or keys without a URI.

        One request per key URI: callers that ask while the first fetch is under way share it,
        and a failed fetch is tried again by the next caller."""
        key = segment.key
        if key is None or key.url is None:
            return None
        cached = self._keys.get(key.url)
        if cached is not None:
            return cached
        url = key.url
        fetch = self._key_fetches.get(url)
        if fetch is None:
            fetch = asyncio.create_task(self._fetch_key_once(url, key.method, key.key_format))
            self._key_fetches[url] = fetch
            fetch.add_done_callback(lambda done: self._key_fetch_done(url, done))
        # Shielded: a caller that gives up does not cancel the fetch the others wait for.
        return await asyncio.shield(fetch)

    async def _fetch_key_once(self, url: str, method: str, key_format: str | None) -> bytes:
        data = await fetch_bytes(
            self._client, url, max_bytes=MAX_KEY_BYTES, what="key", retry=self._fetch_retry
        )
        if method in _SIXTEEN_BYTE_KEYS and key_format in (None, "identity") and len(data) != AES_KEY_BYTES:
            raise HttpStatusError(url, 200, f"an {method} key is {AES_KEY_BYTES} bytes, got {len(data)}")
        _bounded_put(self._keys, url, data)
        return data

    def _key_fetch_done(self, url: str, fetch: asyncio.Task[bytes]) -> None:
        if self._key_fetches.get(url) is fetch:
            del self._key_fetches[url]
        if not fetch.cancelled():
            fetch.exception()  # retrieved here: every waiter may have gone (no "never retrieved")

    async def fetch_init_section(self, segment: Segment) -> bytes | None:
        """The EXT-X-MAP initialisation section of a segment, over HTTP (cached), or ``None``."""
        init = segment.init_section
        if init is None:
            return None
        br = init.byte_range
        cache_key = (init.url, br.offset if br else None, br.length if br else None)
        if cache_key not in self._init_sections:
            data = await fetch_bytes(
                self._client,
                init.url,
                max_bytes=self.config.max_init_section_bytes,
                what="init section",
                retry=self._fetch_retry,
                byte_range=br,
            )
            _bounded_put(self._init_sections, cache_key, data)
            return data
        return self._init_sections[cache_key]

    # ------------------------------------------------------------------ events and statistics

    def add_listener(self, listener: Listener) -> Callable[[], None]:
        """Call ``listener`` with every notification (:mod:`p2ploader.core.notifications`): the
        scheduler's (segment loaded, failed, aborted, bytes by source, ...), the trackers'
        (``TrackerConnected``, ``TrackerFailed`` with the URL and a reason) and the peers'
        (``PeerConnected``, ``PeerGone`` with a reason). Returns a function that removes it."""
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener) if listener in self._listeners else None

    def statistics(self) -> LoaderStatistics:
        """This loader's figures; the totals include the audio and subtitles companions', and
        :attr:`LoaderStatistics.by_media_type` splits them."""
        own = self._own_statistics()
        return self._alternates.combine(own) if self._alternates is not None else own

    def _own_statistics(self) -> LoaderStatistics:
        core = self._scheduler.statistics()
        rendition = self._variant.rendition_id if self._variant else ""
        return LoaderStatistics(
            http_bytes=core.http_bytes,
            p2p_bytes=core.p2p_bytes,
            p2p_uploaded_bytes=core.uploaded_bytes,
            peers_connected=core.peers,
            stalls=self._stalls,
            http_segments=core.http_segments,
            p2p_segments=core.p2p_segments,
            http_failures=core.http_failures,
            p2p_failures=core.p2p_failures,
            aborted_downloads=core.aborted,
            cached_segments=core.cached_segments,
            cached_bytes=core.cached_bytes,
            playlist_refresh_errors=self._refresh_errors,
            rendition=rendition,
            p2p_bytes_verified=core.p2p_bytes_verified,
            p2p_bytes_unverified=core.p2p_bytes_unverified,
            uploaded_bytes_by_peer=dict(self._uploaded_by_peer),
            upload_control=self._upload_control.statistics() if self._upload_control is not None else None,
            topology_role=self._membership.role if self._membership is not None else "mesh",
            trackers=self._tracker_states(),
            by_media_type={
                self.media_type: MediaStatistics(
                    rendition=rendition,
                    http_bytes=core.http_bytes,
                    p2p_bytes=core.p2p_bytes,
                    p2p_uploaded_bytes=core.uploaded_bytes,
                    http_segments=core.http_segments,
                    p2p_segments=core.p2p_segments,
                    peers_connected=core.peers,
                )
            },
        )

    def _tracker_states(self) -> dict[str, TrackerState]:
        client = self._tracker_client
        if client is None:
            return {}
        return {
            t.url: TrackerState(
                url=t.url,
                state=t.state,
                last_error=t.last_error,
                complete=t.complete,
                incomplete=t.incomplete,
                reconnects=t.reconnects,
            )
            for t in client.statistics().trackers
        }

    def _tracker_connected(self, client: TrackerClient, url: str) -> None:
        if client is not self._tracker_client:  # a lingering swarm's: the status is the current one's
            return
        if self._p2p_off_warned:
            self._p2p_off_warned = False
            logger.info("tracker %s reachable: P2P is on again", url)
        self._on_notification(nt.TrackerConnected(url=url))

    def _tracker_failed(self, client: TrackerClient, url: str, reason: str, retry_in: float) -> None:
        if client is not self._tracker_client:
            return
        self._on_notification(nt.TrackerFailed(url=url, reason=reason, retry_in=retry_in))
        warning = tracker_warning(self._tracker_states())
        if warning is not None and not self._p2p_off_warned:
            # Said once (until a tracker connects): segments still come over HTTP, so without this
            # line the only symptom is 0 % P2P.
            self._p2p_off_warned = True
            logger.warning("%s", warning, extra={P2P_OFF_LOG_MARK: True})

    def _peer_status(self, peer_id: str, connected: bool, reason: str | None) -> None:
        if connected:
            self._on_notification(nt.PeerConnected(peer_id=peer_id))
        else:
            self._on_notification(nt.PeerGone(peer_id=peer_id, reason=reason or "unknown"))

    # ------------------------------------------------------------------ internals

    def _check_open(self) -> None:
        if self._closed:
            raise LoaderClosedError("the loader was closed")

    def _feed(self, event: ev.Event) -> None:
        if self._driver is None:
            raise UsageError("the loader is not started")
        self._driver.feed(event)

    def _on_notification(self, notification: nt.Notification) -> None:
        match notification:
            case nt.SegmentLoaded():
                self._first_segment_loaded.set()
            case nt.SegmentReady():
                self._resolve(
                    notification.segment.id,
                    LoadedSegment(
                        segment=notification.segment, data=notification.data, source=notification.source
                    ),
                )
            case nt.SegmentUnavailable():
                self._reject(notification.segment_id, notification.reason)
            case nt.BytesUploaded():
                peer = notification.peer_id
                self._uploaded_by_peer[peer] = self._uploaded_by_peer.get(peer, 0) + notification.size
            case nt.PeerBanned():
                self._sweep_family_bans()
        for listener in list(self._listeners):
            listener(notification)

    def _resolve(self, segment_id: SegmentId, loaded: LoadedSegment) -> None:
        for future in self._waiters.get(segment_id, []):
            if not future.done():
                future.set_result(loaded)

    def _reject(self, segment_id: SegmentId, reason: str) -> None:
        for future in self._waiters.get(segment_id, []):
            if not future.done():
                future.set_exception(SegmentUnavailableError(str(segment_id), reason))


_SMALL_CACHE_ENTRIES = 32  # keys and init sections kept in memory (a stream rotates through few)

MAX_KEY_BYTES = 1024
"""Bytes a decryption key response may have (an AES key is 16; not a setting)."""

_SIXTEEN_BYTE_KEYS = frozenset({"AES-128", "SAMPLE-AES"})  # RFC 8216 4.3.2.4: a 16-octet key


def _bounded_put(cache: dict[Any, bytes], key: Any, data: bytes) -> None:
    """Insert, dropping the oldest entries beyond :data:`_SMALL_CACHE_ENTRIES` (memory stays bounded
    however often a stream rotates its keys)."""
    cache[key] = data
    while len(cache) > _SMALL_CACHE_ENTRIES:
        del cache[next(iter(cache))]


def _segment_at(playlist: MediaPlaylist, sequence: int) -> Segment | None:
    first = playlist.segments[0].id.sequence if playlist.segments else 0
    index = sequence - first
    return playlist.segments[index] if 0 <= index < len(playlist.segments) else None


def _timeline_shift(playlist: MediaPlaylist, reference: MediaPlaylist) -> float:
    """Seconds to add to a new rendition's start times so that segments with the same media sequence
    number start when they did in ``reference`` (HLS renditions are aligned by sequence number), and
    the playback position stays meaningful across a switch."""
    ref = {s.id.sequence: s.start for s in reference.segments}
    common = next((s for s in playlist.segments if s.id.sequence in ref), None)
    return ref[common.id.sequence] - common.start if common is not None else 0.0
