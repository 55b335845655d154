"""The base of download policies and what a policy sees.

The :class:`~p2ploader.core.scheduler.Scheduler` keeps the books (requests in flight, peers and
their segment maps, the cache, failures); a :class:`DownloadPolicy` reads that state through a
:class:`SchedulingContext` and starts or aborts downloads through it. A policy with settings of
its own builds them with :func:`settings_from_mapping`. The registry by name is
:mod:`p2ploader.core.policies.registry`.
"""

from __future__ import annotations

import abc
import difflib
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, Self, TypeVar

import attrs

from p2ploader.core.retries import FetchRetryPolicy
from p2ploader.core.segments import Segment, SegmentId
from p2ploader.errors import ConfigError, PolicyError

if TYPE_CHECKING:
    import random

    from p2ploader.config import LoaderConfig

__all__ = [
    "DownloadPolicy",
    "P2PProgress",
    "QueueEntry",
    "SchedulingContext",
    "settings_from_mapping",
]

_S = TypeVar("_S", bound=attrs.AttrsInstance)


@attrs.frozen(kw_only=True)
class P2PProgress:
    """A P2P download in flight, as :meth:`SchedulingContext.p2p_progress` reports it."""

    peer_id: str
    started: float
    """When the request went out."""
    received: int
    """Bytes held, those of an earlier attempt it resumed from included."""
    resumed_from: int
    """Bytes held when the request went out (asked for with the protocol's byte offset)."""
    total: int | None
    """The segment's size from the peer's data header, ``None`` until the header arrives."""


@attrs.frozen(kw_only=True)
class QueueEntry:
    """A segment in the download queue with its priority: its distance, in segments, from the
    segment playing now (0 = needed now)."""

    segment: Segment
    priority: int

    @property
    def id(self) -> SegmentId:
        return self.segment.id


