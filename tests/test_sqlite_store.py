"""What only SqliteTokenStore promises: a real SQLite database, its format, its files, its crashes.

The protocol itself (records, keys, lock, processes) is tested for every store in
test_store_contract.py. Here the database is also looked at directly, through the test's own
``sqlite3`` connections, and processes are killed for real.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import sqlite3
import stat
import subprocess
import sys
from collections.abc import Iterator
from contextlib import closing, contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from records import (
    ACCESS_TOKEN,
    CLIENT_SECRET,
    REFRESH_TOKEN,
    assert_no_secret,
    assert_no_secret_in_error,
)

from aiomasto import SqliteTokenStore, TokenStoreError
from aiomasto.entities import Application, Token
from aiomasto.stores import Credentials, JsonFileTokenStore, StoreKey, sqlite

PROJECT_ROOT = Path(__file__).resolve().parents[1]
INSTANCE = "https://mastodon.example"
APP_KEY = StoreKey(instance=INSTANCE, app="Relationship Mapper")
USER_KEY = StoreKey(instance=INSTANCE, app="Relationship Mapper", account="109302")
OTHER_KEY = StoreKey(instance=INSTANCE, app="Relationship Mapper", account="al")


def tagged(tag: str) -> Credentials:
    return Credentials(
        app=Application(
            name="Relationship Mapper",
            client_id=f"client-id-{tag}",
            client_secret=f"{CLIENT_SECRET}-{tag}",
        ),
        token=Token(
            access_token=f"{ACCESS_TOKEN}-{tag}",
            created_at=datetime(2024, 5, 17, 9, 30, 12, tzinfo=UTC),
            refresh_token=f"{REFRESH_TOKEN}-{tag}",
        ),
    )


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "tokens.sqlite3"


@contextmanager
def raw(path: Path, *, uri_mode: str = "rw") -> Iterator[sqlite3.Connection]:
    """The test's own connection, as another program (or a person with sqlite3) would open it."""
    with closing(
        sqlite3.connect(f"file:{path}?mode={uri_mode}", uri=True, isolation_level=None)
    ) as connection:
        yield connection


def pragma(path: Path, name: str) -> object:
    with raw(path, uri_mode="ro") as connection:
        row = connection.execute(f"PRAGMA {name}").fetchone()
    return row[0]


# Small synchronous helpers: the test's own file access is not what is under test.


def read(path: Path) -> bytes:
    return path.read_bytes()


def write(path: Path, data: bytes) -> None:
    path.write_bytes(data)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def names(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir())


async def every_call_fails(store: SqliteTokenStore) -> list[TokenStoreError]:
    """load, keys, save and delete each raise TokenStoreError; returns the errors."""
    errors: list[TokenStoreError] = []
    async with asyncio.timeout(10):
        for call in (
            store.load(USER_KEY),
            store.keys(),
            store.save(USER_KEY, tagged("new")),
            store.delete(USER_KEY),
        ):
            with pytest.raises(TokenStoreError) as caught:
                await call
            errors.append(caught.value)
    return errors


# The database


async def test_the_database_is_in_wal_mode_and_marked_as_aiomastos(path: Path) -> None:
    store = SqliteTokenStore(path)
    await store.save(APP_KEY, tagged("app"))
    await store.save(USER_KEY, tagged("user"))

    assert pragma(path, "journal_mode") == "wal"
    assert pragma(path, "application_id") == sqlite.APPLICATION_ID == 0x614D744F
    assert pragma(path, "user_version") == sqlite.SCHEMA_VERSION == 1
    with raw(path, uri_mode="ro") as connection:
        rows = connection.execute(
            "SELECT instance, app, account, credentials FROM aiomasto_credentials "
            "ORDER BY account IS NOT NULL"
        ).fetchall()
    assert [row[:3] for row in rows] == [
        (INSTANCE, "Relationship Mapper", None),  # the app's own record: account NULL
        (INSTANCE, "Relationship Mapper", "109302"),
    ]
    record = json.loads(rows[1][3])  # the converter's JSON, readable by any tool
    assert record["version"] == 1
    assert record["token"]["access_token"] == f"{ACCESS_TOKEN}-user"
    assert record["app"]["client_secret"] == f"{CLIENT_SECRET}-user"


