"""``aiomasto crawl``: the crawler's command line, a thin shell over :class:`Crawler`.

It reads seeds (arguments, ``--from-file``), keeps the crawl in one SQLite file
(:class:`SqliteCrawlSink`), shows progress on stderr, prints a one-screen summary on stdout
and exports the results. SIGINT and SIGTERM cancel the crawl: the page being committed is
committed or not at all (the engine shields it), the database is closed, a resume command is
printed and the exit status is 130 (143 for SIGTERM). A second signal while stopping quits at
once: the database is safe even then, as it is after ``kill -9``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import re
import shlex
import shutil
import signal
import sys
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Self, TextIO, TypeVar, cast

import aiohttp
from attrs import frozen

from aiomasto._http import DEFAULT_TIMEOUT, StaticResolver
from aiomasto.errors import ConfigurationError
from aiomasto.stores import JsonFileTokenStore

from ._engine import Crawler, CrawlProgress, CrawlSummary
from ._export import EXPORT_KINDS, ExportKind, export
from ._model import RELATIONS, CrawlPlan, InstanceRecord, Relation
from ._open import describe_db, is_postgres, open_sink
from ._sqlite import CrawlStats
from ._targets import parse_target

__all__ = ["CrawlCommandError", "CrawlSettings", "add_arguments", "crawl", "settings_from"]

_T = TypeVar("_T")

DEFAULT_DB = "crawl.sqlite"
# Progress every this many seconds: a terminal line is cheap to redraw, a log line is not.
TTY_PROGRESS_EVERY = 0.5
LOG_PROGRESS_EVERY = 10.0
_SHOWN_INSTANCES = 12
_SHOWN_WAITING = 3
# A seed file's comment: a line starting with '#', or whitespace then '#' after a seed (a
# seed itself holds no whitespace, and "https://host#123" keeps its '#').
_COMMENT = re.compile(r"(^|\s)#.*$")
_RELATION_CHOICES: dict[str, tuple[Relation, ...]] = {
    "followers": ("followers",),
    "following": ("following",),
    "both": RELATIONS,
}
# What a stored plan fixes: these flags cannot change on --resume.
_PLAN_FLAGS = ("relations", "depth", "max_accounts", "max_per_instance", "max_per_list")


class CrawlCommandError(Exception):
    """An expected failure of ``aiomasto crawl``: printed as one line, exit status 1."""


@frozen(kw_only=True)
class CrawlSettings:
    """What ``aiomasto crawl`` was asked to do, checked; :func:`crawl` does it.

    ``db`` is an SQLite file, or a ``postgresql://`` URL (a crawl shared with
    ``aiomasto crawl-worker``); ``db_text`` is the database as the user typed it (for the
    resume hint, with a password masked). ``plan`` is ``None`` with ``resume`` (the stored plan
    is used) and when only exporting.
    """

    db: Path | str
    db_text: str
    plan: CrawlPlan | None
    resume: bool = False
    concurrency: int = 16
    per_instance: int = 4
    exports: tuple[ExportKind, ...] = ()
    export_dir: Path | None = None
    token_store: Path
    app_name: str
    resolve: tuple[str, ...] = ()
    insecure_http: bool = False
    quiet: bool = False
    progress_every: float | None = None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``crawl`` subcommand's options."""
    parser.add_argument(
        "seeds",
        nargs="*",
        metavar="ACCOUNT",
        help="accounts to crawl: @user@domain, a profile URL, or https://host#id",
    )
    parser.add_argument(
        "--from-file",
        metavar="PATH",
        help="read more seeds from PATH, one a line ('#' comments, blank lines; '-' = stdin)",
    )
    parser.add_argument(
        "--db",
        metavar="PATH",
        help=f"the crawl's SQLite database (default: {DEFAULT_DB}); an existing one holding "
        "the same plan is continued",
    )
    parser.add_argument(
        "--resume",
        metavar="DB",
        help="continue the crawl stored in DB (no seeds; tuning flags allowed)",
    )
    parser.add_argument(
        "--relations",
        choices=tuple(_RELATION_CHOICES),
        help="which lists to walk (default: both)",
    )
    parser.add_argument(
        "--depth",
        type=_whole(0),
        help="also walk accounts found up to N hops away (default: 0, the seeds only)",
    )
    parser.add_argument(
        "--max-accounts", type=_whole(1), help="walk the lists of at most N accounts"
    )
    parser.add_argument(
        "--max-per-instance", type=_whole(1), help="at most N accounts per handle domain"
    )
    parser.add_argument("--max-per-list", type=_whole(1), help="read at most N accounts per list")
    parser.add_argument(
        "--concurrency", type=_whole(1), default=16, help="lists fetched at once (default: 16)"
    )
    parser.add_argument(
        "--per-instance", type=_whole(1), default=4, help="at once per instance (default: 4)"
    )
    parser.add_argument(
        "--export",
        action="append",
        choices=EXPORT_KINDS,
        default=[],
        help="write the results as jsonl, csv, graphml or edgelist (repeatable); with no "
        "seeds and a crawl in --db, only export",
    )
    parser.add_argument(
        "--export-dir",
        metavar="DIR",
        help="where exports go (default: <db name>-export next to the database)",
    )
    parser.add_argument(
        "--token-store",
        metavar="PATH",
        help="token store for app tokens and 'aiomasto login' users (default: the CLI's, "
        "$AIOMASTO_STORE or $XDG_CONFIG_HOME/aiomasto/credentials.json)",
    )
    parser.add_argument(
        "--resolve",
        action="append",
        default=[],
        metavar="HOST=IP:PORT",
        help="send HOST to IP:PORT, like curl's --resolve (repeatable)",
    )
    parser.add_argument(
        "--insecure-http",
        action="store_true",
        help="talk plain http to instances: for the fake fediverse and tests only, never "
        "for real servers",
    )
    parser.add_argument(
        "--quiet", action="store_true", help="no progress on stderr (the summary is printed)"
    )
    parser.add_argument(
        "--progress-every",
        type=_seconds,
        metavar="SECONDS",
        help=f"progress interval (default: {TTY_PROGRESS_EVERY} on a terminal, where one "
        f"line is redrawn; {LOG_PROGRESS_EVERY:g} otherwise, one line each time)",
    )


