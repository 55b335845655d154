"""PNG plots of simulator sweeps, drawn with matplotlib's Agg backend (no display needed).

:func:`plot_sweep` draws, against one swept setting, three panels sharing the x axis: the P2P ratio
(with the theoretical best ``1 - 1/N`` dashed), the stalls, and the median startup time; one line per
policy. When several settings were swept, each point is the mean over the other settings' values.
Numeric values are placed on a numeric axis; anything else (strings, booleans, ranges) on a
categorical one, in the order given.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from p2ploader.extras import require_extras

__all__ = ["plot_sweep", "sweep_points"]

_PANELS = (
    ("p2p_ratio", "P2P ratio"),
    ("stalls", "stalls (all viewers)"),
    ("startup_median_s", "startup, median (s)"),
)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _label(value: Any) -> str:
    return value if isinstance(value, str) else repr(value).replace("'", "")


def sweep_points(
    rows: Sequence[Mapping[str, Any]], key: str, metric: str
) -> dict[str, list[tuple[Any, float]]]:
    """For each policy, ``(value of key, mean of metric)`` in order of first appearance of the value;
    rows without the metric (``None``/``nan``) are left out of the mean."""
    sums: dict[str, dict[str, list[float]]] = {}
    values: dict[str, Any] = {}
    for row in rows:
        label = _label(row[key])
        values.setdefault(label, row[key])
        figure = row.get(metric)
        bucket = sums.setdefault(str(row["policy"]), {}).setdefault(label, [])
        if figure is not None and not (isinstance(figure, float) and math.isnan(figure)):
            bucket.append(float(figure))
    out: dict[str, list[tuple[Any, float]]] = {}
    for policy, by_value in sums.items():
        out[policy] = [
            (values[label], sum(data) / len(data) if data else math.nan) for label, data in by_value.items()
        ]
    return out


def plot_sweep(
    rows: Sequence[Mapping[str, Any]],
    key: str,
    path: str | Path,
    *,
    title: str | None = None,
) -> Path:
    """Draw ``rows`` (run figures with a ``key`` column, ``policy``, ``p2p_ratio``, ``best_ratio``,
    ``stalls`` and ``startup_median_s``; P2P-on runs only) against ``key`` into the PNG ``path``
    (its folder must exist); returns the path."""
    require_extras("plot_sweep", "plot")
    # Figure + the Agg canvas directly: no pyplot, no global state, no GUI backend is ever loaded.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    out = Path(path)
    ordered = list(dict.fromkeys(_label(row[key]) for row in rows))
    raw = {_label(row[key]): row[key] for row in rows}
    numeric = bool(rows) and all(_is_number(raw[label]) for label in ordered)

    def x_of(value: Any) -> float:
        return float(value) if numeric else float(ordered.index(_label(value)))

    figure = Figure(figsize=(8, 9), dpi=100, layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.subplots(len(_PANELS), 1, sharex=True)
    for ax, (metric, ylabel) in zip(axes, _PANELS, strict=True):
        for policy, points in sweep_points(rows, key, metric).items():
            points = sorted(points, key=lambda p: x_of(p[0]))
            ax.plot([x_of(v) for v, _ in points], [y for _, y in points], marker="o", label=policy)
        if metric == "p2p_ratio":
            best = sweep_points([{**r, "policy": "best"} for r in rows], key, "best_ratio")["best"]
            best = sorted(best, key=lambda p: x_of(p[0]))
            ax.plot(
                [x_of(v) for v, _ in best], [y for _, y in best], "k--", linewidth=1.0, label="best 1 - 1/N"
            )
            ax.set_ylim(0, 1)
        elif metric == "stalls":
            ax.yaxis.set_major_locator(MaxNLocator(integer=True))
            ax.set_ylim(0, max(1.0, ax.get_ylim()[1]))
        else:
            ax.set_ylim(bottom=0)
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
    axes[0].legend(loc="best", fontsize="small")
    if not numeric:
        axes[-1].set_xticks(range(len(ordered)), ordered)
    axes[-1].set_xlabel(key)
    figure.suptitle(title or f"sweep of {key}")
    figure.savefig(out, format="png")
    return out
