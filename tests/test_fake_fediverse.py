"""FakeFediverse and the federation endpoints of FakeMastodon (federation.md §1-§4).

Every test talks HTTP over loopback to the running instances, by name, through the
fediverse's resolver, as a crawler would.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp
import pytest
from fakehttp import Reply

from aiomasto._http import StaticResolver
from aiomasto.errors import ConfigurationError
from aiomasto.testing import FakeFediverse, FakeMastodon

LFM_401 = {"error": "This method requires an authenticated user"}


class Web:
    """An aiohttp client that reaches the fediverse's instances by name."""

    def __init__(self, http: aiohttp.ClientSession) -> None:
        self.http = http

    async def get(self, url: str, token: str | None = None, **kwargs: Any) -> Reply:
        headers = dict(kwargs.pop("headers", {}))
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        async with self.http.get(url, headers=headers, allow_redirects=False, **kwargs) as response:
            return Reply(
                status=response.status, headers=response.headers, body=await response.read()
            )

    async def webfinger(self, host: str, resource: str, **kwargs: Any) -> Reply:
        return await self.get(
            f"http://{host}/.well-known/webfinger", params={"resource": resource}, **kwargs
        )


Start = Callable[[FakeFediverse], Awaitable[Web]]


@pytest.fixture
async def web() -> AsyncIterator[Start]:
    """``await web(fedi)`` runs the fediverse and gives a client for it."""
    async with aiohttp.ClientSession() as plain:
        stack: list[Any] = []

        async def start(fedi: FakeFediverse) -> Web:
            context = fedi.run()
            stack.append(context)
            await context.__aenter__()
            http = aiohttp.ClientSession(connector=aiohttp.TCPConnector(resolver=fedi.resolver()))
            stack.append(http)
            return Web(http)

        yield start
        for item in reversed(stack):
            if isinstance(item, aiohttp.ClientSession):
                await item.close()
            else:
                await item.__aexit__(None, None, None)
        assert plain.closed is False


def small_fediverse() -> FakeFediverse:
    fedi = FakeFediverse()
    fedi.add_instance("alpha.example")
    fedi.add_instance("gts.example", flavor="gotosocial")
    fedi.add_instance("akkoma.example", flavor="akkoma")
    fedi.add_instance("closed.example", limited_federation=True)
    fedi.add_instance("split.example", web_domain="social.split.example")
    fedi.add_down_instance("down.example")
    for handle in (
        "alice@alpha.example",
        "bob@gts.example",
        "carla@akkoma.example",
        "dora@closed.example",
        "erin@split.example",
        "fay@down.example",
    ):
        fedi.add_account(handle)
    return fedi


# WebFinger (federation.md §1.1, §1.2)


async def test_webfinger_answers_a_jrd_whose_self_link_is_the_actor(web: Start) -> None:
    fedi = FakeFediverse()
    fedi.add_instance("alpha.example")
    fedi.add_account("Gargron@alpha.example")
    client = await web(fedi)

    reply = await client.webfinger(
        "alpha.example",
        "acct:gargron@alpha.example",
        headers={"Accept": "application/jrd+json, application/json"},
    )

    assert reply.status == 200
    assert reply.headers["Content-Type"] == "application/jrd+json; charset=utf-8"
    assert reply.headers["Cache-Control"] == "max-age=259200, public"
    jrd = reply.json()
    assert jrd["subject"] == "acct:Gargron@alpha.example"  # the server's casing
    assert jrd["aliases"] == [
        "http://alpha.example/@Gargron",
        "http://alpha.example/users/Gargron",
    ]
    links = {link["rel"]: link for link in jrd["links"]}
    assert links["self"] == {
        "rel": "self",
        "type": "application/activity+json",
        "href": "http://alpha.example/users/Gargron",
    }
    assert links["http://webfinger.net/rel/profile-page"]["href"] == "http://alpha.example/@Gargron"
    assert "{uri}" in links["http://ostatus.org/schema/1.0/subscribe"]["template"]
    assert "http://webfinger.net/rel/avatar" in links


