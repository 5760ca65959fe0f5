"""Naming accounts to crawl: handles, profile URLs and (instance, id) pairs (pure).

A seed list can come from anyone's file, so everything here is strict: a target is either a
handle (``@alice@example.social``, ``alice@example.social``, or a profile URL that names one)
or an account id on a given instance (``https://example.social#12345``, or the tuple
``("https://example.social", "12345")``). Anything else raises
:class:`~aiomasto.ConfigurationError` saying what is wrong, never a crash further on.

>>> parse_target("https://Example.Social/@Alice").key
'alice@example.social'
>>> parse_target("https://example.social/@bob@other.example").key
'bob@other.example'
>>> parse_target(("https://example.social", "12345")).text
'https://example.social#12345'
"""

from __future__ import annotations

import re
from typing import Literal

from attrs import frozen
from yarl import URL

from aiomasto.errors import ConfigurationError

__all__ = ["MAX_TARGET_LENGTH", "Target", "parse_target"]

MAX_TARGET_LENGTH = 512
"""Longer than any real handle or profile URL (a host name is at most 253 characters)."""

# Mastodon's USERNAME_RE is [a-z0-9_]+([a-z0-9_.-]+[a-z0-9_]+)?; other servers allow a little
# more (GoToSocial, Akkoma: dots and dashes anywhere). Nothing that needs quoting in a URL.
_USERNAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.\-]*\Z")
_HOST_LABEL = re.compile(r"(?!-)[a-z0-9-]{1,63}(?<!-)\Z")
_ID = re.compile(r"[A-Za-z0-9_\-]{1,64}\Z")


@frozen(kw_only=True)
class Target:
    """An account to crawl, as the caller named it.

    ``kind`` is ``"handle"`` (``username`` and ``domain`` known, ``instance`` is ``None``) or
    ``"id"`` (``instance`` is the API origin such as ``https://example.social``, ``account_id``
    the local id there). ``key`` is the account key before resolution: ``user@domain``
    lower-cased for a handle, ``https://host#id`` for an id. ``text`` is the canonical text
    form, which :func:`parse_target` reads back.
    """

    kind: Literal["handle", "id"]
    username: str | None = None
    domain: str | None = None
    instance: str | None = None
    account_id: str | None = None

    @property
    def key(self) -> str:
        if self.kind == "handle":
            return f"{self.username}@{self.domain}".lower()
        return f"{self.instance}#{self.account_id}"

    @property
    def text(self) -> str:
        if self.kind == "handle":
            return f"@{self.username}@{self.domain}"
        return self.key

    def __str__(self) -> str:
        return self.text


def parse_target(value: object, *, allow_insecure_http: bool = False) -> Target:
    """Read one target: a handle, a profile URL, ``https://host#id`` or ``(instance, id)``.

    Profile URLs: ``https://host/@user`` (a local account of ``host``),
    ``https://host/@user@other`` (``host``'s page for the remote ``user@other``) and
    ``https://host/users/user``. The host of a profile URL is taken as the handle domain;
    the resolver follows WebFinger from there (a split-domain server redirects it).
    ``http://`` URLs need ``allow_insecure_http`` (tests, demos).

    Example::

        parse_target("@alice@example.social")            # handle
        parse_target("https://example.social#109000")    # id 109000 on example.social
    """
    if isinstance(value, tuple):
        if len(value) != 2 or not all(isinstance(part, str) for part in value):
            raise ConfigurationError(f"an (instance, id) target must be two strings: {value!r}")
        return _id_target(value[0], value[1], allow_insecure_http=allow_insecure_http)
    if not isinstance(value, str):
        raise ConfigurationError(
            "a target must be a handle, a profile URL or (instance, id), "
            f"not {type(value).__name__}"
        )
    text = value.strip()
    if not text:
        raise ConfigurationError("empty target: expected a handle such as @alice@example.social")
    if len(text) > MAX_TARGET_LENGTH:
        raise ConfigurationError(
            f"target {text[:40]!r}... is longer than {MAX_TARGET_LENGTH} characters"
        )
    if any(ch.isspace() or ord(ch) < 32 or ord(ch) == 127 for ch in text):
        raise ConfigurationError(f"target {_shown(text)} contains blanks or control characters")
    if "://" in text:
        return _url_target(text, allow_insecure_http=allow_insecure_http)
    if ":" in text:
        raise ConfigurationError(
            f"target {_shown(text)}: only http(s) URLs and handles such as "
            "@alice@example.social are accepted"
        )
    return _handle(text.removeprefix("@"), what=text)


