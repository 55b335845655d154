"""Network namespaces joined by a bridge, with links shaped in the kernel.

Theory of operation
-------------------
* **Layout.** A hub namespace holds a Linux bridge. Every host (a viewer, the origin, the tracker)
  gets a namespace of its own and a veth pair: ``eth0`` inside the host's namespace, ``v<N>`` in
  the hub, a port of the bridge. Both ends are created directly in their namespaces, so nothing
  ever appears in the machine's own namespace.
* **Addresses.** Host ``N`` (0-based, in the order they are added) has ``198.18.0.0/15`` address
  ``N + 1`` (RFC 2544's benchmarking range, never routed), configured only inside its namespace.
* **Shaping.** A host's *uplink* is a ``tbf`` qdisc on egress of its ``eth0``, its *downlink* a
  ``tbf`` on egress of the hub's ``v<N>`` (what the bridge forwards to it). ``tbf`` holds at most
  ``queue_seconds`` of the link's rate in its queue (and drops beyond that), like a home router's
  buffer; its burst is a few full-size packets. No delay is added and nothing is lost but what
  overflows a queue: this kernel has ``tbf`` and ``htb`` but not ``netem``.
* **Names.** Every namespace is named ``p2pl-<pid>-<n>-<role>`` (the process that made it, and
  the testbed's number in that process), so runs do not collide and :func:`sweep_leftovers` can
  delete what a dead run left behind.
* **Cleanup.** :meth:`Testbed.close` (also on an exception in the middle of setup, on Ctrl-C, and on
  SIGTERM while the testbed is entered in the main thread) kills every process still inside its
  namespaces (``ip netns pids``) and deletes the namespaces; deleting a namespace deletes its veth
  ends, the bridge and their qdiscs with it.
* **Processes** run as ``ip netns exec NAMESPACE ARGV...`` (no shell): :meth:`Testbed.command`
  gives the argument list, :meth:`Testbed.popen` starts one.
"""

from __future__ import annotations

import contextlib
import ipaddress
import itertools
import json
import logging
import os
import re
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from types import FrameType, TracebackType
from typing import Any

import attrs

from p2ploader.errors import TestbedError, TestbedUnavailableError

__all__ = [
    "NETWORK",
    "Host",
    "Runner",
    "Testbed",
    "check_available",
    "host_address",
    "list_namespaces",
    "run_command",
    "sweep_leftovers",
    "tbf_arguments",
]

logger = logging.getLogger(__name__)

NETWORK = ipaddress.IPv4Network("198.18.0.0/15")
"""RFC 2544's benchmarking range: the testbed's addresses, only inside its namespaces."""

_PREFIX = "p2pl-"
_OWNED = re.compile(r"^p2pl-(\d+)-[a-z0-9-]+$")
_ROLE = re.compile(r"^[a-z0-9][a-z0-9-]{0,40}$")
_HOST_IFACE = "eth0"
_BRIDGE = "br0"
_MIN_BURST_BYTES = 2 * 1514
"""Two full Ethernet frames: ``tbf`` drops a packet larger than its burst."""
_COMMAND_TIMEOUT_S = 30.0
_TESTBEDS = itertools.count()
"""Numbers the testbeds of this process, so two at once do not share names."""

Runner = Callable[[Sequence[str]], str]
"""Runs one command (an argument list), returns its stdout, raises :class:`TestbedError` on failure."""


