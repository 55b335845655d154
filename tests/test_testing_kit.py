"""The public testing kit: the bounded wait, the scheduler harness and the scripted peer."""

from __future__ import annotations

import asyncio
import re
from collections import deque
from pathlib import Path

import pytest

from p2ploader.core import wire
from p2ploader.core.peer_protocol import (
    AnnouncementReceived,
    DataReceived,
    Event,
    PeerProtocol,
    ProtocolViolated,
    RequestAbsent,
    RequestCancelled,
    ResponseStarted,
    SegmentRequested,
)
from p2ploader.errors import OfferRefusedError, UsageError
from p2ploader.testing import RtcScriptedPeer, ScriptedLink, ScriptedPeer
from p2ploader.testing.harness import Harness, sid
from p2ploader.testing.peer import (
    GARBLED_COMMAND,
    Script,
    absent,
    announcing_size,
    garbled,
    lying,
    silent,
    stalling_after,
)
from p2ploader.testing.wait import wait_until

pytestmark = pytest.mark.anyio


async def test_wait_until_returns_at_once_when_the_predicate_holds() -> None:
    loop = asyncio.get_running_loop()
    started = loop.time()
    await wait_until(lambda: True, 5.0)
    assert loop.time() - started < 0.5


async def test_wait_until_returns_once_the_predicate_becomes_true() -> None:
    flag: list[bool] = []
    asyncio.get_running_loop().call_later(0.05, flag.append, True)
    await wait_until(lambda: bool(flag), 5.0, interval=0.01)
    assert flag == [True]


async def test_wait_until_fails_after_the_timeout_naming_what_it_waited_for() -> None:
    loop = asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises(AssertionError, match=r"the peer connected not reached within 0\.1 s"):
        await wait_until(lambda: False, 0.1, what="the peer connected")
    assert 0.1 <= loop.time() - started < 2.0


async def test_wait_until_describes_the_state_at_the_deadline() -> None:
    with pytest.raises(AssertionError, match="peers: 0"):
        await wait_until(lambda: False, 0.0, what=lambda: "peers: 0")


async def test_wait_until_refuses_a_negative_timeout_or_a_zero_interval() -> None:
    with pytest.raises(UsageError):
        await wait_until(lambda: True, -1.0)
    with pytest.raises(UsageError):
        await wait_until(lambda: True, 1.0, interval=0.0)


def test_the_harness_drives_the_scheduler_with_an_explicit_clock() -> None:
    # The example of docs/testing.md.
    h = Harness(policy="p2pml-0.6", seed=1)
    h.play_at(0)
    h.request(0)
    h.complete_http(h.http_request_for(0))
    assert [n.segment.id for n in h.ready()] == [sid(0)]
    h.advance(10.0)
    assert h.now == 10.0


# ------------------------------------------------------------------ the scripted peer, in memory

SEGMENT = bytes(range(256)) * 40  # 10,240 bytes


def loader_side(**settings: int) -> PeerProtocol:
    """The loader's machine for one peer, as the peer manager makes it."""
    return PeerProtocol(max_segment_size=settings.pop("max_segment_size", 100_000), **settings)


def violations(events: list[Event]) -> list[str]:
    return [e.reason for e in events if isinstance(e, ProtocolViolated)]


def received_bytes(events: list[Event]) -> bytes:
    return b"".join(e.data for e in events if isinstance(e, DataReceived))


def test_the_scripted_peer_example_of_the_docs_runs() -> None:
    text = (Path(__file__).resolve().parent.parent / "docs" / "testing.md").read_text(encoding="utf-8")
    (example,) = [
        block for block in re.findall(r"```python\n(.*?)```", text, re.S) if "ScriptedLink(" in block
    ]
    exec(compile(example, "docs/testing.md", "exec"), {})  # its asserts are the test


def test_the_scripted_peer_example_of_the_docs() -> None:
    # The example of docs/testing.md, type-checked and linted here.
    peer = ScriptedPeer({7: b"segment seven"}, script=lying)
    link = ScriptedLink(peer, PeerProtocol(max_segment_size=1_000_000))
    peer.announce()
    assert link.exchange(now=0.0) == [AnnouncementReceived(loaded=(7,), loading_by_http=())]
    link.protocol.send_request(segment_id=7, request_id=1)
    events = link.exchange(now=0.5)
    assert events[0] == ResponseStarted(request_id=1, byte_offset=0, size=13)
    assert [e.data for e in events[1:]] == [bytes(b ^ 0x5A for b in b"segment seven")]
    assert peer.requests == deque([wire.SegmentRequest(segment_id=7, request_id=1)])


