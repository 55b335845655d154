"""The peer set (:mod:`p2ploader.core.peer_set`): one swarm's links and what every transport decides
about them, with no socket and no sleep.

Each link's far end is a second :class:`~p2ploader.core.peer_protocol.PeerProtocol` (the remote
peer's machine); messages cross when a test says so, and the clock is the number it passes in.
The transport's part is a recording :class:`~p2ploader.core.peer_set.PeerLinkIO`.
"""

from __future__ import annotations

import attrs
import pytest

from p2ploader.core import actions as act
from p2ploader.core import events as ev
from p2ploader.core import wire
from p2ploader.core.peer_limits import announcement_id_limit
from p2ploader.core.peer_protocol import PeerProtocol, Upload
from p2ploader.core.peer_set import PeerSet
from p2ploader.core.segments import SegmentId

SWARM = "v0"
A, B = "aa" * 20, "bb" * 20
MAX_SEGMENT = 100_000


@attrs.define(eq=False)
class Link:
    peer_id: str
    protocol: PeerProtocol
    remote: PeerProtocol = attrs.Factory(lambda: PeerProtocol(max_segment_size=MAX_SEGMENT))
    usable: bool = True
    sent: list[bytes] = attrs.Factory(list)
    closed: str | None = None


@attrs.define
class Io:
    """Records what the peer set asks of the transport; sends by moving messages to ``link.sent``."""

    peers: PeerSet[Link] | None = None
    calls: list[tuple[str, str]] = attrs.Factory(list)
    soon: list[ev.Event] = attrs.Factory(list)
    uploads: list[Upload] = attrs.Factory(list)
    stopped: list[Upload] = attrs.Factory(list)

    def usable(self, link: Link) -> bool:
        return link.usable

    def transmit(self, link: Link) -> None:
        link.sent.extend(link.protocol.messages_to_send())

    def pump(self, link: Link) -> None:
        self.calls.append(("pump", link.peer_id))
        assert self.peers is not None
        self.peers.drain(link)

    def close(self, link: Link, reason: str) -> None:
        self.calls.append(("close", link.peer_id))
        link.closed = link.closed or reason

    def release(self, link: Link, reason: str) -> None:
        self.calls.append(("release", link.peer_id))
        link.closed = link.closed or reason

    def feed_soon(self, event: ev.Event) -> None:
        self.soon.append(event)

    def upload_started(self, link: Link, upload: Upload) -> None:
        self.uploads.append(upload)

    def upload_extended(self, link: Link) -> None:
        self.calls.append(("extended", link.peer_id))

    def upload_stopped(self, link: Link, upload: Upload) -> None:
        self.stopped.append(upload)


@attrs.define
class World:
    peers: PeerSet[Link]
    io: Io
    events: list[ev.Event]
    bans: set[tuple[str, str | None]]
    bound: list[tuple[str, str]]

    def link(self, peer_id: str, *, certificate: str | None = None, usable: bool = True) -> Link:
        link = Link(peer_id, self.peers.new_protocol(), usable=usable)
        self.peers.add(peer_id, link, now=0.0, certificate=certificate)
        return link

    def from_remote(self, link: Link, command: wire.Command, *, now: float) -> None:
        for message in wire.encode_command(command):
            self.peers.receive(link, message, now=now)


def world(*, live: bool = False, first_sequence: int = 0, **kwargs: object) -> World:
    events: list[ev.Event] = []
    bans: set[tuple[str, str | None]] = set()
    bound: list[tuple[str, str]] = []
    io = Io()
    peers: PeerSet[Link] = PeerSet(
        swarm=SWARM,
        live=live,
        first_sequence=first_sequence,
        feed=events.append,
        io=io,
        max_segment_size=MAX_SEGMENT,
        is_banned=lambda peer_id, certificate: (peer_id, certificate) in bans or (peer_id, None) in bans,
        bind_certificate=lambda peer_id, certificate: bound.append((peer_id, certificate)),
        **kwargs,  # type: ignore[arg-type]
    )
    io.peers = peers
    return World(peers=peers, io=io, events=events, bans=bans, bound=bound)


def sid(sequence: int, rendition: str = SWARM) -> SegmentId:
    return SegmentId(rendition, sequence)


def commands(messages: list[bytes]) -> list[wire.Command | wire.DataChunk]:
    decoder = wire.WireDecoder()
    return [item for message in messages for item in decoder.receive(message)]


# ------------------------------------------------------------------ downloads


