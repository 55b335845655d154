"""A headless player loop: plays a :class:`~p2ploader.aio.loader.HybridLoader` in real time.

It asks for segments in play order while less than ``forward_buffer`` seconds are buffered, feeds
them to a :class:`~p2ploader.playback.PlaybackModel`, and reports the position (and stalls) to the
loader a few times a second, as a real player would. For live streams it tells the model where the
live edge is. With ``abr=True`` an :class:`~p2ploader.playback.AbrController` picks the rendition
after every segment and the loop switches with ``loader.select_rendition``. ``on_snapshot`` gets a
:class:`PlaybackSnapshot` every ``snapshot_interval`` seconds (the terminal views, the viewer
processes' progress lines and the plots use them). Used by ``p2ploader play``/``view``/``swarm``/
``demo``, the examples and the end-to-end tests.

A stream with separate audio (``loader.audio``, an EXT-X-MEDIA rendition) is played as two tracks:
the audio's segments are asked for alongside the video's, from the one covering the same start
position, each paced by its own buffer; the model plays what both have, so it stalls when either
lacks data at the playhead. ``on_segment`` gets the segments of both (their ids name the rendition).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping

import attrs

from p2ploader.aio.alternates import sequence_at
from p2ploader.aio.loader import HybridLoader, LoadedSegment, MediaKind, MediaStatistics
from p2ploader.errors import LoaderClosedError, P2PLoaderError, SegmentUnavailableError
from p2ploader.playback import AbrController, PlaybackModel, PlaybackReport, State
from p2ploader.status import tracker_summary, tracker_warning

__all__ = ["PlaybackSnapshot", "play", "snapshot_of"]

logger = logging.getLogger(__name__)


@attrs.frozen(kw_only=True)
class PlaybackSnapshot:
    """The player and the loader at one moment. Times and positions in seconds, sizes in bytes."""

    time: float
    """Seconds since :func:`play` started."""
    position: float
    buffer: float
    """Seconds buffered ahead of the position."""
    state: State
    live_edge_distance: float | None
    """Seconds behind the live edge (None for VOD)."""
    http_bytes: int
    p2p_bytes: int
    p2p_uploaded_bytes: int
    peers: int
    stalls: int
    seeks: int
    rendition: str
    trackers: str = "none"
    """The trackers' state in short (:func:`p2ploader.status.tracker_summary`): ``"1/2 connected"``..."""
    tracker_warning: str | None = None
    """``"P2P is off: no tracker reachable: ..."`` while every tracker fails, else ``None``."""
    by_media_type: Mapping[MediaKind, MediaStatistics] = attrs.field(factory=dict)
    """The loader's figures per media type (``"video"``, ``"audio"``, ...); the totals above add
    them up."""

    @property
    def p2p_ratio(self) -> float:
        """P2P bytes / all downloaded bytes (0.0 before anything was downloaded)."""
        total = self.http_bytes + self.p2p_bytes
        return self.p2p_bytes / total if total else 0.0


def snapshot_of(loader: HybridLoader, model: PlaybackModel, *, time: float) -> PlaybackSnapshot:
    """A :class:`PlaybackSnapshot` of ``loader`` and ``model`` (the model as of its last update)."""
    stats = loader.statistics()
    return PlaybackSnapshot(
        time=time,
        position=model.position,
        buffer=model.buffer,
        state=model.state,
        live_edge_distance=model.live_edge_distance,
        http_bytes=stats.http_bytes,
        p2p_bytes=stats.p2p_bytes,
        p2p_uploaded_bytes=stats.p2p_uploaded_bytes,
        peers=stats.peers_connected,
        stalls=model.stalls,
        seeks=model.seeks,
        rendition=stats.rendition,
        trackers=tracker_summary(stats.trackers),
        tracker_warning=tracker_warning(stats.trackers),
        by_media_type=stats.by_media_type,
    )


def _live_edge(loader: HybridLoader) -> float | None:
    playlist = loader.playlist
    if not playlist.is_live or not playlist.segments:
        return None
    last = playlist.segments[-1]
    return last.start + last.duration


