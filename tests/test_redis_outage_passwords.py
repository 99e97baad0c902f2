"""A Redis password never appears in a log record, an exception message or a frame, during an outage or at startup."""

from __future__ import annotations

import logging
import subprocess
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi import WebSocket
from fastapi.testclient import TestClient

from fastapi_channels import limiter
from fastapi_channels.backends import create_broadcast, redact
from fastapi_channels.channels import Channel
from fastapi_channels.config import FastAPIChannel
from fastapi_channels.decorators import action
from fastapi_channels.testing import receive_close, receive_json
from tests.conftest import RedisServer, redis_answers
from tests.helpers import greet_on_join, joined, serve

# Unique, so that it cannot turn up anywhere by chance.
PASSWORD = f"pw-{uuid.uuid4().hex}"


class PasswordRedisServer(RedisServer):
    """A ``RedisServer`` that requires ``PASSWORD``; its ``url`` carries it (``redis://default:<password>@...``)."""

    def __init__(self) -> None:
        super().__init__()
        self.url = f"redis://default:{PASSWORD}@127.0.0.1:{self.port}/0"

    def start(self) -> None:
        """Start the server with ``--requirepass`` and wait until it answers the password."""
        self.process = subprocess.Popen(
            [self.executable, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
            + ["--dir", self.directory, "--requirepass", PASSWORD],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while not redis_answers(self.url):
            if time.monotonic() > deadline or self.process.poll() is not None:
                raise RuntimeError(f"redis-server did not start on port {self.port}")
            time.sleep(0.05)


@pytest.fixture
def password_redis() -> Iterator[PasswordRedisServer]:
    """A Redis server that requires a password, which this test may stop and restart."""
    server = PasswordRedisServer()
    server.start()
    try:
        yield server
    finally:
        server.stop()


def messages_of(exc: BaseException) -> list[str]:
    """Return the text of ``exc`` and of every exception it was raised from or during."""
    texts: list[str] = []
    seen: BaseException | None = exc
    while seen is not None and len(texts) < 20:
        texts += [str(seen), repr(seen)]
        seen = seen.__cause__ or seen.__context__
    return texts


def assert_no_password(texts: list[str], caplog: pytest.LogCaptureFixture) -> None:
    """Fail if ``PASSWORD`` appears in ``texts``, in a captured log record or in a logged traceback."""
    logged = [record.getMessage() for record in caplog.records] + [caplog.text]
    leaks = [text for text in texts + logged if PASSWORD in text]
    assert not leaks, f"the password leaked: {leaks[:3]}"


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("redis://user:secret@host:6379/0", "redis://user:***@host:6379/0"),
        ("rediss://:secret@host/0", "rediss://:***@host/0"),
        ("redis://default:p%40ss@10.0.0.1:6380", "redis://default:***@10.0.0.1:6380"),
        ("redis://user:p@ss@host/0", "redis://user:***@host/0"),
        ("postgres://app:secret@db.example/app?sslmode=require", "postgres://app:***@db.example/app?sslmode=require"),
        ("redis://host:6379/0?password=secret&db=1", "redis://host:6379/0?password=***&db=1"),
        ("redis://user@host/0", "redis://user@host/0"),
        ("redis://127.0.0.1:6379/0", "redis://127.0.0.1:6379/0"),
        ("memory://", "memory://"),
        ("redis://user:secret@[::1", "***@[::1"),
    ],
)
def test_redact_shows_a_url_without_its_password(url: str, shown: str) -> None:
    assert redact(url) == shown


