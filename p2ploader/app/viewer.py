"""A headless viewer in its own process: play a stream with the loader, report JSON figures.

``python -m p2ploader.app.viewer SPEC_JSON`` runs one viewer described by a :class:`ViewerSpec` (as
JSON) and prints JSON lines on stdout:

* with ``tick_interval`` set, a progress line every ``tick_interval`` seconds:
  ``{"type": "tick", "t", "position", "buffer", "state", "live_edge_distance", "http_bytes",
  "p2p_bytes", "p2p_uploaded_bytes", "peers", "stalls", "seeks", "rendition", "media"}`` (``t`` in
  seconds since playback started);
* always, as the **last line**, the result: ``{"type": "result", "http_bytes", "p2p_bytes",
  "p2p_uploaded_bytes", "peers_connected", "http_segments", "p2p_segments", "segments_played",
  "mismatches", "stalls", "rebuffer_time", "startup_time", "played", "seeks", "rendition",
  "live_edge_distance", "abr_switches", "gaps", "wall_time", "cpu_time", "first_sequence",
  "media", "upload_control"}`` (``segments_played`` counts the variant's segments with media, not
  a separate audio track's; ``gaps`` the EXT-X-GAP segments skipped, which have none;
  ``first_sequence``: the media sequence number of the first segment played, where EXT-X-START or
  the live start distance put it; None when nothing played);
* ``upload_control`` is the delay-based upload control's figures (see
  :func:`upload_control_figures`), None when it is off;
* ``media`` splits the byte figures by media type (see :func:`media_figures`):
  ``{"video": {"rendition", "http_bytes", "p2p_bytes", "p2p_uploaded_bytes", "http_segments",
  "p2p_segments", "peers"}, "audio": {...}}``, ``audio`` only with a separate audio rendition;
* or, when the stream cannot be opened, ``{"type": "error", "error": "..."}`` and exit status 1.

SIGTERM or SIGINT ends playback early and still prints the result (a viewer that leaves the swarm
says goodbye to the tracker on the way out). :func:`run_viewer` is the same in process. Used by the
multi-process tests, ``p2ploader swarm``/``demo`` and the swarm benchmarks; separate processes are
what make a swarm on one machine realistic (each viewer has its own event loop and CPU time).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import attrs

from p2ploader.aio.loader import MediaKind, MediaStatistics, open_loader
from p2ploader.aio.player import PlaybackSnapshot, play
from p2ploader.aio.webrtc import restrict_ice_to_loopback
from p2ploader.config import LoaderConfig
from p2ploader.core.upload_control import UploadControlStatistics
from p2ploader.errors import P2PLoaderError
from p2ploader.playback import AbrController
from p2ploader.status import tracker_summary, tracker_warning

__all__ = [
    "ViewerSpec",
    "last_line",
    "media_figures",
    "run_viewer",
    "start_viewer_process",
    "tick_line",
    "upload_control_figures",
]


@attrs.frozen(kw_only=True)
class ViewerSpec:
    url: str
    config: dict[str, Any] = attrs.field(factory=dict)
    """Loader settings in the FAQ spelling (camelCase, milliseconds), as :meth:`LoaderConfig.to_faq`."""
    duration: float = 30.0
    live_start_distance: int = 3
    forward_buffer: float = 10.0
    rendition: str | int | None = None
    """Rendition id (``"v1"``) or index to load; None: the first variant."""
    audio: str | bool | None = None
    """The variant's audio rendition (id, language or name; False: none; None: the default), as
    :func:`~p2ploader.aio.loader.open_loader`'s ``audio``."""
    subtitles: str | bool | None = None
    """The variant's subtitles rendition, as :func:`~p2ploader.aio.loader.open_loader`'s
    ``subtitles`` (None: only a DEFAULT=YES one)."""
    seed: int | None = None
    loopback_only: bool = True
    """Offer only 127.0.0.1 ICE candidates (tests, benchmarks, the local demo)."""
    check_bytes_against: str | None = None
    """A directory of the VOD the live origin loops; each segment's bytes are compared with it."""
    tick_interval: float | None = None
    """Print a ``{"type": "tick"}`` progress line this often (seconds); None: only the result."""
    abr: bool = False
    """Adaptive bitrate: switch renditions with :class:`~p2ploader.playback.AbrController`."""
    startup_buffer: float = 2.0
    """Seconds buffered before playback starts (and resumes after a stall)."""


