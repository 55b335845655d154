"""One loader, several renditions: switching the loader's rendition without failing a request.

A :class:`~p2ploader.aio.loader.HybridLoader` follows one variant at a time; a segment of another
variant is "not in the playlist" for it, and a switch drops the segments the old variant's requests
were waiting for. Most players play one variant at a time, but a player may ask for another variant's
playlist (an ABR switch) or, like ffmpeg reading every program (``-map 0``), interleave requests for
several. :class:`RenditionGate` makes that safe:

* :meth:`RenditionGate.holding` admits a request once the loader is on the rendition it needs and
  keeps the loader there until the request is done;
* requests are served in arrival order: once a request for another rendition is waiting, later
  requests queue behind it, so neither side can starve the other;
* the switch itself runs when no admitted request is left, in its own task, so a request that is
  cancelled while waiting never leaves the loader half-switched.

A player that keeps alternating between variants makes the loader switch back and forth (each switch
refetches a playlist and, with P2P on, moves to the other variant's swarm); see docs/proxy.md.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable

import attrs

__all__ = ["RenditionGate"]


@attrs.define
class _Switch:
    rendition: str
    done: bool = False
    error: Exception | None = None


class RenditionGate:
    """Admits requests for a rendition while the loader is on it; switches it in between."""

    def __init__(self, current: Callable[[], str], switch: Callable[[str], Awaitable[None]]) -> None:
        self._current = current
        self._switch = switch
        self._cond = asyncio.Condition()
        self._queue: deque[int] = deque()
        self._next_ticket = 0
        self._active = 0
        self._switching: _Switch | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self.switches = 0
        """Switches made so far."""

    @property
    def current(self) -> str:
        """The rendition the loader is on."""
        return self._current()

    @contextlib.asynccontextmanager
    async def holding(self, rendition: str) -> AsyncIterator[None]:
        """:meth:`acquire` for the body, then :meth:`release`."""
        await self.acquire(rendition)
        try:
            yield
        finally:
            await self.release()

    async def acquire(self, rendition: str) -> None:
        """Wait until the loader is on ``rendition`` (switching it when it is this request's turn)
        and keep it there until :meth:`release`. A failed switch raises its error here."""
        await self._acquire(rendition)

    async def release(self) -> None:
        async with self._cond:
            self._active -= 1
            self._cond.notify_all()

    async def _acquire(self, rendition: str) -> None:
        ticket = self._next_ticket
        self._next_ticket += 1
        async with self._cond:
            self._queue.append(ticket)
            try:
                while True:
                    if self._queue[0] == ticket and self._switching is None:
                        if self._current() == rendition:
                            break
                        if self._active == 0:
                            switch = self._switching = _Switch(rendition)
                            task = asyncio.get_running_loop().create_task(self._run_switch(switch))
                            self._tasks.add(task)
                            task.add_done_callback(self._tasks.discard)

                            def switched(switch: _Switch = switch) -> bool:
                                return switch.done

                            await self._cond.wait_for(switched)
                            if switch.error is not None:
                                raise switch.error
                            continue
                    await self._cond.wait()
                self._active += 1
            finally:
                self._queue.remove(ticket)
                self._cond.notify_all()

    async def _run_switch(self, switch: _Switch) -> None:
        try:
            await self._switch(switch.rendition)
        except Exception as exc:  # handed to the request that asked for the switch
            switch.error = exc
        else:
            self.switches += 1
        finally:
            async with self._cond:
                switch.done = True
                self._switching = None
                self._cond.notify_all()

    async def aclose(self) -> None:
        """Wait for a switch in progress to end (it is not cancelled: the loader stays consistent)."""
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
