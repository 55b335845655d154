"""An embedded WebTorrent-compatible WebSocket tracker on ``websockets``' asyncio server.

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
* **Concurrency.** One handler task per connection reads frames and processes each one
  synchronously (no ``await`` between reading the state and changing it), so no locks are needed.
  ``GET /stats.json`` (without an Upgrade header) returns :meth:`TrackerServer.statistics` as JSON.

Example::

    async with TrackerServer() as tracker:      # binds 127.0.0.1 on a free port
        url = tracker.url                       # ws://127.0.0.1:<port>
        ...
        print(tracker.statistics().messages_relayed)
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
import logging
import random
from collections.abc import Callable
from types import TracebackType
from typing import Any, Final, Self

import attrs
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from p2ploader.core.topology import OME_RULES, HostClientTree, PeerAttributes, rules_named
from p2ploader.errors import BindError, ConfigError, UsageError
from p2ploader.tracker.ratelimit import TokenBucket

__all__ = ["TrackerLimits", "TrackerServer", "TrackerStats", "run_tracker_forever", "serve_tracker"]

logger = logging.getLogger(__name__)

ID_LENGTH: Final = 20
_ACCEPTED_EVENTS: Final = frozenset({"started", "stopped", "completed", "update", "paused", "empty"})
_FLUSH_BEFORE_CLOSE: Final = 1.0  # seconds to let queued failure messages out before closing
_CLOSE_WAIT: Final = 5.0  # seconds aclose() waits for connection handlers (close_timeout is 2 s)
_RECENT_IDS_PER_CONNECTION: Final = 16  # peer ids a connection may come back to without paying again
_HANDSHAKE_DONE: Final = Request("/", Headers())
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
class TrackerStats:
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
class _Connection:
    ws: ServerConnection
    # What waits to be written, and the task writing it: made when a message is queued, dropped once
    # it is all written, so that an idle connection costs neither a queue nor a task.
    outbox: asyncio.Queue[str] | None = None
    writer: asyncio.Task[None] | None = None
    memberships: dict[str, str] = attrs.Factory(dict)  # info_hash -> this connection's peer_id there
    protocol_errors: int = 0
    closed: bool = False
    outbox_bytes: int = 0  # characters queued in ``outbox`` (latin-1 ids: about one byte each)
    address: str = "unknown"  # the source address the per-address limits are keyed by
    announces: TokenBucket | None = None  # the per-connection buckets, made on first use
    creations: TokenBucket | None = None
    answers: TokenBucket | None = None
    new_ids: TokenBucket | None = None
    recent_ids: dict[str, None] = attrs.Factory(dict)  # the peer ids it used lately, oldest first


@attrs.define(eq=False)
class _AddressState:
    """Per source address: the buckets every connection from it draws from."""

    announces: TokenBucket
    creations: TokenBucket
    connections: int = 0


@attrs.define(eq=False)
class _Peer:
    peer_id: str
    conn: _Connection
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
        self.counter = counter  # a TrackerStats figure this refusal adds one to


def _refusal(reason: str, info_hash: str, counter: str | None = None) -> _RequestError:
    """A well-formed request the tracker will not serve (now): not a protocol error."""
    return _RequestError(reason, info_hash=info_hash, protocol=False, counter=counter)


def _is_id(value: object) -> bool:
    """A 20-character latin-1 string (one character per byte of a 20-byte id)."""
    if not isinstance(value, str) or len(value) != ID_LENGTH:
        return False
    try:
        value.encode("latin-1")
    except UnicodeEncodeError:
        return False
    return True


def _id_field(request: dict[str, Any], key: str, reason: str | None = None) -> str:
    value = request.get(key)
    if not _is_id(value):
        raise _RequestError(reason or f"invalid {key}")
    assert isinstance(value, str)
    return value


def _is_zero(value: object) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, int | float):
        return value == 0
    if isinstance(value, str):
        try:
            return float(value) == 0
        except ValueError:
            return False
    return False


_NUMWANT_DIGITS: Final = 9  # a longer digit string is not a count any client sends


def _numwant(value: object, default: int, info_hash: str) -> int:
    """``numwant`` as a count; absent (or ``null``) means "as many as there are offers". A negative,
    fractional, boolean or non-numeric value, or a digit string longer than nine digits, is a
    malformed request."""
    if value is None:
        return default
    if isinstance(value, float) and value.is_integer() and 0 <= value < 10**_NUMWANT_DIGITS:
        return int(value)
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    if isinstance(value, str):
        text = value.strip()
        if 0 < len(text) <= _NUMWANT_DIGITS and text.isascii() and text.isdigit():
            return int(text)
    raise _RequestError("invalid numwant", info_hash=info_hash)


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


def _sdp_of(value: object) -> str | None:
    if isinstance(value, dict):
        sdp = value.get("sdp")
        if isinstance(sdp, str):
            return sdp
    return None


def _seconds_for_wire(value: float) -> int | float:
    return int(value) if float(value).is_integer() else value


def _dumps(message: dict[str, Any]) -> str:
    return json.dumps(message, ensure_ascii=False, separators=(",", ":"))


def _short(value: object) -> str:
    return _short_text(repr(value), 40)


def _short_text(text: str, limit: int = 160) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


# --------------------------------------------------------------------------------------------- server


class TrackerServer:
    """A WebTorrent-compatible WebSocket tracker.

    ``await start()`` binds (``127.0.0.1`` and a free port by default; :class:`~p2ploader.errors.BindError`
    when the address cannot be bound, e.g. a port in use); ``url`` is then
    ``ws://host:port``; ``await aclose()`` closes every connection. It is also an async context
    manager. Limits are :class:`TrackerLimits` fields, given as ``limits=`` or as keywords.
    ``rng`` drives the random choice of offer recipients; ``clock`` (seconds, monotonic; the event
    loop's clock by default) drives rate limits, peer expiry and log throttling, so tests can move
    time without sleeping.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        limits: TrackerLimits | None = None,
        rng: random.Random | None = None,
        clock: Callable[[], float] | None = None,
        **limit_overrides: Any,
    ) -> None:
        try:
            self.limits = attrs.evolve(limits or TrackerLimits(), **limit_overrides)
        except (TypeError, ValueError) as exc:
            raise UsageError(f"invalid tracker limits: {exc}") from exc
        self.host = host
        self._port = port
        self._rng = rng or random.Random()
        self._clock = clock
        self._addresses: dict[str, _AddressState] = {}
        self._log_window_start: float | None = None  # when the current log throttling period began
        self._log_suppressed = 0  # refusals not logged in the current period
        self._bug_logged_at: float | None = None
        self._server: Server | None = None
        self._bound: tuple[str, int] | None = None  # (host, port) of the listening socket
        self._sweeper: asyncio.Task[None] | None = None
        self._closed = False
        self._connections: set[_Connection] = set()
        self._handlers: set[asyncio.Task[Any]] = set()  # connection handlers running
        self._swarms: dict[str, _Swarm] = {}
        self._peer_count = 0
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

    def _now(self) -> float:
        return self._clock() if self._clock is not None else asyncio.get_running_loop().time()

    def _per_interval(self, count: int) -> tuple[float, float]:
        """A bucket's (capacity, refill per second) for "``count`` per announce interval"."""
        return float(count), count / self.limits.interval

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        if self._server is not None or self._closed:
            raise UsageError("a TrackerServer can be started once")
        limits = self.limits
        try:
            self._server = await serve(
                self._handle,
                self.host,
                self._port,
                max_size=limits.max_message_size,
                compression=None,  # like bittorrent-tracker: no per-connection deflate state
                process_request=self._process_request,
                ping_interval=limits.ping_interval,
                ping_timeout=limits.ping_interval,
                close_timeout=2.0,
            )
        except OSError as exc:
            raise BindError.from_os_error(self.host, self._port, exc) from exc
        address = next(iter(self._server.sockets)).getsockname()
        self._bound = (str(address[0]), int(address[1]))
        self._sweeper = asyncio.get_running_loop().create_task(self._sweep_loop(), name="tracker-sweeper")
        logger.info("tracker listening on %s", self.url)

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper
        if self._server is not None:
            self._server.close()
            # Bounded: a connection handler that does not return within the close handshake's
            # time is cancelled rather than holding aclose() (and its caller) for ever.
            try:
                await asyncio.wait_for(self._server.wait_closed(), _CLOSE_WAIT)
            except TimeoutError:
                logger.warning("tracker: %d connection handlers outlived the close", len(self._handlers))
                for task in list(self._handlers):
                    task.cancel()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._server.wait_closed(), _CLOSE_WAIT)

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    @property
    def port(self) -> int:
        """The bound port (the real one when ``port=0`` was asked for)."""
        if self._bound is None:
            raise UsageError("the tracker is not started")
        return self._bound[1]

    @property
    def url(self) -> str:
        """``ws://host:port`` of the bound socket (any path works too, e.g. ``/announce``)."""
        if self._bound is None:
            raise UsageError("the tracker is not started")
        host, port = self._bound
        if ":" in host:
            host = f"[{host}]"
        return f"ws://{host}:{port}"

    # ------------------------------------------------------------------ introspection

    def statistics(self) -> TrackerStats:
        return TrackerStats(
            connections=len(self._connections),
            swarms=len(self._swarms),
            peers=self._peer_count,
            **self._counts,
        )

    def host_client_tree(self, info_hash: bytes) -> dict[bytes, tuple[bytes, ...]]:
        """Host/client swarms: each host's raw peer id and its clients' (empty for a mesh swarm)."""
        swarm = self._swarms.get(info_hash.decode("latin-1"))
        if swarm is None or swarm.tree is None:
            return {}
        tree = swarm.tree
        return {
            host.encode("latin-1"): tuple(c.encode("latin-1") for c in tree.clients_of(host))
            for host in tree.hosts
        }

    def peer_ids(self, info_hash: bytes) -> frozenset[bytes]:
        """The peer ids currently in the swarm ``info_hash`` (raw 20-byte ids)."""
        swarm = self._swarms.get(info_hash.decode("latin-1"))
        if swarm is None:
            return frozenset()
        return frozenset(peer_id.encode("latin-1") for peer_id in swarm.peers)

    # ------------------------------------------------------------------ connections

    def _process_request(self, connection: ServerConnection, request: Request) -> Response | None:
        path = request.path.split("?", 1)[0]
        if path.rstrip("/").endswith("/stats.json") and "Upgrade" not in request.headers:
            stats = self.statistics()
            figures = {**attrs.asdict(stats), "messages_relayed": stats.messages_relayed}
            body = json.dumps(figures, sort_keys=True).encode()
            headers = Headers([("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
            return Response(200, "OK", headers, body)
        if len(self._connections) >= self.limits.max_connections:
            self._counts["connections_refused"] += 1
            return connection.respond(503, "tracker is full\n")
        return None

    async def _handle(self, ws: ServerConnection) -> None:
        if len(self._connections) >= self.limits.max_connections:  # raced past the handshake check
            self._counts["connections_refused"] += 1
            await ws.close(1013, "tracker is full")
            return
        conn = _Connection(ws=ws, address=address_key(ws.remote_address))
        # The handshake's request and response (their headers) are not needed any more: a few KiB
        # per connection. ``websockets`` reads ``request is None`` as "handshake not done", so a
        # shared empty request takes its place.
        ws.request, ws.response = _HANDSHAKE_DONE, None
        self._address_state(conn.address).connections += 1
        self._connections.add(conn)
        handler = asyncio.current_task()
        if handler is not None:
            self._handlers.add(handler)
        try:
            async for frame in ws:
                self._on_frame(conn, frame)
                if conn.closed:  # dropped as a slow reader while we handled its request
                    break
                if conn.protocol_errors >= self.limits.max_protocol_errors:
                    if conn.outbox is not None:
                        with contextlib.suppress(TimeoutError):
                            await asyncio.wait_for(conn.outbox.join(), _FLUSH_BEFORE_CLOSE)
                    await ws.close(1008, "too many invalid requests")
                    break
        except ConnectionClosed:
            pass
        except Exception:
            logger.exception("tracker: connection handler failed")
        finally:
            conn.closed = True
            self._connections.discard(conn)
            state = self._addresses.get(conn.address)
            if state is not None:
                state.connections -= 1
            if handler is not None:
                self._handlers.discard(handler)
            self._leave_all(conn)
            writer = conn.writer
            if writer is not None:
                writer.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await writer

    async def _write_loop(self, conn: _Connection) -> None:
        """Write what is queued for ``conn``, then end (``_send`` starts another when needed)."""
        try:
            while (outbox := conn.outbox) is not None and not outbox.empty():
                text = outbox.get_nowait()
                conn.outbox_bytes -= len(text)
                try:
                    await conn.ws.send(text)
                finally:
                    outbox.task_done()
        except Exception as exc:  # ConnectionClosed, or anything else: nothing more can be sent
            if not isinstance(exc, ConnectionClosed):
                logger.exception("tracker: sending failed")
            self._empty_outbox(conn)
        finally:
            # No await between the emptiness check above and here: a message queued from now on
            # finds no writer and starts one.
            conn.writer = None
            if conn.outbox is not None and conn.outbox.empty():
                conn.outbox = None

    @staticmethod
    def _empty_outbox(conn: _Connection) -> int:
        """Discard what is queued for ``conn`` (also lets a waiting flush finish); the count."""
        discarded = 0
        while conn.outbox is not None and not conn.outbox.empty():
            conn.outbox.get_nowait()
            conn.outbox.task_done()
            discarded += 1
        conn.outbox_bytes = 0
        return discarded

    def _send(self, conn: _Connection, message: dict[str, Any]) -> bool:
        if conn.closed:
            return False
        text = _dumps(message)
        outbox = conn.outbox
        if outbox is None:
            outbox = conn.outbox = asyncio.Queue(self.limits.send_queue_size)
        if (
            outbox.full()
            # One message always fits (frames are bounded anyway); beyond that, the byte budget.
            or (conn.outbox_bytes + len(text) > self.limits.max_outbox_bytes and not outbox.empty())
        ):
            self._drop_slow_reader(conn)
            self._counts["messages_dropped"] += 1
            return False
        outbox.put_nowait(text)
        conn.outbox_bytes += len(text)
        if conn.writer is None:
            conn.writer = asyncio.get_running_loop().create_task(self._write_loop(conn))
        return True

    def _drop_slow_reader(self, conn: _Connection) -> None:
        """``conn`` does not read what we send: free its queue and cut the TCP connection at once (a
        close handshake would wait behind the very bytes it does not read). Its handler notices the
        loss and removes its peers; until then ``closed`` keeps it out of every relay."""
        conn.closed = True
        self._counts["messages_dropped"] += self._empty_outbox(conn)
        self._counts["slow_readers_dropped"] += 1
        self._note_refusal(f"dropped a slow reader from {conn.address}")
        transport = getattr(conn.ws, "transport", None)
        if transport is not None:
            transport.abort()

    # ------------------------------------------------------------------ requests

    def _on_frame(self, conn: _Connection, frame: str | bytes) -> None:
        self._counts["messages_received"] += 1
        try:
            request = json.loads(frame)
        except (ValueError, RecursionError):  # includes UnicodeDecodeError of a binary frame
            self._fail(conn, _RequestError("invalid JSON"))
            return
        if not isinstance(request, dict):
            self._fail(conn, _RequestError("invalid request: not a JSON object"))
            return
        try:
            action = request.get("action")
            if action == "announce":
                self._announce(conn, request)
            elif action == "scrape":
                self._scrape(conn, request)
            else:
                raise _RequestError(f"invalid action in WS request: {_short(action)}")
        except _RequestError as exc:
            self._fail(conn, exc)
        except Exception:  # a bug here must not take the tracker down, nor flood the log
            self._log_bug()
            self._fail(conn, _RequestError("internal error", protocol=False))

    def _fail(self, conn: _Connection, error: _RequestError) -> None:
        if error.protocol:
            conn.protocol_errors += 1
            self._counts["bad_requests"] += 1
        if error.counter is not None:
            self._counts[error.counter] += 1
        message: dict[str, Any] = {"failure reason": error.reason}
        if error.info_hash is not None:
            message = {"action": "announce", "failure reason": error.reason, "info_hash": error.info_hash}
        if self._send(conn, message):
            self._counts["failures_sent"] += 1
        self._note_refusal(f"{error.reason} (from {conn.address})")

    def _note_refusal(self, what: str) -> None:
        """One short log line per ``_LOG_EVERY`` seconds at most, with the count of the others: a
        client sending garbage in a loop must not turn into a log flood."""
        now = self._now()
        start = self._log_window_start
        if start is not None and now - start < _LOG_EVERY:
            self._log_suppressed += 1
            return
        suppressed, self._log_suppressed = self._log_suppressed, 0
        self._log_window_start = now
        more = f" ({suppressed} more in the previous {_LOG_EVERY:.0f} s)" if suppressed else ""
        logger.info("tracker: refused: %s%s", _short_text(what), more)

    def _log_bug(self) -> None:
        now = self._now()
        if self._bug_logged_at is None or now - self._bug_logged_at >= _LOG_EVERY:
            self._bug_logged_at = now
            logger.exception("tracker: error while handling a request")

    def _announce(self, conn: _Connection, request: dict[str, Any]) -> None:
        info_hash = _id_field(request, "info_hash")
        peer_id = _id_field(request, "peer_id")
        if request.get("answer") is not None:
            self._answer(conn, request, info_hash, peer_id)
            return
        self._counts["announces"] += 1
        event = request.get("event")
        if event is not None and event != "" and event not in _ACCEPTED_EVENTS:
            raise _RequestError("invalid event", info_hash=info_hash)
        if event == "stopped":  # free: leaving costs the tracker nothing
            self._leave(conn, info_hash, peer_id)
            self._send(conn, self._announce_response(info_hash))
            return
        offers = self._parse_offers(request.get("offers"), info_hash)
        numwant = _numwant(request.get("numwant"), len(offers), info_hash)
        complete = event == "completed" or _is_zero(request.get("left"))
        swarm = self._join(conn, info_hash, peer_id, complete=complete)
        tree_target = self._tree_announce(swarm, peer_id, request.get("p2ploader"), bool(offers))
        response = self._announce_response(info_hash)
        if tree_target is not None:
            response["p2ploader"] = tree_target[0]
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
            targets = self._rng.sample(others, min(wanted, len(others)))
        for (offer_id, sdp), target in zip(offers, targets, strict=False):
            relayed = {
                "action": "announce",
                "offer": {"type": "offer", "sdp": sdp},
                "offer_id": offer_id,
                "peer_id": peer_id,
                "info_hash": info_hash,
            }
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
            freed = None if _is_id(extra.get("host")) else tree.detach(peer_id)
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
        notice = {
            **self._announce_response(swarm.info_hash),
            "p2ploader": {"role": "client", "host": None, "reattach": True},
        }
        if self._send(peer.conn, notice):
            self._counts["tree_reattach_notices"] += 1

    def _parse_offers(self, offers: object, info_hash: str) -> list[tuple[str, str]]:
        """Valid ``(offer_id, sdp)`` pairs, at most ``max_offers_per_announce``; bad entries are skipped."""
        if offers is None:
            return []
        if not isinstance(offers, list):
            raise _RequestError("invalid offers", info_hash=info_hash)
        parsed: list[tuple[str, str]] = []
        for entry in offers:
            if len(parsed) >= self.limits.max_offers_per_announce:
                break
            if not isinstance(entry, dict):
                continue
            offer_id = entry.get("offer_id")
            sdp = _sdp_of(entry.get("offer"))
            if _is_id(offer_id) and sdp is not None:
                assert isinstance(offer_id, str)
                parsed.append((offer_id, sdp))
        return parsed

    def _announce_response(self, info_hash: str) -> dict[str, Any]:
        swarm = self._swarms.get(info_hash)
        return {
            "action": "announce",
            "interval": _seconds_for_wire(self.limits.interval),
            "info_hash": info_hash,
            "complete": swarm.complete if swarm else 0,
            "incomplete": swarm.incomplete if swarm else 0,
        }

    def _join(self, conn: _Connection, info_hash: str, peer_id: str, *, complete: bool) -> _Swarm:
        """Join (or refresh) ``peer_id`` in the swarm on this connection. Every check comes before
        any change, so a refused announce changes nothing."""
        limits = self.limits
        now = self._now()
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

    def _address_state(self, address: str) -> _AddressState:
        state = self._addresses.get(address)
        if state is None:
            now = self._now()
            limits = self.limits
            announces = self._per_interval(limits.address_announces_per_interval)
            creations = self._per_interval(limits.address_swarms_created_per_interval)
            state = _AddressState(
                announces=TokenBucket.full(*announces, now), creations=TokenBucket.full(*creations, now)
            )
            self._addresses[address] = state
        return state

    def _take_tokens(
        self, conn: _Connection, info_hash: str, now: float, *, create: bool, new_id: bool
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
        address = self._address_state(conn.address)
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

    def _leave(self, conn: _Connection, info_hash: str, peer_id: str) -> None:
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

    def _leave_all(self, conn: _Connection) -> None:
        for info_hash, peer_id in list(conn.memberships.items()):
            self._leave(conn, info_hash, peer_id)
        conn.memberships.clear()

    def _answer(self, conn: _Connection, request: dict[str, Any], info_hash: str, peer_id: str) -> None:
        to_peer_id = _id_field(request, "to_peer_id", "invalid `to_peer_id` (required with `answer`)")
        offer_id = _id_field(request, "offer_id")
        sdp = _sdp_of(request.get("answer"))
        if sdp is None:
            raise _RequestError("invalid answer", info_hash=info_hash)
        self._counts["answers"] += 1
        swarm = self._swarms.get(info_hash)
        sender = swarm.peers.get(peer_id) if swarm else None
        target = swarm.peers.get(to_peer_id) if swarm else None
        if sender is None or sender.conn is not conn or target is None or target is sender:
            self._counts["answers_undeliverable"] += 1
            return
        now = self._now()
        if conn.answers is None:
            conn.answers = TokenBucket.full(*self._per_interval(self.limits.answers_per_interval), now)
        if not conn.answers.take(now):
            raise _refusal("answer rate limit exceeded", info_hash, "requests_rate_limited")
        sender.last_seen = now
        relayed = {
            "action": "announce",
            "answer": {"type": "answer", "sdp": sdp},
            "offer_id": offer_id,
            "peer_id": peer_id,
            "info_hash": info_hash,
        }
        if self._send(target.conn, relayed):
            self._counts["answers_relayed"] += 1

    def _scrape(self, conn: _Connection, request: dict[str, Any]) -> None:
        self._counts["scrapes"] += 1
        wanted = request.get("info_hash")
        limit = self.limits.max_scrape_hashes
        if wanted is None:
            # bittorrent-tracker lists every swarm here; that hands anyone the info hashes (and so
            # the streams) of other viewers. A scrape names what it asks about.
            raise _RequestError("scrape needs info_hash: listing every swarm is not offered")
        if isinstance(wanted, str):
            hashes = [wanted]
        elif isinstance(wanted, list):
            if len(wanted) > limit:
                raise _RequestError(f"too many info_hash values (at most {limit})")
            hashes = wanted
        else:
            raise _RequestError("invalid info_hash")
        files: dict[str, dict[str, int]] = {}
        for info_hash in hashes:
            if not _is_id(info_hash):
                raise _RequestError("invalid info_hash")
            swarm = self._swarms.get(info_hash)
            complete = swarm.complete if swarm else 0
            files[info_hash] = {
                "complete": complete,
                "incomplete": swarm.incomplete if swarm else 0,
                "downloaded": complete,
            }
        self._send(
            conn,
            {
                "action": "scrape",
                "files": files,
                "flags": {"min_request_interval": _seconds_for_wire(self.limits.interval)},
            },
        )

    # ------------------------------------------------------------------ expiry

    async def _sweep_loop(self) -> None:
        timeout = self.limits.effective_peer_timeout
        while True:
            await asyncio.sleep(timeout / 2)
            try:
                now = self._now()
                self._expire_silent_peers(now - timeout)
                self._forget_idle_addresses(now)
            except Exception:
                logger.exception("tracker: expiry sweep failed")

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


async def serve_tracker(host: str = "127.0.0.1", port: int = 0, **limits: Any) -> TrackerServer:
    """Start a :class:`TrackerServer` and return it (close it with ``aclose()`` or ``async with``).

    ``limits`` are :class:`TrackerLimits` fields (``max_peers_per_swarm=...``, ``interval=...``).
    """
    server = TrackerServer(host, port, **limits)
    await server.start()
    return server


def _print_ready(server: TrackerServer) -> None:
    print(f"tracker: {server.url}", flush=True)
    print("Ctrl-C to stop", flush=True)


async def run_tracker_forever(
    host: str = "127.0.0.1",
    port: int = 8000,
    *,
    on_ready: Callable[[TrackerServer], None] | None = _print_ready,
    **limits: Any,
) -> None:
    """Serve a tracker until cancelled (for ``p2ploader tracker --port``).

    ``on_ready`` is called once the socket is bound (by default it prints the URL).
    """
    async with TrackerServer(host, port, **limits) as server:
        if on_ready is not None:
            on_ready(server)
        await asyncio.Event().wait()
