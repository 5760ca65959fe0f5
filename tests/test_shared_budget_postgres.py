"""One token's rate budget shared over a real PostgreSQL by real processes (PostgresLimiter).

The same scenarios as the Redis limiter's (``test_shared_budget.py``), on the table-backed
limiter ``aiomasto crawl-worker`` uses when no Redis is given.
"""

from __future__ import annotations

import asyncio
import json
import math
import sys
import time
import uuid
from collections.abc import Callable

import pytest
from test_shared_budget import LIMIT, PERIOD, WINDOW, answer, per_window, record

from aiomasto import RateLimiterError, Session
from aiomasto.ratelimit_postgres import PostgresLimiter
from aiomasto.testing import FakeMastodon

M = "https://m.example"

WORKER = """
import asyncio, json, sys, time
from aiomasto import Session
from aiomasto.ratelimit_postgres import PostgresLimiter

url, token, dsn, account, schema = sys.argv[1:6]
start, stop, tasks = float(sys.argv[6]), float(sys.argv[7]), int(sys.argv[8])

async def main() -> None:
    ok, errors = 0, []
    limiter = PostgresLimiter(dsn, schema=schema)
    async with limiter, Session(url, access_token=token, limiter=limiter) as masto:
        await asyncio.sleep(max(0.0, start - time.time()))

        async def fetch() -> None:
            nonlocal ok
            while time.time() < stop:
                try:
                    await masto.account(account)
                    ok += 1
                except Exception as exc:
                    errors.append(f"{type(exc).__name__}: {exc}")

        await asyncio.gather(*(fetch() for _ in range(tasks)))
    print(json.dumps({"ok": ok, "errors": errors}), flush=True)

asyncio.run(main())
"""


def schema() -> str:
    return f"limits_{uuid.uuid4().hex[:10]}"


async def test_four_processes_share_one_budget_without_a_429(postgres_url: str) -> None:
    server = FakeMastodon(limits=WINDOW, enforce_rate_limit=True)
    alice = server.add_account("alice")
    token = server.issue_user_token(alice)
    seen = record(server)
    windows = 4
    where = schema()
    async with asyncio.timeout(45), server.run() as url:
        start = (math.floor(time.time() / PERIOD) + 3) * PERIOD
        args = [url, token, postgres_url, alice, where, str(start), str(start + windows * PERIOD)]
        workers = [
            await asyncio.create_subprocess_exec(
                sys.executable,
                "-c",
                WORKER,
                *args,
                "8",
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
            )
            for _ in range(4)
        ]
        done = []
        for worker in workers:
            out, err = await worker.communicate()
            assert worker.returncode == 0, err.decode()[-2000:]
            done.append(json.loads(out))
    first = math.floor(start / PERIOD)
    used = per_window(seen, 200)
    print(f"\nper window: {[used.get(first + i, 0) for i in range(windows)]}")
    assert server.throttled == 0
    assert per_window(seen, 429) == {}
    assert all(result["errors"] == [] for result in done), done
    for window in range(first, first + windows):
        assert used.get(window, 0) >= 0.9 * LIMIT, (window - first, used)


async def test_pace_spreads_the_shared_budget_over_every_process(postgres_url: str) -> None:
    now = 1_800_000_000.0
    clock: Callable[[], float] = lambda: now  # noqa: E731
    where = schema()
    async with (
        asyncio.timeout(20),
        PostgresLimiter(postgres_url, schema=where) as one,
        PostgresLimiter(postgres_url, schema=where) as two,
    ):
        a = one.bind(M, "pace", clock, max_wait=960.0)
        b = two.bind(M, "pace", clock, max_wait=960.0)
        first, second = (x.bucket("tok", "api") for x in (a, b))
        assert await a.take(first) == (0.0, None)
        await a.settle(first, answer(remaining=10, reset_at=now + 10))
        delays = []
        for limiter, bucket in [(a, first), (b, second)] * 5:
            delay, reason = await limiter.take(bucket)
            assert reason == "pacing"
            delays.append(delay)
        assert delays == pytest.approx([float(i) for i in range(10)], abs=0.01)
        delay, reason = await b.take(second)
        assert reason == "budget_spent"
        assert delay == pytest.approx(10.05, abs=0.01)


async def test_a_429_in_one_process_holds_every_process(postgres_url: str) -> None:
    now = 1_800_000_000.0
    clock: Callable[[], float] = lambda: now  # noqa: E731
    where = schema()
    async with (
        asyncio.timeout(20),
        PostgresLimiter(postgres_url, schema=where) as one,
        PostgresLimiter(postgres_url, schema=where) as two,
    ):
        a = one.bind(M, "wait", clock, max_wait=960.0)
        b = two.bind(M, "wait", clock, max_wait=960.0)
        first, second = (x.bucket("tok", "api") for x in (a, b))
        assert await a.take(first) == (0.0, None)
        await a.settle(first, answer(remaining=0, reset_at=now + 100, status=429))
        assert await a.hold(first, retry_after=30.0, fallback=1.0) is True
        delay, reason = await b.take(second)
        assert reason == "rate_limited"
        assert delay == pytest.approx(30.0)
        elsewhere = two.bind("https://other.example", "wait", clock, max_wait=960.0)
        assert await elsewhere.take(elsewhere.bucket("tok", "api")) == (0.0, None)


async def test_the_servers_word_from_any_process_resyncs_the_budget(postgres_url: str) -> None:
    now = 1_800_000_000.0
    clock: Callable[[], float] = lambda: now  # noqa: E731
    where = schema()
    async with (
        asyncio.timeout(20),
        PostgresLimiter(postgres_url, schema=where) as one,
        PostgresLimiter(postgres_url, schema=where) as two,
    ):
        a = one.bind(M, "wait", clock, max_wait=960.0)
        b = two.bind(M, "wait", clock, max_wait=960.0)
        first, second = (x.bucket("tok", "api") for x in (a, b))
        await a.take(first)
        await a.settle(first, answer(remaining=2, reset_at=now + 60))
        assert await b.take(second) == (0.0, None)
        await b.settle(second, answer(remaining=0, reset_at=now + 60))
        delay, reason = await a.take(first)
        assert reason == "budget_spent"
        assert delay == pytest.approx(60.05)
        now += 61
        assert await a.take(first) == (0.0, None)


async def test_an_unreachable_database_is_a_typed_error_without_the_password(
    postgres_url: str,
) -> None:
    password = postgres_url.split(":")[2].split("@")[0]
    wrong = postgres_url.replace(password, "not-the-password")
    server = FakeMastodon()
    alice = server.add_account("alice")
    token = server.issue_user_token(alice)
    limiter = PostgresLimiter(wrong)
    async with (
        asyncio.timeout(20),
        server.run() as url,
        limiter,
        Session(url, access_token=token, limiter=limiter) as masto,
    ):
        with pytest.raises(RateLimiterError) as caught:
            await masto.account(alice)
    assert "not-the-password" not in str(caught.value)
    assert "***" in str(caught.value)
    assert "not-the-password" not in repr(limiter)
