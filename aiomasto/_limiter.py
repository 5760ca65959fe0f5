"""The client side of the server's rate limit, shared by every task of a Session.

Each token has its own budget on the server, and Mastodon counts paging requests (those with
``max_id``, ``since_id``, ``min_id`` or ``page``) against a second, slower window (300 per
15 minutes) whose numbers replace the token's in the headers of those responses; app
registration has a window of its own. So there is a bucket per (token, kind of request), each
fed only by its own responses (see :func:`request_kind`).

A bucket knows the window's limit, an estimate of what is left (the server's last word, less
what was sent since) and when the window resets, on the local clock (corrected for a skewed
server clock with the ``Date`` header). Until a bucket has heard from the server, one request
goes at a time, so fifty tasks starting together cannot burst past a budget nobody knows yet.

Every slot a request takes (:meth:`RateLimiter.reserve`) is given back exactly once, by
:meth:`RateLimiter.observe` when its answer arrives or :meth:`RateLimiter.release` when none
will (a transport error, a cancelled task): a slot never given back would hold every later
request of its bucket forever.
"""

from __future__ import annotations

import asyncio
import functools
import math
import re
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Protocol

from yarl import URL

from ._protocol import RawResponse
from .policies import RateLimitPolicy, WaitReason
from .ratelimit import RateLimit, parse_retry_after

__all__ = [
    "Bucket",
    "Limiter",
    "LimiterBackend",
    "RateLimiter",
    "request_kind",
    "retry_after",
    "server_skew",
]

# Mastodon writes the reset as the request time plus the rest of the window, so its fraction
# is the request's microseconds (mastodon-api.md §8.2); its windows are whole seconds aligned
# to the epoch, so the true reset is the whole second. GoToSocial writes milliseconds.
_MASTODON_RESET = re.compile(r"\.\d{6}Z$")

# A window is taken to have reset this long after its reported reset: a request sent at the
# very instant could still be counted in the old window.
_RESET_MARGIN = 0.05
# Skew below this is the Date header's one-second resolution, not a wrong clock.
_SKEW_TOLERANCE = 1.5
# A skew beyond this is a broken Date header (1970, a typo'd year), not a clock: trusting it
# would move every reset by years. Real misconfigured clocks (a wrong time zone) stay within.
_ABSURD_SKEW = 86_400.0
# However the server says "come back now" (Retry-After: 0, a date in the past), a throttled
# bucket waits at least this long: a 429 answered at once with the next request is a storm.
_SHORTEST_HOLD = 1.0
# Waits of one bucket that end within this of each other are one wait, reported once.
_SAME_WAIT = 1.0
_PAGING_PARAMS = frozenset({"max_id", "since_id", "min_id", "page"})

Clock = Callable[[], float]


def request_kind(method: str, url: URL) -> str | None:
    """Which of the server's windows a request counts in; ``None`` for unthrottled endpoints.

    Mastodon throttles ``/api`` only: app registration in a window of its own (5 per 10 min),
    paging requests also in the paging window, the rest in the token's (or IP's) window.
    ``/oauth/*`` is not throttled and sends no rate-limit headers.
    """
    if not url.path.startswith("/api/"):
        return None
    if method == "POST" and url.path == "/api/v1/apps":
        return "registration"
    return "paging" if not _PAGING_PARAMS.isdisjoint(url.query) else "api"


def server_skew(headers: Mapping[str, str], now: float) -> float:
    """How far the server's clock is ahead of ours, from ``Date``; 0 when unknown or small."""
    value = headers.get("Date")
    if not value:
        return 0.0
    server_now = _http_date(value)
    if server_now is None:
        return 0.0
    skew = server_now - now
    return skew if _SKEW_TOLERANCE < abs(skew) <= _ABSURD_SKEW else 0.0


@functools.lru_cache(maxsize=16)
def _http_date(value: str) -> float | None:
    # Cached: the Date header changes once a second, and a crawl reads it on every response.
    try:
        return parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError):
        return None


