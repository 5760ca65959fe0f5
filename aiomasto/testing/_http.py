"""Request parsing (Rails-style params), the request log entry and JSON response helpers."""

from __future__ import annotations

import email.parser
import email.policy
import json
import re
from collections.abc import Iterable, Mapping
from urllib.parse import parse_qsl

import attrs
from aiohttp import web

__all__ = [
    "JSON_TYPE",
    "BodyError",
    "Params",
    "RecordedRequest",
    "Upload",
    "dump_json",
    "json_response",
    "json_text_response",
    "not_found_page",
    "parse_body",
    "parse_pairs",
    "ruby_to_i",
    "scalar",
    "string_list",
]

JSON_TYPE = "application/json; charset=utf-8"

# Rails params: a key ending in "[]" collects a list, any other key keeps its last value,
# and a JSON body contributes its values unchanged.
Params = dict[str, object]

_BEARER = re.compile(r"^Bearer ", re.IGNORECASE)
_RUBY_INT = re.compile(r"\s*([+-]?\d+(?:_\d+)*)")
# Rails escapes these in every JSON document (ActiveSupport's escape_html_entities_in_json).
_JSON_ESCAPES = str.maketrans(
    {"<": "\\u003c", ">": "\\u003e", "&": "\\u0026", "\u2028": "\\u2028", "\u2029": "\\u2029"}
)


class BodyError(Exception):
    """The request body could not be parsed as its Content-Type claims."""


@attrs.frozen(kw_only=True)
class RecordedRequest:
    """One request as the fake server received it (see ``FakeMastodon.requests``).

    ``headers`` is aiohttp's case-insensitive, read-only multidict, so
    ``r.headers["authorization"]`` and ``r.headers["Authorization"]`` both work.
    ``form`` holds the parsed body as string pairs: form fields as sent (``"redirect_uris[]"``
    keys stay as they are), and JSON objects flattened the same way (lists become
    ``key[]`` pairs, nested objects ``key[sub]``, ``true``/``false``/``null`` become
    ``"true"``/``"false"``/``""``).

    Example::

        [r] = [r for r in server.requests if r.path == "/oauth/token"]
        assert dict(r.form)["grant_type"] == "client_credentials"
        assert r.bearer is None
    """

    method: str
    path: str
    query: tuple[tuple[str, str], ...]
    headers: Mapping[str, str]
    form: tuple[tuple[str, str], ...]
    raw_body: bytes
    url: str

    @property
    def authorization(self) -> str | None:
        """The raw ``Authorization`` header, if any."""
        return self.headers.get("Authorization")

    @property
    def bearer(self) -> str | None:
        """The token from ``Authorization: Bearer <token>`` (prefix matched case-insensitively)."""
        header = self.authorization
        if header is None or not _BEARER.match(header):
            return None
        return _BEARER.sub("", header, count=1)


def ruby_to_i(value: str) -> int:
    """Ruby's ``String#to_i``: the leading integer, or 0 (ActiveRecord casts ids this way)."""
    match = _RUBY_INT.match(value)
    return int(match.group(1).replace("_", "")) if match else 0


def parse_pairs(pairs: Iterable[tuple[str, str]], into: Params) -> None:
    for key, value in pairs:
        if key.endswith("[]"):
            existing = into.get(key[:-2])
            if isinstance(existing, list):
                existing.append(value)
            else:
                into[key[:-2]] = [value]
        else:
            into[key] = value


