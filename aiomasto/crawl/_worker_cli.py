"""``aiomasto crawl-worker``: one more worker for a crawl stored in PostgreSQL.

Start the crawl with ``aiomasto crawl SEEDS --db postgresql://...``; every
``aiomasto crawl-worker --db postgresql://...`` (on this machine or another) joins it, claims
lists nobody holds and walks them until the whole crawl is done. Workers share each instance's
rate budget through Redis (``--redis``) or, without it, through the same PostgreSQL.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
from collections.abc import AsyncIterator

import aiohttp

from aiomasto._http import DEFAULT_TIMEOUT, StaticResolver
from aiomasto._limiter import LimiterBackend
from aiomasto.errors import ConfigurationError

from ._engine import Crawler, CrawlProgress
from ._open import is_postgres, open_sink
from ._postgres import PostgresCrawlSink

__all__ = ["add_parser", "crawl_worker"]


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``crawl-worker`` to the ``aiomasto`` command line."""
    worker = commands.add_parser(
        "crawl-worker",
        help="join a crawl stored in PostgreSQL and walk its lists until it is done",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    worker.add_argument(
        "--db", required=True, help="the crawl's database: postgresql://user:password@host/db"
    )
    worker.add_argument(
        "--schema", default="aiomasto_crawl", help="its schema (default: aiomasto_crawl)"
    )
    worker.add_argument(
        "--redis", help="share rate budgets through this Redis (default: through PostgreSQL)"
    )
    worker.add_argument(
        "--concurrency", type=int, default=16, help="lists walked at once (default: 16)"
    )
    worker.add_argument(
        "--per-instance", type=int, default=4, help="at once on one instance (default: 4)"
    )
    worker.add_argument(
        "--lease",
        type=float,
        default=60.0,
        help="seconds a dead worker's lists stay held before others take them (default: 60)",
    )
    worker.add_argument(
        "--worker",
        help="this worker's name in the database, one per live worker (default: host-pid-random);"
        " a worker restarted under its name takes its lists back at once",
    )
    worker.add_argument(
        "--resolve",
        action="append",
        default=[],
        metavar="HOST=IP:PORT",
        help="send HOST's requests to IP:PORT (like curl --resolve); repeatable",
    )
    worker.add_argument(
        "--insecure-http", action="store_true", help="allow plain http:// instances (tests)"
    )
    worker.add_argument("--quiet", action="store_true", help="no progress lines on stderr")


async def crawl_worker(args: argparse.Namespace) -> int:
    """Run one worker until the crawl is done; SIGTERM stops it and gives its lists back."""
    if not is_postgres(args.db):
        raise ConfigurationError(
            "crawl-worker joins a crawl stored in PostgreSQL (--db postgresql://...); "
            "a crawl in an SQLite file has one crawler: resume it with 'aiomasto crawl'"
        )
    sink = open_sink(args.db, schema=args.schema, lease=args.lease, worker=args.worker)
    assert isinstance(sink, PostgresCrawlSink)
    task = asyncio.current_task()
    assert task is not None
    terminated: list[bool] = []

    def terminate() -> None:
        terminated.append(True)
        task.cancel()

    loop = asyncio.get_running_loop()
    with contextlib.suppress(NotImplementedError):
        loop.add_signal_handler(signal.SIGTERM, terminate)
    try:
        return await _work(args, sink)
    except asyncio.CancelledError:
        if not terminated:
            raise
        print("worker stopped (SIGTERM); its lists were given back", file=sys.stderr)
        return 128 + signal.SIGTERM


async def _work(args: argparse.Namespace, sink: PostgresCrawlSink) -> int:
    resolver = StaticResolver.from_specs(args.resolve)
    async with (
        _limiter(args) as limiter,
        aiohttp.ClientSession(
            timeout=DEFAULT_TIMEOUT, connector=aiohttp.TCPConnector(resolver=resolver)
        ) as http,
        Crawler(
            sink,
            concurrency=args.concurrency,
            per_instance=args.per_instance,
            http=http,
            allow_insecure_http=args.insecure_http,
            limiter=limiter,
            on_progress=None if args.quiet else _progress,
            progress_interval=10.0,
        ) as crawler,
    ):
        print(f"worker {sink.worker} joins the crawl in {sink.where}", file=sys.stderr)
        summary = await crawler.run(None)
    print(summary)
    return 0


@contextlib.asynccontextmanager
async def _limiter(args: argparse.Namespace) -> AsyncIterator[LimiterBackend]:
    if args.redis:
        from aiomasto.ratelimit_redis import RedisLimiter

        async with RedisLimiter(args.redis) as redis:
            yield redis
        return
    from aiomasto.ratelimit_postgres import PostgresLimiter

    async with PostgresLimiter(args.db) as postgres:
        yield postgres


def _progress(progress: CrawlProgress) -> None:
    waiting = f", {len(progress.waiting)} instances waiting" if progress.waiting else ""
    print(
        f"{progress.units_done} lists done, {progress.units_in_flight} walking, "
        f"{progress.edges} edges, {progress.requests} requests "
        f"({progress.requests_per_second:.1f}/s){waiting}",
        file=sys.stderr,
    )
