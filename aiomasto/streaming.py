"""Mastodon's streaming API as an async iterator: events in, reconnects and gaps handled.

``async for event in masto.stream("user")`` opens the instance's streaming WebSocket
(``/api/v1/streaming?stream=user``, the token in the ``Authorization`` header), decodes each
message into a :class:`StreamEvent`, and when the connection drops (a reset, a server restart,
pings left unanswered) connects again after a jittered backoff and fetches over REST the
notifications the stream may have missed meanwhile, delivering each exactly once.

What a message from a hostile or broken server does (see ``docs/streaming.md``):

- not JSON, not an object, no ``event`` name, a payload that is not JSON or not the shape of
  its entity: skipped, logged at WARNING, counted in :attr:`Stream.skipped`;
- an event name aiomasto does not know: delivered, its payload as parsed JSON (or the text);
- ``{"error": ..., "status": ...}`` (an unknown stream, a list that is not the user's): raised
  as the :class:`~aiomasto.HTTPError` of that status;
- larger than ``max_message_size``: the connection is dropped and opened again, like any drop.
"""

from __future__ import annotations

import json
import logging
import random
from collections import OrderedDict, deque
from collections.abc import Awaitable, Callable, Mapping
from types import TracebackType
from typing import Any, Literal, Protocol, Self, get_args

from attrs import field, frozen

from ._converter import decode_json
from .errors import (
    ConfigurationError,
    DecodeError,
    MastodonError,
    ResponseTooLarge,
    TransportError,
    error_class_for,
)

__all__ = ["Reconnecting", "Stream", "StreamEvent", "StreamName", "decode_message"]

log = logging.getLogger("aiomasto")

StreamName = Literal[
    "user",
    "user:notification",
    "public",
    "public:local",
    "public:remote",
    "public:media",
    "public:local:media",
    "public:remote:media",
    "hashtag",
    "hashtag:local",
    "list",
    "direct",
]
STREAM_NAMES: frozenset[str] = frozenset(get_args(StreamName))

# Events whose payload is an id, not JSON (Mastodon's docs, "Establishing a WebSocket").
_ID_EVENTS = frozenset({"delete", "announcement.delete"})
# Events whose payload Mastodon documents as JSON (an entity or a hash) inside the string.
_JSON_EVENTS = frozenset(
    {
        "update",
        "status.update",
        "notification",
        "conversation",
        "announcement",
        "announcement.reaction",
    }
)
# Streams that carry the user's notifications, so a reconnect fetches what was missed.
_NOTIFYING = frozenset({"user", "user:notification"})
# Ids seen lately, to deliver an event once when the stream and a gap fill both bring it.
_SEEN_IDS = 4096
# A gap fill reads at most this many pages (of 80) before it gives up with a warning.
_GAP_PAGES = 50


@frozen(kw_only=True)
class StreamEvent:
    """One event of a stream.

    ``event`` is Mastodon's event name; ``payload`` its decoded content: a
    :class:`~aiomasto.entities.Status` for ``update`` and ``status.update``, a
    :class:`~aiomasto.entities.Notification` for ``notification``, the status id (a string)
    for ``delete``, ``None`` for ``filters_changed``, a
    :class:`~aiomasto.entities.Conversation` for ``conversation``, and the parsed JSON (or
    the text) of any other event. ``stream`` names the stream it came from, as the server says
    it (``("user",)``, ``("hashtag", "python")``). ``gap_fill`` is true for a notification
    fetched over REST after a reconnect rather than received on the stream.

    Example::

        async for event in masto.stream("user"):
            if event.event == "notification" and event.payload.type == "mention":
                ...
    """

    event: str
    payload: Any = field(repr=False)
    stream: tuple[str, ...] = ()
    gap_fill: bool = False


@frozen(kw_only=True)
class Reconnecting:
    """Reported to ``on_reconnect`` before a dropped stream is opened again.

    ``attempt`` counts the reconnects since the stream was last healthy (1 for the first),
    ``seconds`` is the backoff before it, ``error`` what ended the connection.
    """

    attempt: int
    seconds: float
    error: str


ReconnectHook = Callable[[Reconnecting], Awaitable[None] | None]


@frozen(kw_only=True)
class Skip:
    """A message that is not an event to deliver, and why (for the log)."""

    reason: str


