"""The transport: the only module that talks to aiohttp's client.

It sends one request and reads the whole body, or opens one WebSocket (the streaming API),
turning aiohttp's exceptions into aiomasto's :class:`~aiomasto.TransportError` family.
Redirects of requests are not followed here: the Session decides, because only it knows where
the bearer token may go.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import socket
import time
from collections.abc import Iterable, Mapping

import aiohttp
import aiohttp.abc
from yarl import URL

from ._protocol import RawResponse, redact_url
from ._redact import Secret, redact
from .errors import (
    ConfigurationError,
    ConnectionFailed,
    RequestTimeout,
    ResponseTooLarge,
    TransportError,
    UsageError,
)

__all__ = [
    "DEFAULT_MAX_RESPONSE_SIZE",
    "DEFAULT_TIMEOUT",
    "StaticResolver",
    "Transport",
    "WebSocketConnection",
]

log = logging.getLogger("aiomasto")

DEFAULT_TIMEOUT = aiohttp.ClientTimeout(total=60, connect=10, sock_read=30)
"""Connect within 10 s and no 30 s of silence while reading, per attempt; 60 s for the whole
call, its retries and their backoff included (the Requester keeps that deadline)."""


DEFAULT_MAX_RESPONSE_SIZE = 16 * 1024 * 1024
"""16 MiB: real API answers are far smaller (a page of 80 accounts is about 160 KB)."""

# Waiting for the server's answer to our close frame: a stream being stopped should not hold
# its caller longer than this.
_WS_CLOSE_TIMEOUT = 2.0


class Transport:
    """Sends requests through an aiohttp ClientSession, owned or borrowed.

    A borrowed session (``http=``) is never closed; an owned one is created in the running loop
    by :meth:`open` and closed by :meth:`close`. Bodies are read up to ``max_response_size``
    bytes after decompression, so no server can make the client hold more than that.
    """

    def __init__(
        self,
        *,
        http: aiohttp.ClientSession | None,
        timeout: aiohttp.ClientTimeout,
        user_agent: str,
        max_response_size: int = DEFAULT_MAX_RESPONSE_SIZE,
    ) -> None:
        self._http = http
        self._owned = http is None
        self._timeout = timeout
        self._user_agent = user_agent
        self._max_size = max_response_size
        self._closed = False

    async def open(self) -> None:
        self._closed = False
        if self._http is None:
            self._http = aiohttp.ClientSession(timeout=self._timeout)

    async def close(self) -> None:
        self._closed = True
        if self._owned and self._http is not None:
            await self._http.close()
        self._http = None

    def _client(self) -> aiohttp.ClientSession:
        if self._http is None:
            if self._closed:
                raise UsageError("this Session is closed: use it inside 'async with Session(...)'")
            raise UsageError("the Session is not open: use 'async with Session(...)'")
        if self._http.closed:
            raise UsageError("the aiohttp.ClientSession this Session borrowed has been closed")
        return self._http

    async def send(
        self,
        method: str,
        url: URL,
        *,
        headers: Mapping[str, str],
        form: Mapping[str, str] | None = None,
        body: bytes | None = None,
        request_timeout: aiohttp.ClientTimeout | None = None,
    ) -> RawResponse:
        """One exchange; ``form`` is sent urlencoded, ``body`` as it is (its Content-Type
        among ``headers``)."""
        http = self._client()
        started = time.monotonic()
        # The error is raised after the except clauses, not inside them: aiohttp's exception
        # (whose request_info holds the request headers, the bearer token among them) must not
        # stay attached as __cause__ or __context__ for a traceback printer to show.
        failure: TransportError | None = None
        try:
            async with http.request(
                method,
                url,
                headers=headers if "User-Agent" in headers else self.with_agent(headers),
                data=form if body is None else body,
                allow_redirects=False,
                timeout=request_timeout or self._timeout,
            ) as resp:
                body = await self._read_body(resp, method, url)
                response = RawResponse(
                    method=method, url=url, status=resp.status, headers=resp.headers, body=body
                )
        except ResponseTooLarge as exc:
            failure = exc
        except (TimeoutError, aiohttp.ServerTimeoutError):
            shown = redact_url(url)
            failure = RequestTimeout("the server did not answer in time", method=method, url=shown)
        except aiohttp.ClientPayloadError as exc:
            failure = ConnectionFailed(
                f"the response body was cut off or malformed ({type(exc).__name__})",
                method=method,
                url=redact_url(url),
            )
        except aiohttp.ClientError as exc:
            failure = ConnectionFailed(
                f"connection failed ({_describe(exc, headers, form)})",
                method=method,
                url=redact_url(url),
            )
        if failure is not None:
            log.debug("%s %s failed: %s", method, redact_url(url), type(failure).__name__)
            raise failure
        # The URL is redacted only for a line that is written: a crawl sends thousands.
        if log.isEnabledFor(logging.DEBUG):
            log.debug(
                "%s %s -> %d (%d bytes, %.0f ms)",
                method,
                redact_url(url),
                response.status,
                len(response.body),
                (time.monotonic() - started) * 1000,
            )
        return response

    async def websocket(
        self,
        url: URL,
        *,
        headers: Mapping[str, str],
        heartbeat: float,
        max_message_size: int,
        connect_timeout: float | None,
    ) -> WebSocketConnection | RawResponse:
        """Open a WebSocket to ``url``; a refused handshake comes back as its response.

        The caller has checked ``url``'s origin. ``heartbeat`` is the seconds between pings
        (a pong missing for half of it ends the connection); a message larger than
        ``max_message_size`` bytes ends it too, before it is held in memory.
        """
        http = self._client()
        shown = redact_url(url)
        failure: TransportError | None = None
        try:
            async with asyncio.timeout(connect_timeout):
                ws = await http.ws_connect(
                    url,
                    headers=self.with_agent(headers),
                    heartbeat=heartbeat,
                    max_msg_size=max_message_size,
                    timeout=aiohttp.ClientWSTimeout(ws_close=_WS_CLOSE_TIMEOUT),
                )
        except aiohttp.WSServerHandshakeError as exc:
            if exc.status in (0, 101, 200):
                failure = ConnectionFailed(
                    "the server did not accept the WebSocket upgrade", method="GET", url=shown
                )
            else:
                return RawResponse(
                    method="GET", url=url, status=exc.status, headers=exc.headers or {}, body=b""
                )
        except (TimeoutError, aiohttp.ServerTimeoutError):
            failure = RequestTimeout(
                "the streaming server did not answer in time", method="GET", url=shown
            )
        except aiohttp.ClientError as exc:
            failure = ConnectionFailed(
                f"connection failed ({_describe(exc, headers, None)})", method="GET", url=shown
            )
        if failure is not None:
            log.debug("GET %s (WebSocket) failed: %s", shown, type(failure).__name__)
            raise failure
        log.debug("GET %s -> WebSocket open", shown)
        return WebSocketConnection(ws, shown, max_message_size)

    def with_agent(self, headers: Mapping[str, str]) -> dict[str, str]:
        """``headers`` with this transport's ``User-Agent``, to build once and send often."""
        return {"User-Agent": self._user_agent, **headers}

    async def _read_body(self, resp: aiohttp.ClientResponse, method: str, url: URL) -> bytes:
        """The whole body, or :class:`ResponseTooLarge` as soon as it outgrows the cap."""
        limit = self._max_size
        length = resp.content_length
        if length is not None and length > limit:
            raise self._too_large(method, url, f"it announces {length} bytes")
        if length is not None and "Content-Encoding" not in resp.headers:
            # aiohttp reads exactly Content-Length bytes: the announced size is the size.
            return await resp.read()
        chunks: list[bytes] = []
        size = 0
        # Decompressed as it arrives, so a small gzip bomb is stopped at the cap too.
        async for chunk in resp.content.iter_any():
            size += len(chunk)
            if size > limit:
                raise self._too_large(method, url, f"more than {limit} bytes arrived")
            chunks.append(chunk)
        return b"".join(chunks)

    def _too_large(self, method: str, url: URL, why: str) -> ResponseTooLarge:
        return ResponseTooLarge(
            f"the response body is larger than max_response_size={self._max_size} ({why})",
            method=method,
            url=redact_url(url),
            limit=self._max_size,
        )


