"""SqliteCrawlSink beyond the sink contract: its file, what it refuses, hostile values, reading."""

from __future__ import annotations

import asyncio
import sqlite3
import stat
from pathlib import Path

import pytest

from aiomasto.crawl import (
    AccountRecord,
    CrawlPlan,
    CrawlStats,
    Edge,
    ListResult,
    PageCommit,
    SqliteCrawlSink,
    Unit,
    UnitKey,
)
from aiomasto.errors import ConfigurationError, CrawlSinkError, UsageError
from aiomasto.stores import Credentials, SqliteTokenStore, StoreKey

PLAN = CrawlPlan(seeds=("@alice@one.example",))
ALICE = Unit(key=UnitKey(account="alice@one.example", relation="followers"), target="@alice")


async def test_the_file_is_private_and_in_wal_mode(tmp_path: Path) -> None:
    path = tmp_path / "new" / "dir" / "crawl.sqlite"
    sink = SqliteCrawlSink(path)
    async with asyncio.timeout(10):
        await sink.open(PLAN)
        await sink.add_units([ALICE])
        for file in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):
            assert stat.S_IMODE(file.stat().st_mode) == 0o600, file
        assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
        await sink.close()
    with sqlite3.connect(path) as connection:
        assert connection.execute("PRAGMA journal_mode").fetchone() == ("wal",)


async def test_resuming_a_missing_file_creates_nothing(tmp_path: Path) -> None:
    path = tmp_path / "crawl.sqlite"
    async with asyncio.timeout(10):
        with pytest.raises(ConfigurationError, match="nothing to resume"):
            await SqliteCrawlSink(path).open(None)
    assert not path.exists()


async def test_one_crawler_at_a_time_uses_a_file(tmp_path: Path) -> None:
    path = tmp_path / "crawl.sqlite"
    first, second = SqliteCrawlSink(path), SqliteCrawlSink(path)
    async with asyncio.timeout(10):
        await first.open(PLAN)
        await first.add_units([ALICE])
        with pytest.raises(UsageError, match="in use by another crawler"):
            await second.open(None)
        # Reading needs no lock: the crawl's results are readable while it runs.
        assert (await second.stats()).pending == 1
        await first.close()
        state = await second.open(None)
        assert state.pending == 1
        await second.close()


async def test_a_token_store_or_another_programs_database_is_refused_untouched(
    tmp_path: Path,
) -> None:
    tokens = tmp_path / "tokens.sqlite3"
    await SqliteTokenStore(tokens).save(
        StoreKey(instance="https://one.example", app="a"), Credentials()
    )
    other = tmp_path / "other.sqlite"
    with sqlite3.connect(other) as connection:
        connection.execute("CREATE TABLE things (x)")
    async with asyncio.timeout(10):
        with pytest.raises(ConfigurationError, match="token store"):
            await SqliteCrawlSink(tokens).open(PLAN)
        with pytest.raises(ConfigurationError, match="another program"):
            await SqliteCrawlSink(other).open(PLAN)
        with pytest.raises(ConfigurationError, match="another program"):
            await SqliteCrawlSink(other).stats()
    with sqlite3.connect(other) as connection:
        tables = connection.execute("SELECT name FROM sqlite_master").fetchall()
    assert tables == [("things",)]


async def test_a_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "crawl.sqlite"
    sink = SqliteCrawlSink(path)
    async with asyncio.timeout(10):
        await sink.open(PLAN)
        await sink.close()
        with sqlite3.connect(path) as connection:
            connection.execute("PRAGMA user_version = 99")
        with pytest.raises(ConfigurationError, match="newer aiomasto"):
            await SqliteCrawlSink(path).open(None)


