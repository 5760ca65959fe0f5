"""FakeMastodon's sign-in surface over real HTTP: the authorize page, its no-browser twin,
PKCE and codes, RFC 8414 metadata, userinfo, revocation and expiring tokens (§3-§7, §14)."""

from __future__ import annotations

import asyncio
import base64
import re
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import aiohttp
import fakehttp
import pytest
from fakehttp import Clock, Reply

from aiomasto.testing import DEFAULT_PASSWORD, FakeMastodon, s256

T0 = 1_786_111_500.0
OOB = "urn:ietf:wg:oauth:2.0:oob"
CALLBACK = "http://127.0.0.1:8765/callback"
VERIFIER = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"
INVALID_GRANT = "invalid_grant"


class Client(fakehttp.Client):
    """A plain aiohttp client that never follows redirects and keeps cookies."""

    def __init__(self, server: FakeMastodon, url: str, http: aiohttp.ClientSession) -> None:
        super().__init__(url, http)
        self.server = server

    async def request(
        self, method: str, path: str, token: str | None = None, **kwargs: Any
    ) -> Reply:
        kwargs.setdefault("allow_redirects", False)
        async with asyncio.timeout(10):
            return await super().request(method, path, token, **kwargs)

    def app(self, scopes: str = "read write profile", uris: str = f"{CALLBACK}\n{OOB}") -> Any:
        return self.server.register_app("Sign-in test", scopes=scopes, redirect_uris=uris)

    def authorize_query(self, app: Any, **params: str) -> dict[str, str]:
        query = {
            "response_type": "code",
            "client_id": app["client_id"],
            "redirect_uri": CALLBACK,
            "scope": "read",
            "state": "st-1",
            "code_challenge": s256(VERIFIER),
            "code_challenge_method": "S256",
        }
        query.update(params)
        return {k: v for k, v in query.items() if v != "-"}

    async def exchange(self, app: Any, code: str, **extra: str) -> Reply:
        form = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": CALLBACK,
            "client_id": app["client_id"],
            "client_secret": app["client_secret"],
            "code_verifier": VERIFIER,
        }
        form.update(extra)
        return await self.post("/oauth/token", data={k: v for k, v in form.items() if v != "-"})


def query_of(location: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}


def text(reply: Reply) -> str:
    return reply.body.decode()


@pytest.fixture
def clock() -> Clock:
    return Clock(T0)


@pytest.fixture
def server(clock: Clock) -> FakeMastodon:
    return FakeMastodon(clock=clock)


async def _client(server: FakeMastodon) -> AsyncIterator[Client]:
    jar = aiohttp.CookieJar(unsafe=True)  # cookies for 127.0.0.1
    async with server.run() as url, aiohttp.ClientSession(cookie_jar=jar) as http:
        yield Client(server, url, http)


@pytest.fixture
async def client(server: FakeMastodon) -> AsyncIterator[Client]:
    async for c in _client(server):
        yield c


# GET /oauth/authorize: the page


async def test_authorize_page_is_a_login_form_with_stable_ids(client: Client) -> None:
    client.server.add_account("alice")
    app = client.app()
    reply = await client.get("/oauth/authorize", params=client.authorize_query(app, lang="de"))
    assert reply.status == 200
    assert reply.headers["Content-Type"].startswith("text/html")
    page = text(reply)
    assert '<html lang="de">' in page
    assert '<form id="authorize-form" method="post" action="/oauth/authorize">' in page
    assert 'id="username" name="username"' in page
    assert 'type="password" id="password" name="password"' in page
    assert 'id="authorize" name="decision" value="authorize"' in page
    assert 'id="deny" name="decision" value="deny"' in page
    assert '<strong id="app-name">Sign-in test</strong>' in page
    assert '<li data-scope="read">read</li>' in page
    # The request's parameters ride along as hidden fields, state exactly as given.
    assert '<input type="hidden" name="state" value="st-1">' in page
    assert f'name="client_id" value="{app["client_id"]}"' in page
    assert 'id="signed-in-as"' not in page


