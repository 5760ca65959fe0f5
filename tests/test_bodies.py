"""Query strings and bodies as Mastodon reads them, without a server."""

from __future__ import annotations

import email.parser
import email.policy

import pytest

from aiomasto._bodies import (
    checked_headers,
    form_body,
    json_body,
    multipart_body,
    query_pairs,
)
from aiomasto.errors import ConfigurationError


def test_lists_repeat_keys_mappings_nest_and_none_is_left_out() -> None:
    pairs = query_pairs(
        {
            "id": ["1", 2],
            "types[]": ("mention",),
            "poll": {"options": ["a", "b"], "expires_in": 300, "multiple": False},
            "max_id": None,
            "local": True,
        }
    )
    assert pairs == [
        ("id[]", "1"),
        ("id[]", "2"),
        ("types[]", "mention"),
        ("poll[options][]", "a"),
        ("poll[options][]", "b"),
        ("poll[expires_in]", "300"),
        ("poll[multiple]", "false"),
        ("local", "true"),
    ]


def test_pairs_may_repeat_as_given() -> None:
    assert query_pairs([("a", "1"), ("a", "2")]) == [("a", "1"), ("a", "2")]


@pytest.mark.parametrize("bad", [{"": "x"}, {"a": object()}, {"a": [[1]]}])
def test_what_cannot_be_sent_is_refused(bad: dict[str, object]) -> None:
    with pytest.raises(ConfigurationError):
        query_pairs(bad)


def test_form_and_json_bodies() -> None:
    form = form_body({"status": "hé & co", "media_ids": ["1", "2"]})
    assert form.content == b"status=h%C3%A9+%26+co&media_ids%5B%5D=1&media_ids%5B%5D=2"
    body = json_body({"status": "hé", "poll": None})
    assert body.content == '{"status":"hé","poll":null}'.encode()
    with pytest.raises(ConfigurationError):
        json_body({"x": {1, 2}})


def test_multipart_parses_back_with_fields_files_and_quoted_names() -> None:
    body = multipart_body(
        {"description": 'a "cat"\r\nnap'},
        {"file": ('we"ird\r\n.png', b"\x89PNG\x00\xff", "image/png")},
        boundary="b0undary",
    )
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
        f"Content-Type: {body.content_type}\r\n\r\n".encode() + body.content
    )
    parts = list(message.iter_parts())
    assert parts[0].get_payload(decode=True) == b'a "cat"\r\nnap'
    assert parts[1].get_filename() == "we%22ird%0D%0A.png"
    assert parts[1].get_content_type() == "image/png"
    assert parts[1].get_payload(decode=True) == b"\x89PNG\x00\xff"


def test_a_file_spec_must_be_bytes_or_a_tuple() -> None:
    with pytest.raises(ConfigurationError, match="file"):
        multipart_body(None, {"file": "cat.png"})  # type: ignore[dict-item]
    with pytest.raises(ConfigurationError, match="line break"):
        multipart_body(None, {"file": ("a", b"", "image/png\r\nX-Evil: 1")})


@pytest.mark.parametrize("name", ["Authorization", "HOST", "content-length", "Transfer-Encoding"])
def test_the_sessions_own_headers_are_refused(name: str) -> None:
    with pytest.raises(ConfigurationError, match=name):
        checked_headers({name: "x"})


def test_header_injection_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="line break"):
        checked_headers({"X-A": "1\r\nAuthorization: Bearer stolen"})
    assert checked_headers({"Idempotency-Key": "k"}) == {"Idempotency-Key": "k"}
