"""The WebTorrent tracker client protocol as a sans-IO machine: events and the time in, effects out.

Theory of operation
-------------------
One :class:`TrackerClientProtocol` is one swarm (``info_hash``) seen by one peer (``peer_id``) on
one or more tracker URLs, like the JavaScript ``bittorrent-tracker`` client that P2P Media Loader
embeds. It never touches a socket, a task or a clock: the I/O layer
(:mod:`p2ploader.aio.tracker_client`) feeds it events with the time ``now`` (seconds, monotonic),
performs the :data:`Effect` objects it pulls with :meth:`~TrackerClientProtocol.effects`, and
calls :meth:`~TrackerClientProtocol.handle_timer` at :meth:`~TrackerClientProtocol.get_timer`.

Events in: :meth:`start`, :meth:`connected`, :meth:`connect_failed`, :meth:`message_received`,
:meth:`closed` (with the reason in words), :meth:`handle_timer`, :meth:`offers_made` (the answer to
a :class:`MakeOffers`), :meth:`answer_ready` (to an :class:`AnswerOffer`),
:meth:`signalling_finished` (an :class:`DeliverAnswer` was handled), :meth:`announce_now`,
:meth:`forget_peer`, :meth:`close`. Effects out: :class:`Connect`, :class:`SendMessage`,
:class:`Disconnect`, :class:`MakeOffers`, :class:`AnswerOffer`, :class:`DeliverAnswer`,
:class:`OfferExpired`, :class:`SwarmUpdated`, :class:`TrackerExtension`,
:class:`ReportConnected`, :class:`ReportFailed`.

* **Announce.** On every (re)connection the first announce carries ``event: "started"``; periodic
  announces carry no ``event`` (never ``update``, which wt-tracker rejects). Each announce asks for
  ``offers_per_announce`` fresh offers (:class:`MakeOffers`, 5 like the browser client; fewer if
  ``max_pending_offers`` would be exceeded, and the caller may return fewer) and sends ``numwant``
  equal to the number of offers it carries, because bittorrent-tracker ignores ``numwant`` and
  wt-tracker relays ``min(numwant, offers)``. ``uploaded``/``downloaded`` are 0 and ``left`` is
  omitted, like P2P Media Loader's browser peers. Every offer goes to one tracker only (an offer is
  one peer connection and can take one answer).
* **Interval.** ``default_interval`` (30 s, the JS client's) until the tracker answers; then the
  tracker's ``interval`` (or ``min interval``) clamped to ``[min_announce_interval,
  max_announce_interval]``; a ``min interval`` larger than that is respected (up to one hour).
* **Looking for peers sooner.** ``wants_peers(swarm_size)`` (the swarm's size from the latest
  response, 0 before one) is asked ``min_announce_interval`` after each announce and then at that
  pace. While it says ``True`` (the caller has no peer that delivers or takes uploads: e.g. idle
  Sybils hold its links, or its offers went to them), it announces with fresh offers, the gap
  doubling each time, up to the interval and never below the tracker's ``min interval``; a
  ``False`` restarts the back-off. Offers go to random peers of the swarm, so more rounds find
  the honest ones among Sybils sooner; the back-off bounds the tracker's load.
* **Relayed offers** from other peers become :class:`AnswerOffer`; the answer SDP given back with
  :meth:`answer_ready` goes back through the same tracker with ``to_peer_id`` and the same
  ``offer_id``; ``None`` declines. An answer produced later than ``offer_timeout`` after the offer
  arrived is not sent (the offerer has given up on it). At most ``max_concurrent_signalling``
  offers and answers are with the caller at once; further offers are declined.
* **Relayed answers** are matched to our pending offers by ``offer_id`` and tracker, then become
  :class:`DeliverAnswer`. Offers that stay unanswered for ``offer_timeout`` (50 s, the JS client's
  ``OFFER_TIMEOUT``), whose tracker connection was lost, or that were answered by a peer we are
  already signalling with become :class:`OfferExpired`, so that the caller closes those peer
  connections.
* **De-duplication by peer id.** Messages carrying our own ``peer_id`` and messages for another
  ``info_hash`` are dropped. After we answer a remote peer's offer or accept its answer, further
  offers and answers from that peer id (through any tracker) are suppressed for ``dedup_window``
  seconds, so one remote peer reached through several trackers is answered once. In *glare* (we
  answered its offer and it answered ours), the connection offered by the smaller peer id is kept
  on both sides: we accept its answer only if our id is smaller. :meth:`forget_peer` lifts the
  suppression early, e.g. when a connection failed.
* **Failures.** ``{"failure reason": ...}`` without ``action`` (a request the tracker could not
  parse) is fatal for the socket: :class:`Disconnect`, back off, reconnect. With
  ``action``/``info_hash`` (a refusal such as a full swarm) it is logged, the offers of the refused
  announce expire, and the announce is retried after a back-off on the same socket. ``warning
  message`` is logged. Garbage frames are counted and ignored.
* **Reconnect.** A refused connection, a closed socket or a fatal failure is followed by a delay of
  ``backoff_min * 2**n`` capped at ``backoff_max``, minus up to ``backoff_jitter`` of it at random
  (:func:`backoff_delay`, with the injected ``rng``); ``n`` resets once a tracker accepts an
  announce. Each is reported (:class:`ReportFailed`, the reason in words and the delay), each
  opened connection too (:class:`ReportConnected`).
* **Close.** :meth:`close` stops announcing, sends ``event: "stopped"`` (no offers) to every
  tracker that accepted an announce on its current connection, without waiting for a reply
  (wt-tracker sends none), and expires the still pending offers.

Nothing raises out of the event methods on account of a tracker's data or the caller's hooks
(``wants_peers``, ``announce_extra``): they are logged and counted.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Final, Literal, TypeAlias

import attrs

from p2ploader.core.tracker_wire import (
    ID_LENGTH,
    Announce,
    AnnounceResponse,
    Answer,
    Failure,
    OfferEntry,
    RelayedAnswer,
    RelayedOffer,
    ScrapeResponse,
    TrackerMessageError,
    decode_response,
    encode,
)
from p2ploader.errors import UsageError

__all__ = [
    "AnswerOffer",
    "Connect",
    "DeliverAnswer",
    "Disconnect",
    "Effect",
    "MakeOffers",
    "Offer",
    "OfferExpired",
    "ReportConnected",
    "ReportFailed",
    "SendMessage",
    "SwarmUpdated",
    "TrackerClientProtocol",
    "TrackerClientSettings",
    "TrackerClientStatistics",
    "TrackerConnectionState",
    "TrackerExtension",
    "TrackerStatus",
    "backoff_delay",
]

logger = logging.getLogger("p2ploader.aio.tracker_client")

TrackerConnectionState: TypeAlias = Literal["idle", "connecting", "connected", "failed", "closed"]
"""A tracker URL's connection state (the same values as :data:`p2ploader.status.TrackerConnection`)."""

