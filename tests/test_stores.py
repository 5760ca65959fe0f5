"""MemoryTokenStore and JsonFileTokenStore, against real files in a temporary directory."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import stat
import subprocess
import sys
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from records import (
    ACCESS_TOKEN,
    CLIENT_SECRET,
    assert_no_secret,
    assert_no_secret_in_error,
    make_credentials,
)

from aiomasto.entities import Application, Token
from aiomasto.errors import TokenStoreError
from aiomasto.stores import (
    FORMAT_VERSION,
    Credentials,
    JsonFileTokenStore,
    MemoryTokenStore,
    StoreKey,
    TokenStore,
    jsonfile,
)

INSTANCE = "https://mastodon.example"
APP_KEY = StoreKey(instance=INSTANCE, app="Relationship Mapper")
USER_KEY = StoreKey(instance=INSTANCE, app="Relationship Mapper", account="alice")

PROJECT_ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(params=["memory", "jsonfile"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> TokenStore:
    if request.param == "memory":
        return MemoryTokenStore()
    return JsonFileTokenStore(tmp_path / "credentials.json")


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "credentials.json"


# Small synchronous helpers: the test's own file access is not what is under test.


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def read(path: Path) -> bytes:
    return path.read_bytes()


def write(path: Path, data: bytes) -> None:
    path.write_bytes(data)


def names(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir())


# Both stores


def test_both_stores_satisfy_the_protocol(tmp_path: Path) -> None:
    assert isinstance(MemoryTokenStore(), TokenStore)
    assert isinstance(JsonFileTokenStore(tmp_path / "c.json"), TokenStore)


async def test_round_trip(store: TokenStore) -> None:
    credentials = make_credentials()
    await store.save(USER_KEY, credentials)

    loaded = await store.load(USER_KEY)

    assert loaded == credentials
    assert loaded is not None
    assert loaded.token is not None
    assert loaded.app is not None
    assert loaded.app.client_secret == CLIENT_SECRET
    assert loaded.token.created_at == datetime(2024, 5, 17, 9, 30, 12, tzinfo=UTC)
    assert loaded.version == FORMAT_VERSION


async def test_round_trip_of_partial_records(store: TokenStore) -> None:
    app_only = Credentials(app=Application(name="Relationship Mapper", client_id="id"))
    token_only = Credentials(token=Token(access_token=ACCESS_TOKEN))
    await store.save(APP_KEY, app_only)
    await store.save(USER_KEY, token_only)

    assert await store.load(APP_KEY) == app_only
    assert await store.load(USER_KEY) == token_only


async def test_keys_never_mix_and_delete_removes_one(store: TokenStore) -> None:
    keys = [
        StoreKey(instance="https://one.example", app="Mapper"),
        StoreKey(instance="https://two.example", app="Mapper"),
        StoreKey(instance="https://one.example", app="Other app"),
        StoreKey(instance="https://one.example", app="Mapper", account="alice"),
    ]
    for index, key in enumerate(keys):
        await store.save(key, make_credentials(f"-{index}"))

    for index, key in enumerate(keys):
        assert await store.load(key) == make_credentials(f"-{index}")
    assert await store.load(StoreKey(instance="https://one.example", app="mapper")) is None
    assert (
        await store.load(StoreKey(instance="https://one.example", app="Mapper", account="")) is None
    )

    await store.delete(keys[0])

    assert await store.load(keys[0]) is None
    for index, key in enumerate(keys[1:], start=1):
        assert await store.load(key) == make_credentials(f"-{index}")


async def test_save_replaces_the_record(store: TokenStore) -> None:
    await store.save(USER_KEY, make_credentials("-old"))
    await store.save(USER_KEY, make_credentials("-new"))

    assert await store.load(USER_KEY) == make_credentials("-new")


async def test_delete_of_a_missing_key_is_quiet(store: TokenStore) -> None:
    await store.delete(USER_KEY)
    await store.save(APP_KEY, make_credentials())
    await store.delete(USER_KEY)

    assert await store.load(APP_KEY) == make_credentials()


async def test_fifty_concurrent_saves_all_land(store: TokenStore) -> None:
    keys = [StoreKey(instance=INSTANCE, app="Mapper", account=f"user{i}") for i in range(50)]

    await asyncio.gather(
        *(store.save(key, make_credentials(f"-{i}")) for i, key in enumerate(keys))
    )

    for i, key in enumerate(keys):
        assert await store.load(key) == make_credentials(f"-{i}")


# The JSON file


async def test_load_of_a_missing_file_is_none(tmp_path: Path) -> None:
    store = JsonFileTokenStore(tmp_path / "missing" / "credentials.json")

    assert await store.load(USER_KEY) is None
    await store.delete(USER_KEY)
    assert not (tmp_path / "missing").exists()


async def test_a_new_store_on_the_same_path_loads_what_was_saved(path: Path) -> None:
    await JsonFileTokenStore(path).save(USER_KEY, make_credentials())

    restarted = JsonFileTokenStore(str(path))

    assert await restarted.load(USER_KEY) == make_credentials()


async def test_file_layout_is_readable_and_stable(path: Path) -> None:
    store = JsonFileTokenStore(path)
    await store.save(StoreKey(instance="https://b.example", app="A"), make_credentials())
    await store.save(StoreKey(instance="https://a.example", app="B", account="zoe"), Credentials())
    await store.save(StoreKey(instance="https://a.example", app="B"), Credentials())
    await store.save(StoreKey(instance="https://a.example", app="B", account="al"), Credentials())
    first = read(path)

    document = json.loads(first)

    assert list(document) == ["format", "version", "records"]
    assert document["format"] == "aiomasto-credentials"
    assert document["version"] == FORMAT_VERSION
    assert [(r["instance"], r["app"], r["account"]) for r in document["records"]] == [
        ("https://a.example", "B", None),
        ("https://a.example", "B", "al"),
        ("https://a.example", "B", "zoe"),
        ("https://b.example", "A", None),
    ]
    assert all(
        list(r) == ["instance", "app", "account", "credentials"] for r in document["records"]
    )
    assert (
        document["records"][3]["credentials"]["token"]["created_at"] == "2024-05-17T09:30:12+00:00"
    )
    assert first.count(b"\n") > 20  # indented for a person, not one long line

    # Rewriting the same records produces the same bytes.
    await store.save(StoreKey(instance="https://a.example", app="B"), Credentials())
    assert read(path) == first


async def test_tilde_is_expanded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    store = JsonFileTokenStore("~/credentials.json")

    await store.save(USER_KEY, make_credentials())

    assert store.path == tmp_path / "credentials.json"
    assert (tmp_path / "credentials.json").exists()


async def test_first_save_creates_private_file_and_directories(tmp_path: Path) -> None:
    path = tmp_path / "config" / "relmap" / "credentials.json"

    await JsonFileTokenStore(path).save(USER_KEY, make_credentials())

    assert mode(path) == 0o600
    assert mode(tmp_path / "config") == 0o700
    assert mode(tmp_path / "config" / "relmap") == 0o700
    assert names(path.parent) == ["credentials.json"]


async def test_save_over_a_world_readable_file_makes_it_private(path: Path) -> None:
    await JsonFileTokenStore(path).save(APP_KEY, make_credentials())
    os.chmod(path, 0o644)

    await JsonFileTokenStore(path).save(USER_KEY, make_credentials())

    assert mode(path) == 0o600
    assert await JsonFileTokenStore(path).load(APP_KEY) == make_credentials()


async def test_save_through_a_symlink_updates_its_target(tmp_path: Path) -> None:
    real = tmp_path / "real" / "credentials.json"
    await JsonFileTokenStore(real).save(APP_KEY, make_credentials("-app"))
    link = tmp_path / "link.json"
    link.symlink_to(real)

    await JsonFileTokenStore(link).save(USER_KEY, make_credentials("-user"))

    assert link.is_symlink()
    assert await JsonFileTokenStore(real).load(USER_KEY) == make_credentials("-user")
    assert await JsonFileTokenStore(real).load(APP_KEY) == make_credentials("-app")


async def test_failed_rename_leaves_the_old_file_intact(
    path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = JsonFileTokenStore(path)
    await store.save(APP_KEY, make_credentials("-old"))
    before = read(path)

    def fail(src: Any, dst: Any) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("aiomasto.stores.jsonfile.os.replace", fail)
    with pytest.raises(TokenStoreError, match="No space left on device") as caught:
        await store.save(USER_KEY, make_credentials("-new"))
    monkeypatch.undo()

    assert caught.value.path == str(path)
    assert "left untouched" in str(caught.value)
    assert_no_secret_in_error(caught.value, jsonfile.__file__)
    assert read(path) == before
    assert names(path.parent) == ["credentials.json"]
    fresh = JsonFileTokenStore(path)
    assert await fresh.load(APP_KEY) == make_credentials("-old")
    assert await fresh.load(USER_KEY) is None


_CRASHING_SAVE = """
import asyncio, os, sys
from aiomasto.entities import Token
from aiomasto.stores import Credentials, JsonFileTokenStore, StoreKey

