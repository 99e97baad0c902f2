"""The channel layer: one subscription per channel per process, concurrent joins, admission, bounded outboxes."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from broadcaster import Broadcast, Event
from redis.asyncio import Redis

from fastapi_channels import layers
from fastapi_channels.backends import create_broadcast
from fastapi_channels.exceptions import BackendUnavailable
from fastapi_channels.layers import ChannelLayer
from fastapi_channels.outbox import DEFAULT_SEND_QUEUE_SIZE
from fastapi_channels.presence import RedisPresence
from tests.apps.backends import CountingMemoryBackend
from tests.apps.sockets import Member, leave_all
from tests.conftest import RedisServer


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
    # Subscribed under the layer's namespace, so that apps sharing a backend never hear each other.
    assert backend.subscribes == [layer.prefix + channel_name, f"{layer.prefix}{channel_name}-other"]
    await layer.publish(channel_name, "once each")
    for member in members:
        assert await member.peer.next_text() == "once each"
    # Still subscribed while anyone is left.
    await leave_all(layer, members[:4])
    assert backend.unsubscribes == []
    await layer.publish(channel_name, "to the last")
    assert await members[4].peer.next_text() == "to the last"
    await leave_all(layer, members[4:])
    assert backend.unsubscribes == [layer.prefix + channel_name]
    assert layer.count(channel_name) == 0
    assert layer.connections(channel_name) == []
    # Joining again subscribes again.
    again = await Member.open(channel_name)
    await layer.add(again.connection)
    assert backend.subscribes == [layer.prefix + name for name in (channel_name, f"{channel_name}-other", channel_name)]
    await leave_all(layer, [again, other])
    expected = [channel_name, channel_name, f"{channel_name}-other"]
    assert sorted(backend.unsubscribes) == sorted(layer.prefix + name for name in expected)


async def test_one_redis_subscription_per_channel_unsubscribed_when_last_member_leaves(
    redis_url: str, channel_name: str
) -> None:
    broadcast = create_broadcast(redis_url)
    await broadcast.connect()
    observer = Redis.from_url(redis_url)
    try:
        layer = ChannelLayer(broadcast)
        topic = (layer.prefix + channel_name).encode()
        members = [await Member.open(channel_name) for _ in range(5)]
        await asyncio.gather(*(layer.add(member.connection) for member in members))
        assert await observer.pubsub_numsub(layer.prefix + channel_name) == [(topic, 1)]
        await leave_all(layer, members[:4])
        assert await observer.pubsub_numsub(layer.prefix + channel_name) == [(topic, 1)]
        await leave_all(layer, members[4:])
        # A later subscription on the same pub/sub connection is confirmed only after Redis has handled the
        # UNSUBSCRIBE sent before it, so by then Redis must count no subscriber.
        later = await Member.open(f"{channel_name}-later")
        await layer.add(later.connection)
        assert await observer.pubsub_numsub(layer.prefix + channel_name) == [(topic, 0)]
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


# -- presence and direct messages across processes ---------------------------------------------------------


async def open_member(channel: str, user: str | None = None) -> Member:
    """Open a connection of ``channel`` whose scope carries the authenticated ``user`` (anonymous if None)."""
    return await Member.open(channel, user=user, send_queue_size=DEFAULT_SEND_QUEUE_SIZE)


@pytest.fixture
async def two_processes(redis_url: str) -> AsyncIterator[tuple[ChannelLayer, ChannelLayer]]:
    """Two channel layers, as two processes would run them, sharing one Redis under a namespace of their own."""
    namespace = f"test-{uuid.uuid4().hex}"
    layers: list[ChannelLayer] = []
    try:
        for _ in range(2):
            broadcast = create_broadcast(redis_url)
            await broadcast.connect()
            layer = ChannelLayer(broadcast, presence=RedisPresence(redis_url, namespace=namespace), namespace=namespace)
            layers.append(layer)
            await layer.start()
        yield layers[0], layers[1]
    finally:
        for layer in layers:
            await layer.stop()
            await layer.broadcast.disconnect()


async def assert_next_is_marker(sender: ChannelLayer, members: list[Member]) -> None:
    """Send each member a marker on the direct channel: had a direct message leaked to it, it would come first."""
    for member in members:
        await sender.send_direct(f"marker for {member.connection.id}", connection_id=member.connection.id)
        assert await member.peer.next_text() == f"marker for {member.connection.id}"


async def test_send_direct_to_connection_reaches_it_on_either_process_and_nobody_else(
    two_processes: tuple[ChannelLayer, ChannelLayer], channel_name: str
) -> None:
    first, second = two_processes
    on_first = [await open_member(channel_name) for _ in range(2)]
    on_second = [await open_member(channel_name), await open_member(f"{channel_name}-other")]
    for layer, members in ((first, on_first), (second, on_second)):
        assert all([await layer.add(member.connection) for member in members])
    target = on_second[0]
    await first.send_direct("just for you", connection_id=target.connection.id)
    assert await target.peer.next_text() == "just for you"
    await second.send_direct("unknown id", connection_id="no-such-connection")
    await second.send_direct("back to the first", connection_id=on_first[1].connection.id)
    assert await on_first[1].peer.next_text() == "back to the first"
    await assert_next_is_marker(first, [on_first[0], on_second[1]])
    await assert_next_is_marker(second, [target, on_first[1]])
    await leave_all(first, on_first)
    await leave_all(second, on_second)


async def test_send_direct_to_user_reaches_all_their_connections_and_channel_restricts_it(
    two_processes: tuple[ChannelLayer, ChannelLayer], channel_name: str
) -> None:
    first, second = two_processes
    lobby, game = f"{channel_name}-lobby", f"{channel_name}-game"
    alice_lobby_1, alice_game_1 = await open_member(lobby, "alice"), await open_member(game, "alice")
    alice_lobby_2, bob_lobby_2 = await open_member(lobby, "alice"), await open_member(lobby, "bob")
    anonymous_1 = await open_member(lobby)
    on_first, on_second = [alice_lobby_1, alice_game_1, anonymous_1], [alice_lobby_2, bob_lobby_2]
    for layer, members in ((first, on_first), (second, on_second)):
        assert all([await layer.add(member.connection) for member in members])
    others = [bob_lobby_2, anonymous_1]

    await second.send_direct("hi alice", user="alice")
    for member in (alice_lobby_1, alice_game_1, alice_lobby_2):
        assert await member.peer.next_text() == "hi alice"
    await assert_next_is_marker(first, others)

    await first.send_direct("alice, in the game", user="alice", channel=game)
    assert await alice_game_1.peer.next_text() == "alice, in the game"
    await assert_next_is_marker(second, [alice_lobby_1, alice_lobby_2, *others])

    # Nobody is called "None": anonymous connections are never addressed by user.
    await first.send_direct("to nobody", user="None")
    await first.send_direct("to a stranger", user="carol")
    await assert_next_is_marker(second, [*on_first, *on_second])
    await leave_all(first, on_first)
    await leave_all(second, on_second)


async def test_send_direct_needs_exactly_one_address() -> None:
    layer = ChannelLayer(create_broadcast("memory://"))
    for address in ({}, {"connection_id": "c", "user": "u"}):
        with pytest.raises(ValueError, match="exactly one of connection_id= and user="):
            await layer.send_direct("text", **address)


async def test_two_processes_racing_for_the_last_slots_admit_exactly_the_limit(
    two_processes: tuple[ChannelLayer, ChannelLayer], channel_name: str
) -> None:
    first, second = two_processes
    members = [await open_member(channel_name, f"user-{index}") for index in range(20)]
    layers = [first if index % 2 else second for index in range(20)]
    admitted = await asyncio.gather(
        *(layer.add(member.connection, max_connections=5) for layer, member in zip(layers, members, strict=True))
    )
    assert admitted.count(True) == 5
    assert first.count(channel_name) + second.count(channel_name) == 5
    assert await first.presence.count(channel_name) == await second.presence.count(channel_name) == 5
    inside = [member for member, ok in zip(members, admitted, strict=True) if ok]
    listed = await second.presence.members(channel_name)
    assert {found.connection_id for found in listed} == {member.connection.id for member in inside}
    assert {found.user for found in listed} == {member.connection.user for member in inside}
    await first.publish(channel_name, "members only")
    for member in inside:
        assert await member.peer.next_text() == "members only"
    for layer in (first, second):
        await leave_all(layer, [member for member in inside if member.connection in layer.connections(channel_name)])
    await asyncio.gather(*(member.stop() for member in members))
    assert await first.presence.count(channel_name) == 0


async def test_layer_with_redis_down_add_and_publish_raise_backend_unavailable_then_recover(
    own_redis: RedisServer, channel_name: str
) -> None:
    namespace = f"test-{uuid.uuid4().hex}"
    broadcast = create_broadcast(own_redis.url)
    await broadcast.connect()
    layer = ChannelLayer(broadcast, presence=RedisPresence(own_redis.url, namespace=namespace), namespace=namespace)
    await layer.start()
    try:
        inside = await open_member(channel_name)
        assert await layer.add(inside.connection)
        own_redis.stop()
        refused = await open_member(channel_name)
        with pytest.raises(BackendUnavailable) as joining:
            await layer.add(refused.connection)
        assert joining.value.code == 1013
        assert layer.connections(channel_name) == [inside.connection]
        with pytest.raises(BackendUnavailable) as publishing:
            await layer.publish(channel_name, "lost")
        assert (publishing.value.code, publishing.value.close) == (1013, False)
        own_redis.start()
        assert await layer.add(refused.connection)
        assert await layer.presence.count(channel_name) == 2
        await leave_all(layer, [inside, refused])
    finally:
        await layer.stop()
        await broadcast.disconnect()


class SilentBackend(CountingMemoryBackend):
    """A backend whose publish never completes, like a server that accepted the connection and went quiet."""

    async def publish(self, channel: str, message: Any) -> None:
        await asyncio.Event().wait()


async def test_layer_publish_that_never_completes_raises_backend_unavailable_after_the_timeout(
    monkeypatch: pytest.MonkeyPatch, channel_name: str
) -> None:
    monkeypatch.setattr(layers, "PUBLISH_TIMEOUT", 0.2)
    broadcast = Broadcast(backend=SilentBackend())
    await broadcast.connect()
    try:
        with pytest.raises(BackendUnavailable) as info:
            await ChannelLayer(broadcast).publish(channel_name, "never sent")
        assert (info.value.code, info.value.close) == (1013, False)
        assert isinstance(info.value.__cause__, TimeoutError)
    finally:
        await broadcast.disconnect()


async def test_leave_finishing_after_shutdown_opens_no_new_redis_connection(
    own_redis: RedisServer, channel_name: str
) -> None:
    # A connection's leave runs shielded, so it can finish after the app's shutdown disconnected the broadcaster
    # (TestClient and uvicorn both cancel open connections just before the lifespan shutdown).
    broadcast = create_broadcast(own_redis.url)
    await broadcast.connect()
    layer = ChannelLayer(broadcast)
    member = await Member.open(channel_name)
    assert await layer.add(member.connection)
    await layer.stop()
    await broadcast.disconnect()
    await leave_all(layer, [member])
    observer = Redis.from_url(own_redis.url)
    try:
        deadline = time.monotonic() + 2
        while (await observer.info("clients"))["connected_clients"] != 1:
            assert time.monotonic() < deadline, "a connection to Redis was left open after the shutdown"
            await asyncio.sleep(0.05)
    finally:
        await observer.aclose()
        # Close whatever the late leave opened, so a failure shows here and not as a warning in a later test.
        pubsub = getattr(getattr(broadcast, "_backend", None), "_pubsub", None)
        if pubsub is not None:
            await pubsub.aclose()


@pytest.mark.parametrize(
    "envelope",
    [
        "not json",
        "[1, 2]",
        '{"user": "alice"}',
        '{"user": ["alice"], "text": "x"}',
        '{"connection": {"id": 1}, "text": "x"}',
        '{"user": "alice", "text": 42}',
        '{"user": "alice", "text": "x", "channel": 7}',
    ],
)
async def test_malformed_direct_message_is_dropped_and_the_listener_keeps_delivering(
    two_processes: tuple[ChannelLayer, ChannelLayer], channel_name: str, envelope: str, caplog: pytest.LogCaptureFixture
) -> None:
    sender, receiver = two_processes
    alice = await open_member(channel_name, "alice")
    await receiver.add(alice.connection)
    # Straight onto the reserved channel, as a foreign publisher on the same Redis could.
    await sender.broadcast.publish(sender.direct_channel, envelope)
    await sender.send_direct("still delivered", user="alice")
    assert await alice.peer.next_text() == "still delivered"
    assert "Dropped a malformed direct message" in caplog.text
    await leave_all(receiver, [alice])
