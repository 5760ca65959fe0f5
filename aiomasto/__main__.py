"""Command line: sign in to Mastodon from a terminal, and a demo of the seed flow.

``aiomasto login <instance>`` signs you in (authorization code + PKCE; the redirect is caught on
a loopback port, or paste the code with ``--oob``) and stores your token in a per-user file;
``aiomasto whoami``, ``aiomasto accounts`` and ``aiomasto logout`` use it. ``aiomasto crawl``
crawls followers and following across the fediverse into an SQLite file (``aiomasto crawl
--help``). ``aiomasto demo`` runs the seed flow against a local fake Mastodon, ``aiomasto demo
crawl`` a crawl of a local fake fediverse.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import stat
import sys
import tempfile
import webbrowser
from collections.abc import Coroutine, Sequence
from pathlib import Path
from typing import Any

from aiohttp import web

from . import App, JsonFileTokenStore, Page, Session, __version__
from .auth import OOB_REDIRECT_URI
from .crawl import _cli as crawl_cli
from .crawl import _worker_cli
from .crawl._demo import demo_crawl
from .entities import Account
from .errors import MastodonError
from .login import Authorizer
from .stores import StoreKey
from .testing import FakeMastodon


def _accounts(page: Page[Account]) -> str:
    return ", ".join(f"@{account.acct}" for account in page.items) or "(none)"


async def demo(followers: int, following: int, limit: int) -> int:
    """Steps 1-5 of "Obtaining client app access", then a second Session on the same store."""
    server = FakeMastodon()
    alice = server.add_account("alice", display_name="Alice")
    server.add_followers(alice, followers, prefix="fan")
    server.add_following(alice, following, prefix="friend")
    app = App(name="aiomasto demo", scopes="read", website="https://pypi.org/project/aiomasto/")

    with tempfile.TemporaryDirectory(prefix="aiomasto-demo-") as tmp:
        path = Path(tmp) / "credentials.json"
        store = JsonFileTokenStore(path)
        async with server.run() as url:
            print(f"aiomasto {__version__} demo: the seed flow against a fake Mastodon at {url}")
            print(f"@alice (id {alice}) has {followers} followers and follows {following}.")
            print(f"Token store: {path}\n")

            print("First Session")
            async with Session(url, app=app, store=store) as masto:
                await masto.authenticate()
                registered, token = masto.application, masto.token
                if registered is None or token is None:
                    raise RuntimeError("the Session has no app token after authenticate()")
                print(f"  1. registered app {registered.name!r} (id {registered.id})")
                print(f"     scopes: {' '.join(registered.scopes)}")
                print(f"     redirect URIs: {' '.join(registered.registered_redirect_uris)}")
                print("     client_id and client_secret saved to the store (not shown)")
                when = token.created_at.isoformat() if token.created_at else "unknown"
                print(f"  2. obtained a {token.token_type} token with scopes {token.scope!r}")
                print(f"     created {when}; saved to the store (not shown)")
                print("  3. every request below carries 'Authorization: Bearer <token>'")
                verified = await masto.verify_app()
                print(f"  4. verified: the token belongs to {verified.name!r}")
                print(f"     website {verified.website}, scopes {' '.join(verified.scopes)}")
                fans = await masto.followers_page(alice, limit=limit)
                friends = await masto.following_page(alice, limit=limit)
                print(f"  5. first {len(fans.items)} followers of @alice: {_accounts(fans)}")
                print(f"     next page: {fans.next_cursor}")
                print(f"     first {len(friends.items)} followed by @alice: {_accounts(friends)}")
                if fans.ratelimit:
                    rl = fans.ratelimit
                    reset = f"{rl.reset:%H:%M:%S} UTC" if rl.reset else "unknown"
                    print(f"     rate limit: {rl.remaining}/{rl.limit} requests left until {reset}")
            first_run = len(server.requests)

            print("\nSecond Session on the same store (a restart)")
            async with Session(url, app=app, store=store) as masto:
                verified = await masto.verify_app()
                fans = await masto.followers_page(alice, limit=limit)
                print(f"  verified {verified.name!r}; first followers again: {_accounts(fans)}")
            second = server.requests[first_run:]
            registrations = sum(r.path == "/api/v1/apps" for r in second)
            token_requests = sum(r.path == "/oauth/token" for r in second)
            print(f"  requests made: {', '.join(f'{r.method} {r.path}' for r in second)}")
            print(f"  app registrations: {registrations}, token requests: {token_requests}")

        mode = stat.S_IMODE(os.stat(path).st_mode)
        print(f"\nThe store file is mode {mode:04o}; no secret was printed above.")
        ok = registrations == 0 and token_requests == 0 and mode == 0o600
        print("Demo finished: OK" if ok else "Demo finished: UNEXPECTED REQUESTS")
        return 0 if ok else 1


CLI_APP_NAME = "aiomasto CLI"
DEFAULT_PORT = 8723


def default_store_path() -> Path:
    """``$AIOMASTO_STORE``, else ``$XDG_CONFIG_HOME/aiomasto/credentials.json`` (~/.config)."""
    if os.environ.get("AIOMASTO_STORE"):
        return Path(os.environ["AIOMASTO_STORE"]).expanduser()
    config = os.environ.get("XDG_CONFIG_HOME") or str(Path("~/.config").expanduser())
    return Path(config) / "aiomasto" / "credentials.json"


def cli_app(scopes: str, port: int) -> App:
    """The CLI's app: the out-of-band URI and one loopback redirect URI, on ``port``."""
    return App(
        name=CLI_APP_NAME,
        scopes=scopes,
        redirect_uris=(OOB_REDIRECT_URI, f"http://127.0.0.1:{port}/callback"),
        website="https://pypi.org/project/aiomasto/",
    )


