"""From a handle to the account on its home instance (federation.md §1.5).

1. WebFinger on the handle's domain (``Accept: application/jrd+json, application/json``,
   at most 3 redirects, each one checked; on 404 the host-meta ``lrdd`` template, once;
   410 means the account is gone). A subject that differs from the handle is asked again,
   once, and both answers must agree (Mastodon's own check, §1.3).
2. The API base is the scheme and host of the ``self`` link (the actor): a split-domain
   server's web host. Nothing under ``/api`` is ever asked of the handle domain.
3. ``/api/v1/accounts/lookup?acct=<username>`` on the API host, with the bare username, the
   one form every server treats as local (§1.4); an ``(instance, id)`` target is read with
   ``/api/v1/accounts/:id`` instead.
4. The profile's flags: ``hide_collections``, Akkoma's ``pleroma.hide_followers`` /
   ``hide_follows``, ``suspended``, ``moved``.

WebFinger answers are anyone's text: a body larger than :data:`MAX_WEBFINGER_BYTES`, JSON of
the wrong shape, a ``self`` link to another scheme all make the account "unresolved" with a
reason, never an exception out of the crawl.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections import OrderedDict
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import quote

from attrs import frozen
from yarl import URL

from aiomasto._converter import decode, loads
from aiomasto._fastpath import make_constructor
from aiomasto._http import Transport
from aiomasto._protocol import RawResponse
from aiomasto._singleflight import SingleFlight
from aiomasto.entities import Account
from aiomasto.errors import (
    ConfigurationError,
    DecodeError,
    Gone,
    MastodonError,
    NotFound,
    TransportError,
)

from ._instances import AuthRequired, Instance, Instances, Unreachable
from ._model import AccountRecord, ListedAccount, Outcome
from ._targets import Target, parse_target

__all__ = ["MAX_WEBFINGER_BYTES", "Profile", "Resolution", "Resolver", "account_record"]

log = logging.getLogger("aiomasto.crawl")

MAX_WEBFINGER_BYTES = 256 * 1024
"""Real WebFinger and host-meta documents are a few hundred bytes."""

_MAX_REDIRECTS = 3
_REDIRECTS = frozenset({301, 302, 303, 307, 308})
_SELF_TYPES = (
    "application/activity+json",
    'application/ld+json; profile="https://www.w3.org/ns/activitystreams"',
)
_CACHE_SIZE = 10_000
_ATTRIBUTE = re.compile(r"""([A-Za-z_:][\w:.-]*)\s*=\s*(?:"([^"]*)"|'([^']*)')""")
# A handle domain that failed this many times is not asked again in this crawl.
_DOMAIN_FAILURES = 2


@frozen(kw_only=True)
class Profile:
    """The account as its home instance shows it, with the flags the walk needs."""

    account: Account
    hide_followers: bool
    hide_following: bool


@frozen(kw_only=True)
class Resolution:
    """Where an account's lists live, or why they cannot be read.

    ``outcome`` is ``None`` when the account was found; otherwise it is the outcome of every
    list of the account (``unresolved``, ``gone``, ``unreachable``, ``auth_required``,
    ``failed``) and ``detail`` says why.
    """

    key: str
    acct: str | None = None
    api_base: str | None = None
    account_id: str | None = None
    profile: Profile | None = None
    outcome: Outcome | None = None
    detail: str = ""


class _Failed(Exception):
    """Resolution stops here with this outcome."""

    def __init__(self, outcome: Outcome, detail: str) -> None:
        super().__init__(detail)
        self.outcome: Outcome = outcome
        self.detail = detail


