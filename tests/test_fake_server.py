"""Behaviour of aiomasto.testing.FakeMastodon against docs/mastodon-api.md, over real HTTP."""

from __future__ import annotations

import base64
import json
import re
import urllib.error
import urllib.request
from collections.abc import AsyncIterator, Mapping
from typing import Any

import aiohttp
import fakehttp
import pytest
from fakehttp import Clock, Reply

from aiomasto.testing import FakeMastodon, Fault, Role, s256

pytest_plugins = ["aiomasto.testing.pytest_plugin"]

T0 = 1_786_111_500.123456  # 2026-08-07T14:05:00.123456Z, on a 300 s window boundary
OOB = "urn:ietf:wg:oauth:2.0:oob"
RESET_RE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")
INVALID_CLIENT = {
    "error": "invalid_client",
    "error_description": (
        "Client authentication failed due to unknown client, no client authentication "
        "included, or unsupported authentication method."
    ),
}
REVOKE_DENIED = {
    "error": "unauthorized_client",
    "error_description": "You are not authorized to revoke this token",
}


class Client(fakehttp.Client):
    """The shared client, knowing its server, with the app and token requests tests repeat."""

    def __init__(self, server: FakeMastodon, url: str, http: aiohttp.ClientSession) -> None:
        super().__init__(url, http)
        self.server = server

    async def register(self, scopes: str = "read write follow") -> dict[str, Any]:
        reply = await self.post(
            "/api/v1/apps",
            json={"client_name": "bot", "redirect_uris": OOB, "scopes": scopes},
        )
        assert reply.status == 200, reply.body
        app: dict[str, Any] = reply.json()
        return app

    async def app_token(self, app: Mapping[str, Any], scope: str | None = None) -> Reply:
        form = {
            "grant_type": "client_credentials",
            "client_id": app["client_id"],
            "client_secret": app["client_secret"],
        }
        if scope is not None:
            form["scope"] = scope
        return await self.post("/oauth/token", data=form)


@pytest.fixture
def clock() -> Clock:
    return Clock(T0)


@pytest.fixture
def server(clock: Clock) -> FakeMastodon:
    return FakeMastodon(clock=clock)


@pytest.fixture
async def client(server: FakeMastodon) -> AsyncIterator[Client]:
    async with server.run() as url, aiohttp.ClientSession() as http:
        yield Client(server, url, http)


def link_targets(reply: Reply) -> dict[str, str]:
    link = reply.headers.get("Link")
    if link is None:
        return {}
    return {rel: url for url, rel in re.findall(r'<([^>]+)>; rel="(\w+)"', link)}


# POST /api/v1/apps


async def test_register_app_returns_credential_application(client: Client) -> None:
    reply = await client.post(
        "/api/v1/apps",
        json={
            "client_name": "My Bot",
            "redirect_uris": ["https://bot.example/cb", "myapp://callback"],
            "scopes": "read write read push",
        },
    )
    assert reply.status == 200
    app = reply.json()
    assert list(app) == [
        "id",
        "name",
        "website",
        "scopes",
        "redirect_uris",
        "vapid_key",
        "redirect_uri",
        "client_id",
        "client_secret",
        "client_secret_expires_at",
    ]
    assert app["name"] == "My Bot"
    assert app["website"] is None
    assert app["scopes"] == ["read", "write", "push"]
    assert app["redirect_uris"] == ["https://bot.example/cb", "myapp://callback"]
    assert app["redirect_uri"] == "https://bot.example/cb\nmyapp://callback"
    assert app["client_secret_expires_at"] == 0
    assert app["vapid_key"]
    for key in ("client_id", "client_secret"):
        assert re.fullmatch(r"[A-Za-z0-9_-]{43}", app[key])
    assert reply.headers["Content-Type"] == "application/json; charset=utf-8"


async def test_register_app_accepts_form_and_query_params(client: Client) -> None:
    form = await client.post(
        "/api/v1/apps",
        data={"client_name": "f", "redirect_uris": OOB, "website": "https://f.example"},
    )
    query = await client.post("/api/v1/apps", params={"client_name": "q", "redirect_uris": OOB})
    assert (form.status, query.status) == (200, 200)
    assert form.json()["website"] == "https://f.example"
    assert query.json()["scopes"] == ["read"]


