"""The LL-HLS origin on a source it did not cut itself: ffmpeg's DASH muxer with HLS playlists
(separate audio rendition, `styp`/`sidx` in front of each fragment, program date-times), made by
the very command docs/origin.md gives, and read back by the client's LL-HLS parser."""

from __future__ import annotations

import subprocess
from pathlib import Path

import httpx
import pytest

from p2ploader.hls import parse_media, parse_playlist
from p2ploader.hls_low_latency import low_latency_start
from p2ploader.testing.llhls import LowLatencySettings
from p2ploader.testing.origin import LiveSettings, OriginServer
from tests.ffmpeg_streams import ffmpeg_or_skip

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def dash_source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    ffmpeg = ffmpeg_or_skip()
    root = tmp_path_factory.mktemp("dash_llhls")
    command = [
        ffmpeg, "-v", "error", "-f", "lavfi", "-i", "testsrc2=size=320x180:rate=24",
        "-f", "lavfi", "-i", "sine=frequency=440", "-t", "10",
        "-c:v", "libx264", "-preset", "veryfast", "-threads", "1", "-b:v", "300k",
        "-g", "48", "-keyint_min", "48", "-sc_threshold", "0", "-c:a", "aac", "-b:a", "64k",
        "-f", "dash", "-seg_duration", "2", "-frag_duration", "0.5", "-frag_type", "duration",
        "-hls_playlist", "1",
        "-init_seg_name", "init_$RepresentationID$.m4s",
        "-media_seg_name", "seg_$RepresentationID$_$Number%03d$.m4s",
        "-adaptation_sets", "id=0,streams=v id=1,streams=a", "manifest.mpd",
    ]  # fmt: skip
    subprocess.run(command, cwd=root, check=True, timeout=120)
    return root


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_a_dash_muxed_source_with_separate_audio_is_served_as_ll_hls_with_parts(dash_source: Path) -> None:
    clock = Clock()
    settings = LowLatencySettings()
    with OriginServer(
        dash_source, live=LiveSettings(window_segments=4), clock=clock, low_latency=settings
    ) as origin:
        master_url = origin.url_for("llhls/master.m3u8")
        master = parse_playlist(httpx.get(master_url).text, master_url)
        audio = [r for r in master.renditions if r.type == "AUDIO"]
        assert len(master.variants) == 1 and len(audio) == 1 and audio[0].url is not None
        for step in range(8):  # half-part steps: every part boundary of two segments
            clock.now = 5.0 + step * 0.25
            origin.clock_changed()
            for url, rendition in ((master.variants[0].url, "v0"), (audio[0].url, "a")):
                playlist = parse_media(httpx.get(url).text, url, rendition=rendition)
                assert playlist.part_target == pytest.approx(0.512, abs=0.02)
                assert playlist.preload_hints and playlist.preload_hints[0].type == "PART"
                assert any(len(segment.parts) == 4 for segment in playlist.segments)
                start = low_latency_start(playlist)
                assert start.part is not None and start.distance >= 1.5
        # A part's bytes are its fragments': the parts of a published segment add up to it.
        playlist = parse_media(httpx.get(master.variants[0].url).text, master.variants[0].url, rendition="v0")
        whole = next(segment for segment in playlist.segments if segment.parts)
        parts = b"".join(httpx.get(part.url).content for part in whole.parts)
        assert parts == httpx.get(whole.url).content
