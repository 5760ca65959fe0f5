"""RedisTokenStore against a real, password-protected redis-server (the ``redis_url`` fixture).

Every test works under a prefix of its own, since the server lives for the whole session.
Other processes are real subprocesses with their own event loops.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
import signal
import subprocess
import sys
import traceback
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
import redis.asyncio as aioredis
from records import ACCESS_TOKEN, CLIENT_SECRET, SECRETS, make_credentials
from yarl import URL

import aiomasto
from aiomasto._converter import converter
from aiomasto.entities import Application
from aiomasto.errors import TokenStoreError
from aiomasto.stores import Credentials, StoreKey, TokenStore, store_keys, store_lock
from aiomasto.stores import redis as redis_module
from aiomasto.stores.redis import RedisTokenStore
from aiomasto.testing import FakeMastodon, Fault

PROJECT_ROOT = Path(__file__).resolve().parents[1]

INSTANCE = "https://mastodon.example"
APP_KEY = StoreKey(instance=INSTANCE, app="Relationship Mapper")
USER_KEY = StoreKey(instance=INSTANCE, app="Relationship Mapper", account="alice")
LOCK_NAME = (
    ":lock:https%3A%2F%2Fmastodon.example/Relationship%20Mapper"  # APP_KEY's, after a prefix
)


def registered(who: str) -> Credentials:
    return Credentials(app=Application(name="Relationship Mapper", client_id=who))


def password_of(url: str) -> str:
    password = URL(url).password
    assert password
    return password


def assert_clean(error: BaseException, *secret: str) -> None:
    """No secret in the message, the printed traceback, a chained exception or our frames."""
    assert error.__cause__ is None
    assert error.__context__ is None
    shown = [str(error), repr(error), "".join(traceback.format_exception(error))]
    for frame, _ in traceback.walk_tb(error.__traceback__):
        if frame.f_code.co_filename == redis_module.__file__:
            shown.append(repr(frame.f_locals))
    for text in shown:
        for s in (*SECRETS, *secret):
            assert s not in text


@pytest.fixture
def prefix() -> str:
    return f"test-{secrets.token_hex(6)}"


@pytest.fixture
async def client(redis_url: str) -> AsyncIterator[aioredis.Redis]:
    """The test's own connection, to look at and plant raw keys."""
    raw = aioredis.Redis.from_url(redis_url)
    try:
        yield raw
    finally:
        await raw.aclose()


@pytest.fixture
async def store(redis_url: str, prefix: str) -> AsyncIterator[RedisTokenStore]:
    async with RedisTokenStore(redis_url, prefix=prefix) as opened:
        yield opened


async def everything(client: aioredis.Redis, pattern: str) -> dict[bytes, bytes | str | None]:
    return {name: await client.get(name) async for name in client.scan_iter(match=pattern)}


# -- records ---------------------------------------------------------------------------------


async def test_it_is_a_token_store_exposed_by_aiomasto(store: RedisTokenStore) -> None:
    assert isinstance(store, TokenStore)
    assert aiomasto.RedisTokenStore is RedisTokenStore
    assert aiomasto.stores.RedisTokenStore is RedisTokenStore


async def test_round_trip_as_the_converters_json_under_documented_names(
    store: RedisTokenStore, client: aioredis.Redis, prefix: str
) -> None:
    partial = Credentials(app=Application(name="Relationship Mapper", client_id="only-app"))
    async with asyncio.timeout(10):
        assert await store.load(USER_KEY) is None
        await store.save(APP_KEY, partial)
        await store.save(USER_KEY, make_credentials())
        assert await store.load(APP_KEY) == partial
        assert await store.load(USER_KEY) == make_credentials()
        # Another store object (a restart, another process) reads the same records.
        async with RedisTokenStore(client, prefix=prefix) as again:
            assert await again.load(USER_KEY) == make_credentials()
        raw = await client.get(
            f"{prefix}:credentials:https%3A%2F%2Fmastodon.example/Relationship%20Mapper/alice"
        )
        app_raw = await client.get(
            f"{prefix}:credentials:https%3A%2F%2Fmastodon.example/Relationship%20Mapper"
        )
    assert raw is not None
    assert json.loads(raw) == converter.unstructure(make_credentials(), Credentials)
    assert app_raw is not None
    assert json.loads(app_raw) == converter.unstructure(partial, Credentials)