class Resolver:
    """Resolves targets once per crawl (cached), against real WebFinger and API answers."""

    def __init__(
        self,
        instances: Instances,
        transport: Transport,
        *,
        allow_insecure_http: bool,
        count_request: Callable[[int], None],
        sleep_released: Callable[[float], Any],
        per_domain: int = 4,
    ) -> None:
        self._instances = instances
        self._transport = transport
        self._scheme = "http" if allow_insecure_http else "https"
        self._allow_http = allow_insecure_http
        self._count = count_request
        self._sleep = sleep_released
        self._cache: OrderedDict[str, Resolution] = OrderedDict()
        self._flights: dict[str, SingleFlight[Resolution]] = {}
        self._domain_failures: dict[str, tuple[int, str]] = {}
        # WebFinger and host-meta requests to one handle domain at once: as many as one
        # instance gets (a seed file of 10,000 handles on one domain opens a few at a time).
        self._per_domain = per_domain
        self._gates: dict[str, asyncio.Semaphore] = {}

    async def resolve(
        self,
        target: str,
        *,
        api_base: str | None = None,
        account_id: str | None = None,
        key: str | None = None,
    ) -> Resolution:
        """The account ``target`` names, read on its home instance.

        ``api_base`` and ``account_id`` (a unit that knows them already, with its account
        ``key``) skip WebFinger: the account is read by id there.
        """
        cache_key = f"{api_base}#{account_id}" if api_base and account_id else target
        cached = self._cache.get(cache_key)
        if cached is not None:
            self._cache.move_to_end(cache_key)
            return cached
        flight = self._flights.get(cache_key)
        if flight is not None:
            # Another walk is resolving it: wait for that answer without holding a global
            # slot, which the other walk may need to finish (it may be waiting for one).
            return await self._instances.released(
                flight.run(lambda: self._resolve(target, api_base, account_id, key))
            )
        flight = self._flights[cache_key] = SingleFlight()
        try:
            resolution = await flight.run(lambda: self._resolve(target, api_base, account_id, key))
        finally:
            self._flights.pop(cache_key, None)
        self._remember(cache_key, resolution)
        if resolution.api_base and resolution.account_id:
            # A unit that knows where its account lives finds it here too.
            self._remember(f"{resolution.api_base}#{resolution.account_id}", resolution)
        return resolution

    def _remember(self, cache_key: str, resolution: Resolution) -> None:
        self._cache[cache_key] = resolution
        self._cache.move_to_end(cache_key)
        if len(self._cache) > _CACHE_SIZE:
            self._cache.popitem(last=False)

    async def _resolve(
        self, text: str, api_base: str | None, account_id: str | None, key: str | None
    ) -> Resolution:
        try:
            target = parse_target(text, allow_insecure_http=self._allow_http)
        except ConfigurationError as exc:
            return Resolution(key=text.lower()[:200], outcome="unresolved", detail=str(exc))
        try:
            if api_base and account_id:
                return await self._by_id(key or target.key, api_base, account_id)
            if target.kind == "id":
                assert target.instance is not None
                assert target.account_id is not None
                return await self._by_id(target.key, target.instance, target.account_id)
            return await self._by_handle(target)
        except _Failed as failed:
            return Resolution(key=target.key, outcome=failed.outcome, detail=failed.detail)
        except Unreachable as exc:
            return Resolution(key=target.key, outcome="unreachable", detail=str(exc))

    def close(self) -> None:
        """Stop the resolutions under way (the crawl is over)."""
        for flight in list(self._flights.values()):
            flight.cancel()

    # -- handle → API host --------------------------------------------------------------------

    async def _by_handle(self, target: Target) -> Resolution:
        assert target.username is not None
        assert target.domain is not None
        subject, actor = await self._webfinger(target.username, target.domain)
        username, _, domain = subject.partition("@")
        if subject.lower() != target.key:
            # A server may answer for another name (a split domain's web host, an alias):
            # its own answer about that name must agree (federation.md §1.3).
            try:
                again, again_actor = await self._webfinger(username, domain)
            except _Failed as failed:
                raise _Failed(
                    "unresolved",
                    f"WebFinger for {target.key} names {subject}, which could not be "
                    f"confirmed: {failed.detail}",
                ) from None
            if again.lower() != subject.lower() or again_actor != actor:
                raise _Failed(
                    "unresolved",
                    f"WebFinger for {target.key} names {subject}, whose own WebFinger "
                    "does not agree",
                )
        actor_url = URL(actor)
        api_base = str(actor_url.origin())
        instance = self._instances.get(api_base)
        try:
            info = await instance.detect()
            if not info.quirks.lookup:
                raise _Failed(
                    "unresolved",
                    f"{instance.host} ({info.software}) cannot look accounts up by name; "
                    f"name the account as {api_base}#<id>",
                )
            data = await self._api_json(instance, f"/api/v1/accounts/lookup?acct={quote(username)}")
        except NotFound:
            raise await self._missing(instance, username, domain) from None
        profile = _profile(data)
        account = profile.account
        if account.username.lower() != username.lower():
            # Sharkey's lookup answers with the first search hit, maybe someone else (§1.4).
            raise _Failed(
                "unresolved",
                f"{instance.host} answered the lookup of {username!r} with {account.username!r}",
            )
        return Resolution(
            key=subject.lower(),
            acct=subject,
            api_base=api_base,
            account_id=account.id,
            profile=profile,
        )

    async def _missing(self, instance: Instance, username: str, domain: str) -> _Failed:
        """Why a lookup found no account WebFinger had vouched for: deleted in between
        (WebFinger, asked again, now says so), or a server that contradicts itself."""
        try:
            await self._webfinger(username, domain)
        except _Failed as failed:
            if failed.outcome == "gone":
                return _Failed("gone", f"{instance.host}: lookup answered 404; {failed.detail}")
        return _Failed("unresolved", f"{instance.host} has no account {username!r}")

    async def _by_id(self, key: str, api_base: str, account_id: str) -> Resolution:
        instance = self._instances.get(api_base)
        try:
            info = await instance.detect()
            data = await self._api_json(instance, f"/api/v1/accounts/{quote(account_id, safe='')}")
        except (NotFound, Gone):
            raise _Failed("gone", f"{instance.host} has no account {account_id}") from None
        profile = _profile(data)
        acct = profile.account.acct
        if "@" in acct:
            # Not a local account: its lists live on its own home instance.
            return await self._by_handle(parse_target(acct))
        # The handle domain as the server names it; else the key's, when the key is a handle.
        domain = info.domain or (key.rpartition("@")[2] if "@" in key else instance.host)
        full = f"{acct}@{domain}"
        return Resolution(
            key=full.lower(),
            acct=full,
            api_base=api_base,
            account_id=profile.account.id,
            profile=profile,
        )

    async def _api_json(self, instance: Instance, path: str) -> Any:
        try:
            async with self._instances.turn(instance):
                response = await instance.get(path)
        except Unreachable as exc:
            raise _Failed("unreachable", str(exc)) from None
        except AuthRequired as exc:
            raise _Failed("auth_required", str(exc)) from None
        except (NotFound, Gone):
            raise
        except MastodonError as exc:
            raise _Failed("failed", f"{instance.host}: {exc}") from None
        try:
            return loads(response.body, "Account", **response.context())
        except DecodeError as exc:
            raise _Failed("failed", str(exc)) from None

    # -- WebFinger ----------------------------------------------------------------------------

    async def _webfinger(self, username: str, domain: str) -> tuple[str, str]:
        """``(subject without "acct:", self href)`` of ``username@domain``."""
        failed = self._domain_failures.get(domain)
        if failed is not None and failed[0] >= _DOMAIN_FAILURES:
            raise _Failed("unreachable", f"{domain} is unreachable: {failed[1]}")
        resource = f"acct:{username}@{domain}"
        url = URL.build(
            scheme=self._scheme,
            host=domain.split(":")[0],
            port=int(domain.split(":")[1]) if ":" in domain else None,
            path="/.well-known/webfinger",
            query={"resource": resource},
        )
        response = await self._fetch(url, domain)
        if response.status == 404:
            template = await self._lrdd_template(domain)
            if template is None:
                raise _Failed("unresolved", f"{domain} knows no {username}@{domain} (404)")
            response = await self._fetch(
                _checked(template.replace("{uri}", quote(resource, safe="")), self._allow_http),
                domain,
            )
        if response.status == 410:
            raise _Failed("gone", f"{username}@{domain} is gone (WebFinger 410)")
        if response.status >= 500:
            self._domain_failed(domain, f"WebFinger answered {response.status}")
            raise _Failed("unreachable", f"{domain}: WebFinger answered {response.status}")
        if response.status != 200:
            raise _Failed(
                "unresolved",
                f"{domain}: WebFinger for {username}@{domain} answered {response.status}",
            )
        return _read_jrd(response.body, f"{username}@{domain}", allow_http=self._allow_http)

    async def _lrdd_template(self, domain: str) -> str | None:
        url = URL.build(
            scheme=self._scheme,
            host=domain.split(":")[0],
            port=int(domain.split(":")[1]) if ":" in domain else None,
            path="/.well-known/host-meta",
        )
        response = await self._fetch(url, domain, accept="application/xrd+xml")
        if response.status != 200:
            return None
        return _read_lrdd(response.body)

    async def _fetch(
        self, url: URL, domain: str, *, accept: str = "application/jrd+json, application/json"
    ) -> RawResponse:
        """One document, following at most 3 checked redirects; failures become _Failed."""
        for hop in range(_MAX_REDIRECTS + 1):
            response = await self._send(url, domain, accept)
            location = response.headers.get("Location")
            if response.status not in _REDIRECTS or not location:
                return response
            if hop == _MAX_REDIRECTS:
                break
            try:
                url = _checked(str(url.join(URL(location))), self._allow_http)
            except ValueError:
                raise _Failed("unresolved", f"{domain} redirects to an unreadable URL") from None
        raise _Failed("unresolved", f"{domain}: more than {_MAX_REDIRECTS} WebFinger redirects")

    async def _send(self, url: URL, domain: str, accept: str) -> RawResponse:
        last = ""
        for attempt in range(2):
            gate = self._gates.get(domain)
            if gate is None:
                gate = self._gates[domain] = asyncio.Semaphore(self._per_domain)
            try:
                async with self._instances.hold(gate):
                    self._count(1)
                    response = await self._transport.send("GET", url, headers={"Accept": accept})
            except TransportError as exc:
                last = str(exc)
                if "larger than" in last:
                    raise _Failed(
                        "unresolved", f"{domain}: the WebFinger answer is too large"
                    ) from None
                if attempt == 0:
                    await self._sleep(2.0)
                continue
            self._domain_failures.pop(domain, None)
            return response
        self._domain_failed(domain, last)
        raise _Failed("unreachable", f"{domain} did not answer: {last}")

    def _domain_failed(self, domain: str, why: str) -> None:
        count = self._domain_failures.get(domain, (0, ""))[0] + 1
        self._domain_failures[domain] = (count, why)