def retry_after(headers: Mapping[str, str], now: float) -> float | None:
    """Seconds to wait from a valid ``Retry-After``; ``None`` when absent or not valid.

    An HTTP date is the server's clock, so it is read against the server's ``Date`` (when
    that is sane) rather than ours.
    """
    value = headers.get("Retry-After")
    if not value:
        return None
    server_now = datetime.fromtimestamp(now + server_skew(headers, now), UTC)
    return parse_retry_after(value, server_now)


class Bucket:
    """What is known of one rate-limit window."""

    def __init__(self) -> None:
        self.limit: int | None = None
        self.remaining: int | None = None
        self.reset_at: float | None = None  # local clock
        self.headerless = False  # the server sends no rate-limit headers: nothing to pace
        self.period: float | None = None  # learned from two consecutive windows
        self.last_reset: float | None = None
        self.next_slot = 0.0
        self.blocked_until = 0.0  # the server said not to come back before this
        self.in_flight = 0  # requests sent and not answered yet
        self.heard = asyncio.Event()  # set (and replaced) whenever one of them is answered
        self.announced_until = 0.0  # the end of the last wait reported (on_wait, the log)
        self.pace_announced: float | None = None  # the window whose slow pace was reported

    def answered(self) -> None:
        """One request in flight got its answer: wake everyone waiting for news."""
        self.in_flight = max(0, self.in_flight - 1)
        heard, self.heard = self.heard, asyncio.Event()
        heard.set()

    @property
    def known(self) -> bool:
        return self.headerless or self.limit is not None

    def observe(self, report: RateLimit | None, *, status: int, skew: float) -> None:
        """Fold in what a response said about the window."""
        self.answered()
        if report is None:
            # A proxy's error page carries no headers; only a real answer without them says
            # that the server does not limit (Akkoma).
            if self.limit is None and status < 400:
                self.headerless = True
            return
        self.headerless = False
        self.limit = report.limit
        if report.reset is None:
            self.remaining = _least(self.remaining, report.remaining)
            return
        reset = report.reset.timestamp() - skew
        if self.last_reset is not None and reset < self.last_reset + 0.5:
            return  # counted in a window that has ended since: it says nothing of this one
        if self.reset_at is not None and reset > self.reset_at + 1.0:
            # The window ended before this Session noticed; the server's number is the truth.
            self.last_reset = self.reset_at
            self.remaining = report.remaining
        elif self.reset_at is None and self.last_reset is None:
            self.remaining = report.remaining  # the first word from the server
        else:
            # The current window: requests sent after this one was counted are not in the
            # server's number yet, so the lower of the two estimates holds.
            self.remaining = _least(self.remaining, report.remaining)
        if self.last_reset is not None and reset - self.last_reset >= 1.0:
            # Idle windows make the gap a multiple of the period: keep the shortest seen.
            gap = reset - self.last_reset
            self.period = gap if self.period is None else min(self.period, gap)
        self.reset_at = reset

    def roll_over(self, now: float) -> None:
        """Start a fresh window once the old one has reset.

        It is assumed full, less the requests still on their way: the server may count those
        in the new window. Its reset is predicted from the window length seen so far, so pacing
        goes on smoothly; the next response corrects both numbers.
        """
        if self.reset_at is not None and now >= self.reset_at + _RESET_MARGIN:
            self.last_reset = self.reset_at
            if self.limit is not None:
                self.remaining = max(0, self.limit - self.in_flight)
            if self.period is None:
                self.reset_at = None
            else:
                elapsed = (now - self.reset_at) // self.period + 1
                self.reset_at += elapsed * self.period
            self.next_slot = now


