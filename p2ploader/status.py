"""What a user should know about a loader's P2P side, in words: the state of each tracker, the one
warning line when no tracker is reachable (P2P is then off, whatever else works), and the public
services the default settings use.

Pure functions and values (no I/O): the API (:class:`~p2ploader.aio.loader.LoaderStatistics`), the
terminal views, ``swarm``'s viewer processes and the proxy all word it the same way.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterable, Iterator, Mapping
from typing import Any, Final, Literal, TypeAlias

import attrs

from p2ploader.config import DEFAULT_RTC_CONFIG, DEFAULT_TRACKER_ANNOUNCE, LoaderConfig

__all__ = [
    "P2P_OFF_LOG_MARK",
    "TrackerConnection",
    "TrackerState",
    "public_services",
    "public_services_message",
    "tracker_summary",
    "tracker_warning",
    "warning_shown_by_caller",
]

TrackerConnection: TypeAlias = Literal["idle", "connecting", "connected", "failed", "closed"]
"""``idle``: not contacted yet (the swarm is joined after the first segment); ``connecting``: the
first attempt is under way; ``connected``: the WebSocket is open; ``failed``: the latest attempt
could not connect, or the tracker refused us (the client tries again); ``closed``: the connection
ended (closed by the server, lost, or by us when leaving the swarm)."""

_UNREACHABLE: Final = frozenset({"failed", "closed"})


@attrs.frozen(kw_only=True)
class TrackerState:
    """One tracker URL of the loader's current swarm."""

    url: str
    state: TrackerConnection
    last_error: str | None = None
    """Why the latest attempt failed or the latest connection ended, for humans (``None`` while
    nothing went wrong)."""
    complete: int | None = None
    """Seeders in the swarm, from the tracker's latest announce response (``None``: none yet)."""
    incomplete: int | None = None
    """Leechers in the swarm, from the same response (P2P Media Loader peers count here)."""
    reconnects: int = 0
    """Connection attempts after the first one."""


def tracker_warning(trackers: Mapping[str, TrackerState]) -> str | None:
    """One line when every tracker failed (none connected, none still on its first attempt):
    ``"P2P is off: no tracker reachable: ws://... (connection refused)"``; ``None`` otherwise, and
    when the loader has no tracker (P2P disabled)."""
    if not trackers or not all(t.state in _UNREACHABLE for t in trackers.values()):
        return None
    causes = ", ".join(f"{t.url} ({t.last_error or t.state})" for t in trackers.values())
    return f"P2P is off: no tracker reachable: {causes}"


P2P_OFF_LOG_MARK: Final = "p2ploader_p2p_off"
"""Attribute set on the loader's "P2P is off" log record (see :func:`warning_shown_by_caller`)."""


@contextlib.contextmanager
def warning_shown_by_caller(logger_name: str = "p2ploader.aio.loader") -> Iterator[None]:
    """While active, the loaders' "P2P is off: no tracker reachable" log record is dropped: the
    caller (a command with its own display) shows that line itself, so the user reads it once, not
    once on stdout and again through logging on stderr."""
    source = logging.getLogger(logger_name)

    def not_p2p_off(record: logging.LogRecord) -> bool:
        return not getattr(record, P2P_OFF_LOG_MARK, False)

    source.addFilter(not_p2p_off)
    try:
        yield
    finally:
        source.removeFilter(not_p2p_off)


def tracker_summary(trackers: Mapping[str, TrackerState]) -> str:
    """Short state of the trackers for a status line: ``"1/2 connected"``, ``"connecting"``,
    ``"none reachable"``, ``"none"`` (P2P disabled)."""
    if not trackers:
        return "none"
    states = [t.state for t in trackers.values()]
    connected = states.count("connected")
    if connected:
        return f"{connected}/{len(states)} connected"
    if all(state in _UNREACHABLE for state in states):
        return "none reachable"
    return "waiting" if all(state == "idle" for state in states) else "connecting"


def public_services(config: LoaderConfig) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The public trackers and public STUN servers (this package's defaults) ``config`` uses:
    ``(tracker URLs, STUN URIs)``, both empty when P2P is off (or has no tracker: then no WebRTC
    connection is ever made) or the defaults were replaced."""
    if not config.use_p2p or not config.tracker_announce:
        return (), ()
    trackers = tuple(url for url in config.tracker_announce if url in DEFAULT_TRACKER_ANNOUNCE)
    default_stun = set(_ice_uris(DEFAULT_RTC_CONFIG))
    stun = tuple(uri for uri in _ice_uris(config.rtc_config) if uri in default_stun)
    return trackers, stun


def public_services_message(config: LoaderConfig) -> str | None:
    """The INFO line naming the public services ``config`` uses, or ``None`` when it uses none."""
    trackers, stun = public_services(config)
    if not trackers and not stun:
        return None
    parts = []
    if trackers:
        parts.append(f"announcing to public trackers {', '.join(trackers)}")
    if stun:
        parts.append(f"{'and ' if trackers else ''}using public STUN servers {', '.join(stun)}")
    return (
        f"{' '.join(parts)} (public services, the defaults: they see this machine's IP address); "
        "set tracker_announce/rtc_config to change"
    )


def _ice_uris(rtc_config: Mapping[str, Any]) -> Iterable[str]:
    servers = rtc_config.get("iceServers", ())
    if not isinstance(servers, list | tuple):
        return
    for server in servers:
        urls = server.get("urls") if isinstance(server, Mapping) else None
        if isinstance(urls, str):
            yield urls
        elif isinstance(urls, list | tuple):
            yield from (url for url in urls if isinstance(url, str))
