"""Where a Session keeps app credentials and tokens: the TokenStore protocol and the stores.

:class:`MemoryTokenStore` forgets everything when the process ends; :class:`JsonFileTokenStore`
keeps records in one private JSON file; :class:`SqliteTokenStore` keeps them in one private
SQLite database that many worker processes share; :class:`RedisTokenStore` (the ``redis``
extra) keeps them on a Redis server that many processes and machines share. Any object with
async ``load``, ``save`` and ``delete`` methods is a :class:`TokenStore`; a store that also
offers ``lock(key)`` lets processes sharing it take turns over a check-then-create
(:func:`store_lock`).

Example::

    store = JsonFileTokenStore("~/.config/relmap/credentials.json")
    credentials = await store.load(StoreKey(instance="https://mastodon.example", app="relmap"))
"""

from typing import TYPE_CHECKING, Any

from ._base import FORMAT_VERSION, Credentials, StoreKey, TokenStore, store_keys, store_lock
from .jsonfile import JsonFileTokenStore
from .memory import MemoryTokenStore
from .sqlite import SqliteTokenStore

if TYPE_CHECKING:
    from .redis import RedisTokenStore as RedisTokenStore

__all__ = [
    "FORMAT_VERSION",
    "Credentials",
    "JsonFileTokenStore",
    "MemoryTokenStore",
    "SqliteTokenStore",
    "StoreKey",
    "TokenStore",
    "store_keys",
    "store_lock",
]


def __getattr__(name: str) -> Any:
    # RedisTokenStore imports redis-py (an optional extra) only when first used; it stays out
    # of __all__ so that a star import works without the extra.
    if name == "RedisTokenStore":
        from .redis import RedisTokenStore

        return RedisTokenStore
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
