"""The peer wire protocol machine (:mod:`p2ploader.core.peer_protocol`), with no socket and no sleep.

As h11's ``ConnectionPair``: two machines wired together, a downloader and an uploader, each one
the other's remote peer; messages move between them when a test says so, and the clock is a
number the test passes in. Hostile inputs are hand-made wire messages fed to one machine.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from p2ploader.core import wire
from p2ploader.core.bans import CommandRate
from p2ploader.core.peer_protocol import (
    MAX_REMEMBERED_CANCELS,
    AnnouncementReceived,
    DataReceived,
    Event,
    PeerProtocol,
    ProtocolViolated,
    RequestAbsent,
    RequestCancelled,
    ResponseStarted,
    SegmentRequested,
    Upload,
    UploadStopped,
)
from p2ploader.errors import UsageError

MAX_SEGMENT = 1_000_000
PAYLOAD = bytes(range(256)) * 40  # 10,240 bytes


def machine(**kwargs: object) -> PeerProtocol:
    settings_: dict[str, object] = {"max_segment_size": MAX_SEGMENT}
    settings_.update(kwargs)
    return PeerProtocol(**settings_)  # type: ignore[arg-type]


def events(peer: PeerProtocol) -> list[Event]:
    found: list[Event] = []
    while (event := peer.next_event()) is not None:
        found.append(event)
    return found


def deliver(sender: PeerProtocol, receiver: PeerProtocol, *, now: float = 0.0) -> None:
    """Move every queued message of ``sender`` to ``receiver``."""
    for message in sender.messages_to_send():
        receiver.receive_message(message, now=now)


def feed(receiver: PeerProtocol, *commands: wire.Command, now: float = 0.0) -> None:
    for command in commands:
        for message in wire.encode_command(command):
            receiver.receive_message(message, now=now)


def send_upload(uploader: PeerProtocol, upload: Upload, downloader: PeerProtocol) -> list[bytes]:
    """The I/O layer's part of an upload: header, every chunk available, completion when whole."""
    uploader.begin_upload(upload)
    deliver(uploader, downloader)
    chunks = []
    while (chunk := upload.next_chunk()) is not None:
        chunks.append(chunk)
        downloader.receive_message(chunk, now=0.0)
    if upload.finished:
        uploader.complete_upload(upload)
        deliver(uploader, downloader)
    return chunks


def violation(peer: PeerProtocol) -> ProtocolViolated:
    (found,) = [e for e in events(peer) if isinstance(e, ProtocolViolated)]
    assert peer.broken
    return found


def received(found: list[Event]) -> bytes:
    return b"".join(e.data for e in found if isinstance(e, DataReceived))


# ------------------------------------------------------------------ a whole exchange


def test_a_segment_travels_exactly_in_chunks_of_the_message_size() -> None:
    downloader, uploader = machine(), machine(max_message_size=1000)
    downloader.send_request(segment_id=5, request_id=1)
    deliver(downloader, uploader)
    assert events(uploader) == [SegmentRequested(segment_id=5, request_id=1, byte_offset=0)]

    upload = uploader.start_upload(segment_id=5, request_id=1, data=PAYLOAD)
    chunks = send_upload(uploader, upload, downloader)
    assert all(len(chunk) <= 1000 for chunk in chunks) and len(chunks) == 11
    found = events(downloader)
    assert found[0] == ResponseStarted(request_id=1, byte_offset=0, size=len(PAYLOAD))
    assert received(found) == PAYLOAD
    assert [e.complete for e in found if isinstance(e, DataReceived)] == [False] * 10 + [True]
    assert not downloader.broken and downloader.outstanding_request is None
    assert uploader.upload is None  # completed


def test_by_default_chunks_are_as_big_as_a_data_channel_message() -> None:
    downloader, uploader = machine(), machine()
    assert uploader.max_message_size == wire.DEFAULT_MAX_MESSAGE_SIZE == 65535
    data = PAYLOAD * 20  # 204,800 bytes
    downloader.send_request(segment_id=5, request_id=1)
    chunks = send_upload(uploader, uploader.start_upload(segment_id=5, request_id=1, data=data), downloader)
    assert [len(chunk) for chunk in chunks] == [65535, 65535, 65535, 204_800 - 3 * 65535]
    assert received(events(downloader)) == data


