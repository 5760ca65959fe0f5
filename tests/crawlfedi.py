"""Crawling a FakeFediverse in tests: run it, crawl it, compare lists with its ground truth."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from typing import Any

import aiohttp

from aiomasto.crawl import Crawler, ListResult, MemoryCrawlSink, PageCommit, Unit, UnitKey
from aiomasto.testing import FakeFediverse

Pair = tuple[str, str]


async def nap(seconds: float) -> None:
    await asyncio.sleep(0)


class ListSink(MemoryCrawlSink):
    """A memory sink that also keeps which list each edge was committed for."""

    def __init__(self) -> None:
        super().__init__()
        self.by_list: defaultdict[UnitKey, set[Pair]] = defaultdict(set)

    async def commit_page(self, commit: PageCommit) -> list[Unit]:
        added = list(await super().commit_page(commit))
        self.by_list[commit.unit].update((e.follower, e.followed) for e in commit.edges)
        return added

    def result(self, account: str, relation: str = "followers") -> ListResult:
        return self.results[UnitKey(account=account, relation=relation)]  # type: ignore[arg-type]

    def listed(self, account: str, relation: str = "followers") -> set[Pair]:
        return self.by_list[UnitKey(account=account, relation=relation)]  # type: ignore[arg-type]

    def pairs(self) -> set[Pair]:
        return {(e.follower, e.followed) for e in self.edges}


def truth(fedi: FakeFediverse, account: str, relation: str = "followers") -> set[Pair]:
    """The list as its home stores it, as (follower, followed) pairs."""
    if relation == "followers":
        return {(f, account) for f in fedi.followers(account)}
    return {(account, f) for f in fedi.following(account)}


def fans(fedi: FakeFediverse, target: str, n: int, *, on: str | None = None) -> list[str]:
    """``n`` new accounts (on ``on``, else the target's instance) following ``target``."""
    user, _, domain = target.partition("@")
    created = []
    for i in range(n):
        handle = fedi.add_account(f"{user}fan{i}@{on or domain}")
        fedi.follow(handle, target)
        created.append(handle.lower())
    return created


async def crawl(
    fedi: FakeFediverse,
    seeds: list[Any] | None,
    sink: ListSink | None = None,
    **options: Any,
) -> ListSink:
    """Run the fediverse and crawl it from ``seeds`` into ``sink`` (a new one by default)."""
    sink = sink if sink is not None else ListSink()
    options.setdefault("sleep", nap)
    async with fedi.run():
        await crawl_running(fedi, seeds, sink, **options)
    return sink


async def crawl_running(
    fedi: FakeFediverse, seeds: list[Any] | None, sink: ListSink, **options: Any
) -> ListSink:
    """Crawl a fediverse that is already running."""
    options.setdefault("sleep", nap)
    connector = aiohttp.TCPConnector(resolver=fedi.resolver())
    async with (
        aiohttp.ClientSession(connector=connector) as http,
        Crawler(sink, http=http, allow_insecure_http=True, **options) as crawler,
    ):
        sink.summary = await crawler.run(seeds)  # type: ignore[attr-defined]
    return sink
