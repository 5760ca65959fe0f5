"""The crawl's vocabulary: what is crawled, what a list turned out to be, and the sink seam.

A crawl is a set of *units*, one per (account, relation): "the followers of
alice@example.social". A unit is walked page by page on the account's home instance, and
each page is handed to the :class:`CrawlSink` as one :class:`PageCommit`: the page's accounts,
its edges, the cursor of the page after it and any units it discovered, to be stored in **one
transaction**. That is what makes a crawl exactly-once: a crash (``kill -9``) between two
commits loses nothing, and the page being walked is fetched again from the committed cursor
and its edges (keyed by follower and followed) are stored once.

Accounts are keyed by their canonical handle, lower-cased: ``alice@example.social`` (the
domain is the handle domain the home instance announces, not the API host).

Nothing here does I/O; the engine and the sinks share these classes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Literal, Protocol, get_args

from attrs import field, frozen

__all__ = [
    "OUTCOMES",
    "RELATIONS",
    "AccountRecord",
    "CrawlPlan",
    "CrawlSink",
    "Edge",
    "InstanceRecord",
    "ListResult",
    "Outcome",
    "PageCommit",
    "Relation",
    "ResumeState",
    "Unit",
    "UnitKey",
]

Relation = Literal["followers", "following"]
RELATIONS: tuple[Relation, ...] = get_args(Relation)

Outcome = Literal[
    # every page walked to the end
    "complete",
    # the owner hides the list (hide_collections, Akkoma's hide_followers/hide_follows)
    "hidden",
    # the profile claims no one and the server lists no one
    "empty",
    # the account blocks the crawler's user, or the server says so (GoToSocial's 404)
    "blocked",
    # the server lists no one although the profile claims some and gives no reason
    "withheld",
    # suspended: the account is suspended (an empty list, or 404 on GoToSocial)
    "suspended",
    # deleted: 404/410 on WebFinger, lookup or the list
    "gone",
    # the account moved; ListResult.moved_to holds the new account's key
    "moved",
    # the home instance did not answer (DNS, refused, timeouts, 5xx) within the retry bound
    "unreachable",
    # the instance answers only to a user token, and the crawl has none for it
    "auth_required",
    # the server's paging cannot be followed safely (no cursor honoured, a loop): stopped
    "unpageable",
    # the account's handle does not resolve (no WebFinger, no lookup match)
    "unresolved",
    # the list was cut at a cap (max accounts per list)
    "capped",
    # anything else: ListResult.detail says what
    "failed",
]
OUTCOMES: tuple[Outcome, ...] = get_args(Outcome)


@frozen(kw_only=True)
class UnitKey:
    """Which list: ``UnitKey(account="alice@example.social", relation="followers")``."""

    account: str
    relation: Relation

    def __str__(self) -> str:
        return f"{self.relation} of {self.account}"


@frozen(kw_only=True)
class Unit:
    """One list to walk, as the sink keeps it.

    ``target`` is how the account was named (a handle, a profile URL or ``instance#id``):
    the engine resolves it on first use. ``cursor`` is the next page to fetch (relative to
    ``api_base``), ``None`` before the first page. ``depth`` is 0 for seeds, n for an account
    found n hops away. ``found`` counts the accounts listed so far, ``pages`` the pages and
    ``skipped`` the listed accounts that could not be decoded. Once resolved, ``api_base``
    (``https://host``) and ``account_id`` (the local id there) are known.
    """

    key: UnitKey
    target: str
    depth: int = 0
    cursor: str | None = None
    api_base: str | None = None
    account_id: str | None = None
    found: int = 0
    pages: int = 0
    skipped: int = 0


@frozen(kw_only=True)
class AccountRecord:
    """The latest profile snapshot of one account, as a page or a lookup showed it.

    ``key`` is the canonical handle lower-cased; ``acct`` keeps the server's casing. ``seen_on``
    is the API host whose answer this is (a remote account's counts there are copies).
    """

    key: str
    acct: str
    uri: str | None = None
    url: str | None = None
    display_name: str = ""
    note: str = ""
    avatar: str = ""
    bot: bool = False
    locked: bool = False
    group: bool = False
    created_at: datetime | None = None
    followers_count: int = 0
    following_count: int = 0
    statuses_count: int = 0
    suspended: bool = False
    moved_to: str | None = None
    seen_on: str = ""


@frozen(kw_only=True)
class MovedAccount:
    """Where a listed account moved to: its ``acct``, as the server spells it."""

    acct: str


@frozen(kw_only=True)
class ListedAccount:
    """What a crawl reads of each account a followers or following page lists.

    The fields an :class:`AccountRecord` keeps, named and read as in
    :class:`~aiomasto.Account` (same defaults, same tolerance, same failures for these
    fields); the rest of the account (emojis, fields, roles) is not built, as nothing keeps it.
    """

    id: str
    username: str
    acct: str
    uri: str | None = None
    url: str | None = None
    display_name: str = ""
    note: str = ""
    avatar: str = ""
    bot: bool = False
    locked: bool = False
    group: bool = False
    created_at: datetime | None = None
    followers_count: int = 0
    following_count: int = 0
    statuses_count: int = 0
    suspended: bool = False
    moved: MovedAccount | None = None


@frozen(kw_only=True)
class Edge:
    """``follower`` follows ``followed`` (both account keys)."""

    follower: str
    followed: str


@frozen(kw_only=True)
class ListResult:
    """How a list ended: its outcome, the counts the profile claims and the accounts found.

    ``claimed`` is the profile's ``followers_count``/``following_count`` on the home
    instance (``None`` if the account could not be read); ``found`` how many the walk listed.
    ``skipped`` counts listed accounts that could not be decoded (left out, the walk went
    on; ``detail`` says so too). ``detail`` says why in words (an error message, never a
    secret).
    """

    outcome: Outcome
    claimed: int | None = None
    found: int = 0
    detail: str = ""
    moved_to: str | None = None
    finished_at: datetime | None = None
    skipped: int = 0


@frozen(kw_only=True)
class PageCommit:
    """One page of one list, stored in one transaction.

    ``cursor`` is where the walk goes on (``None``: nothing after this page); ``result`` is
    set on the page that ends the list, so the last page and the outcome land together.
    ``units`` are lists discovered on this page (breadth-first expansion); the sink adds the
    ones it does not have yet. ``accounts`` are upserted, ``edges`` inserted once.
    ``api_base`` and ``account_id`` are stored with the unit's progress when given;
    ``skipped`` counts the page's listed accounts that could not be decoded. A list
    that ends before any page (hidden, gone, unreachable...) is one commit with no accounts,
    no edges, ``cursor=None`` and its ``result``.
    """

    unit: UnitKey
    cursor: str | None
    api_base: str | None = None
    account_id: str | None = None
    accounts: Sequence[AccountRecord] = ()
    edges: Sequence[Edge] = ()
    result: ListResult | None = None
    units: Sequence[Unit] = ()
    skipped: int = 0


@frozen(kw_only=True)
class InstanceRecord:
    """What the crawl learnt about one instance (its API host), stored once per crawl.

    ``software`` is NodeInfo's ``software.name`` lower-cased (or what the version string
    names), ``quirks`` the paging flags the walk used, ``auth`` the credentials it needed
    (``"none"``, ``"app"`` or ``"user"``), ``status`` ``"ok"``, ``"unreachable"``,
    ``"auth_required"`` or ``"unpageable"`` and ``detail`` why.
    """

    api_base: str
    domain: str | None = None
    software: str | None = None
    version: str | None = None
    quirks: Mapping[str, object] = field(factory=dict)
    auth: str = "none"
    status: str = "ok"
    detail: str = ""
    updated_at: datetime | None = None


@frozen(kw_only=True)
class CrawlPlan:
    """What was asked for, stored with the crawl so ``--resume`` needs nothing else.

    ``seeds`` as the caller named them; ``max_accounts`` caps the accounts whose lists are
    walked (seeds included), ``max_per_instance`` those per handle domain; ``max_per_list``
    the accounts read from any one list.
    """

    seeds: tuple[str, ...]
    relations: tuple[Relation, ...] = RELATIONS
    depth: int = 0
    max_accounts: int | None = None
    max_per_instance: int | None = None
    max_per_list: int | None = None


@frozen(kw_only=True)
class ResumeState:
    """What a sink hands back when a crawl (re)starts.

    ``plan`` is the stored plan (the one given, on a new crawl); ``pending`` how many units
    are not finished yet (take them with :meth:`CrawlSink.claim`); ``accounts_queued`` how
    many accounts have units (for ``max_accounts``) and ``per_domain`` how many per handle
    domain; ``edges`` and ``units_done`` what earlier runs stored.
    """

    plan: CrawlPlan
    pending: int = 0
    accounts_queued: int = 0
    per_domain: Mapping[str, int] = field(factory=dict)
    edges: int = 0
    units_done: int = 0


class CrawlSink(Protocol):
    """Where a crawl keeps its state and its results (SQLite by default).

    Every method is called from the event loop; a sink that blocks does its work in a thread.
    ``commit_page`` must be atomic: all of it is stored, or none of it.

    A sink that many crawlers share (PostgreSQL) also has ``async def outstanding() -> int``:
    the unfinished units this crawler does not hold (claimable, or held by other workers).
    After an empty :meth:`claim` the crawler waits and claims again while it is above 0. A
    sink without it is taken to serve one crawler, whose crawl is over when :meth:`claim`
    comes back empty and nothing is being walked. A shared sink's ``commit_page`` raises
    :class:`~aiomasto.LeaseLost` for a unit another worker took over: the crawler drops it.
    """

    async def open(self, plan: CrawlPlan | None) -> ResumeState:
        """Start or resume: a new crawl stores ``plan`` and its seed units; a stored crawl
        returns its own plan (``plan=None`` means "resume, whatever it was"). A stored
        crawl given a different plan raises :class:`~aiomasto.ConfigurationError`."""
        ...

    async def claim(self, limit: int) -> Sequence[Unit]:
        """Up to ``limit`` unfinished units that no walk holds, each with its committed cursor,
        now held by this crawler until the commit that finishes it. A crawler that dies
        loses what it held (SQLite: the next :meth:`open` of the file takes it back; a shared
        database: when the lease expires), so the unit is walked again from its committed
        cursor. An empty answer means nothing is claimable right now."""
        ...

    async def add_units(self, units: Sequence[Unit]) -> Sequence[Unit]:
        """Add units not already present; returns the ones added."""
        ...

    async def save_instance(self, record: InstanceRecord) -> None:
        """Insert or replace what is known about an instance."""
        ...

    async def save_accounts(self, records: Sequence[AccountRecord]) -> None:
        """Upsert profile snapshots (a resolved target's own profile, say)."""
        ...

    async def commit_page(self, commit: PageCommit) -> Sequence[Unit]:
        """Store one page in one transaction; returns the discovered units that were new."""
        ...

    async def close(self) -> None:
        """Flush and release the database."""
        ...