def crash(src, dst):
    os._exit(1)

os.replace = crash
key = StoreKey(instance="https://mastodon.example", app="Relationship Mapper", account="alice")
asyncio.run(JsonFileTokenStore(sys.argv[1]).save(key, Credentials(token=Token(access_token="new"))))
"""


def test_crash_before_rename_leaves_the_old_file_intact(path: Path) -> None:
    asyncio.run(JsonFileTokenStore(path).save(USER_KEY, make_credentials("-old")))
    before = path.read_bytes()
    env = {**os.environ, "PYTHONPATH": str(PROJECT_ROOT)}

    result = subprocess.run(
        [sys.executable, "-c", _CRASHING_SAVE, str(path)],
        env=env,
        capture_output=True,
        timeout=60,
        check=False,
    )

    assert result.returncode == 1, result.stderr.decode()
    assert path.read_bytes() == before
    leftovers = [p for p in path.parent.iterdir() if p != path]
    assert [p.name[: len(".credentials.json.")] for p in leftovers] == [".credentials.json."]
    assert mode(leftovers[0]) == 0o600  # an orphaned temp file still holds secrets
    assert asyncio.run(JsonFileTokenStore(path).load(USER_KEY)) == make_credentials("-old")


# Corrupt and unreadable files


def _valid_document() -> dict[str, Any]:
    return {
        "format": "aiomasto-credentials",
        "version": 1,
        "records": [
            {
                "instance": INSTANCE,
                "app": "Relationship Mapper",
                "account": "alice",
                "credentials": {
                    "app": {"name": "Relationship Mapper", "client_secret": CLIENT_SECRET},
                    "token": {"access_token": ACCESS_TOKEN, "expires_in": 60},
                    "version": 1,
                },
            }
        ],
    }


def _edited(edit: Callable[[dict[str, Any]], object]) -> bytes:
    document = _valid_document()
    edit(document)
    return json.dumps(document).encode()


_VALID = json.dumps(_valid_document()).encode()

CORRUPT_FILES: dict[str, tuple[bytes, str]] = {
    "garbage bytes": (b"\x00\xff\xfe garbage " + ACCESS_TOKEN.encode(), "not UTF-8"),
    "garbage text": (f"not json {ACCESS_TOKEN}".encode(), "not valid JSON"),
    "truncated JSON": (_VALID[: _VALID.index(ACCESS_TOKEN.encode()) + 8], "not valid JSON"),
    "empty file": (b"", "not valid JSON"),
    "top-level array": (b"[]", "top level is not a JSON object"),
    "no format": (_edited(lambda d: d.pop("format")), '"format"'),
    "unknown format": (_edited(lambda d: d.update(format="other")), '"format"'),
    "version as string": (_edited(lambda d: d.update(version="1")), '"version"'),
    "newer version": (_edited(lambda d: d.update(version=2)), "newer aiomasto"),
    "records not a list": (_edited(lambda d: d.update(records={})), '"records"'),
    "record not an object": (_edited(lambda d: d["records"].append(7)), "records[1]"),
    "record missing instance": (
        _edited(lambda d: d["records"][0].pop("instance")),
        'records[0]."instance"',
    ),
    "record missing access_token": (
        _edited(lambda d: d["records"][0]["credentials"]["token"].pop("access_token")),
        "records[0].credentials.token.access_token",
    ),
    "secret in a number field": (
        _edited(lambda d: d["records"][0]["credentials"]["token"].update(expires_in=ACCESS_TOKEN)),
        "records[0].credentials.token.expires_in",
    ),
    "newer record": (
        _edited(lambda d: d["records"][0]["credentials"].update(version=2)),
        "newer aiomasto",
    ),
    "duplicate key": (
        _edited(lambda d: d["records"].append(d["records"][0])),
        "records[1] repeats",
    ),
}


@pytest.mark.parametrize("case", list(CORRUPT_FILES))
async def test_corrupt_file_raises_and_is_never_overwritten(path: Path, case: str) -> None:
    content, problem = CORRUPT_FILES[case]
    write(path, content)
    store = JsonFileTokenStore(path)

    operations: list[Callable[[], Awaitable[object]]] = [
        lambda: store.load(USER_KEY),
        lambda: store.save(APP_KEY, make_credentials()),
        lambda: store.delete(USER_KEY),
    ]
    errors: list[TokenStoreError] = []
    for operation in operations:
        with pytest.raises(TokenStoreError) as caught:
            await operation()
        errors.append(caught.value)

    assert read(path) == content
    assert names(path.parent) == ["credentials.json"]
    for error in errors:
        message = str(error)
        assert str(path) in message
        assert problem in message
        assert "left untouched" in message
        assert error.path == str(path)
        assert_no_secret_in_error(error, jsonfile.__file__)


async def test_a_valid_document_parses(path: Path) -> None:
    write(path, _VALID)

    loaded = await JsonFileTokenStore(path).load(USER_KEY)

    assert loaded is not None
    assert loaded.token is not None
    assert loaded.token.access_token == ACCESS_TOKEN


async def test_a_directory_at_the_path_raises(path: Path) -> None:
    os.mkdir(path)
    store = JsonFileTokenStore(path)

    with pytest.raises(TokenStoreError, match="cannot be read") as caught:
        await store.load(USER_KEY)
    assert str(path) in str(caught.value)
    with pytest.raises(TokenStoreError):
        await store.save(USER_KEY, make_credentials())
    assert names(path) == []


async def test_a_file_in_place_of_a_parent_directory_raises(tmp_path: Path) -> None:
    write(tmp_path / "config", b"a file where a directory belongs")
    path = tmp_path / "config" / "relmap" / "credentials.json"
    store = JsonFileTokenStore(path)

    operations: list[Callable[[], Awaitable[object]]] = [
        lambda: store.load(USER_KEY),
        lambda: store.save(USER_KEY, make_credentials()),
    ]
    for operation in operations:
        with pytest.raises(TokenStoreError, match="Not a directory") as caught:
            await operation()
        assert str(path) in str(caught.value)
    assert read(tmp_path / "config") == b"a file where a directory belongs"


# Secrets


async def test_secrets_stay_out_of_reprs(tmp_path: Path) -> None:
    credentials = make_credentials()
    memory = MemoryTokenStore()
    json_store = JsonFileTokenStore(tmp_path / "credentials.json")
    for store in (memory, json_store):
        await store.save(USER_KEY, credentials)

    for shown in (credentials, credentials.app, credentials.token, memory, json_store):
        assert_no_secret(repr(shown))
        assert_no_secret(str(shown))
    assert repr(json_store) == f"JsonFileTokenStore({str(tmp_path / 'credentials.json')!r})"


async def test_secrets_stay_out_of_debug_logs(path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    store = JsonFileTokenStore(path)

    await store.save(USER_KEY, make_credentials())
    await store.load(USER_KEY)
    await store.delete(USER_KEY)
    await store.save(USER_KEY, make_credentials())
    write(path, _VALID[:-5])
    with pytest.raises(TokenStoreError):
        await store.save(APP_KEY, make_credentials())

    assert any(r.name == jsonfile.__name__ for r in caplog.records)
    assert_no_secret(caplog.text)
    for record in caplog.records:
        assert_no_secret(record.getMessage())


async def test_processes_sharing_the_file_never_lose_each_others_saves(tmp_path: Path) -> None:
    path = tmp_path / "shared" / "credentials.json"
    script = """
