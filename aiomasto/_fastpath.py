"""Specialised structure functions for the entities, registered as cattrs hooks.

cattrs' generated functions call one hook per field, and for ``X | None`` two; on a page of 80
accounts those calls cost about twice the ``json.loads`` of the same bytes. The functions made
here inline the checks for the JSON types the entities use (str, int, bool, datetime, date,
optional, tuples, nested entities) into one flat function per class, compiled once at import.

They read JSON exactly as cattrs does (tests/test_decode_agreement.py holds them to it): the
JSON key is the attribute's name, never its ``__init__`` alias; an absent key takes the default
(a factory is called, one taking ``self`` sees the fields before it); ``init=False`` fields are
never read; and a null where the field has a default and its type takes no ``None`` is read as
absent (the detailed converter wraps cattrs' functions to do the same). They raise on the first
problem without explaining it; the caller then asks the detailed converter which field failed.
Validators, converters and pre/post-init hooks are refused when the functions are built.
"""

from __future__ import annotations

import inspect
import typing
from collections.abc import Callable
from datetime import date, datetime
from types import NoneType, UnionType
from typing import Any, TypeVar

import attrs

__all__ = ["make_constructor", "make_structure_functions", "null_means_default"]

T = TypeVar("T")
Fallback = Callable[[Any, Any], Any]


def make_structure_functions(
    classes: typing.Iterable[type],
    *,
    scalars: dict[type, Fallback],
    fallback: Fallback,
    iso: tuple[Callable[[str], datetime], Callable[[str], date]],
) -> dict[type, Callable[[Any, Any], Any]]:
    """One structure function per attrs class, usable as a cattrs structure hook.

    ``scalars`` are the converter's own hooks for str, int, bool, datetime and date, and for
    ``list`` one that rejects a non-array; the fast path only calls them when the inline check
    fails (to convert or to raise). ``iso`` are the converter's parsers of an ISO 8601 datetime
    and of a ``YYYY-MM-DD`` date, called inline for a string (what the datetime and date hooks
    do first). Types the generator does not know are handed to ``fallback`` (the converter's
    ``structure``).
    """
    namespace: dict[str, Any] = {
        "_MISSING": _MISSING,
        "_fallback": fallback,
        "_new": object.__new__,
        "_iso_datetime": iso[0],
        "_iso_date": iso[1],
    }
    for kind, hook in scalars.items():
        namespace[f"_slow_{kind.__name__}"] = hook
    names = {cls: f"_s_{cls.__name__}" for cls in classes}
    functions: dict[type, Callable[[Any, Any], Any]] = {}
    for cls in classes:
        source = _function_source(cls, names, namespace)
        code = compile(source, f"<aiomasto structure {cls.__qualname__}>", "exec")
        exec(code, namespace)  # noqa: S102 - source built above from our own class definitions
        functions[cls] = namespace[names[cls]]
    return functions


class _Missing:
    def __repr__(self) -> str:
        return "MISSING"


_MISSING = _Missing()


def _function_source(cls: type, names: dict[type, str], namespace: dict[str, Any]) -> str:
    _check_plain(cls)
    hints = typing.get_type_hints(cls)
    prefix = cls.__name__
    namespace[f"_cls_{prefix}"] = cls
    fields = attrs.fields(cls)
    # Fields whose factory takes the half-built instance: it must see the fields before it set,
    # on an instance of its own class, so such a class fills its slots one by one, in order.
    late = {
        a.name: f"_default_{prefix}_{a.name}"
        for a in fields
        if isinstance(a.default, attrs.Factory) and a.default.takes_self  # type: ignore[arg-type]
    }
    lines = [f"def {names[cls]}(o, _=None):"]
    if late:
        target = "a_{}"
    else:
        # Each value goes straight into its slot of a builder instance (see _builder).
        target = "self.{}"
        namespace[f"_builder_{prefix}"] = _builder(cls)
        lines.append(f"    self = _new(_builder_{prefix})")
    for attribute in fields:
        name = attribute.name
        into = target.format(name)
        # cattrs reads the attribute's name as the JSON key, never its __init__ alias.
        key = name
        kind = hints[name]
        default = attribute.default
        local = f"_default_{prefix}_{name}"
        if isinstance(default, attrs.Factory):  # type: ignore[arg-type]
            namespace[local] = default.factory
            fallback = "_MISSING" if name in late else f"{local}()"
        else:
            namespace[local] = default
            fallback = local
        if not attribute.init:
            # cattrs never reads these: __init__ would set them from their default, if any.
            if default is not attrs.NOTHING:
                lines.append(f"    {into} = {fallback}")
            continue
        if default is attrs.NOTHING:
            lines.append(f"    v = o[{key!r}]")
            lines.append(f"    {into} = {_expression(kind, 'v', names, namespace)}")
            continue
        # A null where the type takes no None means "not sent": the default, as if absent.
        on_null = None if _accepts_none(kind) else fallback
        expression = _expression(kind, "v", names, namespace, on_null=on_null)
        if fallback == local and _passes_own_check(default, kind):
            # The default survives the type check, so absence needs no branch of its own.
            lines.append(f"    v = o.get({key!r}, {local})")
            lines.append(f"    {into} = {expression}")
        else:
            lines.append(f"    v = o.get({key!r}, _MISSING)")
            lines.append(f"    {into} = {fallback} if v is _MISSING else {expression}")
    if late:
        _fill_with_setters(cls, prefix, late, lines, namespace)
    else:
        # Only now, every slot filled, does the instance become a ``cls``.
        lines.append(f"    self.__class__ = _cls_{prefix}")
    lines.append("    return self")
    return "\n".join(lines) + "\n"


