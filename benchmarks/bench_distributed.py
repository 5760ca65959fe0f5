"""The distributed crawl: 1, 2 and 4 worker processes on one PostgreSQL, and the shared limiters.

Throughput: a fake fediverse (its own process, no rate limits) of ``INSTANCES`` instances is
crawled in full (every account's followers and following) by N worker processes sharing one
PostgreSQL crawl; each run is checked against the ground truth. Each worker walks 2 lists at
once (the crawler stalls at higher concurrency when it has many units to resolve, an engine bug
reported separately). Reported: edges stored per second from the first worker's start to the
last one's end, the scaling factor per worker (throughput with N workers / N x with one) and
the workers' CPU time per edge. The machine's cores bound the scaling: with 2 cores shared by
the fake servers, PostgreSQL and the workers, 4 workers cannot run 4 times as fast.

Limiter overhead: one Session fetching an account ``REQUESTS`` times in a row from a fake
Mastodon that sends rate-limit headers, with the in-process limiter, ``RedisLimiter`` and
``PostgresLimiter``; the overhead is the extra time per request.

Usage: ``python -m benchmarks.bench_distributed [--quick]`` (``make bench-distributed``). It
starts a throwaway PostgreSQL and redis-server from Debian's packages (``tests/servers.py``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from servers import postgres_server, redis_server  # noqa: E402

from aiomasto import Session  # noqa: E402
from aiomasto.crawl import CrawlPlan, PostgresCrawlSink, Unit, UnitKey  # noqa: E402
from aiomasto.ratelimit_postgres import PostgresLimiter  # noqa: E402
from aiomasto.ratelimit_redis import RedisLimiter  # noqa: E402
from aiomasto.testing import FakeMastodon, Limits  # noqa: E402

INSTANCES = 4
WORKERS = (1, 2, 4)
REQUESTS = 1000

# The fake fediverse in a process of its own: it prints its hosts and ground truth, serves
# until stdin closes.
FEDIVERSE = """
import json, sys
from aiomasto.testing import FakeFediverse, Limits
instances, accounts = int(sys.argv[1]), int(sys.argv[2])
fedi = FakeFediverse()
# No rate limit worth the name: the crawl's own speed is measured, not a server's window.
huge = (10**9, 300.0)
unlimited = Limits(per_user=huge, per_token=huge, per_ip=huge, paging=None)
for n in range(instances):
    fedi.add_instance(f"i{n}.example", limits=unlimited)
fedi.populate(seed=5, accounts_per_instance=accounts, follows_per_account=20)
with fedi.run_in_thread():
    units = [[h, fedi.url(h.partition("@")[2]), fedi.account_id(h)] for h in fedi.handles()]
    hosts = [f"{h}={ip}:{port}" for h, (ip, port) in fedi.resolve_map().items()]
    print(json.dumps({"hosts": hosts, "units": units, "edges": len(fedi.edges())}), flush=True)
    sys.stdin.read()
"""

WORKER = """
import asyncio, json, resource, sys, time
import aiohttp
from aiomasto._http import StaticResolver
from aiomasto.crawl import Crawler, PostgresCrawlSink

dsn, schema, hosts = json.loads(sys.argv[1])

def cpu():
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime

async def main():
    began, spent = time.time(), cpu()
    sink = PostgresCrawlSink(dsn, schema=schema)
    connector = aiohttp.TCPConnector(resolver=StaticResolver.from_specs(hosts), limit=0)
    async with aiohttp.ClientSession(connector=connector) as http:
        async with Crawler(sink, http=http, allow_insecure_http=True, concurrency=2,
                           per_instance=2) as crawler:
            await crawler.run(None)
    print(json.dumps({"cpu": cpu() - spent, "began": began, "ended": time.time()}))

