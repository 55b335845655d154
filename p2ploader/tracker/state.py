"""The embedded tracker's state and decisions, sans-IO: frames and the time in, messages out.

Theory of operation
-------------------
WebTorrent and P2P Media Loader peers find each other through a *tracker*: a WebSocket server that
keeps, per swarm (``info_hash``), the peers currently announcing, and relays WebRTC offers and answers
between them. Peers never learn each other's addresses from the tracker; they only exchange complete
(non-trickle) SDPs through it. This module implements that server so tests, demos and small
deployments do not need Node.js. The wire format follows ``docs/trackers.md`` and the upstream
servers (npm ``bittorrent-tracker`` 11 and ``Novage/wt-tracker``); where the two differ, the server
accepts what either's clients send and answers in the shape both kinds of client understand:

* **Frames.** One JSON object per text frame (binary frames holding UTF-8 JSON are accepted too).
  ``info_hash``, ``peer_id``, ``to_peer_id`` and ``offer_id`` are 20-byte binary ids carried as
  20-character latin-1 strings; internally they stay in that string form. Outgoing JSON is written
  like ``JSON.stringify`` (``ensure_ascii=False``, compact separators).
* **Announce** (``{"action": "announce", "info_hash", "peer_id", "event"?, "numwant"?, "offers"?,
  "left"?}``). ``event`` may be absent, ``started``, ``stopped``, ``completed``, ``update``,
  ``paused`` or ``empty`` (bittorrent-tracker's set); anything else is answered with
  ``failure reason: invalid event``. Any non-``stopped`` announce joins (or refreshes) the peer in the
  swarm; ``left == 0`` or ``event: completed`` makes it a seed (``complete``), otherwise it counts as
  ``incomplete``. The announcer gets ``{"action": "announce", "interval", "info_hash", "complete",
  "incomplete"}`` (sent for ``stopped`` too, like bittorrent-tracker; wt-tracker clients do not wait
  for it). Then each valid offer (at most ``max_offers_per_announce``, and at most ``numwant`` when
  ``numwant`` is an integer) goes to a *different* peer drawn at random from the rest of the swarm:
  ``{"action": "announce", "offer": {"type": "offer", "sdp"}, "offer_id", "peer_id": <offerer>,
  "info_hash"}``. The offer object is rebuilt from its ``sdp`` (as wt-tracker does), so nothing but
  the SDP is relayed. A peer never receives its own offers.
* **Answer** (an announce carrying ``answer``, ``to_peer_id`` and ``offer_id``). It is relayed to
  ``to_peer_id`` as ``{"action": "announce", "answer": {"type": "answer", "sdp"}, "offer_id",
  "peer_id": <answerer>, "info_hash"}``. The answerer must be a member of the swarm on this
  connection; an answer to an unknown or departed peer is dropped silently (bittorrent-tracker only
  logs it; wt-tracker would close the socket). No announce response is sent for answers.
* **Peer ids belong to connections.** Once a connection announced a peer id in a swarm, another
  connection announcing that id there is refused (``peer_id is in use by another connection``) while
  the first one lives; ``stopped`` and answers act only for the connection's own peer. So nobody can
  take over another peer's id and remove it from its swarm. A connection holds at most
  ``max_peer_ids_per_connection`` distinct ids at once; announcing a new id in a swarm replaces its
  old one there, and ids it has not used lately cost a token (``peer_ids_per_interval``).
* **Stopped** removes the peer from the swarm (only if it is this connection's peer). Closing the
  WebSocket removes the connection's peers from every swarm. Peers that stop announcing are expired
  after ``peer_timeout`` (default twice the interval, like wt-tracker), swept every half timeout.
* **Scrape** (``{"action": "scrape", "info_hash"}``, a string or a list) answers ``{"action":
  "scrape", "files": {<info_hash>: {"complete", "incomplete", "downloaded"}}, "flags":
  {"min_request_interval"}}``; ``downloaded`` equals ``complete`` (bittorrent-tracker's lower bound).
  Unlike bittorrent-tracker, a scrape without ``info_hash`` is refused: listing every swarm would
  tell anyone which streams others watch.
* **Errors.** A malformed request (not JSON, not an object, unknown ``action``, bad ids) is answered
  ``{"failure reason": ...}`` without ``action``, exactly like bittorrent-tracker; JS clients then
  reconnect. A refusal of an announce (swarm full, too many swarms, rate limit, peer id taken) or a
  malformed field of one (``event``, ``numwant``, ``offers``) carries ``"action": "announce"`` and
  the ``info_hash``, so clients log it and retry later. After ``max_protocol_errors`` malformed
  requests the connection is closed (code 1008). Refusals are logged as one short line per 10 s at
  most, with the count of the others; never with a traceback.
* **Bounds.** Frames over ``max_message_size`` (64 KiB by default, wt-tracker's limit) make
  ``websockets`` close the connection with 1009. ``max_connections`` (HTTP 503 beyond it),
  ``max_swarms``, ``max_peers_per_swarm`` (1000, bittorrent-tracker's LRU size) and
  ``max_swarms_per_connection`` bound the state. Every connection has a bounded outbox
  (``max_outbox_bytes``, ``send_queue_size`` messages) drained by its own writer task: a slow reader
  never blocks the relay for others, and a connection whose outbox overflows is dropped at once
  (its TCP connection aborted, its queue freed, its peers removed), so memory does not grow with
  what non-reading sockets are sent.
* **Rate limits.** Token buckets, per connection and per source address (an IPv6 /64 counts as
  one), bound announces (``announces_per_interval``, ``address_announces_per_interval``) and the
  creation of swarms (``swarms_created_per_interval``, ``address_swarms_created_per_interval``);
  answers are bounded per connection (``answers_per_interval``). Each allows a burst of that many
  and refills that many per ``interval``: an honest client announces each swarm once per interval.
  ``stopped`` is free. A request over a limit is refused with ``failure reason: ... rate limit
  exceeded, retry in N s``. Per-address state outlives the address's connections until its buckets
  are full again, so reconnecting does not reset it.
* **Sans-IO.** :class:`TrackerState` never touches a socket, a task or a clock:
  :meth:`TrackerState.handle` takes one frame of one :class:`TrackerConnection`, the time ``now``
  (seconds, monotonic) and the ``rng`` that picks offer recipients, and returns what to do
  (:class:`Send`, :class:`Abort`, :class:`Close`). The outboxes are accounted here too (the I/O
  layer reports each message it takes out with :meth:`TrackerState.message_taken`), so dropping a
  slow reader is a decision of this module. :mod:`p2ploader.tracker.server` keeps the websockets
  server, one writer task per connection and the expiry timer.

"""