class SchedulingContext(Protocol):
    """What a policy may read and do. Implemented by the scheduler."""

    @property
    def config(self) -> LoaderConfig: ...

    @property
    def rng(self) -> random.Random: ...

    @property
    def queue(self) -> Sequence[QueueEntry]:
        """Queued segments in priority order (nearest first)."""
        ...

    @property
    def http_active(self) -> int: ...

    @property
    def p2p_active(self) -> int: ...

    @property
    def connected_peers(self) -> int: ...

    @property
    def peer_id(self) -> str | None:
        """Our own peer id as other peers see it (hex), or ``None`` when the scheduler was not told."""
        ...

    def connected_peer_ids(self) -> list[str]:
        """The ids of the connected peers, sorted."""
        ...

    @property
    def playlist_end(self) -> float | None:
        """Where the newest segment of the playlist ends (seconds of media time; a live stream's
        edge), or ``None`` before the first playlist."""
        ...

    @property
    def position(self) -> float | None:
        """The playhead (seconds of media time) of the last ``PlaybackMoved`` event; ``None`` before
        the first one."""
        ...

    def http_failures(self, segment_id: SegmentId) -> int:
        """HTTP failures of the segment since the player last requested it explicitly (``0`` again
        once it leaves the queue)."""
        ...

    def is_cached(self, segment_id: SegmentId) -> bool: ...

    def is_requested(self, segment_id: SegmentId) -> bool:
        """Whether the player asked for the segment and waits for it (not a prefetch)."""
        ...

    def is_http_loading(self, segment_id: SegmentId) -> bool: ...

    def is_p2p_loading(self, segment_id: SegmentId) -> bool: ...

    def http_failed_recently(self, segment_id: SegmentId, *, now: float) -> bool: ...

    def any_peer_has(self, segment_id: SegmentId, *, loading: bool = False) -> bool:
        """Some connected peer announced the segment as loaded (with ``loading``, or as loading over
        HTTP: a p2ploader peer sends such a segment as it arrives, cut-through; others answer
        "absent")."""
        ...

    def any_peer_knows(self, segment_id: SegmentId) -> bool:
        """Some connected peer announced the segment as loaded or as loading over HTTP."""
        ...

    def any_peer_refused(self, segment_id: SegmentId) -> bool:
        """Some connected peer announced the segment as loaded, then answered "absent" when we asked
        for it (it was busy, or has dropped it), and has not announced anything since. Such a peer
        is not asked again until its next announcement, but the segment is in the swarm."""
        ...

    def idle_peers_with(self, segment_id: SegmentId, *, loading: bool = False) -> list[str]:
        """Connected peers with no request of ours outstanding that announced the segment as
        loaded (with ``loading``, or as loading over HTTP), sorted by peer id (so random choices
        are reproducible)."""
        ...

    @property
    def http_fetch_time(self) -> float | None:
        """Seconds our HTTP downloads took per second of media (a moving average over downloads a
        policy started; 0.1 means a 4 s segment arrives in 0.4 s), or ``None`` before the first."""
        ...

    @property
    def upload_speed(self) -> float | None:
        """How fast we upload, in media seconds per second (a moving average over finished uploads;
        2.0 means a 4 s segment leaves in 2 s), or ``None`` before the first."""
        ...

    def peer_throughput(self, peer_id: str) -> float | None:
        """Bytes per second at which the peer served us recently (a moving average over its finished
        uploads to us, request to last byte), or ``None`` before its first."""
        ...

    def start_http(self, segment_id: SegmentId, *, now: float, continue_p2p: bool) -> None:
        """Start an HTTP download. A P2P download of the same segment is aborted first; with
        ``continue_p2p`` and ``http_download_ranges`` on, its bytes are kept and HTTP fetches only
        the rest."""
        ...

    def p2p_progress(self, segment_id: SegmentId) -> P2PProgress | None:
        """The P2P download of the segment in flight, or ``None``."""
        ...

    def start_p2p(self, segment_id: SegmentId, peer_id: str, *, now: float) -> None:
        """Ask an idle peer for a segment. Bytes kept from an earlier attempt (a stalled or moved
        download) are not fetched again: the request carries the protocol's byte offset."""
        ...

    def move_p2p(self, segment_id: SegmentId, peer_id: str, *, now: float) -> None:
        """Move a P2P download in flight to another idle peer: the request is cancelled, its bytes
        are kept and the new peer is asked for the rest. The first peer's throughput is measured
        on what it delivered."""
        ...

    def abort_http(self, segment_id: SegmentId) -> None: ...

    def abort_p2p(self, segment_id: SegmentId) -> None: ...


