from typing import Any

from fastapi import FastAPI, WebSocket

from fastapi_channels import add_channel
from fastapi_channels.channels import Channel
from fastapi_channels.decorators import action
from fastapi_channels.throttling import limiter

app = FastAPI()
add_channel(app)


class Chat(Channel):
    @limiter(times=3, seconds=6)  # above @action ...
    @action()
    async def message(self, websocket: WebSocket, channel: str, data: dict[str, Any]) -> None:
        await self.broadcast_to_channel(channel, {"action": "message", "text": data.get("text")})

    @action()
    @limiter(times=1, seconds=2)  # ... or below it: the same limit
    async def typing(self, websocket: WebSocket, channel: str, data: dict[str, Any]) -> None:
        await self.broadcast_to_channel(channel, {"action": "typing"})

    @limiter(times=2, seconds=1)  # several limits on one action: each must allow
    @limiter(times=10, minutes=1)
    @action()
    async def search(self, websocket: WebSocket, channel: str, data: dict[str, Any]) -> None:
        await self.broadcast_to_personal(websocket, {"action": "search", "results": []})


chat = Chat(channel="chat")


@limiter(times=1, minutes=1)  # function actions take limits the same way
@chat.action("nudge")
async def nudge(websocket: WebSocket, channel: str, data: dict[str, Any]) -> None:
    await chat.broadcast_to_channel(channel, {"action": "nudge"})


@app.websocket("/chat")
async def chat_endpoint(websocket: WebSocket) -> None:
    await chat.connect(websocket)
