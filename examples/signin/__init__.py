"""A "Sign in with Mastodon" web backend on aiohttp.web: ``python -m examples.signin``."""

from .app import COOKIE, SignIn, make_app

__all__ = ["COOKIE", "SignIn", "make_app"]
