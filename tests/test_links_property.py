"""Property-based tests for the Link header parser."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from aiomasto.pagination import parse_links, read_links

# URL references as servers send them: no '<', '>' or whitespace inside.
url_chars = st.characters(min_codepoint=33, max_codepoint=126, blacklist_characters="<>\"'")
urls = st.text(url_chars, min_size=1, max_size=60).map(lambda s: f"https://m.example/{s}")
rels = st.sampled_from(["next", "prev", "first", "last", "self", "alternate", "up"])
spaces = st.sampled_from(["", " ", "  ", "\t"])


@st.composite
def link_headers(draw: st.DrawFn) -> tuple[str, list[tuple[str, str]]]:
    entries = draw(st.lists(st.tuples(urls, rels), min_size=0, max_size=6))
    parts = []
    for url, rel in entries:
        quoted = draw(st.booleans())
        value = f'"{rel}"' if quoted else rel
        extra = draw(st.sampled_from(["", '; title="a, b; c"', "; type=text/html"]))
        trailing = draw(st.sampled_from(["", ";"]))
        before, after = draw(spaces), draw(spaces)
        if draw(st.booleans()):
            param = f"rel={value}{extra}"
        else:
            param = f"{extra.lstrip('; ')}; rel={value}" if extra else f"rel={value}"
        parts.append(f"{before}<{url}>;{after}{param}{trailing}")
    separator = draw(st.sampled_from([", ", ",", " , "]))
    return separator.join(parts), entries


@given(link_headers())
def test_each_rel_maps_to_its_first_url_whatever_the_order(
    case: tuple[str, list[tuple[str, str]]],
) -> None:
    header, entries = case
    expected: dict[str, str] = {}
    for url, rel in entries:
        expected.setdefault(rel, url)
    assert parse_links(header) == expected


@given(st.text(max_size=300))
def test_never_raises_on_arbitrary_text(header: str) -> None:
    links = parse_links(header)
    assert all(isinstance(k, str) and isinstance(v, str) and v for k, v in links.items())


@given(st.lists(st.tuples(urls, rels), max_size=5), st.text(max_size=40))
def test_garbage_after_valid_links_does_not_lose_them(
    entries: list[tuple[str, str]], garbage: str
) -> None:
    header = ", ".join(f'<{url}>; rel="{rel}"' for url, rel in entries)
    clean = garbage.replace("<", "").replace(">", "").replace('"', "")
    links = parse_links(f"{header}, {clean}" if header else clean)
    for url, rel in entries:
        if rel not in [r for _, r in entries[: entries.index((url, rel))]]:
            assert links[rel] == url


@st.composite
def headers_with_rel_less_links(draw: st.DrawFn) -> tuple[str, list[tuple[str, str | None]]]:
    """Link headers in which some links have no rel (or an empty one)."""
    entries = draw(st.lists(st.tuples(urls, st.none() | rels), min_size=1, max_size=6))
    parts = []
    for url, rel in entries:
        if rel is None:
            parts.append(f"<{url}>" + draw(st.sampled_from(["", ";", '; title="x"', '; rel=""'])))
        else:
            parts.append(f'<{url}>; rel="{rel}"')
    return ", ".join(parts), entries


@given(headers_with_rel_less_links())
def test_links_without_rel_are_counted_but_relate_to_nothing(
    case: tuple[str, list[tuple[str, str | None]]],
) -> None:
    header, entries = case
    expected: dict[str, str] = {}
    for url, rel in entries:
        if rel is not None:
            expected.setdefault(rel, url)
    links, count = read_links(header)
    assert links == expected == parse_links(header)
    assert count == len(entries)  # every link was read: the header is not broken
