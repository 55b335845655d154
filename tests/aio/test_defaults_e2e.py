"""Defaults as shipped: two loaders with ``LoaderConfig()`` changed only in its tracker URL share
segments over real WebRTC, and the proxy with defaults makes offers.

The suite's rule: **every setting a test overrides gets at least one test with its default value.**
Almost every P2P test sets ``rtc_config={"iceServers": []}`` and runs inside
:func:`~p2ploader.aio.webrtc.restrict_ice_to_loopback`, so no test saw the default ``rtc_config``
(P2P Media Loader 0.6's STUN list) fail in aiortc; :func:`test_rtc_config_overrides_have_a_defaults_test`
keeps this file in place for as long as any test overrides it.

No override here, not even :func:`~p2ploader.aio.webrtc.restrict_ice_to_loopback`: it is not a
``LoaderConfig`` field, but it changes which host candidates aioice gathers, which is exactly what a
defaults test must leave alone. Without it aioice gathers the machine's non-loopback addresses
(aioice never offers 127.0.0.1), and two processes on one machine reach each other through those.

This machine has no internet: the default STUN servers cannot be reached. aioice then still offers
its host candidates; it waits for the STUN answer (server-reflexive candidate) at most 5 s per
gathering, and not at all when the name does not resolve (measured here: gathering 7 ms, the DNS
lookup fails at once). So the test is not slow offline, and would be at most 5 s slower per
connection on a network that swallows STUN.
"""

from __future__ import annotations

import asyncio
import inspect
import re
from pathlib import Path

import ifaddr
import pytest

from p2ploader import LoaderConfig, open_loader
from p2ploader.aio.loader import LoadedSegment
from p2ploader.proxy import open_proxy
from p2ploader.sample import sample_path, vod_segment_bytes
from p2ploader.testing.origin import LiveSettings, OriginServer
from p2ploader.tracker import TrackerServer
from tests.aio.test_p2p_e2e import view, wait_for_peers

pytestmark = [pytest.mark.anyio, pytest.mark.e2e]

ROOT = sample_path("ts")
WANT = vod_segment_bytes(ROOT / "360p/index.m3u8")


def _has_a_non_loopback_ipv4_address() -> bool:
    return any(
        isinstance(ip.ip, str) and not ip.ip.startswith("127.") for a in ifaddr.get_adapters() for ip in a.ips
    )


needs_an_interface = pytest.mark.skipif(
    not _has_a_non_loopback_ipv4_address(),
    reason="aioice never offers 127.0.0.1: with defaults, peers on one machine meet over another interface",
)


@needs_an_interface
async def test_two_loaders_with_default_settings_share_segments(tracker: TrackerServer) -> None:
    config = LoaderConfig(tracker_announce=(tracker.url,))
    assert config == LoaderConfig().evolve(tracker_announce=(tracker.url,))  # the only change
    with OriginServer(ROOT, live=LiveSettings(window_segments=10)) as origin:
        url = origin.url_for("live/master.m3u8")
        async with (
            open_loader(url, config=config, rendition="v1", seed=1) as first,
            open_loader(url, config=config, rendition="v1", seed=2) as second,
        ):
            got: list[list[LoadedSegment]] = [[], []]
            # The first viewer starts earlier and sits nearer to live; the second finds its segments.
            # The second prefetches 8 s at once, from the first where it can: 8 s of play go through
            # that prefetch to the segments loaded as playback needs them.
            first_view = asyncio.create_task(view(first, 12.0, got[0]))
            await asyncio.sleep(2.0)
            await wait_for_peers([first, second], 1)
            reports = await asyncio.wait_for(
                asyncio.gather(first_view, view(second, 8.0, got[1], distance=6)), timeout=45
            )
            stats = [first.statistics(), second.statistics()]
    for segments in got:
        assert segments
        for loaded in segments:
            assert loaded.data == WANT[loaded.segment.id.sequence % len(WANT)], loaded.segment.id
    assert [r.stalls for r in reports] == [0, 0]
    assert stats[1].p2p_bytes > 0, stats
    assert stats[0].p2p_uploaded_bytes >= stats[1].p2p_bytes


@needs_an_interface
async def test_the_proxy_with_default_settings_connects_to_a_peer(tracker: TrackerServer) -> None:
    config = LoaderConfig(tracker_announce=(tracker.url,))
    with OriginServer(ROOT, live=LiveSettings(window_segments=10)) as origin:
        url = origin.url_for("live/master.m3u8")
        async with (
            open_loader(url, config=config, rendition="v1", seed=1) as viewer,
            open_proxy(url, config=config, rendition="v1", seed=2, pin_rendition=True) as proxy,
        ):
            # Neither plays: each joins the swarm after swarm_join_delay (2 s by default), so the
            # link below needs an offer and an answer made with the default ICE servers.
            await wait_for_peers([viewer, proxy.loader], 1)


def test_rtc_config_overrides_have_a_defaults_test() -> None:
    """The rule made visible: while tests override ``rtc_config``, the defaults tests above exist
    and override nothing themselves (no ``rtc_config``, no loopback restriction)."""
    tests = Path(__file__).resolve().parents[1]
    overriding = [
        p.relative_to(tests)
        for p in sorted(tests.rglob("*.py"))
        if p.resolve() != Path(__file__).resolve() and re.search(r"\brtc_config\s*=", p.read_text())
    ]
    assert overriding  # if none is left, this check can go
    for test in (
        test_two_loaders_with_default_settings_share_segments,
        test_the_proxy_with_default_settings_connects_to_a_peer,
    ):
        source = inspect.getsource(test)
        assert "LoaderConfig(tracker_announce=(tracker.url,))" in source, test.__name__
        assert "rtc_config" not in source and "loopback" not in source, test.__name__
        assert "loopback" not in inspect.signature(test).parameters, test.__name__
