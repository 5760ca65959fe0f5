"""The whole fake fediverse crawled: every visible list equals the ground truth."""

from __future__ import annotations

import asyncio

import aiohttp

from aiomasto.crawl import Crawler, MemoryCrawlSink, UnitKey
from aiomasto.testing import FakeFediverse


async def nap(seconds: float) -> None:
    await asyncio.sleep(0)


def build() -> FakeFediverse:
    fedi = FakeFediverse()
    fedi.add_instance("alpha.example")
    fedi.add_instance("beta.example")
    fedi.add_instance("gts.example", flavor="gotosocial")
    fedi.add_instance("akkoma.example", flavor="akkoma")
    fedi.add_instance("split.example", web_domain="social.split.example")
    fedi.add_instance("closed.example", limited_federation=True)
    fedi.add_down_instance("down.example")
    people = [
        "alice@alpha.example",
        "bob@beta.example",
        "gina@gts.example",
        "ake@akkoma.example",
        "sam@split.example",
        "cleo@closed.example",
        "dan@down.example",
    ]
    for handle in people:
        fedi.add_account(handle)
    fedi.add_account("shy@alpha.example", hide_collections=True)
    fedi.add_account("reader@gts.example")
    for index, follower in enumerate(people):
        for followed in [*people[index + 1 :], "shy@alpha.example"]:
            fedi.follow(follower, followed)
    for n in range(90):
        fedi.add_account(f"fan{n}@beta.example")
        fedi.follow(f"fan{n}@beta.example", "alice@alpha.example")
    return fedi


async def test_the_whole_fediverse_matches_the_ground_truth() -> None:
    fedi = build()
    token = fedi.user_token("reader@gts.example")
    sink = MemoryCrawlSink()
    seeds = [f"@{h}" for h in fedi.handles()]
    async with (
        fedi.run(),
        aiohttp.ClientSession(connector=aiohttp.TCPConnector(resolver=fedi.resolver())) as http,
        Crawler(
            sink, http=http, allow_insecure_http=True, sleep=nap, user_tokens={"gts.example": token}
        ) as crawler,
    ):
        await crawler.run(seeds)
    results = {(k.account, k.relation): r for k, r in sink.results.items()}
    found = {(e.follower, e.followed) for e in sink.edges}
    truth = fedi.edges()
    for (account, relation), result in results.items():
        if result.outcome != "complete":
            continue
        if relation == "followers":
            want = {(f, account) for f in fedi.followers(account)}
            got = {e for e in found if e[1] == account}
        else:
            want = {(account, f) for f in fedi.following(account)}
            got = {e for e in found if e[0] == account}
        assert got >= want, (account, relation, want - got)
    assert found <= truth
    assert results[("shy@alpha.example", "followers")].outcome == "hidden"
    assert results[("dan@down.example", "followers")].outcome == "unreachable"
    assert results[("cleo@closed.example", "followers")].outcome == "auth_required"
    assert results[("sam@split.example", "followers")].outcome == "complete"
    assert results[("gina@gts.example", "followers")].outcome == "complete"
    assert results[("ake@akkoma.example", "following")].outcome == "complete"
    assert results[("alice@alpha.example", "followers")].found == 90
    assert results[("bob@beta.example", "followers")].found == 1
    assert UnitKey(account="alice@alpha.example", relation="followers") in sink.results