async def test_save_replaces_and_delete_removes_one_record_quietly(
    store: RedisTokenStore,
) -> None:
    async with asyncio.timeout(10):
        await store.save(APP_KEY, make_credentials("-1"))
        await store.save(USER_KEY, make_credentials("-1"))
        await store.save(USER_KEY, make_credentials("-2"))
        assert await store.load(USER_KEY) == make_credentials("-2")
        await store.delete(USER_KEY)
        await store.delete(USER_KEY)  # nothing there: quiet
        assert await store.load(USER_KEY) is None
        assert await store.load(APP_KEY) == make_credentials("-1")
        assert await store.keys() == [APP_KEY]


# Parts that a naive join would run together; each must stay a record of its own.
AWKWARD_KEYS = [
    StoreKey(instance="a/b", app="c"),
    StoreKey(instance="a", app="b/c"),
    StoreKey(instance="a", app="b", account="c"),
    StoreKey(instance="a:b", app="c"),
    StoreKey(instance="a", app="b:c"),
    StoreKey(instance="a", app="b", account=""),
    StoreKey(instance="a", app="b"),
    StoreKey(instance="a%2Fb", app="c"),
    StoreKey(instance="https://m.example", app="*?[x]\\", account="émile 🐘"),
    StoreKey(instance="", app=""),
]


async def test_no_instance_app_or_account_value_collides_with_another(
    store: RedisTokenStore,
) -> None:
    async with asyncio.timeout(10):
        for i, key in enumerate(AWKWARD_KEYS):
            await store.save(key, registered(str(i)))
        for i, key in enumerate(AWKWARD_KEYS):
            assert await store.load(key) == registered(str(i)), key
        assert set(await store.keys()) == set(AWKWARD_KEYS)
        assert len(await store.keys()) == len(AWKWARD_KEYS)


async def test_keys_lists_this_prefix_only_and_leaves_other_keys_untouched(
    redis_url: str, client: aioredis.Redis, prefix: str
) -> None:
    async with asyncio.timeout(10):
        # Neighbours: prefixes that start like this one, a glob-looking one, a nested one,
        # and foreign keys that look almost like records.
        neighbours = [f"{prefix}x", f"{prefix}*", f"{prefix}:credentials:x", f"x{prefix}"]
        for other in neighbours:
            async with RedisTokenStore(redis_url, prefix=other) as elsewhere:
                await elsewhere.save(APP_KEY, registered(other))
        await client.set(f"{prefix}:credentials:not:a/record", b"foreign")
        await client.set(f"{prefix}:credentials:a/b/c/d", b"foreign")
        await client.set(f"{prefix}:credentials:a%2f/b", b"foreign")  # not canonical
        await client.set(f"{prefix}:unrelated", b"foreign")
        before = await everything(client, "*")

        async with RedisTokenStore(redis_url, prefix=prefix) as store:
            assert await store.keys() == []
            await store.save(USER_KEY, make_credentials())
            await store.save(APP_KEY, make_credentials())
            assert await store.keys() == [APP_KEY, USER_KEY]
            assert await store_keys(store) == [APP_KEY, USER_KEY]
            await store.delete(USER_KEY)
            await store.delete(APP_KEY)
            assert await store.keys() == []

        assert await everything(client, "*") == before
        for other in neighbours:
            async with RedisTokenStore(redis_url, prefix=other) as elsewhere:
                assert await elsewhere.keys() == [APP_KEY]
                assert await elsewhere.load(APP_KEY) == registered(other)


async def test_fifty_concurrent_saves_all_land(store: RedisTokenStore) -> None:
    keys = [StoreKey(instance=INSTANCE, app="A", account=str(i)) for i in range(50)]
    async with asyncio.timeout(10):
        await asyncio.gather(*(store.save(k, registered(str(i))) for i, k in enumerate(keys)))
        loaded = await asyncio.gather(*(store.load(k) for k in keys))
        assert loaded == [registered(str(i)) for i in range(50)]
        assert len(await store.keys()) == 50


_SAVER = """
import asyncio, os
from aiomasto.entities import Application
from aiomasto.stores import Credentials, StoreKey
from aiomasto.stores.redis import RedisTokenStore

async def main() -> None:
    who = os.environ["WHO"]
    async with RedisTokenStore(os.environ["REDIS_URL"], prefix=os.environ["PREFIX"]) as store:
        await store.keys()  # connected before the start
        print("ready", flush=True)
        await asyncio.to_thread(input)

        async def save_and_load(i: int) -> bool:
            key = StoreKey(instance="https://m.example", app="A", account=f"{who}-{i}")
            record = Credentials(app=Application(name="A", client_id=f"{who}-{i}"))
            await store.save(key, record)
            return await store.load(key) == record

        print(sum(await asyncio.gather(*(save_and_load(i) for i in range(50)))), flush=True)

asyncio.run(main())
"""


