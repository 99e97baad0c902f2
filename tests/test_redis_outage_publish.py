"""Publishing during a Redis outage: answered at once while Redis is known to be down, nothing stale afterwards.

Redis is stopped (connections refused) or frozen (SIGSTOP: the process stops but its sockets keep taking what
arrives; CLIENT PAUSE WRITE: Redis holds every publish) under live sockets, then brought back.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
import redis
from fastapi import WebSocket
from fastapi.testclient import TestClient
from redis.asyncio import Redis
from redis.asyncio.client import PubSub
from redis.exceptions import TimeoutError as RedisTimeoutError
from starlette.testclient import WebSocketTestSession

from fastapi_channels.backends import RedisPubSubBackend
from fastapi_channels.channels import Channel
from fastapi_channels.decorators import action
from fastapi_channels.layers import PUBLISH_TIMEOUT
from fastapi_channels.testing import receive_json
from tests.conftest import RedisServer
from tests.helpers import greet_on_join, joined, serve

FREEZES = ["sigstop", "client-pause"]


class Room(Channel):
    @action()
    async def say(self, websocket: WebSocket, channel: str, data: dict[str, Any]) -> None:
        await self.broadcast_to_channel(channel, {"said": data["text"]})


@contextlib.contextmanager
def frozen(server: RedisServer, how: str) -> Iterator[None]:
    """Freeze Redis for the block: SIGSTOP, or CLIENT PAUSE WRITE (publishes are held, the rest is answered)."""
    if how == "sigstop":
        assert server.process is not None
        server.process.send_signal(signal.SIGSTOP)
        try:
            yield
        finally:
            server.process.send_signal(signal.SIGCONT)
        return
    admin = redis.Redis.from_url(server.url)
    try:
        admin.execute_command("CLIENT", "PAUSE", 60_000, "WRITE")
        try:
            yield
        finally:
            admin.execute_command("CLIENT", "UNPAUSE")
    finally:
        admin.close()


def say_during_outage(speaker: WebSocketTestSession, *, count: int = 20, within: float) -> None:
    """Send ``count`` messages at once; each must be answered by a 1013 error frame ``within`` s of being sent."""
    sent = time.monotonic()
    for number in range(count):
        speaker.send_json({"action": "say", "text": f"during {number}", "request_id": number})
    for number in range(count):
        frame = receive_json(speaker, timeout=max(0.0, sent + within - time.monotonic()))
        assert (frame["request_id"], frame["code"], frame["close"]) == (number, 1013, False), frame


def say_until_heard(speaker: WebSocketTestSession, listener: WebSocketTestSession, *, within: float) -> None:
    """Have ``speaker`` say numbered messages until ``listener`` hears one; nothing said before may arrive."""
    deadline = time.monotonic() + within
    number = 0
    while True:
        assert time.monotonic() < deadline, f"no message was delivered within {within} s of Redis coming back"
        speaker.send_json({"action": "say", "text": f"after {number}"})
        number += 1
        with contextlib.suppress(AssertionError):  # nothing within the short wait: this one was refused or lost
            heard = receive_json(listener, timeout=0.2)
            assert heard["said"].startswith("after "), f"a message said during the outage arrived: {heard}"
            break
    # Both subscribed sockets see every later message, and nothing said during the outage comes before it.
    speaker.send_json({"action": "say", "text": "final"})
    while (frame := receive_json(speaker)) != {"said": "final"}:
        assert frame.get("code") == 1013 or frame.get("said", "").startswith("after "), frame
    while (frame := receive_json(listener)) != {"said": "final"}:
        assert frame["said"].startswith("after "), f"a message said during the outage arrived: {frame}"


def test_publish_while_redis_is_stopped_answers_each_of_20_within_a_second_and_none_is_published_later(
    own_redis: RedisServer, channel_name: str
) -> None:
    room = Room()
    greet_on_join(room)
    app = serve(room, url=own_redis.url, namespace=f"test-{uuid.uuid4().hex}")
    path = f"/ws/{channel_name}"
    with TestClient(app) as client, joined(client, path) as speaker, joined(client, path) as listener:
        speaker.send_json({"action": "say", "text": "before"})
        assert receive_json(listener) == receive_json(speaker) == {"said": "before"}

        own_redis.stop()
        # The first publish finds Redis gone; the 19 behind it are refused without waiting on Redis again.
        say_during_outage(speaker, within=1.0)
        own_redis.start()
        say_until_heard(speaker, listener, within=15)


@pytest.mark.parametrize("freeze", FREEZES)
def test_publish_while_redis_is_frozen_answers_within_the_timeout_and_nothing_is_published_when_it_wakes(
    own_redis: RedisServer, channel_name: str, freeze: str
) -> None:
    room = Room()
    greet_on_join(room)
    app = serve(room, url=own_redis.url, namespace=f"test-{uuid.uuid4().hex}")
    path = f"/ws/{channel_name}"
    with TestClient(app) as client, joined(client, path) as speaker, joined(client, path) as listener:
        speaker.send_json({"action": "say", "text": "before"})
        assert receive_json(listener) == receive_json(speaker) == {"said": "before"}

        with frozen(own_redis, freeze):
            # The first publish waits PUBLISH_TIMEOUT for a Redis that does not answer; the others do not wait.
            say_during_outage(speaker, within=PUBLISH_TIMEOUT + 0.5)
        # The publish that was waiting when Redis froze is in Redis's hands: Redis must drop it, not publish it.
        say_until_heard(speaker, listener, within=15)


@pytest.fixture
async def backend(own_redis: RedisServer) -> AsyncIterator[RedisPubSubBackend]:
    """A connected ``RedisPubSubBackend`` on the test's own Redis."""
    backend = RedisPubSubBackend(own_redis.url)
    await backend.connect()
    try:
        yield backend
    finally:
        await backend.disconnect()


