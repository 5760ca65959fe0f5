"""The CrawlSink contract: one suite, run unchanged against every crawl sink aiomasto ships.

Each sink kind is a factory in :data:`FACTORIES`: how to make a sink object over the storage
(again, as a new object over the same storage: a restarted crawler), how a child process makes
one, and how to read back what it holds (the results are not part of the protocol, so each
kind says how). A new sink kind is one more factory there; nothing else changes.
"""

from __future__ import annotations

import asyncio
import importlib
import json
import random
import signal
import sqlite3
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from attrs import evolve, field, frozen

from aiomasto.crawl import (
    AccountRecord,
    CrawlPlan,
    CrawlSink,
    Edge,
    ListResult,
    PageCommit,
    PostgresCrawlSink,
    SqliteCrawlSink,
    Unit,
    UnitKey,
)
from aiomasto.errors import ConfigurationError, MastodonError, UsageError

PROJECT_ROOT = Path(__file__).resolve().parents[1]
PLAN = CrawlPlan(seeds=("@alice@one.example", "@bob@two.example"), depth=1)


@frozen(kw_only=True)
class Held:
    """What a sink holds, as the tests compare it."""

    edges: frozenset[tuple[str, str]]
    accounts: dict[str, AccountRecord]
    units: dict[UnitKey, Unit]
    results: dict[UnitKey, ListResult]


@frozen(kw_only=True)
class SinkSpec:
    """A sink class by import path and its arguments: all a child process needs to open it."""

    module: str
    name: str
    args: tuple[str, ...] = ()
    kwargs: dict[str, Any] = field(factory=dict)

    def make(self) -> CrawlSink:
        kind = getattr(importlib.import_module(self.module), self.name)
        sink: CrawlSink = kind(*self.args, **self.kwargs)
        return sink

    def to_json(self) -> str:
        return json.dumps(
            {"module": self.module, "name": self.name, "args": self.args, "kwargs": self.kwargs}
        )


@frozen(kw_only=True)
class Backend:
    """One kind of sink under test.

    ``make()`` returns a new sink object over the same storage; ``read(sink)`` what it holds;
    ``shared`` how a child process makes one (``None`` for a sink that lives in its process);
    ``check()`` runs the storage's own consistency check, if it has one.
    """

    name: str
    make: Callable[[], CrawlSink]
    read: Callable[[CrawlSink], Awaitable[Held]]
    shared: SinkSpec | None
    check: Callable[[], None] = field(default=lambda: None)
    made: list[CrawlSink] = field(factory=list)

    def new(self) -> CrawlSink:
        sink = self.make()
        self.made.append(sink)
        return sink


async def read_sqlite(sink: CrawlSink) -> Held:
    assert isinstance(sink, SqliteCrawlSink)
    units = {unit.key: unit async for unit in sink.units()}
    return Held(
        edges=frozenset([(edge.follower, edge.followed) async for edge in sink.edges()]),
        accounts={record.key: record async for record in sink.accounts()},
        units=units,
        results={key: result async for key, result in sink.outcomes()},
    )


def sqlite_backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    path = tmp_path / "crawls" / "crawl.sqlite"
    spec = SinkSpec(module="aiomasto.crawl", name="SqliteCrawlSink", args=(str(path),))

    def check() -> None:
        with sqlite3.connect(path) as connection:
            assert connection.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
            assert connection.execute("PRAGMA foreign_key_check").fetchall() == []

    return Backend(name="sqlite", make=spec.make, read=read_sqlite, shared=spec, check=check)


async def read_postgres(sink: CrawlSink) -> Held:
    assert isinstance(sink, PostgresCrawlSink)
    return Held(
        edges=frozenset([(edge.follower, edge.followed) async for edge in sink.edges()]),
        accounts={record.key: record async for record in sink.accounts()},
        units={unit.key: unit async for unit in sink.units()},
        results={key: result async for key, result in sink.outcomes()},
    )