_MAX_PERIOD: Final = 3600.0  # a tracker's `min interval` is respected up to this many seconds
MIN_FORCED_GAP: Final = 1.0  # seconds between announces forced by announce_now()
_PRUNE_ENGAGED_AT: Final = 256  # remote peers remembered before expired entries are pruned


def backoff_delay(
    attempt: int, *, minimum: float, maximum: float, jitter: float, rng: random.Random
) -> float:
    """Seconds to wait before reconnection attempt ``attempt`` (0 for the first retry).

    ``min(minimum * 2**attempt, maximum)``, reduced by a random fraction of at most ``jitter`` so
    that clients that lost the same tracker do not come back in lockstep. Always within
    ``[(1 - jitter) * minimum, maximum]``.
    """
    base = min(minimum * 2.0 ** min(attempt, 60), maximum)
    return base * (1.0 - jitter * rng.random())


def _check_offer_id(instance: object, attribute: attrs.Attribute[bytes], value: bytes) -> None:
    if not isinstance(value, bytes) or len(value) != ID_LENGTH:
        raise ValueError(f"offer_id must be {ID_LENGTH} bytes, not {value!r}")


@attrs.frozen
class Offer:
    """One complete (non-trickle) WebRTC offer for the tracker, made for a :class:`MakeOffers`.

    ``offer_id`` is 20 random bytes chosen by the caller, unique among its pending offers; the
    answer to it, or its expiry, is reported with the same id.
    """

    offer_id: bytes = attrs.field(validator=_check_offer_id)
    sdp: str = attrs.field(validator=attrs.validators.instance_of(str))


# ------------------------------------------------------------------------------------ settings


def _positive(name: str, value: float) -> None:
    if not value > 0:
        raise UsageError(f"{name} must be positive, not {value!r}")


