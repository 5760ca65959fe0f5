"""Every exception aiomasto raises, in one tree.

::

    MastodonError                      anything raised by aiomasto
    ├── ConfigurationError             a setting or argument that cannot work (also a ValueError
    │                                  and a TypeError), e.g. a plain http:// URL or limit=0
    ├── UsageError                     not now: the Session is not open or already closed, its
    │                                  borrowed aiohttp session was closed (also a RuntimeError)
    ├── TokenStoreError                a TokenStore could not load or save (corrupt file, I/O)
    ├── CrawlSinkError                 a crawl's database could not be read or written (corrupt
    │   │                              file, disk full, I/O)
    │   └── LeaseLost                  another worker of a shared crawl took the list over (this
    │                                  one's lease ran out); the page was not stored
    ├── RateLimiterError               a shared rate budget (RedisLimiter) could not be read or
    │                                  updated
    ├── MediaNotReady                  an upload still processing after upload_media's polls
    ├── TransportError                 no HTTP response at all
    │   ├── ConnectionFailed           DNS, refused, reset, TLS, body cut off mid-read
    │   ├── RequestTimeout             the server did not answer in time
    │   └── ResponseTooLarge           the body outgrew the Session's max_response_size
    ├── OriginError                    a redirect or Link pointed to another origin
    ├── PaginationError                a walk cannot go on (a Link loop, an unreadable Link)
    ├── DecodeError                    a 2xx answer whose body is not what the API promises
    ├── LoginError                     signing a person in failed (a callback with no code, a
    │   │                              stored login that cannot be read)
    │   ├── AuthorizationDenied        the callback says ``error=`` (the person pressed Deny:
    │   │                              ``access_denied``; or the server refused the request)
    │   ├── StateMismatch              the callback's ``state`` is missing, wrong or replayed
    │   ├── LoginExpired               the callback came after the login's ``max_age``
    │   └── ScopeMismatch              the token lacks scopes the login asked for
    └── HTTPError                      the server answered with an error status
        ├── BadRequest                 400
        ├── Unauthorized               401 (bad, revoked or missing token)
        ├── Forbidden                  403 (scope missing, account disabled, ...)
        ├── NotFound                   404
        ├── Gone                       410
        ├── Unprocessable              422 (validation failed)
        │   └── UserTokenRequired      an app-only token where a user is needed (also an
        │                              Unauthorized: GoToSocial answers 401)
        ├── RateLimited                429
        ├── ServerError                5xx (including a proxy's HTML 502/503/504 page)
        └── OAuthError                 an /oauth/* endpoint refused (``error`` is the RFC 6749 code)

Every :class:`HTTPError` carries ``status``, ``error``, ``error_description`` and ``details``
(from a JSON body when there is one), ``method``, ``url`` (never with secrets), ``request_id``
(the server's ``X-Request-Id``) and the response ``headers``. An HTML, empty, truncated or
otherwise unreadable body still maps by status.
Any error that ended a pagination walk carries ``cursor`` (where to resume), and any error of a
retried request ``attempts`` (how many times it was sent).

Example::

    try:
        await masto.verify_app()
    except aiomasto.Unauthorized as exc:
        print(exc.status, exc.error)          # 401 The access token was revoked
    except aiomasto.MastodonError as exc:
        print("giving up:", exc)
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any

from ._redact import redact

if TYPE_CHECKING:
    from .entities import ErrorDetail

__all__ = [
    "BadRequest",
    "ConfigurationError",
    "ConnectionFailed",
    "CrawlSinkError",
    "DecodeError",
    "Forbidden",
    "Gone",
    "AuthorizationDenied",
    "HTTPError",
    "LeaseLost",
    "LoginError",
    "LoginExpired",
    "MastodonError",
    "MediaNotReady",
    "NotFound",
    "OAuthError",
    "OriginError",
    "PaginationError",
    "RateLimited",
    "RateLimiterError",
    "RequestTimeout",
    "ResponseTooLarge",
    "ScopeMismatch",
    "ServerError",
    "StateMismatch",
    "TokenStoreError",
    "TransportError",
    "Unauthorized",
    "Unprocessable",
    "UsageError",
    "UserTokenRequired",
]


class MastodonError(Exception):
    """The root of every exception aiomasto raises.

    ``cursor`` is set when the error interrupted a pagination walk: the cursor of the page that
    failed, to hand to ``Paginator.resume`` once the cause is dealt with. ``attempts`` says how
    many times the failing request was sent.
    """

    cursor: str | None = None
    attempts: int = 1
    """How many times the request was sent before giving up (retries included)."""

    def __str__(self) -> str:
        text = super().__str__()
        if self.attempts > 1:
            text = f"{text} (gave up after {self.attempts} attempts)"
        return text


class ConfigurationError(MastodonError, ValueError, TypeError):
    """A setting or an argument that cannot work or is unsafe.

    Also a ``ValueError`` and a ``TypeError``, so code written for Python's own errors (an id of
    the wrong type, ``limit=0``) still catches it.
    """


class UsageError(MastodonError, RuntimeError):
    """The call cannot be made now: the Session is not open (``async with Session(...)``) or
    already closed, the ``aiohttp.ClientSession`` it borrowed was closed, or a Paginator that
    has walked is asked to walk again. Also a ``RuntimeError``.
    """


class TokenStoreError(MastodonError):
    """A TokenStore could not read or write its records; ``path`` names the file if any."""

    def __init__(self, message: str, *, path: str | None = None) -> None:
        super().__init__(message)
        self.path = path


class CrawlSinkError(MastodonError):
    """A crawl sink could not read or write its database: a damaged file, a full disk, an I/O
    error. ``path`` names the file if any. Messages name the file, never what it holds.

    A database that is not a crawl's (another program's, a token store's) or was written by a
    newer aiomasto is a :class:`ConfigurationError` instead: the path is wrong, not the file.
    """

    def __init__(self, message: str, *, path: str | None = None) -> None:
        super().__init__(message)
        self.path = path


class LeaseLost(CrawlSinkError):
    """A shared crawl's list is no longer this worker's: its lease ran out and another worker
    took it over (or finished it). Nothing of the refused page was stored; the crawler drops
    the list, and the worker that holds it now goes on from the last stored page.
    """


class RateLimiterError(MastodonError):
    """The shared rate budget could not be read or updated (Redis unreachable, refused).

    The message names the Redis server with its password masked, and the kind of failure.
    """


class MediaNotReady(MastodonError):
    """An upload the server was still processing after the polls ``upload_media`` allows.

    ``media_id`` names it: the server may finish later, so it can be looked up again
    (``GET /api/v1/media/:id``) and attached once ready.
    """

    def __init__(self, message: str, *, media_id: str) -> None:
        super().__init__(message)
        self.media_id = media_id


class TransportError(MastodonError):
    """The request got no HTTP response (connection problem or timeout)."""

    def __init__(self, message: str, *, method: str, url: str) -> None:
        super().__init__(f"{message} ({method} {url})")
        self.method = method
        self.url = url


class ConnectionFailed(TransportError):
    """Connecting, sending or reading the response failed."""


class RequestTimeout(TransportError):
    """The server did not answer within the timeout."""


class ResponseTooLarge(TransportError):
    """The response body (after decompression) was larger than the Session accepts.

    ``limit`` is the Session's ``max_response_size`` in bytes. It is never retried: a server
    that sends an endless or gigantic body would only send it again.
    """

    def __init__(self, message: str, *, method: str, url: str, limit: int) -> None:
        super().__init__(message, method=method, url=url)
        self.limit = limit


class OriginError(MastodonError):
    """A redirect or pagination link pointed away from the instance's origin.

    The bearer token is only ever sent to the instance origin, so aiomasto refuses to follow.
    """

    def __init__(self, message: str, *, url: str, expected_origin: str) -> None:
        super().__init__(message)
        self.url = url
        self.expected_origin = expected_origin


class PaginationError(MastodonError):
    """The server's Link headers lead nowhere sensible, e.g. back to a page already fetched."""

    def __init__(self, message: str, *, cursor: str) -> None:
        super().__init__(message)
        self.cursor = cursor