def test_a_request_goes_out_in_wire_ids_and_its_answer_comes_back_as_core_events() -> None:
    w = world(live=True, first_sequence=100)
    link = w.link(A)
    w.peers.perform(act.RequestFromPeer(request_id=7, peer_id=A, segment_id=sid(104), byte_offset=2))
    # Live: the media sequence number is the wire id, whatever the playlist's first.
    assert commands(link.sent) == [wire.SegmentRequest(segment_id=104, request_id=7, byte_offset=2)]
    link.remote.receive_message(link.sent.pop(), now=0.0)
    upload = link.remote.start_upload(segment_id=104, request_id=7, data=b"abcde")
    link.remote.begin_upload(upload)
    messages = link.remote.messages_to_send()
    while (chunk := upload.next_chunk()) is not None:
        messages.append(chunk)
    link.remote.complete_upload(upload)
    for message in messages + link.remote.messages_to_send():
        w.peers.receive(link, message, now=1.0)
    assert w.events == [
        ev.PeerResponseStarted(request_id=7, total_bytes=7),
        ev.PeerChunkReceived(request_id=7, data=b"abcde"),
    ]


def test_vod_wire_ids_are_positions_in_the_playlist() -> None:
    w = world(live=False, first_sequence=100)
    assert w.peers.wire_id(sid(103)) == 3 and w.peers.segment_id(3) == sid(103)
    live = world(live=True, first_sequence=100)
    assert live.peers.wire_id(sid(103)) == 103 and live.peers.segment_id(103) == sid(103)


def test_a_request_to_a_peer_without_a_usable_link_fails_after_the_step_not_within_it() -> None:
    w = world()
    connecting = w.link(A, usable=False)
    w.peers.perform(act.RequestFromPeer(request_id=1, peer_id=A, segment_id=sid(1)))
    w.peers.perform(act.RequestFromPeer(request_id=2, peer_id=B, segment_id=sid(1)))  # no link at all
    assert w.events == [] and connecting.sent == []
    assert w.io.soon == [
        ev.PeerDownloadFailed(request_id=1, reason="peer gone"),
        ev.PeerDownloadFailed(request_id=2, reason="peer gone"),
    ]


def test_a_cancel_goes_out_only_for_the_outstanding_request() -> None:
    w = world()
    link = w.link(A)
    w.peers.perform(act.CancelPeerDownload(request_id=3, peer_id=A, segment_id=sid(1)))
    assert link.sent == []  # nothing outstanding: nothing to cancel
    w.peers.perform(act.RequestFromPeer(request_id=3, peer_id=A, segment_id=sid(1)))
    w.peers.perform(act.CancelPeerDownload(request_id=3, peer_id=A, segment_id=sid(1)))
    assert commands(link.sent)[-1] == wire.CancelSegmentRequest(segment_id=1, request_id=3)


# ------------------------------------------------------------------ announcements


def test_an_announcement_carries_only_this_swarms_segments_to_every_usable_link_in_link_order() -> None:
    w = world()
    first, connecting, second = w.link(A), w.link("cc" * 20, usable=False), w.link(B)
    action = act.AnnounceSegments(
        loaded=(sid(1), sid(2, "a1"), sid(3)), loading_by_http=(sid(4), sid(5, "a1"))
    )
    w.peers.perform(action)
    expected = wire.SegmentsAnnouncement(loaded=(1, 3), loading_by_http=(4,))
    assert commands(first.sent) == [expected] and commands(second.sent) == [expected]
    assert connecting.sent == []
    assert list(w.peers.links) == [A, "cc" * 20, B]


def test_an_announcement_to_one_peer_goes_to_that_peer_only() -> None:
    w = world()
    first, second = w.link(A), w.link(B)
    w.peers.perform(act.AnnounceSegments(loaded=(sid(1),), loading_by_http=(), peer_id=B))
    w.peers.perform(act.AnnounceSegments(loaded=(sid(1),), loading_by_http=(), peer_id="dd" * 20))
    assert first.sent == [] and len(commands(second.sent)) == 1


def test_a_peers_announcement_reaches_the_core_in_segment_ids() -> None:
    w = world()
    link = w.link(A)
    w.from_remote(link, wire.SegmentsAnnouncement(loaded=(1, 2), loading_by_http=(3,)), now=0.0)
    assert w.events == [
        ev.PeerAnnounced(peer_id=A, loaded=frozenset({sid(1), sid(2)}), loading_by_http=frozenset({sid(3)}))
    ]


