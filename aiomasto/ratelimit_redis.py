"""One rate budget per token for every process and machine using it, kept in Redis.

The server counts a token's requests once, however many processes send them; with
``Session(..., limiter=RedisLimiter(url))`` they also share one picture of its budget. Each
bucket (per token and kind of request, as in one process) is a Redis hash updated by Lua
scripts, so taking a slot, folding in the ``X-RateLimit-*`` headers any process received and
holding the bucket after a 429 are each one atomic step: the same steps as
:class:`aiomasto._limiter.RateLimiter`, on shared state. The requests on their way are a sorted
set of leases, so the slots of a killed process come back by themselves after ``lease``
seconds, while a slot given back (an answer, an error, a cancelled task) goes at once.

Keys are ``{prefix}:budget:{digest}:{kind}`` (and ``...:flight``), where the digest is a
SHA-256 of the instance and the token: Redis never holds a token. They expire a day after
their last use. ``redis`` (redis-py's asyncio client, the ``aiomasto[redis]`` extra) is
imported when the limiter first talks to Redis, not when aiomasto is imported.
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import logging
import math
import os
import secrets
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from yarl import URL

from ._limiter import (
    _RESET_MARGIN,
    _SHORTEST_HOLD,
    Bucket,
    Clock,
    RateLimiter,
    _true_reset,
    retry_after,
    server_skew,
)
from ._protocol import RawResponse
from .errors import ConfigurationError, RateLimiterError
from .policies import RateLimitPolicy, WaitReason

if TYPE_CHECKING:
    from redis.asyncio import Redis
    from redis.commands.core import AsyncScript

__all__ = ["RedisLimiter"]

log = logging.getLogger("aiomasto")

# Until a bucket is known, or while it is spent with no reset known, a task waits for an
# answer; one may come from another process, which no local event announces, so look again
# this often.
_POLL = 0.05
_TTL = 86_400  # seconds a bucket outlives its last use in Redis
_TAIL = (_TTL, _RESET_MARGIN)
_HOLD_TAIL = (_RESET_MARGIN, _SHORTEST_HOLD, _TTL)

# Lua's numbers are doubles; '%.17g' writes them back exactly. A script returns strings,
# because Redis would truncate a number it returns to an integer.
_COMMON = """
local function f(x) return string.format('%.17g', x) end
local state, flight = KEYS[1], KEYS[2]
"""

# RateLimiter._decide and Bucket.roll_over, on the shared bucket. ARGV: now, policy, max_wait,
# slot id, lease (from when the request may go), ttl, reset margin. Returns {delay or ''
# (wait for news), reason or '', reset_at or ''}; a slot is taken when the reason is '' or
# 'pacing' and the delay is not ''.
_TAKE = (
    _COMMON
    + """
local now, policy, max_wait = tonumber(ARGV[1]), ARGV[2], tonumber(ARGV[3])
local margin = tonumber(ARGV[7])
redis.call('ZREMRANGEBYSCORE', flight, '-inf', ARGV[1])
local v = redis.call('HMGET', state, 'limit', 'remaining', 'reset_at', 'headerless', 'period',
                     'last_reset', 'next_slot', 'blocked_until')
local limit, remaining, reset_at = tonumber(v[1]), tonumber(v[2]), tonumber(v[3])
local headerless, period, last_reset = v[4] == '1', tonumber(v[5]), tonumber(v[6])
local next_slot, blocked = tonumber(v[7]) or 0, tonumber(v[8]) or 0
local in_flight = redis.call('ZCARD', flight)
local function answer(delay, reason)
  return {delay and f(delay) or '', reason, reset_at and f(reset_at) or ''}
end
local function take(delay, reason)
  redis.call('ZADD', flight, f(now + delay + tonumber(ARGV[5])), ARGV[4])
  redis.call('EXPIRE', flight, ARGV[6])
  return answer(delay, reason)
end
if now < blocked then return answer(blocked - now, 'rate_limited') end
if reset_at and now >= reset_at + margin then
  last_reset = reset_at
  if limit then remaining = math.max(0, limit - in_flight) end
  if period then
    reset_at = reset_at + (math.floor((now - reset_at) / period) + 1) * period
    redis.call('HSET', state, 'reset_at', f(reset_at))
  else
    reset_at = nil
    redis.call('HDEL', state, 'reset_at')
  end
  redis.call('HSET', state, 'last_reset', f(last_reset), 'next_slot', f(now))
  if remaining then redis.call('HSET', state, 'remaining', f(remaining)) end
  redis.call('EXPIRE', state, ARGV[6])
  next_slot = now
