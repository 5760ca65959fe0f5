"""What a bot does, against the fake Mastodon over loopback: post (idempotently, with
media), react, manage relationships, read notifications, timelines and the instance; and
the typed door under it (request/get/post/paginate)."""

from __future__ import annotations

import json

import pytest

import aiomasto
from aiomasto import Session
from aiomasto.entities import Account, Notification, Status
from aiomasto.testing import FakeMastodon, Fault

SLEPT: list[float] = []


async def no_sleep(seconds: float) -> None:
    SLEPT.append(seconds)


def base(server: FakeMastodon) -> str:
    assert server.url is not None
    return server.url


def bot_session(server: FakeMastodon, token: str) -> Session:
    return Session(base(server), access_token=token, sleep=no_sleep)


@pytest.fixture
def bot(server: FakeMastodon) -> tuple[str, str]:
    account = server.add_account("bot", bot=True)
    return account, server.issue_user_token(account, scopes="read write follow")


# -- posting ---------------------------------------------------------------------------------


async def test_a_post_retried_after_a_reset_after_processing_exists_once(
    server: FakeMastodon, bot: tuple[str, str]
) -> None:
    account, token = bot
    server.inject("/api/v1/statuses", Fault.reset_after_processing(), method="POST")
    async with bot_session(server, token) as masto:
        status = await masto.post_status("hello, once")
    assert server.statuses_of(account) == [status.id]
    posts = [r for r in server.requests if r.method == "POST" and r.path == "/api/v1/statuses"]
    assert len(posts) == 2
    assert posts[0].headers["Idempotency-Key"] == posts[1].headers["Idempotency-Key"]


async def test_every_post_gets_its_own_key(server: FakeMastodon, bot: tuple[str, str]) -> None:
    account, token = bot
    async with bot_session(server, token) as masto:
        await masto.post_status("same text")
        await masto.post_status("same text")
    assert len(server.statuses_of(account)) == 2


async def test_a_given_key_makes_a_repost_the_same_status(
    server: FakeMastodon, bot: tuple[str, str]
) -> None:
    account, token = bot
    async with bot_session(server, token) as masto:
        first = await masto.post_status("reply", idempotency_key="mention-1")
        again = await masto.post_status("reply", idempotency_key="mention-1")
    assert first.id == again.id
    assert server.statuses_of(account) == [first.id]


async def test_a_post_without_key_is_not_retried(
    server: FakeMastodon, bot: tuple[str, str]
) -> None:
    _, token = bot
    server.inject("/api/v1/statuses", Fault.html(502), method="POST")
    async with bot_session(server, token) as masto:
        with pytest.raises(aiomasto.ServerError):
            await masto.request("POST", "/api/v1/statuses", json={"status": "x"})
    assert server.count("POST", "/api/v1/statuses") == 1


async def test_post_status_sends_what_is_given_and_nothing_else(
    server: FakeMastodon, bot: tuple[str, str]
) -> None:
    _, token = bot
    other = server.add_account("alice")
    parent = server.post_status(other, "a question")
    async with bot_session(server, token) as masto:
        status = await masto.post_status(
            "@alice an answer",
            visibility="unlisted",
            in_reply_to=parent,
            spoiler_text="cw",
            language="de",
        )
    sent = json.loads(server.requests[-1].raw_body)
    assert sent == {
        "status": "@alice an answer",
        "visibility": "unlisted",
        "in_reply_to_id": parent,
        "spoiler_text": "cw",
        "language": "de",
    }
    assert status.in_reply_to_id == parent
    assert status.visibility == "unlisted"
    assert status.mentions[0].acct == "alice"
    assert status.sensitive  # a content warning makes it sensitive
    assert "mention" in {kind for _, kind in server.notifications_of(other)}


async def test_a_blank_post_is_unprocessable(server: FakeMastodon, bot: tuple[str, str]) -> None:
    _, token = bot
    async with bot_session(server, token) as masto:
        with pytest.raises(aiomasto.Unprocessable) as info:
            await masto.post_status("   ")
    assert info.value.error == "Validation failed: Text can't be blank"


async def test_a_scheduled_post_is_a_scheduled_status(
    server: FakeMastodon, bot: tuple[str, str]
) -> None:
    account, token = bot
    async with bot_session(server, token) as masto:
        scheduled = await masto.post_status("later", scheduled_at="2030-01-01T00:00:00Z")
    assert isinstance(scheduled, aiomasto.ScheduledStatus)
    assert scheduled.params.text == "later"
    assert server.statuses_of(account) == []


async def test_a_poll_is_posted(server: FakeMastodon, bot: tuple[str, str]) -> None:
    _, token = bot
    async with bot_session(server, token) as masto:
        status = await masto.post_status(
            "tea or coffee?", poll={"options": ["tea", "coffee"], "expires_in": 3600}
        )
    assert status.poll is not None
    assert [o.title for o in status.poll.options] == ["tea", "coffee"]


