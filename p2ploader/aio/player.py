"""A headless player loop: plays a :class:`~p2ploader.aio.loader.HybridLoader` in real time.

It asks for segments in play order while less than ``forward_buffer`` seconds are buffered, feeds
them to a :class:`~p2ploader.playback.PlaybackModel`, and reports the position (and stalls) to the
loader a few times a second, as a real player would. Used by ``p2ploader play``/``demo``, the
examples and the end-to-end tests.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from p2ploader.aio.loader import HybridLoader, LoadedSegment
from p2ploader.errors import SegmentUnavailableError
from p2ploader.playback import PlaybackModel, PlaybackReport

__all__ = ["play"]


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
) -> PlaybackReport:
    """Play until ``duration`` seconds of wall time passed or the stream ended."""
    loop = asyncio.get_running_loop()
    started = loop.time()
    playlist = loader.playlist
    segments = playlist.segments
    first = segments[max(0, len(segments) - live_start_distance)] if playlist.is_live else segments[0]
    model = PlaybackModel(start_position=first.start, now=started, startup_buffer=startup_buffer)
    done = asyncio.Event()

    async def fetch() -> None:
        try:
            async for loaded in loader.segments(
                start_sequence=first.id.sequence, skip_unavailable=playlist.is_live
            ):
                model.add_segment(loaded.segment.start, loaded.segment.duration, now=loop.time())
                if on_segment is not None:
                    on_segment(loaded)
                # Like a real player, wait while the buffer is full (checked every tick).
                while model.buffer_ahead(now=loop.time()) >= forward_buffer and not done.is_set():  # noqa: ASYNC110
                    await asyncio.sleep(tick)
                if done.is_set():
                    return
        except SegmentUnavailableError:
            pass  # a VOD segment that cannot be loaded ends playback there, as in a real player
        model.end_of_stream(now=loop.time())

    async def report() -> None:
        while not done.is_set():
            state = model.update(now=loop.time())
            loader.report_playback(model.position, stalled=state == "stalled")
            if on_tick is not None:
                on_tick(model)
            if state == "ended":
                done.set()
                return
            if duration is not None and loop.time() - started >= duration:
                done.set()
                return
            await asyncio.sleep(tick)

    fetcher = loop.create_task(fetch())
    try:
        await report()
    finally:
        fetcher.cancel()
        await asyncio.gather(fetcher, return_exceptions=True)
    return model.report(now=loop.time())
