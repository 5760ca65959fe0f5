"""Every server behaviour of federation.md crawled end to end on the fake fediverse.

Each test builds a small fediverse, crawls it over loopback by host name and compares what
each list committed with the fake's ground truth for that list, exactly.
"""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.typedefs import Handler
from crawlfedi import ListSink, crawl, crawl_running, fans, truth

from aiomasto.crawl import UnitKey
from aiomasto.entities import Application, Token
from aiomasto.stores import Credentials, MemoryTokenStore, StoreKey
from aiomasto.testing import FakeFediverse, FakeMastodon, Fault


def fediverse(*instances: tuple[str, str]) -> FakeFediverse:
    fedi = FakeFediverse()
    for domain, flavor in instances:
        fedi.add_instance(domain, flavor=flavor)  # type: ignore[arg-type]
    return fedi


# Pixelfed (federation.md §4.3): opaque cursor, max_id ignored, older items under rel="prev"


@pytest.mark.parametrize("with_token", [True, False])
async def test_pixelfed_is_walked_exactly_with_a_user_token(with_token: bool) -> None:
    fedi = fediverse(("pix.example", "pixelfed"), ("alpha.example", "mastodon"))
    fedi.add_account("pat@pix.example")
    fedi.add_account("reader@pix.example")
    fans(fedi, "pat@pix.example", 150)
    fans(fedi, "pat@pix.example", 25, on="alpha.example")
    for n in range(3):
        fedi.follow("pat@pix.example", fedi.add_account(f"idol{n}@alpha.example"))
    pat = fedi.account_id("pat@pix.example")
    tokens = {"pix.example": fedi.user_token("reader@pix.example")} if with_token else {}
    seed = f"http://pix.example#{pat}"

    sink = await crawl(fedi, [seed], user_tokens=tokens)

    if not with_token:
        assert sink.result(seed).outcome == "auth_required"
        assert "pix.example" in sink.result(seed).detail
        assert not sink.edges
        return
    followers = sink.result("pat@pix.example")
    assert (followers.outcome, followers.found, followers.claimed) == ("complete", 175, 175)
    assert sink.listed("pat@pix.example") == truth(fedi, "pat@pix.example")
    assert sink.listed("pat@pix.example", "following") == truth(
        fedi, "pat@pix.example", "following"
    )
    assert len(sink.listed("pat@pix.example", "following")) == 3
    # Pixelfed's first page has only rel="prev" (older): a walk reading rel="next" would
    # stop after 80.
    assert sink.units[UnitKey(account="pat@pix.example", relation="followers")].pages == 3


# Sharkey (federation.md §4.3): no Link, cursors ignored: one page, then stop


async def test_sharkey_reads_one_page_and_never_loops() -> None:
    fedi = fediverse(("shark.example", "sharkey"))
    fedi.add_account("kit@shark.example")
    fedi.add_account("small@shark.example")
    fans(fedi, "kit@shark.example", 130)
    fans(fedi, "small@shark.example", 30)
    server = fedi.instance("shark.example")

    sink = await crawl(fedi, ["@kit@shark.example", "@small@shark.example"])

    kit = sink.result("kit@shark.example")
    assert (kit.outcome, kit.found, kit.claimed) == ("unpageable", 100, 130)
    assert "100 of 130" in kit.detail
    assert sink.listed("kit@shark.example") < truth(fedi, "kit@shark.example")
    small = sink.result("small@shark.example")
    assert (small.outcome, small.found) == ("complete", 30)
    assert sink.listed("small@shark.example") == truth(fedi, "small@shark.example")
    assert sink.result("kit@shark.example", "following").outcome == "empty"
    for account in ("kit", "small"):
        account_id = fedi.account_id(f"{account}@shark.example")
        path = f"/api/v1/accounts/{account_id}/followers"
        assert server.count("GET", path) == 1  # one page, never a second request


# Moved, deleted, suspended, blocked (federation.md §2, §3.1)