def _checked(text: str, allow_http: bool) -> URL:
    """A URL the resolver may fetch: http(s) as allowed, a host, no credentials."""
    if len(text) > 2048:
        raise _Failed("unresolved", "a WebFinger URL longer than 2048 characters")
    try:
        url = URL(text)
    except (ValueError, UnicodeError):
        raise _Failed("unresolved", "an unreadable WebFinger URL") from None
    schemes = ("https", "http") if allow_http else ("https",)
    if url.scheme.lower() not in schemes or not url.raw_host:
        raise _Failed("unresolved", f"refusing to fetch {url.scheme}:// URL from WebFinger")
    if url.raw_user or url.raw_password:
        raise _Failed("unresolved", "refusing a WebFinger URL with credentials")
    return url


def _read_jrd(body: bytes, handle: str, *, allow_http: bool) -> tuple[str, str]:
    try:
        document = loads(body, "WebFinger")
    except DecodeError as exc:
        raise _Failed("unresolved", f"WebFinger for {handle}: {exc}") from None
    if not isinstance(document, dict):
        raise _Failed("unresolved", f"WebFinger for {handle} is not a JSON object")
    subject = document.get("subject")
    if not isinstance(subject, str) or not subject.lower().startswith("acct:"):
        raise _Failed("unresolved", f"WebFinger for {handle} has no acct: subject")
    subject = subject[5:]
    try:
        named = parse_target(subject)
    except ConfigurationError:
        raise _Failed("unresolved", f"WebFinger for {handle} names an invalid subject") from None
    if named.kind != "handle":
        raise _Failed("unresolved", f"WebFinger for {handle} names an invalid subject")
    links = document.get("links")
    if not isinstance(links, list):
        raise _Failed("unresolved", f"WebFinger for {handle} has no links")
    for link in links[:100]:
        if not isinstance(link, dict) or link.get("rel") != "self":
            continue
        kind, href = link.get("type"), link.get("href")
        if kind not in _SELF_TYPES or not isinstance(href, str):
            continue
        url = _checked(href, allow_http)
        return subject, str(url)
    raise _Failed("unresolved", f"WebFinger for {handle} has no ActivityPub self link")


