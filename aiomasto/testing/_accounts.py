"""Account endpoints: show, lookup, verify_credentials, relationships, followers/following."""

from __future__ import annotations

from aiohttp import web

from ._context import Ctx, Halt
from ._flavors import Answer
from ._http import json_response, json_text_response, ruby_to_i, scalar, string_list
from ._json import (
    account_text,
    accounts_text,
    credential_account_document,
    relationship_document,
)
from ._paging import (
    first_page,
    link_header,
    page_limit,
    select_opaque_page,
    select_page,
    swapped_link_header,
)
from ._state import Account

__all__ = [
    "answer",
    "followers",
    "following",
    "lookup",
    "relationships",
    "show",
    "verify_credentials",
]

_PUBLIC_CACHE = "public, max-age=15, stale-while-revalidate=30, stale-if-error=86400"
# ActiveModel::Type::Boolean's false values; anything else non-blank is true.
_FALSE_VALUES = frozenset({"0", "f", "F", "false", "FALSE", "off", "OFF"})


def _not_found() -> Halt:
    return Halt(json_response(404, {"error": "Record not found"}))


def answer(reply: Answer) -> web.Response:
    """A fixed answer from a flavour's table."""
    response = web.Response(status=reply.status, body=reply.body)
    if reply.content_type is not None:
        response.headers["Content-Type"] = reply.content_type
    return response


def _find(ctx: Ctx, raw_id: str) -> Account:
    # ActiveRecord casts the id with String#to_i, so "12abc" finds account 12.
    account = ctx.state.accounts.get(ruby_to_i(raw_id))
    # Account.without_requested_deletion: deleted accounts are not found.
    if account is None or account.deleted:
        raise _not_found()
    return account


def _cache_if_unauthenticated(ctx: Ctx, response: web.Response) -> web.Response:
    if ctx.user_id is None and "Authorization" not in ctx.headers:
        response.headers["Cache-Control"] = _PUBLIC_CACHE
    return response


def _account_response(ctx: Ctx, account: Account) -> web.Response:
    text = account_text(ctx.state, account.id, ctx.render)
    return _cache_if_unauthenticated(ctx, json_text_response(200, text))


def show(ctx: Ctx) -> web.Response:
    """``GET /api/v1/accounts/:id``; suspended accounts come back blanked."""
    ctx = ctx.authorize_read()
    return _account_response(ctx, _find(ctx, ctx.match["id"]))


def _is_local_domain(ctx: Ctx, domain: str) -> bool:
    """Whether ``user@domain`` names a local account here (federation.md §1.4)."""
    rule = ctx.flavor.lists.lookup
    if rule == "mastodon":
        # TagManager#local_domain?: LOCAL_DOMAIN only, so user@WEB_DOMAIN counts as remote.
        names = {ctx.local_domain}
    elif rule == "web_domain":
        names = {ctx.web_domain}
    else:
        names = {ctx.local_domain, ctx.web_domain}
    if ctx.host.lower().split(":")[0] in names:
        names.add(ctx.host.lower())  # reached with an explicit port, e.g. 127.0.0.1:8080
    return domain.lower() in names


def lookup(ctx: Ctx) -> web.Response:
    """``GET /api/v1/accounts/lookup?acct=``: known accounts only, no WebFinger."""
    rule = ctx.flavor.lists.lookup
    if rule == "none":
        # Pixelfed has no lookup route; the path matches accounts/{id}, which finds nothing.
        raise _not_found()
    ctx = ctx.authorize_read()
    acct = (ctx.param("acct") or "").strip().removeprefix("@")
    parts = acct.split("@")
    while parts and not parts[-1]:  # Ruby's String#split drops trailing empty fields
        parts.pop()
    username = parts[0] if parts else ""
    domain = parts[1] if len(parts) > 1 else None
    if rule == "first_hit":
        account = ctx.state.search_first(username) if username else None
        if account is None:
            raise Halt(answer(ctx.flavor.lists.not_found))
        return _account_response(ctx, account)
    if domain is not None and _is_local_domain(ctx, domain):
        domain = None
    account = ctx.state.find_account(username, domain) if username else None
    if account is None or account.deleted:
        raise _not_found()
    return _account_response(ctx, account)


def verify_credentials(ctx: Ctx) -> web.Response:
    """``GET /api/v1/accounts/verify_credentials``: the token owner as a CredentialAccount."""
    user_id = ctx.authorize_user("verify_credentials")
    account = ctx.state.accounts[user_id]
    return json_response(200, credential_account_document(ctx.state, account, ctx.render))


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
        and not account.deleted
        and (with_suspended or not account.suspended)
    ]
    return json_response(200, documents)


def _withheld(ctx: Ctx, account: Account, kind: str) -> bool:
    """Whether the list is answered empty; raises the 404 some servers send instead
    (federation.md §3.1)."""
    rules = ctx.flavor.lists
    state = ctx.state
    viewer_id = ctx.user_id
    if account.suspended and rules.suspended != "listed":
        if rules.suspended == "not_found":
            raise Halt(answer(rules.not_found))
        return True
    if viewer_id is not None and rules.blocked != "listed":
        if rules.blocked == "not_found":
            # GoToSocial refuses whichever side blocks.
            if state.blocks(account.id, viewer_id) or state.blocks(viewer_id, account.id):
                raise Halt(answer(rules.not_found))
        elif state.blocks(account.id, viewer_id):
            return True
    if viewer_id == account.id:
        return False
    if rules.hide == "separately":
        return account.hide_followers if kind == "followers" else account.hide_follows
    return account.hide_collections


def _collection(ctx: Ctx, kind: str) -> web.Response:
    ctx = ctx.authorize_read()
    account = _find(ctx, ctx.match["id"])
    state = ctx.state
    rules = ctx.flavor.paging
    viewer_id = ctx.user_id
    limit = page_limit(ctx.param("limit"), rules)
    url = f"{ctx.base}/api/v1/accounts/{ctx.match['id']}/{kind}"
    link: str | None = None
    account_ids: list[int] = []
    if not _withheld(ctx, account, kind):
        edges = (state.followers_of if kind == "followers" else state.following_of)(account.id)
        if rules.cursor == "opaque":
            opaque = select_opaque_page(edges, limit, ctx.params)
            account_ids = opaque.account_ids
            link = swapped_link_header(url, ctx.params, opaque)
        elif rules.cursor == "none":
            account_ids = first_page(edges, limit).account_ids
        else:
            # The owner sees everyone; others lose whom they block, are blocked by, or mute.
            excluded = (
                state.excluded_for(viewer_id)
                if viewer_id is not None and viewer_id != account.id
                else set()
            )
            page = select_page(edges, rules, limit, ctx.params, excluded)
            account_ids = page.account_ids
            link = link_header(url, rules, ctx.params, limit, page)
    response = json_text_response(200, accounts_text(state, account_ids, ctx.render))
    if link is not None:
        response.headers["Link"] = link
    return _cache_if_unauthenticated(ctx, response)


def followers(ctx: Ctx) -> web.Response:
    """``GET /api/v1/accounts/:id/followers``: newest first, paged as the flavour does."""
    return _collection(ctx, "followers")


def following(ctx: Ctx) -> web.Response:
    """``GET /api/v1/accounts/:id/following``: same rules as followers."""
    return _collection(ctx, "following")
