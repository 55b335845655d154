"""Data-channel transports side by side: aiortc (what p2ploader ships) against libdatachannel.

Issue 27 asks whether a libdatachannel-based transport would carry P2P bytes for much less CPU.
This measures the question's two halves in one run:

* **Cost**: the same payloads (default 10 x 2 MB, 64 KiB messages) between two peers in this
  process over one data channel, once with aiortc and once with libdatachannel through the
  ``pylibdatachannel`` binding; throughput (MB/s), connection set-up (ms) and process CPU
  seconds per MB (libdatachannel's own threads included), medians of ``--repeat`` runs,
  alternating the order so that drift on a shared machine hits both alike. aiortc is paced by
  ``bufferedAmount`` as p2ploader paces it; the binding exposes no buffered amount, so its sender
  is paced by the receiver's count (at most 1 MiB in flight), which only an in-process benchmark
  can see.
* **Compatibility**: an aiortc peer (as p2ploader's) offers, a libdatachannel peer answers, and
  3 MB go each way; the line says whether the channel opened and the bytes arrived intact, or
  what failed.

Needs ``pip install pylibdatachannel`` (not a dependency of p2ploader; without it the script
says so and exits 2). Interfaces: aiortc is kept to 127.0.0.1; libdatachannel gathers its own
host candidates.

    python benchmarks/datachannel_transports.py [--segments 10] [--size-mb 2] [--repeat 3]

One line per transport and one for the pair::

    RESULT datachannel_transport name=aiortc mbps=X setup_ms=Y cpu_s_per_mb=Z
    RESULT datachannel_transport name=libdatachannel mbps=X setup_ms=Y cpu_s_per_mb=Z
    RESULT datachannel_interop offer=aiortc answer=libdatachannel opened=0|1 intact=0|1 reason=TEXT
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import threading
import time
from typing import Any

from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from p2p_throughput import bare_run  # the same folder: run as a script, it is on the path

from p2ploader.aio.webrtc import BUFFERED_AMOUNT_LOW_THRESHOLD, restrict_ice_to_loopback

MESSAGE_SIZE = 64 * 1024
IN_FLIGHT = 1 << 20
"""Bytes the libdatachannel sender may have sent and the receiver not yet counted."""

Run = tuple[float, float, float]
"""(set-up seconds, transfer seconds, CPU seconds)."""


def _binding() -> Any:
    try:
        import pylibdatachannel  # type: ignore[import-not-found]
    except ImportError:
        print(
            "this benchmark needs the libdatachannel binding: pip install pylibdatachannel", file=sys.stderr
        )
        raise SystemExit(2) from None
    return pylibdatachannel


async def aiortc_run(payloads: list[bytes]) -> Run:
    """One transfer over aiortc, paced by ``bufferedAmount`` as p2ploader's peers pace it: the bare
    channel of ``p2p_throughput.py``, with this benchmark's message size."""
    return await bare_run(payloads, message_size=MESSAGE_SIZE)


async def libdatachannel_run(ldc: Any, payloads: list[bytes]) -> Run:
    """One transfer over libdatachannel. Its callbacks run on its own threads: everything they
    touch goes through ``call_soon_threadsafe`` or the lock."""
    loop = asyncio.get_running_loop()
    total = sum(len(p) for p in payloads)
    a, b = ldc.PeerConnection(ldc.Configuration([])), ldc.PeerConnection(ldc.Configuration([]))
    opened, finished, progress = asyncio.Event(), asyncio.Event(), asyncio.Event()
    lock = threading.Lock()
    received = 0
    kept: list[Any] = []  # the answerer's channel object must outlive the callback

    def deliver(to: Any, description: Any) -> None:
        copy = ldc.Description(str(description), description.type)
        loop.call_soon_threadsafe(to.set_remote_description, copy)

    def trickle(to: Any, candidate: Any) -> None:
        copy = ldc.Candidate(candidate.candidate, candidate.mid)
        loop.call_soon_threadsafe(to.add_remote_candidate, copy)

    def on_message(message: bytes) -> None:
        nonlocal received
        with lock:
            received += len(message)
            done = received >= total
        loop.call_soon_threadsafe(progress.set)
        if done:
            loop.call_soon_threadsafe(finished.set)

    def on_channel(channel: Any) -> None:
        kept.append(channel)
        channel.on_message(on_message)

    a.on_local_description(lambda d: deliver(b, d))
    b.on_local_description(lambda d: deliver(a, d))
    a.on_local_candidate(lambda c: trickle(b, c))
    b.on_local_candidate(lambda c: trickle(a, c))
    b.on_data_channel(on_channel)
    started = time.perf_counter()
    channel = a.create_data_channel("bench")
    channel.on_open(lambda: loop.call_soon_threadsafe(opened.set))
    await asyncio.wait_for(opened.wait(), 30)
    setup = time.perf_counter() - started
    cpu0, t0 = time.process_time(), time.perf_counter()
    sent = 0
    for data in payloads:
        for i in range(0, len(data), MESSAGE_SIZE):
            while True:
                with lock:
                    ahead = sent - received
                if ahead <= IN_FLIGHT:
                    break
                progress.clear()
                await progress.wait()
            chunk = data[i : i + MESSAGE_SIZE]
            channel.send(chunk)
            sent += len(chunk)
    await asyncio.wait_for(finished.wait(), 120)
    elapsed, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    channel.close()
    a.close()
    b.close()
    return setup, elapsed, cpu