def test_by_default_announcements_carry_the_codecs_bound() -> None:
    a, b = machine(), machine()
    assert b.max_announced_ids == wire.DEFAULT_MAX_ANNOUNCED_IDS
    a.send_announcement(loaded=range(wire.DEFAULT_MAX_ANNOUNCED_IDS + 5), loading_by_http=())
    deliver(a, b)
    (announced,) = events(b)
    assert isinstance(announced, AnnouncementReceived) and not b.broken
    assert len(announced.loaded) == wire.DEFAULT_MAX_ANNOUNCED_IDS


def test_a_download_resumes_at_a_byte_offset() -> None:
    downloader, uploader = machine(), machine()
    downloader.send_request(segment_id=5, request_id=2, byte_offset=4000)
    deliver(downloader, uploader)
    assert events(uploader) == [SegmentRequested(segment_id=5, request_id=2, byte_offset=4000)]
    send_upload(uploader, uploader.start_upload(segment_id=5, request_id=2, data=PAYLOAD[4000:]), downloader)
    found = events(downloader)
    assert found[0] == ResponseStarted(request_id=2, byte_offset=4000, size=len(PAYLOAD) - 4000)
    assert received(found) == PAYLOAD[4000:]


def test_a_completed_request_is_retired_before_its_sending_completed() -> None:
    # The next request may go out as soon as the last byte is in; the old completion is still fine.
    downloader = machine()
    downloader.send_request(segment_id=1, request_id=1)
    feed(downloader, wire.SegmentData(segment_id=1, request_id=1, size=3))
    downloader.receive_message(b"abc", now=0.0)
    assert downloader.outstanding_request is None
    downloader.send_request(segment_id=2, request_id=2)
    feed(downloader, wire.SegmentDataSendingCompleted(segment_id=1, request_id=1))
    assert not downloader.broken and downloader.outstanding_request == 2
    feed(downloader, wire.SegmentDataSendingCompleted(segment_id=1, request_id=1))  # only once
    assert violation(downloader).reason == "sending-completed does not match a request"


def test_announcements_both_ways() -> None:
    a, b = machine(), machine()
    a.send_announcement(loaded=[1, 2, 3], loading_by_http=[4])
    deliver(a, b)
    assert events(b) == [AnnouncementReceived(loaded=(1, 2, 3), loading_by_http=(4,))]


def test_an_announcement_over_the_cap_drops_the_oldest_loaded_ids() -> None:
    a, b = machine(max_announced_ids=10), machine(max_announced_ids=10)
    a.send_announcement(loaded=list(range(100, 112)), loading_by_http=[200])
    deliver(a, b)
    (announced,) = events(b)
    assert isinstance(announced, AnnouncementReceived) and not b.broken
    assert set(announced.loaded) == set(range(103, 112)) and announced.loading_by_http == (200,)


def test_an_announcement_of_only_loading_ids_over_the_cap_keeps_the_first() -> None:
    a = machine(max_announced_ids=4)
    a.send_announcement(loaded=[1, 2], loading_by_http=[5, 6, 7, 8, 9])
    b = machine(max_announced_ids=4)
    deliver(a, b)
    (announced,) = events(b)
    assert isinstance(announced, AnnouncementReceived)
    assert announced.loaded == () and set(announced.loading_by_http) == {5, 6, 7, 8}


def test_one_announcement_to_many_peers_is_encoded_once_and_trimmed_per_machine() -> None:
    # The same tuples through several machines: one encoding each time the limits agree, and each
    # machine's own cap where they differ (the remembered encoding is keyed by the limits too).
    loaded, loading = tuple(range(100, 112)), (200,)
    roomy, other_roomy, tight = machine(), machine(), machine(max_announced_ids=10)
    for sender in (roomy, other_roomy, tight):
        sender.send_announcement(loaded=loaded, loading_by_http=loading)
    first, second = roomy.messages_to_send(), other_roomy.messages_to_send()
    assert first == second and all(a is b for a, b in zip(first, second, strict=True))
    receiver = machine()
    for message in first:
        receiver.receive_message(message, now=0.0)
    assert events(receiver) == [AnnouncementReceived(loaded=loaded, loading_by_http=loading)]
    for message in tight.messages_to_send():
        receiver.receive_message(message, now=0.0)
    (trimmed,) = events(receiver)
    assert isinstance(trimmed, AnnouncementReceived)
    assert set(trimmed.loaded) == set(range(103, 112)) and trimmed.loading_by_http == (200,)


