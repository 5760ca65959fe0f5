"""A plain aiohttp client and a movable clock for testing FakeMastodon itself."""

from __future__ import annotations

import json
import re
from typing import Any

import aiohttp
import attrs

LINK_RE = re.compile(r'<([^>]+)>; rel="(\w+)"')


class Clock:
    """An injectable clock; tests move time instead of sleeping."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@attrs.frozen(kw_only=True)
class Reply:
    """A response read whole: status, headers (aiohttp's case-insensitive multidict), body."""

    status: int
    headers: Any
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)

    def ids(self) -> list[str]:
        return [account["id"] for account in self.json()]

    def links(self) -> dict[str, str]:
        return {rel: url for url, rel in LINK_RE.findall(self.headers.get("Link", ""))}

    @property
    def limit(self) -> tuple[str, str, str]:
        h = self.headers
        return h["X-RateLimit-Limit"], h["X-RateLimit-Remaining"], h["X-RateLimit-Reset"]


class Client:
    """A plain aiohttp session bound to one running fake server."""

    def __init__(self, url: str, http: aiohttp.ClientSession) -> None:
        self.url = url
        self.http = http

    async def request(
        self, method: str, path: str, token: str | None = None, **kwargs: Any
    ) -> Reply:
        headers = dict(kwargs.pop("headers", {}))
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        target = path if path.startswith("http") else self.url + path
        async with self.http.request(method, target, headers=headers, **kwargs) as response:
            return Reply(
                status=response.status, headers=response.headers, body=await response.read()
            )

    async def get(self, path: str, token: str | None = None, **kwargs: Any) -> Reply:
        return await self.request("GET", path, token, **kwargs)

    async def post(self, path: str, token: str | None = None, **kwargs: Any) -> Reply:
        return await self.request("POST", path, token, **kwargs)