async def test_register_app_ignores_array_scopes(client: Client) -> None:
    reply = await client.post(
        "/api/v1/apps",
        json={"client_name": "a", "redirect_uris": OOB, "scopes": ["read", "write"]},
    )
    assert reply.json()["scopes"] == ["read"]


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"redirect_uris": OOB}, "Application name can't be blank"),
        (
            {"client_name": "x" * 61, "redirect_uris": OOB},
            "Application name is too long (maximum is 60 characters)",
        ),
        ({"client_name": "a"}, "Redirect URI can't be blank"),
        ({"client_name": "a", "redirect_uris": "\n"}, "Redirect URI can't be blank"),
        ({"client_name": "a", "redirect_uris": []}, "Redirect URI can't be blank"),
        (
            {"client_name": "a", "redirect_uris": "/callback"},
            "Redirect URI must be an absolute URI.",
        ),
        (
            {"client_name": "a", "redirect_uris": "https://a.example/cb#top"},
            "Redirect URI cannot contain a fragment.",
        ),
        (
            {"client_name": "a", "redirect_uris": "localhost:3000"},
            "Redirect URI must specify a scheme.",
        ),
        ({"client_name": "a", "redirect_uris": "http:/cb"}, "Redirect URI must be a valid URI."),
        (
            {"client_name": "a", "redirect_uris": "https://a.example/<cb>"},
            "Redirect URI must be a valid URI.",
        ),
        (
            {"client_name": "a", "redirect_uris": "javascript:alert(1)"},
            "Redirect URI is forbidden by the server., Redirect URI must specify a scheme.",
        ),
        (
            {"client_name": "a", "redirect_uris": OOB, "scopes": "read fly"},
            "Scopes doesn't match those configured on the server.",
        ),
        (
            {"client_name": "a", "redirect_uris": OOB, "website": "ftp://a.example"},
            "Application website is not a valid URL",
        ),
        ({}, "Application name can't be blank, Redirect URI can't be blank"),
    ],
)
async def test_register_app_validation_errors(
    client: Client, fields: dict[str, object], message: str
) -> None:
    reply = await client.post("/api/v1/apps", json=fields)
    assert reply.status == 422
    assert reply.json() == {"error": f"Validation failed: {message}"}


async def test_register_app_throttle_per_ip(clock: Clock) -> None:
    server = FakeMastodon(clock=clock, registration_limit=2)
    async with server.run() as url, aiohttp.ClientSession() as http:
        client = Client(server, url, http)
        first = await client.post("/api/v1/apps", json={"client_name": "a", "redirect_uris": OOB})
        second = await client.post("/api/v1/apps", json={})  # invalid ones count too
        third = await client.post("/api/v1/apps", json={"client_name": "a", "redirect_uris": OOB})
        assert [first.status, second.status, third.status] == [200, 422, 429]
        assert first.headers["X-RateLimit-Limit"] == "2"
        assert first.headers["X-RateLimit-Remaining"] == "1"
        assert second.headers["X-RateLimit-Remaining"] == "0"
        assert third.json() == {"error": "Too many requests"}
        assert third.headers["X-RateLimit-Remaining"] == "0"
        assert third.headers["X-RateLimit-Reset"] == "2026-08-07T14:10:00.123456Z"
        assert "Retry-After" not in third.headers
        clock.now += 600
        again = await client.post("/api/v1/apps", json={"client_name": "a", "redirect_uris": OOB})
        assert again.status == 200


async def test_register_app_accepts_multipart(client: Client) -> None:
    form = aiohttp.FormData(default_to_multipart=True)
    form.add_field("client_name", "multi")
    form.add_field("redirect_uris[]", "https://a.example/one")
    form.add_field("redirect_uris[]", "https://a.example/two")
    reply = await client.post("/api/v1/apps", data=form)
    assert reply.status == 200
    assert reply.json()["redirect_uris"] == ["https://a.example/one", "https://a.example/two"]


async def test_malformed_json_body_is_rejected(client: Client) -> None:
    reply = await client.post(
        "/api/v1/apps", data=b"{not json", headers={"Content-Type": "application/json"}
    )
    assert (reply.status, reply.json()) == (400, {"error": "Bad Request"})
    [logged] = client.server.requests
    assert (logged.raw_body, logged.form) == (b"{not json", ())


# POST /oauth/token


async def test_client_credentials_with_post_and_basic_auth(client: Client, clock: Clock) -> None:
    app = await client.register()
    posted = await client.app_token(app)
    assert posted.status == 200
    body = posted.json()
    assert set(body) == {"access_token", "token_type", "scope", "created_at"}
    assert body["token_type"] == "Bearer"
    assert body["scope"] == "read"
    assert body["created_at"] == int(T0)
    assert posted.headers["Cache-Control"] == "no-store, no-cache"
    assert posted.headers["Pragma"] == "no-cache"

    clock.now += 3600
    basic = base64.b64encode(f"{app['client_id']}:{app['client_secret']}".encode()).decode()
    reused = await client.post(
        "/oauth/token",
        data={"grant_type": "client_credentials"},
        headers={"Authorization": f"Basic {basic}"},
    )
    assert reused.json() == body  # same token, old created_at


async def test_token_reuse_matches_scope_sets_and_skips_revoked(
    client: Client, server: FakeMastodon, clock: Clock
) -> None:
    app = await client.register()
    first = (await client.app_token(app, "read write")).json()
    same = (await client.app_token(app, "write read")).json()
    other = (await client.app_token(app, "read")).json()
    assert same == first
    assert same["scope"] == "read write"
    assert other["access_token"] != first["access_token"]

    server.revoke_token(first["access_token"])
    clock.now += 10
    fresh = (await client.app_token(app, "read write")).json()
    assert fresh["access_token"] != first["access_token"]
    assert fresh["created_at"] == int(T0) + 10


