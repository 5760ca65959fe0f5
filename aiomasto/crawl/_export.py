"""Write a crawl's results as files other tools read: JSON lines, CSV, GraphML, an edge list."""

from __future__ import annotations

import asyncio
import contextlib
import csv
import json
import os
import re
import tempfile
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any, Literal, get_args

from aiomasto.errors import ConfigurationError, CrawlSinkError

from ._sqlite import _ACCOUNT_FIELDS, SqliteCrawlSink

__all__ = ["EXPORT_KINDS", "ExportKind", "export"]

ExportKind = Literal["jsonl", "csv", "graphml", "edgelist"]
EXPORT_KINDS: tuple[ExportKind, ...] = get_args(ExportKind)

_EDGES = "SELECT follower, followed FROM edges ORDER BY follower, followed"
_ACCOUNTS = "SELECT " + _ACCOUNT_FIELDS + " FROM accounts ORDER BY key"  # noqa: S608
_ACCOUNT_HEADER = tuple(name.strip().strip('"') for name in _ACCOUNT_FIELDS.split(","))
_BOOLEANS = frozenset({"bot", "locked", "group", "suspended"})
_COUNTS = ("followers_count", "following_count", "statuses_count")
# A spreadsheet runs a cell that starts with one of these as a formula (OWASP's list).
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
# What XML 1.0 cannot hold at all, even escaped: C0 controls but tab, newline and carriage
# return; lone surrogates; U+FFFE and U+FFFF.
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")
# What would split or end a pair in a whitespace-separated edge list, or start a comment.
_NOT_EDGELIST = re.compile(r"[\s%#\x00-\x1f\x7f\ud800-\udfff]")


async def export(
    sink_or_path: SqliteCrawlSink | str | os.PathLike[str],
    kind: ExportKind,
    out_path: str | os.PathLike[str],
) -> tuple[Path, ...]:
    """Write a crawl's edges and accounts to ``out_path``; returns the files written.

    ``kind`` picks the format:

    - ``"jsonl"``: ``out_path`` is a directory (created if missing) that gets ``edges.jsonl``
      (``{"follower": ..., "followed": ...}`` per line) and ``accounts.jsonl`` (every
      account field and ``updated_at`` per line).
    - ``"csv"``: the same directory layout, ``edges.csv`` and ``accounts.csv``, each with a
      header row and RFC 4180 quoting (UTF-8, CRLF line ends). A text cell that starts with
      ``=``, ``+``, ``-``, ``@``, a tab or a carriage return gets a ``'`` in front, so a
      spreadsheet shows it instead of running it as a formula; numbers are written as they are.
    - ``"graphml"``: one GraphML file: a node per account (its key as the id; ``acct``,
      ``display_name``, ``url``, ``bot``, ``locked`` and the three counts as data), a node with
      no data for an account seen only in edges, and a directed edge follower → followed.
      Characters XML cannot hold (control characters, lone surrogates) become U+FFFD.
    - ``"edgelist"``: one file, a ``follower followed`` pair per line (what ``networkx``'s
      ``read_edgelist`` and most graph tools read). Whitespace, ``#`` and ``%`` in a key
      (which a real handle never holds) are percent-encoded.

    Every file is written to a temporary file beside it and renamed into place when complete
    (so a reader never sees half a file, and a failed or cancelled export leaves the old one),
    is private (0600) like the database, and is streamed: memory stays flat for millions of
    edges. ``sink_or_path`` is a :class:`SqliteCrawlSink` or its file; a crawl may be running
    on it meanwhile (the export reads one consistent snapshot of each table).

    Example::

        await export("crawl.sqlite", "csv", "crawl-csv")        # crawl-csv/edges.csv, ...
        await export("crawl.sqlite", "graphml", "crawl.graphml")
    """
    if kind not in EXPORT_KINDS:
        raise ConfigurationError(
            f"unknown export kind {kind!r}: choose one of {', '.join(EXPORT_KINDS)}"
        )
    sink = (
        sink_or_path if isinstance(sink_or_path, SqliteCrawlSink) else SqliteCrawlSink(sink_or_path)
    )
    stop = threading.Event()
    work = asyncio.ensure_future(asyncio.to_thread(_export, sink, kind, out_path, stop))
    try:
        return await asyncio.shield(work)
    except asyncio.CancelledError:
        # The thread stops at its next batch and removes its temporary file.
        stop.set()
        with contextlib.suppress(Exception, asyncio.CancelledError):
            await work
        raise


