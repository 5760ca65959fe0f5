"""One attempt at a time, shared by every task that asks while it runs."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any, Generic, TypeVar

__all__ = ["SingleFlight"]

T = TypeVar("T")


class SingleFlight(Generic[T]):
    """Runs one attempt at a time; every task that asks while it runs gets its outcome.

    Twenty tasks that find the token missing make one token request between them, and when it
    fails all twenty get that one failure: no waiter repeats an attempt that just failed. The
    next call after the attempt has ended starts a new one.

    The attempt runs in a task of its own, so a waiter that is cancelled (a web client that
    disconnected) neither cancels it for the others nor leaves it half done. :meth:`cancel`
    ends it, for a Session that closes.
    """

    def __init__(self) -> None:
        self._running: asyncio.Task[T] | None = None

    @property
    def running(self) -> bool:
        """Whether an attempt is under way (a call to :meth:`run` now would wait for it)."""
        return self._running is not None

    async def run(self, attempt: Callable[[], Coroutine[Any, Any, T]]) -> T:
        """The outcome of the attempt under way, or of ``attempt()`` started now."""
        task = self._running
        if task is None:
            task = asyncio.create_task(attempt())
            self._running = task
            task.add_done_callback(self._finished)
        return await asyncio.shield(task)

    def _finished(self, task: asyncio.Task[T]) -> None:
        if self._running is task:
            self._running = None
        if not task.cancelled():
            task.exception()  # every waiter may have gone: the failure is not news

    def cancel(self) -> None:
        """Cancel the attempt under way, if any."""
        if self._running is not None:
            self._running.cancel()