from __future__ import annotations

import ipaddress
import logging
import random
from typing import Any, Final

import attrs

from p2ploader.core.topology import OME_RULES, HostClientTree, PeerAttributes, rules_named
from p2ploader.core.tracker_wire import (
    Announce,
    AnnounceResponse,
    Answer,
    Failure,
    RelayedAnswer,
    RelayedOffer,
    Response,
    Scrape,
    ScrapeCounts,
    ScrapeResponse,
    TrackerRequestError,
    binary_string,
    decode_request,
    encode,
    from_binary_string,
    is_wire_id,
)
from p2ploader.errors import ConfigError
from p2ploader.tracker.ratelimit import TokenBucket

__all__ = [
    "Abort",
    "Close",
    "Output",
    "Send",
    "TrackerConnection",
    "TrackerLimits",
    "TrackerState",
    "TrackerStatistics",
    "address_key",
]

logger = logging.getLogger("p2ploader.tracker.server")

_RECENT_IDS_PER_CONNECTION: Final = 16  # peer ids a connection may come back to without paying again
_LOG_EVERY: Final = 10.0  # seconds: at most one line about refused requests (and one about bugs) per period


def _at_least_one(instance: object, attribute: attrs.Attribute[int], value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{attribute.name} must be an integer >= 1, not {value!r}")


def _positive_seconds(instance: object, attribute: attrs.Attribute[Any], value: Any) -> None:
    if value is None and attribute.name in {"peer_timeout", "ping_interval"}:
        return
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        raise ValueError(f"{attribute.name} must be a positive number of seconds, not {value!r}")


@attrs.frozen(kw_only=True)
class TrackerLimits:
    """The tracker's timing and resource bounds. Every field is a keyword of :class:`TrackerServer`
    and :func:`serve_tracker` too."""

    interval: float = attrs.field(default=120.0, validator=_positive_seconds)
    """Seconds between announces, sent to clients as ``interval`` (both upstream servers send 120)."""
    peer_timeout: float | None = attrs.field(default=None, validator=_positive_seconds)
    """Seconds without an announce after which a peer is dropped; ``None``: ``2 * interval``."""
    max_peers_per_swarm: int = attrs.field(default=1000, validator=_at_least_one)
    max_swarms: int = attrs.field(default=10_000, validator=_at_least_one)
    max_swarms_per_connection: int = attrs.field(default=100, validator=_at_least_one)
    max_connections: int = attrs.field(default=10_000, validator=_at_least_one)
    max_message_size: int = attrs.field(default=64 * 1024, validator=_at_least_one)
    """Bytes per incoming WebSocket message; a bigger one closes the connection (1009)."""
    max_offers_per_announce: int = attrs.field(default=10, validator=_at_least_one)
    """Offers relayed per announce (bittorrent-tracker's client sends at most 10, P2P Media Loader
    2.x 5)."""
    max_scrape_hashes: int = attrs.field(default=100, validator=_at_least_one)
    max_protocol_errors: int = attrs.field(default=20, validator=_at_least_one)
    """Malformed requests tolerated per connection before it is closed (1008)."""
    send_queue_size: int = attrs.field(default=256, validator=_at_least_one)
    """Messages queued for one connection; a connection that lets more pile up is a slow reader and
    is dropped."""
    max_outbox_bytes: int = attrs.field(default=256 * 1024, validator=_at_least_one)
    """Bytes queued for one connection (written to nobody yet); a connection that lets more pile up
    is a slow reader and is dropped, its queue freed. Four 64 KiB frames, or about a hundred
    ordinary offers."""
    max_peer_ids_per_connection: int = attrs.field(default=8, validator=_at_least_one)
    """Distinct peer ids one connection may hold at once. Browsers share one socket per tracker URL
    between their swarms; P2P Media Loader 2.x uses one id per swarm (video, audio, and for 30 s
    after a level switch the old level too), WebTorrent one id for all."""
    announces_per_interval: int = attrs.field(default=20, validator=_at_least_one)
    """Announces (``stopped`` and answers excluded) per connection: a burst of this many, refilled at
    this many per ``interval``. An honest client announces each swarm once per interval."""
    address_announces_per_interval: int = attrs.field(default=1000, validator=_at_least_one)
    """The same, for all connections from one source address (an IPv6 /64 counts as one), so that
    opening more sockets does not buy more announces. Leaves room for five hundred viewers of two
    swarms each behind one NAT (an office watching an event)."""
    swarms_created_per_interval: int = attrs.field(default=10, validator=_at_least_one)
    """New swarms one connection may create: a burst of this many, refilled at this many per
    ``interval``. Joining an existing swarm creates nothing."""
    address_swarms_created_per_interval: int = attrs.field(default=100, validator=_at_least_one)
    """New swarms all connections from one source address may create (burst and refill per
    ``interval``)."""
    peer_ids_per_interval: int = attrs.field(default=8, validator=_at_least_one)
    """Peer ids one connection may start using (burst and refill per ``interval``); going back to
    one of the 16 it used last is free. P2P Media Loader 2.x takes one id per swarm and keeps it
    for that swarm; a socket announcing a fresh id every 100 ms (to fill viewers' peer slots) gets
    eight, then one per 15 s."""
    answers_per_interval: int = attrs.field(default=100, validator=_at_least_one)
    """Answers one connection may relay (burst and refill per ``interval``); an honest peer answers
    only the offers it received."""
    ping_interval: float | None = attrs.field(default=20.0, validator=_positive_seconds)
    """WebSocket keepalive ping interval (and timeout) in seconds; ``None`` disables pings."""

    @property
    def effective_peer_timeout(self) -> float:
        return self.peer_timeout if self.peer_timeout is not None else 2 * self.interval


@attrs.frozen(kw_only=True)
class TrackerStatistics:
    """A snapshot of the tracker's figures."""

    connections: int
    swarms: int
    peers: int
    messages_received: int
    announces: int
    answers: int
    scrapes: int
    offers_relayed: int
    answers_relayed: int
    answers_undeliverable: int
    failures_sent: int
    bad_requests: int
    messages_dropped: int
    peers_expired: int
    connections_refused: int
    tree_introductions: int = 0
    """Client offers relayed to the vacant host the tracker chose (host/client swarms)."""
    tree_reattach_notices: int = 0
    """Notices sent to clients to announce again: their host left, or a host has room now."""
    slow_readers_dropped: int = 0
    """Connections closed because more than ``max_outbox_bytes`` (or ``send_queue_size`` messages)
    waited for them."""
    requests_rate_limited: int = 0
    """Announces and answers refused by a rate limit (per connection or per source address)."""
    peer_id_refusals: int = 0
    """Announces refused because another live connection holds that peer id in that swarm, or the
    connection holds ``max_peer_ids_per_connection`` ids already."""

    @property
    def messages_relayed(self) -> int:
        """Offers plus answers forwarded from one peer to another."""
        return self.offers_relayed + self.answers_relayed


# ---------------------------------------------------------------------------------------------- state


@attrs.define(eq=False)
class TrackerConnection:
    """One client connection as the state sees it (the I/O layer keeps the socket).

    ``queued_messages``/``queued_bytes`` are what waits in its outbox: counted up by the state when
    it decides to send, down by :meth:`TrackerState.message_taken` when the writer takes one out.
    """

    address: str = "unknown"  # the source address the per-address limits are keyed by
    memberships: dict[str, str] = attrs.Factory(dict)  # info_hash -> this connection's peer_id there
    protocol_errors: int = 0
    closed: bool = False
    queued_messages: int = 0
    queued_bytes: int = 0  # characters queued (latin-1 ids: about one byte each)
    announces: TokenBucket | None = None  # the per-connection buckets, made on first use
    creations: TokenBucket | None = None
    answers: TokenBucket | None = None
    new_ids: TokenBucket | None = None
    recent_ids: dict[str, None] = attrs.Factory(dict)  # the peer ids it used lately, oldest first


@attrs.frozen
class Send:
    """Queue ``text`` (one frame) for ``connection``."""

    connection: TrackerConnection
    text: str


@attrs.frozen
class Abort:
    """``connection`` is a slow reader: discard its queue and cut its TCP connection at once (a close
    handshake would wait behind the very bytes it does not read)."""

    connection: TrackerConnection


@attrs.frozen
class Close:
    """Close ``connection`` with ``code``/``reason`` once what is queued for it is written (bounded)."""

    connection: TrackerConnection
    code: int
    reason: str


Output = Send | Abort | Close


@attrs.define(eq=False)
class _AddressState:
    """Per source address: the buckets every connection from it draws from."""

    announces: TokenBucket
    creations: TokenBucket
    connections: int = 0


@attrs.define(eq=False)
class _Peer:
    peer_id: str
    conn: TrackerConnection
    complete: bool
    last_seen: float


@attrs.define(eq=False)
class _Swarm:
    info_hash: str
    peers: dict[str, _Peer] = attrs.Factory(dict)
    complete: int = 0
    tree: HostClientTree | None = None  # host/client roles, once a peer announced that topology

    @property
    def incomplete(self) -> int:
        return len(self.peers) - self.complete


class _RequestError(Exception):
    """A request the tracker answers with ``failure reason``.

    ``protocol=True`` marks a malformed request (counted towards ``max_protocol_errors``); a refusal
    of a well-formed one (swarm full) is not. With ``info_hash`` the failure carries ``action`` and
    ``info_hash`` so that clients attribute it to their swarm.
    """

    def __init__(
        self,
        reason: str,
        *,
        info_hash: str | None = None,
        protocol: bool = True,
        counter: str | None = None,
    ) -> None:
        super().__init__(reason)
        self.reason = reason
        self.info_hash = info_hash
        self.protocol = protocol
        self.counter = counter  # a TrackerStatistics figure this refusal adds one to


def _refusal(reason: str, info_hash: str, counter: str | None = None) -> _RequestError:
    """A well-formed request the tracker will not serve (now): not a protocol error."""
    return _RequestError(reason, info_hash=info_hash, protocol=False, counter=counter)


def address_key(remote_address: object) -> str:
    """The key of a peer's source address for the per-address limits: the IPv4 address, or the
    /64 prefix of an IPv6 address (one subscriber usually holds a whole /64)."""
    host = remote_address[0] if isinstance(remote_address, tuple) and remote_address else None
    if not isinstance(host, str):
        return "unknown"
    try:
        address = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return host
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network((address, 64), strict=False))
    return str(address)


