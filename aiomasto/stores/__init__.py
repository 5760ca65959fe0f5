"""Where a Session keeps app credentials and tokens: the TokenStore protocol and two stores.

:class:`MemoryTokenStore` forgets everything when the process ends; :class:`JsonFileTokenStore`
keeps records in one private JSON file. Any object with async ``load``, ``save`` and ``delete``
methods is a :class:`TokenStore`; a store that also offers ``lock(key)`` lets processes sharing
it take turns over a check-then-create (:func:`store_lock`).

Example::

    store = JsonFileTokenStore("~/.config/relmap/credentials.json")
    credentials = await store.load(StoreKey(instance="https://mastodon.example", app="relmap"))
"""

from ._base import FORMAT_VERSION, Credentials, StoreKey, TokenStore, store_keys, store_lock
from .jsonfile import JsonFileTokenStore
from .memory import MemoryTokenStore

__all__ = [
    "FORMAT_VERSION",
    "Credentials",
    "JsonFileTokenStore",
    "MemoryTokenStore",
    "StoreKey",
    "TokenStore",
    "store_keys",
    "store_lock",
]
