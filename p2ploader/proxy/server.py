"""The proxy's lifecycle: a loader, the backend and the ASGI app served by uvicorn in this process.

:class:`HlsProxy` opens a :class:`~p2ploader.aio.loader.HybridLoader` on the stream, builds the app
(:func:`~p2ploader.proxy.app.create_app`) and runs ``uvicorn.Server.serve()`` as a task of the
running event loop; the port is read from the listening socket, so ``port=0`` picks a free one.
uvicorn is told not to touch logging configuration or signal handlers: the proxy is a guest in the
caller's program (``Ctrl+C`` reaches the caller as usual).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import AsyncIterator, Callable, Generator
from types import TracebackType
from typing import Self

import uvicorn

from p2ploader.aio.loader import HybridLoader, open_loader
from p2ploader.config import LoaderConfig
from p2ploader.errors import BindError, UsageError
from p2ploader.proxy import paths
from p2ploader.proxy.app import create_app
from p2ploader.proxy.backend import ProxyBackend, ProxyStatistics, ServedSegment
from p2ploader.proxy.security import HostPolicy, check_bind_host
from p2ploader.status import tracker_summary, tracker_warning, warning_shown_by_caller

__all__ = ["HlsProxy", "open_proxy", "run_proxy_forever"]

logger = logging.getLogger(__name__)

_START_TIMEOUT = 10.0
_STOP_TIMEOUT = 10.0


class _GuestServer(uvicorn.Server):
    """uvicorn's server without its signal handlers, telling us when it listens."""

    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self.listening = asyncio.Event()

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=sockets)
        if self.started:
            self.listening.set()


