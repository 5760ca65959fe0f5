"""The crawl exporters, each file read back with the tool a user would use on it."""

from __future__ import annotations

import asyncio
import csv
import json
import stat
import xml.etree.ElementTree as ET
from datetime import UTC, datetime
from pathlib import Path

import pytest

from aiomasto.crawl import (
    AccountRecord,
    CrawlPlan,
    Edge,
    PageCommit,
    SqliteCrawlSink,
    Unit,
    UnitKey,
    export,
)
from aiomasto.errors import ConfigurationError

GRAPHML = "{http://graphml.graphdrawing.org/xmlns}"
HOSTILE_NAME = 'Ann "the <b>&</b>", with, commas\nand lines\r\n\ttabs \x00NUL\x07 bell é 🦣'
FORMULAS = ["=cmd|' /C calc'!A0", "+1+1", "-2", "@SUM(A1)"]
SEED = "seed@one.example"


def account(key: str, **changes: object) -> AccountRecord:
    return AccountRecord(
        key=key,
        acct=key,
        url=f"https://one.example/@{key.split('@')[0]}",
        display_name=str(changes.get("display_name", f"Name of {key}")),
        note=str(changes.get("note", "<p>bio</p>")),
        bot=bool(changes.get("bot", False)),
        created_at=datetime(2023, 1, 2, 3, 4, 5, tzinfo=UTC),
        followers_count=7,
        following_count=8,
        statuses_count=9,
        seen_on="https://one.example",
    )


@pytest.fixture
async def crawl(tmp_path: Path) -> Path:
    """A crawl whose accounts carry hostile names and formulas; the seed has no profile."""
    path = tmp_path / "crawl.sqlite"
    sink = SqliteCrawlSink(path)
    unit = Unit(key=UnitKey(account=SEED, relation="followers"), target=f"@{SEED}")
    accounts = [
        account("ann@one.example", display_name=HOSTILE_NAME, bot=True),
        *(account(f"f{n}@one.example", display_name=f) for n, f in enumerate(FORMULAS)),
        account("q&a<x>@one.example", note='"quoted", <tag> & more'),
    ]
    async with asyncio.timeout(10):
        await sink.open(CrawlPlan(seeds=(SEED,)))
        await sink.add_units([unit])
        await sink.commit_page(
            PageCommit(
                unit=unit.key,
                cursor="c1",
                accounts=accounts,
                edges=[Edge(follower=record.key, followed=SEED) for record in accounts],
            )
        )
        await sink.close()
    return path


def names(directory: Path) -> set[str]:
    return {path.name for path in directory.iterdir()}


def expected_edges() -> set[tuple[str, str]]:
    keys = ["ann@one.example", *(f"f{n}@one.example" for n in range(4)), "q&a<x>@one.example"]
    return {(key, SEED) for key in keys}


