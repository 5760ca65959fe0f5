"""Link-header pagination: parsing (pure) and the Page a paginated endpoint returns.

On followers/following the cursor is a Follow record id that only the Link header carries
(mastodon-api.md §10.5), so the next page is always fetched from the Link URL itself, never from
ids computed out of the accounts. A page's cursors are those URLs relative to the instance
origin, so they can be persisted and handed back later.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Mapping
from contextlib import aclosing
from typing import Any, Generic, Literal, TypeVar

from attrs import evolve, frozen
from yarl import URL

from .errors import ConfigurationError, DecodeError, MastodonError, PaginationError, UsageError
from .ratelimit import RateLimit

__all__ = ["Direction", "Page", "Paginator", "UndecodedPage", "parse_links"]

Direction = Literal["next", "prev"]

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

    A link without a ``rel`` (``<https://m.example/a?since_id=9>;``) relates to nothing, so it
    is left out.
    """
    return read_links(header)[0]


def read_links(header: str) -> tuple[dict[str, str], int]:
    """:func:`parse_links`, and how many links (``<...>`` with a URL) the header held.

    A header with links but none of a usable rel is well-formed and leads nowhere; a header
    with no readable link at all is broken. Only the count tells them apart.
    """
    links: dict[str, str] = {}
    count = 0
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
        if not target:
            continue
        count += 1
        for rel in params.get("rel", "").lower().split():
            if rel not in links:
                links[rel] = target
    return links, count


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

    ``cursor`` is the URL this page was fetched from and ``next_cursor`` / ``prev_cursor`` the
    Link URLs, all relative to the instance origin (e.g.
    ``/api/v1/accounts/1/followers?max_id=7486869``); a missing link is ``None``.
    ``ratelimit`` is the window the server reported; ``headers`` the raw response headers.
    ``skipped`` holds a :class:`~aiomasto.DecodeError` for each item left out because it could
    not be decoded (only when asked for with ``skip_undecodable=True``); its ``index`` is the
    item's position in the server's page.

    Example::

        page = await masto.followers_page("14715", limit=80)
        for account in page.items:
            print(account.acct)
        if page.next_cursor:
            page = await masto.followers_page("14715", cursor=page.next_cursor)
    """

    items: list[T]
    cursor: str
    next_cursor: str | None
    prev_cursor: str | None
    ratelimit: RateLimit | None
    headers: Mapping[str, str]
    skipped: tuple[DecodeError, ...] = ()


class UndecodedPage(Generic[T]):
    """A page's response, read and its Link header followed, before its body is decoded.

    What a :class:`Paginator`'s ``fetch`` may return instead of a :class:`Page`: the walk then
    knows the next page's cursor before decoding this one, and asks for the next page first,
    so the server prepares it while the client decodes (see :meth:`Paginator.pages`).
    """

    __slots__ = ("_body", "_decode", "cursor", "next_cursor", "prev_cursor")

    def __init__(
        self,
        *,
        cursor: str,
        next_cursor: str | None,
        prev_cursor: str | None,
        body: bytes,
        decode: Callable[[], Page[T]],
    ) -> None:
        self.cursor = cursor
        self.next_cursor = next_cursor
        self.prev_cursor = prev_cursor
        self._body = body
        self._decode = decode

    @property
    def empty(self) -> bool:
        """Whether the server sent an empty array: the walk ends here, whatever the Links."""
        return len(self._body) < 64 and b"".join(self._body.split()) == b"[]"

    def decode(self) -> Page[T]:
        """The page, its body decoded (raises :class:`~aiomasto.DecodeError` as get_page)."""
        return self._decode()


_RECENT_CURSORS = 4096
"""How many fetched cursors a walk remembers to detect loops: memory stays constant."""


class Paginator(Generic[T]):
    """Walks a Link-paginated endpoint page after page, following the server's own Link URLs.

    Iterate it for the items (``async for account in pager``), or call :meth:`pages` for whole
    :class:`Page` objects. The walk stops at a page with no link in its ``direction``, at an
    empty page, after ``max_items`` items or ``max_pages`` pages. A Link back to a page already
    fetched raises :class:`~aiomasto.PaginationError`; a Link to another origin raises
    :class:`~aiomasto.OriginError`. Any error raised mid-walk carries ``cursor``: the page that
    failed, ready for :meth:`resume`. An error never ends the iteration quietly. While you work
    through a page, the next one is already being fetched (one page ahead, never more); a
    Session's walks ask for it as soon as this page's Link header is read, before its body is
    decoded, so the server prepares page n+1 while the client decodes page n (except under
    ``max_items``, where this page's count decides whether there is a next page to ask for).

    :attr:`cursor` is what a crawler persists: the URL (relative to the instance) of the first
    page not yet fully handed out. It moves on when you ask for the item after a page's last
    one, so a walk resumed from a saved cursor starts at the page holding the first item you
    had not finished: nothing is lost, and at most that one page is seen again. ``None`` means
    the walk is complete.

    An item the server sent that cannot be decoded (no ``id``, say) raises
    :class:`~aiomasto.DecodeError` with the page's ``cursor`` and ``next_cursor`` and the item's
    ``index``. Walks made with ``skip_undecodable=True`` (``Session.followers``) leave such
    items out instead: each is logged at WARNING, listed in its :attr:`Page.skipped` and
    counted in :attr:`items_skipped`, and the walk goes on.

    Example::

        pager = masto.followers("14715", limit=80)
        async for account in pager:
            await handle(account)
            checkpoint.save(pager.cursor)
        # in a new process, later:
        async for account in masto.followers("14715").resume(checkpoint.load()):
            ...
    """

    def __init__(
        self,
        fetch: Callable[[str], Awaitable[Page[T] | UndecodedPage[T]]],
        start: str,
        *,
        direction: Direction = "next",
        max_items: int | None = None,
        max_pages: int | None = None,
    ) -> None:
        if direction not in ("next", "prev"):
            raise ConfigurationError(f"direction must be 'next' or 'prev', not {direction!r}")
        for name, value in (("max_items", max_items), ("max_pages", max_pages)):
            if value is not None and (type(value) is not int or value < 1):
                raise ConfigurationError(f"{name} must be a whole number of at least 1")
        self._fetch = fetch
        self._start = start
        self._direction: Direction = direction
        self._max_items = max_items
        self._max_pages = max_pages
        self._started = False
        self.cursor: str | None = start
        """The first page not yet fully handed out; ``None`` once the walk is complete."""
        self.latest_page: Page[T] | None = None
        """The page fetched last, for its rate-limit info and headers; once the walk moves past
        it, its ``items`` are let go (an empty list), so a walk never holds two pages of them."""
        self.pages_fetched = 0
        self.items_yielded = 0
        self.items_skipped = 0
        """Items left out because they could not be decoded (``skip_undecodable=True``)."""

    def __repr__(self) -> str:
        return (
            f"<Paginator {self._direction} cursor={self.cursor!r} pages={self.pages_fetched} "
            f"items={self.items_yielded}>"
        )

    def resume(self, cursor: str) -> Paginator[T]:
        """A new walk of the same endpoint and settings, starting at a saved ``cursor``."""
        try:
            path = URL(cursor).path if isinstance(cursor, str) else None
        except ValueError:
            path = None
        if path != URL(self._start).path:
            raise ConfigurationError(
                f"cursor {cursor!r} is not a page of this endpoint ({URL(self._start).path!r})"
            )
        return Paginator(
            self._fetch,
            cursor,
            direction=self._direction,
            max_items=self._max_items,
            max_pages=self._max_pages,
        )

    def __aiter__(self) -> AsyncIterator[T]:
        return self._items()

    async def _items(self) -> AsyncGenerator[T, None]:
        async with aclosing(self.pages()) as pages:
            async for page in pages:
                for item in page.items:
                    if self._max_items is not None and self.items_yielded >= self._max_items:
                        return
                    self.items_yielded += 1
                    yield item
                del page  # not kept while the next page is fetched and decoded

    async def pages(self) -> AsyncGenerator[Page[T], None]:
        """The pages themselves, in order; the cursor moves as each one is finished with.

        While you work through a page, the next one is already being fetched (one page ahead,
        never more), so the network's time overlaps yours.
        """
        if self._started:
            raise UsageError("a Paginator walks once; use resume(cursor) for another walk")
        self._started = True
        recent: deque[str] = deque(maxlen=_RECENT_CURSORS)
        seen: set[str] = set()
        cursor = self.cursor
        ahead: asyncio.Future[Page[T] | UndecodedPage[T]] | None = None
        try:
            while cursor is not None:
                if self._max_pages is not None and self.pages_fetched >= self._max_pages:
                    return
                if self._max_items is not None and self.items_yielded >= self._max_items:
                    return
                if cursor in seen:
                    raise PaginationError(
                        f"the server's Link header leads back to a page already fetched ({cursor})",
                        cursor=cursor,
                    )
                if len(recent) == recent.maxlen:
                    seen.discard(recent[0])
                recent.append(cursor)
                seen.add(cursor)
                pending, ahead = ahead, None
                try:
                    fetched = await (pending if pending is not None else self._fetch(cursor))
                    if isinstance(fetched, UndecodedPage):
                        # The next page is asked for before this one is decoded: the server
                        # prepares it while the client decodes. Not under max_items, which
                        # needs this page's count to know whether there is a next page to ask.
                        following = self._following(fetched)
                        if (
                            following is not None
                            and self._max_items is None
                            and not fetched.empty
                            and self._worth_prefetching(following, 0, seen, self.pages_fetched + 1)
                        ):
                            ahead = self._ask_ahead(following)
                            await asyncio.sleep(0)  # let it send its request before decoding
                        page = fetched.decode()
                    else:
                        page = fetched
                except MastodonError as exc:
                    exc.cursor = cursor
                    raise
                del fetched  # a Page held here would outlive its hand-out (see below)
                self.pages_fetched += 1
                self.items_skipped += len(page.skipped)
                self.latest_page = page
                following = self._following(page)
                if not page.items and not page.skipped:
                    following = None  # the server's page was empty, not just its readable part
                if following is None and ahead is not None:
                    ahead.cancel()
                    ahead = None
                if (
                    following is not None
                    and ahead is None
                    and self._worth_prefetching(
                        following, len(page.items), seen, self.pages_fetched
                    )
                ):
                    ahead = self._ask_ahead(following)
                    # Let it send its request now: a consumer that never awaits would otherwise
                    # hold it back until the whole page is done.
                    await asyncio.sleep(0)
                yield page
                self.cursor = cursor = following
                # Done with: its entities go now, before the next page is decoded. Kept alive
                # through that decoding, they would survive the collections it sets off into
                # the old generations, whose full collections cost a crawl about a µs an item.
                self.latest_page = evolve(page, items=[])
                del page
        finally:
            if ahead is not None:
                ahead.cancel()  # the walk ended early: the page fetched ahead is not wanted

    def _following(self, page: Page[T] | UndecodedPage[T]) -> str | None:
        return page.next_cursor if self._direction == "next" else page.prev_cursor

    def _ask_ahead(self, cursor: str) -> asyncio.Future[Page[T] | UndecodedPage[T]]:
        ahead = asyncio.ensure_future(self._fetch(cursor))
        ahead.add_done_callback(_quietly)
        return ahead

    def _worth_prefetching(self, following: str, count: int, seen: set[str], pages: int) -> bool:
        """Whether the walk will go on to ``following`` if no error stops it, after ``pages``
        pages, the last of ``count`` items."""
        if following in seen:
            return False
        if self._max_pages is not None and pages >= self._max_pages:
            return False
        return self._max_items is None or self.items_yielded + count < self._max_items


def _quietly(future: asyncio.Future[Any]) -> None:
    # A page fetched ahead whose walk was abandoned may fail unseen; that is not news.
    if not future.cancelled():
        future.exception()
