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
    mallory: str


@pytest.fixture
async def sites() -> AsyncIterator[Sites]:
    """A fake Mastodon with alice and her followers, and the example backend in front of it."""
    server = FakeMastodon()
    alice = server.add_account("alice", display_name="Alice Liddell", password=PASSWORD)
    server.add_followers(alice, 12)  # older follows, then three newer ones with names
    for username, name in (("bob", "Bob"), ("carol", "Carol"), ("dave", "Dave")):
        server.follow(server.add_account(username, display_name=name), alice)
    mallory = server.add_account("mallory", display_name="<script>alert(1)</script>")
    # The backend's port must be known before its app is registered with its callback URL.
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    site_url = f"http://127.0.0.1:{listener.getsockname()[1]}"
    app = App(name="Sign-in example", scopes="read", redirect_uris=f"{site_url}/callback")
    store = MemoryTokenStore()
    # The site closes the socket when it stops; the with closes it if the site never starts.
    with listener:
        async with server.run() as fake_url, aiohttp.ClientSession() as http:
            site = make_app(http=http, store=store, app=app)
            runner = web.AppRunner(site, shutdown_timeout=0.5)
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
                    mallory=mallory,
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


# Without a browser: the same site over aiohttp, with the fake answering the authorize URL.


def token_requests(sites: Sites) -> int:
    return sum(1 for r in sites.server.requests if r.path == "/oauth/token")


async def test_the_site_escapes_names_and_refuses_a_forged_sign_out_and_a_replay(
    sites: Sites,
) -> None:
    # unsafe: keep cookies set by an IP-address host (127.0.0.1), as a browser does
    jar = aiohttp.CookieJar(unsafe=True)
    async with aiohttp.ClientSession(cookie_jar=jar) as http:
        async with http.post(
            f"{sites.site_url}/login", data={"instance": sites.fake_url}, allow_redirects=False
        ) as response:
            assert response.status == 303
            authorize = response.headers["Location"]
        callback = sites.server.authorize(authorize, sites.mallory)
        async with http.get(callback) as response:
            page = await response.text()
        assert response.status == 200
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
        assert "<script>" not in page
        assert token_requests(sites) == 1

        async with http.post(f"{sites.site_url}/logout", data={"csrf": "forged"}) as response:
            assert response.status == 403
        assert not [r for r in sites.server.requests if r.path == "/oauth/revoke"]
        assert len(await user_keys(sites)) == 1

        async with http.get(callback) as response:
            assert response.status == 400
            assert "This sign-in link is not for this browser" in await response.text()
        assert token_requests(sites) == 1


@pytest.mark.parametrize(
    ("instance", "says"),
    [
        ("http://mastodon.example", "refusing plain http://"),
        ("https://mastodon.example/path", "without a path"),
    ],
)
async def test_an_instance_the_client_refuses_is_explained_on_the_form(
    sites: Sites, instance: str, says: str
) -> None:
    async with (
        aiohttp.ClientSession() as http,
        http.post(f"{sites.site_url}/login", data={"instance": instance}) as response,
    ):
        page = await response.text()
    assert response.status == 400
    assert says in page
    assert 'id="sign-in"' in page
    assert sites.server.requests == []
