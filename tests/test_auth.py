"""The app description and the exact OAuth request bodies."""

from __future__ import annotations

import pytest

import aiomasto
from aiomasto._urls import normalise_instance
from aiomasto.auth import App, client_credentials_form, registration_form, revoke_form
from aiomasto.entities import Application

REGISTERED = Application(
    name="Mapper",
    scopes=("read", "write"),
    redirect_uris=("urn:ietf:wg:oauth:2.0:oob", "https://app.example/cb"),
    client_id="cid",
    client_secret="csecret",
)


def test_registration_form_is_what_every_server_accepts() -> None:
    app = App(
        name="Mapper",
        scopes=["read", "write"],
        redirect_uris="urn:ietf:wg:oauth:2.0:oob https://app.example/cb",
        website="https://app.example",
    )
    assert registration_form(app) == {
        "client_name": "Mapper",
        "redirect_uris": "urn:ietf:wg:oauth:2.0:oob\nhttps://app.example/cb",
        "scopes": "read write",
        "website": "https://app.example",
    }
    assert "website" not in registration_form(App(name="Mapper"))


def test_defaults() -> None:
    app = App(name="Mapper")
    assert app.scopes == ("read",)
    assert app.redirect_uris == (aiomasto.OOB_REDIRECT_URI,)
    assert app.requested_token_scopes == ("read",)


def test_token_form_sends_an_explicit_scope_subset() -> None:
    app = App(name="Mapper", scopes="read write", token_scopes="read")
    assert client_credentials_form(app, REGISTERED) == {
        "grant_type": "client_credentials",
        "client_id": "cid",
        "client_secret": "csecret",
        "redirect_uri": "urn:ietf:wg:oauth:2.0:oob",
        "scope": "read",
    }


def test_revoke_form() -> None:
    assert revoke_form("tok", REGISTERED) == {
        "token": "tok",
        "client_id": "cid",
        "client_secret": "csecret",
    }
    assert revoke_form("tok", None) == {"token": "tok"}


@pytest.mark.parametrize(
    "kwargs",
    [
        {"name": ""},
        {"name": "x" * 61},
        {"name": "ok", "scopes": ()},
        {"name": "ok", "scopes": ["read write"]},
        {"name": "ok", "redirect_uris": ()},
        {"name": "ok", "scopes": "read", "token_scopes": "read write"},
    ],
)
def test_invalid_apps_are_refused_up_front(kwargs: dict[str, object]) -> None:
    with pytest.raises(aiomasto.ConfigurationError):
        App(**kwargs)  # type: ignore[arg-type]


def test_matches_decides_whether_a_stored_registration_serves() -> None:
    assert App(name="Mapper", scopes="read").matches(REGISTERED)
    assert not App(name="Mapper", scopes="read follow").matches(REGISTERED)
    assert not App(name="Mapper", redirect_uris="https://other.example/cb").matches(REGISTERED)
    no_secret = Application(name="Mapper", client_id="cid")
    assert not App(name="Mapper").matches(no_secret)
    old_server = Application(name="Mapper", client_id="cid", client_secret="s")
    assert App(name="Mapper", scopes="read write follow").matches(old_server)


@pytest.mark.parametrize(
    ("given", "origin"),
    [
        ("mastodon.example", "https://mastodon.example"),
        ("https://mastodon.example/", "https://mastodon.example"),
        ("HTTPS://Mastodon.EXAMPLE:443", "https://mastodon.example"),
        ("http://LOCALHOST:80", "http://localhost"),
        ("https://mastodon.example.", "https://mastodon.example"),
        ("https://Bücher.example", "https://xn--bcher-kva.example"),
        ("https://mastodon.example:8443", "https://mastodon.example:8443"),
        ("http://127.0.0.1:3000", "http://127.0.0.1:3000"),
        ("http://localhost:3000", "http://localhost:3000"),
        ("http://[::1]:3000", "http://[::1]:3000"),
    ],
)
def test_instance_urls_normalise_to_an_origin(given: str, origin: str) -> None:
    assert str(normalise_instance(given, allow_insecure_http=False)) == origin


@pytest.mark.parametrize(
    "given",
    [
        "https://example.com/mastodon",
        "https://example.com/@alice",
        "https://example.com/?x=1",
        "https://example.com/#top",
        "https://",
        "",
    ],
)
def test_an_instance_url_with_a_path_is_refused_not_cut(given: str) -> None:
    with pytest.raises(aiomasto.ConfigurationError):
        normalise_instance(given, allow_insecure_http=False)


def test_plain_http_is_refused_unless_loopback_or_allowed() -> None:
    with pytest.raises(aiomasto.ConfigurationError, match="clear text"):
        normalise_instance("http://mastodon.example", allow_insecure_http=False)
    url = normalise_instance("http://mastodon.example", allow_insecure_http=True)
    assert str(url) == "http://mastodon.example"
    with pytest.raises(aiomasto.ConfigurationError):
        aiomasto.Session("http://mastodon.example")
    with pytest.raises(aiomasto.ConfigurationError):
        normalise_instance("ftp://mastodon.example", allow_insecure_http=False)
    with pytest.raises(aiomasto.ConfigurationError):
        normalise_instance("https://user:pw@mastodon.example", allow_insecure_http=False)