def test_announced_tuples_and_lists_are_checked_alike() -> None:
    for ids in ((1, True), [1, True], (1, -1), [1, "2"]):
        with pytest.raises(UsageError):
            machine().send_announcement(loaded=ids, loading_by_http=())  # type: ignore[arg-type]
    a = machine()
    a.send_announcement(loaded=[1, 2], loading_by_http=[3])
    a.send_announcement(loaded=(1, 2), loading_by_http=(3,))
    b = machine()
    deliver(a, b)
    assert events(b) == [AnnouncementReceived(loaded=(1, 2), loading_by_http=(3,))] * 2


def test_a_received_announcement_over_the_cap_is_a_violation() -> None:
    b = machine(max_announced_ids=10)
    feed(b, wire.SegmentsAnnouncement(loaded=tuple(range(11))))
    assert violation(b).reason.startswith("undecodable message")
    b = machine(max_announced_ids=11)
    feed(b, wire.SegmentsAnnouncement(loaded=tuple(range(11))))
    assert not b.broken


def test_the_announcement_cap_is_settable() -> None:
    b = machine(max_announced_ids=10)
    b.max_announced_ids = 20
    feed(b, wire.SegmentsAnnouncement(loaded=tuple(range(15))))
    assert not b.broken and b.max_announced_ids == 20


# ------------------------------------------------------------------ absent and cancel


def test_absent_answers_the_request() -> None:
    downloader, uploader = machine(), machine()
    downloader.send_request(segment_id=7, request_id=3)
    deliver(downloader, uploader)
    events(uploader)
    uploader.send_absent(segment_id=7, request_id=3)
    deliver(uploader, downloader)
    assert events(downloader) == [RequestAbsent(request_id=3)]
    assert downloader.outstanding_request is None


def test_absent_for_another_request_is_ignored() -> None:
    downloader = machine()
    downloader.send_request(segment_id=7, request_id=3)
    feed(downloader, wire.SegmentAbsent(segment_id=7, request_id=99))
    assert events(downloader) == [] and downloader.outstanding_request == 3


def test_absent_after_a_header_ends_the_transfer_and_the_bytes_stay() -> None:
    downloader = machine()
    downloader.send_request(segment_id=7, request_id=3)
    feed(downloader, wire.SegmentData(segment_id=7, request_id=3, size=10))
    downloader.receive_message(b"12345", now=0.0)
    feed(downloader, wire.SegmentAbsent(segment_id=7, request_id=3))
    found = events(downloader)
    assert received(found) == b"12345" and found[-1] == RequestAbsent(request_id=3)


def test_a_cancel_reaches_the_uploader_and_stops_its_upload() -> None:
    downloader, uploader = machine(), machine()
    downloader.send_request(segment_id=7, request_id=3)
    deliver(downloader, uploader)
    events(uploader)
    upload = uploader.start_upload(segment_id=7, request_id=3, data=PAYLOAD)
    assert downloader.send_cancel(3)
    deliver(downloader, uploader)
    assert events(uploader) == [UploadStopped(upload=upload), RequestCancelled(segment_id=7, request_id=3)]
    assert uploader.upload is None


def test_a_cancel_of_another_request_keeps_the_upload() -> None:
    uploader = machine()
    upload = uploader.start_upload(segment_id=7, request_id=3, data=PAYLOAD)
    feed(uploader, wire.CancelSegmentRequest(segment_id=7, request_id=4))
    assert events(uploader) == [RequestCancelled(segment_id=7, request_id=4)]
    assert uploader.upload is upload


def test_cancelling_what_is_not_outstanding_sends_nothing() -> None:
    downloader = machine()
    assert not downloader.send_cancel(1)
    downloader.send_request(segment_id=7, request_id=3)
    downloader.messages_to_send()
    assert not downloader.send_cancel(4)
    assert downloader.messages_to_send() == []


