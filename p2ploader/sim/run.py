"""Run a :class:`~p2ploader.sim.scenario.Scenario` in virtual time and measure it.

Joins, departures and the tracker are modelled here: a joining viewer is introduced to up to
``max_peers`` random viewers of its swarm that have room, each link opening after a connect delay;
every 30 s (jittered) a viewer with free slots asks again, as a tracker re-announce does. Churn is
a Poisson process: at ``churn_per_minute * viewers / 60`` departures per second a random viewer
leaves and a new one joins in its place.
"""

from __future__ import annotations

import gc
import hashlib
import random
import statistics
from collections.abc import Callable

import attrs

from p2ploader.config import LoaderConfig
from p2ploader.core import events as ev
from p2ploader.core.topology import host_config, rules_named
from p2ploader.sim.llhls import SimLowLatencyStream, SimLowLatencyViewer
from p2ploader.sim.loop import VirtualLoop
from p2ploader.sim.model import LinkProfile, Origin, PeerNetwork, Rendition, SimStream
from p2ploader.sim.scenario import Scenario
from p2ploader.sim.tree import CLIENT_ATTRIBUTES, HOST_ATTRIBUTES, TreeTracker
from p2ploader.sim.viewer import SimViewer, ViewerFigures

__all__ = ["SimResult", "run_scenario"]

_REANNOUNCE_S = 30.0
_MBPS = 1_000_000 / 8  # bytes per second in one Mbit/s


@attrs.frozen(kw_only=True)
class SimResult:
    scenario: Scenario
    p2p: bool
    viewers: tuple[ViewerFigures, ...]
    origin_bytes: int
    origin_requests: int
    segments_published: int
    mean_audience: float
    trace_digest: str | None
    callbacks_run: int
    max_clients_per_host: int | None = None
    """Host-client scenarios: the most clients any host was linked to at once (``None``: mesh)."""
    segment_uploaders: int = 0
    """Distinct (segment, uploader) pairs: summed over the segments, the viewers that delivered
    at least one copy of each (see :func:`p2ploader.sim.metrics.segment_sources`)."""
    latency_samples: tuple[float, ...] = ()
    """LL-HLS (``part_seconds``): every viewer's distance behind live (seconds: the live media time
    minus the playhead), sampled every 0.1 s while playing."""
    swarm_fallbacks: int = 0
    """LL-HLS: parts the parts swarm gave up, loaded over HTTP then."""

    def latency_percentile(self, fraction: float) -> float | None:
        """LL-HLS: the ``fraction`` quantile of :attr:`latency_samples` (seconds; as the benchmark
        takes it: the sample at ``int(fraction * n)`` of the sorted samples), None without any."""
        ordered = sorted(self.latency_samples)
        if not ordered:
            return None
        return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]

    @property
    def http_bytes(self) -> int:
        return sum(v.http_bytes for v in self.viewers)

    @property
    def p2p_bytes(self) -> int:
        return sum(v.p2p_bytes for v in self.viewers)

    @property
    def p2p_ratio(self) -> float:
        total = self.http_bytes + self.p2p_bytes
        return self.p2p_bytes / total if total else 0.0

    @property
    def best_ratio(self) -> float:
        """The theoretical best P2P ratio ``1 - 1/N`` for the mean audience N."""
        return max(0.0, 1.0 - 1.0 / self.mean_audience) if self.mean_audience >= 1 else 0.0

    @property
    def ratio_to_best(self) -> float:
        return self.p2p_ratio / self.best_ratio if self.best_ratio else 0.0

    @property
    def stalls(self) -> int:
        return sum(v.stalls for v in self.viewers)

    @property
    def rebuffer_time(self) -> float:
        return sum(v.rebuffer_time for v in self.viewers)

    @property
    def startup_median(self) -> float | None:
        times = [v.startup_time for v in self.viewers if v.startup_time is not None]
        return statistics.median(times) if times else None

    @property
    def origin_bytes_per_segment(self) -> float:
        return self.origin_bytes / self.segments_published if self.segments_published else 0.0

    @property
    def origin_requests_per_segment(self) -> float:
        return self.origin_requests / self.segments_published if self.segments_published else 0.0

    def upload_fairness(self) -> float:
        """Jain's fairness index of upload per uploading-capable viewer (1 = perfectly even)."""
        uploads = [v.uploaded_bytes for v in self.viewers if not v.download_only]
        if not uploads or not any(uploads):
            return 1.0
        return sum(uploads) ** 2 / (len(uploads) * sum(u * u for u in uploads))

    def summary(self) -> dict[str, float | int | str | None]:
        return {
            "scenario": self.scenario.name,
            "policy": self.scenario.policy,
            "p2p": self.p2p,
            "viewers_total": len(self.viewers),
            "mean_audience": round(self.mean_audience, 2),
            "p2p_ratio": round(self.p2p_ratio, 4),
            "best_ratio": round(self.best_ratio, 4),
            "ratio_to_best": round(self.ratio_to_best, 4),
            "origin_bytes": self.origin_bytes,
            "origin_requests_per_segment": round(self.origin_requests_per_segment, 3),
            "origin_bytes_per_segment": round(self.origin_bytes_per_segment, 1),
            "stalls": self.stalls,
            "rebuffer_s": round(self.rebuffer_time, 3),
            "startup_median_s": None if self.startup_median is None else round(self.startup_median, 3),
            "upload_fairness": round(self.upload_fairness(), 4),
            **(
                {}
                if self.max_clients_per_host is None
                else {"max_clients_per_host": self.max_clients_per_host}
            ),
            **(self._low_latency_summary() if self.scenario.part_seconds is not None else {}),
        }

    def _low_latency_summary(self) -> dict[str, float | int | str | None]:
        p50, p95 = self.latency_percentile(0.5), self.latency_percentile(0.95)
        return {
            "part_s": self.scenario.part_seconds,
            "latency_p50_s": None if p50 is None else round(p50, 3),
            "latency_p95_s": None if p95 is None else round(p95, 3),
            "swarm_fallbacks": self.swarm_fallbacks,
        }


