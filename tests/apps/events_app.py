"""A relay channel whose join/leave handlers talk to the clients and count leaves, served by uvicorn.

Clients connect to /ws/{channel}/{who}; GET /leaves/{who} says how often ``who``'s leave handlers ran.
Environment: EVENTS_BROADCAST_URL (default memory://).
"""

from __future__ import annotations

import collections
import os

from fastapi import FastAPI, WebSocket

from fastapi_channels import add_channel
from fastapi_channels.channels import BaseChannel

app = FastAPI()
add_channel(app, url=os.environ.get("EVENTS_BROADCAST_URL", "memory://"))

room = BaseChannel()
leaves: collections.Counter[str] = collections.Counter()


@room.on_event("join")
async def say_joined(websocket: WebSocket, channel: str) -> None:
    """Tell the client it is in the channel."""
    await room.broadcast_to_personal(websocket, "joined")


@room.on_event("leave")
async def announce_leave(websocket: WebSocket, channel: str) -> None:
    """Count the leave and tell the others who left."""
    who = websocket.path_params["who"]
    leaves[who] += 1
    await room.broadcast_to_channel(channel, f"left:{who}")


@app.websocket("/ws/{channel}/{who}")
async def relay(websocket: WebSocket, channel: str, who: str) -> None:
    """Relay every text frame to everyone in ``channel``."""
    await room.connect(websocket, channel=channel)


@app.get("/leaves/{who}")
async def leave_count(who: str) -> dict[str, int]:
    """Return how often ``who``'s leave handlers ran."""
    return {"leaves": leaves[who]}
