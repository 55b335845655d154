"""The npm ``bittorrent-tracker`` server (the reference WebTorrent tracker) for interop tests.

``node_tracker`` is a session-scoped pytest fixture yielding a :class:`NodeTracker` whose ``url`` is
``ws://127.0.0.1:<port>``. Use it from a test module with::

    from tests.node_tracker import node_tracker  # noqa: F401  (the fixture)

    async def test_something(node_tracker: NodeTracker) -> None: ...

How it works (see ``/work/shared/reference/webtorrent-tracker.md`` §6.1):

* The package is installed once into a cache directory, ``$P2PLOADER_NODE_TRACKER_DIR`` or
  ``$XDG_CACHE_HOME/p2ploader/bittorrent-tracker`` (``~/.cache/...``), with ``--ignore-scripts``:
  the server needs no native add-on, and the client side's ``node-datachannel`` install script
  would try to download or build one. CI installs it ahead with :data:`NPM_INSTALL_COMMAND`.
* A small ES module imports ``bittorrent-tracker/server`` (not the package root, which would load
  the client and its native add-on) and runs ``Server({udp: false, http: false, ws: true})`` on
  127.0.0.1, port 0, printing ``LISTENING <port>``.
* The process reads its stdin and exits when it closes, so it never outlives the test session;
  teardown closes stdin, terminates it and waits for it.

The fixture skips (with the reason) when ``node`` or ``npm`` is missing or the install fails.
"""

from __future__ import annotations

import os
import queue
import shutil
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import attrs
import pytest

BITTORRENT_TRACKER_VERSION = "11.2.3"
_START_TIMEOUT = 30.0
_INSTALL_TIMEOUT = 300.0

_SCRIPT = """\
import Server from 'bittorrent-tracker/server'

const interval = Number(process.env.TRACKER_INTERVAL_MS || 600000)
const server = new Server({ udp: false, http: false, ws: true, stats: true, interval })
server.on('error', err => { console.error(`error: ${err.message}`) })
server.on('warning', err => { console.error(`warning: ${err.message}`) })
server.listen(0, '127.0.0.1', () => {
  console.log(`LISTENING ${server.ws.address().port}`)
})
process.stdin.on('end', () => { server.close(() => process.exit(0)) })
process.stdin.resume()
"""


def node_tracker_dir() -> Path:
    """Where ``bittorrent-tracker`` is (or gets) installed."""
    override = os.environ.get("P2PLOADER_NODE_TRACKER_DIR")
    if override:
        return Path(override)
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return cache / "p2ploader" / "bittorrent-tracker"


def npm_install_command(directory: Path) -> list[str]:
    return [
        "npm",
        "install",
        "--prefix",
        str(directory),
        "--ignore-scripts",
        "--no-audit",
        "--no-fund",
        f"bittorrent-tracker@{BITTORRENT_TRACKER_VERSION}",
    ]


NPM_INSTALL_COMMAND = (
    'npm install --prefix "${XDG_CACHE_HOME:-$HOME/.cache}/p2ploader/bittorrent-tracker" '
    f"--ignore-scripts --no-audit --no-fund bittorrent-tracker@{BITTORRENT_TRACKER_VERSION}"
)
"""The shell command CI runs before the tests (installs into the default cache directory)."""


def ensure_installed(directory: Path) -> Path:
    """Install ``bittorrent-tracker`` into ``directory`` unless it is there; return the server script.

    Calls :func:`pytest.skip` when Node.js or npm is missing or the install fails.
    """
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        pytest.skip("bittorrent-tracker interop needs node and npm on PATH")
    package = directory / "node_modules" / "bittorrent-tracker" / "package.json"
    if not package.exists() or f'"version": "{BITTORRENT_TRACKER_VERSION}"' not in package.read_text():
        directory.mkdir(parents=True, exist_ok=True)
        command = npm_install_command(directory)
        command[0] = npm
        try:
            done = subprocess.run(
                command, capture_output=True, text=True, timeout=_INSTALL_TIMEOUT, check=False
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            pytest.skip(f"npm install bittorrent-tracker failed: {exc}")
        if done.returncode != 0 or not package.exists():
            tail = (done.stderr or done.stdout).strip().splitlines()[-5:]
            pytest.skip(f"npm install bittorrent-tracker failed (exit {done.returncode}): {' | '.join(tail)}")
    script = directory / "p2ploader-tracker.mjs"
    if not script.exists() or script.read_text() != _SCRIPT:
        script.write_text(_SCRIPT)
    return script


@attrs.define
class NodeTracker:
    """A running ``bittorrent-tracker`` server process."""

    url: str
    port: int
    process: subprocess.Popen[str]
    stderr_lines: list[str]

    def stop(self) -> None:
        process = self.process
        if process.poll() is None:
            if process.stdin is not None:
                process.stdin.close()
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                process.terminate()
                try:
                    process.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait(timeout=5)
        for stream in (process.stdout, process.stderr):
            if stream is not None:
                stream.close()


def start_node_tracker(script: Path, *, interval_ms: int = 600_000) -> NodeTracker:
    """Run the server script; return once it listens (fails the test if it does not start)."""
    node = shutil.which("node")
    assert node is not None
    env = dict(os.environ, TRACKER_INTERVAL_MS=str(interval_ms))
    process = subprocess.Popen(
        [node, str(script)],
        cwd=script.parent,
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    lines: queue.Queue[str | None] = queue.Queue()
    stderr_lines: list[str] = []

    def pump_stdout() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            lines.put(line)
        lines.put(None)

    def pump_stderr() -> None:
        assert process.stderr is not None
        for line in process.stderr:
            stderr_lines.append(line.rstrip())

    threading.Thread(target=pump_stdout, daemon=True).start()
    threading.Thread(target=pump_stderr, daemon=True).start()
    tracker = NodeTracker(url="", port=0, process=process, stderr_lines=stderr_lines)
    try:
        while True:
            line = lines.get(timeout=_START_TIMEOUT)
            if line is None:
                raise RuntimeError(f"bittorrent-tracker exited: {' | '.join(stderr_lines[-5:])}")
            if line.startswith("LISTENING "):
                tracker.port = int(line.split()[1])
                tracker.url = f"ws://127.0.0.1:{tracker.port}"
                return tracker
    except BaseException:
        tracker.stop()
        raise


@pytest.fixture(scope="session")
def node_tracker() -> Iterator[NodeTracker]:
    """A ``bittorrent-tracker`` WebSocket server on 127.0.0.1 for the whole test session."""
    script = ensure_installed(node_tracker_dir())
    tracker = start_node_tracker(script)
    try:
        yield tracker
    finally:
        tracker.stop()
