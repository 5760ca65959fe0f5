"""A TokenStore that keeps every record in one JSON file, replaced atomically on each change."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import os
import re
import stat
import tempfile
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

from aiomasto._converter import converter, decode
from aiomasto.errors import DecodeError, TokenStoreError

from ._base import FORMAT_VERSION, Credentials, StoreKey
from ._locking import Hold, active_hold, finish_in_thread, holding, holds_of_kind

__all__ = ["JsonFileTokenStore"]

_FORMAT = "aiomasto-credentials"
_FILE_MODE = 0o600
_DIRECTORY_MODE = 0o700
_KIND = "jsonfile"

_log = logging.getLogger(__name__)


class JsonFileTokenStore:
    """Keeps every record in one JSON file that a person can read (and, carefully, edit).

    ``path`` may start with ``~``. The file is::

        {
          "format": "aiomasto-credentials",
          "version": 1,
          "records": [
            {"instance": "https://mastodon.example", "app": "Relationship Mapper",
             "account": null, "credentials": {"app": {...}, "token": {...}, "version": 1}}
          ]
        }

    with records sorted by instance, app and account. Every change re-reads the file (another
    process may have written it) and replaces it atomically: the new content goes to a private
    (mode 0600) temporary file in the same directory (``.<name>.<8 random characters>.tmp``),
    is flushed to disk, and is renamed over the old file, so a crash leaves either the old file
    or the new one, never half of either. Temporary files that a killed process left behind are
    removed by the next change, and by a load that finds the directory unlocked. Missing
    parent directories are created with mode 0700.

    A file that other users may read or write (mode 0644, 0640, ...) is made private (0600)
    when it is read, with a warning; if this process cannot (it is not the owner), it warns and
    reads on. ``path`` may be a symlink to an existing file (into a secrets directory, say):
    the file it leads to is read and replaced, and the link stays. A symlink that leads
    nowhere, at ``path`` or at a directory on the way, is refused with
    :class:`~aiomasto.TokenStoreError` rather than creating a file where it points.

    A file that cannot be read or understood raises :class:`~aiomasto.TokenStoreError` from
    every method and is never overwritten. Processes sharing the file take turns through a lock
    on its directory (POSIX only), so none loses another's change; ``lock(key)`` holds that lock
    for a whole section (see :class:`~aiomasto.stores.TokenStore`).

    Example::

        store = JsonFileTokenStore("~/.config/relmap/credentials.json")
        key = StoreKey(instance="https://mastodon.example", app="Relationship Mapper")
        await store.save(key, Credentials(app=app, token=token))
        credentials = await store.load(key)   # also after a restart
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self._path = Path(os.path.expanduser(os.fspath(path)))
        # The asyncio lock queues this store's writers and lockers without tying up threads;
        # the thread lock keeps a write whose task was cancelled (its thread runs on) from
        # interleaving with the next one where there is no directory lock.
        self._lock = asyncio.Lock()
        self._thread_lock = threading.Lock()
        # A wait for the directory lock whose task was cancelled, for the next locker to take.
        self._pending: _LockRequest | None = None

    @property
    def path(self) -> Path:
        """The file, with ``~`` expanded."""
        return self._path

    def __repr__(self) -> str:
        return f"JsonFileTokenStore({str(self._path)!r})"

    async def load(self, key: StoreKey) -> Credentials | None:
        """The record stored under ``key``, or ``None`` (also when the file does not exist)."""
        records = await asyncio.to_thread(self._load)
        return records.get(key)

    async def keys(self) -> list[StoreKey]:
        """Every key with a record, in the file's order (instance, app, account)."""
        return list(await asyncio.to_thread(self._load))

    async def save(self, key: StoreKey, credentials: Credentials) -> None:
        """Store ``credentials`` under ``key``, replacing what was there."""
        await self._change(key, credentials)

    async def delete(self, key: StoreKey) -> None:
        """Remove the record under ``key``; no error if there is none."""
        await self._change(key, None)

    def lock(self, key: StoreKey) -> contextlib.AbstractAsyncContextManager[None]:
        """A section that runs alone among every process and task using this file.

        The whole file is locked (its directory's lock, shared with every change), not only
        ``key``: keep the section short. Inside it, this task's (and its child tasks') calls on
        any store of this file go through without waiting. A task cancelled while it waits
        leaves at once, and the lock it was waiting for goes to the next waiter or is released.
        On platforms without ``fcntl`` (Windows) it excludes only this store's tasks.

        Example::

            async with store.lock(key):
                if await store.load(key) is None:
                    await store.save(key, await obtain_credentials())
        """
        return self._section()

    async def _change(self, key: StoreKey, credentials: Credentials | None) -> None:
        if holds_of_kind(_KIND):
            # Maybe inside a section on this file (the thread finds out): its lock is already
            # held, and a write must not outlive the section, even when cancelled.
            await finish_in_thread(self._update, key, credentials)
            return
        async with self._lock:
            await asyncio.to_thread(self._update, key, credentials)

    @contextlib.asynccontextmanager
    async def _section(self) -> AsyncIterator[None]:
        if holds_of_kind(_KIND):
            directory = await asyncio.to_thread(self._directory)
            if active_hold(_identity(directory)) is not None:
                yield
                return
        async with self._lock:
            fd, directory = await self._lock_directory()
            hold = Hold(_identity(directory))
            try:
                with holding(hold):
                    yield
            finally:
                hold.end(functools.partial(_unlock, fd))

    async def _lock_directory(self) -> tuple[int | None, str]:
        """Wait for the directory lock in a thread, leaving at once when cancelled."""
        request = self._pending
        if request is None or not request.adopt():
            request = self._pending = _LockRequest(self._wait_for_lock)
        try:
            await asyncio.shield(request.future)
        except asyncio.CancelledError:
            request.abandon()
            raise
        finally:
            if request.future.done() and self._pending is request:
                self._pending = None
        return request.take()

    def _wait_for_lock(self) -> tuple[int | None, str]:
        directory = self._target().parent
        if fcntl is None:
            return None, str(directory)
        fd = self._open_directory(directory, f"cannot lock token store file {self._path}")
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
        except BaseException:
            os.close(fd)
            raise
        return fd, str(directory)

    def _directory(self) -> str:
        return str(self._target().parent)

    def _load(self) -> dict[StoreKey, Credentials]:
        target = self._target()
        records = self._read(target)
        self._clean_up_if_unlocked(target)
        return records

    def _update(self, key: StoreKey, credentials: Credentials | None) -> None:
        target = self._target()
        hold = active_hold(_identity(str(target.parent)))
        if hold is not None:
            with hold.mutex:
                if hold.active:
                    self._change_file(target, key, credentials, locked=fcntl is not None)
                    return
        create = credentials is not None
        with self._thread_lock, self._other_processes_wait(target.parent, create=create) as locked:
            self._change_file(target, key, credentials, locked=locked)

    def _change_file(
        self, target: Path, key: StoreKey, credentials: Credentials | None, *, locked: bool
    ) -> None:
        """Read, change and replace the file; ``locked`` when this holds the directory lock."""
        if locked:
            self._remove_leftovers(target)
        records = self._read(target)
        if credentials is not None:
            records[key] = credentials
        elif records.pop(key, None) is None:
            return
        try:
            _write_atomically(target, _dump(records))
        except OSError as exc:
            reason = _reason(exc)
        else:
            _log.debug(
                "%s %s in %s", "deleted" if credentials is None else "saved", key, self._path
            )
            return
        # Not chained: the OSError's traceback holds the frame whose locals hold the new
        # file's content, and error reporters print those.
        raise TokenStoreError(
            f"cannot write token store file {self._path} ({reason}); "
            "the previous file was left untouched",
            path=str(self._path),
        )

    @contextlib.contextmanager
    def _other_processes_wait(self, directory: Path, *, create: bool) -> Iterator[bool]:
        """Hold an exclusive lock on the file's directory while reading, changing, replacing.

        Processes sharing the file (a bot and its admin script, web workers) take turns, so
        none loses another's change. The directory is locked, not the file, because the file
        is replaced on every write. Where ``fcntl`` is missing (Windows) only this process's
        tasks take turns. Yields whether the lock is held.
        """
        if fcntl is None or (not create and not directory.is_dir()):
            yield False
            return
        fd = self._open_directory(
            directory,
            f"cannot write token store file {self._path}",
            "; the previous file was left untouched",
        )
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield True
        finally:
            os.close(fd)  # releases the lock

    def _open_directory(self, directory: Path, problem: str, consequence: str = "") -> int:
        try:
            _make_private_directories(directory)
            return os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
        except OSError as exc:
            raise TokenStoreError(
                f"{problem} ({_reason(exc)}){consequence}", path=str(self._path)
            ) from None

    def _target(self) -> Path:
        """The file to read and replace: the store's path, or the file its symlinks lead to.

        A symlink that leads nowhere (at the path, or at a directory on the way) is refused:
        a save would create the file wherever it points (a typo, an unmounted volume), not
        where its owner looks for it.
        """
        path = Path(os.path.abspath(self._path))
        candidate = path
        while True:
            try:
                info = os.lstat(candidate)
            except FileNotFoundError:
                if candidate.parent == candidate:
                    break
                candidate = candidate.parent  # created later, unless a link above leads nowhere
                continue
            except OSError:
                break  # reading or writing the file says what is wrong
            if stat.S_ISLNK(info.st_mode):
                self._check_link(candidate, is_path=candidate == path)
            break
        return Path(os.path.realpath(self._path))

    def _check_link(self, link: Path, *, is_path: bool) -> None:
        try:
            os.stat(link)
        except FileNotFoundError:
            pass
        except OSError as exc:
            raise TokenStoreError(
                f"token store file {self._path} cannot be reached through the symlink {link} "
                f"({_reason(exc)}); nothing was read or written",
                path=str(self._path),
            ) from None
        else:
            return
        try:
            points_to = os.readlink(link)
        except OSError:
            points_to = "?"
        where = "is a symlink" if is_path else f"lies behind the symlink {link}"
        raise TokenStoreError(
            f"token store file {self._path} {where} to {points_to}, which does not exist; "
            "refusing to create a file there (create the target, or fix or remove the link)",
            path=str(self._path),
        )

    def _read(self, target: Path) -> dict[StoreKey, Credentials]:
        try:
            with open(target, "rb") as file:
                self._keep_private(file.fileno(), target)
                raw = file.read()
        except FileNotFoundError:
            return {}
        except OSError as exc:
            raise TokenStoreError(
                f"token store file {self._path} cannot be read ({_reason(exc)}); "
                "it was left untouched",
                path=str(self._path),
            ) from exc
        try:
            return _parse(raw)
        except _Unreadable as exc:
            problem, advice = str(exc), exc.advice
        # The parser's exceptions carry the file's text, secrets included, so none may stay
        # attached as a cause or context; and error reporters print the locals of a
        # traceback's frames, so the raw bytes go too.
        del raw
        raise TokenStoreError(
            f"token store file {self._path} {problem}; it was left untouched{advice}",
            path=str(self._path),
        )

    def _keep_private(self, fd: int, target: Path) -> None:
        """Take away group and other permissions from the open file, saying so."""
        keep_private(fd, shown=self._path, target=target)

    def _clean_up_if_unlocked(self, target: Path) -> None:
        """Remove leftover temporary files if nobody is writing now; else the next save does."""
        if fcntl is None or not _leftovers(target):
            return
        hold = active_hold(_identity(str(target.parent)))
        if hold is not None:
            with hold.mutex:
                if hold.active:
                    self._remove_leftovers(target)
                    return
        try:
            fd = os.open(target.parent, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
        except OSError:
            return
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                return  # a writer holds the lock: one of the files may be its own
            self._remove_leftovers(target)
        finally:
            os.close(fd)

    def _remove_leftovers(self, target: Path) -> None:
        """Remove this file's temporary files; only with the directory lock held.

        Every writer holds the lock from creating its temporary file to renaming it, so under
        the lock any such file is left over from a writer that was killed.
        """
        removed: list[str] = []
        for leftover in _leftovers(target):
            try:
                os.unlink(leftover)
            except FileNotFoundError:
                continue
            except OSError as exc:
                _log.warning(
                    "cannot remove %s, left by an interrupted save of token store file %s "
                    "(%s); it may hold a token",
                    leftover,
                    self._path,
                    _reason(exc),
                )
                continue
            removed.append(leftover.name)
        if removed:
            _log.info(
                "removed %d temporary file(s) left by interrupted saves of token store file %s: %s",
                len(removed),
                self._path,
                ", ".join(removed),
            )


class _LockRequest:
    """One wait for a directory lock, in a thread of its own.

    Its own thread, not the default executor: a wait can last as long as another process's
    section, and must neither starve other ``to_thread`` users nor hold up interpreter exit.
    When the task that started it is cancelled, the wait goes on for the next task that wants
    the lock (at most one thread waits per store); if none wants it when it is granted, the
    thread releases it at once.
    """

    def __init__(self, wait: Callable[[], tuple[int | None, str]]) -> None:
        self._loop = asyncio.get_running_loop()
        self.future: asyncio.Future[None] = self._loop.create_future()
        self._mutex = threading.Lock()
        self._wanted = True
        self._finished = False
        self._result: tuple[int | None, str] | None = None
        threading.Thread(
            target=self._run, args=(wait,), name="aiomasto-store-lock", daemon=True
        ).start()

    def _run(self, wait: Callable[[], tuple[int | None, str]]) -> None:
        error: BaseException | None = None
        result: tuple[int | None, str] | None = None
        try:
            result = wait()
        except BaseException as exc:  # handed to the waiting task
            error = exc
        with self._mutex:
            self._finished = True
            if self._wanted:
                self._result, result = result, None
        if result is not None:
            _unlock(result[0])  # granted after every waiter was cancelled
        with contextlib.suppress(RuntimeError):  # the loop is closed: nobody waits any more
            self._loop.call_soon_threadsafe(self._deliver, error)

    def _deliver(self, error: BaseException | None) -> None:
        if self.future.done():
            return
        if error is None:
            self.future.set_result(None)
        else:
            self.future.set_exception(error)

    def adopt(self) -> bool:
        """Take over a wait still in progress; ``False`` if it is over (or of another loop)."""
        if self._loop is not asyncio.get_running_loop():
            return False  # its thread releases the lock by itself: nobody there wants it
        with self._mutex:
            if self._finished:
                return False
            self._wanted = True
            return True

    def abandon(self) -> None:
        """The waiting task was cancelled: release the lock if granted, or when it is."""
        with self._mutex:
            self._wanted = False
            result, self._result = self._result, None
        if result is not None:
            _unlock(result[0])

    def take(self) -> tuple[int | None, str]:
        with self._mutex:
            result, self._result = self._result, None
        if result is None:  # pragma: no cover - the future completes only once the thread is done
            raise RuntimeError("the directory lock was granted to no one")
        return result


def _identity(directory: str) -> tuple[str, str]:
    return _KIND, directory


def _unlock(fd: int | None) -> None:
    if fd is not None:
        os.close(fd)  # releases the lock


def _leftovers(target: Path) -> list[Path]:
    """The temporary files of ``target`` (as ``tempfile.mkstemp`` names them) in its directory.

    Only this file's: ``.<its name>.<8 characters of mkstemp's alphabet>.tmp``, regular
    files only, so another store's or program's files in the directory are never touched.
    """
    pattern = re.compile(rf"\.{re.escape(target.name)}\.[a-z0-9_]{{8}}\.tmp")
    try:
        with os.scandir(target.parent) as entries:
            return [
                Path(entry.path)
                for entry in entries
                if pattern.fullmatch(entry.name) and entry.is_file(follow_symlinks=False)
            ]
    except OSError:
        return []


class _Unreadable(Exception):
    """Why a file's content cannot be used; never quotes the content."""

    def __init__(self, problem: str, advice: str) -> None:
        super().__init__(problem)
        self.advice = advice


def _corrupt(problem: str) -> _Unreadable:
    return _Unreadable(f"is corrupt: {problem}", " (fix or remove it)")


def _newer(version: int) -> _Unreadable:
    return _Unreadable(
        f"was written by a newer aiomasto (format version {version}; "
        f"this one reads up to {FORMAT_VERSION})",
        " (upgrade aiomasto to use it)",
    )


def _parse(raw: bytes) -> dict[StoreKey, Credentials]:
    try:
        document = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise _corrupt("it is not UTF-8 text") from None
    except json.JSONDecodeError as exc:
        raise _corrupt(
            f"it is not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno})"
        ) from None
    except RecursionError:
        raise _corrupt("it is not valid JSON (nested too deeply)") from None
    if type(document) is not dict:
        raise _corrupt("the top level is not a JSON object")
    if document.get("format") != _FORMAT:
        raise _corrupt(f'"format" is missing or not "{_FORMAT}"')
    version = document.get("version")
    if type(version) is not int or version < 1:
        raise _corrupt('"version" is missing or not a positive integer')
    if version > FORMAT_VERSION:
        raise _newer(version)
    entries = document.get("records")
    if type(entries) is not list:
        raise _corrupt('"records" is missing or not an array')
    records: dict[StoreKey, Credentials] = {}
    for index, entry in enumerate(entries):
        key, credentials = _parse_record(f"records[{index}]", entry)
        if key in records:
            raise _corrupt(f"records[{index}] repeats the key of an earlier record")
        records[key] = credentials
    return records


def _parse_record(where: str, entry: Any) -> tuple[StoreKey, Credentials]:
    if type(entry) is not dict:
        raise _corrupt(f"{where} is not a JSON object")
    instance, app, account = entry.get("instance"), entry.get("app"), entry.get("account")
    if type(instance) is not str:
        raise _corrupt(f'{where}."instance" is missing or not a string')
    if type(app) is not str:
        raise _corrupt(f'{where}."app" is missing or not a string')
    if account is not None and type(account) is not str:
        raise _corrupt(f'{where}."account" is not a string or null')
    try:
        credentials = decode(Credentials, entry.get("credentials"))
    except DecodeError as exc:
        # Only the field's path: the decoder's message may quote the value, maybe a secret.
        field = f".{exc.field}" if exc.field else ""
        raise _corrupt(f"{where}.credentials{field} is missing or invalid") from None
    if credentials.version > FORMAT_VERSION:
        raise _newer(credentials.version)
    return StoreKey(instance=instance, app=app, account=account), credentials


def _dump(records: dict[StoreKey, Credentials]) -> bytes:
    def order(key: StoreKey) -> tuple[str, str, bool, str]:
        return key.instance, key.app, key.account is not None, key.account or ""

    document = {
        "format": _FORMAT,
        "version": FORMAT_VERSION,
        "records": [
            {
                "instance": key.instance,
                "app": key.app,
                "account": key.account,
                "credentials": converter.unstructure(records[key], Credentials),
            }
            for key in sorted(records, key=order)
        ],
    }
    return (json.dumps(document, indent=2, ensure_ascii=False) + "\n").encode("utf-8")


def _write_atomically(target: Path, data: bytes) -> None:
    """Replace ``target`` with ``data`` so that readers and crashes see all or nothing."""
    _make_private_directories(target.parent)
    fd, temporary = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as file:
            # mkstemp already uses 0600, but only the umask stands between that and a promise.
            os.fchmod(file.fileno(), _FILE_MODE)
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise
    _fsync_directory(target.parent)


def keep_private(file: int | Path, *, shown: Path, target: Path) -> None:
    """Take group and other permissions away from ``file`` (a descriptor or a path), saying so.

    A file that cannot be changed (another owner's) is still used, with a WARNING saying how
    to fix it; nothing of its content is ever logged.
    """
    mode = stat.S_IMODE(os.stat(file).st_mode)
    if not mode & 0o077:
        return
    private = mode & 0o700
    try:
        if isinstance(file, int):
            os.fchmod(file, private)
        else:
            os.chmod(file, private)
    except OSError as exc:
        _log.warning(
            "token store file %s is open to other users (mode %04o) and cannot be made "
            "private (%s); its owner should run: chmod 600 %s",
            shown,
            mode,
            _reason(exc),
            target,
        )
        return
    _log.warning(
        "token store file %s was open to other users (mode %04o); made it private (%04o)",
        shown,
        mode,
        private,
    )


def _make_private_directories(directory: Path) -> None:
    # Path.mkdir(parents=True) gives intermediate directories the default mode, not 0700.
    missing: list[Path] = []
    while not directory.exists() and directory != directory.parent:
        missing.append(directory)
        directory = directory.parent
    for path in reversed(missing):
        with contextlib.suppress(FileExistsError):  # another process was quicker
            path.mkdir(mode=_DIRECTORY_MODE)


def _fsync_directory(directory: Path) -> None:
    # Makes the rename itself survive a power loss. The new file is already in place, so a
    # platform that cannot open or sync a directory (Windows, some network file systems) does
    # not turn a completed save into a failed one.
    try:
        fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError as exc:
        _log.debug("cannot open %s to sync it: %s", directory, _reason(exc))
        return
    try:
        os.fsync(fd)
    except OSError as exc:
        _log.debug("cannot sync directory %s: %s", directory, _reason(exc))
    finally:
        os.close(fd)


def _reason(exc: OSError) -> str:
    return exc.strerror or type(exc).__name__
