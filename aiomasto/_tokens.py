"""The token lifecycle, below the Session: where a Session's bearer token comes from.

Three strategies behind one small interface (:class:`Tokens`):

- :class:`GivenToken`: a token the caller handed over (``access_token=``); used as it is,
  never replaced.
- :class:`AppTokens`: the app's own client-credentials token. Registers the app and obtains the
  token when the store has none; renews a token the server rejects, once for every task that
  saw it rejected; registers again, once a Session, when the server has forgotten the app.
- :class:`UserTokens`: a person's token from the store (saved by :class:`~aiomasto.Authorizer`),
  refreshed before it expires and when the server says it expired, where the server issues
  refresh tokens (Akkoma, Pleroma; never Mastodon).

Every acquisition runs once for all the tasks that need it (:class:`SingleFlight`), inside the
store's lock, so Sessions in other processes that share the store find what this one saved.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime
from typing import Protocol

from attrs import evolve

from ._converter import decode_json
from ._protocol import RawResponse, is_token_rejection
from ._singleflight import SingleFlight
from .auth import App, client_credentials_form, registration_form, revoke_form
from .entities import Application, Token
from .errors import ConfigurationError, DecodeError, HTTPError, OAuthError, UsageError
from .oauth import refresh_token_form
from .stores import Credentials, StoreKey, TokenStore, store_lock

__all__ = ["AppTokens", "GivenToken", "NoToken", "Send", "Tokens", "UserTokens", "decode_token"]

log = logging.getLogger("aiomasto")


class Send(Protocol):
    """The Session's way to send a request: ``send(method, path, form=..., idempotent=...)``."""

    def __call__(
        self,
        method: str,
        path: str,
        /,
        *,
        form: Mapping[str, str] | None = None,
        idempotent: bool | None = None,
    ) -> Awaitable[RawResponse]: ...


class Tokens(Protocol):
    """Where a Session's token comes from, and what happens when the server refuses it."""

    @property
    def application(self) -> Application | None:
        """The registered application, once known."""
        ...

    @property
    def cached(self) -> Token | None:
        """The token in hand, without asking anyone for one."""
        ...

    async def current(self) -> Token | None:
        """The token to send now, obtained or refreshed first if needed."""
        ...

    async def replace(self, rejected: Token, error: HTTPError) -> Token | None:
        """A new token after the server refused ``rejected``, or ``None`` (raise ``error``)."""
        ...

    async def revoke(self) -> None:
        """Revoke the token on the server and forget it."""
        ...

    def cancel(self) -> None:
        """Stop any acquisition under way (the Session is closing)."""
        ...


def decode_token(response: RawResponse) -> Token:
    """The Token of a ``/oauth/token`` answer, stamped with the time it was issued.

    A token that expires needs its issue time to know when; a server that does not send
    ``created_at`` gets the moment the answer arrived.
    """
    try:
        token = decode_json(Token, response.body, **response.context())
    except DecodeError as exc:
        failure = exc
    else:
        if token.created_at is None:
            token = evolve(token, created_at=datetime.now(UTC))
        return token
    # Without the decoder's frames: their locals hold the answer, and with it the token.
    raise failure.with_traceback(None)


class NoToken:
    """An anonymous Session: no token at all."""

    application = None
    cached = None

    async def current(self) -> Token | None:
        return None

    async def replace(self, rejected: Token, error: HTTPError) -> Token | None:
        return None

    async def revoke(self) -> None:
        return None

    def cancel(self) -> None:
        return None


class GivenToken:
    """A token the caller already has: used as it is and never replaced.

    Revoking it sends the client credentials too when the app's registration is in the store
    (Mastodon refuses to revoke a user token without them).
    """

    def __init__(
        self, access_token: str, send: Send, *, store: TokenStore, key: StoreKey | None
    ) -> None:
        self._token: Token | None = Token(access_token=access_token)
        self._send = send
        self._store = store
        self._key = key
        self.application: Application | None = None

    @property
    def cached(self) -> Token | None:
        return self._token

    async def current(self) -> Token | None:
        return self._token

    async def replace(self, rejected: Token, error: HTTPError) -> Token | None:
        return None  # not ours to replace: the caller hears Unauthorized

    async def revoke(self) -> None:
        token = self._token
        if token is None:
            return
        if self.application is None and self._key is not None:
            stored = await self._store.load(self._key)
            self.application = stored.app if stored else None
        await revoke_token(self._send, token, self.application)
        self._token = None

    def cancel(self) -> None:
        return None


async def revoke_token(send: Send, token: Token, application: Application | None) -> None:
    """``POST /oauth/revoke`` (RFC 7009), with client authentication when the app is known."""
    await send(
        "POST",
        "/oauth/revoke",
        form=revoke_form(token.access_token, application),
        idempotent=True,  # revoking twice is harmless (RFC 7009)
    )


