"""A TokenStore on a Redis server, shared by every process and machine that reaches it.

Needs the ``redis`` extra (``pip install 'aiomasto[redis]'``): redis-py's asyncio client. This
module is the only one that imports it, and ``aiomasto`` imports this module only when
``RedisTokenStore`` is first used.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from types import TracebackType
from typing import Any, Self, TypeVar
from urllib.parse import quote, unquote

try:
    import redis.asyncio as aioredis
    from redis.exceptions import (
        AuthenticationError,
        AuthenticationWrongNumberOfArgsError,
        RedisError,
        ResponseError,
    )
    from redis.exceptions import ConnectionError as RedisConnectionError
    from redis.exceptions import TimeoutError as RedisTimeoutError
except ImportError as exc:  # pragma: no cover - the extra is installed in every test run
    raise ImportError("RedisTokenStore needs redis-py: pip install 'aiomasto[redis]'") from exc

from yarl import URL

from aiomasto._converter import converter, decode
from aiomasto.errors import ConfigurationError, DecodeError, TokenStoreError

from ._base import FORMAT_VERSION, Credentials, StoreKey
from ._locking import Hold, active_hold, holding

__all__ = ["RedisTokenStore"]

_T = TypeVar("_T")
_KIND = "redis"
_RECORDS = "credentials"
_LOCKS = "lock"
_MASK = "***"
# Waiting for a lock another process holds: poll, doubling from the first delay to the last.
_FIRST_POLL = 0.005
_LAST_POLL = 0.05
# An owned client gives up on a server that does not answer instead of waiting forever
# (a URL's own socket_timeout=... and socket_connect_timeout=... win).
_CONNECT_TIMEOUT = 5.0
_SOCKET_TIMEOUT = 10.0

# Extend the lock only while this owner holds it.
_EXTEND = """
if redis.call('get', KEYS[1]) == ARGV[1] then
  return redis.call('pexpire', KEYS[1], ARGV[2])
end
return 0
"""
# Release the lock only if this owner holds it: an expired lock may be another's by now.
_RELEASE = """
if redis.call('get', KEYS[1]) == ARGV[1] then
  return redis.call('del', KEYS[1])
