"""Broadcast backends: our Redis pub/sub backend on current redis-py, and one layer suite over every backend."""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import AsyncIterator

import pytest
import redis
from broadcaster import Event
from redis.asyncio import Redis

from fastapi_channels.backends import PostgresBackend, RedisPubSubBackend, create_broadcast
from fastapi_channels.config import _build_presence
from fastapi_channels.layers import ChannelLayer
from tests.apps.sockets import Member, leave_all
from tests.conftest import RedisServer, free_port

POSTGRES_URL = os.environ.get("FASTAPI_CHANNELS_TEST_POSTGRES_URL", "postgresql://127.0.0.1:5432/test")


@pytest.fixture
async def backend_on(redis_url: str) -> AsyncIterator[RedisPubSubBackend]:
    """Our Redis backend, connected to the suite's Redis."""
    backend = RedisPubSubBackend(redis_url)
    await backend.connect()
    try:
        yield backend
    finally:
        await backend.disconnect()


@pytest.fixture
async def publisher(redis_url: str) -> AsyncIterator[Redis]:
    """A separate Redis client, as another process would publish with."""
    client = Redis.from_url(redis_url)
    try:
        yield client
    finally:
        await client.aclose()


async def next_event(backend: RedisPubSubBackend, timeout: float = 5.0) -> Event:
    return await asyncio.wait_for(backend.next_published(), timeout)


def test_installed_redis_py_is_a_current_release() -> None:
    major = int(redis.__version__.split(".")[0])
    print(f"redis-py {redis.__version__}")
    assert major >= 5


async def test_redis_backend_receives_publish_from_another_connection(
    backend_on: RedisPubSubBackend, publisher: Redis, channel_name: str
) -> None:
    await backend_on.subscribe(channel_name)
    # Published right after subscribe returned: broadcaster 0.3.1's own Redis backend loses this on redis-py 8.
    receivers = await publisher.publish(channel_name, "hello")
    assert receivers == 1
    assert await next_event(backend_on) == Event(channel=channel_name, message="hello")
    await backend_on.publish(channel_name, "through the backend")
    assert await next_event(backend_on) == Event(channel=channel_name, message="through the backend")


async def test_redis_backend_delivers_several_channels_in_order(
    backend_on: RedisPubSubBackend, publisher: Redis, channel_name: str
) -> None:
    channels = [f"{channel_name}-{index}" for index in range(3)]
    for channel in channels:
        await backend_on.subscribe(channel)
    sent = [Event(channel=channel, message=f"{channel}:{number}") for number in range(3) for channel in channels]
    for event in sent:
        await publisher.publish(event.channel, event.message)
    assert [await next_event(backend_on) for _ in sent] == sent


async def test_redis_backend_unsubscribe_stops_delivery(
    backend_on: RedisPubSubBackend, publisher: Redis, channel_name: str
) -> None:
    kept, dropped = f"{channel_name}-kept", f"{channel_name}-dropped"
    await backend_on.subscribe(kept)
    await backend_on.subscribe(dropped)
    await backend_on.unsubscribe(dropped)
    # Confirmed subscriptions come after the UNSUBSCRIBE on the same connection, so it has taken effect.
    await backend_on.subscribe(f"{channel_name}-sync")
    assert await publisher.publish(dropped, "not for us") == 0
    await publisher.publish(kept, "for us")
    assert await next_event(backend_on) == Event(channel=kept, message="for us")


async def test_redis_backend_unreachable_server_fails_fast_with_helpful_connection_error() -> None:
    url = f"redis://127.0.0.1:{free_port()}/0"
    backend = RedisPubSubBackend(url)
    started = time.monotonic()
    with pytest.raises(ConnectionError) as info:
        await backend.connect()
    assert time.monotonic() - started < 5
    assert url in str(info.value)
    assert "Cannot reach Redis" in str(info.value)


async def test_postgres_backend_unreachable_server_fails_with_helpful_connection_error() -> None:
    url = f"postgresql://127.0.0.1:{free_port()}/test"
    with pytest.raises(ConnectionError) as info:
        await PostgresBackend(url).connect()
    assert url in str(info.value)