@pytest.mark.parametrize(
    "resource",
    [
        "alice@alpha.example",
        "http://alpha.example/@alice",
        "http://alpha.example/users/alice",
    ],
)
async def test_webfinger_accepts_the_other_resource_forms(web: Start, resource: str) -> None:
    fedi = FakeFediverse()
    fedi.add_instance("alpha.example")
    fedi.add_account("alice@alpha.example")
    client = await web(fedi)

    reply = await client.webfinger("alpha.example", resource)

    assert reply.status == 200
    assert reply.json()["subject"] == "acct:alice@alpha.example"


# (flavor, unknown user, domain not served, invalid resource, deleted) per §1.1's table.
WEBFINGER_ERRORS = [
    ("mastodon", 404, 404, 400, 410),
    ("gotosocial", 404, 400, 400, 404),
    ("akkoma", 404, 404, 400, 404),
    ("pixelfed", 400, 400, 400, 400),
]


@pytest.mark.parametrize(("flavor", "unknown", "foreign", "invalid", "deleted"), WEBFINGER_ERRORS)
async def test_webfinger_errors_per_flavor(
    web: Start, flavor: Any, unknown: int, foreign: int, invalid: int, deleted: int
) -> None:
    fedi = FakeFediverse()
    fedi.add_instance("home.example", flavor=flavor)
    fedi.add_account("alice@home.example")
    fedi.add_account("gone@home.example")
    fedi.delete("gone@home.example")
    client = await web(fedi)

    async def status(resource: str) -> int:
        return (await client.webfinger("home.example", resource)).status

    assert await status("acct:alice@home.example") == 200
    assert await status("acct:nobody@home.example") == unknown
    assert await status("acct:alice@elsewhere.example") == foreign
    assert await status("acct:alice") == invalid
    assert (await client.get("http://home.example/.well-known/webfinger")).status == invalid
    assert await status("acct:gone@home.example") == deleted


async def test_akkoma_unknown_user_body_is_a_json_string(web: Start) -> None:
    fedi = FakeFediverse()
    fedi.add_instance("akkoma.example", flavor="akkoma")
    client = await web(fedi)

    reply = await client.webfinger("akkoma.example", "acct:nobody@akkoma.example")

    assert (reply.status, reply.json()) == (404, "Couldn't find user")


async def test_gotosocial_refuses_an_accept_it_cannot_serve(web: Start) -> None:
    fedi = FakeFediverse()
    fedi.add_instance("gts.example", flavor="gotosocial")
    fedi.add_account("bob@gts.example")
    client = await web(fedi)
    resource = "acct:bob@gts.example"

    refused = await client.webfinger("gts.example", resource, headers={"Accept": "text/html"})
    served = await client.webfinger(
        "gts.example", resource, headers={"Accept": "application/jrd+json"}
    )

    assert refused.status == 406
    assert served.status == 200
    assert served.json()["aliases"] == [
        "http://gts.example/users/bob",
        "http://gts.example/@bob",
    ]


# Split domains (federation.md §1.3)


async def test_split_domain_redirects_discovery_and_serves_no_api(web: Start) -> None:
    fedi = FakeFediverse()
    fedi.add_instance("split.example", web_domain="social.split.example")
    fedi.add_account("erin@split.example")
    erin = fedi.account_id("erin@split.example")
    client = await web(fedi)

    redirect = await client.webfinger("split.example", "acct:erin@split.example")
    assert redirect.status == 301
    location = redirect.headers["Location"]
    assert location.startswith("http://social.split.example/.well-known/webfinger?resource=")
    for path in ("/.well-known/host-meta", "/.well-known/nodeinfo"):
        moved = await client.get(f"http://split.example{path}")
        assert (moved.status, moved.headers["Location"]) == (
            301,
            f"http://social.split.example{path}",
        )
    assert (await client.get(f"http://split.example/api/v1/accounts/{erin}")).status == 404

    jrd = (await client.get(location)).json()
    assert jrd["subject"] == "acct:erin@split.example"
    self_link = next(link for link in jrd["links"] if link["rel"] == "self")
    assert self_link["href"] == "http://social.split.example/users/erin"
    account = (await client.get(f"http://social.split.example/api/v1/accounts/{erin}")).json()
    assert account["acct"] == "erin"
    instance = (await client.get("http://social.split.example/api/v2/instance")).json()
    assert instance["domain"] == "split.example"


