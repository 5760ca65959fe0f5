"""Resolving handles: WebFinger as real (and hostile) servers answer it, then lookup.

A raw aiohttp app plays the handle domain ``wf.example``; a FakeMastodon plays the API host
``api.example`` (the ``self`` link's host). Every hostile answer must make the account
"unresolved" (or "gone", "unreachable") with a reason: never an exception out of the crawl.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from aiohttp import web
from crawlnet import HostResolver, client, free_port, serve

from aiomasto.crawl import Crawler, MemoryCrawlSink, UnitKey
from aiomasto.testing import FakeMastodon

Handler = Callable[[web.Request], web.StreamResponse]


def jrd(
    subject: str = "acct:alice@wf.example", href: object = "http://api.example/users/alice"
) -> web.Response:
    body = {
        "subject": subject,
        "aliases": [href],
        "links": [
            {"rel": "http://webfinger.net/rel/profile-page", "type": "text/html", "href": href},
            {"rel": "self", "type": "application/activity+json", "href": href},
        ],
    }
    return web.json_response(body, content_type="application/jrd+json")


async def nap(seconds: float) -> None:
    await asyncio.sleep(0)


class Net:
    def __init__(self, fake: FakeMastodon, resolver: HostResolver) -> None:
        self.fake = fake
        self.resolver = resolver
        self.handler: Handler = lambda request: jrd()
        self.requests: list[web.Request] = []

    async def crawl(self, seed: str = "@alice@wf.example") -> MemoryCrawlSink:
        sink = MemoryCrawlSink()
        async with (
            client(self.resolver) as http,
            Crawler(
                sink, http=http, allow_insecure_http=True, sleep=nap, relations=("followers",)
            ) as crawler,
        ):
            await crawler.run([seed])
        return sink


@pytest.fixture
async def net() -> AsyncIterator[Net]:
    fake = FakeMastodon()
    alice = fake.add_account("alice")
    fake.add_followers(alice, 5)
    holder: dict[str, Net] = {}

    async def handle(request: web.Request) -> web.StreamResponse:
        holder["net"].requests.append(request)
        return holder["net"].handler(request)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    async with fake.run() as url, serve(app) as wf_port:
        api_port = int(url.rsplit(":", 1)[1])
        resolver = HostResolver(
            {"api.example": api_port, "wf.example": wf_port, "dead.example": free_port()}
        )
        holder["net"] = Net(fake, resolver)
        yield holder["net"]


def result(sink: MemoryCrawlSink, account: str = "alice@wf.example") -> Any:
    return sink.results[UnitKey(account=account, relation="followers")]


async def test_a_handle_resolves_to_the_self_links_host(net: Net) -> None:
    sink = await net.crawl()
    assert result(sink).outcome == "complete"
    assert result(sink).found == 5
    assert len(sink.edges) == 5
    request = net.requests[0]
    assert request.path == "/.well-known/webfinger"
    assert request.query["resource"] == "acct:alice@wf.example"
    assert request.headers["Accept"] == "application/jrd+json, application/json"
    assert not any(
        r.path.startswith("/api/") for r in net.requests
    )  # never /api on the handle domain
    lookups = [r for r in net.fake.requests if r.path == "/api/v1/accounts/lookup"]
    assert [dict(r.query).get("acct") for r in lookups] == ["alice"]


async def test_a_split_domain_redirect_is_followed(net: Net) -> None:
    def handler(request: web.Request) -> web.StreamResponse:
        if request.path == "/.well-known/webfinger" and "hop" not in request.query:
            raise web.HTTPMovedPermanently(
                f"/.well-known/webfinger?hop=1&resource={request.query['resource']}"
            )
        return jrd()

    net.handler = handler
    sink = await net.crawl()
    assert result(sink).outcome == "complete"


async def test_host_meta_is_the_fallback_after_404(net: Net) -> None:
    def handler(request: web.Request) -> web.StreamResponse:
        if request.path == "/.well-known/webfinger":
            raise web.HTTPNotFound()
        if request.path == "/.well-known/host-meta":
            return web.Response(
                text='<?xml version="1.0"?><XRD xmlns="http://docs.oasis-open.org/ns/xri/xrd-1.0">'
                '<Link rel="lrdd" template="http://wf.example/wf?resource={uri}"/></XRD>',
                content_type="application/xrd+xml",
            )
        if request.path == "/wf":
            assert request.query["resource"] == "acct:alice@wf.example"
            return jrd()
        raise web.HTTPNotFound()

    net.handler = handler
    sink = await net.crawl()
    assert result(sink).outcome == "complete"


def status(code: int) -> Handler:
    def handler(request: web.Request) -> web.StreamResponse:
        return web.Response(status=code, text="no")

    return handler


def body(data: bytes, content_type: str = "application/jrd+json") -> Handler:
    def handler(request: web.Request) -> web.StreamResponse:
        return web.Response(body=data, content_type=content_type)

    return handler


def redirect_to(location: str) -> Handler:
    def handler(request: web.Request) -> web.StreamResponse:
        return web.Response(status=302, headers={"Location": location})

    return handler


@pytest.mark.parametrize(
    ("handler", "outcome"),
    [
        (status(404), "unresolved"),
        (status(400), "unresolved"),
        (status(410), "gone"),
        (status(503), "unreachable"),
        (body(b"{" * 200_000), "unresolved"),
        (body(b"[" * 100_000 + b"]" * 100_000), "unresolved"),
        (body(b" " * 300_000 + b"{}"), "unresolved"),
        (body(b"null"), "unresolved"),
        (body(b"not json at all"), "unresolved"),
        (body(json.dumps({"subject": 5, "links": []}).encode()), "unresolved"),
        (
            body(json.dumps({"subject": "acct:alice@wf.example", "links": {}}).encode()),
            "unresolved",
        ),
        (
            body(
                json.dumps({"subject": "acct:alice@wf.example", "links": [1, "x", None]}).encode()
            ),
            "unresolved",
        ),
        (lambda r: jrd(href="javascript:alert(1)"), "unresolved"),
        (lambda r: jrd(href="ftp://api.example/users/alice"), "unresolved"),
        (lambda r: jrd(href="http://user:pw@api.example/users/alice"), "unresolved"),
        (lambda r: jrd(href=["http://api.example/users/alice"]), "unresolved"),
        (lambda r: jrd(href="http://" + "a" * 3000 + ".example/"), "unresolved"),
        (lambda r: jrd(subject="acct:mallory@evil.example"), "unresolved"),
        (lambda r: jrd(subject="alice@wf.example"), "unresolved"),
        (redirect_to("/.well-known/webfinger?again=1"), "unresolved"),
        (redirect_to("javascript:alert(1)"), "unresolved"),
        (redirect_to("ftp://wf.example/x"), "unresolved"),
        (redirect_to("http://dead.example/.well-known/webfinger"), "unreachable"),
    ],
)
async def test_hostile_webfinger_answers_become_outcomes(
    net: Net, handler: Handler, outcome: str
) -> None:
    net.handler = handler
    sink = await net.crawl()
    got = result(sink)
    assert got.outcome == outcome, got.detail
    assert got.detail
    assert not sink.edges


async def test_the_subject_casing_is_the_servers(net: Net) -> None:
    net.handler = lambda request: jrd(subject="acct:Alice@wf.example")
    sink = await net.crawl()
    assert result(sink).outcome == "complete"
    assert sink.accounts["alice@wf.example"].acct == "Alice@wf.example"
    assert {edge.followed for edge in sink.edges} == {"alice@wf.example"}


async def test_a_dead_handle_domain_is_unreachable(net: Net) -> None:
    sink = await net.crawl("@alice@dead.example")
    assert result(sink, "alice@dead.example").outcome == "unreachable"


async def test_an_unknown_username_on_the_api_host_is_unresolved(net: Net) -> None:
    net.handler = lambda request: jrd(
        subject="acct:nobody@wf.example", href="http://api.example/users/nobody"
    )
    sink = await net.crawl("@nobody@wf.example")
    assert result(sink, "nobody@wf.example").outcome == "unresolved"
