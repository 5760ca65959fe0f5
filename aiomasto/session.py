"""The Session: one instance, one token lifecycle, one connection pool, shared by many tasks."""

from __future__ import annotations

import asyncio
import logging
import math
import mimetypes
import os
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable, Mapping
from datetime import datetime, timedelta
from pathlib import Path
from types import TracebackType
from typing import Any, Self, TypeVar, overload
from urllib.parse import quote

import aiohttp
from yarl import URL

from ._bodies import (
    Body,
    FileSpec,
    Params,
    ParamValue,
    checked_headers,
    form_body,
    json_body,
    multipart_body,
    query_pairs,
)
from ._converter import decode_json, decode_json_list, decode_page
from ._http import DEFAULT_MAX_RESPONSE_SIZE, DEFAULT_TIMEOUT, Transport
from ._limiter import LimiterBackend, RateLimiter
from ._protocol import RawResponse, error_for, redact_url
from ._redact import Secret
from ._requester import Requester
from ._tokens import AppTokens, GivenToken, NoToken, Tokens, UserTokens
from ._urls import check_origin, instance_url, normalise_instance, streaming_origin
from ._version import __version__
from .auth import App
from .entities import (
    Account,
    Application,
    Context,
    Conversation,
    CredentialAccount,
    Instance,
    InstanceV1,
    MediaAttachment,
    Notification,
    Relationship,
    ScheduledStatus,
    Status,
    StatusEdit,
    StatusSource,
    Token,
    UserInfo,
)
from .errors import (
    ConfigurationError,
    DecodeError,
    Gone,
    HTTPError,
    MediaNotReady,
    NotFound,
    PaginationError,
)
from .pagination import (
    Direction,
    Page,
    Paginator,
    UndecodedPage,
    read_links,
    relative_cursor,
)
from .policies import (
    RateLimitPolicy,
    Retry,
    RetryHook,
    WaitHook,
)
from .ratelimit import RateLimit
from .stores import MemoryTokenStore, StoreKey, TokenStore
from .streaming import (
    Connection,
    ReconnectHook,
    Stream,
    StreamName,
    check_stream_params,
)

__all__ = ["Session"]

log = logging.getLogger("aiomasto")

T = TypeVar("T")

DEFAULT_RETRY = Retry()
# Mastodon's longest window a crawler meets is the paging one (300 per 15 minutes): a crawl
# that spent it must sit out up to 900 s. A minute on top covers a skewed clock and the
# reset's margin; anything longer (a reset in 2100, a day-long family limit) is not a wait
# to sleep through unannounced.
DEFAULT_MAX_WAIT = 960.0
# Link URLs read last, by cursor: enough for the pages a few concurrent walks fetch next.
_LINK_URLS = 64
# Mastodon's streaming server pings every 30 s; our pings find a dead peer as soon.
DEFAULT_HEARTBEAT = 30.0
# A stream message is one entity: a status with its account, card and poll is a few KB.
DEFAULT_MAX_MESSAGE_SIZE = 1024 * 1024


