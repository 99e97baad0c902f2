"""The channel layer: one subscription per channel per process, concurrent joins, admission, bounded outboxes."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from broadcaster import Broadcast, Event
from redis.asyncio import Redis

from fastapi_channels.layers import ChannelLayer, Connection, create_broadcast
from tests.apps.backends import CountingMemoryBackend
from tests.apps.sockets import Member, leave_all, open_websocket


@pytest.fixture(params=["memory", "redis"])
def broadcast_url(request: pytest.FixtureRequest) -> str:
    """The broadcast URL of each backend the layer runs on."""
    if request.param == "memory":
        return "memory://"
    url: str = request.getfixturevalue("redis_url")
    return url


@pytest.fixture
async def layer(broadcast_url: str) -> AsyncIterator[ChannelLayer]:
    """A channel layer over a connected broadcaster."""
    broadcast = create_broadcast(broadcast_url)
    await broadcast.connect()
    try:
        yield ChannelLayer(broadcast)
    finally:
        await broadcast.disconnect()


@pytest.fixture
async def counting() -> AsyncIterator[tuple[ChannelLayer, CountingMemoryBackend]]:
    """A channel layer over a counting backend."""
    backend = CountingMemoryBackend()
    broadcast = Broadcast(backend=backend)
    await broadcast.connect()
    try:
        yield ChannelLayer(broadcast), backend
    finally:
        await broadcast.disconnect()


async def test_simultaneous_joins_of_new_channel_both_receive_and_leave_cleanly(
    layer: ChannelLayer, channel_name: str
) -> None:
    first, second = await Member.open(channel_name), await Member.open(channel_name)
    admitted = await asyncio.gather(layer.add(first.connection), layer.add(second.connection))
    assert admitted == [True, True]
    await layer.publish(channel_name, "to both")
    assert await first.peer.next_text() == "to both"
    assert await second.peer.next_text() == "to both"
    await leave_all(layer, [first, second])
    assert layer.count(channel_name) == 0
    # The channel works again after everyone left.
    third = await Member.open(channel_name)
    assert await layer.add(third.connection)
    await layer.publish(channel_name, "to the third")
    assert await third.peer.next_text() == "to the third"
    await leave_all(layer, [third])


async def test_many_simultaneous_joins_each_receive_every_message_once(layer: ChannelLayer, channel_name: str) -> None:
    members = [await Member.open(channel_name) for _ in range(10)]
    assert all(await asyncio.gather(*(layer.add(member.connection) for member in members)))
    await layer.publish(channel_name, "one")
    await layer.publish(channel_name, "two")
    for member in members:
        assert [await member.peer.next_text(), await member.peer.next_text()] == ["one", "two"]
    await layer.publish(channel_name, "three")
    for member in members:
        assert await member.peer.next_text() == "three"
    await leave_all(layer, members)


async def test_one_backend_subscription_per_channel_however_many_members(
    counting: tuple[ChannelLayer, CountingMemoryBackend], channel_name: str
) -> None:
    layer, backend = counting
    members = [await Member.open(channel_name) for _ in range(5)]
    await asyncio.gather(*(layer.add(member.connection) for member in members))
    other = await Member.open(f"{channel_name}-other")
    await layer.add(other.connection)
    assert backend.subscribes == [channel_name, f"{channel_name}-other"]
    await layer.publish(channel_name, "once each")
    for member in members:
        assert await member.peer.next_text() == "once each"
    # Still subscribed while anyone is left.
    await leave_all(layer, members[:4])
    assert backend.unsubscribes == []
    await layer.publish(channel_name, "to the last")
    assert await members[4].peer.next_text() == "to the last"
    await leave_all(layer, members[4:])
    assert backend.unsubscribes == [channel_name]
    assert layer.count(channel_name) == 0
    assert layer.connections(channel_name) == []
    # Joining again subscribes again.
    again = await Member.open(channel_name)
    await layer.add(again.connection)
    assert backend.subscribes == [channel_name, f"{channel_name}-other", channel_name]
    await leave_all(layer, [again, other])
    assert sorted(backend.unsubscribes) == sorted([channel_name, channel_name, f"{channel_name}-other"])


async def test_one_redis_subscription_per_channel_unsubscribed_when_last_member_leaves(
    redis_url: str, channel_name: str
) -> None:
    broadcast = create_broadcast(redis_url)
    await broadcast.connect()
    observer = Redis.from_url(redis_url)
    try:
        layer = ChannelLayer(broadcast)
        members = [await Member.open(channel_name) for _ in range(5)]
        await asyncio.gather(*(layer.add(member.connection) for member in members))
        assert await observer.pubsub_numsub(channel_name) == [(channel_name.encode(), 1)]
        await leave_all(layer, members[:4])
        assert await observer.pubsub_numsub(channel_name) == [(channel_name.encode(), 1)]
        await leave_all(layer, members[4:])
        # A later subscription on the same pub/sub connection is confirmed only after Redis has handled the
        # UNSUBSCRIBE sent before it, so by then Redis must count no subscriber.
        later = await Member.open(f"{channel_name}-later")
        await layer.add(later.connection)
        assert await observer.pubsub_numsub(channel_name) == [(channel_name.encode(), 0)]
        await leave_all(layer, [later])
    finally:
        await observer.aclose()
        await broadcast.disconnect()


async def test_max_connections_under_concurrent_adds_admits_exactly_the_limit(
    layer: ChannelLayer, channel_name: str
) -> None:
    members = [await Member.open(channel_name) for _ in range(20)]
    admitted = await asyncio.gather(*(layer.add(member.connection, max_connections=10) for member in members))
    assert admitted.count(True) == 10
    assert layer.count(channel_name) == 10
    inside = [member for member, ok in zip(members, admitted, strict=True) if ok]
    assert set(layer.connections(channel_name)) == {member.connection for member in inside}
    await layer.publish(channel_name, "members only")
    for member in inside:
        assert await member.peer.next_text() == "members only"
    await leave_all(layer, inside)
    await asyncio.gather(*(member.stop() for member in members))
    assert layer.count(channel_name) == 0


async def test_connection_send_after_close_is_a_no_op(channel_name: str) -> None:
    member = await Member.open(channel_name)
    member.connection.send("before")
    member.connection.close()
    member.connection.send("after close")
    assert await member.peer.next_text() == "before"
    closing = await member.peer.next()
    assert closing["type"] == "websocket.close"
    assert closing["code"] == 1000
    await asyncio.wait_for(member.sender, 5)
    member.connection.send("after the sender ended")
    member.connection.close(1011)
    assert member.peer.pending() == []


async def test_connection_overflow_closes_with_1013_and_drops_the_backlog(channel_name: str) -> None:
    member = await Member.open(channel_name, send_queue_size=2)
    member.peer.pause()  # the client stops reading
    for number in range(10):
        member.connection.send(f"frame {number}")
    member.peer.resume()
    texts: list[str] = []
    while (message := await member.peer.next())["type"] == "websocket.send":
        texts.append(message["text"])
    assert message["code"] == 1013
    # At most the frame that was being written when the queue overflowed got through.
    assert texts in ([], ["frame 0"])
    await member.stop()
    member.connection.send("after the close")
    assert member.peer.pending() == []


async def test_slow_connection_closed_while_others_in_channel_keep_receiving(
    layer: ChannelLayer, channel_name: str
) -> None:
    slow = await Member.open(channel_name, send_queue_size=2)
    fast = await Member.open(channel_name, send_queue_size=2)
    await layer.add(slow.connection)
    await layer.add(fast.connection)
    slow.peer.pause()
    for number in range(20):
        await layer.publish(channel_name, f"frame {number}")
        assert await fast.peer.next_text() == f"frame {number}"
    slow.peer.resume()
    texts: list[str] = []
    while (message := await slow.peer.next())["type"] == "websocket.send":
        texts.append(message["text"])
    assert message["code"] == 1013
    assert texts == [f"frame {number}" for number in range(len(texts))]
    assert len(texts) < 20
    await leave_all(layer, [slow, fast])


async def test_create_broadcast_unknown_scheme_raises_helpful_value_error() -> None:
    with pytest.raises(ValueError) as info:
        create_broadcast("carrier-pigeon://coop")
    message = str(info.value)
    assert "carrier-pigeon://coop" in message
    for scheme in ("memory://", "redis://", "postgres://"):
        assert scheme in message
    assert "backend=" in message


async def test_create_broadcast_redis_url_uses_our_redis_backend(redis_url: str, channel_name: str) -> None:
    broadcast = create_broadcast(redis_url)
    await broadcast.connect()
    try:
        async with broadcast.subscribe(channel_name) as subscriber:
            publisher = Redis.from_url(redis_url)
            try:
                # Published by a separate client, straight after subscribe returned: it must arrive.
                await publisher.publish(channel_name, "from another client")
            finally:
                await publisher.aclose()
            event = await asyncio.wait_for(subscriber.get(), 5)
        assert event == Event(channel=channel_name, message="from another client")
    finally:
        await broadcast.disconnect()


async def test_connection_close_sends_queued_frames_then_close_with_code_and_reason(channel_name: str) -> None:
    websocket, peer = await open_websocket()
    connection = Connection(websocket, channel_name)
    sender = asyncio.create_task(connection.run_sender())
    connection.send("hello")
    assert await peer.next_text() == "hello"
    connection.close(4000, "bye")
    closing = await peer.next()
    assert (closing["type"], closing["code"], closing["reason"]) == ("websocket.close", 4000, "bye")
    await asyncio.wait_for(sender, 5)
