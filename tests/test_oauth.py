"""The pure sign-in layer: PKCE, RFC 8414 discovery, the login state, the authorize URL, the
callback and the token request bodies. Canned server answers, no event loop."""

from __future__ import annotations

import hmac
import json
import re
import traceback
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest
from hypothesis import given
from hypothesis import strategies as st
from yarl import URL

import aiomasto
from aiomasto._redact import Secret
from aiomasto.oauth import (
    LoginState,
    ServerMetadata,
    authorization_code_form,
    authorize_url,
    code_challenge,
    make_code_verifier,
    read_callback,
    read_metadata,
    refresh_token_form,
)

INSTANCE = URL("https://mastodon.example")
RFC7636_VERIFIER = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"
RFC7636_CHALLENGE = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
UNRESERVED = re.compile(r"[A-Za-z0-9._~-]+")
T0 = 1_700_000_000.0

# mastodon-api.md §6: Mastodon 4.4+ (userinfo, no password grant), issuer with a trailing slash.
MASTODON_44 = b"""{
  "issuer": "https://mastodon.example/",
  "service_documentation": "https://docs.joinmastodon.org/",
  "authorization_endpoint": "https://mastodon.example/oauth/authorize",
  "token_endpoint": "https://mastodon.example/oauth/token",
  "app_registration_endpoint": "https://mastodon.example/api/v1/apps",
  "revocation_endpoint": "https://mastodon.example/oauth/revoke",
  "userinfo_endpoint": "https://mastodon.example/oauth/userinfo",
  "scopes_supported": ["read", "write", "write:accounts", "follow", "push", "profile",
                       "admin:read", "read:accounts", "read:statuses"],
  "response_types_supported": ["code"],
  "response_modes_supported": ["query", "fragment", "form_post"],
  "grant_types_supported": ["authorization_code", "client_credentials"],
  "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
  "code_challenge_methods_supported": ["S256"]
}"""
# Mastodon 4.3: the password grant still listed, no userinfo endpoint.
MASTODON_43 = b"""{"issuer":"https://mastodon.example/",
  "authorization_endpoint":"https://mastodon.example/oauth/authorize",
  "token_endpoint":"https://mastodon.example/oauth/token",
  "revocation_endpoint":"https://mastodon.example/oauth/revoke",
  "app_registration_endpoint":"https://mastodon.example/api/v1/apps",
  "scopes_supported":["read","write","follow","push"],
  "response_types_supported":["code"],
  "grant_types_supported":["authorization_code","password","client_credentials"],
  "code_challenge_methods_supported":["S256"]}"""
MASTODON_HTML_404 = (
    b'<!DOCTYPE html><html><body class="error"><div class="dialog">404</div></body></html>'
)
AKKOMA_HTML_200 = (
    b'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>Akkoma</title>'
    b"</head><body><noscript>To use Akkoma, please enable JavaScript.</noscript>"
    b'<div id="app"></div></body></html>'
)
GTS_404 = b'{"error":"Not Found"}'


def document(**changes: object) -> bytes:
    """MASTODON_44 with keys replaced (``None`` removes a key)."""
    data = json.loads(MASTODON_44)
    for key, value in changes.items():
        if value is None:
            data.pop(key, None)
        else:
            data[key] = value
    return json.dumps(data).encode()


def make_login(**changes: Any) -> LoginState:
    fields: dict[str, Any] = {
        "instance": "https://mastodon.example",
        "app": "Mapper",
        "state": "s" * 43,
        "code_verifier": RFC7636_VERIFIER,
        "redirect_uri": "https://app.example/callback",
        "scopes": ("read", "write"),
        "created_at": T0,
    }
    fields.update(changes)
    return LoginState(**fields)


# --- PKCE -----------------------------------------------------------------------------------


def test_rfc7636_appendix_b_vector() -> None:
    assert code_challenge(RFC7636_VERIFIER) == RFC7636_CHALLENGE


def test_verifiers_are_fresh_unreserved_and_43_to_128_long() -> None:
    verifiers = {make_code_verifier() for _ in range(200)}
    assert len(verifiers) == 200
    for verifier in verifiers:
        assert 43 <= len(verifier) <= 128
        assert UNRESERVED.fullmatch(verifier)
        assert repr(verifier) == "'[redacted]'"