def test_redis_password_never_appears_while_redis_is_down_and_back(
    password_redis: PasswordRedisServer, channel_name: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)

    class Room(Channel):
        @action()
        async def say(self, websocket: WebSocket, channel: str, data: dict[str, Any]) -> None:
            await self.broadcast_to_channel(channel, {"said": data["text"]})

        @action()
        async def members(self, websocket: WebSocket, channel: str, data: dict[str, Any]) -> None:
            await self.broadcast_to_personal(websocket, {"count": len(await self.get_members(channel))})

        @action()
        @limiter(100, seconds=1)
        async def limited(self, websocket: WebSocket, channel: str, data: dict[str, Any]) -> None:
            await self.broadcast_to_personal(websocket, {"done": True})

    room = Room()
    greet_on_join(room)
    url = password_redis.url
    app = serve(room, url=url, limiter_url=url, limiter_prefix=f"test-{uuid.uuid4().hex}", namespace=channel_name)
    path = f"/ws/{channel_name}"
    frames: list[Any] = []
    with TestClient(app) as client, joined(client, path) as ws:
        ws.send_json({"action": "say", "text": "before"})
        assert receive_json(ws) == {"said": "before"}

        password_redis.stop()  # connections are refused from now on
        for name in ("say", "members", "limited"):
            ws.send_json({"action": name, "text": "during"})
            frames.append(receive_json(ws))
            assert frames[-1]["code"] == 1013, frames[-1]
        with client.websocket_connect(path) as refused:
            frames.append(receive_json(refused))
            assert receive_close(refused)[0] == 1013

        def logged(text: str) -> bool:
            return any(text in record.getMessage() for record in caplog.records)

        deadline = time.monotonic() + 10
        while not logged("Redis at redis://default:***@"):  # the pub/sub reader retrying, with the URL redacted
            assert time.monotonic() < deadline, "the pub/sub reader did not report the outage"
            time.sleep(0.05)

        password_redis.start()
        deadline = time.monotonic() + 15
        while not logged("Redis pub/sub reconnected to redis://default:***@"):
            assert time.monotonic() < deadline, "the pub/sub reader did not reconnect"
            time.sleep(0.05)
        # The password still works: publishing and presence are back.
        while True:
            assert time.monotonic() < deadline, "publishing did not work again"
            ws.send_json({"action": "say", "text": "after"})
            frame = receive_json(ws)
            if frame == {"said": "after"}:
                break
            assert frame["code"] == 1013, frame

    assert_no_password([str(frame) for frame in frames], caplog)
    assert logged("Cannot admit a connection")  # presence's error, which names the URL


@pytest.mark.parametrize(
    ("options", "what"),
    [
        ({"url": "{url}"}, "for broadcasting"),
        ({"url": "memory://", "presence_url": "{url}"}, "for presence"),
        ({"url": "memory://", "limiter_url": "{url}"}, "for rate limits"),
    ],
    ids=["broadcast", "presence", "limiter"],
)
def test_redis_password_never_appears_when_startup_cannot_reach_redis(
    password_redis: PasswordRedisServer, options: dict[str, str], what: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    url = password_redis.url
    password_redis.stop()
    keywords: dict[str, Any] = {key: value.format(url=url) for key, value in options.items()}
    app = serve(Channel(), **keywords)
    with pytest.raises(ConnectionError) as info, TestClient(app):
        pass
    assert f"Cannot reach Redis at {redact(url)!r} {what}" in str(info.value)
    assert_no_password(messages_of(info.value), caplog)


@pytest.mark.parametrize(
    "build",
    [
        lambda: FastAPIChannel(limiter_url=f"http://default:{PASSWORD}@example.com"),
        lambda: FastAPIChannel(presence_url=f"http://default:{PASSWORD}@example.com"),
        lambda: create_broadcast(f"nosuch://default:{PASSWORD}@example.com"),
    ],
    ids=["limiter_url", "presence_url", "broadcast url"],
)
def test_url_with_a_password_and_the_wrong_scheme_raises_value_error_without_the_password(
    build: Any, caplog: pytest.LogCaptureFixture
) -> None:
    with pytest.raises(ValueError) as info:
        build()
    assert "default:***@example.com" in str(info.value)
    assert_no_password(messages_of(info.value), caplog)
