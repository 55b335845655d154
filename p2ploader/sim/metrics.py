"""Figures of merit of simulator runs: pure functions of :class:`~p2ploader.sim.run.SimResult`.

:func:`measure` turns one run into a flat :class:`RunMetrics` (what ``p2ploader simulate`` prints
and writes); :func:`compare_to_baseline` adds the origin saving against the same scenario with P2P
off. Definitions (bytes are segment payload bytes; "viewers" counts every session, also those that
left):

* **P2P ratio**: P2P bytes / (HTTP + P2P bytes) over all viewers; **per peer** the same ratio for
  each viewer that downloaded anything, summarised as min, 10th percentile, median, 90th percentile
  and max (:class:`Distribution`).
* **Best** ``1 - 1/N`` for the mean audience ``N`` (the time-average of viewers online): a swarm
  that fetches every segment once from the origin and everything else from peers.
  **Ratio to best**: P2P ratio / best.
* **Origin requests and bytes per segment**: what the origin served, divided by the segments
  published during the run (summed over renditions). With P2P off this is about the audience.
* **Stalls** (count, and viewers that stalled at least once), **rebuffer time** (seconds, total,
  and as a share of the time played), **startup time** (median, 90th percentile, max).
* **Upload per peer** over the viewers able to upload (not download-only): mean and max bytes, and
  **Jain's fairness index** ``(Σu)² / (n·Σu²)``: 1 when everybody uploads the same, ``1/n`` when
  one viewer uploads everything.
* **Segment sources** (:class:`SegmentSources`): per published segment, how many viewers fetched
  it from the origin, how many copies went peer to peer, and how many distinct viewers delivered
  at least one copy of it.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any

import attrs

from p2ploader.sim.run import SimResult
from p2ploader.sim.viewer import ViewerFigures

__all__ = [
    "Distribution",
    "RunMetrics",
    "SegmentSources",
    "compare_to_baseline",
    "distribution",
    "jain_index",
    "measure",
    "peer_p2p_ratios",
    "quantile",
    "segment_bytes",
    "segment_sources",
]


# --------------------------------------------------------------------------------------------------
# Small statistics


def quantile(sorted_values: Sequence[float], q: float) -> float:
    """The ``q`` quantile (0..1) of ascending ``sorted_values``, interpolating linearly between
    neighbours (the "inclusive" method). An empty sequence gives ``nan``."""
    if not sorted_values:
        return math.nan
    if not 0.0 <= q <= 1.0:
        raise ValueError(f"quantile must be in [0, 1], got {q}")
    pos = q * (len(sorted_values) - 1)
    lo = math.floor(pos)
    hi = min(lo + 1, len(sorted_values) - 1)
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (pos - lo)


@attrs.frozen(kw_only=True)
class Distribution:
    """Summary of a sample: count, mean, min, 10th percentile, median, 90th percentile, max
    (``nan`` when the sample is empty)."""

    count: int
    mean: float
    min: float
    p10: float
    median: float
    p90: float
    max: float


def distribution(values: Iterable[float]) -> Distribution:
    """The :class:`Distribution` of ``values``."""
    data = sorted(values)
    if not data:
        nan = math.nan
        return Distribution(count=0, mean=nan, min=nan, p10=nan, median=nan, p90=nan, max=nan)
    return Distribution(
        count=len(data),
        mean=sum(data) / len(data),
        min=data[0],
        p10=quantile(data, 0.1),
        median=quantile(data, 0.5),
        p90=quantile(data, 0.9),
        max=data[-1],
    )


def jain_index(values: Iterable[float]) -> float:
    """Jain's fairness index ``(Σx)² / (n·Σx²)``: 1 for equal shares, ``1/n`` when one has it all.
    An empty sample or all zeros counts as perfectly fair (1.0)."""
    data = list(values)
    squares = sum(x * x for x in data)
    if not data or squares == 0:
        return 1.0
    return sum(data) ** 2 / (len(data) * squares)


# --------------------------------------------------------------------------------------------------
# Per-run figures


def peer_p2p_ratios(viewers: Iterable[ViewerFigures]) -> list[float]:
    """Each viewer's P2P bytes / downloaded bytes, for the viewers that downloaded anything."""
    ratios = []
    for viewer in viewers:
        total = viewer.http_bytes + viewer.p2p_bytes
        if total:
            ratios.append(viewer.p2p_bytes / total)
    return ratios


def segment_bytes(result: SimResult) -> float:
    """Mean payload size of one segment over the scenario's renditions (the simulator gives every
    segment of a rendition ``bitrate × duration / 8`` bytes)."""
    s = result.scenario
    sizes = [max(1, int(kbps * 1000 * s.segment_duration_s / 8)) for kbps in s.renditions_kbps]
    return sum(sizes) / len(sizes)


@attrs.frozen(kw_only=True)
class SegmentSources:
    """Where an average published segment came from, in viewers (or copies) per segment.

    * ``http_fetches``: origin requests per segment (the viewers that went to the origin for it,
      counting aborted and ranged requests as the origin does).
    * ``p2p_copies``: segment copies that travelled peer to peer, per segment (P2P bytes divided by
      the segment size).
    * ``uploaders``: viewers that uploaded anything during the run.
    * ``uploaders_per_segment``: the distinct viewers that delivered at least one copy of a
      segment, per published segment (exact: the simulator records who delivered which segment,
      :attr:`~p2ploader.sim.run.SimResult.segment_uploaders`). Against ``p2p_copies`` it shows how
      the load spreads: 40 copies from 40 uploaders is a wide tree, 40 from 2 a star.
    """

    http_fetches: float
    p2p_copies: float
    uploaders: int
    uploaders_per_segment: float


