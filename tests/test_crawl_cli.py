"""``aiomasto crawl`` end to end in a subprocess, against a fake fediverse served by the test.

The fediverse runs in a thread (:meth:`FakeFediverse.run_in_thread`); the CLI reaches its
instances by name with ``--resolve`` and ``--insecure-http``. Interruptions are timed by what
the database holds (polled read-only), never by sleeping.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from aiomasto.crawl import CrawlPlan, CrawlProgress, SqliteCrawlSink
from aiomasto.crawl._cli import ProgressLine, format_progress
from aiomasto.testing import FakeFediverse, Fault, Limits

TIMEOUT = 30
ROOMY = Limits(
    per_user=(100_000, 300.0), per_token=(100_000, 300.0), per_ip=(100_000, 300.0), paging=None
)
PEOPLE = ("alice@alpha.example", "bob@beta.example", "ake@akkoma.example", "cat@alpha.example")
FANS = 250  # alice's followers on beta: four pages of 80


def build() -> FakeFediverse:
    fedi = FakeFediverse()
    fedi.add_instance("alpha.example", limits=ROOMY)
    fedi.add_instance("beta.example", limits=ROOMY)
    fedi.add_instance("akkoma.example", flavor="akkoma", limits=ROOMY)
    for handle in PEOPLE:
        fedi.add_account(handle)
    for index, follower in enumerate(PEOPLE):
        for followed in PEOPLE[index + 1 :]:
            fedi.follow(follower, followed)
    fedi.follow("cat@alpha.example", "alice@alpha.example")
    for n in range(FANS):
        fedi.add_account(f"fan{n}@beta.example")
        fedi.follow(f"fan{n}@beta.example", "alice@alpha.example")
    return fedi


def truth(fedi: FakeFediverse, seeds: tuple[str, ...] = PEOPLE) -> set[tuple[str, str]]:
    """The edges of the seeds' own lists (a depth-0 crawl of them)."""
    edges: set[tuple[str, str]] = set()
    for handle in seeds:
        edges.update((follower, handle) for follower in fedi.followers(handle))
        edges.update((handle, followed) for followed in fedi.following(handle))
    return edges


@pytest.fixture
def fedi() -> Iterator[FakeFediverse]:
    fediverse = build()
    with fediverse.run_in_thread():
        yield fediverse


def connection_flags(fedi: FakeFediverse) -> list[str]:
    flags = ["--insecure-http"]
    for host, (ip, port) in fedi.resolve_map().items():
        flags += ["--resolve", f"{host}={ip}:{port}"]
    return flags


def command(*args: str) -> list[str]:
    return [sys.executable, "-m", "aiomasto", "crawl", *args]


def run(tmp_path: Path, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        command(*args, "--token-store", str(tmp_path / "credentials.json")),
        input=stdin,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        cwd=tmp_path,
        check=False,
    )


def stored_edges(db: Path) -> list[tuple[str, str]]:
    with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as connection:
        return [(a, b) for a, b in connection.execute("SELECT follower, followed FROM edges")]


def outcomes(db: Path) -> dict[tuple[str, str], str | None]:
    with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as connection:
        rows = connection.execute("SELECT account, relation, outcome FROM units").fetchall()
    return {(account, relation): outcome for account, relation, outcome in rows}


def pages_of(db: Path, account: str, relation: str) -> int:
    """Pages committed to a list so far (0 while the database is being created)."""
    if not db.exists():
        return 0
    try:
        with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as connection:
            row = connection.execute(
                "SELECT pages FROM units WHERE account = ? AND relation = ?", (account, relation)
            ).fetchone()
    except sqlite3.OperationalError:  # no tables yet
        return 0
    return 0 if row is None else int(row[0])


def hanging(fedi: FakeFediverse, handle: str, after: int) -> Callable[[], bool]:
    """Make the list's page number ``after + 1`` hang; returns "has the crawl asked for it?"."""
    server = fedi.instance(handle.partition("@")[2])
    path = f"/api/v1/accounts/{fedi.account_id(handle)}/followers"
    server.inject(path, Fault.slow(30), after=after)
    return lambda: sum(r.path == path for r in server.requests) > after


