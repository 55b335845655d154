"""The parts swarm of a live LL-HLS stream: parts (and preload hints) between p2ploader peers.

:class:`PartSwarm` is a small loader of its own, as the audio companion is
(:mod:`p2ploader.aio.alternates`): a :class:`~p2ploader.core.scheduler.Scheduler` with the
``p2ploader-live`` policy set for parts (:func:`~p2ploader.core.part_exchange.parts_config`), its
:class:`~p2ploader.core.driver.Driver`, an :class:`~p2ploader.aio.http.HttpExecutor` on the
stream's HTTP client, a :class:`~p2ploader.aio.peers.PeerManager` and a tracker client announcing
the parts swarm's info hash (:func:`~p2ploader.core.part_exchange.parts_info_hash`), under a peer
id of its own. The "segments" of that scheduler are the parts
(:class:`~p2ploader.core.part_exchange.PartIndex`): the
:class:`~p2ploader.aio.low_latency.LowLatencyStream` hands it each playlist (:meth:`update`) and
asks it for a part's bytes (:meth:`fetch`) instead of GETting them; the scheduler decides whether
they come from the origin (we are an elected seeder, nobody has it in time, a peer failed) or
from a peer (cut-through: a seeder relays a part while the origin sends it).

Nothing a peer sends reaches the player unchecked by the scheduler's rules (sizes, one download
at a time, strikes; spot checks against the origin when ``integrity_spot_checks`` is on), and a
part the swarm cannot deliver in time comes over HTTP (the critical window), so the player never
waits on a peer longer than the policy's deadline.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import random
from collections.abc import Collection
from typing import Literal

import attrs
import httpx

from p2ploader.aio.http import HttpExecutor
from p2ploader.aio.integrity import IntegrityChecker, integrity_enabled
from p2ploader.aio.peers import PeerManager
from p2ploader.aio.tracker_client import TrackerClient
from p2ploader.config import LoaderConfig
from p2ploader.core import events as ev
from p2ploader.core import notifications as nt
from p2ploader.core import swarm
from p2ploader.core.admission import AdmissionLimits
from p2ploader.core.driver import Driver
from p2ploader.core.part_exchange import (
    DEFAULT_PART_WINDOW,
    PARTS_REWIRE_INTERVAL,
    PartIndex,
    part_policy_settings,
    parts_config,
)
from p2ploader.core.peer_limits import announcement_id_limit, segment_size_limit
from p2ploader.core.scheduler import MAX_SEGMENT_SIZE, Scheduler
from p2ploader.core.segments import Segment, SegmentId
from p2ploader.errors import LoaderClosedError, SegmentUnavailableError
from p2ploader.hls import MediaPlaylist

__all__ = ["PartSwarm", "PartSwarmStatistics"]

logger = logging.getLogger(__name__)


@attrs.frozen(kw_only=True)
class PartSwarmStatistics:
    """Part bytes by where they came from (bytes), and the swarm's links."""

    http_bytes: int
    p2p_bytes: int
    """Every part byte received from peers (as the scheduler counts them)."""
    uploaded_bytes: int
    http_parts: int
    p2p_parts: int
    peers: int
    p2p_failures: int = 0
    """Requests to peers that failed (absent, timed out, misbehaved, cancelled by a cut-over)."""

    @property
    def p2p_ratio(self) -> float:
        total = self.http_bytes + self.p2p_bytes
        return self.p2p_bytes / total if total else 0.0