@given(st.text(alphabet="ABCXYZabcxyz0189-._~", min_size=43, max_size=128))
def test_every_valid_verifier_has_a_43_character_base64url_challenge(verifier: str) -> None:
    challenge = code_challenge(verifier)
    assert re.fullmatch(r"[A-Za-z0-9_-]{43}", challenge)
    assert challenge != verifier


@pytest.mark.parametrize(
    "verifier",
    ["", "a" * 42, "a" * 129, "a" * 42 + "+", "a" * 42 + "=", "a" * 42 + " ", "é" * 43],
)
def test_an_invalid_verifier_is_refused_without_being_quoted(verifier: str) -> None:
    with pytest.raises(aiomasto.ConfigurationError) as info:
        code_challenge(verifier)
    if verifier:
        assert verifier not in str(info.value)


# --- discovery ------------------------------------------------------------------------------


def test_mastodon_44_document_is_read() -> None:
    metadata = read_metadata(INSTANCE, 200, "application/json; charset=utf-8", MASTODON_44)
    assert metadata == ServerMetadata(
        issuer="https://mastodon.example/",
        authorization_endpoint=URL("https://mastodon.example/oauth/authorize"),
        token_endpoint=URL("https://mastodon.example/oauth/token"),
        revocation_endpoint=URL("https://mastodon.example/oauth/revoke"),
        userinfo_endpoint=URL("https://mastodon.example/oauth/userinfo"),
        app_registration_endpoint=URL("https://mastodon.example/api/v1/apps"),
        scopes_supported=(
            "read",
            "write",
            "write:accounts",
            "follow",
            "push",
            "profile",
            "admin:read",
            "read:accounts",
            "read:statuses",
        ),
        response_types_supported=("code",),
        grant_types_supported=("authorization_code", "client_credentials"),
        code_challenge_methods_supported=("S256",),
    )


def test_mastodon_43_document_has_no_userinfo() -> None:
    metadata = read_metadata(INSTANCE, 200, "application/json", MASTODON_43)
    assert metadata.userinfo_endpoint is None
    assert "password" in metadata.grant_types_supported
    assert metadata.code_challenge_methods_supported == ("S256",)


def test_fallback_is_mastodons_oauth_paths() -> None:
    fallback = ServerMetadata.fallback(URL("http://127.0.0.1:8080"))
    assert fallback.issuer == "http://127.0.0.1:8080/"
    assert str(fallback.authorization_endpoint) == "http://127.0.0.1:8080/oauth/authorize"
    assert str(fallback.token_endpoint) == "http://127.0.0.1:8080/oauth/token"
    assert str(fallback.revocation_endpoint) == "http://127.0.0.1:8080/oauth/revoke"
    assert fallback.userinfo_endpoint is None
    assert fallback.app_registration_endpoint is None
    assert fallback.code_challenge_methods_supported == ()


@pytest.mark.parametrize(
    ("status", "content_type", "body"),
    [
        pytest.param(404, "text/html; charset=utf-8", MASTODON_HTML_404, id="mastodon<4.3 404"),
        pytest.param(404, "application/json", GTS_404, id="gotosocial 404"),
        pytest.param(200, "text/html; charset=utf-8", AKKOMA_HTML_200, id="akkoma html 200"),
        pytest.param(200, None, AKKOMA_HTML_200, id="html without content type"),
        pytest.param(200, "application/json", AKKOMA_HTML_200, id="html labelled json"),
        pytest.param(200, "text/html", MASTODON_44, id="json labelled html"),
        pytest.param(200, "application/json", b'{"issuer":"https://mastodon.ex', id="truncated"),
        pytest.param(200, "application/json", b"", id="empty"),
        pytest.param(200, "application/json", b"[]", id="array"),
        pytest.param(200, "application/json", b"null", id="null"),
        pytest.param(200, "application/json", b'"https://evil.example/"', id="string"),
        pytest.param(200, "application/json", b"{}", id="empty object"),
        pytest.param(200, "application/json", b"\xff\xfe{}", id="not utf-8"),
        pytest.param(200, "application/json", b"[" * 100_000, id="nested too deep"),
        pytest.param(503, "application/json", MASTODON_44, id="5xx"),
        pytest.param(410, "application/json", b'{"error":"Gone"}', id="410"),
    ],
)
def test_no_usable_document_means_the_fallback(
    status: int, content_type: str | None, body: bytes
) -> None:
    assert read_metadata(INSTANCE, status, content_type, body) == ServerMetadata.fallback(INSTANCE)