async def test_split_domain_lookup_treats_only_the_handle_domain_as_local(web: Start) -> None:
    fedi = FakeFediverse()
    fedi.add_instance("split.example", web_domain="social.split.example")
    fedi.add_account("erin@split.example")
    client = await web(fedi)
    lookup = "http://social.split.example/api/v1/accounts/lookup"

    async def status(acct: str) -> int:
        return (await client.get(lookup, params={"acct": acct})).status

    assert await status("erin") == 200
    assert await status("erin@split.example") == 200
    # Mastodon counts user@WEB_DOMAIN as remote (federation.md §1.4).
    assert await status("erin@social.split.example") == 404


# host-meta fallback (federation.md §1.1)


async def test_host_meta_template_leads_to_the_jrd_when_webfinger_404s(web: Start) -> None:
    fedi = FakeFediverse()
    fedi.add_instance("old.example", webfinger_via_host_meta_only=True)
    fedi.add_account("olga@old.example")
    client = await web(fedi)

    assert (await client.webfinger("old.example", "acct:olga@old.example")).status == 404
    host_meta = await client.get("http://old.example/.well-known/host-meta")
    assert host_meta.headers["Content-Type"] == "application/xrd+xml; charset=utf-8"
    text = host_meta.body.decode()
    template = text.split('template="', 1)[1].split('"', 1)[0]
    assert 'rel="lrdd"' in text

    reply = await client.get(template.replace("{uri}", "acct:olga@old.example"))

    assert reply.status == 200
    assert reply.json()["subject"] == "acct:olga@old.example"


async def test_host_meta_points_at_webfinger_normally(web: Start) -> None:
    fedi = FakeFediverse()
    fedi.add_instance("alpha.example")
    client = await web(fedi)

    text = (await client.get("http://alpha.example/.well-known/host-meta")).body.decode()

    assert 'template="http://alpha.example/.well-known/webfinger?resource={uri}"' in text


# NodeInfo and instance endpoints (federation.md §4.1, §4.2)

# flavor, NodeInfo path, software.name, software.version, instance version, has v2
SOFTWARE = [
    ("mastodon", "/nodeinfo/2.0", "mastodon", "4.5.0", "4.5.0", True),
    ("gotosocial", "/nodeinfo/2.1", "gotosocial", "0.20.0+git-57cb4fe", None, True),
    (
        "akkoma",
        "/nodeinfo/2.1.json",
        "akkoma",
        "3.16.0",
        "2.7.2 (compatible; Akkoma 3.16.0)",
        False,
    ),
    (
        "pixelfed",
        "/api/nodeinfo/2.0.json",
        "pixelfed",
        "0.11.13",
        "3.5.3 (compatible; Pixelfed 0.11.13)",
        True,
    ),
    (
        "sharkey",
        "/nodeinfo/2.1",
        "sharkey",
        "2023.12.0.beta1",
        "3.0.0 (compatible; Sharkey 2023.12.0.beta1)",
        False,
    ),
]


