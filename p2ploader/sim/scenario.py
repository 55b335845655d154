"""Scenarios as data: what to simulate, loaded from TOML or JSON, with named presets.

A scenario names the stream (live or VOD, renditions, segment duration), the audience (how many
viewers, how fast they join, churn, the share of download-only viewers, their links), the origin,
the player (latency behind live, forward buffer) and the loader (policy and FAQ-style settings).
Ranges such as ``uplink_mbps = [1, 20]`` are drawn uniformly per viewer from the scenario's seed.
"""

from __future__ import annotations

import json
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs

from p2ploader.config import LoaderConfig
from p2ploader.core.policies import create_policy
from p2ploader.errors import ConfigError

__all__ = ["PRESETS", "Scenario", "load_scenario"]


def _range(value: Any) -> tuple[float, float]:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return (float(value), float(value))
    if isinstance(value, list | tuple) and len(value) == 2 and all(isinstance(v, int | float) for v in value):
        lo, hi = float(value[0]), float(value[1])
        if lo > hi:
            raise ConfigError(f"range {value!r} goes downwards")
        return (lo, hi)
    raise ConfigError(f"expected a number or a [low, high] pair, got {value!r}")


def _links(value: Any) -> tuple[tuple[float, float], ...]:
    if not isinstance(value, list | tuple):
        raise ConfigError(f"viewer_links_mbps must be a list of [uplink, downlink] pairs, got {value!r}")
    links = []
    for pair in value:
        if not (
            isinstance(pair, list | tuple)
            and len(pair) == 2
            and all(isinstance(v, int | float) and not isinstance(v, bool) and v > 0 for v in pair)
        ):
            raise ConfigError(
                f"each viewer link must be a positive [uplink, downlink] pair in Mbit/s, got {pair!r}"
            )
        links.append((float(pair[0]), float(pair[1])))
    return tuple(links)


def _times(value: Any) -> tuple[float, ...]:
    if not isinstance(value, list | tuple) or not all(
        isinstance(v, int | float) and not isinstance(v, bool) and v >= 0 for v in value
    ):
        raise ConfigError(f"join_times_s must be a list of seconds >= 0, got {value!r}")
    return tuple(float(v) for v in value)


_POLICY_SETTING = "loader.policySettings."


