"""A live LL-HLS stream and its viewers in virtual time: the parts swarm as it ships.

:class:`SimLowLatencyStream` publishes a part every ``part_duration`` seconds and serves LL-HLS
media playlists as text (``EXT-X-PART`` for the last segments, a preload hint for the next part,
``CAN-BLOCK-RELOAD``), parsed by the shipped parser (:func:`p2ploader.hls.parse_media`) and put on
one continuous timeline by the shipped :class:`~p2ploader.hls.LivePlaylistTracker`.

:class:`SimLowLatencyViewer` is what :class:`~p2ploader.aio.low_latency.LowLatencyStream` with a
:class:`~p2ploader.aio.part_swarm.PartSwarm` and :func:`~p2ploader.aio.ll_player.play_low_latency`
do, with modelled I/O:

* the shipped :class:`~p2ploader.core.ll_follower.LowLatencyFollower` decides the start
  (``PART-HOLD-BACK`` back, on an independent part), the blocking reloads (the modelled origin holds
  one until the part it names is published), and the fetches: parts, preload hints (held until
  the part is published), whole segments behind the live edge;
* the parts swarm is the shipped one: a :class:`~p2ploader.core.scheduler.Scheduler` with
  :func:`~p2ploader.core.part_exchange.parts_config` (the ``p2ploader-live`` policy, its
  election and the deadlines :func:`~p2ploader.core.part_exchange.part_policy_settings` scales to
  the part target and :func:`~p2ploader.core.part_exchange.parts_hold_back`), fed by a
  :class:`~p2ploader.core.part_exchange.PartIndex`, its HTTP and peers the simulator's models
  (:class:`~p2ploader.sim.model.ModelledHttp` holds a hinted part until it is published;
  :class:`~p2ploader.sim.model.ModelledPeers` relays a part while it arrives);
* as in the stream, a part or hint goes to the swarm once it is joined (by default when the player
  has its first item, as :meth:`PartSwarm.join` is called), a whole segment always over HTTP, and a
  part the swarm gives up over HTTP;
* the player is :class:`~p2ploader.playback.PlaybackModel` fed the items in order, started at one
  part target buffered, ticking every :data:`TICK_SECONDS`: it reports its position to the swarm
  (the deadlines) and samples its latency, the live media time (the end of the newest part plus
  the time since it was published) minus the playhead.

Bytes are counted as the benchmark counts them (``benchmarks/llhls_offload.py``): what reached
the player, and of that what came from peers; the origin's own count includes what seeders took
for others.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from typing import Literal

from p2ploader.config import LoaderConfig
from p2ploader.core import events as ev
from p2ploader.core import notifications as nt
from p2ploader.core.driver import Driver
from p2ploader.core.ll_follower import (
    FetchRequest,
    LowLatencyFollower,
    live_edge_time,
    play_position,
    resync_seek,
)
from p2ploader.core.part_exchange import (
    DEFAULT_PART_WINDOW,
    PartIndex,
    parts_config,
    parts_hold_back,
)
from p2ploader.core.peer_limits import announcement_id_limit, segment_size_limit
from p2ploader.core.scheduler import MAX_SEGMENT_SIZE, Scheduler
from p2ploader.core.segments import SegmentId
from p2ploader.errors import UsageError
from p2ploader.hls import LivePlaylistTracker, MediaPlaylist, parse_media
from p2ploader.playback import PlaybackModel
from p2ploader.sim.loop import VirtualHandle, VirtualLoop
from p2ploader.sim.model import LinkProfile, ModelledHttp, ModelledPeers, Origin, PeerNetwork, Rendition
from p2ploader.sim.viewer import ViewerFigures

__all__ = ["PartsJoin", "SimLowLatencyStream", "SimLowLatencyViewer"]

TICK_SECONDS = 0.1
"""The player's tick (seconds), as :func:`~p2ploader.aio.ll_player.play_low_latency`'s."""
PARTS_LISTED_SEGMENTS = 3
"""Segments whose parts the playlist lists (RFC 8216bis asks for those within three target
durations of the live edge)."""

PartsJoin = Literal["first-item", "at-once"]
"""When a viewer joins the parts swarm: once the player has its first item (what ships), or as soon
as the swarm starts (the first playlist)."""


class SimLowLatencyStream:
    """A live LL-HLS stream: renditions of ``segment_duration`` seconds cut in parts of
    ``part_duration`` seconds (a whole number of them), one published every ``part_duration``
    seconds. At time 0 ``window`` segments are complete; playlists list the last ``window``.

    Part ``g`` of the stream (segment ``g // n``, index ``g % n``) is published at
    ``(g + 1) * part_duration - window * segment_duration``. Payloads are zeros, one shared
    ``bytes`` per size: a part has ``bitrate * part_duration / 8`` bytes, a segment its parts'."""

    def __init__(
        self,
        *,
        renditions: list[Rendition],
        segment_duration: float,
        part_duration: float,
        part_hold_back: float,
        window: int = 6,
    ) -> None:
        parts = segment_duration / part_duration
        if part_duration <= 0 or abs(parts - round(parts)) > 1e-6 or round(parts) < 1:
            raise UsageError("segment_duration must be a whole number of part_duration seconds")
        self.renditions = {r.id: r for r in renditions}
        self.segment_duration = segment_duration
        self.part_duration = part_duration
        self.part_hold_back = part_hold_back
        self.parts_per_segment = round(parts)
        self.window = window
        self.live = True
        self._offset = window * segment_duration
        self._zeros: dict[int, bytes] = {}
        # Per rendition: the tracker every served playlist goes through (one timeline for all
        # viewers), and the playlists served by publication count.
        self._trackers: dict[str, LivePlaylistTracker] = {}
        self._served: dict[str, dict[int, MediaPlaylist]] = {r.id: {} for r in renditions}
        self._built: dict[str, int] = {}

    # ------------------------------------------------------------------ time

    def published_count(self, now: float) -> int:
        """Parts published at ``now`` (all renditions publish together)."""
        return int((now + self._offset) / self.part_duration + 1e-9)

    def publication_time(self, part: int) -> float:
        """When the stream's part ``part`` (counted from the stream's start) is published."""
        return (part + 1) * self.part_duration - self._offset

    def last_published(self, now: float) -> int:
        """Media sequence of the newest complete segment at ``now``."""
        return self.published_count(now) // self.parts_per_segment - 1

    def url(self, rendition: str) -> str:
        return f"http://origin.sim/{rendition}/index.m3u8"

    # ------------------------------------------------------------------ resources

    def _part_size(self, rendition: str) -> int:
        return max(1, int(self.renditions[rendition].bitrate * self.part_duration / 8))

    def _zeros_of(self, size: int) -> bytes:
        data = self._zeros.get(size)
        if data is None:
            data = self._zeros[size] = bytes(size)
        return data

    def payload(self, segment_id: SegmentId) -> bytes:
        """A part's bytes by its parts-swarm id (``segment_id.sequence`` is its wire id)."""
        return self._zeros_of(self._part_size(segment_id.rendition))

    def resource(self, url: str) -> tuple[bytes, float]:
        """The bytes at ``url`` (a part or a whole segment) and when they exist (seconds)."""
        _, rendition, name = url.rsplit("/", 2)
        stem = name.removesuffix(".mp4")
        msn_text, _, index_text = stem.partition(".")
        msn = int(msn_text)
        n = self.parts_per_segment
        if index_text:
            return self._zeros_of(self._part_size(rendition)), self.publication_time(
                msn * n + int(index_text)
            )
        return self._zeros_of(n * self._part_size(rendition)), self.publication_time(msn * n + n - 1)

    def blocking_ready_at(self, msn: int | None, part: int | None) -> float:
        """When a blocking reload asking for ``msn``/``part`` can be answered (seconds)."""
        if msn is None:
            return -math.inf
        n = self.parts_per_segment
        index = n - 1 if part is None else part
        return self.publication_time(msn * n + index)

    # ------------------------------------------------------------------ playlists

    def playlist(self, rendition: str, now: float) -> MediaPlaylist:
        """The playlist served at ``now``, on the stream's continuous timeline."""
        count = self.published_count(now)
        served = self._served[rendition]
        known = served.get(count)
        if known is not None:
            return known
        tracker = self._trackers.get(rendition)
        first = self._built.get(rendition, count - 1) + 1
        for step in range(max(first, count - 2 * self.window * self.parts_per_segment), count + 1):
            parsed = parse_media(self._text(rendition, step), self.url(rendition), rendition=rendition)
            if tracker is None:
                tracker = self._trackers[rendition] = LivePlaylistTracker(parsed)
            else:
                tracker.update(parsed)
            served[step] = tracker.current
        self._built[rendition] = count
        for old in [k for k in served if k < count - 4 * self.parts_per_segment]:
            del served[old]
        return served[count]

    def _text(self, rendition: str, count: int) -> str:
        n = self.parts_per_segment
        complete = count // n  # segments 0 .. complete - 1 are whole
        pending = count % n
        first = max(0, complete - self.window)
        lines = [
            "#EXTM3U",
            "#EXT-X-VERSION:9",
            f"#EXT-X-TARGETDURATION:{math.ceil(self.segment_duration)}",
            f"#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,PART-HOLD-BACK={self.part_hold_back:.3f}",
            f"#EXT-X-PART-INF:PART-TARGET={self.part_duration:.5f}",
            f"#EXT-X-MEDIA-SEQUENCE:{first}",
        ]

        def part_lines(msn: int, parts: int) -> None:
            for index in range(parts):
                independent = ",INDEPENDENT=YES" if index == 0 else ""
                lines.append(
                    f'#EXT-X-PART:DURATION={self.part_duration:.5f},URI="{msn}.{index}.mp4"{independent}'
                )

        for msn in range(first, complete):
            if msn >= complete - PARTS_LISTED_SEGMENTS:
                part_lines(msn, n)
            lines.append(f"#EXTINF:{self.segment_duration:.5f},")
            lines.append(f"{msn}.mp4")
        part_lines(complete, pending)
        lines.append(f'#EXT-X-PRELOAD-HINT:TYPE=PART,URI="{complete}.{pending}.mp4"')
        return "\n".join(lines) + "\n"


class SimLowLatencyViewer:
    """One LL-HLS viewer (see the module doc). ``on_join_swarm`` is called once, when the viewer
    joins the parts swarm (the world then registers its peers and introduces it); with ``p2p``
    False it never does and everything comes over HTTP."""

    def __init__(
        self,
        *,
        peer_id: str,
        loop: VirtualLoop,
        stream: SimLowLatencyStream,
        origin: Origin,
        network: PeerNetwork,
        config: LoaderConfig,
        link: LinkProfile,
        rendition: str,
        seed: int,
        hold_back: float | None,
        p2p: bool,
        join: PartsJoin = "first-item",
        on_join_swarm: Callable[[SimLowLatencyViewer], None] | None = None,
        max_peers: int | None = None,
    ) -> None:
        self.peer_id = peer_id
        self.link = link
        self.download_only = config.consume_only
        self._loop = loop
        self._stream = stream
        self._origin = origin
        self._network = network
        self._base_config = config
        self._rendition = rendition
        self._p2p = p2p
        self._join_policy = join
        self._on_join_swarm = on_join_swarm
        self._max_peers = max_peers
        self._rng = random.Random(seed)
        self.follower = LowLatencyFollower(stream.url(rendition), hold_back=hold_back)
        self._hold_back = hold_back
        self._index = PartIndex(rendition, window=DEFAULT_PART_WINDOW)
        self.scheduler: Scheduler | None = None
        self.driver: Driver | None = None
        self.http: ModelledHttp | None = None
        self.peers: ModelledPeers | None = None
        self.joined_swarm = False
        self.joined = loop.time()
        self.left: float | None = None
        self.model: PlaybackModel | None = None
        self._waiting: dict[SegmentId, list[FetchRequest]] = {}
        self._handles: set[VirtualHandle] = set()
        self._tick: VirtualHandle | None = None
        self.latency_samples: list[float] = []
        self.items = 0
        self.delivered_bytes = 0
        self.p2p_bytes = 0
        self.direct_requests = 0
        self.swarm_fallbacks = 0
        self._request_playlist()

    # ------------------------------------------------------------------ the origin, modelled

    def _one_way(self) -> float:
        return self.link.latency + self._origin.latency + self._rng.random() * self.link.jitter / 2

    def _later(self, when: float, callback: Callable[..., object], *args: object) -> None:
        handle: VirtualHandle

        def run() -> None:
            self._handles.discard(handle)
            if self.left is None:
                callback(*args)

        handle = self._loop.call_at(when, run)
        self._handles.add(handle)

    def _request_playlist(self) -> None:
        request = self.follower.next_playlist_request()
        if request is None or self.left is not None:
            return
        now = self._loop.time()
        sent = max(now, request.not_before)
        at_origin = max(sent + self._one_way(), self._stream.blocking_ready_at(request.msn, request.part))
        back = self._one_way()  # drawn now, as before, so the draws keep their order
        self._later(at_origin, self._playlist_served, at_origin, back, sent)

    def _playlist_served(self, served_at: float, back: float, requested_at: float) -> None:
        # Taken when the origin serves it: the stream builds its playlists in time order, and
        # responses may arrive out of the order they were served in (latency and jitter).
        playlist = self._stream.playlist(self._rendition, served_at)
        self._later(served_at + back, self._playlist_arrives, playlist, requested_at)

    def _playlist_arrives(self, playlist: MediaPlaylist, requested_at: float) -> None:
        now = self._loop.time()
        self.follower.playlist_received(playlist, now=now, requested_at=requested_at)
        if self._p2p:
            if self.scheduler is None:
                self._start_swarm(playlist)
            elif self.driver is not None:
                self.driver.feed(ev.PlaylistUpdated(segments=self._index.update(playlist)))
        self._pump()
        self._request_playlist()

    def _direct_get(self, fetch: FetchRequest) -> None:
        """A GET of ``fetch`` as the stream makes it (not through the swarm): held by the origin
        until the resource exists, then at the viewer's downlink (or the origin's bandwidth)."""
        data, exists_at = self._stream.resource(fetch.url)
        end = len(data) if fetch.length is None else fetch.offset + fetch.length
        body = data[fetch.offset : end]
        now = self._loop.time()
        served = max(now + self._one_way(), exists_at)
        rate = min(self.link.down, self._origin.bandwidth) * (1.0 - self.link.loss)
        self._origin.requests += 1
        self.direct_requests += 1
        self._later(served + self._one_way() + len(body) / rate, self._direct_done, fetch, body)

    def _direct_done(self, fetch: FetchRequest, body: bytes) -> None:
        self._origin.bytes_sent += len(body)
        self._completed(fetch, body, p2p=False)

    # ------------------------------------------------------------------ the parts swarm

    def _start_swarm(self, playlist: MediaPlaylist) -> None:
        """As :meth:`PartSwarm.start`: the scheduler for the part target and the distance behind
        live, its executors (modelled), the first list of parts."""
        stream = self._stream
        part_target = playlist.part_target or playlist.target_duration
        hold_back = parts_hold_back(playlist, given=self._hold_back, start=self.follower.start)
        config = parts_config(self._base_config, part_target=part_target, hold_back=hold_back)
        if self._max_peers is not None:  # an experiment's link count instead of PARTS_MAX_PEERS
            config = config.evolve(max_peers=self._max_peers)
        rng = self._rng
        scheduler = Scheduler(config, rng=random.Random(rng.getrandbits(64)), peer_id=self.peer_id)
        driver = Driver(scheduler, loop=self._loop, on_notification=self._on_notification)
        self.http = ModelledHttp(
            loop=self._loop,
            origin=self._origin,
            stream=stream,
            link=self.link,
            feed=driver.feed,
            rng=random.Random(rng.getrandbits(64)),
            retry_policy=scheduler.fetch_retry_policy,
            ready_at=self._part_ready_at,
        )
        rendition = self._rendition
        self.peers = ModelledPeers(
            peer_id=self.peer_id,
            swarm=rendition,
            network=self._network,
            link=self.link,
            feed=driver.feed,
            upload_cap=config.upload_rate_limit,
            max_peers=config.max_peers,
            payload=stream.payload,
            max_segment_size=segment_size_limit(
                bandwidth=int(stream.renditions[rendition].bitrate),
                target_duration=part_target,
                fallback=MAX_SEGMENT_SIZE,
            ),
            max_announced_ids=announcement_id_limit(DEFAULT_PART_WINDOW),
            max_message_size=config.web_rtc_max_message_size,
            is_banned=lambda other: scheduler.is_banned(rendition, other, now=self._loop.time()),
        )
        driver.http = self.http
        driver.peers = self.peers
        self.scheduler, self.driver = scheduler, driver
        driver.feed(ev.PlaylistUpdated(segments=self._index.update(playlist)))
        if self._join_policy == "at-once":
            self._join_swarm()

    def _part_ready_at(self, segment_id: SegmentId) -> float:
        """When the parts-swarm resource ``segment_id`` is published at the origin (seconds)."""
        msn, index = PartIndex.part_of(segment_id)
        return self._stream.publication_time(msn * self._stream.parts_per_segment + index)

    def _join_swarm(self) -> None:
        if self.joined_swarm or self.scheduler is None or self.left is not None:
            return
        self.joined_swarm = True
        if self._on_join_swarm is not None:
            self._on_join_swarm(self)

    def _on_notification(self, notification: nt.Notification) -> None:
        match notification:
            case nt.SegmentReady():
                for fetch in self._waiting.pop(notification.segment.id, []):
                    self._completed(fetch, notification.data, p2p=notification.source == "p2p")
            case nt.SegmentUnavailable():
                for fetch in self._waiting.pop(notification.segment_id, []):
                    self.swarm_fallbacks += 1  # the swarm gave it up: over HTTP, as the stream does
                    self._direct_get(fetch)
            case _:
                pass

    # ------------------------------------------------------------------ following and playing

    def _pump(self) -> None:
        for fetch in self.follower.take_fetches():
            entry = self._index.segment_for(fetch) if self.joined_swarm else None
            if entry is None or self.driver is None:
                self._direct_get(fetch)
                continue
            self._waiting.setdefault(entry.id, []).append(fetch)
            self.driver.feed(ev.SegmentRequested(segment_id=entry.id, max_attempts=3))
        now = self._loop.time()
        while (item := self.follower.next_ready()) is not None:
            model = self.model
            if model is None:
                playlist = self.follower.playlist
                assert playlist is not None
                buffer = (
                    playlist.part_target if playlist.part_target is not None else playlist.target_duration
                )
                # As play_low_latency: the hold-back behind the edge as it is now.
                position = play_position(item, self.follower.start, live_edge=live_edge_time(playlist))
                model = self.model = PlaybackModel(start_position=position, now=now, startup_buffer=buffer)
                self._tick = self._loop.call_later(TICK_SECONDS, self._on_tick)
            elif item.after_resync:
                # As play_low_latency: the follower started again, play from its hold-back point
                # when it lies past what is buffered or on a new timeline.
                playlist = self.follower.playlist
                edge = live_edge_time(playlist) if playlist is not None else None
                target = resync_seek(item, self.follower.start, live_edge=edge, buffered=model.buffered_run())
                if target is not None:
                    model.seek(target, now=now)
            if item.gap:
                model.add_gap(item.start, item.duration, now=now)
            else:
                model.add_segment(item.start, item.duration, now=now)
            self.items += 1
            if self._join_policy == "first-item":
                self._join_swarm()

    def _completed(self, fetch: FetchRequest, data: bytes, *, p2p: bool) -> None:
        self.delivered_bytes += len(data)
        if p2p:
            self.p2p_bytes += len(data)
        self.follower.fetch_completed(fetch, data)
        self._pump()

    def _on_tick(self) -> None:
        self._tick = None
        model = self.model
        if self.left is not None or model is None:
            return
        now = self._loop.time()
        playlist = self._stream.playlist(self._rendition, now)
        edge = live_edge_time(playlist)
        model.set_live_edge(edge, now=now)
        if model.update(now=now) == "playing":
            if self.driver is not None:
                self.driver.feed(ev.PlaybackMoved(position=model.position))
            published = self._stream.publication_time(self._stream.published_count(now) - 1)
            self.latency_samples.append(edge + (now - published) - model.position)
        self._tick = self._loop.call_later(TICK_SECONDS, self._on_tick)

    # ------------------------------------------------------------------ lifecycle

    def leave(self) -> None:
        if self.left is not None:
            return
        self.left = self._loop.time()
        if self.model is not None:
            self.model.update(now=self.left)
        for handle in (*self._handles, *([self._tick] if self._tick is not None else [])):
            handle.cancel()
        self._handles.clear()
        if self.peers is not None:
            self.peers.leave()
        if self.http is not None:
            self.http.close()
        if self.driver is not None:
            self.driver.close()

    def figures(self) -> ViewerFigures:
        now = self.left if self.left is not None else self._loop.time()
        model = self.model
        if model is None:
            model = PlaybackModel(start_position=0.0, now=self.joined)
        report = model.report(now=now)
        stats = self.scheduler.statistics() if self.scheduler is not None else None
        return ViewerFigures(
            peer_id=self.peer_id,
            joined=self.joined,
            left=self.left,
            download_only=self.download_only,
            http_bytes=self.delivered_bytes - self.p2p_bytes,
            p2p_bytes=self.p2p_bytes,
            uploaded_bytes=self.peers.uploaded_bytes if self.peers is not None else 0,
            http_requests=self.direct_requests
            + (stats.http_segments + stats.http_failures if stats is not None else 0),
            stalls=report.stalls,
            rebuffer_time=report.rebuffer_time,
            startup_time=report.startup_time,
            played=report.played,
            segments_played=self.items,
            uplink_mbps=self.link.up * 8 / 1e6,
            downlink_mbps=self.link.down * 8 / 1e6,
        )