async def interop(ldc: Any, size: int = 3_000_000) -> tuple[bool, bool, str]:
    """aiortc offers, libdatachannel answers; ``size`` bytes each way. (opened, intact, reason)."""
    loop = asyncio.get_running_loop()
    payload = os.urandom(size)
    a = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    failure: list[str] = []
    channel = a.createDataChannel("p2pml")
    opened, to_aiortc_done, to_ldc_done, gathered = (asyncio.Event() for _ in range(4))
    at_aiortc, at_ldc = bytearray(), bytearray()
    answerer_channels: list[Any] = []

    def on_aiortc_message(message: bytes) -> None:
        at_aiortc.extend(message)
        if len(at_aiortc) >= size:
            to_aiortc_done.set()

    def on_ldc_message(message: bytes) -> None:
        def store() -> None:
            at_ldc.extend(message)
            if len(at_ldc) >= size:
                to_ldc_done.set()

        loop.call_soon_threadsafe(store)

    def on_ldc_channel(incoming: Any) -> None:
        answerer_channels.append(incoming)
        incoming.on_message(on_ldc_message)

    @a.on("connectionstatechange")
    def on_state() -> None:
        if a.connectionState == "failed":
            failure.append("connection failed")
            opened.set()

    channel.on("open", opened.set)
    channel.on("message", on_aiortc_message)
    loop.set_exception_handler(lambda _loop, context: failure.append(repr(context.get("exception"))))
    b = ldc.PeerConnection(ldc.Configuration([]))
    b.on_gathering_state_change(
        lambda state: state == ldc.GatheringState.COMPLETE and loop.call_soon_threadsafe(gathered.set)
    )
    b.on_data_channel(on_ldc_channel)
    try:
        await a.setLocalDescription(await a.createOffer())
        b.set_remote_description(ldc.Description(a.localDescription.sdp, ldc.DescriptionType.OFFER))
        await asyncio.wait_for(gathered.wait(), 10)
        await a.setRemoteDescription(RTCSessionDescription(str(b.local_description), "answer"))
        try:
            await asyncio.wait_for(opened.wait(), 15)
        except TimeoutError:
            failure.append("no open within 15 s")
        if failure or channel.readyState != "open":
            return False, False, failure[0] if failure else "channel not open"
        low = asyncio.Event()
        channel.bufferedAmountLowThreshold = BUFFERED_AMOUNT_LOW_THRESHOLD
        channel.on("bufferedamountlow", low.set)
        for i in range(0, size, 16384):
            while channel.bufferedAmount > BUFFERED_AMOUNT_LOW_THRESHOLD:
                low.clear()
                await low.wait()
            channel.send(payload[i : i + 16384])
        await asyncio.wait_for(to_ldc_done.wait(), 60)
        for i in range(0, size, 16384):
            answerer_channels[0].send(payload[i : i + 16384])
            if i % IN_FLIGHT == 0:
                await asyncio.sleep(0.02)  # no buffered amount to wait on: pace crudely
        await asyncio.wait_for(to_aiortc_done.wait(), 60)
        return True, bytes(at_ldc) == payload == bytes(at_aiortc), "-"
    finally:
        loop.set_exception_handler(None)
        b.close()
        await a.close()


async def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--segments", type=int, default=10)
    parser.add_argument("--size-mb", type=float, default=2.0)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    ldc = _binding()
    size = int(args.size_mb * 1_000_000)
    payloads = [os.urandom(size) for _ in range(args.segments)]
    mb = args.segments * size / 1e6
    runs: dict[str, list[Run]] = {"aiortc": [], "libdatachannel": []}
    for r in range(args.repeat):
        order = ["aiortc", "libdatachannel"] if r % 2 == 0 else ["libdatachannel", "aiortc"]
        for name in order:
            if name == "aiortc":
                with restrict_ice_to_loopback():
                    runs[name].append(await aiortc_run(payloads))
            else:
                runs[name].append(await libdatachannel_run(ldc, payloads))
        print(
            f"run {r + 1}: "
            + ", ".join(
                f"{name} {mb / v[-1][1]:.1f} MB/s {v[-1][2] / mb:.3f} CPU s/MB" for name, v in runs.items()
            ),
            flush=True,
        )
    opened, intact, reason = await interop(ldc)

    def med(name: str, k: int) -> float:
        return statistics.median(run[k] for run in runs[name])

    print(f"transferred {args.segments} x {args.size_mb:g} MB per run, {args.repeat} runs, medians:")
    for name in runs:
        print(
            f"  {name:15s}: {mb / med(name, 1):7.2f} MB/s  setup {med(name, 0) * 1000:6.0f} ms  "
            f"CPU {med(name, 2) / mb:.3f} s/MB"
        )
    print(f"  CPU per MB, aiortc / libdatachannel: {med('aiortc', 2) / med('libdatachannel', 2):.1f} x")
    for name in runs:
        print(
            f"RESULT datachannel_transport name={name} mbps={mb / med(name, 1):.2f} "
            f"setup_ms={med(name, 0) * 1000:.0f} cpu_s_per_mb={med(name, 2) / mb:.3f}"
        )
    print(
        f"RESULT datachannel_interop offer=aiortc answer=libdatachannel opened={int(opened)} "
        f"intact={int(intact)} reason={reason.replace(' ', '_')}"
    )


if __name__ == "__main__":
    asyncio.run(main())