def _short_text(text: str, limit: int = 160) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _wire(raw: bytes) -> str:
    return binary_string(raw)


class TrackerState:
    """Every swarm, peer, limit and outbox of one tracker; see the module doc.

    Each method that changes the state returns the :data:`Output` list to perform, in order. Times
    are seconds on the caller's monotonic clock.
    """

    def __init__(self, limits: TrackerLimits | None = None) -> None:
        self.limits = limits or TrackerLimits()
        self._addresses: dict[str, _AddressState] = {}
        self._log_window_start: float | None = None  # when the current log throttling period began
        self._log_suppressed = 0  # refusals not logged in the current period
        self._bug_logged_at: float | None = None
        self._connections: set[TrackerConnection] = set()
        self._swarms: dict[str, _Swarm] = {}
        self._peer_count = 0
        self._out: list[Output] = []
        self._counts: dict[str, int] = dict.fromkeys(
            (
                "messages_received",
                "announces",
                "answers",
                "scrapes",
                "offers_relayed",
                "answers_relayed",
                "answers_undeliverable",
                "failures_sent",
                "bad_requests",
                "messages_dropped",
                "peers_expired",
                "connections_refused",
                "tree_introductions",
                "tree_reattach_notices",
                "slow_readers_dropped",
                "requests_rate_limited",
                "peer_id_refusals",
            ),
            0,
        )

    def _per_interval(self, count: int) -> tuple[float, float]:
        """A bucket's (capacity, refill per second) for "``count`` per announce interval"."""
        return float(count), count / self.limits.interval

    def _take_output(self) -> list[Output]:
        out, self._out = self._out, []
        return out

    # ------------------------------------------------------------------ connections

    @property
    def connection_count(self) -> int:
        return len(self._connections)

    def has_room(self) -> bool:
        """Whether one more connection is allowed (``max_connections``); counts a refusal if not."""
        if len(self._connections) >= self.limits.max_connections:
            self._counts["connections_refused"] += 1
            return False
        return True

    def open_connection(self, remote_address: object, *, now: float) -> TrackerConnection:
        """A new connection from ``remote_address`` (a socket's ``(host, port, ...)``)."""
        conn = TrackerConnection(address=address_key(remote_address))
        self._address_state(conn.address, now).connections += 1
        self._connections.add(conn)
        return conn

    def connection_closed(self, conn: TrackerConnection, *, now: float) -> list[Output]:
        """``conn`` is gone: its peers leave every swarm (which may notify waiting clients)."""
        if conn in self._connections:
            self._connections.discard(conn)
            state = self._addresses.get(conn.address)
            if state is not None:
                state.connections -= 1
        conn.closed = True
        self._leave_all(conn)
        self.outbox_discarded(conn)
        return self._take_output()

    def message_taken(self, conn: TrackerConnection, text: str) -> None:
        """The writer took ``text`` out of ``conn``'s outbox (to write it)."""
        conn.queued_messages = max(0, conn.queued_messages - 1)
        conn.queued_bytes = max(0, conn.queued_bytes - len(text))

    def outbox_discarded(self, conn: TrackerConnection) -> None:
        """Whatever was queued for ``conn`` is gone (its socket failed)."""
        conn.queued_messages = 0
        conn.queued_bytes = 0

    # ------------------------------------------------------------------ introspection

    def statistics(self) -> TrackerStatistics:
        return TrackerStatistics(
            connections=len(self._connections),
            swarms=len(self._swarms),
            peers=self._peer_count,
            **self._counts,
        )

    def queued_bytes(self) -> int:
        """Characters waiting in every outbox together."""
        return sum(conn.queued_bytes for conn in self._connections)

    def host_client_tree(self, info_hash: bytes) -> dict[bytes, tuple[bytes, ...]]:
        """Host/client swarms: each host's raw peer id and its clients' (empty for a mesh swarm)."""
        swarm = self._swarms.get(_wire(info_hash))
        if swarm is None or swarm.tree is None:
            return {}
        tree = swarm.tree
        return {
            from_binary_string(host): tuple(from_binary_string(c) for c in tree.clients_of(host))
            for host in tree.hosts
        }

    def peer_ids(self, info_hash: bytes) -> frozenset[bytes]:
        """The peer ids currently in the swarm ``info_hash`` (raw 20-byte ids)."""
        swarm = self._swarms.get(_wire(info_hash))
        if swarm is None:
            return frozenset()
        return frozenset(from_binary_string(peer_id) for peer_id in swarm.peers)

    # ------------------------------------------------------------------ sending

    def _send(self, conn: TrackerConnection, message: Response) -> bool:
        """Queue ``message`` for ``conn``, or drop ``conn`` as a slow reader if its outbox is full."""
        if conn.closed:
            return False
        text = encode(message)
        limits = self.limits
        if (
            conn.queued_messages >= limits.send_queue_size
            # One message always fits (frames are bounded anyway); beyond that, the byte budget.
            or (conn.queued_bytes + len(text) > limits.max_outbox_bytes and conn.queued_messages > 0)
        ):
            self._drop_slow_reader(conn)
            self._counts["messages_dropped"] += 1
            return False
        conn.queued_messages += 1
        conn.queued_bytes += len(text)
        self._out.append(Send(conn, text))
        return True

    def _drop_slow_reader(self, conn: TrackerConnection) -> None:
        """``conn`` does not read what we send: free its queue and cut it. Its peers are removed when
        the I/O layer reports it closed; until then ``closed`` keeps it out of every relay."""
        conn.closed = True
        self._counts["messages_dropped"] += conn.queued_messages
        self.outbox_discarded(conn)
        self._counts["slow_readers_dropped"] += 1
        self._out.append(Abort(conn))
        self._note_refusal(f"dropped a slow reader from {conn.address}", self._last_now)

    # ------------------------------------------------------------------ requests

    _last_now = 0.0  # the time of the request being handled (for log throttling in helpers)

    def handle(
        self, conn: TrackerConnection, frame: str | bytes, *, now: float, rng: random.Random
    ) -> list[Output]:
        """One frame from ``conn`` at ``now``; ``rng`` picks the peers offers go to."""
        self._last_now = now
        self._counts["messages_received"] += 1
        limits = self.limits
        try:
            try:
                request = decode_request(
                    frame,
                    max_offers=limits.max_offers_per_announce,
                    max_scrape_hashes=limits.max_scrape_hashes,
                    max_size=limits.max_message_size,
                )
            except TrackerRequestError as exc:
                if exc.request is not None:
                    self._counts[f"{exc.request}s"] += 1
                raise _RequestError(exc.reason, info_hash=exc.info_hash) from None
            if isinstance(request, Answer):
                self._answer(conn, request, now)
            elif isinstance(request, Announce):
                self._announce(conn, request, now, rng)
            else:
                self._scrape(conn, request)
        except _RequestError as exc:
            self._fail(conn, exc, now)
        except Exception:  # a bug here must not take the tracker down, nor flood the log
            self._log_bug(now)
            self._fail(conn, _RequestError("internal error", protocol=False), now)
        if not conn.closed and conn.protocol_errors >= limits.max_protocol_errors:
            self._out.append(Close(conn, 1008, "too many invalid requests"))
        return self._take_output()

    def _fail(self, conn: TrackerConnection, error: _RequestError, now: float) -> None:
        if error.protocol:
            conn.protocol_errors += 1
            self._counts["bad_requests"] += 1
        if error.counter is not None:
            self._counts[error.counter] += 1
        failure = Failure(
            reason=error.reason,
            about_swarm=error.info_hash is not None,
            info_hash=from_binary_string(error.info_hash) if error.info_hash is not None else None,
        )
        if self._send(conn, failure):
            self._counts["failures_sent"] += 1
        self._note_refusal(f"{error.reason} (from {conn.address})", now)

    def _note_refusal(self, what: str, now: float) -> None:
        """One short log line per ``_LOG_EVERY`` seconds at most, with the count of the others: a
        client sending garbage in a loop must not turn into a log flood."""
        start = self._log_window_start
        if start is not None and now - start < _LOG_EVERY:
            self._log_suppressed += 1
            return
        suppressed, self._log_suppressed = self._log_suppressed, 0
        self._log_window_start = now
        more = f" ({suppressed} more in the previous {_LOG_EVERY:.0f} s)" if suppressed else ""
        logger.info("tracker: refused: %s%s", _short_text(what), more)

    def _log_bug(self, now: float) -> None:
        if self._bug_logged_at is None or now - self._bug_logged_at >= _LOG_EVERY:
            self._bug_logged_at = now
            logger.exception("tracker: error while handling a request")

    def _announce(self, conn: TrackerConnection, request: Announce, now: float, rng: random.Random) -> None:
        info_hash = _wire(request.info_hash)
        peer_id = _wire(request.peer_id)
        self._counts["announces"] += 1
        if request.event == "stopped":  # free: leaving costs the tracker nothing
            self._leave(conn, info_hash, peer_id)
            self._send(conn, self._announce_response(info_hash))
            return
        offers = request.offers
        numwant = request.numwant if request.numwant is not None else len(offers)
        swarm = self._join(conn, info_hash, peer_id, complete=request.seed, now=now)
        tree_target = self._tree_announce(swarm, peer_id, request.extra.get("p2ploader"), bool(offers))
        response = self._announce_response(info_hash)
        if tree_target is not None:
            response = attrs.evolve(response, extension=tree_target[0])
        self._send(conn, response)
        wanted = min(len(offers), numwant)
        if wanted == 0:
            return
        if tree_target is not None:
            # Host/client swarm: a client's offer goes to the one vacant host chosen for it, a
            # host's offers to nobody (clients come to hosts).
            targets = [tree_target[1]] if tree_target[1] is not None else []
            self._counts["tree_introductions"] += len(targets)
        else:
            others = [peer for pid, peer in swarm.peers.items() if pid != peer_id and not peer.conn.closed]
            targets = rng.sample(others, min(wanted, len(others)))
        for offer, target in zip(offers, targets, strict=False):
            relayed = RelayedOffer(
                info_hash=request.info_hash, peer_id=request.peer_id, offer_id=offer.offer_id, sdp=offer.sdp
            )
            if self._send(target.conn, relayed):
                self._counts["offers_relayed"] += 1

    def _tree_announce(
        self, swarm: _Swarm, peer_id: str, extra: object, has_offers: bool
    ) -> tuple[dict[str, Any], _Peer | None] | None:
        """The host/client decision, as OvenMediaEngine's signalling server makes it, for a peer
        that declared ``"p2ploader": {"topology": "host-client", ...}`` (plain trackers ignore the
        key). Returns the ``p2ploader`` object for the response (role, host) and the host a client's
        offer goes to; ``None`` for a mesh peer."""
        if not isinstance(extra, dict) or extra.get("topology") != "host-client":
            return None
        attributes = PeerAttributes.from_json(extra) or PeerAttributes()
        tree = swarm.tree
        if tree is None:
            name = extra.get("rules")
            try:
                rules = rules_named(name) if isinstance(name, str) else OME_RULES
            except ConfigError:
                rules = OME_RULES
            tree = swarm.tree = HostClientTree(rules)
        max_clients = extra.get("max_clients")
        new = peer_id not in tree
        role = tree.add(
            peer_id,
            attributes,
            max_clients=max_clients
            if isinstance(max_clients, int) and not isinstance(max_clients, bool)
            else 2,
        )
        host_peer: _Peer | None = None
        if role == "host":
            if new:
                self._notify_waiting(swarm, peer_id)
        else:
            # No link to a host (never had one, or it failed): free the slot we may have given it,
            # then, if it offers, introduce it again (maybe to the same host).
            freed = None if is_wire_id(extra.get("host")) else tree.detach(peer_id)
            if has_offers and tree.host_of(peer_id) is None:
                chosen = tree.attach(peer_id)
                host_peer = swarm.peers.get(chosen) if chosen is not None else None
            if freed is not None:
                self._notify_waiting(swarm, freed, exclude=peer_id)  # only if the slot is still free
        host = tree.host_of(peer_id) if role == "client" else None
        return {"role": role, "host": host}, host_peer

    def _notify_waiting(self, swarm: _Swarm, host_id: str, *, exclude: str | None = None) -> None:
        """A host has room: tell as many waiting compatible clients to announce again (but
        ``exclude``, the client that just gave the slot up and announces by itself)."""
        if swarm.tree is None:
            return
        for client_id in swarm.tree.waiting_for(host_id, exclude=exclude):
            self._reattach(swarm, client_id)

    def _reattach(self, swarm: _Swarm, client_id: str) -> None:
        peer = swarm.peers.get(client_id)
        if peer is None:
            return
        notice = attrs.evolve(
            self._announce_response(swarm.info_hash),
            extension={"role": "client", "host": None, "reattach": True},
        )
        if self._send(peer.conn, notice):
            self._counts["tree_reattach_notices"] += 1

    def _announce_response(self, info_hash: str) -> AnnounceResponse:
        swarm = self._swarms.get(info_hash)
        return AnnounceResponse(
            info_hash=from_binary_string(info_hash),
            interval=self.limits.interval,
            complete=swarm.complete if swarm else 0,
            incomplete=swarm.incomplete if swarm else 0,
        )

    def _join(
        self, conn: TrackerConnection, info_hash: str, peer_id: str, *, complete: bool, now: float
    ) -> _Swarm:
        """Join (or refresh) ``peer_id`` in the swarm on this connection. Every check comes before
        any change, so a refused announce changes nothing."""
        limits = self.limits
        previous = conn.memberships.get(info_hash)
        swarm = self._swarms.get(info_hash)
        peer = swarm.peers.get(peer_id) if swarm is not None else None
        if peer is not None and peer.conn is not conn and not peer.conn.closed:
            # A peer id belongs to the connection that announced it first, as long as that one
            # lives: nobody else can take it over (and then remove it with ``stopped``). A client
            # that reconnected before its old socket was noticed dead retries after its back-off.
            raise _refusal("peer_id is in use by another connection", info_hash, "peer_id_refusals")
        held = set(conn.memberships.values())
        if peer_id not in held:
            if previous is not None and list(conn.memberships.values()).count(previous) == 1:
                held.discard(previous)  # this announce replaces that id
            if len(held) >= limits.max_peer_ids_per_connection:
                raise _refusal("too many peer ids on this connection", info_hash, "peer_id_refusals")
        if info_hash not in conn.memberships and len(conn.memberships) >= limits.max_swarms_per_connection:
            raise _refusal("too many swarms on this connection", info_hash)
        if swarm is None and len(self._swarms) >= limits.max_swarms:
            raise _refusal("tracker is full: too many swarms", info_hash)
        replacing = previous is not None and previous != peer_id  # its old id's place becomes free
        full = swarm is not None and len(swarm.peers) >= limits.max_peers_per_swarm
        if peer is None and full and not replacing:
            raise _refusal("swarm is full", info_hash)
        self._take_tokens(conn, info_hash, now, create=swarm is None, new_id=peer_id not in conn.recent_ids)
        conn.recent_ids.pop(peer_id, None)
        conn.recent_ids[peer_id] = None  # the most recent last
        while len(conn.recent_ids) > _RECENT_IDS_PER_CONNECTION:
            del conn.recent_ids[next(iter(conn.recent_ids))]
        if replacing:  # this socket changed its peer id here
            assert previous is not None
            self._leave(conn, info_hash, previous)
            swarm = self._swarms.get(info_hash)  # gone if that peer was its last
        if swarm is None:
            swarm = _Swarm(info_hash=info_hash)
            self._swarms[info_hash] = swarm
        if peer is None:
            peer = _Peer(peer_id=peer_id, conn=conn, complete=False, last_seen=now)
            swarm.peers[peer_id] = peer
            self._peer_count += 1
        elif peer.conn is not conn:
            # Its connection is closed and not cleaned up yet: this one takes the id over.
            if peer.conn.memberships.get(info_hash) == peer_id:
                del peer.conn.memberships[info_hash]
            peer.conn = conn
        conn.memberships[info_hash] = peer_id
        peer.last_seen = now
        if complete and not peer.complete:
            peer.complete = True
            swarm.complete += 1
        return swarm

    def _address_state(self, address: str, now: float) -> _AddressState:
        state = self._addresses.get(address)
        if state is None:
            limits = self.limits
            announces = self._per_interval(limits.address_announces_per_interval)
            creations = self._per_interval(limits.address_swarms_created_per_interval)
            state = _AddressState(
                announces=TokenBucket.full(*announces, now), creations=TokenBucket.full(*creations, now)
            )
            self._addresses[address] = state
        return state

    def _take_tokens(
        self, conn: TrackerConnection, info_hash: str, now: float, *, create: bool, new_id: bool
    ) -> None:
        """Charge one announce (and, for a new swarm, one creation; for a peer id the connection
        has not used lately, one new id) to the connection and to its source address, or refuse the
        announce, naming the limit and the seconds to wait. Nothing is charged on a refusal."""
        limits = self.limits
        if conn.announces is None:
            conn.announces = TokenBucket.full(*self._per_interval(limits.announces_per_interval), now)
        if conn.creations is None:
            conn.creations = TokenBucket.full(*self._per_interval(limits.swarms_created_per_interval), now)
        if conn.new_ids is None:
            conn.new_ids = TokenBucket.full(*self._per_interval(limits.peer_ids_per_interval), now)
        address = self._address_state(conn.address, now)
        buckets = [("announce", conn.announces), ("announce", address.announces)]
        if create:
            buckets += [("swarm creation", conn.creations), ("swarm creation", address.creations)]
        if new_id:
            buckets.append(("new peer id", conn.new_ids))
        wait, what = max((bucket.wait_for(now), what) for what, bucket in buckets)
        if wait > 0:
            reason = f"{what} rate limit exceeded, retry in {max(1, round(wait))} s"
            raise _refusal(reason, info_hash, "requests_rate_limited")
        for _, bucket in buckets:
            bucket.take(now)

    def _leave(self, conn: TrackerConnection, info_hash: str, peer_id: str) -> None:
        swarm = self._swarms.get(info_hash)
        if swarm is None:
            return
        peer = swarm.peers.get(peer_id)
        if peer is None or peer.conn is not conn:
            return
        self._remove(swarm, peer)

    def _remove(self, swarm: _Swarm, peer: _Peer) -> None:
        del swarm.peers[peer.peer_id]
        self._peer_count -= 1
        if peer.complete:
            swarm.complete -= 1
        if peer.conn.memberships.get(swarm.info_hash) == peer.peer_id:
            del peer.conn.memberships[swarm.info_hash]
        if not swarm.peers:
            del self._swarms[swarm.info_hash]
            return
        tree = swarm.tree
        if tree is not None and peer.peer_id in tree:
            was_host = tree.role(peer.peer_id) == "host"
            affected = tree.remove(peer.peer_id)
            if was_host:
                # OME sends its clients "stop" and serves them itself; ours go back to HTTP on their
                # own, and this notice makes them look for another vacant host at once.
                for client_id in affected:
                    self._reattach(swarm, client_id)
            for host_id in () if was_host else affected:
                self._notify_waiting(swarm, host_id)

    def _leave_all(self, conn: TrackerConnection) -> None:
        for info_hash, peer_id in list(conn.memberships.items()):
            self._leave(conn, info_hash, peer_id)
        conn.memberships.clear()

    def _answer(self, conn: TrackerConnection, request: Answer, now: float) -> None:
        info_hash = _wire(request.info_hash)
        self._counts["answers"] += 1
        swarm = self._swarms.get(info_hash)
        sender = swarm.peers.get(_wire(request.peer_id)) if swarm else None
        target = swarm.peers.get(_wire(request.to_peer_id)) if swarm else None
        if sender is None or sender.conn is not conn or target is None or target is sender:
            self._counts["answers_undeliverable"] += 1
            return
        if conn.answers is None:
            conn.answers = TokenBucket.full(*self._per_interval(self.limits.answers_per_interval), now)
        if not conn.answers.take(now):
            raise _refusal("answer rate limit exceeded", info_hash, "requests_rate_limited")
        sender.last_seen = now
        relayed = RelayedAnswer(
            info_hash=request.info_hash, peer_id=request.peer_id, offer_id=request.offer_id, sdp=request.sdp
        )
        if self._send(target.conn, relayed):
            self._counts["answers_relayed"] += 1

    def _scrape(self, conn: TrackerConnection, request: Scrape) -> None:
        self._counts["scrapes"] += 1
        files: dict[bytes, ScrapeCounts] = {}
        for raw in request.info_hashes:
            swarm = self._swarms.get(_wire(raw))
            complete = swarm.complete if swarm else 0
            files[raw] = ScrapeCounts(
                complete=complete, incomplete=swarm.incomplete if swarm else 0, downloaded=complete
            )
        self._send(conn, ScrapeResponse(files=files, min_request_interval=self.limits.interval))

    # ------------------------------------------------------------------ expiry

    def sweep(self, *, now: float) -> list[Output]:
        """Expire peers silent for ``peer_timeout`` and forget idle addresses (call every half
        timeout). Removing a host may notify its clients, hence the outputs."""
        self._last_now = now
        self._expire_silent_peers(now - self.limits.effective_peer_timeout)
        self._forget_idle_addresses(now)
        return self._take_output()

    def _forget_idle_addresses(self, now: float) -> None:
        """Drop the state of addresses with no connection whose buckets are full again: keeping it
        would change nothing, and the table stays as small as the set of recent addresses.
        Forgetting it sooner would let a client reset its limits by reconnecting."""
        for address, state in list(self._addresses.items()):
            if state.connections <= 0 and state.announces.is_full(now) and state.creations.is_full(now):
                del self._addresses[address]

    def _expire_silent_peers(self, deadline: float) -> None:
        for swarm in list(self._swarms.values()):
            for peer in list(swarm.peers.values()):
                if peer.last_seen < deadline:
                    self._remove(swarm, peer)
                    self._counts["peers_expired"] += 1
