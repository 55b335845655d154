"""Eclipse resistance on loopback: does a viewer still get the honest seeder's bytes under attack?

Real sockets on 127.0.0.1 only: the real embedded tracker (``p2ploader.tracker``) or the npm
``bittorrent-tracker`` (``--tracker node``), the real local origin, a real honest seeder loader
holding the whole stream, a real victim loader that plays ``--duration`` seconds, and attackers
written from scratch (raw aiortc peers, raw WebSockets speaking the tracker protocol). Both loaders
verify SHA-256 digests the playlists publish. Per case the same run is made without the attacker,
and the script prints the bytes the seeder uploaded to the victim under attack against that
baseline (median of ``--repeat`` runs each):

* ``sybils``: 20 raw aiortc peers announce, offer and answer through the tracker (every 3 s), connect
  and then do nothing (announce nothing, request nothing, send nothing).
* ``spam``: one WebSocket announcing a fresh peer id with 5 fake offers every 100 ms. The embedded
  tracker keeps one id per socket in its swarm (measured: the swarm stays at 2 + the victim) but
  relays every announce's offers, so seeder and victim each get ~10 fake offers a second.
* ``spam-sockets``: the same through a new WebSocket per peer id (50 kept open): what a tracker that
  binds one id per connection still lets through.
* ``spam-leaving``: as ``spam``, but each id sends ``stopped`` right after its offers went out.
  ``spam-sockets`` also dilutes the swarm (every announce's offers go to random members, so the
  honest seeder and the victim rarely draw each other), which no client-side rule undoes; ``spam``
  and ``spam-leaving`` measure the client's own defence (slots, connecting cap, offer budget).
* ``impersonator``: a raw aiortc peer using the honest seeder's peer id, through a second tracker the
  victim also uses (a hostile tracker: the honest one would let the impersonator take the id over,
  which is the tracker's business); it announces every segment and sends wrong bytes.

    python benchmarks/eclipse.py [--cases sybils spam spam-sockets spam-leaving impersonator] [--duration 40]
        [--repeat 1] [--tracker embedded|node]

Output: one ``RESULT eclipse case=NAME p2p_vs_honest=R`` line per case (R = attacked / baseline).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import statistics
import sys
import tempfile
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

from aiortc import RTCDataChannel, RTCPeerConnection
from websockets.asyncio.client import ClientConnection, connect

from p2ploader import LoaderConfig, open_loader, play
from p2ploader.aio.loader import HybridLoader
from p2ploader.aio.tracker_client import Offer, TrackerClient, encode_id
from p2ploader.aio.webrtc import restrict_ice_to_loopback, rtc_configuration, set_remote
from p2ploader.app.hashplaylist import hash_playlists
from p2ploader.core import swarm, wire
from p2ploader.core.segments import SegmentId
from p2ploader.testing.origin import OriginServer
from p2ploader.tracker import TrackerServer

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks.swarm_offload import make_stream

RTC: dict[str, Any] = {"iceServers": []}
VERBOSE = bool(os.environ.get("ECLIPSE_VERBOSE"))


# --------------------------------------------------------------------------- trackers


@contextlib.asynccontextmanager
async def a_tracker(kind: str) -> AsyncIterator[str]:
    if kind == "embedded":
        async with TrackerServer() as server:
            yield server.url
        return
    from tests.node_tracker import ensure_installed, node_tracker_dir, start_node_tracker

    tracker = start_node_tracker(ensure_installed(node_tracker_dir()), interval_ms=120_000)
    try:
        yield tracker.url
    finally:
        tracker.stop()


# --------------------------------------------------------------------------- attackers


class RawPeer:
    """A raw aiortc peer signalling through a tracker (the tracker client only relays SDPs). Idle
    unless ``on_channel`` makes it do something."""

    def __init__(
        self,
        tracker_url: str,
        info_hash: bytes,
        *,
        peer_id: bytes | None = None,
        reannounce: float = 3.0,
        on_channel: Callable[[RTCDataChannel], None] | None = None,
    ) -> None:
        self.pcs: list[RTCPeerConnection] = []
        self._pending: dict[bytes, RTCPeerConnection] = {}
        self._on_channel = on_channel
        self._reannounce = reannounce
        self.client = TrackerClient(
            [tracker_url],
            info_hash=info_hash,
            peer_id=peer_id or os.urandom(20),
            make_offers=self._make_offers,
            on_offer=self._on_offer,
            on_answer=self._on_answer,
            on_offer_expired=self._expired,
            min_announce_interval=1.0,
        )
        self._task: asyncio.Task[None] | None = None

    def _pc(self) -> RTCPeerConnection:
        pc = RTCPeerConnection(rtc_configuration(RTC))
        self.pcs.append(pc)
        # Bounded: the oldest connections that never connected go; connected ones stay (an idle
        # Sybil keeps its slots).
        stale = [p for p in self.pcs if p.connectionState in ("new", "connecting", "failed", "closed")]
        for old in stale[: max(0, len(self.pcs) - 40)]:
            self.pcs.remove(old)
            asyncio.get_running_loop().create_task(old.close())
        return pc

    def _channel(self, channel: RTCDataChannel) -> None:
        if self._on_channel is not None:
            self._on_channel(channel)

    async def _make_offers(self, count: int) -> list[Offer]:
        offers = []
        for _ in range(min(count, 10 - len(self._pending))):
            pc = self._pc()
            channel = pc.createDataChannel("x")
            channel.on("open", lambda channel=channel: self._channel(channel))
            await pc.setLocalDescription(await pc.createOffer())
            offer_id = os.urandom(20)
            self._pending[offer_id] = pc
            offers.append(Offer(offer_id=offer_id, sdp=pc.localDescription.sdp))
        return offers

    async def _on_offer(self, remote: bytes, offer_id: bytes, sdp: str) -> str | None:
        pc = self._pc()
        pc.on("datachannel", self._channel)
        await set_remote(pc, sdp, "offer")
        await pc.setLocalDescription(await pc.createAnswer())
        return str(pc.localDescription.sdp)

    async def _on_answer(self, remote: bytes, offer_id: bytes, sdp: str) -> None:
        pc = self._pending.pop(offer_id, None)
        if pc is not None:
            await set_remote(pc, sdp, "answer")

    async def _expired(self, offer_id: bytes) -> None:
        pc = self._pending.pop(offer_id, None)
        if pc is not None:
            await pc.close()

    async def start(self) -> None:
        await self.client.start()

        async def keep_offering() -> None:
            while True:
                await asyncio.sleep(self._reannounce)
                self.client.announce_now()

        self._task = asyncio.get_running_loop().create_task(keep_offering())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
        await self.client.aclose()
        await asyncio.gather(*(pc.close() for pc in self.pcs), return_exceptions=True)


def liar_channel(wire_ids: dict[int, int]) -> Callable[[RTCDataChannel], None]:
    """On open: announce every segment; answer each request with junk of the right size."""

    def on_channel(channel: RTCDataChannel) -> None:
        decoder = wire.WireDecoder()
        for message in wire.encode_command(wire.SegmentsAnnouncement(loaded=tuple(wire_ids))):
            channel.send(message)

        def on_message(message: bytes | str) -> None:
            if isinstance(message, str):
                return
            for item in decoder.receive(message):
                if not isinstance(item, wire.SegmentRequest):
                    continue
                size = wire_ids.get(item.segment_id, 1000) - item.byte_offset
                key = {"segment_id": item.segment_id, "request_id": item.request_id}
                for out in wire.encode_command(wire.SegmentData(size=size, **key)):
                    channel.send(out)
                for chunk in wire.chunk_segment_data(b"\x5a" * size, max_message_size=16384):
                    channel.send(chunk)
                for out in wire.encode_command(wire.SegmentDataSendingCompleted(**key)):
                    channel.send(out)

        channel.on("message", on_message)

    return on_channel


async def fake_offer_sdp() -> str:
    pc = RTCPeerConnection(rtc_configuration(RTC))
    pc.createDataChannel("fake")
    await pc.setLocalDescription(await pc.createOffer())
    sdp = str(pc.localDescription.sdp)
    await pc.close()
    return sdp


def spam_announce(info_hash: bytes, sdp: str, peer_id: bytes) -> str:
    return json.dumps(
        {
            "action": "announce",
            "event": "started",
            "info_hash": encode_id(info_hash),
            "peer_id": encode_id(peer_id),
            "numwant": 5,
            "uploaded": 0,
            "downloaded": 0,
            "offers": [
                {"offer": {"type": "offer", "sdp": sdp}, "offer_id": encode_id(os.urandom(20))}
                for _ in range(5)
            ],
        },
        ensure_ascii=False,
    )


async def drain(ws: ClientConnection) -> None:
    with contextlib.suppress(Exception):
        async for _ in ws:
            pass


def stopped(info_hash: bytes, peer_id: bytes) -> str:
    message = {"action": "announce", "event": "stopped", "info_hash": encode_id(info_hash)}
    return json.dumps({**message, "peer_id": encode_id(peer_id), "numwant": 0}, ensure_ascii=False)


async def spam(
    tracker_url: str, info_hash: bytes, *, sockets: bool, stop: asyncio.Event, leave: bool = False
) -> None:
    """A fresh peer id with 5 fake offers every 100 ms: on one socket, or a new socket each;
    ``leave``: each id sends ``stopped`` right after its offers went out, so the swarm stays small
    (the offers aim at peer slots, not at diluting the tracker's swarm)."""
    sdp = await fake_offer_sdp()
    opened: list[tuple[ClientConnection, asyncio.Task[None]]] = []
    try:
        while not stop.is_set():
            if sockets or not opened:
                ws = await connect(tracker_url, max_size=None)
                opened.append((ws, asyncio.get_running_loop().create_task(drain(ws))))
            peer_id = os.urandom(20)
            with contextlib.suppress(Exception):
                await opened[-1][0].send(spam_announce(info_hash, sdp, peer_id))
                if leave:
                    await asyncio.sleep(0.02)
                    await opened[-1][0].send(stopped(info_hash, peer_id))
            while len(opened) > 50:
                old, task = opened.pop(0)
                task.cancel()
                await old.close()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 0.1)
    finally:
        for ws, task in opened:
            task.cancel()
            with contextlib.suppress(Exception):
                await ws.close()


