"""The Session: one instance, one token lifecycle, one connection pool, shared by many tasks."""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import math
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from types import TracebackType
from typing import Self, TypeVar
from urllib.parse import quote

import aiohttp
from yarl import URL

from ._converter import decode_json, decode_json_list
from ._http import DEFAULT_TIMEOUT, Transport
from ._limiter import RateLimiter
from ._protocol import RawResponse, is_token_rejection
from ._requester import Requester
from ._version import __version__
from .auth import App, client_credentials_form, registration_form, revoke_form
from .entities import Account, Application, CredentialAccount, Relationship, Token
from .errors import (
    ConfigurationError,
    DecodeError,
    HTTPError,
    OAuthError,
    PaginationError,
)
from .pagination import Direction, Page, Paginator, parse_links, relative_cursor
from .policies import (
    RateLimitPolicy,
    Retry,
    RetryHook,
    WaitHook,
)
from .ratelimit import RateLimit
from .stores import Credentials, MemoryTokenStore, StoreKey, TokenStore

__all__ = ["Session"]

log = logging.getLogger("aiomasto")

T = TypeVar("T")

DEFAULT_RETRY = Retry()
# Mastodon's longest window a crawler meets is the paging one (300 per 15 minutes): a crawl
# that spent it must sit out up to 900 s. A minute on top covers a skewed clock and the
# reset's margin; anything longer (a reset in 2100, a day-long family limit) is not a wait
# to sleep through unannounced.
DEFAULT_MAX_WAIT = 960.0


def normalise_instance(instance: str | URL, *, allow_insecure_http: bool) -> URL:
    """The instance origin as a URL; ``mastodon.example`` means ``https://mastodon.example``.

    Plain ``http://`` would send the token in clear text, so it is refused unless the host is a
    loopback address or the caller explicitly allows it.
    """
    text = str(instance).strip()
    if "://" not in text:
        text = f"https://{text}"
    url = URL(text)
    if url.scheme not in ("https", "http") or not url.host:
        raise ConfigurationError(f"not an instance URL: {str(instance)!r}")
    if url.user or url.password:
        raise ConfigurationError("the instance URL must not carry credentials")
    if url.scheme == "http" and not allow_insecure_http and not _is_loopback(url.host):
        raise ConfigurationError(
            f"refusing plain http:// for {url.host}: tokens would travel in clear text; "
            "use https:// or pass allow_insecure_http=True"
        )
    return url.origin()


def _is_loopback(host: str) -> bool:
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