@pytest.mark.parametrize(
    "auth",
    [
        {"data": {"client_id": "nope", "client_secret": "nope"}},
        {"data": {}},
        {"basic": "wrong-secret"},
    ],
)
async def test_invalid_client(client: Client, auth: dict[str, Any]) -> None:
    app = await client.register()
    data = {"grant_type": "client_credentials", **auth.get("data", {})}
    headers = {}
    if "basic" in auth:
        # Basic wins over correct body credentials, and is not URL-decoded.
        data |= {"client_id": app["client_id"], "client_secret": app["client_secret"]}
        raw = f"{app['client_id']}:{auth['basic']}".encode()
        headers["Authorization"] = "Basic " + base64.b64encode(raw).decode()
    reply = await client.post("/oauth/token", data=data, headers=headers)
    assert reply.status == 401
    assert reply.json() == INVALID_CLIENT
    assert reply.headers["Cache-Control"] == "no-store, no-cache"
    assert reply.headers["WWW-Authenticate"] == (
        'Bearer realm="Doorkeeper", error="invalid_client", '
        f'error_description="{INVALID_CLIENT["error_description"]}"'
    )


async def test_invalid_scope(client: Client) -> None:
    app = await client.register("read write follow")
    wider = await client.app_token(app, "read write push")
    finer = await client.app_token(app, "read:accounts")  # no hierarchy at the OAuth layer
    no_read = await client.app_token(await client.register("write:statuses"))
    for reply in (wider, finer, no_read):
        assert reply.status == 400
        assert reply.json() == {
            "error": "invalid_scope",
            "error_description": "The requested scope is invalid, unknown, or malformed.",
        }
        assert reply.headers["WWW-Authenticate"].startswith(
            'Bearer realm="Doorkeeper", error="invalid_scope"'
        )


@pytest.mark.parametrize("grant_type", ["password", "refresh_token", "implicit"])
async def test_unsupported_grant_type(client: Client, grant_type: str) -> None:
    reply = await client.post("/oauth/token", data={"grant_type": grant_type})
    assert reply.status == 400
    assert reply.json() == {
        "error": "unsupported_grant_type",
        "error_description": (
            "The authorization grant type is not supported by the authorization server."
        ),
    }


async def test_missing_grant_type(client: Client) -> None:
    reply = await client.post("/oauth/token", json={"client_id": "x"})
    assert reply.status == 400
    assert reply.json() == {
        "error": "invalid_request",
        "error_description": "Missing required parameter: grant_type.",
    }
    assert reply.headers["Cache-Control"] == "no-store, no-cache"
    assert 'error="invalid_request"' in reply.headers["WWW-Authenticate"]


async def test_authorization_code_flow_with_pkce(client: Client, server: FakeMastodon) -> None:
    alice = server.add_account("alice")
    app = await client.register("read write")
    verifier = "a-verifier-that-is-long-enough-for-pkce-0123456789"
    code = server.create_authorization_code(
        app["client_id"],
        alice,
        scopes="read write",
        code_challenge=s256(verifier),
        code_challenge_method="S256",
    )
    base = {
        "grant_type": "authorization_code",
        "client_id": app["client_id"],
        "client_secret": app["client_secret"],
        "redirect_uri": OOB,
        "code": code,
    }
    missing = await client.post("/oauth/token", data=base)
    assert missing.json()["error_description"] == "Missing required parameter: code_verifier."
    wrong = await client.post("/oauth/token", data={**base, "code_verifier": "x" * 50})
    assert wrong.json()["error"] == "invalid_grant"

    good = await client.post("/oauth/token", data={**base, "code_verifier": verifier})
    assert good.status == 200
    assert good.json()["scope"] == "read write"
    me = await client.get("/api/v1/accounts/verify_credentials", token=good.json()["access_token"])
    assert me.json()["id"] == alice

    replayed = await client.post("/oauth/token", data={**base, "code_verifier": verifier})
    assert replayed.status == 400
    assert replayed.json()["error"] == "invalid_grant"


async def test_authorization_code_errors(client: Client) -> None:
    app = await client.register()
    base = {
        "grant_type": "authorization_code",
        "client_id": app["client_id"],
        "client_secret": app["client_secret"],
        "code": "unknown",
    }
    no_redirect = await client.post("/oauth/token", data=base)
    assert no_redirect.json()["error_description"] == "Missing required parameter: redirect_uri."
    unknown = await client.post("/oauth/token", data={**base, "redirect_uri": OOB})
    assert unknown.status == 400
    assert unknown.json() == {
        "error": "invalid_grant",
        "error_description": (
            "The provided authorization grant is invalid, expired, revoked, does not match the "
            "redirection URI used in the authorization request, or was issued to another client."
        ),
    }


