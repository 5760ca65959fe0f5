"""The crawl's default sink: one SQLite file holds the plan, the progress and the results."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import functools
import json
import logging
import os
import sqlite3
import threading
import urllib.parse
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from operator import attrgetter
from pathlib import Path
from typing import Any, TypeVar, cast

from attrs import field, frozen

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

from aiomasto.errors import ConfigurationError, CrawlSinkError, UsageError
from aiomasto.stores.sqlite import APPLICATION_ID as _TOKEN_STORE_ID

from ._model import (
    AccountRecord,
    CrawlPlan,
    Edge,
    InstanceRecord,
    ListResult,
    PageCommit,
    ResumeState,
    Unit,
    UnitKey,
)
from ._plans import decode_plan, encode_plan, plan_differences

__all__ = ["APPLICATION_ID", "SCHEMA_VERSION", "CrawlStats", "SqliteCrawlSink"]

_T = TypeVar("_T")

APPLICATION_ID = int.from_bytes(b"aMcr", "big")
"""``PRAGMA application_id`` of a crawl database: the bytes ``aMcr`` (0x614d6372)."""
SCHEMA_VERSION = 1
"""``PRAGMA user_version`` of the tables this aiomasto writes; a newer one is refused."""

_FILE_MODE = 0o600
_DIRECTORY_MODE = 0o700
_BATCH = 2000  # rows a reader fetches per trip to its thread

# Every AccountRecord field in its order, then updated_at.
_ACCOUNT_FIELDS = (
    'key, acct, uri, url, display_name, note, avatar, bot, locked, "group", created_at, '
    "followers_count, following_count, statuses_count, suspended, moved_to, seen_on, updated_at"
)
_UNIT_COLUMNS = (
    "account, relation, target, depth, cursor, api_base, account_id, found, pages, skipped"
)

_SCHEMA = (
    """
    CREATE TABLE crawl (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        plan TEXT NOT NULL,
        created_at TEXT NOT NULL
    )
    """,
    """
    CREATE TABLE units (
        seq INTEGER PRIMARY KEY,
        account TEXT NOT NULL,
        relation TEXT NOT NULL,
        target TEXT NOT NULL,
        depth INTEGER NOT NULL,
        cursor TEXT,
        api_base TEXT,
        account_id TEXT,
        found INTEGER NOT NULL DEFAULT 0,
        pages INTEGER NOT NULL DEFAULT 0,
        skipped INTEGER NOT NULL DEFAULT 0,
        status TEXT NOT NULL DEFAULT 'pending',
        outcome TEXT,
        claimed INTEGER,
        detail TEXT,
        moved_to TEXT,
        finished_at TEXT,
        UNIQUE (account, relation)
    )
    """,
    # What claim() reads: the pending units, shallowest first, then in the order they came.
    "CREATE INDEX units_pending ON units (depth, seq) WHERE status = 'pending'",
    """
    CREATE TABLE accounts (
        key TEXT PRIMARY KEY,
        acct TEXT NOT NULL,
        uri TEXT,
        url TEXT,
        display_name TEXT NOT NULL,
        note TEXT NOT NULL,
        avatar TEXT NOT NULL,
        bot INTEGER NOT NULL,
        locked INTEGER NOT NULL,
        "group" INTEGER NOT NULL,
        created_at TEXT,
        followers_count INTEGER NOT NULL,
        following_count INTEGER NOT NULL,
        statuses_count INTEGER NOT NULL,
        suspended INTEGER NOT NULL,
        moved_to TEXT,
        seen_on TEXT NOT NULL,
        updated_at TEXT NOT NULL
    )
    """,
    # The key is the whole row, so the primary key's b-tree is the table (no rowid, no second
    # index): an edge costs its two keys once. ``unit`` is the units.seq that first saw it.
    # Followed first: a page of followers (one followed, many followers) lands on a few
    # neighbouring b-tree pages, not on one page per edge (a followers page of a 200,000-edge
    # crawl committed in a third of the time).
    """
    CREATE TABLE edges (
        follower TEXT NOT NULL,
        followed TEXT NOT NULL,
        unit INTEGER,
        PRIMARY KEY (followed, follower)
    ) WITHOUT ROWID
    """,
    """
    CREATE TABLE instances (
        api_base TEXT PRIMARY KEY,
        domain TEXT,
        software TEXT,
        version TEXT,
        quirks TEXT NOT NULL,
        auth TEXT NOT NULL,
        status TEXT NOT NULL,
        detail TEXT NOT NULL,
        updated_at TEXT
    )
    """,
    f"PRAGMA application_id = {APPLICATION_ID}",
    f"PRAGMA user_version = {SCHEMA_VERSION}",
)

_IDENTIFY = (
    "SELECT (SELECT application_id FROM pragma_application_id), "
    "(SELECT user_version FROM pragma_user_version), (SELECT count(*) FROM sqlite_master)"
)
_ACCOUNT_VALUES = (
    'acct, uri, url, display_name, note, avatar, bot, locked, "group", created_at, '
    "followers_count, following_count, statuses_count, suspended, moved_to, seen_on"
)
# A snapshot equal to the stored one is not written again (nor is its updated_at moved): a
# page of accounts seen before costs lookups, not writes.
_UPSERT_ACCOUNT = (
    "INSERT INTO accounts ("  # noqa: S608 - column names, no data
    + _ACCOUNT_FIELDS
    + ") VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (key) DO UPDATE "
    "SET acct = excluded.acct, uri = excluded.uri, url = excluded.url, "
    "display_name = excluded.display_name, note = excluded.note, avatar = excluded.avatar, "
    'bot = excluded.bot, locked = excluded.locked, "group" = excluded."group", '
    "created_at = excluded.created_at, followers_count = excluded.followers_count, "
    "following_count = excluded.following_count, statuses_count = excluded.statuses_count, "
    "suspended = excluded.suspended, moved_to = excluded.moved_to, seen_on = excluded.seen_on, "
    "updated_at = excluded.updated_at WHERE ("
    + _ACCOUNT_VALUES
    + ") IS NOT ("
    + ", ".join(f"excluded.{name.strip()}" for name in _ACCOUNT_VALUES.split(","))
    + ")"
)
# ON CONFLICT, not OR IGNORE: OR IGNORE would also skip a row with a missing key in silence.
_INSERT_EDGE = (
    "INSERT INTO edges (follower, followed, unit) VALUES (?, ?, ?) "
    "ON CONFLICT (followed, follower) DO NOTHING"
)
_INSERT_UNIT = (
    "INSERT INTO units (account, relation, target, depth, cursor, api_base, account_id, "
    "found, pages, skipped) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
    "ON CONFLICT (account, relation) DO NOTHING"
)
_FIND_UNIT = "SELECT seq, status FROM units WHERE account = ? AND relation = ?"
_PROGRESS = (
    "UPDATE units SET cursor = ?, api_base = coalesce(?, api_base), "
    "account_id = coalesce(?, account_id), found = found + ?, skipped = skipped + ?, "
    "pages = pages + 1 WHERE seq = ?"
)
# A result's ``found`` (``skipped``) wins when it is larger: an engine that counts items it did
# not store.
_FINISH = (
    "UPDATE units SET cursor = ?, api_base = coalesce(?, api_base), "
    "account_id = coalesce(?, account_id), found = max(found + ?, ?), "
    "skipped = max(skipped + ?, ?), pages = pages + 1, "
    "status = 'done', outcome = ?, claimed = ?, detail = ?, moved_to = ?, finished_at = ? "
    "WHERE seq = ?"
)
_PENDING = (
    "SELECT "  # noqa: S608 - column names, no data
    + _UNIT_COLUMNS
    + " FROM units WHERE status = 'pending' ORDER BY depth, seq"
)
_SAVE_INSTANCE = (
    "INSERT OR REPLACE INTO instances (api_base, domain, software, version, quirks, auth, "
    "status, detail, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
_INT64 = (-(2**63), 2**63 - 1)

# What an SQLite error code means, by its primary code (SQLITE_IOERR_SHORT_READ: IOERR).
_CAUSES = {
    "BUSY": "another process keeps it locked",
    "CANTOPEN": "SQLite cannot open it",
    "FULL": "the disk is full",
    "IOERR": "a disk I/O error",
    "LOCKED": "another process keeps it locked",
    "NOMEM": "out of memory",
    "PERM": "permission denied",
    "READONLY": "it is read-only",
}

_log = logging.getLogger(__name__)


@frozen(kw_only=True)
class CrawlStats:
    """What a crawl database holds: units by status and outcome, and the results' sizes.

    Example::

        stats = await SqliteCrawlSink("crawl.sqlite").stats()
        print(stats.done, "lists done,", stats.pending, "to go;", stats.edges, "edges")
        print(stats.outcomes)   # {"complete": 180, "hidden": 12, "gone": 3}
    """

    pending: int = 0
    done: int = 0
    outcomes: Mapping[str, int] = field(factory=dict)
    edges: int = 0
    accounts: int = 0
    instances: int = 0


class SqliteCrawlSink:
    """Keeps a crawl in one SQLite file: its plan, every list's progress and the results.

    The :class:`~aiomasto.crawl.CrawlSink` the engine uses by default, and the way to read a
    crawl afterwards. Each page is one transaction (its accounts, edges, the list's next
    cursor and the lists it discovered), so a crawl killed at any moment and resumed stores
    every edge once. The file is created private (0600, missing directories 0700), in WAL mode
    with ``synchronous=NORMAL``. Tables: ``crawl`` (the plan as JSON), ``units`` (one row per
    list: its cursor, counts, status and outcome), ``accounts`` (the latest profile per account
    key, with ``updated_at``), ``edges`` (``follower``, ``followed``, and the ``units.seq``
    that first saw it) and ``instances``. Nothing secret is stored.

    One crawler uses a file at a time: :meth:`open` takes a lock (a ``<name>-lock`` file
    beside it, freed by the system when the process dies) and raises
    :class:`~aiomasto.UsageError` if another crawler holds it. The results can be read (and
    exported) meanwhile, from this object or another: :meth:`edges`, :meth:`accounts`,
    :meth:`units`, :meth:`outcomes`, :meth:`instances` and :meth:`stats` need no
    :meth:`open`. All work is done off the event loop: the crawl's on one thread with one
    connection, each reader on a connection of its own. A call whose task is cancelled still
    finishes in its thread, all or nothing.

    A file that is not a crawl database (another program's, a token store's) or one from a
    newer aiomasto raises :class:`~aiomasto.ConfigurationError`; a damaged one, a full disk or
    an I/O error :class:`~aiomasto.CrawlSinkError`. Messages name the file, never its data.

    Example::

        sink = SqliteCrawlSink("crawl.sqlite")
        state = await sink.open(CrawlPlan(seeds=("@alice@example.social",)))
        ...                                      # the engine claims units and commits pages
        await sink.close()
        async for edge in sink.edges():          # streamed: constant memory
            print(edge.follower, "follows", edge.followed)
    """

    def __init__(self, path: str | os.PathLike[str], *, busy_timeout: float = 30.0) -> None:
        self._path = Path(os.path.expanduser(os.fspath(path)))
        self._busy_timeout = busy_timeout
        self._worker: concurrent.futures.ThreadPoolExecutor | None = None
        self._connection: sqlite3.Connection | None = None
        self._lock_fd: int | None = None
        self._closed = False
        # The units this object handed out and that are not finished yet.
        self._held: set[tuple[str, str]] = set()

    @property
    def path(self) -> Path:
        """The database file, with ``~`` expanded."""
        return self._path

    def __repr__(self) -> str:
        return f"SqliteCrawlSink({str(self._path)!r})"

    # The CrawlSink protocol

    async def open(self, plan: CrawlPlan | None) -> ResumeState:
        """Start a crawl (``plan``) or resume the stored one (``plan=None``, or the same plan).

        A new file stores the plan and no units (the engine adds its seeds with
        :meth:`add_units`). A stored crawl given a different plan raises
        :class:`~aiomasto.ConfigurationError` naming what differs; ``plan=None`` where no crawl
        is stored raises it too ("nothing to resume"). Every unfinished unit is claimable
        again: the units a killed crawler held come back here.
        """
        if self._worker is not None:
            raise UsageError(f"{self!r} is already open")
        worker = concurrent.futures.ThreadPoolExecutor(
            max_workers=1, thread_name_prefix="aiomasto-crawl-sqlite"
        )
        self._worker, self._closed = worker, False
        try:
            return await self._call(self._open, plan)
        except BaseException:
            # Also when this task was cancelled and the open goes on in the thread: the
            # connection and the lock it may still take are let go right after it.
            self._worker = None
            worker.submit(self._shut)
            await asyncio.to_thread(worker.shutdown)
            raise

    async def claim(self, limit: int) -> Sequence[Unit]:
        """Up to ``limit`` unfinished units that this sink has not handed out, shallowest first
        (then in the order they were added), each with its committed cursor and counts."""
        if limit < 1:
            raise ConfigurationError(f"claim(limit={limit!r}): the limit must be at least 1")
        return await self._call(self._claim, limit)

    async def outstanding(self) -> int:
        """Unfinished units this sink has not handed out (one crawler uses a file, so none
        is held elsewhere): 0 after an empty :meth:`claim`."""
        return await self._call(self._outstanding)

    async def add_units(self, units: Sequence[Unit]) -> Sequence[Unit]:
        """Add the units whose key is not stored yet, in one transaction; returns those added."""
        return await self._call(self._write, lambda: self._insert_units(units))

    async def save_instance(self, record: InstanceRecord) -> None:
        """Insert or replace what is known about the instance at ``record.api_base``."""
        await self._call(self._write, lambda: self._save_instance(record))

    async def save_accounts(self, records: Sequence[AccountRecord]) -> None:
        """Upsert profile snapshots in one transaction; the latest snapshot of a key wins."""
        await self._call(self._write, lambda: self._upsert_accounts(records, _now()))

    async def commit_page(self, commit: PageCommit) -> Sequence[Unit]:
        """Store one page in one transaction; returns the discovered units that were new.

        The page's accounts are upserted, its edges inserted once (an edge already stored by
        any unit is kept as it was), the unit's cursor is set, its ``found`` grows by the
        page's accounts and ``pages`` by one; a ``result`` finishes the unit. Committing to a
        unit that is not stored or already finished raises :class:`~aiomasto.UsageError`;
        nothing of a commit that fails is stored.
        """
        return await self._call(self._write, lambda: self._commit(commit))

    async def close(self) -> None:
        """Finish the calls under way, close the database and free it for another crawler."""
        worker = self._worker
        if worker is None:
            return
        self._closed = True
        try:
            await asyncio.wrap_future(worker.submit(self._shut))
        finally:
            self._worker = None
            self._held.clear()
            await asyncio.to_thread(worker.shutdown)

    # Reading (no open() needed)

    async def edges(self) -> AsyncIterator[Edge]:
        """Every edge, ordered by follower then followed; streamed from one snapshot.

        Example::

            async for edge in sink.edges():
                print(f"{edge.follower} -> {edge.followed}")
        """
        async for row in self._stream(
            "SELECT follower, followed FROM edges ORDER BY follower, followed"
        ):
            yield Edge(follower=row[0], followed=row[1])

    async def accounts(self) -> AsyncIterator[AccountRecord]:
        """Every account's latest snapshot, ordered by key; streamed from one snapshot."""
        async for row in self._stream(
            "SELECT " + _ACCOUNT_FIELDS + " FROM accounts ORDER BY key"  # noqa: S608
        ):
            yield self._account(row)

    async def units(self) -> AsyncIterator[Unit]:
        """Every unit, finished or not, in the order they were added, with its progress."""
        async for row in self._stream(
            "SELECT " + _UNIT_COLUMNS + " FROM units ORDER BY seq"  # noqa: S608
        ):
            yield self._unit(row)

    async def outcomes(self) -> AsyncIterator[tuple[UnitKey, ListResult]]:
        """How each finished list ended, in the order the lists were added.

        Example::

            async for key, result in sink.outcomes():
                if result.outcome != "complete":
                    print(key, result.outcome, result.detail)
        """
        query = (
            "SELECT account, relation, outcome, claimed, found, detail, moved_to, finished_at, "
            "skipped FROM units WHERE status = 'done' ORDER BY seq"
        )
        async for row in self._stream(query):
            yield self._outcome(row)

    async def instances(self) -> list[InstanceRecord]:
        """What the crawl learnt about each instance, ordered by ``api_base``."""
        query = (
            "SELECT api_base, domain, software, version, quirks, auth, status, detail, "
            "updated_at FROM instances ORDER BY api_base"
        )
        return [self._instance(row) async for row in self._stream(query)]

    async def stats(self) -> CrawlStats:
        """Counts: units pending and done, finished units by outcome, edges, accounts, instances."""
        return await asyncio.to_thread(self._stats)

    # The crawl's thread

    async def _call(self, function: Callable[..., _T], *args: Any) -> _T:
        worker = self._worker
        if worker is None or self._closed:
            state = "closed" if self._closed else "not open"
            raise UsageError(f"{self!r} is {state}: call open() first")
        return await asyncio.wrap_future(worker.submit(function, *args))

    def _open(self, plan: CrawlPlan | None) -> ResumeState:
        target = self._path
        if plan is None and not target.exists():
            raise ConfigurationError(f"crawl database {target} does not exist: nothing to resume")
        self._lock(target)
        try:
            if not target.exists():
                self._create(target)
            connection = self._connect(target, read_only=False)
            try:
                state = self._start(connection, plan)
            except BaseException:
                connection.close()
                raise
        except BaseException:
            self._unlock()
            raise
        self._connection = connection
        self._held.clear()
        return state

    def _start(self, connection: sqlite3.Connection, plan: CrawlPlan | None) -> ResumeState:
        with self._translated("opened"):
            fresh = _identify(connection) == (0, 0, 0)
            if fresh and plan is not None:
                self._initialize(connection)
            elif not fresh:
                self._check(connection)
            # Durable enough for exactly-once: under WAL with synchronous=NORMAL a committed
            # transaction is in the WAL file before COMMIT returns, so it survives kill -9 of
            # the process (only a power loss or OS crash may lose the last commits, and then
            # the database still rolls back to a consistent earlier page).
            connection.execute("PRAGMA synchronous = NORMAL")
            # The crawl's memory stays flat whatever the file's size: SQLite keeps 4 MiB of
            # pages (the OS caches the rest of the file: a page read costs a copy, not a
            # seek), maps none of the file (mapped pages count as the process's memory) and
            # sorts in temporary files. A larger cache measured no faster on a 200,000-edge
            # crawl, and made the process 10 MiB larger.
            connection.execute("PRAGMA cache_size = -4096")
            connection.execute("PRAGMA mmap_size = 0")
            connection.execute("PRAGMA temp_store = FILE")
            row = connection.execute("SELECT plan FROM crawl").fetchone() if not fresh else None
        if row is None:
            if plan is None:
                raise ConfigurationError(
                    f"crawl database {self._path} holds no crawl: nothing to resume"
                )
            with self._translated("written"), _transaction(connection):
                connection.execute(
                    "INSERT INTO crawl (id, plan, created_at) VALUES (1, ?, ?)",
                    (encode_plan(plan), _now()),
                )
            stored = plan
        else:
            stored = self._decode_plan(row[0])
            if plan is not None and plan != stored:
                raise ConfigurationError(
                    f"crawl database {self._path} holds another crawl: "
                    f"{plan_differences(stored, plan)} (resume it with plan=None, or use another "
                    "file for a new crawl)"
                )
        with self._translated("read"):
            return self._resume_state(connection, stored)

    def _resume_state(self, connection: sqlite3.Connection, plan: CrawlPlan) -> ResumeState:
        pending, done, accounts = connection.execute(
            "SELECT count(*) FILTER (WHERE status = 'pending'), "
            "count(*) FILTER (WHERE status = 'done'), count(DISTINCT account) FROM units"
        ).fetchone()
        per_domain = dict(
            connection.execute(
                "SELECT substr(account, instr(account, '@') + 1) AS domain, "
                "count(DISTINCT account) FROM units GROUP BY domain"
            ).fetchall()
        )
        (edges,) = connection.execute("SELECT count(*) FROM edges").fetchone()
        return ResumeState(
            plan=plan,
            pending=pending,
            accounts_queued=accounts,
            per_domain=per_domain,
            edges=edges,
            units_done=done,
        )

    def _claim(self, limit: int) -> list[Unit]:
        connection = self._writer()
        claimed: list[Unit] = []
        with self._translated("read"):
            cursor = connection.execute(_PENDING)
            try:
                for row in cursor:
                    if (row[0], row[1]) in self._held:
                        continue
                    claimed.append(self._unit(row))
                    if len(claimed) == limit:
                        break
            finally:
                cursor.close()
        self._held.update((unit.key.account, unit.key.relation) for unit in claimed)
        return claimed

    def _outstanding(self) -> int:
        with self._translated("read"):
            pending = self._writer().execute(
                "SELECT account, relation FROM units WHERE status = 'pending'"
            )
            return sum(1 for row in pending if (row[0], row[1]) not in self._held)

    def _write(self, change: Callable[[], _T]) -> _T:
        with self._translated("written"), _transaction(self._writer()):
            return change()

    def _commit(self, commit: PageCommit) -> list[Unit]:
        connection = self._writer()
        key = commit.unit
        found = connection.execute(_FIND_UNIT, (key.account, key.relation)).fetchone()
        if found is None:
            raise UsageError(f"commit_page for the {key}: no such unit (add it first)")
        seq, status = found
        if status != "pending":
            raise UsageError(f"commit_page for the {key}: the unit is already finished")
        if commit.accounts:
            self._upsert_accounts(commit.accounts, _now())
        if commit.edges:
            rows = [(edge.follower, edge.followed, seq) for edge in commit.edges]
            _execute_many(connection, _INSERT_EDGE, rows)
        result = commit.result
        progress = (commit.cursor, commit.api_base, commit.account_id)
        if result is None:
            _execute(connection, _PROGRESS, (*progress, len(commit.accounts), commit.skipped, seq))
        else:
            finished = result.finished_at or datetime.now(UTC)
            _execute(
                connection,
                _FINISH,
                (
                    *progress,
                    len(commit.accounts),
                    result.found,
                    commit.skipped,
                    result.skipped,
                    result.outcome,
                    result.claimed,
                    result.detail,
                    result.moved_to,
                    finished.isoformat(),
                    seq,
                ),
            )
        added = self._insert_units(commit.units) if commit.units else []
        if result is not None:
            self._held.discard((key.account, key.relation))
        return added

    def _insert_units(self, units: Sequence[Unit]) -> list[Unit]:
        connection = self._writer()
        # Rowids grow from the largest (no one else writes in this transaction), so the rows
        # above it afterwards are exactly the ones this call added.
        (last,) = connection.execute("SELECT coalesce(max(seq), 0) FROM units").fetchone()
        rows = [
            (
                unit.key.account,
                unit.key.relation,
                unit.target,
                unit.depth,
                unit.cursor,
                unit.api_base,
                unit.account_id,
                unit.found,
                unit.pages,
                unit.skipped,
            )
            for unit in units
        ]
        _execute_many(connection, _INSERT_UNIT, rows)
        added = {
            (account, relation): seq
            for seq, account, relation in connection.execute(
                "SELECT seq, account, relation FROM units WHERE seq > ?", (last,)
            )
        }
        # The first of two units with one key is the one stored.
        return [
            unit
            for unit, row in zip(units, rows, strict=True)
            if added.pop((row[0], row[1]), None) is not None
            or added.pop(_storable(row[:2]), None) is not None
        ]

    def _upsert_accounts(self, records: Sequence[AccountRecord], now: str) -> None:
        rows = [_account_row(record, now) for record in records]
        _execute_many(self._writer(), _UPSERT_ACCOUNT, rows)

    def _save_instance(self, record: InstanceRecord) -> None:
        try:
            quirks = json.dumps(dict(record.quirks), sort_keys=True, default=str)
        except (TypeError, ValueError) as exc:
            raise ConfigurationError(
                f"the quirks of {record.api_base} cannot be stored as JSON ({exc})"
            ) from None
        updated = record.updated_at or datetime.now(UTC)
        _execute(
            self._writer(),
            _SAVE_INSTANCE,
            (
                record.api_base,
                record.domain,
                record.software,
                record.version,
                quirks,
                record.auth,
                record.status,
                record.detail,
                updated.isoformat(),
            ),
        )

    def _shut(self) -> None:
        connection, self._connection = self._connection, None
        try:
            if connection is not None:
                with self._translated("closed"):
                    connection.close()
        finally:
            self._unlock()

    def _writer(self) -> sqlite3.Connection:
        if self._connection is None:
            raise UsageError(f"{self!r} is not open: call open() first")
        return self._connection

    # Files, locks and connections

    def _lock(self, target: Path) -> None:
        """Hold ``<name>-lock`` beside the database: one crawler per file, among processes."""
        if fcntl is None:  # pragma: no cover - Windows
            return
        lock_path = target.parent / f"{target.name}-lock"
        try:
            _make_private_directories(target.parent)
            fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, _FILE_MODE)
        except OSError as exc:
            reason = exc.strerror
            raise self._error(f"cannot be opened: no lock file can be made ({reason})") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            raise UsageError(
                f"crawl database {self._path} is in use by another crawler (it holds "
                f"{lock_path.name}); wait for it to finish or stop it"
            ) from None
        self._lock_fd = fd

    def _unlock(self) -> None:
        fd, self._lock_fd = self._lock_fd, None
        if fd is not None:
            os.close(fd)

    def _create(self, target: Path) -> None:
        try:
            _make_private_directories(target.parent)
            fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, _FILE_MODE)
        except FileExistsError:
            return
        except OSError as exc:
            raise self._error(f"cannot be created ({exc.strerror})") from None
        # No connection of this process can have the new file open yet, so closing this
        # descriptor drops no SQLite lock.
        os.close(fd)

    def _connect(self, target: Path, *, read_only: bool) -> sqlite3.Connection:
        """A connection to ``target``; SQLite never creates the file (``mode=rw``/``ro``)."""
        mode = "ro" if read_only else "rw"
        uri = f"file:{urllib.parse.quote(str(target))}?mode={mode}"
        with self._translated("opened"):
            return sqlite3.connect(
                uri,
                uri=True,
                timeout=self._busy_timeout,
                isolation_level=None,  # transactions are begun and ended here, explicitly
                # Readers move between threads, one at a time; the writer stays on its own.
                check_same_thread=not read_only,
                cached_statements=64,
            )

    def _initialize(self, connection: sqlite3.Connection) -> None:
        mode = connection.execute("PRAGMA journal_mode = WAL").fetchone()
        if mode is None or str(mode[0]).lower() != "wal":
            _log.warning(
                "crawl database %s cannot use WAL journaling here (it uses %s); "
                "readers will wait for the crawl's writes",
                self._path,
                mode[0] if mode else "?",
            )
        with _transaction(connection):
            for statement in _SCHEMA:
                connection.execute(statement)
        _log.info("created crawl database %s", self._path)

    def _check(self, connection: sqlite3.Connection) -> None:
        """Refuse a database that is not a crawl's, or is a newer aiomasto's."""
        application_id, version, _ = _identify(connection)
        if application_id == _TOKEN_STORE_ID:
            raise ConfigurationError(
                f"crawl database {self._path} is an aiomasto token store, not a crawl "
                "database; it was left untouched (choose another path)"
            )
        if application_id != APPLICATION_ID:
            raise ConfigurationError(
                f"crawl database {self._path} is an SQLite database of another program (its "
                "application_id is not a crawl's); it was left untouched (choose another path)"
            )
        if version > SCHEMA_VERSION:
            raise ConfigurationError(
                f"crawl database {self._path} was written by a newer aiomasto (schema version "
                f"{version}; this one reads up to {SCHEMA_VERSION}); upgrade aiomasto to use it"
            )
        if version < 1:
            raise self._error("is corrupt: its schema version is missing")

    @contextlib.contextmanager
    def _reader(self) -> Iterator[sqlite3.Connection]:
        target = self._path
        if not target.exists():
            raise ConfigurationError(f"crawl database {target} does not exist")
        connection = self._connect(target, read_only=True)
        try:
            with self._translated("read"):
                if _identify(connection) == (0, 0, 0):
                    raise ConfigurationError(f"crawl database {target} holds no crawl")
                self._check(connection)
            yield connection
        finally:
            connection.close()

    def _rows(self, query: str) -> Iterator[list[Any]]:
        """The rows of ``query`` in batches, read on a connection of their own (one snapshot)."""
        with self._reader() as connection, self._translated("read"):
            cursor = connection.execute(query)
            while batch := cursor.fetchmany(_BATCH):
                yield batch

    async def _stream(self, query: str) -> AsyncIterator[Any]:
        batches = _Batches(self._rows(query))
        try:
            while (batch := await asyncio.to_thread(batches.next)) is not None:
                for row in batch:
                    yield row
        finally:
            await asyncio.to_thread(batches.close)

    def _stats(self) -> CrawlStats:
        with self._reader() as connection, self._translated("read"):
            pending = done = 0
            outcomes: dict[str, int] = {}
            for status, outcome, count in connection.execute(
                "SELECT status, outcome, count(*) FROM units GROUP BY status, outcome"
            ):
                if status == "pending":
                    pending += count
                else:
                    done += count
                    outcomes[str(outcome)] = count
            counts = [
                connection.execute(f"SELECT count(*) FROM {table}").fetchone()[0]  # noqa: S608
                for table in ("edges", "accounts", "instances")
            ]
        return CrawlStats(
            pending=pending,
            done=done,
            outcomes=outcomes,
            edges=counts[0],
            accounts=counts[1],
            instances=counts[2],
        )

    # Decoding stored rows

    def _decode_plan(self, text: object) -> CrawlPlan:
        try:
            return decode_plan(cast(str, text))
        except (TypeError, ValueError, KeyError):
            raise self._error("is corrupt: its stored plan cannot be read") from None

    def _unit(self, row: Sequence[Any]) -> Unit:
        return Unit(
            key=UnitKey(account=row[0], relation=row[1]),
            target=row[2],
            depth=row[3],
            cursor=row[4],
            api_base=row[5],
            account_id=row[6],
            found=row[7],
            pages=row[8],
            skipped=row[9],
        )

    def _account(self, row: Sequence[Any]) -> AccountRecord:
        created = row[10]
        return AccountRecord(
            key=row[0],
            acct=row[1],
            uri=row[2],
            url=row[3],
            display_name=row[4],
            note=row[5],
            avatar=row[6],
            bot=bool(row[7]),
            locked=bool(row[8]),
            group=bool(row[9]),
            created_at=None if created is None else self._datetime(created),
            followers_count=row[11],
            following_count=row[12],
            statuses_count=row[13],
            suspended=bool(row[14]),
            moved_to=row[15],
            seen_on=row[16],
        )

    def _outcome(self, row: Sequence[Any]) -> tuple[UnitKey, ListResult]:
        finished = row[7]
        return UnitKey(account=row[0], relation=row[1]), ListResult(
            outcome=row[2],
            claimed=row[3],
            found=row[4],
            detail=row[5] or "",
            moved_to=row[6],
            finished_at=None if finished is None else self._datetime(finished),
            skipped=row[8],
        )

    def _instance(self, row: Sequence[Any]) -> InstanceRecord:
        try:
            quirks = json.loads(row[4])
        except (TypeError, ValueError):
            quirks = None
        if not isinstance(quirks, dict):
            raise self._error(f"is corrupt: the quirks of {row[0]} cannot be read")
        return InstanceRecord(
            api_base=row[0],
            domain=row[1],
            software=row[2],
            version=row[3],
            quirks=quirks,
            auth=row[5],
            status=row[6],
            detail=row[7],
            updated_at=None if row[8] is None else self._datetime(row[8]),
        )

    def _datetime(self, text: object) -> datetime:
        try:
            return datetime.fromisoformat(cast(str, text))
        except (TypeError, ValueError):
            raise self._error("is corrupt: a stored time cannot be read") from None

    # Errors

    @contextlib.contextmanager
    def _translated(self, done: str) -> Iterator[None]:
        """SQLite's errors as aiomasto's, with no value of the data in the message.

        SQLite's messages may quote the file's schema; a value that cannot be bound (a type
        SQLite has no place for) is the caller's mistake.
        """
        try:
            yield
        except sqlite3.Error as exc:
            failure = self._failure(exc, done)
        except UnicodeDecodeError:
            failure = self._error("is corrupt (SQLite returned text that is not UTF-8)")
        else:
            return
        raise failure

    def _failure(self, exc: sqlite3.Error, done: str) -> Exception:
        name = getattr(exc, "sqlite_errorname", "") or type(exc).__name__
        message = str(exc)
        if isinstance(exc, sqlite3.ProgrammingError | sqlite3.InterfaceError) and (
            "binding parameter" in message
        ):
            return ConfigurationError(
                f"a record cannot be stored in crawl database {self._path} ({message}); "
                "nothing of it was written"
            )
        if name.startswith("SQLITE_CONSTRAINT"):
            return ConfigurationError(
                f"a record cannot be stored in crawl database {self._path} (a required value "
                "is missing); nothing of it was written"
            )
        if name == "SQLITE_NOTADB":
            return self._error("is not an SQLite database")
        if name.startswith("SQLITE_CORRUPT") or message.startswith("malformed"):
            return self._error("is corrupt (SQLite reports a damaged database image)")
        primary = name.removeprefix("SQLITE_").split("_")[0]
        return self._error(f"cannot be {done} ({_CAUSES.get(primary, name)})")

    def _error(self, problem: str) -> CrawlSinkError:
        return CrawlSinkError(f"crawl database {self._path} {problem}", path=str(self._path))