class Session:
    """An async client for one Mastodon instance.

    Give it an :class:`App` and a :class:`TokenStore` and it registers the app and obtains a
    client-credentials token the first time, saves both, and reuses them ever after (a second
    Session on the same store makes no registration or token request). When the server says the
    app token is invalid or revoked, it obtains a new one once, for all concurrent tasks
    together, and replays the request. Or give it an ``access_token`` you already have (a user
    token from the instance's Development settings): it is used as is and never replaced. Or
    give it an ``account`` id with the ``app`` and ``store`` that :class:`~aiomasto.Authorizer`
    signed that person in with: it acts as that person, refreshing the token where the server
    issues refresh tokens.

    The Session uses its own ``aiohttp.ClientSession``, created inside the running loop, or the
    one you pass as ``http`` (which it then never closes). A response body larger than
    ``max_response_size`` bytes (16 MiB by default, counted after decompression) raises
    :class:`~aiomasto.ResponseTooLarge` as soon as it outgrows it and is not retried.

    Rate limits are read from every response and shared by all tasks using the Session;
    ``rate_limit`` picks the policy (``"wait"``, ``"raise"`` or ``"pace"``, see
    :data:`~aiomasto.policies.RateLimitPolicy`). ``max_wait`` (default 960 s: Mastodon's
    15-minute paging window and a minute to spare, so a crawl rides it out) bounds every
    rate-limit wait: one that would be longer (a reset hours or years ahead, a huge
    ``Retry-After``) raises :class:`~aiomasto.RateLimited` at once, its ``reset`` and
    ``retry_after`` saying when the request may go; ``pace`` spreads a window that resets
    later than ``max_wait`` over ``max_wait``. ``Retry-After`` counts only as whole seconds or
    an HTTP date, and a 429 holds its window for a second at least, whatever it says. An app
    registration answered 429 sits out one announced reset at most, then raises. A rate-limit
    wait of 5 s or more is logged once at INFO (the window, and when the wait ends);
    ``on_wait`` is called once per wait, not once per task it holds. The budget lives in the
    Session; ``limiter=RedisLimiter(url)`` (:class:`~aiomasto.RedisLimiter`) keeps it in Redis
    instead, so every process and machine using the same token shares one budget.

    Idempotent requests are retried on connection errors, timeouts and 502/503/504 as
    ``retry`` says (``NO_RETRY`` to turn it off). ``timeout`` is the default for every request
    (an ``aiohttp.ClientTimeout``; default 10 s to connect, 30 s of silence while reading, 60 s
    in all): ``connect`` and ``sock_read`` bound each attempt, and ``total`` is the deadline of
    the whole request, its retries and the backoff between them included. An attempt gets at
    most what is left of it (then :class:`~aiomasto.RequestTimeout`), and no retry starts whose
    backoff would end past it (the last error is raised). Rate-limit waits are not counted:
    ``max_wait`` bounds them; waiting for another task's request to report the budget first
    is. ``total=None`` means no deadline. (Obtaining or renewing the token is a request of its
    own, with its own deadline.)

    ``on_wait`` and ``on_retry`` are told before the Session sleeps for a rate limit or retries
    (plain or async callables); ``clock`` and ``sleep`` can be replaced in tests.

    Example::

        app = App(name="Relationship Mapper", scopes="read")
        store = JsonFileTokenStore("~/.config/aiomasto/credentials.json")
        async with Session("https://mastodon.example", app=app, store=store) as masto:
            print(await masto.verify_app())
            page = await masto.followers_page("14715", limit=80)
    """

    def __init__(
        self,
        instance: str | URL,
        *,
        app: App | None = None,
        store: TokenStore | None = None,
        access_token: str | None = None,
        account: str | int | None = None,
        http: aiohttp.ClientSession | None = None,
        timeout: aiohttp.ClientTimeout = DEFAULT_TIMEOUT,
        max_response_size: int = DEFAULT_MAX_RESPONSE_SIZE,
        user_agent: str | None = None,
        allow_insecure_http: bool = False,
        rate_limit: RateLimitPolicy = "wait",
        max_wait: float = DEFAULT_MAX_WAIT,
        limiter: LimiterBackend | None = None,
        retry: Retry = DEFAULT_RETRY,
        on_wait: WaitHook | None = None,
        on_retry: RetryHook | None = None,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.instance: URL = normalise_instance(instance, allow_insecure_http=allow_insecure_http)
        self._allow_insecure_http = allow_insecure_http
        self._timeout = timeout
        self._clock = clock
        self._sleep = sleep
        self._streaming: URL | None = None
        self._streams: set[Stream] = set()
        self._link_urls: dict[str, URL] = {}
        self._sleep = sleep
        # Cleared when the server answers GET /api/v1/accounts (4.3+) with a 404.
        self._batched_accounts = True
        self._app = app
        self._store: TokenStore = store if store is not None else MemoryTokenStore()
        if access_token is not None and (type(access_token) is not str or not access_token.strip()):
            raise ConfigurationError("access_token must be a non-empty string (or left out)")
        if account is not None and (app is None or access_token is not None):
            raise ConfigurationError("account= needs app= (and no access_token=)")
        app_key = StoreKey(instance=str(self.instance), app=app.name) if app else None
        self._tokens: Tokens
        if access_token is not None:
            self._tokens = GivenToken(access_token, self._send, store=self._store, key=app_key)
        elif app is not None and account is not None:
            user_key = StoreKey(instance=str(self.instance), app=app.name, account=str(account))
            self._tokens = UserTokens(self._send, store=self._store, key=user_key, clock=clock)
        elif app is not None and app_key is not None:
            self._tokens = AppTokens(
                app, self._send, store=self._store, key=app_key, instance=str(self.instance)
            )
        else:
            self._tokens = NoToken()
        self._account = None if account is None else str(account)
        self._store_key = (
            None
            if app_key is None
            else StoreKey(instance=app_key.instance, app=app_key.app, account=self._account)
        )
        if rate_limit not in ("wait", "raise", "pace"):
            raise ConfigurationError(
                f"rate_limit must be 'wait', 'raise' or 'pace', not {rate_limit!r}"
            )
        if not 0 <= max_wait < math.inf:
            raise ConfigurationError(f"max_wait must be a number of seconds >= 0, not {max_wait!r}")
        self._transport = Transport(
            http=http,
            timeout=timeout,
            user_agent=user_agent
            or f"aiomasto/{__version__} (+https://pypi.org/project/aiomasto/)",
            max_response_size=max_response_size,
        )
        self._requester = Requester(
            self.instance,
            self._transport,
            RateLimiter(rate_limit, clock, max_wait=max_wait)
            if limiter is None
            else limiter.bind(str(self.instance), rate_limit, clock, max_wait=max_wait),
            retry=retry,
            timeout=timeout,
            max_wait=max_wait,
            on_wait=on_wait,
            on_retry=on_retry,
            sleep=sleep,
        )

    def __repr__(self) -> str:
        mode = {
            GivenToken: "user token",
            UserTokens: f"account {self._account}",
            AppTokens: "app",
        }.get(type(self._tokens), "anonymous")
        return f"<Session {self.instance} ({mode})>"

    async def __aenter__(self) -> Self:
        await self._transport.open()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._tokens.cancel()
        for stream in list(self._streams):
            await stream.aclose()
        await self._transport.close()

    # -- what the Session holds -------------------------------------------------------------

    @property
    def application(self) -> Application | None:
        """The registered application (with its client credentials) once known, else ``None``."""
        return self._tokens.application

    @property
    def store_key(self) -> StoreKey | None:
        """Where this Session's credentials are kept in its store (``None`` without an app).

        The instance in it is the normalised origin, however the URL was spelled.
        """
        return self._store_key

    @property
    def ratelimit(self) -> RateLimit | None:
        """The rate-limit window the server reported last, if it reports any."""
        return self._requester.limiter.latest

    @property
    def token(self) -> Token | None:
        """The token in use once known (its repr never shows the secret), else ``None``."""
        return self._tokens.cached

    # -- token lifecycle --------------------------------------------------------------------

    async def authenticate(self) -> Token | None:
        """Make sure the Session has its token: from the store, or by registering and asking.

        Called by every request; call it yourself to fail early. Returns ``None`` for an
        anonymous Session (no app and no access token). However many tasks call it at once,
        one attempt runs, and its failure is raised in every task that waited for it.
        """
        return await self._tokens.current()

    async def revoke(self) -> None:
        """Revoke the token on the server and forget it.

        An app Session keeps its registration and obtains a new app token on the next
        request. A stored user's Session deletes the user's record (sign in again to use it).
        The client credentials are sent whenever the app's registration is known: Mastodon
        refuses to revoke a user token without them. Revoking twice is harmless.
        """
        await self._tokens.revoke()

    # -- requests ---------------------------------------------------------------------------

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: Params | None = None,
        data: Params | None = None,
        json: Any = None,
        files: Mapping[str, FileSpec] | None = None,
        headers: Mapping[str, str] | None = None,
        form: Mapping[str, str] | None = None,
        timeout: aiohttp.ClientTimeout | None = None,
    ) -> RawResponse:
        """Send an authenticated API request and return the raw response (status < 400).

        ``path`` is relative to the instance (``/api/v1/...``) or an absolute URL on the instance
        origin. ``params`` go in the query string, ``data`` as a form, ``json`` as a JSON body,
        ``files`` (with ``data`` as the other fields) as ``multipart/form-data``; in
        ``params`` and ``data`` a list becomes repeated ``key[]`` keys and a mapping
        ``key[sub]`` keys, as Mastodon reads them, and ``None`` is left out. ``headers`` are
        sent along (``Authorization``, ``Host``, ``Content-Length`` and
        ``Transfer-Encoding`` are the Session's own: giving one raises
        :class:`~aiomasto.ConfigurationError`). ``form`` is the older name of a plain form.

        Errors are raised as :class:`~aiomasto.HTTPError` subclasses. An app token that the
        server rejects is renewed once and the request replayed. GET and HEAD are retried as
        the Session's ``retry`` says, and so is a request with an ``Idempotency-Key`` header
        (the server carries it out once, however often it arrives); nothing else is.
        ``timeout`` overrides the Session's for this call.

        Example::

            response = await masto.request("GET", "/api/v1/instance/peers")
            await masto.request("POST", "/api/v1/statuses", json={"status": "hi"},
                                headers={"Idempotency-Key": "greeting-2024-05-01"})
        """
        extra = checked_headers(headers)
        body = _body(data=data, json=json, files=files, form=form)
        url = self._url(path, query_pairs(params))
        token = await self.authenticate()
        try:
            return await self._send(
                method, url, form=form, body=body, headers=extra, token=token, timeout=timeout
            )
        except HTTPError as exc:
            fresh = None if token is None else await self._tokens.replace(token, exc)
            if fresh is None:
                raise
        return await self._send(
            method, url, form=form, body=body, headers=extra, token=fresh, timeout=timeout
        )

    async def get(
        self,
        cls: type[T],
        path: str,
        *,
        params: Params | None = None,
        headers: Mapping[str, str] | None = None,
        timeout: aiohttp.ClientTimeout | None = None,
    ) -> T:
        """GET ``path`` and decode the JSON object into ``cls`` (any entity or attrs class).

        Example::

            status = await masto.get(Status, "/api/v1/statuses/110000000000000001")
        """
        response = await self.request("GET", path, params=params, headers=headers, timeout=timeout)
        return decode_json(cls, response.body, **response.context())

    async def get_list(
        self,
        cls: type[T],
        path: str,
        *,
        params: Params | None = None,
        timeout: aiohttp.ClientTimeout | None = None,
    ) -> list[T]:
        """GET ``path`` and decode the JSON array into a list of ``cls``.

        Example::

            rules = await masto.get_list(Rule, "/api/v1/instance/rules")
        """
        response = await self.request("GET", path, params=params, timeout=timeout)
        return decode_json_list(cls, response.body, **response.context())

    async def post(
        self,
        cls: type[T],
        path: str,
        *,
        params: Params | None = None,
        data: Params | None = None,
        json: Any = None,
        files: Mapping[str, FileSpec] | None = None,
        headers: Mapping[str, str] | None = None,
        timeout: aiohttp.ClientTimeout | None = None,
    ) -> T:
        """POST to ``path`` (a form, JSON or multipart, as :meth:`request`) and decode the
        answer into ``cls``.

        Example::

            relationship = await masto.post(Relationship, f"/api/v1/accounts/{id}/follow",
                                            json={"reblogs": False})
        """
        return await self._call("POST", cls, path, params, data, json, files, headers, timeout)

    async def put(
        self,
        cls: type[T],
        path: str,
        *,
        params: Params | None = None,
        data: Params | None = None,
        json: Any = None,
        files: Mapping[str, FileSpec] | None = None,
        headers: Mapping[str, str] | None = None,
        timeout: aiohttp.ClientTimeout | None = None,
    ) -> T:
        """PUT to ``path`` and decode the answer into ``cls`` (as :meth:`post`).

        Example: ``await masto.put(Status, f"/api/v1/statuses/{id}", json={"status": "fixed"})``
        """
        return await self._call("PUT", cls, path, params, data, json, files, headers, timeout)

    async def patch(
        self,
        cls: type[T],
        path: str,
        *,
        params: Params | None = None,
        data: Params | None = None,
        json: Any = None,
        files: Mapping[str, FileSpec] | None = None,
        headers: Mapping[str, str] | None = None,
        timeout: aiohttp.ClientTimeout | None = None,
    ) -> T:
        """PATCH ``path`` and decode the answer into ``cls`` (as :meth:`post`).

        Example::

            me = await masto.patch(CredentialAccount, "/api/v1/accounts/update_credentials",
                                   data={"bot": True})
        """
        return await self._call("PATCH", cls, path, params, data, json, files, headers, timeout)

    async def delete(
        self,
        cls: type[T],
        path: str,
        *,
        params: Params | None = None,
        headers: Mapping[str, str] | None = None,
        timeout: aiohttp.ClientTimeout | None = None,
    ) -> T:
        """DELETE ``path`` and decode the answer into ``cls``.

        Example: ``deleted = await masto.delete(Status, f"/api/v1/statuses/{id}")``
        """
        return await self._call("DELETE", cls, path, params, None, None, None, headers, timeout)

    async def _call(
        self,
        method: str,
        cls: type[T],
        path: str,
        params: Params | None,
        data: Params | None,
        json: Any,
        files: Mapping[str, FileSpec] | None,
        headers: Mapping[str, str] | None,
        timeout: aiohttp.ClientTimeout | None,
    ) -> T:
        response = await self.request(
            method,
            path,
            params=params,
            data=data,
            json=json,
            files=files,
            headers=headers,
            timeout=timeout,
        )
        return decode_json(cls, response.body, **response.context())

    def paginate(
        self,
        cls: type[T],
        path: str,
        *,
        params: Params | None = None,
        direction: Direction = "next",
        max_items: int | None = None,
        max_pages: int | None = None,
        skip_undecodable: bool = False,
    ) -> Paginator[T]:
        """Every item of a Link-paginated endpoint, page after page, as ``cls``.

        Timelines, notifications, bookmarks, favourites, lists, blocks, mutes: any endpoint
        that pages with a ``Link`` header. Each next page is fetched from the server's own
        Link URL, as :meth:`followers` does; ``params`` (lists become ``key[]``) shape the
        first request only, and the server carries them in its links.

        Example::

            async for status in masto.paginate(Status, "/api/v1/timelines/tag/python",
                                               params={"limit": 40}, max_items=200):
                print(status.url)
        """
        start = relative_cursor(self._url(path, query_pairs(params)))

        async def fetch(cursor: str) -> UndecodedPage[T]:
            return await self._undecoded_page(cls, cursor, skip_undecodable=skip_undecodable)

        return Paginator(
            fetch, start, direction=direction, max_items=max_items, max_pages=max_pages
        )

    async def get_json(
        self,
        cls: type[T],
        path: str,
        *,
        timeout: aiohttp.ClientTimeout | None = None,
        **params: str,
    ) -> T:
        """GET ``path`` and decode the JSON object into ``cls`` (:meth:`get` with the query
        given as keywords)."""
        return await self.get(cls, path, params=params or None, timeout=timeout)

    async def get_page(
        self,
        cls: type[T],
        path: str,
        *,
        timeout: aiohttp.ClientTimeout | None = None,
        skip_undecodable: bool = False,
        **params: str,
    ) -> Page[T]:
        """GET one page of a Link-paginated endpoint; ``path`` may be a cursor.

        An item that cannot be decoded raises :class:`~aiomasto.DecodeError` carrying its
        ``index`` and the page's ``cursor`` and ``next_cursor``; with ``skip_undecodable`` it is
        left out instead, logged at WARNING and listed in :attr:`Page.skipped`.
        """
        undecoded = await self._undecoded_page(
            cls, path, timeout=timeout, skip_undecodable=skip_undecodable, params=params
        )
        return undecoded.decode()

    async def _undecoded_page(
        self,
        cls: type[T],
        path: str,
        *,
        skip_undecodable: bool,
        timeout: aiohttp.ClientTimeout | None = None,
        params: Mapping[str, str] | None = None,
    ) -> UndecodedPage[T]:
        """:meth:`get_page` up to its body's decoding, which the result does when asked."""
        response = await self.request("GET", path, params=params or None, timeout=timeout)
        cursor = relative_cursor(response.url)
        header = response.headers.get("Link", "").strip()
        links, count = read_links(header)
        if header and not count:
            # A walk must not end quietly because its only map to the next page is unreadable.
            raise PaginationError(
                f"the Link header of {cursor} could not be read: {header[:120]!r}", cursor=cursor
            )
        next_cursor = self._cursor(links.get("next"), response.url)
        prev_cursor = self._cursor(links.get("prev"), response.url)

        def decode() -> Page[T]:
            return _decoded_page(
                cls, response, cursor, next_cursor, prev_cursor, skip_undecodable=skip_undecodable
            )

        return UndecodedPage(
            cursor=cursor,
            next_cursor=next_cursor,
            prev_cursor=prev_cursor,
            body=response.body,
            decode=decode,
        )

    async def verify_app(self) -> Application:
        """``GET /api/v1/apps/verify_credentials``: the application the token belongs to."""
        return await self.get_json(Application, "/api/v1/apps/verify_credentials")

    def followers(
        self,
        account_id: str | int,
        *,
        limit: int | None = None,
        direction: Direction = "next",
        max_items: int | None = None,
        max_pages: int | None = None,
        skip_undecodable: bool = False,
    ) -> Paginator[Account]:
        """Every account following ``account_id``, newest follow first, page after page.

        ``limit`` is the page size to ask for (Mastodon: default 40, at most 80). The cursor of
        this endpoint is a Follow id that only the Link header carries, so each next page is
        fetched from the server's own Link URL. An account the server sends that cannot be
        decoded raises :class:`~aiomasto.DecodeError`; with ``skip_undecodable=True`` it is
        left out, logged at WARNING and counted (:attr:`Page.skipped`,
        :attr:`Paginator.items_skipped`), and the walk goes on.

        Example::

            async for account in masto.followers("14715", limit=80):
                print(account.acct)
        """
        return self._relationships(
            "followers", account_id, limit, direction, max_items, max_pages, skip_undecodable
        )

    def following(
        self,
        account_id: str | int,
        *,
        limit: int | None = None,
        direction: Direction = "next",
        max_items: int | None = None,
        max_pages: int | None = None,
        skip_undecodable: bool = False,
    ) -> Paginator[Account]:
        """Every account ``account_id`` follows, newest follow first; see :meth:`followers`."""
        return self._relationships(
            "following", account_id, limit, direction, max_items, max_pages, skip_undecodable
        )

    async def followers_page(
        self,
        account_id: str | int,
        *,
        limit: int | None = None,
        cursor: str | None = None,
        skip_undecodable: bool = False,
    ) -> Page[Account]:
        """One page of the accounts following ``account_id``, newest follow first.

        Pass a page's ``next_cursor`` as ``cursor`` for the following page.
        ``skip_undecodable`` is as for :meth:`get_page`.
        """
        return await self.get_page(
            Account,
            cursor or self._relationships_url("followers", account_id, limit),
            skip_undecodable=skip_undecodable,
        )

    async def following_page(
        self,
        account_id: str | int,
        *,
        limit: int | None = None,
        cursor: str | None = None,
        skip_undecodable: bool = False,
    ) -> Page[Account]:
        """One page of the accounts ``account_id`` follows, newest follow first."""
        return await self.get_page(
            Account,
            cursor or self._relationships_url("following", account_id, limit),
            skip_undecodable=skip_undecodable,
        )

    def _relationships(
        self,
        kind: str,
        account_id: str | int,
        limit: int | None,
        direction: Direction,
        max_items: int | None,
        max_pages: int | None,
        skip_undecodable: bool,
    ) -> Paginator[Account]:
        async def fetch(cursor: str) -> UndecodedPage[Account]:
            return await self._undecoded_page(Account, cursor, skip_undecodable=skip_undecodable)

        return Paginator(
            fetch,
            self._relationships_url(kind, account_id, limit),
            direction=direction,
            max_items=max_items,
            max_pages=max_pages,
        )

    @staticmethod
    def _relationships_url(kind: str, account_id: str | int, limit: int | None) -> str:
        path = f"/api/v1/accounts/{_path_segment(account_id)}/{kind}"
        if limit is None:
            return path
        if type(limit) is not int or limit < 1:
            raise ConfigurationError(f"limit must be a whole number of at least 1, not {limit!r}")
        return f"{path}?limit={limit}"

    # -- accounts ---------------------------------------------------------------------------

    async def verify_credentials(self) -> CredentialAccount:
        """``GET /api/v1/accounts/verify_credentials``: the token's own account.

        An app-only token raises :class:`~aiomasto.UserTokenRequired`.
        """
        return await self.get_json(CredentialAccount, "/api/v1/accounts/verify_credentials")

    async def userinfo(self) -> UserInfo:
        """``GET /oauth/userinfo`` (Mastodon 4.4+): who the token's user is, OpenID style.

        Needs a user token with the ``profile`` scope (:class:`~aiomasto.Forbidden` otherwise);
        older Mastodon, GoToSocial and Akkoma answer :class:`~aiomasto.NotFound`.
        """
        return await self.get_json(UserInfo, "/oauth/userinfo")

    async def account(self, account_id: str | int) -> Account:
        """``GET /api/v1/accounts/:id``; an unknown id raises :class:`~aiomasto.NotFound`."""
        return await self.get_json(Account, f"/api/v1/accounts/{_path_segment(account_id)}")

    async def lookup(self, acct: str) -> Account:
        """An account the server knows, by ``user``, ``user@domain`` or ``@user@domain``.

        Example::

            gargron = await masto.lookup("@Gargron@mastodon.social")
        """
        handle = acct.strip().removeprefix("@") if type(acct) is str else ""
        if not handle:
            raise ConfigurationError(f"acct must be a handle such as 'user@domain', not {acct!r}")
        return await self.get_json(Account, "/api/v1/accounts/lookup", acct=handle)

    async def relationships(
        self, account_ids: Iterable[str | int], *, chunk_size: int = 40
    ) -> list[Relationship]:
        """How the token's user relates to each account, in the order of ``account_ids``.

        Ids the server does not know are left out; long lists are sent in chunks of
        ``chunk_size``. Needs a user token (:class:`~aiomasto.UserTokenRequired` otherwise).
        """
        wanted = list(dict.fromkeys(_account_id(i) for i in account_ids))
        if type(chunk_size) is not int or chunk_size < 1:
            raise ConfigurationError(f"chunk_size must be at least 1, not {chunk_size!r}")
        found: dict[str, Relationship] = {}
        for start in range(0, len(wanted), chunk_size):
            chunk = wanted[start : start + chunk_size]
            query = "&".join(f"id[]={quote(i, safe='')}" for i in chunk)
            response = await self.request("GET", f"/api/v1/accounts/relationships?{query}")
            for relationship in decode_json_list(Relationship, response.body, **response.context()):
                found[relationship.id] = relationship
        return [found[i] for i in wanted if i in found]

    # -- streaming --------------------------------------------------------------------------

    def stream(
        self,
        name: StreamName,
        *,
        tag: str | None = None,
        list_id: str | int | None = None,
        reconnect: bool = True,
        max_reconnects: int | None = None,
        gap_fill: bool = True,
        on_reconnect: ReconnectHook | None = None,
        heartbeat: float = DEFAULT_HEARTBEAT,
        max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE,
    ) -> Stream:
        """The live events of a stream, as :class:`~aiomasto.StreamEvent` objects.

        ``name`` is one of Mastodon's streams: ``"user"`` (home timeline and notifications),
        ``"user:notification"``, ``"public"``, ``"public:local"``, ``"public:remote"`` (and
        their ``:media`` variants), ``"hashtag"`` and ``"hashtag:local"`` (with ``tag=``),
        ``"list"`` (with ``list_id=``) and ``"direct"``. It needs a user token.

        The WebSocket goes to the streaming URL the instance announces (read once from
        ``/api/v2/instance``, else ``/api/v1/instance``, else the instance itself): the one
        origin besides the instance the token is sent to, in the ``Authorization`` header,
        over ``wss://`` (``ws://`` only on loopback or with ``allow_insecure_http``).

        A connection that drops (reset, closed by the server, or a ping sent every
        ``heartbeat`` seconds left without a pong for half as long) is opened again after a
        jittered backoff (0.5 s doubling up to 30 s, back to the start once a connection has
        stayed up a minute); ``on_reconnect`` is told before each wait. After
        ``max_reconnects`` reconnects in a row without such a minute, the error that ended
        the last connection is raised (``None``: never give up; ``reconnect=False``: raise at
        the first drop). The ``user`` and ``user:notification`` streams fetch the
        notifications missed while away (``gap_fill``) and deliver every notification once.
        A bad token raises :class:`~aiomasto.Unauthorized`; a message larger than
        ``max_message_size`` bytes counts as a drop; unreadable messages are skipped and
        logged (see :class:`~aiomasto.Stream`).

        Example::

            async with masto.stream("user") as events:
                async for event in events:
                    if event.event == "notification":
                        print(event.payload)
        """
        query = check_stream_params(name, tag, list_id)
        if not heartbeat > 0:
            raise ConfigurationError(
                f"heartbeat must be a number of seconds > 0, not {heartbeat!r}"
            )
        if type(max_message_size) is not int or max_message_size < 1024:
            raise ConfigurationError(
                f"max_message_size must be at least 1024, not {max_message_size!r}"
            )
        decoders: dict[str, type[object]] = {
            "update": Status,
            "status.update": Status,
            "notification": Notification,
            "conversation": Conversation,
        }

        async def connect() -> Connection:
            base = await self._streaming_base()
            url = base.with_path(
                f"{base.raw_path.rstrip('/')}/api/v1/streaming", encoded=True
            ).with_query(query)
            token = await self.authenticate()
            for _ in range(2):
                headers = (
                    {}
                    if token is None
                    else {"Authorization": Secret(f"Bearer {token.access_token}")}
                )
                # The last check before the token leaves: the announced origin, nothing else.
                check_origin(url, base)
                opened = await self._transport.websocket(
                    url,
                    headers=headers,
                    heartbeat=heartbeat,
                    max_message_size=max_message_size,
                    connect_timeout=self._transport_timeout(),
                )
                if not isinstance(opened, RawResponse):
                    return opened
                error = error_for(opened, oauth=False)
                fresh = None if token is None else await self._tokens.replace(token, error)
                if fresh is None:
                    raise error
                token = fresh
            raise error

        async def fetch(since: str | None) -> list[object]:
            # One undecodable notification must not stop the others from being delivered.
            if since is None:
                page = await self.get_page(
                    Notification, "/api/v1/notifications", skip_undecodable=True, limit="1"
                )
            else:
                page = await self.get_page(
                    Notification,
                    "/api/v1/notifications",
                    skip_undecodable=True,
                    min_id=since,
                    limit="80",
                )
            return list(page.items)

        stream = Stream(
            name=name,
            shown_url=redact_url(self.instance.with_path("/api/v1/streaming").with_query(query)),
            connect=connect,
            decoders=decoders,
            fetch_notifications=fetch if gap_fill else None,
            reconnect=reconnect,
            max_reconnects=max_reconnects,
            on_reconnect=on_reconnect,
            sleep=self._sleep,
            clock=self._clock,
            on_close=self._streams.discard,
        )
        self._streams.add(stream)
        return stream

    async def _streaming_base(self) -> URL:
        """The streaming origin the instance announces, asked once (see :meth:`stream`)."""
        if self._streaming is not None:
            return self._streaming
        info = await self.instance_info()
        announced = info.configuration.urls.streaming
        self._streaming = streaming_origin(
            announced, self.instance, allow_insecure=self._allow_insecure_http
        )
        return self._streaming

    def _transport_timeout(self) -> float | None:
        return self._timeout.total or self._timeout.connect or None

    # -- statuses ---------------------------------------------------------------------------

    @overload
    async def post_status(
        self,
        text: str | None = None,
        *,
        visibility: str | None = None,
        in_reply_to: str | int | Status | None = None,
        spoiler_text: str | None = None,
        language: str | None = None,
        media: Iterable[str | int | MediaAttachment] | None = None,
        poll: Mapping[str, Any] | None = None,
        scheduled_at: None = None,
        sensitive: bool | None = None,
        idempotency_key: str | None = None,
    ) -> Status: ...

    @overload
    async def post_status(
        self,
        text: str | None = None,
        *,
        visibility: str | None = None,
        in_reply_to: str | int | Status | None = None,
        spoiler_text: str | None = None,
        language: str | None = None,
        media: Iterable[str | int | MediaAttachment] | None = None,
        poll: Mapping[str, Any] | None = None,
        scheduled_at: datetime | str,
        sensitive: bool | None = None,
        idempotency_key: str | None = None,
    ) -> ScheduledStatus: ...

    async def post_status(
        self,
        text: str | None = None,
        *,
        visibility: str | None = None,
        in_reply_to: str | int | Status | None = None,
        spoiler_text: str | None = None,
        language: str | None = None,
        media: Iterable[str | int | MediaAttachment] | None = None,
        poll: Mapping[str, Any] | None = None,
        scheduled_at: datetime | str | None = None,
        sensitive: bool | None = None,
        idempotency_key: str | None = None,
    ) -> Status | ScheduledStatus:
        """``POST /api/v1/statuses``: post a status (a :class:`ScheduledStatus` with
        ``scheduled_at``, at least 5 minutes ahead on Mastodon).

        Every post carries an ``Idempotency-Key`` (``idempotency_key``, or a fresh random
        one): Mastodon remembers it for an hour and answers a repeat with the status it
        already made, so the post is retried like a GET (after a dropped connection, a
        502...) and never appears twice. Pass your own key to make a post safe across
        restarts too (say, the id of the mention you answer). ``visibility`` is
        ``"public"``, ``"unlisted"``, ``"private"`` or ``"direct"``; ``media`` the ids of
        uploads (:meth:`upload_media`); ``poll`` e.g. ``{"options": ["yes", "no"],
        "expires_in": 3600}``. Left-out arguments are not sent (the account's defaults apply).

        Example::

            status = await masto.post_status("Hello!", visibility="unlisted")
            reply = await masto.post_status("@alice thanks", in_reply_to=mention.status,
                                            idempotency_key=f"reply-{mention.id}")
        """
        document: dict[str, Any] = {
            "status": text,
            "visibility": visibility,
            "in_reply_to_id": None if in_reply_to is None else _ref(in_reply_to),
            "spoiler_text": spoiler_text,
            "language": language,
            "sensitive": sensitive,
            "media_ids": None if media is None else [_ref(m) for m in media],
            "poll": None if poll is None else dict(poll),
            "scheduled_at": scheduled_at.isoformat()
            if isinstance(scheduled_at, datetime)
            else scheduled_at,
        }
        key = idempotency_key if idempotency_key is not None else uuid.uuid4().hex
        if type(key) is not str or not key.strip():
            raise ConfigurationError("idempotency_key must be a non-empty string")
        response = await self.request(
            "POST",
            "/api/v1/statuses",
            json={k: v for k, v in document.items() if v is not None},
            headers={"Idempotency-Key": key},
        )
        cls: type[Status | ScheduledStatus] = Status if scheduled_at is None else ScheduledStatus
        return decode_json(cls, response.body, **response.context())

    async def status(self, status_id: str | int) -> Status:
        """``GET /api/v1/statuses/:id``; one the token may not see raises
        :class:`~aiomasto.NotFound`."""
        return await self.get(Status, f"/api/v1/statuses/{_path_segment(status_id)}")

    async def edit_status(
        self,
        status_id: str | int | Status,
        text: str | None = None,
        *,
        spoiler_text: str | None = None,
        sensitive: bool | None = None,
        language: str | None = None,
        media: Iterable[str | int | MediaAttachment] | None = None,
        poll: Mapping[str, Any] | None = None,
    ) -> Status:
        """``PUT /api/v1/statuses/:id``: change one's own status (Mastodon keeps the old
        revisions: :meth:`status_history`). Only what is given changes.

        Example: ``await masto.edit_status(status, "Fixed a typo")``
        """
        document = {
            "status": text,
            "spoiler_text": spoiler_text,
            "sensitive": sensitive,
            "language": language,
            "media_ids": None if media is None else [_ref(m) for m in media],
            "poll": None if poll is None else dict(poll),
        }
        return await self.put(
            Status,
            f"/api/v1/statuses/{_status_segment(status_id)}",
            json={k: v for k, v in document.items() if v is not None},
        )

    async def status_history(self, status_id: str | int | Status) -> list[StatusEdit]:
        """``GET /api/v1/statuses/:id/history``: every revision, the first one first."""
        return await self.get_list(
            StatusEdit, f"/api/v1/statuses/{_status_segment(status_id)}/history"
        )

    async def status_source(self, status_id: str | int | Status) -> StatusSource:
        """``GET /api/v1/statuses/:id/source``: the plain text of one's own status."""
        return await self.get(StatusSource, f"/api/v1/statuses/{_status_segment(status_id)}/source")

    async def delete_status(self, status_id: str | int | Status) -> Status:
        """``DELETE /api/v1/statuses/:id``: delete one's own status. The answer is the
        deleted status with its ``text``, to post again (redraft). Not retried: a second
        DELETE of a deleted status is a :class:`~aiomasto.NotFound`."""
        return await self.delete(Status, f"/api/v1/statuses/{_status_segment(status_id)}")

    async def context(self, status_id: str | int | Status) -> Context:
        """``GET /api/v1/statuses/:id/context``: the thread, ancestors and descendants."""
        return await self.get(Context, f"/api/v1/statuses/{_status_segment(status_id)}/context")

    async def favourite(self, status_id: str | int | Status) -> Status:
        """``POST /api/v1/statuses/:id/favourite``; favouriting twice is harmless."""
        return await self._status_action(status_id, "favourite")

    async def unfavourite(self, status_id: str | int | Status) -> Status:
        """``POST /api/v1/statuses/:id/unfavourite``."""
        return await self._status_action(status_id, "unfavourite")

    async def boost(
        self, status_id: str | int | Status, *, visibility: str | None = None
    ) -> Status:
        """``POST /api/v1/statuses/:id/reblog``: the answer is the boost, its ``reblog`` the
        boosted status. ``visibility``: ``"public"``, ``"unlisted"`` or ``"private"``."""
        return await self.post(
            Status,
            f"/api/v1/statuses/{_status_segment(status_id)}/reblog",
            json={"visibility": visibility} if visibility is not None else None,
        )

    async def unboost(self, status_id: str | int | Status) -> Status:
        """``POST /api/v1/statuses/:id/unreblog``."""
        return await self._status_action(status_id, "unreblog")

    async def bookmark(self, status_id: str | int | Status) -> Status:
        """``POST /api/v1/statuses/:id/bookmark``."""
        return await self._status_action(status_id, "bookmark")

    async def unbookmark(self, status_id: str | int | Status) -> Status:
        """``POST /api/v1/statuses/:id/unbookmark``."""
        return await self._status_action(status_id, "unbookmark")

    async def _status_action(self, status_id: str | int | Status, action: str) -> Status:
        return await self.post(Status, f"/api/v1/statuses/{_status_segment(status_id)}/{action}")

    # -- media ------------------------------------------------------------------------------

    async def upload_media(
        self,
        file: str | os.PathLike[str] | bytes,
        *,
        description: str | None = None,
        focus: tuple[float, float] | None = None,
        filename: str | None = None,
        mime_type: str | None = None,
        max_polls: int = 60,
        poll_interval: float = 1.0,
    ) -> MediaAttachment:
        """Upload a file (``POST /api/v2/media``) and return it once the server is done.

        ``file`` is a path (read in a worker thread, off the event loop) or the bytes.
        ``filename`` and ``mime_type`` default to the path's name and the type its
        extension suggests. ``focus`` is the focal point, ``(x, y)`` from -1.0 to 1.0.
        Mastodon answers ``202 Accepted`` while it processes a large file; the upload is
        then polled (``GET /api/v1/media/:id``, ``206`` until ready) every
        ``poll_interval`` seconds, at most ``max_polls`` times, after which
        :class:`~aiomasto.MediaNotReady` is raised. A server without v2 (404) gets
        ``POST /api/v1/media``. Uploads are not retried (the server would keep each one).

        Example::

            media = await masto.upload_media("cat.jpg", description="A cat asleep on a laptop")
            await masto.post_status("Look", media=[media])
        """
        if isinstance(file, bytes):
            content, name = file, filename or "file"
        else:
            path = Path(file)
            content = await asyncio.to_thread(path.read_bytes)
            name = filename or path.name
        mime = mime_type or mimetypes.guess_type(name)[0] or "application/octet-stream"
        if type(max_polls) is not int or max_polls < 0:
            raise ConfigurationError(f"max_polls must be a whole number >= 0, not {max_polls!r}")
        fields: dict[str, str | None] = {
            "description": description,
            "focus": None if focus is None else f"{focus[0]},{focus[1]}",
        }
        files = {"file": (name, content, mime)}
        try:
            response = await self.request("POST", "/api/v2/media", data=fields, files=files)
        except NotFound:
            response = await self.request("POST", "/api/v1/media", data=fields, files=files)
        media = decode_json(MediaAttachment, response.body, **response.context())
        path_segment = _path_segment(media.id)
        polls = 0
        # 202 from the upload, then 206 from each look: still processing (url is null).
        while response.status in (202, 206):
            if polls >= max_polls:
                raise MediaNotReady(
                    f"media {media.id} was still processing after {polls} polls",
                    media_id=media.id,
                )
            await self._sleep(poll_interval)
            polls += 1
            response = await self.request("GET", f"/api/v1/media/{path_segment}")
            media = decode_json(MediaAttachment, response.body, **response.context())
        return media

    # -- relationships ----------------------------------------------------------------------

    async def follow(
        self,
        account_id: str | int,
        *,
        reblogs: bool | None = None,
        notify: bool | None = None,
        languages: Iterable[str] | None = None,
    ) -> Relationship:
        """``POST /api/v1/accounts/:id/follow``; again to change ``reblogs`` (show their
        boosts), ``notify`` (a notification for each of their posts) or ``languages``.

        Example: ``await masto.follow(account.id, reblogs=False)``
        """
        document = {
            "reblogs": reblogs,
            "notify": notify,
            "languages": None if languages is None else list(languages),
        }
        return await self._relate(account_id, "follow", document)

    async def unfollow(self, account_id: str | int) -> Relationship:
        """``POST /api/v1/accounts/:id/unfollow``."""
        return await self._relate(account_id, "unfollow")

    async def remove_from_followers(self, account_id: str | int) -> Relationship:
        """``POST /api/v1/accounts/:id/remove_from_followers``: they no longer follow you."""
        return await self._relate(account_id, "remove_from_followers")

    async def block(self, account_id: str | int) -> Relationship:
        """``POST /api/v1/accounts/:id/block``; follows between you end."""
        return await self._relate(account_id, "block")

    async def unblock(self, account_id: str | int) -> Relationship:
        """``POST /api/v1/accounts/:id/unblock``."""
        return await self._relate(account_id, "unblock")

    async def mute(
        self,
        account_id: str | int,
        *,
        duration: float | timedelta | None = None,
        notifications: bool | None = None,
    ) -> Relationship:
        """``POST /api/v1/accounts/:id/mute``: for ``duration`` (seconds or a timedelta;
        for ever when left out); ``notifications=False`` keeps their notifications coming.

        Example: ``await masto.mute(account.id, duration=timedelta(days=1))``
        """
        seconds = duration.total_seconds() if isinstance(duration, timedelta) else duration
        document = {
            "duration": None if seconds is None else int(seconds),
            "notifications": notifications,
        }
        return await self._relate(account_id, "mute", document)

    async def unmute(self, account_id: str | int) -> Relationship:
        """``POST /api/v1/accounts/:id/unmute``."""
        return await self._relate(account_id, "unmute")

    async def endorse(self, account_id: str | int) -> Relationship:
        """``POST /api/v1/accounts/:id/pin``: feature an account you follow on your profile
        (the path every Mastodon since 2.5 knows; 4.4 adds ``/endorse`` as its new name)."""
        return await self._relate(account_id, "pin")

    async def unendorse(self, account_id: str | int) -> Relationship:
        """``POST /api/v1/accounts/:id/unpin``."""
        return await self._relate(account_id, "unpin")

    async def _relate(
        self, account_id: str | int, action: str, document: Mapping[str, Any] | None = None
    ) -> Relationship:
        sent = {k: v for k, v in (document or {}).items() if v is not None}
        return await self.post(
            Relationship,
            f"/api/v1/accounts/{_path_segment(account_id)}/{action}",
            json=sent or None,
        )

    async def accounts(
        self, account_ids: Iterable[str | int], *, chunk_size: int = 40
    ) -> list[Account]:
        """Many accounts at once, in the order of ``account_ids`` (unknown ones left out).

        ``GET /api/v1/accounts?id[]=…`` (Mastodon 4.3+) in chunks of ``chunk_size``; a
        server without it (404) is asked one ``GET /api/v1/accounts/:id`` per account, and
        the Session remembers not to try the batch again.

        Example: ``authors = await masto.accounts(s.account.id for s in statuses)``
        """
        wanted = list(dict.fromkeys(_account_id(i) for i in account_ids))
        if type(chunk_size) is not int or chunk_size < 1:
            raise ConfigurationError(f"chunk_size must be at least 1, not {chunk_size!r}")
        found: dict[str, Account] = {}
        for start in range(0, len(wanted), chunk_size):
            chunk = wanted[start : start + chunk_size]
            if self._batched_accounts:
                try:
                    batch = await self.get_list(Account, "/api/v1/accounts", params={"id": chunk})
                except NotFound:
                    self._batched_accounts = False
                else:
                    found.update((account.id, account) for account in batch)
                    continue
            for account_id in chunk:
                try:
                    found[account_id] = await self.account(account_id)
                except (NotFound, Gone):
                    continue
        return [found[i] for i in wanted if i in found]

    # -- notifications ----------------------------------------------------------------------

    def notifications(
        self,
        *,
        types: Iterable[str] | None = None,
        exclude_types: Iterable[str] | None = None,
        account_id: str | int | None = None,
        limit: int | None = None,
        max_items: int | None = None,
        max_pages: int | None = None,
    ) -> Paginator[Notification]:
        """``GET /api/v1/notifications``, newest first, page after page.

        ``types`` keeps only those types (``["mention"]``), ``exclude_types`` leaves some out;
        ``account_id`` keeps those from one account; ``limit`` is the page size (40, at most
        80). To read what is new since a notification, walk until you reach its id.

        Example::

            async for notification in masto.notifications(types=["mention", "follow"]):
                print(notification.type, notification.account.acct)
        """
        params: dict[str, ParamValue] = {
            "types": None if types is None else _strings("types", types),
            "exclude_types": None
            if exclude_types is None
            else _strings("exclude_types", exclude_types),
            "account_id": None if account_id is None else _account_id(account_id),
            "limit": _limit(limit),
        }
        return self.paginate(
            Notification,
            "/api/v1/notifications",
            params=params,
            max_items=max_items,
            max_pages=max_pages,
        )

    async def notification(self, notification_id: str | int) -> Notification:
        """``GET /api/v1/notifications/:id``."""
        return await self.get(
            Notification, f"/api/v1/notifications/{_path_segment(notification_id)}"
        )

    async def dismiss_notification(self, notification_id: str | int) -> None:
        """``POST /api/v1/notifications/:id/dismiss``: remove one notification."""
        await self.request(
            "POST", f"/api/v1/notifications/{_path_segment(notification_id)}/dismiss"
        )

    async def clear_notifications(self) -> None:
        """``POST /api/v1/notifications/clear``: remove every notification."""
        await self.request("POST", "/api/v1/notifications/clear")

    # -- instance and timelines -------------------------------------------------------------

    async def instance_info(self) -> Instance:
        """The server's description and limits: ``GET /api/v2/instance``, or on servers
        without it (Akkoma, Mastodon < 4.0: 404) ``/api/v1/instance`` mapped into the same
        :class:`Instance`. (:attr:`instance` is the URL the Session talks to.)

        Example::

            info = await masto.instance_info()
            info.configuration.urls.streaming   # "wss://streaming.mastodon.example"
        """
        try:
            return await self.get(Instance, "/api/v2/instance")
        except NotFound:
            return Instance.from_v1(await self.get(InstanceV1, "/api/v1/instance"))

    def home_timeline(
        self,
        *,
        limit: int | None = None,
        max_items: int | None = None,
        max_pages: int | None = None,
    ) -> Paginator[Status]:
        """``GET /api/v1/timelines/home``: statuses of the accounts you follow, newest first.

        Example::

            async for status in masto.home_timeline(max_items=100):
                print(status.account.acct, status.content)
        """
        return self.paginate(
            Status,
            "/api/v1/timelines/home",
            params={"limit": _limit(limit)},
            max_items=max_items,
            max_pages=max_pages,
        )

    def public_timeline(
        self,
        *,
        local: bool | None = None,
        remote: bool | None = None,
        only_media: bool | None = None,
        limit: int | None = None,
        max_items: int | None = None,
        max_pages: int | None = None,
    ) -> Paginator[Status]:
        """``GET /api/v1/timelines/public``: public statuses, newest first (``local``: this
        server's only, ``remote``: others' only)."""
        params: dict[str, ParamValue] = {
            "local": local,
            "remote": remote,
            "only_media": only_media,
            "limit": _limit(limit),
        }
        return self.paginate(
            Status,
            "/api/v1/timelines/public",
            params=params,
            max_items=max_items,
            max_pages=max_pages,
        )

    def bookmarks(
        self, *, limit: int | None = None, max_items: int | None = None
    ) -> Paginator[Status]:
        """``GET /api/v1/bookmarks``: what you bookmarked, the latest first."""
        return self.paginate(
            Status, "/api/v1/bookmarks", params={"limit": _limit(limit)}, max_items=max_items
        )

    def favourites(
        self, *, limit: int | None = None, max_items: int | None = None
    ) -> Paginator[Status]:
        """``GET /api/v1/favourites``: what you favourited, the latest first."""
        return self.paginate(
            Status, "/api/v1/favourites", params={"limit": _limit(limit)}, max_items=max_items
        )

    # -- plumbing ---------------------------------------------------------------------------

    def _url(
        self, path: str, params: Mapping[str, str] | list[tuple[str, str]] | None = None
    ) -> URL:
        if not params:
            known = self._link_urls.get(path)
            if known is not None:
                return known
        url = instance_url(self.instance, path)
        return url.update_query(params) if params else url

    def _cursor(self, link: str | None, base: URL) -> str | None:
        if not link:
            return None
        try:
            url = base.join(URL(link, encoded=True))
        except ValueError:
            raise PaginationError(
                f"a Link URL of {relative_cursor(base)} could not be read",
                cursor=relative_cursor(base),
            ) from None
        self._requester.check_origin(url)
        cursor = relative_cursor(url)
        if url.raw_authority == self.instance.raw_authority and not url.raw_fragment:
            # Spelled as the instance is, the URL is the one instance_url() would build from
            # the cursor: kept, a walk does not parse and join it again to fetch the page.
            self._link_urls[cursor] = url
            if len(self._link_urls) > _LINK_URLS:
                del self._link_urls[next(iter(self._link_urls))]
        return cursor

    async def _send(
        self,
        method: str,
        target: str | URL,
        *,
        form: Mapping[str, str] | None = None,
        body: Body | None = None,
        headers: Mapping[str, str] | None = None,
        token: Token | None = None,
        idempotent: bool | None = None,
        timeout: aiohttp.ClientTimeout | None = None,
    ) -> RawResponse:
        url = target if isinstance(target, URL) else self._url(target)
        return await self._requester.send(
            method,
            url,
            form=form,
            body=body,
            headers=headers,
            token=token,
            idempotent=idempotent,
            timeout=timeout,
        )


