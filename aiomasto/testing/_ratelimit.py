"""Rack::Attack-style fixed-window throttles and Mastodon's ``X-RateLimit-*`` headers."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import attrs

__all__ = ["Throttle", "ThrottleHit", "Throttler", "format_reset", "rate_limit_headers"]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@attrs.frozen(kw_only=True)
class Throttle:
    """One Rack::Attack rule as it applies to the current request."""

    name: str
    key: str
    limit: int
    period: float
    # Only enforced throttles answer 429; the others just count and feed the headers.
    enforced: bool


@attrs.frozen(kw_only=True)
class ThrottleHit:
    limit: int
    count: int
    period: float

    @property
    def remaining(self) -> int:
        return max(self.limit - self.count, 0)


def format_reset(now_us: int, period: float) -> str:
    """Mastodon's ``X-RateLimit-Reset``: ``now + (period - now.to_i % period)`` as ``iso8601(6)``.

    The fractional part is the request time's, because only the integer seconds are aligned.
    """
    now_s = now_us // 1_000_000
    offset_us = round((period - now_s % period) * 1_000_000)
    moment = _EPOCH + timedelta(microseconds=now_us + offset_us)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def rate_limit_headers(hits: Sequence[ThrottleHit], now_us: int) -> dict[str, str]:
    """Headers from the most constrained throttle (smallest ``limit - count``), like Mastodon."""
    hit = min(hits, key=lambda h: h.limit - h.count)
    return {
        "X-RateLimit-Limit": str(hit.limit),
        "X-RateLimit-Remaining": str(hit.remaining),
        "X-RateLimit-Reset": format_reset(now_us, hit.period),
    }


class Throttler:
    """Counters for epoch-aligned fixed windows (Rack::Attack's ``now / period`` keys)."""

    def __init__(self) -> None:
        # (throttle name, discriminator) -> (window number, count); one entry per key, so
        # the table does not grow with time.
        self._counters: dict[tuple[str, str], tuple[int, int]] = {}

    def hit(self, throttle: Throttle, now_us: int) -> ThrottleHit:
        window = int((now_us // 1_000_000) // throttle.period)
        slot = (throttle.name, throttle.key)
        previous_window, count = self._counters.get(slot, (window, 0))
        count = count + 1 if previous_window == window else 1
        self._counters[slot] = (window, count)
        return ThrottleHit(limit=throttle.limit, count=count, period=throttle.period)

    def check(
        self, throttles: Sequence[Throttle], now_us: int
    ) -> tuple[list[ThrottleHit], ThrottleHit | None]:
        """Count the request against each throttle in order.

        Returns the hits so far and the hit that throttled the request, if any. Like
        Rack::Attack, the rules after a throttling one are not evaluated (nor counted).
        """
        hits: list[ThrottleHit] = []
        for throttle in throttles:
            hit = self.hit(throttle, now_us)
            hits.append(hit)
            if throttle.enforced and hit.count > hit.limit:
                return hits, hit
        return hits, None