@pytest.mark.parametrize(
    ("change", "status", "error"),
    [
        ({"client_id": "-"}, 400, "invalid_request"),
        ({"client_id": "nope"}, 401, "invalid_client"),
        ({"redirect_uri": "http://127.0.0.1:8765/elsewhere"}, 400, "invalid_redirect_uri"),
        ({"redirect_uri": "-"}, 400, "invalid_redirect_uri"),
        # Errors that would redirect are shown instead when the redirect URI is oob.
        ({"redirect_uri": OOB, "scope": "admin:read"}, 400, "invalid_scope"),
    ],
)
async def test_authorize_errors_that_never_redirect(
    client: Client, change: dict[str, str], status: int, error: str
) -> None:
    app = client.app()
    for method in ("GET", "POST"):
        query = client.authorize_query(app, **change)
        if method == "GET":
            reply = await client.get("/oauth/authorize", params=query)
        else:
            reply = await client.post("/oauth/authorize", data={**query, "decision": "authorize"})
        assert reply.status == status
        assert "Location" not in reply.headers
        assert f'<p id="oauth-error" data-error="{error}">' in text(reply)
    assert client.server.count("GET", "/oauth/authorize") == 1
    assert client.server.count("POST", "/oauth/authorize") == 1


@pytest.mark.parametrize(
    ("change", "error", "description"),
    [
        (
            {"scope": "read admin:read"},
            "invalid_scope",
            "The requested scope is invalid, unknown, or malformed.",
        ),
        ({"scope": ""}, "invalid_scope", "The requested scope is invalid, unknown, or malformed."),
        (
            {"response_type": "token"},
            "unsupported_response_type",
            "The authorization server does not support this response type.",
        ),
        ({"response_type": "-"}, "invalid_request", "Missing required parameter: response_type."),
        (
            {"code_challenge_method": "-"},
            "invalid_code_challenge_method",
            "The code_challenge_method must be S256.",
        ),
        (
            {"code_challenge_method": "plain"},
            "invalid_code_challenge_method",
            "The code_challenge_method must be S256.",
        ),
    ],
)
async def test_authorize_errors_redirect_to_the_client(
    client: Client, change: dict[str, str], error: str, description: str
) -> None:
    app = client.app()
    reply = await client.get("/oauth/authorize", params=client.authorize_query(app, **change))
    assert reply.status == 302
    location = reply.headers["Location"]
    assert location.startswith(CALLBACK + "?")
    assert query_of(location) == {
        "error": error,
        "error_description": description,
        "state": "st-1",
    }


async def test_scope_defaults_to_read_and_is_an_exact_subset(client: Client) -> None:
    alice = client.server.add_account("alice")
    app = client.app(scopes="read:accounts profile")
    # The default "read" is not among the app's scopes, and read:accounts is not "read".
    url = "/oauth/authorize?" + urlencode(client.authorize_query(app, scope="-"))
    assert query_of(client.server.authorize(url, alice))["error"] == "invalid_scope"
    url = "/oauth/authorize?" + urlencode(client.authorize_query(app, scope="read"))
    assert query_of(client.server.authorize(url, alice))["error"] == "invalid_scope"
    url = "/oauth/authorize?" + urlencode(client.authorize_query(app, scope="profile"))
    assert "code" in query_of(client.server.authorize(url, alice))


# POST /oauth/authorize: log in, Authorize, Deny


async def test_wrong_password_shows_the_form_again(client: Client) -> None:
    client.server.add_account("alice", password="right")
    app = client.app()
    query = client.authorize_query(app)
    for username, password in [("alice", "wrong"), ("nobody", "right"), ("", ""), ("alice", "")]:
        form = {**query, "username": username, "password": password, "decision": "authorize"}
        reply = await client.post("/oauth/authorize", data=form)
        assert reply.status == 422
        assert "Location" not in reply.headers
        page = text(reply)
        assert '<p id="login-error" class="flash-message alert">' in page
        assert "Invalid username or password." in page
        assert f'id="username" name="username" autocomplete="username" value="{username}"' in page
    assert client.server.requests[-1].path == "/oauth/authorize"
    assert not client.server.count("POST", "/oauth/token")


