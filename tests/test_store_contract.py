"""The TokenStore contract: one suite, run unchanged against every store aiomasto ships.

Each store kind is a factory in :data:`FACTORIES` that says how to open the store (again, as a
new object over the same storage) and, for a store that processes share, how a child process
opens it. A new store kind is one more factory there; nothing else changes. Real files, a real
SQLite database and a real Redis server; every wait is bounded, so a deadlock fails fast.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import inspect
import json
import os
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from attrs import field, frozen
from yarl import URL

from aiomasto.entities import Application, Token
from aiomasto.stores import (
    FORMAT_VERSION,
    Credentials,
    MemoryTokenStore,
    StoreKey,
    TokenStore,
    store_keys,
    store_lock,
)

PROJECT_ROOT = Path(__file__).resolve().parents[1]
INSTANCE = "https://mastodon.example"
APP_KEY = StoreKey(instance=INSTANCE, app="Relationship Mapper")
USER_KEY = StoreKey(instance=INSTANCE, app="Relationship Mapper", account="109302")
OTHER_KEY = StoreKey(instance=INSTANCE, app="Relationship Mapper", account="al")

CLIENT_SECRET = "client-secret-Zq8xW3"
ACCESS_TOKEN = "access-token-Kp4vN7"
REFRESH_TOKEN = "refresh-token-Hs2mB9"


@frozen(kw_only=True)
class StoreSpec:
    """A store class by import path and its arguments: all a child process needs to open it."""

    module: str
    name: str
    args: tuple[str, ...] = ()
    kwargs: dict[str, str] = field(factory=dict)

    def open(self) -> TokenStore:
        store: TokenStore = getattr(importlib.import_module(self.module), self.name)(
            *self.args, **self.kwargs
        )
        return store

    def to_json(self) -> str:
        return json.dumps(
            {"module": self.module, "name": self.name, "args": self.args, "kwargs": self.kwargs}
        )


@frozen(kw_only=True)
class Backend:
    """One kind of store under test.

    ``open()`` returns a new store object over the same storage (the memory store, which
    lives in its object, returns itself). ``shared`` is ``None`` for a store that only one
    process can use, else how a child process opens it. ``secrets`` are configuration
    secrets (a Redis password) that must never show in a repr or message.
    """

    name: str
    open: Callable[[], TokenStore]
    shared: StoreSpec | None
    secrets: tuple[str, ...] = ()


def _shared(spec: StoreSpec, secrets: tuple[str, ...] = ()) -> Backend:
    return Backend(name=spec.name, open=spec.open, shared=spec, secrets=secrets)


def memory_backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    store = MemoryTokenStore()
    return Backend(name="MemoryTokenStore", open=lambda: store, shared=None)


def jsonfile_backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    path = tmp_path / "config" / "credentials.json"
    return _shared(
        StoreSpec(module="aiomasto.stores", name="JsonFileTokenStore", args=(str(path),))
    )


def sqlite_backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    path = tmp_path / "data" / "tokens.sqlite3"
    return _shared(StoreSpec(module="aiomasto.stores", name="SqliteTokenStore", args=(str(path),)))


def redis_backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    url: str = request.getfixturevalue("redis_url")
    prefix = f"aiomasto-contract-{uuid.uuid4().hex}"  # each test its own namespace
    spec = StoreSpec(
        module="aiomasto.stores.redis",
        name="RedisTokenStore",
        args=(url,),
        kwargs={"prefix": prefix},
    )
    return _shared(spec, secrets=tuple(s for s in [URL(url).password] if s))


# Every store kind the suite runs against; a new kind is one more factory here.
FACTORIES: list[Callable[[pytest.FixtureRequest, Path], Backend]] = [
    memory_backend,
    jsonfile_backend,
    sqlite_backend,
    redis_backend,
]


# The stores that processes share (the memory store lives in one process).
SHARED_FACTORIES = [factory for factory in FACTORIES if factory is not memory_backend]


def _name(factory: Callable[[pytest.FixtureRequest, Path], Backend]) -> str:
    return factory.__name__.removesuffix("_backend")


@pytest.fixture(params=FACTORIES, ids=_name)
async def backend(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Backend]:
    async for made in _opened(request, tmp_path):
        yield made


@pytest.fixture(params=SHARED_FACTORIES, ids=_name)
async def shared_backend(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Backend]:
    async for made in _opened(request, tmp_path):
        yield made


async def _opened(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Backend]:
    made: Backend = request.param(request, tmp_path)
    opened: list[TokenStore] = []

    def open_and_track() -> TokenStore:
        store = made.open()
        opened.append(store)
        return store

    yield Backend(name=made.name, open=open_and_track, shared=made.shared, secrets=made.secrets)
    for store in opened:  # a store holding connections (Redis) closes them
        close = getattr(store, "aclose", None) or getattr(store, "close", None)
        if callable(close):
            closing = close()
            if inspect.isawaitable(closing):
                await closing


@pytest.fixture
def store(backend: Backend) -> TokenStore:
    return backend.open()


def tagged(tag: str) -> Credentials:
    """A full record (every secret field set); ``tag`` tells records apart."""
    return Credentials(
        app=Application(
            name="Relationship Mapper",
            id="42",
            website="https://relmap.example",
            scopes=("read", "write:follows"),
            redirect_uris=("urn:ietf:wg:oauth:2.0:oob",),
            client_id=f"client-id-{tag}",
            client_secret=f"{CLIENT_SECRET}-{tag}",
        ),
        token=Token(
            access_token=f"{ACCESS_TOKEN}-{tag}",
            scope="read write:follows",
            created_at=datetime(2024, 5, 17, 9, 30, 12, tzinfo=UTC),
            expires_in=7200,
            refresh_token=f"{REFRESH_TOKEN}-{tag}",
        ),
    )


def registered(who: str) -> Credentials:
    return Credentials(app=Application(name="Relationship Mapper", client_id=who))


def order(key: StoreKey) -> tuple[str, str, bool, str]:
    return key.instance, key.app, key.account is not None, key.account or ""


async def create_once(store: TokenStore, who: str, turns: int = 5) -> bool:
    """What a Session does: lock; load; if nothing, register (taking a while) and save."""
    async with store_lock(store, APP_KEY):
        if await store.load(APP_KEY) is not None:
            return False
        for _ in range(turns):  # others get every chance to run meanwhile
            await asyncio.sleep(0)
        await store.save(APP_KEY, registered(who))
        return True


# Records


def test_the_store_offers_the_whole_protocol(store: TokenStore) -> None:
    assert isinstance(store, TokenStore)
    assert callable(getattr(store, "keys", None))
    assert callable(getattr(store, "lock", None))


async def test_app_and_user_records_round_trip(store: TokenStore) -> None:
    app_record = Credentials(
        app=tagged("app").app, token=Token(access_token=f"{ACCESS_TOKEN}-app", scope="read")
    )
    user_record = tagged("user")
    async with asyncio.timeout(10):
        await store.save(APP_KEY, app_record)
        await store.save(USER_KEY, user_record)

        loaded_app, loaded_user = await store.load(APP_KEY), await store.load(USER_KEY)

    assert loaded_app == app_record
    assert loaded_user == user_record
    assert loaded_user is not None
    assert loaded_user.app is not None
    assert loaded_user.token is not None
    assert loaded_user.app.client_secret == f"{CLIENT_SECRET}-user"
    assert loaded_user.token.refresh_token == f"{REFRESH_TOKEN}-user"
    assert loaded_user.token.created_at == datetime(2024, 5, 17, 9, 30, 12, tzinfo=UTC)
    assert loaded_user.version == FORMAT_VERSION


async def test_partial_records_round_trip(store: TokenStore) -> None:
    records = {
        StoreKey(instance=INSTANCE, app="app only"): Credentials(app=tagged("a").app),
        StoreKey(instance=INSTANCE, app="token only"): Credentials(token=tagged("t").token),
        StoreKey(instance=INSTANCE, app="empty"): Credentials(),
    }
    async with asyncio.timeout(10):
        for key, credentials in records.items():
            await store.save(key, credentials)
        for key, credentials in records.items():
            assert await store.load(key) == credentials


async def test_nothing_is_there_at_first(store: TokenStore) -> None:
    async with asyncio.timeout(10):
        assert await store.load(APP_KEY) is None
        assert await store.load(USER_KEY) is None
        assert await store_keys(store) == []


async def test_a_save_replaces_the_record(store: TokenStore) -> None:
    async with asyncio.timeout(10):
        await store.save(USER_KEY, tagged("old"))
        await store.save(USER_KEY, tagged("new"))

        assert await store.load(USER_KEY) == tagged("new")
        assert await store_keys(store) == [USER_KEY]


async def test_keys_lists_every_record_once(store: TokenStore) -> None:
    saved = [APP_KEY, USER_KEY, OTHER_KEY, StoreKey(instance="https://b.example", app="x")]
    async with asyncio.timeout(10):
        for key in saved + saved:
            await store.save(key, registered(str(key)))

        listed = await store_keys(store)

    assert sorted(listed, key=order) == sorted(saved, key=order)


async def test_delete_removes_that_record_only(store: TokenStore) -> None:
    async with asyncio.timeout(10):
        await store.save(APP_KEY, tagged("app"))
        await store.save(USER_KEY, tagged("user"))

        await store.delete(USER_KEY)
        await store.delete(USER_KEY)  # gone already: quiet
        await store.delete(StoreKey(instance="https://never.example", app="never"))

        assert await store.load(USER_KEY) is None
        assert await store.load(APP_KEY) == tagged("app")
        assert await store_keys(store) == [APP_KEY]


# Keys that look alike: another instance, app or account; the app's record (no account) and an
# empty account; separators a store might build its own keys with.
LOOKALIKE_KEYS = [
    StoreKey(instance=instance, app=app, account=account)
    for instance in ("https://mastodon.example", "https://mastodon.example:8443")
    for app in ("Relationship Mapper", "Relationship", "a:b", "a", "ünï/cødé %s\n")
    for account in (None, "", "109302", "b", "Mapper", "b:", ":b", "alice@other.example")
]


async def test_instances_apps_and_accounts_never_mix(store: TokenStore) -> None:
    async with asyncio.timeout(20):
        for index, key in enumerate(LOOKALIKE_KEYS):
            await store.save(key, tagged(str(index)))

        for index, key in enumerate(LOOKALIKE_KEYS):
            assert await store.load(key) == tagged(str(index)), key
        assert sorted(await store_keys(store), key=order) == sorted(LOOKALIKE_KEYS, key=order)

        gone = StoreKey(instance="https://mastodon.example", app="a:b", account=None)
        await store.delete(gone)
        assert await store.load(gone) is None
        for index, key in enumerate(LOOKALIKE_KEYS):
            if key != gone:
                assert await store.load(key) == tagged(str(index)), key


async def test_a_new_store_object_sees_the_records(backend: Backend) -> None:
    first = backend.open()
    async with asyncio.timeout(10):
        await first.save(APP_KEY, tagged("app"))
        await first.save(USER_KEY, tagged("user"))

        second = backend.open()
        assert await second.load(APP_KEY) == tagged("app")
        assert await second.load(USER_KEY) == tagged("user")
        assert sorted(await store_keys(second), key=order) == [APP_KEY, USER_KEY]

        # No copy is kept anywhere: what one object changes, the other sees at once.
        await second.save(USER_KEY, tagged("changed"))
        await second.delete(APP_KEY)
        assert await first.load(USER_KEY) == tagged("changed")
        assert await first.load(APP_KEY) is None


async def test_nothing_secret_in_a_repr(backend: Backend) -> None:
    store = backend.open()
    async with asyncio.timeout(10):
        await store.save(USER_KEY, tagged("user"))
        await store.load(USER_KEY)

    for text in (repr(store), str(store)):
        for secret in (CLIENT_SECRET, ACCESS_TOKEN, REFRESH_TOKEN, *backend.secrets):
            assert secret not in text


# lock(key)


class Occupancy:
    """How many tasks are inside a section at once, at most."""

    def __init__(self) -> None:
        self.inside = 0
        self.most = 0

    @contextlib.contextmanager
    def enter(self) -> Any:
        self.inside += 1
        self.most = max(self.most, self.inside)
        try:
            yield
        finally:
            self.inside -= 1


async def test_twenty_tasks_take_turns_and_create_the_record_once(backend: Backend) -> None:
    stores = [backend.open() for _ in range(3)]  # several objects over one storage, too
    occupancy = Occupancy()

    async def contend(index: int) -> bool:
        store = stores[index % len(stores)]
        async with store_lock(store, APP_KEY):
            with occupancy.enter():
                if await store.load(APP_KEY) is not None:
                    return False
                for _ in range(5):
                    await asyncio.sleep(0)
                await store.save(APP_KEY, registered(f"task-{index}"))
                return True

    async with asyncio.timeout(30):
        created = await asyncio.gather(*(contend(i) for i in range(20)))

    assert created.count(True) == 1
    assert occupancy.most == 1
    assert await stores[0].load(APP_KEY) == registered(f"task-{created.index(True)}")


async def test_the_holders_own_calls_go_through(backend: Backend) -> None:
    store, other = backend.open(), backend.open()
    async with asyncio.timeout(10), store_lock(store, APP_KEY):
        await store.save(APP_KEY, registered("one"))
        await store.save(OTHER_KEY, registered("other"))
        assert await store.load(APP_KEY) == registered("one")
        assert sorted(await store_keys(store), key=order) == [APP_KEY, OTHER_KEY]
        async with store_lock(store, APP_KEY):  # reentrant
            await store.delete(OTHER_KEY)
        async with store_lock(other, APP_KEY):  # also through another object
            await other.save(USER_KEY, registered("user"))
        # Tasks started inside the section work for the holder.
        await asyncio.gather(*(store.save(APP_KEY, registered(f"child-{i}")) for i in range(5)))
        await store.save(APP_KEY, registered("two"))

    assert await store.load(APP_KEY) == registered("two")
    assert await store.load(OTHER_KEY) is None
    assert await other.load(USER_KEY) == registered("user")


async def test_other_tasks_wait_for_the_section(backend: Backend) -> None:
    store, other = backend.open(), backend.open()
    order_seen: list[str] = []
    inside = asyncio.Event()
    leave = asyncio.Event()

    async def holder() -> None:
        async with store_lock(store, APP_KEY):
            inside.set()
            await leave.wait()
            order_seen.append("holder leaves")

    async def waiter(on: TokenStore, name: str) -> None:
        async with store_lock(on, APP_KEY):
            order_seen.append(name)

    async with asyncio.timeout(10):
        holding = asyncio.create_task(holder())
        await inside.wait()
        waiting = [
            asyncio.create_task(waiter(store, "same object enters")),
            asyncio.create_task(waiter(other, "other object enters")),
        ]
        for _ in range(20):
            await asyncio.sleep(0)
        await asyncio.sleep(0.05)  # a lock waited for in a thread gets time to be (wrongly) given
        leave.set()
        await asyncio.gather(holding, *waiting)

    assert order_seen[0] == "holder leaves"
    assert sorted(order_seen[1:]) == ["other object enters", "same object enters"]


async def test_a_cancelled_waiter_leaves_at_once_and_never_holds_the_lock(
    backend: Backend,
) -> None:
    store = backend.open()
    inside = asyncio.Event()
    leave = asyncio.Event()

    async def holder() -> None:
        async with store_lock(store, APP_KEY):
            inside.set()
            await leave.wait()

    async def waiter(on: TokenStore) -> None:
        async with store_lock(on, APP_KEY):
            pytest.fail("a cancelled waiter entered the section")

    async with asyncio.timeout(20):
        holding = asyncio.create_task(holder())
        await inside.wait()
        waiting = [asyncio.create_task(waiter(store)), asyncio.create_task(waiter(backend.open()))]
        for _ in range(5):
            await asyncio.sleep(0)
        for task in waiting:
            task.cancel()
        # The cancellation takes effect while the holder still holds the lock.
        for task in waiting:
            with pytest.raises(asyncio.CancelledError):
                await task
        assert not holding.done()
        # Callers that give up under a deadline leave as promptly.
        for on in (store, backend.open()):
            with pytest.raises(TimeoutError):
                async with asyncio.timeout(0.02), store_lock(on, APP_KEY):
                    pytest.fail("entered a section another task holds")
        leave.set()
        await holding
        # Nobody who gave up kept the lock: the next callers get it, one after another.
        assert await create_once(backend.open(), "after")
        assert not await create_once(store, "again")


async def test_a_cancelled_holder_releases_the_lock(backend: Backend) -> None:
    store = backend.open()
    inside = asyncio.Event()

    async def holder() -> None:
        async with store_lock(store, APP_KEY):
            await store.save(APP_KEY, registered("holder"))
            inside.set()
            await asyncio.Event().wait()

    async with asyncio.timeout(10):
        holding = asyncio.create_task(holder())
        await inside.wait()
        holding.cancel()
        with pytest.raises(asyncio.CancelledError):
            await holding
        async with store_lock(backend.open(), APP_KEY):
            assert await store.load(APP_KEY) == registered("holder")


# Processes sharing one store

_CHILD = """
import asyncio, importlib, json, sys
from aiomasto.entities import Application, Token
from aiomasto.stores import Credentials, StoreKey, store_lock

