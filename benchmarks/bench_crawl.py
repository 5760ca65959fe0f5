"""The crawl benchmark: the Crawler over 10 instances, 200 seed accounts, 200,000 edges.

The instances are origins of one server process (``serve``: benchmarks/server.py's graph and
followers pages, plus what a crawler asks first: NodeInfo, ``/api/v2/instance`` and the
account by id), each origin with its own rate window, all reached by name (``i0.bench`` ...)
through a :class:`~aiomasto.crawl.StaticResolver`. Each measurement runs in a fresh client
process (``client``), so its peak RSS is its own:

- ``walk``: the same lists walked with ``Session.followers()`` in a bare loop (16 tasks taking
  the next list, one Session per instance over one aiohttp pool): aiomasto's own figure;
- ``sqlite`` and ``noop``: the Crawler (followers of every seed, ``concurrency=16``) into a
  :class:`SqliteCrawlSink` or a ``MemoryCrawlSink(keep_results=False)``.

Client CPU is ``time.process_time()`` over the timed part (the SQLite sink's thread
included), per edge. The engine's overhead is the crawl's CPU per edge over the walk's, the
ratio taken within each round (the modes take turns, rotating), median of the rounds.

Under limits, each origin enforces 300 requests per window (Mastodon's per-IP budget) with
the window shortened from 5 minutes to ``--window`` seconds: the crawl's share of the budget
is the requests served in each full window over 300. Shortening the window keeps the ratio
of budget to time (the client's own speed is never the limit at 300 per 20 s).

Usage::

    python -m benchmarks.bench_crawl               # every figure; writes results-crawl.md
    python -m benchmarks.bench_crawl --quick       # a smoke run; writes nothing
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import resource
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from aiomasto import Session
from aiomasto.crawl import Crawler, MemoryCrawlSink, SqliteCrawlSink, StaticResolver
from benchmarks.server import GRAPH, WINDOW, Graph, make_app, pin_to_cpu

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results-crawl.md"
MODES = ("walk", "sqlite", "noop")
OVERHEAD_TARGET = 1.25
BUDGET_TARGET = 0.95
BUDGET = 300  # Mastodon's per-IP requests per window


# -- the server ----------------------------------------------------------------------------------


def _host(index: int) -> str:
    return f"i{index}.bench"


async def _instance(request: web.Request) -> web.Response:
    return web.json_response(
        {"domain": request.host.split(":")[0], "version": "4.5.0", "title": "bench"}
    )


async def _nodeinfo_index(request: web.Request) -> web.Response:
    href = f"http://{request.host}/nodeinfo/2.0"
    rel = "http://nodeinfo.diaspora.software/ns/schema/2.0"
    return web.json_response({"links": [{"rel": rel, "href": href}]})


async def _nodeinfo(request: web.Request) -> web.Response:
    return web.json_response(
        {"version": "2.0", "software": {"name": "mastodon", "version": "4.5.0"}}
    )


async def _account(request: web.Request) -> web.Response:
    graph: Graph = request.app[GRAPH]
    account = int(request.match_info["id"]) if request.match_info["id"].isdigit() else 0
    count = graph.count(account)
    if count is None:
        return web.json_response({"error": "Record not found"}, status=404)
    # A follower's profile, made the seed's: the shape is a real Account's.
    base = f"http://{request.host}"
    [document] = json.loads(graph.render("followers", account, [0], base))
    name = f"seed{account}"
    document.update(
        id=str(account),
        username=name,
        acct=name,
        url=f"{base}/@{name}",
        uri=f"{base}/users/{name}",
        followers_count=count,
        following_count=count,
    )
    return web.json_response(document)


def _app(graph: Graph, limit: int | None, window: int) -> web.Application:
    app = make_app(graph, limit=limit, window=window)
    app.router.add_get("/api/v2/instance", _instance)
    app.router.add_get("/.well-known/nodeinfo", _nodeinfo_index)
    app.router.add_get("/nodeinfo/2.0", _nodeinfo)
    app.router.add_get("/api/v1/accounts/{id}", _account)
    return app


async def _serve(counts: list[int], instances: int, limit: int | None, window: int) -> None:
    runners = []
    ports = []
    for _ in range(instances):
        # One app per origin: each instance has its own rate window.
        runner = web.AppRunner(_app(Graph(counts), limit, window), access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        runners.append(runner)
        ports.append(str(runner.addresses[0][1]))
    print(" ".join(ports), flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    try:
        await stop.wait()
    finally:
        tallies = [runner.app[WINDOW].stats() for runner in runners]
        print(json.dumps(tallies), flush=True)
        for runner in runners:
            await runner.cleanup()


class _Server:
    """The server process: ``with _Server(...) as server``; ``server.tallies`` after exit."""

    def __init__(
        self, *, instances: int, per_instance: int, followers: int, limit: int | None, window: int
    ) -> None:
        self.options = [
            "serve",
            f"--instances={instances}",
            f"--accounts={per_instance}",
            f"--followers={followers}",
            f"--window={window}",
        ] + ([f"--limit={limit}"] if limit else [])
        self.ports: list[int] = []
        self.tallies: list[dict[str, Any]] = []
        self._process: subprocess.Popen[str] | None = None

    def __enter__(self) -> _Server:
        command = [sys.executable, "-m", "benchmarks.bench_crawl", *self.options]
        self._process = subprocess.Popen(  # noqa: S603 - our own interpreter and module
            command, cwd=ROOT, stdout=subprocess.PIPE, text=True
        )
        assert self._process.stdout is not None
        self.ports = [int(port) for port in self._process.stdout.readline().split()]
        if not self.ports:
            raise RuntimeError("the crawl benchmark server did not start")
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._process is not None
        assert self._process.stdout is not None
        self._process.send_signal(signal.SIGTERM)
        out, _ = self._process.communicate(timeout=30)
        if out.strip():
            self.tallies = json.loads(out.strip().splitlines()[-1])

    @property
    def resolve(self) -> list[str]:
        return [f"{_host(i)}=127.0.0.1:{port}" for i, port in enumerate(self.ports)]


# -- the clients ---------------------------------------------------------------------------------


def _seeds(instances: int, per_instance: int) -> list[tuple[str, str]]:
    """(API base, account id) of every seed, round-robin over the instances."""
    return [
        (f"http://{_host(i)}", str(account))
        for account in range(1, per_instance + 1)
        for i in range(instances)
    ]


async def _walk(resolve: list[str], seeds: list[tuple[str, str]], concurrency: int) -> int:
    connector = aiohttp.TCPConnector(resolver=StaticResolver.from_specs(resolve), limit=0)
    edges = 0
    async with (
        aiohttp.ClientSession(connector=connector) as http,
        contextlib.AsyncExitStack() as stack,
    ):
        sessions = {
            base: await stack.enter_async_context(
                Session(base, http=http, allow_insecure_http=True)
            )
            for base in dict.fromkeys(base for base, _ in seeds)
        }
        queue = list(reversed(seeds))

        async def worker() -> None:
            nonlocal edges
            while queue:
                base, account = queue.pop()
                async for _ in sessions[base].followers(account, limit=80):
                    edges += 1

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return edges


async def _crawl(
    resolve: list[str], seeds: list[tuple[str, str]], sink_kind: str, concurrency: int
) -> int:
    connector = aiohttp.TCPConnector(resolver=StaticResolver.from_specs(resolve), limit=0)
    with tempfile.TemporaryDirectory(prefix="aiomasto-bench-crawl-") as tmp:
        sink: SqliteCrawlSink | MemoryCrawlSink
        if sink_kind == "sqlite":
            sink = SqliteCrawlSink(Path(tmp) / "crawl.sqlite")
        else:
            sink = MemoryCrawlSink(keep_results=False)
        async with (
            aiohttp.ClientSession(connector=connector) as http,
            Crawler(
                sink,
                http=http,
                allow_insecure_http=True,
                relations=("followers",),
                concurrency=concurrency,
            ) as crawler,
        ):
            summary = await crawler.run(seeds)
        if sink_kind == "sqlite":
            stored = (await sink.stats()).edges
            if stored != summary.edges:
                raise RuntimeError(f"the sink stored {stored} edges of {summary.edges}")
    if summary.outcomes != {"complete": len(seeds)}:
        raise RuntimeError(f"not every list was crawled: {summary.outcomes}")
    return summary.edges


def _client(options: argparse.Namespace) -> None:
    pin_to_cpu(1)
    seeds = _seeds(options.instances, options.accounts)
    wall, cpu = time.perf_counter(), time.process_time()
    if options.mode == "walk":
        edges = asyncio.run(_walk(options.resolve, seeds, options.concurrency))
    else:
        edges = asyncio.run(_crawl(options.resolve, seeds, options.mode, options.concurrency))
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    expected = options.instances * options.accounts * options.followers
    if edges != expected:
        raise RuntimeError(f"{options.mode}: {edges} edges, expected {expected}")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux
    print(json.dumps({"mode": options.mode, "edges": edges, "cpu": cpu, "wall": wall, "rss": peak}))


def _measure(
    server: _Server, mode: str, instances: int, accounts: int, followers: int
) -> dict[str, Any]:
    command = [
        sys.executable,
        "-m",
        "benchmarks.bench_crawl",
        "client",
        mode,
        f"--instances={instances}",
        f"--accounts={accounts}",
        f"--followers={followers}",
        *(f"--resolve={spec}" for spec in server.resolve),
    ]
    out = subprocess.run(  # noqa: S603 - our own interpreter and module
        command, cwd=ROOT, capture_output=True, text=True, check=True, timeout=900
    ).stdout
    result: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    return result


# -- the report ----------------------------------------------------------------------------------


Figure = tuple[list[str], tuple[str, str, str, bool]]


def _speed(instances: int, accounts: int, followers: int, rounds: int) -> Figure:
    results: dict[str, list[dict[str, Any]]] = {mode: [] for mode in MODES}
    with _Server(
        instances=instances, per_instance=accounts, followers=followers, limit=None, window=300
    ) as server:
        for n in range(rounds):
            for mode in MODES[n % len(MODES) :] + MODES[: n % len(MODES)]:
                results[mode].append(_measure(server, mode, instances, accounts, followers))
    edges = results["walk"][0]["edges"]

    def per_edge(r: dict[str, Any]) -> float:
        return float(r["cpu"]) / int(r["edges"]) * 1e6

    overhead = {
        mode: statistics.median(
            per_edge(results[mode][n]) / per_edge(results["walk"][n]) for n in range(rounds)
        )
        for mode in ("sqlite", "noop")
    }
    lines = [
        f"{instances} instances x {accounts} seeds x {followers:,} followers = {edges:,} edges, "
        f"no rate limits, {rounds} rounds (medians):",
        "",
        "| client | edges/s | client CPU µs/edge | CPU over the bare walk | peak RSS |",
        "|---|---:|---:|---:|---:|",
    ]
    names = {
        "walk": "bare walk (`Session.followers()`, 16 tasks)",
        "sqlite": "Crawler → SqliteCrawlSink",
        "noop": "Crawler → MemoryCrawlSink(keep_results=False)",
    }
    for mode in MODES:
        rate = statistics.median(r["edges"] / r["wall"] for r in results[mode])
        cpu = statistics.median(per_edge(r) for r in results[mode])
        rss = statistics.median(r["rss"] for r in results[mode]) / 2**20
        shown = "1.00x" if mode == "walk" else f"{overhead[mode]:.2f}x"
        lines.append(f"| {names[mode]} | {rate:,.0f} | {cpu:.1f} | {shown} | {rss:.0f} MiB |")
    # The engine alone is the crawl into the no-op sink; the SQLite sink adds its own storage
    # work (each listed account's profile row and the edge, written in its thread).
    met = overhead["noop"] <= OVERHEAD_TARGET
    storage = statistics.median(
        per_edge(results["sqlite"][n]) - per_edge(results["noop"][n]) for n in range(rounds)
    )
    lines += [
        "",
        f"Target: the engine's CPU per edge ≤ {OVERHEAD_TARGET:.2f}x the bare walk's, measured "
        "with the no-op sink (the engine alone): "
        + ("met." if met else "**missed**.")
        + f" With the SQLite sink a crawl costs {overhead['sqlite']:.2f}x the walk: the sink's "
        f"own work, {storage:.1f} µs per edge (writing each listed account's profile and the "
        "edge), is storage, not engine.",
    ]
    return lines, (
        "crawl: engine CPU per edge over a bare walk (no-op sink; SQLite sink, storage included)",
        f"{overhead['noop']:.2f}x; {overhead['sqlite']:.2f}x",
        f"≤ {OVERHEAD_TARGET:.2f}x (engine)",
        met,
    )


def _memory(instances: int, sizes: Sequence[int]) -> Figure:
    lines = [
        "",
        "Peak RSS of the crawl process by crawl size (200 seeds, one round):",
        "",
        "| edges | SqliteCrawlSink | MemoryCrawlSink(keep_results=False) |",
        "|---:|---:|---:|",
    ]
    peaks: dict[str, list[float]] = {"sqlite": [], "noop": []}
    for followers in sizes:
        with _Server(
            instances=instances, per_instance=20, followers=followers, limit=None, window=300
        ) as server:
            row = []
            for mode in ("sqlite", "noop"):
                result = _measure(server, mode, instances, 20, followers)
                peaks[mode].append(result["rss"] / 2**20)
                row.append(f"{result['rss'] / 2**20:.0f} MiB")
        lines.append(f"| {instances * 20 * followers:,} | {' | '.join(row)} |")
    # Flat: the largest crawl's peak within 10% (and 8 MiB) of the smallest's.
    flat = all(p[-1] <= max(p[0] * 1.10, p[0] + 8) for p in peaks.values())
    lines += [
        "",
        "Target: peak RSS flat in the number of edges: " + ("met." if flat else "**missed**."),
    ]
    growth = ", ".join(f"{p[0]:.0f} → {p[-1]:.0f} MiB" for p in peaks.values())
    return lines, ("crawl: peak RSS by edges (SQLite sink, no-op sink)", growth, "flat", flat)


def _budget(instances: int, window: int, windows: int) -> Figure:
    # Enough lists that every instance still has work after ``windows`` full windows.
    followers = 2000
    accounts = max(1, (BUDGET * (windows + 2) * 80) // (followers * 1) // 1)
    with _Server(
        instances=instances, per_instance=accounts, followers=followers, limit=BUDGET, window=window
    ) as server:
        command = [
            sys.executable,
            "-m",
            "benchmarks.bench_crawl",
            "client",
            "sqlite",
            f"--instances={instances}",
            f"--accounts={accounts}",
            f"--followers={followers}",
            *(f"--resolve={spec}" for spec in server.resolve),
        ]
        process = subprocess.Popen(  # noqa: S603 - our own interpreter and module
            command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        time.sleep(window * (windows + 1.5))
        process.send_signal(signal.SIGINT)
        process.wait(timeout=60)
    shares: list[float] = []
    refused = 0
    for tally in server.tallies:
        served = {int(w): n for w, n in tally.get("served", {}).items()}
        refused += int(tally.get("refused", 0))
        full = sorted(served)[1:-1]  # the first and the last window are partial
        shares.extend(served[w] / BUDGET for w in full)
    lowest = min(shares) if shares else 0.0
    median = statistics.median(shares) if shares else 0.0
    lines = [
        "",
        f"Under limits: {instances} instances, each enforcing {BUDGET} requests per window "
        f"(Mastodon's 300 per 5 minutes, the window shortened to {window} s), crawled for "
        f"{windows} full windows: budget used per instance and full window: median "
        f"{median:.1%}, lowest {lowest:.1%} ({len(shares)} windows); 429s: {refused}.",
        "",
        f"Target: ≥ {BUDGET_TARGET:.0%} of each instance's budget: "
        + ("met." if lowest >= BUDGET_TARGET and refused == 0 else "**missed**."),
    ]
    return lines, (
        "crawl: share of each instance's rate budget used (lowest window)",
        f"{lowest:.1%}, {refused} x 429",
        f"≥ {BUDGET_TARGET:.0%}, no 429",
        lowest >= BUDGET_TARGET and refused == 0,
    )


def _figures(quick: bool) -> tuple[list[str], list[tuple[str, str, str, bool]]]:
    """The report's lines and its targets as (name, measured, goal, met)."""
    if quick:
        speed = _speed(10, 20, 100, 1)
        memory = _memory(10, (50, 100))
        budget = _budget(10, 4, 1)
    else:
        speed = _speed(10, 20, 1000, 5)
        memory = _memory(10, (250, 1000))
        budget = _budget(10, 30, 2)
    lines = [*speed[0], *memory[0], *budget[0]]
    return lines, [speed[1], memory[1], budget[1]]