class _Batches:
    """A batch generator that threads advance one at a time, closed once its fetch is over."""

    def __init__(self, batches: Iterator[list[Any]]) -> None:
        self._batches = batches
        self._mutex = threading.Lock()

    def next(self) -> list[Any] | None:
        with self._mutex:
            return next(self._batches, None)

    def close(self) -> None:
        with self._mutex:
            close = getattr(self._batches, "close", None)
            if close is not None:
                close()


@contextlib.contextmanager
def _transaction(connection: sqlite3.Connection) -> Iterator[None]:
    connection.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        if connection.in_transaction:
            connection.execute("ROLLBACK")
        raise
    connection.execute("COMMIT")


def _execute(
    connection: sqlite3.Connection, statement: str, row: tuple[Any, ...]
) -> sqlite3.Cursor:
    try:
        return connection.execute(statement, row)
    except (UnicodeEncodeError, OverflowError):
        return connection.execute(statement, _storable(row))


def _execute_many(
    connection: sqlite3.Connection, statement: str, rows: list[tuple[Any, ...]]
) -> None:
    """``executemany``, and again with every value made storable if one was not.

    A hostile server's lone surrogate (valid JSON, not UTF-8) or absurd count must not stop a
    crawl; the fast path pays nothing for it. The statements are upserts and inserts that
    ignore what is there, so running the rows stored before the failure again changes nothing.
    """
    try:
        connection.executemany(statement, rows)
    except (UnicodeEncodeError, OverflowError):
        connection.executemany(statement, [_storable(row) for row in rows])


