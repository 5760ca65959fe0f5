"""``aiomasto demo crawl``: a crawl of a small fake fediverse, checked against its truth.

The fediverse runs in this process on loopback: two Mastodon instances, GoToSocial (which
answers only to a user token: the demo has one), Akkoma (one account hides its followers), a
limited-federation instance (no token: its lists stay closed), a split-domain one and one
that is down; a hidden, a suspended and a moved account. The crawl is ``aiomasto crawl``'s
own code at depth 1 into a temporary database; then every edge found is compared with the
fake's ground truth for the lists the crawl could read.
"""

from __future__ import annotations

import sqlite3
import sys
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import TextIO

import aiohttp

from aiomasto._http import DEFAULT_TIMEOUT
from aiomasto._version import __version__
from aiomasto.testing import FakeFediverse, Limits

from ._cli import CrawlSettings, crawl
from ._model import CrawlPlan

__all__ = ["SEEDS", "build_fediverse", "demo_crawl"]

SEEDS = ("@alice@alpha.example", "@gina@gts.example", "@old@alpha.example")
# The outcome each of these lists must end with, whatever else the crawl finds.
EXPECTED = {
    ("alice@alpha.example", "followers"): "complete",
    ("gina@gts.example", "following"): "complete",
    ("shy@alpha.example", "followers"): "hidden",
    ("sus@alpha.example", "followers"): "suspended",
    ("old@alpha.example", "followers"): "moved",
    ("ake@akkoma.example", "followers"): "hidden",
    ("ake@akkoma.example", "following"): "complete",
    ("cleo@closed.example", "followers"): "auth_required",
    ("dan@down.example", "followers"): "unreachable",
    ("sam@split.example", "followers"): "complete",
}
_ROOMY = (100_000, 300.0)
# Lists whose edges are all read: compared with the ground truth one by one.
_READ_IN_FULL = frozenset({"complete", "moved"})


def build_fediverse() -> FakeFediverse:
    """The demo's fediverse: every kind of instance and account state the crawl handles."""
    fedi = FakeFediverse()
    # Every instance is on 127.0.0.1, so Mastodon's 300 requests per IP and 5 minutes would
    # make the crawl sit out a window (as it should): roomy limits keep the demo short.
    roomy = Limits(per_user=_ROOMY, per_token=_ROOMY, per_ip=_ROOMY, paging=None)
    fedi.add_instance("alpha.example", limits=roomy)
    fedi.add_instance("beta.example", limits=roomy)
    fedi.add_instance("gts.example", flavor="gotosocial", limits=roomy)
    fedi.add_instance("akkoma.example", flavor="akkoma", limits=roomy)
    fedi.add_instance("split.example", web_domain="social.split.example", limits=roomy)
    fedi.add_instance("closed.example", limited_federation=True, limits=roomy)
    fedi.add_down_instance("down.example")
    people = [
        "alice@alpha.example",
        "bob@beta.example",
        "gina@gts.example",
        "ake@akkoma.example",
        "sam@split.example",
        "cleo@closed.example",
        "dan@down.example",
    ]
    for handle in people:
        # ake hides its followers but not whom it follows: Akkoma's two separate flags.
        hide = {"hide_followers": True, "hide_follows": False} if handle.startswith("ake@") else {}
        fedi.add_account(handle, display_name=handle.partition("@")[0].title(), **hide)
    fedi.add_account("shy@alpha.example", hide_collections=True)
    fedi.add_account("sus@alpha.example")
    fedi.add_account("old@alpha.example")
    fedi.add_account("new@beta.example")
    fedi.add_account("reader@gts.example")
    for index, follower in enumerate(people):
        for followed in people[index + 1 :]:
            fedi.follow(follower, followed)
        fedi.follow(follower, "shy@alpha.example")
    for follower in ("bob@beta.example", "sam@split.example", "sus@alpha.example"):
        fedi.follow(follower, "old@alpha.example")
    fedi.follow("old@alpha.example", "alice@alpha.example")
    fedi.follow("sus@alpha.example", "alice@alpha.example")
    fedi.follow("alice@alpha.example", "sus@alpha.example")
    for n in range(1, 101):
        fedi.add_account(f"fan{n}@beta.example")
        fedi.follow(f"fan{n}@beta.example", "alice@alpha.example")
    fedi.move("old@alpha.example", "new@beta.example")
    fedi.suspend("sus@alpha.example")
    return fedi


