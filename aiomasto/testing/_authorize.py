"""The browser side of OAuth: ``/oauth/authorize`` pages, the RFC 8414 document, userinfo.

The authorize page is one HTML form a person (or Selenium) can click through. Its element
ids and names are part of the public testing API; see :meth:`FakeMastodon.authorize` for the
same decision without HTML.
"""

from __future__ import annotations

import html
import secrets
from collections.abc import Mapping
from http.cookies import CookieError, SimpleCookie
from urllib.parse import urlencode, urlsplit, urlunsplit

import attrs
from aiohttp import web

from ._context import Ctx
from ._http import json_response
from ._json import V4_6
from ._state import App, State, normalize_scopes
from ._validation import OOB_URI

__all__ = [
    "SESSION_COOKIE",
    "AuthorizeError",
    "AuthorizeRequest",
    "approve",
    "authorize_form",
    "authorize_submit",
    "deny",
    "oauth_metadata",
    "read_authorize",
    "userinfo",
]

SESSION_COOKIE = "_mastodon_session"
_DEFAULT_SCOPES = ("read",)
# Rails' ActiveModel::Type::Boolean::FALSE_VALUES (plus blank): anything else is true.
_FALSE_VALUES = frozenset({"", "0", "f", "F", "false", "FALSE", "off", "OFF"})
_DESCRIPTIONS = {
    "invalid_client": (
        "Client authentication failed due to unknown client, no client authentication "
        "included, or unsupported authentication method."
    ),
    "invalid_redirect_uri": (
        "The requested redirect uri is malformed or doesn't match client redirect URI."
    ),
    "unsupported_response_type": "The authorization server does not support this response type.",
    "invalid_scope": "The requested scope is invalid, unknown, or malformed.",
    "invalid_code_challenge_method": "The code_challenge_method must be S256.",
    "access_denied": "The resource owner or authorization server denied the request.",
}
# The authorize request's own parameters, carried through the form as hidden fields.
_CARRIED = (
    "response_type",
    "client_id",
    "redirect_uri",
    "scope",
    "state",
    "code_challenge",
    "code_challenge_method",
    "force_login",
    "lang",
)
_BAD_LOGIN = "Invalid username or password."


class AuthorizeError(Exception):
    """An authorize request Doorkeeper refuses. ``redirect_uri`` is where the error goes
    (``?error=...``); None means an HTML error page (unknown client, bad redirect URI, oob)."""

    def __init__(
        self, error: str, description: str, redirect_uri: str | None, state: str | None
    ) -> None:
        super().__init__(f"{error}: {description}")
        self.error = error
        self.description = description
        self.redirect_uri = redirect_uri
        self.state = state


@attrs.frozen(kw_only=True)
class AuthorizeRequest:
    """A valid ``GET /oauth/authorize`` (Doorkeeper's PreAuthorization)."""

    app: App
    redirect_uri: str
    scopes: tuple[str, ...]
    state: str | None
    code_challenge: str | None
    force_login: bool
    lang: str | None
    carried: Mapping[str, str]


def _missing(param: str) -> str:
    return f"Missing required parameter: {param}."