def _builder(cls: type) -> type:
    """A subclass of ``cls`` that fills its slots as plain Python stores.

    attrs' frozen ``__init__`` calls ``object.__setattr__`` once per field, and even the slots'
    own descriptors cost a call each: together half of the structuring. The builder has no
    slots of its own and ``object``'s ``__setattr__``, so a field is one slot store; once
    filled, the instance becomes a ``cls`` (the layout is the same, so CPython allows the
    ``__class__`` assignment) before anyone sees it. The entities have no validators,
    converters or post-init hooks that this would skip (checked in _check_plain).
    """
    body = {
        "__slots__": (),
        "__module__": cls.__module__,
        "__qualname__": f"_Building{cls.__qualname__}",
        "__doc__": f"Builds {cls.__name__} instances for the fast path; never handed out.",
        "__setattr__": object.__setattr__,
        # __delattr__ shares the type's setattr slot: attrs' one, inherited, would send every
        # store through a lookup of __setattr__ by name.
        "__delattr__": object.__delattr__,
    }
    return type(f"_Building{cls.__name__}", (cls,), body)


def make_constructor(cls: type[T]) -> Callable[..., T]:
    """A constructor of ``cls`` taking every field, in order (by position or by name).

    For objects built by the hundred thousand (a crawl's records and edges): it fills the
    slots as the structure functions do (:func:`_builder`), about four times faster than the
    frozen ``__init__``. Every field must be given, defaults included, so a field added to
    ``cls`` later cannot be left unset. The class must be one the fast path can fill (checked).

    >>> @attrs.frozen
    ... class Edge:
    ...     follower: str
    ...     followed: str
    >>> make_constructor(Edge)("a@x.example", followed="b@y.example")
    Edge(follower='a@x.example', followed='b@y.example')
    """
    _check_plain(cls)
    fields = attrs.fields(typing.cast(Any, cls))
    names = [a.name for a in fields if a.init]
    if len(names) != len(fields):
        raise TypeError(f"{cls.__name__} has init=False fields")
    namespace: dict[str, Any] = {"_new": object.__new__, "_builder": _builder(cls), "_cls": cls}
    lines = [f"def make_{cls.__name__}({', '.join(names)}):", "    self = _new(_builder)"]
    lines += [f"    self.{name} = {name}" for name in names]
    lines += ["    self.__class__ = _cls", "    return self"]
    source = "\n".join(lines) + "\n"
    exec(compile(source, f"<aiomasto constructor {cls.__qualname__}>", "exec"), namespace)  # noqa: S102 - source built above from the class's own fields
    constructor: Callable[..., T] = namespace[f"make_{cls.__name__}"]
    return constructor


def _fill_with_setters(
    cls: type, prefix: str, late: dict[str, str], lines: list[str], namespace: dict[str, Any]
) -> None:
    """Fill the slots of a new ``cls`` in order, one descriptor call each.

    A factory taking ``self`` sees the instance, of its own class, with the fields before it
    set, as attrs' ``__init__`` would hand it.
    """
    lines.append(f"    self = _new(_cls_{prefix})")
    for attribute in attrs.fields(cls):
        name = attribute.name
        if not attribute.init and attribute.default is attrs.NOTHING:
            continue  # left unset, as attrs' __init__ leaves it
        if name in late:
            lines.append(f"    if a_{name} is _MISSING:")
            lines.append(f"        a_{name} = {late[name]}(self)")
        setter = f"_set_{prefix}_{name}"
        namespace[setter] = inspect.getattr_static(cls, name).__set__
        lines.append(f"    {setter}(self, a_{name})")