@pytest.mark.parametrize(("flavor", "path", "name", "version", "instance_version", "v2"), SOFTWARE)
async def test_nodeinfo_and_instance_name_the_software(
    web: Start,
    flavor: Any,
    path: str,
    name: str,
    version: str,
    instance_version: str | None,
    v2: bool,
) -> None:
    fedi = FakeFediverse()
    fedi.add_instance("node.example", flavor=flavor)
    fedi.add_account("user@node.example")
    client = await web(fedi)

    index = (await client.get("http://node.example/.well-known/nodeinfo")).json()
    hrefs = [link["href"] for link in index["links"]]
    assert f"http://node.example{path}" in hrefs
    for href in hrefs:
        document = (await client.get(href)).json()
        assert document["software"]["name"] == name
        assert document["software"]["version"] == version
        assert document["usage"]["users"]["total"] == 1

    v1 = (await client.get("http://node.example/api/v1/instance")).json()
    assert v1["version"] == (instance_version or version)
    second = await client.get("http://node.example/api/v2/instance")
    assert second.status == (200 if v2 else 404)
    if v2:
        assert second.json()["domain"] == "node.example"
        assert second.json()["version"] == (instance_version or version)


async def test_nodeinfo_paths_of_other_servers_are_not_found(web: Start) -> None:
    fedi = FakeFediverse()
    fedi.add_instance("alpha.example")
    client = await web(fedi)

    assert (await client.get("http://alpha.example/nodeinfo/2.0.json")).status == 404
    assert (await client.get("http://alpha.example/api/nodeinfo/2.0.json")).status == 404


async def test_instance_domain_names_the_handle_domain_and_v1_uri_per_flavor(web: Start) -> None:
    fedi = FakeFediverse()
    fedi.add_instance("alpha.example")
    fedi.add_instance("gts.example", flavor="gotosocial", web_domain="fedi.gts.example")
    fedi.add_instance("akkoma.example", flavor="akkoma")
    client = await web(fedi)

    mastodon = (await client.get("http://alpha.example/api/v1/instance")).json()
    gts_v1 = (await client.get("http://fedi.gts.example/api/v1/instance")).json()
    gts_v2 = (await client.get("http://fedi.gts.example/api/v2/instance")).json()
    akkoma = (await client.get("http://akkoma.example/api/v1/instance")).json()

    assert mastodon["uri"] == "alpha.example"
    assert (gts_v1["uri"], gts_v1["account_domain"]) == ("fedi.gts.example", "gts.example")
    assert (gts_v2["domain"], gts_v2["account_domain"]) == ("gts.example", "gts.example")
    assert akkoma["uri"] == "http://akkoma.example"  # Pleroma.Web.base_url()


# Limited federation (federation.md §3.1)


async def test_limited_federation_needs_a_user_token(web: Start) -> None:
    fedi = FakeFediverse()
    closed = fedi.add_instance("closed.example", limited_federation=True)
    fedi.add_account("dora@closed.example")
    dora = fedi.account_id("dora@closed.example")
    user_token = closed.issue_user_token(dora)
    app = closed.register_app(scopes="read")
    client = await web(fedi)
    base = "http://closed.example"
    followers = f"{base}/api/v1/accounts/{dora}/followers"

    async with client.http.post(
        f"{base}/oauth/token",
        data={
            "grant_type": "client_credentials",
            "client_id": str(app["client_id"]),
            "client_secret": str(app["client_secret"]),
        },
    ) as response:
        app_only = (await response.json())["access_token"]

    for url in (
        followers,
        f"{base}/api/v1/accounts/lookup?acct=dora",
        f"{base}/api/v1/accounts/{dora}",
    ):
        anonymous = await client.get(url)
        assert (anonymous.status, anonymous.json()) == (401, LFM_401)
        assert (await client.get(url, app_only)).status == 401
        assert (await client.get(url, user_token)).status == 200
    assert (await client.get(f"{base}/api/v1/apps/verify_credentials", app_only)).status == 401

    v2 = await client.get(f"{base}/api/v2/instance")
    assert v2.status == 200
    assert v2.json()["configuration"]["limited_federation"] is True
    assert (await client.get(f"{base}/api/v1/instance")).status == 200
    jrd = (await client.webfinger("closed.example", "acct:dora@closed.example")).json()
    assert "http://webfinger.net/rel/avatar" not in {link["rel"] for link in jrd["links"]}


