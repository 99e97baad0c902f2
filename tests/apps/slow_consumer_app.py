"""A relay channel with a tiny send queue, served by uvicorn to watch what happens to a client that stops reading.

Environment: SLOW_CONSUMER_BROADCAST_URL (default memory://), SLOW_CONSUMER_SEND_QUEUE_SIZE (default 4).
"""

from __future__ import annotations

import os

from fastapi import FastAPI, WebSocket

from fastapi_channels import add_channel
from fastapi_channels.channels import BaseChannel

app = FastAPI()
add_channel(
    app,
    url=os.environ.get("SLOW_CONSUMER_BROADCAST_URL", "memory://"),
    send_queue_size=int(os.environ.get("SLOW_CONSUMER_SEND_QUEUE_SIZE", "4")),
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
