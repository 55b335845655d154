"""A headless low-latency player: plays a :class:`~p2ploader.aio.low_latency.LowLatencyStream` in
real time and measures how far behind live it plays.

Items (parts, whole segments) are fed to a :class:`~p2ploader.playback.PlaybackModel` as they
arrive; every ``tick`` the model advances and two distances are sampled while it plays:

* **latency** (seconds of wall time): the wall clock minus the program date-time of the media at
  the playhead (``EXT-X-PROGRAM-DATE-TIME``, carried by each item). This is what a viewer sees
  behind the camera when the origin dates its media with its own clock; None when the stream has
  no dates.
* **edge distance** (media seconds): the playlist's live edge (the end of its last part) minus the
  playhead.

Used by ``p2ploader play --low-latency`` and the tests.
"""

from __future__ import annotations

import asyncio
import bisect
import logging
import statistics
import time
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta

import attrs

from p2ploader.aio.low_latency import LowLatencyStream
from p2ploader.core.ll_follower import LowLatencyItem, live_edge_time, play_position, resync_seek
from p2ploader.errors import HoldBackError, RemoteError, TransportError
from p2ploader.hls import Variant
from p2ploader.playback import PlaybackModel, PlaybackReport

__all__ = ["LowLatencyReport", "play_low_latency"]

logger = logging.getLogger(__name__)


@attrs.frozen(kw_only=True)
class LowLatencyReport:
    """What a low-latency viewer experienced. Times in seconds."""

    playback: PlaybackReport
    parts: int
    """Parts handed to the player (gaps included)."""
    segments: int
    """Whole segments (or rests of segments) handed to the player."""
    latency_samples: tuple[float, ...]
    """Wall clock minus the program date-time at the playhead, sampled every tick while playing."""
    edge_distance_samples: tuple[float, ...]
    """Live edge minus playhead (media seconds), sampled every tick while playing."""
    blocking_reloads: int
    resyncs: int
    rendition_switches: int = 0
    """Rendition switches that took over (``switches``)."""

    @property
    def latency_p50(self) -> float | None:
        return _percentile(self.latency_samples, 0.50)

    @property
    def latency_p95(self) -> float | None:
        return _percentile(self.latency_samples, 0.95)

    @property
    def edge_distance_p50(self) -> float | None:
        return _percentile(self.edge_distance_samples, 0.50)

    @property
    def edge_distance_p95(self) -> float | None:
        return _percentile(self.edge_distance_samples, 0.95)


def _percentile(samples: tuple[float, ...], fraction: float) -> float | None:
    if not samples:
        return None
    if len(samples) == 1:
        return samples[0]
    cuts = statistics.quantiles(samples, n=100, method="inclusive")
    return cuts[round(fraction * 100) - 1]


class _Dates:
    """Program date-times by media time: the date at any position the items covered."""

    def __init__(self) -> None:
        self._starts: list[float] = []
        self._dates: list[datetime] = []

    def add(self, item: LowLatencyItem) -> None:
        if item.program_date_time is not None:
            index = bisect.bisect(self._starts, item.start)
            self._starts.insert(index, item.start)
            self._dates.insert(index, item.program_date_time)

    def at(self, position: float) -> datetime | None:
        index = bisect.bisect(self._starts, position) - 1
        if index < 0:
            return None
        return self._dates[index] + timedelta(seconds=position - self._starts[index])


