"""One cattrs converter for every entity and stored record, built for the hot decode path.

A crawl decodes millions of accounts, so the fast converter skips cattrs' detailed validation
and structures the entities with flat functions generated once per class (``_fastpath``).
Primitive hooks check the JSON type (``null`` where a string belongs must not become
``"None"``; a null for a field with a default is read as absent). When the fast path fails,
the same data is structured again by a detailed twin converter purely to name the failing
field: errors are rare, so only they pay for the detail. A page that fails is decoded again
item by item, to name the item (and, when asked, to skip it).
"""

from __future__ import annotations

import functools
import json
import re
import typing
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from typing import Any, TypeVar

import attrs
import cattrs
from cattrs.errors import ClassValidationError, IterableValidationError
from cattrs.gen import make_dict_structure_fn

from . import entities
from ._fastpath import make_structure_functions, null_means_default
from .errors import DecodeError

__all__ = [
    "converter",
    "decode",
    "decode_items",
    "decode_json",
    "decode_json_items",
    "decode_json_list",
    "decode_list",
    "decode_page",
    "from_json",
    "to_json",
]

T = TypeVar("T")


class _WrongType(TypeError):
    pass


def _structure_str(value: Any, _: type) -> str:
    if type(value) is str:
        return value
    raise _WrongType(f"expected a string, got {_json_type(value)}")


def _structure_int(value: Any, _: type) -> int:
    if type(value) is int:
        return value
    # Some servers send counters as numeric strings; a number is still a number.
    if type(value) is str and value.lstrip("-").isdigit():
        return int(value)
    raise _WrongType(f"expected an integer, got {_json_type(value)}")


def _structure_bool(value: Any, _: type) -> bool:
    if value is True or value is False:
        return bool(value)
    raise _WrongType(f"expected a boolean, got {_json_type(value)}")


# A fraction of a second with more digits than the microseconds a datetime holds.
_LONG_FRACTION = re.compile(r"[.,]\d{6}(\d)")


@functools.lru_cache(maxsize=2048)
def _from_iso(text: str) -> datetime:
    # Cached: Mastodon sends account creation dates at midnight and last-status dates, which
    # repeat across a crawl; a dictionary hit is cheaper than parsing them again.
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        # RFC 3339 allows a lowercase "t" and "z"; Python 3.11 reads only capitals.
        parsed = datetime.fromisoformat(text.upper())
    # Python drops the digits past the microsecond; rounded instead, as the speedups' strict
    # decoder does, a value reads the same whichever path decodes it.
    longer = _LONG_FRACTION.search(text)
    if longer is not None and longer.group(1) >= "5":
        try:
            parsed += timedelta(microseconds=1)
        except OverflowError:
            raise ValueError(f"datetime out of range: {text[:40]!r}") from None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def _structure_datetime(value: Any, _: Any = None) -> datetime:
    """An API datetime: ISO 8601 with ``Z`` or an offset, or an integer Unix time."""
    if type(value) is str:
        try:
            return _from_iso(value)
        except ValueError:
            raise _WrongType(f"not an ISO 8601 datetime: {value[:40]!r}") from None
    if type(value) is int or type(value) is float:
        return datetime.fromtimestamp(value, UTC)
    raise _WrongType(f"expected a datetime, got {_json_type(value)}")


@functools.lru_cache(maxsize=2048)
def _date_from_iso(text: str) -> date:
    return date.fromisoformat(text)


def _structure_date(value: Any, _: type) -> date:
    # Mastodon sends "YYYY-MM-DD"; older servers and the docs' samples use a full datetime.
    if type(value) is str and len(value) == 10:
        try:
            return _date_from_iso(value)
        except ValueError:
            raise _WrongType(f"not an ISO 8601 date: {value!r}") from None
    return _structure_datetime(value).date()


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return f"a number ({value!r})"
    if isinstance(value, str):
        return f"a string ({value[:40]!r})"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


def _not_a_list(value: Any, _: type) -> Any:
    raise _WrongType(f"expected an array, got {_json_type(value)}")


def _is_homogeneous_tuple(kind: Any) -> bool:
    args: tuple[Any, ...] = typing.get_args(kind)
    return typing.get_origin(kind) is tuple and len(args) == 2 and args[1] is Ellipsis


_SCALARS: dict[type, Callable[[Any, Any], Any]] = {
    str: _structure_str,
    int: _structure_int,
    bool: _structure_bool,
    datetime: _structure_datetime,
    date: _structure_date,
    list: _not_a_list,
}

