"""One rate budget per token for every process and machine using it, kept in PostgreSQL.

The same shared budget as :class:`~aiomasto.RedisLimiter`, for deployments that have a
PostgreSQL and no Redis (the distributed crawl, whose database it already is). Each bucket is a
row of ``rate_buckets``, keyed by a SHA-256 digest of the instance and the token (the database
never holds a token) and the kind of request; the requests on their way are rows of
``rate_slots`` with a lease, so a killed process's slots come back by themselves. Each step —
taking a slot, folding in a response's ``X-RateLimit-*`` headers, holding the bucket after a
429 — is one transaction that locks the bucket's row and runs the in-process limiter's own
arithmetic (:class:`aiomasto._limiter.RateLimiter`) on it, so ``wait``, ``raise`` and ``pace``
mean what they mean in one process. ``asyncpg`` (the ``aiomasto[postgres]`` extra) is imported
when the limiter first talks to PostgreSQL.
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import logging
import math
import os
import re
import secrets
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from ._limiter import Bucket, Clock, RateLimiter, _true_reset, retry_after, server_skew
from ._postgres import check_dsn, import_asyncpg, redact_dsn, schema_lock_key
from ._protocol import RawResponse
from .errors import ConfigurationError, RateLimiterError
from .policies import RateLimitPolicy, WaitReason

if TYPE_CHECKING:
    from asyncpg import Pool
    from asyncpg.pool import PoolConnectionProxy

__all__ = ["PostgresLimiter"]

log = logging.getLogger("aiomasto")

# An answer in another process wakes no local event: a waiting task looks again this often.
_POLL = 0.05
_SCHEMA_NAME = re.compile(r"[a-z_][a-z0-9_]{0,62}")
# The bucket's fields, as Bucket keeps them (None: not known yet).
_FIELDS = (
    "limit_",
    "remaining",
    "reset_at",
    "headerless",
    "period",
    "last_reset",
    "next_slot",
    "blocked_until",
)
_TABLES = (
    "CREATE SCHEMA IF NOT EXISTS {s}",
    "CREATE TABLE IF NOT EXISTS {s}.rate_buckets (key text PRIMARY KEY, limit_ bigint, "
    "remaining bigint, reset_at float8, headerless boolean NOT NULL DEFAULT false, "
    "period float8, last_reset float8, next_slot float8 NOT NULL DEFAULT 0, "
    "blocked_until float8 NOT NULL DEFAULT 0, used_at timestamptz NOT NULL DEFAULT now())",
    "CREATE TABLE IF NOT EXISTS {s}.rate_slots (bucket text NOT NULL, slot text NOT NULL, "
    "until float8 NOT NULL, PRIMARY KEY (bucket, slot))",
    # Buckets unused for a day are forgotten, as the Redis keys expire.
    "DELETE FROM {s}.rate_buckets WHERE used_at < now() - interval '1 day'",
)
# The bucket's row, locked for the transaction (made if new).
_LOCK = (
    "INSERT INTO {s}.rate_buckets AS b (key) VALUES ($1) ON CONFLICT (key) DO UPDATE "  # noqa: S608
    "SET used_at = now() RETURNING " + ", ".join(_FIELDS)
)
# The slots still leased: a statement of its own, after the lock, so that its snapshot holds
# the slots the transactions this one waited for have just added.
_IN_FLIGHT = "SELECT count(*) FROM {s}.rate_slots WHERE bucket = $1 AND until >= $2"
_STORE = (
    "UPDATE {s}.rate_buckets SET "  # noqa: S608 - column names, no data
    + ", ".join(f"{name} = ${n}" for n, name in enumerate(_FIELDS, 2))
    + " WHERE key = $1"
)
_FORGET_SLOTS = "DELETE FROM {s}.rate_slots WHERE bucket = $1 AND (until < $2 OR slot = $3)"
_ADD_SLOT = "INSERT INTO {s}.rate_slots (bucket, slot, until) VALUES ($1, $2, $3)"


class PostgresLimiter:
    """Rate-limit buckets in PostgreSQL, shared by every process and machine using a token.

    ``dsn`` is a ``postgresql://`` URL; the tables live in ``schema`` (created if absent,
    ``aiomasto_limits`` by default: one per database is right, since budgets belong to tokens
    and instances, not to a crawl). ``lease`` bounds how long a request on its way counts
    against the budget if its process dies without giving its slot back. One limiter serves
    any number of Sessions; close it (``await limiter.close()`` or ``async with``) when done.

    Each step costs a transaction (a few round trips): use :class:`~aiomasto.RedisLimiter`
    where a Redis is at hand and requests are many and fast; this one where PostgreSQL is
    the one shared service (the crawl's workers, ``aiomasto crawl-worker`` without
    ``--redis``).

    Example::

        limiter = PostgresLimiter("postgresql://crawler:secret@db.example/crawls")
        async with limiter, Session(url, access_token=token, limiter=limiter) as masto:
            await masto.verify_credentials()
    """

    def __init__(
        self,
        dsn: str,
        *,
        schema: str = "aiomasto_limits",
        lease: float = 120.0,
        connections: int = 4,
    ) -> None:
        self._dsn = check_dsn(dsn)
        if not isinstance(schema, str) or not _SCHEMA_NAME.fullmatch(schema):
            raise ConfigurationError(f"schema must be a lower-case PostgreSQL name, not {schema!r}")
        if not 0 < lease < math.inf:
            raise ConfigurationError(f"lease must be a positive number of seconds, not {lease!r}")
        if type(connections) is not int or connections < 1:
            raise ConfigurationError(f"connections must be at least 1, not {connections!r}")
        self.schema = schema
        self.lease = float(lease)
        self._connections = connections
        self._s = f'"{schema}"'
        self._pool: Pool | None = None
        self._opening: asyncio.Lock | None = None
        self._pending: set[asyncio.Task[None]] = set()
        self._owner = f"{os.getpid()}-{secrets.token_hex(4)}"
        self._slots = itertools.count()

    def __repr__(self) -> str:
        return f"PostgresLimiter({self.where!r}, schema={self.schema!r})"

    @property
    def where(self) -> str:
        """The database, with its password masked."""
        return redact_dsn(self._dsn)

    async def __aenter__(self) -> PostgresLimiter:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def close(self) -> None:
        """Let the slots being given back reach the database, then close the connections."""
        if self._pending:
            await asyncio.gather(*self._pending, return_exceptions=True)
        pool, self._pool = self._pool, None
        if pool is not None:
            await pool.close()

    def bind(
        self, instance: str, policy: RateLimitPolicy, clock: Clock, *, max_wait: float
    ) -> _TableLimiter:
        """The limiter of one Session on ``instance`` (``Session(limiter=...)`` calls this)."""
        return _TableLimiter(self, instance, policy, clock, max_wait=max_wait)

    def key(self, token: str, kind: str, *, instance: str) -> str:
        """A bucket's key: a digest of the instance and the token, never the token."""
        digest = hashlib.sha256(f"{instance}\n{token}".encode()).hexdigest()[:32]
        return f"{digest}:{kind}"

    def slot_id(self) -> str:
        return f"{self._owner}-{next(self._slots)}"

    def sql(self, statement: str) -> str:
        return statement.replace("{s}", self._s)

    async def transaction(self, step: Callable[[PoolConnectionProxy[Any]], Awaitable[Any]]) -> Any:
        """Run ``step`` in one transaction; failures as :class:`~aiomasto.RateLimiterError`."""
        try:
            pool = await self._ready()
            async with pool.acquire() as connection, connection.transaction():
                return await step(connection)
        except (ImportError, ConfigurationError):
            raise
        except Exception as exc:
            if not _is_database_error(exc):
                raise
            raise RateLimiterError(
                f"the shared rate budget at {self.where} could not be used ({type(exc).__name__})"
            ) from None

    async def _ready(self) -> Pool:
        if self._pool is not None:
            return self._pool
        if self._opening is None:
            self._opening = asyncio.Lock()
        async with self._opening:
            if self._pool is None:
                driver = import_asyncpg()
                pool = await driver.create_pool(self._dsn, min_size=1, max_size=self._connections)
                try:
                    async with pool.acquire() as connection, connection.transaction():
                        await connection.execute(
                            "SELECT pg_advisory_xact_lock($1)",
                            schema_lock_key(self.schema, "rate limits"),
                        )
                        for statement in _TABLES:
                            await connection.execute(self.sql(statement))
                except BaseException:
                    await pool.close()
                    raise
                self._pool = pool
            return self._pool

    def finish(self, step: Callable[[], Awaitable[object]]) -> Awaitable[None]:
        """Run ``step`` to its end even if the awaiting task is cancelled meanwhile (a slot
        given back must reach the database); a failure is logged, the lease ends it anyway."""

        async def guarded() -> None:
            try:
                await step()
            except Exception as exc:
                log.warning("could not give a rate-limit slot back to %s: %s", self.where, exc)

        task = asyncio.get_running_loop().create_task(guarded())
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)
        return asyncio.shield(task)


