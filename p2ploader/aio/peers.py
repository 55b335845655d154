"""The peer manager: one swarm's WebRTC peers, speaking P2P Media Loader 2.x's wire protocol.

It is the :class:`~p2ploader.core.driver.PeerTransport` of the driver and the signalling side of the
tracker client:

* **Signalling.** ``make_offers`` pre-creates peer connections with complete (non-trickle) offers;
  ``on_answer`` completes one; ``on_offer`` answers a remote offer. A link that does not open
  within ``connect_timeout`` is closed.
* **Who gets and keeps a link** is the sans-IO :class:`~p2ploader.core.peer_set.PeerSet`'s
  decision (:meth:`~p2ploader.core.peer_set.PeerSet.offer`,
  :meth:`~p2ploader.core.peer_set.PeerSet.answer`, :meth:`~p2ploader.core.peer_set.PeerSet.opened`,
  :meth:`~p2ploader.core.peer_set.PeerSet.closed`): at most one link per remote peer, never one
  for our own id; an open link is never replaced by a second connection claiming the same peer
  id (:func:`~p2ploader.core.admission.keeps_existing_link`); the topology's gate (``admit``,
  ``wants_offers``); admission (:mod:`p2ploader.core.admission`): ``max_peers`` open links, a
  separate small cap on links still connecting, a budget of remote offers answered per time
  window; when slots are full a newly opened link takes the slot of a peer that delivers nothing
  and takes nothing from us (past its grace period), or is closed. This module acts on the
  verdicts (SDP, aiortc, closing) and logs them; admission sees every core action performed and
  event fed on the way, and keeps its own books of whom we asked and who delivered. Whether a
  peer is banned is the core's to say (:mod:`p2ploader.core.reputation`, asked through
  ``is_banned``); bans fall on the remote's DTLS certificate
  (:func:`~p2ploader.core.bans.certificate_identity`, reported with ``bind_certificate``), not on
  the id alone, so a peer cannot be framed by someone using its id.
* **Core actions → wire, wire → core events,** through the sans-IO
  :class:`~p2ploader.core.peer_set.PeerSet` (the links, bans, actions and events, violations as
  failures or strikes: the decisions the simulator's peers share) and one
  :class:`~p2ploader.core.peer_protocol.PeerProtocol` per peer, which decides everything the wire
  protocol decides: request matching, discard after cancel, header and size checks, the flood guard,
  upload chunking, violations. This module feeds the peer set each data-channel message with the
  loop's time, sends the messages the machines queue, closes links and runs the upload tasks
  (:class:`_LinkIO`).
* **Uploads** run as tasks: one upload at a time per peer and one at a time on the uplink, first
  come first served; each pulls the machine's chunks one by one, after the data channel's send
  buffer drained (back-pressure) and, with a rate cap, when its share of time came.
* **Delay-based upload control** (``upload_delay_target``, :mod:`p2ploader.core.upload_control`;
  the owner passes one controller to every swarm of a viewer, as they share its uplink): while an
  upload runs, the SCTP round trip of its link is sampled every
  :data:`ROUND_TRIP_SAMPLE_INTERVAL` seconds (when it changed); the controller turns those samples
  into an allowed rate, and the pacing uses the smaller of it and ``upload_rate_limit``. Once the
  rate is limited, chunks are cut to half the delay target's worth of bytes at that rate (a 64 kB
  message at once would queue 0.4 s on a 1.3 Mbit/s uplink), and each link buffers at most
  :data:`CONTROLLED_BUFFER` bytes in its data channel, so a cut takes effect at once. A link whose
  aiortc gives no round trip is not controlled.

A violation the machine reports fails our outstanding request as misbehaviour, which makes the
scheduler disconnect the peer and load the segment elsewhere; without a request outstanding it is
fed to the core as :class:`~p2ploader.core.events.PeerViolatedProtocol` (a strike). Either way the
link closes (the peer set decides; this module closes).

What one peer may cost us is bounded (:mod:`p2ploader.core.peer_limits`): a data header announcing
more than the stream's bitrate allows is refused before its bytes come, an announcement with more
ids than the playlist's window allows is refused while it is decoded, and an upload whose receiver
stops taking bytes for ``upload_stall_timeout`` seconds gives the uplink turn up (the peer is
disconnected with a strike).
"""

from __future__ import annotations

import asyncio
import logging
import math
import random
from collections.abc import Callable, Collection, Mapping
from typing import Any

