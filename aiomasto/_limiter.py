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
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from email.utils import parsedate_to_datetime

from yarl import URL

from .policies import RateLimitPolicy, WaitReason
from .ratelimit import RateLimit

__all__ = ["Bucket", "RateLimiter", "request_kind"]

# A window is taken to have reset this long after its reported reset: a request sent at the
# very instant could still be counted in the old window.
_RESET_MARGIN = 0.05
# Skew below this is the Date header's one-second resolution, not a wrong clock.
_SKEW_TOLERANCE = 1.5
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
    try:
        server_now = parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError):
        return 0.0
    skew = server_now - now
    return skew if abs(skew) > _SKEW_TOLERANCE else 0.0


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
        self.probing = False
        self.heard = asyncio.Event()

    @property
    def known(self) -> bool:
        return self.headerless or self.limit is not None

    def observe(self, report: RateLimit | None, *, status: int, now: float, skew: float) -> None:
        """Fold in what a response said about the window."""
        self.probing = False
        self.heard.set()
        if report is None:
            if self.limit is None and status != 429:
                self.headerless = True
            if status == 429:
                self.remaining = 0
            return
        self.headerless = False
        self.limit = report.limit
        reset = report.reset.timestamp() - skew if report.reset else None
        same_window = (
            reset is not None and self.reset_at is not None and abs(reset - self.reset_at) < 1.0
        )
        if same_window and self.remaining is not None:
            # Requests sent after this one was counted are not in the server's number yet.
            self.remaining = min(self.remaining, report.remaining)
        else:
            previous = self.reset_at if self.reset_at is not None else self.last_reset
            if reset is not None and previous is not None and reset - previous >= 1.0:
                self.period = reset - previous
            self.remaining = report.remaining
            self.reset_at = reset
        if status == 429:
            self.remaining = 0

    def roll_over(self, now: float) -> None:
        """Start a fresh window, assumed full, once the old one has reset.

        Its reset is predicted from the window length seen so far, so pacing goes on smoothly;
        the next response corrects both numbers.
        """
        if self.reset_at is not None and now >= self.reset_at + _RESET_MARGIN:
            self.last_reset = self.reset_at
            self.remaining = self.limit
            if self.period is None:
                self.reset_at = None
            else:
                elapsed = (now - self.reset_at) // self.period + 1
                self.reset_at += elapsed * self.period
            self.next_slot = now


class RateLimiter:
    """Decides, before each request, whether it may go now or must wait, and how long.

    Pure bookkeeping with an injected clock: :meth:`reserve` returns the seconds to wait
    (``0`` to go now, ``None`` to wait for the probe request's answer), and the Session sleeps.
    """

    def __init__(self, policy: RateLimitPolicy, clock: Clock) -> None:
        self.policy = policy
        self.clock = clock
        self.buckets: dict[tuple[str, str], Bucket] = {}
        self.latest: RateLimit | None = None

    def bucket(self, token: str, kind: str) -> Bucket:
        key = (token, kind)
        if key not in self.buckets:
            self.buckets[key] = Bucket()
        return self.buckets[key]

    def reserve(self, bucket: Bucket) -> tuple[float | None, WaitReason | None]:
        """Take a request from the budget, or say how long to wait first and why."""
        if self.policy == "raise":
            return 0.0, None
        now = self.clock()
        bucket.roll_over(now)
        if not bucket.known:
            if bucket.probing:
                return None, None
            bucket.probing = True
            return 0.0, None
        if bucket.headerless or bucket.remaining is None:
            return 0.0, None
        if bucket.remaining <= 0:
            if bucket.reset_at is None:
                # Spent, with no idea when it resets: let one request find out.
                if bucket.probing:
                    return None, None
                bucket.probing = True
                bucket.heard.clear()
                return 0.0, None
            return max(0.0, bucket.reset_at + _RESET_MARGIN - now), "budget_spent"
        bucket.remaining -= 1
        if self.policy != "pace" or bucket.reset_at is None:
            return 0.0, None
        slot = max(now, bucket.next_slot)
        # Spread what is left evenly over the time left, counting this request.
        interval = max(0.0, bucket.reset_at - slot) / (bucket.remaining + 1)
        bucket.next_slot = slot + interval
        return slot - now, "pacing"

    def observe(self, bucket: Bucket, headers: Mapping[str, str], status: int) -> None:
        now = self.clock()
        report = RateLimit.from_headers(headers)
        if report is not None:
            self.latest = report
        bucket.observe(report, status=status, now=now, skew=server_skew(headers, now))

    def release(self, bucket: Bucket) -> None:
        """The request got no answer (transport error): let the next one probe."""
        if bucket.probing:
            bucket.probing = False
            bucket.heard.set()
            bucket.heard.clear()
