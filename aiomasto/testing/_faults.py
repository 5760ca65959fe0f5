"""Canned failure responses that :meth:`FakeMastodon.inject` serves instead of the real endpoint."""

from __future__ import annotations

import json
from collections.abc import Mapping
from http import HTTPStatus
from types import MappingProxyType

import attrs
from aiohttp import web

__all__ = ["Fault"]

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


@attrs.frozen(kw_only=True)
class Fault:
    """A response served verbatim, as if by a proxy in front of the server.

    Faults bypass everything else: no rate-limit accounting, no ``X-Request-Id``,
    no Mastodon headers. Only ``headers`` (and ``Content-Type`` when given) are sent.

    Example::

        server.inject("/api/v1/apps", Fault.html(502))
        server.inject("/oauth/token", Fault.json(503, {"error": "Too many requests"}))
        server.inject("/api/v1/accounts/1/followers", Fault.truncated_json(), times=2)
    """

    status: int
    body: bytes = b""
    content_type: str | None = None
    headers: Mapping[str, str] = attrs.field(default=None, converter=_frozen_headers)

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
        )

    @classmethod
    def empty(cls, status: int = 503) -> Fault:
        """A response with an empty body and no ``Content-Type``, e.g. ``Fault.empty(503)``."""
        return cls(status=status)

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
        )

    @classmethod
    def truncated_json(cls, status: int = 200) -> Fault:
        """A JSON body cut off mid-document; ``Content-Length`` matches what is sent.

        Example: ``Fault.truncated_json()`` sends ``[{"id": "1", "userna``.
        """
        return cls(status=status, body=b'[{"id": "1", "userna', content_type=_JSON_TYPE)

    @classmethod
    def raw(
        cls,
        status: int,
        body: bytes,
        content_type: str,
        headers: Mapping[str, str] | None = None,
    ) -> Fault:
        """Arbitrary bytes, e.g. ``Fault.raw(403, b"Forbidden", "text/plain")``."""
        return cls(status=status, body=body, content_type=content_type, headers=headers)

    def to_response(self) -> web.Response:
        headers = dict(self.headers)
        if self.content_type is not None:
            headers["Content-Type"] = self.content_type
        return web.Response(status=self.status, body=self.body, headers=headers)
