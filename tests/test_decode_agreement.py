"""The decode fast path (``_fastpath``) and cattrs' own detailed converter read JSON alike.

The fast path decodes every page; cattrs' converter only explains failures. If they disagreed,
a payload could decode to different values depending on the path, or fail with no explanation.
"""

from __future__ import annotations

import typing
from collections.abc import Mapping
from datetime import UTC, date, datetime, timedelta
from typing import Any

import attrs
import pytest
from attrs import field, frozen
from hypothesis import find, given, settings
from hypothesis import strategies as st

from aiomasto import entities
from aiomasto._converter import _ISO, _SCALARS, _detailed, converter, decode
from aiomasto._fastpath import make_constructor, make_structure_functions
from aiomasto.crawl._model import ListedAccount, MovedAccount
from aiomasto.errors import DecodeError

# The crawl's ListedAccount is read by the same fast path (registered by aiomasto.crawl).
ENTITIES = [getattr(entities, name) for name in entities.__all__] + [ListedAccount, MovedAccount]


def outcome(structure: Any, payload: Any, cls: type) -> tuple[str, Any]:
    try:
        return "value", structure(payload, cls)
    except Exception:  # which exception does not matter here, only that both fail
        return "error", None


# -- payloads near the schema -----------------------------------------------------------------

junk = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=6),
    st.just([]),
    st.just({}),
    st.lists(st.integers(), max_size=2),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
)
numeric_strings = st.integers(min_value=-(10**9), max_value=10**12).map(str)
aware = st.datetimes(
    min_value=datetime(1970, 1, 2),
    max_value=datetime(2200, 1, 1),
    timezones=st.sampled_from([UTC, None]),
)
datetime_texts = st.one_of(
    aware.map(datetime.isoformat),
    aware.map(lambda d: d.replace(tzinfo=None).isoformat(timespec="milliseconds") + "Z"),
    st.dates(min_value=date(1970, 1, 2)).map(date.isoformat),  # date-only
    st.sampled_from(["", "yesterday", "2024-13-01", "2024-02-30T00:00:00Z", "0"]),
)
timestamps = st.one_of(
    st.integers(min_value=0, max_value=2**33),
    st.floats(min_value=-1e12, max_value=1e12, allow_nan=False),
)


def value_for(kind: Any, depth: int) -> st.SearchStrategy[Any]:
    """A JSON value for a field of type ``kind``: mostly the right type, sometimes not."""
    return st.one_of(right_value_for(kind, depth), st.none(), junk)


def right_value_for(kind: Any, depth: int) -> st.SearchStrategy[Any]:
    args = typing.get_args(kind)
    if typing.get_origin(kind) in (typing.Union, type(int | None)):
        return st.one_of(*(right_value_for(a, depth) for a in args if a is not type(None)))
    if typing.get_origin(kind) is tuple:
        return st.lists(value_for(args[0], depth), max_size=3)
    if typing.get_origin(kind) in (dict, Mapping):
        return st.dictionaries(st.text(max_size=4), value_for(args[1], depth), max_size=3)
    if attrs.has(kind):
        return objects_of(kind, depth - 1) if depth > 0 else st.just({})
    simple: dict[Any, st.SearchStrategy[Any]] = {
        str: st.one_of(st.text(max_size=8), numeric_strings),
        int: st.one_of(st.integers(min_value=-(2**64), max_value=2**64), numeric_strings),
        bool: st.booleans(),
        datetime: st.one_of(datetime_texts, timestamps),
        date: st.one_of(datetime_texts, timestamps),
    }
    return simple[kind]


def objects_of(cls: type, depth: int = 2) -> st.SearchStrategy[Any]:
    """JSON objects for ``cls``: keys present or missing, nulls, wrong types, extra keys."""
    hints = typing.get_type_hints(cls)
    fields = {a.name: value_for(hints[a.name], depth) for a in attrs.fields(cls)}
    required = [a.name for a in attrs.fields(cls) if a.default is attrs.NOTHING]
    complete = st.fixed_dictionaries(
        {name: fields[name] for name in required},
        optional={name: s for name, s in fields.items() if name not in required},
    )
    anything_missing = st.fixed_dictionaries({}, optional=fields)
    extra = st.dictionaries(st.text(max_size=6), junk, max_size=2)
    return st.builds(lambda a, b: {**b, **a}, st.one_of(complete, anything_missing), extra)


