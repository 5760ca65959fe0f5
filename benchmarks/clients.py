"""The clients under test, each run in a process of its own, pinned to the client CPU.

``python -m benchmarks.clients walk SPEC`` walks followers on the benchmark server with one
client and prints one JSON line, a :class:`Result`. ``SPEC`` is a JSON :class:`Plan`: which
client, the server's origins, the walks (origin, account, follower count) and how many run at
once. The clients:

- ``aiomasto``: ``Session(url, app=App(name="bench")).followers(id, limit=80)``, iterated for
  typed ``Account`` entities; one Session per origin (sharing one aiohttp pool when there are
  several);
- ``raw-json``: the practical limit, a hand-written aiohttp loop that follows the Link header's
  next URL and ``json.loads`` each page;
- ``raw-orjson``: the same loop with ``orjson.loads``, the physical limit;
- ``mastodon.py``: Mastodon.py's ``account_followers(id, limit=80)`` then ``fetch_next`` until
  it returns ``None`` (synchronous: one walk at a time).

Every client gets its token from the server first, then fetches one page of 1 per origin (the
server builds its templates, the client its decoders and connections); only then does the clock
start. Every walk is checked: each account must be the one the server sends at that position
(id and username, newest follow first), and the walk must end after exactly as many, so a
client that skips, repeats or reorders anything fails and gets no number.

``decode`` times decoding the bytes of a few pages; ``pace`` crawls under
``rate_limit="pace"`` for whole rate windows (see :func:`pace`).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import importlib
import json
import re
import resource
import sys
import time
import urllib.parse
import urllib.request
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from contextlib import AsyncExitStack
from dataclasses import asdict, dataclass
from typing import Any

import aiohttp

from aiomasto import Account, App, Session
from aiomasto._converter import decode_json_list, decode_list
from benchmarks.bench_memory import process_cpu_seconds
from benchmarks.server import pin_to_cpu, related_id, related_username

__all__ = [
    "CLIENTS",
    "PAGE_SIZE",
    "Plan",
    "Result",
    "WalkError",
    "decode",
    "main",
    "pace",
    "run_plan",
]

PAGE_SIZE = 80
CLIENTS = ("aiomasto", "raw-json", "raw-orjson", "raw-typed", "mastodon.py")
_NEXT = re.compile(r'<([^>]+)>;\s*rel="next"')
_OOB = "urn:ietf:wg:oauth:2.0:oob"


class WalkError(Exception):
    """A client did not get exactly the followers the server sends, in order."""


@dataclass(frozen=True)
class Plan:
    """What a client process does: ``jobs`` are (origin index, account, follower count)."""

    client: str
    origins: list[str]
    jobs: list[tuple[int, int, int]]
    concurrency: int
    server_pid: int


@dataclass(frozen=True)
class Result:
    """What one client process measured over its timed walks."""

    client: str
    accounts: int
    pages: int
    seconds: float
    cpu_seconds: float
    """``time.process_time()`` of the client process over the walks."""
    server_cpu_seconds: float
    peak_rss_bytes: int
    gc_seconds: float = 0.0
    """CPU time spent in the cyclic garbage collector during the walks (``gc.callbacks``)."""
    gc_collections: tuple[int, int, int] = (0, 0, 0)
    """Collections of each generation during the walks."""

    @property
    def gc_us(self) -> float:
        """Client CPU µs per account spent in the garbage collector."""
        return self.gc_seconds / self.accounts * 1e6

    @property
    def rate(self) -> float:
        """Accounts per second."""
        return self.accounts / self.seconds

    @property
    def cpu_us(self) -> float:
        """Client CPU µs per account."""
        return self.cpu_seconds / self.accounts * 1e6


class Expected:
    """The followers a walk must yield: ``count`` of ``account``'s, newest follow first.

    It compares each one with the one expected at its position instead of collecting ids, so
    the check costs the same (about 1 µs) for every client and keeps no memory; the expected
    ids are all distinct, so passing it also proves that nothing came twice.
    """

    def __init__(self, account: int, count: int) -> None:
        self.account = account
        self.count = count
        self.seen = 0

    def check(self, account_id: str, username: str) -> None:
        k = self.count - 1 - self.seen
        if k < 0:
            raise WalkError(f"account {self.account}: more than {self.count:,} followers")
        if account_id != str(related_id("followers", self.account, k)) or (
            username != related_username(k)
        ):
            raise WalkError(
                f"account {self.account}: follower #{self.seen + 1} is {account_id} "
                f"({username}), expected {related_id('followers', self.account, k)} "
                f"({related_username(k)})"
            )
        self.seen += 1

    def finish(self) -> None:
        if self.seen != self.count:
            raise WalkError(
                f"account {self.account}: the walk ended after {self.seen:,} followers, "
                f"expected {self.count:,}"
            )


class Stopwatch:
    """Wall time, this process's CPU time and the server's CPU time between start and stop."""

    def __init__(self, server_pid: int) -> None:
        self._server_pid = server_pid
        self._marks: list[tuple[float, float, float]] = []
        self._gc_seconds = 0.0
        self._gc_collections = [0, 0, 0]
        self._gc_started: float | None = None

    def start(self) -> None:
        gc.callbacks.append(self._on_gc)
        self._mark()

    def stop(self) -> None:
        self._mark()
        gc.callbacks.remove(self._on_gc)

    def _on_gc(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._gc_started = time.process_time()
        elif self._gc_started is not None:
            self._gc_seconds += time.process_time() - self._gc_started
            self._gc_collections[info["generation"]] += 1
            self._gc_started = None

    def _mark(self) -> None:
        server = process_cpu_seconds(self._server_pid)
        self._marks.append((time.perf_counter(), time.process_time(), server))

    def result(self, client: str, accounts: int, pages: int) -> Result:
        (wall0, cpu0, server0), (wall1, cpu1, server1) = self._marks
        return Result(
            client=client,
            accounts=accounts,
            pages=pages,
            seconds=wall1 - wall0,
            cpu_seconds=cpu1 - cpu0,
            server_cpu_seconds=server1 - server0,
            peak_rss_bytes=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,  # KiB
            gc_seconds=self._gc_seconds,
            gc_collections=(
                self._gc_collections[0],
                self._gc_collections[1],
                self._gc_collections[2],
            ),
        )


def obtain_token(origin: str) -> str:
    """Register an app and get a client-credentials token, as any client does first."""

    def post(path: str, form: dict[str, str]) -> dict[str, Any]:
        data = urllib.parse.urlencode(form).encode()
        request = urllib.request.Request(origin + path, data=data, method="POST")  # noqa: S310
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 - the loopback server
            document: dict[str, Any] = json.loads(response.read())
            return document

    app = post("/api/v1/apps", {"client_name": "bench", "redirect_uris": _OOB, "scopes": "read"})
    token = post(
        "/oauth/token",
        {
            "grant_type": "client_credentials",
            "client_id": app["client_id"],
            "client_secret": app["client_secret"],
            "scope": "read",
        },
    )
    return str(token["access_token"])


def _first_job_per_origin(jobs: Sequence[tuple[int, int, int]]) -> dict[int, int]:
    """An account to warm up with on each origin: origin index -> account."""
    first: dict[int, int] = {}
    for origin, account, _ in jobs:
        first.setdefault(origin, account)
    return first


async def _run_jobs(
    jobs: Sequence[tuple[int, int, int]],
    concurrency: int,
    walk: Callable[[int, int, int], Awaitable[int]],
) -> int:
    """Run the walks, ``concurrency`` at a time, each task taking the next one as it is done."""
    queue = deque(jobs)

    async def worker() -> int:
        pages = 0
        while queue:
            pages += await walk(*queue.popleft())
        return pages

    counts = await asyncio.gather(*(worker() for _ in range(min(concurrency, len(jobs)))))
    return sum(counts)


# -- the clients ---------------------------------------------------------------------------------


async def _aiomasto(plan: Plan, watch: Stopwatch) -> int:
    async with AsyncExitStack() as stack:
        # One instance: the Session's own pool. Several: one pool shared by their Sessions,
        # as a multi-instance crawler would.
        http = None
        if len(plan.origins) > 1:
            http = await stack.enter_async_context(aiohttp.ClientSession())
        sessions = [
            await stack.enter_async_context(Session(origin, app=App(name="bench"), http=http))
            for origin in plan.origins
        ]
        for origin, account in _first_job_per_origin(plan.jobs).items():
            await sessions[origin].followers_page(str(account), limit=1)

        async def walk(origin: int, account: int, count: int) -> int:
            expected = Expected(account, count)
            pager = sessions[origin].followers(str(account), limit=PAGE_SIZE)
            async for follower in pager:
                expected.check(follower.id, follower.username)
            expected.finish()
            return pager.pages_fetched

        watch.start()
        pages = await _run_jobs(plan.jobs, plan.concurrency, walk)
        watch.stop()
    return pages


async def _raw(
    plan: Plan,
    watch: Stopwatch,
    tokens: list[str],
    loads: Callable[[bytes], Any],
    *,
    typed: bool = False,
) -> int:
    headers = [{"Authorization": f"Bearer {token}"} for token in tokens]
    async with aiohttp.ClientSession() as http:

        async def get(url: str, origin: int) -> tuple[bytes, str]:
            async with http.get(url, headers=headers[origin]) as response:
                if response.status != 200:
                    raise WalkError(f"GET {url}: {response.status}")
                return await response.read(), response.headers.get("Link", "")

        def first_page(origin: int, account: int, limit: int) -> str:
            return f"{plan.origins[origin]}/api/v1/accounts/{account}/followers?limit={limit}"

        for origin, account in _first_job_per_origin(plan.jobs).items():
            await get(first_page(origin, account, 1), origin)

        async def walk(origin: int, account: int, count: int) -> int:
            expected = Expected(account, count)
            url: str | None = first_page(origin, account, PAGE_SIZE)
            pages = 0
            while url is not None:
                body, link = await get(url, origin)
                pages += 1
                followers = loads(body)
                if typed:
                    for follower in followers:
                        expected.check(follower.id, follower.username)
                else:
                    for follower in followers:
                        expected.check(follower["id"], follower["username"])
                found = _NEXT.search(link) if followers else None
                url = found.group(1) if found else None
            expected.finish()
            return pages

        watch.start()
        pages = await _run_jobs(plan.jobs, plan.concurrency, walk)
        watch.stop()
    return pages


def _mastodon_py(plan: Plan, watch: Stopwatch) -> int:
    if plan.concurrency != 1 or len(plan.origins) != 1:
        raise ValueError("Mastodon.py is synchronous: one origin, one walk at a time")
    mastodon = importlib.import_module("mastodon")
    origin = plan.origins[0]
    client = mastodon.Mastodon(access_token=obtain_token(origin), api_base_url=origin)
    client.account_followers(str(plan.jobs[0][1]), limit=1)
    watch.start()
    pages = 0
    for _, account, count in plan.jobs:
        expected = Expected(account, count)
        page = client.account_followers(str(account), limit=PAGE_SIZE)
        while page:
            pages += 1
            for follower in page:
                expected.check(str(follower.id), follower.username)
            page = client.fetch_next(page)
        expected.finish()
    watch.stop()
    return pages


def _typed_loads(body: bytes) -> list[Account]:
    return decode_json_list(Account, body)


def _orjson_loads() -> Callable[[bytes], Any]:
    # Imported only where it is used: benchmarks.stdlib_json runs aiomasto without it.
    import orjson

    return orjson.loads


def run_plan(plan: Plan) -> Result:
    """Run the plan's walks with its client, in this process, and measure them."""
    watch = Stopwatch(plan.server_pid)
    if plan.client == "aiomasto":
        pages = asyncio.run(_aiomasto(plan, watch))
    elif plan.client in ("raw-json", "raw-orjson"):
        loads = json.loads if plan.client == "raw-json" else _orjson_loads()
        tokens = [obtain_token(origin) for origin in plan.origins]
        pages = asyncio.run(_raw(plan, watch, tokens, loads))
    elif plan.client == "raw-typed":
        # The raw loop decoding each page as aiomasto does (msgspec or orjson with the
        # speedups, json.loads without): the walk's overhead outside decoding is the walk's
        # CPU over this loop's, measured in the same round.
        tokens = [obtain_token(origin) for origin in plan.origins]
        pages = asyncio.run(_raw(plan, watch, tokens, _typed_loads, typed=True))
    elif plan.client == "mastodon.py":
        pages = _mastodon_py(plan, watch)
    else:
        raise ValueError(f"unknown client {plan.client!r}; known: {', '.join(CLIENTS)}")
    return watch.result(plan.client, sum(count for _, _, count in plan.jobs), pages)


