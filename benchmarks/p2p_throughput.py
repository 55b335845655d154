"""P2P throughput: the library's P2P path against a bare aiortc data channel, side by side.

Both transfer the same segments (default 10 x 2 MB) between two peers in this process, over
127.0.0.1 only. The library path is the real one: a seeder's scheduler serves from its cache through
its peer manager and the 2.x wire codec; a downloader's scheduler requests over P2P (nothing is
required yet, random HTTP is off) and stores the segments. The bare path sends 64 KiB messages with
the same bufferedAmount backpressure. Each is repeated; medians are printed, then one RESULT line.

    python benchmarks/p2p_throughput.py [--segments 10] [--size-mb 2] [--repeat 3]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import time

from aiortc import RTCDataChannel

from p2ploader.aio.peers import PeerManager
from p2ploader.aio.webrtc import (
    BUFFERED_AMOUNT_LOW_THRESHOLD,
    create_connection,
    restrict_ice_to_loopback,
    set_remote,
)
from p2ploader.config import LoaderConfig
from p2ploader.core import events as ev
from p2ploader.core import notifications as nt
from p2ploader.core.driver import Driver
from p2ploader.core.scheduler import Scheduler
from p2ploader.core.segments import Segment, SegmentId

RTC: dict[str, object] = {"iceServers": []}


def make_segments(count: int) -> tuple[Segment, ...]:
    return tuple(
        Segment(id=SegmentId("v0", i), url=f"http://unused.invalid/{i}.ts", duration=2.0, start=2.0 * i)
        for i in range(count)
    )


async def library_run(payloads: list[bytes]) -> tuple[float, float, float]:
    """Returns (setup seconds, transfer seconds, CPU seconds) through the library's P2P path."""
    loop = asyncio.get_running_loop()
    cfg = LoaderConfig(
        http_download_probability=0.0,
        simultaneous_p2p_downloads=1,
        use_p2p=True,
        forward_segment_count=len(payloads) + 2,
        p2p_download_max_priority=len(payloads) + 2,
    )
    segments = make_segments(len(payloads) + 2)
    done = asyncio.Event()
    loaded: list[int] = []

    def on_download(n: nt.Notification) -> None:
        if isinstance(n, nt.SegmentLoaded):
            loaded.append(n.size)
            if len(loaded) == len(payloads):
                done.set()

    seed_sched = Scheduler(cfg, rng=random.Random(1))
    down_sched = Scheduler(cfg, rng=random.Random(2))
    seed_driver = Driver(seed_sched, loop=loop, on_notification=lambda n: None)
    down_driver = Driver(down_sched, loop=loop, on_notification=on_download)
    for i, data in enumerate(payloads):
        seed_sched.cache.put(segments[i + 2], data, now=loop.time())
    seed_peers = PeerManager(
        feed=seed_driver.feed,
        rendition="v0",
        live=True,
        first_sequence=0,
        local_peer_id="aa" * 20,
        rtc_config=RTC,
    )
    down_peers = PeerManager(
        feed=down_driver.feed,
        rendition="v0",
        live=True,
        first_sequence=0,
        local_peer_id="bb" * 20,
        rtc_config=RTC,
    )
    seed_driver.peers, down_driver.peers = seed_peers, down_peers
    seed_driver.feed(ev.PlaylistUpdated(segments=segments))
    down_driver.feed(ev.PlaylistUpdated(segments=segments))

    connected = asyncio.Event()
    down_driver_feed = down_driver.feed

    def watch_connect(event: ev.Event) -> None:
        down_driver_feed(event)
        if isinstance(event, ev.PeerAnnounced) and event.loaded:
            connected.set()

    down_peers._feed = watch_connect  # observe the seeder's first announcement
    setup_started = time.perf_counter()
    (offer,) = await seed_peers.make_offers(1)
    answer = await down_peers.on_offer(bytes.fromhex("aa" * 20), offer.offer_id, offer.sdp)
    assert answer is not None
    await seed_peers.on_answer(bytes.fromhex("bb" * 20), offer.offer_id, answer)
    await asyncio.wait_for(connected.wait(), 30)
    setup = time.perf_counter() - setup_started

    cpu0, t0 = time.process_time(), time.perf_counter()
    down_driver.feed(ev.PlaybackMoved(position=0.0))
    down_driver.feed(ev.SegmentRequested(segment_id=segments[2].id))  # priority 2: not required
    await asyncio.wait_for(done.wait(), 120)
    elapsed, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    assert sum(loaded) == sum(map(len, payloads))
    assert down_sched.statistics().p2p_bytes == sum(map(len, payloads))
    await asyncio.gather(seed_peers.aclose(), down_peers.aclose())
    seed_driver.close()
    down_driver.close()
    return setup, elapsed, cpu