class Limiter(Protocol):
    """What the requester needs of a limiter, for one Session (see :class:`RateLimiter`)."""

    policy: RateLimitPolicy
    clock: Clock
    latest: RateLimit | None
    buckets: dict[tuple[str, str], Bucket]
    """The buckets handed out so far, by (token, kind)."""

    def bucket(self, token: str, kind: str) -> Bucket:
        """The bucket of ``token``'s requests of ``kind``."""
        ...

    async def take(self, bucket: Bucket) -> tuple[float | None, WaitReason | None]:
        """:meth:`RateLimiter.reserve`."""
        ...

    async def news(self, bucket: Bucket) -> None:
        """Wait until a request of the bucket may have been answered (the caller bounds it)."""
        ...

    async def settle(self, bucket: Bucket, response: RawResponse) -> None:
        """:meth:`RateLimiter.observe`."""
        ...

    async def hold(self, bucket: Bucket, *, retry_after: float | None, fallback: float) -> bool:
        """:meth:`RateLimiter.rate_limited`."""
        ...

    async def give_back(self, bucket: Bucket) -> None:
        """:meth:`RateLimiter.release`; done even when the awaiting task is being cancelled."""
        ...

    def first_to_wait(self, bucket: Bucket, seconds: float) -> bool:
        """:meth:`RateLimiter.first_to_wait`."""
        ...

    def first_slow_pace(self, bucket: Bucket) -> bool:
        """:meth:`RateLimiter.first_slow_pace`."""
        ...


class LimiterBackend(Protocol):
    """Where rate-limit buckets live, for ``Session(limiter=...)``; in memory when none is given.

    ``bind`` gives the limiter one Session uses, for its instance (the normalised origin), with
    its policy, clock and ``max_wait``; one backend may serve many Sessions (and tokens, and
    instances).
    """

    def bind(
        self, instance: str, policy: RateLimitPolicy, clock: Clock, *, max_wait: float
    ) -> Limiter:
        """The limiter for one Session."""
        ...


