"""The transport: the only module that talks to aiohttp's client.

It sends one request and reads the whole body, turning aiohttp's exceptions into aiomasto's
:class:`~aiomasto.TransportError` family. Redirects are not followed here: the Session decides,
because only it knows where the bearer token may go.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping

import aiohttp
from yarl import URL

from ._protocol import RawResponse, redact_url
from .errors import ConnectionFailed, RequestTimeout

__all__ = ["DEFAULT_TIMEOUT", "Transport"]

log = logging.getLogger("aiomasto")

DEFAULT_TIMEOUT = aiohttp.ClientTimeout(total=60, connect=10, sock_read=30)
"""Connect within 10 s and no 30 s of silence while reading, per attempt; 60 s for the whole
call, its retries and their backoff included (the Requester keeps that deadline)."""


class Transport:
    """Sends requests through an aiohttp ClientSession, owned or borrowed.

    A borrowed session (``http=``) is never closed; an owned one is created in the running loop
    by :meth:`open` and closed by :meth:`close`.
    """

    def __init__(
        self,
        *,
        http: aiohttp.ClientSession | None,
        timeout: aiohttp.ClientTimeout,
        user_agent: str,
    ) -> None:
        self._http = http
        self._owned = http is None
        self._timeout = timeout
        self._user_agent = user_agent

    async def open(self) -> None:
        if self._http is None:
            self._http = aiohttp.ClientSession(timeout=self._timeout)

    async def close(self) -> None:
        if self._owned and self._http is not None:
            await self._http.close()
            self._http = None

    async def send(
        self,
        method: str,
        url: URL,
        *,
        headers: Mapping[str, str],
        form: Mapping[str, str] | None = None,
        request_timeout: aiohttp.ClientTimeout | None = None,
    ) -> RawResponse:
        if self._http is None:
            raise RuntimeError("the Session is not open: use 'async with Session(...)'")
        shown = redact_url(url)
        all_headers = {"User-Agent": self._user_agent, **headers}
        started = time.monotonic()
        try:
            async with self._http.request(
                method,
                url,
                headers=all_headers,
                data=form,
                allow_redirects=False,
                timeout=request_timeout or self._timeout,
            ) as resp:
                body = await resp.read()
                response = RawResponse(
                    method=method,
                    url=url,
                    status=resp.status,
                    headers=resp.headers,
                    body=body,
                )
        except (TimeoutError, aiohttp.ServerTimeoutError) as exc:
            log.debug("%s %s timed out", method, shown)
            message = "the server did not answer in time"
            raise RequestTimeout(message, method=method, url=shown) from exc
        except aiohttp.ClientPayloadError as exc:
            log.debug("%s %s: body cut off", method, shown)
            raise ConnectionFailed(
                f"the response body was cut off ({type(exc).__name__})", method=method, url=shown
            ) from exc
        except aiohttp.ClientError as exc:
            log.debug("%s %s failed: %s", method, shown, type(exc).__name__)
            raise ConnectionFailed(
                f"connection failed ({type(exc).__name__}: {exc})", method=method, url=shown
            ) from exc
        log.debug(
            "%s %s -> %d (%d bytes, %.0f ms)",
            method,
            shown,
            response.status,
            len(response.body),
            (time.monotonic() - started) * 1000,
        )
        return response
