"""Rate limits across instances: no 429s, and an instance sitting out its window never keeps
the others from spending theirs.

Five fake Mastodons enforce small per-IP windows of different sizes; the crawler has fewer
global slots than instances, so a walk that held its slot while waiting for its window would
idle an instance that still has budget. Clients and servers share a virtual clock
(:mod:`virtualloop`): waits cost no real time, and every request is logged with its moment
and its place in the order of arrival across all servers.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Awaitable, Callable

import aiohttp
from aiohttp import web
from aiohttp.typedefs import Middleware
from virtualloop import VirtualTimeLoop, epoch

from aiomasto.crawl import Crawler, MemoryCrawlSink
from aiomasto.testing import FakeFediverse, Limits

WINDOW = 60.0
# Requests per window, per instance: each runs out at its own point of the window.
BUDGETS = {"a.example": 5, "b.example": 7, "c.example": 9, "d.example": 12, "e.example": 15}

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class Log:
    """Every API request any server received: (arrival number, instance, virtual time)."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self.clock = clock
        self.requests: list[tuple[int, str, float]] = []

    def middleware(self, domain: str) -> Middleware:
        @web.middleware
        async def record(request: web.Request, handler: Handler) -> web.StreamResponse:
            if request.path.startswith("/api/"):
                self.requests.append((len(self.requests), domain, self.clock()))
            return await handler(request)

        return record

    def windows(self, domain: str) -> dict[int, list[int]]:
        """Arrival numbers of the instance's requests, by the window they fell in."""
        found: dict[int, list[int]] = {}
        for seq, where, at in self.requests:
            if where == domain:
                found.setdefault(math.floor(at / WINDOW), []).append(seq)
        return found


async def crawl(owners: int, followers: int) -> tuple[FakeFediverse, Log, MemoryCrawlSink]:
    clock = epoch()
    log = Log(clock)
    fedi = FakeFediverse(clock=clock)
    seeds = []
    for domain, budget in BUDGETS.items():
        server = fedi.add_instance(
            domain,
            limits=Limits(per_ip=(budget, WINDOW), paging=None),
            enforce_rate_limit=True,
        )
        server.app.middlewares.append(log.middleware(domain))
        for n in range(owners):
            owner = fedi.add_account(f"owner{n}@{domain}")
            server.add_followers(fedi.account_id(owner), followers, prefix=f"fan{n}x")
            seeds.append(f"@{owner}")
    sink = MemoryCrawlSink()
    async with (
        fedi.run(),
        aiohttp.ClientSession(connector=aiohttp.TCPConnector(resolver=fedi.resolver())) as http,
        Crawler(
            sink,
            http=http,
            allow_insecure_http=True,
            relations=("followers",),
            concurrency=2,
            per_instance=1,
            clock=clock,
        ) as crawler,
    ):
        await crawler.run(seeds)
    return fedi, log, sink


def run_crawl(owners: int, followers: int) -> tuple[FakeFediverse, Log, MemoryCrawlSink]:
    with asyncio.Runner(loop_factory=VirtualTimeLoop) as runner:
        return runner.run(crawl(owners, followers))


def test_five_tight_instances_no_429_and_no_instance_idles_while_another_waits() -> None:
    fedi, log, sink = run_crawl(owners=1, followers=1200)  # 15 pages each
    assert [fedi.instance(d).throttled for d in BUDGETS] == [0] * len(BUDGETS)
    assert {r.outcome for r in sink.results.values()} == {"complete"}
    assert len(sink.edges) == len(BUDGETS) * 1200
    last = {domain: max(s for s, d, _ in log.requests if d == domain) for domain in BUDGETS}
    waits = 0
    for domain, budget in BUDGETS.items():
        windows = log.windows(domain)
        assert len(windows) > 1, f"{domain} never had to wait: the test tests nothing"
        for window, seqs in windows.items():
            if window == max(windows):
                continue
            # Every window but the last is spent to the last request: no budget left over.
            assert len(seqs) == budget, (domain, window, len(seqs))
            # While it waits for the next window, every instance that still has budget in
            # this one and work to do sends a request.
            waiting_since = seqs[-1]
            for other, other_budget in BUDGETS.items():
                theirs = log.windows(other).get(window, [])
                before = [s for s in theirs if s < waiting_since]
                if other == domain or len(before) == other_budget or last[other] < waiting_since:
                    continue
                waits += 1
                assert any(s > waiting_since for s in theirs), (
                    f"{other} idled in window {window} while {domain} waited"
                )
    assert waits >= len(BUDGETS)


def test_paging_requests_spend_the_plain_window_too() -> None:
    """Mastodon counts a paging request (max_id) in the IP's (or token's) plain window as well
    as in the paging one: the next plain request of the window (a lookup, another list's first
    page) must not be sent into a spent window."""
    fedi, _, sink = run_crawl(owners=3, followers=200)
    assert {r.outcome for r in sink.results.values()} == {"complete"}
    assert [fedi.instance(d).throttled for d in BUDGETS] == [0] * len(BUDGETS)
