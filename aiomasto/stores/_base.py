"""The TokenStore protocol and the records it keeps."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from attrs import frozen

from aiomasto.entities import Application, Token

__all__ = ["FORMAT_VERSION", "Credentials", "StoreKey", "TokenStore"]

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