class WebSocketConnection:
    """An open WebSocket: its text messages one by one, aiohttp's failures as aiomasto's.

    Pings and pongs are answered and checked by aiohttp; :meth:`receive` returns only text
    (a binary message is decoded as UTF-8, as the only text Mastodon sends is JSON).
    """

    def __init__(self, ws: aiohttp.ClientWebSocketResponse, shown_url: str, limit: int) -> None:
        self._ws = ws
        self._url = shown_url
        self._limit = limit

    @property
    def closed(self) -> bool:
        return self._ws.closed

    async def receive(self) -> str:
        """The next message; the end of the connection raises a :class:`TransportError`."""
        msg = await self._ws.receive()
        if msg.type is aiohttp.WSMsgType.TEXT:
            return str(msg.data)
        if msg.type is aiohttp.WSMsgType.BINARY:
            return bytes(msg.data).decode("utf-8", errors="replace")
        error = self._ws.exception()
        if msg.type is aiohttp.WSMsgType.ERROR and error is None:
            error = msg.data if isinstance(msg.data, BaseException) else None
        if isinstance(error, aiohttp.WebSocketError) and error.code == 1009:
            raise ResponseTooLarge(
                f"a stream message is larger than max_message_size={self._limit}",
                method="GET",
                url=self._url,
                limit=self._limit,
            )
        if isinstance(error, (TimeoutError, aiohttp.ServerTimeoutError)):
            raise RequestTimeout(
                "the streaming server stopped answering pings", method="GET", url=self._url
            )
        if error is not None:
            raise ConnectionFailed(
                f"the stream broke ({type(error).__name__})", method="GET", url=self._url
            )
        code = self._ws.close_code
        raise ConnectionFailed(
            f"the server closed the stream (close code {code})" if code else "the stream was cut",
            method="GET",
            url=self._url,
        )

    async def close(self) -> None:
        """Close the connection (a no-op once closed); never raises for a dead peer."""
        with contextlib.suppress(aiohttp.ClientError, OSError, TimeoutError):
            await self._ws.close()


