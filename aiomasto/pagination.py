"""Link-header pagination: parsing (pure) and the Page a paginated endpoint returns.

On followers/following the cursor is a Follow record id that only the Link header carries
(mastodon-api.md §10.5), so the next page is always fetched from the Link URL itself, never from
ids computed out of the accounts. A page's cursors are those URLs relative to the instance
origin, so they can be persisted and handed back later.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Generic, TypeVar

from attrs import frozen
from yarl import URL

from .ratelimit import RateLimit

__all__ = ["Page", "parse_links"]

T = TypeVar("T")


def parse_links(header: str) -> dict[str, str]:
    """Map each ``rel`` of a Link header (RFC 8288) to its URL reference.

    Tolerant of what real servers send: any order, unknown rels (ignored by callers), several
    space-separated rels in one value, unquoted values, a trailing ``;`` or ``,``, and commas or
    semicolons inside the ``<...>``. When a rel appears twice the first one wins. Garbage
    between entries is skipped rather than raised: a broken header yields fewer links, never an
    exception.

    >>> parse_links('<https://m.example/a?max_id=1>; rel="next", </a?since_id=9>; rel="prev"')
    {'next': 'https://m.example/a?max_id=1', 'prev': '/a?since_id=9'}
    """
    links: dict[str, str] = {}
    pos, end = 0, len(header)
    while pos < end:
        start = header.find("<", pos)
        if start < 0:
            break
        close = header.find(">", start + 1)
        if close < 0:
            break
        target = header[start + 1 : close].strip()
        params, pos = _read_params(header, close + 1)
        for rel in params.get("rel", "").lower().split():
            if target and rel not in links:
                links[rel] = target
    return links


def _read_params(header: str, pos: int) -> tuple[dict[str, str], int]:
    """Read ``; name=value`` pairs up to the comma that ends this link (outside quotes)."""
    params: dict[str, str] = {}
    end = len(header)
    while pos < end:
        char = header[pos]
        if char == ",":
            return params, pos + 1
        if char == "<":
            return params, pos
        if char != ";":
            pos += 1
            continue
        pos += 1
        eq = pos
        while eq < end and header[eq] not in "=;,<":
            eq += 1
        name = header[pos:eq].strip().lower()
        if eq >= end or header[eq] != "=":
            pos = eq
            continue
        pos = eq + 1
        while pos < end and header[pos] in " \t":
            pos += 1
        if pos < end and header[pos] == '"':
            close = header.find('"', pos + 1)
            close = end if close < 0 else close
            value = header[pos + 1 : close]
            pos = close + 1
        else:
            stop = pos
            while stop < end and header[stop] not in ";,<":
                stop += 1
            value = header[pos:stop].strip()
            pos = stop
        if name and name not in params:
            params[name] = value
    return params, pos


def relative_cursor(url: URL) -> str:
    """The persistable cursor for a URL on the instance: its path and query."""
    return url.raw_path_qs


@frozen(kw_only=True)
class Page(Generic[T]):
    """One page of a paginated endpoint.

    ``next_cursor`` / ``prev_cursor`` are the Link URLs relative to the instance origin (e.g.
    ``/api/v1/accounts/1/followers?max_id=7486869``), or ``None`` when the server gave no such
    link. ``ratelimit`` is the window the server reported; ``headers`` the raw response headers.

    Example::

        page = await masto.followers_page("14715", limit=80)
        for account in page.items:
            print(account.acct)
        if page.next_cursor:
            page = await masto.followers_page("14715", cursor=page.next_cursor)
    """

    items: list[T]
    next_cursor: str | None
    prev_cursor: str | None
    ratelimit: RateLimit | None
    headers: Mapping[str, str]