class PartSwarm:
    """One rendition's parts swarm; see the module doc. Start with :meth:`start` (after the first
    playlist, which gives the part target), :meth:`join` the swarm once playback started, close
    with :meth:`aclose`. ``bandwidth`` is the variant's ``BANDWIDTH`` (bits/s): with the part
    target it bounds the size a peer may announce for a part, as for segments
    (:func:`~p2ploader.core.peer_limits.segment_size_limit`)."""

    def __init__(
        self,
        *,
        client: httpx.AsyncClient,
        config: LoaderConfig,
        info_hash: bytes,
        rendition: str,
        seed: int | None = None,
        window: int = DEFAULT_PART_WINDOW,
        bandwidth: int | None = None,
    ) -> None:
        self._client = client
        self._bandwidth = bandwidth
        self._base_config = config
        self._info_hash = info_hash
        self.rendition = rendition
        self._rng = random.Random(seed)
        self._window = window
        self.peer_id = swarm.generate_peer_id(self._rng)
        """The parts swarm's own 20-byte peer id (``-PY0001-``...: the election counts p2ploader
        peers only)."""
        self._index = PartIndex(rendition, window=window)
        self._scheduler: Scheduler | None = None
        self._driver: Driver | None = None
        self._http: HttpExecutor | None = None
        self._peers: PeerManager | None = None
        self._tracker: TrackerClient | None = None
        self._waiters: dict[SegmentId, list[asyncio.Future[tuple[bytes, str]]]] = {}
        self._by_source: dict[str, int] = {"http": 0, "p2p": 0}
        self._joined = False
        self._closed = False

    @property
    def started(self) -> bool:
        return self._scheduler is not None

    @property
    def index(self) -> PartIndex:
        return self._index

    async def start(self, playlist: MediaPlaylist, *, hold_back: float) -> None:
        """Build the scheduler for ``playlist``'s part target and ``hold_back`` (seconds behind the
        live edge), and the peer manager and tracker client of the parts swarm (when the config has
        trackers and ``use_p2p``); :meth:`join` announces."""
        if self._scheduler is not None or self._closed:
            return
        part_target = playlist.part_target or playlist.target_duration
        config = parts_config(
            self._base_config, part_target=part_target, hold_back=hold_back, window=self._window
        )
        overridden = sorted(
            set(self._base_config.policy_settings.get("p2ploader-live", {}))
            & set(part_policy_settings(part_target=part_target, hold_back=hold_back))
        )
        if overridden:
            # Settings tuned for whole segments (an HTTP lead of 6 s, say) can put every part in
            # the HTTP critical window; say so rather than leave the swarm idle without a word.
            logger.warning(
                "the application's p2ploader-live settings %s apply to the LL-HLS parts swarm too "
                "(part target %.2f s, %.2f s behind live)",
                ", ".join(overridden),
                part_target,
                hold_back,
            )
        self._config = config
        scheduler = Scheduler(
            config, rng=self._rng, peer_id=self.peer_id.hex(), validate_p2p=integrity_enabled(config)
        )
        loop = asyncio.get_running_loop()
        driver = Driver(scheduler, loop=loop, on_notification=self._on_notification)
        integrity = IntegrityChecker(
            self._client,
            config,
            rng=random.Random(self._rng.random()),
            on_failure=lambda segment, peer_id, check, reason: driver.feed(
                ev.IntegrityCheckFailed(segment_id=segment.id, peer_id=peer_id, check=check, reason=reason)
            ),
        )
        driver.validate = integrity.validation(config.segment_validator)
        self._http = HttpExecutor(self._client, driver.feed, retry_policy=scheduler.fetch_retry_policy)
        driver.http = self._http
        self._scheduler, self._driver = scheduler, driver
        self.update(playlist)
        if not config.use_p2p or not config.tracker_announce:
            return
        rendition = self.rendition
        peers = PeerManager(
            feed=driver.feed,
            rendition=rendition,
            live=True,
            first_sequence=0,
            local_peer_id=self.peer_id.hex(),
            rtc_config=config.rtc_config,
            max_peers=config.max_peers,
            max_message_size=config.web_rtc_max_message_size,
            upload_rate_limit=config.upload_rate_limit,
            upload_stall_timeout=config.upload_stall_timeout,
            # A part is bounded as a segment is, by the variant's BANDWIDTH over the part target
            # (never below the 8 MiB floor): not the scheduler's absolute 256 MiB.
            max_segment_size=segment_size_limit(
                bandwidth=self._bandwidth, target_duration=part_target, fallback=MAX_SEGMENT_SIZE
            ),
            max_announced_ids=announcement_id_limit(self._window),
            rng=self._rng,
            is_banned=lambda peer_id, certificate: scheduler.is_banned(
                rendition, peer_id, now=loop.time(), certificate=certificate
            ),
            bind_certificate=functools.partial(scheduler.reputation.bind, rendition),
            admission=AdmissionLimits(
                max_peers=config.max_peers,
                idle_grace=config.peer_idle_grace,
                rewire_interval=PARTS_REWIRE_INTERVAL,
                # A part has about a second to spread: a viewer left with one or two links after
                # the others filled their slots keeps looking, not only once none delivers.
                wanted_links=config.max_peers // 2,
            ),
            wants=self._wants_any,
        )
        driver.peers = peers

        def swarm_update(complete: int, incomplete: int) -> None:
            driver.feed(ev.TrackerUpdated(incomplete=incomplete))

        tracker = TrackerClient(
            config.tracker_announce,
            info_hash=self._info_hash,
            peer_id=self.peer_id,
            make_offers=peers.make_offers,
            on_offer=peers.on_offer,
            on_answer=peers.on_answer,
            on_offer_expired=peers.offer_expired,
            on_swarm_update=swarm_update,
            wants_peers=peers.wants_peers,
            offers_per_announce=min(5, config.peer_requests_per_announce),
            rng=self._rng,
        )
        self._peers, self._tracker = peers, tracker

    @property
    def joined(self) -> bool:
        """Whether :meth:`join` announced us to the tracker (parts are asked of the swarm then)."""
        return self._joined

    async def join(self) -> None:
        """Announce to the tracker: peers connect from now on. The stream calls it once the player
        has its first item: WebRTC set-up (offers, DTLS handshakes) costs CPU that would otherwise
        compete with the start of low-latency playback, whose buffer is small. Idempotent."""
        if self._joined or self._closed:
            return
        self._joined = True
        if self._tracker is not None:
            await self._tracker.start()

    def _wants_any(self, segment_ids: Collection[SegmentId]) -> bool:
        scheduler = self._scheduler
        if scheduler is None:
            return False
        cache = scheduler.cache
        return any(entry.id in segment_ids and entry.id not in cache for entry in scheduler.queue)

    def update(self, playlist: MediaPlaylist) -> None:
        """A new playlist (on the stream's continuous timeline): the parts swarm's list follows."""
        if self._driver is None or self._closed:
            return
        self._driver.feed(ev.PlaylistUpdated(segments=self._index.update(playlist)))

    def report_playback(self, position: float) -> None:
        """Where the player is (seconds on the playlist's timeline): deadlines count from there."""
        if self._driver is not None and not self._closed:
            self._driver.feed(ev.PlaybackMoved(position=position))

    async def fetch(self, segment: Segment, *, max_attempts: int = 3) -> tuple[bytes, Literal["http", "p2p"]]:
        """The bytes of the part ``segment`` (a :meth:`PartIndex.segment_for` entry) and where they
        came from. Raises :class:`~p2ploader.errors.SegmentUnavailableError` when the scheduler
        gives it up (the caller then loads it over HTTP itself)."""
        if self._driver is None or self._closed:
            raise LoaderClosedError("the parts swarm is not running")
        future: asyncio.Future[tuple[bytes, str]] = asyncio.get_running_loop().create_future()
        self._waiters.setdefault(segment.id, []).append(future)
        self._driver.feed(ev.SegmentRequested(segment_id=segment.id, max_attempts=max_attempts))
        try:
            data, source = await future
        finally:
            waiting = self._waiters.get(segment.id)
            if waiting is not None and future in waiting:
                waiting.remove(future)
                if not waiting:
                    del self._waiters[segment.id]
                    if future.cancelled() and not self._closed and self._driver is not None:
                        self._driver.feed(ev.SegmentRequestCancelled(segment_id=segment.id))
        kind: Literal["http", "p2p"] = "p2p" if source == "p2p" else "http"
        return data, kind

    def _on_notification(self, notification: nt.Notification) -> None:
        match notification:
            case nt.SegmentReady():
                sid = notification.segment.id
                if notification.source in ("http", "p2p"):
                    self._by_source[notification.source] += 1
                for future in self._waiters.get(sid, []):
                    if not future.done():
                        future.set_result((notification.data, notification.source))
            case nt.SegmentUnavailable():
                for future in self._waiters.get(notification.segment_id, []):
                    if not future.done():
                        future.set_exception(
                            SegmentUnavailableError(str(notification.segment_id), notification.reason)
                        )
            case _:
                pass

    def statistics(self) -> PartSwarmStatistics:
        scheduler = self._scheduler
        if scheduler is None:
            return PartSwarmStatistics(
                http_bytes=0, p2p_bytes=0, uploaded_bytes=0, http_parts=0, p2p_parts=0, peers=0
            )
        core = scheduler.statistics()
        return PartSwarmStatistics(
            http_bytes=core.http_bytes,
            p2p_bytes=core.p2p_bytes,
            uploaded_bytes=core.uploaded_bytes,
            http_parts=self._by_source["http"],
            p2p_parts=self._by_source["p2p"],
            peers=core.peers,
            p2p_failures=core.p2p_failures,
        )

    async def aclose(self) -> None:
        """Leave the swarm, stop every download; pending :meth:`fetch` calls raise
        :class:`~p2ploader.errors.LoaderClosedError`. Idempotent."""
        if self._closed:
            return
        self._closed = True
        if self._tracker is not None:
            await self._tracker.aclose()
        if self._peers is not None:
            await self._peers.aclose()
        if self._driver is not None:
            self._driver.close()
        if self._http is not None:
            await self._http.aclose()
        for futures in self._waiters.values():
            for future in futures:
                if not future.done():
                    future.set_exception(LoaderClosedError("the parts swarm was closed"))
        self._waiters.clear()