async def test_four_processes_of_fifty_tasks_saving_and_loading_lose_nothing(
    redis_url: str, store: RedisTokenStore, prefix: str
) -> None:
    env = {"REDIS_URL": redis_url, "PREFIX": prefix}
    workers = [await spawn_async(_SAVER, {**env, "WHO": who}) for who in "abcd"]
    async with asyncio.timeout(30):
        for worker in workers:
            assert worker.stdout is not None
            assert await worker.stdout.readline() == b"ready\n"
        for worker in workers:  # all at once
            assert worker.stdin is not None
            worker.stdin.write(b"go\n")
        outcomes = [await worker.communicate() for worker in workers]
        assert [w.returncode for w in workers] == [0] * 4, [err for _, err in outcomes]
        assert [out for out, _ in outcomes] == [b"50\n"] * 4
        keys = await store.keys()
        assert len(keys) == 200
        for key in keys:
            assert key.account is not None
            assert await store.load(key) == Credentials(
                app=Application(name="A", client_id=key.account)
            )


async def test_a_borrowed_client_that_decodes_responses_works_too(
    redis_url: str, prefix: str
) -> None:
    decoding = aioredis.Redis.from_url(redis_url, decode_responses=True)
    try:
        async with asyncio.timeout(10), RedisTokenStore(decoding, prefix=prefix) as store:
            async with store.lock(USER_KEY):
                await store.save(USER_KEY, make_credentials("-é"))
            assert await store.load(USER_KEY) == make_credentials("-é")
            assert await store.keys() == [USER_KEY]
    finally:
        await decoding.aclose()


def _value(**changes: object) -> bytes:
    document = converter.unstructure(make_credentials(), Credentials)
    for path, new in changes.items():
        target = document
        *parents, leaf = path.split("__")
        for parent in parents:
            target = target[parent]
        target[leaf] = new
    return json.dumps(document).encode()


CORRUPT_VALUES = {
    "not json": (b'{"token": {"access_token": "' + ACCESS_TOKEN.encode(), "not valid JSON"),
    "not utf-8": (b"\xff\xfe" + ACCESS_TOKEN.encode(), "not UTF-8"),
    "an array": (json.dumps([ACCESS_TOKEN]).encode(), "not a JSON object"),
    "foreign object": (json.dumps({"session": ACCESS_TOKEN}).encode(), "not an aiomasto record"),
    "version a string": (_value(version="1"), "not an aiomasto record"),
    "newer record": (_value(version=2), "newer aiomasto"),
    "secret in a number field": (_value(token__expires_in=ACCESS_TOKEN), "token.expires_in"),
    "token a string": (_value(token=ACCESS_TOKEN), "(token)"),
}


@pytest.mark.parametrize("case", list(CORRUPT_VALUES))
async def test_a_value_that_is_not_a_record_raises_without_quoting_it(
    store: RedisTokenStore, client: aioredis.Redis, prefix: str, case: str
) -> None:
    value, problem = CORRUPT_VALUES[case]
    name = f"{prefix}:credentials:https%3A%2F%2Fmastodon.example/Relationship%20Mapper/alice"
    async with asyncio.timeout(10):
        await client.set(name, value)
        with pytest.raises(TokenStoreError) as caught:
            await store.load(USER_KEY)
        assert await client.get(name) == value
    message = str(caught.value)
    assert problem in message
    assert str(USER_KEY) in message
    assert "left untouched" in message
    assert_clean(caught.value)


async def test_a_key_of_another_type_raises(
    store: RedisTokenStore, client: aioredis.Redis, prefix: str
) -> None:
    name = f"{prefix}:credentials:https%3A%2F%2Fmastodon.example/Relationship%20Mapper"
    async with asyncio.timeout(10):
        await client.hset(name, "access_token", ACCESS_TOKEN)
        with pytest.raises(TokenStoreError, match="something other than a string") as caught:
            await store.load(APP_KEY)
        assert await client.hget(name, "access_token") == ACCESS_TOKEN.encode()
    assert_clean(caught.value)


# -- the lock --------------------------------------------------------------------------------


