"""Terminal views of a viewer and of a swarm: rich renderables for a terminal, plain lines otherwise.

Nothing here runs anything: the functions turn figures (:class:`~p2ploader.aio.player.PlaybackSnapshot`,
:class:`~p2ploader.app.swarmrun.ViewerFigures`, :class:`~p2ploader.app.swarmrun.SwarmResult`) into text.
:class:`LiveOutput` shows them: a rich ``Live`` display that the caller refreshes (no refresh
thread), or, with ``fancy=False`` (``--quiet``, or stdout is not a terminal: CI, pipes, tests), one
plain line every ``plain_every`` seconds.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self

from rich import box
from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.panel import Panel
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

if TYPE_CHECKING:
    from p2ploader.aio.player import PlaybackSnapshot
    from p2ploader.app.swarmrun import SwarmResult, ViewerFigures

__all__ = [
    "LiveOutput",
    "format_bytes",
    "make_console",
    "swarm_line",
    "swarm_summary",
    "swarm_table",
    "viewer_line",
    "viewer_panel",
    "viewer_summary",
]


def make_console() -> Console:
    """A console on stdout; when stdout is not a terminal, 160 columns wide and without colours,
    so tables are not squeezed into 80 columns in logs."""
    probe = Console()
    if probe.is_terminal:
        return probe
    return Console(width=160, no_color=True, highlight=False)


def format_bytes(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} GB"  # pragma: no cover


def _seconds(value: float | None, *, digits: int = 1) -> str:
    return "-" if value is None else f"{value:.{digits}f} s"


def _ratio(p2p: int, http: int) -> str:
    total = p2p + http
    return f"{p2p / total:.0%}" if total else "-"


_STATE_STYLE = {
    "playing": "green",
    "starting": "yellow",
    "joining": "yellow",
    "seeking": "yellow",
    "stalled": "bold red",
    "failed": "bold red",
    "ended": "blue",
    "done": "blue",
    "left": "dim",
    "stopped": "dim",
    "away": "dim",
    "waiting": "dim",
}


def _state(state: str) -> Text:
    return Text(state, style=_STATE_STYLE.get(state, ""))


def _media_parts(media: Mapping[str, Any]) -> str:
    """`` video 62% audio 58%``: the P2P ratio of each media type, when there are several (a
    separate audio rendition); empty otherwise. Items have ``http_bytes`` and ``p2p_bytes``."""
    if len(media) < 2:
        return ""
    return "".join(f" {kind} {_ratio(f.p2p_bytes, f.http_bytes)}" for kind, f in media.items())


# --------------------------------------------------------------------------------------------------
# One viewer


def viewer_line(snapshot: PlaybackSnapshot) -> str:
    """One plain progress line."""
    edge = snapshot.live_edge_distance
    return (
        f"t={snapshot.time:5.1f}s pos={snapshot.position:6.1f}s buffer={snapshot.buffer:4.1f}s "
        + (f"live-edge={edge:4.1f}s " if edge is not None else "")
        + f"state={snapshot.state:8s} http={format_bytes(snapshot.http_bytes):>9s} "
        f"p2p={format_bytes(snapshot.p2p_bytes):>9s} "
        f"ratio={_ratio(snapshot.p2p_bytes, snapshot.http_bytes):>4s} "
        f"peers={snapshot.peers} stalls={snapshot.stalls} rendition={snapshot.rendition} "
        f"trackers={snapshot.trackers.replace(' ', '-')}" + _audio_part(snapshot)
    )


def _audio_part(snapshot: PlaybackSnapshot) -> str:
    audio = snapshot.by_media_type.get("audio")
    if audio is None:
        return ""
    return (
        f" audio={audio.rendition} audio-http={format_bytes(audio.http_bytes)} "
        f"audio-p2p={format_bytes(audio.p2p_bytes)} audio-ratio={_ratio(audio.p2p_bytes, audio.http_bytes)}"
    )


def viewer_panel(
    snapshot: PlaybackSnapshot, *, url: str, forward_buffer: float, duration: float | None = None
) -> RenderableType:
    """The live view of ``p2ploader view``."""
    table = Table.grid(padding=(0, 2))
    table.add_column(style="bold")
    table.add_column()
    until = f" / {duration:.0f} s" if duration is not None else ""
    table.add_row("time", f"{snapshot.time:.1f} s{until}")
    table.add_row("state", _state(snapshot.state))
    table.add_row("rendition", snapshot.rendition)
    table.add_row("position", f"{snapshot.position:.1f} s")
    bar = ProgressBar(
        total=max(forward_buffer, 0.1), completed=min(snapshot.buffer, forward_buffer), width=30
    )
    table.add_row("buffer", Group(Text(f"{snapshot.buffer:.1f} s of {forward_buffer:.0f} s"), bar))
    if snapshot.live_edge_distance is not None:
        table.add_row("behind live edge", f"{snapshot.live_edge_distance:.1f} s")
    table.add_row("P2P ratio", _ratio(snapshot.p2p_bytes, snapshot.http_bytes))
    table.add_row("peers", str(snapshot.peers))
    table.add_row("trackers", snapshot.trackers)
    if snapshot.tracker_warning is not None:
        table.add_row("warning", Text(snapshot.tracker_warning, style="bold red"))
    table.add_row("stalls", Text(str(snapshot.stalls), style="bold red" if snapshot.stalls else "green"))
    table.add_row(
        "bytes",
        f"HTTP {format_bytes(snapshot.http_bytes)}   P2P {format_bytes(snapshot.p2p_bytes)}   "
        f"uploaded {format_bytes(snapshot.p2p_uploaded_bytes)}",
    )
    for kind, figures in snapshot.by_media_type.items() if len(snapshot.by_media_type) > 1 else ():
        table.add_row(
            kind,
            f"{figures.rendition}: HTTP {format_bytes(figures.http_bytes)}   "
            f"P2P {format_bytes(figures.p2p_bytes)}   "
            f"ratio {_ratio(figures.p2p_bytes, figures.http_bytes)}   peers {figures.peers_connected}",
        )
    return Panel(table, title=f"p2ploader view: {url}", title_align="left", border_style="cyan", expand=False)


def viewer_summary(summary: Mapping[str, Any]) -> Table:
    """The final statistics of one viewer, one row per figure."""
    table = Table(title="summary", box=box.SIMPLE, show_header=False, title_justify="left")
    table.add_column("figure", style="bold")
    table.add_column("value", justify="right")
    for key, value in summary.items():
        if isinstance(value, bool) or value is None:
            shown = str(value)
        elif key.endswith("_bytes") and isinstance(value, int):
            shown = f"{value} ({format_bytes(value)})"
        elif isinstance(value, float):
            shown = f"{value:.3f}"
        else:
            shown = str(value)
        table.add_row(key, shown)
    return table


# --------------------------------------------------------------------------------------------------
# A swarm


def _viewer_name(row: ViewerFigures) -> str:
    return "total" if row.viewer is None else f"viewer {row.viewer + 1}"


def swarm_line(rows: Sequence[ViewerFigures], total: ViewerFigures, *, elapsed: float) -> str:
    """One plain aggregate line."""
    buffers = " ".join("-" if r.buffer is None else f"{r.buffer:.0f}" for r in rows)
    return (
        f"t={elapsed:5.1f}s online={total.online}/{len(rows)} http={format_bytes(total.http_bytes):>9s} "
        f"p2p={format_bytes(total.p2p_bytes):>9s} ratio={_ratio(total.p2p_bytes, total.http_bytes):>4s} "
        f"peers/viewer={total.peers} stalls={total.stalls} buffers=[{buffers}]"
        + (f" trackers={total.trackers.replace(' ', '-')}" if total.trackers else "")
        + _media_parts(total.media)
    )


def _swarm_rows_table(
    rows: Sequence[ViewerFigures], total: ViewerFigures, *, title: str, final: bool
) -> Table:
    table = Table(title=title, box=box.SIMPLE_HEAVY, title_justify="left", show_footer=False)
    table.add_column("viewer")
    table.add_column("state")
    table.add_column("sessions", justify="right")
    table.add_column("rendition")
    table.add_column("HTTP", justify="right")
    table.add_column("P2P", justify="right")
    table.add_column("ratio", justify="right")
    audio = "audio" in total.media
    if audio:
        table.add_column("audio P2P", justify="right")
    table.add_column("uploaded", justify="right")
    table.add_column("peers" if not final else "startup", justify="right")
    table.add_column("stalls", justify="right")
    table.add_column("buffer" if not final else "rebuffer", justify="right")
    table.add_column("behind live" if not final else "segments", justify="right")
    for row in [*rows, total]:
        is_total = row.viewer is None
        if final:
            extra = (
                _seconds(row.startup_time, digits=2),
                _seconds(row.rebuffer_time),
                str(row.segments_played),
            )
        else:
            extra = (str(row.peers), _seconds(row.buffer), _seconds(row.live_edge_distance))
        row_audio = row.media.get("audio")
        audio_cell = (
            (f"{format_bytes(row_audio.p2p_bytes)} ({_ratio(row_audio.p2p_bytes, row_audio.http_bytes)})",)
            if audio and row_audio is not None
            else ("-",)
            if audio
            else ()
        )
        table.add_row(
            _viewer_name(row),
            Text(row.state) if is_total else _state(row.state),
            str(row.sessions),
            row.rendition or "-",
            format_bytes(row.http_bytes),
            format_bytes(row.p2p_bytes),
            _ratio(row.p2p_bytes, row.http_bytes),
            *audio_cell,
            format_bytes(row.p2p_uploaded_bytes),
            extra[0],
            Text(str(row.stalls), style="bold red" if row.stalls else ""),
            extra[1],
            extra[2],
            style="bold" if is_total else None,
            end_section=not is_total and row is rows[-1],
        )
    return table


def swarm_table(
    rows: Sequence[ViewerFigures],
    total: ViewerFigures,
    *,
    elapsed: float,
    duration: float,
    title: str = "p2ploader swarm",
    origin_bytes: int | None = None,
) -> RenderableType:
    """The live aggregate view: a row per viewer and the total."""
    ratio = total.p2p_ratio
    header = Text.assemble(
        (f"{elapsed:5.1f} s / {duration:.0f} s", "bold"),
        f"   online {total.online}/{len(rows)}   P2P ratio ",
        (f"{ratio:.0%}", "bold green" if ratio > 0 else "bold"),
        f"   stalls {total.stalls}",
        f"   origin sent {format_bytes(origin_bytes)}" if origin_bytes is not None else "",
    )
    bar = ProgressBar(total=1.0, completed=ratio, width=40, complete_style="green")
    lines: list[RenderableType] = [header, bar]
    if total.trackers:
        lines.append(Text(f"trackers: {total.trackers}"))
    if total.tracker_warning is not None:
        lines.append(Text(total.tracker_warning, style="bold red"))
    return Group(*lines, _swarm_rows_table(rows, total, title=title, final=False))


def swarm_summary(result: SwarmResult, *, origin_bytes: int | None = None) -> RenderableType:
    """The final table per viewer and in total, with the swarm's CPU use and the origin's bytes."""
    total = result.total
    lines: list[RenderableType] = [
        _swarm_rows_table(result.viewers, total, title="per viewer and in total", final=True),
        Text(
            f"viewers downloaded {format_bytes(total.total_bytes)}: HTTP {format_bytes(total.http_bytes)}, "
            f"P2P {format_bytes(total.p2p_bytes)} (P2P ratio {total.p2p_ratio:.1%}); "
            f"stalls {total.stalls}, rebuffering {total.rebuffer_time:.1f} s, "
            f"byte mismatches {total.mismatches}, failed sessions {total.failures}"
        ),
    ]
    if len(total.media) > 1:
        lines.append(
            Text(
                "by media type: "
                + "; ".join(
                    f"{kind} HTTP {format_bytes(f.http_bytes)}, P2P {format_bytes(f.p2p_bytes)} "
                    f"(P2P ratio {f.p2p_ratio:.1%})"
                    for kind, f in total.media.items()
                )
            )
        )
    if origin_bytes is not None:
        share = origin_bytes / total.total_bytes if total.total_bytes else 0.0
        lines.append(
            Text(
                f"origin sent {format_bytes(origin_bytes)} of segments = {share:.0%} of what the viewers "
                f"downloaded (without P2P it would have sent all of it)"
            )
        )
    warning = _swarm_warning(result)
    if warning is not None:
        lines.append(Text(warning, style="bold red"))
    cores = result.cpu_cores
    busy = result.cpu_time / result.wall_time / cores if result.wall_time else 0.0
    where = f"{result.pools} viewer pools" if result.pools else "viewer processes"
    if result.pool_hosts:
        where += f" on {len(set(result.pool_hosts))} cluster nodes"
    processes = (
        f"{where} {result.process_cpu_time:.1f} s ({total.cpu_time:.1f} s of it playing)"
        if result.process_cpu_time is not None
        else f"viewers {total.cpu_time:.1f} s"
    )
    lines.append(
        Text(
            f"CPU: {processes} + this process {result.runner_cpu_time:.1f} s "
            f"in {result.wall_time:.1f} s wall = {busy:.0%} of {cores:g} "
            f"{'cluster CPUs' if result.pool_hosts else 'cores'}"
        )
    )
    return Group(*lines)


def _swarm_warning(result: SwarmResult) -> str | None:
    """A viewer's "P2P is off: no tracker reachable" line when every session that finished said so."""
    warnings = [run.result.get("tracker_warning") for run in result.sessions if run.result is not None]
    if not warnings or not all(isinstance(w, str) for w in warnings):
        return None
    return str(warnings[0])


def _cpu_count() -> int:
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1  # pragma: no cover


# --------------------------------------------------------------------------------------------------
# Showing them


class LiveOutput:
    """A live view the caller refreshes with :meth:`show`: a rich ``Live`` display when ``fancy``,
    else a plain line at most every ``plain_every`` seconds (and on ``force``)."""

    def __init__(self, *, fancy: bool, console: Console | None = None, plain_every: float = 5.0) -> None:
        self.fancy = fancy
        self.console = console or make_console()
        self.plain_every = plain_every
        self._live: Live | None = None
        self._last_line: float | None = None

    def __enter__(self) -> Self:
        if self.fancy:
            self._live = Live(console=self.console, auto_refresh=False, redirect_stdout=False)
            self._live.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._live is not None:
            self._live.stop()
            self._live = None

    def show(
        self, renderable: Callable[[], RenderableType], line: Callable[[], str], *, force: bool = False
    ) -> None:
        if self._live is not None:
            self._live.update(renderable(), refresh=True)
            return
        now = time.monotonic()
        if force or self._last_line is None or now - self._last_line >= self.plain_every:
            self._last_line = now
            print(line(), file=sys.stdout, flush=True)
