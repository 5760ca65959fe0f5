"""What a bot calls: statuses, media, notifications, relationship actions, timelines.

Status codes and error texts are Mastodon's (docs/bots.md cites each); paging is by status or
notification id with ``max_id``/``since_id``/``min_id`` and a ``Link`` header, as
Api::BaseController#set_pagination_headers builds it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from urllib.parse import urlencode

from aiohttp import web

from ._context import Ctx, Halt
from ._http import Upload, json_response, ruby_to_i, string_list
from ._json import account_document, relationship_document
from ._posts import (
    IDEMPOTENCY_TTL,
    Notice,
    Post,
    Revision,
    media_document,
    notification_document,
    status_document,
)

__all__ = ["ROUTES"]

Handler = Callable[[Ctx], web.Response]

_VISIBILITIES = ("public", "unlisted", "private", "direct")
# Notification types Mastodon 4.5 knows (Notification::TYPES); others in types[] are ignored.
_NOTIFICATION_TYPES = (
    "mention",
    "status",
    "reblog",
    "follow",
    "follow_request",
    "favourite",
    "poll",
    "update",
    "admin.sign_up",
    "admin.report",
    "severed_relationships",
    "moderation_warning",
    "quote",
    "quoted_update",
)
_TRUE = frozenset({"1", "t", "T", "true", "TRUE", "on", "ON"})
_MAX_ACCOUNT_IDS = 40  # Api::V1::AccountsController caps id[] (docs/bots.md: UNVERIFIED)


def _error(status: int, text: str) -> Halt:
    return Halt(json_response(status, {"error": text}))


def _not_found() -> Halt:
    return _error(404, "Record not found")


def _flag(ctx: Ctx, name: str, default: bool = False) -> bool:
    value = ctx.params.get(name)
    if value is None or value == "":
        return default
    if isinstance(value, bool):
        return value
    return isinstance(value, str | int) and str(value) in _TRUE


def _status(ctx: Ctx, viewer_id: int | None) -> Post:
    post = ctx.state.posts.live(ruby_to_i(ctx.match["id"]))
    if post is None or not ctx.state.posts.visible_to(ctx.state, post, viewer_id):
        raise _not_found()
    return post


def _render_status(
    ctx: Ctx, post: Post, viewer_id: int | None, *, source: bool = False
) -> dict[str, object]:
    return status_document(
        ctx.state, ctx.state.posts, post, ctx.render, viewer_id, ctx.now, source=source
    )


def _limit(ctx: Ctx, default: int, maximum: int) -> int:
    raw = ctx.param("limit")
    value = ruby_to_i(raw) if raw else default
    return min(max(value, 1) if raw else default, maximum)


def _page(
    ctx: Ctx,
    ids_newest_first: Sequence[int],
    default: int,
    maximum: int,
    carried: list[tuple[str, str]],
) -> tuple[list[int], str | None]:
    """Paginable's to_a_paginated_by_id: ``max_id``/``since_id`` newest first, ``min_id``
    the oldest above it; the Link carries the filters (``types[]``...) along."""
    limit = _limit(ctx, default, maximum)
    max_id = ruby_to_i(ctx.param("max_id") or "") or None
    since_id = ruby_to_i(ctx.param("since_id") or "") or None
    min_id = ruby_to_i(ctx.param("min_id") or "") or None
    ids = [i for i in ids_newest_first if (max_id is None or i < max_id)]
    ids = [i for i in ids if since_id is None or i > since_id]
    ids = [i for i in ids if i > min_id][-limit:] if min_id is not None else ids[:limit]
    url = f"{ctx.base}{ctx.path}"
    # pagination_params: the filters and the asked-for limit ride along in every link.
    raw_limit = ctx.param("limit")
    if raw_limit:
        carried = [*carried, ("limit", raw_limit)]
    links = []
    if ids and len(ids) == limit:
        links.append(f'<{url}?{urlencode([*carried, ("max_id", str(ids[-1]))])}>; rel="next"')
    if ids:
        links.append(f'<{url}?{urlencode([*carried, ("min_id", str(ids[0]))])}>; rel="prev"')
    return ids, ", ".join(links) or None


def _paged(documents: list[dict[str, object]], link: str | None) -> web.Response:
    response = json_response(200, documents)
    if link is not None:
        response.headers["Link"] = link
    return response


# -- statuses ------------------------------------------------------------------------------


def create_status(ctx: Ctx) -> web.Response:
    """``POST /api/v1/statuses``: PostStatusService, with Idempotency-Key for an hour."""
    user_id = ctx.authorize_scopes("write", "write:statuses")
    posts = ctx.state.posts
    key = ctx.headers.get("Idempotency-Key")
    if key:
        known = posts.idempotency.get((user_id, key))
        if known is not None and ctx.now - known[1] < IDEMPOTENCY_TTL:
            post = posts.statuses.get(known[0])
            if post is not None:
                return json_response(200, _render_status(ctx, post, user_id))
    text = ctx.param("status") or ""
    media_ids = [ruby_to_i(m) for m in string_list(ctx.params, "media_ids") or []]
    poll = ctx.params.get("poll")
    options: list[str] | None = None
    expires_in: int | None = None
    multiple = False
    if isinstance(poll, dict):
        raw_options = poll.get("options")
        options = [str(o) for o in raw_options] if isinstance(raw_options, list) else None
        expires_in = ruby_to_i(str(poll.get("expires_in", "")))
        multiple = poll.get("multiple") in (True, "true", "1")
    elif "poll[options]" in ctx.params:
        options = string_list(ctx.params, "poll[options]")
        expires_in = ruby_to_i(ctx.param("poll[expires_in]") or "")
        multiple = _flag(ctx, "poll[multiple]")
    if media_ids and options is not None:
        raise _error(422, "Validation failed: Poll cannot be attached to a status with media")
    if not text.strip() and not media_ids and options is None:
        raise _error(422, "Validation failed: Text can't be blank")
    if len(text) > 500:
        raise _error(422, "Validation failed: Text character limit of 500 exceeded")
    visibility = ctx.param("visibility") or "public"
    if visibility not in _VISIBILITIES:
        raise _error(422, "Validation failed: Visibility is not included in the list")
    if len(media_ids) > 4:
        raise _error(422, "Validation failed: Media attachments exceed the limit of 4")
    for media_id in media_ids:
        media = posts.media.get(media_id)
        if media is None or media.account_id != user_id or media.status_id is not None:
            raise _not_found()
        if not media.ready(ctx.now):
            raise _error(
                422, "Cannot attach files that have not finished processing. Try again in a moment!"
            )
    reply_to = None
    raw_reply = ctx.param("in_reply_to_id")
    if raw_reply:
        reply_to = posts.live(ruby_to_i(raw_reply))
        if reply_to is None or not posts.visible_to(ctx.state, reply_to, user_id):
            raise _not_found()
    if ctx.param("scheduled_at"):
        return _schedule(ctx, user_id, text, visibility, media_ids)
    post = posts.create_status(
        ctx.state,
        user_id,
        text,
        ctx.now,
        local_domain=ctx.local_domain,
        visibility=visibility,
        spoiler_text=ctx.param("spoiler_text") or "",
        sensitive=_flag(ctx, "sensitive"),
        language=ctx.param("language") or "en",
        in_reply_to_id=reply_to.id if reply_to else None,
        media_ids=media_ids,
        poll_options=options,
        poll_expires_in=expires_in,
        poll_multiple=multiple,
        application=_application_name(ctx),
    )
    if key:
        posts.idempotency[(user_id, key)] = (post.id, ctx.now)
    return json_response(200, _render_status(ctx, post, user_id))


def _application_name(ctx: Ctx) -> str | None:
    token = ctx.token
    app = ctx.state.apps.get(token.client_id) if token is not None else None
    return app.name if app is not None else None


def _schedule(
    ctx: Ctx, user_id: int, text: str, visibility: str, media_ids: list[int]
) -> web.Response:
    # ScheduledStatus: the status is not created, its parameters are kept for later.
    scheduled_id = ctx.state.posts.new_status_id(ctx.now)
    return json_response(
        200,
        {
            "id": str(scheduled_id),
            "scheduled_at": ctx.param("scheduled_at"),
            "params": {
                "text": text,
                "visibility": visibility,
                "media_ids": [str(m) for m in media_ids] or None,
                "in_reply_to_id": ctx.param("in_reply_to_id"),
                "spoiler_text": ctx.param("spoiler_text"),
                "language": ctx.param("language"),
                "sensitive": _flag(ctx, "sensitive"),
            },
            "media_attachments": [],
        },
    )


def show_status(ctx: Ctx) -> web.Response:
    """``GET /api/v1/statuses/:id``: public statuses need no token."""
    ctx = ctx.authorize_read()
    viewer = ctx.user_id
    return json_response(200, _render_status(ctx, _status(ctx, viewer), viewer))


def update_status(ctx: Ctx) -> web.Response:
    """``PUT /api/v1/statuses/:id``: UpdateStatusService keeps the previous revision."""
    user_id = ctx.authorize_scopes("write", "write:statuses")
    post = _status(ctx, user_id)
    if post.account_id != user_id or post.reblog_of is not None:
        raise _error(403, "This action is not allowed")
    text = ctx.param("status")
    if text is not None and not text.strip() and not post.media_ids:
        raise _error(422, "Validation failed: Text can't be blank")
    if not post.history:
        post.history.append(
            Revision(
                text=post.text,
                spoiler_text=post.spoiler_text,
                sensitive=post.sensitive,
                media_ids=list(post.media_ids),
                at=post.at,
            )
        )
    if text is not None:
        post.text = text
    spoiler = ctx.param("spoiler_text")
    if spoiler is not None:
        post.spoiler_text = spoiler
    if "sensitive" in ctx.params:
        post.sensitive = _flag(ctx, "sensitive")
    media = string_list(ctx.params, "media_ids")
    if media is not None:
        post.media_ids = [ruby_to_i(m) for m in media]
    post.edited_at = ctx.now
    post.history.append(
        Revision(
            text=post.text,
            spoiler_text=post.spoiler_text,
            sensitive=post.sensitive,
            media_ids=list(post.media_ids),
            at=ctx.now,
        )
    )
    posts = ctx.state.posts
    for reblog in [p for p in posts.statuses.values() if p.reblog_of == post.id and not p.deleted]:
        posts.notify(ctx.state, reblog.account_id, "update", user_id, post.id, ctx.now)
    return json_response(200, _render_status(ctx, post, user_id))


def status_history(ctx: Ctx) -> web.Response:
    """``GET /api/v1/statuses/:id/history``: every revision, oldest first."""
    ctx = ctx.authorize_read()
    post = _status(ctx, ctx.user_id)
    author = account_document(ctx.state, ctx.state.accounts[post.account_id], ctx.render)
    revisions = post.history or [
        Revision(
            text=post.text,
            spoiler_text=post.spoiler_text,
            sensitive=post.sensitive,
            media_ids=post.media_ids,
            at=post.at,
        )
    ]
    posts = ctx.state.posts
    documents = []
    for revision in revisions:
        shown = Post(id=post.id, account_id=post.account_id, text=revision.text, at=revision.at)
        documents.append(
            {
                "content": status_document(ctx.state, posts, shown, ctx.render, None, ctx.now)[
                    "content"
                ],
                "spoiler_text": revision.spoiler_text,
                "sensitive": revision.sensitive,
                "created_at": status_document(ctx.state, posts, shown, ctx.render, None, ctx.now)[
                    "created_at"
                ],
                "account": author,
                "media_attachments": [
                    media_document(posts.media[m], ctx.base, ctx.now)
                    for m in revision.media_ids
                    if m in posts.media
                ],
                "emojis": [],
            }
        )
    return json_response(200, documents)


def status_source(ctx: Ctx) -> web.Response:
    """``GET /api/v1/statuses/:id/source``: the author's plain text."""
    user_id = ctx.authorize_scopes("read", "read:statuses")
    post = _status(ctx, user_id)
    if post.account_id != user_id:
        raise _error(403, "This action is not allowed")
    return json_response(
        200, {"id": str(post.id), "text": post.text, "spoiler_text": post.spoiler_text}
    )


