"""The crawl on PostgreSQL: any number of workers, on any number of machines, share one crawl.

The tables are the SQLite sink's, in a schema of their own. Work is leased: :meth:`claim`
takes pending units with ``FOR UPDATE SKIP LOCKED`` in one statement and writes this worker's
name and a lease expiry on them; a background task renews the leases of the units this worker
holds while it lives; a commit checks, under the unit's row lock, that the unit is still this
worker's. A worker that dies stops renewing, its leases run out, and another worker takes the
units over from their committed cursors. ``asyncpg`` (the ``aiomasto[postgres]`` extra) is
imported by this module only, when a sink is made.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import os
import random
import re
import secrets
import socket
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TypeVar

from aiomasto._postgres import check_dsn, import_asyncpg, redact_dsn, schema_lock_key
from aiomasto.errors import ConfigurationError, CrawlSinkError, LeaseLost, UsageError

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
from ._sqlite import CrawlStats

if TYPE_CHECKING:
    from asyncpg import Connection, Pool
    from asyncpg.pool import PoolConnectionProxy

    _Connection = Connection | PoolConnectionProxy

__all__ = ["SCHEMA_VERSION", "PostgresCrawlSink", "redact_dsn"]

SCHEMA_VERSION = 1
"""The version of the tables this aiomasto writes (``crawl_meta.version``); newer is refused."""
_T = TypeVar("_T")
_APPLICATION = "aiomasto-crawl"
_SCHEMA_NAME = re.compile(r"[a-z_][a-z0-9_]{0,62}")
_INT64 = (-(2**63), 2**63 - 1)
_BATCH = 2000  # rows a reader fetches per trip
_ATTEMPTS = 5  # a transaction PostgreSQL aborts to break a deadlock is run again up to this
# A worker that restarts under the same name waits this long for its previous process's
# connection (and the name's lock) to go away.
_NAME_WAIT = 10.0
# PostgreSQL's own words are kept for these classes of SQLSTATE (connection, authorization,
# a missing database, resources, shutdown): they name no stored value.
_SAY_WHY = ("08", "28", "3D", "53", "57")

_log = logging.getLogger(__name__)

_SCHEMA = (
    "CREATE SCHEMA IF NOT EXISTS {s}",
    "CREATE TABLE {s}.crawl_meta (id integer PRIMARY KEY CHECK (id = 1), "
    "application text NOT NULL, version integer NOT NULL)",
    "CREATE TABLE {s}.crawl (id integer PRIMARY KEY CHECK (id = 1), plan text NOT NULL, "
    "created_at timestamptz NOT NULL)",
    """
    CREATE TABLE {s}.units (
        seq bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        account text NOT NULL,
        relation text NOT NULL,
        target text NOT NULL,
        depth integer NOT NULL,
        cursor text,
        api_base text,
        account_id text,
        found bigint NOT NULL DEFAULT 0,
        pages bigint NOT NULL DEFAULT 0,
        status text NOT NULL DEFAULT 'pending',
        outcome text,
        claimed bigint,
        detail text,
        moved_to text,
        finished_at timestamptz,
        lease_owner text,
        lease_until timestamptz,
        UNIQUE (account, relation)
    )
    """,
    # What claim() reads: the pending units, shallowest first, then in the order they came.
    "CREATE INDEX units_pending ON {s}.units (depth, seq) WHERE status = 'pending'",
    """
    CREATE TABLE {s}.accounts (
        key text PRIMARY KEY,
        acct text NOT NULL,
        uri text,
        url text,
        display_name text NOT NULL,
        note text NOT NULL,
        avatar text NOT NULL,
        bot boolean NOT NULL,
        locked boolean NOT NULL,
        "group" boolean NOT NULL,
        created_at timestamptz,
        followers_count bigint NOT NULL,
        following_count bigint NOT NULL,
        statuses_count bigint NOT NULL,
        suspended boolean NOT NULL,
        moved_to text,
        seen_on text NOT NULL,
        updated_at timestamptz NOT NULL
    )
    """,
    """
    CREATE TABLE {s}.edges (
        follower text NOT NULL,
        followed text NOT NULL,
        unit bigint,
        PRIMARY KEY (follower, followed)
    )
    """,
    """
    CREATE TABLE {s}.instances (
        api_base text PRIMARY KEY,
        domain text,
        software text,
        version text,
        quirks text NOT NULL,
        auth text NOT NULL,
        status text NOT NULL,
        detail text NOT NULL,
        updated_at timestamptz
    )
    """,
)

_UNIT_COLUMNS = "account, relation, target, depth, cursor, api_base, account_id, found, pages"
_ACCOUNT_COLUMNS = (
    'key, acct, uri, url, display_name, note, avatar, bot, locked, "group", created_at, '
    "followers_count, following_count, statuses_count, suspended, moved_to, seen_on, updated_at"
)
_ACCOUNT_TYPES = (
    "text[], text[], text[], text[], text[], text[], text[], boolean[], boolean[], boolean[], "
    "timestamptz[], bigint[], bigint[], bigint[], boolean[], text[], text[]"
)
_UPSERT_ACCOUNTS = (
    "INSERT INTO {s}.accounts (" + _ACCOUNT_COLUMNS + ") "  # noqa: S608 - names
    "SELECT *, now() FROM unnest("
    + ", ".join(f"${n}::{kind}" for n, kind in enumerate(_ACCOUNT_TYPES.split(", "), 1))
    + ") ON CONFLICT (key) DO UPDATE SET acct = excluded.acct, uri = excluded.uri, "
    "url = excluded.url, display_name = excluded.display_name, note = excluded.note, "
    'avatar = excluded.avatar, bot = excluded.bot, locked = excluded.locked, "group" = '
    'excluded."group", created_at = excluded.created_at, followers_count = '
    "excluded.followers_count, following_count = excluded.following_count, statuses_count = "
    "excluded.statuses_count, suspended = excluded.suspended, moved_to = excluded.moved_to, "
    "seen_on = excluded.seen_on, updated_at = excluded.updated_at"
)
_INSERT_EDGES = (
    "INSERT INTO {s}.edges (follower, followed, unit) "
    "SELECT follower, followed, $3 FROM unnest($1::text[], $2::text[]) AS e(follower, followed) "
    "ON CONFLICT (follower, followed) DO NOTHING"
)
# In the given order, so the first of two units with one key is the one stored.
_INSERT_UNITS = (
    "INSERT INTO {s}.units (" + _UNIT_COLUMNS + ") "  # noqa: S608 - names
    "SELECT a, r, t, d, c, b, i, f, p FROM unnest($1::text[], $2::text[], $3::text[], "
    "$4::integer[], $5::text[], $6::text[], $7::text[], $8::bigint[], $9::bigint[]) "
    "WITH ORDINALITY AS u(a, r, t, d, c, b, i, f, p, n) ORDER BY n "
    "ON CONFLICT (account, relation) DO NOTHING RETURNING account, relation"
)
# The lease check and the unit's progress in one statement, under the unit's row lock: a
# commit goes through only while the unit is this worker's (or nobody's), and renews the lease.
_MINE = (
    "account = $1 AND relation = $2 AND status = 'pending' "
    "AND (lease_owner = $3 OR lease_owner IS NULL)"
)
_PROGRESS = (
    "UPDATE {s}.units SET cursor = $4, api_base = coalesce($5, api_base), "  # noqa: S608 - names
    "account_id = coalesce($6, account_id), found = found + $7, pages = pages + 1, "
    "lease_owner = $3, lease_until = now() + make_interval(secs => $8) WHERE " + _MINE + " "
    "RETURNING seq"
)
# A result's ``found`` wins when it is larger, as in SQLite.
_FINISH = (
    "UPDATE {s}.units SET cursor = $4, api_base = coalesce($5, api_base), "  # noqa: S608 - names
    "account_id = coalesce($6, account_id), found = greatest(found + $7, $8), "
    "pages = pages + 1, status = 'done', outcome = $9, claimed = $10, detail = $11, "
    "moved_to = $12, finished_at = $13, lease_owner = NULL, lease_until = NULL "
    "WHERE " + _MINE + " RETURNING seq"
)
# One statement: the row locks are taken by the subquery, and rows another claim is taking
# (locked) are skipped, so two workers never get the same unit.
_CLAIM = (
    "UPDATE {s}.units SET lease_owner = $1, lease_until = now() + make_interval(secs => $2) "  # noqa: S608 - names
    "WHERE seq IN (SELECT seq FROM {s}.units WHERE status = 'pending' AND (lease_owner IS NULL "
    "OR (lease_owner <> $1 AND lease_until <= now())) ORDER BY depth, seq LIMIT $3 "
    "FOR UPDATE SKIP LOCKED) RETURNING " + _UNIT_COLUMNS + ", seq"
)
_RENEW = (
    "UPDATE {s}.units SET lease_until = now() + make_interval(secs => $2) "
    "WHERE lease_owner = $1 AND status = 'pending'"
)
_RELEASE = (
    "UPDATE {s}.units SET lease_owner = NULL, lease_until = NULL "
    "WHERE lease_owner = $1 AND status = 'pending'"
)
_SAVE_INSTANCE = (
    "INSERT INTO {s}.instances (api_base, domain, software, version, quirks, auth, status, "
    "detail, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT (api_base) "
    "DO UPDATE SET domain = excluded.domain, software = excluded.software, version = "
    "excluded.version, quirks = excluded.quirks, auth = excluded.auth, status = "
    "excluded.status, detail = excluded.detail, updated_at = excluded.updated_at"
)


class PostgresCrawlSink:
    """Keeps a crawl in PostgreSQL, where any number of workers share it.

    The :class:`~aiomasto.crawl.CrawlSink` of a distributed crawl: ``aiomasto crawl --db
    postgresql://...`` starts one, and ``aiomasto crawl-worker --db postgresql://...`` on
    any machine joins it. The tables are those of :class:`~aiomasto.crawl.SqliteCrawlSink`
    (``crawl``, ``units``, ``accounts``, ``edges``, ``instances``), in the schema ``schema``
    (created if absent, with a ``crawl_meta`` row naming its version); each page is one
    transaction, so every edge is stored once however often workers die.

    Units are leased: :meth:`claim` hands out units nobody holds (or whose holder's lease
    ran out) and writes this worker's name and ``now + lease`` on them; while the sink is
    open a background task renews its leases every ``lease / 3`` seconds, so a list whose
    walk waits out a rate-limit window stays this worker's; a commit renews the lease too.
    A commit to a unit another worker took over raises :class:`~aiomasto.LeaseLost` and
    stores nothing (the crawler then drops the list). A worker killed mid-page stops
    renewing: after ``lease`` seconds its units are claimable again, from their committed
    cursors. :meth:`close` gives the units still held back at once.

    ``worker`` names this worker in the database (a unique name is made up when none is
    given); one name is one live worker: the sink holds a PostgreSQL advisory lock on it
    while open, which the server frees when the worker's connection dies, so a worker
    restarted under the same name (``--worker host-1``) takes its units back at once, and a
    second live one under that name is refused with :class:`~aiomasto.UsageError`.

    The DSN's password never appears in a message or a repr. Readers (:meth:`edges`,
    :meth:`accounts`, :meth:`units`, :meth:`outcomes`, :meth:`instances`, :meth:`stats`) need
    no :meth:`open` and read one snapshot while workers go on.

    Example::

        sink = PostgresCrawlSink("postgresql://crawler:secret@db.example/crawls", lease=60)
        async with Crawler(sink) as crawler:
            await crawler.run(["@alice@example.social"])
        async for edge in sink.edges():
            print(edge.follower, "follows", edge.followed)
    """

    def __init__(
        self,
        dsn: str,
        *,
        schema: str = "aiomasto_crawl",
        lease: float = 60.0,
        worker: str | None = None,
        connections: int = 8,
    ) -> None:
        self._dsn = check_dsn(dsn)
        if not isinstance(schema, str) or not _SCHEMA_NAME.fullmatch(schema):
            raise ConfigurationError(
                f"schema must be a lower-case PostgreSQL name (letters, digits, _), not {schema!r}"
            )
        if isinstance(lease, bool) or not isinstance(lease, int | float):
            raise ConfigurationError(f"lease must be a number of seconds, not {lease!r}")
        if not 0.5 <= lease < math.inf:
            raise ConfigurationError(f"lease must be at least 0.5 seconds, not {lease!r}")
        if worker is not None and (not isinstance(worker, str) or not 0 < len(worker) <= 200):
            raise ConfigurationError("worker must be a name of 1 to 200 characters")
        if type(connections) is not int or connections < 1:
            raise ConfigurationError(f"connections must be at least 1, not {connections!r}")
        self.schema = schema
        self.lease = float(lease)
        self.worker = worker or f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}"
        self._connections = connections
        self._s = f'"{schema}"'
        self._pool: Pool | None = None
        self._own: Connection | None = None
        self._renewal: asyncio.Task[None] | None = None
        self._held: set[tuple[str, str]] = set()
        self._closed = False

    @property
    def where(self) -> str:
        """The database and schema, with the password masked."""
        return f"{redact_dsn(self._dsn)} (schema {self.schema})"

    def __repr__(self) -> str:
        return f"PostgresCrawlSink({redact_dsn(self._dsn)!r}, schema={self.schema!r})"

    def _sql(self, statement: str) -> str:
        return statement.replace("{s}", self._s)

    # The CrawlSink protocol

    async def open(self, plan: CrawlPlan | None) -> ResumeState:
        """Start a crawl (``plan``) or join/resume the stored one (``plan=None``, or the same).

        Creates the schema and its tables when absent (a new crawl), refuses a schema that
        holds another program's tables or a newer aiomasto's (:class:`~aiomasto.
        ConfigurationError`), and refuses a different plan naming what differs.
        """
        if self._pool is not None:
            raise UsageError(f"{self!r} is already open")
        driver = import_asyncpg()
        self._closed = False
        own: Connection | None = None
        pool: Pool | None = None
        try:
            with self._translated("opened"):
                own = await driver.connect(self._dsn)
                await self._take_name(own)
                state = await self._start(own, plan)
                await own.execute(self._sql(_RELEASE), self.worker)
                pool = await driver.create_pool(self._dsn, min_size=1, max_size=self._connections)
        except BaseException:
            if pool is not None:
                await _quietly(pool.close())
            if own is not None:
                await _quietly(own.close())
            raise
        self._own, self._pool = own, pool
        self._held.clear()
        self._renewal = asyncio.create_task(self._renew_forever())
        return state

    async def claim(self, limit: int) -> Sequence[Unit]:
        """Up to ``limit`` pending units nobody holds, shallowest first, now leased to this
        worker for ``lease`` seconds (renewed while the sink is open)."""
        if type(limit) is not int or limit < 1:
            raise ConfigurationError(f"claim(limit={limit!r}): the limit must be at least 1")
        pool = self._open_pool()
        with self._translated("read"):
            rows = await pool.fetch(self._sql(_CLAIM), self.worker, self.lease, limit)
        rows = sorted(rows, key=lambda row: (row["depth"], row["seq"]))
        units = [_unit(row) for row in rows]
        self._held.update((unit.key.account, unit.key.relation) for unit in units)
        return units

    async def outstanding(self) -> int:
        """Unfinished units this worker does not hold: claimable ones, and those other
        workers hold (their leases may still run out). 0 after an empty :meth:`claim`
        means the crawl is over for everyone."""
        pool = self._open_pool()
        with self._translated("read"):
            count = await pool.fetchval(
                self._sql(
                    "SELECT count(*) FROM {s}.units WHERE status = 'pending' "
                    "AND lease_owner IS DISTINCT FROM $1"
                ),
                self.worker,
            )
        return int(count)

    async def add_units(self, units: Sequence[Unit]) -> Sequence[Unit]:
        """Add the units whose key is not stored yet, in one statement; returns those added."""
        return await self._transaction(lambda connection: self._insert_units(connection, units))

    async def save_instance(self, record: InstanceRecord) -> None:
        """Insert or replace what is known about the instance at ``record.api_base``."""
        try:
            quirks = json.dumps(dict(record.quirks), sort_keys=True, default=str)
        except (TypeError, ValueError) as exc:
            raise ConfigurationError(
                f"the quirks of {record.api_base} cannot be stored as JSON ({exc})"
            ) from None
        pool = self._open_pool()
        row = (
            record.api_base,
            record.domain,
            record.software,
            record.version,
            quirks,
            record.auth,
            record.status,
            record.detail,
            record.updated_at or datetime.now(UTC),
        )
        with self._translated("written"):
            await pool.execute(self._sql(_SAVE_INSTANCE), *_storable(row))

    async def save_accounts(self, records: Sequence[AccountRecord]) -> None:
        """Upsert profile snapshots in one statement; the latest snapshot of a key wins."""
        await self._transaction(lambda connection: self._upsert_accounts(connection, records))

    async def commit_page(self, commit: PageCommit) -> Sequence[Unit]:
        """Store one page in one transaction, if the unit is still this worker's.

        As :meth:`SqliteCrawlSink.commit_page <aiomasto.crawl.SqliteCrawlSink.commit_page>`;
        the commit also renews the lease. A unit another worker took over (or finished after
        taking it over) raises :class:`~aiomasto.LeaseLost`; nothing of the page is stored.
        """
        key = commit.unit

        async def store(connection: _Connection) -> list[Unit]:
            seq = await self._progress(connection, commit)
            if seq is None:
                await self._refuse(connection, key)
            if commit.accounts:
                await self._upsert_accounts(connection, commit.accounts)
            if commit.edges:
                edges = sorted(
                    {(edge.follower, edge.followed) for edge in commit.edges}, key=_order
                )
                await connection.execute(
                    self._sql(_INSERT_EDGES),
                    _texts(edge[0] for edge in edges),
                    _texts(edge[1] for edge in edges),
                    seq,
                )
            return await self._insert_units(connection, commit.units) if commit.units else []

        added = await self._transaction(store)
        if commit.result is not None:
            self._held.discard((key.account, key.relation))
        return added

    async def close(self) -> None:
        """Give back the units still held, close the connections and free the worker name."""
        pool, own, renewal = self._pool, self._own, self._renewal
        self._pool = self._own = self._renewal = None
        self._closed = True
        self._held.clear()
        if renewal is not None:
            renewal.cancel()
            await asyncio.gather(renewal, return_exceptions=True)
        try:
            if own is not None:
                with contextlib.suppress(Exception):
                    await own.execute(self._sql(_RELEASE), self.worker)
        finally:
            if pool is not None:
                await _quietly(pool.close())
            if own is not None:
                await _quietly(own.close())

    # Reading (no open() needed)

    async def edges(self) -> AsyncIterator[Edge]:
        """Every edge, ordered by follower then followed; streamed from one snapshot."""
        query = "SELECT follower, followed FROM {s}.edges ORDER BY follower, followed"
        async for row in self._stream(query):
            yield Edge(follower=row[0], followed=row[1])

    async def accounts(self) -> AsyncIterator[AccountRecord]:
        """Every account's latest snapshot, ordered by key; streamed from one snapshot."""
        async for row in self._stream(
            "SELECT " + _ACCOUNT_COLUMNS + " FROM {s}.accounts ORDER BY key"  # noqa: S608
        ):
            yield _account(row)

    async def units(self) -> AsyncIterator[Unit]:
        """Every unit, finished or not, in the order they were added, with its progress."""
        query = "SELECT " + _UNIT_COLUMNS + " FROM {s}.units ORDER BY seq"  # noqa: S608
        async for row in self._stream(query):
            yield _unit(row)

    async def outcomes(self) -> AsyncIterator[tuple[UnitKey, ListResult]]:
        """How each finished list ended, in the order the lists were added."""
        query = (
            "SELECT account, relation, outcome, claimed, found, detail, moved_to, finished_at "
            "FROM {s}.units WHERE status = 'done' ORDER BY seq"
        )
        async for row in self._stream(query):
            yield (
                UnitKey(account=row[0], relation=row[1]),
                ListResult(
                    outcome=row[2],
                    claimed=row[3],
                    found=row[4],
                    detail=row[5] or "",
                    moved_to=row[6],
                    finished_at=row[7],
                ),
            )

    async def instances(self) -> list[InstanceRecord]:
        """What the crawl learnt about each instance, ordered by ``api_base``."""
        query = (
            "SELECT api_base, domain, software, version, quirks, auth, status, detail, "
            "updated_at FROM {s}.instances ORDER BY api_base"
        )
        return [self._instance(row) async for row in self._stream(query)]

    async def stats(self) -> CrawlStats:
        """Counts: units pending and done, finished units by outcome, edges, accounts,
        instances (and how many units other workers hold is in :meth:`outstanding`)."""
        async with self._reader() as connection:
            pending = done = 0
            outcomes: dict[str, int] = {}
            for status, outcome, count in await connection.fetch(
                self._sql("SELECT status, outcome, count(*) FROM {s}.units GROUP BY 1, 2")
            ):
                if status == "pending":
                    pending += count
                else:
                    done += count
                    outcomes[str(outcome)] = count
            counts = [
                await connection.fetchval(
                    self._sql(f"SELECT count(*) FROM {{s}}.{table}")  # noqa: S608
                )
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

    # Opening

    async def _take_name(self, connection: _Connection) -> None:
        """Hold the worker name's advisory lock on ``connection`` for as long as it lives."""
        key = schema_lock_key(self.schema, f"worker\0{self.worker}")
        loop = asyncio.get_running_loop()
        deadline = loop.time() + _NAME_WAIT
        while not await connection.fetchval("SELECT pg_try_advisory_lock($1)", key):
            # A restarted worker: its previous process's connection may take a moment to go.
            if loop.time() > deadline:
                raise UsageError(
                    f"a worker named {self.worker!r} is already running on {self.where}; "
                    "give each worker its own name"
                )
            await asyncio.sleep(0.1)

    async def _start(self, connection: _Connection, plan: CrawlPlan | None) -> ResumeState:
        async with connection.transaction():
            # One opener at a time creates or checks the schema: workers start together.
            await connection.execute(
                "SELECT pg_advisory_xact_lock($1)", schema_lock_key(self.schema, "schema")
            )
            fresh = await self._identify(connection)
            if fresh:
                if plan is None:
                    raise ConfigurationError(f"{self.where} holds no crawl: nothing to resume")
                for statement in _SCHEMA:
                    await connection.execute(self._sql(statement))
                await connection.execute(
                    self._sql("INSERT INTO {s}.crawl_meta VALUES (1, $1, $2)"),
                    _APPLICATION,
                    SCHEMA_VERSION,
                )
                _log.info("created crawl tables in %s", self.where)
            text = await connection.fetchval(self._sql("SELECT plan FROM {s}.crawl"))
            if text is None:
                if plan is None:
                    raise ConfigurationError(f"{self.where} holds no crawl: nothing to resume")
                await connection.execute(
                    self._sql("INSERT INTO {s}.crawl VALUES (1, $1, now())"), encode_plan(plan)
                )
                stored = plan
            else:
                stored = self._decode_plan(text)
                if plan is not None and plan != stored:
                    raise ConfigurationError(
                        f"{self.where} holds another crawl: {plan_differences(stored, plan)} "
                        "(resume it with plan=None, or use another schema for a new crawl)"
                    )
            return await self._resume_state(connection, stored)

    async def _identify(self, connection: _Connection) -> bool:
        """Whether the schema holds no tables yet; refuse one that is not a crawl's."""
        tables = {
            row[0]
            for row in await connection.fetch(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = $1",
                self.schema,
            )
        }
        if not tables:
            return True
        if "crawl_meta" not in tables:
            raise ConfigurationError(
                f"{self.where} holds another program's tables, not a crawl's; it was left "
                "untouched (choose another schema)"
            )
        row = await connection.fetchrow(
            self._sql("SELECT application, version FROM {s}.crawl_meta")
        )
        if row is None or row[0] != _APPLICATION:
            raise ConfigurationError(
                f"{self.where} holds another program's tables, not a crawl's; it was left "
                "untouched (choose another schema)"
            )
        if row[1] > SCHEMA_VERSION:
            raise ConfigurationError(
                f"{self.where} was written by a newer aiomasto (schema version {row[1]}; "
                f"this one reads up to {SCHEMA_VERSION}); upgrade aiomasto to use it"
            )
        return False

    async def _resume_state(self, connection: _Connection, plan: CrawlPlan) -> ResumeState:
        counts = await connection.fetchrow(
            self._sql(
                "SELECT count(*) FILTER (WHERE status = 'pending'), "
                "count(*) FILTER (WHERE status = 'done'), count(DISTINCT account) FROM {s}.units"
            )
        )
        assert counts is not None  # an aggregate always gives one row
        pending, done, accounts = counts
        per_domain = {
            row[0]: row[1]
            for row in await connection.fetch(
                self._sql(
                    "SELECT substr(account, strpos(account, '@') + 1) AS domain, "
                    "count(DISTINCT account) FROM {s}.units GROUP BY domain"
                )
            )
        }
        edges = await connection.fetchval(self._sql("SELECT count(*) FROM {s}.edges"))
        return ResumeState(
            plan=plan,
            pending=pending,
            accounts_queued=accounts,
            per_domain=per_domain,
            edges=edges,
            units_done=done,
        )

    # Writing

    def _open_pool(self) -> Pool:
        if self._pool is None:
            state = "closed" if self._closed else "not open"
            raise UsageError(f"{self!r} is {state}: call open() first")
        return self._pool

    async def _transaction(self, step: Callable[[_Connection], Awaitable[_T]]) -> _T:
        """``step`` in one transaction, again from the start if PostgreSQL aborted it to
        break a deadlock between two workers (their pages' rows, locked in another order)."""
        pool = self._open_pool()
        attempt = 0
        while True:
            attempt += 1
            try:
                with self._translated("written"):
                    async with pool.acquire() as connection, connection.transaction():
                        return await step(connection)
            except CrawlSinkError as exc:
                if not isinstance(exc.__context__, _retryable()) or attempt == _ATTEMPTS:
                    raise
            await asyncio.sleep(random.uniform(0.0, 0.05 * attempt))

    async def _progress(self, connection: _Connection, commit: PageCommit) -> int | None:
        key, result = commit.unit, commit.result
        common = (
            key.account,
            key.relation,
            self.worker,
            commit.cursor,
            commit.api_base,
            commit.account_id,
            len(commit.accounts),
        )
        if result is None:
            seq = await connection.fetchval(self._sql(_PROGRESS), *_storable(common), self.lease)
        else:
            finished = result.finished_at or datetime.now(UTC)
            row = (
                *common,
                result.found,
                result.outcome,
                result.claimed,
                result.detail,
                result.moved_to,
                finished,
            )
            seq = await connection.fetchval(self._sql(_FINISH), *_storable(row))
        return None if seq is None else int(seq)

    async def _refuse(self, connection: _Connection, key: UnitKey) -> None:
        """Why a commit's unit is not this worker's to write: say it, and store nothing."""
        row = await connection.fetchrow(
            self._sql("SELECT status FROM {s}.units WHERE account = $1 AND relation = $2"),
            *_storable((key.account, key.relation)),
        )
        held = (key.account, key.relation) in self._held
        if row is None:
            raise UsageError(f"commit_page for the {key}: no such unit (add it first)")
        if row[0] != "pending" and not held:
            raise UsageError(f"commit_page for the {key}: the unit is already finished")
        self._held.discard((key.account, key.relation))
        raise LeaseLost(
            f"the {key} is no longer this worker's ({self.worker}): its lease ran out and "
            f"another worker took it over; the page was not stored in {self.where}",
            path=self.where,
        )

    async def _upsert_accounts(
        self, connection: _Connection, records: Sequence[AccountRecord]
    ) -> None:
        # One statement may not update a row twice: the latest snapshot of a key wins here.
        # Rows go in key order, as every worker's do, so two pages lock them in one order.
        latest = {record.key: record for record in records}
        columns: list[list[Any]] = [[] for _ in range(17)]
        for record in sorted(latest.values(), key=lambda record: _order(record.key)):
            values = (
                record.key,
                record.acct,
                record.uri,
                record.url,
                record.display_name,
                record.note,
                record.avatar,
                record.bot,
                record.locked,
                record.group,
                record.created_at,
                record.followers_count,
                record.following_count,
                record.statuses_count,
                record.suspended,
                record.moved_to,
                record.seen_on,
            )
            for column, value in zip(columns, _storable(values), strict=True):
                column.append(value)
        await connection.execute(self._sql(_UPSERT_ACCOUNTS), *columns)

    async def _insert_units(self, connection: _Connection, units: Sequence[Unit]) -> list[Unit]:
        if not units:
            return []
        rows = [
            _storable(
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
                )
            )
            for unit in units
        ]
        # In the given order: it is the order claim() hands them out in. (Two pages adding the
        # same units in another order may deadlock; the transaction is then run again.)
        columns = [list(column) for column in zip(*rows, strict=True)]
        added = {
            (row[0], row[1]) for row in await connection.fetch(self._sql(_INSERT_UNITS), *columns)
        }
        chosen = []
        for unit, row in zip(units, rows, strict=True):
            if (row[0], row[1]) in added:
                added.discard((row[0], row[1]))
                chosen.append(unit)
        return chosen

    async def _renew_forever(self) -> None:
        """Keep this worker's leases alive while it lives (a walk may wait out a window)."""
        while True:
            await asyncio.sleep(self.lease / 3)
            pool = self._pool
            if pool is None:
                return
            try:
                await pool.execute(self._sql(_RENEW), self.worker, self.lease)
            except Exception as exc:
                # The next renewal may get through; a commit checks the lease anyway.
                _log.warning("could not renew the leases in %s (%s)", self.where, _kind(exc))

    # Reading

    @contextlib.asynccontextmanager
    async def _reader(self) -> AsyncIterator[Connection]:
        driver = import_asyncpg()
        with self._translated("read"):
            connection = await driver.connect(self._dsn)
        try:
            with self._translated("read"):
                if await self._identify(connection):
                    raise ConfigurationError(f"{self.where} holds no crawl")
            yield connection
        finally:
            await _quietly(connection.close())

    async def _stream(self, query: str) -> AsyncIterator[Any]:
        async with self._reader() as connection:
            with self._translated("read"):
                async with connection.transaction(isolation="repeatable_read", readonly=True):
                    async for row in connection.cursor(self._sql(query), prefetch=_BATCH):
                        yield row

    def _decode_plan(self, text: object) -> CrawlPlan:
        try:
            return decode_plan(str(text))
        except (TypeError, ValueError, KeyError):
            raise self._error("is corrupt: its stored plan cannot be read") from None

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
            updated_at=row[8],
        )

    # Errors

    @contextlib.contextmanager
    def _translated(self, done: str) -> Iterator[None]:
        """asyncpg's errors as aiomasto's, naming the database (never its password) and no
        stored value (PostgreSQL's details may quote a row)."""
        try:
            yield
        except (OSError, TimeoutError) as exc:
            raise self._error(f"cannot be reached ({_kind(exc)})") from None
        except Exception as exc:
            failure = _failure(exc, self, done)
            if failure is None:
                raise
            raise failure from None

    def _error(self, problem: str) -> CrawlSinkError:
        return CrawlSinkError(f"crawl database {self.where} {problem}", path=self.where)


