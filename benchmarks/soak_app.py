"""The server side of ``soak.py``: one channel over several rooms, and an endpoint reporting what the process holds.

Run by ``soak.py`` as ``python -m uvicorn benchmarks.soak_app:app`` from the repository root. Environment:

- ``FASTAPI_CHANNELS_URL``: the broadcast URL, ``memory://`` (default) or ``redis://...``.
- ``SOAK_NAMESPACE``: the ``add_channel`` namespace, and the prefix of every room name. Channel names are not
  namespaced by the library, so a unique value keeps a soak from hearing (or disturbing) anyone else on a
  shared Redis.
- ``SOAK_ROOMS``: how many rooms there are; ``/soak/stats`` sums the connection counts over all of them.
"""

from __future__ import annotations

import asyncio
import gc
import os
from typing import Any

from fastapi import FastAPI, WebSocket

from fastapi_channels import add_channel
from fastapi_channels.channels import Channel
from fastapi_channels.decorators import action

URL = os.environ.get("FASTAPI_CHANNELS_URL", "memory://")
NAMESPACE = os.environ.get("SOAK_NAMESPACE", "soak")
ROOMS = int(os.environ.get("SOAK_ROOMS", "20"))

app = FastAPI()
add_channel(app, url=URL, namespace=NAMESPACE)


def room_name(index: int) -> str:
    """Name room ``index``, prefixed with the namespace so that rooms of other apps on the same Redis stay apart."""
    return f"{NAMESPACE}:room-{index}"


class Soak(Channel):
    """Broadcast to the room, or echo to the sender alone."""

    @action("say")
    async def say(self, websocket: WebSocket, channel: str, data: dict[str, Any]) -> None:
        await self.broadcast_to_channel(channel, {"action": "say", "text": data.get("text", "")})

    @action("echo")
    async def echo(self, websocket: WebSocket, channel: str, data: dict[str, Any]) -> None:
        await self.broadcast_to_personal(websocket, {"action": "echo", "text": data.get("text", "")})


async def welcome(websocket: WebSocket, channel: str) -> None:
    """Tell the newcomer it has joined: the client waits for this before it counts the connection as open."""
    await soak.broadcast_to_personal(websocket, {"action": "welcome", "id": soak.get_connection_id(websocket)})


async def announce_departure(websocket: WebSocket, channel: str) -> None:
    """Tell the room someone left, so that leaving (clean or abrupt) also publishes."""
    await soak.broadcast_to_channel(channel, {"action": "left"})


soak = Soak(on_join=[welcome], on_leave=[announce_departure])


handlers = 0
"""Websocket endpoint calls still running: compared with the presence count, it tells a stale presence entry
from a connection the server has not noticed is gone."""


@app.websocket("/soak/ws/{room}")
async def soak_endpoint(websocket: WebSocket, room: int) -> None:
    global handlers
    handlers += 1
    try:
        await soak.connect(websocket, channel=room_name(room % ROOMS))
    finally:
        handlers -= 1


@app.get("/soak/stats")
async def stats() -> dict[str, int]:
    """Report what this process holds; ``soak.py`` reads it every interval to see whether anything grows."""
    # Each closed connection leaves reference cycles (mostly uvicorn's protocol objects) that only a full
    # collection frees, and Python runs one rarely: without collecting here, the object count and the RSS read
    # right after would follow the collector's schedule and hide, or fake, a slow leak.
    collected = gc.collect()
    # Rooms are counted one after another while clients come and go: the sum may differ from ``handlers`` by one
    # or two for a moment; a difference that stays is what to look for.
    connections = 0
    for index in range(ROOMS):
        connections += await soak.get_connection_count(room_name(index))
    return {
        # Includes this request's own task.
        "tasks": len(asyncio.all_tasks()),
        "connections": connections,
        "handlers": handlers,
        "gc_objects": len(gc.get_objects()),
        "gc_collected": collected,
    }
