"""A crawler process for the kill -9 tests: the library's Crawler and SqliteCrawlSink, as
``aiomasto crawl`` runs them, with fake host names resolved to loopback ports.

Run as a script (``python tests/crawlproc.py --db crawl.sqlite --resolve
alpha.example=127.0.0.1:41234 --insecure-http @alice@alpha.example``, then ``--resume
crawl.sqlite``); it prints the summary and exits 0 when the crawl is over.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys

import aiohttp

from aiomasto._http import StaticResolver
from aiomasto.crawl import RELATIONS, Crawler, Relation, SqliteCrawlSink


def _relations(text: str) -> tuple[Relation, ...]:
    if text == "both":
        return RELATIONS
    chosen = tuple(r for r in RELATIONS if r == text)
    if not chosen:
        raise argparse.ArgumentTypeError(f"{text!r}: followers, following or both")
    return chosen


def _arguments(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="crawlproc")
    parser.add_argument("seeds", nargs="*")
    parser.add_argument("--db")
    parser.add_argument("--resume", metavar="DB")
    parser.add_argument("--relations", type=_relations, default=RELATIONS)
    parser.add_argument("--depth", type=int, default=0)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--resolve", action="append", default=[])
    parser.add_argument("--insecure-http", action="store_true")
    args = parser.parse_args(argv)
    if (args.resume is None) == (args.db is None) or (args.resume is not None and args.seeds):
        parser.error("give seeds and --db, or --resume DB alone")
    return args


async def _crawl(args: argparse.Namespace) -> None:
    resolver = StaticResolver.from_specs(args.resolve)
    connector = aiohttp.TCPConnector(resolver=resolver)
    async with (
        aiohttp.ClientSession(connector=connector) as http,
        Crawler(
            SqliteCrawlSink(args.resume or args.db),
            http=http,
            allow_insecure_http=args.insecure_http,
            relations=args.relations,
            depth=args.depth,
            concurrency=args.concurrency,
        ) as crawler,
    ):
        summary = await crawler.run(None if args.resume else args.seeds)
    print(summary)


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    asyncio.run(_crawl(_arguments(sys.argv[1:])))