INSTANCE = "https://mastodon.example"


def open_store():
    spec = json.loads(sys.stdin.readline())  # on stdin: it may hold a password
    store_class = getattr(importlib.import_module(spec["module"]), spec["name"])
    return store_class(*spec["args"], **spec["kwargs"])


def record(who, i, round):
    return Credentials(
        app=Application(name="contract", client_id=f"{who}-{i}", client_secret=f"secret-{who}"),
        token=Token(access_token=f"token-{who}-{i}-{round}", refresh_token=f"refresh-{who}-{i}"),
    )


async def saves_and_loads(store, who, tasks):
    async def one(i):
        key = StoreKey(instance=INSTANCE, app="contract", account=f"{who}-{i}")
        for round in (1, 2):
            await store.save(key, record(who, i, round))
            if await store.load(key) != record(who, i, round):
                raise AssertionError(f"{key} did not read back what it saved")
            await store.save(StoreKey(instance=INSTANCE, app="shared"), record(who, i, round))
            await store.load(StoreKey(instance=INSTANCE, app="shared"))

    await asyncio.gather(*(one(i) for i in range(tasks)))
    keys = set(await store.keys())
    mine = {StoreKey(instance=INSTANCE, app="contract", account=f"{who}-{i}") for i in range(tasks)}
    if not mine <= keys:
        raise AssertionError("keys() misses records this process saved")
    print("done", flush=True)