async def test_redis_backend_resubscribes_after_redis_restart(own_redis: RedisServer, channel_name: str) -> None:
    backend = RedisPubSubBackend(own_redis.url)
    await backend.connect()
    try:
        await backend.subscribe(channel_name)
        await backend.publish(channel_name, "before")
        assert await next_event(backend) == Event(channel=channel_name, message="before")

        own_redis.stop()
        own_redis.start()

        publisher = Redis.from_url(own_redis.url)
        try:
            # Messages published while the backend reconnects are lost (pub/sub keeps nothing): publish until
            # one arrives, which must happen within 5 s of the restart.
            deadline = time.monotonic() + 5
            received = None
            while received is None:
                assert time.monotonic() < deadline, "delivery did not resume within 5 s of the restart"
                await publisher.publish(channel_name, "after")
                with contextlib.suppress(asyncio.TimeoutError):
                    received = await next_event(backend, timeout=0.2)
            assert received == Event(channel=channel_name, message="after")
        finally:
            await publisher.aclose()
        readers = [task for task in asyncio.all_tasks() if task.get_name() == "fastapi-channels-redis-reader"]
        assert len(readers) == 1
        assert not readers[0].done()
        await backend.publish(channel_name, "still working")
        assert await next_event(backend) == Event(channel=channel_name, message="still working")
    finally:
        await backend.disconnect()


# -- one layer suite over every backend -------------------------------------------------------------------


@pytest.fixture(params=["memory", "redis", "redis-stream", "postgres"])
def any_broadcast_url(request: pytest.FixtureRequest) -> str:
    """The URL of each backend: memory://, our redis://, and broadcaster's own redis-stream:// and postgres://."""
    if request.param == "memory":
        return "memory://"
    if request.param == "postgres":
        return POSTGRES_URL
    url: str = request.getfixturevalue("redis_url")
    return url if request.param == "redis" else url.replace("redis://", "redis-stream://", 1)


@pytest.fixture
async def any_layer(any_broadcast_url: str, channel_name: str) -> AsyncIterator[ChannelLayer]:
    """A channel layer over a connected broadcaster of each backend."""
    broadcast = create_broadcast(any_broadcast_url)
    await broadcast.connect()
    # Presence as add_channel picks it for this URL; the namespace starts with the channel name so that
    # the cleanup below finds its keys too.
    namespace = f"{channel_name}-ns"
    presence = _build_presence(None, any_broadcast_url, namespace=namespace, ttl=30.0)
    layer = ChannelLayer(broadcast, presence=presence, namespace=namespace)
    await layer.start()
    try:
        yield layer
    finally:
        await layer.stop()
        await broadcast.disconnect()
        if any_broadcast_url.startswith("redis-stream://"):
            # Streams stay in Redis after the test: remove this test's.
            client = Redis.from_url(any_broadcast_url.replace("redis-stream://", "redis://", 1))
            try:
                keys = [key async for key in client.scan_iter(f"{channel_name}*")]
                if keys:
                    await client.delete(*keys)
            finally:
                await client.aclose()


async def test_layer_publish_reaches_every_member_of_the_channel_only(
    any_layer: ChannelLayer, channel_name: str
) -> None:
    red = [await Member.open(f"{channel_name}-red") for _ in range(3)]
    blue = await Member.open(f"{channel_name}-blue")
    await asyncio.gather(*(any_layer.add(member.connection) for member in [*red, blue]))
    await any_layer.publish(f"{channel_name}-red", "for red")
    await any_layer.publish(f"{channel_name}-blue", "for blue")
    for member in red:
        assert await member.peer.next_text() == "for red"
    assert await blue.peer.next_text() == "for blue"
    await any_layer.publish(f"{channel_name}-red", "red again")
    for member in red:
        assert await member.peer.next_text() == "red again"
    await leave_all(any_layer, [*red, blue])


async def test_layer_keeps_order_of_messages(any_layer: ChannelLayer, channel_name: str) -> None:
    member = await Member.open(channel_name)
    await any_layer.add(member.connection)
    for number in range(20):
        await any_layer.publish(channel_name, f"message {number}")
    assert [await member.peer.next_text() for _ in range(20)] == [f"message {number}" for number in range(20)]
    await leave_all(any_layer, [member])