async def play_low_latency(
    stream: LowLatencyStream,
    *,
    duration: float | None = None,
    startup_buffer: float | None = None,
    tick: float = 0.1,
    on_item: Callable[[LowLatencyItem], None] | None = None,
    on_tick: Callable[[PlaybackModel, float | None], None] | None = None,
    stop: asyncio.Event | None = None,
    wall_clock: Callable[[], float] = time.time,
    switches: Sequence[tuple[float, Variant | str | int]] = (),
) -> LowLatencyReport:
    """Play ``stream`` until ``duration`` seconds of wall time passed, it ended, or ``stop`` is
    set. Playback starts PART-HOLD-BACK behind the live edge (the follower's
    :attr:`~p2ploader.core.ll_follower.StartPosition.play_from`, inside or after the first item,
    which begins at a key frame) once ``startup_buffer`` seconds are buffered from there (default:
    one part target, or one target duration without parts). After a re-sync (an item with
    ``after_resync``) the player seeks where :func:`~p2ploader.core.ll_follower.resync_seek` says
    (counted in the report's ``seeks``), or plays on. ``on_item`` sees each item as it arrives;
    ``on_tick`` the model and the latency (seconds, None without dates) every ``tick`` seconds.
    ``wall_clock`` gives the wall time in seconds since the epoch. ``switches``: (seconds after
    the start, rendition) pairs, each a
    :meth:`~p2ploader.aio.low_latency.LowLatencyStream.select_rendition` at that time (the media
    goes on without a seek: the new rendition continues where the old one stops); one that fails
    over the network, or (asked before the first item, so starting at the hold-back) whose
    rendition refuses the hold-back given (:class:`~p2ploader.errors.HoldBackError`: longer
    parts), is logged and playback goes on with the rendition it had. Errors that stop
    following (a part that cannot be loaded, a rendition the stream does not have) are raised.
    """
    loop = asyncio.get_running_loop()
    started = loop.time()
    done = asyncio.Event()
    dates = _Dates()
    counts = {"parts": 0, "segments": 0}
    latencies: list[float] = []
    distances: list[float] = []
    model: PlaybackModel | None = None
    schedule = sorted(switches, key=lambda switch: switch[0])
    switching: list[asyncio.Task[None]] = []

    async def switch_to(rendition: Variant | str | int) -> None:
        try:
            await stream.select_rendition(rendition)
        except (RemoteError, TransportError, HoldBackError) as exc:
            logger.warning("LL-HLS switch to %s failed, playing on: %s", rendition, exc)
        except BaseException:
            done.set()  # anything else (an unknown rendition) stops playback, raised below
            raise

    def first_model(item: LowLatencyItem) -> PlaybackModel:
        playlist = stream.playlist
        assert playlist is not None
        buffer = startup_buffer
        if buffer is None:
            buffer = playlist.part_target if playlist.part_target is not None else playlist.target_duration
        # From the hold-back point behind the edge as it is now, not the key frame the first item
        # starts with (see hls_low_latency.low_latency_start): the media before is decoded, not shown.
        position = play_position(item, stream.follower.start, live_edge=live_edge_time(playlist))
        return PlaybackModel(start_position=position, now=loop.time(), startup_buffer=buffer)

    def resync_target(item: LowLatencyItem, model: PlaybackModel) -> float | None:
        playlist = stream.playlist
        edge = live_edge_time(playlist) if playlist is not None else None
        return resync_seek(item, stream.follower.start, live_edge=edge, buffered=model.buffered_run())

    async def fetch() -> None:
        nonlocal model
        try:
            async for item in stream.items():
                now = loop.time()
                if model is None:
                    model = first_model(item)
                elif item.after_resync and (target := resync_target(item, model)) is not None:
                    # The follower started again past what is buffered (a long stall) or on a new
                    # timeline (a restarted packager): play from the new start's hold-back point,
                    # not from its key frame.
                    model.seek(target, now=now)
                if item.gap:
                    model.add_gap(item.start, item.duration, now=now)
                else:
                    model.add_segment(item.start, item.duration, now=now)
                dates.add(item)
                counts["parts" if item.kind == "part" else "segments"] += 1
                if on_item is not None:
                    on_item(item)
                if done.is_set():
                    return
        except BaseException:
            done.set()
            raise
        if model is not None:
            model.end_of_stream(now=loop.time())
        else:
            done.set()

    async def report() -> None:
        while not done.is_set():
            now = loop.time()
            latency = None
            if model is not None:
                playlist = stream.playlist
                edge = live_edge_time(playlist) if playlist is not None and playlist.is_live else None
                model.set_live_edge(edge, now=now)
                state = model.update(now=now)
                if state == "playing":
                    stream.report_playback(model.position)  # the parts swarm's deadlines
                    date = dates.at(model.position)
                    if date is not None:
                        latency = wall_clock() - date.timestamp()
                        latencies.append(latency)
                    if model.live_edge_distance is not None:
                        distances.append(model.live_edge_distance)
                if on_tick is not None:
                    on_tick(model, latency)
                if state == "ended":
                    done.set()
            while schedule and now - started >= schedule[0][0]:
                switching.append(loop.create_task(switch_to(schedule.pop(0)[1])))
            if (duration is not None and now - started >= duration) or (stop is not None and stop.is_set()):
                done.set()
            if not done.is_set():
                await asyncio.sleep(tick)

    fetcher = loop.create_task(fetch())
    try:
        await report()
    finally:
        for task in (fetcher, *switching):
            task.cancel()
        await asyncio.gather(fetcher, *switching, return_exceptions=True)
    for task in (fetcher, *switching):
        failure = None if task.cancelled() else task.exception()
        if failure is not None:
            raise failure
    now = loop.time()
    playback = (
        model.report(now=now)
        if model is not None
        else PlaybackReport(
            startup_time=None, stalls=0, rebuffer_time=0.0, played=0.0, position=0.0, state="ended"
        )
    )
    return LowLatencyReport(
        playback=playback,
        parts=counts["parts"],
        segments=counts["segments"],
        latency_samples=tuple(latencies),
        edge_distance_samples=tuple(distances),
        blocking_reloads=stream.statistics.blocking_playlist_loads,
        resyncs=stream.statistics.resyncs,
        rendition_switches=stream.statistics.rendition_switches,
    )