class HlsProxy:
    """A local HLS proxy: any player opening :attr:`url` plays the stream through a hybrid loader.

    ``url``, ``config``, ``rendition`` and ``seed`` are :func:`~p2ploader.aio.loader.open_loader`'s.
    ``host`` must be a loopback address unless ``allow_remote`` is true (see
    :mod:`p2ploader.proxy.security`); ``allowed_hosts`` adds Host header names to accept.
    ``lookahead`` is how many segments the player is assumed to fetch ahead of its playhead (None:
    ``config.required_segments_priority``, so requests never wait for peers; see docs/proxy.md);
    ``segment_timeout`` bounds how long one segment request may take (then 504). ``pin_rendition``
    lists only the starting variant in the master playlist, so the loader never switches (for
    players that read every variant, such as ffmpeg, or to force one quality). For a live LL-HLS
    stream, ``block_timeout`` (seconds; None: three target durations) bounds how long a blocking
    reload or a part request is held and ``max_held_requests`` how many are held at once (see
    :mod:`p2ploader.proxy.low_latency`); ``p2p_parts`` takes its parts from other p2ploader
    viewers too (see :class:`~p2ploader.proxy.backend.ProxyBackend`).
    """

    def __init__(
        self,
        url: str,
        *,
        config: LoaderConfig | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        rendition: str | int | None = None,
        seed: int | None = None,
        allow_remote: bool = False,
        allowed_hosts: tuple[str, ...] = (),
        lookahead: int | None = None,
        segment_timeout: float = 30.0,
        pin_rendition: bool = False,
        block_timeout: float | None = None,
        max_held_requests: int = 64,
        p2p_parts: bool = False,
    ) -> None:
        check_bind_host(host, allow_remote=allow_remote)
        if not 0 <= port <= 65535:
            raise UsageError(f"port must be 0..65535, got {port}")
        self.source_url = url
        self._config = config
        self._host = host
        self._requested_port = port
        self._rendition = rendition
        self._seed = seed
        self._policy = HostPolicy(host, allow_remote=allow_remote, extra_hosts=allowed_hosts)
        self._lookahead = lookahead
        self._segment_timeout = segment_timeout
        self._pin_rendition = pin_rendition
        self._block_timeout = block_timeout
        self._max_held_requests = max_held_requests
        self._p2p_parts = p2p_parts
        self._stack = contextlib.AsyncExitStack()
        self._loader: HybridLoader | None = None
        self._backend: ProxyBackend | None = None
        self._server: _GuestServer | None = None
        self._serve_task: asyncio.Task[None] | None = None
        self._port: int | None = None
        self._address: str | None = None
        self._state = "new"

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        """Open the loader, then listen. Raises what the loader raises (bad URL, playlist errors),
        and :class:`~p2ploader.errors.BindError` when the address cannot be bound (a port in use)."""
        if self._state != "new":
            raise UsageError(f"the proxy was already started ({self._state})")
        self._state = "starting"
        try:
            self._loader = await self._stack.enter_async_context(
                open_loader(self.source_url, config=self._config, rendition=self._rendition, seed=self._seed)
            )
            backend = self._backend = ProxyBackend(
                self._loader,
                lookahead=self._lookahead,
                segment_timeout=self._segment_timeout,
                pin_rendition=self._pin_rendition,
                block_timeout=self._block_timeout,
                max_held_requests=self._max_held_requests,
                p2p_parts=self._p2p_parts,
            )
            self._stack.push_async_callback(backend.aclose)
            backend.start()
            await self._listen(backend)
        except BaseException:
            await self.aclose()
            raise
        self._state = "running"

    async def _listen(self, backend: ProxyBackend) -> None:
        config = uvicorn.Config(
            create_app(backend, self._policy),
            host=self._host,
            port=self._requested_port,
            log_level="warning",
            lifespan="on",
            log_config=None,
            access_log=False,
            proxy_headers=False,
            server_header=False,
            timeout_graceful_shutdown=2,
        )
        server = self._server = _GuestServer(config)
        task = self._serve_task = asyncio.get_running_loop().create_task(
            _serve(server), name="p2ploader-proxy-server"
        )
        listening = asyncio.ensure_future(server.listening.wait())
        try:
            await asyncio.wait({listening, task}, timeout=_START_TIMEOUT, return_when=asyncio.FIRST_COMPLETED)
        finally:
            listening.cancel()
        if not server.listening.is_set():
            failure = task.exception() if task.done() else None
            if failure is not None:
                raise failure
            raise BindError(self._host, self._requested_port, f"not listening after {_START_TIMEOUT:g} s")
        sockets = [s for srv in server.servers for s in (srv.sockets or ())]
        address = sockets[0].getsockname()
        # A name such as "localhost" may bind several addresses (each with its own port when
        # port=0): the URL names the address whose port we report.
        self._address, self._port = str(address[0]), int(address[1])

    async def aclose(self) -> None:
        """Stop listening, close the loaders. Requests still waiting get 503. Idempotent."""
        if self._state == "closed":
            return
        self._state = "closed"
        server, task = self._server, self._serve_task
        if server is not None:
            server.should_exit = True
        try:
            # Closing the loaders first makes waiting requests end at once (503).
            await self._stack.aclose()
        finally:
            if task is not None:
                try:
                    await asyncio.wait_for(asyncio.shield(task), _STOP_TIMEOUT)
                except TimeoutError:
                    if server is not None:
                        server.force_exit = True
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError, Exception):
                        await task
                except Exception:  # the server already failed: nothing left to stop
                    logger.debug("proxy server ended with an error", exc_info=True)

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    # ------------------------------------------------------------------ access

    @property
    def host(self) -> str:
        return self._host

    @property
    def port(self) -> int:
        """The port the proxy listens on (known once started)."""
        if self._port is None:
            raise UsageError("the proxy is not started")
        return self._port

    @property
    def base_url(self) -> str:
        """``http://<address>:<port>``: the bound address (127.0.0.1 for a wildcard bind)."""
        port = self.port
        host = self._address or self._host
        if host in ("0.0.0.0", "", "::"):
            host = "127.0.0.1"
        if ":" in host:
            host = f"[{host}]"
        return f"http://{host}:{port}"

    @property
    def url(self) -> str:
        """The master playlist URL to open in a player."""
        return self.base_url + paths.MASTER_PATH

    @property
    def loader(self) -> HybridLoader:
        """The loader playing the stream's variants."""
        if self._loader is None:
            raise UsageError("the proxy is not started")
        return self._loader

    def statistics(self) -> ProxyStatistics:
        if self._backend is None:
            raise UsageError("the proxy is not started")
        return self._backend.statistics()

    def add_listener(self, listener: Callable[[ServedSegment], None]) -> Callable[[], None]:
        """Call ``listener`` with every segment delivered to the player; returns a remover."""
        if self._backend is None:
            raise UsageError("the proxy is not started")
        return self._backend.add_listener(listener)