async def test_deleted_app_is_unknown(client: Client, server: FakeMastodon) -> None:
    alice = server.add_account("alice")
    app = await client.register()
    token = (await client.app_token(app)).json()["access_token"]
    server.delete_app(app["client_id"])
    assert (await client.app_token(app)).json() == INVALID_CLIENT
    verify = await client.get("/api/v1/apps/verify_credentials", token=token)
    assert verify.json() == {"error": "The access token is invalid"}
    public = await client.get(f"/api/v1/accounts/{alice}/followers", token=token)
    assert public.status == 200  # unknown tokens run as anonymous on public endpoints


# POST /oauth/revoke


async def test_revoke(client: Client) -> None:
    app, other = await client.register(), await client.register()
    token = (await client.app_token(app)).json()["access_token"]
    own = {"client_id": app["client_id"], "client_secret": app["client_secret"]}

    no_auth = await client.post("/oauth/revoke", data={"token": token})
    assert (no_auth.status, no_auth.json()) == (403, REVOKE_DENIED)
    foreign = await client.post(
        "/oauth/revoke",
        data={
            "token": token,
            "client_id": other["client_id"],
            "client_secret": other["client_secret"],
        },
    )
    assert (foreign.status, foreign.json()) == (403, REVOKE_DENIED)
    unknown = await client.post("/oauth/revoke", data={"token": "nope", **own})
    assert (unknown.status, unknown.json()) == (200, {})

    for _ in range(2):  # idempotent
        revoked = await client.post("/oauth/revoke", data={"token": token, **own})
        assert (revoked.status, revoked.json()) == (200, {})
    verify = await client.get("/api/v1/apps/verify_credentials", token=token)
    assert verify.json() == {"error": "The access token was revoked"}


# GET /api/v1/apps/verify_credentials


async def test_app_verify_credentials(client: Client) -> None:
    app = await client.register("write:statuses")
    token = (await client.app_token(app, "write:statuses")).json()["access_token"]
    ok = await client.get("/api/v1/apps/verify_credentials", token=token)
    assert ok.status == 200
    assert ok.json() == {
        "id": app["id"],
        "name": "bot",
        "website": None,
        "scopes": ["write:statuses"],
        "redirect_uris": [OOB],
        "vapid_key": app["vapid_key"],
        "redirect_uri": OOB,
    }


@pytest.mark.parametrize(
    ("token", "message"),
    [(None, "The access token is invalid"), ("garbage", "The access token is invalid")],
)
async def test_app_verify_credentials_invalid(
    client: Client, token: str | None, message: str
) -> None:
    reply = await client.get("/api/v1/apps/verify_credentials", token=token)
    assert reply.status == 401
    assert reply.json() == {"error": message}
    assert reply.headers["WWW-Authenticate"] == (
        f'Bearer realm="Doorkeeper", error="invalid_token", error_description="{message}"'
    )
    assert reply.headers["X-RateLimit-Limit"] == "300"


async def test_revoked_token_is_rejected_even_on_public_endpoints(
    client: Client, server: FakeMastodon
) -> None:
    alice = server.add_account("alice")
    token = server.issue_user_token(alice)
    server.revoke_token(token)
    for path in ("/api/v1/apps/verify_credentials", f"/api/v1/accounts/{alice}/followers"):
        reply = await client.get(path, token=token)
        assert reply.status == 401
        assert reply.json() == {"error": "The access token was revoked"}


# Followers / following pagination


async def walk(client: Client, url: str, token: str | None = None) -> list[list[str]]:
    pages: list[list[str]] = []
    next_url: str | None = url
    while next_url is not None:
        reply = await client.get(next_url, token=token)
        assert reply.status == 200
        pages.append([account["id"] for account in reply.json()])
        links = link_targets(reply)
        if pages[-1]:
            assert "prev" in links
        else:
            assert "Link" not in reply.headers
        next_url = links.get("next")
    return pages


@pytest.mark.parametrize(("total", "sizes"), [(10, [3, 3, 3, 1]), (9, [3, 3, 3, 0])])
async def test_followers_walk_to_the_end(
    client: Client, server: FakeMastodon, total: int, sizes: list[int]
) -> None:
    alice = server.add_account("alice")
    followers = server.add_followers(alice, total)
    pages = await walk(client, f"/api/v1/accounts/{alice}/followers?limit=3")
    assert [len(page) for page in pages] == sizes
    assert [i for page in pages for i in page] == followers[::-1]  # newest follow first


async def test_followers_link_header_format(client: Client, server: FakeMastodon) -> None:
    alice = server.add_account("alice")
    bobs = [server.add_account(f"bob{i}") for i in range(5)]
    follow_ids = [server.follow(bob, alice) for bob in bobs]
    assert follow_ids == sorted(follow_ids, key=int)
    assert int(follow_ids[0]) >= 7_000_000

    reply = await client.get(f"/api/v1/accounts/{alice}/followers?since_id=1&limit=2&foo=1")
    base = f"{client.url}/api/v1/accounts/{alice}/followers"
    assert reply.headers["Link"] == (
        f'<{base}?limit=2&max_id={follow_ids[3]}>; rel="next", '
        f'<{base}?limit=2&since_id={follow_ids[4]}>; rel="prev"'
    )
    after = await client.get(f"/api/v1/accounts/{alice}/followers?max_id={follow_ids[3]}")
    assert [a["id"] for a in after.json()] == bobs[2::-1]
    newer = await client.get(f"/api/v1/accounts/{alice}/followers?since_id={follow_ids[2]}")
    assert [a["id"] for a in newer.json()] == bobs[:2:-1]