def postgres_backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    """A schema of its own per test on the session's PostgreSQL. One worker name for every
    sink: a crawler that restarts under its name takes its units back at once, as a new
    open of an SQLite file does (other workers would wait for the lease to run out)."""
    url = request.getfixturevalue("postgres_url")
    spec = SinkSpec(
        module="aiomasto.crawl",
        name="PostgresCrawlSink",
        args=(url,),
        kwargs={"schema": f"contract_{uuid.uuid4().hex[:12]}", "worker": "contract"},
    )
    return Backend(name="postgres", make=spec.make, read=read_postgres, shared=spec)


# Every sink kind the suite runs against; a new kind is one more factory here.
FACTORIES: list[Callable[[pytest.FixtureRequest, Path], Backend]] = [
    sqlite_backend,
    postgres_backend,
]
SHARED_FACTORIES = FACTORIES


def _name(factory: Callable[[pytest.FixtureRequest, Path], Backend]) -> str:
    return factory.__name__.removesuffix("_backend")


async def _made(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Backend]:
    backend: Backend = request.param(request, tmp_path)
    yield backend
    for sink in backend.made:
        await sink.close()


@pytest.fixture(params=FACTORIES, ids=_name)
async def backend(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Backend]:
    async for made in _made(request, tmp_path):
        yield made


@pytest.fixture(params=SHARED_FACTORIES, ids=_name)
async def shared_backend(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Backend]:
    async for made in _made(request, tmp_path):
        yield made


@pytest.fixture
async def sink(backend: Backend) -> CrawlSink:
    opened = backend.new()
    await opened.open(PLAN)
    return opened


def unit(account: str, relation: str = "followers", depth: int = 0) -> Unit:
    assert relation in ("followers", "following")
    return Unit(
        key=UnitKey(account=account, relation=relation),  # type: ignore[arg-type]
        target=f"@{account}",
        depth=depth,
    )


def record(key: str, **changes: Any) -> AccountRecord:
    base = AccountRecord(
        key=key,
        acct=key.title(),
        uri=f"https://{key.split('@')[1]}/users/{key.split('@')[0]}",
        display_name=f"The {key}",
        note="<p>hi</p>",
        followers_count=3,
        following_count=4,
        statuses_count=5,
        created_at=datetime(2023, 4, 5, 6, 7, 8, tzinfo=UTC),
        seen_on=f"https://{key.split('@')[1]}",
    )
    return evolve(base, **changes)


def followers_page(
    target: Unit, followers: Sequence[str], cursor: str | None, **more: object
) -> PageCommit:
    parts: dict[str, object] = {
        "accounts": [record(key) for key in followers],
        "edges": [Edge(follower=key, followed=target.key.account) for key in followers],
        **more,
    }
    return PageCommit(unit=target.key, cursor=cursor, **parts)  # type: ignore[arg-type]


ALICE = unit("alice@one.example")
BOB = unit("bob@two.example")
ALICE_FOLLOWING = unit("alice@one.example", "following")


# Starting and resuming


async def test_a_new_crawl_stores_the_plan_and_invents_no_units(backend: Backend) -> None:
    sink = backend.new()
    async with asyncio.timeout(10):
        state = await sink.open(PLAN)
        assert state.plan == PLAN
        assert (state.pending, state.units_done, state.edges, state.accounts_queued) == (0, 0, 0, 0)
        assert await sink.claim(10) == []


async def test_a_resumed_crawl_returns_its_plan_and_progress(backend: Backend) -> None:
    first = backend.new()
    async with asyncio.timeout(10):
        await first.open(PLAN)
        await first.add_units([ALICE, BOB, ALICE_FOLLOWING, unit("carol@two.example", depth=1)])
        await first.commit_page(followers_page(ALICE, ["x@one.example", "y@two.example"], "c1"))
        await first.commit_page(
            followers_page(BOB, ["x@one.example"], None, result=ListResult(outcome="complete"))
        )
        await first.close()

        for plan in (None, PLAN):
            again = backend.new()
            state = await again.open(plan)
            assert state.plan == PLAN
            assert state.pending == 3
            assert state.units_done == 1
            assert state.edges == 3
            assert state.accounts_queued == 3
            assert dict(state.per_domain) == {"one.example": 1, "two.example": 2}
            await again.close()