# -- media -----------------------------------------------------------------------------------


async def test_slow_media_is_polled_then_posted(
    server: FakeMastodon, bot: tuple[str, str], tmp_path: object
) -> None:
    _, token = bot
    server.slow_media(polls=3)
    SLEPT.clear()
    async with bot_session(server, token) as masto:
        media = await masto.upload_media(
            b"\x89PNG\r\n\x1a\n", filename="cat.png", description="a cat", focus=(0.5, -0.25)
        )
        status = await masto.post_status("look", media=[media])
    assert media.url is not None
    assert server.count("GET", "/api/v1/media/") == 4  # 206, 206, 206, 200
    assert SLEPT == [1.0, 1.0, 1.0, 1.0]
    assert status.media_attachments[0].id == media.id
    assert status.media_attachments[0].description == "a cat"
    upload = next(r for r in server.requests if r.path == "/api/v2/media")
    assert ("focus", "0.5,-0.25") in upload.form
    assert upload.headers["Content-Type"].startswith("multipart/form-data; boundary=")


async def test_media_still_processing_after_the_bound_is_a_clear_error(
    server: FakeMastodon, bot: tuple[str, str]
) -> None:
    _, token = bot
    server.slow_media(polls=100)
    async with bot_session(server, token) as masto:
        with pytest.raises(aiomasto.MediaNotReady) as info:
            await masto.upload_media(b"GIF89a", filename="a.gif", max_polls=2)
        with pytest.raises(aiomasto.Unprocessable):
            await masto.post_status("too early", media=[info.value.media_id])
    assert server.count("GET", "/api/v1/media/") == 2


async def test_a_file_path_is_read_and_named(
    server: FakeMastodon, bot: tuple[str, str], tmp_path: pytest.TempPathFactory
) -> None:
    _, token = bot
    path = tmp_path / "photo.jpg"  # type: ignore[operator]
    path.write_bytes(b"\xff\xd8\xff")
    async with bot_session(server, token) as masto:
        media = await masto.upload_media(path)
    assert media.type == "image"
    assert media.url is not None
    assert media.url.endswith("/photo.jpg")


# -- statuses acted on -----------------------------------------------------------------------


async def test_favourite_boost_bookmark_and_undo(
    server: FakeMastodon, bot: tuple[str, str]
) -> None:
    _account, token = bot
    alice = server.add_account("alice")
    target = server.post_status(alice, "nice post")
    async with bot_session(server, token) as masto:
        favourited = await masto.favourite(target)
        boost = await masto.boost(target)
        bookmarked = await masto.bookmark(target)
        bookmarks = [s.id async for s in masto.bookmarks()]
        favourites = [s.id async for s in masto.favourites()]
        undone = [
            await masto.unfavourite(target),
            await masto.unboost(target),
            await masto.unbookmark(target),
        ]
        shown = await masto.status(target)
    assert favourited.favourited is True
    assert favourited.favourites_count == 1
    assert boost.reblog is not None
    assert boost.reblog.id == target
    assert bookmarked.bookmarked is True
    assert bookmarks == favourites == [target]
    assert (shown.favourited, shown.reblogged, shown.bookmarked) == (False, False, False)
    assert undone[-1].bookmarked is False
    kinds = [kind for _, kind in server.notifications_of(alice)]
    assert kinds == ["favourite", "reblog"]


async def test_edit_history_source_and_delete(server: FakeMastodon, bot: tuple[str, str]) -> None:
    account, token = bot
    async with bot_session(server, token) as masto:
        status = await masto.post_status("frist")
        edited = await masto.edit_status(status, "first")
        history = await masto.status_history(status)
        source = await masto.status_source(status)
        deleted = await masto.delete_status(status)
        with pytest.raises(aiomasto.NotFound):
            await masto.status(status.id)
    assert edited.edited_at is not None
    assert [h.content for h in history] == ["<p>frist</p>", "<p>first</p>"]
    assert source.text == "first"
    assert deleted.text == "first"
    assert server.statuses_of(account) == []


async def test_someone_elses_status_cannot_be_edited_or_deleted(
    server: FakeMastodon, bot: tuple[str, str]
) -> None:
    _, token = bot
    alice = server.add_account("alice")
    theirs = server.post_status(alice, "mine")
    async with bot_session(server, token) as masto:
        with pytest.raises(aiomasto.Forbidden):
            await masto.edit_status(theirs, "yours now")
        with pytest.raises(aiomasto.NotFound):
            await masto.delete_status(theirs)
    assert server.status_text(theirs) == "mine"