def _read_lrdd(body: bytes) -> str | None:
    """The ``lrdd`` template of a host-meta XRD document, read without an XML parser.

    An XML parser would expand entities a hostile server defines; the template is one
    attribute of one element, found by text.
    """
    if len(body) > MAX_WEBFINGER_BYTES or b"<!ENTITY" in body:
        return None
    text = body.decode("utf-8", "replace")
    for chunk in text.split("<Link")[1:50]:
        element = chunk.split(">", 1)[0]
        attributes = _attributes(element)
        if attributes.get("rel") == "lrdd" and "{uri}" in attributes.get("template", ""):
            return attributes["template"].replace("&amp;", "&")
    return None


def _attributes(element: str) -> Mapping[str, str]:
    found: dict[str, str] = {}
    for name, double, single in _ATTRIBUTE.findall(element):
        found.setdefault(name.lower(), double or single)
    return found


def _profile(data: Any) -> Profile:
    try:
        account = decode(Account, data)
    except DecodeError as exc:
        raise _Failed("failed", f"the account could not be read: {exc}") from None
    pleroma = data.get("pleroma") if isinstance(data, dict) else None
    hide_followers = hide_following = bool(account.hide_collections)
    if isinstance(pleroma, dict):
        hide_followers = hide_followers or pleroma.get("hide_followers") is True
        hide_following = hide_following or pleroma.get("hide_follows") is True
    return Profile(account=account, hide_followers=hide_followers, hide_following=hide_following)


def account_record(account: Account | ListedAccount, *, domain: str, seen_on: str) -> AccountRecord:
    """An :class:`AccountRecord` for an account an instance showed, keyed canonically.

    A local account's ``acct`` has no domain: the instance's handle ``domain`` is added.
    """
    acct = account.acct if "@" in account.acct else f"{account.acct}@{domain}"
    moved = account.moved
    moved_to = None
    if moved is not None:
        moved_to = (moved.acct if "@" in moved.acct else f"{moved.acct}@{domain}").lower()
    # One per listed account of a crawl: built without attrs' frozen __init__, by position
    # (a keyword call costs twice the building), in AccountRecord's field order.
    return _record(
        acct.lower(),  # key
        acct,
        account.uri,
        account.url,
        account.display_name,
        account.note,
        account.avatar,
        account.bot,
        account.locked,
        account.group,
        account.created_at,
        account.followers_count,
        account.following_count,
        account.statuses_count,
        account.suspended,
        moved_to,
        seen_on,
    )


_record = make_constructor(AccountRecord)