def _check_plain(cls: type) -> None:
    if not getattr(cls, "__slots__", None) or hasattr(cls, "__attrs_post_init__"):
        raise TypeError(f"{cls.__name__} must be a slotted attrs class without post-init")
    if hasattr(cls, "__attrs_pre_init__"):
        raise TypeError(f"{cls.__name__} must be an attrs class without pre-init")
    for attribute in attrs.fields(cls):
        if attribute.validator is not None or attribute.converter is not None:
            raise TypeError(f"{cls.__name__}.{attribute.name} has a validator or converter")


def null_means_default(cls: type) -> frozenset[str]:
    """The fields of ``cls`` for which a JSON null stands for "not sent" (takes the default).

    Those with a default whose type does not take ``None``: where it does, null is a value.
    """
    hints = typing.get_type_hints(cls)
    return frozenset(
        attribute.name
        for attribute in attrs.fields(cls)
        if attribute.init
        and attribute.default is not attrs.NOTHING
        and not _accepts_none(hints[attribute.name])
    )


def _accepts_none(kind: Any) -> bool:
    return kind is Any or kind is NoneType or NoneType in typing.get_args(kind)


def _passes_own_check(default: Any, kind: Any) -> bool:
    if default is None:
        return NoneType in typing.get_args(kind)
    inner = [arg for arg in typing.get_args(kind) if arg is not NoneType] or [kind]
    return type(default) in (str, int, bool) and type(default) is inner[0]


def _expression(
    kind: Any,
    var: str,
    names: dict[type, str],
    namespace: dict[str, Any],
    *,
    on_null: str | None = None,
) -> str:
    """A Python expression that structures ``var`` into ``kind`` or raises.

    ``on_null`` is an expression for the value a JSON null takes instead of failing the type
    check; it is tested only where the fast check has already failed, so it costs nothing on
    the common path.
    """
    args = typing.get_args(kind)
    origin = typing.get_origin(kind)
    if origin in (UnionType, typing.Union) and NoneType in args:
        rest = [arg for arg in args if arg is not NoneType]
        inner = rest[0] if len(rest) == 1 else typing.Union[tuple(rest)]  # noqa: UP007
        return f"(None if {var} is None else {_expression(inner, var, names, namespace)})"
    slow = f"{_slow_call(kind, var, namespace)}"
    if on_null is not None:
        slow = f"({on_null} if {var} is None else {slow})"
    if origin is tuple and len(args) == 2 and args[1] is Ellipsis:
        if args[0] in names:
            # Profiles hold a few emojis, fields and roles: up to three are built as a tuple
            # display, more with map(), never through a comprehension's frame.
            f = names[args[0]]
            items = (
                f"(() if not (n := len({var})) else ({f}({var}[0]),) if n == 1 "
                f"else ({f}({var}[0]), {f}({var}[1])) if n == 2 "
                f"else ({f}({var}[0]), {f}({var}[1]), {f}({var}[2])) if n == 3 "
                f"else tuple(map({f}, {var})))"
            )
        else:
            items = f"tuple([{_expression(args[0], 'x', names, namespace)} for x in {var}])"
        return f"({items} if type({var}) is list else {slow})"
    if kind in names:
        call = f"{names[kind]}({var})"
        return call if on_null is None else f"({on_null} if {var} is None else {call})"
    if kind is str or kind is int:
        return f"({var} if type({var}) is {kind.__name__} else {slow})"
    if kind is bool:
        return f"({var} if ({var} is True or {var} is False) else {slow})"
    # A string is parsed inline, as the hooks would parse it; anything else (a Unix time, a
    # full datetime for a date, a wrong type) goes to the hook, which converts or raises.
    if kind is datetime:
        return f"(_iso_datetime({var}) if type({var}) is str else {slow})"
    if kind is date:
        return f"(_iso_date({var}) if type({var}) is str and len({var}) == 10 else {slow})"
    return slow


def _slow_call(kind: Any, var: str, namespace: dict[str, Any]) -> str:
    """The converter's own hook for ``kind``: it converts what it can and raises otherwise."""
    if typing.get_origin(kind) is tuple:
        return f"_slow_list({var}, list)"
    if kind in (str, int, bool, datetime, date):
        return f"_slow_{kind.__name__}({var}, None)"
    return f"_fallback({var}, {_ref(kind, namespace)})"


def _ref(kind: Any, namespace: dict[str, Any]) -> str:
    name = f"_type_{len(namespace)}"
    namespace[name] = kind
    return name