async def _serve(server: uvicorn.Server) -> None:
    host, port = server.config.host, server.config.port
    try:
        await server.serve()
    except SystemExit as exc:  # uvicorn exits when it cannot bind; never let that reach the loop
        # uvicorn calls sys.exit() inside its ``except OSError``: the bind failure is the context.
        cause = exc.__context__
        if isinstance(cause, OSError):
            raise BindError.from_os_error(host, port, cause) from cause
        raise BindError(host, port, "the server stopped while starting") from exc


class _DropBindFailureLog(logging.Filter):
    """uvicorn logs a failed bind (the ``OSError`` itself as the message) before exiting; the proxy
    raises it as :class:`BindError` instead, so that the caller decides what is shown, once."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not isinstance(record.msg, OSError)


logging.getLogger("uvicorn.error").addFilter(_DropBindFailureLog())


@contextlib.asynccontextmanager
async def open_proxy(
    url: str,
    *,
    config: LoaderConfig | None = None,
    host: str = "127.0.0.1",
    port: int = 0,
    rendition: str | int | None = None,
    seed: int | None = None,
    allow_remote: bool = False,
    allowed_hosts: tuple[str, ...] = (),
    lookahead: int | None = None,
    segment_timeout: float = 30.0,
    pin_rendition: bool = False,
    block_timeout: float | None = None,
    max_held_requests: int = 64,
    p2p_parts: bool = False,
) -> AsyncIterator[HlsProxy]:
    """Run an :class:`HlsProxy` (same arguments) for the ``async with`` block; its
    :attr:`~HlsProxy.url` is the master playlist to open in a player."""
    proxy = HlsProxy(
        url,
        config=config,
        host=host,
        port=port,
        rendition=rendition,
        seed=seed,
        allow_remote=allow_remote,
        allowed_hosts=allowed_hosts,
        lookahead=lookahead,
        segment_timeout=segment_timeout,
        pin_rendition=pin_rendition,
        block_timeout=block_timeout,
        max_held_requests=max_held_requests,
        p2p_parts=p2p_parts,
    )
    async with proxy:
        yield proxy


async def run_proxy_forever(
    url: str,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    config: LoaderConfig | None = None,
    rendition: str | int | None = None,
    allow_remote: bool = False,
    pin_rendition: bool = False,
    lookahead: int | None = None,
    p2p_parts: bool = False,
    print_line: Callable[[str], None] = print,
    statistics_interval: float = 10.0,
) -> None:
    """Run a proxy until cancelled (for a ``p2ploader proxy`` command): print the URL to open in a
    player, then a line of figures every ``statistics_interval`` seconds. The keyword arguments are
    :class:`HlsProxy`'s; errors opening the stream or binding the address are raised."""
    with warning_shown_by_caller():  # the status lines print it, as one line
        async with open_proxy(
            url,
            config=config,
            host=host,
            port=port,
            rendition=rendition,
            allow_remote=allow_remote,
            pin_rendition=pin_rendition,
            lookahead=lookahead,
            p2p_parts=p2p_parts,
        ) as proxy:
            kind = "live" if proxy.loader.is_live else "VOD"
            print_line(f"p2ploader proxy for {url} ({kind})")
            print_line(f"open in a player: {proxy.url}")
            print_line(f"  ffplay {proxy.url}")
            print_line(f"  mpv {proxy.url}")
            print_line(f"  vlc {proxy.url}")
            await _print_status_forever(proxy, print_line, statistics_interval)


async def _print_status_forever(
    proxy: HlsProxy, print_line: Callable[[str], None], statistics_interval: float
) -> None:
    """A line of figures every ``statistics_interval`` seconds, and the "P2P is off" warning once while
    it lasts."""
    warned: str | None = None
    while True:
        await asyncio.sleep(statistics_interval)
        s = proxy.statistics()
        trackers = s.loader.trackers
        print_line(
            f"  segments={s.segments_served} http={s.loader.http_bytes} p2p={s.loader.p2p_bytes} "
            f"peers={s.loader.peers_connected} rendition={s.loader.rendition} errors={s.errors} "
            f"trackers={tracker_summary(trackers).replace(' ', '-')}"
            + (
                f" parts_bytes={s.relayed_bytes} parts_p2p={s.relayed_p2p_bytes}"
                if s.low_latency_relays or s.relayed_bytes
                else ""
            )
        )
        # Said once while it lasts (the player still plays, over HTTP: only P2P is off).
        warning = tracker_warning(trackers)
        if warning is not None and warned is None:
            print_line(f"warning: {warning}")
        warned = warning
