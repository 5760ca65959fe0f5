"""The README's examples run as printed."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

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