def _describe(
    exc: aiohttp.ClientError, headers: Mapping[str, str], form: Mapping[str, str] | None
) -> str:
    """What went wrong, without any secret that was part of the request."""
    secrets = [v for v in (*headers.values(), *(form or {}).values()) if isinstance(v, Secret)]
    return redact(f"{type(exc).__name__}: {exc}", secrets)


class StaticResolver(aiohttp.abc.AbstractResolver):
    """Resolves chosen host names to fixed ``(ip, port)`` pairs, others as usual.

    Like ``curl --resolve``, but the port is part of the answer: a URL without a port
    (``http://alpha.example``) reaches ``127.0.0.1:41234``, so many fake servers on loopback
    can each keep its own name. Names match case-insensitively, a trailing dot ignored; any
    other host goes to aiohttp's default resolver (created on first use, closed with this
    one). Give it to the connector of the aiohttp session a ``Session`` borrows.

    Example::

        resolver = StaticResolver({"alpha.example": ("127.0.0.1", 41234)})
        connector = aiohttp.TCPConnector(resolver=resolver)
        async with aiohttp.ClientSession(connector=connector) as http:
            async with Session("http://alpha.example", http=http, ...) as masto:
                ...

        StaticResolver.from_specs(["alpha.example=127.0.0.1:41234"])  # the CLI's --resolve
    """

    def __init__(
        self,
        mapping: Mapping[str, tuple[str, int]],
        *,
        fallback: aiohttp.abc.AbstractResolver | None = None,
    ) -> None:
        self._mapping: dict[str, tuple[str, int]] = {}
        for host, (ip, port) in mapping.items():
            try:
                ipaddress.ip_address(ip)
            except ValueError:
                raise ConfigurationError(
                    f"{host!r} must map to an IP address, not {ip!r}"
                ) from None
            if not 0 < port < 65536:
                raise ConfigurationError(f"{host!r}: port {port} is not between 1 and 65535")
            self._mapping[_host_key(host)] = (ip, port)
        self._fallback = fallback
        self._owns_fallback = fallback is None

    @classmethod
    def from_specs(cls, specs: Iterable[str]) -> StaticResolver:
        """From ``host=ip:port`` texts (``[::1]:8080`` for IPv6), as ``--resolve`` takes them.

        Example: ``StaticResolver.from_specs(["alpha.example=127.0.0.1:41234"])``.
        """
        mapping: dict[str, tuple[str, int]] = {}
        for spec in specs:
            host, sep, address = spec.partition("=")
            ip, colon, port = address.rpartition(":")
            ip = ip.removeprefix("[").removesuffix("]")
            if not sep or not colon or not host.strip() or not port.isdigit():
                raise ConfigurationError(f"{spec!r}: expected host=ip:port")
            mapping[host.strip()] = (ip, int(port))
        return cls(mapping)

    @property
    def mapping(self) -> Mapping[str, tuple[str, int]]:
        """The fixed answers, keyed by lower-cased host name."""
        return dict(self._mapping)

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[aiohttp.abc.ResolveResult]:
        target = self._mapping.get(_host_key(host))
        if target is None:
            if self._fallback is None:
                self._fallback = aiohttp.DefaultResolver()
            return await self._fallback.resolve(host, port, family)
        ip, mapped_port = target
        return [
            {
                "hostname": host,
                "host": ip,
                "port": mapped_port,
                "family": socket.AF_INET6 if ":" in ip else socket.AF_INET,
                "proto": 0,
                "flags": socket.AI_NUMERICHOST,
            }
        ]

    async def close(self) -> None:
        if self._owns_fallback and self._fallback is not None:
            await self._fallback.close()
            self._fallback = None


def _host_key(host: str) -> str:
    return host.strip().lower().rstrip(".")
