"""Peer admission of one swarm, sans-IO (time is an argument): who gets a peer slot, who loses it.

Peer ids are chosen by the peers themselves and a tracker relays offers from anyone, so one
attacker can appear as any number of peers (Sybils) and try to fill every slot (an *eclipse*).
Refusing newcomers when slots are full hands the swarm to whoever came first; this module keeps
slots for peers that deliver instead:

* **Open peers** hold at most ``max_peers`` slots. A peer is *useful* while it is in its grace period
  (``idle_grace`` seconds after its channel opened), has delivered bytes to us or taken an upload
  from us within ``idle_timeout`` seconds, or has announced segments we may still need (its
  requests have not failed since). A seeder's leechers never deliver to it, but take uploads: they
  stay. A peer that does none of these (it connects and stays silent) is *idle*.
* **Eviction.** When slots are full and a new peer's link opens, the idle peer that was useful
  longest ago is closed to make room; with no idle peer the newcomer is closed instead.
* **Rewiring for newcomers** (``rewire_interval``, off unless set). Viewers that join one after
  another link to everyone already there until their slots are full: with ``max_peers`` below the
  audience, the first ``max_peers + 1`` fill each other's slots and every later offer meets full,
  useful peers, so the latecomers stay alone (measured in the LL-HLS parts swarm, four links a
  viewer: five viewers held four links each all run, the other five 0.3-3 on average). After
  HyParView's rule for a node without neighbours (an offer does not say whether its sender has
  any, so any remote offer qualifies), one remote offer per ``rewire_interval`` seconds is still
  answered when every slot holds a useful peer, and when its link opens the peer whose last
  delivery to us (or opening, if it never delivered) is oldest is closed for it. That peer keeps a free slot,
  which the next newcomer's offer finds without any rewiring; a peer closed that way cannot take
  a slot back by rewiring for three intervals. A viewer's own rewiring thus replaces at most one
  peer per interval, and never a peer that delivers to us while one that does not is linked;
  but a slot freed by a neighbour's rewiring goes to whichever offer comes first, as any free
  slot does.
* **Connecting links** of remote offers we answered (not open yet) are capped separately at
  ``max_connecting``: a fake offer that never connects cannot take an open slot. Links of our own
  offers are bounded by the offers we make (:meth:`Admission.room`), so fakes cannot stop us. When
  that cap is full, a remote offer replaces the oldest connecting link we answered if that one is
  older than ``connecting_hold`` seconds (an honest connection opens well within it), else it is
  declined: spam arriving faster than connections open gets a bounded share, never all of it.
* **Offer budget.** Remote offers answered are capped at ``offer_budget`` per ``offer_window``
  seconds (a token bucket): each answer costs a peer connection and ICE gathering, so a spammer
  cannot make us spend without bound. Declined offers are counted.
* **Returning peers.** A spammer drawing a fresh peer id for every offer drains that budget, and the
  honest peers' offers would be declined with its own. An honest peer offers again under the same
  id in its next announce; an offer from an id that already offered at least ``returning_after``
  seconds earlier (one of the last 512 ids) is therefore answered from a second bucket of the same
  size, at most once per ``returning_after`` per id, and may take the place of the oldest
  connecting link we answered however young it is. A spammer must hold many ids over time (with a
  tracker binding one id per connection: many connections) to drain that bucket too.

* **One link per peer id.** Peer ids are self-asserted: a second connection claiming the id of a
  peer whose link is open never replaces it (:func:`keeps_existing_link`); only while both links
  are still connecting (both sides answered each other's offers: glare) does one give way, the
  same one on both sides.

The peer set (:class:`~p2ploader.core.peer_set.PeerSet`, which asks admission on every
transport's behalf) reports what happens to the links (:meth:`Admission.link_created`,
:meth:`~Admission.opened`, :meth:`~Admission.link_gone`, ...); the peer manager shows admission
every core action it performs and every core event it feeds (:meth:`~Admission.performing`,
:meth:`~Admission.feeding`: admission keeps which peer each of our requests went to, so a chunk
counts as that peer's delivery and a failure against its announcement). The peer set asks
(:meth:`~Admission.has_slot`, :meth:`~Admission.may_answer`, :meth:`~Admission.admit_open`).
Memory is bounded: records go with their link (one request per peer), and at most 512 ids that
offered are remembered.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from typing import Literal

import attrs

from p2ploader.core import actions as act
from p2ploader.core import events as ev
from p2ploader.core.segments import SegmentId
from p2ploader.errors import UsageError

__all__ = ["Admission", "AdmissionLimits", "AdmissionStatistics", "keeps_existing_link"]

_REWIRED_OUT_INTERVALS = 3
"""A peer closed to give a newcomer its slot cannot take a slot back by rewiring for this many
``rewire_interval``: it has a free slot now and finds other peers, or waits for a free one here."""


def keeps_existing_link(
    *, existing_open: bool, existing_initiator: bool, local_peer_id: str, remote_peer_id: str
) -> bool:
    """A second connection claiming ``remote_peer_id`` answered one of our offers while a link with
    that id exists: ``True`` keeps the existing link (the newcomer is dropped), ``False`` replaces it.

    An open link is always kept: anyone may claim the id of a connected peer, and must not replace
    or close it that way. While the existing link is still connecting, both sides answered each
    other's offers (glare): the connection whose offerer has the smaller peer id (hex) stays, a
    verdict both sides reach alike. ``existing_initiator``: the existing link is one of our offers."""
    if existing_open:
        return True
    existing_offerer = local_peer_id if existing_initiator else remote_peer_id
    return existing_offerer <= local_peer_id


@attrs.frozen(kw_only=True)
class AdmissionLimits:
    """Limits of :class:`Admission`. Times in seconds."""

    max_peers: int = 20
    """Open links at most."""
    max_connecting: int = 8
    """Links of remote offers we answered that are still connecting, at most."""
    connecting_hold: float = 3.0
    """A connecting link we answered keeps its place against newer offers for this long."""
    idle_grace: float = 5.0
    """After its channel opened, a peer is useful for this long whatever it does."""
    idle_timeout: float = 30.0
    """Bytes delivered (or an upload taken) within this long make a peer useful."""
    offer_budget: int = 40
    """Remote offers answered per ``offer_window`` at most."""
    offer_window: float = 30.0
    returning_after: float = 5.0
    """An id that offered this long ago or earlier is a returning peer (see the module doc)."""
    rewire_interval: float | None = None
    """With every slot held by a useful peer, one newcomer per this many seconds still gets a slot,
    the peer that delivered to us longest ago giving up its own (see the module doc). ``None``: never."""

    wanted_links: int = 0
    """Below this many open links the swarm looks for peers sooner than the tracker's interval even
    while some of its peers deliver (:meth:`Admission.wants_more_links`); 0: only while none does."""

    def __attrs_post_init__(self) -> None:
        if self.wanted_links < 0 or self.wanted_links > self.max_peers:
            raise UsageError(f"wanted_links must be within 0..max_peers, got {self.wanted_links}")
        if self.max_peers < 0 or self.max_connecting < 1 or self.offer_budget < 1:
            raise UsageError("max_peers must be >= 0, max_connecting and offer_budget >= 1")
        if min(self.connecting_hold, self.idle_grace, self.idle_timeout) < 0 or self.offer_window <= 0:
            raise UsageError("admission times must be >= 0 (offer_window > 0)")
        if self.rewire_interval is not None and not self.rewire_interval > 0:
            raise UsageError(f"rewire_interval must be > 0 seconds or None, got {self.rewire_interval}")


@attrs.frozen(kw_only=True)
class AdmissionStatistics:
    evicted: int
    """Idle peers closed to make room for a newcomer."""
    refused_full: int
    """Newly opened links closed because every slot held a useful peer."""
    offers_over_budget: int
    """Remote offers declined by the offer budget."""
    offers_busy: int
    """Remote offers declined because the connecting links were all recent."""
    connecting_replaced: int
    """Connecting links closed to make room for a newer offer."""
    returning_answered: int = 0
    """Offers of returning peers answered from their own budget."""
    rewired: int = 0
    """Useful peers closed to give a newcomer a slot (``rewire_interval``)."""


@attrs.define
class _Peer:
    created_at: float
    answered: bool  # we answered its offer (it did not answer ours)
    opened_at: float | None = None
    useful_at: float | None = None  # last delivery to us or upload taken from us
    delivered_at: float | None = None  # last delivery to us (rewiring keeps those who deliver)
    announced: Collection[SegmentId] = ()
    announcement_failed: bool = False  # a request failed since its bytes last came


class Admission:
    """Slot accounting and eviction of one swarm (see the module doc)."""

    def __init__(self, limits: AdmissionLimits | None = None) -> None:
        self.limits = limits or AdmissionLimits()
        self._peers: dict[str, _Peer] = {}
        self._tokens = float(self.limits.offer_budget)
        self._tokens_at: float | None = None
        self._returning_tokens = float(self.limits.offer_budget)
        self._returning_at: float | None = None
        self._offered: dict[str, tuple[float, float]] = {}  # id -> (first offer, last returning answer)
        self._returning = 0
        self._evicted = 0
        self._refused_full = 0
        self._over_budget = 0
        self._busy = 0
        self._replaced = 0
        self._rewired = 0
        self._rewired_at: float | None = None  # when a newcomer last took a useful peer's slot
        self._rewired_out: dict[str, float] = {}  # peers closed for a newcomer -> when
        self.last_eviction: Literal["idle", "rewired"] | None = None
        """Why :meth:`admit_open` last named a peer to close: it was idle, or it gave its slot to a
        newcomer (rewiring); ``None``: it named none."""
        self._request_peer: dict[int, str] = {}  # our request id -> the peer asked (latest per peer)
        self._peer_request: dict[str, int] = {}
        self.own_loaded: frozenset[SegmentId] = frozenset()
        """The segments of our latest announcement to all peers."""

    # ------------------------------------------------------------------ counts

    @property
    def open_count(self) -> int:
        return sum(1 for peer in self._peers.values() if peer.opened_at is not None)

    @property
    def connecting_count(self) -> int:
        return sum(1 for peer in self._peers.values() if peer.opened_at is None)

    def is_open(self, peer_id: str) -> bool:
        peer = self._peers.get(peer_id)
        return peer is not None and peer.opened_at is not None

    def room(self, *, now: float, wants: Callable[[Collection[SegmentId]], bool]) -> int:
        """How many more offers of ours are worth making now: free open slots (counting the idle
        peers a newcomer would replace) minus the links of our offers still connecting. Links of
        remote offers do not count: fake offers must not stop us looking for peers ourselves."""
        ours = sum(1 for peer in self._peers.values() if peer.opened_at is None and not peer.answered)
        return max(0, self.limits.max_peers - self.open_count + len(self._idle(now=now, wants=wants)) - ours)

    def wants_more_links(
        self, *, now: float, wants: Callable[[Collection[SegmentId]], bool], reachable: int | None = None
    ) -> bool:
        """Whether to look for peers sooner than the tracker's interval (the caller also checks
        that it is not alone): no open peer earns its slot (delivers, takes uploads or holds what
        we need), or fewer than ``wanted_links`` links are open (and fewer than ``reachable``, the
        other peers the tracker counts, when known); and an offer of ours would have room."""
        wanted = self.limits.wanted_links if reachable is None else min(self.limits.wanted_links, reachable)
        starved = self.earning(now=now, wants=wants) == 0 or self.open_count < wanted
        return starved and self.room(now=now, wants=wants) > 0

    def has_slot(
        self, *, now: float, wants: Callable[[Collection[SegmentId]], bool], peer_id: str = ""
    ) -> bool:
        """Whether the newcomer ``peer_id`` could get an open slot (a free one, an idle peer's, or
        by rewiring); connecting links do not count here, they have their own cap."""
        free = self.limits.max_peers - self.open_count
        return free > 0 or bool(self._idle(now=now, wants=wants)) or self._may_rewire(peer_id, now=now)

    def _may_rewire(self, peer_id: str, *, now: float) -> bool:
        """Whether a newcomer may take a useful peer's slot now (``rewire_interval``)."""
        interval = self.limits.rewire_interval
        if interval is None or self.limits.max_peers == 0:
            return False
        if self._rewired_at is not None and now - self._rewired_at < interval:
            return False
        closed_at = self._rewired_out.get(peer_id)
        return closed_at is None or now - closed_at >= _REWIRED_OUT_INTERVALS * interval

    def _rewire_victim(self, newcomer: str, *, now: float) -> str | None:
        """For ``newcomer``, the open peer whose last delivery to us (or, if it never delivered,
        its link's opening) is oldest. By delivery, not by usefulness: a peer that only takes
        uploads from us (a Sybil can, as fast as it likes) must not look fresher than one whose
        bytes we play; and a link that just opened is not closed for the next newcomer at once.
        Peers in their grace period count too: the viewers that fill each other's slots do so
        within a second or two of joining, and the next ones arrive meanwhile."""
        candidates = [
            (max(peer.opened_at, peer.delivered_at or peer.opened_at), peer_id)
            for peer_id, peer in self._peers.items()
            if peer_id != newcomer and peer.opened_at is not None
        ]
        return min(candidates)[1] if candidates else None

    def link_created(self, peer_id: str, *, now: float, answered: bool) -> None:
        self._peers[peer_id] = _Peer(created_at=now, answered=answered)

    def opened(self, peer_id: str, *, now: float) -> None:
        peer = self._peers.get(peer_id)
        if peer is not None:
            peer.opened_at = now

    def closed(self, peer_id: str) -> None:
        self._peers.pop(peer_id, None)

    def link_gone(self, peer_id: str) -> None:
        """The peer's link closed: its record and its request go."""
        self.closed(peer_id)
        request_id = self._peer_request.pop(peer_id, None)
        if request_id is not None:
            self._request_peer.pop(request_id, None)

    def performing(self, action: act.Action, *, now: float, linked: Collection[str]) -> None:
        """What a core action about to be performed tells admission: whom we ask (a peer with a
        link, open or connecting, among ``linked``: its bytes for that request then count as delivered),
        whom we serve, whose request we cancelled (stalled, too slow, or no longer needed: its
        announcement stops counting until it delivers again, so a peer announcing and then stalling
        does not stay useful), and what we hold ourselves."""
        match action:
            case act.RequestFromPeer() if action.peer_id in linked:
                previous = self._peer_request.get(action.peer_id)
                if previous is not None:
                    self._request_peer.pop(previous, None)
                self._peer_request[action.peer_id] = action.request_id
                self._request_peer[action.request_id] = action.peer_id
            case act.SendSegmentToPeer():
                self.served(action.peer_id, now=now)
            case act.CancelPeerDownload():
                self.request_failed(action.peer_id)
            case act.AnnounceSegments() if action.peer_id is None:
                self.own_loaded = frozenset(action.loaded)
            case _:
                pass

    def feeding(self, event: ev.Event, *, now: float) -> None:
        """What a core event about to be fed tells admission: bytes from the peer we asked, a
        request of ours that failed (not because the peer was gone), a peer's announcement, an
        upload the peer took bytes of."""
        match event:
            case ev.PeerChunkReceived() if event.data:
                peer_id = self._request_peer.get(event.request_id)
                if peer_id is not None:
                    self.delivered(peer_id, now=now)
            case ev.PeerDownloadFailed():
                peer_id = self._request_peer.get(event.request_id)
                if peer_id is not None and event.reason != "peer gone":
                    self.request_failed(peer_id)
            case ev.PeerAnnounced():
                self.announced(event.peer_id, event.loaded)
            case ev.UploadFinished() if event.sent_bytes > 0:
                self.served(event.peer_id, now=now)
            case _:
                pass

    def delivered(self, peer_id: str, *, now: float) -> None:
        """The peer sent us segment bytes: useful, and its announcement is credible again."""
        peer = self._peers.get(peer_id)
        if peer is not None:
            peer.useful_at = now
            peer.delivered_at = now
            peer.announcement_failed = False

    def served(self, peer_id: str, *, now: float) -> None:
        """The peer took segment bytes from us (a leecher: a seeder's peers never deliver)."""
        peer = self._peers.get(peer_id)
        if peer is not None:
            peer.useful_at = now

    def announced(self, peer_id: str, segments: Collection[SegmentId]) -> None:
        """The peer's latest map of segments it holds (kept by reference, read at eviction time)."""
        peer = self._peers.get(peer_id)
        if peer is not None:
            peer.announced = segments

    def request_failed(self, peer_id: str) -> None:
        """A request to the peer failed: its announcement no longer makes it useful until it
        delivers again (re-announcing does not restore it, or a liar would stay for ever)."""
        peer = self._peers.get(peer_id)
        if peer is not None:
            peer.announcement_failed = True

    # ------------------------------------------------------------------ decisions

    def useful(self, peer_id: str, *, now: float, wants: Callable[[Collection[SegmentId]], bool]) -> bool:
        """Whether an open peer earns its slot (see the module doc); connecting links: ``True``."""
        peer = self._peers.get(peer_id)
        if peer is None or peer.opened_at is None:
            return True
        limits = self.limits
        if now - peer.opened_at < limits.idle_grace:
            return True
        if peer.useful_at is not None and now - peer.useful_at < limits.idle_timeout:
            return True
        return bool(peer.announced) and not peer.announcement_failed and wants(peer.announced)

    def earning(self, *, now: float, wants: Callable[[Collection[SegmentId]], bool]) -> int:
        """Open peers useful by what they do (deliver, take uploads, announce what we need), not
        merely by being in their grace period."""
        limits = self.limits
        count = 0
        for peer in self._peers.values():
            if peer.opened_at is None:
                continue
            recent = peer.useful_at is not None and now - peer.useful_at < limits.idle_timeout
            if recent or (peer.announced and not peer.announcement_failed and wants(peer.announced)):
                count += 1
        return count

    def _idle(self, *, now: float, wants: Callable[[Collection[SegmentId]], bool]) -> list[str]:
        """Open peers that do not earn their slot, the longest idle first."""

        def idle_since(item: tuple[str, _Peer]) -> float:
            peer = item[1]
            assert peer.opened_at is not None
            return max(peer.opened_at, peer.useful_at or peer.opened_at)

        idle = [
            item
            for item in self._peers.items()
            if item[1].opened_at is not None and not self.useful(item[0], now=now, wants=wants)
        ]
        return [peer_id for peer_id, _ in sorted(idle, key=idle_since)]

    def admit_open(
        self, peer_id: str, *, now: float, wants: Callable[[Collection[SegmentId]], bool]
    ) -> tuple[bool, str | None]:
        """A link just opened. Returns ``(keep, evict)``: whether to keep it, and an idle peer to
        close for it (``None``: there was a free slot, or nobody to evict and ``keep`` is False)."""
        self.opened(peer_id, now=now)
        self.last_eviction = None
        if self.open_count <= self.limits.max_peers:
            return True, None
        idle = [p for p in self._idle(now=now, wants=wants) if p != peer_id]
        if idle:
            self._evicted += 1
            self.last_eviction = "idle"
            return True, idle[0]
        peer = self._peers.get(peer_id)
        if peer is not None and peer.answered and self._may_rewire(peer_id, now=now):
            victim = self._rewire_victim(peer_id, now=now)
            if victim is not None:
                self._rewired += 1
                self.last_eviction = "rewired"
                self._rewired_at = now
                self._rewired_out[victim] = now
                self._forget_rewired(now=now)
                return True, victim
        self._refused_full += 1
        return False, None

    def _forget_rewired(self, *, now: float) -> None:
        """Drop the records of peers closed for newcomers three intervals ago or more (at most one
        closes per interval, so a few records are kept at any time)."""
        held = _REWIRED_OUT_INTERVALS * (self.limits.rewire_interval or 0.0)
        for peer_id, closed_at in list(self._rewired_out.items()):
            if now - closed_at >= held:
                del self._rewired_out[peer_id]

    def _returning_peer(self, peer_id: str, *, now: float) -> bool:
        """Record an offer from ``peer_id``; ``True`` when it is a returning peer's (module doc)."""
        wait = self.limits.returning_after
        seen = self._offered.pop(peer_id, None)  # re-inserted last: the oldest ids go first
        if seen is None:
            if len(self._offered) >= 512:
                del self._offered[next(iter(self._offered))]
            self._offered[peer_id] = (now, -wait)
            return False
        first, last_answer = seen
        returning = now - first >= wait and now - last_answer >= wait
        self._offered[peer_id] = (first, now if returning else last_answer)
        return returning

    def may_answer(self, *, now: float, peer_id: str = "") -> tuple[bool, str | None]:
        """A remote offer from ``peer_id`` arrived (checks of the peer itself passed). Returns
        ``(answer, replace)``: whether to answer it, and a connecting link to close for it first."""
        returning = bool(peer_id) and self._returning_peer(peer_id, now=now)
        if returning and self._take_token(now=now, returning=True):
            self._returning += 1
        elif not self._take_token(now=now, returning=False):
            self._over_budget += 1
            return False, None
        else:
            returning = False
        if self.connecting_count < self.limits.max_connecting:
            return True, None
        oldest = min(
            (item for item in self._peers.items() if item[1].opened_at is None and item[1].answered),
            key=lambda item: item[1].created_at,
            default=None,
        )
        if oldest is not None and (returning or now - oldest[1].created_at >= self.limits.connecting_hold):
            self._replaced += 1
            return True, oldest[0]
        self._busy += 1
        return False, None

    def _take_token(self, *, now: float, returning: bool) -> bool:
        limits = self.limits
        tokens, at = (
            (self._returning_tokens, self._returning_at) if returning else (self._tokens, self._tokens_at)
        )
        if at is not None:
            tokens = min(
                float(limits.offer_budget), tokens + (now - at) * limits.offer_budget / limits.offer_window
            )
        taken = tokens >= 1.0
        if taken:
            tokens -= 1.0
        if returning:
            self._returning_tokens, self._returning_at = tokens, now
        else:
            self._tokens, self._tokens_at = tokens, now
        return taken

    def statistics(self) -> AdmissionStatistics:
        return AdmissionStatistics(
            evicted=self._evicted,
            refused_full=self._refused_full,
            offers_over_budget=self._over_budget,
            offers_busy=self._busy,
            connecting_replaced=self._replaced,
            returning_answered=self._returning,
            rewired=self._rewired,
        )
