"""Memory of a big simulated audience: a viewer's HTTP download in flight holds views of the
stream's one shared payload, not copies, so memory grows with the stream, not with the audience
times the segments in flight (10,000 joining viewers once held 5.7 GB, mostly such copies)."""

from __future__ import annotations

import pytest

from p2ploader.sim import Scenario, model, run_scenario
from p2ploader.sim.run import _World

# The origin shared by every joining viewer: downloads crawl in many pieces.
CROWDED = Scenario(name="crowded", viewers=30, duration_s=20.0, join_window_s=2.0, origin_mbps=20.0)


def _held_by_http_downloads(world: _World) -> tuple[int, int]:
    """(bytes held as private copies, bytes held as views of the stream's payloads) by the HTTP
    downloads in flight of every viewer."""
    copies = views = 0
    for viewer in world.alive.values():
        for download in viewer.scheduler._downloads.values():
            if download.source != "http":
                continue
            payload = world.stream.payload(download.segment.id)
            for chunk in download.chunks:
                if isinstance(chunk, memoryview) and chunk.obj is payload:
                    views += len(chunk)
                elif chunk is not payload:
                    copies += len(chunk)
    return copies, views


def test_http_downloads_in_flight_hold_views_of_the_shared_payload() -> None:
    world = _World(CROWDED, p2p=True, trace=False)
    for _ in range(CROWDED.viewers):
        world.loop.call_at(world.rng.uniform(0.0, CROWDED.join_window_s), world.join)
    most_views = 0
    for t in range(1, 21):
        world.loop.run_until(float(t))
        copies, views = _held_by_http_downloads(world)
        assert copies == 0, f"{copies} bytes copied at {t} s"
        most_views = max(most_views, views)
    assert most_views > 1_000_000  # the probe saw downloads in flight, in pieces


def test_views_change_no_event_and_no_figure(monkeypatch: pytest.MonkeyPatch) -> None:
    """The trace records a view as the bytes it shows: a run with views and a run with the pieces
    cut as bytes copies (as the model did before) feed every scheduler the same events."""
    with_views = run_scenario(CROWDED, trace=True)
    monkeypatch.setattr(model, "memoryview", lambda data: data, raising=False)  # slices: copies
    with_copies = run_scenario(CROWDED, trace=True)
    assert with_views.trace_digest == with_copies.trace_digest
    assert with_views.viewers == with_copies.viewers
    assert with_views.summary() == with_copies.summary()
