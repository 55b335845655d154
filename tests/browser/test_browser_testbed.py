"""P2P Media Loader 2.3.1 in Chromium on the testbed: each browser in a namespace of its own with a
shaped uplink reaches the origin, the tracker and the other browser over the testbed's addresses,
plays, and shares segments over P2P; nothing is left behind.

What ``benchmarks/testbed_offload.py`` runs for its browser cases, at the smallest size. Needs root,
iproute2, Chromium and the npm packages (.ci/run installs them); skipped with the reason otherwise.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from p2ploader.errors import TestbedUnavailableError
from p2ploader.testbed.links import RateRange
from p2ploader.testbed.netns import check_available, list_namespaces
from tests.browser.harness import browser_setup
from tests.browser.testbed import run_browser_case
from tests.ffmpeg_streams import make_single_rendition_stream

try:
    check_available()
    _UNAVAILABLE = None
except TestbedUnavailableError as exc:
    _UNAVAILABLE = str(exc)
_SETUP = browser_setup()

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(_UNAVAILABLE is not None, reason=f"testbed unavailable: {_UNAVAILABLE}"),
    pytest.mark.skipif(isinstance(_SETUP, str), reason=f"browsers unavailable: {_SETUP}"),
]


def test_browsers_on_shaped_links_play_and_share_over_p2p(tmp_path: Path) -> None:
    assert not isinstance(_SETUP, str)
    root = make_single_rendition_stream(tmp_path / "stream", segment_seconds=2, seconds=12)
    ours = f"p2pl-{os.getpid()}-"  # this process's testbeds (tests elsewhere may run their own)
    result = asyncio.run(
        run_browser_case(
            setup=_SETUP,
            root=root,
            viewers=2,
            duration=24.0,
            stagger=1.0,
            # 24 s behind live, beyond P2P Media Loader's 15 s high-demand window (at 3 segments
            # it loads everything over HTTP), so the second browser asks the first.
            latency_segments=12,
            uplink=RateRange(4e6, 6e6),
            downlink=RateRange(20e6, 30e6),
            queue_seconds=0.1,
            seed=1,
        )
    )
    assert result["unstarted"] == 0, result
    assert result["failures"] == 0, result
    assert result["p2p_ratio"] > 0.0, result  # the browsers found each other across namespaces
    assert result["origin_sent"] > 0, result  # the counter read the origin's own link
    assert not [name for name in list_namespaces() if name.startswith(ours)]  # every namespace is gone