class DecodeError(MastodonError):
    """A successful response whose body could not be decoded into the expected entity.

    ``entity`` is the class being built (e.g. ``"Account"``), ``field`` the dotted path of the
    offending field when known (e.g. ``"[3].emojis[0].url"``), ``body_excerpt`` the first bytes.

    For a page (``Session.get_page``, a walk), ``index`` is the position of the first item that
    could not be decoded (``None`` when the body as a whole is unreadable), ``cursor`` the
    page's own cursor, and ``next_cursor`` / ``prev_cursor`` its Link URLs (``None`` when the
    page has none): a crawler can log the page and go on past it, or walk with
    ``skip_undecodable=True`` to keep the page's other items.

    Example::

        try:
            page = await masto.followers_page("14715", cursor=cursor)
        except aiomasto.DecodeError as exc:
            log.error("page %s, item %s: %s", exc.cursor, exc.index, exc)
            cursor = exc.next_cursor
    """

    index: int | None
    """The position in the page's array of the first item that could not be decoded."""
    next_cursor: str | None = None
    """The page's ``rel="next"`` Link URL, relative to the instance, when known."""
    prev_cursor: str | None = None
    """The page's ``rel="prev"`` Link URL, relative to the instance, when known."""

    def __init__(
        self,
        message: str,
        *,
        entity: str,
        field: str | None = None,
        method: str = "",
        url: str = "",
        status: int | None = None,
        request_id: str | None = None,
        body_excerpt: str = "",
        index: int | None = None,
    ) -> None:
        where = f"{entity}.{field}" if field else entity
        if field and field.startswith("["):
            where = f"{entity}{field}"
        context = f" ({method} {url})" if url else ""
        # A body can hold a secret (a truncated token answer): neither message nor excerpt
        # may quote it.
        super().__init__(redact(f"cannot decode {where}: {message}{context}"))
        self.entity = entity
        self.field = field
        self.method = method
        self.url = url
        self.status = status
        self.request_id = request_id
        self.body_excerpt = redact(body_excerpt)
        self.index = index


