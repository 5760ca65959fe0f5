"""One place that turns ``--db`` into a crawl sink: an SQLite file or a PostgreSQL URL."""

from __future__ import annotations

import os

from aiomasto._postgres import redact_dsn

from ._postgres import PostgresCrawlSink
from ._sqlite import SqliteCrawlSink

__all__ = ["describe_db", "is_postgres", "open_sink"]


def is_postgres(db: str | os.PathLike[str]) -> bool:
    """Whether ``db`` names a PostgreSQL database (``postgresql://`` or ``postgres://``)."""
    return isinstance(db, str) and db.partition("://")[0].lower() in ("postgres", "postgresql")


def open_sink(
    db: str | os.PathLike[str],
    *,
    schema: str = "aiomasto_crawl",
    lease: float = 60.0,
    worker: str | None = None,
) -> SqliteCrawlSink | PostgresCrawlSink:
    """The sink ``--db`` names: a ``postgresql://`` URL gives a :class:`PostgresCrawlSink`
    (``schema``, ``lease`` and ``worker`` go to it), anything else is an SQLite file.

    Nothing is opened yet (the crawler opens it). Example::

        sink = open_sink("postgresql://crawler:secret@db.example/crawls")
        async with Crawler(sink) as crawler:
            await crawler.run(None)          # join the stored crawl
    """
    if is_postgres(db):
        assert isinstance(db, str)
        return PostgresCrawlSink(db, schema=schema, lease=lease, worker=worker)
    return SqliteCrawlSink(db)


def describe_db(db: str | os.PathLike[str]) -> str:
    """``db`` as a message may show it: a PostgreSQL URL with its password masked."""
    return redact_dsn(str(db)) if is_postgres(db) else os.fspath(db)
