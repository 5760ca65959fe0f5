"""Crawl followers and following of many accounts across the fediverse, exactly once.

See :mod:`aiomasto.crawl._model` for the vocabulary (units, outcomes, the sink seam).
"""

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

__all__ = [
    "OUTCOMES",
    "RELATIONS",
    "AccountRecord",
    "CrawlPlan",
    "CrawlSink",
    "Edge",
    "InstanceRecord",
    "ListResult",
    "Outcome",
    "PageCommit",
    "Relation",
    "ResumeState",
    "Unit",
    "UnitKey",
]
