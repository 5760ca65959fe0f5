"""Crawl followers and following of many accounts across the fediverse, exactly once.

:class:`Crawler` resolves each account to its home instance (WebFinger, then lookup there),
detects what each instance runs, walks the lists with that server's paging rules and commits
every page to a :class:`CrawlSink` in one transaction, so a crawl can be stopped at any moment
and resumed. See :mod:`aiomasto.crawl._model` for the vocabulary (units, outcomes, the sink
seam).

Example::

    from aiomasto.crawl import Crawler, MemoryCrawlSink

    sink = MemoryCrawlSink()
    async with Crawler(sink, relations=("followers", "following"), depth=1) as crawler:
        print(await crawler.run(["@alice@example.social"]))

:class:`SqliteCrawlSink` keeps a crawl in one file (the default of ``aiomasto crawl``) and
:func:`export` writes its results as JSON lines, CSV, GraphML or an edge list.
:class:`PostgresCrawlSink` keeps it in PostgreSQL, where any number of workers share it
(``aiomasto crawl-worker``); :func:`open_sink` picks one from ``--db``.
"""

from aiomasto._http import StaticResolver
from aiomasto._postgres import redact_dsn

from ._engine import Crawler, CrawlProgress, CrawlSummary
from ._export import EXPORT_KINDS, ExportKind, export
from ._memory import MemoryCrawlSink
from ._model import (
    OUTCOMES,
    RELATIONS,
    AccountRecord,
    CrawlPlan,
    CrawlSink,
    Edge,
    InstanceRecord,
    ListResult,
    Outcome,
    PageCommit,
    Relation,
    ResumeState,
    Unit,
    UnitKey,
)
from ._open import describe_db, open_sink
from ._postgres import PostgresCrawlSink
from ._servers import Quirks, quirks_for
from ._sqlite import CrawlStats, SqliteCrawlSink
from ._targets import Target, parse_target

__all__ = [
    "EXPORT_KINDS",
    "OUTCOMES",
    "RELATIONS",
    "AccountRecord",
    "CrawlPlan",
    "CrawlProgress",
    "CrawlSink",
    "CrawlStats",
    "CrawlSummary",
    "Crawler",
    "Edge",
    "ExportKind",
    "InstanceRecord",
    "ListResult",
    "MemoryCrawlSink",
    "Outcome",
    "PageCommit",
    "PostgresCrawlSink",
    "Quirks",
    "Relation",
    "ResumeState",
    "SqliteCrawlSink",
    "StaticResolver",
    "Target",
    "Unit",
    "UnitKey",
    "describe_db",
    "export",
    "open_sink",
    "parse_target",
    "quirks_for",
    "redact_dsn",
]
