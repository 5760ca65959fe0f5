"""The pure response layer: error mapping, rate-limit headers, Link parsing, URL redaction."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from multidict import CIMultiDict
from yarl import URL

import aiomasto
from aiomasto._protocol import RawResponse, error_for, is_token_rejection, redact_url
from aiomasto.pagination import parse_links, read_links
from aiomasto.ratelimit import RateLimit, parse_reset, parse_retry_after

NGINX_502 = b"""<html>
<head><title>502 Bad Gateway</title></head>
<body>
<center><h1>502 Bad Gateway</h1></center>
<hr><center>nginx/1.25.5</center>
</body>
</html>
"""
MASTODON_HTML_404 = (
    b'<!DOCTYPE html><html><body class="error"><div class="dialog">404</div></body></html>'
)


def response(
    status: int,
    body: bytes = b"",
    headers: dict[str, str] | None = None,
    url: str = "https://m.example/api/v1/accounts/1",
) -> RawResponse:
    return RawResponse(
        method="GET",
        url=URL(url),
        status=status,
        headers=CIMultiDict(headers or {}),
        body=body,
    )


@pytest.mark.parametrize(
    ("status", "body", "cls", "error"),
    [
        (400, b'{"error":"param is missing"}', aiomasto.BadRequest, "param is missing"),
        (401, b'{"error":"The access token is invalid"}', aiomasto.Unauthorized, None),
        (
            403,
            b'{"error":"This action is outside the authorized scopes"}',
            aiomasto.Forbidden,
            None,
        ),
        (404, b'{"error":"Record not found"}', aiomasto.NotFound, "Record not found"),
        (404, MASTODON_HTML_404, aiomasto.NotFound, None),
        (410, b'{"error":"Gone"}', aiomasto.Gone, "Gone"),
        (422, b'{"error":"Validation failed: x"}', aiomasto.Unprocessable, "Validation failed: x"),
        (429, b'{"error":"Too many requests"}', aiomasto.RateLimited, "Too many requests"),
        (500, b'{"error":"boom"}', aiomasto.ServerError, "boom"),
        (502, NGINX_502, aiomasto.ServerError, None),
        (503, b"", aiomasto.ServerError, None),
        (504, b"upstream timed out", aiomasto.ServerError, None),
        (418, b"[]", aiomasto.HTTPError, None),
        (503, b'{"error": 5}', aiomasto.ServerError, None),
        (503, b'{"error": "truncated', aiomasto.ServerError, None),
    ],
)
def test_errors_map_by_status_whatever_the_body(
    status: int, body: bytes, cls: type[aiomasto.HTTPError], error: str | None
) -> None:
    exc = error_for(response(status, body, {"X-Request-Id": "req-1"}), oauth=False)
    assert type(exc) is cls
    assert exc.status == status
    assert exc.method == "GET"
    assert exc.url == "https://m.example/api/v1/accounts/1"
    assert exc.request_id == "req-1"
    assert exc.headers["X-Request-Id"] == "req-1"
    if error is not None:
        assert exc.error == error
    assert str(status) in str(exc)
    assert isinstance(exc, aiomasto.MastodonError)


def test_oauth_errors_carry_code_and_description() -> None:
    body = (
        b'{"error":"invalid_client","error_description":"Client authentication failed due to '
        b"unknown client, no client authentication included, or unsupported authentication "
        b'method."}'
    )
    exc = error_for(response(401, body, url="https://m.example/oauth/token"), oauth=True)
    assert type(exc) is aiomasto.OAuthError
    assert exc.status == 401
    assert exc.error == "invalid_client"
    assert exc.error_description is not None
    assert exc.error_description.startswith("Client authentication failed")
    assert "invalid_client" in str(exc)


def test_oauth_endpoint_html_502_is_still_a_server_error() -> None:
    exc = error_for(response(502, NGINX_502, url="https://m.example/oauth/token"), oauth=True)
    assert type(exc) is aiomasto.ServerError


def test_rate_limited_knows_when_to_retry() -> None:
    now = datetime(2026, 8, 7, 14, 4, 30, tzinfo=UTC)
    headers = {
        "X-RateLimit-Limit": "300",
        "X-RateLimit-Remaining": "0",
        "X-RateLimit-Reset": "2026-08-07T14:05:00.482913Z",
    }
    exc = error_for(response(429, b'{"error":"Too many requests"}', headers), oauth=False, now=now)
    assert isinstance(exc, aiomasto.RateLimited)
    assert exc.reset == datetime(2026, 8, 7, 14, 5, 0, 482913, tzinfo=UTC)
    assert exc.retry_after == pytest.approx(30.482913)


def test_retry_after_wins_over_reset() -> None:
    now = datetime(2026, 8, 7, 14, 4, 30, tzinfo=UTC)
    exc = error_for(
        response(429, b'{"error":"server capacity exceeded"}', {"Retry-After": "30"}),
        oauth=False,
        now=now,
    )
    assert isinstance(exc, aiomasto.RateLimited)
    assert exc.retry_after == 30.0
    assert exc.reset is None


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2026-08-07T14:05:00.123456Z", datetime(2026, 8, 7, 14, 5, 0, 123456, tzinfo=UTC)),
        ("2026-08-07T14:05:00.123Z", datetime(2026, 8, 7, 14, 5, 0, 123000, tzinfo=UTC)),
        ("2026-08-07T14:05:00Z", datetime(2026, 8, 7, 14, 5, tzinfo=UTC)),
        ("2026-08-07T16:05:00+02:00", datetime(2026, 8, 7, 14, 5, tzinfo=UTC)),
        ("1786111500", datetime.fromtimestamp(1786111500, UTC)),
        ("not a date", None),
    ],
)
def test_reset_header_formats(value: str, expected: datetime | None) -> None:
    assert parse_reset(value) == expected


def test_ratelimit_headers_absent_or_broken() -> None:
    assert RateLimit.from_headers({}) is None
    assert RateLimit.from_headers({"X-RateLimit-Limit": "x", "X-RateLimit-Remaining": "1"}) is None
    rl = RateLimit.from_headers({"X-RateLimit-Limit": "300", "X-RateLimit-Remaining": "299"})
    assert rl == RateLimit(limit=300, remaining=299, reset=None)


def test_retry_after_http_date() -> None:
    now = datetime(2026, 8, 7, 14, 4, 30, tzinfo=UTC)
    assert parse_retry_after("Fri, 07 Aug 2026 14:05:00 GMT", now) == 30.0
    assert parse_retry_after("soon", now) is None
    assert parse_retry_after(None, now) is None


def test_token_rejection_is_only_about_the_token() -> None:
    def exc(body: bytes, headers: dict[str, str] | None = None) -> aiomasto.HTTPError:
        return error_for(response(401, body, headers), oauth=False)

    assert is_token_rejection(exc(b'{"error":"The access token was revoked"}'))
    assert is_token_rejection(exc(b'{"error":"The access token is invalid"}'))
    assert is_token_rejection(
        exc(b"", {"WWW-Authenticate": 'Bearer realm="Doorkeeper", error="invalid_token"'})
    )
    assert not is_token_rejection(exc(b'{"error":"This method requires an authenticated user"}'))
    forbidden = error_for(response(403, b'{"error":"The access token is invalid"}'), oauth=False)
    assert not is_token_rejection(forbidden)


def test_redact_url_masks_secrets_only() -> None:
    url = URL("https://m.example/x?access_token=SECRET&max_id=5&client_secret=S2")
    shown = redact_url(url)
    assert "SECRET" not in shown
    assert "S2" not in shown
    assert "max_id=5" in shown
    plain = URL("https://m.example/api/v1/accounts/1/followers?max_id=5")
    assert redact_url(plain) == str(plain)


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (
            "<https://mastodon.example/api/v1/accounts/14715/followers?limit=2&max_id=7486869>; "
            'rel="next", <https://mastodon.example/api/v1/accounts/14715/followers?limit=2&'
            'since_id=7489740>; rel="prev"',
            {
                "next": "https://mastodon.example/api/v1/accounts/14715/followers?limit=2&max_id=7486869",
                "prev": "https://mastodon.example/api/v1/accounts/14715/followers?limit=2&since_id=7489740",
            },
        ),
        ('<https://a/p?min_id=1>; rel="prev", <https://a/p?max_id=2>; rel="next"', None),
        ("<https://a/p?max_id=2>; rel=next;", {"next": "https://a/p?max_id=2"}),
        ('</p?max_id=2>; rel="next"', {"next": "/p?max_id=2"}),
        ('<https://a/p?max_id=2>; rel="next last"', {"next": "https://a/p?max_id=2"}),
        ('<https://a/x>; rel="alternate", <https://a/p?max_id=2>; rel="NEXT"', None),
        ("", {}),
        ("garbage", {}),
        ("<https://a/p?max_id=2", {}),
        ('<https://a/p?a=1,2;b>; title="a, b"; rel="next"', {"next": "https://a/p?a=1,2;b"}),
    ],
)
def test_parse_links(header: str, expected: dict[str, str] | None) -> None:
    links = parse_links(header)
    if expected is None:
        assert links["next"] == "https://a/p?max_id=2"
    else:
        assert {k: v for k, v in links.items() if k in ("next", "prev")} == expected


@pytest.mark.parametrize(
    ("header", "links", "count"),
    [
        # From Mastodon's docs: a link whose rel was lost relates to nothing.
        ("<https://mastodon.example/api/v1/accounts/1/followers?since_id=9>;", {}, 1),
        ("<https://a/p?since_id=9>", {}, 1),
        ('<https://a/p?since_id=9>; title="x"', {}, 1),
        ('<https://a/p?since_id=9>; rel=""', {}, 1),
        ('<https://a/p?since_id=9>;, <https://a/p?max_id=2>; rel="next"', {"next": "/p"}, 2),
        ('<https://a/p?max_id=2>; rel="next", <https://a/p?since_id=9>', {"next": "/p"}, 2),
        ("<>; rel=next", {}, 0),
        ("garbage", {}, 0),
        ('; rel="next"', {}, 0),
        ("", {}, 0),
    ],
)
def test_a_link_without_a_rel_is_no_link(header: str, links: dict[str, str], count: int) -> None:
    parsed, read = read_links(header)
    assert {rel: URL(target).path for rel, target in parsed.items()} == links
    assert read == count
    assert parse_links(header) == parsed


VALIDATION_422 = (
    b'{"error":"Validation failed: Email can\'t be blank","details":{"email":[{"error":'
    b'"ERR_BLANK","description":"can\'t be blank"}],"agreement":[{"error":"ERR_ACCEPTED",'
    b'"description":"must be accepted"}]}}'
)


def test_validation_details_are_read_into_the_error() -> None:
    exc = error_for(response(422, VALIDATION_422), oauth=False)
    assert type(exc) is aiomasto.Unprocessable
    assert exc.error == "Validation failed: Email can't be blank"
    assert exc.details == {
        "email": (aiomasto.ErrorDetail(error="ERR_BLANK", description="can't be blank"),),
        "agreement": (aiomasto.ErrorDetail(error="ERR_ACCEPTED", description="must be accepted"),),
    }


@pytest.mark.parametrize(
    ("body", "error", "details"),
    [
        (b'{"error":"x","details":"junk"}', "x", {}),
        (b'{"error":"x","details":[{"error":"ERR_BLANK"}]}', "x", {}),
        (b'{"error":"x","details":null}', "x", {}),
        (b'{"error":"x","details":{"a":[{"error":"E"},7,"s"],"b":{}}}', "x", {"a": ("E",)}),
        (b'{"error":"x","details":{"a":[{"description":"no code"}]}}', "x", {}),
        (b'{"error":{"nested":"object"}}', None, {}),
        (b'{"error":null,"error_description":"d"}', None, {}),
        (b"[]", None, {}),
        (b'"Validation failed"', None, {}),
        (b"null", None, {}),
        (b"422", None, {}),
        (b"<html><body>Unprocessable</body></html>", None, {}),
        (b"\xff\xfe{", None, {}),
        (b'{"error":"trunc', None, {}),
        (b"[" * 100_000 + b"]" * 100_000, None, {}),
        (b'{"a":' * 100_000 + b"1" + b"}" * 100_000, None, {}),
        (b'{"error":"x","details":' + b"[" * 50_000 + b"]" * 50_000 + b"}", None, {}),
    ],
)
@pytest.mark.parametrize("status", [401, 422, 500])
def test_any_error_body_maps_by_status_and_keeps_what_it_can(
    body: bytes, error: str | None, details: dict[str, tuple[str, ...]], status: int
) -> None:
    exc = error_for(response(status, body), oauth=False)
    expected = {401: aiomasto.Unauthorized, 422: aiomasto.Unprocessable, 500: aiomasto.ServerError}
    assert type(exc) is expected[status]
    assert exc.status == status
    assert exc.error == error
    assert {k: tuple(d.error for d in v) for k, v in exc.details.items()} == details