class _World:
    def __init__(self, scenario: Scenario, *, p2p: bool, trace: bool) -> None:
        self.s = scenario
        self.p2p = p2p
        self.rng = random.Random(scenario.seed)
        self.loop = VirtualLoop()
        renditions = [
            Rendition(id=f"v{i}", bitrate=kbps * 1000) for i, kbps in enumerate(scenario.renditions_kbps)
        ]
        self.stream: SimStream | SimLowLatencyStream
        if scenario.part_seconds is not None:
            self.stream = SimLowLatencyStream(
                renditions=renditions,
                segment_duration=scenario.segment_duration_s,
                part_duration=scenario.part_seconds,
                part_hold_back=scenario.part_hold_back_s or 3 * scenario.part_seconds,
                window=scenario.ll_window_segments,
            )
        else:
            self.stream = SimStream(
                renditions=renditions,
                segment_duration=scenario.segment_duration_s,
                live=scenario.live,
                window=scenario.window_segments,
                vod_segments=scenario.vod_segments,
            )
        self.origin = Origin(
            bandwidth=scenario.origin_mbps * _MBPS, latency=scenario.origin_latency_ms / 1000
        )
        self.network = PeerNetwork(self.loop, random.Random(self.rng.getrandbits(64)))
        self.viewers: list[SimViewer | SimLowLatencyViewer] = []
        self.alive: dict[str, SimViewer | SimLowLatencyViewer] = {}
        self._next_id = 0
        self._hash = hashlib.sha256() if trace else None
        self.tree: TreeTracker | None = None
        if scenario.topology == "host-client":
            self.tree = TreeTracker(
                rules=rules_named(scenario.topology_rules),
                max_clients=scenario.max_client_peers_per_host_peer,
                loop=self.loop,
                network=self.network,
                rng=self.rng,
                connect_delay=lambda: self.rng.uniform(*scenario.connect_delay_s),
            )
        self._audience_area = 0.0
        self._audience_since = 0.0

    # --- audience
    def _account_audience(self) -> None:
        now = self.loop.time()
        self._audience_area += len(self.alive) * (now - self._audience_since)
        self._audience_since = now

    def join(self) -> None:
        s = self.s
        self._account_audience()
        rng = self.rng
        peer_id = f"p{self._next_id:05d}"
        self._next_id += 1
        down = rng.uniform(*s.downlink_mbps)
        up = rng.uniform(*s.uplink_mbps)
        if self._next_id - 1 < len(s.viewer_links_mbps):
            # Drawn all the same, so a given link changes nothing else the seed decides.
            up, down = s.viewer_links_mbps[self._next_id - 1]
        link = LinkProfile(
            down=down * _MBPS,
            up=up * _MBPS,
            latency=rng.uniform(*s.latency_ms) / 1000,
            jitter=s.jitter_ms / 1000,
            loss=s.loss,
            queue=s.uplink_queue_s,
        )
        download_only = rng.random() < s.download_only_fraction
        attributes = None
        if self.tree is not None:
            # Evenly spread hosts: viewer n is a host when floor((n + 1) * f) > floor(n * f).
            n = self._next_id - 1
            eligible = int((n + 1) * s.host_fraction) > int(n * s.host_fraction)
            attributes = HOST_ATTRIBUTES if eligible else CLIENT_ATTRIBUTES
            download_only = download_only or self.tree.role(attributes) == "client"  # clients never upload
        rendition = f"v{rng.randrange(len(s.renditions_kbps))}"
        if isinstance(self.stream, SimLowLatencyStream):
            self._join_low_latency(peer_id, link, rendition, download_only)
            return
        viewer = SimViewer(
            peer_id=peer_id,
            loop=self.loop,
            stream=self.stream,
            origin=self.origin,
            network=self.network,
            config=self._config(download_only=download_only, host=attributes is HOST_ATTRIBUTES),
            policy=s.policy,
            link=link,
            rendition=rendition,
            seed=rng.getrandbits(64),
            live_distance=s.latency_segments,
            forward_buffer=s.forward_buffer_s,
            startup_buffer=s.startup_buffer_s,
        )
        if self._hash is not None:
            self._trace(viewer)
        self.viewers.append(viewer)
        self.alive[peer_id] = viewer
        self.network.register(viewer.peers)
        if self.p2p and self.tree is not None and attributes is not None:
            self.tree.join(viewer, attributes)
        elif self.p2p:
            self._introduce(viewer)
            self.loop.call_later(rng.uniform(0.5, 1.5) * _REANNOUNCE_S, self._reannounce, viewer)

    def _join_low_latency(self, peer_id: str, link: LinkProfile, rendition: str, download_only: bool) -> None:
        """An LL-HLS viewer: it joins the parts swarm when it decides to (the first item)."""
        s = self.s
        assert isinstance(self.stream, SimLowLatencyStream)
        config = self._config(download_only=download_only, host=False)
        viewer = SimLowLatencyViewer(
            peer_id=peer_id,
            loop=self.loop,
            stream=self.stream,
            origin=self.origin,
            network=self.network,
            config=config,
            link=link,
            rendition=rendition,
            seed=self.rng.getrandbits(64),
            hold_back=s.hold_back_s,
            p2p=self.p2p,
            join="at-once" if s.parts_join == "at-once" else "first-item",
            on_join_swarm=self._join_parts_swarm,
            max_peers=s.parts_max_peers,
        )
        self.viewers.append(viewer)
        self.alive[peer_id] = viewer

    def _join_parts_swarm(self, viewer: SimLowLatencyViewer) -> None:
        peers = viewer.peers
        assert peers is not None
        self.network.register(peers)
        self._introduce(viewer)
        self.loop.call_later(self.rng.uniform(0.5, 1.5) * _REANNOUNCE_S, self._reannounce, viewer)

    def _config(self, *, download_only: bool, host: bool) -> LoaderConfig:
        config = self.s.loader_config(p2p=self.p2p, download_only=download_only)
        return host_config(config) if host else config

    def _trace(self, viewer: SimViewer) -> None:
        digest = self._hash
        assert digest is not None
        feed = viewer.driver.feed
        loop = self.loop
        peer = viewer.peer_id.encode()

        def traced(event: ev.Event) -> None:
            digest.update(f"{loop.time():.9f}".encode() + peer + _traced_repr(event).encode())
            feed(event)

        viewer.driver.feed = traced  # type: ignore[method-assign]
        viewer.http._feed = traced
        viewer.peers.feed = traced

    def _introduce(self, viewer: SimViewer | SimLowLatencyViewer) -> None:
        """The tracker hands the viewer some peers of its swarm that have room, and the swarm's size."""
        peers, driver = viewer.peers, viewer.driver
        assert peers is not None and driver is not None
        network = self.network
        driver.feed(ev.TrackerUpdated(incomplete=network.swarm_sizes[peers.swarm]))
        # A parts swarm's links are fewer than the scenario's max_peers (PARTS_MAX_PEERS).
        limit = peers.max_peers if isinstance(viewer, SimLowLatencyViewer) else self.s.max_peers
        room = limit - len(peers.neighbours)
        if room <= 0 or viewer.left is not None:
            return
        candidates = [
            other
            for other in network.with_room[peers.swarm].values()
            if other is not peers and other.peer_id not in peers.neighbours
        ]
        for other in self.rng.sample(candidates, min(room, len(candidates))):
            self.loop.call_later(self.rng.uniform(*self.s.connect_delay_s), network.connect, peers, other)

    def _reannounce(self, viewer: SimViewer | SimLowLatencyViewer) -> None:
        if viewer.left is not None:
            return
        self._introduce(viewer)
        self.loop.call_later(_REANNOUNCE_S * self.rng.uniform(0.9, 1.1), self._reannounce, viewer)

    def churn(self) -> None:
        if self.alive:
            self._account_audience()
            leaver = self.rng.choice(sorted(self.alive))
            viewer = self.alive.pop(leaver)
            viewer.leave()
            if self.tree is not None and isinstance(viewer, SimViewer):
                self.tree.leave(viewer)
            # An LL-HLS viewer is registered once it joined the parts swarm.
            peers = viewer.peers
            if peers is not None and (isinstance(viewer, SimViewer) or viewer.joined_swarm):
                self.network.unregister(peers)
            self.join()
        self._schedule_churn()

    def _schedule_churn(self) -> None:
        rate = self.s.churn_per_minute * self.s.viewers / 60.0
        if rate > 0:
            self.loop.call_later(self.rng.expovariate(rate), self.churn)

    def _forget_old_payloads(self) -> None:
        if isinstance(self.stream, SimStream) and self.stream.live:
            oldest = self.stream.last_published(self.loop.time()) - 3 * self.stream.window
            self.stream.forget_before(oldest)
            self.network.forget_uploads_before(oldest)
        self.loop.call_later(60.0, self._forget_old_payloads)