class CommandError(Exception):
    """An expected failure of a command: printed as one line, exit status 1."""


async def _catch_redirect(port: int) -> tuple[web.AppRunner, asyncio.Future[dict[str, str]]]:
    """A one-page server on 127.0.0.1:``port`` whose ``/callback`` hands over its query."""
    arrived: asyncio.Future[dict[str, str]] = asyncio.get_running_loop().create_future()

    async def callback(request: web.Request) -> web.Response:
        if not arrived.done():
            arrived.set_result(dict(request.query))
        text = "Signed in: you can close this window and go back to the terminal."
        if "error" in request.query:
            text = "The sign-in was not approved. You can close this window."
        return web.Response(text=text)

    application = web.Application()
    application.router.add_get("/callback", callback)
    runner = web.AppRunner(application, access_log=None)
    await runner.setup()
    try:
        await web.TCPSite(runner, "127.0.0.1", port).start()
    except OSError as exc:
        await runner.cleanup()
        raise CommandError(
            f"cannot listen on 127.0.0.1:{port} ({exc.strerror}); pick another --port, or --oob"
        ) from None
    return runner, arrived


def _open_browser(url: str) -> None:
    try:
        webbrowser.get()
    except webbrowser.Error:
        return  # no browser here: the printed URL is enough
    webbrowser.open(url)


async def login(
    instance: str, *, store: Path, scopes: str, oob: bool, port: int, browser: bool
) -> int:
    auth = Authorizer(cli_app(scopes, port), store=JsonFileTokenStore(store))
    if oob:
        begun = await auth.start(instance, redirect_uri=OOB_REDIRECT_URI)
        print(f"Open this URL, approve, and paste the code it shows:\n\n  {begun.url}\n")
        code = (await asyncio.to_thread(input, "Code: ")).strip()
        params = {"code": code, "state": begun.state.state}
    else:
        runner, arrived = await _catch_redirect(port)
        try:
            begun = await auth.start(instance, redirect_uri=f"http://127.0.0.1:{port}/callback")
            print(f"Open this URL in a browser and approve:\n\n  {begun.url}\n", flush=True)
            if browser:
                await asyncio.to_thread(_open_browser, begun.url)
            print(f"Waiting for the redirect on 127.0.0.1:{port} ...", flush=True)
            params = await asyncio.wait_for(arrived, timeout=600)
        except TimeoutError:
            raise CommandError("no sign-in arrived within 10 minutes") from None
        finally:
            await runner.cleanup()
    user = await auth.finish(begun.state, params)
    print(f"Logged in as @{user.account.acct} on {user.key.instance} (account {user.account.id}).")
    print(f"Token stored in {store}")
    return 0


async def _stored(
    store: Path, instance: str | None, account: str | None
) -> tuple[Authorizer, list[StoreKey]]:
    auth = Authorizer(cli_app("read", DEFAULT_PORT), store=JsonFileTokenStore(store))
    keys = [k for k in await auth.accounts(instance) if account in (None, k.account)]
    if not keys:
        where = f" for {instance}" if instance else ""
        raise CommandError(f"nobody is logged in{where}: run 'aiomasto login <instance>' first")
    return auth, keys


async def whoami(store: Path, instance: str | None, account: str | None) -> int:
    auth, keys = await _stored(store, instance, account)
    for key in keys:
        assert key.account is not None
        async with auth.session(key.instance, key.account) as masto:
            me = await masto.verify_credentials()
        print(f"@{me.acct} on {key.instance} (account {me.id}): {me.display_name or me.username}")
    return 0


