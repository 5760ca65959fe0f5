"""Serializers producing Mastodon's JSON shapes (REST::AccountSerializer and friends)."""

from __future__ import annotations

import html
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Literal

import attrs

from ._http import dump_json
from ._state import Account, App, Emoji, Field, Role, State

__all__ = [
    "Render",
    "account_document",
    "actor_uri",
    "profile_url",
    "account_text",
    "accounts_text",
    "application_document",
    "credential_account_document",
    "relationship_document",
    "version_tuple",
]

V4_4 = (4, 4)
V4_5 = (4, 5)
V4_6 = (4, 6)

# Users without a role get the built-in "everyone" role on CredentialAccount.
_EVERYONE_ROLE = {
    "id": "-99",
    "name": "",
    "permissions": "65536",
    "color": "",
    "highlighted": False,
}


def _iso(timestamp: float) -> str:
    # Relationship's muting_expires_at is written with .iso8601: no fraction (mastodon-api.md
    # section 12.6).
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def version_tuple(version: str) -> tuple[int, int]:
    major, _, rest = version.partition(".")
    minor = rest.split(".", 1)[0]
    return int(major), int("".join(ch for ch in minor if ch.isdigit()) or 0)


def _note_html(text: str) -> str:
    # Mastodon's plain-text bio formatting: blank lines split paragraphs, newlines become <br />.
    if not text:
        return ""
    paragraphs = (html.escape(p, quote=False).replace("\n", "<br />") for p in text.split("\n\n"))
    return "".join(f"<p>{p}</p>" for p in paragraphs)


def _emoji(emoji: Emoji, base: str) -> dict[str, object]:
    url = emoji.url or f"{base}/system/custom_emojis/images/original/{emoji.shortcode}.png"
    return {
        "shortcode": emoji.shortcode,
        "url": url,
        "static_url": emoji.static_url or url,
        "visible_in_picker": emoji.visible_in_picker,
    }


def _field(field: Field, *, plain: bool) -> dict[str, object]:
    value = field.value if plain else html.escape(field.value, quote=False)
    return {"name": field.name, "value": value, "verified_at": field.verified_at}


def _role(role: Role) -> dict[str, object]:
    return {
        "id": role.id,
        "name": role.name,
        "permissions": role.permissions,
        "color": role.color,
        "highlighted": role.highlighted,
    }


@attrs.frozen(kw_only=True)
class Render:
    """How a server renders accounts: where it lives, which version and whose entity shape."""

    # scheme://host of the request: local accounts' URLs, avatars, emojis.
    base: str
    version: tuple[int, int]
    shape: Literal["mastodon", "akkoma"] = "mastodon"
    # The handle domain of local accounts (Akkoma's ``fqn``).
    domain: str = ""


def profile_url(account: Account, base: str) -> str:
    """The account's profile page: remote accounts link to their home."""
    if account.url is not None:
        return account.url
    if account.domain:
        return f"https://{account.domain}/@{account.username}"
    return f"{base}/@{account.username}"


def actor_uri(account: Account, base: str) -> str:
    """The ActivityPub actor id: ``…/users/<username>`` (federation.md §1.2)."""
    if account.uri is not None:
        return account.uri
    if account.domain:
        return f"https://{account.domain}/users/{account.username}"
    return f"{base}/users/{account.username}"


def _akkoma_extras(account: Account, render: Render, actor: str) -> dict[str, object]:
    # akkoma: lib/pleroma/web/mastodon_api/views/account_view.ex; hiding lives here, not in
    # hide_collections (federation.md §3.1).
    return {
        "fqn": f"{account.username}@{account.domain or render.domain}",
        "pleroma": {
            "ap_id": actor,
            "also_known_as": [],
            "hide_favorites": True,
            "hide_followers": account.hide_followers,
            "hide_follows": account.hide_follows,
            "hide_followers_count": False,
            "hide_follows_count": False,
            "is_admin": False,
            "is_moderator": False,
            "is_confirmed": True,
            "relationship": {},
            "tags": [],
        },
        "akkoma": {"instance": None, "status_ttl_days": None, "permit_followback": False},
    }


