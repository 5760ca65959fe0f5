"""The redis-server fixture itself: private, password-protected, answering."""

from __future__ import annotations

import pytest
import redis.asyncio as aioredis
import redis.exceptions
from yarl import URL


async def test_the_redis_server_answers_only_with_its_password(redis_url: str) -> None:
    client = aioredis.from_url(redis_url)
    try:
        assert await client.ping()
        await client.set("aiomasto:probe", "1")
        assert await client.get("aiomasto:probe") == b"1"
    finally:
        await client.aclose()
    anonymous = aioredis.from_url(str(URL(redis_url).with_password(None).with_user(None)))
    try:
        with pytest.raises(redis.exceptions.AuthenticationError):
            await anonymous.ping()
    finally:
        await anonymous.aclose()
