"""The crawl's pure decisions: server detection, paging quirks, where a walk goes next."""

from __future__ import annotations

import pytest

from aiomasto.crawl import Quirks, quirks_for
from aiomasto.crawl._servers import (
    nodeinfo_link,
    read_instance,
    read_nodeinfo,
    software_from_version,
)
from aiomasto.crawl._walk import decide, first_page, list_outcome

SCHEMA = "http://nodeinfo.diaspora.software/ns/schema/"


@pytest.mark.parametrize(
    ("software", "links", "limit", "short_end", "user", "lookup"),
    [
        ("mastodon", "next", 80, True, False, True),
        ("Mastodon", "next", 80, True, False, True),
        ("gotosocial", "next", 80, False, True, True),
        ("akkoma", "next", 40, False, False, True),
        ("pixelfed", "swapped", 80, False, True, False),
        ("sharkey", "none", 100, False, False, True),
        ("friendica", "next", 40, False, False, True),
        ("Iceshrimp.NET", "next", 80, False, False, True),
    ],
)
def test_quirks_per_software(
    software: str, links: str, limit: int, short_end: bool, user: bool, lookup: bool
) -> None:
    quirks = quirks_for(software)
    assert quirks.known
    assert (quirks.links, quirks.page_limit, quirks.short_page_is_end) == (links, limit, short_end)
    assert (quirks.needs_user_token, quirks.lookup) == (user, lookup)


@pytest.mark.parametrize("software", [None, "", "newfangled", "misskey-fork"])
def test_unknown_software_gets_every_guard(software: str | None) -> None:
    quirks = quirks_for(software)
    assert not quirks.known
    assert not quirks.short_page_is_end
    assert quirks.links == "next"


def test_akkoma_hide_flags_are_its_own() -> None:
    assert quirks_for("akkoma").hide_flags == "pleroma"
    assert quirks_for("mastodon").hide_flags == "hide_collections"


def test_nodeinfo_picks_the_highest_2x_schema() -> None:
    document = {
        "links": [
            {"rel": SCHEMA + "1.0", "href": "/nodeinfo/1.0"},
            {"rel": SCHEMA + "2.0", "href": "/nodeinfo/2.0"},
            {"rel": SCHEMA + "2.1", "href": "/nodeinfo/2.1"},
            {"rel": "other", "href": "/x"},
        ]
    }
    assert nodeinfo_link(document) == "/nodeinfo/2.1"


@pytest.mark.parametrize(
    "document",
    [
        None,
        [],
        "links",
        {"links": "nope"},
        {"links": [1, None, {"rel": SCHEMA + "2.0"}, {"rel": SCHEMA + "2.0", "href": 7}]},
        {"links": [{"rel": SCHEMA + "2.99999", "href": "/x"}]},
        {"links": [{"rel": SCHEMA + "2.0", "href": "/" + "x" * 5000}]},
    ],
)
def test_nodeinfo_index_of_the_wrong_shape_names_no_document(document: object) -> None:
    assert nodeinfo_link(document) is None


def test_nodeinfo_software_is_lower_cased() -> None:
    document = {"software": {"name": "Iceshrimp.NET", "version": "2024.1"}}
    assert read_nodeinfo(document) == ("iceshrimp.net", "2024.1")
    assert read_nodeinfo({"software": ["x"]}) == (None, None)
    assert read_nodeinfo({"software": {"name": 5, "version": None}}) == (None, None)


@pytest.mark.parametrize(
    ("version", "software"),
    [
        ("4.5.0", "mastodon"),
        ("4.5.0+hometown-1.1.2", "mastodon"),
        ("2.7.2 (compatible; Akkoma 3.16.0)", "akkoma"),
        ("3.5.3 (compatible; Pixelfed 0.11.13)", "pixelfed"),
        ("3.0.0 (compatible; Sharkey 2023.12.0.beta1)", "sharkey"),
        ("4.2.1 (compatible; Iceshrimp.NET/2024.1)", "iceshrimp.net"),
        ("0.20.0+git-57cb4fe", "gotosocial"),
        (None, None),
    ],
)
def test_software_from_the_version_string(version: str | None, software: str | None) -> None:
    assert software_from_version(version) == software


