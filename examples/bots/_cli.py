"""What the three bots share: the command line, the token, and the demo's fake instance."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import attrs

from aiomasto import Session
from aiomasto.testing import FakeMastodon

__all__ = ["Demo", "arguments", "demo_instance", "fail", "session", "write_state"]


def arguments(prog: str, description: str) -> argparse.ArgumentParser:
    """The options every bot takes; a bot adds its own to the parser it gets back."""
    parser = argparse.ArgumentParser(
        prog=f"python -m examples.bots.{prog}", description=description
    )
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument(
        "--instance", help="the instance's URL; the token is read from MASTODON_TOKEN"
    )
    where.add_argument(
        "--demo",
        action="store_true",
        help="run against a fake Mastodon started here, seeded for the bot, and check the result",
    )
    # The tests read the fake's state from here rather than trusting the demo's own verdict.
    parser.add_argument("--state-json", type=Path, help=argparse.SUPPRESS)
    return parser


def session(instance: str) -> Session:
    """A Session for a real instance, with the token from the environment (never argv, which
    other users of the machine can read in the process list)."""
    token = os.environ.get("MASTODON_TOKEN")
    if not token:
        sys.exit("set MASTODON_TOKEN to the bot account's access token")
    return Session(instance, access_token=token)


@attrs.frozen(kw_only=True)
class Demo:
    """A running fake instance with a bot account and a token for it."""

    server: FakeMastodon
    url: str
    bot: str
    token: str

    def session(self) -> Session:
        return Session(self.url, access_token=self.token)


@asynccontextmanager
async def demo_instance() -> AsyncIterator[Demo]:
    """A FakeMastodon on loopback with the account ``bot`` and a token for every bot scope."""
    server = FakeMastodon()
    bot = server.add_account("bot", display_name="The Bot", bot=True)
    token = server.issue_user_token(bot, "read write follow")
    async with server.run() as url:
        print(f"fake Mastodon at {url}, bot account @bot (id {bot})")
        yield Demo(server=server, url=url, bot=bot, token=token)


def write_state(path: Path | None, state: object) -> None:
    if path is not None:
        path.write_text(json.dumps(state, indent=2, sort_keys=True))


def fail(message: str) -> None:
    print(f"FAILED: {message}")
    sys.exit(1)
