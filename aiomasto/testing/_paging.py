"""Followers/following pages and their ``Link`` headers, for every flavour.

A list is two parallel arrays sorted ascending by its cursor key (the Follow id, or the
account id on Akkoma), so a page is two bisects and a slice, even for a million follows.
"""

from __future__ import annotations

import base64
import json
import re
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Sequence
from urllib.parse import urlencode

import attrs

from ._context import Halt
from ._flavors import PagingRules, follow_ulid
from ._http import Params, json_response, ruby_to_i, scalar, string_list
from ._state import Edges

__all__ = [
    "OpaquePage",
    "Page",
    "first_page",
    "link_header",
    "page_limit",
    "select_opaque_page",
    "select_page",
    "swapped_link_header",
]

_GO_INT = re.compile(r"[+-]?\d+")
# Akkoma rebuilds its links from the request params minus these.
_CURSOR_PARAMS = frozenset({"max_id", "min_id", "since_id", "offset"})


@attrs.frozen(kw_only=True)
class Page:
    """Account ids newest first, and the cursor texts of the first and last entry."""

    account_ids: list[int]
    newest: str
    oldest: str


def page_limit(raw: str | None, rules: PagingRules) -> int:
    """How many entries to return for the ``limit`` param (0 means an empty page)."""
    if rules.limit_parse == "rails":
        # params[:limit].to_i.abs, capped: "-5" is 5 and "abc" is 0.
        return rules.default_limit if raw is None else min(abs(ruby_to_i(raw)), rules.max_limit)
    if not raw:
        return rules.default_limit
    if _GO_INT.fullmatch(raw) is None:
        if rules.limit_parse == "strict":
            raise Halt(json_response(400, {"error": "Bad Request: bad integer limit value"}))
        return rules.default_limit  # Ecto's cast drops a bad integer, so the default applies
    value = int(raw)
    if rules.limit_parse == "strict":
        value = rules.default_limit if value == 0 else max(value, 1)
    return min(value, rules.max_limit)


def _cursor(raw: str | None) -> str | None:
    return raw if raw and raw.strip() else None


def _bound(
    keys: Sequence[int],
    raw: str,
    as_text: Callable[[int], str] | None,
    bisect: Callable[..., int],
) -> int:
    if as_text is not None:
        # ULIDs are compared as text, as the database does, so any string is a cursor.
        return bisect(keys, raw, key=as_text)
    return bisect(keys, ruby_to_i(raw))


def _take(
    accounts: Sequence[int], lo: int, hi: int, limit: int, upward: bool, excluded: set[int]
) -> list[int]:
    """Indexes in ``[lo, hi)`` newest first: the top ``limit``, or with ``upward`` the
    ``limit`` just above ``lo``; entries whose account is in ``excluded`` are skipped."""
    if limit <= 0 or lo >= hi:
        return []
    if not excluded:
        if upward:
            return list(range(min(hi, lo + limit) - 1, lo - 1, -1))
        return list(range(hi - 1, max(lo, hi - limit) - 1, -1))
    picked: list[int] = []
    for index in range(lo, hi) if upward else range(hi - 1, lo - 1, -1):
        if accounts[index] not in excluded:
            picked.append(index)
            if len(picked) == limit:
                break
    return picked[::-1] if upward else picked


def select_page(
    edges: Edges, rules: PagingRules, limit: int, params: Params, excluded: set[int]
) -> Page:
    """``ORDER BY key DESC LIMIT n`` with ``key < max_id`` and ``key > since_id``, or, where
    ``min_id`` is honoured, the ``n`` entries just above it (still returned newest first)."""
    if rules.order_by == "account":
        keys = accounts = edges.sorted_account_ids()
    else:
        keys, accounts = edges.follow_ids, edges.account_ids
    as_text = follow_ulid if rules.order_by == "follow" and rules.follow_ids == "ulid" else None
    max_id = _cursor(scalar(params, "max_id"))
    min_id = _cursor(scalar(params, "min_id")) if rules.min_id else None
    lower = min_id if min_id is not None else _cursor(scalar(params, "since_id"))
    hi = len(keys) if max_id is None else _bound(keys, max_id, as_text, bisect_left)
    lo = 0 if lower is None else _bound(keys, lower, as_text, bisect_right)
    indexes = _take(accounts, lo, hi, limit, min_id is not None, excluded)
    if not indexes:
        return Page(account_ids=[], newest="", oldest="")
    text = as_text or str
    return Page(
        account_ids=[accounts[i] for i in indexes],
        newest=text(keys[indexes[0]]),
        oldest=text(keys[indexes[-1]]),
    )


def _carried(params: Params) -> list[tuple[str, str]]:
    pairs: list[tuple[str, str]] = []
    for key in params:
        if key in _CURSOR_PARAMS:
            continue
        values = string_list(params, key)
        if values is not None:
            pairs.extend((f"{key}[]", value) for value in values)
        elif (value := scalar(params, key)) is not None:
            pairs.append((key, value))
    return pairs