@pytest.mark.parametrize(
    "content_type",
    [None, "application/json", "Application/JSON; charset=utf-8", "application/jrd+json"],
)
def test_json_content_types(content_type: str | None) -> None:
    metadata = read_metadata(INSTANCE, 200, content_type, MASTODON_44)
    assert metadata.userinfo_endpoint == URL("https://mastodon.example/oauth/userinfo")


def test_unknown_keys_and_mistyped_optional_keys_are_tolerated() -> None:
    body = document(
        issuer=17,
        revocation_endpoint="",
        userinfo_endpoint=["https://mastodon.example/oauth/userinfo"],
        scopes_supported="read write",
        grant_types_supported=["authorization_code", 3, None, "client_credentials"],
        code_challenge_methods_supported={"S256": True},
        pleroma_extension={"nested": [1, 2]},
        dpop_signing_alg_values_supported=["ES256"],
    )
    metadata = read_metadata(INSTANCE, 200, "application/json", body)
    assert metadata.issuer == "https://mastodon.example/"
    assert metadata.userinfo_endpoint is None
    assert metadata.scopes_supported == ()
    assert metadata.grant_types_supported == ("authorization_code", "client_credentials")
    assert metadata.code_challenge_methods_supported == ()
    assert metadata.token_endpoint == URL("https://mastodon.example/oauth/token")
    assert metadata.revocation_endpoint == URL("https://mastodon.example/oauth/revoke")


@pytest.mark.parametrize(
    "missing", ["authorization_endpoint", "token_endpoint", "revocation_endpoint"]
)
def test_a_missing_endpoint_falls_back_to_its_oauth_path(missing: str) -> None:
    fallback = ServerMetadata.fallback(INSTANCE)
    metadata = read_metadata(
        INSTANCE, 200, "application/json", document(**{missing: None, "scopes_supported": ["x"]})
    )
    assert getattr(metadata, missing) == getattr(fallback, missing)
    assert metadata.scopes_supported == ("x",)
    assert metadata.userinfo_endpoint == URL("https://mastodon.example/oauth/userinfo")


def test_endpoints_may_spell_the_origin_differently_and_carry_a_path_prefix() -> None:
    body = document(
        token_endpoint="HTTPS://Mastodon.Example:443/oauth/token",
        authorization_endpoint="https://mastodon.example/auth/oauth/authorize?locale=en",
    )
    metadata = read_metadata(INSTANCE, 200, "application/json", body)
    assert metadata.token_endpoint.path == "/oauth/token"
    assert metadata.authorization_endpoint.query["locale"] == "en"


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("token_endpoint", "https://evil.example/oauth/token"),
        ("token_endpoint", "https://mastodon.example.evil.example/oauth/token"),
        ("token_endpoint", "http://mastodon.example/oauth/token"),
        ("token_endpoint", "https://mastodon.example:8443/oauth/token"),
        ("token_endpoint", "https://user:pw@mastodon.example/oauth/token"),
        ("token_endpoint", "/oauth/token"),
        ("token_endpoint", "oauth/token"),
        ("token_endpoint", "//evil.example/oauth/token"),
        ("token_endpoint", "//mastodon.example/oauth/token"),
        ("token_endpoint", "https://mastodon.example//evil.example/oauth/token"),
        ("token_endpoint", "javascript:alert(1)"),
        ("authorization_endpoint", "https://evil.example/oauth/authorize"),
        ("authorization_endpoint", "/oauth/authorize"),
        ("revocation_endpoint", "https://evil.example/oauth/revoke"),
        ("userinfo_endpoint", "//evil.example/oauth/userinfo"),
        ("app_registration_endpoint", "https://evil.example/api/v1/apps"),
        ("issuer", "https://evil.example/"),
    ],
)
def test_an_endpoint_off_the_instance_origin_is_refused(key: str, value: str) -> None:
    with pytest.raises(aiomasto.OriginError) as info:
        read_metadata(INSTANCE, 200, "application/json", document(**{key: value}))
    assert key in str(info.value)
    assert info.value.expected_origin == str(INSTANCE)