def _export(
    sink: SqliteCrawlSink,
    kind: ExportKind,
    out_path: str | os.PathLike[str],
    stop: threading.Event,
) -> tuple[Path, ...]:
    out = Path(os.path.expanduser(os.fspath(out_path)))
    if not sink.path.exists():
        raise ConfigurationError(f"crawl database {sink.path} does not exist")

    def rows(query: str) -> Iterator[list[Any]]:
        for batch in sink._rows(query):
            if stop.is_set():
                raise _Stopped
            yield batch

    if kind in ("jsonl", "csv"):
        _directory(out)
        edges, accounts = out / f"edges.{kind}", out / f"accounts.{kind}"
        if kind == "jsonl":
            _atomic(edges, lambda file: _edges_jsonl(file, rows(_EDGES)))
            _atomic(accounts, lambda file: _accounts_jsonl(file, rows(_ACCOUNTS)))
        else:
            _atomic(edges, lambda file: _edges_csv(file, rows(_EDGES)))
            _atomic(accounts, lambda file: _accounts_csv(file, rows(_ACCOUNTS)))
        return edges, accounts
    if kind == "graphml":
        _atomic(out, lambda file: _graphml(file, rows))
    else:
        _atomic(out, lambda file: _edgelist(file, rows(_EDGES)))
    return (out,)


class _Stopped(Exception):
    """The export's task was cancelled."""


def _directory(out: Path) -> None:
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise CrawlSinkError(
            f"export directory {out} cannot be made ({exc.strerror})", path=str(out)
        ) from None


def _atomic(target: Path, write: Callable[[IO[str]], None]) -> None:
    """Write ``target`` through a temporary file beside it, renamed into place when done."""
    try:
        fd, temporary = tempfile.mkstemp(
            dir=target.parent, prefix=f".{target.name}.", suffix=".tmp"
        )
    except OSError as exc:
        raise CrawlSinkError(
            f"export file {target} cannot be written ({exc.strerror})", path=str(target)
        ) from None
    try:
        # csv writes its own line ends; surrogates that slipped past the writers stay visible.
        with open(fd, "w", encoding="utf-8", errors="replace", newline="") as file:
            write(file)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, target)
    except OSError as exc:
        reason = exc.strerror
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise CrawlSinkError(
            f"export file {target} cannot be written ({reason})", path=str(target)
        ) from None
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise


def _edges_jsonl(file: IO[str], batches: Iterator[list[Any]]) -> None:
    dumps = json.JSONEncoder(ensure_ascii=False).encode
    for batch in batches:
        file.writelines(
            f"{dumps({'follower': follower, 'followed': followed})}\n"
            for follower, followed in batch
        )


def _accounts_jsonl(file: IO[str], batches: Iterator[list[Any]]) -> None:
    dumps = json.JSONEncoder(ensure_ascii=False).encode
    for batch in batches:
        file.writelines(f"{dumps(_account(row))}\n" for row in batch)


def _account(row: list[Any]) -> dict[str, Any]:
    record = dict(zip(_ACCOUNT_HEADER, row, strict=True))
    for name in _BOOLEANS:
        record[name] = bool(record[name])
    return record


def _edges_csv(file: IO[str], batches: Iterator[list[Any]]) -> None:
    writer = csv.writer(file)
    writer.writerow(("follower", "followed"))
    for batch in batches:
        writer.writerows((_cell(follower), _cell(followed)) for follower, followed in batch)


