"""WebFinger and host-meta: how a handle leads to its account (federation.md §1.1-§1.3).

``/.well-known/webfinger?resource=`` answers a JRD (or, on Akkoma, XRD when asked) whose
``self`` link is the actor URI; the error statuses differ per server (§1.1 table).
``/.well-known/host-meta`` holds the ``lrdd`` template clients fall back to when WebFinger
says 404. With ``webfinger_via_host_meta_only`` the server answers WebFinger with 404 and the
template leads to :data:`LRDD_PATH` instead, as some servers (Hubzilla's ``/xrd``) do.
"""

from __future__ import annotations

from urllib.parse import urlsplit
from xml.sax.saxutils import escape, quoteattr

from aiohttp import web

from ._accounts import answer
from ._context import Ctx, Halt
from ._flavors import Answer
from ._http import json_response
from ._json import actor_uri, profile_url
from ._state import Account

__all__ = ["LRDD_PATH", "host_meta", "lrdd", "webfinger"]

LRDD_PATH = "/xrd"
"""Where host-meta's template points when WebFinger is served only through it."""

_XRD_NS = "http://docs.oasis-open.org/ns/xri/xrd-1.0"
_AS_LD = 'application/ld+json; profile="https://www.w3.org/ns/activitystreams"'
_PROFILE_PAGE = "http://webfinger.net/rel/profile-page"
# GoToSocial's offers for content negotiation (gts: internal/api/util/negotiate.go).
_JSON_OFFERS = frozenset({"application/jrd+json", "application/json", "application/*", "*/*"})
_NOT_ACCEPTABLE = Answer(
    status=406,
    body=b'{"error":"Not Acceptable: this endpoint offers application/jrd+json, application/json"}',
    content_type="application/json; charset=utf-8",
)


def _xrd(body: str) -> web.Response:
    text = f'<?xml version="1.0" encoding="UTF-8"?>\n<XRD xmlns="{_XRD_NS}">\n{body}</XRD>\n'
    return web.Response(
        status=200,
        body=text.encode(),
        headers={"Content-Type": "application/xrd+xml; charset=utf-8"},
    )


def host_meta(ctx: Ctx) -> web.Response:
    """``GET /.well-known/host-meta``: the XRD with the ``lrdd`` template (§1.1 fallback)."""
    if ctx.host_meta_only:
        template = f"{ctx.base}{LRDD_PATH}?uri={{uri}}"
    else:
        template = f"{ctx.base}/.well-known/webfinger?resource={{uri}}"
    return _xrd(f'  <Link rel="lrdd" template={quoteattr(template)}/>\n')


def webfinger(ctx: Ctx) -> web.Response:
    """``GET /.well-known/webfinger?resource=``: the JRD of a local account."""
    if ctx.host_meta_only:
        raise Halt(web.Response(status=404))
    return _answer(ctx, ctx.param("resource"))


def lrdd(ctx: Ctx) -> web.Response:
    """:data:`LRDD_PATH` ``?uri=``: the same JRD, reachable only through host-meta."""
    if not ctx.host_meta_only:
        raise Halt(web.Response(status=404))
    return _answer(ctx, ctx.param("uri"))


def _acceptable(accept: str) -> bool:
    if not accept.strip():
        return True  # no Accept: the first offer
    ranges = {part.split(";", 1)[0].strip().lower() for part in accept.split(",")}
    return bool(ranges & _JSON_OFFERS)


def _local_names(ctx: Ctx) -> set[str]:
    # The resource may name LOCAL_DOMAIN or WEB_DOMAIN (mastodon: app/lib/webfinger_resource.rb).
    names = {ctx.local_domain, ctx.web_domain}
    if ctx.host.lower().split(":")[0] in names:
        names.add(ctx.host.lower())
    return names


def _username(ctx: Ctx, resource: str | None) -> str:
    """The local username a resource names; raises the flavour's error answer otherwise."""
    rules = ctx.flavor.webfinger
    resource = (resource or "").strip()
    if resource.lower().startswith(("http://", "https://")):
        # A profile page (/@user) or actor URL (/users/user) on this server.
        parts = urlsplit(resource)
        if (parts.netloc or "").lower() not in _local_names(ctx):
            raise Halt(answer(rules.foreign_domain))
        path = parts.path.rstrip("/")
        for prefix in ("/@", "/users/"):
            if path.startswith(prefix) and "/" not in path[len(prefix) :]:
                return path[len(prefix) :]
        raise Halt(answer(rules.unknown_user))
    if "@" not in resource:
        raise Halt(answer(rules.invalid))
    username, _, domain = resource.removeprefix("acct:").partition("@")
    if domain.lower() not in _local_names(ctx):
        raise Halt(answer(rules.foreign_domain))
    return username