class _TableBucket(Bucket):
    """This process's handle on a shared bucket: its key and the slots it holds."""

    def __init__(self, key: str) -> None:
        super().__init__()
        self.key = key
        self.slots: list[str] = []


def _load(row: Any, in_flight: int) -> Bucket:
    """The stored bucket as a Bucket the in-process arithmetic runs on."""
    bucket = Bucket()
    bucket.limit = row["limit_"]
    bucket.remaining = row["remaining"]
    bucket.reset_at = row["reset_at"]
    bucket.headerless = row["headerless"]
    bucket.period = row["period"]
    bucket.last_reset = row["last_reset"]
    bucket.next_slot = row["next_slot"]
    bucket.blocked_until = row["blocked_until"]
    bucket.in_flight = in_flight
    return bucket


def _dump(bucket: Bucket) -> tuple[Any, ...]:
    return (
        bucket.limit,
        bucket.remaining,
        bucket.reset_at,
        bucket.headerless,
        bucket.period,
        bucket.last_reset,
        bucket.next_slot,
        bucket.blocked_until,
    )


class _TableLimiter(RateLimiter):
    """One Session's view of the shared buckets; the announcements stay per process."""

    def __init__(
        self,
        backend: PostgresLimiter,
        instance: str,
        policy: RateLimitPolicy,
        clock: Clock,
        *,
        max_wait: float,
    ) -> None:
        super().__init__(policy, clock, max_wait=max_wait)
        self.backend = backend
        self.instance = instance

    def bucket(self, token: str, kind: str) -> Bucket:
        found = self.buckets.get((token, kind))
        if found is None:
            found = _TableBucket(self.backend.key(token, kind, instance=self.instance))
            self.buckets[(token, kind)] = found
        return found

    async def _locked(self, connection: PoolConnectionProxy[Any], key: str, now: float) -> Bucket:
        row = await connection.fetchrow(self.backend.sql(_LOCK), key)
        in_flight = await connection.fetchval(self.backend.sql(_IN_FLIGHT), key, now)
        return _load(row, int(in_flight))

    async def _store(self, connection: PoolConnectionProxy[Any], key: str, state: Bucket) -> None:
        limit = state.limit
        remaining = None if state.remaining is None else int(state.remaining)
        await connection.execute(self.backend.sql(_STORE), key, limit, remaining, *_dump(state)[2:])

    async def take(self, bucket: Bucket) -> tuple[float | None, WaitReason | None]:
        if self.policy == "raise":
            return 0.0, None  # nothing to wait for: the server's 429 is the answer
        handle = _handle(bucket)
        slot = self.backend.slot_id()

        async def step(connection: PoolConnectionProxy[Any]) -> tuple[float | None, Any, Any]:
            now = self.clock()
            state = await self._locked(connection, handle.key, now)
            delay, reason = self._decide(state)
            await self._store(connection, handle.key, state)
            if delay is not None and reason in (None, "pacing"):
                until = now + delay + self.backend.lease
                await connection.execute(self.backend.sql(_ADD_SLOT), handle.key, slot, until)
            return delay, reason, state.reset_at

        try:
            delay, reason, reset_at = await self.backend.transaction(step)
        except BaseException:
            # Cancelled while the slot may have been taken: give it back, taken or not.
            await self.backend.finish(lambda: self._forget(handle, slot))
            raise
        handle.reset_at = reset_at
        if delay is None:
            return None, None
        if reason in (None, "pacing"):
            handle.slots.append(slot)
            handle.in_flight += 1
        return float(delay), reason

    async def news(self, bucket: Bucket) -> None:
        # An answer in this process wakes at once; one in another process, at the next look.
        try:
            async with asyncio.timeout(_POLL):
                await bucket.heard.wait()
        except TimeoutError:
            pass

    async def settle(self, bucket: Bucket, response: RawResponse) -> None:
        handle = _handle(bucket)
        now = self.clock()
        headers, status = response.headers, response.status
        report = response.ratelimit
        slot = handle.slots.pop() if handle.slots else ""
        handle.answered()
        if report is not None:
            self.latest = report
            report = _true_reset(report, headers.get("X-RateLimit-Reset", ""))
        hold = status == 429 and retry_after(headers, now) is not None
        skew = server_skew(headers, now)

        async def step(connection: PoolConnectionProxy[Any]) -> None:
            await connection.execute(self.backend.sql(_FORGET_SLOTS), handle.key, now, slot)
            if hold:
                return  # rate_limited() holds the bucket for as long as the server said
            state = await self._locked(connection, handle.key, now)
            state.in_flight += 1  # observe() counts this answer out
            state.observe(report, status=status, skew=skew)
            await self._store(connection, handle.key, state)

        await self.backend.finish(lambda: self.backend.transaction(step))

    async def hold(self, bucket: Bucket, *, retry_after: float | None, fallback: float) -> bool:
        handle = _handle(bucket)

        async def step(connection: PoolConnectionProxy[Any]) -> tuple[bool, float]:
            state = await self._locked(connection, handle.key, self.clock())
            known = self.rate_limited(state, retry_after=retry_after, fallback=fallback)
            await self._store(connection, handle.key, state)
            return known, state.blocked_until

        known, until = await self.backend.transaction(step)
        handle.blocked_until = until
        return bool(known)

    async def give_back(self, bucket: Bucket) -> None:
        handle = _handle(bucket)
        handle.answered()
        if handle.slots:
            slot = handle.slots.pop()
            await self.backend.finish(lambda: self._forget(handle, slot))

    async def _forget(self, handle: _TableBucket, slot: str) -> None:
        async def step(connection: PoolConnectionProxy[Any]) -> None:
            await connection.execute(
                self.backend.sql(_FORGET_SLOTS), handle.key, self.clock(), slot
            )

        await self.backend.transaction(step)


def _handle(bucket: Bucket) -> _TableBucket:
    if not isinstance(bucket, _TableBucket):
        raise TypeError("a bucket of another limiter")
    return bucket


def _is_database_error(exc: Exception) -> bool:
    driver = import_asyncpg()
    return isinstance(exc, driver.PostgresError | driver.InterfaceError | OSError | TimeoutError)