@pytest.mark.parametrize("cls", ENTITIES, ids=lambda cls: cls.__name__)
@settings(max_examples=50, deadline=None)
@given(data=st.data())
def test_fast_path_and_cattrs_agree_on_every_entity(cls: type, data: st.DataObject) -> None:
    payload = data.draw(st.one_of(objects_of(cls), junk), label="payload")
    fast = outcome(converter.structure, payload, cls)
    detailed = outcome(_detailed.structure, payload, cls)
    assert fast == detailed


@pytest.mark.parametrize("cls", ENTITIES, ids=lambda cls: cls.__name__)
@pytest.mark.parametrize("result", ["value", "error"])
def test_the_payloads_both_decode_and_fail_for_every_entity(cls: type, result: str) -> None:
    # A guard on the test above: it proves nothing if one outcome is never generated.
    def gives(payload: Any) -> bool:
        return outcome(_detailed.structure, payload, cls)[0] == result

    find(objects_of(cls), gives, settings=settings(max_examples=500, database=None, deadline=None))


# -- attrs features the entities may grow: throwaway classes ---------------------------------


def structure_both(cls: type, payload: dict[str, Any]) -> tuple[Any, Any]:
    fast = make_structure_functions(
        [cls], scalars=_SCALARS, fallback=converter.structure, iso=_ISO
    )[cls]
    return fast(payload, cls), _detailed.structure(payload, cls)


def test_a_factory_default_is_called_not_stored() -> None:
    @frozen(kw_only=True)
    class Tagged:
        id: str
        tags: list[str] = field(factory=list)
        seen: tuple[str, ...] = attrs.Factory(tuple)

    fast, slow = structure_both(Tagged, {"id": "1"})
    assert fast == slow == Tagged(id="1", tags=[], seen=())
    again, _ = structure_both(Tagged, {"id": "2"})
    assert again.tags is not fast.tags  # a fresh list each time, as attrs' __init__ makes
    fast, slow = structure_both(Tagged, {"id": "1", "tags": None, "seen": None})
    assert fast == slow == Tagged(id="1")


def test_a_factory_that_takes_self_sees_the_fields_before_it() -> None:
    @frozen(kw_only=True)
    class Named:
        name: str
        label: str = field(default=attrs.Factory(lambda s: s.name.upper(), takes_self=True))

    fast, slow = structure_both(Named, {"name": "ab"})
    assert fast == slow == Named(name="ab", label="AB")
    fast, slow = structure_both(Named, {"name": "ab", "label": "x"})
    assert fast == slow == Named(name="ab", label="x")


def test_the_json_key_is_the_field_name_not_the_alias() -> None:
    @frozen(kw_only=True)
    class Aliased:
        id: str = field(alias="ident")
        _secret: str = "none"
        count: int = field(default=0, alias="n")

    payload = {"id": "1", "ident": "2", "_secret": "s", "secret": "t", "count": 3, "n": 4}
    fast, slow = structure_both(Aliased, payload)
    assert fast == slow == Aliased(ident="1", secret="s", n=3)
    with pytest.raises(KeyError):
        structure_both(Aliased, {"ident": "1"})


def test_init_false_fields_are_never_read_and_take_their_default() -> None:
    @frozen(kw_only=True)
    class Computed:
        id: str
        kind: str = field(init=False, default="account")
        stamp: tuple[int, ...] = field(init=False, factory=tuple)

    fast, slow = structure_both(Computed, {"id": "1", "kind": "other", "stamp": [1]})
    assert fast == slow == Computed(id="1")
    assert fast.kind == "account"
    assert fast.stamp == ()


