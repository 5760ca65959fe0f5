"""Named hosts on loopback for crawl tests: a resolver, and a raw server per host name.

Until every test uses the fake fediverse, these let a test give a host name
(``wf.example``) to any aiohttp application on a loopback port, so the crawler's WebFinger,
redirect and origin rules see real names.
"""

from __future__ import annotations

import contextlib
import socket
from collections.abc import AsyncIterator, Mapping

import aiohttp
from aiohttp import web
from aiohttp.abc import AbstractResolver, ResolveResult


class HostResolver(AbstractResolver):
    """Maps host names to loopback ports (whatever port the URL names); others fail."""

    def __init__(self, ports: Mapping[str, int]) -> None:
        self.ports = dict(ports)

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        if host not in self.ports:
            raise OSError(f"unknown host {host}")
        return [
            ResolveResult(
                hostname=host,
                host="127.0.0.1",
                port=self.ports[host],
                family=socket.AF_INET,
                proto=0,
                flags=socket.AI_NUMERICHOST,
            )
        ]

    async def close(self) -> None:
        return None


def free_port() -> int:
    """A loopback port where nothing listens (for a dead host)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.asynccontextmanager
async def serve(app: web.Application) -> AsyncIterator[int]:
    """Run ``app`` on a free loopback port and yield the port."""
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    server = site._server
    assert server is not None
    port = int(server.sockets[0].getsockname()[1])  # type: ignore[attr-defined]
    try:
        yield port
    finally:
        await runner.cleanup()


def client(resolver: HostResolver) -> aiohttp.ClientSession:
    """An aiohttp session that finds the named hosts."""
    return aiohttp.ClientSession(connector=aiohttp.TCPConnector(resolver=resolver))
