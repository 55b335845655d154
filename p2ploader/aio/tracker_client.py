"""A WebTorrent WebSocket tracker client: announce to one swarm on several trackers, relay WebRTC
offers and answers through them. It knows nothing about WebRTC; SDPs are opaque strings produced
and consumed by the caller's callbacks.

Theory of operation
-------------------
One :class:`TrackerClient` is one swarm (``info_hash``) seen by one peer (``peer_id``) on one or more
tracker URLs, like the JavaScript ``bittorrent-tracker`` client that P2P Media Loader embeds. Each
URL gets its own session task holding one WebSocket:

* **Announce.** On every (re)connection the first announce carries ``event: "started"``; periodic
  announces carry no ``event`` (never ``update``, which wt-tracker rejects). Each announce asks the
  caller for ``offers_per_announce`` fresh offers (``make_offers(n)``, 5 like the browser client;
  fewer if ``max_pending_offers`` would be exceeded, and the caller may return fewer) and sends
  ``numwant`` equal to the number of offers it carries, because bittorrent-tracker ignores
  ``numwant`` and wt-tracker relays ``min(numwant, offers)``. ``uploaded``/``downloaded`` are 0 and
  ``left`` is omitted, like P2P Media Loader's browser peers. Every offer goes to one tracker only
  (an offer is one peer connection and can take one answer). The ids travel as 20-character latin-1
  strings (:func:`encode_id` / :func:`decode_id`).
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
* **Relayed offers** from other peers (``offer`` + ``offer_id`` + ``peer_id``) go to ``on_offer``; an
  answer SDP it returns goes back through the same tracker with ``to_peer_id`` and the same
  ``offer_id``; ``None`` declines. An answer produced later than ``offer_timeout`` after the offer
  arrived is not sent (the offerer has given up on it).
* **Relayed answers** are matched to our pending offers by ``offer_id`` and tracker, then go to
  ``on_answer``. Offers that stay unanswered for ``offer_timeout`` (50 s, the JS client's
  ``OFFER_TIMEOUT``), whose tracker connection was lost, or that were answered by a peer we are
  already signalling with are reported to ``on_offer_expired`` so that the caller closes those peer
  connections.
* **De-duplication by peer id.** Messages carrying our own ``peer_id`` and messages for another
  ``info_hash`` are dropped. After we answer a remote peer's offer or accept its answer, further
  offers and answers from that peer id (through any tracker) are suppressed for ``dedup_window``
  seconds, so one remote peer reached through several trackers is answered once. In *glare* (we
  answered its offer and it answered ours), the connection offered by the smaller peer id is kept
  on both sides: we accept its answer only if our id is smaller. The caller still owns
  connection-level de-duplication (P2P Media Loader: the first connection to open wins);
  :meth:`TrackerClient.forget_peer` lifts the suppression early, e.g. when a connection failed.
* **Failures.** ``{"failure reason": ...}`` without ``action`` (a request the tracker could not
  parse) is fatal for the socket: close, back off, reconnect. With ``action``/``info_hash`` (a
  refusal such as a full swarm) it is logged, the offers of the refused announce are reported
  expired, and the announce is retried after a back-off on the same socket. ``warning message``
  is logged. Garbage frames are counted and ignored.
* **Reconnect.** A refused connection, a closed socket or a fatal failure is followed by a delay of
  ``backoff_min * 2**n`` capped at ``backoff_max``, minus up to ``backoff_jitter`` of it at random
  (:func:`backoff_delay`, with the injectable ``rng``); ``n`` resets once a tracker accepts an
  announce.
* **Robustness.** Nothing raises out of the client's tasks: exceptions from the network, the
  tracker's data or the caller's callbacks are logged and counted, so the loader keeps playing over
  HTTP whatever the trackers do. :meth:`TrackerClient.aclose` stops announcing, sends
  ``event: "stopped"`` (no offers) to every connected tracker without waiting for a reply
  (wt-tracker sends none), closes the sockets, and reports the still pending offers as expired.

Every callback runs on the event loop of :meth:`TrackerClient.start`. ``on_offer`` and ``on_answer``
run in their own tasks (at most ``max_concurrent_signalling`` at once; further offers are declined).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import secrets
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, Final, Literal
from urllib.parse import urlsplit

import attrs
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from p2ploader.aio.tracker_reasons import describe_close, describe_connect_error, describe_connection_closed
from p2ploader.errors import UsageError
from p2ploader.status import TrackerConnection

__all__ = [
    "ID_LENGTH",
    "Offer",
    "TrackerClient",
    "TrackerClientStats",
    "TrackerStatus",
    "backoff_delay",
    "decode_id",
    "encode_id",
    "new_offer_id",
]

logger = logging.getLogger(__name__)

ID_LENGTH: Final = 20
_MAX_PERIOD: Final = 3600.0  # a tracker's `min interval` is respected up to this many seconds
_MIN_FORCED_GAP: Final = 1.0  # seconds between announces forced by announce_now()
_PRUNE_ENGAGED_AT: Final = 256  # remote peers remembered before expired entries are pruned


def encode_id(raw: bytes) -> str:
    """A 20-byte id as the 20-character latin-1 string WebTorrent trackers carry in JSON."""
    if len(raw) != ID_LENGTH:
        raise ValueError(f"ids are {ID_LENGTH} bytes, not {len(raw)}")
    return raw.decode("latin-1")


def decode_id(value: object) -> bytes | None:
    """The 20 raw bytes of a JSON id string, or ``None`` if it is not a 20-character latin-1 string."""
    if not isinstance(value, str) or len(value) != ID_LENGTH:
        return None
    try:
        return value.encode("latin-1")
    except UnicodeEncodeError:
        return None


def new_offer_id(rng: random.Random | None = None) -> bytes:
    """A fresh random 20-byte offer id (cryptographically random unless ``rng`` is given)."""
    return rng.randbytes(ID_LENGTH) if rng is not None else secrets.token_bytes(ID_LENGTH)


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
    """One complete (non-trickle) WebRTC offer for the tracker, made by ``make_offers``.

    ``offer_id`` is 20 random bytes chosen by the caller (:func:`new_offer_id`), unique among its
    pending offers; the answer to it, or its expiry, is reported with the same id.
    """

    offer_id: bytes = attrs.field(validator=_check_offer_id)
    sdp: str = attrs.field(validator=attrs.validators.instance_of(str))


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
    state: TrackerConnection = "idle"
    reconnects: int = 0
    """Connection attempts after the first."""


@attrs.frozen(kw_only=True)
class TrackerClientStats:
    """A snapshot of a :class:`TrackerClient`'s figures."""

    trackers: tuple[TrackerStatus, ...]
    offers_sent: int
    offers_answered: int
    """Answers to our offers handed to ``on_answer``."""
    offers_expired: int
    offers_received: int
    """Valid offers from other peers relayed to us."""
    answers_sent: int
    offers_declined: int
    """Remote offers not answered: ``on_offer`` returned ``None``, failed, was too slow or too busy."""
    duplicates_suppressed: int
    """Offers and answers dropped because we are already signalling with that peer id."""
    ignored_messages: int
    """Garbage frames, other swarms, our own id, answers to unknown offers."""
    pending_offers: int

    @property
    def connected_trackers(self) -> int:
        return sum(1 for tracker in self.trackers if tracker.connected)


