"""Which swarm a loader joins: swarm id rules and one swarm per rendition."""

from __future__ import annotations

import pytest

from p2ploader import LoaderConfig
from p2ploader.aio.loader import HybridLoader, open_loader
from p2ploader.origin import OriginServer
from p2ploader.sample import sample_path


@pytest.mark.parametrize(
    ("url", "config", "expected"),
    [
        (
            "https://cdn.example.com/live/master.m3u8?token=1",
            LoaderConfig(),
            "https://cdn.example.com/live/master.m3u8",
        ),
        ("https://cdn.example.com/live/master.m3u8", LoaderConfig(swarm_id="my-channel"), "my-channel"),
        (
            "https://edge7.example.com/tok123/live/master.m3u8?x=1",
            LoaderConfig(swarm_url_pattern=r"^https://[^/]+/[^/]+/(.*)$"),
            "live/master.m3u8",
        ),
    ],
)
def test_swarm_id(url: str, config: LoaderConfig, expected: str) -> None:
    assert HybridLoader(url, config=config).swarm_id == expected


@pytest.mark.anyio
async def test_one_swarm_per_rendition() -> None:
    with OriginServer(sample_path("ts")) as origin:
        async with open_loader(origin.url_for("master.m3u8"), config=LoaderConfig(use_p2p=False)) as loader:
            hashes = {loader.info_hash(v.rendition_id) for v in loader.variants}
            assert len(hashes) == 3 and all(len(h) == 20 for h in hashes)
            assert loader.peer_id.startswith(b"-PY0001-") and len(loader.peer_id) == 20