async def test_authorize_redirects_with_code_and_exact_state_then_pkce_exchange(
    client: Client,
) -> None:
    client.server.add_account("alice", password="s3cret")
    app = client.app()
    state = "a b&c=d/é+%"
    query = client.authorize_query(app, state=state, scope="read write")
    form = {**query, "username": "Alice", "password": "s3cret", "decision": "authorize"}
    reply = await client.post("/oauth/authorize", data=form)
    assert reply.status == 302
    location = reply.headers["Location"]
    assert location.startswith(CALLBACK + "?code=")
    params = query_of(location)
    assert set(params) == {"code", "state"}
    assert params["state"] == state
    code = params["code"]

    wrong = await client.exchange(app, code, code_verifier="x" * 43)
    assert (wrong.status, wrong.json()["error"]) == (400, INVALID_GRANT)
    # A failed exchange does not use the code up; the right verifier still works, once.
    good = await client.exchange(app, code)
    assert good.status == 200
    token = good.json()
    assert token["scope"] == "read write"
    assert "refresh_token" not in token
    assert "expires_in" not in token
    me = await client.get("/api/v1/accounts/verify_credentials", token["access_token"])
    assert me.json()["username"] == "alice"
    replayed = await client.exchange(app, code)
    assert (replayed.status, replayed.json()["error"]) == (400, INVALID_GRANT)


async def test_no_state_in_the_redirect_when_none_was_given(client: Client) -> None:
    client.server.add_account("alice")
    app = client.app()
    query = client.authorize_query(app, state="-")
    form = {**query, "username": "alice", "password": DEFAULT_PASSWORD, "decision": "authorize"}
    approved = await client.post("/oauth/authorize", data=form)
    assert set(query_of(approved.headers["Location"])) == {"code"}
    denied = await client.post("/oauth/authorize", data={**query, "decision": "deny"})
    assert set(query_of(denied.headers["Location"])) == {"error", "error_description"}


async def test_deny_redirects_access_denied_with_state(client: Client) -> None:
    app = client.app()
    query = client.authorize_query(app)
    reply = await client.post("/oauth/authorize", data={**query, "decision": "deny"})
    assert reply.status == 302
    assert query_of(reply.headers["Location"]) == {
        "error": "access_denied",
        "error_description": "The resource owner or authorization server denied the request.",
        "state": "st-1",
    }
    assert not client.server.count("POST", "/oauth/token")
    # With oob there is nowhere to redirect: the refusal is a page.
    oob = client.authorize_query(app, redirect_uri=OOB)
    page = await client.post("/oauth/authorize", data={**oob, "decision": "deny"})
    assert page.status == 400
    assert '<p id="oauth-error" data-error="access_denied">' in text(page)


async def test_oob_shows_the_code_on_a_page(client: Client) -> None:
    client.server.add_account("alice")
    app = client.app()
    query = client.authorize_query(app, redirect_uri=OOB)
    form = {**query, "username": "alice", "password": DEFAULT_PASSWORD, "decision": "authorize"}
    reply = await client.post("/oauth/authorize", data=form)
    assert reply.status == 200
    match = re.search(r'<code id="authorization-code">([A-Za-z0-9_-]{43})</code>', text(reply))
    assert match is not None
    token = await client.exchange(app, match.group(1), redirect_uri=OOB)
    assert token.status == 200


async def test_the_session_cookie_skips_the_login_unless_force_login(client: Client) -> None:
    client.server.add_account("alice")
    client.server.add_account("bob", password="bobpw")
    app = client.app()
    query = client.authorize_query(app)
    form = {**query, "username": "alice", "password": DEFAULT_PASSWORD, "decision": "authorize"}
    first = await client.post("/oauth/authorize", data=form)
    assert "_mastodon_session=" in first.headers["Set-Cookie"]
    assert "HttpOnly" in first.headers["Set-Cookie"]

    signed_in = await client.get("/oauth/authorize", params=query)
    assert '<strong id="signed-in-as">@alice</strong>' in text(signed_in)
    assert 'name="password"' not in text(signed_in)
    again = await client.post("/oauth/authorize", data={**query, "decision": "authorize"})
    assert again.status == 302
    assert "code" in query_of(again.headers["Location"])

    forced = client.authorize_query(app, force_login="true")
    page = await client.get("/oauth/authorize", params=forced)
    assert 'name="password"' in text(page)
    assert '<input type="hidden" name="force_login" value="true">' in text(page)
    without = await client.post("/oauth/authorize", data={**forced, "decision": "authorize"})
    assert without.status == 422
    as_bob = {**forced, "username": "bob", "password": "bobpw", "decision": "authorize"}
    switched = await client.post("/oauth/authorize", data=as_bob)
    code = query_of(switched.headers["Location"])["code"]
    token = (await client.exchange(app, code)).json()["access_token"]
    me = await client.get("/api/v1/accounts/verify_credentials", token)
    assert me.json()["username"] == "bob"
    # force_login=false is false, as Rails reads booleans.
    plain = await client.get(
        "/oauth/authorize", params=client.authorize_query(app, force_login="false")
    )
    assert '<strong id="signed-in-as">@bob</strong>' in text(plain)


