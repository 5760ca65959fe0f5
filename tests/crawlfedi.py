"""Crawling a FakeFediverse in tests: run it, crawl it, compare lists with its ground truth."""

from __future__ import annotations

import asyncio
import contextlib
from collections import defaultdict
from collections.abc import Callable, Coroutine, Sequence
from pathlib import Path
from typing import Any

import aiohttp
from attrs import frozen

from aiomasto.crawl import (
    AccountRecord,
    Crawler,
    CrawlPlan,
    CrawlSink,
    CrawlSummary,
    InstanceRecord,
    ListResult,
    MemoryCrawlSink,
    PageCommit,
    ResumeState,
    SqliteCrawlSink,
    Unit,
    UnitKey,
)
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
    """Run the fediverse and crawl it from ``seeds`` into ``sink`` (a new one by default);
    the run's summary is kept as ``sink.summary``."""
    sink = sink if sink is not None else ListSink()
    async with fedi.run():
        sink.summary = await crawl_running(fedi, seeds, sink, **options)  # type: ignore[attr-defined]
    return sink


async def crawl_running(
    fedi: FakeFediverse, seeds: list[Any] | None, sink: CrawlSink, **options: Any
) -> CrawlSummary:
    """Crawl a fediverse that is already running."""
    options.setdefault("sleep", nap)
    connector = aiohttp.TCPConnector(resolver=fedi.resolver())
    async with (
        aiohttp.ClientSession(connector=connector) as http,
        Crawler(sink, http=http, allow_insecure_http=True, **options) as crawler,
    ):
        return await crawler.run(seeds)


class Stopping:
    """Any sink, and a signal once ``stop_at`` pages are committed (to cancel a crawl there)."""

    def __init__(self, inner: CrawlSink) -> None:
        self.inner = inner
        self.commits = 0
        self.stop_at = 0
        self.reached = asyncio.Event()
        self.stop: Callable[[], object] | None = None
        self.opened = False

    async def open(self, plan: CrawlPlan | None) -> ResumeState:
        self.opened = True
        return await self.inner.open(plan)

    async def claim(self, limit: int) -> Sequence[Unit]:
        return await self.inner.claim(limit)

    async def add_units(self, units: Sequence[Unit]) -> Sequence[Unit]:
        return await self.inner.add_units(units)

    async def save_instance(self, record: InstanceRecord) -> None:
        await self.inner.save_instance(record)

    async def save_accounts(self, records: Sequence[AccountRecord]) -> None:
        await self.inner.save_accounts(records)

    async def commit_page(self, commit: PageCommit) -> Sequence[Unit]:
        added = await self.inner.commit_page(commit)
        self.commits += 1
        if self.commits >= self.stop_at and not self.reached.is_set():
            self.reached.set()
            if self.stop is not None:
                self.stop()  # at once: a waiter woken later would see more pages committed
        return added

    async def close(self) -> None:
        await self.inner.close()


def make_sink(kind: str, tmp_path: Path) -> CrawlSink:
    """A fresh sink of ``kind``: ``"memory"`` or ``"sqlite"`` (a file in ``tmp_path``)."""
    if kind == "sqlite":
        return SqliteCrawlSink(tmp_path / "crawl.sqlite")
    return MemoryCrawlSink()


SINK_KINDS = ("memory", "sqlite")


@frozen(kw_only=True)
class Stored:
    """What a sink holds after a crawl: every edge row (duplicates kept), results, units."""

    edges: list[Pair]
    results: dict[UnitKey, ListResult]
    units: dict[UnitKey, Unit]


async def stored(sink: CrawlSink) -> Stored:
    """Read a memory or SQLite sink back."""
    if isinstance(sink, MemoryCrawlSink):
        return Stored(
            edges=[(e.follower, e.followed) for e in sink.edges],
            results=dict(sink.results),
            units=dict(sink.units),
        )
    assert isinstance(sink, SqliteCrawlSink)
    return Stored(
        edges=[(e.follower, e.followed) async for e in sink.edges()],
        results={key: result async for key, result in sink.outcomes()},
        units={unit.key: unit async for unit in sink.units()},
    )


async def crawl_cancelled(
    run: Callable[[CrawlSink, bool], Coroutine[Any, Any, object]],
    sink: Stopping,
    stops: Sequence[int],
) -> None:
    """Crawl with ``run(sink, fresh)``, cancelled after each of ``stops`` more commits, then
    resumed to the end."""
    for stop_after in stops:
        sink.stop_at = sink.commits + stop_after
        sink.reached.clear()
        task = asyncio.create_task(run(sink, not sink.opened))
        sink.stop = task.cancel
        with contextlib.suppress(asyncio.CancelledError):
            await task
        sink.stop = None
        assert sink.reached.is_set(), "the crawl ended before it could be interrupted"
    await run(sink, False)
