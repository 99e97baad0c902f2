import os
from typing import Any

from fastapi import FastAPI, WebSocket

from fastapi_channels import add_channel
from fastapi_channels.channels import Channel
from fastapi_channels.decorators import action
from fastapi_channels.throttling import limiter

# memory:// for development; redis://host:6379/0 (or postgres://..., kafka://...) when several processes serve
BROADCAST_URL = os.environ.get("BROADCAST_URL", "memory://")
# redis://host:6379/0 keeps rate limits in Redis, shared by every process; unset keeps them in memory
LIMITER_URL = os.environ.get("LIMITER_URL")

app = FastAPI()
add_channel(app, url=BROADCAST_URL, limiter_url=LIMITER_URL)


class Chat(Channel):
    @limiter(times=5, seconds=10)
    @action()
    async def message(self, websocket: WebSocket, channel: str, data: dict[str, Any]) -> None:
        await self.broadcast_to_channel(channel, {"action": "message", "text": data.get("text")})


chat = Chat(channel="chat")


@app.websocket("/chat")
async def chat_endpoint(websocket: WebSocket) -> None:
    await chat.connect(websocket)
