"""One slot per instance: its Sessions, its credentials ladder, its budget, its health.

Every API host the crawl meets gets an :class:`Instance`, created on demand: the anonymous
Session first, an app Session (registered once and kept in the crawl's TokenStore) when the
server refuses anonymous reads, a user Session when it wants a user and the crawl has one.
All of them borrow the crawler's one ``aiohttp.ClientSession``. Each instance keeps its own
rate-limit budget (its Sessions' limiters, or the shared ``limiter=`` backend) and its own
concurrency, so a slow, limited or dead instance holds up nobody else; see
:class:`~aiomasto.crawl.Crawler` for how the global slots are given back while one waits.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import random
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any, Literal, TypeVar

import aiohttp
from yarl import URL

from aiomasto._converter import loads
from aiomasto._http import Transport
from aiomasto._limiter import LimiterBackend
from aiomasto._protocol import RawResponse
from aiomasto._singleflight import SingleFlight
from aiomasto.auth import App
from aiomasto.errors import (
    ConfigurationError,
    Forbidden,
    HTTPError,
    MastodonError,
    ResponseTooLarge,
    ServerError,
    TokenStoreError,
    TransportError,
    Unauthorized,
    Unprocessable,
)
from aiomasto.policies import Retry, Retrying, Waiting
from aiomasto.session import Session
from aiomasto.stores import TokenStore, store_keys

from ._model import InstanceRecord
from ._servers import ServerInfo, nodeinfo_link, quirks_for, read_instance, read_nodeinfo
from ._servers import software_from_version as _software_from_version

__all__ = ["AuthRequired", "Instance", "Instances", "Slot", "Unreachable"]

log = logging.getLogger("aiomasto.crawl")

AuthLevel = Literal["none", "app", "user"]
Sleep = Callable[[float], Awaitable[None]]
T = TypeVar("T")

# Each request already retries inside its Session (connection errors, 502/503/504); these
# rounds come on top, spaced out, before an instance is given up as unreachable.
FAILURE_ROUNDS = 3
ROUND_BACKOFF = 15.0
SESSION_RETRY = Retry(attempts=3, budget=30.0)


class Unreachable(MastodonError):
    """The instance did not answer within the retry bound; the message says why."""


class AuthRequired(MastodonError):
    """The instance answers only to credentials the crawl does not have."""


class Slot:
    """A walk's hold on one of the crawl's global slots.

    A walk holds it while it fetches and gives it back while it sleeps (a rate-limit wait, a
    backoff): a waiting instance must not keep the others from fetching.
    """

    def __init__(self, semaphore: asyncio.Semaphore) -> None:
        self._semaphore = semaphore
        self.held = False

    async def acquire(self) -> None:
        if not self.held:
            await self._semaphore.acquire()
            self.held = True

    def release(self) -> None:
        if self.held:
            self.held = False
            self._semaphore.release()


current_slot: ContextVar[Slot | None] = ContextVar("aiomasto_crawl_slot", default=None)


class Instance:
    """One API host: its Sessions by credential level, what it runs, and how it is doing."""

    def __init__(self, api_base: str, owner: Instances) -> None:
        self.api_base = api_base
        self.host = URL(api_base).raw_host or api_base
        self._owner = owner
        self.info: ServerInfo | None = None
        self._detect = SingleFlight[ServerInfo]()
        self._sessions: dict[AuthLevel, Session] = {}
        self._user_session: Session | Literal["unknown"] | None = "unknown"
        self.level: AuthLevel = "none"
        self.semaphore = asyncio.Semaphore(owner.per_instance)
        self.failures = 0
        self.dead: str | None = None
        self.auth_problem: str | None = None
        self.waiting_until: float | None = None

    # -- what it runs -------------------------------------------------------------------------

    async def detect(self) -> ServerInfo:
        """NodeInfo, then the instance endpoint: once per crawl, shared by every walk."""
        if self.info is None:
            if self._detect.running:
                # Another walk detects it: wait without the global slot (see Instances.released).
                return await self._owner.released(self._detect.run(self._detect_now))
            self.info = await self._detect.run(self._detect_now)
        return self.info

    async def _detect_now(self) -> ServerInfo:
        if self.info is not None:
            return self.info
        software = version = None
        try:
            index = await self._public_json("/.well-known/nodeinfo")
            href = nodeinfo_link(index)
            if href is not None:
                url = URL(self.api_base).join(URL(href))
                if url.origin() == URL(self.api_base).origin():
                    software, version = read_nodeinfo(await self._public_json(url.raw_path_qs))
        except (HTTPError, _NotJSON):
            pass  # no NodeInfo: the instance endpoint's version string tells
        domain, instance_version, limited = None, None, False
        for path in ("/api/v2/instance", "/api/v1/instance"):
            try:
                domain, instance_version, limited = read_instance(await self._public_json(path))
            except (HTTPError, _NotJSON):
                continue
            break
        software = software or _software_from_version(instance_version)
        version = version or instance_version
        info = ServerInfo(
            software=software,
            version=version,
            domain=domain,
            limited_federation=limited,
            quirks=quirks_for(software, version),
        )
        await self._owner.save(self.record(info))
        return info

    async def _public_json(self, path: str) -> Any:
        response = await self.call(lambda: self.session("none").request("GET", path))
        try:
            return loads(response.body, "document")
        except MastodonError:
            raise _NotJSON from None

    def record(self, info: ServerInfo | None = None) -> InstanceRecord:
        """What is known of the instance, for the sink."""
        info = info or self.info
        status = "ok"
        detail = ""
        if self.dead is not None:
            status, detail = "unreachable", self.dead
        elif self.auth_problem is not None:
            status, detail = "auth_required", self.auth_problem
        return InstanceRecord(
            api_base=self.api_base,
            domain=info.domain if info else None,
            software=info.software if info else None,
            version=info.version if info else None,
            quirks=info.quirks.as_dict() if info else {},
            auth=self.level,
            status=status,
            detail=detail,
            updated_at=datetime.fromtimestamp(self._owner.clock(), UTC),
        )

    # -- requests -----------------------------------------------------------------------------

    async def get(self, path: str) -> RawResponse:
        """GET an API path (or a cursor) with the least credentials the instance accepts."""
        return await self.read(lambda session: session.request("GET", path))

    async def read(self, fetch: Callable[[Session], Awaitable[T]]) -> T:
        """Run ``fetch`` with the least credentials the instance accepts.

        Anonymous first; on a refusal that credentials could lift (401, 403, "needs a user")
        the instance moves up to an app token, then to a user token if the crawl has one,
        and stays there for every later request. Out of rungs: :class:`AuthRequired`.
        """
        if self.info is not None and self.info.quirks.needs_user_token and self.level != "user":
            await self._climb(self.level, "the server lists accounts to user tokens only")
        while True:
            level = self.level
            session = await self._session_for(level)
            try:
                return await self.call(functools.partial(fetch, session))
            except (Unauthorized, Forbidden, Unprocessable) as exc:
                if not isinstance(exc, Unauthorized | Forbidden) and "authenticated user" not in (
                    exc.error or ""
                ):
                    raise  # a plain 422: credentials would not change it
                await self._climb(level, _brief(exc))

    async def _climb(self, level: AuthLevel, why: str) -> None:
        """Move past ``level`` (unless another walk already has) or raise AuthRequired."""
        if self.level != level:
            return
        if level == "none" and not (self.info and self.info.quirks.needs_user_token):
            self.level = "app"
            log.info("%s refuses anonymous reads (%s); using an app token", self.host, why)
        elif level != "user" and await self._user() is not None:
            self.level = "user"
            log.info("%s wants a user (%s); using the user token given for it", self.host, why)
        else:
            self.auth_problem = f"needs credentials the crawl does not have ({why})"
            await self._owner.save(self.record())
            raise AuthRequired(f"{self.host} {self.auth_problem}")
        if self.info is not None:
            await self._owner.save(self.record())  # the credentials it takes are news too

    async def _session_for(self, level: AuthLevel) -> Session:
        if level == "user":
            user = await self._user()
            assert user is not None  # _climb only moves to "user" when there is one
            return user
        return self.session(level)

    def session(self, level: Literal["none", "app"]) -> Session:
        """The instance's anonymous or app Session, created on first use."""
        if level not in self._sessions:
            app = App(name=self._owner.app_name, scopes="read") if level == "app" else None
            self._sessions[level] = self._owner.new_session(
                self, app=app, store=self._owner.store if app else None
            )
        return self._sessions[level]

    async def _user(self) -> Session | None:
        if self._user_session == "unknown":
            self._user_session = await self._owner.user_session(self)
        return self._user_session

    @property
    def user_session(self) -> Session | None:
        """The user Session in use, if the instance needed one."""
        return self._user_session if isinstance(self._user_session, Session) else None

    async def call(self, request: Callable[[], Awaitable[T]]) -> T:
        """Send, and ride out an instance that fails: back off (slot given back), try again.

        Each request already retried inside its Session. A failure on top of that is counted
        for the instance, and after :data:`FAILURE_ROUNDS` rounds without a single answer in
        between, the instance is given up: this and every later call raise
        :class:`Unreachable`, with the last failure as the reason.
        """
        while True:
            if self.dead is not None:
                raise Unreachable(f"{self.host} is unreachable: {self.dead}")
            try:
                response = await request()
            except (TransportError, ServerError) as exc:
                if isinstance(exc, ResponseTooLarge):
                    raise  # the server answered, absurdly: not a reason to give it up
                await self._failed(exc)
                continue
            self.failures = 0
            return response

    async def _failed(self, exc: MastodonError) -> None:
        self.failures += 1
        if self.failures >= FAILURE_ROUNDS:
            if self.dead is None:
                self.dead = _brief(exc)
                log.warning("giving up on %s: %s", self.host, self.dead)
                await self._owner.save(self.record())
            return
        delay = ROUND_BACKOFF * 2 ** (self.failures - 1) * self._owner.rng.uniform(0.5, 1.0)
        self._owner.note_error(f"{self.host}: {_brief(exc)}; trying again in {delay:.0f} s")
        self.waiting_until = self._owner.clock() + delay
        try:
            await self._owner.sleep_released(delay)
        finally:
            self.waiting_until = None

    async def close(self) -> None:
        self._detect.cancel()
        sessions = list(self._sessions.values())
        if isinstance(self._user_session, Session):
            sessions.append(self._user_session)
        for session in sessions:
            await session.__aexit__(None, None, None)