def decode_message(
    text: str, decoders: Mapping[str, type[Any]], *, url: str = ""
) -> StreamEvent | Skip:
    """One WebSocket message as a :class:`StreamEvent`, or why it is skipped (pure).

    ``decoders`` maps event names to the entity their payload decodes into. The payload is a
    JSON document inside a JSON string (Mastodon's docs), except for id events. An error
    message from the server (``{"error": ..., "status": 400}``) raises its HTTPError.
    """
    try:
        message = json.loads(text)
    except ValueError:
        return Skip(reason=f"a message that is not JSON ({len(text)} characters)")
    except RecursionError:
        return Skip(reason="a message nested too deeply to read")
    if not isinstance(message, dict):
        return Skip(reason=f"a message that is not a JSON object ({type(message).__name__})")
    if "event" not in message and "error" in message:
        status = message.get("status")
        status = status if type(status) is int and 400 <= status < 600 else 400
        error = message.get("error")
        raise error_class_for(status)(status=status, method="GET", url=url, error=str(error)[:500])
    event = message.get("event")
    if not isinstance(event, str) or not event:
        return Skip(reason="a message without an event name")
    raw_stream = message.get("stream")
    stream = (
        tuple(str(part) for part in raw_stream if isinstance(part, str))
        if isinstance(raw_stream, list)
        else ()
    )
    payload = message.get("payload")
    # filters_changed carries nothing (over HTTP its payload is the text "undefined").
    if payload is None or event == "filters_changed":
        return StreamEvent(event=event, payload=None, stream=stream)
    if event in _ID_EVENTS:
        if not isinstance(payload, str | int) or isinstance(payload, bool):
            return Skip(reason=f"event {event!r}: its payload is not an id")
        return StreamEvent(event=event, payload=str(payload), stream=stream)
    cls = decoders.get(event)
    if isinstance(payload, str):
        if cls is not None:
            # Decoded straight from the string: the entity's JSON is parsed once.
            try:
                return StreamEvent(
                    event=event, payload=decode_json(cls, payload.encode()), stream=stream
                )
            except DecodeError as exc:
                return Skip(reason=f"event {event!r}: its payload is not a {cls.__name__}: {exc}")
        try:
            payload = json.loads(payload)
        except RecursionError:
            return Skip(reason=f"event {event!r}: its payload is nested too deeply to read")
        except ValueError:
            if event in _JSON_EVENTS:
                return Skip(reason=f"event {event!r}: its payload is not JSON")
            return StreamEvent(event=event, payload=payload, stream=stream)
    if cls is None:
        return StreamEvent(event=event, payload=payload, stream=stream)
    # A server that sends the entity as an object rather than a string (not Mastodon).
    try:
        decoded = decode_json(cls, json.dumps(payload).encode())
    except DecodeError as exc:
        return Skip(reason=f"event {event!r}: its payload is not a {cls.__name__}: {exc}")
    return StreamEvent(event=event, payload=decoded, stream=stream)


def _id_key(value: str) -> tuple[int, str]:
    # Mastodon's ids are numbers as strings, GoToSocial's ULIDs of one length: both order
    # by length first, then as text.
    return len(value), value


class _SeenIds:
    """The last ``capacity`` ids delivered, forgetting the oldest first."""

    def __init__(self, capacity: int) -> None:
        self._ids: OrderedDict[str, None] = OrderedDict()
        self._capacity = capacity

    def add(self, key: str) -> bool:
        """Remember ``key``; false if it was already remembered."""
        if key in self._ids:
            return False
        self._ids[key] = None
        if len(self._ids) > self._capacity:
            self._ids.popitem(last=False)
        return True


class _Backoff:
    """Jittered exponential backoff: ``min(cap, base * 2 ** (n - 1))`` times 0.5 to 1."""

    def __init__(self, base: float, cap: float, rng: random.Random) -> None:
        self.base = base
        self.cap = cap
        self.attempt = 0
        self._rng = rng

    def next(self) -> float:
        self.attempt += 1
        return min(self.cap, self.base * 2.0 ** (self.attempt - 1)) * self._rng.uniform(0.5, 1.0)

    def reset(self) -> None:
        self.attempt = 0