def test_the_playlist_window_bounds_every_links_announcements() -> None:
    w = world()
    first, second = w.link(A), w.link(B)
    w.peers.set_playlist_window(10)
    limit = announcement_id_limit(10)
    assert first.protocol.max_announced_ids == second.protocol.max_announced_ids == limit
    assert w.peers.new_protocol().max_announced_ids == limit  # and every later link's
    w.from_remote(
        first, wire.SegmentsAnnouncement(loaded=tuple(range(limit + 1)), loading_by_http=()), now=0.0
    )
    (strike,) = w.events
    assert isinstance(strike, ev.PeerViolatedProtocol) and (strike.peer_id, strike.swarm) == (A, SWARM)
    assert first.closed is not None and second.closed is None


def test_a_new_links_machine_has_the_default_limits_unless_told() -> None:
    protocol = world().peers.new_protocol()
    assert protocol.max_announced_ids == wire.DEFAULT_MAX_ANNOUNCED_IDS
    assert protocol.max_message_size == wire.DEFAULT_MAX_MESSAGE_SIZE
    assert protocol.max_segment_size == MAX_SEGMENT
    told = world(max_announced_ids=50, max_message_size=1000).peers.new_protocol()
    assert (told.max_announced_ids, told.max_message_size) == (50, 1000)


# ------------------------------------------------------------------ violations


def test_a_violation_in_our_download_fails_it_as_misbehaviour_and_closes_the_link() -> None:
    w = world()
    link = w.link(A)
    w.peers.perform(act.RequestFromPeer(request_id=9, peer_id=A, segment_id=sid(4)))
    w.from_remote(link, wire.SegmentData(segment_id=4, request_id=8, size=3), now=0.0)
    assert w.events == [
        ev.PeerDownloadFailed(request_id=9, reason="data header does not match our request", misbehaved=True)
    ]
    assert link.closed == "protocol violation: data header does not match our request"
    assert w.peers.violations == 1
    w.from_remote(link, wire.SegmentData(segment_id=4, request_id=8, size=3), now=0.0)
    assert len(w.events) == 1 and w.peers.violations == 1  # one incident, one report


def test_a_violation_outside_our_downloads_is_a_strike_in_this_swarm() -> None:
    w = world()
    link = w.link(A)
    w.peers.receive(link, b"\xff\x00garbage", now=0.0)
    (strike,) = w.events
    assert isinstance(strike, ev.PeerViolatedProtocol) and (strike.peer_id, strike.swarm) == (A, SWARM)
    assert link.closed == f"protocol violation: {strike.reason}"


def test_the_flood_guard_sees_the_time_the_transport_passes_in() -> None:
    w = world()
    steady, flooding = w.link(A), w.link(B)
    announcement = wire.SegmentsAnnouncement(loaded=(1,), loading_by_http=())
    # 100 commands per second for 10 s: the guard's rate, never a flood.
    for n in range(1000):
        w.from_remote(steady, announcement, now=n / 100)
    assert steady.closed is None
    # The same 1000 commands within one second: a flood once the burst is spent.
    for n in range(1000):
        w.from_remote(flooding, announcement, now=n / 1000)
    assert flooding.closed == "protocol violation: flooded us with commands"
    assert [e for e in w.events if isinstance(e, ev.PeerViolatedProtocol)] == [
        ev.PeerViolatedProtocol(peer_id=B, swarm=SWARM, reason="flooded us with commands")
    ]


def test_disconnect_closes_the_link_with_the_cores_reason() -> None:
    w = world()
    link = w.link(A)
    w.peers.perform(act.DisconnectPeer(peer_id=A, reason="too slow"))
    w.peers.perform(act.DisconnectPeer(peer_id=B, reason="not linked"))
    assert link.closed == "too slow" and w.io.calls == [("close", A)]


# ------------------------------------------------------------------ uploads


def upload_action(peer_id: str = A, *, growing: bool = False, data: bytes = b"abc") -> act.SendSegmentToPeer:
    return act.SendSegmentToPeer(
        peer_id=peer_id,
        segment_id=sid(2),
        data=data,
        byte_offset=0,
        total_bytes=6 if growing else len(data),
        peer_request_id=5,
        growing=growing,
    )


def test_an_upload_starts_on_the_machine_and_goes_to_the_transport() -> None:
    w = world()
    w.link(A)
    w.link(B, usable=False)
    w.peers.perform(upload_action(A))
    w.peers.perform(upload_action(B))  # still connecting: no upload
    w.peers.perform(upload_action("dd" * 20))  # no link: none
    (upload,) = w.io.uploads
    assert (upload.segment_id, upload.request_id, upload.length) == (2, 5, 3)
    assert w.peers.links[A].protocol.upload is upload