class Session:
    """An async client for one Mastodon instance.

    Give it an :class:`App` and a :class:`TokenStore` and it registers the app and obtains a
    client-credentials token the first time, saves both, and reuses them ever after (a second
    Session on the same store makes no registration or token request). When the server says the
    app token is invalid or revoked, it obtains a new one once, for all concurrent tasks
    together, and replays the request. Or give it an ``access_token`` you already have (a user
    token from the instance's Development settings): it is used as is and never replaced.

    The Session uses its own ``aiohttp.ClientSession``, created inside the running loop, or the
    one you pass as ``http`` (which it then never closes).

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
    ``on_wait`` is called once per wait, not once per task it holds.

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
        http: aiohttp.ClientSession | None = None,
        timeout: aiohttp.ClientTimeout = DEFAULT_TIMEOUT,
        user_agent: str | None = None,
        allow_insecure_http: bool = False,
        rate_limit: RateLimitPolicy = "wait",
        max_wait: float = DEFAULT_MAX_WAIT,
        retry: Retry = DEFAULT_RETRY,
        on_wait: WaitHook | None = None,
        on_retry: RetryHook | None = None,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.instance: URL = normalise_instance(instance, allow_insecure_http=allow_insecure_http)
        self._app = app
        self._store: TokenStore = store if store is not None else MemoryTokenStore()
        self._key = StoreKey(instance=str(self.instance), app=app.name) if app else None
        self._user_token = access_token is not None
        self._token: Token | None = Token(access_token=access_token) if access_token else None
        self._application: Application | None = None
        self._loaded = access_token is not None or app is None
        self._auth_lock = asyncio.Lock()
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
        )
        self._requester = Requester(
            self.instance,
            self._transport,
            RateLimiter(rate_limit, clock, max_wait=max_wait),
            retry=retry,
            timeout=timeout,
            max_wait=max_wait,
            on_wait=on_wait,
            on_retry=on_retry,
            sleep=sleep,
        )

    def __repr__(self) -> str:
        mode = "user token" if self._user_token else "app" if self._app else "anonymous"
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
        await self._transport.close()

    # -- what the Session holds -------------------------------------------------------------

    @property
    def application(self) -> Application | None:
        """The registered application (with its client credentials) once known, else ``None``."""
        return self._application

    @property
    def ratelimit(self) -> RateLimit | None:
        """The rate-limit window the server reported last, if it reports any."""
        return self._requester.limiter.latest

    @property
    def token(self) -> Token | None:
        """The token in use once known (its repr never shows the secret), else ``None``."""
        return self._token

    # -- token lifecycle --------------------------------------------------------------------

    async def authenticate(self) -> Token | None:
        """Make sure the Session has its token: from the store, or by registering and asking.

        Called by every request; call it yourself to fail early. Returns ``None`` for an
        anonymous Session (no app and no access token).
        """
        if not self._loaded:
            async with self._auth_lock:
                if not self._loaded:
                    await self._load_or_acquire()
                    self._loaded = True
        return self._token

    def _registration(self) -> tuple[App, StoreKey]:
        if self._app is None or self._key is None:
            raise ConfigurationError("this Session has no App, so it cannot obtain a token")
        return self._app, self._key

    async def _load_or_acquire(self) -> None:
        app, key = self._registration()
        stored = await self._store.load(key)
        application = stored.app if stored else None
        token = stored.token if stored else None
        if application is not None and not app.matches(application):
            log.info(
                "the stored registration of %r on %s lacks the requested scopes or redirect "
                "URIs; registering the app again",
                app.name,
                self.instance,
            )
            application, token = None, None
        if token is not None and not set(app.requested_token_scopes) <= set(token.scopes):
            token = None  # the app now asks for more than the stored token was granted
        fresh = application is None
        if application is None:
            application = await self._register_and_save(app, key)
        if token is None:
            application, token = await self._obtain_app_token(app, key, application, fresh=fresh)
        self._application = application
        self._token = token

    async def _register(self, app: App) -> Application:
        response = await self._send("POST", "/api/v1/apps", form=registration_form(app))
        application = decode_json(Application, response.body, **response.context())
        if not application.client_id or not application.client_secret:
            raise DecodeError(
                "the server registered the app but sent no client_id or client_secret",
                entity="Application",
                **response.context(),
            )
        log.info("registered app %r on %s", app.name, self.instance)
        return application

    async def _request_app_token(self, app: App, application: Application) -> Token:
        response = await self._send(
            "POST",
            "/oauth/token",
            form=client_credentials_form(app, application),
            idempotent=True,  # the server hands back the same token (token reuse)
        )
        token = decode_json(Token, response.body, **response.context())
        log.info("obtained an app token for %r on %s", app.name, self.instance)
        return token

    async def _register_and_save(self, app: App, key: StoreKey) -> Application:
        application = await self._register(app)
        # Saved at once: a crash before the token arrives must not cost another registration.
        await self._store.save(key, Credentials(app=application))
        return application

    async def _obtain_app_token(
        self, app: App, key: StoreKey, application: Application, *, fresh: bool
    ) -> tuple[Application, Token]:
        """Request an app token and save it; register again, once, if the app is gone.

        ``invalid_client`` for credentials that worked before means the app was deleted on the
        server (an admin, or app vacuuming before Mastodon 4.3). For an app registered moments
        ago it means something else is wrong, and the error is raised.
        """
        try:
            token = await self._request_app_token(app, application)
        except OAuthError as exc:
            if fresh or exc.error != "invalid_client":
                raise
            log.warning(
                "app %r is unknown to %s (deleted server-side?); registering it again",
                app.name,
                self.instance,
            )
            application = await self._register_and_save(app, key)
            token = await self._request_app_token(app, application)
        await self._store.save(key, Credentials(app=application, token=token))
        return application, token

    async def _renew_app_token(self, rejected: Token) -> None:
        """Replace a rejected app token, once for all the tasks that saw it rejected."""
        app, key = self._registration()
        async with self._auth_lock:
            if self._token is not rejected:
                return  # another task renewed it while this one waited
            log.info(
                "the app token of %r was rejected by %s; requesting a new one",
                app.name,
                self.instance,
            )
            application = self._application
            if application is None:
                application = await self._register_and_save(app, key)
            self._application, self._token = await self._obtain_app_token(
                app, key, application, fresh=False
            )

    async def revoke(self) -> None:
        """Revoke the token on the server and forget it (the app registration is kept).

        The next request obtains a new app token; a user-token Session has no token afterwards.
        """
        token = self._token
        if token is None:
            return
        await self._send(
            "POST",
            "/oauth/revoke",
            form=revoke_form(token.access_token, self._application),
            idempotent=True,  # revoking twice is harmless (RFC 7009)
        )
        async with self._auth_lock:
            self._token = None
            if self._key is not None and not self._user_token:
                await self._store.save(self._key, Credentials(app=self._application))
                self._loaded = False

    # -- requests ---------------------------------------------------------------------------

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        form: Mapping[str, str] | None = None,
        timeout: aiohttp.ClientTimeout | None = None,
    ) -> RawResponse:
        """Send an authenticated API request and return the raw response (status < 400).

        ``path`` is relative to the instance (``/api/v1/...``) or an absolute URL on the instance
        origin. Errors are raised as :class:`~aiomasto.HTTPError` subclasses. An app token that
        the server rejects is renewed once and the request replayed. ``timeout`` overrides the
        Session's for this call.

        Example::

            response = await masto.request("GET", "/api/v1/instance/peers")
        """
        url = self._url(path, params)
        token = await self.authenticate()
        try:
            return await self._send(method, url, form=form, token=token, timeout=timeout)
        except HTTPError as exc:
            if token is None or self._user_token or not is_token_rejection(exc):
                raise
            await self._renew_app_token(token)
        return await self._send(method, url, form=form, token=self._token, timeout=timeout)

    async def get_json(
        self,
        cls: type[T],
        path: str,
        *,
        timeout: aiohttp.ClientTimeout | None = None,
        **params: str,
    ) -> T:
        """GET ``path`` and decode the JSON object into ``cls``."""
        response = await self.request("GET", path, params=params or None, timeout=timeout)
        return decode_json(cls, response.body, **response.context())

    async def get_page(
        self,
        cls: type[T],
        path: str,
        *,
        timeout: aiohttp.ClientTimeout | None = None,
        **params: str,
    ) -> Page[T]:
        """GET one page of a Link-paginated endpoint; ``path`` may be a cursor."""
        response = await self.request("GET", path, params=params or None, timeout=timeout)
        items = decode_json_list(cls, response.body, **response.context())
        cursor = relative_cursor(response.url)
        header = response.headers.get("Link", "").strip()
        links = parse_links(header)
        if header and not links:
            # A walk must not end quietly because its only map to the next page is unreadable.
            raise PaginationError(
                f"the Link header of {cursor} could not be read: {header[:120]!r}", cursor=cursor
            )
        return Page(
            items=items,
            cursor=cursor,
            next_cursor=self._cursor(links.get("next"), response.url),
            prev_cursor=self._cursor(links.get("prev"), response.url),
            ratelimit=response.ratelimit,
            headers=response.headers,
        )

    async def verify_app(self) -> Application:
        """``GET /api/v1/apps/verify_credentials``: the application the token belongs to."""
        return await self.get_json(Application, "/api/v1/apps/verify_credentials")

    def followers(
        self,
        account_id: str,
        *,
        limit: int | None = None,
        direction: Direction = "next",
        max_items: int | None = None,
        max_pages: int | None = None,
    ) -> Paginator[Account]:
        """Every account following ``account_id``, newest follow first, page after page.

        ``limit`` is the page size to ask for (Mastodon: default 40, at most 80). The cursor of
        this endpoint is a Follow id that only the Link header carries, so each next page is
        fetched from the server's own Link URL.

        Example::

            async for account in masto.followers("14715", limit=80):
                print(account.acct)
        """
        return self._relationships("followers", account_id, limit, direction, max_items, max_pages)

    def following(
        self,
        account_id: str,
        *,
        limit: int | None = None,
        direction: Direction = "next",
        max_items: int | None = None,
        max_pages: int | None = None,
    ) -> Paginator[Account]:
        """Every account ``account_id`` follows, newest follow first; see :meth:`followers`."""
        return self._relationships("following", account_id, limit, direction, max_items, max_pages)

    async def followers_page(
        self, account_id: str, *, limit: int | None = None, cursor: str | None = None
    ) -> Page[Account]:
        """One page of the accounts following ``account_id``, newest follow first.

        Pass a page's ``next_cursor`` as ``cursor`` for the following page.
        """
        return await self.get_page(
            Account, cursor or self._relationships_url("followers", account_id, limit)
        )

    async def following_page(
        self, account_id: str, *, limit: int | None = None, cursor: str | None = None
    ) -> Page[Account]:
        """One page of the accounts ``account_id`` follows, newest follow first."""
        return await self.get_page(
            Account, cursor or self._relationships_url("following", account_id, limit)
        )

    def _relationships(
        self,
        kind: str,
        account_id: str,
        limit: int | None,
        direction: Direction,
        max_items: int | None,
        max_pages: int | None,
    ) -> Paginator[Account]:
        async def fetch(cursor: str) -> Page[Account]:
            return await self.get_page(Account, cursor)

        return Paginator(
            fetch,
            self._relationships_url(kind, account_id, limit),
            direction=direction,
            max_items=max_items,
            max_pages=max_pages,
        )

    @staticmethod
    def _relationships_url(kind: str, account_id: str, limit: int | None) -> str:
        path = f"/api/v1/accounts/{_path_segment(account_id)}/{kind}"
        if limit is None:
            return path
        if limit < 1:
            raise ValueError("limit must be at least 1")
        return f"{path}?limit={limit}"

    # -- accounts ---------------------------------------------------------------------------

    async def verify_credentials(self) -> CredentialAccount:
        """``GET /api/v1/accounts/verify_credentials``: the token's own account.

        An app-only token raises :class:`~aiomasto.UserTokenRequired`.
        """
        return await self.get_json(CredentialAccount, "/api/v1/accounts/verify_credentials")

    async def account(self, account_id: str) -> Account:
        """``GET /api/v1/accounts/:id``; an unknown id raises :class:`~aiomasto.NotFound`."""
        return await self.get_json(Account, f"/api/v1/accounts/{_path_segment(account_id)}")

    async def lookup(self, acct: str) -> Account:
        """An account the server knows, by ``user``, ``user@domain`` or ``@user@domain``.

        Example::

            gargron = await masto.lookup("@Gargron@mastodon.social")
        """
        handle = acct.strip().removeprefix("@")
        if not handle:
            raise ValueError("acct must not be empty")
        return await self.get_json(Account, "/api/v1/accounts/lookup", acct=handle)

    async def relationships(
        self, account_ids: Iterable[str], *, chunk_size: int = 40
    ) -> list[Relationship]:
        """How the token's user relates to each account, in the order of ``account_ids``.

        Ids the server does not know are left out; long lists are sent in chunks of
        ``chunk_size``. Needs a user token (:class:`~aiomasto.UserTokenRequired` otherwise).
        """
        wanted = list(dict.fromkeys(account_ids))
        if chunk_size < 1:
            raise ValueError("chunk_size must be at least 1")
        found: dict[str, Relationship] = {}
        for start in range(0, len(wanted), chunk_size):
            chunk = wanted[start : start + chunk_size]
            query = "&".join(f"id[]={quote(i, safe='')}" for i in chunk)
            response = await self.request("GET", f"/api/v1/accounts/relationships?{query}")
            for relationship in decode_json_list(Relationship, response.body, **response.context()):
                found[relationship.id] = relationship
        return [found[i] for i in wanted if i in found]

    # -- plumbing ---------------------------------------------------------------------------

    def _url(self, path: str, params: Mapping[str, str] | None = None) -> URL:
        if path.startswith(("http://", "https://")):
            url = URL(path, encoded=True)
            self._requester.check_origin(url)
        elif path.startswith("/"):
            url = self.instance.join(URL(path, encoded=True))
        else:
            raise ValueError(f"expected a path starting with '/' or an instance URL, got {path!r}")
        return url.update_query(params) if params else url

    def _cursor(self, link: str | None, base: URL) -> str | None:
        if not link:
            return None
        url = base.join(URL(link, encoded=True))
        self._requester.check_origin(url)
        return relative_cursor(url)

    async def _send(
        self,
        method: str,
        target: str | URL,
        *,
        form: Mapping[str, str] | None = None,
        token: Token | None = None,
        idempotent: bool | None = None,
        timeout: aiohttp.ClientTimeout | None = None,
    ) -> RawResponse:
        url = target if isinstance(target, URL) else self._url(target)
        return await self._requester.send(
            method, url, form=form, token=token, idempotent=idempotent, timeout=timeout
        )


def _path_segment(value: str) -> str:
    if not value or value in (".", ".."):
        raise ValueError(f"not an id: {value!r}")
    return quote(value, safe="")
