"""An embedded WebTorrent-compatible WebSocket tracker on ``websockets``' asyncio server.

The protocol (what is accepted, relayed, refused, rate limited, expired) is decided by the sans-IO
:class:`~p2ploader.tracker.state.TrackerState`; its module doc is the tracker's theory of
operation. This module keeps the I/O only:

* **Connections.** ``websockets`` accepts them (``max_connections``: HTTP 503 beyond it; frames over
  ``max_message_size`` close the connection with 1009). One handler task per connection reads
  frames and hands each one to :meth:`TrackerState.handle` with the clock's time, synchronously (no
  ``await`` between reading the state and changing it), so no locks are needed.
* **Outboxes.** What the state decides to send is queued per connection and written by a writer
  task made when a message is queued and dropped once all is written, so a slow reader never
  blocks the relay for others and an idle connection costs neither a queue nor a task. When the
  state drops a slow reader (:class:`~p2ploader.tracker.state.Abort`), its queue is freed and its
  TCP connection aborted at once; after too many malformed requests
  (:class:`~p2ploader.tracker.state.Close`) the queued failures get up to a second to leave before
  the close (1008).
* **Expiry.** A task calls :meth:`TrackerState.sweep` every half ``peer_timeout``.
* ``GET /stats.json`` (without an Upgrade header) returns :meth:`TrackerServer.statistics` as JSON.

Example::

    async with TrackerServer() as tracker:      # binds 127.0.0.1 on a free port
        url = tracker.url                       # ws://127.0.0.1:<port>
        ...
        print(tracker.statistics().messages_relayed)
"""

from __future__ import annotations

import asyncio
import contextlib
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

from p2ploader.errors import BindError, UsageError
from p2ploader.tracker.state import (
    Abort,
    Close,
    Output,
    Send,
    TrackerConnection,
    TrackerLimits,
    TrackerState,
    TrackerStatistics,
    address_key,
)

__all__ = [
    "TrackerLimits",
    "TrackerServer",
    "TrackerStatistics",
    "address_key",
    "run_tracker_forever",
    "serve_tracker",
]

logger = logging.getLogger(__name__)

_FLUSH_BEFORE_CLOSE: Final = 1.0  # seconds to let queued failure messages out before closing
_CLOSE_WAIT: Final = 5.0  # seconds aclose() waits for connection handlers (close_timeout is 2 s)
_HANDSHAKE_DONE: Final = Request("/", Headers())