def _accounts_csv(file: IO[str], batches: Iterator[list[Any]]) -> None:
    writer = csv.writer(file)
    writer.writerow(_ACCOUNT_HEADER)
    booleans = [name in _BOOLEANS for name in _ACCOUNT_HEADER]
    for batch in batches:
        writer.writerows(
            [
                ("true" if value else "false") if boolean else _cell(value)
                for value, boolean in zip(row, booleans, strict=True)
            ]
            for row in batch
        )


def _cell(value: object) -> object:
    if type(value) is str and value.startswith(_FORMULA_STARTS):
        return f"'{value}"
    return "" if value is None else value


_GRAPHML_KEYS = (
    ("acct", "string"),
    ("display_name", "string"),
    ("url", "string"),
    ("bot", "boolean"),
    ("locked", "boolean"),
    ("followers_count", "long"),
    ("following_count", "long"),
    ("statuses_count", "long"),
)
_NODES = (
    "SELECT key, acct, display_name, url, bot, locked, followers_count, following_count, "
    "statuses_count FROM accounts ORDER BY key"
)
# Accounts that only edges name (a seed whose profile was never stored, say). Each side is read
# on its own so SQLite can walk an index or a sorted temporary b-tree on disk, never memory.
_BARE_NODES = (
    "SELECT follower FROM edges WHERE follower NOT IN (SELECT key FROM accounts) "
    "UNION SELECT followed FROM edges WHERE followed NOT IN (SELECT key FROM accounts)"
)


def _graphml(file: IO[str], rows: Callable[[str], Iterator[list[Any]]]) -> None:
    file.write(
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<graphml xmlns="http://graphml.graphdrawing.org/xmlns" '
        'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" '
        'xsi:schemaLocation="http://graphml.graphdrawing.org/xmlns '
        'http://graphml.graphdrawing.org/xmlns/1.0/graphml.xsd">\n'
    )
    for name, kind in _GRAPHML_KEYS:
        file.write(f'  <key id="{name}" for="node" attr.name="{name}" attr.type="{kind}"/>\n')
    file.write('  <graph id="crawl" edgedefault="directed">\n')
    for batch in rows(_NODES):
        for key, *values in batch:
            data = "".join(
                f'<data key="{name}">{_graphml_value(value, kind)}</data>'
                for (name, kind), value in zip(_GRAPHML_KEYS, values, strict=True)
                if value is not None
            )
            file.write(f'    <node id="{_xml(key)}">{data}</node>\n')
    for batch in rows(_BARE_NODES):
        file.writelines(f'    <node id="{_xml(key)}"/>\n' for (key,) in batch)
    for batch in rows(_EDGES):
        file.writelines(
            f'    <edge source="{_xml(follower)}" target="{_xml(followed)}"/>\n'
            for follower, followed in batch
        )
    file.write("  </graph>\n</graphml>\n")


def _graphml_value(value: object, kind: str) -> str:
    if kind == "boolean":
        return "true" if value else "false"
    return _xml(str(value))


def _xml(text: str) -> str:
    """``text`` for an XML attribute or element: escaped, and with what XML forbids replaced."""
    text = _NOT_XML.sub("\ufffd", text)
    return (
        text.replace("&", "&amp;")
        .replace("<", "&lt;")
        .replace(">", "&gt;")
        .replace('"', "&quot;")
        .replace("\n", "&#10;")
        .replace("\r", "&#13;")
        .replace("\t", "&#9;")
    )


def _edgelist(file: IO[str], batches: Iterator[list[Any]]) -> None:
    for batch in batches:
        file.writelines(
            f"{_edgelist_key(follower)} {_edgelist_key(followed)}\n" for follower, followed in batch
        )


def _edgelist_key(key: str) -> str:
    if _NOT_EDGELIST.search(key) is None:
        return key
    return _NOT_EDGELIST.sub(lambda match: _percent(match.group()), key)


def _percent(character: str) -> str:
    return "".join(f"%{byte:02X}" for byte in character.encode("utf-8", "surrogatepass"))
