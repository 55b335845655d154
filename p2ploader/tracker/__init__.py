"""An embedded WebTorrent-compatible tracker (WebSocket signalling server) for tests, demos and small
deployments. :mod:`p2ploader.tracker.state` decides (sans-IO; its module doc is the theory of
operation), :mod:`p2ploader.tracker.server` serves it over WebSockets.

Example::

    from p2ploader.tracker import serve_tracker

    async with await serve_tracker() as tracker:  # ws://127.0.0.1:<free port>
        print(tracker.url, tracker.statistics())
"""

from __future__ import annotations

from p2ploader.tracker.server import (
    TrackerLimits,
    TrackerServer,
    TrackerStatistics,
    run_tracker_forever,
    serve_tracker,
)

__all__ = ["TrackerLimits", "TrackerServer", "TrackerStatistics", "run_tracker_forever", "serve_tracker"]
