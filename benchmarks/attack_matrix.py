"""Attack matrix: one victim loader against one hostile behaviour per case, measured.

Each case runs a real local origin (:class:`p2ploader.testing.origin.OriginServer`; a 2-second-segment
MPEG-TS stream, VOD, or live for the ``faq-live`` preset, with SHA-256 digests published by
``p2ploader hash-playlist`` where the case needs them), the embedded tracker, and a victim
:class:`~p2ploader.aio.loader.HybridLoader` that plays rendition ``v1`` in real time with the headless
player (:func:`p2ploader.play`) for ``--duration`` seconds. The victim runs in a child process of its
own, so the CPU seconds and the peak RSS reported are that process's alone (``getrusage`` of the
child, all its threads: CPU from just before the loader opens to just after it closed; RSS is its
peak, Python and aiortc included, so the ``honest`` case is the floor). The hostile peers are
:class:`tests.hostile.counting_peer.CountingPeer` scripts in this process, linked to the victim over
real aiortc on 127.0.0.1: they make the offer, the victim's real peer manager answers it (the
signalling a tracker would relay, passed over the child's stdin/stdout). Only the offer-spamming case
goes through the tracker for its attack, as its finding is about the tracker; the peers answering
requests their own way also announce themselves to the tracker (no offers), so that the victim's
tracker counts them as it would a real attacker (``faq-vod``'s initial P2P mode ends at once in a
swarm of one).

Per case, one line at the end::

    RESULT attack case=NAME wrong_segments=N stalls=N p2p_vs_honest=R victim_cpu_s=S victim_rss_mb=M

* ``wrong_segments``: segments handed to the player whose bytes differ from the origin's.
* ``stalls``: the player's stalls (:class:`p2ploader.PlaybackReport`).
* ``p2p_vs_honest``: P2P bytes exchanged with the honest peer in this case over the same figure in
  the ``honest`` case of the same run (which is therefore always run, and is 1.00 by definition). In
  the cases where the victim downloads (``sybils-20``, ``offer-spam``, ``impersonator``) the honest
  peer is a seeder holding the whole stream and the figure is the bytes of the P2P segments the
  victim accepted from it; where the victim is the seeder (``non-reader``, ``request-flood``) the
  honest peer is a viewer requesting one of the victim's cached segments every 0.5 s and the figure
  is the bytes it received. ``-`` when the case has no honest peer; ``nan`` when the baseline got 0.
* ``victim_cpu_s``, ``victim_rss_mb``: see above.

A ``DETAIL`` line per case (printed as each case ends) gives more: startup seconds (and, for the
``silent-startup-*`` cases, the startup of the same victim with no peer at all, run first in the same
case), P2P and HTTP megabytes, bans, strikes, integrity failures, and what the attacker sent.

Cases (``--list`` prints them; ``--case NAME`` runs any, repeatable):

* ``honest``: the baseline: an honest seeder and an honest requester, nothing hostile.
* ``liar-sha256``: a peer sending wrong bytes for every segment; digests published and
  ``integrity_sha256`` on. ``liar-digests-unused``: the same liar, digests published, settings left
  at their defaults. ``liar-spot``: the same liar, no digests, three spot checks per segment.
* ``prefix-stall-<preset>-<integrity>-<ranges|noranges>``: a peer sending a correct data header,
  then size-1 wrong bytes, then nothing. Presets ``defaults`` (``LoaderConfig()``), ``faq-vod``,
  ``faq-live`` (a live stream); integrity ``off`` (no digests), ``digests`` (published and
  ``integrity_sha256`` on), ``spot`` (no digests, ``integrity_spot_checks=3``); ``ranges`` sets
  ``http_download_ranges``. All 18 combinations can be run; the default run takes ten: every
  integrity x ranges for ``defaults``, every integrity for ``faq-vod`` with its own ranges on, and
  ``faq-live`` with digests and ranges on.
* ``non-reader``: a peer that requests the victim's cached segments and never reads (its SCTP
  stack drops the data unacknowledged).
* ``request-flood``: a peer requesting the victim's cached segments 90 times a second (under the
  100/s command guard), reading everything.
* ``announce-flood``: two peers each sending 20,000-id announcements 95 times a second.
* ``oversized-segment``: a peer answering every request with a data header announcing 100 MiB and
  then junk (paced by the channel's buffer; at most 100 MiB per request).
* ``bytes-after-cancel``: a peer sending a data header and nothing until the victim cancels the
  request (its stall timeout), then junk, up to 150 MiB per case.
* ``silent-startup-<preset>``: a peer announcing every segment and sending nothing, from the
  start; startup against the no-peer startup (DETAIL).
* ``sybils-20``: 20 idle peers connect first, then the honest seeder tries (and retries every
  second).
* ``offer-spam``: one WebSocket to the embedded tracker announcing a fresh peer id every 100 ms
  with ten offers each (SDP from a real, never-completed peer connection); the honest seeder
  retries every second.
* ``impersonator``: a peer using the honest seeder's peer id breaks the protocol three times
  before the seeder arrives; the seeder then tries (and retries every second).

Settings: the victim's ``rtc_config`` is ``{"iceServers": []}`` (loopback) and its tracker is the
embedded one; nothing else is overridden beyond what the case names. Every loop is bounded in count
and time; everything binds 127.0.0.1; the victim process is killed if it outlives its case.

    python benchmarks/attack_matrix.py [--quick] [--case NAME ...] [--duration S] [--list]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import math
import os
import resource
import shutil
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

# Run as a script (``python benchmarks/attack_matrix.py``): the project root holds ``p2ploader`` and
# the hostile peers in ``tests/hostile``.
SCRIPT = str(Path(__file__).resolve())
PROJECT_ROOT = Path(__file__).resolve().parents[1]
if str(PROJECT_ROOT) not in sys.path:
    sys.path.insert(0, str(PROJECT_ROOT))

import attrs  # noqa: E402
import websockets  # noqa: E402
from aiortc import RTCPeerConnection  # noqa: E402

from p2ploader import PRESETS, LoaderConfig, open_loader, play  # noqa: E402
from p2ploader.aio.loader import LoadedSegment  # noqa: E402
from p2ploader.aio.webrtc import restrict_ice_to_loopback, rtc_configuration  # noqa: E402
from p2ploader.app.hashplaylist import hash_playlists  # noqa: E402
from p2ploader.core import notifications as nt  # noqa: E402
from p2ploader.core import swarm, wire  # noqa: E402
from p2ploader.core.bans import STRIKES_BEFORE_BAN  # noqa: E402
from p2ploader.core.segments import SegmentId  # noqa: E402
from p2ploader.sample import sample_path, vod_segment_bytes  # noqa: E402
from p2ploader.testing.origin import LiveSettings, OriginServer  # noqa: E402
from p2ploader.tracker import TrackerServer  # noqa: E402
from tests.hostile.counting_peer import CountingPeer  # noqa: E402
from tests.hostile.scripted import CHUNK, Refused, ScriptedPeer, honest  # noqa: E402

FULL_DURATION = 30.0
"""Seconds of playback per case by default."""
QUICK_DURATION = 4.0
"""Seconds of playback per case with ``--quick``."""
RENDITION = "v1"
LIVE_WINDOW = 6
"""Segments in the live playlist window (``faq-live``)."""
MIB = 1 << 20


# --------------------------------------------------------------------------- cases


@attrs.frozen
class Case:
    name: str
    attack: str
    preset: str = "defaults"
    """``defaults`` (``LoaderConfig()``), ``faq-vod`` or ``faq-live`` (a live stream)."""
    integrity: str = "off"
    """``off``, ``digests`` (published, ``integrity_sha256`` on), ``unused`` (published, settings
    untouched) or ``spot`` (no digests, ``integrity_spot_checks=3``)."""
    ranges: bool | None = None
    """``http_download_ranges``; ``None`` keeps the preset's."""
    seeder: bool = False
    """An honest seeder joins (the victim downloads from it)."""
    requester: bool = False
    """An honest viewer requests the victim's cached segments."""
    startup_control: bool = False
    """Run the same victim with no peer first, for its startup time."""
    default_run: bool = True

    @property
    def hashed(self) -> bool:
        return self.integrity in ("digests", "unused")

    @property
    def live(self) -> bool:
        return self.preset == "faq-live"