# What the datetime and date hooks parse a string with, for the fast path to call inline.
_ISO = (_from_iso, _date_from_iso)

# Every entity class gets a flat structure function; a new entity cannot be forgotten here.
_ENTITIES = tuple(getattr(entities, name) for name in entities.__all__)


_ERROR_DETAILS = typing.get_type_hints(entities.Error)["details"]


def _make_converter(*, detailed: bool) -> cattrs.Converter:
    conv = cattrs.Converter(detailed_validation=detailed, forbid_extra_keys=False)
    for kind, hook in _SCALARS.items():
        if kind is not list:
            conv.register_structure_hook(kind, hook)

    def structure_array(value: Any, kind: Any) -> Any:
        # A JSON string is iterable too; only an array may become a tuple.
        if type(value) is not list:
            return _not_a_list(value, kind)
        return conv._structure_tuple(value, kind)  # cattrs' own, with detailed paths

    conv.register_structure_hook_func(_is_homogeneous_tuple, structure_array)

    def structure_details(value: Any, _: Any) -> dict[str, tuple[entities.ErrorDetail, ...]]:
        # Servers other than Mastodon put other shapes under "details"; what does not read as
        # field -> reasons is left out, so an error body never fails over its details.
        details: dict[str, tuple[entities.ErrorDetail, ...]] = {}
        if type(value) is not dict:
            return details
        for name, reasons in value.items():
            if type(reasons) is list:
                read = tuple(r for r in map(read_detail, reasons) if r is not None)
                if read:
                    details[name] = read
        return details

    def read_detail(value: Any) -> entities.ErrorDetail | None:
        try:
            detail: entities.ErrorDetail = conv.structure(value, entities.ErrorDetail)
        except Exception:
            return None
        return detail

    conv.register_structure_hook_func(lambda kind: kind == _ERROR_DETAILS, structure_details)
    if detailed:
        # The fast converter gets the generated functions of _fastpath for the entities; this
        # twin keeps cattrs' own, wrapped to read objects the same way.
        conv.register_structure_hook_factory(attrs.has, lambda cls: _read_as_fast(cls, conv))
    conv.register_unstructure_hook(datetime, datetime.isoformat)
    conv.register_unstructure_hook(date, date.isoformat)
    return conv


def _read_as_fast(cls: type[Any], conv: cattrs.Converter) -> Callable[[Any, Any], Any]:
    """cattrs' structure function for ``cls``, reading JSON as the fast path does.

    Only a JSON object becomes an entity (cattrs alone would test ``"key" in "a string"``), and
    a null where a field with a default takes no ``None`` is read as absent.
    """
    structure = make_dict_structure_fn(cls, conv)
    nullable = null_means_default(cls)

    def read(value: Any, kind: Any) -> Any:
        if type(value) is not dict:
            # Only the JSON type: a value in a message could be anything, a secret included.
            got = _json_type(value).split(" (", 1)[0]
            raise _WrongType(f"expected an object, got {got}")
        if nullable:
            value = {k: v for k, v in value.items() if v is not None or k not in nullable}
        return structure(value, kind)

    return read


def _pick_json_loads() -> Callable[[bytes], Any]:
    """orjson when the ``speedups`` extra is installed (about 3x faster), else the stdlib."""
    try:
        import orjson
    except ImportError:
        return json.loads
    return orjson.loads


_json_loads = _pick_json_loads()


def _pick_msgspec() -> Any:
    """msgspec when the ``speedups`` extra is installed: it decodes JSON straight into entities."""
    try:
        import msgspec
    except ImportError:
        return None
    return msgspec


_msgspec = _pick_msgspec()

StrictDecoder = Callable[[bytes], list[Any] | None]


_STRICT: dict[type, StrictDecoder | None] = {}


def _strict_list_decoder(cls: type) -> StrictDecoder | None:
    """The strict decoder for ``cls`` (:func:`_make_strict_list_decoder`), made once."""
    try:
        return _STRICT[cls]
    except KeyError:
        decoder = _STRICT[cls] = _make_strict_list_decoder(cls)
        return decoder


