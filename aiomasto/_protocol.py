"""The pure middle of every request: a raw response in, an error or decoded data out.

Nothing here does I/O, so the whole mapping is tested with canned ``(status, headers, body)``
samples. The transport hands over a :class:`RawResponse`; the Session calls
:func:`error_for` on any status of 400 or more.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from attrs import Factory, field, frozen
from yarl import URL

from ._converter import decode_json
from ._redact import redact
from .entities import Error
from .errors import DecodeError, HTTPError, OAuthError, RateLimited, error_class_for
from .ratelimit import RateLimit, parse_retry_after

__all__ = ["RawResponse", "error_for", "is_token_rejection", "redact_url"]

# Query parameters that can carry a secret; they are masked wherever a URL is shown.
_SECRET_PARAMS = frozenset(
    {"access_token", "bearer_token", "client_secret", "code", "refresh_token", "token", "password"}
)

# Doorkeeper's texts for a token that exists no more or never did (mastodon-api.md §1.2).
_TOKEN_REJECTIONS = (
    "The access token is invalid",
    "The access token was revoked",
    "The access token expired",
)


@frozen(kw_only=True)
class RawResponse:
    """What the transport read: the final request's method and URL, status, headers, body."""

    method: str
    url: URL
    status: int
    headers: Mapping[str, str]
    body: bytes = field(repr=False)  # may hold a token (an /oauth/token answer)
    ratelimit: RateLimit | None = field(
        default=Factory(lambda self: RateLimit.from_headers(self.headers), takes_self=True)
    )
    """The rate-limit window reported with this response, if any (parsed once)."""

    @property
    def request_id(self) -> str | None:
        """The server's ``X-Request-Id``, for reports to the instance's admins."""
        return self.headers.get("X-Request-Id")

    def context(self) -> dict[str, Any]:
        """Keyword arguments that place a DecodeError: method, secret-free URL, status, id."""
        return {
            "method": self.method,
            "url": redact_url(self.url),
            "status": self.status,
            "request_id": self.request_id,
        }


def redact_url(url: URL) -> str:
    """The URL as text with secret-bearing query values masked."""
    if not url.query or _SECRET_PARAMS.isdisjoint(url.query):
        return str(url)
    masked = [(k, "[redacted]" if k in _SECRET_PARAMS else v) for k, v in url.query.items()]
    return str(url.with_query(masked))


def _error_body(body: bytes) -> Error | None:
    """The body as an :class:`Error`; ``None`` for HTML, junk, other JSON or nothing at all."""
    try:
        return decode_json(Error, body)
    except DecodeError:
        return None


def error_for(
    response: RawResponse,
    *,
    oauth: bool,
    now: datetime | None = None,
    secrets: Iterable[str] = (),
) -> HTTPError:
    """The exception for an error response.

    ``oauth`` marks the OAuth endpoints, whose 4xx JSON bodies carry an RFC 6749 code and become
    :class:`OAuthError`. Everything else maps by status, whatever the body is (an nginx HTML
    page, Mastodon's HTML 404, nothing at all). ``secrets`` are the values the request carried
    (token, client secret): the server's words are masked where they echo one.
    """
    body = _error_body(response.body)
    error = body.error if body else None
    description = body.error_description if body else None
    secrets = tuple(secrets)
    if secrets:
        error = None if error is None else redact(error, secrets)
        description = None if description is None else redact(description, secrets)
    fields: dict[str, Any] = {
        "status": response.status,
        "method": response.method,
        "url": redact_url(response.url),
        "error": error,
        "error_description": description,
        "details": body.details if body else None,
        "request_id": response.request_id,
        "headers": response.headers,
    }
    # A 429 is a rate limit wherever it comes from (a proxy may throttle /oauth too).
    if oauth and 400 <= response.status < 500 and response.status != 429 and error is not None:
        return OAuthError(**fields)
    cls = error_class_for(response.status, error)
    if cls is RateLimited:
        current = now or datetime.now(UTC)
        reset = response.ratelimit.reset if response.ratelimit else None
        retry_after = parse_retry_after(response.headers.get("Retry-After"), current)
        if retry_after is None and reset is not None:
            retry_after = max(0.0, (reset - current).total_seconds())
        return RateLimited(reset=reset, retry_after=retry_after, **fields)
    return cls(**fields)


def is_token_rejection(error: HTTPError) -> bool:
    """Whether a 401 says the token itself is bad (unknown, revoked, expired).

    Not every 401 is about the token: "This method requires an authenticated user" means the
    endpoint wants a user, and a new app token would not help.
    """
    if error.status != 401:
        return False
    challenge = error.headers.get("WWW-Authenticate", "")
    return 'error="invalid_token"' in challenge or (error.error or "") in _TOKEN_REJECTIONS