def _cases() -> dict[str, Case]:
    cases = [
        Case("honest", "none", seeder=True, requester=True),
        Case("liar-sha256", "liar", integrity="digests"),
        Case("liar-digests-unused", "liar", integrity="unused"),
        Case("liar-spot", "liar", integrity="spot"),
    ]
    for preset, integrity, ranges in itertools.product(
        ("defaults", "faq-vod", "faq-live"), ("off", "digests", "spot"), (True, False)
    ):
        default_run = (
            preset == "defaults"
            or (preset == "faq-vod" and ranges)
            or (preset == "faq-live" and integrity == "digests" and ranges)
        )
        name = f"prefix-stall-{preset}-{integrity}-{'ranges' if ranges else 'noranges'}"
        cases.append(Case(name, "prefix-stall", preset, integrity, ranges, default_run=default_run))
    cases += [
        Case("non-reader", "non-reader", requester=True),
        Case("request-flood", "request-flood", requester=True),
        Case("announce-flood", "announce-flood"),
        Case("oversized-segment", "oversized"),
        Case("bytes-after-cancel", "after-cancel"),
    ]
    cases += [
        Case(f"silent-startup-{preset}", "silent", preset, startup_control=True)
        for preset in ("defaults", "faq-vod", "faq-live")
    ]
    cases += [
        Case("sybils-20", "sybils", seeder=True),
        Case("offer-spam", "offer-spam", seeder=True),
        Case("impersonator", "impersonator", seeder=True),
    ]
    return {case.name: case for case in cases}


CASES = _cases()


def victim_config(spec: dict[str, Any]) -> LoaderConfig:
    """The victim's settings: the case's preset, its integrity and ranges, the embedded tracker."""
    base = PRESETS["faq-vod"] if spec["preset"] == "faq-vod" else LoaderConfig()
    changes: dict[str, Any] = {"tracker_announce": (spec["tracker"],), "rtc_config": {"iceServers": []}}
    if spec["ranges"] is not None:
        changes["http_download_ranges"] = spec["ranges"]
    if spec["integrity"] == "digests":
        changes["integrity_sha256"] = True
    elif spec["integrity"] == "spot":
        changes["integrity_spot_checks"] = 3
    return base.evolve(**changes)


# --------------------------------------------------------------------------- the stream


class StreamBytes:
    """The origin's bytes of each media sequence: the VOD segment, or for live, VOD segment
    ``msn % count`` (as :class:`~p2ploader.testing.origin.OriginServer` serves them)."""

    def __init__(self, vod: list[bytes], *, live: bool) -> None:
        self.vod = vod
        self.live = live

    def get(self, sequence: int, default: bytes | None = None) -> bytes | None:
        if self.live:
            return self.vod[sequence % len(self.vod)] if sequence >= 0 else default
        return self.vod[sequence] if 0 <= sequence < len(self.vod) else default

    def __getitem__(self, sequence: int) -> bytes:
        data = self.get(sequence)
        if data is None:
            raise KeyError(sequence)
        return data


def segment_count(duration: float) -> int:
    """VOD segments (2 s each) for ``duration`` seconds of play, with room for prefetching."""
    return max(30, math.ceil((duration + 40.0) / 2.0))


def build_stream(dest: Path, *, count: int, hashed: bool) -> Path:
    """The bundled ``ts`` sample with rendition ``v1`` (360p) lengthened to ``count`` segments (its
    ten segments repeated, one file each); with ``hashed``, ``p2ploader hash-playlist`` applied."""
    root = dest / "ts"
    shutil.copytree(sample_path("ts"), root)
    media = root / "360p"
    lines = (media / "index.m3u8").read_text(encoding="utf-8").splitlines()
    header = [line for line in lines if line.startswith("#EXT") and not line.startswith("#EXTINF")]
    header = [line for line in header if line != "#EXT-X-ENDLIST"]
    entries = [(lines[i], lines[i + 1]) for i, line in enumerate(lines) if line.startswith("#EXTINF")]
    out = list(header)
    for index in range(count):
        extinf, uri = entries[index % len(entries)]
        name = f"long_{index:05d}.ts"
        shutil.copyfile(media / uri, media / name)
        out += [extinf, name]
    out.append("#EXT-X-ENDLIST")
    (media / "index.m3u8").write_text("\n".join(out) + "\n", encoding="utf-8")
    if hashed:
        hash_playlists(root / "master.m3u8")
    return root


