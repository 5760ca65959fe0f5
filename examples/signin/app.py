"""A "Sign in with Mastodon" web backend: aiohttp.web and aiomasto's Authorizer.

The flow, one person at a time, many at once:

1. ``GET /``: a form asking for the person's instance.
2. ``POST /login``: ``auth.start(instance)`` registers the app there (once per instance),
   and the person is redirected to the instance's authorize page. The :class:`LoginState`
   (it holds the PKCE verifier, a secret) stays here, in the server-side session.
3. ``GET /callback``: ``auth.finish(login, query)`` checks the state, exchanges the code,
   verifies the account and stores the token under (instance, app, account). The browser
   gets a fresh session id; the token never leaves the server.
4. ``GET /``: who you are and your first followers, through ``auth.session(...)``.
5. ``POST /logout``: revokes the token on the instance and forgets the session.

Sessions are a dict keyed by a random cookie value: fine for one process, a demo or a test.
A real deployment keeps them (and the token store) in its database or Redis.
"""

from __future__ import annotations

import html
import logging
import secrets
import time
from collections.abc import Callable, Iterable

import aiohttp
import attrs
from aiohttp import web
from aiohttp.typedefs import Handler

from aiomasto import (
    Account,
    App,
    AuthorizationDenied,
    Authorizer,
    ConfigurationError,
    CredentialAccount,
    LoginError,
    LoginExpired,
    LoginState,
    MastodonError,
    OAuthError,
    StateMismatch,
    TokenStore,
    Unauthorized,
)

__all__ = ["COOKIE", "SignIn", "make_app"]

log = logging.getLogger(__name__)

COOKIE = "signin_example_session"
"""The cookie holding the browser's session id (a random value; nothing else goes in it)."""

# A login the person never finishes is forgotten after this long (Mastodon's codes live 10 min).
_PENDING_LIFETIME = 15 * 60


@attrs.define(kw_only=True)
class _BrowserSession:
    """What the server keeps for one browser: a login under way, or the signed-in user."""

    created_at: float
    csrf: str = attrs.field(factory=lambda: secrets.token_urlsafe(32), repr=False)
    login: str | None = attrs.field(default=None, repr=False)  # LoginState.to_json()
    instance: str | None = None
    account_id: str | None = None


@attrs.frozen(kw_only=True)
class _Signer:
    """The pieces every handler uses (kept in the web.Application under SIGN_IN)."""

    auth: Authorizer
    redirect_uri: str
    followers_shown: int
    clock: Callable[[], float]
    sessions: dict[str, _BrowserSession] = attrs.field(factory=dict)


SignIn = web.AppKey("SignIn", _Signer)


def make_app(
    *,
    http: aiohttp.ClientSession,
    store: TokenStore,
    app: App,
    redirect_uri: str | None = None,
    followers_shown: int = 10,
    clock: Callable[[], float] = time.time,
) -> web.Application:
    """The sign-in site as an aiohttp application.

    ``http`` is the one ``aiohttp.ClientSession`` every call to an instance goes through (the
    caller owns and closes it); ``store`` keeps the apps' credentials and the users' tokens.
    ``redirect_uri`` (default: the app's first) must be this site's ``/callback`` URL as the
    browser reaches it, and one of ``app.redirect_uris``.

    Example::

        async with aiohttp.ClientSession() as http:
            app = App(name="My site", scopes="read",
                      redirect_uris="http://127.0.0.1:8080/callback")
            runner = web.AppRunner(make_app(http=http, store=MemoryTokenStore(), app=app))
            await runner.setup()
            await web.TCPSite(runner, "127.0.0.1", 8080).start()
    """
    uri = redirect_uri if redirect_uri is not None else app.redirect_uris[0]
    if uri not in app.redirect_uris:
        raise ConfigurationError(f"{uri!r} is not one of the app's redirect URIs")
    site = web.Application(middlewares=[_headers])
    site[SignIn] = _Signer(
        auth=Authorizer(app, store=store, http=http),
        redirect_uri=uri,
        followers_shown=followers_shown,
        clock=clock,
    )
    site.router.add_get("/", _home)
    site.router.add_post("/login", _login)
    site.router.add_get("/callback", _callback)
    site.router.add_post("/logout", _logout)
    return site