import attrs

from p2ploader.aio.tracker_client import Offer
from p2ploader.aio.webrtc import PeerLink, create_connection, set_remote
from p2ploader.core import actions as act
from p2ploader.core import events as ev
from p2ploader.core import wire
from p2ploader.core.admission import Admission, AdmissionLimits, AdmissionStatistics
from p2ploader.core.bans import certificate_identity
from p2ploader.core.peer_protocol import PeerProtocol, Upload
from p2ploader.core.peer_set import GROWING_UPLOAD_PATIENCE, Accept, PeerSet, Refusal
from p2ploader.core.scheduler import MAX_SEGMENT_SIZE
from p2ploader.core.segments import SegmentId
from p2ploader.core.upload_control import UploadController, UploadControlStatistics, UploadHold

__all__ = ["PeerManager", "PeerManagerStatistics"]

logger = logging.getLogger(__name__)

ROUND_TRIP_SAMPLE_INTERVAL = 0.05
"""Seconds between two reads of an uploading link's round trip (SCTP updates it on every
acknowledgement; a faster read would mostly find the same value)."""

HOLD_POLL_INTERVAL = 0.02
"""Seconds between two looks at the upload hold while it pauses an upload (a hold lasts about as
long as one HTTP download of a segment: a tenth of a second to a few)."""

CONTROLLED_BUFFER = 65536
"""Bytes a link's data channel may hold queued when uploads are steered by delay (one full-size
message: enough to keep SCTP busy, little enough that a rate cut acts within that many bytes)."""


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
    upload_control: UploadControlStatistics | None = None
    """The delay-based upload rate (``None``: ``upload_delay_target`` is 0, off)."""


