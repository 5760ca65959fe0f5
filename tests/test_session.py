"""The seed flow and the token lifecycle, over real loopback HTTP against aiomasto.testing."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import aiohttp
import pytest

import aiomasto
from aiomasto import NO_RETRY, App, JsonFileTokenStore, MemoryTokenStore, Session, StoreKey
from aiomasto.testing import FakeMastodon, Fault

APP = App(name="Relationship Mapper", scopes="read", website="https://mapper.example")


@pytest.fixture
def alice(server: FakeMastodon) -> str:
    account = server.add_account("alice", display_name="Alice")
    server.add_followers(account, 12, prefix="fan")
    server.add_following(account, 5, prefix="friend")
    return account


def url(server: FakeMastodon) -> str:
    assert server.url is not None
    return server.url


def paths(server: FakeMastodon) -> list[str]:
    return [f"{r.method} {r.path}" for r in server.requests]


# -- the whole flow ----------------------------------------------------------------------------


async def test_seed_flow_end_to_end(server: FakeMastodon, alice: str, tmp_path: Path) -> None:
    store = JsonFileTokenStore(tmp_path / "credentials.json")
    async with Session(url(server), app=APP, store=store) as masto:
        verified = await masto.verify_app()
        fans = await masto.followers_page(alice, limit=5)
        friends = await masto.following_page(alice)

    assert verified.name == "Relationship Mapper"
    assert verified.client_secret is None  # verify_credentials never returns it
    assert [a.username for a in fans.items] == [f"fan{i}" for i in range(12, 7, -1)]
    assert fans.next_cursor is not None
    assert fans.next_cursor.startswith(f"/api/v1/accounts/{alice}/followers?")
    assert fans.ratelimit is not None
    assert fans.ratelimit.limit == 300
    assert len(friends.items) == 5
    assert friends.next_cursor is None  # 5 < the default 40: no next link

    assert paths(server) == [
        "POST /api/v1/apps",
        "POST /oauth/token",
        "GET /api/v1/apps/verify_credentials",
        f"GET /api/v1/accounts/{alice}/followers",
        f"GET /api/v1/accounts/{alice}/following",
    ]
    registration, token_request, *api = server.requests
    assert dict(registration.form) == {
        "client_name": "Relationship Mapper",
        "redirect_uris": "urn:ietf:wg:oauth:2.0:oob",
        "scopes": "read",
        "website": "https://mapper.example",
    }
    form = dict(token_request.form)
    assert form["grant_type"] == "client_credentials"
    assert form["scope"] == "read"
    assert registration.authorization is None
    assert token_request.authorization is None
    token = masto.token
    assert token is not None
    assert all(r.bearer == token.access_token for r in api)

    saved = await store.load(StoreKey(instance=url(server), app="Relationship Mapper"))
    assert saved is not None
    assert saved.token == token
    assert saved.app is not None
    assert saved.app.client_id == masto.application.client_id if masto.application else False


async def test_second_session_on_the_same_store_makes_no_registration_or_token_request(
    server: FakeMastodon, alice: str, tmp_path: Path
) -> None:
    path = tmp_path / "credentials.json"
    async with Session(url(server), app=APP, store=JsonFileTokenStore(path)) as masto:
        await masto.verify_app()
    before = len(server.requests)

    # A new process: a new store object on the same file.
    async with Session(url(server), app=APP, store=JsonFileTokenStore(path)) as masto:
        await masto.verify_app()
        await masto.followers_page(alice)

    again = server.requests[before:]
    assert [r.path for r in again] == [
        "/api/v1/apps/verify_credentials",
        f"/api/v1/accounts/{alice}/followers",
    ]
    assert server.count("POST", "/api/v1/apps") == 1
    assert server.count("POST", "/oauth/token") == 1


async def test_instances_and_app_names_never_mix_in_one_store() -> None:
    store = MemoryTokenStore()
    one, two = FakeMastodon(), FakeMastodon()
    async with one.run() as url_one, two.run() as url_two:
        for instance in (url_one, url_two):
            for name in ("Mapper", "Other app"):
                async with Session(instance, app=App(name=name), store=store) as masto:
                    assert (await masto.verify_app()).name == name
        for instance in (url_one, url_two):
            for name in ("Mapper", "Other app"):
                async with Session(instance, app=App(name=name), store=store) as masto:
                    assert (await masto.verify_app()).name == name
    for fake in (one, two):
        assert fake.count("POST", "/api/v1/apps") == 2
        assert fake.count("POST", "/oauth/token") == 2


async def test_a_stored_app_without_a_newly_wanted_scope_is_registered_again(
    server: FakeMastodon,
) -> None:
    store = MemoryTokenStore()
    async with Session(url(server), app=App(name="Mapper"), store=store) as masto:
        await masto.verify_app()
    wider = App(name="Mapper", scopes="read follow")
    async with Session(url(server), app=wider, store=store) as masto:
        assert set((await masto.verify_app()).scopes) == {"read", "follow"}
    assert server.count("POST", "/api/v1/apps") == 2


async def test_concurrent_first_requests_register_once(server: FakeMastodon) -> None:
    async with Session(url(server), app=APP) as masto:
        results = await asyncio.gather(*(masto.verify_app() for _ in range(20)))
    assert {app.name for app in results} == {"Relationship Mapper"}
    assert server.count("POST", "/api/v1/apps") == 1
    assert server.count("POST", "/oauth/token") == 1


# -- token lifecycle ---------------------------------------------------------------------------


async def test_revoked_app_token_is_replaced_once_and_the_request_replayed(
    server: FakeMastodon, alice: str
) -> None:
    store = MemoryTokenStore()
    async with Session(url(server), app=APP, store=store) as masto:
        await masto.verify_app()
        old = masto.token
        assert old is not None
        server.revoke_token(old.access_token)

        page = await masto.followers_page(alice, limit=3)
        await masto.verify_app()

        new = masto.token
    assert new is not None
    assert new.access_token != old.access_token
    assert len(page.items) == 3
    assert server.count("POST", "/oauth/token") == 2
    assert server.count("POST", "/api/v1/apps") == 1
    saved = await store.load(StoreKey(instance=url(server), app=APP.name))
    assert saved is not None
    assert saved.token == new
    # the failed request went out once with the old token, then once with the new one
    verify = [r for r in server.requests if r.path == "/api/v1/apps/verify_credentials"]
    assert [r.bearer for r in verify] == [old.access_token, new.access_token]


async def test_twenty_concurrent_tasks_cause_exactly_one_token_request(
    server: FakeMastodon, alice: str
) -> None:
    async with Session(url(server), app=APP) as masto:
        await masto.verify_app()
        assert masto.token is not None
        server.revoke_token(masto.token.access_token)
        pages = await asyncio.gather(*(masto.followers_page(alice, limit=2) for _ in range(20)))
    assert all(len(page.items) == 2 for page in pages)
    assert server.count("POST", "/oauth/token") == 2  # the first token and one renewal


async def test_a_deleted_app_is_registered_again_once_and_says_so(
    server: FakeMastodon, caplog: pytest.LogCaptureFixture
) -> None:
    store = MemoryTokenStore()
    async with Session(url(server), app=APP, store=store) as masto:
        await masto.verify_app()
        assert masto.application is not None
        old_client = masto.application.client_id
        assert old_client is not None
        server.delete_app(old_client)
        with caplog.at_level(logging.WARNING, logger="aiomasto"):
            assert (await masto.verify_app()).name == APP.name
        assert masto.application.client_id != old_client
    assert server.count("POST", "/api/v1/apps") == 2
    assert any("registering it again" in r.getMessage() for r in caplog.records)


async def test_stored_credentials_of_a_deleted_app_are_replaced(server: FakeMastodon) -> None:
    store = MemoryTokenStore()
    async with Session(url(server), app=APP, store=store) as masto:
        await masto.verify_app()
        assert masto.application is not None
        assert masto.application.client_id is not None
        server.delete_app(masto.application.client_id)
    key = StoreKey(instance=url(server), app=APP.name)
    saved = await store.load(key)
    assert saved is not None
    await store.save(key, aiomasto.Credentials(app=saved.app))  # app known, token not

    async with Session(url(server), app=APP, store=store) as masto:
        assert (await masto.verify_app()).name == APP.name
    assert server.count("POST", "/api/v1/apps") == 2


async def test_never_loops_when_the_new_token_is_rejected_too(server: FakeMastodon) -> None:
    rejected = Fault.json(
        401,
        {"error": "The access token is invalid"},
        headers={"WWW-Authenticate": 'Bearer realm="Doorkeeper", error="invalid_token"'},
    )
    async with Session(url(server), app=APP) as masto:
        await masto.authenticate()
        server.inject("/api/v1/apps/verify_credentials", rejected, times=5)
        with pytest.raises(aiomasto.Unauthorized):
            await masto.verify_app()
    assert server.count("GET", "/api/v1/apps/verify_credentials") == 2
    assert server.count("POST", "/oauth/token") == 2


async def test_a_user_token_is_never_silently_replaced(server: FakeMastodon) -> None:
    alice = server.add_account("alice")
    token = server.issue_user_token(alice)
    server.revoke_token(token)
    async with Session(url(server), access_token=token) as masto:
        with pytest.raises(aiomasto.Unauthorized) as info:
            await masto.verify_app()
    assert info.value.error == "The access token was revoked"
    assert server.count("POST", "/oauth/token") == 0
    assert server.count("POST", "/api/v1/apps") == 0


async def test_an_endpoint_that_needs_a_user_does_not_trigger_renewal(
    server: FakeMastodon,
) -> None:
    async with Session(url(server), app=APP) as masto:
        with pytest.raises(aiomasto.Unprocessable) as info:
            await masto.request("GET", "/api/v1/accounts/verify_credentials")
    assert info.value.error == "This method requires an authenticated user"
    assert server.count("POST", "/oauth/token") == 1


async def test_revoke_forgets_the_token_but_keeps_the_app(server: FakeMastodon) -> None:
    store = MemoryTokenStore()
    async with Session(url(server), app=APP, store=store) as masto:
        await masto.verify_app()
        first = masto.token
        assert first is not None
        await masto.revoke()
        assert masto.token is None
        saved = await store.load(StoreKey(instance=url(server), app=APP.name))
        assert saved is not None
        assert saved.token is None
        assert saved.app is not None
        await masto.verify_app()  # a new token, no new registration
        assert masto.token is not None
        assert masto.token.access_token != first.access_token
    revoke = next(r for r in server.requests if r.path == "/oauth/revoke")
    assert dict(revoke.form)["token"] == first.access_token
    assert server.count("POST", "/api/v1/apps") == 1
    assert server.count("POST", "/oauth/token") == 2


async def test_registration_throttle_is_rate_limited() -> None:
    server = FakeMastodon(registration_limit=1)
    async with server.run() as base:
        async with Session(base, app=App(name="one")) as masto:
            await masto.authenticate()
        async with Session(base, app=App(name="two"), rate_limit="raise") as masto:
            with pytest.raises(aiomasto.RateLimited) as info:
                await masto.authenticate()
    assert info.value.retry_after is not None
    assert 0 < info.value.retry_after <= 600


# -- errors over the wire ----------------------------------------------------------------------


async def test_html_502_from_a_proxy(server: FakeMastodon) -> None:
    server.inject("/api/v1/apps/verify_credentials", Fault.html(502))
    async with Session(url(server), app=APP, retry=NO_RETRY) as masto:
        with pytest.raises(aiomasto.ServerError) as info:
            await masto.verify_app()
    assert info.value.status == 502
    assert info.value.error is None
    assert info.value.method == "GET"
    assert info.value.url.endswith("/api/v1/apps/verify_credentials")


async def test_empty_503(server: FakeMastodon) -> None:
    server.inject("/api/v1/apps/verify_credentials", Fault.empty(503))
    async with Session(url(server), app=APP, retry=NO_RETRY) as masto:
        with pytest.raises(aiomasto.ServerError) as info:
            await masto.verify_app()
    assert info.value.status == 503


async def test_truncated_json_is_a_decode_error(server: FakeMastodon, alice: str) -> None:
    path = f"/api/v1/accounts/{alice}/followers"
    server.inject(path, Fault.truncated_json())
    async with Session(url(server), app=APP) as masto:
        with pytest.raises(aiomasto.DecodeError) as info:
            await masto.followers_page(alice)
    assert info.value.entity == "Account"
    assert "truncated" in str(info.value)
    assert path in info.value.url


async def test_wrong_shape_names_entity_and_field(server: FakeMastodon) -> None:
    server.inject(
        "/api/v1/apps/verify_credentials", Fault.json(200, {"website": None, "scopes": "read"})
    )
    async with Session(url(server), app=APP) as masto:
        with pytest.raises(aiomasto.DecodeError) as info:
            await masto.verify_app()
    assert info.value.entity == "Application"
    assert info.value.field in ("name", "scopes")


async def test_html_404_for_an_unknown_route_maps_to_not_found(server: FakeMastodon) -> None:
    async with Session(url(server), app=APP) as masto:
        with pytest.raises(aiomasto.NotFound) as info:
            await masto.request("GET", "/api/v1/no_such_thing")
    assert info.value.status == 404
    assert info.value.request_id


async def test_unknown_account_is_not_found(server: FakeMastodon) -> None:
    async with Session(url(server), app=APP) as masto:
        with pytest.raises(aiomasto.NotFound) as info:
            await masto.followers_page("999")
    assert info.value.error == "Record not found"


async def test_oauth_invalid_client_on_a_fresh_registration_is_raised(
    server: FakeMastodon,
) -> None:
    server.inject(
        "/oauth/token",
        Fault.json(
            401,
            {
                "error": "invalid_client",
                "error_description": "Client authentication failed due to unknown client, no "
                "client authentication included, or unsupported authentication method.",
            },
        ),
    )
    async with Session(url(server), app=APP) as masto:
        with pytest.raises(aiomasto.OAuthError) as info:
            await masto.authenticate()
    assert info.value.status == 401
    assert info.value.error == "invalid_client"
    assert info.value.error_description is not None
    assert server.count("POST", "/api/v1/apps") == 1


async def test_connection_refused_is_a_transport_error() -> None:
    server = FakeMastodon()
    async with server.run() as base:
        pass  # the port is closed again
    async with Session(base, app=APP) as masto:
        with pytest.raises(aiomasto.ConnectionFailed) as info:
            await masto.verify_app()
    assert isinstance(info.value, aiomasto.TransportError)
    assert "/api/v1/apps" in str(info.value)


# -- where the token goes ----------------------------------------------------------------------


async def test_cross_origin_redirect_is_refused_before_anything_is_sent(
    server: FakeMastodon,
) -> None:
    elsewhere = FakeMastodon()
    async with elsewhere.run() as other, Session(url(server), app=APP) as masto:
        await masto.authenticate()
        server.inject(
            "/api/v1/apps/verify_credentials",
            Fault.raw(
                302,
                b"",
                "text/html",
                headers={"Location": f"{other}/api/v1/apps/verify_credentials"},
            ),
        )
        with pytest.raises(aiomasto.OriginError) as info:
            await masto.verify_app()
    assert info.value.expected_origin == url(server)
    assert elsewhere.requests == []


async def test_same_origin_redirect_is_followed_with_the_token(server: FakeMastodon) -> None:
    async with Session(url(server), app=APP) as masto:
        await masto.authenticate()
        server.inject(
            "/api/v1/old_verify",
            Fault.raw(
                301, b"", "text/html", headers={"Location": "/api/v1/apps/verify_credentials"}
            ),
        )
        response = await masto.request("GET", "/api/v1/old_verify")
        assert masto.token is not None
        token = masto.token.access_token
    assert response.status == 200
    assert server.requests[-1].path == "/api/v1/apps/verify_credentials"
    assert server.requests[-1].bearer == token


async def test_a_cursor_on_another_origin_is_refused(server: FakeMastodon) -> None:
    async with Session(url(server), app=APP) as masto:
        with pytest.raises(aiomasto.OriginError):
            await masto.followers_page("1", cursor="https://evil.example/api/v1/x?max_id=1")
    assert server.requests == []


# -- connection pool ownership -----------------------------------------------------------------


async def test_a_borrowed_client_session_is_never_closed(server: FakeMastodon) -> None:
    async with aiohttp.ClientSession() as http:
        async with Session(url(server), app=APP, http=http) as masto:
            await masto.verify_app()
        assert not http.closed
        async with Session(url(server), app=APP, http=http) as masto:
            await masto.verify_app()
        assert not http.closed


async def test_a_request_outside_the_context_manager_says_how_to_fix_it(
    server: FakeMastodon,
) -> None:
    masto = Session(url(server), app=APP)
    with pytest.raises(RuntimeError, match="async with"):
        await masto.verify_app()


# -- secrets -----------------------------------------------------------------------------------


async def test_no_secret_in_reprs_exceptions_or_debug_logs(
    server: FakeMastodon, alice: str, caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    store = JsonFileTokenStore(tmp_path / "c.json")
    texts: list[str] = []
    with caplog.at_level(logging.DEBUG):
        quick = aiomasto.Retry(attempts=3, backoff=0.001)
        async with Session(url(server), app=APP, store=store, retry=quick) as masto:
            await masto.verify_app()
            first = masto.token
            assert first is not None
            server.revoke_token(first.access_token)
            await masto.followers_page(alice)  # renewal path
            server.inject("/api/v1/apps/verify_credentials", Fault.html(502), times=3)
            try:
                await masto.verify_app()
            except aiomasto.ServerError as exc:
                texts += [str(exc), repr(exc)]
            server.inject(f"/api/v1/accounts/{alice}/followers", Fault.truncated_json())
            try:
                await masto.followers_page(alice)
            except aiomasto.DecodeError as exc:
                texts += [str(exc), repr(exc)]
            application, token = masto.application, masto.token
            assert application is not None
            assert token is not None
            saved = await store.load(StoreKey(instance=url(server), app=APP.name))
            texts += [repr(masto), repr(application), repr(token), repr(saved), repr(store)]
            await masto.revoke()
    secrets = [application.client_secret, token.access_token, first.access_token]
    texts += [record.getMessage() for record in caplog.records]
    assert len(texts) > 10
    assert any("retry" in text for text in texts)  # the retry path was logged too
    for secret in secrets:
        assert secret
        for text in texts:
            assert secret not in text


async def test_a_redirect_loop_on_the_instance_ends_in_an_error(server: FakeMastodon) -> None:
    async with Session(url(server), app=APP) as masto:
        await masto.authenticate()
        loop = Fault.raw(302, b"", "text/html", headers={"Location": "/api/v1/loop"})
        server.inject("/api/v1/loop", loop, times=10)
        with pytest.raises(aiomasto.HTTPError) as info:
            await masto.request("GET", "/api/v1/loop")
    assert info.value.status == 302
    assert server.count("GET", "/api/v1/loop") == 6  # the request and five redirects