async def test_a_moved_account_is_walked_recorded_and_its_new_account_queued() -> None:
    fedi = fediverse(("alpha.example", "mastodon"), ("beta.example", "mastodon"))
    fedi.add_account("old@alpha.example")
    fedi.add_account("new@beta.example")
    fans(fedi, "old@alpha.example", 5)
    fans(fedi, "new@beta.example", 3)
    fedi.move("old@alpha.example", "new@beta.example")

    sink = await crawl(fedi, ["@old@alpha.example"], depth=0)

    old = sink.result("old@alpha.example")
    assert (old.outcome, old.moved_to, old.found) == ("moved", "new@beta.example", 5)
    assert sink.listed("old@alpha.example") == truth(fedi, "old@alpha.example")
    new = sink.result("new@beta.example")
    assert new.outcome == "complete"
    assert sink.listed("new@beta.example") == truth(fedi, "new@beta.example")
    assert sink.units[UnitKey(account="new@beta.example", relation="followers")].depth == 0


async def test_deleted_accounts_are_gone() -> None:
    fedi = fediverse(("alpha.example", "mastodon"))
    fedi.add_account("gone@alpha.example")
    fedi.add_account("later@alpha.example")
    later = fedi.account_id("later@alpha.example")
    fedi.delete("gone@alpha.example")
    fedi.delete("later@alpha.example")

    sink = await crawl(fedi, ["@gone@alpha.example", f"http://alpha.example#{later}"])

    gone = sink.result("gone@alpha.example")
    assert gone.outcome == "gone"
    assert "410" in gone.detail  # Mastodon's WebFinger for a deleted account
    assert sink.result(f"http://alpha.example#{later}").outcome == "gone"  # 404 by id


async def test_an_account_deleted_after_webfinger_is_gone_by_its_lookup() -> None:
    fedi = fediverse(("alpha.example", "mastodon"))
    fedi.add_account("brief@alpha.example")
    server = fedi.instance("alpha.example")
    # Deleted between WebFinger and lookup: lookup answers 404, WebFinger now 410.
    server.inject("/api/v1/accounts/lookup", Fault.json(404, {"error": "Record not found"}))
    server.inject("/.well-known/webfinger", Fault.json(410, {}), after=1)

    sink = await crawl(fedi, ["@brief@alpha.example"])

    result = sink.result("brief@alpha.example")
    assert result.outcome == "gone"
    assert "410" in result.detail


@pytest.mark.parametrize("flavor", ["mastodon", "gotosocial"])
async def test_a_suspended_account_is_suspended(flavor: str) -> None:
    fedi = fediverse(("home.example", flavor))
    fedi.add_account("sus@home.example")
    fedi.add_account("reader@home.example")
    fans(fedi, "sus@home.example", 4)
    fedi.suspend("sus@home.example")
    tokens = {"home.example": fedi.user_token("reader@home.example")}

    sink = await crawl(fedi, ["@sus@home.example"], user_tokens=tokens)

    for relation in ("followers", "following"):
        result = sink.result("sus@home.example", relation)
        assert result.outcome == "suspended", result
    assert not sink.edges


class SuspendingSink(ListSink):
    """Suspends (or deletes) an account on the fake after the first page of its list."""

    def __init__(self, fedi: FakeFediverse, handle: str, action: str) -> None:
        super().__init__()
        self.fedi, self.handle, self.action = fedi, handle, action

    async def commit_page(self, commit: Any) -> Any:
        added = await super().commit_page(commit)
        if commit.unit.account == self.handle and commit.result is None:
            getattr(self.fedi, self.action)(self.handle)
        return added


@pytest.mark.parametrize(
    ("flavor", "action", "outcome"),
    [
        ("gotosocial", "suspend", "suspended"),
        ("gotosocial", "delete", "gone"),
        ("mastodon", "suspend", "suspended"),
        ("mastodon", "delete", "gone"),
    ],
)
async def test_an_account_suspended_or_deleted_mid_walk(
    flavor: str, action: str, outcome: str
) -> None:
    # GoToSocial answers 404 for a suspended target (and for a block): the profile, read
    # again, says which. Mastodon answers a suspended target's list with 200 [].
    fedi = fediverse(("home.example", flavor))
    fedi.add_account("sus@home.example")
    fedi.add_account("reader@home.example")
    fans(fedi, "sus@home.example", 100)
    tokens = {"home.example": fedi.user_token("reader@home.example")}
    sink = SuspendingSink(fedi, "sus@home.example", action)

    await crawl(fedi, ["@sus@home.example"], sink, relations=("followers",), user_tokens=tokens)

    result = sink.result("sus@home.example")
    assert (result.outcome, result.found) == (outcome, 80), result


