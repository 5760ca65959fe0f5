"""The scheduler refills its slots as soon as there is work, whatever the sink's latency.

A sink that answers :meth:`claim` after a round trip (PostgreSQL, SQLite in a thread) may
answer with a state older than a page committed meanwhile. Units that page added, or a slot
a walk gave back while the claim was on its way, must still be taken up at once, not when
some walk happens to finish. Clients and servers share a virtual clock (:mod:`virtualloop`):
a page delayed 25 seconds costs no real time, and each request is logged with its moment.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence

import aiohttp
from aiohttp import web
from virtualloop import VirtualTimeLoop, epoch

from aiomasto.crawl import Crawler, MemoryCrawlSink, PageCommit, Unit
from aiomasto.testing import FakeFediverse

SLOW_PAGE = 25.0  # the owner's second page answers this late (within the read timeout)
ROUND_TRIP = 1.0  # a claim's answer arrives this late, with the state of when it was read

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class RemoteSink(MemoryCrawlSink):
    """A memory sink whose claims answer after a round trip, as a database's would: an empty
    answer is the state before any page committed while it travelled back."""

    def __init__(self) -> None:
        super().__init__()
        self.committed = asyncio.Event()

    async def claim(self, limit: int) -> Sequence[Unit]:
        claimed = await super().claim(limit)
        self.committed.clear()
        if not claimed:
            try:
                async with asyncio.timeout(ROUND_TRIP):
                    await self.committed.wait()
            except TimeoutError:
                pass
            await asyncio.sleep(0.01)  # the answer's way back, while the committer goes on
        return claimed

    async def commit_page(self, commit: PageCommit) -> Sequence[Unit]:
        added = await super().commit_page(commit)
        self.committed.set()
        return added


async def crawl() -> tuple[FakeFediverse, dict[str, list[float]], RemoteSink, float]:
    clock = epoch()
    loop = asyncio.get_running_loop()
    seen: dict[str, list[float]] = {"a.example": [], "b.example": []}
    fedi = FakeFediverse(clock=clock)
    for domain in seen:
        server = fedi.add_instance(domain)

        @web.middleware
        async def record(
            request: web.Request, handler: Handler, domain: str = domain
        ) -> web.StreamResponse:
            seen[domain].append(loop.time())
            if domain == "a.example" and "max_id" in request.query:
                await asyncio.sleep(SLOW_PAGE)
            return await handler(request)

        server.app.middlewares.append(record)
    fedi.add_account("owner@a.example")
    # Two pages of followers (80 a page), every one of them to be resolved on b.example.
    for n in range(90):
        fedi.follow(fedi.add_account(f"fan{n}@b.example"), "owner@a.example")
    sink = RemoteSink()
    async with (
        fedi.run(),
        aiohttp.ClientSession(connector=aiohttp.TCPConnector(resolver=fedi.resolver())) as http,
        Crawler(
            sink,
            http=http,
            allow_insecure_http=True,
            relations=("followers",),
            depth=1,
            concurrency=8,
            per_instance=4,
            clock=clock,
        ) as crawler,
    ):
        started = loop.time()
        await crawler.run(["@owner@a.example"])
    return fedi, seen, sink, started


def test_units_found_while_a_claim_travels_are_walked_at_once() -> None:
    with asyncio.Runner(loop_factory=VirtualTimeLoop) as runner:
        fedi, seen, sink, started = runner.run(crawl())
    assert {r.outcome for r in sink.results.values()} <= {"complete", "empty"}
    assert len(sink.results) == 91
    assert {(e.follower, e.followed) for e in sink.edges} == fedi.edges()
    # The fans' lists are found on the first page and walked while the owner's second page
    # is on its way, not after it: the scheduler did not sleep through their arrival.
    assert len(seen["b.example"]) > 90
    early = [at for at in seen["b.example"] if at - started < SLOW_PAGE]
    assert len(early) >= 80 * 3, f"{len(early)} fan requests before the slow page answered"