async def test_a_different_plan_is_refused_naming_what_differs(backend: Backend) -> None:
    first = backend.new()
    async with asyncio.timeout(10):
        await first.open(PLAN)
        await first.add_units([ALICE])
        await first.close()
        other = evolve(PLAN, depth=2, seeds=(*PLAN.seeds, "@dave@three.example"))
        again = backend.new()
        with pytest.raises(ConfigurationError) as caught:
            await again.open(other)
        assert "depth" in str(caught.value)
        assert "@dave@three.example" in str(caught.value)
        assert "max_accounts" not in str(caught.value)
        # Nothing changed: the stored crawl resumes as it was.
        state = await again.open(None)
        assert state.plan == PLAN
        assert state.pending == 1


async def test_resuming_where_no_crawl_is_stored_says_there_is_nothing_to_resume(
    backend: Backend,
) -> None:
    sink = backend.new()
    async with asyncio.timeout(10):
        with pytest.raises(ConfigurationError, match="nothing to resume"):
            await sink.open(None)
        # The failed open left nothing behind that would make a resume succeed.
        with pytest.raises(ConfigurationError, match="nothing to resume"):
            await backend.new().open(None)
        state = await sink.open(PLAN)
        assert state.plan == PLAN


async def test_calls_before_open_or_after_close_are_usage_errors(backend: Backend) -> None:
    sink = backend.new()
    async with asyncio.timeout(10):
        with pytest.raises(UsageError):
            await sink.claim(1)
        await sink.open(PLAN)
        await sink.add_units([ALICE])
        await sink.close()
        with pytest.raises(UsageError):
            await sink.add_units([BOB])
        with pytest.raises(UsageError):
            await sink.commit_page(followers_page(ALICE, ["x@one.example"], "c1"))
        held = await backend.read(sink)
    assert set(held.units) == {ALICE.key}
    assert held.edges == frozenset()
    assert held.units[ALICE.key].cursor is None


# Units


async def test_add_units_adds_each_key_once(sink: CrawlSink, backend: Backend) -> None:
    async with asyncio.timeout(10):
        assert await sink.add_units([ALICE, BOB]) == [ALICE, BOB]
        again = [evolve(ALICE, target="https://one.example/@alice"), ALICE_FOLLOWING]
        assert await sink.add_units(again) == [ALICE_FOLLOWING]
        duplicated = [unit("carol@two.example"), unit("carol@two.example", depth=1)]
        assert await sink.add_units(duplicated) == [duplicated[0]]
        assert await sink.add_units([]) == []
        held = await backend.read(sink)
    assert set(held.units) == {ALICE.key, BOB.key, ALICE_FOLLOWING.key, duplicated[0].key}
    assert held.units[ALICE.key].target == ALICE.target  # the first one stays
    assert held.units[duplicated[0].key].depth == 0


async def test_claim_hands_out_each_unit_once_shallowest_first(sink: CrawlSink) -> None:
    deep = unit("zed@three.example", depth=1)
    async with asyncio.timeout(10):
        await sink.add_units([deep, ALICE])
        await sink.add_units([BOB, ALICE_FOLLOWING])
        first = await sink.claim(2)
        second = await sink.claim(10)
        assert [u.key for u in first] == [ALICE.key, BOB.key]
        assert [u.key for u in second] == [ALICE_FOLLOWING.key, deep.key]
        assert await sink.claim(10) == []
        with pytest.raises(ConfigurationError):
            await sink.claim(0)


