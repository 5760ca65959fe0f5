"""Exactly once under ``kill -9``: a crawl killed at random points and resumed each time
stores every edge of the fake fediverse once, and finishes every list with its outcome.

The crawler runs in a subprocess (:mod:`crawlproc`: the Crawler and the SQLite sink, as
``aiomasto crawl`` runs them) against a :class:`FakeFediverse` served by this process. Kill
points are chosen by committed pages: the test reads the crawl's database read-only and
sends SIGKILL once it holds ``k`` pages, ``k`` drawn from a seeded RNG.
"""

from __future__ import annotations

import contextlib
import random
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from aiomasto.testing import FakeFediverse, Limits

WORKER = Path(__file__).with_name("crawlproc.py")
KILLS = 20
RNG_SEED = 20_240_611
# A hang guard only (a crawler that never gets there is a failure, whatever the machine).
GIVE_UP = 45.0
VISIBLE = ("complete", "moved")


def build() -> tuple[FakeFediverse, list[str]]:
    """Five instances (two Mastodon, Akkoma, a split domain, a closed one) and the seeds.

    Two popular accounts have multi-page lists; their fans are found at depth 1. One
    account hides its lists, one is suspended, one moved, one lives where anonymous reads
    are refused. Every follow is visible from at least one side, so the edges a complete
    crawl stores are the whole ground truth.
    """
    fedi = FakeFediverse()
    # Twenty restarts ask far more than 300 requests in 5 minutes of one instance; the
    # crawler would rightly sit out the windows. Rate limits have their own tests.
    roomy = Limits(per_ip=(100_000, 300.0), per_token=(100_000, 300.0), paging=None)
    fedi.add_instance("alpha.example", limits=roomy)
    fedi.add_instance("beta.example", limits=roomy)
    fedi.add_instance("akkoma.example", flavor="akkoma", limits=roomy)
    fedi.add_instance("split.example", web_domain="social.split.example", limits=roomy)
    fedi.add_instance("closed.example", limited_federation=True, limits=roomy)
    people = fedi.populate(
        seed=3,
        instances=["alpha.example", "beta.example", "akkoma.example", "split.example"],
        accounts_per_instance=18,
        follows_per_account=5,
    )
    for handle in ("star@alpha.example", "star@akkoma.example", "new@beta.example"):
        fedi.add_account(handle)
    fedi.add_account("shy@alpha.example", hide_collections=True)
    fedi.add_account("ghost@beta.example", suspended=True)
    fedi.add_account("old@alpha.example")
    fedi.add_account("cleo@closed.example")
    for n in range(110):
        fan = fedi.add_account(f"fan{n}@beta.example")
        fedi.follow(fan, "star@alpha.example")
        fedi.follow(fan, "star@akkoma.example")
    for person in people[::3]:
        fedi.follow(person, "shy@alpha.example")
        fedi.follow(person, "old@alpha.example")
        fedi.follow("star@akkoma.example", person)
    fedi.follow("old@alpha.example", people[1])
    fedi.follow("new@beta.example", people[2])
    fedi.move("old@alpha.example", "new@beta.example")
    fedi.follow("cleo@closed.example", people[0])
    fedi.follow(people[1], "cleo@closed.example")
    seeds = [h for h in fedi.handles() if not h.startswith("fan")]
    return fedi, seeds


def expected_outcomes(fedi: FakeFediverse, seeds: list[str]) -> dict[tuple[str, str], str]:
    """Every list the crawl must finish, with its outcome: the seeds', and at depth 1 those
    of everyone on a seed's visible list."""
    special = {
        "shy@alpha.example": "hidden",
        "ghost@beta.example": "suspended",
        "old@alpha.example": "moved",
        "cleo@closed.example": "auth_required",
    }

    def outcome(account: str, relation: str) -> str:
        if account in special:
            return special[account]
        listed = fedi.followers(account) if relation == "followers" else fedi.following(account)
        return "complete" if listed else "empty"

    walked = set(seeds)
    for seed in seeds:
        if outcome(seed, "followers") in VISIBLE:
            walked |= fedi.followers(seed) | fedi.following(seed)
    return {(a, r): outcome(a, r) for a in walked for r in ("followers", "following")}


