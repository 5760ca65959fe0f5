"""Walking one list (followers or following of one account) on its home instance.

Each page becomes one :class:`~aiomasto.crawl.PageCommit`: the accounts it lists, the edges
(follower → followed), the cursor of the page after it, and on the last page the list's
:class:`~aiomasto.crawl.ListResult`. Where to go after a page is decided by :func:`decide`, a
pure function of the server's quirks (federation.md §4.3) and what the page showed, so no
server makes the walk loop or stop early:

- Pixelfed's link to older items is ``rel="prev"`` (its ``next`` leads back): followed.
- No Link header at all (Sharkey's shim, which ignores cursors): one page is all there is to
  read; a full page of a profile that claims more is ``unpageable``, else ``complete``.
- A cursor already fetched, or a page identical to the one before: ``unpageable``, stop.
- A short page is the end only where the server never shortens a page after reading it
  (Mastodon); GoToSocial filters pages after the database and links on, so it goes on.
- Accounts are deduplicated per list by id (Akkoma, Friendica and Iceshrimp page by account
  id, so a new follow can land mid-list and shift a page).

Outcomes before any page (federation.md §3.1): ``suspended`` and ``hidden`` come from the
profile. A moved account's list is still served (Mastodon drains it, §2): it is walked and
recorded as ``moved`` with ``moved_to``. After the walk: ``complete`` when anyone was listed,
``empty`` when the profile claims no one, ``blocked`` when the crawl's user is blocked by the
account (a user token's relationship says so), else ``withheld``.
"""

from __future__ import annotations

import operator
from collections.abc import Awaitable, Callable, Container, Sequence
from datetime import UTC, datetime
from urllib.parse import quote

from attrs import frozen

from aiomasto._converter import register_fast
from aiomasto._fastpath import make_constructor
from aiomasto.entities import Account
from aiomasto.errors import (
    DecodeError,
    Gone,
    HTTPError,
    MastodonError,
    NotFound,
    OriginError,
    PaginationError,
    RateLimited,
)
from aiomasto.pagination import Page

from ._instances import AuthRequired, Instance, Unreachable
from ._model import (
    AccountRecord,
    Edge,
    ListedAccount,
    ListResult,
    MovedAccount,
    Outcome,
    PageCommit,
    Relation,
    Unit,
)
from ._resolve import Resolution, account_record
from ._servers import Quirks, ServerInfo

__all__ = ["ListWalk", "Step", "decide", "first_page", "list_outcome"]

# A rate-limit wait longer than a Session accepts (its max_wait) is sat out this many times.
_LONG_WAITS = 3
_LONGEST_WAIT = 3600.0


@frozen(kw_only=True)
class Step:
    """Where a walk goes after a page: ``cursor`` (``None``: the list ends here) and, when it
    ends because the server cannot be paged safely, ``outcome="unpageable"`` with why."""

    cursor: str | None
    outcome: Outcome | None = None
    detail: str = ""


def first_page(account_id: str, relation: Relation, quirks: Quirks) -> str:
    """The first page's cursor, asking for the server's largest page."""
    return f"/api/v1/accounts/{quote(account_id, safe='')}/{relation}?limit={quirks.page_limit}"


def decide(
    quirks: Quirks,
    *,
    fetched: str,
    next_link: str | None,
    prev_link: str | None,
    count: int,
    seen: Container[str],
    same_as_before: bool,
    claimed: int | None,
    found: int,
) -> Step:
    """Where to go after a page of ``count`` items (undecodable ones included).

    ``seen`` holds the cursors fetched so far, ``same_as_before`` says the page listed
    exactly the accounts of the page before, ``found`` counts the accounts listed so far
    (this page's included) and ``claimed`` what the profile claims.

    >>> decide(Quirks(links="swapped"), fetched="/a", next_link=None, prev_link="/a?c=2",
    ...        count=80, seen={"/a"}, same_as_before=False, claimed=200, found=80).cursor
    '/a?c=2'
    """
    if count == 0:
        return Step(cursor=None)
    if same_as_before:
        return Step(
            cursor=None,
            outcome="unpageable",
            detail=f"the server sent the same page twice ({fetched}): it ignores the cursor",
        )
    if quirks.links == "none" or quirks.ignores_cursors:
        if count >= quirks.page_limit and claimed is not None and claimed > found:
            return Step(
                cursor=None,
                outcome="unpageable",
                detail=f"the server has no cursors: only the first {found} of {claimed} "
                "could be read",
            )
        return Step(cursor=None)
    following = prev_link if quirks.links == "swapped" else next_link
    if following is None:
        return Step(cursor=None)
    if following == fetched or following in seen:
        return Step(
            cursor=None,
            outcome="unpageable",
            detail=f"the server's Link leads back to a page already fetched ({following})",
        )
    if quirks.short_page_is_end and count < quirks.page_limit:
        return Step(cursor=None)
    return Step(cursor=following)