def delete_status(ctx: Ctx) -> web.Response:
    """``DELETE /api/v1/statuses/:id``: one's own only (404 otherwise); the answer carries
    ``text`` so the status can be redrafted."""
    user_id = ctx.authorize_scopes("write", "write:statuses")
    post = ctx.state.posts.live(ruby_to_i(ctx.match["id"]))
    if post is None or post.account_id != user_id:
        raise _not_found()
    document = _render_status(ctx, post, user_id, source=True)
    post.deleted = True
    return json_response(200, document)


def context(ctx: Ctx) -> web.Response:
    """``GET /api/v1/statuses/:id/context``: ancestors oldest first, then descendants."""
    ctx = ctx.authorize_read()
    viewer = ctx.user_id
    post = _status(ctx, viewer)
    posts = ctx.state.posts
    ancestors = []
    current = post
    while current.in_reply_to_id is not None:
        parent = posts.live(current.in_reply_to_id)
        if parent is None or not posts.visible_to(ctx.state, parent, viewer):
            break
        ancestors.append(parent)
        current = parent
    descendants = []
    frontier = [post.id]
    while frontier:
        parent_id = frontier.pop(0)
        children = sorted(
            (p for p in posts.statuses.values() if p.in_reply_to_id == parent_id and not p.deleted),
            key=lambda p: p.id,
        )
        for child in children:
            if posts.visible_to(ctx.state, child, viewer):
                descendants.append(child)
                frontier.append(child.id)
    return json_response(
        200,
        {
            "ancestors": [_render_status(ctx, p, viewer) for p in reversed(ancestors)],
            "descendants": [_render_status(ctx, p, viewer) for p in descendants],
        },
    )


