"""Request bodies and query strings as Mastodon (Rails) reads them; pure, no I/O.

Rails builds ``params`` from ``key[]`` (a list) and ``key[sub]`` (a hash) names, so a sequence
becomes repeated ``key[]`` pairs and a mapping ``key[sub]`` pairs, in query strings, forms
and multipart bodies alike. ``None`` means "not sent" (never the text ``"None"``); booleans
are ``true``/``false``. A body is encoded once into bytes, so a retried request sends exactly
the same bytes (a multipart boundary included).
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, TypeAlias
from urllib.parse import urlencode

from attrs import field, frozen

from .errors import ConfigurationError

__all__ = [
    "Body",
    "FileSpec",
    "ParamValue",
    "Params",
    "checked_headers",
    "form_body",
    "json_body",
    "multipart_body",
    "query_pairs",
]

Scalar: TypeAlias = str | int | float | bool
ParamValue: TypeAlias = Scalar | Sequence[Any] | Mapping[str, Any] | None
# Values are checked when encoded (ParamValue says what is accepted); Any keeps a literal
# dict of mixed values acceptable to a type checker.
Params: TypeAlias = Mapping[str, Any] | Iterable[tuple[str, Any]]
# A file: its bytes, (filename, bytes) or (filename, bytes, content type).
FileSpec: TypeAlias = bytes | tuple[str, bytes] | tuple[str, bytes, str]

# Headers the Session owns: a caller's value would silently replace the token, point the
# request at another virtual host, or contradict the body actually sent.
_RESERVED_HEADERS = frozenset({"authorization", "host", "content-length", "transfer-encoding"})


@frozen(kw_only=True)
class Body:
    """An encoded request body and its ``Content-Type``."""

    content: bytes = field(repr=lambda content: f"<{len(content)} bytes>")
    content_type: str


def _text(value: Scalar) -> str:
    if value is True or value is False:
        return "true" if value else "false"
    if isinstance(value, str | int | float):
        return str(value)
    raise ConfigurationError(f"cannot send a {type(value).__name__} as a parameter")


def _flatten(key: str, value: Any, out: list[tuple[str, str]]) -> None:
    if value is None:
        return
    if isinstance(value, Mapping):
        for sub, item in value.items():
            _flatten(f"{key}[{sub}]", item, out)
    elif isinstance(value, list | tuple | set | frozenset):
        name = key if key.endswith("[]") else f"{key}[]"
        for item in value:
            if isinstance(item, Mapping | list | tuple):
                raise ConfigurationError(f"{key}: a list of lists or mappings cannot be sent")
            if item is not None:
                out.append((name, _text(item)))
    else:
        out.append((key, _text(value)))


def query_pairs(params: Params | None) -> list[tuple[str, str]]:
    """``params`` as ``(name, text)`` pairs: lists become ``key[]``, mappings ``key[sub]``.

    >>> query_pairs({"types": ["mention", "follow"], "limit": 5, "max_id": None})
    [('types[]', 'mention'), ('types[]', 'follow'), ('limit', '5')]
    """
    if params is None:
        return []
    items = params.items() if isinstance(params, Mapping) else params
    out: list[tuple[str, str]] = []
    for key, value in items:
        if type(key) is not str or not key:
            raise ConfigurationError(f"parameter names must be non-empty strings, not {key!r}")
        _flatten(key, value, out)
    return out


def form_body(data: Params) -> Body:
    """An ``application/x-www-form-urlencoded`` body."""
    return Body(
        content=urlencode(query_pairs(data)).encode("ascii"),
        content_type="application/x-www-form-urlencoded",
    )


def json_body(document: Any) -> Body:
    """A JSON body; ``None`` values are sent as ``null`` (JSON says what it means)."""
    try:
        content = json.dumps(document, ensure_ascii=False, separators=(",", ":"))
    except (TypeError, ValueError) as exc:
        raise ConfigurationError(f"json= cannot be encoded as JSON: {exc}") from None
    return Body(content=content.encode("utf-8"), content_type="application/json")


def _quoted(text: str) -> str:
    # RFC 7578 section 4.2 via the WHATWG encoding browsers use: escape the quote and line breaks.
    return text.replace("\\", "\\\\").replace('"', "%22").replace("\r", "%0D").replace("\n", "%0A")


def multipart_body(
    data: Params | None, files: Mapping[str, FileSpec], *, boundary: str | None = None
) -> Body:
    """A ``multipart/form-data`` body: the form fields, then each file.

    A file is its bytes (sent as ``file``, ``application/octet-stream``), ``(filename,
    bytes)`` or ``(filename, bytes, content_type)``.
    """
    boundary = boundary or f"aiomasto-{secrets.token_hex(16)}"
    marker = f"--{boundary}".encode()
    parts: list[bytes] = []
    for name, value in query_pairs(data):
        head = f'Content-Disposition: form-data; name="{_quoted(name)}"\r\n\r\n'
        parts += [marker, b"\r\n", head.encode("utf-8"), value.encode("utf-8"), b"\r\n"]
    for name, spec in files.items():
        filename, content, mime = _file(name, spec)
        head = (
            f'Content-Disposition: form-data; name="{_quoted(name)}"; '
            f'filename="{_quoted(filename)}"\r\nContent-Type: {mime}\r\n\r\n'
        )
        if marker in content:
            raise ConfigurationError("the multipart boundary occurs in a file; send it again")
        parts += [marker, b"\r\n", head.encode("utf-8"), content, b"\r\n"]
    parts += [marker, b"--\r\n"]
    return Body(content=b"".join(parts), content_type=f"multipart/form-data; boundary={boundary}")


def _file(name: str, spec: FileSpec) -> tuple[str, bytes, str]:
    if isinstance(spec, bytes | bytearray | memoryview):
        return "file", bytes(spec), "application/octet-stream"
    if isinstance(spec, tuple) and len(spec) in (2, 3):
        filename, content = spec[0], spec[1]
        mime = spec[2] if len(spec) == 3 else "application/octet-stream"
        if isinstance(filename, str) and isinstance(content, bytes) and isinstance(mime, str):
            if "\r" in mime or "\n" in mime:
                raise ConfigurationError(f"files[{name!r}]: the content type has a line break")
            return filename, content, mime
    raise ConfigurationError(
        f"files[{name!r}] must be bytes, (filename, bytes) or (filename, bytes, content_type)"
    )


def checked_headers(headers: Mapping[str, str] | None) -> dict[str, str]:
    """A caller's extra headers, refusing the ones the Session sets itself.

    >>> checked_headers({"Idempotency-Key": "post-1"})
    {'Idempotency-Key': 'post-1'}
    """
    if not headers:
        return {}
    checked: dict[str, str] = {}
    for name, value in headers.items():
        if not isinstance(name, str) or not isinstance(value, str):
            raise ConfigurationError("headers must map strings to strings")
        if name.strip().lower() in _RESERVED_HEADERS:
            raise ConfigurationError(
                f"the {name} header is the Session's to set; it cannot be given in headers="
            )
        if any(c in name + value for c in "\r\n"):
            raise ConfigurationError(f"the {name} header has a line break")
        checked[name] = value
    return checked