def run_command(argv: Sequence[str]) -> str:
    """The default :data:`Runner`: ``subprocess.run`` without a shell."""
    try:
        done = subprocess.run(
            list(argv), capture_output=True, text=True, timeout=_COMMAND_TIMEOUT_S, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise TestbedError(f"{' '.join(argv)}: {exc}") from exc
    if done.returncode != 0:
        raise TestbedError(f"{' '.join(argv)}: exit status {done.returncode}: {done.stderr.strip()}")
    return done.stdout


def check_available() -> None:
    """Raise :class:`TestbedUnavailableError` unless this process is root and has ``ip`` and ``tc``."""
    missing = [tool for tool in ("ip", "tc") if shutil.which(tool) is None]
    if missing:
        raise TestbedUnavailableError(
            f"the testbed needs the {' and '.join(missing)} command{'s' if len(missing) > 1 else ''} "
            "(iproute2; apt-get install iproute2)"
        )
    if os.geteuid() != 0:
        raise TestbedUnavailableError(
            "the testbed needs root: it creates network namespaces and shapes links with tc "
            "(run as root, e.g. with sudo, or in a container with CAP_NET_ADMIN and CAP_SYS_ADMIN)"
        )


def host_address(index: int) -> str:
    """The address of host ``index`` (0-based): ``198.18.0.1`` for 0."""
    if not 0 <= index < NETWORK.num_addresses - 2:
        raise TestbedError(f"no testbed address for host {index}")
    return str(NETWORK.network_address + index + 1)


def tbf_arguments(rate_bps: float, *, queue_seconds: float) -> list[str]:
    """``tc``'s arguments for a ``tbf`` at ``rate_bps`` bits per second whose queue holds
    ``queue_seconds`` of traffic at that rate (at least the burst)."""
    if rate_bps <= 0 or queue_seconds <= 0:
        raise TestbedError("a shaped link needs a positive rate and queue")
    rate_bytes = rate_bps / 8
    # A burst of 4 ms at the rate (at least two frames) keeps the shaper's timer load low without
    # letting a long burst through at the veth's own speed.
    burst = max(_MIN_BURST_BYTES, round(rate_bytes * 0.004))
    limit = max(burst, round(rate_bytes * queue_seconds))
    return ["tbf", "rate", f"{round(rate_bps)}bit", "burst", str(burst), "limit", str(limit)]


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def list_namespaces(run: Runner = run_command) -> list[str]:
    """Every named network namespace (``ip netns list``)."""
    return [line.split()[0] for line in run(["ip", "netns", "list"]).splitlines() if line.strip()]


def sweep_leftovers(run: Runner = run_command, *, alive: Callable[[int], bool] = _pid_alive) -> list[str]:
    """Delete the testbed namespaces of runs whose process is gone (a run killed with SIGKILL, or
    a machine crash); returns their names. Namespaces of running testbeds are left alone."""
    removed = []
    for name in list_namespaces(run):
        match = _OWNED.match(name)
        if match is None or alive(int(match.group(1))):
            continue
        _delete_namespace(run, name)
        removed.append(name)
    return removed


def _delete_namespace(run: Runner, name: str) -> None:
    """Kill what runs inside ``name`` (a process keeps a namespace, and its links, alive after its
    name is gone), then delete it."""
    with contextlib.suppress(TestbedError):
        pids = [int(p) for p in run(["ip", "netns", "pids", name]).split() if p.isdigit()]
        _kill_all(pids)
    run(["ip", "netns", "delete", name])


def _kill_all(pids: Sequence[int], *, grace_s: float = 3.0) -> None:
    """SIGTERM, then SIGKILL what is still there after ``grace_s`` seconds."""
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    while any(_pid_alive(p) and not _is_zombie(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)


def _is_zombie(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as f:
            return f.read().rsplit(")", 1)[-1].split()[0] == "Z"
    except OSError:
        return True


@attrs.frozen(kw_only=True)
class Host:
    """One namespace on the bridge. Rates in bits per second; ``None`` is unshaped (the veth's
    own speed, many Gbit/s)."""

    role: str
    index: int
    namespace: str
    address: str
    hub_interface: str
    uplink_bps: float | None = None
    downlink_bps: float | None = None


class Testbed:
    """Hosts in network namespaces on one bridge (see the module docstring).

    Use as a context manager: ``with Testbed() as bed: host = bed.add_host("origin", uplink_bps=...)``.
    ``queue_seconds`` is every shaped link's queue, in seconds at its rate. ``run`` and ``check``
    replace the command runner and the root/iproute2 check (for tests of the bookkeeping).
    """

    __test__ = False  # not a pytest test class, despite the name

    def __init__(
        self,
        *,
        prefix: str | None = None,
        queue_seconds: float = 0.1,
        run: Runner = run_command,
        check: Callable[[], None] = check_available,
    ) -> None:
        self.prefix = prefix if prefix is not None else f"{_PREFIX}{os.getpid()}-{next(_TESTBEDS)}-"
        if not self.prefix.startswith(_PREFIX):
            raise TestbedError(f"testbed namespace prefixes start with {_PREFIX!r}")
        self.queue_seconds = queue_seconds
        self.hosts: list[Host] = []
        self._run = run
        self._check = check
        self._namespaces: list[str] = []
        self._processes: list[subprocess.Popen[Any]] = []
        self._previous_sigterm: Any = None
        self._started = False
        self._closed = False

    @property
    def hub(self) -> str:
        return f"{self.prefix}hub"

    @property
    def namespaces(self) -> tuple[str, ...]:
        """The namespaces this testbed created and has not deleted yet."""
        return tuple(self._namespaces)

    # -- setup -------------------------------------------------------------------------------

    def start(self) -> None:
        """Check the machine, sweep dead runs' leftovers, create the hub and its bridge."""
        if self._started:
            return
        self._check()
        removed = sweep_leftovers(self._run)
        if removed:
            logger.warning("removed %d namespaces left by dead testbed runs", len(removed))
        self._started = True
        self._add_namespace(self.hub)
        self._run(["ip", "-n", self.hub, "link", "add", _BRIDGE, "type", "bridge"])
        self._run(["ip", "-n", self.hub, "link", "set", _BRIDGE, "up"])

    def add_host(
        self, role: str, *, uplink_bps: float | None = None, downlink_bps: float | None = None
    ) -> Host:
        """A new namespace ``<prefix><role>`` on the bridge, with its links shaped as given."""
        if not _ROLE.match(role):
            raise TestbedError(f"a host role is lower-case letters, digits and dashes, got {role!r}")
        if any(h.role == role for h in self.hosts):
            raise TestbedError(f"there is already a host {role!r}")
        self.start()
        index = len(self.hosts)
        host = Host(
            role=role,
            index=index,
            namespace=f"{self.prefix}{role}",
            address=host_address(index),
            hub_interface=f"v{index}",
            uplink_bps=uplink_bps,
            downlink_bps=downlink_bps,
        )
        ns, hub, port = host.namespace, self.hub, host.hub_interface
        self._add_namespace(ns)
        self.hosts.append(host)
        run = self._run
        run(["ip", "-n", ns, "link", "set", "lo", "up"])
        run(["ip", "-n", hub, "link", "add", port, "type", "veth", "peer", "name", _HOST_IFACE, "netns", ns])
        run(["ip", "-n", hub, "link", "set", port, "master", _BRIDGE])
        run(["ip", "-n", hub, "link", "set", port, "up"])
        run(["ip", "-n", ns, "addr", "add", f"{host.address}/{NETWORK.prefixlen}", "dev", _HOST_IFACE])
        run(["ip", "-n", ns, "link", "set", _HOST_IFACE, "up"])
        if uplink_bps is not None:
            self._shape(ns, _HOST_IFACE, uplink_bps)
        if downlink_bps is not None:
            self._shape(hub, port, downlink_bps)
        return host

    def _add_namespace(self, name: str) -> None:
        self._run(["ip", "netns", "add", name])
        self._namespaces.append(name)

    def _shape(self, namespace: str, interface: str, rate_bps: float) -> None:
        tbf = tbf_arguments(rate_bps, queue_seconds=self.queue_seconds)
        self._run(["tc", "-n", namespace, "qdisc", "replace", "dev", interface, "root", *tbf])

    # -- running -----------------------------------------------------------------------------

    def sent_bytes(self, host: Host) -> int:
        """Bytes ``host`` has sent on its link so far (its ``eth0`` transmit counter: every packet,
        headers included, what an origin's provider would bill), read from the kernel."""
        output = self._run(["ip", "-n", host.namespace, "-s", "-j", "link", "show", "dev", "eth0"])
        try:
            (link,) = json.loads(output)
            counters = link.get("stats64") or link["stats"]
            return int(counters["tx"]["bytes"])
        except (ValueError, KeyError, TypeError) as exc:
            raise TestbedError(f"unreadable link statistics of {host.namespace}: {output[:200]!r}") from exc

    def command(self, host: Host, argv: Sequence[str]) -> list[str]:
        """``argv`` run inside ``host``'s namespace."""
        return ["ip", "netns", "exec", host.namespace, *argv]

    def popen(self, host: Host, argv: Sequence[str], **options: Any) -> subprocess.Popen[Any]:
        """Start ``argv`` inside ``host``'s namespace (``options`` go to ``subprocess.Popen``); it is
        ended by :meth:`close` at the latest."""
        proc: subprocess.Popen[Any] = subprocess.Popen(self.command(host, argv), **options)
        self._processes.append(proc)
        return proc

    # -- teardown ----------------------------------------------------------------------------

    def close(self) -> None:
        """End every process started here or still inside a namespace, delete every namespace.
        Runs to the end whatever fails; raises the first failure afterwards."""
        if self._closed:
            return
        self._closed = True
        for proc in self._processes:
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    proc.terminate()
        for proc in self._processes:
            try:
                proc.wait(timeout=5.0)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        first: TestbedError | None = None
        # Hosts first, the hub last: a host's veth end goes with its namespace.
        for name in reversed(self._namespaces[:]):
            try:
                _delete_namespace(self._run, name)
            except TestbedError as exc:
                logger.warning("could not delete namespace %s: %s", name, exc)
                first = first or exc
            else:
                self._namespaces.remove(name)
        if first is not None:
            raise first

    def __enter__(self) -> Testbed:
        if threading.current_thread() is threading.main_thread():
            self._previous_sigterm = signal.signal(signal.SIGTERM, _exit_on_sigterm)
        try:
            self.start()
        except BaseException:
            self._restore_sigterm()
            self.close()
            raise
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        try:
            self.close()
        except TestbedError:
            if exc is None:
                raise
            # The exception that ended the body says what went wrong; close() logged its own.
        finally:
            self._restore_sigterm()

    def _restore_sigterm(self) -> None:
        if self._previous_sigterm is not None:
            signal.signal(signal.SIGTERM, self._previous_sigterm)
            self._previous_sigterm = None


def _exit_on_sigterm(signum: int, frame: FrameType | None) -> None:
    """SIGTERM unwinds like Ctrl-C does, so ``with Testbed()`` cleans up on ``kill`` too."""
    raise SystemExit(128 + signum)