def _act(scopes: tuple[str, ...], act: Callable[[Ctx, int, Post], Post | None]) -> Handler:
    def handler(ctx: Ctx) -> web.Response:
        user_id = ctx.authorize_scopes(*scopes)
        post = _status(ctx, user_id)
        shown = act(ctx, user_id, post) or post
        return json_response(200, _render_status(ctx, shown, user_id))

    return handler


def _favourite(ctx: Ctx, user_id: int, post: Post) -> None:
    if user_id not in post.favourited_by:
        post.favourited_by.add(user_id)
        ctx.state.posts.notify(ctx.state, post.account_id, "favourite", user_id, post.id, ctx.now)


def _unfavourite(ctx: Ctx, user_id: int, post: Post) -> None:
    post.favourited_by.discard(user_id)


def _reblog(ctx: Ctx, user_id: int, post: Post) -> Post:
    if post.visibility in ("private", "direct"):
        raise _error(403, "This action is not allowed")
    target = post
    if post.reblog_of is not None:
        target = ctx.state.posts.live(post.reblog_of) or post
    # The answer is the reblog itself, wrapping the original.
    return ctx.state.posts.reblog(ctx.state, user_id, target, ctx.now)


def _unreblog(ctx: Ctx, user_id: int, post: Post) -> None:
    reblog = ctx.state.posts.reblog_by(user_id, post.id)
    if reblog is not None:
        reblog.deleted = True


