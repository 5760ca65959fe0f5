"""One attempt at the token, shared by every task waiting for it, failure included (point 8)."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

import aiomasto
from aiomasto import App, JsonFileTokenStore, MemoryTokenStore, Retry, Session, StoreKey
from aiomasto.testing import FakeMastodon, Fault

APP = App(name="Flight test")
QUICK = Retry(backoff=0.001)
TASKS = 20


def url(server: FakeMastodon) -> str:
    assert server.url is not None
    return server.url


async def all_of(call: Callable[[], Awaitable[Any]]) -> list[Any]:
    """Twenty tasks at once; what each got, result or exception."""
    async with asyncio.timeout(10):
        return await asyncio.gather(*(call() for _ in range(TASKS)), return_exceptions=True)


@pytest.mark.parametrize(
    ("fault", "error", "requests"),
    [
        (Fault.json(500, {"error": "boom"}), aiomasto.ServerError, 1),
        (Fault.raw(200, b"<html>maintenance</html>", "text/html"), aiomasto.DecodeError, 1),
        (Fault.html(502), aiomasto.ServerError, 4),  # one attempt and its three retries
        (Fault.slow(0.2, then=Fault.html(504)), aiomasto.ServerError, 4),
    ],
    ids=["500", "html-200", "502", "slow-504"],
)
async def test_a_failed_token_request_is_shared_not_repeated(
    server: FakeMastodon, fault: Fault, error: type[Exception], requests: int
) -> None:
    server.inject("/oauth/token", fault, times=100)
    async with Session(url(server), app=APP, retry=QUICK) as masto:
        outcomes = await all_of(masto.verify_app)
    assert all(isinstance(o, error) for o in outcomes), outcomes
    assert server.count("POST", "/api/v1/apps") == 1
    assert server.count("POST", "/oauth/token") == requests
    assert server.count("GET", "/api/v1/apps/verify_credentials") == 0


async def test_after_a_shared_failure_the_next_call_tries_again(server: FakeMastodon) -> None:
    server.inject("/oauth/token", Fault.json(500, {"error": "boom"}))
    async with Session(url(server), app=APP, retry=QUICK) as masto:
        outcomes = await all_of(masto.verify_app)
        assert all(isinstance(o, aiomasto.ServerError) for o in outcomes)
        assert (await masto.verify_app()).name == APP.name
    assert server.count("POST", "/oauth/token") == 2


async def delete_app(server: FakeMastodon, store: MemoryTokenStore) -> None:
    """Delete the stored app server-side; that revokes its tokens too."""
    stored = await store.load(StoreKey(instance=url(server), app=APP.name))
    client_id = stored.app.client_id if stored and stored.app else None
    assert client_id
    server.delete_app(client_id)


async def test_a_deleted_app_is_registered_again_once_for_all_waiting_tasks(
    server: FakeMastodon,
) -> None:
    store = MemoryTokenStore()
    async with Session(url(server), app=APP, store=store) as masto:
        await masto.authenticate()
        await delete_app(server, store)
        outcomes = await all_of(masto.verify_app)
    assert all(isinstance(o, aiomasto.Application) for o in outcomes), outcomes
    assert server.count("POST", "/api/v1/apps") == 2  # the first, and one more
    assert server.count("POST", "/oauth/token") == 3  # first, refused, new


async def test_an_app_deleted_again_is_not_registered_a_third_time(
    server: FakeMastodon,
) -> None:
    store = MemoryTokenStore()
    async with Session(url(server), app=APP, store=store) as masto:
        await masto.authenticate()
        await delete_app(server, store)
        await masto.verify_app()  # registered again
        await delete_app(server, store)
        outcomes = await all_of(masto.verify_app)
    assert all(isinstance(o, aiomasto.OAuthError) for o in outcomes), outcomes
    assert all(o.error == "invalid_client" for o in outcomes)
    assert server.count("POST", "/api/v1/apps") == 2


async def test_a_failed_renewal_of_a_rejected_token_is_shared(server: FakeMastodon) -> None:
    async with Session(url(server), app=APP, retry=QUICK) as masto:
        token = await masto.authenticate()
        assert token is not None
        server.revoke_token(token.access_token)
        server.inject("/oauth/token", Fault.json(500, {"error": "boom"}), times=100)
        outcomes = await all_of(masto.verify_app)
    assert all(isinstance(o, aiomasto.ServerError) for o in outcomes), outcomes
    assert server.count("POST", "/oauth/token") == 2  # the first token, one renewal


async def test_a_cancelled_waiter_does_not_cancel_the_attempt_for_the_others(
    server: FakeMastodon,
) -> None:
    server.inject("/oauth/token", Fault.slow(0.2))
    async with Session(url(server), app=APP) as masto, asyncio.timeout(10):
        first = asyncio.create_task(masto.authenticate())
        others = [asyncio.create_task(masto.verify_app()) for _ in range(5)]
        await asyncio.sleep(0.05)
        first.cancel()
        results = await asyncio.gather(*others)
    assert all(r.name == APP.name for r in results)
    assert first.cancelled()
    assert server.count("POST", "/oauth/token") == 1


async def test_a_throttled_token_endpoint_is_a_rate_limit_not_an_oauth_error(
    server: FakeMastodon,
) -> None:
    throttled = Fault.json(429, {"error": "Too many requests"}, headers={"Retry-After": "3"})
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    server.inject("/oauth/token", throttled)
    async with Session(url(server), app=APP, rate_limit="raise") as masto, asyncio.timeout(5):
        with pytest.raises(aiomasto.RateLimited) as info:
            await masto.authenticate()
    assert info.value.retry_after == 3
    server.inject("/oauth/token", throttled)
    async with Session(url(server), app=APP, sleep=sleep) as masto, asyncio.timeout(5):
        await masto.authenticate()
    assert slept == [3]


# -- processes sharing one JSON store file register once between them ---------------------------

SESSION_PROCESS = """
import asyncio, sys
from pathlib import Path
from aiomasto import App, JsonFileTokenStore, Session

