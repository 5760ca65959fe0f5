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
from ._state import App, Grant, Token, normalize_scopes
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
    token = ctx.state.find_or_create_token(app, account_id, scopes, ctx.now, ctx.token_policy)
    return _render_token(ctx, token)


def _render_token(ctx: Ctx, token: Token) -> web.Response:
    expires_in = None if token.expires_at is None else max(0, int(token.expires_at - ctx.now))
    policy = ctx.token_policy
    if policy is not None and policy.style == "akkoma":
        # OAuthView "token.json"; Jason writes small maps with their keys sorted.
        body: dict[str, object] = {
            "access_token": token.token,
            "created_at": token.created_at,
            "expires_in": expires_in,
            "id": token.id,
        }
        if token.account_id is not None:
            body["me"] = f"{ctx.base}/users/{ctx.state.accounts[token.account_id].username}"
        body.update({"refresh_token": token.refresh_token, "scope": " ".join(token.scopes)})
        body["token_type"] = "Bearer"
        return json_response(200, body)
    # Doorkeeper drops blank values: on Mastodon expires_in and refresh_token are absent.
    body = {"access_token": token.token, "token_type": "Bearer"}
    if expires_in is not None:
        body["expires_in"] = expires_in
    if token.refresh_token is not None:
        body["refresh_token"] = token.refresh_token
    body.update({"scope": " ".join(token.scopes), "created_at": token.created_at})
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
    if not ctx.flavor.pkce:
        return True
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
    pkce = ctx.flavor.pkce and grant is not None and grant.code_challenge is not None
    if pkce and not ctx.param("code_verifier"):
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


_AKKOMA_INVALID_CREDENTIALS = {"error": "Invalid credentials"}


def _refresh_token(ctx: Ctx) -> web.Response:
    """``grant_type=refresh_token``: Doorkeeper's RefreshTokenRequest, or Akkoma's."""
    policy = ctx.token_policy
    assert policy is not None
    presented = ctx.param("refresh_token")
    if policy.style == "akkoma":
        # Token.Utils.fetch_app, then Token.get_by_refresh_token: any failure is one answer.
        app = _client(ctx)
        old = ctx.state.by_refresh_token(presented) if presented else None
        if app is None or old is None or old.client_id != app.client_id:
            return json_response(400, _AKKOMA_INVALID_CREDENTIALS)
        # RefreshToken.grant deletes the old token and makes a new one, same scopes.
        ctx.state.delete_token(old.token)
        new = ctx.state.find_or_create_token(app, old.account_id, old.scopes, ctx.now, policy)
        return _render_token(ctx, new)
    if not presented:
        return _missing("refresh_token")
    old = ctx.state.by_refresh_token(presented)
    if old is None or old.revoked:
        return _oauth_error("invalid_grant")
    has_credentials = bool(
        _BASIC.match(ctx.headers.get("Authorization", "")) or ctx.param("client_id")
    )
    app = _client(ctx)
    if has_credentials and app is None:
        return _oauth_error("invalid_client")
    if app is None or app.client_id != old.client_id:
        return _oauth_error("invalid_grant")
    requested = ctx.param("scope")
    scopes = normalize_scopes(requested) if requested and requested.strip() else old.scopes
    if not set(scopes) <= set(old.scopes):
        return _oauth_error("invalid_scope")
    # The used refresh token is revoked with its access token (refresh_token_revoked_on_use
    # is off), so replaying it is invalid_grant.
    ctx.state.revoke(old.token)
    return _token_response(ctx, app, old.account_id, scopes)


def token(ctx: Ctx) -> web.Response:
    """``POST /oauth/token`` with the grant flows of Mastodon 4.4+ (plus ``refresh_token``
    when the server's tokens expire)."""
    grant_type = ctx.param("grant_type")
    if not grant_type:
        return _missing("grant_type")
    if grant_type == "client_credentials":
        return _client_credentials(ctx)
    if grant_type == "authorization_code":
        return _authorization_code(ctx)
    if grant_type == "refresh_token" and ctx.token_policy is not None:
        return _refresh_token(ctx)
    return _oauth_error("unsupported_grant_type")


def revoke(ctx: Ctx) -> web.Response:
    """``POST /oauth/revoke`` (RFC 7009): unknown tokens are silently fine, others' are not.

    Doorkeeper wants the client's credentials and accepts an access or a refresh token;
    Akkoma needs only ``token`` and deletes it.
    """
    access_token = ctx.param("token")
    policy = ctx.token_policy
    if policy is not None and policy.style == "akkoma":
        if access_token is None:
            # Akkoma's bad_request fallback.
            return json_response(500, {"error": "Bad request"})
        if access_token in ctx.state.tokens:
            ctx.state.delete_token(access_token)
        return json_response(200, {})
    app = _client(ctx)
    if app is None:
        return json_response(403, _REVOKE_DENIED)
    token = ctx.state.tokens.get(access_token) if access_token else None
    if token is None and access_token:
        token = ctx.state.by_refresh_token(access_token)
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