async def test_layer_simultaneous_joins_then_all_leave_and_join_again(
    any_layer: ChannelLayer, channel_name: str
) -> None:
    first, second = await Member.open(channel_name), await Member.open(channel_name)
    assert await asyncio.gather(any_layer.add(first.connection), any_layer.add(second.connection)) == [True, True]
    await any_layer.publish(channel_name, "both")
    assert await first.peer.next_text() == "both"
    assert await second.peer.next_text() == "both"
    await leave_all(any_layer, [first, second])
    assert any_layer.count(channel_name) == 0
    again = await Member.open(channel_name)
    await any_layer.add(again.connection)
    await any_layer.publish(channel_name, "welcome back")
    assert await again.peer.next_text() == "welcome back"
    await leave_all(any_layer, [again])


async def test_layer_carries_unicode_and_json_text_unchanged(any_layer: ChannelLayer, channel_name: str) -> None:
    member = await Member.open(channel_name)
    await any_layer.add(member.connection)
    texts = ['{"message": "héllo ✓", "n": [1, 2]}', "plain text with 'quotes' and \"double quotes\""]
    for text in texts:
        await any_layer.publish(channel_name, text)
    assert [await member.peer.next_text() for _ in texts] == texts
    await leave_all(any_layer, [member])


async def test_layer_joins_of_different_channels_and_publishes_at_the_same_time_all_work(
    any_layer: ChannelLayer, channel_name: str
) -> None:
    busy = await Member.open(f"{channel_name}-busy")
    await any_layer.add(busy.connection)
    newcomers = [await Member.open(f"{channel_name}-new-{index}") for index in range(5)]
    results = await asyncio.gather(
        *(any_layer.add(member.connection) for member in newcomers),
        *(any_layer.publish(f"{channel_name}-busy", f"busy {number}") for number in range(5)),
    )
    assert results[:5] == [True] * 5
    assert sorted([await busy.peer.next_text() for _ in range(5)]) == [f"busy {number}" for number in range(5)]
    for index, member in enumerate(newcomers):
        await any_layer.publish(f"{channel_name}-new-{index}", f"to newcomer {index}")
        assert await member.peer.next_text() == f"to newcomer {index}"
    await leave_all(any_layer, [busy, *newcomers])
    assert all(any_layer.count(f"{channel_name}-new-{index}") == 0 for index in range(5))


async def test_layer_direct_messages_reach_only_their_connection_or_user(
    any_layer: ChannelLayer, channel_name: str
) -> None:
    ann = [await Member.open(channel_name, user="ann"), await Member.open(f"{channel_name}-other", user="ann")]
    bob = await Member.open(channel_name, user="bob")
    anonymous = await Member.open(channel_name)
    everyone = [*ann, bob, anonymous]
    await asyncio.gather(*(any_layer.add(member.connection) for member in everyone))

    await any_layer.send_direct("to ann", user="ann")
    await any_layer.send_direct("to ann here", user="ann", channel=channel_name)
    await any_layer.send_direct("to bob's connection", connection_id=bob.connection.id)
    await any_layer.send_direct("to nobody", connection_id="no-such-connection")
    # Direct messages keep their order among themselves: a leaked one would arrive before these.
    for member in everyone:
        await any_layer.send_direct("end", connection_id=member.connection.id)

    assert [await ann[0].peer.next_text() for _ in range(3)] == ["to ann", "to ann here", "end"]
    assert [await ann[1].peer.next_text() for _ in range(2)] == ["to ann", "end"]
    assert [await bob.peer.next_text() for _ in range(2)] == ["to bob's connection", "end"]
    assert await anonymous.peer.next_text() == "end"
    await leave_all(any_layer, everyone)


async def test_layer_counts_members_through_the_presence_of_its_backend(
    any_layer: ChannelLayer, channel_name: str
) -> None:
    members = [await Member.open(channel_name, user=f"user-{index}") for index in range(3)]
    admitted = await asyncio.gather(*(any_layer.add(member.connection, max_connections=2) for member in members))
    assert sorted(admitted) == [False, True, True]
    assert await any_layer.presence.count(channel_name) == 2
    listed = {member.connection_id for member in await any_layer.presence.members(channel_name)}
    assert listed == {member.connection.id for member, ok in zip(members, admitted, strict=True) if ok}
    await leave_all(any_layer, [member for member, ok in zip(members, admitted, strict=True) if ok])
    assert await any_layer.presence.count(channel_name) == 0