async def test_followers_limit_echoed_only_when_sent(client: Client, server: FakeMastodon) -> None:
    alice = server.add_account("alice")
    server.add_followers(alice, 41)
    reply = await client.get(f"/api/v1/accounts/{alice}/followers")
    assert len(reply.json()) == 40
    links = link_targets(reply)
    assert "limit=" not in links["next"]
    assert re.search(r"\?max_id=\d+$", links["next"])
    assert re.search(r"\?since_id=\d+$", links["prev"])


@pytest.mark.parametrize(
    ("limit", "size", "linked"),
    [("-5", 5, True), ("0", 0, False), ("abc", 0, False), ("500", 80, True), ("7", 7, True)],
)
async def test_followers_limit_param(
    client: Client, server: FakeMastodon, limit: str, size: int, linked: bool
) -> None:
    alice = server.add_account("alice")
    server.add_followers(alice, 100)
    reply = await client.get(f"/api/v1/accounts/{alice}/followers", params={"limit": limit})
    assert len(reply.json()) == size
    assert ("Link" in reply.headers) is linked
    if linked:
        assert f"limit={limit}&max_id=" in link_targets(reply)["next"]


async def test_followers_ignore_min_id(client: Client, server: FakeMastodon) -> None:
    alice = server.add_account("alice")
    server.add_followers(alice, 5)
    plain = await client.get(f"/api/v1/accounts/{alice}/followers")
    with_min = await client.get(f"/api/v1/accounts/{alice}/followers?min_id=99999999999")
    assert with_min.body == plain.body


async def test_hidden_collections(client: Client, server: FakeMastodon) -> None:
    alice = server.add_account("alice", hide_collections=True)
    bob = server.add_account("bob")
    server.add_followers(alice, 3)
    server.follow(alice, bob)
    app_token = (await client.app_token(await client.register())).json()["access_token"]
    for token in (None, app_token, server.issue_user_token(bob)):
        for kind in ("followers", "following"):
            reply = await client.get(f"/api/v1/accounts/{alice}/{kind}", token=token)
            assert (reply.status, reply.body) == (200, b"[]")
            assert "Link" not in reply.headers
    own = await client.get(
        f"/api/v1/accounts/{alice}/followers", token=server.issue_user_token(alice)
    )
    assert len(own.json()) == 3


async def test_suspended_account(client: Client, server: FakeMastodon) -> None:
    ghost = server.add_account("ghost", display_name="Ghost", note="boo", suspended=True)
    server.add_followers(ghost, 2)
    followers = await client.get(f"/api/v1/accounts/{ghost}/followers")
    assert (followers.body, followers.headers.get("Link")) == (b"[]", None)
    shown = (await client.get(f"/api/v1/accounts/{ghost}")).json()
    assert shown["suspended"] is True
    assert (shown["display_name"], shown["note"], shown["fields"]) == ("", "", [])
    assert shown["followers_count"] == 2
    assert shown["roles"] == []
    forbidden = await client.get(
        "/api/v1/accounts/verify_credentials", token=server.issue_user_token(ghost)
    )
    assert forbidden.status == 403
    assert forbidden.json() == {"error": "Your login is currently disabled"}


async def test_blocks_and_mutes_filter_followers(client: Client, server: FakeMastodon) -> None:
    alice = server.add_account("alice")
    viewer = server.add_account("viewer")
    blocked, muted, blocker, plain = server.add_followers(alice, 4)
    server.block(viewer, blocked)
    server.mute(viewer, muted)
    server.block(blocker, viewer)

    seen = await client.get(
        f"/api/v1/accounts/{alice}/followers", token=server.issue_user_token(viewer)
    )
    assert [a["id"] for a in seen.json()] == [plain]
    owner = await client.get(
        f"/api/v1/accounts/{alice}/followers", token=server.issue_user_token(alice)
    )
    assert [a["id"] for a in owner.json()] == [plain, blocker, muted, blocked]

    server.block(alice, viewer)
    shut_out = await client.get(
        f"/api/v1/accounts/{alice}/followers", token=server.issue_user_token(viewer)
    )
    assert shut_out.body == b"[]"


async def test_following_and_unknown_account(client: Client, server: FakeMastodon) -> None:
    alice = server.add_account("alice")
    followed = server.add_following(alice, 3)
    reply = await client.get(f"/api/v1/accounts/{alice}/following")
    assert [a["id"] for a in reply.json()] == followed[::-1]
    assert reply.json()[0]["followers_count"] == 1
    for path in ("/api/v1/accounts/1/followers", "/api/v1/accounts/nope", "/api/v1/accounts/1"):
        missing = await client.get(path)
        assert (missing.status, missing.json()) == (404, {"error": "Record not found"})