def _body(
    *,
    data: Params | None,
    json: Any,
    files: Mapping[str, FileSpec] | None,
    form: Mapping[str, str] | None,
) -> Body | None:
    given = [name for name, v in (("data", data), ("json", json), ("form", form)) if v is not None]
    if files is not None and (json is not None or form is not None):
        raise ConfigurationError("files= goes with data= (the other fields), not json= or form=")
    if len(given) > 1 and files is None:
        raise ConfigurationError(f"give one body, not {' and '.join(given)}")
    if files is not None:
        return multipart_body(data, files)
    if json is not None:
        return json_body(json)
    if data is not None:
        return form_body(data)
    return None


def _ref(value: str | int | Status | MediaAttachment) -> str:
    """An id, from an id or from the entity it names."""
    if isinstance(value, Status | MediaAttachment):
        return value.id
    return _account_id(value)


def _status_segment(value: str | int | Status) -> str:
    return quote(_ref(value), safe="")


def _strings(name: str, values: Iterable[str]) -> list[str]:
    if isinstance(values, str):
        raise ConfigurationError(f"{name} must be a list of strings, not one string")
    items = list(values)
    if not all(type(v) is str and v for v in items):
        raise ConfigurationError(f"{name} must be a list of non-empty strings")
    return items


def _limit(limit: int | None) -> int | None:
    if limit is not None and (type(limit) is not int or limit < 1):
        raise ConfigurationError(f"limit must be a whole number of at least 1, not {limit!r}")
    return limit