def one_line_error(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("aiomasto: ")
    return lines[0]


def test_a_full_crawl_prints_its_summary_and_exports_csv_next_to_the_db(
    fedi: FakeFediverse, tmp_path: Path
) -> None:
    seeds = [f"@{handle}" for handle in PEOPLE]
    result = run(
        tmp_path, *seeds, "--db", "crawl.sqlite", "--export", "csv", *connection_flags(fedi)
    )
    assert result.returncode == 0, result.stderr
    db = tmp_path / "crawl.sqlite"
    edges = stored_edges(db)
    assert set(edges) == truth(fedi)
    assert len(edges) == len(set(edges))
    assert set(outcomes(db).values()) == {"complete"}
    out = result.stdout
    assert "Crawl finished: 8 lists done, 0 still to do" in out
    assert "  complete             8" in out
    assert f"edges: {len(edges)}" in out
    assert "alpha.example" in out
    assert "akkoma 3.16.0" in out
    assert f"database: {db}" in out
    export_dir = tmp_path / "crawl-export"
    assert f"exported: {export_dir / 'edges.csv'}, {export_dir / 'accounts.csv'}" in out
    with (export_dir / "edges.csv").open(newline="", encoding="utf-8") as file:
        rows = list(csv.reader(file))
    assert rows[0] == ["follower", "followed"]
    assert {(a, b) for a, b in rows[1:]} == truth(fedi)
    # Non-TTY progress: whole lines (no carriage returns), the last one the final count.
    progress = [line for line in result.stderr.splitlines() if line.startswith("lists ")]
    assert progress, result.stderr
    assert "\r" not in result.stderr
    assert progress[-1].startswith("lists 8 done, 0 queued, 0 walking")


def test_seeds_from_a_file_and_from_stdin(fedi: FakeFediverse, tmp_path: Path) -> None:
    seeds = tmp_path / "seeds.txt"
    seeds.write_text(
        "# people to crawl\n\n@alice@alpha.example   # the one with fans\n"
        "  bob@beta.example\n\n# done\n",
        encoding="utf-8",
    )
    flags = ["--relations", "following", *connection_flags(fedi), "--quiet"]
    result = run(tmp_path, "--from-file", str(seeds), "--db", "a.sqlite", *flags)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""  # --quiet
    assert set(outcomes(tmp_path / "a.sqlite")) == {
        ("alice@alpha.example", "following"),
        ("bob@beta.example", "following"),
    }
    result = run(
        tmp_path,
        "@cat@alpha.example",
        "--from-file",
        "-",
        "--db",
        "b.sqlite",
        *flags,
        stdin="ake@akkoma.example\n",
    )
    assert result.returncode == 0, result.stderr
    assert set(outcomes(tmp_path / "b.sqlite")) == {
        ("cat@alpha.example", "following"),
        ("ake@akkoma.example", "following"),
    }
    assert set(stored_edges(tmp_path / "b.sqlite")) == {
        ("cat@alpha.example", "alice@alpha.example"),
        ("ake@akkoma.example", "cat@alpha.example"),
    }


def test_export_only_writes_each_format_and_each_reads_back(
    fedi: FakeFediverse, tmp_path: Path
) -> None:
    seeds = [f"@{handle}" for handle in PEOPLE]
    assert run(tmp_path, *seeds, "--db", "c.sqlite", *connection_flags(fedi)).returncode == 0
    want = truth(fedi)
    out = tmp_path / "out"
    kinds = ["jsonl", "csv", "graphml", "edgelist"]
    result = run(
        tmp_path, "--db", "c.sqlite", "--export-dir", str(out), *(f"--export={k}" for k in kinds)
    )
    assert result.returncode == 0, result.stderr
    assert "Crawl finished: 8 lists done" in result.stdout
    assert "this run" not in result.stdout  # nothing was crawled
    lines = (out / "edges.jsonl").read_text(encoding="utf-8").splitlines()
    assert {(e["follower"], e["followed"]) for e in map(json.loads, lines)} == want
    accounts = [json.loads(line) for line in (out / "accounts.jsonl").read_text().splitlines()]
    assert {"alice@alpha.example", "fan0@beta.example"} <= {a["key"] for a in accounts}
    with (out / "edges.csv").open(newline="", encoding="utf-8") as file:
        assert {(r["follower"], r["followed"]) for r in csv.DictReader(file)} == want
    graph = ET.parse(out / "c.graphml").getroot()
    ns = {"g": "http://graphml.graphdrawing.org/xmlns"}
    edges = {(e.get("source"), e.get("target")) for e in graph.iterfind(".//g:edge", ns)}
    assert edges == want
    pairs = (out / "c.edgelist").read_text(encoding="utf-8").split("\n")
    assert {tuple(pair.split(" ")) for pair in pairs if pair} == want


@pytest.mark.parametrize(("signum", "status"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_signal_stops_after_a_committed_page_and_resume_finishes_exactly(
    fedi: FakeFediverse, tmp_path: Path, signum: signal.Signals, status: int
) -> None:
    # The third page of alice's followers hangs: the crawl cannot finish before the signal.
    asked = hanging(fedi, "alice@alpha.example", after=2)
    db = tmp_path / "crawl.sqlite"
    seeds = [f"@{handle}" for handle in PEOPLE]
    flags = connection_flags(fedi)
    process = subprocess.Popen(
        command(*seeds, "--db", str(db), *flags, "--progress-every", "0.05"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=tmp_path,
    )
    errors: list[str] = []
    stderr = process.stderr
    assert stderr is not None
    reader = threading.Thread(target=lambda: errors.extend(iter(stderr.readline, "")))
    reader.start()
    try:
        deadline = time.monotonic() + TIMEOUT
        while (
            pages_of(db, "alice@alpha.example", "followers") < 2
            or not asked()
            or not any(line.startswith("lists ") for line in errors)
        ):
            assert process.poll() is None, "".join(errors)
            assert time.monotonic() < deadline, "no page was committed"
            time.sleep(0.02)
        process.send_signal(signum)
        # stderr belongs to the reader thread: communicate() would race it for the last lines.
        process.wait(timeout=TIMEOUT)
        assert process.stdout is not None
        out = process.stdout.read()
    finally:
        process.kill()
        reader.join(timeout=TIMEOUT)
    err = "".join(errors)
    assert process.returncode == status, err
    assert "Traceback" not in err
    assert f"aiomasto: interrupted; resume with: aiomasto crawl --resume {db}" in err
    assert "Crawl interrupted:" in out
    # The two pages before the hang are stored, the hanging one is not.
    assert pages_of(db, "alice@alpha.example", "followers") == 2
    assert outcomes(db)[("alice@alpha.example", "followers")] is None

    result = run(tmp_path, "--resume", str(db), *flags, "--concurrency", "2")
    assert result.returncode == 0, result.stderr
    assert "Crawl finished: 8 lists done, 0 still to do" in result.stdout
    edges = stored_edges(db)
    assert len(edges) == len(set(edges))
    assert set(edges) == truth(fedi)
    assert set(outcomes(db).values()) == {"complete"}


def test_a_second_ctrl_c_while_stopping_quits_and_the_db_resumes(
    fedi: FakeFediverse, tmp_path: Path
) -> None:
    asked = hanging(fedi, "alice@alpha.example", after=1)
    db = tmp_path / "crawl.sqlite"
    flags = connection_flags(fedi)
    process = subprocess.Popen(
        command(*(f"@{h}" for h in PEOPLE), "--db", str(db), *flags, "--quiet"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=tmp_path,
    )
    try:
        deadline = time.monotonic() + TIMEOUT
        while pages_of(db, "alice@alpha.example", "followers") < 1 or not asked():
            assert process.poll() is None
            assert time.monotonic() < deadline, "no page was committed"
            time.sleep(0.02)
        process.send_signal(signal.SIGINT)
        process.send_signal(signal.SIGINT)
        _, err = process.communicate(timeout=TIMEOUT)
    finally:
        process.kill()
    assert process.returncode == 130, err
    assert "Traceback" not in err
    assert f"resume with: aiomasto crawl --resume {db}" in err
    result = run(tmp_path, "--resume", str(db), *flags)
    assert result.returncode == 0, result.stderr
    edges = stored_edges(db)
    assert len(edges) == len(set(edges))
    assert set(edges) == truth(fedi)


def test_another_plan_on_an_existing_db_is_refused_with_the_way_out(
    fedi: FakeFediverse, tmp_path: Path
) -> None:
    flags = connection_flags(fedi)
    assert run(tmp_path, "@cat@alpha.example", "--db", "d.sqlite", *flags).returncode == 0
    line = one_line_error(
        run(tmp_path, "@cat@alpha.example", "--depth", "1", "--db", "d.sqlite", *flags)
    )
    assert "d.sqlite holds another crawl (depth 0 there, not 1)" in line
    assert "'aiomasto crawl --resume d.sqlite'" in line
    assert "another --db" in line
    # The same plan again continues the stored crawl (nothing left to do).
    again = run(tmp_path, "@cat@alpha.example", "--db", "d.sqlite", *flags)
    assert again.returncode == 0, again.stderr
    assert "Crawl finished: 2 lists done, 0 still to do" in again.stdout
    # --resume fixes the plan: its flags are usage errors.
    usage = run(tmp_path, "--resume", "d.sqlite", "--depth", "2")
    assert usage.returncode == 2
    assert "--depth: the plan is stored" in usage.stderr


def test_expected_failures_are_one_line_without_a_traceback(tmp_path: Path) -> None:
    assert "bad seed" in one_line_error(run(tmp_path, "@alice@", "--db", "x.sqlite"))
    seeds = tmp_path / "seeds.txt"
    seeds.write_text("@alice@alpha.example\nftp://alpha.example/@bob\n", encoding="utf-8")
    assert "bad seed" in one_line_error(run(tmp_path, "--from-file", str(seeds)))
    seeds.write_text("@alice@alpha.example @bob@beta.example\n", encoding="utf-8")
    line = one_line_error(run(tmp_path, "--from-file", str(seeds)))
    assert f"{seeds} line 1: one account per line" in line
    assert "cannot read" in one_line_error(run(tmp_path, "--from-file", "missing.txt"))
    assert not (tmp_path / "crawl.sqlite").exists()

    (tmp_path / "junk.sqlite").write_bytes(b"this is not a database" * 100)
    line = one_line_error(run(tmp_path, "@alice@alpha.example", "--db", "junk.sqlite"))
    assert "junk.sqlite" in line
    line = one_line_error(run(tmp_path, "--resume", "nothing.sqlite"))
    assert "nothing.sqlite does not exist" in line
    line = one_line_error(run(tmp_path, "--export", "csv", "--db", "nothing.sqlite"))
    assert "no crawl database at nothing.sqlite" in line


def test_a_db_held_by_another_crawler_is_refused(tmp_path: Path) -> None:
    import asyncio

    plan = CrawlPlan(seeds=("@alice@alpha.example",))

    async def hold_and_run() -> subprocess.CompletedProcess[str]:
        sink = SqliteCrawlSink(tmp_path / "held.sqlite")
        await sink.open(plan)
        try:
            return await asyncio.to_thread(
                run, tmp_path, "@alice@alpha.example", "--db", "held.sqlite"
            )
        finally:
            await sink.close()

    line = one_line_error(asyncio.run(hold_and_run()))
    assert "in use by another crawler" in line


def test_usage_errors_exit_2(tmp_path: Path) -> None:
    for args in (
        (),
        ("--resume", "a.sqlite", "@alice@alpha.example"),
        ("--resume", "a.sqlite", "--db", "b.sqlite"),
        ("@alice@alpha.example", "--relations", "friends"),
        ("@alice@alpha.example", "--depth", "-1"),
        ("@alice@alpha.example", "--resolve", "alpha.example"),
    ):
        result = run(tmp_path, *args)
        assert result.returncode == 2, (args, result.stderr)
        assert "Traceback" not in result.stderr
    help_text = run(tmp_path, "--help").stdout
    assert "--insecure-http" in help_text
    assert "tests only" in help_text


def test_progress_lines_name_waiting_instances_and_errors(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("COLUMNS", "300")
    until = datetime(2030, 1, 1, 12, 0, 5, tzinfo=UTC)
    progress = CrawlProgress(
        units_done=3,
        units_queued=10,
        units_in_flight=2,
        accounts=40,
        edges=120,
        requests=50,
        requests_per_second=12.5,
        waiting={"alpha.example": until},
        errors=1,
        last_errors=("followers of dan@down.example: down.example did not answer",),
    )
    local = until.astimezone().strftime("%H:%M:%S")
    assert format_progress(progress) == (
        "lists 3 done, 10 queued, 2 walking | 120 edges, 40 accounts | 50 requests (12.5/s)"
        f" | waiting: alpha.example until {local} | 1 errors"
    )
    log = io.StringIO()
    line = ProgressLine(log, tty=False)
    line(progress)
    line(progress)  # the same error is not printed twice
    assert log.getvalue().splitlines() == [
        "aiomasto: error: followers of dan@down.example: down.example did not answer",
        format_progress(progress),
        format_progress(progress),
    ]
    screen = io.StringIO()
    line = ProgressLine(screen, tty=True)
    line(progress)
    line.clear()
    assert screen.getvalue().endswith("\r\x1b[K" + format_progress(progress) + "\r\x1b[K")


def test_demo_crawl_checks_the_ground_truth(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "aiomasto", "demo", "crawl"],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        cwd=tmp_path,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Crawl finished:" in result.stdout
    assert "every list read in full holds exactly its true edges" in result.stdout
    assert result.stdout.rstrip().endswith("Demo finished: OK")


def test_no_instance_answering_is_one_line_and_exit_1(tmp_path: Path) -> None:
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))  # bound, never listening: connections are refused
        port = closed.getsockname()[1]
        result = run(
            tmp_path,
            "@alice@gone.example",
            "--insecure-http",
            "--resolve",
            f"gone.example=127.0.0.1:{port}",
            "--quiet",
        )
    line = one_line_error(result)
    assert line.startswith("aiomasto: no instance could be reached (is the network up?)")
    assert "unreachable          2" in result.stdout
