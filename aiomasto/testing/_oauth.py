"""App registration and the Doorkeeper endpoints: ``/oauth/token``, ``/oauth/revoke``."""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
import secrets

from aiohttp import web

from ._context import Ctx
from ._http import json_response, scalar, string_list
from ._json import application_document
from ._state import App, Grant, normalize_scopes
from ._validation import validate_app

__all__ = [
    "BASE_SCOPES",
    "COLLECTION_SCOPES",
    "DEFAULT_SCOPES",
    "create_app",
    "revoke",
    "s256",
    "token",
    "verify_app",
]

DEFAULT_SCOPES = ("read",)
_READ_OBJECTS = (
    "accounts",
    "blocks",
    "bookmarks",
    "favourites",
    "filters",
    "follows",
    "lists",
    "mutes",
    "notifications",
    "search",
    "statuses",
)
_WRITE_OBJECTS = (
    "accounts",
    "blocks",
    "bookmarks",
    "conversations",
    "favourites",
    "filters",
    "follows",
    "lists",
    "media",
    "mutes",
    "notifications",
    "reports",
    "statuses",
)
_ADMIN_OBJECTS = (
    "accounts",
    "reports",
    "domain_allows",
    "domain_blocks",
    "ip_blocks",
    "email_domain_blocks",
    "canonical_email_blocks",
)
# Mastodon's default_scopes + optional_scopes (config/initializers/doorkeeper.rb, 4.4/4.5).
BASE_SCOPES = frozenset(
    {
        "read",
        "write",
        "follow",
        "push",
        "profile",
        *(f"read:{o}" for o in _READ_OBJECTS),
        *(f"write:{o}" for o in _WRITE_OBJECTS),
        "admin:read",
        "admin:write",
        *(f"admin:read:{o}" for o in _ADMIN_OBJECTS),
        *(f"admin:write:{o}" for o in _ADMIN_OBJECTS),
    }
)
COLLECTION_SCOPES = frozenset({"read:collections", "write:collections"})  # 4.6.0+

_BASIC = re.compile(r"^Basic ", re.IGNORECASE)
_OAUTH_DESCRIPTIONS = {
    "invalid_client": (
        "Client authentication failed due to unknown client, no client authentication "
        "included, or unsupported authentication method."
    ),
    "invalid_grant": (
        "The provided authorization grant is invalid, expired, revoked, does not match the "
        "redirection URI used in the authorization request, or was issued to another client."
    ),
    "invalid_scope": "The requested scope is invalid, unknown, or malformed.",
    "unsupported_grant_type": (
        "The authorization grant type is not supported by the authorization server."
    ),
}
_NO_STORE = {"Cache-Control": "no-store, no-cache"}
_REVOKE_DENIED = {
    "error": "unauthorized_client",
    "error_description": "You are not authorized to revoke this token",
}


def _oauth_error(error: str, description: str | None = None) -> web.Response:
    """Doorkeeper's ErrorResponse: 401 for client failures, 400 otherwise."""
    text = description or _OAUTH_DESCRIPTIONS[error]
    status = 401 if error in ("invalid_client", "unauthorized_client") else 400
    return json_response(
        status,
        {"error": error, "error_description": text},
        {
            **_NO_STORE,
            "WWW-Authenticate": (
                f'Bearer realm="Doorkeeper", error="{error}", error_description="{text}"'
            ),
        },
    )


def _missing(param: str) -> web.Response:
    return _oauth_error("invalid_request", f"Missing required parameter: {param}.")


def s256(verifier: str) -> str:
    """The PKCE S256 challenge for ``verifier`` (unpadded urlsafe base64 of its SHA-256)."""
    digest = hashlib.sha256(verifier.encode()).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def _client(ctx: Ctx) -> App | None:
    """Doorkeeper's client credentials: HTTP Basic first, else ``client_id``/``client_secret``.

    Basic credentials are used even when wrong, and are not URL-decoded.
    """
    header = ctx.headers.get("Authorization", "")
    if _BASIC.match(header):
        encoded = _BASIC.sub("", header, count=1)
        try:
            # Ruby's Base64.decode64 tolerates missing padding and stray characters.
            raw = base64.b64decode(encoded + "=" * (-len(encoded) % 4))
        except (binascii.Error, ValueError):
            return None
        client_id, _, client_secret = raw.decode("utf-8", "replace").partition(":")
    else:
        client_id = ctx.param("client_id") or ""
        client_secret = ctx.param("client_secret") or ""
    return ctx.state.authenticate_client(client_id, client_secret)


