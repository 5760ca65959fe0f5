"""What servers send that they should not: deep JSON, nulls, undecodable items, odd errors.

Over loopback against aiomasto.testing, with the stdlib JSON parser and with orjson.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

import pytest

import aiomasto
from aiomasto.testing import FakeMastodon, Fault

APP = aiomasto.App(name="Crawler")
JSON = "application/json; charset=utf-8"


def url(server: FakeMastodon) -> str:
    assert server.url is not None
    return server.url


def followers_path(account_id: str) -> str:
    return f"/api/v1/accounts/{account_id}/followers"


DEEP_ARRAY = b"[" * 100_000 + b"]" * 100_000
DEEP_OBJECT = b'{"a":' * 100_000 + b"1" + b"}" * 100_000
DEEP_BODIES = pytest.mark.parametrize("body", [DEEP_ARRAY, DEEP_OBJECT], ids=["array", "object"])


def moved_chain(depth: int) -> bytes:
    """An account that moved to an account that moved to ... ``depth`` times."""
    # json.dumps recurses as deep as the data: build the bytes by hand.
    head = "".join(f'{{"id":"{i}","username":"u","acct":"u","moved":' for i in range(depth))
    return (head + "null" + "}" * depth).encode()


# -- 5. deeply nested JSON ------------------------------------------------------------------


@DEEP_BODIES
async def test_deeply_nested_json_in_a_page_is_a_decode_error(
    server: FakeMastodon, json_parser: str, body: bytes
) -> None:
    star = server.add_account("star")
    server.inject(followers_path(star), Fault.raw(200, body, JSON))
    async with aiomasto.Session(url(server), app=APP) as masto, asyncio.timeout(10):
        with pytest.raises(aiomasto.DecodeError) as info:
            await masto.followers_page(star)
    assert info.value.entity == "Account"
    assert "nested too deeply" in str(info.value)
    assert info.value.cursor == followers_path(star)
    assert info.value.index is None  # the body as a whole is unreadable


@pytest.mark.parametrize("depth", [1_020, 5_000])
async def test_a_deep_moved_chain_is_a_decode_error(
    server: FakeMastodon, json_parser: str, depth: int
) -> None:
    # orjson parses up to 1024 levels: then the structuring step must not recurse unchecked.
    alice = server.add_account("alice")
    server.inject(f"/api/v1/accounts/{alice}", Fault.raw(200, moved_chain(depth), JSON))
    async with aiomasto.Session(url(server), app=APP) as masto, asyncio.timeout(10):
        with pytest.raises(aiomasto.DecodeError, match="deep"):
            await masto.account(alice)


async def test_a_moved_chain_of_reasonable_depth_decodes(
    server: FakeMastodon, json_parser: str
) -> None:
    alice = server.add_account("alice")
    server.inject(f"/api/v1/accounts/{alice}", Fault.raw(200, moved_chain(50), JSON))
    async with aiomasto.Session(url(server), app=APP) as masto, asyncio.timeout(10):
        account = await masto.account(alice)
    hops = 0
    while account.moved is not None:
        account, hops = account.moved, hops + 1
    assert hops == 49


@DEEP_BODIES
@pytest.mark.parametrize(
    ("status", "cls"), [(401, aiomasto.Unauthorized), (500, aiomasto.ServerError)]
)
async def test_deeply_nested_error_bodies_still_map_by_status(
    server: FakeMastodon, json_parser: str, body: bytes, status: int, cls: type[aiomasto.HTTPError]
) -> None:
    alice = server.add_account("alice")
    token = server.issue_user_token(alice)
    server.inject(f"/api/v1/accounts/{alice}", Fault.raw(status, body, JSON))
    async with aiomasto.Session(url(server), access_token=token) as masto, asyncio.timeout(10):
        with pytest.raises(aiomasto.HTTPError) as info:
            await masto.account(alice)
    assert type(info.value) is cls
    assert info.value.status == status
    assert info.value.error is None  # the body is unreadable; the status still says it all


# -- 13. nulls and undecodable items in a walk ------------------------------------------------


async def raw_pages(masto: aiomasto.Session, star: str, limit: int) -> list[tuple[str, Any]]:
    """(cursor, parsed JSON) of every page of a clean walk."""
    pages = [page async for page in masto.followers(star, limit=limit).pages()]
    out = []
    for page in pages:
        response = await masto.request("GET", page.cursor)
        out.append((page.cursor, json.loads(response.body)))
    return out


def serve_page_instead(
    server: FakeMastodon, star: str, page: int, items: Any, next_cursor: str | None
) -> None:
    """Serve ``items`` as page ``page`` (0-based) of the walk, with the real next link."""
    link = {"Link": f'<{url(server)}{next_cursor}>; rel="next"'} if next_cursor else {}
    server.inject(followers_path(star), Fault.json(200, items, headers=link), after=page, times=1)


async def test_null_flags_do_not_stop_a_crawl(server: FakeMastodon, json_parser: str) -> None:
    star = server.add_account("star")
    expected = server.add_followers(star, 100)[::-1]
    async with aiomasto.Session(url(server), app=APP) as masto, asyncio.timeout(10):
        pages = await raw_pages(masto, star, 40)
        nulls = {"suspended": None, "limited": None, "display_name": None, "emojis": None}
        items = [{**item, **nulls} for item in pages[1][1]]
        serve_page_instead(server, star, 1, items, pages[2][0])
        got = [a async for a in masto.followers(star, limit=40)]
    assert [a.id for a in got] == expected
    assert all(a.suspended is False and a.limited is False for a in got)
    assert all(a.display_name == "" and a.emojis == () for a in got[40:80])


async def test_an_undecodable_item_names_its_page_and_the_next(
    server: FakeMastodon, json_parser: str
) -> None:
    star = server.add_account("star")
    expected = server.add_followers(star, 100)[::-1]
    async with aiomasto.Session(url(server), app=APP) as masto, asyncio.timeout(10):
        pages = await raw_pages(masto, star, 40)
        items = list(pages[1][1])
        del items[7]["id"]
        serve_page_instead(server, star, 1, items, pages[2][0])
        pager = masto.followers(star, limit=40)
        got: list[str] = []
        with pytest.raises(aiomasto.DecodeError) as info:
            async for account in pager:
                got.append(account.id)
        error = info.value
        assert error.index == 7
        assert error.field == "[7].id"
        assert error.cursor == pages[1][0] == pager.cursor
        assert error.next_cursor == pages[2][0]
        assert error.prev_cursor is None
        # The crawl can go on past the bad page: nothing after it is lost.
        rest = [a.id async for a in masto.followers(star, limit=40).resume(error.next_cursor)]
    assert got + rest == expected[:40] + expected[80:]


async def test_a_walk_can_skip_undecodable_items_and_say_so(
    server: FakeMastodon, json_parser: str, caplog: pytest.LogCaptureFixture
) -> None:
    star = server.add_account("star")
    expected = server.add_followers(star, 100)[::-1]
    async with aiomasto.Session(url(server), app=APP) as masto, asyncio.timeout(10):
        pages = await raw_pages(masto, star, 40)
        items = list(pages[1][1])
        del items[3]["id"]
        items[9] = "not an account"
        items[12]["followers_count"] = "lots"
        serve_page_instead(server, star, 1, items, pages[2][0])
        pager = masto.followers(star, limit=40, skip_undecodable=True)
        with caplog.at_level(logging.WARNING, logger="aiomasto"):
            walked = [page async for page in pager.pages()]
    bad = {expected[40 + i] for i in (3, 9, 12)}
    assert [a.id for p in walked for a in p.items] == [i for i in expected if i not in bad]
    assert [e.index for e in walked[1].skipped] == [3, 9, 12]
    assert [e.field for e in walked[1].skipped] == ["[3].id", "[9]", "[12].followers_count"]
    assert all(e.cursor == pages[1][0] for e in walked[1].skipped)
    assert walked[0].skipped == walked[2].skipped == ()
    assert pager.items_skipped == 3
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 3
    assert "item 3" in warnings[0].getMessage()
    assert "required field missing" in warnings[0].getMessage()
    assert "expected an object, got a string" in warnings[1].getMessage()
    assert "not an account" not in warnings[1].getMessage()  # values are never quoted


async def test_a_page_of_nothing_but_undecodable_items_does_not_end_the_walk(
    server: FakeMastodon, json_parser: str
) -> None:
    star = server.add_account("star")
    expected = server.add_followers(star, 100)[::-1]
    async with aiomasto.Session(url(server), app=APP) as masto, asyncio.timeout(10):
        pages = await raw_pages(masto, star, 40)
        serve_page_instead(server, star, 1, [{"x": 1}] * 40, pages[2][0])
        pager = masto.followers(star, limit=40, skip_undecodable=True)
        got = [a.id async for a in pager]
    assert got == expected[:40] + expected[80:]
    assert pager.items_skipped == 40
    assert pager.cursor is None


async def test_skipping_is_for_items_not_for_an_unreadable_body(server: FakeMastodon) -> None:
    star = server.add_account("star")
    server.inject(followers_path(star), Fault.truncated_json())
    async with aiomasto.Session(url(server), app=APP) as masto, asyncio.timeout(10):
        with pytest.raises(aiomasto.DecodeError, match="truncated"):
            await masto.followers_page(star, skip_undecodable=True)


# -- 14. validation details ------------------------------------------------------------------

VALIDATION = {
    "error": "Validation failed: Email can't be blank, Password is too short",
    "details": {
        "email": [{"error": "ERR_BLANK", "description": "can't be blank"}],
        "password": [
            {"error": "ERR_TOO_SHORT", "description": "is too short (minimum is 8 characters)"}
        ],
    },
}


async def test_422_validation_details_are_kept(server: FakeMastodon) -> None:
    server.inject("/api/v1/accounts", Fault.json(422, VALIDATION), method="POST")
    async with aiomasto.Session(url(server), app=APP) as masto, asyncio.timeout(10):
        with pytest.raises(aiomasto.Unprocessable) as info:
            await masto.request("POST", "/api/v1/accounts", form={"username": "x"})
    exc = info.value
    assert exc.error == VALIDATION["error"]
    assert exc.details["email"] == (
        aiomasto.ErrorDetail(error="ERR_BLANK", description="can't be blank"),
    )
    assert exc.details["password"][0].error == "ERR_TOO_SHORT"


async def test_odd_details_never_cost_the_error_message(server: FakeMastodon) -> None:
    body = {"error": "Validation failed", "details": {"email": "blank", "name": [5, {"x": 1}]}}
    server.inject("/api/v1/accounts", Fault.json(422, body), method="POST")
    async with aiomasto.Session(url(server), app=APP) as masto, asyncio.timeout(10):
        with pytest.raises(aiomasto.Unprocessable) as info:
            await masto.request("POST", "/api/v1/accounts", form={"username": "x"})
    assert info.value.error == "Validation failed"
    assert info.value.details == {}


# -- 15. a Link without rel ------------------------------------------------------------------


async def test_a_link_without_rel_is_no_link_and_the_walk_finishes(server: FakeMastodon) -> None:
    star = server.add_account("star")
    expected = server.add_followers(star, 100)[::-1]
    # Mastodon's docs show a Link like this one; a prev link that lost its rel leads nowhere.
    server.rewrite_links(lambda link: link.replace('; rel="prev"', ";"))
    async with aiomasto.Session(url(server), app=APP) as masto, asyncio.timeout(10):
        pages = [page async for page in masto.followers(star, limit=40).pages()]
        assert [a.id for p in pages for a in p.items] == expected
        assert all(p.prev_cursor is None for p in pages)
        server.rewrite_links(lambda link: f"<{url(server)}{followers_path(star)}?since_id=9>;")
        only = await masto.followers_page(star, limit=40)
    assert only.next_cursor is None
    assert only.prev_cursor is None
    assert [a.id for a in only.items] == expected[:40]
