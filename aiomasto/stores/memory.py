"""A TokenStore that keeps records in memory, for tests and short-lived scripts."""

from __future__ import annotations

from ._base import Credentials, StoreKey

__all__ = ["MemoryTokenStore"]


class MemoryTokenStore:
    """Keeps credentials in a dict for the life of the process; nothing touches the disk.

    Safe for many tasks at once: no method awaits between reading and writing the dict, so the
    event loop never interleaves two of them. Records are frozen, so they are stored as given.

    Example::

        store = MemoryTokenStore()
        key = StoreKey(instance="https://mastodon.example", app="Relationship Mapper")
        await store.save(key, Credentials(token=Token(access_token="...")))
        credentials = await store.load(key)
    """

    def __init__(self) -> None:
        self._records: dict[StoreKey, Credentials] = {}

    def __repr__(self) -> str:
        # Only a count: the records hold secrets, and their keys name accounts.
        return f"MemoryTokenStore(<{len(self._records)} records>)"

    async def load(self, key: StoreKey) -> Credentials | None:
        """The record stored under ``key``, or ``None``."""
        return self._records.get(key)

    async def save(self, key: StoreKey, credentials: Credentials) -> None:
        """Store ``credentials`` under ``key``, replacing what was there."""
        self._records[key] = credentials

    async def delete(self, key: StoreKey) -> None:
        """Remove the record under ``key``; no error if there is none."""
        self._records.pop(key, None)
