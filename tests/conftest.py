"""Fixtures shared by the client tests."""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator, Iterator

import orjson
import pytest
from browser import Browser, chromium
from hypothesis import settings
from servers import postgres_server, redis_server

from aiomasto import _converter
from aiomasto.testing import FakeMastodon

# In CI the property tests draw the same examples every run: a red CI must mean a real
# regression, not an unlucky draw (locally they keep exploring).
settings.register_profile("ci", derandomize=True, database=None)
if os.environ.get("CI") == "true":
    settings.load_profile("ci")


@pytest.fixture
async def server() -> AsyncIterator[FakeMastodon]:
    """A fake Mastodon (4.5, default limits) running on a free loopback port."""
    fake = FakeMastodon()
    async with fake.run():
        yield fake


@pytest.fixture(params=["stdlib", "orjson"])
def json_parser(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Run a test once as without the ``speedups`` extra (the stdlib's ``json.loads``, no
    msgspec) and once with it (orjson, and msgspec when installed)."""
    monkeypatch.setattr(
        _converter, "_json_loads", json.loads if request.param == "stdlib" else orjson.loads
    )
    if request.param == "stdlib":
        monkeypatch.setattr(_converter, "_msgspec", None)
        monkeypatch.setattr(_converter, "_STRICT", {})  # strict decoders made with msgspec
    return str(request.param)


@pytest.fixture
def browser(monkeypatch: pytest.MonkeyPatch) -> Iterator[Browser]:
    """Headless Chromium (Debian's packages); skipped without them, failed in CI."""
    for driver in chromium(monkeypatch):
        yield Browser(driver)


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """A real, password-protected redis-server for this test session (Debian's package)."""
    with redis_server() as url:
        yield url


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A real PostgreSQL for this test session (Debian's package), password-protected."""
    with postgres_server() as url:
        yield url
