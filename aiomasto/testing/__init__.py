"""A fake Mastodon server for testing bots and clients, with no network access needed.

:class:`FakeMastodon` is an aiohttp application that behaves like Mastodon 4.4/4.5 on the
endpoints a client needs to get going: app registration, OAuth tokens, revocation,
accounts and followers/following pagination, with the real status codes, error texts,
``Link`` and ``X-RateLimit-*`` headers.

- **Flavours**: ``FakeMastodon(flavor="gotosocial")`` or ``"akkoma"`` pages followers the
  way those servers do (their limits, cursors and ``Link`` shapes), authorizes account reads
  like them and has their rate-limit headers (none on Akkoma). ``rewrite_links`` bends every
  ``Link`` header for testing clients against broken pagination.
- **Faults**: :class:`Fault` makes it misbehave like a proxy or a flaky network (HTML 5xx
  pages, truncated JSON, a connection reset mid-body, slow answers, a 429), scripted with
  ``inject`` or drawn at random, reproducibly, with ``chaos(seed=...)``; ``faults_injected``
  counts what was served.
- **Signing in**: ``GET /oauth/authorize`` is an HTML login-and-consent page a browser can
  click through (form ``#authorize-form``; inputs ``username`` and ``password``, every
  account's password being :data:`DEFAULT_PASSWORD` unless ``add_account(password=...)``
  says otherwise; buttons ``decision=authorize`` / ``decision=deny``; the oob code in
  ``<code id="authorization-code">``; errors in ``#oauth-error`` and ``#login-error``).
  :meth:`FakeMastodon.authorize` gives the same answer without HTML.
  ``/.well-known/oauth-authorization-server`` and ``/oauth/userinfo`` are served as each
  flavour does, and ``token_lifetime`` (always on for Akkoma) makes tokens expire and
  refresh.
- **Streaming**: the ``/api/v1/streaming`` WebSocket (token in the header, the protocol
  or the query; 401 otherwise), pushing every notification the server makes to the
  recipient's ``user`` and ``user:notification`` streams and every new status to the home
  and public streams that would show it; ``push``/``push_raw`` send any
  event or any text, ``drop_streams`` cuts every connection and ``stall_streams`` stops
  answering pings, for reconnect tests.
- **Limits**: :class:`Limits` sizes Mastodon's throttles (per user, token, IP, paging, app
  registration); with ``enforce_rate_limit=True`` they answer 429 like Rack::Attack, and an
  injected ``clock`` lets tests move time instead of sleeping.

Example (inside any asyncio test)::

    from aiomasto.testing import FakeMastodon, Fault, Limits

    server = FakeMastodon(flavor="gotosocial", limits=Limits(per_ip=(30, 60.0)))
    alice = server.add_account("alice")
    server.add_followers(alice, 120)
    server.inject(f"/api/v1/accounts/{alice}/followers", Fault.reset_mid_body())
    server.chaos(seed=1, html_5xx=0.05)

    async with server.run() as url:
        ...  # point the client at url

- **Federation**: WebFinger (and host-meta), NodeInfo and ``/api/v1|v2/instance`` as each
  flavour serves them; ``domain=``/``web_domain=`` split the handle domain from the API
  host; ``limited_federation=True`` closes the API to anonymous and app tokens; accounts can
  be suspended, deleted or moved; ``"pixelfed"`` and ``"sharkey"`` model those servers'
  paging quirks. :class:`FakeFediverse` runs many instances on loopback at once, with
  follows stored on both homes as federation does, a ground truth to compare a crawl with,
  and an aiohttp resolver that sends ``http://alpha.example`` to the right port::

      fedi = FakeFediverse()
      fedi.add_instance("alpha.example")
      fedi.add_instance("gts.example", flavor="gotosocial")
      fedi.add_account("alice@alpha.example")
      fedi.add_account("bob@gts.example")
      fedi.follow("bob@gts.example", "alice@alpha.example")
      async with fedi.run():
          connector = aiohttp.TCPConnector(resolver=fedi.resolver())
          ...  # http://alpha.example/.well-known/webfinger?resource=acct:alice@alpha.example

With pytest, ``pytest_plugins = ["aiomasto.testing.pytest_plugin"]`` provides a
``fake_mastodon`` fixture that is already running.
"""

from ._faults import Fault
from ._fediverse import FakeFediverse
from ._http import RecordedRequest
from ._oauth import s256
from ._ratelimit import Limits
from ._server import FakeMastodon
from ._state import DEFAULT_PASSWORD, Emoji, Field, Role

__all__ = [
    "DEFAULT_PASSWORD",
    "Emoji",
    "FakeFediverse",
    "FakeMastodon",
    "Fault",
    "Field",
    "Limits",
    "RecordedRequest",
    "Role",
    "s256",
]