def test_an_origin_error_does_not_quote_credentials_from_the_document() -> None:
    body = document(token_endpoint="https://user:hunter2@evil.example/oauth/token?k=v")
    with pytest.raises(aiomasto.OriginError) as info:
        read_metadata(INSTANCE, 200, "application/json", body)
    assert "hunter2" not in str(info.value)
    assert "hunter2" not in info.value.url


# --- the login state ------------------------------------------------------------------------

texts = st.text(st.characters(codec="utf-8"), min_size=1, max_size=40)
scopes = st.lists(
    st.text(st.characters(min_codepoint=33, max_codepoint=126), min_size=1, max_size=20),
    min_size=1,
    max_size=5,
    unique=True,
)
verifiers = st.text(alphabet="ABCXYZabcxyz0189-._~", min_size=43, max_size=128)


@given(
    instance=texts,
    app=texts,
    state=texts,
    code_verifier=verifiers,
    redirect_uri=texts,
    scope_list=scopes,
    created_at=st.floats(allow_nan=False, allow_infinity=False),
)
def test_login_state_json_round_trip(
    instance: str,
    app: str,
    state: str,
    code_verifier: str,
    redirect_uri: str,
    scope_list: list[str],
    created_at: float,
) -> None:
    login = LoginState(
        instance=instance,
        app=app,
        state=state,
        code_verifier=code_verifier,
        redirect_uri=redirect_uri,
        scopes=scope_list,
        created_at=created_at,
    )
    assert LoginState.from_json(login.to_json()) == login
    assert LoginState.from_json(login.to_json().encode()) == login
    assert LoginState.from_dict(json.loads(json.dumps(login.to_dict()))) == login
    assert code_verifier not in repr(login)


def test_new_login_has_a_fresh_state_and_verifier() -> None:
    logins = [
        LoginState.new(
            instance="https://mastodon.example",
            app="Mapper",
            redirect_uri="urn:ietf:wg:oauth:2.0:oob",
            scopes="read write",
            now=T0,
        )
        for _ in range(50)
    ]
    assert len({login.state for login in logins}) == 50
    assert len({login.code_verifier for login in logins}) == 50
    login = logins[0]
    assert len(login.state) >= 22  # >= 128 bits of base64url
    assert UNRESERVED.fullmatch(login.state)
    assert login.scopes == ("read", "write")
    assert login.created_at == T0
    assert isinstance(login.created_at, float)
    assert login.code_challenge == code_challenge(login.code_verifier)


def test_the_verifier_is_in_no_repr() -> None:
    login = make_login()
    assert RFC7636_VERIFIER not in repr(login)
    assert RFC7636_VERIFIER not in repr(login.to_dict())
    assert RFC7636_VERIFIER in login.to_json()  # it goes to the backend's storage, in full
    assert login.to_dict()["code_verifier"] == RFC7636_VERIFIER


def test_to_dict_shape() -> None:
    assert make_login(created_at=5).to_dict() == {
        "instance": "https://mastodon.example",
        "app": "Mapper",
        "state": "s" * 43,
        "code_verifier": RFC7636_VERIFIER,
        "redirect_uri": "https://app.example/callback",
        "scopes": ["read", "write"],
        "created_at": 5.0,
    }


def test_from_dict_ignores_unknown_keys_and_accepts_integer_times() -> None:
    data = make_login().to_dict() | {"created_at": 1_700_000_000, "future_field": [1]}
    assert LoginState.from_dict(data) == make_login()


GOOD = make_login().to_dict()


