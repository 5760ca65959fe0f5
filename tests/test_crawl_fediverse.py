"""The whole fake fediverse crawled: every visible list equals the ground truth, exactly."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from crawlfedi import (
    SINK_KINDS,
    Pair,
    Stopping,
    crawl,
    crawl_cancelled,
    crawl_running,
    fans,
    make_sink,
    stored,
    truth,
)
from virtualtime import VirtualTime

from aiomasto.crawl import RELATIONS, CrawlSink
from aiomasto.testing import FakeFediverse

# The lists the crawl cannot show, and how each must end.
HIDDEN: dict[tuple[str, str], str] = {
    ("shy@alpha.example", "followers"): "hidden",
    ("shy@alpha.example", "following"): "hidden",
    ("quiet@akkoma.example", "followers"): "hidden",  # Akkoma hides each list on its own
    ("sus@alpha.example", "followers"): "suspended",
    ("sus@alpha.example", "following"): "suspended",
    ("grump@gts.example", "followers"): "blocked",
    ("grump@gts.example", "following"): "blocked",
    ("gone@alpha.example", "followers"): "gone",
    ("gone@alpha.example", "following"): "gone",
    ("dan@down.example", "followers"): "unreachable",
    ("dan@down.example", "following"): "unreachable",
    ("vera@locked.example", "followers"): "auth_required",
    ("vera@locked.example", "following"): "auth_required",
}


def build() -> FakeFediverse:
    fedi = FakeFediverse()
    fedi.add_instance("alpha.example")
    fedi.add_instance("beta.example")
    fedi.add_instance("gts.example", flavor="gotosocial")
    fedi.add_instance("akkoma.example", flavor="akkoma")
    fedi.add_instance("pix.example", flavor="pixelfed")
    fedi.add_instance("shark.example", flavor="sharkey")
    fedi.add_instance("split.example", web_domain="social.split.example")
    fedi.add_instance("closed.example", limited_federation=True)
    fedi.add_instance("locked.example", limited_federation=True)
    fedi.add_down_instance("down.example")
    people = [
        "alice@alpha.example",
        "bob@beta.example",
        "gina@gts.example",
        "ake@akkoma.example",
        "pat@pix.example",
        "kit@shark.example",
        "sam@split.example",
        "cleo@closed.example",
        "vera@locked.example",
        "dan@down.example",
    ]
    for handle in people:
        fedi.add_account(handle)
    for handle in ("reader@gts.example", "reader@pix.example", "reader@closed.example"):
        fedi.add_account(handle)
    fedi.add_account("shy@alpha.example", hide_collections=True)
    fedi.add_account("quiet@akkoma.example", hide_followers=True)
    fedi.add_account("sus@alpha.example")
    fedi.add_account("grump@gts.example")
    fedi.add_account("gone@alpha.example")
    fedi.add_account("old@beta.example")
    fedi.add_account("new@alpha.example")
    for index, follower in enumerate(people):
        for followed in [*people[index + 1 :], "shy@alpha.example", "quiet@akkoma.example"]:
            fedi.follow(follower, followed)
        fedi.follow("quiet@akkoma.example", follower)
        fedi.follow("shy@alpha.example", follower)
    for handle in ("sus@alpha.example", "gone@alpha.example", "old@beta.example"):
        fedi.follow("alice@alpha.example", handle)
        fedi.follow(handle, "bob@beta.example")
    fedi.follow("new@alpha.example", "old@beta.example")
    fans(fedi, "alice@alpha.example", 90, on="beta.example")
    fans(fedi, "pat@pix.example", 85)
    fans(fedi, "grump@gts.example", 3, on="alpha.example")
    gts = fedi.instance("gts.example")
    gts.block(fedi.account_id("grump@gts.example"), fedi.account_id("reader@gts.example"))
    fedi.suspend("sus@alpha.example")
    fedi.delete("gone@alpha.example")
    fedi.move("old@beta.example", "new@alpha.example")
    return fedi


async def test_the_whole_fediverse_matches_the_ground_truth_exactly() -> None:
    fedi = build()
    tokens = {
        domain: fedi.user_token(f"reader@{domain}")
        for domain in ("gts.example", "pix.example", "closed.example")
    }
    # Pixelfed has no lookup route: its accounts are named by id.
    seeds = [
        f"http://pix.example#{fedi.account_id(h)}" if h.endswith("@pix.example") else f"@{h}"
        for h in fedi.handles()
    ]

    sink = await crawl(fedi, seeds, user_tokens=tokens)

    visible: set[Pair] = set()
    for account in fedi.handles():
        for relation in RELATIONS:
            expected = HIDDEN.get((account, relation))
            result = sink.result(account, relation)
            listed = sink.listed(account, relation)
            want = truth(fedi, account, relation) if expected != "gone" else set()
            if expected is None:
                assert result.outcome in ("complete", "empty", "moved"), (account, result)
                assert listed == want, (account, relation, listed ^ want)
                assert result.found == len(want)
                visible |= want
            else:
                assert result.outcome == expected, (account, relation, result)
                assert not listed, (account, relation)
    assert sink.pairs() == visible
    assert visible <= fedi.edges()
    assert sink.result("old@beta.example").moved_to == "new@alpha.example"
    assert sink.result("alice@alpha.example").found == 90 + 2  # fans, shy and quiet
    assert sink.instances["http://social.split.example"].domain == "split.example"
    assert sink.instances["http://closed.example"].auth == "user"
    assert sink.instances["http://locked.example"].status == "auth_required"


@pytest.mark.parametrize("kind", SINK_KINDS)
async def test_a_crawl_cancelled_and_resumed_gives_the_ground_truth(
    kind: str, tmp_path: Path
) -> None:
    # More than 300 requests to one instance: its rate limit makes the crawl wait, in
    # virtual time shared with the servers.
    time = VirtualTime()
    fedi = FakeFediverse(clock=time.clock)
    for domain, flavor in (
        ("alpha.example", "mastodon"),
        ("gts.example", "gotosocial"),
        ("akkoma.example", "akkoma"),
    ):
        fedi.add_instance(domain, flavor=flavor)  # type: ignore[arg-type]
    fedi.populate(seed=3, accounts_per_instance=6, follows_per_account=4)
    for handle in ("user1@alpha.example", "user1@gts.example", "user1@akkoma.example"):
        fans(fedi, handle, 95)
    fedi.add_account("reader@gts.example")
    seeds = [f"@{h}" for h in fedi.handles() if h.startswith("user")]
    sink = Stopping(make_sink(kind, tmp_path))

    async def run(sink: CrawlSink, fresh: bool) -> object:
        return await crawl_running(
            fedi,
            seeds if fresh else None,
            sink,
            user_tokens={"gts.example": fedi.user_token("reader@gts.example")},
            per_instance=1,
            concurrency=2,
            clock=time.clock,
            sleep=time.sleep,
        )

    # A walk waiting on another's resolution used to keep its global slot: with two slots,
    # resuming deadlocked. A bound turns a deadlock into a failure.
    async with fedi.run(), asyncio.timeout(30):
        await crawl_cancelled(run, sink, (2, 5, 9, 14))

    got = await stored(sink.inner)
    want: set[Pair] = set()
    for handle in fedi.handles():
        if handle.startswith("user"):
            want |= truth(fedi, handle) | truth(fedi, handle, "following")
    assert len(got.edges) == len(set(got.edges))  # nothing stored twice
    assert set(got.edges) == want
    assert got.results.keys() == got.units.keys()
    assert all(r.outcome in ("complete", "empty") for r in got.results.values())
    for key, unit in got.units.items():
        # Each list's accounts were counted once: no page stored twice.
        assert unit.found == len(truth(fedi, key.account, key.relation)), key
