"""A simulated viewer: the real scheduler and driver, a player model, and modelled executors.

The player follows :class:`~p2ploader.playback.PlaybackModel`: it asks for the next segment while
less than ``forward_buffer`` seconds are buffered (an ``EXT-X-GAP`` segment is answered at once
with no bytes, and skipped), reports the playhead at every segment boundary
(priorities change only there), and stalls when the buffer runs dry. A live viewer reloads its
playlist once per segment duration at its own phase, as players poll every target duration.

Failures are the shipped core's business too: a fetch the origin fails
(:class:`~p2ploader.sim.model.Origin`'s fault model) is retried or given up by the scheduler's
retry policy (a segment given up is skipped, as players do), and strikes and bans are its
reputation's: the viewer's modelled peers refuse a link to a peer its scheduler banned. With
``published_hashes`` the stream is taken to publish SHA-256 digests (``integrity_sha256``): every
segment holding peer bytes is checked against the stream's payload, as the loader's integrity
checker checks it against the playlist's digest, and a lone sender of wrong bytes is reported to
the core (:class:`~p2ploader.core.events.IntegrityCheckFailed`), which bans it.
"""

from __future__ import annotations

import random

import attrs

from p2ploader.config import LoaderConfig
from p2ploader.core import actions as act
from p2ploader.core import events as ev
from p2ploader.core import notifications as nt
from p2ploader.core.driver import Driver
from p2ploader.core.peer_limits import announcement_id_limit, segment_size_limit
from p2ploader.core.scheduler import MAX_SEGMENT_SIZE, Scheduler
from p2ploader.core.segments import SegmentId
from p2ploader.core.upload_control import UploadController
from p2ploader.playback import PlaybackModel
from p2ploader.sim.loop import VirtualHandle, VirtualLoop
from p2ploader.sim.model import LinkProfile, ModelledHttp, ModelledPeers, Origin, PeerNetwork, SimStream
from p2ploader.sim.uplink import Uplink

__all__ = ["SimViewer", "ViewerFigures"]


@attrs.frozen(kw_only=True)
class ViewerFigures:
    peer_id: str
    joined: float
    left: float | None
    download_only: bool
    http_bytes: int
    p2p_bytes: int
    uploaded_bytes: int
    http_requests: int
    stalls: int
    rebuffer_time: float
    startup_time: float | None
    played: float
    segments_played: int
    uplink_mbps: float = 0.0
    """The viewer's access link, in Mbit/s (drawn from the scenario's ranges, or given)."""
    downlink_mbps: float = 0.0


