"""Walking followers/following by Link header, over loopback against aiomasto.testing."""

from __future__ import annotations

import asyncio

import pytest

import aiomasto
from aiomasto import App, MemoryTokenStore, Session
from aiomasto.testing import FakeMastodon, Fault

APP = App(name="Crawler")


def base(server: FakeMastodon) -> str:
    assert server.url is not None
    return server.url


def followers_path(account_id: str) -> str:
    return f"/api/v1/accounts/{account_id}/followers"


@pytest.mark.parametrize(("count", "pages"), [(10_000, 126), (10_001, 126), (79, 1), (80, 2)])
async def test_every_follower_exactly_once_in_order(
    server: FakeMastodon, count: int, pages: int
) -> None:
    star = server.add_account("star")
    followed_in_order = server.add_followers(star, count)
    async with Session(base(server), app=APP) as masto:
        pager = masto.followers(star, limit=80)
        ids = [account.id async for account in pager]
    assert ids == followed_in_order[::-1]  # newest follow first
    requests = server.count("GET", followers_path(star))
    # A full last page gets a next link, so an exact multiple costs one extra, empty page.
    assert requests == pages
    assert pager.pages_fetched == pages
    assert pager.items_yielded == count
    assert pager.cursor is None


async def test_following_walks_too(server: FakeMastodon) -> None:
    fan = server.add_account("fan")
    followed = server.add_following(fan, 130)
    async with Session(base(server), app=APP) as masto:
        ids = [account.id async for account in masto.following(fan, limit=50)]
    assert ids == followed[::-1]


async def test_pages_carry_cursors_and_rate_limit(server: FakeMastodon) -> None:
    star = server.add_account("star")
    server.add_followers(star, 100)
    async with Session(base(server), app=APP) as masto:
        pages = [page async for page in masto.followers(star, limit=40).pages()]
    assert [len(p.items) for p in pages] == [40, 40, 20]
    assert pages[0].cursor == f"{followers_path(star)}?limit=40"
    assert pages[1].cursor == pages[0].next_cursor
    assert pages[2].next_cursor is None
    assert all(p.prev_cursor and "since_id=" in p.prev_cursor for p in pages)
    assert all(p.ratelimit is not None and p.ratelimit.limit == 300 for p in pages)
    assert "Link" in pages[0].headers


async def test_cursor_moves_only_after_a_page_is_handed_out(server: FakeMastodon) -> None:
    star = server.add_account("star")
    server.add_followers(star, 30)
    async with Session(base(server), app=APP) as masto:
        pager = masto.followers(star, limit=10)
        first = pager.cursor
        seen: list[str | None] = []
        async for _ in pager:
            seen.append(pager.cursor)
    assert first == f"{followers_path(star)}?limit=10"
    # ten items of each page are handed out while the cursor still names that page
    assert len(set(seen[0:10])) == 1
    assert seen[0] == first
    assert seen[10] != seen[9]
    assert seen[20] != seen[19]
    assert pager.cursor is None


async def test_resume_after_a_failure_in_a_fresh_session(server: FakeMastodon) -> None:
    star = server.add_account("star")
    everyone = server.add_followers(star, 1_000)[::-1]
    got: list[str] = []
    server.inject(followers_path(star), Fault.json(500, {"error": "boom"}), after=5)  # page 6
    async with Session(base(server), app=APP, store=MemoryTokenStore()) as masto:
        pager = masto.followers(star, limit=80)
        with pytest.raises(aiomasto.ServerError) as info:
            async for account in pager:
                got.append(account.id)
    assert len(got) == 5 * 80
    saved = info.value.cursor
    assert saved is not None
    assert saved == pager.cursor
    assert "max_id=" in saved

    async with Session(base(server), app=APP) as fresh:
        rest = [a.id async for a in fresh.followers(star, limit=80).resume(saved)]
    assert got + rest == everyone


async def test_resume_mid_page_repeats_at_most_that_page(server: FakeMastodon) -> None:
    star = server.add_account("star")
    everyone = server.add_followers(star, 200)[::-1]
    async with Session(base(server), app=APP) as masto:
        pager = masto.followers(star, limit=80)
        done: list[str] = []
        async for account in pager:
            done.append(account.id)
            if len(done) == 100:
                break
        saved = pager.cursor
        assert saved is not None
        rest = [a.id async for a in masto.followers(star, limit=80).resume(saved)]
    assert rest == everyone[80:]  # page 2 again from its start, nothing lost


async def test_resume_refuses_a_cursor_of_another_endpoint(server: FakeMastodon) -> None:
    star = server.add_account("star")
    async with Session(base(server), app=APP) as masto:
        with pytest.raises(ValueError, match="not a page of this endpoint"):
            masto.followers(star).resume(f"/api/v1/accounts/{star}/following?max_id=5")


