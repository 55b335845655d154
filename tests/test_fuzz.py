"""Bounded Hypothesis fuzzing of what other parties send us: tracker frames (both the client's and
the embedded tracker's handling), peer messages through the peer manager, and playlists with
integrity tags. Only typed errors may come out; nothing crashes, hangs or grows without bound.

The wire codec and the HLS parser have their own fuzzers (tests/core/test_wire.py,
tests/test_hls.py); these add the layers above them. Every run is derandomised and capped with
``max_examples`` so CI time stays small.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from p2ploader.aio.peers import PeerManager, _PeerState
from p2ploader.core import events as ev
from p2ploader.core import wire
from p2ploader.core.integrity import HASH_TAG, parse_hash_tags
from p2ploader.core.peer_protocol import PeerProtocol
from p2ploader.core.tracker_client_protocol import AnswerOffer, TrackerClientProtocol
from p2ploader.core.tracker_wire import encode_id
from p2ploader.errors import PlaylistError
from p2ploader.hls import parse_media
from p2ploader.tracker.state import Send, TrackerLimits, TrackerState
from tests.aio.test_peer_wiring import FakeLink

FUZZ = settings(
    max_examples=150,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)

INFO_HASH = b"L2uYwMcHhsstZuLv8ZqU"
PEER_ID = b"-PY0001-abcdefghijkl"

_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=30),
    st.sampled_from([encode_id(INFO_HASH), encode_id(PEER_ID), "announce", "scrape", "offer", "answer"]),
)
_values = st.recursive(
    _scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=12,
)
_KEYS = [
    "action",
    "info_hash",
    "peer_id",
    "offer",
    "answer",
    "offer_id",
    "to_peer_id",
    "offers",
    "numwant",
    "event",
    "interval",
    "min interval",
    "complete",
    "incomplete",
    "failure reason",
    "warning message",
    "left",
    "p2ploader",
]
_objects = st.dictionaries(st.sampled_from(_KEYS), _values, max_size=8)
_announce_like = st.builds(
    lambda extra, action: {"action": action, "info_hash": encode_id(INFO_HASH), **extra},
    _objects,
    st.sampled_from(["announce", "scrape", "nonsense"]),
)
tracker_frames = st.one_of(
    _objects.map(json.dumps),
    _announce_like.map(json.dumps),
    _values.map(json.dumps),
    st.text(max_size=100),
    st.binary(max_size=100),
)


# --------------------------------------------------------------------------- tracker client


@FUZZ
@given(st.lists(tracker_frames, min_size=1, max_size=8))
def test_tracker_client_survives_any_frames(frames: list[str | bytes]) -> None:
    url = "ws://127.0.0.1:9"
    machine = TrackerClientProtocol([url], info_hash=INFO_HASH, peer_id=PEER_ID, rng=random.Random(0))
    machine.start(now=0.0)
    machine.connected(url, now=0.0)
    for frame in frames:
        machine.message_received(url, frame, now=1.0)  # never raises
        for effect in machine.effects():
            if isinstance(effect, AnswerOffer):
                machine.answer_ready(effect, None, now=1.0)
    machine.close(now=2.0)
    assert machine.statistics().pending_offers == 0


# --------------------------------------------------------------------------- the embedded tracker


@FUZZ
@given(st.lists(tracker_frames, min_size=1, max_size=8))
def test_tracker_server_answers_garbage_with_failures_only(frames: list[str | bytes]) -> None:
    state = TrackerState(TrackerLimits(max_protocol_errors=1000))
    conn = state.open_connection(("127.0.0.1", 1), now=0.0)
    rng = random.Random(0)
    sent = []
    for frame in frames:
        for output in state.handle(conn, frame, now=0.0, rng=rng):  # never raises
            assert isinstance(output, Send)
            sent.append(json.loads(output.text))
    assert all(isinstance(message, dict) for message in sent)
    # Still serving: a valid announce gets an announce response.
    valid = {"action": "announce", "info_hash": encode_id(INFO_HASH), "peer_id": encode_id(PEER_ID)}
    (reply,) = state.handle(conn, json.dumps(valid), now=0.0, rng=rng)
    assert isinstance(reply, Send)
    answer = json.loads(reply.text)
    assert answer.get("action") == "announce" and "failure reason" not in answer
    assert state.statistics().swarms <= len(frames) + 1  # one swarm per valid announce at most


# --------------------------------------------------------------------------- peer messages


_command_chunks = st.builds(
    lambda start, body, end: start + body + end,
    st.sampled_from([wire.CSTR, wire.DSTR]),
    st.binary(max_size=60),
    st.sampled_from([wire.CEND, wire.DEND]),
)
_valid_commands = st.sampled_from(
    [
        m
        for c in (
            wire.SegmentsAnnouncement(loaded=(1, 2, 3)),
            wire.SegmentRequest(segment_id=3, request_id=1),
            wire.SegmentData(segment_id=3, request_id=7, size=100),
            wire.SegmentDataSendingCompleted(segment_id=3, request_id=7),
            wire.SegmentAbsent(segment_id=3, request_id=7),
            wire.CancelSegmentRequest(segment_id=3, request_id=1),
        )
        for m in wire.encode_command(c)
    ]
)
peer_messages = st.lists(st.one_of(st.binary(max_size=120), _command_chunks, _valid_commands), max_size=12)


@FUZZ
@given(peer_messages, st.booleans())
def test_peer_manager_turns_any_messages_into_events_or_a_disconnect(
    messages: list[bytes], downloading: bool
) -> None:
    async def run() -> None:
        events: list[ev.Event] = []
        manager = PeerManager(
            feed=events.append,
            rendition="v0",
            live=True,
            first_sequence=0,
            local_peer_id="aa" * 20,
            rtc_config={},
        )
        link = FakeLink()
        protocol = PeerProtocol(max_segment_size=1 << 20)
        state = _PeerState(link=link, protocol=protocol)  # type: ignore[arg-type]
        if downloading:
            protocol.send_request(segment_id=3, request_id=7)
        manager._peers[link.peer_id] = state
        for message in messages:
            manager._link_message(link, message)  # type: ignore[arg-type]
        await asyncio.sleep(0)
        failures = [e for e in events if isinstance(e, ev.PeerDownloadFailed) and e.misbehaved]
        misbehaved = [e for e in events if isinstance(e, ev.PeerViolatedProtocol)]
        # Every violation ends the link, and is reported exactly once (to the scheduler or directly).
        assert len(failures) + len(misbehaved) <= 1
        if failures or misbehaved:
            assert link.closing
        received = sum(len(e.data) for e in events if isinstance(e, ev.PeerChunkReceived))
        assert received <= 100  # never more than the data header announced
        pending = protocol.pending_command_bytes
        assert pending is None or pending <= wire.DEFAULT_MAX_COMMAND_SIZE

    asyncio.run(run())


# --------------------------------------------------------------------------- playlists with integrity tags

_hex = st.text(alphabet="0123456789abcdefABCDEF", min_size=0, max_size=70)
_lines = st.one_of(
    st.just("#EXTINF:2.0,"),
    st.builds(lambda h: f"{HASH_TAG}:{h}", _hex),
    st.builds(lambda h: f"{HASH_TAG}:{h}", st.text(max_size=70)),
    st.just(f"{HASH_TAG}:{'ab' * 32}"),
    st.builds(lambda n: f"#EXT-X-MEDIA-SEQUENCE:{n}", st.text(max_size=6) | st.integers(-5, 10**6).map(str)),
    st.builds(lambda n: f"#EXT-X-BYTERANGE:{n}", st.text(max_size=10)),
    st.sampled_from(["seg.ts", "#EXT-X-TARGETDURATION:2", "#EXT-X-ENDLIST", "", "#", "\ufeff"]),
    st.text(max_size=20),
)
playlists = st.lists(_lines, max_size=30).map(lambda lines: "#EXTM3U\n" + "\n".join(lines))


@FUZZ
@given(playlists)
def test_integrity_tags_parse_or_raise_playlist_errors(text: str) -> None:
    errors: list[PlaylistError] = []
    try:
        digests = parse_hash_tags(text, "http://o/p.m3u8")
    except PlaylistError as exc:  # anything else propagates and fails the test
        errors.append(exc)
    else:
        assert all(len(d) == 32 and seq >= 0 for seq, d in digests.items())
    assert all(e.url == "http://o/p.m3u8" and e.reason for e in errors)
    with contextlib.suppress(PlaylistError):  # the tag never makes the player's parser fail otherwise
        parse_media(text, "http://o/p.m3u8", rendition="v0")