async def test_context_gives_the_thread(server: FakeMastodon, bot: tuple[str, str]) -> None:
    _, token = bot
    alice = server.add_account("alice")
    root = server.post_status(alice, "root")
    middle = server.post_status(alice, "middle", in_reply_to_id=root)
    leaf = server.post_status(alice, "leaf", in_reply_to_id=middle)
    async with bot_session(server, token) as masto:
        context = await masto.context(middle)
    assert [s.id for s in context.ancestors] == [root]
    assert [s.id for s in context.descendants] == [leaf]


# -- relationships ---------------------------------------------------------------------------


async def test_relationship_actions_show_in_the_relationship(
    server: FakeMastodon, bot: tuple[str, str]
) -> None:
    account, token = bot
    alice = server.add_account("alice")
    bob = server.add_account("bob")
    server.follow(bob, account)
    async with bot_session(server, token) as masto:
        followed = await masto.follow(alice, reblogs=False, notify=True, languages=["en"])
        endorsed = await masto.endorse(alice)
        unendorsed = await masto.unendorse(alice)
        muted = await masto.mute(alice, duration=3600, notifications=False)
        unmuted = await masto.unmute(alice)
        unfollowed = await masto.unfollow(alice)
        removed = await masto.remove_from_followers(bob)
        blocked = await masto.block(bob)
        unblocked = await masto.unblock(bob)
    assert (followed.following, followed.showing_reblogs, followed.notifying) == (True, False, True)
    assert followed.languages == ("en",)
    assert endorsed.endorsed
    assert not unendorsed.endorsed
    assert muted.muting
    assert not muted.muting_notifications
    assert not unmuted.muting
    assert not unfollowed.following
    assert not removed.followed_by
    assert blocked.blocking
    assert not unblocked.blocking
    assert server.followers_of(account) == []
    assert [kind for _, kind in server.notifications_of(alice)] == ["follow"]


async def test_accounts_in_one_batch_in_the_order_asked(
    server: FakeMastodon, bot: tuple[str, str]
) -> None:
    _, token = bot
    ids = [server.add_account(f"user{i}") for i in range(45)]
    wanted = [*reversed(ids), "999999"]
    async with bot_session(server, token) as masto:
        accounts = await masto.accounts(wanted)
    assert [a.id for a in accounts] == list(reversed(ids))
    assert server.count("GET", "/api/v1/accounts") == 2  # chunks of 40
    request = next(r for r in server.requests if r.path == "/api/v1/accounts")
    assert [k for k, _ in request.query] == ["id[]"] * 40


async def test_accounts_fall_back_to_one_request_each_without_the_batch() -> None:
    server = FakeMastodon(flavor="gotosocial")
    ids = [server.add_account(f"user{i}") for i in range(3)]
    token = server.issue_user_token(ids[0], scopes="read")
    async with server.run(), bot_session(server, token) as masto:
        first = await masto.accounts(ids)
        second = await masto.accounts(ids[:1])
    assert [a.id for a in first] == ids
    assert [a.id for a in second] == ids[:1]
    batch = [r for r in server.requests if r.path == "/api/v1/accounts"]
    assert len(batch) == 1  # the 404 is remembered


# -- notifications ---------------------------------------------------------------------------


async def test_notifications_filter_page_dismiss_and_clear(
    server: FakeMastodon, bot: tuple[str, str]
) -> None:
    account, token = bot
    fans = [server.add_account(f"fan{i}") for i in range(5)]
    for fan in fans:
        server.follow(fan, account)
        server.post_status(fan, "@bot hi")
    async with bot_session(server, token) as masto:
        mentions = [n async for n in masto.notifications(types=["mention"], limit=2)]
        follows = [n async for n in masto.notifications(exclude_types=["mention"])]
        one = await masto.notification(mentions[0].id)
        await masto.dismiss_notification(one.id)
        left = [n.id async for n in masto.notifications()]
        await masto.clear_notifications()
        none_left = [n async for n in masto.notifications()]
    assert [n.type for n in mentions] == ["mention"] * 5
    assert [n.account.id for n in mentions] == list(reversed(fans))
    assert all(n.status is not None and n.status.mentions[0].id == account for n in mentions)
    assert {n.type for n in follows} == {"follow"}
    assert len(follows) == 5
    assert one.id not in left
    assert len(left) == 9
    assert none_left == []
    paged = [r for r in server.requests if r.path == "/api/v1/notifications"]
    assert ("types[]", "mention") in paged[1].query  # the Link carried the filter


async def test_notify_makes_any_type(server: FakeMastodon, bot: tuple[str, str]) -> None:
    account, token = bot
    alice = server.add_account("alice")
    server.notify(account, "admin.sign_up", alice)
    async with bot_session(server, token) as masto:
        [notification] = [n async for n in masto.notifications()]
    assert notification.type == "admin.sign_up"
    assert notification.account.id == alice


