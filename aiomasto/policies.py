"""How a Session behaves under rate limits and failures: the settings and what they report.

Example::

    def show(event: Waiting) -> None:
        print(f"waiting {event.seconds:.0f} s ({event.reason})")

    Session(url, app=app, rate_limit="pace", retry=Retry(attempts=6), on_wait=show)
"""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable
from typing import Literal

from attrs import field, frozen

from .errors import ConfigurationError

__all__ = ["NO_RETRY", "RateLimitPolicy", "Retry", "Retrying", "Waiting"]

WaitReason = Literal["rate_limited", "budget_spent", "pacing"]

RateLimitPolicy = Literal["wait", "raise", "pace"]
"""``wait``: on a 429, sleep until the window resets (or ``Retry-After``) and retry; also hold
back requests once the window's budget is spent. ``raise``: raise :class:`~aiomasto.RateLimited`
with the reset time and how long to wait. ``pace``: spread the remaining budget over the time
left in the window (or over the Session's ``max_wait``, when the window resets later than
that), so a long crawl never meets a 429. Under ``wait`` and ``pace`` no wait is longer than
``max_wait``: a longer one raises :class:`~aiomasto.RateLimited` instead."""


def _positive(_: object, attribute: object, value: float) -> None:
    if value < 0:
        raise ConfigurationError(f"{getattr(attribute, 'name', 'value')} must not be negative")


@frozen(kw_only=True)
class Retry:
    """Retries of idempotent requests (GET, and the token and revoke POSTs).

    A request is retried on a connection error, a timeout, or one of ``statuses`` (proxies'
    502/503/504 by default), up to ``attempts`` attempts in all, waiting
    ``min(max_backoff, backoff * 2 ** (n - 1))`` scaled by a random factor between 0.5 and 1
    before retry ``n``, never waiting more than ``budget`` seconds in total, and never past the
    call's deadline (the ``total`` of the Session's ``timeout``): a backoff that would end
    after it ends the call instead, with the last error. Other POSTs (e.g. app registration)
    are never retried: they could take effect twice.

    Example::

        Retry(attempts=8, budget=120)   # patient
        NO_RETRY                        # one attempt only
    """

    attempts: int = 4
    backoff: float = field(default=0.5, validator=_positive)
    max_backoff: float = field(default=8.0, validator=_positive)
    budget: float = field(default=60.0, validator=_positive)
    statuses: frozenset[int] = frozenset({502, 503, 504})

    def __attrs_post_init__(self) -> None:
        if self.attempts < 1:
            raise ConfigurationError("attempts must be at least 1")

    def delay(self, retry: int, rng: random.Random) -> float:
        """Seconds to wait before retry number ``retry`` (1 for the first retry)."""
        base = min(self.max_backoff, self.backoff * 2.0 ** (retry - 1))
        return base * rng.uniform(0.5, 1.0)


NO_RETRY = Retry(attempts=1)
"""Retry nothing."""


@frozen(kw_only=True)
class Waiting:
    """Reported to ``on_wait`` before the Session sleeps for a rate limit (1 s or more).

    ``reason`` is ``"rate_limited"`` (the server answered 429), ``"budget_spent"`` (no request
    left in the window) or ``"pacing"``; ``seconds`` is how long; ``url`` the request held back;
    ``kind`` the server's window it waits for (``"api"``, ``"paging"``, ``"registration"``, or
    ``None`` outside ``/api``).

    A spent window or a 429 holds every task of its window until the same moment: that is one
    wait, reported once (with the request of the first task to meet it), however many tasks
    sit it out. Under ``pace`` each request waits for a slot of its own, and each such wait is
    reported.
    """

    reason: WaitReason
    seconds: float
    method: str
    url: str
    kind: str | None = None


@frozen(kw_only=True)
class Retrying:
    """Reported to ``on_retry`` before a failed idempotent request is sent again.

    ``attempt`` is the attempt that failed (1 for the first), ``error`` what went wrong, and
    ``seconds`` the backoff before the next attempt.
    """

    attempt: int
    seconds: float
    method: str
    url: str
    error: str


WaitHook = Callable[[Waiting], Awaitable[None] | None]
RetryHook = Callable[[Retrying], Awaitable[None] | None]
