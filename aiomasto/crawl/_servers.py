"""Which software an instance runs, and how its followers/following lists must be paged.

Detection follows federation.md §4: NodeInfo's ``software.name`` first (the highest 2.x
schema the server links to, fetched on the same host), then the instance endpoint
(``/api/v2/instance``, ``/api/v1/instance`` as fallback), whose ``version`` names the
software of Mastodon-compatible servers (``3.5.3 (compatible; Pixelfed 0.11.13)``) and
whose ``domain`` (v1: ``uri``) is the handle domain of the instance's local accounts.

What the walk needs to know about a server's paging is data, not code: :func:`quirks_for`
maps a software name to a :class:`Quirks` (federation.md §4.3). Unknown software is paged
like Mastodon with every guard on.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Literal

from attrs import asdict, frozen

__all__ = [
    "Quirks",
    "ServerInfo",
    "nodeinfo_link",
    "quirks_for",
    "read_instance",
    "read_nodeinfo",
    "software_from_version",
]

LinkStyle = Literal["next", "swapped", "none"]
CursorKind = Literal["follow", "account", "opaque", "none"]


@frozen(kw_only=True)
class Quirks:
    """How one server software pages followers/following (federation.md §4.3).

    ``page_limit``: the largest page the server serves (asked for on every page).
    ``cursor``: what the cursors hold (``"follow"`` ids, ``"account"`` ids, an ``"opaque"``
    token, or ``"none"``: cursors are ignored). ``links``: ``"next"`` (the link to older items
    is ``rel="next"``), ``"swapped"`` (Pixelfed: it is ``rel="prev"``) or ``"none"`` (no Link
    header: one page is all the walk can read). ``short_page_is_end``: a page shorter than
    asked ends the list even if it links on (only where the server never filters a page
    after reading it). ``ignores_cursors``: every request returns the first page.
    ``needs_user_token``: lists are served to user tokens only. ``lookup``:
    ``/api/v1/accounts/lookup`` finds local accounts by username. ``hide_flags``: where the
    owner's "hide my network" setting is read (``"hide_collections"`` or Akkoma's separate
    ``"pleroma"`` flags). ``known``: the software is in the table (else every guard is on).
    """

    page_limit: int = 40
    cursor: CursorKind = "follow"
    links: LinkStyle = "next"
    short_page_is_end: bool = False
    ignores_cursors: bool = False
    needs_user_token: bool = False
    lookup: bool = True
    hide_flags: Literal["hide_collections", "pleroma"] = "hide_collections"
    known: bool = False

    def as_dict(self) -> dict[str, object]:
        """The flags as plain data, for :class:`~aiomasto.crawl.InstanceRecord`."""
        return asdict(self)


_MASTODON = Quirks(page_limit=80, cursor="follow", short_page_is_end=True, known=True)
_TABLE: Mapping[str, Quirks] = {
    "mastodon": _MASTODON,
    "hometown": _MASTODON,
    "glitch-soc": _MASTODON,
    "gotosocial": Quirks(page_limit=80, cursor="follow", needs_user_token=True, known=True),
    "akkoma": Quirks(page_limit=40, cursor="account", hide_flags="pleroma", known=True),
    "pleroma": Quirks(page_limit=40, cursor="account", hide_flags="pleroma", known=True),
    "iceshrimp.net": Quirks(page_limit=80, cursor="account", known=True),
    "friendica": Quirks(page_limit=40, cursor="account", known=True),
    "pixelfed": Quirks(
        page_limit=80,
        cursor="opaque",
        links="swapped",
        needs_user_token=True,
        lookup=False,
        known=True,
    ),
    "sharkey": Quirks(
        page_limit=100, cursor="none", links="none", ignores_cursors=True, known=True
    ),
    "misskey": Quirks(
        page_limit=100, cursor="none", links="none", ignores_cursors=True, known=True
    ),
}


def quirks_for(software: str | None, version: str | None = None) -> Quirks:
    """The paging quirks of a server software (NodeInfo's ``software.name``).

    Names compare case-insensitively; a name the table does not know (or none) gets
    Mastodon's page size with every guard on: short pages are not the end, repeated cursors
    and identical pages stop the walk.

    >>> quirks_for("Pixelfed").links
    'swapped'
    >>> quirks_for("newfangled").short_page_is_end
    False
    """
    del version  # no quirk in the table depends on the version yet (federation.md §4.3)
    if software is None:
        return Quirks(page_limit=80)
    return _TABLE.get(software.strip().lower(), Quirks(page_limit=80))


@frozen(kw_only=True)
class ServerInfo:
    """What detection learnt: the software, its version, the handle domain, the quirks."""

    software: str | None
    version: str | None
    domain: str | None
    limited_federation: bool
    quirks: Quirks


_SCHEMA = re.compile(r"^https?://nodeinfo\.diaspora\.software/ns/schema/2\.(\d+)$")
_COMPATIBLE = re.compile(r"\(compatible;\s*([^\s;)]+)")


def nodeinfo_link(document: Any) -> str | None:
    """The href of the highest 2.x schema in a ``/.well-known/nodeinfo`` document."""
    if not isinstance(document, dict):
        return None
    links = document.get("links")
    if not isinstance(links, list):
        return None
    best: tuple[int, str] | None = None
    for link in links[:64]:
        if not isinstance(link, dict):
            continue
        rel, href = link.get("rel"), link.get("href")
        if not isinstance(rel, str) or not isinstance(href, str) or len(href) > 2048:
            continue
        match = _SCHEMA.match(rel.strip())
        if match and len(match.group(1)) < 4 and (best is None or int(match.group(1)) > best[0]):
            best = (int(match.group(1)), href)
    return None if best is None else best[1]


def read_nodeinfo(document: Any) -> tuple[str | None, str | None]:
    """``(software.name lower-cased, software.version)`` from a NodeInfo document."""
    software = document.get("software") if isinstance(document, dict) else None
    if not isinstance(software, dict):
        return None, None
    name, version = software.get("name"), software.get("version")
    name = name.strip().lower()[:64] if isinstance(name, str) and name.strip() else None
    version = version.strip()[:128] if isinstance(version, str) and version.strip() else None
    return name, version


def software_from_version(version: str | None) -> str | None:
    """The software a Mastodon-compatible ``version`` string names (§4.2), lower-cased.

    >>> software_from_version("3.5.3 (compatible; Pixelfed 0.11.13)")
    'pixelfed'
    >>> software_from_version("4.5.0+glitch")
    'mastodon'
    """
    if not version:
        return None
    match = _COMPATIBLE.search(version)
    if match:
        return match.group(1).lower().split("/")[0]
    if "+git-" in version:
        return "gotosocial"
    return "mastodon"


def read_instance(document: Any) -> tuple[str | None, str | None, bool]:
    """``(domain, version, limited_federation)`` from ``/api/v2/instance`` or v1.

    v2 names the handle domain ``domain``; v1 ``uri`` (a host, or a URL on old servers).
    """
    if not isinstance(document, dict):
        return None, None, False
    domain = document.get("domain")
    if not isinstance(domain, str):
        domain = document.get("uri")
    domain = _bare_host(domain) if isinstance(domain, str) else None
    version = document.get("version")
    version = version.strip()[:128] if isinstance(version, str) and version.strip() else None
    configuration = document.get("configuration")
    limited = isinstance(configuration, dict) and configuration.get("limited_federation") is True
    return domain, version, limited


def _bare_host(text: str) -> str | None:
    host = text.strip().lower()
    if "://" in host:
        host = host.split("://", 1)[1]
    host = host.split("/", 1)[0].rstrip(".")
    if not host or len(host) > 253 or any(ch.isspace() or ch in "@?#" for ch in host):
        return None
    return host
