"""Crawl followers and following of many accounts across the fediverse, exactly once.

See :mod:`aiomasto.crawl._model` for the vocabulary (units, outcomes, the sink seam),
:class:`SqliteCrawlSink` for the default sink and :func:`export` for the result files.
"""

from ._export import EXPORT_KINDS, ExportKind, export
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
from ._sqlite import CrawlStats, SqliteCrawlSink

__all__ = [
    "EXPORT_KINDS",
    "OUTCOMES",
    "RELATIONS",
    "AccountRecord",
    "CrawlPlan",
    "CrawlSink",
    "CrawlStats",
    "Edge",
    "ExportKind",
    "InstanceRecord",
    "ListResult",
    "Outcome",
    "PageCommit",
    "Relation",
    "ResumeState",
    "SqliteCrawlSink",
    "Unit",
    "UnitKey",
    "export",
]
