"""Real servers from Debian's packages, started for the tests on free loopback ports.

A test that needs a server that is not installed is skipped with the way to get it; under
``CI=true`` it fails instead (``.ci/run`` installs the packages, so a skip there means a
broken setup, not a missing feature).
"""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest


def missing(what: str, package: str) -> None:
    """Skip (or, in CI, fail) a test whose server ``what`` is not installed."""
    reason = (
        f"no {what} on PATH: install Debian's package with 'apt-get install {package}' "
        "(as root), or run .ci/run, which does"
    )
    if os.environ.get("CI") == "true":
        pytest.fail(f"this test must run in CI, but there is {reason}")
    pytest.skip(reason)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _answers_ping(port: int, password: str) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as conn:
            conn.sendall(f"AUTH {password}\r\nPING\r\n".encode())
            reply = b""
            while b"PONG" not in reply and len(reply) < 200:
                chunk = conn.recv(100)
                if not chunk:
                    break
                reply += chunk
            return b"+PONG" in reply
    except OSError:
        return False


@contextmanager
def redis_server() -> Iterator[str]:
    """A private, password-protected redis-server; yields its ``redis://`` URL."""
    binary = shutil.which("redis-server")
    if binary is None:
        missing("redis-server", "redis-server")
        raise AssertionError("unreachable")
    password = secrets.token_urlsafe(16)
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="aiomasto-redis-") as data:
        process = subprocess.Popen(
            [
                binary,
                "--port",
                str(port),
                "--bind",
                "127.0.0.1",
                "--requirepass",
                password,
                "--dir",
                data,
                "--save",
                "",
                "--appendonly",
                "no",
                "--protected-mode",
                "yes",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            deadline = time.monotonic() + 10
            while not _answers_ping(port, password):
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"redis-server did not start on port {port}")
                time.sleep(0.05)
            yield f"redis://:{password}@127.0.0.1:{port}/0"
        finally:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
