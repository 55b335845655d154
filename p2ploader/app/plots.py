"""PNG plots of swarm runs, drawn with matplotlib's Agg backend (no display needed).

:func:`plot_swarm` draws two panels sharing the time axis: the swarm's cumulative HTTP and P2P
downloads (stacked, all viewers, sessions that left included; the origin's segment bytes dashed
when known), and every viewer's buffer level (gaps while a viewer is away).
"""

from __future__ import annotations

from pathlib import Path

from p2ploader.app.swarmrun import SwarmResult
from p2ploader.extras import require_extras

__all__ = ["plot_swarm"]

_MB = 1_000_000


def plot_swarm(result: SwarmResult, path: str | Path, *, title: str | None = None) -> Path:
    """Draw ``result`` into the PNG file ``path`` (its folder must exist); returns the path."""
    require_extras("plot_swarm", "plot")
    # Figure + the Agg canvas directly: no pyplot, no global state, no GUI backend is ever loaded.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    out = Path(path)
    figure = Figure(figsize=(10, 7), dpi=100, layout="constrained")
    FigureCanvasAgg(figure)
    top, bottom = figure.subplots(2, 1, sharex=True, height_ratios=(3, 2))

    times = [p.t for p in result.timeline]
    http = [p.http_bytes / _MB for p in result.timeline]
    p2p = [p.p2p_bytes / _MB for p in result.timeline]
    if times:
        top.stackplot(times, http, p2p, labels=("HTTP", "P2P"), colors=("#d62728", "#2ca02c"), alpha=0.75)
        origin = [p.origin_bytes for p in result.timeline]
        if all(o is not None for o in origin):
            top.plot(times, [(o or 0) / _MB for o in origin], "k--", linewidth=1.2, label="origin sent")
    top.set_ylabel("downloaded, cumulative (MB)")
    top.legend(loc="upper left")
    top.grid(alpha=0.3)
    total = result.total
    top.set_title(
        title
        or f"{len(result.viewers)} viewers: P2P {total.p2p_ratio:.0%} of "
        f"{total.total_bytes / _MB:.1f} MB, {total.stalls} stalls"
    )

    for viewer, points in sorted(result.buffers.items()):
        if points:
            bottom.plot(
                [t for t, _ in points], [b for _, b in points], linewidth=1.0, label=f"viewer {viewer + 1}"
            )
    bottom.set_xlabel("time since the swarm started (s)")
    bottom.set_ylabel("buffer (s)")
    bottom.set_ylim(bottom=0)
    bottom.grid(alpha=0.3)
    if 0 < len(result.buffers) <= 20:  # beside the axes, so it never hides a line
        bottom.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize="small", frameon=False)
    figure.savefig(out, format="png")
    return out
