"""The crawl engine: a scheduler over many instances, each with its own slot.

Work comes from the sink (:meth:`~aiomasto.crawl.CrawlSink.claim`), one unit (account,
relation) at a time. Each unit is resolved to its home instance and walked there (see
:mod:`aiomasto.crawl._walk`). Like Scrapy's download slots, every instance has its own
concurrency (``per_instance``) and its own rate budget, and the crawl has a global limit on
walks actually fetching (``concurrency``): a walk gives its global slot back while it waits
for its instance (a rate-limit wait, a backoff, a busy instance), so one slow, limited or
dead instance never holds up the others.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter, deque
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime
from types import TracebackType
from typing import Self

import aiohttp
from attrs import evolve, field, frozen

from aiomasto._http import DEFAULT_TIMEOUT, Transport
from aiomasto._limiter import LimiterBackend
from aiomasto._version import __version__
from aiomasto.errors import ConfigurationError, LeaseLost, UsageError
from aiomasto.stores import MemoryTokenStore, TokenStore

from ._instances import Instances, Slot, current_slot
from ._model import (
    RELATIONS,
    AccountRecord,
    CrawlPlan,
    CrawlSink,
    InstanceRecord,
    ListResult,
    PageCommit,
    Relation,
    Unit,
    UnitKey,
)
from ._resolve import MAX_WEBFINGER_BYTES, Resolver, account_record
from ._targets import parse_target
from ._walk import ListWalk

__all__ = ["CrawlProgress", "CrawlSummary", "Crawler"]

log = logging.getLogger("aiomasto.crawl")

_LAST_ERRORS = 5
# Units claimed and not finished, at most this many per global slot: enough for walks that
# wait on busy instances to leave the slots to others, not so many that memory grows.
_CLAIMED_PER_SLOT = 16
# How often a crawler with nothing to walk looks again while other workers of a shared crawl
# hold units (their pages may add units, their leases may run out).
_IDLE_POLL = 0.5


@frozen(kw_only=True)
class CrawlProgress:
    """A snapshot of a running crawl, handed to ``on_progress``.

    ``units_done`` counts finished lists (earlier runs included), ``units_queued`` those
    still to do, ``units_in_flight`` those being walked now. ``accounts`` and ``edges`` count
    what was handed to the sink (earlier runs' edges included; a page fetched again after an
    interruption counts again, the sink stores it once). ``waiting`` maps each instance
    sitting out a rate limit or a backoff to when it expects to go on.
    """

    units_done: int
    units_queued: int
    units_in_flight: int
    accounts: int
    edges: int
    requests: int
    requests_per_second: float
    waiting: Mapping[str, datetime] = field(factory=dict)
    errors: int = 0
    last_errors: tuple[str, ...] = ()
    elapsed: float = 0.0


@frozen(kw_only=True)
class CrawlSummary:
    """What a :meth:`Crawler.run` did: ``print(summary)`` fits one screen.

    ``outcomes`` counts the lists finished in this run by outcome, ``units_done`` every
    finished list of the crawl. ``edges`` and ``accounts`` are what the sink holds, distinct,
    when it can count them (``stats()``: SQLite, memory), else what was handed to it.
    ``instances`` is what was learnt of each API host.
    """

    outcomes: Mapping[str, int]
    units_done: int
    units_pending: int
    accounts: int
    edges: int
    instances: Mapping[str, InstanceRecord]
    requests: int
    elapsed: float
    errors: int = 0
    last_errors: tuple[str, ...] = ()

    def __str__(self) -> str:
        rate = self.requests / self.elapsed if self.elapsed > 0 else 0.0
        lines = [
            f"lists finished: {self.units_done} ({self.units_pending} still to do)",
            f"edges: {self.edges}   accounts: {self.accounts}   "
            f"requests: {self.requests} ({rate:.1f}/s)   time: {self.elapsed:.1f} s",
        ]
        if self.outcomes:
            shown = ", ".join(f"{name} {count}" for name, count in sorted(self.outcomes.items()))
            lines.append(f"outcomes this run: {shown}")
        if self.instances:
            lines.append(f"instances ({len(self.instances)}):")
            for record in sorted(self.instances.values(), key=lambda r: r.api_base)[:12]:
                software = record.software or "unknown"
                if record.version:
                    software = f"{software} {record.version[:24]}"
                status = record.status if not record.detail else f"{record.status}: {record.detail}"
                lines.append(f"  {record.api_base}  {software}  [{record.auth}]  {status[:80]}")
            if len(self.instances) > 12:
                lines.append(f"  ... and {len(self.instances) - 12} more")
        if self.errors:
            lines.append(f"errors: {self.errors}")
            lines.extend(f"  {line[:100]}" for line in self.last_errors)
        return "\n".join(lines)


class Crawler:
    """Crawls followers and following of many accounts, each on its home instance.

    Give it a :class:`~aiomasto.crawl.CrawlSink` and seeds (handles, profile URLs,
    ``https://host#id`` or ``(instance, id)``); :meth:`run` resolves every account with
    WebFinger, detects each instance's software, walks each list page by page with that
    software's paging rules and commits every page to the sink in one transaction.

    - ``relations``: ``("followers", "following")`` or one of them. ``depth``: 0 walks the
      seeds only; n also walks the accounts found up to n hops away (breadth first).
      ``max_accounts`` caps the accounts whose lists are walked (seeds included),
      ``max_per_instance`` those per handle domain, ``max_per_list`` the accounts read from
      any one list (the list's outcome is then ``capped``). An account that moved has its
      new account walked too, at the same depth.
    - ``concurrency``: walks fetching at once (default 16); ``per_instance`` at once on one
      instance (default 4), and as many WebFinger requests at once to one handle domain. A
      walk waiting for its instance (rate limit, backoff) gives its global slot back.
    - Credentials: anonymous first; where an instance refuses, an app token (the app
      ``app_name`` registered once per instance and kept in ``store``, a
      :class:`~aiomasto.TokenStore`, in memory by default: give a file store to reuse it
      across runs); where it wants a user, ``user_tokens={"closed.example": "token"}`` (by
      handle domain or API host) or a user signed in with ``app_name`` in ``store``. User
      tokens are a last resort: a user's blocks and mutes are filtered out of lists.
    - ``http``: an ``aiohttp.ClientSession`` every instance's Session borrows (the crawler
      creates and closes one otherwise). ``limiter``: a shared rate-limit backend
      (:class:`~aiomasto.RedisLimiter`). ``allow_insecure_http``: plain ``http://`` (tests).
    - ``on_progress(CrawlProgress)`` is called every ``progress_interval`` seconds (by
      ``clock`` and ``sleep``, which tests replace).

    :meth:`run` with no seeds resumes the crawl stored in the sink. Expected failures (a
    dead instance, a hidden list, a hostile server) become outcomes; only sink failures and
    bugs raise. Cancelling :meth:`run` (Ctrl-C) lets a commit in progress finish, abandons
    the fetches, leaves the sink resumable and raises ``CancelledError``.

    Example::

        from aiomasto.crawl import Crawler, MemoryCrawlSink

        async with Crawler(MemoryCrawlSink(), relations=("followers",), depth=1) as crawler:
            summary = await crawler.run(["@alice@example.social",
                                         "https://other.example/@bob"])
        print(summary)
    """

    def __init__(
        self,
        sink: CrawlSink,
        *,
        relations: Iterable[Relation] = RELATIONS,
        depth: int = 0,
        max_accounts: int | None = None,
        max_per_instance: int | None = None,
        max_per_list: int | None = None,
        concurrency: int = 16,
        per_instance: int = 4,
        store: TokenStore | None = None,
        user_tokens: Mapping[str, str] | None = None,
        http: aiohttp.ClientSession | None = None,
        allow_insecure_http: bool = False,
        app_name: str = "aiomasto crawler",
        limiter: LimiterBackend | None = None,
        on_progress: Callable[[CrawlProgress], Awaitable[None] | None] | None = None,
        progress_interval: float = 1.0,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        chosen = tuple(dict.fromkeys(relations))
        if not chosen or any(r not in RELATIONS for r in chosen):
            raise ConfigurationError(f"relations must be among {RELATIONS}, not {relations!r}")
        if type(depth) is not int or depth < 0:
            raise ConfigurationError(f"depth must be a whole number >= 0, not {depth!r}")
        for name, value in (
            ("max_accounts", max_accounts),
            ("max_per_instance", max_per_instance),
            ("max_per_list", max_per_list),
        ):
            if value is not None and (type(value) is not int or value < 1):
                raise ConfigurationError(f"{name} must be a whole number >= 1 or None")
        for name, value in (("concurrency", concurrency), ("per_instance", per_instance)):
            if type(value) is not int or value < 1:
                raise ConfigurationError(f"{name} must be a whole number >= 1, not {value!r}")
        if not progress_interval > 0:
            raise ConfigurationError("progress_interval must be a positive number of seconds")
        if user_tokens is not None and not all(
            isinstance(k, str) and isinstance(v, str) and v for k, v in user_tokens.items()
        ):
            raise ConfigurationError("user_tokens maps domains to non-empty token strings")
        self._sink = sink
        self._relations: tuple[Relation, ...] = chosen
        self._depth = depth
        self._max_accounts = max_accounts
        self._max_per_instance = max_per_instance
        self._max_per_list = max_per_list
        self._concurrency = concurrency
        self._per_instance = per_instance
        self._store: TokenStore = store if store is not None else MemoryTokenStore()
        self._user_tokens = dict(user_tokens or {})
        self._http = http
        self._owns_http = http is None
        self._allow_insecure_http = allow_insecure_http
        self._app_name = app_name
        self._limiter = limiter
        self._on_progress = on_progress
        self._progress_interval = progress_interval
        self._clock = clock
        self._sleep = sleep
        self._entered = False
        self._running = False
        self._instances: Instances | None = None
        self._resolver: Resolver | None = None
        self._reset_counters()

    def __repr__(self) -> str:
        return f"<Crawler relations={self._relations} depth={self._depth}>"

    def _reset_counters(self) -> None:
        self._plan: CrawlPlan | None = None
        self._requests = 0
        self._accounts = 0
        self._edges = 0
        self._units_done = 0
        self._pending = 0
        self._outcomes: Counter[str] = Counter()
        self._errors = 0
        self._last_errors: deque[str] = deque(maxlen=_LAST_ERRORS)
        self._parked = 0
        self._in_flight = 0
        self._accounts_queued = 0
        self._per_domain: Counter[str] = Counter()
        self._reserved = 0
        self._reserved_domain: Counter[str] = Counter()
        self._known: set[str] = set()
        self._saved_profiles: set[str] = set()
        self._started = self._clock()
        self._wake = asyncio.Event()
        self._commits: set[asyncio.Future[Sequence[Unit]]] = set()

    async def __aenter__(self) -> Self:
        if self._http is None:
            self._http = aiohttp.ClientSession(timeout=DEFAULT_TIMEOUT)
        transport = Transport(
            http=self._http,
            timeout=aiohttp.ClientTimeout(total=30, connect=10, sock_read=15),
            user_agent=f"aiomasto/{__version__} crawler (+https://pypi.org/project/aiomasto/)",
            max_response_size=MAX_WEBFINGER_BYTES,
        )
        self._instances = Instances(
            http=self._http,
            store=self._store,
            user_tokens=self._user_tokens,
            app_name=self._app_name,
            per_instance=self._per_instance,
            allow_insecure_http=self._allow_insecure_http,
            limiter=self._limiter,
            clock=self._clock,
            sleep=self._sleep,
            save=self._save_instance,
            note_error=self._note_error,
            count_request=self._count_request,
            parked=self._park,
        )
        self._resolver = Resolver(
            self._instances,
            transport,
            allow_insecure_http=self._allow_insecure_http,
            count_request=self._count_request,
            sleep_released=self._instances.sleep_released,
            per_domain=self._per_instance,
        )
        self._entered = True
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._entered = False
        if self._resolver is not None:
            self._resolver.close()
        if self._instances is not None:
            await self._instances.close()
        if self._owns_http and self._http is not None:
            await self._http.close()
            self._http = None

    # -- running ------------------------------------------------------------------------------

    async def run(self, seeds: Iterable[str | tuple[str, str]] | None = None) -> CrawlSummary:
        """Crawl from ``seeds`` (a new crawl), or resume the sink's crawl (``seeds=None``).

        Opens the sink, walks every unit it hands out until none is left, closes the sink
        and returns what was done. Seeds that cannot be read raise
        :class:`~aiomasto.ConfigurationError` before anything is fetched; given to a sink
        that holds a different crawl, so does the sink.
        """
        if not self._entered or self._instances is None or self._resolver is None:
            raise UsageError("use the Crawler inside 'async with Crawler(...)'")
        if self._running:
            raise UsageError("this Crawler is already running")
        plan = None
        if seeds is not None:
            if isinstance(seeds, str):
                seeds = [seeds]
            targets = [
                parse_target(seed, allow_insecure_http=self._allow_insecure_http) for seed in seeds
            ]
            if not targets:
                raise ConfigurationError("no seeds: name at least one account to crawl")
            plan = CrawlPlan(
                seeds=tuple(dict.fromkeys(target.text for target in targets)),
                relations=self._relations,
                depth=self._depth,
                max_accounts=self._max_accounts,
                max_per_instance=self._max_per_instance,
                max_per_list=self._max_per_list,
            )
        self._running = True
        self._reset_counters()
        try:
            state = await self._sink.open(plan)
            try:
                self._plan = state.plan
                self._accounts_queued = state.accounts_queued
                self._per_domain.update(state.per_domain)
                self._units_done = state.units_done
                self._pending = state.pending
                self._edges = state.edges
                await self._crawl(state.accounts_queued == 0)
                await self._count_stored()
            finally:
                await self._settle_commits()
                await self._sink.close()
        finally:
            self._running = False
        return self._summary()

    async def _count_stored(self) -> None:
        """Take the distinct edges and accounts the sink holds, when it can count them: an
        edge seen from both of its ends, or a page fetched again, was handed over twice."""
        stats = getattr(self._sink, "stats", None)
        if stats is None:
            return
        stored = await stats()
        self._edges, self._accounts = int(stored.edges), int(stored.accounts)

    async def _crawl(self, fresh: bool) -> None:
        reporter = None
        if self._on_progress is not None:
            reporter = asyncio.create_task(self._report_progress())
        try:
            if fresh:
                await self._add_seeds()
            await self._schedule()
        finally:
            if reporter is not None:
                reporter.cancel()
                await asyncio.gather(reporter, return_exceptions=True)
        if self._on_progress is not None:
            await _call(self._on_progress(self.progress()))

    async def _add_seeds(self) -> None:
        assert self._plan is not None
        assert self._resolver is not None
        resolver = self._resolver
        gate = asyncio.Semaphore(self._concurrency)

        async def resolve(seed: str) -> Unit:
            slot = Slot(gate)
            current_slot.set(slot)
            await slot.acquire()
            try:
                resolution = await resolver.resolve(seed)
            finally:
                slot.release()
            return Unit(
                key=UnitKey(account=resolution.key, relation="followers"),
                target=seed,
                api_base=resolution.api_base,
                account_id=resolution.account_id,
            )

        resolved = await asyncio.gather(*(resolve(seed) for seed in self._plan.seeds))
        units: list[Unit] = []
        for first in resolved:
            key = first.key.account
            if key in self._known or not self._room_for(key):
                continue
            self._known.add(key)
            self._accounts_queued += 1
            self._per_domain[_domain(key)] += 1
            for relation in self._plan.relations:
                units.append(
                    Unit(
                        key=UnitKey(account=key, relation=relation),
                        target=first.target,
                        depth=0,
                        api_base=first.api_base,
                        account_id=first.account_id,
                    )
                )
        added = await self._sink.add_units(units)
        self._pending += len(added)

    async def _schedule(self) -> None:
        tasks: set[asyncio.Task[None]] = set()
        most = self._concurrency * _CLAIMED_PER_SLOT
        gate = asyncio.Semaphore(self._concurrency)
        failure: BaseException | None = None
        try:
            while True:
                # Cleared before the claim, not after: a walk that parks or commits new units
                # while the sink answers must still wake the wait below, or its slot stays
                # empty until some walk happens to finish.
                self._wake.clear()
                claimed: Sequence[Unit] = ()
                runnable = len(tasks) - self._parked
                if runnable < self._concurrency and len(tasks) < most:
                    want = min(most - len(tasks), self._concurrency - runnable + self._concurrency)
                    claimed = await self._sink.claim(want)
                    for unit in claimed:
                        task = asyncio.create_task(self._run_unit(unit, gate))
                        tasks.add(task)
                if not tasks and not claimed:
                    if not await self._others_working():
                        return
                    await self._sleep(_IDLE_POLL)
                    continue
                if claimed:
                    continue
                done = [task for task in tasks if task.done()]
                if not done:
                    await self._wake.wait()
                    done = [task for task in tasks if task.done()]
                for task in done:
                    tasks.discard(task)
                    if not task.cancelled() and task.exception() is not None:
                        failure = task.exception()
                if failure is not None:
                    raise failure
        finally:
            for task in tasks:
                task.cancel()
            if tasks:
                await asyncio.gather(*tasks, return_exceptions=True)

    async def _others_working(self) -> bool:
        """Whether workers sharing the sink hold (or left behind) units not finished yet."""
        outstanding = getattr(self._sink, "outstanding", None)
        return outstanding is not None and bool(await outstanding())

    async def _run_unit(self, unit: Unit, gate: asyncio.Semaphore) -> None:
        assert self._resolver is not None
        assert self._instances is not None
        assert self._plan is not None
        slot = Slot(gate)
        current_slot.set(slot)
        self._in_flight += 1
        try:
            await slot.acquire()
            resolution = await self._resolver.resolve(
                unit.target,
                api_base=unit.api_base,
                account_id=unit.account_id,
                key=unit.key.account,
            )
            if resolution.outcome is not None or resolution.api_base is None:
                detail = resolution.detail
                if resolution.outcome in ("unreachable", "failed"):
                    self._note_error(f"{unit.key}: {detail}")
                await self._commit(
                    PageCommit(
                        unit=unit.key,
                        cursor=None,
                        api_base=resolution.api_base,
                        result=ListResult(
                            outcome=resolution.outcome or "unresolved",
                            detail=detail,
                            finished_at=self._now(),
                        ),
                    )
                )
                return
            instance = self._instances.get(resolution.api_base)
            info = await instance.detect()
            profile = resolution.profile
            assert profile is not None
            if resolution.key not in self._saved_profiles:
                self._saved_profiles.add(resolution.key)
                record = account_record(
                    profile.account, domain=_domain(resolution.key), seen_on=instance.api_base
                )
                record = evolve(record, key=resolution.key, acct=resolution.acct or record.acct)
                await self._sink.save_accounts([record])
            walk = ListWalk(
                unit=unit,
                resolution=resolution,
                instance=instance,
                info=info,
                max_per_list=self._plan.max_per_list,
                commit=self._commit,
                discover=self._discover,
                sleep_released=self._instances.sleep_released,
                clock=self._clock,
            )
            async with self._instances.turn(instance):
                result = await walk.run()
            if result.outcome in ("unreachable", "failed", "unpageable"):
                self._note_error(f"{unit.key}: {result.outcome}: {result.detail}")
        except LeaseLost:
            # Another worker of a shared crawl has the list now, from its last stored page.
            log.info("%s: another worker took it over", unit.key)
            self._pending -= 1
        finally:
            self._in_flight -= 1
            slot.release()
            self._wake.set()

    # -- commits and expansion ----------------------------------------------------------------

    async def _commit(self, commit: PageCommit) -> Sequence[Unit]:
        """Store one page; a cancelled walk lets it finish (it is all or nothing anyway)."""
        future = asyncio.ensure_future(self._sink.commit_page(commit))
        self._commits.add(future)
        future.add_done_callback(self._commits.discard)
        proposed = {unit.key.account for unit in commit.units}
        try:
            added = await asyncio.shield(future)
        except BaseException:
            if future.done() and not future.cancelled() and future.exception() is None:
                self._settle(proposed, future.result(), commit)
            else:
                self._release(proposed)
            raise
        self._settle(proposed, added, commit)
        return added

    def _settle(self, proposed: set[str], added: Sequence[Unit], commit: PageCommit) -> None:
        self._release(proposed)
        new_accounts = {unit.key.account for unit in added}
        for key in new_accounts:
            self._accounts_queued += 1
            self._per_domain[_domain(key)] += 1
        self._pending += len(added)
        self._accounts += len(commit.accounts)
        self._edges += len(commit.edges)
        if commit.result is not None:
            self._outcomes[commit.result.outcome] += 1
            self._units_done += 1
            self._pending -= 1
        if added:
            self._wake.set()

    def _release(self, proposed: set[str]) -> None:
        for key in proposed:
            self._reserved -= 1
            self._reserved_domain[_domain(key)] -= 1

    def _room_for(self, key: str) -> bool:
        # The stored plan's caps: a resumed crawl keeps those it was started with.
        assert self._plan is not None
        max_accounts, max_per_instance = self._plan.max_accounts, self._plan.max_per_instance
        if max_accounts is not None and self._accounts_queued + self._reserved >= max_accounts:
            return False
        domain = _domain(key)
        return (
            max_per_instance is None
            or self._per_domain[domain] + self._reserved_domain[domain] < max_per_instance
        )

    def _discover(
        self,
        unit: Unit,
        records: Sequence[AccountRecord],
        local: Callable[[], dict[str, str]],
        moved_to: str | None,
        api_base: str,
    ) -> list[Unit]:
        """The units a page adds: accounts one hop further, while the depth allows."""
        assert self._plan is not None
        found: list[tuple[str, int, str | None]] = []
        if moved_to is not None:
            found.append((moved_to, unit.depth, None))
        if unit.depth < self._plan.depth:
            ids = local()
            found.extend((record.key, unit.depth + 1, ids.get(record.key)) for record in records)
        units: list[Unit] = []
        for key, depth, account_id in found:
            if key in self._known or not self._room_for(key):
                continue
            self._known.add(key)
            self._reserved += 1
            self._reserved_domain[_domain(key)] += 1
            units.extend(
                Unit(
                    key=UnitKey(account=key, relation=relation),
                    target=f"@{key}",
                    depth=depth,
                    api_base=api_base if account_id else None,
                    account_id=account_id,
                )
                for relation in self._plan.relations
            )
        return units

    async def _settle_commits(self) -> None:
        if self._commits:
            await asyncio.gather(*list(self._commits), return_exceptions=True)

    # -- progress -----------------------------------------------------------------------------

    def progress(self) -> CrawlProgress:
        """A snapshot of the crawl now (also handed to ``on_progress``)."""
        now = self._clock()
        elapsed = max(0.0, now - self._started)
        waiting: dict[str, datetime] = {}
        if self._instances is not None:
            for instance in self._instances.by_base.values():
                until = instance.waiting_until
                if until is not None and until > now:
                    waiting[instance.host] = datetime.fromtimestamp(until, UTC)
        return CrawlProgress(
            units_done=self._units_done,
            units_queued=max(0, self._pending - self._in_flight),
            units_in_flight=self._in_flight,
            accounts=self._accounts,
            edges=self._edges,
            requests=self._requests,
            requests_per_second=self._requests / elapsed if elapsed > 0 else 0.0,
            waiting=waiting,
            errors=self._errors,
            last_errors=tuple(self._last_errors),
            elapsed=elapsed,
        )

    async def _report_progress(self) -> None:
        assert self._on_progress is not None
        while True:
            await self._sleep(self._progress_interval)
            await _call(self._on_progress(self.progress()))

    def _summary(self) -> CrawlSummary:
        instances = {}
        if self._instances is not None:
            instances = {
                base: instance.record() for base, instance in self._instances.by_base.items()
            }
        return CrawlSummary(
            outcomes=dict(self._outcomes),
            units_done=self._units_done,
            units_pending=max(0, self._pending),
            accounts=self._accounts,
            edges=self._edges,
            instances=instances,
            requests=self._requests,
            elapsed=max(0.0, self._clock() - self._started),
            errors=self._errors,
            last_errors=tuple(self._last_errors),
        )

    # -- hooks for the instances --------------------------------------------------------------

    async def _save_instance(self, record: InstanceRecord) -> None:
        await self._sink.save_instance(record)

    def _note_error(self, line: str) -> None:
        self._errors += 1
        self._last_errors.append(line)
        log.info("%s", line)

    def _count_request(self, n: int) -> None:
        self._requests += n

    def _park(self, n: int) -> None:
        self._parked += n
        if n > 0:
            self._wake.set()

    def _now(self) -> datetime:
        return datetime.fromtimestamp(self._clock(), UTC)


def _domain(key: str) -> str:
    return key.rpartition("@")[2]


async def _call(result: Awaitable[None] | None) -> None:
    if result is not None:
        await result
