"""Serializers producing Mastodon's JSON shapes (REST::AccountSerializer and friends)."""

from __future__ import annotations

import html
from collections.abc import Iterable

from ._http import dump_json
from ._state import Account, App, Emoji, Field, Role, State

__all__ = [
    "account_document",
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


def account_document(
    state: State,
    account: Account,
    base: str,
    version: tuple[int, int],
    source: dict[str, object] | None = None,
) -> dict[str, object]:
    """One Account. Key order follows the serializer: plain attributes (the conditional
    ``suspended``/``noindex`` and, for CredentialAccount, ``source`` included) come first,
    then the associations ``emojis``, ``roles``, ``fields`` (and ``role``)."""
    gone = account.suspended
    profile = (
        f"https://{account.domain}/@{account.username}"
        if account.domain
        else f"{base}/@{account.username}"
    )
    actor = (
        f"https://{account.domain}/users/{account.username}"
        if account.domain
        else f"{base}/users/{account.username}"
    )
    avatar = f"{base}/avatars/original/missing.png"
    header = f"{base}/headers/original/missing.png"
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
    doc["followers_count"] = len(state.followers_of(account.id))
    doc["following_count"] = len(state.following_of(account.id))
    doc["statuses_count"] = 0
    doc["last_status_at"] = None
    doc["hide_collections"] = account.hide_collections
    if version >= V4_6:
        doc.update(show_media=True, show_media_replies=True, show_featured=True)
    if gone:
        doc["suspended"] = True
    if account.local:
        doc["noindex"] = False
    if source is not None:
        doc["source"] = source
    doc["emojis"] = [] if gone else [_emoji(e, base) for e in account.emojis]
    if account.local:
        role = account.role
        doc["roles"] = (
            [{"id": role.id, "name": role.name, "color": role.color}]
            if role is not None and role.highlighted and not gone
            else []
        )
    doc["fields"] = [] if gone else [_field(f, plain=False) for f in account.fields]
    return doc


def credential_account_document(
    state: State, account: Account, base: str, version: tuple[int, int]
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
    if version >= V4_5:
        source["quote_policy"] = "public"
    doc = account_document(state, account, base, version, source)
    doc["role"] = _role(account.role) if account.role else dict(_EVERYONE_ROLE)
    return doc


def account_text(state: State, account_id: int, base: str, version: tuple[int, int]) -> str:
    """The serialized Account, built once per account (until its follow counts change)."""
    if state.json_base != base:
        state.json_cache.clear()
        state.json_base = base
    text = state.json_cache.get(account_id)
    if text is None:
        document = account_document(state, state.accounts[account_id], base, version)
        text = state.json_cache[account_id] = dump_json(document)
    return text


def accounts_text(
    state: State, account_ids: Iterable[int], base: str, version: tuple[int, int]
) -> str:
    return "[" + ",".join(account_text(state, i, base, version) for i in account_ids) + "]"


def relationship_document(
    state: State, viewer_id: int, target_id: int, version: tuple[int, int]
) -> dict[str, object]:
    following = state.follow_id(viewer_id, target_id) is not None
    muting = state.mutes(viewer_id, target_id)
    doc: dict[str, object] = {
        "id": str(target_id),
        "following": following,
        "showing_reblogs": following,
        "notifying": False,
        "languages": None,
        "followed_by": state.follow_id(target_id, viewer_id) is not None,
        "blocking": state.blocks(viewer_id, target_id),
        "blocked_by": state.blocks(target_id, viewer_id),
        "muting": muting,
        # Mutes made through the API hide notifications unless asked otherwise.
        "muting_notifications": muting,
    }
    if version >= V4_6:
        doc["muting_expires_at"] = None
    doc.update(
        requested=False,
        requested_by=False,
        domain_blocking=False,
        endorsed=False,
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