def _traced_repr(event: ev.Event) -> str:
    """The event as the trace digest records it: a view of shared bytes as the bytes it shows
    (its own repr names an address, which differs from run to run)."""
    if isinstance(event, ev.HttpChunkReceived) and isinstance(event.data, memoryview):
        return repr(attrs.evolve(event, data=bytes(event.data)))
    return repr(event)


def run_scenario(
    scenario: Scenario,
    *,
    p2p: bool = True,
    trace: bool = False,
    progress: Callable[[float], None] | None = None,
) -> SimResult:
    """Simulate ``scenario`` (P2P on or off). ``trace`` records a digest of every event fed to every
    viewer's scheduler, to prove that a seed reproduces a run."""
    # The cyclic garbage collector is off while the world runs: a run holds millions of
    # long-lived objects (every viewer's scheduler, machines and links) that each collection
    # walks, for almost no garbage (cycles are a link's two ends and a viewer's own objects, freed
    # with the world). At 1,000 viewers it cost about a fifth of the run. Reference counting
    # still frees everything else at once; the collector's previous state comes back after.
    collecting = gc.isenabled()
    gc.disable()
    try:
        return _run_world(scenario, p2p=p2p, trace=trace, progress=progress)
    finally:
        if collecting:
            gc.enable()


def _run_world(
    scenario: Scenario, *, p2p: bool, trace: bool, progress: Callable[[float], None] | None
) -> SimResult:
    world = _World(scenario, p2p=p2p, trace=trace)
    loop = world.loop
    for index in range(scenario.viewers):
        joins_at = world.rng.uniform(0.0, scenario.join_window_s)
        if scenario.join_times_s:
            joins_at = scenario.join_times_s[index]
        loop.call_at(joins_at, world.join)
    world._schedule_churn()
    loop.call_later(60.0, world._forget_old_payloads)
    step = 10.0
    t = 0.0
    while t < scenario.duration_s:
        t = min(scenario.duration_s, t + step)
        loop.run_until(t)
        if progress is not None:
            progress(t)
    world._account_audience()
    for viewer in world.viewers:
        # A viewer that left stopped playing then: no rebuffering after it.
        if viewer.left is None and viewer.model is not None:
            viewer.model.update(now=loop.time())
    published = (
        world.stream.last_published(scenario.duration_s) - world.stream.last_published(0.0)
        if scenario.live
        else scenario.vod_segments
    ) * len(scenario.renditions_kbps)
    return SimResult(
        scenario=scenario,
        p2p=p2p,
        viewers=tuple(v.figures() for v in world.viewers),
        origin_bytes=world.origin.bytes_sent,
        origin_requests=world.origin.requests,
        segments_published=max(1, published),
        mean_audience=world._audience_area / scenario.duration_s if scenario.duration_s else 0.0,
        trace_digest=world._hash.hexdigest() if world._hash is not None else None,
        callbacks_run=loop.callbacks_run,
        max_clients_per_host=world.tree.max_clients_seen if world.tree is not None else None,
        segment_uploaders=world.network.segment_uploaders,
        latency_samples=tuple(
            x for v in world.viewers if isinstance(v, SimLowLatencyViewer) for x in v.latency_samples
        ),
        swarm_fallbacks=sum(v.swarm_fallbacks for v in world.viewers if isinstance(v, SimLowLatencyViewer)),
    )