def read_authorize(
    state: State, params: Mapping[str, str | None], *, pkce: bool
) -> AuthorizeRequest:
    """Validate like Doorkeeper's PreAuthorization, in its order. Raises AuthorizeError."""
    client_id = params.get("client_id") or ""
    oauth_state = params.get("state") or None
    if not client_id:
        raise AuthorizeError("invalid_request", _missing("client_id"), None, oauth_state)
    app = state.apps.get(client_id)
    if app is None:
        raise AuthorizeError("invalid_client", _DESCRIPTIONS["invalid_client"], None, oauth_state)
    redirect_uri = params.get("redirect_uri") or ""
    if redirect_uri not in app.redirect_uri.split():
        raise AuthorizeError(
            "invalid_redirect_uri", _DESCRIPTIONS["invalid_redirect_uri"], None, oauth_state
        )
    # From here on errors go back to the client, except to the oob URI (not redirectable).
    target = None if redirect_uri == OOB_URI else redirect_uri
    response_type = params.get("response_type") or ""
    if not response_type:
        raise AuthorizeError("invalid_request", _missing("response_type"), target, oauth_state)
    if response_type != "code":
        error = "unsupported_response_type"
        raise AuthorizeError(error, _DESCRIPTIONS[error], target, oauth_state)
    scope_text = params.get("scope")
    if scope_text is None:
        scopes = tuple(s for s in _DEFAULT_SCOPES if s in app.scopes)
    else:
        scopes = normalize_scopes(scope_text)
    if not scopes or not set(scopes) <= set(app.scopes):
        raise AuthorizeError("invalid_scope", _DESCRIPTIONS["invalid_scope"], target, oauth_state)
    code_challenge = (params.get("code_challenge") or None) if pkce else None
    if code_challenge is not None and params.get("code_challenge_method") != "S256":
        error = "invalid_code_challenge_method"
        raise AuthorizeError(error, _DESCRIPTIONS[error], target, oauth_state)
    carried = {name: value for name in _CARRIED if (value := params.get(name)) is not None}
    return AuthorizeRequest(
        app=app,
        redirect_uri=redirect_uri,
        scopes=scopes,
        state=oauth_state,
        code_challenge=code_challenge,
        force_login=(params.get("force_login") or "") not in _FALSE_VALUES,
        lang=params.get("lang") or None,
        carried=carried,
    )


def _with_query(uri: str, pairs: list[tuple[str, str]]) -> str:
    parts = urlsplit(uri)
    query = "&".join(q for q in (parts.query, urlencode(pairs)) if q)
    return urlunsplit(parts._replace(query=query))


def error_redirect(error: AuthorizeError) -> str:
    assert error.redirect_uri is not None
    pairs = [("error", error.error), ("error_description", error.description)]
    if error.state:
        pairs.append(("state", error.state))
    return _with_query(error.redirect_uri, pairs)


def approve(state: State, request: AuthorizeRequest, account_id: int, now: float) -> str:
    """Create the grant; the redirect target (``urn:...:oob?code=...`` for oob)."""
    grant = state.create_grant(
        request.app,
        account_id,
        redirect_uri=request.redirect_uri,
        scopes=request.scopes,
        code_challenge=request.code_challenge,
        now=now,
    )
    pairs = [("code", grant.code)]
    if request.state:
        pairs.append(("state", request.state))
    return _with_query(request.redirect_uri, pairs)


def deny(request: AuthorizeRequest) -> AuthorizeError:
    """The user's refusal, as the error Doorkeeper redirects (or shows, for oob)."""
    target = None if request.redirect_uri == OOB_URI else request.redirect_uri
    return AuthorizeError("access_denied", _DESCRIPTIONS["access_denied"], target, request.state)


# HTML


def _page(title: str, body: str, lang: str | None = None) -> str:
    language = html.escape(lang or "en")
    return (
        f'<!DOCTYPE html>\n<html lang="{language}">\n<head>\n<meta charset="utf-8">\n'
        '<meta content="width=device-width, initial-scale=1" name="viewport">\n'
        f"<title>{html.escape(title)} - Mastodon</title>\n</head>\n"
        f'<body class="modal-layout">\n{body}</body>\n</html>\n'
    )


def _html(status: int, text: str) -> web.Response:
    response = web.Response(status=status, text=text, content_type="text/html")
    response.headers["Cache-Control"] = "no-store"
    return response


def _error_page(error: AuthorizeError) -> web.Response:
    body = (
        '<div class="dialog">\n<h1>An error has occurred</h1>\n'
        f'<p id="oauth-error" data-error="{html.escape(error.error)}">'
        f"{html.escape(error.description)}</p>\n</div>\n"
    )
    status = 401 if error.error == "invalid_client" else 400
    return _html(status, _page("An error has occurred", body))


def _error_response(error: AuthorizeError) -> web.Response:
    if error.redirect_uri is None:
        return _error_page(error)
    return _redirect(error_redirect(error))