def _make_strict_list_decoder(cls: type) -> StrictDecoder | None:
    """A decoder of a JSON array body into ``cls`` items that reads only what is plainly right.

    msgspec parses the bytes straight into the entities, about twice as fast as parsing and
    structuring. It is strict where the tolerant path is lenient (a null for a field with a
    default, a numeric string for a count, a date where a datetime belongs, another server's
    odd shape): it then returns ``None`` and the page is decoded again the tolerant way, which
    keeps every rule and every :class:`DecodeError`. Where both succeed they agree: the one
    difference, a datetime without a zone (read as UTC by the tolerant path), sends the page
    the tolerant way too. ``None`` without msgspec, or for a class with a field it cannot read
    as the tolerant path does (a mapping, for one).
    """
    if _msgspec is None or not _plain(cls, set()):
        return None
    decoder = _msgspec.json.Decoder(list[cls])  # type: ignore[valid-type]
    naive = _naive_finder(cls)
    failures = (_msgspec.DecodeError, RecursionError, ValueError, TypeError)

    def decode(body: bytes) -> list[Any] | None:
        try:
            items: list[Any] = decoder.decode(body)
        except failures:
            return None
        if naive is not None and any(map(naive, items)):
            return None
        return items

    return decode


def _field_types(cls: type) -> list[tuple[str, Any]]:
    hints = typing.get_type_hints(cls)
    return [(a.name, hints[a.name]) for a in attrs.fields(cls)]


def _without_none(kind: Any) -> Any:
    args = typing.get_args(kind)
    if type(None) in args:
        rest = [arg for arg in args if arg is not type(None)]
        return rest[0] if len(rest) == 1 else None
    return kind


def _plain(kind: Any, seen: set[type]) -> bool:
    """Whether msgspec reads ``kind`` exactly as the fast path does, where it reads it at all."""
    kind = _without_none(kind)
    if kind in (str, int, bool, datetime, date):
        return True
    if _is_homogeneous_tuple(kind):
        return _plain(typing.get_args(kind)[0], seen)
    if isinstance(kind, type) and attrs.has(kind):
        if kind in seen:
            return True
        seen.add(kind)
        plain_fields = all(
            a.init and not isinstance(a.default, attrs.Factory)  # type: ignore[arg-type]
            for a in attrs.fields(kind)
        )
        return plain_fields and all(_plain(sub, seen) for _, sub in _field_types(kind))
    return False


def _naive_finder(cls: type) -> Callable[[Any], bool] | None:
    """A function telling whether an entity holds a datetime without a zone, anywhere in it.

    Generated flat, like the fast path's functions, since it runs on every item of a page;
    ``None`` when ``cls`` holds no datetime at all.
    """
    namespace: dict[str, Any] = {}
    lines: list[str] = []
    pending, done = [cls], set()
    while pending:
        current = pending.pop()
        if current in done:
            continue
        done.add(current)
        body = []
        for name, kind in _field_types(current):
            kind = _without_none(kind)
            inner = typing.get_args(kind)[0] if _is_homogeneous_tuple(kind) else kind
            if inner is datetime:
                body.append(f"    v = o.{name}")
                body.append("    if v is not None and v.tzinfo is None: return True")
            elif isinstance(inner, type) and attrs.has(inner) and _holds_datetime(inner, set()):
                pending.append(inner)
                check = f"_naive_{inner.__name__}"
                if inner is kind:
                    body.append(f"    v = o.{name}")
                    body.append(f"    if v is not None and {check}(v): return True")
                else:
                    body.append(f"    for v in o.{name}:")
                    body.append(f"        if {check}(v): return True")
        lines += [f"def _naive_{current.__name__}(o):", *body, "    return False"]
    if not _holds_datetime(cls, set()):
        return None
    exec(compile("\n".join(lines) + "\n", "<aiomasto naive datetimes>", "exec"), namespace)  # noqa: S102 - source built above from our own classes
    finder: Callable[[Any], bool] = namespace[f"_naive_{cls.__name__}"]
    return finder


def _holds_datetime(cls: type, seen: set[type]) -> bool:
    seen.add(cls)
    for _, kind in _field_types(cls):
        kind = _without_none(kind)
        inner = typing.get_args(kind)[0] if _is_homogeneous_tuple(kind) else kind
        if inner is datetime:
            return True
        nested = isinstance(inner, type) and attrs.has(inner) and inner not in seen
        if nested and _holds_datetime(inner, seen):
            return True
    return False


converter = _make_converter(detailed=False)
"""The converter for entities and stored records (unstructure with it too)."""