async def test_a_new_open_takes_back_what_a_dead_crawler_held(backend: Backend) -> None:
    first = backend.new()
    async with asyncio.timeout(10):
        await first.open(PLAN)
        await first.add_units([ALICE, BOB])
        assert len(await first.claim(10)) == 2
        await first.commit_page(
            followers_page(
                ALICE, ["x@one.example"], "c1", api_base="https://one.example", account_id="7"
            )
        )
        await first.commit_page(
            followers_page(BOB, [], None, result=ListResult(outcome="hidden", claimed=12))
        )
        await first.close()  # as if it died: it held ALICE, unfinished

        again = backend.new()
        await again.open(None)
        claimed = await again.claim(10)
    assert claimed == [
        evolve(ALICE, cursor="c1", api_base="https://one.example", account_id="7", found=1, pages=1)
    ]


async def test_a_result_finishes_the_unit(sink: CrawlSink, backend: Backend) -> None:
    finished = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    result = ListResult(outcome="moved", claimed=40, detail="moved away", moved_to="al@new.example")
    async with asyncio.timeout(10):
        await sink.add_units([ALICE, BOB])
        await sink.claim(10)
        await sink.commit_page(followers_page(ALICE, ["x@one.example", "y@one.example"], "c1"))
        await sink.commit_page(
            followers_page(
                ALICE, ["z@one.example"], None, result=evolve(result, finished_at=finished)
            )
        )
        await sink.commit_page(
            PageCommit(unit=BOB.key, cursor=None, result=ListResult(outcome="gone", claimed=None))
        )
        assert await sink.claim(10) == []
        with pytest.raises(UsageError, match="finished"):
            await sink.commit_page(followers_page(ALICE, ["w@one.example"], None))
        held = await backend.read(sink)
    assert held.results[ALICE.key] == evolve(result, found=3, finished_at=finished)
    assert held.units[ALICE.key].pages == 2
    assert held.results[BOB.key].outcome == "gone"
    assert held.results[BOB.key].finished_at is not None
    assert ("w@one.example", ALICE.key.account) not in held.edges


async def test_a_page_for_a_unit_never_added_is_refused(sink: CrawlSink, backend: Backend) -> None:
    async with asyncio.timeout(10):
        with pytest.raises(UsageError, match="no such unit"):
            await sink.commit_page(followers_page(ALICE, ["x@one.example"], "c1"))
        held = await backend.read(sink)
    assert held.edges == frozenset()
    assert held.accounts == {}


async def test_discovered_units_are_added_once(sink: CrawlSink, backend: Backend) -> None:
    found = [unit("x@one.example", depth=1), unit("x@one.example", "following", depth=1)]
    async with asyncio.timeout(10):
        await sink.add_units([ALICE, BOB])
        added = await sink.commit_page(
            followers_page(ALICE, ["x@one.example"], "c1", units=[*found, BOB])
        )
        assert added == found
        again = await sink.commit_page(
            followers_page(BOB, ["x@one.example"], None, units=[found[0], unit("y@two.example")])
        )
        assert again == [unit("y@two.example")]
        held = await backend.read(sink)
    assert set(held.units) == {
        ALICE.key,
        BOB.key,
        found[0].key,
        found[1].key,
        unit("y@two.example").key,
    }


async def test_edges_are_stored_once_across_pages_and_units(
    sink: CrawlSink, backend: Backend
) -> None:
    async with asyncio.timeout(10):
        await sink.add_units([ALICE, BOB, ALICE_FOLLOWING])
        await sink.commit_page(followers_page(ALICE, ["x@one.example", "y@one.example"], "c1"))
        # A server whose pages overlap lists y twice; a page lists an account twice.
        await sink.commit_page(followers_page(ALICE, ["y@one.example", "z@one.example"], "c2"))
        await sink.commit_page(followers_page(ALICE, ["z@one.example", "z@one.example"], "c3"))
        # The same follow seen from the other side: alice's following lists bob.
        await sink.commit_page(followers_page(BOB, ["alice@one.example"], None))
        await sink.commit_page(
            PageCommit(
                unit=ALICE_FOLLOWING.key,
                cursor=None,
                accounts=[record("bob@two.example")],
                edges=[Edge(follower="alice@one.example", followed="bob@two.example")],
            )
        )
        held = await backend.read(sink)
    assert held.edges == {
        ("x@one.example", "alice@one.example"),
        ("y@one.example", "alice@one.example"),
        ("z@one.example", "alice@one.example"),
        ("alice@one.example", "bob@two.example"),
    }
    assert held.units[ALICE.key].cursor == "c3"
    assert held.units[ALICE.key].pages == 3