def test_bytes_in_flight_after_a_cancel_are_dropped_up_to_what_the_header_announced() -> None:
    downloader = machine()
    downloader.send_request(segment_id=7, request_id=3)
    feed(downloader, wire.SegmentData(segment_id=7, request_id=3, size=100))
    downloader.receive_message(b"x" * 30, now=0.0)
    events(downloader)
    assert downloader.send_cancel(3)
    downloader.receive_message(b"x" * 70, now=0.0)  # the rest: in flight, dropped
    feed(downloader, wire.SegmentDataSendingCompleted(segment_id=7, request_id=3))
    assert events(downloader) == [] and not downloader.broken
    downloader.receive_message(b"x", now=0.0)  # one byte beyond what it announced
    assert violation(downloader) == ProtocolViolated(
        reason="kept sending data after we cancelled the request", request_id=None
    )


def test_a_header_arriving_after_the_cancel_adds_its_size_to_the_allowance() -> None:
    downloader = machine()
    downloader.send_request(segment_id=7, request_id=3)
    downloader.send_cancel(3)
    feed(downloader, wire.SegmentData(segment_id=7, request_id=3, size=50))  # late: dropped
    downloader.receive_message(b"y" * 50, now=0.0)
    assert events(downloader) == [] and not downloader.broken
    downloader.receive_message(b"y", now=0.0)
    assert violation(downloader).reason == "kept sending data after we cancelled the request"


def test_the_next_requests_header_ends_the_discarding() -> None:
    downloader = machine()
    downloader.send_request(segment_id=7, request_id=3)
    feed(downloader, wire.SegmentData(segment_id=7, request_id=3, size=100))
    events(downloader)
    downloader.send_cancel(3)
    downloader.send_request(segment_id=8, request_id=4)
    feed(downloader, wire.SegmentData(segment_id=8, request_id=4, size=5))
    downloader.receive_message(b"abcde", now=0.0)  # counted for request 4, not dropped
    found = events(downloader)
    assert found[0] == ResponseStarted(request_id=4, byte_offset=0, size=5)
    assert received(found) == b"abcde" and not downloader.broken
    downloader.receive_message(b"z", now=0.0)  # the cancelled request's allowance is gone
    assert violation(downloader).reason == "segment data without a data header"


def test_only_the_latest_cancels_are_remembered() -> None:
    downloader = machine()
    for request_id in range(1, MAX_REMEMBERED_CANCELS + 2):
        downloader.send_request(segment_id=request_id, request_id=request_id)
        downloader.send_cancel(request_id)
    feed(downloader, wire.SegmentDataSendingCompleted(segment_id=2, request_id=2))  # remembered
    assert not downloader.broken
    feed(downloader, wire.SegmentDataSendingCompleted(segment_id=1, request_id=1))  # the oldest: forgotten
    assert violation(downloader).reason == "sending-completed does not match a request"


# ------------------------------------------------------------------ hostile downloads


def test_data_without_a_header_fails_the_outstanding_request() -> None:
    downloader = machine()
    downloader.send_request(segment_id=7, request_id=3)
    downloader.receive_message(b"unasked", now=0.0)
    assert violation(downloader) == ProtocolViolated(
        reason="segment data without a data header", request_id=3
    )
    assert downloader.outstanding_request is None


def test_data_with_no_request_at_all_is_a_violation_without_a_request() -> None:
    downloader = machine()
    downloader.receive_message(b"unasked", now=0.0)
    assert violation(downloader) == ProtocolViolated(
        reason="segment data without a data header", request_id=None
    )


@pytest.mark.parametrize(
    ("segment_id", "request_id"), [(7, 4), (8, 3)], ids=["wrong request id", "wrong segment id"]
)
def test_a_header_that_does_not_match_the_request(segment_id: int, request_id: int) -> None:
    downloader = machine()
    downloader.send_request(segment_id=7, request_id=3)
    feed(downloader, wire.SegmentData(segment_id=segment_id, request_id=request_id, size=10))
    assert violation(downloader) == ProtocolViolated(
        reason="data header does not match our request", request_id=3
    )


