"""Shared fixtures: a real Redis server, one backend fixture for memory:// and redis://, and real servers."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"


def free_port() -> int:
    """Return a TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def redis_answers(url: str) -> bool:
    """Return whether a Redis server answers PING at ``url``."""
    try:
        client = redis.Redis.from_url(url, socket_connect_timeout=1, socket_timeout=1)
        try:
            return bool(client.ping())
        finally:
            client.close()
    except redis.RedisError:
        return False


class RedisServer:
    """A ``redis-server`` process of the test suite's own, on a free port, keeping nothing on disk."""

    def __init__(self) -> None:
        executable = shutil.which("redis-server")
        if executable is None:
            raise RuntimeError(
                "No Redis server answers at 127.0.0.1:6379 and redis-server is not installed: "
                "install it (apt-get install redis-server) or set FASTAPI_CHANNELS_TEST_REDIS_URL."
            )
        self.executable = executable
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.directory = tempfile.mkdtemp(prefix="fastapi-channels-redis-")
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        """Start the server and wait until it answers."""
        self.process = subprocess.Popen(
            [
                self.executable,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                self.directory,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while not redis_answers(self.url):
            if time.monotonic() > deadline or self.process.poll() is not None:
                raise RuntimeError(f"redis-server did not start on port {self.port}")
            time.sleep(0.05)

    def stop(self) -> None:
        """Stop the server."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)
        self.process = None


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """URL of a real Redis server: FASTAPI_CHANNELS_TEST_REDIS_URL, 127.0.0.1:6379, or one started here."""
    configured = os.environ.get("FASTAPI_CHANNELS_TEST_REDIS_URL")
    if configured:
        if not redis_answers(configured):
            raise RuntimeError(f"FASTAPI_CHANNELS_TEST_REDIS_URL={configured!r} does not answer PING")
        yield configured
        return
    if redis_answers(DEFAULT_REDIS_URL):
        yield DEFAULT_REDIS_URL
        return
    server = RedisServer()
    server.start()
    try:
        yield server.url
    finally:
        server.stop()


@pytest.fixture
def own_redis() -> Iterator[RedisServer]:
    """A Redis server this test may stop and restart."""
    server = RedisServer()
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(params=["memory", "redis"])
def backend(request: pytest.FixtureRequest) -> dict[str, str | None]:
    """``add_channel`` keywords for each backend: memory:// alone, and redis:// for broadcast and limits."""
    # Each test has its own key prefixes and namespace, so runs sharing one Redis never reach each other's users.
    prefix = f"test-{uuid.uuid4().hex}"
    if request.param == "memory":
        return {"url": "memory://", "limiter_url": None, "limiter_prefix": prefix, "namespace": prefix}
    url = request.getfixturevalue("redis_url")
    return {"url": url, "limiter_url": url, "limiter_prefix": prefix, "namespace": prefix}


@pytest.fixture
def channel_name() -> str:
    """A channel name no other test uses, so tests sharing a Redis server never hear each other."""
    return f"test-{uuid.uuid4().hex[:12]}"


class UvicornProcess:
    """A real uvicorn process serving ``module:attribute`` on a free port; its output goes to a file."""

    def __init__(
        self, app: str, *, env: dict[str, str] | None = None, cwd: Path = ROOT, port: int | None = None
    ) -> None:
        self.port = port or free_port()  # a given port: a server restarted where its clients reconnect
        self.url = f"http://127.0.0.1:{self.port}"
        # A file, not a pipe: a pipe nobody reads would block a chatty server.
        self._log = tempfile.TemporaryFile()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", app, "--host", "127.0.0.1", "--port", str(self.port)]
            + ["--log-level", "warning"],
            cwd=cwd,
            env={**os.environ, **(env or {})},
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )

    def wait_until_serving(self, timeout: float = 20) -> None:
        """Wait until the port accepts connections; fail with the server's output if it exits first."""
        deadline = time.monotonic() + timeout
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"uvicorn exited early:\n{self.output()}")
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"uvicorn did not start within {timeout} s:\n{self.output()}")
            time.sleep(0.05)

    def output(self) -> str:
        """Return what the server has printed so far."""
        self._log.flush()
        self._log.seek(0)
        return self._log.read().decode(errors="replace")

    def kill(self) -> None:
        """End the process at once with SIGKILL: no shutdown, no cleanup, like a power loss."""
        self.process.kill()
        self.process.wait(10)

    def stop(self) -> None:
        """Stop the server gracefully (SIGTERM), killing it if it does not stop within 10 s."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)

    def close(self) -> None:
        """Stop the server and drop its output."""
        self.stop()
        self._log.close()


@contextlib.contextmanager
def run_uvicorn(app: str, *, env: dict[str, str] | None = None, cwd: Path = ROOT) -> Iterator[str]:
    """Serve ``module:attribute`` with a real uvicorn process; yield its ``http://host:port`` base URL."""
    server = UvicornProcess(app, env=env, cwd=cwd)
    try:
        server.wait_until_serving()
        yield server.url
    finally:
        server.close()