def test_an_honest_scripted_peer_answers_whole_segments_and_absent_for_the_rest() -> None:
    peer = ScriptedPeer({3: SEGMENT}, max_message_size=1000)
    link = ScriptedLink(peer, loader_side())
    link.protocol.send_request(segment_id=3, request_id=1, byte_offset=240)
    events = link.exchange(now=0.0)
    assert events[0] == ResponseStarted(request_id=1, byte_offset=240, size=len(SEGMENT) - 240)
    assert received_bytes(events) == SEGMENT[240:]
    chunks = [e for e in events if isinstance(e, DataReceived)]
    # Cut as a shipped peer cuts them: at most max_message_size bytes per message.
    assert [len(e.data) for e in chunks] == [1000] * 10
    assert [e.complete for e in chunks] == [False] * 9 + [True]
    link.protocol.send_request(segment_id=4, request_id=2)
    assert link.exchange(now=0.0) == [RequestAbsent(request_id=2)]
    assert not link.protocol.broken and peer.request_count == 2


def test_a_silent_scripted_peer_leaves_the_request_outstanding() -> None:
    link = ScriptedLink(ScriptedPeer({3: SEGMENT}, script=silent), loader_side())
    link.protocol.send_request(segment_id=3, request_id=1)
    assert link.exchange(now=0.0) == [] and link.exchange(now=60.0) == []
    assert link.protocol.outstanding_request == 1


def test_absent_says_absent_for_what_it_holds() -> None:
    link = ScriptedLink(ScriptedPeer({3: SEGMENT}, script=absent), loader_side())
    link.protocol.send_request(segment_id=3, request_id=1)
    assert link.exchange(now=0.0) == [RequestAbsent(request_id=1)]


def test_stalling_after_sends_a_header_and_some_bytes_then_nothing() -> None:
    link = ScriptedLink(ScriptedPeer({3: SEGMENT}, script=stalling_after(1000)), loader_side())
    link.protocol.send_request(segment_id=3, request_id=1)
    events = link.exchange(now=0.0)
    assert events[0] == ResponseStarted(request_id=1, byte_offset=0, size=len(SEGMENT))
    assert received_bytes(events) == SEGMENT[:1000]
    assert link.protocol.outstanding_request == 1 and not violations(events)


@pytest.mark.parametrize(
    ("script", "reason"),
    [
        (announcing_size(200_000), "impossible size"),  # beyond max_segment_size: refused at the header
        (announcing_size(len(SEGMENT) - 100), "more bytes than the data header announced"),
        (announcing_size(len(SEGMENT) + 100), "sent 10240 bytes, announced 10340"),
        (garbled, "undecodable message"),
    ],
)
def test_scripted_protocol_breaches_are_violations_of_the_loaders_machine(
    script: Script, reason: str
) -> None:
    link = ScriptedLink(ScriptedPeer({3: SEGMENT}, script=script), loader_side())
    link.protocol.send_request(segment_id=3, request_id=1)
    events = link.exchange(now=0.0)
    (found,) = violations(events)
    assert reason in found and link.protocol.broken
    if "impossible" in reason:
        assert received_bytes(events) == b""  # not one byte taken after the header


def test_the_flood_guard_sees_the_clock_the_test_drives() -> None:
    # 400 announcements at one instant fit the burst; 600 do not. The same 600 spread over 12 s
    # (50 a second, under the rate) are fine.
    peer = ScriptedPeer({})
    link = ScriptedLink(peer, loader_side())
    for index in range(600):
        peer.announce([index])
    assert violations(link.exchange(now=0.0)) == ["flooded us with commands"]

    peer = ScriptedPeer({})
    link = ScriptedLink(peer, loader_side())
    for index in range(600):
        peer.announce([index])
        assert not violations(link.exchange(now=index * 0.02))
    assert len(link.events) == 600


def test_the_scripted_peer_records_the_loaders_cancel() -> None:
    link = ScriptedLink(ScriptedPeer({3: SEGMENT}, script=silent), loader_side())
    link.protocol.send_request(segment_id=3, request_id=1)
    link.exchange(now=0.0)
    (request,) = link.peer.requests
    assert not link.peer.cancelled(request)
    assert link.protocol.send_cancel(1)
    link.exchange(now=0.1)
    assert link.peer.cancelled(request)