# --------------------------------------------------------------------------- the victim process


def _process_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _peak_rss_mb() -> float:
    """This process's peak resident set in MiB: ``VmHWM`` (its own address space's high-water mark;
    ``ru_maxrss`` would include the parent's, which Linux carries over ``fork`` and ``exec``)."""
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _emit(message: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()


async def victim_main(spec: dict[str, Any]) -> None:
    """The victim process: open the loader, answer offers relayed on stdin, play when told, report.

    Protocol (JSON lines): it sends ``ready``, a ``status`` every 0.5 s, an ``answer`` per ``offer``,
    and finally ``result``; it reads ``go``, ``offer`` and ``stop``.
    """
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=1 << 20)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    root = Path(spec["root"])
    expected = StreamBytes(vod_segment_bytes(root / "360p" / "index.m3u8"), live=spec["live"])
    config = victim_config(spec)
    go, stop = asyncio.Event(), asyncio.Event()
    p2p_by_peer: dict[str, int] = {}
    banned: list[str] = []
    strike_reasons: dict[str, int] = {}
    counts = {"misbehaved": 0, "integrity_failures": 0, "segments": 0, "wrong": 0}
    tasks: set[asyncio.Task[None]] = set()

    def on_event(event: nt.Notification) -> None:
        if isinstance(event, nt.SegmentLoaded) and event.source == "p2p" and event.peer_id:
            p2p_by_peer[event.peer_id] = p2p_by_peer.get(event.peer_id, 0) + event.size
        elif isinstance(event, nt.PeerBanned):
            banned.append(event.peer_id)
        elif isinstance(event, nt.PeerMisbehaved):
            counts["misbehaved"] += 1
            reason = event.reason[:60]
            if reason in strike_reasons or len(strike_reasons) < 8:
                strike_reasons[reason] = strike_reasons.get(reason, 0) + 1
        elif isinstance(event, nt.IntegrityCheckFailed):
            counts["integrity_failures"] += 1

    def on_segment(loaded: LoadedSegment) -> None:
        counts["segments"] += 1
        if loaded.data != expected.get(loaded.segment.id.sequence):
            counts["wrong"] += 1

    cpu_at_start = _process_cpu()
    with restrict_ice_to_loopback():
        async with open_loader(spec["url"], config=config, rendition=RENDITION, seed=1) as loader:
            endpoint = loader.swarm_endpoint
            assert endpoint is not None, "the victim has not joined a swarm"
            loader.add_listener(on_event)
            _emit(
                {
                    "ready": {
                        "rendition": endpoint.rendition,
                        "live": endpoint.live,
                        "first_sequence": endpoint.first_sequence,
                        "peer_id": loader.peer_id.hex(),
                        "info_hash": loader.info_hash().hex(),
                    }
                }
            )

            async def answer(request: dict[str, Any]) -> None:
                sdp = await endpoint.answer_offer(
                    bytes.fromhex(request["peer_id"]), os.urandom(20), request["sdp"]
                )
                _emit({"answer": {"id": request["id"], "sdp": sdp}})

            async def commands() -> None:
                while line := await reader.readline():
                    message = json.loads(line)
                    if "go" in message:
                        go.set()
                    elif "stop" in message:
                        stop.set()
                        go.set()
                    elif "offer" in message:
                        task = loop.create_task(answer(message["offer"]))
                        tasks.add(task)
                        task.add_done_callback(tasks.discard)
                stop.set()  # the benchmark went away
                go.set()

            async def status() -> None:
                while True:
                    stats = loader.statistics()
                    window = [s.id.sequence for s in loader.playlist.segments[-LIVE_WINDOW:]]
                    _emit(
                        {"status": {"room": endpoint.room, "peers": stats.peers_connected, "window": window}}
                    )
                    await asyncio.sleep(0.5)

            background = [loop.create_task(commands()), loop.create_task(status())]
            try:
                await asyncio.wait_for(go.wait(), 180.0)
                report = None
                if not stop.is_set():
                    report = await asyncio.wait_for(
                        play(loader, duration=spec["duration"], on_segment=on_segment, stop=stop),
                        spec["duration"] + 60.0,
                    )
                stats = loader.statistics()
            finally:
                for task in [*background, *tasks]:
                    task.cancel()
                await asyncio.gather(*background, *tasks, return_exceptions=True)
    cpu = _process_cpu() - cpu_at_start
    _emit(
        {
            "result": {
                "wrong_segments": counts["wrong"],
                "segments_played": counts["segments"],
                "stalls": report.stalls if report else -1,
                "rebuffer_s": report.rebuffer_time if report else None,
                "startup_s": report.startup_time if report else None,
                "p2p_bytes": stats.p2p_bytes,
                "http_bytes": stats.http_bytes,
                "p2p_uploaded_bytes": stats.p2p_uploaded_bytes,
                "p2p_by_peer": p2p_by_peer,
                "uploaded_by_peer": dict(stats.uploaded_bytes_by_peer),
                "banned": banned,
                "misbehaved": counts["misbehaved"],
                "strike_reasons": strike_reasons,
                "integrity_failures": counts["integrity_failures"],
                "victim_cpu_s": cpu,
                "victim_rss_mb": _peak_rss_mb(),
            }
        }
    )


