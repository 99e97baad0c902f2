"""A burst of publishes from one process through Redis: more commands in flight than connections wait, none fails."""

from __future__ import annotations

import asyncio

from fastapi_channels.backends import REDIS_MAX_CONNECTIONS, create_broadcast
from fastapi_channels.layers import ChannelLayer
from tests.apps.sockets import Member, leave_all


async def test_more_publishes_in_flight_than_pooled_connections_all_arrive(redis_url: str, channel_name: str) -> None:
    broadcast = create_broadcast(redis_url)
    await broadcast.connect()
    layer = ChannelLayer(broadcast, namespace=channel_name)
    await layer.start()
    try:
        member = await Member.open(channel_name)
        await layer.add(member.connection)
        burst = 5 * REDIS_MAX_CONNECTIONS  # redis-py 8's own pool would refuse every command past 100 at once
        await asyncio.gather(*(layer.publish(channel_name, str(number)) for number in range(burst)))
        received = {await member.peer.next_text() for _ in range(burst)}
        assert received == {str(number) for number in range(burst)}
        await leave_all(layer, [member])
    finally:
        await layer.stop()
        await broadcast.disconnect()