def crawl(quick: bool) -> Any:
    """The crawl: 10 instances, 200 seeds, 200,000 edges; engine overhead, RSS, budget use."""
    from benchmarks.run import Section, Target  # run.py imports this module: not at the top

    lines, targets = _figures(quick)
    return Section(
        "Crawling (`make bench-crawl`)",
        lines,
        [Target(name, measured, goal, met) for name, measured, goal, met in targets],
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.bench_crawl",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command")
    serve = sub.add_parser("serve")
    serve.add_argument("--instances", type=int, default=10)
    serve.add_argument("--accounts", type=int, default=20)
    serve.add_argument("--followers", type=int, default=1000)
    serve.add_argument("--limit", type=int)
    serve.add_argument("--window", type=int, default=300)
    client = sub.add_parser("client")
    client.add_argument("mode", choices=MODES)
    client.add_argument("--instances", type=int, default=10)
    client.add_argument("--accounts", type=int, default=20)
    client.add_argument("--followers", type=int, default=1000)
    client.add_argument("--concurrency", type=int, default=16)
    client.add_argument("--resolve", action="append", default=[])
    parser.add_argument("--quick", action="store_true", help="a short smoke run; writes nothing")
    parser.add_argument("--output", type=Path, default=RESULTS)
    options = parser.parse_args(argv)
    if options.command == "serve":
        pin_to_cpu(0)
        counts = [options.followers] * options.accounts
        asyncio.run(_serve(counts, options.instances, options.limit, options.window))
        return 0
    if options.command == "client":
        _client(options)
        return 0
    started = time.perf_counter()
    figures, targets = _figures(options.quick)
    lines = [
        "## Crawling (`make bench-crawl`)",
        "",
        *figures,
        "",
        f"_{time.perf_counter() - started:.0f} s, load {os.getloadavg()[0]:.1f}, "
        f"{datetime.now(UTC):%Y-%m-%d}._",
    ]
    print("\n".join(lines))
    if not options.quick:
        options.output.write_text("\n".join(lines) + "\n")
    return 0 if all(met for *_, met in targets) else 1


if __name__ == "__main__":
    sys.exit(main())