class _NotJSON(Exception):
    """A document that is not JSON where JSON was expected."""


class Instances:
    """Every instance of the crawl, by API base; the Sessions' shared settings."""

    def __init__(
        self,
        *,
        http: aiohttp.ClientSession,
        store: TokenStore,
        user_tokens: Mapping[str, str],
        app_name: str,
        per_instance: int,
        allow_insecure_http: bool,
        limiter: LimiterBackend | None,
        clock: Callable[[], float],
        sleep: Sleep,
        save: Callable[[InstanceRecord], Awaitable[None]],
        note_error: Callable[[str], None],
        count_request: Callable[[int], None],
        parked: Callable[[int], None],
    ) -> None:
        self.http = http
        self.store = store
        self.user_tokens = {k.strip().lower(): v for k, v in user_tokens.items()}
        self.app_name = app_name
        self.per_instance = per_instance
        self.allow_insecure_http = allow_insecure_http
        self.limiter = limiter
        self.clock = clock
        self._sleep = sleep
        self._save = save
        self.note_error = note_error
        self.count_request = count_request
        self.parked = parked
        self.rng = random.Random()
        self.by_base: dict[str, Instance] = {}

    def get(self, api_base: str) -> Instance:
        instance = self.by_base.get(api_base)
        if instance is None:
            instance = self.by_base[api_base] = Instance(api_base, self)
        return instance

    async def save(self, record: InstanceRecord) -> None:
        await self._save(record)

    def turn(self, instance: Instance) -> contextlib.AbstractAsyncContextManager[None]:
        """Hold one of the instance's own slots (``per_instance``); see :meth:`hold`."""
        return self.hold(instance.semaphore)

    @contextlib.asynccontextmanager
    async def hold(self, semaphore: asyncio.Semaphore) -> AsyncIterator[None]:
        """Hold ``semaphore`` (an instance's or a domain's own slots).

        A walk that must wait for it gives its global slot back meanwhile: that instance or
        domain is busy, others are not.
        """
        slot = current_slot.get()
        if semaphore.locked() and slot is not None and slot.held:
            slot.release()
            self.parked(1)
            try:
                await semaphore.acquire()
            finally:
                self.parked(-1)
            try:
                await slot.acquire()
            except BaseException:
                semaphore.release()
                raise
        else:
            await semaphore.acquire()
        try:
            yield
        finally:
            semaphore.release()

    async def released(self, waiting: Awaitable[T]) -> T:
        """Await another walk's work (a resolution, a detection) without holding the calling
        walk's global slot: that work may itself be waiting for a slot, and a walk must
        never hold one while it waits on something that does (that is a deadlock)."""
        slot = current_slot.get()
        if slot is None or not slot.held:
            return await waiting
        slot.release()
        self.parked(1)
        try:
            result = await waiting
        finally:
            self.parked(-1)
        await slot.acquire()
        return result

    async def sleep_released(self, seconds: float) -> None:
        """Sleep without holding the calling walk's global slot."""
        slot = current_slot.get()
        if slot is None or not slot.held:
            await self._sleep(seconds)
            return
        slot.release()
        self.parked(1)
        try:
            await self._sleep(seconds)
        finally:
            self.parked(-1)
        await slot.acquire()

    def new_session(
        self,
        instance: Instance,
        *,
        app: App | None = None,
        store: TokenStore | None = None,
        access_token: str | None = None,
        account: str | None = None,
    ) -> Session:
        def on_wait(event: Waiting) -> None:
            instance.waiting_until = self.clock() + event.seconds

        def on_retry(event: Retrying) -> None:
            self.note_error(f"{instance.host}: {event.error}; retry {event.attempt}")

        async def sleep(seconds: float) -> None:
            try:
                await self.sleep_released(seconds)
            finally:
                if instance.waiting_until is not None and instance.waiting_until <= self.clock():
                    instance.waiting_until = None

        return _CountingSession(
            instance.api_base,
            app=app,
            store=store,
            access_token=access_token,
            account=account,
            http=self.http,
            allow_insecure_http=self.allow_insecure_http,
            rate_limit="wait",
            limiter=self.limiter,
            retry=SESSION_RETRY,
            on_wait=on_wait,
            on_retry=on_retry,
            clock=self.clock,
            sleep=sleep,
            count_request=self.count_request,
        )

    async def user_session(self, instance: Instance) -> Session | None:
        """A user Session for the instance: a token given for it, else a stored login."""
        names = {instance.host, URL(instance.api_base).host or ""}
        if instance.info is not None and instance.info.domain:
            names.add(instance.info.domain)
        for name in names:
            token = self.user_tokens.get(name.lower())
            if token:
                return self.new_session(instance, access_token=token)
        try:
            keys = await store_keys(self.store)
        except (TokenStoreError, ConfigurationError):
            return None
        for key in keys:
            if key.instance == instance.api_base and key.app == self.app_name and key.account:
                return self.new_session(
                    instance,
                    app=App(name=self.app_name, scopes="read"),
                    store=self.store,
                    account=key.account,
                )
        return None

    async def close(self) -> None:
        for instance in list(self.by_base.values()):
            await instance.close()