class Crawl:
    """One crawl database, the crawler processes that work on it, and a read-only view."""

    def __init__(self, fedi: FakeFediverse, tmp: Path) -> None:
        self.db = tmp / "crawl.sqlite"
        self.log = tmp / "crawler.log"
        self.resolve = [
            f"--resolve={host}={ip}:{port}" for host, (ip, port) in fedi.resolve_map().items()
        ]
        self.process: subprocess.Popen[bytes] | None = None
        self.reader: sqlite3.Connection | None = None

    def start(self, *args: str) -> subprocess.Popen[bytes]:
        assert self.process is None
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, str(WORKER), *args, *self.resolve, "--insecure-http"],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        return self.process

    def resume(self) -> subprocess.Popen[bytes]:
        return self.start("--resume", str(self.db))

    def kill(self) -> bool:
        """SIGKILL the crawler now; True if it was still running."""
        assert self.process is not None
        alive = self.process.poll() is None
        if alive:
            self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=GIVE_UP)
        self.process = None
        return alive

    def finish(self) -> int:
        assert self.process is not None
        try:
            code = self.process.wait(timeout=GIVE_UP)
        finally:
            self.process = None
        return code

    def query(self, sql: str) -> tuple[int, ...]:
        if self.reader is None:
            if not self.db.exists():
                return ()
            self.reader = sqlite3.connect(f"file:{self.db}?mode=ro", uri=True, timeout=10)
        try:
            row = self.reader.execute(sql).fetchone()
        except sqlite3.OperationalError as exc:
            if "no such table" in str(exc):
                return ()  # created, schema not committed yet
            raise
        return tuple(row)

    def pages(self) -> int:
        """Pages committed so far (a list that ends before any page counts one)."""
        row = self.query("SELECT coalesce(sum(pages), 0) FROM units")
        return row[0] if row else 0

    def pending(self) -> int | None:
        row = self.query("SELECT count(*) FILTER (WHERE status = 'pending'), count(*) FROM units")
        return row[0] if row and row[1] else None

    def wait_for(self, condition: Callable[[], bool], what: str) -> None:
        """Poll the database (and the process) until ``condition`` holds."""
        assert self.process is not None
        deadline = time.monotonic() + GIVE_UP
        while not condition():
            if self.process.poll() is not None:
                pytest.fail(f"the crawler exited ({self.process.returncode}) before {what}")
            if time.monotonic() > deadline:
                pytest.fail(f"the crawler never got to {what}:\n{self.log.read_text()[-3000:]}")
            time.sleep(0.0005)

    def wait_for_pages(self, n: int) -> None:
        self.wait_for(lambda: self.pages() >= n, f"{n} committed pages")

    def close(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        if self.reader is not None:
            self.reader.close()


@contextlib.contextmanager
def crawling(fedi: FakeFediverse, tmp: Path) -> Iterator[Crawl]:
    with fedi.run_in_thread():
        crawl = Crawl(fedi, tmp)
        try:
            yield crawl
        finally:
            crawl.close()


Units = dict[tuple[str, str], tuple[str, str, int]]


def stored(db: Path) -> tuple[set[tuple[str, str]], int, Units]:
    """The edge set, the edge row count, and every unit's status, outcome and count found."""
    with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as connection:
        edges = set(connection.execute("SELECT follower, followed FROM edges"))
        (rows,) = connection.execute("SELECT count(*) FROM edges").fetchone()
        units = {
            (account, relation): (status, outcome, found)
            for account, relation, status, outcome, found in connection.execute(
                "SELECT account, relation, status, outcome, found FROM units"
            )
        }
    return edges, rows, units


def list_requests(fedi: FakeFediverse) -> int:
    return sum(
        1
        for domain in fedi.domains
        for r in fedi.instance(domain).requests
        if r.path.endswith(("/followers", "/following"))
    )


def test_twenty_kills_and_resumes_store_the_ground_truth_once(tmp_path: Path) -> None:
    fedi, seeds = build()
    want = expected_outcomes(fedi, seeds)
    truth = fedi.edges()
    rng = random.Random(RNG_SEED)
    # Every list takes at least one commit: kill points among those leave work to resume.
    points = sorted(rng.sample(range(1, int(len(want) * 0.9)), KILLS))
    killed_at: list[int] = []
    with crawling(fedi, tmp_path) as crawl:
        # 1. Killed during the very first page: every list request is held by the servers.
        for domain in fedi.domains:
            fedi.instance(domain).chaos(
                seed=0, slow=1.0, slow_seconds=3, path_prefix="/api/v1/accounts/109"
            )
        crawl.start(*seeds, "--db", str(crawl.db), "--depth", "1")
        crawl.wait_for(
            lambda: sum(fedi.instance(d).faults_injected["slow"] for d in fedi.domains) > 0,
            "the first page",
        )
        assert crawl.pages() == 0
        assert crawl.pending() == 2 * len(seeds)
        assert crawl.kill()
        for domain in fedi.domains:
            fedi.instance(domain).chaos_off()
        # 2. Killed after k committed pages, 20 times, resumed each time.
        for k in points:
            crawl.resume()
            target = max(k, crawl.pages() + 1)
            crawl.wait_for_pages(target)
            assert crawl.kill()
            killed_at.append(crawl.pages())
            assert crawl.pending(), "a kill point after the end of the crawl tests nothing"
        # 3. Killed right after the last commit, whatever it was doing then.
        crawl.resume()
        crawl.wait_for(lambda: crawl.pending() == 0, "the end of the crawl")
        caught = crawl.kill()
        # 4. Nothing is left: a resume exits at once and fetches no list again.
        before = list_requests(fedi)
        crawl.resume()
        assert crawl.finish() == 0
        assert list_requests(fedi) == before
    edges, rows, units = stored(crawl.db)
    assert len(set(killed_at)) > KILLS // 2, killed_at
    assert rows == len(edges) == len(truth)
    assert edges == truth
    assert {key: status for key, (status, _, _) in units.items()} == dict.fromkeys(want, "done")
    assert {key: outcome for key, (_, outcome, _) in units.items()} == want
    # Each page's count lands with its cursor: a page fetched again is not counted again.
    listed = {
        (account, relation): len(
            fedi.followers(account) if relation == "followers" else fedi.following(account)
        )
        for (account, relation), outcome in want.items()
        if outcome in VISIBLE
    }
    assert {key: units[key][2] for key in listed} == listed
    print(f"kill points (pages committed): {killed_at}; last commit caught alive: {caught}")