def register_fast(classes: typing.Iterable[type]) -> None:
    """Give attrs classes of our own the fast path's structure functions, as the entities have.

    The classes (and the attrs classes their fields name) are read by the same rules as the
    entities, on every path: the fast one, the detailed one that explains a failure, and the
    speedups' strict decoder.
    """
    for cls, hook in make_structure_functions(
        classes, scalars=_SCALARS, fallback=converter.structure, iso=_ISO
    ).items():
        converter.register_structure_hook(cls, hook)


register_fast(_ENTITIES)

_detailed = _make_converter(detailed=True)


def _explain(cls: type[Any], data: Any) -> tuple[str | None, str]:
    """Structure ``data`` with the detailed converter to learn which field failed and why."""
    try:
        _detailed.structure(data, cls)
    except (ClassValidationError, IterableValidationError) as exc:
        path, cause = _first_leaf(exc, "")
        return path or None, _describe(cause)
    except Exception as exc:  # the fast path failed, so the detailed one should too
        return None, _describe(exc)
    return None, "the data does not match the entity"


def _first_leaf(exc: BaseException, path: str) -> tuple[str, BaseException]:
    # A loop, not recursion: a deep `moved` chain nests the errors as deep as the data.
    while isinstance(exc, ClassValidationError | IterableValidationError):
        with_notes, _ = exc.group_exceptions()
        if with_notes:
            sub, note = with_notes[0]
            name = getattr(note, "name", None)
            index = getattr(note, "index", None)
            path += f".{name}" if name is not None else f"[{index}]" if index is not None else ""
            exc = sub
        elif exc.exceptions:
            exc = exc.exceptions[0]
        else:
            break
    return path, exc


def _describe(exc: BaseException) -> str:
    if isinstance(exc, KeyError):
        return "required field missing"
    if isinstance(exc, _WrongType):
        return str(exc)
    if isinstance(exc, RecursionError):
        return "nested too deeply"
    if isinstance(exc, TypeError | AttributeError) and "NoneType" in str(exc):
        return "unexpected null"
    return f"{type(exc).__name__}: {exc}"


def _fail(cls: type[Any], data: Any, context: dict[str, Any]) -> DecodeError:
    field, why = _explain(cls, data)
    return DecodeError(why, entity=cls.__name__, field=(field or "").lstrip(".") or None, **context)


def _fail_item(cls: type[Any], item: Any, index: int, context: dict[str, Any]) -> DecodeError:
    field, why = _explain(cls, item)
    return DecodeError(
        why, entity=cls.__name__, field=f"[{index}]{field or ''}", index=index, **context
    )


def decode(cls: type[T], data: Any, **context: Any) -> T:
    """Structure one JSON object into ``cls``; a bad shape raises :class:`DecodeError`."""
    if type(data) is not dict:
        raise DecodeError(
            f"expected a JSON object, got {_json_type(data)}", entity=cls.__name__, **context
        )
    try:
        return converter.structure(data, cls)
    except Exception:  # noqa: S110 - explained below, outside the handler
        pass
    # Raised outside the handler: the exception being handled would stay attached as
    # __context__, and it may quote the data (a token answer holds a secret).
    raise _fail(cls, data, context)


def decode_list(cls: type[T], data: Any, **context: Any) -> list[T]:
    """Structure a JSON array of objects into a list of ``cls``.

    An item that cannot be decoded raises :class:`DecodeError` with its ``index``.
    """
    items, _ = decode_items(cls, data, skip_undecodable=False, **context)
    return items


def decode_items(
    cls: type[T], data: Any, *, skip_undecodable: bool, **context: Any
) -> tuple[list[T], tuple[DecodeError, ...]]:
    """Structure a JSON array into ``cls`` items, and the errors of those left out.

    With ``skip_undecodable`` an item that cannot be decoded is left out and its
    :class:`DecodeError` returned instead; otherwise the first one is raised. Either way a
    page is first decoded whole, in one pass; only a failure goes back item by item.
    """
    return _decode_items(cls, data, skip_undecodable, lambda: context)


def _decode_items(
    cls: type[T], data: Any, skip_undecodable: bool, context: Callable[[], dict[str, Any]]
) -> tuple[list[T], tuple[DecodeError, ...]]:
    """:func:`decode_items`, asking for the errors' ``context`` only if one is made."""
    if type(data) is not list:
        raise DecodeError(
            f"expected a JSON array, got {_json_type(data)}", entity=cls.__name__, **context()
        )
    hook: Callable[[Any, type[T]], T] = converter.get_structure_hook(cls)
    try:
        return [hook(item, cls) for item in data], ()
    except Exception:  # noqa: S110 - the item-by-item pass names the item and field
        pass
    return _decode_each(cls, data, hook, skip_undecodable, context())