async def bare_run(payloads: list[bytes], message_size: int = 65535) -> tuple[float, float, float]:
    """The same bytes over one bare aiortc data channel with bufferedAmount backpressure."""
    total = sum(map(len, payloads))
    a, b = create_connection(RTC), create_connection(RTC)
    channel = a.createDataChannel("bench")
    opened, finished = asyncio.Event(), asyncio.Event()
    received = 0

    def on_message(message: bytes) -> None:
        nonlocal received
        received += len(message)
        if received >= total:
            finished.set()

    @b.on("datachannel")
    def on_channel(incoming: RTCDataChannel) -> None:
        incoming.on("message", on_message)

    channel.on("open", opened.set)
    setup_started = time.perf_counter()
    await a.setLocalDescription(await a.createOffer())
    await set_remote(b, a.localDescription.sdp, "offer")
    await b.setLocalDescription(await b.createAnswer())
    await set_remote(a, b.localDescription.sdp, "answer")
    await asyncio.wait_for(opened.wait(), 30)
    setup = time.perf_counter() - setup_started

    low = asyncio.Event()
    channel.bufferedAmountLowThreshold = BUFFERED_AMOUNT_LOW_THRESHOLD
    channel.on("bufferedamountlow", low.set)
    cpu0, t0 = time.process_time(), time.perf_counter()
    for data in payloads:
        for i in range(0, len(data), message_size):
            while channel.bufferedAmount > BUFFERED_AMOUNT_LOW_THRESHOLD:
                low.clear()
                await low.wait()
            channel.send(data[i : i + message_size])
    await asyncio.wait_for(finished.wait(), 120)
    elapsed, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    await a.close()
    await b.close()
    return setup, elapsed, cpu


async def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--segments", type=int, default=10)
    parser.add_argument("--size-mb", type=float, default=2.0)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    size = int(args.size_mb * 1_000_000)
    payloads = [os.urandom(size) for _ in range(args.segments)]
    mb = args.segments * size / 1e6
    lib: list[tuple[float, float, float]] = []
    bare: list[tuple[float, float, float]] = []
    with restrict_ice_to_loopback():
        for r in range(args.repeat):
            # Alternate the order so drift on a shared machine hits both alike.
            if r % 2 == 0:
                lib.append(await library_run(payloads))
                bare.append(await bare_run(payloads))
            else:
                bare.append(await bare_run(payloads))
                lib.append(await library_run(payloads))
            print(
                f"run {r + 1}: library {mb / lib[-1][1]:.1f} MB/s, bare aiortc {mb / bare[-1][1]:.1f} MB/s",
                flush=True,
            )

    def med(runs: list[tuple[float, float, float]], k: int) -> float:
        return statistics.median(run[k] for run in runs)

    lib_rate, bare_rate = mb / med(lib, 1), mb / med(bare, 1)
    print(f"transferred {args.segments} x {args.size_mb:g} MB per run, {args.repeat} runs, medians:")
    print(
        f"  library P2P path : {lib_rate:7.2f} MB/s  setup {med(lib, 0) * 1000:6.0f} ms  "
        f"CPU {med(lib, 2) / mb:.3f} s/MB"
    )
    print(
        f"  bare aiortc      : {bare_rate:7.2f} MB/s  setup {med(bare, 0) * 1000:6.0f} ms  "
        f"CPU {med(bare, 2) / mb:.3f} s/MB"
    )
    print(f"  ratio library/bare: {lib_rate / bare_rate:.2f}")
    print(
        f"RESULT p2p_throughput segments={args.segments} size_mb={args.size_mb:g} lib_mbps={lib_rate:.2f} "
        f"bare_mbps={bare_rate:.2f} ratio={lib_rate / bare_rate:.2f} lib_setup_ms={med(lib, 0) * 1000:.0f} "
        f"bare_setup_ms={med(bare, 0) * 1000:.0f} lib_cpu_s_per_mb={med(lib, 2) / mb:.3f} "
        f"bare_cpu_s_per_mb={med(bare, 2) / mb:.3f}"
    )


if __name__ == "__main__":
    asyncio.run(main())