async def logout(store: Path, instance: str | None, account: str | None) -> int:
    auth, keys = await _stored(store, instance, account)
    for key in keys:
        assert key.account is not None
        async with auth.session(key.instance, key.account) as masto:
            await masto.revoke()
        print(f"Logged out account {key.account} on {key.instance}: token revoked and deleted.")
    return 0


async def accounts(store: Path, instance: str | None) -> int:
    auth = Authorizer(cli_app("read", DEFAULT_PORT), store=JsonFileTokenStore(store))
    keys = await auth.accounts(instance)
    for key in keys:
        print(f"{key.instance}\taccount {key.account}")
    if not keys:
        print("nobody is logged in")
    return 0


def _run(command: Coroutine[Any, Any, int]) -> int:
    try:
        return asyncio.run(command)
    except (MastodonError, CommandError, crawl_cli.CrawlCommandError) as exc:
        print(f"aiomasto: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("aiomasto: interrupted", file=sys.stderr)
        return 130


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="aiomasto", description=__doc__)
    parser.add_argument("--version", action="version", version=f"aiomasto {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)

    def with_store(command: argparse.ArgumentParser) -> None:
        command.add_argument(
            "--store",
            type=Path,
            default=None,
            help="token store file (default: $AIOMASTO_STORE or "
            "$XDG_CONFIG_HOME/aiomasto/credentials.json)",
        )

    sign_in = commands.add_parser("login", help="sign in to an instance and store the token")
    sign_in.add_argument("instance", help="e.g. mastodon.social or https://mastodon.example")
    sign_in.add_argument("--scopes", default="read", help="scopes to ask for (default: read)")
    sign_in.add_argument("--oob", action="store_true", help="paste the code instead of a redirect")
    sign_in.add_argument("--port", type=int, default=DEFAULT_PORT, help="loopback redirect port")
    sign_in.add_argument("--no-browser", action="store_true", help="do not open a browser")
    with_store(sign_in)
    for name, text in (
        ("whoami", "show who is logged in (asks the server)"),
        ("logout", "revoke and delete stored tokens"),
        ("accounts", "list who is stored"),
    ):
        command = commands.add_parser(name, help=text)
        command.add_argument("instance", nargs="?", help="only this instance")
        if name != "accounts":
            command.add_argument("--account", help="only this account id")
        with_store(command)

    crawling = commands.add_parser(
        "crawl",
        help="crawl followers and following across the fediverse into an SQLite file",
        description="Crawl the followers and following of accounts, each on its home "
        "instance, into an SQLite file; Ctrl-C stops after the page being stored, and "
        "--resume continues. Example: aiomasto crawl @alice@example.social --relations both "
        "--depth 1 --db crawl.sqlite --export csv",
    )
    crawl_cli.add_arguments(crawling)

    run = commands.add_parser(
        "demo",
        help="run the seed flow against a local fake Mastodon ('demo crawl': a crawl of a "
        "local fake fediverse)",
    )
    run.add_argument(
        "flow",
        nargs="?",
        choices=("crawl",),
        help="crawl: crawl a fake fediverse and check the result against its ground truth",
    )
    run.add_argument("--followers", type=int, default=120, help="followers of the demo account")
    run.add_argument("--following", type=int, default=30, help="accounts it follows")
    run.add_argument("--limit", type=int, default=5, help="page size to ask for")
    _worker_cli.add_parser(commands)
    args = parser.parse_args(argv)
    if args.command == "crawl-worker":
        return _run(_worker_cli.crawl_worker(args))
    if args.command == "demo":
        if args.flow == "crawl":
            return asyncio.run(demo_crawl())
        return asyncio.run(demo(args.followers, args.following, args.limit))
    if args.command == "crawl":
        try:
            settings = crawl_cli.settings_from(
                args, crawling, token_store=default_store_path(), app_name=CLI_APP_NAME
            )
        except crawl_cli.CrawlCommandError as exc:
            print(f"aiomasto: {exc}", file=sys.stderr)
            return 1
        return _run(crawl_cli.crawl(settings))
    store = args.store or default_store_path()
    if args.command == "login":
        return _run(
            login(
                args.instance,
                store=store,
                scopes=args.scopes,
                oob=args.oob,
                port=args.port,
                browser=not args.no_browser,
            )
        )
    if args.command == "accounts":
        return _run(accounts(store, args.instance))
    handler = whoami if args.command == "whoami" else logout
    return _run(handler(store, args.instance, args.account))


if __name__ == "__main__":
    sys.exit(main())
