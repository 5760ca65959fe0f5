"""The "Sign in with Mastodon" example (examples/signin) in a real browser: headless Chromium.

The fake Mastodon and the example backend both run on the test's event loop, on two loopback
ports; Selenium drives Chromium from a worker thread (tests/browser.py). Set
``AIOMASTO_SCREENSHOTS`` to a folder to keep a screenshot of the signed-in page.
"""

from __future__ import annotations

import os
import socket
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import attrs
import pytest
from aiohttp import web
from browser import Browser

from aiomasto import App, MemoryTokenStore, StoreKey, store_keys
from aiomasto.testing import FakeMastodon
from examples.signin import COOKIE, make_app

PASSWORD = "correct horse battery staple"


@attrs.frozen(kw_only=True)
class Sites:
    server: FakeMastodon
    fake_url: str
    site_url: str
    store: MemoryTokenStore
    app: App
    alice: str


@pytest.fixture
async def sites() -> AsyncIterator[Sites]:
    """A fake Mastodon with alice and her followers, and the example backend in front of it."""
    server = FakeMastodon()
    alice = server.add_account("alice", display_name="Alice Liddell", password=PASSWORD)
    server.add_followers(alice, 12)  # older follows, then three newer ones with names
    for username, name in (("bob", "Bob"), ("carol", "Carol"), ("dave", "Dave")):
        server.follow(server.add_account(username, display_name=name), alice)
    # The backend's port must be known before its app is registered with its callback URL.
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    site_url = f"http://127.0.0.1:{listener.getsockname()[1]}"
    app = App(name="Sign-in example", scopes="read", redirect_uris=f"{site_url}/callback")
    store = MemoryTokenStore()
    async with server.run() as fake_url, aiohttp.ClientSession() as http:
        runner = web.AppRunner(make_app(http=http, store=store, app=app), shutdown_timeout=0.5)
        await runner.setup()
        try:
            await web.SockSite(runner, listener).start()
            yield Sites(
                server=server,
                fake_url=fake_url,
                site_url=site_url,
                store=store,
                app=app,
                alice=alice,
            )
        finally:
            await runner.cleanup()


async def sign_in_at_the_instance(browser: Browser, sites: Sites) -> None:
    """From the example's start page to the fake instance's authorize page."""
    await browser.open(f"{sites.site_url}/")
    await browser.type("#instance", sites.fake_url)
    await browser.click("#sign-in-button")
    await browser.wait_for_url(f"{sites.fake_url}/oauth/authorize")
    assert await browser.text("#app-name") == "Sign-in example"


async def user_keys(sites: Sites) -> list[StoreKey]:
    return [key for key in await store_keys(sites.store) if key.account is not None]


async def test_sign_in_shows_who_you_are_and_your_followers_and_sign_out_revokes(
    browser: Browser, sites: Sites
) -> None:
    await sign_in_at_the_instance(browser, sites)
    await browser.type("#username", "alice")
    await browser.type("#password", PASSWORD)
    await browser.click("#authorize")

    await browser.wait_for_url(f"{sites.site_url}/")
    assert await browser.text("#who") == "Signed in as Alice Liddell @alice"
    followers = await browser.texts("#followers li")
    assert followers[:3] == ["Dave @dave", "Carol @carol", "Bob @bob"]  # newest follow first
    assert len(followers) == 10  # the first page only
    if folder := os.environ.get("AIOMASTO_SCREENSHOTS"):
        await browser.screenshot(Path(folder) / "signin.png")

    # The token stayed on the server: the browser holds a random session id, nothing else.
    [key] = await user_keys(sites)
    assert key == StoreKey(instance=sites.fake_url, app=sites.app.name, account=sites.alice)
    credentials = await sites.store.load(key)
    assert credentials is not None
    assert credentials.token is not None
    token = str(credentials.token.access_token)
    cookies = {c["name"]: str(c["value"]) for c in await browser.cookies()}
    assert token not in "".join(cookies.values())
    assert COOKIE in cookies

    await browser.click("#sign-out-button")
    await browser.find("#sign-in")
    [revoke] = [r for r in sites.server.requests if r.path == "/oauth/revoke"]
    form = dict(revoke.form)
    registered = await sites.store.load(StoreKey(instance=sites.fake_url, app=sites.app.name))
    assert registered is not None
    assert registered.app is not None
    assert form["token"] == token
    assert form["client_id"] == registered.app.client_id
    assert form["client_secret"] == registered.app.client_secret
    assert await user_keys(sites) == []
    async with (
        aiohttp.ClientSession() as http,
        http.get(
            f"{sites.fake_url}/api/v1/accounts/verify_credentials",
            headers={"Authorization": f"Bearer {token}"},
        ) as response,
    ):
        assert response.status == 401


async def test_deny_shows_a_friendly_error_page(browser: Browser, sites: Sites) -> None:
    await sign_in_at_the_instance(browser, sites)
    await browser.click("#deny")

    await browser.wait_for_url(f"{sites.site_url}/callback")
    assert await browser.text("#error") == "You did not sign in"
    assert not [r for r in sites.server.requests if r.path == "/oauth/token"]
    assert await user_keys(sites) == []
    await browser.click("#again")
    await browser.find("#sign-in")