def test_the_scripted_peer_downloads_and_cancels_as_a_viewer() -> None:
    peer = ScriptedPeer()
    link = ScriptedLink(peer, loader_side(max_message_size=4096))
    request = peer.request(5, 1)
    (asked,) = link.exchange(now=0.0)
    assert asked == SegmentRequested(segment_id=5, request_id=1, byte_offset=0)
    upload = link.protocol.start_upload(segment_id=5, request_id=1, data=SEGMENT)
    link.upload(upload, now=0.0)
    assert peer.data() == SEGMENT and peer.answered(1) and peer.data_bytes == len(SEGMENT)
    peer.cancel(request)
    assert link.exchange(now=0.0) == [RequestCancelled(segment_id=5, request_id=1)]


def test_the_scripted_peer_keeps_what_it_is_told_to() -> None:
    peer = ScriptedPeer(keep=2, keep_data=False)
    for index in range(5):
        peer.receive_message(
            b"".join(wire.encode_command(wire.SegmentRequest(segment_id=index, request_id=0)))
        )
    assert [r.segment_id for r in peer.requests] == [3, 4] and peer.request_count == 5
    peer.receive_message(b"\x00" * 100)
    assert peer.data_bytes == 100 and len(peer.received) == 2
    peer.receive_message(GARBLED_COMMAND)
    assert len(peer.undecodable) == 1
    with pytest.raises(UsageError):
        ScriptedPeer(keep=0)


def test_a_coroutine_script_needs_a_carrier_with_a_loop() -> None:
    async def sleepy(peer: ScriptedPeer, request: wire.SegmentRequest) -> None:
        return None

    peer = ScriptedPeer(script=sleepy)
    with pytest.raises(UsageError, match="coroutine script"):
        peer.receive_message(wire.encode_command(wire.SegmentRequest(segment_id=1, request_id=0))[0])


async def test_a_declined_offer_is_an_offer_refused_error(loopback: None) -> None:
    async def decline(peer_id: bytes, offer_id: bytes, sdp: str) -> str | None:
        assert len(peer_id) == len(offer_id) == 20 and "webrtc-datachannel" in sdp
        return None

    peer = RtcScriptedPeer({})
    with pytest.raises(OfferRefusedError) as refused:
        await peer.connect(decline)
    assert refused.value.peer_id == peer.hex_id and peer.closed.is_set() and not peer.is_open


def test_bytes_in_flight_after_a_cancel_are_dropped_and_more_is_a_flood() -> None:
    # The peer sent a header and 1000 bytes; the loader cancels; what the header announced may
    # still come (dropped), anything beyond it is a violation.
    peer = ScriptedPeer({3: SEGMENT}, script=stalling_after(1000))
    link = ScriptedLink(peer, loader_side())
    link.protocol.send_request(segment_id=3, request_id=1)
    link.exchange(now=0.0)
    assert link.protocol.send_cancel(1)
    (request,) = peer.requests
    peer.send_bytes(SEGMENT[1000:])  # in flight when the cancel left: the rest of what was announced
    peer.send_completed(request)
    assert link.exchange(now=0.1) == [] and peer.cancelled(request)
    peer.send_raw(b"\x00" * 10)  # past the announced size, with nothing outstanding
    assert violations(link.exchange(now=0.2)) == ["kept sending data after we cancelled the request"]


