"""Every call has a real deadline (issue 8, point 10).

``timeout=aiohttp.ClientTimeout(total=..., connect=..., sock_read=...)``: ``connect`` and
``sock_read`` bound each attempt, ``total`` the whole call, retries and the backoff between them
included. Hostile loopback servers (silent after the request, or dripping a byte at a time) must
not stretch a call past its deadline by retrying or by sending just enough to look alive.
"""

from __future__ import annotations

import asyncio
import time

import aiohttp
import pytest
from hostile import Handler, RawServer

import aiomasto
from aiomasto import NO_RETRY, Retry, Session
from aiomasto.testing import FakeMastodon, Fault

DEADLINE = 1.5
SLACK = 1.0  # generous: the machine is shared; the old behaviour took seconds more
TIGHT = aiohttp.ClientTimeout(total=DEADLINE, connect=1.0, sock_read=0.5)
PATIENT = Retry(attempts=10, backoff=0.1, max_backoff=0.2, budget=60.0)


async def never_answers(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await asyncio.Event().wait()  # hangs until the test ends


async def drips_the_body(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n")
    writer.write(b"\r\n[")
    while True:  # a byte well within sock_read, forever
        await writer.drain()
        await asyncio.sleep(0.1)
        writer.write(b" ")


async def drips_the_headers(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    writer.write(b"HTTP/1.1 200 OK\r\n")
    while True:
        await writer.drain()
        await asyncio.sleep(0.1)
        writer.write(b"X-Padding: a\r\n")


@pytest.mark.parametrize(
    "handler", [never_answers, drips_the_body, drips_the_headers], ids=lambda h: h.__name__
)
async def test_a_hostile_server_fails_the_call_within_its_deadline(handler: Handler) -> None:
    server = RawServer(handler)
    async with server.run() as url:
        session = Session(url, access_token="t0ken", timeout=TIGHT, retry=PATIENT)
        async with session as masto:
            started = time.monotonic()
            with pytest.raises(aiomasto.RequestTimeout) as info:
                async with asyncio.timeout(DEADLINE + 10):
                    await masto.request("GET", "/api/v1/accounts/1")
            elapsed = time.monotonic() - started
    assert elapsed < DEADLINE + SLACK
    assert server.requests >= 1
    assert "t0ken" not in str(info.value)


async def test_the_deadline_covers_the_backoff_between_attempts() -> None:
    server = FakeMastodon()
    alice = server.add_account("alice")
    token = server.issue_user_token(alice)
    path = f"/api/v1/accounts/{alice}"
    server.inject(path, Fault.html(503), times=100)
    slow_retry = Retry(attempts=10, backoff=0.4, max_backoff=0.4, budget=60.0)
    timeout = aiohttp.ClientTimeout(total=1.0)
    async with server.run() as url, Session(url, access_token=token, retry=slow_retry) as masto:
        started = time.monotonic()
        with pytest.raises(aiomasto.ServerError) as info:
            async with asyncio.timeout(10):
                await masto.request("GET", path, timeout=timeout)
        elapsed = time.monotonic() - started
    assert elapsed < 1.0 + SLACK
    assert 1 < info.value.attempts < 10  # it retried, then stopped for want of time
    assert server.count("GET", path) == info.value.attempts


async def test_each_attempt_still_has_its_read_timeout() -> None:
    # No deadline at all: sock_read alone ends each silent attempt.
    no_deadline = aiohttp.ClientTimeout(total=None, sock_read=0.2)
    quick = Retry(attempts=2, backoff=0.01, max_backoff=0.01)
    server = RawServer(never_answers)
    async with server.run() as url:
        session = Session(url, access_token="t", timeout=no_deadline, retry=quick)
        async with session as masto:
            with pytest.raises(aiomasto.RequestTimeout) as info:
                async with asyncio.timeout(5):
                    await masto.request("GET", "/api/v1/accounts/1")
    assert info.value.attempts == 2
    assert server.requests == 2


async def test_a_rate_limit_wait_does_not_count_against_the_deadline() -> None:
    server = FakeMastodon()
    alice = server.add_account("alice")
    token = server.issue_user_token(alice)
    path = f"/api/v1/accounts/{alice}"
    server.inject(path, Fault.json(429, {"error": "Too many requests"}, {"Retry-After": "1"}))
    short = aiohttp.ClientTimeout(total=0.5)
    async with server.run() as url, Session(url, access_token=token, retry=NO_RETRY) as masto:
        started = time.monotonic()
        async with asyncio.timeout(5):
            await masto.request("GET", path, timeout=short)  # waits 1 s, then goes: no timeout
        assert time.monotonic() - started >= 1.0
    assert server.count("GET", path) == 2