def test_a_growing_upload_is_extended_and_the_transport_told_only_when_the_machine_took_bytes() -> None:
    w = world()
    w.link(A)
    w.peers.perform(upload_action(A, growing=True))
    (upload,) = w.io.uploads
    assert upload.length == 6
    w.peers.perform(act.ExtendUpload(peer_id=A, segment_id=sid(3), data=b"x", peer_request_id=5))
    assert w.io.calls == []  # another segment: not this upload's bytes
    w.peers.perform(act.ExtendUpload(peer_id=A, segment_id=sid(2), data=b"def", peer_request_id=5))
    assert w.io.calls == [("extended", A)]


def test_an_absent_stops_the_upload_it_answers_and_goes_out() -> None:
    w = world()
    link = w.link(A)
    w.peers.perform(upload_action(A))
    (upload,) = w.io.uploads
    w.peers.perform(act.AbortUpload(peer_id=A, segment_id=sid(2), peer_request_id=5))
    assert w.io.stopped == [upload] and ("pump", A) in w.io.calls
    assert commands(link.sent)[-1] == wire.SegmentAbsent(segment_id=2, request_id=5)


def test_a_peers_request_and_cancel_reach_the_core_and_the_cancel_stops_our_upload() -> None:
    w = world()
    link = w.link(A)
    w.from_remote(link, wire.SegmentRequest(segment_id=2, request_id=5, byte_offset=1), now=0.0)
    assert w.events == [
        ev.PeerRequestedSegment(peer_id=A, segment_id=sid(2), byte_offset=1, peer_request_id=5)
    ]
    w.peers.perform(upload_action(A))
    (upload,) = w.io.uploads
    w.from_remote(link, wire.CancelSegmentRequest(segment_id=2, request_id=5), now=0.5)
    assert w.io.stopped == [upload]
    assert w.events[-1] == ev.PeerCancelledUpload(peer_id=A, segment_id=sid(2))


# ------------------------------------------------------------------ bans


def test_a_banned_peer_is_refused_on_its_certificate_and_a_new_link_binds_its_certificate() -> None:
    w = world()
    w.bans.add((A, "cert-a"))
    assert w.peers.refuses(A, "cert-a")
    assert not w.peers.refuses(A, "cert-other")  # someone else using its id is not framed
    assert not w.peers.refuses(B, "cert-b")
    w.link(B, certificate="cert-b")
    w.link("cc" * 20)  # no certificate (a modelled link): nothing to bind
    assert w.bound == [(B, "cert-b")]
    assert w.peers.certificates == {B: "cert-b"}


def test_banned_names_the_linked_peers_banned_since_by_their_certificate() -> None:
    w = world()
    w.link(A, certificate="cert-a")
    w.link(B, certificate="cert-b")
    w.link("cc" * 20)
    assert w.peers.banned() == ()
    w.bans.update({(B, "cert-b"), ("cc" * 20, None)})
    assert w.peers.banned() == (B,)  # a link without a certificate is not swept
    w.peers.remove(B)
    assert w.peers.banned() == () and B not in w.peers.certificates


def test_nobody_is_banned_without_a_verdict() -> None:
    peers: PeerSet[Link] = PeerSet(
        swarm=SWARM, live=False, first_sequence=0, feed=lambda event: None, io=Io(), max_segment_size=1
    )
    assert not peers.refuses(A, "cert-a") and not peers.refuses(A)
    peers.add(A, Link(A, peers.new_protocol()), now=0.0, certificate="cert-a")  # no binder: only recorded
    assert peers.certificates == {A: "cert-a"} and peers.banned() == ()


def test_remove_forgets_only_the_link_named() -> None:
    w = world()
    old = w.link(A)
    new = w.link(A)
    assert w.peers.remove(A, old) is None and w.peers.links[A] is new
    assert w.peers.remove(A, new) is new and A not in w.peers.links
    assert w.peers.remove(A) is None


@pytest.mark.parametrize("action", [act.SendSegmentAbsent, act.AbortUpload])
def test_an_absent_or_abort_for_an_unlinked_peer_does_nothing(action: type[act.SendSegmentAbsent]) -> None:
    w = world()
    w.peers.perform(action(peer_id=A, segment_id=sid(1), peer_request_id=1))
    assert w.io.calls == [] and w.events == []


def test_a_new_link_without_a_certificate_is_not_judged_by_the_old_links() -> None:
    w = world()
    w.link(A, certificate="cert-old")
    w.bans.add((A, "cert-old"))
    w.link(A)  # the same id on a new link with no certificate
    assert A not in w.peers.certificates and w.peers.banned() == ()