def _decode_each(
    cls: type[T],
    data: list[Any],
    hook: Callable[[Any, type[T]], T],
    skip_undecodable: bool,
    context: dict[str, Any],
) -> tuple[list[T], tuple[DecodeError, ...]]:
    items: list[T] = []
    skipped: list[DecodeError] = []
    for index, item in enumerate(data):
        try:
            items.append(hook(item, cls))
            continue
        except Exception:  # noqa: S110 - explained below, outside the handler
            pass
        problem = _fail_item(cls, item, index, context)
        if not skip_undecodable:
            raise problem  # outside the handler: no __context__ quoting the item
        skipped.append(problem)
    return items, tuple(skipped)


def loads(body: bytes, entity: str, **context: Any) -> Any:
    """Parse a JSON body; malformed, truncated or non-UTF-8 bodies raise :class:`DecodeError`."""
    try:
        return _json_loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        # orjson refuses more than 1024 levels of nesting with a ValueError; the stdlib's
        # parser recurses until Python's recursion limit stops it.
        if isinstance(exc, RecursionError) or "depth limit" in str(exc):
            reason = "JSON nested too deeply"
        elif not body.strip():
            reason = "empty body"
        else:
            reason = f"invalid or truncated JSON ({exc})"
    # Raised outside the handler: the parser's exception keeps the whole body (``doc``), and
    # as __context__ it would show a token answer to any traceback printer.
    excerpt = body[:120].decode("utf-8", "replace")
    raise DecodeError(reason, entity=entity, body_excerpt=excerpt, **context)


def decode_json(cls: type[T], body: bytes, **context: Any) -> T:
    """Parse and structure a JSON object body."""
    return decode(cls, loads(body, cls.__name__, **context), **context)


def decode_json_list(cls: type[T], body: bytes, **context: Any) -> list[T]:
    """Parse and structure a JSON array body."""
    items, _ = decode_json_items(cls, body, skip_undecodable=False, **context)
    return items


def decode_json_items(
    cls: type[T], body: bytes, *, skip_undecodable: bool, **context: Any
) -> tuple[list[T], tuple[DecodeError, ...]]:
    """Parse a JSON array body and structure it as :func:`decode_items` does.

    With the ``speedups`` extra a page that is plainly right is decoded by msgspec in one
    pass; any other page goes the tolerant way (see :func:`_make_strict_list_decoder`).
    """
    return decode_page(cls, body, skip_undecodable=skip_undecodable, context=lambda: context)


def decode_page(
    cls: type[T], body: bytes, *, skip_undecodable: bool, context: Callable[[], dict[str, Any]]
) -> tuple[list[T], tuple[DecodeError, ...]]:
    """:func:`decode_json_items`, asking for the errors' ``context`` only if one is made."""
    strict = _strict_list_decoder(cls)
    if strict is not None:
        items = strict(body)
        if items is not None:
            return items, ()
    try:
        data, parsed = _json_loads(body), True
    except Exception:  # parsed again below, outside the handler, for its DecodeError
        data, parsed = None, False
    if not parsed:
        data = loads(body, cls.__name__, **context())
    return _decode_items(cls, data, skip_undecodable, context)


def _as_json(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _as_json(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_as_json(item) for item in value]
    return value


def to_json(entity: Any) -> Any:
    """An entity as JSON data (dicts, lists, strings, numbers, booleans, ``None``), the
    shape the API sends: :func:`from_json` reads it back into an equal entity.

    Datetimes become ISO 8601 text. Secrets are included (a :class:`Token` keeps its
    ``access_token``): store the result as carefully as the entity.

    Example::

        text = json.dumps(aiomasto.to_json(status))
        assert aiomasto.from_json(Status, json.loads(text)) == status
    """
    return _as_json(converter.unstructure(entity))


def from_json(cls: type[T], data: Any) -> T:
    """Read JSON data (parsed, not bytes) into ``cls``, tolerantly, as responses are read;
    a bad shape raises :class:`DecodeError` naming the field.

    Example::

        status = aiomasto.from_json(Status, json.loads(saved))
    """
    return decode(cls, data)
