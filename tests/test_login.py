"""Signing people in: Authorizer.start / finish over loopback against aiomasto.testing.

The person's approval is played by the fake server (``create_authorization_code`` with what
the authorize URL asked for), so these run without a browser; tests/test_browser.py clicks
through the real pages.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

import pytest
from attrs import evolve

import aiomasto
import aiomasto.oauth
from aiomasto import (
    OOB_REDIRECT_URI,
    App,
    Authorizer,
    JsonFileTokenStore,
    LoginState,
    MemoryTokenStore,
    StoreKey,
)
from aiomasto.testing import FakeMastodon, Fault

CALLBACK = "http://127.0.0.1:9/callback"
SITE = App(name="My site", scopes="read write", redirect_uris=(CALLBACK, OOB_REDIRECT_URI))


def url(server: FakeMastodon) -> str:
    assert server.url is not None
    return server.url


def query(link: str) -> dict[str, str]:
    return dict(parse_qsl(urlsplit(link).query))


def approve(
    server: FakeMastodon, link: str, account: str, *, scopes: str | None = None
) -> dict[str, str]:
    """What the callback receives once ``account`` approved the authorize URL ``link``."""
    asked = query(link)
    code = server.create_authorization_code(
        asked["client_id"],
        account,
        redirect_uri=asked["redirect_uri"],
        scopes=scopes or asked["scope"],
        code_challenge=asked["code_challenge"],
        code_challenge_method=asked["code_challenge_method"],
    )
    return {"code": code, "state": asked["state"]}


@pytest.fixture
def alice(server: FakeMastodon) -> str:
    account = server.add_account("alice", display_name="Alice")
    server.add_followers(account, 3)
    return account


async def sign_in(
    auth: Authorizer, server: FakeMastodon, account: str, redirect_uri: str | None = None
) -> aiomasto.UserLogin:
    async with asyncio.timeout(10):
        begun = await auth.start(url(server), redirect_uri=redirect_uri)
        return await auth.finish(begun.state, approve(server, begun.url, account))


async def test_the_authorize_url_asks_for_exactly_what_is_documented(
    server: FakeMastodon,
) -> None:
    auth = Authorizer(SITE)
    begun = await auth.start(url(server))
    asked = query(begun.url)
    assert urlsplit(begun.url).path == "/oauth/authorize"
    assert set(asked) == {
        "response_type",
        "client_id",
        "redirect_uri",
        "scope",
        "state",
        "code_challenge",
        "code_challenge_method",
    }
    assert asked["response_type"] == "code"
    assert asked["redirect_uri"] == CALLBACK
    assert asked["scope"] == "read write"
    assert asked["state"] == begun.state.state
    assert asked["code_challenge_method"] == "S256"
    assert asked["code_challenge"] == aiomasto.oauth.code_challenge(begun.state.code_verifier)
    assert begun.state.code_verifier not in begun.url
    more = await auth.start(url(server), force_login=True, lang="de", scopes="read")
    assert query(more.url)["force_login"] == "true"
    assert query(more.url)["lang"] == "de"
    assert query(more.url)["scope"] == "read"
    assert server.count("POST", "/api/v1/apps") == 1  # registered once, for both


async def test_a_person_signs_in_and_their_token_is_stored_under_their_account(
    server: FakeMastodon, alice: str
) -> None:
    store = MemoryTokenStore()
    auth = Authorizer(SITE, store=store)
    user = await sign_in(auth, server, alice)
    assert user.account.username == "alice"
    assert user.key == StoreKey(instance=url(server), app=SITE.name, account=alice)
    assert user.scopes == ("read", "write")
    assert await auth.accounts() == [user.key]
    async with auth.session(url(server), alice) as masto, asyncio.timeout(5):
        me = await masto.verify_credentials()
        followers = await masto.followers_page(alice)
    assert me.id == alice
    assert len(followers.items) == 3
    token_requests = [r for r in server.requests if r.path == "/oauth/token"]
    sent = dict(token_requests[-1].form)
    assert sent["grant_type"] == "authorization_code"
    assert sent["redirect_uri"] == CALLBACK
    assert "code_verifier" in sent


async def test_the_out_of_band_flow_takes_a_pasted_code(server: FakeMastodon, alice: str) -> None:
    auth = Authorizer(SITE)
    user = await sign_in(auth, server, alice, redirect_uri=OOB_REDIRECT_URI)
    assert user.account.id == alice


async def test_two_people_of_one_app_stay_apart_in_one_store(
    server: FakeMastodon, alice: str, tmp_path: Path
) -> None:
    bob = server.add_account("bob")
    store = JsonFileTokenStore(tmp_path / "tokens.json")
    auth = Authorizer(SITE, store=store)
    first, second = await asyncio.gather(sign_in(auth, server, alice), sign_in(auth, server, bob))
    assert first.token.access_token != second.token.access_token
    assert sorted(k.account or "" for k in await auth.accounts(url(server))) == sorted([alice, bob])
    for who in (alice, bob):
        async with auth.session(url(server), who) as masto, asyncio.timeout(5):
            assert (await masto.verify_credentials()).id == who
    assert server.count("POST", "/api/v1/apps") == 1


async def test_a_login_state_survives_a_trip_through_json(server: FakeMastodon, alice: str) -> None:
    auth = Authorizer(SITE)
    begun = await auth.start(url(server))
    kept = begun.state.to_json()
    assert begun.state.code_verifier not in repr(begun.state)
    user = await auth.finish(LoginState.from_json(kept), approve(server, begun.url, alice))
    assert user.account.id == alice


# -- what must fail, and how -------------------------------------------------------------------


async def test_scopes_or_redirect_uris_the_app_lacks_are_refused_before_any_request(
    server: FakeMastodon,
) -> None:
    auth = Authorizer(SITE)
    with pytest.raises(aiomasto.ConfigurationError):
        await auth.start(url(server), scopes="read follow")
    with pytest.raises(aiomasto.ConfigurationError):
        await auth.start(url(server), scopes="read:accounts")
    with pytest.raises(aiomasto.ConfigurationError):
        await auth.start(url(server), redirect_uri="https://evil.example/callback")
    assert server.requests == []


async def test_a_callback_with_another_state_is_refused(server: FakeMastodon, alice: str) -> None:
    auth = Authorizer(SITE)
    begun = await auth.start(url(server))
    params = approve(server, begun.url, alice)
    with pytest.raises(aiomasto.StateMismatch):
        await auth.finish(begun.state, {**params, "state": "forged"})
    with pytest.raises(aiomasto.StateMismatch):
        await auth.finish(begun.state, {"code": params["code"]})
    assert server.count("POST", "/oauth/token") == 0


async def test_a_replayed_callback_is_refused(server: FakeMastodon, alice: str) -> None:
    auth = Authorizer(SITE)
    begun = await auth.start(url(server))
    params = approve(server, begun.url, alice)
    await auth.finish(begun.state, params)
    with pytest.raises(aiomasto.StateMismatch, match="already"):
        await auth.finish(begun.state, params)
    # Another process that kept the state too: the server refuses the used code.
    with pytest.raises(aiomasto.OAuthError) as info:
        await Authorizer(SITE, store=MemoryTokenStore()).finish(begun.state, params)
    assert info.value.error == "invalid_grant"


async def test_a_wrong_code_verifier_is_refused_by_the_server(
    server: FakeMastodon, alice: str
) -> None:
    auth = Authorizer(SITE)
    begun = await auth.start(url(server))
    params = approve(server, begun.url, alice)
    tampered = evolve(begun.state, code_verifier=aiomasto.oauth.make_code_verifier())
    with pytest.raises(aiomasto.OAuthError) as info:
        await auth.finish(tampered, params)
    assert info.value.error == "invalid_grant"
    assert await auth.accounts() == []


async def test_a_denied_sign_in_raises_authorization_denied(server: FakeMastodon) -> None:
    auth = Authorizer(SITE)
    begun = await auth.start(url(server))
    denied: Mapping[str, str] = {
        "error": "access_denied",
        "error_description": "The resource owner or authorization server denied the request.",
        "state": begun.state.state,
    }
    with pytest.raises(aiomasto.AuthorizationDenied) as info:
        await auth.finish(begun.state, denied)
    assert info.value.error == "access_denied"
    assert server.count("POST", "/oauth/token") == 0


async def test_a_sign_in_older_than_max_age_has_expired(server: FakeMastodon, alice: str) -> None:
    now = [1_800_000_000.0]
    auth = Authorizer(SITE, clock=lambda: now[0], max_age=600)
    begun = await auth.start(url(server))
    params = approve(server, begun.url, alice)
    now[0] += 601
    with pytest.raises(aiomasto.LoginExpired):
        await auth.finish(begun.state, params)


async def test_fewer_scopes_than_asked_raise_unless_allowed(
    server: FakeMastodon, alice: str
) -> None:
    strict = Authorizer(SITE)
    begun = await strict.start(url(server))
    with pytest.raises(aiomasto.ScopeMismatch):
        await strict.finish(begun.state, approve(server, begun.url, alice, scopes="read"))
    assert await strict.accounts() == []
    lenient = Authorizer(SITE, allow_fewer_scopes=True)
    begun = await lenient.start(url(server))
    user = await lenient.finish(begun.state, approve(server, begun.url, alice, scopes="read"))
    assert user.scopes == ("read",)


# -- revoke ------------------------------------------------------------------------------------


async def test_revoking_a_user_token_sends_the_client_credentials_and_deletes_it(
    server: FakeMastodon, alice: str
) -> None:
    auth = Authorizer(SITE)
    user = await sign_in(auth, server, alice)
    async with auth.session(url(server), alice) as masto, asyncio.timeout(5):
        await masto.revoke()
        await masto.revoke()  # twice is fine
    [revoked] = [r for r in server.requests if r.path == "/oauth/revoke"]
    sent = dict(revoked.form)
    assert sent["token"] == user.token.access_token
    assert sent["client_id"]
    assert sent["client_secret"]
    assert await auth.accounts() == []
    token = user.token.access_token
    async with aiomasto.Session(url(server), access_token=token) as masto, asyncio.timeout(5):
        with pytest.raises(aiomasto.Unauthorized):
            await masto.verify_credentials()
    with pytest.raises(aiomasto.UsageError, match="sign"):
        async with auth.session(url(server), alice) as masto:
            await masto.verify_credentials()


async def test_revoking_a_given_user_token_with_its_app_sends_client_credentials(
    server: FakeMastodon, alice: str
) -> None:
    store = MemoryTokenStore()
    auth = Authorizer(SITE, store=store)
    user = await sign_in(auth, server, alice)
    token = user.token.access_token
    async with (
        aiomasto.Session(url(server), app=SITE, store=store, access_token=token) as masto,
        asyncio.timeout(5),
    ):
        await masto.revoke()
    [revoked] = [r for r in server.requests if r.path == "/oauth/revoke"]
    assert dict(revoked.form)["client_secret"]


# -- discovery and userinfo --------------------------------------------------------------------


async def test_the_discovered_authorize_endpoint_is_used(server: FakeMastodon) -> None:
    document = {
        "issuer": f"{url(server)}/",
        "authorization_endpoint": f"{url(server)}/oauth/authorize?from=metadata",
        "token_endpoint": f"{url(server)}/oauth/token",
        "revocation_endpoint": f"{url(server)}/oauth/revoke",
    }
    server.inject("/.well-known/oauth-authorization-server", Fault.json(200, document))
    begun = await Authorizer(SITE).start(url(server))
    assert query(begun.url)["from"] == "metadata"
    assert server.count("GET", "/.well-known/oauth-authorization-server") == 1


async def test_a_discovered_endpoint_on_another_origin_is_refused(server: FakeMastodon) -> None:
    document = {
        "issuer": f"{url(server)}/",
        "authorization_endpoint": f"{url(server)}/oauth/authorize",
        "token_endpoint": "https://evil.example/oauth/token",
    }
    server.inject("/.well-known/oauth-authorization-server", Fault.json(200, document))
    with pytest.raises(aiomasto.OriginError):
        await Authorizer(SITE).start(url(server))


@pytest.mark.parametrize("flavor", ["gotosocial", "akkoma"])
async def test_servers_without_metadata_fall_back_to_the_oauth_paths(flavor: str) -> None:
    server = FakeMastodon(flavor=flavor)  # type: ignore[arg-type]
    alice = server.add_account("alice")
    async with server.run(), asyncio.timeout(10):
        auth = Authorizer(App(name="My site", scopes="read", redirect_uris=CALLBACK))
        begun = await auth.start(url(server))
        assert urlsplit(begun.url).path == "/oauth/authorize"
        redirect = server.authorize(begun.url, alice)
        user = await auth.finish(begun.state, dict(parse_qsl(urlsplit(redirect).query)))
    assert user.account.id == alice


async def test_userinfo_with_the_profile_scope(server: FakeMastodon, alice: str) -> None:
    app = App(name="Profile", scopes="read profile", redirect_uris=CALLBACK)
    auth = Authorizer(app)
    begun = await auth.start(url(server))
    await auth.finish(begun.state, approve(server, begun.url, alice))
    async with auth.session(url(server), alice) as masto, asyncio.timeout(5):
        info = await masto.userinfo()
    assert info.preferred_username == "alice"
    assert info.name == "Alice"
    begun = await auth.start(url(server), scopes="read")
    bob = server.add_account("bob")
    await auth.finish(begun.state, approve(server, begun.url, bob))
    async with auth.session(url(server), bob) as masto, asyncio.timeout(5):
        with pytest.raises(aiomasto.Forbidden):
            await masto.userinfo()


async def test_the_metadata_is_asked_for_once_per_quarter_hour(
    server: FakeMastodon, alice: str
) -> None:
    now = [1_800_000_000.0]
    auth = Authorizer(SITE, clock=lambda: now[0])
    for _ in range(3):
        begun = await auth.start(url(server))
        await auth.finish(begun.state, approve(server, begun.url, alice))
    assert server.count("GET", "/.well-known/oauth-authorization-server") == 1
    now[0] += 901
    await auth.start(url(server))
    assert server.count("GET", "/.well-known/oauth-authorization-server") == 2
