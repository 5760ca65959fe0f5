"""The :class:`FakeMastodon` server: routing, Rack-level behaviour and the public helpers."""

from __future__ import annotations

import asyncio
import base64
import concurrent.futures
import contextlib
import ipaddress
import random
import re
import secrets
import threading
import time
import urllib.parse
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from datetime import UTC, datetime
from email.utils import formatdate

import attrs
from aiohttp import web
from yarl import URL

from . import _accounts, _authorize, _bot, _instance, _oauth, _webfinger
from ._context import Ctx, Halt, presented_token
from ._faults import Chaos, Fault
from ._flavors import FLAVORS, FlavorName, follow_ulid
from ._http import (
    BodyError,
    Params,
    RecordedRequest,
    json_response,
    not_found_page,
    parse_body,
    parse_pairs,
    scalar,
)
from ._json import V4_4, V4_6, Render, application_document, version_tuple
from ._posts import Notice, Post, notification_document, status_document
from ._ratelimit import (
    Limits,
    Throttle,
    ThrottleHit,
    Throttler,
    format_reset,
    rate_limit_headers,
)
from ._state import (
    DEFAULT_PASSWORD,
    Account,
    App,
    Emoji,
    Field,
    Role,
    State,
    Token,
    TokenPolicy,
    normalize_scopes,
)
from ._streaming import PERSONAL, StreamHub, stream_key
from ._validation import OOB_URI

__all__ = ["FakeMastodon"]

Handler = Callable[[Ctx], web.Response]

AKKOMA_TOKEN_LIFETIME = 3600.0
# Endpoints outside /api that Api::BaseController serves, so they see the bearer token.
_TOKEN_PATHS = ("/api", "/oauth/userinfo")

# What a handle domain's web server redirects to the web domain (federation.md §1.3).
_REDIRECTED_PATHS = ("/.well-known/webfinger", "/.well-known/host-meta", "/.well-known/nodeinfo")

# Any of these makes a request count against Rack::Attack's paging throttles.
_PAGING_PARAMS = ("page", "min_id", "max_id", "since_id")


@attrs.frozen(kw_only=True)
class _Route:
    method: str
    pattern: re.Pattern[str]
    handler: Handler
    # Served even to anonymous readers in limited-federation mode (skip_before_action
    # :require_authenticated_user!).
    public: bool


def _route(method: str, path: str, handler: Handler, *, public: bool = False) -> _Route:
    # ":id" segments stop at "/" and "." like Rails' default segment constraint.
    pattern = re.compile(re.sub(r":(\w+)", r"(?P<\1>[^/.]+)", re.escape(path)) + "/?")
    return _Route(method=method, pattern=pattern, handler=handler, public=public)


# First match wins, so the fixed account paths precede /accounts/:id (as in config/routes).
_ROUTES = (
    _route("GET", "/oauth/authorize", _authorize.authorize_form),
    _route("POST", "/oauth/authorize", _authorize.authorize_submit),
    _route("POST", "/oauth/token", _oauth.token),
    _route("POST", "/oauth/revoke", _oauth.revoke),
    _route("GET", "/oauth/userinfo", _authorize.userinfo),
    _route("POST", "/oauth/userinfo", _authorize.userinfo),
    _route("GET", "/.well-known/oauth-authorization-server", _authorize.oauth_metadata),
    _route("GET", "/.well-known/webfinger", _webfinger.webfinger),
    _route("GET", "/.well-known/host-meta", _webfinger.host_meta),
    _route("GET", _webfinger.LRDD_PATH, _webfinger.lrdd),
    _route("GET", "/.well-known/nodeinfo", _instance.nodeinfo_index),
    *(
        _route("GET", path, _instance.nodeinfo_document)
        for path in sorted({path for f in FLAVORS.values() for _, path in f.software.nodeinfo})
    ),
    _route("GET", "/api/v1/instance", _instance.instance_v1, public=True),
    _route("GET", "/api/v2/instance", _instance.instance_v2, public=True),
    _route("POST", "/api/v1/apps", _oauth.create_app, public=True),
    _route("GET", "/api/v1/apps/verify_credentials", _oauth.verify_app),
    _route("GET", "/api/v1/accounts/verify_credentials", _accounts.verify_credentials),
    _route("GET", "/api/v1/accounts/lookup", _accounts.lookup),
    _route("GET", "/api/v1/accounts/relationships", _accounts.relationships),
    _route("GET", "/api/v1/accounts/:id", _accounts.show),
    _route("GET", "/api/v1/accounts/:id/followers", _accounts.followers),
    _route("GET", "/api/v1/accounts/:id/following", _accounts.following),
    *(_route(method, path, handler) for method, path, handler in _bot.ROUTES),
)


class _Injection:
    __slots__ = ("fault", "method", "passes", "path", "remaining")

    def __init__(self, path: str, fault: Fault, method: str | None, times: int, after: int) -> None:
        self.path = path
        self.fault = fault
        self.method = method
        self.remaining = times
        self.passes = after  # matching requests still to let through first


def _client_ip(remote: str | None) -> str:
    # Rack::Attack keys IPv6 clients by their /64.
    if not remote:
        return "unknown"
    try:
        address = ipaddress.ip_address(remote)
    except ValueError:
        return remote
    if address.version == 6:
        return str(ipaddress.ip_network(f"{address}/64", strict=False).network_address)
    return str(address)


def _midnight(now: float) -> str:
    day = datetime.fromtimestamp(now, UTC).date()
    return f"{day.isoformat()}T00:00:00.000Z"


def _vapid_key() -> str:
    # An uncompressed P-256 point is 65 bytes starting with 0x04; only the shape matters here.
    raw = b"\x04" + secrets.token_bytes(64)
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _split_host(host: str) -> tuple[str, str]:
    """``("alpha.example", ":8080")`` from a Host header (no port: ``""``)."""
    url = URL(f"http://{host}")
    port = url.explicit_port
    return (url.host or "").lower(), "" if port is None else f":{port}"


def _not_found(request: web.Request) -> web.Response:
    return not_found_page(request.headers)


def _apply_legacy_limits(
    limits: Limits,
    *,
    rate: tuple[int | None, float | None],
    paging: tuple[int | None, float | None],
    registrations: tuple[int | None, float | None],
) -> Limits:
    """``limits`` with the older ``*_limit``/``*_period`` keywords laid over it."""

    def over(
        current: tuple[int, float], given: tuple[int | None, float | None]
    ) -> tuple[int, float]:
        return (
            current[0] if given[0] is None else given[0],
            current[1] if given[1] is None else given[1],
        )

    paging_rate: tuple[int, float] | None = None
    if limits.paging is not None:
        paging_rate = over(limits.paging, paging)
    elif paging[0] is not None:
        # The paging throttle was off; a limit turns it on, with Mastodon's 15 minutes.
        paging_rate = over((paging[0], 900.0), paging)
    return attrs.evolve(
        limits,
        per_token=over(limits.per_token, rate),
        per_ip=over(limits.per_ip, rate),
        paging=paging_rate,
        app_registrations=over(limits.app_registrations, registrations),
    )


