"""The crawl shared by worker processes on one real PostgreSQL, with workers killed mid-page."""

from __future__ import annotations

import asyncio
import itertools
import json
import random
import signal
import sys
import time
import uuid
from collections import defaultdict
from pathlib import Path

import pytest
from attrs import frozen

from aiomasto.crawl import CrawlPlan, PostgresCrawlSink, Unit, UnitKey
from aiomasto.testing import FakeFediverse
from aiomasto.testing._http import RecordedRequest

PROJECT_ROOT = Path(__file__).resolve().parents[1]
LEASE = 4.0
HEADER = "X-Crawl-Worker"

# One worker: the library's Crawler on the shared sink, every request marked with its name.
WORKER = """
import asyncio, json, sys
import aiohttp
from aiomasto._http import StaticResolver
from aiomasto.crawl import Crawler, PostgresCrawlSink

dsn, schema, name, lease, resolve = json.loads(sys.argv[1])

async def main():
    sink = PostgresCrawlSink(dsn, schema=schema, lease=lease, worker=name)
    connector = aiohttp.TCPConnector(resolver=StaticResolver.from_specs(resolve))
    marked = {"X-Crawl-Worker": name}
    async with aiohttp.ClientSession(connector=connector, headers=marked) as http:
        async with Crawler(sink, http=http, allow_insecure_http=True, concurrency=2,
                           per_instance=2) as crawler:
            summary = await crawler.run(None)
    print(json.dumps({"edges": summary.edges, "done": summary.units_done}))

asyncio.run(main())
"""


class Stamped(list[RecordedRequest]):
    """A fake server's request log that also notes when each request arrived."""

    def __init__(self) -> None:
        super().__init__()
        self.arrived: list[float] = []

    def append(self, request: RecordedRequest) -> None:
        self.arrived.append(time.monotonic())
        super().append(request)


@frozen(kw_only=True)
class Fetch:
    worker: str
    at: float


def build() -> FakeFediverse:
    fedi = FakeFediverse()
    for domain in ("alpha.example", "beta.example", "gamma.example"):
        fedi.add_instance(domain)
    handles = fedi.populate(seed=12, accounts_per_instance=30, follows_per_account=6)
    # A few lists long enough to be walked over several pages (80 a page), so a kill lands
    # between two pages of one list and another worker resumes it from its cursor.
    for star in handles[:3]:
        for fan in handles[3:]:
            fedi.follow(fan, star)
    for domain in ("alpha.example", "beta.example", "gamma.example"):
        # Every list request waits a little: pages stay in flight long enough to be killed in.
        fedi.instance(domain).chaos(seed=1, slow=1.0, slow_seconds=0.1)
    return fedi


def seeds(fedi: FakeFediverse) -> list[Unit]:
    """Every account's two lists, resolved (as ``aiomasto crawl`` stores its seeds)."""
    return [
        Unit(
            key=UnitKey(account=handle, relation=relation),
            target=f"@{handle}",
            api_base=fedi.url(handle.partition("@")[2]),
            account_id=fedi.account_id(handle),
        )
        for handle in fedi.handles()
        for relation in ("followers", "following")
    ]


async def start(argument: list[object]) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        WORKER,
        json.dumps(argument),
        cwd=PROJECT_ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )


@pytest.mark.timeout(120)  # 4 worker processes start 14 times; see the figure in the report
async def test_workers_killed_at_random_still_store_the_ground_truth_once(
    postgres_url: str,
) -> None:
    fedi = build()
    schema = f"dist_{uuid.uuid4().hex[:10]}"
    handles = fedi.handles()
    plan = CrawlPlan(seeds=tuple(f"@{h}" for h in handles))
    creator = PostgresCrawlSink(postgres_url, schema=schema)
    await creator.open(plan)
    await creator.add_units(seeds(fedi))
    await creator.close()
    rng = random.Random(20260520)
    logs: dict[str, Stamped] = {}
    for domain in fedi.domains:
        log = Stamped()
        fedi.instance(domain).requests = log
        logs[domain] = log
    killed_at: dict[str, float] = {}
    async with fedi.run():
        resolve = [f"{host}={ip}:{port}" for host, (ip, port) in fedi.resolve_map().items()]
        names = iter(f"worker{n}" for n in range(100))
        running: dict[str, asyncio.subprocess.Process] = {}
        for _ in range(4):
            name = next(names)
            running[name] = await start([postgres_url, schema, name, LEASE, resolve])
        kills = 0
        while kills < 10:
            await asyncio.sleep(rng.uniform(0.2, 0.6))
            alive = [name for name, process in running.items() if process.returncode is None]
            assert alive, "the crawl ended before ten workers were killed"
            # A worker busy walking lists (the fakes have seen it), so kills land mid-walk.
            walking = {
                request.headers.get(HEADER)
                for log in logs.values()
                for request in list(log)
                if request.path.endswith(("/followers", "/following"))
            }
            busy = [name for name in alive if name in walking]
            if not busy:
                continue
            victim = rng.choice(busy)
            running[victim].send_signal(signal.SIGKILL)
            killed_at[victim] = time.monotonic()
            kills += 1
            name = next(names)
            running[name] = await start([postgres_url, schema, name, LEASE, resolve])
        outputs = {}
        for name, process in running.items():
            out, err = await asyncio.wait_for(process.communicate(), timeout=90)
            if name in killed_at:
                assert process.returncode == -signal.SIGKILL
            else:
                assert process.returncode == 0, err.decode()[-3000:]
                outputs[name] = json.loads(out.decode().strip().splitlines()[-1])

    reader = PostgresCrawlSink(postgres_url, schema=schema)
    edges = [(edge.follower, edge.followed) async for edge in reader.edges()]
    outcomes = {key: result async for key, result in reader.outcomes()}
    stats = await reader.stats()
    assert len(edges) == len(set(edges))  # each edge once
    assert set(edges) == fedi.edges()
    assert stats.pending == 0
    assert len(outcomes) == 2 * len(handles)
    assert {result.outcome for result in outcomes.values()} == {"complete"}
    for key, result in outcomes.items():
        truth = fedi.followers if key.relation == "followers" else fedi.following
        assert result.found == len(truth(key.account)), key
    assert len(outputs) == 4  # the four last workers saw the crawl to its end

    # No list page was fetched by two workers at once: whenever a second worker fetched a
    # page URL, the worker that fetched it before was dead by then.
    fetches: dict[str, list[Fetch]] = defaultdict(list)
    for domain, log in logs.items():
        for request, at in zip(log, log.arrived, strict=True):
            if request.path.endswith(("/followers", "/following")):
                query = "&".join(f"{k}={v}" for k, v in request.query)
                url = f"{domain}{request.path}?{query}"
                fetches[url].append(Fetch(worker=request.headers[HEADER], at=at))
    assert fetches
    handed_over = 0
    for url, seen in fetches.items():
        for earlier, later in itertools.pairwise(seen):
            if earlier.worker != later.worker:
                handed_over += 1
                assert earlier.worker in killed_at, (url, seen)
                assert killed_at[earlier.worker] <= later.at, (url, seen)
    assert handed_over >= 1  # some killed worker's page was taken over by another
