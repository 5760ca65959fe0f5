"""Where the bearer token may go: the instance origin, normalised, and URLs built on it (pure).

An origin is compared as scheme, host and port after normalising each: scheme and host are
case-insensitive, a host is compared in its IDNA (``xn--``) form without a trailing dot, and a
default port is the same as no port. ``https://Example.COM:443`` and ``https://example.com``
are one origin; ``http://localhost:8080`` and ``http://localhost:8081`` are two.

A path given to the Session, a cursor and a Link are paths on the instance. A reference that
starts with ``//`` is a network-path reference (RFC 3986 §4.2): resolved against the instance it
names another host, so it is never accepted as a path, and no URL whose path starts with ``//``
is sent (its path and query would become a foreign URL the moment anyone resolves them again).
"""

from __future__ import annotations

import ipaddress

from yarl import URL

from .errors import ConfigurationError, OriginError

__all__ = [
    "check_origin",
    "instance_url",
    "normalise_instance",
    "origin_of",
    "streaming_origin",
]

_DEFAULT_PORTS = {"http": 80, "https": 443, "ws": 80, "wss": 443}
_WS_SCHEMES = {"https": "wss", "http": "ws", "wss": "wss", "ws": "ws"}

Origin = tuple[str, str, int]


def origin_of(url: URL) -> Origin | None:
    """``(scheme, host, port)`` normalised for comparison; ``None`` for a relative URL."""
    if not url.is_absolute() or not url.raw_host:
        return None
    scheme = url.scheme.lower()
    host = url.raw_host.lower().rstrip(".")  # yarl keeps the IDNA-encoded host here
    port = url.port if url.port is not None else _DEFAULT_PORTS.get(scheme, 0)
    return scheme, host, port


def normalise_instance(instance: str | URL, *, allow_insecure_http: bool) -> URL:
    """The instance origin as a URL; ``mastodon.example`` means ``https://mastodon.example``.

    Plain ``http://`` would send the token in clear text, so it is refused unless the host is a
    loopback address or the caller explicitly allows it. A URL with a path, query or fragment
    is refused rather than cut: Mastodon's API lives at the root of its origin, and a token
    meant for ``https://example.com/mastodon`` should not silently go to the whole host.

    >>> str(normalise_instance("HTTPS://Mastodon.Example:443/", allow_insecure_http=False))
    'https://mastodon.example'
    """
    if not isinstance(instance, str | URL):
        raise ConfigurationError(f"the instance must be a URL or a host name, not {instance!r}")
    text = str(instance).strip()
    if "://" not in text:
        text = f"https://{text}"
    try:
        url = URL(text)
        origin = origin_of(url)
    except (ValueError, UnicodeError):
        origin = None
    if origin is None or origin[0] not in ("http", "https"):
        raise ConfigurationError(f"not an instance URL: {str(instance)!r}")
    if url.user or url.password:
        raise ConfigurationError("the instance URL must not carry credentials")
    if url.raw_path not in ("", "/") or url.raw_query_string or url.raw_fragment:
        raise ConfigurationError(
            f"the instance URL must be an origin such as {url.origin()}, without a path, "
            f"query or fragment (got {str(url.with_query(None).with_fragment(None))!r}): "
            "Mastodon's API is at the root of its host"
        )
    scheme, host, port = origin
    if scheme == "http" and not allow_insecure_http and not _is_loopback(host):
        raise ConfigurationError(
            f"refusing plain http:// for {host}: tokens would travel in clear text; "
            "use https:// or pass allow_insecure_http=True"
        )
    return URL.build(
        scheme=scheme,
        host=host,
        port=None if port == _DEFAULT_PORTS[scheme] else port,
    )


def _is_loopback(host: str) -> bool:
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_origin(url: URL, instance: URL) -> None:
    """Refuse a URL the token must not go to: another origin, credentials, or a ``//`` path.

    Called on every URL immediately before it is sent, whatever built it (a caller's path, a
    cursor, a Link, a redirect).
    """
    problem = None
    if origin_of(url) != origin_of(instance):
        problem = "it is not the instance origin"
    elif url.raw_user or url.raw_password:
        problem = "it carries credentials of its own"
    elif url.raw_path.startswith("//"):
        problem = "its path starts with '//', which names another host when resolved again"
    if problem is None:
        return
    shown = url.with_query(None).with_fragment(None).with_user(None) if url.is_absolute() else url
    raise OriginError(
        f"refusing to send a request to {shown}: {problem} ({instance})",
        url=str(shown),
        expected_origin=str(instance),
    )


def instance_url(instance: URL, target: str) -> URL:
    """The URL for a path (``/api/v1/...``, with a query) or an absolute URL on the instance.

    The result is checked with :func:`check_origin`, so a network-path reference such as
    ``//other.example/x`` or a URL on another origin raises :class:`~aiomasto.OriginError`.
    """
    if not isinstance(target, str):
        raise ConfigurationError(f"expected a path or URL string, got {type(target).__name__}")
    if target.startswith("//"):
        url = URL(target, encoded=True)
    elif target.startswith("/"):
        url = instance.join(URL(target, encoded=True))
    elif target.lower().startswith(("http://", "https://")):
        url = URL(target, encoded=True)
    else:
        raise ConfigurationError(
            f"expected a path starting with '/' or a URL on the instance, got {target!r}"
        )
    check_origin(url, instance)
    return url


def streaming_origin(announced: object, instance: URL, *, allow_insecure: bool) -> URL:
    """Where the streaming WebSocket lives: the URL the instance announces, or the instance.

    ``announced`` is the instance's ``configuration.urls.streaming`` (v1:
    ``urls.streaming_api``), often another host (``wss://streaming.example``). It is the one
    origin besides the instance that the token may reach, so it must be a plain ``wss://``
    origin (``https://`` is read as ``wss://``); ``ws://`` only on a loopback host, or when
    the Session was allowed plain ``http://``. Anything else (absent, empty, unreadable) falls
    back to the instance itself. A path the server announces is kept as a prefix.

    >>> str(streaming_origin("wss://streaming.example", URL("https://m.example"),
    ...                      allow_insecure=False))
    'wss://streaming.example'
    >>> str(streaming_origin(None, URL("https://m.example"), allow_insecure=False))
    'wss://m.example'
    """
    fallback = instance.with_scheme(_WS_SCHEMES[instance.scheme])
    if not isinstance(announced, str) or not announced.strip():
        return fallback
    try:
        url = URL(announced.strip())
        origin = origin_of(url)
    except (ValueError, UnicodeError):
        origin = None
    if origin is None or origin[0] not in _WS_SCHEMES:
        raise OriginError(
            f"the instance announces a streaming URL that is not a WebSocket URL: {announced!r}",
            url=str(announced)[:200],
            expected_origin="wss://...",
        )
    scheme = _WS_SCHEMES[origin[0]]
    if url.raw_user or url.raw_password or url.raw_query_string or url.raw_fragment:
        raise OriginError(
            "the instance announces a streaming URL with credentials, a query or a fragment",
            url=str(url.with_user(None).with_query(None).with_fragment(None)),
            expected_origin="wss://...",
        )
    if scheme == "ws" and not allow_insecure and not _is_loopback(origin[1]):
        raise OriginError(
            f"refusing plain ws:// for {origin[1]}: the token would travel in clear text",
            url=str(url),
            expected_origin=f"wss://{origin[1]}",
        )
    return URL.build(
        scheme=scheme,
        host=origin[1],
        port=None if origin[2] == _DEFAULT_PORTS[scheme] else origin[2],
        path=url.raw_path.rstrip("/"),
        encoded=True,
    )