@attrs.define
class _PeerState:
    link: PeerLink
    protocol: PeerProtocol  # the wire protocol's decisions (requests, checks, uploads' bytes)
    upload: asyncio.Task[None] | None = None  # the task sending the protocol's current upload
    upload_of: Upload | None = None  # the upload that task sends
    upload_more: asyncio.Event = attrs.Factory(asyncio.Event)  # a growing upload got bytes
    close_reason: str | None = None  # why we closed its link, for PeerGone (None: not us)
    round_trip: float | None = None  # the link's round trip last fed to the upload controller

    @property
    def peer_id(self) -> str:
        return self.link.peer_id


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
        upload_control: UploadController | None = None,
        upload_hold: UploadHold | None = None,
        max_segment_size: int = MAX_SEGMENT_SIZE,
        max_announced_ids: int = wire.DEFAULT_MAX_ANNOUNCED_IDS,
        rng: random.Random | None = None,
        on_peer_gone: Callable[[str], None] | None = None,
        on_peer_status: Callable[[str, bool, str | None], None] | None = None,
        is_banned: Callable[[str, str], bool] | None = None,
        bind_certificate: Callable[[str, str], None] | None = None,
        admit: Callable[[str, Collection[str]], bool] | None = None,
        wants_offers: Callable[[Collection[str]], bool] | None = None,
        admission: AdmissionLimits | None = None,
        wants: Callable[[Collection[SegmentId]], bool] | None = None,
    ) -> None:
        self._feed_core = feed
        self.rendition = rendition
        self.local_peer_id = local_peer_id
        self._rtc_config = rtc_config
        self._max_peers = max_peers
        self._max_message_size = max_message_size
        self._connect_timeout = connect_timeout
        self._upload_rate_limit = upload_rate_limit
        self._upload_stall_timeout = upload_stall_timeout
        """Seconds an upload waits for a receiver that takes no bytes at all; ``None``: for ever."""
        self._upload_control = upload_control
        """Steers the upload rate from our links' round trips; ``None``: off. One controller per
        viewer, shared by all its swarms (video, audio, lingering renditions): they share its uplink."""
        self._upload_hold = upload_hold
        """Pauses our uploads while a download the player needs soon is in flight (one per
        viewer, see :class:`~p2ploader.core.upload_control.UploadHold`); ``None``: never."""
        self._rng = rng or random.Random()
        self._on_peer_gone = on_peer_gone
        """Called with a peer id when its link closed (the tracker client then stops ignoring it, so
        it can reconnect, e.g. after a rendition switch brings it back to this swarm)."""
        self._on_peer_status = on_peer_status
        """``on_peer_status(peer_id, connected, reason)``: a peer got a slot (``True``, ``None``) or
        the link of such a peer closed (``False``, why)."""
        self._admission = Admission(admission or AdmissionLimits(max_peers=max_peers))
        """Slots, eviction of idle peers, caps on connecting links and on offers answered (the
        peer set decides with it; this module shows it the actions and events on the way)."""
        self._peer_set: PeerSet[_PeerState] = PeerSet(
            swarm=rendition,
            live=live,
            first_sequence=first_sequence,
            feed=lambda event: self._feed(event),  # looked up at each call: it may be wrapped
            io=_LinkIO(self),
            max_segment_size=max_segment_size,
            max_announced_ids=max_announced_ids,
            max_message_size=max_message_size,
            # is_banned(peer_id, certificate): the core's verdict (this swarm's reputation); a
            # banned peer's offers and answers are refused. bind_certificate(peer_id, certificate):
            # a new link of peer_id uses that DTLS certificate, so strikes and bans fall on it.
            # Every link here has a certificate (one without is refused before this is asked).
            is_banned=(
                None
                if is_banned is None
                else lambda peer_id, certificate: certificate is not None and is_banned(peer_id, certificate)
            ),
            bind_certificate=bind_certificate,
            local_peer_id=local_peer_id,
            require_certificates=True,
            # admit(peer_id, linked_peer_ids): the topology's gate (host/client tree; None: mesh).
            # wants_offers(linked_peer_ids): False makes no offers (a host waits for clients, a
            # client with its host needs no more). wants(segment_ids): whether any is a segment we
            # may still need (queued, not cached): a peer announcing one keeps its slot until its
            # requests fail; None: any segment we did not announce ourselves.
            admit=admit,
            admission=self._admission,
            wants=wants,
            offers_wanted=wants_offers,
        )
        """The links and the decisions about them: who gets a link (offers, answers, glare,
        topology, admission), who keeps it, bans, core actions to the machines, their events to the
        core (:mod:`p2ploader.core.peer_set`)."""
        self._peers = self._peer_set.links
        self._pending_offers: dict[bytes, tuple[Any, Any]] = {}  # offer id -> (pc, channel)
        self._timeouts: set[asyncio.Task[None]] = set()
        self._opened = 0
        self._uploads = 0
        self._uploaded = 0
        self._upload_budget_at = 0.0  # loop time when the rate cap allows the next byte
        # Our uploads take turns on the uplink, first come first served: each one finishes as early
        # as it can instead of all finishing late together (asyncio.Lock wakes waiters in order).
        self._uplink_turn = asyncio.Lock()

    def set_playlist_window(self, segments: int) -> None:
        """The playlist now lists ``segments`` segments: bound the announcements of every peer by it
        (:func:`~p2ploader.core.peer_limits.announcement_id_limit`)."""
        self._peer_set.set_playlist_window(segments)

    # ------------------------------------------------------------------ signalling (tracker client callbacks)

    def _now(self) -> float:
        return asyncio.get_running_loop().time()

    @property
    def room(self) -> int:
        """How many more peers are worth an offer now: free slots, counting idle peers a newcomer
        would replace, minus the links and offers of ours still pending (remote offers' connecting
        links do not count: fake offers must not stop our own search)."""
        return self._peer_set.room(now=self._now(), pending=len(self._pending_offers))

    def wants_peers(self, swarm_size: int) -> bool:
        """Whether to look for peers sooner than the tracker's interval (``TrackerClient``'s
        ``wants_peers``): no linked peer delivers to us, takes from us or holds what we need (or
        fewer links are open than admission's ``wanted_links``), a newcomer could get a slot, and
        we are not alone (the tracker counts ``swarm_size`` peers,
        us included, or peers are linked)."""
        return self._peer_set.wants_peers(swarm_size, now=self._now(), pending=len(self._pending_offers))

    @property
    def live(self) -> bool:
        """Whether segments are named by media sequence number on the wire (else by position)."""
        return self._peer_set.live

    @property
    def first_sequence(self) -> int:
        """The playlist's first media sequence number when the swarm was joined."""
        return self._peer_set.first_sequence

    @property
    def linked(self) -> tuple[str, ...]:
        """Peer ids (hex) with a link, open or still connecting."""
        return tuple(self._peers)

    async def make_offers(self, count: int) -> list[Offer]:
        offers: list[Offer] = []
        links = []
        wanted = self._peer_set.offers_to_make(count, now=self._now(), pending=len(self._pending_offers))
        for _ in range(wanted):
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
        verdict = self._peer_set.answer(peer_id, certificate, now=self._now())
        if not isinstance(verdict, Accept):
            logger.debug("peer %s: answer dropped: %s", peer_id, verdict.reason.value)
            await pc.close()
            return
        assert certificate is not None  # the peer set requires one
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
        verdict = self._peer_set.offer(peer_id, certificate, now=self._now())
        if not isinstance(verdict, Accept):
            if verdict.reason in (Refusal.FULL, Refusal.BUSY):
                logger.debug("peer %s: offer declined: %s", peer_id, verdict.reason.value)
            return None
        if verdict.replaced is not None:
            logger.info("peer %s: still connecting; its place goes to a newer offer", verdict.replaced)
        assert certificate is not None  # the peer set requires one
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

    def drop_banned(self) -> tuple[str, ...]:
        """Close every link the core now says is banned (a ban elsewhere, in a swarm sharing bans
        with this one: a companion's, see :mod:`p2ploader.core.reputation`); the peer ids closed.
        A ban in this swarm needs no sweep: the scheduler disconnects the peer itself."""
        closed = self._peer_set.banned()
        for peer_id in closed:
            _close_with_reason(self._peers[peer_id], "banned in a swarm sharing bans with this one")
        return closed

    def _new_link(self, pc: Any, peer_id: str, *, initiator: bool, certificate: str) -> PeerLink:
        link = PeerLink(
            pc,
            peer_id=peer_id,
            initiator=initiator,
            on_open=self._link_opened,
            on_message=self._link_message,
            on_closed=self._link_closed,
            buffered_low_threshold=CONTROLLED_BUFFER if self._upload_control is not None else None,
        )
        state = _PeerState(link=link, protocol=self._peer_set.new_protocol())
        # Strikes and bans under this id now fall on this certificate.
        self._peer_set.add(peer_id, state, now=self._now(), certificate=certificate, initiator=initiator)
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
        # The remote's SCTP limit is known now: no message we send may be longer (the core may
        # send on the link as soon as it hears of it).
        state.protocol.max_message_size = min(self._max_message_size, link.max_message_size)
        opened = self._peer_set.opened(state, now=self._now())
        if opened.evicted is not None:
            assert opened.eviction is not None
            logger.info("peer %s: %s: %s", opened.evicted, opened.eviction.value, link.peer_id)
        if not opened.keep:
            logger.info("peer %s: every slot holds a useful peer; closed", link.peer_id)
            return
        if self._on_peer_status is not None:
            self._on_peer_status(link.peer_id, True, None)

    def _link_closed(self, link: PeerLink) -> None:
        state = self._peers.get(link.peer_id)
        if state is None or state.link is not link:
            return
        gone = self._peer_set.closed(state)
        self._cancel_upload_task(state)
        if self._upload_control is not None:
            self._upload_control.forget(self._control_key(link.peer_id))
        if self._on_peer_gone is not None:
            self._on_peer_gone(link.peer_id)
        if gone is not None:
            self._feed(gone)
            if self._on_peer_status is not None:
                self._on_peer_status(link.peer_id, False, state.close_reason or _remote_reason(link))

    def _feed(self, event: ev.Event) -> None:
        """Every event to the core passes here: the admission policy learns which peers deliver
        (or take uploads, or announce segments we need) on the way."""
        self._admission.feeding(event, now=self._now())
        self._feed_core(event)

    def _link_message(self, link: PeerLink, message: bytes) -> None:
        state = self._peers.get(link.peer_id)
        # A link closing after a violation may still deliver queued messages: they are ignored, so
        # one incident is reported (and counted against the peer) once.
        if state is None or state.link is not link or link.closing:
            return
        self._peer_set.receive(state, message, now=self._now())

    def _transmit(self, state: _PeerState) -> None:
        """Send what the protocol queued; once the link refuses a message the rest is dropped."""
        for message in state.protocol.messages_to_send():
            if not state.link.send(message):
                return

    def _pump(self, state: _PeerState) -> None:
        """Send the protocol's messages and act on its events (the peer set's)."""
        self._peer_set.drain(state)

    # ------------------------------------------------------------------ core actions (PeerTransport)

    def perform(self, action: act.Action) -> None:
        # Admission learns whom we ask, whom we serve and what we hold on the way.
        self._admission.performing(action, now=self._now(), linked=self._peers)
        self._peer_set.perform(action)

    # ------------------------------------------------------------------ uploads

    def _cancel_upload_task(self, state: _PeerState) -> None:
        if state.upload is not None:
            state.upload.cancel()
        if state.upload_of is not None:
            state.protocol.end_upload(state.upload_of)
        state.upload = None
        state.upload_of = None

    def _start_upload(self, state: _PeerState, upload: Upload) -> None:
        """Send ``upload`` (the machine started it) in a task of its own."""
        self._pump(state)  # the upload it replaces stops
        more = asyncio.Event()
        state.upload_of = upload
        state.upload_more = more
        state.upload = asyncio.get_running_loop().create_task(self._upload(state, upload, more))

    async def _upload(self, state: _PeerState, upload: Upload, more: asyncio.Event) -> None:
        sent = 0
        try:
            sent = await self._send_segment(state, upload, more)
        finally:
            state.protocol.end_upload(upload)
            if state.upload_of is upload:
                state.upload = None
                state.upload_of = None
            # Whatever ended it (done, cancelled, link gone), the scheduler's upload slot is free.
            self._peer_set.upload_finished(state, upload, sent_bytes=sent)

    async def _send_segment(self, state: _PeerState, upload: Upload, more: asyncio.Event) -> int:
        """Header, data chunks (paced and backpressured), completion; returns the bytes sent.

        It waits for its turn on the uplink first: the uploads queued before it are sent whole (or
        cancelled) before it sends its header. A growing upload keeps its turn while it waits for
        the origin's next bytes (usually faster than the uplink)."""
        async with self._uplink_turn:
            sampler = None
            if self._upload_control is not None:
                sampler = asyncio.get_running_loop().create_task(
                    self._sample_round_trips(state, self._upload_control)
                )
            try:
                return await self._send_segment_now(state, upload, more)
            finally:
                if sampler is not None:
                    sampler.cancel()

    async def _sample_round_trips(self, state: _PeerState, control: UploadController) -> None:
        """While ``state``'s upload runs: feed its link's round trip to the controller whenever it
        changed (a value read twice is one sample; an old one left from the previous upload is
        not news)."""
        while True:
            rtt = state.link.round_trip_time
            # While paused, the empty queue's round trips say nothing of our sending rate, and
            # would grow it a full step for the moment the pause ends: no sample then.
            paused = self._upload_hold is not None and self._upload_hold.held(now=self._now())
            if not paused and rtt is not None and rtt != state.round_trip:
                state.round_trip = rtt
                control.observe(self._control_key(state.link.peer_id), rtt, now=self._now())
            await asyncio.sleep(ROUND_TRIP_SAMPLE_INTERVAL)

    def _control_key(self, peer_id: str) -> tuple[int, str]:
        """The link's key in the shared controller: one remote peer may be linked to us in two
        swarms (video and audio), each link with its own round trip."""
        return (id(self), peer_id)

    def _upload_rate(self) -> float | None:
        """Bytes/s the uploads may use now: the smaller of the cap and the controller's rate."""
        controlled = self._upload_control.rate if self._upload_control is not None else None
        if controlled is None:
            return self._upload_rate_limit or None
        return min(controlled, self._upload_rate_limit) if self._upload_rate_limit else controlled

    async def _wait_while_held(self, hold: UploadHold, link: PeerLink) -> None:
        """Our playback first: while a download the player needs soon is in flight, the uplink
        carries its requests and acknowledgements, not our uploads (bounded by the hold's own
        limit; the receiver's pace check moves its download elsewhere if that is too long)."""
        loop = asyncio.get_running_loop()
        for _ in range(math.ceil(hold.max_hold / HOLD_POLL_INTERVAL) + 1):
            if link.closing or not hold.held(now=loop.time()):
                return
            await asyncio.sleep(HOLD_POLL_INTERVAL)

    async def _send_segment_now(self, state: _PeerState, upload: Upload, more: asyncio.Event) -> int:
        link = state.link
        sent = 0
        if self._upload_hold is not None:  # before the header: it starts the receiver's clock
            await self._wait_while_held(self._upload_hold, link)
        state.protocol.begin_upload(upload)
        self._transmit(state)
        loop = asyncio.get_running_loop()
        while not upload.finished:
            control = self._upload_control
            chunk = upload.next_chunk(control.chunk_limit() if control is not None else None)
            if chunk is None:  # a growing upload waits for the origin's next bytes
                more.clear()
                try:
                    await asyncio.wait_for(more.wait(), GROWING_UPLOAD_PATIENCE)
                except TimeoutError:
                    # The scheduler stops a relay whose HTTP download ends without the segment;
                    # this bound only keeps a lost one from holding the uplink for ever.
                    logger.info(
                        "upload to %s got no new bytes in %g s", link.peer_id, GROWING_UPLOAD_PATIENCE
                    )
                    return sent
                continue
            if not await link.wait_drained(stall_timeout=self._upload_stall_timeout):
                # It takes nothing it was sent (a stalled or hostile receiver): the uplink turn
                # goes to the next upload, and the peer goes, with a strike.
                state.protocol.report_violation(
                    f"stopped reading: took no data for {self._upload_stall_timeout:g} s"
                )
                self._pump(state)
                return sent
            rate = self._upload_rate()
            if rate:
                # Pacing over all uploads of this swarm: a chunk leaves at the end of its share
                # of time, so N bytes never take less than N / rate seconds.
                slot_end = max(loop.time(), self._upload_budget_at) + len(chunk) / rate
                self._upload_budget_at = slot_end
                delay = slot_end - loop.time()
                if delay > 0:
                    await asyncio.sleep(delay)
            if self._upload_hold is not None:
                await self._wait_while_held(self._upload_hold, link)
            if not link.send(chunk):
                return sent
            sent += len(chunk)
            self._uploaded += len(chunk)
            if self._upload_control is not None:
                self._upload_control.sent(len(chunk), now=loop.time())
        state.protocol.complete_upload(upload)
        self._transmit(state)
        self._uploads += 1
        return sent

    # ------------------------------------------------------------------ lifecycle

    def statistics(self) -> PeerManagerStatistics:
        return PeerManagerStatistics(
            links=len(self._peers),
            pending_offers=len(self._pending_offers),
            connections_opened=self._opened,
            protocol_errors=self._peer_set.violations,
            uploads=self._uploads,
            uploaded_bytes=self._uploaded,
            admission=self._admission.statistics(),
            upload_control=self._upload_control.statistics() if self._upload_control is not None else None,
        )

    async def aclose(self) -> None:
        """Close every link gracefully (queued data is flushed first) and every pending offer."""
        self._peer_set.leave()
        for task in list(self._timeouts):
            task.cancel()
        pending = [pc for pc, _ in self._pending_offers.values()]
        self._pending_offers.clear()
        links = [state.link for state in self._peers.values()]
        for state in self._peers.values():
            state.close_reason = state.close_reason or "we left the swarm"
            self._cancel_upload_task(state)
        await asyncio.gather(
            *(link.aclose() for link in links), *(pc.close() for pc in pending), return_exceptions=True
        )