async def create_once(store: TokenStore, key: StoreKey, who: str) -> bool:
    """What a Session does: lock; load; if nothing, register (taking a while) and save."""
    async with store_lock(store, key):
        if await store.load(key) is not None:
            return False
        await asyncio.sleep(0.02)  # registering: others get every chance to look meanwhile
        await store.save(key, registered(who))
        return True


async def test_twenty_tasks_on_four_clients_create_the_record_once(
    redis_url: str, prefix: str
) -> None:
    stores = [RedisTokenStore(redis_url, prefix=prefix) for _ in range(4)]
    try:
        async with asyncio.timeout(20):
            created = await asyncio.gather(
                *(create_once(stores[i % 4], APP_KEY, f"task-{i}") for i in range(20))
            )
        assert created.count(True) == 1
        assert await stores[0].load(APP_KEY) == registered(f"task-{created.index(True)}")
    finally:
        for opened in stores:
            await opened.aclose()


async def test_the_lock_lives_in_redis_while_held_and_is_gone_after(
    store: RedisTokenStore, client: aioredis.Redis, prefix: str
) -> None:
    name = f"{prefix}:lock:https%3A%2F%2Fmastodon.example/Relationship%20Mapper/alice"
    async with asyncio.timeout(10):
        async with store.lock(USER_KEY):
            owner = await client.get(name)
            assert owner is not None
            assert 0 < await client.pttl(name) <= 10_000
            assert await client.get(name) == owner
        assert await client.exists(name) == 0
        with pytest.raises(LookupError):
            async with store.lock(USER_KEY):
                raise LookupError
        assert await client.exists(name) == 0


async def test_the_holders_own_calls_go_through(redis_url: str, store: RedisTokenStore) -> None:
    async with asyncio.timeout(10), store.lock(APP_KEY):
        await store.save(APP_KEY, registered("one"))
        assert await store.load(APP_KEY) == registered("one")
        async with store.lock(APP_KEY):  # reentrant
            await store.save(USER_KEY, registered("user"))
        # Tasks started inside the section work for the holder.
        await asyncio.gather(*(create_once(store, APP_KEY, f"child-{i}") for i in range(5)))
        # So does another store object on the same server and prefix.
        async with RedisTokenStore(redis_url, prefix=store.prefix) as other, other.lock(APP_KEY):
            await other.save(APP_KEY, registered("two"))
        async with store.lock(USER_KEY):  # another key: its own lock
            await store.delete(USER_KEY)
    assert await store.load(APP_KEY) == registered("two")
    assert await store.load(USER_KEY) is None


async def test_a_cancelled_waiter_leaves_at_once_and_the_lock_stays_usable(
    redis_url: str, store: RedisTokenStore, client: aioredis.Redis, prefix: str
) -> None:
    inside = asyncio.Event()
    leave = asyncio.Event()

    async def holder() -> None:
        async with store.lock(APP_KEY):
            inside.set()
            await leave.wait()

    async with RedisTokenStore(redis_url, prefix=prefix) as other, asyncio.timeout(10):
        holding = asyncio.create_task(holder())
        await inside.wait()
        for contender in (store, other):  # waiting in this process, and at the server
            waiting = asyncio.create_task(create_once(contender, APP_KEY, "waiter"))
            await asyncio.sleep(0.05)
            waiting.cancel()
            with pytest.raises(asyncio.CancelledError):
                await waiting
        for contender in (store, other):  # deadlines that give up, one after another
            for _ in range(10):
                with pytest.raises(TimeoutError):
                    async with asyncio.timeout(0.01):
                        await create_once(contender, APP_KEY, "late")
        assert not holding.done()
        leave.set()
        try:
            async with asyncio.timeout(3):
                await asyncio.shield(holding)
        except TimeoutError:
            import io

            for t in asyncio.all_tasks():
                buf = io.StringIO()
                t.print_stack(file=buf)
                print("TASK", t.get_name(), buf.getvalue())
            raise
        assert await create_once(other, APP_KEY, "after")
        assert not await create_once(store, APP_KEY, "again")
        await other.aclose()  # lets any give-back still on its way finish
        await store.aclose()
        assert await client.exists(prefix + LOCK_NAME) == 0