def _find(ctx: Ctx, username: str) -> Account:
    rules = ctx.flavor.webfinger
    account = ctx.state.find_account(username, None) if username else None
    if account is None:
        raise Halt(answer(rules.unknown_user))
    if account.deleted:
        raise Halt(answer(rules.deleted))
    if account.suspended and rules.suspended is not None:
        raise Halt(answer(rules.suspended))
    return account


def _links(ctx: Ctx, account: Account) -> tuple[list[str], list[dict[str, str]]]:
    """Aliases and links in the flavour's shape (federation.md §1.2)."""
    base = ctx.base
    profile = profile_url(account, base)
    actor = actor_uri(account, base)
    self_link = {"rel": "self", "type": "application/activity+json", "href": actor}
    page = {"rel": _PROFILE_PAGE, "type": "text/html", "href": profile}
    style = ctx.flavor.webfinger.style
    if style == "gotosocial":
        return [actor, profile], [page, self_link]
    if style == "akkoma":
        return [actor], [
            {"rel": _PROFILE_PAGE, "type": "text/html", "href": actor},
            self_link,
            {"rel": "self", "type": _AS_LD, "href": actor},
            {
                "rel": "http://ostatus.org/schema/1.0/subscribe",
                "template": f"{base}/ostatus_subscribe?acct={{uri}}",
            },
        ]
    if style == "pixelfed":
        atom = {
            "rel": "http://schemas.google.com/g/2010#updates-from",
            "type": "application/atom+xml",
            "href": f"{base}/users/{account.username}.atom",
        }
        return [profile, actor], [page, atom, self_link]
    links = [
        page,
        self_link,
        {
            "rel": "http://ostatus.org/schema/1.0/subscribe",
            "template": f"{base}/authorize_interaction?uri={{uri}}",
        },
    ]
    if ctx.version >= (4, 6):
        links += [
            {
                "rel": "https://w3id.org/fep/3b86/Create",
                "template": f"{base}/share?text={{content}}",
            },
            {
                "rel": "https://w3id.org/fep/3b86/Object",
                "template": f"{base}/authorize_interaction?uri={{object}}",
            },
        ]
    # The avatar link is left out when the API is closed to anonymous readers.
    if not ctx.limited_federation:
        links.append(
            {
                "rel": "http://webfinger.net/rel/avatar",
                "type": "image/png",
                "href": f"{base}/avatars/original/missing.png",
            }
        )
    return [profile, actor], links


def _wants_xrd(accept: str) -> bool:
    first = accept.split(",", 1)[0].split(";", 1)[0].strip().lower()
    return first in ("application/xrd+xml", "application/xml", "text/xml")


def _answer(ctx: Ctx, resource: str | None) -> web.Response:
    rules = ctx.flavor.webfinger
    accept = ctx.headers.get("Accept", "")
    if rules.json_only and not _acceptable(accept):
        raise Halt(answer(_NOT_ACCEPTABLE))
    account = _find(ctx, _username(ctx, resource))
    # The server's casing of the username is canonical (federation.md §1.2).
    subject = f"acct:{account.username}@{ctx.local_domain}"
    aliases, links = _links(ctx, account)
    if rules.xrd and _wants_xrd(accept):
        lines = [f"  <Subject>{escape(subject)}</Subject>\n"]
        lines += [f"  <Alias>{escape(alias)}</Alias>\n" for alias in aliases]
        for link in links:
            attributes = " ".join(f"{key}={quoteattr(value)}" for key, value in link.items())
            lines.append(f"  <Link {attributes}/>\n")
        return _xrd("".join(lines))
    document = {"subject": subject, "aliases": aliases, "links": links}
    response = json_response(200, document)
    response.headers["Content-Type"] = "application/jrd+json; charset=utf-8"
    if ctx.flavor.name == "mastodon":
        response.headers["Cache-Control"] = "max-age=259200, public"
    return response
