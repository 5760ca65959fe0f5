"""Sending one request the way a Session wants it sent.

Between the Session (which knows tokens and endpoints) and the transport (which knows aiohttp)
sits the policy for every request: wait for the rate-limit budget, follow redirects only on the
instance origin, retry what is safe to retry, and turn failures into aiomasto's errors.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Awaitable, Callable, Mapping

import aiohttp
from yarl import URL

from ._http import Transport
from ._limiter import Bucket, RateLimiter, request_kind
from ._protocol import RawResponse, error_for, redact_url
from ._redact import Secret
from ._urls import check_origin
from .entities import Token
from .errors import (
    HTTPError,
    MastodonError,
    OriginError,
    RateLimited,
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


class Requester:
    """Sends requests to one instance under its rate limit, with retries and origin pinning."""

    def __init__(
        self,
        instance: URL,
        transport: Transport,
        limiter: RateLimiter,
        *,
        retry: Retry,
        on_wait: WaitHook | None,
        on_retry: RetryHook | None,
        sleep: Callable[[float], Awaitable[None]],
    ) -> None:
        self.instance = instance
        self.transport = transport
        self.limiter = limiter
        self._retry = retry
        self._on_wait = on_wait
        self._on_retry = on_retry
        self._sleep = sleep
        self._rng = random.Random()

    def check_origin(self, url: URL) -> None:
        """Refuse any URL the token must not go to (see :func:`aiomasto._urls.check_origin`)."""
        check_origin(url, self.instance)

    async def send(
        self,
        method: str,
        url: URL,
        *,
        form: Mapping[str, str] | None = None,
        token: Token | None = None,
        idempotent: bool | None = None,
        timeout: aiohttp.ClientTimeout | None = None,
    ) -> RawResponse:
        """Send one request under the rate limit, with retries; raise on an error status.

        The bearer ``token`` is attached when given; OAuth requests authenticate in the body.
        ``idempotent`` defaults to true for GET: only idempotent requests are retried. A 429
        means the request was not carried out, so any request may wait and go again.
        """
        retryable = method in ("GET", "HEAD") if idempotent is None else idempotent
        kind = request_kind(method, url)
        owner = token.access_token if token else ""
        bucket = None if kind is None else self.limiter.bucket(owner, kind)
        attempt = 0
        backed_off = 0.0
        limited = 0
        while True:
            attempt += 1
            if bucket is not None:
                await self._take_budget(bucket, method, url)
            try:
                response = await self._exchange(
                    method, url, form=form, token=token, timeout=timeout
                )
            except TransportError as exc:
                if bucket is not None:
                    self.limiter.release(bucket)
                if isinstance(exc, ResponseTooLarge):
                    raise  # the server would only send it again
                failure: MastodonError = exc
            else:
                if bucket is not None:
                    self.limiter.observe(bucket, response)
                if response.status < 300:
                    return response
                failure = error_for(
                    response,
                    oauth=response.url.path.startswith("/oauth/"),
                    secrets=_secrets(form, token),
                )
                if isinstance(failure, RateLimited) and self.limiter.policy != "raise":
                    limited += 1
                    if limited <= _MAX_RATE_LIMITED:
                        await self._rate_limited(bucket, failure, limited, method, url)
                        continue
                if response.status not in self._retry.statuses:
                    # Includes a 429 that outlasted every wait: the server is not just busy.
                    failure.attempts = attempt
                    raise failure
            delay = self._retry.delay(attempt, self._rng)
            out_of_budget = backed_off + delay > self._retry.budget
            if not retryable or attempt >= self._retry.attempts or out_of_budget:
                failure.attempts = attempt
                raise failure
            backed_off += delay
            await self._before_retry(attempt, delay, method, url, failure)
            await self._sleep(delay)

    async def _rate_limited(
        self, bucket: Bucket | None, failure: RateLimited, times: int, method: str, url: URL
    ) -> None:
        """Hold this request (and, through its bucket, every other) until the server allows."""
        told = failure.retry_after if "Retry-After" in failure.headers else None
        # With no usable hint (Akkoma sends no headers; a reset already past), back off as
        # after a failure, growing with each 429 in a row.
        fallback = max(1.0, self._retry.delay(times, self._rng))
        if bucket is not None:
            self.limiter.rate_limited(bucket, retry_after=told, fallback=fallback)
            return
        delay = failure.retry_after if failure.retry_after is not None else fallback
        await self._pause("rate_limited", delay, method, url)

    async def _before_retry(
        self, attempt: int, delay: float, method: str, url: URL, failure: MastodonError
    ) -> None:
        shown, what = redact_url(url), _brief(failure)
        log.debug("%s %s failed (%s); retry %d in %.2f s", method, shown, what, attempt, delay)
        if self._on_retry is not None:
            event = Retrying(attempt=attempt, seconds=delay, method=method, url=shown, error=what)
            await _call(self._on_retry(event))

    async def _take_budget(self, bucket: Bucket, method: str, url: URL) -> None:
        """Wait until this request may go; a paced request has its slot once the wait ends."""
        while True:
            delay, reason = self.limiter.reserve(bucket)
            if delay is None:
                await bucket.heard.wait()  # the request that probes the budget answers first
                continue
            if reason is None:
                return
            await self._pause(reason, delay, method, url)
            if reason == "pacing":
                return

    async def _pause(self, reason: WaitReason, seconds: float, method: str, url: URL) -> None:
        shown = redact_url(url)
        if seconds >= 1.0:
            log.debug("waiting %.1f s before %s %s (%s)", seconds, method, shown, reason)
            if self._on_wait is not None:
                event = Waiting(reason=reason, seconds=seconds, method=method, url=shown)
                await _call(self._on_wait(event))
        await self._sleep(seconds)

    async def _exchange(
        self,
        method: str,
        url: URL,
        *,
        form: Mapping[str, str] | None,
        token: Token | None,
        timeout: aiohttp.ClientTimeout | None,
    ) -> RawResponse:
        """One request and its same-origin redirects; the final response, whatever its status."""
        headers = {"Accept": "application/json"}
        if token is not None:
            headers["Authorization"] = Secret(f"Bearer {token.access_token}")
        for _ in range(_MAX_REDIRECTS + 1):
            # Checked here, on the final URL, whatever built it: a caller's path, a cursor, a
            # Link or a redirect. The token goes to the instance origin only.
            self.check_origin(url)
            response = await self.transport.send(
                method, url, headers=headers, form=form, request_timeout=timeout
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
                method, form = "GET", None
        return response


def _secrets(form: Mapping[str, str] | None, token: Token | None) -> list[str]:
    """What the request carried that the answer must not quote back."""
    found: list[str] = [value for value in (form or {}).values() if isinstance(value, Secret)]
    if token is not None:
        found.append(token.access_token)
    return found


async def _call(result: Awaitable[None] | None) -> None:
    if result is not None:
        await result


def _brief(error: MastodonError) -> str:
    if isinstance(error, HTTPError):
        return f"{error.status} {error.error or type(error).__name__}"
    return type(error).__name__