async def test_every_deadline_of_a_waiter_takes_effect(redis_url: str, prefix: str) -> None:
    # Deadlines that fall at every moment of a wait at the server: polls in flight, sleeps.
    inside = asyncio.Event()
    leave = asyncio.Event()

    async def holder(store: RedisTokenStore) -> None:
        async with store.lock(APP_KEY):
            inside.set()
            await leave.wait()

    async def give_up(store: RedisTokenStore, deadline: float) -> None:
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(deadline), store.lock(APP_KEY):
                pytest.fail("entered a section another task holds")

    async with (
        RedisTokenStore(redis_url, prefix=prefix) as store,
        RedisTokenStore(redis_url, prefix=prefix) as other,
        asyncio.timeout(30),
    ):
        holding = asyncio.create_task(holder(store))
        await inside.wait()
        for step in range(300):
            waiter = asyncio.create_task(give_up(other, 0.0005 * (step % 20)))
            done, _ = await asyncio.wait([waiter], timeout=2)
            assert done, f"a waiter with a {0.0005 * (step % 20)} s deadline never left"
            await waiter
        leave.set()
        await holding


class Lateness:
    """How late a relay's answers arrive; changed while it runs."""

    seconds = 0.0


@contextlib.asynccontextmanager
async def relay_to(port: int, lateness: Lateness) -> AsyncIterator[int]:
    """A relay to the server on ``port`` whose answers arrive ``lateness.seconds`` late."""

    async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, late: bool) -> None:
        with contextlib.suppress(OSError):
            while data := await reader.read(65536):
                if late and lateness.seconds:
                    await asyncio.sleep(lateness.seconds)
                writer.write(data)
                await writer.drain()
        writer.close()

    async def relay(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        server_reader, server_writer = await asyncio.open_connection("127.0.0.1", port)
        await asyncio.gather(
            pipe(reader, server_writer, late=False), pipe(server_reader, writer, late=True)
        )

    listening = await asyncio.start_server(relay, "127.0.0.1", 0)
    try:
        yield listening.sockets[0].getsockname()[1]
    finally:
        listening.close()


async def test_a_waiter_cancelled_after_the_server_gave_it_the_lock_frees_it(
    redis_url: str, client: aioredis.Redis, prefix: str
) -> None:
    server = URL(redis_url)
    assert server.port is not None
    lateness = Lateness()
    async with relay_to(server.port, lateness) as port, asyncio.timeout(10):
        store = RedisTokenStore(str(server.with_port(port)), prefix=prefix)
        await store.keys()  # connected
        lateness.seconds = 0.5
        started = asyncio.get_running_loop().time()
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.02), store.lock(APP_KEY):
                pytest.fail("entered a section before the server's answer arrived")
        assert asyncio.get_running_loop().time() - started < 0.4  # left without the answer
        while not await client.exists(prefix + LOCK_NAME):  # noqa: ASYNC110 - the server's view
            await asyncio.sleep(0.005)  # the request reached the server: the lock is taken
        lateness.seconds = 0
        await store.aclose()  # lets the give-back on its way finish
    assert await client.exists(prefix + LOCK_NAME) == 0  # not left to its 10 s expiry


async def test_a_cancelled_holder_releases_the_lock(
    redis_url: str, store: RedisTokenStore, prefix: str
) -> None:
    inside = asyncio.Event()

    async def holder() -> None:
        async with store.lock(APP_KEY):
            await store.save(APP_KEY, registered("holder"))
            inside.set()
            await asyncio.Event().wait()

    async with RedisTokenStore(redis_url, prefix=prefix) as other, asyncio.timeout(5):
        holding = asyncio.create_task(holder())
        await inside.wait()
        holding.cancel()
        with pytest.raises(asyncio.CancelledError):
            await holding
        async with other.lock(APP_KEY):  # long before the 10 s expiry
            assert await other.load(APP_KEY) == registered("holder")


async def test_a_lock_held_longer_than_its_expiry_is_extended(redis_url: str, prefix: str) -> None:
    inside = asyncio.Event()
    leave = asyncio.Event()

    async def holder(store: RedisTokenStore) -> None:
        async with store.lock(APP_KEY):
            inside.set()
            await leave.wait()

    async with (
        RedisTokenStore(redis_url, prefix=prefix, lock_expiry=0.5) as store,
        RedisTokenStore(redis_url, prefix=prefix, lock_expiry=0.5) as other,
        asyncio.timeout(10),
    ):
        holding = asyncio.create_task(holder(store))
        await inside.wait()
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(1.5), other.lock(APP_KEY):
                pytest.fail("entered a section held for three times its expiry")
        leave.set()
        await holding
        async with asyncio.timeout(1.0), other.lock(APP_KEY):
            pass