def settings_from(
    args: argparse.Namespace,
    parser: argparse.ArgumentParser,
    *,
    token_store: Path,
    app_name: str,
    stdin: TextIO | None = None,
) -> CrawlSettings:
    """Check ``args`` (usage errors exit 2 through ``parser.error``); read the seeds.

    A seed that cannot be read raises :class:`CrawlCommandError` naming it (and its line).
    """
    seeds = list(args.seeds)
    if args.from_file is not None:
        seeds.extend(_read_seed_file(args.from_file, stdin or sys.stdin))
    if args.resume is not None:
        if seeds:
            parser.error("--resume continues the stored crawl: give no seeds with it")
        if args.db is not None and args.db != args.resume:
            parser.error("--resume names the database: drop --db")
        given = [
            "--" + name.replace("_", "-") for name in _PLAN_FLAGS if getattr(args, name) is not None
        ]
        if given:
            parser.error(
                f"{', '.join(given)}: the plan is stored in the database and cannot change on "
                "--resume (start a new crawl with another --db)"
            )
    elif not seeds and not args.export:
        if args.from_file is not None:
            raise CrawlCommandError(f"{args.from_file} names no account to crawl")
        parser.error("name accounts to crawl (or --from-file), --resume DB, or --export with --db")
    db_text = args.resume or args.db or DEFAULT_DB
    plan = None
    if seeds:
        texts: list[str] = []
        for seed in seeds:
            try:
                texts.append(parse_target(seed, allow_insecure_http=args.insecure_http).text)
            except ConfigurationError as exc:
                raise CrawlCommandError(f"bad seed: {exc}") from None
        plan = CrawlPlan(
            seeds=tuple(dict.fromkeys(texts)),
            relations=_RELATION_CHOICES[args.relations or "both"],
            depth=args.depth or 0,
            max_accounts=args.max_accounts,
            max_per_instance=args.max_per_instance,
            max_per_list=args.max_per_list,
        )
    if args.resolve:
        try:
            StaticResolver.from_specs(args.resolve)
        except ConfigurationError as exc:
            parser.error(f"--resolve {exc}")
    if is_postgres(db_text) and args.export:
        parser.error(
            "--export writes files from an SQLite crawl; read a PostgreSQL crawl with SQL "
            "(its tables are in the aiomasto_crawl schema)"
        )
    return CrawlSettings(
        db=db_text if is_postgres(db_text) else _path(db_text),
        db_text=db_text,
        plan=plan,
        resume=args.resume is not None,
        concurrency=args.concurrency,
        per_instance=args.per_instance,
        exports=tuple(dict.fromkeys(args.export)),
        export_dir=None if args.export_dir is None else _path(args.export_dir),
        token_store=_path(args.token_store) if args.token_store else token_store,
        app_name=app_name,
        resolve=tuple(args.resolve),
        insecure_http=args.insecure_http,
        quiet=args.quiet,
        progress_every=args.progress_every,
    )