class FakeMastodon:
    """An in-process Mastodon (>= 4.4) speaking the real HTTP API, for tests.

    It implements app registration, the ``/oauth/authorize`` sign-in page (and
    :meth:`authorize` for tests without a browser), OAuth tokens (client credentials,
    authorization code with PKCE, refresh where tokens expire), revocation, the RFC 8414
    metadata document, userinfo, account show/lookup/verify_credentials/relationships and
    followers/following with Mastodon's pagination, rate-limit headers and error bodies,
    and the discovery documents a crawler reads: WebFinger, host-meta, NodeInfo and
    ``/api/v1|v2/instance``. All ids are strings, as in the API. ``flavor="gotosocial"``,
    ``"akkoma"``, ``"pixelfed"`` or ``"sharkey"`` switches paging, account-read
    authorization, rate limiting and those documents to those servers' rules;
    :meth:`inject`, :meth:`chaos` and :meth:`rewrite_links` make it misbehave on purpose.
    Several instances that federate: :class:`FakeFediverse`.

    Example::

        server = FakeMastodon()
        alice = server.add_account("alice", display_name="Alice")
        server.add_followers(alice, 100)
        token = server.issue_user_token(alice, scopes="read")

        async with server.run() as url:
            async with aiohttp.ClientSession() as http:
                headers = {"Authorization": f"Bearer {token}"}
                async with http.get(f"{url}/api/v1/accounts/{alice}/followers",
                                    headers=headers) as response:
                    page = await response.json()   # 40 accounts, newest follow first

        assert server.count("GET", "/api/v1/accounts/") == 1

    Everything is thread-safe, so the setup helpers may be called while
    :meth:`run_in_thread` serves requests.
    """

    def __init__(
        self,
        *,
        flavor: FlavorName = "mastodon",
        limits: Limits | None = None,
        enforce_rate_limit: bool = False,
        clock: Callable[[], float] = time.time,
        version: str = "4.5.0",
        gts_epoch_reset: bool = False,
        registration_limit: int | None = None,
        registration_period: float | None = None,
        rate_limit: int | None = None,
        rate_period: float | None = None,
        paging_limit: int | None = None,
        paging_period: float | None = None,
        token_lifetime: float | None = None,
        domain: str | None = None,
        web_domain: str | None = None,
        limited_federation: bool = False,
        webfinger_via_host_meta_only: bool = False,
    ) -> None:
        """Configure the server; nothing listens until :meth:`run` or :meth:`run_in_thread`.

        ``flavor`` picks whose behaviour followers/following paging, authorization of the
        account reads and rate limiting follow: ``"mastodon"``, ``"gotosocial"`` (user
        tokens only, ULID Follow cursors, ``min_id``, links on every non-empty page, a
        per-IP limiter; ``gts_epoch_reset`` gives the epoch-seconds reset of GoToSocial
        before 0.12) or ``"akkoma"`` (20/40 limits, account-id cursors, 403 auth errors, no
        rate-limit headers). Flavours also decide the sign-in extras: GoToSocial has no
        metadata document or userinfo; Akkoma answers the metadata path with an HTML page,
        has no userinfo, ignores PKCE, revokes without client authentication and issues
        expiring tokens with refresh tokens (see ``token_lifetime``). Everything else
        (apps, token errors, entity shapes) is Mastodon's.

        ``limits`` sizes the throttles (:class:`Limits`, Mastodon's by default). The
        ``X-RateLimit-*`` headers show the matching throttle with the least room left;
        only with ``enforce_rate_limit`` does an exhausted one answer 429 (the app
        registration throttle always does). Windows read ``clock`` (epoch seconds), so tests
        move time instead of sleeping. The older keywords still work and override ``limits``:
        ``rate_limit``/``rate_period`` size ``per_token`` and ``per_ip``, ``paging_limit``/
        ``paging_period`` ``paging``, ``registration_limit``/``registration_period``
        ``app_registrations``.

        ``version`` selects Mastodon's response shapes: ``"4.4.x"``, ``"4.5.x"`` or
        ``"4.6.x"`` (4.6's new Account, Relationship and scope additions, except
        ``feature_approval``).

        ``token_lifetime`` (seconds, by ``clock``) makes access tokens expire and come with a
        ``refresh_token`` and ``expires_in``, renewable with ``grant_type=refresh_token``.
        The ``"akkoma"`` flavour always works this way (an hour unless given; real Akkoma
        defaults to 100 years): expired tokens count as no token (403 "Invalid
        credentials." where a user is needed), a refresh deletes the old token and a bad
        refresh token gets 400 ``{"error":"Invalid credentials"}``. On ``"mastodon"`` it
        models Doorkeeper with ``access_token_expires_in`` and ``use_refresh_token`` (which
        Mastodon itself never enables): 401 "The access token expired", ``invalid_grant``
        for a used or unknown refresh token, no refresh token for client credentials.
        Without it Mastodon's tokens never expire and ``refresh_token`` is an
        ``unsupported_grant_type``.

        ``flavor`` also picks what the federation endpoints answer (federation.md §1, §4):
        WebFinger's errors and JRD shape, the NodeInfo paths and ``software`` names, the
        instance ``version`` strings. ``"pixelfed"`` and ``"sharkey"`` model those servers'
        paging quirks (federation.md §4.3): Pixelfed pages with an opaque ``cursor=``
        (``max_id`` is ignored), swaps the rels (older items under ``rel="prev"``), wants a
        user token (403) and has no lookup route; Sharkey's shim forwards only ``limit``
        (default 10, max 100), so every request gets the first page, and sends no ``Link``.

        ``domain`` is Mastodon's ``LOCAL_DOMAIN`` (GoToSocial's ``account-domain``): the
        domain of local handles, WebFinger subjects and the instance's ``domain``.
        ``web_domain`` (``WEB_DOMAIN``, GoToSocial's ``host``) is where the API lives when
        it differs (federation.md §1.3): requests reaching the server under the handle
        domain get a 301 to ``web_domain`` for ``/.well-known/webfinger``, ``host-meta`` and
        ``nodeinfo``, and a 404 for everything else. Without them the host a request names
        is both.

        ``limited_federation`` is Mastodon's ``LIMITED_FEDERATION_MODE`` (or
        ``DISALLOW_UNAUTHENTICATED_API_ACCESS``): anonymous and app-token requests to the
        API get 401 ``{"error":"This method requires an authenticated user"}``, except
        ``/api/v1|v2/instance`` and ``POST /api/v1/apps``; user tokens work.
        ``webfinger_via_host_meta_only`` makes WebFinger answer 404 so that clients must
        follow host-meta's ``lrdd`` template, which leads to ``/xrd?uri=``.

        Example::

            FakeMastodon(flavor="gotosocial", limits=Limits(per_ip=(30, 60.0)), clock=clock)
            FakeMastodon(flavor="akkoma", token_lifetime=300, clock=clock)
            FakeMastodon(domain="split.example", web_domain="social.split.example")
            FakeMastodon(limited_federation=True)
        """
        if flavor not in FLAVORS:
            raise ValueError(f"flavor {flavor!r}: expected one of {', '.join(FLAVORS)}")
        if web_domain is not None and domain is None:
            raise ValueError("web_domain needs domain (the handle domain it serves)")
        if limited_federation and flavor != "mastodon":
            raise ValueError("limited_federation is Mastodon's mode: use flavor='mastodon'")
        self._domain = domain.lower() if domain else None
        self._web_domain = web_domain.lower() if web_domain else None
        self._limited_federation = limited_federation
        self._host_meta_only = webfinger_via_host_meta_only
        self._flavor = FLAVORS[flavor]
        self._reset_format = (
            self._flavor.rate_limits.reset_format if self._flavor.rate_limits else "iso_us"
        )
        if gts_epoch_reset:
            if flavor != "gotosocial":
                raise ValueError("gts_epoch_reset only applies to flavor='gotosocial'")
            self._reset_format = "epoch"
        self._limits = _apply_legacy_limits(
            limits or Limits(),
            rate=(rate_limit, rate_period),
            paging=(paging_limit, paging_period),
            registrations=(registration_limit, registration_period),
        )
        self.enforce_rate_limit = enforce_rate_limit
        self._version_text = version
        self.requests: list[RecordedRequest] = []
        """Every request received, in arrival order (faulted ones included)."""
        self.url: str | None = None
        """The base URL while :meth:`run` or :meth:`run_in_thread` is active."""
        self.faults_injected: Counter[str] = Counter()
        """Faults served so far by kind, scripted and random alike, e.g. ``{"html_502": 3}``."""
        self.throttled = 0
        """How many 429s the rate limiter has answered (injected ones not included)."""
        self._clock = clock
        self._version = version_tuple(version)
        if self._version < V4_4:
            raise ValueError(f"version {version!r}: only Mastodon 4.4 and later are modelled")
        self._known_scopes = _oauth.BASE_SCOPES | (
            _oauth.COLLECTION_SCOPES if self._version >= V4_6 else frozenset()
        )
        self._token_policy: TokenPolicy | None = None
        if flavor == "akkoma":
            self._token_policy = TokenPolicy(
                lifetime=token_lifetime or AKKOMA_TOKEN_LIFETIME, style="akkoma"
            )
        elif token_lifetime is not None:
            if flavor != "mastodon":
                raise ValueError("token_lifetime applies to flavor='mastodon' or 'akkoma'")
            self._token_policy = TokenPolicy(lifetime=token_lifetime, style="doorkeeper")
        self._state = State()
        self._throttler = Throttler()
        self._injections: list[_Injection] = []
        self._chaos: Chaos | None = None
        self._chaos_rng = random.Random()
        self._link_rewriter: Callable[[str], str] | None = None
        self._vapid_key = _vapid_key()
        self._username_counters: dict[str, int] = {}
        self._remote_created_at = _midnight(clock())
        self._streams = StreamHub()
        self._state.posts.on_notice = self._publish_notice
        self._state.posts.on_status = self._publish_status
        self._app = web.Application()
        self._app.router.add_route("*", "/{tail:.*}", self._handle)

    @property
    def flavor(self) -> FlavorName:
        """Which server family is modelled: ``"mastodon"``, ``"gotosocial"``, ``"akkoma"``,
        ``"pixelfed"`` or ``"sharkey"``."""
        return self._flavor.name

    @property
    def domain(self) -> str | None:
        """The handle domain (``LOCAL_DOMAIN``), or None: the host each request names."""
        return self._domain

    @property
    def web_domain(self) -> str | None:
        """The API host when it differs from :attr:`domain` (``WEB_DOMAIN``), else None."""
        return self._web_domain

    @property
    def limited_federation(self) -> bool:
        """Whether the API serves only user tokens (Mastodon's limited-federation mode)."""
        return self._limited_federation

    @property
    def limits(self) -> Limits:
        """The throttle sizes in force (``limits`` with the older keywords applied)."""
        return self._limits

    @property
    def version(self) -> str:
        """The Mastodon version whose behaviour is modelled, e.g. ``"4.5.0"``."""
        return self._version_text

    @property
    def app(self) -> web.Application:
        """The aiohttp application, e.g. for ``aiohttp.test_utils.TestServer(server.app)``."""
        return self._app

    # Seeding helpers

    def add_account(
        self,
        username: str,
        *,
        display_name: str = "",
        locked: bool = False,
        bot: bool = False,
        hide_collections: bool = False,
        hide_followers: bool | None = None,
        hide_follows: bool | None = None,
        suspended: bool = False,
        domain: str | None = None,
        note: str = "",
        fields: Iterable[Field | tuple[str, str]] = (),
        emojis: Iterable[Emoji | str] = (),
        role: Role | None = None,
        password: str = DEFAULT_PASSWORD,
        moved_to: str | None = None,
        uri: str | None = None,
        url: str | None = None,
    ) -> str:
        """Create an account and return its id (``"109000000000000001"``, then counting up).

        ``domain=None`` makes a local account (``acct == username``); a domain makes a
        remote one (``acct == "user@domain"``, no ``roles``/``noindex`` keys). ``note`` and
        field values are plain text; the API shows them as HTML. Usernames are unique per
        domain, case-insensitively (``ValueError`` otherwise).

        ``password`` is what the ``/oauth/authorize`` login form accepts for a local account
        (with its username); every account has ``DEFAULT_PASSWORD`` unless given another.

        ``hide_collections`` hides both lists from everyone but the owner (``200 []``).
        Akkoma hides each list on its own: ``hide_followers``/``hide_follows`` (each
        defaults to ``hide_collections``); on the other flavours hiding either hides both,
        as Mastodon does for remote accounts (federation.md §2). ``moved_to`` (an account
        id on this server) puts that account in ``moved``; the lists are still served.
        ``uri``/``url`` set a remote account's actor URI and profile URL (default
        ``https://<domain>/users/<username>`` and ``https://<domain>/@<username>``).

        Example::

            alice = server.add_account("alice", password="correct horse")
            bob = server.add_account("bob", domain="remote.example", hide_collections=True)
            new = server.add_account("new")
            old = server.add_account("old", moved_to=new)
            mod = server.add_account("mod", role=Role(id="2", name="Moderator"),
                                     fields=[("Pronouns", "they/them")], emojis=["blobcat"])
        """
        with self._state.lock:
            account_id = self._state.add_account(
                username,
                domain=domain,
                display_name=display_name,
                locked=locked,
                bot=bot,
                hide_followers=hide_collections if hide_followers is None else hide_followers,
                hide_follows=hide_collections if hide_follows is None else hide_follows,
                suspended=suspended,
                note=note,
                fields=tuple(
                    f if isinstance(f, Field) else Field(name=f[0], value=f[1]) for f in fields
                ),
                emojis=tuple(e if isinstance(e, Emoji) else Emoji(shortcode=e) for e in emojis),
                role=role,
                created_at=_midnight(self._clock()),
                password=password,
                moved_to=None if moved_to is None else self._account_id(moved_to),
                uri=uri,
                url=url,
            )
        return str(account_id)

    def _account_id(self, account_id: str) -> int:
        return self._state.require_account(int(account_id)).id

    def follow(self, follower_id: str, target_id: str) -> str:
        """Make ``follower_id`` follow ``target_id``; returns the Follow id.

        On Mastodon Follow ids are the pagination cursors: they grow by irregular steps
        from 7000000 and are unrelated to account ids. GoToSocial shows the same follow as
        a 26-character ULID (also a cursor); Akkoma pages by account id instead. Following
        twice returns the existing Follow id.

        Example: ``cursor = server.follow(bob, alice)``.
        """
        with self._state.lock:
            follower, target = self._account_id(follower_id), self._account_id(target_id)
            known = self._state.follow_id(follower, target)
            follow_id = self._state.follow(follower, target)
            if known is None:
                self._state.posts.notify(
                    self._state, target, "follow", follower, None, self._clock()
                )
        if self._flavor.paging.follow_ids == "ulid":
            return follow_ulid(follow_id)
        return str(follow_id)

    def _add_remote(
        self, username: str, domain: str, *, uri: str, url: str, hidden: bool, suspended: bool
    ) -> str:
        """A remote account for FakeFediverse, without add_account's argument handling."""
        with self._state.lock:
            account_id = self._state.add_account(
                username,
                domain=domain,
                display_name=username,
                locked=False,
                bot=False,
                hide_followers=hidden,
                hide_follows=hidden,
                suspended=suspended,
                note="",
                fields=(),
                emojis=(),
                role=None,
                created_at=self._remote_created_at,
                uri=uri,
                url=url,
            )
        return str(account_id)

    def _follow_many(self, pairs: Iterable[tuple[str, str]]) -> None:
        """Follows in bulk for FakeFediverse.populate: ids known to exist, one lock."""
        with self._state.lock:
            for follower_id, target_id in pairs:
                self._state.follow(int(follower_id), int(target_id))

    def unfollow(self, follower_id: str, target_id: str) -> bool:
        """Remove a follow; ``False`` if there was none."""
        with self._state.lock:
            return self._state.unfollow(self._account_id(follower_id), self._account_id(target_id))

    def _bulk_accounts(self, prefix: str, n: int) -> list[int]:
        ids = []
        created_at = _midnight(self._clock())
        start = self._username_counters.get(prefix, 1)
        for _ in range(n):
            username, start = self._state.free_username(prefix, start)
            ids.append(
                self._state.add_account(
                    username,
                    domain=None,
                    display_name=username,
                    locked=False,
                    bot=False,
                    hide_followers=False,
                    hide_follows=False,
                    suspended=False,
                    note="",
                    fields=(),
                    emojis=(),
                    role=None,
                    created_at=created_at,
                )
            )
        self._username_counters[prefix] = start
        return ids

    def add_followers(self, target_id: str, n: int, prefix: str = "follower") -> list[str]:
        """Create ``n`` local accounts (``follower1``, ``follower2``...) following ``target_id``.

        Returns their ids in follow order, so the last one is the first in the API's list.

        Example: ``ids = server.add_followers(alice, 10_000)``.
        """
        with self._state.lock:
            target = self._account_id(target_id)
            new_ids = self._bulk_accounts(prefix, n)
            for account_id in new_ids:
                self._state.follow(account_id, target)
        return [str(account_id) for account_id in new_ids]

    def add_following(self, account_id: str, n: int, prefix: str = "followed") -> list[str]:
        """Create ``n`` local accounts that ``account_id`` follows, in follow order."""
        with self._state.lock:
            follower = self._account_id(account_id)
            new_ids = self._bulk_accounts(prefix, n)
            for target in new_ids:
                self._state.follow(follower, target)
        return [str(target) for target in new_ids]

    def suspend(self, account_id: str, *, suspended: bool = True) -> None:
        """Suspend an account (``suspended: true``, blanked; lists answer as the flavour does:
        ``200 []`` on Mastodon, 404 on GoToSocial); ``suspended=False`` lifts it."""
        with self._state.lock:
            self._state.update_account(self._account_id(account_id), suspended=suspended)

    def delete_account(self, account_id: str) -> None:
        """Delete an account: its follows go both ways, show/lookup/lists answer 404 and
        WebFinger 410 on Mastodon (404 on GoToSocial and Akkoma, 400 on Pixelfed).

        Example: ``server.delete_account(alice)``.
        """
        with self._state.lock:
            self._state.delete_account(self._account_id(account_id))

    def move(self, account_id: str, target_id: str) -> None:
        """Mark ``account_id`` as moved to ``target_id`` (``moved`` holds the target).

        Follows stay where they are, as when the move crosses servers: followers move over
        on their own, later.

        Example: ``server.move(old, server.add_account("new", domain="beta.example"))``.
        """
        with self._state.lock:
            target = self._account_id(target_id)
            self._state.update_account(self._account_id(account_id), moved_to=target)

    def set_counts(
        self, account_id: str, *, followers: int | None = None, following: int | None = None
    ) -> None:
        """Show these ``followers_count``/``following_count`` instead of the stored follows.

        Remote accounts show the counts their home reports, so a profile may claim far more
        followers than this server lists (federation.md §2). ``None`` leaves a count as is.

        Example: ``server.set_counts(bob, followers=12_000)``.
        """
        with self._state.lock:
            self._state.set_counts(self._account_id(account_id), followers, following)

    def _record(self, account_id: str) -> Account:
        """The stored account (a frozen snapshot), for FakeFediverse."""
        with self._state.lock:
            return self._state.require_account(int(account_id))

    def counts(self, account_id: str) -> tuple[int, int]:
        """``(followers_count, following_count)`` as the Account entity shows them."""
        with self._state.lock:
            return self._state.counts(self._account_id(account_id))

    def followers_of(self, account_id: str) -> list[str]:
        """The ids of the accounts following ``account_id`` here, newest follow first."""
        with self._state.lock:
            edges = self._state.followers_of(self._account_id(account_id))
            return [str(i) for i in reversed(edges.account_ids)]

    def following_of(self, account_id: str) -> list[str]:
        """The ids of the accounts ``account_id`` follows here, newest follow first."""
        with self._state.lock:
            edges = self._state.following_of(self._account_id(account_id))
            return [str(i) for i in reversed(edges.account_ids)]

    def handle(self, account_id: str) -> str:
        """``username@domain``: a local account's uses :attr:`domain` (``ValueError``
        without one), a remote account's its own."""
        with self._state.lock:
            account = self._state.require_account(int(account_id))
        domain = account.domain or self._domain
        if domain is None:
            raise ValueError("a local handle needs FakeMastodon(domain=...)")
        return f"{account.username}@{domain}"

    def block(self, blocker_id: str, blocked_id: str) -> None:
        """``blocker_id`` blocks ``blocked_id``; like Mastodon, follows between them end."""
        with self._state.lock:
            self._state.block(self._account_id(blocker_id), self._account_id(blocked_id))

    def mute(self, muter_id: str, muted_id: str) -> None:
        """``muter_id`` mutes ``muted_id`` (notifications included)."""
        with self._state.lock:
            self._state.mute(self._account_id(muter_id), self._account_id(muted_id))

    # Statuses and notifications

    def post_status(
        self,
        account_id: str,
        text: str,
        *,
        visibility: str = "public",
        in_reply_to_id: str | None = None,
        spoiler_text: str = "",
        language: str | None = "en",
    ) -> str:
        """Post a status as ``account_id`` (as the API would) and return its id.

        Mentions (``@user``, ``@user@domain``) of accounts on this server notify them, as
        does a post to followers who follow with ``notify=true``.

        Example::

            status_id = server.post_status(bob, "@bot hello there")   # bot gets a mention
        """
        with self._state.lock:
            author = self._account_id(account_id)
            reply = None if in_reply_to_id is None else int(in_reply_to_id)
            if reply is not None and self._state.posts.live(reply) is None:
                raise ValueError(f"no status with id {in_reply_to_id}")
            post = self._state.posts.create_status(
                self._state,
                author,
                text,
                self._clock(),
                local_domain=self._domain or "",
                visibility=visibility,
                spoiler_text=spoiler_text,
                language=language,
                in_reply_to_id=reply,
            )
        return str(post.id)

    def notify(
        self, account_id: str, type: str, from_account_id: str, status_id: str | None = None
    ) -> str:
        """Give ``account_id`` a notification of ``type`` (any string) from another account.

        Unlike the notifications the server makes itself, this one is stored whatever the
        recipient mutes or blocks. Returns its id.

        Example: ``server.notify(bot, "favourite", alice, status_id)``.
        """
        with self._state.lock:
            posts = self._state.posts
            recipient = self._account_id(account_id)
            sender = self._account_id(from_account_id)
            status = None if status_id is None else int(status_id)
            if status is not None and status not in posts.statuses:
                raise ValueError(f"no status with id {status_id}")
            # A notification the server would not make (a muted sender) is still wanted here.
            notice = Notice(
                id=posts.next_notice_id(),
                account_id=recipient,
                type=type,
                from_account_id=sender,
                status_id=status,
                at=self._clock(),
            )
            posts.notices[notice.id] = notice
            self._publish_notice(notice)
        return str(notice.id)

    def statuses_of(self, account_id: str) -> list[str]:
        """The ids of the statuses (boosts included) ``account_id`` has posted and not
        deleted, oldest first."""
        with self._state.lock:
            wanted = self._account_id(account_id)
            return [
                str(p.id)
                for p in self._state.posts.statuses.values()
                if p.account_id == wanted and not p.deleted
            ]

    def status_text(self, status_id: str) -> str:
        """The plain text a status was posted (or last edited) with."""
        with self._state.lock:
            return self._state.posts.statuses[int(status_id)].text

    def notifications_of(self, account_id: str) -> list[tuple[str, str]]:
        """``(id, type)`` of the notifications ``account_id`` has, oldest first."""
        with self._state.lock:
            wanted = self._account_id(account_id)
            return [
                (str(n.id), n.type)
                for n in self._state.posts.notices.values()
                if n.account_id == wanted
            ]

    def slow_media(self, *, polls: int = 0, seconds: float = 0.0) -> None:
        """Make ``POST /api/v2/media`` answer 202 and keep the upload processing for
        ``polls`` GETs of ``/api/v1/media/:id`` and ``seconds`` of the server's clock
        (both must pass). ``slow_media()`` makes uploads instant again.

        Example: ``server.slow_media(polls=3)``: 206, 206, 206, then 200.
        """
        with self._state.lock:
            self._state.posts.processing_gets = polls
            self._state.posts.processing_seconds = seconds

    # Apps and tokens

    def register_app(
        self,
        client_name: str = "aiomasto.testing",
        *,
        scopes: str = "read",
        redirect_uris: str = OOB_URI,
        website: str = "",
    ) -> dict[str, object]:
        """Register an app without HTTP (no validation, no throttle).

        Returns the CredentialApplication document, as ``POST /api/v1/apps`` would.

        Example: ``client_id = server.register_app(scopes="read write")["client_id"]``.
        """
        with self._state.lock:
            app = self._state.create_app(
                name=client_name,
                website=website,
                redirect_uri=redirect_uris,
                scopes=normalize_scopes(scopes),
            )
        return application_document(app, self._vapid_key, credentials=True)

    def _app_for(self, client_id: str | None, scopes: tuple[str, ...]) -> App:
        if client_id is None:
            return self._state.create_app(
                name="aiomasto.testing", website="", redirect_uri=OOB_URI, scopes=scopes
            )
        app = self._state.apps.get(client_id)
        if app is None:
            raise KeyError(f"no app with client_id {client_id!r}")
        if not set(scopes) <= set(app.scopes):
            raise ValueError(f"scopes {scopes} are not a subset of the app's {app.scopes}")
        return app

    def issue_user_token(
        self, account_id: str, scopes: str = "read", client_id: str | None = None
    ) -> str:
        """An access token for ``account_id``, as if the user had authorized the app.

        Without ``client_id`` a fresh app is registered with exactly ``scopes``. With one,
        Doorkeeper's token reuse applies: the same (app, user, scopes) gives the same token.

        Example: ``token = server.issue_user_token(alice, "read write:follows")``.
        """
        wanted = normalize_scopes(scopes)
        with self._state.lock:
            account = self._account_id(account_id)
            app = self._app_for(client_id, wanted)
            token = self._state.find_or_create_token(
                app, account, wanted, self._clock(), self._token_policy
            )
        return token.token

    def create_authorization_code(
        self,
        client_id: str,
        account_id: str,
        *,
        redirect_uri: str | None = None,
        scopes: str | None = None,
        code_challenge: str | None = None,
        code_challenge_method: str | None = None,
    ) -> str:
        """An authorization code as ``GET /oauth/authorize`` would issue once the user approves.

        ``redirect_uri`` defaults to the app's first one and must be registered; ``scopes``
        default to ``read`` (if the app has it) and must be a subset of the app's. A
        ``code_challenge`` needs ``code_challenge_method="S256"`` (Mastodon 4.4+). Exchange the
        code at ``POST /oauth/token`` within 10 minutes (by the injected clock).

        Example::

            code = server.create_authorization_code(client_id, alice,
                                                    code_challenge=s256(verifier),
                                                    code_challenge_method="S256")
        """
        with self._state.lock:
            app = self._state.apps.get(client_id)
            if app is None:
                raise KeyError(f"no app with client_id {client_id!r}")
            registered = app.redirect_uri.split()
            uri = registered[0] if redirect_uri is None else redirect_uri
            if uri not in registered:
                raise ValueError(f"{uri!r} is not a registered redirect URI of the app")
            if scopes is None:
                wanted = tuple(s for s in _oauth.DEFAULT_SCOPES if s in app.scopes)
            else:
                wanted = normalize_scopes(scopes)
            if not wanted or not set(wanted) <= set(app.scopes):
                raise ValueError(f"scopes {wanted} are not a subset of the app's {app.scopes}")
            if code_challenge is not None and code_challenge_method != "S256":
                raise ValueError("code_challenge_method must be S256")
            grant = self._state.create_grant(
                app,
                self._account_id(account_id),
                redirect_uri=uri,
                scopes=wanted,
                code_challenge=code_challenge,
                now=self._clock(),
            )
        return grant.code

    def authorize(self, url: str, account_id: str, *, approve: bool = True) -> str:
        """Answer an authorize URL as ``account_id`` would in the browser, without HTML.

        Returns where the server would redirect: ``redirect_uri?code=...&state=...`` on
        approval, ``redirect_uri?error=access_denied&error_description=...&state=...`` on
        refusal (``state`` only when the URL had one), or the error redirect for an invalid
        scope, response type or PKCE method. For the oob redirect URI, whose code a person
        would copy from a page, it returns ``urn:ietf:wg:oauth:2.0:oob?code=...``. A request
        the server would not redirect at all (unknown client, unregistered redirect URI,
        denied or invalid with oob) raises ``ValueError`` naming the OAuth error.

        Example::

            target = server.authorize(start.url, alice)
            code = yarl.URL(target).query["code"]
        """
        query = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(url).query))
        with self._state.lock:
            account = self._account_id(account_id)
            try:
                request = _authorize.read_authorize(self._state, query, pkce=self._flavor.pkce)
                if approve:
                    return _authorize.approve(self._state, request, account, self._clock())
                raise _authorize.deny(request)
            except _authorize.AuthorizeError as error:
                if error.redirect_uri is None:
                    raise ValueError(str(error)) from None
                return _authorize.error_redirect(error)

    def revoke_token(self, access_token: str) -> None:
        """Revoke server-side; the token stays known, so the API says "was revoked"."""
        with self._state.lock:
            self._state.revoke(access_token)

    def delete_app(self, client_id: str) -> None:
        """Delete an app; its tokens become unknown and ``/oauth/token`` says ``invalid_client``."""
        with self._state.lock:
            self._state.delete_app(client_id)

    # Request log and faults

    def count(self, method: str, path_prefix: str) -> int:
        """How many logged requests had ``method`` and a path starting with ``path_prefix``.

        Example: ``server.count("POST", "/oauth/token")``.
        """
        wanted = method.upper()
        return sum(
            1 for r in self.requests if r.method == wanted and r.path.startswith(path_prefix)
        )

    def inject(
        self,
        path: str,
        fault: Fault,
        *,
        method: str | None = None,
        times: int = 1,
        after: int = 0,
    ) -> None:
        """Serve ``fault`` to ``times`` requests for exactly ``path`` (and ``method``).

        The first ``after`` matching requests are served normally, so a test can fail, say,
        the sixth page of a walk however far ahead the client fetches. Faults apply before
        anything else (routing, auth, rate limiting), like a proxy failing; the request is
        still logged, and counted in :attr:`faults_injected`. Several injections for one path
        queue up, and take precedence over :meth:`chaos`.

        Example::

            server.inject("/oauth/token", Fault.html(502), method="POST")
            server.inject(f"/api/v1/accounts/{alice}/followers", Fault.empty(503), times=3)
            server.inject(f"/api/v1/accounts/{alice}/followers", Fault.html(502), after=5)
            server.inject(f"/api/v1/accounts/{alice}", Fault.slow(0.1, then=Fault.rate_limited()))
        """
        if times < 1:
            raise ValueError("times must be at least 1")
        if after < 0:
            raise ValueError("after must not be negative")
        with self._state.lock:
            self._injections.append(
                _Injection(path, fault, method.upper() if method else None, times, after)
            )

    def chaos(
        self,
        *,
        seed: int,
        html_5xx: float = 0.0,
        reset: float = 0.0,
        truncated: float = 0.0,
        slow: float = 0.0,
        slow_seconds: float = 0.0,
        json_500: float = 0.0,
        path_prefix: str = "/api/",
    ) -> None:
        """Fail requests at random, reproducibly: each request whose path starts with
        ``path_prefix`` (and that no :meth:`inject` fault claimed) draws from a
        ``random.Random(seed)``. The arguments are probabilities of disjoint outcomes
        (their sum at most 1): an nginx page 502/503/504 (picked at random), a connection
        reset mid-body, truncated JSON, a ``slow_seconds`` delay before the normal answer,
        or a JSON 500. The same seed and request sequence give the same faults.

        Example::

            server.chaos(seed=7, html_5xx=0.1, reset=0.05)
            ...  # crawl
            assert server.faults_injected["reset"] > 0
            server.chaos_off()
        """
        config = Chaos(
            html_5xx=html_5xx,
            reset=reset,
            truncated=truncated,
            slow=slow,
            slow_seconds=slow_seconds,
            json_500=json_500,
            path_prefix=path_prefix,
        )
        with self._state.lock:
            self._chaos = config
            self._chaos_rng = random.Random(seed)

    def chaos_off(self) -> None:
        """Stop random faults (scripted :meth:`inject` faults are unaffected)."""
        with self._state.lock:
            self._chaos = None

    def rewrite_links(self, fn: Callable[[str], str] | None) -> None:
        """Pass every ``Link`` header the server emits through ``fn`` (``None``: stop).

        For testing clients against broken pagination: loops, foreign origins, relative
        URLs, odd ordering or plain garbage.

        Example::

            server.rewrite_links(lambda link: link.replace(server.url or "", ""))  # relative
        """
        with self._state.lock:
            self._link_rewriter = fn

    def _take_fault(self, method: str, path: str) -> Fault | None:
        with self._state.lock:
            for injection in self._injections:
                if injection.path == path and injection.method in (None, method):
                    if injection.passes:
                        injection.passes -= 1
                        break
                    injection.remaining -= 1
                    if injection.remaining == 0:
                        self._injections.remove(injection)
                    return injection.fault
            if self._chaos is not None and path.startswith(self._chaos.path_prefix):
                return self._chaos.draw(self._chaos_rng)
        return None

    # Streaming

    def push(
        self,
        stream: str,
        event: str,
        payload: object = None,
        *,
        account_id: str | None = None,
        tag: str | None = None,
        list_id: str | None = None,
    ) -> int:
        """Publish a streaming event to the connections subscribed to ``stream`` now.

        ``payload`` is a JSON-able object (sent as a JSON string, as Mastodon does), a string
        (an id, for ``delete``) or ``None`` (no payload, as ``filters_changed``).
        ``account_id`` picks whose ``user``/``direct``/``list`` stream (every account's when
        omitted); ``tag`` and ``list_id`` name the hashtag or list. Returns how many
        connections it was sent to; like Redis pub/sub, nobody listening means nobody gets it.

        Example::

            server.push("user", "notification", {"id": "1", "type": "mention", ...},
                        account_id=alice)
        """
        params = {"tag": tag or "", "list": list_id or ""}
        key = stream_key(stream, params)
        if isinstance(key, str):
            raise ValueError(f"stream {stream!r}: {key}")
        owner = None if account_id is None else self._account_id(account_id)
        if stream not in PERSONAL:
            owner = None
        return self._streams.publish(key, event, payload, account_id=owner)

    def push_raw(self, text: str, *, stream: str | None = None) -> int:
        """Send ``text`` as it is to every streaming connection (or those on ``stream``),
        to test how a client copes with whatever a broken server sends."""
        key = None if stream is None else stream_key(stream, {})
        if isinstance(key, str):
            raise ValueError(f"stream {stream!r}: {key}")
        return self._streams.send_raw(text, stream=key)

    def drop_streams(self) -> int:
        """Cut every streaming connection at once, as a network failure would; returns how
        many. Events pushed while a client is away are lost to its stream."""
        return self._streams.drop()

    def stall_streams(self, stalled: bool = True) -> None:
        """Stop (or resume) answering the clients' pings, as a hung server or a silently
        dead connection does; connections stay open."""
        self._streams.stalled = stalled

    @property
    def stream_connections(self) -> int:
        """How many streaming WebSockets are open now."""
        return self._streams.open_connections

    @property
    def streams_opened(self) -> int:
        """How many streaming WebSockets were accepted since the server started."""
        return self._streams.connections_opened

    def _stream_render(self) -> Render:
        base = self.url or ""
        return Render(
            base=base,
            version=self._version,
            shape=self._flavor.account_shape,
            domain=self._domain or URL(base).host or "",
        )

    def _publish_notice(self, notice: Notice) -> None:
        """Stream a new notification to its recipient's ``user`` and ``user:notification``
        streams, rendered as ``GET /api/v1/notifications`` renders it."""
        if not self._streams.open_connections:
            return
        document = notification_document(
            self._state, self._state.posts, notice, self._stream_render(), self._clock()
        )
        for stream in (("user",), ("user:notification",)):
            self._streams.publish(stream, "notification", document, account_id=notice.account_id)

    def _publish_status(self, post: Post) -> None:
        """Stream a new status as ``update``: to the ``user`` streams of its author and the
        author's followers (as each of them sees it), and when public to ``public``,
        ``public:local`` and its hashtags' streams. Direct messages go to none of these."""
        listening = self._streams.listeners()
        if not listening or post.visibility == "direct":
            return
        state, posts, render, now = (
            self._state,
            self._state.posts,
            self._stream_render(),
            self._clock(),
        )
        home = {post.account_id, *state.followers_of(post.account_id).account_ids} & listening
        for reader in sorted(home):
            document = status_document(state, posts, post, render, reader, now)
            self._streams.publish(("user",), "update", document, account_id=reader)
        if post.visibility != "public":
            return
        document = status_document(state, posts, post, render, None, now)
        local = state.accounts[post.account_id].local
        public: list[tuple[str, ...]] = [
            ("public",),
            ("public:local" if local else "public:remote",),
        ]
        for tag in post.tags:
            public += [("hashtag", tag)] + ([("hashtag:local", tag)] if local else [])
        for stream in public:
            self._streams.publish(stream, "update", document)

    def _stream_account(self, request: web.Request) -> tuple[int | None, str | None]:
        """Whose stream this is, from the header, the protocol or the query (index.js)."""
        protocol = request.headers.get("Sec-WebSocket-Protocol", "").strip() or None
        header = request.headers.get("Authorization", "")
        presented = (
            header.removeprefix("Bearer ").strip()
            if header
            else request.query.get("access_token") or protocol
        )
        with self._state.lock:
            token = self._state.tokens.get(presented) if presented else None
            if token is None or token.revoked or token.expired(self._clock()):
                return None, protocol
            return token.account_id, protocol

    # Request handling

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        params: Params = {}
        parse_pairs(request.query.items(), params)
        body_error = False
        try:
            form = parse_body(request.headers.get("Content-Type", ""), body, params)
        except BodyError:
            form, body_error = (), True
        self.requests.append(
            RecordedRequest(
                method=request.method,
                path=request.path,
                query=tuple(request.query.items()),
                headers=request.headers,
                form=form,
                raw_body=body,
                url=str(request.url),
            )
        )
        if (
            request.path.rstrip("/") == "/api/v1/streaming"
            and request.headers.get("Upgrade", "").lower() == "websocket"
        ):
            account_id, protocol = self._stream_account(request)
            return await self._streams.serve(request, account_id, protocol)
        fault = self._take_fault(request.method, request.path)
        hang_up = False
        while fault is not None:
            hang_up = hang_up or fault.after_processing
            with self._state.lock:
                self.faults_injected[fault.kind] += 1
            if fault.delay:
                await asyncio.sleep(fault.delay)
            if fault.status is not None:
                return await self._serve_fault(request, params, fault, fault.status)
            fault = fault.then
        with self._state.lock:
            response = self._respond(request, params, body_error)
            rewrite = self._link_rewriter
        if hang_up and request.transport is not None:
            request.transport.close()
            return response
        link = response.headers.get("Link")
        if link is not None and rewrite is not None:
            response.headers["Link"] = rewrite(link)
        response.headers["X-Request-Id"] = str(uuid.uuid4())
        # The Date header tells the time of the server's own clock (the one its windows use).
        response.headers.setdefault("Date", formatdate(self._clock(), usegmt=True))
        return response

    async def _serve_fault(
        self, request: web.Request, params: Params, fault: Fault, status: int
    ) -> web.StreamResponse:
        headers = dict(fault.headers)
        headers.setdefault("Date", formatdate(self._clock(), usegmt=True))
        if fault.content_type is not None:
            headers["Content-Type"] = fault.content_type
        if fault.window_headers:
            with self._state.lock:
                headers.update(self._window_headers(request, params))
        if fault.cut_after is None:
            return web.Response(status=status, body=fault.body, headers=headers)
        response = web.StreamResponse(status=status, headers=headers)
        response.content_length = len(fault.body)
        await response.prepare(request)
        await response.write(fault.body[: fault.cut_after])
        # close() rather than abort(): the partial body is flushed before the FIN.
        if request.transport is not None:
            request.transport.close()
        return response

    def _window_headers(self, request: web.Request, params: Params) -> dict[str, str]:
        """``X-RateLimit-*`` for a 429 in the request's current window, without counting it."""
        now_us = round(self._clock() * 1_000_000)
        throttles = self._throttles(request, params, self._known_token(request, params)) or [
            self._ip_throttle(request, aligned=True)
        ]
        hit = min(
            (self._throttler.peek(t, now_us) for t in throttles), key=lambda h: h.limit - h.count
        )
        return {
            "X-RateLimit-Limit": str(hit.limit),
            "X-RateLimit-Remaining": "0",
            "X-RateLimit-Reset": format_reset(hit.reset_us, self._reset_format),
        }

    def _known_token(self, request: web.Request, params: Params) -> Token | None:
        # Throttles identify the caller by any known token, even a revoked one.
        access_token = presented_token(request.headers, params)
        return self._state.tokens.get(access_token) if access_token else None

    def _find_route(self, method: str, path: str) -> tuple[_Route, dict[str, str]] | None:
        # Rails answers HEAD with the GET route.
        method = "GET" if method == "HEAD" else method
        for route in _ROUTES:
            if route.method == method and (match := route.pattern.fullmatch(path)):
                return route, match.groupdict()
        return None

    def _ip_throttle(self, request: web.Request, *, aligned: bool) -> Throttle:
        limit, period = self._limits.per_ip
        return Throttle(
            name="throttle_unauthenticated_api",
            key=_client_ip(request.remote),
            limit=limit,
            period=period,
            enforced=self.enforce_rate_limit,
            aligned=aligned,
        )

    def _throttles(
        self, request: web.Request, params: Params, token: Token | None
    ) -> list[Throttle]:
        """The rate-limit rules matching this request, in the server's evaluation order."""
        rules = self._flavor.rate_limits
        if rules is None:
            return []
        if rules.throttles == "per_ip":
            return [self._ip_throttle(request, aligned=False)]
        # Rack::Attack, in Mastodon's definition order (§8.1).
        ip = _client_ip(request.remote)
        user_id = token.account_id if token is not None else None
        limits = self._limits
        # api_request? is a bare prefix test: "/apix" counts as API too.
        api = request.path.startswith("/api")
        paging = any((scalar(params, name) or "").strip() for name in _PAGING_PARAMS)
        registration = request.method == "POST" and request.path == "/api/v1/apps"
        enforced = self.enforce_rate_limit
        # (name, key, rate, whether it matches, whether it answers 429)
        rules_table: list[tuple[str, str, tuple[int, float] | None, bool, bool]] = [
            (
                "throttle_authenticated_api",
                f"user:{user_id}",
                limits.per_user,
                api and user_id is not None,
                enforced,
            ),
            (
                "throttle_per_token_api",
                f"token:{token.id if token else ''}",
                limits.per_token,
                api and token is not None,
                enforced,
            ),
            ("throttle_unauthenticated_api", ip, limits.per_ip, api and user_id is None, enforced),
            (
                "throttle_paging",
                f"user:{user_id}" if user_id is not None else f"ip:{ip}",
                limits.paging,
                paging,
                enforced,
            ),
            # Always enforced, as on every Mastodon since 4.2.9.
            (
                "throttle_oauth_application_registrations/ip",
                ip,
                limits.app_registrations,
                registration,
                True,
            ),
        ]
        return [
            Throttle(name=name, key=key, limit=rate[0], period=rate[1], enforced=strict)
            for name, key, rate, applies, strict in rules_table
            if applies and rate is not None
        ]

    def _split_domain_answer(self, request: web.Request) -> web.Response | None:
        """The handle domain's own web server when the API lives elsewhere (federation.md
        §1.3): discovery documents redirect to the web domain, nothing else is served."""
        if self._web_domain is None or self._web_domain == self._domain:
            return None
        host, port = _split_host(request.host)
        if host != self._domain:
            return None
        if request.path not in _REDIRECTED_PATHS:
            return _not_found(request)
        location = f"{request.scheme}://{self._web_domain}{port}{request.path_qs}"
        return web.Response(status=301, headers={"Location": location})

    def _respond(self, request: web.Request, params: Params, body_error: bool) -> web.Response:
        redirect = self._split_domain_answer(request)
        if redirect is not None:
            return redirect
        now = self._clock()
        api = request.path.startswith("/api")
        token = self._known_token(request, params)
        hits, throttled = self._throttler.check(
            self._throttles(request, params, token), round(now * 1_000_000)
        )
        if throttled is not None:
            self.throttled += 1
            return self._too_many_requests(throttled)
        found = self._find_route(request.method, request.path)
        if found is None:
            response = _not_found(request)
        else:
            # Endpoints only see the token where Api::BaseController looks for it.
            sees_token = request.path.startswith(_TOKEN_PATHS)
            if token is not None and token.expired(now) and self._flavor.auth.expired is None:
                sees_token = False  # Pleroma's OAuthPlug passes over expired tokens
            response = self._dispatch(
                request, params, body_error, found, token if sees_token else None, now
            )
        rules = self._flavor.rate_limits
        # Mastodon sets the headers in Api::BaseController (routed /api requests only);
        # GoToSocial's limiter middleware wraps every route.
        routed_api = api and found is not None
        if hits and rules is not None and (routed_api or rules.throttles == "per_ip"):
            response.headers.update(rate_limit_headers(hits, self._reset_format))
        if routed_api:
            response.headers["Vary"] = "Authorization"
            response.headers.setdefault("Cache-Control", "private, no-store")
        return response

    def _dispatch(
        self,
        request: web.Request,
        params: Params,
        body_error: bool,
        found: tuple[_Route, dict[str, str]],
        token: Token | None,
        now: float,
    ) -> web.Response:
        route, match = found
        local_domain = self._domain or _split_host(request.host)[0]
        ctx = Ctx(
            match=match,
            params=params,
            headers=request.headers,
            base=f"{request.scheme}://{request.host}",
            host=request.host,
            now=now,
            state=self._state,
            version=self._version,
            flavor=self._flavor,
            vapid_key=self._vapid_key,
            known_scopes=self._known_scopes,
            token=token,
            token_policy=self._token_policy,
            local_domain=local_domain,
            web_domain=self._web_domain or local_domain,
            version_text=self._version_text,
            limited_federation=self._limited_federation,
            host_meta_only=self._host_meta_only,
            path=request.path,
        )
        try:
            return self._run_handler(route, ctx, body_error)
        except Halt as halt:
            return halt.response

    def _run_handler(self, route: _Route, ctx: Ctx, body_error: bool) -> web.Response:
        if body_error:
            return json_response(400, {"error": "Bad Request"})
        user_id = ctx.user_id
        if (
            ctx.limited_federation
            and user_id is None
            and not route.public
            and ctx.path.startswith("/api")
        ):
            # Api::BaseController#require_authenticated_user!, before any other check.
            raise Halt(json_response(401, {"error": "This method requires an authenticated user"}))
        if user_id is not None and ctx.state.accounts[user_id].suspended:
            # Api::BaseController#require_not_suspended! runs before every API action.
            raise Halt(json_response(403, {"error": "Your login is currently disabled"}))
        return route.handler(ctx)

    def _too_many_requests(self, hit: ThrottleHit) -> web.Response:
        # Only flavours with a limiter get here. Rack::Attack's throttled_responder sends a
        # bare JSON content type and no Retry-After.
        rules = self._flavor.rate_limits
        assert rules is not None
        return web.Response(
            status=429,
            body=rules.too_many_body,
            headers={
                "Content-Type": rules.too_many_type,
                "X-RateLimit-Limit": str(hit.limit),
                "X-RateLimit-Remaining": "0",
                "X-RateLimit-Reset": format_reset(hit.reset_us, self._reset_format),
            },
        )

    # Running

    @contextlib.asynccontextmanager
    async def run(self, host: str = "127.0.0.1", port: int = 0) -> AsyncIterator[str]:
        """Serve on the current event loop; yields the base URL (also in :attr:`url`).

        Example::

            async with FakeMastodon().run() as url:
                ...  # url == "http://127.0.0.1:<free port>"
        """
        # A short shutdown grace keeps test teardown fast when clients hold keep-alive connections.
        runner = web.AppRunner(self._app, access_log=None, shutdown_timeout=0.5)
        await runner.setup()
        try:
            site = web.TCPSite(runner, host, port)
            await site.start()
            bound_port = runner.addresses[0][1]
            url_host = f"[{host}]" if ":" in host else host
            self.url = f"http://{url_host}:{bound_port}"
            yield self.url
        finally:
            self.url = None
            await runner.cleanup()

    @contextlib.contextmanager
    def run_in_thread(self, host: str = "127.0.0.1", port: int = 0) -> Iterator[str]:
        """Serve from a background thread with its own event loop; yields the base URL.

        For synchronous fixtures, or tests that drive the client from another loop.

        Example::

            with FakeMastodon().run_in_thread() as url:
                requests.get(f"{url}/api/v1/accounts/lookup?acct=alice")
        """
        ready: concurrent.futures.Future[str] = concurrent.futures.Future()
        loop = asyncio.new_event_loop()
        stop = asyncio.Event()

        async def serve() -> None:
            try:
                async with self.run(host, port) as url:
                    ready.set_result(url)
                    await stop.wait()
            except Exception as exc:
                if ready.done():
                    raise
                ready.set_exception(exc)

        def main() -> None:
            try:
                loop.run_until_complete(serve())
            finally:
                loop.close()

        thread = threading.Thread(target=main, name="FakeMastodon", daemon=True)
        thread.start()
        try:
            yield ready.result(timeout=30)
        finally:
            with contextlib.suppress(RuntimeError):  # the loop is already closed if startup failed
                loop.call_soon_threadsafe(stop.set)
            thread.join(timeout=30)