async def spawn_async(script: str, env: dict[str, str]) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        script,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(PROJECT_ROOT), **env},
    )


_CONTENDER = """
import asyncio, os, sys
from aiomasto.entities import Application
from aiomasto.stores import Credentials, StoreKey, store_lock
from aiomasto.stores.redis import RedisTokenStore

async def main() -> None:
    key = StoreKey(instance="https://mastodon.example", app="Relationship Mapper")
    async with RedisTokenStore(os.environ["REDIS_URL"], prefix=os.environ["PREFIX"]) as store:
        await store.keys()  # connected before the start
        print("ready", flush=True)
        await asyncio.to_thread(sys.stdin.readline)
        async with store_lock(store, key):
            if await store.load(key) is not None:
                print("found", flush=True)
                return
            await asyncio.sleep(0.3)  # registering: long enough for the others to look too
            app = Application(name="Relationship Mapper", client_id=os.environ["WHO"])
            await store.save(key, Credentials(app=app))
            print("saved", flush=True)

asyncio.run(main())
"""


async def test_three_processes_create_the_record_once(
    redis_url: str, store: RedisTokenStore, prefix: str
) -> None:
    workers = [
        await spawn_async(_CONTENDER, {"REDIS_URL": redis_url, "PREFIX": prefix, "WHO": who})
        for who in "abc"
    ]
    async with asyncio.timeout(30):
        for worker in workers:
            assert worker.stdout is not None
            assert await worker.stdout.readline() == b"ready\n"
        for worker in workers:  # all at once
            assert worker.stdin is not None
            worker.stdin.write(b"go\n")
        outcomes = [await worker.communicate() for worker in workers]

    assert [w.returncode for w in workers] == [0, 0, 0], [err for _, err in outcomes]
    said = [out for out, _ in outcomes]
    assert sorted(said) == [b"found\n", b"found\n", b"saved\n"]
    assert await store.load(APP_KEY) == registered("abc"[said.index(b"saved\n")])


_HOLDER = """
import asyncio, os, sys
from aiomasto.stores import StoreKey
from aiomasto.stores.redis import RedisTokenStore

async def main() -> None:
    key = StoreKey(instance="https://mastodon.example", app="Relationship Mapper")
    url, prefix, expiry = os.environ["REDIS_URL"], os.environ["PREFIX"], os.environ["EXPIRY"]
    store = RedisTokenStore(url, prefix=prefix, lock_expiry=float(expiry))
    async with store:
        async with store.lock(key):
            print("inside", flush=True)
            await asyncio.to_thread(sys.stdin.readline)
        print("left", flush=True)

asyncio.run(main())
"""


async def test_the_lock_of_a_killed_holder_expires(
    redis_url: str, store: RedisTokenStore, client: aioredis.Redis, prefix: str
) -> None:
    env = {"REDIS_URL": redis_url, "PREFIX": prefix, "EXPIRY": "2"}
    holder = await spawn_async(_HOLDER, env)
    assert holder.stdout is not None
    async with asyncio.timeout(20):
        assert await holder.stdout.readline() == b"inside\n"
        holder.kill()
        assert await holder.wait() == -signal.SIGKILL
        assert await client.exists(prefix + LOCK_NAME) == 1  # nobody released it
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.2), store.lock(APP_KEY):
                pytest.fail("entered a section a process still held")
        async with asyncio.timeout(4.0):  # the holder's 2 s expiry, and a margin
            assert await create_once(store, APP_KEY, "after")


async def test_only_the_owner_releases_the_lock(
    redis_url: str, store: RedisTokenStore, client: aioredis.Redis, prefix: str
) -> None:
    # A holder stalls (stopped) past its expiry; this test takes the lock; the holder wakes up
    # and leaves its section, releasing what it no longer owns: the lock must stay this test's.
    env = {"REDIS_URL": redis_url, "PREFIX": prefix, "EXPIRY": "1"}
    holder = await spawn_async(_HOLDER, env)
    assert holder.stdout is not None
    assert holder.stdin is not None
    probe = asyncio.Event()

    async def other_gets_in() -> bool:
        await probe.wait()
        try:
            async with asyncio.timeout(0.3), store.lock(APP_KEY):
                return True
        except TimeoutError:
            return False

    contender = asyncio.create_task(other_gets_in())  # started outside the section
    try:
        async with asyncio.timeout(20):
            assert await holder.stdout.readline() == b"inside\n"
            holder.send_signal(signal.SIGSTOP)
            async with store.lock(APP_KEY):  # once the stopped holder's lock expired
                mine = await client.get(prefix + LOCK_NAME)
                holder.send_signal(signal.SIGCONT)
                holder.stdin.write(b"leave\n")
                assert await holder.stdout.readline() == b"left\n"
                assert await holder.wait() == 0
                assert holder.stderr is not None
                warned = await holder.stderr.read()  # the stalled holder is told
                assert b"another process may have entered the section" in warned
                assert password_of(redis_url).encode() not in warned
                assert await client.get(prefix + LOCK_NAME) == mine
                probe.set()
                assert not await contender, "another owner's release freed the lock"
            assert await client.exists(prefix + LOCK_NAME) == 0
    finally:
        if holder.returncode is None:
            holder.send_signal(signal.SIGCONT)
            holder.kill()
            await holder.wait()