def _redirect(location: str) -> web.Response:
    response = web.Response(status=302, headers={"Location": location})
    response.headers["Cache-Control"] = "no-store"
    return response


def _session_account(ctx: Ctx) -> int | None:
    cookie = SimpleCookie()
    try:
        cookie.load(ctx.headers.get("Cookie", ""))
    except CookieError:
        return None
    morsel = cookie.get(SESSION_COOKIE)
    if morsel is None:
        return None
    account_id = ctx.state.sessions.get(morsel.value)
    if account_id is None or account_id not in ctx.state.accounts:
        return None
    return account_id


def _form(
    ctx: Ctx, request: AuthorizeRequest, *, login: bool, error: str | None, username: str = ""
) -> web.Response:
    app = html.escape(request.app.name)
    scopes = "".join(
        f'<li data-scope="{html.escape(s)}">{html.escape(s)}</li>' for s in request.scopes
    )
    hidden = "".join(
        f'<input type="hidden" name="{name}" value="{html.escape(value)}">\n'
        for name, value in request.carried.items()
    )
    if login:
        who = (
            '<label for="username">Username</label>\n'
            '<input type="text" id="username" name="username" autocomplete="username" '
            f'value="{html.escape(username)}">\n'
            '<label for="password">Password</label>\n'
            '<input type="password" id="password" name="password" '
            'autocomplete="current-password">\n'
        )
    else:
        session_id = _session_account(ctx)
        assert session_id is not None
        name = html.escape(ctx.state.accounts[session_id].username)
        who = f'<p>Signed in as <strong id="signed-in-as">@{name}</strong></p>\n'
    alert = (
        f'<p id="login-error" class="flash-message alert">{html.escape(error)}</p>\n'
        if error
        else ""
    )
    body = (
        '<div class="form-container">\n'
        f'<h1>Authorization required</h1>\n<p><strong id="app-name">{app}</strong> '
        "would like permission to access your account. It is a third-party application.</p>\n"
        f'<ul id="scopes">{scopes}</ul>\n'
        f"{alert}"
        '<form id="authorize-form" method="post" action="/oauth/authorize">\n'
        f"{hidden}{who}"
        '<button type="submit" id="authorize" name="decision" value="authorize">'
        "Authorize</button>\n"
        '<button type="submit" id="deny" name="decision" value="deny" formnovalidate>'
        "Deny</button>\n</form>\n</div>\n"
    )
    return _html(422 if error else 200, _page("Authorization required", body, request.lang))


def _read(ctx: Ctx) -> AuthorizeRequest:
    params = {name: ctx.param(name) for name in _CARRIED}
    return read_authorize(ctx.state, params, pkce=ctx.flavor.pkce)


def authorize_form(ctx: Ctx) -> web.Response:
    """``GET /oauth/authorize``: the login-and-consent page, or an error."""
    try:
        request = _read(ctx)
    except AuthorizeError as error:
        return _error_response(error)
    login = request.force_login or _session_account(ctx) is None
    return _form(ctx, request, login=login, error=None)


def authorize_submit(ctx: Ctx) -> web.Response:
    """``POST /oauth/authorize``: the form's Authorize or Deny button."""
    try:
        request = _read(ctx)
    except AuthorizeError as error:
        return _error_response(error)
    if ctx.param("decision") == "deny":
        return _error_response(deny(request))
    session_id = _session_account(ctx)
    username = ctx.param("username") or ""
    account_id = session_id
    new_session = False
    if request.force_login or session_id is None or username:
        account = ctx.state.find_account(username, None) if username else None
        password = ctx.param("password") or ""
        if account is None or not secrets.compare_digest(
            account.password.encode(), password.encode()
        ):
            return _form(ctx, request, login=True, error=_BAD_LOGIN, username=username)
        account_id, new_session = account.id, True
    if ctx.param("decision") != "authorize":
        return _form(ctx, request, login=session_id is None, error=None)
    assert account_id is not None
    target = approve(ctx.state, request, account_id, ctx.now)
    if request.redirect_uri == OOB_URI:
        code = html.escape(target.partition("code=")[2].partition("&")[0])
        body = (
            '<div class="form-container">\n'
            "<h1>Copy this authorization code and paste it to the application.</h1>\n"
            f'<code id="authorization-code">{code}</code>\n</div>\n'
        )
        response = _html(200, _page("Authorization code", body, request.lang))
    else:
        response = _redirect(target)
    if new_session:
        cookie = secrets.token_urlsafe(32)
        ctx.state.sessions[cookie] = account_id
        response.set_cookie(SESSION_COOKIE, cookie, httponly=True, samesite="Lax", path="/")
    return response