async def test_changes_are_synced_before_they_return(
    path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings: list[object] = []
    real_connect = sqlite3.connect

    def watching(*args: Any, **kwargs: Any) -> sqlite3.Connection:
        connection: sqlite3.Connection = real_connect(*args, **kwargs)
        connection.set_trace_callback(settings.append)
        return connection

    monkeypatch.setattr(sqlite3, "connect", watching)
    await SqliteTokenStore(path).save(USER_KEY, tagged("user"))

    assert "PRAGMA synchronous = FULL" in settings
    assert settings.index("PRAGMA synchronous = FULL") < next(
        i for i, statement in enumerate(settings) if str(statement).startswith("INSERT")
    )


async def test_loading_nothing_creates_nothing(tmp_path: Path) -> None:
    path = tmp_path / "not" / "yet" / "tokens.sqlite3"
    store = SqliteTokenStore(path)

    async with asyncio.timeout(10):
        assert await store.load(USER_KEY) is None
        assert await store.keys() == []
        await store.delete(USER_KEY)

    assert names(tmp_path) == []


async def test_an_empty_file_becomes_the_database(path: Path) -> None:
    write(path, b"")  # a deployment script made the file ahead of time
    store = SqliteTokenStore(path)

    assert await store.load(USER_KEY) is None  # read: still nothing written
    assert read(path) == b""
    await store.save(USER_KEY, tagged("user"))

    assert await SqliteTokenStore(path).load(USER_KEY) == tagged("user")
    assert pragma(path, "application_id") == sqlite.APPLICATION_ID


# Files and modes


async def test_files_and_directories_are_private_whatever_the_umask(tmp_path: Path) -> None:
    path = tmp_path / "var" / "lib" / "relmap" / "tokens.sqlite3"
    old_umask = os.umask(0)  # SQLite alone would make the files 0644
    try:
        store = SqliteTokenStore(path)
        await store.save(APP_KEY, tagged("app"))
        # A reader keeps the WAL (and its index) in place after the store's connection closes.
        with raw(path, uri_mode="ro") as reader:
            reader.execute("BEGIN")
            reader.execute("SELECT count(*) FROM aiomasto_credentials").fetchone()
            await store.save(USER_KEY, tagged("user"))
            assert names(path.parent) == [
                "tokens.sqlite3",
                "tokens.sqlite3-shm",
                "tokens.sqlite3-wal",
            ]
            for name in names(path.parent):
                assert mode(path.parent / name) == 0o600, name
            reader.execute("COMMIT")
        async with store.lock(USER_KEY):
            [lock_file] = (path.parent / "tokens.sqlite3-locks").iterdir()
            assert mode(lock_file) == 0o600
    finally:
        os.umask(old_umask)
    for directory in (tmp_path / "var", tmp_path / "var" / "lib", path.parent):
        assert mode(directory) == 0o700, directory
    assert mode(path.parent / "tokens.sqlite3-locks") == 0o700


async def test_a_database_open_to_others_is_made_private(
    path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    await SqliteTokenStore(path).save(USER_KEY, tagged("user"))
    os.chmod(path, 0o644)

    assert await SqliteTokenStore(path).load(USER_KEY) == tagged("user")

    assert mode(path) == 0o600
    assert any(
        str(path) in r.getMessage() and "made it private" in r.getMessage() for r in caplog.records
    )


async def test_a_symlink_leads_to_the_database_and_one_leading_nowhere_is_refused(
    tmp_path: Path,
) -> None:
    secrets_dir = tmp_path / "secrets"
    real = secrets_dir / "tokens.sqlite3"
    await SqliteTokenStore(real).save(USER_KEY, tagged("user"))
    link = tmp_path / "tokens.sqlite3"
    link.symlink_to(real)

    await SqliteTokenStore(link).save(APP_KEY, tagged("app"))

    assert link.is_symlink()
    assert await SqliteTokenStore(real).load(APP_KEY) == tagged("app")
    dangling = tmp_path / "dangling.sqlite3"
    dangling.symlink_to(tmp_path / "unmounted" / "tokens.sqlite3")
    with pytest.raises(TokenStoreError, match="symlink that leads nowhere"):
        await SqliteTokenStore(dangling).save(USER_KEY, tagged("user"))
    assert not (tmp_path / "unmounted").exists()


# Files that are not (or not yet, or no longer) aiomasto's database


def damaged(data: bytes, case: str) -> bytes:
    if case == "a damaged schema":  # the end of page 1: the text of the CREATE statements
        return data[:3900] + b"\xff" * 196 + data[4096:]
    if case == "a damaged page header":
        return data[:100] + b"\x0d\x00\x00\x00\xff" + data[105:]
    if case == "truncated":
        return data[:4096]
    return data[:100]  # the header and nothing else


@pytest.mark.parametrize(
    "case",
    [
        "text",
        "a JsonFileTokenStore file",
        "a damaged schema",
        "a damaged page header",
        "truncated",
        "the header only",
    ],
)
async def test_a_corrupt_file_is_refused_and_left_untouched(path: Path, case: str) -> None:
    if case == "text":
        write(path, f"not a database; {ACCESS_TOKEN}\n".encode())
    elif case == "a JsonFileTokenStore file":
        await JsonFileTokenStore(path).save(USER_KEY, tagged("json"))
    else:
        store = SqliteTokenStore(path)
        for i in range(30):  # a few pages' worth
            await store.save(StoreKey(instance=INSTANCE, app=f"app {i}"), tagged(str(i)))
        write(path, damaged(read(path), case))
    before = read(path)

    errors = await every_call_fails(SqliteTokenStore(path))

    assert read(path) == before
    assert names(path.parent) == ["tokens.sqlite3"]
    for error in errors:
        message = str(error)
        assert str(path) in message
        assert "left untouched" in message
        assert "not an SQLite database" in message or "corrupt" in message
        assert error.path == str(path)
        assert message.isascii()  # nothing quoted from the damaged file
        assert_no_secret_in_error(error, sqlite.__file__)
    if case == "a JsonFileTokenStore file":
        assert "JsonFileTokenStore" in str(errors[0])


def another_programs_database(path: Path, case: str) -> None:
    with raw(path, uri_mode="rwc") as connection:
        if case == "with tables":
            connection.execute("CREATE TABLE users (name TEXT, password TEXT)")
            connection.execute("INSERT INTO users VALUES ('alice', 'hunter2')")
        elif case == "marked as another program's":
            connection.execute("PRAGMA application_id = 1234")
            connection.execute("VACUUM")
        else:  # tables that look like ours, but nobody marked the file as aiomasto's
            for statement in sqlite._SCHEMA[:2]:
                connection.execute(statement)


@pytest.mark.parametrize(
    "case", ["with tables", "marked as another program's", "our tables unmarked"]
)
async def test_another_programs_sqlite_database_is_refused_and_left_untouched(
    path: Path, case: str
) -> None:
    another_programs_database(path, case)
    before = read(path)
    journal_mode = pragma(path, "journal_mode")

    errors = await every_call_fails(SqliteTokenStore(path))

    assert read(path) == before
    assert pragma(path, "journal_mode") == journal_mode == "delete"  # not switched to WAL
    assert names(path.parent) == ["tokens.sqlite3"]
    for error in errors:
        assert "SQLite database of another program" in str(error)
        assert "left untouched" in str(error)


async def test_a_database_of_a_newer_aiomasto_is_refused_and_left_untouched(path: Path) -> None:
    await SqliteTokenStore(path).save(USER_KEY, tagged("user"))
    with raw(path) as connection:
        connection.execute(f"PRAGMA user_version = {sqlite.SCHEMA_VERSION + 1}")
    before = read(path)

    errors = await every_call_fails(SqliteTokenStore(path))

    assert read(path) == before
    for error in errors:
        assert "newer aiomasto" in str(error)
        assert f"schema version {sqlite.SCHEMA_VERSION + 1}" in str(error)
        assert "upgrade aiomasto" in str(error)


async def test_a_record_of_a_newer_format_is_refused(path: Path) -> None:
    store = SqliteTokenStore(path)
    await store.save(USER_KEY, tagged("user"))
    await store.save(APP_KEY, tagged("app"))
    with raw(path) as connection:
        connection.execute(
            "UPDATE aiomasto_credentials SET credentials = json_set(credentials, '$.version', 2)"
            " WHERE account IS NOT NULL"
        )

    with pytest.raises(TokenStoreError, match="newer aiomasto") as caught:
        await store.load(USER_KEY)

    assert "record format version 2" in str(caught.value)
    assert await store.load(APP_KEY) == tagged("app")  # the others stay readable
    assert sorted(await store.keys(), key=str) == sorted([APP_KEY, USER_KEY], key=str)


@pytest.mark.parametrize(
    "credentials",
    [
        f"{{not json {ACCESS_TOKEN}",
        json.dumps({"token": {"access_token": 7, "refresh_token": REFRESH_TOKEN}}),
        json.dumps([ACCESS_TOKEN]),
    ],
)
async def test_a_damaged_record_is_refused_without_quoting_it(path: Path, credentials: str) -> None:
    store = SqliteTokenStore(path)
    await store.save(USER_KEY, tagged("user"))
    await store.save(APP_KEY, tagged("app"))
    with raw(path) as connection:
        connection.execute(
            "UPDATE aiomasto_credentials SET credentials = ? WHERE account IS NOT NULL",
            (credentials,),
        )

    with pytest.raises(TokenStoreError, match="corrupt") as caught:
        await store.load(USER_KEY)

    assert str(USER_KEY) in str(caught.value)
    assert_no_secret_in_error(caught.value, sqlite.__file__)
    assert await store.load(APP_KEY) == tagged("app")


async def test_secrets_stay_out_of_reprs_and_logs(
    path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    store = SqliteTokenStore(path)

    await store.save(USER_KEY, tagged("user"))
    await store.load(USER_KEY)
    async with store.lock(USER_KEY):
        await store.delete(USER_KEY)

    assert repr(store) == f"SqliteTokenStore({str(path)!r})"
    assert any(r.name == sqlite.__name__ for r in caplog.records)
    assert_no_secret(caplog.text)


# Many writers


async def test_a_busy_database_makes_writers_wait_off_the_event_loop(path: Path) -> None:
    store = SqliteTokenStore(path)
    await store.save(APP_KEY, tagged("app"))
    ticked = asyncio.Event()

    async def ticker() -> None:
        for _ in range(20):
            await asyncio.sleep(0.005)
        ticked.set()

    with raw(path) as writer:
        writer.execute("BEGIN IMMEDIATE")  # another process in the middle of a write
        async with asyncio.timeout(20):
            ticking = asyncio.create_task(ticker())
            saving = asyncio.create_task(store.save(USER_KEY, tagged("user")))
            await ticked.wait()  # the loop runs on while the save waits for the writer
            assert not saving.done()
            assert await store.load(APP_KEY) == tagged("app")  # readers are not held up
            writer.execute("COMMIT")
            await asyncio.gather(saving, ticking)

    assert await store.load(USER_KEY) == tagged("user")


async def test_a_writer_that_waits_too_long_gets_a_clear_error(path: Path) -> None:
    await SqliteTokenStore(path).save(APP_KEY, tagged("app"))
    store = SqliteTokenStore(path, busy_timeout=0.1)

    with raw(path) as writer:
        writer.execute("BEGIN IMMEDIATE")
        async with asyncio.timeout(10):
            with pytest.raises(TokenStoreError, match="is busy") as caught:
                await store.save(USER_KEY, tagged("user"))
        writer.execute("ROLLBACK")

    assert "did not happen" in str(caught.value)
    assert_no_secret_in_error(caught.value, sqlite.__file__)
    assert await store.load(USER_KEY) is None


# lock(key): per key, across processes

_HOLDER = """
import asyncio, sys
from aiomasto.stores import SqliteTokenStore, StoreKey

async def main(path: str) -> None:
    key = StoreKey(instance="https://mastodon.example", app="Relationship Mapper")
    async with SqliteTokenStore(path).lock(key):
        print("inside", flush=True)
        sys.stdin.readline()

asyncio.run(main(sys.argv[1]))
"""


async def test_a_section_holds_up_its_own_key_only_and_dies_with_its_process(path: Path) -> None:
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
    store = SqliteTokenStore(path)
    assert holder.stdout is not None
    async with asyncio.timeout(30):
        assert await holder.stdout.readline() == b"inside\n"

        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.2), store.lock(APP_KEY):
                pytest.fail("entered a section another process holds")
        async with store.lock(USER_KEY):  # another key: no waiting
            await store.save(USER_KEY, tagged("user"))
        await store.save(APP_KEY, tagged("app"))  # nor for a plain save

        holder.kill()  # SIGKILL inside the section: the kernel releases the lock
        assert await holder.wait() == -signal.SIGKILL
        async with store.lock(APP_KEY):
            assert await store.load(APP_KEY) == tagged("app")


async def test_lock_files_do_not_pile_up(path: Path) -> None:
    store = SqliteTokenStore(path)
    keys = [StoreKey(instance=INSTANCE, app="app", account=str(i)) for i in range(20)]

    async with asyncio.timeout(20):
        for key in keys:
            async with store.lock(key):
                await store.save(key, tagged(key.account or ""))
        await asyncio.gather(*(create_in_section(store, key) for key in keys * 3))

    assert list((path.parent / "tokens.sqlite3-locks").iterdir()) == []
    assert len(await store.keys()) == 20


async def create_in_section(store: SqliteTokenStore, key: StoreKey) -> None:
    async with store.lock(key):
        await store.save(key, tagged("again"))


# A writer killed in the middle of a save

# Saves "committed" records, then stops inside the save of a new value for one of them (in the
# INSERT, holding the database's write lock: the parent checks) and waits to be killed.
_KILLED_WRITER = """
import asyncio, sqlite3, sys
from aiomasto.entities import Token
from aiomasto.stores import Credentials, SqliteTokenStore, StoreKey

real_connect = sqlite3.connect
steps = {"insert": False, "count": 0, "pause_at": None}

def connect(*args, **kwargs):
    connection = real_connect(*args, **kwargs)

    def trace(statement):
        steps["insert"] = statement.startswith("INSERT")
        steps["count"] = 0

    def step():
        if steps["insert"]:
            steps["count"] += 1
            if steps["count"] == steps["pause_at"]:
                print("writing", flush=True)
                sys.stdin.readline()
        return 0

    connection.set_trace_callback(trace)
    connection.set_progress_handler(step, 1)
    return connection

sqlite3.connect = connect

def key(i):
    return StoreKey(instance="https://m.example", app="app", account=str(i))

async def main(path):
    store = SqliteTokenStore(path)
    for i in range(5):
        await store.save(key(i), Credentials(token=Token(access_token=f"committed-{i}")))
    steps["pause_at"] = 1  # the INSERT's first step: its write transaction has begun
    print("committed", flush=True)
    await store.save(key(0), Credentials(token=Token(access_token="killed")))
    print("saved", flush=True)

asyncio.run(main(sys.argv[1]))
"""


async def test_a_writer_killed_mid_save_loses_nothing_committed(path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(PROJECT_ROOT)}
    writer = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        _KILLED_WRITER,
        str(path),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        env=env,
    )
    assert writer.stdout is not None
    async with asyncio.timeout(30):
        assert await writer.stdout.readline() == b"committed\n"
        assert await writer.stdout.readline() == b"writing\n"
        with raw(path) as other, pytest.raises(sqlite3.OperationalError, match="locked"):
            other.execute("PRAGMA busy_timeout = 0")
            other.execute("BEGIN IMMEDIATE")  # the writer is inside its transaction
        writer.kill()
        assert await writer.wait() == -signal.SIGKILL

        store = SqliteTokenStore(path)
        for i in range(5):
            key = StoreKey(instance="https://m.example", app="app", account=str(i))
            assert await store.load(key) == Credentials(token=Token(access_token=f"committed-{i}"))
        await store.save(APP_KEY, tagged("after"))  # and the database takes new writes
        assert await store.load(APP_KEY) == tagged("after")
    with raw(path, uri_mode="ro") as connection:
        assert connection.execute("PRAGMA integrity_check").fetchone() == ("ok",)


# Saves as fast as it can, printing each account once its save returned.
_BUSY_WRITER = """
import asyncio, sys
from aiomasto.entities import Token
from aiomasto.stores import Credentials, SqliteTokenStore, StoreKey

async def main(path, who):
    store = SqliteTokenStore(path)
    i = 0
    while True:
        key = StoreKey(instance="https://m.example", app="app", account=f"{who}-{i}")
        await store.save(key, Credentials(token=Token(access_token=f"token-{who}-{i}")))
        print(key.account, flush=True)
        i += 1

asyncio.run(main(sys.argv[1], sys.argv[2]))
"""


async def test_writers_killed_at_any_moment_lose_no_save_that_returned(path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(PROJECT_ROOT)}
    returned: list[str] = []
    async with asyncio.timeout(45):
        for who in ("a", "b", "c"):
            writer = await asyncio.create_subprocess_exec(
                sys.executable,
                "-c",
                _BUSY_WRITER,
                str(path),
                who,
                stdout=subprocess.PIPE,
                env=env,
            )
            assert writer.stdout is not None
            for _ in range(15):
                returned.append((await writer.stdout.readline()).decode().strip())
            writer.send_signal(signal.SIGKILL)  # most likely in the middle of the next save
            await writer.wait()
            returned.extend((await writer.stdout.read()).decode().split())

        store = SqliteTokenStore(path)
        for account in returned:
            key = StoreKey(instance="https://m.example", app="app", account=account)
            loaded = await store.load(key)
            assert loaded == Credentials(token=Token(access_token=f"token-{account}")), account
    with raw(path, uri_mode="ro") as connection:
        assert connection.execute("PRAGMA integrity_check").fetchone() == ("ok",)