def segment_sources(result: SimResult) -> SegmentSources:
    """The :class:`SegmentSources` of ``result``."""
    size = segment_bytes(result)
    published = max(1, result.segments_published)
    return SegmentSources(
        http_fetches=result.origin_requests / published,
        p2p_copies=result.p2p_bytes / size / published,
        uploaders=sum(1 for v in result.viewers if v.uploaded_bytes > 0),
        uploaders_per_segment=result.segment_uploaders / published,
    )


@attrs.frozen(kw_only=True)
class RunMetrics:
    """Every figure of one simulator run, flat (one CSV row). Times in seconds, sizes in bytes.

    ``origin_vs_nop2p`` and ``origin_saving`` are ``None`` until :func:`compare_to_baseline` fills
    them in from a P2P-off run of the same scenario."""

    scenario: str
    policy: str
    p2p: bool
    seed: int
    viewers_total: int
    mean_audience: float
    p2p_ratio: float
    best_ratio: float
    ratio_to_best: float
    peer_p2p_ratio_min: float
    peer_p2p_ratio_p10: float
    peer_p2p_ratio_median: float
    peer_p2p_ratio_p90: float
    peer_p2p_ratio_max: float
    http_bytes: int
    p2p_bytes: int
    origin_bytes: int
    origin_requests: int
    segments_published: int
    origin_requests_per_segment: float
    origin_bytes_per_segment: float
    stalls: int
    stalled_viewers: int
    rebuffer_s: float
    rebuffer_share: float
    """Rebuffer time / time played, over all viewers."""
    startup_median_s: float | None
    startup_p90_s: float | None
    startup_max_s: float | None
    upload_mean_bytes: float
    upload_max_bytes: int
    upload_fairness: float
    """Jain's index of upload per upload-capable viewer."""
    p2p_copies_per_segment: float
    uploaders: int
    uploaders_per_segment: float
    origin_vs_nop2p: float | None = None
    """Origin bytes / origin bytes of the same scenario with P2P off (lower is better)."""
    origin_saving: float | None = None
    """``1 - origin_vs_nop2p``: the share of the origin's traffic the swarm saved."""
    latency_p50_s: float | None = None
    """LL-HLS scenarios (``part_seconds``): the median distance behind live while playing
    (seconds, over every viewer's samples); None for whole-segment scenarios."""
    latency_p95_s: float | None = None

    def as_row(self) -> dict[str, Any]:
        """The figures as a flat dict (field order)."""
        return attrs.asdict(self)


def measure(result: SimResult) -> RunMetrics:
    """Every figure of ``result`` (see the module docstring for the definitions)."""
    viewers = result.viewers
    peers = distribution(peer_p2p_ratios(viewers))
    startups = distribution(v.startup_time for v in viewers if v.startup_time is not None)
    uploads = [v.uploaded_bytes for v in viewers if not v.download_only]
    played = sum(v.played for v in viewers)
    sources = segment_sources(result)

    def maybe(value: float) -> float | None:
        return None if math.isnan(value) else value

    return RunMetrics(
        scenario=result.scenario.name,
        policy=result.scenario.policy,
        p2p=result.p2p,
        seed=result.scenario.seed,
        viewers_total=len(viewers),
        mean_audience=result.mean_audience,
        p2p_ratio=result.p2p_ratio,
        best_ratio=result.best_ratio,
        ratio_to_best=result.ratio_to_best,
        peer_p2p_ratio_min=peers.min,
        peer_p2p_ratio_p10=peers.p10,
        peer_p2p_ratio_median=peers.median,
        peer_p2p_ratio_p90=peers.p90,
        peer_p2p_ratio_max=peers.max,
        http_bytes=result.http_bytes,
        p2p_bytes=result.p2p_bytes,
        origin_bytes=result.origin_bytes,
        origin_requests=result.origin_requests,
        segments_published=result.segments_published,
        origin_requests_per_segment=result.origin_requests_per_segment,
        origin_bytes_per_segment=result.origin_bytes_per_segment,
        stalls=result.stalls,
        stalled_viewers=sum(1 for v in viewers if v.stalls),
        rebuffer_s=result.rebuffer_time,
        rebuffer_share=result.rebuffer_time / played if played > 0 else 0.0,
        startup_median_s=maybe(startups.median),
        startup_p90_s=maybe(startups.p90),
        startup_max_s=maybe(startups.max),
        upload_mean_bytes=sum(uploads) / len(uploads) if uploads else 0.0,
        upload_max_bytes=max(uploads, default=0),
        upload_fairness=jain_index(uploads),
        p2p_copies_per_segment=sources.p2p_copies,
        uploaders=sources.uploaders,
        uploaders_per_segment=sources.uploaders_per_segment,
        latency_p50_s=result.latency_percentile(0.5),
        latency_p95_s=result.latency_percentile(0.95),
    )


def compare_to_baseline(run: RunMetrics, baseline: RunMetrics) -> RunMetrics:
    """``run`` with ``origin_vs_nop2p`` and ``origin_saving`` against ``baseline`` (the same
    scenario with P2P off); both stay ``None`` when the baseline sent nothing."""
    if baseline.origin_bytes <= 0:
        return run
    ratio = run.origin_bytes / baseline.origin_bytes
    return attrs.evolve(run, origin_vs_nop2p=ratio, origin_saving=1.0 - ratio)
