"""A peer that announces every segment and never answers must not hold start-up: with it, the
first segment is ready within 1.2 x the time it takes with no peer at all (the HTTP path), for
every preset and every built-in policy. With P2P Media Loader 0.6's initial P2P-first mode (the
FAQ's VOD example) it used to wait the whole per-segment allowance: 17 s against 2 s.
"""

from __future__ import annotations

import pytest

from p2ploader.config import PRESETS, LoaderConfig

from .world import World, silent

HTTP_TIME = 2.0  # seconds the origin takes per segment (the reported run: 2.05 s to start)

CASES = {f"preset:{name}": config for name, config in PRESETS.items()} | {
    "defaults": LoaderConfig(),
    "policy:p2pml-2.2": LoaderConfig(policy="p2pml-2.2"),
    "policy:p2ploader-live": LoaderConfig(policy="p2ploader-live"),
}


def _time_to_first_segment(config: LoaderConfig, *, with_silent_peer: bool) -> float:
    world = World(config, segments=12, duration=10.0, http_time=HTTP_TIME)
    # What the tracker says on joining: just us, or us and the silent peer.
    world.tracker_reports(2 if with_silent_peer else 1)
    if with_silent_peer:
        world.connect("S", silent)
    world.play(until=60.0)
    assert world.first_ready_at is not None, "never started"
    return world.first_ready_at


@pytest.mark.parametrize("case", sorted(CASES))
def test_a_silent_peer_never_holds_startup_beyond_the_http_path(case: str) -> None:
    config = CASES[case]
    alone = _time_to_first_segment(config, with_silent_peer=False)
    with_peer = _time_to_first_segment(config, with_silent_peer=True)
    assert alone == pytest.approx(HTTP_TIME)
    assert with_peer <= 1.2 * alone, f"{case}: {with_peer:.2f} s with a silent peer, {alone:.2f} s without"


def test_the_faq_vod_case_as_reported() -> None:
    # The P2P-first mode still prefers peers for the segments after the first one.
    world = World(LoaderConfig.preset("faq-vod"), segments=12, duration=20.0, http_time=HTTP_TIME)
    world.tracker_reports(2)
    world.connect("S", silent)
    world.play(until=HTTP_TIME + 0.5)
    assert world.first_ready_at == pytest.approx(HTTP_TIME)
    assert world.scheduler.p2p_loading(), "the segments after it are asked of the peer first"