def test_instance_endpoint_names_the_handle_domain() -> None:
    v2 = {"domain": "Example.Social", "version": "4.5.0"}
    assert read_instance(v2) == ("example.social", "4.5.0", False)
    v1 = {"uri": "https://old.example/", "version": "3.5.3"}
    assert read_instance(v1) == ("old.example", "3.5.3", False)
    lfm = {"domain": "closed.example", "configuration": {"limited_federation": True}}
    assert read_instance(lfm)[2] is True
    assert read_instance({"domain": "evil@x.example"})[0] is None
    assert read_instance([1, 2]) == (None, None, False)


def test_first_page_asks_for_the_largest_page() -> None:
    assert first_page("109", "followers", quirks_for("mastodon")) == (
        "/api/v1/accounts/109/followers?limit=80"
    )
    assert first_page("a/b", "following", quirks_for("akkoma")).startswith(
        "/api/v1/accounts/a%2Fb/following?limit=40"
    )


MASTODON = quirks_for("mastodon")
GTS = quirks_for("gotosocial")
PIXELFED = quirks_for("pixelfed")
SHARKEY = quirks_for("sharkey")
UNKNOWN = quirks_for(None)


def step(
    quirks: Quirks,
    *,
    next_link: str | None = None,
    prev_link: str | None = None,
    count: int = 80,
    seen: frozenset[str] = frozenset({"/p1"}),
    same: bool = False,
    claimed: int | None = 1000,
    found: int = 80,
) -> tuple[str | None, str | None]:
    result = decide(
        quirks,
        fetched="/p1",
        next_link=next_link,
        prev_link=prev_link,
        count=count,
        seen=seen,
        same_as_before=same,
        claimed=claimed,
        found=found,
    )
    return result.cursor, result.outcome


def test_follow_next_on_mastodon() -> None:
    assert step(MASTODON, next_link="/p2", prev_link="/p0") == ("/p2", None)


def test_mastodon_short_page_is_the_end() -> None:
    assert step(MASTODON, next_link="/p2", count=30) == (None, None)


def test_gotosocial_short_page_is_not_the_end() -> None:
    assert step(GTS, next_link="/p2", count=30) == ("/p2", None)


def test_unknown_server_short_page_is_not_the_end() -> None:
    assert step(UNKNOWN, next_link="/p2", count=3) == ("/p2", None)


def test_pixelfed_older_items_are_prev() -> None:
    assert step(PIXELFED, prev_link="/older") == ("/older", None)
    assert step(PIXELFED, next_link="/newer", prev_link="/older") == ("/older", None)
    assert step(PIXELFED, next_link="/newer") == (None, None)


def test_no_link_header_full_page_claiming_more_is_unpageable() -> None:
    assert step(SHARKEY, count=100, claimed=500, found=100) == (None, "unpageable")


def test_no_link_header_short_page_is_complete() -> None:
    assert step(SHARKEY, count=12, claimed=12, found=12) == (None, None)
    assert step(SHARKEY, count=100, claimed=100, found=100) == (None, None)


def test_a_link_back_to_a_fetched_page_stops_the_walk() -> None:
    assert step(MASTODON, next_link="/p1") == (None, "unpageable")
    assert step(MASTODON, next_link="/p0", seen=frozenset({"/p0", "/p1"})) == (None, "unpageable")


def test_the_same_page_twice_stops_the_walk() -> None:
    assert step(UNKNOWN, next_link="/p2", same=True) == (None, "unpageable")


def test_an_empty_page_ends_the_list() -> None:
    assert step(GTS, next_link="/p2", count=0) == (None, None)


