"""A fake Mastodon server for testing bots and clients, with no network access needed.

:class:`FakeMastodon` is an aiohttp application that behaves like Mastodon 4.4/4.5 on the
endpoints a client needs to get going: app registration, OAuth tokens, revocation,
accounts and followers/following pagination, with the real status codes, error texts,
``Link`` and ``X-RateLimit-*`` headers. :class:`Fault` makes it misbehave like a proxy.

Example (inside any asyncio test)::

    from aiomasto.testing import FakeMastodon, Fault

    server = FakeMastodon()
    alice = server.add_account("alice")
    server.add_followers(alice, 120)

    async with server.run() as url:
        ...  # point the client at url

With pytest, ``pytest_plugins = ["aiomasto.testing.pytest_plugin"]`` provides a
``fake_mastodon`` fixture that is already running.
"""

from ._faults import Fault
from ._http import RecordedRequest
from ._oauth import s256
from ._server import FakeMastodon
from ._state import Emoji, Field, Role

__all__ = ["Emoji", "FakeMastodon", "Fault", "Field", "RecordedRequest", "Role", "s256"]