@pytest.mark.parametrize(
    "text",
    [
        "",
        "not json",
        "[]",
        "null",
        "42",
        '"a string"',
        "[" * 100_000,
        json.dumps(GOOD)[:-20],
        json.dumps({k: v for k, v in GOOD.items() if k != "state"}),
        json.dumps({k: v for k, v in GOOD.items() if k != "code_verifier"}),
        json.dumps({k: v for k, v in GOOD.items() if k != "created_at"}),
        json.dumps(GOOD | {"state": 5}),
        json.dumps(GOOD | {"state": ""}),
        json.dumps(GOOD | {"instance": None}),
        json.dumps(GOOD | {"scopes": "read write"}),
        json.dumps(GOOD | {"scopes": ["read", 1]}),
        json.dumps(GOOD | {"scopes": ["read write"]}),
        json.dumps(GOOD | {"scopes": []}),
        json.dumps(GOOD | {"created_at": "2024-01-01"}),
        json.dumps(GOOD | {"created_at": True}),
        json.dumps(GOOD | {"code_verifier": "short"}),
        json.dumps(GOOD | {"code_verifier": RFC7636_VERIFIER + "+"}),
        json.dumps(GOOD).replace(str(T0), "NaN"),
        json.dumps(GOOD).replace(str(T0), "Infinity"),
    ],
)
def test_from_json_of_garbage_raises_login_error(text: str) -> None:
    with pytest.raises(aiomasto.LoginError) as info:
        LoginState.from_json(text)
    assert type(info.value) is aiomasto.LoginError
    # Neither the message nor any chained exception quotes the stored secret.
    printed = "".join(traceback.format_exception(info.value))
    assert RFC7636_VERIFIER not in printed


@pytest.mark.parametrize("data", [[], "x", None, 5])
def test_from_dict_of_a_wrong_shape_raises_login_error(data: Any) -> None:
    with pytest.raises(aiomasto.LoginError):
        LoginState.from_dict(data)


@pytest.mark.parametrize(
    "changes",
    [
        {"state": ""},
        {"instance": ""},
        {"code_verifier": "x"},
        {"created_at": float("nan")},
        {"created_at": float("inf")},
        {"scopes": ["read write"]},
        {"scopes": ()},
    ],
)
def test_an_impossible_login_state_is_a_configuration_error(changes: dict[str, Any]) -> None:
    with pytest.raises(aiomasto.ConfigurationError):
        make_login(**changes)


# --- the authorize URL ----------------------------------------------------------------------


def query_of(url: str) -> list[tuple[str, str]]:
    return parse_qsl(urlsplit(url).query, keep_blank_values=True, strict_parsing=True)


def test_authorize_url_has_exactly_mastodons_parameters() -> None:
    url = authorize_url(
        URL("https://mastodon.example/oauth/authorize"),
        client_id="cid",
        redirect_uri="urn:ietf:wg:oauth:2.0:oob",
        scopes=["read", "write:statuses"],
        state="st4te",
        code_challenge=RFC7636_CHALLENGE,
    )
    assert url == (
        "https://mastodon.example/oauth/authorize?response_type=code&client_id=cid"
        "&redirect_uri=urn%3Aietf%3Awg%3Aoauth%3A2.0%3Aoob&scope=read%20write%3Astatuses"
        f"&state=st4te&code_challenge={RFC7636_CHALLENGE}&code_challenge_method=S256"
    )


def test_force_login_and_lang_only_when_asked() -> None:
    url = authorize_url(
        URL("https://mastodon.example/oauth/authorize"),
        client_id="cid",
        redirect_uri="https://app.example/callback?next=/home&x=1",
        scopes="read",
        state="st4te",
        code_challenge=RFC7636_CHALLENGE,
        force_login=True,
        lang="de",
    )
    assert query_of(url) == [
        ("response_type", "code"),
        ("client_id", "cid"),
        ("redirect_uri", "https://app.example/callback?next=/home&x=1"),
        ("scope", "read"),
        ("state", "st4te"),
        ("code_challenge", RFC7636_CHALLENGE),
        ("code_challenge_method", "S256"),
        ("force_login", "true"),
        ("lang", "de"),
    ]


def test_the_endpoints_own_query_is_kept_and_its_fragment_dropped() -> None:
    url = authorize_url(
        URL("https://mastodon.example/oauth/authorize?locale=en&scope=admin#frag"),
        client_id="cid",
        redirect_uri="urn:ietf:wg:oauth:2.0:oob",
        scopes="read",
        state="st4te",
        code_challenge=RFC7636_CHALLENGE,
    )
    assert "#" not in url
    query = query_of(url)
    assert query[0] == ("locale", "en")
    assert [value for key, value in query if key == "scope"] == ["read"]