async def main() -> None:
    url, store, ready, go = sys.argv[1:5]
    Path(ready).touch()
    while not Path(go).exists():  # every process starts at once
        await asyncio.sleep(0.01)
    async with Session(url, app=App(name="Flight test"), store=JsonFileTokenStore(store)) as m:
        print((await m.verify_app()).name)

asyncio.run(main())
"""


async def run_sessions_in_processes(server: FakeMastodon, store: Path, n: int) -> list[str]:
    """``n`` processes open a Session on ``store`` together; what each printed."""
    processes = []
    for i in range(n):
        processes.append(
            await asyncio.create_subprocess_exec(
                sys.executable,
                "-c",
                SESSION_PROCESS,
                url(server),
                str(store),
                str(store.parent / f"ready-{i}"),
                str(store.parent / "go"),
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
            )
        )
    async with asyncio.timeout(30):
        while not all((store.parent / f"ready-{i}").exists() for i in range(n)):  # noqa: ASYNC110 - other processes
            await asyncio.sleep(0.01)
        (store.parent / "go").touch()
        outputs = [await p.communicate() for p in processes]
    assert all(p.returncode == 0 for p in processes), [err for _, err in outputs]
    return [out.decode().strip() for out, _ in outputs]


async def test_processes_sharing_a_store_file_register_once(
    server: FakeMastodon, tmp_path: Path
) -> None:
    server.inject("/api/v1/apps", Fault.slow(0.3))  # the others arrive while it registers
    printed = await run_sessions_in_processes(server, tmp_path / "credentials.json", 4)
    assert printed == [APP.name] * 4
    assert server.count("POST", "/api/v1/apps") == 1
    assert server.count("POST", "/oauth/token") == 1


async def test_processes_sharing_a_store_file_register_a_deleted_app_again_once(
    server: FakeMastodon, tmp_path: Path
) -> None:
    path = tmp_path / "credentials.json"
    store = JsonFileTokenStore(path)
    key = StoreKey(instance=url(server), app=APP.name)
    async with Session(url(server), app=APP, store=store) as masto:
        await masto.authenticate()
    stored = await store.load(key)
    assert stored is not None
    assert stored.app is not None
    assert stored.app.client_id is not None
    server.delete_app(stored.app.client_id)
    await store.save(key, aiomasto.Credentials(app=stored.app))  # its token went with it
    server.inject("/api/v1/apps", Fault.slow(0.3))
    printed = await run_sessions_in_processes(server, path, 4)
    assert printed == [APP.name] * 4
    assert server.count("POST", "/api/v1/apps") == 2  # the first, and one for all four
    assert server.count("POST", "/oauth/token") == 3  # first, refused once, the new app's