class _Stored:
    """What the strategies that keep their token in a store share."""

    def __init__(self, send: Send, *, store: TokenStore, key: StoreKey) -> None:
        self._send = send
        self._store = store
        self._key = key
        self._token: Token | None = None
        self._loaded = False
        self._flight: SingleFlight[None] = SingleFlight()
        self.application: Application | None = None

    @property
    def cached(self) -> Token | None:
        return self._token

    def cancel(self) -> None:
        self._flight.cancel()


class AppTokens(_Stored):
    """The app's own client-credentials token, registered and obtained once, kept in a store."""

    def __init__(
        self, app: App, send: Send, *, store: TokenStore, key: StoreKey, instance: str
    ) -> None:
        super().__init__(send, store=store, key=key)
        self._app = app
        self._instance = instance
        self._registration_flight: SingleFlight[None] = SingleFlight()
        self._registered_again = False

    async def current(self) -> Token | None:
        if not self._loaded:
            await self._flight.run(self._acquire)
        return self._token

    async def replace(self, rejected: Token, error: HTTPError) -> Token | None:
        """Renew a rejected app token, once for all the tasks that saw it rejected."""
        if not is_token_rejection(error):
            return None
        if self._token is rejected:
            log.info(
                "the app token of %r was rejected by %s; requesting a new one",
                self._app.name,
                self._instance,
            )
            await self._flight.run(lambda: self._acquire(rejected))
        return self._token

    def cancel(self) -> None:
        super().cancel()
        self._registration_flight.cancel()

    async def registered(self) -> Application:
        """The app's registration with its client credentials: from the store, or made now.

        For signing people in, which needs the client credentials and no app token.
        """
        if self.application is None:
            await self._registration_flight.run(self._load_or_register)
        assert self.application is not None
        return self.application

    async def _load_or_register(self) -> None:
        if self.application is not None:
            return
        async with store_lock(self._store, self._key):
            stored = await self._store.load(self._key)
            if stored is not None and stored.app is not None and self._app.matches(stored.app):
                self.application = stored.app
                return
            self.application = await self._register_and_save()

    async def _acquire(self, rejected: Token | None = None) -> None:
        """Load the app and its token from the store, or register and ask for what is missing.

        The store's lock (when it has one) is held throughout, so Sessions in other processes
        sharing the store wait, then find what this one saved instead of registering again. A
        stored token equal to ``rejected`` (the server refused it) is not used again.
        """
        if self._loaded and rejected is None:
            return
        app, key = self._app, self._key
        async with store_lock(self._store, key):
            stored = await self._store.load(key)
            application = stored.app if stored else None
            token = stored.token if stored else None
            if application is not None and not app.matches(application):
                log.info(
                    "the stored registration of %r on %s lacks the requested scopes or redirect "
                    "URIs; registering the app again",
                    app.name,
                    self._instance,
                )
                application, token = None, None
            if token is not None and not set(app.requested_token_scopes) <= set(token.scopes):
                token = None  # the app now asks for more than the stored token was granted
            if token is not None and rejected is not None:
                if token.access_token == rejected.access_token:
                    token = None
                else:
                    log.info("another Session renewed the app token of %r", app.name)
            fresh = application is None
            if application is None:
                application = await self._register_and_save()
            if token is None:
                application, token = await self._obtain(application, fresh=fresh)
        self.application, self._token, self._loaded = application, token, True

    async def _register_and_save(self) -> Application:
        application = await register(self._send, self._app)
        log.info("registered app %r on %s", self._app.name, self._instance)
        # Saved at once: a crash before the token arrives must not cost another registration.
        await self._store.save(self._key, Credentials(app=application))
        return application

    async def _request_token(self, application: Application) -> Token:
        response = await self._send(
            "POST",
            "/oauth/token",
            form=client_credentials_form(self._app, application),
            idempotent=True,  # the server hands back the same token (token reuse)
        )
        token = decode_token(response)
        log.info("obtained an app token for %r on %s", self._app.name, self._instance)
        return token

    async def _obtain(self, application: Application, *, fresh: bool) -> tuple[Application, Token]:
        """Request an app token and save it; register again if the app is gone, once a Session.

        ``invalid_client`` for credentials that worked before means the app was deleted on the
        server (an admin, or app vacuuming before Mastodon 4.3). For an app registered moments
        ago it means something else is wrong, and the error is raised; so it is when this
        Session has registered again once already (a server that keeps forgetting apps must
        not get a registration per request).
        """
        try:
            token = await self._request_token(application)
        except OAuthError as exc:
            if fresh or exc.error != "invalid_client" or self._registered_again:
                raise
            self._registered_again = True
            log.warning(
                "app %r is unknown to %s (deleted server-side?); registering it again",
                self._app.name,
                self._instance,
            )
            application = await self._register_and_save()
            token = await self._request_token(application)
        await self._store.save(self._key, Credentials(app=application, token=token))
        return application, token

    async def revoke(self) -> None:
        """Revoke the token on the server and forget it (the app registration is kept).

        The next request obtains a new app token.
        """
        token = self._token
        if token is None:
            return
        await revoke_token(self._send, token, self.application)
        self._token, self._loaded = None, False
        async with store_lock(self._store, self._key):
            stored = await self._store.load(self._key)
            if stored is None or stored.token is None or stored.token == token:
                # Only the revoked token is forgotten: another process may have saved a newer one.
                await self._store.save(self._key, Credentials(app=self.application))


