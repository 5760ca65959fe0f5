"""``python -m examples.signin``: serve the sign-in example (see README.md beside this file)."""

from __future__ import annotations

import argparse
import logging
from collections.abc import AsyncIterator

import aiohttp
from aiohttp import web

from aiomasto import App, JsonFileTokenStore, MemoryTokenStore, TokenStore
from aiomasto.testing import FakeMastodon

from .app import make_app


def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m examples.signin", description="A 'Sign in with Mastodon' web backend."
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--port", type=int, default=8080, help="port to listen on")
    parser.add_argument(
        "--public-url",
        help="this site's URL as browsers reach it (default: http://HOST:PORT); "
        "the app is registered with PUBLIC-URL/callback as its redirect URI",
    )
    parser.add_argument(
        "--store",
        help="a JSON file for the apps' credentials and the users' tokens "
        "(default: kept in memory, gone when the server stops)",
    )
    parser.add_argument(
        "--fake",
        action="store_true",
        help="also run a fake Mastodon (aiomasto.testing) with a user alice, password 'alice', "
        "to try the site without an account anywhere",
    )
    return parser.parse_args()


async def _fake_instance(_: web.Application) -> AsyncIterator[None]:
    server = FakeMastodon()
    alice = server.add_account("alice", display_name="Alice", password="alice")
    server.add_followers(alice, 25)
    async with server.run() as url:
        print(f"A fake Mastodon is at {url}: enter it as the instance, sign in as alice/alice")
        yield


async def _site(args: argparse.Namespace) -> web.Application:
    public = (args.public_url or f"http://{args.host}:{args.port}").rstrip("/")
    app = App(name="aiomasto sign-in example", scopes="read", redirect_uris=f"{public}/callback")
    store: TokenStore = JsonFileTokenStore(args.store) if args.store else MemoryTokenStore()
    # One connection pool for every instance and every user, closed when the site stops.
    http = aiohttp.ClientSession()
    site = make_app(http=http, store=store, app=app)

    async def close(_: web.Application) -> None:
        await http.close()

    site.on_cleanup.append(close)
    if args.fake:
        site.cleanup_ctx.append(_fake_instance)
    print(f"Sign in at {public}/")
    return site


def main() -> None:
    args = _arguments()
    logging.basicConfig(level=logging.INFO)
    web.run_app(_site(args), host=args.host, port=args.port, print=None)


if __name__ == "__main__":
    main()