asyncio.run(main())
"""


async def crawl_once(dsn: str, fediverse: dict[str, Any], workers: int) -> dict[str, float]:
    schema = f"bench_{uuid.uuid4().hex[:10]}"
    creator = PostgresCrawlSink(dsn, schema=schema)
    handles = [handle for handle, _, _ in fediverse["units"]]
    await creator.open(CrawlPlan(seeds=tuple(f"@{h}" for h in handles)))
    await creator.add_units(
        [
            Unit(
                key=UnitKey(account=handle, relation=relation),
                target=f"@{handle}",
                api_base=base,
                account_id=account_id,
            )
            for handle, base, account_id in fediverse["units"]
            for relation in ("followers", "following")
        ]
    )
    await creator.close()
    argument = json.dumps([dsn, schema, fediverse["hosts"]])
    processes = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            WORKER,
            argument,
            cwd=ROOT,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        for _ in range(workers)
    ]
    # From the first worker's start to the last one's end, the imports of Python left out.
    cpu, began, ended = 0.0, float("inf"), 0.0
    for process in processes:
        out, err = await process.communicate()
        if process.returncode != 0:
            raise RuntimeError(f"a worker failed: {err.decode()[-2000:]}")
        figures = json.loads(out.decode().strip().splitlines()[-1])
        cpu += figures["cpu"]
        began, ended = min(began, figures["began"]), max(ended, figures["ended"])
    elapsed = ended - began
    stats = await creator.stats()
    if stats.pending or stats.edges != fediverse["edges"]:
        raise RuntimeError(f"the crawl is wrong: {stats}")
    return {"edges": stats.edges, "seconds": elapsed, "cpu": cpu}


async def throughput(dsn: str, quick: bool) -> list[dict[str, float]]:
    accounts = 40 if quick else 150
    rounds = 1 if quick else 3
    server = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        FEDIVERSE,
        str(INSTANCES),
        str(accounts),
        cwd=ROOT,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
    )
    try:
        assert server.stdout is not None
        fediverse = json.loads(await server.stdout.readline())
        rows = []
        for workers in WORKERS:
            runs = [await crawl_once(dsn, fediverse, workers) for _ in range(rounds)]
            best = min(runs, key=lambda run: run["seconds"])
            rows.append(
                {
                    "workers": workers,
                    "edges": best["edges"],
                    "seconds": statistics.median(run["seconds"] for run in runs),
                    "cpu_per_edge_us": 1e6
                    * statistics.median(run["cpu"] / run["edges"] for run in runs),
                }
            )
        return rows
    finally:
        assert server.stdin is not None
        server.stdin.close()
        await asyncio.wait_for(server.wait(), timeout=30)


async def limiter_overhead(dsn: str, redis: str, quick: bool) -> dict[str, float]:
    requests = 200 if quick else REQUESTS
    huge = (10**9, 300.0)
    server = FakeMastodon(limits=Limits(per_user=huge, per_token=huge, per_ip=huge, paging=None))
    alice = server.add_account("alice")
    token = server.issue_user_token(alice)
    times: dict[str, float] = {}
    async with server.run() as url:
        for name in ("in-process", "redis", "postgres", "in-process again"):
            limiter: Any = None
            if name == "redis":
                limiter = RedisLimiter(redis, prefix=f"bench{uuid.uuid4().hex[:6]}")
            elif name == "postgres":
                limiter = PostgresLimiter(dsn, schema=f"bench_{uuid.uuid4().hex[:8]}")
            async with Session(url, access_token=token, limiter=limiter) as masto:
                await masto.account(alice)  # the first answer teaches the budget
                started = time.perf_counter()
                for _ in range(requests):
                    await masto.account(alice)
                times[name] = (time.perf_counter() - started) / requests
            if limiter is not None:
                await limiter.close()
    base = min(times["in-process"], times["in-process again"])
    return {
        "in-process ms": 1e3 * base,
        "redis overhead ms": 1e3 * (times["redis"] - base),
        "postgres overhead ms": 1e3 * (times["postgres"] - base),
    }


def report(rows: Sequence[dict[str, float]], overhead: dict[str, float]) -> list[str]:
    one = rows[0]["edges"] / rows[0]["seconds"]
    lines = [
        "| workers | edges | seconds | edges/s | scaling per worker | CPU per edge |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        rate = row["edges"] / row["seconds"]
        scaling = rate / (row["workers"] * one)
        lines.append(
            f"| {row['workers']:.0f} | {row['edges']:,.0f} | {row['seconds']:.2f} | "
            f"{rate:,.0f} | {scaling:.2f} | {row['cpu_per_edge_us']:.0f} µs |"
        )
    lines += [
        "",
        "| limiter | per request |",
        "|---|---:|",
        f"| in-process | {overhead['in-process ms']:.2f} ms |",
        f"| RedisLimiter | +{overhead['redis overhead ms']:.2f} ms |",
        f"| PostgresLimiter | +{overhead['postgres overhead ms']:.2f} ms |",
    ]
    return lines


async def measure(quick: bool) -> list[str]:
    with postgres_server() as dsn, redis_server() as redis:
        rows = await throughput(dsn, quick)
        overhead = await limiter_overhead(dsn, redis, quick)
    return report(rows, overhead)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench_distributed")
    parser.add_argument("--quick", action="store_true", help="a small smoke run")
    options = parser.parse_args(argv)
    print(f"{os.cpu_count()} cores")
    print("\n".join(asyncio.run(measure(options.quick))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
