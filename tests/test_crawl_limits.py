"""What the crawl sends: every request counted, and no domain flooded with WebFinger."""

from __future__ import annotations

import asyncio

from aiohttp import web
from crawlfedi import crawl, fans
from crawlnet import HostResolver, client, serve

from aiomasto.crawl import Crawler, CrawlProgress, MemoryCrawlSink, UnitKey
from aiomasto.testing import FakeFediverse, Fault


async def test_requests_counts_every_request_the_crawl_sends() -> None:
    fedi = FakeFediverse()
    fedi.add_instance("alpha.example")
    fedi.add_instance("gts.example", flavor="gotosocial")
    fedi.add_instance("akkoma.example", flavor="akkoma")
    fedi.add_instance("split.example", web_domain="social.split.example")
    fedi.add_instance("closed.example", limited_federation=True)
    people = ["alice@alpha.example", "gina@gts.example", "ake@akkoma.example"]
    people += ["sam@split.example", "cleo@closed.example"]
    for handle in people:
        fedi.add_account(handle)
        fans(fedi, handle, 45)
    fedi.add_account("reader@gts.example")
    alpha = fedi.instance("alpha.example")
    alice = fedi.account_id("alice@alpha.example")
    # A retried page, and a refused one (the closed instance climbs: app token, then 401).
    alpha.inject(f"/api/v1/accounts/{alice}/followers", Fault.html(503))
    seen: list[CrawlProgress] = []

    sink = await crawl(
        fedi,
        [f"@{h}" for h in people],
        user_tokens={"gts.example": fedi.user_token("reader@gts.example")},
        on_progress=seen.append,
    )

    sent = sum(len(fedi.instance(domain).requests) for domain in fedi.domains)
    closed = fedi.instance("closed.example")
    assert closed.count("POST", "/oauth/token") >= 1  # the app token's request is counted too
    assert alpha.faults_injected["html_503"] == 1
    assert sink.summary.requests == sent  # type: ignore[attr-defined]
    assert seen[-1].requests == sent
    assert sink.result("alice@alpha.example").outcome == "complete"


async def test_webfinger_per_domain_is_limited_however_many_handles() -> None:
    handles = 1000
    in_flight = 0
    most = 0

    async def webfinger(request: web.Request) -> web.Response:
        nonlocal in_flight, most
        in_flight += 1
        most = max(most, in_flight)
        try:
            # Long enough for every request the crawler allows at once to arrive.
            for _ in range(5):
                await asyncio.sleep(0)
            return web.Response(status=410)
        finally:
            in_flight -= 1

    app = web.Application()
    app.router.add_get("/.well-known/webfinger", webfinger)
    sink = MemoryCrawlSink()
    async with serve(app) as port:
        resolver = HostResolver({"many.example": port})
        async with (
            client(resolver) as http,
            Crawler(
                sink,
                http=http,
                allow_insecure_http=True,
                concurrency=64,
                per_instance=4,
                relations=("followers",),
            ) as crawler,
        ):
            await crawler.run([f"@user{n}@many.example" for n in range(handles)])
    assert most <= 4, most
    results = [
        sink.results[UnitKey(account=f"user{n}@many.example", relation="followers")]
        for n in range(handles)
    ]
    assert all(result.outcome == "gone" for result in results)
