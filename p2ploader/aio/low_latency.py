"""Following a live Low-Latency HLS stream over HTTP: parts in order, as they are published.

:class:`LowLatencyStream` performs what :class:`~p2ploader.core.ll_follower.LowLatencyFollower`
decides: it loads the media playlist (blocking reloads, ``_HLS_msn``/``_HLS_part``, as soon as the
previous one returned), parses it (:func:`~p2ploader.hls.parse_media`) and folds it into a
:class:`~p2ploader.hls.LivePlaylistTracker` (continuous timeline, delta updates filled in), runs the
follower's fetches (parts, preload hints, whole segments) as concurrent GETs with the loader's HTTP
client, and hands the player :class:`~p2ploader.core.ll_follower.LowLatencyItem` s in order
(:meth:`LowLatencyStream.items`).

Peers. Without a ``part_swarm`` everything goes over HTTP. With one
(:class:`~p2ploader.aio.part_swarm.PartSwarm`, started on the first playlist and joined once the
player has its first item), every part and preload-hint fetch the follower asks for from then on
goes to that swarm's scheduler, which takes the part from
a p2ploader peer or from the origin (see :mod:`p2ploader.core.part_exchange`); a part the swarm
gives up on is fetched over HTTP here. Whole segments (behind the live edge, at the start) always
come over HTTP. :attr:`LowLatencyStatistics.p2p_bytes` counts the part bytes peers delivered.

Rendition switches. :meth:`LowLatencyStream.select_rendition` follows a second rendition next
to the first (its first load a blocking reload targeted with the current playlist's
``EXT-X-RENDITION-REPORT``, its playlists put on the first one's timeline) until it publishes an
independent part after what the player has (by media sequence number and part index); the first
rendition's items go on up to there, the second's from there (see
:mod:`p2ploader.core.ll_switch`). Each rendition has its own parts swarm: the old one's is closed
when the new rendition takes over. A switch's first load is a task of the stream: a newer switch,
the caller's cancellation and :meth:`LowLatencyStream.aclose` stop it.

Failures. A playlist load that fails (network, status, unparseable, inconsistent) is retried,
timed, by the follower's pace; after ``resync_after`` refreshes in a row that the tracker rejects
(a restarted packager), following re-syncs on the latest one. A part or segment GET that fails is
asked for again, up to ``max_attempts`` times, then :meth:`LowLatencyStream.items` raises
:class:`~p2ploader.errors.SegmentUnavailableError`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections import Counter
from collections.abc import AsyncIterator, Callable, Sequence

import attrs
import httpx

from p2ploader.aio.http import read_body_capped
from p2ploader.aio.part_swarm import PartSwarm
from p2ploader.config import LoaderConfig
from p2ploader.core.ll_follower import (
    FetchRequest,
    LowLatencyFollower,
    LowLatencyItem,
    PlaylistRequest,
    item_span,
)
from p2ploader.core.ll_switch import (
    PlayPoint,
    SwitchRequest,
    continues_at,
    switch_playlist_request,
    takes_over,
    timeline_shift,
    waits_for_switch,
)
from p2ploader.core.part_exchange import parts_hold_back
from p2ploader.core.scheduler import MAX_SEGMENT_SIZE
from p2ploader.core.segments import ByteRange
from p2ploader.errors import (
    DeltaPlaylistError,
    HttpStatusError,
    P2PLoaderError,
    PlaylistError,
    RenditionNotFoundError,
    ResponseTooLargeError,
    SegmentUnavailableError,
    TransportError,
    UsageError,
)
from p2ploader.hls import LivePlaylistTracker, MediaPlaylist, Variant, parse_media
from p2ploader.renditions import find_variant

__all__ = ["LowLatencyStatistics", "LowLatencyStream"]

logger = logging.getLogger(__name__)

_CONTENT_RANGE_START = re.compile(r"bytes (\d+)-\d+/(?:\d+|\*)")


@attrs.define
class LowLatencyStatistics:
    """What a :class:`LowLatencyStream` did, counted. Sizes in bytes."""

    playlist_loads: int = 0
    blocking_playlist_loads: int = 0
    delta_playlist_loads: int = 0
    playlist_failures: int = 0
    part_fetches: int = 0
    hint_fetches: int = 0
    segment_fetches: int = 0
    fetch_failures: int = 0
    bytes: int = 0
    """Bytes handed to the follower (parts, hints and segments), from either source."""
    p2p_bytes: int = 0
    """Of :attr:`bytes`, those of parts the parts swarm took from peers."""
    swarm_fallbacks: int = 0
    """Parts the parts swarm gave up on, fetched over HTTP here instead."""
    resyncs: int = 0
    rendition_switches: int = 0
    """Switches to another rendition that took over (:meth:`LowLatencyStream.select_rendition`)."""
    reported_switch_loads: int = 0
    """Switches whose first playlist load was a blocking reload at the rendition report's edge."""
    ignored_reports: int = 0
    """Rendition reports found for a switch and not used (inconsistent, no blocking reload, or
    the targeted first load refused by the server and replaced by a plain GET)."""
    switch_failures: int = 0
    """Switches given up before they took over because the new rendition's playlist or media
    failed (not those replaced by a newer switch, cancelled, or stopped by ``aclose``)."""