@attrs.frozen(kw_only=True)
class Scenario:
    """Every field has a default; units are in the names."""

    name: str = "custom"
    seed: int = 1
    duration_s: float = 120.0
    live: bool = True
    segment_duration_s: float = 5.0
    window_segments: int = 20
    vod_segments: int = 120
    renditions_kbps: tuple[float, ...] = (1500.0,)
    """One swarm per rendition; viewers pick one uniformly."""
    viewers: int = 10
    join_window_s: float = 10.0
    """Initial viewers join uniformly within this many seconds (10 s or less is a flash crowd)."""
    churn_per_minute: float = 0.0
    """Fraction of the audience that leaves per minute; as many new viewers join."""
    download_only_fraction: float = 0.0
    uplink_mbps: tuple[float, float] = attrs.field(default=(5.0, 20.0), converter=_range)
    downlink_mbps: tuple[float, float] = attrs.field(default=(20.0, 50.0), converter=_range)
    latency_ms: tuple[float, float] = attrs.field(default=(10.0, 40.0), converter=_range)
    """One-way latency to the network core per viewer."""
    jitter_ms: float = 5.0
    loss: float = 0.0
    uplink_queue_s: float = 0.0
    """Each viewer's uplink queue, in seconds at the uplink's rate (as the testbed's ``tbf``
    ``--link-queue``), shared by its uploads and its own traffic (HTTP requests and acknowledgements,
    peer messages); 0: not modelled (uploads never delay the viewer's own traffic)."""
    origin_mbps: float = 1000.0
    origin_latency_ms: float = 20.0
    latency_segments: int = 3
    """How far behind the live edge viewers play (the usual player default is 3)."""
    forward_buffer_s: float = 30.0
    startup_buffer_s: float = 2.0
    policy: str = "p2pml-0.6"
    max_peers: int = 20
    connect_delay_s: tuple[float, float] = attrs.field(default=(0.3, 1.5), converter=_range)
    loader: Mapping[str, Any] = attrs.field(factory=dict)
    """Loader settings in the FAQ spelling (camelCase, milliseconds), as ``LoaderConfig.from_faq``."""
    topology: str = "mesh"
    """``"mesh"`` or ``"host-client"`` (OvenMediaEngine's one-level tree; docs/topologies.md)."""
    host_fraction: float = 1 / 3
    """Host-client only: the share of viewers eligible to host (desktop, not Linux, known client);
    the others declare mobile devices and are clients. Assigned evenly in join order."""
    max_client_peers_per_host_peer: int = 2
    topology_rules: str = "ome"
    viewer_links_mbps: tuple[tuple[float, float], ...] = attrs.field(default=(), converter=_links)
    """Given links instead of drawn ones: ``(uplink, downlink)`` in Mbit/s of the n-th viewer to join.
    Viewers beyond the list (churn's newcomers) draw from ``uplink_mbps`` and ``downlink_mbps``. A
    run on the kernel-shaped testbed passes the links it drew, so both run the same audience."""
    join_times_s: tuple[float, ...] = attrs.field(default=(), converter=_times)
    """Given join times (seconds) of the initial viewers, one per viewer, instead of uniform draws
    within ``join_window_s``: the testbed's viewers join on a fixed stagger."""
    part_seconds: float | None = None
    """Live LL-HLS: parts of this many seconds (``segment_duration_s`` must be a whole number of
    them), one published every ``part_seconds``; viewers follow the stream part by part and share
    parts in the parts swarm as the loader does (:mod:`p2ploader.sim.llhls`). None: whole segments
    (``latency_segments`` and ``forward_buffer_s`` apply then, not the fields below)."""
    part_hold_back_s: float | None = None
    """LL-HLS: the playlist's ``PART-HOLD-BACK`` (seconds; None: three part targets). Viewers start
    that far behind the live edge, rounded back to an independent part (a segment start)."""
    hold_back_s: float | None = None
    """LL-HLS: the player's own hold-back (seconds) instead of ``PART-HOLD-BACK``, as
    ``low_latency_stream(hold_back=...)``: how far behind live viewers play."""
    parts_join: str = "first-item"
    """LL-HLS: when viewers join the parts swarm, ``"first-item"`` (once the player has its first
    item, as the loader does) or ``"at-once"`` (with the first playlist)."""
    parts_max_peers: int | None = None
    """LL-HLS: links per viewer in the parts swarm instead of the loader's
    :data:`~p2ploader.core.part_exchange.PARTS_MAX_PEERS` (an experiment's knob)."""
    ll_window_segments: int = 6
    """LL-HLS: segments the playlist lists (as the benchmark's origin)."""

    def __attrs_post_init__(self) -> None:
        if self.viewers < 1 or self.duration_s <= 0 or self.segment_duration_s <= 0:
            raise ConfigError("a scenario needs viewers >= 1 and positive durations")
        if not 0 <= self.download_only_fraction <= 1 or not 0 <= self.loss < 1:
            raise ConfigError("download_only_fraction must be in [0, 1] and loss in [0, 1)")
        if not 0 <= self.uplink_queue_s <= 60:
            raise ConfigError(f"uplink_queue_s must be 0 to 60 seconds, got {self.uplink_queue_s!r}")
        # Fail early on bad loader settings, an unknown policy or settings it does not take.
        create_policy(self.policy, self.loader_config())
        if self.topology not in ("mesh", "host-client") or not 0 <= self.host_fraction <= 1:
            raise ConfigError('topology must be "mesh" or "host-client" and host_fraction in [0, 1]')
        if self.max_client_peers_per_host_peer < 1:
            raise ConfigError("max_client_peers_per_host_peer must be >= 1")
        if self.part_seconds is not None:
            parts = self.segment_duration_s / self.part_seconds if self.part_seconds > 0 else 0.0
            if not self.live or parts < 1 or abs(parts - round(parts)) > 1e-6:
                raise ConfigError(
                    "part_seconds needs a live stream whose segment_duration_s is a whole number of parts"
                )
            if self.parts_join not in ("first-item", "at-once"):
                raise ConfigError('parts_join must be "first-item" or "at-once"')
            if self.topology != "mesh":
                raise ConfigError("part_seconds runs a mesh (the parts swarm's) only")
            for value in (self.part_hold_back_s, self.hold_back_s):
                if value is not None and not value > 0:
                    raise ConfigError("part_hold_back_s and hold_back_s must be > 0 seconds")
            if self.hold_back_s is not None and self.hold_back_s < 2 * self.part_seconds - 1e-6:
                # As low_latency_stream(hold_back=) refuses it (RFC 8216bis: PART-HOLD-BACK >= 2 parts).
                raise ConfigError(
                    f"hold_back_s {self.hold_back_s:g} is below two part targets "
                    f"({2 * self.part_seconds:g} s)"
                )
            if self.parts_max_peers is not None and self.parts_max_peers < 1:
                raise ConfigError("parts_max_peers must be >= 1")
            if self.uplink_queue_s > 0:
                # Said, not ignored: the LL-HLS viewer's links do not model the uplink queue yet.
                raise ConfigError("uplink_queue_s is not modelled with part_seconds yet: leave it 0")
        if self.join_times_s and len(self.join_times_s) != self.viewers:
            raise ConfigError(f"join_times_s has {len(self.join_times_s)} times for {self.viewers} viewers")

    def loader_config(self, *, p2p: bool = True, download_only: bool = False) -> LoaderConfig:
        base = LoaderConfig.from_faq(self.loader) if self.loader else LoaderConfig()
        return base.evolve(
            use_p2p=p2p,
            consume_only=download_only or base.consume_only,
            max_peers=self.max_peers,
            tracker_announce=(),
            segment_validator=None,
            policy=self.policy,
        )

    def evolve(self, **changes: Any) -> Scenario:
        """A copy with ``changes``; dotted keys (``loader.requiredSegmentsPriority``) set loader settings,
        ``loader.policySettings.<policy>.<name>`` one of a policy's own settings."""
        direct: dict[str, Any] = {}
        loader = dict(self.loader)
        for key, value in changes.items():
            if key == "loader":
                loader = dict(value)
            elif key.startswith(_POLICY_SETTING):
                # Policy names have dots of their own ("p2pml-0.6"); setting names have none.
                policy, _, name = key.removeprefix(_POLICY_SETTING).rpartition(".")
                settings = {k: dict(v) for k, v in loader.get("policySettings", {}).items()}
                settings.setdefault(policy, {})[name] = value
                loader["policySettings"] = settings
            elif key.startswith("loader."):
                loader[key.removeprefix("loader.")] = value
            elif key in attrs.fields_dict(Scenario):
                direct[key] = value
            else:
                raise ConfigError(f"unknown scenario setting {key!r}", key=key)
        return attrs.evolve(self, **direct, loader=loader)

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> Scenario:
        fields = attrs.fields_dict(cls)
        unknown = [k for k in data if k not in fields]
        if unknown:
            raise ConfigError(f"unknown scenario settings: {', '.join(sorted(unknown))}", key=unknown[0])
        values = dict(data)
        if "renditions_kbps" in values:
            values["renditions_kbps"] = tuple(float(v) for v in values["renditions_kbps"])
        return cls(**values)


