"""The headless low-latency player after a re-sync, and the hold-back it refuses up front.

The stream is a stand-in driven by a real :class:`~p2ploader.core.ll_follower.LowLatencyFollower`:
what matters here is what the player does with the items, not how they were fetched."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from types import SimpleNamespace
from typing import Any

import httpx
import pytest

from p2ploader.aio.ll_player import play_low_latency
from p2ploader.aio.low_latency import LowLatencyStream
from p2ploader.core.ll_follower import LowLatencyFollower, LowLatencyItem, live_edge_time, play_position
from p2ploader.errors import HoldBackError
from p2ploader.hls import MediaPlaylist
from p2ploader.playback import PlaybackModel
from tests.core.test_ll_follower import URL, complete_all, drain, playlist

pytestmark = pytest.mark.anyio


class FollowedStream:
    """What :func:`play_low_latency` reads of a stream: its items, playlist and follower. It hands
    the follower's first item, waits for the player to take it, then re-syncs the follower on
    ``later`` (as after a long stall) and hands the first item after that."""

    def __init__(self, follower: LowLatencyFollower, later: MediaPlaylist) -> None:
        self.follower = follower
        self.playlist: MediaPlaylist | None = follower.playlist
        self.later = later
        self.model_seen = asyncio.Event()  # the player built its model and ticked once

    @property
    def statistics(self) -> SimpleNamespace:
        return SimpleNamespace(blocking_playlist_loads=0, resyncs=self.follower.resyncs, rendition_switches=0)

    def report_playback(self, position: float) -> None:
        pass

    async def items(self) -> AsyncIterator[LowLatencyItem]:
        complete_all(self.follower, self.follower.take_fetches())
        yield drain(self.follower)[0]
        await asyncio.wait_for(self.model_seen.wait(), 5.0)
        self.follower.resync(self.later, now=30.0)
        self.playlist = self.follower.playlist
        complete_all(self.follower, self.follower.take_fetches())
        yield drain(self.follower)[0]
        await asyncio.sleep(0.1)


async def test_after_a_resync_the_player_plays_from_the_new_starts_hold_back_point() -> None:
    follower = LowLatencyFollower(URL)
    follower.playlist_received(playlist(10, 12, 2), now=0.0)  # 12.2 at 25.0 s, played from 25.5 s
    # A long stall later the follower fell out of the window: it starts again on a newer
    # playlist (edge 47.0 s): loaded from the key frame 22.2 (45.0 s), played from 45.5 s.
    stream = FollowedStream(follower, later=playlist(20, 22, 2))
    models: list[PlaybackModel] = []
    positions: list[tuple[LowLatencyItem, float]] = []
    ticked: list[float] = []

    def on_tick(model: PlaybackModel, _latency: float | None) -> None:
        if not models:
            ticked.append(model.position)  # before the re-sync: the first item's play position
        models.append(model)
        stream.model_seen.set()

    def on_item(item: LowLatencyItem) -> None:
        positions.append((item, models[-1].position if models else float("nan")))

    player: Any = stream  # the player reads only what FollowedStream has
    report = await play_low_latency(player, duration=0.6, tick=0.02, on_tick=on_tick, on_item=on_item)
    (first, _), (resynced, at_resync) = positions
    assert not first.after_resync and ticked == [pytest.approx(25.5)]  # waiting there: no more items
    assert resynced.after_resync and resynced.start == pytest.approx(45.0)
    start = follower.start
    assert start is not None and start.sequence == 22
    assert follower.playlist is not None
    expected = play_position(resynced, start, live_edge=live_edge_time(follower.playlist))
    assert expected == pytest.approx(45.5)
    # Not the key frame the re-synced item starts with (45.0 s): the players and the proxy's
    # PlayersPlayhead agree on where playback is.
    assert at_resync == pytest.approx(expected)
    assert report.playback.seeks == 1


async def test_a_stream_refuses_a_hold_back_of_zero_when_it_is_made() -> None:
    async with httpx.AsyncClient() as client:
        with pytest.raises(HoldBackError) as raised:
            LowLatencyStream(URL, client=client, hold_back=0.0)
        assert raised.value.hold_back == 0.0
        LowLatencyStream(URL, client=client)  # the default (None: the playlist's PART-HOLD-BACK) is fine


class SwitchRefusingStream(FollowedStream):
    """A stream whose switches fail as one asked before the first item does when the rendition
    switched to has parts too long for the application's hold-back."""

    def __init__(self, follower: LowLatencyFollower) -> None:
        super().__init__(follower, later=playlist(20, 22, 2))
        self.switches_asked: list[object] = []

    async def items(self) -> AsyncIterator[LowLatencyItem]:
        complete_all(self.follower, self.follower.take_fetches())
        for item in drain(self.follower):
            yield item
        await asyncio.sleep(3600)  # live: nothing more

    async def select_rendition(self, rendition: object) -> None:
        self.switches_asked.append(rendition)
        raise HoldBackError(1.5, 2.0, "the playlist's own hold-back is 2 s, and less is not followed")


async def test_a_switch_refusing_the_hold_back_does_not_stop_playback(
    caplog: pytest.LogCaptureFixture,
) -> None:
    follower = LowLatencyFollower(URL)
    follower.playlist_received(playlist(10, 12, 2), now=0.0)
    stream = SwitchRefusingStream(follower)
    player: Any = stream
    report = await play_low_latency(player, duration=0.3, tick=0.02, switches=[(0.0, "v1")])
    assert stream.switches_asked == ["v1"] and "failed, playing on" in caplog.text
    assert report.playback.stalls == 0 and report.rendition_switches == 0