def link_header(url: str, rules: PagingRules, params: Params, limit: int, page: Page) -> str | None:
    """``<url?…max_id=…>; rel="next", <url?…>; rel="prev"``, or None for an empty page.

    Query keys are sorted, as Rails' ``to_query``, Go's ``url.Values.Encode`` and Elixir's
    small maps all do.
    """
    if not page.account_ids:
        return None
    if rules.links_carry_params:
        carried = _carried(params)
    else:
        sent = scalar(params, "limit")
        carried = [("limit", sent)] if sent is not None else []
    if rules.links_always_limit:
        carried = [(k, v) for k, v in carried if k != "limit"] + [("limit", str(limit))]
    prev_param = rules.prev_param
    if prev_param == "request":
        paged_since = _cursor(scalar(params, "since_id")) and not _cursor(scalar(params, "min_id"))
        prev_param = "since_id" if paged_since else "min_id"

    def target(name: str, value: str) -> str:
        pairs = sorted([*carried, (name, value)], key=lambda pair: pair[0].removesuffix("[]"))
        return f"{url}?{urlencode(pairs)}"

    links = []
    if rules.next_on_short_page or len(page.account_ids) == limit:
        links.append(f'<{target("max_id", page.oldest)}>; rel="next"')
    links.append(f'<{target(prev_param, page.newest)}>; rel="prev"')
    return ", ".join(links)


# Pixelfed pages follows with Laravel's cursorPaginate (federation.md §4.3): the cursor is
# base64url JSON naming the edge row and a direction, and max_id/since_id mean nothing.
_LARAVEL_KEY = "followers.id"


@attrs.frozen(kw_only=True)
class OpaquePage:
    """A Laravel cursor page: account ids newest first, and the cursors to either side."""

    account_ids: list[int]
    older: str | None
    newer: str | None


def _encode_cursor(follow_id: int, towards_older: bool) -> str:
    document = json.dumps(
        {_LARAVEL_KEY: follow_id, "_pointsToNextItems": towards_older}, separators=(",", ":")
    )
    return base64.urlsafe_b64encode(document.encode()).decode().rstrip("=")


def _decode_cursor(raw: str | None) -> tuple[int, bool] | None:
    """Laravel's ``Cursor::fromEncoded``: anything unreadable means the first page."""
    if not raw:
        return None
    try:
        document = json.loads(base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)))
        follow_id = document[_LARAVEL_KEY]
        towards_older = document["_pointsToNextItems"]
    except (ValueError, TypeError, KeyError, IndexError):
        return None
    if not isinstance(follow_id, int) or not isinstance(towards_older, bool):
        return None
    return follow_id, towards_older


def select_opaque_page(edges: Edges, limit: int, params: Params) -> OpaquePage:
    """``cursorPaginate``: newest first from the cursor's row, ``limit + 1`` rows read to
    know whether there is more, and Laravel's rules for which side gets a cursor."""
    keys, accounts = edges.follow_ids, edges.account_ids
    cursor = _decode_cursor(scalar(params, "cursor"))
    if cursor is None or cursor[1]:
        hi = len(keys) if cursor is None else bisect_left(keys, cursor[0])
        lo = max(0, hi - limit)
        more = lo > 0
    else:
        lo = bisect_right(keys, cursor[0])
        hi = min(len(keys), lo + limit)
        more = hi < len(keys)
    indexes = list(range(hi - 1, lo - 1, -1))
    if not indexes:
        return OpaquePage(account_ids=[], older=None, newer=None)
    towards_older = cursor is None or cursor[1]
    # Laravel's nextCursor()/previousCursor() (Illuminate\Pagination\CursorPaginator).
    has_older = more if towards_older else True
    has_newer = cursor is not None and (more or towards_older)
    return OpaquePage(
        account_ids=[accounts[i] for i in indexes],
        older=_encode_cursor(keys[indexes[-1]], True) if has_older else None,
        newer=_encode_cursor(keys[indexes[0]], False) if has_newer else None,
    )


def swapped_link_header(url: str, params: Params, page: OpaquePage) -> str | None:
    """Pixelfed's Link: older items under rel="prev", newer ones under rel="next"."""
    sent = scalar(params, "limit")
    carried = [("limit", sent)] if sent is not None else []

    def target(cursor: str) -> str:
        return f"{url}?{urlencode([('cursor', cursor), *carried])}"

    links = []
    if page.newer is not None:
        links.append(f'<{target(page.newer)}>; rel="next"')
    if page.older is not None:
        links.append(f'<{target(page.older)}>; rel="prev"')
    return ", ".join(links) or None


def first_page(edges: Edges, limit: int) -> Page:
    """Sharkey's shim: whatever the cursor, the newest ``limit`` entries."""
    count = min(limit, len(edges))
    ids = [edges.account_ids[i] for i in range(len(edges) - 1, len(edges) - 1 - count, -1)]
    return Page(account_ids=ids, newest="", oldest="")
