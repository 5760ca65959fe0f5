"""What an endpoint sees of a request, and the flavour's authorization checks."""

from __future__ import annotations

import re
from collections.abc import Mapping

import attrs
from aiohttp import web

from ._flavors import AuthError, Endpoint, Flavor
from ._http import Params, json_response, scalar
from ._json import Render
from ._state import State, Token, TokenPolicy

__all__ = ["Ctx", "Halt", "presented_token"]

_BEARER = re.compile(r"^Bearer ", re.IGNORECASE)


class Halt(Exception):
    """Stop handling and send ``response`` (a before_action that renders)."""

    def __init__(self, response: web.Response) -> None:
        super().__init__(response.status)
        self.response = response


def presented_token(headers: Mapping[str, str], params: Params) -> str | None:
    """Doorkeeper's ``access_token_methods``: Bearer header, then ``access_token``, then
    ``bearer_token`` params; blank values fall through to the next method."""
    header = headers.get("Authorization", "")
    candidates = [
        _BEARER.sub("", header, count=1) if _BEARER.match(header) else None,
        scalar(params, "access_token"),
        scalar(params, "bearer_token"),
    ]
    return next((c for c in candidates if c), None)


@attrs.frozen(kw_only=True)
class Ctx:
    """One routed request: parsed params plus the server state and settings."""

    # Path parameters, e.g. {"id": "109000000000000001"}.
    match: Mapping[str, str]
    params: Params
    headers: Mapping[str, str]
    # scheme://host of the request, used for absolute URLs (Link headers, avatars, profiles).
    base: str
    host: str
    now: float
    state: State
    version: tuple[int, int]
    flavor: Flavor
    vapid_key: str
    known_scopes: frozenset[str]
    # The token found in the database (possibly revoked or expired); None when absent or
    # unknown, or expired on a server that ignores expired tokens.
    token: Token | None
    # How tokens expire and refresh; None: never (Mastodon).
    token_policy: TokenPolicy | None = None
    # Mastodon's LOCAL_DOMAIN (the handle domain) and WEB_DOMAIN (the API host), both
    # without port; the request's host when the server was not given them.
    local_domain: str = ""
    web_domain: str = ""
    # The modelled Mastodon version as text (NodeInfo and instance ``version``).
    version_text: str = ""
    # LIMITED_FEDERATION_MODE: only user tokens may read the API (federation.md §3.1).
    limited_federation: bool = False
    # WebFinger answers 404 and only host-meta's lrdd template leads to the JRD.
    host_meta_only: bool = False
    # The request path, for handlers serving several routes.
    path: str = ""

    @property
    def render(self) -> Render:
        """How this server renders accounts for this request."""
        return Render(
            base=self.base,
            version=self.version,
            shape=self.flavor.account_shape,
            domain=self.local_domain,
        )

    @property
    def user_id(self) -> int | None:
        """``current_account``: the owner of a live user token."""
        if self.token is None or self.token.revoked or self.token.expired(self.now):
            return None
        return self.token.account_id

    def param(self, name: str) -> str | None:
        return scalar(self.params, name)

    def _fail(self, error: AuthError, scopes: tuple[str, ...]) -> Halt:
        text = error.error.format(scope=scopes[-1] if scopes else "")
        headers = {}
        if error.www_authenticate:
            headers["WWW-Authenticate"] = (
                f'Bearer realm="Doorkeeper", error="invalid_token", error_description="{text}"'
            )
        return Halt(json_response(error.status, {"error": text}, headers))

    def _require(self, endpoint: Endpoint, *, user: bool) -> Token:
        """A live token with one of the endpoint's scopes (and a user, if ``user``)."""
        return self._require_scopes(self.flavor.auth.scopes[endpoint], user=user)

    def _require_scopes(self, scopes: tuple[str, ...], *, user: bool) -> Token:
        rules = self.flavor.auth
        token = self.token
        if token is None:
            raise self._fail(rules.missing, scopes)
        if token.revoked:
            raise self._fail(rules.revoked, scopes)
        if token.expired(self.now):
            raise self._fail(rules.expired or rules.missing, scopes)
        if user and rules.user_before_scope and token.account_id is None:
            raise self._fail(rules.no_user, scopes)
        if scopes and not any(scope in token.scopes for scope in scopes):
            raise self._fail(rules.scope, scopes)
        if user and token.account_id is None:
            raise self._fail(rules.no_user, scopes)
        return token

    def authorize_read(self) -> Ctx:
        """Show, lookup, followers, following: returns the context to serve the read with.

        Mastodon lets anonymous readers (and unknown tokens) through but rejects a known
        token that is revoked or lacks the scope; Akkoma serves such a request as
        anonymous; GoToSocial wants a user token.
        """
        rules = self.flavor.auth
        if not rules.public_reads:
            self._require("account", user=True)
            return self
        token = self.token
        if token is None:
            return self
        scopes = rules.scopes["account"]
        if rules.lenient_public_reads and (
            token.revoked
            or token.expired(self.now)
            or not any(scope in token.scopes for scope in scopes)
        ):
            return attrs.evolve(self, token=None)
        self._require("account", user=False)
        return self

    def authorize_user(self, endpoint: Endpoint) -> int:
        """Endpoints acting for a user (verify_credentials, relationships): the user's id."""
        token = self._require(endpoint, user=True)
        assert token.account_id is not None  # _require(user=True) rejected app tokens
        return token.account_id

    def authorize_scopes(self, *scopes: str) -> int:
        """A user's live token with one of ``scopes`` (Mastodon's ``doorkeeper_authorize!``
        then ``require_user!``): the user's id. The last scope is the one errors name."""
        token = self._require_scopes(scopes, user=True)
        assert token.account_id is not None  # user=True rejected app tokens
        return token.account_id

    def authorize_app(self) -> Token:
        """``/api/v1/apps/verify_credentials``: any live token, whatever its scopes."""
        return self._require("app", user=False)
