"""A WebTorrent WebSocket tracker client: the I/O around the sans-IO
:class:`~p2ploader.core.tracker_client_protocol.TrackerClientProtocol`, whose module doc is the
client's theory of operation (announces, intervals, back-off, offer books, glare, failures).

This module keeps what needs the event loop:

* one task per tracker URL holding its WebSocket (``connect_timeout``, ``max_message_size``), fed
  to the machine frame by frame, with a writer task draining what the machine sends;
* one loop timer at the machine's deadline (``now`` clamped to it: a loop may fire a timer a little
  early);
* the caller's callbacks: ``make_offers`` (shielded: every offer made is answered or reported
  expired), ``on_offer`` and ``on_answer`` in their own tasks, ``on_offer_expired`` and the status
  callbacks. Nothing raises out of these tasks: exceptions from the network or the callbacks are
  logged, so the loader keeps playing over HTTP whatever the trackers do.

:meth:`TrackerClient.aclose` stops announcing, sends ``event: "stopped"`` to every tracker that
accepted us (each step bounded by ``close_timeout``), closes the sockets and reports the still
pending offers as expired. Every callback runs on the event loop of :meth:`TrackerClient.start`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import secrets
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any
from urllib.parse import urlsplit

import attrs
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from p2ploader.aio.tracker_reasons import describe_close, describe_connect_error, describe_connection_closed
from p2ploader.core.tracker_client_protocol import (
    AnswerOffer,
    Connect,
    DeliverAnswer,
    Disconnect,
    MakeOffers,
    Offer,
    OfferExpired,
    ReportConnected,
    ReportFailed,
    SendMessage,
    SwarmUpdated,
    TrackerClientProtocol,
    TrackerClientSettings,
    TrackerClientStatistics,
    TrackerExtension,
    TrackerStatus,
    backoff_delay,
)
from p2ploader.core.tracker_wire import ID_LENGTH, decode_id, encode_id
from p2ploader.errors import UsageError

__all__ = [
    "ID_LENGTH",
    "Offer",
    "TrackerClient",
    "TrackerClientStatistics",
    "TrackerStatus",
    "backoff_delay",
    "decode_id",
    "encode_id",
    "new_offer_id",
]

logger = logging.getLogger(__name__)


def new_offer_id(rng: random.Random | None = None) -> bytes:
    """A fresh random 20-byte offer id (cryptographically random unless ``rng`` is given)."""
    return rng.randbytes(ID_LENGTH) if rng is not None else secrets.token_bytes(ID_LENGTH)


def _positive(name: str, value: float) -> None:
    if not value > 0:
        raise UsageError(f"{name} must be positive, not {value!r}")


@attrs.define(eq=False)
class _Link:
    """One open WebSocket and what waits to be written to it."""

    ws: ClientConnection
    outbox: asyncio.Queue[str] = attrs.Factory(asyncio.Queue)
    disconnect: bool = False  # the machine asked to close it


class TrackerClient:
    """Announces one swarm to WebTorrent trackers and relays offers and answers (the protocol:
    :mod:`p2ploader.core.tracker_client_protocol`).

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
        _positive("connect_timeout", connect_timeout)
        _positive("close_timeout", close_timeout)
        self.settings = TrackerClientSettings(
            offers_per_announce=offers_per_announce,
            max_pending_offers=max_pending_offers,
            offer_timeout=offer_timeout,
            default_interval=default_interval,
            min_announce_interval=min_announce_interval,
            max_announce_interval=max_announce_interval,
            backoff_min=backoff_min,
            backoff_max=backoff_max,
            backoff_jitter=backoff_jitter,
            dedup_window=dedup_window,
            max_concurrent_signalling=max_concurrent_signalling,
            max_message_size=max_message_size,
        )
        self.info_hash = info_hash
        self.peer_id = peer_id
        self.connect_timeout = connect_timeout
        self.close_timeout = close_timeout
        self.max_message_size = max_message_size
        self._make_offers = make_offers
        self._on_offer = on_offer
        self._on_answer = on_answer
        self._on_offer_expired = on_offer_expired
        self._on_swarm_update = on_swarm_update
        # Extension fields (host/client topology): merged into every announce but "stopped"; plain
        # trackers ignore unknown keys. The tracker's ``p2ploader`` object goes to on_tracker_extra.
        self._on_tracker_extra = on_tracker_extra
        self._on_connected = on_connected
        self._on_failed = on_failed
        self.protocol = TrackerClientProtocol(
            urls,
            info_hash=info_hash,
            peer_id=peer_id,
            settings=self.settings,
            rng=rng or random.Random(),
            wants_peers=wants_peers,
            announce_extra=announce_extra,
        )
        """The sans-IO machine this client drives."""
        self._links: dict[str, _Link] = {}
        self._connections: dict[str, asyncio.Task[None]] = {}
        self._signalling: set[asyncio.Task[None]] = set()
        self._callbacks: set[asyncio.Task[None]] = set()
        self._making: set[asyncio.Task[None]] = set()  # make_offers calls in flight
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at: float | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._started = False
        self._closing = False

    # ------------------------------------------------------------------ public API

    @property
    def announce_urls(self) -> tuple[str, ...]:
        return self.protocol.urls

    async def start(self) -> None:
        """Start one background connection per tracker URL; returns without waiting for them."""
        if self._started or self._closing:
            raise UsageError("a TrackerClient can be started once")
        self._started = True
        self._loop = asyncio.get_running_loop()
        self.protocol.start(now=self._now())
        self._pump()

    async def aclose(self) -> None:
        """Send ``stopped`` to every connected tracker, close the sockets, expire pending offers.

        Bounded in time (each step waits at most ``close_timeout``) and never raises. Idempotent.
        """
        if self._closing:
            return
        self._closing = True
        if self._loop is None:
            return
        self.protocol.close(now=self._now())
        self._pump()  # queues "stopped" where the tracker accepted us, reports pending offers expired
        flushing = [link.outbox.join() for link in self._links.values()]
        if flushing:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.gather(*flushing), self.close_timeout)
        for task in list(self._connections.values()):
            task.cancel()
        await asyncio.gather(*self._connections.values(), return_exceptions=True)
        for task in list(self._signalling):
            task.cancel()
        await asyncio.gather(*self._signalling, return_exceptions=True)
        if self._making:  # their offers are reported expired as soon as they are made
            await asyncio.wait(set(self._making), timeout=self.close_timeout)
        if self._callbacks:
            await asyncio.wait(set(self._callbacks), timeout=self.close_timeout)
        for task in list(self._callbacks):
            task.cancel()
        await asyncio.gather(*self._callbacks, return_exceptions=True)
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    async def __aenter__(self) -> TrackerClient:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    def announce_now(self) -> None:
        """Announce (with fresh offers) as soon as possible on every connected tracker, but not
        sooner than a second after the previous announce: e.g. a client whose host left looks for
        another one at once instead of a whole interval later."""
        if self._loop is None or self._closing:
            return
        self.protocol.announce_now(now=self._now())
        self._pump()

    def forget_peer(self, peer_id: bytes) -> None:
        """Stop suppressing offers and answers from ``peer_id`` (e.g. its connection failed)."""
        self.protocol.forget_peer(peer_id)

    def statistics(self) -> TrackerClientStatistics:
        return self.protocol.statistics()

    # ------------------------------------------------------------------ driving the machine

    def _now(self) -> float:
        assert self._loop is not None
        return self._loop.time()

    def _pump(self) -> None:
        """Perform what the machine asks for, then re-arm the one timer at its deadline."""
        for effect in self.protocol.effects():
            try:
                self._perform(effect)
            except Exception:  # a bug in here (or a callback's) must not end the client
                logger.exception("tracker client: performing %s failed", type(effect).__name__)
        deadline = self.protocol.get_timer()
        if deadline == self._timer_at and (self._timer is not None or deadline is None):
            return
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._timer_at = deadline
        if deadline is not None and self._loop is not None:
            self._timer = self._loop.call_at(deadline, self._on_timer)

    def _on_timer(self) -> None:
        deadline = self._timer_at
        self._timer = None
        self._timer_at = None
        # A loop may fire a timer a little early: the machine sees at least the deadline.
        now = max(self._now(), deadline) if deadline is not None else self._now()
        self.protocol.handle_timer(now=now)
        self._pump()

    def _perform(self, effect: object) -> None:
        assert self._loop is not None
        if isinstance(effect, SendMessage):
            link = self._links.get(effect.url)
            if link is not None:
                link.outbox.put_nowait(effect.text)
        elif isinstance(effect, Connect):
            if not self._closing and effect.url not in self._connections:
                task = self._loop.create_task(self._connection(effect.url), name=f"tracker {effect.url}")
                self._connections[effect.url] = task
        elif isinstance(effect, Disconnect):
            link = self._links.get(effect.url)
            if link is not None:
                link.disconnect = True
        elif isinstance(effect, MakeOffers):
            # The caller's offers are peer connections: never cancelled by us, so that every offer
            # it makes is answered or reported expired, never silently dropped.
            making = self._loop.create_task(self._call_make_offers(effect))
            self._making.add(making)
            making.add_done_callback(self._making.discard)
        elif isinstance(effect, AnswerOffer):
            self._spawn(self._signalling, self._answer_offer(effect))
        elif isinstance(effect, DeliverAnswer):
            self._spawn(self._signalling, self._deliver_answer(effect))
        elif isinstance(effect, OfferExpired):
            if self._on_offer_expired is not None:
                self._spawn(
                    self._callbacks,
                    self._guarded(self._on_offer_expired(effect.offer_id), "on_offer_expired"),
                )
        elif isinstance(effect, SwarmUpdated):
            if self._on_swarm_update is not None:
                self._call(self._on_swarm_update, effect.complete, effect.incomplete)
        elif isinstance(effect, TrackerExtension):
            if self._on_tracker_extra is not None:
                self._call(self._on_tracker_extra, effect.data)
        elif isinstance(effect, ReportConnected):
            if self._on_connected is not None:
                self._call(self._on_connected, effect.url)
        elif isinstance(effect, ReportFailed) and self._on_failed is not None:
            self._call(self._on_failed, effect.url, effect.reason, effect.retry_in)

    @staticmethod
    def _call(callback: Callable[..., None], *args: object) -> None:
        try:
            callback(*args)
        except Exception:  # the caller's bug must not end the session
            logger.exception("tracker client: %s failed", getattr(callback, "__name__", "a callback"))

    # ------------------------------------------------------------------ callbacks in tasks

    async def _call_make_offers(self, request: MakeOffers) -> None:
        made: list[Any] = []
        try:
            made = list(await self._make_offers(request.count))
        except Exception:
            logger.exception("tracker %s: make_offers failed; announcing without offers", request.url)
        self.protocol.offers_made(request, made, now=self._now())
        self._pump()

    async def _answer_offer(self, request: AnswerOffer) -> None:
        answer: str | None = None
        try:
            answer = await self._on_offer(request.peer_id, request.offer_id, request.sdp)
        except asyncio.CancelledError:
            raise
        except Exception:
            logger.exception("tracker %s: on_offer failed", request.url)
        self.protocol.answer_ready(request, answer if isinstance(answer, str) else None, now=self._now())
        self._pump()

    async def _deliver_answer(self, answer: DeliverAnswer) -> None:
        try:
            await self._on_answer(answer.peer_id, answer.offer_id, answer.sdp)
        except asyncio.CancelledError:
            raise
        except Exception:
            logger.exception("tracker client: on_answer failed")
        finally:
            self.protocol.signalling_finished()

    @staticmethod
    async def _guarded(work: Awaitable[Any], what: str) -> None:
        try:
            await work
        except asyncio.CancelledError:
            raise
        except Exception:
            logger.exception("tracker client: %s failed", what)

    def _spawn(self, bucket: set[asyncio.Task[None]], work: Awaitable[None]) -> None:
        assert self._loop is not None

        async def run() -> None:
            await work

        task = self._loop.create_task(run())
        bucket.add(task)
        task.add_done_callback(bucket.discard)

    # ------------------------------------------------------------------ one tracker connection

    async def _connection(self, url: str) -> None:
        """Connect, feed frames to the machine until the socket ends, report why (never raises)."""
        try:
            try:
                ws = await connect(
                    url,
                    open_timeout=self.connect_timeout,
                    close_timeout=self.close_timeout,
                    max_size=self.max_message_size,
                )
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                reason = describe_connect_error(exc, timeout=self.connect_timeout)
                logger.info("tracker %s: cannot connect: %s (%r)", url, reason, exc)
                del self._connections[url]
                self.protocol.connect_failed(url, reason, now=self._now())
                self._pump()
                return
            await self._serve(url, ws)
        finally:
            if self._connections.get(url) is asyncio.current_task():
                del self._connections[url]

    async def _serve(self, url: str, ws: ClientConnection) -> None:
        link = self._links[url] = _Link(ws)
        assert self._loop is not None
        writer = self._loop.create_task(self._write_loop(url, link), name=f"tracker writer {url}")
        reason: str | None = None
        try:
            self.protocol.connected(url, now=self._now())
            self._pump()
            async for frame in ws:
                try:
                    self.protocol.message_received(url, frame, now=self._now())
                except Exception:  # a bug in here must not end the session
                    logger.exception("tracker %s: error while handling a message", url)
                self._pump()
                if link.disconnect:
                    break
        except ConnectionClosed as exc:
            reason = describe_connection_closed(exc)
            logger.info("tracker %s: connection closed: %s", url, exc)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            reason = f"session failed: {type(exc).__name__}: {exc}"
            logger.exception("tracker %s: session failed", url)
        finally:
            if self._links.get(url) is link:
                del self._links[url]
            # Leave the connection table before the machine may ask to connect again, and tell the
            # machine before any await: a cancelled close must not leave it believing it is open.
            if self._connections.get(url) is asyncio.current_task():
                del self._connections[url]
            self.protocol.closed(url, reason or _describe_end(ws), now=self._now())
            self._pump()
            writer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await writer
            self._drain(link)
            with contextlib.suppress(Exception):
                await ws.close()

    async def _write_loop(self, url: str, link: _Link) -> None:
        while True:
            text = await link.outbox.get()
            try:
                await link.ws.send(text)
            except (ConnectionClosed, OSError) as exc:
                logger.debug("tracker %s: send failed: %s", url, exc)
                self._drain(link)
                return
            finally:
                link.outbox.task_done()

    @staticmethod
    def _drain(link: _Link) -> None:
        """Forget what was not sent (also lets a waiting flush finish)."""
        while not link.outbox.empty():
            link.outbox.get_nowait()
            link.outbox.task_done()


def _describe_end(ws: ClientConnection) -> str:
    """Why a connection whose reading loop ended without an exception ended."""
    received = ws.protocol.close_rcvd
    if received is None:
        return describe_close(None, "", received=False)
    return describe_close(received.code, received.reason, received=True)