@given(
    client_id=texts,
    redirect_uri=texts,
    state=texts,
    scope_list=scopes,
    force_login=st.booleans(),
    lang=st.one_of(st.none(), st.sampled_from(["", "en", "de", "pt-BR"])),
)
def test_authorize_url_never_says_none_and_round_trips(
    client_id: str,
    redirect_uri: str,
    state: str,
    scope_list: list[str],
    force_login: bool,
    lang: str | None,
) -> None:
    url = authorize_url(
        URL("https://mastodon.example/oauth/authorize"),
        client_id=client_id,
        redirect_uri=redirect_uri,
        scopes=scope_list,
        state=state,
        code_challenge=RFC7636_CHALLENGE,
        force_login=force_login,
        lang=lang,
    )
    query = dict(query_of(url))
    assert len(query) == len(query_of(url))
    # Nothing unset becomes "None": only what was passed in may say it.
    passed = {client_id, redirect_uri, state, *scope_list, " ".join(scope_list)}
    assert all(value != "None" or value in passed for value in query.values())
    assert query["client_id"] == client_id
    assert query["redirect_uri"] == redirect_uri
    assert query["state"] == state
    assert query["scope"].split(" ") == scope_list
    assert query["code_challenge_method"] == "S256"
    assert ("force_login" in query) is force_login
    assert query.get("lang") == (lang or None)


@pytest.mark.parametrize(
    "changes",
    [
        {"client_id": None},
        {"client_id": ""},
        {"redirect_uri": None},
        {"state": None},
        {"state": ""},
        {"scopes": ()},
        {"scopes": ""},
        {"scopes": [None]},
        {"code_challenge": None},
        {"code_challenge": RFC7636_VERIFIER + "x"},  # a verifier passed by mistake
        {"force_login": "true"},
        {"lang": 5},
    ],
)
def test_authorize_url_refuses_unset_or_wrong_values(changes: dict[str, Any]) -> None:
    arguments: dict[str, Any] = {
        "client_id": "cid",
        "redirect_uri": "urn:ietf:wg:oauth:2.0:oob",
        "scopes": "read",
        "state": "st4te",
        "code_challenge": RFC7636_CHALLENGE,
    }
    arguments.update(changes)
    with pytest.raises(aiomasto.ConfigurationError):
        authorize_url(URL("https://mastodon.example/oauth/authorize"), **arguments)


def test_authorize_url_needs_an_absolute_endpoint() -> None:
    with pytest.raises(aiomasto.ConfigurationError):
        authorize_url(
            URL("/oauth/authorize"),
            client_id="cid",
            redirect_uri="urn:ietf:wg:oauth:2.0:oob",
            scopes="read",
            state="st4te",
            code_challenge=RFC7636_CHALLENGE,
        )


# --- the callback ---------------------------------------------------------------------------

LOGIN = make_login()


def test_a_good_callback_gives_the_code_hidden_from_reprs() -> None:
    code = read_callback(LOGIN, {"code": "c0de", "state": LOGIN.state}, now=T0 + 30)
    assert code == "c0de"
    assert isinstance(code, Secret)
    assert "c0de" not in repr(code)


def test_the_login_may_be_exactly_max_age_old() -> None:
    params = {"code": "c0de", "state": LOGIN.state}
    assert read_callback(LOGIN, params, now=T0 + 600) == "c0de"
    assert read_callback(LOGIN, params, now=T0 + 60, max_age=60) == "c0de"