async def run_viewer(
    spec: ViewerSpec,
    *,
    on_snapshot: Callable[[PlaybackSnapshot], None] | None = None,
    stop: asyncio.Event | None = None,
) -> dict[str, Any]:
    """Play ``spec`` and return its figures (JSON-serialisable, the result line without ``type``).

    ``on_snapshot`` is called every ``spec.tick_interval`` seconds (every second when that is None);
    setting ``stop`` ends playback early."""
    config = LoaderConfig.from_faq(spec.config) if spec.config else LoaderConfig()
    mismatches = 0
    segments = 0
    first_sequence: int | None = None
    expected: dict[str, list[bytes]] = {}
    started = time.monotonic()
    cpu_started = time.process_time()
    with restrict_ice_to_loopback() if spec.loopback_only else contextlib.nullcontext():
        async with open_loader(
            spec.url,
            config=config,
            rendition=spec.rendition,
            audio=spec.audio,
            subtitles=spec.subtitles,
            seed=spec.seed,
        ) as loader:

            def on_segment(loaded: Any) -> None:
                nonlocal mismatches, segments, first_sequence
                if loaded.gap:  # EXT-X-GAP: no bytes to count or compare
                    return
                # Variants are "v<index>"; EXT-X-MEDIA renditions "<type>:<group>:<name>". The
                # counts are the variant's; a separate audio track's bytes are checked all the same.
                if ":" not in loaded.segment.id.rendition:
                    segments += 1
                    if first_sequence is None:
                        first_sequence = loaded.segment.id.sequence
                if spec.check_bytes_against is None:
                    return
                rendition = loaded.segment.id.rendition
                if rendition not in expected:  # per rendition: ABR may switch
                    expected[rendition] = _vod_bytes(spec.check_bytes_against, rendition)
                want = expected[rendition]
                if loaded.data != want[loaded.segment.id.sequence % len(want)]:
                    mismatches += 1

            controller: AbrController | None = None
            if spec.abr:
                variants = loader.variants
                current = next((v.index for v in variants if v.rendition_id == loader.rendition), 0)
                controller = AbrController([v.bandwidth or 1 for v in variants], current=current)
            report = await play(
                loader,
                duration=spec.duration,
                forward_buffer=spec.forward_buffer,
                startup_buffer=spec.startup_buffer,
                live_start_distance=spec.live_start_distance,
                on_segment=on_segment,
                abr_controller=controller,
                on_snapshot=on_snapshot,
                snapshot_interval=spec.tick_interval or 1.0,
                stop=stop,
            )
            stats = loader.statistics()
    return {
        "trackers": tracker_summary(stats.trackers),
        "tracker_warning": tracker_warning(stats.trackers),
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
        "seeks": report.seeks,
        "rendition": stats.rendition,
        "live_edge_distance": report.live_edge_distance,
        "abr_switches": controller.switches if controller is not None else 0,
        "gaps": report.gaps,
        "wall_time": time.monotonic() - started,
        "cpu_time": time.process_time() - cpu_started,
        "first_sequence": first_sequence,
        "media": media_figures(stats.by_media_type),
        "upload_control": upload_control_figures(stats.upload_control),
    }


def upload_control_figures(figures: UploadControlStatistics | None) -> dict[str, Any] | None:
    """The delay-based upload control's figures for the result line: round-trip ``samples``,
    rate ``cuts``, the allowed ``rate`` at the end (bytes/s, None: unlimited) and the last
    ``queuing_delay`` seen (seconds); None when the control is off."""
    if figures is None:
        return None
    return {
        "samples": figures.samples,
        "cuts": figures.cuts,
        "rate": figures.rate,
        "queuing_delay": figures.queuing_delay,
    }


def media_figures(by_media_type: Mapping[MediaKind, MediaStatistics]) -> dict[str, dict[str, Any]]:
    """The JSON ``media`` object of tick and result lines: byte figures per media type."""
    return {
        kind: {
            "rendition": figures.rendition,
            "http_bytes": figures.http_bytes,
            "p2p_bytes": figures.p2p_bytes,
            "p2p_uploaded_bytes": figures.p2p_uploaded_bytes,
            "http_segments": figures.http_segments,
            "p2p_segments": figures.p2p_segments,
            "peers": figures.peers_connected,
        }
        for kind, figures in by_media_type.items()
    }


