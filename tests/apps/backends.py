"""A broadcaster backend for the tests that keeps count of what it is asked to do."""

from __future__ import annotations

import asyncio
from typing import Any

from broadcaster import BroadcastBackend, Event


class CountingMemoryBackend(BroadcastBackend):
    """An in-process backend that records every connect, disconnect, subscribe, unsubscribe and publish."""

    def __init__(self, url: str = "counting-memory://") -> None:
        self.subscribes: list[str] = []
        self.unsubscribes: list[str] = []
        self.published: list[tuple[str, Any]] = []
        self.connects = 0
        self.disconnects = 0
        self._subscribed: set[str] = set()
        self._published: asyncio.Queue[Event] = asyncio.Queue()

    async def connect(self) -> None:
        self.connects += 1

    async def disconnect(self) -> None:
        self.disconnects += 1

    async def subscribe(self, channel: str) -> None:
        self.subscribes.append(channel)
        self._subscribed.add(channel)

    async def unsubscribe(self, channel: str) -> None:
        self.unsubscribes.append(channel)
        self._subscribed.discard(channel)

    async def publish(self, channel: str, message: Any) -> None:
        self.published.append((channel, message))
        await self._published.put(Event(channel=channel, message=message))

    async def next_published(self) -> Event:
        while True:
            event = await self._published.get()
            if event.channel in self._subscribed:
                return event