@pytest.fixture
async def subscriber(own_redis: RedisServer, channel_name: str) -> AsyncIterator[PubSub]:
    """A plain redis-py subscriber of ``channel_name``, to see exactly what Redis publishes."""
    client = Redis.from_url(own_redis.url)
    pubsub = client.pubsub(ignore_subscribe_messages=True)
    await pubsub.subscribe(channel_name)
    try:
        yield pubsub
    finally:
        await pubsub.aclose()  # type: ignore[no-untyped-call]
        await client.aclose()


async def next_message(pubsub: PubSub, *, within: float = 5.0) -> str:
    """Return the next message published on the subscriber's channel; fail after ``within`` seconds."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        message = await pubsub.get_message(timeout=0.1)
        if message is not None:
            return bytes(message["data"]).decode()
    raise AssertionError(f"nothing was published within {within} s")


@pytest.mark.parametrize("freeze", FREEZES)
async def test_redis_backend_publish_that_redis_gets_to_after_the_deadline_is_dropped_not_published(
    own_redis: RedisServer, backend: RedisPubSubBackend, subscriber: PubSub, channel_name: str, freeze: str
) -> None:
    backend.publish_deadline = 0.2
    with frozen(own_redis, freeze):
        late = asyncio.create_task(backend.publish(channel_name, "late"))
        # Still waiting on the frozen Redis well after its deadline.
        done, _ = await asyncio.wait({late}, timeout=0.5)
        assert not done
    with pytest.raises(RedisTimeoutError, match="dropped it"):
        await asyncio.wait_for(late, 5)
    await backend.publish(channel_name, "on time")
    assert await next_message(subscriber) == "on time"


async def test_redis_backend_publish_after_redis_clock_moved_ahead_is_published_exactly_once(
    backend: RedisPubSubBackend, subscriber: PubSub, channel_name: str
) -> None:
    # As if Redis's clock had been set a minute ahead since the backend last heard from it.
    backend._clock_offset -= 60_000
    await backend.publish(channel_name, "once")
    await backend.publish(channel_name, "next")
    assert [await next_message(subscriber), await next_message(subscriber)] == ["once", "next"]