async def test_open_instances_say_limited_federation_false(web: Start) -> None:
    fedi = FakeFediverse()
    fedi.add_instance("alpha.example")
    client = await web(fedi)

    v2 = (await client.get("http://alpha.example/api/v2/instance")).json()

    assert v2["configuration"]["limited_federation"] is False
    assert v2["api_versions"] == {"mastodon": 7}


def test_limited_federation_is_mastodon_only() -> None:
    with pytest.raises(ValueError, match="limited_federation"):
        FakeMastodon(flavor="gotosocial", limited_federation=True)
    with pytest.raises(ValueError, match="web_domain"):
        FakeMastodon(web_domain="social.example")


# Federation: follows on both homes, ground truth


async def test_a_follow_is_listed_on_both_homes(web: Start) -> None:
    fedi = small_fediverse()
    fedi.follow("bob@gts.example", "alice@alpha.example")
    fedi.follow("alice@alpha.example", "erin@split.example")
    client = await web(fedi)
    bob_token = fedi.user_token("bob@gts.example")

    alice = fedi.account_id("alice@alpha.example")
    on_alpha = (await client.get(f"http://alpha.example/api/v1/accounts/{alice}/followers")).json()
    assert [a["acct"] for a in on_alpha] == ["bob@gts.example"]
    assert on_alpha[0]["uri"] == "http://gts.example/users/bob"
    assert on_alpha[0]["url"] == "http://gts.example/@bob"

    bob = fedi.account_id("bob@gts.example")
    on_gts = await client.get(f"http://gts.example/api/v1/accounts/{bob}/following", bob_token)
    [copy] = on_gts.json()
    assert copy["acct"] == "alice@alpha.example"
    assert copy["followers_count"] == 1  # the home's count
    assert copy["following_count"] == 1

    erin_copy = fedi.account_id("erin@split.example", on="alpha.example")
    following = await client.get(f"http://alpha.example/api/v1/accounts/{alice}/following")
    assert [a["id"] for a in following.json()] == [erin_copy]
    assert following.json()[0]["uri"] == "http://social.split.example/users/erin"


def test_ground_truth() -> None:
    fedi = small_fediverse()
    fedi.follow("bob@gts.example", "alice@alpha.example")
    fedi.follow("@carla@akkoma.example", "Alice@Alpha.example")
    fedi.follow("alice@alpha.example", "fay@down.example")
    fedi.follow("dora@closed.example", "erin@split.example")
    fedi.unfollow("dora@closed.example", "erin@split.example")

    assert fedi.followers("alice@alpha.example") == {"bob@gts.example", "carla@akkoma.example"}
    assert fedi.following("alice@alpha.example") == {"fay@down.example"}
    assert fedi.following("dora@closed.example") == set()
    assert fedi.edges() == {
        ("bob@gts.example", "alice@alpha.example"),
        ("carla@akkoma.example", "alice@alpha.example"),
        ("alice@alpha.example", "fay@down.example"),
    }


def test_handles_are_checked() -> None:
    fedi = small_fediverse()
    with pytest.raises(ValueError, match="handle"):
        fedi.add_account("nobody")
    with pytest.raises(KeyError):
        fedi.add_account("x@unknown.example")
    with pytest.raises(ValueError, match="already"):
        fedi.add_account("alice@alpha.example")
    with pytest.raises(KeyError):
        fedi.follow("ghost@alpha.example", "alice@alpha.example")
    with pytest.raises(ValueError, match="host name"):
        fedi.add_instance("social.split.example")