end
return 0
"""

_log = logging.getLogger(__name__)


class RedisTokenStore:
    """Keeps records on a Redis server: one key per record, under a prefix of your choice.

    ``url_or_client`` is a ``redis://``, ``rediss://`` or ``unix://`` URL, and the store then
    owns its client (close it with :meth:`aclose`, or use the store as an async context
    manager), or a ``redis.asyncio.Redis`` client that the store borrows and never closes.

    The Redis server holds tokens: keep it private (not reachable from the internet) and
    password-protected, and give the password in the URL (``redis://:password@host:6379/0``).
    The password never appears in a repr or an error message.

    Layout, with every part percent-encoded (``urllib.parse.quote(part, safe="")``, so no part
    holds a ``:`` or a ``/`` and no instance, app or account name can reach into another
    record's key)::

        <prefix>:credentials:<instance>/<app>             the app's own record
        <prefix>:credentials:<instance>/<app>/<account>   a user's record
        <prefix>:lock:<instance>/<app>[/<account>]        while someone holds lock(key)

    for example ``aiomasto:credentials:https%3A%2F%2Fmastodon.example/Relationship%20Mapper``.
    A record's value is the JSON of its :class:`~aiomasto.stores.Credentials`, as aiomasto's
    converter writes it (with its format ``version``). A value that is not such a record
    (corrupt, written by another program, or by a newer aiomasto) raises
    :class:`~aiomasto.TokenStoreError`, which never quotes it. :meth:`keys` lists only the keys
    of this prefix's records, whatever else the database holds.

    ``lock(key)`` is a short Redis lock (``SET NX PX`` with a random owner token, released by
    its owner only, extended every ``lock_expiry / 3`` seconds while held), so a check-then-
    create or a token refresh runs once among every process and machine using the server; if
    the holder dies, the lock expires after ``lock_expiry`` seconds. An owned client gives up on
    a server that does not answer after 5 s (connecting) or 10 s (a command); a
    ``socket_timeout`` or ``socket_connect_timeout`` in the URL's query wins.

    Example::

        async with RedisTokenStore(os.environ["REDIS_URL"], prefix="relmap") as store:
            async with Session("https://mastodon.example", app=app, store=store) as masto:
                print(await masto.verify_app())   # registered once among all the workers
    """

    def __init__(
        self,
        url_or_client: str | aioredis.Redis,
        *,
        prefix: str = "aiomasto",
        lock_expiry: float = 10.0,
    ) -> None:
        # Set first: a traceback printer may repr a store whose construction failed.
        self._prefix = prefix
        self._owned = isinstance(url_or_client, str)
        self._where = _masked(url_or_client) if isinstance(url_or_client, str) else "?"
        client: aioredis.Redis | None = None
        problem = ""
        if not isinstance(prefix, str) or not prefix:
            problem = "prefix must be a non-empty string"
        elif not lock_expiry > 0.01:
            problem = "lock_expiry must be more than 0.01 seconds"
        elif isinstance(url_or_client, str):
            try:
                client = aioredis.Redis.from_url(
                    url_or_client,
                    socket_connect_timeout=_CONNECT_TIMEOUT,
                    socket_timeout=_SOCKET_TIMEOUT,
                )
            except ValueError:
                # Not chained: redis-py's message may quote the URL, password included.
                problem = f"not a usable Redis URL: {self._where} (redis://, rediss:// or unix://)"
        elif isinstance(url_or_client, aioredis.Redis):
            client = url_or_client
            self._where = _described(client)
        else:
            problem = (
                "RedisTokenStore takes a Redis URL or a redis.asyncio.Redis client, "
                f"not {type(url_or_client).__name__}"
            )
        if client is None:
            # The URL stays out of the traceback's frames: error reporters print their locals.
            del url_or_client
            raise ConfigurationError(problem)
        self._client: aioredis.Redis = client
        self._expiry = float(lock_expiry)
        self._server = _identity(client)
        self._password = client.connection_pool.connection_kwargs.get("password")
        self._extend = client.register_script(_EXTEND)
        self._release = client.register_script(_RELEASE)
        self._locks: dict[str, _NameLock] = {}
        self._background: set[asyncio.Task[None]] = set()

    @property
    def prefix(self) -> str:
        """What every key of this store starts with (before ``:``)."""
        return self._prefix

    def __repr__(self) -> str:
        where = repr(self._where) if self._owned else f"<borrowed client {self._where}>"
        return f"RedisTokenStore({where}, prefix={self._prefix!r})"

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
        """Let pending lock releases finish, then close the client if the store created it.

        A borrowed client is left open for its owner.
        """
        if self._background:
            await asyncio.gather(*self._background, return_exceptions=True)
        if self._owned:
            await self._client.aclose()

    async def load(self, key: StoreKey) -> Credentials | None:
        """The record stored under ``key``, or ``None``."""
        raw = await self._call(
            f"cannot read the record for {key}",
            self._client.get,
            _name(self._prefix, _RECORDS, key),
        )
        if raw is None:
            return None
        if isinstance(raw, str):  # a borrowed client with decode_responses=True
            raw = raw.encode("utf-8", "surrogatepass")
        try:
            return _parse(raw)
        except _Unreadable as exc:
            problem, advice = str(exc), exc.advice
        # Raised outside the handler, and without the value: it holds secrets, and error
        # reporters print exceptions' contexts and the locals of a traceback's frames.
        del raw
        raise TokenStoreError(
            f"the record for {key} in {self._where} {problem}; it was left untouched{advice}"
        )

    async def keys(self) -> list[StoreKey]:
        """Every key with a record under this prefix (found with ``SCAN``, never ``KEYS``).

        Sorted by instance, app and account, as the JSON store lists them.
        """
        pattern = _glob_escape(self._prefix) + f":{_RECORDS}:*"
        start = f"{self._prefix}:{_RECORDS}:"

        async def scan() -> set[StoreKey]:
            found: set[StoreKey] = set()  # SCAN may return a key twice
            async for name in self._client.scan_iter(match=pattern, count=1000):
                key = _parse_name(name, start)
                if key is not None:
                    found.add(key)
            return found

        found = await self._call("cannot list the records", scan)
        return sorted(found, key=lambda k: (k.instance, k.app, k.account is not None, k.account))

    async def save(self, key: StoreKey, credentials: Credentials) -> None:
        """Store ``credentials`` under ``key``, replacing what was there."""
        value = json.dumps(
            converter.unstructure(credentials, Credentials), ensure_ascii=False
        ).encode("utf-8")
        name = _name(self._prefix, _RECORDS, key)
        try:
            await self._call(f"cannot save the record for {key}", self._client.set, name, value)
        finally:
            del value  # error reporters print the locals of a traceback's frames
        _log.debug("saved %s in %s", key, self._where)

    async def delete(self, key: StoreKey) -> None:
        """Remove the record under ``key``; no error if there is none."""
        name = _name(self._prefix, _RECORDS, key)
        await self._call(f"cannot delete the record for {key}", self._client.delete, name)
        _log.debug("deleted %s in %s", key, self._where)

    def lock(self, key: StoreKey) -> contextlib.AbstractAsyncContextManager[None]:
        """A section that runs alone among every process and task locking ``key`` on the server.

        Reentrant for the holder and the tasks it starts inside the section (also through
        another store object on the same server and prefix); other keys are not held up. A task
        cancelled while it waits leaves at once. The lock is extended while held; if the
        holding process dies, it expires after ``lock_expiry`` seconds.

        Example::

            async with store.lock(key):
                if await store.load(key) is None:
                    await store.save(key, await obtain_credentials())
        """
        return self._section(key)

    @contextlib.asynccontextmanager
    async def _section(self, key: StoreKey) -> AsyncIterator[None]:
        name = _name(self._prefix, _LOCKS, key)
        identity = (_KIND, (self._server, name))
        if active_hold(identity) is not None:
            yield
            return
        # This process's tasks queue here; only the first of them asks the server.
        entry = self._locks.setdefault(name, _NameLock())
        entry.users += 1
        try:
            async with entry.lock:
                owner = await self._acquire(name, key)
                hold = Hold(identity)
                renewal = asyncio.create_task(self._keep(name, owner, key, hold))
                try:
                    with holding(hold):
                        yield
                finally:
                    hold.end(lambda: None)
                    renewal.cancel()
                    await self._in_background(self._give_back(name, owner, key))
        finally:
            entry.users -= 1
            if entry.users == 0:
                del self._locks[name]

    async def _acquire(self, name: str, key: StoreKey) -> str:
        owner = secrets.token_hex(16)
        expiry_ms = int(self._expiry * 1000)
        delay = _FIRST_POLL
        while True:
            try:
                taken = await self._call(
                    f"cannot lock {key}", self._client.set, name, owner, nx=True, px=expiry_ms
                )
            except BaseException:
                # The SET may have reached the server before the cancellation (or the lost
                # connection): free the lock now rather than when it expires. Not awaited, so
                # a cancelled waiter leaves at once.
                self._start(self._give_back(name, owner, key, quiet=True))
                raise
            if taken:
                return owner
            await asyncio.sleep(delay * random.uniform(0.5, 1.0))
            delay = min(delay * 2, _LAST_POLL)

    async def _keep(self, name: str, owner: str, key: StoreKey, hold: Hold) -> None:
        """Extend the lock every third of its expiry while the section runs.

        Cancelled when the section ends; ``hold.active`` also says so, should redis-py lose
        the cancellation.
        """
        expiry_ms = int(self._expiry * 1000)
        while hold.active:
            await asyncio.sleep(self._expiry / 3)
            if not hold.active:
                return
            try:
                extended = await self._extend(keys=[name], args=[owner, expiry_ms])
            except RedisError as exc:
                if not hold.active:
                    return
                _log.warning(
                    "cannot extend the lock on %s in %s (%s); it expires unless extended",
                    key,
                    self._where,
                    self._explain(exc),
                )
                continue
            if not extended and hold.active:
                _log.warning(
                    "the lock on %s in %s expired while held (the server was unreachable "
                    "for longer than %g s?); another process may have entered the section",
                    key,
                    self._where,
                    self._expiry,
                )
            if not extended:
                return

    async def _give_back(
        self, name: str, owner: str, key: StoreKey, *, quiet: bool = False
    ) -> None:
        try:
            released = await self._release(keys=[name], args=[owner])
        except RedisError as exc:
            _log.warning(
                "cannot release the lock on %s in %s (%s); it expires within %g s",
                key,
                self._where,
                self._explain(exc),
                self._expiry,
            )
            return
        if not released and not quiet:
            _log.warning(
                "the lock on %s in %s had expired before its holder left; another process "
                "may have entered the section meanwhile",
                key,
                self._where,
            )

    def _start(self, work: Awaitable[None]) -> asyncio.Task[None]:
        task = asyncio.ensure_future(work)
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        return task

    async def _in_background(self, work: Awaitable[None]) -> None:
        """Await ``work``; if the caller is cancelled meanwhile, ``work`` still finishes."""
        await asyncio.shield(self._start(work))

    async def _call(
        self, what: str, command: Callable[..., Awaitable[_T]], *args: Any, **kwargs: Any
    ) -> _T:
        task = asyncio.current_task()
        cancelling = task.cancelling() if task is not None else 0
        try:
            result = await command(*args, **kwargs)
        except RedisError as exc:
            problem = self._explain(exc)
        else:
            problem = ""
        if task is not None and task.cancelling() > cancelling:
            # redis-py can lose a cancellation that arrives at the wrong moment of a command
            # (redis/redis-py#2028, #2551): the task would go on, and a waiter at lock() would
            # never leave. Raised again here, so a deadline or a cancel() always takes effect.
            raise asyncio.CancelledError
        if not problem:
            return result
        # Outside the handler, so redis-py's exception and its frames stay out of the error;
        # and without the arguments, which may hold a record.
        del args, kwargs
        raise TokenStoreError(f"{what}: {self._where} {problem}")

    def _explain(self, exc: RedisError) -> str:
        text = str(exc)
        if self._password:
            text = text.replace(self._password, _MASK)
        if isinstance(exc, AuthenticationError | AuthenticationWrongNumberOfArgsError) or (
            isinstance(exc, ResponseError) and text.startswith(("NOAUTH", "WRONGPASS"))
        ):
            return f"refused the credentials ({text}); check the password in the URL"
        if isinstance(exc, RedisTimeoutError):
            return f"did not answer in time ({text})"
        if isinstance(exc, RedisConnectionError):
            return f"cannot be reached ({text})"
        if isinstance(exc, ResponseError) and text.startswith("WRONGTYPE"):
            return "holds something other than a string there (another program's key?)"
        return f"failed ({type(exc).__name__}: {text})"


class _NameLock:
    """An asyncio lock for one lock name, dropped when nobody holds or waits for it."""

    def __init__(self) -> None:
        self.lock = asyncio.Lock()
        self.users = 0


def _part(text: str) -> str:
    return quote(text, safe="", errors="surrogatepass")


def _name(prefix: str, kind: str, key: StoreKey) -> str:
    parts = [key.instance, key.app] if key.account is None else [key.instance, key.app, key.account]
    return f"{prefix}:{kind}:" + "/".join(map(_part, parts))


def _parse_name(name: bytes | str, start: str) -> StoreKey | None:
    """The key of a record's name, or ``None`` if it is not a name :func:`_name` makes.

    Every part must be exactly what encoding its text gives: so a key of another prefix that
    starts like this one (``aiomasto:credentials:x:credentials:...`` under ``aiomasto``) is
    not read as one of this prefix's, since its own ``:`` never survives the encoding.
    """
    if isinstance(name, bytes):
        try:
            name = name.decode("ascii")
        except UnicodeDecodeError:
            return None
    if not name.startswith(start):
        return None
    texts: list[str] = []
    for part in name[len(start) :].split("/"):
        try:
            text = unquote(part, errors="strict")
        except UnicodeDecodeError:
            return None
        if _part(text) != part:
            return None
        texts.append(text)
    if len(texts) == 2:
        return StoreKey(instance=texts[0], app=texts[1])
    if len(texts) == 3:
        return StoreKey(instance=texts[0], app=texts[1], account=texts[2])
    return None


def _glob_escape(text: str) -> str:
    """``text`` as a literal in a Redis ``MATCH`` pattern."""
    return "".join("\\" + c if c in "\\*?[]^" else c for c in text)


class _Unreadable(Exception):
    """Why a value is not a record; never quotes the value."""

    def __init__(self, problem: str, advice: str) -> None:
        super().__init__(problem)
        self.advice = advice


def _parse(raw: bytes) -> Credentials:
    corrupt = " (fix or delete it)"
    try:
        document = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise _Unreadable("is not UTF-8 text", corrupt) from None
    except json.JSONDecodeError as exc:
        raise _Unreadable(
            f"is not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno})", corrupt
        ) from None
    except RecursionError:
        raise _Unreadable("is not valid JSON (nested too deeply)", corrupt) from None
    if type(document) is not dict:
        raise _Unreadable("is not a JSON object", corrupt)
    version = document.get("version")
    if type(version) is not int or version < 1:
        raise _Unreadable('is not an aiomasto record ("version" is missing or invalid)', corrupt)
    if version > FORMAT_VERSION:
        raise _Unreadable(
            f"was written by a newer aiomasto (format version {version}; "
            f"this one reads up to {FORMAT_VERSION})",
            " (upgrade aiomasto to use it)",
        )
    try:
        return decode(Credentials, document)
    except DecodeError as exc:
        # Only the field's path: the decoder's message may quote the value, maybe a secret.
        field = f" ({exc.field})" if exc.field else ""
        problem = f"has a missing or invalid field{field}"
    raise _Unreadable(problem, corrupt)


def _masked(url: str) -> str:
    """``url`` with its password masked and its query left out (it may hold one too)."""
    try:
        parsed = URL(url)
        if parsed.password is not None:
            parsed = parsed.with_password(_MASK)
        shown = str(parsed.with_query(None).with_fragment(None))
    except (ValueError, TypeError):
        return "<a URL that cannot be parsed>"
    return shown.replace("%2A%2A%2A", _MASK)


def _described(client: aioredis.Redis) -> str:
    """The server of a borrowed client, as a URL without credentials."""
    kwargs = client.connection_pool.connection_kwargs
    db = kwargs.get("db", 0)
    if "path" in kwargs:
        return f"unix://{kwargs['path']}?db={db}"
    scheme = (
        "rediss" if "ssl" in client.connection_pool.connection_class.__name__.lower() else "redis"
    )
    return f"{scheme}://{kwargs.get('host', 'localhost')}:{kwargs.get('port', 6379)}/{db}"


def _identity(client: aioredis.Redis) -> tuple[tuple[str, str], ...]:
    """What tells one server (and database) from another, for a section's reentrancy."""
    kwargs = client.connection_pool.connection_kwargs
    wanted = ("host", "port", "path", "db")
    return tuple((name, str(kwargs[name])) for name in wanted if name in kwargs)