# Metadata and userinfo

_SCOPE_ORDER_READ = (
    "read:accounts",
    "read:blocks",
    "read:bookmarks",
    "read:favourites",
    "read:filters",
    "read:follows",
    "read:lists",
    "read:mutes",
    "read:notifications",
    "read:search",
    "read:statuses",
)


def _scopes_supported(known: frozenset[str], version: tuple[int, int]) -> list[str]:
    """default_scopes, then optional_scopes in config/initializers/doorkeeper.rb's order."""
    writes = sorted(s for s in known if s.startswith("write:"))
    reads = [s for s in _SCOPE_ORDER_READ if s in known]
    if version >= V4_6:
        reads.append("read:collections")
    admin = sorted(s for s in known if s.startswith("admin:"))
    ordered = ["read", "profile", "write", *writes, *reads, "follow", "push", *admin]
    return list(dict.fromkeys(ordered))


_AKKOMA_INDEX = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>Akkoma</title>
</head>
<body>
<noscript>To use Akkoma, please enable JavaScript.</noscript>
<div id="app"></div>
</body>
</html>
"""


def oauth_metadata(ctx: Ctx) -> web.Response:
    """``GET /.well-known/oauth-authorization-server`` (RFC 8414), as each server has it.

    Mastodon (4.3+) serves the document; GoToSocial has no such route; Akkoma's catch-all
    answers with its front-end's HTML page.
    """
    if ctx.flavor.name == "gotosocial":
        return json_response(404, {"error": "Not Found"})
    if ctx.flavor.name == "akkoma":
        return web.Response(status=200, text=_AKKOMA_INDEX, content_type="text/html")
    base = ctx.base
    grants = ["authorization_code", "client_credentials"]
    if ctx.token_policy is not None:
        grants.append("refresh_token")
    document = {
        "issuer": f"{base}/",
        "authorization_endpoint": f"{base}/oauth/authorize",
        "token_endpoint": f"{base}/oauth/token",
        "revocation_endpoint": f"{base}/oauth/revoke",
        "userinfo_endpoint": f"{base}/oauth/userinfo",
        "scopes_supported": _scopes_supported(ctx.known_scopes, ctx.version),
        "response_types_supported": ["code"],
        "response_modes_supported": ["query", "fragment", "form_post"],
        "grant_types_supported": grants,
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        "code_challenge_methods_supported": ["S256"],
        "service_documentation": "https://docs.joinmastodon.org/",
        "app_registration_endpoint": f"{base}/api/v1/apps",
    }
    return json_response(200, document, {"Cache-Control": "max-age=900, public"})


def userinfo(ctx: Ctx) -> web.Response:
    """``GET|POST /oauth/userinfo`` (Mastodon 4.4+): needs a user token with ``profile``."""
    if ctx.flavor.name != "mastodon":
        return json_response(404, {"error": "Not Found"})
    account = ctx.state.accounts[ctx.authorize_user("userinfo")]
    return json_response(
        200,
        {
            "iss": f"{ctx.base}/",
            "sub": f"{ctx.base}/users/{account.username}",
            "name": account.display_name,
            "preferred_username": account.username,
            "profile": f"{ctx.base}/@{account.username}",
            "picture": f"{ctx.base}/avatars/original/missing.png",
        },
    )
