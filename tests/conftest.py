"""Fixtures shared by the client tests."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from aiomasto.testing import FakeMastodon


@pytest.fixture
async def server() -> AsyncIterator[FakeMastodon]:
    """A fake Mastodon (4.5, default limits) running on a free loopback port."""
    fake = FakeMastodon()
    async with fake.run():
        yield fake