def _scalar_text(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    return json.dumps(value)


def _flatten(prefix: str, value: object, out: list[tuple[str, str]]) -> None:
    if isinstance(value, dict):
        for key, item in value.items():
            _flatten(f"{prefix}[{key}]" if prefix else str(key), item, out)
    elif isinstance(value, list):
        for item in value:
            _flatten(f"{prefix}[]", item, out)
    else:
        out.append((prefix, _scalar_text(value)))


@attrs.frozen(kw_only=True)
class Upload:
    """A file part of a multipart body, as Rails hands it over (``params[:file]``)."""

    filename: str
    content_type: str
    data: bytes = attrs.field(repr=False)


def _multipart_pairs(
    content_type: str, body: bytes, uploads: dict[str, Upload]
) -> list[tuple[str, str]]:
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
        b"Content-Type: " + content_type.encode("latin-1") + b"\r\n\r\n" + body
    )
    if not message.is_multipart():
        raise BodyError("malformed multipart body")
    pairs: list[tuple[str, str]] = []
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        payload = part.get_payload(decode=True)
        if not isinstance(name, str) or not isinstance(payload, bytes):
            continue
        filename = part.get_filename()
        if filename is not None:
            uploads[name] = Upload(
                filename=filename, content_type=part.get_content_type(), data=payload
            )
            pairs.append((name, f"<{filename}: {len(payload)} bytes>"))
        else:
            pairs.append((name, payload.decode("utf-8", "replace")))
    return pairs


def parse_body(content_type: str, body: bytes, into: Params) -> tuple[tuple[str, str], ...]:
    """Merge the body into ``into`` (body values win over the query, as in Rails).

    Returns the body as flat string pairs for the request log.
    """
    if not body:
        return ()
    mime = content_type.split(";", 1)[0].strip().lower()
    if mime == "application/json" or mime.endswith("+json"):
        try:
            document = json.loads(body)
        except ValueError as exc:
            raise BodyError(str(exc)) from exc
        pairs: list[tuple[str, str]] = []
        if isinstance(document, dict):
            into.update({str(key): value for key, value in document.items()})
            _flatten("", document, pairs)
        else:
            # Rails wraps a non-object JSON body as params[:_json].
            into["_json"] = document
            _flatten("_json", document, pairs)
        return tuple(pairs)
    if mime == "application/x-www-form-urlencoded":
        form = parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True)
    elif mime == "multipart/form-data":
        uploads: dict[str, Upload] = {}
        form = _multipart_pairs(content_type, body, uploads)
        parse_pairs([(k, v) for k, v in form if k not in uploads], into)
        into.update(uploads)
        return tuple(form)
    else:
        return ()
    parse_pairs(form, into)
    return tuple(form)


def scalar(params: Params, name: str) -> str | None:
    """A param that Rails' ``permit`` would keep as a scalar (lists and objects are dropped)."""
    value = params.get(name)
    if value is None or isinstance(value, list | dict):
        return None
    return _scalar_text(value)


def string_list(params: Params, name: str) -> list[str] | None:
    value = params.get(name)
    if not isinstance(value, list):
        return None
    return [_scalar_text(item) for item in value if not isinstance(item, list | dict)]


def dump_json(document: object) -> str:
    return json.dumps(document, ensure_ascii=False, separators=(",", ":")).translate(_JSON_ESCAPES)


def json_text_response(
    status: int, text: str, headers: Mapping[str, str] | None = None
) -> web.Response:
    """A response whose body is already-serialized JSON (cached account pages)."""
    response = web.Response(status=status, body=text.encode(), headers=headers)
    response.headers["Content-Type"] = JSON_TYPE
    return response


def json_response(
    status: int, document: object, headers: Mapping[str, str] | None = None
) -> web.Response:
    return json_text_response(status, dump_json(document), headers)


_NOT_FOUND_HTML = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta content="width=device-width, initial-scale=1" name="viewport">
<title>The page you are looking for isn't here. - Mastodon</title>
</head>
<body class="error">
<div class="dialog">
<div class="dialog__illustration">
<img alt="Mastodon" src="/oops.png">
</div>
<div class="dialog__message">
<h1>The page you are looking for isn't here.</h1>
</div>
</div>
</body>
</html>
"""


def not_found_page(headers: Mapping[str, str]) -> web.Response:
    """ApplicationController#raise_not_found: an HTML page unless the client asks for JSON."""
    if "application/json" in headers.get("Accept", ""):
        return json_response(404, {"error": "Not Found"})
    return web.Response(status=404, text=_NOT_FOUND_HTML, content_type="text/html")
