"""Rate limits, retries and timeouts, over loopback against the fake server's real limiter.

Windows are scaled down (a second instead of five minutes) so the whole file runs in seconds;
where a test only checks what the client decides, the client gets a fake clock and sleep.
"""

from __future__ import annotations

import asyncio
import time

import aiohttp
import pytest
from virtualtime import VirtualTime

import aiomasto
from aiomasto import NO_RETRY, App, Retry, Retrying, Session, Waiting
from aiomasto.testing import FakeMastodon, Fault, Limits

APP = App(name="Resilient")
QUICK = Retry(attempts=6, backoff=0.005, max_backoff=0.02)


def base(server: FakeMastodon) -> str:
    assert server.url is not None
    return server.url


def followers(account_id: str) -> str:
    return f"/api/v1/accounts/{account_id}/followers"


# -- a long crawl through faults and a tight limit ----------------------------------------------


@pytest.mark.parametrize("policy", ["pace", "wait"])
async def test_crawl_through_faults_and_a_tight_limit_loses_nothing(
    policy: aiomasto.RateLimitPolicy,
) -> None:
    window = Limits(per_token=(60, 1.0), per_ip=(60, 1.0), paging=(60, 1.0))
    server = FakeMastodon(limits=window, enforce_rate_limit=True)
    star = server.add_account("star")
    expected = server.add_followers(star, 20_000)[::-1]
    retries: list[Retrying] = []
    async with server.run() as url:
        session = Session(url, app=APP, rate_limit=policy, retry=QUICK, on_retry=retries.append)
        async with session as masto:
            server.chaos(seed=2026, html_5xx=0.10, reset=0.03, path_prefix=followers(star))
            got = [a.id async for a in masto.followers(star, limit=80)]
    walked = [r for r in server.requests if r.path == followers(star)]
    faults = sum(server.faults_injected.values())
    print(
        f"\n{policy}: {len(walked)} requests, {faults} faults injected "
        f"({dict(server.faults_injected)}), {len(retries)} retries, "
        f"{server.throttled} 429s, {len(expected) - len(set(got))} items lost"
    )
    assert got == expected  # every follower exactly once, in order
    assert faults > 20
    assert len(retries) == faults
    if policy == "pace":
        assert server.throttled == 0


async def test_fifty_tasks_share_one_budget_without_a_429() -> None:
    window = Limits(per_token=(20, 1.0), per_ip=(20, 1.0), paging=None)
    for policy in ("wait", "pace"):
        server = FakeMastodon(limits=window, enforce_rate_limit=True)
        alice = server.add_account("alice")
        async with server.run() as url, Session(url, app=APP, rate_limit=policy) as masto:
            await masto.authenticate()
            accounts = await asyncio.gather(*(masto.account(alice) for _ in range(50)))
        assert {a.id for a in accounts} == {alice}
        assert server.throttled == 0, policy


# -- the three policies on a 429 ----------------------------------------------------------------


async def test_raise_policy_raises_rate_limited_with_the_reset(server: FakeMastodon) -> None:
    alice = server.add_account("alice")
    async with Session(base(server), app=APP, rate_limit="raise") as masto:
        await masto.authenticate()
        server.inject(f"/api/v1/accounts/{alice}", Fault.rate_limited())
        with pytest.raises(aiomasto.RateLimited) as info:
            await masto.account(alice)
    exc = info.value
    assert exc.status == 429
    assert exc.reset is not None
    assert exc.reset.isoformat().replace("+00:00", "")[:19] in exc.headers["X-RateLimit-Reset"]
    assert exc.retry_after is not None
    assert 0 < exc.retry_after <= 300
    assert server.count("GET", f"/api/v1/accounts/{alice}") == 1


