"""The upload desk on its own, with a fake host: no scheduler, no policy, no clock but ``now``."""

from __future__ import annotations

import attrs

from p2ploader.config import LoaderConfig
from p2ploader.core import actions as act
from p2ploader.core import events as ev
from p2ploader.core import notifications as nt
from p2ploader.core.cache import CachedSegment, SegmentCache
from p2ploader.core.segments import Segment, SegmentId
from p2ploader.core.uploads import REPEATS_BEFORE_STRIKE, RelaySource, UploadDesk

SEGMENTS = [Segment(id=SegmentId("v", n), url=f"s{n}.ts", duration=4.0, start=4.0 * n) for n in range(4)]
DATA = b"x" * 1000


@attrs.define
class FakeHost:
    cache: SegmentCache = attrs.Factory(SegmentCache)
    actions: list[act.Action] = attrs.Factory(list)
    notifications: list[nt.Notification] = attrs.Factory(list)
    downloads: dict[SegmentId, RelaySource] = attrs.Factory(dict)
    dropped: list[tuple[str, str]] = attrs.Factory(list)
    thin: bool = False
    accept: bool = True

    def emit(self, action: act.Action) -> None:
        self.actions.append(action)

    def notify(self, notification: nt.Notification) -> None:
        self.notifications.append(notification)

    def cached(self, segment_id: SegmentId, *, now: float) -> CachedSegment | None:
        return self.cache.get(segment_id, now=now)

    def segment(self, segment_id: SegmentId) -> Segment:
        return SEGMENTS[segment_id.sequence]

    def http_download(self, segment_id: SegmentId) -> RelaySource | None:
        return self.downloads.get(segment_id)

    def buffer_too_thin(self) -> bool:
        return self.thin

    def accepts_upload(self, segment: Segment, *, now: float) -> bool:
        return self.accept

    def drop_misbehaving_peer(self, peer_id: str, swarm: str, reason: str) -> None:
        self.dropped.append((peer_id, reason))


def desk_with(**config: object) -> tuple[UploadDesk, FakeHost]:
    host = FakeHost()
    host.cache.put(SEGMENTS[0], DATA, now=0.0)
    desk = UploadDesk(LoaderConfig(**config), host)  # type: ignore[arg-type]
    desk.peer_connected("A")
    return desk, host


def ask(desk: UploadDesk, sequence: int, request_id: int, *, now: float = 0.0, offset: int = 0) -> None:
    desk.serve(
        ev.PeerRequestedSegment(
            peer_id="A", segment_id=SegmentId("v", sequence), byte_offset=offset, peer_request_id=request_id
        ),
        now=now,
    )


def test_a_cached_segment_is_sent_and_counted_and_its_end_measures_the_upload_speed() -> None:
    desk, host = desk_with()
    ask(desk, 0, 1, offset=200)
    [sent] = host.actions
    assert isinstance(sent, act.SendSegmentToPeer)
    assert (sent.data, sent.byte_offset, sent.total_bytes, sent.peer_request_id) == (DATA[200:], 200, 1000, 1)
    assert desk.uploaded_bytes == 800 and desk.active == 1
    assert host.notifications == [nt.BytesUploaded(size=800, peer_id="A")]
    assert desk.upload_speed is None
    desk.upload_finished(ev.UploadFinished(peer_id="A", peer_request_id=1, sent_bytes=1000), now=2.0)
    assert desk.active == 0
    assert desk.upload_speed == 2.0  # a 4 s segment in 2 s: media seconds per second


def test_absent_for_what_we_lack_a_thin_buffer_or_a_policy_that_declines() -> None:
    for change, sequence in (({}, 1), ({"thin": True}, 0), ({"accept": False}, 0)):
        desk, host = desk_with()
        for name, value in change.items():
            setattr(host, name, value)
        ask(desk, sequence, 1)
        assert [type(a) for a in host.actions] == [act.SendSegmentAbsent], change
        assert desk.uploaded_bytes == 0


def test_a_peer_over_its_budget_is_answered_absent_and_counted() -> None:
    desk, host = desk_with(upload_budget_rate=1.0, upload_budget_burst=4.0, max_concurrent_uploads=0)
    ask(desk, 0, 1)  # 4 media seconds: the whole burst
    ask(desk, 0, 2)
    assert [type(a) for a in host.actions] == [act.SendSegmentToPeer, act.SendSegmentAbsent]
    assert desk.over_budget == 1


def test_asking_again_for_absent_segments_is_a_flood_until_we_announce() -> None:
    desk, host = desk_with()
    for request_id in range(REPEATS_BEFORE_STRIKE):
        ask(desk, 1, request_id)
    assert host.dropped == []
    desk.announced(None)  # the peer may ask again: the count starts over
    for request_id in range(REPEATS_BEFORE_STRIKE):
        ask(desk, 1, request_id)
    assert host.dropped == []
    ask(desk, 1, 99)
    assert host.dropped == [("A", "asked again and again for segments we answered absent")]


def test_a_dropped_peer_loses_its_slots_and_is_not_served() -> None:
    desk, host = desk_with()
    ask(desk, 0, 1)
    desk.peer_dropped("A")
    assert desk.active == 0
    ask(desk, 0, 2)
    assert isinstance(host.actions[-1], act.SendSegmentAbsent)
