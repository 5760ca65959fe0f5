"""``store.lock(key)`` and ``store_lock``: a check-then-create that runs once among all users.

Real processes and real files; every wait is bounded so a deadlock fails fast.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from aiomasto.entities import Application
from aiomasto.stores import (
    Credentials,
    JsonFileTokenStore,
    MemoryTokenStore,
    StoreKey,
    TokenStore,
    store_lock,
)

PROJECT_ROOT = Path(__file__).resolve().parents[1]
KEY = StoreKey(instance="https://mastodon.example", app="Relationship Mapper")
OTHER_KEY = StoreKey(instance="https://mastodon.example", app="Relationship Mapper", account="al")


def registered(who: str) -> Credentials:
    return Credentials(app=Application(name="Relationship Mapper", client_id=who))


async def create_once(store: TokenStore, who: str, turns: int = 5) -> bool:
    """What a Session does: lock; load; if nothing, register (taking a while) and save."""
    async with store_lock(store, KEY):
        if await store.load(KEY) is not None:
            return False
        for _ in range(turns):  # others get every chance to run meanwhile
            await asyncio.sleep(0)
        await store.save(KEY, registered(who))
        return True


@pytest.fixture(params=["memory", "jsonfile"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> TokenStore:
    if request.param == "memory":
        return MemoryTokenStore()
    return JsonFileTokenStore(tmp_path / "credentials.json")


@contextlib.contextmanager
def directory_lock_probe(directory: Path) -> Iterator[bool]:
    """Whether another open file could take the directory lock right now (and then frees it)."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
        else:
            yield True
    finally:
        os.close(fd)


def names(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir())


def directory_is_free(directory: Path) -> bool:
    with directory_lock_probe(directory) as free:
        return free


_HOLDER = """
import asyncio, sys
from aiomasto.stores import JsonFileTokenStore, StoreKey

async def main(path: str) -> None:
    async with JsonFileTokenStore(path).lock(StoreKey(instance="https://m.example", app="A")):
        print("inside", flush=True)
        sys.stdin.readline()

asyncio.run(main(sys.argv[1]))
"""


async def test_a_process_killed_inside_the_section_leaves_the_lock_free(tmp_path: Path) -> None:
    path = tmp_path / "credentials.json"
    env = {**os.environ, "PYTHONPATH": str(PROJECT_ROOT)}
    holder = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        _HOLDER,
        str(path),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        env=env,
    )
    assert holder.stdout is not None
    async with asyncio.timeout(20):
        assert await holder.stdout.readline() == b"inside\n"
        assert not directory_is_free(tmp_path)
        holder.kill()
        assert await holder.wait() == -9
        assert await create_once(JsonFileTokenStore(path), "after")


async def test_tasks_on_several_store_objects_for_one_file_create_the_record_once(
    tmp_path: Path,
) -> None:
    path = tmp_path / "credentials.json"
    await JsonFileTokenStore(path).save(OTHER_KEY, registered("other"))
    link = tmp_path / "link.json"
    link.symlink_to(path)
    stores = [JsonFileTokenStore(path), JsonFileTokenStore(path), JsonFileTokenStore(link)]

    async with asyncio.timeout(20):
        created = await asyncio.gather(
            *(create_once(stores[i % 3], f"task-{i}") for i in range(21))
        )

    assert created.count(True) == 1
    assert await stores[0].load(KEY) == registered(f"task-{created.index(True)}")


async def test_the_holder_can_use_another_store_object_for_the_same_file(tmp_path: Path) -> None:
    path = tmp_path / "credentials.json"
    first, second = JsonFileTokenStore(path), JsonFileTokenStore(path)

    async with asyncio.timeout(10), first.lock(KEY):
        await second.save(KEY, registered("second"))
        async with second.lock(OTHER_KEY):
            await first.save(OTHER_KEY, registered("first"))

    assert await first.load(KEY) == registered("second")
    assert await second.load(OTHER_KEY) == registered("first")


async def test_the_section_holds_the_files_lock_for_every_process(tmp_path: Path) -> None:
    path = tmp_path / "credentials.json"
    store = JsonFileTokenStore(path)
    await store.save(OTHER_KEY, registered("other"))

    async with asyncio.timeout(10), store.lock(KEY):
        assert not directory_is_free(tmp_path)
        await store.save(KEY, registered("one"))
        assert not directory_is_free(tmp_path)
    assert directory_is_free(tmp_path)

    with pytest.raises(LookupError):
        async with asyncio.timeout(10), store.lock(KEY):
            raise LookupError
    assert directory_is_free(tmp_path)


async def test_a_cancelled_waiter_leaves_at_once_and_the_lock_stays_usable(
    store: TokenStore, tmp_path: Path
) -> None:
    inside = asyncio.Event()
    leave = asyncio.Event()

    async def holder() -> None:
        async with store_lock(store, KEY):
            inside.set()
            await leave.wait()

    async def waiter() -> None:
        async with store_lock(store, KEY):
            pytest.fail("a cancelled waiter entered the section")

    async with asyncio.timeout(10):
        holding = asyncio.create_task(holder())
        await inside.wait()
        waiting = asyncio.create_task(waiter())
        for _ in range(5):
            await asyncio.sleep(0)
        waiting.cancel()
        # The cancellation takes effect while the holder still holds the lock.
        with pytest.raises(asyncio.CancelledError):
            await waiting
        assert not holding.done()
        leave.set()
        await holding
        assert await create_once(store, "after")
        assert not await create_once(store, "again")

    if isinstance(store, JsonFileTokenStore):
        assert directory_is_free(tmp_path)


