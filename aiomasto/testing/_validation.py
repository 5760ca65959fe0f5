"""Validation of ``POST /api/v1/apps`` the way Doorkeeper and Mastodon's models do it.

Redirect URIs are parsed like Ruby's ``URI.parse`` (RFC 3986) and checked by Doorkeeper's
RedirectUriValidator; the website goes through Mastodon's URL validator.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from urllib.parse import urlsplit

import attrs

__all__ = ["OOB_URI", "validate_app"]

OOB_URI = "urn:ietf:wg:oauth:2.0:oob"
APP_NAME_LIMIT = 60
APP_REDIRECT_URI_LIMIT = 2000
APP_WEBSITE_LIMIT = 2000

_UNRESERVED = r"A-Za-z0-9\-._~"
_SUB_DELIMS = r"!$&'()*+,;="
_PCT = r"%[0-9A-Fa-f]{2}"
_PCHAR = rf"(?:[{_UNRESERVED}{_SUB_DELIMS}:@]|{_PCT})"
_SEGMENT_NZ_NC = rf"(?:[{_UNRESERVED}{_SUB_DELIMS}@]|{_PCT})+"
_QUERY = rf"(?:{_PCHAR}|[/?])*"
_USERINFO = rf"(?:[{_UNRESERVED}{_SUB_DELIMS}:]|{_PCT})*"
_HOST = rf"\[[0-9A-Za-z{_SUB_DELIMS}:.\-_~]+\]|(?:[{_UNRESERVED}{_SUB_DELIMS}]|{_PCT})*"
_AUTHORITY = rf"(?:{_USERINFO}@)?(?P<host>{_HOST})(?::\d*)?"
_PATH_ABEMPTY = rf"(?:/{_PCHAR}*)*"
_PATH_ABSOLUTE = rf"/(?:{_PCHAR}+(?:/{_PCHAR}*)*)?"
_TAIL = rf"(?:\?{_QUERY})?(?:#(?P<fragment>{_QUERY}))?"

_ABSOLUTE = re.compile(
    rf"(?P<scheme>[A-Za-z][A-Za-z0-9+\-.]*):"
    rf"(?://{_AUTHORITY}{_PATH_ABEMPTY}|{_PATH_ABSOLUTE}"
    rf"|(?P<opaque>{_PCHAR}+(?:/{_PCHAR}*)*)|){_TAIL}"
)
_RELATIVE = re.compile(
    rf"(?://{_AUTHORITY}{_PATH_ABEMPTY}|{_PATH_ABSOLUTE}"
    rf"|{_SEGMENT_NZ_NC}(?:/{_PCHAR}*)*|){_TAIL}"
)

_FORBIDDEN_SCHEMES = frozenset({"data", "vbscript", "javascript"})


class _InvalidURIError(ValueError):
    pass


@attrs.frozen(kw_only=True)
class _URI:
    scheme: str | None
    host: str | None
    opaque: bool
    fragment: str | None


def _parse_uri(text: str) -> _URI:
    match = _ABSOLUTE.fullmatch(text) or _RELATIVE.fullmatch(text)
    if match is None:
        raise _InvalidURIError(text)
    groups = match.groupdict()
    scheme = groups.get("scheme")
    return _URI(
        # Ruby's URI downcases the scheme.
        scheme=scheme.lower() if scheme else None,
        host=groups.get("host"),
        opaque=bool(groups.get("opaque")),
        fragment=groups.get("fragment"),
    )


def _redirect_uri_errors(value: str) -> list[str]:
    if not value.strip():
        return ["can't be blank"]
    errors: list[str] = []
    for uri_text in value.split():
        if uri_text == OOB_URI:
            continue
        try:
            uri = _parse_uri(uri_text)
        except _InvalidURIError:
            # Doorkeeper rescues the parse error outside its loop: later URIs go unchecked.
            errors.append("must be a valid URI.")
            break
        if uri.scheme in _FORBIDDEN_SCHEMES:
            errors.append("is forbidden by the server.")
        if uri.fragment is not None:
            errors.append("cannot contain a fragment.")
        if uri.opaque or uri.scheme == "localhost":
            errors.append("must specify a scheme.")
        if uri.scheme is None and uri.host is None:
            errors.append("must be an absolute URI.")
        if uri.scheme in ("http", "https") and not uri.host:
            errors.append("must be a valid URI.")
    return errors


def _valid_website(website: str) -> bool:
    try:
        parts = urlsplit(website)
        host = parts.hostname
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and bool(host)


def validate_app(
    *,
    name: str,
    redirect_uri: str,
    scopes: tuple[str, ...],
    website: str,
    known_scopes: Collection[str],
) -> list[str]:
    """Full error messages in validator order (Doorkeeper's first, then Mastodon's)."""
    errors: list[str] = []
    if not name.strip():
        errors.append("Application name can't be blank")
    errors.extend(f"Redirect URI {message}" for message in _redirect_uri_errors(redirect_uri))
    if scopes and not all(scope in known_scopes for scope in scopes):
        errors.append("Scopes doesn't match those configured on the server.")
    if len(name) > APP_NAME_LIMIT:
        errors.append(f"Application name is too long (maximum is {APP_NAME_LIMIT} characters)")
    if len(redirect_uri) > APP_REDIRECT_URI_LIMIT:
        errors.append(f"Redirect URI is too long (maximum is {APP_REDIRECT_URI_LIMIT} characters)")
    if website.strip():
        if not _valid_website(website):
            errors.append("Application website is not a valid URL")
        if len(website) > APP_WEBSITE_LIMIT:
            errors.append(
                f"Application website is too long (maximum is {APP_WEBSITE_LIMIT} characters)"
            )
    return errors
