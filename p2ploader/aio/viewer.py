"""A headless viewer in its own process: play a stream with the loader, report JSON figures.

``python -m p2ploader.aio.viewer SPEC_JSON`` runs one viewer described by a :class:`ViewerSpec` (as
JSON) and prints one JSON line with its figures when it ends. :func:`run_viewer` is the same in
process. Used by the multi-process tests and the swarm benchmarks; separate processes are what make
a swarm on one machine realistic (each viewer has its own event loop and CPU time).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
import time
from collections.abc import Sequence
from typing import Any

import attrs

from p2ploader.aio.loader import open_loader
from p2ploader.aio.player import play
from p2ploader.aio.webrtc import restrict_ice_to_loopback
from p2ploader.config import LoaderConfig

__all__ = ["ViewerSpec", "run_viewer"]


@attrs.frozen(kw_only=True)
class ViewerSpec:
    url: str
    config: dict[str, Any] = attrs.field(factory=dict)
    """Loader settings in the FAQ spelling (camelCase, milliseconds), as :meth:`LoaderConfig.to_faq`."""
    duration: float = 30.0
    live_start_distance: int = 3
    forward_buffer: float = 10.0
    rendition: str | None = None
    seed: int | None = None
    loopback_only: bool = True
    """Offer only 127.0.0.1 ICE candidates (tests, benchmarks, the local demo)."""
    check_bytes_against: str | None = None
    """A directory of the VOD the live origin loops; each segment's bytes are compared with it."""


async def run_viewer(spec: ViewerSpec) -> dict[str, Any]:
    """Play ``spec`` and return its figures (JSON-serialisable)."""
    config = LoaderConfig.from_faq(spec.config) if spec.config else LoaderConfig()
    mismatches = 0
    segments = 0
    expected: list[bytes] | None = None
    started = time.monotonic()
    cpu_started = time.process_time()
    with restrict_ice_to_loopback() if spec.loopback_only else contextlib.nullcontext():
        async with open_loader(spec.url, config=config, rendition=spec.rendition, seed=spec.seed) as loader:
            if spec.check_bytes_against is not None:
                expected = _vod_bytes(spec.check_bytes_against, loader.rendition)

            def on_segment(loaded: Any) -> None:
                nonlocal mismatches, segments
                segments += 1
                if (
                    expected is not None
                    and loaded.data != expected[loaded.segment.id.sequence % len(expected)]
                ):
                    mismatches += 1

            report = await play(
                loader,
                duration=spec.duration,
                forward_buffer=spec.forward_buffer,
                live_start_distance=spec.live_start_distance,
                on_segment=on_segment,
            )
            stats = loader.statistics()
    return {
        "http_bytes": stats.http_bytes,
        "p2p_bytes": stats.p2p_bytes,
        "p2p_uploaded_bytes": stats.p2p_uploaded_bytes,
        "peers_connected": stats.peers_connected,
        "http_segments": stats.http_segments,
        "p2p_segments": stats.p2p_segments,
        "segments_played": segments,
        "mismatches": mismatches,
        "stalls": report.stalls,
        "rebuffer_time": report.rebuffer_time,
        "startup_time": report.startup_time,
        "played": report.played,
        "wall_time": time.monotonic() - started,
        "cpu_time": time.process_time() - cpu_started,
    }


def _vod_bytes(root: str, rendition: str) -> list[bytes]:
    """The segment bytes of the VOD media playlist behind ``rendition`` (``v<index>`` in the master)."""
    from pathlib import Path

    from p2ploader.hls import parse_master, parse_media

    base = Path(root)
    master = parse_master((base / "master.m3u8").read_text(), (base / "master.m3u8").as_uri())
    variant = next(v for v in master.variants if v.rendition_id == rendition)
    path = Path(variant.url.removeprefix("file://"))
    playlist = parse_media(path.read_text(), variant.url, rendition=rendition)
    out = []
    for seg in playlist.segments:
        data = Path(seg.url.removeprefix("file://")).read_bytes()
        out.append(data[seg.byte_range.offset : seg.byte_range.end] if seg.byte_range else data)
    return out


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 1:
        print("usage: python -m p2ploader.aio.viewer SPEC_JSON", file=sys.stderr)
        return 2
    spec = ViewerSpec(**json.loads(args[0]))
    result = asyncio.run(run_viewer(spec))
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
