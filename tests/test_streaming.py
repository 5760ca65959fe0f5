"""masto.stream(): the streaming WebSocket against the fake server, over loopback."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable

import aiohttp
import pytest
from virtualtime import VirtualTime
from yarl import URL

from aiomasto import (
    BadRequest,
    ConfigurationError,
    ConnectionFailed,
    OriginError,
    Session,
    Unauthorized,
)
from aiomasto._urls import streaming_origin
from aiomasto.entities import Notification, Status
from aiomasto.streaming import Reconnecting, Skip, Stream, StreamEvent, decode_message
from aiomasto.testing import FakeMastodon, Fault


async def until(condition: Callable[[], bool]) -> None:
    """Wait for the server side to catch up (the per-test timeout bounds it)."""
    while not condition():  # noqa: ASYNC110 - the server's view, from another task
        await asyncio.sleep(0.005)


class Reader:
    """Iterates a stream in a task of its own, so the test can act on the server meanwhile."""

    def __init__(self, stream: Stream) -> None:
        self.stream = stream
        self.events: list[StreamEvent] = []
        self.error: BaseException | None = None
        self.task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        try:
            async for event in self.stream:
                self.events.append(event)
        except Exception as exc:
            self.error = exc

    async def wait_for(self, n: int) -> list[StreamEvent]:
        await until(lambda: len(self.events) >= n or self.task.done())
        return self.events

    async def stop(self) -> None:
        self.task.cancel()
        await asyncio.gather(self.task, return_exceptions=True)


@pytest.fixture
def alice(server: FakeMastodon) -> tuple[str, str]:
    account = server.add_account("alice")
    return account, server.issue_user_token(account)


def session(server: FakeMastodon, token: str, **kwargs: object) -> Session:
    assert server.url is not None
    return Session(server.url, access_token=token, **kwargs)  # type: ignore[arg-type]


async def test_events_arrive_decoded_in_order(server: FakeMastodon, alice: tuple[str, str]) -> None:
    account, token = alice
    async with session(server, token) as masto:
        reader = Reader(masto.stream("user", gap_fill=False))
        await until(lambda: server.stream_connections == 1)
        server.push("user", "delete", "109", account_id=account)
        server.push("user", "filters_changed", account_id=account)
        server.push("user", "announcement.reaction", {"name": "x", "count": 1}, account_id=account)
        events = await reader.wait_for(3)
        await reader.stop()
    assert [(e.event, e.payload, e.stream) for e in events] == [
        ("delete", "109", ("user",)),
        ("filters_changed", None, ("user",)),
        ("announcement.reaction", {"name": "x", "count": 1}, ("user",)),
    ]


async def test_another_accounts_user_stream_is_not_ours(
    server: FakeMastodon, alice: tuple[str, str]
) -> None:
    account, token = alice
    bob = server.add_account("bob")
    async with session(server, token) as masto:
        reader = Reader(masto.stream("user", gap_fill=False))
        await until(lambda: server.stream_connections == 1)
        assert server.push("user", "delete", "1", account_id=bob) == 0
        server.push("user", "delete", "2", account_id=account)
        events = await reader.wait_for(1)
        await reader.stop()
    assert [e.payload for e in events] == ["2"]


async def test_hashtag_and_list_streams_name_their_target(
    server: FakeMastodon, alice: tuple[str, str]
) -> None:
    _, token = alice
    async with session(server, token) as masto:
        tags = Reader(masto.stream("hashtag", tag="#Python"))
        lists = Reader(masto.stream("list", list_id=12))
        await until(lambda: server.stream_connections == 2)
        server.push("hashtag", "delete", "1", tag="python")
        server.push("list", "delete", "2", list_id="12")
        [tag_event] = await tags.wait_for(1)
        [list_event] = await lists.wait_for(1)
        await tags.stop()
        await lists.stop()
    assert tag_event.stream == ("hashtag", "python")
    assert list_event.stream == ("list", "12")
    sent = [r for r in server.requests if r.path == "/api/v1/streaming"]
    assert {tuple(sorted(r.query)) for r in sent} == {
        (("stream", "hashtag"), ("tag", "Python")),
        (("list", "12"), ("stream", "list")),
    }


def test_stream_arguments_are_checked() -> None:
    masto = Session("https://mastodon.example", access_token="t")
    with pytest.raises(ConfigurationError, match="unknown stream"):
        masto.stream("home")  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="needs tag"):
        masto.stream("hashtag")
    with pytest.raises(ConfigurationError, match="needs list_id"):
        masto.stream("list")
    with pytest.raises(ConfigurationError, match="tag= is for"):
        masto.stream("user", tag="x")
    with pytest.raises(ConfigurationError, match="max_reconnects"):
        masto.stream("user", max_reconnects=-1)


async def test_the_token_travels_in_the_header_never_in_a_url(
    server: FakeMastodon, alice: tuple[str, str], caplog: pytest.LogCaptureFixture
) -> None:
    account, token = alice
    caplog.set_level(logging.DEBUG, logger="aiomasto")
    async with session(server, token) as masto:
        reader = Reader(masto.stream("user", gap_fill=False))
        await until(lambda: server.stream_connections == 1)
        server.push("user", "delete", "1", account_id=account)
        await reader.wait_for(1)
        server.drop_streams()
        await until(lambda: server.streams_opened == 2 and server.stream_connections == 1)
        await reader.stop()
    sent = [r for r in server.requests if r.path == "/api/v1/streaming"]
    assert len(sent) == 2
    for request in sent:
        assert "access_token" not in dict(request.query)
        assert token not in request.url
        assert request.headers["Authorization"] == f"Bearer {token}"
        assert "Sec-WebSocket-Protocol" not in request.headers
    assert token not in caplog.text
    assert any("/api/v1/streaming" in r.getMessage() for r in caplog.records)


async def test_a_bad_token_is_unauthorized(server: FakeMastodon) -> None:
    async with session(server, "not-a-token") as masto:
        with pytest.raises(Unauthorized) as caught:
            async for _ in masto.stream("user", gap_fill=False):
                pass
    assert caught.value.status == 401
    assert "not-a-token" not in str(caught.value)


async def test_the_fake_takes_the_token_from_protocol_or_query(
    server: FakeMastodon, alice: tuple[str, str]
) -> None:
    account, token = alice
    url = f"{server.url}/api/v1/streaming"
    async with aiohttp.ClientSession() as http:
        async with http.ws_connect(url, params={"stream": "user"}, protocols=(token,)) as ws:
            assert ws.protocol == token
            await until(lambda: server.stream_connections == 1)
            server.push("user", "delete", "7", account_id=account)
            message = await ws.receive_json()
        assert message == {"stream": ["user"], "event": "delete", "payload": "7"}
        async with http.ws_connect(url, params={"access_token": token}) as ws:
            await ws.send_json({"type": "subscribe", "stream": "nope"})
            assert await ws.receive_json() == {"error": "Unknown stream type", "status": 400}
        for protocols in ((), ("wrong",)):
            with pytest.raises(aiohttp.WSServerHandshakeError) as caught:
                await http.ws_connect(url, protocols=protocols)
            assert caught.value.status == 401


async def test_a_dropped_stream_reconnects_with_backoff(
    server: FakeMastodon, alice: tuple[str, str]
) -> None:
    _, token = alice
    vt = VirtualTime()
    told: list[Reconnecting] = []
    async with session(server, token, sleep=vt.sleep, clock=vt.clock) as masto:
        stream = masto.stream("public", on_reconnect=told.append)
        reader = Reader(stream)
        for round_ in range(4):
            await until(
                lambda r=round_: (
                    server.stream_connections == 1  # type: ignore[misc]
                    and server.streams_opened == r + 1
                )
            )
            server.push("public", "delete", str(round_))
            await reader.wait_for(round_ + 1)
            server.drop_streams()
        await until(lambda: server.streams_opened == 5 and server.stream_connections == 1)
        await reader.stop()
    assert [e.payload for e in reader.events] == ["0", "1", "2", "3"]
    assert [r.attempt for r in told] == [1, 2, 3, 4]
    # 0.5 s doubling, each scaled by a factor between 0.5 and 1.
    for r, cap in zip(told, (0.5, 1.0, 2.0, 4.0), strict=True):
        assert cap / 2 <= r.seconds <= cap
    assert stream.reconnects == 4


async def test_the_backoff_starts_over_after_a_healthy_minute(
    server: FakeMastodon, alice: tuple[str, str]
) -> None:
    _, token = alice
    vt = VirtualTime()
    told: list[Reconnecting] = []
    async with session(server, token, sleep=vt.sleep, clock=vt.clock) as masto:
        reader = Reader(masto.stream("public", on_reconnect=told.append))
        for opened in (1, 2, 3):
            await until(
                lambda o=opened: (
                    server.streams_opened == o  # type: ignore[misc]
                    and server.stream_connections == 1
                )
            )
            if opened == 3:
                vt.now += 61  # the third connection stays up for a minute
            server.drop_streams()
        await until(lambda: server.streams_opened == 4)
        await reader.stop()
    assert [r.attempt for r in told] == [1, 2, 1]


async def test_without_reconnect_a_drop_ends_the_iteration_with_an_error(
    server: FakeMastodon, alice: tuple[str, str]
) -> None:
    _, token = alice
    async with session(server, token) as masto:
        for stream in (
            masto.stream("public", reconnect=False),
            masto.stream("public", max_reconnects=0),
        ):
            reader = Reader(stream)
            await until(lambda: server.stream_connections == 1)
            server.drop_streams()
            await reader.task
            assert isinstance(reader.error, ConnectionFailed)
            assert "/api/v1/streaming" in str(reader.error)
            await until(lambda: server.stream_connections == 0)


async def test_unanswered_pings_reconnect(server: FakeMastodon, alice: tuple[str, str]) -> None:
    _, token = alice
    vt = VirtualTime()
    told: list[Reconnecting] = []
    async with session(server, token, sleep=vt.sleep, clock=vt.clock) as masto:
        reader = Reader(masto.stream("public", heartbeat=0.05, on_reconnect=told.append))
        await until(lambda: server.stream_connections == 1)
        server.stall_streams()
        await until(lambda: len(told) >= 1)
        server.stall_streams(False)
        await until(lambda: server.streams_opened >= 2 and server.stream_connections == 1)
        server.push("public", "delete", "after")
        await reader.wait_for(1)
        await reader.stop()
    assert "pings" in told[0].error
    assert reader.events[-1].payload == "after"


async def test_cancelling_the_reader_leaves_nothing_behind(
    server: FakeMastodon, alice: tuple[str, str]
) -> None:
    account, token = alice
    before = asyncio.all_tasks()
    async with session(server, token) as masto:
        reader = Reader(masto.stream("user", gap_fill=False))
        await until(lambda: server.stream_connections == 1)
        await reader.stop()
        assert reader.task.cancelled()
        await until(lambda: server.stream_connections == 0)
        assert asyncio.all_tasks() == before
        # A stream left open by a loop that broke out early is closed with the Session.
        pusher = asyncio.create_task(_push_when_connected(server, account))
        async for _ in masto.stream("user", gap_fill=False):  # pragma: no branch
            break
        await pusher
        assert server.stream_connections == 1
    await until(lambda: server.stream_connections == 0)


async def test_breaking_out_of_async_with_closes_the_stream(
    server: FakeMastodon, alice: tuple[str, str]
) -> None:
    account, token = alice
    async with session(server, token) as masto:
        async with masto.stream("user", gap_fill=False) as events:
            server_ready = asyncio.create_task(until(lambda: server.stream_connections == 1))
            pusher = asyncio.create_task(_push_when_connected(server, account))
            async for event in events:
                assert event.payload == "1"
                break
            await asyncio.gather(server_ready, pusher)
        await until(lambda: server.stream_connections == 0)
        assert repr(events).endswith("(closed)>")


async def _push_when_connected(server: FakeMastodon, account: str) -> None:
    await until(lambda: server.stream_connections == 1)
    server.push("user", "delete", "1", account_id=account)


async def test_hostile_messages_are_skipped_and_logged(
    server: FakeMastodon, alice: tuple[str, str], caplog: pytest.LogCaptureFixture
) -> None:
    _, token = alice
    vt = VirtualTime()
    async with session(server, token, sleep=vt.sleep, clock=vt.clock) as masto:
        stream = masto.stream("public", max_message_size=4096)
        reader = Reader(stream)
        await until(lambda: server.stream_connections == 1)
        for text in (
            "not json {",
            "[1, 2]",
            json.dumps({"stream": ["public"], "payload": "x"}),
            json.dumps({"event": "delete", "payload": {"id": 1}}),
            json.dumps({"event": "update", "payload": "{not json"}),
            json.dumps({"event": "notification", "payload": json.dumps({"id": "5"})}),
            json.dumps({"event": "status.update", "payload": json.dumps([1])}),
            json.dumps({"event": "x" * 10, "stream": "not a list", "payload": "[1"}),
        ):
            server.push_raw(text)
        [odd] = await reader.wait_for(1)
        assert (odd.event, odd.payload, odd.stream) == ("x" * 10, "[1", ())
        # Larger than max_message_size: the connection is dropped and opened again.
        server.push_raw(json.dumps({"event": "delete", "payload": "9" * 10_000}))
        await until(lambda: server.streams_opened == 2 and server.stream_connections == 1)
        server.push_raw(json.dumps({"event": "delete", "payload": "2"}))
        await reader.wait_for(2)
        await reader.stop()
    assert reader.error is None
    assert [e.payload for e in reader.events] == ["[1", "2"]
    assert stream.skipped == 7
    warned = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warned) == 8
    assert any("its payload is not a Notification" in w for w in warned)
    assert any("not JSON" in w for w in warned)
    assert any("larger than max_message_size" in r.getMessage() for r in caplog.records)


async def test_a_stream_error_message_is_raised_as_its_http_error(
    server: FakeMastodon, alice: tuple[str, str]
) -> None:
    _, token = alice
    async with session(server, token) as masto:
        reader = Reader(masto.stream("public"))
        await until(lambda: server.stream_connections == 1)
        server.push_raw(json.dumps({"error": "Not authorized to stream this list", "status": 400}))
        await reader.task
        await until(lambda: server.stream_connections == 0)
    assert isinstance(reader.error, BadRequest)
    assert reader.error.error == "Not authorized to stream this list"


def test_the_announced_streaming_origin_is_checked() -> None:
    # An instance announcing a plain ws:// URL on another host gets no token sent to it.
    instance = URL("https://m.example")
    for announced, expected in (
        ("wss://streaming.m.example", "wss://streaming.m.example"),
        ("https://streaming.m.example:443/", "wss://streaming.m.example"),
        ("wss://s.example/prefix/", "wss://s.example/prefix"),
        (None, "wss://m.example"),
        ("", "wss://m.example"),
        ("ws://127.0.0.1:4000", "ws://127.0.0.1:4000"),
    ):
        assert str(streaming_origin(announced, instance, allow_insecure=False)) == expected
    for hostile in (
        "ws://streaming.m.example",
        "ftp://x.example",
        "wss://u:p@s.example",
        "wss://s.example/?access_token=x",
        "not a url",
    ):
        with pytest.raises(OriginError):
            streaming_origin(hostile, instance, allow_insecure=False)
    assert str(streaming_origin("ws://s.example", instance, allow_insecure=True)) == (
        "ws://s.example"
    )


# The WebSocket examples of Mastodon's docs (methods/streaming.md), the Status shortened.
DOCS_UPDATE = json.dumps(
    {
        "stream": ["public"],
        "event": "update",
        "payload": json.dumps(
            {
                "id": "108913983692647032",
                "created_at": "2022-08-30T21:38:22.000Z",
                "in_reply_to_id": "108913981098896721",
                "in_reply_to_account_id": "1081104",
                "sensitive": False,
                "spoiler_text": "",
                "visibility": "public",
                "language": "en",
                "uri": "https://fosstodon.org/users/tobtobxx/statuses/108913983628474640",
                "url": "https://fosstodon.org/@tobtobxx/108913983628474640",
                "replies_count": 0,
                "reblogs_count": 0,
                "favourites_count": 0,
                "edited_at": None,
                "content": "<p>And now I can't exit the inner nvim</p>",
                "reblog": None,
                "account": {
                    "id": "1081104",
                    "username": "tobtobxx",
                    "acct": "tobtobxx@fosstodon.org",
                    "display_name": "TobTobXX",
                    "locked": False,
                    "bot": False,
                    "discoverable": True,
                    "group": False,
                    "created_at": "2020-01-10T00:00:00.000Z",
                    "note": "<p>Young tech enthusiast.</p>",
                    "url": "https://fosstodon.org/@tobtobxx",
                    "avatar": "https://files.mastodon.social/cache/accounts/avatars/001/081/104/original/230a8d0fb54e249b.png",
                    "avatar_static": "https://files.mastodon.social/cache/accounts/avatars/001/081/104/original/230a8d0fb54e249b.png",
                    "header": "https://static-cdn.mastodon.social/headers/original/missing.png",
                    "header_static": "https://static-cdn.mastodon.social/headers/original/missing.png",
                    "followers_count": 150,
                    "following_count": 216,
                    "statuses_count": 2447,
                    "last_status_at": "2022-08-30",
                    "emojis": [],
                    "fields": [],
                },
                "media_attachments": [],
                "mentions": [],
                "tags": [],
                "emojis": [],
                "card": None,
                "poll": None,
            }
        ),
    }
)
DOCS_DELETE = '{"stream": ["public"], "event": "delete", "payload": "106692867363994015"}'
DOCS_FILTERS = '{"stream": ["user"], "event": "filters_changed"}'


def test_the_docs_examples_decode() -> None:
    update = decode_message(DOCS_UPDATE, {"update": Status})
    assert isinstance(update, StreamEvent)
    assert (update.event, update.stream) == ("update", ("public",))
    assert isinstance(update.payload, Status)
    assert update.payload.id == "108913983692647032"
    assert update.payload.reblog is None
    raw = decode_message(DOCS_UPDATE, {})
    assert isinstance(raw, StreamEvent)
    assert raw.payload["id"] == "108913983692647032"
    assert decode_message(DOCS_DELETE, {}) == StreamEvent(
        event="delete", payload="106692867363994015", stream=("public",)
    )
    assert decode_message(DOCS_FILTERS, {}) == StreamEvent(
        event="filters_changed", payload=None, stream=("user",)
    )
    undefined = '{"stream": ["user"], "event": "filters_changed", "payload": "undefined"}'
    assert decode_message(undefined, {}) == decode_message(DOCS_FILTERS, {})


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("", "not JSON"),
        ("null", "not a JSON object"),
        ('"update"', "not a JSON object"),
        ('{"event": 3}', "without an event name"),
        ('{"event": ""}', "without an event name"),
        ('{"event": "delete", "payload": true}', "not an id"),
        ('{"event": "delete", "payload": [1]}', "not an id"),
        ('{"event": "notification", "payload": "{"}', "not JSON"),
        ('{"event": "status.update", "payload": "nope"}', "not JSON"),
        ("[" * 100_000 + "]" * 100_000, "nested too deeply"),
        (json.dumps({"event": "x", "payload": "[" * 100_000 + "]" * 100_000}), "too deeply"),
        (json.dumps({"event": "update", "payload": "[" * 100_000}), "not a Status"),
    ],
)
def test_unreadable_messages_say_why_they_are_skipped(text: str, reason: str) -> None:
    skipped = decode_message(text, {"update": Status})
    assert isinstance(skipped, Skip)
    assert reason in skipped.reason


def test_a_server_error_message_raises() -> None:
    with pytest.raises(Unauthorized):
        decode_message(
            '{"error": "Access token does not cover required scopes", "status": 401}', {}
        )
    with pytest.raises(BadRequest, match="Unknown stream type"):
        decode_message('{"error": "Unknown stream type", "status": "x"}', {})


async def test_every_notification_arrives_once_through_five_drops(
    server: FakeMastodon, alice: tuple[str, str]
) -> None:
    account, token = alice
    bob = server.add_account("bob")
    vt = VirtualTime()
    drops_at = (20, 60, 100, 140, 180)
    # The gap fills are answered late, so what is made meanwhile reaches the client twice:
    # on the new socket and in the page fetched.
    server.inject("/api/v1/notifications", Fault.slow(0.02), times=10)
    opened = 0
    async with session(server, token, sleep=vt.sleep, clock=vt.clock) as masto:
        stream = masto.stream("user")
        reader = Reader(stream)
        await until(lambda: server.stream_connections == 1)
        for i in range(200):
            if i in drops_at:
                # Each drop cuts a live connection; the notifications made while the client
                # is away, connecting again or filling the gap reach it once all the same.
                await until(lambda: server.stream_connections == 1)
                opened = server.streams_opened
                assert server.drop_streams() == 1
            elif i - 3 in drops_at:
                await until(lambda o=opened: server.streams_opened > o)  # type: ignore[misc]
            server.notify(account, "mention" if i % 2 else "favourite", bob)
            await asyncio.sleep(0)
        await until(
            lambda: (
                len({e.payload.id for e in reader.events if e.event == "notification"}) >= 200
                or reader.task.done()
            )
        )
        # A sentinel after everything: a duplicate still on its way would come before it.
        await until(lambda: server.stream_connections == 1)
        server.push("user", "delete", "sentinel", account_id=account)
        await until(lambda: reader.events[-1].payload == "sentinel" or reader.task.done())
        await reader.stop()
    assert reader.error is None
    delivered = [e.payload.id for e in reader.events if e.event == "notification"]
    expected = [notification_id for notification_id, _ in server.notifications_of(account)]
    assert len(expected) == 200
    assert sorted(delivered) == sorted(expected)  # each exactly once
    assert stream.reconnects == 5
    assert server.streams_opened == 6
    filled = [e for e in reader.events if e.gap_fill]
    assert filled, "the drops should have cost the stream some notifications"
    assert all(isinstance(e.payload, Notification) for e in reader.events[:-1])


async def test_the_fake_streams_the_notifications_it_makes(
    server: FakeMastodon, alice: tuple[str, str]
) -> None:
    account, token = alice
    bob = server.add_account("bob")
    async with session(server, token) as masto:
        user = Reader(masto.stream("user"))
        only = Reader(masto.stream("user:notification"))
        await until(lambda: server.stream_connections == 2)
        status_id = server.post_status(bob, "@alice hello")
        [mention] = await user.wait_for(1)
        [same] = await only.wait_for(1)
        await user.stop()
        await only.stop()
    assert isinstance(mention.payload, Notification)
    assert mention.payload.type == "mention"
    assert mention.payload.status is not None
    assert mention.payload.status.id == status_id
    assert mention.payload.account.id == bob
    assert (mention.stream, same.stream) == (("user",), ("user:notification",))
    assert same.payload == mention.payload
    assert [i for i, _ in server.notifications_of(account)] == [mention.payload.id]


async def test_the_fake_streams_new_statuses_to_home_and_public_streams(
    server: FakeMastodon, alice: tuple[str, str]
) -> None:
    account, token = alice
    bob = server.add_account("bob")
    carol = server.add_account("carol")
    server.follow(account, bob)
    async with session(server, token) as masto:
        home = Reader(masto.stream("user", gap_fill=False))
        public = Reader(masto.stream("public:local"))
        tag = Reader(masto.stream("hashtag", tag="bots"))
        await until(lambda: server.stream_connections == 3)
        unfollowed = server.post_status(carol, "not followed, not tagged")
        server.post_status(carol, "only followers #bots", visibility="private")
        posted = server.post_status(bob, "hello #Bots")
        [update] = await home.wait_for(1)
        local = await public.wait_for(2)
        [tagged] = await tag.wait_for(1)
        for reader in (home, public, tag):
            await reader.stop()
    assert isinstance(update.payload, Status)
    assert (update.event, update.payload.id, update.stream) == ("update", posted, ("user",))
    assert [e.payload.id for e in local] == [unfollowed, posted]  # not the private one
    assert (tagged.payload.id, tagged.stream) == (posted, ("hashtag", "bots"))
