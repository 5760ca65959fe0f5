"""Account endpoints: show, lookup, verify_credentials, relationships, followers/following."""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from urllib.parse import urlencode

from aiohttp import web
from yarl import URL

from ._context import Ctx, Halt
from ._http import json_response, json_text_response, ruby_to_i, scalar, string_list
from ._json import (
    account_text,
    accounts_text,
    credential_account_document,
    relationship_document,
)
from ._state import Account, Edges

__all__ = ["followers", "following", "lookup", "relationships", "show", "verify_credentials"]

DEFAULT_ACCOUNTS_LIMIT = 40
MAX_ACCOUNTS_LIMIT = 80
_PUBLIC_CACHE = "public, max-age=15, stale-while-revalidate=30, stale-if-error=86400"
# ActiveModel::Type::Boolean's false values; anything else non-blank is true.
_FALSE_VALUES = frozenset({"0", "f", "F", "false", "FALSE", "off", "OFF"})


def _not_found() -> Halt:
    return Halt(json_response(404, {"error": "Record not found"}))


def _find(ctx: Ctx, raw_id: str) -> Account:
    # ActiveRecord casts the id with String#to_i, so "12abc" finds account 12.
    account = ctx.state.accounts.get(ruby_to_i(raw_id))
    if account is None:
        raise _not_found()
    return account


def _cache_if_unauthenticated(ctx: Ctx, response: web.Response) -> web.Response:
    if ctx.user_id is None and "Authorization" not in ctx.headers:
        response.headers["Cache-Control"] = _PUBLIC_CACHE
    return response


def _account_response(ctx: Ctx, account: Account) -> web.Response:
    text = account_text(ctx.state, account.id, ctx.base, ctx.version)
    return _cache_if_unauthenticated(ctx, json_text_response(200, text))


def show(ctx: Ctx) -> web.Response:
    """``GET /api/v1/accounts/:id``; suspended accounts come back blanked."""
    ctx.authorize_if_got_token("read", "read:accounts")
    return _account_response(ctx, _find(ctx, ctx.match["id"]))


def _is_local_domain(ctx: Ctx, domain: str) -> bool:
    # The fake server's LOCAL_DOMAIN is whatever host it was reached at, with or without port.
    return domain.lower() in (ctx.host.lower(), (URL(ctx.base).host or "").lower())


def lookup(ctx: Ctx) -> web.Response:
    """``GET /api/v1/accounts/lookup?acct=``: known accounts only, no WebFinger."""
    ctx.authorize_if_got_token("read", "read:accounts")
    acct = (ctx.param("acct") or "").strip().removeprefix("@")
    parts = acct.split("@")
    while parts and not parts[-1]:  # Ruby's String#split drops trailing empty fields
        parts.pop()
    username = parts[0] if parts else ""
    domain = parts[1] if len(parts) > 1 else None
    if domain is not None and _is_local_domain(ctx, domain):
        domain = None
    account = ctx.state.find_account(username, domain) if username else None
    if account is None:
        raise _not_found()
    return _account_response(ctx, account)


def verify_credentials(ctx: Ctx) -> web.Response:
    """``GET /api/v1/accounts/verify_credentials``: the token owner as a CredentialAccount."""
    ctx.doorkeeper_authorize("profile", "read", "read:accounts")
    user_id = ctx.require_user()
    account = ctx.state.accounts[user_id]
    return json_response(
        200, credential_account_document(ctx.state, account, ctx.base, ctx.version)
    )


def relationships(ctx: Ctx) -> web.Response:
    """``GET /api/v1/accounts/relationships?id[]=``: unknown ids vanish, DB (id) order."""
    ctx.doorkeeper_authorize("read", "read:follows")
    viewer_id = ctx.require_user()
    raw_ids = string_list(ctx.params, "id")
    if raw_ids is None:
        single = scalar(ctx.params, "id")
        raw_ids = [single] if single is not None else []
    flag = ctx.param("with_suspended")
    with_suspended = bool(flag) and flag not in _FALSE_VALUES
    documents = [
        relationship_document(ctx.state, viewer_id, account_id, ctx.version)
        for account_id in sorted({ruby_to_i(raw) for raw in raw_ids})
        if (account := ctx.state.accounts.get(account_id)) is not None
        and (with_suspended or not account.suspended)
    ]
    return json_response(200, documents)


