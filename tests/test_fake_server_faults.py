"""FakeMastodon fault kinds, random faults, and the Mastodon-style limiter (§8)."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import AsyncIterator

import aiohttp
import fakehttp
import pytest
from fakehttp import Clock

from aiomasto.testing import FakeMastodon, Fault, Limits

T0 = 1_786_111_500.25  # 2026-08-07T14:05:00.250Z, on a 300 s (and 2 s) window boundary + 0.25


class Client(fakehttp.Client):
    async def outcome(self, path: str) -> str:
        """What a client experienced: a status code, undecodable JSON, or an exception."""
        try:
            reply = await self.get(path)
            if reply.status == 200:
                reply.json()
        except aiohttp.ClientError as error:
            return type(error).__name__
        except ValueError:
            return "bad JSON"
        return str(reply.status)


@pytest.fixture
def clock() -> Clock:
    return Clock(T0)


@pytest.fixture
def server(clock: Clock) -> FakeMastodon:
    return FakeMastodon(clock=clock)


@pytest.fixture
async def client(server: FakeMastodon) -> AsyncIterator[Client]:
    async with server.run() as url, aiohttp.ClientSession() as http:
        yield Client(url, http)


# Scripted fault kinds


async def test_a_fault_can_wait_for_the_nth_request(client: Client, server: FakeMastodon) -> None:
    alice = server.add_account("alice")
    path = f"/api/v1/accounts/{alice}"
    server.inject(path, Fault.html(502), after=2, times=2)
    outcomes = [await client.outcome(path) for _ in range(5)]
    assert outcomes == ["200", "200", "502", "502", "200"]
    with pytest.raises(ValueError, match="after"):
        server.inject(path, Fault.html(502), after=-1)


async def test_reset_mid_body_breaks_the_payload(client: Client, server: FakeMastodon) -> None:
    alice = server.add_account("alice")
    path = f"/api/v1/accounts/{alice}/followers"
    server.inject(path, Fault.reset_mid_body())
    server.inject(path, Fault.reset_mid_body(503))
    for status in (200, 503):
        async with client.http.get(client.url + path) as response:
            assert response.status == status
            announced = int(response.headers["Content-Length"])
            assert response.headers["Content-Type"] == "application/json; charset=utf-8"
            with pytest.raises((aiohttp.ClientPayloadError, aiohttp.ClientConnectionError)):
                await response.read()
    assert announced > 1000
    assert (await client.get(path)).status == 200  # the server itself is fine
    assert server.faults_injected == Counter({"reset": 2})


async def test_slow_then_normal_or_then_another_fault(client: Client, server: FakeMastodon) -> None:
    alice = server.add_account("alice")
    path = f"/api/v1/accounts/{alice}"
    server.inject(path, Fault.slow(0.12))
    server.inject(path, Fault.slow(0.05, then=Fault.html(504)))
    started = time.monotonic()
    slow = await client.get(path)
    middle = time.monotonic()
    timed_out = await client.get(path)
    finished = time.monotonic()
    assert (slow.status, slow.json()["id"]) == (200, alice)
    assert "X-RateLimit-Limit" in slow.headers  # answered (and counted) normally
    assert middle - started >= 0.12
    assert timed_out.status == 504
    assert b"504 Gateway Time-out" in timed_out.body
    assert finished - middle >= 0.05
    assert server.faults_injected == Counter({"slow": 2, "html_504": 1})


def test_fault_shapes_are_validated() -> None:
    with pytest.raises(ValueError, match="negative"):
        Fault.slow(-1)
    with pytest.raises(ValueError, match="then"):
        Fault(status=500, then=Fault.html())


async def test_rate_limited_reports_the_current_window(
    client: Client, server: FakeMastodon, clock: Clock
) -> None:
    alice = server.add_account("alice")
    token = server.issue_user_token(alice)
    path = f"/api/v1/accounts/{alice}"
    clock.now = T0 + 30
    for _ in range(3):
        await client.get(path, token)
    server.inject(path, Fault.rate_limited())
    server.inject(path, Fault.rate_limited(retry_after=30))
    plain = await client.get(path, token)
    gts_style = await client.get(path, token)
    for reply in (plain, gts_style):
        assert (reply.status, reply.json()) == (429, {"error": "Too many requests"})
        assert reply.headers["Content-Type"] == "application/json"
        # The per-token window (300 per 300 s), which has the least room, ends at 14:10.
        assert reply.limit == ("300", "0", "2026-08-07T14:10:00.250000Z")
    assert "Retry-After" not in plain.headers
    assert gts_style.headers["Retry-After"] == "30"
    after = await client.get(path, token)
    assert after.limit[1] == "296"  # the injected 429s were not counted
    assert server.throttled == 0
    assert server.faults_injected == Counter({"rate_limited": 2})


async def test_existing_faults_are_counted_by_kind(client: Client, server: FakeMastodon) -> None:
    path = "/api/v1/accounts/1"
    for fault in (
        Fault.html(502),
        Fault.html(502),
        Fault.empty(503),
        Fault.json(503, {"error": "x"}),
        Fault.truncated_json(),
        Fault.raw(403, b"no", "text/plain"),
    ):
        server.inject(path, fault)
    for _ in range(7):
        await client.get(path)
    assert server.faults_injected == Counter(
        {"html_502": 2, "empty_503": 1, "json_503": 1, "truncated": 1, "raw_403": 1}
    )


# Random faults


async def _chaos_run(seed: int, requests: int = 60) -> tuple[list[str], Counter[str]]:
    server = FakeMastodon()
    alice = server.add_account("alice")
    server.chaos(
        seed=seed, html_5xx=0.2, reset=0.1, truncated=0.1, slow=0.1, slow_seconds=0.0, json_500=0.1
    )
    async with server.run() as url, aiohttp.ClientSession() as http:
        client = Client(url, http)
        outcomes = [await client.outcome(f"/api/v1/accounts/{alice}") for _ in range(requests)]
    return outcomes, server.faults_injected


async def test_chaos_is_deterministic_per_seed() -> None:
    first, first_counts = await _chaos_run(seed=42)
    second, second_counts = await _chaos_run(seed=42)
    other, _ = await _chaos_run(seed=43)
    assert first == second
    assert first_counts == second_counts
    assert first != other
    # Every kind shows up in 60 draws at these odds, each as the client would see it.
    assert set(first_counts) == {
        "html_502", "html_503", "html_504", "reset", "truncated", "slow", "json_500"
    }  # fmt: skip
    html = first_counts["html_502"] + first_counts["html_503"] + first_counts["html_504"]
    assert first.count("502") + first.count("503") + first.count("504") == html
    assert first.count("ClientPayloadError") == first_counts["reset"]
    assert first.count("500") == first_counts["json_500"]
    assert first.count("bad JSON") == first_counts["truncated"]
    # A slow answer is still a good one.
    assert first.count("200") == 60 - sum(first_counts.values()) + first_counts["slow"]


async def test_chaos_respects_the_prefix_inject_and_off(
    client: Client, server: FakeMastodon
) -> None:
    alice = server.add_account("alice")
    server.chaos(seed=1, json_500=1.0, path_prefix="/api/v1/accounts/")
    assert (await client.get("/api/v1/apps/verify_credentials")).status == 401  # not matched
    assert (await client.get(f"/api/v1/accounts/{alice}")).status == 500
    server.inject(f"/api/v1/accounts/{alice}", Fault.empty(418))
    assert (await client.get(f"/api/v1/accounts/{alice}")).status == 418  # scripted first
    server.chaos_off()
    assert (await client.get(f"/api/v1/accounts/{alice}")).status == 200
    assert server.faults_injected == Counter({"json_500": 1, "empty_418": 1})


@pytest.mark.parametrize(
    ("html_5xx", "reset", "truncated"), [(0.7, 0.4, 0.0), (0.0, 0.0, -0.1), (1.5, 0.0, 0.0)]
)
def test_chaos_odds_are_validated(html_5xx: float, reset: float, truncated: float) -> None:
    with pytest.raises(ValueError, match=r"probabilit|more than 1"):
        FakeMastodon().chaos(seed=0, html_5xx=html_5xx, reset=reset, truncated=truncated)


# The limiter (§8.1-8.3)


async def test_token_window_exhausts_and_resets(clock: Clock) -> None:
    server = FakeMastodon(clock=clock, limits=Limits(per_token=(5, 2.0)), enforce_rate_limit=True)
    alice = server.add_account("alice")
    token = server.issue_user_token(alice)
    async with server.run() as url, aiohttp.ClientSession() as http:
        client = Client(url, http)
        path = f"/api/v1/accounts/{alice}"
        replies = [await client.get(path, token) for _ in range(6)]
        assert [r.status for r in replies] == [200] * 5 + [429]
        assert [r.limit[1] for r in replies] == ["4", "3", "2", "1", "0", "0"]
        # Epoch-aligned: 14:05:00 starts a 2 s window; Mastodon keeps the request's fraction.
        assert replies[0].limit == ("5", "4", "2026-08-07T14:05:02.250000Z")
        assert replies[5].limit == ("5", "0", "2026-08-07T14:05:02.250000Z")
        assert replies[5].json() == {"error": "Too many requests"}
        assert replies[5].headers["Content-Type"] == "application/json"
        assert "Retry-After" not in replies[5].headers
        assert server.throttled == 1

        clock.now = T0 + 1.5  # same window: still throttled (and still counted)
        assert (await client.get(path, token)).status == 429
        clock.now = T0 + 2.0
        fresh = await client.get(path, token)
        assert fresh.status == 200
        assert fresh.limit == ("5", "4", "2026-08-07T14:05:04.250000Z")
        assert server.throttled == 2


async def test_paging_throttle_counts_only_cursor_requests(clock: Clock) -> None:
    server = FakeMastodon(
        clock=clock,
        limits=Limits(per_token=(100, 300.0), paging=(3, 900.0)),
        enforce_rate_limit=True,
    )
    alice = server.add_account("alice")
    server.add_followers(alice, 5)
    token = server.issue_user_token(alice)
    async with server.run() as url, aiohttp.ClientSession() as http:
        client = Client(url, http)
        base = f"/api/v1/accounts/{alice}/followers"
        plain = [await client.get(base, token) for _ in range(4)]
        blank = await client.get(f"{base}?max_id=", token)  # blank cursors do not count
        assert [r.limit[:2] for r in [*plain, blank]] == [
            ("100", "99"), ("100", "98"), ("100", "97"), ("100", "96"), ("100", "95")
        ]  # fmt: skip
        paged = [
            await client.get(f"{base}?{cursor}", token)
            for cursor in ("max_id=9999999", "since_id=1", "min_id=1", "page=2")
        ]
        assert [r.status for r in paged] == [200, 200, 200, 429]
        assert [r.limit[:2] for r in paged] == [("3", "2"), ("3", "1"), ("3", "0"), ("3", "0")]
        # 900 s windows: 14:00-14:15.
        assert paged[0].limit[2] == "2026-08-07T14:15:00.250000Z"
        assert (await client.get(base, token)).status == 200  # plain requests still pass
        assert server.throttled == 1


async def test_headers_pick_the_most_limited_throttle(clock: Clock) -> None:
    server = FakeMastodon(
        clock=clock,
        limits=Limits(per_user=(4, 300.0), per_token=(10, 300.0), per_ip=(3, 60.0)),
        enforce_rate_limit=True,
    )
    alice = server.add_account("alice")
    phone, laptop = (
        server.issue_user_token(alice, "read"),
        server.issue_user_token(alice, "profile"),
    )
    async with server.run() as url, aiohttp.ClientSession() as http:
        client = Client(url, http)
        path = f"/api/v1/accounts/{alice}"
        await client.get(path, phone)
        await client.get(path, phone)
        # Two tokens of one user share the per-user window (4), the tightest here.
        third = await client.get(path, laptop)
        assert third.limit[:2] == ("4", "1")
        fourth = await client.get(path, laptop)
        assert fourth.limit[:2] == ("4", "0")
        assert (await client.get(path, laptop)).status == 429

        # Without a user, the per-IP window (3 per 60 s) applies next to the app token's own.
        app = server.register_app(scopes="read")
        async with http.post(
            f"{url}/oauth/token",
            data={
                "grant_type": "client_credentials",
                "client_id": str(app["client_id"]),
                "client_secret": str(app["client_secret"]),
            },
        ) as response:
            app_token = (await response.json())["access_token"]
        as_app = await client.get(path, app_token)
        assert as_app.limit == ("3", "2", "2026-08-07T14:06:00.250000Z")
        anonymous = await client.get(path)
        assert anonymous.limit[:2] == ("3", "1")  # the same IP window


def test_limits_and_the_older_keywords() -> None:
    assert FakeMastodon().limits == Limits()
    assert Limits() == Limits(
        per_user=(1500, 300.0),
        per_token=(300, 300.0),
        per_ip=(300, 300.0),
        paging=(300, 900.0),
        app_registrations=(5, 600.0),
    )
    legacy = FakeMastodon(rate_limit=7, paging_limit=2, registration_period=60.0).limits
    assert (legacy.per_token, legacy.per_ip) == ((7, 300.0), (7, 300.0))
    assert legacy.paging == (2, 900.0)
    assert legacy.app_registrations == (5, 60.0)
    assert FakeMastodon(limits=Limits(paging=None), paging_limit=9).limits.paging == (9, 900.0)
    with pytest.raises(ValueError, match="limit >= 1"):
        Limits(per_token=(0, 300.0))
    with pytest.raises(ValueError, match="period > 0"):
        Limits(paging=(10, 0.0))


async def test_paging_throttle_can_be_turned_off(clock: Clock) -> None:
    server = FakeMastodon(clock=clock, limits=Limits(paging=None, per_ip=(1000, 300.0)))
    alice = server.add_account("alice")
    async with server.run() as url, aiohttp.ClientSession() as http:
        reply = await Client(url, http).get(f"/api/v1/accounts/{alice}/followers?max_id=1")
        assert reply.limit[:2] == ("1000", "999")
