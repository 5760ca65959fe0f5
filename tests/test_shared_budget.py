"""One token's rate budget shared over a real Redis by real processes (RedisLimiter).

The fake server enforces a small window on the real clock (60 requests per 2 s), and worker
processes (``python -c WORKER``) hammer it with one token through ``RedisLimiter``; a
middleware on the fake records when each request was counted and how it was answered.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import signal
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime

import pytest
from aiohttp import web
from redis.asyncio import Redis
from yarl import URL

import aiomasto
from aiomasto import RateLimiterError, RedisLimiter, Session, Waiting
from aiomasto._protocol import RawResponse
from aiomasto.testing import FakeMastodon, Fault, Limits

LIMIT = 60
M = "https://m.example"
PERIOD = 2.0  # whole seconds: Mastodon's windows are aligned to the epoch's seconds
WINDOW = Limits(
    per_user=(LIMIT, PERIOD), per_token=(LIMIT, PERIOD), per_ip=(LIMIT, PERIOD), paging=None
)

# One process of the fleet: TASKS tasks fetch an account until STOP, then it prints what it got.
WORKER = """
import asyncio, json, sys, time
from aiomasto import RedisLimiter, Session

url, token, redis, account, prefix = sys.argv[1:6]
start, stop = float(sys.argv[6]), float(sys.argv[7])
tasks, lease, policy = int(sys.argv[8]), float(sys.argv[9]), sys.argv[10]

async def main() -> None:
    ok, errors = 0, []
    limiter = RedisLimiter(redis, prefix=prefix, lease=lease)
    session = Session(url, access_token=token, limiter=limiter, rate_limit=policy)
    async with limiter, session as masto:
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


def record(server: FakeMastodon) -> list[tuple[float, int]]:
    """When each account request reached the fake server, and its status."""
    seen: list[tuple[float, int]] = []

    @web.middleware
    async def stamp(
        request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        at = time.time()
        response = await handler(request)
        if request.path.startswith("/api/v1/accounts/"):
            seen.append((at, response.status))
        return response

    server.app.middlewares.append(stamp)
    return seen


def per_window(seen: list[tuple[float, int]], status: int) -> dict[int, int]:
    counts: dict[int, int] = {}
    for at, got in seen:
        if got == status:
            window = math.floor(at / PERIOD)
            counts[window] = counts.get(window, 0) + 1
    return counts


async def fleet(
    url: str,
    token: str,
    redis_url: str,
    account: str,
    prefix: str,
    *,
    processes: int,
    tasks: int,
    windows: int,
    lease: float = 120.0,
    policy: str = "wait",
) -> tuple[float, list[asyncio.subprocess.Process]]:
    """Start the workers; they begin together at a window boundary. Returns it and them."""
    # Time to import aiomasto in every process, on shared cores, before the first window.
    start = (math.floor(time.time() / PERIOD) + 3) * PERIOD
    args = [url, token, redis_url, account, prefix, str(start), str(start + windows * PERIOD)]
    workers = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            WORKER,
            *args,
            str(tasks),
            str(lease),
            policy,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        for _ in range(processes)
    ]
    return start, workers


async def results(worker: asyncio.subprocess.Process) -> dict[str, object]:
    out, err = await worker.communicate()
    assert worker.returncode == 0, err.decode()[-2000:]
    got: dict[str, object] = json.loads(out)
    return got


@contextlib.asynccontextmanager
async def redis_client(redis_url: str) -> AsyncIterator[Redis]:
    client = Redis.from_url(redis_url)
    try:
        yield client
    finally:
        await client.aclose()


@pytest.mark.parametrize("policy", ["wait", "pace"])
async def test_four_processes_share_one_budget_without_a_429(redis_url: str, policy: str) -> None:
    server = FakeMastodon(limits=WINDOW, enforce_rate_limit=True)
    alice = server.add_account("alice")
    token = server.issue_user_token(alice)
    seen = record(server)
    windows = 4
    async with asyncio.timeout(40), server.run() as url:
        start, workers = await fleet(
            url,
            token,
            redis_url,
            alice,
            policy,
            processes=4,
            tasks=8,
            windows=windows,
            policy=policy,
        )
        done = [await results(worker) for worker in workers]
    first = math.floor(start / PERIOD)
    used = per_window(seen, 200)
    print(f"\nper window: {[used.get(first + i, 0) for i in range(windows)]}, {done=}")
    assert server.throttled == 0
    assert per_window(seen, 429) == {}
    assert all(result["errors"] == [] for result in done), done
    assert all(isinstance(result["ok"], int) and result["ok"] > 0 for result in done)
    for window in range(first, first + windows):
        assert used.get(window, 0) >= 0.9 * LIMIT, (window - first, used)
    if policy == "pace":
        # Spread over each window by every process together, not sent in a burst at its start,
        # once two resets have shown the window's length (until then, a new window's reset is
        # not known before its first answer: as in one process).
        early = per_window([(at, got) for at, got in seen if at % PERIOD < PERIOD / 2], 200)
        for window in range(first + 2, first + windows):
            assert early.get(window, 0) <= 0.7 * used[window], (window - first, early, used)


