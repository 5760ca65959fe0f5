"""Memory benchmark: a crawler walking 1,000,000 followers must run in constant memory.

For 10,000, 100,000 and 1,000,000 followers of one account on the benchmark server
(``benchmarks/server.py``, in its own process on its own CPU), a fresh client process streams
them with ``Session(url, app=App(name="bench")).followers(id, limit=80)`` and reports its peak
RSS (``getrusage(RUSAGE_SELF).ru_maxrss``). Along the way it samples its current RSS
(``/proc/self/statm``) at 10k, 100k, 250k, 500k and 1M accounts, and checks every account
against the one the server must have sent at that position (id and username, newest follow
first), so a walk that skips, repeats or reorders anything fails and gets no number.

Run from the repository root (Linux only: it reads /proc and pins CPUs)::

    python -m benchmarks.bench_memory           # 10k, 100k and 1M followers
    python -m benchmarks.bench_memory --quick   # 10k and 100k

It exits non-zero if a walk fails, or if peak RSS grows by more than 10 MiB from the smallest
to the largest count.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import resource
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from aiomasto import App, Session
from benchmarks.server import ServerError, pin_to_cpu, related_id, related_username, running

COUNTS = (10_000, 100_000, 1_000_000)
QUICK_COUNTS = (10_000, 100_000)
CHECKPOINTS = (10_000, 100_000, 250_000, 500_000, 1_000_000)
PAGE_SIZE = 80
MAX_GROWTH_MIB = 10.0
ROOT = Path(__file__).resolve().parent.parent
_MIB = 1024 * 1024
_PAGE_BYTES = os.sysconf("SC_PAGE_SIZE")
_TICKS = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class Walk:
    """What one client process measured while streaming ``count`` followers."""

    count: int
    seconds: float
    cpu_seconds: float
    server_cpu_seconds: float
    pages: int
    peak_rss_bytes: int
    samples: list[tuple[int, int]]
    """(accounts streamed so far, current RSS in bytes) at each checkpoint."""
    cpus: list[int]
    """The CPUs the client ran on."""


class WalkError(Exception):
    """The server's followers did not arrive exactly, in order."""


# -- the client process --------------------------------------------------------------------------


def process_cpu_seconds(pid: int) -> float:
    """User plus system CPU time of another process, from /proc/<pid>/stat."""
    with open(f"/proc/{pid}/stat") as stat:
        # Fields after the command name (which may contain spaces): state is the first, then
        # utime and stime are the 12th and 13th.
        fields = stat.read().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / _TICKS


def _current_rss() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * _PAGE_BYTES


async def _walk(url: str, account: int, count: int, server_pid: int) -> Walk:
    checkpoints = set(CHECKPOINTS)
    samples: list[tuple[int, int]] = []
    seen = 0
    async with Session(url, app=App(name="bench")) as masto:
        # Untimed: registering the app, getting its token, and a first page, at which the
        # server builds its templates and the client its decoders. One-off costs, not the walk.
        await masto.followers_page(str(account), limit=1)
        pager = masto.followers(str(account), limit=PAGE_SIZE)
        started, cpu_started = time.perf_counter(), time.process_time()
        server_started = process_cpu_seconds(server_pid)
        async for follower in pager:
            # Newest follow first: the k-th follower (k = 0 the oldest) arrives at count-1-k.
            # Comparing with the one expected at each position, not collecting ids in a set,
            # keeps the check itself out of the memory being measured; the expected ids are
            # all distinct, so this also proves there are no duplicates.
            k = count - 1 - seen
            if k < 0:
                raise WalkError(f"more than {count:,} accounts (the next was {follower.id})")
            expected = str(related_id("followers", account, k))
            if follower.id != expected or follower.username != related_username(k):
                raise WalkError(
                    f"account #{seen + 1} is {follower.id} ({follower.username}), "
                    f"expected {expected} ({related_username(k)})"
                )
            seen += 1
            if seen in checkpoints:
                samples.append((seen, _current_rss()))
        seconds = time.perf_counter() - started
        cpu_seconds = time.process_time() - cpu_started
        server_cpu_seconds = process_cpu_seconds(server_pid) - server_started
    if seen != count:
        raise WalkError(f"the walk ended after {seen} accounts, expected {count}")
    return Walk(
        count=count,
        seconds=seconds,
        cpu_seconds=cpu_seconds,
        server_cpu_seconds=server_cpu_seconds,
        pages=pager.pages_fetched,
        peak_rss_bytes=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,  # KiB
        samples=samples,
        cpus=sorted(os.sched_getaffinity(0)),
    )


def _client(url: str, account: int, count: int, server_pid: int) -> int:
    pin_to_cpu(1)
    try:
        walk = asyncio.run(_walk(url, account, count, server_pid))
    except WalkError as exc:
        print(f"walk of {count:,} followers failed: {exc}", file=sys.stderr)
        return 3
    print(json.dumps(asdict(walk)))
    return 0


