"""PostgresCrawlSink on a real PostgreSQL: leases, stale workers, names, errors; the worker CLI."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import aiohttp
import asyncpg
import pytest
from attrs import evolve

from aiomasto.crawl import (
    Crawler,
    CrawlPlan,
    Edge,
    ListResult,
    MemoryCrawlSink,
    PageCommit,
    PostgresCrawlSink,
    Unit,
    UnitKey,
    _postgres,
    open_sink,
)
from aiomasto.errors import ConfigurationError, CrawlSinkError, LeaseLost, UsageError
from aiomasto.testing import FakeFediverse

PROJECT_ROOT = Path(__file__).resolve().parents[1]
PLAN = CrawlPlan(seeds=("@alice@one.example",))


def unit(account: str, relation: str = "followers") -> Unit:
    return Unit(key=UnitKey(account=account, relation=relation), target=f"@{account}")  # type: ignore[arg-type]


def page(target: Unit, followers: Sequence[str], cursor: str | None) -> PageCommit:
    return PageCommit(
        unit=target.key,
        cursor=cursor,
        edges=[Edge(follower=f, followed=target.key.account) for f in followers],
    )


@pytest.fixture
def schema() -> str:
    return f"t_{uuid.uuid4().hex[:12]}"


@pytest.fixture
async def workers(postgres_url: str, schema: str) -> AsyncIterator[list[PostgresCrawlSink]]:
    """Two workers (``a`` and ``b``) sharing one new crawl."""
    made = [PostgresCrawlSink(postgres_url, schema=schema, worker=name, lease=30) for name in "ab"]
    for sink in made:
        await sink.open(PLAN)
    yield made
    for sink in made:
        await sink.close()


async def expire(url: str, schema: str, owner: str) -> None:
    """As if ``owner``'s process froze for longer than its lease."""
    connection = await asyncpg.connect(url)
    try:
        await connection.execute(
            f"UPDATE \"{schema}\".units SET lease_until = now() - interval '1 second' "
            "WHERE lease_owner = $1",
            owner,
        )
    finally:
        await connection.close()


async def test_a_claim_excludes_every_other_worker(workers: list[PostgresCrawlSink]) -> None:
    a, b = workers
    units = [unit(f"u{n}@one.example") for n in range(5)]
    await a.add_units(units)
    first = await a.claim(3)
    second = await b.claim(10)
    assert [u.key for u in first] == [u.key for u in units[:3]]
    assert [u.key for u in second] == [u.key for u in units[3:]]
    assert await a.claim(10) == []
    assert await b.claim(10) == []
    # Both know the crawl is not over: each sees the other's units outstanding.
    assert await a.outstanding() == 2
    assert await b.outstanding() == 3


async def test_claims_at_once_never_hand_a_unit_out_twice(postgres_url: str, schema: str) -> None:
    sinks = [PostgresCrawlSink(postgres_url, schema=schema) for _ in range(6)]
    try:
        for sink in sinks:
            await sink.open(PLAN)
        await sinks[0].add_units([unit(f"u{n}@one.example") for n in range(60)])
        claimed = await asyncio.gather(*(sink.claim(7) for sink in sinks * 2))
    finally:
        for sink in sinks:
            await sink.close()
    keys = [u.key for batch in claimed for u in batch]
    assert len(keys) == len(set(keys)) == 60


async def test_an_expired_lease_is_claimable_from_its_committed_cursor(
    workers: list[PostgresCrawlSink], postgres_url: str, schema: str
) -> None:
    a, b = workers
    alice = unit("alice@one.example")
    await a.add_units([alice])
    assert await a.claim(1) == [alice]
    await a.commit_page(page(alice, ["x@one.example"], "c1"))
    assert await b.claim(1) == []
    await expire(postgres_url, schema, "a")
    assert await b.claim(1) == [evolve(alice, cursor="c1", found=0, pages=1)]


async def test_a_stale_workers_commit_is_refused_and_stores_nothing(
    workers: list[PostgresCrawlSink], postgres_url: str, schema: str
) -> None:
    a, b = workers
    alice = unit("alice@one.example")
    await a.add_units([alice])
    await a.claim(1)
    await expire(postgres_url, schema, "a")
    await b.claim(1)
    await b.commit_page(page(alice, ["b1@one.example"], "c1"))
    with pytest.raises(LeaseLost) as caught:
        await a.commit_page(page(alice, ["a1@one.example"], "stale"))
    assert "another worker" in str(caught.value)
    bob = unit("bob@one.example")
    await a.add_units([bob])
    await a.claim(1)
    await expire(postgres_url, schema, "a")
    await b.claim(1)
    # b finishes bob's list; a's late page for it is refused as well.
    await b.commit_page(
        PageCommit(unit=alice.key, cursor=None, result=ListResult(outcome="complete"))
    )
    await b.commit_page(PageCommit(unit=bob.key, cursor=None, result=ListResult(outcome="empty")))
    with pytest.raises(LeaseLost):
        await a.commit_page(page(bob, ["a2@one.example"], None))
    edges = [(e.follower, e.followed) async for e in a.edges()]
    units = [u async for u in a.units()]
    outcomes = [r.outcome async for _, r in a.outcomes()]
    assert edges == [("b1@one.example", "alice@one.example")]
    assert units[0].cursor is None
    assert units[0].pages == 2
    assert outcomes == ["complete", "empty"]


