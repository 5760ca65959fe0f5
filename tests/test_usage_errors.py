"""Everything aiomasto raises is a MastodonError, and still the Python error it used to be."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest

import aiomasto
from aiomasto import App, ConfigurationError, MastodonError, Session, UsageError
from aiomasto.testing import FakeMastodon

APP = App(name="Usage test")


def url(server: FakeMastodon) -> str:
    assert server.url is not None
    return server.url


async def test_a_session_that_is_not_open_raises_usage_error(server: FakeMastodon) -> None:
    masto = Session(url(server), app=APP)
    with pytest.raises(UsageError, match="not open") as info:
        await masto.verify_app()
    assert isinstance(info.value, RuntimeError)
    assert server.requests == []


async def test_a_closed_session_raises_usage_error_and_can_be_opened_again(
    server: FakeMastodon,
) -> None:
    masto = Session(url(server), app=APP)
    async with masto, asyncio.timeout(5):
        await masto.verify_app()
    with pytest.raises(UsageError, match="closed"):
        await masto.verify_app()
    async with masto, asyncio.timeout(5):
        assert (await masto.verify_app()).name == APP.name


async def test_a_closed_borrowed_client_session_raises_usage_error(server: FakeMastodon) -> None:
    http = aiohttp.ClientSession()
    async with Session(url(server), app=APP, http=http) as masto, asyncio.timeout(5):
        await masto.verify_app()
        await http.close()
        with pytest.raises(UsageError, match="borrowed"):
            await masto.verify_app()


@pytest.mark.parametrize("token", ["", "   ", 42])
def test_an_empty_access_token_is_a_configuration_error(token: object) -> None:
    with pytest.raises(ConfigurationError, match="access_token"):
        Session("https://m.example", access_token=token)  # type: ignore[arg-type]


async def test_integer_ids_are_accepted(server: FakeMastodon) -> None:
    alice = server.add_account("alice")
    server.add_followers(alice, 3)
    async with Session(url(server), app=APP) as masto, asyncio.timeout(5):
        account = await masto.account(int(alice))
        assert account.id == alice


@pytest.mark.parametrize(
    ("call", "python_error"),
    [
        (lambda m: m.account(None), TypeError),
        (lambda m: m.account(""), ValueError),
        (lambda m: m.account(1.5), TypeError),
        (lambda m: m.account(True), TypeError),
        (lambda m: m.lookup(""), ValueError),
        (lambda m: m.lookup(None), TypeError),
        (lambda m: m.relationships(["1"], chunk_size=0), ValueError),
        (lambda m: m.followers_page("1", limit=0), ValueError),
        (lambda m: m.request("GET", "api/v1/instance"), ValueError),
        (lambda m: m.request("GET", 42), TypeError),
    ],
)
async def test_bad_arguments_are_mastodon_errors_and_python_errors_too(
    server: FakeMastodon, call: object, python_error: type[Exception]
) -> None:
    assert callable(call)
    async with Session(url(server), app=APP) as masto, asyncio.timeout(5):
        with pytest.raises(ConfigurationError) as info:
            await call(masto)
    assert isinstance(info.value, MastodonError)
    assert isinstance(info.value, python_error)
    assert not any(r.path.startswith("/api/v1/accounts") for r in server.requests)


def test_the_error_tree_is_exported() -> None:
    assert issubclass(aiomasto.UsageError, aiomasto.MastodonError)
    assert issubclass(aiomasto.ResponseTooLarge, aiomasto.TransportError)


async def test_paginator_misuse_is_a_mastodon_error(server: FakeMastodon) -> None:
    alice = server.add_account("alice")
    server.add_followers(alice, 3)
    async with Session(url(server), app=APP) as masto, asyncio.timeout(5):
        with pytest.raises(ConfigurationError) as bad_limit:
            masto.followers(alice, max_items=0)
        assert isinstance(bad_limit.value, ValueError)
        with pytest.raises(ConfigurationError):
            masto.followers(alice, direction="sideways")  # type: ignore[arg-type]
        with pytest.raises(ConfigurationError):
            masto.followers(alice).resume("http://[::1")
        pager = masto.followers(int(alice))
        assert len([a async for a in pager]) == 3
        with pytest.raises(UsageError) as twice:
            async for _ in pager:
                pass
        assert isinstance(twice.value, RuntimeError)


@pytest.mark.parametrize(
    "settings", [{"attempts": 0}, {"backoff": -1.0}, {"budget": -5.0}, {"max_backoff": -1.0}]
)
def test_bad_retry_settings_are_configuration_errors(settings: dict[str, float]) -> None:
    with pytest.raises(ConfigurationError):
        aiomasto.Retry(**settings)  # type: ignore[arg-type]