@attrs.frozen(kw_only=True)
class TrackerClientSettings:
    """The client's timing and bounds (seconds, counts); checked on construction (:class:`UsageError`)."""

    offers_per_announce: int = 5
    """Offers per announce, 0-10 (browsers send 5); ``numwant`` on the wire is the number sent."""
    max_pending_offers: int = 50
    """Unanswered offers across trackers."""
    offer_timeout: float = 50.0
    default_interval: float = 30.0
    """Seconds between announces before a tracker gives its ``interval``."""
    min_announce_interval: float = 10.0
    max_announce_interval: float = 300.0
    backoff_min: float = 5.0
    backoff_max: float = 300.0
    backoff_jitter: float = 0.5
    dedup_window: float = 60.0
    max_concurrent_signalling: int = 20
    """Offers and answers with the caller at once."""
    max_message_size: int = 256 * 1024
    """Characters per incoming frame (at least 1024)."""

    def __attrs_post_init__(self) -> None:
        if not 0 <= self.offers_per_announce <= 10:
            raise UsageError("offers_per_announce must be between 0 and 10 (browsers send 5)")
        if self.max_pending_offers < 0 or self.max_concurrent_signalling < 1 or self.max_message_size < 1024:
            raise UsageError("max_pending_offers, max_concurrent_signalling or max_message_size out of range")
        for name in (
            "offer_timeout",
            "default_interval",
            "min_announce_interval",
            "max_announce_interval",
            "backoff_min",
            "backoff_max",
            "dedup_window",
        ):
            _positive(name, getattr(self, name))
        if self.min_announce_interval > self.max_announce_interval or self.backoff_min > self.backoff_max:
            raise UsageError("minimum above maximum in the announce interval or back-off bounds")
        if not 0 <= self.backoff_jitter < 1:
            raise UsageError("backoff_jitter must be in [0, 1)")


# ------------------------------------------------------------------------------------ effects


@attrs.frozen
class Connect:
    """Open a WebSocket to ``url`` (report :meth:`~TrackerClientProtocol.connected` or
    :meth:`~TrackerClientProtocol.connect_failed`)."""

    url: str


@attrs.frozen
class SendMessage:
    """Send ``text`` (one frame) on the current connection to ``url``."""

    url: str
    text: str


@attrs.frozen
class Disconnect:
    """Close the connection to ``url`` (the tracker refused us); the machine already counts it
    ended, so no :meth:`~TrackerClientProtocol.closed` is needed."""

    url: str


@attrs.frozen
class MakeOffers:
    """Make up to ``count`` fresh offers for an announce on ``url``; give them (or fewer, or none)
    to :meth:`~TrackerClientProtocol.offers_made` with this effect."""

    url: str
    count: int
    connection: int
    """The connection (a counter per URL) the announce is for."""


@attrs.frozen
class AnswerOffer:
    """A remote peer's offer: give the answer SDP (or ``None`` to decline) to
    :meth:`~TrackerClientProtocol.answer_ready` with this effect."""

    url: str
    peer_id: bytes
    offer_id: bytes
    sdp: str
    received_at: float
    """When the offer arrived (seconds): an answer later than ``offer_timeout`` is not sent."""


@attrs.frozen
class DeliverAnswer:
    """The answer to our offer ``offer_id``; report :meth:`~TrackerClientProtocol.signalling_finished`
    once it is handled."""

    peer_id: bytes
    offer_id: bytes
    sdp: str


@attrs.frozen
class OfferExpired:
    """The offer ``offer_id`` will never be answered: close its connection."""

    offer_id: bytes


@attrs.frozen
class SwarmUpdated:
    """A tracker's announce response counted the swarm (P2P Media Loader 0.6 reads ``incomplete``)."""

    complete: int
    incomplete: int


@attrs.frozen
class TrackerExtension:
    """A tracker's ``p2ploader`` object (host/client topology)."""

    data: Mapping[str, Any]


@attrs.frozen
class ReportConnected:
    """The WebSocket to ``url`` opened."""

    url: str


@attrs.frozen
class ReportFailed:
    """A connection attempt to ``url`` failed, or its connection ended (not by a close):
    ``reason`` in words, the next attempt in ``retry_in`` seconds."""

    url: str
    reason: str
    retry_in: float


Effect: TypeAlias = (
    Connect
    | SendMessage
    | Disconnect
    | MakeOffers
    | AnswerOffer
    | DeliverAnswer
    | OfferExpired
    | SwarmUpdated
    | TrackerExtension
    | ReportConnected
    | ReportFailed
)


# ------------------------------------------------------------------------------------ figures