class RemoteVictim:
    """The victim process seen from the attackers: the parts of its swarm endpoint a
    :class:`~tests.hostile.scripted.ScriptedPeer` uses (``rendition``, ``wire_id``, ``sequence_of``,
    ``answer_offer``), relayed over the child's stdin and stdout, plus its status and result."""

    def __init__(self) -> None:
        self.ready = asyncio.Event()
        self.finished = asyncio.Event()
        self.info: dict[str, Any] = {}
        self.status: dict[str, Any] = {}
        self.result: dict[str, Any] | None = None
        self.proc: asyncio.subprocess.Process | None = None
        self.stderr_path: Path | None = None
        self._answers: dict[int, asyncio.Future[str | None]] = {}
        self._ids = itertools.count()
        self._reader: asyncio.Task[None] | None = None

    @property
    def swarm_endpoint(self) -> RemoteVictim:  # what ScriptedPeer reads from a loader
        return self

    @property
    def rendition(self) -> str:
        return str(self.info["rendition"])

    @property
    def hex_id(self) -> str:
        return str(self.info["peer_id"])

    def wire_id(self, sequence: int) -> int:
        return swarm.segment_wire_id(
            SegmentId(self.rendition, sequence),
            live=self.info["live"],
            first_sequence=self.info["first_sequence"],
        )

    def sequence_of(self, wire_id: int) -> int:
        return swarm.segment_id_from_wire(
            self.rendition, wire_id, live=self.info["live"], first_sequence=self.info["first_sequence"]
        ).sequence

    async def start(self, spec: dict[str, Any], stderr_path: Path) -> None:
        self.stderr_path = stderr_path
        with stderr_path.open("wb") as stderr:
            self.proc = await asyncio.create_subprocess_exec(
                sys.executable,
                SCRIPT,
                "--victim",
                json.dumps(spec),
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=stderr,
                limit=1 << 22,
                cwd=str(PROJECT_ROOT),
            )
        self._reader = asyncio.get_running_loop().create_task(self._read())

    async def _read(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        try:
            while line := await self.proc.stdout.readline():
                message = json.loads(line)
                if "ready" in message:
                    self.info = message["ready"]
                    self.ready.set()
                elif "status" in message:
                    self.status = message["status"]
                elif "answer" in message:
                    future = self._answers.pop(message["answer"]["id"], None)
                    if future is not None and not future.done():
                        future.set_result(message["answer"]["sdp"])
                elif "result" in message:
                    self.result = message["result"]
        finally:
            self.finished.set()
            for future in self._answers.values():
                if not future.done():
                    future.set_result(None)

    def _send(self, message: dict[str, Any]) -> None:
        if self.proc is not None and self.proc.stdin is not None and not self.proc.stdin.is_closing():
            self.proc.stdin.write((json.dumps(message) + "\n").encode())

    def go(self) -> None:
        self._send({"go": True})

    async def answer_offer(self, remote_peer_id: bytes, offer_id: bytes, sdp: str) -> str | None:
        if self.finished.is_set():
            return None
        request_id = next(self._ids)
        future: asyncio.Future[str | None] = asyncio.get_running_loop().create_future()
        self._answers[request_id] = future
        self._send({"offer": {"id": request_id, "peer_id": remote_peer_id.hex(), "sdp": sdp}})
        return await future

    def stderr_tail(self, lines: int = 15) -> str:
        if self.stderr_path is None or not self.stderr_path.exists():
            return ""
        return "\n".join(self.stderr_path.read_text(errors="replace").splitlines()[-lines:])

    async def close(self) -> None:
        """Ask the victim to stop; kill it if it has not exited within 20 s."""
        if self.proc is None:
            return
        if self.proc.returncode is None:
            self._send({"stop": True})
            with contextlib.suppress(Exception):
                assert self.proc.stdin is not None
                self.proc.stdin.close()
            try:
                await asyncio.wait_for(self.proc.wait(), 20.0)
            except TimeoutError:
                self.proc.kill()
                await self.proc.wait()
        if self._reader is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._reader, 5.0)


# --------------------------------------------------------------------------- the attackers' side


def xor(data: bytes) -> bytes:
    return bytes(b ^ 0x5A for b in data)


@attrs.define
class Context:
    """One case's attackers: the victim, the stream, and what they did (for the DETAIL line)."""

    case: Case
    victim: RemoteVictim
    stream: StreamBytes
    tracker: TrackerServer
    duration: float
    deadline: float
    """Loop time after which no attacker starts anything new."""
    honest_id: bytes = attrs.Factory(lambda: os.urandom(20))
    peers: list[CountingPeer] = attrs.Factory(list)
    figures: dict[str, Any] = attrs.Factory(dict)

    def add(self, name: str, amount: float) -> None:
        self.figures[name] = self.figures.get(name, 0) + amount

    def peer(self, respond: Any = None, *, holds: bool = True, peer_id: bytes | None = None) -> CountingPeer:
        peer = CountingPeer(self.victim, self.stream if holds else {}, respond or honest, peer_id=peer_id)
        self.peers.append(peer)
        return peer

    def running(self) -> bool:
        return asyncio.get_running_loop().time() < self.deadline and not self.victim.finished.is_set()

    def announced_sequences(self) -> list[int]:
        """What a peer holding the stream announces: every VOD segment; the live window."""
        if self.stream.live:
            return list(self.victim.status.get("window", []))
        return list(range(len(self.stream.vod)))

    async def keep_announcing(self, peer: CountingPeer) -> None:
        """Announce the stream once (VOD) or the live window every second, while the link lasts."""
        sent: list[int] = []
        while peer.is_open and self.running():
            sequences = self.announced_sequences()
            if sequences and sequences != sent:
                peer.announce(sequences)
                sent = sequences
            await asyncio.sleep(1.0)

    async def connect(self, peer: CountingPeer, role: str) -> bool:
        """Connect ``peer``; on a refusal count ``<role>_refused``, on a failure to connect (a
        timeout) ``<role>_connect_failed``, and return False."""
        try:
            await peer.connect(within=10.0)
        except (Refused, TimeoutError, ConnectionError) as exc:
            await peer.close()
            self.add(f"{role}_{'refused' if isinstance(exc, Refused) else 'connect_failed'}", 1)
            return False
        return True


