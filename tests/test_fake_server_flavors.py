"""FakeMastodon flavours (docs/mastodon-api.md §10.5, §14.1, §14.2) and rewrite_links."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
import attrs
import fakehttp
import pytest
from fakehttp import Clock, Reply

from aiomasto.testing import FakeMastodon, Limits

T0 = 1_786_111_500.25  # 2026-08-07T14:05:00.250Z
ULID_RE = re.compile(r"[0-9A-HJKMNP-TV-Z]{26}")
GTS_NO_TOKEN = {"error": "Unauthorized: token not supplied"}
GTS_NO_USER = {"error": "Unauthorized: user not supplied or not authorized"}
GTS_SCOPE = {"error": "Forbidden: token has insufficient scope permission"}
AKKOMA_NO_USER = {"error": "Invalid credentials."}


class Client(fakehttp.Client):
    async def app_token(self, server: FakeMastodon) -> str:
        app = server.register_app(scopes="read")
        form = {
            "grant_type": "client_credentials",
            "client_id": str(app["client_id"]),
            "client_secret": str(app["client_secret"]),
        }
        async with self.http.post(f"{self.url}/oauth/token", data=form) as response:
            token: str = (await response.json())["access_token"]
        return token

    async def walk(self, path: str, token: str | None = None) -> list[Reply]:
        """Follow rel="next" until a page has none."""
        replies = [await self.get(path, token)]
        while (next_url := replies[-1].links().get("next")) is not None:
            assert len(replies) < 50, "the Link chain does not end"
            replies.append(await self.get(next_url, token))
        return replies


@attrs.frozen(kw_only=True)
class Graph:
    star: str
    fans: list[str]  # in follow order
    cursors: list[str]  # what server.follow returned, same order


def seed(server: FakeMastodon, n: int) -> Graph:
    star = server.add_account("star")
    fans = [server.add_account(f"fan{i}") for i in range(n)]
    return Graph(star=star, fans=fans, cursors=[server.follow(fan, star) for fan in fans])


@pytest.fixture
def clock() -> Clock:
    return Clock(T0)


@pytest.fixture
async def served() -> AsyncIterator[Callable[[FakeMastodon], Any]]:
    """Start servers on demand; all of them stop at teardown."""
    async with aiohttp.ClientSession() as http:
        stack: list[Any] = []

        async def start(server: FakeMastodon) -> Client:
            context = server.run()
            stack.append(context)
            return Client(await context.__aenter__(), http)

        yield start
        for context in reversed(stack):
            await context.__aexit__(None, None, None)


def followers_url(client: Client, account_id: str) -> str:
    return f"{client.url}/api/v1/accounts/{account_id}/followers"


# Construction


def test_flavor_is_validated() -> None:
    assert FakeMastodon().flavor == "mastodon"
    assert FakeMastodon(flavor="akkoma").flavor == "akkoma"
    with pytest.raises(ValueError, match="flavor"):
        FakeMastodon(flavor="pleroma")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="gotosocial"):
        FakeMastodon(gts_epoch_reset=True)


# Walking 250 followers at limit=80 by Link next


async def test_mastodon_walk_is_unchanged(served: Any) -> None:
    server = FakeMastodon()
    graph = seed(server, 250)
    client: Client = await served(server)
    replies = await client.walk(f"/api/v1/accounts/{graph.star}/followers?limit=80")

    assert [len(r.ids()) for r in replies] == [80, 80, 80, 10]
    assert [i for r in replies for i in r.ids()] == graph.fans[::-1]  # newest follow first
    assert server.count("GET", f"/api/v1/accounts/{graph.star}/followers") == 4
    newest_first = graph.cursors[::-1]
    base = followers_url(client, graph.star)
    for page, reply in enumerate(replies):
        first, last = newest_first[80 * page], newest_first[min(80 * page + 79, 249)]
        prev = f'<{base}?limit=80&since_id={first}>; rel="prev"'
        if page < 3:  # next only from a full page
            assert reply.headers["Link"] == f'<{base}?limit=80&max_id={last}>; rel="next", {prev}'
        else:
            assert reply.headers["Link"] == prev
        assert reply.headers["X-RateLimit-Limit"] == "300"


async def test_gotosocial_walk_links_every_non_empty_page(served: Any) -> None:
    server = FakeMastodon(flavor="gotosocial")
    graph = seed(server, 250)
    token = server.issue_user_token(graph.star)
    client: Client = await served(server)
    replies = await client.walk(f"/api/v1/accounts/{graph.star}/followers?limit=80", token)

    # The short last page still links on, so the walk ends with an empty page.
    assert [len(r.ids()) for r in replies] == [80, 80, 80, 10, 0]
    assert [i for r in replies for i in r.ids()] == graph.fans[::-1]
    assert server.count("GET", f"/api/v1/accounts/{graph.star}/followers") == 5
    newest_first = graph.cursors[::-1]
    base = followers_url(client, graph.star)
    for page, reply in enumerate(replies[:4]):
        first, last = newest_first[80 * page], newest_first[min(80 * page + 79, 249)]
        assert reply.headers["Link"] == (
            f'<{base}?limit=80&max_id={last}>; rel="next", '
            f'<{base}?limit=80&min_id={first}>; rel="prev"'
        )
    assert (replies[4].body, replies[4].headers.get("Link")) == (b"[]", None)


async def test_akkoma_walk_caps_at_40_and_uses_account_ids(served: Any) -> None:
    server = FakeMastodon(flavor="akkoma")
    graph = seed(server, 250)
    client: Client = await served(server)
    replies = await client.walk(f"/api/v1/accounts/{graph.star}/followers?limit=80")

    assert [len(r.ids()) for r in replies] == [40] * 6 + [10, 0]
    assert [i for r in replies for i in r.ids()] == graph.fans[::-1]
    assert server.count("GET", f"/api/v1/accounts/{graph.star}/followers") == 8
    base = followers_url(client, graph.star)
    for reply in replies[:7]:
        ids = reply.ids()
        # Cursors are the entries' account ids; the request's limit is carried as sent.
        assert reply.headers["Link"] == (
            f'<{base}?limit=80&max_id={ids[-1]}>; rel="next", '
            f'<{base}?limit=80&min_id={ids[0]}>; rel="prev"'
        )
    assert "Link" not in replies[7].headers
    for reply in replies:
        assert not [h for h in reply.headers if h.lower().startswith("x-ratelimit")]


# GoToSocial details


async def test_gotosocial_follow_ids_are_deterministic_ulids(served: Any) -> None:
    graph = seed(FakeMastodon(flavor="gotosocial"), 60)
    again = seed(FakeMastodon(flavor="gotosocial"), 60)
    assert graph.cursors == again.cursors
    assert all(ULID_RE.fullmatch(cursor) for cursor in graph.cursors)
    assert graph.cursors == sorted(graph.cursors)  # lexicographic order is creation order
    assert len(set(graph.cursors)) == 60
    mastodon = seed(FakeMastodon(), 60)
    assert graph.fans == mastodon.fans  # same account ids, different Follow ids
    assert all(cursor.isdigit() for cursor in mastodon.cursors)


async def test_gotosocial_min_id_pages_upward_and_since_id_from_the_top(served: Any) -> None:
    server = FakeMastodon(flavor="gotosocial")
    graph = seed(server, 20)
    token = server.issue_user_token(graph.star)
    client: Client = await served(server)
    path = f"/api/v1/accounts/{graph.star}/followers"
    base = followers_url(client, graph.star)

    upward = await client.get(f"{path}?min_id={graph.cursors[9]}&limit=3", token)
    assert upward.ids() == [graph.fans[12], graph.fans[11], graph.fans[10]]
    assert upward.links() == {
        "next": f"{base}?limit=3&max_id={graph.cursors[10]}",
        "prev": f"{base}?limit=3&min_id={graph.cursors[12]}",
    }
    since = await client.get(f"{path}?since_id={graph.cursors[9]}&limit=3", token)
    assert since.ids() == graph.fans[:-4:-1]
    assert since.links()["prev"] == f"{base}?limit=3&since_id={graph.cursors[-1]}"
    between = await client.get(
        f"{path}?max_id={graph.cursors[5]}&since_id={graph.cursors[1]}", token
    )
    assert between.ids() == graph.fans[4:1:-1]


async def test_gotosocial_prev_links_walk_back_up(served: Any) -> None:
    server = FakeMastodon(flavor="gotosocial")
    graph = seed(server, 250)
    token = server.issue_user_token(graph.star)
    client: Client = await served(server)
    # Any text is a cursor: "0" sorts below every ULID, so this is the oldest page.
    pages = [await client.get(f"/api/v1/accounts/{graph.star}/followers?min_id=0&limit=80", token)]
    while pages[-1].ids():
        pages.append(await client.get(pages[-1].links()["prev"], token))
    assert [len(p.ids()) for p in pages] == [80, 80, 80, 10, 0]
    assert [i for page in pages for i in reversed(page.ids())] == graph.fans


@pytest.mark.parametrize(
    ("limit", "size"),
    [(None, 40), ("", 40), ("0", 40), ("-3", 1), ("1", 1), ("55", 55), ("500", 80)],
)
async def test_gotosocial_limit(served: Any, limit: str | None, size: int) -> None:
    server = FakeMastodon(flavor="gotosocial")
    star = server.add_account("star")
    server.add_followers(star, 100)
    client: Client = await served(server)
    params = {} if limit is None else {"limit": limit}
    reply = await client.get(
        f"/api/v1/accounts/{star}/followers", server.issue_user_token(star), params=params
    )
    assert len(reply.ids()) == size
    assert all(f"limit={size}&" in url for url in reply.links().values())


@pytest.mark.parametrize("limit", ["abc", "7.5", " 7"])
async def test_gotosocial_bad_limit_is_a_400(served: Any, limit: str) -> None:
    server = FakeMastodon(flavor="gotosocial")
    star = server.add_account("star")
    client: Client = await served(server)
    reply = await client.get(
        f"/api/v1/accounts/{star}/followers", server.issue_user_token(star), params={"limit": limit}
    )
    assert (reply.status, reply.json()) == (400, {"error": "Bad Request: bad integer limit value"})


async def test_gotosocial_auth(served: Any) -> None:
    server = FakeMastodon(flavor="gotosocial")
    star = server.add_account("star")
    server.add_followers(star, 3)
    revoked = server.issue_user_token(star, "read")
    server.revoke_token(revoked)
    client: Client = await served(server)
    app_token = await client.app_token(server)
    paths = [
        f"/api/v1/accounts/{star}",
        "/api/v1/accounts/lookup?acct=star",
        f"/api/v1/accounts/{star}/followers",
        f"/api/v1/accounts/{star}/following",
        f"/api/v1/accounts/relationships?id[]={star}",
        "/api/v1/accounts/verify_credentials",
    ]
    cases: list[tuple[str | None, int, object]] = [
        (None, 401, GTS_NO_TOKEN),
        ("garbage", 401, GTS_NO_TOKEN),  # an unknown token counts as none
        (revoked, 401, GTS_NO_TOKEN),
        (app_token, 401, GTS_NO_USER),
        (server.issue_user_token(star, "write"), 403, GTS_SCOPE),
    ]
    for path in paths:
        for token, status, body in cases:
            reply = await client.get(path, token)
            assert (reply.status, reply.json()) == (status, body), (path, token)
            assert "WWW-Authenticate" not in reply.headers
        for scope in ("read", "read:accounts"):
            ok = await client.get(path, server.issue_user_token(star, scope))
            assert ok.status == 200, (path, scope)


async def test_gotosocial_hidden_collections_are_empty(served: Any) -> None:
    server = FakeMastodon(flavor="gotosocial")
    star = server.add_account("star", hide_collections=True)
    viewer = server.add_account("viewer")
    server.add_followers(star, 3)
    client: Client = await served(server)
    hidden = await client.get(f"/api/v1/accounts/{star}/followers", server.issue_user_token(viewer))
    assert (hidden.status, hidden.body, hidden.headers.get("Link")) == (200, b"[]", None)
    own = await client.get(f"/api/v1/accounts/{star}/followers", server.issue_user_token(star))
    assert len(own.ids()) == 3


async def test_gotosocial_rate_limit_is_per_ip_with_millisecond_reset(
    served: Any, clock: Clock
) -> None:
    server = FakeMastodon(
        flavor="gotosocial", clock=clock, limits=Limits(per_ip=(3, 300.0)), enforce_rate_limit=True
    )
    star = server.add_account("star")
    client: Client = await served(server)
    tokens = [server.issue_user_token(star), server.issue_user_token(star, "read:accounts")]
    first = await client.get(f"/api/v1/accounts/{star}", tokens[0])
    assert first.headers["X-RateLimit-Limit"] == "3"
    assert first.headers["X-RateLimit-Remaining"] == "2"
    # The window starts at the first request and lasts 300 s.
    assert first.headers["X-RateLimit-Reset"] == "2026-08-07T14:10:00.250Z"
    clock.now += 10
    other_token = await client.get(f"/api/v1/accounts/{star}", tokens[1])
    assert other_token.headers["X-RateLimit-Remaining"] == "1"  # per IP, not per token
    not_api = await client.get("/nope")  # the limiter wraps every route
    assert not_api.headers["X-RateLimit-Remaining"] == "0"
    limited = await client.get(f"/api/v1/accounts/{star}", tokens[0])
    assert (limited.status, limited.json()) == (429, {"error": "rate limit reached"})
    assert limited.headers["X-RateLimit-Reset"] == "2026-08-07T14:10:00.250Z"
    assert "Retry-After" not in limited.headers
    assert server.throttled == 1
    clock.now = T0 + 300
    assert (await client.get(f"/api/v1/accounts/{star}", tokens[0])).status == 200


async def test_gotosocial_epoch_reset(served: Any, clock: Clock) -> None:
    server = FakeMastodon(flavor="gotosocial", clock=clock, gts_epoch_reset=True)
    star = server.add_account("star")
    client: Client = await served(server)
    reply = await client.get(f"/api/v1/accounts/{star}", server.issue_user_token(star))
    assert reply.headers["X-RateLimit-Reset"] == str(int(T0) + 300)


# Akkoma details


@pytest.mark.parametrize(
    ("limit", "size"), [(None, 20), ("10", 10), ("41", 40), ("abc", 20), ("0", 0), ("-2", 0)]
)
async def test_akkoma_limit(served: Any, limit: str | None, size: int) -> None:
    server = FakeMastodon(flavor="akkoma")
    star = server.add_account("star")
    server.add_followers(star, 50)
    client: Client = await served(server)
    params = {} if limit is None else {"limit": limit}
    reply = await client.get(f"/api/v1/accounts/{star}/followers", params=params)
    assert len(reply.ids()) == size
    assert ("Link" in reply.headers) is (size > 0)


async def test_akkoma_links_carry_params_and_min_id_pages_upward(served: Any) -> None:
    server = FakeMastodon(flavor="akkoma")
    graph = seed(server, 10)
    client: Client = await served(server)
    base = followers_url(client, graph.star)
    reply = await client.get(
        f"/api/v1/accounts/{graph.star}/followers?with_relationships=true&limit=3&foo=1"
        f"&since_id={graph.fans[0]}"
    )
    assert reply.ids() == graph.fans[:-4:-1]
    assert reply.headers["Link"] == (
        f"<{base}?foo=1&limit=3&max_id={graph.fans[-3]}&with_relationships=true>; "
        f'rel="next", '
        f"<{base}?foo=1&limit=3&min_id={graph.fans[-1]}&with_relationships=true>; "
        f'rel="prev"'
    )
    upward = await client.get(f"{base}?min_id={graph.fans[2]}&limit=2")
    assert upward.ids() == [graph.fans[4], graph.fans[3]]


async def test_akkoma_orders_by_account_id_so_late_follows_land_deep(served: Any) -> None:
    early = FakeMastodon(flavor="akkoma")
    mastodon = FakeMastodon()
    for server in (early, mastodon):
        old = server.add_account("old")
        star = server.add_account("star")
        fans = server.add_followers(star, 5)
        server.follow(old, star)  # an account older than the fans follows last
    akkoma_client: Client = await served(early)
    mastodon_client: Client = await served(mastodon)
    akkoma_page = await akkoma_client.get(f"/api/v1/accounts/{star}/followers")
    mastodon_page = await mastodon_client.get(f"/api/v1/accounts/{star}/followers")
    assert mastodon_page.ids() == [old, *fans[::-1]]  # newest follow first
    assert akkoma_page.ids() == [*fans[::-1], old]  # highest account id first


async def test_akkoma_auth_errors_are_403(served: Any) -> None:
    server = FakeMastodon(flavor="akkoma")
    star = server.add_account("star", hide_collections=True)
    server.add_followers(star, 2)
    client: Client = await served(server)
    app_token = await client.app_token(server)
    write_only = server.issue_user_token(star, "write")
    for path, needed in [
        ("/api/v1/accounts/verify_credentials", "read:accounts"),
        (f"/api/v1/accounts/relationships?id={star}", "read:follows"),
    ]:
        for token in (None, "garbage", app_token):
            reply = await client.get(path, token)
            assert (reply.status, reply.json()) == (403, AKKOMA_NO_USER), (path, token)
        scoped = await client.get(path, write_only)
        assert (scoped.status, scoped.json()) == (
            403,
            {"error": f"Insufficient permissions: {needed}."},
        )
    no_app = await client.get("/api/v1/apps/verify_credentials")
    assert (no_app.status, no_app.json()) == (403, AKKOMA_NO_USER)

    # Public reads: a token that does not fit falls back to anonymous, so the owner's
    # hidden collection is hidden from the owner's own write-only token.
    followers = f"/api/v1/accounts/{star}/followers"
    assert (await client.get(followers, "garbage")).body == b"[]"
    assert (await client.get(followers, write_only)).body == b"[]"
    assert len((await client.get(followers, server.issue_user_token(star))).ids()) == 2
    shown = await client.get(f"/api/v1/accounts/{star}", write_only)
    assert shown.status == 200


# Pixelfed (federation.md §3.2, §4.3): opaque cursors, swapped rels, user tokens only


async def test_pixelfed_pages_by_cursor_with_swapped_rels(served: Any) -> None:
    server = FakeMastodon(flavor="pixelfed")
    graph = seed(server, 25)
    client: Client = await served(server)
    token = server.issue_user_token(graph.star)
    path = f"/api/v1/accounts/{graph.star}/followers"

    first = await client.get(path, token)
    assert len(first.ids()) == 10  # Pixelfed's default limit
    # Page 1 carries only rel="prev", and it leads to older follows.
    assert set(first.links()) == {"prev"}
    older = first.links()["prev"]
    assert "cursor=" in older
    assert "max_id" not in older

    second = await client.get(older, token)
    assert set(second.links()) == {"next", "prev"}
    third = await client.get(second.links()["prev"], token)
    assert set(third.links()) == {"next"}  # the oldest page: only the way back up
    walked = first.ids() + second.ids() + third.ids()
    assert walked == graph.fans[::-1]

    # rel="next" goes back to the newer page.
    back = await client.get(second.links()["next"], token)
    assert back.ids() == first.ids()


async def test_pixelfed_ignores_max_id(served: Any) -> None:
    server = FakeMastodon(flavor="pixelfed")
    graph = seed(server, 25)
    client: Client = await served(server)
    token = server.issue_user_token(graph.star)
    path = f"/api/v1/accounts/{graph.star}/followers"

    first = await client.get(path, token)
    oldest = first.ids()[-1]
    again = await client.get(f"{path}?max_id={oldest}", token)
    assert again.ids() == first.ids()  # the same page, forever
    garbage = await client.get(f"{path}?cursor=not-a-cursor", token)
    assert garbage.ids() == first.ids()


async def test_pixelfed_limits_and_auth(served: Any) -> None:
    server = FakeMastodon(flavor="pixelfed")
    graph = seed(server, 100)
    client: Client = await served(server)
    path = f"/api/v1/accounts/{graph.star}/followers"
    token = server.issue_user_token(graph.star, "read")

    assert len((await client.get(f"{path}?limit=200", token)).ids()) == 80
    for anonymous in (None, await client.app_token(server)):
        refused = await client.get(path, anonymous)
        assert refused.status == 403
    assert (await client.get(path, server.issue_user_token(graph.star, "write"))).status == 403
    lookup = await client.get("/api/v1/accounts/lookup?acct=star", token)
    assert lookup.status == 404  # no lookup route


# Sharkey's Mastodon shim (federation.md §4.3): only limit is forwarded, no Link


async def test_sharkey_always_answers_the_first_page_without_link(served: Any) -> None:
    server = FakeMastodon(flavor="sharkey")
    graph = seed(server, 150)
    client: Client = await served(server)
    path = f"/api/v1/accounts/{graph.star}/followers"

    first = await client.get(path)
    assert first.ids() == graph.fans[::-1][:10]
    assert "Link" not in first.headers
    for query in (f"max_id={graph.cursors[100]}", f"since_id={graph.cursors[3]}", "cursor=x"):
        assert (await client.get(f"{path}?{query}")).ids() == first.ids()
    assert len((await client.get(f"{path}?limit=500")).ids()) == 100


async def test_sharkey_lookup_returns_the_first_search_hit(served: Any) -> None:
    server = FakeMastodon(flavor="sharkey")
    malice = server.add_account("malice")
    alice = server.add_account("alice")
    client: Client = await served(server)

    hit = await client.get("/api/v1/accounts/lookup?acct=alice")
    assert hit.json()["id"] == malice  # not the account asked for
    assert alice != malice
    missing = await client.get("/api/v1/accounts/lookup?acct=zed")
    assert missing.status == 401


# rewrite_links


def _loop_to(first: str) -> Callable[[str], str]:
    return lambda link: re.sub(r"<[^>]+>; rel=\"next\"", f'<{first}>; rel="next"', link)


@pytest.mark.parametrize(
    "make",
    [
        _loop_to,
        lambda _: lambda link: link.replace("127.0.0.1", "evil.example"),
        lambda first: lambda link: link.replace(first.split("/api/")[0], ""),
        lambda _: lambda link: ", ".join(reversed(link.split(", "))),
        lambda _: lambda link: link + ";",
        lambda _: lambda link: "<<garbage>>; rel=next,,",
    ],
    ids=["loop", "cross-origin", "relative", "reordered", "trailing-semicolon", "garbage"],
)
@pytest.mark.parametrize("flavor", ["mastodon", "gotosocial"])
async def test_rewrite_links(
    served: Any, flavor: Any, make: Callable[[str], Callable[[str], str]]
) -> None:
    server = FakeMastodon(flavor=flavor)
    star = server.add_account("star")
    server.add_followers(star, 30)
    token = server.issue_user_token(star)
    client: Client = await served(server)
    first = f"{followers_url(client, star)}?limit=10"
    original = (await client.get(first, token)).headers["Link"]
    seen: list[str] = []
    rewrite = make(first)

    def spy(link: str) -> str:
        seen.append(link)
        return rewrite(link)

    server.rewrite_links(spy)
    bent = await client.get(first, token)
    assert bent.headers["Link"] == rewrite(original)
    assert seen == [original]
    await client.get(f"/api/v1/accounts/{star}", token)  # no Link, nothing to rewrite
    assert len(seen) == 1
    server.rewrite_links(None)
    assert (await client.get(first, token)).headers["Link"] == original


async def test_a_rewritten_loop_really_loops(served: Any) -> None:
    server = FakeMastodon()
    star = server.add_account("star")
    server.add_followers(star, 30)
    client: Client = await served(server)
    first = f"{followers_url(client, star)}?limit=10"
    server.rewrite_links(_loop_to(first))
    page = await client.get(first)
    again = await client.get(page.links()["next"])
    assert again.ids() == page.ids()
