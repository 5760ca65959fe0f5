"""Where the token may go: one normalised origin, checked on every URL just before it is sent.

A second FakeMastodon plays the foreign host; after each hostile case it must have received
nothing at all (so certainly no ``Authorization`` header).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from yarl import URL

import aiomasto
from aiomasto import App, MemoryTokenStore, Session
from aiomasto._urls import check_origin, normalise_instance
from aiomasto.testing import FakeMastodon, Fault

APP = App(name="Origin test")


@pytest.fixture
async def elsewhere() -> AsyncIterator[FakeMastodon]:
    """The host the token must never reach."""
    fake = FakeMastodon()
    async with fake.run():
        yield fake


def url_of(server: FakeMastodon) -> str:
    assert server.url is not None
    return server.url


def hostport(server: FakeMastodon) -> str:
    return url_of(server).removeprefix("http://")


def followers(account: str) -> str:
    return f"/api/v1/accounts/{account}/followers"


def redirect_to(location: str) -> Fault:
    return Fault.raw(302, b"", "text/html", headers={"Location": location})


# -- network-path references (point 1) ---------------------------------------------------------


async def test_a_path_starting_with_two_slashes_is_refused(
    server: FakeMastodon, elsewhere: FakeMastodon
) -> None:
    async with Session(url_of(server), app=APP) as masto, asyncio.timeout(5):
        await masto.authenticate()
        with pytest.raises(aiomasto.OriginError):
            await masto.request("GET", f"//{hostport(elsewhere)}/api/v1/apps/verify_credentials")
    assert elsewhere.requests == []


async def test_a_cursor_starting_with_two_slashes_is_refused(
    server: FakeMastodon, elsewhere: FakeMastodon
) -> None:
    alice = server.add_account("alice")
    server.add_followers(alice, 10)
    cursor = f"//{hostport(elsewhere)}{followers(alice)}?max_id=5"
    async with Session(url_of(server), app=APP) as masto, asyncio.timeout(5):
        with pytest.raises(aiomasto.OriginError):
            await masto.followers_page(alice, cursor=cursor)
        with pytest.raises(aiomasto.OriginError):
            await masto.following_page(alice, cursor=cursor)
        with pytest.raises(aiomasto.OriginError) as info:
            async for _ in masto.followers(alice).resume(cursor):
                pass
    assert info.value.cursor == cursor
    assert elsewhere.requests == []


async def test_a_link_whose_path_names_another_host_is_refused(
    server: FakeMastodon, elsewhere: FakeMastodon
) -> None:
    # https://instance//evil.example:443/api/... would become the cursor //evil.example:443/...
    alice = server.add_account("alice")
    server.add_followers(alice, 100)
    base = url_of(server)
    server.rewrite_links(lambda link: link.replace(f"{base}/", f"{base}//{hostport(elsewhere)}/"))
    async with Session(base, app=APP) as masto, asyncio.timeout(5):
        got = 0
        with pytest.raises(aiomasto.OriginError):
            async for _ in masto.followers(alice, limit=40):
                got += 1
    assert got == 0  # the page whose link cannot be followed is not handed out
    assert elsewhere.requests == []
    assert not any(r.path.startswith("//") for r in server.requests)


@pytest.mark.parametrize(
    "make_location",
    [
        lambda home, other: f"//{other}/api/v1/apps/verify_credentials",
        lambda home, other: f"{home}//{other}/api/v1/apps/verify_credentials",
        lambda home, other: f"http://{other}/api/v1/apps/verify_credentials",
        lambda home, other: f"http://user:pw@{home.removeprefix('http://')}/api/v1/x",
        lambda home, other: "http://[::1",
    ],
    ids=["network-path", "double-slash-path", "other-origin", "userinfo", "unreadable"],
)
async def test_a_redirect_that_leaves_the_instance_is_refused(
    server: FakeMastodon, elsewhere: FakeMastodon, make_location: object
) -> None:
    assert callable(make_location)
    location = make_location(url_of(server), hostport(elsewhere))
    async with Session(url_of(server), app=APP) as masto, asyncio.timeout(5):
        await masto.authenticate()
        server.inject("/api/v1/apps/verify_credentials", redirect_to(location))
        with pytest.raises(aiomasto.OriginError):
            await masto.verify_app()
    assert elsewhere.requests == []
    assert server.count("GET", "/api/v1/x") == 0


async def test_a_link_with_credentials_in_it_is_refused(server: FakeMastodon) -> None:
    alice = server.add_account("alice")
    server.add_followers(alice, 100)
    base = url_of(server)
    server.rewrite_links(lambda link: link.replace("http://", "http://mallory:pw@"))
    async with Session(base, app=APP) as masto, asyncio.timeout(5):
        with pytest.raises(aiomasto.OriginError):
            async for _ in masto.followers(alice, limit=40):
                pass
    assert server.count("GET", followers(alice)) == 1


# -- one origin, many spellings (point 2) ------------------------------------------------------


@pytest.mark.parametrize(
    ("instance", "target"),
    [
        ("https://example.com", "https://example.com:443/api/v1/x"),
        ("https://example.com:443", "https://example.com/api/v1/x"),
        ("https://EXAMPLE.com", "HTTPS://example.COM/api/v1/x"),
        ("http://localhost:8080", "http://LOCALHOST:8080/api/v1/x"),
        ("http://localhost", "http://localhost:80/api/v1/x"),
        ("https://bücher.example", "https://xn--bcher-kva.example/api/v1/x"),
        ("https://xn--bcher-kva.example", "https://BÜCHER.example/api/v1/x"),
        ("https://example.com.", "https://example.com/api/v1/x"),
    ],
)
def test_one_origin_spelled_differently_is_the_same_origin(instance: str, target: str) -> None:
    check_origin(URL(target), normalise_instance(instance, allow_insecure_http=True))


@pytest.mark.parametrize(
    ("instance", "target"),
    [
        ("https://example.com", "http://example.com/api/v1/x"),
        ("https://example.com", "https://example.com:8443/api/v1/x"),
        ("https://example.com", "https://www.example.com/api/v1/x"),
        ("https://example.com", "https://example.com.evil.example/api/v1/x"),
        ("http://localhost:8080", "http://127.0.0.1:8080/api/v1/x"),
        ("https://example.com", "/api/v1/x"),
        ("https://example.com", "https://example.com//evil.example/api/v1/x"),
    ],
)
def test_other_origins_are_refused(instance: str, target: str) -> None:
    with pytest.raises(aiomasto.OriginError):
        check_origin(URL(target), normalise_instance(instance, allow_insecure_http=True))


def test_the_store_key_is_the_normalised_origin() -> None:
    spellings = [
        "https://Example.COM",
        "https://example.com:443",
        "HTTPS://example.com/",
        "example.com",
        "https://example.com.",
    ]
    keys = {repr(Session(s, app=APP).store_key) for s in spellings}
    assert len(keys) == 1
    idna = ["bücher.example", "xn--bcher-kva.example"]
    assert len({repr(Session(s, app=APP).store_key) for s in idna}) == 1


async def test_links_in_another_spelling_of_the_instance_are_followed(
    server: FakeMastodon,
) -> None:
    alice = server.add_account("alice")
    server.add_followers(alice, 100)
    base = url_of(server)
    server.rewrite_links(lambda link: link.replace(base, base.upper()))
    store = MemoryTokenStore()
    async with Session(base, app=APP, store=store) as masto, asyncio.timeout(5):
        assert len([a async for a in masto.followers(alice, limit=40)]) == 100
    # Another spelling of the same instance finds the same stored registration.
    async with Session(base.upper() + "/", app=APP, store=store) as masto, asyncio.timeout(5):
        await masto.verify_app()
    assert server.count("POST", "/api/v1/apps") == 1
    assert server.count("POST", "/oauth/token") == 1


async def test_an_unreadable_link_url_is_a_pagination_error(server: FakeMastodon) -> None:
    alice = server.add_account("alice")
    server.add_followers(alice, 100)
    server.rewrite_links(lambda _: '<http://[::1>; rel="next"')
    async with Session(url_of(server), app=APP) as masto, asyncio.timeout(5):
        with pytest.raises(aiomasto.PaginationError) as info:
            async for _ in masto.followers(alice, limit=40):
                pass
    assert info.value.cursor == f"{followers(alice)}?limit=40"