async def crawl(
    settings: CrawlSettings,
    *,
    http: aiohttp.ClientSession | None = None,
    user_tokens: dict[str, str] | None = None,
    out: TextIO | None = None,
    err: TextIO | None = None,
) -> int:
    """Run the crawl (or only the exports), print the summary; returns the exit status.

    Expected failures raise :class:`CrawlCommandError` or :class:`~aiomasto.MastodonError`
    (one line for the user). ``http`` and ``user_tokens`` are for the demo.
    """
    out = out or sys.stdout
    err = err or sys.stderr
    crawling = settings.resume or settings.plan is not None
    if not crawling:
        return await _export_only(settings, out=out, err=err)
    plan = await _check_plan(settings)
    progress = None if settings.quiet else ProgressLine(err, tty=_is_tty(err))
    every = settings.progress_every or (
        TTY_PROGRESS_EVERY if progress is not None and progress.tty else LOG_PROGRESS_EVERY
    )
    started = asyncio.get_running_loop().time()
    holder: list[Crawler] = []

    async def work() -> tuple[CrawlSummary, tuple[Path, ...]]:
        async with contextlib.AsyncExitStack() as stack:
            client = http
            if client is None and settings.resolve:
                connector = aiohttp.TCPConnector(
                    resolver=StaticResolver.from_specs(settings.resolve)
                )
                client = await stack.enter_async_context(
                    aiohttp.ClientSession(connector=connector, timeout=DEFAULT_TIMEOUT)
                )
            crawler = await stack.enter_async_context(
                Crawler(
                    open_sink(settings.db),
                    relations=plan.relations,
                    depth=plan.depth,
                    max_accounts=plan.max_accounts,
                    max_per_instance=plan.max_per_instance,
                    max_per_list=plan.max_per_list,
                    concurrency=settings.concurrency,
                    per_instance=settings.per_instance,
                    store=JsonFileTokenStore(settings.token_store),
                    user_tokens=user_tokens,
                    http=client,
                    allow_insecure_http=settings.insecure_http,
                    app_name=settings.app_name,
                    on_progress=progress,
                    progress_interval=every,
                )
            )
            holder.append(crawler)
            summary = await crawler.run(None if settings.resume else plan.seeds)
        if progress is not None:
            progress.clear()
        return summary, await _exports(settings)

    hint = _resume_hint(settings)
    with _Interrupts(err, hint) as interrupts:
        result = await interrupts.run(work())
        if progress is not None:
            progress.clear()
        stats, instances = await _read_back(settings)
        if result is None:
            run = holder[0].progress() if holder else None
            summary_text = render_summary(
                stats,
                instances,
                db=_shown_db(settings),
                exports=(),
                elapsed=asyncio.get_running_loop().time() - started,
                requests=run.requests if run else 0,
                errors=run.last_errors if run else (),
                error_count=run.errors if run else 0,
                interrupted=True,
            )
        else:
            summary, written = result
            summary_text = render_summary(
                stats,
                instances,
                db=_shown_db(settings),
                exports=written,
                elapsed=summary.elapsed,
                requests=summary.requests,
                errors=summary.last_errors,
                error_count=summary.errors,
            )
        print(summary_text, file=out, flush=True)
        if interrupts.received is not None:
            print(f"aiomasto: interrupted; resume with: {hint}", file=err, flush=True)
            return 128 + interrupts.received
    if result is not None and set(result[0].outcomes) == {"unreachable"}:
        errors = result[0].last_errors
        last = errors[-1] if errors else "no answer"
        raise CrawlCommandError(f"no instance could be reached (is the network up?): {last}")
    return 0


