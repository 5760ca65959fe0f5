"""With the speedups extra, msgspec decodes a page strictly; any page it will not read goes the
tolerant way, so a page decodes to the same entities (or the same DecodeError) either way.
"""

from __future__ import annotations

import json
import typing
from datetime import UTC, datetime
from typing import Any

import attrs
import pytest
from hypothesis import find, given, settings
from hypothesis import strategies as st
from test_decode_agreement import ENTITIES, objects_of, right_value_for

from aiomasto import entities
from aiomasto._converter import _strict_list_decoder, decode_items, decode_json_list
from aiomasto.errors import DecodeError

pytest.importorskip("msgspec")

STRICT = [cls for cls in ENTITIES if _strict_list_decoder(cls) is not None]
# The guard below searches for pages, which is slow for deeply nested entities: it runs on the
# pages crawls and bots decode most, and on the flat shapes the nested ones are made of.
GUARDED = [
    cls
    for cls in STRICT
    if cls.__name__ in {"Account", "Relationship", "Status", "Tag", "Mention", "Application"}
]


def tolerant(cls: type, body: bytes) -> tuple[str, Any]:
    items: list[Any]
    try:
        items, _ = decode_items(cls, json.loads(body), skip_undecodable=False)
    except DecodeError:
        return "error", None
    return "value", items


def right_objects_of(cls: type) -> st.SearchStrategy[dict[str, Any]]:
    """Objects for ``cls`` whose every value is of the right JSON type (but not always valid:
    datetimes without a zone, date-only, unreadable; nested objects anything), keys optional.
    """
    hints = typing.get_type_hints(cls)
    fields = {a.name: right_value_for(hints[a.name], 1) for a in attrs.fields(cls)}
    required = [a.name for a in attrs.fields(cls) if a.default is attrs.NOTHING]
    return st.fixed_dictionaries(
        {name: fields[name] for name in required},
        optional={name: s for name, s in fields.items() if name not in required},
    )


def page_of(cls: type) -> st.SearchStrategy[bytes]:
    item = st.one_of(right_objects_of(cls), right_objects_of(cls), objects_of(cls, 1))
    return st.lists(item, min_size=1, max_size=2).map(lambda page: json.dumps(page).encode())


def test_the_pages_crawls_decode_have_a_strict_decoder() -> None:
    assert entities.Account in STRICT
    assert entities.Relationship in STRICT
    # "details" may hold other servers' shapes, which the tolerant path drops: never strict.
    assert entities.Error not in STRICT


@pytest.mark.parametrize("cls", STRICT, ids=lambda cls: cls.__name__)
@settings(max_examples=30, deadline=None)
@given(data=st.data())
def test_what_the_strict_decoder_reads_the_tolerant_path_reads_alike(
    cls: type, data: st.DataObject
) -> None:
    body = data.draw(page_of(cls), label="body")
    strict = _strict_list_decoder(cls)
    assert strict is not None
    items = strict(body)
    if items is not None:
        assert tolerant(cls, body) == ("value", items)
        assert repr(items) == repr(tolerant(cls, body)[1])  # time zones included


@pytest.mark.parametrize("cls", GUARDED, ids=lambda cls: cls.__name__)
def test_the_strict_decoder_reads_some_pages_and_leaves_others(cls: type) -> None:
    # A guard on the test above: it proves nothing if the strict decoder never reads a page.
    strict = _strict_list_decoder(cls)
    assert strict is not None
    quick = settings(max_examples=200, database=None, deadline=None)
    find(page_of(cls), lambda body: strict(body) is not None, settings=quick)
    find(page_of(cls), lambda body: strict(body) is None, settings=quick)


def account(**fields: Any) -> dict[str, Any]:
    return {"id": "1", "username": "alice", "acct": "alice", **fields}


@pytest.mark.parametrize(
    ("sent", "read"),
    [
        ("2024-05-06T07:08:09Z", datetime(2024, 5, 6, 7, 8, 9, tzinfo=UTC)),
        ("2024-05-06T07:08:09", datetime(2024, 5, 6, 7, 8, 9, tzinfo=UTC)),  # no zone: UTC
        ("2024-05-06t07:08:09z", datetime(2024, 5, 6, 7, 8, 9, tzinfo=UTC)),  # RFC 3339 allows
        ("2024-05-06T07:08:09.1234565Z", datetime(2024, 5, 6, 7, 8, 9, 123457, tzinfo=UTC)),
        ("2024-05-06T23:59:59.9999996Z", datetime(2024, 5, 7, tzinfo=UTC)),
        ("2024-05-06", datetime(2024, 5, 6, tzinfo=UTC)),  # a date: midnight
        (1715000000, datetime.fromtimestamp(1715000000, UTC)),  # Unix time
    ],
)
def test_a_datetime_reads_the_same_on_a_strict_and_a_tolerant_page(
    sent: Any, read: datetime
) -> None:
    plain = [account(created_at=sent)]
    # A null for a field with a default sends the second page the tolerant way.
    mixed = [account(created_at=sent), account(id="2", display_name=None)]
    for page in (plain, mixed):
        decoded = decode_json_list(entities.Account, json.dumps(page).encode())
        assert decoded[0].created_at == read
        assert decoded[0].created_at is not None
        assert decoded[0].created_at.utcoffset() is not None


def test_the_tolerance_rules_hold_with_the_strict_decoder_installed() -> None:
    page = [
        account(display_name=None, followers_count="12", last_status_at="2024-05-06T10:00:00Z"),
        account(id="2", unknown={"nested": [1]}, emojis=None),
    ]
    first, second = decode_json_list(entities.Account, json.dumps(page).encode())
    assert first.display_name == ""
    assert first.followers_count == 12
    assert first.last_status_at is not None
    assert first.last_status_at.isoformat() == "2024-05-06"
    assert second.emojis == ()


def test_a_page_the_strict_decoder_refuses_still_fails_with_the_item_and_field() -> None:
    page = [account(), account(id="2", followers_count="many")]
    with pytest.raises(DecodeError) as caught:
        decode_json_list(entities.Account, json.dumps(page).encode(), url="/api/v1/x")
    assert caught.value.index == 1
    assert caught.value.field == "[1].followers_count"
    assert caught.value.url == "/api/v1/x"
