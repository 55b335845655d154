"""Status end to end, on real sockets: a tracker that cannot be reached is reported (notification
with the URL and the reason, per-tracker statistics, the one-line warning); a real tracker is
reported connected; two real loaders in one swarm see each other connect and go; the public
services of the default settings are named once at INFO."""

from __future__ import annotations

import asyncio
import logging
import socket

import pytest

from p2ploader import LoaderConfig, open_loader
from p2ploader.aio.loader import HybridLoader
from p2ploader.config import DEFAULT_TRACKER_ANNOUNCE
from p2ploader.core import notifications as nt
from p2ploader.sample import sample_path
from p2ploader.status import tracker_warning
from p2ploader.testing.origin import OriginServer
from p2ploader.tracker import TrackerServer

pytestmark = [pytest.mark.anyio, pytest.mark.e2e]

ROOT = sample_path("ts")


def closed_port_url() -> str:
    """A ws:// URL on 127.0.0.1 where nothing listens (the port was just free)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"ws://127.0.0.1:{port}"


def config_for(tracker_url: str) -> LoaderConfig:
    return LoaderConfig(tracker_announce=(tracker_url,), rtc_config={"iceServers": []}, swarm_join_delay=None)


class Recorder:
    """A listener that keeps every notification and wakes whoever waits for one."""

    def __init__(self) -> None:
        self.seen: list[nt.Notification] = []
        self._changed = asyncio.Event()

    def __call__(self, notification: nt.Notification) -> None:
        self.seen.append(notification)
        self._changed.set()

    async def first(self, kind: type[nt.Notification] | tuple[type[nt.Notification], ...]) -> None:
        """Wait (at most 10 s) until a notification of ``kind`` has come."""
        async with asyncio.timeout(10):
            while not any(isinstance(n, kind) for n in self.seen):
                self._changed.clear()
                await self._changed.wait()


async def started(url: str, config: LoaderConfig, recorder: Recorder, seed: int) -> HybridLoader:
    """A started loader whose listener was there before it joined the swarm."""
    loader = HybridLoader(url, config=config, seed=seed)
    loader.add_listener(recorder)
    await loader.start(rendition="v0")
    return loader


async def test_an_unreachable_tracker_is_reported_with_its_url_and_reason() -> None:
    tracker_url = closed_port_url()
    recorder = Recorder()
    with OriginServer(ROOT) as origin:
        loader = await started(origin.url_for("master.m3u8"), config_for(tracker_url), recorder, seed=1)
        try:
            await recorder.first(nt.TrackerFailed)
            stats = loader.statistics()
        finally:
            await loader.aclose()
    failed = next(n for n in recorder.seen if isinstance(n, nt.TrackerFailed))
    assert failed.url == tracker_url and failed.reason == "connection refused" and failed.retry_in > 0
    assert not any(isinstance(n, nt.TrackerConnected) for n in recorder.seen)
    state = stats.trackers[tracker_url]
    assert state.state == "failed" and state.last_error == "connection refused"
    assert (
        tracker_warning(stats.trackers)
        == f"P2P is off: no tracker reachable: {tracker_url} (connection refused)"
    )


async def test_the_warning_is_logged_once(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="p2ploader.aio.loader")
    tracker_url = closed_port_url()
    recorder = Recorder()
    config = config_for(tracker_url)
    with OriginServer(ROOT) as origin:
        loader = await started(origin.url_for("master.m3u8"), config, recorder, seed=2)
        try:
            await recorder.first(nt.TrackerFailed)
        finally:
            await loader.aclose()
    warnings = [r.getMessage() for r in caplog.records if "P2P is off" in r.getMessage()]
    assert warnings == [f"P2P is off: no tracker reachable: {tracker_url} (connection refused)"]


async def test_a_real_tracker_is_reported_connected(tracker: TrackerServer) -> None:
    recorder = Recorder()
    with OriginServer(ROOT) as origin:
        loader = await started(origin.url_for("master.m3u8"), config_for(tracker.url), recorder, seed=3)
        try:
            await recorder.first(nt.TrackerConnected)
            async with asyncio.timeout(10):  # the swarm counts come with the announce response
                while loader.statistics().trackers[tracker.url].incomplete is None:  # noqa: ASYNC110
                    await asyncio.sleep(0.02)
            stats = loader.statistics()
        finally:
            await loader.aclose()
    assert [n.url for n in recorder.seen if isinstance(n, nt.TrackerConnected)] == [tracker.url]
    assert not any(isinstance(n, nt.TrackerFailed) for n in recorder.seen)
    state = stats.trackers[tracker.url]
    assert state.state == "connected" and state.last_error is None and state.reconnects == 0
    assert state.incomplete == 1  # ourselves
    assert tracker_warning(stats.trackers) is None


async def test_p2p_off_means_no_trackers_and_no_warning() -> None:
    with OriginServer(ROOT) as origin:
        async with open_loader(origin.url_for("master.m3u8"), config=LoaderConfig(use_p2p=False)) as loader:
            stats = loader.statistics()
    assert dict(stats.trackers) == {} and tracker_warning(stats.trackers) is None


async def test_peer_connected_then_gone_when_the_other_loader_closes(
    loopback: None, tracker: TrackerServer
) -> None:
    recorder, other_recorder = Recorder(), Recorder()
    with OriginServer(ROOT) as origin:
        url = origin.url_for("master.m3u8")
        loader = await started(url, config_for(tracker.url), recorder, seed=4)
        try:
            other = await started(url, config_for(tracker.url), other_recorder, seed=5)
            other_id = other.peer_id.hex()
            try:
                await recorder.first(nt.PeerConnected)
            finally:
                await other.aclose()
            await recorder.first(nt.PeerGone)
        finally:
            await loader.aclose()
    peer_events = [n for n in recorder.seen if isinstance(n, nt.PeerConnected | nt.PeerGone)]
    assert peer_events[0] == nt.PeerConnected(peer_id=other_id)
    assert isinstance(peer_events[1], nt.PeerGone) and peer_events[1].peer_id == other_id
    assert peer_events[1].reason == "closed by the peer"
    # The side that left says why it closed its link.
    gone = [n for n in other_recorder.seen if isinstance(n, nt.PeerGone)]
    assert [n.reason for n in gone] == ["we left the swarm"]


async def test_default_settings_name_the_public_services_once(caplog: pytest.LogCaptureFixture) -> None:
    """``LoaderConfig()`` as shipped. The swarm is joined after the first segment or 2 s
    (``swarm_join_delay``); the loader closes before either, so nothing reaches for the internet."""
    caplog.set_level(logging.INFO, logger="p2ploader.aio.loader")
    with OriginServer(ROOT) as origin:
        async with open_loader(origin.url_for("master.m3u8"), config=LoaderConfig()) as loader:
            stats = loader.statistics()
    lines = [r for r in caplog.records if "public trackers" in r.getMessage()]
    assert len(lines) == 1 and lines[0].levelno == logging.INFO
    message = lines[0].getMessage()
    for url in DEFAULT_TRACKER_ANNOUNCE:
        assert url in message
    assert "stun:stun.l.google.com:19302" in message
    assert "set tracker_announce/rtc_config to change" in message
    assert {state.state for state in stats.trackers.values()} == {"idle"}  # not contacted yet


async def test_own_tracker_and_no_stun_log_no_public_services(
    caplog: pytest.LogCaptureFixture, tracker: TrackerServer
) -> None:
    caplog.set_level(logging.INFO, logger="p2ploader.aio.loader")
    with OriginServer(ROOT) as origin:
        async with open_loader(origin.url_for("master.m3u8"), config=config_for(tracker.url)):
            pass
    assert not [r for r in caplog.records if "public" in r.getMessage()]