class LoginError(MastodonError):
    """Signing a person in failed between the authorize redirect and the token.

    Raised as such when the callback carries no code or a stored login cannot be read; its
    subclasses say what else went wrong. A refused code exchange (a used, expired or foreign
    code, a wrong PKCE verifier) is an :class:`OAuthError` from ``/oauth/token`` instead.
    Messages never quote a code, a verifier or a state.

    Example::

        try:
            user = await authorizer.finish(login, request.query)
        except aiomasto.AuthorizationDenied:
            return web.Response(text="You chose not to sign in.")
        except aiomasto.LoginError as exc:
            return web.Response(status=400, text=f"Sign-in failed: {exc}")
    """


class AuthorizationDenied(LoginError):
    """The callback carries ``error=``: the person pressed Deny (``access_denied``) or the
    server refused the request (e.g. ``invalid_scope``).

    ``error`` is the RFC 6749 code and ``error_description`` the server's text (``None`` when
    absent), both masked by redaction, flattened to one line and cut to a few hundred
    characters: a callback's query is anyone's text.
    """

    def __init__(self, *, error: str, error_description: str | None = None) -> None:
        self.error = error
        self.error_description = error_description
        detail = f"{error}: {error_description}" if error_description else error
        super().__init__(f"the authorization was not granted ({detail})")


class StateMismatch(LoginError):
    """The callback's ``state`` is missing, is not this login's, or was already used.

    A forged or crossed callback (another tab, another user) or a replay: start the login again.
    """


class LoginExpired(LoginError):
    """The callback came more than ``max_age`` seconds after the login started.

    ``age`` and ``max_age`` are in seconds. Mastodon's authorization codes live 10 minutes.
    """

    def __init__(self, *, age: float, max_age: float) -> None:
        self.age = age
        self.max_age = max_age
        super().__init__(
            f"the login is {age:.0f} s old, more than the {max_age:.0f} s it may take; "
            "start it again"
        )


class ScopeMismatch(LoginError):
    """The granted token lacks scopes the login asked for.

    ``requested`` and ``granted`` are the two scope tuples, ``missing`` what was asked for and
    not granted.
    """

    def __init__(
        self, *, requested: tuple[str, ...], granted: tuple[str, ...], missing: tuple[str, ...]
    ) -> None:
        self.requested = requested
        self.granted = granted
        self.missing = missing
        super().__init__(
            f"the server granted {' '.join(granted) or 'no scopes'} but not "
            f"{' '.join(missing)} (asked for {' '.join(requested)})"
        )


