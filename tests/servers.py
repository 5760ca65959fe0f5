"""Real servers from Debian's packages, started for the tests on free loopback ports.

A test that needs a server that is not installed is skipped with the way to get it; under
``CI=true`` it fails instead (``.ci/run`` installs the packages, so a skip there means a
broken setup, not a missing feature).
"""

from __future__ import annotations

import glob
import os
import pwd
import secrets
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def missing(what: str, package: str) -> None:
    """Skip (or, in CI, fail) a test whose server ``what`` is not installed."""
    # Imported here: the benchmarks start these servers too, where pytest is not installed.
    import pytest

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


def _postgres_binaries() -> Path | None:
    """The directory of ``postgres`` and ``initdb``: on PATH, else Debian's newest."""
    found = shutil.which("postgres")
    if found is not None and shutil.which("initdb") is not None:
        return Path(os.path.realpath(found)).parent
    versions = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/postgres"),
        key=lambda path: int(Path(path).parts[-3]) if Path(path).parts[-3].isdigit() else 0,
    )
    return Path(versions[-1]).parent if versions else None


def _answers_postgres(port: int) -> bool:
    """Whether a PostgreSQL server accepts connections on the port (an SSLRequest probe)."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as conn:
            conn.sendall(b"\x00\x00\x00\x08\x04\xd2\x16\x2f")  # SSLRequest
            return conn.recv(1) in (b"N", b"S")
    except OSError:
        return False


@contextmanager
def postgres_server() -> Iterator[str]:
    """A throwaway PostgreSQL cluster on a free loopback port; yields its ``postgresql://`` URL.

    Password (SCRAM) authentication on 127.0.0.1 only, its unix socket inside the data
    directory, fsync off (nothing here must survive a power cut). PostgreSQL refuses to run
    as root, so as root the cluster belongs to the ``postgres`` user Debian's package makes.
    """
    binaries = _postgres_binaries()
    if binaries is None:
        missing("PostgreSQL (postgres, initdb)", "postgresql")
        raise AssertionError("unreachable")
    password = secrets.token_urlsafe(16)
    port = free_port()
    uid = gid = None
    if os.geteuid() == 0:
        entry = pwd.getpwnam("postgres")
        uid, gid = entry.pw_uid, entry.pw_gid
    groups: list[int] | None = None if uid is None else []
    with tempfile.TemporaryDirectory(prefix="aiomasto-postgres-") as tmp:
        data, sockets, secret = Path(tmp) / "data", Path(tmp) / "sockets", Path(tmp) / "pw"
        sockets.mkdir()
        secret.write_text(password)
        if uid is not None:
            for path in (Path(tmp), sockets, secret):
                os.chown(path, uid, -1)
        subprocess.run(
            [
                str(binaries / "initdb"),
                "--pgdata",
                str(data),
                "--username",
                "aiomasto",
                "--pwfile",
                str(secret),
                "--auth-local",
                "trust",
                "--auth-host",
                "scram-sha-256",
                "--encoding",
                "UTF8",
                "--no-locale",
                "--no-sync",
            ],
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            user=uid,
            group=gid,
            extra_groups=groups,
        )
        settings = {
            "listen_addresses": "127.0.0.1",
            "port": str(port),
            "unix_socket_directories": str(sockets),
            "fsync": "off",
            "synchronous_commit": "off",
            "full_page_writes": "off",
            "max_connections": "300",
            "shared_buffers": "64MB",
        }
        arguments = [item for key, value in settings.items() for item in ("-c", f"{key}={value}")]
        process = subprocess.Popen(
            [str(binaries / "postgres"), "-D", str(data), *arguments],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            user=uid,
            group=gid,
            extra_groups=groups,
        )
        try:
            deadline = time.monotonic() + 30
            while not _answers_postgres(port):
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"PostgreSQL did not start on port {port}")
                time.sleep(0.05)
            yield f"postgresql://aiomasto:{password}@127.0.0.1:{port}/postgres"
        finally:
            # SIGINT: PostgreSQL's fast shutdown (it rolls back open transactions and exits).
            process.send_signal(2)
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