def _shown(text: str) -> str:
    return repr(text if len(text) <= 80 else text[:77] + "...")


def _handle(text: str, *, what: str) -> Target:
    username, at, domain = text.partition("@")
    if not at or not username or not domain:
        raise ConfigurationError(
            f"target {_shown(what)} is not a handle: expected user@domain (e.g. "
            "@alice@example.social)"
        )
    return Target(kind="handle", username=_username(username, what), domain=_host(domain, what))


def _username(name: str, what: str) -> str:
    if len(name) > 64 or not _USERNAME.match(name):
        raise ConfigurationError(f"target {_shown(what)}: {name!r} is not a valid username")
    return name


def _host(host: str, what: str) -> str:
    """A DNS host name (IDNA-encoded, lower-cased), optionally with a port for tests."""
    name, colon, port = host.partition(":")
    if colon and (not port.isdigit() or not 0 < int(port) < 65536 or port.startswith("0")):
        raise ConfigurationError(f"target {_shown(what)}: {host!r} has an invalid port")
    try:
        name = name.rstrip(".").encode("idna").decode("ascii").lower()
    except UnicodeError:
        raise ConfigurationError(f"target {_shown(what)}: {host!r} is not a host name") from None
    labels = name.split(".")
    if len(name) > 253 or len(labels) < 2 or not all(_HOST_LABEL.match(x) for x in labels):
        raise ConfigurationError(f"target {_shown(what)}: {host!r} is not a host name")
    if labels[-1].isdigit():
        raise ConfigurationError(
            f"target {_shown(what)}: {host!r} is an address; accounts live on host names"
        )
    return f"{name}:{port}" if colon else name


def _origin(text: str, what: str, *, allow_insecure_http: bool) -> tuple[URL, str]:
    try:
        url = URL(text)
    except (ValueError, UnicodeError):
        raise ConfigurationError(f"target {_shown(what)} is not a URL") from None
    scheme = url.scheme.lower()
    if scheme not in ("http", "https"):
        raise ConfigurationError(f"target {_shown(what)}: only https:// URLs are accepted")
    if scheme == "http" and not allow_insecure_http:
        raise ConfigurationError(
            f"target {_shown(what)}: plain http:// is refused (pass allow_insecure_http=True)"
        )
    if url.raw_user or url.raw_password:
        raise ConfigurationError(f"target {_shown(what)}: a URL must not carry credentials")
    if not url.raw_host:
        raise ConfigurationError(f"target {_shown(what)} names no host")
    host = url.raw_host if url.explicit_port is None else f"{url.raw_host}:{url.explicit_port}"
    return url, _host(host, what)


def _url_target(text: str, *, allow_insecure_http: bool) -> Target:
    url, host = _origin(text, text, allow_insecure_http=allow_insecure_http)
    if url.raw_fragment:
        if url.raw_path not in ("", "/") or url.raw_query_string:
            raise ConfigurationError(
                f"target {_shown(text)}: an id target is https://host#id, nothing else"
            )
        return _id_target(
            f"{url.scheme.lower()}://{host}",
            url.fragment,
            allow_insecure_http=allow_insecure_http,
        )
    if url.raw_query_string:
        raise ConfigurationError(f"target {_shown(text)}: a profile URL has no query")
    parts = [part for part in url.path.split("/") if part]
    if len(parts) == 1 and parts[0].startswith("@"):
        name = parts[0][1:]
        if "@" in name:
            return _handle(name, what=text)  # the host's page for a remote account
        return Target(kind="handle", username=_username(name, text), domain=host.split(":")[0])
    if len(parts) == 2 and parts[0] == "users":
        return Target(kind="handle", username=_username(parts[1], text), domain=host.split(":")[0])
    raise ConfigurationError(
        f"target {_shown(text)} is not a profile URL (https://host/@user or "
        "https://host/users/user)"
    )


def _id_target(instance: str, account_id: str, *, allow_insecure_http: bool) -> Target:
    what = f"{instance}#{account_id}"
    if "://" not in instance:
        instance = f"https://{instance}"
    url, host = _origin(instance, what, allow_insecure_http=allow_insecure_http)
    if url.raw_path not in ("", "/") or url.raw_query_string or url.raw_fragment:
        raise ConfigurationError(f"target {_shown(what)}: the instance must be an origin")
    if not _ID.match(account_id):
        raise ConfigurationError(f"target {_shown(what)}: {account_id!r} is not an account id")
    return Target(kind="id", instance=f"{url.scheme.lower()}://{host}", account_id=account_id)
