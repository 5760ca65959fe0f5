"""The fake's streaming server: Mastodon's ``/api/v1/streaming`` WebSocket.

As ``streaming/index.js`` does: the token comes from the ``Authorization`` header, else the
``Sec-WebSocket-Protocol`` header (echoed back, as the ``ws`` library selects the first
protocol offered), else the legacy ``access_token`` query parameter; a missing or invalid one
is refused with 401 before the upgrade (4.2+ needs a user token). ``?stream=`` (with ``tag`` or
``list``) subscribes at once; ``{"type": "subscribe"|"unsubscribe", "stream": ...}`` messages
manage subscriptions later. Each event goes out as ``{"stream": [...], "event": ...,
"payload": "<JSON as a string>"}`` (no ``payload`` key for an event without one). An unknown
stream gets ``{"error": "Unknown stream type", "status": 400}``.

Events are published like Redis pub/sub: to the connections subscribed at that moment; a
connection that is not there misses them, which is what the client's gap fill is for.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Callable

from aiohttp import WSMsgType, web

__all__ = ["STREAMS", "StreamHub"]

STREAMS = frozenset(
    {
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
    }
)
# Streams that belong to one account: an event for them names the account.
PERSONAL = frozenset({"user", "user:notification", "direct", "list"})

Key = tuple[str, ...]


class _Client:
    """One open WebSocket: who it is, what it listens to, and its outgoing queue."""

    def __init__(self, account_id: int, loop: asyncio.AbstractEventLoop) -> None:
        self.account_id = account_id
        self.loop = loop
        self.subscriptions: set[Key] = set()
        self.outbox: asyncio.Queue[str | None] = asyncio.Queue()
        self.transport: asyncio.BaseTransport | None = None


def stream_key(stream: str, params: dict[str, str]) -> Key | str:
    """The subscription key of a stream and its parameters, or the error to send."""
    if stream not in STREAMS:
        return "Unknown stream type"
    if stream.startswith("hashtag"):
        tag = params.get("tag", "")
        if not tag:
            return "No tag for stream provided"
        return (stream, tag.lower())
    if stream == "list":
        list_id = params.get("list", "")
        if not list_id:
            return "Not authorized to stream this list"
        return (stream, list_id)
    return (stream,)


class StreamHub:
    """The open streaming connections of one fake server, and what is published to them."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._clients: list[_Client] = []
        self.stalled = False
        """While true, pings from clients go unanswered (a server that hangs)."""
        self.connections_opened = 0
        """How many streaming WebSockets were accepted, in all."""

    @property
    def open_connections(self) -> int:
        with self._lock:
            return len(self._clients)

    def listeners(self) -> set[int]:
        """The accounts with a streaming connection open."""
        with self._lock:
            return {client.account_id for client in self._clients}

    async def serve(
        self, request: web.Request, account_id: int | None, protocol: str | None
    ) -> web.StreamResponse:
        if account_id is None:
            return web.json_response({"error": "Unauthorized"}, status=401)
        ws = web.WebSocketResponse(
            protocols=(protocol,) if protocol else (), autoping=False, max_msg_size=64 * 1024
        )
        client = _Client(account_id, asyncio.get_running_loop())
        client.transport = request.transport
        first = request.query.get("stream")
        if first:
            self._subscribe(client, first, dict(request.query))
        # Subscribed before the handshake answer leaves: a client that fetches what it
        # missed as soon as it is connected must find every later event on the socket.
        with self._lock:
            self._clients.append(client)
            self.connections_opened += 1
        writer: asyncio.Task[None] | None = None
        try:
            await ws.prepare(request)
            writer = asyncio.create_task(self._write(ws, client))
            async for msg in ws:
                if msg.type is WSMsgType.PING:
                    if not self.stalled:
                        await ws.pong(msg.data)
                elif msg.type is WSMsgType.TEXT:
                    self._command(client, msg.data)
        finally:
            with self._lock:
                if client in self._clients:
                    self._clients.remove(client)
            if writer is not None:
                writer.cancel()
                await asyncio.gather(writer, return_exceptions=True)
        return ws

    async def _write(self, ws: web.WebSocketResponse, client: _Client) -> None:
        while (text := await client.outbox.get()) is not None:
            await ws.send_str(text)

    def _command(self, client: _Client, text: str) -> None:
        try:
            message = json.loads(text)
        except (ValueError, RecursionError):
            return
        if not isinstance(message, dict) or not isinstance(message.get("stream"), str):
            return
        params = {k: str(v) for k, v in message.items() if isinstance(v, str | int)}
        if message.get("type") == "subscribe":
            self._subscribe(client, message["stream"], params)
        elif message.get("type") == "unsubscribe":
            key = stream_key(message["stream"], params)
            if isinstance(key, tuple):
                client.subscriptions.discard(key)

    def _subscribe(self, client: _Client, stream: str, params: dict[str, str]) -> None:
        key = stream_key(stream, params)
        if isinstance(key, str):
            client.outbox.put_nowait(json.dumps({"error": key, "status": 400}))
            return
        client.subscriptions.add(key)

    def publish(
        self,
        stream: Key,
        event: str,
        payload: object = None,
        *,
        account_id: int | None = None,
    ) -> int:
        """Send an event to the connections subscribed to ``stream`` (of ``account_id``,
        for a personal stream; ``None``: every account's); returns how many."""
        message: dict[str, object] = {"stream": list(stream), "event": event}
        if payload is not None:
            message["payload"] = payload if isinstance(payload, str) else json.dumps(payload)
        return self.send_raw(json.dumps(message), stream=stream, account_id=account_id)

    def send_raw(
        self, text: str, *, stream: Key | None = None, account_id: int | None = None
    ) -> int:
        """Send ``text`` as it is to the matching connections (all, without ``stream``)."""
        sent = 0
        with self._lock:
            for client in self._clients:
                if stream is not None and stream not in client.subscriptions:
                    continue
                if account_id is not None and client.account_id != account_id:
                    continue
                client.loop.call_soon_threadsafe(client.outbox.put_nowait, text)
                sent += 1
        return sent

    def drop(self) -> int:
        """Cut every connection without a closing handshake, as a network failure does."""
        with self._lock:
            clients = list(self._clients)
        for client in clients:
            if client.transport is not None:
                client.loop.call_soon_threadsafe(_abort, client.transport)
        return len(clients)


def _abort(transport: asyncio.BaseTransport) -> None:
    abort: Callable[[], None] | None = getattr(transport, "abort", None)
    if abort is not None:
        abort()
    else:
        transport.close()