async def create_once(store, who):
    key = StoreKey(instance=INSTANCE, app="Relationship Mapper")
    async with store_lock(store, key):
        if await store.load(key) is not None:
            print("found", flush=True)
            return
        await asyncio.sleep(0.2)  # registering: long enough for the others to look too
        app = Application(name="Relationship Mapper", client_id=who)
        await store.save(key, Credentials(app=app))
        print("saved", flush=True)


async def main(mode, who, tasks):
    store = open_store()
    print("ready", flush=True)
    sys.stdin.readline()
    if mode == "saves":
        await saves_and_loads(store, who, int(tasks))
    else:
        await create_once(store, who)
    close = getattr(store, "aclose", None)
    if close is not None:
        await close()

asyncio.run(main(*sys.argv[1:]))
"""


async def run_children(spec: StoreSpec, mode: str, names: list[str], tasks: int = 0) -> list[bytes]:
    """Start one child per name, let them go at once, and return what each printed."""
    env = {**os.environ, "PYTHONPATH": str(PROJECT_ROOT)}
    children = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            _CHILD,
            mode,
            name,
            str(tasks),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=env,
        )
        for name in names
    ]
    try:
        for child in children:
            assert child.stdin is not None
            assert child.stdout is not None
            child.stdin.write(spec.to_json().encode() + b"\n")
            assert await child.stdout.readline() == b"ready\n"
        for child in children:  # all at once
            assert child.stdin is not None
            child.stdin.write(b"go\n")
        outputs = [(await child.communicate())[0] for child in children]
    finally:
        for child in children:
            if child.returncode is None:
                child.kill()
                await child.wait()
    assert [child.returncode for child in children] == [0] * len(children)
    return outputs


def shared_spec(backend: Backend) -> StoreSpec:
    assert backend.shared is not None
    return backend.shared


async def test_processes_take_turns_and_create_the_record_once(shared_backend: Backend) -> None:
    spec = shared_spec(shared_backend)

    async with asyncio.timeout(45):
        outcomes = await run_children(spec, "create", ["a", "b", "c"])

    assert sorted(outcomes) == [b"found\n", b"found\n", b"saved\n"]
    saver = "abc"[outcomes.index(b"saved\n")]
    assert await shared_backend.open().load(APP_KEY) == registered(saver)


async def test_four_processes_of_fifty_concurrent_saves_and_loads_lose_nothing(
    shared_backend: Backend,
) -> None:
    spec = shared_spec(shared_backend)
    names = ["p0", "p1", "p2", "p3"]

    async with asyncio.timeout(50):
        outputs = await run_children(spec, "saves", names, tasks=50)

        assert outputs == [b"done\n"] * 4
        store = shared_backend.open()
        for who in names:
            for i in range(50):
                key = StoreKey(instance=INSTANCE, app="contract", account=f"{who}-{i}")
                loaded = await store.load(key)
                assert loaded is not None, key
                assert loaded.token is not None
                assert loaded.app is not None
                assert loaded.token.access_token == f"token-{who}-{i}-2", key
                assert loaded.app.client_secret == f"secret-{who}"
        keys = await store_keys(store)
    assert len(keys) == 4 * 50 + 1
    assert StoreKey(instance=INSTANCE, app="shared") in keys