def _limit(ctx: Ctx) -> int:
    raw = ctx.param("limit")
    if raw is None:
        return DEFAULT_ACCOUNTS_LIMIT
    # Rails: params[:limit].to_i.abs capped at 80, so "-5" is 5 and "abc" is 0.
    return min(abs(ruby_to_i(raw)), MAX_ACCOUNTS_LIMIT)


def _cursor(ctx: Ctx, name: str) -> int | None:
    raw = ctx.param(name)
    return ruby_to_i(raw) if raw and raw.strip() else None


def _page(
    edges: Edges, limit: int, max_id: int | None, since_id: int | None, excluded: set[int]
) -> list[tuple[int, int]]:
    """``ORDER BY follows.id DESC LIMIT n`` with ``id < max_id`` and ``id > since_id``,
    as (Follow id, account id) pairs."""
    ids, accounts = edges.follow_ids, edges.account_ids
    hi = bisect_left(ids, max_id) if max_id is not None else len(ids)
    lo = bisect_right(ids, since_id) if since_id is not None else 0
    if not excluded:
        start = max(lo, hi - limit)
        return list(zip(reversed(ids[start:hi]), reversed(accounts[start:hi]), strict=True))
    page: list[tuple[int, int]] = []
    for index in range(hi - 1, lo - 1, -1):
        if accounts[index] not in excluded:
            page.append((ids[index], accounts[index]))
            if len(page) == limit:
                break
    return page


def _link_header(ctx: Ctx, kind: str, page: list[tuple[int, int]], limit: int) -> str | None:
    if not page:
        return None
    url = f"{ctx.base}/api/v1/accounts/{ctx.match['id']}/{kind}?"
    echoed = ctx.param("limit")
    carried = {"limit": echoed} if echoed is not None else {}
    links = []
    if len(page) == limit:
        query = urlencode(sorted({**carried, "max_id": str(page[-1][0])}.items()))
        links.append(f'<{url}{query}>; rel="next"')
    query = urlencode(sorted({**carried, "since_id": str(page[0][0])}.items()))
    links.append(f'<{url}{query}>; rel="prev"')
    return ", ".join(links)


def _collection(ctx: Ctx, kind: str) -> web.Response:
    ctx.authorize_if_got_token("read", "read:accounts")
    account = _find(ctx, ctx.match["id"])
    state = ctx.state
    viewer_id = ctx.user_id
    limit = _limit(ctx)
    hidden = (
        account.suspended
        or (account.hide_collections and viewer_id != account.id)
        or (viewer_id is not None and state.blocks(account.id, viewer_id))
    )
    page: list[tuple[int, int]] = []
    if not hidden and limit > 0:
        edges = (state.followers_of if kind == "followers" else state.following_of)(account.id)
        # The owner sees everyone; others lose whom they block, are blocked by, or mute.
        excluded = (
            state.excluded_for(viewer_id)
            if viewer_id is not None and viewer_id != account.id
            else set()
        )
        page = _page(edges, limit, _cursor(ctx, "max_id"), _cursor(ctx, "since_id"), excluded)
    text = accounts_text(state, (account_id for _, account_id in page), ctx.base, ctx.version)
    response = json_text_response(200, text)
    link = _link_header(ctx, kind, page, limit)
    if link is not None:
        response.headers["Link"] = link
    return _cache_if_unauthenticated(ctx, response)


def followers(ctx: Ctx) -> web.Response:
    """``GET /api/v1/accounts/:id/followers``: newest follow first, Follow-id cursors."""
    return _collection(ctx, "followers")


def following(ctx: Ctx) -> web.Response:
    """``GET /api/v1/accounts/:id/following``: same rules as followers."""
    return _collection(ctx, "following")