async def test_a_process_killed_mid_window_leaves_the_budget_to_the_others(
    redis_url: str,
) -> None:
    server = FakeMastodon(limits=WINDOW, enforce_rate_limit=True)
    alice = server.add_account("alice")
    token = server.issue_user_token(alice)
    seen = record(server)
    windows = 5
    async with asyncio.timeout(40), server.run() as url:
        start, workers = await fleet(
            url, token, redis_url, alice, "killed", processes=4, tasks=8, windows=windows, lease=1.0
        )
        await asyncio.sleep(start + 1.5 * PERIOD - time.time())  # mid-window, requests going
        workers[0].send_signal(signal.SIGKILL)
        await workers[0].wait()
        done = [await results(worker) for worker in workers[1:]]
    first = math.floor(start / PERIOD)
    used = per_window(seen, 200)
    print(f"\nper window: {[used.get(first + i, 0) for i in range(windows)]}, {done=}")
    assert workers[0].returncode == -signal.SIGKILL
    assert server.throttled == 0
    assert all(result["errors"] == [] for result in done), done
    # The window after the kill, and every one after it, is used as fully as before.
    for window in range(first + 2, first + windows):
        assert used.get(window, 0) >= 0.9 * LIMIT, (window - first, used)


async def test_cancelled_requests_leave_no_slot_in_redis(redis_url: str) -> None:
    server = FakeMastodon(limits=Limits(per_user=(LIMIT, 300.0), per_token=(LIMIT, 300.0)))
    alice = server.add_account("alice")
    token = server.issue_user_token(alice)
    path = f"/api/v1/accounts/{alice}"
    async with (
        asyncio.timeout(20),
        server.run() as url,
        RedisLimiter(redis_url, prefix="cancel") as limiter,
        redis_client(redis_url) as redis,
    ):
        for policy in ("wait", "pace"):
            async with Session(url, access_token=token, limiter=limiter, rate_limit=policy) as m:
                await m.account(alice)  # the budget is known: 59 left for 300 s, so pace waits
                server.inject(path, Fault.slow(5.0), times=10)
                tasks = [asyncio.create_task(m.account(alice)) for _ in range(10)]
                await asyncio.sleep(0.3)  # some on the wire, some paced
                held = [key async for key in redis.scan_iter("cancel:*:flight")]
                assert held, "the requests on their way hold slots in Redis"
                assert sum([await redis.zcard(key) for key in held]) == 10
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
                assert [await redis.zcard(key) for key in held] == [0] * len(held), policy
                server.chaos_off()


async def test_redis_holds_no_token_and_the_repr_no_password(redis_url: str) -> None:
    server = FakeMastodon()
    alice = server.add_account("alice")
    token = server.issue_user_token(alice)
    limiter = RedisLimiter(redis_url, prefix="secret")
    password = URL(redis_url).password
    assert password
    assert password not in repr(limiter)
    assert "***" in repr(limiter)
    async with asyncio.timeout(20), server.run() as url, limiter, redis_client(redis_url) as r:
        async with Session(url, access_token=token, limiter=limiter) as masto:
            await masto.account(alice)
        keys = [key async for key in r.scan_iter("secret:*")]
        stored = []
        for key in keys:
            kind = await r.type(key)
            values = await r.hgetall(key) if kind == b"hash" else await r.zrange(key, 0, -1)
            stored.append(repr((key, values)))
    assert any("b'limit'" in text for text in stored)  # the bucket is there
    for text in stored:
        assert token not in text
        assert token[:12] not in text


async def test_an_unreachable_redis_is_a_typed_error_without_the_password(
    redis_url: str,
) -> None:
    server = FakeMastodon()
    alice = server.add_account("alice")
    token = server.issue_user_token(alice)
    wrong = str(URL(redis_url).with_password("not-the-password"))
    async with (
        asyncio.timeout(20),
        server.run() as url,
        RedisLimiter(wrong) as limiter,
        Session(url, access_token=token, limiter=limiter) as masto,
    ):
        with pytest.raises(RateLimiterError) as caught:
            await masto.account(alice)
    assert "not-the-password" not in str(caught.value)
    assert "***" in str(caught.value)


