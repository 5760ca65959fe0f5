"""Server flavours: where other servers differ from Mastodon, written down as data.

Every endpoint runs the same code and reads its quirks from a :class:`Flavor`, so a
flavour is a table of settings, not a subclass. Sources: mastodon-api.md §10.5
(Mastodon), §14.1 (GoToSocial), §14.2 (Akkoma); federation.md §1 (WebFinger), §3.1 (what
a list answers), §4 (NodeInfo, instance endpoints, Pixelfed's and Sharkey's paging).
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
    "Answer",
    "AuthError",
    "AuthRules",
    "Endpoint",
    "Flavor",
    "FlavorName",
    "ListRules",
    "PagingRules",
    "RateLimitRules",
    "SoftwareRules",
    "WebfingerRules",
    "follow_ulid",
]

FlavorName = Literal["mastodon", "gotosocial", "akkoma", "pixelfed", "sharkey"]
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
    # "ids": max_id/since_id (and min_id where honoured); "opaque": Pixelfed's Laravel
    # ``cursor=`` (max_id ignored); "none": Sharkey's shim forwards only ``limit``.
    cursor: Literal["ids", "opaque", "none"] = "ids"
    # "standard": next = older; "swapped": Pixelfed's rel="prev" = older, page 1 only prev;
    # "none": no Link header at all (Sharkey).
    links: Literal["standard", "swapped", "none"] = "standard"


@attrs.frozen(kw_only=True)
class RateLimitRules:
    # "mastodon": Rack::Attack's rules on /api (and paging anywhere); "per_ip": one
    # first-hit window per client on every route.
    throttles: Literal["mastodon", "per_ip"]
    reset_format: ResetFormat
    too_many_body: bytes
    too_many_type: str


@attrs.frozen(kw_only=True)
class Answer:
    """A fixed error answer: status, body and its content type (None: no body at all)."""

    status: int
    body: bytes = b""
    content_type: str | None = None


def _json_error(status: int, text: str) -> Answer:
    body = ('{"error":"' + text + '"}').encode()
    return Answer(status=status, body=body, content_type="application/json; charset=utf-8")


@attrs.frozen(kw_only=True)
class WebfingerRules:
    """``/.well-known/webfinger`` per server (federation.md §1.1 table, §1.2 shapes)."""

    # "mastodon": aliases [profile, actor], links profile-page/self/subscribe (+avatar);
    # "gotosocial": aliases [actor, profile], profile-page + self; "akkoma": aliases [actor],
    # profile-page href = the actor, self in both AP types, subscribe; "pixelfed" as
    # Mastodon's without the avatar.
    style: Literal["mastodon", "gotosocial", "akkoma", "pixelfed"]
    unknown_user: Answer
    foreign_domain: Answer
    invalid: Answer
    deleted: Answer
    # None: suspended accounts are served like any other (Mastodon's temporary suspension).
    suspended: Answer | None = None
    # GoToSocial offers only JRD/JSON and answers any other Accept with 406.
    json_only: bool = False
    # Akkoma serves XRD when the Accept header asks for it.
    xrd: bool = False


@attrs.frozen(kw_only=True)
class SoftwareRules:
    """NodeInfo and the instance endpoints (federation.md §4.1, §4.2)."""

    # NodeInfo ``software.name`` and ``software.version`` ("{mastodon}": the modelled version).
    name: str
    version: str
    # (schema version, path) in the order ``/.well-known/nodeinfo`` lists them.
    nodeinfo: tuple[tuple[str, str], ...]
    # ``version`` of /api/v1|v2/instance ("{mastodon}" as above).
    instance_version: str
    source_url: str
    # Whether GET /api/v2/instance exists (not on Akkoma nor Sharkey 2023.12).
    instance_v2: bool
    # What v1 ``uri`` holds: the handle domain (Mastodon), the API host (GoToSocial, which
    # adds ``account_domain``), or the base URL with its scheme (Akkoma's Pleroma.Web.base_url).
    v1_uri: Literal["domain", "host", "base_url"]


@attrs.frozen(kw_only=True)
class ListRules:
    """What followers/following answer for unavailable or hidden targets (federation.md §3.1)."""

    # "together": hide_collections empties both lists (Mastodon, GoToSocial, Pixelfed,
    # Sharkey); "separately": Akkoma's hide_followers and hide_follows.
    hide: Literal["together", "separately"]
    # A suspended target: "empty" (200 []), "not_found" (GoToSocial's 404) or "listed".
    suspended: Literal["empty", "not_found", "listed"]
    # A target that blocks the viewer (or, on GoToSocial, a block either way).
    blocked: Literal["empty", "not_found", "listed"]
    # The answer of those 404s (Sharkey: its shim's 401 for a lookup without a hit).
    not_found: Answer
    # "mastodon": ``user@LOCAL_DOMAIN`` is local, ``user@WEB_DOMAIN`` is not; "any_host":
    # both are (GoToSocial); "web_domain": only the API host (Akkoma); "none": no lookup
    # route (Pixelfed); "first_hit": Sharkey's first account-search hit (federation.md §1.4).
    lookup: Literal["mastodon", "any_host", "web_domain", "none", "first_hit"]


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
    webfinger: WebfingerRules
    software: SoftwareRules
    lists: ListRules
    # "akkoma": the Account entity carries ``pleroma``/``akkoma``/``fqn`` and no
    # ``hide_collections`` (mastodon-api.md §14.2).
    account_shape: Literal["mastodon", "akkoma"] = "mastodon"


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

_PIXELFED_SCOPES: dict[Endpoint, tuple[str, ...]] = {**_MASTODON_SCOPES, "account": ("read",)}

GTS_VERSION = "0.20.0+git-57cb4fe"
AKKOMA_VERSION = "3.16.0"
PIXELFED_VERSION = "0.11.13"
SHARKEY_VERSION = "2023.12.0.beta1"

_MASTODON_AUTH = AuthRules(
    public_reads=True,
    lenient_public_reads=False,
    user_before_scope=False,
    missing=AuthError(status=401, error="The access token is invalid", www_authenticate=True),
    revoked=AuthError(status=401, error="The access token was revoked", www_authenticate=True),
    expired=AuthError(status=401, error="The access token expired", www_authenticate=True),
    no_user=AuthError(status=422, error="This method requires an authenticated user"),
    scope=AuthError(status=403, error="This action is outside the authorized scopes"),
    scopes=_MASTODON_SCOPES,
)

MASTODON = Flavor(
    name="mastodon",
    auth=_MASTODON_AUTH,
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
    # mastodon: app/controllers/well_known/webfinger_controller.rb answers errors with `head`.
    webfinger=WebfingerRules(
        style="mastodon",
        unknown_user=Answer(status=404),
        foreign_domain=Answer(status=404),
        invalid=Answer(status=400),
        deleted=Answer(status=410),
    ),
    software=SoftwareRules(
        name="mastodon",
        version="{mastodon}",
        nodeinfo=(("2.0", "/nodeinfo/2.0"),),
        instance_version="{mastodon}",
        source_url="https://github.com/mastodon/mastodon",
        instance_v2=True,
        v1_uri="domain",
    ),
    lists=ListRules(
        hide="together",
        suspended="empty",
        blocked="empty",
        not_found=_json_error(404, "Record not found"),
        lookup="mastodon",
    ),
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
    # gts: internal/api/wellknown/webfinger/webfingerget.go
    webfinger=WebfingerRules(
        style="gotosocial",
        unknown_user=_json_error(404, "Not Found"),
        foreign_domain=_json_error(400, "Bad Request: requested username or domain not found"),
        invalid=_json_error(400, "Bad Request: bad webfinger request"),
        deleted=_json_error(404, "Not Found"),
        json_only=True,
    ),
    software=SoftwareRules(
        name="gotosocial",
        version=GTS_VERSION,
        nodeinfo=(("2.0", "/nodeinfo/2.0"), ("2.1", "/nodeinfo/2.1")),
        instance_version=GTS_VERSION,
        source_url="https://github.com/superseriousbusiness/gotosocial",
        instance_v2=True,
        v1_uri="host",
    ),
    lists=ListRules(
        hide="together",
        suspended="not_found",
        blocked="not_found",
        not_found=_json_error(404, "Not Found: target account not found"),
        lookup="any_host",
    ),
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
    # akkoma: lib/pleroma/web/web_finger/web_finger_controller.ex
    webfinger=WebfingerRules(
        style="akkoma",
        unknown_user=Answer(
            status=404, body=b'"Couldn\'t find user"', content_type="application/json"
        ),
        foreign_domain=Answer(
            status=404, body=b'"Couldn\'t find user"', content_type="application/json"
        ),
        invalid=Answer(status=400, body=b"Bad Request", content_type="text/plain"),
        deleted=Answer(status=404, body=b'"Couldn\'t find user"', content_type="application/json"),
        xrd=True,
    ),
    software=SoftwareRules(
        name="akkoma",
        version=AKKOMA_VERSION,
        nodeinfo=(("2.0", "/nodeinfo/2.0.json"), ("2.1", "/nodeinfo/2.1.json")),
        instance_version=f"2.7.2 (compatible; Akkoma {AKKOMA_VERSION})",
        source_url="https://akkoma.dev/AkkomaGang/akkoma",
        instance_v2=False,
        v1_uri="base_url",
    ),
    lists=ListRules(
        hide="separately",
        suspended="listed",
        blocked="listed",
        not_found=_json_error(404, "Can't find user"),
        lookup="web_domain",
    ),
    account_shape="akkoma",
)

# Pixelfed's abort_if(!$request->user(), 403): the status is sourced, the text is ours.
_PIXELFED_FORBIDDEN = AuthError(status=403, error="This action is unauthorized.")

PIXELFED = Flavor(
    name="pixelfed",
    auth=AuthRules(
        public_reads=False,
        lenient_public_reads=False,
        user_before_scope=True,
        missing=_PIXELFED_FORBIDDEN,
        revoked=_PIXELFED_FORBIDDEN,
        expired=None,
        no_user=_PIXELFED_FORBIDDEN,
        scope=_PIXELFED_FORBIDDEN,
        scopes=_PIXELFED_SCOPES,
    ),
    # pixelfed: app/Http/Controllers/Api/ApiV1Controller.php#accountFollowersById
    # (federation.md §4.3): cursorPaginate over follows, newest first.
    paging=PagingRules(
        default_limit=10,
        max_limit=80,
        limit_parse="lenient",
        order_by="follow",
        follow_ids="integer",
        min_id=False,
        next_on_short_page=True,
        prev_param="since_id",
        links_always_limit=False,
        links_carry_params=False,
        cursor="opaque",
        links="swapped",
    ),
    # No throttle on Pixelfed's api group (federation.md §5).
    rate_limits=None,
    pkce=True,
    # pixelfed: app/Http/Controllers/FederationController.php answers every miss with 400.
    webfinger=WebfingerRules(
        style="pixelfed",
        unknown_user=Answer(status=400),
        foreign_domain=Answer(status=400),
        invalid=Answer(status=400),
        deleted=Answer(status=400),
        suspended=Answer(status=400),
    ),
    software=SoftwareRules(
        name="pixelfed",
        version=PIXELFED_VERSION,
        nodeinfo=(("2.0", "/api/nodeinfo/2.0.json"),),
        instance_version=f"3.5.3 (compatible; Pixelfed {PIXELFED_VERSION})",
        source_url="https://github.com/pixelfed/pixelfed",
        instance_v2=True,
        v1_uri="domain",
    ),
    lists=ListRules(
        hide="together",
        suspended="not_found",
        blocked="listed",
        not_found=_json_error(404, "Record not found"),
        lookup="none",
    ),
)

SHARKEY = Flavor(
    name="sharkey",
    # The shim passes the token upstream; followers of a public profile need none.
    auth=attrs.evolve(
        _MASTODON_AUTH,
        missing=AuthError(status=401, error="Credential required."),
        revoked=AuthError(status=401, error="Credential required."),
    ),
    # sharkey: packages/megalodon/src/misskey.ts forwards only ``limit`` (federation.md §4.3).
    paging=PagingRules(
        default_limit=10,
        max_limit=100,
        limit_parse="lenient",
        order_by="follow",
        follow_ids="integer",
        min_id=False,
        next_on_short_page=False,
        prev_param="since_id",
        links_always_limit=False,
        links_carry_params=False,
        cursor="none",
        links="none",
    ),
    rate_limits=None,
    pkce=True,
    webfinger=WebfingerRules(
        style="mastodon",
        unknown_user=Answer(status=404),
        foreign_domain=Answer(status=404),
        invalid=Answer(status=400),
        deleted=Answer(status=404),
    ),
    software=SoftwareRules(
        name="sharkey",
        version=SHARKEY_VERSION,
        nodeinfo=(("2.1", "/nodeinfo/2.1"), ("2.0", "/nodeinfo/2.0")),
        instance_version=f"3.0.0 (compatible; Sharkey {SHARKEY_VERSION})",
        source_url="https://activitypub.software/TransFem-org/Sharkey/",
        instance_v2=False,
        v1_uri="domain",
    ),
    lists=ListRules(
        hide="together",
        suspended="empty",
        blocked="listed",
        not_found=_json_error(401, "NO_SUCH_USER"),
        lookup="first_hit",
    ),
)

FLAVORS: Mapping[FlavorName, Flavor] = MappingProxyType(
    {
        "mastodon": MASTODON,
        "gotosocial": GOTOSOCIAL,
        "akkoma": AKKOMA,
        "pixelfed": PIXELFED,
        "sharkey": SHARKEY,
    }
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