import asyncio, sys
from aiomasto.stores import Credentials, JsonFileTokenStore, StoreKey

async def main(path: str, who: str) -> None:
    store = JsonFileTokenStore(path)
    for i in range(30):
        await store.save(StoreKey(instance="https://m.example", app=f"{who}-{i}"), Credentials())

asyncio.run(main(sys.argv[1], sys.argv[2]))
"""
    workers = [
        await asyncio.create_subprocess_exec(sys.executable, "-c", script, str(path), who)
        for who in ("a", "b", "c")
    ]
    assert [await worker.wait() for worker in workers] == [0, 0, 0]
    store = JsonFileTokenStore(path)
    for who in ("a", "b", "c"):
        for i in range(30):
            key = StoreKey(instance="https://m.example", app=f"{who}-{i}")
            assert await store.load(key) == Credentials(), key


# Leftovers of interrupted saves (issue 8, point 12)

# Saves, then stops inside the write (after the temporary file has its content, before the
# rename) and tells the parent, which kills it or lets it go on by a line on stdin.
_PAUSED_SAVE = """
import asyncio, os, sys
from aiomasto.entities import Token
from aiomasto.stores import Credentials, JsonFileTokenStore, StoreKey

real_fsync = os.fsync
paused = False

def fsync(fd):
    global paused
    real_fsync(fd)
    if not paused:
        paused = True
        print("writing", flush=True)
        sys.stdin.readline()

