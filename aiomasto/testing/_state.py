"""The fake server's database: accounts, follows, blocks, apps, tokens and grants."""

from __future__ import annotations

import random
import secrets
import threading
from bisect import bisect_left
from typing import Literal

import attrs

__all__ = [
    "Account",
    "App",
    "Edges",
    "Emoji",
    "Field",
    "Grant",
    "Role",
    "State",
    "Token",
    "TokenPolicy",
    "normalize_scopes",
]

FIRST_ACCOUNT_ID = 109_000_000_000_000_001
FIRST_FOLLOW_ID = 7_000_000
GRANT_LIFETIME = 600.0  # Doorkeeper's default authorization_code_expires_in
DEFAULT_PASSWORD = "fake-mastodon-password"


@attrs.frozen(kw_only=True)
class Role:
    """A user role (``role`` in CredentialAccount, and in ``roles`` when ``highlighted``).

    Example: ``Role(id="3", name="Owner", permissions="1048575", color="#ff3838")``.
    """

    id: str
    name: str
    permissions: str = "0"
    color: str = ""
    highlighted: bool = True


@attrs.frozen(kw_only=True)
class Field:
    """A profile field. ``value`` is plain text; the API shows it HTML-escaped.

    Example: ``Field(name="Site", value="https://a.example", verified_at="2019-08-29T04:14:55Z")``.
    """

    name: str
    value: str
    verified_at: str | None = None


@attrs.frozen(kw_only=True)
class Emoji:
    """A custom emoji on a profile; ``url`` defaults to a path on the fake server.

    Example: ``Emoji(shortcode="blobcat")``.
    """

    shortcode: str
    url: str | None = None
    static_url: str | None = None
    visible_in_picker: bool = True


@attrs.frozen(kw_only=True)
class Account:
    id: int
    username: str
    domain: str | None
    display_name: str
    locked: bool
    bot: bool
    # Akkoma hides each list on its own; elsewhere hiding either hides both.
    hide_followers: bool
    hide_follows: bool
    suspended: bool
    note: str
    fields: tuple[Field, ...]
    emojis: tuple[Emoji, ...]
    role: Role | None
    created_at: str
    password: str = attrs.field(default=DEFAULT_PASSWORD, repr=False)
    # Deleted accounts keep their id and username but answer 404 (410 on WebFinger).
    deleted: bool = False
    moved_to: int | None = None
    # A remote account's actor URI and profile URL on its home (default https://domain/...).
    uri: str | None = None
    url: str | None = None

    @property
    def local(self) -> bool:
        return self.domain is None

    @property
    def hide_collections(self) -> bool:
        return self.hide_followers or self.hide_follows


@attrs.frozen(kw_only=True)
class App:
    id: int
    name: str
    website: str
    redirect_uri: str
    scopes: tuple[str, ...]
    client_id: str
    client_secret: str


@attrs.frozen(kw_only=True)
class Token:
    id: int
    token: str
    client_id: str
    account_id: int | None
    scopes: tuple[str, ...]
    created_at: int
    revoked: bool = False
    refresh_token: str | None = attrs.field(default=None, repr=False)
    # Epoch seconds after which the token no longer works; None: it never expires.
    expires_at: float | None = None

    def expired(self, now: float) -> bool:
        return self.expires_at is not None and now >= self.expires_at


@attrs.frozen(kw_only=True)
class TokenPolicy:
    """Expiring tokens with refresh tokens: Akkoma's, or Doorkeeper's with
    ``access_token_expires_in`` and ``use_refresh_token`` configured."""

    lifetime: float
    style: Literal["akkoma", "doorkeeper"]


@attrs.frozen(kw_only=True)
class Grant:
    code: str
    client_id: str
    account_id: int
    redirect_uri: str
    scopes: tuple[str, ...]
    expires_at: float
    code_challenge: str | None


class Edges:
    """One side of an account's follows: Follow ids ascending, with the other account in parallel.

    Keeping two flat lists lets a page be a bisect plus a slice, even with a million follows.
    """

    __slots__ = ("_by_account", "account_ids", "follow_ids")

    def __init__(self) -> None:
        self.follow_ids: list[int] = []
        self.account_ids: list[int] = []
        # The account ids sorted, for servers that page by account; built on first use.
        self._by_account: list[int] | None = None

    def append(self, follow_id: int, account_id: int) -> None:
        self.follow_ids.append(follow_id)
        self.account_ids.append(account_id)
        self._by_account = None

    def remove(self, follow_id: int) -> None:
        index = bisect_left(self.follow_ids, follow_id)
        del self.follow_ids[index]
        del self.account_ids[index]
        self._by_account = None

    def sorted_account_ids(self) -> list[int]:
        if self._by_account is None:
            self._by_account = sorted(self.account_ids)
        return self._by_account

    def __len__(self) -> int:
        return len(self.follow_ids)