def test_a_second_header_for_one_request() -> None:
    downloader = machine()
    downloader.send_request(segment_id=7, request_id=3)
    feed(downloader, wire.SegmentData(segment_id=7, request_id=3, size=10))
    feed(downloader, wire.SegmentData(segment_id=7, request_id=3, size=10))
    assert violation(downloader).reason == "second data header for one request"


def test_an_announced_size_over_the_limit_is_refused_before_its_bytes() -> None:
    downloader = machine(max_segment_size=1000)
    downloader.send_request(segment_id=7, request_id=3)
    feed(downloader, wire.SegmentData(segment_id=7, request_id=3, size=1001))
    found = events(downloader)
    assert not any(isinstance(e, ResponseStarted) for e in found)
    (refused,) = found
    assert refused == ProtocolViolated(
        reason="announced an impossible size (1001 bytes, more than 1000 the stream allows)", request_id=3
    )


def test_an_announced_size_at_the_limit_is_accepted() -> None:
    downloader = machine(max_segment_size=1000)
    downloader.send_request(segment_id=7, request_id=3)
    feed(downloader, wire.SegmentData(segment_id=7, request_id=3, size=1000))
    assert events(downloader) == [ResponseStarted(request_id=3, byte_offset=0, size=1000)]


def test_the_size_limit_applies_to_headers_of_cancelled_requests_too() -> None:
    downloader = machine(max_segment_size=1000)
    downloader.send_request(segment_id=7, request_id=3)
    downloader.send_cancel(3)
    feed(downloader, wire.SegmentData(segment_id=7, request_id=3, size=10**6))  # no huge allowance
    assert violation(downloader).request_id is None


def test_more_bytes_than_announced() -> None:
    downloader = machine()
    downloader.send_request(segment_id=7, request_id=3)
    feed(downloader, wire.SegmentData(segment_id=7, request_id=3, size=4))
    downloader.receive_message(b"12345", now=0.0)
    found = events(downloader)
    assert received(found) == b""  # the chunk that overruns is not passed on
    assert found[-1] == ProtocolViolated(reason="more bytes than the data header announced", request_id=3)


def test_fewer_bytes_than_announced() -> None:
    downloader = machine()
    downloader.send_request(segment_id=7, request_id=3)
    feed(downloader, wire.SegmentData(segment_id=7, request_id=3, size=10))
    downloader.receive_message(b"12345", now=0.0)
    feed(downloader, wire.SegmentDataSendingCompleted(segment_id=7, request_id=3))
    assert violation(downloader) == ProtocolViolated(reason="sent 5 bytes, announced 10", request_id=3)


@pytest.mark.parametrize(
    ("garbage", "why"),
    [
        ([wire.CSTR + b"\xff\x00garbage" + wire.CEND], ""),
        ([wire.DSTR + b"no start" + wire.CEND], "without a preceding cstr"),
        ([wire.CSTR + wire.CEND], "empty command"),
        ([wire.CSTR + b"{" * 10 + wire.DEND, wire.CSTR + b"x" + wire.CEND], "still incomplete"),
        (
            [wire.CSTR + b"x" * 60_000 + wire.DEND] + [wire.DSTR + b"x" * 60_000 + wire.DEND] * 20,
            "longer than",
        ),
    ],
    ids=["bad body", "continuation without start", "empty command", "start while incomplete", "oversized"],
)
def test_garbage_frames_are_a_violation(garbage: list[bytes], why: str) -> None:
    downloader = machine()
    downloader.send_request(segment_id=7, request_id=3)
    for message in garbage:
        downloader.receive_message(message, now=0.0)
    found = violation(downloader)
    assert found.reason.startswith("undecodable message") and why in found.reason
    assert found.request_id == 3
    assert downloader.pending_command_bytes is None  # nothing of it kept


def test_a_text_message_is_a_violation() -> None:
    downloader = machine()
    downloader.receive_message("hello", now=0.0)  # type: ignore[arg-type]
    assert violation(downloader).reason.startswith("undecodable message")


def test_after_a_violation_the_peer_is_ignored() -> None:
    downloader = machine()
    downloader.receive_message(b"unasked", now=0.0)
    assert violation(downloader).reason == "segment data without a data header"
    feed(downloader, wire.SegmentsAnnouncement(loaded=(1,)), wire.SegmentRequest(segment_id=1, request_id=1))
    downloader.receive_message(b"more", now=0.0)
    assert events(downloader) == []


