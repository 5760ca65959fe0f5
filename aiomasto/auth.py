"""The app description and the OAuth request bodies, as pure functions.

What goes on the wire is exactly what the servers document (mastodon-api.md §2, §3, §5):
``redirect_uris`` as one newline-separated string (every server version accepts it), scopes
space-separated, an explicit ``scope`` on every token request, client authentication in the form
body (``client_secret_post``, the one method GoToSocial, Akkoma and Mastodon all accept).
"""

from __future__ import annotations

from collections.abc import Iterable

from attrs import field, frozen

from ._redact import Secret
from .entities import Application
from .errors import ConfigurationError

__all__ = ["OOB_REDIRECT_URI", "App"]

OOB_REDIRECT_URI = "urn:ietf:wg:oauth:2.0:oob"
"""The out-of-band redirect URI: the server shows the code instead of redirecting."""

_APP_NAME_LIMIT = 60  # Mastodon's APP_NAME_LIMIT


def _words(value: str | Iterable[str]) -> tuple[str, ...]:
    items = value.split() if isinstance(value, str) else list(value)
    seen: dict[str, None] = {}
    for item in items:
        if not isinstance(item, str) or not item or item != item.strip() or " " in item:
            raise ConfigurationError(f"invalid scope or URI {item!r}: no blanks or spaces allowed")
        seen.setdefault(item, None)
    return tuple(seen)


def _optional_words(value: str | Iterable[str] | None) -> tuple[str, ...] | None:
    return None if value is None else _words(value)


@frozen(kw_only=True)
class App:
    """The application a Session registers on an instance, and the scopes its token gets.

    ``scopes`` are registered with the app; ``token_scopes`` (default: all of ``scopes``) are
    requested for the client-credentials token and must be a subset. Scopes and redirect URIs
    accept a list or a space-separated string.

    Example::

        App(name="Relationship Mapper", scopes="read", website="https://example.org")
    """

    name: str
    scopes: tuple[str, ...] = field(default=("read",), converter=_words)
    redirect_uris: tuple[str, ...] = field(default=(OOB_REDIRECT_URI,), converter=_words)
    website: str | None = None
    token_scopes: tuple[str, ...] | None = field(default=None, converter=_optional_words)

    def __attrs_post_init__(self) -> None:
        if not self.name.strip():
            raise ConfigurationError("App.name must not be blank")
        if len(self.name) > _APP_NAME_LIMIT:
            raise ConfigurationError(f"App.name is longer than {_APP_NAME_LIMIT} characters")
        if not self.scopes:
            raise ConfigurationError("App.scopes must name at least one scope")
        if not self.redirect_uris:
            raise ConfigurationError("App.redirect_uris must name at least one URI")
        extra = set(self.requested_token_scopes) - set(self.scopes)
        if extra:
            raise ConfigurationError(
                f"App.token_scopes {sorted(extra)} are not among the registered scopes "
                f"{list(self.scopes)}: the server only grants a subset of those"
            )

    @property
    def requested_token_scopes(self) -> tuple[str, ...]:
        """The scopes asked for in a client-credentials token request."""
        return self.token_scopes if self.token_scopes is not None else self.scopes

    def matches(self, application: Application) -> bool:
        """Whether a registered application can serve this app description.

        It must have client credentials, every scope the token asks for and every redirect URI.
        A server that does not report scopes (Mastodon before 4.3, Akkoma) is trusted.
        """
        if not application.client_id or not application.client_secret:
            return False
        if application.scopes and not set(self.requested_token_scopes) <= set(application.scopes):
            return False
        registered = application.registered_redirect_uris
        return not registered or set(self.redirect_uris) <= set(registered)


def registration_form(app: App) -> dict[str, str]:
    """The body of ``POST /api/v1/apps``."""
    form = {
        "client_name": app.name,
        "redirect_uris": "\n".join(app.redirect_uris),
        "scopes": " ".join(app.scopes),
    }
    if app.website:
        form["website"] = app.website
    return form


def client_credentials_form(app: App, application: Application) -> dict[str, str]:
    """The body of ``POST /oauth/token`` for an app-only token."""
    return {
        "grant_type": "client_credentials",
        "client_id": application.client_id or "",
        "client_secret": Secret(application.client_secret or ""),
        "redirect_uri": app.redirect_uris[0],
        "scope": " ".join(app.requested_token_scopes),
    }


def revoke_form(access_token: str, application: Application | None) -> dict[str, str]:
    """The body of ``POST /oauth/revoke`` (RFC 7009), with client authentication when known."""
    form: dict[str, str] = {"token": Secret(access_token)}
    if application is not None and application.client_id and application.client_secret:
        form["client_id"] = application.client_id
        form["client_secret"] = Secret(application.client_secret)
    return form