# --------------------------------------------------------------------------- one run


def config_for(trackers: tuple[str, ...]) -> LoaderConfig:
    return LoaderConfig(tracker_announce=trackers, rtc_config=RTC, integrity_sha256=True)


async def attack(
    case: str, tracker_url: str, info_hash: bytes, seeder_id: bytes, wire_ids: dict[int, int]
) -> None:
    """Run one attack until cancelled (in its own process: attackers have their own machines)."""
    stop = asyncio.Event()
    attackers: list[RawPeer] = []
    try:
        if case == "sybils":
            attackers = [RawPeer(tracker_url, info_hash) for _ in range(20)]
        elif case == "impersonator":
            attackers = [
                RawPeer(tracker_url, info_hash, peer_id=seeder_id, on_channel=liar_channel(wire_ids))
            ]
        for attacker in attackers:
            await attacker.start()
        if case in ("spam", "spam-sockets", "spam-leaving"):
            await spam(
                tracker_url,
                info_hash,
                sockets=case == "spam-sockets",
                stop=stop,
                leave=case == "spam-leaving",
            )
        else:
            await asyncio.Event().wait()
    finally:
        stop.set()
        await asyncio.gather(*(a.stop() for a in attackers), return_exceptions=True)


async def attacker_process(case: str, tracker_url: str, seeder: HybridLoader) -> asyncio.subprocess.Process:
    playlist = seeder.playlist
    wire_ids = {
        swarm.segment_wire_id(
            SegmentId(seeder.rendition, s.id.sequence), live=False, first_sequence=playlist.media_sequence
        ): len((await seeder.get_segment(s)).data)
        for s in playlist.segments
    }
    spec = {
        "case": case,
        "tracker_url": tracker_url,
        "info_hash": seeder.info_hash().hex(),
        "seeder_id": seeder.peer_id.hex(),
        "wire_ids": wire_ids,
    }
    return await asyncio.create_subprocess_exec(
        sys.executable, __file__, "--attacker", json.dumps(spec), stdin=asyncio.subprocess.PIPE
    )


