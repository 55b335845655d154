"""A swarm's network on the testbed: the origin, the tracker and one namespace per viewer.

:func:`build_swarm_network` adds the hosts to a :class:`~p2ploader.testbed.netns.Testbed`, draws
each viewer's uplink and downlink from their ranges (uniformly, from ``seed``; viewer ``i`` draws
from its own generator, so its links do not depend on how many viewers there are), and starts the
origin (``p2ploader origin`` serving a folder, live under ``/live/``) and the embedded tracker
(``p2ploader tracker``), each in its namespace, bound to its testbed address. Viewers then run with
:meth:`SwarmNetwork.viewer_prefix` before their command.
"""

from __future__ import annotations

import queue
import random
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import IO

import attrs

from p2ploader.errors import TestbedError
from p2ploader.testbed.links import RateRange, format_rate
from p2ploader.testbed.netns import Host, Testbed

__all__ = [
    "ORIGIN_PORT",
    "TRACKER_PORT",
    "SwarmNetwork",
    "build_swarm_network",
    "draw_links",
    "start_server",
    "viewer_link_rates",
]

ORIGIN_PORT = 8080
TRACKER_PORT = 8000
_READY_TIMEOUT_S = 30.0


@attrs.frozen(kw_only=True)
class SwarmNetwork:
    """What :func:`build_swarm_network` set up. Rates in bits per second."""

    testbed: Testbed
    origin: Host
    tracker: Host
    viewers: tuple[Host, ...]
    origin_url: str
    """``http://<origin address>:8080/``; the live stream is ``live/master.m3u8`` under it."""
    tracker_url: str

    def viewer_prefix(self, viewer: int) -> list[str]:
        """The command prefix that runs viewer ``viewer`` (0-based) in its namespace."""
        return self.testbed.command(self.viewers[viewer], [])

    def describe(self) -> list[str]:
        """One line per viewer: its address and links."""
        return [
            f"viewer {number}: {h.address} up {_rate(h.uplink_bps)} down {_rate(h.downlink_bps)}"
            for number, h in enumerate(self.viewers)
        ]


def _rate(bits_per_second: float | None) -> str:
    return "unshaped" if bits_per_second is None else format_rate(bits_per_second)


def draw_links(
    viewers: int, *, uplink: RateRange, downlink: RateRange, seed: int
) -> list[tuple[float, float]]:
    """``(uplink, downlink)`` in bits per second for each viewer."""
    links = []
    for viewer in range(viewers):
        rng = random.Random(seed * 1_000_003 + viewer)
        links.append((uplink.draw(rng), downlink.draw(rng)))
    return links


def viewer_link_rates(
    viewers: int,
    *,
    uplink: RateRange | None,
    downlink: RateRange | None,
    seed: int,
    links: Sequence[tuple[float, float]] = (),
) -> list[tuple[float | None, float | None]]:
    """Each viewer's ``(uplink, downlink)`` in bits per second, ``None`` for an unshaped side:
    ``links`` for the first viewers, draws from the ranges (a ``None`` range: unshaped) for the
    rest. A viewer's draw does not depend on the given links, so giving some changes no other."""
    unshaped = RateRange(1.0, 1.0)
    rates: list[tuple[float | None, float | None]] = []
    drawn = draw_links(viewers, uplink=uplink or unshaped, downlink=downlink or unshaped, seed=seed)
    for index, (up, down) in enumerate(drawn):
        if index < len(links):
            rates.append(links[index])
        else:
            rates.append((up if uplink is not None else None, down if downlink is not None else None))
    return rates


def build_swarm_network(
    testbed: Testbed,
    *,
    root: Path,
    viewers: int,
    uplink: RateRange | None,
    downlink: RateRange | None,
    origin_bps: float | None = None,
    seed: int = 0,
    window_segments: int = 20,
    python: str = sys.executable,
    links: Sequence[tuple[float, float]] = (),
    origin_options: Sequence[str] = (),
) -> SwarmNetwork:
    """Add the origin (serving ``root``; its uplink ``origin_bps``), the tracker and ``viewers``
    viewers (links drawn from ``uplink`` and ``downlink``; ``None`` leaves that side unshaped) to
    ``testbed``, and start the two servers. ``links`` gives the first viewers' ``(uplink,
    downlink)`` in bits per second instead of draws (a scenario's ``viewer_links_mbps``); a given
    side is shaped even where its range is ``None``. ``origin_options`` are added to the
    ``p2ploader origin`` command (e.g. ``--llhls`` for a low-latency stream under ``/llhls/``)."""
    origin = testbed.add_host("origin", uplink_bps=origin_bps)
    tracker = testbed.add_host("tracker")
    hosts = [
        testbed.add_host(f"v{index}", uplink_bps=up, downlink_bps=down)
        for index, (up, down) in enumerate(
            viewer_link_rates(viewers, uplink=uplink, downlink=downlink, seed=seed, links=links)
        )
    ]
    cli = [python, "-m", "p2ploader.app.cli"]
    origin_argv = [
        *cli, "origin", "--root", str(root), "--host", origin.address, "--port", str(ORIGIN_PORT),
        "--window", str(window_segments), "--cors", *origin_options,
    ]  # fmt: skip
    start_server(testbed, origin, origin_argv, ready="live:")
    tracker_argv = [*cli, "tracker", "--host", tracker.address, "--port", str(TRACKER_PORT)]
    start_server(testbed, tracker, tracker_argv, ready="tracker:")
    return SwarmNetwork(
        testbed=testbed,
        origin=origin,
        tracker=tracker,
        viewers=tuple(hosts),
        origin_url=f"http://{origin.address}:{ORIGIN_PORT}/",
        tracker_url=f"ws://{tracker.address}:{TRACKER_PORT}",
    )


def start_server(
    testbed: Testbed, host: Host, argv: Sequence[str], *, ready: str, cwd: str | None = None
) -> str:
    """Start ``argv`` in ``host``'s namespace (working directory ``cwd``), wait for a stdout line
    starting with ``ready`` (printed once its socket is bound) and return that line. A thread
    reads its output to the end, so it never blocks on a full pipe."""
    proc = testbed.popen(host, argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=cwd)
    assert proc.stdout is not None
    lines: queue.Queue[str | None] = queue.Queue()
    threading.Thread(target=_read_lines, args=(proc.stdout, lines), daemon=True).start()
    seen: list[str] = []
    deadline = time.monotonic() + _READY_TIMEOUT_S
    while True:
        try:
            line = lines.get(timeout=max(0.0, deadline - time.monotonic()))
        except queue.Empty:
            raise TestbedError(
                f"{' '.join(argv[:4])} in {host.namespace} did not start: {''.join(seen)[-800:]}"
            ) from None
        if line is None:
            raise TestbedError(
                f"{' '.join(argv[:4])} in {host.namespace} exited ({proc.wait()}): {''.join(seen)[-800:]}"
            )
        seen.append(line)
        if line.startswith(ready):
            return line


def _read_lines(stream: IO[str], lines: queue.Queue[str | None]) -> None:
    for line in stream:
        if lines.qsize() < 100:  # only the first lines matter; the rest is read and dropped
            lines.put(line)
    lines.put(None)
