"""Account endpoints: show, lookup, verify_credentials, relationships, followers/following."""

from __future__ import annotations

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
from ._paging import Page, link_header, page_limit, select_page
from ._state import Account

__all__ = ["followers", "following", "lookup", "relationships", "show", "verify_credentials"]

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
    ctx = ctx.authorize_read()
    return _account_response(ctx, _find(ctx, ctx.match["id"]))


def _is_local_domain(ctx: Ctx, domain: str) -> bool:
    # The fake server's LOCAL_DOMAIN is whatever host it was reached at, with or without port.
    return domain.lower() in (ctx.host.lower(), (URL(ctx.base).host or "").lower())


def lookup(ctx: Ctx) -> web.Response:
    """``GET /api/v1/accounts/lookup?acct=``: known accounts only, no WebFinger."""
    ctx = ctx.authorize_read()
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
    user_id = ctx.authorize_user("verify_credentials")
    account = ctx.state.accounts[user_id]
    return json_response(
        200, credential_account_document(ctx.state, account, ctx.base, ctx.version)
    )


def relationships(ctx: Ctx) -> web.Response:
    """``GET /api/v1/accounts/relationships?id[]=``: unknown ids vanish, DB (id) order."""
    viewer_id = ctx.authorize_user("relationships")
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


def _collection(ctx: Ctx, kind: str) -> web.Response:
    ctx = ctx.authorize_read()
    account = _find(ctx, ctx.match["id"])
    state = ctx.state
    rules = ctx.flavor.paging
    viewer_id = ctx.user_id
    limit = page_limit(ctx.param("limit"), rules)
    hidden = (
        account.suspended
        or (account.hide_collections and viewer_id != account.id)
        or (viewer_id is not None and state.blocks(account.id, viewer_id))
    )
    page = Page(account_ids=[], newest="", oldest="")
    if not hidden:
        edges = (state.followers_of if kind == "followers" else state.following_of)(account.id)
        # The owner sees everyone; others lose whom they block, are blocked by, or mute.
        excluded = (
            state.excluded_for(viewer_id)
            if viewer_id is not None and viewer_id != account.id
            else set()
        )
        page = select_page(edges, rules, limit, ctx.params, excluded)
    response = json_text_response(
        200, accounts_text(state, page.account_ids, ctx.base, ctx.version)
    )
    url = f"{ctx.base}/api/v1/accounts/{ctx.match['id']}/{kind}"
    link = link_header(url, rules, ctx.params, limit, page)
    if link is not None:
        response.headers["Link"] = link
    return _cache_if_unauthenticated(ctx, response)


def followers(ctx: Ctx) -> web.Response:
    """``GET /api/v1/accounts/:id/followers``: newest first, paged as the flavour does."""
    return _collection(ctx, "followers")


def following(ctx: Ctx) -> web.Response:
    """``GET /api/v1/accounts/:id/following``: same rules as followers."""
    return _collection(ctx, "following")
