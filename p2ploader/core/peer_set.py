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
sending what a machine queued, closing a link, feeding an event once the current step is done, and
running an upload's bytes. The peer set does no I/O, reads no clock (``now`` is an argument,
seconds) and draws no randomness.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Generic, Protocol, TypeVar

from p2ploader.core import actions as act
from p2ploader.core import events as ev
from p2ploader.core import peer_protocol as proto
from p2ploader.core import swarm, wire
from p2ploader.core.peer_limits import announcement_id_limit
from p2ploader.core.peer_protocol import PeerProtocol, Upload
from p2ploader.core.segments import SegmentId

__all__ = ["GROWING_UPLOAD_PATIENCE", "PeerEnd", "PeerLinkIO", "PeerSet"]

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


class PeerSet(Generic[L]):
    """The links of one swarm and the decisions about them (see the module's theory of operation).

    ``swarm``: the rendition id (segment ids on the wire are mapped with ``live`` and
    ``first_sequence``, :func:`~p2ploader.core.swarm.segment_wire_id`). ``feed``: the core's
    events. ``max_segment_size``: bytes a data header may announce; ``max_announced_ids``: ids an
    announcement may carry; ``max_message_size``: bytes per message we send. ``is_banned(peer_id,
    certificate)``: the core's verdict (``certificate`` ``None``: the id alone); ``None``: nobody is
    banned. ``bind_certificate(peer_id, certificate)``: a new link of ``peer_id`` uses that
    certificate. ``announced``: maps an announcement's wire ids to segment ids (default: one by
    one; the simulator shares the sets of one announcement among its receivers)."""

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

    def add(self, peer_id: str, link: L, *, certificate: str | None = None) -> None:
        """``link`` is ``peer_id``'s link now (the transport checked :meth:`refuses`); with a
        ``certificate``, the core's strikes and bans under ``peer_id`` fall on it."""
        self.links[peer_id] = link
        if certificate is None:
            # A new link without one: the previous link's certificate must not judge it.
            self.certificates.pop(peer_id, None)
        else:
            self.certificates[peer_id] = certificate
            if self._bind_certificate is not None:
                self._bind_certificate(peer_id, certificate)

    def remove(self, peer_id: str, link: L | None = None) -> L | None:
        """Forget ``peer_id``'s link (only if it is ``link``, when given); the link forgotten."""
        current = self.links.get(peer_id)
        if current is None or (link is not None and current is not link):
            return None
        del self.links[peer_id]
        self.certificates.pop(peer_id, None)
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
