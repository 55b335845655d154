"""A virtual-time event loop: the clock jumps from one scheduled callback to the next.

It offers what :class:`p2ploader.core.driver.Driver` needs from a loop (``time``, ``call_at``,
``call_soon``) so the simulator hosts the very driver and scheduler that run for real. Callbacks
due at the same time run in the order they were scheduled, so a run is reproducible.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Callable, Coroutine
from typing import Any

from p2ploader.errors import UsageError

__all__ = ["VirtualHandle", "VirtualLoop", "VirtualTask"]


class VirtualHandle:
    """A scheduled callback; :meth:`cancel` keeps it from running."""

    __slots__ = ("_args", "_callback", "cancelled", "when")

    def __init__(self, when: float, callback: Callable[..., object], args: tuple[Any, ...]) -> None:
        self.when = when
        self._callback = callback
        self._args = args
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True

    def _run(self) -> None:
        self._callback(*self._args)


class VirtualTask:
    """A coroutine run to its end in one callback (see :meth:`VirtualLoop.create_task`)."""

    def __init__(self, loop: VirtualLoop, coro: Coroutine[Any, Any, None]) -> None:
        self._coro = coro
        self._callbacks: list[Callable[[VirtualTask], object]] = []
        self.done = False
        self._handle = loop.call_soon(self._run)

    def _run(self) -> None:
        try:
            self._coro.send(None)
        except StopIteration:
            pass
        else:  # it waits for something: nothing in virtual time will ever answer
            self._coro.close()
            raise UsageError("the simulator runs only coroutines that finish without waiting (no real I/O)")
        finally:
            self._finish()

    def cancel(self) -> bool:
        if self.done:
            return False
        self._handle.cancel()
        self._coro.close()
        self._finish()
        return True

    def add_done_callback(self, fn: Callable[[VirtualTask], object], /) -> None:
        if self.done:
            fn(self)
        else:
            self._callbacks.append(fn)

    def _finish(self) -> None:
        self.done = True
        callbacks, self._callbacks = self._callbacks, []
        for fn in callbacks:
            fn(self)


_Entry = tuple[float, int, Callable[..., object], tuple[Any, ...], VirtualHandle | None]


class VirtualLoop:
    """Seconds of virtual time; nothing ever sleeps."""

    def __init__(self, start: float = 0.0) -> None:
        self._now = start
        # Entries (when, sequence, callback, args, handle): ``handle`` is None for a callback that
        # is never cancelled (:meth:`call_at_fixed`), which then costs no handle object.
        self._queue: list[_Entry] = []
        self._seq = itertools.count()
        self.callbacks_run = 0

    def time(self) -> float:
        return self._now

    def call_at(self, when: float, callback: Callable[..., object], *args: Any) -> VirtualHandle:
        now = self._now
        handle = VirtualHandle(when if when > now else now, callback, args)
        heapq.heappush(self._queue, (handle.when, next(self._seq), callback, args, handle))
        return handle

    def call_at_fixed(self, when: float, callback: Callable[..., object], *args: Any) -> None:
        """As :meth:`call_at` for a callback that is never cancelled (a message in flight): no
        handle. Same order as :meth:`call_at` (one sequence for both)."""
        now = self._now
        heapq.heappush(self._queue, (when if when > now else now, next(self._seq), callback, args, None))

    def call_later(self, delay: float, callback: Callable[..., object], *args: Any) -> VirtualHandle:
        return self.call_at(self._now + max(0.0, delay), callback, *args)

    def call_soon(self, callback: Callable[..., object], *args: Any) -> VirtualHandle:
        return self.call_at(self._now, callback, *args)

    def create_task(self, coro: Coroutine[Any, Any, None]) -> VirtualTask:
        """Run ``coro`` as one callback, soon. Only a coroutine that finishes without waiting (a
        modelled check, a plain validator) can run: virtual time has no I/O to wait for."""
        return VirtualTask(self, coro)

    def run_until(self, end: float) -> None:
        """Run every callback due at or before ``end``, then set the clock to ``end``."""
        queue = self._queue
        heappop = heapq.heappop
        run = 0
        try:
            while queue and queue[0][0] <= end:
                when, _, callback, args, handle = heappop(queue)
                if handle is not None and handle.cancelled:
                    continue
                self._now = when
                run += 1
                callback(*args)
        finally:
            self.callbacks_run += run
        self._now = max(self._now, end)

    @property
    def pending(self) -> int:
        return len(self._queue)
