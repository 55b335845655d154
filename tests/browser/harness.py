"""Headless Chromium running P2P Media Loader 2.3.1, for the browser interop tests and benchmark.

Pieces (all on 127.0.0.1):

* :func:`browser_setup` finds Debian's ``chromium`` and the npm packages (hls.js,
  p2p-media-loader-core/-hlsjs 2.3.1, playwright-core) installed by ``.ci/run`` into
  :func:`node_modules_dir`; it returns the reason when something is missing, so tests can skip.
* :class:`StaticServer` serves the page (``tests/browser/web``) under ``/web/`` and the ES modules of
  the three player packages under ``/npm/<package>/``; the page maps bare imports with an import map.
* :class:`Browsers` runs ``web/driver.mjs`` (node + playwright-core): one headless Chromium, one
  browser context (one P2P Media Loader peer) per page. Pages report what the engine tells them
  (peers, bytes by source, uploads, segment hashes, stalls); :class:`PageState` accumulates it and
  :meth:`Browsers.wait_for` waits, bounded, on conditions over it.
"""

from __future__ import annotations

import asyncio
import contextlib
import http.server
import json
import os
import shutil
import threading
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Final
from urllib.parse import quote, unquote, urlsplit

import attrs

WEB_DIR: Final = Path(__file__).resolve().parent / "web"

NPM_PACKAGES: Final = {
    "hls.js": "1.7.4",
    "p2p-media-loader-core": "2.3.1",
    "p2p-media-loader-hlsjs": "2.3.1",
    "playwright-core": "1.65.1",
}
"""Pinned npm packages; ``.ci/run`` installs exactly these (``--ignore-scripts``: no browser download)."""

_SERVED_PACKAGES: Final = frozenset({"hls.js", "p2p-media-loader-core", "p2p-media-loader-hlsjs"})
_CONTENT_TYPES: Final = {
    ".html": "text/html; charset=utf-8",
    ".mjs": "text/javascript; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".map": "application/json",
}
_LAUNCH_TIMEOUT: Final = 60.0


def node_modules_dir() -> Path:
    """Where the npm packages are: ``$P2PLOADER_BROWSER_DIR`` or the cache directory .ci/run uses."""
    override = os.environ.get("P2PLOADER_BROWSER_DIR")
    base = (
        Path(override)
        if override
        else Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "p2ploader" / "browser"
    )
    return base / "node_modules"


def chromium_path() -> str | None:
    return os.environ.get("P2PLOADER_CHROMIUM") or shutil.which("chromium") or None


@attrs.frozen
class BrowserSetup:
    node: str
    chromium: str
    node_modules: Path


def browser_setup() -> BrowserSetup | str:
    """What the browser tests need, or the reason they cannot run here."""
    node = shutil.which("node")
    if node is None:
        return "node is not on PATH"
    chromium = chromium_path()
    if chromium is None:
        return "chromium is not installed (apt-get install chromium; .ci/run does it)"
    modules = node_modules_dir()
    for name, version in NPM_PACKAGES.items():
        package = modules / name / "package.json"
        try:
            found = json.loads(package.read_text()).get("version")
        except (OSError, ValueError):
            return f"npm package {name}@{version} is not installed in {modules.parent} (.ci/run installs it)"
        if found != version:
            return f"npm package {name} is {found} in {modules.parent}, the tests pin {version}"
    return BrowserSetup(node=node, chromium=chromium, node_modules=modules)


# ---------------------------------------------------------------------------------------------- page


class _StaticHandler(http.server.BaseHTTPRequestHandler):
    server: _StaticHTTPServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # quiet: the tests read the reports
        pass

    def do_GET(self) -> None:
        path = self.server.resolve(unquote(urlsplit(self.path).path))
        if path is None:
            self.send_error(404)
            return
        body = path.read_bytes()
        self.send_response(200)
        self.send_header("Content-Type", _CONTENT_TYPES.get(path.suffix, "application/octet-stream"))
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(body)


class _StaticHTTPServer(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, roots: Mapping[str, Path], host: str, port: int) -> None:
        super().__init__((host, port), _StaticHandler)
        self.roots = {prefix: root.resolve() for prefix, root in roots.items()}

    def resolve(self, url_path: str) -> Path | None:
        """The file a URL path names, never outside the mapped folders."""
        parts = [p for p in url_path.split("/") if p]
        if len(parts) < 2 or ".." in parts:
            return None
        if parts[0] == "web":
            root, rest = self.roots.get("web"), parts[1:]
        elif parts[0] == "npm" and len(parts) > 2 and parts[1] in _SERVED_PACKAGES:
            root, rest = self.roots.get("npm"), parts[1:]
        else:
            return None
        if root is None:
            return None
        path = root.joinpath(*rest).resolve()
        return path if path.is_file() and path.is_relative_to(root) else None


