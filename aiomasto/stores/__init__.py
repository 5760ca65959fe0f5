"""Where a Session keeps app credentials and tokens: the TokenStore protocol and the stores.

:class:`MemoryTokenStore` forgets everything when the process ends; :class:`JsonFileTokenStore`
keeps records in one private JSON file; :class:`SqliteTokenStore` keeps them in one private
SQLite database that many worker processes share. Any object with async ``load``, ``save``
and ``delete`` methods is a :class:`TokenStore`; a store that also offers ``lock(key)`` lets
processes sharing it take turns over a check-then-create (:func:`store_lock`).

Example::

    store = JsonFileTokenStore("~/.config/relmap/credentials.json")
    credentials = await store.load(StoreKey(instance="https://mastodon.example", app="relmap"))
"""

from ._base import FORMAT_VERSION, Credentials, StoreKey, TokenStore, store_keys, store_lock
from .jsonfile import JsonFileTokenStore
from .memory import MemoryTokenStore
from .sqlite import SqliteTokenStore

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