class _LinkIO:
    """The peer manager's links as the peer set drives them (:class:`~p2ploader.core.peer_set.PeerLinkIO`)."""

    def __init__(self, manager: PeerManager) -> None:
        self._manager = manager

    def usable(self, link: _PeerState) -> bool:
        return link.link.is_open

    def transmit(self, link: _PeerState) -> None:
        self._manager._transmit(link)

    def pump(self, link: _PeerState) -> None:
        self._manager._pump(link)

    def close(self, link: _PeerState, reason: str) -> None:
        if not link.link.closed:
            _close_with_reason(link, reason)

    def release(self, link: _PeerState, reason: str) -> None:
        if not link.link.closing:
            _close_with_reason(link, reason)

    def feed_soon(self, event: ev.Event) -> None:
        asyncio.get_running_loop().call_soon(self._manager._feed, event)

    def upload_started(self, link: _PeerState, upload: Upload) -> None:
        self._manager._start_upload(link, upload)

    def upload_extended(self, link: _PeerState) -> None:
        link.upload_more.set()

    def upload_stopped(self, link: _PeerState, upload: Upload) -> None:
        if link.upload_of is upload:
            self._manager._cancel_upload_task(link)


def _close_with_reason(state: _PeerState, reason: str) -> None:
    """Close a peer's link, remembering the first reason given (for :class:`PeerGone`)."""
    if state.close_reason is None:
        state.close_reason = reason
    state.link.close()


def _remote_reason(link: PeerLink) -> str:
    """Why a link we did not close ended."""
    state = getattr(link.pc, "connectionState", None)
    return "connection failed" if state == "failed" else "closed by the peer"