# -- the driver ----------------------------------------------------------------------------------


def _run_client(url: str, account: int, count: int, server_pid: int) -> Walk:
    command = [sys.executable, "-m", "benchmarks.bench_memory", "--client", url]
    command += ["--account", str(account), "--count", str(count), "--server-pid", str(server_pid)]
    # A fresh interpreter per count, so each peak RSS belongs to one walk alone.
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=False)  # noqa: S603 - our own interpreter and module
    if done.returncode != 0:
        raise WalkError(done.stderr.strip() or f"the client exited with {done.returncode}")
    data = json.loads(done.stdout.splitlines()[-1])
    data["samples"] = [(items, rss) for items, rss in data["samples"]]
    return Walk(**data)


def _mib(value: float) -> str:
    return f"{value / _MIB:.1f}"


def _cpus(cpus: Sequence[int]) -> str:
    return ",".join(str(cpu) for cpu in cpus)


def _report(walks: list[Walk], server_cpus: list[int]) -> None:
    first = walks[0]
    print(
        f"\nmachine: {os.cpu_count()} CPUs, Python {platform.python_version()}; client on CPU "
        f"{_cpus(first.cpus)}, server on CPU {_cpus(server_cpus)}; page size {PAGE_SIZE}\n"
    )
    print(
        "| followers | seconds | accounts/s | client CPU µs/account | server CPU µs/page "
        f"| peak RSS MiB | growth vs {first.count:,} MiB |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|")
    for walk in walks:
        server = walk.server_cpu_seconds
        growth = walk.peak_rss_bytes - first.peak_rss_bytes
        print(
            f"| {walk.count:,} | {walk.seconds:.2f} | {walk.count / walk.seconds:,.0f} "
            f"| {walk.cpu_seconds / walk.count * 1e6:.1f} | {server / walk.pages * 1e6:.0f} "
            f"| {_mib(walk.peak_rss_bytes)} | {growth / _MIB:+.1f} |"
        )
    last = walks[-1]
    print(f"\nRSS during the {last.count:,} walk (/proc/self/statm):\n")
    print("| accounts streamed | RSS MiB |")
    print("|---:|---:|")
    for items, rss in last.samples:
        print(f"| {items:,} | {_mib(rss)} |")


def measure(counts: Sequence[int]) -> tuple[list[Walk], list[int]]:
    """Walk each count in a fresh client process; the walks and the server's CPUs.

    Raises :class:`WalkError` if the server does not start or a walk fails.
    """
    followers = ",".join(str(count) for count in counts)
    try:
        with running("--followers", followers) as ([url], server_pid):
            # The server pins itself before it prints its URL.
            server_cpus = sorted(os.sched_getaffinity(server_pid))
            print(f"benchmark server at {url}")
            walks: list[Walk] = []
            for account, count in enumerate(counts, start=1):
                print(f"streaming {count:,} followers ...", flush=True)
                walks.append(_run_client(url, account, count, server_pid))
    except ServerError as exc:
        raise WalkError(str(exc)) from None
    return walks, server_cpus


def _drive(counts: Sequence[int]) -> int:
    try:
        walks, server_cpus = measure(counts)
    except WalkError as exc:
        print(f"FAILED: {exc}", file=sys.stderr)
        return 1
    _report(walks, server_cpus)
    growth = (walks[-1].peak_rss_bytes - walks[0].peak_rss_bytes) / _MIB
    verdict = "OK" if growth <= MAX_GROWTH_MIB else "FAIL"
    print(
        f"\n{verdict}: peak RSS grew by {growth:.1f} MiB from {walks[0].count:,} to "
        f"{walks[-1].count:,} followers (limit {MAX_GROWTH_MIB:.0f} MiB)"
    )
    return 0 if verdict == "OK" else 1


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark (or, with ``--client``, one walk in this process)."""
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.bench_memory",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--quick", action="store_true", help="10k and 100k followers only")
    # The driver runs each walk as a child process of this same module.
    parser.add_argument("--client", metavar="URL", help=argparse.SUPPRESS)
    parser.add_argument("--account", type=int, default=1, help=argparse.SUPPRESS)
    parser.add_argument("--count", type=int, default=COUNTS[0], help=argparse.SUPPRESS)
    parser.add_argument("--server-pid", type=int, help=argparse.SUPPRESS)
    options = parser.parse_args(argv)
    if options.client:
        if options.server_pid is None:
            parser.error("--client needs --server-pid")
        return _client(options.client, options.account, options.count, options.server_pid)
    return _drive(QUICK_COUNTS if options.quick else COUNTS)


if __name__ == "__main__":
    sys.exit(main())