async def play(
    loader: HybridLoader,
    *,
    duration: float | None = None,
    forward_buffer: float = 10.0,
    startup_buffer: float = 2.0,
    live_start_distance: int = 3,
    tick: float = 0.25,
    on_segment: Callable[[LoadedSegment], None] | None = None,
    on_tick: Callable[[PlaybackModel], None] | None = None,
    abr: bool = False,
    abr_controller: AbrController | None = None,
    on_snapshot: Callable[[PlaybackSnapshot], None] | None = None,
    snapshot_interval: float = 1.0,
    stop: asyncio.Event | None = None,
) -> PlaybackReport:
    """Play until ``duration`` seconds of wall time passed, the stream ended, or ``stop`` is set.

    Playback starts at ``loader.start_point()``: the stream's EXT-X-START if it has one, else the
    first segment (VOD) or ``live_start_distance`` segments from the live edge.

    ``abr``: choose the rendition after every segment with ``abr_controller`` (by default an
    :class:`~p2ploader.playback.AbrController` over the variants' bandwidths, starting from the
    rendition being loaded). ``on_snapshot``: called with a :class:`PlaybackSnapshot` right after
    start, every ``snapshot_interval`` seconds, and once more at the end.

    ``EXT-X-GAP`` segments come from the loader as gap markers; the model skips them
    (:meth:`~p2ploader.playback.PlaybackModel.add_gap`): playback moves through their duration
    without a stall and without waiting for bytes. ``on_segment`` sees the markers too
    (``loaded.gap``). Raises :class:`~p2ploader.errors.LivePlaylistStuckError` (or any other error
    that ended the segment loop, except an unavailable segment, which ends playback there) instead
    of returning a report.
    """
    loop = asyncio.get_running_loop()
    started = loop.time()
    playlist = loader.playlist
    # Where EXT-X-START says (PRECISE=YES: inside the first segment), else the usual defaults.
    start = loader.start_point(live_start_distance=live_start_distance)
    first = start.segment
    separate_audio = loader.audio is not None
    model = PlaybackModel(
        start_position=start.position,
        now=started,
        startup_buffer=startup_buffer,
        tracks=("main", "audio") if separate_audio else ("main",),
    )
    model.set_live_edge(_live_edge(loader), now=started)
    done = asyncio.Event()
    controller = abr_controller
    if abr and controller is None:
        variants = loader.variants
        current = next((v.index for v in variants if v.rendition_id == loader.rendition), 0)
        controller = AbrController([v.bandwidth or 1 for v in variants], current=current)

    async def adapt(loaded: LoadedSegment, asked_at: float) -> None:
        assert controller is not None
        now = loop.time()
        if loaded.source != "cache":
            controller.add_sample(len(loaded.data), now - asked_at)
        choice = controller.choose(buffer=model.buffer_ahead(now=now), now=now)
        variant = loader.variants[choice]
        if variant.rendition_id != loader.rendition:
            try:
                await loader.select_rendition(choice)
            except P2PLoaderError as exc:  # keep playing the current one
                logger.warning("rendition switch to %s failed: %s", variant.rendition_id, exc)
                controller.current = next(
                    (v.index for v in loader.variants if v.rendition_id == loader.rendition), choice
                )

    video_done = False
    audio_done = False

    def maybe_end() -> None:
        # The stream ends when the video did and the audio (if it is a track now) did too.
        if video_done and (audio_done or "audio" not in model.tracks):
            model.end_of_stream(now=loop.time())

    async def fetch_audio() -> None:
        """The separate audio track, from the segment covering the playhead, paced by its own
        buffer. A variant switch may close the audio loader (the new variant carries its own
        audio: the track is removed) or open another one (it goes on from the playhead)."""
        nonlocal audio_done
        audio: HybridLoader | None = None
        sequence: int | None = None
        try:
            while not done.is_set():
                if loader.audio is not audio:
                    audio, sequence = loader.audio, None
                if audio is None:
                    if "audio" in model.tracks:
                        model.remove_track("audio", now=loop.time())
                        maybe_end()
                    await asyncio.sleep(tick)  # until a switch brings separate audio back
                    continue
                if "audio" not in model.tracks:
                    model.add_track("audio", now=loop.time())
                if sequence is None:
                    sequence = sequence_at(audio.playlist, max(model.position, first.start))
                try:
                    segments = audio.segments(start_sequence=sequence, skip_unavailable=playlist.is_live)
                    async for loaded in segments:
                        segment = loaded.segment
                        if loaded.gap:  # EXT-X-GAP in the audio: skipped as in the video
                            model.add_gap(segment.start, segment.duration, now=loop.time(), track="audio")
                        else:
                            model.add_segment(segment.start, segment.duration, now=loop.time(), track="audio")
                        sequence = segment.id.sequence + 1
                        if on_segment is not None:
                            on_segment(loaded)
                        while (  # noqa: ASYNC110
                            model.track_buffer_ahead("audio", now=loop.time()) >= forward_buffer
                            and not done.is_set()
                        ):
                            await asyncio.sleep(tick)
                        if done.is_set() or loader.audio is not audio:
                            break
                    else:
                        break  # the audio ended
                except LoaderClosedError:
                    if loader.audio is audio:
                        raise  # the loader itself was closed
        except SegmentUnavailableError:
            pass  # as for the video: a VOD segment that cannot be loaded ends the track there
        except BaseException:
            done.set()  # as for the video: play() raises it once the reporter stops
            raise
        audio_done = True
        maybe_end()

    async def fetch() -> None:
        nonlocal video_done
        asked_at = loop.time()
        try:
            async for loaded in loader.segments(
                start_sequence=first.id.sequence, skip_unavailable=playlist.is_live
            ):
                if loaded.gap:  # EXT-X-GAP: nothing to wait for, the playhead moves through it
                    model.add_gap(
                        loaded.segment.start, loaded.segment.duration, now=loop.time(), track="main"
                    )
                else:
                    model.add_segment(
                        loaded.segment.start, loaded.segment.duration, now=loop.time(), track="main"
                    )
                if on_segment is not None:
                    on_segment(loaded)
                if controller is not None and not loaded.gap:
                    await adapt(loaded, asked_at)
                # Like a real player, wait while the buffer is full (checked every tick).
                while (  # noqa: ASYNC110
                    model.track_buffer_ahead("main", now=loop.time()) >= forward_buffer and not done.is_set()
                ):
                    await asyncio.sleep(tick)
                if done.is_set():
                    return
                asked_at = loop.time()
        except SegmentUnavailableError:
            pass  # a VOD segment that cannot be loaded ends playback there, as in a real player
        except BaseException:
            done.set()  # e.g. LivePlaylistStuckError: play() raises it once the reporter stops
            raise
        video_done = True
        maybe_end()

    async def report() -> None:
        next_snapshot = started
        while not done.is_set():
            now = loop.time()
            model.set_live_edge(_live_edge(loader), now=now)
            state = model.update(now=now)
            loader.report_playback(model.position, stalled=state == "stalled")
            if on_tick is not None:
                on_tick(model)
            if on_snapshot is not None and now >= next_snapshot:
                on_snapshot(snapshot_of(loader, model, time=now - started))
                next_snapshot += snapshot_interval
                if next_snapshot < now:  # fell behind (a slow callback): no burst of catch-ups
                    next_snapshot = now + snapshot_interval
            if (
                state == "ended"
                or (duration is not None and now - started >= duration)
                or (stop is not None and stop.is_set())
            ):
                done.set()
                return
            await asyncio.sleep(tick)

    fetchers = [loop.create_task(fetch())]
    if separate_audio or any(r.type == "AUDIO" and r.url for r in loader.master.renditions):
        fetchers.append(loop.create_task(fetch_audio()))
    try:
        await report()
    finally:
        for fetcher in fetchers:
            fetcher.cancel()
        await asyncio.gather(*fetchers, return_exceptions=True)
    for fetcher in fetchers:  # the video's error first
        failure = None if fetcher.cancelled() else fetcher.exception()
        if failure is not None:
            # The segment loop ended on an error the caller must hear about (a live playlist that
            # stopped changing, or a bug): raised, not reported as a normal end of playback.
            raise failure
    now = loop.time()
    result = model.report(now=now)
    if on_snapshot is not None:
        on_snapshot(snapshot_of(loader, model, time=now - started))
    return result
