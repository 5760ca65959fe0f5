"""Expiring user tokens: refreshed once for every task, saved, and never on Mastodon."""

from __future__ import annotations

import asyncio
import time
from urllib.parse import parse_qsl, urlsplit

import pytest

import aiomasto
from aiomasto import App, Authorizer, MemoryTokenStore, StoreKey
from aiomasto.testing import FakeMastodon

SITE = App(name="My site", scopes="read", redirect_uris="http://127.0.0.1:9/callback")
TASKS = 50


class Clock:
    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


async def signed_in(
    server: FakeMastodon, auth: Authorizer, account: str
) -> tuple[aiomasto.UserLogin, StoreKey]:
    assert server.url is not None
    async with asyncio.timeout(10):
        begun = await auth.start(server.url)
        redirect = server.authorize(begun.url, account)
        user = await auth.finish(begun.state, dict(parse_qsl(urlsplit(redirect).query)))
    return user, user.key


def refreshes(server: FakeMastodon) -> int:
    return sum(
        1
        for r in server.requests
        if r.path == "/oauth/token" and dict(r.form).get("grant_type") == "refresh_token"
    )


async def test_an_akkoma_token_is_refreshed_once_before_it_expires() -> None:
    clock = Clock()
    server = FakeMastodon(flavor="akkoma", clock=clock)
    alice = server.add_account("alice")
    store = MemoryTokenStore()
    auth = Authorizer(SITE, store=store, clock=clock)
    async with server.run():
        user, key = await signed_in(server, auth, alice)
        assert user.token.refresh_token is not None
        assert user.token.expires_in is not None
        clock.now += user.token.expires_in - 30  # inside the refresh margin, not expired yet
        async with auth.session(key.instance, alice) as masto, asyncio.timeout(10):
            results = await asyncio.gather(*(masto.verify_credentials() for _ in range(TASKS)))
    assert all(me.id == alice for me in results)
    assert refreshes(server) == 1
    stored = await store.load(key)
    assert stored is not None
    assert stored.token is not None
    assert stored.token.access_token != user.token.access_token
    assert stored.token.refresh_token is not None


async def test_a_token_the_server_says_expired_is_refreshed_once_and_replayed() -> None:
    server_clock = Clock()
    server = FakeMastodon(token_lifetime=3600, clock=server_clock)
    alice = server.add_account("alice")
    store = MemoryTokenStore()
    auth = Authorizer(SITE, store=store)  # the client's clock does not see it coming
    async with server.run():
        user, key = await signed_in(server, auth, alice)
        server_clock.now += 7200
        async with auth.session(key.instance, alice) as masto, asyncio.timeout(10):
            results = await asyncio.gather(*(masto.verify_credentials() for _ in range(TASKS)))
    assert all(me.id == alice for me in results)
    assert refreshes(server) == 1
    stored = await store.load(key)
    assert stored is not None
    assert stored.token is not None
    assert stored.token.access_token != user.token.access_token


async def test_mastodon_tokens_are_never_refreshed(server: FakeMastodon) -> None:
    alice = server.add_account("alice")
    auth = Authorizer(SITE)
    user, key = await signed_in(server, auth, alice)
    assert user.token.refresh_token is None
    server.revoke_token(user.token.access_token)
    async with auth.session(key.instance, alice) as masto, asyncio.timeout(10):
        with pytest.raises(aiomasto.Unauthorized):
            await masto.verify_credentials()
    assert refreshes(server) == 0
