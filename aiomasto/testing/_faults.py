"""Failures served instead of the real endpoint: scripted (``inject``) or random (``chaos``)."""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Mapping
from http import HTTPStatus
from types import MappingProxyType

import attrs

__all__ = ["Chaos", "Fault"]

_JSON_TYPE = "application/json; charset=utf-8"

# nginx uses its own reason phrases for a few codes, and they appear in the page title.
_NGINX_REASONS = {503: "Service Temporarily Unavailable", 504: "Gateway Time-out"}
_NGINX_VERSION = "nginx/1.25.5"


def _reason(status: int) -> str:
    if status in _NGINX_REASONS:
        return _NGINX_REASONS[status]
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


def _frozen_headers(headers: Mapping[str, str] | None) -> Mapping[str, str]:
    return MappingProxyType(dict(headers or {}))


def _nginx_page(status: int) -> bytes:
    title = f"{status} {_reason(status)}"
    # nginx writes CRLF line endings; the byte count matters to clients checking Content-Length.
    lines = [
        "<html>",
        f"<head><title>{title}</title></head>",
        "<body>",
        f"<center><h1>{title}</h1></center>",
        f"<hr><center>{_NGINX_VERSION}</center>",
        "</body>",
        "</html>",
    ]
    return "".join(line + "\r\n" for line in lines).encode("ascii")


def _check_shape(fault: Fault, _attribute: object, then: Fault | None) -> None:
    if then is not None and fault.status is not None:
        raise ValueError("a Fault either answers itself (status) or hands over to `then`")


# A page of accounts as Mastodon would send it, long enough that half of it is a real cut.
_RESET_BODY = json.dumps(
    [{"id": str(109_000_000_000_000_001 + i), "username": f"user{i}"} for i in range(40)]
).encode()


@attrs.frozen(kw_only=True)
class Fault:
    """A misbehaviour served instead of (or before) the real answer, as if by a proxy.

    A fault that answers bypasses everything else: no rate-limit accounting, no
    ``X-Request-Id``, no Mastodon headers. Only ``headers`` (and ``Content-Type`` when
    given) are sent, plus the window's ``X-RateLimit-*`` for :meth:`rate_limited`.
    :meth:`slow` without ``then`` only delays the normal answer. ``kind`` names the fault
    in :attr:`FakeMastodon.faults_injected`.

    Example::

        server.inject("/api/v1/apps", Fault.html(502))
        server.inject("/oauth/token", Fault.json(503, {"error": "Too many requests"}))
        server.inject("/api/v1/accounts/1/followers", Fault.truncated_json(), times=2)
        server.inject("/api/v1/accounts/1", Fault.slow(0.2, then=Fault.reset_mid_body()))
    """

    # None: no response of its own; after ``delay`` the server answers (or ``then`` does).
    status: int | None
    body: bytes = b""
    content_type: str | None = None
    headers: Mapping[str, str] = attrs.field(default=None, converter=_frozen_headers)
    kind: str = "custom"
    # Seconds to wait (asyncio.sleep) before answering.
    delay: float = 0.0
    # Send Content-Length for the whole body, then only this many bytes, then hang up.
    cut_after: int | None = None
    # Add X-RateLimit-* headers describing the request's current rate-limit window.
    window_headers: bool = False
    # Let the server carry the request out, then hang up before a byte of the answer.
    after_processing: bool = False
    then: Fault | None = attrs.field(default=None, validator=_check_shape)

    @classmethod
    def html(cls, status: int = 502) -> Fault:
        """The default nginx error page (``text/html``), e.g. when Puma is down.

        Example: ``Fault.html(504)`` gives ``<title>504 Gateway Time-out</title>``.
        """
        return cls(
            status=status,
            body=_nginx_page(status),
            content_type="text/html",
            headers={"Server": _NGINX_VERSION},
            kind=f"html_{status}",
        )

    @classmethod
    def empty(cls, status: int = 503) -> Fault:
        """A response with an empty body and no ``Content-Type``, e.g. ``Fault.empty(503)``."""
        return cls(status=status, kind=f"empty_{status}")

    @classmethod
    def json(cls, status: int, body: object, headers: Mapping[str, str] | None = None) -> Fault:
        """Any JSON document.

        Example: ``Fault.json(503, {"error": "Remote data could not be fetched"})``.
        """
        return cls(
            status=status,
            body=json.dumps(body).encode(),
            content_type=_JSON_TYPE,
            headers=headers,
            kind=f"json_{status}",
        )

    @classmethod
    def truncated_json(cls, status: int = 200) -> Fault:
        """A JSON body cut off mid-document; ``Content-Length`` matches what is sent.

        Example: ``Fault.truncated_json()`` sends ``[{"id": "1", "userna``.
        """
        return cls(
            status=status, body=b'[{"id": "1", "userna', content_type=_JSON_TYPE, kind="truncated"
        )

    @classmethod
    def raw(
        cls,
        status: int,
        body: bytes,
        content_type: str,
        headers: Mapping[str, str] | None = None,
    ) -> Fault:
        """Arbitrary bytes, e.g. ``Fault.raw(403, b"Forbidden", "text/plain")``."""
        return cls(
            status=status,
            body=body,
            content_type=content_type,
            headers=headers,
            kind=f"raw_{status}",
        )

    @classmethod
    def reset_mid_body(cls, status: int = 200) -> Fault:
        """The connection drops halfway through a JSON body whose full length was announced.

        aiohttp raises :class:`aiohttp.ClientPayloadError` while reading the body.

        Example: ``server.inject(path, Fault.reset_mid_body())``.
        """
        return cls(
            status=status,
            body=_RESET_BODY,
            content_type=_JSON_TYPE,
            cut_after=len(_RESET_BODY) // 2,
            kind="reset",
        )

    @classmethod
    def reset_after_processing(cls) -> Fault:
        """The server does the work (a status is posted), then the connection drops before
        the answer: the client cannot tell whether it happened, and must not do it twice.

        Example: ``server.inject("/api/v1/statuses", Fault.reset_after_processing())``.
        """
        return cls(status=None, after_processing=True, kind="reset_after_processing")

    @classmethod
    def slow(cls, seconds: float, then: Fault | None = None) -> Fault:
        """Wait ``seconds``, then answer normally (or serve ``then``).

        Example: ``Fault.slow(0.1)``, ``Fault.slow(5.0, then=Fault.html(504))``.
        """
        if seconds < 0:
            raise ValueError("seconds must not be negative")
        return cls(status=None, delay=seconds, then=then, kind="slow")

    @classmethod
    def rate_limited(cls, retry_after: float | None = None) -> Fault:
        """Mastodon's 429 ``{"error":"Too many requests"}`` with ``X-RateLimit-Limit``,
        ``X-RateLimit-Remaining: 0`` and the ``X-RateLimit-Reset`` of the request's current
        window; ``Retry-After`` only when given (as GoToSocial's overload guard sends it).

        Example: ``Fault.rate_limited()``, ``Fault.rate_limited(retry_after=30)``.
        """
        headers = {} if retry_after is None else {"Retry-After": f"{retry_after:g}"}
        return cls(
            status=429,
            body=b'{"error":"Too many requests"}',
            content_type="application/json",
            headers=headers,
            window_headers=True,
            kind="rate_limited",
        )