@web.middleware
async def _headers(request: web.Request, handler: Handler) -> web.StreamResponse:
    response = await handler(request)
    # Pages show personal data; the callback URL carries a code: keep both out of caches and
    # out of other sites' Referer headers.
    response.headers["Cache-Control"] = "no-store"
    response.headers["Referrer-Policy"] = "no-referrer"
    response.headers["Content-Security-Policy"] = (
        "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'"
    )
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response


# -- handlers -------------------------------------------------------------------------------


async def _home(request: web.Request) -> web.Response:
    signer = request.app[SignIn]
    sid, browser = _browser(request)
    if browser is None or browser.instance is None or browser.account_id is None:
        return _sign_in_page()
    try:
        async with signer.auth.session(browser.instance, browser.account_id) as masto:
            me = await masto.verify_credentials()
            page = await masto.followers_page(me.id, limit=signer.followers_shown)
    except Unauthorized:
        # Revoked elsewhere (the instance's settings, another logout): sign in again.
        signer.sessions.pop(sid, None)
        response = _sign_in_page(notice="Your session on the instance has ended. Sign in again.")
        response.del_cookie(COOKIE, path="/")
        return response
    except MastodonError as exc:
        log.warning("loading %s's profile failed: %s", browser.account_id, exc)
        return _error_page(
            502,
            "The instance did not answer",
            f"{browser.instance} could not be reached: {exc}",
        )
    return _profile_page(me, page.items, instance=browser.instance, csrf=browser.csrf)


async def _login(request: web.Request) -> web.Response:
    signer = request.app[SignIn]
    form = await request.post()
    instance = str(form.get("instance", "")).strip()
    if not instance:
        return _sign_in_page(status=400, notice="Enter your instance, e.g. mastodon.social.")
    try:
        start = await signer.auth.start(instance, redirect_uri=signer.redirect_uri)
    except ConfigurationError as exc:
        return _sign_in_page(status=400, instance=instance, notice=str(exc))
    except MastodonError as exc:
        log.warning("starting a login on %r failed: %s", instance, exc)
        return _sign_in_page(
            status=502, instance=instance, notice=f"Could not start signing in there: {exc}"
        )
    now = signer.clock()
    _forget_stale(signer.sessions, now)
    sid, browser = _browser(request)
    if browser is None:
        sid, browser = secrets.token_urlsafe(32), _BrowserSession(created_at=now)
        signer.sessions[sid] = browser
    browser.login = start.state.to_json()
    browser.created_at = now
    response = _redirect(start.url)
    _set_cookie(response, request, sid)
    return response


async def _callback(request: web.Request) -> web.Response:
    signer = request.app[SignIn]
    sid, browser = _browser(request)
    pending = None if browser is None else browser.login
    if browser is None or pending is None:
        return _error_page(
            400,
            "This sign-in link is not for this browser",
            "It was used already, it expired, or it started in another browser.",
        )
    browser.login = None  # one callback per login, whatever it says
    try:
        user = await signer.auth.finish(LoginState.from_json(pending), dict(request.query))
    except AuthorizationDenied as exc:
        if exc.error == "access_denied":
            return _error_page(
                403,
                "You did not sign in",
                "You chose not to let this site see your account. Nothing was shared.",
            )
        return _error_page(403, "The instance refused the sign-in", str(exc))
    except (StateMismatch, LoginExpired) as exc:
        return _error_page(400, "This sign-in link is not valid any more", str(exc))
    except (LoginError, OAuthError) as exc:
        return _error_page(400, "Signing in failed", str(exc))
    except MastodonError as exc:
        log.warning("finishing a login failed: %s", exc)
        return _error_page(502, "The instance did not answer", str(exc))
    # A new session id on sign-in: an id someone planted before it is worth nothing after.
    signer.sessions.pop(sid, None)
    new_sid = secrets.token_urlsafe(32)
    signer.sessions[new_sid] = _BrowserSession(
        created_at=signer.clock(), instance=user.key.instance, account_id=user.key.account
    )
    response = _redirect("/")
    _set_cookie(response, request, new_sid)
    return response