async def test_a_waiter_cancelled_under_a_deadline_does_not_leave_the_lock_to_a_thread(
    tmp_path: Path,
) -> None:
    path = tmp_path / "credentials.json"
    store = JsonFileTokenStore(path)
    inside = asyncio.Event()
    leave = asyncio.Event()

    async def holder() -> None:
        async with store.lock(KEY):
            inside.set()
            await leave.wait()

    async with asyncio.timeout(10):
        holding = asyncio.create_task(holder())
        await inside.wait()
        # Many callers give up on the lock one after another (a web backend's deadlines).
        for _ in range(10):
            with pytest.raises(TimeoutError):
                async with asyncio.timeout(0.01), JsonFileTokenStore(path).lock(KEY):
                    pytest.fail("entered a section that another task holds")
        for _ in range(10):
            with pytest.raises(TimeoutError):
                async with asyncio.timeout(0.01), store.lock(KEY):
                    pytest.fail("entered a section that another task holds")
        waiting = [t for t in threading.enumerate() if t.name == "aiomasto-store-lock"]
        # One thread per store object that gave up; this store's ten share one.
        assert len(waiting) <= 11
        leave.set()
        await holding
        for thread in waiting:
            await asyncio.to_thread(thread.join, 5)
            assert not thread.is_alive()
        # Every abandoned wait released the lock as soon as it got it.
        assert directory_is_free(tmp_path)
        assert await create_once(store, "after")
        assert await store.load(KEY) == registered("after")


async def test_a_cancelled_holder_releases_the_lock(store: TokenStore, tmp_path: Path) -> None:
    inside = asyncio.Event()

    async def holder() -> None:
        async with store_lock(store, KEY):
            await store.save(KEY, registered("holder"))
            inside.set()
            await asyncio.Event().wait()

    async with asyncio.timeout(10):
        holding = asyncio.create_task(holder())
        await inside.wait()
        holding.cancel()
        with pytest.raises(asyncio.CancelledError):
            await holding
        async with store_lock(store, KEY):
            assert await store.load(KEY) == registered("holder")

    if isinstance(store, JsonFileTokenStore):
        assert directory_is_free(tmp_path)


class DictStore:
    """A user's store without a lock (the TokenStore docstring's example)."""

    def __init__(self) -> None:
        self.data: dict[StoreKey, Credentials] = {}
        self.lock = asyncio.Lock()  # an unrelated attribute of that name is no store lock

    async def load(self, key: StoreKey) -> Credentials | None:
        return self.data.get(key)

    async def save(self, key: StoreKey, credentials: Credentials) -> None:
        self.data[key] = credentials

    async def delete(self, key: StoreKey) -> None:
        self.data.pop(key, None)


async def test_store_lock_of_a_store_without_a_lock_excludes_nothing() -> None:
    store = DictStore()

    async with asyncio.timeout(10), store_lock(store, KEY), store_lock(store, KEY):
        await store.save(KEY, registered("one"))

    assert await store.load(KEY) == registered("one")
    assert not store.lock.locked()


def test_a_store_outlives_an_event_loop_that_gave_up_waiting(tmp_path: Path) -> None:
    path = tmp_path / "credentials.json"
    env = {**os.environ, "PYTHONPATH": str(PROJECT_ROOT)}
    store = JsonFileTokenStore(path)
    with subprocess.Popen(
        [sys.executable, "-c", _HOLDER, str(path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        env=env,
    ) as holder:
        assert holder.stdout is not None
        assert holder.stdin is not None
        assert holder.stdout.readline() == b"inside\n"

        async def give_up() -> None:
            with pytest.raises(TimeoutError):
                async with asyncio.timeout(0.05), store.lock(KEY):
                    pytest.fail("entered a section another process holds")

        asyncio.run(give_up())  # its wait goes on in a thread after the loop is gone

        def release() -> None:
            assert holder.stdin is not None
            holder.stdin.write(b"go\n")
            holder.stdin.flush()
            assert holder.wait(timeout=20) == 0

        async def use_again() -> bool:
            async with asyncio.timeout(20):
                waiting = asyncio.create_task(create_once(store, "second loop"))
                for _ in range(5):
                    await asyncio.sleep(0)
                await asyncio.to_thread(release)
                return await waiting

        assert asyncio.run(use_again())
    assert directory_is_free(tmp_path)


async def test_a_cancelled_save_inside_the_section_finishes_before_the_section_ends(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "credentials.json"
    store = JsonFileTokenStore(path)
    writing = threading.Event()
    go_on = threading.Event()
    real_fsync = os.fsync

    def slow_fsync(fd: int) -> None:  # a slow disk, in the middle of the write
        writing.set()
        assert go_on.wait(10)
        real_fsync(fd)

    async with asyncio.timeout(10), store.lock(KEY):
        monkeypatch.setattr("aiomasto.stores.jsonfile.os.fsync", slow_fsync)
        saving = asyncio.create_task(store.save(KEY, registered("cancelled")))
        await asyncio.to_thread(writing.wait, 10)
        saving.cancel()
        for _ in range(20):
            await asyncio.sleep(0)
        assert not saving.done()  # the write is still going on: the section must wait
        go_on.set()
        with pytest.raises(asyncio.CancelledError):
            await saving
        monkeypatch.undo()
        assert await store.load(KEY) == registered("cancelled")
    assert directory_is_free(tmp_path)
    assert names(tmp_path) == ["credentials.json"]
