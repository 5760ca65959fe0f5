"""Server flavours: where GoToSocial and Akkoma differ from Mastodon, written down as data.

Every endpoint runs the same code and reads its quirks from a :class:`Flavor`, so a
flavour is a table of settings, not a subclass. Sources: docs/mastodon-api.md §10.5
(Mastodon), §14.1 (GoToSocial), §14.2 (Akkoma).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from types import MappingProxyType
from typing import Literal

import attrs

from ._ratelimit import ResetFormat
from ._state import FIRST_FOLLOW_ID

__all__ = [
    "FLAVORS",
    "AuthError",
    "AuthRules",
    "Endpoint",
    "Flavor",
    "FlavorName",
    "PagingRules",
    "RateLimitRules",
    "follow_ulid",
]

FlavorName = Literal["mastodon", "gotosocial", "akkoma"]
# "account": show, lookup, followers, following; "app": /api/v1/apps/verify_credentials.
Endpoint = Literal["account", "verify_credentials", "relationships", "app", "userinfo"]


@attrs.frozen(kw_only=True)
class AuthError:
    """An authorization failure; ``{scope}`` in ``error`` names the scope that was needed."""

    status: int
    error: str
    # Doorkeeper adds a WWW-Authenticate challenge to its invalid-token responses.
    www_authenticate: bool = False


def _frozen_scopes(
    scopes: Mapping[Endpoint, tuple[str, ...]],
) -> Mapping[Endpoint, tuple[str, ...]]:
    return MappingProxyType(dict(scopes))


@attrs.frozen(kw_only=True)
class AuthRules:
    # Whether show/lookup/followers/following serve anonymous readers at all.
    public_reads: bool
    # Akkoma's ``fallback: :proceed_unauthenticated``: a token that is revoked or lacks the
    # scope makes a public read anonymous instead of failing it.
    lenient_public_reads: bool
    # GoToSocial and Akkoma reject app tokens before looking at scopes; Mastodon checks
    # scopes first and only then says 422.
    user_before_scope: bool
    missing: AuthError
    revoked: AuthError
    # None: an expired token counts as no token at all (Pleroma's OAuthPlug skips it).
    expired: AuthError | None
    no_user: AuthError
    scope: AuthError
    # Accepted scopes per endpoint (any one suffices); the last is the one errors name.
    scopes: Mapping[Endpoint, tuple[str, ...]] = attrs.field(converter=_frozen_scopes)


@attrs.frozen(kw_only=True)
class PagingRules:
    default_limit: int
    max_limit: int
    # "rails": to_i.abs capped (garbage is 0); "strict": Go's Atoi, 0 means the default,
    # below 1 is 1, garbage is a 400; "lenient": leading integer, garbage means the default.
    limit_parse: Literal["rails", "strict", "lenient"]
    # What the list is sorted by and what cursors hold: the Follow record, or the account.
    order_by: Literal["follow", "account"]
    # How a Follow id looks: Mastodon's integer or a GoToSocial ULID.
    follow_ids: Literal["integer", "ulid"]
    # Mastodon ignores min_id on these endpoints; the others page upward from it.
    min_id: bool
    # Mastodon only links "next" from a full page; the others from any non-empty one.
    next_on_short_page: bool
    # "since_id" (Mastodon), "min_id" (Akkoma), or "request" (GoToSocial: since_id when the
    # request paged with since_id, min_id otherwise).
    prev_param: Literal["since_id", "min_id", "request"]
    # True: links always carry the effective limit; False: only the limit the request sent.
    links_always_limit: bool
    # Akkoma copies every other request parameter into its links.
    links_carry_params: bool


@attrs.frozen(kw_only=True)
class RateLimitRules:
    # "mastodon": Rack::Attack's rules on /api (and paging anywhere); "per_ip": one
    # first-hit window per client on every route.
    throttles: Literal["mastodon", "per_ip"]
    reset_format: ResetFormat
    too_many_body: bytes
    too_many_type: str


@attrs.frozen(kw_only=True)
class Flavor:
    """Everything a server family does differently on the modelled endpoints."""

    name: FlavorName
    auth: AuthRules
    paging: PagingRules
    # None: no limiter at all, so no X-RateLimit-* headers either (Akkoma).
    rate_limits: RateLimitRules | None
    # Whether /oauth/authorize and /oauth/token check PKCE (Akkoma ignores it).
    pkce: bool


_MASTODON_SCOPES: dict[Endpoint, tuple[str, ...]] = {
    "userinfo": ("profile",),
    "account": ("read", "read:accounts"),
    "verify_credentials": ("profile", "read", "read:accounts"),
    "relationships": ("read", "read:follows"),
    "app": (),
}
_GTS_SCOPES: dict[Endpoint, tuple[str, ...]] = {
    "userinfo": ("profile",),
    "account": ("read", "read:accounts"),
    "verify_credentials": ("read", "read:accounts"),
    "relationships": ("read", "read:accounts"),
    "app": (),
}
_AKKOMA_SCOPES: dict[Endpoint, tuple[str, ...]] = {
    "userinfo": ("profile",),
    "account": ("read", "read:accounts"),
    "verify_credentials": ("read", "read:accounts"),
    "relationships": ("read", "read:follows"),
    "app": (),
}

MASTODON = Flavor(
    name="mastodon",
    auth=AuthRules(
        public_reads=True,
        lenient_public_reads=False,
        user_before_scope=False,
        missing=AuthError(status=401, error="The access token is invalid", www_authenticate=True),
        revoked=AuthError(status=401, error="The access token was revoked", www_authenticate=True),
        expired=AuthError(status=401, error="The access token expired", www_authenticate=True),
        no_user=AuthError(status=422, error="This method requires an authenticated user"),
        scope=AuthError(status=403, error="This action is outside the authorized scopes"),
        scopes=_MASTODON_SCOPES,
    ),
    paging=PagingRules(
        default_limit=40,
        max_limit=80,
        limit_parse="rails",
        order_by="follow",
        follow_ids="integer",
        min_id=False,
        next_on_short_page=False,
        prev_param="since_id",
        links_always_limit=False,
        links_carry_params=False,
    ),
    rate_limits=RateLimitRules(
        throttles="mastodon",
        reset_format="iso_us",
        too_many_body=b'{"error":"Too many requests"}',
        too_many_type="application/json",
    ),
    pkce=True,
)

# GoToSocial deletes revoked tokens and treats unknown ones as absent, hence one answer.
_GTS_NO_TOKEN = AuthError(status=401, error="Unauthorized: token not supplied")

GOTOSOCIAL = Flavor(
    name="gotosocial",
    auth=AuthRules(
        public_reads=False,
        lenient_public_reads=False,
        user_before_scope=True,
        missing=_GTS_NO_TOKEN,
        revoked=_GTS_NO_TOKEN,
        expired=None,
        no_user=AuthError(status=401, error="Unauthorized: user not supplied or not authorized"),
        scope=AuthError(status=403, error="Forbidden: token has insufficient scope permission"),
        scopes=_GTS_SCOPES,
    ),
    paging=PagingRules(
        default_limit=40,
        max_limit=80,
        limit_parse="strict",
        order_by="follow",
        follow_ids="ulid",
        min_id=True,
        next_on_short_page=True,
        prev_param="request",
        links_always_limit=True,
        links_carry_params=False,
    ),
    rate_limits=RateLimitRules(
        throttles="per_ip",
        reset_format="iso_ms",
        too_many_body=b'{"error":"rate limit reached"}',
        too_many_type="application/json; charset=utf-8",
    ),
    pkce=True,
)

# Akkoma's plugs answer 403 both for a missing user and for a missing scope.
_AKKOMA_NO_USER = AuthError(status=403, error="Invalid credentials.")

AKKOMA = Flavor(
    name="akkoma",
    auth=AuthRules(
        public_reads=True,
        lenient_public_reads=True,
        user_before_scope=True,
        missing=_AKKOMA_NO_USER,
        revoked=_AKKOMA_NO_USER,
        expired=None,
        no_user=_AKKOMA_NO_USER,
        scope=AuthError(status=403, error="Insufficient permissions: {scope}."),
        scopes=_AKKOMA_SCOPES,
    ),
    paging=PagingRules(
        default_limit=20,
        max_limit=40,
        limit_parse="lenient",
        order_by="account",
        follow_ids="integer",
        min_id=True,
        next_on_short_page=True,
        prev_param="min_id",
        links_always_limit=False,
        links_carry_params=True,
    ),
    # Akkoma's per-route buckets cover none of the modelled endpoints.
    rate_limits=None,
    pkce=False,
)

FLAVORS: Mapping[FlavorName, Flavor] = MappingProxyType(
    {"mastodon": MASTODON, "gotosocial": GOTOSOCIAL, "akkoma": AKKOMA}
)

_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_ULID_EPOCH_MS = 1_704_067_200_000  # 2024-01-01T00:00:00Z


def follow_ulid(follow_id: int) -> str:
    """The GoToSocial-style id of a Follow: a 26-character ULID, deterministic per follow.

    The 48-bit time part grows with the internal id (one step is a second), so the text
    sorts like the follows were made; the 80 random bits are a hash of the id.

    Example: ``follow_ulid(7_000_000) == "01HK153X00N88V0720W48XYWMC"`` (the first follow,
    stamped 2024-01-01T00:00:00Z).
    """
    millis = _ULID_EPOCH_MS + (follow_id - FIRST_FOLLOW_ID) * 1000
    entropy = hashlib.blake2b(follow_id.to_bytes(8, "big"), digest_size=10).digest()
    value = millis << 80 | int.from_bytes(entropy, "big")
    return "".join(_CROCKFORD[(value >> shift) & 31] for shift in range(125, -1, -5))
