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

from ._converter import from_json, to_json
from ._protocol import RawResponse
from ._version import __version__
from .auth import OOB_REDIRECT_URI, App
from .entities import (
    Account,
    AccountRole,
    Application,
    Context,
    Conversation,
    CredentialAccount,
    CustomEmoji,
    Error,
    ErrorDetail,
    Field,
    Instance,
    InstanceConfiguration,
    MediaAttachment,
    Mention,
    Notification,
    Poll,
    PollOption,
    PreviewCard,
    Relationship,
    Role,
    Rule,
    ScheduledStatus,
    Source,
    Status,
    StatusEdit,
    StatusSource,
    Tag,
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
    MediaNotReady,
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

from .streaming import Reconnecting, Stream, StreamEvent

__all__ = [
    "Reconnecting",
    "Stream",
    "StreamEvent",
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
    "Context",
    "Conversation",
    "CrawlSinkError",
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
    "Instance",
    "InstanceConfiguration",
    "JsonFileTokenStore",
    "LoginError",
    "LoginExpired",
    "LoginStart",
    "LoginState",
    "MastodonError",
    "MediaAttachment",
    "MediaNotReady",
    "MemoryTokenStore",
    "Mention",
    "NotFound",
    "Notification",
    "OAuthError",
    "OriginError",
    "Page",
    "PaginationError",
    "Paginator",
    "Poll",
    "PollOption",
    "PreviewCard",
    "RateLimit",
    "RateLimitPolicy",
    "RateLimited",
    "RateLimiterError",
    "RawResponse",
    "RedisLimiter",
    "Relationship",
    "RequestTimeout",
    "ResponseTooLarge",
    "Retry",
    "Retrying",
    "Role",
    "Rule",
    "ScheduledStatus",
    "ScopeMismatch",
    "ServerError",
    "Session",
    "Source",
    "SqliteTokenStore",
    "StateMismatch",
    "Status",
    "StatusEdit",
    "StatusSource",
    "StoreKey",
    "Tag",
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
    "from_json",
    "parse_links",
    "store_keys",
    "store_lock",
    "to_json",
]


def __getattr__(name: str) -> Any:
    # RedisTokenStore imports redis-py (the ``redis`` extra) only when first used, so that
    # ``import aiomasto`` works without it; it stays out of __all__ for star imports' sake.
    if name == "RedisTokenStore":
        from .stores.redis import RedisTokenStore

        return RedisTokenStore
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