async def test_a_scripted_peer_joins_a_loader_through_its_public_swarm_endpoint(
    loopback: None, tmp_path: Path
) -> None:
    # The kit's way into a running loader without reaching into it: the swarm endpoint answers an
    # offer as the tracker client would, and names segments by the swarm's wire ids.
    from p2ploader import LoaderConfig, open_loader
    from p2ploader.core import swarm
    from p2ploader.sample import sample_path, vod_segment_bytes
    from p2ploader.testing.origin import OriginServer
    from p2ploader.tracker import TrackerServer

    root = sample_path("ts")
    want = vod_segment_bytes(root / "240p/index.m3u8")
    async with TrackerServer() as tracker:
        config = LoaderConfig(tracker_announce=(tracker.url,), rtc_config={"iceServers": []})
        with OriginServer(root) as origin:
            async with open_loader(origin.url_for("master.m3u8"), config=config, seed=3) as loader:
                endpoint = loader.swarm_endpoint
                assert endpoint is not None
                assert (endpoint.rendition, endpoint.live) == ("v0", False)
                assert endpoint.info_hash == loader.info_hash("v0")
                first = loader.playlist.media_sequence
                assert [endpoint.wire_id(first + n) for n in range(3)] == [0, 1, 2]  # VOD: positions
                assert endpoint.sequence_of(2) == first + 2
                assert endpoint.wire_id(5) == swarm.segment_wire_id(
                    loader.playlist.segments[5].id, live=False, first_sequence=first
                )
                last = len(want) - 1
                peer = RtcScriptedPeer({endpoint.wire_id(last): want[last]})
                await peer.connect(endpoint.answer_offer)
                await wait_until(lambda: peer.hex_id in endpoint.linked, what="linked")
                await wait_until(lambda: loader.statistics().peers_connected == 1, what="connected")
                peer.announce([endpoint.wire_id(last)])
                loader.report_playback(0.0)
                await loader.get_segment(loader.playlist.segments[0])  # queued: 9 is prefetched
                await wait_until(lambda: peer.requests, what="the loader asks the scripted peer")
                assert peer.requests[0].segment_id == endpoint.wire_id(last)
                await wait_until(lambda: loader.statistics().p2p_segments == 1, what="P2P segment")
                got = await loader.get_segment(loader.playlist.segments[last])
                assert got.data == want[last]
                # Its own id is declined, as a tracker-relayed offer of it would be.
                again = RtcScriptedPeer({}, peer_id=loader.peer_id)
                with pytest.raises(OfferRefusedError):
                    await again.connect(endpoint.answer_offer)
                await peer.close()


async def test_scripted_peers_join_a_loader_through_a_tracker(loopback: None) -> None:
    # As a browser does: the offer goes through the tracker, the loader's tracker client answers.
    # Two scripted peers in turn: the second's offer may first be relayed to the first, which
    # never answers, and is announced again until the loader gets it.
    from p2ploader import LoaderConfig, open_loader
    from p2ploader.sample import sample_path, vod_segment_bytes
    from p2ploader.testing import TrackerSignal
    from p2ploader.testing.origin import OriginServer
    from p2ploader.tracker import TrackerServer

    root = sample_path("ts")
    want = vod_segment_bytes(root / "240p/index.m3u8")
    last = len(want) - 1
    async with TrackerServer() as tracker:
        config = LoaderConfig(tracker_announce=(tracker.url,), rtc_config={"iceServers": []})
        with OriginServer(root) as origin:
            async with open_loader(origin.url_for("master.m3u8"), config=config, seed=4) as loader:
                await loader.get_segment(loader.playlist.segments[0])  # joins the swarm after it
                first, second = RtcScriptedPeer({last: want[last]}), RtcScriptedPeer({})
                async with TrackerSignal(tracker.url, loader.info_hash()) as signal:
                    await first.connect(signal)
                    async with TrackerSignal(tracker.url, loader.info_hash()) as other_signal:
                        await second.connect(other_signal)
                await wait_until(lambda: loader.statistics().peers_connected == 2, what="both linked")
                first.announce([last])  # VOD: the wire id is the position in the playlist
                await wait_until(lambda: loader.statistics().p2p_segments == 1, what="P2P segment")
                assert first.requests[0].segment_id == last
                assert (await loader.get_segment(loader.playlist.segments[last])).data == want[last]
                # Through a tracker, an offer nobody answers is silence: OfferRefusedError after
                # answer_within (here: a swarm the loader is not in).
                lonely = RtcScriptedPeer({})
                async with TrackerSignal(tracker.url, loader.info_hash("v1"), answer_within=1.0) as signal:
                    with pytest.raises(OfferRefusedError):
                        await lonely.connect(signal)
                    assert lonely.closed.is_set()
                await first.close()
                await second.close()


async def test_a_tracker_signal_checks_its_settings() -> None:
    from p2ploader.testing import TrackerSignal

    with pytest.raises(UsageError, match="20 bytes"):
        TrackerSignal("ws://127.0.0.1:9", b"short")
    with pytest.raises(UsageError, match="> 0 seconds"):
        TrackerSignal("ws://127.0.0.1:9", bytes(20), retry_every=0.0)
    with pytest.raises(UsageError, match="async context manager"):
        await TrackerSignal("ws://127.0.0.1:9", bytes(20))(bytes(20), bytes(20), "v=0")
