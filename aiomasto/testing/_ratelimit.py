"""Fixed-window throttles (Rack::Attack's and GoToSocial's) and the ``X-RateLimit-*`` headers."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Literal

import attrs

__all__ = [
    "Limits",
    "ResetFormat",
    "Throttle",
    "ThrottleHit",
    "Throttler",
    "format_reset",
    "rate_limit_headers",
]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

# "iso_us": Mastodon's iso8601(6); "iso_ms": GoToSocial >= 0.12; "epoch": older GoToSocial.
ResetFormat = Literal["iso_us", "iso_ms", "epoch"]

Rate = tuple[int, float]


def _rate(value: tuple[int, float]) -> Rate:
    limit, period = value
    if limit < 1 or period <= 0:
        raise ValueError(f"a rate needs limit >= 1 and period > 0, got {value!r}")
    return int(limit), float(period)


def _optional_rate(value: tuple[int, float] | None) -> Rate | None:
    return None if value is None else _rate(value)


@attrs.frozen(kw_only=True)
class Limits:
    """Throttle sizes as ``(requests, period in seconds)``; defaults are Mastodon's (§8.1).

    ``per_user`` counts user tokens by their account, ``per_token`` every token,
    ``per_ip`` requests without a user (anonymous or app token; also GoToSocial's only
    limit), ``paging`` any request with ``max_id``/``since_id``/``min_id``/``page`` per user
    or IP (``None`` turns it off), ``app_registrations`` ``POST /api/v1/apps`` per IP.

    Example::

        FakeMastodon(limits=Limits(per_token=(5, 2.0)), enforce_rate_limit=True, clock=clock)
    """

    per_user: Rate = attrs.field(default=(1500, 300.0), converter=_rate)
    per_token: Rate = attrs.field(default=(300, 300.0), converter=_rate)
    per_ip: Rate = attrs.field(default=(300, 300.0), converter=_rate)
    paging: Rate | None = attrs.field(default=(300, 900.0), converter=_optional_rate)
    app_registrations: Rate = attrs.field(default=(5, 600.0), converter=_rate)


@attrs.frozen(kw_only=True)
class Throttle:
    """One rule as it applies to the current request."""

    name: str
    key: str
    limit: int
    period: float
    # Only enforced throttles answer 429; the others just count and feed the headers.
    enforced: bool
    # Rack::Attack windows are epoch-aligned; GoToSocial's limiter starts one at the first hit.
    aligned: bool = True


@attrs.frozen(kw_only=True)
class ThrottleHit:
    limit: int
    count: int
    # When the window ends, in epoch microseconds (as the headers report it).
    reset_us: int

    @property
    def remaining(self) -> int:
        return max(self.limit - self.count, 0)


def format_reset(reset_us: int, style: ResetFormat) -> str:
    """``X-RateLimit-Reset`` for a window ending at ``reset_us``.

    Example: ``format_reset(1_786_111_800_123_456, "iso_us") == "2026-08-07T14:10:00.123456Z"``.
    """
    if style == "epoch":
        return str(reset_us // 1_000_000)
    moment = _EPOCH + timedelta(microseconds=reset_us)
    text = moment.strftime("%Y-%m-%dT%H:%M:%S.%f")
    return (text[:-3] if style == "iso_ms" else text) + "Z"


def rate_limit_headers(hits: Sequence[ThrottleHit], style: ResetFormat) -> dict[str, str]:
    """Headers from the most constrained throttle (smallest ``limit - count``; the first
    one on ties, as Ruby's ``min_by`` picks)."""
    hit = min(hits, key=lambda h: h.limit - h.count)
    return {
        "X-RateLimit-Limit": str(hit.limit),
        "X-RateLimit-Remaining": str(hit.remaining),
        "X-RateLimit-Reset": format_reset(hit.reset_us, style),
    }


class Throttler:
    """Window counters: one entry per (rule, key), so the table does not grow with time."""

    def __init__(self) -> None:
        # (throttle name, discriminator) -> (window id, count). The window id is the epoch
        # window number for aligned throttles and the start time (us) for first-hit ones.
        self._counters: dict[tuple[str, str], tuple[int, int]] = {}

    def _window(self, throttle: Throttle, now_us: int) -> tuple[int, int, int]:
        """(window id, count so far, reset time in us) of the window ``now_us`` falls in."""
        period_us = round(throttle.period * 1_000_000)
        stored = self._counters.get((throttle.name, throttle.key))
        if throttle.aligned:
            now_s = now_us // 1_000_000
            window = int(now_s // throttle.period)
            # Mastodon: now + (period - now.to_i % period), so the request's fraction stays.
            reset_us = now_us + round((throttle.period - now_s % throttle.period) * 1_000_000)
            count = stored[1] if stored is not None and stored[0] == window else 0
            return window, count, reset_us
        if stored is not None and now_us < stored[0] + period_us:
            return stored[0], stored[1], stored[0] + period_us
        return now_us, 0, now_us + period_us

    def peek(self, throttle: Throttle, now_us: int) -> ThrottleHit:
        """The current window without counting a request."""
        _, count, reset_us = self._window(throttle, now_us)
        return ThrottleHit(limit=throttle.limit, count=count, reset_us=reset_us)

    def hit(self, throttle: Throttle, now_us: int) -> ThrottleHit:
        window, count, reset_us = self._window(throttle, now_us)
        self._counters[(throttle.name, throttle.key)] = (window, count + 1)
        return ThrottleHit(limit=throttle.limit, count=count + 1, reset_us=reset_us)

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