async def test_anonymous_account_reads_are_publicly_cacheable(
    client: Client, server: FakeMastodon
) -> None:
    alice = server.add_account("alice")
    anonymous = await client.get(f"/api/v1/accounts/{alice}")
    assert anonymous.headers["Cache-Control"].startswith("public, max-age=15")
    signed_in = await client.get(f"/api/v1/accounts/{alice}", token=server.issue_user_token(alice))
    assert signed_in.headers["Cache-Control"] == "private, no-store"
    assert signed_in.headers["Vary"] == "Authorization"


# Account entities and lookups


async def test_local_and_remote_account_shapes(client: Client, server: FakeMastodon) -> None:
    role = Role(id="3", name="Owner", permissions="1048575", color="#ff3838")
    alice = server.add_account(
        "alice", display_name="Alice", note="Hi <3\nthere", fields=[("Site", "<b>")], role=role
    )
    bob = server.add_account("bob", domain="remote.example", bot=True, emojis=["blobcat"])
    local = await client.get(f"/api/v1/accounts/{alice}")
    assert b"\\u003cp\\u003eHi \\u0026lt;3" in local.body  # Rails escapes <, >, & in JSON
    doc = local.json()
    assert list(doc) == [
        "id", "username", "acct", "display_name", "locked", "bot", "discoverable", "indexable",
        "group", "created_at", "note", "url", "uri", "avatar", "avatar_static", "header",
        "header_static", "followers_count", "following_count", "statuses_count", "last_status_at",
        "hide_collections", "noindex", "emojis", "roles", "fields",
    ]  # fmt: skip
    assert doc["id"] == alice == "109000000000000001"
    assert doc["acct"] == "alice"
    assert doc["created_at"] == "2026-08-07T00:00:00.000Z"
    assert doc["note"] == "<p>Hi &lt;3<br />there</p>"
    assert doc["roles"] == [{"id": "3", "name": "Owner", "color": "#ff3838"}]
    assert doc["fields"] == [{"name": "Site", "value": "&lt;b&gt;", "verified_at": None}]
    assert doc["url"] == f"{client.url}/@alice"

    remote = (await client.get(f"/api/v1/accounts/{bob}")).json()
    assert remote["acct"] == "bob@remote.example"
    assert remote["discoverable"] is None
    assert "roles" not in remote
    assert "noindex" not in remote
    assert "suspended" not in remote
    assert remote["emojis"][0]["shortcode"] == "blobcat"
    assert remote["url"] == "https://remote.example/@bob"


@pytest.mark.parametrize(
    ("acct", "found"),
    [
        ("alice", "alice"),
        ("@ALICE", "alice"),
        ("alice@{host}", "alice"),
        ("alice@{hostname}", "alice"),
        ("bob@remote.example", "bob"),
        ("@bob@Remote.Example", "bob"),
        ("bob", None),
        ("nobody", None),
        ("", None),
    ],
)
async def test_lookup(client: Client, server: FakeMastodon, acct: str, found: str | None) -> None:
    server.add_account("alice")
    server.add_account("bob", domain="remote.example")
    host = client.url.removeprefix("http://")
    acct = acct.format(host=host, hostname=host.split(":")[0])
    reply = await client.get("/api/v1/accounts/lookup", params={"acct": acct})
    if found is None:
        assert (reply.status, reply.json()) == (404, {"error": "Record not found"})
    else:
        assert reply.json()["username"] == found


async def test_verify_credentials(client: Client, server: FakeMastodon) -> None:
    alice = server.add_account("alice", note="plain <text>", fields=[("k", "<v>")])
    app_token = (await client.app_token(await client.register())).json()["access_token"]
    as_app = await client.get("/api/v1/accounts/verify_credentials", token=app_token)
    assert (as_app.status, as_app.json()) == (
        422,
        {"error": "This method requires an authenticated user"},
    )
    anonymous = await client.get("/api/v1/accounts/verify_credentials")
    assert anonymous.status == 401
    wrong_scope = await client.get(
        "/api/v1/accounts/verify_credentials", token=server.issue_user_token(alice, "write")
    )
    assert (wrong_scope.status, wrong_scope.json()) == (
        403,
        {"error": "This action is outside the authorized scopes"},
    )

    me = (
        await client.get(
            "/api/v1/accounts/verify_credentials", token=server.issue_user_token(alice, "profile")
        )
    ).json()
    assert list(me)[-5:] == ["source", "emojis", "roles", "fields", "role"]
    assert me["source"]["note"] == "plain <text>"
    assert me["source"]["fields"] == [{"name": "k", "value": "<v>", "verified_at": None}]
    assert me["source"]["quote_policy"] == "public"
    assert me["role"] == {
        "id": "-99",
        "name": "",
        "permissions": "65536",
        "color": "",
        "highlighted": False,
    }