@attrs.frozen(kw_only=True)
class TrackerStatus:
    """One tracker URL as seen by the client."""

    url: str
    connected: bool
    connects: int
    """WebSocket connections opened."""
    connect_failures: int
    announces: int
    responses: int
    """Announce responses received (they carry the swarm counts)."""
    failures: int
    """``failure reason`` messages received."""
    interval: float
    """Current re-announce period in seconds."""
    complete: int | None
    incomplete: int | None
    last_error: str | None
    """Why the latest attempt failed or the latest connection ended, in words (see
    :mod:`p2ploader.aio.tracker_reasons`)."""
    state: TrackerConnectionState = "idle"
    reconnects: int = 0
    """Connection attempts after the first."""


@attrs.frozen(kw_only=True)
class TrackerClientStatistics:
    """A snapshot of a tracker client's figures."""

    trackers: tuple[TrackerStatus, ...]
    offers_sent: int
    offers_answered: int
    """Answers to our offers delivered to the caller."""
    offers_expired: int
    offers_received: int
    """Valid offers from other peers relayed to us."""
    answers_sent: int
    offers_declined: int
    """Remote offers not answered: declined, failed, too slow or too busy."""
    duplicates_suppressed: int
    """Offers and answers dropped because we are already signalling with that peer id."""
    ignored_messages: int
    """Garbage frames, other swarms, our own id, answers to unknown offers."""
    pending_offers: int

    @property
    def connected_trackers(self) -> int:
        return sum(1 for tracker in self.trackers if tracker.connected)


# ------------------------------------------------------------------------------------ state


@attrs.define
class _Pending:
    session: _Session
    expires_at: float


@attrs.define
class _Engagement:
    roles: set[Literal["offerer", "answerer"]]
    until: float


@attrs.define(eq=False)
class _Session:
    """One tracker URL: its connection state, announce schedule and figures."""

    url: str
    period: float
    connection: int = 0  # connections opened so far; the current one's number while connected
    open: bool = False  # a WebSocket is up
    making: bool = False  # a MakeOffers is out for the current connection
    reconnect_at: float | None = None
    attempt: int = 0  # reconnect back-off exponent
    next_at: float = 0.0
    last_announce_at: float = 0.0
    joined: bool = False  # the tracker accepted an announce on the current connection
    healthy: bool = False  # ... at least once since the last reconnect back-off
    refusals: int = 0  # consecutive `failure reason` refusals on this connection
    early: int = 0  # consecutive early announces (looking for peers), for the back-off
    check_at: float | None = None  # when to ask wants_peers next
    min_interval: float = 0.0  # the tracker's `min interval`, seconds
    last_offers: list[bytes] = attrs.Factory(list)  # offer ids of the latest announce
    refused_reason: str | None = None  # set when the tracker refused us (fatal failure reason)
    connects: int = 0
    connect_failures: int = 0
    announces: int = 0
    responses: int = 0
    failures: int = 0
    complete: int | None = None
    incomplete: int | None = None
    last_error: str | None = None
    state: TrackerConnectionState = "idle"
    reconnects: int = 0

    def status(self) -> TrackerStatus:
        return TrackerStatus(
            url=self.url,
            connected=self.open,
            connects=self.connects,
            connect_failures=self.connect_failures,
            announces=self.announces,
            responses=self.responses,
            failures=self.failures,
            interval=self.period,
            complete=self.complete,
            incomplete=self.incomplete,
            last_error=self.last_error,
            state=self.state,
            reconnects=self.reconnects,
        )

    def announce_wake(self) -> float | None:
        """When the announce schedule needs attention next (``None``: nothing to do now)."""
        if not self.open or self.making:
            return None
        wake = self.next_at
        if self.check_at is not None and self.joined and not self.refusals:
            wake = min(wake, self.check_at)
        return wake


