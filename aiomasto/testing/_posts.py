"""The fake server's statuses, media, notifications and relationship options, and their JSON.

Everything here is touched only under ``State.lock``; records are mutable for that reason.
Shapes follow Mastodon's serializers (REST::StatusSerializer, MediaAttachmentSerializer,
NotificationSerializer); docs/bots.md lists what is modelled and where it comes from.
"""

from __future__ import annotations

import html
import re
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import attrs

from ._json import Render, account_document, profile_url

if TYPE_CHECKING:
    from ._state import State

__all__ = [
    "IDEMPOTENCY_TTL",
    "Media",
    "Notice",
    "Posts",
    "Post",
    "Revision",
    "iso",
    "media_document",
    "notification_document",
    "status_document",
]

# PostStatusService keeps an Idempotency-Key for an hour (Redis key with 3600 s expiry).
IDEMPOTENCY_TTL = 3600.0
FIRST_NOTIFICATION_ID = 40_000
FIRST_MEDIA_ID = 22_000_000
_MENTION = re.compile(r"(?<![\w/@])@([A-Za-z0-9_]+)(?:@([A-Za-z0-9.-]+[A-Za-z0-9]))?")
_HASHTAG = re.compile(r"(?<![\w/#])#(\w+)")


def iso(timestamp: float) -> str:
    """A time as Mastodon's serializers write it: milliseconds and ``Z``."""
    moment = datetime.fromtimestamp(timestamp, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


@attrs.define(kw_only=True)
class Revision:
    text: str
    spoiler_text: str
    sensitive: bool
    media_ids: list[int]
    at: float


@attrs.define(kw_only=True)
class Post:
    id: int
    account_id: int
    text: str
    at: float
    visibility: str = "public"
    spoiler_text: str = ""
    sensitive: bool = False
    language: str | None = "en"
    in_reply_to_id: int | None = None
    reblog_of: int | None = None
    media_ids: list[int] = attrs.Factory(list)
    poll_options: list[str] | None = None
    poll_expires_at: float | None = None
    poll_multiple: bool = False
    mentions: list[int] = attrs.Factory(list)
    tags: list[str] = attrs.Factory(list)
    application: str | None = None
    edited_at: float | None = None
    history: list[Revision] = attrs.Factory(list)
    favourited_by: set[int] = attrs.Factory(set)
    bookmarked_by: set[int] = attrs.Factory(set)
    deleted: bool = False


@attrs.define(kw_only=True)
class Media:
    id: int
    account_id: int
    kind: str
    filename: str
    size: int
    description: str | None
    focus: str | None
    # Processing ends after this many GETs of /api/v1/media/:id, or at ``ready_at``.
    gets_left: int
    ready_at: float
    status_id: int | None = None

    def ready(self, now: float) -> bool:
        return self.gets_left <= 0 and now >= self.ready_at


@attrs.define(kw_only=True)
class Notice:
    id: int
    account_id: int
    type: str
    from_account_id: int
    status_id: int | None
    at: float


class Posts:
    """Statuses, media and notifications, with the per-account indexes the endpoints read."""

    def __init__(self) -> None:
        self.statuses: dict[int, Post] = {}
        self.media: dict[int, Media] = {}
        self.notices: dict[int, Notice] = {}
        # (account id, Idempotency-Key) -> (status id, stored at)
        self.idempotency: dict[tuple[int, str], tuple[int, float]] = {}
        self._last_status_id = 0
        self._next_notice = FIRST_NOTIFICATION_ID
        self._next_media = FIRST_MEDIA_ID
        # (follower, target) -> (reblogs, notify, languages)
        self.follow_options: dict[tuple[int, int], tuple[bool, bool, list[str] | None]] = {}
        # (muter, muted) -> (notifications, expires at)
        self.mute_options: dict[tuple[int, int], tuple[bool, float | None]] = {}
        self.endorsed: dict[int, set[int]] = {}
        # Processing time of uploads: GETs before the media is ready, and seconds.
        self.processing_gets = 0
        self.processing_seconds = 0.0
        # Told of every notification made, to stream it (the server's NotifyService push).
        self.on_notice: Callable[[Notice], None] | None = None
        # Told of every status posted, to stream it (FanOutOnWriteService's push).
        self.on_status: Callable[[Post], None] | None = None

    def next_notice_id(self) -> int:
        notice_id = self._next_notice
        self._next_notice += 1
        return notice_id

    def new_status_id(self, now: float) -> int:
        # Mastodon's ids are snowflakes: milliseconds shifted left 16 bits, then a sequence.
        candidate = int(now * 1000) << 16
        self._last_status_id = max(candidate, self._last_status_id + 1)
        return self._last_status_id

    def add_media(
        self,
        account_id: int,
        *,
        kind: str,
        filename: str,
        size: int,
        description: str | None,
        focus: str | None,
        now: float,
        synchronous: bool,
    ) -> Media:
        media = Media(
            id=self._next_media,
            account_id=account_id,
            kind=kind,
            filename=filename,
            size=size,
            description=description,
            focus=focus,
            gets_left=0 if synchronous else self.processing_gets,
            ready_at=now if synchronous else now + self.processing_seconds,
        )
        self._next_media += 1
        self.media[media.id] = media
        return media

    def notify(
        self,
        state: State,
        account_id: int,
        kind: str,
        from_account_id: int,
        status_id: int | None,
        now: float,
    ) -> int | None:
        """NotifyService, as far as modelled: no notifications of one's own acts, none from
        an account the recipient blocks or mutes with notifications; remote accounts get
        none here (their home server would)."""
        recipient = state.accounts.get(account_id)
        if recipient is None or not recipient.local or account_id == from_account_id:
            return None
        if state.blocks(account_id, from_account_id):
            return None
        muted = self.mute_options.get((account_id, from_account_id))
        if state.mutes(account_id, from_account_id) and (muted is None or muted[0]):
            return None
        notice = Notice(
            id=self.next_notice_id(),
            account_id=account_id,
            type=kind,
            from_account_id=from_account_id,
            status_id=status_id,
            at=now,
        )
        self.notices[notice.id] = notice
        if self.on_notice is not None:
            self.on_notice(notice)
        return notice.id

    def create_status(
        self,
        state: State,
        account_id: int,
        text: str,
        now: float,
        *,
        local_domain: str,
        visibility: str = "public",
        spoiler_text: str = "",
        sensitive: bool = False,
        language: str | None = "en",
        in_reply_to_id: int | None = None,
        media_ids: list[int] | None = None,
        poll_options: list[str] | None = None,
        poll_expires_in: int | None = None,
        poll_multiple: bool = False,
        application: str | None = None,
    ) -> Post:
        """PostStatusService: store the status, attach media, notify the mentioned, the
        replied-to author and those who asked to hear of this account's posts."""
        mentions = []
        for username, domain in _MENTION.findall(text):
            host = None if not domain or domain.lower() == local_domain.lower() else domain
            found = state.find_account(username, host)
            if found is not None and not found.deleted and found.id not in mentions:
                mentions.append(found.id)
        post = Post(
            id=self.new_status_id(now),
            account_id=account_id,
            text=text,
            at=now,
            visibility=visibility,
            spoiler_text=spoiler_text,
            sensitive=sensitive or bool(spoiler_text),
            language=language,
            in_reply_to_id=in_reply_to_id,
            media_ids=list(media_ids or ()),
            poll_options=poll_options,
            poll_expires_at=None if poll_expires_in is None else now + poll_expires_in,
            poll_multiple=poll_multiple,
            mentions=mentions,
            tags=list(dict.fromkeys(t.lower() for t in _HASHTAG.findall(text))),
            application=application,
        )
        self.statuses[post.id] = post
        for media_id in post.media_ids:
            self.media[media_id].status_id = post.id
        for mentioned in mentions:
            self.notify(state, mentioned, "mention", account_id, post.id, now)
        if visibility != "direct":
            for follower in list(state.followers_of(account_id).account_ids):
                options = self.follow_options.get((follower, account_id))
                if options is not None and options[1] and follower not in mentions:
                    self.notify(state, follower, "status", account_id, post.id, now)
        if self.on_status is not None:
            self.on_status(post)
        return post

    def reblog(self, state: State, account_id: int, original: Post, now: float) -> Post:
        existing = self.reblog_by(account_id, original.id)
        if existing is not None:
            return existing
        post = Post(
            id=self.new_status_id(now),
            account_id=account_id,
            text="",
            at=now,
            visibility=original.visibility,
            reblog_of=original.id,
            language=None,
        )
        self.statuses[post.id] = post
        self.notify(state, original.account_id, "reblog", account_id, original.id, now)
        return post

    def reblog_by(self, account_id: int, status_id: int) -> Post | None:
        for post in self.statuses.values():
            if post.reblog_of == status_id and post.account_id == account_id and not post.deleted:
                return post
        return None

    def live(self, status_id: int) -> Post | None:
        post = self.statuses.get(status_id)
        return None if post is None or post.deleted else post

    def reblogs_count(self, status_id: int) -> int:
        return sum(1 for p in self.statuses.values() if p.reblog_of == status_id and not p.deleted)

    def replies_count(self, status_id: int) -> int:
        return sum(
            1 for p in self.statuses.values() if p.in_reply_to_id == status_id and not p.deleted
        )

    def visible_to(self, state: State, post: Post, viewer_id: int | None) -> bool:
        """StatusPolicy#show?, simplified: direct to the mentioned, private to followers."""
        if viewer_id == post.account_id:
            return True
        if viewer_id is not None and state.blocks(post.account_id, viewer_id):
            return False
        if post.visibility == "direct":
            return viewer_id is not None and viewer_id in post.mentions
        if post.visibility == "private":
            return viewer_id is not None and (
                viewer_id in post.mentions
                or state.follow_id(viewer_id, post.account_id) is not None
            )
        return True


def _content(text: str, state: State, post: Post, base: str) -> str:
    if not text:
        return ""

    def mention(match: re.Match[str]) -> str:
        username = match.group(1)
        for account_id in post.mentions:
            account = state.accounts[account_id]
            if account.username.lower() == username.lower():
                url = html.escape(profile_url(account, base))
                return (
                    f'<span class="h-card"><a href="{url}" class="u-url mention">'
                    f"@<span>{html.escape(account.username)}</span></a></span>"
                )
        return html.escape(match.group(0))

    paragraphs = []
    for paragraph in text.split("\n\n"):
        pieces, last = [], 0
        for match in _MENTION.finditer(paragraph):
            pieces.append(html.escape(paragraph[last : match.start()], quote=False))
            pieces.append(mention(match))
            last = match.end()
        pieces.append(html.escape(paragraph[last:], quote=False))
        paragraphs.append("".join(pieces).replace("\n", "<br />"))
    return "".join(f"<p>{p}</p>" for p in paragraphs)


def media_document(media: Media, base: str, now: float) -> dict[str, object]:
    """REST::MediaAttachmentSerializer; ``url`` is null while processing."""
    ready = media.ready(now)
    stem = f"{base}/system/media_attachments/files/{media.id}"
    meta: dict[str, object] = {}
    if media.focus:
        x, _, y = media.focus.partition(",")
        try:
            meta["focus"] = {"x": float(x), "y": float(y)}
        except ValueError:
            meta["focus"] = None
    return {
        "id": str(media.id),
        "type": media.kind,
        "url": f"{stem}/original/{media.filename}" if ready else None,
        "preview_url": f"{stem}/small/{media.filename}",
        "remote_url": None,
        "preview_remote_url": None,
        "text_url": None,
        "meta": meta,
        "description": media.description,
        "blurhash": "UFBWY:8_0Jxv4mx]t8t64.%M-:IUWGWAt6M}" if ready else None,
    }


def status_document(
    state: State,
    posts: Posts,
    post: Post,
    render: Render,
    viewer_id: int | None,
    now: float,
    *,
    source: bool = False,
) -> dict[str, object]:
    """REST::StatusSerializer, as ``viewer_id`` sees it (``source``: with ``text``, as the
    answer to a delete is)."""
    base = render.base
    author = state.accounts[post.account_id]
    reblog = None
    if post.reblog_of is not None:
        original = posts.statuses.get(post.reblog_of)
        if original is not None:
            reblog = status_document(state, posts, original, render, viewer_id, now)
    replied = posts.statuses.get(post.in_reply_to_id) if post.in_reply_to_id else None
    url = f"{profile_url(author, base)}/{post.id}"
    doc: dict[str, object] = {
        "id": str(post.id),
        "created_at": iso(post.at),
        "in_reply_to_id": str(post.in_reply_to_id) if post.in_reply_to_id else None,
        "in_reply_to_account_id": str(replied.account_id) if replied else None,
        "sensitive": post.sensitive,
        "spoiler_text": post.spoiler_text,
        "visibility": post.visibility,
        "language": post.language,
        "uri": f"{base}/users/{author.username}/statuses/{post.id}",
        "url": url,
        "replies_count": posts.replies_count(post.id),
        "reblogs_count": posts.reblogs_count(post.id),
        "favourites_count": len(post.favourited_by),
        "quotes_count": 0,
        "edited_at": iso(post.edited_at) if post.edited_at else None,
    }
    if viewer_id is not None:
        doc["favourited"] = viewer_id in post.favourited_by
        doc["reblogged"] = posts.reblog_by(viewer_id, post.id) is not None
        doc["muted"] = False
        doc["bookmarked"] = viewer_id in post.bookmarked_by
        if viewer_id == post.account_id and post.reblog_of is None:
            doc["pinned"] = False
    doc["content"] = _content(post.text, state, post, base)
    if source:
        doc["text"] = post.text
    doc["filtered"] = []
    doc["reblog"] = reblog
    if post.application is not None and viewer_id == post.account_id:
        doc["application"] = {"name": post.application, "website": None}
    doc["account"] = account_document(state, author, render)
    doc["media_attachments"] = [
        media_document(posts.media[m], base, now) for m in post.media_ids if m in posts.media
    ]
    doc["mentions"] = [
        {
            "id": str(account_id),
            "username": state.accounts[account_id].username,
            "url": profile_url(state.accounts[account_id], base),
            "acct": _acct(state, account_id),
        }
        for account_id in post.mentions
    ]
    doc["tags"] = [{"name": tag, "url": f"{base}/tags/{tag}"} for tag in post.tags]
    doc["emojis"] = []
    doc["card"] = None
    doc["poll"] = _poll(post, now)
    return doc


def _acct(state: State, account_id: int) -> str:
    account = state.accounts[account_id]
    return f"{account.username}@{account.domain}" if account.domain else account.username


def _poll(post: Post, now: float) -> dict[str, object] | None:
    if post.poll_options is None:
        return None
    expires = post.poll_expires_at
    return {
        "id": str(post.id),
        "expires_at": iso(expires) if expires is not None else None,
        "expired": expires is not None and now >= expires,
        "multiple": post.poll_multiple,
        "votes_count": 0,
        "voters_count": 0 if post.poll_multiple else None,
        "options": [{"title": title, "votes_count": 0} for title in post.poll_options],
        "emojis": [],
        "voted": False,
        "own_votes": [],
    }


def notification_document(
    state: State, posts: Posts, notice: Notice, render: Render, now: float
) -> dict[str, object]:
    """REST::NotificationSerializer: ``status`` for the types that carry one."""
    doc: dict[str, object] = {
        "id": str(notice.id),
        "type": notice.type,
        "created_at": iso(notice.at),
        "group_key": f"ungrouped-{notice.id}",
        "account": account_document(state, state.accounts[notice.from_account_id], render),
    }
    post = posts.statuses.get(notice.status_id) if notice.status_id is not None else None
    if post is not None:
        doc["status"] = status_document(state, posts, post, render, notice.account_id, now)
    return doc