# Shared stand-in for accounts without follows; it never gets any.
_NO_EDGES = Edges()
# Follow ids advance by irregular (but reproducible) steps, so they look nothing like counters.
_FOLLOW_STEPS = tuple(random.Random(7_000_000).randint(1, 47) for _ in range(101))


def normalize_scopes(scopes: str) -> tuple[str, ...]:
    """Doorkeeper's ``Scopes.from_string``: split on whitespace, drop duplicates, keep order."""
    return tuple(dict.fromkeys(scopes.split()))


def _new_secret() -> str:
    # Doorkeeper's default generator: SecureRandom.urlsafe_base64(32), 43 characters.
    return secrets.token_urlsafe(32)


class State:
    """All mutable server data. Every access must hold ``lock`` (the server may run in a thread)."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.accounts: dict[int, Account] = {}
        self._by_handle: dict[tuple[str, str | None], int] = {}
        # Created on first follow: most seeded accounts only ever have one side.
        self._followers: dict[int, Edges] = {}
        self._following: dict[int, Edges] = {}
        self._follows: dict[tuple[int, int], int] = {}
        self._next_follow_id = FIRST_FOLLOW_ID
        self.blocking: dict[int, set[int]] = {}
        self.blocked_by: dict[int, set[int]] = {}
        self.muting: dict[int, set[int]] = {}
        self.apps: dict[str, App] = {}
        self.tokens: dict[str, Token] = {}
        self._tokens_by_grant: dict[tuple[str, int | None, tuple[str, ...]], list[str]] = {}
        self.grants: dict[str, Grant] = {}
        # refresh token -> access token
        self.refresh_tokens: dict[str, str] = {}
        # Browser sessions of /oauth/authorize: cookie value -> account id.
        self.sessions: dict[str, int] = {}
        self._next_ids = {"app": 1, "token": 1}
        # Serialized Account JSON per id, rendered for ``json_base``; dropped when counts change.
        self.json_cache: dict[int, str] = {}
        self.json_base = ""
        # Counts shown instead of the stored follows (remote accounts show their home's).
        self.claimed_counts: dict[int, tuple[int | None, int | None]] = {}
        # Statuses, media, notifications: imported here, as _posts renders with _json,
        # which reads this module's records.
        from ._posts import Posts

        self.posts = Posts()

    # Accounts

    def add_account(
        self,
        username: str,
        *,
        domain: str | None,
        display_name: str,
        locked: bool,
        bot: bool,
        hide_followers: bool,
        hide_follows: bool,
        suspended: bool,
        note: str,
        fields: tuple[Field, ...],
        emojis: tuple[Emoji, ...],
        role: Role | None,
        created_at: str,
        password: str = DEFAULT_PASSWORD,
        moved_to: int | None = None,
        uri: str | None = None,
        url: str | None = None,
    ) -> int:
        handle = (username.lower(), domain.lower() if domain else None)
        if not username or handle in self._by_handle:
            raise ValueError(f"username {username!r} is empty or already taken on {domain!r}")
        account_id = FIRST_ACCOUNT_ID + len(self.accounts)
        self.accounts[account_id] = Account(
            id=account_id,
            username=username,
            domain=domain or None,
            display_name=display_name,
            locked=locked,
            bot=bot,
            hide_followers=hide_followers,
            hide_follows=hide_follows,
            suspended=suspended,
            note=note,
            fields=fields,
            emojis=emojis,
            role=role,
            created_at=created_at,
            password=password,
            moved_to=moved_to,
            uri=uri,
            url=url,
        )
        self._by_handle[handle] = account_id
        return account_id

    def update_account(
        self,
        account_id: int,
        *,
        suspended: bool | None = None,
        deleted: bool | None = None,
        moved_to: int | None = None,
    ) -> Account:
        account = self.require_account(account_id)
        account = attrs.evolve(
            account,
            suspended=account.suspended if suspended is None else suspended,
            deleted=account.deleted if deleted is None else deleted,
            moved_to=account.moved_to if moved_to is None else moved_to,
        )
        self.accounts[account_id] = account
        self.json_cache.clear()  # other accounts may embed this one (``moved``)
        return account

    def delete_account(self, account_id: int) -> None:
        """DeleteAccountService: the follows go both ways; the row stays, marked deleted."""
        for other in list(self.following_of(account_id).account_ids):
            self.unfollow(account_id, other)
        for other in list(self.followers_of(account_id).account_ids):
            self.unfollow(other, account_id)
        self.update_account(account_id, deleted=True)

    def set_counts(self, account_id: int, followers: int | None, following: int | None) -> None:
        current = self.claimed_counts.get(account_id, (None, None))
        counts = (
            current[0] if followers is None else followers,
            current[1] if following is None else following,
        )
        self.claimed_counts[account_id] = counts
        self.json_cache.pop(account_id, None)

    def counts(self, account_id: int) -> tuple[int, int]:
        """The followers and following counts the Account entity shows."""
        claimed = self.claimed_counts.get(account_id)
        followers = len(self.followers_of(account_id))
        following = len(self.following_of(account_id))
        if claimed is None:
            return followers, following
        return (
            followers if claimed[0] is None else claimed[0],
            following if claimed[1] is None else claimed[1],
        )

    def require_account(self, account_id: int) -> Account:
        account = self.accounts.get(account_id)
        if account is None:
            raise KeyError(f"no account with id {account_id}")
        return account

    def find_account(self, username: str, domain: str | None) -> Account | None:
        account_id = self._by_handle.get((username.lower(), domain.lower() if domain else None))
        return None if account_id is None else self.accounts[account_id]

    def search_first(self, query: str) -> Account | None:
        """The first account (by id) whose username contains ``query``: Sharkey's lookup
        returns the first account-search hit, which need not be the account asked for."""
        wanted = query.lower()
        for account in self.accounts.values():
            if wanted in account.username.lower() and not account.deleted:
                return account
        return None

    def free_username(self, prefix: str, start: int) -> tuple[str, int]:
        """The first ``prefix<n>`` (n >= start) not taken locally, and the n after it."""
        n = start
        while (f"{prefix}{n}".lower(), None) in self._by_handle:
            n += 1
        return f"{prefix}{n}", n + 1

    # Follows, blocks, mutes

    def follow(self, account_id: int, target_id: int) -> int:
        existing = self._follows.get((account_id, target_id))
        if existing is not None:
            return existing
        follow_id = self._next_follow_id
        self._next_follow_id += _FOLLOW_STEPS[follow_id % len(_FOLLOW_STEPS)]
        self._follows[(account_id, target_id)] = follow_id
        following = self._following.get(account_id)
        if following is None:
            following = self._following[account_id] = Edges()
        followers = self._followers.get(target_id)
        if followers is None:
            followers = self._followers[target_id] = Edges()
        following.append(follow_id, target_id)
        followers.append(follow_id, account_id)
        self.json_cache.pop(account_id, None)
        self.json_cache.pop(target_id, None)
        return follow_id

    def unfollow(self, account_id: int, target_id: int) -> bool:
        follow_id = self._follows.pop((account_id, target_id), None)
        if follow_id is None:
            return False
        self._following[account_id].remove(follow_id)
        self._followers[target_id].remove(follow_id)
        self.json_cache.pop(account_id, None)
        self.json_cache.pop(target_id, None)
        return True

    def followers_of(self, account_id: int) -> Edges:
        return self._followers.get(account_id, _NO_EDGES)

    def following_of(self, account_id: int) -> Edges:
        return self._following.get(account_id, _NO_EDGES)

    def follow_id(self, account_id: int, target_id: int) -> int | None:
        return self._follows.get((account_id, target_id))

    def block(self, account_id: int, target_id: int) -> None:
        # Mastodon's BlockService breaks follows in both directions.
        self.unfollow(account_id, target_id)
        self.unfollow(target_id, account_id)
        self.blocking.setdefault(account_id, set()).add(target_id)
        self.blocked_by.setdefault(target_id, set()).add(account_id)

    def mute(self, account_id: int, target_id: int) -> None:
        self.muting.setdefault(account_id, set()).add(target_id)

    def excluded_for(self, viewer_id: int) -> set[int]:
        """``excluded_from_timeline_account_ids``: blocked, blocking and muted accounts."""
        return (
            self.blocking.get(viewer_id, set())
            | self.blocked_by.get(viewer_id, set())
            | self.muting.get(viewer_id, set())
        )

    def blocks(self, account_id: int, target_id: int) -> bool:
        return target_id in self.blocking.get(account_id, ())

    def mutes(self, account_id: int, target_id: int) -> bool:
        return target_id in self.muting.get(account_id, ())

    # Apps and tokens

    def _next(self, kind: str) -> int:
        value = self._next_ids[kind]
        self._next_ids[kind] = value + 1
        return value

    def create_app(
        self, *, name: str, website: str, redirect_uri: str, scopes: tuple[str, ...]
    ) -> App:
        app = App(
            id=self._next("app"),
            name=name,
            website=website,
            redirect_uri=redirect_uri,
            scopes=scopes,
            client_id=_new_secret(),
            client_secret=_new_secret(),
        )
        self.apps[app.client_id] = app
        return app

    def authenticate_client(self, client_id: str, client_secret: str) -> App | None:
        """Doorkeeper's ``by_uid_and_secret``: every Mastodon app is confidential."""
        app = self.apps.get(client_id) if client_id else None
        if app is None or not secrets.compare_digest(app.client_secret, client_secret):
            return None
        return app

    def delete_app(self, client_id: str) -> None:
        del self.apps[client_id]
        # Tokens and grants go with the app (dependent: :delete_all), so they become unknown.
        for token in [t for t in self.tokens.values() if t.client_id == client_id]:
            self.delete_token(token.token)
        for key in [k for k in self._tokens_by_grant if k[0] == client_id]:
            del self._tokens_by_grant[key]
        for code in [c for c, g in self.grants.items() if g.client_id == client_id]:
            del self.grants[code]

    def find_or_create_token(
        self,
        app: App,
        account_id: int | None,
        scopes: tuple[str, ...],
        now: float,
        policy: TokenPolicy | None = None,
    ) -> Token:
        """Doorkeeper with ``reuse_access_token``: the newest live, unexpired token for the
        same (app, owner, scope set) is returned as is, old ``created_at`` included.

        Akkoma never reuses: every grant makes a new token. With a ``policy`` tokens expire
        and (except Doorkeeper's client-credentials tokens) carry a refresh token.
        """
        key = (app.client_id, account_id, tuple(sorted(scopes)))
        issued = self._tokens_by_grant.setdefault(key, [])
        if policy is None or policy.style == "doorkeeper":
            for access_token in reversed(issued):
                existing = self.tokens.get(access_token)
                if existing is not None and not existing.revoked and not existing.expired(now):
                    return existing
        with_refresh = policy is not None and (policy.style == "akkoma" or account_id is not None)
        token = Token(
            id=self._next("token"),
            token=_new_secret(),
            client_id=app.client_id,
            account_id=account_id,
            scopes=scopes,
            created_at=int(now),
            refresh_token=_new_secret() if with_refresh else None,
            expires_at=now + policy.lifetime if policy is not None else None,
        )
        self.tokens[token.token] = token
        if token.refresh_token is not None:
            self.refresh_tokens[token.refresh_token] = token.token
        issued.append(token.token)
        return token

    def by_refresh_token(self, refresh_token: str) -> Token | None:
        access_token = self.refresh_tokens.get(refresh_token)
        return None if access_token is None else self.tokens.get(access_token)

    def revoke(self, access_token: str) -> None:
        token = self.tokens[access_token]
        # Revoked tokens stay in the table until Mastodon's vacuum job, hence "was revoked".
        self.tokens[access_token] = attrs.evolve(token, revoked=True)

    def delete_token(self, access_token: str) -> None:
        """Akkoma deletes what it revokes (and what it refreshes): the token becomes unknown."""
        token = self.tokens.pop(access_token)
        if token.refresh_token is not None:
            self.refresh_tokens.pop(token.refresh_token, None)

    def create_grant(
        self,
        app: App,
        account_id: int,
        *,
        redirect_uri: str,
        scopes: tuple[str, ...],
        code_challenge: str | None,
        now: float,
    ) -> Grant:
        grant = Grant(
            code=_new_secret(),
            client_id=app.client_id,
            account_id=account_id,
            redirect_uri=redirect_uri,
            scopes=scopes,
            expires_at=now + GRANT_LIFETIME,
            code_challenge=code_challenge,
        )
        self.grants[grant.code] = grant
        return grant
