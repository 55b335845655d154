"""The ``p2ploader`` command.

Subcommands:

* ``demo``: an origin serving the bundled sample as a live stream, the embedded tracker and a swarm
  of viewer processes, all on 127.0.0.1; a live aggregate view, a summary and a plot.
* ``view URL``: one viewer with a live terminal view; ``--json`` writes its final statistics.
* ``swarm URL -n N``: N viewers in pools of loaders (one pool process per core; or each viewer in
  its own process), staggered, with optional churn; a live aggregate view, a final table,
  ``--plot`` and ``--json``.
* ``play URL``: one viewer printing plain lines (``view`` without the terminal view).
* ``origin``: serve the bundled sample (VOD under ``/``, live under ``/live/``, with ``--llhls``
  Low-Latency HLS under ``/llhls/``) or any HLS folder.
* ``tracker``: run the embedded WebTorrent-compatible tracker.

Adding a subcommand: write ``_add_<name>(sub)`` that creates its parser, gives every option a help
text and sets ``handler`` (a function of the parsed arguments returning the exit status), then list
it in ``_SUBCOMMANDS``. The work itself lives in other modules: :mod:`p2ploader.app.views` renders,
:mod:`p2ploader.app.swarmrun` runs swarms, :mod:`p2ploader.app.plots` draws.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
import tomllib
from collections.abc import Callable, Coroutine, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import attrs

from p2ploader.config import PRESETS, LoaderConfig
from p2ploader.errors import (
    BindError,
    ConfigError,
    ConfigFileError,
    MissingExtraError,
    P2PLoaderError,
    UsageError,
)
from p2ploader.extras import require_extras
from p2ploader.status import tracker_summary, tracker_warning, warning_shown_by_caller

if TYPE_CHECKING:
    from p2ploader.aio.ll_player import LowLatencyReport
    from p2ploader.aio.loader import HybridLoader, LoaderStatistics
    from p2ploader.app.swarmrun import SwarmResult
    from p2ploader.app.testbedrun import TestbedPlan
    from p2ploader.playback import PlaybackModel, PlaybackReport

__all__ = ["EXIT_ERROR", "EXIT_INTERRUPTED", "EXIT_OK", "build_parser", "error_line", "main"]

Handler = Callable[[argparse.Namespace], int]

DEMO_PLOT = "p2ploader-demo.png"

#: Exit statuses of every command: 0 success, 1 an error reported as one line on stderr (a port
#: in use, a missing config file, a stream that failed or played nothing), 2 a bad command line
#: (argparse), 130 interrupted (Ctrl-C).
EXIT_OK = 0
EXIT_ERROR = 1
EXIT_INTERRUPTED = 130


# --------------------------------------------------------------------------------------------------
# Shared helpers


def _load_config(args: argparse.Namespace) -> LoaderConfig:
    """``--preset`` (or the defaults), refined by the settings ``--config`` names."""
    config = LoaderConfig.preset(args.preset) if getattr(args, "preset", None) else LoaderConfig()
    if getattr(args, "config", None):
        config = _refine(config, _read_config_file(Path(args.config)))
    return _with_http_options(config, args)


def _with_http_options(config: LoaderConfig, args: argparse.Namespace) -> LoaderConfig:
    """``--http-header``, ``--http-cookie``, ``--http-headers-host`` and ``--user-agent`` on top of
    the preset and file."""
    changes: dict[str, Any] = {}
    if getattr(args, "http_header", None):
        changes["http_headers"] = {**config.http_headers, **dict(args.http_header)}
    if getattr(args, "http_cookie", None):
        changes["http_cookies"] = {**config.http_cookies, **dict(args.http_cookie)}
    if getattr(args, "http_headers_host", None):
        changes["http_headers_hosts"] = (*config.http_headers_hosts, *args.http_headers_host)
    if getattr(args, "user_agent", None) is not None:
        changes["user_agent"] = args.user_agent
    return config.evolve(**changes) if changes else config


def _name_value(text: str) -> tuple[str, str]:
    """argparse type for ``NAME=VALUE`` (the value may contain ``=``; it is checked by the config)."""
    name, sep, value = text.partition("=")
    if not sep or not name.strip():
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE, got {text!r}")
    return name.strip(), value


def _read_config_file(path: Path) -> LoaderConfig:
    """The settings in ``path`` (JSON, TOML, or the FAQ's JavaScript object) over the defaults.
    Any failure to read or parse it is a :class:`ConfigFileError` naming the path and the reason."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigFileError(str(path), "no such file") from None
    except IsADirectoryError:
        raise ConfigFileError(str(path), "is a directory, not a file") from None
    except PermissionError:
        raise ConfigFileError(str(path), "permission denied") from None
    except UnicodeDecodeError as exc:
        raise ConfigFileError(str(path), f"not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except OSError as exc:
        raise ConfigFileError(str(path), exc.strerror or str(exc)) from None
    try:
        if path.suffix == ".json":
            return LoaderConfig.from_faq(json.loads(text))
        if path.suffix == ".toml":
            return LoaderConfig.from_faq(tomllib.loads(text))
        return LoaderConfig.from_faq_text(text)
    except (json.JSONDecodeError, tomllib.TOMLDecodeError, ConfigError) as exc:
        raise ConfigFileError(str(path), str(exc)) from None


def _refine(base: LoaderConfig, settings: LoaderConfig) -> LoaderConfig:
    """``base`` with every setting that ``settings`` changed from the defaults applied on top, so
    that ``--config`` refines ``--preset`` rather than replacing it. A file setting a key to its
    default value cannot be told from a file that leaves it out: the preset's value stays."""
    defaults = LoaderConfig()
    changed = {
        name: getattr(settings, name)
        for name in attrs.fields_dict(LoaderConfig)
        if getattr(settings, name) != getattr(defaults, name)
    }
    return base.evolve(**changed) if changed else base


def _number(kind: type[int] | type[float], *, minimum: float, strict: bool) -> Callable[[str], float]:
    """An argparse ``type`` accepting ``kind`` values above (``strict``) or from ``minimum`` on."""

    def parse(text: str) -> float:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
        if value < minimum or (strict and value == minimum):
            relation = ">" if strict else ">="
            raise argparse.ArgumentTypeError(f"must be {relation} {minimum:g}, got {text}")
        return value

    parse.__name__ = kind.__name__  # argparse names the type in its messages
    return parse


_POSITIVE_INT = _number(int, minimum=0, strict=True)
_POSITIVE = _number(float, minimum=0, strict=True)
_NON_NEGATIVE = _number(float, minimum=0, strict=False)


def _fancy(args: argparse.Namespace) -> bool:
    """Use rich's live views: not with ``--quiet``, and only on a terminal."""
    return not getattr(args, "quiet", False) and sys.stdout.isatty()


def _is_loopback(url: str) -> bool:
    host = urlsplit(url).hostname or ""
    return host in ("localhost", "::1") or host.startswith("127.")


def _write_json(path: Path, data: object) -> None:
    path.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")


def _summary(url: str, stats: LoaderStatistics, report: PlaybackReport) -> dict[str, Any]:
    edge = report.live_edge_distance
    return {
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
        "live_edge_distance_s": None if edge is None else round(edge, 3),
        "trackers": tracker_summary(stats.trackers),
        **_media_summary(stats),
    }


def _media_summary(stats: LoaderStatistics) -> dict[str, Any]:
    """``audio_rendition``, ``audio_http_bytes``, ``audio_p2p_bytes``, ``audio_peer_efficiency``
    and the same for ``video`` (and ``subtitles``), when the stream has separate audio."""
    if len(stats.by_media_type) < 2:
        return {}
    out: dict[str, Any] = {}
    for kind, figures in stats.by_media_type.items():
        out[f"{kind}_rendition"] = figures.rendition
        out[f"{kind}_http_bytes"] = figures.http_bytes
        out[f"{kind}_p2p_bytes"] = figures.p2p_bytes
        out[f"{kind}_peer_efficiency"] = round(figures.peer_efficiency, 4)
    return out


def _showing_status(
    command: Callable[[argparse.Namespace], Coroutine[Any, Any, int]], args: argparse.Namespace
) -> int:
    """Run a command that prints the "P2P is off" warning itself (:class:`_WarnOnce`): the loader's
    log record of it is dropped meanwhile, so it is one line, not two."""
    with warning_shown_by_caller():
        return asyncio.run(command(args))


class _WarnOnce:
    """Prints "P2P is off: no tracker reachable: ..." once, as one line, the first time a status
    carries it (without it a broken tracker shows only as 0 % P2P)."""

    def __init__(self, say: Callable[[str], None]) -> None:
        self._say = say
        self.said = False

    def __call__(self, warning: str | None) -> None:
        if warning is not None and not self.said:
            self.said = True
            self._say(f"warning: {warning}")


def _describe(url: str, loader: HybridLoader) -> str:
    kind = "live" if loader.is_live else "VOD"
    names = ", ".join(v.rendition_id for v in loader.variants)
    extra = "".join(
        f" with {what} {companion.rendition}"
        for what, companion in (("audio", loader.audio), ("subtitles", loader.subtitles))
        if companion is not None
    )
    return f"playing {url} ({kind}, renditions {names}; loading {loader.rendition}{extra})"


# --------------------------------------------------------------------------------------------------
# play and view: one viewer in this process


def _print_summary(args: argparse.Namespace, summary: dict[str, Any]) -> None:
    """``play``'s closing summary, one figure a line, and into ``--json`` when asked."""
    print("summary:")
    for key, value in summary.items():
        print(f"  {key:20s} {value}")
    if args.json:
        _write_json(Path(args.json), summary)
        print(f"statistics written to {args.json}")


def _played_status(command: str, summary: dict[str, Any]) -> int:
    """The exit status of ``play``/``view`` from their :func:`_summary`: :data:`EXIT_ERROR` when
    no media played at all (every segment failed, or the stream ended before starting)."""
    if summary["played_s"] > 0:
        return EXIT_OK
    failures = summary["http_failures"]
    print(f"p2ploader {command}: nothing played ({failures} failed HTTP downloads)", file=sys.stderr)
    return EXIT_ERROR


async def _play(args: argparse.Namespace) -> int:
    from p2ploader.aio.loader import open_loader
    from p2ploader.aio.player import PlaybackSnapshot, play
    from p2ploader.app.views import viewer_line

    if args.low_latency:
        return await _play_low_latency(args, command="play")
    url = args.url
    async with open_loader(
        url,
        config=_load_config(args),
        rendition=args.rendition,
        audio=args.audio,
        subtitles=args.subtitles,
        seed=args.seed,
    ) as loader:
        print(_describe(url, loader), flush=True)

        warn = _WarnOnce(lambda line: print(line, flush=True))

        def on_snapshot(snapshot: PlaybackSnapshot) -> None:
            warn(snapshot.tracker_warning)
            if not args.quiet:
                print("  " + viewer_line(snapshot), flush=True)

        report = await play(
            loader, duration=args.duration, forward_buffer=args.forward_buffer, on_snapshot=on_snapshot
        )
        stats = loader.statistics()
        summary = _summary(url, stats, report)
    warn(tracker_warning(stats.trackers))
    _print_summary(args, summary)
    return _played_status("play", summary)


def _low_latency_summary(url: str, rendition: str, report: LowLatencyReport) -> dict[str, Any]:
    playback = report.playback

    def rounded(value: float | None) -> float | None:
        return None if value is None else round(value, 3)

    return {
        "url": url,
        "rendition": rendition,
        "mode": "low-latency",
        "parts": report.parts,
        "segments": report.segments,
        "played_s": round(playback.played, 3),
        "stalls": playback.stalls,
        "rebuffer_s": round(playback.rebuffer_time, 3),
        "latency_p50_s": rounded(report.latency_p50),
        "latency_p95_s": rounded(report.latency_p95),
        "edge_distance_p50_s": rounded(report.edge_distance_p50),
        "edge_distance_p95_s": rounded(report.edge_distance_p95),
        "blocking_reloads": report.blocking_reloads,
        "resyncs": report.resyncs,
    }


async def _play_low_latency(args: argparse.Namespace, *, command: str) -> int:
    """``play --low-latency`` and ``view --low-latency``: follow a live LL-HLS stream part by part,
    over HTTP, print a plain line every second (every ``--interval`` for ``view``), and report
    how far behind live it played."""
    from p2ploader.aio.ll_player import play_low_latency
    from p2ploader.aio.loader import open_loader

    url = args.url
    # Over HTTP only unless --p2p-parts: then parts come from other p2ploader peers too, through
    # the rendition's parts swarm. The variant's parts only: separate audio and subtitles are not
    # followed at low latency yet.
    p2p_parts = bool(getattr(args, "p2p_parts", False))
    config = _load_config(args)
    if not p2p_parts:
        config = attrs.evolve(config, use_p2p=False)
    else:
        if getattr(args, "tracker", None):  # view's --tracker
            config = config.evolve(tracker_announce=tuple(args.tracker))
        loopback = getattr(args, "loopback_ice", None)
        if loopback is None:
            trackers = config.tracker_announce
            loopback = bool(trackers) and all(_is_loopback(t) for t in trackers)
        if loopback:
            config = config.evolve(rtc_config={"iceServers": []})
    async with open_loader(
        url, config=config, rendition=args.rendition, audio=False, subtitles=False, seed=args.seed
    ) as loader:
        how = "over HTTP and from p2ploader peers (parts swarm)" if p2p_parts else "over HTTP"
        print(_describe(url, loader) + f", at low latency {how}", flush=True)
        loop = asyncio.get_running_loop()
        next_line = loop.time()
        every = float(getattr(args, "interval", 1.0))

        def on_tick(model: PlaybackModel, latency: float | None) -> None:
            nonlocal next_line
            now = loop.time()
            if args.quiet or now < next_line:
                return
            next_line = now + every
            shown = "n/a" if latency is None else f"{latency:.2f}s"
            edge = model.live_edge_distance
            print(
                f"  {model.state:8s} pos {model.position:8.2f}s  buffer {model.buffer:5.2f}s  "
                f"latency {shown}  behind edge {'n/a' if edge is None else f'{edge:.2f}s'}",
                flush=True,
            )

        async with loader.low_latency_stream(hold_back=args.hold_back, p2p=p2p_parts) as stream:
            report = await play_low_latency(stream, duration=args.duration, on_tick=on_tick)
        summary = _low_latency_summary(url, loader.rendition, report)
        if p2p_parts:
            summary["bytes"] = stream.statistics.bytes
            summary["p2p_bytes"] = stream.statistics.p2p_bytes
    _print_summary(args, summary)
    return _played_status(command, {**summary, "http_failures": 0})


async def _view(args: argparse.Namespace) -> int:
    from p2ploader.aio.loader import open_loader
    from p2ploader.aio.player import PlaybackSnapshot, play
    from p2ploader.aio.webrtc import restrict_ice_to_loopback
    from p2ploader.app.views import LiveOutput, make_console, viewer_line, viewer_panel, viewer_summary

    if args.low_latency:  # plain lines: the terminal view's figures are the swarm's
        return await _play_low_latency(args, command="view")
    url = args.url
    config = _load_config(args)
    if args.tracker:
        config = config.evolve(tracker_announce=tuple(args.tracker))
    if args.no_p2p:
        config = config.evolve(use_p2p=False)
    loopback = args.loopback_ice
    if loopback is None:
        loopback = bool(config.tracker_announce) and all(_is_loopback(t) for t in config.tracker_announce)
    if loopback:
        config = config.evolve(rtc_config={"iceServers": []})
    console = make_console()
    fancy = _fancy(args)
    with restrict_ice_to_loopback() if loopback else contextlib.nullcontext():
        async with open_loader(
            url,
            config=config,
            rendition=args.rendition,
            audio=args.audio,
            subtitles=args.subtitles,
            seed=args.seed,
        ) as loader:
            console.print(_describe(url, loader), highlight=False)
            with LiveOutput(fancy=fancy, console=console, plain_every=args.interval) as out:
                warn = _WarnOnce(
                    lambda line: console.print(line, style="bold red", highlight=False, markup=False)
                )

                def on_snapshot(snapshot: PlaybackSnapshot) -> None:
                    warn(snapshot.tracker_warning)
                    out.show(
                        lambda: viewer_panel(
                            snapshot, url=url, forward_buffer=args.forward_buffer, duration=args.duration
                        ),
                        lambda: viewer_line(snapshot),
                    )

                report = await play(
                    loader,
                    duration=args.duration,
                    forward_buffer=args.forward_buffer,
                    startup_buffer=args.startup_buffer,
                    live_start_distance=args.latency,
                    abr=args.abr,
                    on_snapshot=on_snapshot,
                    snapshot_interval=0.5 if fancy else 1.0,
                )
            stats = loader.statistics()
            summary = _summary(url, stats, report)
    warn(tracker_warning(stats.trackers))
    summary["abr"] = args.abr
    console.print(viewer_summary(summary))
    if args.json:
        _write_json(Path(args.json), summary)
        console.print(f"statistics written to {args.json}", highlight=False)
    return _played_status("view", summary)


# --------------------------------------------------------------------------------------------------
# swarm and demo: viewer processes


async def _run_swarm(
    args: argparse.Namespace,
    *,
    url: str,
    trackers: Sequence[str],
    title: str,
    origin_bytes: Callable[[], int] | None = None,
    check_bytes_against: str | None = None,
    loopback_only: bool = True,
    viewer_prefix: Callable[[int], Sequence[str]] | None = None,
    policy: str | None = None,
    base_config: LoaderConfig | None = None,
    cluster: str | None = None,
) -> SwarmResult:
    """Run the swarm ``args`` describe on ``url`` with a live view; print the final table.
    ``loopback_only``: ICE on 127.0.0.1 only (off on the testbed, whose viewers each have one
    interface of their own); ``viewer_prefix``: as :class:`SwarmRunner`'s; ``policy`` replaces
    the loader's; ``base_config`` replaces ``--preset``/``--config``'s settings; ``cluster``: the
    Ray cluster to place the pools on (:mod:`p2ploader.app.cluster`)."""
    from p2ploader.app.swarmrun import ChurnSettings, SwarmRunner, churn_schedule
    from p2ploader.app.viewer import ViewerSpec
    from p2ploader.app.views import LiveOutput, make_console, swarm_line, swarm_table

    # No STUN: the testbed and loopback have no route to a STUN server, and every peer is on the same
    # network, so host candidates are all ICE needs.
    base = base_config if base_config is not None else _load_config(args)
    config = base.evolve(tracker_announce=tuple(trackers), rtc_config={"iceServers": []})
    if policy is not None:
        config = config.evolve(policy=policy)
    template = ViewerSpec(
        url=url,
        config=config.to_faq(),
        live_start_distance=args.latency,
        forward_buffer=args.forward_buffer,
        rendition=args.rendition,
        audio=args.audio,
        subtitles=args.subtitles,
        loopback_only=loopback_only,
        check_bytes_against=check_bytes_against,
        abr=args.abr,
    )
    churn = ChurnSettings(leave_per_minute=args.churn_leave, rejoin_per_minute=args.churn_rejoin)
    sessions = churn_schedule(
        args.viewers, duration=args.duration, stagger=args.stagger, churn=churn, seed=args.seed
    )
    # A network namespace is per process: on the testbed every viewer has a process of its own.
    pools = 0 if args.process_per_viewer or viewer_prefix is not None else args.pools
    runner = SwarmRunner(
        template,
        sessions,
        seed=args.seed,
        origin_bytes=origin_bytes,
        viewer_prefix=viewer_prefix,
        pools=pools,
        cluster=cluster,
    )
    fancy = _fancy(args)
    console = make_console()
    with LiveOutput(fancy=fancy, console=console, plain_every=args.interval) as out:
        warn = _WarnOnce(lambda line: console.print(line, style="bold red", highlight=False, markup=False))

        def update() -> None:
            rows = runner.all_figures()
            total = runner.total(rows)
            warn(total.tracker_warning)
            out.show(
                lambda: swarm_table(
                    rows,
                    total,
                    elapsed=runner.elapsed,
                    duration=args.duration,
                    title=title,
                    origin_bytes=origin_bytes() if origin_bytes is not None else None,
                ),
                lambda: swarm_line(rows, total, elapsed=runner.elapsed),
            )

        result = await runner.run(on_update=update, update_interval=0.5 if fancy else 1.0, handle_sigint=True)
        if not fancy:
            out.show(
                lambda: "",
                lambda: swarm_line(result.viewers, result.total, elapsed=runner.elapsed),
                force=True,
            )
    return result


def _finish_swarm(
    args: argparse.Namespace, result: SwarmResult, *, origin_bytes: int | None, extra: dict[str, Any]
) -> int:
    from p2ploader.app.views import make_console, swarm_summary

    console = make_console()
    console.print(swarm_summary(result, origin_bytes=origin_bytes))
    for run in result.sessions:
        if run.status == "failed":
            console.print(
                f"viewer {run.session.viewer + 1} session {run.session.number + 1} failed: {run.error}",
                highlight=False,
                markup=False,
            )
    if args.plot:
        from p2ploader.app.plots import plot_swarm

        path = plot_swarm(result, args.plot)
        console.print(f"plot: {path.resolve()}", highlight=False)
    if args.json:
        data = {**extra, **result.to_json(), "origin_segment_bytes": origin_bytes}
        if args.plot:
            data["plot"] = str(Path(args.plot).resolve())
        _write_json(Path(args.json), data)
        console.print(f"statistics written to {args.json}", highlight=False)
    if result.stopped_early:
        return 130
    return 1 if result.total.failures else 0


def _swarm_settings(args: argparse.Namespace) -> dict[str, Any]:
    return {
        "viewers_requested": args.viewers,
        "duration": args.duration,
        "stagger": args.stagger,
        "latency_segments": args.latency,
        "rendition": args.rendition,
        "audio": args.audio,
        "subtitles": args.subtitles,
        "churn_leave_per_minute": args.churn_leave,
        "churn_rejoin_per_minute": args.churn_rejoin,
        "seed": args.seed,
    }


async def _swarm(args: argparse.Namespace) -> int:
    from p2ploader.app.testbedrun import wants_testbed
    from p2ploader.tracker import TrackerServer

    if args.cluster is not None and (wants_testbed(args) or args.process_per_viewer):
        raise UsageError(
            "--cluster places viewer pools on a Ray cluster; it does not combine with the testbed "
            "or --process-per-viewer"
        )
    if wants_testbed(args):
        return await _swarm_on_testbed(args)
    async with contextlib.AsyncExitStack() as stack:
        trackers = list(args.tracker or [])
        if not trackers:
            tracker = await stack.enter_async_context(TrackerServer())
            trackers = [tracker.url]
            print(f"tracker: {tracker.url} (embedded)", flush=True)
        print(f"swarm: {args.viewers} viewers of {args.url} for {args.duration:.0f} s", flush=True)
        if args.cluster is not None:
            print(f"cluster: {args.cluster} (viewer pools as Ray actors, spread over its nodes)", flush=True)
            if not args.tracker or _is_loopback(args.url):
                # Fine for a cluster on this one machine; across machines nobody else reaches them.
                print(
                    "warning: the stream URL or the tracker is on 127.0.0.1: only viewers on this "
                    "machine reach it; across machines give --tracker and a URL every node reaches",
                    flush=True,
                )
        result = await _run_swarm(
            args,
            url=args.url,
            trackers=trackers,
            title="p2ploader swarm",
            # Across machines a viewer's peers are elsewhere: ICE on the nodes' own interfaces.
            loopback_only=args.cluster is None,
            cluster=args.cluster,
        )
    status = _finish_swarm(args, result, origin_bytes=None, extra={"settings": _swarm_settings(args)})
    _print_swarm_result(result, scenario="custom", policy=_load_config(args).policy)
    return status


async def _swarm_on_testbed(args: argparse.Namespace) -> int:
    from p2ploader.app.testbedrun import plan_from_args
    from p2ploader.testbed.netns import Testbed
    from p2ploader.testbed.swarm import build_swarm_network

    plan = plan_from_args(args)
    config = _testbed_config(args, plan)
    policy = plan.policy or config.policy
    with Testbed(queue_seconds=plan.queue_seconds) as testbed:
        network = build_swarm_network(
            testbed,
            root=plan.root,
            viewers=args.viewers,
            uplink=plan.uplink,
            downlink=plan.downlink,
            origin_bps=plan.origin_bps,
            seed=args.seed,
            links=plan.links,
        )
        url = network.origin_url + "live/master.m3u8"
        print(f"testbed: origin {url}, tracker {network.tracker_url}", flush=True)
        for line in network.describe():
            print(f"testbed: {line}", flush=True)
        print(f"swarm: {args.viewers} viewers of {plan.root} for {args.duration:.0f} s", flush=True)
        result = await _run_swarm(
            args,
            url=url,
            trackers=[network.tracker_url],
            title="p2ploader swarm (testbed)",
            loopback_only=False,
            viewer_prefix=network.viewer_prefix,
            policy=policy,
            base_config=config,
        )
        origin_sent = testbed.sent_bytes(network.origin)
    # The kernel's count on the origin's link: segments, playlists, headers, retransmissions.
    print(f"testbed: the origin's link sent {origin_sent:,} bytes", flush=True)
    settings = {
        **_swarm_settings(args),
        "uplink": str(plan.uplink) if plan.uplink else None,
        "downlink": str(plan.downlink) if plan.downlink else None,
        "origin_bandwidth_bps": plan.origin_bps,
        "link_queue_s": plan.queue_seconds,
        "scenario": plan.scenario,
    }
    extra = {"settings": settings, "origin_link_sent_bytes": origin_sent}
    status = _finish_swarm(args, result, origin_bytes=None, extra=extra)
    _print_swarm_result(result, scenario=plan.scenario, policy=policy)
    return status


def _testbed_config(args: argparse.Namespace, plan: TestbedPlan) -> LoaderConfig:
    """The viewers' settings on the testbed: ``--preset`` and ``--config``, refined by a scenario
    file's loader settings, so that the scenario runs as ``p2ploader simulate`` runs it."""
    config = _load_config(args)
    return config if plan.loader is None else _refine(config, plan.loader)


def _print_swarm_result(result: SwarmResult, *, scenario: str, policy: str) -> None:
    from p2ploader.app.testbedrun import swarm_result_line

    total = result.total
    downloaded = total.http_bytes + total.p2p_bytes
    line = swarm_result_line(
        scenario=scenario,
        policy=policy,
        viewers=len(result.viewers),
        p2p_ratio=total.p2p_bytes / downloaded if downloaded else 0.0,
        stalls=total.stalls,
        startup_s=total.startup_time,
    )
    print(line, flush=True)


async def _demo(args: argparse.Namespace) -> int:
    from p2ploader.sample import sample_path
    from p2ploader.testing.origin import LiveSettings, OriginServer
    from p2ploader.tracker import TrackerServer

    root = sample_path("ts")
    with OriginServer(root, live=LiveSettings(window_segments=args.window)) as origin:
        async with TrackerServer() as tracker:
            url = origin.url_for("live/master.m3u8")
            print(
                f"origin:  {origin.url} serves the bundled sample as a live stream "
                f"({args.window}-segment window): {url}",
                flush=True,
            )
            print(f"tracker: {tracker.url}", flush=True)
            print(
                f"swarm:   {args.viewers} viewers joining {args.stagger:g} s apart, "
                f"{args.latency} segments behind live, for {args.duration:.0f} s",
                flush=True,
            )

            def sent() -> int:
                return origin.statistics().segment_bytes_sent

            result = await _run_swarm(
                args,
                url=url,
                trackers=[tracker.url],
                title="p2ploader demo",
                origin_bytes=sent,
                check_bytes_against=str(root),
            )
            origin_bytes = sent()
    return _finish_swarm(args, result, origin_bytes=origin_bytes, extra={"settings": _swarm_settings(args)})


# --------------------------------------------------------------------------------------------------
# origin and tracker


def _serve_origin(args: argparse.Namespace) -> int:
    import time

    from p2ploader.sample import sample_path
    from p2ploader.testing.origin import LiveSettings, LowLatencySettings, OriginServer

    root = Path(args.root) if args.root else sample_path(args.sample)
    if args.part_duration is not None and not args.llhls:
        raise UsageError("--part-duration needs --llhls")
    low_latency = LowLatencySettings(part_duration=args.part_duration) if args.llhls else None
    # A bundled sample is public test video: a browser page on any port may read it. A folder of
    # the user's own files is readable by other websites only when asked (--cors).
    cors = args.cors if args.cors is not None else args.root is None
    with OriginServer(
        root,
        host=args.host,
        port=args.port,
        live=LiveSettings(window_segments=args.window),
        cors=cors,
        low_latency=low_latency,
    ) as origin:
        print(f"VOD:  {origin.url_for('master.m3u8')}")
        print(f"live: {origin.url_for('live/master.m3u8')}")
        if low_latency is not None:
            print(f"LL-HLS: {origin.url_for('llhls/master.m3u8')}")
            if args.root is None:
                # The bundled samples hold one fragment per segment (fmp4) or are MPEG-TS.
                print(
                    "note: the bundled samples make no real parts (fmp4: one part per segment; "
                    "ts, byterange, aes: none); give --root a folder whose fMP4 segments hold several "
                    "fragments (docs/origin.md shows the ffmpeg command)"
                )
        print("Ctrl-C to stop", flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            while True:
                time.sleep(3600)
    return 0


def _serve_proxy(args: argparse.Namespace) -> int:
    from p2ploader.proxy import run_proxy_forever

    config = _load_config(args)
    if args.tracker:
        config = config.evolve(tracker_announce=tuple(args.tracker))
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(
            run_proxy_forever(
                args.url,
                host=args.host,
                port=args.port,
                config=config,
                rendition=args.rendition,
                allow_remote=args.allow_remote,
                pin_rendition=args.pin_rendition,
                p2p_parts=args.p2p_parts,
            )
        )
    return 0


def _serve_tracker(args: argparse.Namespace) -> int:
    from p2ploader.tracker import run_tracker_forever

    limits = {"max_peers_per_swarm": args.max_peers_per_swarm} if args.max_peers_per_swarm else {}
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(run_tracker_forever(args.host, args.port, **limits))
    return 0


# --------------------------------------------------------------------------------------------------
# The parser


def _add_loader_options(parser: argparse.ArgumentParser, *, preset: bool = True) -> None:
    if preset:
        parser.add_argument(
            "--preset", choices=sorted(PRESETS), default=None, help="start from a named configuration preset"
        )
    parser.add_argument(
        "--config",
        default=None,
        metavar="FILE",
        help="loader settings: a JSON or TOML file, or a P2P Media Loader FAQ-style JavaScript object "
        "(camelCase keys, milliseconds); with --preset, the file's keys refine the preset",
    )
    parser.add_argument(
        "--http-header",
        action="append",
        type=_name_value,
        default=None,
        metavar="NAME=VALUE",
        help="extra header on HTTP requests to the stream's host (playlists, segments, keys, init "
        "sections), never sent to other hosts (see --http-headers-host) or to peers; repeatable",
    )
    parser.add_argument(
        "--http-cookie",
        action="append",
        type=_name_value,
        default=None,
        metavar="NAME=VALUE",
        help="cookie sent with HTTP requests to the stream's host, never to other hosts (see "
        "--http-headers-host) or to peers; repeatable",
    )
    parser.add_argument(
        "--http-headers-host",
        action="append",
        default=None,
        metavar="ORIGIN",
        help="another origin (scheme://host[:port]) that also gets --http-header and --http-cookie, "
        "e.g. the CDN the playlist points to; '*' for every host; repeatable",
    )
    parser.add_argument(
        "--user-agent",
        default=None,
        metavar="UA",
        help="User-Agent of HTTP requests to the origin (default: httpx's, python-httpx/<version>)",
    )


def _media_choice(text: str) -> str | bool:
    """``--audio``/``--subtitles``: ``none`` loads none, ``auto`` the automatic choice (subtitles
    too), anything else is a rendition id, LANGUAGE or NAME (see :mod:`p2ploader.renditions`)."""
    return {"none": False, "auto": True}.get(text.casefold(), text)


def _add_media_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--audio",
        type=_media_choice,
        default=None,
        metavar="CHOICE",
        help="separate audio rendition (EXT-X-MEDIA) to load with the variant: a rendition id "
        "(a:aud:English), a LANGUAGE (fr) or a NAME, or none (default: the group's DEFAULT=YES one, "
        "else the first AUTOSELECT=YES, else the first)",
    )
    parser.add_argument(
        "--subtitles",
        type=_media_choice,
        default=None,
        metavar="CHOICE",
        help="subtitles rendition to load (over HTTP): a rendition id, a LANGUAGE or a NAME, auto "
        "(the group's default, else its first) or none (default: only a DEFAULT=YES one)",
    )


def _add_playback_options(parser: argparse.ArgumentParser, *, duration: float | None) -> None:
    parser.add_argument(
        "--duration",
        type=float,
        default=duration,
        metavar="SECONDS",
        help="seconds of wall time to play"
        + (f" (default: {duration:g})" if duration is not None else " (default: until the stream ends)"),
    )
    parser.add_argument(
        "--rendition",
        default=None,
        help="rendition id (v0, v1, ...) or index to load, or an audio rendition id (a:aud:English: "
        "the first variant with that audio) (default: the first variant)",
    )
    _add_media_options(parser)
    parser.add_argument(
        "--forward-buffer",
        type=float,
        default=10.0,
        metavar="SECONDS",
        help="how far ahead the player buffers (default: 10)",
    )


def _add_view_like_options(parser: argparse.ArgumentParser, *, latency: int) -> None:
    parser.add_argument(
        "--latency",
        type=_POSITIVE_INT,
        default=latency,
        metavar="SEGMENTS",
        help=f"live streams: start this many segments behind the live edge (default: {latency})",
    )
    parser.add_argument(
        "--abr",
        action="store_true",
        help="adaptive bitrate: switch renditions by measured throughput and buffer level",
    )
    parser.add_argument(
        "--json", default=None, metavar="FILE", help="write the final statistics to FILE as JSON"
    )
    parser.add_argument(
        "--quiet",
        action="store_true",
        help="no live terminal view: print a plain progress line now and then (also the default "
        "when stdout is not a terminal)",
    )


def _add_swarm_options(
    parser: argparse.ArgumentParser,
    *,
    viewers: int,
    duration: float,
    stagger: float,
    plot: str | None,
    rendition: str | None,
) -> None:
    parser.add_argument(
        "-n",
        "--viewers",
        type=_POSITIVE_INT,
        default=viewers,
        metavar="N",
        help=f"viewers (default: {viewers})",
    )
    parser.add_argument(
        "--pools",
        type=_POSITIVE_INT,
        default=None,
        metavar="N",
        help="run the viewers in N pool processes, many loaders on one event loop each "
        "(default: one per core; each viewer's CPU time is then its share of its pool's)",
    )
    parser.add_argument(
        "--process-per-viewer",
        action="store_true",
        help="run each viewer in a process of its own instead of in pools (about 88 MB each; "
        "always so on the testbed, where each viewer has a network namespace)",
    )
    parser.add_argument(
        "--duration",
        type=_POSITIVE,
        default=duration,
        metavar="SECONDS",
        help=f"length of the run in seconds (default: {duration:g})",
    )
    parser.add_argument(
        "--stagger",
        type=_NON_NEGATIVE,
        default=stagger,
        metavar="SECONDS",
        help=f"seconds between two viewers' first joins (default: {stagger:g})",
    )
    parser.add_argument(
        "--rendition",
        default=rendition,
        help="rendition id (v0, v1, ...) or index every viewer loads (default: "
        + (f"{rendition})" if rendition else "the first variant)"),
    )
    _add_media_options(parser)
    parser.add_argument(
        "--forward-buffer",
        type=_POSITIVE,
        default=10.0,
        metavar="SECONDS",
        help="how far ahead each viewer buffers (default: 10)",
    )
    parser.add_argument(
        "--churn-leave",
        type=_NON_NEGATIVE,
        default=0.0,
        metavar="RATE",
        help="churn: each online viewer leaves at this rate per minute (exponential time online, "
        "at least 5 s; default: 0, nobody leaves)",
    )
    parser.add_argument(
        "--churn-rejoin",
        type=_NON_NEGATIVE,
        default=0.0,
        metavar="RATE",
        help="churn: a viewer that left comes back at this rate per minute (exponential time away; "
        "default: 0, it does not come back); at most 10 sessions per viewer",
    )
    parser.add_argument(
        "--seed",
        type=int,
        default=0,
        help="seed of the churn schedule and the viewers' random choices (default: 0)",
    )
    parser.add_argument(
        "--plot",
        default=plot,
        metavar="FILE",
        help="draw HTTP vs P2P bytes and buffer levels over time into this PNG file"
        + (f" (default: {plot})" if plot else " (default: no plot)"),
    )
    parser.add_argument(
        "--interval",
        type=_POSITIVE,
        default=5.0,
        metavar="SECONDS",
        help="plain output: seconds between progress lines (default: 5)",
    )


def _add_demo(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    demo = sub.add_parser(
        "demo",
        help="a live origin, the tracker and a swarm of viewers on 127.0.0.1, with a live view",
        description="Start a local origin on 127.0.0.1 serving the bundled sample as a live stream, "
        "the embedded tracker, and a swarm of headless viewers (in pools, one process per core). "
        "Shows the swarm live (the P2P ratio climbs as viewers share segments), then a summary per "
        "viewer and in total, the origin's bytes against what the viewers downloaded, and a plot. "
        "No network needed.",
    )
    _add_swarm_options(demo, viewers=8, duration=60.0, stagger=2.0, plot=DEMO_PLOT, rendition="v2")
    _add_view_like_options(demo, latency=4)
    _add_loader_options(demo)
    demo.add_argument(
        "--window",
        type=int,
        default=10,
        metavar="SEGMENTS",
        help="segments in the origin's live playlist (default: 10)",
    )
    demo.set_defaults(handler=lambda args: asyncio.run(_demo(args)))


def _add_low_latency_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--low-latency",
        action="store_true",
        help="follow a live LL-HLS stream part by part (blocking playlist reloads, preload hints), "
        "over HTTP (with --p2p-parts, from p2ploader peers too), printing plain lines with the "
        "latency behind live",
    )
    parser.add_argument(
        "--hold-back",
        type=_POSITIVE,
        default=None,
        metavar="SECONDS",
        help="with --low-latency: start this far behind the live edge (default: the playlist's "
        "PART-HOLD-BACK; > 0, and at least two part targets, as RFC 8216bis allows a server)",
    )
    parser.add_argument(
        "--p2p-parts",
        action="store_true",
        help="with --low-latency: take parts from other p2ploader peers too, through the stream's "
        "parts swarm (needs a tracker; browser peers never join it). Off by default: HTTP only",
    )


def _add_view(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    view = sub.add_parser(
        "view",
        help="watch a stream as one viewer with a live terminal view",
        description="Play an HLS stream (master or media playlist URL) in real time with the hybrid "
        "loader, showing buffer, position, distance to the live edge, P2P ratio, peers, stalls and "
        "bytes by source; then the final statistics.",
    )
    view.add_argument("url", help="master or media playlist URL")
    _add_playback_options(view, duration=None)
    _add_view_like_options(view, latency=3)
    view.add_argument(
        "--startup-buffer",
        type=float,
        default=2.0,
        metavar="SECONDS",
        help="seconds buffered before playback starts or resumes (default: 2)",
    )
    view.add_argument(
        "--tracker",
        action="append",
        default=None,
        metavar="URL",
        help="WebTorrent tracker (ws:// or wss://) to announce to; repeat for several "
        "(default: the configuration's trackers)",
    )
    view.add_argument("--no-p2p", action="store_true", help="load over HTTP only")
    view.add_argument(
        "--loopback-ice",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="offer only 127.0.0.1 ICE candidates, to join a swarm on this machine (default: on "
        "when every tracker is on localhost)",
    )
    view.add_argument("--seed", type=int, default=None, help="seed for the scheduler's random choices")
    view.add_argument(
        "--interval",
        type=float,
        default=2.0,
        metavar="SECONDS",
        help="plain output: seconds between progress lines (default: 2)",
    )
    _add_loader_options(view)
    _add_low_latency_options(view)
    view.set_defaults(handler=lambda args: _showing_status(_view, args))


def _add_swarm(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    swarm = sub.add_parser(
        "swarm",
        help="run N viewers of a stream, with a live aggregate view",
        description="Run N headless viewers of an HLS stream (in pools of loaders, one pool process "
        "per core, or with --process-per-viewer each in its own process), joining a few seconds "
        "apart, optionally leaving and rejoining (churn). Shows every viewer and the total live, "
        "then a table per viewer and in total; --plot draws HTTP vs P2P bytes and buffer levels "
        "over time. Peers use 127.0.0.1 only (ICE on the loopback interface), unless the swarm runs on "
        "the testbed (--uplink, --downlink, --origin-bandwidth, --scenario; needs root): then every "
        "viewer, the origin and the tracker run in network namespaces of their own, joined by a "
        "bridge, with links shaped in the kernel (docs/testbed.md).",
    )
    swarm.add_argument(
        "url",
        help="master or media playlist URL; on the testbed, a folder of HLS playlists and segments "
        "that the testbed's origin serves as live",
    )
    _add_swarm_options(swarm, viewers=5, duration=60.0, stagger=1.0, plot=None, rendition=None)
    _add_view_like_options(swarm, latency=3)
    swarm.add_argument(
        "--tracker",
        action="append",
        default=None,
        metavar="URL",
        help="WebTorrent tracker (ws://...) the viewers announce to; repeat for several "
        "(default: start the embedded tracker on 127.0.0.1)",
    )
    swarm.add_argument(
        "--cluster",
        default=None,
        metavar="ADDRESS",
        help="place the viewer pools on the Ray cluster at ADDRESS (HOST:PORT, or 'auto'), spread "
        "over its nodes, one pool per cluster CPU unless --pools says otherwise; the URL and "
        "--tracker must be reachable from every node (needs the 'cluster' extra: "
        "pip install 'p2ploader[cluster]')",
    )
    _add_loader_options(swarm)
    from p2ploader.app.testbedrun import add_testbed_options

    add_testbed_options(swarm)
    swarm.set_defaults(handler=lambda args: asyncio.run(_swarm(args)))


def _add_play(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    play = sub.add_parser(
        "play",
        help="play an HLS stream through the loader and print plain figures",
        description="Play an HLS stream (master or media playlist URL) in real time with the "
        "hybrid loader, as a headless player would, printing a line per second and a summary "
        "(the plain form of 'view').",
    )
    play.add_argument("url", help="master or media playlist URL")
    _add_playback_options(play, duration=None)
    _add_loader_options(play)
    play.add_argument("--seed", type=int, default=None, help="seed for the scheduler's random choices")
    play.add_argument(
        "--json", default=None, metavar="FILE", help="write the final statistics to FILE as JSON"
    )
    play.add_argument("--quiet", action="store_true", help="print only the summary")
    _add_low_latency_options(play)
    play.set_defaults(handler=lambda args: _showing_status(_play, args))


def _add_origin(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    origin = sub.add_parser(
        "origin",
        help="serve the bundled sample stream (VOD and live) on 127.0.0.1",
        description="Serve a bundled sample stream, or any folder of HLS playlists and segments: "
        "VOD under /, live under /live/.",
    )
    source = origin.add_mutually_exclusive_group()
    source.add_argument(
        "--sample",
        default="ts",
        choices=["ts", "byterange", "fmp4", "aes"],
        help="bundled sample to serve (default: ts, three MPEG-TS renditions)",
    )
    source.add_argument(
        "--root", default=None, metavar="DIR", help="serve this folder instead of a bundled sample"
    )
    origin.add_argument("--host", default="127.0.0.1", help="address to bind (default: 127.0.0.1)")
    origin.add_argument("--port", type=int, default=8080, help="port (default: 8080; 0 picks a free one)")
    origin.add_argument(
        "--window",
        type=int,
        default=6,
        metavar="SEGMENTS",
        help="segments in the live playlists (default: 6)",
    )
    origin.add_argument(
        "--cors",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="send Access-Control-Allow-Origin: * so that pages from any website can read the files "
        "(default: on for a bundled --sample, off for --root)",
    )
    origin.add_argument(
        "--llhls",
        action="store_true",
        help="also serve every fragmented-MP4 media playlist as Low-Latency HLS under /llhls/: one "
        "part per moof+mdat fragment, blocking playlist reload, preload hints, delta updates "
        "(the fmp4 sample has one fragment per segment, so its parts are whole segments)",
    )
    origin.add_argument(
        "--part-duration",
        type=float,
        default=None,
        metavar="SECONDS",
        help="with --llhls: join consecutive fragments into parts of at most SECONDS (for sources "
        "with a fragment per frame); default: one part per fragment",
    )
    origin.set_defaults(handler=_serve_origin)


def _add_tracker(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    tracker = sub.add_parser(
        "tracker",
        help="run the embedded WebTorrent-compatible tracker on 127.0.0.1",
        description="Run the embedded WebTorrent-compatible tracker (WebSocket signalling "
        "for peers of p2ploader and P2P Media Loader).",
    )
    tracker.add_argument("--host", default="127.0.0.1", help="address to bind (default: 127.0.0.1)")
    tracker.add_argument("--port", type=int, default=8000, help="port (default: 8000; 0 picks a free one)")
    tracker.add_argument(
        "--max-peers-per-swarm",
        type=int,
        default=None,
        help="peers admitted per swarm (default: the tracker's limit, 1000)",
    )
    tracker.set_defaults(handler=_serve_tracker)


def _add_proxy(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    proxy = sub.add_parser(
        "proxy",
        help="serve a stream on 127.0.0.1 through the hybrid loader for any HLS player",
        description="Serve a rewritten master playlist on 127.0.0.1 whose segments come through the hybrid "
        "loader, so ffplay, mpv, VLC or any HLS player plays with P2P. The playback position is inferred "
        "from what the player requests.",
    )
    proxy.add_argument("url", help="master or media playlist URL of the stream")
    proxy.add_argument("--host", default="127.0.0.1", help="address to bind (default: 127.0.0.1)")
    proxy.add_argument("--port", type=int, default=8081, help="port (default: 8081; 0 picks a free one)")
    proxy.add_argument(
        "--allow-remote",
        action="store_true",
        help="allow binding a non-loopback address (anyone who can reach it can use your loader)",
    )
    proxy.add_argument("--rendition", default=None, help="rendition id (v0, v1, ...) to start with")
    proxy.add_argument(
        "--pin-rendition",
        action="store_true",
        help="list only the starting rendition, so players that probe every variant stay on one swarm",
    )
    proxy.add_argument(
        "--tracker", action="append", default=[], metavar="URL", help="WebTorrent tracker (repeatable)"
    )
    proxy.add_argument(
        "--p2p-parts",
        action="store_true",
        help="LL-HLS: take parts from other p2ploader viewers too, through the rendition's parts swarm "
        "(default: parts over HTTP only)",
    )
    _add_loader_options(proxy)
    proxy.set_defaults(handler=_serve_proxy)


def _hash_playlist(args: argparse.Namespace) -> int:
    from p2ploader.app.hashplaylist import hash_playlists

    report = hash_playlists(args.playlist, check=args.check)
    verb = "checked" if args.check else "hashed"
    for path in report.playlists:
        print(f"{verb} {path}")
    print(f"{report.segments} segments in {len(report.playlists)} media playlists {verb}")
    return 0


def _add_hash_playlist(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    hashing = sub.add_parser(
        "hash-playlist",
        help="publish each segment's SHA-256 in a stream's media playlists (for integrity_sha256)",
        description="Add an #EXT-X-P2PLOADER-SHA256:<hex> tag before every segment URI of the media "
        "playlists of a master (or of one media playlist) on disk, replacing tags already there. Players "
        "ignore the tag; loaders reject P2P segments whose bytes differ (integrity_sha256 is on by "
        "default wherever digests are published). Each playlist is replaced atomically, only after "
        "all its digests were computed.",
    )
    hashing.add_argument("playlist", help="master or media playlist file")
    hashing.add_argument(
        "--check",
        action="store_true",
        help="write nothing; fail if a published digest is missing or does not match its segment",
    )
    hashing.set_defaults(handler=_hash_playlist)


def _add_simulate(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from p2ploader.app.simulate import add_simulate_parser

    add_simulate_parser(sub)


_SUBCOMMANDS: tuple[Callable[[argparse._SubParsersAction[argparse.ArgumentParser]], None], ...] = (
    _add_demo,
    _add_view,
    _add_swarm,
    _add_play,
    _add_origin,
    _add_tracker,
    _add_proxy,
    _add_hash_playlist,
    _add_simulate,
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="p2ploader",
        description="Load HLS segments over HTTP and from other viewers (P2P Media Loader compatible).",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add in _SUBCOMMANDS:
        add(sub)
    return parser


# The extras (pyproject.toml, p2ploader/extras.py) each command needs, checked before it starts so a
# missing one costs no run: the terminal views need rich; `proxy` needs starlette and uvicorn. A
# plot (`--plot`, on by default in `demo`; `simulate --sweep`) needs matplotlib on top.
_COMMAND_EXTRAS: dict[str, tuple[str, ...]] = {
    "demo": ("cli",),
    "view": ("cli",),
    "swarm": ("cli",),
    "play": ("cli",),
    "proxy": ("proxy",),
}


def _needed_extras(args: argparse.Namespace) -> tuple[str, ...]:
    plots = bool(getattr(args, "plot", None) or getattr(args, "sweep", None))
    return _COMMAND_EXTRAS.get(args.command, ()) + (("plot",) if plots else ())


def error_line(command: str, exc: P2PLoaderError) -> str:
    """The one line ``p2ploader COMMAND`` prints on stderr for ``exc`` (no traceback)."""
    if isinstance(exc, MissingExtraError):
        return f"p2ploader: error: {exc}"
    if isinstance(exc, BindError):
        return f"p2ploader {command}: cannot listen on {exc.url}: {exc.reason}"
    return f"p2ploader {command}: error: {exc}"


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; returns its exit status (see :data:`EXIT_ERROR`)."""
    args = build_parser().parse_args(argv)
    if getattr(args, "rendition", None) is not None and str(args.rendition).isdigit():
        args.rendition = int(args.rendition)
    handler: Handler = args.handler
    try:
        require_extras(args.command, *_needed_extras(args))
        return handler(args)
    except P2PLoaderError as exc:
        print(error_line(args.command, exc), file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
