"""The TokenStore protocol and the records it keeps."""

from __future__ import annotations

import contextlib
from typing import Protocol, runtime_checkable

from attrs import frozen

from aiomasto.entities import Application, Token
from aiomasto.errors import ConfigurationError

__all__ = ["FORMAT_VERSION", "Credentials", "StoreKey", "TokenStore", "store_keys", "store_lock"]

FORMAT_VERSION = 1
"""Version of the stored record layout; bumped when it changes incompatibly."""


@frozen(kw_only=True)
class StoreKey:
    """Where a record lives: the instance origin, the app's name, and (for user tokens) the account.

    ``instance`` is the normalised origin (``https://mastodon.example``), so records for two
    instances, or two apps on one instance, never mix. ``account`` is ``None`` for the app's own
    record (its client credentials and client-credentials token).

    Example::

        StoreKey(instance="https://mastodon.example", app="Relationship Mapper")
    """

    instance: str
    app: str
    account: str | None = None

    def __str__(self) -> str:
        tail = f" account={self.account}" if self.account is not None else ""
        return f"{self.instance} app={self.app!r}{tail}"


@frozen(kw_only=True)
class Credentials:
    """What a Session keeps for one key: the registered application and a token.

    Serialized by aiomasto's cattrs converter; ``version`` is :data:`FORMAT_VERSION`. The secret
    fields inside never appear in a repr.
    """

    app: Application | None = None
    token: Token | None = None
    version: int = FORMAT_VERSION


@runtime_checkable
class TokenStore(Protocol):
    """Persistence for app credentials and tokens; a Session never knows how they are stored.

    Implementations must be safe to call from many tasks at once. ``load`` returns ``None`` when
    nothing is stored under the key; an unreadable store raises :class:`~aiomasto.TokenStoreError`
    rather than returning ``None`` (a Session would otherwise register a new app over it).

    Example, a store backed by a dict::

        class DictStore:
            def __init__(self) -> None:
                self.data: dict[StoreKey, Credentials] = {}

            async def load(self, key: StoreKey) -> Credentials | None:
                return self.data.get(key)

            async def save(self, key: StoreKey, credentials: Credentials) -> None:
                self.data[key] = credentials

            async def delete(self, key: StoreKey) -> None:
                self.data.pop(key, None)

    A store may also offer ``keys()``, the keys it holds records under (:func:`store_keys`), so
    that a web backend or ``aiomasto accounts`` can tell who is signed in.

    A store may also offer ``lock(key)``, an async context manager whose body runs alone among
    every user of the store for that key: other tasks, and for a store shared between
    processes, other processes, wait at ``lock`` until it ends. A Session uses it (through
    :func:`store_lock`) so that processes sharing one store register the app once between them.
    Inside the body, the holder's own ``load``, ``save``, ``delete`` and ``lock`` calls on the
    store must not wait for the holder (so they must not take a non-reentrant lock again), and
    a task waiting at ``lock`` that is cancelled must leave the lock free for the others. Both
    stores here offer it; a store without it still works, with no exclusion between processes.

    Example, the check-then-create that the lock makes safe::

        async with store_lock(store, key):
            credentials = await store.load(key)
            if credentials is None:
                credentials = await register_and_get_token()   # only one caller gets here
                await store.save(key, credentials)
    """

    async def load(self, key: StoreKey) -> Credentials | None:
        """The record stored under ``key``, or ``None``."""
        ...

    async def save(self, key: StoreKey, credentials: Credentials) -> None:
        """Store ``credentials`` under ``key``, replacing what was there."""
        ...

    async def delete(self, key: StoreKey) -> None:
        """Remove the record under ``key``; no error if there is none."""
        ...


async def store_keys(store: TokenStore) -> list[StoreKey]:
    """Every key ``store`` holds a record under, if the store can list them (``keys()``).

    Both stores here can; a store that cannot raises :class:`~aiomasto.ConfigurationError`.

    Example::

        users = [key for key in await store_keys(store) if key.account is not None]
    """
    keys = getattr(store, "keys", None)
    if not callable(keys):
        raise ConfigurationError(f"{type(store).__name__} cannot list what it holds (no keys())")
    listed: list[StoreKey] = await keys()
    return listed


def store_lock(store: TokenStore, key: StoreKey) -> contextlib.AbstractAsyncContextManager[None]:
    """``store.lock(key)`` if the store offers one, else a lock that excludes nothing.

    Example::

        async with store_lock(store, key):
            if await store.load(key) is None:
                await store.save(key, await obtain_credentials())
    """
    lock = getattr(store, "lock", None)
    if callable(lock):
        section: contextlib.AbstractAsyncContextManager[None] = lock(key)
        return section
    return contextlib.nullcontext()