def test_a_violation_the_io_layer_saw_takes_the_same_path_once() -> None:
    downloader = machine()
    downloader.send_request(segment_id=7, request_id=3)
    downloader.report_violation("stopped reading")
    downloader.report_violation("stopped reading again")
    assert violation(downloader) == ProtocolViolated(reason="stopped reading", request_id=3)


# ------------------------------------------------------------------ the flood guard


def test_a_burst_just_under_the_guard_passes_and_one_more_command_is_a_flood() -> None:
    peer = machine(command_rate=CommandRate(rate=100.0, burst=400.0))
    announcement = wire.encode_command(wire.SegmentsAnnouncement(loaded=(1,)))[0]
    for _ in range(400):
        peer.receive_message(announcement, now=10.0)
    assert not peer.broken and len(events(peer)) == 400
    peer.receive_message(announcement, now=10.0)
    assert violation(peer).reason == "flooded us with commands"


def test_the_guard_refills_with_time() -> None:
    # Times and rates are exact in binary floating point, so "just under" is exactly under.
    peer = machine(command_rate=CommandRate(rate=128.0, burst=400.0))
    announcement = wire.encode_command(wire.SegmentsAnnouncement(loaded=(1,)))[0]
    for _ in range(400):
        peer.receive_message(announcement, now=10.0)
    for _ in range(64):  # half a second later: 64 more tokens
        peer.receive_message(announcement, now=10.5)
    assert not peer.broken
    # A steady 128 commands per second (the rate) never floods, for a long time.
    for step in range(1, 2001):
        peer.receive_message(announcement, now=10.5 + step / 128)
    assert not peer.broken
    peer.receive_message(announcement, now=10.5 + 2000 / 128)  # a second one at the same instant
    assert violation(peer).reason == "flooded us with commands"


def test_the_default_guard_allows_a_burst_of_400() -> None:
    peer = machine()
    request = wire.encode_command(wire.SegmentRequest(segment_id=1, request_id=1))[0]
    for _ in range(400):
        peer.receive_message(request, now=0.0)
    assert not peer.broken
    peer.receive_message(request, now=0.0)
    assert peer.broken


def test_data_chunks_do_not_spend_the_guard() -> None:
    downloader = machine(command_rate=CommandRate(rate=1.0, burst=2.0))
    downloader.send_request(segment_id=7, request_id=3)
    feed(downloader, wire.SegmentData(segment_id=7, request_id=3, size=1000))
    for _ in range(1000):
        downloader.receive_message(b"x", now=0.0)
    assert not downloader.broken and received(events(downloader)) == b"x" * 1000


# ------------------------------------------------------------------ uploads


def test_a_new_request_from_the_peer_stops_the_upload_in_progress() -> None:
    uploader = machine()
    upload = uploader.start_upload(segment_id=7, request_id=3, data=PAYLOAD)
    feed(uploader, wire.SegmentRequest(segment_id=8, request_id=4))
    assert events(uploader) == [
        UploadStopped(upload=upload),
        SegmentRequested(segment_id=8, request_id=4, byte_offset=0),
    ]
    assert uploader.upload is None


def test_a_new_upload_replaces_the_one_in_progress() -> None:
    uploader = machine()
    first = uploader.start_upload(segment_id=7, request_id=3, data=PAYLOAD)
    second = uploader.start_upload(segment_id=8, request_id=4, data=PAYLOAD)
    assert events(uploader) == [UploadStopped(upload=first)]
    assert uploader.upload is second


def test_our_absent_stops_the_matching_upload() -> None:
    uploader = machine()
    upload = uploader.start_upload(segment_id=7, request_id=3, data=PAYLOAD)
    uploader.send_absent(segment_id=7, request_id=4)  # another request: the upload goes on
    assert events(uploader) == [] and uploader.upload is upload
    uploader.send_absent(segment_id=7, request_id=3)
    assert events(uploader) == [UploadStopped(upload=upload)]
    assert len(uploader.messages_to_send()) == 2


