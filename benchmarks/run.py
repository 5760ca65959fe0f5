"""Every benchmark scenario in one run, written up as a markdown table: what ``make bench`` does.

Scenarios (``--only NAME`` runs some of them; ``--quick`` shrinks them all to a smoke run):

- ``single``: one account's 100,000 followers at limit 80, aiomasto against the baselines;
- ``many``: 200 accounts x 2,000 followers at concurrency 8 and 32, through one Session and
  spread over 20 instances (20 origins on loopback);
- ``decode``: the bytes of a page into Accounts, against ``json.loads`` and ``orjson.loads``;
- ``memory``: peak RSS streaming 10k, 100k and 1M followers (``bench_memory``);
- ``rate``: the share of a rate window's budget a crawl uses under ``rate_limit="pace"``;
- ``crawl``: the Crawler over 10 instances (``benchmarks/bench_crawl.py``);
- ``distributed``: 1, 2 and 4 crawl workers on one PostgreSQL, and the shared limiters'
  overhead per request (``benchmarks/bench_distributed.py``).

Each crawl runs in a fresh client process pinned to one CPU, against the benchmark server in
its own process pinned to the other (``benchmarks/server.py``), and is checked account by
account (``benchmarks/clients.py``). Machines are shared and noisy, so the clients of a scenario
take turns round-robin, the order rotating each round, and the report gives medians of ratios
taken within each round. The targets are goals, not assertions: the exit status is non-zero
only when a scenario could not be measured (e.g. a crawl that skipped an account).

Usage, from the repository root in the benchmark environment (``make bench`` creates it)::

    python -m benchmarks.run                  # everything; writes benchmarks/results.md
    python -m benchmarks.run --quick          # a smoke run of a minute; prints the tables only
    python -m benchmarks.run --only decode --only rate
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.metadata
import importlib.util
import json
import os
import platform
import statistics
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aiomasto import _converter
from benchmarks import bench_crawl, bench_memory
from benchmarks.clients import PAGE_SIZE, Result
from benchmarks.server import ServerError, running

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results.md"
_MIB = 1024 * 1024


class BenchError(Exception):
    """A scenario could not be measured."""


@dataclass(frozen=True)
class Target:
    """One goal of the benchmarks issue, with what this run measured."""

    name: str
    measured: str
    goal: str
    met: bool


@dataclass
class Section:
    """One scenario's part of the report."""

    title: str
    lines: list[str] = field(default_factory=list)
    targets: list[Target] = field(default_factory=list)
    measures: dict[str, float] = field(default_factory=dict)
    """Medians other sections' targets are computed from (client CPU µs/account, ...)."""


# aiomasto's run, the raw loop with the same JSON parser, and what that pair is called.
_LIKE_FOR_LIKE = (
    ("aiomasto", "raw-orjson", "with the speedups", "`orjson.loads`"),
    ("aiomasto-stdlib", "raw-json", "without the speedups", "`json.loads`"),
)


# -- running clients -----------------------------------------------------------------------------


def _client(*args: str, module: str = "benchmarks.clients") -> dict[str, Any]:
    """Run ``benchmarks.clients`` (or ``module``) in a fresh process; its JSON output."""
    command = [sys.executable, "-m", module, *args]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=False)  # noqa: S603 - our own interpreter and module
    if done.returncode != 0:
        lines = done.stderr.strip().splitlines() or [f"exit status {done.returncode}"]
        raise BenchError(lines[-1])
    data: dict[str, Any] = json.loads(done.stdout.splitlines()[-1])
    return data


@dataclass(frozen=True)
class Run:
    """One client configuration of a scenario: its walks, concurrency and origins."""

    key: str
    label: str
    client: str
    jobs: list[tuple[int, int, int]]
    """(origin index, account, follower count) for each walk."""
    concurrency: int = 1
    origins: int = 1
    module: str = "benchmarks.clients"
    """``benchmarks.stdlib_json`` runs the client as if orjson were not installed."""


def _walk(run: Run, urls: Sequence[str], server_pid: int) -> Result:
    plan = {
        "client": run.client,
        "origins": list(urls[: run.origins]),
        "jobs": run.jobs,
        "concurrency": run.concurrency,
        "server_pid": server_pid,
    }
    return Result(**_client("walk", json.dumps(plan), module=run.module))