@attrs.define(eq=False)
class _Link:
    """The I/O side of one connection: its socket, its outbox and the task writing it."""

    ws: ServerConnection
    conn: TrackerConnection
    outbox: asyncio.Queue[str] | None = None
    writer: asyncio.Task[None] | None = None


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
        self.state = TrackerState(self.limits)
        """The sans-IO tracker (swarms, peers, limits, outbox accounting)."""
        self._server: Server | None = None
        self._bound: tuple[str, int] | None = None  # (host, port) of the listening socket
        self._sweeper: asyncio.Task[None] | None = None
        self._closed = False
        self._links: dict[TrackerConnection, _Link] = {}
        self._handlers: set[asyncio.Task[Any]] = set()  # connection handlers running

    def _now(self) -> float:
        return self._clock() if self._clock is not None else asyncio.get_running_loop().time()

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

    def statistics(self) -> TrackerStatistics:
        return self.state.statistics()

    def host_client_tree(self, info_hash: bytes) -> dict[bytes, tuple[bytes, ...]]:
        """Host/client swarms: each host's raw peer id and its clients' (empty for a mesh swarm)."""
        return self.state.host_client_tree(info_hash)

    def peer_ids(self, info_hash: bytes) -> frozenset[bytes]:
        """The peer ids currently in the swarm ``info_hash`` (raw 20-byte ids)."""
        return self.state.peer_ids(info_hash)

    # ------------------------------------------------------------------ connections

    def _process_request(self, connection: ServerConnection, request: Request) -> Response | None:
        path = request.path.split("?", 1)[0]
        if path.rstrip("/").endswith("/stats.json") and "Upgrade" not in request.headers:
            stats = self.statistics()
            figures = {**attrs.asdict(stats), "messages_relayed": stats.messages_relayed}
            body = json.dumps(figures, sort_keys=True).encode()
            headers = Headers([("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
            return Response(200, "OK", headers, body)
        if not self.state.has_room():
            return connection.respond(503, "tracker is full\n")
        return None

    async def _handle(self, ws: ServerConnection) -> None:
        if not self.state.has_room():  # raced past the handshake check
            await ws.close(1013, "tracker is full")
            return
        conn = self.state.open_connection(ws.remote_address, now=self._now())
        link = self._links[conn] = _Link(ws=ws, conn=conn)
        # The handshake's request and response (their headers) are not needed any more: a few KiB
        # per connection. ``websockets`` reads ``request is None`` as "handshake not done", so a
        # shared empty request takes its place.
        ws.request, ws.response = _HANDSHAKE_DONE, None
        handler = asyncio.current_task()
        if handler is not None:
            self._handlers.add(handler)
        try:
            async for frame in ws:
                close = self._perform(self.state.handle(conn, frame, now=self._now(), rng=self._rng))
                if conn.closed:  # dropped as a slow reader while we handled its request
                    break
                if close is not None:
                    if link.outbox is not None:
                        with contextlib.suppress(TimeoutError):
                            await asyncio.wait_for(link.outbox.join(), _FLUSH_BEFORE_CLOSE)
                    await ws.close(close.code, close.reason)
                    break
        except ConnectionClosed:
            pass
        except Exception:
            logger.exception("tracker: connection handler failed")
        finally:
            if handler is not None:
                self._handlers.discard(handler)
            self._perform(self.state.connection_closed(conn, now=self._now()))
            del self._links[conn]
            writer = link.writer
            if writer is not None:
                writer.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await writer

    def _perform(self, outputs: list[Output]) -> Close | None:
        """Queue what the state sends, abort the slow readers it drops; the close it asks for."""
        close: Close | None = None
        for output in outputs:
            link = self._links.get(output.connection)
            if isinstance(output, Close):
                close = output
            elif link is None:
                continue
            elif isinstance(output, Send):
                self._queue(link, output.text)
            elif isinstance(output, Abort):
                self._empty_outbox(link)
                transport = getattr(link.ws, "transport", None)
                if transport is not None:
                    transport.abort()
        return close

    def _queue(self, link: _Link, text: str) -> None:
        outbox = link.outbox
        if outbox is None:
            # The state bounds the outbox (``send_queue_size``, ``max_outbox_bytes``): never full here.
            outbox = link.outbox = asyncio.Queue()
        outbox.put_nowait(text)
        if link.writer is None:
            link.writer = asyncio.get_running_loop().create_task(self._write_loop(link))

    async def _write_loop(self, link: _Link) -> None:
        """Write what is queued for ``link``, then end (``_queue`` starts another when needed)."""
        try:
            while (outbox := link.outbox) is not None and not outbox.empty():
                text = outbox.get_nowait()
                self.state.message_taken(link.conn, text)
                try:
                    await link.ws.send(text)
                finally:
                    outbox.task_done()
        except Exception as exc:  # ConnectionClosed, or anything else: nothing more can be sent
            if not isinstance(exc, ConnectionClosed):
                logger.exception("tracker: sending failed")
            self._empty_outbox(link)
            self.state.outbox_discarded(link.conn)
        finally:
            # No await between the emptiness check above and here: a message queued from now on
            # finds no writer and starts one.
            link.writer = None
            if link.outbox is not None and link.outbox.empty():
                link.outbox = None

    @staticmethod
    def _empty_outbox(link: _Link) -> None:
        """Discard what is queued for ``link`` (also lets a waiting flush finish)."""
        while link.outbox is not None and not link.outbox.empty():
            link.outbox.get_nowait()
            link.outbox.task_done()

    # ------------------------------------------------------------------ expiry

    async def _sweep_loop(self) -> None:
        timeout = self.limits.effective_peer_timeout
        while True:
            await asyncio.sleep(timeout / 2)
            try:
                self._perform(self.state.sweep(now=self._now()))
            except Exception:
                logger.exception("tracker: expiry sweep failed")


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