def test_populate_is_deterministic() -> None:
    def graph(seed: int) -> set[tuple[str, str]]:
        fedi = FakeFediverse()
        for domain in ("a.example", "b.example", "c.example"):
            fedi.add_instance(domain)
        created = fedi.populate(seed=seed, accounts_per_instance=10, follows_per_account=4)
        assert len(created) == 30
        return fedi.edges()

    first = graph(1)
    assert len(first) == 30 * 4
    assert all(a != b for a, b in first)
    assert graph(1) == first
    assert graph(2) != first


# Resolver and running


async def test_the_down_instance_resolves_and_refuses(web: Start) -> None:
    fedi = small_fediverse()
    client = await web(fedi)

    assert set(fedi.resolve_map()) == {
        "alpha.example",
        "gts.example",
        "akkoma.example",
        "closed.example",
        "split.example",
        "social.split.example",
        "down.example",
    }
    with pytest.raises(aiohttp.ClientConnectorError):
        await client.get("http://down.example/.well-known/nodeinfo")
    assert fedi.url("down.example") == "http://down.example"
    assert fedi.is_down("down.example")


def test_resolve_map_needs_a_running_fediverse() -> None:
    with pytest.raises(RuntimeError, match="not running"):
        small_fediverse().resolve_map()


def test_run_in_thread_serves_a_subprocess() -> None:
    fedi = small_fediverse()
    with fedi.run_in_thread():
        specs = [f"{host}={ip}:{port}" for host, (ip, port) in fedi.resolve_map().items()]
        script = (
            "import asyncio, sys, aiohttp\n"
            "from aiomasto._http import StaticResolver\n"
            "async def main():\n"
            "    r = StaticResolver.from_specs(sys.argv[1:])\n"
            "    c = aiohttp.TCPConnector(resolver=r)\n"
            "    async with aiohttp.ClientSession(connector=c) as h:\n"
            "        async with h.get('http://gts.example/.well-known/nodeinfo') as x:\n"
            "            print((await x.json())['links'][0]['href'])\n"
            "asyncio.run(main())\n"
        )
        result = subprocess.run(
            [sys.executable, "-c", script, *specs],
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        )
    assert result.stdout.strip() == "http://gts.example/nodeinfo/2.0"


# StaticResolver


async def test_static_resolver_maps_names_to_ports_and_falls_back() -> None:
    resolver = StaticResolver({"Alpha.Example.": ("127.0.0.1", 41234)})
    try:
        [hit] = await resolver.resolve("alpha.example", 80)
        assert (hit["host"], hit["port"], hit["hostname"]) == ("127.0.0.1", 41234, "alpha.example")
        fallback = await resolver.resolve("localhost", 80)
        assert fallback
        assert {r["port"] for r in fallback} == {80}
    finally:
        await resolver.close()


@pytest.mark.parametrize(
    "spec",
    [
        "alpha.example",
        "alpha.example=127.0.0.1",
        "=127.0.0.1:1",
        "a=host.example:80",
        "a=127.0.0.1:0",
    ],
)
def test_static_resolver_rejects_bad_specs(spec: str) -> None:
    with pytest.raises(ConfigurationError):
        StaticResolver.from_specs([spec])


def test_static_resolver_reads_ipv6_specs() -> None:
    resolver = StaticResolver.from_specs(["v6.example=[::1]:8080"])
    assert resolver.mapping == {"v6.example": ("::1", 8080)}
    assert json.dumps(resolver.mapping)


# Account states (federation.md §3.1)


async def test_moved_account_names_its_target_and_keeps_its_lists(web: Start) -> None:
    fedi = small_fediverse()
    fedi.add_account("new@gts.example")
    fedi.follow("bob@gts.example", "alice@alpha.example")
    fedi.move("alice@alpha.example", "new@gts.example")
    client = await web(fedi)
    alice = fedi.account_id("alice@alpha.example")

    shown = (await client.get(f"http://alpha.example/api/v1/accounts/{alice}")).json()
    assert shown["moved"]["acct"] == "new@gts.example"
    assert shown["moved"]["uri"] == "http://gts.example/users/new"
    assert "moved" not in shown["moved"]
    followers = await client.get(f"http://alpha.example/api/v1/accounts/{alice}/followers")
    assert [a["acct"] for a in followers.json()] == ["bob@gts.example"]
    # The copy on bob's home says so too.
    token = fedi.user_token("bob@gts.example")
    bob = fedi.account_id("bob@gts.example")
    [copy] = (await client.get(f"http://gts.example/api/v1/accounts/{bob}/following", token)).json()
    assert copy["moved"]["acct"] == "new"