async def test_relationships(client: Client, server: FakeMastodon) -> None:
    alice = server.add_account("alice")
    bob, carol = server.add_followers(alice, 2)
    server.follow(alice, bob)
    server.mute(alice, carol)
    token = server.issue_user_token(alice, "read:follows")
    reply = await client.get(
        f"/api/v1/accounts/relationships?id[]={carol}&id[]=999&id[]={bob}&id[]={carol}",
        token=token,
    )
    docs = reply.json()
    assert [d["id"] for d in docs] == [bob, carol]  # ascending ids, not request order
    assert list(docs[0]) == [
        "id", "following", "showing_reblogs", "notifying", "languages", "followed_by",
        "blocking", "blocked_by", "muting", "muting_notifications", "requested",
        "requested_by", "domain_blocking", "endorsed", "note",
    ]  # fmt: skip
    assert (docs[0]["following"], docs[0]["followed_by"], docs[0]["muting"]) == (True, True, False)
    assert (docs[1]["following"], docs[1]["followed_by"], docs[1]["muting"]) == (False, True, True)

    single = await client.get(f"/api/v1/accounts/relationships?id={bob}", token=token)
    assert [d["id"] for d in single.json()] == [bob]
    app_token = (await client.app_token(await client.register())).json()["access_token"]
    as_app = await client.get(f"/api/v1/accounts/relationships?id={bob}", token=app_token)
    assert as_app.status == 422


# Rate-limit headers, 404s, faults, request log


async def test_rate_limit_headers(clock: Clock) -> None:
    server = FakeMastodon(clock=clock, rate_limit=3, rate_period=300, enforce_rate_limit=True)
    alice = server.add_account("alice")
    token = server.issue_user_token(alice)
    async with server.run() as url, aiohttp.ClientSession() as http:
        client = Client(server, url, http)
        clock.now = T0 + 42.5
        replies = [await client.get(f"/api/v1/accounts/{alice}", token=token) for _ in range(4)]
        assert [r.status for r in replies] == [200, 200, 200, 429]
        assert [r.headers["X-RateLimit-Remaining"] for r in replies] == ["2", "1", "0", "0"]
        assert all(r.headers["X-RateLimit-Limit"] == "3" for r in replies)
        assert all(RESET_RE.match(r.headers["X-RateLimit-Reset"]) for r in replies)
        assert replies[0].headers["X-RateLimit-Reset"] == "2026-08-07T14:10:00.623456Z"
        assert replies[3].json() == {"error": "Too many requests"}
        assert "Retry-After" not in replies[3].headers
        assert "X-Request-Id" in replies[3].headers

        anonymous = await client.get("/api/v1/accounts/999")  # per IP: a separate window
        assert (anonymous.status, anonymous.headers["X-RateLimit-Remaining"]) == (404, "2")

        clock.now = T0 + 300
        fresh = await client.get(f"/api/v1/accounts/{alice}", token=token)
        assert (fresh.status, fresh.headers["X-RateLimit-Remaining"]) == (200, "2")
        assert fresh.headers["X-RateLimit-Reset"] == "2026-08-07T14:15:00.123456Z"


async def test_paging_throttle_is_opt_in(clock: Clock) -> None:
    server = FakeMastodon(clock=clock, paging_limit=2)
    alice = server.add_account("alice")
    follow_id = server.follow(server.add_account("bob"), alice)
    token = server.issue_user_token(alice)
    async with server.run() as url, aiohttp.ClientSession() as http:
        client = Client(server, url, http)
        path = f"/api/v1/accounts/{alice}/followers?max_id={follow_id}"
        first = await client.get(path, token=token)
        # The paging window (2 per 900 s) has less room than the token's (300 per 300 s).
        assert first.headers["X-RateLimit-Limit"] == "2"
        assert first.headers["X-RateLimit-Remaining"] == "1"
        assert first.headers["X-RateLimit-Reset"] == "2026-08-07T14:15:00.123456Z"
        plain = await client.get(f"/api/v1/accounts/{alice}/followers", token=token)
        assert plain.headers["X-RateLimit-Limit"] == "300"
        assert plain.headers["X-RateLimit-Remaining"] == "298"


@pytest.mark.parametrize("version", ["4.4.3", "4.5.0", "4.6.0"])
async def test_version_selects_response_shapes(clock: Clock, version: str) -> None:
    server = FakeMastodon(clock=clock, version=version)
    alice = server.add_account("alice")
    bob = server.add_account("bob")
    token = server.issue_user_token(alice)
    async with server.run() as url, aiohttp.ClientSession() as http:
        client = Client(server, url, http)
        me = (await client.get("/api/v1/accounts/verify_credentials", token=token)).json()
        [rel] = (await client.get(f"/api/v1/accounts/relationships?id={bob}", token=token)).json()
        collections = await client.post(
            "/api/v1/apps",
            json={"client_name": "c", "redirect_uris": OOB, "scopes": "read:collections"},
        )
    assert ("quote_policy" in me["source"]) is (version >= "4.5")
    assert ("avatar_description" in me) is (version >= "4.6")
    assert ("show_featured" in me) is (version >= "4.6")
    assert ("muting_expires_at" in rel) is (version >= "4.6")
    assert collections.status == (200 if version >= "4.6" else 422)


