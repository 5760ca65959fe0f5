"""Signing people in with their Mastodon account: authorization code + PKCE, for many users.

:class:`Authorizer` is what a web backend (or the ``aiomasto login`` command) holds for one app:
``start`` gives the URL to send the person to and a small :class:`~aiomasto.LoginState` to keep
server-side; ``finish`` takes the callback's query parameters, exchanges the code, checks the
granted scopes, verifies the account and stores the token under (instance, app, account), so
one store holds many users. ``session`` opens a Session for a stored user.

Example (aiohttp.web)::

    auth = Authorizer(App(name="My site", scopes="read",
                          redirect_uris="https://site.example/callback"),
                      store=JsonFileTokenStore("tokens.json"), http=http)

    async def sign_in(request):
        begun = await auth.start(request.query["instance"])
        pending[begun.state.state] = begun.state.to_json()      # server-side, not in a cookie
        raise web.HTTPFound(begun.url)

    async def callback(request):
        login = LoginState.from_json(pending.pop(request.query.get("state", ""), "null"))
        user = await auth.finish(login, request.query)
        ...                                                      # user.account.acct, user.key
        async with auth.session(user.key.instance, user.account.id) as masto:
            me = await masto.verify_credentials()
"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Callable, Mapping
from typing import Any

import aiohttp
from attrs import field, frozen

from ._converter import decode_json
from ._tokens import AppTokens, decode_token
from ._urls import normalise_instance
from .auth import App
from .entities import CredentialAccount, Token
from .errors import ConfigurationError, NotFound, ScopeMismatch, StateMismatch
from .oauth import (
    LoginState,
    ServerMetadata,
    authorization_code_form,
    authorize_url,
    code_challenge,
    make_code_verifier,
    read_callback,
    read_metadata,
)
from .session import Session
from .stores import Credentials, MemoryTokenStore, StoreKey, TokenStore, store_keys, store_lock

__all__ = ["Authorizer", "LoginStart", "UserLogin", "discover"]

log = logging.getLogger("aiomasto")

WELL_KNOWN = "/.well-known/oauth-authorization-server"
_METADATA_TTL = 900.0


@frozen(kw_only=True)
class LoginStart:
    """Where to send the person (``url``) and what to keep until they come back (``state``)."""

    url: str
    state: LoginState


@frozen(kw_only=True)
class UserLogin:
    """A person who signed in: their account, where their token is stored, what was granted."""

    account: CredentialAccount
    key: StoreKey
    scopes: tuple[str, ...]
    token: Token = field(repr=False)


async def discover(masto: Session) -> ServerMetadata:
    """The instance's OAuth endpoints (RFC 8414), or Mastodon's ``/oauth/*`` where it has none.

    Mastodon 4.3+ serves the metadata document; older Mastodon answers 404, Akkoma an HTML page
    and GoToSocial nothing: all fall back to the ``/oauth/*`` paths. Endpoints the document
    names on another origin raise :class:`~aiomasto.OriginError`.
    """
    try:
        response = await masto._send("GET", WELL_KNOWN)
    except NotFound:
        return ServerMetadata.fallback(masto.instance)
    return read_metadata(
        masto.instance, response.status, response.headers.get("Content-Type"), response.body
    )


class Authorizer:
    """Signs people in to one app on any instance, and keeps their tokens in one store.

    ``max_age`` bounds how long a started sign-in may take (10 minutes, as Mastodon's codes).
    Granted scopes that lack a requested one raise :class:`~aiomasto.ScopeMismatch`, or, with
    ``allow_fewer_scopes=True``, are logged and accepted. Other keyword arguments go to every
    :class:`Session` it opens (``timeout``, ``retry``, ``allow_insecure_http``...).

    Example::

        auth = Authorizer(App(name="My bot", scopes="read write"), store=store)
        begun = await auth.start("mastodon.example")          # oob: the person pastes the code
        print("Open", begun.url)
        user = await auth.finish(begun.state, {"code": input("Code: "),
                                               "state": begun.state.state})
    """

    def __init__(
        self,
        app: App,
        *,
        store: TokenStore | None = None,
        http: aiohttp.ClientSession | None = None,
        max_age: float = 600.0,
        allow_fewer_scopes: bool = False,
        clock: Callable[[], float] = time.time,
        **session_options: Any,
    ) -> None:
        self.app = app
        self.store: TokenStore = store if store is not None else MemoryTokenStore()
        self._http = http
        self._max_age = max_age
        self._allow_fewer = allow_fewer_scopes
        self._clock = clock
        self._options = session_options
        self._finished: dict[str, float] = {}  # state -> when, for replays within max_age
        self._metadata: dict[str, tuple[ServerMetadata, float]] = {}  # origin -> (it, when)

    def _session(self, instance: str, **extra: Any) -> Session:
        return Session(
            instance,
            app=self.app,
            store=self.store,
            http=self._http,
            clock=self._clock,
            **self._options,
            **extra,
        )

    def session(self, instance: str, account: str | int) -> Session:
        """A Session acting as a stored user (see :meth:`accounts`), sharing the pool.

        Example::

            async with auth.session("https://mastodon.example", "109...") as masto:
                print(await masto.verify_credentials())
        """
        return self._session(instance, account=account)

    async def accounts(self, instance: str | None = None) -> list[StoreKey]:
        """The users of this app with a stored token, on ``instance`` or everywhere."""
        origin = None if instance is None else str(self._origin(instance))
        return [
            key
            for key in await store_keys(self.store)
            if key.app == self.app.name
            and key.account is not None
            and (origin is None or key.instance == origin)
        ]

    def _origin(self, instance: str) -> str:
        allow = bool(self._options.get("allow_insecure_http", False))
        return str(normalise_instance(instance, allow_insecure_http=allow))

    async def start(
        self,
        instance: str,
        *,
        scopes: str | tuple[str, ...] | None = None,
        redirect_uri: str | None = None,
        force_login: bool = False,
        lang: str | None = None,
    ) -> LoginStart:
        """Begin a sign-in: register the app on ``instance`` if needed and build the URL.

        ``scopes`` (default: all the app's) must be among the app's registered scopes, and
        ``redirect_uri`` (default: the app's first) among its redirect URIs; both are checked
        before any request. ``force_login`` makes the server ask for the password even when
        the person is signed in there; ``lang`` picks the page's language.
        """
        wanted = self._scopes(scopes)
        uri = self.app.redirect_uris[0] if redirect_uri is None else redirect_uri
        if uri not in self.app.redirect_uris:
            raise ConfigurationError(
                f"{uri!r} is not among the app's redirect URIs {list(self.app.redirect_uris)}"
            )
        async with self._session(instance) as masto:
            tokens = masto._tokens
            assert isinstance(tokens, AppTokens)
            application = await tokens.registered()
            metadata = await self._discover(masto)
            origin = str(masto.instance)
        verifier = make_code_verifier()
        login = LoginState(
            instance=origin,
            app=self.app.name,
            state=secrets.token_urlsafe(32),
            code_verifier=verifier,
            redirect_uri=uri,
            scopes=wanted,
            created_at=self._clock(),
        )
        url = authorize_url(
            metadata.authorization_endpoint,
            client_id=application.client_id or "",
            redirect_uri=uri,
            scopes=wanted,
            state=login.state,
            code_challenge=code_challenge(verifier),
            force_login=force_login,
            lang=lang,
        )
        return LoginStart(url=url, state=login)

    async def _discover(self, masto: Session) -> ServerMetadata:
        """The instance's endpoints, asked again after 15 minutes (as long as Mastodon caches)."""
        origin, now = str(masto.instance), self._clock()
        known = self._metadata.get(origin)
        if known is not None and now - known[1] < _METADATA_TTL:
            return known[0]
        metadata = await discover(masto)
        self._metadata[origin] = (metadata, now)
        return metadata

    def _scopes(self, scopes: str | tuple[str, ...] | None) -> tuple[str, ...]:
        if scopes is None:
            return self.app.scopes
        wanted = tuple(scopes.split()) if isinstance(scopes, str) else tuple(scopes)
        extra = [scope for scope in wanted if scope not in self.app.scopes]
        if not wanted or extra:
            raise ConfigurationError(
                f"scopes {list(wanted)} must be a non-empty subset of the app's registered "
                f"scopes {list(self.app.scopes)} (exact strings: 'read' does not cover "
                "'read:accounts' here)"
            )
        return wanted

    async def finish(self, login: LoginState, params: Mapping[str, str]) -> UserLogin:
        """Complete a sign-in from the callback's query parameters.

        Raises :class:`~aiomasto.AuthorizationDenied` when the person said no,
        :class:`~aiomasto.StateMismatch` for a state that does not match or was used already,
        :class:`~aiomasto.LoginExpired` when ``max_age`` has passed, and
        :class:`~aiomasto.OAuthError` when the server refuses the code.
        """
        if login.app != self.app.name:
            raise StateMismatch(f"this sign-in was started for the app {login.app!r}")
        now = self._clock()
        code = read_callback(login, params, now=now, max_age=self._max_age)
        self._forget_old(now)
        if login.state in self._finished:
            raise StateMismatch("this sign-in was finished already (a replayed callback)")
        self._finished[login.state] = now
        async with self._session(login.instance) as masto:
            tokens = masto._tokens
            assert isinstance(tokens, AppTokens)
            application = await tokens.registered()
            metadata = await self._discover(masto)
            response = await masto._send(
                "POST",
                str(metadata.token_endpoint),
                form=authorization_code_form(
                    client_id=application.client_id or "",
                    client_secret=application.client_secret or "",
                    code=code,
                    redirect_uri=login.redirect_uri,
                    code_verifier=login.code_verifier,
                    scopes=login.scopes,
                ),
                idempotent=False,  # a code is good for one exchange
            )
            token = decode_token(response)
            granted = self._check_scopes(login.scopes, token)
            verified = await masto._send("GET", "/api/v1/accounts/verify_credentials", token=token)
            account = decode_json(CredentialAccount, verified.body, **verified.context())
            key = StoreKey(instance=login.instance, app=self.app.name, account=account.id)
            async with store_lock(self.store, key):
                await self.store.save(key, Credentials(app=application, token=token))
        log.info("signed in %s on %s for %r", account.acct, login.instance, self.app.name)
        return UserLogin(account=account, key=key, scopes=granted, token=token)

    def _check_scopes(self, requested: tuple[str, ...], token: Token) -> tuple[str, ...]:
        granted = token.scopes or requested  # a server that does not say granted what was asked
        missing = tuple(scope for scope in requested if scope not in granted)
        if missing and not self._allow_fewer:
            raise ScopeMismatch(requested=requested, granted=granted, missing=missing)
        if missing:
            log.warning("the server granted %s, without %s", list(granted), missing)
        return granted

    def _forget_old(self, now: float) -> None:
        for state, when in list(self._finished.items()):
            if now - when > self._max_age:
                del self._finished[state]
