"""Where a walk's client CPU goes, per account: py-spy over one benchmark client.

Runs the benchmark server and one client walk (``benchmarks.clients``) under ``py-spy record``
(sampling, not blocking the process), then sorts every sample by the innermost frame that
says what it was doing: decoding (parsing and structuring), aiomasto's own request path
(Session, Requester, rate limiter, pagination), aiohttp and the event loop, or the benchmark's
check of each account. Prints each part's share of the samples (idle waits excluded) and
that share of the client CPU per account the walk measured (``time.process_time()``), so a
busy machine, which stretches wall time, does not inflate it::

    python -m benchmarks.profile aiomasto                 # aiomasto with the speedups
    python -m benchmarks.profile aiomasto --stdlib        # aiomasto without them
    python -m benchmarks.profile raw-orjson --count 200000

py-spy comes from PyPI (``pip install py-spy``); it is not in the benchmark requirements, as
``make bench`` does not need it.
"""

from __future__ import annotations

import argparse
import collections
import json
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from benchmarks.server import running

ROOT = Path(__file__).resolve().parent.parent

# Each frame, innermost first, is matched against these (function prefix, file) rules; the
# first that matches names the sample's part. aiohttp's own frames (and the event loop's under
# them) end the search: that time is the HTTP client's, whoever called it.
_RULES = (
    ("check", "Expected.check", "clients.py"),
    ("check", "related_", "server.py"),
    ("check", "_username", "server.py"),
    ("decoding: msgspec (parse and structure)", "_make_strict_list_decoder", "_converter.py"),
    ("decoding: parse", "loads", "_converter.py"),
    ("decoding: parse", "", "json/"),
    ("decoding: structure", "", "<aiomasto structure"),
    ("decoding: structure", "", "_converter.py"),
    ("decoding: parse", "_raw.<locals>.walk", "clients.py"),  # orjson/json.loads, in C
    ("aiohttp, yarl and the event loop", "", "aiohttp/"),
    ("aiohttp, yarl and the event loop", "_raw.<locals>.get", "clients.py"),
    ("aiomasto: pagination", "", "aiomasto/pagination.py"),
    ("aiomasto: session", "", "aiomasto/session.py"),
    ("aiomasto: requester and transport", "", "aiomasto/_requester.py"),
    ("aiomasto: requester and transport", "", "aiomasto/_http.py"),
    ("aiomasto: requester and transport", "", "aiomasto/_urls.py"),
    ("aiomasto: rate limits", "", "aiomasto/_limiter.py"),
    ("aiomasto: rate limits", "", "aiomasto/ratelimit.py"),
    ("aiomasto: response", "", "aiomasto/_protocol.py"),
)


def _part(frames: Sequence[tuple[str, str]]) -> str:
    for function, file in reversed(frames):
        for part, prefix, where in _RULES:
            if where in file and function.startswith(prefix):
                return part
    return "aiohttp, yarl and the event loop"


def _frame(text: str) -> tuple[str, str]:
    """``(function, file)`` of a py-spy frame ``function (path:line)``."""
    function, _, where = text.partition(" (")
    return function, where.rsplit(":", 1)[0]


Profile = tuple[dict[str, float], float, dict[str, collections.Counter[str]]]


def profile(client: str, count: int, stdlib: bool, rate: int) -> Profile:
    """Each part's share of the walk's samples, the client CPU µs per account measured, and
    each part's samples by innermost frame."""
    spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    module = "benchmarks.stdlib_json" if stdlib else "benchmarks.clients"
    with running("--followers", str(count)) as (urls, pid), tempfile.TemporaryDirectory() as tmp:
        plan = {
            "client": client,
            "origins": urls,
            "jobs": [(0, 1, count)],
            "concurrency": 1,
            "server_pid": pid,
        }
        raw = Path(tmp) / "raw.txt"
        command = [spy, "record", "--nonblocking", "-r", str(rate), "-f", "raw", "-o", str(raw)]
        command += ["--", sys.executable, "-m", module, "walk", json.dumps(plan)]
        done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=False)  # noqa: S603 - py-spy over our own interpreter
        if done.returncode != 0:
            raise SystemExit(f"py-spy failed: {done.stderr.strip()[-500:]}")
        lines = raw.read_text().splitlines()
        # The client's Result is its one JSON line; py-spy adds lines of its own.
        result = next(json.loads(line) for line in done.stdout.splitlines() if line.startswith("{"))
    cpu_us = result["cpu_seconds"] / result["accounts"] * 1e6
    counts: collections.Counter[str] = collections.Counter()
    inner: dict[str, collections.Counter[str]] = collections.defaultdict(collections.Counter)
    total = 0
    for line in lines:
        stack, _, number = line.rpartition(" ")
        frames = [_frame(f) for f in stack.split(";")]
        # Only the event loop's work: start-up and imports are not in it, nor are idle waits.
        functions = [function for function, _ in frames]
        if "BaseEventLoop._run_once" not in functions or "EpollSelector.select" in functions:
            continue
        part = _part(frames)
        counts[part] += int(number)
        function, file = frames[-1]
        inner[part][f"{function} ({file.rsplit('/', 1)[-1]})"] += int(number)
        total += int(number)
    return {part: n / total for part, n in counts.most_common()}, cpu_us, inner


def main(argv: Sequence[str] | None = None) -> None:
    """Profile one client's walk and print the table."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.profile", description=__doc__)
    parser.add_argument("client", choices=["aiomasto", "raw-json", "raw-orjson"])
    parser.add_argument("--stdlib", action="store_true", help="aiomasto without the speedups")
    parser.add_argument("--count", type=int, default=100_000, help="followers to walk")
    parser.add_argument("--rate", type=int, default=1000, help="samples per second")
    parser.add_argument("--top", type=int, default=0, help="show each part's N busiest frames")
    options = parser.parse_args(argv)
    shares, cpu_us, inner = profile(options.client, options.count, options.stdlib, options.rate)
    print("| part | share of samples | client CPU µs/account |")
    print("|---|---:|---:|")
    for part, share in shares.items():
        print(f"| {part} | {share:.1%} | {share * cpu_us:.1f} |")
    print(f"| all | 100% | {cpu_us:.1f} |")
    total = sum(sum(frames.values()) for frames in inner.values())
    for part in shares if options.top else ():
        print(f"\n{part}, innermost frames:")
        for frame, n in inner[part].most_common(options.top):
            print(f"  {n / total * cpu_us:5.2f} µs/account  {frame}")


if __name__ == "__main__":
    main()