PRESETS: Mapping[str, Scenario] = {
    "small-live": Scenario(name="small-live", viewers=5, duration_s=120.0),
    "live-10": Scenario(name="live-10", viewers=10, duration_s=180.0),
    "live-200-churn": Scenario(
        name="live-200-churn",
        viewers=200,
        duration_s=300.0,
        churn_per_minute=0.2,
        uplink_mbps=(1.0, 20.0),
        join_window_s=60.0,
    ),
    "flash-crowd": Scenario(name="flash-crowd", viewers=100, join_window_s=10.0, duration_s=120.0),
    "vod-20": Scenario(
        name="vod-20",
        live=False,
        viewers=20,
        join_window_s=120.0,
        duration_s=300.0,
        segment_duration_s=10.0,
        vod_segments=60,
    ),
    # OvenMediaEngine's host/client tree at scale: a third of the viewers host two clients each,
    # so the origin serves about a third of the bytes (the documented "two-thirds offload").
    "host-client-300": Scenario(
        name="host-client-300",
        viewers=300,
        duration_s=120.0,
        join_window_s=20.0,
        topology="host-client",
        host_fraction=1 / 3,
        churn_per_minute=0.05,
    ),
    "abr-3-renditions": Scenario(
        name="abr-3-renditions", viewers=30, renditions_kbps=(600.0, 1500.0, 3000.0)
    ),
    # LL-HLS as benchmarks/llhls_offload.py runs it on loopback: 0.5 s parts of 2 s segments,
    # PART-HOLD-BACK 1.5 s, 10 viewers joining within 2 s, fast links.
    "llhls-10": Scenario(
        name="llhls-10",
        viewers=10,
        duration_s=60.0,
        join_window_s=2.0,
        segment_duration_s=2.0,
        part_seconds=0.5,
        renditions_kbps=(264.0,),
        uplink_mbps=(200.0, 200.0),
        downlink_mbps=(200.0, 200.0),
        latency_ms=(0.5, 1.0),
        jitter_ms=0.5,
        origin_latency_ms=1.0,
        policy="p2ploader-live",
    ),
}


def load_scenario(name_or_path: str) -> Scenario:
    """A preset by name, or a ``.toml``/``.json`` file (a top-level table of Scenario fields)."""
    if name_or_path in PRESETS:
        return PRESETS[name_or_path]
    path = Path(name_or_path)
    if not path.exists():
        raise ConfigError(
            f"no scenario preset or file {name_or_path!r} (presets: {', '.join(sorted(PRESETS))})"
        )
    text = path.read_text(encoding="utf-8")
    data = tomllib.loads(text) if path.suffix == ".toml" else json.loads(text)
    return Scenario.from_mapping(data)