# -- decoding alone ------------------------------------------------------------------------------


def _fetch_pages(origin: str, account: int, pages: int) -> list[bytes]:
    url = f"{origin}/api/v1/accounts/{account}/followers?limit={PAGE_SIZE}"
    bodies = []
    for _ in range(pages):
        with urllib.request.urlopen(url, timeout=10) as response:  # noqa: S310 - the loopback server
            bodies.append(response.read())
            found = _NEXT.search(response.headers.get("Link", ""))
        if found is None:
            break
        url = found.group(1)
    return bodies


def decode(
    origin: str, account: int, count: int, pages: int, rounds: int, repeats: int
) -> dict[str, Any]:
    """Time decoding the bytes of the first ``pages`` pages of ``account``'s ``count`` followers.

    Candidates: aiomasto's ``decode_json_list(Account, body)``, ``json.loads`` and
    ``orjson.loads`` on the same bytes, aiomasto's structuring alone (``decode_list`` on
    the parsed lists), and what aiomasto does without orjson (``json.loads``, then
    ``decode_list``). Each round times every candidate (best of ``repeats`` passes over all
    pages, in CPU time), in an order rotated from round to round. Returns the CPU seconds per
    account of each candidate in each round.
    """
    bodies = _fetch_pages(origin, account, pages)
    expected = Expected(account, count)
    for body in bodies:
        for follower in decode_json_list(Account, body):
            expected.check(follower.id, follower.username)
    accounts = expected.seen
    parsed = [json.loads(body) for body in bodies]
    orjson_loads = _orjson_loads()
    candidates: dict[str, Callable[[], object]] = {
        "decode_json_list": lambda: [decode_json_list(Account, body) for body in bodies],
        "stdlib": lambda: [decode_list(Account, json.loads(body)) for body in bodies],
        "structuring": lambda: [decode_list(Account, items) for items in parsed],
        "json.loads": lambda: [json.loads(body) for body in bodies],
        "orjson.loads": lambda: [orjson_loads(body) for body in bodies],
    }
    names = list(candidates)
    per_round: dict[str, list[float]] = {name: [] for name in names}
    for index in range(rounds):
        shift = index % len(names)
        for name in names[shift:] + names[:shift]:
            best = float("inf")
            for _ in range(repeats):
                started = time.process_time()
                candidates[name]()
                best = min(best, time.process_time() - started)
            per_round[name].append(best / accounts)
    return {
        "accounts": accounts,
        "pages": len(bodies),
        "bytes": sum(len(body) for body in bodies),
        "seconds_per_account": per_round,
    }