async def test_an_account_upsert_keeps_the_latest_snapshot(
    sink: CrawlSink, backend: Backend
) -> None:
    latest = record("x@one.example", display_name="New name", followers_count=99, bot=True)
    async with asyncio.timeout(10):
        await sink.add_units([ALICE])
        await sink.commit_page(followers_page(ALICE, ["x@one.example", "y@one.example"], "c1"))
        await sink.save_accounts([latest])
        await sink.save_accounts([record("alice@one.example", moved_to="al@new.example")])
        held = await backend.read(sink)
    assert held.accounts["x@one.example"] == latest
    assert held.accounts["y@one.example"] == record("y@one.example")
    assert held.accounts["alice@one.example"].moved_to == "al@new.example"


async def test_an_instance_is_saved_and_replaced(sink: CrawlSink) -> None:
    from aiomasto.crawl import InstanceRecord

    first = InstanceRecord(api_base="https://one.example", software="mastodon", quirks={"a": 1})
    latest = evolve(first, status="unreachable", detail="refused", quirks={"max_page": 40})
    async with asyncio.timeout(10):
        await sink.save_instance(first)
        await sink.save_instance(latest)
        if isinstance(sink, SqliteCrawlSink):
            (stored,) = await sink.instances()
            assert evolve(stored, updated_at=None) == latest


# A failing commit stores nothing of its page


FAILURES = {
    # An edge with no follower: the accounts before it are written, then the insert fails.
    "edge without a follower": lambda: followers_page(
        ALICE,
        ["x@one.example"],
        "c2",
        edges=[Edge(follower=None, followed="alice@one.example")],  # type: ignore[arg-type]
    ),
    # A count that is no number at all.
    "account that cannot be stored": lambda: followers_page(
        ALICE,
        [],
        "c2",
        accounts=[record("v@one.example"), record("x@one.example", followers_count=object())],
    ),
    # Accounts and edges fine, the last part (a discovered unit) broken.
    "discovered unit that cannot be stored": lambda: followers_page(
        ALICE,
        ["x@one.example"],
        "c2",
        units=[evolve(unit("x@one.example"), depth=object())],  # type: ignore[arg-type]
    ),
}


@pytest.mark.parametrize("failure", FAILURES)
async def test_a_failing_commit_stores_nothing_of_its_page(
    sink: CrawlSink, backend: Backend, failure: str
) -> None:
    async with asyncio.timeout(10):
        await sink.add_units([ALICE])
        await sink.commit_page(followers_page(ALICE, ["w@one.example"], "c1"))
        before = await backend.read(sink)
        with pytest.raises(MastodonError):
            await sink.commit_page(FAILURES[failure]())
        after = await backend.read(sink)
        # The sink is still usable, and the page can be committed again once fixed.
        await sink.commit_page(followers_page(ALICE, ["x@one.example"], "c2"))
        fixed = await backend.read(sink)
    assert after == before
    assert after.units[ALICE.key].cursor == "c1"
    assert after.units[ALICE.key].pages == 1
    assert "x@one.example" not in after.accounts
    assert fixed.units[ALICE.key].cursor == "c2"
    assert ("x@one.example", "alice@one.example") in fixed.edges


# Exactly once across kill -9