def answer(remaining: int, reset_at: float, status: int = 200) -> RawResponse:
    reset = datetime.fromtimestamp(reset_at, UTC).isoformat().replace("+00:00", "Z")
    headers = {
        "X-RateLimit-Limit": "300",
        "X-RateLimit-Remaining": str(remaining),
        "X-RateLimit-Reset": reset,
    }
    if status == 429:
        headers["Retry-After"] = "30"
    return RawResponse(
        method="GET",
        url=URL("https://m.example/api/v1/x"),
        status=status,
        headers=headers,
        body=b"",
    )


async def test_pace_spreads_the_shared_budget_over_every_process(redis_url: str) -> None:
    now = 1_800_000_000.0  # whole seconds: the fake reset below is exact
    clock: Callable[[], float] = lambda: now  # noqa: E731
    async with (
        asyncio.timeout(20),
        RedisLimiter(redis_url, prefix="pace") as one,
        RedisLimiter(redis_url, prefix="pace") as two,
    ):
        a = one.bind(M, "pace", clock, max_wait=960.0)
        b = two.bind(M, "pace", clock, max_wait=960.0)
        first, second = (x.bucket("tok", "api") for x in (a, b))
        assert await a.take(first) == (0.0, None)  # the probe
        await a.settle(first, answer(remaining=10, reset_at=now + 10))
        delays = []
        for limiter, bucket in [(a, first), (b, second)] * 5:
            delay, reason = await limiter.take(bucket)
            assert reason == "pacing"
            delays.append(delay)
        # Ten slots a second apart, alternating between the two processes: one pace, not two.
        assert delays == pytest.approx([float(i) for i in range(10)], abs=0.01)
        delay, reason = await b.take(second)
        assert reason == "budget_spent"
        assert delay == pytest.approx(10.05, abs=0.01)


async def test_a_429_in_one_process_holds_every_process(redis_url: str) -> None:
    now = 1_800_000_000.0
    clock: Callable[[], float] = lambda: now  # noqa: E731
    async with (
        asyncio.timeout(20),
        RedisLimiter(redis_url, prefix="hold") as one,
        RedisLimiter(redis_url, prefix="hold") as two,
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
        # The same token on another instance, or another token, is not held.
        elsewhere = two.bind("https://other.example", "wait", clock, max_wait=960.0)
        assert await elsewhere.take(elsewhere.bucket("tok", "api")) == (0.0, None)
        assert await b.take(b.bucket("another", "api")) == (0.0, None)


async def test_the_servers_word_from_any_process_resyncs_the_budget(redis_url: str) -> None:
    now = 1_800_000_000.0
    clock: Callable[[], float] = lambda: now  # noqa: E731
    async with (
        asyncio.timeout(20),
        RedisLimiter(redis_url, prefix="sync") as one,
        RedisLimiter(redis_url, prefix="sync") as two,
    ):
        a = one.bind(M, "wait", clock, max_wait=960.0)
        b = two.bind(M, "wait", clock, max_wait=960.0)
        first, second = (x.bucket("tok", "api") for x in (a, b))
        await a.take(first)
        await a.settle(first, answer(remaining=2, reset_at=now + 60))
        assert await b.take(second) == (0.0, None)
        await b.settle(second, answer(remaining=0, reset_at=now + 60))  # others spent it
        delay, reason = await a.take(first)
        assert reason == "budget_spent"
        assert delay == pytest.approx(60.05)
        now += 61  # the window reset: the first word of the new one is the truth
        assert await a.take(first) == (0.0, None)
        await a.settle(first, answer(remaining=299, reset_at=now + 59))
        assert await b.take(second) == (0.0, None)


async def test_a_second_process_knows_a_spent_window_from_redis_alone(redis_url: str) -> None:
    server = FakeMastodon(limits=Limits(per_user=(2, 300.0), per_token=(2, 300.0)))
    alice = server.add_account("alice")
    token = server.issue_user_token(alice)
    waits: list[Waiting] = []
    async with (
        asyncio.timeout(20),
        server.run() as url,
        RedisLimiter(redis_url, prefix="spent") as one,
        RedisLimiter(redis_url, prefix="spent") as two,
    ):
        async with Session(url, access_token=token, limiter=one) as masto:
            await masto.account(alice)
            await masto.account(alice)  # the window is spent, as the server says
        async with Session(
            url, access_token=token, limiter=two, max_wait=1.0, on_wait=waits.append
        ) as other:
            with pytest.raises(aiomasto.RateLimited) as caught:
                await other.account(alice)  # knows from Redis alone: nothing is sent
    assert caught.value.attempts == 0
    assert server.throttled == 0
    assert waits == []


async def test_importing_aiomasto_does_not_import_redis() -> None:
    check = "import sys, aiomasto; print(aiomasto.RedisLimiter.__name__, 'redis' in sys.modules)"
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-c", check, stdout=asyncio.subprocess.PIPE
    )
    async with asyncio.timeout(30):
        out, _ = await process.communicate()
    assert out.split() == [b"RedisLimiter", b"False"]