async def poll_until(condition: Callable[[], object], *, within: float, interval: float = 0.02) -> bool:
    """Check ``condition`` every ``interval`` seconds for at most ``within`` seconds; its last value."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while not condition():
        if loop.time() >= deadline:
            return False
        await asyncio.sleep(interval)
    return True


async def sleep_until_stopped(ctx: Context, peer: ScriptedPeer) -> None:
    await poll_until(
        lambda: not ctx.running() or peer.closed.is_set(), within=ctx.duration + 120, interval=0.2
    )


async def tracker_presence(ctx: Context, peer_id: bytes) -> None:
    """Be a member of the victim's swarm at the tracker, as a peer found through it would be:
    announce ``peer_id`` (no offers) every 5 s, reading and dropping whatever the tracker relays.
    The tracker's peer count tells the victim it is not alone (``faq-vod``'s initial P2P mode)."""
    info_hash = bytes.fromhex(ctx.victim.info["info_hash"]).decode("latin-1")
    message = {
        "action": "announce",
        "info_hash": info_hash,
        "peer_id": peer_id.decode("latin-1"),
        "numwant": 0,
        "uploaded": 0,
        "downloaded": 0,
        "left": 1,
        "event": "started",
        "offers": [],
    }
    with contextlib.suppress(OSError, websockets.ConnectionClosed):
        async with websockets.connect(ctx.tracker.url, max_size=1 << 20) as ws:

            async def drain() -> None:
                async for _ in ws:
                    pass

            reader = asyncio.get_running_loop().create_task(drain())
            try:
                for _ in range(int((ctx.duration + 300) / 5.0)):
                    if not ctx.running():
                        break
                    await ws.send(json.dumps(message))
                    message["event"] = "update"
                    await asyncio.sleep(5.0)
            finally:
                reader.cancel()
                await asyncio.gather(reader, return_exceptions=True)


# Responders: how a hostile peer answers the victim's requests.


def liar(ctx: Context) -> Callable[[ScriptedPeer, wire.SegmentRequest], Awaitable[None]]:
    async def respond(peer: ScriptedPeer, request: wire.SegmentRequest) -> None:
        data = peer.data_for(request)
        if data is None:
            peer.send(wire.SegmentAbsent(segment_id=request.segment_id, request_id=request.request_id))
            return
        peer.send_data(request, xor(data))
        ctx.add("attacker_sent_mb", len(data) / MIB)

    return respond


def prefix_then_stall(ctx: Context) -> Callable[[ScriptedPeer, wire.SegmentRequest], Awaitable[None]]:
    async def respond(peer: ScriptedPeer, request: wire.SegmentRequest) -> None:
        data = peer.data_for(request)
        if data is None or len(data) < 2:
            peer.send(wire.SegmentAbsent(segment_id=request.segment_id, request_id=request.request_id))
            return
        peer.send(
            wire.SegmentData(segment_id=request.segment_id, request_id=request.request_id, size=len(data))
        )
        wrong = xor(data[:-1])
        for offset in range(0, len(wrong), CHUNK):
            peer.send_raw(wrong[offset : offset + CHUNK])
            await asyncio.sleep(0)
        ctx.add("attacker_sent_mb", len(wrong) / MIB)
        await sleep_until_stopped(ctx, peer)  # the last byte never comes

    return respond


async def silent(peer: ScriptedPeer, request: wire.SegmentRequest) -> None:
    return None


async def send_junk(ctx: Context, peer: CountingPeer, budget: int) -> int:
    """Send up to ``budget`` bytes of junk data chunks, paced by the channel's buffer."""
    junk = os.urandom(CHUNK)
    sent = 0
    while sent < budget and ctx.running() and await peer.send_paced(junk, within=5.0):
        sent += len(junk)
        if sent % (64 * CHUNK) == 0:
            await asyncio.sleep(0)
    ctx.add("attacker_sent_mb", sent / MIB)
    return sent


def oversized(ctx: Context) -> Callable[[ScriptedPeer, wire.SegmentRequest], Awaitable[None]]:
    size = 100 * MIB

    async def respond(peer: ScriptedPeer, request: wire.SegmentRequest) -> None:
        assert isinstance(peer, CountingPeer)
        peer.send(wire.SegmentData(segment_id=request.segment_id, request_id=request.request_id, size=size))
        await send_junk(ctx, peer, size)

    return respond


def after_cancel(ctx: Context) -> Callable[[ScriptedPeer, wire.SegmentRequest], Awaitable[None]]:
    """A data header, then nothing until the victim cancels (its stall timeout), then junk, which
    the victim drops as the tail of a cancelled transfer. While it sends junk it answers new
    requests "absent", and it only starts while no other request of the victim has a header from
    it: a data header would make the junk count towards that request (a strike, not this attack)."""
    budget = {"left": 150 * MIB}
    blasting = {"now": False}
    open_headers = {"count": 0}

    async def respond(peer: ScriptedPeer, request: wire.SegmentRequest) -> None:
        assert isinstance(peer, CountingPeer)
        if blasting["now"] or budget["left"] <= 0:
            peer.send(wire.SegmentAbsent(segment_id=request.segment_id, request_id=request.request_id))
            return
        data = peer.data_for(request)
        size = len(data) if data else 100_000
        key = (request.segment_id, request.request_id)
        peer.send(wire.SegmentData(segment_id=request.segment_id, request_id=request.request_id, size=size))
        open_headers["count"] += 1
        try:
            await poll_until(
                lambda: key in peer.cancelled_requests or not ctx.running() or peer.closed.is_set(),
                within=30.0,
            )
        finally:
            open_headers["count"] -= 1
        if key not in peer.cancelled_requests or blasting["now"] or open_headers["count"]:
            return
        ctx.add("cancels_seen", 1)
        blasting["now"] = True
        try:
            budget["left"] -= await send_junk(ctx, peer, budget["left"])
        finally:
            blasting["now"] = False

    return respond


# Honest peers.


async def honest_seeder(ctx: Context) -> None:
    """The honest seeder: connects (again every second while refused or dropped) and serves the
    origin's bytes of every segment it announces."""
    while ctx.running():
        peer = ctx.peer(honest, peer_id=ctx.honest_id)
        if await ctx.connect(peer, "seeder"):
            ctx.add("seeder_connections", 1)
            await ctx.keep_announcing(peer)
            await peer.close()
        await asyncio.sleep(1.0)