async def run(root: Path, case: str, *, attacked: bool, duration: float, tracker_kind: str) -> int:
    """Bytes the honest seeder uploaded to the victim while it played ``duration`` seconds."""
    async with contextlib.AsyncExitStack() as stack:
        honest_url = await stack.enter_async_context(a_tracker(tracker_kind))
        second_url = await stack.enter_async_context(a_tracker(tracker_kind))
        origin = stack.enter_context(OriginServer(root))
        url = origin.url_for("master.m3u8")
        seeder = await stack.enter_async_context(open_loader(url, config=config_for((honest_url,)), seed=1))
        for segment in seeder.playlist.segments:  # the seeder holds the whole stream
            await seeder.get_segment(segment)
        # The impersonator comes through a second (hostile) tracker the victim also uses.
        victim_trackers = (honest_url, second_url) if case == "impersonator" else (honest_url,)
        process = None
        if attacked:
            process = await attacker_process(case, victim_trackers[-1], seeder)
            await asyncio.sleep(5.0)  # the attack is on before the victim joins
        try:
            victim = await stack.enter_async_context(
                open_loader(url, config=config_for(victim_trackers), seed=2)
            )
            await play(victim, duration=duration, forward_buffer=30.0, tick=0.25)
            got = seeder.statistics().uploaded_bytes_by_peer.get(victim.peer_id.hex(), 0)
            if VERBOSE:
                for name, loader in (("victim", victim), ("seeder", seeder)):
                    manager, client = loader._peers, loader._tracker_client
                    print(
                        f"  {case} attacked={attacked} {name}: links={manager and manager.statistics()} "
                        f"tracker={client and client.statistics()}",
                        file=sys.stderr,
                    )
        finally:
            if process is not None:
                process.terminate()
                await process.wait()
        return int(got)