async def test_deleted_account_is_gone_everywhere(web: Start) -> None:
    fedi = small_fediverse()
    fedi.follow("bob@gts.example", "alice@alpha.example")
    fedi.follow("alice@alpha.example", "erin@split.example")
    alice = fedi.account_id("alice@alpha.example")
    fedi.delete("alice@alpha.example")
    client = await web(fedi)
    base = "http://alpha.example/api/v1/accounts"

    assert (await client.webfinger("alpha.example", "acct:alice@alpha.example")).status == 410
    for url in (f"{base}/{alice}", f"{base}/lookup?acct=alice", f"{base}/{alice}/followers"):
        reply = await client.get(url)
        assert (reply.status, reply.json()) == (404, {"error": "Record not found"}), url
    assert fedi.edges() == set()
    bob = fedi.account_id("bob@gts.example")
    token = fedi.user_token("bob@gts.example")
    following = await client.get(f"http://gts.example/api/v1/accounts/{bob}", token)
    assert following.json()["following_count"] == 0


# flavor, answer to a suspended account's followers
SUSPENDED = [
    ("mastodon", 200, []),
    ("gotosocial", 404, {"error": "Not Found: target account not found"}),
]


@pytest.mark.parametrize(("flavor", "status", "body"), SUSPENDED)
async def test_suspended_account_lists(web: Start, flavor: Any, status: int, body: Any) -> None:
    fedi = FakeFediverse()
    fedi.add_instance("home.example", flavor=flavor)
    fedi.add_account("sus@home.example")
    fedi.add_account("fan@home.example")
    fedi.add_account("viewer@home.example")
    fedi.follow("fan@home.example", "sus@home.example")
    fedi.suspend("sus@home.example")
    client = await web(fedi)
    sus = fedi.account_id("sus@home.example")
    token = fedi.user_token("viewer@home.example")

    shown = await client.get(f"http://home.example/api/v1/accounts/{sus}", token)
    assert shown.json()["suspended"] is True
    reply = await client.get(f"http://home.example/api/v1/accounts/{sus}/followers", token)
    assert (reply.status, reply.json()) == (status, body)
    assert "Link" not in reply.headers
    # Temporarily suspended accounts still resolve (federation.md §1.1).
    assert (await client.webfinger("home.example", "acct:sus@home.example")).status == 200
    # The ground truth keeps the follow: it is stored, only not shown.
    assert fedi.followers("sus@home.example") == {"fan@home.example"}