os.fsync = fsync
key = StoreKey(instance="https://mastodon.example", app="Relationship Mapper", account=sys.argv[2])
token = Token(access_token=sys.argv[3])
asyncio.run(JsonFileTokenStore(sys.argv[1]).save(key, Credentials(token=token)))
print("saved", flush=True)
"""


async def start_paused_save(path: Path, account: str, token: str) -> asyncio.subprocess.Process:
    """A process stopped in the middle of saving ``token`` (it holds the directory lock)."""
    env = {**os.environ, "PYTHONPATH": str(PROJECT_ROOT)}
    child = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        _PAUSED_SAVE,
        str(path),
        account,
        token,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        env=env,
    )
    assert child.stdout is not None
    async with asyncio.timeout(20):
        assert await child.stdout.readline() == b"writing\n"
    return child


def temporaries(path: Path) -> list[Path]:
    return sorted(p for p in path.parent.iterdir() if p.name.startswith(f".{path.name}."))


async def kill_mid_save(path: Path) -> Path:
    """Kill -9 a process in the middle of a save; returns the temporary file it left."""
    child = await start_paused_save(path, "alice", ACCESS_TOKEN + "-killed")
    child.kill()
    async with asyncio.timeout(10):
        assert await child.wait() == -9
    [leftover] = temporaries(path)
    assert (ACCESS_TOKEN + "-killed").encode() in leftover.read_bytes()  # what is at stake
    assert mode(leftover) == 0o600
    return leftover


@pytest.mark.parametrize("operation", ["load", "save", "delete"])
async def test_a_save_killed_mid_write_leaves_nothing_after_the_next_use(
    path: Path, operation: str, caplog: pytest.LogCaptureFixture
) -> None:
    await JsonFileTokenStore(path).save(APP_KEY, make_credentials("-old"))
    leftover = await kill_mid_save(path)
    caplog.set_level(logging.INFO, logger=jsonfile.__name__)
    store = JsonFileTokenStore(path)

    async with asyncio.timeout(10):
        if operation == "load":
            assert await store.load(APP_KEY) == make_credentials("-old")
        elif operation == "save":
            await store.save(USER_KEY, make_credentials("-new"))
        else:
            await store.delete(APP_KEY)

    assert names(path.parent) == ["credentials.json"]
    assert any(
        leftover.name in r.getMessage() and str(path) in r.getMessage() for r in caplog.records
    )
    assert_no_secret(caplog.text)
    assert (ACCESS_TOKEN + "-killed") not in caplog.text


async def test_only_this_files_stale_temporary_files_are_removed(path: Path) -> None:
    directory = path.parent
    ours = [".credentials.json.abcd_123.tmp", ".credentials.json.zzzzzzzz.tmp"]
    others = [
        ".other.json.abcd_123.tmp",  # another store's, in the same directory
        ".credentials.json.abc.tmp",  # not a name mkstemp makes
        ".credentials.json.abcd1234.tmp.bak",
        ".credentials.json.ABCD1234.tmp",
        "credentials.json.abcd1234.tmp",
        ".credentials.json.abcd1234.tmp2",
        ".credentials.jsonXabcd1234.tmp",
        ".credentials.json.ab.d1234.tmp",
    ]
    for name in ours + others:
        write(directory / name, ACCESS_TOKEN.encode())
    os.mkdir(directory / ".credentials.json.dirdirdi.tmp")  # not a regular file
    (directory / ".credentials.json.linklink.tmp").symlink_to(directory / others[0])

    await JsonFileTokenStore(path).save(USER_KEY, make_credentials())

    assert names(directory) == sorted(
        [
            "credentials.json",
            *others,
            ".credentials.json.dirdirdi.tmp",
            ".credentials.json.linklink.tmp",
        ]
    )


async def test_a_live_writers_temporary_file_is_never_removed(path: Path) -> None:
    await JsonFileTokenStore(path).save(APP_KEY, make_credentials("-app"))
    writer = await start_paused_save(path, "bob", ACCESS_TOKEN + "-bob")
    assert writer.stdin is not None
    [live] = temporaries(path)
    store = JsonFileTokenStore(path)

    # A load cannot take the lock the writer holds, so it leaves the writer's file alone;
    # a save waits for the writer to finish.
    async with asyncio.timeout(10):
        assert await store.load(APP_KEY) == make_credentials("-app")
    assert temporaries(path) == [live]
    save = asyncio.create_task(store.save(USER_KEY, make_credentials("-alice")))
    done, _ = await asyncio.wait([save], timeout=0.2)
    assert not done
    assert temporaries(path) == [live]

    writer.stdin.write(b"go\n")
    async with asyncio.timeout(20):
        assert writer.stdout is not None
        assert await writer.stdout.readline() == b"saved\n"
        assert await writer.wait() == 0
        await save

    bob = StoreKey(instance=INSTANCE, app="Relationship Mapper", account="bob")
    fresh = JsonFileTokenStore(path)
    assert await fresh.load(APP_KEY) == make_credentials("-app")
    assert await fresh.load(USER_KEY) == make_credentials("-alice")
    assert await fresh.load(bob) == Credentials(token=Token(access_token=ACCESS_TOKEN + "-bob"))
    assert names(path.parent) == ["credentials.json"]


# Permissions


@pytest.mark.parametrize("loose", [0o644, 0o640, 0o604, 0o666, 0o660, 0o602], ids=oct)
async def test_a_file_open_to_others_is_made_private_when_loaded(
    path: Path, loose: int, caplog: pytest.LogCaptureFixture
) -> None:
    await JsonFileTokenStore(path).save(APP_KEY, make_credentials())
    os.chmod(path, loose)
    caplog.set_level(logging.DEBUG)

    async with asyncio.timeout(10):
        loaded = await JsonFileTokenStore(path).load(APP_KEY)

    assert loaded == make_credentials()
    assert mode(path) == 0o600
    [warning] = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert warning.levelno == logging.WARNING
    assert str(path) in warning.getMessage()
    assert f"{loose:04o}" in warning.getMessage()
    assert "0600" in warning.getMessage()
    assert_no_secret(caplog.text)


async def test_a_private_file_is_left_as_it_is_and_quietly(
    path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    await JsonFileTokenStore(path).save(APP_KEY, make_credentials())
    os.chmod(path, 0o400)
    caplog.set_level(logging.DEBUG)

    assert await JsonFileTokenStore(path).load(APP_KEY) == make_credentials()

    assert mode(path) == 0o400
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


async def test_a_file_that_cannot_be_made_private_is_read_with_a_warning(
    path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    await JsonFileTokenStore(path).save(APP_KEY, make_credentials())
    os.chmod(path, 0o644)
    caplog.set_level(logging.DEBUG)

    def not_the_owner(fd: int, mode: int) -> None:
        raise PermissionError(1, "Operation not permitted")

    # Not the owner: what a process sees for a file another user owns (this suite may run as
    # root, for whom every chmod succeeds).
    monkeypatch.setattr("aiomasto.stores.jsonfile.os.fchmod", not_the_owner)
    async with asyncio.timeout(10):
        loaded = await JsonFileTokenStore(path).load(APP_KEY)
    monkeypatch.undo()

    assert loaded == make_credentials()
    assert mode(path) == 0o644
    [warning] = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert warning.levelno == logging.WARNING
    message = warning.getMessage()
    assert str(path) in message
    assert "0644" in message
    assert "Operation not permitted" in message
    assert_no_secret(caplog.text)


# Symlinks


async def test_a_dangling_symlink_at_the_path_is_refused(tmp_path: Path) -> None:
    target = tmp_path / "vault" / "credentials.json"
    link = tmp_path / "credentials.json"
    link.symlink_to(target)
    store = JsonFileTokenStore(link)

    operations: list[Callable[[], Awaitable[object]]] = [
        lambda: store.load(USER_KEY),
        lambda: store.save(USER_KEY, make_credentials()),
        lambda: store.delete(USER_KEY),
        lambda: enter(store.lock(USER_KEY)),
    ]
    for operation in operations:
        with pytest.raises(TokenStoreError) as caught:
            async with asyncio.timeout(10):
                await operation()
        message = str(caught.value)
        assert str(link) in message
        assert str(target) in message
        assert "does not exist" in message
        assert caught.value.path == str(link)
        assert_no_secret_in_error(caught.value, jsonfile.__file__)

    assert not (tmp_path / "vault").exists()
    assert names(tmp_path) == ["credentials.json"]
    assert link.is_symlink()


async def test_a_dangling_symlink_on_the_way_is_refused(tmp_path: Path) -> None:
    # A secrets directory linked to a volume that is not mounted.
    (tmp_path / "secrets").symlink_to(tmp_path / "unmounted" / "secrets")
    path = tmp_path / "secrets" / "relmap" / "credentials.json"
    store = JsonFileTokenStore(path)

    operations: list[Callable[[], Awaitable[object]]] = [
        lambda: store.load(USER_KEY),
        lambda: store.save(USER_KEY, make_credentials()),
    ]
    for operation in operations:
        with pytest.raises(TokenStoreError, match="does not exist") as caught:
            async with asyncio.timeout(10):
                await operation()
        assert str(tmp_path / "secrets") in str(caught.value)

    assert names(tmp_path) == ["secrets"]


async def test_a_symlink_loop_is_refused(tmp_path: Path) -> None:
    link = tmp_path / "credentials.json"
    link.symlink_to(tmp_path / "other.json")
    (tmp_path / "other.json").symlink_to(link)
    store = JsonFileTokenStore(link)

    operations: list[Callable[[], Awaitable[object]]] = [
        lambda: store.load(USER_KEY),
        lambda: store.save(USER_KEY, make_credentials()),
    ]
    for operation in operations:
        with pytest.raises(TokenStoreError, match="symbolic links") as caught:
            async with asyncio.timeout(10):
                await operation()
        assert str(link) in str(caught.value)

    assert link.is_symlink()
    assert (tmp_path / "other.json").is_symlink()


async def test_a_symlink_to_a_file_in_a_secrets_directory_keeps_working(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    secrets = tmp_path / "secrets"
    real = secrets / "relmap.json"
    await JsonFileTokenStore(real).save(APP_KEY, make_credentials("-app"))
    os.chmod(real, 0o640)
    write(secrets / ".relmap.json.abcd1234.tmp", ACCESS_TOKEN.encode())  # a leftover
    link = tmp_path / "config" / "credentials.json"
    link.parent.mkdir()
    link.symlink_to(real)
    store = JsonFileTokenStore(link)
    caplog.set_level(logging.INFO)

    async with asyncio.timeout(10):
        assert await store.load(APP_KEY) == make_credentials("-app")
        await store.save(USER_KEY, make_credentials("-user"))

    assert link.is_symlink()
    assert os.readlink(link) == str(real)
    assert names(link.parent) == ["credentials.json"]
    assert names(secrets) == ["relmap.json"]  # the leftover beside the real file is gone
    assert mode(real) == 0o600
    assert await JsonFileTokenStore(real).load(USER_KEY) == make_credentials("-user")
    assert await JsonFileTokenStore(real).load(APP_KEY) == make_credentials("-app")
    assert_no_secret(caplog.text)


async def enter(section: Any) -> None:
    async with section:
        pass