async def honest_requester(ctx: Context) -> None:
    """An honest viewer of the victim: every 0.5 s it requests one of the segments the victim
    announced (round robin), waiting up to 5 s for the answer; connects again if dropped."""
    request_ids = itertools.count(1)
    while ctx.running():
        peer = ctx.peer(holds=False)
        if not await ctx.connect(peer, "requester"):
            await asyncio.sleep(1.0)
            continue
        turn = 0
        try:
            while peer.is_open and ctx.running():
                cached = sorted(peer.announced)
                if not cached:
                    await asyncio.sleep(0.2)
                    continue
                sequence = cached[turn % len(cached)]
                turn += 1
                request_id = next(request_ids)
                wire_id = peer.wire_id(sequence)
                peer.send(wire.SegmentRequest(segment_id=wire_id, request_id=request_id))
                started = asyncio.get_running_loop().time()
                while request_id not in peer.ended and peer.is_open and ctx.running():
                    if asyncio.get_running_loop().time() - started > 5.0:
                        peer.send(wire.CancelSegmentRequest(segment_id=wire_id, request_id=request_id))
                        ctx.add("requester_timeouts", 1)
                        break
                    await asyncio.sleep(0.02)
                await asyncio.sleep(0.5)
        finally:
            ctx.add("requester_bytes", peer.data_bytes)
            await peer.close()


# Attacks: a setup before playback starts, and what runs during it.


class Attack:
    async def setup(self, ctx: Context) -> None:
        return None

    async def during(self, ctx: Context) -> None:
        return None


class NoAttack(Attack):
    pass


class Responder(Attack):
    """One hostile peer holding the stream, announcing it, answering requests its own way."""

    def __init__(self, make: Callable[[Context], Any] | None = None, respond: Any = None) -> None:
        self.make = make
        self.respond = respond

    async def setup(self, ctx: Context) -> None:
        respond = self.make(ctx) if self.make is not None else self.respond
        self.peer = ctx.peer(respond)
        self.presence = asyncio.get_running_loop().create_task(tracker_presence(ctx, self.peer.peer_id))
        if await ctx.connect(self.peer, "attacker"):
            sequences = ctx.announced_sequences()
            if sequences:
                self.peer.announce(sequences)

    async def during(self, ctx: Context) -> None:
        try:
            await ctx.keep_announcing(self.peer)
            await sleep_until_stopped(ctx, self.peer)
        finally:
            self.presence.cancel()
            await asyncio.gather(self.presence, return_exceptions=True)


async def cached_sequences(ctx: Context, peer: CountingPeer) -> list[int]:
    await poll_until(
        lambda: peer.announced or not (ctx.running() and peer.is_open), within=60.0, interval=0.1
    )
    return sorted(peer.announced)


class NonReader(Attack):
    """Requests the victim's cached segments and never reads: its SCTP stack drops the data
    unacknowledged, so the victim's send buffer towards it only grows. It requests until more than
    the victim's 1 MiB drain threshold must be queued (an upload then waits for the drain), and then
    stays quiet: another request would cancel the waiting upload."""

    requests = 24
    interval = 0.25

    async def setup(self, ctx: Context) -> None:
        self.peer = ctx.peer(holds=False)
        await ctx.connect(self.peer, "attacker")

    async def during(self, ctx: Context) -> None:
        peer = self.peer
        await poll_until(lambda: len(peer.announced) >= 3 or not ctx.running(), within=60.0, interval=0.1)
        cached = sorted(peer.announced)
        if not cached:
            return
        peer.stop_reading()  # from here on it sees nothing the victim sends
        for request_id in range(1, self.requests + 1):
            if not (peer.is_open and ctx.running()):
                break
            sequence = cached[request_id % len(cached)]
            peer.send(wire.SegmentRequest(segment_id=peer.wire_id(sequence), request_id=request_id))
            ctx.add("attacker_requests", 1)
            await asyncio.sleep(self.interval)
        await sleep_until_stopped(ctx, peer)


class RequestFlood(Attack):
    rate = 90.0  # requests per second, under the 100/s command guard

    async def setup(self, ctx: Context) -> None:
        self.peer = ctx.peer(holds=False)
        await ctx.connect(self.peer, "attacker")

    async def during(self, ctx: Context) -> None:
        peer = self.peer
        if not await cached_sequences(ctx, peer):
            return
        loop = asyncio.get_running_loop()
        next_at = loop.time()
        for request_id in range(1, int(self.rate * (ctx.duration + 60)) + 1):
            if not (peer.is_open and ctx.running()):
                break
            cached = sorted(peer.announced)
            peer.send(
                wire.SegmentRequest(
                    segment_id=peer.wire_id(cached[request_id % len(cached)]), request_id=request_id
                )
            )
            next_at += 1.0 / self.rate
            await asyncio.sleep(max(0.0, next_at - loop.time()))
        ctx.add("attacker_requests", request_id)
        ctx.add("attacker_received_mb", peer.data_bytes / MIB)


class AnnounceFlood(Attack):
    peers_count = 2
    ids = 20_000
    rate = 95.0  # announcements per second per peer, under the 100/s command guard

    async def setup(self, ctx: Context) -> None:
        self.peers = [ctx.peer() for _ in range(self.peers_count)]
        for peer in self.peers:
            await ctx.connect(peer, "attacker")
        first = ctx.announced_sequences()[0] if ctx.stream.live and ctx.announced_sequences() else 0
        ids = tuple(self.peers[0].wire_id(first + i) for i in range(self.ids))
        self.messages = wire.encode_command(wire.SegmentsAnnouncement(loaded=ids))
        ctx.figures["announcement_bytes"] = sum(len(m) for m in self.messages)

    async def flood(self, ctx: Context, peer: CountingPeer) -> None:
        loop = asyncio.get_running_loop()
        next_at = loop.time()
        for _ in range(int(self.rate * (ctx.duration + 60))):
            if not (peer.is_open and ctx.running()):
                break
            for message in self.messages:
                await peer.send_paced(message, within=1.0)
            ctx.add("announcements_sent", 1)
            next_at += 1.0 / self.rate
            await asyncio.sleep(max(0.0, next_at - loop.time()))

    async def during(self, ctx: Context) -> None:
        await asyncio.gather(*(self.flood(ctx, peer) for peer in self.peers))


class Sybils(Attack):
    count = 20

    async def setup(self, ctx: Context) -> None:
        for _ in range(self.count):
            if await ctx.connect(ctx.peer(silent, holds=False), "sybil"):
                ctx.add("sybils_connected", 1)


