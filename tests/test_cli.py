"""``aiomasto login / whoami / accounts / logout`` in a subprocess, against the fake server."""

from __future__ import annotations

import asyncio
import socket
import sys
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

import aiohttp
import pytest

from aiomasto.testing import FakeMastodon

TIMEOUT = 20


def url(server: FakeMastodon) -> str:
    assert server.url is not None
    return server.url


def approve(server: FakeMastodon, link: str, account: str) -> tuple[str, str]:
    """The code and the redirect the server gives once ``account`` approved ``link``."""
    asked = dict(parse_qsl(urlsplit(link).query))
    code = server.create_authorization_code(
        asked["client_id"],
        account,
        redirect_uri=asked["redirect_uri"],
        scopes=asked["scope"],
        code_challenge=asked["code_challenge"],
        code_challenge_method=asked["code_challenge_method"],
    )
    return code, f"{asked['redirect_uri']}?code={code}&state={asked['state']}"


class Cli:
    """``python -m aiomasto`` with one store file."""

    def __init__(self, store: Path) -> None:
        self.store = store

    async def start(self, *args: str) -> asyncio.subprocess.Process:
        return await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "aiomasto",
            *args,
            "--store",
            str(self.store),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )

    async def run(self, *args: str) -> tuple[int, str, str]:
        process = await self.start(*args)
        async with asyncio.timeout(TIMEOUT):
            out, err = await process.communicate()
        assert process.returncode is not None
        return process.returncode, out.decode(), err.decode()


async def authorize_url(process: asyncio.subprocess.Process) -> str:
    assert process.stdout is not None
    async with asyncio.timeout(TIMEOUT):
        while True:
            line = (await process.stdout.readline()).decode()
            assert line, "the command ended before printing the authorize URL"
            if "/oauth/authorize?" in line:
                return line.strip()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@pytest.fixture
def alice(server: FakeMastodon) -> str:
    return server.add_account("alice", display_name="Alice")


async def test_login_with_a_pasted_code_then_whoami_accounts_logout(
    server: FakeMastodon, alice: str, tmp_path: Path
) -> None:
    cli = Cli(tmp_path / "credentials.json")
    process = await cli.start("login", url(server), "--oob")
    code, _ = approve(server, await authorize_url(process), alice)
    async with asyncio.timeout(TIMEOUT):
        out, err = await process.communicate(f"{code}\n".encode())
    assert process.returncode == 0, err.decode()
    assert f"Logged in as @alice on {url(server)}" in out.decode()
    assert code not in out.decode()

    status, out_text, _ = await cli.run("whoami")
    assert status == 0
    assert f"@alice on {url(server)} (account {alice}): Alice" in out_text
    status, out_text, _ = await cli.run("accounts")
    assert (status, out_text.strip()) == (0, f"{url(server)}\taccount {alice}")

    status, out_text, _ = await cli.run("logout", url(server))
    assert status == 0
    assert "token revoked and deleted" in out_text
    assert server.count("POST", "/oauth/revoke") == 1
    status, _, err_text = await cli.run("whoami")
    assert status == 1
    assert err_text.strip() == (
        "aiomasto: nobody is logged in: run 'aiomasto login <instance>' first"
    )


async def test_login_catches_the_redirect_on_a_loopback_port(
    server: FakeMastodon, alice: str, tmp_path: Path
) -> None:
    cli = Cli(tmp_path / "credentials.json")
    port = free_port()
    process = await cli.start("login", url(server), "--port", str(port), "--no-browser")
    _, redirect = approve(server, await authorize_url(process), alice)
    assert redirect.startswith(f"http://127.0.0.1:{port}/callback?")
    async with aiohttp.ClientSession() as http, asyncio.timeout(TIMEOUT):
        for _ in range(100):  # the command is listening before it prints the URL
            try:
                async with http.get(redirect) as page:
                    assert "you can close this window" in await page.text()
                    break
            except aiohttp.ClientConnectionError:
                await asyncio.sleep(0.05)
        out, err = await process.communicate()
    assert process.returncode == 0, err.decode()
    assert "Logged in as @alice" in out.decode()


async def test_expected_failures_print_one_line_and_no_traceback(tmp_path: Path) -> None:
    cli = Cli(tmp_path / "credentials.json")
    status, _, err = await cli.run("login", "http://127.0.0.1:9", "--oob")
    assert status == 1
    assert err.startswith("aiomasto: ")
    assert "Traceback" not in err
    assert len(err.strip().splitlines()) == 1
    status, _, err = await cli.run("login", "https://example.com/some/path", "--oob")
    assert (status, "Traceback" in err) == (1, False)
    assert "without a path" in err