class HTTPError(MastodonError):
    """The server answered with a status of 400 or more.

    Attributes: ``status``, ``error`` (the server's message or OAuth error code, or ``None``),
    ``error_description``, ``details`` (the reasons per form field of a validation error, as
    :attr:`aiomasto.Error.details`; empty when the server sent none), ``method``, ``url``
    (secret-free), ``request_id``, ``headers``.
    """

    def __init__(
        self,
        *,
        status: int,
        method: str,
        url: str,
        error: str | None = None,
        error_description: str | None = None,
        request_id: str | None = None,
        headers: Mapping[str, str] | None = None,
        details: Mapping[str, tuple[ErrorDetail, ...]] | None = None,
    ) -> None:
        self.status = status
        self.method = method
        self.url = url
        # The server's words can echo what it was sent, a client secret or a token among them.
        self.error = None if error is None else redact(error)
        self.error_description = None if error_description is None else redact(error_description)
        self.request_id = request_id
        self.headers: Mapping[str, str] = headers if headers is not None else {}
        self.details: Mapping[str, tuple[ErrorDetail, ...]] = details if details else {}
        super().__init__(self._message())

    def _message(self) -> str:
        detail = self.error or "no error message in the response body"
        if self.error_description:
            detail = f"{detail}: {self.error_description}"
        rid = f" [request id {self.request_id}]" if self.request_id else ""
        return f"{self.status} from {self.method} {self.url}: {detail}{rid}"


class BadRequest(HTTPError):
    """400: a parameter is missing or malformed."""


class Unauthorized(HTTPError):
    """401: the token is missing, unknown, revoked or expired, or the endpoint needs a user."""


class Forbidden(HTTPError):
    """403: the token lacks a scope, or the account is disabled, unconfirmed or suspended."""


class NotFound(HTTPError):
    """404: no such record, or no such route (often an HTML page)."""


class Gone(HTTPError):
    """410: the instance is shutting down (self-destruct mode) or the record is gone."""


class Unprocessable(HTTPError):
    """422: validation failed, or an app-only token was used where a user token is needed.

    ``details`` holds the reasons per form field when the server sends them (Mastodon does for
    some forms), e.g. ``exc.details["email"][0].error == "ERR_BLANK"``.
    """


class UserTokenRequired(Unprocessable, Unauthorized):
    """The endpoint needs a token that belongs to a user; an app-only token cannot call it.

    Mastodon answers 422 "This method requires an authenticated user" (401 in limited
    federation mode), GoToSocial 401 "user not supplied". Obtain a user token with the
    authorization-code flow, or use one from the instance's Development settings.
    """

    def _message(self) -> str:
        return f"{super()._message()} (this endpoint needs a user token, not an app token)"


class RateLimited(HTTPError):
    """429: too many requests.

    ``reset`` is when the window resets (UTC) and ``retry_after`` how many seconds to wait, when
    the server said so (``Retry-After``) or the reset could be computed.
    """

    def __init__(
        self, *, reset: datetime | None = None, retry_after: float | None = None, **fields: Any
    ) -> None:
        self.reset = reset
        self.retry_after = retry_after
        super().__init__(**fields)

    def _message(self) -> str:
        message = super()._message()
        if self.retry_after is not None:
            message = f"{message} (retry in {self.retry_after:.1f} s)"
        return message


class ServerError(HTTPError):
    """5xx: the server or a proxy in front of it failed; often an HTML page."""


class OAuthError(HTTPError):
    """An OAuth endpoint (``/oauth/token``, ``/oauth/revoke``) refused the request.

    ``error`` is the RFC 6749 code (``invalid_client``, ``invalid_grant``, ``invalid_scope``,
    ``unsupported_grant_type``, ``invalid_request``, ``unauthorized_client``) and
    ``error_description`` the server's explanation.
    """


_BY_STATUS: dict[int, type[HTTPError]] = {
    400: BadRequest,
    401: Unauthorized,
    403: Forbidden,
    404: NotFound,
    410: Gone,
    422: Unprocessable,
    429: RateLimited,
}


_USER_REQUIRED = ("This method requires an authenticated user", "user not supplied")


def error_class_for(status: int, error: str | None = None) -> type[HTTPError]:
    """The exception class for an HTTP error status and message (not for OAuth endpoints)."""
    if status in (401, 422) and error and any(text in error for text in _USER_REQUIRED):
        return UserTokenRequired
    if status >= 500:
        return ServerError
    return _BY_STATUS.get(status, HTTPError)