async def _check_plan(settings: CrawlSettings) -> CrawlPlan:
    """The plan to run: the stored one on --resume; the new one, if the database agrees."""
    stored = None
    if settings.resume or _exists(settings):
        sink = open_sink(settings.db)
        try:
            stored = (await sink.open(None)).plan
        except ConfigurationError:
            # A file that holds no crawl yet takes the new plan; anything else wrong with it
            # is said again, in its own words, when the crawl opens it.
            if settings.resume:
                raise
        else:
            await sink.close()
    if settings.resume:
        assert stored is not None
        return stored
    assert settings.plan is not None
    if stored is not None and stored != settings.plan:
        raise CrawlCommandError(
            f"{describe_db(settings.db_text)} holds another crawl "
            f"({_plan_differences(stored, settings.plan)}): continue it with "
            f"'aiomasto crawl --resume {shlex.quote(describe_db(settings.db_text))}', "
            "or give another --db for a new crawl"
        )
    return settings.plan


async def _export_only(settings: CrawlSettings, *, out: TextIO, err: TextIO) -> int:
    if not _exists(settings):
        raise CrawlCommandError(
            f"no crawl database at {settings.db_text}: name accounts to crawl, or --db"
        )
    stats, instances = await _read_back(settings)
    written = await _exports(settings)
    print(
        render_summary(stats, instances, db=_shown_db(settings), exports=written, elapsed=None),
        file=out,
        flush=True,
    )
    if stats.pending:
        print(
            f"aiomasto: note: the crawl is not finished ({stats.pending} lists to go); "
            f"continue it with: {_resume_hint(settings)}",
            file=err,
            flush=True,
        )
    return 0


async def _exports(settings: CrawlSettings) -> tuple[Path, ...]:
    if not settings.exports or not isinstance(settings.db, Path):
        return ()
    where = settings.export_dir or settings.db.parent / f"{settings.db.stem}-export"
    written: list[Path] = []
    for kind in settings.exports:
        # jsonl and csv write edges.<kind> and accounts.<kind> into a directory.
        target = where if kind in ("jsonl", "csv") else where / f"{settings.db.stem}.{kind}"
        written.extend(await export(settings.db, kind, target))
    return tuple(written)


class _Interrupts:
    """SIGINT and SIGTERM while the command runs: the first cancels the crawl (which stops
    after the page being committed) and makes the command exit 128 + its number; a second
    one quits at once."""

    def __init__(self, err: TextIO, hint: str) -> None:
        self.received: int | None = None
        self._err = err
        self._hint = hint
        self._task: asyncio.Future[object] | None = None
        self._installed: list[signal.Signals] = []

    def __enter__(self) -> Self:
        loop = asyncio.get_running_loop()
        for number in (signal.SIGINT, signal.SIGTERM):
            # Only the main thread's loop can take signals (not a test's worker thread).
            with contextlib.suppress(ValueError, RuntimeError, NotImplementedError):
                loop.add_signal_handler(number, self._on_signal, int(number))
                self._installed.append(number)
        return self

    def __exit__(self, *exc_info: object) -> None:
        loop = asyncio.get_running_loop()
        for number in self._installed:
            loop.remove_signal_handler(number)

    async def run(self, work: Awaitable[_T]) -> _T | None:
        """``work``'s result, or ``None`` when a signal cancelled it."""
        task = asyncio.ensure_future(work)
        self._task = cast("asyncio.Future[object]", task)
        try:
            return await task
        except asyncio.CancelledError:
            if self.received is None or not task.cancelled():
                raise
            return None

    def _on_signal(self, number: int) -> None:
        if self.received is None:
            self.received = number
            if self._task is not None and not self._task.done():
                self._task.cancel()
                print(
                    "\naiomasto: stopping (the page being stored is finished first); "
                    "press Ctrl-C again to quit at once",
                    file=self._err,
                    flush=True,
                )
            return
        # Each page is one SQLite transaction, so quitting now is as safe as kill -9: the
        # pages not committed yet are fetched again on --resume.
        print(f"aiomasto: quit; resume with: {self._hint}", file=self._err, flush=True)
        with contextlib.suppress(Exception):
            sys.stdout.flush()
        os._exit(128 + self.received)


