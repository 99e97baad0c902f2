"""A relay channel with a tiny send queue, served by uvicorn to watch what happens to a client that stops reading.

Environment: SLOW_CONSUMER_BROADCAST_URL (default memory://), SLOW_CONSUMER_SEND_QUEUE_SIZE (frames, default
4; "none" for no count), SLOW_CONSUMER_SEND_QUEUE_BYTES (default 1 MiB), SLOW_CONSUMER_WRITE_TIMEOUT (default 10 s).
"""

from __future__ import annotations

import os

from fastapi import FastAPI, WebSocket

from fastapi_channels import add_channel
from fastapi_channels.channels import BaseChannel

app = FastAPI()
QUEUE_SIZE = os.environ.get("SLOW_CONSUMER_SEND_QUEUE_SIZE", "4")
add_channel(
    app,
    url=os.environ.get("SLOW_CONSUMER_BROADCAST_URL", "memory://"),
    send_queue_size=None if QUEUE_SIZE == "none" else int(QUEUE_SIZE),
    send_queue_bytes=int(os.environ.get("SLOW_CONSUMER_SEND_QUEUE_BYTES", str(1024 * 1024))),
    write_timeout=float(os.environ.get("SLOW_CONSUMER_WRITE_TIMEOUT", "10")),
)

room = BaseChannel()


@room.on_event("join")
async def say_joined(websocket: WebSocket, channel: str) -> None:
    """Tell the client it is in the channel, so the test knows broadcasts reach it from now on."""
    await room.broadcast_to_personal(websocket, "joined")


@app.websocket("/ws/{channel}")
async def relay(websocket: WebSocket, channel: str) -> None:
    """Relay every text frame to everyone in ``channel``."""
    await room.connect(websocket, channel=channel)


@app.get("/count/{channel}")
async def count(channel: str) -> int:
    """How many connections the server holds in ``channel``."""
    return await room.get_connection_count(channel)