class RateLimiter:
    """Decides, before each request, whether it may go now or must wait, and how long.

    Pure bookkeeping with an injected clock: :meth:`reserve` returns the seconds to wait
    (``0`` to go now, ``None`` to wait for the probe request's answer), and the Session sleeps.
    ``max_wait`` bounds pacing: what is left of a window is spread over the window's time
    left, or over ``max_wait`` when the window resets later than that, so no paced request
    waits longer. (Longer waits for a spent window or a 429 are the Session's to refuse.)
    """

    def __init__(self, policy: RateLimitPolicy, clock: Clock, *, max_wait: float = math.inf):
        self.policy = policy
        self.clock = clock
        self.max_wait = max_wait
        self.buckets: dict[tuple[str, str], Bucket] = {}
        self.latest: RateLimit | None = None

    def bucket(self, token: str, kind: str) -> Bucket:
        key = (token, kind)
        if key not in self.buckets:
            self.buckets[key] = Bucket()
        return self.buckets[key]

    def reserve(self, bucket: Bucket) -> tuple[float | None, WaitReason | None]:
        """Take a request from the budget, or say how long to wait first and why.

        ``(0.0, None)``: go now. ``(seconds, "pacing")``: go after that long, the slot is
        taken. ``(seconds, reason)``: wait that long, then ask again. ``(None, None)``: wait
        for the next answer in this bucket (``bucket.heard``), then ask again.
        """
        delay, reason = self._decide(bucket)
        if delay is not None and reason in (None, "pacing"):
            bucket.in_flight += 1
        return delay, reason

    def _decide(self, bucket: Bucket) -> tuple[float | None, WaitReason | None]:
        if self.policy == "raise":
            return 0.0, None
        now = self.clock()
        if now < bucket.blocked_until:
            return bucket.blocked_until - now, "rate_limited"
        bucket.roll_over(now)
        if not bucket.known:
            # Nobody knows the budget yet: one request at a time until the server tells.
            return (None, None) if bucket.in_flight else (0.0, None)
        if bucket.headerless or bucket.remaining is None:
            return 0.0, None
        if bucket.remaining <= 0:
            if bucket.reset_at is not None:
                return max(0.0, bucket.reset_at + _RESET_MARGIN - now), "budget_spent"
            # Spent, with no idea yet when this window resets: the answers to the requests
            # on their way will say; with none on its way, one request finds out.
            return (None, None) if bucket.in_flight else (0.0, None)
        bucket.remaining -= 1
        if self.policy != "pace" or bucket.reset_at is None:
            return 0.0, None
        slot = max(now, bucket.next_slot)
        # Spread what is left evenly over the time left, counting this request; a window that
        # resets later than max_wait from now (a day-long family limit, a reset in 2100) is
        # spread over max_wait instead, so the slots given out never lie further ahead.
        horizon = min(bucket.reset_at, now + self.max_wait)
        interval = max(0.0, horizon - slot) / (bucket.remaining + 1)
        bucket.next_slot = slot + interval
        return slot - now, "pacing"

    def observe(self, bucket: Bucket, response: RawResponse) -> None:
        """Fold what a response said about its window into its bucket."""
        now = self.clock()
        headers, status = response.headers, response.status
        report = response.ratelimit
        if report is not None:
            self.latest = report
            report = _true_reset(report, headers.get("X-RateLimit-Reset", ""))
        if status == 429 and retry_after(headers, now) is not None:
            # An overloaded server's own word on when to come back (GoToSocial) wins over its
            # window numbers: rate_limited() holds the bucket for that long.
            bucket.answered()
            return
        bucket.observe(report, status=status, skew=server_skew(headers, now))

    def rate_limited(self, bucket: Bucket, *, retry_after: float | None, fallback: float) -> bool:
        """After a 429, hold every request of the bucket until the server allows again.

        That is ``retry_after`` seconds when the server sent a valid ``Retry-After``, else the
        window's reset when it is known and still ahead (the window is spent), else
        ``fallback`` seconds; never less than a second. Returns whether the server said when
        (``Retry-After`` or a reset ahead), as opposed to a guessed ``fallback``.
        """
        now = self.clock()
        known = True
        if retry_after is not None:
            until = now + max(retry_after, _SHORTEST_HOLD)
        elif bucket.reset_at is not None and bucket.reset_at + _RESET_MARGIN > now:
            bucket.remaining = 0
            until = max(bucket.reset_at + _RESET_MARGIN, now + _SHORTEST_HOLD)
        else:
            # Never hammer a server whose reset is unknown or already past.
            until, known = now + max(fallback, _SHORTEST_HOLD), False
        bucket.blocked_until = max(bucket.blocked_until, until)
        return known

    def release(self, bucket: Bucket) -> None:
        """The request holding a slot will get no answer: a transport error, or cancelled."""
        bucket.answered()

    # The steps as the requester awaits them (see Limiter): nothing in them suspends.

    async def take(self, bucket: Bucket) -> tuple[float | None, WaitReason | None]:
        return self.reserve(bucket)

    async def news(self, bucket: Bucket) -> None:
        await bucket.heard.wait()

    async def settle(self, bucket: Bucket, response: RawResponse) -> None:
        self.observe(bucket, response)

    async def hold(self, bucket: Bucket, *, retry_after: float | None, fallback: float) -> bool:
        return self.rate_limited(bucket, retry_after=retry_after, fallback=fallback)

    async def give_back(self, bucket: Bucket) -> None:
        self.release(bucket)

    def first_to_wait(self, bucket: Bucket, seconds: float) -> bool:
        """Whether a wait of ``seconds`` is news: the first task to meet it reports it.

        A spent window or a 429 holds every task of the bucket until the same moment; that is
        one wait, reported once, however many tasks sit it out.
        """
        until = self.clock() + seconds
        if until <= bucket.announced_until + _SAME_WAIT:
            return False
        bucket.announced_until = until
        return True

    def first_slow_pace(self, bucket: Bucket) -> bool:
        """Whether this is the first slow paced wait of the bucket's current window."""
        if bucket.pace_announced == bucket.reset_at:
            return False
        bucket.pace_announced = bucket.reset_at
        return True


def _true_reset(report: RateLimit, raw: str) -> RateLimit:
    if report.reset is None or not _MASTODON_RESET.search(raw.strip()):
        return report
    # A "Z" time: in UTC, so dropping the microseconds is flooring the timestamp.
    whole = report.reset.replace(microsecond=0)
    return RateLimit(limit=report.limit, remaining=report.remaining, reset=whole)


def _least(estimate: int | None, reported: int) -> int:
    return reported if estimate is None else min(estimate, reported)