async def test_max_items_and_max_pages(server: FakeMastodon) -> None:
    star = server.add_account("star")
    everyone = server.add_followers(star, 300)[::-1]
    async with Session(base(server), app=APP) as masto:
        first = [a.id async for a in masto.followers(star, limit=40, max_items=50)]
        pages = [p async for p in masto.followers(star, limit=40, max_pages=3).pages()]
    assert first == everyone[:50]
    assert len(pages) == 3
    assert server.count("GET", followers_path(star)) == 2 + 3


async def test_direction_prev_follows_prev_links(server: FakeMastodon) -> None:
    star = server.add_account("star")
    everyone = server.add_followers(star, 100)[::-1]
    async with Session(base(server), app=APP) as masto:
        middle = await masto.followers_page(star, limit=20)
        middle = await masto.followers_page(star, cursor=middle.next_cursor)
        assert middle.next_cursor is not None
        later = await masto.followers_page(star, cursor=middle.next_cursor)
        # Mastodon's prev link uses since_id: the newest page above the cursor.
        pager = masto.followers(star, limit=20, direction="prev").resume(later.prev_cursor or "")
        pages = [p async for p in pager.pages()]
    assert [a.id for a in pages[0].items] == everyone[:20]
    assert all(p.items for p in pages[:-1])


async def test_hidden_collection_is_an_empty_walk(server: FakeMastodon) -> None:
    shy = server.add_account("shy", hide_collections=True)
    server.add_followers(shy, 50)
    async with Session(base(server), app=APP) as masto:
        pager = masto.followers(shy)
        assert [a async for a in pager] == []
    assert server.count("GET", followers_path(shy)) == 1
    assert pager.cursor is None


async def test_an_error_mid_walk_is_raised_not_swallowed(server: FakeMastodon) -> None:
    star = server.add_account("star")
    server.add_followers(star, 100)
    server.inject(followers_path(star), Fault.truncated_json(), after=1)  # page 2
    async with Session(base(server), app=APP) as masto:
        pager = masto.followers(star, limit=40)
        got = 0
        with pytest.raises(aiomasto.DecodeError) as info:
            async for _ in pager:
                got += 1
    assert got == 40
    assert info.value.cursor == pager.cursor
    with pytest.raises(RuntimeError, match="walks once"):
        async for _ in pager:
            pass


async def test_a_paginator_walks_once(server: FakeMastodon) -> None:
    star = server.add_account("star")
    async with Session(base(server), app=APP) as masto:
        pager = masto.followers(star)
        assert [a async for a in pager] == []
        with pytest.raises(RuntimeError):
            [a async for a in pager]


@pytest.mark.parametrize(
    "kwargs", [{"limit": 0}, {"max_items": 0}, {"max_pages": 0}, {"direction": "sideways"}]
)
async def test_bad_arguments_are_refused_up_front(
    server: FakeMastodon, kwargs: dict[str, object]
) -> None:
    async with Session(base(server), app=APP) as masto:
        with pytest.raises(ValueError, match="must"):
            masto.followers("1", **kwargs)  # type: ignore[arg-type]


# -- the three server styles ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("flavor", "per_page", "requests"),
    [
        ("mastodon", 80, 126),  # next only on a full page, then an empty last page
        ("gotosocial", 80, 126),  # links on every non-empty page, then an empty one
        ("akkoma", 40, 251),  # at most 40 a page, links on every non-empty page
    ],
)
async def test_ten_thousand_followers_on_every_server_style(
    flavor: str, per_page: int, requests: int
) -> None:
    server = FakeMastodon(flavor=flavor)  # type: ignore[arg-type]
    star = server.add_account("star")
    expected = server.add_followers(star, 10_000)[::-1]
    viewer = server.add_account("viewer")
    token = server.issue_user_token(viewer)  # GoToSocial wants a user for these endpoints
    async with server.run() as url, Session(url, access_token=token) as masto:
        pager = masto.followers(star, limit=80)
        pages = [page async for page in pager.pages()]
    assert [a.id for page in pages for a in page.items] == expected
    assert {len(page.items) for page in pages[:-1]} == {per_page}
    assert server.count("GET", followers_path(star)) == requests
    assert pager.cursor is None


async def test_gotosocial_walks_backwards_with_min_id_prev_links() -> None:
    server = FakeMastodon(flavor="gotosocial")
    star = server.add_account("star")
    expected = server.add_followers(star, 100)[::-1]
    token = server.issue_user_token(server.add_account("viewer"))
    async with server.run() as url, Session(url, access_token=token) as masto:
        first = await masto.followers_page(star, limit=30)
        last = await masto.followers_page(star, cursor=first.next_cursor)
        assert last.prev_cursor is not None
        assert "min_id=" in last.prev_cursor
        back = masto.followers(star, limit=30, direction="prev").resume(last.prev_cursor)
        pages = [page async for page in back.pages()]
    assert [a.id for a in pages[0].items] == expected[:30]
    assert pages[-1].items == []


# -- broken Link headers ----------------------------------------------------------------------