def test_an_upload_ended_by_the_io_layer_is_forgotten() -> None:
    uploader = machine()
    upload = uploader.start_upload(segment_id=7, request_id=3, data=PAYLOAD)
    uploader.end_upload(upload)
    assert uploader.upload is None and events(uploader) == []


def test_a_growing_upload_sends_bytes_as_they_come() -> None:
    downloader, uploader = machine(), machine(max_message_size=1000)
    downloader.send_request(segment_id=7, request_id=3)
    deliver(downloader, uploader)
    events(uploader)
    upload = uploader.start_upload(segment_id=7, request_id=3, data=PAYLOAD[:2500], length=len(PAYLOAD))
    chunks = send_upload(uploader, upload, downloader)
    assert [len(chunk) for chunk in chunks] == [1000, 1000, 500]  # all there is; not finished
    assert not upload.finished and upload.next_chunk() is None
    found = events(downloader)
    assert found[0] == ResponseStarted(request_id=3, byte_offset=0, size=len(PAYLOAD))  # the full size

    assert uploader.extend_upload(segment_id=7, request_id=3, data=PAYLOAD[2500:6000])
    assert not uploader.extend_upload(segment_id=7, request_id=9, data=b"other request")
    # Bytes past the announced size are never sent.
    assert uploader.extend_upload(segment_id=7, request_id=3, data=PAYLOAD[6000:] + b"overrun")
    assert not uploader.extend_upload(segment_id=7, request_id=3, data=b"more overrun")
    while (chunk := upload.next_chunk()) is not None:
        downloader.receive_message(chunk, now=0.0)
    assert upload.finished
    uploader.complete_upload(upload)
    deliver(uploader, downloader)
    found += events(downloader)
    assert received(found) == PAYLOAD and not downloader.broken
    assert [e for e in found if isinstance(e, DataReceived)][-1].complete


def test_chunks_are_never_lookalike_command_chunks() -> None:
    lookalike = wire.CSTR + b"x" * 92 + wire.CEND  # 100 bytes that frame like a command
    downloader, uploader = machine(), machine(max_message_size=100)
    downloader.send_request(segment_id=7, request_id=3)
    send_upload(uploader, uploader.start_upload(segment_id=7, request_id=3, data=lookalike * 3), downloader)
    assert received(events(downloader)) == lookalike * 3 and not downloader.broken


def test_a_paced_upload_cuts_smaller_chunks_on_demand() -> None:
    """``next_chunk(max_bytes)``: each message at most that many bytes (a paced upload keeps its
    bursts small), never past ``max_message_size``, never a lookalike command chunk; the bytes and
    their order are unchanged."""
    lookalike = wire.CSTR + b"x" * 92 + wire.CEND
    data = lookalike * 3 + PAYLOAD[:3000]
    downloader, uploader = machine(), machine(max_message_size=1000)
    downloader.send_request(segment_id=7, request_id=3)
    deliver(downloader, uploader)
    events(uploader)
    upload = uploader.start_upload(segment_id=7, request_id=3, data=data)
    uploader.begin_upload(upload)
    deliver(uploader, downloader)
    sizes = []
    for limit in [100, 100, 50, None, 5000, *[300] * 20]:
        chunk = upload.next_chunk(limit)
        if chunk is None:
            break
        assert not wire.is_command_chunk(chunk)
        sizes.append(len(chunk))
        downloader.receive_message(chunk, now=0.0)
    assert sizes[:5] == [99, 100, 50, 1000, 1000]  # the first 100 bytes framed like a command
    assert max(sizes[5:]) <= 300
    assert upload.finished
    uploader.complete_upload(upload)
    deliver(uploader, downloader)
    assert received(events(downloader)) == data and not downloader.broken


