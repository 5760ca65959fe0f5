"""Reading the server's rate-limit headers (pure functions, no I/O).

Mastodon sends ``X-RateLimit-Limit``, ``X-RateLimit-Remaining`` and ``X-RateLimit-Reset`` on
every ``/api`` response, the reset as ISO 8601 with a fraction and ``Z``; old GoToSocial sent
Unix epoch seconds; Akkoma sends none. A 429 from Mastodon has no ``Retry-After``; GoToSocial's
overload 429 has one.

Example::

    RateLimit.from_headers({"X-RateLimit-Limit": "300", "X-RateLimit-Remaining": "299",
                            "X-RateLimit-Reset": "2026-08-07T14:05:00.123456Z"})
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime

from attrs import frozen

__all__ = ["RateLimit", "parse_reset", "parse_retry_after"]


@frozen(kw_only=True)
class RateLimit:
    """The rate-limit window the server reported with a response."""

    limit: int
    remaining: int
    reset: datetime | None

    @classmethod
    def from_headers(cls, headers: Mapping[str, str]) -> RateLimit | None:
        """Parse the ``X-RateLimit-*`` headers; ``None`` when they are absent or unusable."""
        limit = _int(headers.get("X-RateLimit-Limit"))
        remaining = _int(headers.get("X-RateLimit-Remaining"))
        if limit is None or remaining is None:
            return None
        reset_value = headers.get("X-RateLimit-Reset")
        reset = parse_reset(reset_value) if reset_value else None
        return cls(limit=limit, remaining=remaining, reset=reset)


def _int(value: str | None) -> int | None:
    if value is None:
        return None
    try:
        return int(value.strip())
    except ValueError:
        return None


def parse_reset(value: str) -> datetime | None:
    """Parse ``X-RateLimit-Reset``: ISO 8601 (any fraction, ``Z`` or offset) or epoch seconds."""
    text = value.strip()
    try:
        return datetime.fromtimestamp(float(text), UTC)
    except (ValueError, OverflowError, OSError):
        pass
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def parse_retry_after(value: str | None, now: datetime) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta seconds or an HTTP date)."""
    if not value:
        return None
    text = value.strip()
    try:
        return max(0.0, float(text))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - now) / timedelta(seconds=1))