# The no-browser mode


async def test_server_authorize_gives_the_redirect_without_html(
    client: Client, clock: Clock
) -> None:
    server = client.server
    alice = server.add_account("alice")
    app = client.app()

    def url(**change: str) -> str:
        return f"{client.url}/oauth/authorize?" + urlencode(client.authorize_query(app, **change))

    approved = query_of(server.authorize(url(), alice))
    assert approved["state"] == "st-1"
    denied = query_of(server.authorize(url(), alice, approve=False))
    assert denied["error"] == "access_denied"
    assert denied["state"] == "st-1"
    oob = server.authorize(url(redirect_uri=OOB), alice)
    assert re.fullmatch(re.escape(OOB) + r"\?code=[A-Za-z0-9_-]{43}&state=st-1", oob)
    with pytest.raises(ValueError, match="access_denied"):
        server.authorize(url(redirect_uri=OOB), alice, approve=False)
    with pytest.raises(ValueError, match="invalid_redirect_uri"):
        server.authorize(url(redirect_uri=CALLBACK + "x"), alice)
    with pytest.raises(ValueError, match="invalid_client"):
        server.authorize(url(client_id="nope"), alice)
    # No HTTP happened; the codes work at /oauth/token.
    assert not server.count("GET", "/oauth/authorize")
    good = await client.exchange(app, approved["code"])
    assert good.status == 200
    assert server.count("POST", "/oauth/token") == 1


async def test_codes_expire_after_ten_minutes(client: Client, clock: Clock) -> None:
    alice = client.server.add_account("alice")
    app = client.app()
    url = "/oauth/authorize?" + urlencode(client.authorize_query(app))
    fresh = query_of(client.server.authorize(url, alice))["code"]
    stale = query_of(client.server.authorize(url, alice))["code"]
    clock.now += 599
    assert (await client.exchange(app, fresh)).status == 200
    clock.now += 2
    expired = await client.exchange(app, stale)
    assert (expired.status, expired.json()["error"]) == (400, INVALID_GRANT)


async def test_pkce_missing_or_unexpected_verifier(client: Client) -> None:
    alice = client.server.add_account("alice")
    app = client.app()
    url = "/oauth/authorize?" + urlencode(client.authorize_query(app))
    code = query_of(client.server.authorize(url, alice))["code"]
    missing = await client.exchange(app, code, code_verifier="-")
    assert missing.json() == {
        "error": "invalid_request",
        "error_description": "Missing required parameter: code_verifier.",
    }
    plain = "/oauth/authorize?" + urlencode(
        client.authorize_query(app, code_challenge="-", code_challenge_method="-")
    )
    unchallenged = query_of(client.server.authorize(plain, alice))["code"]
    extra = await client.exchange(app, unchallenged)
    assert (extra.status, extra.json()["error"]) == (400, INVALID_GRANT)


# Metadata


