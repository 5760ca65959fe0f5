"""Sending one request the way a Session wants it sent.

Between the Session (which knows tokens and endpoints) and the transport (which knows aiohttp)
sits the policy for every request: wait for the rate-limit budget, follow redirects only on the
instance origin, retry what is safe to retry, keep to the call's deadline, and turn failures
into aiomasto's errors.

Two promises hold on every path out of :meth:`Requester.send`, a cancelled task included: a
rate-limit slot taken is given back, and no wait is longer than ``max_wait``.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime

import aiohttp
from yarl import URL

from ._bodies import Body
from ._http import Transport
from ._limiter import Bucket, Limiter, request_kind, retry_after
from ._protocol import RawResponse, error_for, redact_url
from ._redact import Secret
from ._urls import check_origin
from .entities import Token
from .errors import (
    HTTPError,
    MastodonError,
    OriginError,
    RateLimited,
    RequestTimeout,
    ResponseTooLarge,
    TransportError,
)
from .policies import Retry, RetryHook, Retrying, WaitHook, Waiting, WaitReason

__all__ = ["Requester"]

log = logging.getLogger("aiomasto")

_REDIRECTS = frozenset({301, 302, 303, 307, 308})
_MAX_REDIRECTS = 5
# Waiting out a window and still getting 429 this many times means something else is wrong.
_MAX_RATE_LIMITED = 20
# A rate-limit wait this long is worth a line at INFO: a crawl that stops for minutes should
# say why. Shorter ones are routine (pacing) and stay at DEBUG.
_NOTABLE_WAIT = 5.0
_WINDOWS = {"api": "API ", "paging": "paging ", "registration": "app registration "}


class _Call:
    """What one call has used so far: its deadline, and the rate-limit windows it sat out.

    The deadline (on the event loop's clock) covers every attempt and the backoff between
    them; rate-limit waits push it back by their length, since ``max_wait`` bounds them on
    their own.
    """

    def __init__(self, total: float | None) -> None:
        self._loop = asyncio.get_running_loop()
        self.total = total
        self.at = None if total is None else self._loop.time() + total
        self.windows_waited = 0  # waits for a spent window or a 429, not pacing

    def left(self) -> float | None:
        return None if self.at is None else self.at - self._loop.time()

    def passed(self) -> bool:
        left = self.left()
        return left is not None and left <= 0

    def now(self) -> float:
        return self._loop.time()

    def push_back(self, seconds: float) -> None:
        if self.at is not None:
            self.at += seconds


class Requester:
    """Sends requests to one instance under its rate limit, with retries and origin pinning.

    ``timeout`` is the default for every call: its ``total`` is the deadline of the whole call
    (attempts and the backoff between them), its ``connect`` and ``sock_read`` apply to each
    attempt. ``max_wait`` bounds every rate-limit wait; a longer one raises ``RateLimited``.
    """

    def __init__(
        self,
        instance: URL,
        transport: Transport,
        limiter: Limiter,
        *,
        retry: Retry,
        timeout: aiohttp.ClientTimeout,
        max_wait: float,
        on_wait: WaitHook | None,
        on_retry: RetryHook | None,
        sleep: Callable[[float], Awaitable[None]],
    ) -> None:
        self.instance = instance
        self.transport = transport
        self.limiter = limiter
        self._retry = retry
        self._timeout = timeout
        self._max_wait = max_wait
        self._on_wait = on_wait
        self._on_retry = on_retry
        self._sleep = sleep
        self._rng = random.Random()
        self._default_per_attempt = _per_attempt(timeout)
        # What a request with the token last used sends: its bucket key and headers, built
        # once per token rather than once per request.
        self._last_token: Token | None = None
        self._last_owner = ""
        self._last_headers = transport.with_agent({"Accept": "application/json"})
        self._anonymous_headers = self._last_headers

    def check_origin(self, url: URL) -> None:
        """Refuse any URL the token must not go to (see :func:`aiomasto._urls.check_origin`)."""
        check_origin(url, self.instance)

    async def send(
        self,
        method: str,
        url: URL,
        *,
        form: Mapping[str, str] | None = None,
        body: Body | None = None,
        headers: Mapping[str, str] | None = None,
        token: Token | None = None,
        idempotent: bool | None = None,
        timeout: aiohttp.ClientTimeout | None = None,
    ) -> RawResponse:
        """Send one request under the rate limit, with retries; raise on an error status.

        ``body`` (already encoded, so every attempt sends the same bytes) and the extra
        ``headers`` go with every attempt; a POST carrying an ``Idempotency-Key`` is
        idempotent, so it is retried like a GET.

        The bearer ``token`` is attached when given; OAuth requests authenticate in the body.
        ``idempotent`` defaults to true for GET: only idempotent requests are retried. A 429
        means the request was not carried out, so any request may wait and go again, except
        an app registration, which waits out a reset the server announced at most once.
        """
        if idempotent is None:
            idempotent = method in ("GET", "HEAD") or bool(
                headers and any(k.lower() == "idempotency-key" for k in headers)
            )
        retryable = idempotent
        kind = request_kind(method, url)
        owner, sent_headers = self._credentials(token)
        if headers or body is not None:
            sent_headers = {**headers, **sent_headers} if headers else dict(sent_headers)
            if body is not None:
                sent_headers["Content-Type"] = body.content_type
        bucket = None if kind is None else self.limiter.bucket(owner, kind)
        # Mastodon counts a paging request in the paging window *and* in the plain one of the
        # token (or IP), and its headers show whichever has less room: the plain bucket is
        # charged too, so the next plain request is not sent into a spent window. Its answer
        # teaches that bucket nothing (the numbers may be the paging window's).
        plain = self.limiter.bucket(owner, "api") if kind == "paging" else None
        if timeout is None or timeout is self._timeout:
            timeout, per_attempt = self._timeout, self._default_per_attempt
        else:
            per_attempt = _per_attempt(timeout)
        call = _Call(timeout.total or None)  # like aiohttp, a total of 0 means none
        attempt = 0
        backed_off = 0.0
        limited = 0
        failure: MastodonError | None = None
        while True:
            attempt += 1
            if bucket is not None:
                try:
                    refused = await self._take_budget(bucket, kind, method, url, call)
                except RequestTimeout as exc:
                    exc.attempts = attempt - 1
                    raise
                if refused is None and plain is not None:
                    try:
                        refused = await self._take_budget(plain, "api", method, url, call)
                    except BaseException:
                        await self.limiter.give_back(bucket)
                        raise
                    if refused is not None:
                        await self.limiter.give_back(bucket)
                if refused is not None:
                    raise self._too_long(refused, method, url, failure, sent=attempt - 1)
            try:
                response = await self._attempt(
                    bucket,
                    method,
                    url,
                    form=form,
                    body=body,
                    headers=sent_headers,
                    timeout=per_attempt,
                    call=call,
                    also=plain,
                )
            except TransportError as exc:
                if isinstance(exc, ResponseTooLarge):
                    raise  # the server would only send it again
                failure = exc
            else:
                if response.status < 300:
                    return response
                failure = error_for(
                    response,
                    oauth=_is_oauth(response.url),
                    secrets=_secrets(form, token),
                )
                if isinstance(failure, RateLimited) and self.limiter.policy != "raise":
                    limited += 1
                    if await self._hold(bucket, kind, response, failure, limited, call):
                        continue
                if response.status not in self._retry.statuses:
                    # Includes a 429 that outlasted every wait: the server is not just busy.
                    failure.attempts = attempt
                    raise failure
            delay = self._retry.delay(attempt, self._rng)
            out_of_budget = backed_off + delay > self._retry.budget
            left = call.left()
            out_of_time = left is not None and delay >= left
            if not retryable or attempt >= self._retry.attempts or out_of_budget or out_of_time:
                failure.attempts = attempt
                raise failure
            backed_off += delay
            await self._before_retry(attempt, delay, method, url, failure)
            await self._sleep(delay)

    def _credentials(self, token: Token | None) -> tuple[str, Mapping[str, str]]:
        """The bucket key (a string that hides in a repr) and the headers for ``token``."""
        if token is None:
            return "", self._anonymous_headers
        if token is not self._last_token:
            self._last_owner = Secret(token.access_token)
            self._last_headers = self.transport.with_agent(
                {
                    "Accept": "application/json",
                    "Authorization": Secret(f"Bearer {token.access_token}"),
                }
            )
            self._last_token = token
        return self._last_owner, self._last_headers

    async def _attempt(
        self,
        bucket: Bucket | None,
        method: str,
        url: URL,
        *,
        form: Mapping[str, str] | None,
        body: Body | None,
        headers: Mapping[str, str],
        timeout: aiohttp.ClientTimeout,
        call: _Call,
        also: Bucket | None = None,
    ) -> RawResponse:
        """One exchange within what is left of the deadline, holding the bucket's slot (and
        the slot of ``also``, a second window the request counts in).

        The slots go back on every way out: with the answer, or without one (a transport
        error, a foreign redirect, the deadline, a cancelled task). ``also`` learns nothing
        from the answer: the request stays counted in it.
        """
        try:
            limit = asyncio.timeout_at(call.at)
            expired = False
            try:
                async with limit:
                    response = await self._exchange(
                        method, url, form=form, body=body, headers=headers, timeout=timeout
                    )
            except TimeoutError:
                if not limit.expired():
                    raise
                expired = True
            if expired:
                # Raised outside the handler: the cancellation it replaces went through
                # aiohttp's frames, whose locals hold the request headers.
                raise self._deadline_passed(method, url, call)
        except BaseException:
            if also is not None:
                await self.limiter.give_back(also)
            if bucket is not None:
                await self.limiter.give_back(bucket)
            raise
        if also is not None:
            await self.limiter.give_back(also)
        if bucket is not None:
            await self.limiter.settle(bucket, response)
        return response

    def _deadline_passed(self, method: str, url: URL, call: _Call) -> RequestTimeout:
        return RequestTimeout(
            f"no answer within the call's deadline of {call.total:g} s",
            method=method,
            url=redact_url(url),
        )

    async def _hold(
        self,
        bucket: Bucket | None,
        kind: str | None,
        response: RawResponse,
        failure: RateLimited,
        times: int,
        call: _Call,
    ) -> bool:
        """After a 429: hold this request (and, through its bucket, every other) until the
        server allows, and say whether to send it again."""
        if kind == "registration" and call.windows_waited:
            return False  # a registration waits out one announced reset, never more
        if times > _MAX_RATE_LIMITED:
            return False
        told = retry_after(response.headers, self.limiter.clock())
        # With no usable hint (Akkoma sends no headers; a reset already past), back off as
        # after a failure, growing with each 429 in a row.
        fallback = max(1.0, self._retry.delay(times, self._rng))
        if bucket is not None:
            known = await self.limiter.hold(bucket, retry_after=told, fallback=fallback)
            # A registration is never retried on a guess: only when the server said when.
            return known or kind != "registration"
        seconds = max(1.0, told if told is not None else fallback)
        if seconds > self._max_wait:
            return False
        await self._pause("rate_limited", seconds, failure.method, response.url, None, call)
        return True

    def _too_long(
        self, seconds: float, method: str, url: URL, failure: MastodonError | None, *, sent: int
    ) -> RateLimited:
        """The RateLimited for a wait longer than max_wait: the request is not sent again."""
        ends = _utc(self.limiter.clock() + seconds)
        if isinstance(failure, RateLimited):
            error = failure  # the server's own 429, with its headers
        else:
            error = RateLimited(
                status=429,
                method=method,
                url=redact_url(url),
                error=(
                    f"the rate limit allows this request in {seconds:.0f} s, "
                    + (
                        f"more than max_wait ({self._max_wait:g} s)"
                        if seconds > self._max_wait
                        else "and an app registration sits out one window at most"
                    )
                    + "; it was not sent"
                ),
            )
        error.reset, error.retry_after = ends, seconds
        error.attempts = sent
        return error

    async def _before_retry(
        self, attempt: int, delay: float, method: str, url: URL, failure: MastodonError
    ) -> None:
        shown, what = redact_url(url), _brief(failure)
        log.debug("%s %s failed (%s); retry %d in %.2f s", method, shown, what, attempt, delay)
        if self._on_retry is not None:
            event = Retrying(attempt=attempt, seconds=delay, method=method, url=shown, error=what)
            await _call(self._on_retry(event))

    async def _take_budget(
        self, bucket: Bucket, kind: str | None, method: str, url: URL, call: _Call
    ) -> float | None:
        """Wait until this request may go, holding a slot of the bucket once it returns.

        Returns ``None`` when the slot is taken, or the seconds of a wait refused (no slot
        taken): one longer than ``max_wait``, or a registration's second window. Waiting for
        another request's answer counts against the deadline; waiting for the window does not.
        """
        while True:
            if call.passed():
                raise self._deadline_passed(method, url, call)
            delay, reason = await self.limiter.take(bucket)
            if delay is None:
                # The request that probes the budget answers first.
                try:
                    async with asyncio.timeout_at(call.at):
                        await self.limiter.news(bucket)
                except TimeoutError:
                    raise self._deadline_passed(method, url, call) from None
                continue
            if reason is None:
                return None
            if reason != "pacing":
                if delay > self._max_wait:
                    return delay
                if kind == "registration" and call.windows_waited:
                    return delay  # a registration sits out one window at most
                call.windows_waited += 1
                await self._pause(reason, delay, method, url, bucket, call, kind)
                continue
            try:
                await self._pause(reason, delay, method, url, bucket, call, kind)
            except BaseException:
                await self.limiter.give_back(bucket)  # the paced slot was taken: give it back
                raise
            return None

    async def _pause(
        self,
        reason: WaitReason,
        seconds: float,
        method: str,
        url: URL,
        bucket: Bucket | None,
        call: _Call,
        kind: str | None = None,
    ) -> None:
        """Sleep for the rate limit; the first task to meet a wait reports it, once.

        A long wait is logged at INFO, once: a spent window or a 429 when the first task meets
        it, a slow pace once per window.
        """
        shown = redact_url(url)
        if bucket is None or reason == "pacing":
            news = True  # a paced request waits for its own slot
        else:
            news = self.limiter.first_to_wait(bucket, seconds)
        notable = news and seconds >= _NOTABLE_WAIT
        if notable and reason == "pacing" and bucket is not None:
            notable = self.limiter.first_slow_pace(bucket)
        window, now = _WINDOWS.get(kind or "", ""), self.limiter.clock()
        if not notable:
            log.debug("waiting %.1f s before %s %s (%s)", seconds, method, shown, reason)
        elif reason == "pacing":
            log.info(
                "pacing %srequests to %s: this one waits %.0f s; the window resets at %s",
                window,
                self.instance.host,
                seconds,
                _utc(bucket.reset_at if bucket and bucket.reset_at else now).isoformat(
                    timespec="seconds"
                ),
            )
        else:
            log.info(
                "waiting %.0f s for the %srate limit of %s, until %s (%s)",
                seconds,
                window,
                self.instance.host,
                _utc(now + seconds).isoformat(timespec="seconds"),
                reason.replace("_", " "),
            )
        if news and seconds >= 1.0 and self._on_wait is not None:
            event = Waiting(reason=reason, seconds=seconds, method=method, url=shown, kind=kind)
            await _call(self._on_wait(event))
        started = call.now()
        try:
            await self._sleep(seconds)
        finally:
            call.push_back(call.now() - started)

    async def _exchange(
        self,
        method: str,
        url: URL,
        *,
        form: Mapping[str, str] | None,
        body: Body | None,
        headers: Mapping[str, str],
        timeout: aiohttp.ClientTimeout | None,
    ) -> RawResponse:
        """One request and its same-origin redirects; the final response, whatever its status."""
        for _ in range(_MAX_REDIRECTS + 1):
            # Checked here, on the final URL, whatever built it: a caller's path, a cursor, a
            # Link or a redirect. The token goes to the instance origin only.
            self.check_origin(url)
            response = await self.transport.send(
                method,
                url,
                headers=headers,
                form=form,
                body=None if body is None else body.content,
                request_timeout=timeout,
            )
            location = response.headers.get("Location")
            if response.status not in _REDIRECTS or not location:
                return response
            try:
                url = url.join(URL(location, encoded=True))
            except ValueError:
                raise OriginError(
                    "refusing to follow a redirect whose Location cannot be read",
                    url=redact_url(url),
                    expected_origin=str(self.instance),
                ) from None
            if response.status == 303 or (response.status in (301, 302) and method == "POST"):
                method, form, body = "GET", None, None
                headers = {k: v for k, v in headers.items() if k.lower() != "content-type"}
        return response


def _per_attempt(timeout: aiohttp.ClientTimeout) -> aiohttp.ClientTimeout:
    """``timeout`` for one attempt: aiohttp's own total would restart with every attempt, so
    the call's deadline replaces it."""
    return aiohttp.ClientTimeout(
        connect=timeout.connect,
        sock_connect=timeout.sock_connect,
        sock_read=timeout.sock_read,
        ceil_threshold=timeout.ceil_threshold,
    )


def _is_oauth(url: URL) -> bool:
    """Whether an error from ``url`` speaks RFC 6749 (token, revoke), not the API's errors."""
    return url.path.startswith("/oauth/") and url.path != "/oauth/userinfo"


def _secrets(form: Mapping[str, str] | None, token: Token | None) -> list[str]:
    """What the request carried that the answer must not quote back."""
    found: list[str] = [value for value in (form or {}).values() if isinstance(value, Secret)]
    if token is not None:
        found.append(token.access_token)
    return found


def _utc(timestamp: float) -> datetime:
    # Clamped: a reset in the year 300000 is still "far too late", and datetime must exist.
    return datetime.fromtimestamp(min(timestamp, 253_402_300_799.0), UTC)


async def _call(result: Awaitable[None] | None) -> None:
    if result is not None:
        await result


def _brief(error: MastodonError) -> str:
    if isinstance(error, HTTPError):
        return f"{error.status} {error.error or type(error).__name__}"
    return type(error).__name__
