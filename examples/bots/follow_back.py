"""A bot that follows back whoever follows it: ``python -m examples.bots.follow_back --demo``.

At start it walks its followers and asks for the relationships (40 accounts a request) to
follow those it does not follow yet; then it listens to the ``user:notification`` stream
for new ``follow`` notifications. Before each follow it checks the relationship, so an
account already followed (or asked, for a locked one) costs no POST, whether the
notification is new, replayed, or an old follower seen again after a restart.

    MASTODON_TOKEN=... python -m examples.bots.follow_back --instance https://mastodon.example
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable

from aiomasto import Account, Notification, Session, to_json

from ._cli import Demo, arguments, demo_instance, fail, session, write_state

__all__ = ["follow_back", "run"]


async def follow_back(masto: Session, accounts: Iterable[Account]) -> list[Account]:
    """Follow each of ``accounts`` not yet followed (nor requested); the ones followed now.

    Example: ``await follow_back(masto, [notification.account])``
    """
    wanted = {a.id: a for a in accounts}
    followed = []
    for relation in await masto.relationships(wanted):
        if relation.following or relation.requested:
            continue
        await masto.follow(relation.id)
        followed.append(wanted[relation.id])
    return followed


async def run(
    masto: Session,
    *,
    stop_after: int | None = None,
    on_follow: Callable[[Account], None] | None = None,
) -> None:
    """Follow back the current followers, then every new one until cancelled (or until
    ``stop_after`` follow notifications have come on the stream).

    Example: ``await run(masto)``
    """
    me = await masto.verify_credentials()
    batch: list[Account] = []
    # Pages of followers go to the server 40 at a time: one relationships request each.
    async for follower in masto.followers(me.id):
        batch.append(follower)
        if len(batch) == 40:
            for account in await follow_back(masto, batch):
                _tell(on_follow, account)
            batch.clear()
    for account in await follow_back(masto, batch):
        _tell(on_follow, account)
    seen = 0
    # The stream reconnects by itself after a drop and fetches what it missed meanwhile.
    async with masto.stream("user:notification") as events:
        async for event in events:
            note = event.payload
            if not isinstance(note, Notification) or note.type != "follow" or not note.account:
                continue
            for account in await follow_back(masto, [note.account]):
                _tell(on_follow, account)
            seen += 1
            if stop_after is not None and seen >= stop_after:
                return


def _tell(on_follow: Callable[[Account], None] | None, account: Account) -> None:
    if on_follow is not None:
        on_follow(account)


def _show(account: Account) -> None:
    print(f"  followed back @{account.acct}")


async def _until(check: Callable[[], bool], what: str, seconds: float = 5.0) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        if time.monotonic() > deadline:
            fail(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


async def _demo(demo: Demo) -> dict[str, object]:
    server, bot = demo.server, demo.bot
    names = ["alice", "bob", "carol", "dave"]
    ids = {name: server.add_account(name) for name in names}
    # Before the bot starts: bob and carol follow it, and it already follows carol.
    server.follow(ids["bob"], bot)
    server.follow(ids["carol"], bot)
    server.follow(bot, ids["carol"])
    async with demo.session() as masto:
        print("start: bob and carol follow the bot, which already follows carol")
        # Two follow notifications on the stream: alice's, then dave's.
        task = asyncio.create_task(run(masto, stop_after=2, on_follow=_show))
        await _until(lambda: server.streams_opened == 1, "the stream to open")
        print("alice follows the bot")
        server.follow(ids["alice"], bot)
        await _until(lambda: ids["alice"] in server.following_of(bot), "alice's follow-back")
        print(f"dropping {server.drop_streams()} stream connection(s); dave follows meanwhile")
        server.follow(ids["dave"], bot)
        await asyncio.wait_for(task, 10)

        # A restart: every follower is walked again, and alice's follow notification is
        # replayed on the new stream. All are followed already: no POST.
        print("restart: the followers again, and alice's follow notification replayed")
        opened = server.streams_opened
        task = asyncio.create_task(run(masto, stop_after=1, on_follow=_show))
        await _until(lambda: server.streams_opened > opened, "the stream to open again")
        notes = [n async for n in masto.notifications(types=["follow"], account_id=ids["alice"])]
        server.push("user:notification", "notification", to_json(notes[0]), account_id=bot)
        await asyncio.wait_for(task, 10)
    following = set(server.following_of(bot))
    return {
        "following": sorted(n for n, i in ids.items() if i in following),
        "follow_requests": {
            n: server.count("POST", f"/api/v1/accounts/{i}/follow") for n, i in ids.items()
        },
    }


async def _main() -> None:
    args = arguments("follow_back", "Follow back every follower.").parse_args()
    if not args.demo:
        async with session(args.instance) as masto:
            await run(masto, on_follow=_show)
        return
    async with demo_instance() as demo:
        state = await _demo(demo)
    write_state(args.state_json, state)
    print(f"the bot follows {state['following']}; follow POSTs: {state['follow_requests']}")
    expected = {"alice": 1, "bob": 1, "carol": 0, "dave": 1}
    if state["following"] != sorted(expected) or state["follow_requests"] != expected:
        fail(f"expected follow POSTs {expected}")
    print("OK")


if __name__ == "__main__":
    asyncio.run(_main())
