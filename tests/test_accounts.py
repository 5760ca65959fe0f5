"""The account endpoints a crawler needs, over loopback against aiomasto.testing."""

from __future__ import annotations

import pytest

import aiomasto
from aiomasto import App, Session
from aiomasto.testing import FakeMastodon

APP = App(name="Crawler")


def base(server: FakeMastodon) -> str:
    assert server.url is not None
    return server.url


async def test_verify_credentials_with_an_app_token_says_a_user_is_needed(
    server: FakeMastodon,
) -> None:
    async with Session(base(server), app=APP) as masto:
        with pytest.raises(aiomasto.UserTokenRequired) as info:
            await masto.verify_credentials()
    assert info.value.status == 422
    assert isinstance(info.value, aiomasto.Unprocessable)
    assert "needs a user token" in str(info.value)
    assert server.count("POST", "/oauth/token") == 1  # not mistaken for a bad token


async def test_verify_credentials_with_a_user_token(server: FakeMastodon) -> None:
    alice = server.add_account("alice", display_name="Alice")
    token = server.issue_user_token(alice)
    async with Session(base(server), access_token=token) as masto:
        me = await masto.verify_credentials()
    assert isinstance(me, aiomasto.CredentialAccount)
    assert me.id == alice
    assert me.display_name == "Alice"
    assert me.source is not None
    assert me.role is not None


async def test_account_by_id_and_unknown_id(server: FakeMastodon) -> None:
    alice = server.add_account("alice")
    async with Session(base(server), app=APP) as masto:
        account = await masto.account(alice)
        with pytest.raises(aiomasto.NotFound):
            await masto.account("123456789")
    assert account.username == "alice"


@pytest.mark.parametrize("handle", ["bob@remote.example", "@bob@remote.example"])
async def test_lookup_remote_forms(server: FakeMastodon, handle: str) -> None:
    server.add_account("bob", domain="remote.example")
    async with Session(base(server), app=APP) as masto:
        account = await masto.lookup(handle)
    assert account.acct == "bob@remote.example"
    assert account.roles == ()  # remote accounts carry no roles key


async def test_lookup_local_and_unknown(server: FakeMastodon) -> None:
    server.add_account("carol")
    async with Session(base(server), app=APP) as masto:
        assert (await masto.lookup("carol")).acct == "carol"
        assert (await masto.lookup("@carol")).acct == "carol"
        with pytest.raises(aiomasto.NotFound):
            await masto.lookup("nobody@nowhere.example")
        with pytest.raises(ValueError, match="handle"):
            await masto.lookup("@")


async def test_relationships_in_the_callers_order_in_chunks(server: FakeMastodon) -> None:
    me = server.add_account("me")
    others = [server.add_account(f"user{i}") for i in range(95)]
    for other in others[::3]:
        server.follow(me, other)
    token = server.issue_user_token(me)
    wanted = [*others[::-1], "999999999", others[0]]  # unknown id and a duplicate
    async with Session(base(server), access_token=token) as masto:
        relationships = await masto.relationships(wanted, chunk_size=40)
    assert [r.id for r in relationships] == others[::-1]
    following = {r.id for r in relationships if r.following}
    assert following == set(others[::3])
    requests = [r for r in server.requests if r.path == "/api/v1/accounts/relationships"]
    assert len(requests) == 3  # 96 distinct ids in chunks of 40
    assert all(key == "id[]" for r in requests for key, _ in r.query)


async def test_relationships_need_a_user(server: FakeMastodon) -> None:
    alice = server.add_account("alice")
    async with Session(base(server), app=APP) as masto:
        with pytest.raises(aiomasto.UserTokenRequired):
            await masto.relationships([alice])
        assert await masto.relationships([]) == []