class StaticServer:
    """Serves the test page and the player's npm modules on ``host`` (127.0.0.1 unless given; the
    testbed serves them on a namespace's address) and ``port`` (a free one unless given)."""

    def __init__(self, node_modules: Path, *, host: str = "127.0.0.1", port: int = 0) -> None:
        self._httpd = _StaticHTTPServer({"web": WEB_DIR, "npm": node_modules}, host, port)
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, name="p2ploader-static", daemon=True
        )

    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host!s}:{port}"

    def page_url(self, config: Mapping[str, Any]) -> str:
        """The viewer page configured with ``config`` (``src``, ``core``, ``hls``; see player.mjs)."""
        return f"{self.url}/web/index.html?cfg={quote(json.dumps(config, separators=(',', ':')))}"

    def __enter__(self) -> StaticServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)


def page_config(
    src: str,
    trackers: list[str],
    *,
    level: int = 0,
    core: Mapping[str, Any] | None = None,
    hls: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """A page config: the stream, the trackers, no ICE servers (loopback only), one fixed level.

    The level is fixed (``startLevel`` and no ABR: ``capLevelToPlayerSize`` off and the level locked
    by the page) because each level is its own swarm; the Python peers load the same rendition.
    """
    return {
        "src": src,
        "level": level,
        "core": {"announceTrackers": trackers, "rtcConfig": {"iceServers": []}, **(core or {})},
        "hls": {"startLevel": level, **(hls or {})},
    }


# ---------------------------------------------------------------------------------------------- driver


@attrs.define
class PageState:
    """What one page reported so far."""

    name: str
    opened: bool = False
    closed: bool = False
    stats: dict[str, Any] = attrs.field(factory=dict)
    """The latest ``stats`` snapshot (bytes by source, uploads, peers, stalls, playback)."""
    segments: list[dict[str, Any]] = attrs.field(factory=list)
    """Every segment the engine validated: ``source``, ``url``, ``size``, ``sha256``."""
    loads: list[dict[str, Any]] = attrs.field(factory=list)
    """onSegmentLoaded: ``url``, ``source``, ``peerId`` (``None`` for HTTP), ``size``."""
    peer_events: list[dict[str, Any]] = attrs.field(factory=list)
    """onPeerConnect / onPeerClose: ``event`` (``connect``/``close``), ``peerId``, ``streamType``."""
    errors: list[str] = attrs.field(factory=list)
    """Fatal player errors, page exceptions and console errors, for assertion messages."""
    fatal: list[str] = attrs.field(factory=list)

    def stat(self, key: str, default: Any = 0) -> Any:
        return self.stats.get(key, default)

    @property
    def http_bytes(self) -> int:
        return int(self.stat("httpBytes"))

    @property
    def p2p_bytes(self) -> int:
        return int(self.stat("p2pBytes"))

    @property
    def uploaded_bytes(self) -> int:
        return int(self.stat("uploadedBytes"))

    def p2p_bytes_from(self, peer_id: str) -> int:
        return int(self.stat("p2pByPeer", {}).get(peer_id, 0))

    def uploaded_bytes_to(self, peer_id: str) -> int:
        return int(self.stat("uploadedByPeer", {}).get(peer_id, 0))

    def connected_peers(self) -> list[str]:
        return list(self.stat("peers", []))

    def summary(self) -> str:
        keys = (
            "httpBytes",
            "p2pBytes",
            "uploadedBytes",
            "peers",
            "stalls",
            "playing",
            "currentTime",
            "latency",
        )
        brief = {k: self.stats.get(k) for k in keys}
        return f"{self.name}: {brief} segments={len(self.segments)} errors={self.errors[-5:]}"


class Browsers:
    """One headless Chromium (through ``web/driver.mjs``) with any number of viewer pages.

    ``command_prefix`` runs the driver (and so Chromium) under another command, e.g. ``ip netns
    exec NAME`` to put the browser in a testbed namespace; ``chromium_args`` are added to Chromium's
    command line.
    """

    def __init__(
        self, setup: BrowserSetup, *, command_prefix: Sequence[str] = (), chromium_args: Sequence[str] = ()
    ) -> None:
        self._setup = setup
        self._command_prefix = tuple(command_prefix)
        self._chromium_args = tuple(chromium_args)
        self._process: asyncio.subprocess.Process | None = None
        self._reader: asyncio.Task[None] | None = None
        self._changed = asyncio.Event()
        self.pages: dict[str, PageState] = {}
        self.version = ""
        self.driver_errors: list[str] = []

    async def __aenter__(self) -> Browsers:
        env = dict(
            os.environ,
            P2PLOADER_BROWSER_NODE_MODULES=str(self._setup.node_modules),
            P2PLOADER_CHROMIUM=self._setup.chromium,
            P2PLOADER_CHROMIUM_ARGS=json.dumps(self._chromium_args),
        )
        self._process = await asyncio.create_subprocess_exec(
            *self._command_prefix,
            self._setup.node,
            str(WEB_DIR / "driver.mjs"),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=env,
            limit=1 << 22,
        )
        self._reader = asyncio.get_running_loop().create_task(self._read())
        try:
            await self.wait_for(lambda: bool(self.version), within=_LAUNCH_TIMEOUT, what="chromium to start")
        except BaseException:
            await self.__aexit__(None, None, None)
            raise
        return self

    async def __aexit__(self, *exc: object) -> None:
        process = self._process
        if process is None:
            return
        if process.stdin is not None and not process.stdin.is_closing():
            process.stdin.close()  # the driver closes the browser and exits when stdin ends
        try:
            await asyncio.wait_for(process.wait(), timeout=20)
        except TimeoutError:
            process.kill()
            await process.wait()
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
        self._process = None

    def _send(self, command: Mapping[str, Any]) -> None:
        assert self._process is not None and self._process.stdin is not None
        self._process.stdin.write(json.dumps(command).encode() + b"\n")

    async def open(self, name: str, url: str, *, grant_media: bool = True, within: float = 30.0) -> PageState:
        """Open a viewer page in a new browser context and wait until it has loaded.

        ``grant_media``: give the page microphone/camera permission (nothing is captured), without
        which Chromium hides its host addresses behind mDNS names and never offers loopback.
        """
        state = self.pages.setdefault(name, PageState(name))
        self._send({"cmd": "open", "name": name, "url": url, "grantMedia": grant_media})
        await self.wait_for(lambda: state.opened, within=within, what=f"page {name} to open")
        return state

    async def close(self, name: str, *, within: float = 15.0) -> None:
        """Close a page (its peer leaves the swarm as a closed tab does)."""
        state = self.pages[name]
        self._send({"cmd": "close", "name": name})
        await self.wait_for(lambda: state.closed, within=within, what=f"page {name} to close")

    async def wait_for(self, condition: Callable[[], bool], *, within: float, what: str) -> None:
        """Wait until ``condition()`` holds, re-checked on every report; fail after ``within`` s."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        while not condition():
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise AssertionError(f"timed out after {within:.0f} s waiting for {what}; {self.describe()}")
            if self._reader is not None and self._reader.done():
                raise AssertionError(f"the browser driver exited while waiting for {what}; {self.describe()}")
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), timeout=min(remaining, 0.5))

    def describe(self) -> str:
        lines = [page.summary() for page in self.pages.values()]
        if self.driver_errors:
            lines.append(f"driver: {self.driver_errors[-5:]}")
        return " | ".join(lines)

    async def _read(self) -> None:
        assert self._process is not None and self._process.stdout is not None
        stderr = self._process.stderr
        stderr_task = asyncio.get_running_loop().create_task(self._read_stderr()) if stderr else None
        try:
            async for raw in self._process.stdout:
                try:
                    message = json.loads(raw)
                except ValueError:
                    self.driver_errors.append(raw.decode(errors="replace").strip())
                    continue
                self._handle(message)
                self._changed.set()
        finally:
            self._changed.set()
            if stderr_task is not None:
                stderr_task.cancel()

    async def _read_stderr(self) -> None:
        assert self._process is not None and self._process.stderr is not None
        async for raw in self._process.stderr:
            self.driver_errors.append(raw.decode(errors="replace").strip())
            del self.driver_errors[:-50]

    def _handle(self, message: Mapping[str, Any]) -> None:
        event = message.get("event")
        if event == "launched":
            self.version = str(message.get("version"))
            return
        if event == "error":
            self.driver_errors.append(str(message.get("text")))
            return
        name = str(message.get("name"))
        state = self.pages.setdefault(name, PageState(name))
        if event == "opened":
            state.opened = True
        elif event == "closed":
            state.closed = True
        elif event in ("console", "pageerror"):
            state.errors.append(f"{event}: {message.get('text')}")
            del state.errors[:-50]
        elif event == "report":
            self._report(state, message.get("data") or {})

    @staticmethod
    def _report(state: PageState, data: Mapping[str, Any]) -> None:
        kind = data.get("type")
        if kind == "stats":
            state.stats = dict(data)
        elif kind == "segment":
            state.segments.append(dict(data))
        elif kind == "loaded":
            state.loads.append(dict(data))
        elif kind == "peer":
            state.peer_events.append(dict(data))
        elif kind == "fatal":
            state.fatal.append(str(data.get("details")))
            state.errors.append(f"fatal: {data.get('details')}")
        elif kind in ("tracker-error", "peer-error"):
            state.errors.append(f"{kind}: {data.get('message')}")
            del state.errors[:-50]


# ---------------------------------------------------------------------------------------------- serve


def serve_forever(host: str, port: int) -> None:
    """Serve the page and the npm modules on ``host:port`` until killed; prints ``serving: URL`` once
    the socket is bound (the testbed runs this in a namespace of its own)."""
    setup = browser_setup()
    if isinstance(setup, str):
        raise SystemExit(f"cannot serve the browser page: {setup}")
    with StaticServer(setup.node_modules, host=host, port=port) as server:
        print(f"serving: {server.url}", flush=True)
        threading.Event().wait()


if __name__ == "__main__":  # python -m tests.browser.harness HOST PORT
    import sys

    serve_forever(sys.argv[1], int(sys.argv[2]))