async def demo_crawl(out: TextIO | None = None) -> int:
    """Crawl the demo fediverse with ``aiomasto crawl``'s code; 0 when the check passes."""
    out = out or sys.stdout
    fedi = build_fediverse()
    with tempfile.TemporaryDirectory(prefix="aiomasto-demo-crawl-") as tmp:
        db = Path(tmp) / "crawl.sqlite"
        plan = CrawlPlan(seeds=SEEDS, depth=1)
        settings = CrawlSettings(
            db=db,
            db_text=str(db),
            plan=plan,
            token_store=Path(tmp) / "credentials.json",
            app_name="aiomasto demo crawl",
            insecure_http=True,
            quiet=True,
        )
        print(f"aiomasto {__version__} demo: a crawl of a fake fediverse on loopback", file=out)
        print(f"instances: {', '.join(fedi.domains)} (down.example is down)", file=out)
        print(f"seeds: {' '.join(SEEDS)}; both relations, depth 1\n", file=out)
        async with fedi.run():
            connector = aiohttp.TCPConnector(resolver=fedi.resolver())
            async with aiohttp.ClientSession(connector=connector, timeout=DEFAULT_TIMEOUT) as http:
                status = await crawl(
                    settings,
                    http=http,
                    user_tokens={"gts.example": fedi.user_token("reader@gts.example")},
                    out=out,
                )
        if status != 0:
            print("Demo finished: the crawl failed", file=out)
            return status
        problems = check(fedi, db)
    print("\nChecked against the fake fediverse's ground truth:", file=out)
    for line in problems or ["every list read in full holds exactly its true edges"]:
        print(f"  {line}", file=out)
    print("Demo finished: OK" if not problems else "Demo finished: MISMATCH", file=out)
    return 0 if not problems else 1


def check(fedi: FakeFediverse, db: Path) -> list[str]:
    """What differs between the database and the ground truth (nothing: ``[]``)."""
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as connection:
        rows = connection.execute("SELECT follower, followed FROM edges").fetchall()
        outcomes: Mapping[tuple[str, str], str] = {
            (account, relation): outcome
            for account, relation, outcome in connection.execute(
                "SELECT account, relation, outcome FROM units WHERE status = 'done'"
            )
        }
        pending = connection.execute(
            "SELECT count(*) FROM units WHERE status != 'done'"
        ).fetchone()[0]
    connection.close()
    found = {(str(a), str(b)) for a, b in rows}
    problems = []
    if pending:
        problems.append(f"{pending} lists were not finished")
    if len(found) != len(rows):
        problems.append(f"{len(rows) - len(found)} duplicated edges")
    expected: set[tuple[str, str]] = set()
    for (account, relation), outcome in outcomes.items():
        if outcome not in _READ_IN_FULL:
            continue
        if relation == "followers":
            expected.update((follower, account) for follower in fedi.followers(account))
        else:
            expected.update((account, followed) for followed in fedi.following(account))
    if found != expected:
        problems.append(
            f"{len(expected - found)} true edges missing, {len(found - expected)} edges "
            "that no list read in full holds"
        )
    if not found <= fedi.edges():
        problems.append(f"{len(found - fedi.edges())} edges the fediverse does not have")
    for unit, want in EXPECTED.items():
        got = outcomes.get(unit)
        if got != want:
            problems.append(f"{unit[1]} of {unit[0]}: {got or 'not crawled'}, expected {want}")
    return problems