def _probability(value: float) -> float:
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"a probability must be within [0, 1], got {value!r}")
    return float(value)


@attrs.frozen(kw_only=True)
class Chaos:
    """Random faults (see :meth:`FakeMastodon.chaos`): each request on ``path_prefix`` draws
    once; the probabilities are disjoint slices of that draw, so they must sum to <= 1."""

    html_5xx: float = attrs.field(default=0.0, converter=_probability)
    reset: float = attrs.field(default=0.0, converter=_probability)
    truncated: float = attrs.field(default=0.0, converter=_probability)
    slow: float = attrs.field(default=0.0, converter=_probability)
    slow_seconds: float = 0.0
    json_500: float = attrs.field(default=0.0, converter=_probability)
    path_prefix: str = "/api/"

    def __attrs_post_init__(self) -> None:
        total = self.html_5xx + self.reset + self.truncated + self.slow + self.json_500
        if total > 1.0 + 1e-9:
            raise ValueError(f"fault probabilities add up to {total:g}, more than 1")
        if self.slow_seconds < 0:
            raise ValueError("slow_seconds must not be negative")

    def draw(self, rng: random.Random) -> Fault | None:
        """The fault for one request, or None to serve it normally."""
        roll = rng.random()
        outcomes: tuple[tuple[float, Callable[[], Fault]], ...] = (
            (self.html_5xx, lambda: Fault.html(rng.choice((502, 503, 504)))),
            (self.reset, Fault.reset_mid_body),
            (self.truncated, Fault.truncated_json),
            (self.slow, lambda: Fault.slow(self.slow_seconds)),
            (self.json_500, lambda: Fault.json(500, {"error": "Internal Server Error"})),
        )
        for chance, make in outcomes:
            if roll < chance:
                return make()
            roll -= chance
        return None