def _account_id(value: str | int) -> str:
    """An id as the API spells it: ids are strings, but user code often holds them as ints."""
    if type(value) is int and value >= 0:
        return str(value)
    if type(value) is not str or not value or value in (".", ".."):
        raise ConfigurationError(f"not an id: {value!r} (ids are strings such as '14715')")
    return value


def _path_segment(value: str | int) -> str:
    return quote(_account_id(value), safe="")


def _decoded_page(
    cls: type[T],
    response: RawResponse,
    cursor: str,
    next_cursor: str | None,
    prev_cursor: str | None,
    *,
    skip_undecodable: bool,
) -> Page[T]:
    """The :class:`Page` of a response whose Links are read: its body decoded into ``cls``.

    An item that cannot be decoded raises :class:`~aiomasto.DecodeError` carrying the page's
    cursors, or with ``skip_undecodable`` is left out, logged and listed in ``skipped``.
    """
    try:
        items, skipped = decode_page(
            cls, response.body, skip_undecodable=skip_undecodable, context=response.context
        )
    except DecodeError as exc:
        exc.cursor, exc.next_cursor, exc.prev_cursor = cursor, next_cursor, prev_cursor
        raise
    for problem in skipped:
        problem.cursor, problem.next_cursor, problem.prev_cursor = cursor, next_cursor, prev_cursor
        log.warning("skipped item %d of a page, it cannot be decoded: %s", problem.index, problem)
    return Page(
        items=items,
        cursor=cursor,
        next_cursor=next_cursor,
        prev_cursor=prev_cursor,
        ratelimit=response.ratelimit,
        headers=response.headers,
        skipped=skipped,
    )