class ProgressLine:
    """Prints :class:`CrawlProgress` on a stream: one line redrawn on a terminal, else a line
    each time (logs stay readable). New errors are printed on lines of their own.

    Example::

        line = ProgressLine(sys.stderr, tty=sys.stderr.isatty())
        Crawler(sink, on_progress=line, progress_interval=0.5)
    """

    def __init__(self, stream: TextIO, *, tty: bool) -> None:
        self.stream = stream
        self.tty = tty
        self._errors = 0
        self._drawn = False

    def __call__(self, progress: CrawlProgress) -> None:
        fresh = min(progress.errors - self._errors, len(progress.last_errors))
        self._errors = progress.errors
        if fresh > 0:
            self.clear()
            for line in progress.last_errors[-fresh:]:
                self.stream.write(f"aiomasto: error: {line}\n")
        text = format_progress(progress)
        if self.tty:
            width = shutil.get_terminal_size().columns
            self.stream.write("\r\x1b[K" + text[: max(width - 1, 20)])
            self._drawn = True
        else:
            self.stream.write(text + "\n")
        self.stream.flush()

    def clear(self) -> None:
        """Rub out the status line (on a terminal) before other output."""
        if self._drawn:
            self.stream.write("\r\x1b[K")
            self.stream.flush()
            self._drawn = False


def format_progress(progress: CrawlProgress) -> str:
    """One status line: ``lists 12 done, 30 queued, 4 walking | 1200 edges, ...``."""
    parts = [
        f"lists {progress.units_done} done, {progress.units_queued} queued, "
        f"{progress.units_in_flight} walking",
        f"{progress.edges} edges, {progress.accounts} accounts",
        f"{progress.requests} requests ({progress.requests_per_second:.1f}/s)",
    ]
    if progress.waiting:
        waits = sorted(progress.waiting.items(), key=lambda item: item[1])
        shown = ", ".join(
            f"{host} until {until.astimezone():%H:%M:%S}" for host, until in waits[:_SHOWN_WAITING]
        )
        more = len(waits) - _SHOWN_WAITING
        parts.append(f"waiting: {shown}" + (f" and {more} more" if more > 0 else ""))
    if progress.errors:
        parts.append(f"{progress.errors} errors")
    return " | ".join(parts)