def _bookmark(ctx: Ctx, user_id: int, post: Post) -> None:
    post.bookmarked_by.add(user_id)


def _unbookmark(ctx: Ctx, user_id: int, post: Post) -> None:
    post.bookmarked_by.discard(user_id)


# -- media ---------------------------------------------------------------------------------


def _upload(ctx: Ctx, *, v2: bool) -> web.Response:
    user_id = ctx.authorize_scopes("write", "write:media")
    upload = ctx.params.get("file")
    if not isinstance(upload, Upload):
        raise _error(422, "Validation failed: File can't be blank")
    mime = upload.content_type
    kind = mime.split("/", 1)[0]
    if kind not in ("image", "video", "audio"):
        raise _error(422, "Validation failed: File content type is invalid, File is invalid")
    posts = ctx.state.posts
    media = posts.add_media(
        user_id,
        kind="image" if kind == "image" else ("audio" if kind == "audio" else "video"),
        filename=upload.filename,
        size=len(upload.data),
        description=ctx.param("description"),
        focus=ctx.param("focus"),
        now=ctx.now,
        synchronous=not v2,
    )
    # MediaController#create (v2): 202 while processing, with a null url.
    status = 200 if media.ready(ctx.now) else 202
    return json_response(status, media_document(media, ctx.base, ctx.now))