async def test_a_closed_worker_gives_its_units_back_at_once(
    workers: list[PostgresCrawlSink],
) -> None:
    a, b = workers
    await a.add_units([unit("alice@one.example")])
    await a.claim(1)
    await a.close()
    assert [u.key.account for u in await b.claim(1)] == ["alice@one.example"]


async def test_a_second_live_worker_with_the_same_name_is_refused(
    workers: list[PostgresCrawlSink],
    postgres_url: str,
    schema: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(_postgres, "_NAME_WAIT", 0.3)
    twin = PostgresCrawlSink(postgres_url, schema=schema, worker="a")
    with pytest.raises(UsageError, match="already running"):
        await twin.open(None)


async def test_messages_and_reprs_never_show_the_password(postgres_url: str) -> None:
    password = postgres_url.split(":")[2].split("@")[0]
    wrong = postgres_url.replace(password, "not-the-password-" + password[:4])
    sink = PostgresCrawlSink(wrong)
    with pytest.raises(CrawlSinkError) as caught:
        await sink.open(PLAN)
    for text in (str(caught.value), repr(sink), sink.where):
        assert "not-the-password" not in text
        assert password not in text
    assert "***" in str(caught.value)
    right = PostgresCrawlSink(postgres_url)
    assert password not in repr(right)
    assert password not in repr(open_sink(postgres_url))
    with pytest.raises(ConfigurationError) as bad:
        PostgresCrawlSink("mysql://user:" + password + "@db/x")
    assert password not in str(bad.value)


async def test_a_schema_of_another_program_or_a_newer_aiomasto_is_refused(
    postgres_url: str, schema: str
) -> None:
    connection = await asyncpg.connect(postgres_url)
    try:
        await connection.execute(f'CREATE SCHEMA "{schema}"')
        await connection.execute(f'CREATE TABLE "{schema}".users (id int)')
        with pytest.raises(ConfigurationError, match="another program"):
            await PostgresCrawlSink(postgres_url, schema=schema).open(PLAN)
        newer = f"{schema}_new"
        sink = PostgresCrawlSink(postgres_url, schema=newer)
        await sink.open(PLAN)
        await sink.close()
        await connection.execute(f'UPDATE "{newer}".crawl_meta SET version = 99')
        with pytest.raises(ConfigurationError, match="newer aiomasto"):
            await PostgresCrawlSink(postgres_url, schema=newer).open(None)
        assert await connection.fetchval(f'SELECT count(*) FROM "{schema}".users') == 0
    finally:
        await connection.close()


class LosingSink(MemoryCrawlSink):
    """A shared sink whose first page of one list another worker has taken over."""

    def __init__(self, lost: UnitKey) -> None:
        super().__init__()
        self.lost = lost

    async def commit_page(self, commit: PageCommit) -> Sequence[Unit]:
        if commit.unit == self.lost:
            raise LeaseLost("the list is another worker's now")
        return await super().commit_page(commit)


async def test_the_crawler_drops_a_list_another_worker_took_over() -> None:
    fedi = FakeFediverse()
    fedi.add_instance("one.example")
    for name in ("alice", "bob", "carol"):
        fedi.add_account(f"{name}@one.example")
    fedi.follow("bob@one.example", "alice@one.example")
    fedi.follow("carol@one.example", "bob@one.example")
    lost = UnitKey(account="alice@one.example", relation="followers")
    sink = LosingSink(lost)
    async with (
        fedi.run(),
        aiohttp.ClientSession(connector=aiohttp.TCPConnector(resolver=fedi.resolver())) as http,
        Crawler(sink, http=http, allow_insecure_http=True, relations=("followers",)) as crawler,
    ):
        summary = await crawler.run(["@alice@one.example", "@bob@one.example"])
    assert lost not in sink.results
    assert sink.results[UnitKey(account="bob@one.example", relation="followers")].outcome == (
        "complete"
    )
    assert summary.outcomes == {"complete": 1}


async def test_a_crawler_waits_for_the_units_other_workers_hold(
    postgres_url: str, schema: str
) -> None:
    fedi = FakeFediverse()
    fedi.add_instance("one.example")
    for name in ("alice", "bob"):
        fedi.add_account(f"{name}@one.example")
    fedi.follow("bob@one.example", "alice@one.example")
    fedi.follow("alice@one.example", "bob@one.example")
    other = PostgresCrawlSink(postgres_url, schema=schema, worker="other")
    plan = CrawlPlan(seeds=("@alice@one.example",), relations=("followers",))
    await other.open(plan)
    units = [
        Unit(
            key=UnitKey(account=f"{name}@one.example", relation="followers"),
            target=f"@{name}@one.example",
            api_base=fedi.url("one.example"),
            account_id=fedi.account_id(f"{name}@one.example"),
        )
        for name in ("alice", "bob")
    ]
    await other.add_units(units)
    held = await other.claim(1)  # the other worker holds alice's list, and then stops
    sink = PostgresCrawlSink(postgres_url, schema=schema, worker="me")

    async def stop_the_other_later() -> None:
        await asyncio.sleep(1.0)
        await other.close()

    async with (
        fedi.run(),
        aiohttp.ClientSession(connector=aiohttp.TCPConnector(resolver=fedi.resolver())) as http,
        Crawler(sink, http=http, allow_insecure_http=True, relations=("followers",)) as crawler,
    ):
        stopper = asyncio.create_task(stop_the_other_later())
        summary = await crawler.run(None)
        await stopper
    assert held[0].key.account == "alice@one.example"
    assert summary.outcomes == {"complete": 2}
    outcomes = {key.account: r.outcome async for key, r in sink.outcomes()}
    assert outcomes == {"alice@one.example": "complete", "bob@one.example": "complete"}


def test_crawl_worker_refuses_an_sqlite_file(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "aiomasto", "crawl-worker", "--db", str(tmp_path / "c.sqlite")],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 1
    assert "PostgreSQL" in done.stderr


async def test_crawl_workers_join_a_crawl_and_finish_it(postgres_url: str, schema: str) -> None:
    fedi = FakeFediverse()
    fedi.add_instance("one.example")
    fedi.add_instance("two.example")
    fedi.populate(seed=3, accounts_per_instance=8, follows_per_account=3)
    plan = CrawlPlan(seeds=tuple(f"@{h}" for h in fedi.handles()))
    creator = PostgresCrawlSink(postgres_url, schema=schema)
    await creator.open(plan)
    await creator.add_units(
        [
            Unit(
                key=UnitKey(account=h, relation=relation),
                target=f"@{h}",
                api_base=fedi.url(h.partition("@")[2]),
                account_id=fedi.account_id(h),
            )
            for h in fedi.handles()
            for relation in ("followers", "following")
        ]
    )
    await creator.close()
    password = postgres_url.split(":")[2].split("@")[0]
    async with fedi.run():
        resolve = [f"--resolve={h}={ip}:{port}" for h, (ip, port) in fedi.resolve_map().items()]
        command = [sys.executable, "-m", "aiomasto", "crawl-worker", "--db", postgres_url]
        command += ["--schema", schema, "--insecure-http", "--quiet", *resolve]
        workers = [
            await asyncio.create_subprocess_exec(
                *command,
                cwd=PROJECT_ROOT,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
            )
            for _ in range(2)
        ]
        results = [await asyncio.wait_for(w.communicate(), timeout=45) for w in workers]
    for worker, (out, err) in zip(workers, results, strict=True):
        assert worker.returncode == 0, err.decode()[-2000:]
        assert password not in out.decode() + err.decode()
        assert "***" in err.decode()  # "worker ... joins the crawl in postgresql://aiomasto:***@"
    reader = PostgresCrawlSink(postgres_url, schema=schema)
    edges = {(e.follower, e.followed) async for e in reader.edges()}
    assert edges == fedi.edges()
    assert (await reader.stats()).pending == 0


async def test_aiomasto_crawl_starts_and_finishes_a_crawl_in_postgresql(postgres_url: str) -> None:
    # `aiomasto crawl --db postgresql://...` keeps the crawl in the default schema, where
    # crawl-workers can join it; the password never appears in what it prints.
    fedi = FakeFediverse()
    fedi.add_instance("one.example")
    fedi.add_instance("two.example", flavor="akkoma")
    fedi.populate(seed=5, accounts_per_instance=5, follows_per_account=3)
    seeds = [f"@{h}" for h in fedi.handles()]
    password = postgres_url.split(":")[2].split("@")[0]
    async with fedi.run():
        resolve = [f"--resolve={h}={ip}:{port}" for h, (ip, port) in fedi.resolve_map().items()]
        process = await asyncio.create_subprocess_exec(
            *(sys.executable, "-m", "aiomasto", "crawl", *seeds, "--db", postgres_url),
            *("--insecure-http", "--quiet", *resolve),
            cwd=PROJECT_ROOT,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await asyncio.wait_for(process.communicate(), timeout=45)
    try:
        assert process.returncode == 0, err.decode()[-2000:]
        assert password not in out.decode() + err.decode()
        assert "Crawl finished" in out.decode()
        assert "database: postgresql://aiomasto:***@" in out.decode()
        reader = PostgresCrawlSink(postgres_url)
        edges = [(e.follower, e.followed) async for e in reader.edges()]
        assert len(edges) == len(set(edges))
        assert set(edges) == fedi.edges()
    finally:
        connection = await asyncpg.connect(postgres_url)
        try:
            await connection.execute("DROP SCHEMA IF EXISTS aiomasto_crawl CASCADE")
        finally:
            await connection.close()


def test_export_from_a_postgresql_crawl_is_a_usage_error() -> None:
    db = "postgresql://crawler:secret@db.example/crawls"
    done = subprocess.run(
        [sys.executable, "-m", "aiomasto", "crawl", "--export", "csv", "--db", db],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 2
    assert "SQL" in done.stderr
    assert "secret" not in done.stderr
