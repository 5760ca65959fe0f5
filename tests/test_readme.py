"""The README's examples run as printed."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from aiomasto import ServerError
from aiomasto.testing import FakeMastodon, Fault

README = Path(__file__).resolve().parent.parent / "README.md"


def python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.DOTALL)


async def test_the_fake_server_example_passes() -> None:
    block = next(b for b in python_blocks() if "from aiomasto.testing import" in b)
    namespace: dict[str, Any] = {}
    exec(compile(block, str(README), "exec"), namespace)
    tests: list[Callable[[], Awaitable[None]]] = [
        fn for name, fn in namespace.items() if name.startswith("test_")
    ]
    assert tests
    for test in tests:
        await test()


def test_every_python_block_compiles() -> None:
    blocks = python_blocks()
    assert len(blocks) >= 3
    for block in blocks:
        # top-level "async with" in a snippet is shown inside a coroutine by the reader
        source = "async def _snippet():\n" + "".join(f"    {line}\n" for line in block.splitlines())
        compile(source, str(README), "exec")


async def test_the_crawler_example_resumes_after_a_failure(tmp_path: Path) -> None:
    block = next(b for b in python_blocks() if "CHECKPOINT" in b)
    server = FakeMastodon()
    star = server.add_account("star")
    server.add_followers(star, 200, prefix="fan")
    handled: list[str] = []
    # Pages of 80: the third page fails once.
    server.inject(f"/api/v1/accounts/{star}/followers", Fault.json(500, {"error": "x"}), after=2)

    def work(acct: str) -> None:
        handled.append(acct)

    async with server.run() as url:
        source = (
            block.replace("https://mastodon.example", url)
            .replace("~/.config/relmap/credentials.json", str(tmp_path / "credentials.json"))
            .replace('Path("crawl-14715.json")', f"Path({str(tmp_path / 'crawl.json')!r})")
            .replace("print(account.acct)", "work(account.acct)")
            .replace('asyncio.run(crawl("14715"))', "")
        )
        assert "work(account.acct)" in source
        namespace: dict[str, Any] = {"work": work}
        exec(compile(source, str(README), "exec"), namespace)
        crawl: Callable[[str], Awaitable[None]] = namespace["crawl"]
        with pytest.raises(ServerError):
            await crawl(star)
        assert (tmp_path / "crawl.json").exists()
        await crawl(star)  # resumes from the checkpoint and runs to the end

    expected = [f"fan{i}" for i in range(200, 0, -1)]
    # Pages of 80: fetching page 3 failed after page 2 was handled; the resumed walk began at
    # page 3, so every follower was handled exactly once, in order.
    assert handled == expected
    assert not (tmp_path / "crawl.json").exists()
    assert server.count("POST", "/api/v1/apps") == 1