async def test_jsonl_reads_back_exactly(crawl: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    async with asyncio.timeout(10):
        written = await export(crawl, "jsonl", out)
    assert written == (out / "edges.jsonl", out / "accounts.jsonl")
    edges = [json.loads(line) for line in written[0].read_text("utf-8").splitlines()]
    assert {(edge["follower"], edge["followed"]) for edge in edges} == expected_edges()
    assert len(edges) == len(expected_edges())
    accounts = {
        record["key"]: record
        for record in map(json.loads, written[1].read_text("utf-8").splitlines())
    }
    assert accounts["ann@one.example"]["display_name"] == HOSTILE_NAME
    assert accounts["ann@one.example"]["bot"] is True
    assert accounts["f0@one.example"]["display_name"] == FORMULAS[0]  # JSON is not a sheet
    assert accounts["ann@one.example"]["created_at"] == "2023-01-02T03:04:05+00:00"
    assert accounts["ann@one.example"]["followers_count"] == 7
    assert "updated_at" in accounts["ann@one.example"]
    for file in written:
        assert stat.S_IMODE(file.stat().st_mode) == 0o600


async def test_csv_reads_back_and_defuses_formulas(crawl: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    async with asyncio.timeout(10):
        edges_file, accounts_file = await export(crawl, "csv", out)
    with edges_file.open(newline="", encoding="utf-8") as file:
        rows = list(csv.reader(file))
    assert rows[0] == ["follower", "followed"]
    assert {(a, b) for a, b in rows[1:]} == expected_edges()
    with accounts_file.open(newline="", encoding="utf-8") as file:
        records = {row["key"]: row for row in csv.DictReader(file)}
    assert records["ann@one.example"]["display_name"] == HOSTILE_NAME
    assert records["ann@one.example"]["bot"] == "true"
    assert records["ann@one.example"]["followers_count"] == "7"
    assert records["q&a<x>@one.example"]["note"] == '"quoted", <tag> & more'
    for n, formula in enumerate(FORMULAS):
        assert records[f"f{n}@one.example"]["display_name"] == f"'{formula}"
    assert edges_file.read_bytes().endswith(b"\r\n")  # RFC 4180 line ends


async def test_graphml_is_valid_xml_with_nodes_and_directed_edges(
    crawl: Path, tmp_path: Path
) -> None:
    out = tmp_path / "graph.graphml"
    async with asyncio.timeout(10):
        assert await export(crawl, "graphml", out) == (out,)
    root = ET.parse(out).getroot()
    keys = {key.get("id"): key for key in root.iter(f"{GRAPHML}key")}
    assert keys["acct"].get("attr.type") == "string"
    assert keys["followers_count"].get("attr.type") == "long"
    assert all(key.get("for") == "node" for key in keys.values())
    (graph,) = root.iter(f"{GRAPHML}graph")
    assert graph.get("edgedefault") == "directed"
    nodes = {
        node.get("id"): {data.get("key"): data.text for data in node}
        for node in graph.iter(f"{GRAPHML}node")
    }
    edges = {(edge.get("source"), edge.get("target")) for edge in graph.iter(f"{GRAPHML}edge")}
    assert edges == expected_edges()
    # Every edge's ends are nodes, the seed (no stored profile) among them.
    assert set(nodes) == {key for edge in edges for key in edge}
    assert nodes[SEED] == {}
    assert nodes["ann@one.example"]["display_name"] == (
        HOSTILE_NAME.replace("\x00", "\ufffd").replace("\x07", "\ufffd")
    )
    assert nodes["ann@one.example"]["bot"] == "true"
    assert nodes["ann@one.example"]["followers_count"] == "7"
    assert nodes["f0@one.example"]["display_name"] == FORMULAS[0]


async def test_edgelist_is_one_pair_per_line(crawl: Path, tmp_path: Path) -> None:
    out = tmp_path / "edges.txt"
    sink = SqliteCrawlSink(crawl)
    async with asyncio.timeout(10):
        await export(sink, "edgelist", out)
    pairs = [tuple(line.split()) for line in out.read_text("utf-8").splitlines()]
    assert set(pairs) == expected_edges()
    assert len(pairs) == len(expected_edges())


async def test_keys_that_would_break_an_edge_list_are_percent_encoded(tmp_path: Path) -> None:
    path = tmp_path / "crawl.sqlite"
    sink = SqliteCrawlSink(path)
    unit = Unit(key=UnitKey(account=SEED, relation="followers"), target=SEED)
    async with asyncio.timeout(10):
        await sink.open(CrawlPlan(seeds=(SEED,)))
        await sink.add_units([unit])
        await sink.commit_page(
            PageCommit(
                unit=unit.key,
                cursor=None,
                edges=[Edge(follower="a b#c%d\ne@x.example", followed=SEED)],
            )
        )
        await sink.close()
        await export(path, "edgelist", tmp_path / "edges.txt")
    assert (tmp_path / "edges.txt").read_text("utf-8") == f"a%20b%23c%25d%0Ae@x.example {SEED}\n"


async def test_a_failed_export_leaves_the_previous_file(crawl: Path, tmp_path: Path) -> None:
    out = tmp_path / "graph.graphml"
    out.write_text("the previous export")
    async with asyncio.timeout(10):
        with pytest.raises(ConfigurationError, match="does not exist"):
            await export(tmp_path / "missing.sqlite", "graphml", out)
        with pytest.raises(ConfigurationError, match="unknown export kind"):
            await export(crawl, "xlsx", out)  # type: ignore[arg-type]
    assert out.read_text() == "the previous export"
    assert names(tmp_path) == {"crawl.sqlite", "crawl.sqlite-lock", "graph.graphml"}


async def test_a_cancelled_export_leaves_no_temporary_file(tmp_path: Path) -> None:
    path = tmp_path / "crawl.sqlite"
    sink = SqliteCrawlSink(path)
    unit = Unit(key=UnitKey(account=SEED, relation="followers"), target=SEED)
    async with asyncio.timeout(30):
        await sink.open(CrawlPlan(seeds=(SEED,)))
        await sink.add_units([unit])
        for page in range(20):
            followers = [f"f{page}-{n}@one.example" for n in range(5000)]
            await sink.commit_page(
                PageCommit(
                    unit=unit.key,
                    cursor=f"c{page}",
                    edges=[Edge(follower=key, followed=SEED) for key in followers],
                )
            )
        await sink.close()
        out = tmp_path / "exports"
        task = asyncio.create_task(export(path, "csv", out))
        # Polled: the file appears in the export's thread, which has no event to set.
        while not any(out.glob(".*.tmp")):  # noqa: ASYNC110
            await asyncio.sleep(0.001)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    assert names(out) == set()
