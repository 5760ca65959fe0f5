"""What an endpoint sees of a request, and the Api::BaseController authorization checks."""

from __future__ import annotations

import re
from collections.abc import Mapping

import attrs
from aiohttp import web

from ._http import Params, json_response, scalar
from ._state import State, Token

__all__ = ["Ctx", "Halt", "presented_token"]

_BEARER = re.compile(r"^Bearer ", re.IGNORECASE)

_TOKEN_TEXTS = {
    "unknown": "The access token is invalid",
    "revoked": "The access token was revoked",
}


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
    vapid_key: str
    known_scopes: frozenset[str]
    # The token found in the database (possibly revoked); None when absent or unknown.
    token: Token | None

    @property
    def user_id(self) -> int | None:
        """``current_account``: the owner of a live user token."""
        if self.token is None or self.token.revoked:
            return None
        return self.token.account_id

    def param(self, name: str) -> str | None:
        return scalar(self.params, name)

    def doorkeeper_authorize(self, *scopes: str) -> Token:
        """401 for a missing/unknown/revoked token, 403 when it has none of ``scopes``."""
        token = self.token
        if token is None or token.revoked:
            reason = "revoked" if token is not None else "unknown"
            text = _TOKEN_TEXTS[reason]
            raise Halt(
                json_response(
                    401,
                    {"error": text},
                    {
                        "WWW-Authenticate": (
                            'Bearer realm="Doorkeeper", error="invalid_token", '
                            f'error_description="{text}"'
                        )
                    },
                )
            )
        if scopes and not any(scope in token.scopes for scope in scopes):
            raise Halt(
                json_response(403, {"error": "This action is outside the authorized scopes"})
            )
        return token

    def authorize_if_got_token(self, *scopes: str) -> None:
        """Public endpoints: anonymous (or an unknown token) passes, a bad known token does not."""
        if self.token is not None:
            self.doorkeeper_authorize(*scopes)

    def require_user(self) -> int:
        """422 (sic) when the token belongs to no user, i.e. a client-credentials token."""
        user_id = self.user_id
        if user_id is None:
            raise Halt(json_response(422, {"error": "This method requires an authenticated user"}))
        return user_id