Rounds = list[dict[str, Result]]


def _rounds(name: str, runs: Sequence[Run], count: int, urls: Sequence[str], pid: int) -> Rounds:
    """Every run once per round, the order rotated by one each round."""
    rounds: Rounds = []
    for index in range(count):
        shift = index % len(runs)
        measured: dict[str, Result] = {}
        for run in [*runs[shift:], *runs[:shift]]:
            result = _walk(run, urls, pid)
            measured[run.key] = result
            print(
                f"[{name}] round {index + 1}/{count}: {run.label}: {result.rate:,.0f} "
                f"accounts/s, {result.cpu_us:.1f} µs CPU/account",
                flush=True,
            )
        rounds.append(measured)
    return rounds


def _median(rounds: Rounds, key: str, metric: Callable[[Result], float]) -> float:
    return statistics.median(metric(measured[key]) for measured in rounds)


def _ratios(
    rounds: Rounds, top: str, bottom: str, metric: Callable[[Result], float]
) -> list[float]:
    return [metric(measured[top]) / metric(measured[bottom]) for measured in rounds]


def _rate(result: Result) -> float:
    return result.rate


def _cpu(result: Result) -> float:
    return result.cpu_us


def _ratio(value: float) -> str:
    return f"{value:.0f}" if value >= 10 else f"{value:.2f}" if value >= 0.1 else f"{value:.2g}"


def _times(values: Sequence[float]) -> str:
    """A median ratio, with the range over rounds when there are several."""
    shown = f"{_ratio(statistics.median(values))}x"
    if len(values) > 1:
        shown += f" ({_ratio(min(values))}-{_ratio(max(values))})"
    return shown


