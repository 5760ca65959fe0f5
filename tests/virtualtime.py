"""A client clock that sleeping moves forward, shared with the fake server's windows."""

from __future__ import annotations

import asyncio
import time


class VirtualTime:
    """Epoch seconds that only move when someone sleeps (or a test moves them).

    Concurrent sleeps overlap as they would in real time: a task sleeping 60 s and another
    sleeping 30 s at the same moment leave the clock 60 s later, not 90. Each sleep still
    yields to the event loop once, so a sleeping task can be cancelled there.
    """

    def __init__(self) -> None:
        self.now = time.time()
        self.slept: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        until = self.now + seconds
        await asyncio.sleep(0)
        self.now = max(self.now, until)