# -- instance and timelines ------------------------------------------------------------------


@pytest.mark.parametrize("flavor", ["mastodon", "akkoma"])
async def test_instance_info_v2_or_v1(flavor: str) -> None:
    server = FakeMastodon(flavor=flavor)  # type: ignore[arg-type]
    async with server.run() as url, Session(url) as masto:
        info = await masto.instance_info()
    assert info.configuration.urls.streaming == "ws" + url.removeprefix("http")
    assert info.configuration.statuses.max_characters == 500
    assert server.count("GET", "/api/v1/instance") == (1 if flavor == "akkoma" else 0)


async def test_home_timeline_pages_followed_accounts(
    server: FakeMastodon, bot: tuple[str, str]
) -> None:
    account, token = bot
    alice = server.add_account("alice")
    stranger = server.add_account("stranger")
    server.follow(account, alice)
    posted = [server.post_status(alice, f"post {i}") for i in range(25)]
    server.post_status(stranger, "not followed")
    async with bot_session(server, token) as masto:
        home = [s.id async for s in masto.home_timeline()]
        public = [s.id async for s in masto.public_timeline(local=True, limit=40)]
    assert home == list(reversed(posted))
    assert len(public) == 26
    assert server.count("GET", "/api/v1/timelines/home") == 2


# -- the typed door --------------------------------------------------------------------------


async def test_request_sends_params_data_json_files_and_headers(
    server: FakeMastodon, bot: tuple[str, str]
) -> None:
    _, token = bot
    async with bot_session(server, token) as masto:
        await masto.request(
            "GET", "/api/v1/notifications", params={"types": ["mention", "follow"], "x": None}
        )
        await masto.request(
            "POST", "/api/v1/statuses", data={"status": "form", "media_ids": [], "sensitive": True}
        )
        await masto.request("POST", "/api/v1/statuses", json={"status": "json"})
        await masto.request(
            "POST",
            "/api/v2/media",
            data={"description": "d"},
            files={"file": ("a.png", b"\x89PNG", "image/png")},
            headers={"X-Trace": "1"},
        )
    get, form, body, upload = server.requests[-4:]
    assert get.query == (("types[]", "mention"), ("types[]", "follow"))
    assert form.form == (("status", "form"), ("sensitive", "true"))
    assert form.headers["Content-Type"] == "application/x-www-form-urlencoded"
    assert json.loads(body.raw_body) == {"status": "json"}
    assert upload.form == (("description", "d"), ("file", "<a.png: 4 bytes>"))
    assert upload.headers["X-Trace"] == "1"


@pytest.mark.parametrize("header", ["Authorization", "host", "Content-Length"])
async def test_request_refuses_the_sessions_own_headers(
    server: FakeMastodon, bot: tuple[str, str], header: str
) -> None:
    _, token = bot
    async with bot_session(server, token) as masto:
        with pytest.raises(aiomasto.ConfigurationError, match=header):
            await masto.request("GET", "/api/v1/notifications", headers={header: "x"})
    assert server.requests == []


async def test_one_body_at_a_time(server: FakeMastodon, bot: tuple[str, str]) -> None:
    _, token = bot
    async with bot_session(server, token) as masto:
        with pytest.raises(aiomasto.ConfigurationError):
            await masto.request("POST", "/api/v1/statuses", data={"a": "1"}, json={"b": 2})
        with pytest.raises(aiomasto.ConfigurationError):
            await masto.request("POST", "/api/v2/media", json={}, files={"file": b"x"})


async def test_get_post_and_paginate_decode_entities(
    server: FakeMastodon, bot: tuple[str, str]
) -> None:
    account, token = bot
    alice = server.add_account("alice")
    for i in range(3):
        server.post_status(alice, f"@bot {i}")
    async with bot_session(server, token) as masto:
        me = await masto.get(Account, f"/api/v1/accounts/{account}")
        posted = await masto.post(Status, "/api/v1/statuses", json={"status": "typed"})
        pager = masto.paginate(Notification, "/api/v1/notifications", params={"limit": 1})
        notes = [n async for n in pager]
    assert me.id == account
    assert posted.content == "<p>typed</p>"
    assert len(notes) == 3
    assert pager.pages_fetched == 4  # a full page always has a next link


async def test_the_token_never_shows_in_errors(server: FakeMastodon) -> None:
    alice = server.add_account("alice")
    token = server.issue_user_token(alice, scopes="read")  # no write scope
    async with bot_session(server, token) as masto:
        with pytest.raises(aiomasto.Forbidden) as info:
            await masto.post_status("not allowed")
    assert token not in str(info.value)
    assert token not in repr(info.value)
    assert info.value.error == "This action is outside the authorized scopes"