async def _logout(request: web.Request) -> web.Response:
    signer = request.app[SignIn]
    sid, browser = _browser(request)
    form = await request.post()
    if browser is None or not secrets.compare_digest(
        str(form.get("csrf", "")).encode(), browser.csrf.encode()
    ):
        return _error_page(403, "Not signed out", "This request did not come from this site.")
    signer.sessions.pop(sid, None)
    if browser.instance is not None and browser.account_id is not None:
        try:
            async with signer.auth.session(browser.instance, browser.account_id) as masto:
                await masto.revoke()  # on the instance, then out of the store
        except MastodonError as exc:
            log.warning("revoking %s's token failed: %s", browser.account_id, exc)
    response = _redirect("/")
    response.del_cookie(COOKIE, path="/")
    return response


# -- sessions -------------------------------------------------------------------------------


def _browser(request: web.Request) -> tuple[str, _BrowserSession | None]:
    sid = request.cookies.get(COOKIE, "")
    return sid, request.app[SignIn].sessions.get(sid) if sid else None


def _set_cookie(response: web.StreamResponse, request: web.Request, sid: str) -> None:
    # Lax: the browser still sends it on the instance's redirect back to /callback.
    response.set_cookie(COOKIE, sid, path="/", httponly=True, samesite="Lax", secure=request.secure)


def _forget_stale(sessions: dict[str, _BrowserSession], now: float) -> None:
    stale = [
        sid
        for sid, browser in sessions.items()
        if browser.account_id is None and now - browser.created_at > _PENDING_LIFETIME
    ]
    for sid in stale:
        del sessions[sid]


# -- pages ----------------------------------------------------------------------------------

_STYLE = """
body { font: 16px/1.5 system-ui, sans-serif; max-width: 38rem; margin: 3rem auto;
       padding: 0 1rem; color: #1f2328; }
h1 { font-size: 1.5rem; } .acct { color: #6364ff; font-weight: normal; }
.notice { background: #fff4e5; border-left: 4px solid #f0a020; padding: .5rem 1rem; }
ul#followers { padding: 0; list-style: none; } ul#followers li { padding: .3rem 0;
       border-bottom: 1px solid #eee; }
input[type=text] { font: inherit; padding: .4rem; width: 20rem; }
button { font: inherit; padding: .4rem 1rem; background: #6364ff; color: #fff;
         border: 0; border-radius: 4px; }
"""


def _redirect(location: str) -> web.Response:
    return web.Response(status=303, headers={"Location": location})


def _page(title: str, body: str, *, status: int = 200) -> web.Response:
    text = (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{html.escape(title)}</title><style>{_STYLE}</style></head>"
        f"<body>{body}</body></html>\n"
    )
    return web.Response(status=status, text=text, content_type="text/html")


def _sign_in_page(*, status: int = 200, instance: str = "", notice: str = "") -> web.Response:
    shown = f'<p class="notice" id="notice">{html.escape(notice)}</p>' if notice else ""
    return _page(
        "Sign in with Mastodon",
        f"""<h1>Sign in with Mastodon</h1>{shown}
<form method="post" action="/login" id="sign-in">
<label for="instance">Your instance</label><br>
<input type="text" id="instance" name="instance" value="{html.escape(instance)}"
 placeholder="mastodon.social" autocomplete="url" required>
<button type="submit" id="sign-in-button">Sign in</button>
</form>""",
        status=status,
    )


def _name(account: Account) -> str:
    return account.display_name or account.username


def _profile_page(
    me: CredentialAccount, followers: Iterable[Account], *, instance: str, csrf: str
) -> web.Response:
    items = "".join(
        f'<li><span class="name">{html.escape(_name(f))}</span> '
        f'<span class="acct">@{html.escape(f.acct)}</span></li>'
        for f in followers
    )
    listed = f'<ul id="followers">{items}</ul>' if items else "<p>Nobody follows you yet.</p>"
    return _page(
        f"Signed in as {_name(me)}",
        f"""<h1 id="who">Signed in as <span class="name">{html.escape(_name(me))}</span>
<span class="acct">@{html.escape(me.acct)}</span></h1>
<p>on {html.escape(instance)} &middot; {me.followers_count} followers, newest first:</p>
{listed}
<form method="post" action="/logout" id="sign-out">
<input type="hidden" name="csrf" value="{html.escape(csrf)}">
<button type="submit" id="sign-out-button">Sign out</button>
</form>""",
    )


def _error_page(status: int, title: str, detail: str) -> web.Response:
    return _page(
        title,
        f"""<h1 id="error">{html.escape(title)}</h1>
<p id="detail">{html.escape(detail)}</p>
<p><a href="/" id="again">Back to the start</a></p>""",
        status=status,
    )
