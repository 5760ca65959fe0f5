"""Several fake servers that federate: the test bed for crawling the fediverse.

Each instance is a :class:`FakeMastodon` (any flavour) known by its handle domain. A follow
between two instances is stored the way federation stores it (federation.md §2): on each
side's home, with a *remote copy* of the other account (``acct`` ``user@domain``, ``uri`` and
``url`` pointing at its home), so either home lists it. The copies show the counts their home
has. The ground truth (:meth:`FakeFediverse.edges`) is every follow row on the homes.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import random
import socket
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from typing import Any

from yarl import URL

from aiomasto._http import StaticResolver

from ._flavors import FLAVORS, FlavorName
from ._server import FakeMastodon

__all__ = ["FakeFediverse"]

_LOOPBACK = "127.0.0.1"


class FakeFediverse:
    """Many fake instances on loopback, with accounts that follow across them.

    Instances are reached by name (``http://alpha.example``) through :meth:`resolver`, which
    maps every instance's domain (and web domain) to its loopback port. Handles are
    ``user@domain`` (a leading ``@`` is fine); ground-truth answers use lower-cased handles,
    as the crawl's keys do.

    Example::

        fedi = FakeFediverse()
        fedi.add_instance("alpha.example")
        fedi.add_instance("gts.example", flavor="gotosocial")
        fedi.add_instance("split.example", web_domain="social.split.example")
        fedi.add_down_instance("down.example")
        fedi.add_account("alice@alpha.example", display_name="Alice")
        fedi.add_account("bob@gts.example")
        fedi.follow("bob@gts.example", "alice@alpha.example")

        async with fedi.run():
            connector = aiohttp.TCPConnector(resolver=fedi.resolver())
            async with aiohttp.ClientSession(connector=connector) as http:
                url = fedi.url("alpha.example") + "/.well-known/webfinger"
                async with http.get(url, params={"resource": "acct:alice@alpha.example"}):
                    ...

        assert fedi.edges() == {("bob@gts.example", "alice@alpha.example")}

    Setup may go on while it serves (every method is thread-safe).
    """

    def __init__(self, *, clock: Callable[[], float] = time.time) -> None:
        """``clock`` (epoch seconds) is handed to every instance unless it gets its own."""
        self._clock = clock
        self._lock = threading.RLock()
        self._servers: dict[str, FakeMastodon] = {}
        # Every host name clients may use (handle domains and web domains) -> handle domain.
        self._hosts: dict[str, str] = {}
        self._down: set[str] = set()
        # Handle key -> id of the account on its home.
        self._local: dict[str, str] = {}
        # Handle key -> {instance domain: id of its remote copy there}.
        self._copies: dict[str, dict[str, str]] = {}
        self._ports: dict[str, int] = {}

    # Instances

    def add_instance(
        self,
        domain: str,
        *,
        flavor: FlavorName = "mastodon",
        web_domain: str | None = None,
        limited_federation: bool = False,
        **options: Any,
    ) -> FakeMastodon:
        """Add an instance whose handles end in ``@domain``; returns its server.

        ``web_domain`` puts the API on another host (federation.md §1.3); ``options`` go to
        :class:`FakeMastodon` (``limits``, ``enforce_rate_limit``, ``version``,
        ``webfinger_via_host_meta_only``...).

        Example: ``fedi.add_instance("closed.example", limited_federation=True)``.
        """
        domain = _host_name(domain)
        names = [domain] if web_domain is None else [domain, _host_name(web_domain)]
        if flavor not in FLAVORS:
            raise ValueError(f"flavor {flavor!r}: expected one of {', '.join(FLAVORS)}")
        with self._lock:
            taken = [name for name in names if name in self._hosts]
            if taken:
                raise ValueError(f"{taken[0]!r} is already an instance's host name")
            options.setdefault("clock", self._clock)
            server = FakeMastodon(
                flavor=flavor,
                domain=domain,
                web_domain=web_domain,
                limited_federation=limited_federation,
                **options,
            )
            self._servers[domain] = server
            for name in names:
                self._hosts[name] = domain
        return server

    def add_down_instance(self, domain: str, **options: Any) -> FakeMastodon:
        """Add an instance that resolves but refuses every connection.

        It still holds accounts and follows (other instances list them), but nothing
        listens on its port.

        Example: ``fedi.add_down_instance("down.example")``.
        """
        server = self.add_instance(domain, **options)
        with self._lock:
            self._down.add(_host_name(domain))
        return server

    def instance(self, domain: str) -> FakeMastodon:
        """The server of an instance, by its domain or web domain."""
        with self._lock:
            home = self._hosts.get(_host_name(domain))
            if home is None:
                raise KeyError(f"no instance named {domain!r}")
            return self._servers[home]

    @property
    def domains(self) -> tuple[str, ...]:
        """The instances' handle domains, in the order they were added."""
        with self._lock:
            return tuple(self._servers)

    def is_down(self, domain: str) -> bool:
        """Whether the instance was added with :meth:`add_down_instance`."""
        with self._lock:
            return self._hosts.get(_host_name(domain)) in self._down

    # Accounts

    def add_account(self, handle: str, **options: Any) -> str:
        """Create a local account on the handle's instance; returns ``user@domain``.

        ``options`` are :meth:`FakeMastodon.add_account`'s (``display_name``,
        ``hide_collections``, ``hide_followers``, ``suspended``, ``locked``...).

        Example: ``fedi.add_account("@alice@alpha.example", display_name="Alice")``.
        """
        username, domain = _split(handle)
        for owned in ("domain", "moved_to", "uri", "url"):
            if owned in options:
                raise ValueError(f"{owned}= is set by the fediverse (see move())")
        with self._lock:
            server = self._server(domain)
            key = f"{username.lower()}@{domain}"
            if key in self._local:
                raise ValueError(f"{handle!r} already exists")
            self._local[key] = server.add_account(username, **options)
            self._copies[key] = {}
        return f"{username}@{domain}"

    def account_id(self, handle: str, on: str | None = None) -> str:
        """The account's id on its home, or on instance ``on`` (its remote copy there,
        created if needed).

        Example: ``fedi.account_id("alice@alpha.example", on="gts.example")``.
        """
        with self._lock:
            key = self._key(handle)
            account_id = self._id_on(key, _host_name(on) if on else self._home(key))
            self._sync_counts(key)
            return account_id

    def user_token(self, handle: str, scopes: str = "read") -> str:
        """A user token of the account, on its home instance.

        Example: ``token = fedi.user_token("bob@gts.example")``.
        """
        with self._lock:
            key = self._key(handle)
            server = self._servers[self._home(key)]
            account_id = self._local[key]
        return server.issue_user_token(account_id, scopes=scopes)

    # Federation

    def follow(self, follower: str, followed: str) -> None:
        """``follower`` follows ``followed``: a Follow row on each side's home.

        Example: ``fedi.follow("bob@gts.example", "alice@alpha.example")``.
        """
        with self._lock:
            source, target = self._key(follower), self._key(followed)
            self._follow(source, target)
            self._sync_counts(source)
            self._sync_counts(target)

    def unfollow(self, follower: str, followed: str) -> None:
        """Undo a follow on both homes."""
        with self._lock:
            source, target = self._key(follower), self._key(followed)
            for domain in {self._home(source), self._home(target)}:
                server = self._servers[domain]
                server.unfollow(self._id_on(source, domain), self._id_on(target, domain))
            self._sync_counts(source)
            self._sync_counts(target)

    def move(self, old: str, new: str) -> None:
        """``old`` moves to ``new``: its entity shows ``moved`` on its home and wherever a
        copy of it exists. Follows stay put (followers move over on their own, later).

        Example: ``fedi.move("old@alpha.example", "new@beta.example")``.
        """
        with self._lock:
            source, target = self._key(old), self._key(new)
            for domain in [self._home(source), *self._copies[source]]:
                self._servers[domain].move(self._id_on(source, domain), self._id_on(target, domain))
            self._sync_counts(target)

    def suspend(self, handle: str) -> None:
        """Suspend the account on its home and on every instance that knows it."""
        with self._lock:
            key = self._key(handle)
            for domain in [self._home(key), *self._copies[key]]:
                self._servers[domain].suspend(self._id_on(key, domain))

    def delete(self, handle: str) -> None:
        """Delete the account everywhere: its follows end; its home answers 404 (410 on
        Mastodon's WebFinger)."""
        with self._lock:
            key = self._key(handle)
            affected = {
                other
                for domain in [self._home(key), *self._copies[key]]
                for other in self._neighbours(key, domain)
            }
            for domain in [self._home(key), *self._copies[key]]:
                self._servers[domain].delete_account(self._id_on(key, domain))
            for other in affected:
                self._sync_counts(other)

    # Ground truth

    def followers(self, handle: str) -> set[str]:
        """Who follows the account, as its home stores it (lower-cased handles)."""
        with self._lock:
            key = self._key(handle)
            server = self._servers[self._home(key)]
            return {server.handle(i).lower() for i in server.followers_of(self._local[key])}

    def following(self, handle: str) -> set[str]:
        """Whom the account follows, as its home stores it (lower-cased handles)."""
        with self._lock:
            key = self._key(handle)
            server = self._servers[self._home(key)]
            return {server.handle(i).lower() for i in server.following_of(self._local[key])}

    def edges(self) -> set[tuple[str, str]]:
        """Every follow as ``(follower, followed)``, lower-cased handles: the ground truth."""
        with self._lock:
            found: set[tuple[str, str]] = set()
            for key in self._local:
                found.update((follower, key) for follower in self.followers(key))
                found.update((key, followed) for followed in self.following(key))
            return found

    def handles(self) -> list[str]:
        """Every local account's handle (lower-cased), in creation order."""
        with self._lock:
            return list(self._local)

    def populate(
        self,
        *,
        seed: int = 0,
        instances: Iterable[str] | None = None,
        accounts_per_instance: int = 20,
        follows_per_account: int = 5,
        prefix: str = "user",
    ) -> list[str]:
        """A reproducible random follow graph: ``accounts_per_instance`` new accounts
        (``user1@domain``...) on each instance, each following ``follows_per_account``
        others drawn from all of them. The same arguments give the same graph.

        ``instances`` defaults to every instance, down ones included. Returns the new
        handles.

        Example::

            fedi.populate(seed=1, accounts_per_instance=2000, follows_per_account=10)
        """
        rng = random.Random(seed)
        with self._lock:
            domains = list(self._servers) if instances is None else list(instances)
            created: list[str] = []
            for domain in domains:
                domain = _host_name(domain)
                self._server(domain)
                n = 1
                for _ in range(accounts_per_instance):
                    while f"{prefix}{n}@{domain}".lower() in self._local:
                        n += 1
                    created.append(self.add_account(f"{prefix}{n}@{domain}").lower())
                    n += 1
            wanted = min(follows_per_account, len(created) - 1)
            rows: dict[str, list[tuple[str, str]]] = {domain: [] for domain in self._servers}
            for key in created:
                picked = 0
                for target in rng.sample(created, min(wanted + 1, len(created))):
                    if target != key and picked < wanted:
                        for domain in {self._home(key), self._home(target)}:
                            rows[domain].append(
                                (self._id_on(key, domain), self._id_on(target, domain))
                            )
                        picked += 1
            for domain, pairs in rows.items():
                self._servers[domain]._follow_many(pairs)
            for key in self._local:
                self._sync_counts(key)
        return created

    # Serving

    @contextlib.asynccontextmanager
    async def run(self) -> AsyncIterator[FakeFediverse]:
        """Serve every instance on its own loopback port (down ones get a port that
        refuses connections) until the block ends.

        Example::

            async with fedi.run():
                resolver = fedi.resolver()
        """
        async with contextlib.AsyncExitStack() as stack:
            ports: dict[str, int] = {}
            with self._lock:
                servers = dict(self._servers)
                down = set(self._down)
            for domain, server in servers.items():
                if domain in down:
                    ports[domain] = _refusing_port(stack)
                else:
                    url = await stack.enter_async_context(server.run(_LOOPBACK, 0))
                    ports[domain] = URL(url).port or 0
            with self._lock:
                self._ports = ports
            try:
                yield self
            finally:
                with self._lock:
                    self._ports = {}

    @contextlib.contextmanager
    def run_in_thread(self) -> Iterator[FakeFediverse]:
        """:meth:`run` from a background thread with its own event loop, for synchronous
        tests and subprocesses (``aiomasto crawl --resolve ...``).

        Example::

            with fedi.run_in_thread():
                resolve = [f"{host}={ip}:{port}" for host, (ip, port)
                           in fedi.resolve_map().items()]
        """
        ready: concurrent.futures.Future[None] = concurrent.futures.Future()
        loop = asyncio.new_event_loop()
        stop = asyncio.Event()

        async def serve() -> None:
            try:
                async with self.run():
                    ready.set_result(None)
                    await stop.wait()
            except Exception as exc:
                if ready.done():
                    raise
                ready.set_exception(exc)

        def main() -> None:
            try:
                loop.run_until_complete(serve())
            finally:
                loop.close()

        thread = threading.Thread(target=main, name="FakeFediverse", daemon=True)
        thread.start()
        try:
            ready.result(timeout=30)
            yield self
        finally:
            with contextlib.suppress(RuntimeError):  # the loop is already closed
                loop.call_soon_threadsafe(stop.set)
            thread.join(timeout=30)

    def url(self, domain: str) -> str:
        """The base URL clients use for an instance host: ``http://alpha.example``."""
        name = _host_name(domain)
        with self._lock:
            if name not in self._hosts:
                raise KeyError(f"no instance named {domain!r}")
        return f"http://{name}"

    def resolve_map(self) -> dict[str, tuple[str, int]]:
        """``{host: ("127.0.0.1", port)}`` for every instance host, while running.

        For a subprocess: ``--resolve alpha.example=127.0.0.1:41234``.
        """
        with self._lock:
            if not self._ports:
                raise RuntimeError("the fediverse is not running: use 'async with fedi.run()'")
            return {host: (_LOOPBACK, self._ports[home]) for host, home in self._hosts.items()}

    def resolver(self) -> StaticResolver:
        """An aiohttp resolver sending every instance host to its loopback port, while
        running (other hosts resolve as usual).

        Example: ``aiohttp.TCPConnector(resolver=fedi.resolver())``.
        """
        return StaticResolver(self.resolve_map())

    # Internals (the lock is held)

    def _server(self, domain: str) -> FakeMastodon:
        server = self._servers.get(domain)
        if server is None:
            raise KeyError(f"no instance with handle domain {domain!r}")
        return server

    def _key(self, handle: str) -> str:
        username, domain = _split(handle)
        key = f"{username.lower()}@{domain}"
        if key not in self._local:
            raise KeyError(f"no account {handle!r} (add it with add_account)")
        return key

    @staticmethod
    def _home(key: str) -> str:
        return key.rpartition("@")[2]

    def _id_on(self, key: str, domain: str) -> str:
        """The account's id on ``domain``: local there, or a remote copy made on demand."""
        home = self._home(key)
        if domain == home:
            return self._local[key]
        copies = self._copies[key]
        if domain not in copies:
            copies[domain] = self._make_copy(key, domain)
        return copies[domain]

    def _make_copy(self, key: str, domain: str) -> str:
        # Its counts come from _sync_counts, which every public caller runs afterwards.
        home = self._servers[self._home(key)]
        server = self._server(domain)
        local_id = self._local[key]
        record = home._record(local_id)
        username = record.username
        base = f"http://{home.web_domain or home.domain}"
        # Mastodon hides both lists of a remote account whose collections lack ``first``;
        # Akkoma keeps ``first`` on hidden collections, so its accounts look open elsewhere.
        return server._add_remote(
            username,
            self._home(key),
            uri=f"{base}/users/{username}",
            url=f"{base}/@{username}",
            hidden=record.hide_collections and home.flavor != "akkoma",
            suspended=record.suspended,
        )

    def _follow(self, source: str, target: str) -> None:
        for domain in {self._home(source), self._home(target)}:
            self._servers[domain].follow(self._id_on(source, domain), self._id_on(target, domain))

    def _sync_counts(self, key: str) -> None:
        """Copies show the counts of the home (a remote profile's ``totalItems``)."""
        copies = self._copies[key]
        if not copies:
            return
        followers, following = self._servers[self._home(key)].counts(self._local[key])
        for domain, copy_id in copies.items():
            self._servers[domain].set_counts(copy_id, followers=followers, following=following)

    def _neighbours(self, key: str, domain: str) -> set[str]:
        server = self._servers[domain]
        account_id = self._id_on(key, domain)
        ids = [*server.followers_of(account_id), *server.following_of(account_id)]
        return {server.handle(i).lower() for i in ids} & self._local.keys()


def _host_name(name: str) -> str:
    return name.strip().lower().rstrip(".")


def _split(handle: str) -> tuple[str, str]:
    username, sep, domain = handle.strip().removeprefix("@").partition("@")
    if not sep or not username or not domain or "@" in domain:
        raise ValueError(f"{handle!r} is not a handle like user@domain")
    return username, _host_name(domain)


def _refusing_port(stack: contextlib.AsyncExitStack) -> int:
    # Bound but never listening: the port stays ours and every connection is refused.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    stack.callback(sock.close)
    sock.bind((_LOOPBACK, 0))
    port: int = sock.getsockname()[1]
    return port
