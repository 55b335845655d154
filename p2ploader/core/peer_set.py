"""One swarm's peers, sans-IO: what every peer transport decides the same way.

Theory of operation
-------------------
A peer transport links a viewer to the other peers of one swarm (one rendition) and runs one
:class:`~p2ploader.core.peer_protocol.PeerProtocol` per link: the peer manager over aiortc
(:mod:`p2ploader.aio.peers`), the simulator's modelled peers (:mod:`p2ploader.sim.model`), a test's
in-memory wiring. The transports differ in their I/O only; a :class:`PeerSet` holds what they
decide alike:

* **The links.** :attr:`PeerSet.links` maps a peer id to the transport's link (whatever object
  carries the machine), in the order the links were made: an announcement goes out in that order.
  :meth:`PeerSet.new_protocol` makes a link's machine with the swarm's limits (bytes a data header
  may announce, ids an announcement may carry, bytes per message), and
  :meth:`PeerSet.set_playlist_window` bounds every machine's announcements by the playlist's window.
* **Who gets a link.** A remote offer (:meth:`PeerSet.offer`) and an answer to one of ours
  (:meth:`PeerSet.answer`) get a typed verdict, :class:`Accept` or :class:`Refuse` with its
  :class:`Refusal`: not after we left, not for our own id (a tracker relays anything), not for an
  id with a link already (an offer) or whose link is open or wins the glare (an answer:
  :func:`~p2ploader.core.admission.keeps_existing_link`), not without a DTLS certificate where
  links have one, not for a banned peer, not against the topology's gate (host/client tree), and
  (an offer) not without a slot, over the offer budget or the cap on connecting links
  (:class:`~p2ploader.core.admission.Admission`, rewiring included). An accepted offer may take
  the place of the oldest connecting link we answered, an accepted answer that of the same id's
  connecting link that lost the glare: that link is released at once. :meth:`PeerSet.room`,
  :meth:`PeerSet.offers_to_make` and :meth:`PeerSet.wants_peers` bound our own offers.
* **Who keeps it.** :meth:`PeerSet.opened`: a link whose channel opened takes a slot, evicts an
  idle peer or (rewiring) the peer that delivered to us longest ago, or is closed (:class:`Opened`, with an
  :class:`Eviction` for the log); a link that keeps its slot is admitted and the core hears
  ``PeerConnected``. :meth:`PeerSet.closed`: a link that closed is forgotten, and the
  ``PeerDisconnected`` the core must hear is returned once, for an admitted link only (the
  transport feeds it after its own clean-up, or, in the simulator, when the close reaches the far
  end). :meth:`PeerSet.upload_finished`: an upload's end frees the scheduler's upload slot
  (``UploadFinished``), whatever ended it. Without admission (the simulator, the test harness)
  every link that opens is admitted.
* **Bans.** :meth:`PeerSet.refuses` asks the core (the scheduler's reputation, a function handed
  in) whether a peer, with the DTLS certificate it connects with, is banned: a banned peer gets no
  link. :meth:`PeerSet.add` binds a new link's certificate to its peer id, so that the core's
  strikes and bans under that id fall on the certificate; :meth:`PeerSet.banned` names the linked
  peers banned since (a ban in a swarm sharing bans with this one).
* **Core actions to machine calls** (:meth:`PeerSet.perform`), in wire ids: a request (to a peer
  with no usable link: ``PeerDownloadFailed("peer gone")`` after the current step), a cancel, an
  announcement (only this swarm's segments; to one peer or to all), an upload, its growth, an
  absence (which stops an aborted upload first), a disconnect.
* **Machine events to core events** (:meth:`PeerSet.handle`, through
  :func:`~p2ploader.core.peer_protocol.scheduler_event`). A violation fails our outstanding
  request as misbehaviour (the scheduler then disconnects the peer and loads the segment
  elsewhere) or, with no request outstanding, is a strike
  (:class:`~p2ploader.core.events.PeerViolatedProtocol`); either way the link is closed, with the
  reason ``protocol violation: ...``.

What only the transport can do is handed in as a :class:`PeerLinkIO`: whether a link is usable,
sending what a machine queued, closing a link (or releasing it for a newcomer), feeding an event
once the current step is done, and running an upload's bytes. The transport logs the verdicts.
The peer set does no I/O, reads no clock (``now`` is an argument, seconds) and draws no randomness.
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Callable, Collection
from typing import Generic, Protocol, TypeVar

import attrs

from p2ploader.core import actions as act
from p2ploader.core import events as ev
from p2ploader.core import peer_protocol as proto
from p2ploader.core import swarm, wire
from p2ploader.core.admission import Admission, keeps_existing_link
from p2ploader.core.peer_limits import announcement_id_limit
from p2ploader.core.peer_protocol import PeerProtocol, Upload
from p2ploader.core.segments import SegmentId

__all__ = [
    "GROWING_UPLOAD_PATIENCE",
    "Accept",
    "Eviction",
    "Opened",
    "PeerEnd",
    "PeerLinkIO",
    "PeerSet",
    "Refusal",
    "Refuse",
]

logger = logging.getLogger(__name__)

GROWING_UPLOAD_PATIENCE = 30.0
"""Seconds a growing upload (cut-through) waits for its next bytes before it gives up: the
scheduler stops a relay whose HTTP download ends without the segment; this bound only keeps a lost
one from holding the uplink for ever. Every transport waits so long (the peer manager's upload
task, the simulator's uplink)."""


class PeerEnd(Protocol):
    """A transport's link to one peer, as the peer set sees it: the peer's id and the machine."""

    @property
    def peer_id(self) -> str: ...

    @property
    def protocol(self) -> PeerProtocol: ...


L = TypeVar("L", bound=PeerEnd)
L_contra = TypeVar("L_contra", bound=PeerEnd, contravariant=True)


class PeerLinkIO(Protocol[L_contra]):
    """The transport's part: the I/O of its links (``link`` is always one of the peer set's)."""

    def usable(self, link: L_contra) -> bool:
        """Whether ``link`` may carry a new request, announcement or upload (open, not connecting)."""
        ...

    def transmit(self, link: L_contra) -> None:
        """Send the messages ``link``'s machine queued, in order."""
        ...

    def pump(self, link: L_contra) -> None:
        """Send what the machine queued and hand its events to :meth:`PeerSet.handle`
        (:meth:`PeerSet.drain` does both)."""
        ...

    def close(self, link: L_contra, reason: str) -> None:
        """Close ``link`` (the first reason given is the one reported)."""
        ...

    def release(self, link: L_contra, reason: str) -> None:
        """Close ``link`` to give its place to a newcomer (an idle or rewired peer's slot, a
        connecting link's place): as :meth:`close`, but a link already closing keeps its own end
        and reason."""
        ...

    def feed_soon(self, event: ev.Event) -> None:
        """Feed ``event`` to the core once the current step is done (not from within it)."""
        ...

    def upload_started(self, link: L_contra, upload: Upload) -> None:
        """Send ``upload`` (the machine's :meth:`~PeerProtocol.start_upload`) over ``link``: its
        header, its chunks, its completion, and ``UploadFinished`` once it ended, however."""
        ...

    def upload_extended(self, link: L_contra) -> None:
        """A growing upload on ``link`` got more bytes (it may have waited for them)."""
        ...

    def upload_stopped(self, link: L_contra, upload: Upload) -> None:
        """The machine stopped ``upload`` (replaced, cancelled by the peer, absent): stop sending it."""
        ...


class Refusal(enum.Enum):
    """Why a remote offer is not answered, or an answer to our offer is dropped (for the log)."""

    LEFT = "we left the swarm"
    OWN_ID = "it claims our own peer id"
    LINKED = "a link with its id exists"
    NO_CERTIFICATE = "its SDP names no DTLS certificate"
    BANNED = "banned"
    TOPOLOGY = "the topology admits no such link"
    FULL = "every slot holds a useful peer"
    BUSY = "over the offer budget or too many connecting"
    GLARE = "the link with its id stays (open, or it wins the glare)"


@attrs.frozen
class Accept:
    """Go ahead: answer the offer (:meth:`PeerSet.offer`) or complete our offer with the answer
    (:meth:`PeerSet.answer`). ``replaced``: the peer id of a connecting link that gave way, already
    released (an offer: the oldest link we answered; an answer: the same id's link that lost the
    glare, already forgotten). ``None``: none."""

    replaced: str | None = None


@attrs.frozen
class Refuse:
    """No link: ``reason`` says why (:class:`Refusal`)."""

    reason: Refusal


class Eviction(enum.Enum):
    """Why an open peer was closed for a newcomer (:attr:`Opened.eviction`)."""

    IDLE = "evicted: it delivered nothing and took nothing"
    REWIRED = "closed to give a newcomer a slot (rewiring)"


@attrs.frozen
class Opened:
    """What became of a link whose channel opened (:meth:`PeerSet.opened`). ``keep``: it got a slot
    (and the core heard ``PeerConnected``); else every slot holds a useful peer and it was closed.
    ``evicted``: the open peer closed for it, and ``eviction`` why (``None``: a free slot)."""

    keep: bool
    evicted: str | None = None
    eviction: Eviction | None = None


class PeerSet(Generic[L]):
    """The links of one swarm and the decisions about them (see the module's theory of operation).

    ``swarm``: the rendition id (segment ids on the wire are mapped with ``live`` and
    ``first_sequence``, :func:`~p2ploader.core.swarm.segment_wire_id`). ``feed``: the core's
    events. ``max_segment_size``: bytes a data header may announce; ``max_announced_ids``: ids an
    announcement may carry; ``max_message_size``: bytes per message we send. ``is_banned(peer_id,
    certificate)``: the core's verdict (``certificate`` ``None``: the id alone); ``None``: nobody is
    banned. ``bind_certificate(peer_id, certificate)``: a new link of ``peer_id`` uses that
    certificate. ``announced``: maps an announcement's wire ids to segment ids (default: one by
    one; the simulator shares the sets of one announcement among its receivers).

    Signalling: ``local_peer_id``: ours (an offer or answer claiming it gets no link);
    ``require_certificates``: an offer or answer without a DTLS certificate gets none (WebRTC
    always has one; the simulator's links do not). ``admit(peer_id, linked_peer_ids)``: the
    topology's gate (``None``: mesh, everyone). ``admission``: slots, eviction, the caps on
    connecting links and offers answered (:mod:`p2ploader.core.admission`; ``None``: every link is
    admitted). ``wants(segment_ids)``: whether any is a segment we may still need (admission keeps
    a peer announcing one; ``None``: any segment we did not announce ourselves).
    ``offers_wanted(linked_peer_ids)``: the topology's wish for offers of ours (``None``: always)."""

    def __init__(
        self,
        *,
        swarm: str,
        live: bool,
        first_sequence: int,
        feed: Callable[[ev.Event], None],
        io: PeerLinkIO[L],
        max_segment_size: int,
        max_announced_ids: int = wire.DEFAULT_MAX_ANNOUNCED_IDS,
        max_message_size: int = wire.DEFAULT_MAX_MESSAGE_SIZE,
        is_banned: Callable[[str, str | None], bool] | None = None,
        bind_certificate: Callable[[str, str], None] | None = None,
        announced: Callable[[tuple[int, ...]], frozenset[SegmentId]] | None = None,
        local_peer_id: str = "",
        require_certificates: bool = False,
        admit: Callable[[str, Collection[str]], bool] | None = None,
        admission: Admission | None = None,
        wants: Callable[[Collection[SegmentId]], bool] | None = None,
        offers_wanted: Callable[[Collection[str]], bool] | None = None,
    ) -> None:
        self.swarm = swarm
        self.live = live
        self.first_sequence = first_sequence
        self.feed = feed
        """Where the core's events go (a transport may wrap it, e.g. to trace them)."""
        self._io = io
        self.max_segment_size = max_segment_size
        """Bytes a data header may announce (the stream's bitrate allows no more)."""
        self.max_announced_ids = max_announced_ids
        """Ids one announcement may carry (the playlist's window allows no more)."""
        self.max_message_size = max_message_size
        """Bytes per data-channel message we send."""
        self._is_banned = is_banned
        self._bind_certificate = bind_certificate
        self.announced: Callable[[tuple[int, ...]], frozenset[SegmentId]] = announced or self._announced
        self.links: dict[str, L] = {}
        """Links by peer id, oldest first."""
        self.certificates: dict[str, str] = {}
        """The DTLS certificate of each link added with one (its identity for bans)."""
        self.violations = 0
        """Protocol violations so far (each closed its link)."""
        self.local_peer_id = local_peer_id
        self.require_certificates = require_certificates
        self._admit = admit
        self.admission = admission
        """Slots and caps (``None``: every link is admitted); it keeps its own books of whom we
        asked and who delivered (the transport shows it the actions and events on the way)."""
        self._wants = wants
        self._offers_wanted = offers_wanted
        self.left = False
        """We left the swarm (:meth:`leave`): no offer or answer gets a link any more."""
        self._initiated: set[str] = set()  # peers whose link is one of our offers
        self._admitted: set[str] = set()  # peers whose link opened and got a slot

    # ------------------------------------------------------------------ ids

    def wire_id(self, segment_id: SegmentId) -> int:
        return swarm.segment_wire_id(segment_id, live=self.live, first_sequence=self.first_sequence)

    def segment_id(self, wire_id: int) -> SegmentId:
        return swarm.segment_id_from_wire(
            self.swarm, wire_id, live=self.live, first_sequence=self.first_sequence
        )

    def _announced(self, wire_ids: tuple[int, ...]) -> frozenset[SegmentId]:
        return frozenset(self.segment_id(i) for i in wire_ids)

    # ------------------------------------------------------------------ links

    def new_protocol(self) -> PeerProtocol:
        """The machine of a new link, with the swarm's limits."""
        return PeerProtocol(
            max_segment_size=self.max_segment_size,
            max_announced_ids=self.max_announced_ids,
            max_message_size=self.max_message_size,
        )

    def set_playlist_window(self, segments: int) -> None:
        """The playlist now lists ``segments`` segments: bound every link's announcements by it
        (:func:`~p2ploader.core.peer_limits.announcement_id_limit`)."""
        limit = announcement_id_limit(segments)
        if limit == self.max_announced_ids:
            return
        self.max_announced_ids = limit
        for link in self.links.values():
            link.protocol.max_announced_ids = limit

    def refuses(self, peer_id: str, certificate: str | None = None) -> bool:
        """Whether ``peer_id`` (connecting with ``certificate``) is banned: it gets no link."""
        return self._is_banned is not None and self._is_banned(peer_id, certificate)

    def add(
        self, peer_id: str, link: L, *, now: float, certificate: str | None = None, initiator: bool = False
    ) -> None:
        """``link`` is ``peer_id``'s link now, made at ``now`` (the transport checked :meth:`offer`,
        :meth:`answer` or :meth:`refuses`); with a ``certificate``, the core's strikes and bans
        under ``peer_id`` fall on it. ``initiator``: the link is one of our offers (else we answered
        the peer's, or the transport has no offers)."""
        self.links[peer_id] = link
        self._admitted.discard(peer_id)
        if initiator:
            self._initiated.add(peer_id)
        else:
            self._initiated.discard(peer_id)
        if certificate is None:
            # A new link without one: the previous link's certificate must not judge it.
            self.certificates.pop(peer_id, None)
        else:
            self.certificates[peer_id] = certificate
            if self._bind_certificate is not None:
                self._bind_certificate(peer_id, certificate)
        if self.admission is not None:
            self.admission.link_created(peer_id, now=now, answered=not initiator)

    def remove(self, peer_id: str, link: L | None = None) -> L | None:
        """Forget ``peer_id``'s link (only if it is ``link``, when given); the link forgotten. The
        core hears nothing (:meth:`closed` is the link's end as the core sees it)."""
        current = self.links.get(peer_id)
        if current is None or (link is not None and current is not link):
            return None
        del self.links[peer_id]
        self.certificates.pop(peer_id, None)
        self._initiated.discard(peer_id)
        self._admitted.discard(peer_id)
        return current

    def banned(self) -> tuple[str, ...]:
        """The linked peers the core says are banned now, by the certificate of their link (a ban
        in a swarm sharing bans with this one: this swarm's own bans close their links at once)."""
        return tuple(
            peer_id
            for peer_id in self.links
            if (certificate := self.certificates.get(peer_id)) is not None
            and self.refuses(peer_id, certificate)
        )

    # ------------------------------------------------------------------ signalling and lifecycle

    def wanted(self, segments: Collection[SegmentId]) -> bool:
        """Whether any of ``segments`` is one we may still need (admission keeps a peer announcing
        one): the ``wants`` handed in, else any segment our latest announcement did not hold."""
        if self._wants is not None:
            return self._wants(segments)
        own = self.admission.own_loaded if self.admission is not None else frozenset()
        return any(segment not in own for segment in segments)

    def leave(self) -> None:
        """We leave the swarm: no offer or answer gets a link from now on."""
        self.left = True

    def _topology_admits(self, peer_id: str) -> bool:
        if self._admit is None or peer_id in self.links:
            return True  # mesh; or glare on a link already admitted
        return self._admit(peer_id, tuple(self.links))

    def _screen(self, peer_id: str) -> Refusal | None:
        """The first checks an offer and an answer share: we are still here, it is not us."""
        if self.left:
            return Refusal.LEFT
        if peer_id == self.local_peer_id:
            return Refusal.OWN_ID
        return None

    def room(self, *, now: float, pending: int = 0) -> int:
        """How many more peers are worth an offer of ours at ``now``: admission's room (free
        slots, counting idle peers a newcomer would replace, minus links of our offers still
        connecting) minus ``pending`` offers not answered yet. Without admission: 0 (a transport
        without admission makes no offers)."""
        if self.admission is None:
            return 0
        return max(0, self.admission.room(now=now, wants=self.wanted) - pending)

    def offers_to_make(self, count: int, *, now: float, pending: int = 0) -> int:
        """How many of the ``count`` offers a tracker announce may carry we make at ``now``: none
        when the topology wants none (a host waits for clients, a client with its host needs no
        more), else at most :meth:`room`."""
        if self._offers_wanted is not None and not self._offers_wanted(tuple(self.links)):
            return 0
        return min(count, self.room(now=now, pending=pending))

    def wants_peers(self, swarm_size: int, *, now: float, pending: int = 0) -> bool:
        """Whether to look for peers sooner than the tracker's interval: we did not leave, we are
        not alone (the tracker counts ``swarm_size`` peers, us included, or peers are linked), a
        newcomer could get a slot, and no linked peer delivers to us, takes from us or holds what
        we need, or fewer links are open than admission's ``wanted_links`` (and than the other
        peers the tracker counts)
        (:meth:`~p2ploader.core.admission.Admission.wants_more_links`). Without admission: never."""
        admission = self.admission
        if admission is None or self.left:
            return False
        if (swarm_size <= 1 and admission.open_count == 0) or self.room(now=now, pending=pending) == 0:
            return False
        # wanted_links counts only peers the tracker says exist (in a swarm of three, two links
        # are all there are: looking sooner would only send offers nobody can take).
        reachable = swarm_size - 1 if swarm_size > 0 else None
        return admission.wants_more_links(now=now, wants=self.wanted, reachable=reachable)

    def offer(self, peer_id: str, certificate: str | None, *, now: float) -> Accept | Refuse:
        """A remote offer from ``peer_id`` (its SDP's DTLS ``certificate``) at ``now``: answer it?

        Refused: we left, it claims our id, it has a link already, no certificate (when required),
        the core bans it, the topology does not admit it, every slot holds a useful peer
        (admission's :meth:`~p2ploader.core.admission.Admission.has_slot`, rewiring included), or
        over the offer budget or the cap on connecting links
        (:meth:`~p2ploader.core.admission.Admission.may_answer`, which counts it). Accepted, it
        may replace the oldest connecting link we answered: that link is released here (its
        place is the newcomer's) and named in :attr:`Accept.replaced`. The transport then makes
        the link (:meth:`add`) or, if it cannot, closes it like any other."""
        if (screened := self._screen(peer_id)) is not None:
            return Refuse(screened)
        if peer_id in self.links:
            return Refuse(Refusal.LINKED)
        if (refused := self._checked(peer_id, certificate)) is not None:
            return Refuse(refused)
        admission = self.admission
        if admission is None:
            return Accept()
        if not admission.has_slot(now=now, wants=self.wanted, peer_id=peer_id):
            return Refuse(Refusal.FULL)
        answer, replace = admission.may_answer(now=now, peer_id=peer_id)
        if not answer:
            return Refuse(Refusal.BUSY)
        if replace is not None:
            admission.closed(replace)  # its place is free now, not once its close completes
            replaced = self.links.get(replace)
            if replaced is not None:
                self._io.release(replaced, "still connecting when a newer offer came")
        return Accept(replaced=replace)

    def _checked(self, peer_id: str, certificate: str | None) -> Refusal | None:
        """The checks of the peer an offer and an answer share: certificate, bans, topology."""
        if certificate is None and self.require_certificates:
            return Refusal.NO_CERTIFICATE
        if self.refuses(peer_id, certificate):
            return Refusal.BANNED
        if not self._topology_admits(peer_id):
            return Refusal.TOPOLOGY
        return None

    def answer(self, peer_id: str, certificate: str | None, *, now: float) -> Accept | Refuse:
        """``peer_id`` answered one of our offers (its SDP's DTLS ``certificate``) at ``now``:
        complete our link with it?

        Refused as an offer would be (we left, our id, no certificate, banned, topology; no slot
        checks: our offers were bounded by :meth:`room`). A link with that id already there is
        kept when it is open or wins the glare
        (:func:`~p2ploader.core.admission.keeps_existing_link`: anyone may claim a connected
        peer's id, and must not replace it that way); else it is forgotten here, its slot freed,
        it is released (the transport's close of it reports nothing: it was never admitted), and
        :attr:`Accept.replaced` names it. The transport then makes the link (:meth:`add`)."""
        if (screened := self._screen(peer_id)) is not None:
            return Refuse(screened)
        if (refused := self._checked(peer_id, certificate)) is not None:
            return Refuse(refused)
        existing = self.links.get(peer_id)
        if existing is None:
            return Accept()
        if keeps_existing_link(
            existing_open=self._io.usable(existing),
            existing_initiator=peer_id in self._initiated,
            local_peer_id=self.local_peer_id,
            remote_peer_id=peer_id,
        ):
            return Refuse(Refusal.GLARE)
        self.remove(peer_id)
        if self.admission is not None:
            self.admission.closed(peer_id)
        self._io.release(existing, "a connection won the glare")
        return Accept(replaced=peer_id)

    def opened(self, link: L, *, now: float) -> Opened:
        """``link``'s channel opened at ``now``: it takes a slot, or is closed.

        With every slot taken, admission (:meth:`~p2ploader.core.admission.Admission.admit_open`)
        names an idle peer to evict, or (rewiring) the peer that delivered to us longest ago; that peer is
        released at once, its slot the newcomer's. With no one to evict the newcomer is released
        instead. A link that keeps its slot is admitted: the core hears ``PeerConnected`` now,
        and ``PeerDisconnected`` once it closes (:meth:`closed`). Without admission every link
        keeps its slot. The transport sets what it learned on opening (the remote's largest
        message) before: the core may send on the link at once."""
        peer_id = link.peer_id
        evicted: str | None = None
        eviction: Eviction | None = None
        admission = self.admission
        if admission is not None:
            keep, evicted = admission.admit_open(peer_id, now=now, wants=self.wanted)
            if evicted is not None:
                eviction = Eviction.REWIRED if admission.last_eviction == "rewired" else Eviction.IDLE
                admission.closed(evicted)  # its slot is free now, not once its close completes
                victim = self.links.get(evicted)
                if victim is not None:
                    self._io.release(victim, eviction.value)
            if not keep:
                self._io.release(link, Refusal.FULL.value)
                return Opened(keep=False, evicted=evicted, eviction=eviction)
        self._admitted.add(peer_id)
        self.feed(ev.PeerConnected(peer_id=peer_id))
        return Opened(keep=True, evicted=evicted, eviction=eviction)

    def closed(self, link: L) -> ev.PeerDisconnected | None:
        """``link`` closed (whoever closed it): forget it (if it is still ``peer_id``'s link) and
        free its slot. Returns ``PeerDisconnected`` when the core must hear of it: the link was
        admitted (:meth:`opened`), and this is the first report of its end; else ``None`` (it never
        opened, got no slot, or was already forgotten: replaced, or reported). The transport feeds
        the event after its own clean-up of the link (an upload that ends with it reports
        ``UploadFinished`` first), at once, or, in the simulator, when the close reaches the far
        end."""
        peer_id = link.peer_id
        admitted = peer_id in self._admitted and self.links.get(peer_id) is link
        if self.remove(peer_id, link) is None:
            return None
        if self.admission is not None:
            self.admission.link_gone(peer_id)
        return ev.PeerDisconnected(peer_id=peer_id) if admitted else None

    def admitted(self, peer_id: str) -> bool:
        """Whether ``peer_id``'s link opened and holds a slot (the core heard ``PeerConnected``)."""
        return peer_id in self._admitted

    def upload_finished(self, link: L, upload: Upload, *, sent_bytes: int) -> None:
        """The transport's sending of ``upload`` over ``link`` ended, however (sent, stopped,
        given up, link gone), after ``sent_bytes`` bytes: the scheduler's upload slot is free."""
        self.feed(
            ev.UploadFinished(peer_id=link.peer_id, peer_request_id=upload.request_id, sent_bytes=sent_bytes)
        )

    # ------------------------------------------------------------------ wire -> core

    def receive(self, link: L, message: bytes, *, now: float) -> None:
        """A data-channel message from ``link``'s peer, at ``now`` (seconds)."""
        link.protocol.receive_message(message, now=now)
        self._io.pump(link)

    def drain(self, link: L) -> None:
        """Send what ``link``'s machine queued and act on its events. Feeding the core may perform
        actions on this link at once (a next request): their messages go out in order too."""
        io = self._io
        io.transmit(link)
        protocol = link.protocol
        while (event := protocol.next_event()) is not None:
            self.handle(link, event)
        io.transmit(link)

    def handle(self, link: L, event: proto.Event) -> None:
        """One event of ``link``'s machine: the core's event, a stopped upload, or a violation."""
        if type(event) is proto.AnnouncementReceived:  # by far the most frequent: straight through
            self.feed(
                ev.PeerAnnounced(
                    peer_id=link.peer_id,
                    loaded=self.announced(event.loaded),
                    loading_by_http=self.announced(event.loading_by_http),
                )
            )
            return
        match event:
            case proto.UploadStopped():
                self._io.upload_stopped(link, event.upload)
            case proto.ProtocolViolated():
                self._violated(link, event.reason, event.request_id)
            case _:
                scheduled = proto.scheduler_event(
                    event, peer_id=link.peer_id, segment_id=self.segment_id, announced=self.announced
                )
                if scheduled is not None:
                    self.feed(scheduled)

    def _violated(self, link: L, reason: str, request_id: int | None) -> None:
        self.violations += 1
        logger.info("peer %s broke the protocol: %s", link.peer_id, reason)
        if request_id is not None:
            # The scheduler disconnects it (DisconnectPeer), loads the segment elsewhere and reports.
            self.feed(ev.PeerDownloadFailed(request_id=request_id, reason=reason, misbehaved=True))
        else:
            self.feed(ev.PeerViolatedProtocol(peer_id=link.peer_id, swarm=self.swarm, reason=reason))
        self._io.close(link, f"protocol violation: {reason}")

    # ------------------------------------------------------------------ core -> wire

    def perform(self, action: act.Action) -> None:
        """The core's peer action, on the machine of the link it names (none: nothing, except a
        request, which fails as ``peer gone``)."""
        io = self._io
        match action:
            case act.RequestFromPeer():
                link = self.links.get(action.peer_id)
                if link is None or not io.usable(link):
                    io.feed_soon(ev.PeerDownloadFailed(request_id=action.request_id, reason="peer gone"))
                    return
                link.protocol.send_request(
                    segment_id=self.wire_id(action.segment_id),
                    request_id=action.request_id,
                    byte_offset=action.byte_offset,
                )
                io.transmit(link)
            case act.CancelPeerDownload():
                link = self.links.get(action.peer_id)
                if link is not None and link.protocol.send_cancel(action.request_id):
                    io.transmit(link)
            case act.AnnounceSegments():
                self._announce(action)
            case act.SendSegmentToPeer():
                link = self.links.get(action.peer_id)
                if link is None or not io.usable(link):
                    return
                upload = link.protocol.start_upload(
                    segment_id=self.wire_id(action.segment_id),
                    request_id=action.peer_request_id or 0,
                    data=action.data,
                    length=action.total_bytes - action.byte_offset if action.growing else None,
                )
                io.upload_started(link, upload)
            case act.ExtendUpload():
                link = self.links.get(action.peer_id)
                if link is not None and link.protocol.extend_upload(
                    segment_id=self.wire_id(action.segment_id),
                    request_id=action.peer_request_id or 0,
                    data=action.data,
                ):
                    io.upload_extended(link)
            case act.SendSegmentAbsent() | act.AbortUpload():
                link = self.links.get(action.peer_id)
                if link is not None:
                    # An aborted upload stops first (the machine drops it; the pump ends its sending).
                    link.protocol.send_absent(
                        segment_id=self.wire_id(action.segment_id), request_id=action.peer_request_id or 0
                    )
                    io.pump(link)
            case act.DisconnectPeer():
                link = self.links.get(action.peer_id)
                if link is not None:
                    io.close(link, action.reason)
            case _:
                pass

    def _announce(self, action: act.AnnounceSegments) -> None:
        rendition = self.swarm
        # Tuples: every link's machine sends the same encoding (built once).
        loaded = tuple([self.wire_id(s) for s in action.loaded if s.rendition == rendition])
        loading = tuple([self.wire_id(s) for s in action.loading_by_http if s.rendition == rendition])
        if action.peer_id is not None:
            link = self.links.get(action.peer_id)
            targets = [] if link is None else [link]
        else:
            targets = list(self.links.values())
        io = self._io
        for link in targets:
            if io.usable(link):
                link.protocol.send_announcement(loaded=loaded, loading_by_http=loading)
                io.transmit(link)
