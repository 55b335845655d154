"""The driver: runs a sans-IO :class:`~p2ploader.core.scheduler.Scheduler` on an event loop.

It feeds events in with the loop's time, carries out the actions through the executors it was
given, hands notifications to the application, and keeps exactly one timer armed at the
scheduler's next deadline. It needs from the loop only ``time()``, ``call_at()``, ``call_soon()``
and ``create_task()`` (:class:`EventLoopLike`), and imports no I/O library, not even asyncio: the
asyncio layer (:mod:`p2ploader.aio.loader`) hosts it on asyncio's loop, and the simulator hosts this
same class on its virtual-time loop with modelled executors.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Awaitable, Callable, Coroutine
from typing import TYPE_CHECKING, Any, Protocol

from p2ploader.core import actions as act
from p2ploader.core import events as ev
from p2ploader.core.notifications import Notification
from p2ploader.core.scheduler import Scheduler

if TYPE_CHECKING:
    from p2ploader.config import LoaderConfig

__all__ = ["Driver", "EventLoopLike", "HttpFetcher", "PeerTransport", "TaskLike", "TimerHandleLike"]

logger = logging.getLogger(__name__)


class TimerHandleLike(Protocol):
    def cancel(self) -> None: ...


class TaskLike(Protocol):
    """What the driver keeps of a task it started (an :class:`asyncio.Task`, or the simulator's)."""

    def cancel(self) -> object: ...

    def add_done_callback(self, fn: Callable[[Any], object], /) -> None: ...


class EventLoopLike(Protocol):
    """What the driver needs from a loop: asyncio's, or the simulator's virtual-time loop."""

    def time(self) -> float: ...

    def call_at(self, when: float, callback: Callable[..., object], *args: Any) -> TimerHandleLike: ...

    def call_soon(self, callback: Callable[..., object], *args: Any) -> TimerHandleLike: ...

    def create_task(self, coro: Coroutine[Any, Any, None]) -> TaskLike: ...


class HttpFetcher(Protocol):
    """Carries out HTTP fetch actions and reports back through the driver's ``feed``."""

    def start(self, action: act.StartHttpFetch) -> None: ...

    def abort(self, request_id: int) -> None: ...


class PeerTransport(Protocol):
    """Carries out every peer action (requests, uploads, announcements, disconnects)."""

    def perform(self, action: act.Action) -> None: ...


class Driver:
    """Glue between a scheduler and real (or modelled) I/O. Not thread-safe: use it on its loop."""

    def __init__(
        self,
        scheduler: Scheduler,
        *,
        loop: EventLoopLike,
        on_notification: Callable[[Notification], None],
        config: LoaderConfig | None = None,
    ) -> None:
        self.scheduler = scheduler
        self._loop = loop
        self._config = config if config is not None else scheduler.config
        self._on_notification = on_notification
        self.http: HttpFetcher | None = None
        self.peers: PeerTransport | None = None
        self.validate: Callable[[act.ValidateSegment], Awaitable[tuple[bool, bool]]] | None = None
        """Runs the checks of a finished download (the loader's integrity checks, then the
        application's validator): ``(accept, verified)``. ``None``: ``segment_validator`` alone."""
        self._timer: TimerHandleLike | None = None
        self._timer_at: float | None = None
        self._timer_epoch = -1  # the scheduler's timer_epoch when the timer was last armed
        self._closed = False
        self._pumping = False
        self._validations: set[TaskLike] = set()
        self.event_log: list[tuple[float, ev.Event]] | None = None
        """Set to a list to record every ``(now, event)`` fed, for replay in the simulator."""

    def now(self) -> float:
        return self._loop.time()

    def feed(self, event: ev.Event) -> None:
        """Pass one event to the scheduler now, then carry out what follows."""
        if self._closed:
            return
        now = self._loop.time()
        if self.event_log is not None:
            self.event_log.append((now, event))
        scheduler = self.scheduler
        epoch = scheduler.timer_epoch
        scheduler.handle_event(event, now=now)
        # Most events in a swarm are announcements that change nothing: no action, no notification,
        # no deadline moved. Skip the pump then (it would find nothing to do and keep the timer).
        if scheduler.timer_epoch != epoch or scheduler.has_output():
            self._pump()

    def close(self) -> None:
        self._closed = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        for task in self._validations:
            task.cancel()

    def _on_timer(self) -> None:
        self._timer = None
        self._timer_at = None
        self._timer_epoch = -1
        if self._closed:
            return
        self.scheduler.handle_timer(now=self._loop.time())
        self._pump()

    def _pump(self) -> None:
        # Executors may report synchronously (a fake or modelled transfer); never recurse.
        if self._pumping:
            return
        scheduler = self.scheduler
        self._pumping = True
        try:
            while scheduler.has_output():
                for action in scheduler.actions_to_perform(now=self._loop.time()):
                    self._perform(action)
                notification = scheduler.next_notification()
                while notification is not None:
                    self._on_notification(notification)
                    notification = scheduler.next_notification()
        finally:
            self._pumping = False
        self._arm_timer()

    def _arm_timer(self) -> None:
        if self.scheduler.timer_epoch == self._timer_epoch:
            return  # nothing that moves a deadline happened since the timer was armed
        self._timer_epoch = self.scheduler.timer_epoch
        deadline = self.scheduler.get_timer()
        if deadline == self._timer_at:
            return
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._timer_at = deadline
        if deadline is not None and not self._closed:
            self._timer = self._loop.call_at(deadline, self._on_timer)

    def _perform(self, action: act.Action) -> None:
        match action:
            case act.StartHttpFetch():
                if self.http is None:
                    raise RuntimeError("the driver has no HTTP fetcher")
                self.http.start(action)
            case act.AbortHttpFetch():
                if self.http is not None:
                    self.http.abort(action.request_id)
            case act.ValidateSegment():
                self._start_validation(action)
            case _:
                if self.peers is not None:
                    self.peers.perform(action)

    def _start_validation(self, action: act.ValidateSegment) -> None:
        hook = self.validate
        validator = self._config.segment_validator
        if hook is None and validator is None:  # nothing to ask: accept
            self._loop.call_soon(self.feed, ev.SegmentValidated(request_id=action.request_id, valid=True))
            return

        async def run() -> None:
            verified = False
            try:
                if hook is not None:
                    valid, verified = await hook(action)
                else:
                    assert validator is not None
                    verdict = validator(action.segment, action.data, action.method, action.peer_id)
                    if inspect.isawaitable(verdict):
                        verdict = await verdict
                    valid = bool(verdict)
            except Exception:  # a validator that raises rejects the bytes
                logger.exception("segment validator raised for %s", action.segment.id)
                valid = verified = False
            self.feed(ev.SegmentValidated(request_id=action.request_id, valid=valid, verified=verified))

        task = self._loop.create_task(run())
        self._validations.add(task)
        task.add_done_callback(self._validations.discard)
