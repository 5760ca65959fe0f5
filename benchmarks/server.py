"""The benchmark server: Mastodon's followers pagination over a synthetic graph of any size.

It runs in its own process, pinned to one CPU when there are several (the client pins itself to
another), and serves ``GET /api/v1/accounts/:id/followers`` and ``/following`` exactly as
Mastodon paginates them (mastodon-api.md §10.5). Nothing is stored per follower: the k-th
follower of an account (k = 0 is the oldest follow) has the Follow id ``7_000_000 + 3k`` and an
account id and username computed from k, and its Account JSON (§12.1, about 2 KB) is a
pre-rendered byte template with the varying parts substituted, so a page of 80 costs the server
a fraction of a millisecond. Just enough of ``POST /api/v1/apps``, ``POST /oauth/token`` and
``GET /api/v1/apps/verify_credentials`` is served for ``Session(url, app=App(...))`` to work.

Every ``/api`` response carries ``X-RateLimit-*`` headers counted in epoch-aligned fixed windows.
Nothing is refused unless ``--limit-requests`` is given; then the request over the limit gets
Mastodon's 429 (``{"error":"Too many requests"}``, no ``Retry-After``). ``GET /bench/stats``
(outside ``/api``, so never counted) tells how many requests each window served and how many
got a 429.

With ``--origins N`` the same server listens on N ports, N origins on loopback that a
multi-instance crawler sees as N instances (one graph, one rate window, one CPU).

Usage (the first line on stdout is the base URL, with the bound port; with ``--origins`` the N
base URLs separated by spaces)::

    python -m benchmarks.server --port 0 --followers 1000000 --accounts 3
    python -m benchmarks.server --followers 10000,100000,1000000   # account i: the i-th count
    python -m benchmarks.server --followers 100000 --limit-requests 300 --limit-window 30
    python -m benchmarks.server --followers 2000 --accounts 200 --origins 20
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import operator
import os
import re
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta
from urllib.parse import urlencode

from aiohttp import web

__all__ = [
    "Graph",
    "ServerError",
    "follow_id",
    "main",
    "make_app",
    "pin_to_cpu",
    "related_id",
    "related_username",
    "running",
]

DEFAULT_LIMIT = 40  # Mastodon's DEFAULT_ACCOUNTS_LIMIT
MAX_LIMIT = 80
FOLLOW_ID_BASE = 7_000_000
FOLLOW_ID_STEP = 3
# Account ids look like Mastodon's Snowflake ids (18 digits). Each listed account's followers
# and following get their own block of ids, so no two followers of one account share an id.
_ID_BASE = {"followers": 109_000_000_000_000_000, "following": 110_000_000_000_000_000}
_ID_BLOCK = 10**12
_ID_STEP = 7_919
MAX_FOLLOWERS = _ID_BLOCK // _ID_STEP
_UNLIMITED = 1_000_000_000
"""The limit reported when nothing is enforced, so Remaining never tells a client to wait."""

_JSON = "application/json; charset=utf-8"
_MASK64 = (1 << 64) - 1
_RUBY_INT = re.compile(r"\s*([+-]?\d+)")
# Rails escapes these in every JSON document (ActiveSupport's escape_html_entities_in_json).
_JSON_ESCAPES = str.maketrans(
    {"<": "\\u003c", ">": "\\u003e", "&": "\\u0026", "\u2028": "\\u2028", "\u2029": "\\u2029"}
)

_ADJECTIVES = (  # noqa: SIM905 - a word list reads best as words
    "quiet bright amber lucky brave swift calm eager gentle jolly keen lively mellow "
    "noble proud rapid silent sunny tidy vivid witty zesty cosmic dusty fuzzy golden "
    "hidden icy jade lunar misty nimble"
).split()
_NOUNS = (  # noqa: SIM905 - a word list reads best as words
    "otter falcon heron badger lynx marten panda raven salmon tapir walrus yak beetle "
    "comet dune fern grove harbor island juniper kettle lantern meadow nebula orchard "
    "pebble quill river spruce thistle"
).split()
_NOUN_BYTES = [noun.encode() for noun in _NOUNS]
_DOMAINS = ("mastodon.social", "fosstodon.org", "hachyderm.io", "mstdn.jp", "chaos.social")
_NAME_SUFFIXES = (" :blobcat:", "", " 🦦", " (they/them)", "", " ☕ :blobcat:")
_EMOJIS = (("blobcat", "5f1e9a7c3b2d4e6f"), ("flag_eu", "a03c9e1d7b5f2846"))
_NOTES = (
    '<p>Birdwatcher, sourdough baker and occasional <a href="{home}/tags/python" '
    'class="mention hashtag" rel="tag">#<span>Python</span></a> hacker. Café every '
    "morning ☕ :blobcat:</p>",
    "<p>Open source maintainer and cyclist.</p><p>Mostly "
    '<a href="{home}/tags/rust" class="mention hashtag" rel="tag">#<span>Rust</span></a> '
    "and whatever the cat broke today.</p>",
    "<p>Just here for the cat pictures. :blobcat:</p>",
    "<p>Computational linguistics. 日本語もOK</p><p>Photos: "
    '<span class="h-card" translate="no"><a href="https://pixelfed.social/@{name}" '
    'class="u-url mention">@<span>{name}</span></a></span></p>',
)


def follow_id(k: int) -> int:
    """The Follow id of the k-th follow (k = 0 is the oldest); unrelated to any account id."""
    return FOLLOW_ID_BASE + k * FOLLOW_ID_STEP


def related_id(kind: str, account: int, k: int) -> int:
    """The account id of the k-th follower (``kind="followers"``) or followee of ``account``."""
    return _ID_BASE[kind] + account * _ID_BLOCK + k * _ID_STEP


def related_username(k: int) -> str:
    """The username of the k-th follower or followee: distinct for every k."""
    return _username(k).decode()


def _username(k: int) -> bytes:
    return b"%s%d" % (_NOUN_BYTES[k // len(_ADJECTIVES) % len(_NOUNS)], k)


def pin_to_cpu(slot: int) -> int | None:
    """Pin this process to the ``slot``-th CPU it may use, if it may use more than one.

    The server takes slot 0 and the client slot 1, so neither steals the other's CPU. Returns
    the CPU, or ``None`` on a single-CPU machine where pinning would gain nothing.
    """
    allowed = sorted(os.sched_getaffinity(0))
    if len(allowed) < 2:
        return None
    cpu = allowed[slot % len(allowed)]
    os.sched_setaffinity(0, {cpu})
    return cpu


def _ruby_to_i(value: str) -> int:
    # Rails reads these parameters with String#to_i: leading digits, else 0.
    match = _RUBY_INT.match(value)
    return int(match.group(1)) if match else 0


# -- Account JSON --------------------------------------------------------------------------------


def _account_document(variant: int, base: str) -> dict[str, object]:
    """One profile shape (REST::AccountSerializer key order) with ``{{slot}}`` placeholders.

    Variants differ where real accounts do: local or remote, discoverable true, false or null,
    hide_collections null or set, a last status date or none, a role or none.
    """
    local = variant % 2 == 0
    domain = _DOMAINS[variant // 2 % len(_DOMAINS)]
    home = base if local else f"https://{domain}"
    # Remote media is served from the local cache, under the local host.
    media = f"{base}/system/accounts" if local else f"{base}/system/cache/accounts"
    emoji = f"{base}/system/{'' if local else 'cache/'}custom_emojis/images/000/012/345"
    doc: dict[str, object] = {
        "id": "{{id}}",
        "username": "{{username}}",
        "acct": "{{username}}" if local else "{{username}}@" + domain,
        "display_name": "{{display_name}}" + _NAME_SUFFIXES[variant % len(_NAME_SUFFIXES)],
        "locked": variant % 7 == 3,
        "bot": variant % 11 == 5,
        # Only remote accounts can leave it unknown (null).
        "discoverable": (variant % 4 != 1) if local else (True, None, False)[variant % 3],
        "indexable": variant % 3 == 0,
        "group": False,
        "created_at": "{{created}}T00:00:00.000Z",
        "note": _NOTES[variant % len(_NOTES)].format(home=home, name="{{username}}"),
        "url": home + "/@{{username}}",
        "uri": home + "/users/{{username}}",
        "avatar": media + "/avatars/{{id_path}}/original/{{avatar}}.png",
        "avatar_static": media + "/avatars/{{id_path}}/original/{{avatar}}.png",
        "avatar_description": "",
        "header": media + "/headers/{{id_path}}/original/{{header}}.jpeg",
        "header_static": media + "/headers/{{id_path}}/original/{{header}}.jpeg",
        "header_description": "",
        "followers_count": "{{followers_count}}",
        "following_count": "{{following_count}}",
        "statuses_count": "{{statuses_count}}",
        "last_status_at": None if variant % 5 == 4 else "{{last_status}}",
        "hide_collections": (None, None, False, True)[variant % 4],
        "show_media": True,
        "show_media_replies": variant % 3 != 2,
        "show_featured": True,
        # One or two custom emojis, as in real names and notes.
        "emojis": [
            {
                "shortcode": shortcode,
                "url": f"{emoji}/original/{image}.png",
                "static_url": f"{emoji}/static/{image}.png",
                "visible_in_picker": True,
            }
            for shortcode, image in _EMOJIS[: 1 + variant % 2]
        ],
    }
    if local:
        doc["noindex"] = variant % 6 == 2
    doc["feature_approval"] = {"automatic": [], "manual": ["public"], "current_user": "missing"}
    if local:
        moderator = {"id": "3", "name": "Moderator", "color": "#6364ff"}
        doc["roles"] = [moderator] if variant % 8 == 0 else []
    fields: list[dict[str, object]] = [
        {
            "name": "Website",
            "value": '<a href="https://{{username}}.example.net" target="_blank" rel="nofollow '
            'noopener me" translate="no"><span class="invisible">https://</span><span class="">'
            '{{username}}.example.net</span><span class="invisible"></span></a>',
            "verified_at": "2023-04-12T08:15:22.123+00:00",
        },
        {"name": "Pronouns", "value": "they/them", "verified_at": None},
    ]
    if variant % 3 == 0:  # two or three fields
        fields.append({"name": "Location", "value": "Lisbon 🇵🇹", "verified_at": None})
    doc["fields"] = fields
    return doc


# Per-follower values come in two kinds. Those that make each follower distinct (id, the avatar
# path built from it, username) are substituted for every follower. The others (display name,
# dates, counts, file names) cycle every _ROWS followers, so they are substituted once, when the
# _ROWS row templates are built.
_DISTINCT = ("id", "id_path", "username")
_TITLES = [f"{a.title()} {n.title()}" for n, a in itertools.product(_NOUNS, _ADJECTIVES)]
_ROWS = len(_TITLES)  # the title of follower k is _TITLES[k % _ROWS], matching its username
_VARIANTS = 60  # profile shapes, a divisor of _ROWS; each property cycles with its own period
_CREATED = [(date(2016, 3, 16) + timedelta(days=d)).isoformat() for d in range(0, 3200, 3)]
_RECENT = [(date(2025, 1, 1) + timedelta(days=d)).isoformat() for d in range(300)]
_Template = tuple[bytes, Callable[[tuple[bytes, ...]], tuple[bytes, ...]]]


def _serialize(document: dict[str, object]) -> str:
    """The document as Mastodon serializes it, ``%``-escaped, its ``{{slots}}`` left in place."""
    text = json.dumps(document, ensure_ascii=False, separators=(",", ":"))
    text = text.translate(_JSON_ESCAPES).replace("%", "%%")
    return re.sub(r'"\{\{(\w+_count)\}\}"', r"{{\1}}", text)  # counts are numbers, not strings


def _row_values(row: int) -> dict[str, str]:
    # A 64-bit multiplicative mix of the row number stands in for randomness.
    mix = (row * 0x9E3779B97F4A7C15) & _MASK64
    hexes = f"{mix:016x}"
    return {
        "display_name": _TITLES[row],
        "created": _CREATED[mix % len(_CREATED)],
        "last_status": _RECENT[(mix >> 12) % len(_RECENT)],
        "avatar": hexes,
        "header": hexes[8:] + hexes[:8],
        "followers_count": str((mix >> 20) % 4_000),
        "following_count": str((mix >> 32) % 1_500),
        "statuses_count": str((mix >> 44) % 25_000),
    }


def _row_template(text: str, row: int) -> _Template:
    """A positional ``bytes %`` template for one row, and the function that picks its
    arguments, in template order, from the ``_DISTINCT`` values.

    Positional ``%`` formatting is the fastest substitution Python has: about a microsecond
    for a 2 KB account.
    """
    for name, value in _row_values(row).items():
        text = text.replace(f"{{{{{name}}}}}", value)
    order: list[int] = []

    def placeholder(match: re.Match[str]) -> str:
        order.append(_DISTINCT.index(match.group(1)))
        return "%s"

    text = re.sub(r"\{\{(\w+)\}\}", placeholder, text)
    return text.encode(), operator.itemgetter(*order)


class Graph:
    """The synthetic follow graph: accounts ``1..n``, each with a number of followers.

    The following lists have the same lengths as the follower lists (other ids, same Follow-id
    scheme). The row templates are built at the first request for a base URL (URLs in them are
    absolute): about 2 MB, in about 40 ms.
    """

    def __init__(self, counts: Sequence[int]) -> None:
        for count in counts:
            if not 0 <= count <= MAX_FOLLOWERS:
                raise ValueError(f"follower counts must be between 0 and {MAX_FOLLOWERS}")
        self.counts = tuple(counts)
        self._rows: dict[str, list[_Template]] = {}

    def count(self, account: int) -> int | None:
        """How many followers (and followees) ``account`` has; ``None`` if it does not exist."""
        return self.counts[account - 1] if 1 <= account <= len(self.counts) else None

    def render(self, kind: str, account: int, ks: Iterable[int], base: str) -> bytes:
        """The JSON array of the accounts at positions ``ks`` of a list, in that order."""
        rows = self._rows.get(base)
        if rows is None:
            variants = [_serialize(_account_document(v, base)) for v in range(_VARIANTS)]
            rows = [_row_template(variants[row % _VARIANTS], row) for row in range(_ROWS)]
            self._rows[base] = rows
        first = _ID_BASE[kind] + account * _ID_BLOCK
        parts = []
        for k in ks:
            digits = b"%d" % (first + k * _ID_STEP)
            # Mastodon's media paths split the 18-digit id into groups of three.
            id_path = b"%s/%s/%s/%s/%s/%s" % (
                digits[0:3],
                digits[3:6],
                digits[6:9],
                digits[9:12],
                digits[12:15],
                digits[15:],
            )
            template, pick = rows[k % _ROWS]
            parts.append(template % pick((digits, id_path, _username(k))))
        return b"[" + b",".join(parts) + b"]"


# -- rate limits ---------------------------------------------------------------------------------

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class RateWindow:
    """Rack::Attack's fixed window, aligned on the epoch, counting every ``/api`` request.

    It also keeps the benchmark's tally: requests served per window (window ``w`` runs from
    ``w * period`` to ``(w + 1) * period`` seconds after the epoch) and requests refused.
    """

    def __init__(self, limit: int | None, period: int) -> None:
        self.enforced = limit is not None
        self.limit = _UNLIMITED if limit is None else limit
        self.period = period
        self._window = -1
        self._count = 0
        self.served: dict[int, int] = {}
        self.refused = 0

    def hit(self) -> tuple[bool, dict[str, str]]:
        """Count a request: whether it is over the limit, and the ``X-RateLimit-*`` headers."""
        now_us = time.time_ns() // 1_000
        now_s = now_us // 1_000_000
        window = now_s // self.period
        if window != self._window:
            self._window, self._count = window, 0
        self._count += 1
        # Mastodon: now + (period - now.to_i % period), so the fraction is the request time's.
        reset = _EPOCH + timedelta(
            microseconds=now_us + (self.period - now_s % self.period) * 1_000_000
        )
        headers = {
            "X-RateLimit-Limit": str(self.limit),
            "X-RateLimit-Remaining": str(max(self.limit - self._count, 0)),
            "X-RateLimit-Reset": reset.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        }
        limited = self.enforced and self._count > self.limit
        if limited:
            self.refused += 1
        else:
            self.served[window] = self.served.get(window, 0) + 1
        return limited, headers

    def stats(self) -> dict[str, object]:
        """The tally, as ``GET /bench/stats`` shows it."""
        return {
            "limit": self.limit if self.enforced else None,
            "period": self.period,
            "served": {str(window): count for window, count in sorted(self.served.items())},
            "refused": self.refused,
        }


# -- the application -----------------------------------------------------------------------------

GRAPH = web.AppKey("graph", Graph)
WINDOW = web.AppKey("window", RateWindow)
APPS = web.AppKey("apps", dict[str, dict[str, object]])
TOKENS = web.AppKey("tokens", dict[str, dict[str, object]])

_VAPID_KEY = "BMAIjoaMYTDbJtfrfocuzO8pzDHI47dzmw0rha6Y="
_request_ids = itertools.count(1)


def _json(status: int, document: object, headers: dict[str, str] | None = None) -> web.Response:
    body = json.dumps(document, separators=(",", ":")).encode()
    headers = {"Content-Type": _JSON, **(headers or {})}
    return web.Response(status=status, body=body, headers=headers)


def _invalid_token() -> web.Response:
    return _json(401, {"error": "The access token is invalid"})


def _bearer(request: web.Request) -> str | None:
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" else None


@web.middleware
async def _rate_limit(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    if not request.path.startswith("/api/"):
        return await handler(request)
    limited, headers = request.app[WINDOW].hit()
    if limited:
        # Rack::Attack's throttled responder: plain application/json, no Retry-After.
        headers["Content-Type"] = "application/json"
        return _json(429, {"error": "Too many requests"}, headers)
    response = await handler(request)
    response.headers.update(headers)
    response.headers["X-Request-Id"] = f"00000000-0000-4000-8000-{next(_request_ids):012x}"
    return response


async def _register(request: web.Request) -> web.Response:
    """``POST /api/v1/apps``: a CredentialApplication (mastodon-api.md §2.1)."""
    form = await request.post()
    name = str(form.get("client_name", "")).strip()
    if not name:
        return _json(422, {"error": "Validation failed: Application name can't be blank"})
    redirect_uri = str(form.get("redirect_uris", "urn:ietf:wg:oauth:2.0:oob"))
    website = str(form.get("website", "")).strip()
    apps = request.app[APPS]
    app: dict[str, object] = {
        "id": str(len(apps) + 1),
        "name": name,
        "website": website or None,
        "scopes": str(form.get("scopes", "read")).split() or ["read"],
        "redirect_uris": redirect_uri.split(),
        "vapid_key": _VAPID_KEY,
        "redirect_uri": redirect_uri,
    }
    client_id = secrets.token_urlsafe(32)
    client_secret = secrets.token_urlsafe(32)
    apps[client_id] = {**app, "client_secret": client_secret}
    return _json(
        200,
        {
            **app,
            "client_id": client_id,
            "client_secret": client_secret,
            "client_secret_expires_at": 0,
        },
    )


async def _token(request: web.Request) -> web.Response:
    """``POST /oauth/token`` with ``grant_type=client_credentials`` (§3.4, §3.5)."""
    form = await request.post()
    no_store = {"Cache-Control": "no-store, no-cache", "Pragma": "no-cache"}
    app = request.app[APPS].get(str(form.get("client_id", "")))
    if app is None or app["client_secret"] != form.get("client_secret"):
        return _json(
            401,
            {
                "error": "invalid_client",
                "error_description": "Client authentication failed due to unknown client, no "
                "client authentication included, or unsupported authentication method.",
            },
            no_store,
        )
    if form.get("grant_type") != "client_credentials":
        return _json(
            400,
            {
                "error": "unsupported_grant_type",
                "error_description": "The authorization grant type is not supported by the "
                "authorization server.",
            },
            no_store,
        )
    token = secrets.token_urlsafe(32)
    request.app[TOKENS][token] = app
    scope = str(form.get("scope", "")).strip() or "read"
    document = {
        "access_token": token,
        "token_type": "Bearer",
        "scope": scope,
        "created_at": int(time.time()),
    }
    return _json(200, document, no_store)


async def _verify_app(request: web.Request) -> web.Response:
    """``GET /api/v1/apps/verify_credentials``: the token's app, without its credentials."""
    app = request.app[TOKENS].get(_bearer(request) or "")
    if app is None:
        return _invalid_token()
    return _json(200, {key: value for key, value in app.items() if key != "client_secret"})