class OfferSpam(Attack):
    """One WebSocket announcing a fresh peer id every 100 ms with ten offers each."""

    interval = 0.1
    offers = 10

    async def setup(self, ctx: Context) -> None:
        self.pc = RTCPeerConnection(rtc_configuration({"iceServers": []}))
        self.pc.createDataChannel("spam")
        await self.pc.setLocalDescription(await self.pc.createOffer())
        self.sdp = self.pc.localDescription.sdp
        self.task = asyncio.get_running_loop().create_task(self.spam(ctx))
        # Let the victim join the tracker and the spam reach it before the seeder tries.
        await poll_until(
            lambda: ctx.victim.status.get("room", 1) == 0,
            within=min(8.0, max(2.0, ctx.duration / 2)),
            interval=0.1,
        )
        ctx.figures["room_when_seeder_starts"] = ctx.victim.status.get("room")

    async def spam(self, ctx: Context) -> None:
        info_hash = bytes.fromhex(ctx.victim.info["info_hash"]).decode("latin-1")
        try:
            async with websockets.connect(ctx.tracker.url, max_size=1 << 20) as ws:

                async def drain() -> None:
                    async for _ in ws:
                        ctx.add("spam_replies", 1)

                reader = asyncio.get_running_loop().create_task(drain())
                try:
                    for _ in range(int((ctx.duration + 60) / self.interval)):
                        if not ctx.running():
                            break
                        message = {
                            "action": "announce",
                            "info_hash": info_hash,
                            "peer_id": os.urandom(20).decode("latin-1"),
                            "numwant": self.offers,
                            "uploaded": 0,
                            "downloaded": 0,
                            "event": "started",
                            "offers": [
                                {
                                    "offer": {"type": "offer", "sdp": self.sdp},
                                    "offer_id": os.urandom(20).decode("latin-1"),
                                }
                                for _ in range(self.offers)
                            ],
                        }
                        await ws.send(json.dumps(message))
                        ctx.add("spam_announces", 1)
                        await asyncio.sleep(self.interval)
                finally:
                    reader.cancel()
                    await asyncio.gather(reader, return_exceptions=True)
        except (OSError, websockets.ConnectionClosed) as exc:
            ctx.figures["spam_error"] = type(exc).__name__

    async def during(self, ctx: Context) -> None:
        try:
            await self.task
        finally:
            await self.pc.close()


class Impersonator(Attack):
    """Breaks the protocol under the honest seeder's id until that id is banned, before the seeder
    arrives (a connected peer's id cannot be taken over while its link is up)."""

    async def setup(self, ctx: Context) -> None:
        for _ in range(STRIKES_BEFORE_BAN):
            # The victim refuses the id while the previous link is still being torn down (or once
            # the id is banned): a few tries, half a second apart.
            for _attempt in range(6):
                peer = ctx.peer(holds=False, peer_id=ctx.honest_id)
                if await ctx.connect(peer, "impersonator"):
                    break
                await asyncio.sleep(0.5)
            else:
                break
            peer.send_raw(b"\x47" * 100)  # segment data without a header: one strike
            ctx.add("impersonator_strikes_sent", 1)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(peer.closed.wait(), 5.0)
            await peer.close()


ATTACKS: dict[str, Callable[[], Attack]] = {
    "none": NoAttack,
    "liar": lambda: Responder(liar),
    "prefix-stall": lambda: Responder(prefix_then_stall),
    "silent": lambda: Responder(respond=silent),
    "oversized": lambda: Responder(oversized),
    "after-cancel": lambda: Responder(after_cancel),
    "non-reader": NonReader,
    "request-flood": RequestFlood,
    "announce-flood": AnnounceFlood,
    "sybils": Sybils,
    "offer-spam": OfferSpam,
    "impersonator": Impersonator,
}


# --------------------------------------------------------------------------- one case


async def run_victim(
    case: Case,
    spec: dict[str, Any],
    stream: StreamBytes,
    tracker: TrackerServer,
    scratch: Path,
    *,
    attack: bool,
) -> dict[str, Any]:
    victim = RemoteVictim()
    await victim.start(spec, scratch / f"victim-{'attacked' if attack else 'control'}.log")
    loop = asyncio.get_running_loop()
    duration = spec["duration"]
    ctx = Context(case, victim, stream, tracker, duration, deadline=loop.time() + duration + 120.0)
    tasks: list[asyncio.Task[None]] = []
    try:
        ready = loop.create_task(victim.ready.wait())
        await asyncio.wait(
            [ready, loop.create_task(victim.finished.wait())], timeout=60.0, return_when="FIRST_COMPLETED"
        )
        if not victim.ready.is_set():
            raise RuntimeError(f"the victim did not start:\n{victim.stderr_tail()}")
        if attack:
            plan = ATTACKS[case.attack]()
            await asyncio.wait_for(plan.setup(ctx), 90.0)
            tasks.append(loop.create_task(plan.during(ctx)))
            if case.seeder:
                tasks.append(loop.create_task(honest_seeder(ctx)))
            if case.requester:
                tasks.append(loop.create_task(honest_requester(ctx)))
        ctx.deadline = loop.time() + duration + 60.0
        victim.go()
        try:
            await asyncio.wait_for(victim.finished.wait(), duration + 120.0)
        except TimeoutError:
            ctx.figures["victim_timeout"] = True
    finally:
        ctx.deadline = 0.0
        for task in tasks:
            task.cancel()
        results = await asyncio.gather(*tasks, return_exceptions=True)
        errors = [repr(r) for r in results if isinstance(r, Exception)]
        if errors:
            ctx.figures["attacker_errors"] = errors[:3]
        for peer in ctx.peers:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(peer.close(), 5.0)
        await victim.close()
    if victim.result is None:
        raise RuntimeError(f"the victim gave no result:\n{victim.stderr_tail()}")
    result = dict(victim.result)
    result["honest_seeder_bytes"] = result["p2p_by_peer"].get(ctx.honest_id.hex(), 0)
    result["banned_honest"] = ctx.honest_id.hex() in result["banned"]
    result["figures"] = ctx.figures
    return result


