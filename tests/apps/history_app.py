"""An app whose room keeps history, served by real uvicorn processes: the subject of tests/test_history.py.

Settings come from the environment: ``HISTORY_URL`` (memory:// or a Redis URL), ``HISTORY_NAMESPACE`` (keeps
test runs apart) and ``HISTORY_SIZE``. ``POST /publish/<room>`` publishes ``count`` messages from ``workers``
concurrent publishers, each message padded with ``pad`` random characters (compression cannot shrink them),
and answers with the last position.
"""

from __future__ import annotations

import asyncio
import os
import secrets
from typing import Any

from fastapi import FastAPI, WebSocket

from fastapi_channels import add_channel
from fastapi_channels.channels import Channel
from fastapi_channels.decorators import action

URL = os.environ.get("HISTORY_URL", "memory://")
NAMESPACE = os.environ.get("HISTORY_NAMESPACE", "history-test")
SIZE = int(os.environ.get("HISTORY_SIZE", "2000"))


class Room(Channel):
    """A room that keeps its last ``HISTORY_SIZE`` messages."""

    history_size = SIZE

    @action("say")
    async def say(self, channel: str, data: dict[str, Any]) -> None:
        await self.broadcast_to_channel(channel, {"n": data.get("n")})


app = FastAPI()
add_channel(app, url=URL, namespace=NAMESPACE)
room = Room(app=app)


@app.websocket("/room/{name}")
async def room_endpoint(websocket: WebSocket, name: str) -> None:
    await room.connect(websocket, channel=name)


@app.post("/publish/{name}")
async def publish(name: str, count: int, workers: int = 1, pad: int = 0, tag: str = "") -> dict[str, Any]:
    """Publish ``count`` messages ``{"n": "<tag><worker>-<i>"}`` from ``workers`` concurrent publishers."""
    offsets: list[int] = []
    epochs: set[str] = set()

    async def publisher(worker: int) -> None:
        for index in range(worker, count, workers):
            padding = secrets.token_hex(pad // 2)
            position = await room.broadcast_to_channel(name, {"n": f"{tag}{worker}-{index}", "pad": padding})
            assert position is not None
            offsets.append(position.offset)
            epochs.add(position.epoch)
            await asyncio.sleep(0)  # let the other publishers and the connections' catch-ups run in between

    await asyncio.gather(*(publisher(worker) for worker in range(workers)))
    return {"offset": max(offsets, default=0), "epochs": sorted(epochs)}


@app.get("/history/{name}")
async def history(name: str, limit: int | None = None, since: int | None = None) -> dict[str, Any]:
    page = await room.history(name, limit=limit, since=since)
    return {
        "offsets": [publication.offset for publication in page.publications],
        "offset": page.offset,
        "epoch": page.epoch,
        "complete": page.complete,
    }