class Connection(Protocol):
    """What a :class:`Stream` needs of its connection (the transport's WebSocket)."""

    async def receive(self) -> str: ...

    async def close(self) -> None: ...


Connect = Callable[[], Awaitable[Connection]]
"""Opens the stream's WebSocket (raising an HTTPError or a TransportError when it cannot)."""
FetchNotifications = Callable[[str | None], Awaitable[list[Any]]]
"""Notifications newer than an id (a page, in any order); for ``None``, the newest one."""


class Stream:
    """The events of one stream; made by :meth:`Session.stream <aiomasto.Session.stream>`.

    Iterate it with ``async for``; it connects on the first ``__anext__``. Use it as an async
    context manager (or call :meth:`aclose`) to close the connection when you stop early;
    cancelling the iterating task closes it too, and the Session closes any left open. No
    task runs in the background: the connection is read while you wait for the next event.

    Example::

        async with masto.stream("user") as events:
            async for event in events:
                print(event.event, event.payload)
    """

    def __init__(
        self,
        *,
        name: str,
        shown_url: str,
        connect: Connect,
        decoders: Mapping[str, type[Any]],
        fetch_notifications: FetchNotifications | None,
        reconnect: bool,
        max_reconnects: int | None,
        on_reconnect: ReconnectHook | None,
        sleep: Callable[[float], Awaitable[None]],
        clock: Callable[[], float],
        backoff: float = 0.5,
        max_backoff: float = 30.0,
        healthy_after: float = 60.0,
        on_close: Callable[[Stream], None] | None = None,
    ) -> None:
        if max_reconnects is not None and (type(max_reconnects) is not int or max_reconnects < 0):
            raise ConfigurationError(f"max_reconnects must be None or >= 0, not {max_reconnects!r}")
        self.name = name
        self._url = shown_url
        self._connect = connect
        self._decoders = decoders
        self._fetch = fetch_notifications if name in _NOTIFYING else None
        self._reconnect = reconnect
        self._max_reconnects = max_reconnects
        self._on_reconnect = on_reconnect
        self._sleep = sleep
        self._clock = clock
        self._backoff = _Backoff(backoff, max_backoff, random.Random())
        self._healthy_after = healthy_after
        self._on_close = on_close
        self._conn: Connection | None = None
        self._connected_at = 0.0
        self._pending: deque[StreamEvent] = deque()
        self._seen = _SeenIds(_SEEN_IDS)
        self._last_notification: str | None = None
        self._closed = False
        self.reconnects = 0
        """How many times the stream was opened again after a drop."""
        self.skipped = 0
        """How many messages were skipped (unreadable, or a payload of the wrong shape)."""

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open" if self._conn else "not connected"
        return f"<Stream {self.name} {self._url} ({state})>"

    def __aiter__(self) -> Self:
        return self

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the connection and end the iteration; harmless when already closed."""
        self._closed = True
        conn, self._conn = self._conn, None
        if conn is not None:
            await conn.close()
        if self._on_close is not None:
            self._on_close(self)

    async def __anext__(self) -> StreamEvent:
        try:
            return await self._next()
        except BaseException:
            # Cancelled, or an error the iteration ends with: nothing stays open behind it.
            await self.aclose()
            raise

    async def _next(self) -> StreamEvent:
        while True:
            if self._closed:
                raise StopAsyncIteration
            if self._pending:
                return self._pending.popleft()
            if self._conn is None:
                await self._open()
                continue
            try:
                text = await self._conn.receive()
            except TransportError as exc:
                await self._lost(exc)
                continue
            decoded = decode_message(text, self._decoders, url=self._url)
            if isinstance(decoded, Skip):
                self.skipped += 1
                log.warning("stream %s: skipped %s", self.name, decoded.reason)
                continue
            if self._deliver(decoded):
                return decoded

    def _deliver(self, event: StreamEvent) -> bool:
        """Whether ``event`` is new (notifications and statuses are delivered once)."""
        if event.event == "notification":
            key = _payload_id(event.payload)
            if key is None:
                return True
            if self._last_notification is None or _id_key(key) > _id_key(self._last_notification):
                self._last_notification = key
            return self._seen.add(f"n{key}")
        if event.event == "update":
            key = _payload_id(event.payload)
            return key is None or self._seen.add(f"s{key}")
        return True

    async def _open(self) -> None:
        """Connect, with backoff between failed attempts; then fill the gap, if any."""
        while True:
            try:
                if self._fetch is not None and self._last_notification is None:
                    # Where "missed" starts, read before the first socket opens: what is
                    # newer was made while listening, and the gap fill finds it if the
                    # socket loses it. (Read after, a notification made in between would
                    # count as old, and be lost with a socket that dropped it.)
                    newest = [_payload_id(item) for item in await self._fetch(None)]
                    self._last_notification = max(filter(None, newest), key=_id_key, default="0")
                conn = await self._connect()
            except TransportError as exc:
                await self._lost(exc, connected=False)
                continue
            break
        self._conn = conn
        self._connected_at = self._clock()
        if self._fetch is None:
            return
        # The socket is open before the fetch, so whatever happens meanwhile arrives on it
        # (and is delivered once): the gap closes without a window.
        try:
            await self._fill_gap()
        except TransportError as exc:
            # The REST side failed where the stream did not: start over, gap and all.
            await self._lost(exc)

    async def _fill_gap(self) -> None:
        assert self._fetch is not None
        since = self._last_notification or "0"
        for _ in range(_GAP_PAGES):
            items = await self._fetch(since)
            if not items:
                return
            for item in sorted(items, key=lambda i: _id_key(_payload_id(i) or "")):
                event = StreamEvent(
                    event="notification", payload=item, stream=(self.name,), gap_fill=True
                )
                if self._deliver(event):
                    self._pending.append(event)
            newest = max((_payload_id(i) or "" for i in items), key=_id_key)
            if not newest or _id_key(newest) <= _id_key(since):
                return
            since = newest
        log.warning(
            "stream %s: more than %d pages of notifications were missed; fetch the rest "
            "with masto.notifications()",
            self.name,
            _GAP_PAGES,
        )

    async def _lost(self, error: MastodonError, *, connected: bool = True) -> None:
        """The connection ended: back off and let the loop connect again, or raise."""
        conn, self._conn = self._conn, None
        if conn is not None:
            await conn.close()
        if connected and self._clock() - self._connected_at >= self._healthy_after:
            self._backoff.reset()
        if not self._reconnect or (
            self._max_reconnects is not None and self._backoff.attempt >= self._max_reconnects
        ):
            raise error
        seconds = self._backoff.next()
        # A message too large is the server's doing, not the network's: worth a warning.
        log.log(
            logging.WARNING if isinstance(error, ResponseTooLarge) else logging.INFO,
            "stream %s: %s; connecting again in %.1f s (attempt %d)",
            self.name,
            error,
            seconds,
            self._backoff.attempt,
        )
        if self._on_reconnect is not None:
            result = self._on_reconnect(
                Reconnecting(attempt=self._backoff.attempt, seconds=seconds, error=str(error))
            )
            if result is not None:
                await result
        await self._sleep(seconds)
        self.reconnects += 1


def _payload_id(payload: Any) -> str | None:
    value = payload.get("id") if isinstance(payload, dict) else getattr(payload, "id", None)
    return value if isinstance(value, str) and value else None


def check_stream_params(name: str, tag: str | None, list_id: str | int | None) -> dict[str, str]:
    """The query of a stream's WebSocket URL, or a ConfigurationError (pure)."""
    if name not in STREAM_NAMES:
        raise ConfigurationError(
            f"unknown stream {name!r}: expected one of {', '.join(sorted(STREAM_NAMES))}"
        )
    query = {"stream": name}
    if name.startswith("hashtag"):
        if not isinstance(tag, str) or not tag.strip().lstrip("#"):
            raise ConfigurationError(f"stream {name!r} needs tag=, e.g. tag='python'")
        query["tag"] = tag.strip().lstrip("#")
    elif tag is not None:
        raise ConfigurationError(f"tag= is for the hashtag streams, not {name!r}")
    if name == "list":
        if type(list_id) is int and list_id >= 0:
            list_id = str(list_id)
        if not isinstance(list_id, str) or not list_id.strip():
            raise ConfigurationError("stream 'list' needs list_id=")
        query["list"] = list_id.strip()
    elif list_id is not None:
        raise ConfigurationError(f"list_id= is for the list stream, not {name!r}")
    return query
