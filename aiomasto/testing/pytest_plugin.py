"""pytest fixture for :class:`~aiomasto.testing.FakeMastodon`.

Enable it in a ``conftest.py`` (or a test module)::

    pytest_plugins = ["aiomasto.testing.pytest_plugin"]

    async def test_lookup(fake_mastodon):
        alice = fake_mastodon.add_account("alice")
        async with aiohttp.ClientSession() as http:
            async with http.get(f"{fake_mastodon.url}/api/v1/accounts/lookup",
                                params={"acct": "alice"}) as response:
                assert (await response.json())["id"] == alice

The fixture is synchronous and serves from a background thread, so it works with any
async test framework (or none). Inside a running loop you can also skip the fixture::

    async with FakeMastodon().run() as url:
        ...
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from ._server import FakeMastodon

__all__ = ["fake_mastodon"]


@pytest.fixture
def fake_mastodon() -> Iterator[FakeMastodon]:
    """A fresh :class:`FakeMastodon` per test, running in a thread; ``url`` is set."""
    server = FakeMastodon()
    with server.run_in_thread():
        yield server