class _CountingSession(Session):
    """A Session that counts every request it sends, for the crawl's requests/s: retries,
    redirects and token requests included (each one is a call to its transport)."""

    def __init__(self, *args: Any, count_request: Callable[[int], None], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._requester.transport = _CountingTransport(self._requester.transport, count_request)


class _CountingTransport(Transport):
    """Counts each request, then hands it to the Session's own transport (which the Session
    still opens and closes itself)."""

    def __init__(self, inner: Transport, count: Callable[[int], None]) -> None:
        # Nothing of Transport's own state is used: every request goes to ``inner``.
        self._inner = inner
        self._count = count

    async def send(
        self,
        method: str,
        url: URL,
        *,
        headers: Mapping[str, str],
        form: Mapping[str, str] | None = None,
        body: bytes | None = None,
        request_timeout: aiohttp.ClientTimeout | None = None,
    ) -> RawResponse:
        self._count(1)
        return await self._inner.send(
            method, url, headers=headers, form=form, body=body, request_timeout=request_timeout
        )

    def with_agent(self, headers: Mapping[str, str]) -> dict[str, str]:
        return self._inner.with_agent(headers)


def _brief(exc: BaseException) -> str:
    if isinstance(exc, HTTPError):
        return f"{exc.status} {exc.error or type(exc).__name__}"
    return str(exc) or type(exc).__name__
