"""The peer manager: one swarm's WebRTC peers, speaking P2P Media Loader 2.x's wire protocol.

It is the :class:`~p2ploader.aio.driver.PeerTransport` of the driver and the signalling side of the
tracker client:

* **Signalling.** ``make_offers`` pre-creates peer connections with complete (non-trickle) offers;
  ``on_answer`` completes one; ``on_offer`` answers a remote offer. At most one link per remote peer;
  a link that does not open within ``connect_timeout`` is closed.
* **Admission** (:mod:`p2ploader.core.admission`). ``max_peers`` open links, a separate small cap on
  links still connecting, a budget of remote offers answered per time window; when slots are full
  a newly opened link takes the slot of a peer that delivers nothing and takes nothing from us
  (past its grace period), or is closed. An open link is never replaced by a second connection
  claiming the same peer id; bans fall on the remote's DTLS certificate
  (:func:`~p2ploader.core.bans.certificate_identity`), not on the id alone, so a peer cannot be
  framed by someone using its id.
* **Core actions → wire.** Requests, cancels, announcements (filtered to this swarm's rendition),
  uploads (header, data chunks with backpressure and an optional rate cap, completion; one upload
  at a time, first come first served) and absences.
* **Wire → core events.** Connection and disconnection, announcements, data headers and chunks of
  our one outstanding request per peer, absences, the remote's requests and cancels.

Protocol checks follow the browser's receiver (a header or completion that does not match the
outstanding request, data without a header, more or fewer bytes than announced, undecodable
frames): the request fails as misbehaviour, which makes the scheduler disconnect the peer and load
the segment elsewhere. Bytes arriving after we cancelled a request are dropped, not held against the
peer while they are bytes it announced (they were in flight); more than that is a violation.

What one peer may cost us is bounded (:mod:`p2ploader.core.peer_limits`): a data header announcing
more than the stream's bitrate allows is refused before its bytes come, an announcement with more
ids than the playlist's window allows is refused while it is decoded, and an upload whose receiver
stops taking bytes for ``upload_stall_timeout`` seconds gives the uplink turn up (the peer is
disconnected with a strike).
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable, Collection, Mapping
from typing import Any

import attrs

from p2ploader.aio.tracker_client import Offer
from p2ploader.aio.webrtc import PeerLink, create_connection, set_remote
from p2ploader.core import actions as act
from p2ploader.core import events as ev
from p2ploader.core import swarm, wire
from p2ploader.core.admission import Admission, AdmissionLimits, AdmissionStatistics
from p2ploader.core.bans import CommandRate, PeerBans, certificate_identity
from p2ploader.core.peer_limits import announcement_id_limit
from p2ploader.core.scheduler import MAX_SEGMENT_SIZE
from p2ploader.core.segments import SegmentId
from p2ploader.errors import PeerProtocolError

__all__ = ["PeerManager", "PeerManagerStatistics"]

logger = logging.getLogger(__name__)

GROWING_UPLOAD_PATIENCE = 30.0
"""Seconds a growing upload (cut-through) waits for its next bytes before it gives up."""


@attrs.frozen(kw_only=True)
class PeerManagerStatistics:
    links: int
    pending_offers: int
    connections_opened: int
    protocol_errors: int
    uploads: int
    uploaded_bytes: int
    admission: AdmissionStatistics | None = None
    """Evictions and declined offers (see :mod:`p2ploader.core.admission`)."""


@attrs.define
class _Download:
    """Our one outstanding request to a peer."""

    request_id: int
    wire_segment: int
    byte_offset: int
    expected: int | None = None  # bytes announced by the data header
    received: int = 0


class _UploadData:
    """The bytes of one upload. A growing one (cut-through: the segment is still arriving over
    HTTP) gets more pieces until it holds ``length`` bytes; its sender waits for them."""

    def __init__(self, data: bytes, *, length: int) -> None:
        self.pieces = [data] if data else []
        self.length = length
        self.received = len(data)
        self.more = asyncio.Event()

    def extend(self, data: bytes) -> None:
        data = data[: max(0, self.length - self.received)]  # never past the announced size
        if data:
            self.pieces.append(data)
            self.received += len(data)
            self.more.set()


@attrs.define
class _PeerState:
    link: PeerLink
    decoder: wire.WireDecoder
    download: _Download | None = None
    # Data, headers and completions of requests we cancelled may still be in flight: they are
    # dropped until the header of our next request arrives.
    discarding: bool = False
    cancelled: set[tuple[int, int]] = attrs.Factory(set)  # (wire segment id, wire request id)
    finished: tuple[int, int] | None = None  # all bytes in; its sending-completed is still to come
    # Bytes of cancelled requests the peer may still send (what their headers announced and had
    # not arrived yet); data beyond it while discarding is a flood, not bytes in flight.
    discard_allowance: int = 0
    upload: asyncio.Task[None] | None = None
    upload_key: tuple[int, int] | None = None  # (wire segment id, wire request id)
    close_reason: str | None = None  # why we closed its link, for PeerGone (None: not us)
    upload_data: _UploadData | None = None
    commands: CommandRate = attrs.Factory(CommandRate)  # flood guard
    admitted: bool = False  # its channel opened and it got a slot (PeerConnected was fed)


class PeerManager:
    """Peers of one swarm (one rendition of one stream)."""

    def __init__(
        self,
        *,
        feed: Callable[[ev.Event], None],
        rendition: str,
        live: bool,
        first_sequence: int,
        local_peer_id: str,
        rtc_config: Mapping[str, Any],
        max_peers: int = 20,
        max_message_size: int = 65535,
        connect_timeout: float = 15.0,
        upload_rate_limit: float | None = None,
        upload_stall_timeout: float | None = 5.0,
        max_segment_size: int = MAX_SEGMENT_SIZE,
        max_announced_ids: int = wire.DEFAULT_MAX_ANNOUNCED_IDS,
        rng: random.Random | None = None,
        on_peer_gone: Callable[[str], None] | None = None,
        on_peer_status: Callable[[str, bool, str | None], None] | None = None,
        bans: PeerBans | None = None,
        on_misbehaved: Callable[[str, str], None] | None = None,
        admit: Callable[[str, Collection[str]], bool] | None = None,
        wants_offers: Callable[[Collection[str]], bool] | None = None,
        admission: AdmissionLimits | None = None,
        wants: Callable[[Collection[SegmentId]], bool] | None = None,
    ) -> None:
        self._feed_core = feed
        self.rendition = rendition
        self._live = live
        self._first_sequence = first_sequence
        self.local_peer_id = local_peer_id
        self._rtc_config = rtc_config
        self._max_peers = max_peers
        self._max_message_size = max_message_size
        self._connect_timeout = connect_timeout
        self._upload_rate_limit = upload_rate_limit
        self._upload_stall_timeout = upload_stall_timeout
        """Seconds an upload waits for a receiver that takes no bytes at all; ``None``: for ever."""
        self._max_segment_size = max_segment_size
        """Bytes a data header may announce (the stream's bitrate allows no more)."""
        self._max_announced_ids = max_announced_ids
        """Ids one announcement may carry (the playlist's window allows no more)."""
        self._rng = rng or random.Random()
        self._on_peer_gone = on_peer_gone
        """Called with a peer id when its link closed (the tracker client then stops ignoring it, so
        it can reconnect, e.g. after a rendition switch brings it back to this swarm)."""
        self._on_peer_status = on_peer_status
        """``on_peer_status(peer_id, connected, reason)``: a peer got a slot (``True``, ``None``) or
        the link of such a peer closed (``False``, why)."""
        self._bans = bans
        """This swarm's banned peers: their offers and answers are refused."""
        self._on_misbehaved = on_misbehaved
        """Called with ``(peer_id, reason)`` for a violation the scheduler does not see (no request
        of ours was outstanding); the scheduler reports the others as ``PeerMisbehaved``."""
        self._admit = admit
        """Topology gate (host/client tree): ``admit(peer_id, linked_peer_ids)`` decides whether a
        new link to ``peer_id`` is accepted; ``None`` accepts everyone (mesh)."""
        self._wants_offers = wants_offers
        """``wants_offers(linked_peer_ids)``: ``False`` makes no offers (a host waits for clients, a
        client with its host needs no more); ``None``: always offer (mesh)."""
        self._admission = Admission(admission or AdmissionLimits(max_peers=max_peers))
        """Slots, eviction of idle peers, caps on connecting links and on offers answered."""
        self._wants = wants
        """``wants(segment_ids)``: whether any of them is a segment we may still need (queued, not
        cached); a peer announcing such segments keeps its slot until its requests fail. ``None``:
        any segment we did not announce ourselves counts."""
        self._own_loaded: frozenset[SegmentId] = frozenset()  # our latest announcement
        self._request_peer: dict[int, str] = {}  # our request id -> the peer asked (latest per peer)
        self._peer_request: dict[str, int] = {}
        self._peers: dict[str, _PeerState] = {}
        self._pending_offers: dict[bytes, tuple[Any, Any]] = {}  # offer id -> (pc, channel)
        self._timeouts: set[asyncio.Task[None]] = set()
        self._opened = 0
        self._protocol_errors = 0
        self._uploads = 0
        self._uploaded = 0
        self._closed = False
        self._upload_budget_at = 0.0  # loop time when the rate cap allows the next byte
        # Our uploads take turns on the uplink, first come first served: each one finishes as early
        # as it can instead of all finishing late together (asyncio.Lock wakes waiters in order).
        self._uplink_turn = asyncio.Lock()

    # ------------------------------------------------------------------ ids

    def _wire_id(self, segment_id: SegmentId) -> int:
        return swarm.segment_wire_id(segment_id, live=self._live, first_sequence=self._first_sequence)

    def _segment_id(self, wire_id: int) -> SegmentId:
        return swarm.segment_id_from_wire(
            self.rendition, wire_id, live=self._live, first_sequence=self._first_sequence
        )

    def set_playlist_window(self, segments: int) -> None:
        """The playlist now lists ``segments`` segments: bound the announcements of every peer by it
        (:func:`~p2ploader.core.peer_limits.announcement_id_limit`)."""
        self._max_announced_ids = announcement_id_limit(segments)
        for state in self._peers.values():
            state.decoder.max_announced_ids = self._max_announced_ids

    # ------------------------------------------------------------------ signalling (tracker client callbacks)

    def _now(self) -> float:
        return asyncio.get_running_loop().time()

    def _wanted(self, segments: Collection[SegmentId]) -> bool:
        if self._wants is not None:
            return self._wants(segments)
        own = self._own_loaded
        return any(segment not in own for segment in segments)

    @property
    def room(self) -> int:
        """How many more peers are worth an offer now: free slots, counting idle peers a newcomer
        would replace, minus the links and offers of ours still pending (remote offers' connecting
        links do not count: fake offers must not stop our own search)."""
        room = self._admission.room(now=self._now(), wants=self._wanted)
        return max(0, room - len(self._pending_offers))

    def wants_peers(self, swarm_size: int) -> bool:
        """Whether to look for peers sooner than the tracker's interval (``TrackerClient``'s
        ``wants_peers``): no linked peer delivers to us, takes from us or holds what we need, a
        newcomer could get a slot, and we are not alone (the tracker counts ``swarm_size`` peers,
        us included, or peers are linked)."""
        if self._closed or (swarm_size <= 1 and self._admission.open_count == 0):
            return False
        return self._admission.earning(now=self._now(), wants=self._wanted) == 0 and self.room > 0

    @property
    def linked(self) -> tuple[str, ...]:
        """Peer ids (hex) with a link, open or still connecting."""
        return tuple(self._peers)

    def _admitted(self, peer_id: str) -> bool:
        if self._admit is None or peer_id in self._peers:
            return True  # mesh; or glare on a link already admitted
        return self._admit(peer_id, tuple(self._peers))

    async def make_offers(self, count: int) -> list[Offer]:
        offers: list[Offer] = []
        if self._wants_offers is not None and not self._wants_offers(tuple(self._peers)):
            return offers
        links = []
        for _ in range(min(count, self.room)):
            pc = create_connection(self._rtc_config)
            links.append((pc, pc.createDataChannel(self._rng.randbytes(20).hex())))

        async def describe(pc: Any) -> None:
            await pc.setLocalDescription(await pc.createOffer())

        # Gathered side by side: each gathering may wait up to 5 s for a STUN server that does not
        # answer (a network that drops STUN), so one after another an announce of 10 offers
        # would wait about 50 s for its offers.
        try:
            await asyncio.gather(*(describe(pc) for pc, _ in links))
        except BaseException:
            for pc, _ in links:
                await pc.close()
            raise
        for pc, channel in links:
            offer_id = self._rng.randbytes(20)
            self._pending_offers[offer_id] = (pc, channel)
            offers.append(Offer(offer_id=offer_id, sdp=pc.localDescription.sdp))
        return offers

    async def offer_expired(self, offer_id: bytes) -> None:
        pending = self._pending_offers.pop(offer_id, None)
        if pending is not None:
            await pending[0].close()

    async def on_answer(self, remote_peer_id: bytes, offer_id: bytes, sdp: str) -> None:
        pending = self._pending_offers.pop(offer_id, None)
        if pending is None:
            return
        pc, channel = pending
        peer_id = remote_peer_id.hex()
        certificate = certificate_identity(sdp)
        if (
            self._closed
            or peer_id == self.local_peer_id
            or certificate is None
            or self._banned(peer_id, certificate)
            or not self._admitted(peer_id)
        ):
            await pc.close()
            return
        if peer_id in self._peers:
            if self._keep_existing_link(peer_id):
                await pc.close()
                return
            replaced = self._peers.pop(peer_id).link
            self._admission.closed(peer_id)
            replaced.close()
        link = self._new_link(pc, peer_id, initiator=True, certificate=certificate)
        link.attach_channel(channel)
        try:
            await set_remote(pc, sdp, "answer")
        except Exception as exc:  # a malformed SDP from the remote: drop this attempt
            logger.info("peer %s: bad answer SDP: %s", peer_id, exc)
            await link.aclose()
            return
        self._arm_connect_timeout(link)

    async def on_offer(self, remote_peer_id: bytes, offer_id: bytes, sdp: str) -> str | None:
        peer_id = remote_peer_id.hex()
        certificate = certificate_identity(sdp)
        if (
            self._closed
            or peer_id == self.local_peer_id
            or peer_id in self._peers
            or certificate is None
            or self._banned(peer_id, certificate)
            or not self._admitted(peer_id)
        ):
            return None
        now = self._now()
        if not self._admission.has_slot(now=now, wants=self._wanted):
            logger.debug("peer %s: offer declined: every slot holds a useful peer", peer_id)
            return None
        answer, replace = self._admission.may_answer(now=now, peer_id=peer_id)
        if not answer:
            logger.debug("peer %s: offer declined: over the offer budget or too many connecting", peer_id)
            return None
        if replace is not None:
            logger.info("peer %s: still connecting; its place goes to a newer offer", replace)
            self._admission.closed(replace)
            self._close_link(replace, "still connecting when a newer offer came")
        pc = create_connection(self._rtc_config)
        link = self._new_link(pc, peer_id, initiator=False, certificate=certificate)
        pc.on("datachannel", link.attach_channel)
        try:
            await set_remote(pc, sdp, "offer")
            await pc.setLocalDescription(await pc.createAnswer())
        except Exception as exc:
            logger.info("peer %s: bad offer SDP: %s", peer_id, exc)
            await link.aclose()
            return None
        self._arm_connect_timeout(link)
        return str(pc.localDescription.sdp)

    def _banned(self, peer_id: str, certificate: str) -> bool:
        bans = self._bans
        return bans is not None and bans.is_banned(peer_id, now=self._now(), certificate=certificate)

    def _keep_existing_link(self, peer_id: str) -> bool:
        """A second connection with ``peer_id`` answered our offer. ``True``: drop it.

        An open link is always kept: peer ids are self-asserted, and anyone claiming the id of a
        connected peer must not replace or close it. While the existing link is still connecting,
        both sides answered each other's offers (glare): keep the connection whose offerer has the
        smaller peer id (both sides reach the same verdict)."""
        existing = self._peers[peer_id].link
        if existing.is_open:
            return True
        existing_offerer = self.local_peer_id if existing.initiator else peer_id
        return existing_offerer <= self.local_peer_id

    def _close_link(self, peer_id: str, reason: str) -> None:
        state = self._peers.get(peer_id)
        if state is not None and not state.link.closing:
            _close_with_reason(state, reason)

    def _new_link(self, pc: Any, peer_id: str, *, initiator: bool, certificate: str) -> PeerLink:
        link = PeerLink(
            pc,
            peer_id=peer_id,
            initiator=initiator,
            on_open=self._link_opened,
            on_message=self._link_message,
            on_closed=self._link_closed,
        )
        self._peers[peer_id] = _PeerState(
            link=link, decoder=wire.WireDecoder(max_announced_ids=self._max_announced_ids)
        )
        self._admission.link_created(peer_id, now=self._now(), answered=not initiator)
        if self._bans is not None:
            self._bans.bind(peer_id, certificate)  # strikes and bans under this id hit this certificate
        return link

    def _arm_connect_timeout(self, link: PeerLink) -> None:
        async def expire() -> None:
            await asyncio.sleep(self._connect_timeout)
            if not link.is_open and not link.closed:
                logger.info("peer %s: no connection within %.0f s", link.peer_id, self._connect_timeout)
                await link.aclose()

        task = asyncio.get_running_loop().create_task(expire())
        self._timeouts.add(task)
        task.add_done_callback(self._timeouts.discard)

    # ------------------------------------------------------------------ link callbacks

    def _link_opened(self, link: PeerLink) -> None:
        state = self._peers.get(link.peer_id)
        if state is None or state.link is not link or link.closing:
            return
        self._opened += 1
        keep, evict = self._admission.admit_open(link.peer_id, now=self._now(), wants=self._wanted)
        if evict is not None:
            logger.info("peer %s: evicted (delivers nothing, takes nothing) for %s", evict, link.peer_id)
            self._admission.closed(evict)  # its slot is free now, not once its close completes
            self._close_link(evict, "evicted: it delivered nothing and took nothing")
        if not keep:
            logger.info("peer %s: every slot holds a useful peer; closed", link.peer_id)
            link.close()
            return
        state.admitted = True
        self._feed(ev.PeerConnected(peer_id=link.peer_id))
        if self._on_peer_status is not None:
            self._on_peer_status(link.peer_id, True, None)

    def _link_closed(self, link: PeerLink) -> None:
        state = self._peers.get(link.peer_id)
        if state is None or state.link is not link:
            return
        del self._peers[link.peer_id]
        self._admission.closed(link.peer_id)
        request_id = self._peer_request.pop(link.peer_id, None)
        if request_id is not None:
            self._request_peer.pop(request_id, None)
        if state.upload is not None:
            state.upload.cancel()
        if self._on_peer_gone is not None:
            self._on_peer_gone(link.peer_id)
        if state.admitted:
            self._feed(ev.PeerDisconnected(peer_id=link.peer_id))
            if self._on_peer_status is not None:
                self._on_peer_status(link.peer_id, False, state.close_reason or _remote_reason(link))

    def _feed(self, event: ev.Event) -> None:
        """Every event to the core passes here: the admission policy learns which peers deliver
        (or take uploads, or announce segments we need) on the way."""
        now = self._now()
        match event:
            case ev.PeerChunkReceived() if event.data:
                peer_id = self._request_peer.get(event.request_id)
                if peer_id is not None:
                    self._admission.delivered(peer_id, now=now)
            case ev.PeerDownloadFailed():
                peer_id = self._request_peer.get(event.request_id)
                if peer_id is not None and event.reason != "peer gone":
                    self._admission.request_failed(peer_id)
            case ev.PeerAnnounced():
                self._admission.announced(event.peer_id, event.loaded)
            case ev.UploadFinished() if event.sent_bytes > 0:
                self._admission.served(event.peer_id, now=now)
            case _:
                pass
        self._feed_core(event)

    def _link_message(self, link: PeerLink, message: bytes) -> None:
        state = self._peers.get(link.peer_id)
        # A link closing after a violation may still deliver queued messages: they are ignored, so
        # one incident is reported (and counted against the peer) once.
        if state is None or state.link is not link or link.closing:
            return
        try:
            items = state.decoder.receive(message)
        except PeerProtocolError as exc:
            self._violation(state, f"undecodable message: {exc}")
            return
        now = asyncio.get_running_loop().time()
        for item in items:
            if not isinstance(item, wire.DataChunk) and not state.commands.allow(now=now):
                self._violation(state, "flooded us with commands")
                return
            if link.closing:
                return
            try:
                self._handle(state, item)
            except PeerProtocolError as exc:
                self._violation(state, str(exc))
                return

    def _handle(self, state: _PeerState, item: wire.Command | wire.DataChunk) -> None:
        peer_id = state.link.peer_id
        match item:
            case wire.DataChunk():
                self._data(state, item.data)
            case wire.SegmentsAnnouncement():
                self._feed(
                    ev.PeerAnnounced(
                        peer_id=peer_id,
                        loaded=frozenset(self._segment_id(i) for i in item.loaded),
                        loading_by_http=frozenset(self._segment_id(i) for i in item.loading_by_http),
                    )
                )
            case wire.SegmentRequest():
                self._stop_upload(state)  # a new request replaces the upload in progress
                self._feed(
                    ev.PeerRequestedSegment(
                        peer_id=peer_id,
                        segment_id=self._segment_id(item.segment_id),
                        byte_offset=item.byte_offset,
                        peer_request_id=item.request_id,
                    )
                )
            case wire.CancelSegmentRequest():
                if state.upload_key == (item.segment_id, item.request_id):
                    self._stop_upload(state)
                self._feed(
                    ev.PeerCancelledUpload(peer_id=peer_id, segment_id=self._segment_id(item.segment_id))
                )
            case wire.SegmentData():
                download = state.download
                key = (item.segment_id, item.request_id)
                if item.size > self._max_segment_size:
                    # Refused before a byte of it comes: the stream's bitrate allows no such segment.
                    raise PeerProtocolError(
                        f"announced an impossible size ({item.size} bytes, "
                        f"more than {self._max_segment_size} the stream allows)"
                    )
                if key in state.cancelled:
                    state.discarding = True  # its data follows: drop it
                    state.discard_allowance += item.size
                    return
                if download is None or key != (download.wire_segment, download.request_id):
                    raise PeerProtocolError("data header does not match our request")
                if download.expected is not None:
                    raise PeerProtocolError("second data header for one request")
                state.discarding = False
                state.discard_allowance = 0  # what cancelled requests still had to send is stale now
                download.expected = item.size
                self._feed(
                    ev.PeerResponseStarted(
                        request_id=download.request_id, total_bytes=download.byte_offset + item.size
                    )
                )
            case wire.SegmentDataSendingCompleted():
                key = (item.segment_id, item.request_id)
                download = state.download
                if key == state.finished:
                    state.finished = None
                elif key in state.cancelled:
                    state.cancelled.discard(key)
                elif download is not None and key == (download.wire_segment, download.request_id):
                    raise PeerProtocolError(f"sent {download.received} bytes, announced {download.expected}")
                else:
                    raise PeerProtocolError("sending-completed does not match a request")
            case wire.SegmentAbsent():
                download = state.download
                state.cancelled.discard((item.segment_id, item.request_id))
                if download is not None and (item.segment_id, item.request_id) == (
                    download.wire_segment,
                    download.request_id,
                ):
                    state.download = None
                    self._feed(
                        ev.PeerDownloadFailed(request_id=download.request_id, reason="absent", absent=True)
                    )

    def _data(self, state: _PeerState, data: bytes) -> None:
        if state.discarding:
            # In flight after our cancel: dropped, and counted against what those headers announced.
            state.discard_allowance -= len(data)
            if state.discard_allowance < 0:
                raise PeerProtocolError("kept sending data after we cancelled the request")
            return
        download = state.download
        if download is None or download.expected is None:
            raise PeerProtocolError("segment data without a data header")
        download.received += len(data)
        if download.received > download.expected:
            raise PeerProtocolError("more bytes than the data header announced")
        if download.received == download.expected:
            # Complete: the scheduler may ask this peer for the next segment before the
            # sending-completed of this one arrives, so the request is retired now.
            state.finished = (download.wire_segment, download.request_id)
            state.download = None
        self._feed(ev.PeerChunkReceived(request_id=download.request_id, data=data))

    def _violation(self, state: _PeerState, reason: str) -> None:
        self._protocol_errors += 1
        logger.info("peer %s broke the protocol: %s", state.link.peer_id, reason)
        download, state.download = state.download, None
        if download is not None:
            # The scheduler disconnects it (DisconnectPeer), loads the segment elsewhere and reports.
            self._feed(ev.PeerDownloadFailed(request_id=download.request_id, reason=reason, misbehaved=True))
        elif self._on_misbehaved is not None:
            self._on_misbehaved(state.link.peer_id, reason)
        if not state.link.closed:
            _close_with_reason(state, f"protocol violation: {reason}")

    # ------------------------------------------------------------------ core actions (PeerTransport)

    def _observe(self, action: act.Action) -> None:
        """What admission needs from the core's actions: whom we ask (their bytes then count as
        delivered), whom we serve, and what we hold ourselves."""
        match action:
            case act.RequestFromPeer() if action.peer_id in self._peers:
                previous = self._peer_request.get(action.peer_id)
                if previous is not None:
                    self._request_peer.pop(previous, None)
                self._peer_request[action.peer_id] = action.request_id
                self._request_peer[action.request_id] = action.peer_id
            case act.SendSegmentToPeer():
                self._admission.served(action.peer_id, now=self._now())
            case act.CancelPeerDownload():
                # Cancelled: stalled, too slow, or no longer needed. Its announcement stops counting
                # until it delivers again (a peer announcing and then stalling must not stay useful).
                self._admission.request_failed(action.peer_id)
            case act.AnnounceSegments() if action.peer_id is None:
                self._own_loaded = frozenset(action.loaded)
            case _:
                pass

    def perform(self, action: act.Action) -> None:
        self._observe(action)
        match action:
            case act.RequestFromPeer():
                self._request(action)
            case act.CancelPeerDownload():
                self._cancel(action)
            case act.AnnounceSegments():
                self._announce(action)
            case act.SendSegmentToPeer():
                self._start_upload(action)
            case act.ExtendUpload():
                state = self._peers.get(action.peer_id)
                key = (self._wire_id(action.segment_id), action.peer_request_id or 0)
                if state is not None and state.upload_key == key and state.upload_data is not None:
                    state.upload_data.extend(action.data)
            case act.SendSegmentAbsent() | act.AbortUpload():
                state = self._peers.get(action.peer_id)
                if state is not None:
                    absent = wire.SegmentAbsent(
                        segment_id=self._wire_id(action.segment_id), request_id=action.peer_request_id or 0
                    )
                    # An aborted upload stops first. After a data header, "absent" ends the transfer
                    # for a p2ploader receiver, which keeps the bytes it has (P2P Media Loader
                    # drops the segment).
                    if state.upload_key == (absent.segment_id, absent.request_id):
                        self._stop_upload(state)
                    self._send_command(state, absent)
            case act.DisconnectPeer():
                state = self._peers.get(action.peer_id)
                if state is not None:
                    _close_with_reason(state, action.reason)

    def _request(self, action: act.RequestFromPeer) -> None:
        state = self._peers.get(action.peer_id)
        if state is None or not state.link.is_open:
            asyncio.get_running_loop().call_soon(
                self._feed, ev.PeerDownloadFailed(request_id=action.request_id, reason="peer gone")
            )
            return
        wire_id = self._wire_id(action.segment_id)
        state.download = _Download(
            request_id=action.request_id, wire_segment=wire_id, byte_offset=action.byte_offset
        )
        self._send_command(
            state,
            wire.SegmentRequest(
                segment_id=wire_id, request_id=action.request_id, byte_offset=action.byte_offset
            ),
        )

    def _cancel(self, action: act.CancelPeerDownload) -> None:
        state = self._peers.get(action.peer_id)
        if state is None or state.download is None or state.download.request_id != action.request_id:
            return
        download, state.download = state.download, None
        if download.expected is not None:
            state.discarding = True  # its header came: data may be in flight
            state.discard_allowance += download.expected - download.received
        state.cancelled.add((download.wire_segment, download.request_id))
        if len(state.cancelled) > 16:  # bounded: the oldest ones are long settled
            state.cancelled.pop()
        self._send_command(
            state, wire.CancelSegmentRequest(segment_id=download.wire_segment, request_id=download.request_id)
        )

    def _announce(self, action: act.AnnounceSegments) -> None:
        loaded = [self._wire_id(s) for s in action.loaded if s.rendition == self.rendition]
        loading = [self._wire_id(s) for s in action.loading_by_http if s.rendition == self.rendition]
        excess = len(loaded) + len(loading) - self._max_announced_ids
        if excess > 0:
            # Peers refuse announcements longer than the playlist's window allows (so do we): the
            # oldest cached segments (the scheduler lists them first) go unannounced.
            loaded = loaded[excess:]
            loading = loading[: self._max_announced_ids]
        command = wire.SegmentsAnnouncement(loaded=tuple(loaded), loading_by_http=tuple(loading))
        targets = (
            [self._peers.get(action.peer_id)] if action.peer_id is not None else list(self._peers.values())
        )
        for state in targets:
            if state is not None and state.link.is_open:
                self._send_command(state, command)

    def _send_command(self, state: _PeerState, command: wire.Command) -> None:
        size = min(self._max_message_size, state.link.max_message_size)
        for message in wire.encode_command(command, max_message_size=size):
            if not state.link.send(message):
                return

    # ------------------------------------------------------------------ uploads

    def _stop_upload(self, state: _PeerState) -> None:
        if state.upload is not None:
            state.upload.cancel()
        state.upload = None
        state.upload_key = None
        state.upload_data = None

    def _start_upload(self, action: act.SendSegmentToPeer) -> None:
        state = self._peers.get(action.peer_id)
        if state is None or not state.link.is_open:
            return
        self._stop_upload(state)
        key = (self._wire_id(action.segment_id), action.peer_request_id or 0)
        length = action.total_bytes - action.byte_offset if action.growing else len(action.data)
        data = _UploadData(action.data, length=length)
        state.upload_key = key
        state.upload_data = data
        state.upload = asyncio.get_running_loop().create_task(self._upload(state, key, data))

    async def _upload(self, state: _PeerState, key: tuple[int, int], data: _UploadData) -> None:
        sent = 0
        try:
            sent = await self._send_segment(state, key, data)
        finally:
            if state.upload_key == key:
                state.upload = None
                state.upload_key = None
                state.upload_data = None
            # Whatever ended it (done, cancelled, link gone), the scheduler's upload slot is free.
            self._feed(ev.UploadFinished(peer_id=state.link.peer_id, peer_request_id=key[1], sent_bytes=sent))

    async def _send_segment(self, state: _PeerState, key: tuple[int, int], data: _UploadData) -> int:
        """Header, data chunks (paced and backpressured), completion; returns the bytes sent.

        It waits for its turn on the uplink first: the uploads queued before it are sent whole (or
        cancelled) before it sends its header. A growing upload keeps its turn while it waits for
        the origin's next bytes (usually faster than the uplink)."""
        async with self._uplink_turn:
            return await self._send_segment_now(state, key, data)

    async def _send_segment_now(self, state: _PeerState, key: tuple[int, int], data: _UploadData) -> int:
        link = state.link
        segment_id, request_id = key
        sent = 0
        self._send_command(
            state, wire.SegmentData(segment_id=segment_id, request_id=request_id, size=data.length)
        )
        size = min(self._max_message_size, link.max_message_size)
        loop = asyncio.get_running_loop()
        index = 0
        while sent < data.length:
            if index == len(data.pieces):
                data.more.clear()
                try:
                    await asyncio.wait_for(data.more.wait(), GROWING_UPLOAD_PATIENCE)
                except TimeoutError:
                    # The scheduler stops a relay whose HTTP download ends without the segment;
                    # this bound only keeps a lost one from holding the uplink for ever.
                    logger.info(
                        "upload to %s got no new bytes in %g s", link.peer_id, GROWING_UPLOAD_PATIENCE
                    )
                    return sent
                continue
            piece = data.pieces[index]
            index += 1
            for chunk in wire.chunk_segment_data(piece, max_message_size=size):
                if not await link.wait_drained(stall_timeout=self._upload_stall_timeout):
                    # It takes nothing it was sent (a stalled or hostile receiver): the uplink turn
                    # goes to the next upload, and the peer goes, with a strike.
                    self._violation(
                        state, f"stopped reading: took no data for {self._upload_stall_timeout:g} s"
                    )
                    return sent
                if self._upload_rate_limit:
                    # Pacing over all uploads of this swarm: a chunk leaves at the end of its share
                    # of time, so N bytes never take less than N / rate seconds.
                    slot_end = max(loop.time(), self._upload_budget_at) + len(chunk) / self._upload_rate_limit
                    self._upload_budget_at = slot_end
                    delay = slot_end - loop.time()
                    if delay > 0:
                        await asyncio.sleep(delay)
                if not link.send(chunk):
                    return sent
                sent += len(chunk)
                self._uploaded += len(chunk)
        self._send_command(
            state, wire.SegmentDataSendingCompleted(segment_id=segment_id, request_id=request_id)
        )
        self._uploads += 1
        return sent

    # ------------------------------------------------------------------ lifecycle

    def statistics(self) -> PeerManagerStatistics:
        return PeerManagerStatistics(
            links=len(self._peers),
            pending_offers=len(self._pending_offers),
            connections_opened=self._opened,
            protocol_errors=self._protocol_errors,
            uploads=self._uploads,
            uploaded_bytes=self._uploaded,
            admission=self._admission.statistics(),
        )

    async def aclose(self) -> None:
        """Close every link gracefully (queued data is flushed first) and every pending offer."""
        self._closed = True
        for task in list(self._timeouts):
            task.cancel()
        pending = [pc for pc, _ in self._pending_offers.values()]
        self._pending_offers.clear()
        links = [state.link for state in self._peers.values()]
        for state in self._peers.values():
            state.close_reason = state.close_reason or "we left the swarm"
            self._stop_upload(state)
        await asyncio.gather(
            *(link.aclose() for link in links), *(pc.close() for pc in pending), return_exceptions=True
        )


def _close_with_reason(state: _PeerState, reason: str) -> None:
    """Close a peer's link, remembering the first reason given (for :class:`PeerGone`)."""
    if state.close_reason is None:
        state.close_reason = reason
    state.link.close()


def _remote_reason(link: PeerLink) -> str:
    """Why a link we did not close ended."""
    state = getattr(link.pc, "connectionState", None)
    return "connection failed" if state == "failed" else "closed by the peer"