@pytest.mark.parametrize(
    "limits",
    [[None, 100, None, 7, None], [100, None, 100, None], [5000, 1, None, 2, 3, None]],
    ids=["full-first", "paced-first", "tiny"],
)
def test_paced_and_full_size_messages_mix_without_losing_a_byte(limits: list[int | None]) -> None:
    """Full-size messages come from the shared memo of cut payloads, paced ones are cut on
    demand: switching between the two in the middle of a piece keeps every byte in order."""
    lookalike = wire.CSTR + b"x" * 92 + wire.CEND
    data = lookalike * 3 + PAYLOAD[:3000]
    upload = Upload(segment_id=7, request_id=3, data=data, length=len(data), max_message_size=1000)
    sent = []
    while (chunk := upload.next_chunk(limits[len(sent) % len(limits)])) is not None:
        assert not wire.is_command_chunk(chunk)
        limit = limits[len(sent) % len(limits)]
        assert len(chunk) <= min(1000, limit if limit is not None else 1000)
        sent.append(chunk)
    assert b"".join(sent) == data and upload.finished


# ------------------------------------------------------------------ any input


_valid = st.sampled_from(
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
_framed = st.builds(
    lambda start, body, end: start + body + end,
    st.sampled_from([wire.CSTR, wire.DSTR]),
    st.binary(max_size=40),
    st.sampled_from([wire.CEND, wire.DEND]),
)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.one_of(st.binary(max_size=80), _framed, _valid), max_size=16), st.booleans(), st.booleans()
)
def test_any_messages_give_events_or_one_violation(
    messages: list[bytes], asked: bool, cancelled: bool
) -> None:
    downloader = machine()
    if asked:
        downloader.send_request(segment_id=3, request_id=7)
        if cancelled:
            downloader.send_cancel(7)
    found: list[Event] = []
    for message in messages:
        downloader.receive_message(message, now=0.0)
        found += events(downloader)
    violations = [e for e in found if isinstance(e, ProtocolViolated)]
    assert len(violations) <= 1 and downloader.broken == bool(violations)
    if violations:
        assert found[-1] is violations[0]  # nothing after it
    assert len(received(found)) <= (100 if asked and not cancelled else 0)
    pending = downloader.pending_command_bytes
    assert pending is None or pending <= wire.DEFAULT_MAX_COMMAND_SIZE


def test_one_payload_uploaded_to_many_peers_is_cut_once_and_alike() -> None:
    # Every upload of one payload object hands out the same chunks as chunk_segment_data cuts,
    # for each message size; the chunks are cut (copied) once per payload and size.
    payload = bytes(range(256)) * 1000 + wire.CSTR + b"x" * 60 + wire.CEND  # a lookalike inside
    for size in (65535, 1000):
        expected = wire.chunk_segment_data(payload, max_message_size=size)
        uploads = [
            machine(max_message_size=size).start_upload(segment_id=1, request_id=r, data=payload)
            for r in range(3)
        ]
        handed = [list(iter(upload.next_chunk, None)) for upload in uploads]
        assert handed == [expected] * 3
        assert all(a is b for a, b in zip(handed[0], handed[2], strict=True))


def test_remembered_chunks_are_bounded_and_growing_pieces_are_cut_as_they_come() -> None:
    from p2ploader.core import peer_protocol

    big = [bytes([n]) * (1 << 20) for n in range(8)]  # 8 MiB of payloads: more than is kept
    for payload in big:
        upload = machine(max_message_size=65535).start_upload(segment_id=1, request_id=1, data=payload)
        assert b"".join(iter(upload.next_chunk, None)) == payload
    held = [payload for payload, _ in peer_protocol._chunked.values()]
    assert sum(map(len, held)) <= peer_protocol._CHUNKED_BYTES_KEPT
    assert held and held[-1] is big[-1]  # the newest stays; the oldest went first
    # A mutable piece is never remembered: what it holds when it is cut is what goes out.
    uploader = machine(max_message_size=4)
    growing = uploader.start_upload(segment_id=2, request_id=1, data=b"", length=12)
    assert growing.next_chunk() is None
    piece = bytearray(b"abcdef")
    assert uploader.extend_upload(segment_id=2, request_id=1, data=piece)  # type: ignore[arg-type]
    assert [growing.next_chunk(), growing.next_chunk(), growing.next_chunk()] == [b"abcd", b"ef", None]
    piece[:] = b"ghijkl"
    assert uploader.extend_upload(segment_id=2, request_id=1, data=piece)  # type: ignore[arg-type]
    assert [growing.next_chunk(), growing.next_chunk(), growing.next_chunk()] == [b"ghij", b"kl", None]
    assert growing.finished