def _vod_bytes(root: str, rendition: str) -> list[bytes]:
    """The segment bytes of the VOD media playlist behind ``rendition`` (``v<index>`` in the master,
    or an EXT-X-MEDIA rendition id such as ``a:aud:English``)."""
    from pathlib import Path

    from p2ploader.hls import parse_master
    from p2ploader.sample import vod_segment_bytes

    base = Path(root)
    master = parse_master((base / "master.m3u8").read_text(), (base / "master.m3u8").as_uri())
    variant = master.variant_by_id(rendition)
    alternate = master.rendition_by_id(rendition)
    url = variant.url if variant is not None else alternate.url if alternate is not None else None
    if url is None:
        raise ValueError(f"{root}: no media playlist for rendition {rendition!r}")
    return vod_segment_bytes(Path(url.removeprefix("file://")))


def tick_line(snapshot: PlaybackSnapshot) -> dict[str, Any]:
    """The ``{"type": "tick"}`` progress line for ``snapshot``."""
    edge = snapshot.live_edge_distance
    return {
        "type": "tick",
        "t": round(snapshot.time, 3),
        "position": round(snapshot.position, 3),
        "buffer": round(snapshot.buffer, 3),
        "state": snapshot.state,
        "live_edge_distance": None if edge is None else round(edge, 3),
        "http_bytes": snapshot.http_bytes,
        "p2p_bytes": snapshot.p2p_bytes,
        "p2p_uploaded_bytes": snapshot.p2p_uploaded_bytes,
        "peers": snapshot.peers,
        "stalls": snapshot.stalls,
        "seeks": snapshot.seeks,
        "rendition": snapshot.rendition,
        "trackers": snapshot.trackers,
        "tracker_warning": snapshot.tracker_warning,
        "media": media_figures(snapshot.by_media_type),
    }


async def start_viewer_process(
    spec: ViewerSpec,
    *,
    python: str | None = None,
    stderr: int = asyncio.subprocess.PIPE,
    prefix: Sequence[str] = (),
    **options: Any,
) -> asyncio.subprocess.Process:
    """Start ``python -m p2ploader.app.viewer`` for ``spec`` (with ``python``, by default this
    interpreter); its stdout is a pipe of the JSON lines above. ``prefix`` goes before the command
    (``ip netns exec NAMESPACE`` runs the viewer in a testbed namespace). ``options`` go to
    :func:`asyncio.create_subprocess_exec` (e.g. ``stdin``, ``start_new_session``)."""
    return await asyncio.create_subprocess_exec(
        *prefix,
        python or sys.executable,
        "-m",
        "p2ploader.app.viewer",
        json.dumps(attrs.asdict(spec)),
        stdout=asyncio.subprocess.PIPE,
        stderr=stderr,
        **options,
    )


def last_line(stdout: bytes) -> dict[str, Any]:
    """The last JSON line a viewer process printed: its result, or its error."""
    line: dict[str, Any] = json.loads(stdout.decode().strip().splitlines()[-1])
    return line


def _emit(line: dict[str, Any]) -> bool:
    """Print one JSON line; False when nobody reads stdout any more."""
    try:
        print(json.dumps(line), flush=True)
    except (BrokenPipeError, ValueError):
        return False
    return True


async def _main(spec: ViewerSpec) -> int:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):  # not on Windows
            loop.add_signal_handler(signum, stop.set)

    def on_snapshot(snapshot: PlaybackSnapshot) -> None:
        if not _emit(tick_line(snapshot)):
            stop.set()  # the parent went away: stop playing

    try:
        result = await run_viewer(spec, on_snapshot=on_snapshot if spec.tick_interval else None, stop=stop)
    except P2PLoaderError as exc:
        _emit({"type": "error", "error": str(exc)})
        return 1
    _emit({"type": "result", **result})
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 1:
        print("usage: python -m p2ploader.app.viewer SPEC_JSON", file=sys.stderr)
        return 2
    spec = ViewerSpec(**json.loads(args[0]))
    return asyncio.run(_main(spec))


if __name__ == "__main__":
    sys.exit(main())
