"""A bot that answers every mention, once: ``python -m examples.bots.reply_bot --demo``.

It first answers the mentions still in its notifications (left by a previous run), then
listens to the ``user:notification`` stream. Each reply carries the Idempotency-Key
``reply-<notification id>``: a restart, a replayed event or a retried POST gets the reply
made the first time back from Mastodon (which keeps the key for an hour) instead of posting
a second one. An answered mention is then dismissed, so the next start does not see it; a
mention that arrives just before the stream opens stays in the notifications and is
answered by the next start's catch-up.

    MASTODON_TOKEN=... python -m examples.bots.reply_bot --instance https://mastodon.example
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable

from aiomasto import NotFound, Notification, Session, Status, to_json

from ._cli import Demo, arguments, demo_instance, fail, session, write_state

__all__ = ["answer", "run"]


async def answer(masto: Session, note: Notification) -> Status | None:
    """Reply to ``note`` if it is a mention, then dismiss it; the reply, or None.

    Example: ``reply = await answer(masto, notification)``
    """
    if note.type != "mention" or note.account is None or note.status is None:
        return None
    reply = await masto.post_status(
        f"@{note.account.acct} thanks for the mention!",
        in_reply_to=note.status,
        # Mentions are usually public or unlisted; a reply to a direct message stays direct.
        visibility="direct" if note.status.visibility == "direct" else "unlisted",
        idempotency_key=f"reply-{note.id}",
    )
    # Without scheduled_at the answer is a Status; the check keeps mypy and readers sure.
    assert isinstance(reply, Status)
    with contextlib.suppress(NotFound):
        # Already dismissed: the replay of a mention answered and dismissed before.
        await masto.dismiss_notification(note.id)
    return reply


async def run(
    masto: Session,
    *,
    stop_after: int | None = None,
    on_reply: Callable[[Notification, Status], None] | None = None,
) -> int:
    """Answer mentions until cancelled (or ``stop_after`` replies); returns how many.

    Example: ``await run(masto)``
    """
    answered = 0

    def done(note: Notification, reply: Status) -> bool:
        nonlocal answered
        answered += 1
        if on_reply is not None:
            on_reply(note, reply)
        return stop_after is not None and answered >= stop_after

    # Catch up first: what a previous run left unanswered is still in the notifications.
    async for note in masto.notifications(types=["mention"]):
        reply = await answer(masto, note)
        if reply is not None and done(note, reply):
            return answered
    # The stream reconnects by itself after a drop and fetches what it missed meanwhile.
    async with masto.stream("user:notification") as events:
        async for event in events:
            if not isinstance(event.payload, Notification):
                continue
            reply = await answer(masto, event.payload)
            if reply is not None and done(event.payload, reply):
                break
    return answered


def _show(note: Notification, reply: Status) -> None:
    who = note.account.acct if note.account else "?"
    print(f"  answered @{who}'s mention {note.id} with status {reply.id}")


async def _until(check: Callable[[], bool], what: str, seconds: float = 5.0) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        if time.monotonic() > deadline:
            fail(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


async def _demo(demo: Demo) -> dict[str, object]:
    server, bot = demo.server, demo.bot
    alice = server.add_account("alice")
    bob = server.add_account("bob")
    mentions = [server.post_status(alice, "@bot hello, left for you while you were away")]
    answered: list[Notification] = []

    def record(note: Notification, reply: Status) -> None:
        answered.append(note)
        _show(note, reply)

    async with demo.session() as masto:
        print("run 1: catch up, then the stream (dropped once in the middle)")
        task = asyncio.create_task(run(masto, stop_after=3, on_reply=record))
        await _until(lambda: server.streams_opened == 1, "the stream to open")
        mentions.append(server.post_status(alice, "@bot are you there?"))
        await _until(lambda: len(server.statuses_of(bot)) == 2, "the reply on the stream")
        print(f"  dropping {server.drop_streams()} stream connection(s)")
        # Posted while the bot is away: the stream's gap fill finds it after the reconnect.
        mentions.append(server.post_status(bob, "@bot ping, while you were disconnected"))
        await asyncio.wait_for(task, 10)

        # A restart that is handed an answered mention again (a replayed event, or a crash
        # between posting and dismissing): same Idempotency-Key, so no second reply.
        print("run 2: a restart that receives an answered mention again")
        opened = server.streams_opened
        task = asyncio.create_task(run(masto, stop_after=1, on_reply=_show))
        await _until(lambda: server.streams_opened > opened, "the stream to open again")
        server.push("user:notification", "notification", to_json(answered[1]), account_id=bot)
        await asyncio.wait_for(task, 10)
        replies = [await masto.status(i) for i in server.statuses_of(bot)]
    return {
        "mentions": mentions,
        "replies": [r.id for r in replies],
        "replies_per_mention": {m: sum(r.in_reply_to_id == m for r in replies) for m in mentions},
        "left_in_notifications": [
            i for i, kind in server.notifications_of(bot) if kind == "mention"
        ],
    }


async def _main() -> None:
    args = arguments("reply_bot", "Answer every mention once.").parse_args()
    if not args.demo:
        async with session(args.instance) as masto:
            await run(masto, on_reply=_show)
        return
    async with demo_instance() as demo:
        state = await _demo(demo)
    write_state(args.state_json, state)
    counts, replies = state["replies_per_mention"], state["replies"]
    assert isinstance(counts, dict)
    assert isinstance(replies, list)
    print(f"replies per mention: {counts}")
    if sorted(counts.values()) != [1, 1, 1] or len(replies) != 3:
        fail("expected exactly one reply to each of the 3 mentions")
    print("OK")


if __name__ == "__main__":
    asyncio.run(_main())
