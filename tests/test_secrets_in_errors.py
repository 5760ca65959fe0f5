"""No secret anywhere in what an error carries: message, excerpt, chain, or frames' locals.

Error reporters print the whole chain (``__cause__``, ``__context__``) and often the local
variables of every frame; both are checked here, not just ``str(exc)`` (point 3).
"""

from __future__ import annotations

import asyncio
import traceback

import pytest

import aiomasto
from aiomasto import App, Application, Credentials, MemoryTokenStore, Session, StoreKey
from aiomasto.testing import FakeMastodon, Fault

APP = App(name="Secrets test")
NEW_TOKEN = "ZA-Yj3aBD8U8Cm7lKUp-lm9O9BmDgdhHzDeqsY8tlL0"
SECRET = "hunter2-short-secret"  # not token-shaped: only knowing it can mask it


def url(server: FakeMastodon) -> str:
    assert server.url is not None
    return server.url


def everything_shown(exc: BaseException) -> str:
    """What a thorough error reporter would print: the chain, with every frame's locals.

    The test's own frame is left out: it holds the secret on purpose.
    """
    text = ""
    current: BaseException | None = exc
    while current is not None:
        frames = traceback.StackSummary.extract(
            traceback.walk_tb(current.__traceback__), capture_locals=True
        )
        library = [frame for frame in frames if "/tests/" not in frame.filename]
        text += "".join(traceback.format_list(library))
        text += "".join(traceback.format_exception_only(current))
        text += repr(current) + repr(vars(current)) + repr(current.args)
        current = current.__cause__ or current.__context__
    return text


async def seeded_store(server: FakeMastodon) -> MemoryTokenStore:
    """A store holding registered client credentials whose secret is SECRET, and no token."""
    client_id = server.register_app(client_name=APP.name, scopes="read")["client_id"]
    assert isinstance(client_id, str)
    store = MemoryTokenStore()
    seeded = Application(
        name=APP.name,
        client_id=client_id,
        client_secret=SECRET,
        scopes=("read",),
        redirect_uris=APP.redirect_uris,
    )
    await store.save(StoreKey(instance=url(server), app=APP.name), Credentials(app=seeded))
    return store


async def test_a_truncated_token_answer_does_not_quote_the_token(server: FakeMastodon) -> None:
    body = f'{{"access_token":"{NEW_TOKEN}","token_type":"Bea'.encode()
    server.inject("/oauth/token", Fault.raw(200, body, "application/json"))
    async with Session(url(server), app=APP) as masto, asyncio.timeout(5):
        with pytest.raises(aiomasto.DecodeError) as info:
            await masto.authenticate()
    shown = everything_shown(info.value)
    assert NEW_TOKEN not in shown
    assert "access_token" in info.value.body_excerpt  # the excerpt still helps


async def test_an_error_description_echoing_the_client_secret_is_masked(
    server: FakeMastodon,
) -> None:
    store = await seeded_store(server)
    echo = {
        "error": f"invalid_client {SECRET}",
        "error_description": f"Client authentication failed for secret {SECRET}",
    }
    server.inject("/oauth/token", Fault.json(401, echo))
    async with Session(url(server), app=APP, store=store) as masto, asyncio.timeout(5):
        with pytest.raises(aiomasto.OAuthError) as info:
            await masto.authenticate()
    assert SECRET not in everything_shown(info.value)
    assert info.value.error_description is not None
    assert "Client authentication failed" in info.value.error_description


async def test_an_api_error_shows_no_bearer_token(server: FakeMastodon) -> None:
    token = server.issue_user_token(server.add_account("alice"), scopes="read")
    server.inject("/api/v1/accounts/1", Fault.json(500, {"error": f"echo Bearer {token}"}))
    async with Session(url(server), access_token=token) as masto, asyncio.timeout(5):
        with pytest.raises(aiomasto.ServerError) as info:
            await masto.account("1")
    assert token not in everything_shown(info.value)


async def test_a_connection_failure_shows_no_bearer_token(server: FakeMastodon) -> None:
    token = server.issue_user_token(server.add_account("alice"), scopes="read")
    server.inject("/api/v1/accounts/1", Fault.reset_mid_body(), times=10)
    async with (
        Session(url(server), access_token=token, retry=aiomasto.NO_RETRY) as masto,
        asyncio.timeout(5),
    ):
        with pytest.raises(aiomasto.ConnectionFailed) as info:
            await masto.account("1")
    assert token not in everything_shown(info.value)