end
if not (headerless or limit) then
  if in_flight > 0 then return answer(nil, '') end
  return take(0, '')
end
if headerless or not remaining then return take(0, '') end
if remaining <= 0 then
  if reset_at then return answer(math.max(0, reset_at + margin - now), 'budget_spent') end
  if in_flight > 0 then return answer(nil, '') end
  return take(0, '')
end
remaining = remaining - 1
redis.call('HSET', state, 'remaining', f(remaining))
redis.call('EXPIRE', state, ARGV[6])
if policy ~= 'pace' or not reset_at then return take(0, '') end
local slot = math.max(now, next_slot)
local horizon = math.min(reset_at, now + max_wait)
local interval = math.max(0, horizon - slot) / (remaining + 1)
redis.call('HSET', state, 'next_slot', f(slot + interval))
return take(slot - now, 'pacing')
"""
)

# Bucket.observe. ARGV: slot id or '', status, what ('hold': a 429 with Retry-After, which
# HOLD handles; 'none': no rate-limit headers; 'report'), limit, remaining, reset on the
# local clock or '', ttl.
_SETTLE = (
    _COMMON
    + """
if ARGV[1] ~= '' then redis.call('ZREM', flight, ARGV[1]) end
if ARGV[3] == 'hold' then return '' end
local v = redis.call('HMGET', state, 'limit', 'remaining', 'reset_at', 'last_reset', 'period')
local limit, remaining, reset_at = tonumber(v[1]), tonumber(v[2]), tonumber(v[3])
local last_reset, period = tonumber(v[4]), tonumber(v[5])
if ARGV[3] == 'none' then
  if not limit and tonumber(ARGV[2]) < 400 then
    redis.call('HSET', state, 'headerless', '1')
    redis.call('EXPIRE', state, ARGV[7])
  end
  return ''
end
local reported = tonumber(ARGV[5])
local function least(estimate) if estimate then return math.min(estimate, reported) end
  return reported end
redis.call('HSET', state, 'headerless', '0', 'limit', ARGV[4])
redis.call('EXPIRE', state, ARGV[7])
if ARGV[6] == '' then
  redis.call('HSET', state, 'remaining', f(least(remaining)))
  return ''
end
local reset = tonumber(ARGV[6])
if last_reset and reset < last_reset + 0.5 then return '' end
if reset_at and reset > reset_at + 1.0 then
  last_reset = reset_at
  remaining = reported
  redis.call('HSET', state, 'last_reset', f(last_reset))
elseif not reset_at and not last_reset then
  remaining = reported
else
  remaining = least(remaining)
end
if last_reset and reset - last_reset >= 1.0 then
  local gap = reset - last_reset
  if not period or gap < period then redis.call('HSET', state, 'period', f(gap)) end
end
redis.call('HSET', state, 'remaining', f(remaining), 'reset_at', f(reset))
return ''
"""
)

# RateLimiter.rate_limited. ARGV: now, retry_after or '', fallback, reset margin, shortest
# hold, ttl. Returns {'1' if the server said when else '0', blocked_until}.
_HOLD = (
    _COMMON
    + """
local now, margin, shortest = tonumber(ARGV[1]), tonumber(ARGV[4]), tonumber(ARGV[5])
local v = redis.call('HMGET', state, 'reset_at', 'blocked_until')
local reset_at, blocked = tonumber(v[1]), tonumber(v[2]) or 0
local known, hold = '1', nil
if ARGV[2] ~= '' then
  hold = now + math.max(tonumber(ARGV[2]), shortest)
elseif reset_at and reset_at + margin > now then
  redis.call('HSET', state, 'remaining', '0')
  hold = math.max(reset_at + margin, now + shortest)
else
  hold = now + math.max(tonumber(ARGV[3]), shortest)
  known = '0'
