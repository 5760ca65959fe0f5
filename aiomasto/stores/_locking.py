"""Bookkeeping for stores' locked sections: who holds which lock, seen from any task or thread.

A task inside ``store.lock(key)`` calls the store's own ``load``, ``save`` and ``delete``, and
those must not wait for the lock the task itself holds (a second ``flock`` on another open file
description blocks even in the same process; an ``asyncio.Lock`` is not reentrant). The holds
live in a :class:`~contextvars.ContextVar`: it follows the task into ``asyncio.to_thread`` and
into tasks started inside the section (they work for the holder), and no other task sees it.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable, Hashable, Iterator
from contextvars import ContextVar
from typing import TypeVar

__all__ = ["Hold", "active_hold", "finish_in_thread", "holding", "holds_of_kind"]

_T = TypeVar("_T")


class Hold:
    """One locked section: what it locks, and whether it is still open.

    ``mutex`` is held by every change made inside the section, so two tasks of one section
    never interleave their changes, and the section ends only after the last of them.
    """

    def __init__(self, identity: tuple[str, Hashable]) -> None:
        self.identity = identity
        self.mutex = threading.Lock()
        self.active = True

    def end(self, release: Callable[[], None]) -> None:
        """Close the section and ``release`` its lock once no change made inside it is running.

        Never blocks the event loop: when a change is still being written (by a task started
        inside the section), a thread releases the lock when it is done.
        """
        if self.mutex.acquire(blocking=False):
            try:
                self.active = False
                release()
            finally:
                self.mutex.release()
            return

        def release_when_done() -> None:
            with self.mutex:
                self.active = False
                release()

        threading.Thread(target=release_when_done, name="aiomasto-store-unlock").start()


_HOLDS: ContextVar[tuple[Hold, ...]] = ContextVar("aiomasto_store_holds", default=())


def holds_of_kind(kind: str) -> tuple[Hold, ...]:
    """The open sections of this context whose identity starts with ``kind``."""
    return tuple(hold for hold in _HOLDS.get() if hold.active and hold.identity[0] == kind)


def active_hold(identity: tuple[str, Hashable]) -> Hold | None:
    """This context's open section on ``identity``, if any."""
    for hold in _HOLDS.get():
        if hold.active and hold.identity == identity:
            return hold
    return None


@contextlib.contextmanager
def holding(hold: Hold) -> Iterator[None]:
    """Mark the current context (and what it starts) as inside ``hold``'s section."""
    token = _HOLDS.set((*_HOLDS.get(), hold))
    try:
        yield
    finally:
        _HOLDS.reset(token)


async def finish_in_thread(func: Callable[..., _T], /, *args: object) -> _T:
    """``asyncio.to_thread``, except that a cancelled caller waits for the thread to finish.

    A change made inside a locked section must not outlive it: the lock would be released while
    the orphaned thread still writes. The cancellation takes effect as soon as the thread is done.
    """
    future = asyncio.ensure_future(asyncio.to_thread(func, *args))
    try:
        return await asyncio.shield(future)
    except asyncio.CancelledError:
        while not future.done():
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.wait([future])
        if not future.cancelled():
            future.exception()  # retrieved: the cancellation is what the caller hears about
        raise