def _param(request: web.Request, name: str) -> str | None:
    values = request.query.getall(name, [])
    return values[-1] if values else None  # Rails keeps the last of repeated keys


async def _follow_list(request: web.Request, kind: str) -> web.Response:
    token = _bearer(request)
    if token is not None and token not in request.app[TOKENS]:
        return _invalid_token()
    raw_id = request.match_info["id"]
    account = _ruby_to_i(raw_id)
    total = request.app[GRAPH].count(account)
    if total is None:
        return _json(404, {"error": "Record not found"})
    raw_limit = _param(request, "limit")
    limit = DEFAULT_LIMIT if raw_limit is None else min(abs(_ruby_to_i(raw_limit)), MAX_LIMIT)
    # ORDER BY follows.id DESC LIMIT n, with id < max_id and id > since_id: as positions k,
    # the page runs down from the last k below max_id, stopping above since_id.
    high, low = total, 0
    max_id, since_id = _param(request, "max_id"), _param(request, "since_id")
    if max_id and max_id.strip():
        high = min(total, max(0, -((FOLLOW_ID_BASE - _ruby_to_i(max_id)) // FOLLOW_ID_STEP)))
    if since_id and since_id.strip():
        low = max(0, (_ruby_to_i(since_id) - FOLLOW_ID_BASE) // FOLLOW_ID_STEP + 1)
    ks = range(high - 1, max(low, high - limit) - 1, -1)
    base = f"{request.scheme}://{request.host}"
    headers = {
        "Content-Type": _JSON,
        "Cache-Control": "private, no-store"
        if "Authorization" in request.headers
        else "public, max-age=15, stale-while-revalidate=30, stale-if-error=86400",
        "Vary": "Authorization, Origin",
    }
    if ks:
        url = f"{base}/api/v1/accounts/{raw_id}/{kind}?"
        carried = {} if raw_limit is None else {"limit": raw_limit}
        links = []
        if len(ks) == limit:
            query = urlencode(sorted({**carried, "max_id": str(follow_id(ks[-1]))}.items()))
            links.append(f'<{url}{query}>; rel="next"')
        query = urlencode(sorted({**carried, "since_id": str(follow_id(ks[0]))}.items()))
        links.append(f'<{url}{query}>; rel="prev"')
        headers["Link"] = ", ".join(links)
    body = request.app[GRAPH].render(kind, account, ks, base)
    return web.Response(body=body, headers=headers)


async def _followers(request: web.Request) -> web.Response:
    return await _follow_list(request, "followers")


async def _following(request: web.Request) -> web.Response:
    return await _follow_list(request, "following")


async def _stats(request: web.Request) -> web.Response:
    """``GET /bench/stats``: requests served per rate window and refused with a 429."""
    return _json(200, request.app[WINDOW].stats())


def make_app(graph: Graph, *, limit: int | None = None, window: int = 300) -> web.Application:
    """The server for ``graph``; ``limit`` requests per ``window`` seconds are enforced if set."""
    app = web.Application(middlewares=[_rate_limit])
    app[GRAPH] = graph
    app[WINDOW] = RateWindow(limit, window)
    app[APPS] = {}
    app[TOKENS] = {}
    app.router.add_post("/api/v1/apps", _register)
    app.router.add_post("/oauth/token", _token)
    app.router.add_get("/api/v1/apps/verify_credentials", _verify_app)
    app.router.add_get("/api/v1/accounts/{id}/followers", _followers)
    app.router.add_get("/api/v1/accounts/{id}/following", _following)
    app.router.add_get("/bench/stats", _stats)
    return app


async def _serve(app: web.Application, host: str, ports: Sequence[int]) -> None:
    # No access log: formatting a line per request would cost more than rendering the page.
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    try:
        for port in ports:
            await web.TCPSite(runner, host, port).start()
        urls = []
        for address in runner.addresses:
            bound_host, bound_port = address[:2]
            shown = f"[{bound_host}]" if ":" in bound_host else bound_host
            urls.append(f"http://{shown}:{bound_port}")
        print(" ".join(urls), flush=True)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        await stop.wait()
    finally:
        await runner.cleanup()


class ServerError(Exception):
    """The benchmark server process did not start."""


@contextmanager
def running(*options: str) -> Iterator[tuple[list[str], int]]:
    """Run the server in its own process with these command-line options.

    Yields its base URLs (one per origin) and its process id; stops it on exit.
    """
    command = [sys.executable, "-m", "benchmarks.server", "--port", "0", *options]
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    server = subprocess.Popen(command, cwd=root, stdout=subprocess.PIPE, text=True)  # noqa: S603 - our own interpreter and module
    try:
        assert server.stdout is not None
        urls = server.stdout.readline().split()
        if not urls:
            raise ServerError(f"the benchmark server did not start ({' '.join(options)})")
        yield urls, server.pid
    finally:
        server.terminate()
        server.wait(timeout=10)


def main(argv: Sequence[str] | None = None) -> None:
    """Parse the options, pin to a CPU and serve until SIGINT or SIGTERM."""
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.server",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port (the default)")
    parser.add_argument(
        "--origins",
        type=int,
        default=1,
        help="listen on this many ports (from --port on, or free ones): one origin each",
    )
    parser.add_argument(
        "--followers",
        default="1000000",
        help="followers per account, or a comma-separated count for each account in turn",
    )
    parser.add_argument(
        "--accounts", type=int, help="how many accounts have the single --followers count"
    )
    parser.add_argument(
        "--limit-requests", type=int, help="enforce this many /api requests per window"
    )
    parser.add_argument("--limit-window", type=int, default=300, help="window length in seconds")
    options = parser.parse_args(argv)
    try:
        counts = [int(count) for count in options.followers.split(",")]
    except ValueError:
        parser.error(f"--followers takes numbers separated by commas, not {options.followers!r}")
    if options.accounts is not None:
        if len(counts) != 1 or options.accounts < 1:
            parser.error("--accounts needs a single --followers count and a positive number")
        counts *= options.accounts
    if options.limit_window < 1:
        parser.error("--limit-window must be at least 1 second")
    if options.limit_requests is not None and options.limit_requests < 1:
        parser.error("--limit-requests must be at least 1")
    if options.origins < 1:
        parser.error("--origins must be at least 1")
    try:
        graph = Graph(counts)
    except ValueError as exc:
        parser.error(str(exc))
    cpu = pin_to_cpu(0)
    if cpu is not None:
        print(f"benchmark server pinned to CPU {cpu}", file=sys.stderr)
    app = make_app(graph, limit=options.limit_requests, window=options.limit_window)
    first = options.port
    ports = [first + i if first else 0 for i in range(options.origins)]
    asyncio.run(_serve(app, options.host, ports))


if __name__ == "__main__":
    main()