def render_summary(
    stats: CrawlStats,
    instances: Sequence[InstanceRecord],
    *,
    db: str,
    exports: Sequence[Path],
    elapsed: float | None,
    requests: int = 0,
    errors: Sequence[str] = (),
    error_count: int = 0,
    interrupted: bool = False,
) -> str:
    """The one-screen summary: the database's outcomes and counts, this run's figures,
    the instances and where the files are."""
    state = "interrupted" if interrupted else "finished" if not stats.pending else "stopped"
    lines = [f"Crawl {state}: {stats.done} lists done, {stats.pending} still to do"]
    if stats.outcomes:
        lines.append("  outcome          lists")
        width = max(len(name) for name in stats.outcomes)
        for name, count in sorted(stats.outcomes.items(), key=lambda item: (-item[1], item[0])):
            lines.append(f"  {name:<{max(width, 15)}}  {count:>5}")
    lines.append(f"edges: {stats.edges}   accounts: {stats.accounts}")
    if elapsed is not None:
        rate = requests / elapsed if elapsed > 0 else 0.0
        lines.append(
            f"this run: {elapsed:.1f} s, {requests} requests ({rate:.1f}/s), {error_count} errors"
        )
        lines.extend(f"  {line[:110]}" for line in errors)
    if instances:
        lines.append(f"instances ({len(instances)}):")
        hosts = [_host(record.api_base) for record in instances]
        host_width = min(max(len(host) for host in hosts), 32)
        for host, record in list(zip(hosts, instances, strict=True))[:_SHOWN_INSTANCES]:
            software = " ".join(filter(None, (record.software, (record.version or "")[:20])))
            status = record.status + (f": {record.detail}" if record.detail else "")
            if len(status) > 60:
                status = status[:57] + "..."
            auth = "" if record.auth == "none" else f" ({record.auth} token)"
            lines.append(f"  {host:<{host_width}}  {software or 'unknown':<22}  {status}{auth}")
        if len(instances) > _SHOWN_INSTANCES:
            lines.append(f"  ... and {len(instances) - _SHOWN_INSTANCES} more")
    lines.append(f"database: {db}")
    if exports:
        lines.append("exported: " + ", ".join(str(path.absolute()) for path in exports))
    return "\n".join(lines)


def _resume_hint(settings: CrawlSettings) -> str:
    """The command that continues this crawl, with the connection flags it needs."""
    words = ["aiomasto", "crawl", "--resume", describe_db(settings.db_text)]
    if settings.insecure_http:
        words.append("--insecure-http")
    for spec in settings.resolve:
        words.extend(("--resolve", spec))
    return " ".join(shlex.quote(word) for word in words)


def _plan_differences(stored: CrawlPlan, given: CrawlPlan) -> str:
    parts = []
    if set(stored.seeds) != set(given.seeds):
        parts.append("other seeds")
    for name in ("relations", "depth", "max_accounts", "max_per_instance", "max_per_list"):
        old, new = getattr(stored, name), getattr(given, name)
        if old != new:
            parts.append(f"{name.replace('_', '-')} {_shown(old)} there, not {_shown(new)}")
    return "; ".join(parts) or "the same seeds in another order"


def _shown(value: object) -> str:
    return "+".join(value) if isinstance(value, tuple) else str(value)


def _read_seed_file(name: str, stdin: TextIO) -> list[str]:
    seeds: list[str] = []
    label = "stdin" if name == "-" else name
    try:
        with contextlib.ExitStack() as stack:
            lines = (
                stdin if name == "-" else stack.enter_context(open(_path(name), encoding="utf-8"))
            )
            for number, line in enumerate(lines, 1):
                text = _COMMENT.sub("", line).strip()
                if not text:
                    continue
                if any(ch.isspace() for ch in text):
                    raise CrawlCommandError(
                        f"{label} line {number}: one account per line (found {text[:60]!r})"
                    )
                seeds.append(text)
    except OSError as exc:
        raise CrawlCommandError(f"cannot read {label}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise CrawlCommandError(f"cannot read {label}: it is not UTF-8 text") from None
    return seeds


def _exists(settings: CrawlSettings) -> bool:
    # A PostgreSQL database is asked whether it holds a crawl when it is opened.
    return not isinstance(settings.db, Path) or settings.db.exists()


def _shown_db(settings: CrawlSettings) -> str:
    """The database as the summary shows it: a file's full path, a URL without its password."""
    if isinstance(settings.db, Path):
        return str(settings.db.absolute())
    return describe_db(settings.db)


async def _read_back(settings: CrawlSettings) -> tuple[CrawlStats, Sequence[InstanceRecord]]:
    sink = open_sink(settings.db)
    return await sink.stats(), await sink.instances()


def _host(api_base: str) -> str:
    return api_base.partition("://")[2] or api_base


def _path(text: str) -> Path:
    return Path(text).expanduser()


def _is_tty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def _whole(least: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if value < least:
            raise argparse.ArgumentTypeError(f"{value} is less than {least}")
        return value

    parse.__name__ = "whole number"
    return parse


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not value > 0 or value != value or value == float("inf"):
        raise argparse.ArgumentTypeError("the interval must be a positive number of seconds")
    return value
