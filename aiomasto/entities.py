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

from attrs import evolve, field, frozen

__all__ = [
    "Account",
    "AccountRole",
    "AccountWarning",
    "Application",
    "Context",
    "Conversation",
    "CredentialAccount",
    "CustomEmoji",
    "Error",
    "ErrorDetail",
    "Field",
    "Instance",
    "InstanceAccounts",
    "InstanceApiVersions",
    "InstanceConfiguration",
    "InstanceContact",
    "InstanceMediaAttachments",
    "InstancePolls",
    "InstanceRegistrations",
    "InstanceStatuses",
    "InstanceThumbnail",
    "InstanceTranslation",
    "InstanceUrls",
    "InstanceUsage",
    "InstanceUsers",
    "InstanceV1",
    "InstanceV1Stats",
    "InstanceV1Urls",
    "InstanceVapid",
    "MediaAttachment",
    "Mention",
    "Notification",
    "Poll",
    "PollOption",
    "PreviewCard",
    "Relationship",
    "RelationshipSeveranceEvent",
    "Report",
    "Role",
    "Rule",
    "ScheduledStatus",
    "ScheduledStatusParams",
    "Source",
    "Status",
    "StatusEdit",
    "StatusSource",
    "Tag",
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


# -- what a bot reads: statuses, notifications, the instance ------------------------------------


@frozen(kw_only=True)
class MediaAttachment:
    """A file attached to a status (``POST /api/v2/media`` answers one too).

    ``url`` is ``None`` while the server is still processing the upload (a
    ProcessingMediaAttachment). ``type`` is ``"image"``, ``"gifv"``, ``"video"``, ``"audio"``
    or ``"unknown"`` (any other value is kept as sent). ``meta`` (sizes, focal point) is not
    read: its shape differs by media type and server.
    """

    id: str
    type: str = "unknown"
    url: str | None = None
    preview_url: str | None = None
    remote_url: str | None = None
    description: str | None = None
    blurhash: str | None = None


@frozen(kw_only=True)
class Mention:
    """An account mentioned in a status (``Status.mentions``)."""

    id: str
    username: str = ""
    acct: str = ""
    url: str = ""


@frozen(kw_only=True)
class Tag:
    """A hashtag used in a status (``Status.tags``): ``name`` without the ``#``."""

    name: str
    url: str = ""


@frozen(kw_only=True)
class PollOption:
    """One answer of a poll; ``votes_count`` is ``None`` while results are hidden."""

    title: str
    votes_count: int | None = None


@frozen(kw_only=True)
class Poll:
    """A poll attached to a status. ``voted`` and ``own_votes`` come with a user token only;
    ``voters_count`` is ``None`` for a single-choice poll."""

    id: str
    expires_at: datetime | None = None
    expired: bool = False
    multiple: bool = False
    votes_count: int = 0
    voters_count: int | None = None
    options: tuple[PollOption, ...] = ()
    emojis: tuple[CustomEmoji, ...] = ()
    voted: bool | None = None
    own_votes: tuple[int, ...] = ()


@frozen(kw_only=True)
class PreviewCard:
    """The preview of a link in a status (``Status.card``)."""

    url: str
    title: str = ""
    description: str = ""
    type: str = "link"
    author_name: str = ""
    author_url: str = ""
    provider_name: str = ""
    provider_url: str = ""
    html: str = ""
    width: int = 0
    height: int = 0
    image: str | None = None
    image_description: str = ""
    embed_url: str = ""
    blurhash: str | None = None
    language: str | None = None


@frozen(kw_only=True)
class Status:
    """A post, as timelines, ``GET /api/v1/statuses/:id`` and ``POST /api/v1/statuses`` return it.

    ``visibility`` is ``"public"``, ``"unlisted"``, ``"private"`` or ``"direct"`` (other
    values, such as a fork's ``"local"``, are kept as sent). A boost is a status of its own
    whose ``reblog`` is the boosted status. ``favourited``, ``reblogged``, ``muted``,
    ``bookmarked`` and ``pinned`` say what the token's user did; they are ``None`` without a
    user token. ``text`` is the plain source, sent only when a status is deleted (to redraft).
    ``application`` holds just ``name`` and ``website``, and only on your own statuses.

    Example::

        status = await masto.post_status("Hello, fediverse!", visibility="unlisted")
        status.url, status.created_at
    """

    id: str
    created_at: datetime
    account: Account
    uri: str = ""
    url: str | None = None
    content: str = ""
    text: str | None = None
    visibility: str = "public"
    sensitive: bool = False
    spoiler_text: str = ""
    language: str | None = None
    in_reply_to_id: str | None = None
    in_reply_to_account_id: str | None = None
    reblog: Status | None = None
    application: Application | None = None
    media_attachments: tuple[MediaAttachment, ...] = ()
    mentions: tuple[Mention, ...] = ()
    tags: tuple[Tag, ...] = ()
    emojis: tuple[CustomEmoji, ...] = ()
    card: PreviewCard | None = None
    poll: Poll | None = None
    replies_count: int = 0
    reblogs_count: int = 0
    favourites_count: int = 0
    quotes_count: int = 0
    edited_at: datetime | None = None
    favourited: bool | None = None
    reblogged: bool | None = None
    muted: bool | None = None
    bookmarked: bool | None = None
    pinned: bool | None = None


@frozen(kw_only=True)
class StatusSource:
    """The plain text of one's own status, to edit it (``GET /api/v1/statuses/:id/source``)."""

    id: str
    text: str = ""
    spoiler_text: str = ""


@frozen(kw_only=True)
class StatusEdit:
    """One revision of a status (``GET /api/v1/statuses/:id/history``, oldest first)."""

    created_at: datetime
    account: Account
    content: str = ""
    spoiler_text: str = ""
    sensitive: bool = False
    media_attachments: tuple[MediaAttachment, ...] = ()
    emojis: tuple[CustomEmoji, ...] = ()


@frozen(kw_only=True)
class Context:
    """The thread around a status (``GET /api/v1/statuses/:id/context``)."""

    ancestors: tuple[Status, ...] = ()
    descendants: tuple[Status, ...] = ()


@frozen(kw_only=True)
class Conversation:
    """A direct-message conversation (``GET /api/v1/conversations``)."""

    id: str
    unread: bool = False
    accounts: tuple[Account, ...] = ()
    last_status: Status | None = None


@frozen(kw_only=True)
class ScheduledStatusParams:
    """What a scheduled status will be posted with (the parameters that matter to a bot)."""

    text: str = ""
    visibility: str | None = None
    spoiler_text: str | None = None
    in_reply_to_id: str | None = None
    language: str | None = None
    sensitive: bool | None = None
    media_ids: tuple[str, ...] | None = None


@frozen(kw_only=True)
class ScheduledStatus:
    """A status to be posted later (``POST /api/v1/statuses`` with ``scheduled_at``)."""

    id: str
    scheduled_at: datetime
    params: ScheduledStatusParams = ScheduledStatusParams()
    media_attachments: tuple[MediaAttachment, ...] = ()


@frozen(kw_only=True)
class Report:
    """A report (``Notification.report`` of an ``admin.report`` notification)."""

    id: str
    action_taken: bool = False
    category: str = "other"
    comment: str = ""
    forwarded: bool = False
    created_at: datetime | None = None
    status_ids: tuple[str, ...] | None = None
    rule_ids: tuple[str, ...] | None = None
    target_account: Account | None = None


@frozen(kw_only=True)
class RelationshipSeveranceEvent:
    """Why follows were cut (``Notification.event`` of ``severed_relationships``)."""

    id: str
    type: str = ""
    purged: bool = False
    target_name: str = ""
    followers_count: int = 0
    following_count: int = 0
    created_at: datetime | None = None


@frozen(kw_only=True)
class AccountWarning:
    """A moderation action against the user (``Notification.moderation_warning``)."""

    id: str
    action: str = "none"
    text: str = ""
    status_ids: tuple[str, ...] | None = None
    target_account: Account | None = None
    created_at: datetime | None = None


@frozen(kw_only=True)
class Notification:
    """Something that happened to the token's user (``GET /api/v1/notifications``).

    ``type`` is a plain string: ``"mention"``, ``"status"``, ``"reblog"``, ``"follow"``,
    ``"follow_request"``, ``"favourite"``, ``"poll"``, ``"update"``, ``"admin.sign_up"``,
    ``"admin.report"``, ``"severed_relationships"``, ``"moderation_warning"``, ``"quote"``,
    ``"quoted_update"``, or any type a newer server or a fork adds (kept as sent). ``status``
    is set for mention, status, reblog, favourite, poll, update, quote and quoted_update;
    ``report``, ``event`` and ``moderation_warning`` for their types.

    Example::

        async for notification in masto.notifications(types=["mention"]):
            print(notification.account.acct, notification.status.content)
    """

    id: str
    type: str
    created_at: datetime
    account: Account
    status: Status | None = None
    group_key: str | None = None
    report: Report | None = None
    event: RelationshipSeveranceEvent | None = None
    moderation_warning: AccountWarning | None = None


@frozen(kw_only=True)
class Rule:
    """One of the instance's rules."""

    id: str
    text: str = ""
    hint: str = ""


@frozen(kw_only=True)
class InstanceUsers:
    """``usage.users``: ``active_month`` is the number of users active in the last 4 weeks."""

    active_month: int = 0


@frozen(kw_only=True)
class InstanceUsage:
    """``Instance.usage``."""

    users: InstanceUsers = InstanceUsers()


@frozen(kw_only=True)
class InstanceThumbnail:
    """``Instance.thumbnail`` (the ``versions`` for high-DPI screens are not read)."""

    url: str
    blurhash: str | None = None


@frozen(kw_only=True)
class InstanceUrls:
    """``configuration.urls``: ``streaming`` is the WebSocket origin of the streaming API."""

    streaming: str | None = None
    status: str | None = None


@frozen(kw_only=True)
class InstanceVapid:
    """``configuration.vapid``: the key Web Push subscriptions use."""

    public_key: str = ""


@frozen(kw_only=True)
class InstanceAccounts:
    """``configuration.accounts``."""

    max_featured_tags: int | None = None
    max_pinned_statuses: int | None = None


@frozen(kw_only=True)
class InstanceStatuses:
    """``configuration.statuses``: the limits a status must keep to."""

    max_characters: int = 500
    max_media_attachments: int = 4
    characters_reserved_per_url: int = 23


@frozen(kw_only=True)
class InstanceMediaAttachments:
    """``configuration.media_attachments``: what uploads the server takes (sizes in bytes)."""

    supported_mime_types: tuple[str, ...] = ()
    description_limit: int | None = None
    image_size_limit: int | None = None
    image_matrix_limit: int | None = None
    video_size_limit: int | None = None
    video_frame_rate_limit: int | None = None
    video_matrix_limit: int | None = None


@frozen(kw_only=True)
class InstancePolls:
    """``configuration.polls`` (expirations in seconds)."""

    max_options: int = 4
    max_characters_per_option: int = 50
    min_expiration: int = 300
    max_expiration: int = 2629746


@frozen(kw_only=True)
class InstanceTranslation:
    """``configuration.translation``."""

    enabled: bool = False


@frozen(kw_only=True)
class InstanceConfiguration:
    """``Instance.configuration``: URLs and the limits statuses, media and polls keep to."""

    urls: InstanceUrls = InstanceUrls()
    vapid: InstanceVapid | None = None
    accounts: InstanceAccounts | None = None
    statuses: InstanceStatuses = InstanceStatuses()
    media_attachments: InstanceMediaAttachments = InstanceMediaAttachments()
    polls: InstancePolls = InstancePolls()
    translation: InstanceTranslation = InstanceTranslation()


@frozen(kw_only=True)
class InstanceRegistrations:
    """``Instance.registrations``."""

    enabled: bool = False
    approval_required: bool = False
    message: str | None = None
    url: str | None = None


@frozen(kw_only=True)
class InstanceContact:
    """``Instance.contact``: whom to write to about the instance."""

    email: str = ""
    account: Account | None = None


@frozen(kw_only=True)
class InstanceApiVersions:
    """``api_versions`` (Mastodon 4.3+): ``mastodon`` is the API version number, ``None``
    on older servers and other software."""

    mastodon: int | None = None


@frozen(kw_only=True)
class InstanceV1Urls:
    """``urls`` of the v1 instance: ``streaming_api``, the streaming origin."""

    streaming_api: str | None = None


@frozen(kw_only=True)
class InstanceV1Stats:
    """``stats`` of the v1 instance."""

    user_count: int = 0
    status_count: int = 0
    domain_count: int = 0


@frozen(kw_only=True)
class InstanceV1:
    """``GET /api/v1/instance``, the only instance document of Akkoma and Mastodon < 4.0.

    ``uri`` is a domain on Mastodon, a host or base URL elsewhere. :meth:`Instance.from_v1`
    maps it into the v2 shape, which :meth:`~aiomasto.Session.instance_info` does for you.
    """

    uri: str
    title: str = ""
    short_description: str = ""
    description: str = ""
    email: str = ""
    version: str = ""
    urls: InstanceV1Urls = InstanceV1Urls()
    stats: InstanceV1Stats = InstanceV1Stats()
    thumbnail: str | None = None
    languages: tuple[str, ...] = ()
    registrations: bool = False
    approval_required: bool = False
    invites_enabled: bool = False
    configuration: InstanceConfiguration = InstanceConfiguration()
    contact_account: Account | None = None
    rules: tuple[Rule, ...] = ()


@frozen(kw_only=True)
class Instance:
    """The server a Session talks to (``GET /api/v2/instance``, or v1 mapped into this shape).

    ``configuration.urls.streaming`` is where the streaming API lives; ``configuration``
    also tells the limits of a status (``statuses.max_characters``), of media and of polls.
    ``api_versions.mastodon`` (4.3+) tells which API features the server has. Read from v1,
    ``usage`` and ``api_versions`` are empty and ``source_url`` is ``""``.

    Example::

        info = await masto.instance_info()
        info.configuration.statuses.max_characters   # 500
    """

    domain: str
    title: str = ""
    version: str = ""
    source_url: str = ""
    description: str = ""
    usage: InstanceUsage | None = None
    thumbnail: InstanceThumbnail | None = None
    languages: tuple[str, ...] = ()
    configuration: InstanceConfiguration = InstanceConfiguration()
    registrations: InstanceRegistrations = InstanceRegistrations()
    contact: InstanceContact = InstanceContact()
    rules: tuple[Rule, ...] = ()
    api_versions: InstanceApiVersions = InstanceApiVersions()

    @classmethod
    def from_v1(cls, v1: InstanceV1) -> Instance:
        """The v2 shape of a v1 instance document: the same facts under the v2 names.

        Example::

            Instance.from_v1(InstanceV1(uri="akkoma.example")).domain   # "akkoma.example"
        """
        domain = v1.uri.split("://", 1)[-1].rstrip("/")
        configuration = v1.configuration
        if v1.urls.streaming_api and not configuration.urls.streaming:
            urls = InstanceUrls(streaming=v1.urls.streaming_api, status=configuration.urls.status)
            configuration = evolve(configuration, urls=urls)
        return cls(
            domain=domain,
            title=v1.title,
            version=v1.version,
            description=v1.short_description or v1.description,
            thumbnail=InstanceThumbnail(url=v1.thumbnail) if v1.thumbnail else None,
            languages=v1.languages,
            configuration=configuration,
            registrations=InstanceRegistrations(
                enabled=v1.registrations, approval_required=v1.approval_required
            ),
            contact=InstanceContact(email=v1.email, account=v1.contact_account),
            rules=v1.rules,
        )
