"""aiomasto: the asyncio client for the Mastodon API.

Register an app once, keep its token safe, and walk followers and following over one shared
connection pool::

    import asyncio
    from aiomasto import App, JsonFileTokenStore, Session

    async def main() -> None:
        app = App(name="Relationship Mapper", scopes="read")
        store = JsonFileTokenStore("~/.config/aiomasto/credentials.json")
        async with Session("https://mastodon.example", app=app, store=store) as masto:
            print(await masto.verify_app())
            page = await masto.followers_page("14715", limit=80)
            print([account.acct for account in page.items])

    asyncio.run(main())
"""

from typing import TYPE_CHECKING, Any

from ._version import __version__
from .auth import OOB_REDIRECT_URI, App
from .entities import (
    Account,
    AccountRole,
    Application,
    CredentialAccount,
    CustomEmoji,
    Error,
    ErrorDetail,
    Field,
    Relationship,
    Role,
    Source,
    Token,
    UserInfo,
)
from .errors import (
    AuthorizationDenied,
    BadRequest,
    ConfigurationError,
    ConnectionFailed,
    CrawlSinkError,
    DecodeError,
    Forbidden,
    Gone,
    HTTPError,
    LoginError,
    LoginExpired,
    MastodonError,
    NotFound,
    OAuthError,
    OriginError,
    PaginationError,
    RateLimited,
    RateLimiterError,
    RequestTimeout,
    ResponseTooLarge,
    ScopeMismatch,
    ServerError,
    StateMismatch,
    TokenStoreError,
    TransportError,
    Unauthorized,
    Unprocessable,
    UsageError,
    UserTokenRequired,
)
from .login import Authorizer, LoginStart, UserLogin
from .oauth import LoginState
from .pagination import Page, Paginator, parse_links
from .policies import NO_RETRY, RateLimitPolicy, Retry, Retrying, Waiting
from .ratelimit import RateLimit
from .ratelimit_redis import RedisLimiter
from .session import Session
from .stores import (
    Credentials,
    JsonFileTokenStore,
    MemoryTokenStore,
    SqliteTokenStore,
    StoreKey,
    TokenStore,
    store_keys,
    store_lock,
)

if TYPE_CHECKING:
    from .stores.redis import RedisTokenStore as RedisTokenStore

__all__ = [
    "NO_RETRY",
    "OOB_REDIRECT_URI",
    "Account",
    "AccountRole",
    "App",
    "Application",
    "AuthorizationDenied",
    "Authorizer",
    "BadRequest",
    "ConfigurationError",
    "ConnectionFailed",
    "CredentialAccount",
    "Credentials",
    "CustomEmoji",
    "DecodeError",
    "Error",
    "ErrorDetail",
    "Field",
    "Forbidden",
    "Gone",
    "HTTPError",
    "JsonFileTokenStore",
    "LoginError",
    "LoginExpired",
    "LoginStart",
    "LoginState",
    "MastodonError",
    "MemoryTokenStore",
    "NotFound",
    "OAuthError",
    "OriginError",
    "Page",
    "PaginationError",
    "Paginator",
    "RateLimit",
    "RateLimitPolicy",
    "RateLimited",
    "RateLimiterError",
    "CrawlSinkError",
    "Relationship",
    "RequestTimeout",
    "ResponseTooLarge",
    "RedisLimiter",
    "Retry",
    "Retrying",
    "Role",
    "ScopeMismatch",
    "ServerError",
    "Session",
    "SqliteTokenStore",
    "Source",
    "StateMismatch",
    "StoreKey",
    "Token",
    "TokenStore",
    "TokenStoreError",
    "TransportError",
    "Unauthorized",
    "Unprocessable",
    "UsageError",
    "UserInfo",
    "UserLogin",
    "UserTokenRequired",
    "Waiting",
    "__version__",
    "parse_links",
    "store_keys",
    "store_lock",
]


def __getattr__(name: str) -> Any:
    # RedisTokenStore imports redis-py (the ``redis`` extra) only when first used, so that
    # ``import aiomasto`` works without it; it stays out of __all__ for star imports' sake.
    if name == "RedisTokenStore":
        from .stores.redis import RedisTokenStore

        return RedisTokenStore
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