@pytest.mark.parametrize(
    ("claimed", "found", "blocked", "outcome"),
    [
        (10, 10, False, "complete"),
        (0, 3, False, "complete"),
        (0, 0, False, "empty"),
        (None, 0, False, "empty"),
        (5, 0, False, "withheld"),
        (5, 0, True, "blocked"),
    ],
)
def test_list_outcome(claimed: int | None, found: int, blocked: bool, outcome: str) -> None:
    assert list_outcome(claimed=claimed, found=found, blocked=blocked) == outcome


def test_an_account_record_copies_each_field_of_the_account_it_stands_for() -> None:
    # account_record builds by position for speed: every field must land in its own slot.
    from datetime import UTC, datetime

    import attrs

    from aiomasto.crawl import AccountRecord
    from aiomasto.crawl._resolve import account_record
    from aiomasto.entities import Account

    created = datetime(2021, 2, 3, tzinfo=UTC)
    moved = Account(id="9", username="New", acct="New")
    account = Account(
        id="7",
        username="Alice",
        acct="Alice",
        uri="https://a.example/users/Alice",
        url="https://a.example/@Alice",
        display_name="Alice A.",
        note="<p>hi</p>",
        avatar="https://a.example/avatar.png",
        bot=True,
        locked=True,
        group=True,
        created_at=created,
        followers_count=11,
        following_count=22,
        statuses_count=33,
        suspended=True,
        moved=moved,
    )
    record = account_record(account, domain="a.example", seen_on="https://api.a.example")
    assert type(record) is AccountRecord
    assert record == AccountRecord(
        key="alice@a.example",
        acct="Alice@a.example",
        uri="https://a.example/users/Alice",
        url="https://a.example/@Alice",
        display_name="Alice A.",
        note="<p>hi</p>",
        avatar="https://a.example/avatar.png",
        bot=True,
        locked=True,
        group=True,
        created_at=created,
        followers_count=11,
        following_count=22,
        statuses_count=33,
        suspended=True,
        moved_to="new@a.example",
        seen_on="https://api.a.example",
    )
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        record.key = "mallory@a.example"  # type: ignore[misc]


def test_a_listed_account_reads_as_the_account_would_for_the_fields_a_record_keeps() -> None:
    # The crawl decodes a page into ListedAccount, not Account: same record, same failures.
    import json

    from aiomasto import DecodeError
    from aiomasto._converter import decode_json_items
    from aiomasto.crawl._model import ListedAccount
    from aiomasto.crawl._resolve import account_record
    from aiomasto.entities import Account

    good = {
        "id": "1",
        "username": "bob",
        "acct": "bob",
        "display_name": "Bob",
        "note": "<p>x</p>",
        "created_at": "2020-01-02T00:00:00.000Z",
        "followers_count": "12",  # a numeric string, as some servers send
        "following_count": None,  # null where a default exists
        "locked": True,
        "emojis": [{"shortcode": "a", "url": "https://b.example/a.png"}],
        "moved": {"id": "2", "username": "bob2", "acct": "bob2@c.example"},
        "unknown": {"nested": [1, 2]},
    }
    broken = dict(good, id="3", statuses_count={"not": "a number"})
    body = json.dumps([good, broken]).encode()
    classes: tuple[type[Account | ListedAccount], ...] = (Account, ListedAccount)
    for cls in classes:
        items, skipped = decode_json_items(cls, body, skip_undecodable=True)
        assert [item.id for item in items] == ["1"]
        assert [(problem.index, problem.field) for problem in skipped] == [
            (1, "[1].statuses_count")
        ]
    full = decode_json_items(Account, body, skip_undecodable=True)[0][0]
    listed = decode_json_items(ListedAccount, body, skip_undecodable=True)[0][0]
    assert account_record(listed, domain="b.example", seen_on="https://b.example") == (
        account_record(full, domain="b.example", seen_on="https://b.example")
    )
    with pytest.raises(DecodeError):
        decode_json_items(ListedAccount, b'[{"id": "1", "acct": "x"}]', skip_undecodable=False)