async def register(send: Send, app: App) -> Application:
    """``POST /api/v1/apps``: the registered application, with its client credentials."""
    response = await send("POST", "/api/v1/apps", form=registration_form(app))
    application = decode_json(Application, response.body, **response.context())
    if not application.client_id or not application.client_secret:
        raise DecodeError(
            "the server registered the app but sent no client_id or client_secret",
            entity="Application",
            **response.context(),
        )
    return application


# A token this close to its expiry is refreshed before it is used: a request in flight must
# not arrive after it expired.
_REFRESH_MARGIN = 60.0
_REFRESH_SHARE = 0.1  # or this share of its lifetime, for short-lived tokens


def expires_at(token: Token) -> float | None:
    """When ``token`` expires (epoch seconds), if the server said it does."""
    if token.expires_in is None or token.created_at is None:
        return None
    return token.created_at.timestamp() + token.expires_in


def needs_refresh(token: Token, now: float) -> bool:
    """Whether ``token`` expires so soon that it should be refreshed before it is sent."""
    end = expires_at(token)
    if end is None or token.refresh_token is None or token.expires_in is None:
        return False
    return now >= end - min(_REFRESH_MARGIN, _REFRESH_SHARE * token.expires_in)


async def refresh_token(send: Send, application: Application, old: Token) -> Token:
    """Exchange ``old``'s refresh token for a new token (Akkoma, Pleroma) at ``/oauth/token``."""
    assert old.refresh_token is not None  # checked by the caller
    response = await send(
        "POST",
        "/oauth/token",
        form=refresh_token_form(
            client_id=application.client_id or "",
            client_secret=application.client_secret or "",
            refresh_token=old.refresh_token,
        ),
        idempotent=True,
    )
    token = decode_token(response)
    if token.refresh_token is None:
        token = evolve(token, refresh_token=old.refresh_token)  # the old one still serves
    return token


class UserTokens(_Stored):
    """A person's token, stored under (instance, app, account) by the sign-in flow.

    Refreshed, once for every task that needs it, shortly before it expires and when the server
    answers that it expired, where the server issued a refresh token; the new token is saved.
    Revoking it sends the client credentials and deletes the record.
    """

    def __init__(
        self,
        send: Send,
        *,
        store: TokenStore,
        key: StoreKey,
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(send, store=store, key=key)
        self._clock = clock

    async def current(self) -> Token | None:
        if not self._loaded:
            await self._flight.run(self._load)
        token = self._token
        if token is not None and needs_refresh(token, self._clock()):
            await self._flight.run(lambda: self._renew(token))
        return self._token

    async def replace(self, rejected: Token, error: HTTPError) -> Token | None:
        if not is_token_rejection(error) or rejected.refresh_token is None:
            return None  # revoked, or a server without refresh tokens: the user must sign in
        if self._token is rejected:
            await self._flight.run(lambda: self._renew(rejected))
        return self._token if self._token is not rejected else None

    async def _load(self) -> None:
        if self._loaded:
            return
        stored = await self._store.load(self._key)
        if stored is None or stored.token is None:
            raise UsageError(
                f"no token is stored for {self._key}: sign the user in first "
                "(Authorizer.start / finish, or 'aiomasto login')"
            )
        self.application, self._token, self._loaded = stored.app, stored.token, True

    async def _renew(self, old: Token) -> None:
        """Refresh ``old`` unless another task, or another process, already has."""
        if self._token is not old:
            return
        async with store_lock(self._store, self._key):
            stored = await self._store.load(self._key)
            if stored is not None and stored.token is not None and stored.token != old:
                self.application, self._token = stored.app, stored.token
                return  # another process refreshed it
            if self.application is None:
                raise ConfigurationError(f"the app's registration for {self._key} is not stored")
            log.info("refreshing the user token of %s", self._key)
            token = await refresh_token(self._send, self.application, old)
            await self._store.save(self._key, Credentials(app=self.application, token=token))
        self._token = token

    async def revoke(self) -> None:
        """Revoke the token (with the client credentials) and delete the stored record."""
        if not self._loaded:
            await self._flight.run(self._load)
        token = self._token
        if token is None:
            return
        await revoke_token(self._send, token, self.application)
        self._token = None
        await self._store.delete(self._key)