# -- sessions in many processes ----------------------------------------------------------------

_SESSION = """
import asyncio, os
from aiomasto import App, Session
from aiomasto.stores.redis import RedisTokenStore

async def main() -> None:
    store = RedisTokenStore(os.environ["REDIS_URL"], prefix=os.environ["PREFIX"])
    async with store:
        await store.keys()  # connected before the start
        print("ready", flush=True)
        await asyncio.to_thread(input)
        async with Session(os.environ["SERVER"], app=App(name="Flight test"), store=store) as m:
            print((await m.verify_app()).name, flush=True)

asyncio.run(main())
"""


async def test_sessions_in_four_processes_sharing_a_redis_store_register_once(
    server: FakeMastodon, redis_url: str, prefix: str
) -> None:
    assert server.url is not None
    server.inject("/api/v1/apps", Fault.slow(0.3))  # the others arrive while it registers
    env = {"REDIS_URL": redis_url, "PREFIX": prefix, "SERVER": server.url}
    workers = [await spawn_async(_SESSION, env) for _ in range(4)]
    async with asyncio.timeout(40):
        for worker in workers:
            assert worker.stdout is not None
            assert await worker.stdout.readline() == b"ready\n"
        for worker in workers:
            assert worker.stdin is not None
            worker.stdin.write(b"go\n")
        outcomes = [await worker.communicate() for worker in workers]
    assert [w.returncode for w in workers] == [0] * 4, [err for _, err in outcomes]
    assert [out for out, _ in outcomes] == [b"Flight test\n"] * 4
    assert server.count("POST", "/api/v1/apps") == 1
    assert server.count("POST", "/oauth/token") == 1
    async with RedisTokenStore(redis_url, prefix=prefix) as store:
        assert await store.keys() == [StoreKey(instance=server.url, app="Flight test")]


# -- clients: owned or borrowed --------------------------------------------------------------


async def connections_named(client: aioredis.Redis, name: str) -> int:
    listed = await client.client_list()
    return sum(1 for entry in listed if entry.get("name") == name)


async def test_a_borrowed_client_stays_open_and_an_owned_one_is_closed(
    redis_url: str, client: aioredis.Redis, prefix: str
) -> None:
    async with asyncio.timeout(10):
        borrowed = aioredis.Redis.from_url(redis_url, client_name="borrowed-by-store")
        try:
            async with RedisTokenStore(borrowed, prefix=prefix) as store:
                await store.save(APP_KEY, registered("borrowed"))
            assert await connections_named(client, "borrowed-by-store") == 1
            assert await borrowed.get(f"{prefix}:unset") is None  # still usable
        finally:
            await borrowed.aclose()

        owned = RedisTokenStore(f"{redis_url}?client_name=owned-by-store", prefix=prefix)
        assert await owned.load(APP_KEY) == registered("borrowed")
        assert await connections_named(client, "owned-by-store") == 1
        await owned.aclose()
        while await connections_named(client, "owned-by-store"):  # noqa: ASYNC110 - the server's view
            await asyncio.sleep(0.01)


# -- secrets ---------------------------------------------------------------------------------


