"""Signing a person in, as pure functions: PKCE, discovery, the authorize URL, the callback.

Nothing here does I/O. A web backend (or :class:`aiomasto.Authorizer`) fetches and sends; this
module decides what to send and what an answer means (mastodon-api.md §3 to §7, §14):

- :func:`make_code_verifier` and :func:`code_challenge`: PKCE with S256 (RFC 7636);
- :func:`read_metadata`: the ``/.well-known/oauth-authorization-server`` document (RFC 8414),
  or Mastodon's ``/oauth/*`` paths where a server has none (Mastodon before 4.3, GoToSocial,
  Akkoma's HTML page); every endpoint must be on the instance origin;
- :class:`LoginState`: what a backend keeps server-side between the redirect and the callback;
- :func:`authorize_url` and :func:`read_callback`: the two ends of the browser's trip;
- :func:`authorization_code_form` and :func:`refresh_token_form`: ``POST /oauth/token`` bodies
  with client authentication in the body (``client_secret_post``), secrets as
  :class:`~aiomasto._redact.Secret` so no repr shows them.

Example::

    login = LoginState.new(instance="https://mastodon.example", app="Mapper",
                           redirect_uri="https://app.example/callback", scopes=("read",),
                           now=time.time())
    url = authorize_url(metadata.authorization_endpoint, client_id=client_id,
                        redirect_uri=login.redirect_uri, scopes=login.scopes,
                        state=login.state, code_challenge=login.code_challenge)
    ...  # the browser comes back to the redirect URI
    code = read_callback(login, request.query, now=time.time())
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import math
import re
import secrets
from collections.abc import Iterable, Mapping
from typing import Any, TypeGuard
from urllib.parse import quote, urlencode

from attrs import field, frozen
from yarl import URL

from ._redact import Secret, redact
from ._urls import check_origin
from .errors import (
    AuthorizationDenied,
    ConfigurationError,
    LoginError,
    LoginExpired,
    OriginError,
    StateMismatch,
)

__all__ = [
    "LoginState",
    "ServerMetadata",
    "authorization_code_form",
    "authorize_url",
    "code_challenge",
    "make_code_verifier",
    "read_callback",
    "read_metadata",
    "refresh_token_form",
]

_VERIFIER = re.compile(r"[A-Za-z0-9._~-]{43,128}")
_CHALLENGE = re.compile(r"[A-Za-z0-9_-]{43}")
_STATE_BYTES = 32  # 256 bits; RFC 6749 §10.10 asks for at least 128
_SERVER_TEXT_LIMIT = 300


def make_code_verifier() -> str:
    """A new PKCE code verifier: 43 characters of the unreserved set (32 random bytes).

    The verifier is a secret: it stays with whoever exchanges the code, and only its
    :func:`code_challenge` goes into the authorize URL.

    >>> len(make_code_verifier())
    43
    """
    return Secret(secrets.token_urlsafe(32))


def code_challenge(verifier: str) -> str:
    """The S256 code challenge of a verifier: base64url of its SHA-256, without padding.

    >>> code_challenge("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk")
    'E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM'
    """
    if not isinstance(verifier, str) or not _VERIFIER.fullmatch(verifier):
        # Never quote the value: it is a secret, even a malformed one.
        raise ConfigurationError(
            "a PKCE code verifier is 43 to 128 characters of A-Z a-z 0-9 - . _ ~ (RFC 7636)"
        )
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


# --- discovery (RFC 8414) --------------------------------------------------------------------


@frozen(kw_only=True)
class ServerMetadata:
    """Where an instance's OAuth endpoints are and what it supports.

    Endpoints are absolute URLs on the instance origin. An empty tuple means the server did not
    say (not that it supports nothing); ``userinfo_endpoint`` and ``app_registration_endpoint``
    are ``None`` when the server does not announce them.

    Example::

        metadata = read_metadata(instance, status, content_type, body)
        if "S256" in metadata.code_challenge_methods_supported: ...
        metadata.token_endpoint            # URL('https://mastodon.example/oauth/token')
    """

    issuer: str
    authorization_endpoint: URL
    token_endpoint: URL
    revocation_endpoint: URL
    userinfo_endpoint: URL | None = None
    app_registration_endpoint: URL | None = None
    scopes_supported: tuple[str, ...] = ()
    response_types_supported: tuple[str, ...] = ()
    grant_types_supported: tuple[str, ...] = ()
    code_challenge_methods_supported: tuple[str, ...] = ()

    @classmethod
    def fallback(cls, instance: URL) -> ServerMetadata:
        """Mastodon's ``/oauth/*`` endpoints on ``instance``, for a server with no document.

        That is Mastodon before 4.3 (a 404), GoToSocial (a 404) and Akkoma (an HTML page at
        the well-known path); all of them serve ``/oauth/authorize``, ``/oauth/token`` and
        ``/oauth/revoke``.

        >>> str(ServerMetadata.fallback(URL("https://mastodon.example")).token_endpoint)
        'https://mastodon.example/oauth/token'
        """
        root = instance.with_path("/").with_query(None).with_fragment(None)
        return cls(
            issuer=str(root),
            authorization_endpoint=root.with_path("/oauth/authorize"),
            token_endpoint=root.with_path("/oauth/token"),
            revocation_endpoint=root.with_path("/oauth/revoke"),
        )


_JSON_TYPE = re.compile(r"(?i)^\s*application/(?:[\w.+-]*\+)?json\s*(?:;|$)")
_ENDPOINTS = (
    "authorization_endpoint",
    "token_endpoint",
    "revocation_endpoint",
    "userinfo_endpoint",
    "app_registration_endpoint",
)
_LISTS = (
    "scopes_supported",
    "response_types_supported",
    "grant_types_supported",
    "code_challenge_methods_supported",
)


def read_metadata(
    instance: URL, status: int, content_type: str | None, body: bytes
) -> ServerMetadata:
    """The answer to ``GET /.well-known/oauth-authorization-server``, read tolerantly.

    A 2xx JSON object is the server's document: unknown keys are ignored, a missing or
    mistyped optional key keeps its default, and a missing ``authorization_endpoint`` or
    ``token_endpoint`` (or ``revocation_endpoint``) falls back to Mastodon's ``/oauth/*`` path.
    Anything else (a 404, an error status, Akkoma's HTML page, a body that is not a JSON
    object) means the server has no document: :meth:`ServerMetadata.fallback`.

    An endpoint or issuer that is not an absolute URL on the instance origin (another host, a
    relative or ``//`` reference, ``http`` for an ``https`` instance) raises
    :class:`~aiomasto.OriginError`: the client secret and codes would go there.

    Example::

        metadata = read_metadata(URL("https://mastodon.example"), 404, "text/html", b"...")
        assert metadata == ServerMetadata.fallback(URL("https://mastodon.example"))
    """
    fallback = ServerMetadata.fallback(instance)
    document = _json_object(status, content_type, body)
    if document is None:
        return fallback
    issuer = document.get("issuer")
    if isinstance(issuer, str) and issuer:
        _on_instance("issuer", issuer, instance)
    else:
        issuer = fallback.issuer
    endpoints: dict[str, URL | None] = {}
    for name in _ENDPOINTS:
        value = document.get(name)
        # An empty or mistyped endpoint is as good as a missing one.
        endpoints[name] = _on_instance(name, value, instance) if _text(value) else None
    return ServerMetadata(
        issuer=issuer,
        authorization_endpoint=endpoints["authorization_endpoint"]
        or fallback.authorization_endpoint,
        token_endpoint=endpoints["token_endpoint"] or fallback.token_endpoint,
        revocation_endpoint=endpoints["revocation_endpoint"] or fallback.revocation_endpoint,
        userinfo_endpoint=endpoints["userinfo_endpoint"],
        app_registration_endpoint=endpoints["app_registration_endpoint"],
        **{name: _strings(document.get(name)) for name in _LISTS},
    )


def _json_object(status: int, content_type: str | None, body: bytes) -> dict[str, Any] | None:
    if not 200 <= status < 300:
        return None
    if content_type is not None and not _JSON_TYPE.match(content_type):
        return None
    try:
        document = json.loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return None
    return document if isinstance(document, dict) else None


def _on_instance(name: str, value: str, instance: URL) -> URL:
    try:
        url = URL(value)
    except (ValueError, TypeError):
        url = None
    if url is None or not url.is_absolute():
        raise OriginError(
            f"refusing the server's {name}: it is not an absolute URL on {instance}",
            url=redact(value[:_SERVER_TEXT_LIMIT]),
            expected_origin=str(instance),
        )
    try:
        check_origin(url, instance)
    except OriginError as exc:
        raise OriginError(
            f"refusing the server's {name}: {exc}", url=exc.url, expected_origin=str(instance)
        ) from None
    return url


def _text(value: object) -> TypeGuard[str]:
    return isinstance(value, str) and value != ""


def _strings(value: object) -> tuple[str, ...]:
    if not isinstance(value, list):
        return ()
    return tuple(item for item in value if isinstance(item, str))


# --- the login in progress ------------------------------------------------------------------


def _scope_tuple(value: str | Iterable[str]) -> tuple[str, ...]:
    items = value.split() if isinstance(value, str) else list(value)
    for item in items:
        if not isinstance(item, str) or not item or item != item.strip() or " " in item:
            raise ConfigurationError(f"invalid scope {item!r}: no blanks or spaces allowed")
    return tuple(dict.fromkeys(items))


def _finite(value: float) -> float:
    value = float(value)
    if not math.isfinite(value):
        raise ConfigurationError("LoginState.created_at must be a finite number of seconds")
    return value


@frozen(kw_only=True)
class LoginState:
    """One person's login between the authorize redirect and the callback.

    A backend keeps it server-side (a database row, a server-side session) under the login's
    ``state`` or its own session id, and hands it back to :func:`read_callback` and the code
    exchange. It holds the PKCE ``code_verifier``, a secret: never put it in a cookie or a URL
    unencrypted. ``instance`` is the origin, ``app`` the :class:`~aiomasto.App` name, and
    ``created_at`` the time of the redirect in epoch seconds.

    Example::

        login = LoginState.new(instance="https://mastodon.example", app="Mapper",
                               redirect_uri="https://app.example/callback",
                               scopes=("read",), now=time.time())
        await db.save(login.state, login.to_json())
        ...
        login = LoginState.from_json(await db.load(request.query["state"]))
    """

    instance: str
    app: str
    state: str
    code_verifier: str = field(repr=False, converter=Secret)
    redirect_uri: str
    scopes: tuple[str, ...] = field(converter=_scope_tuple)
    created_at: float = field(converter=_finite)

    def __attrs_post_init__(self) -> None:
        for name in ("instance", "app", "state", "redirect_uri"):
            value = getattr(self, name)
            if not isinstance(value, str) or not value:
                raise ConfigurationError(f"LoginState.{name} must be a non-empty string")
        if not self.scopes:
            raise ConfigurationError("LoginState.scopes must name at least one scope")
        if not _VERIFIER.fullmatch(self.code_verifier):
            raise ConfigurationError(
                "LoginState.code_verifier must be 43 to 128 characters of A-Z a-z 0-9 - . _ ~"
            )

    @classmethod
    def new(
        cls,
        *,
        instance: str,
        app: str,
        redirect_uri: str,
        scopes: str | Iterable[str],
        now: float,
    ) -> LoginState:
        """A login with a fresh random ``state`` (256 bits) and PKCE verifier.

        >>> login = LoginState.new(instance="https://m.example", app="Mapper",
        ...                        redirect_uri="urn:ietf:wg:oauth:2.0:oob", scopes="read",
        ...                        now=1700000000.0)
        >>> len(login.state) >= 22
        True
        """
        return cls(
            instance=instance,
            app=app,
            state=secrets.token_urlsafe(_STATE_BYTES),
            code_verifier=make_code_verifier(),
            redirect_uri=redirect_uri,
            scopes=scopes,
            created_at=now,
        )

    @property
    def code_challenge(self) -> str:
        """The S256 challenge of this login's verifier, for :func:`authorize_url`."""
        return code_challenge(self.code_verifier)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict, verifier included: keep it server-side.

        The verifier is a :class:`~aiomasto._redact.Secret`, a ``str`` whose repr is hidden, so
        a logged dict does not show it while ``json.dumps`` writes it.
        """
        return {
            "instance": self.instance,
            "app": self.app,
            "state": self.state,
            "code_verifier": self.code_verifier,
            "redirect_uri": self.redirect_uri,
            "scopes": list(self.scopes),
            "created_at": self.created_at,
        }

    def to_json(self) -> str:
        """The login as one JSON object; :meth:`from_json` reads it back."""
        return json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> LoginState:
        """The login from :meth:`to_dict`'s shape; anything else raises :class:`LoginError`.

        Unknown keys are ignored. The error never quotes a value (one of them is a secret).
        """
        if not isinstance(data, Mapping):
            raise LoginError("a stored login must be a JSON object")
        for name in ("instance", "app", "state", "code_verifier", "redirect_uri"):
            if not isinstance(data.get(name), str):
                raise LoginError(f"a stored login needs {name!r} as a string")
        scopes = data.get("scopes")
        if not isinstance(scopes, list) or not all(isinstance(s, str) for s in scopes):
            raise LoginError("a stored login needs 'scopes' as a list of strings")
        created_at = data.get("created_at")
        if isinstance(created_at, bool) or not isinstance(created_at, int | float):
            raise LoginError("a stored login needs 'created_at' as epoch seconds")
        problem = None
        try:
            return cls(
                instance=data["instance"],
                app=data["app"],
                state=data["state"],
                code_verifier=data["code_verifier"],
                redirect_uri=data["redirect_uri"],
                scopes=scopes,
                created_at=created_at,
            )
        except ConfigurationError as exc:
            problem = str(exc)
        raise LoginError(f"a stored login is not valid: {problem}")

    @classmethod
    def from_json(cls, text: str | bytes) -> LoginState:
        """The login from :meth:`to_json`; garbage or a wrong shape raises :class:`LoginError`.

        >>> login = LoginState.new(instance="https://m.example", app="Mapper",
        ...                        redirect_uri="urn:ietf:wg:oauth:2.0:oob", scopes="read",
        ...                        now=1700000000.0)
        >>> LoginState.from_json(login.to_json()) == login
        True
        """
        data: Any = None
        parsed = False
        try:
            data = json.loads(text)
            parsed = True
        except (ValueError, TypeError, UnicodeDecodeError, RecursionError):
            pass
        # Raised outside the handler: the parser's exception holds the whole document, verifier
        # included, and as __context__ a traceback printer would show it.
        if not parsed:
            raise LoginError("a stored login is not valid JSON")
        return cls.from_dict(data)


# --- the browser's trip ---------------------------------------------------------------------


def _required(name: str, value: object) -> str:
    if not isinstance(value, str) or not value:
        raise ConfigurationError(f"{name} must be a non-empty string")
    return value


def authorize_url(
    endpoint: URL,
    *,
    client_id: str,
    redirect_uri: str,
    scopes: str | Iterable[str],
    state: str,
    code_challenge: str,
    force_login: bool = False,
    lang: str | None = None,
) -> str:
    """The URL to send the person's browser to (``GET /oauth/authorize``, mastodon-api.md §4).

    It carries ``response_type=code``, ``client_id``, ``redirect_uri``, ``scope``
    (space-separated), ``state``, ``code_challenge`` and ``code_challenge_method=S256``;
    ``force_login=true`` only when asked and ``lang`` only when given. No parameter is ever
    sent as ``"None"``: a missing required value raises :class:`~aiomasto.ConfigurationError`.

    Example::

        url = authorize_url(metadata.authorization_endpoint, client_id=application.client_id,
                            redirect_uri=login.redirect_uri, scopes=login.scopes,
                            state=login.state, code_challenge=login.code_challenge)
        # https://m.example/oauth/authorize?response_type=code&client_id=...
        #   &redirect_uri=urn%3Aietf%3Awg%3Aoauth%3A2.0%3Aoob&scope=read%20write&state=...
        #   &code_challenge=...&code_challenge_method=S256
    """
    if isinstance(endpoint, str):
        endpoint = URL(endpoint)
    if not isinstance(endpoint, URL) or not endpoint.is_absolute():
        raise ConfigurationError("the authorization endpoint must be an absolute URL")
    scope_list = _scope_tuple(scopes)
    if not scope_list:
        raise ConfigurationError("authorize_url needs at least one scope")
    if not isinstance(code_challenge, str) or not _CHALLENGE.fullmatch(code_challenge):
        raise ConfigurationError(
            "code_challenge must be an S256 challenge (43 base64url characters): "
            "pass code_challenge(verifier), never the verifier"
        )
    if not isinstance(force_login, bool):
        raise ConfigurationError("force_login must be True or False")
    if lang is not None and not isinstance(lang, str):
        raise ConfigurationError("lang must be a language code such as 'en', or None")
    params = {
        "response_type": "code",
        "client_id": _required("client_id", client_id),
        "redirect_uri": _required("redirect_uri", redirect_uri),
        "scope": " ".join(scope_list),
        "state": _required("state", state),
        "code_challenge": code_challenge,
        "code_challenge_method": "S256",
    }
    if force_login:
        params["force_login"] = "true"
    if lang:
        params["lang"] = lang
    # RFC 6749 §3.1: an endpoint's own query is kept, a fragment is not allowed.
    kept = [(key, value) for key, value in endpoint.query.items() if key not in params]
    query = urlencode([*kept, *params.items()], quote_via=quote, safe="")
    return f"{endpoint.with_query(None).with_fragment(None)}?{query}"


def _server_text(value: str | None) -> str | None:
    if value is None:
        return None
    # One line, bounded, and masked: the callback's query is anyone's text.
    text = " ".join(value.split())[:_SERVER_TEXT_LIMIT]
    return redact(text)


def _query_value(params: Mapping[str, str], key: str) -> str | None:
    value = params.get(key)
    if value is not None and not isinstance(value, str):
        raise ConfigurationError(
            f"callback parameter {key!r} is not a string: pass the query as a mapping of str "
            "to str (aiohttp's request.query), not parse_qs() lists"
        )
    return value


def read_callback(
    login: LoginState, params: Mapping[str, str], *, now: float, max_age: float = 600
) -> str:
    """The authorization code from the redirect back to the app (its query parameters).

    In order: an ``error`` parameter raises :class:`~aiomasto.AuthorizationDenied` (the person
    pressed Deny, or the server refused, e.g. ``invalid_scope``); a missing or different
    ``state`` raises :class:`~aiomasto.StateMismatch` (compared in constant time); a login
    older than ``max_age`` seconds (Mastodon's codes live 10 minutes) raises
    :class:`~aiomasto.LoginExpired`; no ``code`` raises :class:`~aiomasto.LoginError`.

    A replayed state is the caller's to detect: delete the stored login once it is used.

    Example::

        code = read_callback(login, request.query, now=time.time())
    """
    if not isinstance(max_age, int | float) or not max_age > 0:
        raise ConfigurationError("max_age must be a positive number of seconds")
    error, description, given, code = (
        _query_value(params, key) for key in ("error", "error_description", "state", "code")
    )
    if error is not None:
        raise AuthorizationDenied(
            error=_server_text(error) or "", error_description=_server_text(description)
        )
    # surrogatepass: a lone surrogate from a hostile query compares as itself, never as "?".
    expected = login.state.encode("utf-8", "surrogatepass")
    if given is None or not hmac.compare_digest(given.encode("utf-8", "surrogatepass"), expected):
        raise StateMismatch(
            "the callback's state does not match this login: a forged, crossed or stale "
            "callback; start the login again"
        )
    age = now - login.created_at
    if not age <= max_age:
        raise LoginExpired(age=age, max_age=max_age)
    if not code:
        raise LoginError("the callback carries no authorization code")
    return Secret(code)


# --- POST /oauth/token ----------------------------------------------------------------------


def authorization_code_form(
    *,
    client_id: str,
    client_secret: str,
    code: str,
    redirect_uri: str,
    code_verifier: str,
    scopes: str | Iterable[str],
) -> dict[str, str]:
    """The body of ``POST /oauth/token`` exchanging a code (with PKCE) for a user token.

    ``redirect_uri`` must be the one in the authorize URL. Mastodon ignores ``scope`` here (the
    grant keeps what was authorized) but GoToSocial reads it, so it is always sent.

    >>> form = authorization_code_form(client_id="cid", client_secret="cs", code="c0de",
    ...     redirect_uri="urn:ietf:wg:oauth:2.0:oob",
    ...     code_verifier="dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk", scopes="read")
    >>> form["client_secret"], form["grant_type"]
    ('[redacted]', 'authorization_code')
    """
    scope_list = _scope_tuple(scopes)
    if not scope_list:
        raise ConfigurationError("the code exchange needs at least one scope")
    if not isinstance(code_verifier, str) or not _VERIFIER.fullmatch(code_verifier):
        raise ConfigurationError(
            "code_verifier must be 43 to 128 characters of A-Z a-z 0-9 - . _ ~ (RFC 7636)"
        )
    return {
        "grant_type": "authorization_code",
        "client_id": _required("client_id", client_id),
        "client_secret": Secret(_required("client_secret", client_secret)),
        "code": Secret(_required("code", code)),
        "redirect_uri": _required("redirect_uri", redirect_uri),
        "code_verifier": Secret(code_verifier),
        "scope": " ".join(scope_list),
    }


def refresh_token_form(
    *,
    client_id: str,
    client_secret: str,
    refresh_token: str,
    scopes: str | Iterable[str] | None = None,
) -> dict[str, str]:
    """The body of ``POST /oauth/token`` renewing a user token (Akkoma, Pleroma).

    Mastodon and GoToSocial issue no refresh tokens; never send this to them. ``scope`` is
    sent only when given (the server then keeps the token's own scopes).

    >>> sorted(refresh_token_form(client_id="cid", client_secret="cs", refresh_token="rt"))
    ['client_id', 'client_secret', 'grant_type', 'refresh_token']
    """
    form = {
        "grant_type": "refresh_token",
        "client_id": _required("client_id", client_id),
        "client_secret": Secret(_required("client_secret", client_secret)),
        "refresh_token": Secret(_required("refresh_token", refresh_token)),
    }
    if scopes is not None:
        scope_list = _scope_tuple(scopes)
        if not scope_list:
            raise ConfigurationError("scopes, when given, must name at least one scope")
        form["scope"] = " ".join(scope_list)
    return form
