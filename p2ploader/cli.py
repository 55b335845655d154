"""The ``p2ploader`` command.

Subcommands:

* ``demo``: serve the bundled sample stream as a live stream from a local origin on 127.0.0.1 and
  play it in real time with the loader, printing live figures and a final summary.
* ``play URL``: play any HLS stream with the loader and print the same figures.
* ``origin``: serve the bundled sample (VOD under ``/``, live under ``/live/``) for players and tests.
* ``tracker``: run the embedded WebTorrent-compatible tracker.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from p2ploader.config import PRESETS, LoaderConfig
from p2ploader.errors import P2PLoaderError

__all__ = ["main"]


def _load_config(args: argparse.Namespace) -> LoaderConfig:
    config = LoaderConfig.preset(args.preset) if args.preset else LoaderConfig()
    if args.config:
        path = Path(args.config)
        text = path.read_text(encoding="utf-8")
        loaded = (
            LoaderConfig.from_faq(json.loads(text))
            if path.suffix == ".json"
            else LoaderConfig.from_faq_text(text)
        )
        config = loaded
    return config


def _format_bytes(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} GB"


async def _play_url(url: str, args: argparse.Namespace, *, origin_stats: object | None = None) -> int:
    from p2ploader.aio.loader import open_loader
    from p2ploader.aio.player import play
    from p2ploader.playback import PlaybackModel

    config = _load_config(args)
    async with open_loader(url, config=config, rendition=args.rendition, seed=args.seed) as loader:
        kind = "live" if loader.is_live else "VOD"
        names = ", ".join(v.rendition_id for v in loader.variants)
        print(f"playing {url} ({kind}, renditions {names}; loading {loader.rendition})", flush=True)
        last_print = [0.0]
        loop = asyncio.get_running_loop()

        def on_tick(model: PlaybackModel) -> None:
            now = loop.time()
            if args.quiet or now - last_print[0] < 1.0:
                return
            last_print[0] = now
            s = loader.statistics()
            buffer = model.buffered_end - model.position
            print(
                f"  t={model.played:5.1f}s pos={model.position:6.1f}s buffer={buffer:4.1f}s "
                f"state={model.state:8s} http={_format_bytes(s.http_bytes):>9s} "
                f"p2p={_format_bytes(s.p2p_bytes):>9s} peers={s.peers_connected} stalls={s.stalls}",
                flush=True,
            )

        report = await play(
            loader, duration=args.duration, forward_buffer=args.forward_buffer, on_tick=on_tick
        )
        stats = loader.statistics()
    summary = {
        "url": url,
        "rendition": stats.rendition,
        "http_bytes": stats.http_bytes,
        "p2p_bytes": stats.p2p_bytes,
        "p2p_uploaded_bytes": stats.p2p_uploaded_bytes,
        "peer_efficiency": round(stats.peer_efficiency, 4),
        "peers_connected": stats.peers_connected,
        "http_segments": stats.http_segments,
        "p2p_segments": stats.p2p_segments,
        "http_failures": stats.http_failures,
        "stalls": report.stalls,
        "rebuffer_time_s": round(report.rebuffer_time, 3),
        "startup_time_s": None if report.startup_time is None else round(report.startup_time, 3),
        "played_s": round(report.played, 3),
    }
    print("summary:")
    for key, value in summary.items():
        print(f"  {key:20s} {value}")
    if args.json:
        _write_json(Path(args.json), summary)
        print(f"statistics written to {args.json}")
    return 0


def _write_json(path: Path, data: object) -> None:
    path.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")


async def _demo(args: argparse.Namespace) -> int:
    from p2ploader.origin import LiveSettings, OriginServer
    from p2ploader.sample import sample_path

    live = LiveSettings(window_segments=args.window)
    with OriginServer(sample_path("ts"), live=live) as origin:
        url = origin.url_for("live/master.m3u8")
        print(
            f"origin: {origin.url} serves the bundled sample as a live stream ({args.window} segment window)"
        )
        code = await _play_url(url, args)
        sent = origin.stats().segment_bytes_sent
        print(f"  {'origin_segment_bytes':20s} {sent}")
    return code


def _serve_origin(args: argparse.Namespace) -> int:
    import time

    from p2ploader.origin import LiveSettings, OriginServer
    from p2ploader.sample import sample_path

    with OriginServer(
        sample_path(args.sample),
        host=args.host,
        port=args.port,
        live=LiveSettings(window_segments=args.window),
    ) as origin:
        print(f"VOD:  {origin.url_for('master.m3u8')}")
        print(f"live: {origin.url_for('live/master.m3u8')}")
        print("Ctrl-C to stop", flush=True)
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass
    return 0


def _serve_tracker(args: argparse.Namespace) -> int:
    from p2ploader.tracker import run_tracker_forever

    limits = {"max_peers_per_swarm": args.max_peers_per_swarm} if args.max_peers_per_swarm else {}
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(run_tracker_forever(args.host, args.port, **limits))
    return 0


def _add_player_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--duration",
        type=float,
        default=None,
        metavar="SECONDS",
        help="stop after this many seconds of wall time (default: until the stream ends)",
    )
    parser.add_argument(
        "--rendition",
        default=None,
        help="rendition id (v0, v1, ...) or index to load (default: the first variant)",
    )
    parser.add_argument(
        "--forward-buffer",
        type=float,
        default=10.0,
        metavar="SECONDS",
        help="how far ahead the player buffers (default: 10)",
    )
    parser.add_argument(
        "--preset", choices=sorted(PRESETS), default=None, help="start from a named configuration preset"
    )
    parser.add_argument(
        "--config",
        default=None,
        metavar="FILE",
        help="loader settings: a JSON file or P2P Media Loader FAQ-style JavaScript object "
        "(camelCase keys, milliseconds)",
    )
    parser.add_argument("--seed", type=int, default=None, help="seed for the scheduler's random choices")
    parser.add_argument("--json", default=None, metavar="FILE", help="write the final statistics as JSON")
    parser.add_argument("--quiet", action="store_true", help="print only the summary")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="p2ploader",
        description="Load HLS segments over HTTP and from other viewers (P2P Media Loader compatible).",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    demo = sub.add_parser(
        "demo",
        help="play the bundled sample from a local live origin and show the figures",
        description="Start a local origin on 127.0.0.1 that serves the bundled sample stream "
        "as a live stream, play it in real time and print live figures and a summary.",
    )
    _add_player_options(demo)
    demo.add_argument("--window", type=int, default=6, help="segments in the live playlist (default: 6)")
    demo.set_defaults(duration=30.0, rendition="v1")

    play = sub.add_parser(
        "play",
        help="play an HLS stream through the loader and print the figures",
        description="Play an HLS stream (master or media playlist URL) in real time with the "
        "hybrid loader, as a headless player would.",
    )
    play.add_argument("url", help="master or media playlist URL")
    _add_player_options(play)

    origin = sub.add_parser(
        "origin",
        help="serve the bundled sample stream (VOD and live) on 127.0.0.1",
        description="Serve a bundled sample stream: VOD under /, live under /live/.",
    )
    origin.add_argument("--sample", default="ts", choices=["ts", "byterange", "fmp4", "aes"])
    origin.add_argument("--host", default="127.0.0.1", help="address to bind (default: 127.0.0.1)")
    origin.add_argument("--port", type=int, default=8080, help="port (default: 8080; 0 picks a free one)")
    origin.add_argument("--window", type=int, default=6, help="segments in the live playlists (default: 6)")
    tracker = sub.add_parser(
        "tracker",
        help="run the embedded WebTorrent-compatible tracker on 127.0.0.1",
        description="Run the embedded WebTorrent-compatible tracker (WebSocket signalling "
        "for peers of p2ploader and P2P Media Loader).",
    )
    tracker.add_argument("--host", default="127.0.0.1", help="address to bind (default: 127.0.0.1)")
    tracker.add_argument("--port", type=int, default=8000, help="port (default: 8000; 0 picks a free one)")
    tracker.add_argument("--max-peers-per-swarm", type=int, default=None, help="peers admitted per swarm")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if getattr(args, "rendition", None) is not None and str(args.rendition).isdigit():
        args.rendition = int(args.rendition)
    try:
        if args.command == "demo":
            return asyncio.run(_demo(args))
        if args.command == "play":
            return asyncio.run(_play_url(args.url, args))
        if args.command == "origin":
            return _serve_origin(args)
        if args.command == "tracker":
            return _serve_tracker(args)
    except P2PLoaderError as exc:
        print(f"p2ploader: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    raise AssertionError(f"unhandled command {args.command}")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