async def main() -> None:
    if len(sys.argv) == 3 and sys.argv[1] == "--attacker":
        spec = json.loads(sys.argv[2])
        with restrict_ice_to_loopback(), contextlib.suppress(asyncio.CancelledError):
            await attack(
                spec["case"],
                spec["tracker_url"],
                bytes.fromhex(spec["info_hash"]),
                bytes.fromhex(spec["seeder_id"]),
                {int(k): v for k, v in spec["wire_ids"].items()},
            )
        return
    if VERBOSE:
        import logging

        logging.basicConfig(level=logging.WARNING, format="%(relativeCreated)d %(name)s %(message)s")
        logging.getLogger("p2ploader.aio.peers").setLevel(logging.DEBUG)
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--cases",
        nargs="+",
        default=["sybils", "spam", "spam-sockets", "spam-leaving", "impersonator"],
        help="attacks to run",
    )
    parser.add_argument("--duration", type=float, default=40.0, help="seconds the victim plays")
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--tracker", choices=["embedded", "node"], default="embedded")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "stream"
        shutil.copytree(make_stream(5), root)
        hash_playlists(root / "master.m3u8")
        lines = []
        with restrict_ice_to_loopback():
            for case in args.cases:
                base, hit = [], []
                for _ in range(args.repeat):
                    kw: dict[str, Any] = {"duration": args.duration, "tracker_kind": args.tracker}
                    if not os.environ.get("ECLIPSE_ATTACK_ONLY"):
                        base.append(await run(root, case, attacked=False, **kw))
                    hit.append(await run(root, case, attacked=True, **kw))
                b, h = statistics.median(base or [0]), statistics.median(hit)
                ratio = h / b if b else float("nan")
                print(
                    f"{case}: seeder to victim {h / 1e6:.2f} MB under attack, {b / 1e6:.2f} MB without "
                    f"(runs: {hit} vs {base})",
                    flush=True,
                )
                lines.append(f"RESULT eclipse case={case} tracker={args.tracker} p2p_vs_honest={ratio:.2f}")
    for line in lines:
        print(line)


if __name__ == "__main__":
    asyncio.run(main())