# -- rate-limit pacing ---------------------------------------------------------------------------


async def pace(origin: str, account: int, count: int, period: int, windows: int) -> dict[str, Any]:
    """Crawl under ``rate_limit="pace"`` for ``windows`` whole rate windows of ``period`` s.

    The Session gets its token first, then the crawl starts just after a window begins (the
    server's windows are aligned on the epoch, like Mastodon's), so the first window includes
    learning the limit. It stops at the first account it is handed once the last window is
    over, so every request in those windows is the crawl's. Returns the windows (their index
    on the server) and what was crawled; the server tells how many requests each served.
    """
    async with Session(origin, app=App(name="bench"), rate_limit="pace") as masto:
        await masto.authenticate()
        first = int(time.time() // period) + 1
        await asyncio.sleep(first * period + 0.01 - time.time())
        stop_at = (first + windows) * period
        expected = Expected(account, count)
        pager = masto.followers(str(account), limit=PAGE_SIZE)
        cpu_started = time.process_time()
        async for follower in pager:
            expected.check(follower.id, follower.username)
            if time.time() >= stop_at:
                break
        cpu_seconds = time.process_time() - cpu_started
    return {
        "windows": list(range(first, first + windows)),
        "accounts": expected.seen,
        "pages": pager.pages_fetched,
        "cpu_seconds": cpu_seconds,
    }


# -- the command line ----------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    """Run one client in this process (pinned to the client CPU) and print its JSON result."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.clients", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("walk").add_argument("plan", help="a Plan as JSON")
    decoding = commands.add_parser("decode")
    pacing = commands.add_parser("pace")
    for sub in (decoding, pacing):
        sub.add_argument("url")
        sub.add_argument("--account", type=int, default=1)
        sub.add_argument("--count", type=int, required=True, help="the account's followers")
    decoding.add_argument("--pages", type=int, default=12)
    decoding.add_argument("--rounds", type=int, default=11)
    decoding.add_argument("--repeats", type=int, default=15)
    pacing.add_argument("--period", type=int, required=True, help="the rate window, seconds")
    pacing.add_argument("--windows", type=int, default=6)
    options = parser.parse_args(argv)
    pin_to_cpu(1)
    output: dict[str, Any]
    try:
        if options.command == "walk":
            data = json.loads(options.plan)
            data["jobs"] = [tuple(job) for job in data["jobs"]]
            output = asdict(run_plan(Plan(**data)))
        elif options.command == "decode":
            output = decode(
                options.url,
                options.account,
                options.count,
                options.pages,
                options.rounds,
                options.repeats,
            )
        else:
            output = asyncio.run(
                pace(options.url, options.account, options.count, options.period, options.windows)
            )
    except WalkError as exc:
        print(f"walk failed: {exc}", file=sys.stderr)
        return 3
    print(json.dumps(output))
    return 0


if __name__ == "__main__":
    sys.exit(main())
