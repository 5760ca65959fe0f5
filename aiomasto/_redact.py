"""Masking secrets in text that came from a server or a request (pure).

Error messages and body excerpts quote what a server sent, and a server can send a secret
back: a truncated ``/oauth/token`` answer holds the new token, an ``error_description`` may
echo the form with the ``client_secret``. Everything aiomasto puts in an exception or a log
line about a response goes through :func:`redact` first.

Three rules, each enough on its own:

- the value of a secret-bearing key, as JSON (``"access_token": "..."``), as a form or query
  (``client_secret=...``) or as a header (``Authorization: Bearer ...``), even when cut off;
- any token-shaped run: 32 or more characters of the URL-safe alphabet mixing letters and
  digits, which is what Mastodon (43), Akkoma (43) and GoToSocial (52) tokens and client
  secrets look like, while words, ids and dates do not;
- any exact value the caller knows to be secret.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

__all__ = ["MASK", "Secret", "redact"]

MASK = "[redacted]"

_KEYS = r"access_token|refresh_token|id_token|client_secret|code_verifier|password|token|code"
_KEYED = re.compile(
    rf"""(?ix)
    (?P<key>
        ["']\b(?:{_KEYS})["']\s*:\s*["']?      # JSON: "key": "value
      | \b(?:{_KEYS})\s*=\s*["']?             # form or query: key=value
    )
    (?P<value>[^"'&\s,;}}\]]+)
    """
)
_BEARER = re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]+")
_TOKEN_SHAPED = re.compile(r"[A-Za-z0-9_-]{32,}")


def _shaped(match: re.Match[str]) -> str:
    run = match.group(0)
    has_letter = any(c.isalpha() for c in run)
    has_digit = any(c.isdigit() for c in run)
    return MASK if has_letter and has_digit else run


def redact(text: str, secrets: Iterable[str | None] = ()) -> str:
    """``text`` with every secret it may hold replaced by ``[redacted]``.

    >>> redact('{"access_token":"ZA-Yj3aBD8U8Cm7lKUp-lm9O9BmDgdhHzDeqsY8tlL0","token_ty')
    '{"access_token":"[redacted]","token_ty'
    >>> redact("client_secret=abc&grant_type=client_credentials")
    'client_secret=[redacted]&grant_type=client_credentials'
    """
    for secret in secrets:
        if secret:
            text = text.replace(secret, MASK)
    text = _KEYED.sub(lambda m: m.group("key") + MASK, text)
    text = _BEARER.sub(lambda m: f"{m.group(1)} {MASK}", text)
    return _TOKEN_SHAPED.sub(_shaped, text)


class Secret(str):
    """A string that never shows itself in a repr, yet goes on the wire as it is.

    Headers and form fields that hold a token or a client secret are ``Secret``, so a debug
    dump, or an error reporter that prints the local variables of a traceback's frames, shows
    ``'[redacted]'`` where the value would be.

    >>> Secret("s3cret")
    '[redacted]'
    >>> f"Bearer {Secret('s3cret')}"
    'Bearer s3cret'
    """

    __slots__ = ()

    def __repr__(self) -> str:
        return f"'{MASK}'"
