"""The Crawler end to end over loopback, against FakeMastodon instances with host names.

Seeds are ``https://host#id`` targets here (these instances serve no WebFinger); the
resolver's own tests cover handles.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from crawlfedi import SINK_KINDS, Stopping, crawl_cancelled, make_sink, stored
from crawlnet import HostResolver, client, free_port
from virtualtime import VirtualTime

from aiomasto.crawl import Crawler, CrawlSink, Edge, MemoryCrawlSink, UnitKey
from aiomasto.testing import FakeMastodon, Limits


async def nap(seconds: float) -> None:
    await asyncio.sleep(0)


@contextlib.asynccontextmanager
async def running(**servers: FakeMastodon) -> AsyncIterator[HostResolver]:
    """Every server on its own port, under the host name given as its keyword."""
    async with contextlib.AsyncExitStack() as stack:
        ports = {}
        for name, server in servers.items():
            url = await stack.enter_async_context(server.run())
            ports[name.replace("_", ".") + ".example"] = int(url.rsplit(":", 1)[1])
        ports["down.example"] = free_port()
        yield HostResolver(ports)


async def crawl(
    resolver: HostResolver,
    seeds: list[Any] | None,
    sink: MemoryCrawlSink | None = None,
    **options: Any,
) -> MemoryCrawlSink:
    sink = sink if sink is not None else MemoryCrawlSink()
    options.setdefault("sleep", nap)
    async with (
        client(resolver) as http,
        Crawler(sink, http=http, allow_insecure_http=True, **options) as crawler,
    ):
        await crawler.run(seeds)
    return sink


def outcome(sink: MemoryCrawlSink, account: str, relation: str = "followers") -> str:
    return sink.results[UnitKey(account=account, relation=relation)].outcome  # type: ignore[arg-type]


async def test_a_list_is_walked_to_the_end_with_every_edge() -> None:
    alpha = FakeMastodon()
    alice = alpha.add_account("alice")
    alpha.add_followers(alice, 205)
    alpha.add_following(alice, 3)
    async with running(alpha=alpha) as resolver:
        sink = await crawl(resolver, [f"http://alpha.example#{alice}"])
    key = "alice@alpha.example"
    assert outcome(sink, key) == "complete"
    assert outcome(sink, key, "following") == "complete"
    result = sink.results[UnitKey(account=key, relation="followers")]
    assert (result.claimed, result.found) == (205, 205)
    followers = {e.follower for e in sink.edges if e.followed == key}
    assert len(followers) == 205
    assert all(f.endswith("@alpha.example") for f in followers)
    assert len({e for e in sink.edges if e.follower == key}) == 3
    assert sink.accounts[key].followers_count == 205


async def test_depth_expands_breadth_first_within_the_caps() -> None:
    alpha = FakeMastodon()
    alice = alpha.add_account("alice")
    fans = alpha.add_followers(alice, 10)
    for fan in fans:
        alpha.add_followers(fan, 2, prefix="second")
    async with running(alpha=alpha) as resolver:
        whole = await crawl(resolver, [f"http://alpha.example#{alice}"], depth=1)
        capped = await crawl(
            resolver,
            [f"http://alpha.example#{alice}"],
            depth=1,
            max_accounts=4,
            relations=("followers",),
        )
        shallow = await crawl(resolver, [f"http://alpha.example#{alice}"], depth=0)
    walked = {key.account for key in whole.results}
    assert len(walked) == 11  # alice and her 10 followers; their followers are depth 2
    assert len(whole.edges) == 10 + 10 * 2
    assert len({key.account for key in capped.results}) == 4
    assert {key.account for key in shallow.results} == {"alice@alpha.example"}


async def test_a_resumed_crawl_keeps_the_caps_it_was_started_with() -> None:
    alpha = FakeMastodon()
    alice = alpha.add_account("alice")
    alpha.add_followers(alice, 100)  # three pages: the cap is reached after the resume
    sink = Stopping(MemoryCrawlSink())
    seeds = [f"http://alpha.example#{alice}"]
    async with running(alpha=alpha) as resolver:

        async def run(sink: CrawlSink, fresh: bool) -> object:
            # Resumed by a Crawler given no caps at all: the stored plan's hold.
            given: Any = sink
            caps: dict[str, Any] = {"max_accounts": 60} if fresh else {}
            return await crawl(
                resolver,
                seeds if fresh else None,
                given,
                depth=1,
                concurrency=1,
                relations=("followers",),
                **caps,
            )

        await crawl_cancelled(run, sink, (1,))
    got = await stored(sink.inner)
    assert len({key.account for key in got.results}) == 60


async def test_max_per_list_cuts_a_list_and_says_so() -> None:
    alpha = FakeMastodon()
    alice = alpha.add_account("alice")
    alpha.add_followers(alice, 100)
    async with running(alpha=alpha) as resolver:
        sink = await crawl(
            resolver, [f"http://alpha.example#{alice}"], max_per_list=90, relations=("followers",)
        )
    result = sink.results[UnitKey(account="alice@alpha.example", relation="followers")]
    assert (result.outcome, result.found, result.claimed) == ("capped", 90, 100)
    assert len(sink.edges) == 90


async def test_hidden_suspended_and_empty_lists() -> None:
    alpha = FakeMastodon()
    shy = alpha.add_account("shy", hide_collections=True)
    alpha.add_followers(shy, 5)
    banned = alpha.add_account("banned", suspended=True)
    lonely = alpha.add_account("lonely")
    async with running(alpha=alpha) as resolver:
        sink = await crawl(
            resolver,
            [f"http://alpha.example#{i}" for i in (shy, banned, lonely)],
            relations=("followers",),
        )
    assert outcome(sink, "shy@alpha.example") == "hidden"
    assert outcome(sink, "banned@alpha.example") == "suspended"
    assert outcome(sink, "lonely@alpha.example") == "empty"
    assert not sink.edges


async def test_unknown_id_is_gone_and_a_dead_instance_unreachable() -> None:
    alpha = FakeMastodon()
    async with running(alpha=alpha) as resolver:
        sink = await crawl(
            resolver,
            ["http://alpha.example#999999", "http://down.example#1"],
            relations=("followers",),
        )
    assert outcome(sink, "http://alpha.example#999999") == "gone"
    assert outcome(sink, "http://down.example#1") == "unreachable"
    assert sink.results[UnitKey(account="http://down.example#1", relation="followers")].detail


async def test_gotosocial_climbs_to_a_user_token_or_says_auth_required() -> None:
    gts = FakeMastodon(flavor="gotosocial")
    bob = gts.add_account("bob")
    gts.add_followers(bob, 50)
    reader = gts.add_account("reader")
    token = gts.issue_user_token(reader, scopes="read")
    async with running(gts=gts) as resolver:
        without = await crawl(resolver, [f"http://gts.example#{bob}"], relations=("followers",))
        with_user = await crawl(
            resolver,
            [f"http://gts.example#{bob}"],
            relations=("followers",),
            user_tokens={"gts.example": token},
        )
    assert outcome(without, "http://gts.example#" + bob) == "auth_required"
    assert outcome(with_user, "bob@gts.example") == "complete"
    assert len(with_user.edges) == 50


async def test_akkoma_pages_by_account_id_to_the_end() -> None:
    akkoma = FakeMastodon(flavor="akkoma")
    carol = akkoma.add_account("carol")
    akkoma.add_followers(carol, 95)
    async with running(akkoma=akkoma) as resolver:
        sink = await crawl(resolver, [f"http://akkoma.example#{carol}"], relations=("followers",))
    assert outcome(sink, "carol@akkoma.example") == "complete"
    assert len(sink.edges) == 95


@pytest.mark.parametrize("kind", SINK_KINDS)
async def test_resume_after_cancellation_gives_the_same_edges(kind: str, tmp_path: Path) -> None:
    alpha = FakeMastodon()
    beta = FakeMastodon()
    seeds = []
    for server, host in ((alpha, "alpha"), (beta, "beta")):
        for n in range(3):
            account = server.add_account(f"user{n}")
            server.add_followers(account, 170, prefix=f"f{n}x")
            server.add_following(account, 90, prefix=f"g{n}x")
            seeds.append(f"http://{host}.example#{account}")
    sink = Stopping(make_sink(kind, tmp_path))
    async with running(alpha=alpha, beta=beta) as resolver:
        whole = await crawl(resolver, seeds)

        async def run(sink: CrawlSink, fresh: bool) -> object:
            # Two walks at a time: few pages land between a stop and the cancellation.
            given: Any = sink  # crawl() types its sink for the other tests
            return await crawl(resolver, seeds if fresh else None, given, concurrency=2)

        await crawl_cancelled(run, sink, (3, 7, 12))
    got = await stored(sink.inner)
    assert len(got.edges) == len(set(got.edges))  # nothing stored twice
    assert set(got.edges) == {(e.follower, e.followed) for e in whole.edges}
    assert len(got.edges) == 6 * (170 + 90)
    assert all(result.outcome == "complete" for result in got.results.values())


async def test_rate_limited_instance_leaves_the_global_slot_to_others() -> None:
    clock = VirtualTime()
    tight = Limits(per_ip=(6, 300.0), paging=None)
    servers = {
        name: FakeMastodon(
            limits=tight if name == "slow" else Limits(per_ip=(60, 300.0), paging=None),
            enforce_rate_limit=True,
            clock=clock.clock,
        )
        for name in ("slow", "a", "b", "c", "d")
    }
    seeds = []
    for name, server in servers.items():
        account = server.add_account("owner")
        server.add_followers(account, 400 if name == "slow" else 320)
        seeds.append(f"http://{name}.example#{account}")
    sink = MemoryCrawlSink()
    progressed: list[bool] = []

    async def sleep(seconds: float) -> None:
        # Stands for a long wait: returns once some other walk has committed a page (or a
        # real second has passed), then moves the clock. With one global slot, others can
        # only commit if the waiting walk gave its slot back.
        if seconds >= 1.0:
            before = sink.commits
            for _ in range(200):
                if sink.commits > before:
                    break
                await asyncio.sleep(0.005)
            progressed.append(sink.commits > before)
        else:
            await asyncio.sleep(0)
        clock.now += seconds

    async with running(**servers) as resolver:
        await crawl(
            resolver,
            seeds,
            sink,
            relations=("followers",),
            concurrency=1,
            per_instance=1,
            clock=clock.clock,
            sleep=sleep,
        )
    assert [s.throttled for s in servers.values()] == [0] * 5
    assert all(r.outcome == "complete" for r in sink.results.values()), sink.results
    assert len(sink.edges) == 400 + 4 * 320
    assert progressed
    assert progressed[0]


async def test_commits_carry_edges_in_the_right_direction() -> None:
    alpha = FakeMastodon()
    alice = alpha.add_account("alice")
    bob = alpha.add_account("bob")
    alpha.follow(bob, alice)
    async with running(alpha=alpha) as resolver:
        sink = await crawl(
            resolver, [f"http://alpha.example#{alice}", f"http://alpha.example#{bob}"]
        )
    assert sink.edges == {Edge(follower="bob@alpha.example", followed="alice@alpha.example")}


class SlowSink(MemoryCrawlSink):
    """Commits take a while (as a database in a thread does); can be told to fail."""

    def __init__(self) -> None:
        super().__init__()
        self.committing = asyncio.Event()
        self.release = asyncio.Event()
        self.fail: BaseException | None = None
        self.closed = 0

    async def commit_page(self, commit: Any) -> Any:
        self.committing.set()
        await self.release.wait()
        if self.fail is not None:
            raise self.fail
        return await super().commit_page(commit)

    async def close(self) -> None:
        self.closed += 1
        await super().close()


async def test_cancelling_mid_commit_lets_the_commit_finish() -> None:
    alpha = FakeMastodon()
    alice = alpha.add_account("alice")
    alpha.add_followers(alice, 200)
    sink = SlowSink()
    async with running(alpha=alpha) as resolver:
        task = asyncio.create_task(
            crawl(resolver, [f"http://alpha.example#{alice}"], sink, relations=("followers",))
        )
        await sink.committing.wait()
        task.cancel()
        await asyncio.sleep(0.01)
        assert not task.done()  # the commit in progress is waited for
        sink.release.set()
        with pytest.raises(asyncio.CancelledError):
            await task
    assert sink.commits == 1
    unit = sink.units[UnitKey(account="alice@alpha.example", relation="followers")]
    assert unit.found == 80
    assert unit.cursor is not None  # resumable from the next page
    assert len(sink.edges) == 80
    assert sink.closed == 1


async def test_a_sink_failure_raises_out_of_run() -> None:
    alpha = FakeMastodon()
    alice = alpha.add_account("alice")
    alpha.add_followers(alice, 3)
    sink = SlowSink()
    sink.fail = OSError(28, "No space left on device")
    sink.release.set()
    async with running(alpha=alpha) as resolver:
        with pytest.raises(OSError, match="No space"):
            await crawl(resolver, [f"http://alpha.example#{alice}"], sink)
    assert sink.closed == 1


async def test_progress_and_summary() -> None:
    alpha = FakeMastodon()
    alice = alpha.add_account("alice")
    alpha.add_followers(alice, 120)
    seen: list[Any] = []
    sink = MemoryCrawlSink()
    async with (
        running(alpha=alpha) as resolver,
        client(resolver) as http,
        Crawler(
            sink, http=http, allow_insecure_http=True, sleep=nap, on_progress=seen.append
        ) as crawler,
    ):
        summary = await crawler.run([f"http://alpha.example#{alice}", "@x@down.example"])
    assert seen
    last = seen[-1]
    assert (last.units_done, last.units_queued, last.edges) == (4, 0, 120)
    assert last.requests > 0
    assert summary.outcomes == {"complete": 1, "empty": 1, "unreachable": 2}
    assert summary.edges == 120
    text = str(summary)
    assert "complete 1" in text
    assert "http://alpha.example" in text
    assert len(text.splitlines()) < 25