async def test_a_gotosocial_account_that_blocks_the_crawl_user_is_blocked() -> None:
    fedi = fediverse(("gts.example", "gotosocial"))
    fedi.add_account("grump@gts.example")
    fedi.add_account("reader@gts.example")
    fans(fedi, "grump@gts.example", 6)
    server = fedi.instance("gts.example")
    server.block(fedi.account_id("grump@gts.example"), fedi.account_id("reader@gts.example"))
    tokens = {"gts.example": fedi.user_token("reader@gts.example")}

    sink = await crawl(fedi, ["@grump@gts.example"], user_tokens=tokens)

    for relation in ("followers", "following"):
        assert sink.result("grump@gts.example", relation).outcome == "blocked"
    assert not sink.edges


# Akkoma's separate hide flags (federation.md §3.1)


async def test_akkoma_hides_followers_and_shows_following() -> None:
    fedi = fediverse(("akkoma.example", "akkoma"), ("alpha.example", "mastodon"))
    fedi.add_account("shy@akkoma.example", hide_followers=True)
    fans(fedi, "shy@akkoma.example", 7)
    for n in range(45):
        fedi.follow("shy@akkoma.example", fedi.add_account(f"idol{n}@alpha.example"))

    sink = await crawl(fedi, ["@shy@akkoma.example"])

    assert sink.result("shy@akkoma.example").outcome == "hidden"
    assert not sink.listed("shy@akkoma.example")
    following = sink.result("shy@akkoma.example", "following")
    assert (following.outcome, following.found) == ("complete", 45)
    assert sink.listed("shy@akkoma.example", "following") == truth(
        fedi, "shy@akkoma.example", "following"
    )


# Limited federation: a user token, given or signed in (federation.md §3.1)


def closed_fediverse() -> FakeFediverse:
    fedi = FakeFediverse()
    fedi.add_instance("closed.example", limited_federation=True)
    fedi.add_instance("alpha.example")
    fedi.add_account("dora@closed.example")
    fedi.add_account("reader@closed.example")
    fans(fedi, "dora@closed.example", 85)
    fans(fedi, "dora@closed.example", 4, on="alpha.example")
    return fedi


async def test_limited_federation_with_a_user_token_given() -> None:
    fedi = closed_fediverse()
    tokens = {"closed.example": fedi.user_token("reader@closed.example")}

    sink = await crawl(fedi, ["@dora@closed.example"], user_tokens=tokens)

    result = sink.result("dora@closed.example")
    assert (result.outcome, result.found) == ("complete", 89)
    assert sink.listed("dora@closed.example") == truth(fedi, "dora@closed.example")
    assert sink.instances["http://closed.example"].auth == "user"


async def test_limited_federation_with_a_login_saved_in_the_token_store() -> None:
    fedi = closed_fediverse()
    server = fedi.instance("closed.example")
    app_name = "my crawler"
    registered = server.register_app(app_name, scopes="read")
    reader = fedi.account_id("reader@closed.example")
    user_token = server.issue_user_token(reader, "read", client_id=str(registered["client_id"]))
    store = MemoryTokenStore()
    # What `aiomasto login` saves: the app's registration and the user's token.
    await store.save(
        StoreKey(instance="http://closed.example", app=app_name, account=reader),
        Credentials(
            app=Application(
                name=app_name,
                client_id=str(registered["client_id"]),
                client_secret=str(registered["client_secret"]),
            ),
            token=Token(access_token=user_token, scope="read"),
        ),
    )

    sink = await crawl(fedi, ["@dora@closed.example"], store=store, app_name=app_name)

    result = sink.result("dora@closed.example")
    assert (result.outcome, result.found) == ("complete", 89)
    assert sink.listed("dora@closed.example") == truth(fedi, "dora@closed.example")


async def test_limited_federation_without_a_user_is_auth_required() -> None:
    fedi = closed_fediverse()

    sink = await crawl(fedi, ["@dora@closed.example"])

    assert sink.result("dora@closed.example").outcome == "auth_required"


# Split domains, down instances, unknown software