def upload_v1(ctx: Ctx) -> web.Response:
    """``POST /api/v1/media`` (deprecated): processed before the answer."""
    return _upload(ctx, v2=False)


def upload_v2(ctx: Ctx) -> web.Response:
    """``POST /api/v2/media``: 202 with ``url: null`` while the file is processed."""
    return _upload(ctx, v2=True)


def show_media(ctx: Ctx) -> web.Response:
    """``GET /api/v1/media/:id``: 206 while processing, then 200."""
    user_id = ctx.authorize_scopes("write", "write:media")
    media = ctx.state.posts.media.get(ruby_to_i(ctx.match["id"]))
    if media is None or media.account_id != user_id:
        raise _not_found()
    ready = media.ready(ctx.now)
    if media.gets_left > 0:
        media.gets_left -= 1
    return json_response(200 if ready else 206, media_document(media, ctx.base, ctx.now))


def update_media(ctx: Ctx) -> web.Response:
    """``PUT /api/v1/media/:id``: description and focus, before the media is attached."""
    user_id = ctx.authorize_scopes("write", "write:media")
    media = ctx.state.posts.media.get(ruby_to_i(ctx.match["id"]))
    if media is None or media.account_id != user_id or media.status_id is not None:
        raise _not_found()
    if "description" in ctx.params:
        media.description = ctx.param("description")
    if "focus" in ctx.params:
        media.focus = ctx.param("focus")
    status = 200 if media.ready(ctx.now) else 206
    return json_response(status, media_document(media, ctx.base, ctx.now))


# -- notifications -------------------------------------------------------------------------


def notifications(ctx: Ctx) -> web.Response:
    """``GET /api/v1/notifications``: ``types[]``/``exclude_types[]``, 40 a page (80 max)."""
    user_id = ctx.authorize_scopes("read", "read:notifications")
    types = string_list(ctx.params, "types")
    excluded = set(string_list(ctx.params, "exclude_types") or [])
    wanted = set(types) if types else set(_NOTIFICATION_TYPES)
    posts = ctx.state.posts
    ids = sorted(
        (
            n.id
            for n in posts.notices.values()
            if n.account_id == user_id
            and n.type in wanted
            and n.type not in excluded
            and (n.status_id is None or posts.live(n.status_id) is not None)
        ),
        reverse=True,
    )
    carried = [("types[]", t) for t in types or []]
    carried += [("exclude_types[]", t) for t in string_list(ctx.params, "exclude_types") or []]
    page, link = _page(ctx, ids, 40, 80, carried)
    documents = [
        notification_document(ctx.state, posts, posts.notices[i], ctx.render, ctx.now) for i in page
    ]
    return _paged(documents, link)


def _notice(ctx: Ctx, user_id: int) -> Notice:
    notice = ctx.state.posts.notices.get(ruby_to_i(ctx.match["id"]))
    if notice is None or notice.account_id != user_id:
        raise _not_found()
    return notice


def notification(ctx: Ctx) -> web.Response:
    """``GET /api/v1/notifications/:id``."""
    user_id = ctx.authorize_scopes("read", "read:notifications")
    notice = _notice(ctx, user_id)
    posts = ctx.state.posts
    return json_response(200, notification_document(ctx.state, posts, notice, ctx.render, ctx.now))