class TrackerClientProtocol:
    """Announces one swarm to WebTorrent trackers and relays offers and answers (see the module doc).

    ``wants_peers(swarm_size)`` and ``announce_extra()`` are the caller's synchronous hooks (the
    latter's fields are merged into every announce but ``stopped``). ``rng`` draws the back-off
    jitter.
    """

    def __init__(
        self,
        urls: Sequence[str],
        *,
        info_hash: bytes,
        peer_id: bytes,
        settings: TrackerClientSettings | None = None,
        rng: random.Random,
        wants_peers: Callable[[int], bool] | None = None,
        announce_extra: Callable[[], Mapping[str, Any]] | None = None,
    ) -> None:
        if not isinstance(info_hash, bytes) or len(info_hash) != ID_LENGTH:
            raise UsageError(f"info_hash must be {ID_LENGTH} bytes")
        if not isinstance(peer_id, bytes) or len(peer_id) != ID_LENGTH:
            raise UsageError(f"peer_id must be {ID_LENGTH} bytes")
        if isinstance(urls, str) or not urls:
            raise UsageError("urls must be a non-empty sequence")
        self.info_hash = info_hash
        self.peer_id = peer_id
        self.settings = settings or TrackerClientSettings()
        self._rng = rng
        self._wants_peers = wants_peers
        self._announce_extra = announce_extra
        self._sessions = {
            url: _Session(url=url, period=self.settings.default_interval) for url in dict.fromkeys(urls)
        }
        self._pending: dict[bytes, _Pending] = {}
        self._engaged: dict[bytes, _Engagement] = {}
        self._signalling = 0  # AnswerOffer and DeliverAnswer effects not finished yet
        self._effects: list[Effect] = []
        self._started = False
        self.closing = False
        self._counts: dict[str, int] = dict.fromkeys(
            (
                "offers_sent",
                "offers_answered",
                "offers_expired",
                "offers_received",
                "answers_sent",
                "offers_declined",
                "duplicates_suppressed",
                "ignored_messages",
            ),
            0,
        )

    # ------------------------------------------------------------------ outputs

    def effects(self) -> list[Effect]:
        """The effects to perform, in order (each returned once)."""
        effects, self._effects = self._effects, []
        return effects

    def get_timer(self) -> float | None:
        """When :meth:`handle_timer` must be called next (seconds), or ``None``."""
        deadlines: list[float] = [pending.expires_at for pending in self._pending.values()]
        if not self.closing:
            for session in self._sessions.values():
                if session.reconnect_at is not None:
                    deadlines.append(session.reconnect_at)
                wake = session.announce_wake()
                if wake is not None:
                    deadlines.append(wake)
        return min(deadlines, default=None)

    @property
    def urls(self) -> tuple[str, ...]:
        return tuple(self._sessions)

    def is_open(self, url: str) -> bool:
        return self._sessions[url].open

    def statistics(self) -> TrackerClientStatistics:
        return TrackerClientStatistics(
            trackers=tuple(session.status() for session in self._sessions.values()),
            pending_offers=len(self._pending),
            **self._counts,
        )

    # ------------------------------------------------------------------ lifecycle events

    def start(self, *, now: float) -> None:
        """Connect to every tracker."""
        if self._started or self.closing:
            raise UsageError("a tracker client can be started once")
        self._started = True
        for session in self._sessions.values():
            session.state = "connecting"
            self._effects.append(Connect(session.url))

    def connected(self, url: str, *, now: float) -> None:
        """The WebSocket to ``url`` opened: announce at once."""
        session = self._sessions[url]
        session.open = True
        session.connection += 1
        session.connects += 1
        session.healthy = False
        session.refused_reason = None
        session.state = "connected"
        session.joined = False
        session.making = False
        session.refusals = 0
        session.early = 0
        session.check_at = None
        session.period = self.settings.default_interval
        session.next_at = now
        self._effects.append(ReportConnected(url))

    def connect_failed(self, url: str, reason: str, *, now: float) -> None:
        """A connection attempt to ``url`` failed; ``reason`` in words."""
        session = self._sessions[url]
        session.connect_failures += 1
        session.state = "failed"
        session.last_error = reason
        logger.info("tracker %s: cannot connect: %s", url, reason)
        self._schedule_reconnect(session, now)

    def closed(self, url: str, reason: str, *, now: float) -> None:
        """The connection to ``url`` ended (``reason`` in words); ignored when the machine ended
        it itself (:class:`Disconnect`) or is closing."""
        session = self._sessions[url]
        if not session.open:
            return
        self._end_connection(session, reason, now)

    def _end_connection(self, session: _Session, reason: str, now: float) -> None:
        session.open = False
        session.making = False
        self._expire_offers_of(session, "tracker connection lost")
        if self.closing:
            session.state = "closed"
            return
        session.state = "failed" if session.refused_reason is not None else "closed"
        session.last_error = session.refused_reason or reason
        if session.healthy:
            session.attempt = 0
        self._schedule_reconnect(session, now)

    def _schedule_reconnect(self, session: _Session, now: float) -> None:
        if self.closing:
            return
        settings = self.settings
        delay = backoff_delay(
            session.attempt,
            minimum=settings.backoff_min,
            maximum=settings.backoff_max,
            jitter=settings.backoff_jitter,
            rng=self._rng,
        )
        session.attempt += 1
        session.reconnect_at = now + delay
        logger.info("tracker %s: reconnecting in %.1f s", session.url, delay)
        self._effects.append(ReportFailed(session.url, session.last_error or "unknown", delay))

    def close(self, *, now: float) -> None:
        """Stop announcing: ``stopped`` to every tracker that accepted us, pending offers expire.
        Idempotent. The I/O layer then closes the sockets."""
        if self.closing:
            return
        self.closing = True
        for session in self._sessions.values():
            session.reconnect_at = None
            if session.open and session.joined:
                stopped = Announce(info_hash=self.info_hash, peer_id=self.peer_id, event="stopped", numwant=0)
                self._effects.append(SendMessage(session.url, encode(stopped)))
        for offer_id in list(self._pending):
            self._expire_offer(offer_id, "client closed")

    def announce_now(self, *, now: float) -> None:
        """Announce (with fresh offers) as soon as possible on every connected tracker, but not
        sooner than ``MIN_FORCED_GAP`` after the previous announce: e.g. a client whose host left
        looks for another one at once instead of a whole interval later."""
        if self.closing:
            return
        for session in self._sessions.values():
            if session.open:
                session.next_at = max(now, session.last_announce_at + MIN_FORCED_GAP)

    def forget_peer(self, peer_id: bytes) -> None:
        """Stop suppressing offers and answers from ``peer_id`` (e.g. its connection failed)."""
        self._engaged.pop(peer_id, None)

    # ------------------------------------------------------------------ timers

    def handle_timer(self, *, now: float) -> None:
        """Everything due at ``now``: offer expiries, reconnects, announces."""
        for offer_id, pending in list(self._pending.items()):
            if pending.expires_at <= now:
                self._expire_offer(offer_id, "unanswered")
        if self.closing:
            return
        for session in self._sessions.values():
            if session.reconnect_at is not None and session.reconnect_at <= now:
                session.reconnect_at = None
                session.reconnects += 1
                self._effects.append(Connect(session.url))
            self._run_schedule(session, now)

    def _run_schedule(self, session: _Session, now: float) -> None:
        while (wake := session.announce_wake()) is not None and wake <= now:
            if now < session.next_at and not self._wants_peers_now(session):
                # Not looking for peers: poll again after the shortest gap; the back-off restarts.
                session.early = 0
                session.check_at = now + self._early_delay(session)
                continue
            if now < session.next_at:
                session.early += 1
            self._begin_announce(session, now)

    def _early_delay(self, session: _Session) -> float:
        """Seconds after an announce before the next one while peers are wanted: the minimum
        interval, doubling with each early announce, at most the interval, never below the tracker's
        ``min interval``."""
        delay = self.settings.min_announce_interval * 2.0 ** min(session.early, 30)
        return max(min(delay, session.period), session.min_interval)

    def _wants_peers_now(self, session: _Session) -> bool:
        if self._wants_peers is None:
            return False
        known = session.complete is not None and session.incomplete is not None
        size = (session.complete or 0) + (session.incomplete or 0) if known else 0
        try:
            return bool(self._wants_peers(size))
        except Exception:  # the caller's bug must not stop announcing
            logger.exception("tracker %s: wants_peers failed", session.url)
            return False

    # ------------------------------------------------------------------ announcing

    def _begin_announce(self, session: _Session, now: float) -> None:
        wanted = min(self.settings.offers_per_announce, self.settings.max_pending_offers - len(self._pending))
        if wanted <= 0:
            self._finish_announce(session, [], now)
            return
        session.making = True
        self._effects.append(MakeOffers(session.url, wanted, session.connection))

    def offers_made(self, request: MakeOffers, offers: Iterable[object], *, now: float) -> None:
        """The offers made for ``request`` (an empty list if making them failed). Offers that can
        no longer be sent (the connection was lost, the client closed) expire at once."""
        session = self._sessions[request.url]
        current = session.open and session.making and session.connection == request.connection
        if not current or self.closing:
            for offer in offers:
                if isinstance(offer, Offer) and offer.offer_id not in self._pending:
                    self._report_expired(offer.offer_id)
            return
        session.making = False
        accepted: list[Offer] = []
        seen: set[bytes] = set()
        for offer in offers:
            if not isinstance(offer, Offer):
                logger.warning("make_offers returned %r, not an Offer: ignored", type(offer).__name__)
            elif offer.offer_id in self._pending or offer.offer_id in seen:
                logger.warning("make_offers returned a duplicate offer id: ignored")
            elif len(accepted) >= request.count:
                logger.warning(
                    "make_offers returned more than %d offers: the extra ones expire", request.count
                )
                self._report_expired(offer.offer_id)
            else:
                seen.add(offer.offer_id)
                accepted.append(offer)
        self._finish_announce(session, accepted, now)
        self._run_schedule(session, now)

    def _finish_announce(self, session: _Session, offers: list[Offer], now: float) -> None:
        extra: Mapping[str, Any] = {}
        if self._announce_extra is not None:
            try:
                extra = self._announce_extra()
            except Exception:  # the caller's bug must not stop announcing
                logger.exception("tracker %s: announce_extra failed", session.url)
        announce = Announce(
            info_hash=self.info_hash,
            peer_id=self.peer_id,
            event=None if session.joined else "started",
            numwant=len(offers),
            offers=tuple(OfferEntry(offer_id=offer.offer_id, sdp=offer.sdp) for offer in offers),
            extra=extra,
        )
        for offer in offers:  # registered before sending: an answer may come back at once
            self._pending[offer.offer_id] = _Pending(
                session=session, expires_at=now + self.settings.offer_timeout
            )
        self._counts["offers_sent"] += len(offers)
        session.last_offers = [offer.offer_id for offer in offers]
        session.last_announce_at = now
        session.next_at = now + session.period  # provisional, until the tracker answers
        session.announces += 1
        self._effects.append(SendMessage(session.url, encode(announce)))
        if self._wants_peers is not None:
            session.check_at = session.last_announce_at + self._early_delay(session)

    # ------------------------------------------------------------------ offers we made

    def _expire_offer(self, offer_id: bytes, reason: str) -> None:
        pending = self._pending.pop(offer_id, None)
        if pending is None:
            return
        logger.debug("tracker %s: offer %s expired (%s)", pending.session.url, offer_id.hex()[:8], reason)
        self._report_expired(offer_id)

    def _report_expired(self, offer_id: bytes) -> None:
        self._counts["offers_expired"] += 1
        self._effects.append(OfferExpired(offer_id))

    def _expire_offers_of(self, session: _Session, reason: str) -> None:
        for offer_id, pending in list(self._pending.items()):
            if pending.session is session:
                self._expire_offer(offer_id, reason)

    # ------------------------------------------------------------------ peer de-duplication

    def _engagement(self, peer_id: bytes, now: float) -> _Engagement | None:
        engagement = self._engaged.get(peer_id)
        if engagement is not None and engagement.until <= now:
            del self._engaged[peer_id]
            return None
        return engagement

    def _engage(self, peer_id: bytes, role: Literal["offerer", "answerer"], now: float) -> None:
        until = now + self.settings.dedup_window
        if len(self._engaged) >= _PRUNE_ENGAGED_AT:  # peers seen once are otherwise never purged
            self._engaged = {key: value for key, value in self._engaged.items() if value.until > now}
        engagement = self._engagement(peer_id, now)
        if engagement is None:
            self._engaged[peer_id] = _Engagement(roles={role}, until=until)
        else:
            engagement.roles.add(role)
            engagement.until = until

    def _disengage(self, peer_id: bytes, role: Literal["offerer", "answerer"]) -> None:
        engagement = self._engaged.get(peer_id)
        if engagement is not None:
            engagement.roles.discard(role)
            if not engagement.roles:
                del self._engaged[peer_id]

    # ------------------------------------------------------------------ messages received

    def message_received(self, url: str, frame: str | bytes, *, now: float) -> None:
        """One frame from the tracker at ``url``."""
        session = self._sessions[url]
        if not session.open:
            return
        try:
            message = decode_response(frame, max_size=self.settings.max_message_size)
        except TrackerMessageError as exc:
            self._ignore(url, exc.reason)
            return
        if isinstance(message, Failure):
            self._on_failure(session, message, now)
            return
        if isinstance(message, ScrapeResponse):
            return  # we never scrape; a response is harmless
        if message.info_hash != self.info_hash:
            self._ignore(url, "another swarm")
            return
        if message.warning is not None:
            logger.warning("tracker %s: warning: %s", url, message.warning[:200])
        if isinstance(message, RelayedOffer):
            self._on_remote_offer(session, message, now)
        elif isinstance(message, RelayedAnswer):
            self._on_remote_answer(session, message, now)
        else:
            self._on_announce_response(session, message, now)

    def _ignore(self, url: str, why: str) -> None:
        self._counts["ignored_messages"] += 1
        logger.debug("tracker %s: ignored a message (%s)", url, why)

    def _on_failure(self, session: _Session, failure: Failure, now: float) -> None:
        session.failures += 1
        session.last_error = f"failure reason: {failure.reason[:200]}"
        if not failure.about_swarm:
            logger.warning("tracker %s: %s; reconnecting", session.url, session.last_error)
            session.refused_reason = f"refused by the tracker: {failure.reason[:200]}"
            self._effects.append(Disconnect(session.url))
            self._end_connection(session, session.refused_reason, now)
            return
        if failure.names_other_value or failure.info_hash not in (None, self.info_hash):
            self._ignore(session.url, "failure for another swarm")
            return
        delay = backoff_delay(
            session.refusals,
            minimum=self.settings.backoff_min,
            maximum=self.settings.backoff_max,
            jitter=self.settings.backoff_jitter,
            rng=self._rng,
        )
        session.refusals += 1
        for offer_id in session.last_offers:  # a refused announce relayed none of its offers
            self._expire_offer(offer_id, "announce refused")
        session.last_offers = []
        logger.warning("tracker %s: %s; announcing again in %.1f s", session.url, session.last_error, delay)
        session.next_at = now + delay

    def _on_announce_response(self, session: _Session, response: AnnounceResponse, now: float) -> None:
        settings = self.settings
        session.responses += 1
        session.joined = True
        session.healthy = True
        session.refusals = 0
        interval, min_interval = response.interval, response.min_interval
        if interval is not None or min_interval is not None:
            period = interval if interval is not None else min_interval
            assert period is not None
            period = min(max(period, settings.min_announce_interval), settings.max_announce_interval)
            if min_interval is not None:
                period = max(period, min(min_interval, _MAX_PERIOD))
                session.min_interval = min(min_interval, _MAX_PERIOD)
            if period != session.period:
                session.period = period
                session.next_at = session.last_announce_at + period
        if response.complete is not None and response.incomplete is not None:
            session.complete, session.incomplete = response.complete, response.incomplete
            self._effects.append(SwarmUpdated(response.complete, response.incomplete))
        if response.extension is not None:
            self._effects.append(TrackerExtension(response.extension))

    def _on_remote_offer(self, session: _Session, offer: RelayedOffer, now: float) -> None:
        remote = offer.peer_id
        if remote == self.peer_id:
            self._ignore(session.url, "our own offer")
            return
        self._counts["offers_received"] += 1
        if self.closing:
            return
        if self._engagement(remote, now) is not None:
            self._counts["duplicates_suppressed"] += 1
            return
        if self._signalling >= self.settings.max_concurrent_signalling:
            self._counts["offers_declined"] += 1
            return
        self._engage(remote, "answerer", now)
        self._signalling += 1
        self._effects.append(AnswerOffer(session.url, remote, offer.offer_id, offer.sdp, now))

    def answer_ready(self, request: AnswerOffer, sdp: str | None, *, now: float) -> None:
        """The caller's answer to ``request`` (``None``: declined, or it failed)."""
        self._signalling = max(0, self._signalling - 1)
        if self.closing:
            return
        late = now - request.received_at > self.settings.offer_timeout
        if not isinstance(sdp, str) or late:
            if late:
                logger.info("tracker %s: answer ready too late; not sent", request.url)
            self._counts["offers_declined"] += 1
            self._disengage(request.peer_id, "answerer")
            return
        if not self._sessions[request.url].open:
            logger.info("tracker %s: connection lost before the answer could be sent", request.url)
            return
        answer = Answer(
            info_hash=self.info_hash,
            peer_id=self.peer_id,
            to_peer_id=request.peer_id,
            offer_id=request.offer_id,
            sdp=sdp,
        )
        self._counts["answers_sent"] += 1
        self._effects.append(SendMessage(request.url, encode(answer)))

    def signalling_finished(self) -> None:
        """A :class:`DeliverAnswer` was handled (or failed)."""
        self._signalling = max(0, self._signalling - 1)

    def _on_remote_answer(self, session: _Session, answer: RelayedAnswer, now: float) -> None:
        remote = answer.peer_id
        if remote == self.peer_id:
            self._ignore(session.url, "our own answer")
            return
        pending = self._pending.get(answer.offer_id)
        if pending is None or pending.session is not session:
            self._ignore(session.url, "answer to an unknown or expired offer")
            return
        engagement = self._engagement(remote, now)
        if engagement is not None:
            glare_we_keep = engagement.roles == {"answerer"} and self.peer_id < remote
            if not glare_we_keep:
                self._counts["duplicates_suppressed"] += 1
                self._expire_offer(answer.offer_id, "answered by a peer we are already signalling with")
                return
        del self._pending[answer.offer_id]
        self._engage(remote, "offerer", now)
        self._counts["offers_answered"] += 1
        self._signalling += 1
        self._effects.append(DeliverAnswer(remote, answer.offer_id, answer.sdp))