@attrs.define
class _Pending:
    session: _Session
    timer: asyncio.TimerHandle


@attrs.define
class _Engagement:
    roles: set[Literal["offerer", "answerer"]]
    until: float


def _positive(name: str, value: float) -> None:
    if not value > 0:
        raise UsageError(f"{name} must be positive, not {value!r}")


class TrackerClient:
    """Announces one swarm to WebTorrent trackers and relays offers and answers (see the module doc).

    ``start()`` returns at once (connections are made in the background); ``aclose()`` sends
    ``stopped`` and closes. It is also an async context manager. Times are in seconds.

    Callbacks (``bytes`` ids are the raw 20 bytes):

    * ``make_offers(n)``: create up to ``n`` fresh peer connections with complete offers and return
      them as :class:`Offer` (fewer, even none, is fine). Each offer later gets exactly one outcome:
      ``on_answer`` or ``on_offer_expired``.
    * ``on_offer(remote_peer_id, offer_id, sdp)``: a remote peer's offer; return the complete answer
      SDP, or ``None`` to decline.
    * ``on_answer(remote_peer_id, offer_id, sdp)``: the answer to our offer ``offer_id``.
    * ``on_offer_expired(offer_id)``: that offer will never be answered; close its connection.
    * ``on_swarm_update(complete, incomplete)``: the counts of each tracker's announce responses, as
      they arrive (P2P Media Loader 0.6 reads ``incomplete``).
    * ``wants_peers(swarm_size)``: after each announce response, whether to announce again sooner
      than the interval (see "Looking for peers sooner" in the module doc).
    * ``on_connected(url)``: the WebSocket to ``url`` opened.
    * ``on_failed(url, reason, retry_in)``: a connection attempt to ``url`` failed, or its
      connection ended (not by :meth:`aclose`); ``reason`` is in words, the next attempt comes in
      ``retry_in`` seconds.

    Options: ``offers_per_announce`` (0-10, browsers send 5; ``numwant`` on the wire is the number
    of offers actually sent), ``max_pending_offers`` (unanswered offers across trackers),
    ``offer_timeout``, ``default_interval`` (before a tracker gives one),
    ``min_announce_interval``/``max_announce_interval`` (clamp of the tracker's interval),
    ``backoff_min``/``backoff_max``/``backoff_jitter`` (reconnects and refused announces),
    ``connect_timeout``, ``close_timeout`` (each step of :meth:`aclose`: sending ``stopped``, the
    closing handshake, waiting for ``make_offers`` and ``on_offer_expired``), ``dedup_window``,
    ``max_concurrent_signalling`` (``on_offer``/``on_answer`` tasks), ``max_message_size`` (bytes
    per incoming frame) and ``rng`` (back-off jitter).
    """

    def __init__(
        self,
        announce_urls: Sequence[str],
        *,
        info_hash: bytes,
        peer_id: bytes,
        make_offers: Callable[[int], Awaitable[list[Offer]]],
        on_offer: Callable[[bytes, bytes, str], Awaitable[str | None]],
        on_answer: Callable[[bytes, bytes, str], Awaitable[None]],
        on_offer_expired: Callable[[bytes], Awaitable[None]] | None = None,
        on_swarm_update: Callable[[int, int], None] | None = None,
        announce_extra: Callable[[], Mapping[str, Any]] | None = None,
        on_tracker_extra: Callable[[Mapping[str, Any]], None] | None = None,
        wants_peers: Callable[[int], bool] | None = None,
        on_connected: Callable[[str], None] | None = None,
        on_failed: Callable[[str, str, float], None] | None = None,
        offers_per_announce: int = 5,
        max_pending_offers: int = 50,
        offer_timeout: float = 50.0,
        default_interval: float = 30.0,
        min_announce_interval: float = 10.0,
        max_announce_interval: float = 300.0,
        backoff_min: float = 5.0,
        backoff_max: float = 300.0,
        backoff_jitter: float = 0.5,
        connect_timeout: float = 10.0,
        close_timeout: float = 2.0,
        dedup_window: float = 60.0,
        max_concurrent_signalling: int = 20,
        max_message_size: int = 256 * 1024,
        rng: random.Random | None = None,
    ) -> None:
        urls = list(dict.fromkeys(announce_urls))
        if isinstance(announce_urls, str) or not urls:
            raise UsageError("announce_urls must be a non-empty sequence of ws:// or wss:// URLs")
        for url in urls:
            if urlsplit(url).scheme not in ("ws", "wss"):
                raise UsageError(f"not a WebSocket tracker URL: {url!r}")
        if not isinstance(info_hash, bytes) or len(info_hash) != ID_LENGTH:
            raise UsageError(f"info_hash must be {ID_LENGTH} bytes")
        if not isinstance(peer_id, bytes) or len(peer_id) != ID_LENGTH:
            raise UsageError(f"peer_id must be {ID_LENGTH} bytes")
        if not 0 <= offers_per_announce <= 10:
            raise UsageError("offers_per_announce must be between 0 and 10 (browsers send 5)")
        if max_pending_offers < 0 or max_concurrent_signalling < 1 or max_message_size < 1024:
            raise UsageError("max_pending_offers, max_concurrent_signalling or max_message_size out of range")
        for name, value in (
            ("offer_timeout", offer_timeout),
            ("default_interval", default_interval),
            ("min_announce_interval", min_announce_interval),
            ("max_announce_interval", max_announce_interval),
            ("backoff_min", backoff_min),
            ("backoff_max", backoff_max),
            ("connect_timeout", connect_timeout),
            ("close_timeout", close_timeout),
            ("dedup_window", dedup_window),
        ):
            _positive(name, value)
        if min_announce_interval > max_announce_interval or backoff_min > backoff_max:
            raise UsageError("minimum above maximum in the announce interval or back-off bounds")
        if not 0 <= backoff_jitter < 1:
            raise UsageError("backoff_jitter must be in [0, 1)")

        self.info_hash = info_hash
        self.peer_id = peer_id
        self._info_hash_str = encode_id(info_hash)
        self._peer_id_str = encode_id(peer_id)
        self._make_offers = make_offers
        self._on_offer = on_offer
        self._on_answer = on_answer
        self._on_offer_expired = on_offer_expired
        self._on_swarm_update = on_swarm_update
        # Extension fields (host/client topology): merged into every announce but "stopped"; plain
        # trackers ignore unknown keys. The tracker's ``p2ploader`` object goes to on_tracker_extra.
        self._announce_extra = announce_extra
        self._on_tracker_extra = on_tracker_extra
        self._wants_peers = wants_peers
        self._on_connected = on_connected
        self._on_failed = on_failed
        self.offers_per_announce = offers_per_announce
        self.max_pending_offers = max_pending_offers
        self.offer_timeout = offer_timeout
        self.default_interval = default_interval
        self.min_announce_interval = min_announce_interval
        self.max_announce_interval = max_announce_interval
        self.backoff_min = backoff_min
        self.backoff_max = backoff_max
        self.backoff_jitter = backoff_jitter
        self.connect_timeout = connect_timeout
        self.close_timeout = close_timeout
        self.dedup_window = dedup_window
        self.max_concurrent_signalling = max_concurrent_signalling
        self.max_message_size = max_message_size
        self._rng = rng or random.Random()

        self._sessions = [_Session(self, url) for url in urls]
        self._pending: dict[bytes, _Pending] = {}
        self._engaged: dict[bytes, _Engagement] = {}
        self._signalling: set[asyncio.Task[None]] = set()
        self._callbacks: set[asyncio.Task[None]] = set()
        self._making: set[asyncio.Task[list[Offer]]] = set()  # make_offers calls in flight
        self._loop: asyncio.AbstractEventLoop | None = None
        self._started = False
        self._closing = False
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

    # ------------------------------------------------------------------ public API

    @property
    def announce_urls(self) -> tuple[str, ...]:
        return tuple(session.url for session in self._sessions)

    async def start(self) -> None:
        """Start one background session per tracker URL; returns without waiting for them."""
        if self._started or self._closing:
            raise UsageError("a TrackerClient can be started once")
        self._started = True
        self._loop = asyncio.get_running_loop()
        for session in self._sessions:
            session.task = self._loop.create_task(session.run(), name=f"tracker {session.url}")

    async def aclose(self) -> None:
        """Send ``stopped`` to every connected tracker, close the sockets, expire pending offers.

        Bounded in time (each step waits at most ``close_timeout``) and never raises. Idempotent.
        """
        if self._closing:
            return
        self._closing = True
        await asyncio.gather(*(session.stop() for session in self._sessions), return_exceptions=True)
        for task in list(self._signalling):
            task.cancel()
        await asyncio.gather(*self._signalling, return_exceptions=True)
        for offer_id in list(self._pending):
            self._expire_offer(offer_id, "client closed")
        if self._making:  # their offers are reported expired as soon as they are made
            await asyncio.wait(set(self._making), timeout=self.close_timeout)
        if self._callbacks:
            await asyncio.wait(set(self._callbacks), timeout=self.close_timeout)
        for task in list(self._callbacks):
            task.cancel()
        await asyncio.gather(*self._callbacks, return_exceptions=True)

    async def __aenter__(self) -> TrackerClient:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    def announce_now(self) -> None:
        """Announce (with fresh offers) as soon as possible on every connected tracker, but not
        sooner than ``_MIN_FORCED_GAP`` after the previous announce: e.g. a client whose host left
        looks for another one at once instead of a whole interval later."""
        if self._loop is None or self._closing:
            return
        now = self._loop.time()
        for session in self._sessions:
            if session.ws is not None:
                session._reschedule(max(now, session._last_announce_at + _MIN_FORCED_GAP))

    def forget_peer(self, peer_id: bytes) -> None:
        """Stop suppressing offers and answers from ``peer_id`` (e.g. its connection failed)."""
        self._engaged.pop(peer_id, None)

    def statistics(self) -> TrackerClientStats:
        return TrackerClientStats(
            trackers=tuple(session.status() for session in self._sessions),
            pending_offers=len(self._pending),
            **self._counts,
        )

    # ------------------------------------------------------------------ offers we make

    def _now(self) -> float:
        assert self._loop is not None
        return self._loop.time()

    async def _create_offers(self, session: _Session) -> list[Offer]:
        wanted = min(self.offers_per_announce, self.max_pending_offers - len(self._pending))
        if wanted <= 0:
            return []
        assert self._loop is not None
        # The caller's offers are peer connections: shielded from our cancellation, so that every
        # offer it makes is answered or reported expired, never silently dropped.
        making = self._loop.create_task(self._call_make_offers(wanted))
        self._making.add(making)
        making.add_done_callback(self._making.discard)
        try:
            made = await asyncio.shield(making)
        except asyncio.CancelledError:
            making.add_done_callback(self._expire_orphans)
            raise
        except Exception:
            logger.exception("tracker %s: make_offers failed; announcing without offers", session.url)
            return []
        offers: list[Offer] = []
        seen: set[bytes] = set()
        for offer in made:
            if not isinstance(offer, Offer):
                logger.warning("make_offers returned %r, not an Offer: ignored", type(offer).__name__)
            elif offer.offer_id in self._pending or offer.offer_id in seen:
                logger.warning("make_offers returned a duplicate offer id: ignored")
            elif len(offers) >= wanted:
                logger.warning("make_offers returned more than %d offers: the extra ones expire", wanted)
                self._report_expired(offer.offer_id)
            else:
                seen.add(offer.offer_id)
                offers.append(offer)
        return offers

    async def _call_make_offers(self, count: int) -> list[Offer]:
        return list(await self._make_offers(count))

    def _expire_orphans(self, making: asyncio.Task[list[Offer]]) -> None:
        if making.cancelled() or making.exception() is not None:
            return
        for offer in making.result():
            if isinstance(offer, Offer) and offer.offer_id not in self._pending:
                self._report_expired(offer.offer_id)

    def _register_offers(self, session: _Session, offers: list[Offer]) -> None:
        assert self._loop is not None
        for offer in offers:
            timer = self._loop.call_later(
                self.offer_timeout, self._expire_offer, offer.offer_id, "unanswered"
            )
            self._pending[offer.offer_id] = _Pending(session=session, timer=timer)
        self._counts["offers_sent"] += len(offers)

    def _expire_offer(self, offer_id: bytes, reason: str) -> None:
        pending = self._pending.pop(offer_id, None)
        if pending is None:
            return
        pending.timer.cancel()
        logger.debug("tracker %s: offer %s expired (%s)", pending.session.url, offer_id.hex()[:8], reason)
        self._report_expired(offer_id)

    def _report_expired(self, offer_id: bytes) -> None:
        self._counts["offers_expired"] += 1
        if self._on_offer_expired is not None:
            self._spawn(self._callbacks, self._on_offer_expired(offer_id), "on_offer_expired")

    def _expire_offers_of(self, session: _Session, reason: str) -> None:
        for offer_id, pending in list(self._pending.items()):
            if pending.session is session:
                self._expire_offer(offer_id, reason)

    # ------------------------------------------------------------------ peer de-duplication

    def _engagement(self, peer_id: bytes) -> _Engagement | None:
        engagement = self._engaged.get(peer_id)
        if engagement is not None and engagement.until <= self._now():
            del self._engaged[peer_id]
            return None
        return engagement

    def _engage(self, peer_id: bytes, role: Literal["offerer", "answerer"]) -> None:
        now = self._now()
        until = now + self.dedup_window
        if len(self._engaged) >= _PRUNE_ENGAGED_AT:  # peers seen once are otherwise never purged
            self._engaged = {key: value for key, value in self._engaged.items() if value.until > now}
        engagement = self._engagement(peer_id)
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

    # ------------------------------------------------------------------ messages relayed to us

    def _ignore(self, url: str, why: str) -> None:
        self._counts["ignored_messages"] += 1
        logger.debug("tracker %s: ignored a message (%s)", url, why)

    def _on_remote_offer(self, session: _Session, data: dict[str, Any]) -> None:
        remote = decode_id(data.get("peer_id"))
        offer_id = decode_id(data.get("offer_id"))
        offer = data.get("offer")
        sdp = offer.get("sdp") if isinstance(offer, dict) else None
        if remote is None or offer_id is None or not isinstance(sdp, str):
            self._ignore(session.url, "malformed offer")
            return
        if remote == self.peer_id:
            self._ignore(session.url, "our own offer")
            return
        self._counts["offers_received"] += 1
        if self._closing:
            return
        if self._engagement(remote) is not None:
            self._counts["duplicates_suppressed"] += 1
            return
        if len(self._signalling) >= self.max_concurrent_signalling:
            self._counts["offers_declined"] += 1
            return
        self._engage(remote, "answerer")
        self._spawn(self._signalling, self._answer_offer(session, remote, offer_id, sdp), "on_offer")

    async def _answer_offer(self, session: _Session, remote: bytes, offer_id: bytes, sdp: str) -> None:
        received = self._now()
        answer: str | None = None
        try:
            answer = await self._on_offer(remote, offer_id, sdp)
        except asyncio.CancelledError:
            raise
        except Exception:
            logger.exception("tracker %s: on_offer failed", session.url)
        late = self._now() - received > self.offer_timeout
        if not isinstance(answer, str) or late:
            if late:
                logger.info("tracker %s: answer ready too late; not sent", session.url)
            self._counts["offers_declined"] += 1
            self._disengage(remote, "answerer")
            return
        message = {
            "action": "announce",
            "info_hash": self._info_hash_str,
            "peer_id": self._peer_id_str,
            "to_peer_id": encode_id(remote),
            "answer": {"type": "answer", "sdp": answer},
            "offer_id": encode_id(offer_id),
        }
        if await session.send(message):
            self._counts["answers_sent"] += 1
        else:
            logger.info("tracker %s: connection lost before the answer could be sent", session.url)

    def _on_remote_answer(self, session: _Session, data: dict[str, Any]) -> None:
        remote = decode_id(data.get("peer_id"))
        offer_id = decode_id(data.get("offer_id"))
        answer = data.get("answer")
        sdp = answer.get("sdp") if isinstance(answer, dict) else None
        if remote is None or offer_id is None or not isinstance(sdp, str):
            self._ignore(session.url, "malformed answer")
            return
        if remote == self.peer_id:
            self._ignore(session.url, "our own answer")
            return
        pending = self._pending.get(offer_id)
        if pending is None or pending.session is not session:
            self._ignore(session.url, "answer to an unknown or expired offer")
            return
        engagement = self._engagement(remote)
        if engagement is not None:
            glare_we_keep = engagement.roles == {"answerer"} and self.peer_id < remote
            if not glare_we_keep:
                self._counts["duplicates_suppressed"] += 1
                self._expire_offer(offer_id, "answered by a peer we are already signalling with")
                return
        del self._pending[offer_id]
        pending.timer.cancel()
        self._engage(remote, "offerer")
        self._counts["offers_answered"] += 1
        self._spawn(self._signalling, self._on_answer(remote, offer_id, sdp), "on_answer")

    def _swarm_update(self, complete: int, incomplete: int) -> None:
        if self._on_swarm_update is None:
            return
        try:
            self._on_swarm_update(complete, incomplete)
        except Exception:
            logger.exception("on_swarm_update failed")

    # ------------------------------------------------------------------ tasks

    def _spawn(self, bucket: set[asyncio.Task[None]], work: Awaitable[Any], what: str) -> None:
        async def guarded() -> None:
            try:
                await work
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.exception("tracker client: %s failed", what)

        assert self._loop is not None
        task = self._loop.create_task(guarded())
        bucket.add(task)
        task.add_done_callback(bucket.discard)


