"""A crawl sink that keeps everything in memory: for tests, users' tests and benchmarks."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from attrs import evolve

from aiomasto.errors import ConfigurationError, UsageError

from ._model import (
    AccountRecord,
    CrawlPlan,
    Edge,
    InstanceRecord,
    ListResult,
    PageCommit,
    ResumeState,
    Unit,
    UnitKey,
)
from ._sqlite import CrawlStats

__all__ = ["MemoryCrawlSink"]


class MemoryCrawlSink:
    """The :class:`~aiomasto.crawl.CrawlSink` protocol in a few dicts; nothing touches disk.

    A commit is atomic (no method awaits while it changes anything). ``open`` on a sink that
    already holds a crawl resumes it, and makes every unfinished unit claimable again, as a
    new process opening a file would: that is how tests exercise resumption without one.

    ``keep_results=False`` keeps the crawl's state (units, cursors, outcomes, instances) but
    drops accounts and edges after counting them: the no-op sink for benchmarks, whose memory
    stays flat however many edges the crawl finds.

    Example::

        sink = MemoryCrawlSink()
        async with Crawler(sink) as crawler:
            await crawler.run(["@alice@example.social"])
        print(len(sink.edges), sink.results[UnitKey(account="alice@example.social",
                                                     relation="followers")].outcome)
    """

    def __init__(self, *, keep_results: bool = True) -> None:
        self.keep_results = keep_results
        self.plan: CrawlPlan | None = None
        self.units: dict[UnitKey, Unit] = {}
        """Every unit with its committed progress, in the order added."""
        self.results: dict[UnitKey, ListResult] = {}
        """How each finished list ended."""
        self.accounts: dict[str, AccountRecord] = {}
        self.edges: set[Edge] = set()
        self.instances: dict[str, InstanceRecord] = {}
        self.edge_count = 0
        """Distinct edges stored (with ``keep_results=False``: edges committed, not distinct)."""
        self.account_writes = 0
        self.commits = 0
        self._held: set[UnitKey] = set()
        self._open = False

    def __repr__(self) -> str:
        return (
            f"<MemoryCrawlSink units={len(self.units)} done={len(self.results)} "
            f"edges={self.edge_count}>"
        )

    async def open(self, plan: CrawlPlan | None) -> ResumeState:
        if self.plan is None:
            if plan is None:
                raise ConfigurationError("nothing to resume: this sink holds no crawl yet")
            self.plan = plan
        elif plan is not None and plan != self.plan:
            raise ConfigurationError(
                f"this sink holds another crawl ({_differences(self.plan, plan)}); "
                "resume it without a plan or use a new sink"
            )
        self._held.clear()
        self._open = True
        per_domain: Counter[str] = Counter()
        accounts = {key.account for key in self.units}
        for account in accounts:
            per_domain[account.rpartition("@")[2]] += 1
        return ResumeState(
            plan=self.plan,
            pending=len(self.units) - len(self.results),
            accounts_queued=len(accounts),
            per_domain=dict(per_domain),
            edges=self.edge_count,
            units_done=len(self.results),
        )

    async def stats(self) -> CrawlStats:
        """Counts, as :meth:`SqliteCrawlSink.stats <aiomasto.crawl.SqliteCrawlSink.stats>`
        gives them (with ``keep_results=False``: accounts and edges committed, not distinct)."""
        outcomes: Counter[str] = Counter(result.outcome for result in self.results.values())
        return CrawlStats(
            pending=len(self.units) - len(self.results),
            done=len(self.results),
            outcomes=dict(outcomes),
            edges=self.edge_count,
            accounts=len(self.accounts) if self.keep_results else self.account_writes,
            instances=len(self.instances),
        )

    async def claim(self, limit: int) -> Sequence[Unit]:
        self._check_open()
        claimed: list[Unit] = []
        # Breadth first, as the SQLite sink: lower depth, then the order added.
        for unit in sorted(self._claimable(), key=lambda u: u.depth):
            if len(claimed) >= limit:
                break
            self._held.add(unit.key)
            claimed.append(unit)
        return claimed

    async def outstanding(self) -> int:
        """Unfinished units not handed out (nobody else uses this sink)."""
        self._check_open()
        return len(self._claimable())

    def _claimable(self) -> list[Unit]:
        return [
            unit
            for key, unit in self.units.items()
            if key not in self.results and key not in self._held
        ]

    async def add_units(self, units: Sequence[Unit]) -> Sequence[Unit]:
        self._check_open()
        return self._add(units)

    def _add(self, units: Sequence[Unit]) -> list[Unit]:
        added = []
        for unit in units:
            if unit.key not in self.units:
                self.units[unit.key] = unit
                added.append(unit)
        return added

    async def save_instance(self, record: InstanceRecord) -> None:
        self._check_open()
        self.instances[record.api_base] = record

    async def save_accounts(self, records: Sequence[AccountRecord]) -> None:
        self._check_open()
        self._store_accounts(records)

    def _store_accounts(self, records: Sequence[AccountRecord]) -> None:
        self.account_writes += len(records)
        if self.keep_results:
            for record in records:
                self.accounts[record.key] = record

    async def commit_page(self, commit: PageCommit) -> Sequence[Unit]:
        self._check_open()
        unit = self.units.get(commit.unit)
        if unit is None:
            raise UsageError(f"commit for a unit this sink does not hold: {commit.unit}")
        if commit.unit in self.results:
            raise UsageError(f"commit for a finished unit: {commit.unit}")
        # Everything is checked above; nothing below can fail half-way.
        self._store_accounts(commit.accounts)
        if self.keep_results:
            before = len(self.edges)
            self.edges.update(commit.edges)
            self.edge_count += len(self.edges) - before
        else:
            self.edge_count += len(commit.edges)
        self.units[commit.unit] = evolve(
            unit,
            cursor=commit.cursor,
            api_base=commit.api_base or unit.api_base,
            account_id=commit.account_id or unit.account_id,
            found=unit.found + len(commit.accounts),
            skipped=unit.skipped + commit.skipped,
            pages=unit.pages + (1 if commit.accounts or commit.result is None else 0),
        )
        if commit.result is not None:
            self.results[commit.unit] = commit.result
            self._held.discard(commit.unit)
        self.commits += 1
        return self._add(commit.units)

    async def close(self) -> None:
        self._open = False
        self._held.clear()

    def _check_open(self) -> None:
        if not self._open:
            raise UsageError("the sink is not open (the crawler opens it in run())")


def _differences(stored: CrawlPlan, given: CrawlPlan) -> str:
    names = [
        name
        for name in (
            "seeds",
            "relations",
            "depth",
            "max_accounts",
            "max_per_instance",
            "max_per_list",
        )
        if getattr(stored, name) != getattr(given, name)
    ]
    return "different " + ", ".join(names)