def dismiss_notification(ctx: Ctx) -> web.Response:
    """``POST /api/v1/notifications/:id/dismiss``: ``200 {}``."""
    user_id = ctx.authorize_scopes("write", "write:notifications")
    notice = _notice(ctx, user_id)
    del ctx.state.posts.notices[notice.id]
    return json_response(200, {})


def clear_notifications(ctx: Ctx) -> web.Response:
    """``POST /api/v1/notifications/clear``: ``200 {}``."""
    user_id = ctx.authorize_scopes("write", "write:notifications")
    notices = ctx.state.posts.notices
    for notice_id in [i for i, n in notices.items() if n.account_id == user_id]:
        del notices[notice_id]
    return json_response(200, {})


# -- relationships -------------------------------------------------------------------------


def _target(ctx: Ctx, user_id: int) -> int:
    account = ctx.state.accounts.get(ruby_to_i(ctx.match["id"]))
    if account is None or account.deleted:
        raise _not_found()
    return account.id


def _relationship(ctx: Ctx, user_id: int, target_id: int) -> web.Response:
    return json_response(200, relationship_document(ctx.state, user_id, target_id, ctx.version))


def follow(ctx: Ctx) -> web.Response:
    """``POST /api/v1/accounts/:id/follow``: ``reblogs``, ``notify``, ``languages[]``; again
    to change them."""
    user_id = ctx.authorize_scopes("write", "write:follows", "follow")
    target_id = _target(ctx, user_id)
    state = ctx.state
    if target_id == user_id:
        raise _error(403, "This action is not allowed")
    if state.blocks(target_id, user_id) or state.blocks(user_id, target_id):
        raise _error(403, "This action is not allowed")
    options = state.posts.follow_options.get((user_id, target_id), (True, False, None))
    reblogs = _flag(ctx, "reblogs", options[0]) if "reblogs" in ctx.params else options[0]
    notify = _flag(ctx, "notify", options[1]) if "notify" in ctx.params else options[1]
    languages = string_list(ctx.params, "languages")
    state.posts.follow_options[(user_id, target_id)] = (
        reblogs,
        notify,
        languages if languages is not None else options[2],
    )
    if state.follow_id(user_id, target_id) is None:
        state.follow(user_id, target_id)
        state.posts.notify(state, target_id, "follow", user_id, None, ctx.now)
    return _relationship(ctx, user_id, target_id)


def unfollow(ctx: Ctx) -> web.Response:
    """``POST /api/v1/accounts/:id/unfollow``."""
    user_id = ctx.authorize_scopes("write", "write:follows", "follow")
    target_id = _target(ctx, user_id)
    ctx.state.unfollow(user_id, target_id)
    ctx.state.posts.follow_options.pop((user_id, target_id), None)
    return _relationship(ctx, user_id, target_id)


def remove_from_followers(ctx: Ctx) -> web.Response:
    """``POST /api/v1/accounts/:id/remove_from_followers``."""
    user_id = ctx.authorize_scopes("write", "write:follows", "follow")
    target_id = _target(ctx, user_id)
    ctx.state.unfollow(target_id, user_id)
    return _relationship(ctx, user_id, target_id)


def block(ctx: Ctx) -> web.Response:
    """``POST /api/v1/accounts/:id/block``: follows both ways end."""
    user_id = ctx.authorize_scopes("write", "write:blocks", "follow")
    target_id = _target(ctx, user_id)
    ctx.state.block(user_id, target_id)
    return _relationship(ctx, user_id, target_id)


def unblock(ctx: Ctx) -> web.Response:
    """``POST /api/v1/accounts/:id/unblock``."""
    user_id = ctx.authorize_scopes("write", "write:blocks", "follow")
    target_id = _target(ctx, user_id)
    ctx.state.blocking.get(user_id, set()).discard(target_id)
    ctx.state.blocked_by.get(target_id, set()).discard(user_id)
    return _relationship(ctx, user_id, target_id)