@pytest.mark.parametrize(
    ("params", "now", "error"),
    [
        ({"code": "c0de"}, T0, aiomasto.StateMismatch),
        ({"code": "c0de", "state": ""}, T0, aiomasto.StateMismatch),
        ({"code": "c0de", "state": "s" * 42}, T0, aiomasto.StateMismatch),
        ({"code": "c0de", "state": "s" * 44}, T0, aiomasto.StateMismatch),
        ({"code": "c0de", "state": "S" * 43}, T0, aiomasto.StateMismatch),
        ({"code": "c0de", "state": "ß" * 43}, T0, aiomasto.StateMismatch),
        ({"code": "c0de", "state": "\udcff" * 43}, T0, aiomasto.StateMismatch),
        ({"code": "c0de", "state": "s" * 43}, T0 + 600.001, aiomasto.LoginExpired),
        ({"code": "c0de", "state": "s" * 43}, float("nan"), aiomasto.LoginExpired),
        ({"state": "s" * 43}, T0, aiomasto.LoginError),
        ({"state": "s" * 43, "code": ""}, T0, aiomasto.LoginError),
        ({"error": "access_denied"}, T0, aiomasto.AuthorizationDenied),
        # The error wins over everything: code, wrong state, age.
        ({"error": "access_denied", "code": "c0de", "state": "x"}, T0 + 10**6, None),
    ],
)
def test_bad_callbacks(params: dict[str, str], now: float, error: type[Exception] | None) -> None:
    expected = error or aiomasto.AuthorizationDenied
    with pytest.raises(aiomasto.LoginError) as info:
        read_callback(LOGIN, params, now=now)
    assert type(info.value) is expected
    assert "c0de" not in str(info.value)
    assert LOGIN.state not in str(info.value)


def test_access_denied_carries_the_servers_words_redacted() -> None:
    leaked = "ZA-Yj3aBD8U8Cm7lKUp-lm9O9BmDgdhHzDeqsY8tlL0"
    params = {
        "error": "access_denied",
        "error_description": f"The resource owner\r\ndenied the request. client_secret={leaked}",
        "state": LOGIN.state,
    }
    with pytest.raises(aiomasto.AuthorizationDenied) as info:
        read_callback(LOGIN, params, now=T0)
    assert info.value.error == "access_denied"
    assert info.value.error_description == (
        "The resource owner denied the request. client_secret=[redacted]"
    )
    assert leaked not in str(info.value)
    assert "access_denied" in str(info.value)
    assert "\n" not in str(info.value)


def test_a_long_error_description_is_cut() -> None:
    params = {"error": "invalid_scope", "error_description": "x " * 10_000}
    with pytest.raises(aiomasto.AuthorizationDenied) as info:
        read_callback(LOGIN, params, now=T0)
    assert info.value.error == "invalid_scope"
    assert info.value.error_description is not None
    assert len(info.value.error_description) <= 300


def test_no_description_is_none() -> None:
    with pytest.raises(aiomasto.AuthorizationDenied) as info:
        read_callback(LOGIN, {"error": "access_denied"}, now=T0)
    assert info.value.error_description is None
    assert str(info.value) == "the authorization was not granted (access_denied)"


def test_login_expired_says_how_old() -> None:
    with pytest.raises(aiomasto.LoginExpired) as info:
        read_callback(LOGIN, {"state": LOGIN.state, "code": "c"}, now=T0 + 700)
    assert info.value.age == 700
    assert info.value.max_age == 600


def test_the_state_is_compared_in_constant_time(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[bytes, bytes]] = []
    compare_digest = hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        calls.append((a, b))
        return compare_digest(a, b)

    monkeypatch.setattr(hmac, "compare_digest", spy)
    with pytest.raises(aiomasto.StateMismatch):
        read_callback(LOGIN, {"state": "wrong", "code": "c"}, now=T0)
    assert calls == [(b"wrong", LOGIN.state.encode())]


@pytest.mark.parametrize("max_age", [0, -1, float("nan")])
def test_max_age_must_be_positive(max_age: float) -> None:
    with pytest.raises(aiomasto.ConfigurationError):
        read_callback(LOGIN, {"state": LOGIN.state, "code": "c"}, now=T0, max_age=max_age)


def test_parse_qs_lists_are_a_configuration_error() -> None:
    params: Any = {"state": [LOGIN.state], "code": ["c"]}
    with pytest.raises(aiomasto.ConfigurationError, match="parse_qs"):
        read_callback(LOGIN, params, now=T0)


# --- POST /oauth/token bodies ---------------------------------------------------------------


