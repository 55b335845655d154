"""Playlists, keys and init sections go through the core's one HTTP retry policy, as segments do,
against the real local origin's faults.

Before, each got one attempt: a single 503 or a connection cut mid-body on the master playlist,
a key or an init section failed the stream (or the player's decryption), and on a live reload it
cost a refresh. Now a transient failure is tried again after ``http_retry_backoff`` (doubled), up
to ``http_retries`` extra attempts, and a 4xx still ends at once. The policy itself is tested alone
in tests/core/test_retries.py and ``fetch_bytes`` against respx in test_http_executor.py; the
socket is the point here (a real 503, a real connection closed mid-body).
"""

from __future__ import annotations

import time

import pytest

from p2ploader import LoaderConfig, open_loader
from p2ploader.errors import HttpStatusError
from p2ploader.sample import sample_path
from p2ploader.testing.origin import LiveSettings, OriginServer
from p2ploader.testing.wait import wait_until

pytestmark = [pytest.mark.anyio, pytest.mark.e2e]

TS = sample_path("ts")
AES = sample_path("aes")
FMP4 = sample_path("fmp4")
FAST = LoaderConfig(http_retry_backoff=0.01, live_refresh_interval=0.05, use_p2p=False)
CUT = 10  # bytes of the body sent before the origin closes the connection (full Content-Length)


@pytest.mark.parametrize("fault", [{"status": 503}, {"truncate_to": CUT}], ids=["503", "cut-body"])
async def test_a_master_and_a_media_playlist_survive_one_transient_failure(fault: dict[str, int]) -> None:
    with OriginServer(TS) as origin:
        origin.inject("/master.m3u8", times=1, **fault)
        origin.inject("/240p/index.m3u8", times=1, **fault)
        async with open_loader(origin.url_for("master.m3u8"), config=FAST) as loader:
            assert len(loader.playlist.segments) == 10
        stats = origin.statistics()
    assert stats.requests_for("/master.m3u8") == 2
    assert stats.requests_for("/240p/index.m3u8") == 2


async def test_a_live_reload_that_meets_one_503_is_not_a_refresh_error() -> None:
    clock = [20.0]
    path = "/live/240p/index.m3u8"
    with OriginServer(TS, live=LiveSettings(window_segments=4), clock=lambda: clock[0]) as origin:
        async with open_loader(origin.url_for("live/master.m3u8"), config=FAST) as loader:
            before = loader.playlist.segments[-1].id.sequence
            origin.inject(path, status=503, times=1)
            reloads = origin.statistics().requests_for(path)
            clock[0] += 2.0  # one more segment published
            await wait_until(lambda: loader.playlist.segments[-1].id.sequence == before + 1, what="reload")
            assert origin.statistics().requests_for(path) >= reloads + 2  # the 503, then its retry
            assert loader.statistics().playlist_refresh_errors == 0


@pytest.mark.parametrize("fault", [{"status": 503}, {"truncate_to": CUT}], ids=["503", "cut-body"])
async def test_a_key_survives_one_transient_failure(fault: dict[str, int]) -> None:
    with OriginServer(AES) as origin:
        origin.inject("/key.bin", times=1, **fault)
        async with open_loader(origin.url_for("master.m3u8"), config=FAST.evolve(decrypt=True)) as loader:
            loaded = await loader.get_segment(loader.playlist.segments[0])
        assert loaded.decrypted
        assert origin.statistics().requests_for("/key.bin") == 2


@pytest.mark.parametrize("fault", [{"status": 503}, {"truncate_to": CUT}], ids=["503", "cut-body"])
async def test_an_init_section_survives_one_transient_failure(fault: dict[str, int]) -> None:
    with OriginServer(FMP4) as origin:
        origin.inject("/init.mp4", times=1, **fault)
        async with open_loader(origin.url_for("master.m3u8"), config=FAST) as loader:
            data = await loader.fetch_init_section(loader.playlist.segments[0])
        assert data == (FMP4 / "init.mp4").read_bytes()
        assert origin.statistics().requests_for("/init.mp4") == 2


async def test_an_init_section_answered_404_ends_at_once() -> None:
    with OriginServer(FMP4) as origin:
        origin.inject("/init.mp4", status=404)
        async with open_loader(origin.url_for("master.m3u8"), config=FAST) as loader:
            with pytest.raises(HttpStatusError) as info:
                await loader.fetch_init_section(loader.playlist.segments[0])
        assert info.value.status == 404
        assert origin.statistics().requests_for("/init.mp4") == 1


async def test_a_playlist_that_keeps_failing_is_given_up_after_the_attempts() -> None:
    with OriginServer(TS) as origin:
        origin.inject("/master.m3u8", status=503)
        with pytest.raises(HttpStatusError, match="after 3 attempts") as info:
            async with open_loader(origin.url_for("master.m3u8"), config=FAST):
                pass
        assert info.value.status == 503
        assert origin.statistics().requests_for("/master.m3u8") == 3  # 1 + http_retries (2)


async def test_with_the_shipped_retry_settings_two_503s_on_the_master_are_waited_out() -> None:
    """``http_retries`` 2 and ``http_retry_backoff`` 0.5 s as shipped: 0.5 s, then 1 s (each
    shortened by up to half, ``http_retry_jitter``), then the third attempt succeeds."""
    shipped = LoaderConfig(use_p2p=False)
    assert (shipped.http_retries, shipped.http_retry_backoff) == (2, 0.5)
    with OriginServer(TS) as origin:
        origin.inject("/master.m3u8", status=503, times=2)
        started = time.monotonic()
        async with open_loader(origin.url_for("master.m3u8"), config=shipped) as loader:
            waited = time.monotonic() - started
            assert loader.variants
        assert origin.statistics().requests_for("/master.m3u8") == 3
    assert shipped.http_retry_jitter == 0.5
    assert waited >= 1.5 * 0.5