end
blocked = math.max(blocked, hold)
redis.call('HSET', state, 'blocked_until', f(blocked))
redis.call('EXPIRE', state, ARGV[6])
return {known, f(blocked)}
"""
)


class RedisLimiter:
    """Rate-limit buckets in Redis, shared by every process and machine that uses a token.

    ``redis`` is a ``redis://`` (or ``rediss://``, ``unix://``) URL, or a
    ``redis.asyncio.Redis`` client you own (then never closed here). ``prefix`` namespaces the
    keys. ``lease`` bounds how long a request on its way counts against the budget if its
    process dies without giving its slot back. One RedisLimiter can serve any number of
    Sessions; close it (``await limiter.close()`` or ``async with``) when done.

    ``wait``, ``raise`` and ``pace`` behave as with one process: a spent window holds every
    process until the reset, a 429 any process gets holds them all, and ``pace`` spreads what
    is left of the window over its time left among all of them.

    Example::

        limiter = RedisLimiter("redis://:password@127.0.0.1:6379/0")
        async with limiter, Session(url, access_token=token, limiter=limiter) as masto:
            await masto.verify_credentials()
    """

    def __init__(
        self,
        redis: str | Redis,
        *,
        prefix: str = "aiomasto",
        lease: float = 120.0,
    ) -> None:
        if not isinstance(prefix, str) or not prefix:
            raise ConfigurationError("prefix must be a non-empty string")
        if not 0 < lease < math.inf:
            raise ConfigurationError(f"lease must be a positive number of seconds, not {lease!r}")
        self.prefix = prefix
        self.lease = lease
        self._url: str | None = redis if isinstance(redis, str) else None
        self._client: Redis | None = None if isinstance(redis, str) else redis
        self._owns_client = isinstance(redis, str)
        self._scripts: dict[str, AsyncScript] = {}
        self._pending: set[asyncio.Task[None]] = set()
        # Slot ids are unique across processes and machines; a slot is one request's lease.
        self._owner = f"{os.getpid()}-{secrets.token_hex(4)}"
        self._slots = itertools.count()

    def __repr__(self) -> str:
        return f"RedisLimiter({self.where!r}, prefix={self.prefix!r})"

    @property
    def where(self) -> str:
        """The Redis server, with its password masked."""
        if self._url is None:
            return "<a redis.asyncio.Redis client>"
        try:
            url = URL(self._url)
        except ValueError:
            return "<an unreadable redis URL>"
        return str(url.with_password("***")) if url.password else str(url)

    async def __aenter__(self) -> RedisLimiter:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def close(self) -> None:
        """Let the slots being given back reach Redis, then close the client if it is ours."""
        if self._pending:
            await asyncio.gather(*self._pending, return_exceptions=True)
        if self._client is not None and self._owns_client:
            await self._client.aclose()
            self._client = None
            self._scripts.clear()

    def bind(
        self, instance: str, policy: RateLimitPolicy, clock: Clock, *, max_wait: float
    ) -> _SharedLimiter:
        """The limiter of one Session on ``instance`` (``Session(limiter=...)`` calls this)."""
        return _SharedLimiter(self, instance, policy, clock, max_wait=max_wait)

    def key(self, token: str, kind: str, *, instance: str) -> str:
        """The Redis key of a bucket: a digest of the instance and the token, never the token."""
        digest = hashlib.sha256(f"{instance}\n{token}".encode()).hexdigest()[:32]
        return f"{self.prefix}:budget:{digest}:{kind}"

    def slot_id(self) -> str:
        return f"{self._owner}-{next(self._slots)}"

    async def run(self, name: str, keys: list[str], args: list[str | float]) -> Any:
        """Run one of the scripts, as one atomic step."""
        try:
            script = self._scripts.get(name) or self._register(name)
            return await script(keys=keys, args=args)
        except ImportError:
            raise
        except Exception as exc:
            if not _is_redis_error(exc):
                raise
            raise RateLimiterError(
                f"the shared rate budget at {self.where} could not be used ({type(exc).__name__})"
            ) from None

    def _register(self, name: str) -> AsyncScript:
        if self._client is None:
            from redis.asyncio import Redis

            assert self._url is not None
            self._client = Redis.from_url(self._url)
        script = self._client.register_script({"take": _TAKE, "settle": _SETTLE}.get(name, _HOLD))
        self._scripts[name] = script
        return script

    async def finish(self, step: Callable[[], Awaitable[object]]) -> None:
        """Run ``step`` to its end even if the awaiting task is cancelled meanwhile.

        A slot given back must reach Redis: else it would count against every process until
        its lease ends. A failure is logged, not raised (the lease ends it anyway), so it
        never hides the error that led here.
        """

        async def guarded() -> None:
            try:
                await step()
            except Exception as exc:
                log.warning("could not give a rate-limit slot back to %s: %s", self.where, exc)

        task = asyncio.get_running_loop().create_task(guarded())
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)
        await asyncio.shield(task)


class _SharedBucket(Bucket):
    """This process's handle on a shared bucket: its keys and the slots it holds."""

    def __init__(self, key: str) -> None:
        super().__init__()
        self.state = key
        self.flight = f"{key}:flight"
        self.slots: list[str] = []


