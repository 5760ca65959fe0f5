"""A TokenStore in one SQLite database (stdlib ``sqlite3``, WAL), shared by many processes."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import json
import logging
import os
import random
import sqlite3
import tempfile
import time
import urllib.parse
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

from aiomasto._converter import converter, decode
from aiomasto.errors import DecodeError, TokenStoreError

from ._base import FORMAT_VERSION, Credentials, StoreKey
from ._locking import Hold, active_hold, finish_in_thread, holding, holds_of_kind
from .jsonfile import _LockRequest, _make_private_directories, _reason, keep_private

__all__ = ["SqliteTokenStore"]

_T = TypeVar("_T")

_KIND = "sqlite"
_FILE_MODE = 0o600
APPLICATION_ID = int.from_bytes(b"aMtO", "big")
"""``PRAGMA application_id`` of an aiomasto database: the bytes ``aMtO`` (0x614d744f)."""
SCHEMA_VERSION = 1
"""``PRAGMA user_version`` of the tables this aiomasto writes; a newer one is refused."""

# ``account`` is NULL for the app's own record. A UNIQUE constraint lets any number of NULLs
# through, so the key's index is on expressions that tell NULL, '' and every account apart.
_SCHEMA = (
    """
    CREATE TABLE aiomasto_credentials (
        instance TEXT NOT NULL,
        app TEXT NOT NULL,
        account TEXT,
        credentials TEXT NOT NULL
    )
    """,
    """
    CREATE UNIQUE INDEX aiomasto_credentials_key
        ON aiomasto_credentials (instance, app, account IS NULL, ifnull(account, ''))
    """,
    f"PRAGMA application_id = {APPLICATION_ID}",
    f"PRAGMA user_version = {SCHEMA_VERSION}",
)
_LOAD = (
    "SELECT credentials FROM aiomasto_credentials WHERE instance = ? AND app = ? AND account IS ?"
)
_KEYS = (
    "SELECT instance, app, account FROM aiomasto_credentials "
    "ORDER BY instance, app, account IS NOT NULL, account"
)
_SAVE = (
    "INSERT OR REPLACE INTO aiomasto_credentials (instance, app, account, credentials) "
    "VALUES (?, ?, ?, ?)"
)
_DELETE = "DELETE FROM aiomasto_credentials WHERE instance = ? AND app = ? AND account IS ?"

_IDENTIFY = (
    "SELECT (SELECT application_id FROM pragma_application_id), "
    "(SELECT user_version FROM pragma_user_version), (SELECT count(*) FROM sqlite_master)"
)
_DONE = {"open": "opened", "read": "read", "write": "written"}

# What an SQLite error code means, by its primary code (SQLITE_IOERR_SHORT_READ: IOERR).
_CAUSES = {
    "CANTOPEN": "SQLite cannot open it",
    "FULL": "the disk is full",
    "IOERR": "a disk I/O error",
    "NOMEM": "out of memory",
    "PERM": "permission denied",
    "READONLY": "it is read-only",
}

_log = logging.getLogger(__name__)


class SqliteTokenStore:
    """Keeps every record in one SQLite database: the store for many worker processes.

    A web backend's workers (or a bot and its admin script) on one machine share the file;
    each call runs in a thread with a connection of its own, so the event loop never waits on
    the disk. The database is in WAL mode (readers never wait for a writer) and every change
    is one transaction, synced to disk before it returns (``synchronous=FULL``): a process
    killed in the middle of a save leaves the record as it was before. A writer that finds
    another process writing waits up to ``busy_timeout`` seconds, then raises
    :class:`~aiomasto.TokenStoreError`.

    The database holds one table, ``aiomasto_credentials`` (``instance``, ``app``,
    ``account`` — NULL for the app's own record — and ``credentials``, the record as
    aiomasto's JSON), and is marked as aiomasto's by ``PRAGMA application_id`` (0x614d744f)
    and ``PRAGMA user_version`` (the schema version). A missing file, an empty one, or an
    SQLite database with nothing in it becomes such a database on the first save (a load
    writes nothing); anything else is refused with
    :class:`~aiomasto.TokenStoreError` and never written to: a file that is not an SQLite
    database or is damaged, another program's SQLite database, or one written by a newer
    aiomasto. Messages name the file, never what it holds.

    The file, and SQLite's ``-wal`` and ``-shm`` files beside it, are private (mode 0600);
    missing parent directories are created with mode 0700. A database that other users may
    read is made private when it is opened, with a warning. ``path`` may start with ``~`` and
    may be a symlink to an existing file (a symlink that leads nowhere is refused).

    ``lock(key)`` is a section that runs alone among every task and process locking ``key``
    (an ``flock`` on a small file per key, in a private ``<name>-locks`` directory beside the
    database); other keys are not held up. See :class:`~aiomasto.stores.TokenStore`.

    Example::

        store = SqliteTokenStore("/var/lib/relmap/tokens.sqlite3")
        key = StoreKey(instance="https://mastodon.example", app="Relationship Mapper",
                       account="109302")
        await store.save(key, Credentials(app=app, token=token))
        credentials = await store.load(key)   # from any worker, also after a restart
    """

    def __init__(self, path: str | os.PathLike[str], *, busy_timeout: float = 30.0) -> None:
        self._path = Path(os.path.expanduser(os.fspath(path)))
        self._busy_timeout = busy_timeout
        self._key_locks: dict[StoreKey, _KeyLock] = {}
        # Per key: a wait for its lock file whose task was cancelled, for the next locker.
        self._pending: dict[StoreKey, _LockRequest] = {}

    @property
    def path(self) -> Path:
        """The database file, with ``~`` expanded."""
        return self._path

    def __repr__(self) -> str:
        return f"SqliteTokenStore({str(self._path)!r})"

    async def load(self, key: StoreKey) -> Credentials | None:
        """The record stored under ``key``, or ``None`` (also when the file does not exist)."""
        return await asyncio.to_thread(self._retrying, self._load, key)

    async def keys(self) -> list[StoreKey]:
        """Every key with a record, ordered by instance, app and account (the app's first)."""
        return await asyncio.to_thread(self._retrying, self._keys)

    async def save(self, key: StoreKey, credentials: Credentials) -> None:
        """Store ``credentials`` under ``key``, replacing what was there."""
        await self._change(key, credentials)

    async def delete(self, key: StoreKey) -> None:
        """Remove the record under ``key``; no error if there is none."""
        await self._change(key, None)

    def lock(self, key: StoreKey) -> contextlib.AbstractAsyncContextManager[None]:
        """A section that runs alone among every task and process using this database for ``key``.

        Other keys are not held up, and neither are ``load``, ``save`` and ``delete`` (they
        are transactions of their own): the section excludes other sections on ``key``.
        Reentrant for the holder and the tasks it starts inside the section, also through
        another store object for the same file. A task cancelled while it waits leaves at
        once, and the lock it waited for goes to the next waiter or is released; a process
        killed inside the section releases it. On platforms without ``fcntl`` (Windows) it
        excludes only this store's tasks.

        Example::

            async with store.lock(key):
                if await store.load(key) is None:
                    await store.save(key, await obtain_credentials())
        """
        return self._section(key)

    # The event loop's side

    async def _change(self, key: StoreKey, credentials: Credentials | None) -> None:
        if holds_of_kind(_KIND):
            # Maybe inside a section on this key: a change made there must not outlive it,
            # even when its task is cancelled.
            await finish_in_thread(self._write, key, credentials)
        else:
            await asyncio.to_thread(self._write, key, credentials)

    @contextlib.asynccontextmanager
    async def _section(self, key: StoreKey) -> AsyncIterator[None]:
        if holds_of_kind(_KIND):
            target = await asyncio.to_thread(self._target)
            if active_hold(_identity(target, key)) is not None:
                yield
                return
        entry = self._key_locks.setdefault(key, _KeyLock())
        entry.users += 1
        try:
            async with entry.lock:
                fd, target = await self._lock_key(key)
                hold = Hold(_identity(target, key))
                try:
                    with holding(hold):
                        yield
                finally:
                    hold.end(functools.partial(_release, fd, _lock_file(target, key)))
        finally:
            entry.users -= 1
            if entry.users == 0:
                del self._key_locks[key]

    async def _lock_key(self, key: StoreKey) -> tuple[int | None, Path]:
        """Wait for ``key``'s lock file in a thread, leaving at once when cancelled."""
        for other, waiting in list(self._pending.items()):
            if waiting.future.done():  # abandoned, and over: nobody will adopt it
                del self._pending[other]
        request = self._pending.get(key)
        if request is None or not request.adopt():
            request = self._pending[key] = _LockRequest(functools.partial(self._wait_for, key))
        try:
            await asyncio.shield(request.future)
        except asyncio.CancelledError:
            request.abandon()
            raise
        finally:
            if request.future.done() and self._pending.get(key) is request:
                del self._pending[key]
        fd, target = request.take()
        return fd, Path(target)

    # The threads' side

    def _wait_for(self, key: StoreKey) -> tuple[int | None, str]:
        """Take ``key``'s lock file (blocking); the descriptor holds the lock until closed."""
        target = self._target()
        if fcntl is None:
            return None, str(target)
        path = _lock_file(target, key)
        while True:
            try:
                _make_private_directories(path.parent)
                fd = os.open(
                    path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, _FILE_MODE
                )
            except OSError as exc:
                raise TokenStoreError(
                    f"cannot lock a key of token store database {self._path} ({_reason(exc)})",
                    path=str(self._path),
                ) from None
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                # The previous holder removes the file as it leaves: a lock taken on a file
                # that is no longer at the path excludes nobody, so take the new one.
                if _same_file(fd, path):
                    return fd, str(target)
            except BaseException:
                os.close(fd)
                raise
            os.close(fd)

    def _write(self, key: StoreKey, credentials: Credentials | None) -> None:
        target = self._target()
        hold = active_hold(_identity(target, key))
        if hold is None:
            self._retrying(self._save_or_delete, target, key, credentials)
            return
        with hold.mutex:  # the section ends (and its lock goes) only after this change
            self._retrying(self._save_or_delete, target, key, credentials)

    def _retrying(self, operation: Callable[..., _T], *args: Any) -> _T:
        """``operation(*args)``, again while the database is busy, for up to ``busy_timeout``.

        SQLite's busy handler waits for most locks, but some it reports at once (another
        connection recovering the WAL, or closing the last connection and removing it), and
        every operation here is one statement, safe to run again.
        """
        deadline = time.monotonic() + self._busy_timeout
        delay = 0.001
        while True:
            try:
                return operation(*args)
            except _Busy as exc:
                busy = exc
            left = deadline - time.monotonic()
            if left <= 0:
                break
            time.sleep(min(delay * (1 + random.random()), left))
            delay = min(delay * 2, 0.05)
        action, code = busy.action, busy.code
        del busy  # raised afresh below, with no SQLite error attached
        raise self._error(
            f"is busy: other processes kept it locked for over {self._busy_timeout:g} s "
            f"({code}), so this {action} did not happen"
        )

    def _save_or_delete(self, target: Path, key: StoreKey, credentials: Credentials | None) -> None:
        place = (key.instance, key.app, key.account)
        with self._connect(target, create=credentials is not None) as connection:
            if connection is None:
                return  # nothing to delete
            if credentials is None:
                self._run(connection, "write", _DELETE, place)
            else:
                # No local holds the encoded record: error reporters print a traceback's locals.
                self._run(connection, "write", _SAVE, (*place, _encode(credentials)))
        _log.debug("%s %s in %s", "deleted" if credentials is None else "saved", key, self._path)

    def _load(self, key: StoreKey) -> Credentials | None:
        with self._connect(self._target(), create=False) as connection:
            if connection is None:
                return None
            # The row holds secrets: it is never a local of a frame that may raise.
            return self._decode(
                key, self._run(connection, "read", _LOAD, (key.instance, key.app, key.account))
            )

    def _keys(self) -> list[StoreKey]:
        with self._connect(self._target(), create=False) as connection:
            if connection is None:
                return []
            try:
                rows = connection.execute(_KEYS).fetchall()
            except (sqlite3.Error, UnicodeDecodeError) as exc:
                failure = self._failure(exc, "read")
            else:
                return [self._key(row) for row in rows]
        raise failure

    def _run(
        self,
        connection: sqlite3.Connection,
        action: str,
        statement: str,
        parameters: tuple[str | None, ...],
    ) -> tuple[object, ...] | None:
        try:
            row: tuple[object, ...] | None = connection.execute(statement, parameters).fetchone()
        except (sqlite3.Error, UnicodeDecodeError) as exc:
            failure = self._failure(exc, action)
        else:
            return row
        # Raised outside the handler, so that the SQLite error (and the traceback frames that
        # hold the parameters, a token among them) do not stay attached as its context.
        del parameters
        raise failure

    @contextlib.contextmanager
    def _connect(self, target: Path, *, create: bool) -> Iterator[sqlite3.Connection | None]:
        """A new connection to a checked database; ``None`` if there is none (and no ``create``).

        SQLite never creates the file (``mode=rw``): it is created here, empty and private,
        and a first save turns it into aiomasto's database.
        """
        if create:
            self._create(target)
        elif not target.exists():
            yield None
            return
        self._keep_private(target)
        uri = f"file:{urllib.parse.quote(str(target))}?mode=rw"
        try:
            connection = sqlite3.connect(
                uri,
                uri=True,
                timeout=self._busy_timeout,
                isolation_level=None,  # every statement is its own transaction
                check_same_thread=True,
            )
        except (sqlite3.Error, UnicodeDecodeError) as exc:
            failure = self._failure(exc, "open")
        else:
            with contextlib.closing(connection):
                yield connection if self._ready(connection, create=create) else None
            return
        raise failure

    def _ready(self, connection: sqlite3.Connection, *, create: bool) -> bool:
        """Check that the database is aiomasto's (making an empty one so if ``create``).

        ``False`` when it is empty and stays so: nothing is stored yet.
        """
        try:
            application_id, version, objects = _identify(connection)
            if application_id == 0 and version == 0 and objects == 0:
                if not create:
                    return False
                self._initialize(connection)
                application_id, version, objects = _identify(connection)
            if application_id == APPLICATION_ID:
                connection.execute("PRAGMA synchronous = FULL")
        except (sqlite3.Error, UnicodeDecodeError) as exc:
            failure = self._failure(exc, "open")
        else:
            if application_id != APPLICATION_ID:
                raise self._error(
                    "is an SQLite database of another program (its application_id is not "
                    "aiomasto's)",
                    " (choose another path for the token store)",
                )
            if version > SCHEMA_VERSION:
                raise self._newer(f"schema version {version}", SCHEMA_VERSION)
            if version < 1:
                raise self._error("is corrupt: aiomasto's schema version is missing")
            return True
        raise failure

    def _initialize(self, connection: sqlite3.Connection) -> None:
        """Turn an empty database into aiomasto's, once among every process that tries at once."""
        mode = connection.execute("PRAGMA journal_mode = WAL").fetchone()
        if mode is None or str(mode[0]).lower() != "wal":
            _log.warning(
                "token store database %s cannot use WAL journaling here (it uses %s); "
                "readers will wait for writers",
                self._path,
                mode[0] if mode else "?",
            )
        connection.execute("BEGIN IMMEDIATE")
        try:
            if _identify(connection) == (0, 0, 0):  # nobody was quicker
                for statement in _SCHEMA:
                    connection.execute(statement)
            connection.execute("COMMIT")
        except BaseException:
            if connection.in_transaction:
                connection.execute("ROLLBACK")
            raise
        _log.info("created token store database %s", self._path)

    def _create(self, target: Path) -> None:
        """Create the file empty and private, unless it exists (another process may be quicker).

        Made under a temporary name and linked into place with its descriptor closed: closing
        a descriptor of a database that a connection of this process has opened (in another
        thread, as soon as the file is there) would drop that connection's locks on it.
        """
        if target.exists():
            return
        try:
            _make_private_directories(target.parent)
            fd, temporary = tempfile.mkstemp(
                dir=target.parent, prefix=f".{target.name}.", suffix=".tmp"
            )
        except OSError as exc:
            raise self._error(f"cannot be created ({_reason(exc)})", "") from None
        try:
            # Only the umask stands between mkstemp's mode and a promise; SQLite gives the
            # -wal and -shm files the mode of the database.
            try:
                os.fchmod(fd, _FILE_MODE)
            finally:
                os.close(fd)
            with contextlib.suppress(FileExistsError):
                os.link(temporary, target)
        except OSError as exc:
            reason = _reason(exc)
        else:
            return
        finally:
            with contextlib.suppress(OSError):
                os.unlink(temporary)
        raise self._error(f"cannot be created ({reason})", "")

    def _looks_like_json(self, target: Path) -> bool:
        """Whether the file starts like JSON: a JsonFileTokenStore's file, maybe.

        Only once SQLite has refused the file: closing a descriptor of a database would drop
        the locks this process's SQLite connections hold on it (POSIX locks are per process).
        """
        try:
            with open(target, "rb") as file:
                return file.read(1) == b"{"
        except OSError:
            return False

    def _keep_private(self, target: Path) -> None:
        """Take group and other permissions away from the database and SQLite's files."""
        for path in (target, Path(f"{target}-wal"), Path(f"{target}-shm")):
            with contextlib.suppress(FileNotFoundError):
                keep_private(path, shown=path, target=path)

    def _target(self) -> Path:
        """The database file: the store's path, or the file its symlinks lead to."""
        path = Path(os.path.abspath(self._path))
        if os.path.lexists(path) and not os.path.exists(path):
            raise self._error(
                "is a symlink that leads nowhere; refusing to create a database there",
                " (create the target, or fix or remove the link)",
            )
        return Path(os.path.realpath(path))

    def _decode(self, key: StoreKey, row: tuple[object, ...] | None) -> Credentials | None:
        if row is None:
            return None
        field = ""
        credentials: Credentials | None = None
        try:
            data = json.loads(row[0]) if type(row[0]) is str else None
        except (json.JSONDecodeError, RecursionError):
            data = None
        if type(data) is dict:
            try:
                credentials = decode(Credentials, data)
            except DecodeError as exc:
                # Only the field's path: the decoder's message may quote the value.
                field = f".{exc.field}" if exc.field else ""
        # Error reporters print the locals of a traceback's frames: the record goes first.
        del row, data
        if credentials is None:
            raise self._error(f"is corrupt: the record for {key} has unreadable credentials{field}")
        if credentials.version > FORMAT_VERSION:
            raise self._newer(f"record format version {credentials.version}", FORMAT_VERSION)
        return credentials

    def _key(self, row: tuple[object, ...]) -> StoreKey:
        instance, app, account = row
        if type(instance) is not str or type(app) is not str:
            raise self._error("is corrupt: a record's instance or app is not text")
        if account is not None and type(account) is not str:
            raise self._error("is corrupt: a record's account is not text")
        return StoreKey(instance=instance, app=app, account=account)

    def _failure(self, exc: Exception, action: str) -> Exception:
        """The error to raise for ``exc``: :class:`_Busy` (to try again) or a TokenStoreError.

        SQLite's messages may quote the file (a damaged schema's text), so only its error
        code is told, and the message only of a statement's error about aiomasto's own table.
        """
        if isinstance(exc, UnicodeDecodeError):  # the sqlite3 module decoding damaged text
            return self._error("is corrupt (SQLite returned text that is not UTF-8)")
        name = getattr(exc, "sqlite_errorname", "") or type(exc).__name__
        if name.startswith(("SQLITE_BUSY", "SQLITE_LOCKED")):
            return _Busy(action, name)
        return self._error(self._problem(name, str(exc), action))

    def _problem(self, name: str, message: str, action: str) -> str:
        if name == "SQLITE_NOTADB":
            if self._looks_like_json(self._target()):
                return "is not an SQLite database (it looks like JSON: a JsonFileTokenStore file?)"
            return "is not an SQLite database"
        if name.startswith("SQLITE_CORRUPT") or message.startswith("malformed"):
            return "is corrupt (SQLite reports a damaged database image)"
        if name == "SQLITE_ERROR" and "aiomasto_credentials" in message and message.isascii():
            return f"cannot be {_DONE[action]} ({message})"
        primary = name.removeprefix("SQLITE_").split("_")[0]
        return f"cannot be {_DONE[action]} ({_CAUSES.get(primary, name)})"

    def _newer(self, what: str, supported: int) -> TokenStoreError:
        return self._error(
            f"was written by a newer aiomasto ({what}; this one reads up to {supported})",
            " (upgrade aiomasto to use it)",
        )

    def _error(self, problem: str, advice: str = " (fix or remove it)") -> TokenStoreError:
        return TokenStoreError(
            f"token store database {self._path} {problem}; it was left untouched{advice}",
            path=str(self._path),
        )


class _Busy(Exception):
    """The database was locked by others; the operation may be tried again."""

    def __init__(self, action: str, code: str) -> None:
        super().__init__(code)
        self.action = action
        self.code = code


class _KeyLock:
    """The tasks of one store object waiting for one key: one of them waits for the file."""

    def __init__(self) -> None:
        self.lock = asyncio.Lock()
        self.users = 0


def _identify(connection: sqlite3.Connection) -> tuple[int, int, int]:
    """The database's application id, user version and number of schema objects.

    One statement, so one snapshot: another process may be creating the tables meanwhile.
    """
    row = connection.execute(_IDENTIFY).fetchone()
    application_id, version, objects = row if row is not None else (0, 0, 0)
    return int(application_id), int(version), int(objects)


def _encode(credentials: Credentials) -> str:
    return json.dumps(
        converter.unstructure(credentials, Credentials), ensure_ascii=False, sort_keys=True
    )


def _identity(target: Path, key: StoreKey) -> tuple[str, tuple[str, StoreKey]]:
    return _KIND, (str(target), key)


def _lock_file(target: Path, key: StoreKey) -> Path:
    """``key``'s lock file: named by a digest, so that no name or account shows on disk."""
    digest = hashlib.sha256(json.dumps([key.instance, key.app, key.account]).encode()).hexdigest()
    return target.parent / f"{target.name}-locks" / f"{digest[:40]}.lock"


def _same_file(fd: int, path: Path) -> bool:
    try:
        at_path = os.stat(path, follow_symlinks=False)
    except FileNotFoundError:
        return False
    held = os.fstat(fd)
    return (at_path.st_dev, at_path.st_ino) == (held.st_dev, held.st_ino)


def _release(fd: int | None, path: Path) -> None:
    """Leave a key's section: remove its lock file (waiters then take a new one) and unlock."""
    if fd is None:
        return
    with contextlib.suppress(OSError):
        os.unlink(path)
    os.close(fd)