class DownloadPolicy(abc.ABC):
    """Base class of download policies.

    ``schedule`` runs after every event that can change a decision; ``get_timer`` and
    ``handle_timer`` give a policy its own periodic work (all times in seconds, passed in).
    """

    name: ClassVar[str]

    passes_on_lost_availability: ClassVar[bool] = True
    """Whether a peer *no longer* listing a queued segment can change :meth:`schedule`'s decisions.
    ``False`` lets the scheduler skip the pass after such announcements (a large saving in big
    swarms); keep ``True`` unless the policy only ever reacts to segments becoming available."""

    passes_on_http_loading: ClassVar[bool] = True
    """Whether a peer's "loading over HTTP" list can change :meth:`schedule`'s decisions."""

    def __init__(self, config: LoaderConfig) -> None:
        self.config = config

    @classmethod
    def from_config(cls, config: LoaderConfig) -> Self:
        """The policy for ``config``, as :func:`create_policy` builds it. A policy with settings of
        its own overrides this to build them from its entry in ``config.policy_settings``
        (:func:`settings_from_mapping`); this default has none, and refuses any."""
        own = config.policy_settings.get(cls.name)
        if own:
            raise ConfigError(
                f"download policy {cls.name!r} has no settings of its own, got {dict(own)!r}",
                key="policy_settings",
            )
        return cls(config)

    def fetch_retry_policy(self) -> FetchRetryPolicy:
        """The core's retry policy within each HTTP fetch of a segment this policy starts: the
        attempts and the back-off (seconds) the executor performs. By default the config's
        ``http_retries`` and ``http_retry_backoff``. A policy with a setting of its own that counts
        HTTP attempts maps it here (with :meth:`fetches_per_request`), so that the attempts are
        counted in one place, the core's, and not once by the policy on top of them."""
        return FetchRetryPolicy.from_config(self.config)

    def fetches_per_request(self, max_attempts: int) -> int:
        """How many failed fetches (each of :meth:`fetch_retry_policy`'s attempts) end the player's
        wait for a segment it asked for with ``max_attempts`` (``get_segment``'s, >= 1). By default
        ``max_attempts`` itself."""
        return max_attempts

    def start(self, *, now: float) -> None:
        """Called once, when the queue first becomes non-empty (playback started)."""

    @abc.abstractmethod
    def schedule(self, ctx: SchedulingContext, *, now: float) -> None:
        """Start or abort downloads for the current queue."""

    def get_timer(self) -> float | None:
        """The next time ``handle_timer`` must run, or ``None``."""
        return None

    def handle_timer(self, ctx: SchedulingContext, *, now: float) -> None:
        """Periodic work due at or before ``now``. ``schedule`` runs right after."""

    def tracker_updated(self, *, incomplete: int, now: float) -> None:
        """A tracker reported ``incomplete`` peers in the swarm."""

    def accepts_upload(self, ctx: SchedulingContext, segment: Segment, *, now: float) -> bool:
        """Whether to serve a peer's request for ``segment``, which we hold (``False`` answers
        "absent", a standard reply after which the peer turns to another holder). Every request by
        default."""
        return True


def unknown_name_error(message: str, name: str, choices: list[str], *, listing: str, key: str) -> ConfigError:
    """``message`` about the unknown ``name``, suggesting the closest of ``choices`` and listing them."""
    close = difflib.get_close_matches(name, choices, n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    return ConfigError(
        f"{message}{hint} ({listing}: {', '.join(choices)})",
        key=key,
        suggestion=close[0] if close else None,
    )


def settings_from_mapping(settings_class: type[_S], values: Mapping[str, Any], *, policy: str) -> _S:
    """Build a policy's attrs settings class from its entry in ``LoaderConfig.policy_settings``
    (``config.policy_settings.get(policy, {})``): every name must be a field of ``settings_class``
    (the closest one is suggested otherwise), each value of its default's kind (true or false, a
    whole number, a number), and the class's own checks apply. Any fault raises
    :class:`ConfigError` naming ``policy_settings``."""
    fields = attrs.fields_dict(settings_class)
    converted: dict[str, Any] = {}
    for name, value in values.items():
        field = fields.get(name)
        if field is None:
            raise unknown_name_error(
                f"download policy {policy!r} has no setting {name!r}",
                name,
                list(fields),
                listing="settings",
                key="policy_settings",
            )
        wanted = _setting_kind_fault(value, field.default)
        if wanted is not None:
            raise ConfigError(
                f"policy_settings[{policy!r}][{name!r}] must be {wanted}, got {value!r}",
                key="policy_settings",
            )
        # JSON and JavaScript have no integer type: 2.0 is a fine whole number.
        is_whole = type(field.default) is int
        converted[name] = int(value) if is_whole else value
    try:
        return settings_class(**converted)
    except (TypeError, ValueError, PolicyError) as exc:
        raise ConfigError(
            f"policy_settings of download policy {policy!r}: {exc}", key="policy_settings"
        ) from exc


def _setting_kind_fault(value: object, default: object) -> str | None:
    """What a setting's value must be when it is not of its default's kind, else ``None``."""
    if isinstance(default, bool):
        return None if isinstance(value, bool) else "true or false"
    whole = isinstance(default, int)
    if isinstance(value, bool) or not isinstance(value, int | float):
        return "a whole number" if whole else "a number"
    return "a whole number" if whole and not float(value).is_integer() else None