@pytest.mark.parametrize("version", ["4.4.0", "4.6.0"])
async def test_metadata_document_on_mastodon(version: str) -> None:
    server = FakeMastodon(version=version)
    async for client in _client(server):
        reply = await client.get("/.well-known/oauth-authorization-server")
        assert reply.status == 200
        assert reply.headers["Content-Type"] == "application/json; charset=utf-8"
        doc = reply.json()
        base = client.url
        assert list(doc) == [
            "issuer",
            "authorization_endpoint",
            "token_endpoint",
            "revocation_endpoint",
            "userinfo_endpoint",
            "scopes_supported",
            "response_types_supported",
            "response_modes_supported",
            "grant_types_supported",
            "token_endpoint_auth_methods_supported",
            "code_challenge_methods_supported",
            "service_documentation",
            "app_registration_endpoint",
        ]
        assert doc["issuer"] == base + "/"
        assert doc["authorization_endpoint"] == base + "/oauth/authorize"
        assert doc["token_endpoint"] == base + "/oauth/token"
        assert doc["revocation_endpoint"] == base + "/oauth/revoke"
        assert doc["userinfo_endpoint"] == base + "/oauth/userinfo"
        assert doc["app_registration_endpoint"] == base + "/api/v1/apps"
        assert doc["grant_types_supported"] == ["authorization_code", "client_credentials"]
        assert doc["code_challenge_methods_supported"] == ["S256"]
        assert doc["response_types_supported"] == ["code"]
        assert doc["response_modes_supported"] == ["query", "fragment", "form_post"]
        assert doc["token_endpoint_auth_methods_supported"] == [
            "client_secret_basic",
            "client_secret_post",
        ]
        scopes = doc["scopes_supported"]
        assert scopes[:3] == ["read", "profile", "write"]
        assert {"read:accounts", "write:statuses", "follow", "push", "admin:read"} <= set(scopes)
        assert len(scopes) == len(set(scopes))
        assert ("read:collections" in scopes) == (version == "4.6.0")
        assert server.count("GET", "/.well-known/") == 1


async def test_metadata_with_refresh_tokens_lists_the_grant() -> None:
    server = FakeMastodon(token_lifetime=300)
    async for client in _client(server):
        doc = (await client.get("/.well-known/oauth-authorization-server")).json()
        assert doc["grant_types_supported"][-1] == "refresh_token"


async def test_metadata_on_gotosocial_is_404_and_on_akkoma_an_html_page() -> None:
    async for client in _client(FakeMastodon(flavor="gotosocial")):
        reply = await client.get("/.well-known/oauth-authorization-server")
        assert reply.status == 404
    async for client in _client(FakeMastodon(flavor="akkoma")):
        reply = await client.get("/.well-known/oauth-authorization-server")
        assert reply.status == 200
        assert reply.headers["Content-Type"].startswith("text/html")
        assert text(reply).startswith("<!DOCTYPE html>")


# Userinfo


async def test_userinfo(client: Client) -> None:
    server = client.server
    alice = server.add_account("alice", display_name="Alice A.")
    profile = server.issue_user_token(alice, "profile")
    for method in ("GET", "POST"):
        reply = await client.request(method, "/oauth/userinfo", profile)
        assert reply.status == 200
        assert reply.json() == {
            "iss": client.url + "/",
            "sub": f"{client.url}/users/alice",
            "name": "Alice A.",
            "preferred_username": "alice",
            "profile": f"{client.url}/@alice",
            "picture": f"{client.url}/avatars/original/missing.png",
        }
    read = await client.get("/oauth/userinfo", server.issue_user_token(alice, "read"))
    assert (read.status, read.json()) == (
        403,
        {"error": "This action is outside the authorized scopes"},
    )
    anonymous = await client.get("/oauth/userinfo")
    assert (anonymous.status, anonymous.json()) == (401, {"error": "The access token is invalid"})
    app = client.app(scopes="profile")
    app_token = await client.post(
        "/oauth/token",
        data={
            "grant_type": "client_credentials",
            "client_id": app["client_id"],
            "client_secret": app["client_secret"],
            "scope": "profile",
        },
    )
    no_user = await client.get("/oauth/userinfo", app_token.json()["access_token"])
    assert (no_user.status, no_user.json()) == (
        422,
        {"error": "This method requires an authenticated user"},
    )
    server.revoke_token(profile)
    revoked = await client.get("/oauth/userinfo", profile)
    assert (revoked.status, revoked.json()) == (401, {"error": "The access token was revoked"})


async def test_userinfo_is_mastodon_only() -> None:
    for flavor in ("gotosocial", "akkoma"):
        server = FakeMastodon(flavor=flavor)
        alice = server.add_account("alice")
        token = server.issue_user_token(alice, "profile read")
        async for client in _client(server):
            assert (await client.get("/oauth/userinfo", token)).status == 404


# Revocation (§5)