async def test_a_link_loop_is_a_typed_error_not_an_endless_walk(server: FakeMastodon) -> None:
    star = server.add_account("star")
    server.add_followers(star, 200)
    first_page = f"{base(server)}{followers_path(star)}?limit=50"
    server.rewrite_links(lambda link: f'<{first_page}>; rel="next"' if "max_id=" in link else link)
    async with Session(base(server), app=APP) as masto:
        pager = masto.followers(star, limit=50)
        got = 0
        with pytest.raises(aiomasto.PaginationError) as info:
            async for _ in pager:
                got += 1
    assert got == 50
    assert info.value.cursor == f"{followers_path(star)}?limit=50"
    assert server.count("GET", followers_path(star)) == 1


@pytest.mark.parametrize(
    "rewrite",
    [
        lambda link: link.replace('rel="next", ', 'rel="next",').replace("; rel", ";rel"),
        lambda link: ", ".join(reversed(link.split(", "))),  # prev first
        lambda link: link + ";",  # a trailing semicolon
        lambda link: link.replace('"', ""),  # unquoted rel
        lambda link: link + ', <https://help.example/api>; rel="help"',  # an unknown rel
    ],
)
async def test_odd_but_readable_link_headers_walk_to_the_end(
    server: FakeMastodon, rewrite: object
) -> None:
    star = server.add_account("star")
    expected = server.add_followers(star, 170)[::-1]
    server.rewrite_links(rewrite)  # type: ignore[arg-type]
    async with Session(base(server), app=APP) as masto:
        got = [a.id async for a in masto.followers(star, limit=40)]
    assert got == expected


async def test_relative_link_urls_are_resolved_against_the_instance(server: FakeMastodon) -> None:
    star = server.add_account("star")
    expected = server.add_followers(star, 90)[::-1]
    server.rewrite_links(lambda link: link.replace(base(server), ""))
    async with Session(base(server), app=APP) as masto:
        got = [a.id async for a in masto.followers(star, limit=40)]
    assert got == expected


@pytest.mark.parametrize("garbage", ["garbage", "<", "rel=next", '; rel="next"'])
async def test_an_unreadable_link_header_is_an_error_not_the_end(
    server: FakeMastodon, garbage: str
) -> None:
    star = server.add_account("star")
    server.add_followers(star, 100)
    server.rewrite_links(lambda _: garbage)
    async with Session(base(server), app=APP) as masto:
        pager = masto.followers(star, limit=40)
        with pytest.raises(aiomasto.PaginationError, match="could not be read") as info:
            async for _ in pager:
                pass
    assert info.value.cursor == f"{followers_path(star)}?limit=40"


async def test_a_link_to_another_origin_is_refused_and_gets_no_token(
    server: FakeMastodon,
) -> None:
    star = server.add_account("star")
    server.add_followers(star, 100)
    elsewhere = FakeMastodon()
    async with elsewhere.run() as other:
        server.rewrite_links(lambda link: link.replace(base(server), other))
        async with Session(base(server), app=APP) as masto:
            got = 0
            with pytest.raises(aiomasto.OriginError) as info:
                async for _ in masto.followers(star, limit=40):
                    got += 1
    assert got == 0  # the page whose link is foreign is not handed out
    assert info.value.cursor == f"{followers_path(star)}?limit=40"
    assert elsewhere.requests == []


async def test_a_redirect_to_another_origin_mid_walk_gets_no_token(server: FakeMastodon) -> None:
    star = server.add_account("star")
    server.add_followers(star, 100)
    elsewhere = FakeMastodon()
    async with elsewhere.run() as other, Session(base(server), app=APP) as masto:
        location = f"{other}{followers_path(star)}?limit=40"
        redirect = Fault.raw(302, b"", "text/html", headers={"Location": location})
        server.inject(followers_path(star), redirect, after=1)  # page 2
        pager = masto.followers(star, limit=40)
        got = 0
        with pytest.raises(aiomasto.OriginError):
            async for _ in pager:
                got += 1
    assert got == 40
    assert not any(r.authorization for r in elsewhere.requests)
    assert elsewhere.requests == []


async def test_the_next_page_is_fetched_while_the_current_one_is_worked_on(
    server: FakeMastodon,
) -> None:
    star = server.add_account("star")
    expected = server.add_followers(star, 30)[::-1]
    async with Session(base(server), app=APP) as masto:
        got: list[str] = []
        async for account in masto.followers(star, limit=10):
            got.append(account.id)
            if len(got) == 1:
                # Slow work on the first item: meanwhile the second page arrives.
                for _ in range(500):
                    if server.count("GET", followers_path(star)) == 2:
                        break
                    await asyncio.sleep(0.01)
                assert server.count("GET", followers_path(star)) == 2
    assert got == expected
    assert server.count("GET", followers_path(star)) == 4  # never more than one page ahead


async def test_an_abandoned_walk_fetches_at_most_one_page_more(server: FakeMastodon) -> None:
    star = server.add_account("star")
    server.add_followers(star, 100)
    async with Session(base(server), app=APP) as masto:
        async for _ in masto.followers(star, limit=10):
            await asyncio.sleep(0)
            break
        for _ in range(20):
            await asyncio.sleep(0)
    assert server.count("GET", followers_path(star)) <= 2