class _Session:
    """One tracker URL: connect, announce, read, back off, reconnect (never raises)."""

    def __init__(self, client: TrackerClient, url: str) -> None:
        self.client = client
        self.url = url
        self.task: asyncio.Task[None] | None = None
        self.ws: ClientConnection | None = None
        self.period = client.default_interval
        self._announcer: asyncio.Task[None] | None = None
        self._wakeup = asyncio.Event()
        self._next_at = 0.0
        self._last_announce_at = 0.0
        self._joined = False  # the tracker accepted an announce on the current connection
        self._healthy = False  # ... at least once since the last reconnect back-off
        self._refusals = 0  # consecutive `failure reason` refusals on this connection
        self._early = 0  # consecutive early announces (looking for peers), for the back-off
        self._check_at: float | None = None  # when to ask wants_peers next (loop time)
        self._min_interval = 0.0  # the tracker's `min interval`, seconds
        self._last_offers: list[bytes] = []  # offer ids of the latest announce
        self._stopping = False
        self.connects = 0
        self.connect_failures = 0
        self.announces = 0
        self.responses = 0
        self.failures = 0
        self.complete: int | None = None
        self.incomplete: int | None = None
        self.last_error: str | None = None
        self.state: TrackerConnection = "idle"
        self.reconnects = 0
        self._end_reason: str | None = None  # why the current connection ended, set by _serve
        self._refused = False  # ... and whether the tracker refused us (a fatal failure reason)

    def status(self) -> TrackerStatus:
        return TrackerStatus(
            url=self.url,
            connected=self.ws is not None,
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

    def _report(self, callback: Callable[..., None] | None, *args: object) -> None:
        if callback is None:
            return
        try:
            callback(self.url, *args)
        except Exception:  # the caller's bug must not end the session
            logger.exception("tracker %s: status callback failed", self.url)

    # ------------------------------------------------------------------ lifecycle

    async def run(self) -> None:
        client = self.client
        attempt = 0
        first = True
        while not self._stopping:
            if first:
                self.state = "connecting"
            else:
                self.reconnects += 1
            first = False
            try:
                ws = await connect(
                    self.url,
                    open_timeout=client.connect_timeout,
                    close_timeout=client.close_timeout,
                    max_size=client.max_message_size,
                )
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.connect_failures += 1
                self.state = "failed"
                self.last_error = describe_connect_error(exc, timeout=client.connect_timeout)
                logger.info("tracker %s: cannot connect: %s (%r)", self.url, self.last_error, exc)
            else:
                self._healthy = False
                self._end_reason = None
                self._refused = False
                self.state = "connected"
                self._report(client._on_connected)
                try:
                    await self._serve(ws)
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    self._end_reason = f"session failed: {type(exc).__name__}: {exc}"
                    logger.exception("tracker %s: session failed", self.url)
                if self._stopping:
                    self.state = "closed"
                    break
                self.state = "failed" if self._refused else "closed"
                self.last_error = self._end_reason or _describe_end(ws)
                if self._healthy:
                    attempt = 0
            if self._stopping:
                break
            delay = backoff_delay(
                attempt,
                minimum=client.backoff_min,
                maximum=client.backoff_max,
                jitter=client.backoff_jitter,
                rng=client._rng,
            )
            attempt += 1
            logger.info("tracker %s: reconnecting in %.1f s", self.url, delay)
            self._report(client._on_failed, self.last_error or "unknown", delay)
            await asyncio.sleep(delay)

    async def _serve(self, ws: ClientConnection) -> None:
        loop = asyncio.get_running_loop()
        self.ws = ws
        self.connects += 1
        self._joined = False
        self._refusals = 0
        self._early = 0
        self._check_at = None
        self.period = self.client.default_interval
        self._next_at = loop.time()
        announcer = self._announcer = loop.create_task(self._announce_loop(), name=f"announce {self.url}")
        try:
            async for frame in ws:
                try:
                    keep_open = self._on_frame(frame)
                except Exception:  # a bug in here must not end the session
                    logger.exception("tracker %s: error while handling a message", self.url)
                    keep_open = True
                if not keep_open:
                    break
        except ConnectionClosed as exc:
            self._end_reason = describe_connection_closed(exc)
            logger.info("tracker %s: connection closed: %s", self.url, exc)
        finally:
            self.ws = None
            announcer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await announcer
            self._announcer = None
            self.client._expire_offers_of(self, "tracker connection lost")
            with contextlib.suppress(Exception):
                await ws.close()

    async def stop(self) -> None:
        """Stop announcing, send ``stopped`` (best effort, no reply awaited), close the socket."""
        self._stopping = True
        if self._announcer is not None:
            self._announcer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._announcer
        ws = self.ws
        if ws is not None and self._joined:
            stopped = {
                "action": "announce",
                "event": "stopped",
                "info_hash": self.client._info_hash_str,
                "peer_id": self.client._peer_id_str,
                "numwant": 0,
                "uploaded": 0,
                "downloaded": 0,
            }
            with contextlib.suppress(Exception):
                await asyncio.wait_for(ws.send(_dumps(stopped)), self.client.close_timeout)
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task

    async def send(self, message: dict[str, Any]) -> bool:
        ws = self.ws
        if ws is None:
            return False
        try:
            await ws.send(_dumps(message))
        except (ConnectionClosed, OSError) as exc:
            logger.debug("tracker %s: send failed: %s", self.url, exc)
            return False
        return True

    # ------------------------------------------------------------------ announcing

    async def _announce_loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            now = loop.time()
            wake = self._next_at
            if self._check_at is not None and self._joined and not self._refusals:
                wake = min(wake, self._check_at)
            if wake > now:
                self._wakeup.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wakeup.wait(), wake - now)
                continue
            if now < self._next_at and not self._wants_peers_now():
                # Not looking for peers: poll again after the shortest gap; the back-off restarts.
                self._early = 0
                self._check_at = now + self._early_delay()
                continue
            if now < self._next_at:
                self._early += 1
            try:
                await self._announce()
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.exception("tracker %s: announce failed", self.url)
                self._next_at = loop.time() + self.period
            if self.client._wants_peers is not None:
                self._check_at = self._last_announce_at + self._early_delay()

    def _early_delay(self) -> float:
        """Seconds after an announce before the next one while peers are wanted: the minimum
        interval, doubling with each early announce, at most the interval, never below the tracker's
        ``min interval``."""
        delay = self.client.min_announce_interval * 2.0 ** min(self._early, 30)
        return max(min(delay, self.period), self._min_interval)

    def _wants_peers_now(self) -> bool:
        client = self.client
        if client._wants_peers is None:
            return False
        known = self.complete is not None and self.incomplete is not None
        size = (self.complete or 0) + (self.incomplete or 0) if known else 0
        try:
            return bool(client._wants_peers(size))
        except Exception:  # the caller's bug must not stop announcing
            logger.exception("tracker %s: wants_peers failed", self.url)
            return False

    async def _announce(self) -> None:
        client = self.client
        loop = asyncio.get_running_loop()
        offers = await client._create_offers(self)
        message: dict[str, Any] = {
            "action": "announce",
            "info_hash": client._info_hash_str,
            "peer_id": client._peer_id_str,
            "numwant": len(offers),
            "uploaded": 0,
            "downloaded": 0,
        }
        if not self._joined:
            message["event"] = "started"
        if client._announce_extra is not None:
            try:
                extra = client._announce_extra()
            except Exception:  # the caller's bug must not stop announcing
                logger.exception("tracker %s: announce_extra failed", self.url)
            else:
                message.update((k, v) for k, v in extra.items() if k not in message)
        message["offers"] = [
            {"offer": {"type": "offer", "sdp": offer.sdp}, "offer_id": encode_id(offer.offer_id)}
            for offer in offers
        ]
        client._register_offers(self, offers)  # before sending: an answer may come back at once
        self._last_offers = [offer.offer_id for offer in offers]
        now = loop.time()
        self._last_announce_at = now
        self._next_at = now + self.period  # provisional, until the tracker answers
        if await self.send(message):
            self.announces += 1
        else:
            for offer in offers:
                client._expire_offer(offer.offer_id, "announce not sent")

    def _reschedule(self, at: float) -> None:
        self._next_at = at
        self._wakeup.set()

    # ------------------------------------------------------------------ receiving

    def _on_frame(self, frame: str | bytes) -> bool:
        """Handle one frame; ``False`` closes the connection (a fatal tracker failure)."""
        client = self.client
        try:
            data = json.loads(frame)
        except (ValueError, RecursionError):
            client._ignore(self.url, "not JSON")
            return True
        if not isinstance(data, dict):
            client._ignore(self.url, "not a JSON object")
            return True
        action = data.get("action")
        failure = data.get("failure reason")
        if failure is not None:
            return self._on_failure(action, data, failure)
        if action == "scrape":
            return True  # we never scrape; a response is harmless
        if action != "announce":
            client._ignore(self.url, "unknown action")
            return True
        if data.get("info_hash") != client._info_hash_str:
            client._ignore(self.url, "another swarm")
            return True
        warning = data.get("warning message")
        if warning is not None:
            logger.warning("tracker %s: warning: %s", self.url, str(warning)[:200])
        if data.get("offer") is not None:
            client._on_remote_offer(self, data)
        elif data.get("answer") is not None:
            client._on_remote_answer(self, data)
        else:
            self._on_announce_response(data)
        return True

    def _on_failure(self, action: object, data: dict[str, Any], failure: object) -> bool:
        self.failures += 1
        self.last_error = f"failure reason: {str(failure)[:200]}"
        if action is None:
            logger.warning("tracker %s: %s; reconnecting", self.url, self.last_error)
            self._refused = True
            self._end_reason = f"refused by the tracker: {str(failure)[:200]}"
            return False
        if data.get("info_hash") not in (None, self.client._info_hash_str):
            self.client._ignore(self.url, "failure for another swarm")
            return True
        delay = backoff_delay(
            self._refusals,
            minimum=self.client.backoff_min,
            maximum=self.client.backoff_max,
            jitter=self.client.backoff_jitter,
            rng=self.client._rng,
        )
        self._refusals += 1
        for offer_id in self._last_offers:  # a refused announce relayed none of its offers
            self.client._expire_offer(offer_id, "announce refused")
        self._last_offers = []
        logger.warning("tracker %s: %s; announcing again in %.1f s", self.url, self.last_error, delay)
        self._reschedule(asyncio.get_running_loop().time() + delay)
        return True

    def _on_announce_response(self, data: dict[str, Any]) -> None:
        client = self.client
        self.responses += 1
        self._joined = True
        self._healthy = True
        self._refusals = 0
        interval = _seconds(data.get("interval"))
        min_interval = _seconds(data.get("min interval"))
        if interval is not None or min_interval is not None:
            period = interval if interval is not None else min_interval
            assert period is not None
            period = min(max(period, client.min_announce_interval), client.max_announce_interval)
            if min_interval is not None:
                period = max(period, min(min_interval, _MAX_PERIOD))
                self._min_interval = min(min_interval, _MAX_PERIOD)
            if period != self.period:
                self.period = period
                self._reschedule(self._last_announce_at + period)
        complete = data.get("complete")
        incomplete = data.get("incomplete")
        if _count(complete) and _count(incomplete):
            assert isinstance(complete, int) and isinstance(incomplete, int)
            self.complete, self.incomplete = complete, incomplete
            client._swarm_update(complete, incomplete)
        extra = data.get("p2ploader")
        if isinstance(extra, dict) and client._on_tracker_extra is not None:
            try:
                client._on_tracker_extra(extra)
            except Exception:
                logger.exception("tracker %s: on_tracker_extra failed", self.url)


def _describe_end(ws: ClientConnection) -> str:
    """Why a connection whose reading loop ended without an exception ended."""
    received = ws.protocol.close_rcvd
    if received is None:
        return describe_close(None, "", received=False)
    return describe_close(received.code, received.reason, received=True)


def _seconds(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        return None
    return float(value)


def _count(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _dumps(message: dict[str, Any]) -> str:
    # Like JSON.stringify: ids' bytes 0x80-0xFF as plain characters, control characters escaped.
    return json.dumps(message, ensure_ascii=False, separators=(",", ":"))
