from typing import Any

from fastapi import FastAPI, WebSocket

from fastapi_channels import add_channel
from fastapi_channels.channels import Channel
from fastapi_channels.decorators import action
from fastapi_channels.throttling import limiter

app = FastAPI()
add_channel(app)


class Room(Channel):
    @limiter(times=1, minutes=1)
    @action()
    async def say(self, websocket: WebSocket, channel: str, data: dict[str, Any]) -> None:
        await self.broadcast_to_channel(channel, {"action": "say", "text": data.get("text")})

    @action()
    async def motd(self, websocket: WebSocket) -> None:
        await self.broadcast_to_personal(websocket, "Be nice.")

    @action()
    async def quit(self, websocket: WebSocket) -> None:
        await self.close(websocket)

    @action(permission=False)
    async def admin(self, websocket: WebSocket) -> None:
        await self.broadcast_to_personal(websocket, "secret")


room = Room(channel="room")


@app.websocket("/room")
async def room_endpoint(websocket: WebSocket) -> None:
    await room.connect(websocket)