def mute(ctx: Ctx) -> web.Response:
    """``POST /api/v1/accounts/:id/mute``: ``notifications`` (default true), ``duration``
    in seconds (0: for ever)."""
    user_id = ctx.authorize_scopes("write", "write:mutes", "follow")
    target_id = _target(ctx, user_id)
    duration = ruby_to_i(ctx.param("duration") or "0")
    ctx.state.mute(user_id, target_id)
    ctx.state.posts.mute_options[(user_id, target_id)] = (
        _flag(ctx, "notifications", True),
        ctx.now + duration if duration > 0 else None,
    )
    return _relationship(ctx, user_id, target_id)


def unmute(ctx: Ctx) -> web.Response:
    """``POST /api/v1/accounts/:id/unmute``."""
    user_id = ctx.authorize_scopes("write", "write:mutes", "follow")
    target_id = _target(ctx, user_id)
    ctx.state.muting.get(user_id, set()).discard(target_id)
    ctx.state.posts.mute_options.pop((user_id, target_id), None)
    return _relationship(ctx, user_id, target_id)


def endorse(ctx: Ctx) -> web.Response:
    """``POST /api/v1/accounts/:id/pin`` (4.4+: also ``/endorse``): only followed accounts."""
    user_id = ctx.authorize_scopes("write", "write:accounts")
    target_id = _target(ctx, user_id)
    if ctx.state.follow_id(user_id, target_id) is None:
        raise _error(
            422, "Validation failed: You must be already following the person you want to endorse"
        )
    ctx.state.posts.endorsed.setdefault(user_id, set()).add(target_id)
    return _relationship(ctx, user_id, target_id)


def unendorse(ctx: Ctx) -> web.Response:
    """``POST /api/v1/accounts/:id/unpin`` (4.4+: also ``/unendorse``)."""
    user_id = ctx.authorize_scopes("write", "write:accounts")
    target_id = _target(ctx, user_id)
    ctx.state.posts.endorsed.get(user_id, set()).discard(target_id)
    return _relationship(ctx, user_id, target_id)


def accounts_index(ctx: Ctx) -> web.Response:
    """``GET /api/v1/accounts?id[]=`` (Mastodon 4.3+): the known ones, in the order asked."""
    if ctx.flavor.name != "mastodon":
        raise Halt(json_response(404, {"error": "Not Found"}))
    ctx = ctx.authorize_read()
    raw = string_list(ctx.params, "id") or []
    if len(raw) > _MAX_ACCOUNT_IDS:
        raise _error(400, f"Too many ids (at most {_MAX_ACCOUNT_IDS})")
    documents = []
    for account_id in dict.fromkeys(ruby_to_i(r) for r in raw):
        account = ctx.state.accounts.get(account_id)
        if account is not None and not account.deleted:
            documents.append(account_document(ctx.state, account, ctx.render))
    return json_response(200, documents)


# -- timelines -----------------------------------------------------------------------------


def home_timeline(ctx: Ctx) -> web.Response:
    """``GET /api/v1/timelines/home``: own and followed accounts' statuses, 20 a page (40)."""
    user_id = ctx.authorize_scopes("read", "read:statuses")
    state = ctx.state
    posts = state.posts
    followed = set(state.following_of(user_id).account_ids) | {user_id}
    excluded = state.excluded_for(user_id)
    ids = sorted(
        (
            p.id
            for p in posts.statuses.values()
            if not p.deleted
            and p.account_id in followed
            and p.account_id not in excluded
            and (
                p.reblog_of is None or posts.follow_options.get((user_id, p.account_id), (True,))[0]
            )
            and posts.visible_to(state, p, user_id)
        ),
        reverse=True,
    )
    page, link = _page(ctx, ids, 20, 40, [])
    return _paged([_render_status(ctx, posts.statuses[i], user_id) for i in page], link)