class _SharedLimiter(RateLimiter):
    """One Session's view of the shared buckets; the announcements stay per process."""

    def __init__(
        self,
        backend: RedisLimiter,
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
            found = _SharedBucket(self.backend.key(token, kind, instance=self.instance))
            self.buckets[(token, kind)] = found
        return found

    async def take(self, bucket: Bucket) -> tuple[float | None, WaitReason | None]:
        if self.policy == "raise":
            return 0.0, None  # nothing to wait for: the server's 429 is the answer
        shared = _handle(bucket)
        slot = self.backend.slot_id()
        now = self.clock()
        try:
            delay, reason, reset_at = await self.backend.run(
                "take",
                [shared.state, shared.flight],
                [now, self.policy, min(self.max_wait, 1e15), slot, self.backend.lease, *_TAIL],
            )
        except BaseException:
            # Cancelled while Redis may have granted it: give it back, taken or not.
            await self.backend.finish(lambda: self._zrem(shared, slot))
            raise
        shared.reset_at = float(reset_at) if reset_at else None
        if not delay:
            return None, None
        why: WaitReason | None = _reason(reason)
        if why in (None, "pacing"):
            shared.slots.append(slot)
            shared.in_flight += 1
        return float(delay), why

    async def news(self, bucket: Bucket) -> None:
        # An answer in this process wakes at once; one in another process, at the next look.
        try:
            async with asyncio.timeout(_POLL):
                await bucket.heard.wait()
        except TimeoutError:
            pass

    async def settle(self, bucket: Bucket, response: RawResponse) -> None:
        shared = _handle(bucket)
        now = self.clock()
        headers, status = response.headers, response.status
        report = response.ratelimit
        slot = shared.slots.pop() if shared.slots else ""
        shared.answered()
        what, limit, remaining, reset = "none", "", "", ""
        if report is not None:
            self.latest = report
            report = _true_reset(report, headers.get("X-RateLimit-Reset", ""))
            what, limit, remaining = "report", str(report.limit), str(report.remaining)
            if report.reset is not None:
                reset = repr(report.reset.timestamp() - server_skew(headers, now))
        if status == 429 and retry_after(headers, now) is not None:
            what = "hold"
        args: list[str | float] = [slot, status, what, limit, remaining, reset, _TTL]
        await self.backend.finish(
            lambda: self.backend.run("settle", [shared.state, shared.flight], args)
        )

    async def hold(self, bucket: Bucket, *, retry_after: float | None, fallback: float) -> bool:
        shared = _handle(bucket)
        known, until = await self.backend.run(
            "hold",
            [shared.state, shared.flight],
            [self.clock(), "" if retry_after is None else retry_after, fallback, *_HOLD_TAIL],
        )
        shared.blocked_until = float(until)
        return bool(known == b"1" or known == "1")

    async def give_back(self, bucket: Bucket) -> None:
        shared = _handle(bucket)
        shared.answered()
        if shared.slots:
            slot = shared.slots.pop()
            await self.backend.finish(lambda: self._zrem(shared, slot))

    async def _zrem(self, shared: _SharedBucket, slot: str) -> None:
        await self.backend.run("settle", [shared.state, shared.flight], [slot, 0, "hold"])


def _handle(bucket: Bucket) -> _SharedBucket:
    if not isinstance(bucket, _SharedBucket):
        raise TypeError("a bucket of another limiter")
    return bucket


def _reason(raw: bytes | str) -> WaitReason | None:
    text = raw.decode() if isinstance(raw, bytes) else raw
    if text == "pacing":
        return "pacing"
    if text == "budget_spent":
        return "budget_spent"
    if text == "rate_limited":
        return "rate_limited"
    return None


def _is_redis_error(exc: Exception) -> bool:
    try:
        from redis.exceptions import RedisError
    except ImportError:  # pragma: no cover - redis is what raised
        return False
    return isinstance(exc, RedisError | OSError)
