"""The Mastodon entities aiomasto returns: frozen attrs classes.

They are read tolerantly: unknown keys are ignored (servers add fields every release, forks add
their own), keys that some servers or versions leave out have defaults, and string enums stay
plain strings so an unknown value never fails a parse. Ids are strings, datetimes are aware UTC
``datetime`` objects, ``Account.last_status_at`` is a ``date``.

Secrets (``Application.client_secret``, ``Token.access_token``, ``Token.refresh_token``) never
appear in a repr.

Example::

    account = aiomasto.decode(Account, {"id": "1", "username": "alice", "acct": "alice"})
    account.display_name   # ""
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, datetime

from attrs import field, frozen

__all__ = [
    "Account",
    "AccountRole",
    "Application",
    "CredentialAccount",
    "CustomEmoji",
    "Error",
    "ErrorDetail",
    "Field",
    "Relationship",
    "Role",
    "Source",
    "Token",
    "UserInfo",
]


@frozen(kw_only=True)
class Application:
    """An OAuth application (``POST /api/v1/apps`` adds the credential fields).

    ``client_id`` and ``client_secret`` are present only right after registration (Mastodon's
    CredentialApplication); ``apps/verify_credentials`` never returns them. ``id``,
    ``scopes`` and ``redirect_uris`` are absent before Mastodon 4.3 and on Akkoma.
    """

    name: str
    id: str | None = None
    website: str | None = None
    scopes: tuple[str, ...] = ()
    redirect_uris: tuple[str, ...] = ()
    redirect_uri: str | None = None
    vapid_key: str | None = None
    client_id: str | None = None
    client_secret: str | None = field(default=None, repr=False)
    client_secret_expires_at: int | None = None

    @property
    def registered_redirect_uris(self) -> tuple[str, ...]:
        """The redirect URIs, from ``redirect_uris`` or, on older servers, ``redirect_uri``."""
        if self.redirect_uris:
            return self.redirect_uris
        return tuple((self.redirect_uri or "").split())


@frozen(kw_only=True)
class Token:
    """An OAuth access token (``POST /oauth/token``).

    ``scope`` is space-separated as the server sent it; ``scopes`` splits it. ``created_at`` is
    sent as an integer Unix time by Mastodon. ``expires_in`` and ``refresh_token`` come only from
    servers with expiring tokens (Akkoma).
    """

    access_token: str = field(repr=False)
    token_type: str = "Bearer"
    scope: str = ""
    created_at: datetime | None = None
    expires_in: int | None = None
    refresh_token: str | None = field(default=None, repr=False)

    @property
    def scopes(self) -> tuple[str, ...]:
        """The granted scopes as a tuple."""
        return tuple(self.scope.split())


@frozen(kw_only=True)
class CustomEmoji:
    """A custom emoji used in an account's name, note or fields."""

    shortcode: str
    url: str
    static_url: str = ""
    visible_in_picker: bool = True
    category: str | None = None


@frozen(kw_only=True)
class Field:
    """A profile metadata field; ``value`` is HTML (plain text inside ``Source.fields``)."""

    name: str
    value: str
    verified_at: datetime | None = None


@frozen(kw_only=True)
class AccountRole:
    """A highlighted role shown on a local account (entries of ``Account.roles``)."""

    id: str
    name: str
    color: str = ""


@frozen(kw_only=True)
class Role:
    """The full role of the authenticated user (``CredentialAccount.role``).

    ``permissions`` is the decimal-string bitmask the server sends.
    """

    id: str
    name: str
    permissions: str = "0"
    color: str = ""
    highlighted: bool = False
    collection_limit: int | None = None


@frozen(kw_only=True)
class Account:
    """A user account as ``GET /api/v1/accounts/:id`` and followers/following return it.

    Keys absent from some servers or for remote accounts default to ``None`` (unknown) or an
    empty tuple. ``moved`` is the account this one moved to, if any. ``suspended``,
    ``limited`` and ``memorial`` are only sent when true, so they default to ``False``.
    """

    id: str
    username: str
    acct: str
    display_name: str = ""
    locked: bool = False
    bot: bool = False
    discoverable: bool | None = None
    indexable: bool | None = None
    group: bool = False
    created_at: datetime | None = None
    note: str = ""
    url: str | None = None
    uri: str | None = None
    avatar: str = ""
    avatar_static: str = ""
    avatar_description: str | None = None
    header: str = ""
    header_static: str = ""
    header_description: str | None = None
    followers_count: int = 0
    following_count: int = 0
    statuses_count: int = 0
    last_status_at: date | None = None
    hide_collections: bool | None = None
    noindex: bool | None = None
    suspended: bool = False
    limited: bool = False
    memorial: bool = False
    moved: Account | None = None
    emojis: tuple[CustomEmoji, ...] = ()
    fields: tuple[Field, ...] = ()
    roles: tuple[AccountRole, ...] = ()


@frozen(kw_only=True)
class Source:
    """The authenticated user's own profile source (``CredentialAccount.source``)."""

    privacy: str | None = None
    sensitive: bool = False
    language: str | None = None
    note: str = ""
    fields: tuple[Field, ...] = ()
    follow_requests_count: int = 0
    hide_collections: bool | None = None
    discoverable: bool | None = None
    indexable: bool | None = None
    attribution_domains: tuple[str, ...] = ()
    quote_policy: str | None = None


@frozen(kw_only=True)
class CredentialAccount(Account):
    """The token owner's own account (``GET /api/v1/accounts/verify_credentials``)."""

    source: Source | None = None
    role: Role | None = None


@frozen(kw_only=True)
class Relationship:
    """How the token's user relates to another account (``/api/v1/accounts/relationships``)."""

    id: str
    following: bool = False
    showing_reblogs: bool = False
    notifying: bool = False
    languages: tuple[str, ...] | None = None
    followed_by: bool = False
    blocking: bool = False
    blocked_by: bool = False
    muting: bool = False
    muting_notifications: bool = False
    muting_expires_at: datetime | None = None
    requested: bool = False
    requested_by: bool = False
    domain_blocking: bool = False
    endorsed: bool = False
    note: str = ""


@frozen(kw_only=True)
class ErrorDetail:
    """One reason a field failed validation: ``error`` is a code such as ``"ERR_BLANK"``,
    ``description`` the server's text (``"can't be blank"``)."""

    error: str
    description: str = ""


@frozen(kw_only=True)
class Error:
    """The body of an error response: ``{"error": ..., "error_description": ...}``.

    Mastodon's 422 answers to some forms add ``details``: for each form field that failed
    validation, the reasons (``{"email": [{"error": "ERR_BLANK", "description": "can't be
    blank"}]}``). Details that do not have this shape are left out, never a reason to lose
    the error itself.

    Example::

        error = aiomasto.decode(Error, {"error": "Validation failed: Email can't be blank",
                                        "details": {"email": [{"error": "ERR_BLANK"}]}})
        error.details["email"][0].error   # "ERR_BLANK"
    """

    error: str
    error_description: str | None = None
    details: Mapping[str, tuple[ErrorDetail, ...]] = field(factory=dict, hash=False)


@frozen(kw_only=True)
class UserInfo:
    """The signed-in person as ``GET /oauth/userinfo`` tells it (Mastodon 4.4+, OpenID style).

    ``sub`` is the account's ActivityPub actor URI, ``preferred_username`` its username,
    ``profile`` its profile page and ``picture`` its avatar.
    """

    sub: str
    iss: str | None = None
    name: str | None = None
    preferred_username: str | None = None
    profile: str | None = None
    picture: str | None = None