def list_outcome(*, claimed: int | None, found: int, blocked: bool) -> Outcome:
    """How a list that was walked to its end turned out (federation.md §3.1)."""
    if found > 0:
        return "complete"
    if not claimed:
        return "empty"
    return "blocked" if blocked else "withheld"


Commit = Callable[[PageCommit], Awaitable[Sequence[Unit]]]
Discover = Callable[
    [Unit, Sequence[AccountRecord], Callable[[], dict[str, str]], str | None, str], list[Unit]
]


class ListWalk:
    """Walks one unit's list from its committed cursor to the end, one commit per page."""

    def __init__(
        self,
        *,
        unit: Unit,
        resolution: Resolution,
        instance: Instance,
        info: ServerInfo,
        max_per_list: int | None,
        commit: Commit,
        discover: Discover,
        sleep_released: Callable[[float], Awaitable[None]],
        clock: Callable[[], float],
    ) -> None:
        assert resolution.api_base is not None
        assert resolution.account_id is not None
        assert resolution.profile is not None
        self.unit = unit
        self.relation: Relation = unit.key.relation
        self.resolution = resolution
        self.instance = instance
        self.info = info
        self.quirks = info.quirks
        # The server names its handle domain; failing that, the target's own (it is local).
        self.domain = info.domain or unit.key.account.rpartition("@")[2]
        self.max_per_list = max_per_list
        self._commit = commit
        self._discover = discover
        self._sleep = sleep_released
        self._clock = clock
        account = resolution.profile.account
        self.account = account
        self.key = unit.key.account
        self.claimed = (
            account.followers_count if self.relation == "followers" else account.following_count
        )
        self.found = unit.found
        self.skipped = unit.skipped
        self.moved_to = None
        if account.moved is not None:
            moved = account.moved.acct
            self.moved_to = (moved if "@" in moved else f"{moved}@{self.domain}").lower()

    async def run(self) -> ListResult:
        """Walk to the end (or to the first failure) and return how the list ended."""
        profile = self.resolution.profile
        assert profile is not None
        if self.account.suspended:
            return await self._finish("suspended", "the account is suspended")
        hidden = profile.hide_followers if self.relation == "followers" else profile.hide_following
        if hidden:
            return await self._finish("hidden", f"the owner hides their {self.relation}")
        try:
            return await self._walk()
        except Unreachable as exc:
            return await self._finish("unreachable", str(exc))
        except AuthRequired as exc:
            return await self._finish("auth_required", str(exc))
        except (NotFound, Gone) as exc:
            # GoToSocial answers 404 for a suspended account and for one that blocks the
            # crawl's user (§3.1); the profile, read again, tells them from a deletion.
            now = await self._recheck()
            if now is not None:
                return await self._finish(now[0], now[1])
            if self.info.software == "gotosocial" and isinstance(exc, NotFound):
                return await self._finish("blocked", f"{self.instance.host}: {exc.error}")
            return await self._finish("gone", f"{self.instance.host}: {exc}")
        except (PaginationError, OriginError) as exc:
            return await self._finish("unpageable", str(exc))
        except (DecodeError, HTTPError) as exc:
            return await self._finish("failed", str(exc))

    async def _walk(self) -> ListResult:
        assert self.resolution.account_id is not None
        cursor: str | None = self.unit.cursor or first_page(
            self.resolution.account_id, self.relation, self.quirks
        )
        seen_cursors: set[str] = set()
        seen_ids: set[str] = set()
        before: tuple[str, ...] = ()
        while cursor is not None:
            page = await self._page(cursor)
            seen_cursors.add(cursor)
            ids = tuple(map(_ID, page.items))
            if seen_ids.isdisjoint(ids):
                fresh = list(page.items)  # the usual page: nothing listed before
            else:
                fresh = [account for account in page.items if account.id not in seen_ids]
            seen_ids.update(ids)
            skipped = len(page.skipped)
            self.skipped += skipped
            over = False
            if self.max_per_list is not None and self.found + len(fresh) > self.max_per_list:
                over = True
                fresh = fresh[: max(0, self.max_per_list - self.found)]
            self.found += len(fresh)
            step = decide(
                self.quirks,
                fetched=cursor,
                next_link=page.next_cursor,
                prev_link=page.prev_cursor,
                count=len(page.items) + len(page.skipped),
                seen=seen_cursors,
                same_as_before=bool(ids) and ids == before,
                claimed=self.claimed,
                found=self.found,
            )
            at_cap = self.max_per_list is not None and self.found >= self.max_per_list
            if at_cap and (over or step.cursor is not None):
                step = Step(cursor=None, outcome="capped", detail=f"cut at {self.max_per_list}")
            before = ids
            result = None
            if step.cursor is None:
                result = await self._result(step)
            commit = self._page_commit(fresh, step.cursor, result, skipped)
            # The page's accounts go before the commit is awaited and the next page fetched:
            # kept alive across those waits (by 16 walks at once), they would be promoted into
            # the garbage collector's old generations, whose full collections cost every edge.
            del page, fresh
            await self._commit(commit)
            del commit
            if result is not None:
                return result
            cursor = step.cursor
        raise AssertionError("unreachable: every page either goes on or returns")

    async def _page(self, cursor: str) -> Page[ListedAccount]:
        for _ in range(_LONG_WAITS):
            try:
                return await self.instance.read(
                    lambda session: session.get_page(ListedAccount, cursor, skip_undecodable=True)
                )
            except RateLimited as exc:
                # Longer than the Session's max_wait: sit it out here, slot given back.
                wait = min(exc.retry_after or 60.0, _LONGEST_WAIT)
                self.instance.waiting_until = self._clock() + wait
                try:
                    await self._sleep(wait)
                finally:
                    self.instance.waiting_until = None
        raise Unreachable(f"{self.instance.host} kept refusing with 429 (rate limited)")

    async def _result(self, step: Step) -> ListResult:
        if step.outcome is not None:
            return self._list_result(step.outcome, step.detail)
        if self.claimed is not None and 0 < self.found < self.claimed:
            # A list that ends short of its claim may have been cut by a suspension or a
            # deletion under way (Mastodon then answers 200 [], §3.1): the profile says.
            now = await self._recheck()
            if now is not None:
                return self._list_result(*now)
        if self.moved_to is not None:
            return self._list_result("moved", f"moved to {self.moved_to}")
        blocked = False
        if self.found == 0 and self.claimed and self.instance.user_session is not None:
            blocked = await self._blocked_by()
        outcome = list_outcome(claimed=self.claimed, found=self.found, blocked=blocked)
        detail = ""
        if outcome == "withheld":
            detail = f"the profile claims {self.claimed}, the server lists no one"
        elif outcome == "blocked":
            detail = "the account blocks the crawl's user"
        return self._list_result(outcome, detail)

    async def _recheck(self) -> tuple[Outcome, str] | None:
        """The account read again: ``("gone", why)`` or ``("suspended", why)`` if it is now,
        else ``None``."""
        assert self.resolution.account_id is not None
        path = f"/api/v1/accounts/{quote(self.resolution.account_id, safe='')}"
        try:
            account = await self.instance.read(lambda session: session.get_json(Account, path))
        except (NotFound, Gone) as exc:
            return "gone", f"{self.instance.host}: the account is gone ({exc.status})"
        except MastodonError:
            return None
        if account.suspended:
            return "suspended", "the account was suspended during the walk"
        return None

    async def _blocked_by(self) -> bool:
        """Whether the crawl's user is blocked by the account (a user token is in use)."""
        session = self.instance.user_session
        assert session is not None
        try:
            relationships = await session.relationships([self.account.id])
        except MastodonError:
            return False
        return any(r.blocked_by for r in relationships)

    def _list_result(self, outcome: Outcome, detail: str) -> ListResult:
        if self.skipped:
            note = f"{self.skipped} listed accounts could not be decoded and were skipped"
            detail = f"{detail}; {note}" if detail else note
        return ListResult(
            outcome=outcome,
            claimed=self.claimed,
            found=self.found,
            detail=detail,
            moved_to=self.moved_to,
            finished_at=datetime.fromtimestamp(self._clock(), UTC),
            skipped=self.skipped,
        )

    async def _finish(self, outcome: Outcome, detail: str) -> ListResult:
        """End the list without (more) pages: one commit with the result alone."""
        result = self._list_result(outcome, detail)
        await self._commit(self._page_commit([], None, result))
        return result

    def _page_commit(
        self,
        accounts: Sequence[ListedAccount],
        cursor: str | None,
        result: ListResult | None,
        skipped: int = 0,
    ) -> PageCommit:
        """What one page stores: its accounts' records, their edges, the units it finds."""
        records = [
            account_record(account, domain=self.domain, seen_on=self.instance.api_base)
            for account in accounts
        ]
        if self.relation == "followers":
            edges = [_edge(record.key, self.key) for record in records]
        else:
            edges = [_edge(self.key, record.key) for record in records]

        def local() -> dict[str, str]:
            # The ids of this instance's own accounts: asked for only when expanding.
            return {
                record.key: account.id
                for record, account in zip(records, accounts, strict=True)
                if "@" not in account.acct
            }

        moved_to = self.moved_to if result is not None else None
        units = self._discover(self.unit, records, local, moved_to, self.instance.api_base)
        return PageCommit(
            unit=self.unit.key,
            cursor=cursor,
            api_base=self.instance.api_base,
            account_id=self.resolution.account_id,
            accounts=records,
            edges=edges,
            result=result,
            units=units,
            skipped=skipped,
        )


_ID = operator.attrgetter("id")

_edge = make_constructor(Edge)
"""``Edge(follower, followed)`` without attrs' frozen ``__init__``: one per listed account."""

# A page's accounts are read into ListedAccount by the entities' own rules and paths.
register_fast([ListedAccount, MovedAccount])