async def test_hidden_lists_per_flavor(web: Start) -> None:
    fedi = FakeFediverse()
    fedi.add_instance("alpha.example")
    fedi.add_instance("gts.example", flavor="gotosocial")
    fedi.add_instance("akkoma.example", flavor="akkoma")
    fedi.add_account("shy@alpha.example", hide_collections=True)
    fedi.add_account("shy@gts.example", hide_collections=True)
    fedi.add_account("shy@akkoma.example", hide_followers=True)
    fedi.add_account("fan@alpha.example")
    for home in ("alpha.example", "gts.example", "akkoma.example"):
        fedi.follow("fan@alpha.example", f"shy@{home}")
        fedi.follow(f"shy@{home}", "fan@alpha.example")
    viewer = fedi.add_account("viewer@gts.example")
    client = await web(fedi)
    token = fedi.user_token(viewer)

    async def lists(home: str) -> tuple[list[str], list[str], Any]:
        account_id = fedi.account_id(f"shy@{home}")
        url = f"http://{home}/api/v1/accounts/{account_id}"
        replies = [await client.get(f"{url}/{kind}", token) for kind in ("followers", "following")]
        assert all("Link" not in r.headers for r in replies if not r.json())
        entity = (await client.get(url, token)).json()
        return replies[0].ids(), replies[1].ids(), entity

    for home in ("alpha.example", "gts.example"):
        followers, following, entity = await lists(home)
        assert (followers, following) == ([], [])
        assert entity["hide_collections"] is True
        assert entity["followers_count"] == 1  # real counts stay visible

    followers, following, entity = await lists("akkoma.example")
    assert followers == []
    assert len(following) == 1  # Akkoma hides each list on its own
    assert "hide_collections" not in entity
    assert entity["pleroma"]["hide_followers"] is True
    assert entity["pleroma"]["hide_follows"] is False
    assert entity["fqn"] == "shy@akkoma.example"
    # Elsewhere Akkoma's hidden collections look open (they keep ``first``, §2).
    fan = fedi.account_id("fan@alpha.example")
    following_on_alpha = await client.get(f"http://alpha.example/api/v1/accounts/{fan}/following")
    copies = {a["acct"]: a for a in following_on_alpha.json()}
    assert copies["shy@akkoma.example"]["hide_collections"] is False
    assert copies["shy@gts.example"]["hide_collections"] is True


@pytest.mark.parametrize(("flavor", "status"), [("mastodon", 200), ("gotosocial", 404)])
async def test_a_target_that_blocks_the_viewer(web: Start, flavor: Any, status: int) -> None:
    fedi = FakeFediverse()
    server = fedi.add_instance("home.example", flavor=flavor)
    fedi.add_account("grump@home.example")
    fedi.add_account("fan@home.example")
    fedi.add_account("viewer@home.example")
    fedi.follow("fan@home.example", "grump@home.example")
    grump = fedi.account_id("grump@home.example")
    server.block(grump, fedi.account_id("viewer@home.example"))
    client = await web(fedi)
    url = f"http://home.example/api/v1/accounts/{grump}/followers"

    blocked = await client.get(url, fedi.user_token("viewer@home.example"))
    assert blocked.status == status
    if status == 200:
        assert blocked.json() == []
    other = await client.get(url, fedi.user_token("fan@home.example"))
    assert len(other.ids()) == 1


async def test_akkoma_serves_xrd_when_asked(web: Start) -> None:
    fedi = FakeFediverse()
    fedi.add_instance("akkoma.example", flavor="akkoma")
    fedi.add_account("carla@akkoma.example")
    client = await web(fedi)

    xml = await client.webfinger(
        "akkoma.example", "acct:carla@akkoma.example", headers={"Accept": "application/xrd+xml"}
    )
    jrd = await client.webfinger("akkoma.example", "acct:carla@akkoma.example")

    assert xml.headers["Content-Type"].startswith("application/xrd+xml")
    assert "<Subject>acct:carla@akkoma.example</Subject>" in xml.body.decode()
    assert jrd.json()["aliases"] == ["http://akkoma.example/users/carla"]
    page = next(link for link in jrd.json()["links"] if link["rel"].endswith("profile-page"))
    assert page["href"] == "http://akkoma.example/users/carla"  # the ap_id


async def test_mastodon_4_6_adds_the_fep_3b86_templates(web: Start) -> None:
    fedi = FakeFediverse()
    fedi.add_instance("new.example", version="4.6.0")
    fedi.add_account("nina@new.example")
    client = await web(fedi)

    jrd = (await client.webfinger("new.example", "acct:nina@new.example")).json()
    v2 = (await client.get("http://new.example/api/v2/instance")).json()

    rels = {link["rel"] for link in jrd["links"]}
    assert {"https://w3id.org/fep/3b86/Create", "https://w3id.org/fep/3b86/Object"} <= rels
    assert v2["api_versions"] == {"mastodon": 10}
