from typing import Any

from fastapi import FastAPI, WebSocket

from fastapi_channels import add_channel
from fastapi_channels.channels import Channel
from fastapi_channels.decorators import action

app = FastAPI()
add_channel(app)


class EchoRoom(Channel):
    channel = "echo"

    @action()
    async def ping(self, websocket: WebSocket, channel: str, data: dict[str, Any]) -> None:
        await self.broadcast_to_personal(websocket, {"action": "pong", "request_id": data.get("request_id")})

    @action("say")
    async def say_to_everyone(self, websocket: WebSocket, channel: str, data: dict[str, Any]) -> None:
        await self.broadcast_to_channel(channel, {"action": "said", "text": data.get("text", "")})


room = EchoRoom()


@app.websocket("/ws")
async def websocket_endpoint(websocket: WebSocket) -> None:
    await room.connect(websocket)
