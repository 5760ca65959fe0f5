"""Token-store test records with every secret field set, and the check that none leaks."""

from __future__ import annotations

import traceback
from datetime import UTC, datetime

from aiomasto import TokenStoreError
from aiomasto.entities import Application, Token
from aiomasto.stores import Credentials

CLIENT_SECRET = "client-secret-Zq8xW3"
ACCESS_TOKEN = "access-token-Kp4vN7"
REFRESH_TOKEN = "refresh-token-Hs2mB9"
SECRETS = (CLIENT_SECRET, ACCESS_TOKEN, REFRESH_TOKEN)


def make_credentials(tag: str = "") -> Credentials:
    """Credentials with every secret field set; ``tag`` tells records apart."""
    return Credentials(
        app=Application(
            name="Relationship Mapper",
            id="42",
            website="https://relmap.example",
            scopes=("read", "write:follows"),
            redirect_uris=("urn:ietf:wg:oauth:2.0:oob",),
            client_id=f"client-id{tag}",
            client_secret=CLIENT_SECRET + tag,
        ),
        token=Token(
            access_token=ACCESS_TOKEN + tag,
            scope="read write:follows",
            created_at=datetime(2024, 5, 17, 9, 30, 12, tzinfo=UTC),
            expires_in=7200,
            refresh_token=REFRESH_TOKEN + tag,
        ),
    )


def assert_no_secret(text: str) -> None:
    for secret in SECRETS:
        assert secret not in text


def assert_no_secret_in_error(error: TokenStoreError, store_module: str) -> None:
    """Not in the message, the printed traceback, nor the locals of the store's frames in it.

    ``store_module`` is the store module's ``__file__``: error reporters (Sentry and the like)
    print the locals of a traceback's frames.
    """
    assert error.__cause__ is None
    assert error.__context__ is None
    assert_no_secret(str(error))
    assert_no_secret(repr(error))
    assert_no_secret("".join(traceback.format_exception(error)))
    for frame, _ in traceback.walk_tb(error.__traceback__):
        if frame.f_code.co_filename == store_module:
            assert_no_secret(repr(frame.f_locals))