CHILD = """
import asyncio, importlib, json, os, signal, sys, threading
from aiomasto.crawl import CrawlPlan, Edge, ListResult, PageCommit, Unit, UnitKey, AccountRecord

spec, plan, units, pages, kill_after, kill_in, kill_inside = json.loads(sys.argv[1])
sink = getattr(importlib.import_module(spec["module"]), spec["name"])(
    *spec["args"], **spec["kwargs"]
)

def kill():
    os.kill(os.getpid(), signal.SIGKILL)

# An edge that kills the process when the sink reads it: inside the page's transaction,
# after the page's accounts and first edges are written.
class Bomb:
    follower = "bomb@nowhere.example"

    @property
    def followed(self):
        kill()


def page(account, number, bomb=False):
    followers = [f"f{number}-{k}-{account}" for k in range(20)]
    last = number + 1 == pages
    return PageCommit(
        unit=UnitKey(account=account, relation="followers"),
        cursor=None if last else f"p{number + 1}",
        accounts=[AccountRecord(key=f, acct=f, followers_count=number) for f in followers],
        edges=[Edge(follower=f, followed=account) for f in followers] + ([Bomb()] if bomb else []),
        result=ListResult(outcome="complete", found=20 * pages) if last else None,
    )

async def main():
    await sink.open(CrawlPlan(seeds=tuple(plan)))
    await sink.add_units([
        Unit(key=UnitKey(account=a, relation="followers"), target=a) for a in units
    ])
    if kill_in is not None:
        threading.Timer(kill_in, kill).start()
    commits = 0
    while claimed := await sink.claim(3):
        for unit in claimed:
            number = 0 if unit.cursor is None else int(unit.cursor[1:])
            while number < pages:
                commits += 1
                await sink.commit_page(page(unit.key.account, number, commits == kill_inside))
                if commits == kill_after:
                    kill()
                number += 1
    await sink.close()

asyncio.run(main())
"""


def expected_edges(units: Sequence[str], pages: int) -> set[tuple[str, str]]:
    return {
        (f"f{number}-{k}-{account}", account)
        for account in units
        for number in range(pages)
        for k in range(20)
    }


async def test_a_crawler_killed_at_any_moment_resumes_to_every_edge_exactly_once(
    shared_backend: Backend,
) -> None:
    backend = shared_backend
    assert backend.shared is not None
    accounts = [f"u{n}@d{n % 3}.example" for n in range(8)]
    pages = 6
    rng = random.Random(20260101)
    # (kill after commit n, kill after s seconds, kill inside commit n): None is never.
    runs: list[tuple[int | None, float | None, int | None]] = [
        (rng.randrange(1, 20), None, None),
        (None, None, rng.randrange(1, 20)),
        (None, rng.uniform(0.0, 0.05), None),  # it may strike anywhere
        (None, None, rng.randrange(1, 20)),
        (None, rng.uniform(0.0, 0.05), None),
        (None, None, None),  # the run that finishes
    ]
    kills = 0
    for kill_after, kill_in, kill_inside in runs:
        argument = json.dumps(
            [
                json.loads(backend.shared.to_json()),
                list(PLAN.seeds),
                accounts,
                pages,
                kill_after,
                kill_in,
                kill_inside,
            ]
        )
        child = await asyncio.to_thread(
            subprocess.run,
            [sys.executable, "-c", CHILD, argument],
            cwd=PROJECT_ROOT,
            capture_output=True,
            timeout=30,
            check=False,
        )
        killed = child.returncode == -signal.SIGKILL
        assert killed or child.returncode == 0, child.stderr.decode()[-2000:]
        kills += killed
        backend.check()
        held = await backend.read(backend.new())
        # Consistent after every kill: each unit's edges are exactly its committed pages.
        for account in accounts:
            progress = held.units[UnitKey(account=account, relation="followers")]
            mine = {edge for edge in held.edges if edge[1] == account}
            assert all(edge[1] in accounts for edge in held.edges)
            assert mine == expected_edges([account], progress.pages)
            assert progress.found == 20 * progress.pages
            done = progress.pages == pages
            assert progress.cursor == (
                None if done else f"p{progress.pages}" if progress.pages else None
            )
            assert (progress.key in held.results) == done
    assert not killed
    assert kills >= 3  # the timers may come after the end; the others always strike
    assert held.edges == expected_edges(accounts, pages)
    assert len(held.accounts) == len(held.edges)
    assert all(result.outcome == "complete" for result in held.results.values())
    assert len(held.results) == len(accounts)