async def test_wait_honours_retry_after(server: FakeMastodon) -> None:
    alice = server.add_account("alice")
    vt = VirtualTime()
    waits: list[Waiting] = []
    async with Session(
        base(server), app=APP, clock=vt.clock, sleep=vt.sleep, on_wait=waits.append
    ) as masto:
        await masto.authenticate()
        server.inject(f"/api/v1/accounts/{alice}", Fault.rate_limited(retry_after=7))
        assert (await masto.account(alice)).id == alice
    assert vt.slept == [pytest.approx(7.0)]
    assert [(w.reason, round(w.seconds)) for w in waits] == [("rate_limited", 7)]
    assert server.count("GET", f"/api/v1/accounts/{alice}") == 2


async def test_wait_without_retry_after_sleeps_until_the_reset(server: FakeMastodon) -> None:
    alice = server.add_account("alice")
    vt = VirtualTime()
    async with Session(base(server), app=APP, clock=vt.clock, sleep=vt.sleep) as masto:
        await masto.authenticate()
        server.inject(f"/api/v1/accounts/{alice}", Fault.rate_limited())
        before = vt.now
        assert (await masto.account(alice)).id == alice
        reset = masto.ratelimit.reset if masto.ratelimit else None
    assert reset is not None
    assert len(vt.slept) == 1
    # slept until the window's reset, as the 429's header gave it (to the whole second)
    assert before + vt.slept[0] == pytest.approx(int(reset.timestamp()), abs=0.1)


async def test_without_any_hint_a_429_backs_off_and_retries() -> None:
    server = FakeMastodon(flavor="akkoma")
    alice = server.add_account("alice")
    vt = VirtualTime()
    throttled = Fault.json(429, {"error": "Throttled"})
    server.inject(f"/api/v1/accounts/{alice}", throttled, times=2)
    async with server.run() as url, Session(url, clock=vt.clock, sleep=vt.sleep) as masto:
        assert (await masto.account(alice)).id == alice
        assert masto.ratelimit is None  # Akkoma sends no rate-limit headers
    assert len(vt.slept) == 2
    assert all(s >= 1.0 for s in vt.slept)


# -- retries ----------------------------------------------------------------------------------


async def test_idempotent_requests_are_retried_through_5xx_and_resets(
    server: FakeMastodon,
) -> None:
    alice = server.add_account("alice")
    seen: list[Retrying] = []
    async with Session(base(server), app=APP, retry=QUICK, on_retry=seen.append) as masto:
        await masto.authenticate()
        path = f"/api/v1/accounts/{alice}"
        server.inject(path, Fault.html(502))
        server.inject(path, Fault.empty(503))
        server.inject(path, Fault.html(504))
        server.inject(path, Fault.reset_mid_body())
        assert (await masto.account(alice)).id == alice
    assert [r.attempt for r in seen] == [1, 2, 3, 4]
    assert seen[0].error == "502 ServerError"
    assert seen[3].error == "ConnectionFailed"
    assert server.count("GET", f"/api/v1/accounts/{alice}") == 5


async def test_a_get_gives_up_and_says_how_many_attempts(server: FakeMastodon) -> None:
    alice = server.add_account("alice")
    async with Session(base(server), app=APP, retry=Retry(attempts=3, backoff=0.001)) as masto:
        await masto.authenticate()
        server.inject(f"/api/v1/accounts/{alice}", Fault.html(503), times=5)
        with pytest.raises(aiomasto.ServerError) as info:
            await masto.account(alice)
    assert info.value.attempts == 3
    assert "gave up after 3 attempts" in str(info.value)


async def test_the_retry_budget_caps_the_total_wait(server: FakeMastodon) -> None:
    alice = server.add_account("alice")
    vt = VirtualTime()
    patient = Retry(attempts=50, backoff=1.0, max_backoff=1.0, budget=3.0)
    async with Session(
        base(server), app=APP, retry=patient, clock=vt.clock, sleep=vt.sleep
    ) as masto:
        await masto.authenticate()
        server.inject(f"/api/v1/accounts/{alice}", Fault.html(502), times=50)
        with pytest.raises(aiomasto.ServerError) as info:
            await masto.account(alice)
    assert sum(vt.slept) <= 3.0
    assert info.value.attempts == len(vt.slept) + 1