def _client_table(rounds: Rounds, runs: Sequence[Run]) -> list[str]:
    lines = [
        "| client | accounts | accounts/s | client CPU µs/account | of which GC µs/account "
        "| GC runs (young, middle, full) | peak RSS MiB | server CPU µs/page |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for run in runs:
        first = rounds[0][run.key]
        server = _median(rounds, run.key, lambda r: r.server_cpu_seconds / r.pages * 1e6)
        collections = ", ".join(
            f"{statistics.median(r[run.key].gc_collections[g] for r in rounds):.0f}"
            for g in range(3)
        )
        lines.append(
            f"| {run.label} | {first.accounts:,} | {_median(rounds, run.key, _rate):,.0f} "
            f"| {_median(rounds, run.key, _cpu):.1f} "
            f"| {_median(rounds, run.key, lambda r: r.gc_us):.1f} | {collections} "
            f"| {_median(rounds, run.key, lambda r: r.peak_rss_bytes) / _MIB:.1f} "
            f"| {server:.0f} |"
        )
    return lines


def _medians_note(rounds: Rounds) -> str:
    return (
        f"Medians over {len(rounds)} round{'s' if len(rounds) > 1 else ''}; ratios are medians "
        "of the ratios within each round (range over rounds in brackets)."
    )


# -- the scenarios -------------------------------------------------------------------------------


def _have(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def single(quick: bool) -> Section:
    """Scenario 1: one account's followers, aiomasto against the three baselines."""
    big, small, count = (20_000, 1_000, 2) if quick else (100_000, 5_000, 7)
    walk = [(0, 1, big)]
    runs = [
        Run("aiomasto", "aiomasto (speedups): typed `Account` iteration", "aiomasto", walk),
        Run(
            "aiomasto-stdlib",
            "aiomasto without the speedups (stdlib `json`)",
            "aiomasto",
            walk,
            module="benchmarks.stdlib_json",
        ),
        Run("raw-json", "raw aiohttp + `json.loads`", "raw-json", walk),
        Run("raw-orjson", "raw aiohttp + `orjson.loads`", "raw-orjson", walk),
        Run("raw-typed", "raw aiohttp + aiomasto's decoder (speedups)", "raw-typed", walk),
        Run(
            "raw-typed-stdlib",
            "raw aiohttp + aiomasto's decoder (stdlib)",
            "raw-typed",
            walk,
            module="benchmarks.stdlib_json",
        ),
    ]
    section = Section(f"1. One account's {big:,} followers, limit {PAGE_SIZE}")
    if _have("mastodon"):
        runs.append(Run("mastodon.py", "Mastodon.py 2.3.3", "mastodon.py", [(0, 2, small)]))
    else:
        section.lines.append("Mastodon.py is not installed here: run in `.venv-bench`.\n")
    with running("--followers", f"{big},{small}") as (urls, pid):
        rounds = _rounds("single", runs, count, urls, pid)
    section.lines += [
        "aiomasto decodes with the `speedups` extra (msgspec, orjson) when it is installed, as it "
        "is here; it is also run as if they were not installed (`benchmarks/stdlib_json.py`). "
        "Each is compared like for like with the raw loop using the same JSON parser. "
        f"Mastodon.py walks another account, of {small:,} followers (it is about 60x slower). "
        + _medians_note(rounds),
        "",
        *_client_table(rounds, runs),
        "",
        "| ratio | throughput | client CPU per account |",
        "|---|---:|---:|",
    ]
    pairs = [
        ("aiomasto", "raw-orjson", "aiomasto (speedups) / raw `orjson.loads`: like for like"),
        ("aiomasto-stdlib", "raw-json", "aiomasto (stdlib) / raw `json.loads`: like for like"),
        ("aiomasto", "raw-json", "aiomasto (speedups) / raw `json.loads`"),
        ("aiomasto", "mastodon.py", "aiomasto (speedups) / Mastodon.py"),
        ("aiomasto-stdlib", "aiomasto", "aiomasto (stdlib) / aiomasto (speedups)"),
    ]
    for top, bottom, label in pairs:
        if bottom in rounds[0]:
            throughput = _times(_ratios(rounds, top, bottom, _rate))
            cpu = _times(_ratios(rounds, top, bottom, _cpu))
            section.lines.append(f"| {label} | {throughput} | {cpu} |")
    for key, typed in (("aiomasto", "raw-typed"), ("aiomasto-stdlib", "raw-typed-stdlib")):
        # Paired within each round: the walk against the raw loop that decodes as it does.
        extra = [measured[key].cpu_us - measured[typed].cpu_us for measured in rounds]
        section.measures[f"{key} overhead"] = statistics.median(extra)
        section.measures[f"{key} overhead min"] = min(extra)
        section.measures[f"{key} overhead max"] = max(extra)
        section.measures[f"{typed} cpu"] = _median(rounds, typed, _cpu)
    for key, raw, which, parser in _LIKE_FOR_LIKE:
        vs_raw = statistics.median(_ratios(rounds, key, raw, _rate))
        cpu_us = _median(rounds, key, _cpu)
        section.measures[f"{key} cpu"] = cpu_us
        section.measures[f"{raw} cpu"] = _median(rounds, raw, _cpu)
        section.targets += [
            Target(
                f"typed iteration throughput {which} vs the raw aiohttp loop with {parser}",
                f"{vs_raw:.2f}x",
                "≥ 0.8x",
                vs_raw >= 0.8,
            ),
            Target(
                f"typed iteration client CPU per account, {which}",
                f"{cpu_us:.1f} µs",
                "≤ 30 µs",
                cpu_us <= 30,
            ),
        ]
    if "mastodon.py" in rounds[0]:
        vs_mastodon_py = statistics.median(_ratios(rounds, "aiomasto", "mastodon.py", _rate))
        section.targets.append(
            Target(
                "throughput vs Mastodon.py 2.3.3",
                f"{vs_mastodon_py:.0f}x",
                "≥ 40x",
                vs_mastodon_py >= 40,
            )
        )
    return section


def many(quick: bool) -> Section:
    """Scenario 2: many accounts at once, through one Session and over 20 instances."""
    accounts, followers, reference, count = (
        (40, 500, 20_000, 1) if quick else (200, 2_000, 100_000, 3)
    )
    instances = 20
    one = [(0, account, followers) for account in range(1, accounts + 1)]
    spread = [((account - 1) % instances, account, followers) for account in range(1, accounts + 1)]
    walks = f"{accounts} accounts x {followers:,}"
    runs = [
        Run("single", "aiomasto, 1 stream", "aiomasto", [(0, accounts + 1, reference)]),
        Run("c8", "aiomasto, concurrency 8, one Session", "aiomasto", one, 8),
        Run("c32", "aiomasto, concurrency 32, one Session", "aiomasto", one, 32),
    ]
    for concurrency in (8, 32):
        label = f"aiomasto, concurrency {concurrency}, {instances} instances"
        runs.append(Run(f"c{concurrency}x20", label, "aiomasto", spread, concurrency, instances))
    label = f"raw aiohttp + `json.loads`, concurrency 32, {instances} instances"
    runs.append(Run("raw-c32x20", label, "raw-json", spread, 32, instances))
    counts = ",".join([str(followers)] * accounts + [str(reference)])
    with running("--followers", counts, "--origins", str(instances)) as (urls, pid):
        rounds = _rounds("many", runs, count, urls, pid)
    section = Section(f"2. Many accounts at once: {walks} followers")
    section.lines += [
        f"Each of the {instances} instances is its own origin (port) on loopback, served by the "
        "same server process; aiomasto uses one Session per instance over one shared aiohttp "
        "pool. The walks are spread round-robin over the instances. CPU efficiency is the "
        "single stream's client CPU per account divided by the run's. " + _medians_note(rounds),
        "",
        *_client_table(rounds, runs),
        "",
        "| aiomasto run | throughput vs 1 stream | CPU efficiency vs 1 stream |",
        "|---|---:|---:|",
    ]
    for run in runs[1:5]:
        throughput = _ratios(rounds, run.key, "single", _rate)
        cpu = _ratios(rounds, "single", run.key, _cpu)
        section.lines.append(f"| {run.label} | {_times(throughput)} | {_times(cpu)} |")
    against_raw = _ratios(rounds, "c32x20", "raw-c32x20", _rate)
    section.lines += [
        "",
        f"aiomasto's throughput at concurrency 32 over {instances} instances is "
        f"{_times(against_raw)} the raw aiohttp + `json.loads` loop's at the same concurrency.",
    ]
    efficiency = statistics.median(_ratios(rounds, "single", "c32x20", _cpu))
    section.targets.append(
        Target(
            f"CPU efficiency at concurrency 32 over {instances} instances vs 1 stream",
            f"{efficiency:.2f}x",
            "≥ 0.7x",
            efficiency >= 0.7,
        )
    )
    return section


_DECODERS = {
    "decode_json_list": "aiomasto `decode_json_list(Account, body)`, with the speedups",
    "stdlib": "aiomasto without the speedups: `json.loads`, then `decode_list`",
    "structuring": "aiomasto structuring alone (`decode_list` on the parsed list)",
    "json.loads": "`json.loads(body)`",
    "orjson.loads": "`orjson.loads(body)`",
}


def decode(quick: bool) -> Section:
    """Scenario 3: decoding pages alone, against the JSON parsers on the same bytes."""
    rounds, repeats = (3, 5) if quick else (15, 15)
    pages = 12  # 960 accounts: every row template of the server once
    followers = pages * PAGE_SIZE
    with running("--followers", str(followers)) as ([url], _):
        data = _client(
            "decode", url, "--count", str(followers), "--pages", str(pages),
            "--rounds", str(rounds), "--repeats", str(repeats),
        )  # fmt: skip
    per_round: dict[str, list[float]] = data["seconds_per_account"]
    accounts = data["accounts"]
    section = Section(f"3. Decoding alone: {pages} pages of {PAGE_SIZE} accounts")
    section.lines += [
        f"{accounts} accounts, {data['bytes'] / accounts:,.0f} bytes of JSON each; every round "
        f"times each candidate as the best of {repeats} passes over all pages, in CPU time, "
        f"the order rotating; medians over {rounds} rounds. With the speedups aiomasto decodes "
        f"with `{_json_parser()}`.",
        "",
        "| decoding | µs/account | µs/page | x `json.loads` | x `orjson.loads` |",
        "|---|---:|---:|---:|---:|",
    ]
    for key, label in _DECODERS.items():
        seconds = statistics.median(per_round[key])
        vs_json = [a / b for a, b in zip(per_round[key], per_round["json.loads"], strict=True)]
        vs_orjson = [a / b for a, b in zip(per_round[key], per_round["orjson.loads"], strict=True)]
        section.lines.append(
            f"| {label} | {seconds * 1e6:.2f} | {seconds * PAGE_SIZE * 1e6:,.0f} "
            f"| {_times(vs_json)} | {_times(vs_orjson)} |"
        )
    goals = (
        ("decode_json_list", "orjson.loads", "with the speedups", 2.0),
        ("stdlib", "json.loads", "without the speedups", 1.5),
    )
    for key, parser, which, goal in goals:
        ratio = statistics.median(
            a / b for a, b in zip(per_round[key], per_round[parser], strict=True)
        )
        section.targets.append(
            Target(
                f"decoding a page into Accounts vs `{parser}` on the same bytes, {which}",
                f"{ratio:.2f}x",
                f"≤ {goal:g}x",
                ratio <= goal,
            )
        )
        section.measures[f"{key} decode"] = statistics.median(per_round[key]) * 1e6
        section.measures[f"{parser} decode"] = statistics.median(per_round[parser]) * 1e6
    return section


def memory(quick: bool) -> Section:
    """Scenario 4: peak RSS of the client streaming ever more followers (``bench_memory``)."""
    counts = bench_memory.QUICK_COUNTS if quick else bench_memory.COUNTS
    try:
        walks, _ = bench_memory.measure(counts)
    except bench_memory.WalkError as exc:
        raise BenchError(str(exc)) from None
    first, last = walks[0], walks[-1]
    section = Section(f"4. Streaming {last.count:,} followers: memory")
    section.lines += [
        "A fresh client process per count (`benchmarks/bench_memory.py`); peak RSS is "
        "`ru_maxrss` after the walk.",
        "",
        "| followers | accounts/s | client CPU µs/account | peak RSS MiB | growth MiB |",
        "|---:|---:|---:|---:|---:|",
    ]
    for walk in walks:
        section.lines.append(
            f"| {walk.count:,} | {walk.count / walk.seconds:,.0f} "
            f"| {walk.cpu_seconds / walk.count * 1e6:.1f} | {walk.peak_rss_bytes / _MIB:.1f} "
            f"| {(walk.peak_rss_bytes - first.peak_rss_bytes) / _MIB:+.1f} |"
        )
    section.lines += ["", "RSS during the last walk:", "", "| accounts streamed | RSS MiB |"]
    section.lines.append("|---:|---:|")
    section.lines += [f"| {items:,} | {rss / _MIB:.1f} |" for items, rss in last.samples]
    growth_mb = (last.peak_rss_bytes - first.peak_rss_bytes) / 1e6
    section.targets.append(
        Target(
            f"peak RSS growth from {first.count:,} to {last.count:,} followers",
            f"{growth_mb:+.1f} MB",
            "< 10 MB",
            growth_mb < 10,
        )
    )
    return section


def rate(quick: bool) -> Section:
    """Scenario 5: the share of the rate budget a long crawl uses under ``pace``, and 429s."""
    limit, period, windows = (20, 2, 4) if quick else (60, 6, 6)
    followers = 1_000_000
    options = ["--followers", str(followers), "--limit-requests", str(limit)]
    with running(*options, "--limit-window", str(period)) as ([url], _):
        data = _client(
            "pace", url, "--count", str(followers), "--period", str(period),
            "--windows", str(windows),
        )  # fmt: skip
        with urllib.request.urlopen(f"{url}/bench/stats", timeout=10) as response:  # noqa: S310 - the loopback server
            stats = json.loads(response.read())
    served = [stats["served"].get(str(window), 0) for window in data["windows"]]
    used = sum(served) / (limit * windows)
    refused = stats["refused"]
    section = Section(f"5. Rate budget under `pace`: {limit} requests per {period} s")
    section.lines += [
        f"The server enforces {limit} `/api` requests per {period} s window, aligned on the "
        f"epoch like Mastodon's, and answers 429 past it. One Session with "
        f'`rate_limit="pace"` gets its token, then crawls from the start of a window for '
        f"{windows} whole windows ({data['accounts']:,} accounts in {data['pages']} pages, "
        f"each checked), learning the limit from the first response.",
        "",
        "| requests served per window | budget used | 429s |",
        "|---|---:|---:|",
        f"| {', '.join(str(count) for count in served)} | {used:.1%} | {refused} |",
    ]
    section.targets += [
        Target("rate budget used under `pace`", f"{used:.1%}", "≥ 95%", used >= 0.95),
        Target("429s under `pace`", str(refused), "0", refused == 0),
    ]
    return section


def distributed(quick: bool) -> Section:
    """Scenario 7: crawl workers on one PostgreSQL, and the shared limiters' overhead."""
    from benchmarks import bench_distributed

    section = Section("7. The distributed crawl and the shared rate budget")
    section.lines += [
        "`python -m benchmarks.bench_distributed`: a throwaway PostgreSQL and redis-server "
        "(Debian's packages); see the module's docstring for the method.",
        "",
        *asyncio.run(bench_distributed.measure(quick)),
    ]
    return section


SCENARIOS: dict[str, Callable[[bool], Section]] = {
    "single": single,
    "many": many,
    "decode": decode,
    "memory": memory,
    "rate": rate,
    "crawl": bench_crawl.crawl,
    "distributed": distributed,
}


# -- the report ----------------------------------------------------------------------------------


def _json_parser() -> str:
    loads = getattr(_converter, "_json_loads", json.loads)
    parser = f"{getattr(loads, '__module__', '?')}.loads"
    if getattr(_converter, "_msgspec", None) is not None:
        return f"msgspec.json.Decoder(list[Account]), else {parser}"
    return parser


def _version(package: str) -> str:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def _git(*args: str) -> str:
    try:
        done = subprocess.run(  # noqa: S603 - a fixed git command
            ["git", *args],  # noqa: S607 - git from PATH
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=False,
        )
    except OSError:
        return ""
    return done.stdout.strip() if done.returncode == 0 else ""


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.partition(":")[2].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def _header(argv: Sequence[str], seconds: float, started: datetime, load: str) -> list[str]:
    command = f"`{' '.join(['python -m benchmarks.run', *argv])}`"
    if not argv:
        command = f"`make bench` ({command})"
    commit = _git("rev-parse", "--short", "HEAD") or "unknown"
    if _git("status", "--porcelain", "--", "aiomasto"):
        commit += " with uncommitted changes in aiomasto/"
    return [
        "# Benchmark results",
        "",
        f"- command: {command}, {started:%Y-%m-%d %H:%M} UTC, {seconds:.0f} s; load average "
        f"{load} at the start",
        f"- machine: {os.cpu_count()} CPUs ({_cpu_model()}), {platform.system()} "
        f"{platform.machine()}, Python {platform.python_version()}; server on one CPU, "
        "each client on the other",
        f"- aiomasto {_version('aiomasto')} at {commit}, parsing JSON with `{_json_parser()}`; "
        f"aiohttp {_version('aiohttp')}, orjson {_version('orjson')}, "
        f"Mastodon.py {_version('Mastodon.py')}",
        "",
    ]


def _overhead(sections: Sequence[Section]) -> Section | None:
    """Client CPU per account outside decoding, over the raw loop with the same parser.

    Measured directly, paired within each round of scenario 1: the typed walk's CPU less that
    of the raw loop which decodes each page with aiomasto's own decoder (the same work on the
    same bytes), so what is left is the session, requester, rate limiter, pagination and the
    garbage collection their objects cause. Scenario 3's figures show, beside it, what the
    decoding itself adds over the bare parser.
    """
    measures: dict[str, float] = {}
    for section in sections:
        measures.update(section.measures)
    pairs = (
        ("aiomasto", "raw-orjson", "raw-typed", "decode_json_list", "orjson.loads", "with"),
        ("aiomasto-stdlib", "raw-json", "raw-typed-stdlib", "stdlib", "json.loads", "without"),
    )
    if any(f"{pair[0]} overhead" not in measures for pair in pairs):
        return None
    section = Section("6. Overhead outside decoding")
    section.lines += [
        "Client CPU per account of the typed walk (scenario 1) over that of the raw aiohttp loop "
        "that decodes each page with aiomasto's own decoder (`decode_json_list(Account, body)`: "
        "the same decoding work on the same bytes), paired within each round (median, range "
        "over rounds in brackets): the session, requester, rate limiter and pagination, with "
        "the garbage collection their objects cause. Beside it, the raw loop's extra CPU when it "
        "decodes with aiomasto's decoder instead of the bare parser (scenario 1), and what "
        "decoding alone adds over the parser on the same bytes (scenario 3).",
        "",
        "| | walk over the raw loop with the same parser µs/account | that raw loop decoding "
        "into entities, over it µs/account | decoding alone over the parser µs/account "
        "| overhead µs/account |",
        "|---|---:|---:|---:|---:|",
    ]
    for walk, raw, typed, decoder, parser, speedups in pairs:
        which = f"{speedups} the speedups"
        walk_extra = measures[f"{walk} cpu"] - measures[f"{raw} cpu"]
        typed_extra = measures[f"{typed} cpu"] - measures[f"{raw} cpu"]
        decode_extra = ""
        if f"{decoder} decode" in measures and f"{parser} decode" in measures:
            decode = measures[f"{decoder} decode"] - measures[f"{parser} decode"]
            decode_extra = f"{decode:.1f}"
        extra = measures[f"{walk} overhead"]
        low, high = measures[f"{walk} overhead min"], measures[f"{walk} overhead max"]
        section.lines.append(
            f"| {which} | {walk_extra:.1f} | {typed_extra:.1f} | {decode_extra} "
            f"| {extra:.1f} ({low:.1f} to {high:.1f}) |"
        )
        section.targets.append(
            Target(
                f"overhead outside decoding over the raw loop, {which}",
                f"{extra:.1f} µs/account",
                "≤ 2 µs",
                extra <= 2,
            )
        )
    return section


def _targets(sections: Sequence[Section], failed: Sequence[str]) -> list[str]:
    lines = ["## Targets", "", "| target | measured | goal | met |", "|---|---:|---:|:---:|"]
    for section in sections:
        for target in section.targets:
            met = "yes" if target.met else "**no**"
            lines.append(f"| {target.name} | {target.measured} | {target.goal} | {met} |")
    lines += [f"| {name} | **failed** | | **no** |" for name in failed]
    return [*lines, ""]


def main(argv: Sequence[str] | None = None) -> int:
    """Run the scenarios, print the report and write it; non-zero if one could not run."""
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.run",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--quick", action="store_true", help="a short smoke run")
    parser.add_argument(
        "--only", action="append", choices=list(SCENARIOS), help="run this scenario (repeatable)"
    )
    parser.add_argument(
        "--output",
        type=Path,
        help=f"write the report here (default: {RESULTS.relative_to(ROOT)} for a full run of "
        "every scenario, nowhere otherwise)",
    )
    args = list(sys.argv[1:] if argv is None else argv)
    options = parser.parse_args(args)
    started, clock = datetime.now(UTC), time.perf_counter()
    load = ", ".join(f"{value:.2f}" for value in os.getloadavg())
    sections: list[Section] = []
    failed: list[str] = []
    for name in options.only or list(SCENARIOS):
        print(f"[{name}] {SCENARIOS[name].__doc__}", flush=True)
        try:
            sections.append(SCENARIOS[name](options.quick))
        except (BenchError, ServerError) as exc:
            print(f"[{name}] FAILED: {exc}", file=sys.stderr, flush=True)
            failed.append(name)
            sections.append(Section(f"{name}: failed", [f"**Failed**: {exc}"]))
    lines = _header(args, time.perf_counter() - clock, started, load)
    overhead = _overhead(sections)
    if overhead is not None:
        sections.append(overhead)
    lines += _targets(sections, failed)
    for section in sections:
        lines += [f"## {section.title}", "", *section.lines, ""]
    report = "\n".join(lines)
    print("\n" + report)
    output = options.output
    if output is None and not options.quick and not options.only:
        output = RESULTS
    if output is not None:
        output.write_text(report)
        print(f"written to {output}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