def _token_response(
    ctx: Ctx, app: App, account_id: int | None, scopes: tuple[str, ...]
) -> web.Response:
    token = ctx.state.find_or_create_token(app, account_id, scopes, ctx.now)
    # Doorkeeper drops blank values, so expires_in and refresh_token are absent, not null.
    body = {
        "access_token": token.token,
        "token_type": "Bearer",
        "scope": " ".join(token.scopes),
        "created_at": token.created_at,
    }
    return json_response(200, body, {**_NO_STORE, "Pragma": "no-cache"})


def _client_credentials(ctx: Ctx) -> web.Response:
    app = _client(ctx)
    if app is None:
        return _oauth_error("invalid_client")
    requested = ctx.param("scope")
    if requested and requested.strip():
        scopes = normalize_scopes(requested)
    elif app.scopes:
        scopes = tuple(s for s in DEFAULT_SCOPES if s in app.scopes)
    else:
        scopes = DEFAULT_SCOPES
    # ScopeChecker: against the app's scopes when it has any, else the server's; an empty
    # result (an app without "read" asking for nothing) is invalid.
    allowed = set(app.scopes) or ctx.known_scopes
    if not scopes or not all(s in allowed for s in scopes):
        return _oauth_error("invalid_scope")
    return _token_response(ctx, app, None, scopes)


def _grant_matches(ctx: Ctx, grant: Grant, app: App, redirect_uri: str) -> bool:
    if grant.client_id != app.client_id or grant.expires_at <= ctx.now:
        return False
    if redirect_uri != grant.redirect_uri:
        return False
    verifier = ctx.param("code_verifier")
    if not verifier:
        return grant.code_challenge is None
    return grant.code_challenge is not None and secrets.compare_digest(
        s256(verifier), grant.code_challenge
    )


def _authorization_code(ctx: Ctx) -> web.Response:
    code = ctx.param("code")
    grant = ctx.state.grants.get(code) if code else None
    redirect_uri = ctx.param("redirect_uri")
    # Doorkeeper checks required params before authenticating the client.
    if grant is not None and grant.code_challenge is not None and not ctx.param("code_verifier"):
        return _missing("code_verifier")
    if not redirect_uri:
        return _missing("redirect_uri")
    app = _client(ctx)
    if app is None:
        return _oauth_error("invalid_client")
    if grant is None or not _grant_matches(ctx, grant, app, redirect_uri):
        return _oauth_error("invalid_grant")
    # Codes are single-use; the token carries the scopes chosen at authorization time.
    del ctx.state.grants[grant.code]
    return _token_response(ctx, app, grant.account_id, grant.scopes)


def token(ctx: Ctx) -> web.Response:
    """``POST /oauth/token`` with the grant flows of Mastodon 4.4+."""
    grant_type = ctx.param("grant_type")
    if not grant_type:
        return _missing("grant_type")
    if grant_type == "client_credentials":
        return _client_credentials(ctx)
    if grant_type == "authorization_code":
        return _authorization_code(ctx)
    return _oauth_error("unsupported_grant_type")


def revoke(ctx: Ctx) -> web.Response:
    """``POST /oauth/revoke`` (RFC 7009): unknown tokens are silently fine, others' are not."""
    app = _client(ctx)
    if app is None:
        return json_response(403, _REVOKE_DENIED)
    access_token = ctx.param("token")
    token = ctx.state.tokens.get(access_token) if access_token else None
    if token is None:
        return json_response(200, {})
    if token.client_id != app.client_id:
        return json_response(403, _REVOKE_DENIED)
    ctx.state.revoke(token.token)
    return json_response(200, {})


def create_app(ctx: Ctx) -> web.Response:
    """``POST /api/v1/apps``."""
    uris = string_list(ctx.params, "redirect_uris")
    redirect_uri = "\n".join(uris) if uris is not None else scalar(ctx.params, "redirect_uris")
    # permit(:scopes) drops an array, so the default applies (mastodon#30152).
    scopes_text = ctx.param("scopes")
    scopes = DEFAULT_SCOPES if scopes_text is None else normalize_scopes(scopes_text)
    name = ctx.param("client_name") or ""
    website = ctx.param("website") or ""
    errors = validate_app(
        name=name,
        redirect_uri=redirect_uri or "",
        scopes=scopes,
        website=website,
        known_scopes=ctx.known_scopes,
    )
    if errors:
        return json_response(422, {"error": "Validation failed: " + ", ".join(errors)})
    app = ctx.state.create_app(
        name=name, website=website, redirect_uri=redirect_uri or "", scopes=scopes
    )
    return json_response(200, application_document(app, ctx.vapid_key, credentials=True))


def verify_app(ctx: Ctx) -> web.Response:
    """``GET /api/v1/apps/verify_credentials``: any live token, whatever its scopes."""
    token = ctx.authorize_app()
    app = ctx.state.apps[token.client_id]
    return json_response(200, application_document(app, ctx.vapid_key, credentials=False))
