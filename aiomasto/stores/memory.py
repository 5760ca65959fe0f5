"""A TokenStore that keeps records in memory, for tests and short-lived scripts."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from ._base import Credentials, StoreKey
from ._locking import Hold, active_hold, holding

__all__ = ["MemoryTokenStore"]

_KIND = "memory"


class _KeyLock:
    """An asyncio lock for one key, dropped when nobody holds or waits for it."""

    def __init__(self) -> None:
        self.lock = asyncio.Lock()
        self.users = 0


class MemoryTokenStore:
    """Keeps credentials in a dict for the life of the process; nothing touches the disk.

    Safe for many tasks at once: no method awaits between reading and writing the dict, so the
    event loop never interleaves two of them. Records are frozen, so they are stored as given.
    ``lock(key)`` makes a section exclusive among the tasks of this process (see
    :class:`~aiomasto.stores.TokenStore`).

    Example::

        store = MemoryTokenStore()
        key = StoreKey(instance="https://mastodon.example", app="Relationship Mapper")
        await store.save(key, Credentials(token=Token(access_token="...")))
        credentials = await store.load(key)
    """

    def __init__(self) -> None:
        self._records: dict[StoreKey, Credentials] = {}
        self._locks: dict[StoreKey, _KeyLock] = {}
        # Tells this store's holds from another's; a hold never keeps the store alive.
        self._identity = object()

    def __repr__(self) -> str:
        # Only a count: the records hold secrets, and their keys name accounts.
        return f"MemoryTokenStore(<{len(self._records)} records>)"

    async def load(self, key: StoreKey) -> Credentials | None:
        """The record stored under ``key``, or ``None``."""
        return self._records.get(key)

    async def keys(self) -> list[StoreKey]:
        """Every key with a record."""
        return list(self._records)

    async def save(self, key: StoreKey, credentials: Credentials) -> None:
        """Store ``credentials`` under ``key``, replacing what was there."""
        self._records[key] = credentials

    async def delete(self, key: StoreKey) -> None:
        """Remove the record under ``key``; no error if there is none."""
        self._records.pop(key, None)

    def lock(self, key: StoreKey) -> contextlib.AbstractAsyncContextManager[None]:
        """A section that runs alone among this process's tasks locking ``key``.

        Reentrant for the holder (and the tasks it starts inside the section). Other keys are
        not held up.

        Example::

            async with store.lock(key):
                if await store.load(key) is None:
                    await store.save(key, await obtain_credentials())
        """
        return self._section(key)

    @contextlib.asynccontextmanager
    async def _section(self, key: StoreKey) -> AsyncIterator[None]:
        identity = (_KIND, (self._identity, key))
        if active_hold(identity) is not None:
            yield
            return
        entry = self._locks.setdefault(key, _KeyLock())
        entry.users += 1
        try:
            async with entry.lock:
                hold = Hold(identity)
                try:
                    with holding(hold):
                        yield
                finally:
                    hold.end(lambda: None)
        finally:
            entry.users -= 1
            if entry.users == 0:
                del self._locks[key]
