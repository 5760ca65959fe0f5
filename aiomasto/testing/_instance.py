"""NodeInfo and the instance endpoints: what server this is (federation.md §4.1, §4.2).

Each flavour names its software and version the way the real server does, at the paths it
uses; ``domain`` (v2) and ``uri`` (v1) give the handle domain, Akkoma's v1 ``uri`` a base URL.
Instance endpoints need no token, even in limited-federation mode.
"""

from __future__ import annotations

from aiohttp import web

from ._context import Ctx, Halt
from ._http import json_response, not_found_page

__all__ = ["instance_v1", "instance_v2", "nodeinfo_document", "nodeinfo_index"]

_SCHEMA = "http://nodeinfo.diaspora.software/ns/schema/"


def _version(ctx: Ctx, template: str) -> str:
    return template.replace("{mastodon}", ctx.version_text)


def _local_users(ctx: Ctx) -> int:
    return sum(1 for a in ctx.state.accounts.values() if a.local and not a.deleted)


def nodeinfo_index(ctx: Ctx) -> web.Response:
    """``GET /.well-known/nodeinfo``: one link per schema the server offers."""
    links = [
        {"rel": f"{_SCHEMA}{schema}", "href": f"{ctx.base}{path}"}
        for schema, path in ctx.flavor.software.nodeinfo
    ]
    return json_response(200, {"links": links})


def nodeinfo_document(ctx: Ctx) -> web.Response:
    """The NodeInfo document at this flavour's path (``software.name``/``version``)."""
    software = ctx.flavor.software
    schema = next((s for s, path in software.nodeinfo if path == ctx.path), None)
    if schema is None:
        raise Halt(not_found_page(ctx.headers))
    users = _local_users(ctx)
    described: dict[str, object] = {
        "name": software.name,
        "version": _version(ctx, software.version),
    }
    if schema != "2.0":
        described.update(repository=software.source_url, homepage=software.source_url)
    metadata: dict[str, object] = {"nodeName": ctx.local_domain}
    if software.name == "akkoma":
        metadata["private"] = False  # instance.public (federation.md §4.1)
    document = {
        "version": schema,
        "software": described,
        "protocols": ["activitypub"],
        "services": {"inbound": [], "outbound": []},
        "usage": {
            "users": {"total": users, "activeMonth": users, "activeHalfyear": users},
            "localPosts": 0,
        },
        "openRegistrations": False,
        "metadata": metadata,
    }
    response = json_response(200, document)
    response.headers["Content-Type"] = (
        f'application/json; profile="{_SCHEMA}{schema}#"; charset=utf-8'
    )
    return response


def _api_versions(version: tuple[int, int]) -> int:
    # api_versions.mastodon: 6 in 4.4, 7 in 4.5, 10 in 4.6 (mastodon-api.md §0).
    if version >= (4, 6):
        return 10
    return 7 if version >= (4, 5) else 6


def _configuration(ctx: Ctx) -> dict[str, object]:
    streaming = "ws" + ctx.base.removeprefix("http")
    configuration: dict[str, object] = {
        "urls": {"streaming": streaming, "status": None},
        "vapid": {"public_key": ctx.vapid_key},
        "accounts": {"max_featured_tags": 10, "max_pinned_statuses": 5},
        "statuses": {
            "max_characters": 500,
            "max_media_attachments": 4,
            "characters_reserved_per_url": 23,
        },
        "translation": {"enabled": False},
    }
    if ctx.flavor.name == "mastodon":
        # 4.4.0+ (docs: content/en/methods/instance.md); set by LIMITED_FEDERATION_MODE only.
        configuration["limited_federation"] = ctx.limited_federation
    return configuration


def instance_v2(ctx: Ctx) -> web.Response:
    """``GET /api/v2/instance`` (Mastodon's InstanceSerializer); 404 where the server has none."""
    software = ctx.flavor.software
    if not software.instance_v2:
        raise Halt(not_found_page(ctx.headers))
    users = _local_users(ctx)
    document: dict[str, object] = {
        "domain": ctx.local_domain,
        "title": ctx.local_domain,
        "version": _version(ctx, software.instance_version),
        "source_url": software.source_url,
        "description": "",
        "usage": {"users": {"active_month": users}},
        "thumbnail": {"url": f"{ctx.base}/packs/media/images/preview.png"},
        "icon": [],
        "languages": ["en"],
        "configuration": _configuration(ctx),
        "registrations": {
            "enabled": False,
            "approval_required": False,
            "message": None,
            "url": None,
        },
        "contact": {"email": "", "account": None},
        "rules": [],
    }
    if ctx.flavor.name == "mastodon":
        document["api_versions"] = {"mastodon": _api_versions(ctx.version)}
    if software.v1_uri == "host":
        # GoToSocial: domain is the account domain, named once more (federation.md §1.3).
        document["account_domain"] = ctx.local_domain
    return json_response(200, document)


def instance_v1(ctx: Ctx) -> web.Response:
    """``GET /api/v1/instance`` (deprecated on Mastodon, the only one on Akkoma/Sharkey)."""
    software = ctx.flavor.software
    users = _local_users(ctx)
    uri = {
        "domain": ctx.local_domain,
        "host": ctx.web_domain,
        "base_url": ctx.base,
    }[software.v1_uri]
    document: dict[str, object] = {
        "uri": uri,
        "title": ctx.local_domain,
        "short_description": "",
        "description": "",
        "email": "",
        "version": _version(ctx, software.instance_version),
        "urls": {"streaming_api": "ws" + ctx.base.removeprefix("http")},
        "stats": {"user_count": users, "status_count": 0, "domain_count": 0},
        "thumbnail": f"{ctx.base}/packs/media/images/preview.png",
        "languages": ["en"],
        "registrations": False,
        "approval_required": False,
        "invites_enabled": False,
        "configuration": _configuration(ctx),
        "contact_account": None,
        "rules": [],
    }
    if software.v1_uri == "host":
        document["account_domain"] = ctx.local_domain
    if software.name == "akkoma":
        document["pleroma"] = {
            "metadata": {"features": ["mastodon_api"], "federation": {"enabled": True}},
            "stats": {"mau": users},
        }
    return json_response(200, document)