async def test_reprs_mask_the_password(redis_url: str, client: aioredis.Redis, prefix: str) -> None:
    password = password_of(redis_url)
    port = URL(redis_url).port
    in_query = f"redis://127.0.0.1:{port}/0?password={password}&socket_timeout=5"
    owned = RedisTokenStore(redis_url, prefix=prefix)
    queried = RedisTokenStore(in_query, prefix=prefix)
    borrowed = RedisTokenStore(client, prefix=prefix)
    try:
        assert repr(owned) == (
            f"RedisTokenStore('redis://:***@127.0.0.1:{port}/0', prefix={prefix!r})"
        )
        assert repr(queried) == f"RedisTokenStore('redis://127.0.0.1:{port}/0', prefix={prefix!r})"
        assert repr(borrowed) == (
            f"RedisTokenStore(<borrowed client redis://127.0.0.1:{port}/0>, prefix={prefix!r})"
        )
        await queried.save(APP_KEY, make_credentials())  # the query's password works
        for shown in (owned, queried, borrowed):
            assert password not in repr(shown)
            assert password not in str(shown)
    finally:
        await owned.aclose()
        await queried.aclose()


@pytest.mark.parametrize(
    ("argument", "problem"),
    [
        ("http://:{password}@127.0.0.1:6379/0", "not a usable Redis URL: http://:***@127.0.0.1"),
        ("redis://:{password}@127.0.0.1:6379/0?db=x", "not a usable Redis URL: redis://:***@"),
    ],
)
def test_an_unusable_url_is_refused_without_its_password(argument: str, problem: str) -> None:
    with pytest.raises(aiomasto.ConfigurationError) as caught:
        RedisTokenStore(argument.format(password=CLIENT_SECRET))
    assert problem in str(caught.value)
    assert_clean(caught.value)


def test_the_store_refuses_what_is_neither_a_url_nor_a_client() -> None:
    with pytest.raises(aiomasto.ConfigurationError, match="not dict"):
        RedisTokenStore({"host": "127.0.0.1"})  # type: ignore[arg-type]
    with pytest.raises(aiomasto.ConfigurationError, match="prefix"):
        RedisTokenStore("redis://127.0.0.1:6379/0", prefix="")


async def silent_server() -> tuple[asyncio.Server, int]:
    """A TCP server that accepts connections and never says a word."""

    async def ignore(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()
        writer.close()

    listening = await asyncio.start_server(ignore, "127.0.0.1", 0)
    port: int = listening.sockets[0].getsockname()[1]
    return listening, port


@pytest.mark.parametrize("problem", ["wrong password", "no password", "refused", "silent"])
async def test_redis_errors_name_the_server_but_never_its_password(
    redis_url: str, prefix: str, problem: str
) -> None:
    password = password_of(redis_url)
    server = URL(redis_url)
    listening: asyncio.Server | None = None
    if problem == "wrong password":
        url, expected = str(server.with_password("not-" + password)), "refused the credentials"
        shown = f"redis://:***@127.0.0.1:{server.port}/0"
    elif problem == "no password":
        url, expected = str(server.with_password(None)), "refused the credentials"
        shown = f"redis://127.0.0.1:{server.port}/0"
    elif problem == "refused":
        listening, port = await silent_server()
        listening.close()
        await listening.wait_closed()  # nothing listens there any more
        listening = None
        url, expected = str(server.with_port(port)), "cannot be reached"
        shown = f"redis://:***@127.0.0.1:{port}/0"
    else:
        listening, port = await silent_server()
        url = str(server.with_port(port).with_query(socket_timeout="0.2"))
        expected, shown = "did not answer in time", f"redis://:***@127.0.0.1:{port}/0"
    try:
        async with RedisTokenStore(url, prefix=prefix) as store, asyncio.timeout(30):
            operations: list[Callable[[], Awaitable[object]]] = [
                lambda: store.load(APP_KEY),
                lambda: store.save(APP_KEY, make_credentials()),
                lambda: store.delete(APP_KEY),
                store.keys,
                lambda: create_once(store, APP_KEY, "never"),
            ]
            for operation in operations:
                with pytest.raises(TokenStoreError) as caught:
                    await operation()
                assert shown in str(caught.value)
                assert expected in str(caught.value)
                assert_clean(caught.value, password)
    finally:
        if listening is not None:
            listening.close()
            await listening.wait_closed()


def test_aiomasto_imports_without_redis_and_says_how_to_get_it() -> None:
    script = """
import sys
sys.modules["redis"] = None  # as if the extra were not installed
import aiomasto, aiomasto.stores
from aiomasto import *
assert "aiomasto.stores.redis" not in sys.modules
try:
    aiomasto.RedisTokenStore
except ImportError as exc:
    print(exc)
"""
    done = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        env={**os.environ, "PYTHONPATH": str(PROJECT_ROOT)},
        timeout=30,
        check=True,
    )
    assert b"pip install 'aiomasto[redis]'" in done.stdout