def _failure(exc: Exception, sink: PostgresCrawlSink, done: str) -> Exception | None:
    driver = import_asyncpg()
    if isinstance(exc, driver.exceptions.DataError | driver.IntegrityConstraintViolationError):
        return ConfigurationError(
            f"a record cannot be stored in crawl database {sink.where} (a value of the wrong "
            "kind, or a required one missing); nothing of it was written"
        )
    if isinstance(exc, driver.PostgresError):
        state = str(getattr(exc, "sqlstate", "") or "")
        why = f"{type(exc).__name__}, SQLSTATE {state}"
        if state[:2] in _SAY_WHY:
            why = f"{why}: {str(exc)[:200]}"
        return sink._error(f"cannot be {done} ({why})")
    if isinstance(exc, driver.InterfaceError):
        if "invalid input for query argument" in str(exc):
            return ConfigurationError(
                f"a record cannot be stored in crawl database {sink.where} (a value of the "
                "wrong kind); nothing of it was written"
            )
        return sink._error(f"cannot be {done} ({type(exc).__name__})")
    return None


def _retryable() -> tuple[type[BaseException], ...]:
    driver = import_asyncpg()
    return (driver.DeadlockDetectedError, driver.SerializationError)


def _order(key: object) -> str:
    """A sort key for text or tuples of text that never fails on a hostile value."""
    return repr(key)


