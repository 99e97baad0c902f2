"""An app whose connections join several channels, served by real uvicorn processes: tests/test_multichannel.py.

Settings come from the environment: ``MULTICHANNEL_URL`` (memory:// or a Redis URL) and ``MULTICHANNEL_NAMESPACE``
(keeps test runs apart). Clients connect to ``/rooms/<channel>`` (``/small/<channel>``: channels of one
connection each) and join more with subscribe frames; ``?who=`` names a client in the join and leave records.
``GET /debug`` tells what the process holds: tasks, topics, connections, presence entries, handler runs.
"""

from __future__ import annotations

import asyncio
import os
from collections import Counter
from typing import Any

from fastapi import FastAPI, WebSocket

from fastapi_channels import add_channel, get_channel_config
from fastapi_channels.channels import Channel
from fastapi_channels.decorators import action

URL = os.environ.get("MULTICHANNEL_URL", "memory://")
NAMESPACE = os.environ.get("MULTICHANNEL_NAMESPACE", "multichannel-test")

# (who, event, channel) for clients that name themselves; counts of every handler run.
records: list[tuple[str, str, str]] = []
runs: Counter[str] = Counter()


def record(event: str) -> Any:
    def handler(websocket: WebSocket, channel: str) -> None:
        runs[event] += 1
        who = websocket.query_params.get("who")
        if who:
            records.append((who, event, channel))

    return handler


class Rooms(Channel):
    """Rooms clients join themselves; ``say`` broadcasts to any of them."""

    client_subscriptions = True
    max_channels_per_connection = 20

    @action("say")
    async def say(self, channel: str, data: dict[str, Any]) -> None:
        await self.broadcast_to_channel(data.get("to") or channel, {"text": data.get("text")})


app = FastAPI()
add_channel(app, url=URL, namespace=NAMESPACE)
rooms = Rooms(app=app, on_join=[record("join")], on_leave=[record("leave")])
small = Rooms(app=app, max_connection=1, on_join=[record("join")], on_leave=[record("leave")])


@app.websocket("/rooms/{name}")
async def rooms_endpoint(websocket: WebSocket, name: str) -> None:
    await rooms.connect(websocket, channel=name)


@app.websocket("/small/{name}")
async def small_endpoint(websocket: WebSocket, name: str) -> None:
    await small.connect(websocket, channel=name)


@app.get("/debug")
async def debug() -> dict[str, Any]:
    """What this process holds now."""
    config = get_channel_config()
    return {
        "tasks": sum(1 for task in asyncio.all_tasks() if not task.done()),
        "topics": len(config.layer.topics()),
        "connections": len(config.layer.local_connections()),
        "presence": config.presence.held(),
        "joins": runs["join"],
        "leaves": runs["leave"],
    }


@app.get("/records/{who}")
async def records_of(who: str) -> list[list[str]]:
    return [[event, channel] for name, event, channel in records if name == who]


@app.get("/count/{kind}/{name}")
async def count(kind: str, name: str) -> int:
    return await (small if kind == "small" else rooms).get_connection_count(name)
