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

import re
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime

from attrs import frozen

__all__ = ["RateLimit", "parse_reset", "parse_retry_after"]

# RFC 9110 §10.2.3: delay-seconds is 1*DIGIT. Anything else that is not an HTTP-date ("-5",
# "nan", "inf", "1e309", "2.5") is not a Retry-After at all.
_DIGITS = re.compile(r"[0-9]+")
# Delays beyond this are all "far too long" alike; capping keeps the arithmetic (and the
# datetime of the reset) finite for a header of a thousand nines.
_LONGEST_DELAY = 1e10


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
    # ASCII digits only: int() would also take "-5", "1_000" and other scripts' digits.
    if value is None:
        return None
    text = value.strip()
    if not _DIGITS.fullmatch(text) or len(text) > 18:
        return None
    return int(text)


def parse_reset(value: str) -> datetime | None:
    """Parse ``X-RateLimit-Reset``: ISO 8601 (any fraction, ``Z`` or offset) or epoch seconds."""
    text = value.strip()
    if ":" not in text:  # float() never reads a colon: an ISO time is not tried (and raised)
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
    """Seconds to wait from a ``Retry-After`` header; ``None`` when absent or not valid.

    Only the two forms of RFC 9110 count: non-negative whole seconds (``"120"``) or an HTTP
    date, taken relative to ``now`` (a date in the past means no wait: ``0.0``). Anything else
    (``"-5"``, ``"nan"``, ``"inf"``, ``"1e309"``) is no Retry-After at all. Absurdly long
    delays are capped at 10^10 s, still far beyond any wait a Session accepts.

    Example::

        parse_retry_after("120", now) == 120.0
        parse_retry_after("Fri, 07 Aug 2026 14:05:00 GMT", now)  # seconds until then
    """
    if not value:
        return None
    text = value.strip()
    if _DIGITS.fullmatch(text):
        # Compared as text first: int() refuses more than 4300 digits.
        return _LONGEST_DELAY if len(text) > 10 else min(float(text), _LONGEST_DELAY)
    if not text[:1].isalpha():
        return None  # every HTTP-date starts with the day's name
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, OverflowError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return min(max(0.0, (when - now) / timedelta(seconds=1)), _LONGEST_DELAY)