@pytest.mark.parametrize(
    "content", [b"this is not a database at all" * 200, b"SQLite format 3\x00" + b"\xff" * 4000]
)
async def test_a_damaged_file_is_a_clear_error(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "crawl.sqlite"
    path.write_bytes(content)
    async with asyncio.timeout(10):
        with pytest.raises(CrawlSinkError) as caught:
            await SqliteCrawlSink(path).open(None)
        with pytest.raises(CrawlSinkError):
            await SqliteCrawlSink(path).stats()
    assert caught.value.path == str(path)
    assert str(path) in str(caught.value)
    assert path.read_bytes() == content


async def test_a_damaged_plan_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "crawl.sqlite"
    sink = SqliteCrawlSink(path)
    async with asyncio.timeout(10):
        await sink.open(PLAN)
        await sink.close()
        with sqlite3.connect(path) as connection:
            connection.execute("UPDATE crawl SET plan = '{\"seeds\": 5}'")
        with pytest.raises(CrawlSinkError, match="plan"):
            await SqliteCrawlSink(path).open(None)


async def test_hostile_values_are_stored_not_refused(tmp_path: Path) -> None:
    """A server's lone surrogate (valid JSON, not UTF-8) or absurd count must not stop a crawl."""
    sink = SqliteCrawlSink(tmp_path / "crawl.sqlite")
    hostile = AccountRecord(
        key="x\ud800@one.example",
        acct="x\ud800@one.example",
        display_name="\ud83d\ude00 and \udfff alone, NUL \x00 here",
        followers_count=10**30,
        following_count=-(10**30),
    )
    async with asyncio.timeout(10):
        await sink.open(PLAN)
        await sink.add_units([ALICE])
        await sink.commit_page(
            PageCommit(
                unit=ALICE.key,
                cursor="c1",
                accounts=[hostile],
                edges=[Edge(follower=hostile.key, followed="alice@one.example")],
            )
        )
        (stored,) = [record async for record in sink.accounts()]
        edges = [edge async for edge in sink.edges()]
        await sink.close()
    assert stored.key == "x\ufffd@one.example"
    assert stored.display_name == "\U0001f600 and \ufffd alone, NUL \x00 here"
    assert stored.followers_count == 2**63 - 1
    assert stored.following_count == -(2**63)
    assert edges == [Edge(follower="x\ufffd@one.example", followed="alice@one.example")]


async def test_stats_and_readers_while_the_crawl_runs(tmp_path: Path) -> None:
    sink = SqliteCrawlSink(tmp_path / "crawl.sqlite")
    bob = Unit(key=UnitKey(account="bob@two.example", relation="following"), target="@bob")
    async with asyncio.timeout(10):
        await sink.open(PLAN)
        await sink.add_units([ALICE, bob])
        followers = [f"f{n}@one.example" for n in range(5000)]  # more than one batch
        await sink.commit_page(
            PageCommit(
                unit=ALICE.key,
                cursor=None,
                accounts=[AccountRecord(key=key, acct=key) for key in followers],
                edges=[Edge(follower=key, followed="alice@one.example") for key in followers],
                result=ListResult(outcome="complete", claimed=5000),
            )
        )
        # A reader keeps its snapshot while the crawl writes.
        stream = sink.edges()
        first = await anext(stream)
        await sink.commit_page(
            PageCommit(
                unit=bob.key,
                cursor=None,
                edges=[Edge(follower="bob@two.example", followed="zz@three.example")],
                result=ListResult(outcome="capped", detail="cut at 1"),
            )
        )
        rest = [edge async for edge in stream]
        stats = await sink.stats()
        outcomes = [(key, result.outcome) async for key, result in sink.outcomes()]
        await sink.close()
    assert first == Edge(follower="f0@one.example", followed="alice@one.example")
    assert len(rest) == 4999
    assert stats == CrawlStats(
        pending=0,
        done=2,
        outcomes={"complete": 1, "capped": 1},
        edges=5001,
        accounts=5000,
        instances=0,
    )
    assert outcomes == [(ALICE.key, "complete"), (bob.key, "capped")]


async def test_reading_a_missing_file_is_a_configuration_error(tmp_path: Path) -> None:
    sink = SqliteCrawlSink(tmp_path / "nothing.sqlite")
    async with asyncio.timeout(10):
        with pytest.raises(ConfigurationError, match="does not exist"):
            await sink.stats()
        with pytest.raises(ConfigurationError, match="does not exist"):
            [edge async for edge in sink.edges()]
    assert not (tmp_path / "nothing.sqlite").exists()


async def test_a_cancelled_open_leaves_the_file_free(tmp_path: Path) -> None:
    path = tmp_path / "crawl.sqlite"
    async with asyncio.timeout(10):
        task = asyncio.create_task(SqliteCrawlSink(path).open(PLAN))
        await asyncio.sleep(0)  # the open is under way in its thread
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        again = SqliteCrawlSink(path)
        await again.open(PLAN)
        await again.close()


async def test_skipped_accounts_are_counted_across_a_resumed_list(tmp_path: Path) -> None:
    path = tmp_path / "crawl.sqlite"
    first = SqliteCrawlSink(path)
    async with asyncio.timeout(10):
        await first.open(PLAN)
        await first.add_units([ALICE])
        follower = AccountRecord(key="x@one.example", acct="x")
        edge = Edge(follower="x@one.example", followed="alice@one.example")
        await first.commit_page(
            PageCommit(unit=ALICE.key, cursor="c1", accounts=[follower], edges=[edge], skipped=2)
        )
        await first.close()  # killed after its first page

        again = SqliteCrawlSink(path)
        await again.open(None)
        (resumed,) = await again.claim(10)
        # The walk that resumes counts from what is stored, as it does with found.
        await again.commit_page(
            PageCommit(
                unit=ALICE.key,
                cursor=None,
                skipped=1,
                result=ListResult(outcome="complete", found=1, skipped=resumed.skipped + 1),
            )
        )
        await again.close()
        outcomes = [result async for _, result in again.outcomes()]
        units = [unit async for unit in again.units()]
    assert resumed.skipped == 2
    assert [(r.outcome, r.found, r.skipped) for r in outcomes] == [("complete", 1, 3)]
    assert units[0].skipped == 3


async def test_a_result_counting_more_skipped_than_its_pages_wins(tmp_path: Path) -> None:
    sink = SqliteCrawlSink(tmp_path / "crawl.sqlite")
    async with asyncio.timeout(10):
        await sink.open(PLAN)
        await sink.add_units([ALICE])
        await sink.commit_page(
            PageCommit(unit=ALICE.key, cursor=None, result=ListResult(outcome="failed", skipped=4))
        )
        await sink.close()
        (result,) = [result async for _, result in sink.outcomes()]
    assert result.skipped == 4


async def test_an_unchanged_snapshot_is_not_written_again(tmp_path: Path) -> None:
    path = tmp_path / "crawl.sqlite"
    sink = SqliteCrawlSink(path)
    snapshot = AccountRecord(key="x@one.example", acct="x", followers_count=3)
    async with asyncio.timeout(10):
        await sink.open(PLAN)
        await sink.save_accounts([snapshot])
        with sqlite3.connect(path) as connection:
            connection.execute("UPDATE accounts SET updated_at = 'then'")
        await sink.save_accounts([snapshot])
        with sqlite3.connect(path) as connection:
            unchanged = connection.execute("SELECT updated_at FROM accounts").fetchone()
        await sink.save_accounts([AccountRecord(key="x@one.example", acct="x", followers_count=4)])
        with sqlite3.connect(path) as connection:
            changed = connection.execute(
                "SELECT updated_at, followers_count FROM accounts"
            ).fetchone()
        await sink.close()
    assert unchanged == ("then",)
    assert changed[0] != "then"
    assert changed[1] == 4