def test_versions_before_4_4_are_refused() -> None:
    with pytest.raises(ValueError, match=r"4\.4"):
        FakeMastodon(version="4.3.2")


async def test_unknown_routes_are_html_unless_json_is_asked_for(client: Client) -> None:
    for path in ("/nope", "/api/v1/nope", "/api/v1/accounts/1/nope"):
        html = await client.get(path)
        assert html.status == 404
        assert html.headers["Content-Type"].startswith("text/html")
        assert b'<body class="error">' in html.body
        assert b'<div class="dialog">' in html.body
    wrong_method = await client.get("/api/v1/apps")
    assert wrong_method.status == 404
    as_json = await client.get("/api/v1/nope", headers={"Accept": "application/json"})
    assert (as_json.status, as_json.json()) == (404, {"error": "Not Found"})
    assert "X-Request-Id" in as_json.headers


async def test_faults(client: Client, server: FakeMastodon) -> None:
    alice = server.add_account("alice")
    path = f"/api/v1/accounts/{alice}"
    server.inject(path, Fault.html(502), times=2)
    server.inject(path, Fault.empty(503))
    server.inject(path, Fault.json(503, {"error": "Remote data could not be fetched"}))
    server.inject(path, Fault.truncated_json())
    server.inject(path, Fault.raw(403, b"Forbidden", "text/plain", {"X-Hint": "blocklist"}))
    server.inject(path, Fault.empty(500), method="POST")

    html = [await client.get(path) for _ in range(2)]
    for reply in html:
        assert reply.status == 502
        assert reply.headers["Content-Type"] == "text/html"
        assert reply.headers["Content-Length"] == "157"
        assert b"<title>502 Bad Gateway</title>" in reply.body
        assert "X-RateLimit-Limit" not in reply.headers

    empty = await client.get(path)
    assert (empty.status, empty.body) == (503, b"")
    remote = await client.get(path)
    assert (remote.status, remote.json()) == (503, {"error": "Remote data could not be fetched"})
    truncated = await client.get(path)
    assert truncated.status == 200
    assert truncated.body == b'[{"id": "1", "userna'
    assert truncated.headers["Content-Length"] == str(len(truncated.body))
    with pytest.raises(json.JSONDecodeError):
        truncated.json()
    raw = await client.get(path)
    assert (raw.status, raw.body, raw.headers["X-Hint"]) == (403, b"Forbidden", "blocklist")

    served = await client.get(path)  # the GET faults are used up; the POST one is not
    assert served.status == 200
    assert served.headers["X-RateLimit-Remaining"] == "299"  # faulted requests never counted
    assert server.count("GET", path) == 7


async def test_request_log(client: Client, server: FakeMastodon) -> None:
    await client.post(
        "/api/v1/apps?lang=en",
        json={"client_name": "bot", "redirect_uris": [OOB], "private": True, "n": None},
        token="tok",
    )
    [recorded] = server.requests
    assert (recorded.method, recorded.path) == ("POST", "/api/v1/apps")
    assert recorded.query == (("lang", "en"),)
    assert recorded.form == (
        ("client_name", "bot"),
        ("redirect_uris[]", OOB),
        ("private", "true"),
        ("n", ""),
    )
    assert recorded.bearer == "tok"
    assert recorded.authorization == "Bearer tok"
    assert recorded.headers["authorization"] == "Bearer tok"
    assert json.loads(recorded.raw_body)["client_name"] == "bot"
    assert recorded.url == f"{client.url}/api/v1/apps?lang=en"
    assert server.count("post", "/api/") == 1


# Runners


def _sync_get(url: str) -> tuple[int, Any]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as error:
        return error.code, json.load(error)


def test_run_in_thread_serves_while_seeding() -> None:
    server = FakeMastodon()
    with server.run_in_thread() as url:
        assert server.url == url
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+", url)
        status, body = _sync_get(f"{url}/api/v1/accounts/lookup?acct=alice")
        assert (status, body) == (404, {"error": "Record not found"})
        alice = server.add_account("alice")
        status, body = _sync_get(f"{url}/api/v1/accounts/lookup?acct=alice")
        assert (status, body["id"]) == (200, alice)
    assert server.url is None


def test_pytest_fixture(fake_mastodon: FakeMastodon) -> None:
    assert fake_mastodon.url is not None
    alice = fake_mastodon.add_account("alice")
    fake_mastodon.add_followers(alice, 2)
    status, body = _sync_get(f"{fake_mastodon.url}/api/v1/accounts/{alice}/followers")
    assert (status, len(body)) == (200, 2)
