"""An event loop whose clock jumps ahead whenever it would otherwise sit idle.

Clients and fake servers run in one :class:`VirtualTimeLoop`. While there is work (a
callback ready, bytes to read on any socket) the clock stands still; when every task waits
on a timer, the clock jumps to the next one instead of sleeping. A crawl that sits out
five-minute rate-limit windows then takes as long as its requests do, and ``loop.time()``
(or :func:`epoch`, for the servers' windows) tells each request's moment in the crawl.

Loopback writes are readable on the other end at once on Linux, so "no socket ready" means
nothing is in flight; a short real wait (``grace``) covers a slow scheduler.
"""

from __future__ import annotations

import asyncio
import selectors
from collections.abc import Callable, Mapping
from typing import Any

EPOCH = 1_800_000_000.0  # a multiple of every window length the tests use


class _Selector(selectors.BaseSelector):
    """The real selector, except that an idle wait moves the virtual clock instead."""

    def __init__(self, grace: float) -> None:
        self._real = selectors.DefaultSelector()
        self._grace = grace
        self.now = 0.0
        self.jumps = 0

    def register(self, fileobj: Any, events: int, data: Any = None) -> selectors.SelectorKey:
        return self._real.register(fileobj, events, data)

    def unregister(self, fileobj: Any) -> selectors.SelectorKey:
        return self._real.unregister(fileobj)

    def modify(self, fileobj: Any, events: int, data: Any = None) -> selectors.SelectorKey:
        return self._real.modify(fileobj, events, data)

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        ready = self._real.select(0)
        if ready or timeout == 0:
            return ready
        ready = self._real.select(self._grace if timeout is None else min(timeout, self._grace))
        if ready:
            return ready
        if timeout is None:
            return self._real.select(None)  # no timer at all: only I/O can wake us
        self.now += timeout
        self.jumps += 1
        return []

    def get_map(self) -> Mapping[Any, selectors.SelectorKey]:
        return self._real.get_map()

    def close(self) -> None:
        self._real.close()


class VirtualTimeLoop(asyncio.SelectorEventLoop):
    """A selector event loop on virtual time (see the module's docstring).

    Example::

        with asyncio.Runner(loop_factory=VirtualTimeLoop) as runner:
            runner.run(main())     # asyncio.sleep(300) inside returns at once
    """

    def __init__(self, grace: float = 0.005) -> None:
        self._virtual = _Selector(grace)
        super().__init__(self._virtual)

    def time(self) -> float:
        return self._virtual.now

    @property
    def jumps(self) -> int:
        """How many times the clock jumped to the next timer."""
        return self._virtual.jumps


def epoch() -> Callable[[], float]:
    """Epoch seconds on the running virtual loop's clock (for clients and servers alike)."""
    loop = asyncio.get_running_loop()
    return lambda: EPOCH + loop.time()