class SimViewer:
    def __init__(
        self,
        *,
        peer_id: str,
        loop: VirtualLoop,
        stream: SimStream,
        origin: Origin,
        network: PeerNetwork,
        config: LoaderConfig,
        policy: str,
        link: LinkProfile,
        rendition: str,
        seed: int,
        live_distance: int,
        forward_buffer: float,
        startup_buffer: float,
        published_hashes: bool = False,
    ) -> None:
        self.peer_id = peer_id
        self.link = link
        self._loop = loop
        self._stream = stream
        self._rendition = rendition
        self._forward_buffer = forward_buffer
        self.download_only = config.consume_only
        rng = random.Random(seed)

        def share_payload(segment_id: SegmentId) -> None:
            # Memory: a segment put together from pieces (P2P pieces, or a P2P prefix and an HTTP
            # range) is held as the stream's one shared payload, not as this viewer's copy; a big
            # audience would otherwise hold gigabytes.
            self.scheduler.share_payload(segment_id, stream.payload(segment_id))

        self.scheduler = Scheduler(
            config,
            rng=random.Random(rng.getrandbits(64)),
            policy=policy,
            peer_id=peer_id,
            validate_p2p=published_hashes,
        )
        self.driver = Driver(self.scheduler, loop=loop, on_notification=self._on_notification)
        if published_hashes:
            self.driver.validate = self._check_digest
        self.uplink: Uplink | None = None
        """The uplink's shared queue, when the link models one (``link.queue``): our uploads and
        our own traffic wait in it, and the upload control (``upload_delay_target``) steers it."""
        if link.queue > 0:
            target = config.upload_delay_target
            self.uplink = Uplink(
                rate=link.up,
                queue_seconds=link.queue,
                controller=UploadController(target=target) if target > 0 else None,
            )
        self.http = ModelledHttp(
            loop=loop,
            origin=origin,
            stream=stream,
            link=link,
            feed=self.driver.feed,
            rng=random.Random(rng.getrandbits(64)),
            retry_policy=self.scheduler.fetch_retry_policy,
            on_reassembled=share_payload,
            uplink=self.uplink,
        )
        self.peers = ModelledPeers(
            peer_id=peer_id,
            swarm=rendition,
            network=network,
            link=link,
            feed=self.driver.feed,
            upload_cap=config.upload_rate_limit,
            max_peers=config.max_peers,
            on_reassembled=share_payload,
            payload=stream.payload,
            # The limits the loader gives its peer manager (p2ploader.aio.loader).
            max_segment_size=segment_size_limit(
                bandwidth=int(stream.renditions[rendition].bitrate),
                target_duration=stream.segment_duration,
                fallback=MAX_SEGMENT_SIZE,
            ),
            max_announced_ids=announcement_id_limit(len(stream.playlist(rendition, loop.time()))),
            max_message_size=config.web_rtc_max_message_size,
            is_banned=lambda other: self.scheduler.is_banned(rendition, other, now=loop.time()),
            uplink=self.uplink,
        )
        self.driver.http = self.http
        self.driver.peers = self.peers
        self.joined = loop.time()
        self.left: float | None = None
        self._refresh_phase = rng.random() * stream.segment_duration
        playlist = stream.playlist(rendition, self.joined)
        first = playlist[max(0, len(playlist) - live_distance)] if stream.live else playlist[0]
        self.model = PlaybackModel(start_position=first.start, now=self.joined, startup_buffer=startup_buffer)
        self._next_sequence = first.id.sequence
        self._waiting = False  # a SegmentRequested is outstanding
        self._boundary: VirtualHandle | None = None
        self._refresh: VirtualHandle | None = None
        self.segments_played = 0
        self._known_last = playlist[-1].id.sequence  # newest segment of the last playlist reload
        self.driver.feed(ev.PlaylistUpdated(segments=playlist))
        self.driver.feed(ev.PlaybackMoved(position=first.start))
        if stream.live:
            self._schedule_refresh()
        self._request_next()

    # ---------------------------------------------------------------- player

    def _request_next(self) -> None:
        if self._waiting or self.left is not None:
            return
        now = self._loop.time()
        if self.model.buffer_ahead(now=now) >= self._forward_buffer:
            # Ask again when the buffer falls under the target.
            self._loop.call_later(
                self.model.buffer_ahead(now=now) - self._forward_buffer + 1e-6, self._request_next
            )
            return
        if not self._stream.live and self._next_sequence >= self._stream.vod_segments:
            self.model.end_of_stream(now=now)
            return
        if self._stream.live and self._next_sequence > self._known_last:
            return  # not in our playlist yet: the next reload brings it
        self._waiting = True
        segment = self._stream.segment(self._rendition, self._next_sequence)
        self.driver.feed(ev.SegmentRequested(segment_id=segment.id))

    async def _check_digest(self, action: act.ValidateSegment) -> tuple[bool, bool]:
        """The published SHA-256 check, modelled: (valid, verified) as the integrity checker says."""
        if action.data == self._stream.payload(action.segment.id):
            return True, True
        senders = action.peer_ids
        if len(senders) == 1:  # several senders: the core compares each one's bytes with the origin's
            self.driver.feed(
                ev.IntegrityCheckFailed(
                    segment_id=action.segment.id,
                    peer_id=senders[0],
                    check="sha256",
                    reason="SHA-256 differs from the playlist's",
                )
            )
        return False, False

    def _on_notification(self, notification: nt.Notification) -> None:
        if isinstance(notification, nt.SegmentReady):
            if notification.segment.id.sequence != self._next_sequence:
                return
            now = self._loop.time()
            segment = notification.segment
            if segment.gap:  # EXT-X-GAP: the scheduler answered at once, with no bytes; skip it
                self.model.add_gap(segment.start, segment.duration, now=now)
            else:
                self.model.add_segment(segment.start, segment.duration, now=now)
                self.segments_played += 1
            self._next_sequence += 1
            self._waiting = False
            self._arm_boundary()
            self._request_next()
        elif (
            isinstance(notification, nt.SegmentUnavailable)
            and notification.segment_id.sequence == self._next_sequence
        ):
            self._next_sequence += 1  # it slid out of the live window: skip it, as players do
            self._waiting = False
            self._request_next()

    def _arm_boundary(self) -> None:
        """Wake up at the next segment boundary, or when the buffer runs dry."""
        if self._boundary is not None:
            self._boundary.cancel()
        now = self._loop.time()
        state = self.model.update(now=now)
        if state != "playing":
            return
        duration = self._stream.segment_duration
        next_boundary = (int(self.model.position / duration + 1e-9) + 1) * duration
        wake = min(next_boundary, self.model.buffered_end) - self.model.position
        self._boundary = self._loop.call_later(max(wake, 1e-6), self._on_boundary)

    def _on_boundary(self) -> None:
        self._boundary = None
        if self.left is not None:
            return
        now = self._loop.time()
        self.model.update(now=now)
        self.driver.feed(ev.PlaybackMoved(position=self.model.position))
        self._arm_boundary()
        self._request_next()

    def _schedule_refresh(self) -> None:
        now = self._loop.time()
        duration = self._stream.segment_duration
        when = (int((now - self._refresh_phase) // duration) + 1) * duration + self._refresh_phase
        while when <= now + 1e-9:  # float rounding may land the next reload on "now"
            when += duration
        self._refresh = self._loop.call_at(when, self._on_refresh)

    def _on_refresh(self) -> None:
        if self.left is not None:
            return
        now = self._loop.time()
        playlist = self._stream.playlist(self._rendition, now)
        self._known_last = playlist[-1].id.sequence
        self.peers.set_playlist_window(len(playlist))
        self.driver.feed(ev.PlaylistUpdated(segments=playlist))
        self._schedule_refresh()
        self._request_next()

    # ---------------------------------------------------------------- lifecycle

    def leave(self) -> None:
        if self.left is not None:
            return
        self.left = self._loop.time()
        self.model.update(now=self.left)
        for handle in (self._boundary, self._refresh):
            if handle is not None:
                handle.cancel()
        self.peers.leave()
        self.http.close()
        self.driver.close()

    def figures(self) -> ViewerFigures:
        now = self.left if self.left is not None else self._loop.time()
        report = self.model.report(now=now)
        stats = self.scheduler.statistics()
        return ViewerFigures(
            peer_id=self.peer_id,
            joined=self.joined,
            left=self.left,
            download_only=self.download_only,
            http_bytes=stats.http_bytes,
            p2p_bytes=stats.p2p_bytes,
            uploaded_bytes=self.peers.uploaded_bytes,
            http_requests=stats.http_segments + stats.http_failures,
            stalls=report.stalls,
            rebuffer_time=report.rebuffer_time,
            startup_time=report.startup_time,
            played=report.played,
            segments_played=self.segments_played,
            uplink_mbps=self.link.up * 8 / 1e6,
            downlink_mbps=self.link.down * 8 / 1e6,
        )
