"""A TokenStore that keeps every record in one JSON file, replaced atomically on each change."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

from aiomasto._converter import converter, decode
from aiomasto.errors import DecodeError, TokenStoreError

from ._base import FORMAT_VERSION, Credentials, StoreKey

__all__ = ["JsonFileTokenStore"]

_FORMAT = "aiomasto-credentials"
_FILE_MODE = 0o600
_DIRECTORY_MODE = 0o700

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
    (mode 0600) temporary file in the same directory, is flushed to disk, and is renamed over
    the old file, so a crash leaves either the old file or the new one, never half of either.
    Missing parent directories are created with mode 0700.

    A file that cannot be read or understood raises :class:`~aiomasto.TokenStoreError` from
    every method and is never overwritten. Processes sharing the file take turns through a lock
    on its directory (POSIX only), so none loses another's change.

    Example::

        store = JsonFileTokenStore("~/.config/relmap/credentials.json")
        key = StoreKey(instance="https://mastodon.example", app="Relationship Mapper")
        await store.save(key, Credentials(app=app, token=token))
        credentials = await store.load(key)   # also after a restart
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self._path = Path(os.path.expanduser(os.fspath(path)))
        # The asyncio lock queues this store's writers without tying up executor threads; the
        # thread lock keeps a write whose task was cancelled (its thread runs on) from
        # interleaving with the next one.
        self._lock = asyncio.Lock()
        self._thread_lock = threading.Lock()

    @property
    def path(self) -> Path:
        """The file, with ``~`` expanded."""
        return self._path

    def __repr__(self) -> str:
        return f"JsonFileTokenStore({str(self._path)!r})"

    async def load(self, key: StoreKey) -> Credentials | None:
        """The record stored under ``key``, or ``None`` (also when the file does not exist)."""
        records = await asyncio.to_thread(self._read)
        return records.get(key)

    async def save(self, key: StoreKey, credentials: Credentials) -> None:
        """Store ``credentials`` under ``key``, replacing what was there."""
        async with self._lock:
            await asyncio.to_thread(self._update, key, credentials)

    async def delete(self, key: StoreKey) -> None:
        """Remove the record under ``key``; no error if there is none."""
        async with self._lock:
            await asyncio.to_thread(self._update, key, None)

    def _update(self, key: StoreKey, credentials: Credentials | None) -> None:
        with self._thread_lock, self._other_processes_wait(create=credentials is not None):
            records = self._read()
            if credentials is not None:
                records[key] = credentials
            elif records.pop(key, None) is None:
                return
            try:
                _write_atomically(Path(os.path.realpath(self._path)), _dump(records))
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
    def _other_processes_wait(self, *, create: bool) -> Iterator[None]:
        """Hold an exclusive lock on the file's directory while reading, changing, replacing.

        Processes sharing the file (a bot and its admin script, web workers) take turns, so
        none loses another's change. The directory is locked, not the file, because the file
        is replaced on every write. Where ``fcntl`` is missing (Windows) only this process's
        tasks take turns.
        """
        directory = Path(os.path.realpath(self._path)).parent
        if fcntl is None or (not create and not directory.is_dir()):
            yield
            return
        try:
            _make_private_directories(directory)
            fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
        except OSError as exc:
            raise TokenStoreError(
                f"cannot write token store file {self._path} ({_reason(exc)}); "
                "the previous file was left untouched",
                path=str(self._path),
            ) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # releases the lock

    def _read(self) -> dict[StoreKey, Credentials]:
        try:
            raw = self._path.read_bytes()
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
