"""Bodies no real API answer has: endless, gigantic, compressed bombs, broken HTTP (points 3, 4).

Each hostile server is real, on loopback; the client must raise a typed error, hold no more
than its cap in memory, not retry, and leave no secret anywhere in the exception chain.
"""

from __future__ import annotations

import asyncio
import traceback
import tracemalloc
import zlib

import pytest
from hostile import Handler, RawServer

import aiomasto
from aiomasto import Retry, Session

TOKEN = "SECRET-bearer-token-0123456789abcdef"
PATH = "/api/v1/accounts/1"
QUICK = Retry(attempts=4, backoff=0.001)
CAP = 1024 * 1024


def head(*lines: str) -> bytes:
    return ("\r\n".join(["HTTP/1.1 200 OK", *lines]) + "\r\n\r\n").encode()


async def endless_chunked(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    writer.write(head("Content-Type: application/json", "Transfer-Encoding: chunked"))
    chunk = b"[" + b"1," * 32767
    for _ in range(4096):  # 256 MiB at most, far more than any cap under test
        writer.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
        await writer.drain()


async def huge_length(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    writer.write(head("Content-Type: application/json", "Content-Length: 2147483648"))
    writer.write(b"[" + b"1," * 1000)
    await writer.drain()
    await asyncio.Event().wait()  # never sends the rest; the client must not wait for it


def gzip_bomb(size: int) -> bytes:
    packer = zlib.compressobj(9, zlib.DEFLATED, 31)  # 31: gzip framing
    block = b" " * (1024 * 1024)
    parts = [packer.compress(b"[")]
    parts += [packer.compress(block) for _ in range(size // len(block))]
    parts.append(packer.compress(b"]") + packer.flush())
    return b"".join(parts)


BOMB = gzip_bomb(256 * 1024 * 1024)  # 256 MiB of JSON whitespace in about 250 KB


async def bomb(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    writer.write(
        head(
            "Content-Type: application/json",
            "Content-Encoding: gzip",
            f"Content-Length: {len(BOMB)}",
        )
    )
    writer.write(BOMB)
    await writer.drain()


async def fitting_gzip(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    body = zlib.compress(
        b'{"id": "1", "username": "a", "acct": "a"}' + b" " * (CAP - 100), wbits=31
    )
    writer.write(
        head(
            "Content-Type: application/json",
            "Content-Encoding: gzip",
            f"Content-Length: {len(body)}",
        )
    )
    writer.write(body)
    await writer.drain()


@pytest.mark.parametrize(
    "handler", [endless_chunked, huge_length, bomb], ids=["endless", "2GiB", "gzip-bomb"]
)
async def test_a_body_larger_than_the_cap_raises_response_too_large_once(
    handler: Handler,
) -> None:
    server = RawServer(handler)
    tracemalloc.start()
    try:
        async with (
            server.run() as url,
            Session(url, access_token=TOKEN, max_response_size=CAP, retry=QUICK) as masto,
            asyncio.timeout(10),
        ):
            with pytest.raises(aiomasto.ResponseTooLarge) as info:
                await masto.request("GET", PATH)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert isinstance(info.value, aiomasto.TransportError)
    assert info.value.limit == CAP
    assert info.value.attempts == 1
    assert server.requests == 1  # never retried
    assert peak < 16 * CAP  # the client held about the cap, not the body


async def test_a_compressed_body_within_the_cap_is_read() -> None:
    async with RawServer(fitting_gzip).run() as url, Session(url, access_token=TOKEN) as masto:
        async with asyncio.timeout(10):
            account = await masto.account("1")
    assert account.username == "a"


def test_the_default_cap_is_16_mib() -> None:
    assert aiomasto.Session("https://m.example")._transport._max_size == 16 * 1024 * 1024


# -- secrets in exception chains (point 3) -----------------------------------------------------


async def broken_http(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    # aiohttp turns an unparsable response into ClientResponseError, whose request_info
    # keeps the request's headers: Authorization included.
    writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: ten\r\n\r\n{}")
    await writer.drain()


async def hang_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """The request is read, then the connection closes with no answer at all."""


def whole_chain(exc: BaseException) -> str:
    text = "".join(traceback.format_exception(exc))
    seen: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in seen:
        seen.append(current)
        text += repr(current) + repr(vars(current))
        current = current.__cause__ or current.__context__
    return text


@pytest.mark.parametrize("handler", [broken_http, hang_up], ids=["broken-http", "hang-up"])
async def test_a_transport_error_carries_no_request_headers(handler: Handler) -> None:
    async with (
        RawServer(handler).run() as url,
        Session(url, access_token=TOKEN, retry=QUICK) as masto,
        asyncio.timeout(10),
    ):
        with pytest.raises(aiomasto.ConnectionFailed) as info:
            await masto.request("GET", PATH)
    assert info.value.__cause__ is None
    assert info.value.__context__ is None
    assert TOKEN not in whole_chain(info.value)
    assert info.value.attempts == 4  # still retried: a connection problem may pass