async def test_split_domain_is_walked_on_its_web_host() -> None:
    fedi = FakeFediverse()
    fedi.add_instance("split.example", web_domain="social.split.example")
    fedi.add_instance("alpha.example")
    fedi.add_account("sam@split.example")
    fans(fedi, "sam@split.example", 90)
    fans(fedi, "sam@split.example", 3, on="alpha.example")
    server = fedi.instance("split.example")

    sink = await crawl(fedi, ["@sam@split.example"])

    result = sink.result("sam@split.example")
    assert (result.outcome, result.found) == ("complete", 93)
    assert sink.listed("sam@split.example") == truth(fedi, "sam@split.example")
    assert set(sink.instances) == {"http://social.split.example"}
    assert sink.instances["http://social.split.example"].domain == "split.example"
    api_on_handle_domain = [
        r for r in server.requests if r.path.startswith("/api/") and "//split.example" in r.url
    ]
    assert not api_on_handle_domain


async def test_a_down_instance_is_unreachable_and_says_why() -> None:
    fedi = FakeFediverse()
    fedi.add_down_instance("down.example")
    fedi.add_account("dan@down.example")

    sink = await crawl(fedi, ["@dan@down.example"])

    for relation in ("followers", "following"):
        result = sink.result("dan@down.example", relation)
        assert result.outcome == "unreachable"
        assert "down.example" in result.detail
        assert "connect" in result.detail.lower(), result.detail


def newfangled(server: FakeMastodon) -> None:
    """Make a fake instance announce a software no table knows (NodeInfo and instance)."""

    @web.middleware
    async def announce(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path == "/nodeinfo/2.0":
            return web.json_response(
                {"version": "2.0", "software": {"name": "Newfangled", "version": "0.1"}}
            )
        if request.path in ("/api/v1/instance", "/api/v2/instance"):
            return web.json_response({"domain": "new.example", "version": "0.1"})
        return await handler(request)

    server.app.middlewares.append(announce)


async def test_unknown_software_is_paged_like_mastodon_with_every_guard() -> None:
    fedi = FakeFediverse()
    newfangled(fedi.add_instance("new.example"))
    fedi.add_instance("alpha.example")
    fedi.add_account("nico@new.example")
    fans(fedi, "nico@new.example", 170)
    fans(fedi, "nico@new.example", 2, on="alpha.example")

    sink = await crawl(fedi, ["@nico@new.example"])

    result = sink.result("nico@new.example")
    assert (result.outcome, result.found) == ("complete", 172)
    assert sink.listed("nico@new.example") == truth(fedi, "nico@new.example")
    record = sink.instances["http://new.example"]
    assert (record.software, record.domain) == ("newfangled", "new.example")
    assert record.quirks["known"] is False
    assert record.quirks["short_page_is_end"] is False
    assert record.quirks["page_limit"] == 80


# Items that cannot be decoded: skipped, counted, the walk goes on


async def test_an_undecodable_account_is_skipped_and_counted() -> None:
    fedi = fediverse(("alpha.example", "mastodon"))
    fedi.add_account("alice@alpha.example")
    fans(fedi, "alice@alpha.example", 130)
    server = fedi.instance("alpha.example")
    alice = fedi.account_id("alice@alpha.example")
    path = f"/api/v1/accounts/{alice}/followers"
    sink = ListSink()
    async with fedi.run():
        connector = aiohttp.TCPConnector(resolver=fedi.resolver())
        async with (
            aiohttp.ClientSession(connector=connector) as http,
            http.get(f"http://alpha.example{path}", params={"limit": "80"}) as response,
        ):
            page = await response.json()
            link = response.headers["Link"]
        broken = page[3]
        broken["followers_count"] = {"not": "a number"}
        server.inject(path, Fault.json(200, page, headers={"Link": link}))
        await crawl_running(fedi, ["@alice@alpha.example"], sink, relations=("followers",))

    result = sink.result("alice@alpha.example")
    assert (result.outcome, result.found, result.skipped) == ("complete", 129, 1)
    assert "1 listed accounts could not be decoded" in result.detail
    lost = (f"{broken['acct']}@alpha.example".lower(), "alice@alpha.example")
    assert sink.listed("alice@alpha.example") == truth(fedi, "alice@alpha.example") - {lost}