def test_authorization_code_form() -> None:
    form = authorization_code_form(
        client_id="cid",
        client_secret="csecret",
        code="c0de",
        redirect_uri="https://app.example/callback",
        code_verifier=RFC7636_VERIFIER,
        scopes=("read", "write"),
    )
    assert form == {
        "grant_type": "authorization_code",
        "client_id": "cid",
        "client_secret": "csecret",
        "code": "c0de",
        "redirect_uri": "https://app.example/callback",
        "code_verifier": RFC7636_VERIFIER,
        "scope": "read write",
    }
    for key in ("client_secret", "code", "code_verifier"):
        assert isinstance(form[key], Secret)
    for key in ("grant_type", "client_id", "redirect_uri", "scope"):
        assert not isinstance(form[key], Secret)
    for secret in ("csecret", "c0de", RFC7636_VERIFIER):
        assert secret not in repr(form)


def test_refresh_token_form() -> None:
    form = refresh_token_form(client_id="cid", client_secret="csecret", refresh_token="rt0k")
    assert form == {
        "grant_type": "refresh_token",
        "client_id": "cid",
        "client_secret": "csecret",
        "refresh_token": "rt0k",
    }
    assert isinstance(form["client_secret"], Secret)
    assert isinstance(form["refresh_token"], Secret)
    assert "csecret" not in repr(form)
    assert "rt0k" not in repr(form)
    with_scope = refresh_token_form(
        client_id="cid", client_secret="csecret", refresh_token="rt0k", scopes="read write"
    )
    assert with_scope["scope"] == "read write"


@pytest.mark.parametrize(
    "changes",
    [
        {"client_id": ""},
        {"client_secret": ""},
        {"client_secret": None},
        {"code": ""},
        {"redirect_uri": ""},
        {"code_verifier": "short"},
        {"scopes": ()},
    ],
)
def test_authorization_code_form_refuses_unset_values(changes: dict[str, Any]) -> None:
    arguments: dict[str, Any] = {
        "client_id": "cid",
        "client_secret": "csecret",
        "code": "c0de",
        "redirect_uri": "https://app.example/callback",
        "code_verifier": RFC7636_VERIFIER,
        "scopes": "read",
    }
    arguments.update(changes)
    with pytest.raises(aiomasto.ConfigurationError) as info:
        authorization_code_form(**arguments)
    assert "csecret" not in str(info.value)


@pytest.mark.parametrize(
    "changes", [{"client_secret": ""}, {"refresh_token": ""}, {"scopes": ""}, {"client_id": None}]
)
def test_refresh_token_form_refuses_unset_values(changes: dict[str, Any]) -> None:
    arguments: dict[str, Any] = {
        "client_id": "cid",
        "client_secret": "csecret",
        "refresh_token": "rt0k",
    }
    arguments.update(changes)
    with pytest.raises(aiomasto.ConfigurationError):
        refresh_token_form(**arguments)


# --- the errors -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "cls",
    [
        aiomasto.AuthorizationDenied,
        aiomasto.StateMismatch,
        aiomasto.LoginExpired,
        aiomasto.ScopeMismatch,
    ],
)
def test_login_errors_form_one_branch_of_the_tree(cls: type[Exception]) -> None:
    assert issubclass(cls, aiomasto.LoginError)
    assert issubclass(cls, aiomasto.MastodonError)
    assert not issubclass(cls, aiomasto.HTTPError)
    assert cls.__name__ in (aiomasto.errors.__doc__ or "")


def test_scope_mismatch_says_what_is_missing() -> None:
    exc = aiomasto.ScopeMismatch(
        requested=("read", "write", "push"), granted=("read",), missing=("write", "push")
    )
    assert exc.missing == ("write", "push")
    assert str(exc) == "the server granted read but not write push (asked for read write push)"


def test_lone_surrogates_in_a_state_compare_as_themselves() -> None:
    login = make_login(state="\udcfe" * 43)
    assert read_callback(login, {"state": "\udcfe" * 43, "code": "c"}, now=T0) == "c"
    for other in ("\udcff" * 43, "?" * 43, "\ufffd" * 43):
        with pytest.raises(aiomasto.StateMismatch):
            read_callback(login, {"state": other, "code": "c"}, now=T0)