def account_document(
    state: State,
    account: Account,
    render: Render,
    source: dict[str, object] | None = None,
    *,
    nested: bool = False,
) -> dict[str, object]:
    """One Account. Key order follows the serializer: plain attributes (the conditional
    ``suspended``/``noindex`` and, for CredentialAccount, ``source`` included) come first,
    then the associations ``moved``, ``emojis``, ``roles``, ``fields`` (and ``role``)."""
    base, version = render.base, render.version
    gone = account.suspended
    profile = profile_url(account, base)
    actor = actor_uri(account, base)
    avatar = f"{base}/avatars/original/missing.png"
    header = f"{base}/headers/original/missing.png"
    followers_count, following_count = state.counts(account.id)
    doc: dict[str, object] = {
        "id": str(account.id),
        "username": account.username,
        "acct": f"{account.username}@{account.domain}" if account.domain else account.username,
        "display_name": "" if gone else account.display_name,
        "locked": False if gone else account.locked,
        "bot": False if gone else account.bot,
        # Remote servers may not say whether an account is discoverable.
        "discoverable": False if account.local or gone else None,
        "indexable": False,
        "group": False,
        "created_at": account.created_at,
        "note": "" if gone else _note_html(account.note),
        "url": profile,
        "uri": actor,
        "avatar": avatar,
        "avatar_static": avatar,
    }
    if version >= V4_6:
        doc["avatar_description"] = ""
    doc["header"] = header
    doc["header_static"] = header
    if version >= V4_6:
        doc["header_description"] = ""
    doc["followers_count"] = followers_count
    doc["following_count"] = following_count
    doc["statuses_count"] = 0
    doc["last_status_at"] = None
    if render.shape == "mastodon":
        doc["hide_collections"] = account.hide_collections
    if version >= V4_6:
        doc.update(show_media=True, show_media_replies=True, show_featured=True)
    if gone:
        doc["suspended"] = True
    if account.local:
        doc["noindex"] = False
    if source is not None:
        doc["source"] = source
    if account.moved_to is not None and not nested:
        # ``moved`` is never nested twice; an unavailable account shows ``moved: null``.
        target = state.accounts[account.moved_to]
        doc["moved"] = None if gone else account_document(state, target, render, nested=True)
    doc["emojis"] = [] if gone else [_emoji(e, base) for e in account.emojis]
    if account.local:
        role = account.role
        doc["roles"] = (
            [{"id": role.id, "name": role.name, "color": role.color}]
            if role is not None and role.highlighted and not gone
            else []
        )
    doc["fields"] = [] if gone else [_field(f, plain=False) for f in account.fields]
    if render.shape == "akkoma":
        doc.update(_akkoma_extras(account, render, actor))
    return doc


def credential_account_document(
    state: State, account: Account, render: Render
) -> dict[str, object]:
    source: dict[str, object] = {
        "privacy": "public",
        "sensitive": False,
        "language": "",
        "note": account.note,
        "fields": [_field(f, plain=True) for f in account.fields],
        "follow_requests_count": 0,
        "hide_collections": account.hide_collections,
        "discoverable": False,
        "indexable": False,
        "attribution_domains": [],
    }
    if render.version >= V4_5:
        source["quote_policy"] = "public"
    doc = account_document(state, account, render, source)
    doc["role"] = _role(account.role) if account.role else dict(_EVERYONE_ROLE)
    return doc


def account_text(state: State, account_id: int, render: Render) -> str:
    """The serialized Account, built once per account (until its follow counts change)."""
    if state.json_base != render.base:
        state.json_cache.clear()
        state.json_base = render.base
    text = state.json_cache.get(account_id)
    if text is None:
        account = state.accounts[account_id]
        text = dump_json(account_document(state, account, render))
        # A moved account embeds its target, whose counts change without notice here.
        if account.moved_to is None:
            state.json_cache[account_id] = text
    return text


def accounts_text(state: State, account_ids: Iterable[int], render: Render) -> str:
    return "[" + ",".join(account_text(state, i, render) for i in account_ids) + "]"


def relationship_document(
    state: State, viewer_id: int, target_id: int, version: tuple[int, int]
) -> dict[str, object]:
    following = state.follow_id(viewer_id, target_id) is not None
    muting = state.mutes(viewer_id, target_id)
    reblogs, notify, languages = state.posts.follow_options.get(
        (viewer_id, target_id), (True, False, None)
    )
    mute_notifications, mute_expires = state.posts.mute_options.get(
        (viewer_id, target_id), (True, None)
    )
    doc: dict[str, object] = {
        "id": str(target_id),
        "following": following,
        "showing_reblogs": following and reblogs,
        "notifying": following and notify,
        "languages": languages if following else None,
        "followed_by": state.follow_id(target_id, viewer_id) is not None,
        "blocking": state.blocks(viewer_id, target_id),
        "blocked_by": state.blocks(target_id, viewer_id),
        "muting": muting,
        # Mutes made through the API hide notifications unless asked otherwise.
        "muting_notifications": muting and mute_notifications,
    }
    if version >= V4_6:
        doc["muting_expires_at"] = (
            _iso(mute_expires) if muting and mute_expires is not None else None
        )
    doc.update(
        requested=False,
        requested_by=False,
        domain_blocking=False,
        endorsed=target_id in state.posts.endorsed.get(viewer_id, ()),
        note="",
    )
    return doc


def application_document(app: App, vapid_key: str, *, credentials: bool) -> dict[str, object]:
    """REST::ApplicationSerializer, or with ``credentials`` CredentialApplicationSerializer."""
    doc: dict[str, object] = {
        "id": str(app.id),
        "name": app.name,
        "website": app.website if app.website.strip() else None,
        "scopes": list(app.scopes),
        "redirect_uris": app.redirect_uri.split(),
        "vapid_key": vapid_key,
        "redirect_uri": app.redirect_uri,
    }
    if credentials:
        doc.update(
            client_id=app.client_id,
            client_secret=app.client_secret,
            client_secret_expires_at=0,
        )
    return doc