def _storable(row: tuple[Any, ...]) -> tuple[Any, ...]:
    return tuple(_storable_value(value) for value in row)


def _storable_value(value: Any) -> Any:
    if type(value) is str:
        # Pairs of surrogates become the character they encode, lone ones U+FFFD.
        return value.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    if type(value) is int:
        return min(max(value, _INT64[0]), _INT64[1])
    return value


def _identify(connection: sqlite3.Connection) -> tuple[int, int, int]:
    row = connection.execute(_IDENTIFY).fetchone()
    application_id, version, objects = row if row is not None else (0, 0, 0)
    return int(application_id), int(version), int(objects)


def _make_private_directories(directory: Path) -> None:
    # Path.mkdir(parents=True) gives intermediate directories the default mode, not 0700.
    missing: list[Path] = []
    while not directory.exists() and directory != directory.parent:
        missing.append(directory)
        directory = directory.parent
    for path in reversed(missing):
        with contextlib.suppress(FileExistsError):  # another process was quicker
            path.mkdir(mode=_DIRECTORY_MODE)


_ACCOUNT_HEAD = attrgetter(
    "key", "acct", "uri", "url", "display_name", "note", "avatar", "bot", "locked", "group"
)
_ACCOUNT_TAIL = attrgetter(
    "followers_count", "following_count", "statuses_count", "suspended", "moved_to", "seen_on"
)


def _account_row(record: AccountRecord, now: str) -> tuple[Any, ...]:
    """``record``'s row in _ACCOUNT_FIELDS order."""
    moment = record.created_at
    created = None
    if moment is not None:
        created = _utc_isoformat(moment) if moment.tzinfo is UTC else moment.isoformat()
    return (*_ACCOUNT_HEAD(record), created, *_ACCOUNT_TAIL(record), now)


# Mastodon gives an account's created_at to the day, so a page's accounts share a few dates:
# formatting each once saves half of building a row. UTC only: a cache keyed by a datetime
# would hand the text of one offset to an equal moment given in another.
@functools.lru_cache(maxsize=1024)
def _utc_isoformat(moment: datetime) -> str:
    return moment.isoformat()


def _now() -> str:
    return datetime.now(UTC).isoformat()
