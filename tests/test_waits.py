"""Rate-limit waits are bounded, floored and reported once (issue 8, points 7, 9 and 11).

Whatever an instance sends — a reset in 2100, ``Retry-After: inf``, a ``Date`` of 1970 — no
Session sleeps longer than ``max_wait`` (a longer wait raises ``RateLimited`` saying when the
request may go) and none hammers a server that says "come back now". App registration waits
out one announced reset at most. The client's clock and sleep are virtual; the fake server's
windows run on the same clock, so a wait of minutes takes no time.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest
from virtualtime import VirtualTime

import aiomasto
from aiomasto import App, Session, Waiting
from aiomasto.testing import FakeMastodon, Fault, Limits

APP = App(name="Patient")
MAX_WAIT = 960.0
TOO_MANY = {"error": "Too many requests"}


def iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def window(limit: int, remaining: int, reset: str) -> dict[str, str]:
    return {
        "X-RateLimit-Limit": str(limit),
        "X-RateLimit-Remaining": str(remaining),
        "X-RateLimit-Reset": reset,
    }


class World:
    """A fake Mastodon and a user token, on one virtual clock."""

    def __init__(self, **server: object) -> None:
        self.vt = VirtualTime()
        self.server = FakeMastodon(clock=self.vt.clock, **server)  # type: ignore[arg-type]
        self.alice = self.server.add_account("alice")
        self.token = self.server.issue_user_token(self.alice)
        self.path = f"/api/v1/accounts/{self.alice}"

    def session(self, url: str, **options: object) -> Session:
        return Session(
            url,
            access_token=self.token,
            clock=self.vt.clock,
            sleep=self.vt.sleep,
            **options,  # type: ignore[arg-type]
        )

    def sent(self) -> int:
        return self.server.count("GET", self.path)

    def align(self, period: float) -> None:
        """Move to the first second of a fresh window (Mastodon's are aligned to the epoch)."""
        self.vt.now = (self.vt.now // period + 1) * period + 1


# -- max_wait: hostile headers never make a Session sleep for years -----------------------------


@pytest.mark.parametrize("policy", ["wait", "pace"])
@pytest.mark.parametrize(
    "retry_after",
    ["999999999", "9" * 5000, "Fri, 01 Jan 2100 00:00:00 GMT"],
    ids=["31-years", "5000-digits", "http-date-2100"],
)
async def test_a_retry_after_beyond_max_wait_raises_at_once(
    policy: aiomasto.RateLimitPolicy, retry_after: str
) -> None:
    world = World()
    world.server.inject(world.path, Fault.json(429, TOO_MANY, {"Retry-After": retry_after}))
    async with world.server.run() as url, world.session(url, rate_limit=policy) as masto:
        with pytest.raises(aiomasto.RateLimited) as info:
            async with asyncio.timeout(5):
                await masto.request("GET", world.path)
    assert max(world.vt.slept, default=0.0) <= MAX_WAIT
    assert world.sent() == 1
    exc = info.value
    assert exc.retry_after is not None
    assert exc.retry_after > MAX_WAIT
    assert exc.reset is not None
    assert exc.reset > datetime.now(UTC) + timedelta(days=365 * 30)


@pytest.mark.parametrize("policy", ["wait", "pace"])
async def test_a_reset_in_2100_raises_instead_of_sleeping(
    policy: aiomasto.RateLimitPolicy,
) -> None:
    world = World()
    far = window(300, 0, "2100-01-01T00:00:00.000000Z")
    world.server.inject(world.path, Fault.json(429, TOO_MANY, far))
    async with world.server.run() as url, world.session(url, rate_limit=policy) as masto:
        with pytest.raises(aiomasto.RateLimited) as info:
            async with asyncio.timeout(5):
                await masto.request("GET", world.path)
        assert info.value.reset is not None
        assert info.value.reset.year == 2100
        # The window is spent until 2100: the next request is refused without being sent.
        with pytest.raises(aiomasto.RateLimited, match="it was not sent") as again:
            async with asyncio.timeout(5):
                await masto.request("GET", world.path)
    assert again.value.reset is not None
    assert again.value.reset.year == 2100
    assert again.value.attempts == 0
    assert world.sent() == 1
    assert max(world.vt.slept, default=0.0) <= MAX_WAIT


@pytest.mark.parametrize("policy", ["wait", "pace"])
async def test_a_spent_window_resetting_in_2100_refuses_the_next_request(
    policy: aiomasto.RateLimitPolicy,
) -> None:
    world = World()
    spent = window(300, 0, "2100-01-01T00:00:00.000000Z")
    world.server.inject(world.path, Fault.json(200, {"id": world.alice}, spent))
    async with world.server.run() as url, world.session(url, rate_limit=policy) as masto:
        async with asyncio.timeout(5):
            await masto.request("GET", world.path)
            with pytest.raises(aiomasto.RateLimited):
                await masto.request("GET", world.path)
    assert world.sent() == 1
    assert world.vt.slept == []


async def test_pace_never_spreads_a_budget_over_89_days() -> None:
    world = World()
    later = iso(world.vt.now + 89 * 86_400)
    world.server.inject(
        world.path, Fault.json(200, {"id": world.alice}, window(300, 299, later)), times=20
    )
    async with world.server.run() as url, world.session(url, rate_limit="pace") as masto:
        async with asyncio.timeout(5):
            for _ in range(20):
                await masto.request("GET", world.path)
    assert world.sent() == 20
    # What is left is spread over max_wait at most, not over 89 days.
    assert 0 < sum(world.vt.slept) <= MAX_WAIT
    assert max(world.vt.slept) <= MAX_WAIT / 299 * 2


@pytest.mark.parametrize("policy", ["wait", "pace"])
async def test_a_date_header_of_1970_is_no_clock_skew(policy: aiomasto.RateLimitPolicy) -> None:
    world = World()
    headers = {
        **window(300, 0, iso(world.vt.now + 30)),
        "Date": "Thu, 01 Jan 1970 00:00:00 GMT",
    }
    world.server.inject(world.path, Fault.json(200, {"id": world.alice}, headers))
    async with world.server.run() as url, world.session(url, rate_limit=policy) as masto:
        async with asyncio.timeout(5):
            await masto.request("GET", world.path)
            await masto.request("GET", world.path)  # waits for the reset, 30 s away
    assert world.sent() == 2
    assert len(world.vt.slept) == 1
    assert 28 <= world.vt.slept[0] <= 31


async def test_a_skew_of_hours_is_still_corrected() -> None:
    world = World()
    ahead = world.vt.now + 3 * 3600  # the server's clock is three hours fast
    date = format_datetime(datetime.fromtimestamp(ahead, UTC), usegmt=True)
    headers = {**window(300, 0, iso(ahead + 30)), "Date": date}
    world.server.inject(world.path, Fault.json(200, {"id": world.alice}, headers))
    async with world.server.run() as url, world.session(url) as masto:
        async with asyncio.timeout(5):
            await masto.request("GET", world.path)
            await masto.request("GET", world.path)
    assert len(world.vt.slept) == 1
    assert 28 <= world.vt.slept[0] <= 31


@pytest.mark.parametrize("policy", ["wait", "pace"])
@pytest.mark.parametrize(
    "retry_after", ["0", "-5", "nan", "inf", "-inf", "1e309", "2.5", "soon", "Thu, 01 Jan 1970"]
)
async def test_a_retry_after_saying_now_or_nonsense_never_makes_a_burst(
    policy: aiomasto.RateLimitPolicy, retry_after: str
) -> None:
    world = World(flavor="akkoma")  # no rate-limit headers: Retry-After is all there is
    world.server.inject(
        world.path, Fault.json(429, TOO_MANY, {"Retry-After": retry_after}), times=100
    )
    async with world.server.run() as url, world.session(url, rate_limit=policy) as masto:
        with pytest.raises(aiomasto.RateLimited):
            async with asyncio.timeout(5):
                await masto.request("GET", world.path)
    assert world.sent() == 21  # twenty waits, then the 429 is raised
    assert len(world.vt.slept) == 20
    assert all(1.0 <= s <= MAX_WAIT for s in world.vt.slept)


async def test_a_valid_retry_after_is_honoured() -> None:
    world = World()
    world.server.inject(world.path, Fault.json(429, TOO_MANY, {"Retry-After": "120"}))
    async with world.server.run() as url, world.session(url) as masto:
        async with asyncio.timeout(5):
            await masto.request("GET", world.path)
    assert world.vt.slept == [120.0]


async def test_a_paging_window_is_ridden_out_by_default_and_longer_waits_raise() -> None:
    world = World()
    paging = window(300, 0, iso(world.vt.now + 900))  # Mastodon's paging window, just spent
    world.server.inject(world.path, Fault.json(200, {"id": world.alice}, paging))
    async with world.server.run() as url:
        async with world.session(url) as masto, asyncio.timeout(5):
            await masto.request("GET", world.path)
            await masto.request("GET", world.path)
        assert len(world.vt.slept) == 1
        assert 899 <= world.vt.slept[0] <= 901
        hour = window(300, 0, iso(world.vt.now + 3600))
        world.server.inject(world.path, Fault.json(200, {"id": world.alice}, hour))
        async with world.session(url) as masto, asyncio.timeout(5):
            await masto.request("GET", world.path)
            with pytest.raises(aiomasto.RateLimited) as info:
                await masto.request("GET", world.path)
        assert info.value.retry_after == pytest.approx(3600, abs=2)
        world.server.inject(world.path, Fault.json(200, {"id": world.alice}, hour))
        async with world.session(url, max_wait=7200) as masto, asyncio.timeout(5):
            await masto.request("GET", world.path)
            await masto.request("GET", world.path)
        assert 3500 <= world.vt.slept[-1] <= 3601


@pytest.mark.parametrize("max_wait", [-1.0, float("inf"), float("nan")])
def test_max_wait_must_be_a_real_bound(max_wait: float) -> None:
    with pytest.raises(aiomasto.ConfigurationError, match="max_wait"):
        Session("https://mastodon.example", max_wait=max_wait)


# -- app registration answered 429 (point 9) ----------------------------------------------------


def registration_world() -> World:
    # Every registration is refused with Mastodon's 429 and the reset of the (virtual) window.
    world = World()
    world.server.inject("/api/v1/apps", Fault.rate_limited(), method="POST", times=10_000)
    return world


def app_session(world: World, url: str, **options: object) -> Session:
    return Session(
        url,
        app=APP,
        clock=world.vt.clock,
        sleep=world.vt.sleep,
        **options,  # type: ignore[arg-type]
    )


def registrations(world: World) -> int:
    return world.server.count("POST", "/api/v1/apps")


@pytest.mark.parametrize("policy", ["wait", "pace"])
async def test_a_throttled_registration_waits_out_one_known_reset_at_most(
    policy: aiomasto.RateLimitPolicy,
) -> None:
    world = registration_world()
    async with world.server.run() as url, app_session(world, url, rate_limit=policy) as masto:
        with pytest.raises(aiomasto.RateLimited):
            async with asyncio.timeout(5):
                await masto.authenticate()
    assert registrations(world) == 2
    assert len(world.vt.slept) == 1
    assert 0 < world.vt.slept[0] <= 600.1  # Mastodon's registration window: 5 per 10 minutes


async def test_a_throttled_registration_raises_at_once_under_raise() -> None:
    world = registration_world()
    async with world.server.run() as url, app_session(world, url, rate_limit="raise") as masto:
        with pytest.raises(aiomasto.RateLimited) as info:
            async with asyncio.timeout(5):
                await masto.authenticate()
    assert registrations(world) == 1
    assert world.vt.slept == []
    assert info.value.reset is not None


async def test_a_registration_429_with_no_known_reset_is_not_retried() -> None:
    world = World()
    world.server.inject("/api/v1/apps", Fault.json(429, TOO_MANY), method="POST", times=100)
    async with world.server.run() as url, app_session(world, url) as masto:
        with pytest.raises(aiomasto.RateLimited):
            async with asyncio.timeout(5):
                await masto.authenticate()
    assert registrations(world) == 1
    assert world.vt.slept == []


async def test_twenty_one_throttled_registrations_make_no_storm() -> None:
    world = registration_world()
    async with world.server.run() as url, app_session(world, url) as masto:
        async with asyncio.timeout(10):
            results = await asyncio.gather(
                *(masto.authenticate() for _ in range(21)), return_exceptions=True
            )
    assert all(isinstance(r, aiomasto.RateLimited) for r in results)
    # The first call waits out the reset once; every later one sends at most one more, after
    # the window it was refused in has passed.
    assert registrations(world) <= 22
    assert all(s <= 600.1 for s in world.vt.slept)


async def test_a_registration_that_gets_through_after_its_wait_succeeds() -> None:
    world = World()
    world.server.inject("/api/v1/apps", Fault.rate_limited(), method="POST")
    async with world.server.run() as url, app_session(world, url) as masto:
        async with asyncio.timeout(5):
            assert await masto.authenticate() is not None
    assert registrations(world) == 2


# -- one report per wait (point 11) ------------------------------------------------------------


async def test_a_spent_window_is_reported_once_however_many_tasks_wait(
    caplog: pytest.LogCaptureFixture,
) -> None:
    world = World(limits=Limits(per_user=(10, 600.0), per_token=(10, 600.0)))
    world.align(600)
    events: list[Waiting] = []
    async with world.server.run() as url, world.session(url, on_wait=events.append) as masto:
        async with asyncio.timeout(5):
            for _ in range(10):
                await masto.request("GET", world.path)  # the window is spent
            with caplog.at_level(logging.DEBUG, logger="aiomasto"):
                await asyncio.gather(*(masto.request("GET", world.path) for _ in range(10)))
    assert [(e.reason, e.kind) for e in events] == [("budget_spent", "api")]
    notes = [r for r in caplog.records if r.levelno == logging.INFO and "waiting" in r.message]
    assert len(notes) == 1
    note = notes[0].getMessage()
    assert "API rate limit" in note
    reset = datetime.fromtimestamp(world.vt.now, UTC).replace(microsecond=0)
    assert f"until {(reset - timedelta(seconds=1)).isoformat()}" in note or (
        f"until {reset.isoformat()}" in note
    )
    assert world.token not in caplog.text


async def test_a_429_held_by_many_tasks_is_reported_once() -> None:
    world = World()
    events: list[Waiting] = []
    world.server.inject(world.path, Fault.json(429, TOO_MANY, {"Retry-After": "30"}))
    async with world.server.run() as url, world.session(url, on_wait=events.append) as masto:
        async with asyncio.timeout(5):
            # The first request probes the budget and meets the 429; the nine others, waiting
            # for its answer, are held with it until the server allows again.
            await asyncio.gather(*(masto.request("GET", world.path) for _ in range(10)))
    assert world.sent() == 11
    assert [(e.reason, round(e.seconds)) for e in events] == [("rate_limited", 30)]


async def test_short_waits_stay_at_debug(caplog: pytest.LogCaptureFixture) -> None:
    world = World()
    world.server.inject(world.path, Fault.json(429, TOO_MANY, {"Retry-After": "2"}))
    async with world.server.run() as url, world.session(url) as masto:
        with caplog.at_level(logging.DEBUG, logger="aiomasto"):
            async with asyncio.timeout(5):
                await masto.request("GET", world.path)
    waits = [r for r in caplog.records if "wait" in r.getMessage()]
    assert waits
    assert all(r.levelno == logging.DEBUG for r in waits)


async def test_a_slow_pace_is_noted_once_per_window(caplog: pytest.LogCaptureFixture) -> None:
    world = World(limits=Limits(per_user=(30, 300.0), per_token=(30, 300.0), per_ip=(30, 300.0)))
    world.align(300)
    async with world.server.run() as url, world.session(url, rate_limit="pace") as masto:
        with caplog.at_level(logging.INFO, logger="aiomasto"):
            async with asyncio.timeout(5):
                for _ in range(10):
                    await masto.request("GET", world.path)
    notes = [r for r in caplog.records if r.levelno == logging.INFO and "pacing" in r.message]
    assert len(notes) == 1


@pytest.mark.parametrize("policy", ["wait", "pace"])
async def test_paging_requests_are_counted_in_the_plain_window_too(
    policy: aiomasto.RateLimitPolicy,
) -> None:
    # Mastodon counts a request with max_id in the paging window and in the plain one: the walk
    # (1 plain request, then 8 with max_id) leaves 1 of the plain window's 10, so of the three
    # lookups sent together after it, two wait for the next window instead of getting a 429.
    vt = VirtualTime()
    server = FakeMastodon(
        clock=vt.clock,
        enforce_rate_limit=True,
        limits=Limits(per_ip=(10, 300.0), paging=(100, 900.0)),
    )
    alice = server.add_account("alice")
    server.add_followers(alice, 8 * 40)
    async with (
        server.run() as url,
        Session(url, clock=vt.clock, sleep=vt.sleep, rate_limit=policy) as masto,
    ):
        walked = [account.id async for account in masto.followers(alice)]
        await asyncio.gather(*(masto.lookup("alice") for _ in range(3)))
    assert len(walked) == 8 * 40
    assert server.throttled == 0