def _kind(exc: BaseException) -> str:
    return type(exc).__name__ if not str(exc) else f"{type(exc).__name__}: {str(exc)[:120]}"


async def _quietly(closing: Any) -> None:
    with contextlib.suppress(Exception):
        await closing


def _unit(values: Any) -> Unit:
    return Unit(
        key=UnitKey(account=values[0], relation=values[1]),
        target=values[2],
        depth=values[3],
        cursor=values[4],
        api_base=values[5],
        account_id=values[6],
        found=values[7],
        pages=values[8],
    )


def _account(row: Sequence[Any]) -> AccountRecord:
    return AccountRecord(
        key=row[0],
        acct=row[1],
        uri=row[2],
        url=row[3],
        display_name=row[4],
        note=row[5],
        avatar=row[6],
        bot=row[7],
        locked=row[8],
        group=row[9],
        created_at=row[10],
        followers_count=row[11],
        following_count=row[12],
        statuses_count=row[13],
        suspended=row[14],
        moved_to=row[15],
        seen_on=row[16],
    )


def _texts(values: Iterator[str] | Any) -> list[Any]:
    return [_storable_value(value) for value in values]


def _storable(row: tuple[Any, ...]) -> tuple[Any, ...]:
    return tuple(_storable_value(value) for value in row)


def _storable_value(value: Any) -> Any:
    """A hostile server's text or count made storable: PostgreSQL's text holds no NUL and
    only valid UTF-8, its bigint 64 bits; anything else goes as it is (and a wrong kind of
    value fails the commit as the caller's mistake)."""
    if type(value) is str:
        if "\x00" in value:
            value = value.replace("\x00", "\ufffd")
        if not value.isascii():
            try:
                value.encode()
            except UnicodeEncodeError:
                # Pairs of surrogates become the character they encode, lone ones U+FFFD.
                value = value.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
        return value
    if type(value) is int:
        return min(max(value, _INT64[0]), _INT64[1])
    return value
