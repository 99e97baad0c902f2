"""A channel with typed actions that reply, and an untyped one, served by uvicorn at /ws."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, WebSocket
from pydantic import BaseModel

from fastapi_channels import Channel, action, add_channel

app = FastAPI()
add_channel(app)


class Point(BaseModel):
    """A point on the board."""

    x: int
    y: int


class Board(Channel):
    """Typed actions reply; the untyped one sends its own frame."""

    @action
    async def move(self, point: Point) -> Point:
        """Answer with the validated point."""
        return point

    @action
    async def add(self, a: int, b: int = 10) -> int:
        """Answer with the sum of the payload fields a and b."""
        return a + b

    @action
    async def shout(self, websocket: WebSocket, data: dict[str, Any]) -> None:
        """Send the text back in capitals."""
        await self.broadcast_to_personal(websocket, {"shout": str(data.get("text")).upper()})


board = Board()


@app.websocket("/ws")
async def endpoint(websocket: WebSocket) -> None:
    """Serve the board."""
    await board.connect(websocket)