async def test_revoke_needs_the_owning_client_and_is_idempotent(client: Client) -> None:
    server = client.server
    alice = server.add_account("alice")
    app = client.app()
    other = client.app()
    url = "/oauth/authorize?" + urlencode(client.authorize_query(app))
    code = query_of(server.authorize(url, alice))["code"]
    token = (await client.exchange(app, code)).json()["access_token"]
    own = {"client_id": app["client_id"], "client_secret": app["client_secret"]}
    foreign = {"client_id": other["client_id"], "client_secret": other["client_secret"]}
    denied = {
        "error": "unauthorized_client",
        "error_description": "You are not authorized to revoke this token",
    }
    bare = await client.post("/oauth/revoke", data={"token": token})
    assert (bare.status, bare.json()) == (403, denied)
    wrong = await client.post("/oauth/revoke", data={"token": token, **foreign})
    assert (wrong.status, wrong.json()) == (403, denied)
    raw = f"{app['client_id']}:{app['client_secret']}".encode()
    basic = {"Authorization": "Basic " + base64.b64encode(raw).decode()}
    for _ in range(2):
        ok = await client.post("/oauth/revoke", data={"token": token}, headers=basic)
        assert (ok.status, ok.json()) == (200, {})
    unknown = await client.post("/oauth/revoke", data={"token": "nope", **own})
    assert (unknown.status, unknown.json()) == (200, {})
    after = await client.get("/api/v1/accounts/verify_credentials", token)
    assert (after.status, after.json()) == (401, {"error": "The access token was revoked"})


# Expiring tokens: Doorkeeper with token_lifetime


async def _user_token(client: Client, app: Any, account: str) -> dict[str, Any]:
    url = "/oauth/authorize?" + urlencode(client.authorize_query(app))
    code = query_of(client.server.authorize(url, account))["code"]
    reply = await client.exchange(app, code)
    assert reply.status == 200, reply.body
    token: dict[str, Any] = reply.json()
    return token


async def test_mastodon_never_issues_refresh_tokens(client: Client) -> None:
    alice = client.server.add_account("alice")
    app = client.app()
    token = await _user_token(client, app, alice)
    assert set(token) == {"access_token", "token_type", "scope", "created_at"}
    refresh = await client.post(
        "/oauth/token",
        data={
            "grant_type": "refresh_token",
            "refresh_token": token["access_token"],
            "client_id": app["client_id"],
            "client_secret": app["client_secret"],
        },
    )
    assert (refresh.status, refresh.json()["error"]) == (400, "unsupported_grant_type")


async def test_doorkeeper_expiring_tokens_and_refresh(clock: Clock) -> None:
    server = FakeMastodon(clock=clock, token_lifetime=300)
    alice = server.add_account("alice")
    async for client in _client(server):
        app = client.app()
        token = await _user_token(client, app, alice)
        assert list(token) == [
            "access_token",
            "token_type",
            "expires_in",
            "refresh_token",
            "scope",
            "created_at",
        ]
        assert token["expires_in"] == 300
        creds = {"client_id": app["client_id"], "client_secret": app["client_secret"]}
        app_token = await client.post(
            "/oauth/token", data={"grant_type": "client_credentials", **creds}
        )
        assert "refresh_token" not in app_token.json()
        assert app_token.json()["expires_in"] == 300

        clock.now += 299
        ok = await client.get("/api/v1/accounts/verify_credentials", token["access_token"])
        assert ok.status == 200
        clock.now += 1
        expired = await client.get("/api/v1/accounts/verify_credentials", token["access_token"])
        assert (expired.status, expired.json()) == (401, {"error": "The access token expired"})
        assert (
            'error_description="The access token expired"' in (expired.headers["WWW-Authenticate"])
        )
        public = await client.get(f"/api/v1/accounts/{alice}", token["access_token"])
        assert public.status == 401

        def form(refresh_token: str, **extra: str) -> dict[str, str]:
            return {"grant_type": "refresh_token", "refresh_token": refresh_token, **extra}

        missing = await client.post("/oauth/token", data={"grant_type": "refresh_token", **creds})
        assert missing.json()["error_description"] == "Missing required parameter: refresh_token."
        no_client = await client.post("/oauth/token", data=form(token["refresh_token"]))
        assert (no_client.status, no_client.json()["error"]) == (400, INVALID_GRANT)
        bad_client = await client.post(
            "/oauth/token",
            data=form(token["refresh_token"], client_id=app["client_id"], client_secret="x"),
        )
        assert (bad_client.status, bad_client.json()["error"]) == (401, "invalid_client")
        wider = await client.post(
            "/oauth/token", data=form(token["refresh_token"], scope="read write", **creds)
        )
        assert (wider.status, wider.json()["error"]) == (400, "invalid_scope")

        renewed = await client.post("/oauth/token", data=form(token["refresh_token"], **creds))
        assert renewed.status == 200
        new = renewed.json()
        assert new["access_token"] != token["access_token"]
        assert new["refresh_token"] != token["refresh_token"]
        assert (new["expires_in"], new["scope"]) == (300, "read")
        me = await client.get("/api/v1/accounts/verify_credentials", new["access_token"])
        assert me.json()["id"] == alice
        replay = await client.post("/oauth/token", data=form(token["refresh_token"], **creds))
        assert (replay.status, replay.json()["error"]) == (400, INVALID_GRANT)
        unknown = await client.post("/oauth/token", data=form("nope", **creds))
        assert (unknown.status, unknown.json()["error"]) == (400, INVALID_GRANT)

        # Revoking by refresh token revokes its access token too.
        gone = await client.post("/oauth/revoke", data={"token": new["refresh_token"], **creds})
        assert gone.status == 200
        after = await client.get("/api/v1/accounts/verify_credentials", new["access_token"])
        assert after.json() == {"error": "The access token was revoked"}