@attrs.define(eq=False)
class _Leg:
    """One rendition followed: its playlist, its follower and the loads under way. A stream has
    one, and a second while a switch is pending."""

    url: str
    rendition: str
    follower: LowLatencyFollower
    variant: Variant | None = None
    tracker: LivePlaylistTracker | None = None
    rejected_in_a_row: int = 0
    attempts: Counter[tuple[str, int, int | None]] = attrs.field(factory=Counter)
    tasks: set[asyncio.Task[None]] = attrs.field(factory=set)
    playlist_task: asyncio.Task[None] | None = None
    first_load: asyncio.Task[None] | None = None  # a switch's first playlist load
    error: P2PLoaderError | None = None
    closed: bool = False


@attrs.frozen
class _Taken:
    """An item taken from the follower, with where it begins and ends (sequence, part index)."""

    item: LowLatencyItem
    first: tuple[int, int]
    end: tuple[int, int]


class LowLatencyStream:
    """Follows one live (LL-)HLS media playlist over HTTP; see the module docstring.

    ``url`` is the media playlist, ``rendition`` its rendition id (segment ids carry it).
    ``client`` is used as it is (the caller owns it). ``hold_back`` overrides PART-HOLD-BACK
    (seconds; :func:`~p2ploader.core.ll_follower.check_hold_back` refuses 0 here, and a value under
    two part targets on the first playlist, with :class:`~p2ploader.errors.HoldBackError`);
    ``delta_updates`` asks for ``_HLS_skip=YES`` when the server allows it;
    ``resync_after`` and ``max_attempts`` as the module docstring says. ``clock`` (seconds) is
    the event loop's by default.

    ``variants`` (a master playlist's, :class:`~p2ploader.hls.Variant`) are the renditions
    :meth:`select_rendition` can switch to by id or index; ``part_swarm_for`` makes the parts
    swarm of a variant switched to (None: that rendition over HTTP only).
    :meth:`~p2ploader.aio.loader.HybridLoader.low_latency_stream` gives both.
    """

    def __init__(
        self,
        url: str,
        *,
        client: httpx.AsyncClient,
        config: LoaderConfig | None = None,
        rendition: str = "v0",
        hold_back: float | None = None,
        delta_updates: bool = True,
        resync_after: int = 3,
        max_attempts: int = 3,
        clock: Callable[[], float] | None = None,
        part_swarm: PartSwarm | None = None,
        variants: Sequence[Variant] = (),
        part_swarm_for: Callable[[Variant], PartSwarm | None] | None = None,
    ) -> None:
        if max_attempts < 1:
            raise UsageError(f"max_attempts must be >= 1, got {max_attempts}")
        self.config = config if config is not None else LoaderConfig()
        self.statistics = LowLatencyStatistics()
        self._client = client
        self._delta_updates = delta_updates
        self._resync_after = resync_after
        self._leg = _Leg(
            url=url,
            rendition=rendition,
            follower=LowLatencyFollower(
                url, hold_back=hold_back, delta_updates=delta_updates, resync_after=resync_after
            ),
        )
        self._pending: _Leg | None = None  # the rendition switched to, until it takes over
        self._closing_legs: set[asyncio.Task[None]] = set()
        self._variants = tuple(variants)
        self._part_swarm_for = part_swarm_for
        self._max_attempts = max_attempts
        self._clock = clock
        self._closing: set[asyncio.Task[None]] = set()
        self._started = False
        self._progress = asyncio.Event()
        self._init_sections: dict[tuple[str, ByteRange | None], bytes] = {}
        self._hold_back = hold_back
        self._part_swarm = part_swarm
        # Where the items handed over end (segment and part index), the point a switch resumes at.
        self._handed: PlayPoint | None = None
        self._switched = False  # the next item handed is the first of a rendition switched to
        self._resyncs_before = 0  # re-syncs of the renditions switched away from
        # An item of the old rendition waiting for the new one's playlist (waits_for_switch), and
        # since when (seconds, the stream's clock).
        self._waiting: _Taken | None = None
        self._waiting_since = 0.0
        self._closed = False

    # ------------------------------------------------------------------ public

    @property
    def url(self) -> str:
        """The media playlist followed (the rendition switched to, once it took over)."""
        return self._leg.url

    @property
    def rendition(self) -> str:
        """The rendition id of the items handed over now."""
        return self._leg.rendition

    @property
    def pending_rendition(self) -> str | None:
        """The rendition a switch is under way to (it has not taken over yet), or None."""
        return self._pending.rendition if self._pending is not None else None

    @property
    def part_swarm(self) -> PartSwarm | None:
        """The parts swarm parts are taken from (None: HTTP only)."""
        return self._part_swarm

    def report_playback(self, position: float) -> None:
        """Where the player is (seconds on the playlist's timeline). With a parts swarm, its
        deadlines (the HTTP critical window) count from there; without one it does nothing."""
        swarm = self._part_swarm
        if swarm is None:
            return
        try:
            swarm.report_playback(position)
        except Exception:
            # The swarm is an extra (as in _update_part_swarm): whatever breaks it, the stream and
            # the caller reporting go on over HTTP alone.
            logger.exception("the LL-HLS parts swarm of %s failed; parts come over HTTP", self.rendition)
            self._drop_part_swarm(swarm)

    @property
    def follower(self) -> LowLatencyFollower:
        """The sans-IO follower this stream drives (its start point, its re-syncs); after a
        rendition switch took over, the new rendition's (its start is where it took over)."""
        return self._leg.follower

    @property
    def playlist(self) -> MediaPlaylist | None:
        """The latest playlist, on the tracker's continuous timeline (None before the first)."""
        tracker = self._leg.tracker
        return tracker.current if tracker is not None else None

    async def items(self) -> AsyncIterator[LowLatencyItem]:
        """Parts (and whole segments behind the live edge) in play order, each as soon as its bytes
        are here; ends when the stream ends (EXT-X-ENDLIST). Raises the first error that stops
        following (:class:`~p2ploader.errors.SegmentUnavailableError`, or a first playlist that
        cannot be loaded). After :meth:`select_rendition`, the items of the new rendition follow
        those of the old one on the same timeline (the first has ``after_switch`` set). Ends,
        handing nothing more, once the stream is closed."""
        self._start()
        while not self._closed:
            self._check_pending()
            leg = self._leg
            taken, self._waiting = self._waiting, None
            if taken is None:
                before = leg.follower.position
                item = leg.follower.next_ready()
                if item is not None:
                    taken = _Taken(item, *item_span(item, before))
                    self._waiting_since = self._now()
            if taken is not None:
                first = self._point(taken.first)
                if self._takes_over(first):
                    self._cut_over()  # the item is the old rendition's from the switch point on
                    continue
                wait = self._switch_wait(first)
                if wait > 0:
                    self._waiting = taken
                    self._progress.clear()
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(wait):
                            await self._progress.wait()
                    continue
                self._pump(leg)
                item = taken.item
                if self._switched:
                    self._switched = False
                    item = attrs.evolve(item, after_switch=True)
                self._handed = self._point(taken.end)
                self._moved_on()
                yield item
                self._join_part_swarm()
                continue
            if leg.error is not None:
                raise leg.error
            if leg.follower.finished:
                return
            self._progress.clear()
            await self._progress.wait()

    async def select_rendition(self, rendition: Variant | str | int) -> None:
        """Switch to another rendition: a :class:`~p2ploader.hls.Variant`, or a rendition id or
        index of the ``variants`` given (:class:`~p2ploader.errors.RenditionNotFoundError`, a
        :class:`~p2ploader.errors.UsageError`, otherwise), as
        :meth:`~p2ploader.aio.loader.HybridLoader.select_rendition` takes them.

        The new rendition's media playlist is loaded first (its first load is a blocking reload at
        the edge the current playlist's ``EXT-X-RENDITION-REPORT`` gives for it, or a plain GET
        without one, see :func:`~p2ploader.core.ll_switch.switch_playlist_request`; a targeted load
        the server refuses with an error status is made once more as a plain GET). When that fails
        the error is raised here (counted in ``switch_failures``) and the stream goes on with the
        old rendition. Then :meth:`items` goes on with the old rendition up to the new one's first
        independent part (or segment start) after what was handed over, by media sequence number
        and part index, and from there with the new one: no gap, nothing twice (an old item that
        straddles the new rendition's independent point, such as a whole segment, is handed whole
        and the switch moves to the next independent point after it). The first item of the new
        rendition has ``after_switch`` set and its own init section. With a parts swarm, the old
        rendition's is closed when the new one takes over and the new rendition's joined
        (``part_swarm_for``). Before any item was handed over, the new rendition starts at its
        hold-back, as a new stream would. Switching to the rendition followed does nothing.

        A switch still under way is given up for a newer one: the older call returns without an
        error (it is not a failure) if its first load was still running, and
        :attr:`pending_rendition` names the newer rendition. :meth:`aclose` gives a switch up the
        same way. Cancelling this call gives its switch up (:attr:`pending_rendition` is cleared)
        and stops its first load."""
        if self._closed:
            raise UsageError("the stream is closed")
        variant = self._find_variant(rendition)
        if self._pending is not None:
            logger.info("LL-HLS switch to %s given up for %s", self._pending.rendition, variant.rendition_id)
            self._give_up(self._pending)
        if variant.url == self._leg.url:
            return
        current = self.playlist
        request = (
            switch_playlist_request(current, variant.url)
            if current is not None
            else SwitchRequest(url=variant.url, blocking=False)
        )
        if request.ignored is not None:
            self.statistics.ignored_reports += 1
            logger.warning(
                "LL-HLS rendition report for %s not used, loading it plainly: %s",
                variant.url,
                request.ignored,
            )
        leg = _Leg(
            url=variant.url,
            rendition=variant.rendition_id,
            variant=variant,
            follower=LowLatencyFollower(
                variant.url,
                hold_back=self._hold_back,
                delta_updates=self._delta_updates,
                resync_after=self._resync_after,
                first_url=request.url,
                resume_from=self._handed,
            ),
        )
        self._pending = leg
        # The first load is the stream's task, not this call's: aclose() and a newer switch cancel
        # it through _close_leg, and a caller cancelled here cancels it below.
        load = asyncio.get_running_loop().create_task(
            self._first_load(leg), name=f"ll-switch-{leg.rendition}"
        )
        leg.first_load = load
        try:
            # asyncio.wait, not await load: a load cancelled by aclose() or a newer switch is not
            # this caller's cancellation, and must not raise CancelledError here.
            await asyncio.wait({load})
        except BaseException:  # the caller was cancelled (or interrupted): the switch is given up
            self._give_up(leg)
            raise
        if self._pending is not leg or self._closed or load.cancelled():
            self._give_up(leg)
            return  # given up meanwhile, for a newer switch or by aclose(): not a failure
        exc = load.exception()
        if exc is not None:
            self._give_up(leg)
            self.statistics.switch_failures += 1
            if isinstance(exc, P2PLoaderError):
                raise exc
            logger.error("LL-HLS switch to %s failed unexpectedly", leg.rendition, exc_info=exc)
            raise TransportError(leg.url, f"unexpected {type(exc).__name__}: {exc}") from exc
        if leg.follower.resume_from is None:
            self._cut_over()  # nothing handed over yet: the new rendition starts as a stream does
        elif self._started:
            self._start_leg(leg)
        self._progress.set()

    async def init_section(self, item: LowLatencyItem) -> bytes | None:
        """The bytes of ``item``'s initialisation section (EXT-X-MAP: the fMP4 ``moov`` a decoder
        needs before the item's bytes), over HTTP, once per URI and byte range; None without one."""
        section = item.init_section
        if section is None:
            return None
        key = (section.url, section.byte_range)
        cached = self._init_sections.get(key)
        if cached is None:
            fetch = FetchRequest.of_resource(section.url, section.byte_range, kind="segment")
            cached = await fetch_range(self._client, fetch, max_bytes=MAX_SEGMENT_SIZE, what="init section")
            self._init_sections[key] = cached
        return cached

    async def aclose(self) -> None:
        """Stop every load, a pending switch's first load too, and await them; :meth:`items` hands
        nothing more and no switch takes over. The parts swarm is closed (its statistics stay
        readable). Idempotent."""
        self._closed = True
        pending, self._pending = self._pending, None
        self._waiting = None
        for leg in (self._leg, pending):
            if leg is not None:
                self._close_leg(leg)
        await asyncio.gather(*self._closing_legs, return_exceptions=True)
        await asyncio.gather(*self._closing, return_exceptions=True)
        if self._part_swarm is not None:
            await self._part_swarm.aclose()
        self._progress.set()

    async def __aenter__(self) -> LowLatencyStream:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    # ------------------------------------------------------------------ switches

    def _find_variant(self, rendition: Variant | str | int) -> Variant:
        if isinstance(rendition, Variant):
            return rendition
        if not self._variants:
            raise RenditionNotFoundError(
                "the stream knows no variants: pass a Variant (or open it with the loader)",
                wanted=str(rendition),
                choices=(),
            )
        return find_variant(self._variants, rendition)

    async def _first_load(self, leg: _Leg) -> None:
        """A switch's first playlist load. A targeted one (the rendition report's edge) that the
        server refuses with an error status is made once more as a plain GET
        (:meth:`~p2ploader.core.ll_follower.LowLatencyFollower.first_load_refused`)."""
        request = leg.follower.next_playlist_request()
        assert request is not None
        try:
            await self._load_playlist(leg, request)
        except HttpStatusError as exc:
            # A body over the cap would be as large plainly: only a refusal is retried.
            if isinstance(exc, ResponseTooLargeError) or not leg.follower.first_load_refused():
                raise
            self.statistics.ignored_reports += 1
            logger.warning(
                "LL-HLS switch to %s: the reported edge was refused (%s), loading it plainly",
                leg.rendition,
                exc,
            )
            plain = leg.follower.next_playlist_request()
            assert plain is not None and not plain.blocking
            await self._load_playlist(leg, plain)
        else:
            self.statistics.reported_switch_loads += request.blocking

    def _point(self, key: tuple[int, int]) -> PlayPoint:
        """``key`` (sequence, part index) as a point of the rendition followed now."""
        playlist = self.playlist
        return PlayPoint(
            sequence=key[0], part=key[1], part_target=None if playlist is None else playlist.part_target
        )

    def _takes_over(self, point: PlayPoint) -> bool:
        """True when the pending rendition has the media from ``point`` (an old item's start) on."""
        pending = self._pending
        if pending is None or (start := pending.follower.start) is None:
            return False
        return takes_over(pending.follower.playlist, (start.sequence, start.part_index), point)

    def _moved_on(self) -> None:
        """An item was handed over: a pending switch resumes after it (its start moves on when the
        item straddled it, so nothing is handed twice)."""
        pending, handed = self._pending, self._handed
        if pending is None or handed is None:
            return
        pending.follower.resume_after(handed)
        self._pump(pending)

    def _switch_wait(self, point: PlayPoint) -> float:
        """Seconds the old rendition's item beginning at ``point`` still waits for the pending
        rendition's playlist to reach it (:func:`~p2ploader.core.ll_switch.waits_for_switch`); at
        most a part target in all (the target duration without parts), then it is handed over
        anyway."""
        pending = self._pending
        if pending is None or pending.follower.start is not None or pending.tracker is None:
            return 0.0
        if not waits_for_switch(point, pending.tracker.current):
            return 0.0
        playlist = self.playlist
        limit = 0.5
        if playlist is not None:
            limit = playlist.part_target if playlist.part_target is not None else playlist.target_duration
        return self._waiting_since + limit - self._now()

    def _check_pending(self) -> None:
        """Give a failed switch up; let a ready one take over when it continues right where the
        player is."""
        pending = self._pending
        if pending is None:
            return
        if pending.error is not None:
            logger.warning("LL-HLS switch to %s given up: %s", pending.rendition, pending.error)
            self.statistics.switch_failures += 1
            self._give_up(pending)
            return
        start, playlist, handed = pending.follower.start, pending.follower.playlist, self._handed
        if start is None or playlist is None or handed is None:
            return
        if continues_at(playlist, handed, (start.sequence, start.part_index)):
            self._cut_over()

    def _give_up(self, leg: _Leg) -> None:
        """Stop a switch: ``leg`` is no longer pending and its loads stop."""
        if self._pending is leg:
            self._pending = None
        self._close_leg(leg)

    def _cut_over(self) -> None:
        """The pending rendition takes over: the old one's loads stop, its parts swarm closes, the
        new one's (if any) starts on the new playlist and joins once the player has its first item
        (as at the start)."""
        new = self._pending
        if new is None or self._closed:
            return
        old, self._leg, self._pending = self._leg, new, None
        self._waiting = None  # the old rendition's: the new one has it
        self._close_leg(old)
        self._resyncs_before += old.follower.resyncs
        self.statistics.resyncs = self._resyncs_before + new.follower.resyncs
        self.statistics.rendition_switches += 1
        self._switched = self._handed is not None  # before any item: a plain start
        logger.info("LL-HLS rendition %s takes over from %s", new.rendition, old.rendition)
        swarm = self._part_swarm
        if swarm is not None:
            self._drop_part_swarm(swarm)
        if self._part_swarm_for is not None and new.variant is not None:
            try:
                self._part_swarm = self._part_swarm_for(new.variant)
            except Exception:
                logger.exception("no LL-HLS parts swarm for %s; parts come over HTTP", new.rendition)
        if self._started:
            self._start_leg(new)
            self._pump(new)

    def _close_leg(self, leg: _Leg) -> None:
        """Stop ``leg``'s loads (awaited by :meth:`aclose`)."""
        leg.closed = True
        tasks = [*leg.tasks, *(task for task in (leg.playlist_task, leg.first_load) if task is not None)]
        for task in tasks:
            if task.done():
                continue
            if task is not asyncio.current_task():
                task.cancel()
            self._closing_legs.add(task)
            task.add_done_callback(self._closing_legs.discard)
        leg.tasks.clear()

    # ------------------------------------------------------------------ playlists

    def _now(self) -> float:
        return self._clock() if self._clock is not None else asyncio.get_running_loop().time()

    def _start(self) -> None:
        if not self._started and not self._closed:
            self._started = True
            self._start_leg(self._leg)
            pending = self._pending
            if pending is not None and pending.tracker is not None:
                # Its first load is done (else select_rendition starts it when that returns).
                self._start_leg(pending)

    def _start_leg(self, leg: _Leg) -> None:
        if leg.playlist_task is None and not leg.closed and not self._closed:
            leg.playlist_task = asyncio.get_running_loop().create_task(
                self._follow_playlist(leg), name=f"ll-playlist-{leg.rendition}"
            )

    async def _follow_playlist(self, leg: _Leg) -> None:
        try:
            while not (self._closed or leg.closed):
                request = leg.follower.next_playlist_request()
                if request is None:
                    return
                delay = request.not_before - self._now()
                if delay > 0:
                    await asyncio.sleep(delay)
                await self._load_playlist(leg, request)
        except P2PLoaderError as exc:
            self._fail(leg, exc)
        except Exception as exc:  # a task that dies silently would leave items() waiting for good
            logger.exception("following %s failed unexpectedly", leg.url)
            self._fail(leg, TransportError(leg.url, f"unexpected {type(exc).__name__}: {exc}"))

    async def _load_playlist(self, leg: _Leg, request: PlaylistRequest) -> None:
        stats = self.statistics
        stats.playlist_loads += 1
        stats.blocking_playlist_loads += request.blocking
        stats.delta_playlist_loads += request.skip
        first = leg.tracker is None
        requested_at = self._now()
        try:
            text = await self._fetch_playlist(request.url, held=request.blocking)
            # Relative URIs resolve against the playlist's own URL (the directives only add a query).
            parsed = parse_media(text, leg.url, rendition=leg.rendition)
        except P2PLoaderError as exc:
            if first:
                raise  # nothing to follow: the caller hears why
            stats.playlist_failures += 1
            logger.warning("LL-HLS playlist load failed: %s", exc)
            leg.follower.playlist_failed(now=self._now())
            return
        if leg.closed:
            return  # a switch given up while it loaded
        now = self._now()
        switching = leg is self._pending
        if leg.tracker is None:
            reference = self.playlist if switching else None
            if reference is not None:
                # One timeline: the newest segment both list starts where the old one's does (HLS
                # renditions are aligned by sequence number); where to switch is decided by
                # sequence number and part index, not by these times.
                shift = timeline_shift(parsed, reference)
                if shift:
                    segments = tuple(attrs.evolve(s, start=s.start + shift) for s in parsed.segments)
                    parsed = attrs.evolve(parsed, segments=segments)
            leg.tracker = LivePlaylistTracker(parsed)
            leg.follower.playlist_received(leg.tracker.current, now=now, requested_at=requested_at)
        else:
            try:
                leg.tracker.update(parsed)
                leg.follower.playlist_received(leg.tracker.current, now=now, requested_at=requested_at)
                leg.rejected_in_a_row = 0
            except DeltaPlaylistError as exc:
                self.statistics.playlist_failures += 1
                logger.warning("LL-HLS delta update could not be merged, reloading in full: %s", exc)
                leg.follower.playlist_failed(now=now, delta_refused=True)
            except PlaylistError as exc:
                self._rejected(leg, parsed, exc, now=now)
        if leg is self._leg:
            stats.resyncs = self._resyncs_before + leg.follower.resyncs
            await self._update_part_swarm()
        self._pump(leg)

    def _join_part_swarm(self) -> None:
        """The player has an item: the parts swarm may join now (see :meth:`PartSwarm.join`)."""
        swarm = self._part_swarm
        if swarm is None or swarm.joined or not swarm.started or self._closed:
            return
        task = asyncio.get_running_loop().create_task(swarm.join(), name=f"ll-parts-join-{self.rendition}")
        self._leg.tasks.add(task)
        task.add_done_callback(self._leg.tasks.discard)

    async def _update_part_swarm(self) -> None:
        swarm, playlist = self._part_swarm, self.playlist
        if swarm is None or playlist is None or self._closed:
            return
        hold_back = 0.0
        if not swarm.started:
            hold_back = parts_hold_back(playlist, given=self._hold_back, start=self.follower.start)
        try:
            if not swarm.started:
                await swarm.start(playlist, hold_back=hold_back)
            else:
                swarm.update(playlist)
        except Exception:
            # The swarm is an extra: whatever breaks it, the stream goes on over HTTP alone.
            logger.exception("the LL-HLS parts swarm of %s failed; parts come over HTTP", self.rendition)
            if self._part_swarm is swarm:
                self._part_swarm = None
            await swarm.aclose()

    def _drop_part_swarm(self, swarm: PartSwarm) -> None:
        """Go on over HTTP alone; the swarm is closed in the background (from a plain call)."""
        if self._closed:
            return  # aclose() closes it and awaits that: no task is left behind after it
        self._part_swarm = None
        task = asyncio.get_running_loop().create_task(swarm.aclose(), name=f"ll-parts-close-{self.rendition}")
        self._closing.add(task)  # awaited, not cancelled, by aclose: a swarm half closed leaks links
        task.add_done_callback(self._closing.discard)

    def _rejected(self, leg: _Leg, parsed: MediaPlaylist, exc: PlaylistError, *, now: float) -> None:
        """A refresh the tracker or the follower refused: retry timed; re-sync after too many."""
        self.statistics.playlist_failures += 1
        leg.rejected_in_a_row += 1
        if leg.rejected_in_a_row < self._resync_after:
            logger.warning("LL-HLS playlist refresh ignored: %s", exc)
            leg.follower.playlist_failed(now=now)
            return
        logger.warning(
            "LL-HLS playlist refused %d times in a row, re-syncing: %s", leg.rejected_in_a_row, exc
        )
        leg.rejected_in_a_row = 0
        leg.tracker = LivePlaylistTracker(parsed)
        leg.follower.resync(leg.tracker.current, now=now)

    def _held_timeout(self) -> httpx.Timeout:
        """The client's timeouts, with a read timeout long enough for a request the server holds:
        a blocking reload or a preload hint waits up to three target durations (RFC 8216bis
        §6.2.5.2), one second more for the answer to arrive."""
        base = self._client.timeout
        playlist = self.playlist
        held = 3.0 * (playlist.target_duration if playlist is not None else 10) + 1.0
        read = None if base.read is None else max(base.read, held)
        return httpx.Timeout(connect=base.connect, read=read, write=base.write, pool=base.pool)

    async def _fetch_playlist(self, url: str, *, held: bool) -> str:
        request = FetchRequest(url=url, offset=0, length=None, kind="segment")
        timeout = self._held_timeout() if held else None
        data = await fetch_range(
            self._client,
            request,
            max_bytes=self.config.max_playlist_bytes,
            held_timeout=timeout,
            what="playlist",
        )
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise PlaylistError(url, f"not UTF-8 text ({exc.reason} at byte {exc.start})") from exc

    # ------------------------------------------------------------------ fetches

    def _pump(self, leg: _Leg) -> None:
        """Start the fetches ``leg``'s follower asks for; wake :meth:`items`."""
        self._progress.set()
        if self._closed or leg.closed:
            return
        loop = asyncio.get_running_loop()
        for fetch in leg.follower.take_fetches():
            task = loop.create_task(self._fetch(leg, fetch), name=f"ll-fetch-{fetch.url}")
            leg.tasks.add(task)
            task.add_done_callback(leg.tasks.discard)

    async def _fetch(self, leg: _Leg, fetch: FetchRequest) -> None:
        stats = self.statistics
        if fetch.kind == "hint":
            stats.hint_fetches += 1
        elif fetch.kind == "part":
            stats.part_fetches += 1
        else:
            stats.segment_fetches += 1
        try:
            data = await self._fetch_from_swarm(leg, fetch)
            if data is None:
                timeout = self._held_timeout() if fetch.hint else None
                data = await fetch_range(
                    self._client, fetch, max_bytes=MAX_SEGMENT_SIZE, held_timeout=timeout
                )
        except P2PLoaderError as exc:
            self._fetch_failed(leg, fetch, exc)
        except Exception as exc:
            logger.exception("LL-HLS fetch of %s failed unexpectedly", fetch.url)
            self._fetch_failed(leg, fetch, TransportError(fetch.url, f"unexpected {type(exc).__name__}"))
        else:
            stats.bytes += len(data)
            leg.attempts.pop(fetch.key, None)
            leg.follower.fetch_completed(fetch, data)
        self._pump(leg)

    async def _fetch_from_swarm(self, leg: _Leg, fetch: FetchRequest) -> bytes | None:
        """``fetch``'s bytes from the parts swarm, or None: not a part of it (a whole segment, no
        swarm, a rendition switched to that has not taken over) or the swarm gave it up (then it
        comes over HTTP, counted in ``swarm_fallbacks``)."""
        swarm = self._part_swarm
        if swarm is None or not swarm.joined or leg is not self._leg:
            return None  # before the player's first item: HTTP, as without peers
        entry = swarm.index.segment_for(fetch)
        if entry is None:
            return None
        try:
            data, source = await swarm.fetch(entry)
        except P2PLoaderError as exc:
            if self._closed:
                raise
            self.statistics.swarm_fallbacks += 1
            logger.debug("parts swarm gave %s up, over HTTP: %s", fetch.url, exc)
            return None
        if source == "p2p":
            self.statistics.p2p_bytes += len(data)
        return data

    def _fetch_failed(self, leg: _Leg, fetch: FetchRequest, exc: P2PLoaderError) -> None:
        self.statistics.fetch_failures += 1
        if fetch.hint:
            logger.debug("preload hint %s failed: %s", fetch.url, exc)
            leg.follower.fetch_failed(fetch)
            return
        leg.attempts[fetch.key] += 1
        if leg.attempts[fetch.key] >= self._max_attempts:
            self._fail(leg, SegmentUnavailableError(fetch.url, str(exc)))
            return
        logger.warning("LL-HLS fetch failed, asking again: %s", exc)
        leg.follower.fetch_failed(fetch)

    def _fail(self, leg: _Leg, exc: P2PLoaderError) -> None:
        if leg.error is None:
            leg.error = exc
        self._progress.set()


