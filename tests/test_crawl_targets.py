"""Naming accounts to crawl: every accepted form and the junk a hostile seed file holds."""

from __future__ import annotations

import pytest

from aiomasto import ConfigurationError
from aiomasto.crawl import parse_target


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("@alice@example.social", "alice@example.social"),
        ("alice@example.social", "alice@example.social"),
        ("@Alice@Example.SOCIAL", "alice@example.social"),
        ("  @alice@example.social\n", "alice@example.social"),
        ("https://example.social/@alice", "alice@example.social"),
        ("https://Example.Social/@Alice/", "alice@example.social"),
        ("https://example.social/@bob@other.example", "bob@other.example"),
        ("https://example.social/users/carol", "carol@example.social"),
        ("@dave@bücher.example", "dave@xn--bcher-kva.example"),
        ("@e.f-g_h@sub.example.org", "e.f-g_h@sub.example.org"),
        ("https://example.social#109123", "https://example.social#109123"),
        ("https://example.social/#109123", "https://example.social#109123"),
        ("https://example.social#01HXYZ", "https://example.social#01HXYZ"),
    ],
)
def test_accepted_forms_have_canonical_keys(text: str, key: str) -> None:
    assert parse_target(text).key == key


def test_a_pair_is_an_id_target() -> None:
    target = parse_target(("https://pixelfed.example", "7"))
    assert target.kind == "id"
    assert target.text == "https://pixelfed.example#7"
    assert parse_target(target.text) == target


def test_the_text_form_reads_back_the_same_target() -> None:
    for text in ("@alice@example.social", "https://example.social/@bob@other.example"):
        target = parse_target(text)
        assert parse_target(target.text) == target


@pytest.mark.parametrize(
    "junk",
    [
        "",
        "   ",
        "alice",
        "@alice",
        "@alice@",
        "@@example.social",
        "alice@example",
        "al ice@example.social",
        "alice@exa mple.social",
        "alice@example.social\x00",
        "alice@-bad-.example",
        "alice@10.0.0.1",
        "al/ice@example.social",
        "javascript:alert(1)",
        "mailto:alice@example.social",
        "acct:alice@example.social",
        "ftp://example.social/@alice",
        "http://example.social/@alice",
        "https://user:pw@example.social/@alice",
        "https://example.social/@alice?x=1",
        "https://example.social/about",
        "https://example.social/@alice/123",
        "https://example.social#",
        "https://example.social#a/b",
        "https://example.social/path#1",
        "@" + "a" * 600 + "@example.social",
        "@alice@" + "a" * 300 + ".example",
        ("https://example.social",),
        ("https://example.social", 5),
        42,
        None,
    ],
)
def test_junk_is_a_clear_configuration_error(junk: object) -> None:
    with pytest.raises(ConfigurationError):
        parse_target(junk)


def test_plain_http_needs_to_be_allowed() -> None:
    with pytest.raises(ConfigurationError, match="http"):
        parse_target("http://alpha.example/@alice")
    assert parse_target("http://alpha.example/@alice", allow_insecure_http=True).key == (
        "alice@alpha.example"
    )
