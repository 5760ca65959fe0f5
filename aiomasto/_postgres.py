"""What the PostgreSQL backends share: the driver import, DSNs that never show a password,
advisory lock keys. ``asyncpg`` (the ``aiomasto[postgres]`` extra) is imported on first use."""

from __future__ import annotations

import hashlib
from typing import Any

from yarl import URL

from .errors import ConfigurationError

__all__ = ["check_dsn", "import_asyncpg", "redact_dsn", "schema_lock_key"]


def redact_dsn(dsn: str) -> str:
    """``dsn`` with its password masked: ``postgresql://crawler:***@db.example/crawls``.

    Example::

        print(redact_dsn("postgresql://crawler:hunter2@db.example/crawls"))
    """
    try:
        url = URL(dsn)
    except (TypeError, ValueError):
        return "<an unreadable PostgreSQL URL>"
    if url.password:
        url = url.with_password("***")
    if "password" in url.query:
        url = url.update_query(password="***")
    return str(url)


def schema_lock_key(schema: str, what: str) -> int:
    """A 64-bit advisory lock key for ``what`` in ``schema`` (PostgreSQL's ``bigint``)."""
    digest = hashlib.sha256(f"aiomasto\0{schema}\0{what}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def import_asyncpg() -> Any:
    """``asyncpg``, or a ConfigurationError that names the extra to install."""
    try:
        import asyncpg
    except ImportError:
        raise ConfigurationError(
            "a PostgreSQL crawl needs asyncpg: pip install 'aiomasto[postgres]'"
        ) from None
    return asyncpg


def check_dsn(dsn: object) -> str:
    """``dsn`` if it is a ``postgresql://`` URL; a ConfigurationError (not showing it) if not."""
    scheme = ""
    if isinstance(dsn, str):
        try:
            scheme = URL(dsn).scheme
        except ValueError:
            scheme = ""
    if not isinstance(dsn, str) or scheme not in ("postgres", "postgresql"):
        raise ConfigurationError(
            "a PostgreSQL crawl database is a postgresql:// URL "
            "(postgresql://user:password@host:5432/database)"
        )
    return dsn
