"""Entities parse the payloads real servers send (mastodon-api.md §2.1, §3.4, §12, §14)."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from typing import Any

import pytest

import aiomasto
from aiomasto._converter import (
    _detailed,
    converter,
    decode,
    decode_json,
    decode_json_list,
    decode_list,
)
from aiomasto.entities import (
    Account,
    Application,
    CredentialAccount,
    Error,
    Relationship,
    Token,
)

CREDENTIAL_APPLICATION: dict[str, Any] = {
    "id": "563419",
    "name": "Test Application",
    "website": "https://app.example",
    "scopes": ["read", "write", "push"],
    "redirect_uris": ["https://app.example/callback", "https://app.example/register"],
    "vapid_key": "BMAIjoaMYTDbJtfrfocuzO8pzDHI47dzmw0rha6Y=",
    "redirect_uri": "https://app.example/callback\nhttps://app.example/register",
    "client_id": "TWhM-tNSuncnqN7DBJmoyeLnk6K3iJJ71KKXxgL1hPM",
    "client_secret": "ZEaFUFmF0umgBX1qKJDjaU99Q31lDkOU8NutzTOoliw",
    "client_secret_expires_at": 0,
}

TOKEN: dict[str, Any] = {
    "access_token": "ZA-Yj3aBD8U8Cm7lKUp-lm9O9BmDgdhHzDeqsY8tlL0",
    "token_type": "Bearer",
    "scope": "read write follow push",
    "created_at": 1573979017,
}

SUSPENDED: dict[str, Any] = {
    "id": "14",
    "username": "stigatle",
    "acct": "stigatle@quitter.no",
    "display_name": "",
    "locked": False,
    "bot": False,
    "discoverable": False,
    "group": False,
    "created_at": "2016-03-18T10:04:51.700Z",
    "note": "",
    "url": "https://quitter.no/stigatle",
    "avatar": "https://mastodon.social/avatars/original/missing.png",
    "avatar_static": "https://mastodon.social/avatars/original/missing.png",
    "header": "https://mastodon.social/headers/original/missing.png",
    "header_static": "https://mastodon.social/headers/original/missing.png",
    "followers_count": 0,
    "following_count": 0,
    "statuses_count": 0,
    "last_status_at": None,
    "suspended": True,
    "emojis": [],
    "fields": [],
}

LOCAL_ACCOUNT: dict[str, Any] = {
    "id": "109302",
    "username": "alice",
    "acct": "alice",
    "display_name": "Alice :blobcat:",
    "locked": False,
    "bot": False,
    "discoverable": True,
    "indexable": True,
    "group": False,
    "created_at": "2016-03-16T00:00:00.000Z",
    "note": "<p>hello</p>",
    "url": "https://mastodon.example/@alice",
    "uri": "https://mastodon.example/users/alice",
    "avatar": "https://files.example/a.png",
    "avatar_static": "https://files.example/a.png",
    "avatar_description": "",
    "header": "https://files.example/h.png",
    "header_static": "https://files.example/h.png",
    "header_description": "",
    "followers_count": 547,
    "following_count": 404,
    "statuses_count": 28468,
    "last_status_at": "2019-11-24",
    "hide_collections": None,
    "show_media": True,
    "show_media_replies": True,
    "show_featured": True,
    "noindex": False,
    "emojis": [
        {
            "shortcode": "blobcat",
            "url": "https://files.example/blobcat.png",
            "static_url": "https://files.example/blobcat_static.png",
            "visible_in_picker": True,
        }
    ],
    "feature_approval": {"automatic": [], "manual": [], "current_user": "denied"},
    "roles": [{"id": "3", "name": "Moderator", "color": "#ff0000"}],
    "fields": [
        {
            "name": "Web",
            "value": '<a href="https://alice.example">alice.example</a>',
            "verified_at": "2019-08-29T04:14:55.571+00:00",
        },
        {"name": "Pronouns", "value": "she/her", "verified_at": None},
    ],
}


def test_credential_application() -> None:
    app = decode(Application, CREDENTIAL_APPLICATION)
    assert app.id == "563419"
    assert app.scopes == ("read", "write", "push")
    assert app.registered_redirect_uris == (
        "https://app.example/callback",
        "https://app.example/register",
    )
    assert app.client_secret == CREDENTIAL_APPLICATION["client_secret"]
    assert app.client_secret_expires_at == 0
    assert "ZEaFUFmF0umgBX1qKJDjaU99Q31lDkOU8NutzTOoliw" not in repr(app)


@pytest.mark.parametrize(
    "payload",
    [
        # verify_credentials on 4.3+: no credentials
        {k: v for k, v in CREDENTIAL_APPLICATION.items() if not k.startswith("client_")},
        # before 4.3: name, website, vapid_key only; website may be null
        {"name": "Old", "website": None, "vapid_key": "x"},
        # Akkoma registration: redirect_uri string, no scopes
        {
            "id": "7",
            "name": "A",
            "client_id": "c",
            "client_secret": "s",
            "redirect_uri": "urn:ietf:wg:oauth:2.0:oob",
            "website": None,
        },
        # GoToSocial: ULID ids, no website, no client_secret_expires_at
        {
            "id": "01FBVD42CQ3ZEEVMW180SBX03B",
            "created_at": "2021-07-30T09:14:38.000Z",
            "name": "G",
            "redirect_uri": "urn:ietf:wg:oauth:2.0:oob",
            "redirect_uris": ["urn:ietf:wg:oauth:2.0:oob"],
            "client_id": "01FBVD42CQ3ZEEVMW180SBX03C",
            "client_secret": "3a4a8b7b-5b5b-4b5b-8b5b-5b5b5b5b5b5b",
            "vapid_key": "v",
            "scopes": ["read"],
        },
    ],
)
def test_application_variants(payload: dict[str, Any]) -> None:
    app = decode(Application, payload)
    assert app.name == payload["name"]
    assert app.registered_redirect_uris or "redirect_uri" not in payload


def test_token() -> None:
    token = decode(Token, TOKEN)
    assert token.scopes == ("read", "write", "follow", "push")
    assert token.created_at == datetime(2019, 11, 17, 8, 23, 37, tzinfo=UTC)
    assert token.expires_in is None
    assert token.refresh_token is None
    assert TOKEN["access_token"] not in repr(token)
    akkoma = decode(
        Token, {**TOKEN, "id": 5, "refresh_token": "RSECRET", "expires_in": 3155760000, "me": "x"}
    )
    assert akkoma.expires_in == 3155760000
    assert "RSECRET" not in repr(akkoma)


def test_token_round_trips_through_the_converter() -> None:
    token = decode(Token, TOKEN)
    assert decode(Token, converter.unstructure(token)) == token


def test_suspended_account_from_the_docs() -> None:
    account = decode(Account, SUSPENDED)
    assert account.suspended is True
    assert account.last_status_at is None
    assert account.created_at == datetime(2016, 3, 18, 10, 4, 51, 700000, tzinfo=UTC)
    # keys absent in this payload get their "unknown" defaults
    assert account.roles == ()
    assert account.noindex is None
    assert account.moved is None
    assert account.indexable is None


def test_local_account_with_everything() -> None:
    account = decode(Account, LOCAL_ACCOUNT)
    assert account.created_at == datetime(2016, 3, 16, tzinfo=UTC)
    assert account.last_status_at == date(2019, 11, 24)
    assert account.hide_collections is None
    assert account.emojis[0].shortcode == "blobcat"
    assert account.emojis[0].category is None
    assert account.fields[0].verified_at == datetime(2019, 8, 29, 4, 14, 55, 571000, tzinfo=UTC)
    assert account.fields[1].verified_at is None
    assert account.roles[0].name == "Moderator"
    assert account.suspended is False


def test_remote_account_absent_keys_and_null_discoverable() -> None:
    remote = {k: v for k, v in LOCAL_ACCOUNT.items() if k not in ("roles", "noindex", "indexable")}
    remote.update(acct="bob@remote.example", discoverable=None)
    account = decode(Account, remote)
    assert account.discoverable is None
    assert account.roles == ()
    assert account.noindex is None


def test_moved_account_and_null_moved() -> None:
    moved = {**LOCAL_ACCOUNT, "moved": {**SUSPENDED}}
    account = decode(Account, moved)
    assert account.moved is not None
    assert account.moved.id == "14"
    assert decode(Account, {**LOCAL_ACCOUNT, "moved": None}).moved is None


def test_last_status_at_as_full_datetime_is_tolerated() -> None:
    account = decode(Account, {**LOCAL_ACCOUNT, "last_status_at": "2019-11-24T15:49:42.251Z"})
    assert account.last_status_at == date(2019, 11, 24)


def test_unknown_keys_never_fail() -> None:
    akkoma_extras = {
        **LOCAL_ACCOUNT,
        "fqn": "alice@mastodon.example",
        "pleroma": {"hide_followers": False, "relationship": {}},
        "akkoma": {"instance": None},
        "source": {"note": "x", "pleroma": {}},
        "theme": "blurple",
        "role": {"name": "user"},
    }
    assert decode(Account, akkoma_extras).acct == "alice"


def test_gotosocial_account_omits_many_keys() -> None:
    gts = {
        "id": "01F8MH1H7YV1Z7D2C8K2730QBF",
        "username": "the_mighty_zork",
        "acct": "the_mighty_zork",
        "display_name": "original zork (he/they)",
        "locked": False,
        "discoverable": True,
        "bot": False,
        "created_at": "2022-05-20T11:09:18.000Z",
        "note": "<p>hey yo this is my profile!</p>",
        "url": "http://localhost:8080/@the_mighty_zork",
        "avatar": "",
        "avatar_static": "",
        "header": "",
        "header_static": "",
        "followers_count": 2,
        "following_count": 2,
        "statuses_count": 8,
        "last_status_at": "2024-11-01",
        "emojis": [],
        "fields": [],
        "enable_rss": True,
        "mute_expires_at": None,
    }
    account = decode(Account, gts)
    assert account.group is False
    assert account.hide_collections is None


def test_credential_account() -> None:
    payload = {
        **LOCAL_ACCOUNT,
        "source": {
            "privacy": "public",
            "sensitive": False,
            "language": "",
            "note": "hello",
            "fields": [{"name": "Web", "value": "https://alice.example", "verified_at": None}],
            "follow_requests_count": 0,
            "hide_collections": False,
            "discoverable": True,
            "indexable": True,
            "attribution_domains": ["alice.example"],
            "quote_policy": "public",
        },
        "role": {
            "id": "-99",
            "name": "",
            "permissions": "65536",
            "color": "",
            "highlighted": False,
        },
    }
    me = decode(CredentialAccount, payload)
    assert isinstance(me, Account)
    assert me.source is not None
    assert me.source.attribution_domains == ("alice.example",)
    assert me.role is not None
    assert me.role.permissions == "65536"


def test_relationship_with_and_without_new_fields() -> None:
    payload = {
        "id": "1",
        "following": True,
        "showing_reblogs": True,
        "notifying": False,
        "languages": None,
        "followed_by": False,
        "blocking": False,
        "blocked_by": False,
        "muting": False,
        "muting_notifications": False,
        "muting_expires_at": "2026-02-12T13:45:25Z",
        "requested": False,
        "requested_by": False,
        "domain_blocking": False,
        "endorsed": False,
        "note": "",
    }
    rel = decode(Relationship, payload)
    assert rel.following is True
    assert rel.muting_expires_at == datetime(2026, 2, 12, 13, 45, 25, tzinfo=UTC)
    gts = {k: v for k, v in payload.items() if k not in ("languages", "muting_expires_at")}
    assert decode(Relationship, gts).languages is None


def test_error_entity() -> None:
    err = decode(Error, {"error": "invalid_grant", "error_description": "nope", "state": "x"})
    assert err.error_description == "nope"


def test_a_null_takes_the_default_of_a_field_that_has_one() -> None:
    # Some Mastodon-API servers send null for keys Mastodon leaves out; one null must not cost
    # a page of a crawl.
    nulls = dict.fromkeys(
        [
            "suspended",
            "limited",
            "memorial",
            "display_name",
            "emojis",
            "fields",
            "roles",
            "followers_count",
            "locked",
            "note",
            "avatar",
            "discoverable",
            "moved",
        ]
    )
    for decoded in (
        decode(Account, {**LOCAL_ACCOUNT, **nulls}),
        decode_json_list(Account, json.dumps([{**LOCAL_ACCOUNT, **nulls}]).encode())[0],
        _detailed.structure({**LOCAL_ACCOUNT, **nulls}, Account),
    ):
        assert decoded.suspended is False
        assert decoded.limited is False
        assert decoded.display_name == ""
        assert decoded.emojis == ()
        assert decoded.followers_count == 0
        assert decoded.discoverable is None  # the type takes None: null is a value here
        assert decoded.moved is None
        assert decoded.id == LOCAL_ACCOUNT["id"]
    assert decode(Token, {"access_token": "t", "token_type": None}).token_type == "Bearer"
    assert decode(Application, {"name": "a", "scopes": None}).scopes == ()


def test_a_null_in_a_required_field_is_still_an_error() -> None:
    with pytest.raises(aiomasto.DecodeError, match=r"Account\.id: expected a string, got null"):
        decode(Account, {**LOCAL_ACCOUNT, "id": None})


# -- bad input: a clear DecodeError naming entity and field, never a bare KeyError ------------


@pytest.mark.parametrize(
    ("mutate", "field", "reason"),
    [
        (lambda a: a.pop("id"), "[1].id", "required field missing"),
        (lambda a: a.update(id=None), "[1].id", "null"),
        (lambda a: a.update(followers_count="many"), "[1].followers_count", "integer"),
        (lambda a: a.update(emojis=[{"shortcode": "x"}]), "[1].emojis[0].url", "missing"),
        (lambda a: a.update(emojis=[{"shortcode": "x", "url": None}]), "[1].emojis[0].url", "null"),
        (lambda a: a.update(emojis="x"), "[1].emojis", "array"),
        (lambda a: a.update(emojis=["x"]), "[1].emojis[0]", "expected an object"),
        (lambda a: a.update(moved="x"), "[1].moved", "expected an object"),
        (lambda a: a.update(created_at="yesterday"), "[1].created_at", "ISO 8601"),
        (lambda a: a.update(locked="no"), "[1].locked", "boolean"),
    ],
)
def test_wrong_shapes_name_the_field(mutate: Any, field: str, reason: str) -> None:
    bad = json.loads(json.dumps(LOCAL_ACCOUNT))
    mutate(bad)
    body = json.dumps([LOCAL_ACCOUNT, bad]).encode()
    with pytest.raises(aiomasto.DecodeError) as info:
        decode_json_list(Account, body, method="GET", url="https://m.example/api/v1/x")
    exc = info.value
    assert exc.entity == "Account"
    assert exc.field == field
    assert exc.index == 1
    assert reason in str(exc)
    assert "https://m.example/api/v1/x" in str(exc)


def test_both_json_decoders_give_the_same_entities(json_parser: str) -> None:
    body = json.dumps([LOCAL_ACCOUNT, SUSPENDED]).encode()
    assert decode_json_list(Account, body) == [
        decode(Account, LOCAL_ACCOUNT),
        decode(Account, SUSPENDED),
    ]


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b'[{"id": "1", "userna', "truncated"),
        (b"<html><body>Welcome to the captive portal</body></html>", "invalid"),
        (b"", "empty body"),
        (b"\xff\xfe[]", "invalid"),
        (b'{"id": "1"}', "expected a JSON array, got an object"),
        (b"[" * 100_000 + b"]" * 100_000, "nested too deeply"),
        (b'[{"a":' * 50_000 + b"1" + b"}]" * 50_000, "nested too deeply"),
    ],
)
def test_unparseable_bodies(body: bytes, reason: str, json_parser: str) -> None:
    with pytest.raises(aiomasto.DecodeError) as info:
        decode_json_list(Account, body)
    assert reason in str(info.value)
    assert info.value.entity == "Account"


def test_object_expected_but_array_sent() -> None:
    with pytest.raises(aiomasto.DecodeError, match="expected a JSON object, got an array"):
        decode_json(Application, b"[]")
    with pytest.raises(aiomasto.DecodeError, match=r"Application\.name: required field missing"):
        decode(Application, {"id": "1"})


def test_decode_list_is_the_same_as_decoding_each() -> None:
    accounts = decode_list(Account, [LOCAL_ACCOUNT, SUSPENDED])
    assert accounts == [decode(Account, LOCAL_ACCOUNT), decode(Account, SUSPENDED)]


@pytest.mark.parametrize(
    ("cls", "payload"),
    [
        (Account, LOCAL_ACCOUNT),
        (Account, SUSPENDED),
        (Account, {**LOCAL_ACCOUNT, "moved": SUSPENDED}),
        (Application, CREDENTIAL_APPLICATION),
        (Token, TOKEN),
    ],
)
def test_fast_path_agrees_with_cattrs_own_structuring(cls: type[Any], payload: Any) -> None:
    assert decode(cls, payload) == _detailed.structure(payload, cls)


def test_a_string_where_an_array_belongs_is_not_split_into_characters() -> None:
    with pytest.raises(aiomasto.DecodeError) as info:
        decode(Account, {**LOCAL_ACCOUNT, "emojis": "blobcat"})
    assert info.value.field == "emojis"
    assert "expected an array, got a string" in str(info.value)
