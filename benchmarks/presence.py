"""Measure presence: joins and leaves per second, and the cost of a cluster-wide count, in memory and in Redis."""

from __future__ import annotations

import argparse
import asyncio
import time
import uuid

from fastapi_channels.presence import LocalPresence, Presence, RedisPresence


async def measure(presence: Presence, connections: int, concurrency: int) -> None:
    channel = f"bench-{uuid.uuid4().hex[:8]}"
    members = [presence.new_member(uuid.uuid4().hex, f"user-{index}") for index in range(connections)]
    semaphore = asyncio.Semaphore(concurrency)

    async def join(member_index: int) -> bool:
        async with semaphore:
            return await presence.add(channel, members[member_index], max_connections=connections)

    started = time.perf_counter()
    admitted = await asyncio.gather(*(join(index) for index in range(connections)))
    joined = time.perf_counter() - started
    assert all(admitted) and await presence.count(channel) == connections

    started = time.perf_counter()
    for _ in range(100):
        await presence.count(channel)
    counting = (time.perf_counter() - started) / 100

    started = time.perf_counter()
    await asyncio.gather(*(presence.remove(channel, member.connection_id) for member in members))
    left = time.perf_counter() - started

    name = type(presence).__name__
    print(
        f"{name}: {connections} joins in {joined:.3f}s -> {connections / joined:,.0f} joins/s (max_connection checked)"
    )
    print(f"{name}: count() of {connections} members: {counting * 1000:.3f} ms")
    print(f"{name}: {connections} leaves in {left:.3f}s -> {connections / left:,.0f} leaves/s")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--connections", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=50, help="joins in flight at once")
    parser.add_argument("--url", default=None, help="a redis:// URL; memory only when left out")
    args = parser.parse_args()
    await measure(LocalPresence(), args.connections, args.concurrency)
    if args.url:
        presence = RedisPresence(args.url, namespace=f"bench-{uuid.uuid4().hex[:8]}")
        await presence.start()
        try:
            await measure(presence, args.connections, args.concurrency)
        finally:
            await presence.stop()


if __name__ == "__main__":
    asyncio.run(main())
