"""A walk asks for the next page before decoding the one it has: the server prepares page n+1
while the client decodes page n. Only when that cannot cost a request the walk would not make.
"""

from __future__ import annotations

import pytest

from aiomasto import Account, DecodeError
from aiomasto.pagination import Page, Paginator, UndecodedPage


def account(n: int) -> Account:
    return Account(id=str(n), username=f"user{n}", acct=f"user{n}")


class Server:
    """Pages 1..last of two accounts each; records what happens in order."""

    def __init__(self, last: int, *, bodies: dict[int, bytes] | None = None) -> None:
        self.last = last
        self.bodies = bodies or {}
        self.events: list[str] = []

    async def fetch(self, cursor: str) -> UndecodedPage[Account]:
        n = int(cursor.rpartition("=")[2])
        self.events.append(f"request {n}")
        following = f"/p?page={n + 1}" if n < self.last else None
        body = self.bodies.get(n, b'[{"id": "x"}]')

        def decode() -> Page[Account]:
            self.events.append(f"decode {n}")
            if body == b"broken":
                raise DecodeError("not JSON", entity="Account")
            items = [] if b"".join(body.split()) == b"[]" else [account(2 * n), account(2 * n + 1)]
            return Page(
                items=items,
                cursor=cursor,
                next_cursor=following,
                prev_cursor=None,
                ratelimit=None,
                headers={},
            )

        return UndecodedPage(
            cursor=cursor, next_cursor=following, prev_cursor=None, body=body, decode=decode
        )


async def test_the_next_page_is_asked_for_before_this_one_is_decoded() -> None:
    server = Server(3)
    ids = [a.id async for a in Paginator(server.fetch, "/p?page=1")]
    assert ids == ["2", "3", "4", "5", "6", "7"]
    assert server.events == [
        "request 1",
        "request 2",
        "decode 1",
        "request 3",
        "decode 2",
        "decode 3",
    ]


async def test_under_max_items_the_next_page_waits_for_this_ones_count() -> None:
    server = Server(5)
    ids = [a.id async for a in Paginator(server.fetch, "/p?page=1", max_items=4)]
    assert ids == ["2", "3", "4", "5"]
    # Page 2 fills max_items: page 3 is never asked for.
    assert server.events == ["request 1", "decode 1", "request 2", "decode 2"]


async def test_max_pages_and_an_empty_page_cost_no_request_ahead() -> None:
    server = Server(5)
    pages = [p async for p in Paginator(server.fetch, "/p?page=1", max_pages=2).pages()]
    assert [p.cursor for p in pages] == ["/p?page=1", "/p?page=2"]
    assert "request 3" not in server.events

    server = Server(5, bodies={2: b" [ ]\n"})
    ids = [a.id async for a in Paginator(server.fetch, "/p?page=1")]
    assert ids == ["2", "3"]
    assert "request 3" not in server.events  # an empty page ends the walk, Links or not


async def test_a_page_that_fails_to_decode_raises_with_its_cursor_and_drops_the_one_ahead() -> None:
    server = Server(5, bodies={2: b"broken"})
    pager = Paginator(server.fetch, "/p?page=1")
    seen = []
    with pytest.raises(DecodeError) as raised:
        async for item in pager:
            seen.append(item.id)
    assert raised.value.cursor == "/p?page=2"
    assert seen == ["2", "3"]
    assert pager.cursor == "/p?page=2"  # resumable at the page that failed
