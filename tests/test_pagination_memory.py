"""A walk holds one page of entities at a time: the page handed out is let go before the next one
is decoded, so a long crawl's entities never pile up into the garbage collector's old
generations.
"""

from __future__ import annotations

import asyncio
import gc
import weakref

from aiomasto import Account
from aiomasto.pagination import Page, Paginator


def account(n: int) -> Account:
    return Account(id=str(n), username=f"user{n}", acct=f"user{n}")


async def test_a_page_handed_out_is_let_go_before_the_next_is_decoded() -> None:
    first_done = asyncio.Event()
    alive_while_decoding: list[bool] = []
    first_account: list[weakref.ref[Account]] = []

    async def fetch(cursor: str) -> Page[Account]:
        if cursor == "/p?page=1":
            items = [account(1), account(2)]
            first_account.append(weakref.ref(items[0]))
            following: str | None = "/p?page=2"
        else:
            # The response of page 2 arrives once page 1 is done with; its decoding starts now.
            await first_done.wait()
            gc.collect()
            alive_while_decoding.append(first_account[0]() is not None)
            items, following = [account(3)], None
        return Page(
            items=items,
            cursor=cursor,
            next_cursor=following,
            prev_cursor=None,
            ratelimit=None,
            headers={"Link": ""},
        )

    pager = Paginator(fetch, "/p?page=1")
    seen = []
    async for item in pager:
        seen.append(item.id)
        if item.id == "2":
            first_done.set()
        del item
    assert seen == ["1", "2", "3"]
    assert alive_while_decoding == [False]
    assert pager.latest_page is not None
    assert pager.latest_page.cursor == "/p?page=2"
    assert pager.latest_page.headers == {"Link": ""}