def test_an_init_false_field_without_default_stays_unset_as_with_attrs() -> None:
    @frozen(kw_only=True)
    class Later:
        id: str
        cache: int = field(init=False)

    fast, slow = structure_both(Later, {"id": "1", "cache": 5})
    assert fast.id == slow.id == "1"
    for decoded in (fast, slow):
        with pytest.raises(AttributeError):
            _ = decoded.cache


def test_classes_the_fast_path_cannot_fill_are_refused_when_it_is_built() -> None:
    @frozen(kw_only=True)
    class Checked:
        when: datetime = field(validator=attrs.validators.instance_of(datetime))

    @attrs.define(kw_only=True, frozen=True)
    class PostInit:
        id: str

        def __attrs_post_init__(self) -> None:
            pass

    for cls in (Checked, PostInit):
        with pytest.raises(TypeError, match=cls.__name__):
            make_structure_functions(
                [cls], scalars=_SCALARS, fallback=converter.structure, iso=_ISO
            )


def test_datetimes_within_a_day_agree_either_way() -> None:
    # A date-only value where a datetime belongs is midnight UTC on both paths.
    payload = {"access_token": "t", "created_at": "2024-05-06"}
    fast = converter.structure(payload, entities.Token)
    assert fast == _detailed.structure(payload, entities.Token)
    assert fast.created_at is not None
    assert fast.created_at - datetime(2024, 5, 6, tzinfo=UTC) == timedelta(0)


def test_fast_path_entities_are_of_their_own_class_and_stay_frozen() -> None:
    # The fast path fills the slots through a builder subclass, then hands out the class itself.
    payload = {
        "id": "1",
        "username": "alice",
        "acct": "alice",
        "created_at": "2024-05-06T07:08:09.123Z",
        "last_status_at": "2024-05-07",
        "emojis": [{"shortcode": "blob", "url": "https://example.social/e.png"}],
        "fields": [{"name": "Web", "value": "x", "verified_at": None}],
        "moved": {"id": "2", "username": "alice2", "acct": "alice2@other.example"},
    }
    fast = converter.structure(payload, entities.Account)
    assert fast == _detailed.structure(payload, entities.Account)
    for entity in (fast, fast.moved, fast.emojis[0], fast.fields[0]):
        assert type(entity) in (entities.Account, entities.CustomEmoji, entities.Field)
        assert type(entity).__name__ in repr(entity)
    assert hash(fast) == hash(_detailed.structure(payload, entities.Account))
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        fast.username = "mallory"  # type: ignore[misc]
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        del fast.emojis[0].url
    assert fast.username == "alice"
    assert attrs.evolve(fast, display_name="A").display_name == "A"


def test_a_fast_constructor_builds_the_class_itself_and_wants_every_field() -> None:
    @frozen(kw_only=True)
    class Pair:
        left: str
        right: int = 0

    make = make_constructor(Pair)
    built = make("a", right=2)
    assert type(built) is Pair
    assert built == Pair(left="a", right=2)
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        built.left = "b"  # type: ignore[misc]
    with pytest.raises(TypeError):
        make("a")  # a default is no excuse: a field added later must not go unset

    @frozen
    class Checked:
        id: str = field(validator=attrs.validators.instance_of(str))

    with pytest.raises(TypeError, match="Checked"):
        make_constructor(Checked)


@pytest.mark.parametrize("count", [0, 1, 2, 3, 4, 7])
def test_nested_entities_agree_however_many(count: int) -> None:
    # The fast path builds up to three nested entities as a tuple display, more with map().
    emojis = [{"shortcode": f"e{n}", "url": f"https://a.example/{n}.png"} for n in range(count)]
    payload = {"id": "1", "username": "a", "acct": "a", "emojis": emojis}
    fast = converter.structure(payload, entities.Account)
    assert fast == _detailed.structure(payload, entities.Account)
    assert [emoji.shortcode for emoji in fast.emojis] == [f"e{n}" for n in range(count)]
    broken = {**payload, "emojis": [*emojis, {"shortcode": "x"}]}  # no url
    with pytest.raises(DecodeError) as raised:
        decode(entities.Account, broken)
    assert raised.value.field == f"emojis[{count}].url"