async def fetch_range(
    client: httpx.AsyncClient,
    fetch: FetchRequest,
    *,
    max_bytes: int,
    held_timeout: httpx.Timeout | None = None,
    what: str = "part",
) -> bytes:
    """GET ``fetch``'s bytes (its ``Range``, if any), at most ``max_bytes`` (else
    :class:`~p2ploader.errors.ResponseTooLargeError` naming ``what``); map failures to p2ploader
    errors. An origin that ignores ``Range`` (200) is read through to the range. ``held_timeout``
    replaces the client's timeouts for this request (a request the server holds)."""
    range_value = fetch.range_header()
    headers = {"Accept-Encoding": "identity"}
    if range_value is not None:
        headers["Range"] = range_value
    need = None if fetch.length is None else fetch.offset + fetch.length
    try:
        timeout = httpx.USE_CLIENT_DEFAULT if held_timeout is None else held_timeout
        async with client.stream("GET", fetch.url, headers=headers, timeout=timeout) as response:
            status = response.status_code
            if status >= 400 or status not in (200, 206):
                raise HttpStatusError(fetch.url, status)
            skip = 0
            if status == 206:
                match = _CONTENT_RANGE_START.fullmatch(response.headers.get("Content-Range", ""))
                if match is None or int(match.group(1)) != fetch.offset:
                    raise HttpStatusError(
                        fetch.url, status, f"Content-Range {response.headers.get('Content-Range')!r}"
                    )
                need = fetch.length
            elif range_value is not None:
                skip = fetch.offset  # the whole resource: read through to the range
            body = await read_body_capped(
                response,
                fetch.url,
                status,
                stop_at=need,
                cap=max_bytes + skip,
                what=what,
                limit=max_bytes,
            )
    except httpx.HTTPError as exc:
        raise TransportError(fetch.url, f"{type(exc).__name__}: {exc}") from exc
    data = body[skip:]
    if fetch.length is not None:
        if len(data) < fetch.length:
            raise HttpStatusError(fetch.url, status, f"expected {fetch.length} bytes, got {len(data)}")
        data = data[: fetch.length]
    return data


@contextlib.asynccontextmanager
async def open_low_latency_stream(
    url: str,
    *,
    client: httpx.AsyncClient | None = None,
    config: LoaderConfig | None = None,
    rendition: str = "v0",
    hold_back: float | None = None,
) -> AsyncIterator[LowLatencyStream]:
    """A :class:`LowLatencyStream` on ``url`` (with an HTTP client of its own unless ``client``
    is given), closed on exit."""
    from p2ploader.aio.http import open_http_client

    config = config if config is not None else LoaderConfig()
    owned = client is None
    http = client if client is not None else open_http_client(config, stream_url=url)
    stream = LowLatencyStream(url, client=http, config=config, rendition=rendition, hold_back=hold_back)
    try:
        yield stream
    finally:
        await stream.aclose()
        if owned:
            await http.aclose()