def public_timeline(ctx: Ctx) -> web.Response:
    """``GET /api/v1/timelines/public``: public statuses (``local=true``: local only)."""
    ctx = ctx.authorize_read()
    viewer = ctx.user_id
    state = ctx.state
    posts = state.posts
    local = _flag(ctx, "local")
    excluded = state.excluded_for(viewer) if viewer is not None else set()
    ids = sorted(
        (
            p.id
            for p in posts.statuses.values()
            if not p.deleted
            and p.visibility == "public"
            and p.reblog_of is None
            and p.account_id not in excluded
            and (not local or state.accounts[p.account_id].local)
        ),
        reverse=True,
    )
    carried = [("local", "true")] if local else []
    page, link = _page(ctx, ids, 20, 40, carried)
    return _paged([_render_status(ctx, posts.statuses[i], viewer) for i in page], link)


def _marked(scopes: tuple[str, ...], attribute: str) -> Handler:
    def handler(ctx: Ctx) -> web.Response:
        user_id = ctx.authorize_scopes(*scopes)
        posts = ctx.state.posts
        ids = sorted(
            (
                p.id
                for p in posts.statuses.values()
                if not p.deleted and user_id in getattr(p, attribute)
            ),
            reverse=True,
        )
        page, link = _page(ctx, ids, 20, 40, [])
        return _paged([_render_status(ctx, posts.statuses[i], user_id) for i in page], link)

    return handler


ROUTES: tuple[tuple[str, str, Handler], ...] = (
    ("POST", "/api/v1/statuses", create_status),
    ("GET", "/api/v1/statuses/:id", show_status),
    ("PUT", "/api/v1/statuses/:id", update_status),
    ("DELETE", "/api/v1/statuses/:id", delete_status),
    ("GET", "/api/v1/statuses/:id/context", context),
    ("GET", "/api/v1/statuses/:id/history", status_history),
    ("GET", "/api/v1/statuses/:id/source", status_source),
    ("POST", "/api/v1/statuses/:id/favourite", _act(("write", "write:favourites"), _favourite)),
    ("POST", "/api/v1/statuses/:id/unfavourite", _act(("write", "write:favourites"), _unfavourite)),
    ("POST", "/api/v1/statuses/:id/reblog", _act(("write", "write:statuses"), _reblog)),
    ("POST", "/api/v1/statuses/:id/unreblog", _act(("write", "write:statuses"), _unreblog)),
    ("POST", "/api/v1/statuses/:id/bookmark", _act(("write", "write:bookmarks"), _bookmark)),
    ("POST", "/api/v1/statuses/:id/unbookmark", _act(("write", "write:bookmarks"), _unbookmark)),
    ("POST", "/api/v1/media", upload_v1),
    ("POST", "/api/v2/media", upload_v2),
    ("GET", "/api/v1/media/:id", show_media),
    ("PUT", "/api/v1/media/:id", update_media),
    ("GET", "/api/v1/notifications", notifications),
    ("POST", "/api/v1/notifications/clear", clear_notifications),
    ("GET", "/api/v1/notifications/:id", notification),
    ("POST", "/api/v1/notifications/:id/dismiss", dismiss_notification),
    ("GET", "/api/v1/accounts", accounts_index),
    ("POST", "/api/v1/accounts/:id/follow", follow),
    ("POST", "/api/v1/accounts/:id/unfollow", unfollow),
    ("POST", "/api/v1/accounts/:id/remove_from_followers", remove_from_followers),
    ("POST", "/api/v1/accounts/:id/block", block),
    ("POST", "/api/v1/accounts/:id/unblock", unblock),
    ("POST", "/api/v1/accounts/:id/mute", mute),
    ("POST", "/api/v1/accounts/:id/unmute", unmute),
    ("POST", "/api/v1/accounts/:id/pin", endorse),
    ("POST", "/api/v1/accounts/:id/unpin", unendorse),
    ("POST", "/api/v1/accounts/:id/endorse", endorse),
    ("POST", "/api/v1/accounts/:id/unendorse", unendorse),
    ("GET", "/api/v1/timelines/home", home_timeline),
    ("GET", "/api/v1/timelines/public", public_timeline),
    ("GET", "/api/v1/bookmarks", _marked(("read", "read:bookmarks"), "bookmarked_by")),
    ("GET", "/api/v1/favourites", _marked(("read", "read:favourites"), "favourited_by")),
)