async def run_case(case: Case, duration: float) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="attack-matrix-") as tmp, restrict_ice_to_loopback():
        scratch = Path(tmp)
        root = build_stream(scratch, count=segment_count(duration), hashed=case.hashed)
        stream = StreamBytes(vod_segment_bytes(root / "360p" / "index.m3u8"), live=case.live)
        live = LiveSettings(window_segments=LIVE_WINDOW) if case.live else None
        with OriginServer(root, live=live) as origin:
            async with TrackerServer() as tracker:
                spec = {
                    "url": origin.url_for("live/master.m3u8" if case.live else "master.m3u8"),
                    "root": str(root),
                    "tracker": tracker.url,
                    "preset": case.preset,
                    "integrity": case.integrity,
                    "ranges": case.ranges,
                    "live": case.live,
                    "duration": duration,
                }
                control = None
                if case.startup_control:
                    control = await run_victim(case, spec, stream, tracker, scratch, attack=False)
                result = await run_victim(case, spec, stream, tracker, scratch, attack=True)
                if control is not None:
                    result["startup_no_peer_s"] = control["startup_s"]
                return result


# --------------------------------------------------------------------------- the run


def honest_quantity(case: Case, result: dict[str, Any]) -> float | None:
    """The P2P bytes exchanged with this case's honest peer (see the module docstring)."""
    if case.seeder:
        return float(result["honest_seeder_bytes"])
    if case.requester:
        return float(result["figures"].get("requester_bytes", 0))
    return None


def ratio(case: Case, result: dict[str, Any], baseline: dict[str, Any] | None) -> str:
    mine = honest_quantity(case, result)
    if mine is None:
        return "-"
    if case.name == "honest":
        return "1.00" if mine > 0 else "nan"
    if baseline is None or "error" in baseline:
        return "nan"
    base = float(
        baseline["honest_seeder_bytes"] if case.seeder else baseline["figures"].get("requester_bytes", 0)
    )
    return f"{mine / base:.2f}" if base > 0 else "nan"


def result_line(case: Case, result: dict[str, Any], baseline: dict[str, Any] | None) -> str:
    if "error" in result:
        return (
            f"RESULT attack case={case.name} wrong_segments=-1 stalls=-1 p2p_vs_honest=nan"
            " victim_cpu_s=nan victim_rss_mb=nan"
        )
    return (
        f"RESULT attack case={case.name} wrong_segments={result['wrong_segments']}"
        f" stalls={result['stalls']} p2p_vs_honest={ratio(case, result, baseline)}"
        f" victim_cpu_s={result['victim_cpu_s']:.2f} victim_rss_mb={result['victim_rss_mb']:.1f}"
    )


def _seconds(value: float | None) -> str:
    return "never" if value is None else f"{value:.2f}"


def detail_line(case: Case, result: dict[str, Any], wall: float) -> str:
    if "error" in result:
        return f"DETAIL case={case.name} error={result['error']!r} wall_s={wall:.1f}"
    parts = [
        f"DETAIL case={case.name}",
        f"played={result['segments_played']}",
        f"startup_s={_seconds(result['startup_s'])}",
    ]
    if "startup_no_peer_s" in result:
        parts.append(f"startup_no_peer_s={_seconds(result['startup_no_peer_s'])}")
    parts += [
        f"rebuffer_s={result['rebuffer_s'] or 0:.2f}",
        f"http_mb={result['http_bytes'] / MIB:.2f}",
        f"p2p_mb={result['p2p_bytes'] / MIB:.2f}",
        f"honest_seeder_mb={result['honest_seeder_bytes'] / MIB:.2f}",
        f"uploaded_mb={result['p2p_uploaded_bytes'] / MIB:.2f}",
        f"bans={len(result['banned'])}",
        f"honest_banned={result['banned_honest']}",
        f"strikes={result['misbehaved']}",
        f"strike_reasons={json.dumps(result['strike_reasons'], separators=(',', ':')).replace(' ', '_')}",
        f"integrity_failures={result['integrity_failures']}",
    ]
    for key, value in sorted(result["figures"].items()):
        if key == "requester_bytes":
            parts.append(f"requester_mb={value / MIB:.2f}")
        elif isinstance(value, float):
            parts.append(f"{key}={value:.2f}")
        else:
            parts.append(f"{key}={json.dumps(value).replace(' ', '')}")
    parts.append(f"wall_s={wall:.1f}")
    return " ".join(parts)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help=f"{QUICK_DURATION:g} s of play per case")
    parser.add_argument(
        "--case", action="append", default=[], metavar="NAME", help="run this case (repeatable)"
    )
    parser.add_argument(
        "--duration", type=float, help=f"seconds of play per case (default {FULL_DURATION:g})"
    )
    parser.add_argument("--list", action="store_true", help="print the case names and exit")
    parser.add_argument("--victim", help=argparse.SUPPRESS)  # internal: run as the victim process
    args = parser.parse_args(argv)
    if args.victim:
        asyncio.run(victim_main(json.loads(args.victim)))
        return 0
    if args.list:
        for case in CASES.values():
            print(case.name + ("" if case.default_run else "  (not in the default run)"))
        return 0
    unknown = [name for name in args.case if name not in CASES]
    if unknown:
        parser.error(f"unknown case(s) {', '.join(unknown)}; --list shows them")
    duration = args.duration or (QUICK_DURATION if args.quick else FULL_DURATION)
    if not 0 < duration <= 600:
        parser.error("--duration must be in (0, 600] seconds")
    names = list(dict.fromkeys(args.case)) or [c.name for c in CASES.values() if c.default_run]
    if "honest" not in names:
        names.insert(0, "honest")  # every p2p_vs_honest is relative to it
    else:
        names.remove("honest")
        names.insert(0, "honest")
    print(f"attack matrix: {len(names)} cases, {duration:g} s of play each", flush=True)
    results: dict[str, dict[str, Any]] = {}
    for name in names:
        started = time.monotonic()
        try:
            results[name] = asyncio.run(asyncio.wait_for(run_case(CASES[name], duration), duration * 3 + 300))
        except Exception as exc:
            results[name] = {"error": f"{type(exc).__name__}: {exc}"}
        print(detail_line(CASES[name], results[name], time.monotonic() - started), flush=True)
    baseline = results.get("honest")
    for name in names:
        print(result_line(CASES[name], results[name], baseline), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