def test_token_lifetime_is_not_for_gotosocial() -> None:
    with pytest.raises(ValueError, match="token_lifetime"):
        FakeMastodon(flavor="gotosocial", token_lifetime=60)


# Expiring tokens: Akkoma


async def test_akkoma_tokens_expire_and_refresh(clock: Clock) -> None:
    server = FakeMastodon(flavor="akkoma", clock=clock, token_lifetime=600)
    alice = server.add_account("alice")
    async for client in _client(server):
        app = client.app()
        creds = {"client_id": app["client_id"], "client_secret": app["client_secret"]}
        # Akkoma ignores PKCE: the exchange works without the verifier.
        token = await _user_token(client, app, alice)
        assert list(token) == [
            "access_token",
            "created_at",
            "expires_in",
            "id",
            "me",
            "refresh_token",
            "scope",
            "token_type",
        ]
        assert token["expires_in"] == 600
        assert token["me"] == f"{client.url}/users/alice"
        assert isinstance(token["id"], int)
        app_token = await client.post(
            "/oauth/token", data={"grant_type": "client_credentials", **creds}
        )
        assert "refresh_token" in app_token.json()
        assert "me" not in app_token.json()

        clock.now += 600
        expired = await client.get("/api/v1/accounts/verify_credentials", token["access_token"])
        assert (expired.status, expired.json()) == (403, {"error": "Invalid credentials."})

        def form(refresh_token: str, **extra: str) -> dict[str, str]:
            return {"grant_type": "refresh_token", "refresh_token": refresh_token, **extra}

        invalid = {"error": "Invalid credentials"}
        no_client = await client.post("/oauth/token", data=form(token["refresh_token"]))
        assert (no_client.status, no_client.json()) == (400, invalid)
        renewed = await client.post("/oauth/token", data=form(token["refresh_token"], **creds))
        assert renewed.status == 200
        new = renewed.json()
        assert new["access_token"] != token["access_token"]
        assert new["refresh_token"] != token["refresh_token"]
        assert new["expires_in"] == 600
        me = await client.get("/api/v1/accounts/verify_credentials", new["access_token"])
        assert me.json()["id"] == alice
        replay = await client.post("/oauth/token", data=form(token["refresh_token"], **creds))
        assert (replay.status, replay.json()) == (400, invalid)

        # Akkoma's revoke needs no client authentication and forgets the token.
        revoked = await client.post("/oauth/revoke", data={"token": new["access_token"]})
        assert (revoked.status, revoked.json()) == (200, {})
        after = await client.get("/api/v1/accounts/verify_credentials", new["access_token"])
        assert after.json() == {"error": "Invalid credentials."}
        again = await client.post("/oauth/token", data=form(new["refresh_token"], **creds))
        assert again.json() == invalid
