"""Command line: ``python -m aiomasto demo`` runs the seed flow against a local fake Mastodon."""

from __future__ import annotations

import argparse
import asyncio
import os
import stat
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from . import App, JsonFileTokenStore, Page, Session, __version__
from .entities import Account
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


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m aiomasto", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("demo", help="run the seed flow against a local fake Mastodon")
    run.add_argument("--followers", type=int, default=120, help="followers of the demo account")
    run.add_argument("--following", type=int, default=30, help="accounts it follows")
    run.add_argument("--limit", type=int, default=5, help="page size to ask for")
    args = parser.parse_args(argv)
    return asyncio.run(demo(args.followers, args.following, args.limit))


if __name__ == "__main__":
    sys.exit(main())
