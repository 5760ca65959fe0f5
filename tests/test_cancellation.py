"""A request cancelled at any point gives its rate-limit slot back (issue 8, point 6).

Web backends cancel requests all day (a client disconnects, ``asyncio.wait_for`` runs out), and
a walk that ends early cancels the page it fetched ahead. Whatever the moment — waiting for the
request that probes the budget, sleeping for a paced slot, in flight — the Session must go on
serving every other request. The fuzz cancels a request after k event-loop turns, for every k
until it completes, on every kind of bucket and under every policy, and then sends 100 more.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable

import aiohttp
import pytest
from virtualtime import VirtualTime

import aiomasto
from aiomasto import Session, Waiting
from aiomasto.testing import FakeMastodon, Fault, Limits

PERIOD = 60.0
OOB = "urn:ietf:wg:oauth:2.0:oob"

Call = Callable[[Session], Awaitable[object]]


def limits(size: int) -> Limits:
    window = (size, PERIOD)
    return Limits(
        per_user=window, per_token=window, per_ip=window, paging=window, app_registrations=window
    )


async def cancel_after(turns: int, call: Awaitable[object]) -> bool:
    """Run ``call`` for ``turns`` event-loop turns, then cancel it; True if it finished first."""
    task = asyncio.ensure_future(call)
    for _ in range(turns):
        await asyncio.sleep(0)
    if task.done():
        with contextlib.suppress(aiomasto.MastodonError):
            task.result()
        return True
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError, aiomasto.MastodonError):
        await task
    return False


def slots_held(masto: Session) -> int:
    return sum(bucket.in_flight for bucket in masto._requester.limiter.buckets.values())


async def hundred_more(masto: Session, call: Call, policy: str) -> None:
    """100 concurrent requests on the same Session all finish; none is lost to a jam."""
    async with asyncio.timeout(10):
        results = await asyncio.gather(*(call(masto) for _ in range(100)), return_exceptions=True)
    errors = [r for r in results if isinstance(r, BaseException)]
    if policy == "raise":
        # Refused by the server is finished too; anything else is a failure.
        assert all(isinstance(e, aiomasto.RateLimited) for e in errors), errors[:3]
    else:
        assert errors == []


# (kind of request, what its bucket knows when the request is cancelled)
BUCKETS = [
    ("api", "unknown"),
    ("paging", "unknown"),
    ("registration", "unknown"),
    ("api", "known"),
    ("registration", "known"),
    ("api", "spent"),
    ("paging", "spent"),
    ("paging", "paced"),
    ("api", "headerless"),
    ("api", "resetless"),
]


@pytest.mark.parametrize("policy", ["wait", "pace", "raise"])
@pytest.mark.parametrize(("kind", "state"), BUCKETS)
async def test_a_request_cancelled_at_any_point_gives_its_slot_back(
    policy: aiomasto.RateLimitPolicy, kind: str, state: str
) -> None:
    vt = VirtualTime()
    size = 3 if state == "spent" else 30 if state == "paced" else 1000
    server = FakeMastodon(
        flavor="akkoma" if state == "headerless" else "mastodon",
        limits=limits(size),
        enforce_rate_limit=True,
        clock=vt.clock,
    )
    alice = server.add_account("alice")
    token = server.issue_user_token(alice)

    async def call(masto: Session) -> object:
        if kind == "registration":
            form = {"client_name": "fuzz", "redirect_uris": OOB}
            return await masto.request("POST", "/api/v1/apps", form=form)
        if kind == "paging":
            return await masto.request("GET", f"/api/v1/accounts/{alice}/followers?max_id=9999")
        return await masto.request("GET", f"/api/v1/accounts/{alice}")

    async def on_wait(event: Waiting) -> None:
        await asyncio.sleep(0)  # one more place to be cancelled at

    primes = {"unknown": 0, "known": 1, "spent": size, "paced": 1, "headerless": 1}.get(state, 1)
    # A window reported spent, with no word of when it resets: requests wait for the answers
    # of those on their way (a server that sends no X-RateLimit-Reset).
    resetless = Fault.json(
        200, {"id": alice}, {"X-RateLimit-Limit": "3", "X-RateLimit-Remaining": "0"}
    )
    cancelled = 0
    async with server.run() as url, aiohttp.ClientSession() as http:
        for turns in range(500):
            vt.now += PERIOD  # a fresh window on the server for every round
            session = Session(
                url,
                access_token=None if kind == "registration" else token,
                http=http,
                rate_limit=policy,
                clock=vt.clock,
                sleep=vt.sleep,
                on_wait=on_wait,
                # Virtual time leaps whole windows while a request is in flight (every sleeper
                # wakes at once), which real time never does: no wait is refused here for it.
                max_wait=1e9,
            )
            if state == "resetless":
                server.inject(f"/api/v1/accounts/{alice}", resetless)
            async with session as masto:
                for _ in range(primes):
                    async with asyncio.timeout(5):
                        await call(masto)
                finished = await cancel_after(turns, call(masto))
                assert slots_held(masto) == 0, f"a slot is held after a cancel at turn {turns}"
                await hundred_more(masto, call, policy)
                assert slots_held(masto) == 0
            if finished:
                break
            cancelled += 1
        else:
            pytest.fail("the request never finished")
    assert cancelled >= 3  # it was cancelled at several points before it could finish


async def test_wait_for_running_out_on_the_probe_does_not_jam_the_session() -> None:
    server = FakeMastodon()
    alice = server.add_account("alice")
    token = server.issue_user_token(alice)
    path = f"/api/v1/accounts/{alice}"
    async with server.run() as url, Session(url, access_token=token) as masto:
        server.inject(path, Fault.slow(0.3))
        # The first request probes the budget: everyone else waits for its answer.
        probe = asyncio.ensure_future(asyncio.wait_for(masto.request("GET", path), 0.1))
        await asyncio.sleep(0.02)  # it is in flight
        others = [asyncio.ensure_future(masto.request("GET", path)) for _ in range(5)]
        with pytest.raises(TimeoutError):
            await probe
        async with asyncio.timeout(5):
            await asyncio.gather(*others)
            await asyncio.gather(*(masto.account(alice) for _ in range(100)))


async def test_breaking_out_of_a_walk_while_the_next_page_is_fetched_frees_its_slot() -> None:
    server = FakeMastodon()
    star = server.add_account("star")
    server.add_followers(star, 200)
    token = server.issue_user_token(star)
    async with server.run() as url, Session(url, access_token=token) as masto:
        for turns in range(30):
            # Every round starts on a fresh paging bucket: the walk's second page is the first
            # paging request, so it probes the budget while the consumer breaks away.
            masto._requester.limiter.buckets.clear()
            async with asyncio.timeout(5):
                async for _ in masto.followers(star, limit=40):
                    for _ in range(turns):
                        await asyncio.sleep(0)
                    break
                pages = [p async for p in masto.followers(star, limit=40).pages()]
            assert sum(len(p.items) for p in pages) == 200
            assert slots_held(masto) == 0


async def test_a_redirect_to_another_origin_gives_the_slot_back() -> None:
    server = FakeMastodon()
    alice = server.add_account("alice")
    token = server.issue_user_token(alice)
    path = f"/api/v1/accounts/{alice}"
    elsewhere = Fault.raw(302, b"", "text/plain", headers={"Location": "http://evil.example/x"})
    server.inject(path, elsewhere)
    async with server.run() as url, Session(url, access_token=token) as masto:
        with pytest.raises(aiomasto.OriginError):
            await masto.request("GET", path)  # the probe of an unknown budget
        async with asyncio.timeout(5):
            await asyncio.gather(*(masto.account(alice) for _ in range(100)))