async def test_a_non_idempotent_post_is_never_retried(server: FakeMastodon) -> None:
    server.inject("/api/v1/apps", Fault.html(502), method="POST")
    async with Session(base(server), app=APP, retry=QUICK) as masto:
        with pytest.raises(aiomasto.ServerError) as info:
            await masto.authenticate()
    assert info.value.attempts == 1
    assert server.count("POST", "/api/v1/apps") == 1


async def test_token_requests_are_retried(server: FakeMastodon) -> None:
    server.inject("/oauth/token", Fault.html(502), method="POST")
    async with Session(base(server), app=APP, retry=QUICK) as masto:
        assert await masto.authenticate() is not None
    assert server.count("POST", "/oauth/token") == 2
    assert server.count("POST", "/api/v1/apps") == 1


async def test_retries_can_be_turned_off(server: FakeMastodon) -> None:
    alice = server.add_account("alice")
    async with Session(base(server), app=APP, retry=NO_RETRY) as masto:
        await masto.authenticate()
        server.inject(f"/api/v1/accounts/{alice}", Fault.reset_mid_body())
        with pytest.raises(aiomasto.ConnectionFailed):
            await masto.account(alice)


# -- timeouts ---------------------------------------------------------------------------------


async def test_a_server_that_stops_answering_times_out(server: FakeMastodon) -> None:
    alice = server.add_account("alice")
    quick = aiohttp.ClientTimeout(total=0.1)
    async with Session(base(server), app=APP, retry=NO_RETRY, timeout=quick) as masto:
        await masto.authenticate()
        server.inject(f"/api/v1/accounts/{alice}", Fault.slow(0.25))
        with pytest.raises(aiomasto.RequestTimeout) as info:
            await masto.account(alice)
    assert isinstance(info.value, aiomasto.TransportError)
    assert f"/api/v1/accounts/{alice}" in str(info.value)


async def test_a_per_call_timeout_overrides_the_sessions(server: FakeMastodon) -> None:
    alice = server.add_account("alice")
    async with Session(base(server), app=APP, retry=NO_RETRY) as masto:
        await masto.authenticate()
        server.inject(f"/api/v1/accounts/{alice}", Fault.slow(0.25))
        with pytest.raises(aiomasto.RequestTimeout):
            await masto.request(
                "GET", f"/api/v1/accounts/{alice}", timeout=aiohttp.ClientTimeout(total=0.1)
            )


# -- what the client knows of the window --------------------------------------------------------


@pytest.mark.parametrize(
    ("flavor", "epoch"), [("mastodon", False), ("gotosocial", False), ("gotosocial", True)]
)
async def test_rate_limit_headers_of_every_server_style(flavor: str, epoch: bool) -> None:
    server = FakeMastodon(flavor=flavor, gts_epoch_reset=epoch)  # type: ignore[arg-type]
    alice = server.add_account("alice")
    token = server.issue_user_token(alice)
    async with server.run() as url, Session(url, access_token=token) as masto:
        page = await masto.followers_page(alice)
        assert page.ratelimit is not None
        assert page.ratelimit.limit == 300
        assert page.ratelimit.reset is not None
        assert masto.ratelimit == page.ratelimit
        assert 0 < page.ratelimit.reset.timestamp() - time.time() <= 301


async def test_a_server_that_never_stops_answering_429_is_given_up_on(
    server: FakeMastodon,
) -> None:
    alice = server.add_account("alice")
    vt = VirtualTime()
    async with Session(base(server), app=APP, clock=vt.clock, sleep=vt.sleep) as masto:
        await masto.authenticate()
        server.inject(f"/api/v1/accounts/{alice}", Fault.rate_limited(), times=100)
        with pytest.raises(aiomasto.RateLimited) as info:
            await masto.account(alice)
    assert info.value.attempts == 21  # twenty waits, then the 429 is raised
    assert server.count("GET", f"/api/v1/accounts/{alice}") == 21
    assert len(vt.slept) == 20
