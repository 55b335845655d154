"""The smallest useful player loop: open a stream, take segments in play order, report playback.

    python examples/minimal_player.py [URL]

Without a URL it starts the bundled sample on a local origin.
"""

from __future__ import annotations

import asyncio
import sys

from p2ploader import LoaderConfig, open_loader
from p2ploader.sample import sample_path
from p2ploader.testing.origin import OriginServer


async def run(url: str) -> None:
    async with open_loader(url, config=LoaderConfig.preset("faq-live")) as loader:
        position = 0.0
        async for segment in loader.segments():
            # A real player would decode segment.data here (or, for an EXT-X-GAP marker, whose
            # data is empty, skip its duration); we only advance the playhead.
            position = segment.segment.end
            loader.report_playback(position)
            what = "gap (no media)" if segment.gap else f"{len(segment.data):7d} bytes from {segment.source}"
            print(f"{segment.id}: {what}")
        stats = loader.statistics()
        print(f"HTTP {stats.http_bytes} B, P2P {stats.p2p_bytes} B, efficiency {stats.peer_efficiency:.0%}")


def main() -> None:
    if len(sys.argv) > 1:
        asyncio.run(run(sys.argv[1]))
        return
    with OriginServer(sample_path("ts")) as origin:
        asyncio.run(run(origin.url_for("master.m3u8")))


if __name__ == "__main__":
    main()
